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

use std::{
  collections::{BTreeMap, HashMap, HashSet},
  sync::{Arc, Mutex},
  time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::{sync::watch, task::JoinSet};

use crate::{
  actions::{ActionDef, ActionError, Args, Behaviour, Ctx, Observed, Outcome, RunFacts},
  cloud::{Cloud, FenceReason, MutationFence},
  plan::{bind_call, evaluate_when, Plan, RunValues},
  runbook::{format_duration, ActionCall, OnFailure, Step},
  state::{
    journal::Phase, lock::hostname, DataLoss, Event, Journal, JournalError, Record, RunMode,
    RunStatus, StepError, StepInfo, Timeline,
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
  journal: Mutex<Journal>,
  /// Group commit: the highest journal sequence number known durable. Held by the one task
  /// that fsyncs on behalf of every record written before its fsync started. An async mutex:
  /// steps waiting for that fsync yield their worker thread instead of blocking it.
  durable: tokio::sync::Mutex<u64>,
  /// A second handle on the journal file, fsynced without holding `journal` (on a blocking-pool
  /// thread, hence shared).
  sync_file: Arc<std::fs::File>,
  /// Every record, in journal order (the timeline is built from them).
  records: Mutex<Vec<Record>>,
  started_at: DateTime<Utc>,
  /// Serializes approval prompts.
  approvals: tokio::sync::Mutex<()>,
  /// Requests from outside the run, and the steps waiting for an answer.
  control: control::Control,
}

impl Shared {
  /// Journal a transition; it is durable when this returns. Concurrent steps share fsyncs
  /// (group commit): a fleet of hundreds of steps starting at once would otherwise queue
  /// hundreds of fsyncs, one after another, on the critical path.
  ///
  /// Waiting is asynchronous on purpose. It used to block the thread (`block_in_place` around a
  /// std mutex): every step waiting for the disk then held a thread, and tokio started another
  /// worker to replace it, so the fleet benchmark's 720 steps ran on ~190 threads. Each thread
  /// got its own malloc arena (up to 16 on 2 cores) that kept its freed memory: ~35 MB of the
  /// run's 60 MB peak RSS. Now the two workers, plus one blocking thread for the fsync, serve
  /// every step.
  async fn log(&self, event: Event) -> Result<Record, JournalError> {
    let record = self.write(event).map_err(|err| self.journal_failed(err))?;
    self
      .make_durable(record.seq)
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
    let record = self.write(event).map_err(|err| self.journal_failed(err))?;
    let sync = || self.sync_file.sync_data();
    let multi_thread = tokio::runtime::Handle::try_current()
      .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let synced = if multi_thread {
      tokio::task::block_in_place(sync)
    } else {
      sync()
    };
    if let Err(source) = synced {
      let err = self.sync_failed(source);
      return Err(self.journal_failed(err));
    }
    self
      .journal
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner())
      .mark_durable(record.seq);
    self.observer.record(&record);
    Ok(record)
  }

  /// Write a record (not yet durable) and keep it for the timeline. Kept in write order, under
  /// the journal's lock, whether or not its writer is still waiting for the disk.
  fn write(&self, event: Event) -> Result<Record, JournalError> {
    let mut journal = self
      .journal
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner());
    let record = journal.write(event)?;
    self
      .records
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner())
      .push(record.clone());
    Ok(record)
  }

  /// An fsync failed: the journal cuts itself back to its last durable record.
  fn sync_failed(&self, source: std::io::Error) -> JournalError {
    self
      .journal
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner())
      .sync_failed(source)
  }

  /// Return once record `seq` is durable: either an fsync that started after it was written
  /// already finished, or this call fsyncs for it and every record written before.
  async fn make_durable(&self, seq: u64) -> Result<(), JournalError> {
    let mut durable = self.durable.lock().await;
    if *durable >= seq {
      return Ok(());
    }
    let upto = {
      let journal = self
        .journal
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
      // An fsync failed while this record waited: it was cut away with everything unsynced.
      if let Some(why) = journal.broken() {
        return Err(JournalError::Io {
          path: journal.path().to_path_buf(),
          source: std::io::Error::other(format!("not durable: a journal fsync failed ({why})")),
        });
      }
      journal.written_seq()
    };
    // On the blocking pool: no runtime worker waits for the disk, and the group commit keeps it
    // to one fsync (one thread) at a time.
    let file = Arc::clone(&self.sync_file);
    let synced = tokio::task::spawn_blocking(move || file.sync_data())
      .await
      .unwrap_or_else(|join| Err(std::io::Error::other(join)));
    if let Err(source) = synced {
      return Err(self.sync_failed(source));
    }
    *durable = upto;
    self
      .journal
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner())
      .mark_durable(upto);
    Ok(())
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
    let records = self
      .records
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner());
    records
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

  fn timeline(&self) -> Option<Timeline> {
    let records = self
      .records
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner());
    Timeline::from_records(&records)
  }
}

/// Where a step stands in this process.
#[derive(Debug, Clone, PartialEq)]
enum State {
  Pending,
  Running,
  Succeeded,
  /// Failed; `blocks` unless the step's on_failure is continue.
  Failed {
    blocks: bool,
  },
  Skipped,
  /// Never started because the run stopped.
  Cancelled,
}

impl State {
  fn is_terminal(&self) -> bool {
    !matches!(self, State::Pending | State::Running)
  }
}

/// What a resumed run knows from its journal.
#[derive(Debug, Default)]
struct Prior {
  succeeded: HashMap<String, BTreeMap<String, String>>,
  /// Succeeded steps that changed the world, in completion order (for rollback).
  changed: Vec<String>,
  skipped: Vec<String>,
  /// Steps with an intent and no outcome after it: the data loss the intent recorded.
  intents: HashMap<String, Option<DataLoss>>,
  /// Steps whose request was dispatched with no outcome after it (delivery unknown).
  dispatched: HashSet<String>,
  attempts: HashMap<String, u32>,
}

impl Prior {
  fn from_records(records: &[Record]) -> Prior {
    let mut prior = Prior::default();
    for record in records {
      match &record.event {
        Event::StepStarted {
          step,
          attempt,
          phase: Phase::Run,
        } => {
          prior.attempts.insert(step.clone(), *attempt);
        }
        Event::StepIntent {
          step,
          phase: Phase::Run,
          data_loss_ms,
          data_loss_unknown,
          ..
        } => {
          prior.intents.insert(
            step.clone(),
            DataLoss::from_journal(*data_loss_ms, data_loss_unknown.as_ref()),
          );
        }
        Event::StepDispatched {
          step,
          phase: Phase::Run,
          ..
        } => {
          prior.dispatched.insert(step.clone());
        }
        // A failure answers the dispatch before it (the request was refused or timed out, and
        // the retry policy already decided about it).
        Event::StepFailed {
          step,
          phase: Phase::Run,
          ..
        } => {
          prior.dispatched.remove(step);
        }
        Event::StepSucceeded {
          step,
          phase: Phase::Run,
          outputs,
          changed,
          ..
        } => {
          prior.succeeded.insert(step.clone(), outputs.clone());
          if *changed {
            prior.changed.push(step.clone());
          }
          prior.intents.remove(step);
          prior.dispatched.remove(step);
        }
        // A rolled-back step's change is undone: a resume runs it again, as if it had never
        // run (or the failed step would be retried against a world without that change).
        Event::StepSucceeded {
          step,
          phase: Phase::Rollback,
          ..
        } => {
          prior.succeeded.remove(step);
          prior.changed.retain(|id| id != step);
        }
        Event::StepSkipped { step, .. } => prior.skipped.push(step.clone()),
        _ => {}
      }
    }
    prior
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

/// Start a new run: journal `run_started`, then execute.
pub async fn start(
  plan: Arc<Plan>,
  cloud: Cloud,
  mut journal: Journal,
  options: RunOptions,
  operator: Operator,
) -> Result<RunOutcome, EngineError> {
  let Operator {
    observer,
    approver,
    signals,
  } = operator;
  journal.set_redactor(plan.redactor());
  let runbook = &plan.runbook;
  let now = Utc::now();
  let event = Event::RunStarted {
    run_id: options.run_id.clone(),
    runbook: runbook.name.clone(),
    runbook_path: runbook.path.display().to_string(),
    runbook_digest: format!("{:08x}", crc32fast::hash(runbook.source.as_bytes())),
    params: plan.display_params(),
    mode: RunMode::Live,
    backend: cloud.backend.clone(),
    time_scale: cloud.clock.scale(),
    incident_start: options.incident_start.unwrap_or(now),
    host: hostname(),
    user: crate::state::os_user(),
    caller: options.caller.clone(),
    pid: std::process::id(),
    rto_ms: runbook.objectives.rto.map(millis),
    rpo_ms: runbook.objectives.rpo.map(millis),
    accept_data_loss: options.accept_data_loss,
    force: options.force,
    steps: step_infos(&plan),
  };
  // The run's clock starts at its first record.
  let first = journal.append(event)?;
  observer.record(&first);
  let sync_file = journal.sync_handle()?;
  let control = control::Control::new(&journal, std::slice::from_ref(&first));
  let shared = Arc::new(Shared {
    plan,
    cloud,
    options,
    observer,
    approver,
    durable: tokio::sync::Mutex::new(first.seq),
    sync_file: Arc::new(sync_file),
    journal: Mutex::new(journal),
    started_at: first.ts,
    control,
    records: Mutex::new(vec![first]),
    approvals: tokio::sync::Mutex::new(()),
  });
  execute(shared, Prior::default(), signals).await
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
  let Operator {
    observer,
    approver,
    signals,
  } = operator;
  let Some(first) = records.first() else {
    return Err(EngineError::Resume("the journal is empty".into()));
  };
  let Event::RunStarted {
    run_id,
    runbook_digest,
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
  let digest = format!("{:08x}", crc32fast::hash(plan.runbook.source.as_bytes()));
  if &digest != runbook_digest {
    return Err(EngineError::Resume(format!(
      "{} changed since run {run_id} started; resuming it could repeat or skip the wrong steps",
      plan.runbook.path.display()
    )));
  }
  options.run_id = run_id.clone();
  options.accept_data_loss |= *accept_data_loss;
  options.force |= *force;
  options.incident_start = Some(*incident_start);
  journal.set_redactor(plan.redactor());
  let started_at = first.ts;
  let mut prior = Prior::from_records(&records);
  secrets::recover_outputs(&plan, &mut prior)?;
  let sync_file = journal.sync_handle()?;
  let control = control::Control::new(&journal, &records);
  let shared = Arc::new(Shared {
    plan,
    cloud,
    options,
    observer,
    approver,
    durable: tokio::sync::Mutex::new(journal.written_seq()),
    sync_file: Arc::new(sync_file),
    journal: Mutex::new(journal),
    records: Mutex::new(records),
    started_at,
    approvals: tokio::sync::Mutex::new(()),
    control,
  });
  shared
    .log(Event::RunResumed {
      host: hostname(),
      pid: std::process::id(),
      user: crate::state::os_user(),
      caller: shared.options.caller.clone(),
    })
    .await?;
  execute(shared, prior, signals).await
}

fn millis(duration: Duration) -> u64 {
  u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A step task's result.
struct Finished {
  index: usize,
  result: Result<StepDone, StepFailure>,
}

struct StepDone {
  outputs: BTreeMap<String, String>,
  changed: bool,
  skipped: bool,
}

struct StepFailure {
  /// The journal could not be written: the run must stop.
  fatal: Option<JournalError>,
}

async fn execute(
  shared: Arc<Shared>,
  prior: Prior,
  mut signals: watch::Receiver<u32>,
) -> Result<RunOutcome, EngineError> {
  let plan = shared.plan.clone();
  let steps = &plan.runbook.steps;
  let mut states: Vec<State> = vec![State::Pending; steps.len()];
  let mut outputs: HashMap<String, BTreeMap<String, String>> = HashMap::new();
  let mut changed_order: Vec<usize> = Vec::new();
  for (i, step) in steps.iter().enumerate() {
    if let Some(found) = prior.succeeded.get(&step.id) {
      states[i] = State::Succeeded;
      outputs.insert(step.id.clone(), found.clone());
    } else if prior.skipped.contains(&step.id) {
      states[i] = State::Skipped;
    }
  }
  for id in &prior.changed {
    if let Some(i) = steps.iter().position(|step| &step.id == id) {
      changed_order.push(i);
    }
  }
  let (cancel_tx, cancel_rx) = watch::channel(false);
  // Always-steps keep going after the first interrupt; a second one cuts them short too (the
  // cli has already killed every command's process group by then), and so does a closed fence.
  let (always_tx, always_rx) = watch::channel(false);
  let fence = shared.fence().clone();
  let mut fenced: Option<FenceReason> = None;
  let max_parallel = shared.options.max_parallel.max(1);
  let mut tasks: JoinSet<Finished> = JoinSet::new();
  // Which step each task runs: a task that panics returns only its id.
  let mut task_steps: HashMap<tokio::task::Id, usize> = HashMap::new();
  let mut running = 0usize;
  let mut stopping = false;
  let mut interrupted: Option<String> = None;
  // A second interrupt: always-steps that have not started never will.
  let mut cut_short = false;
  // A closed signal channel (its sender dropped) is not an interrupt; stop polling it, or
  // `changed()` returns at once forever and the scheduler spins.
  let mut signals_open = true;
  let mut rollback_wanted = false;
  let mut rollback_done = false;
  let mut failed_step: Option<String> = None;
  let mut fatal: Option<JournalError> = None;
  let prior_intents = Arc::new(prior.intents);
  let prior_attempts = Arc::new(prior.attempts);
  let prior_dispatched = Arc::new(prior.dispatched);
  // Requests from outside (approve, deny, cancel): taken up until the run ends.
  let (cancels_tx, mut cancels) = tokio::sync::mpsc::unbounded_channel();
  let poller = control::AbortOnDrop(tokio::spawn(control::poll(shared.clone(), cancels_tx)));

  loop {
    if fenced.is_none() {
      fenced = fence.reason();
      if fenced.is_some() {
        stop_everything(&cancel_tx, &always_tx);
        stopping = true;
      }
    }
    // Once stopping, steps that have not started never will (always-steps excepted, unless
    // the fence closed).
    if stopping {
      for (i, step) in steps.iter().enumerate() {
        if states[i] == State::Pending && (!step.always || cut_short || fenced.is_some()) {
          states[i] = State::Cancelled;
        }
      }
    }
    // Rollback runs once the in-flight steps have finished, before always-steps.
    if stopping
      && rollback_wanted
      && !rollback_done
      && running == 0
      && interrupted.is_none()
      && fenced.is_none()
    {
      rollback_done = true;
      rollback(&shared, &changed_order, &outputs, always_rx.clone()).await?;
    }
    // Launch what is ready.
    for &i in &plan.order {
      if running >= max_parallel {
        break;
      }
      if states[i] != State::Pending {
        continue;
      }
      let step = &steps[i];
      let deps = &plan.deps[i];
      if step.always {
        if stopping && running > 0 && !rollback_done && rollback_wanted {
          continue;
        }
        if !deps.iter().all(|&dep| states[dep].is_terminal()) {
          continue;
        }
      } else {
        if deps.iter().any(|&dep| {
          matches!(
            states[dep],
            State::Skipped | State::Cancelled | State::Failed { blocks: true }
          )
        }) {
          let blocker = deps
            .iter()
            .find(|&&dep| {
              matches!(
                states[dep],
                State::Skipped | State::Cancelled | State::Failed { blocks: true }
              )
            })
            .map(|&dep| steps[dep].id.clone())
            .unwrap_or_default();
          shared
            .log(Event::StepSkipped {
              step: step.id.clone(),
              reason: format!("needs `{blocker}`, which did not succeed"),
            })
            .await?;
          states[i] = State::Skipped;
          continue;
        }
        if !deps.iter().all(|&dep| states[dep].is_terminal()) {
          continue;
        }
      }
      states[i] = State::Running;
      running += 1;
      let shared = shared.clone();
      // Only the outputs this step may reference (validation allows `steps.X.outputs` of
      // ancestors only): a copy of every output for every step is quadratic in a fleet.
      let outputs = ancestor_outputs(&plan.deps, steps, i, &outputs);
      let cancel = if step.always {
        always_rx.clone()
      } else {
        cancel_rx.clone()
      };
      let intents = prior_intents.clone();
      let attempts = prior_attempts.clone();
      let dispatched = prior_dispatched.clone();
      let task = tasks.spawn(async move {
        let result = run_step(
          &shared,
          i,
          &outputs,
          cancel,
          &intents,
          &attempts,
          &dispatched,
        )
        .await;
        Finished { index: i, result }
      });
      task_steps.insert(task.id(), i);
    }
    if running == 0 {
      if !states.contains(&State::Pending) {
        break;
      }
      // Only a pending rollback holds steps back now; it runs at the top of the loop. Anything
      // else still pending could never start: give up on it rather than spin.
      if !(stopping && rollback_wanted && !rollback_done && interrupted.is_none()) {
        for state in states.iter_mut().filter(|state| **state == State::Pending) {
          *state = State::Cancelled;
        }
      }
      continue;
    }
    tokio::select! {
      joined = tasks.join_next_with_id() => {
        let Some(joined) = joined else { continue };
        running -= 1;
        let (i, result, crashed) = match joined {
          Ok((id, finished)) => {
            task_steps.remove(&id);
            (finished.index, finished.result, false)
          }
          Err(join) => {
            // Every task is spawned above with its step recorded.
            let Some(i) = task_steps.remove(&join.id()) else {
              continue;
            };
            let logged = journal_crash(&shared, &steps[i], Phase::Run, join).await;
            (i, Err(StepFailure { fatal: logged.err() }), true)
          }
        };
        let step = &steps[i];
        match result {
          Ok(done) if done.skipped => states[i] = State::Skipped,
          Ok(done) => {
            states[i] = State::Succeeded;
            if done.changed {
              changed_order.push(i);
            }
            outputs.insert(step.id.clone(), done.outputs);
          }
          Err(failure) => {
            if let Some(err) = failure.fatal {
              fatal = Some(err);
              stopping = true;
              states[i] = State::Failed { blocks: true };
              continue;
            }
            // A crash is a bug in drctl, not a failure the runbook planned for: it always
            // stops the run, whatever `on_failure` says.
            let blocks = crashed || step.on_failure != OnFailure::Continue || step.always;
            states[i] = State::Failed { blocks };
            if interrupted.is_none() && blocks && !step.always {
              failed_step.get_or_insert_with(|| step.id.clone());
              stopping = true;
              if step.on_failure == OnFailure::Rollback {
                rollback_wanted = true;
              }
            }
            if step.always && blocks {
              failed_step.get_or_insert_with(|| step.id.clone());
            }
          }
        }
      }
      _ = fence.closed(), if fenced.is_none() => {
        // Picked up at the top of the loop.
      }
      Some(by) = cancels.recv() => {
        // A cancel stops the run as a first interrupt does: resumable, always-steps run.
        if interrupted.is_none() {
          interrupted = Some(format!("cancelled by {by}"));
          stopping = true;
          let _ = cancel_tx.send(true);
        }
      }
      changed = signals.changed(), if signals_open && !cut_short => {
        if changed.is_err() {
          signals_open = false;
          continue;
        }
        let count = *signals.borrow();
        if count > 0 && interrupted.is_none() {
          interrupted = Some("SIGINT".into());
          stopping = true;
          let _ = cancel_tx.send(true);
        }
        if count >= 2 {
          interrupted = Some("SIGINT twice: always-steps cut short".into());
          cut_short = true;
          let _ = always_tx.send(true);
        }
      }
    }
  }

  // The steps are done: with `recovered_when`, the run ends once the application is recovered.
  if failed_step.is_none() && interrupted.is_none() && fatal.is_none() && fence.reason().is_none() {
    interrupted = recovery::await_recovery(&shared, &outputs, &mut signals, &mut cancels).await?;
  }
  drop(poller);
  if let Some(reason) = fenced.or_else(|| fence.reason()) {
    return fence_stopped(&shared, reason).await;
  }
  if let Some(err) = fatal {
    return Err(err.into());
  }
  if let Some(signal) = interrupted {
    shared.log(Event::RunInterrupted { signal }).await?;
    let timeline = shared
      .timeline()
      .ok_or_else(|| EngineError::Resume("journal lost its first record".into()))?;
    return Ok(RunOutcome {
      status: RunStatus::Interrupted,
      timeline,
    });
  }
  let timeline = shared
    .timeline()
    .ok_or_else(|| EngineError::Resume("journal lost its first record".into()))?;
  let status = if failed_step.is_some() {
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
      failed_step,
    })
    .await?;
  let timeline = shared
    .timeline()
    .ok_or_else(|| EngineError::Resume("journal lost its first record".into()))?;
  Ok(RunOutcome { status, timeline })
}

/// A step's task ended abnormally (it panicked): journal the step (in `phase`) as failed, so
/// that the run fails and its always-steps run, and a resume retries the step (observing before
/// it applies, as after any crash: the panic may have struck after the change was made).
async fn journal_crash(
  shared: &Shared,
  step: &Step,
  phase: Phase,
  join: tokio::task::JoinError,
) -> Result<(), JournalError> {
  let why = if join.is_panic() {
    let payload = join.into_panic();
    payload
      .downcast_ref::<&str>()
      .map(|text| (*text).to_string())
      .or_else(|| payload.downcast_ref::<String>().cloned())
      .unwrap_or_else(|| "no message".into())
  } else {
    "it was cancelled".into()
  };
  let message = format!(
    "internal error: the step's task panicked ({why}); this is a bug in drctl. \
     The step's change may or may not have been made: `drctl resume` observes it again \
     before applying"
  );
  tracing::error!(step = %step.id, "{message}");
  let attempt = shared.last_attempt(&step.id, phase);
  shared
    .log(Event::StepFailed {
      step: step.id.clone(),
      attempt,
      phase,
      error: StepError {
        message,
        code: None,
        request_id: None,
        http_status: None,
        retryable: false,
      },
      will_retry: false,
      backoff_ms: None,
    })
    .await
    .map(|_| ())
}

/// Cancel every step, always-steps included: the fence closed.
fn stop_everything(cancel: &watch::Sender<bool>, always: &watch::Sender<bool>) {
  let _ = cancel.send(true);
  let _ = always.send(true);
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

fn step_error(err: &ActionError) -> StepError {
  StepError {
    message: err.message.clone(),
    code: err.cloud.as_ref().and_then(|cloud| cloud.code.clone()),
    request_id: err
      .cloud
      .as_ref()
      .and_then(|cloud| cloud.request_id.clone()),
    http_status: err.cloud.as_ref().and_then(|cloud| cloud.http_status),
    retryable: err.retryable,
  }
}

/// The outputs of the steps `index` depends on, transitively.
fn ancestor_outputs(
  deps: &[Vec<usize>],
  steps: &[Step],
  index: usize,
  outputs: &HashMap<String, BTreeMap<String, String>>,
) -> HashMap<String, BTreeMap<String, String>> {
  let mut seen = HashSet::new();
  let mut stack = deps[index].clone();
  let mut found = HashMap::new();
  while let Some(dep) = stack.pop() {
    if !seen.insert(dep) {
      continue;
    }
    stack.extend(deps[dep].iter().copied());
    let id = &steps[dep].id;
    if let Some(values) = outputs.get(id) {
      found.insert(id.clone(), values.clone());
    }
  }
  found
}

/// Run one step to completion (all attempts).
async fn run_step(
  shared: &Arc<Shared>,
  index: usize,
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
  intents: &HashMap<String, Option<DataLoss>>,
  attempts_before: &HashMap<String, u32>,
  dispatched: &HashSet<String>,
) -> Result<StepDone, StepFailure> {
  let fatal = |err: JournalError| StepFailure { fatal: Some(err) };
  let plan = &shared.plan;
  let step: &Step = plan.step(index);
  let run = shared.run_values();
  let scope = plan.scope(&run, outputs);
  let first_attempt = attempts_before.get(&step.id).copied().unwrap_or(0) + 1;
  let fail = async |attempt: u32, err: ActionError| -> Result<StepDone, StepFailure> {
    shared
      .log(Event::StepFailed {
        step: step.id.clone(),
        attempt,
        phase: Phase::Run,
        error: step_error(&err),
        will_retry: false,
        backoff_ms: None,
      })
      .await
      .map_err(fatal)?;
    Err(StepFailure { fatal: None })
  };

  match evaluate_when(step, &scope) {
    Ok(true) => {}
    Ok(false) => {
      shared
        .log(Event::StepSkipped {
          step: step.id.clone(),
          reason: format!(
            "`when: {}` is false",
            step.when.as_ref().map_or("", |when| when.source())
          ),
        })
        .await
        .map_err(fatal)?;
      return Ok(StepDone {
        outputs: BTreeMap::new(),
        changed: false,
        skipped: true,
      });
    }
    Err(err) => {
      shared
        .log(Event::StepStarted {
          step: step.id.clone(),
          attempt: first_attempt,
          phase: Phase::Run,
        })
        .await
        .map_err(fatal)?;
      return fail(first_attempt, ActionError::failed(err)).await;
    }
  }

  if let Some(approval) = &step.approval {
    if !shared.options.assume_yes {
      let prompt = approval
        .prompt
        .render(&scope)
        .unwrap_or_else(|_| approval.prompt.source().to_string());
      let prompt = plan.redactor().redact(&prompt);
      let notices = control::notices(shared, &scope, step, &prompt);
      let verdict =
        control::await_approval(shared, step, approval, &prompt, notices, cancel.clone())
          .await
          .map_err(fatal)?;
      if let Some(refusal) = verdict.refusal(&step.id) {
        shared
          .log(Event::StepStarted {
            step: step.id.clone(),
            attempt: first_attempt,
            phase: Phase::Run,
          })
          .await
          .map_err(fatal)?;
        return fail(first_attempt, ActionError::failed(refusal)).await;
      }
    }
  }

  let bound = bind_call(&step.call, &scope);
  let (def, args) = match bound {
    Ok(bound) => bound,
    Err(err) => {
      shared
        .log(Event::StepStarted {
          step: step.id.clone(),
          attempt: first_attempt,
          phase: Phase::Run,
        })
        .await
        .map_err(fatal)?;
      return fail(first_attempt, ActionError::failed(err)).await;
    }
  };

  let clock = shared.cloud.clock;
  let step_id = step.id.clone();
  let observer = shared.observer.clone();
  let progress = move |status: &str| observer.waiting(&step_id, status);
  let dispatch = journal_dispatch(shared, &step.id, Phase::Run);
  let processes = journal_processes(shared, &step.id, Phase::Run);
  let ctx = Ctx {
    cloud: &shared.cloud,
    run_id: &shared.options.run_id,
    step_id: &step.id,
    rpo: plan.runbook.objectives.rpo,
    accept_data_loss: shared.options.accept_data_loss || step.accept_data_loss,
    force: shared.options.force,
    progress: &progress,
    cancel: cancel.clone(),
    single_probe: false,
    expected: step.budget,
    run: shared.run_facts(),
    dispatch: Some(&dispatch),
    processes: Some(&processes),
  };
  // An intent from before a crash: this step may already have applied its change.
  let mut intent_loss: Option<Option<DataLoss>> = intents.get(&step.id).cloned();
  // A request sent before a crash whose answer was lost: at-most-once effects stop there.
  let mut unanswered = dispatched.contains(&step.id);
  let last_attempt = first_attempt + step.retry.attempts.max(1) - 1;
  let mut attempt = first_attempt;
  loop {
    shared
      .log(Event::StepStarted {
        step: step.id.clone(),
        attempt,
        phase: Phase::Run,
      })
      .await
      .map_err(fatal)?;
    crash_hook::strike(&shared.cloud.backend, &step.id, crash_hook::Point::Start);
    let work = attempt_action(
      shared,
      &step.id,
      attempt,
      Phase::Run,
      def,
      &args,
      &ctx,
      &mut intent_loss,
      std::mem::take(&mut unanswered),
    );
    let result = match tokio::time::timeout(clock.to_wall(step.timeout), work).await {
      Ok(result) => result,
      Err(_) => Err(ActionError::failed(format!(
        "timed out after {} (the step's timeout)",
        format_duration(step.timeout)
      ))),
    };
    match result {
      Ok((outcome, changed)) => {
        let mut outputs = outcome.outputs;
        if let Some(loss) = &outcome.data_loss {
          // An unknown loss is an empty value, never `0`.
          outputs
            .entry("data_loss_seconds".into())
            .or_insert_with(|| {
              loss
                .bound()
                .map_or(String::new(), |loss| loss.as_secs().to_string())
            });
        }
        shared
          .log(Event::StepSucceeded {
            step: step.id.clone(),
            attempt,
            phase: Phase::Run,
            changed,
            outputs: outputs.clone(),
            data_loss_ms: DataLoss::journal_ms(outcome.data_loss.as_ref()),
            summary: outcome.summary,
            data_loss_unknown: DataLoss::journal_unknown(outcome.data_loss.as_ref()),
          })
          .await
          .map_err(fatal)?;
        return Ok(StepDone {
          outputs,
          changed,
          skipped: false,
        });
      }
      Err(err) => {
        let interrupted = *cancel.borrow();
        if !err.retryable || attempt >= last_attempt || interrupted {
          let failed = fail(attempt, err).await;
          if step.fence && !interrupted {
            shared
              .log(pending_fence(step, def, &args))
              .await
              .map_err(fatal)?;
          }
          return failed;
        }
        let backoff = backoff(
          step.retry.backoff,
          step.retry.max_backoff,
          attempt - first_attempt,
        );
        shared
          .log(Event::StepFailed {
            step: step.id.clone(),
            attempt,
            phase: Phase::Run,
            error: step_error(&err),
            will_retry: true,
            backoff_ms: Some(millis(backoff)),
          })
          .await
          .map_err(fatal)?;
        let mut cancel = cancel.clone();
        tokio::select! {
          _ = clock.sleep(backoff) => {}
          _ = cancel.wait_for(|cancelled| *cancelled) => {}
        }
        attempt += 1;
      }
    }
  }
}

/// The journal record of a fence step that could not be applied: what to apply later, where.
fn pending_fence(step: &Step, def: &ActionDef, args: &Args) -> Event {
  Event::FencePending {
    step: step.id.clone(),
    action: def.spec.name.to_string(),
    region: args.opt_str("region").unwrap_or_default().to_string(),
    args: args.as_json().clone(),
  }
}

/// One attempt of an action. A check just runs. An effect observes first; only when its effect is
/// absent does it journal the intent (durably, before the call) and apply; then it verifies.
///
/// `intent` is what the journal says about an earlier intent of this step (from a crashed
/// process or an earlier attempt): `Some(data_loss_ms)` when one exists. It decides whether a
/// world already in its desired state counts as changed by this run, and keeps the data loss
/// measured before the change, which the change may have erased.
///
/// `unanswered`: the journal shows this step's request dispatched before a crash with no outcome
/// after it. An at-most-once effect ([`Effect::unconfirmed`]) then records its unconfirmed
/// outcome instead of observing and applying again.
#[allow(clippy::too_many_arguments)] // each argument is a distinct part of one attempt
async fn attempt_action(
  shared: &Shared,
  step: &str,
  attempt: u32,
  phase: Phase,
  def: &ActionDef,
  args: &Args,
  ctx: &Ctx<'_>,
  intent: &mut Option<Option<DataLoss>>,
  unanswered: bool,
) -> Result<(Outcome, bool), ActionError> {
  let effect = match def.behaviour {
    Behaviour::Check(check) => return check.check(ctx, args).await.map(|outcome| (outcome, false)),
    Behaviour::Effect(effect) => effect,
  };
  if unanswered {
    if let Some(outcome) = effect.unconfirmed(ctx, args) {
      tracing::warn!(step, "{}", outcome.summary);
      return Ok((outcome, true));
    }
  }
  let observation = effect.observe(ctx, args).await?;
  let (token, changed, loss) = match observation.state {
    Observed::Done => (None, intent.is_some(), intent.clone().flatten()),
    Observed::InProgress => (
      None,
      true,
      intent.clone().flatten().or(observation.data_loss.clone()),
    ),
    Observed::Absent => {
      let loss = observation.data_loss.clone();
      shared
        .log(Event::StepIntent {
          step: step.to_string(),
          attempt,
          phase,
          change: observation.change.clone(),
          data_loss_ms: DataLoss::journal_ms(loss.as_ref()),
          data_loss_unknown: DataLoss::journal_unknown(loss.as_ref()),
        })
        .await
        .map_err(|err| ActionError::failed(format!("journal: {err}")))?;
      *intent = Some(loss.clone());
      // Right before the effect leaves: the intent's fsync may have taken long enough for the
      // lock to be lost.
      shared.fence().check().map_err(fenced)?;
      if phase == Phase::Run {
        crash_hook::strike(&shared.cloud.backend, step, crash_hook::Point::Apply);
      }
      (effect.apply(ctx, args).await?, true, loss)
    }
  };
  if phase == Phase::Run {
    crash_hook::strike(&shared.cloud.backend, step, crash_hook::Point::Verify);
  }
  let outcome = effect.verify(ctx, args, token.as_deref()).await?;
  let data_loss = outcome.data_loss.clone().or(loss);
  Ok((
    Outcome {
      data_loss,
      ..outcome
    },
    changed,
  ))
}

/// The step error of an effect the fence stopped before it left.
fn fenced(reason: FenceReason) -> ActionError {
  ActionError::failed(format!("not applied: {reason}"))
}

/// The hook an action calls right before its request leaves ([`Ctx::dispatching`]): journals
/// `step_dispatched`, fsynced, so a resumed run knows the request may have arrived.
fn journal_dispatch<'a>(
  shared: &'a Shared,
  step: &'a str,
  phase: Phase,
) -> impl Fn(&str) -> Result<(), String> + Send + Sync + 'a {
  move |what: &str| {
    shared
      .fence()
      .check()
      .map_err(|reason| format!("not sent: {reason}"))?;
    shared
      .log_blocking(Event::StepDispatched {
        step: step.to_string(),
        phase,
        what: what.to_string(),
      })
      .map(|_| ())
      .map_err(|err| err.to_string())
  }
}

/// The hook a command calls once its process group exists ([`Ctx::process_started`]): journals
/// `process_started`, fsynced, so the group is known even if drctl is SIGKILLed next.
fn journal_processes<'a>(
  shared: &'a Shared,
  step: &'a str,
  phase: Phase,
) -> impl Fn(u32, u64) -> Result<(), String> + Send + Sync + 'a {
  move |pgid: u32, leader_start: u64| {
    shared
      .log_blocking(Event::ProcessStarted {
        step: step.to_string(),
        phase,
        pgid,
        leader_start,
      })
      .map(|_| ())
      .map_err(|err| err.to_string())
  }
}

/// Exponential backoff with "equal jitter": half the delay fixed, half random, so retries from
/// many runs spread out but never collapse to zero.
pub fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
  let exp = base.saturating_mul(2u32.saturating_pow(retry.min(20)));
  let capped = exp.min(max.max(base));
  let half = capped / 2;
  half + half.mul_f64(fastrand::f64())
}

/// Run the rollback of every completed mutating step, newest first. (A step rolled back by an
/// earlier process is not among them: a resume runs it again first.)
async fn rollback(
  shared: &Arc<Shared>,
  changed_order: &[usize],
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
) -> Result<(), EngineError> {
  let plan = shared.plan.clone();
  for &i in changed_order.iter().rev() {
    let step = plan.step(i);
    if step.rollback.is_none() {
      continue;
    }
    // A failed rollback does not stop the others: each undoes its own step. Nor does one that
    // panics: each runs in its own task, as steps do.
    let task = tokio::spawn({
      let shared = shared.clone();
      let outputs = outputs.clone();
      let cancel = cancel.clone();
      async move {
        let step = shared.plan.step(i);
        match &step.rollback {
          Some(call) => rollback_step(&shared, step, call, &outputs, cancel).await,
          None => Ok(()),
        }
      }
    });
    match task.await {
      Ok(done) => done?,
      Err(join) => journal_crash(shared, step, Phase::Rollback, join).await?,
    }
  }
  Ok(())
}

/// One step's rollback, under the step's own timeout and retry policy: a throttled API must not
/// leave a half-failed-over system behind when one more attempt would have put it back. The
/// rollback action observes before it applies, so an attempt after a failed one changes nothing
/// that is already undone.
async fn rollback_step(
  shared: &Arc<Shared>,
  step: &Step,
  call: &ActionCall,
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
) -> Result<(), EngineError> {
  let plan = &shared.plan;
  let run = shared.run_values();
  let scope = plan.scope(&run, outputs);
  let observer = shared.observer.clone();
  let id = step.id.clone();
  let progress = move |status: &str| observer.waiting(&id, status);
  let dispatch = journal_dispatch(shared, &step.id, Phase::Rollback);
  let processes = journal_processes(shared, &step.id, Phase::Rollback);
  let ctx = Ctx {
    cloud: &shared.cloud,
    run_id: &shared.options.run_id,
    step_id: &step.id,
    rpo: plan.runbook.objectives.rpo,
    accept_data_loss: true,
    // A rollback puts records back where they were: it is never refused.
    force: true,
    progress: &progress,
    cancel: cancel.clone(),
    single_probe: false,
    expected: None,
    run: shared.run_facts(),
    dispatch: Some(&dispatch),
    processes: Some(&processes),
  };
  let clock = shared.cloud.clock;
  let attempts = step.retry.attempts.max(1);
  for attempt in 1..=attempts {
    shared
      .log(Event::StepStarted {
        step: step.id.clone(),
        attempt,
        phase: Phase::Rollback,
      })
      .await?;
    crash_hook::strike(&shared.cloud.backend, &step.id, crash_hook::Point::Rollback);
    let work = async {
      let (def, args) = bind_call(call, &scope).map_err(ActionError::failed)?;
      let mut no_prior_intent = None;
      attempt_action(
        shared,
        &step.id,
        attempt,
        Phase::Rollback,
        def,
        &args,
        &ctx,
        &mut no_prior_intent,
        false,
      )
      .await
      .map(|(outcome, _)| outcome)
    };
    let result = match tokio::time::timeout(clock.to_wall(step.timeout), work).await {
      Ok(result) => result,
      Err(_) => Err(ActionError::failed(format!(
        "rollback timed out after {} (the step's timeout)",
        format_duration(step.timeout)
      ))),
    };
    let err = match result {
      Ok(outcome) => {
        shared
          .log(Event::StepSucceeded {
            step: step.id.clone(),
            attempt,
            phase: Phase::Rollback,
            changed: true,
            outputs: BTreeMap::new(),
            data_loss_ms: None,
            data_loss_unknown: None,
            summary: outcome.summary,
          })
          .await?;
        return Ok(());
      }
      Err(err) => err,
    };
    let retry = err.retryable && attempt < attempts && !*cancel.borrow();
    let backoff = retry.then(|| backoff(step.retry.backoff, step.retry.max_backoff, attempt - 1));
    shared
      .log(Event::StepFailed {
        step: step.id.clone(),
        attempt,
        phase: Phase::Rollback,
        error: step_error(&err),
        will_retry: retry,
        backoff_ms: backoff.map(millis),
      })
      .await?;
    let Some(backoff) = backoff else { break };
    let mut cancel = cancel.clone();
    tokio::select! {
      _ = clock.sleep(backoff) => {}
      _ = cancel.wait_for(|cancelled| *cancelled) => {}
    }
  }
  Ok(())
}

mod control;
mod crash_hook;
mod recovery;
pub mod region_fence;
mod secrets;
#[cfg(test)]
mod tests;

pub use secrets::bind_resumed;
