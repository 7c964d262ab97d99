//! The step executor: runs a [`Plan`] against a [`Cloud`], journalling every transition.
//!
//! * **Graph.** A step starts as soon as everything it `needs` has succeeded (or failed with
//!   `on_failure: continue`), up to `max_parallel` at once. No fixed delay between steps: the
//!   scheduler wakes the moment a step finishes.
//! * **Exactly-once effects.** A mutating step runs `observe` first, journals an intent (fsynced)
//!   before `apply`, then `verify`. A resumed run skips succeeded steps; a step with an intent but
//!   no outcome observes again and only applies if the effect is not already in place. An effect
//!   with nothing to observe (a notification) also journals `step_dispatched` right before its
//!   request leaves; on resume, an at-most-once effect dispatched with no outcome records its
//!   unconfirmed outcome instead of sending again ([`Effect::unconfirmed`](crate::actions::Effect::unconfirmed)).
//! * **Failure.** Retryable errors are retried with exponential backoff and jitter, up to the
//!   step's attempts; the step's timeout bounds each attempt. `on_failure: abort` stops
//!   scheduling, `continue` carries on, `rollback` runs the `rollback` action of every completed
//!   mutating step in reverse order, each under its step's timeout and retry policy. Steps
//!   marked `always` run after a failure and after an interrupt.
//! * **Interrupts.** On the first SIGINT/SIGTERM, no new steps start, waits end early, always-steps
//!   run, the journal records the interrupt, and the run ends `interrupted` (resumable). A second
//!   one cuts always-steps short as well: none starts, running ones are cancelled.
//! * **Approvals.** A step with `approval:` journals `approval_requested` and waits for the
//!   first answer: its terminal, a request file from another process, its timeout, or an
//!   interrupt (see `control`). The journal, not memory, holds the wait: a resumed run waits
//!   again under the same record.
//! * **Time.** Every wait, timeout and backoff runs on the backend's [`Clock`](crate::cloud::Clock).
//! * **Fence.** When the run's [`MutationFence`] closes (its lock was lost, its lease expired,
//!   or its journal cannot be written; the engine closes it itself on a journal failure), the
//!   run stops at once: nothing new starts, always-steps and rollbacks included, every wait is
//!   cancelled, and no mutating call leaves (the fence is checked before every `apply`, every
//!   dispatch, and by the client layer before every mutating provider call). A lost lock is
//!   journalled (`lock_lost`); the run ends with [`EngineError::Fenced`] and can be resumed.
//!
//! Where each job lives: this file holds the public API and a run's life ([`start`] or
//! [`resume`], then `run`: the scheduler, then `finish_run`, the one place a run ends);
//! `schedule` the DAG loop; `step` one step (`when:`, approval, its attempts under its retry
//! policy); `attempt` one attempt (observe, intent, apply, verify); `retry` the timeout and
//! backoff both a step and its rollback use; `rollback` the rollback; `prior` what a resumed
//! run reads off its journal; `control` approvals and requests from other processes. The
//! journal's group commit is `state::journal::GroupCommit`; a step's templates are bound in
//! `plan::bind` only.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use self::prior::Prior;
use crate::{
  actions::RunFacts,
  cloud::{Cloud, FenceReason, MutationFence},
  plan::{Plan, RunValues},
  state::{
    journal::{GroupCommit, Phase},
    lock::hostname,
    Event, Journal, JournalError, Record, RunMode, RunStatus, StepInfo, Timeline,
  },
};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
  pub run_id: String,
  pub max_parallel: usize,
  /// Answer every approval with yes (`--yes`).
  pub assume_yes: bool,
  /// Allow promoting beyond the RPO (`--accept-data-loss`).
  pub accept_data_loss: bool,
  /// Flip DNS even to a target whose health check is unhealthy (`--force`).
  pub force: bool,
  /// When the incident began (`--incident-start`); default: the run's start.
  pub incident_start: Option<DateTime<Utc>>,
  /// Who the backend's credentials act as, for the journal (`None`: unknown).
  pub caller: Option<crate::cloud::CallerIdentity>,
}

/// Asks a human to approve a step, on the run's own terminal. The engine races it with request
/// files (`drctl approve|deny`, see `state::control`), the step's `approval.timeout` and
/// interrupts; the first answer wins and the others are dropped.
#[async_trait::async_trait]
pub trait Approver: Send + Sync {
  /// `Ok(true)` approved, `Ok(false)` denied, `Err` when nobody can be asked here (the engine
  /// then waits for a request file alone).
  async fn approve(&self, step: &str, prompt: &str) -> Result<bool, String>;
}

/// Watches a run: every journal record, and what long waits are waiting on.
pub trait Observer: Send + Sync {
  fn record(&self, record: &Record);
  fn waiting(&self, step: &str, status: &str);
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
  fn record(&self, _record: &Record) {}
  fn waiting(&self, _step: &str, _status: &str) {}
}

/// The people (and signals) around a run: who watches it, who approves its gates, and the
/// interrupt count (the first interrupt stops the run gracefully).
#[derive(Clone)]
pub struct Operator {
  pub observer: Arc<dyn Observer>,
  pub approver: Arc<dyn Approver>,
  pub signals: watch::Receiver<u32>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
  pub status: RunStatus,
  pub timeline: Timeline,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
  #[error(transparent)]
  Journal(#[from] JournalError),
  #[error("cannot resume: {0}")]
  Resume(String),
  /// The mutation fence closed: the run stopped before any further mutating call.
  #[error("{}", fenced_message(.run_id, .reason, .at))]
  Fenced {
    run_id: String,
    reason: FenceReason,
    /// When the fence closed.
    at: DateTime<Utc>,
  },
}

fn fenced_message(run_id: &str, reason: &FenceReason, at: &DateTime<Utc>) -> String {
  let when = if reason.is_lock_loss() {
    "once the other holder is done"
  } else {
    "once the journal's disk is writable again"
  };
  format!(
    "run {run_id} stopped at {}, no further mutating call was made (always-steps and \
     rollbacks included): {reason}\n  resume it with `drctl resume {run_id}` {when}",
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
  )
}

/// Shared between the scheduler and the step tasks.
struct Shared {
  plan: Arc<Plan>,
  cloud: Cloud,
  options: RunOptions,
  observer: Arc<dyn Observer>,
  approver: Arc<dyn Approver>,
  /// The run's journal, group-committed across its parallel steps; its records build the
  /// timeline.
  journal: GroupCommit,
  started_at: DateTime<Utc>,
  /// Serializes approval prompts.
  approvals: tokio::sync::Mutex<()>,
  /// Requests from outside the run, and the steps waiting for an answer.
  control: control::Control,
}

impl Shared {
  /// The run's shared state, its journal holding `records` so far (all durable).
  fn new(
    plan: Arc<Plan>,
    cloud: Cloud,
    options: RunOptions,
    operator: &Operator,
    journal: Journal,
    records: Vec<Record>,
    started_at: DateTime<Utc>,
  ) -> Result<Arc<Shared>, JournalError> {
    let control = control::Control::new(&journal, &records);
    Ok(Arc::new(Shared {
      plan,
      cloud,
      options,
      observer: operator.observer.clone(),
      approver: operator.approver.clone(),
      journal: GroupCommit::new(journal, records)?,
      started_at,
      approvals: tokio::sync::Mutex::new(()),
      control,
    }))
  }

  /// Journal a transition; it is durable when this returns, its fsync shared with concurrent
  /// steps (see [`GroupCommit`]).
  async fn log(&self, event: Event) -> Result<Record, JournalError> {
    let record = self
      .journal
      .append(event)
      .await
      .map_err(|err| self.journal_failed(err))?;
    self.observer.record(&record);
    Ok(record)
  }

  /// A journal write or fsync failed: nothing may be changed that the journal cannot record, so
  /// the fence closes (the journal has already cut itself back to a good record).
  fn journal_failed(&self, err: JournalError) -> JournalError {
    self
      .fence()
      .close(FenceReason::JournalUnwritable(err.to_string()));
    err
  }

  fn fence(&self) -> &MutationFence {
    &self.cloud.fence
  }

  /// [`Shared::log`] for synchronous callers (the dispatch hook actions call right before a
  /// request leaves): fsyncs on its own rather than joining the group commit, blocking the
  /// thread. Rare (notifications), so it cannot multiply threads.
  fn log_blocking(&self, event: Event) -> Result<Record, JournalError> {
    let record = self
      .journal
      .append_blocking(event)
      .map_err(|err| self.journal_failed(err))?;
    self.observer.record(&record);
    Ok(record)
  }

  fn run_values(&self) -> RunValues {
    let wall = (Utc::now() - self.started_at).to_std().unwrap_or_default();
    RunValues {
      id: self.options.run_id.clone(),
      started_at: self.started_at.to_rfc3339(),
      elapsed: self.cloud.clock.to_modelled(wall),
    }
  }

  /// The RTO clock now: backend time since the run's start, plus (unscaled) how long before
  /// the run the incident began.
  fn rto_clock(&self) -> Duration {
    let before = self
      .options
      .incident_start
      .and_then(|incident| (self.started_at - incident).to_std().ok())
      .unwrap_or_default();
    self.run_values().elapsed.saturating_add(before)
  }

  fn run_facts(&self) -> RunFacts<'_> {
    RunFacts {
      runbook: &self.plan.runbook.name,
      rto: self.plan.runbook.objectives.rto,
      elapsed: self.rto_clock(),
      secrets: Some(&self.plan.secrets),
    }
  }

  /// The attempt number of `step`'s latest `step_started` in `phase` in this journal, or 1.
  fn last_attempt(&self, step: &str, phase: Phase) -> u32 {
    self
      .journal
      .records()
      .iter()
      .rev()
      .find_map(|record| match &record.event {
        Event::StepStarted {
          step: id,
          attempt,
          phase: started,
        } if id == step && *started == phase => Some(*attempt),
        _ => None,
      })
      .unwrap_or(1)
  }

  fn timeline(&self) -> Result<Timeline, EngineError> {
    Timeline::from_records(&self.journal.records())
      .ok_or_else(|| EngineError::Resume("journal lost its first record".into()))
  }
}

/// The graph of a plan, as journalled in `run_started`.
pub fn step_infos(plan: &Plan) -> Vec<StepInfo> {
  plan
    .runbook
    .steps
    .iter()
    .map(|step| StepInfo {
      id: step.id.clone(),
      name: step.name.clone(),
      action: step.call.action.clone(),
      needs: step.needs.clone(),
      mutating: crate::plan::is_mutating(&step.call),
      recovery: step.recovery,
      always: step.always,
      budget_ms: step
        .budget
        .map(|budget| u64::try_from(budget.as_millis()).unwrap_or(u64::MAX)),
      approval: step.approval.is_some(),
    })
    .collect()
}

/// Start a new run: journal `run_started`, then run it.
pub async fn start(
  plan: Arc<Plan>,
  cloud: Cloud,
  mut journal: Journal,
  options: RunOptions,
  operator: Operator,
) -> Result<RunOutcome, EngineError> {
  journal.set_redactor(plan.redactor());
  // The run's clock starts at its first record.
  let first = journal.append(run_started(&plan, &cloud, &options))?;
  operator.observer.record(&first);
  let started_at = first.ts;
  let shared = Shared::new(
    plan,
    cloud,
    options,
    &operator,
    journal,
    vec![first],
    started_at,
  )?;
  run(shared, Prior::default(), operator.signals).await
}

/// The first record of a run.
fn run_started(plan: &Plan, cloud: &Cloud, options: &RunOptions) -> Event {
  let runbook = &plan.runbook;
  Event::RunStarted {
    run_id: options.run_id.clone(),
    runbook: runbook.name.clone(),
    runbook_path: runbook.path.display().to_string(),
    runbook_digest: runbook_digest(plan),
    params: plan.display_params(),
    mode: RunMode::Live,
    backend: cloud.backend.clone(),
    time_scale: cloud.clock.scale(),
    incident_start: options.incident_start.unwrap_or_else(Utc::now),
    host: hostname(),
    user: crate::state::os_user(),
    caller: options.caller.clone(),
    pid: std::process::id(),
    rto_ms: runbook.objectives.rto.map(millis),
    rpo_ms: runbook.objectives.rpo.map(millis),
    accept_data_loss: options.accept_data_loss,
    force: options.force,
    steps: step_infos(plan),
  }
}

/// What `run_started` records of the runbook's text: a resume refuses a runbook that changed.
fn runbook_digest(plan: &Plan) -> String {
  format!("{:08x}", crc32fast::hash(plan.runbook.source.as_bytes()))
}

/// Resume a run from its journal.
pub async fn resume(
  plan: Arc<Plan>,
  cloud: Cloud,
  mut journal: Journal,
  records: Vec<Record>,
  mut options: RunOptions,
  operator: Operator,
) -> Result<RunOutcome, EngineError> {
  let started_at = continue_run(&plan, &records, &mut options)?;
  journal.set_redactor(plan.redactor());
  let mut prior = Prior::from_records(&records);
  secrets::recover_outputs(&plan, &mut prior)?;
  let shared = Shared::new(
    plan, cloud, options, &operator, journal, records, started_at,
  )?;
  shared
    .log(Event::RunResumed {
      host: hostname(),
      pid: std::process::id(),
      user: crate::state::os_user(),
      caller: shared.options.caller.clone(),
    })
    .await?;
  run(shared, prior, operator.signals).await
}

/// Check that the journal's run can be continued with `plan` (its runbook has not changed),
/// and take up what its `run_started` settled: its id, incident start, and the guards it
/// relaxed. When the run started.
fn continue_run(
  plan: &Plan,
  records: &[Record],
  options: &mut RunOptions,
) -> Result<DateTime<Utc>, EngineError> {
  let Some(first) = records.first() else {
    return Err(EngineError::Resume("the journal is empty".into()));
  };
  let Event::RunStarted {
    run_id,
    runbook_digest: digest,
    accept_data_loss,
    force,
    incident_start,
    ..
  } = &first.event
  else {
    return Err(EngineError::Resume(
      "the journal does not start with run_started".into(),
    ));
  };
  if &runbook_digest(plan) != digest {
    return Err(EngineError::Resume(format!(
      "{} changed since run {run_id} started; resuming it could repeat or skip the wrong steps",
      plan.runbook.path.display()
    )));
  }
  options.run_id = run_id.clone();
  options.accept_data_loss |= *accept_data_loss;
  options.force |= *force;
  options.incident_start = Some(*incident_start);
  Ok(first.ts)
}

/// A run's life once its journal is open: schedule its steps, then finish it.
async fn run(
  shared: Arc<Shared>,
  prior: Prior,
  signals: watch::Receiver<u32>,
) -> Result<RunOutcome, EngineError> {
  let ending = schedule::execute(shared.clone(), prior, signals).await?;
  finish_run(&shared, ending).await
}

/// How the scheduler left a run: no step runs, none will start.
struct Ending {
  /// The fence closed: everything stopped at once.
  fenced: Option<FenceReason>,
  /// The journal could not be written.
  fatal: Option<JournalError>,
  /// An interrupt (a signal or a cancel request) stopped the run: resumable.
  interrupted: Option<String>,
  /// The first step whose failure fails the run.
  failed_step: Option<String>,
}

/// Finish a run: journal how it ended (`lock_lost`, `run_interrupted` or `run_finished`, with
/// the run's status and the RTO/RPO it achieved), and report it. Every run that the
/// scheduler leaves ends here.
async fn finish_run(shared: &Shared, ending: Ending) -> Result<RunOutcome, EngineError> {
  if let Some(reason) = ending.fenced.or_else(|| shared.fence().reason()) {
    return fence_stopped(shared, reason).await;
  }
  if let Some(err) = ending.fatal {
    return Err(err.into());
  }
  if let Some(signal) = ending.interrupted {
    shared.log(Event::RunInterrupted { signal }).await?;
    return Ok(RunOutcome {
      status: RunStatus::Interrupted,
      timeline: shared.timeline()?,
    });
  }
  let timeline = shared.timeline()?;
  let status = if ending.failed_step.is_some() {
    RunStatus::Failed
  } else if timeline.breached() {
    RunStatus::Breached
  } else {
    RunStatus::Succeeded
  };
  shared
    .log(Event::RunFinished {
      status,
      rto_achieved_ms: timeline.rto_achieved.map(millis),
      rpo_achieved_ms: timeline.rpo_achieved.map(millis),
      failed_step: ending.failed_step,
    })
    .await?;
  Ok(RunOutcome {
    status,
    timeline: shared.timeline()?,
  })
}

/// End a run whose fence closed: journal a lost lock (a journal that cannot be written has
/// nothing more to say) and report it.
async fn fence_stopped(shared: &Shared, reason: FenceReason) -> Result<RunOutcome, EngineError> {
  if reason.is_lock_loss() {
    // Best effort: the journal is local and still ours, but the run is over either way.
    if let Err(err) = shared
      .log(Event::LockLost {
        reason: reason.to_string(),
        detected_at: shared.fence().closed_at().unwrap_or_else(Utc::now),
      })
      .await
    {
      tracing::error!("cannot journal the lost lock: {err}");
    }
  }
  Err(EngineError::Fenced {
    run_id: shared.options.run_id.clone(),
    reason,
    at: shared.fence().closed_at().unwrap_or_else(Utc::now),
  })
}

fn millis(duration: Duration) -> u64 {
  u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

mod attempt;
mod control;
mod crash_hook;
mod prior;
mod recovery;
pub mod region_fence;
mod retry;
mod rollback;
mod schedule;
mod secrets;
mod step;
#[cfg(test)]
mod tests;

pub use retry::backoff;
pub use secrets::bind_resumed;
