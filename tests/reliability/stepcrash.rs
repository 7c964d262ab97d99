//! Crash in a step: `drctl run` of the regional failover (plus two always-steps) on the
//! simulator, with one step's task made to panic through the engine's test-only hook
//! (`DRCTL_TEST_PANIC_STEP=STEP@POINT`, honoured on the simulator backend only). The step and the
//! point are drawn from a seeded generator: any step at the start of its attempt, and the three
//! effects also between their intent and `apply`, and between `apply` and `verify`. Then
//! `drctl resume`, without the hook, to completion.
//!
//! What is measured, per run:
//! * **reported success**: the panicking process exits 0 or journals `run_finished` succeeded
//!   (target 0). It must exit 1 with the run `failed`.
//! * **always-steps run**: both always-steps succeed in the panicking process (target: all).
//! * **resumed to completion**: the resume exits 0 (or 3: the RTO breached, when the wall time of
//!   two processes at the time scale pushed it past its target) and every step succeeded.
//! * **duplicate effects**: mutating calls beyond one per effect, from the simulator's operation
//!   log (target 0, and none missing). A step that `on_failure: rollback` undid is redone by the
//!   resume: its undo and redo are expected calls, not duplicates.

use crate::{
  support::{count, Test},
  Config, Figure,
};

const SECTION: &str = "stepcrash";

/// The three effects of a failover, each to be applied exactly once.
const EFFECTS: [(&str, &str); 3] = [
  ("promote-db", "PromoteReadReplica"),
  ("scale-standby", "UpdateService"),
  ("flip-dns", "ChangeResourceRecordSets"),
];

/// Steps whose attempt may panic at `start` (besides the effects).
const CHECKS: [&str; 4] = [
  "verify-outage",
  "probe-public",
  "check-replica-lag",
  "verify-secondary",
];

/// The always-steps appended to the shipped failover.
const ALWAYS: [&str; 2] = ["release-change-freeze", "record-timeline"];

const RUNBOOK: &str = "runbooks/crashing-failover.yaml";

/// The shipped failover with two always-steps: one after the last step, one with no needs.
fn runbook() -> String {
  let shipped =
    std::fs::read_to_string(crate::support::repo().join("runbooks/regional-failover.yaml"))
      .expect("the shipped failover");
  format!(
    "{}\n  - id: {}\n    action: wait.sleep\n    needs: [notify]\n    always: true\n    \
     with: {{ duration: 5s }}\n  - id: {}\n    action: wait.sleep\n    always: true\n    \
     with: {{ duration: 1s }}\n",
    shipped.trim_end(),
    ALWAYS[0],
    ALWAYS[1]
  )
}

#[derive(Default)]
struct Tally {
  runs: usize,
  reported_success: usize,
  always_ran: usize,
  resumed: usize,
  breached: usize,
  duplicates: usize,
  missing: usize,
  failures: Vec<String>,
}

pub fn run(config: &Config) -> Vec<Figure> {
  let runs = if config.full { 120 } else { 12 };
  let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x5743_5241_5348);
  let mut tally = Tally::default();
  let yaml = runbook();
  for _ in 0..runs {
    let target = if rng.bool() {
      let (step, _) = EFFECTS[rng.usize(..EFFECTS.len())];
      let point = ["start", "apply", "verify"][rng.usize(..3)];
      format!("{step}@{point}")
    } else {
      format!("{}@start", CHECKS[rng.usize(..CHECKS.len())])
    };
    trial(&yaml, &target, &mut tally);
  }
  for failure in tally.failures.iter().take(5) {
    eprintln!("   {failure}");
  }
  let always_total = tally.runs * ALWAYS.len();
  let resumed_pct = 100.0 * tally.resumed as f64 / tally.runs.max(1) as f64;
  vec![
    Figure::info(SECTION, "runs with a panicking step", tally.runs),
    Figure::new(
      SECTION,
      "runs that reported success",
      tally.reported_success,
      "0",
      tally.reported_success == 0,
    ),
    Figure::new(
      SECTION,
      "always-steps run after the panic",
      format!("{}/{always_total}", tally.always_ran),
      "all",
      tally.always_ran == always_total,
    ),
    Figure::new(
      SECTION,
      "resumed to completion",
      format!("{resumed_pct:.0} %"),
      "100 %",
      tally.resumed == tally.runs,
    ),
    Figure::info(SECTION, "of which RTO breached", tally.breached),
    Figure::new(
      SECTION,
      "duplicate effects",
      tally.duplicates,
      "0",
      tally.duplicates == 0,
    ),
    Figure::new(
      SECTION,
      "missing effects",
      tally.missing,
      "0",
      tally.missing == 0,
    ),
  ]
}

/// One run that panics at `target` (`STEP@POINT`), then its resume.
fn trial(yaml: &str, target: &str, tally: &mut Tally) {
  tally.runs += 1;
  let test = Test::new()
    .file(RUNBOOK, yaml)
    .env("DRCTL_TEST_PANIC_STEP", target);
  let crashed = test.run_args([
    "run",
    RUNBOOK,
    "-p",
    "target_region=us-west-2",
    "--sim",
    "--yes",
    "--time-scale",
    "1000",
  ]);
  let Some(run_id) = test.run_ids().pop() else {
    tally
      .failures
      .push(format!("{target}: no run ({})", crashed.stderr()));
    return;
  };
  let journal = test.journal(&run_id);
  let finished_succeeded = journal.lines().any(|line| {
    line.contains(r#""event":"run_finished""#) && line.contains(r#""status":"succeeded""#)
  });
  if crashed.code() == 0 || finished_succeeded {
    tally.reported_success += 1;
  }
  if crashed.code() != 1 {
    tally.failures.push(format!(
      "{target}: exit {} ({})",
      crashed.code(),
      crashed.stderr()
    ));
  }
  tally.always_ran += ALWAYS
    .iter()
    .filter(|step| {
      journal.lines().any(|line| {
        line.contains(r#""event":"step_succeeded""#)
          && line.contains(&format!(r#""step":"{step}""#))
      })
    })
    .count();

  // The resume runs without the hook: it is armed by the first process's environment only.
  let resumed = test
    .command(["resume", run_id.as_str(), "--yes"])
    .env_remove("DRCTL_TEST_PANIC_STEP")
    .output()
    .expect("drctl runs");
  let status = test.status_json(&run_id);
  let timeline = &status["timeline"];
  let every_step = timeline["steps"].as_array().is_some_and(|steps| {
    steps
      .iter()
      .all(|step| step["outcome"] == "succeeded" || step["outcome"] == "skipped")
  });
  match (resumed.status.code(), timeline["status"].as_str()) {
    (Some(0), Some("succeeded")) if every_step => tally.resumed += 1,
    (Some(3), Some("breached")) if every_step => {
      tally.resumed += 1;
      tally.breached += 1;
    }
    (code, status) => tally.failures.push(format!(
      "{target}: resume exit {code:?}, status {status:?}: {}",
      String::from_utf8_lossy(&resumed.stderr)
    )),
  }
  // A step rolled back (its `on_failure: rollback` after the panic) is undone and redone by
  // the resume: two more calls of its operation, which are not duplicates.
  let journal = test.journal(&run_id);
  let operations = test.operations(&run_id);
  for (step, operation) in EFFECTS {
    let rolled_back = journal
      .lines()
      .filter(|line| {
        line.contains(r#""event":"step_succeeded""#)
          && line.contains(r#""phase":"rollback""#)
          && line.contains(&format!(r#""step":"{step}""#))
      })
      .count();
    // The fence after the flip scales the old primary to zero: one more `UpdateService`.
    let fenced = usize::from(operation == "UpdateService");
    let expected = 1 + 2 * rolled_back + fenced;
    let n = count(&operations, operation);
    tally.duplicates += n.saturating_sub(expected);
    tally.missing += expected.saturating_sub(n);
  }
}
