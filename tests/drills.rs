//! Drills through the real binary: `drctl drill list`, `drill run`, `drill history`,
//! `scheduler --once`.

use crate::support::{capture::Capture, repo, s3::create_bucket, Test};

/// A test directory with the shipped runbooks and drills.
fn with_drills() -> Test {
  let mut test = Test::new();
  for entry in std::fs::read_dir(repo().join("drills")).unwrap() {
    let entry = entry.unwrap();
    let contents = std::fs::read_to_string(entry.path()).unwrap();
    let name = format!("drills/{}", entry.file_name().to_string_lossy());
    test = test.file(&name, &contents);
  }
  test
}

#[test]
fn list_shows_the_shipped_drills_with_next_fire_times() {
  let output = with_drills().args(["drill", "list"]).run();
  let stdout = output.stdout();
  assert_eq!(output.code(), 0, "{stdout}{}", output.stderr());
  for name in [
    "quarterly-regional-failover",
    "monthly-backup-restore",
    "weekly-snapshot-age",
  ] {
    assert!(stdout.contains(name), "{stdout}");
  }
  assert!(stdout.contains("Europe/Berlin"), "{stdout}");
  let output = with_drills()
    .args(["drill", "list", "--output", "json"])
    .run();
  let rows: serde_json::Value = serde_json::from_str(&output.stdout()).unwrap();
  let rows = rows.as_array().unwrap();
  assert_eq!(rows.len(), 3);
  for row in rows {
    assert!(row["next_fire_utc"].as_str().unwrap().ends_with("+00:00"));
    assert!(row["next_fire_local"].is_string());
  }
  let quarterly = rows
    .iter()
    .find(|row| row["name"] == "quarterly-regional-failover")
    .unwrap();
  let next = quarterly["next_fire_utc"].as_str().unwrap();
  assert!(next.contains("-01T00:00:00"), "{next}");
}

#[test]
fn run_records_history_with_rto_and_rpo_against_targets() {
  let test = with_drills();
  let output = test.run_args(["drill", "run", "quarterly-regional-failover"]);
  let stdout = output.stdout();
  assert_eq!(output.code(), 0, "{stdout}{}", output.stderr());
  assert!(
    stdout.contains("drill quarterly-regional-failover: passed"),
    "{stdout}"
  );
  let history = test
    .path()
    .join(".drctl/drills/quarterly-regional-failover/history.jsonl");
  let text = std::fs::read_to_string(&history).unwrap();
  let entry: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
  assert_eq!(entry["result"], "passed");
  assert_eq!(entry["rto_target_seconds"], 900.0);
  assert!(entry["rto_achieved_seconds"].as_f64().unwrap() > 0.0);
  let run_id = entry["run_id"].as_str().unwrap();
  assert!(test
    .path()
    .join(format!(
      ".drctl/drills/quarterly-regional-failover/runs/{run_id}/summary.json"
    ))
    .exists());

  let output = test.run_args(["drill", "history"]);
  let stdout = output.stdout();
  assert_eq!(output.code(), 0, "{stdout}{}", output.stderr());
  assert!(stdout.contains("quarterly-regional-failover"), "{stdout}");
  assert!(stdout.contains("passed"), "{stdout}");
  assert!(stdout.contains("(15m)"), "{stdout}");
  assert!(stdout.contains("(5m)"), "{stdout}");
  // Measured times read like the run summary's (`6m14s`, `9.4s`), not to the nanosecond.
  let row = stdout.lines().find(|line| line.contains("passed")).unwrap();
  let words: Vec<&str> = row.split_whitespace().collect();
  let rto = words[3];
  assert!(
    rto.len() <= 6 && rto.ends_with('s') && !rto.contains('.'),
    "RTO achieved `{rto}` in {row}"
  );
  let duration = words[7];
  assert!(
    duration.len() <= 6 && duration.ends_with('s'),
    "duration `{duration}` in {row}"
  );
  assert!(stdout.contains("no runs yet"), "{stdout}");

  let output = test.run_args([
    "drill",
    "history",
    "quarterly-regional-failover",
    "--output",
    "json",
  ]);
  let rows: serde_json::Value = serde_json::from_str(&output.stdout()).unwrap();
  assert_eq!(rows.as_array().unwrap().len(), 1);
  assert_eq!(rows[0]["entry"]["run_id"], run_id);
}

#[test]
fn scheduler_once_fires_nothing_on_first_sight_and_exits() {
  let test = with_drills();
  let output = test.run_args(["scheduler", "--once", "--jitter", "0s"]);
  assert_eq!(output.code(), 0, "{}", output.stderr());
  assert!(test
    .path()
    .join(".drctl/drills/weekly-snapshot-age/since")
    .exists());
}

#[test]
fn invalid_drills_are_usage_errors() {
  let output = with_drills()
    .file(
      "drills/bad.yaml",
      "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: bad }\nrunbook: nope\nschedule: \"61 * * * *\"\n",
    )
    .args(["drill", "list"])
    .run();
  assert_eq!(output.code(), 2);
  let stderr = output.stderr();
  assert!(stderr.contains("drills/bad.yaml:4:10"), "{stderr}");
  assert!(stderr.contains("drills/bad.yaml:5:12"), "{stderr}");
}

/// A drill of `regional-failover` on the simulator with RTO target `rto` and one webhook
/// notification to `url` on `on`.
fn notifying_drill(rto: &str, on: &str, url: &str) -> Test {
  Test::new().file(
    "drills/notify-drill.yaml",
    &format!(
      "apiVersion: drctl/v1\nkind: Drill\nmetadata: {{ name: notify-drill }}\n\
       runbook: regional-failover\nparams: {{ target_region: us-west-2 }}\n\
       schedule: \"@quarterly\"\nmode: live\ntarget: {{ backend: sim }}\n\
       pass: {{ rto: {rto} }}\n\
       notify:\n  - kind: webhook\n    on: [{on}]\n    with: {{ url: \"{url}\" }}\n"
    ),
  )
}

fn notify_json(test: &Test, run_id: &str) -> serde_json::Value {
  let path = test.path().join(format!(
    ".drctl/drills/notify-drill/runs/{run_id}/notify.json"
  ));
  serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn last_entry(test: &Test) -> serde_json::Value {
  let history = test.path().join(".drctl/drills/notify-drill/history.jsonl");
  let text = std::fs::read_to_string(history).unwrap();
  serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

#[test]
fn a_breached_drill_posts_its_history_entry_once() {
  let capture = Capture::start(&[]);
  let test = notifying_drill("1m", "breach", &capture.url("/hook"));
  let output = test.run_args(["drill", "run", "notify-drill"]);
  let stderr = output.stderr();
  assert_eq!(output.code(), 3, "{}{stderr}", output.stdout());
  let seen = capture.seen();
  assert_eq!(seen.len(), 1, "{seen:?}");
  assert_eq!(seen[0].method, "POST");
  assert_eq!(seen[0].path, "/hook");
  let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
  assert_eq!(body["result"], "breached");
  assert_eq!(body["drill"], "notify-drill");
  let entry = last_entry(&test);
  assert_eq!(body, entry);
  let notify = notify_json(&test, entry["run_id"].as_str().unwrap());
  assert_eq!(notify["event"], "breach");
  assert_eq!(notify["sent"][0]["outcome"], "sent", "{notify}");
  assert_eq!(notify["sent"][0]["attempts"], 1);
  assert!(
    stderr.contains("webhook notification sent to http://127.0.0.1:"),
    "{stderr}"
  );
}

#[test]
fn a_passing_drill_sends_nothing_on_breach() {
  let capture = Capture::start(&[]);
  let test = notifying_drill("15m", "breach", &capture.url("/hook"));
  let output = test.run_args(["drill", "run", "notify-drill"]);
  assert_eq!(output.code(), 0, "{}{}", output.stdout(), output.stderr());
  assert_eq!(last_entry(&test)["result"], "passed");
  assert!(capture.seen().is_empty(), "{:?}", capture.seen());
}

#[test]
fn a_failing_notification_is_retried_reported_by_host_and_keeps_the_verdict() {
  let capture = Capture::start(&[503, 503, 503]);
  let test = notifying_drill("1m", "breach, failure", "${{ secrets.DRILL_HOOK }}")
    .env("DRILL_HOOK", &capture.url("/hook/very-secret-token"));
  let output = test.run_args(["drill", "run", "notify-drill"]);
  let stderr = output.stderr();
  assert_eq!(output.code(), 3, "{}{stderr}", output.stdout());
  assert_eq!(capture.seen().len(), 3);
  assert!(
    stderr.contains("notification to http://127.0.0.1:"),
    "{stderr}"
  );
  assert!(stderr.contains("answered 503"), "{stderr}");
  assert!(!stderr.contains("very-secret-token"), "{stderr}");
  let entry = last_entry(&test);
  assert_eq!(entry["result"], "breached");
  let notify = notify_json(&test, entry["run_id"].as_str().unwrap());
  assert_eq!(notify["sent"][0]["outcome"], "failed", "{notify}");
  assert_eq!(notify["sent"][0]["attempts"], 3);
  assert!(
    !notify.to_string().contains("very-secret-token"),
    "{notify}"
  );
}

/// `notify-drill` with a Slack and a PagerDuty notification on breach, both to `capture`.
fn slack_and_pagerduty_drill(capture: &Capture) -> Test {
  Test::new()
    .file(
      "drills/notify-drill.yaml",
      &format!(
        "apiVersion: drctl/v1\nkind: Drill\nmetadata: {{ name: notify-drill }}\n\
         runbook: regional-failover\nparams: {{ target_region: us-west-2 }}\n\
         schedule: \"@quarterly\"\nmode: live\ntarget: {{ backend: sim }}\n\
         pass: {{ rto: 1m }}\nreports: [md, html]\n\
         notify:\n\
         \x20 - kind: slack\n    on: [breach]\n    with: {{ webhook: \"${{{{ secrets.SLACK_HOOK }}}}\" }}\n\
         \x20 - kind: pagerduty\n    on: [breach, failure]\n    with: {{ routing_key: \"${{{{ secrets.PD_KEY }}}}\", url: \"{pd}\" }}\n",
        pd = capture.url("/v2/enqueue"),
      ),
    )
    .env("SLACK_HOOK", &capture.url("/services/T0/B0/secret"))
    .env("PD_KEY", "pd-routing-key")
}

#[test]
fn a_breached_drill_sends_exact_slack_and_pagerduty_payloads() {
  let capture = Capture::start(&[]);
  let test = slack_and_pagerduty_drill(&capture);
  let output = test.run_args(["drill", "run", "notify-drill"]);
  let stderr = output.stderr();
  assert_eq!(output.code(), 3, "{}{stderr}", output.stdout());
  let entry = last_entry(&test);
  assert_eq!(entry["result"], "breached");
  let run_id = entry["run_id"].as_str().unwrap();
  let achieved = entry["rto_achieved_seconds"].as_f64().unwrap();
  let achieved = drctl::runbook::format_duration(std::time::Duration::from_secs_f64(achieved));
  let reasons: Vec<&str> = entry["reasons"]
    .as_array()
    .unwrap()
    .iter()
    .map(|reason| reason.as_str().unwrap())
    .collect();
  assert!(!reasons.is_empty(), "{entry}");
  let text = format!("Drill notify-drill: breached ({})", reasons.join("; "));
  let report = format!(".drctl/drills/notify-drill/runs/{run_id}/report.html");
  assert!(test.path().join(&report).exists(), "{report}");

  let seen = capture.seen();
  assert_eq!(seen.len(), 2, "{seen:#?}");
  assert_eq!(seen[0].path, "/services/T0/B0/secret");
  assert_eq!(seen[0].headers["content-type"], "application/json");
  assert_eq!(
    seen[0].body,
    format!(
      r#"{{"blocks":[{{"text":{{"emoji":true,"text":"⚠️ breached — regional-failover","type":"plain_text"}},"type":"header"}},{{"text":{{"text":"{text}","type":"mrkdwn"}},"type":"section"}},{{"fields":[{{"text":"*Runbook*\nregional-failover","type":"mrkdwn"}},{{"text":"*Region*\nus-west-2","type":"mrkdwn"}},{{"text":"*RTO*\n{achieved} of 1m target","type":"mrkdwn"}},{{"text":"*Report*\n`{report}`","type":"mrkdwn"}}],"type":"section"}},{{"elements":[{{"text":"drctl run `{run_id}` · step `notify-slack`","type":"mrkdwn"}}],"type":"context"}}],"text":"{text}"}}"#
    )
  );
  assert_eq!(seen[1].path, "/v2/enqueue");
  // custom_details is the history entry itself, serialized as drctl wrote it.
  assert_eq!(
    seen[1].body,
    format!(
      r#"{{"client":"drctl","dedup_key":"drctl-drill/notify-drill/{run_id}","event_action":"trigger","payload":{{"custom_details":{entry},"severity":"error","source":"drctl drill notify-drill","summary":"{text}"}},"routing_key":"pd-routing-key"}}"#
    )
  );
  // The routing key and the webhook path are secrets: not in the history, reports or output.
  let notify = notify_json(&test, run_id).to_string();
  for secret in ["pd-routing-key", "/B0/secret"] {
    assert!(!notify.contains(secret), "{notify}");
    assert!(!stderr.contains(secret) && !output.stdout().contains(secret));
  }
  assert_eq!(
    notify_json(&test, run_id)["sent"][1]["outputs"]["dedup_key"],
    format!("drctl-drill/notify-drill/{run_id}")
  );
}

// --- Schedulers sharing an `s3://` state (moto) ---------------------------------------------

const S3_STATE: &str = "s3://drctl-drills/team";

/// A quick drill (a 1s sleep on the simulator) fired `@quarterly`.
const TICK_RUNBOOK: &str = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: tick }\n\
  objectives: { rto: 15m }\nsteps:\n  - id: tick\n    action: wait.sleep\n    with: { duration: 1s }\n";
const TICK_DRILL: &str = "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: tick-drill }\n\
  runbook: tick\nschedule: \"@quarterly\"\nmode: live\ntarget: { backend: sim }\nreports: [json]\n";

/// A scheduler replica: its own working directory (its own local cache), moto for the state.
fn replica(moto: &crate::support::moto::Moto) -> Test {
  let mut test = Test::new()
    .file("runbooks/tick.yaml", TICK_RUNBOOK)
    .file("drills/tick-drill.yaml", TICK_DRILL);
  for (key, value) in moto.env() {
    test = test.env(&key, &value);
  }
  test
}

fn scheduler_once(now: &str) -> Vec<String> {
  [
    "scheduler",
    "--once",
    "--jitter",
    "0s",
    "--now",
    now,
    "--state",
    S3_STATE,
  ]
  .map(String::from)
  .to_vec()
}

#[test]
fn two_schedulers_on_one_s3_state_fire_a_quarterly_drill_once_per_quarter_over_a_year() {
  let moto = crate::support::moto::Moto::start();
  create_bucket(&moto, "drctl-drills");
  let replicas = [replica(&moto), replica(&moto)];
  // First sight: each replica starts counting from mid-December; nothing is due yet.
  for test in &replicas {
    let run = test
      .run_args(scheduler_once("2026-12-15T00:00:00Z"))
      .status(0);
    assert!(!run.stdout().contains("fired"), "{}", run.stdout());
  }
  let mut fired = Vec::new();
  let mut claimed = Vec::new();
  // A simulated year, one tick a month; both replicas wake at the same instant and race.
  for month in 1..=12 {
    let now = format!("2027-{month:02}-15T00:00:00Z");
    let children: Vec<_> = replicas
      .iter()
      .map(|test| test.spawn(scheduler_once(&now)))
      .collect();
    for child in children {
      let output = child.wait_with_output().unwrap();
      let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
      assert_eq!(
        output.status.code(),
        Some(0),
        "{now}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
      );
      for line in stdout.lines() {
        if line.starts_with("fired tick-drill") {
          fired.push(line.to_string());
        } else if line.starts_with("skipped tick-drill") {
          claimed.push(line.to_string());
        }
      }
    }
  }
  let dues = |lines: &[String]| -> Vec<String> {
    let mut dues: Vec<String> = lines
      .iter()
      .map(|line| {
        line
          .split("(due ")
          .nth(1)
          .unwrap()
          .split(')')
          .next()
          .unwrap()
          .to_string()
      })
      .collect();
    dues.sort();
    dues
  };
  let quarters: Vec<String> = ["01", "04", "07", "10"]
    .iter()
    .map(|month| format!("2027-{month}-01 00:00:00 UTC"))
    .collect();
  assert_eq!(dues(&fired), quarters, "fired: {fired:#?}");
  // The other replica saw the same due times and found them claimed.
  assert_eq!(dues(&claimed), quarters, "claimed: {claimed:#?}");
  for line in &fired {
    assert!(line.ends_with("exit 0"), "{line}");
  }

  // A third machine reads the whole history from the bucket.
  let reader = replica(&moto);
  let run = reader
    .run_args([
      "drill",
      "history",
      "tick-drill",
      "--state",
      S3_STATE,
      "--output",
      "json",
    ])
    .status(0);
  let rows: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
  let mut history_dues: Vec<String> = rows
    .as_array()
    .unwrap()
    .iter()
    .map(|row| {
      assert_eq!(row["entry"]["result"], "passed", "{row}");
      assert_eq!(row["entry"]["trigger"], "scheduler", "{row}");
      row["entry"]["due"].as_str().unwrap().to_string()
    })
    .collect();
  history_dues.sort();
  assert_eq!(
    history_dues,
    ["01", "04", "07", "10"].map(|month| format!("2027-{month}-01T00:00:00Z")),
    "{rows:#}"
  );
  let text = reader
    .run_args(["drill", "history", "tick-drill", "--state", S3_STATE])
    .status(0)
    .stdout();
  assert_eq!(text.matches("passed").count(), 4, "{text}");
}

/// The shipped weekly drill with its target on `backend`.
fn weekly_on(backend: &str) -> Test {
  let drill = std::fs::read_to_string(repo().join("drills/weekly-snapshot-age.yaml"))
    .unwrap()
    .replace(
      "  backend: sim\n",
      &format!("  backend: {backend}\n  region: us-east-1\n"),
    );
  Test::new().file("drills/weekly-snapshot-age.yaml", &drill)
}

#[test]
fn a_backend_flag_less_safe_than_the_drill_file_is_refused() {
  for (target, flag) in [("sim", "--sandbox"), ("sim", "--aws"), ("sandbox", "--aws")] {
    let output = weekly_on(target).run_args(["drill", "run", "weekly-snapshot-age", flag]);
    assert_eq!(output.code(), 2, "{target} {flag}: {}", output.stdout());
    let backend = flag.trim_start_matches("--");
    assert_eq!(
      output.stderr(),
      format!(
        "error: drill weekly-snapshot-age targets {target} in its file; {flag} would run it on \
         {backend}, which is less safe: change the drill file's target to do that\n"
      )
    );
    assert!(!output.stdout().contains("passed"), "{}", output.stdout());
  }
}

#[test]
fn a_backend_flag_may_move_a_drill_to_a_safer_backend_and_says_so() {
  let test = weekly_on("aws");
  let output = test.run_args(["drill", "run", "weekly-snapshot-age", "--sim"]);
  let stdout = output.stdout();
  assert_eq!(output.code(), 0, "{stdout}{}", output.stderr());
  assert!(
    stdout.starts_with(
      "drill weekly-snapshot-age: targets aws in its file; running on sim, as --sim asks\n"
    ),
    "{stdout}"
  );
  assert!(
    stdout.contains("drill weekly-snapshot-age: passed"),
    "{stdout}"
  );
  let history = std::fs::read_to_string(
    test
      .path()
      .join(".drctl/drills/weekly-snapshot-age/history.jsonl"),
  )
  .unwrap();
  assert!(history.contains(r#""backend":"sim""#), "{history}");
}

#[test]
fn time_scale_on_a_drill_that_does_not_run_on_the_simulator_is_refused() {
  let output =
    weekly_on("aws").run_args(["drill", "run", "weekly-snapshot-age", "--time-scale", "10"]);
  assert_eq!(output.code(), 2, "{}", output.stdout());
  assert_eq!(
    output.stderr(),
    "error: --time-scale sets the simulator's speed, and drill weekly-snapshot-age runs on aws\n"
  );
}

#[test]
fn drill_history_with_absurd_durations_is_shown_not_a_panic() {
  // A history file is state anyone with access can edit; a value no `Duration` holds must not
  // take `drill history` down.
  let test = with_drills();
  test
    .run_args(["drill", "run", "weekly-snapshot-age"])
    .status(0);
  let history = test
    .path()
    .join(".drctl/drills/weekly-snapshot-age/history.jsonl");
  let text = std::fs::read_to_string(&history).unwrap();
  let mut entry: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
  entry["duration_seconds"] = serde_json::json!(1e300);
  entry["rpo_achieved_seconds"] = serde_json::json!(1e300);
  entry["rpo_target_seconds"] = serde_json::json!(1e300);
  std::fs::write(&history, format!("{entry}\n")).unwrap();
  let output = test.run_args(["drill", "history", "weekly-snapshot-age"]);
  assert_eq!(output.code(), 0, "{}{}", output.stdout(), output.stderr());
  assert!(
    output.stdout().contains("weekly-snapshot-age"),
    "{}",
    output.stdout()
  );
}
