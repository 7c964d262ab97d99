//! Waiting: a fixed pause, or polling a read-only action until it passes.

use super::{
  bind, lookup, poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx,
  Outcome, Poll,
};
use crate::runbook::{ActionSpec, FieldKind, FieldSpec};

pub const SLEEP: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "wait.sleep",
    mutating: false,
    doc: "Wait for a fixed time (backend time: the simulator's time scale applies).",
    fields: &[FieldSpec::required(
      "duration",
      FieldKind::Duration,
      "How long to wait",
    )],
    calls: &[],
    outputs: &[],
  },
  behaviour: Behaviour::Check(&Sleep),
};

struct Sleep;

#[async_trait::async_trait]
impl Check for Sleep {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let duration = args.duration("duration")?;
    // `plan` probes each step once to describe it: a pause has nothing to look at, and waiting
    // for real would hold the plan up for the whole pause.
    if ctx.single_probe {
      return Ok(Outcome::new(format!(
        "would wait {}",
        super::human(duration)
      )));
    }
    let mut cancel = ctx.cancel.clone();
    tokio::select! {
      _ = ctx.cloud.clock.sleep(duration) => Ok(Outcome::new(format!("waited {}", super::human(duration)))),
      _ = cancel.wait_for(|cancelled| *cancelled) => Err(ActionError::retryable("interrupted while waiting")),
    }
  }
}

pub const UNTIL: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "wait.until",
    mutating: false,
    doc: "Run a read-only action repeatedly until it passes (the step's timeout bounds the wait).",
    fields: &[
      FieldSpec::required(
        "action",
        FieldKind::String,
        "A read-only action, e.g. http.check",
      ),
      FieldSpec::required("with", FieldKind::Any, "Its arguments"),
    ],
    calls: &[],
    outputs: &["attempts"],
  },
  behaviour: Behaviour::Check(&Until),
};

struct Until;

#[async_trait::async_trait]
impl Check for Until {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let name = args.str("action")?;
    let def =
      lookup(name).ok_or_else(|| ActionError::failed(format!("unknown action `{name}`")))?;
    let Behaviour::Check(inner) = def.behaviour else {
      return Err(ActionError::failed(format!(
        "wait.until can only poll read-only actions; `{name}` changes the world"
      )));
    };
    let rendered = args
      .json("with")
      .and_then(|with| with.as_object())
      .cloned()
      .unwrap_or_default();
    let inner_args = bind(def.spec, &rendered).map_err(ActionError::failed)?;
    let mut attempts = 0u32;
    let outcome = poll_until(ctx, || {
      attempts += 1;
      let inner_args = &inner_args;
      async move {
        match inner.check(ctx, inner_args).await {
          Ok(outcome) => Ok(Poll::Ready(outcome)),
          Err(err) => Ok(Poll::Pending(format!("{name}: {}", err.message))),
        }
      }
    })
    .await?;
    Ok(outcome.output("attempts", attempts))
  }
}
