//! After the run's last step: the wait for `objectives.recovered_when`.
//!
//! A run whose steps all finished without failing the run, and whose runbook declares
//! `recovered_when`, is not over yet: the application counts as recovered only once the
//! condition holds (a read-only step's action passes, or every alarm of a set is OK). drctl journals `recovery_wait_started`,
//! evaluates the condition on the backend's clock every [`RECOVERY_POLL`] until it holds or the
//! bound (`within`) passes, and journals `recovered` (the RTO is measured to it) or
//! `not_recovered` (the RTO breached). Invariants:
//!
//! * **Read-only.** Only a check (`Behaviour::Check`) is ever evaluated; validation refuses a
//!   mutating step, and this module refuses one again rather than call `apply`.
//! * **One wait per run.** The bound counts from the first `recovery_wait_started`; a resumed
//!   run continues that wait (no step runs again: every step succeeded before it began) and a
//!   run with a result never waits again.
//! * **Interruptible.** An interrupt or a cancel ends the wait at once; the run ends
//!   `interrupted` and `drctl resume` continues the wait.

use std::{
  collections::{BTreeMap, HashMap},
  sync::Arc,
  time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use super::{millis, EngineError, Shared};
use crate::{
  actions::{ActionError, Behaviour, Ctx, Outcome},
  plan::bind_call,
  runbook::{format_duration, ActionCall, RecoveredWhen, RecoveryCondition, Step},
  state::{Event, Record},
};

/// How long after one evaluation of the condition the next starts (backend time). Route 53 and
/// CloudWatch move in steps of tens of seconds; polling faster only adds calls.
pub const RECOVERY_POLL: Duration = Duration::from_secs(10);

/// The name progress lines and reports give the wait.
const WAIT: &str = "recovery";

/// What the journal already says about the wait.
enum Journalled {
  /// No wait began yet.
  Nothing,
  /// A wait began at this wall time (and has no result yet).
  Began(DateTime<Utc>),
  /// The wait has its result: nothing to do.
  Done,
}

fn journalled(records: &[Record]) -> Journalled {
  let mut found = Journalled::Nothing;
  for record in records {
    match &record.event {
      Event::RecoveryWaitStarted { .. } => {
        if matches!(found, Journalled::Nothing) {
          found = Journalled::Began(record.ts);
        }
      }
      Event::Recovered { .. } | Event::NotRecovered { .. } => found = Journalled::Done,
      _ => {}
    }
  }
  found
}

/// Wait for `recovered_when` after the run's last step (a no-op without one, or when the journal
/// has the result already). `Ok(Some(why))`: interrupted during the wait (the run ends
/// `interrupted`, resumable); `Ok(None)`: the result is journalled.
pub(super) async fn await_recovery(
  shared: &Arc<Shared>,
  outputs: &HashMap<String, BTreeMap<String, String>>,
  signals: &mut watch::Receiver<u32>,
  cancels: &mut mpsc::UnboundedReceiver<String>,
) -> Result<Option<String>, EngineError> {
  let plan = shared.plan.clone();
  let Some(recovered_when) = &plan.runbook.objectives.recovered_when else {
    return Ok(None);
  };
  let known = journalled(&shared.journal.records());
  let clock = shared.cloud.clock;
  // How much of the bound was gone when this process took the wait up: none for a wait it
  // starts; for a resumed one, the journal's wall clock since the wait's first record.
  let (began, gone) = match known {
    Journalled::Done => return Ok(None),
    Journalled::Began(at) => (
      at,
      clock.to_modelled((Utc::now() - at).to_std().unwrap_or_default()),
    ),
    Journalled::Nothing => {
      let record = shared
        .log(Event::RecoveryWaitStarted {
          condition: described(shared, &recovered_when.condition, outputs),
          within_ms: millis(recovered_when.within),
        })
        .await?;
      (record.ts, Duration::ZERO)
    }
  };
  let interrupt = interrupted(signals, cancels);
  tokio::pin!(interrupt);
  let (cancel_tx, cancel_rx) = watch::channel(false);
  tokio::select! {
    result = wait(shared, recovered_when, (began, gone), outputs, cancel_rx) => result.map(|()| None),
    why = &mut interrupt => {
      let _ = cancel_tx.send(true);
      Ok(Some(why))
    }
  }
}

/// The condition in words, its templates rendered where they can be (`alarms `app-health` are
/// OK in us-west-2`); as the runbook writes it otherwise.
fn described(
  shared: &Shared,
  condition: &RecoveryCondition,
  outputs: &HashMap<String, BTreeMap<String, String>>,
) -> String {
  let RecoveryCondition::Alarms { call, .. } = condition else {
    return condition.to_string();
  };
  let run = shared.run_values();
  let scope = shared.plan.scope(&run, outputs);
  match bind_call(call, &scope) {
    Ok((_, args)) => {
      let names: Vec<String> = args
        .string_list("alarms")
        .iter()
        .map(|name| format!("`{name}`"))
        .collect();
      let region = args.opt_str("region").unwrap_or_default();
      format!("alarms {} are OK in {region}", names.join(", "))
    }
    Err(_) => condition.to_string(),
  }
}

/// The first interrupt (SIGINT/SIGTERM) or cancel request, as the run's interrupt record words it.
async fn interrupted(
  signals: &mut watch::Receiver<u32>,
  cancels: &mut mpsc::UnboundedReceiver<String>,
) -> String {
  let signal = async {
    loop {
      if *signals.borrow_and_update() > 0 {
        return "SIGINT".to_string();
      }
      if signals.changed().await.is_err() {
        // Nobody can signal any more: only a cancel can interrupt.
        return std::future::pending().await;
      }
    }
  };
  let cancel = async {
    match cancels.recv().await {
      Some(by) => format!("cancelled by {by}"),
      None => std::future::pending().await,
    }
  };
  tokio::select! {
    why = signal => why,
    why = cancel => why,
  }
}

/// Evaluate the condition until it holds or the bound passes, and journal which.
///
/// The bound counts from `began` (the wait's first record): `gone` is the part of it already
/// gone when this process took the wait up (a resume), the rest is measured on the backend's
/// clock, which tests pause and advance.
async fn wait(
  shared: &Arc<Shared>,
  recovered_when: &RecoveredWhen,
  (began, gone): (DateTime<Utc>, Duration),
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
) -> Result<(), EngineError> {
  let clock = shared.cloud.clock;
  let bound = recovered_when.within.saturating_sub(gone);
  let by =
    began + chrono::Duration::from_std(clock.to_wall(recovered_when.within)).unwrap_or_default();
  let taken_up = clock.now();
  let left = || bound.saturating_sub(clock.elapsed_since(taken_up));
  let mut checks = 0u32;
  let mut last_error: Option<String> = None;
  loop {
    // At least one evaluation, even of a zero bound (or one that passed while drctl was down).
    if checks > 0 && left().is_zero() {
      shared
        .log(Event::NotRecovered {
          by,
          checks,
          last_error,
        })
        .await?;
      return Ok(());
    }
    checks += 1;
    match evaluate_within(
      shared,
      &recovered_when.condition,
      left(),
      outputs,
      cancel.clone(),
    )
    .await
    {
      Ok(outcome) => {
        shared
          .log(Event::Recovered {
            at: Utc::now(),
            checks,
            summary: outcome.summary,
          })
          .await?;
        return Ok(());
      }
      Err(err) => {
        shared.observer.waiting(
          WAIT,
          &format!("{}: not yet ({})", recovered_when.condition, err.message),
        );
        last_error = Some(err.message);
      }
    }
    let left = left();
    if !left.is_zero() {
      clock.sleep(RECOVERY_POLL.min(left)).await;
    }
  }
}

/// How long one look at a `recovered_when: { alarms }` condition may take: one
/// `DescribeAlarms` and its per-call retries.
const ALARMS_LOOK_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// What one evaluation of the condition runs: a call, bound with the run's outputs, with the
/// step's timeout and budget (a step's own; for alarms, [`ALARMS_LOOK_TIMEOUT`] and none).
struct Evaluation<'a> {
  call: &'a ActionCall,
  /// The name the action's context carries (the step id, or `recovery`).
  id: &'a str,
  timeout: Duration,
  budget: Option<Duration>,
}

fn evaluation<'a>(
  shared: &'a Shared,
  condition: &'a RecoveryCondition,
) -> Result<Evaluation<'a>, ActionError> {
  match condition {
    RecoveryCondition::Step { id } => {
      // Validation guarantees the step exists.
      let step: &Step = shared
        .plan
        .runbook
        .step(id)
        .ok_or_else(|| ActionError::failed(format!("the runbook has no step `{id}`")))?;
      Ok(Evaluation {
        call: &step.call,
        id: &step.id,
        timeout: step.timeout,
        budget: step.budget,
      })
    }
    RecoveryCondition::Alarms { call, .. } => Ok(Evaluation {
      call,
      id: WAIT,
      timeout: ALARMS_LOOK_TIMEOUT,
      budget: None,
    }),
  }
}

/// One evaluation of the condition, given as long as the time `left` (the whole timeout of one
/// look when none is left: the one evaluation of a bound already gone), never longer than that
/// timeout (a step's own).
async fn evaluate_within(
  shared: &Arc<Shared>,
  condition: &RecoveryCondition,
  left: Duration,
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
) -> Result<Outcome, ActionError> {
  let evaluation = evaluation(shared, condition)?;
  let limit = if left.is_zero() {
    evaluation.timeout
  } else {
    left.min(evaluation.timeout)
  };
  let clock = shared.cloud.clock;
  match tokio::time::timeout(
    clock.to_wall(limit),
    evaluate(shared, &evaluation, outputs, cancel),
  )
  .await
  {
    Ok(result) => result,
    Err(_) => Err(ActionError::failed(format!(
      "no answer within {}",
      format_duration(limit)
    ))),
  }
}

/// One evaluation: the action, bound with every output of the run, run read-only. A step's
/// `when:` is not consulted (a step kept out of the run with `when: false` still serves as the
/// condition).
async fn evaluate(
  shared: &Arc<Shared>,
  evaluation: &Evaluation<'_>,
  outputs: &HashMap<String, BTreeMap<String, String>>,
  cancel: watch::Receiver<bool>,
) -> Result<Outcome, ActionError> {
  let run = shared.run_values();
  let scope = shared.plan.scope(&run, outputs);
  let (def, args) = bind_call(evaluation.call, &scope).map_err(ActionError::failed)?;
  let Behaviour::Check(check) = def.behaviour else {
    return Err(ActionError::failed(format!(
      "`{}` changes the world; a recovery condition only reads it",
      def.spec.name
    )));
  };
  let observer = shared.observer.clone();
  let progress = move |status: &str| observer.waiting(WAIT, status);
  let ctx = Ctx {
    rpo: shared.plan.runbook.objectives.rpo,
    expected: evaluation.budget,
    run: shared.run_facts(),
    ..Ctx::new(
      &shared.cloud,
      &shared.options.run_id,
      evaluation.id,
      &progress,
      cancel,
    )
  };
  check.check(&ctx, &args).await
}
