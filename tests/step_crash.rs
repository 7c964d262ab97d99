//! A step that crashes (its task panics) never reports success: the step fails with an internal
//! error, always-steps still run, the run exits 1 and resumes to completion. The panic comes from
//! the engine's test-only hook (`DRCTL_TEST_PANIC_STEP`, simulator runs only). Durations too long
//! to compute with (the `timeout: 18446744073709551615s` that used to panic at `--time-scale 1`)
//! are refused at validation.

use crate::support::{count, Test};

/// A promotion, a step after it, and an always-step after that.
pub const CRASHY: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: crashy }
steps:
  - id: promote
    action: rds.promote_replica
    with: { region: us-west-2, instance: app-db-replica }
    timeout: 20m
  - id: after
    action: wait.sleep
    needs: [promote]
    with: { duration: 10s }
  - id: cleanup
    action: wait.sleep
    needs: [after]
    always: true
    with: { duration: 1s }
"#;

fn events(journal: &str, event: &str, step: &str) -> usize {
  journal
    .lines()
    .filter(|line| {
      line.contains(&format!(r#""event":"{event}""#))
        && line.contains(&format!(r#""step":"{step}""#))
    })
    .count()
}

#[test]
fn a_step_that_panics_fails_the_run_runs_always_steps_and_resumes() {
  for point in ["start", "apply", "verify"] {
    let test = Test::new()
      .file("runbooks/crashy.yaml", CRASHY)
      .env("DRCTL_TEST_PANIC_STEP", &format!("promote@{point}"));
    let run = test
      .run_args([
        "run",
        "runbooks/crashy.yaml",
        "--sim",
        "--yes",
        "--time-scale",
        "1000",
      ])
      .status(1);
    let run_id = test.run_ids().pop().unwrap();
    let journal = test.journal(&run_id);
    assert_eq!(
      events(&journal, "step_failed", "promote"),
      1,
      "{point}: {journal}"
    );
    assert!(
      journal.contains("internal error: the step's task panicked"),
      "{point}: {journal}"
    );
    assert_eq!(
      events(&journal, "step_succeeded", "cleanup"),
      1,
      "{point}: {journal}"
    );
    assert_eq!(
      events(&journal, "step_started", "after"),
      0,
      "{point}: {journal}"
    );
    assert!(
      journal.contains(r#""status":"failed""#),
      "{point}: {journal}"
    );
    assert!(
      run.stderr().contains("internal error") || run.stdout().contains("internal error"),
      "{point}: the operator is not told\n{}\n{}",
      run.stdout(),
      run.stderr()
    );

    // The resume runs without the hook (it is armed by the environment of the first process).
    let resumed = Test::command(&test, ["resume", run_id.as_str(), "--yes"])
      .env_remove("DRCTL_TEST_PANIC_STEP")
      .output()
      .unwrap();
    assert_eq!(
      resumed.status.code(),
      Some(0),
      "{point}: {}",
      String::from_utf8_lossy(&resumed.stderr)
    );
    let operations = test.operations(&run_id);
    assert_eq!(
      count(&operations, "PromoteReadReplica"),
      1,
      "{point}: {operations:?}"
    );
    assert_eq!(test.status_json(&run_id)["timeline"]["status"], "succeeded");
  }
}

#[test]
fn a_timeout_too_long_to_compute_with_is_refused_at_validation() {
  let huge = CRASHY.replace("timeout: 20m", "timeout: 18446744073709551615s");
  let test = Test::new().file("runbooks/huge.yaml", &huge);
  for args in [
    vec!["validate", "runbooks/huge.yaml"],
    vec![
      "run",
      "runbooks/huge.yaml",
      "--sim",
      "--yes",
      "--time-scale",
      "1",
    ],
    vec!["plan", "runbooks/huge.yaml", "--sim"],
  ] {
    let run = test.run_args(&args).status(2);
    let stderr = run.stderr();
    assert!(
      stderr.contains("invalid duration `18446744073709551615s`: longer than the maximum, 366d")
        && stderr.contains("--> runbooks/huge.yaml:8:14"),
      "{args:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
  }
  assert!(test.run_ids().is_empty(), "a run started");
}

#[test]
fn plan_with_two_huge_budgets_is_a_validation_error_not_a_panic() {
  let budgets = CRASHY
    .replace(
      "    timeout: 20m\n",
      "    timeout: 20m\n    budget: 18446744073709551615s\n",
    )
    .replace(
      "    with: { duration: 10s }\n",
      "    with: { duration: 10s }\n    budget: 18446744073709551615s\n",
    );
  let test = Test::new().file("runbooks/budgets.yaml", &budgets);
  let run = test
    .run_args(["plan", "runbooks/budgets.yaml", "--sim"])
    .status(2);
  assert_eq!(
    run
      .stderr()
      .matches("longer than the maximum, 366d")
      .count(),
    2,
    "{}",
    run.stderr()
  );
  // The longest budgets allowed still plan: two of 366 days add up without overflow.
  let longest = budgets.replace("18446744073709551615s", "366d");
  let test = Test::new().file("runbooks/budgets.yaml", &longest);
  let run = test
    .run_args(["plan", "runbooks/budgets.yaml", "--sim"])
    .status(0);
  assert!(
    run.stdout().contains("17568h") || run.stdout().contains("732d"),
    "{}",
    run.stdout()
  );
}
