//! Simulated ALB target groups. A target group fronts one ECS service of its region, and its
//! targets follow that service's tasks, as ECS registers and deregisters them:
//!
//! * a task that started is a target `initial` (`Elb.InitialHealthChecking`) until it passed
//!   the group's healthy threshold of checks (interval × threshold, modelled), then `healthy`;
//! * a task the service is stopping (it runs more tasks than it wants) is `draining`
//!   (`Target.DeregistrationInProgress`), then gone once ECS stopped it;
//! * in a region in outage the targets fail their checks: `unhealthy`
//!   (`Target.FailedHealthChecks`), or `unhealthy.draining` for those being stopped.
//!
//! Nothing here changes the world: the model is a pure function of the ECS service's tasks and
//! the time ([`targets`]).

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Elbv2, TargetGroup, TargetHealth, TargetState};
use crate::cloud::{
  sim::{state::Model, state::WorldState, world::ModelDuration, SimCloud},
  CloudResult,
};

/// The target groups of a world (`elbv2:` in a world file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Elbv2Spec {
  pub target_groups: Vec<TargetGroupSpec>,
}

/// One target group: `{ region, name, service: { cluster, service }, port, health_check }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroupSpec {
  pub region: String,
  pub name: String,
  /// Defaults to `arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`, the id
  /// derived from the region and name.
  #[serde(default)]
  pub arn: Option<String>,
  /// The ECS service (in the group's region) whose tasks are the targets.
  pub service: FrontedService,
  /// The port targets are registered on (the container port).
  #[serde(default = "default_port")]
  pub port: u16,
  #[serde(default)]
  pub health_check: HealthCheckSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontedService {
  pub cluster: String,
  pub service: String,
}

/// The group's health check timing (AWS's defaults for an HTTP target group: every 30 s, healthy
/// after 5 checks in a row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckSpec {
  pub interval: ModelDuration,
  pub healthy_threshold: u32,
}

impl Default for HealthCheckSpec {
  fn default() -> Self {
    Self {
      interval: ModelDuration(Duration::from_secs(30)),
      healthy_threshold: 5,
    }
  }
}

fn default_port() -> u16 {
  80
}

impl HealthCheckSpec {
  /// How long a new target is `initial`: the healthy threshold of checks, one interval apart.
  pub fn healthy_after(&self) -> Duration {
    self.interval.0.saturating_mul(self.healthy_threshold)
  }
}

impl TargetGroupSpec {
  pub fn arn(&self, account: &str) -> String {
    self.arn.clone().unwrap_or_else(|| {
      format!(
        "arn:aws:elasticloadbalancing:{}:{account}:targetgroup/{}/{:016x}",
        self.region,
        self.name,
        fnv1a(&format!("{}/{}", self.region, self.name))
      )
    })
  }

  pub fn group(&self, account: &str) -> TargetGroup {
    TargetGroup {
      arn: self.arn(account),
      name: self.name.clone(),
    }
  }

  /// Whether `given` (a name or an ARN) names this group in `region`.
  pub fn is(&self, account: &str, region: &str, given: &str) -> bool {
    self.region == region && (self.name == given || self.arn(account) == given)
  }
}

/// A stable 64-bit id for a name (FNV-1a), so a world's ARNs are the same in every run.
fn fnv1a(text: &str) -> u64 {
  text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
    (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
  })
}

/// What the model needs to know about the fronted ECS service's tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tasks {
  /// Tasks running now.
  pub running: u32,
  /// Tasks that have been running since at least the group's `healthy_after` ago.
  pub settled: u32,
  /// Tasks the service wants: running tasks beyond it are being stopped.
  pub desired: u32,
}

/// The targets of `group` given its service's tasks, and whether its region is in outage.
/// Task `i` is target `10.<r>.0.<i+1>` on the group's port.
pub fn targets(
  group: &TargetGroupSpec,
  tasks: Tasks,
  region_index: u8,
  outage: bool,
) -> Vec<TargetHealth> {
  let serving = tasks.running.min(tasks.desired);
  let healthy = tasks.settled.min(serving);
  (0..tasks.running)
    .map(|i| {
      let (state, reason, description) = match (i < serving, outage) {
        (true, true) => (
          TargetState::Unhealthy,
          "Target.FailedHealthChecks",
          "Health checks failed",
        ),
        (false, true) => (
          TargetState::UnhealthyDraining,
          "Target.FailedHealthChecks",
          "Health checks failed while deregistration is in progress",
        ),
        (false, false) => (
          TargetState::Draining,
          "Target.DeregistrationInProgress",
          "Target deregistration is in progress",
        ),
        (true, false) if i < healthy => (TargetState::Healthy, "", ""),
        (true, false) => (
          TargetState::Initial,
          "Elb.InitialHealthChecking",
          "Initial health checks in progress",
        ),
      };
      let text = |value: &str| (!value.is_empty()).then(|| value.to_owned());
      TargetHealth {
        id: format!("10.{region_index}.0.{}", i + 1),
        port: Some(group.port),
        state,
        reason: text(reason),
        description: text(description),
      }
    })
    .collect()
}

impl Elbv2Spec {
  /// What serde cannot check: regions, the fronted services, duplicates, AWS's ranges.
  pub fn validate(
    &self,
    regions: &BTreeSet<&str>,
    services: &BTreeSet<(&str, &str, &str)>,
  ) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (i, group) in self.target_groups.iter().enumerate() {
      let path = format!("elbv2.target_groups[{i}]");
      if !(regions.is_empty() || regions.contains(group.region.as_str())) {
        return Err(format!(
          "{path}.region: `{}` is not one of the world's regions",
          group.region
        ));
      }
      if !seen.insert((group.region.as_str(), group.name.as_str())) {
        return Err(format!(
          "{path}.name: duplicate target group `{}`",
          group.name
        ));
      }
      let service = (
        group.region.as_str(),
        group.service.cluster.as_str(),
        group.service.service.as_str(),
      );
      if !services.contains(&service) {
        return Err(format!(
          "{path}.service: no ECS service {}/{}/{}",
          group.region, group.service.cluster, group.service.service
        ));
      }
      if !(2..=10).contains(&group.health_check.healthy_threshold) {
        return Err(format!(
          "{path}.health_check.healthy_threshold: AWS allows 2 to 10, got {}",
          group.health_check.healthy_threshold
        ));
      }
      if !(Duration::from_secs(5)..=Duration::from_secs(300))
        .contains(&group.health_check.interval.0)
      {
        return Err(format!(
          "{path}.health_check.interval: AWS allows 5s to 300s"
        ));
      }
    }
    Ok(())
  }
}

/// The world's target groups (they change only through the ECS services they front).
#[derive(Debug, Clone, Default)]
pub(crate) struct Elbv2State {
  groups: Vec<TargetGroupSpec>,
}

/// The family's part of the world spec.
pub(crate) type Spec = Elbv2Spec;

/// The family's part of the simulated world.
pub(crate) type State = Elbv2State;

/// Read-only: no operation changes it, and a world file keeps the groups it was created with.
impl crate::cloud::sim::state::FamilyState for Elbv2State {
  type Spec = Spec;

  fn new(spec: &crate::cloud::sim::world::WorldSpec, _model: &Model) -> Self {
    Elbv2State {
      groups: spec.elbv2.target_groups.clone(),
    }
  }
}

impl Elbv2State {
  fn find(&self, model: &Model, region: &str, given: &str) -> Option<&TargetGroupSpec> {
    self
      .groups
      .iter()
      .find(|group| group.is(&model.account, region, given))
  }

  /// Task `i` of a group in the `n`th region (in name order) among the groups' is target
  /// `10.<n>.0.<i+1>`.
  fn region_index(&self, region: &str) -> u8 {
    let regions: BTreeSet<&str> = self
      .groups
      .iter()
      .map(|group| group.region.as_str())
      .collect();
    regions
      .iter()
      .position(|known| *known == region)
      .and_then(|n| u8::try_from(n).ok())
      .unwrap_or(u8::MAX)
  }

  /// The targets of the group `given` (its name or ARN) names in `region` at `now`; `None` when
  /// there is none.
  pub(crate) fn health_by_name(
    &self,
    world: &WorldState,
    now: DateTime<Utc>,
    region: &str,
    given: &str,
  ) -> Option<Vec<TargetHealth>> {
    let arn = self
      .find(&world.model, region, given)?
      .arn(&world.model.account);
    self.health(world, now, region, &arn)
  }

  /// The targets of the group `arn` names in `region` at `now`; `None` when there is none.
  pub fn health(
    &self,
    world: &WorldState,
    now: DateTime<Utc>,
    region: &str,
    arn: &str,
  ) -> Option<Vec<TargetHealth>> {
    let group = self
      .groups
      .iter()
      .find(|group| group.region == region && group.arn(&world.model.account) == arn)?;
    let (cluster, service) = (&group.service.cluster, &group.service.service);
    let running_at = |at| {
      world
        .ecs
        .running(&world.model, at, region, cluster, service)
    };
    let desired = world
      .ecs
      .describe(&world.model, now, region, cluster, service)
      .map_or(0, |found| found.desired_count);
    let tasks = Tasks {
      running: running_at(now),
      settled: running_at(wall_before(
        &world.model,
        now,
        group.health_check.healthy_after(),
      )),
      desired,
    };
    Some(targets(
      group,
      tasks,
      self.region_index(region),
      world.in_outage(region, now),
    ))
  }
}

/// The wall-clock instant `modelled` (world time) before `now`.
fn wall_before(model: &Model, now: DateTime<Utc>, modelled: Duration) -> DateTime<Utc> {
  let wall =
    Duration::try_from_secs_f64(modelled.as_secs_f64() / model.time_scale).unwrap_or(Duration::MAX);
  chrono::Duration::from_std(wall)
    .ok()
    .and_then(|wall| now.checked_sub_signed(wall))
    .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[async_trait::async_trait]
impl Elbv2 for SimCloud {
  async fn find_target_group(&self, region: &str, name: &str) -> CloudResult<Option<TargetGroup>> {
    self
      .sim
      .read(
        &super::ops::DESCRIBE_TARGET_GROUPS,
        Some(region),
        |state, _| {
          Ok(
            state
              .elbv2
              .find(&state.model, region, name)
              .map(|group| group.group(&state.model.account)),
          )
        },
      )
      .await
  }

  async fn describe_target_health(
    &self,
    region: &str,
    target_group_arn: &str,
  ) -> CloudResult<Option<Vec<TargetHealth>>> {
    self
      .sim
      .read(
        &super::ops::DESCRIBE_TARGET_HEALTH,
        Some(region),
        |state, now| Ok(state.elbv2.health(state, now, region, target_group_arn)),
      )
      .await
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn group() -> TargetGroupSpec {
    TargetGroupSpec {
      region: "us-west-2".into(),
      name: "app-standby-tg".into(),
      arn: None,
      service: FrontedService {
        cluster: "app-standby".into(),
        service: "api".into(),
      },
      port: 80,
      health_check: HealthCheckSpec {
        interval: ModelDuration(Duration::from_secs(10)),
        healthy_threshold: 3,
      },
    }
  }

  fn states(targets: &[TargetHealth]) -> Vec<TargetState> {
    targets.iter().map(|target| target.state).collect()
  }

  #[test]
  fn elbv2_started_tasks_are_initial_until_their_checks_pass() {
    let group = group();
    assert_eq!(group.health_check.healthy_after(), Duration::from_secs(30));
    let none = targets(
      &group,
      Tasks {
        running: 0,
        settled: 0,
        desired: 2,
      },
      1,
      false,
    );
    assert!(none.is_empty());
    let starting = targets(
      &group,
      Tasks {
        running: 2,
        settled: 1,
        desired: 2,
      },
      1,
      false,
    );
    assert_eq!(
      states(&starting),
      [TargetState::Healthy, TargetState::Initial]
    );
    assert_eq!(starting[0].reason, None);
    assert_eq!(
      starting[1].reason.as_deref(),
      Some("Elb.InitialHealthChecking")
    );
    assert_eq!(starting[1].id, "10.1.0.2");
    assert_eq!(starting[1].port, Some(80));
  }

  #[test]
  fn elbv2_stopping_tasks_drain_and_an_outage_fails_the_checks() {
    let group = group();
    let stopping = targets(
      &group,
      Tasks {
        running: 3,
        settled: 3,
        desired: 1,
      },
      0,
      false,
    );
    assert_eq!(
      states(&stopping),
      [
        TargetState::Healthy,
        TargetState::Draining,
        TargetState::Draining
      ]
    );
    assert_eq!(
      stopping[1].reason.as_deref(),
      Some("Target.DeregistrationInProgress")
    );
    let down = targets(
      &group,
      Tasks {
        running: 2,
        settled: 2,
        desired: 1,
      },
      0,
      true,
    );
    assert_eq!(
      states(&down),
      [TargetState::Unhealthy, TargetState::UnhealthyDraining]
    );
    assert!(down
      .iter()
      .all(|target| target.reason.as_deref() == Some("Target.FailedHealthChecks")));
  }

  #[test]
  fn elbv2_a_group_is_named_by_name_or_arn_in_its_region() {
    let group = group();
    let arn = group.arn("123456789012");
    assert!(arn.starts_with(
      "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/app-standby-tg/"
    ));
    assert_eq!(arn, group.arn("123456789012"), "stable");
    assert!(group.is("123456789012", "us-west-2", "app-standby-tg"));
    assert!(group.is("123456789012", "us-west-2", &arn));
    assert!(!group.is("123456789012", "us-east-1", "app-standby-tg"));
    assert_eq!(
      TargetState::from_api("unhealthy.draining"),
      TargetState::UnhealthyDraining
    );
    assert_eq!(TargetState::from_api("something-new"), TargetState::Unknown);
  }
}
