//! Run control from the status page: `POST /runs/{id}/approve`, `/deny` and `/cancel`.
//!
//! Each takes a JSON body (`{"step": "...", "reason": "..."}`; cancel only an optional reason)
//! and hands a [`ControlRequest`] to [`control::submit`], the one entry point `drctl approve`
//! uses too: the run picks the request file up and journals it itself. The request acts as the
//! identity the guard established from its token ([`super::auth::Guard::identity`]); a request
//! without one never gets here (POST needs a token on every bind). Answers are plain text:
//! 202 submitted, 400 a bad body or reason, 404 no such run or step, 409 the step is not
//! waiting or the run has stopped, 500 the request file could not be written.

use std::sync::Arc;

use axum::{
  body::Bytes,
  extract::{Path, State},
  http::StatusCode,
  response::{IntoResponse, Response},
  Extension,
};
use serde::Deserialize;

use super::App;
use crate::state::control::{self, ControlAction, ControlError, ControlRequest, Identity};

/// The body of an approve or deny.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
  step: String,
  #[serde(default)]
  reason: Option<String>,
}

/// The body of a cancel (may be empty).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CancelBody {
  #[serde(default)]
  reason: Option<String>,
}

/// Which step-answering action a request asks for.
#[derive(Clone, Copy)]
enum Answer {
  Approve,
  Deny,
}

pub async fn approve(
  State(app): State<Arc<App>>,
  Path(id): Path<String>,
  identity: Option<Extension<Identity>>,
  body: Bytes,
) -> Response {
  answer(app, id, identity, body, Answer::Approve).await
}

pub async fn deny(
  State(app): State<Arc<App>>,
  Path(id): Path<String>,
  identity: Option<Extension<Identity>>,
  body: Bytes,
) -> Response {
  answer(app, id, identity, body, Answer::Deny).await
}

async fn answer(
  app: Arc<App>,
  id: String,
  identity: Option<Extension<Identity>>,
  body: Bytes,
  answer: Answer,
) -> Response {
  let body: StepBody = match serde_json::from_slice(&body) {
    Ok(body) => body,
    Err(err) => return bad_body(&err),
  };
  let action = match answer {
    Answer::Approve => ControlAction::Approve { step: body.step },
    Answer::Deny => ControlAction::Deny { step: body.step },
  };
  submit(app, id, identity, action, body.reason).await
}

pub async fn cancel(
  State(app): State<Arc<App>>,
  Path(id): Path<String>,
  identity: Option<Extension<Identity>>,
  body: Bytes,
) -> Response {
  let body: CancelBody = if body.iter().all(u8::is_ascii_whitespace) {
    CancelBody::default()
  } else {
    match serde_json::from_slice(&body) {
      Ok(body) => body,
      Err(err) => return bad_body(&err),
    }
  };
  submit(app, id, identity, ControlAction::Cancel, body.reason).await
}

fn bad_body(err: &serde_json::Error) -> Response {
  (
    StatusCode::BAD_REQUEST,
    format!("the body must be JSON {{\"step\": ..., \"reason\": ...}}: {err}\n"),
  )
    .into_response()
}

async fn submit(
  app: Arc<App>,
  id: String,
  identity: Option<Extension<Identity>>,
  action: ControlAction,
  reason: Option<String>,
) -> Response {
  // The guard lets no POST through without a token, and every token names an identity.
  let Some(Extension(by)) = identity else {
    return (StatusCode::UNAUTHORIZED, "a token is required\n").into_response();
  };
  let what = match &action {
    ControlAction::Approve { step } => format!("approval of step `{step}`"),
    ControlAction::Deny { step } => format!("denial of step `{step}`"),
    ControlAction::Cancel => "cancel".to_string(),
  };
  let who = by.name.clone();
  let request = ControlRequest {
    action,
    by,
    reason: reason.filter(|reason| !reason.trim().is_empty()),
    at: chrono::Utc::now(),
  };
  // Reading the journal and writing the request file are blocking file I/O.
  let submitted =
    tokio::task::spawn_blocking(move || control::submit(&app.site.store, &id, &request)).await;
  match submitted {
    Ok(Ok(_)) => (
      StatusCode::ACCEPTED,
      format!("{what} submitted as {who}: the run takes it up shortly\n"),
    )
      .into_response(),
    Ok(Err(err)) => (status_of(&err), format!("{err}\n")).into_response(),
    Err(_) => (
      StatusCode::INTERNAL_SERVER_ERROR,
      "the request could not be submitted\n",
    )
      .into_response(),
  }
}

/// The HTTP status of a request that was not submitted.
fn status_of(err: &ControlError) -> StatusCode {
  match err {
    ControlError::UnknownRun(_) | ControlError::UnknownStep { .. } => StatusCode::NOT_FOUND,
    ControlError::NotWaiting { .. } | ControlError::Stopped { .. } => StatusCode::CONFLICT,
    ControlError::BadReason => StatusCode::BAD_REQUEST,
    ControlError::Journal(_) | ControlError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
  }
}
