//! One attempt of a step's action (in its run or its rollback). A check just runs. An effect
//! observes first; only when its effect is absent does it journal the intent (durably, before
//! the call) and apply; then it verifies. The fence is checked right before the effect leaves.

use tokio::sync::watch;

use super::{crash_hook, Shared};
use crate::{
  actions::{
    ActionDef, ActionError, Args, Behaviour, Ctx, DispatchHook, Effect, Observation, Observed,
    Outcome, ProcessHook,
  },
  cloud::FenceReason,
  state::{journal::Phase, DataLoss, Event},
};

/// What an attempt's action reports back to the engine while it runs: progress of its waits,
/// and the journal records it needs made before a request leaves or once a process starts.
pub(super) struct Hooks<'a> {
  shared: &'a Shared,
  step: &'a str,
  progress: Box<dyn Fn(&str) + Send + Sync + 'a>,
  /// The last progress line, for the error of an attempt the step's timeout ends.
  last_progress: std::sync::Arc<std::sync::Mutex<Option<String>>>,
  dispatch: Box<DispatchHook<'a>>,
  processes: Box<ProcessHook<'a>>,
}

impl<'a> Hooks<'a> {
  /// The hooks of `step`'s attempts in `phase`.
  pub(super) fn new(shared: &'a Shared, step: &'a str, phase: Phase) -> Hooks<'a> {
    let observer = shared.observer.clone();
    let id = step.to_string();
    let last_progress = std::sync::Arc::new(std::sync::Mutex::new(None));
    let last = last_progress.clone();
    Hooks {
      shared,
      step,
      progress: Box::new(move |status: &str| {
        *last
          .lock()
          .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status.to_owned());
        observer.waiting(&id, status)
      }),
      last_progress,
      dispatch: Box::new(journal_dispatch(shared, step, phase)),
      processes: Box::new(journal_processes(shared, step, phase)),
    }
  }

  /// What the action last reported while it waited (`None`: nothing yet).
  pub(super) fn last_progress(&self) -> Option<String> {
    self
      .last_progress
      .lock()
      .unwrap_or_else(std::sync::PoisonError::into_inner)
      .clone()
  }

  /// The context the action runs in: every guard in place (no data loss beyond the RPO
  /// accepted, no forcing), no budget; the caller relaxes what its phase allows.
  pub(super) fn ctx(&'a self, cancel: watch::Receiver<bool>) -> Ctx<'a> {
    let shared = self.shared;
    Ctx {
      cloud: &shared.cloud,
      run_id: &shared.options.run_id,
      step_id: self.step,
      rpo: shared.plan.runbook.objectives.rpo,
      accept_data_loss: false,
      force: false,
      progress: &*self.progress,
      cancel,
      single_probe: false,
      expected: None,
      run: shared.run_facts(),
      dispatch: Some(&*self.dispatch),
      processes: Some(&*self.processes),
    }
  }
}

/// One attempt: which step, which of its attempts, in which phase, of which bound action.
pub(super) struct Attempt<'a> {
  pub shared: &'a Shared,
  pub step: &'a str,
  pub number: u32,
  pub phase: Phase,
  pub def: &'a ActionDef,
  pub args: &'a Args,
  pub ctx: &'a Ctx<'a>,
}

impl Attempt<'_> {
  /// Run the attempt: its outcome, and whether this run changed the world.
  ///
  /// `intent` is what the journal says about an earlier intent of this step (from a crashed
  /// process or an earlier attempt): `Some(data_loss)` when one exists. It decides whether a
  /// world already in its desired state counts as changed by this run, and keeps the data loss
  /// measured before the change, which the change may have erased.
  ///
  /// `unanswered`: the journal shows this step's request dispatched before a crash with no
  /// outcome after it. An at-most-once effect ([`Effect::unconfirmed`]) then records its
  /// unconfirmed outcome instead of observing and applying again.
  pub(super) async fn run(
    &self,
    intent: &mut Option<Option<DataLoss>>,
    unanswered: bool,
  ) -> Result<(Outcome, bool), ActionError> {
    let (ctx, args) = (self.ctx, self.args);
    let effect = match self.def.behaviour {
      Behaviour::Check(check) => {
        return check.check(ctx, args).await.map(|outcome| (outcome, false))
      }
      Behaviour::Effect(effect) => effect,
    };
    if unanswered {
      if let Some(outcome) = effect.unconfirmed(ctx, args) {
        tracing::warn!(step = self.step, "{}", outcome.summary);
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
        (self.apply(effect, &observation, intent).await?, true, loss)
      }
    };
    self.strike(crash_hook::Point::Verify);
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

  /// The effect is absent: journal the intent (fsynced), then apply, unless the fence closed
  /// meanwhile. Its token, for `verify`.
  async fn apply(
    &self,
    effect: &dyn Effect,
    observation: &Observation,
    intent: &mut Option<Option<DataLoss>>,
  ) -> Result<Option<String>, ActionError> {
    let loss = observation.data_loss.clone();
    self
      .shared
      .log(Event::StepIntent {
        step: self.step.to_string(),
        attempt: self.number,
        phase: self.phase,
        change: observation.change.clone(),
        data_loss_ms: DataLoss::journal_ms(loss.as_ref()),
        data_loss_unknown: DataLoss::journal_unknown(loss.as_ref()),
      })
      .await
      .map_err(|err| ActionError::failed(format!("journal: {err}")))?;
    *intent = Some(loss);
    // Right before the effect leaves: the intent's fsync may have taken long enough for the
    // lock to be lost.
    self.shared.fence().check().map_err(fenced)?;
    self.strike(crash_hook::Point::Apply);
    effect.apply(self.ctx, self.args).await
  }

  /// The test-only crash hook, in a step's run (a rollback has its own point).
  fn strike(&self, point: crash_hook::Point) {
    if self.phase == Phase::Run {
      crash_hook::strike(&self.shared.cloud.backend, self.step, point);
    }
  }
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
