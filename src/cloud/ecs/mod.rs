//! ECS: the provider trait, its domain types and operations; the SDK adapter ([`aws`]) and the
//! simulator model ([`sim`]).

use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult};

pub(crate) mod aws;
pub(crate) mod sim;

/// Amazon ECS. Service reads and service writes are separate rate-limit families.
///
/// The family's part of the operation table ([`crate::cloud::ops`], where `FAMILIES` is
/// collected from every family's `ALL`).
pub mod ops {
  use crate::cloud::ops::{mutate, read, Op};

  const SERVICE: &str =
    "arn:${Partition}:ecs:${Region}:${Account}:service/${ClusterName}/${ServiceName}";

  pub const DESCRIBE_SERVICES: Op = read(
    "ecs",
    "DescribeServices",
    "ecs:DescribeServices",
    Some("ecs.read"),
    SERVICE,
  );
  pub const UPDATE_SERVICE: Op = mutate(
    "ecs",
    "UpdateService",
    "ecs:UpdateService",
    Some("ecs.write"),
    SERVICE,
  );

  pub const ALL: &[&Op] = &[&DESCRIBE_SERVICES, &UPDATE_SERVICE];
}

/// An ECS service deployment (`PRIMARY` or `ACTIVE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcsDeployment {
  pub id: String,
  /// `PRIMARY` (the newest) or `ACTIVE` (being replaced).
  pub status: String,
  pub desired_count: u32,
  pub running_count: u32,
  pub pending_count: u32,
  /// `IN_PROGRESS`, `COMPLETED`, `FAILED`; absent on services without the circuit breaker.
  pub rollout_state: Option<String>,
}

/// An ECS service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EcsService {
  pub region: String,
  pub cluster: String,
  pub name: String,
  /// `ACTIVE`, `DRAINING`, `INACTIVE`.
  pub status: String,
  pub desired_count: u32,
  pub running_count: u32,
  pub pending_count: u32,
  pub deployments: Vec<EcsDeployment>,
}

impl EcsService {
  /// Steady at `desired`: the desired count is set, one PRIMARY deployment, all tasks running
  /// and the rollout (when reported) completed.
  pub fn is_steady_at(&self, desired: u32) -> bool {
    let one_primary = self.deployments.len() == 1
      && self.deployments[0].status == "PRIMARY"
      && self.deployments[0]
        .rollout_state
        .as_deref()
        .is_none_or(|state| state == "COMPLETED");
    self.desired_count == desired && self.running_count == desired && one_primary
  }
}

service_family! {
  /// ECS.
  pub trait Ecs, limited LimitedEcs {
    /// `DescribeServices` for one service; `Ok(None)` when missing or `INACTIVE`.
    [ops::DESCRIBE_SERVICES, Some(region), 1]
    async fn describe_service(
      &self,
      region: &str,
      cluster: &str,
      service: &str,
    ) -> CloudResult<Option<EcsService>>;
    /// `UpdateService` with a new desired count. Mutating, idempotent (setting the same count
    /// twice changes nothing).
    [ops::UPDATE_SERVICE, Some(region), 1]
    async fn update_desired_count(
      &self,
      region: &str,
      cluster: &str,
      service: &str,
      desired_count: u32,
    ) -> CloudResult<()>;
  }
}
