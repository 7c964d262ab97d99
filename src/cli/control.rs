//! `drctl approve|deny|cancel`: a request file for a run to take up (see `state::control`).
//!
//! Exit codes: 0 the request was written (the run journals what it does with it); 2 the run or
//! step is unknown, the step is not waiting for approval, the run has stopped, or the reason is
//! not one line of at most 1000 characters; 1 the request could not be written.

use chrono::Utc;

use super::{commands::Context, out, Error, Exit, Output};
use crate::{
  runbook::format_duration,
  state::{
    control::{self, ControlAction, ControlRequest, Identity, IdentityVia},
    Event,
  },
};

/// Write `action` for run `run_id`, as this process's operating-system account.
pub(super) fn submit(
  ctx: &Context,
  run_id: &str,
  action: ControlAction,
  reason: Option<String>,
) -> Result<Exit, Error> {
  let request = ControlRequest {
    action,
    by: Identity::os_user(),
    reason,
    at: Utc::now(),
  };
  let path = control::submit(&ctx.store, run_id, &request).map_err(|err| match err.code() {
    2 => Error::Usage(err.to_string()),
    _ => Error::Failed(err.to_string()),
  })?;
  let what = match &request.action {
    ControlAction::Approve { step } => format!("approval of step `{step}`"),
    ControlAction::Deny { step } => format!("denial of step `{step}`"),
    ControlAction::Cancel => "cancel".to_string(),
  };
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::json!({
        "run_id": run_id,
        "request": request,
        "path": path.display().to_string(),
      })
    )),
    Output::Text => out(&format!(
      "{what} sent to run {run_id} by {}; the run journals it when it takes it up \
       (a stopped run, when resumed)\n",
      request.by.name
    )),
  }
  Ok(Exit::Succeeded)
}

/// What a control record says, for the text renderings (live view, log lines, reports): the
/// step it concerns (`None`: the run) and a sentence. `None` for every other record.
pub(super) fn describe(event: &Event) -> Option<(Option<&str>, String)> {
  let answer = |verb: &str, by: &str, via: &IdentityVia, reason: &Option<String>| {
    let why = reason
      .as_deref()
      .map_or_else(String::new, |reason| format!(": {reason}"));
    format!("{verb} by {by} ({}){why}", via.as_str())
  };
  Some(match event {
    Event::ApprovalRequested { step, prompt, .. } => (
      Some(step.as_str()),
      format!("waiting for approval: {prompt}"),
    ),
    Event::ApprovalGranted {
      step,
      by,
      via,
      reason,
      ..
    } => (Some(step.as_str()), answer("approved", by, via, reason)),
    Event::ApprovalDenied {
      step,
      by,
      via,
      reason,
      ..
    } => (Some(step.as_str()), answer("denied", by, via, reason)),
    Event::ApprovalRefused {
      step, by, via, why, ..
    } => (
      Some(step.as_str()),
      format!("approval by {by} ({}) refused: {why}", via.as_str()),
    ),
    Event::ApprovalExpired { step, timeout_ms } => (
      Some(step.as_str()),
      format!(
        "not approved within {} (approval.timeout)",
        format_duration(std::time::Duration::from_millis(*timeout_ms))
      ),
    ),
    Event::RunCancelRequested {
      by, via, reason, ..
    } => (None, answer("cancel requested", by, via, reason)),
    Event::ControlIgnored { nonce, why } => (None, format!("request {nonce} ignored: {why}")),
    _ => return None,
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn control_records_read_as_sentences_naming_who_and_why() {
    let granted = Event::ApprovalGranted {
      step: "gate".into(),
      by: "bob".into(),
      via: IdentityVia::Token,
      reason: Some("lag is zero".into()),
      at: Utc::now(),
      nonce: None,
    };
    assert_eq!(
      describe(&granted),
      Some((
        Some("gate"),
        "approved by bob (token): lag is zero".to_string()
      ))
    );
    let expired = Event::ApprovalExpired {
      step: "gate".into(),
      timeout_ms: 1_800_000,
    };
    assert_eq!(
      describe(&expired).map(|(_, text)| text),
      Some("not approved within 30m (approval.timeout)".to_string())
    );
    let cancel = Event::RunCancelRequested {
      by: "carol".into(),
      via: IdentityVia::OsUser,
      reason: None,
      at: Utc::now(),
      nonce: "n".into(),
    };
    assert_eq!(
      describe(&cancel),
      Some((None, "cancel requested by carol (os_user)".to_string()))
    );
    let other = Event::RunInterrupted {
      signal: "SIGINT".into(),
    };
    assert_eq!(describe(&other), None);
  }
}
