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

use crate::state::{RunStatus, Timeline};

/// A drill's verdict on a run: `passed`, `failed`, `breached` or `interrupted`, and why not
/// passed. A drill passes when the run succeeded (or only missed a runbook objective the drill
/// overrides), RTO and RPO are within the drill's targets, and every required step succeeded.
pub fn judge(drill: &Drill, status: RunStatus, timeline: &Timeline) -> (&'static str, Vec<String>) {
  let mut reasons = Vec::new();
  match status {
    RunStatus::Interrupted => return ("interrupted", vec!["the run was interrupted".into()]),
    RunStatus::LockLost => {
      return (
        "interrupted",
        vec!["the run lost its lock to another run and stopped".into()],
      )
    }
    RunStatus::Failed => reasons.push(match &timeline.failed_step {
      Some(step) => format!("step `{step}` failed"),
      None => "the run failed".into(),
    }),
    RunStatus::Succeeded | RunStatus::Breached => {}
  }
  let seconds = |duration: Duration| crate::runbook::format_duration(duration);
  if let (Some(target), Some(achieved)) = (drill.rto_target(), timeline.rto_achieved) {
    if achieved > target {
      reasons.push(format!(
        "RTO {} exceeds the target {}",
        seconds(achieved),
        seconds(target)
      ));
    }
  }
  // Not recovered within `recovered_when`'s bound: the RTO is breached whatever the targets.
  if let Some(recovery) = timeline
    .recovery
    .as_ref()
    .filter(|recovery| recovery.outcome == crate::state::RecoveryOutcome::NotRecovered)
  {
    reasons.push(format!(
      "not recovered: {} did not hold within {}",
      recovery.condition,
      seconds(recovery.within)
    ));
  }
  // An RPO that could not be measured is never within the target.
  if let (Some(target), Some(basis)) = (drill.rpo_target(), &timeline.rpo_unknown) {
    reasons.push(format!(
      "RPO unknown ({basis}): cannot show it is within the target {}",
      seconds(target)
    ));
  }
  if let (Some(target), Some(achieved)) = (drill.rpo_target(), timeline.rpo_achieved) {
    if achieved > target {
      reasons.push(format!(
        "RPO {} exceeds the target {}",
        seconds(achieved),
        seconds(target)
      ));
    }
  }
  for id in &drill.pass.steps_must_succeed {
    let succeeded = timeline
      .steps
      .iter()
      .any(|step| &step.id == id && step.outcome == "succeeded");
    if !succeeded {
      reasons.push(format!("required step `{id}` did not succeed"));
    }
  }
  let result = if reasons.is_empty() {
    "passed"
  } else if status == RunStatus::Failed
    || reasons.iter().any(|reason| reason.starts_with("required"))
  {
    "failed"
  } else {
    "breached"
  };
  (result, reasons)
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
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: rpo-drill }\n\
                runbook: regional-failover\nparams: { target_region: us-west-2 }\n\
                schedule: \"@quarterly\"\nmode: live\ntarget: { backend: sim }\n\
                pass: { rpo: 5m }\n";
    let drill = file::load(
      Path::new("drills/rpo-drill.yaml"),
      text,
      &repo.join("runbooks"),
      &Catalog,
    )
    .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let mut timeline = Timeline::from_records(&crate::report::fixture::records()).unwrap();
    timeline.rpo_achieved = None;
    timeline.rpo_unknown = Some("step `promote-db`: unknown: replication stopped at T".into());
    let (result, reasons) = judge(&drill, RunStatus::Succeeded, &timeline);
    assert_eq!(result, "breached", "{reasons:?}");
    assert!(
      reasons
        .iter()
        .any(|reason| reason.contains("replication stopped at T")),
      "{reasons:?}"
    );
  }

  /// A run not recovered within its runbook's `recovered_when` bound does not pass a drill,
  /// even one that overrides the runbook's RTO.
  #[test]
  fn a_drill_does_not_pass_a_run_that_was_not_recovered() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: recovery-drill }\n\
                runbook: regional-failover\nparams: { target_region: us-west-2 }\n\
                schedule: \"@quarterly\"\nmode: live\ntarget: { backend: sim }\n\
                pass: { rto: 1h }\n";
    let drill = file::load(
      Path::new("drills/recovery-drill.yaml"),
      text,
      &repo.join("runbooks"),
      &Catalog,
    )
    .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
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
    let (result, reasons) = judge(&drill, RunStatus::Breached, &timeline);
    assert_eq!(result, "breached", "{reasons:?}");
    assert_eq!(
      reasons,
      ["not recovered: step `verify` passes did not hold within 30m"]
    );
  }
}
