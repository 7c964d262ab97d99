//! A moto server on loopback, patched to behave like AWS where drctl depends on it and seeded
//! with the simulator's built-in world: the launcher and seed drctl embeds for its sandbox
//! (`src/cloud/aws/sandbox/launcher.py`, `seed.py`), written to a temporary directory.
//!
//! Each [`Moto`] is its own server with its own world, so tests that mutate it stay
//! independent. The server is killed when the `Moto` is dropped. [`Moto::attach`] makes it the
//! running sandbox of a state directory, so the binary's `--sandbox` runs against it.

use std::{
  io::{Read, Write},
  net::{TcpListener, TcpStream},
  path::Path,
  process::{Child, Command, Stdio},
  sync::Once,
  time::{Duration, Instant},
};

use drctl::cloud::aws::{sandbox, AwsSettings};

/// How long the server may take to import moto and answer.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

/// Credentials and region every child (and the SDK in this process) uses against moto.
const TEST_ENV: &[(&str, &str)] = &[
  ("AWS_ACCESS_KEY_ID", "testing"),
  ("AWS_SECRET_ACCESS_KEY", "testing"),
  ("AWS_REGION", "us-east-1"),
  ("AWS_DEFAULT_REGION", "us-east-1"),
  // Never wander off to the instance metadata service looking for credentials.
  ("AWS_EC2_METADATA_DISABLED", "true"),
];

pub struct Moto {
  pub endpoint: String,
  pub port: u16,
  /// The ids `seed.py` printed (zone id, health check ids, ...).
  pub seeded: serde_json::Value,
  child: Child,
  scripts: sandbox::Scripts,
  _scripts_dir: tempfile::TempDir,
}

/// Install moto once per test process if it is missing.
fn ensure_moto_installed() {
  static INSTALL: Once = Once::new();
  INSTALL.call_once(|| {
    let present = Command::new("python3")
      .args(["-c", "import moto.server, boto3"])
      .stdout(Stdio::null())
      .stderr(Stdio::null())
      .status()
      .is_ok_and(|status| status.success());
    if !present {
      let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "moto[server]>=5.2,<5.3"])
        .status()
        .expect("run pip");
      assert!(status.success(), "pip install moto[server] failed");
    }
  });
}

/// The SDK in this process reads credentials from the environment; every test sets the same
/// values, once, before the first client is built.
pub fn set_process_env() {
  static ENV: Once = Once::new();
  ENV.call_once(|| {
    for (name, value) in TEST_ENV {
      std::env::set_var(name, value);
    }
  });
}

fn free_loopback_port() -> u16 {
  let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
  listener.local_addr().expect("local address").port()
}

/// A minimal HTTP/1.1 request to the server on loopback; returns (status, body).
fn http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
  http_body(port, method, path, "")
}

fn http_body(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
  let mut stream = TcpStream::connect(("127.0.0.1", port))?;
  stream.set_read_timeout(Some(Duration::from_secs(30)))?;
  write!(
    stream,
    "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
    body.len()
  )?;
  let mut response = String::new();
  stream.read_to_string(&mut response)?;
  let status = response
    .split_whitespace()
    .nth(1)
    .and_then(|status| status.parse().ok())
    .unwrap_or(0);
  let body = response
    .split_once("\r\n\r\n")
    .map(|(_, body)| body.to_owned())
    .unwrap_or_default();
  Ok((status, body))
}

impl Moto {
  /// Start a patched moto server on a free loopback port and seed it.
  pub fn start() -> Moto {
    ensure_moto_installed();
    set_process_env();
    let port = free_loopback_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let scripts_dir = tempfile::tempdir().expect("a temporary directory");
    let scripts = sandbox::write_scripts(scripts_dir.path()).expect("write the sandbox scripts");
    let child = Command::new("python3")
      .arg(&scripts.launcher)
      .args(["--port", &port.to_string()])
      .envs(TEST_ENV.iter().copied())
      .stdin(Stdio::null())
      .stdout(Stdio::null())
      .stderr(Stdio::null())
      .spawn()
      .expect("spawn the moto launcher");
    let mut moto = Moto {
      endpoint,
      port,
      seeded: serde_json::Value::Null,
      child,
      scripts,
      _scripts_dir: scripts_dir,
    };
    moto.wait_until_up();
    moto.seeded = moto.seed();
    moto
  }

  fn wait_until_up(&mut self) {
    let started = Instant::now();
    loop {
      if let Ok((200, _)) = http(self.port, "GET", "/drctl-sandbox/ping") {
        return;
      }
      if let Ok(Some(status)) = self.child.try_wait() {
        panic!("the moto launcher exited with {status} before answering");
      }
      assert!(
        started.elapsed() < STARTUP_TIMEOUT,
        "moto did not answer on port {} within {STARTUP_TIMEOUT:?}",
        self.port
      );
      std::thread::sleep(Duration::from_millis(100));
    }
  }

  fn seed(&self) -> serde_json::Value {
    let output = Command::new("python3")
      .arg(&self.scripts.seed)
      .args(["--endpoint", &self.endpoint])
      .envs(TEST_ENV.iter().copied())
      .output()
      .expect("run seed.py");
    assert!(
      output.status.success(),
      "seed.py failed: {}",
      String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("seed.py prints JSON")
  }

  /// Settings that point the AWS provider at this server.
  pub fn settings(&self) -> AwsSettings {
    AwsSettings {
      profile: None,
      region: Some("us-east-1".to_owned()),
      endpoint_url: Some(self.endpoint.clone()),
    }
  }

  /// Environment for running the drctl binary (or any AWS client) against this server.
  pub fn env(&self) -> Vec<(String, String)> {
    TEST_ENV
      .iter()
      .map(|(name, value)| (name.to_string(), value.to_string()))
      .chain([("AWS_ENDPOINT_URL".to_owned(), self.endpoint.clone())])
      .collect()
  }

  /// A string from the seeded ids, by JSON pointer (`/route53/zone_id`).
  pub fn id(&self, pointer: &str) -> String {
    self
      .seeded
      .pointer(pointer)
      .and_then(|value| value.as_str())
      .unwrap_or_else(|| panic!("seed output has no string at {pointer}: {}", self.seeded))
      .to_owned()
  }

  /// Make the endpoint behind a Route 53 health check answer (or not).
  pub fn set_endpoint_health(&self, health_check_id: &str, healthy: bool) {
    let path = format!("/drctl-sandbox/health?id={health_check_id}&healthy={healthy}");
    let (status, body) = http(self.port, "POST", &path).expect("reach the control endpoint");
    assert_eq!(status, 200, "control endpoint answered {status}: {body}");
  }

  /// A request to the server (sandbox routes, moto's own API); returns (status, body).
  pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
    http_body(self.port, method, path, body).expect("reach the moto server")
  }

  /// Make this server the running sandbox of `state` (`<state>/sandbox.json`), as
  /// `drctl sandbox up` would, so `drctl --sandbox` and `resume` use it.
  pub fn attach(&self, state: &Path) {
    std::fs::create_dir_all(state).expect("create the state directory");
    let record = serde_json::json!({
      "pid": self.child.id(),
      "endpoint": self.endpoint,
      "port": self.port,
    });
    std::fs::write(state.join("sandbox.json"), record.to_string()).expect("write sandbox.json");
  }
}

impl Drop for Moto {
  fn drop(&mut self) {
    let _ = self.child.kill();
    let _ = self.child.wait();
  }
}
