//! Route 53 Application Recovery Controller (ARC) routing controls, through a recovery
//! cluster's data plane: read a routing control's state and set it.
//!
//! A cluster answers on several regional endpoints (five on AWS); each is a URL of its own
//! (`https://host-xxxx.us-east-1.example.aws/v1`) signed for its region. AWS's guidance for the
//! data plane is to try the endpoints in turn (random order, the next one on a timeout or a
//! server error) until one answers: callers hand each call the [`ClusterEndpoint`] to try, and
//! the action walks the list (`actions::arc`). The recovery control-config API (whose control
//! plane lives in one region) is never called: the endpoints and routing-control ARNs come from
//! configuration.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult};

pub(crate) mod aws;
pub(crate) mod sim;

/// Route 53 Recovery Cluster (the ARC data plane). Regional data-plane operations: an outage
/// of one region takes only that region's endpoint with it. The IAM resource is a routing
/// control (Service Authorization Reference, "Actions defined by Amazon Route 53 Recovery
/// Cluster"); AWS documents no rate-limit figure drctl could confirm, so it is not limited
/// client-side.
pub mod ops {
  use crate::cloud::ops::{data, mutate, read, Op};

  const ROUTING_CONTROL: &str = "arn:${Partition}:route53-recovery-control::${Account}:controlpanel/${ControlPanelId}/routingcontrol/${RoutingControlId}";

  pub const GET_ROUTING_CONTROL_STATE: Op = data(read(
    "route53-recovery-cluster",
    "GetRoutingControlState",
    "route53-recovery-cluster:GetRoutingControlState",
    None,
    ROUTING_CONTROL,
  ));
  pub const UPDATE_ROUTING_CONTROL_STATE: Op = data(mutate(
    "route53-recovery-cluster",
    "UpdateRoutingControlState",
    "route53-recovery-cluster:UpdateRoutingControlState",
    None,
    ROUTING_CONTROL,
  ));

  pub const ALL: &[&Op] = &[&GET_ROUTING_CONTROL_STATE, &UPDATE_ROUTING_CONTROL_STATE];
}

/// A routing control's state (`RoutingControlState`): `On` lets traffic flow to the cell its
/// health check guards (the health check is healthy), `Off` stops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlState {
  On,
  Off,
}

impl ControlState {
  pub fn as_str(self) -> &'static str {
    match self {
      ControlState::On => "On",
      ControlState::Off => "Off",
    }
  }

  /// The state as the API (or a runbook) names it.
  pub fn parse(text: &str) -> Option<ControlState> {
    match text {
      "On" | "on" => Some(ControlState::On),
      "Off" | "off" => Some(ControlState::Off),
      _ => None,
    }
  }
}

impl fmt::Display for ControlState {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(self.as_str())
  }
}

/// One regional endpoint of a recovery cluster (`ClusterEndpoint`: `Region`, `Endpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEndpoint {
  pub region: String,
  pub url: String,
}

impl fmt::Display for ClusterEndpoint {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{} ({})", self.region, self.url)
  }
}

service_family! {
  /// The ARC recovery cluster's data plane. Every call goes to one endpoint of the cluster.
  pub trait RecoveryCluster, limited LimitedRecoveryCluster {
    /// `GetRoutingControlState` of one routing control, asked of `endpoint`.
    [ops::GET_ROUTING_CONTROL_STATE, Some(endpoint.region.as_str()), 1]
    async fn get_routing_control_state(
      &self,
      endpoint: &ClusterEndpoint,
      routing_control_arn: &str,
    ) -> CloudResult<ControlState>;
    /// `UpdateRoutingControlState` through `endpoint`. Mutating; setting the state a control
    /// already has changes nothing.
    [ops::UPDATE_ROUTING_CONTROL_STATE, Some(endpoint.region.as_str()), 1]
    async fn update_routing_control_state(
      &self,
      endpoint: &ClusterEndpoint,
      routing_control_arn: &str,
      state: ControlState,
    ) -> CloudResult<()>;
  }
}
