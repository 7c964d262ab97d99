//! The server over a real loopback socket: pages, security headers, the live view's event
//! stream as a journal grows, `/metrics` (checked with `promtool check metrics`).

use std::{path::PathBuf, sync::Arc, time::Duration};

use super::*;
use crate::drills::HistoryEntry;
use crate::{
  report::{fixture, ApiCalls},
  state::{Journal, Redactor},
};

fn report_of(store: &Store, id: &str) -> Result<Report, String> {
  let records = store.read_journal(id).map_err(|err| err.to_string())?;
  Report::from_records(&records, ApiCalls::not_recorded(), &Redactor::default())
}

const RUN: &str = "20240301-030000-abcd";

/// A state holding the fixture's run (failed, four steps), written through the journal API.
fn state_with_fixture_run() -> (tempfile::TempDir, Store) {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::new(dir.path());
  let mut journal = Journal::create(&store.journal_path(RUN)).unwrap();
  for record in fixture::records() {
    journal.append(record.event).unwrap();
  }
  (dir, store)
}

fn repo_drills() -> Vec<Drill> {
  let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
  crate::drills::file::drill_files(&repo.join("drills"))
    .iter()
    .map(|file| {
      crate::drills::load_file(file, &repo.join("runbooks"), &crate::actions::Catalog).unwrap()
    })
    .collect()
}

fn site(store: Store, drills: Vec<Drill>) -> Site {
  Site {
    store,
    s3: None,
    drills,
    report: report_of,
    refresh_every: Duration::from_secs(3600),
    poll_every: Duration::from_millis(50),
  }
}

struct Running {
  base: String,
  port: u16,
  app: Arc<App>,
  stop: Option<tokio::sync::oneshot::Sender<()>>,
  task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
  async fn start(site: Site, bind: &str, token: Option<&str>) -> Running {
    Running::start_with_people(site, bind, token, People::default()).await
  }

  async fn start_with_people(
    site: Site,
    bind: &str,
    token: Option<&str>,
    people: People,
  ) -> Running {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let guard = Guard::with_people(bound, token.and_then(Token::new), people).unwrap();
    Running::start_guarded(site, listener, guard).await
  }

  async fn start_guarded(site: Site, listener: tokio::net::TcpListener, guard: Guard) -> Running {
    let bound = listener.local_addr().unwrap();
    let app = App::new(site);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, Arc::clone(&app), guard, async {
      let _ = stopped.await;
    }));
    // Always reached through 127.0.0.1, whatever the bind.
    let base = format!("http://127.0.0.1:{}", bound.port());
    let client = reqwest::Client::new();
    // Wait until it answers (the first refresh runs before it serves).
    for _ in 0..200 {
      if client.get(format!("{base}/healthz")).send().await.is_ok() {
        break;
      }
      tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Running {
      base,
      port: bound.port(),
      app,
      stop: Some(stop),
      task,
    }
  }

  async fn get(&self, path: &str) -> reqwest::Response {
    reqwest::Client::new()
      .get(format!("{}{path}", self.base))
      .send()
      .await
      .unwrap()
  }

  async fn stop(mut self) {
    if let Some(stop) = self.stop.take() {
      let _ = stop.send(());
    }
    tokio::time::timeout(Duration::from_secs(10), self.task)
      .await
      .expect("the server stops on shutdown, open event streams or not")
      .unwrap()
      .unwrap();
  }
}

#[tokio::test]
async fn pages_show_the_runs_the_report_and_carry_a_csp() {
  let (_dir, store) = state_with_fixture_run();
  let server = Running::start(site(store, repo_drills()), "127.0.0.1:0", None).await;

  let runs = server.get("/").await;
  assert_eq!(runs.status(), 200);
  let csp = runs.headers()["content-security-policy"]
    .to_str()
    .unwrap()
    .to_string();
  assert!(csp.contains("default-src 'none'"), "{csp}");
  assert!(csp.contains("script-src 'self'"), "{csp}");
  assert!(!csp.contains("script-src 'self' 'unsafe-inline'"), "{csp}");
  assert_eq!(runs.headers()["x-frame-options"], "DENY");
  let body = runs.text().await.unwrap();
  assert!(body.contains(&format!("href=\"/runs/{RUN}\"")), "{body}");
  for cell in [
    "regional-failover",
    "failed",
    "alice",
    "sim",
    "live",
    "not measured",
    "met",
  ] {
    assert!(body.contains(cell), "runs page lacks {cell}: {body}");
  }
  // No script at all on the runs page, and none inline anywhere.
  assert!(!body.contains("<script"), "{body}");

  let live = server
    .get(&format!("/runs/{RUN}"))
    .await
    .text()
    .await
    .unwrap();
  assert!(live.contains("<svg class=\"gantt\""), "{live}");
  assert!(live.contains("data-step=\"promote-db\""), "{live}");
  assert!(live.contains("<table class=\"steps\">"), "{live}");
  assert!(live.contains(&format!(
    "<script src=\"{}\" defer></script>",
    pages::LIVE_JS_PATH
  )));
  assert!(
    !live.contains(fixture::HOSTILE),
    "markup from the journal is escaped"
  );

  let report = server
    .get(&format!("/runs/{RUN}/report"))
    .await
    .text()
    .await
    .unwrap();
  assert_eq!(
    report,
    crate::report::html::render(&report_of(&server.app.site.store, RUN).unwrap())
  );

  let js = server.get(pages::LIVE_JS_PATH).await;
  assert!(js.headers()["content-type"]
    .to_str()
    .unwrap()
    .starts_with("text/javascript"));

  for missing in [
    "/runs/20990101-000000-0000",
    "/runs/..%2F..%2Fetc",
    "/runs/a.b/report",
    "/nope",
  ] {
    let response = server.get(missing).await;
    assert_eq!(response.status(), 404, "{missing}");
    assert!(response.headers().contains_key("content-security-policy"));
  }

  let drills = server.get("/drills").await.text().await.unwrap();
  assert!(drills.contains("quarterly-regional-failover"), "{drills}");
  assert!(drills.contains("<svg class=\"trend\""), "{drills}");
  assert!(drills.contains("never ran"), "{drills}");

  assert_eq!(server.get("/healthz").await.text().await.unwrap(), "ok\n");
  server.stop().await;
}

#[tokio::test]
async fn a_rebound_host_name_is_refused_on_a_loopback_bind() {
  let (_dir, store) = state_with_fixture_run();
  let server = Running::start(site(store, Vec::new()), "127.0.0.1:0", None).await;
  let client = reqwest::Client::new();
  let with_host = |host: String| {
    client
      .get(format!("{}/", server.base))
      .header(reqwest::header::HOST, host)
      .send()
  };
  let rebound = with_host(format!("attacker.example:{}", server.port))
    .await
    .unwrap();
  assert_eq!(rebound.status(), 421);
  assert!(rebound.headers().contains_key("content-security-policy"));
  let body = rebound.text().await.unwrap();
  assert!(!body.contains(RUN), "{body}");
  assert_eq!(
    with_host(format!("localhost:{}", server.port))
      .await
      .unwrap()
      .status(),
    200
  );
  // A POST is state-changing: refused without the token, even on loopback.
  let post = client
    .post(format!("{}/", server.base))
    .send()
    .await
    .unwrap();
  assert_eq!(post.status(), 401);
  server.stop().await;
}

#[tokio::test]
async fn beyond_loopback_the_token_is_required() {
  let (_dir, store) = state_with_fixture_run();
  // Bound on every interface, but only ever reached through 127.0.0.1.
  let server = Running::start(site(store, Vec::new()), "0.0.0.0:0", Some("tok-3f9a")).await;
  let client = reqwest::Client::new();
  for path in ["/", "/metrics", "/drills", &format!("/runs/{RUN}")] {
    let response = server.get(path).await;
    assert_eq!(response.status(), 401, "{path}");
    assert_eq!(
      response.headers()["www-authenticate"],
      "Bearer realm=\"drctl\""
    );
    let body = response.text().await.unwrap();
    assert!(!body.contains(RUN), "{body}");
    let wrong = client
      .get(format!("{}{path}", server.base))
      .bearer_auth("tok-3f9b")
      .send()
      .await
      .unwrap();
    assert_eq!(wrong.status(), 401, "{path}");
    let right = client
      .get(format!("{}{path}", server.base))
      .bearer_auth("tok-3f9a")
      .send()
      .await
      .unwrap();
    assert_eq!(right.status(), 200, "{path}");
  }
  assert_eq!(server.get("/healthz").await.status(), 200);
  let post = client
    .post(format!("{}/", server.base))
    .bearer_auth("tok-3f9a")
    .send()
    .await
    .unwrap();
  assert_eq!(post.status(), 405, "authorized, but `/` takes no POST");
  server.stop().await;
}

/// Read one server-sent event (`event:` name and joined `data:` lines).
async fn next_event(response: &mut reqwest::Response, buffer: &mut String) -> (String, String) {
  loop {
    if let Some(end) = buffer.find("\n\n") {
      let block: String = buffer.drain(..end + 2).collect();
      let mut name = String::new();
      let mut data = Vec::new();
      for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
          name = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
          data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
        }
      }
      if name.is_empty() && data.is_empty() {
        continue; // a keep-alive comment
      }
      return (name, data.join("\n"));
    }
    let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
      .await
      .expect("an event within 10 s")
      .unwrap()
      .expect("the stream stays open until the run ends");
    buffer.push_str(std::str::from_utf8(&chunk).unwrap());
  }
}

#[tokio::test]
async fn the_live_view_follows_a_journal_another_process_writes() {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::new(dir.path());
  let records = fixture::records();
  // The writer: a journal this test appends to, as a run in another process would.
  let mut journal = Journal::create(&store.journal_path(RUN)).unwrap();
  journal.append(records[0].event.clone()).unwrap();
  let server = Running::start(site(store, Vec::new()), "127.0.0.1:0", None).await;

  let mut events = server.get(&format!("/runs/{RUN}/events")).await;
  assert_eq!(events.status(), 200);
  assert!(events.headers()["content-type"]
    .to_str()
    .unwrap()
    .starts_with("text/event-stream"));
  let mut buffer = String::new();
  let (name, first) = next_event(&mut events, &mut buffer).await;
  assert_eq!(name, "update");
  assert!(first.contains(">running<"), "{first}");
  assert!(first.contains("data-step=\"verify-outage\""), "{first}");
  assert!(!first.contains(">succeeded<"), "{first}");

  // The first step starts and succeeds: the next event shows it.
  journal.append(records[1].event.clone()).unwrap();
  journal.append(records[2].event.clone()).unwrap();
  let (name, second) = next_event(&mut events, &mut buffer).await;
  assert_eq!(name, "update");
  assert_ne!(first, second);
  assert!(second.contains("<td>succeeded</td>"), "{second}");

  // The rest of the run, to its end: the stream says `done` and closes.
  for record in &records[3..] {
    journal.append(record.event.clone()).unwrap();
  }
  let mut last = next_event(&mut events, &mut buffer).await;
  while last.0 == "update" {
    last = next_event(&mut events, &mut buffer).await;
  }
  assert_eq!(last.0, "done");
  assert!(last.1.contains(">failed<"), "{}", last.1);
  let end = tokio::time::timeout(Duration::from_secs(10), events.chunk())
    .await
    .unwrap();
  assert!(
    matches!(end, Ok(None)),
    "the stream ends with the run: {end:?}"
  );
  server.stop().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_an_open_live_view() {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::new(dir.path());
  let mut journal = Journal::create(&store.journal_path(RUN)).unwrap();
  journal.append(fixture::records()[0].event.clone()).unwrap();
  let server = Running::start(site(store, Vec::new()), "127.0.0.1:0", None).await;
  let mut events = server.get(&format!("/runs/{RUN}/events")).await;
  let mut buffer = String::new();
  next_event(&mut events, &mut buffer).await;
  server.stop().await;
}

#[test]
fn a_refresh_parses_only_the_journals_that_changed() {
  let (_dir, store) = state_with_fixture_run();
  let mut journal = Journal::create(&store.journal_path("20240301-040000-0001")).unwrap();
  journal.append(fixture::records()[0].event.clone()).unwrap();
  let mut index = index::RunIndex::default();
  let snapshot = index.refresh(&store);
  assert_eq!(snapshot.runs.len(), 2);
  assert_eq!(index.parsed_last, 2);
  let again = index.refresh(&store);
  assert_eq!(index.parsed_last, 0);
  assert_eq!(again.runs, snapshot.runs);
  journal.append(fixture::records()[1].event.clone()).unwrap();
  index.refresh(&store);
  assert_eq!(index.parsed_last, 1);
}

fn history_entry(
  drill: &str,
  day: u32,
  result: &str,
  rto: Option<f64>,
  rpo: Option<f64>,
) -> HistoryEntry {
  let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, day, 6, 0, 0).unwrap();
  HistoryEntry {
    drill: drill.into(),
    run_id: format!("202601{day:02}-060000-0000"),
    trigger: "scheduler".into(),
    due: Some(at),
    started_at: at,
    finished_at: at + chrono::Duration::seconds(300),
    duration_seconds: 300.0,
    result: serde_json::from_value(serde_json::json!(result)).unwrap(),
    run_status: crate::drills::history::DrillRun::Ran(crate::state::RunStatus::Succeeded),
    mode: "live".into(),
    backend: "sim".into(),
    rto_target_seconds: Some(900.0),
    rto_achieved_seconds: rto,
    rpo_target_seconds: Some(300.0),
    rpo_achieved_seconds: rpo,
    reasons: Vec::new(),
    host: "ops-1".into(),
  }
}

/// `promtool check metrics` on `text`: its complaints, or a clear failure when it is missing.
fn promtool_check(text: &str) -> String {
  use std::io::Write as _;
  let mut child = std::process::Command::new("promtool")
    .args(["check", "metrics"])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap_or_else(|err| {
      panic!("promtool is needed to check /metrics (Debian: apt-get install -y prometheus): {err}")
    });
  child
    .stdin
    .take()
    .unwrap()
    .write_all(text.as_bytes())
    .unwrap();
  let output = child.wait_with_output().unwrap();
  assert!(
    output.status.success(),
    "promtool check metrics failed:\n{}{}\n{text}",
    String::from_utf8_lossy(&output.stdout),
    String::from_utf8_lossy(&output.stderr)
  );
  format!(
    "{}{}",
    String::from_utf8_lossy(&output.stdout),
    String::from_utf8_lossy(&output.stderr)
  )
}

#[tokio::test]
async fn metrics_name_every_drill_fact_and_pass_promtool() {
  let (dir, store) = state_with_fixture_run();
  let drills = repo_drills();
  let quarterly = "quarterly-regional-failover";
  // Passed, then failed: last passed 0, last success the first run. Another drill never ran.
  for entry in [
    history_entry(quarterly, 1, "passed", Some(400.0), Some(4.0)),
    history_entry(quarterly, 2, "breached", Some(1000.0), None),
    history_entry(quarterly, 3, "skipped", None, None),
  ] {
    crate::drills::history::append(dir.path(), &entry).unwrap();
  }
  let tick = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 4, 0, 0, 0).unwrap();
  crate::drills::scheduler::ClaimStore::Local(dir.path().to_path_buf()).record_tick(tick);
  let server = Running::start(site(store, drills), "127.0.0.1:0", None).await;
  let response = server.get("/metrics").await;
  assert_eq!(
    response.headers()["content-type"],
    "text/plain; version=0.0.4; charset=utf-8"
  );
  let text = response.text().await.unwrap();
  let lint = promtool_check(&text);
  assert!(lint.trim().is_empty(), "promtool complains: {lint}");

  let started = |day: u32| {
    chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, day, 6, 0, 0)
      .unwrap()
      .timestamp()
  };
  for line in [
    format!(
      "drctl_drill_info{{drill=\"{quarterly}\",runbook=\"regional-failover\",mode=\"live\"}} 1"
    ),
    format!(
      "drctl_drill_last_run_timestamp_seconds{{drill=\"{quarterly}\"}} {}",
      started(2)
    ),
    format!("drctl_drill_last_passed{{drill=\"{quarterly}\"}} 0"),
    format!(
      "drctl_drill_last_success_timestamp_seconds{{drill=\"{quarterly}\"}} {}",
      started(1)
    ),
    format!("drctl_drill_last_rto_achieved_seconds{{drill=\"{quarterly}\"}} 1000"),
    format!("drctl_drill_rto_target_seconds{{drill=\"{quarterly}\"}} 900"),
    format!("drctl_drill_rpo_target_seconds{{drill=\"{quarterly}\"}} 300"),
    "drctl_runs{runbook=\"regional-failover\",status=\"failed\"} 1".to_string(),
    "drctl_runs_in_progress{runbook=\"regional-failover\"} 0".to_string(),
    format!(
      "drctl_scheduler_last_tick_timestamp_seconds {}",
      tick.timestamp()
    ),
  ] {
    assert!(
      text.lines().any(|have| have == line),
      "missing `{line}` in\n{text}"
    );
  }
  // The last run's RPO was unknown: absent, never 0.
  assert!(
    !text.contains(&format!(
      "drctl_drill_last_rpo_achieved_seconds{{drill=\"{quarterly}\"}}"
    )),
    "{text}"
  );
  // A drill that never ran has its info and targets, and no run facts.
  let never = "weekly-snapshot-age";
  assert!(
    text.contains(&format!("drctl_drill_info{{drill=\"{never}\"")),
    "{text}"
  );
  for name in [
    "last_run_timestamp_seconds",
    "last_passed",
    "last_success_timestamp_seconds",
  ] {
    assert!(
      !text.contains(&format!("drctl_drill_{name}{{drill=\"{never}\"}}")),
      "{name}: {text}"
    );
  }
  // A quarterly schedule's longest gap over the next fires: 92 days (Jul-Sep, Oct-Dec).
  assert!(
    text.contains(&format!(
      "drctl_drill_expected_interval_seconds{{drill=\"{quarterly}\"}} {}",
      92 * 86_400
    )),
    "{text}"
  );
  for family in [
    "drctl_drill_info",
    "drctl_drill_last_run_timestamp_seconds",
    "drctl_drill_last_passed",
    "drctl_drill_last_success_timestamp_seconds",
    "drctl_drill_last_rto_achieved_seconds",
    "drctl_drill_rto_target_seconds",
    "drctl_drill_last_rpo_achieved_seconds",
    "drctl_drill_rpo_target_seconds",
    "drctl_drill_expected_interval_seconds",
    "drctl_runs",
    "drctl_runs_in_progress",
    "drctl_scheduler_last_tick_timestamp_seconds",
  ] {
    assert!(
      text.contains(&format!("# TYPE {family} gauge\n")),
      "{family}"
    );
    assert!(text.contains(&format!("# HELP {family} ")), "{family}");
  }
  server.stop().await;
}

#[test]
fn label_values_are_escaped_per_the_text_format() {
  assert_eq!(metrics::escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  let row = index::RunRow {
    run_id: "r1".into(),
    runbook: "odd \"name\" \\ with\nnewline".into(),
    backend: "sim".into(),
    mode: crate::state::RunMode::Live,
    status: None,
    started_at: Utc::now(),
    user: "u".into(),
    rto: crate::report::Verdict::Met,
    rpo: crate::report::Verdict::NoTarget,
  };
  let live = std::collections::HashSet::from(["r1".to_string()]);
  let text = metrics::render(&[], std::slice::from_ref(&row), &live, None);
  assert!(
    text.contains(
      "drctl_runs{runbook=\"odd \\\"name\\\" \\\\ with\\nnewline\",status=\"running\"} 1"
    ),
    "{text}"
  );
  assert!(
    text.contains("drctl_runs_in_progress{runbook=\"odd \\\"name\\\" \\\\ with\\nnewline\"} 1")
  );
  promtool_check(&text);
}

#[tokio::test]
async fn the_runs_page_is_rendered_again_only_when_the_runs_changed() {
  let (_dir, store) = state_with_fixture_run();
  let app = App::new(site(store.clone(), Vec::new()));
  app.refresh().await;
  let first = app.runs_page();
  assert!(std::str::from_utf8(&first).unwrap().contains(RUN));
  app.refresh().await;
  assert_eq!(
    app.runs_page().as_ptr(),
    first.as_ptr(),
    "nothing changed: the same page is served"
  );
  let other = "20240301-040000-0001";
  let mut journal = Journal::create(&store.journal_path(other)).unwrap();
  journal.append(fixture::records()[0].event.clone()).unwrap();
  app.refresh().await;
  let page = app.runs_page();
  let text = std::str::from_utf8(&page).unwrap();
  assert!(text.contains(other), "{text}");
  assert!(
    text.contains("status-unfinished"),
    "no live lock holds it: {text}"
  );
  // Gone again: the page follows.
  std::fs::remove_dir_all(store.run_dir(other)).unwrap();
  app.refresh().await;
  assert!(!std::str::from_utf8(&app.runs_page())
    .unwrap()
    .contains(other));
}

/// A state holding one run still going whose first step (`verify-outage`) waits for approval.
fn state_with_waiting_run() -> (tempfile::TempDir, Store) {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::new(dir.path());
  let mut journal = Journal::create(&store.journal_path(RUN)).unwrap();
  let mut started = fixture::records().remove(0).event;
  if let crate::state::Event::RunStarted { steps, .. } = &mut started {
    steps[0].approval = true;
  }
  journal.append(started).unwrap();
  journal
    .append(crate::state::Event::ApprovalRequested {
      step: "verify-outage".into(),
      prompt: "Go?".into(),
      timeout_ms: None,
      distinct_from_starter: false,
    })
    .unwrap();
  (dir, store)
}

/// The requests the run would pick up.
fn requests(store: &Store) -> Vec<crate::state::control::ControlRequest> {
  crate::state::control::read_new(&store.run_dir(RUN), &Default::default())
    .into_iter()
    .map(|received| received.content.unwrap().0)
    .collect()
}

fn people(entries: &[(&str, &str)]) -> People {
  use sha2::Digest;
  let dir = tempfile::tempdir().unwrap();
  let path = dir.path().join("tokens.yaml");
  let mut text = String::from("tokens:\n");
  for (name, token) in entries {
    let digest: String = sha2::Sha256::digest(token.as_bytes())
      .iter()
      .map(|byte| format!("{byte:02x}"))
      .collect();
    text.push_str(&format!("  - name: {name}\n    token_sha256: {digest}\n"));
  }
  std::fs::write(&path, text).unwrap();
  use std::os::unix::fs::PermissionsExt;
  std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
  People::load(&path).unwrap()
}

async fn post(server: &Running, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
  let mut request = reqwest::Client::new()
    .post(format!("{}{path}", server.base))
    .header("content-type", "application/json")
    .body(body.to_string());
  if let Some(token) = token {
    request = request.bearer_auth(token);
  }
  let response = request.send().await.unwrap();
  let status = response.status().as_u16();
  (status, response.text().await.unwrap())
}

#[tokio::test]
async fn an_approval_posted_with_a_persons_token_is_submitted_as_that_person() {
  use crate::state::control::{ControlAction, IdentityVia};
  let (_dir, store) = state_with_waiting_run();
  let server = Running::start_with_people(
    site(store.clone(), Vec::new()),
    "127.0.0.1:0",
    Some("shared-tok"),
    people(&[("carol", "carol-tok-81"), ("dave", "dave-tok-27")]),
  )
  .await;
  let approve = format!("/runs/{RUN}/approve");
  let body = r#"{"step": "verify-outage", "reason": "checked the dashboards"}"#;

  // No token, a wrong one, a token's prefix: 401, and nothing written.
  for token in [None, Some("carol-tok-8"), Some("nobody")] {
    let (status, text) = post(&server, &approve, token, body).await;
    assert_eq!(status, 401, "{token:?}: {text}");
  }
  assert!(requests(&store).is_empty());

  let (status, text) = post(&server, &approve, Some("carol-tok-81"), body).await;
  assert_eq!(status, 202, "{text}");
  assert!(text.contains("carol"), "{text}");
  assert!(!text.contains("carol-tok-81"), "{text}");
  let submitted = requests(&store);
  assert_eq!(submitted.len(), 1);
  assert_eq!(
    submitted[0].action,
    ControlAction::Approve {
      step: "verify-outage".into()
    }
  );
  assert_eq!(submitted[0].by.name, "carol");
  assert_eq!(submitted[0].by.via, IdentityVia::Token);
  assert_eq!(
    submitted[0].reason.as_deref(),
    Some("checked the dashboards")
  );

  // The shared token acts as "shared token", never as a person.
  let deny = format!("/runs/{RUN}/deny");
  let (status, text) = post(
    &server,
    &deny,
    Some("shared-tok"),
    r#"{"step": "verify-outage"}"#,
  )
  .await;
  assert_eq!(status, 202, "{text}");
  let denial = requests(&store)
    .into_iter()
    .find(|request| matches!(request.action, ControlAction::Deny { .. }))
    .unwrap();
  assert_eq!(denial.by.name, auth::SHARED_NAME);
  assert_eq!(denial.by.via, IdentityVia::SharedToken);
  assert_eq!(denial.reason, None);

  let cancel = format!("/runs/{RUN}/cancel");
  let (status, text) = post(&server, &cancel, Some("dave-tok-27"), "").await;
  assert_eq!(status, 202, "{text}");
  let cancelled = requests(&store)
    .into_iter()
    .find(|request| request.action == ControlAction::Cancel)
    .unwrap();
  assert_eq!(cancelled.by.name, "dave");
  server.stop().await;
}

#[tokio::test]
async fn control_endpoints_answer_bad_requests_plainly_and_refuse_get() {
  let (_dir, store) = state_with_waiting_run();
  let server = Running::start_with_people(
    site(store.clone(), Vec::new()),
    "127.0.0.1:0",
    None,
    people(&[("carol", "carol-tok-81")]),
  )
  .await;
  let tok = Some("carol-tok-81");
  for action in ["approve", "deny", "cancel"] {
    let response = server.get(&format!("/runs/{RUN}/{action}")).await;
    assert_eq!(response.status(), 405, "GET {action}");
  }
  let approve = format!("/runs/{RUN}/approve");
  let cases = [
    (approve.as_str(), "not json", 400),
    (approve.as_str(), r#"{"reason": "no step"}"#, 400),
    (
      approve.as_str(),
      r#"{"step": "verify-outage", "reason": "two\nlines"}"#,
      400,
    ),
    (approve.as_str(), r#"{"step": "no-such-step"}"#, 404),
    (approve.as_str(), r#"{"step": "promote-db"}"#, 409),
    (
      "/runs/20990101-000000-zzzz/approve",
      r#"{"step": "verify-outage"}"#,
      404,
    ),
    ("/runs/20990101-000000-zzzz/cancel", "", 404),
  ];
  for (path, body, expected) in cases {
    let (status, text) = post(&server, path, tok, body).await;
    assert_eq!(status, expected, "{path} {body}: {text}");
    assert!(
      !text.is_empty() && !text.contains('<'),
      "a plain message: {text}"
    );
  }
  assert!(requests(&store).is_empty());
  server.stop().await;
}

#[tokio::test]
async fn the_live_page_offers_approve_deny_and_cancel_only_where_they_apply() {
  let (_dir, store) = state_with_waiting_run();
  let server = Running::start(site(store, Vec::new()), "127.0.0.1:0", None).await;
  let page = server
    .get(&format!("/runs/{RUN}"))
    .await
    .text()
    .await
    .unwrap();
  for expected in [
    r#"data-action="approve" data-step="verify-outage""#,
    r#"data-action="deny" data-step="verify-outage""#,
    r#"data-action="cancel""#,
    r#"<input type="password" id="control-token""#,
    r#"id="control-reason""#,
  ] {
    assert!(page.contains(expected), "{expected}: {page}");
  }
  // Only the waiting step has buttons.
  assert_eq!(
    page.matches(r#"data-action="approve""#).count(),
    1,
    "{page}"
  );
  // The script reads the token from the field, keeps it in sessionStorage, sends it as a header.
  let script = server.get(pages::LIVE_JS_PATH).await.text().await.unwrap();
  for expected in [
    "sessionStorage",
    "\"Authorization\": \"Bearer \"",
    "method: \"POST\"",
  ] {
    assert!(script.contains(expected), "{expected}");
  }
  server.stop().await;

  // A run that has ended offers nothing to press.
  let (_dir, store) = state_with_fixture_run();
  let server = Running::start(site(store, Vec::new()), "127.0.0.1:0", None).await;
  let page = server
    .get(&format!("/runs/{RUN}"))
    .await
    .text()
    .await
    .unwrap();
  assert!(!page.contains("class=\"control\""), "{page}");
  server.stop().await;
}

#[tokio::test]
async fn a_step_waiting_for_approval_is_not_counted_as_done() {
  let (_dir, store) = state_with_waiting_run();
  let server = Running::start(site(store, Vec::new()), "127.0.0.1:0", None).await;
  let page = server
    .get(&format!("/runs/{RUN}"))
    .await
    .text()
    .await
    .unwrap();
  assert!(page.contains("0 step(s) done of 4"), "{page}");
  server.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_its_user_header_names_who_approves() {
  use crate::state::control::IdentityVia;
  let (_dir, store) = state_with_waiting_run();
  let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
  let guard = Guard::new(listener.local_addr().unwrap(), Token::new("proxy-tok"))
    .unwrap()
    .with_proxy_header("x-forwarded-user")
    .unwrap();
  let server = Running::start_guarded(site(store.clone(), Vec::new()), listener, guard).await;
  let approve = |headers: &[(&str, &str)]| {
    let mut request = reqwest::Client::new()
      .post(format!("{}/runs/{RUN}/approve", server.base))
      .body(r#"{"step": "verify-outage"}"#);
    for (name, value) in headers {
      request = request.header(*name, *value);
    }
    request.send()
  };
  // The header alone is no identity.
  let refused = approve(&[("x-forwarded-user", "erin")]).await.unwrap();
  assert_eq!(refused.status(), 401);
  assert!(requests(&store).is_empty());
  let accepted = approve(&[
    ("authorization", "Bearer proxy-tok"),
    ("x-forwarded-user", "erin"),
  ])
  .await
  .unwrap();
  assert_eq!(accepted.status(), 202);
  let submitted = requests(&store);
  assert_eq!(submitted.len(), 1);
  assert_eq!(submitted[0].by.name, "erin");
  assert_eq!(submitted[0].by.via, IdentityVia::ProxyHeader);
  server.stop().await;
}
