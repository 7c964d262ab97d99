//! `drctl report`: a failover on the simulator, rendered in every format; and the HTML report
//! rendered by headless Chromium.

use std::{
  path::Path,
  process::{Command, Stdio},
  time::{Duration, Instant},
};

use crate::support::Test;

/// A finished failover on the simulator; returns the run id.
fn failover(test: &Test) -> String {
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "400",
    ])
    .status(0);
  test.run_ids().pop().expect("a run")
}

/// The step ids of a run, from `drctl status`.
fn step_ids(test: &Test, run_id: &str) -> Vec<String> {
  test.status_json(run_id)["timeline"]["steps"]
    .as_array()
    .unwrap()
    .iter()
    .map(|step| step["id"].as_str().unwrap().to_string())
    .collect()
}

/// `<rect ...>` start tags that carry a `data-step` attribute.
fn step_bars(markup: &str) -> Vec<String> {
  markup
    .split("<rect")
    .skip(1)
    .filter_map(|rest| rest.split('>').next())
    .filter(|tag| tag.contains("data-step="))
    .map(str::to_string)
    .collect()
}

fn read(path: &Path) -> String {
  std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn report_renders_a_failover_in_every_format() {
  let test = Test::new();
  let run_id = failover(&test);
  let steps = step_ids(&test, &run_id);
  assert!(steps.len() >= 4, "{steps:?}");
  // A unique prefix names the run.
  let prefix = &run_id[..run_id.len() - 2];
  let reports = test.path().join("reports");
  for format in ["json", "md", "junit", "html"] {
    let file = reports.join(format!("run.{format}"));
    let run = test
      .run_args([
        "report",
        prefix,
        "--format",
        format,
        "-o",
        file.to_str().unwrap(),
      ])
      .status(0);
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    assert!(run.stderr().contains("written to"), "{}", run.stderr());
  }

  let json: serde_json::Value = serde_json::from_str(&read(&reports.join("run.json"))).unwrap();
  assert_eq!(json["schema"], "drctl.report/v1");
  assert_eq!(json["run_id"], run_id.as_str());
  assert_eq!(json["runbook"], "regional-failover");
  assert_eq!(json["status"], "succeeded");
  assert_eq!(json["mode"], "live");
  assert_eq!(json["backend"], "sim");
  assert_eq!(json["params"]["target_region"], "us-west-2");
  assert!(!json["user"].as_str().unwrap().is_empty());
  assert!(!json["host"].as_str().unwrap().is_empty());
  assert!(json["finished_at"].is_string());
  let ids: Vec<&str> = json["steps"]
    .as_array()
    .unwrap()
    .iter()
    .map(|step| step["id"].as_str().unwrap())
    .collect();
  assert_eq!(ids, steps);
  let promote = json["steps"]
    .as_array()
    .unwrap()
    .iter()
    .find(|step| step["id"] == "promote-db")
    .unwrap();
  assert_eq!(promote["outcome"], "succeeded");
  assert_eq!(promote["attempts"], 1);
  assert!(promote["duration_seconds"].as_f64().unwrap() >= 300.0);
  assert_eq!(json["objectives"][0]["name"], "RTO");
  assert_eq!(json["objectives"][0]["target_seconds"], 900.0);
  assert_eq!(json["objectives"][0]["verdict"], "met");
  assert_eq!(json["objectives"][1]["name"], "RPO");
  assert_eq!(json["objectives"][1]["achieved_seconds"], 4.0);
  assert_eq!(json["objectives"][1]["verdict"], "met");
  assert!(json["critical_path"]
    .as_array()
    .unwrap()
    .contains(&"promote-db".into()));
  assert_eq!(json["api_calls"]["recorded"], true);
  assert_eq!(json["api_calls"]["by_operation"]["PromoteReadReplica"], 1);
  // The standby scaled up, and the old primary fenced (scaled to zero).
  assert_eq!(json["api_calls"]["by_operation"]["UpdateService"], 2);
  assert_eq!(
    json["api_calls"]["by_operation"]["ChangeResourceRecordSets"],
    1
  );

  let md = read(&reports.join("run.md"));
  assert!(
    md.starts_with("# Run report: regional-failover — SUCCEEDED"),
    "{md}"
  );
  assert!(md.contains("| RTO | 15m |"), "{md}");
  assert!(md.contains("| RPO | 5m | 4s | met |"), "{md}");
  assert!(md.contains("| PromoteReadReplica | 1 |"), "{md}");
  assert!(md.contains("| target\\_region | us-west-2 |"), "{md}");
  for id in &steps {
    assert!(
      md.contains(&format!("| {id} |")) || md.contains(&format!("| **{id}** |")),
      "{id}\n{md}"
    );
  }

  let junit = read(&reports.join("run.junit"));
  assert!(junit.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
  assert_eq!(junit.matches("<testsuite ").count(), 1, "{junit}");
  assert_eq!(
    junit.matches("<testcase ").count(),
    steps.len() + 2,
    "{junit}"
  );
  assert!(junit.contains("failures=\"0\""), "{junit}");
  assert!(
    junit.contains("<testcase name=\"RTO\" classname=\"drctl.regional-failover.objectives\""),
    "{junit}"
  );
  assert!(!junit.contains("<failure"), "{junit}");

  let html = read(&reports.join("run.html"));
  assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
  assert_eq!(step_bars(&html).len(), steps.len(), "{html}");
  assert!(html.contains("<line class=\"rto\""), "{html}");
  assert!(html.contains("RTO target 15m"), "{html}");
  assert!(step_bars(&html)
    .iter()
    .any(|bar| bar.contains("critical") && bar.contains("data-step=\"promote-db\"")));

  // Markdown on stdout by default.
  let run = test.run_args(["report", &run_id]).status(0);
  assert_eq!(run.stdout(), md);
}

#[test]
fn report_of_an_unknown_run_is_a_usage_error() {
  let test = Test::new();
  let run = test.run_args(["report", "nope"]).status(2);
  assert!(run.stderr().contains("no run `nope`"), "{}", run.stderr());
}

/// Render a page with headless Chromium and return its DOM after load.
fn chromium_dump_dom(page: &Path, profile: &Path) -> String {
  let mut child = Command::new("chromium")
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
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg("--dump-dom")
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap_or_else(|err| {
      panic!(
        "cannot start `chromium` ({err}): the HTML report test needs Debian's chromium package; \
         `.ci/test` installs it (apt-get install -y chromium)"
      )
    });
  let start = Instant::now();
  loop {
    if child.try_wait().expect("chromium's status").is_some() {
      break;
    }
    if start.elapsed() > Duration::from_secs(120) {
      let _ = child.kill();
      let _ = child.wait();
      panic!(
        "chromium did not finish rendering {} in 120s",
        page.display()
      );
    }
    std::thread::sleep(Duration::from_millis(50));
  }
  let output = child.wait_with_output().expect("chromium's output");
  let dom = String::from_utf8_lossy(&output.stdout).into_owned();
  assert!(
    output.status.success() && !dom.is_empty(),
    "chromium failed ({}):\n{}",
    output.status,
    String::from_utf8_lossy(&output.stderr)
  );
  dom
}

#[test]
fn html_report_renders_in_headless_chromium_with_one_bar_per_step() {
  let test = Test::new();
  let run_id = failover(&test);
  let steps = step_ids(&test, &run_id);
  let page = test.path().join("report.html");
  test
    .run_args([
      "report",
      &run_id,
      "--format",
      "html",
      "-o",
      page.to_str().unwrap(),
    ])
    .status(0);
  let profile = tempfile::tempdir().unwrap();
  let dom = chromium_dump_dom(&page, profile.path());
  let bars = step_bars(&dom);
  assert_eq!(bars.len(), steps.len(), "one bar per step in\n{dom}");
  for id in &steps {
    assert_eq!(
      bars
        .iter()
        .filter(|bar| bar.contains(&format!("data-step=\"{id}\"")))
        .count(),
      1,
      "bar of {id}"
    );
  }
  assert!(dom.contains("class=\"rto\""), "the RTO line\n{dom}");
  assert!(dom.contains("RTO target 15m"), "{dom}");
}
