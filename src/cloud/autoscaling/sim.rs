//! Simulated EC2 Auto Scaling groups. `UpdateAutoScalingGroup` with a new desired capacity
//! launches or terminates instances over modelled time:
//!
//! * a launched instance is `Pending` until it has booted and passed its health check grace,
//!   `instance_warmup` after the update for the first, a tenth of it later for each next one
//!   (as ECS tasks start here), then `InService` and `Healthy`;
//! * on a scale-in the instances beyond the new capacity are `Terminating` for `terminate`, then
//!   gone;
//! * a desired capacity outside the group's minimum and maximum is refused as AWS refuses it
//!   (`ValidationError`), and so is a group that does not exist.
//!
//! A world file's part (`autoscaling:`) is checked as it is read: min ≤ desired ≤ max, each group
//! once per region.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{AutoScaling, AutoScalingGroup, GroupInstance};
use crate::cloud::{
  sim::{
    state::{detail_str, missing, Applied, Model, Reject, WorldState},
    world::{ModelDuration, WorldSpec},
    Operation, SimCloud,
  },
  CloudResult,
};

/// The most instances a group may have (`MaxSize`) in a world: AWS's default EC2 quotas are far
/// below it; it bounds the model.
const MAX_GROUP_SIZE: u32 = 10_000;

/// The Auto Scaling groups of a world (`autoscaling:` in a world file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawSpec", into = "RawSpec")]
pub struct AutoScalingSpec {
  pub instance_warmup: ModelDuration,
  pub terminate: ModelDuration,
  pub groups: Vec<GroupSpec>,
}

impl Default for AutoScalingSpec {
  fn default() -> Self {
    Self {
      instance_warmup: default_warmup(),
      terminate: default_terminate(),
      groups: Vec::new(),
    }
  }
}

/// [`AutoScalingSpec`] as written, before its checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
  /// Launch to `InService` of the first new instance (default 3m).
  #[serde(default = "default_warmup")]
  instance_warmup: ModelDuration,
  /// How long a terminating instance stays `Terminating` (default 1m).
  #[serde(default = "default_terminate")]
  terminate: ModelDuration,
  #[serde(default)]
  groups: Vec<GroupSpec>,
}

/// One group: `{ region, name, min, max, desired, in_service }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
  pub region: String,
  pub name: String,
  pub min: u32,
  pub max: u32,
  pub desired: u32,
  /// Instances in service when the world is created (default: `desired`, a steady group).
  #[serde(default)]
  pub in_service: Option<u32>,
}

fn default_warmup() -> ModelDuration {
  ModelDuration::secs(180)
}

fn default_terminate() -> ModelDuration {
  ModelDuration::secs(60)
}

impl TryFrom<RawSpec> for AutoScalingSpec {
  type Error = String;

  fn try_from(raw: RawSpec) -> Result<AutoScalingSpec, String> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, group) in raw.groups.iter().enumerate() {
      let path = format!("groups[{i}]");
      if !seen.insert((group.region.as_str(), group.name.as_str())) {
        return Err(format!("{path}.name: duplicate group `{}`", group.name));
      }
      if !(group.min <= group.desired && group.desired <= group.max) {
        return Err(format!(
          "{path}: min ({}) <= desired ({}) <= max ({}) must hold, as AWS requires",
          group.min, group.desired, group.max
        ));
      }
      if group.max > MAX_GROUP_SIZE {
        return Err(format!("{path}.max: at most {MAX_GROUP_SIZE}"));
      }
      if group.in_service.is_some_and(|n| n > group.max) {
        return Err(format!("{path}.in_service: at most max ({})", group.max));
      }
    }
    Ok(AutoScalingSpec {
      instance_warmup: raw.instance_warmup,
      terminate: raw.terminate,
      groups: raw.groups,
    })
  }
}

impl From<AutoScalingSpec> for RawSpec {
  fn from(spec: AutoScalingSpec) -> RawSpec {
    RawSpec {
      instance_warmup: spec.instance_warmup,
      terminate: spec.terminate,
      groups: spec.groups,
    }
  }
}

/// A capacity change under way: `from` instances at `since`, `to` wanted.
#[derive(Debug, Clone)]
struct Change {
  from: u32,
  to: u32,
  since: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Group {
  region: String,
  name: String,
  min: u32,
  max: u32,
  change: Change,
}

/// How many of `n` launched instances are in service `elapsed` after the update.
fn launched(n: u32, elapsed: Duration, warmup: Duration) -> u32 {
  if n == 0 || warmup.is_zero() {
    return n;
  }
  let ratio = elapsed.as_secs_f64() / warmup.as_secs_f64();
  if ratio < 1.0 {
    return 0;
  }
  // Instance i is in service once ratio >= 1 + 0.1·i.
  let last = ((ratio - 1.0) * 10.0 + 1e-9).floor();
  if last >= f64::from(n) {
    n
  } else {
    last as u32 + 1
  }
}

/// A stable instance id for the `k`th instance of a group.
fn instance_id(region: &str, name: &str, k: u32) -> String {
  let hash = format!("{region}/{name}/{k}")
    .bytes()
    .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
      (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
  format!("i-{:017x}", hash & 0x000f_ffff_ffff_ffff)
}

impl Group {
  /// `(in service, pending, terminating)` at `now`.
  fn counts(&self, spec: &Timing, model: &Model, now: DateTime<Utc>) -> (u32, u32, u32) {
    let Change { from, to, since } = self.change;
    let elapsed = model.elapsed(since, now);
    if to >= from {
      let ready = launched(to - from, elapsed, spec.warmup);
      (from + ready, to - from - ready, 0)
    } else if elapsed >= spec.terminate {
      (to, 0, 0)
    } else {
      (to, 0, from - to)
    }
  }

  fn view(&self, timing: &Timing, model: &Model, now: DateTime<Utc>) -> AutoScalingGroup {
    let (serving, pending, terminating) = self.counts(timing, model, now);
    let instance = |k: u32, state: &str| GroupInstance {
      id: instance_id(&self.region, &self.name, k),
      lifecycle_state: state.to_owned(),
      health: "Healthy".to_owned(),
    };
    let mut instances: Vec<GroupInstance> =
      (0..serving).map(|k| instance(k, "InService")).collect();
    instances.extend((serving..serving + pending).map(|k| instance(k, "Pending")));
    instances.extend((serving..serving + terminating).map(|k| instance(k, "Terminating")));
    AutoScalingGroup {
      name: self.name.clone(),
      min_size: self.min,
      max_size: self.max,
      desired_capacity: self.change.to,
      instances,
    }
  }
}

/// The modelled durations of a world's groups.
#[derive(Debug, Clone)]
struct Timing {
  warmup: Duration,
  terminate: Duration,
}

/// The world's Auto Scaling groups.
#[derive(Debug, Clone)]
pub(crate) struct AutoScalingState {
  timing: Timing,
  groups: BTreeMap<(String, String), Group>,
}

/// The family's part of the world spec.
pub(crate) type Spec = AutoScalingSpec;

/// The family's part of the simulated world.
pub(crate) type State = AutoScalingState;

impl crate::cloud::sim::state::FamilyState for AutoScalingState {
  type Spec = Spec;

  fn new(spec: &WorldSpec, model: &Model) -> Self {
    let part = &spec.autoscaling;
    let groups = part
      .groups
      .iter()
      .map(|group| {
        let value = Group {
          region: group.region.clone(),
          name: group.name.clone(),
          min: group.min,
          max: group.max,
          change: Change {
            from: group.in_service.unwrap_or(group.desired),
            to: group.desired,
            since: model.created_at,
          },
        };
        ((group.region.clone(), group.name.clone()), value)
      })
      .collect();
    AutoScalingState {
      timing: Timing {
        warmup: part.instance_warmup.0,
        terminate: part.terminate.0,
      },
      groups,
    }
  }

  fn apply(&mut self, op: &Operation, model: &Model) -> Applied {
    if op.operation != super::ops::UPDATE_AUTO_SCALING_GROUP.name {
      return Err(Reject::client(
        "InvalidAction",
        format!("autoscaling has no operation {}", op.operation),
      ));
    }
    let region = op.region.as_deref().ok_or_else(|| missing(op, "region"))?;
    let name = detail_str(op, "group")?;
    let number = |field: &str| {
      op.detail
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let desired = number("desired").ok_or_else(|| missing(op, "desired"))?;
    let timing = self.timing.clone();
    let Some(group) = self.groups.get_mut(&(region.to_owned(), name.to_owned())) else {
      return Err(Reject::new(
        crate::cloud::ErrorKind::NotFound,
        "ValidationError",
        400,
        format!("AutoScalingGroup name not found - AutoScalingGroup {name} not found"),
      ));
    };
    let min = number("min_size").unwrap_or(group.min);
    if !(min <= desired && desired <= group.max) {
      return Err(Reject::client(
        "ValidationError",
        format!(
          "Desired capacity:{desired} must be between the specified min size:{min} and max size:{}",
          group.max
        ),
      ));
    }
    group.min = min;
    if desired != group.change.to {
      let (serving, _, _) = group.counts(&timing, model, op.at);
      group.change = Change {
        from: serving,
        to: desired,
        since: op.at,
      };
    }
    Ok(())
  }

  fn export(&self, mut created: Spec, model: &Model, now: DateTime<Utc>) -> Spec {
    for group in &mut created.groups {
      if let Some(state) = self.groups.get(&(group.region.clone(), group.name.clone())) {
        group.min = state.min;
        group.desired = state.change.to;
        group.in_service = Some(state.counts(&self.timing, model, now).0);
      }
    }
    created
  }
}

impl AutoScalingState {
  fn describe(
    &self,
    model: &Model,
    now: DateTime<Utc>,
    region: &str,
    name: &str,
  ) -> Option<AutoScalingGroup> {
    self
      .groups
      .get(&(region.to_owned(), name.to_owned()))
      .map(|group| group.view(&self.timing, model, now))
  }
}

fn describe(
  world: &WorldState,
  now: DateTime<Utc>,
  region: &str,
  name: &str,
) -> Option<AutoScalingGroup> {
  world.autoscaling.describe(&world.model, now, region, name)
}

#[async_trait::async_trait]
impl AutoScaling for SimCloud {
  async fn describe_group(
    &self,
    region: &str,
    name: &str,
  ) -> CloudResult<Option<AutoScalingGroup>> {
    self
      .sim
      .read(
        &super::ops::DESCRIBE_AUTO_SCALING_GROUPS,
        Some(region),
        |world, now| Ok(describe(world, now, region, name)),
      )
      .await
  }

  async fn set_capacity(
    &self,
    region: &str,
    name: &str,
    desired: u32,
    min_size: Option<u32>,
  ) -> CloudResult<()> {
    let mut detail = json!({ "group": name, "desired": desired });
    if let Some(min) = min_size {
      detail["min_size"] = json!(min);
    }
    self
      .sim
      .mutate(
        &super::ops::UPDATE_AUTO_SCALING_GROUP,
        Some(region),
        name,
        detail,
      )
      .await
      .map(drop)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn autoscaling_instances_launch_one_after_another() {
    let warmup = Duration::from_secs(180);
    assert_eq!(launched(3, Duration::from_secs(179), warmup), 0);
    assert_eq!(launched(3, Duration::from_secs(180), warmup), 1);
    assert_eq!(launched(3, Duration::from_secs(198), warmup), 2);
    assert_eq!(launched(3, Duration::from_secs(216), warmup), 3);
    assert_eq!(launched(3, Duration::from_secs(10_000), warmup), 3);
    assert_eq!(launched(0, Duration::ZERO, warmup), 0);
  }

  #[test]
  fn autoscaling_world_groups_are_checked_as_they_are_read() {
    let parse = |text: &str| serde_yaml::from_str::<AutoScalingSpec>(text);
    let spec =
      parse("groups: [{ region: us-west-2, name: web, min: 0, max: 10, desired: 0 }]").unwrap();
    assert_eq!(spec.instance_warmup, ModelDuration::secs(180));
    for (text, expected) in [
      (
        "groups: [{ region: us-west-2, name: web, min: 2, max: 10, desired: 1 }]",
        "min (2) <= desired (1) <= max (10) must hold",
      ),
      (
        "groups: [{ region: us-west-2, name: web, min: 0, max: 2, desired: 0 }, { region: us-west-2, name: web, min: 0, max: 2, desired: 0 }]",
        "groups[1].name: duplicate group `web`",
      ),
      (
        "groups: [{ region: us-west-2, name: web, min: 0, max: 20000, desired: 0 }]",
        "groups[0].max: at most 10000",
      ),
      ("groups: [{ region: us-west-2, name: web, min: 0, max: 2, desired: 0, size: 1 }]", "unknown field `size`"),
    ] {
      let err = parse(text).unwrap_err().to_string();
      assert!(err.contains(expected), "{text}: {err}");
    }
  }
}
