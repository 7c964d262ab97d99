//! ALB target groups: wait until enough of a target group's targets are healthy.

use std::collections::BTreeSet;

use super::{
  poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Outcome, Poll,
};
use crate::{
  cloud::{
    arn_region,
    elbv2::{TargetHealth, TargetState},
  },
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
};

pub const TARGET_HEALTH: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "elbv2.target_health",
    mutating: false,
    doc: "Assert that a target group's targets are healthy (all, or at least N); with `within`, \
          keep looking until they are.",
    fields: &[
      FieldSpec::required(
        "target_group",
        FieldKind::String,
        "Target group ARN, or its name (then `region` is required)",
      ),
      FieldSpec::optional(
        "region",
        FieldKind::String,
        "AWS region of the target group (default: the ARN's)",
      ),
      FieldSpec::optional(
        "min_healthy",
        FieldKind::CountOrAll,
        "How many targets must be healthy: a number, or `all` (default): every registered \
         target, and at least one",
      ),
      FieldSpec::optional(
        "within",
        FieldKind::Duration,
        "Keep looking for up to this long",
      ),
    ],
    calls: &[
      Call::arn_or(
        &crate::cloud::elbv2::ops::DESCRIBE_TARGET_GROUPS,
        "target_group",
        Some("region"),
      ),
      Call::arn_or(
        &crate::cloud::elbv2::ops::DESCRIBE_TARGET_HEALTH,
        "target_group",
        Some("region"),
      ),
    ],
    outputs: &["healthy", "total", "unhealthy_reasons"],
  },
  behaviour: Behaviour::Check(&TargetHealthCheck),
};

struct TargetHealthCheck;

/// How many healthy targets the check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
  /// Every registered target, and at least one.
  All,
  AtLeast(u32),
}

fn need(args: &Args) -> ActionResult<Need> {
  let Some(text) = args.opt_str("min_healthy") else {
    return Ok(Need::All);
  };
  match crate::runbook::action_spec::parse_count_or_all(text) {
    Ok(None) => Ok(Need::All),
    Ok(Some(n)) => Ok(Need::AtLeast(n)),
    Err(_) => Err(ActionError::failed(format!(
      "`with.min_healthy` must be a number of targets (1 or more) or `all`, got `{text}`"
    ))),
  }
}

/// The group's region and how to name it in calls: the ARN's region unless `region` says, and
/// a name needs `region`.
fn region<'a>(args: &'a Args, group: &'a str) -> ActionResult<&'a str> {
  match (args.opt_str("region"), arn_region(group)) {
    (Some(given), Some(in_arn)) if given != in_arn => Err(ActionError::failed(format!(
      "`with.region` is {given} but the target group ARN is in {in_arn}"
    ))),
    (Some(given), _) => Ok(given),
    (None, Some(in_arn)) => Ok(in_arn),
    (None, None) => Err(ActionError::failed(format!(
      "`with.region` is required to find target group `{group}` by name"
    ))),
  }
}

/// The target group's ARN (looked up when it is given by name).
async fn resolve(ctx: &Ctx<'_>, region: &str, group: &str) -> ActionResult<String> {
  if group.starts_with("arn:") {
    return Ok(group.to_owned());
  }
  ctx
    .cloud
    .elbv2
    .find_target_group(region, group)
    .await?
    .map(|found| found.arn)
    .ok_or_else(|| {
      ActionError::failed(format!("target group `{group}` does not exist in {region}"))
    })
}

/// What one look saw.
#[derive(Debug, Clone, PartialEq)]
struct Tally {
  healthy: u32,
  total: u32,
  /// The reason codes of the targets that are not healthy, each once.
  reasons: BTreeSet<String>,
  /// The targets that are not healthy, in words (`10.1.0.2 initial (Elb.InitialHealthChecking)`).
  not_healthy: Vec<String>,
}

impl Tally {
  fn of(targets: &[TargetHealth]) -> Tally {
    let mut tally = Tally {
      healthy: 0,
      total: u32::try_from(targets.len()).unwrap_or(u32::MAX),
      reasons: BTreeSet::new(),
      not_healthy: Vec::new(),
    };
    for target in targets {
      if target.state == TargetState::Healthy {
        tally.healthy += 1;
        continue;
      }
      let reason = target.reason.as_deref().unwrap_or("no reason given");
      tally.reasons.insert(reason.to_owned());
      tally
        .not_healthy
        .push(format!("{} {} ({reason})", target.id, target.state));
    }
    tally
  }

  fn holds(&self, need: Need) -> bool {
    match need {
      Need::All => self.total > 0 && self.healthy == self.total,
      Need::AtLeast(n) => self.healthy >= n,
    }
  }

  fn reasons(&self) -> String {
    self.reasons.iter().cloned().collect::<Vec<_>>().join(",")
  }

  /// `1/2 targets healthy (need all); not healthy: 10.1.0.2 initial (Elb.InitialHealthChecking)`.
  fn describe(&self, need: Need) -> String {
    let wanted = match need {
      Need::All => "all".to_owned(),
      Need::AtLeast(n) => format!("at least {n}"),
    };
    let mut text = format!(
      "{}/{} targets healthy (need {wanted})",
      self.healthy, self.total
    );
    if !self.not_healthy.is_empty() {
      text.push_str("; not healthy: ");
      text.push_str(&self.not_healthy.join(", "));
    }
    text
  }
}

#[async_trait::async_trait]
impl Check for TargetHealthCheck {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let need = need(args)?;
    let group = args.str("target_group")?;
    let region = region(args, group)?;
    let arn = resolve(ctx, region, group).await?;
    let within = args.opt_duration("within");
    let start = ctx.cloud.clock.now();
    let tally = poll_until(ctx, || async {
      let targets = ctx
        .cloud
        .elbv2
        .describe_target_health(region, &arn)
        .await?
        .ok_or_else(|| {
          ActionError::failed(format!("target group `{group}` does not exist in {region}"))
        })?;
      let tally = Tally::of(&targets);
      if tally.holds(need) {
        return Ok(Poll::Ready(tally));
      }
      let status = format!("target group `{group}`: {}", tally.describe(need));
      match within {
        Some(within) if ctx.cloud.clock.elapsed_since(start) < within => Ok(Poll::Pending(status)),
        _ => Err(ActionError::failed(status)),
      }
    })
    .await?;
    Ok(
      Outcome::new(format!("target group `{group}`: {}", tally.describe(need)))
        .output("healthy", tally.healthy)
        .output("total", tally.total)
        .output("unhealthy_reasons", tally.reasons()),
    )
  }
}

#[cfg(test)]
mod tests {
  use std::time::Duration;

  use super::*;
  use crate::cloud::sim::{Sim, SimOptions, BUILTIN_WORLD};

  fn target(id: &str, state: TargetState, reason: Option<&str>) -> TargetHealth {
    TargetHealth {
      id: id.into(),
      port: Some(80),
      state,
      reason: reason.map(str::to_owned),
      description: None,
    }
  }

  fn args(pairs: &[(&str, &str)]) -> Args {
    let map = pairs
      .iter()
      .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
      .collect();
    Args::from_bound(map)
  }

  /// The built-in world at scale 1 following paused tokio time; `outages` replaces its own.
  fn world(dir: &std::path::Path, outages: &str) -> std::sync::Arc<Sim> {
    let file = dir.join("world.yaml");
    std::fs::write(&file, BUILTIN_WORLD.replace("outages: []", outages)).unwrap();
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
    crate::actions::bind(TARGET_HEALTH.spec, with.as_object().unwrap()).unwrap()
  }

  /// The standby's targets follow its service: none while it runs no task, `initial` as tasks
  /// start, healthy 30s (3 checks 10s apart) after each started; `within` waits for that.
  #[tokio::test(start_paused = true)]
  async fn elbv2_targets_become_healthy_as_the_standby_tasks_start() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path(), "outages: []");
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "targets", &progress, cancel);
    let by_name = bound(serde_json::json!({
      "target_group": "app-standby-tg", "region": "us-west-2",
    }));
    let err = TargetHealthCheck.check(&ctx, &by_name).await.unwrap_err();
    assert!(
      err.message.contains("0/0 targets healthy (need all)"),
      "an empty group is not healthy: {err}"
    );

    cloud
      .ecs
      .update_desired_count("us-west-2", "app-standby", "api", 2)
      .await
      .unwrap();
    // Task 1 starts at 120s, task 2 at 132s (ecs_task_start 2m, staggered by a tenth).
    tokio::time::advance(Duration::from_secs(125)).await;
    let err = TargetHealthCheck.check(&ctx, &by_name).await.unwrap_err();
    assert!(
      err.message.contains("0/1 targets healthy")
        && err
          .message
          .contains("10.1.0.1 initial (Elb.InitialHealthChecking)"),
      "{err}"
    );
    let some = bound(serde_json::json!({
      "target_group": "app-standby-tg", "region": "us-west-2", "min_healthy": "1", "within": "1m",
    }));
    let outcome = TargetHealthCheck.check(&ctx, &some).await.unwrap();
    assert_eq!(outcome.outputs["healthy"], "1", "{outcome:?}");

    let arn = cloud
      .elbv2
      .find_target_group("us-west-2", "app-standby-tg")
      .await
      .unwrap()
      .unwrap()
      .arn;
    let all = bound(serde_json::json!({ "target_group": arn, "within": "2m" }));
    let outcome = TargetHealthCheck.check(&ctx, &all).await.unwrap();
    assert_eq!(
      (
        outcome.outputs["healthy"].as_str(),
        outcome.outputs["total"].as_str()
      ),
      ("2", "2"),
      "{outcome:?}"
    );
    assert_eq!(outcome.outputs["unhealthy_reasons"], "");
    assert!(
      outcome.summary.contains("2/2 targets healthy"),
      "{}",
      outcome.summary
    );
  }

  /// A region in outage takes its load balancers' API (a regional control plane in the
  /// operation table) down with it: the check cannot ask, and says so; it never reports the
  /// targets healthy.
  #[tokio::test(start_paused = true)]
  async fn elbv2_a_region_in_outage_cannot_be_asked_and_never_reads_healthy() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path(), "outages: [us-east-1]");
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "targets", &progress, cancel);
    let primary = bound(serde_json::json!({
      "target_group": "app-primary-tg", "region": "us-east-1", "min_healthy": "1",
    }));
    let err = TargetHealthCheck.check(&ctx, &primary).await.unwrap_err();
    assert!(
      err
        .message
        .contains(crate::cloud::elbv2::ops::DESCRIBE_TARGET_GROUPS.name),
      "{err}"
    );
    assert!(err.message.contains("the region is in outage"), "{err}");
    assert!(!err.message.contains("healthy"), "{err}");
    // The standby region answers.
    let standby = cloud
      .elbv2
      .find_target_group("us-west-2", "app-standby-tg")
      .await
      .unwrap();
    assert!(standby.is_some());
  }

  /// `within` that runs out fails the step with what it saw: healthy/total and the reasons.
  #[tokio::test(start_paused = true)]
  async fn elbv2_within_that_runs_out_fails_with_healthy_over_total() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path(), "outages: []");
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "targets", &progress, cancel);
    cloud
      .ecs
      .update_desired_count("us-west-2", "app-standby", "api", 3)
      .await
      .unwrap();
    let args = bound(serde_json::json!({
      "target_group": "app-standby-tg", "region": "us-west-2", "within": "2m20s",
    }));
    let started = tokio::time::Instant::now();
    let err = TargetHealthCheck.check(&ctx, &args).await.unwrap_err();
    assert!(
      started.elapsed() >= Duration::from_secs(140),
      "it waited `within`"
    );
    assert!(
      err.message.contains("/3 targets healthy (need all)"),
      "{err}"
    );
    assert!(err.message.contains("Elb.InitialHealthChecking"), "{err}");

    let missing = bound(serde_json::json!({ "target_group": "nope-tg", "region": "us-west-2" }));
    let err = TargetHealthCheck.check(&ctx, &missing).await.unwrap_err();
    assert!(
      err
        .message
        .contains("target group `nope-tg` does not exist in us-west-2"),
      "{err}"
    );

    // Planning looks once and never waits.
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let planning = Ctx {
      single_probe: true,
      ..Ctx::new(&cloud, "run-1", "targets", &progress, cancel)
    };
    let waiting = bound(serde_json::json!({
      "target_group": "app-standby-tg", "region": "us-west-2", "within": "10m",
    }));
    let before = tokio::time::Instant::now();
    let err = TargetHealthCheck
      .check(&planning, &waiting)
      .await
      .unwrap_err();
    assert!(err.message.starts_with("not yet: "), "{err}");
    assert!(
      before.elapsed() < Duration::from_secs(1),
      "a plan does not wait"
    );
  }

  #[test]
  fn elbv2_all_needs_every_target_and_at_least_one() {
    let none = Tally::of(&[]);
    assert!(!none.holds(Need::All), "an empty group is not healthy");
    let targets = [
      target("10.1.0.1", TargetState::Healthy, None),
      target(
        "10.1.0.2",
        TargetState::Initial,
        Some("Elb.InitialHealthChecking"),
      ),
      target(
        "10.1.0.3",
        TargetState::Unhealthy,
        Some("Target.FailedHealthChecks"),
      ),
    ];
    let tally = Tally::of(&targets);
    assert_eq!((tally.healthy, tally.total), (1, 3));
    assert!(!tally.holds(Need::All));
    assert!(tally.holds(Need::AtLeast(1)));
    assert!(!tally.holds(Need::AtLeast(2)));
    assert_eq!(
      tally.reasons(),
      "Elb.InitialHealthChecking,Target.FailedHealthChecks"
    );
    let text = tally.describe(Need::AtLeast(2));
    assert!(
      text.starts_with("1/3 targets healthy (need at least 2)"),
      "{text}"
    );
    assert!(
      text.contains("10.1.0.3 unhealthy (Target.FailedHealthChecks)"),
      "{text}"
    );
  }

  #[test]
  fn elbv2_min_healthy_is_a_positive_number_or_all() {
    assert_eq!(need(&args(&[])).unwrap(), Need::All);
    assert_eq!(need(&args(&[("min_healthy", "all")])).unwrap(), Need::All);
    assert_eq!(
      need(&args(&[("min_healthy", "2")])).unwrap(),
      Need::AtLeast(2)
    );
    for bad in ["0", "-1", "most", ""] {
      let err = need(&args(&[("min_healthy", bad)])).unwrap_err();
      assert!(err.message.contains("`with.min_healthy`"), "{bad}: {err}");
    }
  }

  #[test]
  fn elbv2_region_comes_from_the_arn_unless_given_and_a_name_needs_one() {
    let arn = "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/app-standby-tg/0123";
    assert_eq!(region(&args(&[]), arn).unwrap(), "us-west-2");
    assert_eq!(
      region(&args(&[("region", "us-west-2")]), arn).unwrap(),
      "us-west-2"
    );
    let clash = region(&args(&[("region", "us-east-1")]), arn).unwrap_err();
    assert!(clash.message.contains("us-east-1"), "{clash}");
    let nameless = region(&args(&[]), "app-standby-tg").unwrap_err();
    assert!(
      nameless.message.contains("`with.region` is required"),
      "{nameless}"
    );
    assert_eq!(
      region(&args(&[("region", "us-west-2")]), "app-standby-tg").unwrap(),
      "us-west-2"
    );
  }
}
