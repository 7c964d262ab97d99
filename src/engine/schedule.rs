//! The DAG scheduler. Each turn of its loop:
//!
//! 1. notices a closed fence (then everything stops at once);
//! 2. once the run is stopping, cancels the steps that will never start;
//! 3. runs the rollback once it is due (the steps in flight have finished, before always-steps);
//! 4. starts every step that is ready, up to `max_parallel`, and skips the ones a failed,
//!    skipped or cancelled dependency blocks;
//! 5. waits for news: a step finished, the fence closed, a cancel request, or a signal.
//!
//! It ends when no step runs and none is pending, and hands how the run stopped
//! ([`Ending`]) to `finish_run`.

use std::{
  collections::{BTreeMap, HashMap, HashSet},
  sync::Arc,
};

use tokio::{
  sync::{mpsc, watch},
  task::JoinSet,
};

use super::{
  control,
  prior::Prior,
  rollback::rollback,
  step::{journal_crash, run_step, Finished, Resumed, StepFailure},
  Ending, EngineError, Shared,
};
use crate::{
  cloud::FenceReason,
  plan::Plan,
  runbook::{OnFailure, Step},
  state::{journal::Phase, Event, JournalError},
};

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

  /// A step that needs this one will not run.
  fn blocks_dependents(&self) -> bool {
    matches!(
      self,
      State::Skipped | State::Cancelled | State::Failed { blocks: true }
    )
  }
}

/// The rollback a failed `on_failure: rollback` step asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rollback {
  NotWanted,
  /// Wanted and not run yet: it holds back always-steps.
  Due,
  Done,
}

/// Whether a pending step can start now.
enum Readiness {
  Ready,
  /// Not yet: a dependency has not finished (or a rollback is due first).
  Wait,
  /// Never: this dependency did not succeed.
  Blocked(usize),
}

/// What the scheduler waits for between turns.
enum News {
  Finished(Result<(tokio::task::Id, Finished), tokio::task::JoinError>),
  /// The fence closed (picked up at the top of the next turn), or nothing happened.
  Nothing,
  CancelRequested(String),
  Signal(Result<(), watch::error::RecvError>),
}

/// Run the plan's steps (those a resumed run still has to run) until no step runs and none is
/// pending; how the run stopped.
pub(super) async fn execute(
  shared: Arc<Shared>,
  prior: Prior,
  mut signals: watch::Receiver<u32>,
) -> Result<Ending, EngineError> {
  let mut schedule = Schedule::new(shared.clone(), prior);
  // Requests from outside (approve, deny, cancel): taken up until the run ends.
  let (cancels_tx, mut cancels) = mpsc::unbounded_channel();
  let _poller = control::AbortOnDrop(tokio::spawn(control::poll(shared, cancels_tx)));
  loop {
    schedule.notice_fence();
    schedule.cancel_unstartable();
    if schedule.rollback_due() {
      schedule.rollback = Rollback::Done;
      schedule.run_rollback().await?;
    }
    schedule.launch_ready().await?;
    if schedule.running == 0 {
      if !schedule.states.contains(&State::Pending) {
        break;
      }
      schedule.give_up_on_stuck();
      continue;
    }
    match schedule.news(&mut signals, &mut cancels).await {
      News::Finished(joined) => schedule.finished(joined).await,
      News::Nothing => {}
      News::CancelRequested(by) => schedule.interrupt(format!("cancelled by {by}")),
      News::Signal(changed) => schedule.signalled(changed, &signals),
    }
  }
  // The steps are done: with `recovered_when`, the run ends once the application is recovered.
  if schedule.failed_step.is_none()
    && schedule.interrupted.is_none()
    && schedule.fatal.is_none()
    && schedule.fenced.is_none()
    && schedule.shared.fence().reason().is_none()
  {
    schedule.interrupted = super::recovery::await_recovery(
      &schedule.shared,
      &schedule.outputs,
      &mut signals,
      &mut cancels,
    )
    .await?;
  }
  Ok(schedule.ending())
}

/// The scheduler's state: every step's, and the run's (stopping, interrupted, fenced).
struct Schedule {
  shared: Arc<Shared>,
  plan: Arc<Plan>,
  states: Vec<State>,
  outputs: HashMap<String, BTreeMap<String, String>>,
  /// Steps that changed the world, in completion order (a rollback undoes them newest first).
  changed: Vec<usize>,
  resumed: Arc<Resumed>,
  tasks: JoinSet<Finished>,
  /// Which step each task runs: a task that panics returns only its id.
  task_steps: HashMap<tokio::task::Id, usize>,
  running: usize,
  max_parallel: usize,
  /// Steps are cancelled by the first interrupt; always-steps keep going until a second one
  /// cuts them short too (the cli has already killed every command's process group by then),
  /// or the fence closes.
  cancel: (watch::Sender<bool>, watch::Receiver<bool>),
  always: (watch::Sender<bool>, watch::Receiver<bool>),
  stopping: bool,
  interrupted: Option<String>,
  /// A second interrupt: always-steps that have not started never will.
  cut_short: bool,
  fenced: Option<FenceReason>,
  /// A closed signal channel (its sender dropped) is not an interrupt; stop polling it, or
  /// `changed()` returns at once forever and the scheduler spins.
  signals_open: bool,
  rollback: Rollback,
  failed_step: Option<String>,
  fatal: Option<JournalError>,
}

impl Schedule {
  /// The schedule of a new run, or of a resumed one from what its journal says.
  fn new(shared: Arc<Shared>, prior: Prior) -> Schedule {
    let plan = shared.plan.clone();
    let steps = &plan.runbook.steps;
    let mut states = vec![State::Pending; steps.len()];
    let mut outputs = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
      if let Some(found) = prior.succeeded.get(&step.id) {
        states[i] = State::Succeeded;
        outputs.insert(step.id.clone(), found.clone());
      } else if prior.skipped.contains(&step.id) {
        states[i] = State::Skipped;
      }
    }
    let changed = prior
      .changed
      .iter()
      .filter_map(|id| steps.iter().position(|step| &step.id == id))
      .collect();
    let resumed = Arc::new(Resumed {
      intents: prior.intents,
      attempts: prior.attempts,
      dispatched: prior.dispatched,
    });
    let max_parallel = shared.options.max_parallel.max(1);
    Schedule {
      shared,
      plan,
      states,
      outputs,
      changed,
      resumed,
      tasks: JoinSet::new(),
      task_steps: HashMap::new(),
      running: 0,
      max_parallel,
      cancel: watch::channel(false),
      always: watch::channel(false),
      stopping: false,
      interrupted: None,
      cut_short: false,
      fenced: None,
      signals_open: true,
      rollback: Rollback::NotWanted,
      failed_step: None,
      fatal: None,
    }
  }

  fn steps(&self) -> &[Step] {
    &self.plan.runbook.steps
  }

  /// A closed fence stops everything: every step is cancelled, always-steps included.
  fn notice_fence(&mut self) {
    if self.fenced.is_some() {
      return;
    }
    self.fenced = self.shared.fence().reason();
    if self.fenced.is_some() {
      let _ = self.cancel.0.send(true);
      let _ = self.always.0.send(true);
      self.stopping = true;
    }
  }

  /// Once stopping, steps that have not started never will (always-steps excepted, unless
  /// they were cut short or the fence closed).
  fn cancel_unstartable(&mut self) {
    if !self.stopping {
      return;
    }
    let always_run = !self.cut_short && self.fenced.is_none();
    for (i, step) in self.plan.runbook.steps.iter().enumerate() {
      if self.states[i] == State::Pending && !(step.always && always_run) {
        self.states[i] = State::Cancelled;
      }
    }
  }

  /// The rollback runs once the steps in flight have finished, before always-steps; never
  /// after an interrupt or once the fence closed.
  fn rollback_due(&self) -> bool {
    self.stopping
      && self.rollback == Rollback::Due
      && self.running == 0
      && self.interrupted.is_none()
      && self.fenced.is_none()
  }

  async fn run_rollback(&self) -> Result<(), EngineError> {
    let cancel = self.always.1.clone();
    rollback(&self.shared, &self.changed, &self.outputs, cancel).await
  }

  /// Start every pending step that is ready, in the plan's order, up to `max_parallel`
  /// running; journal the blocked ones skipped.
  async fn launch_ready(&mut self) -> Result<(), EngineError> {
    let plan = self.plan.clone();
    for &i in &plan.order {
      if self.running >= self.max_parallel {
        break;
      }
      if self.states[i] != State::Pending {
        continue;
      }
      match self.readiness(i) {
        Readiness::Wait => {}
        Readiness::Blocked(blocker) => self.skip_blocked(i, blocker).await?,
        Readiness::Ready => self.launch(i),
      }
    }
    Ok(())
  }

  /// Whether pending step `i` can start: when all it needs has finished, and (unless it is an
  /// always-step) succeeded or failed with `on_failure: continue`.
  fn readiness(&self, i: usize) -> Readiness {
    let deps = &self.plan.deps[i];
    if self.steps()[i].always {
      if self.stopping && self.running > 0 && self.rollback == Rollback::Due {
        return Readiness::Wait;
      }
    } else if let Some(&blocker) = deps
      .iter()
      .find(|&&dep| self.states[dep].blocks_dependents())
    {
      return Readiness::Blocked(blocker);
    }
    if deps.iter().all(|&dep| self.states[dep].is_terminal()) {
      Readiness::Ready
    } else {
      Readiness::Wait
    }
  }

  async fn skip_blocked(&mut self, i: usize, blocker: usize) -> Result<(), EngineError> {
    let steps = self.steps();
    self
      .shared
      .log(Event::StepSkipped {
        step: steps[i].id.clone(),
        reason: format!("needs `{}`, which did not succeed", steps[blocker].id),
      })
      .await?;
    self.states[i] = State::Skipped;
    Ok(())
  }

  /// Start step `i` in its own task.
  fn launch(&mut self, i: usize) {
    self.states[i] = State::Running;
    self.running += 1;
    let shared = self.shared.clone();
    // Only the outputs this step may reference (validation allows `steps.X.outputs` of
    // ancestors only): a copy of every output for every step is quadratic in a fleet.
    let outputs = ancestor_outputs(&self.plan.deps, self.steps(), i, &self.outputs);
    let cancel = if self.steps()[i].always {
      self.always.1.clone()
    } else {
      self.cancel.1.clone()
    };
    let resumed = self.resumed.clone();
    let task = self.tasks.spawn(async move {
      let result = run_step(&shared, i, &outputs, cancel, &resumed).await;
      Finished { index: i, result }
    });
    self.task_steps.insert(task.id(), i);
  }

  /// Nothing runs, yet steps are pending. Only a rollback still due holds steps back (it runs
  /// at the top of the next turn); anything else pending could never start: give up on it
  /// rather than spin.
  fn give_up_on_stuck(&mut self) {
    if self.stopping && self.rollback == Rollback::Due && self.interrupted.is_none() {
      return;
    }
    for state in self
      .states
      .iter_mut()
      .filter(|state| **state == State::Pending)
    {
      *state = State::Cancelled;
    }
  }

  /// Wait for the next thing that happens to the run.
  async fn news(
    &mut self,
    signals: &mut watch::Receiver<u32>,
    cancels: &mut mpsc::UnboundedReceiver<String>,
  ) -> News {
    let fence = self.shared.fence();
    tokio::select! {
      joined = self.tasks.join_next_with_id() => joined.map_or(News::Nothing, News::Finished),
      _ = fence.closed(), if self.fenced.is_none() => News::Nothing,
      Some(by) = cancels.recv() => News::CancelRequested(by),
      changed = signals.changed(), if self.signals_open && !self.cut_short => News::Signal(changed),
    }
  }

  /// A step's task ended: record its result (a task that panicked is journalled as failed).
  async fn finished(
    &mut self,
    joined: Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
  ) {
    self.running -= 1;
    let (i, result, crashed) = match joined {
      Ok((id, finished)) => {
        self.task_steps.remove(&id);
        (finished.index, finished.result, false)
      }
      Err(join) => {
        // Every task is spawned by `launch` with its step recorded.
        let Some(i) = self.task_steps.remove(&join.id()) else {
          return;
        };
        let logged = journal_crash(&self.shared, &self.steps()[i], Phase::Run, join).await;
        (
          i,
          Err(StepFailure {
            fatal: logged.err(),
          }),
          true,
        )
      }
    };
    match result {
      Ok(done) if done.skipped => self.states[i] = State::Skipped,
      Ok(done) => {
        self.states[i] = State::Succeeded;
        if done.changed {
          self.changed.push(i);
        }
        let id = self.steps()[i].id.clone();
        self.outputs.insert(id, done.outputs);
      }
      Err(StepFailure { fatal: Some(err) }) => {
        self.fatal = Some(err);
        self.stopping = true;
        self.states[i] = State::Failed { blocks: true };
      }
      Err(StepFailure { fatal: None }) => self.failed(i, crashed),
    }
  }

  /// Step `i` failed (`crashed`: its task panicked): follow its `on_failure`.
  fn failed(&mut self, i: usize, crashed: bool) {
    let step = &self.plan.runbook.steps[i];
    // A crash is a bug in drctl, not a failure the runbook planned for: it always stops the
    // run, whatever `on_failure` says.
    let blocks = crashed || step.on_failure != OnFailure::Continue || step.always;
    self.states[i] = State::Failed { blocks };
    if self.interrupted.is_none() && blocks && !step.always {
      self.failed_step.get_or_insert_with(|| step.id.clone());
      self.stopping = true;
      if step.on_failure == OnFailure::Rollback {
        self.rollback = Rollback::Due;
      }
    }
    if step.always && blocks {
      self.failed_step.get_or_insert_with(|| step.id.clone());
    }
  }

  /// The first interrupt (a signal or a cancel request) stops the run gracefully: resumable,
  /// always-steps run.
  fn interrupt(&mut self, why: String) {
    if self.interrupted.is_none() {
      self.interrupted = Some(why);
      self.stopping = true;
      let _ = self.cancel.0.send(true);
    }
  }

  /// The signal count changed (or its channel closed); a second signal cuts always-steps
  /// short.
  fn signalled(
    &mut self,
    changed: Result<(), watch::error::RecvError>,
    signals: &watch::Receiver<u32>,
  ) {
    if changed.is_err() {
      self.signals_open = false;
      return;
    }
    let count = *signals.borrow();
    if count > 0 {
      self.interrupt("SIGINT".into());
    }
    if count >= 2 {
      self.interrupted = Some("SIGINT twice: always-steps cut short".into());
      self.cut_short = true;
      let _ = self.always.0.send(true);
    }
  }

  /// How the run stopped.
  fn ending(self) -> Ending {
    Ending {
      fenced: self.fenced,
      fatal: self.fatal,
      interrupted: self.interrupted,
      failed_step: self.failed_step,
    }
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
