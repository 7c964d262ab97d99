//! What happened in a run, rebuilt from its journal: each step's span and outcome, and the RTO and
//! RPO achieved. The engine decides "breached" from this, and every report renders it, so the
//! numbers cannot disagree.
//!
//! Times are in the backend's time: on the simulator, wall time since the run started is scaled
//! by its time scale (the world and drctl's clocks ran that much faster). Time before the run
//! started (from `--incident-start`) is real time.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::journal::{Event, Phase, Record, RunMode, RunStatus, StepError, StepInfo};

/// The data a step's change loses (or lost): a bound measured before it, or, when it could not
/// be measured, the basis on which it is unknown. An unknown loss is never zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataLoss {
  /// At most this much: the replica's lag at promotion, a backup's age.
  Bounded(Duration),
  /// Not measured; the text says what is known ("replication stopped at T; last measured lag
  /// L").
  Unknown(String),
}

impl DataLoss {
  /// From a journal record's `data_loss_ms` and `data_loss_unknown` (an unknown wins: it is
  /// only written when nothing could be measured).
  pub fn from_journal(ms: Option<u64>, unknown: Option<&String>) -> Option<DataLoss> {
    match (unknown, ms) {
      (Some(basis), _) => Some(DataLoss::Unknown(basis.clone())),
      (None, Some(ms)) => Some(DataLoss::Bounded(Duration::from_millis(ms))),
      (None, None) => None,
    }
  }

  /// The journal's `data_loss_ms`: a bound in milliseconds.
  pub fn journal_ms(loss: Option<&DataLoss>) -> Option<u64> {
    match loss {
      Some(DataLoss::Bounded(bound)) => Some(u64::try_from(bound.as_millis()).unwrap_or(u64::MAX)),
      _ => None,
    }
  }

  /// The journal's `data_loss_unknown`: the basis of an unknown loss.
  pub fn journal_unknown(loss: Option<&DataLoss>) -> Option<String> {
    match loss {
      Some(DataLoss::Unknown(basis)) => Some(basis.clone()),
      _ => None,
    }
  }

  /// The bound, when there is one.
  pub fn bound(&self) -> Option<Duration> {
    match self {
      DataLoss::Bounded(bound) => Some(*bound),
      DataLoss::Unknown(_) => None,
    }
  }
}

/// Where a step of a run stands, as its journal tells it. The names are those of the JSON
/// report's `outcome` and of `drctl status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
  /// Not started.
  Pending,
  /// Waiting for its approval, not started yet.
  AwaitingApproval,
  /// Started, no outcome journalled yet.
  Running,
  Succeeded,
  Failed,
  /// Its `when:` was false, or a dependency was skipped.
  Skipped,
  /// Its rollback succeeded (rollback spans only).
  RolledBack,
}

impl StepOutcome {
  pub fn as_str(self) -> &'static str {
    match self {
      StepOutcome::Pending => "pending",
      StepOutcome::AwaitingApproval => "awaiting_approval",
      StepOutcome::Running => "running",
      StepOutcome::Succeeded => "succeeded",
      StepOutcome::Failed => "failed",
      StepOutcome::Skipped => "skipped",
      StepOutcome::RolledBack => "rolled_back",
    }
  }

  /// The step has not ended: pending, waiting for approval, or running.
  pub fn is_open(self) -> bool {
    matches!(
      self,
      StepOutcome::Pending | StepOutcome::AwaitingApproval | StepOutcome::Running
    )
  }
}

impl std::fmt::Display for StepOutcome {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.pad(self.as_str())
  }
}

/// Compared with its rendered name, so tests can assert what a report shows.
impl PartialEq<&str> for StepOutcome {
  fn eq(&self, other: &&str) -> bool {
    self.as_str() == *other
  }
}

/// A run's status as reports show it: its [`RunStatus`], or `running` while no end is
/// journalled.
pub fn status_text(status: Option<RunStatus>) -> &'static str {
  status.map_or(StepOutcome::Running.as_str(), |status| status.as_str())
}

/// A step's life in a run.
#[derive(Debug, Clone, Serialize)]
pub struct StepSpan {
  pub id: String,
  pub action: String,
  pub mutating: bool,
  pub recovery: bool,
  pub needs: Vec<String>,
  /// Offsets from the run start, in backend time.
  pub started: Option<Duration>,
  pub ended: Option<Duration>,
  pub attempts: u32,
  pub outcome: StepOutcome,
  pub changed: bool,
  pub summary: Option<String>,
  pub error: Option<StepError>,
  pub outputs: BTreeMap<String, String>,
  pub data_loss: Option<DataLoss>,
  pub budget: Option<Duration>,
}

impl StepSpan {
  pub fn duration(&self) -> Option<Duration> {
    Some(self.ended?.saturating_sub(self.started?))
  }
}

/// One `drctl resume` of a run: when, where and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Resumption {
  pub at: DateTime<Utc>,
  pub host: String,
  /// The operating-system account (empty in journals written before it was recorded).
  pub user: String,
  pub caller: Option<crate::cloud::CallerIdentity>,
}

/// What a control record decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
  Granted,
  Denied,
  /// An approval that could not count (the two-person rule); the step kept waiting.
  Refused,
  /// Nobody answered within `approval.timeout`.
  Expired,
  CancelRequested,
}

impl Decision {
  pub fn as_str(self) -> &'static str {
    match self {
      Decision::Granted => "granted",
      Decision::Denied => "denied",
      Decision::Refused => "refused",
      Decision::Expired => "expired",
      Decision::CancelRequested => "cancel_requested",
    }
  }
}

/// An answer to a step's approval, or a cancel of the run: who, when, why.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ControlDecision {
  /// The step (`None`: the run, for a cancel).
  pub step: Option<String>,
  pub decision: Decision,
  /// Who (`None` for an expiry).
  pub by: Option<String>,
  pub via: Option<super::control::IdentityVia>,
  /// The reason given; for a refusal, why it could not count.
  pub reason: Option<String>,
  /// When it was given.
  pub at: DateTime<Utc>,
}

impl ControlDecision {
  /// From a journal record; `None` for records that decide nothing.
  fn from_record(record: &Record) -> Option<ControlDecision> {
    let decided = |step: &str, decision, by: &str, via, reason: &Option<String>, at| {
      Some(ControlDecision {
        step: Some(step.to_string()),
        decision,
        by: Some(by.to_string()),
        via: Some(via),
        reason: reason.clone(),
        at,
      })
    };
    match &record.event {
      Event::ApprovalGranted {
        step,
        by,
        via,
        reason,
        at,
        ..
      } => decided(step, Decision::Granted, by, *via, reason, *at),
      Event::ApprovalDenied {
        step,
        by,
        via,
        reason,
        at,
        ..
      } => decided(step, Decision::Denied, by, *via, reason, *at),
      Event::ApprovalRefused {
        step,
        by,
        via,
        why,
        at,
        ..
      } => decided(step, Decision::Refused, by, *via, &Some(why.clone()), *at),
      Event::ApprovalExpired { step, .. } => Some(ControlDecision {
        step: Some(step.clone()),
        decision: Decision::Expired,
        by: None,
        via: None,
        reason: None,
        at: record.ts,
      }),
      Event::RunCancelRequested {
        by,
        via,
        reason,
        at,
        ..
      } => Some(ControlDecision {
        step: None,
        decision: Decision::CancelRequested,
        by: Some(by.clone()),
        via: Some(*via),
        reason: reason.clone(),
        at: *at,
      }),
      _ => None,
    }
  }

  /// One line for the text formats: `step gate: granted by bob (os_user) at T: reason`.
  pub fn text(&self) -> String {
    let what = self
      .step
      .as_deref()
      .map_or_else(|| "run".to_string(), |step| format!("step {step}"));
    let by = match (&self.by, self.via) {
      (Some(by), Some(via)) => format!(" by {by} ({})", via.as_str()),
      (Some(by), None) => format!(" by {by}"),
      _ => String::new(),
    };
    let reason = self
      .reason
      .as_deref()
      .map_or_else(String::new, |reason| format!(": {reason}"));
    format!(
      "{what}: {}{by} at {}{reason}",
      self.decision.as_str(),
      self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
  }
}

/// Where the wait for `objectives.recovered_when` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryOutcome {
  /// The wait began and has no result yet (the run is running, or was interrupted in it).
  Waiting,
  /// The condition held.
  Recovered,
  /// The bound passed first: the RTO is breached.
  NotRecovered,
}

impl RecoveryOutcome {
  pub fn as_str(self) -> &'static str {
    match self {
      RecoveryOutcome::Waiting => "waiting",
      RecoveryOutcome::Recovered => "recovered",
      RecoveryOutcome::NotRecovered => "not_recovered",
    }
  }
}

/// The wait for `objectives.recovered_when` after the run's last step, as journalled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovery {
  /// What was waited for, in words.
  pub condition: String,
  /// The bound of the wait.
  pub within: Duration,
  /// When the wait began (offset from the run start, backend time).
  pub started: Duration,
  /// When the condition held (`Recovered`) or the bound passed (`NotRecovered`).
  pub ended: Option<Duration>,
  pub outcome: RecoveryOutcome,
  /// How many evaluations the result took.
  pub checks: u32,
  /// What the passing evaluation saw, or why the last one failed.
  pub summary: Option<String>,
}

/// A run, as its journal tells it.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
  pub run_id: String,
  pub runbook: String,
  pub runbook_path: String,
  pub mode: RunMode,
  pub backend: String,
  pub time_scale: f64,
  pub params: BTreeMap<String, String>,
  pub host: String,
  pub user: String,
  pub caller: Option<crate::cloud::CallerIdentity>,
  pub started_at: DateTime<Utc>,
  pub finished_at: Option<DateTime<Utc>>,
  pub incident_start: DateTime<Utc>,
  pub status: Option<RunStatus>,
  pub rto_target: Option<Duration>,
  pub rpo_target: Option<Duration>,
  pub rto_achieved: Option<Duration>,
  /// The largest measured data-loss bound of the run's steps.
  pub rpo_achieved: Option<Duration>,
  /// Set when a step's data loss could not be measured: the RPO achieved is then unknown (no
  /// bound), and this is its basis. The verdict is never "met".
  pub rpo_unknown: Option<String>,
  /// Steps in graph declaration order.
  pub steps: Vec<StepSpan>,
  pub rollbacks: Vec<StepSpan>,
  pub resumed: u32,
  /// Who resumed the run, oldest first (`resumed` of them).
  pub resumed_by: Vec<Resumption>,
  pub failed_step: Option<String>,
  /// Approvals granted, denied, refused or expired, and cancels, in journal order.
  pub approvals: Vec<ControlDecision>,
  /// The wait for `objectives.recovered_when`, once it began. With it, the RTO is measured to
  /// the moment the condition held, and "not recovered" is a breach.
  pub recovery: Option<Recovery>,
}

impl Timeline {
  /// Backend time from run start to `ts`.
  pub fn offset(&self, ts: DateTime<Utc>) -> Duration {
    let wall = (ts - self.started_at).to_std().unwrap_or_default();
    crate::cloud::Clock::scaled(self.time_scale).to_modelled(wall)
  }

  /// Whether the RTO target was met (None when there is no target or nothing was achieved).
  /// Past the bound of `recovered_when`, the RTO is breached, with or without a target.
  pub fn rto_met(&self) -> Option<bool> {
    if self
      .recovery
      .as_ref()
      .is_some_and(|recovery| recovery.outcome == RecoveryOutcome::NotRecovered)
    {
      return Some(false);
    }
    Some(self.rto_achieved? <= self.rto_target?)
  }

  /// Whether the RPO target was met. An unknown RPO is not met: nothing proves the target held.
  pub fn rpo_met(&self) -> Option<bool> {
    let target = self.rpo_target?;
    if self.rpo_unknown.is_some() {
      return Some(false);
    }
    Some(self.rpo_achieved? <= target)
  }

  /// Whether an objective was missed.
  pub fn breached(&self) -> bool {
    self.rto_met() == Some(false) || self.rpo_met() == Some(false)
  }

  /// The chain of steps that determined the recovery's length: from the recovery step that ended
  /// last (any step, when none is), follow the dependency that ended last, back to a step with
  /// none.
  pub fn critical_path(&self) -> Vec<String> {
    let by_id: BTreeMap<&str, &StepSpan> = self.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut path = Vec::new();
    // It ends at the last recovery step to end (what the RTO measures to): a later
    // `recovery: false` step, a fence or a notify, is not on the way to recovery.
    let last = |recovery_only: bool| {
      self
        .steps
        .iter()
        .filter(|step| step.ended.is_some() && (step.recovery || !recovery_only))
        .max_by_key(|step| step.ended)
    };
    let mut current = last(true).or_else(|| last(false));
    while let Some(step) = current {
      path.push(step.id.clone());
      current = step
        .needs
        .iter()
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .filter(|dep| dep.ended.is_some())
        .max_by_key(|dep| dep.ended);
    }
    path.reverse();
    path
  }

  /// Rebuild from journal records. `None` when the journal has no `run_started`.
  pub fn from_records(records: &[Record]) -> Option<Timeline> {
    let first = records.first()?;
    let Event::RunStarted {
      run_id,
      runbook,
      runbook_path,
      params,
      mode,
      backend,
      time_scale,
      incident_start,
      host,
      user,
      caller,
      rto_ms,
      rpo_ms,
      steps,
      ..
    } = &first.event
    else {
      return None;
    };
    let span = |info: &StepInfo| StepSpan {
      id: info.id.clone(),
      action: info.action.clone(),
      mutating: info.mutating,
      recovery: info.recovery,
      needs: info.needs.clone(),
      started: None,
      ended: None,
      attempts: 0,
      outcome: StepOutcome::Pending,
      changed: false,
      summary: None,
      error: None,
      outputs: BTreeMap::new(),
      data_loss: None,
      budget: info.budget_ms.map(Duration::from_millis),
    };
    let mut timeline = Timeline {
      run_id: run_id.clone(),
      runbook: runbook.clone(),
      runbook_path: runbook_path.clone(),
      mode: *mode,
      backend: backend.clone(),
      time_scale: if *time_scale > 0.0 { *time_scale } else { 1.0 },
      params: params.clone(),
      host: host.clone(),
      user: user.clone(),
      caller: caller.clone(),
      started_at: first.ts,
      finished_at: None,
      incident_start: *incident_start,
      status: None,
      rto_target: rto_ms.map(Duration::from_millis),
      rpo_target: rpo_ms.map(Duration::from_millis),
      rto_achieved: None,
      rpo_achieved: None,
      rpo_unknown: None,
      steps: steps.iter().map(span).collect(),
      rollbacks: Vec::new(),
      resumed: 0,
      resumed_by: Vec::new(),
      failed_step: None,
      approvals: Vec::new(),
      recovery: None,
    };
    let mut intent_loss: BTreeMap<String, DataLoss> = BTreeMap::new();
    for record in &records[1..] {
      let at = timeline.offset(record.ts);
      match &record.event {
        Event::RunResumed {
          host, user, caller, ..
        } => {
          timeline.resumed_by.push(Resumption {
            at: record.ts,
            host: host.clone(),
            user: user.clone(),
            caller: caller.clone(),
          });
          timeline.resumed += 1;
          timeline.status = None;
          timeline.finished_at = None;
        }
        Event::StepStarted {
          step,
          attempt,
          phase,
        } => {
          if let Some(span) = timeline.span_mut(step, *phase) {
            span.started.get_or_insert(at);
            span.attempts = span.attempts.max(*attempt);
            span.outcome = StepOutcome::Running;
            span.ended = None;
          }
        }
        Event::StepIntent {
          step,
          data_loss_ms,
          data_loss_unknown,
          phase: Phase::Run,
          ..
        } if data_loss_ms.is_some() || data_loss_unknown.is_some() => {
          if let Some(loss) = DataLoss::from_journal(*data_loss_ms, data_loss_unknown.as_ref()) {
            intent_loss.insert(step.clone(), loss);
          }
        }
        Event::StepIntent { .. } | Event::StepDispatched { .. } | Event::ProcessStarted { .. } => {}
        // Listed by `drctl status` and `drctl fence list` (see `state::fences`).
        Event::FencePending { .. } => {}
        Event::ApprovalRequested { step, .. } => {
          if let Some(span) = timeline.span_mut(step, Phase::Run) {
            if span.started.is_none() {
              span.outcome = StepOutcome::AwaitingApproval;
            }
          }
        }
        Event::ControlIgnored { .. } => {}
        Event::ApprovalGranted { .. }
        | Event::ApprovalDenied { .. }
        | Event::ApprovalRefused { .. }
        | Event::ApprovalExpired { .. }
        | Event::RunCancelRequested { .. } => {
          timeline
            .approvals
            .extend(ControlDecision::from_record(record));
        }
        Event::StepSucceeded {
          step,
          phase,
          changed,
          outputs,
          data_loss_ms,
          summary,
          data_loss_unknown,
          ..
        } => {
          let loss = DataLoss::from_journal(*data_loss_ms, data_loss_unknown.as_ref())
            .or_else(|| intent_loss.get(step).cloned());
          if let Some(span) = timeline.span_mut(step, *phase) {
            span.ended = Some(at);
            span.outcome = match phase {
              Phase::Rollback => StepOutcome::RolledBack,
              Phase::Run => StepOutcome::Succeeded,
            };
            span.changed |= *changed;
            span.outputs = outputs.clone();
            span.summary = Some(summary.clone());
            span.error = None;
            span.data_loss = loss;
          }
        }
        Event::StepFailed {
          step,
          phase,
          error,
          will_retry,
          ..
        } => {
          if let Some(span) = timeline.span_mut(step, *phase) {
            span.error = Some(error.clone());
            if !will_retry {
              span.ended = Some(at);
              span.outcome = StepOutcome::Failed;
            }
          }
        }
        Event::StepSkipped { step, reason } => {
          if let Some(span) = timeline.span_mut(step, Phase::Run) {
            span.outcome = StepOutcome::Skipped;
            span.summary = Some(reason.clone());
          }
        }
        Event::RunInterrupted { .. } => {
          timeline.status = Some(RunStatus::Interrupted);
          timeline.finished_at = Some(record.ts);
        }
        Event::RunFinished {
          status,
          failed_step,
          ..
        } => {
          timeline.status = Some(*status);
          timeline.finished_at = Some(record.ts);
          timeline.failed_step = failed_step.clone();
        }
        // Stopped before any further mutating call: resumable once the other holder is done.
        Event::LockLost { .. } => {
          timeline.status = Some(RunStatus::LockLost);
          timeline.finished_at = Some(record.ts);
        }
        Event::RunStarted { .. } => {}
        Event::RecoveryWaitStarted {
          condition,
          within_ms,
        } => {
          timeline.recovery = Some(Recovery {
            condition: condition.clone(),
            within: Duration::from_millis(*within_ms),
            started: at,
            ended: None,
            outcome: RecoveryOutcome::Waiting,
            checks: 0,
            summary: None,
          });
        }
        Event::Recovered {
          at: held,
          checks,
          summary,
        } => {
          let held = timeline.offset(*held);
          timeline.end_recovery(RecoveryOutcome::Recovered, held, *checks, Some(summary));
        }
        Event::NotRecovered {
          by,
          checks,
          last_error,
        } => {
          let by = timeline.offset(*by);
          timeline.end_recovery(
            RecoveryOutcome::NotRecovered,
            by,
            *checks,
            last_error.as_ref(),
          );
        }
      }
    }
    timeline.compute_objectives();
    Some(timeline)
  }

  /// The result of the wait for recovery (a result without its start is ignored).
  fn end_recovery(
    &mut self,
    outcome: RecoveryOutcome,
    at: Duration,
    checks: u32,
    summary: Option<&String>,
  ) {
    if let Some(recovery) = self.recovery.as_mut() {
      recovery.outcome = outcome;
      recovery.ended = Some(at);
      recovery.checks = checks;
      recovery.summary = summary.cloned();
    }
  }

  fn span_mut(&mut self, step: &str, phase: Phase) -> Option<&mut StepSpan> {
    match phase {
      Phase::Run => self.steps.iter_mut().find(|span| span.id == step),
      Phase::Rollback => {
        if !self.rollbacks.iter().any(|span| span.id == step) {
          let mut span = self.steps.iter().find(|span| span.id == step)?.clone();
          span.started = None;
          span.ended = None;
          span.attempts = 0;
          span.outputs.clear();
          span.summary = None;
          span.error = None;
          self.rollbacks.push(span);
        }
        self.rollbacks.iter_mut().find(|span| span.id == step)
      }
    }
  }

  /// RTO achieved: incident start to the end of the last recovery step, once every recovery
  /// step has succeeded (or was skipped); with `recovered_when`, incident start to the moment
  /// its condition held (none while waiting or when not recovered). RPO achieved: the largest
  /// data-loss window measured.
  fn compute_objectives(&mut self) {
    let before_start = (self.started_at - self.incident_start)
      .to_std()
      .unwrap_or_default();
    if let Some(recovery) = &self.recovery {
      self.rto_achieved = match (recovery.outcome, recovery.ended) {
        (RecoveryOutcome::Recovered, Some(at)) => Some(before_start.saturating_add(at)),
        _ => None,
      };
      self.compute_rpo();
      return;
    }
    let recovery: Vec<&StepSpan> = self.steps.iter().filter(|span| span.recovery).collect();
    let all_done = recovery
      .iter()
      .all(|span| matches!(span.outcome, StepOutcome::Succeeded | StepOutcome::Skipped));
    self.rto_achieved = if all_done && !recovery.is_empty() {
      recovery
        .iter()
        .filter_map(|span| span.ended)
        .max()
        .map(|end| before_start.saturating_add(end))
    } else {
      None
    };
    self.compute_rpo();
  }

  /// RPO achieved: the largest data-loss window measured; unknown when any step's was.
  fn compute_rpo(&mut self) {
    self.rpo_achieved = self
      .steps
      .iter()
      .filter_map(|span| span.data_loss.as_ref()?.bound())
      .max();
    self.rpo_unknown = self.steps.iter().find_map(|span| match &span.data_loss {
      Some(DataLoss::Unknown(basis)) => Some(format!("step `{}`: {basis}", span.id)),
      _ => None,
    });
  }
}
