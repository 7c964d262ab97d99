//! The run's side of run control (see `state::control`): waiting for an approval, and taking up
//! the request files other processes write.
//!
//! * A step with `approval:` journals `approval_requested` (or, resumed, continues the wait its
//!   journal left open) and waits for the first of: an answer on the run's terminal, an approve
//!   or deny request, its `approval.timeout`, or an interrupt. Whoever answers first wins (the
//!   wait is claimed under a lock); a later answer to the same wait is journalled as ignored.
//! * A poller reads the run's requests directory every [`POLL`] (tokio time: paused in tests)
//!   and journals what it does with every request it has not journalled before. A request for
//!   a step that does not wait yet is held until it does (a resumed run reaches its wait after
//!   the poller's first look).
//! * The two-person rule (`distinct_from_starter`) refuses an approval by the run's starter or
//!   a shared token: journalled `approval_refused`, and the step keeps waiting.

use std::{
  collections::{HashMap, HashSet},
  path::PathBuf,
  sync::{Arc, Mutex},
  time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};

use super::Shared;
use crate::{
  actions::{ActionDef, Args, Behaviour, Ctx},
  plan::bind::bind_call_adjusted,
  runbook::{format_duration, template::Scope, Approval, Step},
  state::{
    control::{self, ControlAction, ControlRequest, Identity},
    Event, Journal, JournalError, Record,
  },
};

/// How often the requests directory is read.
pub const POLL: Duration = Duration::from_millis(250);

/// How a wait for approval ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
  Granted,
  /// Denied: who, and why.
  Denied {
    by: String,
    reason: Option<String>,
  },
  /// Nobody answered within the timeout.
  Expired(Duration),
  /// The run is stopping; the wait stays open for a resume.
  Interrupted,
}

impl Verdict {
  /// Why the step fails, unless it was approved.
  pub fn refusal(&self, step: &str) -> Option<String> {
    match self {
      Verdict::Granted => None,
      Verdict::Denied { by, reason } => Some(format!(
        "step `{step}` was denied by {by}{}",
        reason
          .as_deref()
          .map_or_else(String::new, |reason| format!(": {reason}"))
      )),
      Verdict::Expired(timeout) => Some(format!(
        "step `{step}` was not approved within {} (approval.timeout)",
        format_duration(*timeout)
      )),
      Verdict::Interrupted => Some(format!(
        "interrupted while step `{step}` waited for approval; it waits again on resume"
      )),
    }
  }
}

/// A step waiting for an answer.
struct Waiter {
  /// The `seq` of its `approval_requested`.
  seq: u64,
  distinct_from_starter: bool,
  answer: oneshot::Sender<Verdict>,
}

/// What the run knows about control requests.
pub struct Control {
  run_dir: PathBuf,
  /// Who started the run (`run_started`'s operating-system account).
  starter: String,
  waits: Mutex<HashMap<String, Waiter>>,
  /// Nonces journalled, or read and held.
  known: Mutex<HashSet<String>>,
  /// Requests read whose step does not wait yet: nonce, request, the wait it answers.
  held: Mutex<Vec<(String, ControlRequest, Option<u64>)>>,
}

impl Control {
  /// For the run whose journal is `journal`, holding `records` so far.
  pub fn new(journal: &Journal, records: &[Record]) -> Control {
    let starter = match records.first().map(|record| &record.event) {
      Some(Event::RunStarted { user, .. }) => user.clone(),
      _ => String::new(),
    };
    Control {
      run_dir: journal
        .path()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default(),
      starter,
      waits: Mutex::new(HashMap::new()),
      known: Mutex::new(control::journalled_nonces(records)),
      held: Mutex::new(Vec::new()),
    }
  }

  fn waits(&self) -> std::sync::MutexGuard<'_, HashMap<String, Waiter>> {
    self
      .waits
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner())
  }

  /// Take `step`'s wait `seq` to answer it; `None` when someone else answered it first.
  fn claim(&self, step: &str, seq: u64) -> Option<Waiter> {
    let mut waits = self.waits();
    if waits.get(step).is_some_and(|waiter| waiter.seq == seq) {
      waits.remove(step)
    } else {
      None
    }
  }
}

/// Drops abort the task (the poller ends with the run).
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
  fn drop(&mut self) {
    self.0.abort();
  }
}

/// Take up requests every [`POLL`] until the run ends (or its journal fails: the fence closes
/// and the run stops). A cancel goes to `cancels` as who asked.
pub async fn poll(shared: Arc<Shared>, cancels: mpsc::UnboundedSender<String>) {
  loop {
    match take_up(&shared).await {
      Ok(cancelled) => {
        for by in cancelled {
          let _ = cancels.send(by);
        }
      }
      Err(err) => {
        tracing::error!("cannot journal a control request: {err}");
        return;
      }
    }
    tokio::time::sleep(POLL).await;
  }
}

/// Read new requests and apply every one that can be; who asked for each cancel.
async fn take_up(shared: &Shared) -> Result<Vec<String>, JournalError> {
  let control = &shared.control;
  let fresh = {
    let mut known = control
      .known
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner());
    let fresh = control::read_new(&control.run_dir, &known);
    known.extend(fresh.iter().map(|received| received.nonce.clone()));
    fresh
  };
  let mut pending = std::mem::take(
    &mut *control
      .held
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner()),
  );
  for received in fresh {
    match received.content {
      Ok((request, wait)) => pending.push((received.nonce, request, wait)),
      Err(why) => {
        shared
          .log(Event::ControlIgnored {
            nonce: received.nonce,
            why,
          })
          .await?;
      }
    }
  }
  let mut cancelled = Vec::new();
  let mut still_held = Vec::new();
  for (nonce, request, wait) in pending {
    match apply(shared, &nonce, &request, wait).await? {
      Applied::Done => {}
      Applied::Cancel => cancelled.push(request.by.name.clone()),
      Applied::NotYet => still_held.push((nonce, request, wait)),
    }
  }
  control
    .held
    .lock()
    .unwrap_or_else(|poisoned| poisoned.into_inner())
    .extend(still_held);
  Ok(cancelled)
}

enum Applied {
  Done,
  Cancel,
  /// Its step does not wait (yet).
  NotYet,
}

/// Apply one request, journalling what was done with it.
async fn apply(
  shared: &Shared,
  nonce: &str,
  request: &ControlRequest,
  wait: Option<u64>,
) -> Result<Applied, JournalError> {
  let ignore = async |why: String| {
    shared
      .log(Event::ControlIgnored {
        nonce: nonce.to_string(),
        why,
      })
      .await
      .map(|_| Applied::Done)
  };
  let (step, approve) = match &request.action {
    ControlAction::Cancel => {
      shared
        .log(Event::RunCancelRequested {
          by: request.by.name.clone(),
          via: request.by.via,
          reason: request.reason.clone(),
          at: request.at,
          nonce: nonce.to_string(),
        })
        .await?;
      return Ok(Applied::Cancel);
    }
    ControlAction::Approve { step } => (step, true),
    ControlAction::Deny { step } => (step, false),
  };
  let gated = shared
    .plan
    .runbook
    .steps
    .iter()
    .any(|candidate| &candidate.id == step && candidate.approval.is_some());
  if !gated {
    return ignore(format!("the runbook has no step `{step}` with an approval")).await;
  }
  let stale = wait.is_some_and(|wait| {
    let records = shared.journal.records();
    control::answered_since(&records, step, wait)
  });
  if stale {
    return ignore(format!(
      "the wait of step `{step}` it answers was answered already"
    ))
    .await;
  }
  let (seq, distinct) = match shared.control.waits().get(step) {
    Some(waiter) => (waiter.seq, waiter.distinct_from_starter),
    None => return Ok(Applied::NotYet),
  };
  if approve {
    if let Err(why) = control::may_approve(&request.by, &shared.control.starter, distinct) {
      shared
        .log(Event::ApprovalRefused {
          step: step.clone(),
          by: request.by.name.clone(),
          via: request.by.via,
          why,
          at: request.at,
          nonce: Some(nonce.to_string()),
        })
        .await?;
      return Ok(Applied::Done);
    }
  }
  let Some(waiter) = shared.control.claim(step, seq) else {
    return ignore(format!("step `{step}` was answered first by someone else")).await;
  };
  let verdict = answer(
    shared,
    step,
    approve,
    &request.by,
    request.reason.clone(),
    request.at,
    Some(nonce),
  )
  .await?;
  let _ = waiter.answer.send(verdict);
  Ok(Applied::Done)
}

/// Journal an answer to a claimed wait; the step's verdict.
async fn answer(
  shared: &Shared,
  step: &str,
  approve: bool,
  by: &Identity,
  reason: Option<String>,
  at: DateTime<Utc>,
  nonce: Option<&str>,
) -> Result<Verdict, JournalError> {
  let nonce = nonce.map(str::to_string);
  if approve {
    shared
      .log(Event::ApprovalGranted {
        step: step.to_string(),
        by: by.name.clone(),
        via: by.via,
        reason,
        at,
        nonce,
      })
      .await?;
    return Ok(Verdict::Granted);
  }
  shared
    .log(Event::ApprovalDenied {
      step: step.to_string(),
      by: by.name.clone(),
      via: by.via,
      reason: reason.clone(),
      at,
      nonce,
    })
    .await?;
  Ok(Verdict::Denied {
    by: by.name.clone(),
    reason,
  })
}

/// The messages that tell people a step waits for approval: one for each `notify.slack` and
/// `notify.webhook` step of the runbook, to its target as bound now (a step whose `with`
/// cannot be bound yet, e.g. it uses a later step's outputs, is left out). The text (Slack) or
/// body (webhook) says which run and step wait, the prompt, and the commands that answer.
/// PagerDuty steps are not paged: a gate is not an incident.
pub fn notices(
  shared: &Shared,
  scope: &dyn Scope,
  waiting: &Step,
  prompt: &str,
) -> Vec<(&'static ActionDef, Args)> {
  let run_id = &shared.options.run_id;
  let id = &waiting.id;
  let text = format!(
    "Run {run_id}: step `{id}` waits for approval: {prompt}\nAnswer with \
     `drctl approve {run_id} {id}` or `drctl deny {run_id} {id}`."
  );
  let body = serde_json::json!({
    "event": "approval_requested",
    "run_id": run_id,
    "runbook": shared.plan.runbook.name,
    "step": id,
    "prompt": prompt,
    "approve": format!("drctl approve {run_id} {id}"),
    "deny": format!("drctl deny {run_id} {id}"),
  });
  let mut found = Vec::new();
  for step in &shared.plan.runbook.steps {
    let (field, value) = match step.call.action.as_str() {
      "notify.slack" => ("text", serde_json::Value::String(text.clone())),
      "notify.webhook" => ("body", body.clone()),
      _ => continue,
    };
    let bound = bind_call_adjusted(&step.call, scope, |rendered| {
      rendered.insert(field.into(), value);
      // Not the step's verdict: no "succeeded" headline on a question.
      rendered.remove("status");
    });
    match bound {
      Ok(notice) => found.push(notice),
      Err(why) => tracing::warn!(
        step = %step.id,
        "cannot tell `{}` that step `{id}` waits for approval: {why}",
        step.id
      ),
    }
  }
  found
}

/// Send the notices (best effort, one attempt each, bounded): not journalled, and a failure is
/// only logged. The wait goes on meanwhile.
async fn send_notices(shared: &Shared, step: &str, notices: Vec<(&'static ActionDef, Args)>) {
  let (_keep, cancel) = watch::channel(false);
  let progress = |_: &str| {};
  for (def, args) in notices {
    let Behaviour::Effect(effect) = def.behaviour else {
      continue;
    };
    let ctx = Ctx {
      run: shared.run_facts(),
      ..Ctx::new(
        &shared.cloud,
        &shared.options.run_id,
        step,
        &progress,
        cancel.clone(),
      )
    };
    let sent = tokio::time::timeout(NOTICE_TIMEOUT, async {
      let token = effect.apply(&ctx, &args).await?;
      effect.verify(&ctx, &args, token.as_deref()).await
    })
    .await;
    match sent {
      Ok(Ok(_)) => {}
      Ok(Err(err)) => tracing::warn!(step, "approval notice not sent: {}", err.message),
      Err(_) => tracing::warn!(step, "approval notice not sent: timed out"),
    }
  }
}

/// Upper bound on one approval notice.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(30);

/// The open wait `step` left in the journal (a resumed run): its `seq` and when it began.
fn open_wait(shared: &Shared, step: &str) -> Option<(u64, DateTime<Utc>)> {
  let records = shared.journal.records();
  let seq = *control::open_waits(&records).get(step)?;
  let ts = records.iter().find(|record| record.seq == seq)?.ts;
  Some((seq, ts))
}

/// Wait for `step`'s approval: the first answer from the terminal or a request, the timeout,
/// or an interrupt (`cancel`). Journals the wait and its end.
pub async fn await_approval(
  shared: &Shared,
  step: &Step,
  approval: &Approval,
  prompt: &str,
  notices: Vec<(&'static ActionDef, Args)>,
  mut cancel: watch::Receiver<bool>,
) -> Result<Verdict, JournalError> {
  let standing = {
    let records = shared.journal.records();
    control::standing_grant(&records, &step.id)
  };
  if standing {
    // Approved before a crash or an interrupt, and not yet run: the approval stands.
    return Ok(Verdict::Granted);
  }
  let (seq, since) = match open_wait(shared, &step.id) {
    Some(open) => open,
    None => {
      let record = shared
        .log(Event::ApprovalRequested {
          step: step.id.clone(),
          prompt: prompt.to_string(),
          timeout_ms: approval.timeout.map(super::millis),
          distinct_from_starter: approval.distinct_from_starter,
        })
        .await?;
      (record.seq, record.ts)
    }
  };
  let (tx, mut answered) = oneshot::channel();
  shared.control.waits().insert(
    step.id.clone(),
    Waiter {
      seq,
      distinct_from_starter: approval.distinct_from_starter,
      answer: tx,
    },
  );
  // The timeout runs from the first request, across resumes, in the backend's time.
  let expiry = approval.timeout.map(|timeout| {
    let waited = (Utc::now() - since).to_std().unwrap_or_default();
    (
      timeout,
      shared.cloud.clock.to_wall(timeout).saturating_sub(waited),
    )
  });
  let expired = async {
    match expiry {
      Some((_, left)) => tokio::time::sleep(left).await,
      None => std::future::pending().await,
    }
  };
  tokio::pin!(expired);
  let typed = async {
    let _turn = shared.approvals.lock().await;
    shared.approver.approve(&step.id, prompt).await
  };
  tokio::pin!(typed);
  // The watch's guard is dropped inside: it must not live across an await.
  let interrupted = async {
    let _ = cancel.wait_for(|cancelled| *cancelled).await;
  };
  tokio::pin!(interrupted);
  let notify = send_notices(shared, &step.id, notices);
  tokio::pin!(notify);
  let mut notify_open = true;
  let mut terminal_open = true;
  let mut expiry_open = expiry.is_some();
  loop {
    tokio::select! {
      verdict = &mut answered => {
        // The sender is dropped only with its claim, which always sends first.
        return Ok(verdict.unwrap_or(Verdict::Interrupted));
      }
      typed = &mut typed, if terminal_open => {
        terminal_open = false;
        // `Err`: nobody can be asked on a terminal; requests still can answer.
        let Ok(approve) = typed else { continue };
        let by = Identity::os_user();
        let at = Utc::now();
        if approve {
          if let Err(why) =
            control::may_approve(&by, &shared.control.starter, approval.distinct_from_starter)
          {
            shared
              .log(Event::ApprovalRefused {
                step: step.id.clone(),
                by: by.name.clone(),
                via: by.via,
                why,
                at,
                nonce: None,
              })
              .await?;
            continue;
          }
        }
        if shared.control.claim(&step.id, seq).is_none() {
          continue;
        }
        return answer(shared, &step.id, approve, &by, None, at, None).await;
      }
      () = &mut notify, if notify_open => {
        notify_open = false;
      }
      () = &mut expired, if expiry_open => {
        expiry_open = false;
        let Some((timeout, _)) = expiry else { continue };
        if shared.control.claim(&step.id, seq).is_none() {
          continue;
        }
        shared
          .log(Event::ApprovalExpired {
            step: step.id.clone(),
            timeout_ms: super::millis(timeout),
          })
          .await?;
        return Ok(Verdict::Expired(timeout));
      }
      () = &mut interrupted => {
        if shared.control.claim(&step.id, seq).is_none() {
          // Answered at the same instant: the answer is journalled, so it stands.
          return Ok(answered.await.unwrap_or(Verdict::Interrupted));
        }
        return Ok(Verdict::Interrupted);
      }
    }
  }
}
