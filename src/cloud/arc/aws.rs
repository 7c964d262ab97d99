//! The ARC recovery cluster's data plane over the SDK (awsJson1_0,
//! `X-Amz-Target: ToggleCustomerAPI.<Operation>`, signed as `route53-recovery-cluster`).
//!
//! There is no one endpoint per region to derive: each call goes to the cluster endpoint it is
//! handed (its URL and its region, which the request is signed for), so there is one client
//! per endpoint URL.

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use std::{
  collections::HashMap,
  sync::{Mutex, PoisonError},
};

use aws_config::{Region, SdkConfig};
use aws_sdk_route53recoverycluster::types::RoutingControlState;

use super::{ClusterEndpoint, ControlState, RecoveryCluster};
use crate::cloud::{aws::errors::cloud_error_at, CloudResult};

pub(crate) struct AwsRecoveryCluster {
  sdk: SdkConfig,
  /// One client per endpoint URL.
  clients: Mutex<HashMap<String, aws_sdk_route53recoverycluster::Client>>,
}

impl AwsRecoveryCluster {
  fn client(&self, endpoint: &ClusterEndpoint) -> aws_sdk_route53recoverycluster::Client {
    // An insert either happened or not: a poisoned lock leaves the map whole.
    let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
    clients
      .entry(endpoint.url.clone())
      .or_insert_with(|| {
        let config = aws_sdk_route53recoverycluster::config::Builder::from(&self.sdk)
          .region(Region::new(endpoint.region.clone()))
          .endpoint_url(endpoint.url.clone())
          .build();
        aws_sdk_route53recoverycluster::Client::from_conf(config)
      })
      .clone()
  }
}

/// The endpoint's host and port, for an unanswered call's message.
fn host(endpoint: &ClusterEndpoint) -> String {
  url::Url::parse(&endpoint.url)
    .ok()
    .and_then(|url| {
      let host = url.host_str()?.to_owned();
      Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
      })
    })
    .unwrap_or_else(|| endpoint.url.clone())
}

/// The family's provider over the shared SDK configuration (credentials, timeouts, retries).
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn RecoveryCluster> {
  std::sync::Arc::new(AwsRecoveryCluster {
    sdk: sdk.clone(),
    clients: Mutex::new(HashMap::new()),
  })
}

#[async_trait::async_trait]
impl RecoveryCluster for AwsRecoveryCluster {
  async fn get_routing_control_state(
    &self,
    endpoint: &ClusterEndpoint,
    routing_control_arn: &str,
  ) -> CloudResult<ControlState> {
    let op = &super::ops::GET_ROUTING_CONTROL_STATE;
    let output = self
      .client(endpoint)
      .get_routing_control_state()
      .routing_control_arn(routing_control_arn)
      .send()
      .await
      .map_err(|error| cloud_error_at(op, &host(endpoint), &endpoint.region, error))?;
    let state = output.routing_control_state().as_str();
    ControlState::parse(state).ok_or_else(|| {
      crate::cloud::CloudError::new(
        crate::cloud::ErrorKind::Client,
        op.service,
        op.name,
        format!(
          "routing control {routing_control_arn} is in a state drctl does not know: `{state}`"
        ),
      )
    })
  }

  async fn update_routing_control_state(
    &self,
    endpoint: &ClusterEndpoint,
    routing_control_arn: &str,
    state: ControlState,
  ) -> CloudResult<()> {
    let op = &super::ops::UPDATE_ROUTING_CONTROL_STATE;
    let wanted = match state {
      ControlState::On => RoutingControlState::On,
      ControlState::Off => RoutingControlState::Off,
    };
    self
      .client(endpoint)
      .update_routing_control_state()
      .routing_control_arn(routing_control_arn)
      .routing_control_state(wanted)
      .send()
      .await
      .map_err(|error| cloud_error_at(op, &host(endpoint), &endpoint.region, error))?;
    Ok(())
  }
}
