//! Simulated ARC recovery cluster: its regional endpoints and its routing controls.
//!
//! Every call names the endpoint it is sent to and passes the simulator's gate with that
//! endpoint's region, so whatever takes a region down (faults, outages) takes that endpoint with
//! it while the other endpoints still answer, as ARC's data plane does. A URL that is not one of
//! the world's endpoints cannot be connected to.
//!
//! Routing controls are wired to Route 53: a routing control may name the health check of type
//! `RECOVERY_CONTROL` that follows it (`health_check:`), which is healthy while the control is
//! `On` and unhealthy while it is `Off` ([`ArcState::health_check_state`], read by the Route 53
//! model's health checks). So turning the primary's control Off and the standby's On flips the
//! failover record's answer with no Route 53 call.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ClusterEndpoint, ControlState, RecoveryCluster};
use crate::cloud::{
  sim::{
    state::{detail_str, Applied, Model, Reject},
    Operation, SimCloud,
  },
  CloudResult, ErrorKind,
};

/// The world's recovery cluster (`arc:` in a world file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArcSpec {
  /// The cluster's regional endpoints.
  pub endpoints: Vec<ClusterEndpoint>,
  pub routing_controls: Vec<RoutingControlSpec>,
}

/// One routing control: `{ arn, name, state, health_check }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingControlSpec {
  pub arn: String,
  #[serde(default)]
  pub name: Option<String>,
  pub state: ControlState,
  /// The Route 53 health check (of type `RECOVERY_CONTROL`) whose status is this control's.
  #[serde(default)]
  pub health_check: Option<String>,
}

impl ArcSpec {
  /// What serde cannot check: endpoint regions, duplicates, the health checks named.
  pub fn validate(
    &self,
    regions: &BTreeSet<&str>,
    health_checks: &BTreeSet<&str>,
  ) -> Result<(), String> {
    let mut urls = BTreeSet::new();
    for (i, endpoint) in self.endpoints.iter().enumerate() {
      if endpoint.region.is_empty() {
        return Err(format!("arc.endpoints[{i}].region: must not be empty"));
      }
      if !urls.insert(endpoint.url.as_str()) {
        return Err(format!(
          "arc.endpoints[{i}].url: duplicate endpoint `{}`",
          endpoint.url
        ));
      }
    }
    // An endpoint may be in a region the world has no resources in (AWS's clusters have five).
    let _ = regions;
    let mut arns = BTreeSet::new();
    let mut wired = BTreeSet::new();
    for (i, control) in self.routing_controls.iter().enumerate() {
      let path = format!("arc.routing_controls[{i}]");
      if !arns.insert(control.arn.as_str()) {
        return Err(format!(
          "{path}.arn: duplicate routing control `{}`",
          control.arn
        ));
      }
      if let Some(check) = &control.health_check {
        if !health_checks.contains(check.as_str()) {
          return Err(format!(
            "{path}.health_check: no Route 53 health check `{check}`"
          ));
        }
        if !wired.insert(check.as_str()) {
          return Err(format!(
            "{path}.health_check: `{check}` already follows another routing control"
          ));
        }
      }
    }
    Ok(())
  }
}

/// The cluster's endpoints and every routing control's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct ArcState {
  endpoints: Vec<ClusterEndpoint>,
  /// By ARN.
  controls: BTreeMap<String, RoutingControlSpec>,
}

/// The family's part of the world spec.
pub(crate) type Spec = ArcSpec;

/// The family's part of the simulated world.
pub(crate) type State = ArcState;

fn no_such_control(arn: &str) -> Reject {
  Reject::not_found(
    "ResourceNotFoundException",
    format!("Routing control {arn} not found"),
  )
}

impl crate::cloud::sim::state::FamilyState for ArcState {
  type Spec = Spec;

  fn new(spec: &crate::cloud::sim::world::WorldSpec, _model: &Model) -> Self {
    ArcState {
      endpoints: spec.arc.endpoints.clone(),
      controls: spec
        .arc
        .routing_controls
        .iter()
        .map(|control| (control.arn.clone(), control.clone()))
        .collect(),
    }
  }

  fn apply(&mut self, op: &Operation, _model: &Model) -> Applied {
    if op.operation != super::ops::UPDATE_ROUTING_CONTROL_STATE.name {
      return Err(Reject::client(
        "InvalidAction",
        format!("arc has no operation {}", op.operation),
      ));
    }
    let state = detail_str(op, "state")?;
    let state = ControlState::parse(state).ok_or_else(|| {
      Reject::client(
        "ValidationException",
        format!("`{state}` is not a routing control state (On, Off)"),
      )
    })?;
    let control = self
      .controls
      .get_mut(&op.target)
      .ok_or_else(|| no_such_control(&op.target))?;
    control.state = state;
    Ok(())
  }

  fn export(&self, created: Self::Spec, _model: &Model, _now: DateTime<Utc>) -> Self::Spec {
    ArcSpec {
      endpoints: created.endpoints,
      routing_controls: self.controls.values().cloned().collect(),
    }
  }
}

impl ArcState {
  /// The state of the routing control that Route 53 health check `id` follows, when it is a
  /// `RECOVERY_CONTROL` check (`None`: an ordinary check).
  pub(crate) fn health_check_state(&self, id: &str) -> Option<ControlState> {
    self
      .controls
      .values()
      .find(|control| control.health_check.as_deref() == Some(id))
      .map(|control| control.state)
  }

  fn knows(&self, endpoint: &ClusterEndpoint) -> Result<(), Reject> {
    if self.endpoints.contains(endpoint) {
      Ok(())
    } else {
      Err(Reject::new(
        ErrorKind::Transport,
        "DispatchFailure",
        0,
        format!("could not connect to {endpoint}: not an endpoint of the cluster (simulated)"),
      ))
    }
  }

  fn state(&self, endpoint: &ClusterEndpoint, arn: &str) -> Result<ControlState, Reject> {
    self.knows(endpoint)?;
    self
      .controls
      .get(arn)
      .map(|control| control.state)
      .ok_or_else(|| no_such_control(arn))
  }
}

#[async_trait::async_trait]
impl RecoveryCluster for SimCloud {
  async fn get_routing_control_state(
    &self,
    endpoint: &ClusterEndpoint,
    routing_control_arn: &str,
  ) -> CloudResult<ControlState> {
    self
      .sim
      .read(
        &super::ops::GET_ROUTING_CONTROL_STATE,
        Some(&endpoint.region),
        |state, _now| state.arc.state(endpoint, routing_control_arn),
      )
      .await
  }

  async fn update_routing_control_state(
    &self,
    endpoint: &ClusterEndpoint,
    routing_control_arn: &str,
    state: ControlState,
  ) -> CloudResult<()> {
    let op = &super::ops::UPDATE_ROUTING_CONTROL_STATE;
    // An unknown endpoint never reaches the cluster: refuse it before anything is recorded.
    self
      .sim
      .peek(|world, _| world.arc.knows(endpoint))
      .map_err(|reject| self.sim.reject(op.service, op.name, reject))?;
    self
      .sim
      .mutate(
        op,
        Some(&endpoint.region),
        routing_control_arn,
        json!({ "state": state.as_str(), "endpoint": endpoint.url }),
      )
      .await
      .map(drop)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn arc_world_checks_its_references() {
    let control = |arn: &str, check: Option<&str>| RoutingControlSpec {
      arn: arn.into(),
      name: None,
      state: ControlState::On,
      health_check: check.map(str::to_owned),
    };
    let checks: BTreeSet<&str> = ["hc-a"].into();
    let regions = BTreeSet::new();
    let spec = ArcSpec {
      endpoints: vec![],
      routing_controls: vec![control("arn:a", Some("hc-a")), control("arn:b", None)],
    };
    assert_eq!(spec.validate(&regions, &checks), Ok(()));
    let unknown = ArcSpec {
      routing_controls: vec![control("arn:a", Some("hc-x"))],
      ..ArcSpec::default()
    };
    assert_eq!(
      unknown.validate(&regions, &checks).unwrap_err(),
      "arc.routing_controls[0].health_check: no Route 53 health check `hc-x`"
    );
    let twice = ArcSpec {
      routing_controls: vec![control("arn:a", None), control("arn:a", None)],
      ..ArcSpec::default()
    };
    assert!(twice
      .validate(&regions, &checks)
      .unwrap_err()
      .contains("duplicate"));
  }
}
