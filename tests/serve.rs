//! `drctl serve` through the real binary: the bind rule, and the pages in headless Chromium
//! (screenshots of the runs list, a live run mid-flight, and a drill's trend chart, written under
//! `target/screenshots/`), with a run's secret shown on no page.

use std::{
  io::{BufRead, BufReader},
  path::{Path, PathBuf},
  process::{Child, Command, Stdio},
  time::{Duration, Instant},
};

use crate::support::{repo, Test};

/// A secret the run's notification step references: no page may show it.
const SECRET: &str = "https://hooks.slack.test/T000/B000/serve-secret-7c1d";

#[test]
fn serve_refuses_a_bind_beyond_loopback_without_a_token() {
  let test = Test::new();
  let output = test
    .command(["serve", "--listen", "0.0.0.0:0"])
    .env_remove("DRCTL_SERVE_TOKEN")
    .output()
    .unwrap();
  assert_eq!(output.status.code(), Some(2), "{output:?}");
  let stderr = String::from_utf8_lossy(&output.stderr);
  assert_eq!(
    stderr,
    "error: --listen 0.0.0.0:0 is not a loopback address: set DRCTL_SERVE_TOKEN (every request \
     must then carry `Authorization: Bearer TOKEN`), or listen on 127.0.0.1\n"
  );
  // An empty token is no token.
  let output = test
    .command(["serve", "--listen", "0.0.0.0:0"])
    .env("DRCTL_SERVE_TOKEN", "")
    .output()
    .unwrap();
  assert_eq!(output.status.code(), Some(2), "{output:?}");
}

/// A running `drctl serve`, stopped (SIGTERM) when dropped.
struct Server {
  child: Child,
  url: String,
}

impl Server {
  fn start(test: &Test) -> Server {
    Server::start_with(test, &[])
  }

  fn start_with(test: &Test, extra: &[&str]) -> Server {
    Server::start_with_env(test, extra, &[])
  }

  fn start_with_env(test: &Test, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut command = test.command(["serve", "--listen", "127.0.0.1:0"].iter().chain(extra));
    for (name, value) in env {
      command.env(name, value);
    }
    let mut child = command
      .env("SLACK_WEBHOOK_URL", SECRET)
      .stdout(Stdio::piped())
      .stderr(Stdio::null())
      .spawn()
      .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
      .read_line(&mut line)
      .unwrap();
    let url = line
      .trim()
      .strip_prefix("drctl serve: listening on ")
      .unwrap_or_else(|| panic!("no address announced: {line:?}"))
      .trim_end_matches('/')
      .to_string();
    Server { child, url }
  }
}

impl Drop for Server {
  fn drop(&mut self) {
    // Not `support::signal`: the server may be gone already, and a drop must not panic.
    let _ = Command::new("kill")
      .args(["-TERM", &self.child.id().to_string()])
      .stderr(Stdio::null())
      .status();
    let _ = self.child.wait();
  }
}

fn chromium(profile: &Path) -> Command {
  let mut command = Command::new("chromium");
  command
    .args([
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
  command
}

/// Run Chromium to completion (at most 120 s) and return its standard output.
fn finish(mut command: Command, what: &str) -> String {
  let mut child = command.spawn().unwrap_or_else(|err| {
    panic!(
      "cannot start `chromium` ({err}): the status page tests need Debian's chromium package \
       (apt-get install -y chromium)"
    )
  });
  let start = Instant::now();
  while child.try_wait().unwrap().is_none() {
    if start.elapsed() > Duration::from_secs(120) {
      let _ = child.kill();
      let _ = child.wait();
      panic!("chromium did not finish {what} in 120 s");
    }
    std::thread::sleep(Duration::from_millis(50));
  }
  let output = child.wait_with_output().unwrap();
  assert!(
    output.status.success(),
    "chromium failed {what} ({}):\n{}",
    output.status,
    String::from_utf8_lossy(&output.stderr)
  );
  String::from_utf8_lossy(&output.stdout).into_owned()
}

fn dump_dom(url: &str) -> String {
  let profile = tempfile::tempdir().unwrap();
  let mut command = chromium(profile.path());
  command.arg("--dump-dom").arg(url);
  finish(command, &format!("loading {url}"))
}

/// The DOM after the page's scripts had `millis` of (virtual) time to run.
fn dump_dom_after_scripts(url: &str, millis: u32) -> String {
  let profile = tempfile::tempdir().unwrap();
  let mut command = chromium(profile.path());
  command
    .arg(format!("--virtual-time-budget={millis}"))
    .arg("--dump-dom")
    .arg(url);
  finish(command, &format!("loading {url}"))
}

fn screenshot(url: &str, file: &Path, height: u32) -> Vec<u8> {
  let profile = tempfile::tempdir().unwrap();
  let mut command = chromium(profile.path());
  command
    .arg(format!("--screenshot={}", file.display()))
    .arg(format!("--window-size=1280,{height}"))
    .arg(url);
  finish(command, &format!("a screenshot of {url}"));
  let png = std::fs::read(file).unwrap();
  assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", file.display());
  png
}

fn screenshots_dir() -> PathBuf {
  let dir = repo().join("target").join("screenshots");
  std::fs::create_dir_all(&dir).unwrap();
  dir
}

fn journal_lines(test: &Test, run_id: &str) -> usize {
  test.journal(run_id).lines().count()
}

#[test]
fn the_status_pages_render_in_headless_chromium_and_a_live_run_moves() {
  let test = Test::new();
  let shots = screenshots_dir();
  // Drill history for the trend chart: two runs of the quarterly drill.
  copy_drills(&test);
  for _ in 0..2 {
    let output = test
      .command(["drill", "run", "quarterly-regional-failover"])
      .env("SLACK_WEBHOOK_URL", SECRET)
      .output()
      .unwrap();
    assert!(
      matches!(output.status.code(), Some(0 | 3)),
      "{}",
      String::from_utf8_lossy(&output.stderr)
    );
  }
  let server = Server::start(&test);

  // A slow failover in another process: the live view follows its journal.
  let before = test.run_ids();
  let mut run = test
    .command([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "15",
    ])
    .env("SLACK_WEBHOOK_URL", SECRET)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
  test.wait_for(Duration::from_secs(30), "the failover's journal", || {
    test.run_ids().len() > before.len()
  });
  let run_id = test.new_run(&before);
  test.wait_for(
    Duration::from_secs(30),
    "the failover's first steps",
    || journal_lines(&test, &run_id) >= 3,
  );
  let live_url = format!("{}/runs/{run_id}", server.url);
  let first = screenshot(&live_url, &shots.join("live-run-1.png"), 1100);
  // Its lock is live: in progress on /metrics and `running` on the runs page, once the
  // background refresh (every 2 s) has seen it.
  let in_progress = "drctl_runs_in_progress{runbook=\"regional-failover\"} 1";
  let deadline = Instant::now() + Duration::from_secs(20);
  while !get(&server.url, "/metrics").1.contains(in_progress) {
    assert!(
      Instant::now() < deadline,
      "the run never showed as in progress"
    );
    std::thread::sleep(Duration::from_millis(200));
  }
  let (_, runs_page) = get(&server.url, "/");
  let row = runs_page
    .split("<tr data-run=")
    .find(|row| row.contains(&run_id))
    .unwrap_or_default();
  assert!(row.contains("status-running"), "{row}");
  let lines_then = journal_lines(&test, &run_id);
  test.wait_for(Duration::from_secs(60), "the failover to progress", || {
    journal_lines(&test, &run_id) > lines_then + 1
  });
  let second = screenshot(&live_url, &shots.join("live-run-2.png"), 1100);
  assert_ne!(
    first, second,
    "two screenshots of a live run a few seconds apart differ"
  );
  let live_dom = dump_dom(&live_url);
  assert!(live_dom.contains("<svg class=\"gantt\""), "{live_dom}");
  assert!(live_dom.contains("data-events="), "{live_dom}");

  let status = run.wait().unwrap();
  assert!(matches!(status.code(), Some(0 | 3)), "{status:?}");
  // In the browser, under the CSP, the live view's script subscribes to the event stream and
  // takes the run's end from it (it marks the page finished).
  let ended = dump_dom_after_scripts(&live_url, 5000);
  assert!(ended.contains("<body data-finished=\"true\">"), "{ended}");
  assert!(!ended.contains(">running<"), "{ended}");
  // The runs list shows it once the server's background refresh has seen it end.
  let runs_url = format!("{}/", server.url);
  let deadline = Instant::now() + Duration::from_secs(30);
  let runs_dom = loop {
    let dom = dump_dom(&runs_url);
    let row = dom
      .split("<tr data-run=")
      .find(|row| row.contains(&run_id))
      .unwrap_or_default()
      .to_string();
    if row.contains("succeeded") || row.contains("breached") || Instant::now() > deadline {
      break dom;
    }
    std::thread::sleep(Duration::from_millis(500));
  };
  assert!(runs_dom.contains(&run_id), "{runs_dom}");
  screenshot(&runs_url, &shots.join("runs.png"), 800);

  let drills_url = format!("{}/drills", server.url);
  let drills_dom = dump_dom(&drills_url);
  assert!(
    drills_dom.contains("data-drill=\"quarterly-regional-failover\""),
    "{drills_dom}"
  );
  assert!(
    drills_dom.matches("class=\"point ").count() >= 2,
    "{drills_dom}"
  );
  screenshot(&drills_url, &shots.join("drills.png"), 1000);

  // No page, and no report, shows the run's secret.
  for url in [
    runs_url.clone(),
    live_url.clone(),
    format!("{live_url}/report"),
    drills_url.clone(),
    format!("{}/metrics", server.url),
  ] {
    let dom = dump_dom(&url);
    assert!(
      !dom.contains("serve-secret-7c1d"),
      "{url} shows the secret:\n{dom}"
    );
  }
}

/// The repository's drills, into the test's directory (`drctl` reads `drills/`).
fn copy_drills(test: &Test) {
  let drills = test.path().join("drills");
  std::fs::create_dir_all(&drills).unwrap();
  for entry in std::fs::read_dir(repo().join("drills")).unwrap() {
    let entry = entry.unwrap();
    std::fs::copy(entry.path(), drills.join(entry.file_name())).unwrap();
  }
}

/// GET `path` from a server over plain HTTP/1.1: the status code and the body.
fn get(url: &str, path: &str) -> (u16, String) {
  use std::io::{Read, Write};
  let authority = url.strip_prefix("http://").unwrap();
  let mut stream = std::net::TcpStream::connect(authority).unwrap();
  stream
    .set_read_timeout(Some(Duration::from_secs(30)))
    .unwrap();
  write!(
    stream,
    "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
  )
  .unwrap();
  let mut response = String::new();
  stream.read_to_string(&mut response).unwrap();
  let status = response
    .split(' ')
    .nth(1)
    .and_then(|code| code.parse().ok())
    .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
  let body = response
    .split_once("\r\n\r\n")
    .map_or_else(String::new, |(_, body)| body.to_string());
  (status, body)
}

#[test]
fn serve_with_the_scheduler_ticks_and_reports_it_in_metrics() {
  let test = Test::new();
  copy_drills(&test);
  let mut server = Server::start_with(&test, &["--scheduler", "--jitter", "0s"]);
  let deadline = Instant::now() + Duration::from_secs(30);
  let metrics = loop {
    let (status, body) = get(&server.url, "/metrics");
    assert_eq!(status, 200, "{body}");
    if body.contains("\ndrctl_scheduler_last_tick_timestamp_seconds ") || Instant::now() > deadline
    {
      break body;
    }
    std::thread::sleep(Duration::from_millis(200));
  };
  let tick: f64 = metrics
    .lines()
    .find_map(|line| line.strip_prefix("drctl_scheduler_last_tick_timestamp_seconds "))
    .unwrap_or_else(|| panic!("no scheduler tick in\n{metrics}"))
    .parse()
    .unwrap();
  let now = std::time::SystemTime::now()
    .duration_since(std::time::UNIX_EPOCH)
    .unwrap()
    .as_secs_f64();
  assert!((now - tick).abs() < 60.0, "tick {tick}, now {now}");
  assert!(
    metrics.contains("drctl_drill_info{drill=\"quarterly-regional-failover\",runbook=\"regional-failover\",mode=\"live\"} 1"),
    "{metrics}"
  );
  // A signal stops both, the server without waiting for anything: exit 130.
  crate::support::signal(&server.child, "TERM");
  let start = Instant::now();
  let status = loop {
    if let Some(status) = server.child.try_wait().unwrap() {
      break status;
    }
    assert!(
      start.elapsed() < Duration::from_secs(30),
      "serve did not stop on SIGTERM"
    );
    std::thread::sleep(Duration::from_millis(50));
  };
  assert_eq!(status.code(), Some(130));
}

/// A server on another host's directory (nothing local) shows the runs of an `s3://` state:
/// pulled into its cache before it answers.
#[test]
fn serve_shows_the_runs_of_an_s3_state() {
  let moto = crate::support::moto::Moto::start();
  crate::support::s3::create_bucket(&moto, "drctl-serve");
  let state = "s3://drctl-serve/team";
  let writer = crate::support::s3::s3_test(&moto, &moto.endpoint);
  writer
    .run_args([
      "run",
      "regional-failover",
      "-p",
      "target_region=us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "400",
      "--state",
      state,
    ])
    .status(0);
  let reader = crate::support::s3::s3_test(&moto, &moto.endpoint);
  let server = Server::start_with(&reader, &["--state", state]);
  let (status, page) = get(&server.url, "/");
  assert_eq!(status, 200, "{page}");
  let run_id = page
    .split("href=\"/runs/")
    .nth(1)
    .and_then(|rest| rest.split('"').next())
    .unwrap_or_else(|| panic!("no run on the runs page:\n{page}"))
    .to_string();
  assert!(page.contains("status-succeeded"), "{page}");
  let (status, report) = get(&server.url, &format!("/runs/{run_id}/report"));
  assert_eq!(status, 200, "{report}");
  assert!(report.contains("regional-failover"), "{report}");
  let (_, metrics) = get(&server.url, "/metrics");
  assert!(
    metrics.contains("drctl_runs{runbook=\"regional-failover\",status=\"succeeded\"} 1"),
    "{metrics}"
  );
}

/// The person's token the approval test types into the page, and the shared one.
const CAROL_TOKEN: &str = "carol-web-token-5e1f";
const SHARED_TOKEN: &str = "shared-web-token-77aa";

#[test]
fn an_approval_clicked_on_the_live_page_releases_the_run_as_the_tokens_person() {
  use crate::support::browser::Browser;
  const LIMIT: Duration = Duration::from_secs(60);
  // The two-person rule: the shared token is no person, so its approval is refused.
  let runbook = crate::approvals::GATED.replace(
    r#"approval: { prompt: "Send traffic home?" }"#,
    r#"approval: { prompt: "Send traffic home?", distinct_from_starter: true }"#,
  );
  let digest = {
    let mut hash = Command::new("sha256sum")
      .stdin(Stdio::piped())
      .stdout(Stdio::piped())
      .spawn()
      .unwrap();
    std::io::Write::write_all(hash.stdin.as_mut().unwrap(), CAROL_TOKEN.as_bytes()).unwrap();
    let output = hash.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
  };
  let test = Test::new().file("gated.yaml", &runbook).file(
    "tokens.yaml",
    &format!("tokens:\n  - name: carol\n    token_sha256: {digest}\n"),
  );
  let tokens = test.path().join("tokens.yaml");
  {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
  }
  let (child, id) = crate::approvals::waiting_run(
    &test,
    &["run", "gated.yaml", "--sim", "--time-scale", "600"],
  );
  let server = Server::start_with_env(
    &test,
    &["--tokens", tokens.to_str().unwrap()],
    &[("DRCTL_SERVE_TOKEN", SHARED_TOKEN)],
  );
  let mut browser = Browser::start();
  browser.open(&format!("{}/runs/{id}", server.url));
  let approve = "button.control[data-action='approve'][data-step='flip-dns-home']";
  browser.wait_for_element(approve, LIMIT);
  browser.screenshot(&screenshots_dir().join("serve-approval-waiting.png"));

  // Through the shared token: submitted, but the run refuses it and keeps waiting.
  browser.type_into("#control-token", SHARED_TOKEN);
  browser.click(approve);
  browser.wait_for_text("submitted as shared token", LIMIT);
  test.wait_for(LIMIT, "the shared token's approval to be refused", || {
    test.journal(&id).contains(r#""event":"approval_refused""#)
  });
  std::thread::sleep(Duration::from_millis(500));
  assert!(!test.journal(&id).contains(r#""event":"approval_granted""#));

  // Through carol's token: granted, as carol.
  browser.type_into("#control-token", CAROL_TOKEN);
  browser.type_into("#control-reason", "dashboards green");
  browser.wait_for_element(approve, LIMIT);
  browser.click(approve);
  browser.wait_for_text("submitted as carol", LIMIT);
  let output = child.wait_with_output().unwrap();
  assert_eq!(
    output.status.code(),
    Some(0),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let journal = test.journal(&id);
  let granted = journal
    .lines()
    .find(|line| line.contains(r#""event":"approval_granted""#))
    .unwrap_or_else(|| panic!("no approval_granted: {journal}"));
  assert!(
    granted.contains(r#""by":"carol""#)
      && granted.contains(r#""via":"token""#)
      && granted.contains(r#""reason":"dashboards green""#),
    "{granted}"
  );
  let refused = journal
    .lines()
    .find(|line| line.contains(r#""event":"approval_refused""#))
    .unwrap();
  assert!(refused.contains(r#""via":"shared_token""#), "{refused}");
  // The live view takes the end from the event stream; no token shows anywhere.
  browser.wait_for_text("succeeded", LIMIT);
  browser.screenshot(&screenshots_dir().join("serve-approval-released.png"));
  let dom = browser.dom();
  for token in [CAROL_TOKEN, SHARED_TOKEN] {
    assert!(!journal.contains(token) && !dom.contains(token), "{token}");
  }
}

#[test]
fn serve_refuses_a_tokens_file_others_can_read() {
  let test = Test::new().file(
    "tokens.yaml",
    &format!(
      "tokens:\n  - name: carol\n    token_sha256: {}\n",
      "ab".repeat(32)
    ),
  );
  let tokens = test.path().join("tokens.yaml");
  {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
  }
  let output = test
    .command([
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--tokens",
      tokens.to_str().unwrap(),
    ])
    .output()
    .unwrap();
  assert_eq!(output.status.code(), Some(2), "{output:?}");
  let stderr = String::from_utf8_lossy(&output.stderr);
  assert!(
    stderr.contains("tokens.yaml") && stderr.contains("chmod 600"),
    "{stderr}"
  );
}
