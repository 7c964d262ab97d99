//! Elastic Load Balancing (ALB target groups): the health of a target group's targets, read-only.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult};

pub(crate) mod aws;
pub(crate) mod sim;

/// Elastic Load Balancing v2 (ALB target groups), read-only. Its describe actions support no
/// resource-level permission; AWS documents no rate-limit figure drctl could confirm, so it is
/// not limited client-side (reads are still retried).
pub mod ops {
  use crate::cloud::ops::{read, Op};

  pub const DESCRIBE_TARGET_GROUPS: Op = read(
    "elasticloadbalancing",
    "DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroups",
    None,
    "*",
  );
  pub const DESCRIBE_TARGET_HEALTH: Op = read(
    "elasticloadbalancing",
    "DescribeTargetHealth",
    "elasticloadbalancing:DescribeTargetHealth",
    None,
    "*",
  );

  pub const ALL: &[&Op] = &[&DESCRIBE_TARGET_GROUPS, &DESCRIBE_TARGET_HEALTH];
}

/// A target's health state (`TargetHealthStateEnum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetState {
  /// Registering, or not yet through the target group's healthy threshold of checks.
  #[serde(rename = "initial")]
  Initial,
  #[serde(rename = "healthy")]
  Healthy,
  #[serde(rename = "unhealthy")]
  Unhealthy,
  /// Failing its health checks while it deregisters.
  #[serde(rename = "unhealthy.draining")]
  UnhealthyDraining,
  /// Not registered, not in use by a load balancer, or in an unusable state.
  #[serde(rename = "unused")]
  Unused,
  /// Deregistering: connections drain before it is gone.
  #[serde(rename = "draining")]
  Draining,
  /// Health checks are disabled.
  #[serde(rename = "unavailable")]
  Unavailable,
  /// A state this drctl does not know (AWS added one): never counted as healthy.
  #[serde(rename = "unknown")]
  Unknown,
}

impl TargetState {
  pub fn as_str(self) -> &'static str {
    match self {
      TargetState::Initial => "initial",
      TargetState::Healthy => "healthy",
      TargetState::Unhealthy => "unhealthy",
      TargetState::UnhealthyDraining => "unhealthy.draining",
      TargetState::Unused => "unused",
      TargetState::Draining => "draining",
      TargetState::Unavailable => "unavailable",
      TargetState::Unknown => "unknown",
    }
  }

  /// The state as the API names it; anything else is [`TargetState::Unknown`].
  pub fn from_api(text: &str) -> TargetState {
    [
      TargetState::Initial,
      TargetState::Healthy,
      TargetState::Unhealthy,
      TargetState::UnhealthyDraining,
      TargetState::Unused,
      TargetState::Draining,
      TargetState::Unavailable,
    ]
    .into_iter()
    .find(|state| state.as_str() == text)
    .unwrap_or(TargetState::Unknown)
  }
}

impl fmt::Display for TargetState {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(self.as_str())
  }
}

/// One target of a target group and its health (`TargetHealthDescription`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
  /// Instance id, IP address or Lambda ARN.
  pub id: String,
  pub port: Option<u16>,
  pub state: TargetState,
  /// The reason code (`Target.FailedHealthChecks`, `Elb.InitialHealthChecking`, ...); none
  /// while healthy. AWS adds codes, so it stays the API's text.
  pub reason: Option<String>,
  pub description: Option<String>,
}

/// A target group found by name (`DescribeTargetGroups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
  pub arn: String,
  pub name: String,
}

service_family! {
  /// Elastic Load Balancing v2, read-only.
  pub trait Elbv2, limited LimitedElbv2 {
    /// `DescribeTargetGroups` by name in `region`; `Ok(None)` when there is none.
    [ops::DESCRIBE_TARGET_GROUPS, Some(region), 1]
    async fn find_target_group(&self, region: &str, name: &str) -> CloudResult<Option<TargetGroup>>;
    /// `DescribeTargetHealth` of every registered target; `Ok(None)` when the group does not
    /// exist.
    [ops::DESCRIBE_TARGET_HEALTH, Some(region), 1]
    async fn describe_target_health(
      &self,
      region: &str,
      target_group_arn: &str,
    ) -> CloudResult<Option<Vec<TargetHealth>>>;
  }
}
