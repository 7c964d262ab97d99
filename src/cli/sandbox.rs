//! `drctl sandbox up|down|status` and `--sandbox`: a local moto server, patched and seeded with
//! the simulator's built-in world (`cloud::aws::sandbox`), run as a child process on a free
//! loopback port.
//!
//! `up` leaves one running and records it in `<state>/sandbox.json`; a command given
//! `--sandbox` uses that one when it answers (so `resume` finds the same world), and otherwise
//! starts its own for the command and stops it afterwards, also when the command fails.

use std::{
  io::{Read, Write},
  net::{TcpListener, TcpStream},
  path::{Path, PathBuf},
  process::{Child, Command, Stdio},
  time::{Duration, Instant},
};

use clap::Subcommand;
use serde::{Deserialize, Serialize};

use super::{
  commands::{Backend, Context},
  out, Error, Output,
};
use crate::cloud::aws::sandbox::{self, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};

/// How long the server may take to import moto and answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// What to install when moto is missing.
const PIP_INSTALL: &str = "python3 -m pip install 'moto[server]>=5.2,<5.3' boto3";

#[derive(Debug, Clone, Subcommand)]
pub enum SandboxCommand {
  /// Start a seeded sandbox and print the environment that points AWS clients at it.
  Up,
  /// Stop the sandbox started with `up`.
  Down,
  /// Say whether a sandbox is running.
  Status,
}

/// `<state>/sandbox.json`: the sandbox `up` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
  pub pid: u32,
  pub endpoint: String,
  pub port: u16,
}

fn record_path(state: &Path) -> PathBuf {
  state.join("sandbox.json")
}

/// The running sandbox recorded in `<state>/sandbox.json`, if its process is alive and answers.
pub fn running(state: &Path) -> Option<SandboxRecord> {
  let text = std::fs::read_to_string(record_path(state)).ok()?;
  let record: SandboxRecord = serde_json::from_str(&text).ok()?;
  (process_alive(record.pid) && ping(record.port)).then_some(record)
}

fn process_alive(pid: u32) -> bool {
  Command::new("kill")
    .args(["-0", &pid.to_string()])
    .stderr(Stdio::null())
    .status()
    .is_ok_and(|status| status.success())
}

/// `GET /drctl-sandbox/ping` on loopback: whether the server answers.
fn ping(port: u16) -> bool {
  let Ok(mut stream) = TcpStream::connect_timeout(
    &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    Duration::from_secs(2),
  ) else {
    return false;
  };
  let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
  let request = format!(
    "GET /drctl-sandbox/ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
  );
  if stream.write_all(request.as_bytes()).is_err() {
    return false;
  }
  let mut response = String::new();
  let _ = stream.read_to_string(&mut response);
  response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}

/// A sandbox server this process started.
pub struct Sandbox {
  pub record: SandboxRecord,
  child: Option<Child>,
}

impl Sandbox {
  pub fn endpoint(&self) -> &str {
    &self.record.endpoint
  }

  /// Stop the server (also done on drop).
  pub fn stop(&mut self) {
    if let Some(mut child) = self.child.take() {
      let _ = child.kill();
      let _ = child.wait();
    }
  }

  /// Let the server outlive this process (`drctl sandbox up`).
  fn detach(mut self) -> SandboxRecord {
    self.child = None;
    self.record.clone()
  }
}

impl Drop for Sandbox {
  fn drop(&mut self) {
    self.stop();
  }
}

fn moto_installed() -> bool {
  Command::new("python3")
    .args(["-c", "import moto.server, boto3"])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .is_ok_and(|status| status.success())
}

fn free_loopback_port() -> Result<u16, Error> {
  TcpListener::bind("127.0.0.1:0")
    .and_then(|listener| listener.local_addr())
    .map(|address| address.port())
    .map_err(|err| Error::Failed(format!("sandbox: no free loopback port: {err}")))
}

fn sandbox_env(command: &mut Command) -> &mut Command {
  command
    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    .env("AWS_REGION", REGION)
    .env("AWS_DEFAULT_REGION", REGION)
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env_remove("AWS_PROFILE")
    .env_remove("AWS_ENDPOINT_URL")
}

/// Start a seeded server. Its output goes to `log` (or nowhere). The scripts are written to a
/// temporary directory that is removed once the server runs and the seed is done.
pub fn start(log: Option<&Path>) -> Result<Sandbox, Error> {
  if !moto_installed() {
    return Err(Error::Usage(format!(
      "the sandbox needs moto server and boto3 for python3 (`python3 -c 'import moto.server'` \
       failed); install them with:\n  {PIP_INSTALL}"
    )));
  }
  // A fresh private directory (mkdtemp), removed when `scripts_dir` drops.
  let scripts_dir = tempfile::Builder::new()
    .prefix("drctl-sandbox-")
    .tempdir()
    .map_err(|err| {
      Error::Failed(format!(
        "sandbox: cannot create a temporary directory: {err}"
      ))
    })?;
  start_in(scripts_dir.path(), log)
}

fn start_in(scripts_dir: &Path, log: Option<&Path>) -> Result<Sandbox, Error> {
  let scripts = sandbox::write_scripts(scripts_dir)
    .map_err(|err| Error::Failed(format!("sandbox: {}: {err}", scripts_dir.display())))?;
  let port = free_loopback_port()?;
  let endpoint = format!("http://127.0.0.1:{port}");
  let (stdout, stderr) = match log {
    Some(path) => {
      let file = std::fs::File::create(path)
        .map_err(|err| Error::Failed(format!("sandbox: {}: {err}", path.display())))?;
      let copy = file
        .try_clone()
        .map_err(|err| Error::Failed(format!("sandbox: {}: {err}", path.display())))?;
      (Stdio::from(file), Stdio::from(copy))
    }
    None => (Stdio::null(), Stdio::null()),
  };
  let mut command = Command::new("python3");
  command
    .arg(&scripts.launcher)
    .args(["--port", &port.to_string()])
    .stdin(Stdio::null())
    .stdout(stdout)
    .stderr(stderr);
  // Its own process group: a Ctrl-C at the terminal reaches drctl, which stops the server itself
  // (or, after `up`, leaves it running as asked).
  std::os::unix::process::CommandExt::process_group(&mut command, 0);
  let child = sandbox_env(&mut command)
    .spawn()
    .map_err(|err| Error::Failed(format!("sandbox: cannot start python3: {err}")))?;
  let mut sandbox = Sandbox {
    record: SandboxRecord {
      pid: child.id(),
      endpoint,
      port,
    },
    child: Some(child),
  };
  let started = Instant::now();
  while !ping(port) {
    if let Some(child) = sandbox.child.as_mut() {
      if let Ok(Some(status)) = child.try_wait() {
        return Err(Error::Failed(format!(
          "sandbox: the moto launcher exited with {status} before answering{}",
          log
            .map(|path| format!(" (see {})", path.display()))
            .unwrap_or_default()
        )));
      }
    }
    if started.elapsed() > STARTUP_TIMEOUT {
      return Err(Error::Failed(format!(
        "sandbox: moto did not answer on port {port} within {}s",
        STARTUP_TIMEOUT.as_secs()
      )));
    }
    std::thread::sleep(Duration::from_millis(100));
  }
  let mut seed = Command::new("python3");
  seed
    .arg(&scripts.seed)
    .args(["--endpoint", &sandbox.record.endpoint]);
  let output = sandbox_env(&mut seed)
    .output()
    .map_err(|err| Error::Failed(format!("sandbox: cannot run the seed: {err}")))?;
  if !output.status.success() {
    return Err(Error::Failed(format!(
      "sandbox: seeding failed: {}",
      String::from_utf8_lossy(&output.stderr).trim()
    )));
  }
  Ok(sandbox)
}

/// The environment that points AWS clients at the sandbox.
pub fn exports(endpoint: &str) -> String {
  format!(
    "export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID={ACCESS_KEY_ID} \
     AWS_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY} AWS_REGION={REGION}\n"
  )
}

/// `drctl sandbox up|down|status`.
pub fn command(state: &Path, output: Output, command: &SandboxCommand) -> Result<i32, Error> {
  match command {
    SandboxCommand::Up => up(state, output),
    SandboxCommand::Down => down(state, output),
    SandboxCommand::Status => status(state, output),
  }
}

fn print(output: Output, text: &str, json: serde_json::Value) {
  match output {
    Output::Text => out(text),
    Output::Json => out(&format!("{json}\n")),
  }
}

fn up(state: &Path, output: Output) -> Result<i32, Error> {
  if let Some(record) = running(state) {
    print(
      output,
      &format!(
        "sandbox already running at {} (pid {})\n{}",
        record.endpoint,
        record.pid,
        exports(&record.endpoint)
      ),
      serde_json::json!({"running": true, "pid": record.pid, "endpoint": record.endpoint, "port": record.port}),
    );
    return Ok(0);
  }
  std::fs::create_dir_all(state)
    .map_err(|err| Error::Failed(format!("{}: {err}", state.display())))?;
  let sandbox = start(Some(&state.join("sandbox.log")))?;
  let json = serde_json::to_string_pretty(&sandbox.record)
    .map_err(|err| Error::Failed(format!("sandbox: {err}")))?;
  let path = record_path(state);
  std::fs::write(&path, json).map_err(|err| Error::Failed(format!("{}: {err}", path.display())))?;
  let record = sandbox.detach();
  print(
    output,
    &format!(
      "sandbox running at {} (pid {}), seeded with the built-in world; stop it with `drctl sandbox down`\n{}",
      record.endpoint,
      record.pid,
      exports(&record.endpoint)
    ),
    serde_json::json!({"running": true, "pid": record.pid, "endpoint": record.endpoint, "port": record.port}),
  );
  Ok(0)
}

fn down(state: &Path, output: Output) -> Result<i32, Error> {
  let path = record_path(state);
  let record = std::fs::read_to_string(&path)
    .ok()
    .and_then(|text| serde_json::from_str::<SandboxRecord>(&text).ok());
  let Some(record) = record else {
    print(
      output,
      "no sandbox running\n",
      serde_json::json!({"running": false}),
    );
    return Ok(0);
  };
  if process_alive(record.pid) {
    let _ = Command::new("kill")
      .arg(record.pid.to_string())
      .stderr(Stdio::null())
      .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(record.pid) && Instant::now() < deadline {
      std::thread::sleep(Duration::from_millis(50));
    }
  }
  let _ = std::fs::remove_file(&path);
  print(
    output,
    &format!(
      "sandbox at {} (pid {}) stopped\n",
      record.endpoint, record.pid
    ),
    serde_json::json!({"running": false, "stopped": record.pid}),
  );
  Ok(0)
}

fn status(state: &Path, output: Output) -> Result<i32, Error> {
  match running(state) {
    Some(record) => print(
      output,
      &format!(
        "sandbox running at {} (pid {})\n{}",
        record.endpoint,
        record.pid,
        exports(&record.endpoint)
      ),
      serde_json::json!({"running": true, "pid": record.pid, "endpoint": record.endpoint, "port": record.port}),
    ),
    None => print(
      output,
      "no sandbox running (start one with `drctl sandbox up`)\n",
      serde_json::json!({"running": false}),
    ),
  }
  Ok(0)
}

/// For a command that talks to the cloud with the sandbox backend: use the sandbox `up`
/// started, or start one for this command (returned, so it stops when dropped).
pub(crate) fn prepare(
  ctx: &mut Context,
  command: &crate::cli::Command,
) -> Result<Option<Sandbox>, Error> {
  use crate::cli::Command;
  if !matches!(ctx.backend, Backend::Sandbox { .. }) {
    return Ok(None);
  }
  if !matches!(
    command,
    Command::Plan { .. } | Command::Run { .. } | Command::Failover { .. }
  ) {
    return Ok(None);
  }
  attach(ctx)
}

/// Point a sandbox context at the running sandbox, or start one for this command (stopped when
/// the returned guard drops). A no-op for other backends.
pub(crate) fn attach(ctx: &mut Context) -> Result<Option<Sandbox>, Error> {
  let Backend::Sandbox { endpoint, .. } = &mut ctx.backend else {
    return Ok(None);
  };
  if let Some(record) = running(ctx.store.root()) {
    *endpoint = Some(record.endpoint);
    return Ok(None);
  }
  let sandbox = start(None)?;
  *endpoint = Some(sandbox.endpoint().to_owned());
  Ok(Some(sandbox))
}

/// The backend to resume a sandbox run on: the running sandbox of `drctl sandbox up`.
pub(crate) fn resume_backend(ctx: &Context, run_id: &str) -> Result<Backend, Error> {
  let state = ctx.store.root();
  let record = running(state).ok_or_else(|| {
    Error::Usage(format!(
      "run {run_id} ran on the sandbox, and no sandbox is running ({} names none that answers); \
       start one with `drctl sandbox up` (a fresh sandbox is seeded anew: effects of the \
       interrupted run are observed again before anything is repeated)",
      record_path(state).display()
    ))
  })?;
  let settings = match &ctx.backend {
    Backend::Aws(settings) | Backend::Sandbox { settings, .. } => settings.clone(),
    Backend::Sim { .. } => Default::default(),
  };
  Ok(Backend::Sandbox {
    endpoint: Some(record.endpoint),
    settings,
  })
}
