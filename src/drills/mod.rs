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
