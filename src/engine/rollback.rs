//! Rollback: after a step with `on_failure: rollback` fails, the `rollback` action of every
//! completed mutating step runs, newest first, each under its step's timeout and retry policy.

use std::{
  collections::{BTreeMap, HashMap},
  sync::Arc,
};

use tokio::sync::watch;

use super::{
  attempt::{Attempt, Hooks},
  crash_hook, retry,
  step::{failed_event, journal_crash, step_error},
  EngineError, Shared,
};
use crate::{
  actions::{ActionDef, ActionError, Args, Ctx, Outcome},
  plan::bind_call,
  runbook::{ActionCall, Step},
  state::{journal::Phase, Event},
};

/// Run the rollback of every completed mutating step (`changed`, in completion order), newest
/// first. (A step rolled back by an earlier process is not among them: a resume runs it again
/// first.)
pub(super) async fn rollback(
  shared: &Arc<Shared>,
  changed: &[usize],
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
) -> Result<(), EngineError> {
  let plan = shared.plan.clone();
  for &i in changed.iter().rev() {
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
  let run = shared.run_values();
  let bound = bind_call(call, &shared.plan.scope(&run, outputs));
  let hooks = Hooks::new(shared, &step.id, Phase::Rollback);
  let ctx = Ctx {
    accept_data_loss: true,
    // A rollback puts records back where they were: it is never refused.
    force: true,
    ..hooks.ctx(cancel.clone())
  };
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
    let err = match attempt_rollback(shared, step, attempt, &bound, &ctx, &hooks).await {
      Ok(outcome) => return rolled_back(shared, step, attempt, outcome).await,
      Err(err) => err,
    };
    let stopping = *cancel.borrow();
    let backoff = retry::next_attempt(&step.retry, &err, attempt, (1, attempts), stopping);
    shared
      .log(failed_event(
        &step.id,
        attempt,
        Phase::Rollback,
        step_error(&err),
        backoff,
      ))
      .await?;
    let Some(backoff) = backoff else { break };
    retry::pause(shared.cloud.clock, backoff, cancel.clone()).await;
  }
  Ok(())
}

/// One attempt of a rollback action (`bound`: its call bound, or why it could not be), under
/// the step's timeout.
async fn attempt_rollback(
  shared: &Shared,
  step: &Step,
  number: u32,
  bound: &Result<(&'static ActionDef, Args), String>,
  ctx: &Ctx<'_>,
  hooks: &Hooks<'_>,
) -> Result<Outcome, ActionError> {
  let work = async {
    let (def, args) = bound
      .as_ref()
      .map_err(|err| ActionError::failed(err.clone()))?;
    let attempt = Attempt {
      shared,
      step: &step.id,
      number,
      phase: Phase::Rollback,
      def,
      args,
      ctx,
    };
    let mut no_prior_intent = None;
    attempt
      .run(&mut no_prior_intent, false)
      .await
      .map(|(outcome, _)| outcome)
  };
  let clock = shared.cloud.clock;
  retry::within_timeout(
    clock,
    step.timeout,
    "rollback timed out",
    || hooks.last_progress(),
    work,
  )
  .await
}

/// Journal the step rolled back.
async fn rolled_back(
  shared: &Shared,
  step: &Step,
  attempt: u32,
  outcome: Outcome,
) -> Result<(), EngineError> {
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
  Ok(())
}
