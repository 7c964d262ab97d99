//! One step, to completion: its `when:`, its approval, its inputs bound, then its attempts
//! under its retry policy (see `retry`), each one an [`Attempt`].

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio::sync::watch;

use super::{
  attempt::{Attempt, Hooks},
  control, crash_hook, millis, retry, Shared,
};
use crate::{
  actions::{ActionDef, ActionError, Args, Ctx, Outcome},
  plan::{bind::approval_prompt, bind_call, evaluate_when, PlanScope},
  runbook::Step,
  state::{journal::Phase, DataLoss, Event, JournalError, StepError},
};

/// A step task's result.
pub(super) struct Finished {
  pub index: usize,
  pub result: Result<StepDone, StepFailure>,
}

pub(super) struct StepDone {
  pub outputs: BTreeMap<String, String>,
  pub changed: bool,
  pub skipped: bool,
}

pub(super) struct StepFailure {
  /// The journal could not be written: the run must stop.
  pub fatal: Option<JournalError>,
}

type StepResult = Result<StepDone, StepFailure>;

fn fatal(err: JournalError) -> StepFailure {
  StepFailure { fatal: Some(err) }
}

/// What the journal of an earlier process says about the steps still to run.
#[derive(Default)]
pub(super) struct Resumed {
  /// Steps with an intent and no outcome after it: the data loss the intent recorded.
  pub intents: HashMap<String, Option<DataLoss>>,
  /// The attempts each step made.
  pub attempts: HashMap<String, u32>,
  /// Steps whose request was dispatched with no outcome after it (delivery unknown).
  pub dispatched: HashSet<String>,
}

/// Whether a step goes ahead.
enum Gate {
  Open,
  /// Its `when:` is false: skipped, for this reason.
  Skip(String),
  /// It cannot run: its `when:` cannot be evaluated, or its approval was refused.
  Refused(String),
}

/// Run step `index` to completion (all attempts), with the outputs of its ancestors.
pub(super) async fn run_step(
  shared: &Shared,
  index: usize,
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
  resumed: &Resumed,
) -> StepResult {
  let step: &Step = shared.plan.step(index);
  let run = shared.run_values();
  let scope = shared.plan.scope(&run, outputs);
  let first_attempt = resumed.attempts.get(&step.id).copied().unwrap_or(0) + 1;
  let bound = match gate(shared, step, &scope, &cancel).await.map_err(fatal)? {
    Gate::Open => bind_call(&step.call, &scope),
    Gate::Skip(reason) => return skip(shared, step, reason).await,
    Gate::Refused(why) => Err(why),
  };
  let (def, args) = match bound {
    Ok(bound) => bound,
    Err(why) => return refuse(shared, step, first_attempt, why).await,
  };
  let hooks = Hooks::new(shared, &step.id, Phase::Run);
  let ctx = Ctx {
    accept_data_loss: shared.options.accept_data_loss || step.accept_data_loss,
    force: shared.options.force,
    expected: step.budget,
    ..hooks.ctx(cancel.clone())
  };
  let attempts = Attempts {
    shared,
    step,
    def,
    args: &args,
    ctx: &ctx,
    hooks: &hooks,
    cancel,
  };
  attempts.run(first_attempt, resumed).await
}

/// Evaluate the step's `when:`, then wait for its approval if it has one (and `--yes` did not
/// answer it).
async fn gate(
  shared: &Shared,
  step: &Step,
  scope: &PlanScope<'_>,
  cancel: &watch::Receiver<bool>,
) -> Result<Gate, JournalError> {
  match evaluate_when(step, scope) {
    Ok(true) => {}
    Ok(false) => {
      let when = step.when.as_ref().map_or("", |when| when.source());
      return Ok(Gate::Skip(format!("`when: {when}` is false")));
    }
    Err(err) => return Ok(Gate::Refused(err)),
  }
  let Some(approval) = &step.approval else {
    return Ok(Gate::Open);
  };
  if shared.options.assume_yes {
    return Ok(Gate::Open);
  }
  let prompt = shared
    .plan
    .redactor()
    .redact(&approval_prompt(approval, scope));
  let notices = control::notices(shared, scope, step, &prompt);
  let verdict =
    control::await_approval(shared, step, approval, &prompt, notices, cancel.clone()).await?;
  Ok(match verdict.refusal(&step.id) {
    Some(refusal) => Gate::Refused(refusal),
    None => Gate::Open,
  })
}

/// The step's `when:` is false: journal it skipped.
async fn skip(shared: &Shared, step: &Step, reason: String) -> StepResult {
  shared
    .log(Event::StepSkipped {
      step: step.id.clone(),
      reason,
    })
    .await
    .map_err(fatal)?;
  Ok(StepDone {
    outputs: BTreeMap::new(),
    changed: false,
    skipped: true,
  })
}

/// The step cannot run (see [`Gate::Refused`], or its inputs do not bind): its first attempt
/// starts and fails at once, not retried.
async fn refuse(shared: &Shared, step: &Step, attempt: u32, why: String) -> StepResult {
  shared
    .log(Event::StepStarted {
      step: step.id.clone(),
      attempt,
      phase: Phase::Run,
    })
    .await
    .map_err(fatal)?;
  fail(shared, step, attempt, &ActionError::failed(why)).await
}

/// Journal the step's last attempt failed.
async fn fail(shared: &Shared, step: &Step, attempt: u32, err: &ActionError) -> StepResult {
  shared
    .log(failed_event(
      &step.id,
      attempt,
      Phase::Run,
      step_error(err),
      None,
    ))
    .await
    .map_err(fatal)?;
  Err(StepFailure { fatal: None })
}

/// A step's attempts, bound and ready.
struct Attempts<'a> {
  shared: &'a Shared,
  step: &'a Step,
  def: &'static ActionDef,
  args: &'a Args,
  ctx: &'a Ctx<'a>,
  hooks: &'a Hooks<'a>,
  cancel: watch::Receiver<bool>,
}

impl Attempts<'_> {
  /// Attempt the step from `first` until one succeeds or there is no next attempt. A fence
  /// step that could not be applied leaves its fence pending (unless the run was stopped).
  async fn run(&self, first: u32, resumed: &Resumed) -> StepResult {
    let (shared, step) = (self.shared, self.step);
    // An intent from before a crash: this step may already have applied its change.
    let mut intent: Option<Option<DataLoss>> = resumed.intents.get(&step.id).cloned();
    // A request sent before a crash whose answer was lost: at-most-once effects stop there.
    let mut unanswered = resumed.dispatched.contains(&step.id);
    let last = first + step.retry.attempts.max(1) - 1;
    let mut attempt = first;
    loop {
      let result = self
        .attempt(attempt, &mut intent, std::mem::take(&mut unanswered))
        .await?;
      let err = match result {
        Ok((outcome, changed)) => return self.succeed(attempt, outcome, changed).await,
        Err(err) => err,
      };
      let stopping = *self.cancel.borrow();
      let Some(backoff) = retry::next_attempt(&step.retry, &err, attempt, (first, last), stopping)
      else {
        let failed = fail(shared, step, attempt, &err).await;
        if step.fence && !stopping {
          shared
            .log(pending_fence(step, self.def, self.args))
            .await
            .map_err(fatal)?;
        }
        return failed;
      };
      shared
        .log(failed_event(
          &step.id,
          attempt,
          Phase::Run,
          step_error(&err),
          Some(backoff),
        ))
        .await
        .map_err(fatal)?;
      retry::pause(shared.cloud.clock, backoff, self.cancel.clone()).await;
      attempt += 1;
    }
  }

  /// One attempt: journalled as started, then run under the step's timeout.
  async fn attempt(
    &self,
    number: u32,
    intent: &mut Option<Option<DataLoss>>,
    unanswered: bool,
  ) -> Result<Result<(Outcome, bool), ActionError>, StepFailure> {
    let (shared, step) = (self.shared, self.step);
    shared
      .log(Event::StepStarted {
        step: step.id.clone(),
        attempt: number,
        phase: Phase::Run,
      })
      .await
      .map_err(fatal)?;
    crash_hook::strike(&shared.cloud.backend, &step.id, crash_hook::Point::Start);
    let attempt = Attempt {
      shared,
      step: &step.id,
      number,
      phase: Phase::Run,
      def: self.def,
      args: self.args,
      ctx: self.ctx,
    };
    let clock = shared.cloud.clock;
    Ok(
      retry::within_timeout(
        clock,
        step.timeout,
        "timed out",
        || self.hooks.last_progress(),
        attempt.run(intent, unanswered),
      )
      .await,
    )
  }

  /// Journal the step succeeded, with its outputs (and the data loss it measured).
  async fn succeed(&self, attempt: u32, outcome: Outcome, changed: bool) -> StepResult {
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
    self
      .shared
      .log(Event::StepSucceeded {
        step: self.step.id.clone(),
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
    Ok(StepDone {
      outputs,
      changed,
      skipped: false,
    })
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

/// The journal record of a failed attempt; `backoff` before the next one, if there is one.
pub(super) fn failed_event(
  step: &str,
  attempt: u32,
  phase: Phase,
  error: StepError,
  backoff: Option<std::time::Duration>,
) -> Event {
  Event::StepFailed {
    step: step.to_string(),
    attempt,
    phase,
    error,
    will_retry: backoff.is_some(),
    backoff_ms: backoff.map(millis),
  }
}

pub(super) fn step_error(err: &ActionError) -> StepError {
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

/// A step's task ended abnormally (it panicked): journal the step (in `phase`) as failed, so
/// that the run fails and its always-steps run, and a resume retries the step (observing before
/// it applies, as after any crash: the panic may have struck after the change was made).
pub(super) async fn journal_crash(
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
  let error = StepError {
    message,
    code: None,
    request_id: None,
    http_status: None,
    retryable: false,
  };
  shared
    .log(failed_event(&step.id, attempt, phase, error, None))
    .await
    .map(|_| ())
}
