//! A small builder that runs the real binary in a temporary directory holding a copy of the
//! shipped runbooks: `Test::new().args([...]).run()`.

#![allow(dead_code)]

use std::{
  path::{Path, PathBuf},
  process::{Child, Command, Output, Stdio},
  time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_drctl");

/// The repository root (where `runbooks/` and `tests/fixtures/` live).
pub fn repo() -> PathBuf {
  PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Test {
  pub dir: tempfile::TempDir,
  args: Vec<String>,
  env: Vec<(String, String)>,
}

impl Test {
  /// A temporary working directory with the shipped runbooks in `runbooks/`.
  pub fn new() -> Test {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    for entry in std::fs::read_dir(repo().join("runbooks")).unwrap() {
      let entry = entry.unwrap();
      std::fs::copy(entry.path(), runbooks.join(entry.file_name())).unwrap();
    }
    Test {
      dir,
      args: Vec::new(),
      env: Vec::new(),
    }
  }

  pub fn path(&self) -> &Path {
    self.dir.path()
  }

  pub fn file(self, path: &str, contents: &str) -> Test {
    let full = self.dir.path().join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, contents).unwrap();
    self
  }

  pub fn args<I, S>(mut self, args: I) -> Test
  where
    I: IntoIterator<Item = S>,
    S: Into<String>,
  {
    self.args = args.into_iter().map(Into::into).collect();
    self
  }

  pub fn env(mut self, key: &str, value: &str) -> Test {
    self.env.push((key.into(), value.into()));
    self
  }

  pub fn command<I, S>(&self, args: I) -> Command
  where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
  {
    let mut command = Command::new(BIN);
    command
      .args(args)
      .current_dir(self.dir.path())
      .env_remove("SLACK_WEBHOOK_URL")
      .env("NO_COLOR", "1")
      .stdin(Stdio::null());
    for (key, value) in &self.env {
      command.env(key, value);
    }
    command
  }

  /// Run with the builder's arguments.
  pub fn run(&self) -> Run {
    self.run_args(self.args.clone())
  }

  /// Run with other arguments in the same directory.
  pub fn run_args<I, S>(&self, args: I) -> Run
  where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
  {
    Run(self.command(args).output().expect("drctl runs"))
  }

  /// Start in the background.
  pub fn spawn<I, S>(&self, args: I) -> Child
  where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
  {
    self
      .command(args)
      .stdout(Stdio::piped())
      .stderr(Stdio::piped())
      .spawn()
      .expect("drctl starts")
  }

  /// The run ids in the state directory, oldest first.
  pub fn run_ids(&self) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(self.path().join(".drctl/runs"))
      .map(|entries| {
        entries
          .flatten()
          .map(|entry| entry.file_name().to_string_lossy().into_owned())
          .collect()
      })
      .unwrap_or_default();
    ids.sort();
    ids
  }

  pub fn journal(&self, run_id: &str) -> String {
    std::fs::read_to_string(
      self
        .path()
        .join(".drctl/runs")
        .join(run_id)
        .join("journal.jsonl"),
    )
    .unwrap_or_default()
  }

  /// `drctl status RUN --output json`, parsed.
  pub fn status_json(&self, run_id: &str) -> serde_json::Value {
    let run = self.run_args(["status", run_id, "--output", "json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    serde_json::from_str(&run.stdout()).expect("status prints JSON")
  }

  /// The simulator's operation names, in order.
  pub fn operations(&self, run_id: &str) -> Vec<String> {
    self.status_json(run_id)["operations"]
      .as_array()
      .unwrap()
      .iter()
      .map(|op| op["operation"].as_str().unwrap().to_string())
      .collect()
  }

  /// Wait until `condition` holds (polling), or panic after `limit`.
  pub fn wait_for(&self, limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
      assert!(start.elapsed() < limit, "timed out waiting for {what}");
      std::thread::sleep(Duration::from_millis(20));
    }
  }
}

/// A finished process.
pub struct Run(pub Output);

impl Run {
  pub fn code(&self) -> i32 {
    self.0.status.code().unwrap_or(-1)
  }

  pub fn stdout(&self) -> String {
    String::from_utf8_lossy(&self.0.stdout).into_owned()
  }

  pub fn stderr(&self) -> String {
    String::from_utf8_lossy(&self.0.stderr).into_owned()
  }

  /// Assert the exit code, showing the output when it differs.
  pub fn status(self, code: i32) -> Run {
    assert_eq!(
      self.code(),
      code,
      "exit code\n--- stdout\n{}\n--- stderr\n{}",
      self.stdout(),
      self.stderr()
    );
    self
  }
}

/// Count how often each name occurs.
pub fn count(items: &[String], name: &str) -> usize {
  items.iter().filter(|item| *item == name).count()
}

/// Send a signal to a child.
pub fn signal(child: &Child, signal: &str) {
  let status = Command::new("kill")
    .args([format!("-{signal}"), child.id().to_string()])
    .status()
    .expect("kill runs");
  assert!(status.success());
}

pub mod browser;
pub mod capture;
pub mod fake_aws;
pub mod journal;
pub mod moto;
pub mod origin;
pub mod procs;
pub mod proxy;
pub mod recording;
pub mod s3;
pub mod tls;

impl Test {
  /// The simulated world a finished `--sim` run left behind, written as a world file in the
  /// test directory: what the next runbook (a failback after a failover) starts from.
  pub fn world_after(&self, run_id: &str) -> PathBuf {
    let sim = drctl::cloud::sim::Sim::open(&drctl::cloud::sim::SimOptions {
      world: None,
      time_scale: None,
      dir: self.path().join(".drctl/runs").join(run_id),
    })
    .expect("open the run's simulated world");
    let world = sim.world_now().expect("the world as it stands");
    let path = self.path().join(format!("world-after-{run_id}.yaml"));
    // JSON is YAML: the world file reader takes it as it is.
    std::fs::write(&path, serde_json::to_string_pretty(&world).unwrap()).unwrap();
    path
  }

  /// The one run that is not among `before` (run ids made within the same second need not
  /// sort in the order they were made).
  pub fn new_run(&self, before: &[String]) -> String {
    let mut new: Vec<String> = self
      .run_ids()
      .into_iter()
      .filter(|id| !before.contains(id))
      .collect();
    assert_eq!(new.len(), 1, "exactly one new run: {new:?}");
    new.remove(0)
  }
}

/// Fragments of Rust `Debug` output (of the SDK's error structs) that must never reach the user.
pub const DEBUG_SYNTAX: &[&str] = &[
  "Some(",
  "None,",
  "{ ",
  " }",
  "DispatchFailure",
  "ConnectorError",
  "{ source:",
  ", source:",
  "{ kind:",
  ", kind:",
  "ErrorMetadata",
  "ConstructionFailure",
];

/// The `Debug` fragments found in `text`.
pub fn debug_syntax(text: &str) -> Vec<&'static str> {
  DEBUG_SYNTAX
    .iter()
    .copied()
    .filter(|fragment| text.contains(fragment))
    .collect()
}

/// A loopback port with nothing listening on it: connections are refused (the listener that
/// found it free is closed again).
pub fn refused_port() -> u16 {
  let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
  listener.local_addr().expect("local address").port()
}
