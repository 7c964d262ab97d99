//! Drills: runbooks that run themselves on a schedule, judged against pass criteria, with a
//! history that shows whether the RTO/RPO promise held.
//!
//! * `file`: drill files (`kind: Drill`) and their validation (runbook-style diagnostics).
//! * `cron`: schedules (5-field cron, macros, IANA time zones, DST).
//! * `history`: `<state>/drills/<name>/history.jsonl` (and S3), with trends.
//! * `scheduler`: `due()` over an injected clock, claims, the loop.
//! * [`judge`]: whether a finished run passes a drill.

pub mod cron;
pub mod file;
pub mod history;
pub mod notify;
pub mod scheduler;

use std::time::Duration;

pub use cron::{Cron, CronError, Schedule};
pub use file::{load_file, Drill, DrillMode, TargetBackend};
pub use history::HistoryEntry;
pub use scheduler::{due, Clock, Fire, Scheduler, SystemClock};

use serde::{Deserialize, Serialize};

use crate::state::{RunStatus, StepOutcome, Timeline};

/// A drill's verdict on a run (`result` in its history line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillResult {
  Passed,
  /// The run failed, a required step did not succeed, or (dry run) the plan is incomplete.
  Failed,
  /// It ran, but missed a criterion (an RTO or RPO target).
  Breached,
  /// The run was interrupted or lost its lock: resumable, not judged.
  Interrupted,
  /// A live drill held back by a freeze: it did not run (`reasons` says which freeze).
  Skipped,
}

impl DrillResult {
  pub fn as_str(self) -> &'static str {
    match self {
      DrillResult::Passed => "passed",
      DrillResult::Failed => "failed",
      DrillResult::Breached => "breached",
      DrillResult::Interrupted => "interrupted",
      DrillResult::Skipped => "skipped",
    }
  }

  /// The verdict of a judged run: passed without shortfalls, failed when one of them is a
  /// failure, breached otherwise.
  pub fn of(shortfalls: &[Shortfall]) -> DrillResult {
    if shortfalls.is_empty() {
      DrillResult::Passed
    } else if shortfalls.iter().any(Shortfall::is_failure) {
      DrillResult::Failed
    } else {
      DrillResult::Breached
    }
  }
}

impl std::fmt::Display for DrillResult {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.pad(self.as_str())
  }
}

/// Compared with its rendered name, so tests can assert what a history line shows.
impl PartialEq<&str> for DrillResult {
  fn eq(&self, other: &&str) -> bool {
    self.as_str() == *other
  }
}

/// Why a drill did not pass: one criterion it missed. Its text is a line of the history's
/// `reasons`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
  Interrupted,
  LostLock,
  /// The run failed (at this step, when the journal names one).
  RunFailed(Option<String>),
  /// A step the drill requires did not succeed.
  RequiredStep(String),
  RtoExceeded {
    achieved: Duration,
    target: Duration,
  },
  /// The RPO could not be measured: never within the target. The basis is what is known.
  RpoUnknown {
    basis: String,
    target: Duration,
  },
  RpoExceeded {
    achieved: Duration,
    target: Duration,
  },
  /// Dry run: this many steps could not be probed.
  Unprobed(usize),
  /// Dry run: the critical path's budgets exceed the RTO.
  BudgetsExceedRto,
  /// `recovered_when` did not hold within its bound: the RTO is breached.
  NotRecovered {
    condition: String,
    within: Duration,
  },
}

impl Shortfall {
  /// A failure (the drill `failed`) rather than a missed objective (`breached`).
  pub fn is_failure(&self) -> bool {
    match self {
      Shortfall::Interrupted
      | Shortfall::LostLock
      | Shortfall::RunFailed(_)
      | Shortfall::RequiredStep(_)
      | Shortfall::Unprobed(_) => true,
      Shortfall::RtoExceeded { .. }
      | Shortfall::RpoUnknown { .. }
      | Shortfall::RpoExceeded { .. }
      | Shortfall::BudgetsExceedRto
      | Shortfall::NotRecovered { .. } => false,
    }
  }
}

impl std::fmt::Display for Shortfall {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let seconds = |duration: &Duration| crate::runbook::format_duration(*duration);
    match self {
      Shortfall::Interrupted => write!(f, "the run was interrupted"),
      Shortfall::LostLock => write!(f, "the run lost its lock to another run and stopped"),
      Shortfall::RunFailed(Some(step)) => write!(f, "step `{step}` failed"),
      Shortfall::RunFailed(None) => write!(f, "the run failed"),
      Shortfall::RequiredStep(id) => write!(f, "required step `{id}` did not succeed"),
      Shortfall::RtoExceeded { achieved, target } => write!(
        f,
        "RTO {} exceeds the target {}",
        seconds(achieved),
        seconds(target)
      ),
      Shortfall::RpoUnknown { basis, target } => write!(
        f,
        "RPO unknown ({basis}): cannot show it is within the target {}",
        seconds(target)
      ),
      Shortfall::RpoExceeded { achieved, target } => write!(
        f,
        "RPO {} exceeds the target {}",
        seconds(achieved),
        seconds(target)
      ),
      Shortfall::Unprobed(errors) => write!(
        f,
        "{errors} step(s) could not be probed: the plan is incomplete"
      ),
      Shortfall::BudgetsExceedRto => write!(f, "the critical path's budgets exceed the RTO"),
      Shortfall::NotRecovered { condition, within } => write!(
        f,
        "not recovered: {condition} did not hold within {}",
        seconds(within)
      ),
    }
  }
}

/// A drill's verdict on a finished run, and why not passed. A drill passes when the run
/// succeeded (or only missed a runbook objective the drill overrides), RTO and RPO are within
/// the drill's targets, and every required step succeeded.
pub fn judge(
  drill: &Drill,
  status: RunStatus,
  timeline: &Timeline,
) -> (DrillResult, Vec<Shortfall>) {
  let mut shortfalls = Vec::new();
  match status {
    RunStatus::Interrupted => return (DrillResult::Interrupted, vec![Shortfall::Interrupted]),
    RunStatus::LockLost => return (DrillResult::Interrupted, vec![Shortfall::LostLock]),
    RunStatus::Failed => shortfalls.push(Shortfall::RunFailed(timeline.failed_step.clone())),
    RunStatus::Succeeded | RunStatus::Breached => {}
  }
  if let (Some(target), Some(achieved)) = (drill.rto_target(), timeline.rto_achieved) {
    if achieved > target {
      shortfalls.push(Shortfall::RtoExceeded { achieved, target });
    }
  }
  // Not recovered within `recovered_when`'s bound: the RTO is breached whatever the targets.
  if let Some(recovery) = timeline
    .recovery
    .as_ref()
    .filter(|recovery| recovery.outcome == crate::state::RecoveryOutcome::NotRecovered)
  {
    shortfalls.push(Shortfall::NotRecovered {
      condition: recovery.condition.clone(),
      within: recovery.within,
    });
  }
  // An RPO that could not be measured is never within the target.
  if let (Some(target), Some(basis)) = (drill.rpo_target(), &timeline.rpo_unknown) {
    shortfalls.push(Shortfall::RpoUnknown {
      basis: basis.clone(),
      target,
    });
  }
  if let (Some(target), Some(achieved)) = (drill.rpo_target(), timeline.rpo_achieved) {
    if achieved > target {
      shortfalls.push(Shortfall::RpoExceeded { achieved, target });
    }
  }
  for id in &drill.pass.steps_must_succeed {
    let succeeded = timeline
      .steps
      .iter()
      .any(|step| &step.id == id && step.outcome == StepOutcome::Succeeded);
    if !succeeded {
      shortfalls.push(Shortfall::RequiredStep(id.clone()));
    }
  }
  (DrillResult::of(&shortfalls), shortfalls)
}

#[cfg(test)]
mod judge_tests {
  use std::path::{Path, PathBuf};

  use super::*;
  use crate::actions::Catalog;

  /// A drill whose own pass criteria hold the RPO (its runbook sets none): a run whose RPO is
  /// unknown must not pass it.
  #[test]
  fn a_drill_with_an_rpo_target_does_not_pass_an_unknown_rpo() {
    let drill = drill("{ rpo: 5m }");
    let mut timeline = Timeline::from_records(&crate::report::fixture::records()).unwrap();
    timeline.rpo_achieved = None;
    timeline.rpo_unknown = Some("step `promote-db`: unknown: replication stopped at T".into());
    let (result, reasons) = judge(&drill, RunStatus::Succeeded, &timeline);
    assert_eq!(result, "breached", "{reasons:?}");
    assert!(
      reasons
        .iter()
        .any(|reason| reason.to_string().contains("replication stopped at T")),
      "{reasons:?}"
    );
  }

  fn drill(pass: &str) -> Drill {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = format!(
      "apiVersion: drctl/v1\nkind: Drill\nmetadata: {{ name: judged }}\n\
       runbook: regional-failover\nparams: {{ target_region: us-west-2 }}\n\
       schedule: \"@quarterly\"\nmode: live\ntarget: {{ backend: sim }}\npass: {pass}\n"
    );
    file::load(
      Path::new("drills/judged.yaml"),
      &text,
      &repo.join("runbooks"),
      &Catalog,
    )
    .unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
  }

  /// A required step that did not succeed fails the drill, even when the run itself only
  /// breached: the cause is the shortfall's kind, not the wording of its reason.
  #[test]
  fn a_required_step_that_did_not_succeed_fails_the_drill() {
    let drill = drill("{ steps_must_succeed: [scale-standby] }");
    let timeline = Timeline::from_records(&crate::report::fixture::records()).unwrap();
    let (result, shortfalls) = judge(&drill, RunStatus::Breached, &timeline);
    assert_eq!(result, DrillResult::Failed, "{shortfalls:?}");
    assert_eq!(
      shortfalls,
      vec![Shortfall::RequiredStep("scale-standby".into())]
    );
    assert_eq!(
      shortfalls[0].to_string(),
      "required step `scale-standby` did not succeed"
    );
  }

  /// A missed RTO alone breaches the drill; the run's own failure fails it.
  #[test]
  fn a_missed_rto_breaches_and_a_failed_run_fails() {
    let drill = drill("{ rto: 15m }");
    let mut timeline = Timeline::from_records(&crate::report::fixture::records()).unwrap();
    timeline.rto_achieved = Some(Duration::from_secs(1000));
    let (result, shortfalls) = judge(&drill, RunStatus::Breached, &timeline);
    assert_eq!(result, DrillResult::Breached, "{shortfalls:?}");
    assert_eq!(
      shortfalls
        .iter()
        .map(Shortfall::to_string)
        .collect::<Vec<_>>(),
      vec!["RTO 16m40s exceeds the target 15m".to_string()]
    );
    let (result, shortfalls) = judge(&drill, RunStatus::Failed, &timeline);
    assert_eq!(result, DrillResult::Failed, "{shortfalls:?}");
    assert_eq!(shortfalls[0].to_string(), "step `scale-standby` failed");
    assert_eq!(
      judge(&drill, RunStatus::LockLost, &timeline).0,
      DrillResult::Interrupted
    );
  }

  /// The history keeps the verdict's and the run's names as before (`result`, `run_status`).
  #[test]
  fn verdicts_and_run_statuses_keep_their_names_on_disk() {
    use history::{DrillRun, NotRun};
    for (result, name) in [
      (DrillResult::Passed, "passed"),
      (DrillResult::Failed, "failed"),
      (DrillResult::Breached, "breached"),
      (DrillResult::Interrupted, "interrupted"),
      (DrillResult::Skipped, "skipped"),
    ] {
      assert_eq!(serde_json::to_value(result).unwrap(), name);
      assert_eq!(result.as_str(), name);
      assert_eq!(
        serde_json::from_value::<DrillResult>(name.into()).unwrap(),
        result
      );
    }
    for (run, name) in [
      (DrillRun::Ran(RunStatus::Succeeded), "succeeded"),
      (DrillRun::Ran(RunStatus::LockLost), "lock_lost"),
      (DrillRun::NotRun(NotRun::Planned), "planned"),
      (DrillRun::NotRun(NotRun::Skipped), "skipped"),
    ] {
      assert_eq!(serde_json::to_value(run).unwrap(), name);
      assert_eq!(run.as_str(), name);
      assert_eq!(
        serde_json::from_value::<DrillRun>(name.into()).unwrap(),
        run
      );
    }
  }

  /// A run not recovered within its runbook's `recovered_when` bound does not pass a drill,
  /// even one that overrides the runbook's RTO.
  #[test]
  fn a_drill_does_not_pass_a_run_that_was_not_recovered() {
    let drill = drill("{ rto: 1h }");
    let mut timeline = Timeline::from_records(&crate::report::fixture::records()).unwrap();
    timeline.rpo_achieved = None;
    timeline.rto_achieved = None;
    timeline.recovery = Some(crate::state::Recovery {
      condition: "step `verify` passes".into(),
      within: Duration::from_secs(1800),
      started: Duration::from_secs(300),
      ended: Some(Duration::from_secs(2100)),
      outcome: crate::state::RecoveryOutcome::NotRecovered,
      checks: 180,
      summary: None,
    });
    let (result, shortfalls) = judge(&drill, RunStatus::Breached, &timeline);
    assert_eq!(result, DrillResult::Breached, "{shortfalls:?}");
    assert_eq!(
      shortfalls
        .iter()
        .map(Shortfall::to_string)
        .collect::<Vec<_>>(),
      ["not recovered: step `verify` passes did not hold within 30m"]
    );
  }
}
