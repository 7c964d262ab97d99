//! `drctl freeze [--reason TEXT]` and `drctl unfreeze`: hold back live drills across the state,
//! and what `status` and `drill list` say about it (see `state::freeze`).

use chrono::Utc;

use super::{commands::Context, out, Error, Exit, Output};
use crate::state::{
  freeze::{self, FreezeError},
  Freeze, Frozen, S3State,
};

/// The longest reason accepted (it is printed in every skipped drill's history).
const MAX_REASON_LEN: usize = 1000;

/// Every freeze in force now on the context's state (see [`freeze::active`]).
pub(super) async fn active(
  ctx: &Context,
  s3: Option<&S3State>,
) -> Result<Vec<Frozen>, FreezeError> {
  freeze::active(&ctx.freeze_store(s3), &ctx.lock_store(s3), Utc::now()).await
}

/// Why a live drill must not start now, if it must not: the freezes in force, one line each.
/// A state that cannot be read counts as frozen (fail closed: a drill is not worth acting in
/// the middle of an incident nobody can see).
pub(super) async fn drill_frozen(ctx: &Context) -> Vec<String> {
  let s3 = ctx.s3_state().await;
  match active(ctx, s3.as_ref()).await {
    Ok(found) => found.iter().map(ToString::to_string).collect(),
    Err(err) => vec![format!("cannot tell whether live drills are frozen: {err}")],
  }
}

/// The `frozen` field of `status --output json`: the freezes, or the error reading them.
pub(super) fn frozen_json(frozen: &Result<Vec<Frozen>, FreezeError>) -> serde_json::Value {
  match frozen {
    Ok(found) => serde_json::Value::Array(found.iter().map(frozen_value).collect()),
    Err(err) => serde_json::json!({ "error": err.to_string() }),
  }
}

fn frozen_value(frozen: &Frozen) -> serde_json::Value {
  match frozen {
    Frozen::Explicit(freeze) => serde_json::json!({
      "kind": "explicit",
      "reason": freeze.reason,
      "by": freeze.by,
      "host": freeze.host,
      "at": freeze.at,
      "text": frozen.to_string(),
    }),
    Frozen::Running(holder) => serde_json::json!({
      "kind": "live_run",
      "run_id": holder.run_id,
      "runbook": holder.runbook,
      "lock_group": holder.group,
      "host": holder.host,
      "started_at": holder.started_at,
      "text": frozen.to_string(),
    }),
  }
}

/// `  live drills are frozen: ...` lines (nothing when none is in force).
pub(super) fn frozen_text(frozen: &Result<Vec<Frozen>, FreezeError>) -> String {
  match frozen {
    Ok(found) => found
      .iter()
      .map(|frozen| format!("  live drills are frozen: {frozen}\n"))
      .collect(),
    Err(err) => format!("  warning: cannot tell whether live drills are frozen: {err}\n"),
  }
}

fn state_name(ctx: &Context, s3: Option<&S3State>) -> String {
  s3.map_or_else(
    || ctx.store.root().display().to_string(),
    |s3| s3.location.to_string(),
  )
}

fn failed(err: FreezeError) -> Error {
  match err {
    FreezeError::NewerFormat(newer) => Error::Usage(newer.to_string()),
    other => Error::Failed(other.to_string()),
  }
}

/// `drctl freeze --reason TEXT` freezes; `drctl freeze` shows what is in force.
pub(super) async fn freeze(ctx: &Context, reason: Option<&str>) -> Result<Exit, Error> {
  let s3 = ctx.s3_state().await;
  let Some(reason) = reason else {
    return show(ctx, s3.as_ref()).await;
  };
  let reason = reason.trim();
  if reason.is_empty() {
    return Err(Error::Usage(
      "--reason: say why live drills are frozen (it is shown in every skipped drill's history)"
        .into(),
    ));
  }
  if reason.chars().count() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
    return Err(Error::Usage(format!(
      "--reason: one line of at most {MAX_REASON_LEN} characters"
    )));
  }
  let freeze = Freeze::now(reason);
  let replaced = ctx
    .freeze_store(s3.as_ref())
    .set(&freeze)
    .await
    .map_err(failed)?;
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::json!({
        "state": state_name(ctx, s3.as_ref()),
        "freeze": frozen_value(&Frozen::Explicit(freeze)),
        "replaced": replaced.map(|old| frozen_value(&Frozen::Explicit(old))),
      })
    )),
    Output::Text => {
      let mut text = format!(
        "live drills on {} are frozen: {freeze}\n",
        state_name(ctx, s3.as_ref())
      );
      if let Some(old) = replaced {
        text.push_str(&format!("  (replaces the freeze {old})\n"));
      }
      text.push_str("  lift it with `drctl unfreeze`\n");
      out(&text);
    }
  }
  Ok(Exit::Succeeded)
}

async fn show(ctx: &Context, s3: Option<&S3State>) -> Result<Exit, Error> {
  let found = active(ctx, s3).await.map_err(failed)?;
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::json!({
        "state": state_name(ctx, s3),
        "frozen": found.iter().map(frozen_value).collect::<Vec<_>>(),
      })
    )),
    Output::Text if found.is_empty() => out(&format!(
      "live drills on {} are not frozen\n",
      state_name(ctx, s3)
    )),
    Output::Text => out(&frozen_text(&Ok(found))),
  }
  Ok(Exit::Succeeded)
}

/// `drctl unfreeze`: lift the explicit freeze (live runs still freeze drills while they run).
pub(super) async fn unfreeze(ctx: &Context) -> Result<Exit, Error> {
  let s3 = ctx.s3_state().await;
  let lifted = ctx
    .freeze_store(s3.as_ref())
    .clear()
    .await
    .map_err(failed)?;
  let still = active(ctx, s3.as_ref()).await.map_err(failed)?;
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::json!({
        "state": state_name(ctx, s3.as_ref()),
        "lifted": lifted.map(|old| frozen_value(&Frozen::Explicit(old))),
        "frozen": still.iter().map(frozen_value).collect::<Vec<_>>(),
      })
    )),
    Output::Text => {
      let mut text = match lifted {
        Some(old) => format!(
          "unfroze live drills on {} (was {old})\n",
          state_name(ctx, s3.as_ref())
        ),
        None => format!(
          "live drills on {} were not frozen by `drctl freeze`\n",
          state_name(ctx, s3.as_ref())
        ),
      };
      text.push_str(&frozen_text(&Ok(still)));
      out(&text);
    }
  }
  Ok(Exit::Succeeded)
}
