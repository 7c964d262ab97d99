//! Applying a pending region fence (see `state::fences`) outside the run that left it pending.
//!
//! The fence's action runs as it would in a step, observe → apply (only when absent) → verify,
//! with the arguments its run journalled and that run's id (so a retired writer's tag names the
//! failover that fenced it). Its effects are idempotent (scale to zero, add a tag), so two
//! appliers racing on one fence do no harm.

use std::time::Duration;

use crate::{
  actions::{self, ActionError, ActionResult, Args, Behaviour, Ctx, Observed, Outcome},
  cloud::Cloud,
  state::fences::PendingFence,
};

/// How long one fence may take to apply (modelled time) before it counts as still pending.
pub const APPLY_LIMIT: Duration = Duration::from_secs(5 * 60);

/// Apply one pending fence on `cloud`, within [`APPLY_LIMIT`]. `Err` leaves it pending.
pub async fn apply(cloud: &Cloud, fence: &PendingFence) -> ActionResult<Outcome> {
  let def = actions::lookup(&fence.action)
    .ok_or_else(|| ActionError::failed(format!("unknown action `{}`", fence.action)))?;
  let Behaviour::Effect(effect) = def.behaviour else {
    return Err(ActionError::failed(format!(
      "`{}` is not a mutating action",
      fence.action
    )));
  };
  let args = Args::from_bound(fence.args.clone());
  let (_cancel, cancel) = tokio::sync::watch::channel(false);
  let progress = |_: &str| {};
  let ctx = Ctx::new(cloud, &fence.run_id, &fence.step, &progress, cancel);
  let attempt = async {
    if effect.observe(&ctx, &args).await?.state == Observed::Absent {
      effect.apply(&ctx, &args).await?;
    }
    effect.verify(&ctx, &args, None).await
  };
  match tokio::time::timeout(cloud.clock.to_wall(APPLY_LIMIT), attempt).await {
    Ok(result) => result,
    Err(_) => Err(ActionError::retryable(format!(
      "not applied within {}",
      actions::human(APPLY_LIMIT)
    ))),
  }
}
