//! EC2 Auto Scaling: set a standby group's capacity and wait until that many instances serve.

use super::{
  poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Ctx, Effect, Observation,
  Observed, Outcome, Poll,
};
use crate::{
  cloud::autoscaling::{ops, AutoScalingGroup},
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
};

pub const SET_CAPACITY: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "autoscaling.set_capacity",
    mutating: true,
    doc: "Set an Auto Scaling group's desired capacity (a number, or a percentage of another \
          group's current capacity) and wait until that many instances are InService.",
    fields: &[
      FieldSpec::required("region", FieldKind::String, "AWS region of the group"),
      FieldSpec::required("group", FieldKind::String, "Auto Scaling group name"),
      FieldSpec::optional(
        "desired",
        FieldKind::Int,
        "The capacity: a number of instances (or give `percent_of`)",
      ),
      FieldSpec::optional(
        "percent_of",
        FieldKind::String,
        "The capacity as a percentage of this group's current desired capacity (the primary's)",
      ),
      FieldSpec::optional(
        "percent_of_region",
        FieldKind::String,
        "AWS region of the `percent_of` group",
      ),
      FieldSpec::optional(
        "percent",
        FieldKind::Int,
        "The percentage of `percent_of`'s capacity, rounded up (default 100)",
      ),
      FieldSpec::optional(
        "set_min",
        FieldKind::Bool,
        "Also raise the group's minimum to the capacity, so a scale-in policy cannot take it back \
         (default false)",
      ),
    ],
    calls: &[
      Call::to(&ops::DESCRIBE_AUTO_SCALING_GROUPS, "region"),
      Call::to(&ops::UPDATE_AUTO_SCALING_GROUP, "region"),
      Call::to(&ops::DESCRIBE_AUTO_SCALING_GROUPS, "percent_of_region"),
    ],
    outputs: &["desired", "in_service"],
  },
  behaviour: Behaviour::Effect(&SetCapacity),
};

struct SetCapacity;

/// The most instances a capacity may name (AWS's `MaxSize` ceiling for a group is far lower in
/// practice; this bounds the arithmetic).
const MAX_CAPACITY: i64 = 100_000;

async fn describe(ctx: &Ctx<'_>, region: &str, name: &str) -> ActionResult<AutoScalingGroup> {
  ctx
    .cloud
    .autoscaling
    .describe_group(region, name)
    .await?
    .ok_or_else(|| {
      ActionError::failed(format!(
        "Auto Scaling group `{name}` does not exist in {region}"
      ))
    })
}

/// The capacity the step sets: `desired`, or `percent` (default 100) of `percent_of`'s desired
/// capacity, rounded up.
async fn capacity(ctx: &Ctx<'_>, args: &Args) -> ActionResult<u32> {
  let count = |value: i64, what: &str| {
    u32::try_from(value)
      .ok()
      .filter(|n| i64::from(*n) <= MAX_CAPACITY)
      .ok_or_else(|| {
        ActionError::failed(format!(
          "`with.{what}` must be 0 to {MAX_CAPACITY}, got {value}"
        ))
      })
  };
  match (args.opt_int("desired"), args.opt_str("percent_of")) {
    (Some(desired), None) => count(desired, "desired"),
    (None, Some(primary)) => {
      let region = args.opt_str("percent_of_region").ok_or_else(|| {
        ActionError::failed("`with.percent_of` needs `with.percent_of_region`, the group's region")
      })?;
      let percent = match args.opt_int("percent") {
        None => 100,
        Some(percent) if (1..=1000).contains(&percent) => percent,
        Some(percent) => {
          return Err(ActionError::failed(format!(
            "`with.percent` must be 1 to 1000, got {percent}"
          )))
        }
      };
      let group = describe(ctx, region, primary).await?;
      let wanted = (i64::from(group.desired_capacity) * percent + 99) / 100;
      count(wanted, "percent")
    }
    (Some(_), Some(_)) => Err(ActionError::failed(
      "give `with.desired` or `with.percent_of`, not both",
    )),
    (None, None) => Err(ActionError::failed(
      "give the capacity: `with.desired` (a number) or `with.percent_of` (another group)",
    )),
  }
}

fn state(group: &AutoScalingGroup) -> String {
  format!(
    "{}: desired {} (min {}, max {}), {} InService",
    group.name,
    group.desired_capacity,
    group.min_size,
    group.max_size,
    group.in_service()
  )
}

#[async_trait::async_trait]
impl Effect for SetCapacity {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let want = capacity(ctx, args).await?;
    let set_min = args.opt_bool("set_min").unwrap_or(false);
    let group = describe(ctx, args.str("region")?, args.str("group")?).await?;
    if want > group.max_size {
      return Err(ActionError::failed(format!(
        "capacity {want} is above group `{}`'s maximum of {}: raise its max size first",
        group.name, group.max_size
      )));
    }
    let current = state(&group);
    let min_ok = !set_min || group.min_size == want;
    Ok(if group.desired_capacity != want || !min_ok {
      let mut change = format!("desired capacity {} -> {want}", group.desired_capacity);
      if set_min && group.min_size != want {
        change.push_str(&format!(", min {} -> {want}", group.min_size));
      }
      Observation::new(Observed::Absent, current, change)
    } else if group.in_service() >= want {
      Observation::new(
        Observed::Done,
        current,
        "none: already at the capacity, in service",
      )
    } else {
      Observation::new(
        Observed::InProgress,
        current,
        format!("wait for {want} instances InService"),
      )
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let want = capacity(ctx, args).await?;
    let set_min = args.opt_bool("set_min").unwrap_or(false);
    ctx
      .cloud
      .autoscaling
      .set_capacity(
        args.str("region")?,
        args.str("group")?,
        want,
        set_min.then_some(want),
      )
      .await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let want = capacity(ctx, args).await?;
    let (region, name) = (args.str("region")?, args.str("group")?);
    let group = poll_until(ctx, || async {
      let group = describe(ctx, region, name).await?;
      if group.desired_capacity == want && group.in_service() >= want {
        Ok(Poll::Ready(group))
      } else {
        Ok(Poll::Pending(state(&group)))
      }
    })
    .await?;
    Ok(
      Outcome::new(format!(
        "{name}: {}/{want} instances InService",
        group.in_service()
      ))
      .output("desired", group.desired_capacity)
      .output("in_service", group.in_service()),
    )
  }
}

#[cfg(test)]
mod tests {
  use std::time::Duration;

  use super::*;
  use crate::cloud::sim::{Sim, SimOptions, BUILTIN_WORLD};

  const GROUPS: &str = "\nautoscaling:
  instance_warmup: 3m
  groups:
    - { region: us-east-1, name: web-primary, min: 2, max: 10, desired: 4 }
    - { region: us-west-2, name: web-standby, min: 0, max: 10, desired: 0 }
endpoints:
";

  /// The built-in world with two groups, at scale 1 on paused tokio time.
  fn world(dir: &std::path::Path) -> std::sync::Arc<Sim> {
    let file = dir.join("world.yaml");
    std::fs::write(&file, BUILTIN_WORLD.replacen("\nendpoints:\n", GROUPS, 1)).unwrap();
    let sim = Sim::open(&SimOptions {
      world: Some(file),
      time_scale: Some(1.0),
      dir: dir.join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    sim
  }

  fn bound(with: serde_json::Value) -> Args {
    crate::actions::bind(SET_CAPACITY.spec, with.as_object().unwrap()).unwrap()
  }

  /// 75 % of the primary's 4 is 3: observe says what would change, apply sets it once, verify
  /// waits until the three instances are InService (180s, 198s, 216s), and a second observe finds
  /// it done. The world's operation log holds one update.
  #[tokio::test(start_paused = true)]
  async fn autoscaling_set_capacity_scales_the_standby_to_a_share_of_the_primary() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "scale", &progress, cancel);
    let args = bound(serde_json::json!({
      "region": "us-west-2", "group": "web-standby", "percent_of": "web-primary",
      "percent_of_region": "us-east-1", "percent": 75, "set_min": true,
    }));
    let seen = SetCapacity.observe(&ctx, &args).await.unwrap();
    assert_eq!(seen.state, Observed::Absent);
    assert_eq!(seen.change, "desired capacity 0 -> 3, min 0 -> 3");
    SetCapacity.apply(&ctx, &args).await.unwrap();
    let started = tokio::time::Instant::now();
    let outcome = SetCapacity.verify(&ctx, &args, None).await.unwrap();
    let waited = started.elapsed();
    assert!(
      waited >= Duration::from_secs(216) && waited < Duration::from_secs(235),
      "{waited:?}"
    );
    assert_eq!(outcome.outputs["in_service"], "3");
    assert_eq!(outcome.summary, "web-standby: 3/3 instances InService");
    let again = SetCapacity.observe(&ctx, &args).await.unwrap();
    assert_eq!(again.state, Observed::Done, "{again:?}");
    let group = cloud
      .autoscaling
      .describe_group("us-west-2", "web-standby")
      .await
      .unwrap()
      .unwrap();
    assert_eq!((group.min_size, group.desired_capacity), (3, 3));
    let updates = sim
      .operation_log()
      .iter()
      .filter(|op| op.operation == ops::UPDATE_AUTO_SCALING_GROUP.name)
      .count();
    assert_eq!(updates, 1);
  }

  /// Mid-launch, observe sees the change under way (a resumed step waits, it does not apply
  /// again); a capacity over the maximum is refused before any call; a group that does not exist
  /// and a capacity given twice or not at all fail with what is wrong.
  #[tokio::test(start_paused = true)]
  async fn autoscaling_set_capacity_refuses_what_aws_would_and_waits_for_what_is_under_way() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "scale", &progress, cancel);
    let two =
      bound(serde_json::json!({ "region": "us-west-2", "group": "web-standby", "desired": 2 }));
    SetCapacity.apply(&ctx, &two).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    let seen = SetCapacity.observe(&ctx, &two).await.unwrap();
    assert_eq!(seen.state, Observed::InProgress, "{seen:?}");
    assert!(seen.current.contains("0 InService"), "{seen:?}");

    let over =
      bound(serde_json::json!({ "region": "us-west-2", "group": "web-standby", "desired": 11 }));
    let err = SetCapacity.observe(&ctx, &over).await.unwrap_err();
    assert!(
      err
        .message
        .contains("above group `web-standby`'s maximum of 10"),
      "{err}"
    );
    // AWS refuses it too, and so does the simulator.
    let err = cloud
      .autoscaling
      .set_capacity("us-west-2", "web-standby", 11, None)
      .await
      .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("ValidationError"), "{err}");

    let missing =
      bound(serde_json::json!({ "region": "us-west-2", "group": "nope", "desired": 1 }));
    let err = SetCapacity.observe(&ctx, &missing).await.unwrap_err();
    assert_eq!(
      err.message,
      "Auto Scaling group `nope` does not exist in us-west-2"
    );
    let both = bound(serde_json::json!({
      "region": "us-west-2", "group": "web-standby", "desired": 1, "percent_of": "web-primary",
    }));
    let err = SetCapacity.observe(&ctx, &both).await.unwrap_err();
    assert!(err.message.contains("not both"), "{err}");
    let neither = bound(serde_json::json!({ "region": "us-west-2", "group": "web-standby" }));
    let err = SetCapacity.observe(&ctx, &neither).await.unwrap_err();
    assert!(err.message.contains("give the capacity"), "{err}");
  }

  /// A scale-in: the instances beyond the capacity are Terminating for a minute, then gone.
  #[tokio::test(start_paused = true)]
  async fn autoscaling_scale_in_terminates_then_the_instances_are_gone() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "scale", &progress, cancel);
    let two =
      bound(serde_json::json!({ "region": "us-east-1", "group": "web-primary", "desired": 2 }));
    SetCapacity.apply(&ctx, &two).await.unwrap();
    let group = cloud
      .autoscaling
      .describe_group("us-east-1", "web-primary")
      .await
      .unwrap()
      .unwrap();
    let states: Vec<&str> = group
      .instances
      .iter()
      .map(|i| i.lifecycle_state.as_str())
      .collect();
    assert_eq!(
      states,
      ["InService", "InService", "Terminating", "Terminating"]
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    let outcome = SetCapacity.verify(&ctx, &two, None).await.unwrap();
    assert_eq!(outcome.outputs["in_service"], "2");
    let group = cloud
      .autoscaling
      .describe_group("us-east-1", "web-primary")
      .await
      .unwrap()
      .unwrap();
    assert_eq!(group.instances.len(), 2);
  }
}
