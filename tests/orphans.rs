//! No orphaned processes, and a minimal child environment: `exec.command` runs each command in
//! its own process group and kills the whole group (grandchildren included) on timeout, on an
//! interrupt, on a second interrupt and when a killed run is resumed; `status` reports what a
//! SIGKILLed run left behind. Output is kept up to 1 MiB per stream. Children see only PATH,
//! HOME, LANG, TZ, `DRCTL_*` and `env:`, unless `inherit_env: true`.

use std::time::Duration;

use crate::support::{
  procs::{kill_marked, marked, marker, survivors},
  signal, Test,
};

/// How long kills may take to land before a survivor counts.
const SETTLE: Duration = Duration::from_secs(3);

/// A runbook whose command starts two grandchildren and waits for them. `mark` is in every
/// process's environment (and the shell's command line). A second run of the command (after a
/// resume) finds `spawned` and exits 0 at once.
fn runbook(timeout: &str, always: bool) -> String {
  let cleanup = if always {
    r#"
  - id: cleanup
    action: exec.command
    needs: [spawn]
    always: true
    with:
      argv: [sh, -c, 'sleep 300 & sleep 300 & wait', "${{ params.mark }}-cleanup"]
      env: { MARK: "${{ params.mark }}" }
"#
  } else {
    ""
  };
  format!(
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: orphans }}
params:
  mark: {{ type: string, required: true }}
steps:
  - id: spawn
    action: exec.command
    with:
      argv: [sh, -c, 'test -e spawned && exit 0; touch spawned; sleep 300 & sleep 300 & wait', "${{{{ params.mark }}}}"]
      env: {{ MARK: "${{{{ params.mark }}}}" }}
      timeout: {timeout}
{cleanup}"#
  )
}

fn run_args(mark: &str) -> Vec<String> {
  ["run", "orphans.yaml", "--sim", "--yes", "-p"]
    .map(String::from)
    .into_iter()
    .chain([format!("mark={mark}")])
    .collect()
}

/// Wait until the command and both grandchildren run.
fn wait_for_grandchildren(test: &Test, mark: &str, at_least: usize) {
  test.wait_for(Duration::from_secs(30), "the grandchildren", || {
    marked(mark).len() >= at_least
  });
}

/// Assert that nothing carrying `mark` survived (killing survivors, so one failure does not
/// leave processes behind for the next test).
fn assert_no_survivors(mark: &str, when: &str) {
  let left = survivors(mark, SETTLE);
  kill_marked(mark);
  assert!(
    left.is_empty(),
    "{when}: {} processes left: {left:?}",
    left.len()
  );
}

#[test]
fn a_timed_out_command_leaves_no_grandchild_behind() {
  let mark = marker("timeout");
  let test = Test::new().file("orphans.yaml", &runbook("1s", false));
  let run = test.run_args(run_args(&mark)).status(1);
  let printed = format!("{}{}", run.stdout(), run.stderr());
  assert!(printed.contains("did not finish within 1s"), "{printed}");
  assert_no_survivors(&mark, "after the timeout");
}

#[test]
fn an_interrupted_run_leaves_no_grandchild_behind() {
  let mark = marker("interrupt");
  let test = Test::new().file("orphans.yaml", &runbook("5m", false));
  let child = test.spawn(run_args(&mark));
  wait_for_grandchildren(&test, &mark, 3);
  signal(&child, "INT");
  let output = child.wait_with_output().unwrap();
  assert_eq!(output.status.code(), Some(130));
  assert_no_survivors(&mark, "after one interrupt");
}

/// The first interrupt kills the command and lets the always-step start; the second kills the
/// always-step's group too and the run still journals its interrupt and exits 130 through main.
#[test]
fn a_second_interrupt_kills_every_group_and_still_journals_the_interrupt() {
  let mark = marker("twice");
  let test = Test::new().file("orphans.yaml", &runbook("5m", true));
  let child = test.spawn(run_args(&mark));
  wait_for_grandchildren(&test, &mark, 3);
  signal(&child, "INT");
  test.wait_for(Duration::from_secs(30), "the always-step", || {
    std::fs::read_dir("/proc").is_ok() && !marked(&format!("{mark}-cleanup")).is_empty()
  });
  wait_for_grandchildren(&test, &mark, 3);
  signal(&child, "INT");
  let output = child.wait_with_output().unwrap();
  let stderr = String::from_utf8_lossy(&output.stderr);
  assert_eq!(output.status.code(), Some(130), "{stderr}");
  assert_no_survivors(&mark, "after two interrupts");
  let run_id = test.run_ids().pop().unwrap();
  assert!(
    test
      .journal(&run_id)
      .contains(r#""event":"run_interrupted""#),
    "{}",
    test.journal(&run_id)
  );
}

/// A SIGKILLed drctl cannot clean up: `status` reports the groups it left, and `resume` kills
/// them before it goes on.
#[test]
fn status_reports_and_resume_kills_what_a_killed_run_left_behind() {
  let mark = marker("killed");
  let test = Test::new().file("orphans.yaml", &runbook("5m", false));
  let mut child = test.spawn(run_args(&mark));
  wait_for_grandchildren(&test, &mark, 3);
  signal(&child, "KILL");
  let _ = child.wait();
  let run_id = test.run_ids().pop().unwrap();
  let left = marked(&mark);
  assert!(
    left.len() >= 3,
    "the grandchildren outlive a SIGKILL: {left:?}"
  );

  let status = test.status_json(&run_id);
  let reported: Vec<u64> = status["left_behind"]
    .as_array()
    .map(|list| list.iter().filter_map(|p| p["pid"].as_u64()).collect())
    .unwrap_or_default();
  let text = test.run_args(["status", &run_id]).status(0).stdout();
  if reported.len() < 3 || !text.contains("left behind") {
    kill_marked(&mark);
  }
  assert!(reported.len() >= 3, "status reports them: {status}");
  assert!(text.contains("left behind"), "{text}");

  let resumed = test.run_args(["resume", &run_id, "--yes"]);
  let left = survivors(&mark, SETTLE);
  kill_marked(&mark);
  assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
  assert!(left.is_empty(), "resume killed them: {left:?}");
  assert!(
    resumed.stderr().contains("killed 3 processes left behind"),
    "{}",
    resumed.stderr()
  );
}

/// The step's journalled `stdout` output of `step`.
fn outputs(test: &Test, run_id: &str, step: &str) -> serde_json::Value {
  test
    .journal(run_id)
    .lines()
    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    .find(|record| record["event"] == "step_succeeded" && record["step"] == step)
    .map(|record| record["outputs"].clone())
    .unwrap_or_default()
}

const ENV_RUNBOOK: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: child-env }
steps:
  - id: use-secret
    action: exec.command
    with: { argv: ["true"], env: { GIVEN_TOKEN: "${{ secrets.DRCTL_TEST_TOKEN }}" } }
  - id: minimal
    action: exec.command
    needs: [use-secret]
    with: { argv: [env], env: { GIVEN: "yes" } }
"#;

#[test]
fn children_get_a_minimal_environment_without_credentials_or_secrets() {
  let test = Test::new()
    .file("env.yaml", ENV_RUNBOOK)
    .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-drctl-test-key")
    .env("AWS_ACCESS_KEY_ID", "AKIADRCTLTEST")
    .env("DRCTL_TEST_TOKEN", "tok-3f9c1a77")
    .env("DRCTL_TEST_OTHER", "other-value")
    .env("LANG", "C.UTF-8");
  test
    .run_args(["run", "env.yaml", "--sim", "--yes"])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  let env = outputs(&test, &run_id, "minimal")["stdout"]
    .as_str()
    .unwrap_or_default()
    .to_string();
  let names: Vec<&str> = env
    .lines()
    .filter_map(|line| line.split_once('=').map(|(name, _)| name))
    .collect();
  for absent in [
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "DRCTL_TEST_TOKEN",
    "DRCTL_TEST_OTHER",
  ] {
    assert!(
      !names.contains(&absent),
      "{absent} reached the child:\n{env}"
    );
  }
  for present in ["PATH", "LANG", "GIVEN", "DRCTL_RUN_ID", "DRCTL_STEP"] {
    assert!(names.contains(&present), "{present} missing:\n{env}");
  }
  assert!(env.contains("LANG=C.UTF-8"), "{env}");
}

const INHERIT_RUNBOOK: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: child-env }
steps:
  - id: use-secret
    action: exec.command
    with: { argv: ["true"], env: { GIVEN_TOKEN: "${{ secrets.DRCTL_TEST_TOKEN }}" } }
  - id: inherit
    action: exec.command
    needs: [use-secret]
    with: { argv: [env], inherit_env: true }
"#;

#[test]
fn inherit_env_passes_the_environment_but_never_credentials_or_secrets() {
  let test = Test::new()
    .file("env.yaml", INHERIT_RUNBOOK)
    .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-drctl-test-key")
    .env("AWS_SESSION_TOKEN", "session-drctl-test")
    .env("DRCTL_TEST_TOKEN", "tok-3f9c1a77")
    .env("DRCTL_TEST_OTHER", "other-value");
  test
    .run_args(["run", "env.yaml", "--sim", "--yes"])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  let env = outputs(&test, &run_id, "inherit")["stdout"]
    .as_str()
    .unwrap_or_default()
    .to_string();
  assert!(env.contains("DRCTL_TEST_OTHER=other-value"), "{env}");
  for absent in [
    "AWS_SECRET_ACCESS_KEY=",
    "AWS_SESSION_TOKEN=",
    "DRCTL_TEST_TOKEN=",
  ] {
    assert!(!env.contains(absent), "{absent} reached the child:\n{env}");
  }
}

#[test]
fn output_beyond_a_mebibyte_is_cut_and_the_cut_is_reported() {
  let test = Test::new().file(
    "big.yaml",
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: big-output }
steps:
  - id: big
    action: exec.command
    with: { argv: [sh, -c, 'head -c 3000000 /dev/zero | tr "\0" x; head -c 5000 /dev/zero >&2'] }
"#,
  );
  let run = test
    .run_args(["run", "big.yaml", "--sim", "--yes"])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  let outputs = outputs(&test, &run_id, "big");
  assert_eq!(
    outputs["stdout"].as_str().map(str::len),
    Some(1 << 20),
    "the first MiB is kept"
  );
  assert_eq!(outputs["stdout_cut_bytes"], "1951424", "{}", run.stdout());
  assert_eq!(outputs["stderr_cut_bytes"], "0");
}
