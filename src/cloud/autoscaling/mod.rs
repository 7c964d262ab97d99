//! EC2 Auto Scaling: a group's capacity and its instances, and setting a standby group's
//! capacity.

use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult};

pub(crate) mod aws;
pub(crate) mod sim;

/// EC2 Auto Scaling. Its describe actions support no resource-level permission; AWS documents no
/// per-operation rate-limit figure drctl could confirm, so it is not limited client-side (reads
/// are still retried, and a throttled update is).
pub mod ops {
  use crate::cloud::ops::{mutate, read, Op};

  pub const DESCRIBE_AUTO_SCALING_GROUPS: Op = read(
    "autoscaling",
    "DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingGroups",
    None,
    "*",
  );
  /// Sets the group's desired capacity (and its minimum) in one call.
  pub const UPDATE_AUTO_SCALING_GROUP: Op = mutate(
    "autoscaling",
    "UpdateAutoScalingGroup",
    "autoscaling:UpdateAutoScalingGroup",
    None,
    "arn:${Partition}:autoscaling:${Region}:${Account}:autoScalingGroup:${GroupId}:autoScalingGroupName/${GroupFriendlyName}",
  );

  pub const ALL: &[&Op] = &[&DESCRIBE_AUTO_SCALING_GROUPS, &UPDATE_AUTO_SCALING_GROUP];
}

/// One instance of a group (`Instance`): its lifecycle state (`Pending`, `InService`,
/// `Terminating`, ... as the API names it) and health (`Healthy` or `Unhealthy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInstance {
  pub id: String,
  pub lifecycle_state: String,
  pub health: String,
}

impl GroupInstance {
  /// Serving: `InService` and `Healthy`.
  pub fn in_service(&self) -> bool {
    self.lifecycle_state == "InService" && self.health == "Healthy"
  }
}

/// An Auto Scaling group as `DescribeAutoScalingGroups` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoScalingGroup {
  pub name: String,
  pub min_size: u32,
  pub max_size: u32,
  pub desired_capacity: u32,
  pub instances: Vec<GroupInstance>,
}

impl AutoScalingGroup {
  /// How many instances serve ([`GroupInstance::in_service`]).
  pub fn in_service(&self) -> u32 {
    let serving = self.instances.iter().filter(|i| i.in_service()).count();
    u32::try_from(serving).unwrap_or(u32::MAX)
  }
}

service_family! {
  /// EC2 Auto Scaling.
  pub trait AutoScaling, limited LimitedAutoScaling {
    /// `DescribeAutoScalingGroups` of one group; `Ok(None)` when there is none.
    [ops::DESCRIBE_AUTO_SCALING_GROUPS, Some(region), 1]
    async fn describe_group(&self, region: &str, name: &str) -> CloudResult<Option<AutoScalingGroup>>;
    /// `UpdateAutoScalingGroup`: desired capacity, and the minimum when given. Mutating,
    /// idempotent (the same capacity twice changes nothing).
    [ops::UPDATE_AUTO_SCALING_GROUP, Some(region), 1]
    async fn set_capacity(
      &self,
      region: &str,
      name: &str,
      desired: u32,
      min_size: Option<u32>,
    ) -> CloudResult<()>;
  }
}
