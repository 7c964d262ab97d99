//! `drctl approve|deny|cancel`: a request file for a run to take up (see `state::control`).
//!
//! Exit codes: 0 the request was written (the run journals what it does with it); 2 the run or
//! step is unknown, the step is not waiting for approval, the run has stopped, or the reason is
//! not one line of at most 1000 characters; 1 the request could not be written.

use chrono::Utc;

use super::{commands::Context, out, Error, Output};
use crate::state::control::{self, ControlAction, ControlRequest, Identity};

/// Write `action` for run `run_id`, as this process's operating-system account.
pub(super) fn submit(
  ctx: &Context,
  run_id: &str,
  action: ControlAction,
  reason: Option<String>,
) -> Result<i32, Error> {
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
  Ok(0)
}
