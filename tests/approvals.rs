//! Run control without a terminal: `drctl approve`, `deny` and `cancel` against a run started in
//! the background (no TTY, no `--yes`), including one killed while it waits.

use std::{process::Child, time::Duration};

use crate::support::{signal, Test};

pub(crate) const GATED: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: gated }
steps:
  - id: flip-dns-home
    action: wait.sleep
    approval: { prompt: "Send traffic home?" }
    with: { duration: 1s }
  - id: clean-up
    action: wait.sleep
    needs: [flip-dns-home]
    always: true
    with: { duration: 1s }
"#;

const LIMIT: Duration = Duration::from_secs(60);

/// A gated run started in the background, waiting for its approval; its id.
pub(crate) fn waiting_run(test: &Test, args: &[&str]) -> (Child, String) {
  let child = test.spawn(args);
  test.wait_for(LIMIT, "the run to wait for approval", || {
    test
      .run_ids()
      .first()
      .is_some_and(|id| test.journal(id).contains(r#""event":"approval_requested""#))
  });
  let id = test.run_ids().remove(0);
  (child, id)
}

fn start(test: &Test) -> (Child, String) {
  waiting_run(test, &["run", "gated.yaml", "--sim", "--time-scale", "600"])
}

fn exit_code(child: Child) -> (i32, String) {
  let output = child.wait_with_output().expect("drctl exits");
  (
    output.status.code().unwrap_or(-1),
    String::from_utf8_lossy(&output.stderr).into_owned(),
  )
}

#[test]
fn drctl_approve_releases_a_run_waiting_without_a_terminal() {
  let test = Test::new().file("gated.yaml", GATED);
  let (child, id) = start(&test);
  // Nothing else moves while it waits.
  std::thread::sleep(Duration::from_millis(500));
  assert!(!test.journal(&id).contains(r#""event":"step_started""#));
  let approved = test
    .run_args([
      "approve",
      &id,
      "flip-dns-home",
      "--reason",
      "primary is back",
    ])
    .status(0);
  assert!(
    approved
      .stdout()
      .starts_with("approval of step `flip-dns-home` sent to run"),
    "{}",
    approved.stdout()
  );
  let (code, stderr) = exit_code(child);
  assert_eq!(code, 0, "{stderr}");
  let journal = test.journal(&id);
  assert!(
    journal.contains(r#""event":"approval_granted""#),
    "{journal}"
  );
  assert!(
    journal.contains(r#""reason":"primary is back""#),
    "{journal}"
  );
  assert!(journal.contains(r#""via":"os_user""#), "{journal}");
  // The report says who approved, and why.
  let report = test.run_args(["report", &id, "--format", "md"]).status(0);
  assert!(
    report.stdout().contains("granted by") && report.stdout().contains("primary is back"),
    "{}",
    report.stdout()
  );
  // The run is over: nothing more to approve (exit 2).
  let again = test.run_args(["approve", &id, "flip-dns-home"]).status(2);
  assert!(
    again
      .stderr()
      .contains("is succeeded: there is nothing to approve or deny"),
    "{}",
    again.stderr()
  );
}

#[test]
fn drctl_deny_fails_the_step_and_unknown_steps_and_runs_are_usage_errors() {
  let test = Test::new().file("gated.yaml", GATED);
  let (child, id) = start(&test);
  let unknown = test.run_args(["approve", &id, "nope"]).status(2);
  assert!(
    unknown.stderr().contains("has no step `nope`"),
    "{}",
    unknown.stderr()
  );
  let not_gated = test.run_args(["approve", &id, "clean-up"]).status(2);
  assert!(
    not_gated.stderr().contains("step `clean-up` of run")
      && not_gated.stderr().contains("(it has no `approval:`)"),
    "{}",
    not_gated.stderr()
  );
  test
    .run_args(["approve", "20000101-000000-0000", "x"])
    .status(2);
  test
    .run_args(["deny", &id, "flip-dns-home", "--reason", "not yet"])
    .status(0);
  let (code, stderr) = exit_code(child);
  assert_eq!(code, 1, "{stderr}");
  assert!(stderr.contains("was denied by"), "{stderr}");
  assert!(test.journal(&id).contains(r#""event":"approval_denied""#));
}

#[test]
fn drctl_cancel_stops_the_run_like_an_interrupt_and_it_resumes_waiting() {
  let test = Test::new().file("gated.yaml", GATED);
  let (child, id) = start(&test);
  test
    .run_args(["cancel", &id, "--reason", "wrong region"])
    .status(0);
  let (code, stderr) = exit_code(child);
  assert_eq!(code, 130, "{stderr}");
  let journal = test.journal(&id);
  assert!(
    journal.contains(r#""event":"run_cancel_requested""#),
    "{journal}"
  );
  assert!(journal.contains("cancelled by"), "{journal}");
  // The always-step ran; the gate still waits, and takes an approval given while stopped.
  assert!(journal.contains(r#""step":"clean-up""#), "{journal}");
  test.run_args(["cancel", &id]).status(2);
  test.run_args(["approve", &id, "flip-dns-home"]).status(0);
  test.run_args(["resume", &id]).status(0);
}

#[test]
fn a_run_killed_while_waiting_waits_again_on_resume_and_is_released_by_approve() {
  let test = Test::new().file("gated.yaml", GATED);
  let (child, id) = start(&test);
  signal(&child, "KILL");
  exit_code(child);
  let (resumed, _) = waiting_run(&test, &["resume", &id]);
  // One wait, continued: the resumed run did not ask again.
  let asked = test
    .journal(&id)
    .matches(r#""event":"approval_requested""#)
    .count();
  assert_eq!(asked, 1);
  test.run_args(["approve", &id, "flip-dns-home"]).status(0);
  let (code, stderr) = exit_code(resumed);
  assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_waiting_run_tells_the_runbooks_notify_steps_who_can_answer_it() {
  let capture = crate::support::capture::Capture::start(&[]);
  let runbook = format!(
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: gated }}
steps:
  - id: flip-dns-home
    action: wait.sleep
    approval: {{ prompt: "Send traffic home?" }}
    with: {{ duration: 1s }}
  - id: tell-the-team
    action: notify.webhook
    needs: [flip-dns-home]
    recovery: false
    with: {{ url: "{}" }}
"#,
    capture.url("/hook")
  );
  let test = Test::new().file("gated.yaml", &runbook);
  let (child, id) = start(&test);
  test.wait_for(LIMIT, "the approval notice", || !capture.seen().is_empty());
  let notice: serde_json::Value = serde_json::from_str(&capture.seen()[0].body).unwrap();
  assert_eq!(notice["event"], "approval_requested");
  assert_eq!(notice["run_id"], id.as_str());
  assert_eq!(notice["step"], "flip-dns-home");
  assert_eq!(notice["prompt"], "Send traffic home?");
  assert_eq!(
    notice["approve"],
    format!("drctl approve {id} flip-dns-home").as_str()
  );
  test.run_args(["approve", &id, "flip-dns-home"]).status(0);
  let (code, stderr) = exit_code(child);
  assert_eq!(code, 0, "{stderr}");
  // Then the step itself sends its own message.
  let seen = capture.seen();
  assert_eq!(seen.len(), 2, "{seen:?}");
  assert!(
    seen[1].body.contains(r#""step":"tell-the-team""#),
    "{}",
    seen[1].body
  );
}

#[test]
fn a_drill_with_approvals_wait_waits_for_drctl_approve_instead_of_answering_itself() {
  let test = Test::new().file("runbooks/gated.yaml", GATED).file(
    "drills/gated.yaml",
    "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: gated }\nrunbook: gated\n\
     schedule: \"@quarterly\"\nmode: live\ntarget: { backend: sim, time_scale: 600 }\n\
     approvals: wait\n",
  );
  let (child, id) = waiting_run(&test, &["drill", "run", "gated"]);
  test.run_args(["approve", &id, "flip-dns-home"]).status(0);
  let output = child.wait_with_output().unwrap();
  let stdout = String::from_utf8_lossy(&output.stdout);
  assert_eq!(output.status.code(), Some(0), "{stdout}");
  assert!(stdout.contains("drill gated: passed"), "{stdout}");
  // Without `approvals: wait` the drill file is the approval: nothing waits.
  let test = Test::new().file("runbooks/gated.yaml", GATED).file(
    "drills/gated.yaml",
    "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: gated }\nrunbook: gated\n\
     schedule: \"@quarterly\"\nmode: live\ntarget: { backend: sim, time_scale: 600 }\n",
  );
  test.run_args(["drill", "run", "gated"]).status(0);
  let id = test.run_ids().remove(0);
  assert!(!test.journal(&id).contains("approval_requested"));
}
