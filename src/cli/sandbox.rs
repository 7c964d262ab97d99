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
  out, Error, Exit, Output,
};
use crate::{
  cloud::aws::sandbox::{self, ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY},
  process_group::{self, ChildGroup, RecordedGroup, Signal},
};

/// Whether a server outlives the drctl that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
  /// Stopped with the command (`--sandbox` without `up`). The launcher also watches drctl and
  /// exits when it is gone, so a SIGKILLed drctl does not leave it running.
  Command,
  /// Left running for later commands (`drctl sandbox up`).
  Detached,
}

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
  /// The launcher's pid, which is also its process group's id.
  pub pid: u32,
  pub endpoint: String,
  pub port: u16,
  /// The launcher's start time (`/proc/PID/stat` field 22), so `down` never signals a process
  /// that reused the pid. Absent in records written before it was kept.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub start_time: Option<u64>,
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

/// A sandbox server this process started, in its own process group: the group is killed when
/// this is stopped or dropped, and by the second interrupt ([`process_group::kill_all`]).
pub struct Sandbox {
  pub record: SandboxRecord,
  child: Option<(Child, ChildGroup)>,
}

/// How long the server may take to exit on SIGTERM before its group is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Sandbox {
  pub fn endpoint(&self) -> &str {
    &self.record.endpoint
  }

  /// Stop the server and everything in its process group (also done on drop).
  pub fn stop(&mut self) {
    let Some((mut child, group)) = self.child.take() else {
      return;
    };
    group.signal(Signal::Term);
    let deadline = Instant::now() + STOP_GRACE;
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
      std::thread::sleep(Duration::from_millis(20));
    }
    // Dropping the group SIGKILLs whatever is left of it.
    drop(group);
    let _ = child.wait();
  }

  /// Let the server outlive this process (`drctl sandbox up`).
  fn detach(mut self) -> SandboxRecord {
    if let Some((_, group)) = self.child.take() {
      group.release();
    }
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
pub fn start(log: Option<&Path>, lifetime: Lifetime) -> Result<Sandbox, Error> {
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
  start_in(scripts_dir.path(), log, lifetime)
}

fn start_in(scripts_dir: &Path, log: Option<&Path>, lifetime: Lifetime) -> Result<Sandbox, Error> {
  let scripts = sandbox::write_scripts(scripts_dir)
    .map_err(|err| Error::Failed(format!("sandbox: {}: {err}", scripts_dir.display())))?;
  let port = free_loopback_port()?;
  let endpoint = format!("http://127.0.0.1:{port}");
  let (stdout, stderr) = match log {
    Some(path) => {
      let file = crate::state::store::private_file()
        .create(true)
        .truncate(true)
        .open(path)
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
  if lifetime == Lifetime::Command {
    command.args(["--parent", &std::process::id().to_string()]);
  }
  // Its own process group: a Ctrl-C at the terminal reaches drctl, which stops the server itself
  // (or, after `up`, leaves it running as asked), and stopping kills the whole group.
  std::os::unix::process::CommandExt::process_group(&mut command, 0);
  let child = sandbox_env(&mut command)
    .spawn()
    .map_err(|err| Error::Failed(format!("sandbox: cannot start python3: {err}")))?;
  let pid = child.id();
  let group = ChildGroup::adopt(pid);
  let mut sandbox = Sandbox {
    record: SandboxRecord {
      pid,
      endpoint,
      port,
      start_time: process_group::start_time(pid),
    },
    child: Some((child, group)),
  };
  let started = Instant::now();
  while !ping(port) {
    if let Some((child, _)) = sandbox.child.as_mut() {
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
pub fn command(state: &Path, output: Output, command: &SandboxCommand) -> Result<Exit, Error> {
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

fn up(state: &Path, output: Output) -> Result<Exit, Error> {
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
    return Ok(Exit::Succeeded);
  }
  crate::state::store::create_private_dir(state)
    .map_err(|err| Error::Failed(format!("{}: {err}", state.display())))?;
  let sandbox = start(Some(&state.join("sandbox.log")), Lifetime::Detached)?;
  let json = serde_json::to_string_pretty(&sandbox.record)
    .map_err(|err| Error::Failed(format!("sandbox: {err}")))?;
  let path = record_path(state);
  crate::state::store::write_private(&path, json)
    .map_err(|err| Error::Failed(format!("{}: {err}", path.display())))?;
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
  Ok(Exit::Succeeded)
}

fn down(state: &Path, output: Output) -> Result<Exit, Error> {
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
    return Ok(Exit::Succeeded);
  };
  stop_recorded(&record);
  let _ = std::fs::remove_file(&path);
  print(
    output,
    &format!(
      "sandbox at {} (pid {}) stopped\n",
      record.endpoint, record.pid
    ),
    serde_json::json!({"running": false, "stopped": record.pid}),
  );
  Ok(Exit::Succeeded)
}

/// Stop the server a record names, with its whole process group: SIGTERM, then SIGKILL after
/// [`STOP_GRACE`]. A record without a start time (written by an older drctl) names only the
/// launcher, signalled while its pid is alive.
fn stop_recorded(record: &SandboxRecord) {
  let Some(leader_start) = record.start_time else {
    if process_alive(record.pid) {
      let _ = Command::new("kill")
        .arg(record.pid.to_string())
        .stderr(Stdio::null())
        .status();
    }
    return;
  };
  let group = RecordedGroup {
    pgid: record.pid,
    leader_start,
  };
  if !process_group::signal_recorded(group, Signal::Term) {
    return;
  }
  let deadline = Instant::now() + STOP_GRACE;
  while process_group::start_time(record.pid) == Some(leader_start) && Instant::now() < deadline {
    std::thread::sleep(Duration::from_millis(50));
  }
  process_group::signal_recorded(group, Signal::Kill);
}

fn status(state: &Path, output: Output) -> Result<Exit, Error> {
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
  Ok(Exit::Succeeded)
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
  let sandbox = start(None, Lifetime::Command)?;
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
