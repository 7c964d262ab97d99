//! Who ran it: the journal's `run_started` and every report name the operating-system account
//! and the backend's caller identity (STS `GetCallerIdentity` on AWS, tested on moto; the
//! simulator's stand-in otherwise).

use drctl::cloud::aws;
use serde_json::Value;

use crate::support::{moto::Moto, Test};

/// The account the tests run as, by the system's own tool.
fn whoami() -> String {
  let output = std::process::Command::new("id")
    .arg("-un")
    .output()
    .unwrap();
  String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn run_started(test: &Test) -> Value {
  let id = test.run_ids().pop().expect("a run");
  let journal = test.journal(&id);
  let first = journal.lines().next().expect("a journal record");
  let record: Value = serde_json::from_str(first).unwrap();
  assert_eq!(record["event"], "run_started", "{record}");
  record
}

#[tokio::test]
async fn caller_identity_comes_from_sts_on_moto() {
  let moto = Moto::start();
  let identity = aws::caller_identity(&moto.settings()).await.unwrap();
  assert_eq!(identity.account, "123456789012");
  assert!(
    identity.arn.starts_with("arn:aws:") && identity.arn.contains(":123456789012:"),
    "{identity:?}"
  );
}

/// With `$USER` and `$LOGNAME` unset (cron, systemd units), the journal still names the account,
/// and the simulator's stand-in identity; the report shows both, its times to the second.
#[test]
fn a_run_records_the_os_user_and_the_simulated_identity() {
  let test = Test::new();
  let mut command = test.command(["run", "runbooks/snapshot-age.yaml", "--yes"]);
  command.env_remove("USER").env_remove("LOGNAME");
  let output = command.output().unwrap();
  assert!(
    output.status.success(),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let event = run_started(&test);
  let user = whoami();
  assert_eq!(event["user"], user.as_str(), "{event}");
  assert_eq!(event["caller"]["account"], "000000000000", "{event}");
  assert_eq!(
    event["caller"]["arn"],
    "arn:aws:iam::000000000000:user/drctl-simulator"
  );
  let id = test.run_ids().pop().unwrap();
  let report = test
    .run_args(["report", &id, "--format", "md"])
    .status(0)
    .stdout();
  assert!(report.contains(&format!("| User | {user} |")), "{report}");
  assert!(
    report.contains(
      "| Cloud identity | arn:aws:iam::000000000000:user/drctl-simulator (account 000000000000) |"
    ),
    "{report}"
  );
  let started = report
    .lines()
    .find(|line| line.starts_with("| Started |"))
    .unwrap_or_default();
  // `| Started | 2026-12-01T20:00:00+00:00 |`: no fraction of a second.
  assert!(
    started.len() == "| Started | 2026-12-01T20:00:00+00:00 |".len() && !started.contains('.'),
    "{started}"
  );
}

/// On AWS (moto here), the journal records the account and ARN STS names.
#[test]
fn an_aws_run_records_the_sts_caller_identity() {
  let moto = Moto::start();
  let mut test = Test::new();
  for (key, value) in moto.env() {
    test = test.env(&key, &value);
  }
  let runbook = test.path().join("minimal.yaml");
  std::fs::write(
    &runbook,
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: minimal }\nsteps:\n  - id: pause\n    action: wait.sleep\n    with: { duration: 10ms }\n",
  )
  .unwrap();
  test
    .run_args(["--aws", "run", "minimal.yaml", "--yes"])
    .status(0);
  let event = run_started(&test);
  assert_eq!(event["backend"], "aws", "{event}");
  assert_eq!(event["caller"]["account"], "123456789012", "{event}");
  assert!(
    event["caller"]["arn"]
      .as_str()
      .is_some_and(|arn| arn.contains(":123456789012:")),
    "{event}"
  );
}

/// A resume records who resumed the run, beside who started it: the journal's `run_resumed`,
/// `status`, and every report format.
#[test]
fn a_resume_records_who_resumed_the_run() {
  let test = Test::new().file(
    "resumable.yaml",
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: resumable }
steps:
  - id: wait-for-marker
    action: exec.command
    retry: { attempts: 1 }
    with:
      argv: [sh, -c, 'test -e marker']
"#,
  );
  test.run_args(["run", "resumable.yaml", "--yes"]).status(1);
  let id = test.run_ids().pop().unwrap();
  std::fs::write(test.path().join("marker"), "").unwrap();
  let resumed = test.run_args(["resume", id.as_str()]).status(0);
  let user = whoami();
  let said = format!("{}{}", resumed.stdout(), resumed.stderr());
  assert!(said.contains(&format!("by {user}")), "{said}");
  let journal = test.journal(&id);
  let record: Value = journal
    .lines()
    .map(|line| serde_json::from_str::<Value>(line).unwrap())
    .find(|record| record["event"] == "run_resumed")
    .expect("a run_resumed record");
  assert_eq!(record["user"], user.as_str(), "{record}");
  assert_eq!(record["caller"]["account"], "000000000000", "{record}");
  let report: Value = serde_json::from_str(
    &test
      .run_args(["report", id.as_str(), "--format", "json"])
      .status(0)
      .stdout(),
  )
  .unwrap();
  let by = &report["resumed_by"];
  assert_eq!(by.as_array().map(Vec::len), Some(1), "{report}");
  assert_eq!(by[0]["user"], user.as_str());
  let at = by[0]["at"].as_str().unwrap();
  assert!(!at.contains('.'), "to the second: {at}");
  let at = chrono::DateTime::parse_from_rfc3339(at)
    .unwrap()
    .to_rfc3339();
  for format in ["md", "html", "junit"] {
    let text = test
      .run_args(["report", id.as_str(), "--format", format])
      .status(0)
      .stdout();
    assert!(
      text.contains(&format!("1 time(s): {at} by {user}")),
      "{format}: {text}"
    );
  }
}
