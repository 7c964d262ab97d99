//! Elastic Load Balancing v2 over the SDK (awsQuery, API version 2015-12-01).

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use aws_config::{Region, SdkConfig};

use super::{Elbv2, TargetGroup, TargetHealth, TargetState};
use crate::cloud::{
  aws::{
    config::RegionalClients,
    errors::{absent_if_not_found, cloud_error},
  },
  CloudResult,
};

pub(crate) struct AwsElbv2 {
  clients: RegionalClients<aws_sdk_elasticloadbalancingv2::Client>,
}

impl AwsElbv2 {
  pub(crate) fn new(sdk: &SdkConfig) -> Self {
    Self {
      clients: RegionalClients::new(sdk.clone(), |sdk, region| {
        let config = aws_sdk_elasticloadbalancingv2::config::Builder::from(sdk)
          .region(Region::new(region.to_owned()))
          .build();
        aws_sdk_elasticloadbalancingv2::Client::from_conf(config)
      }),
    }
  }
}

fn to_target(
  description: &aws_sdk_elasticloadbalancingv2::types::TargetHealthDescription,
) -> TargetHealth {
  let target = description.target();
  let health = description.target_health();
  TargetHealth {
    id: target
      .and_then(|target| target.id())
      .unwrap_or_default()
      .to_owned(),
    port: target
      .and_then(|target| target.port())
      .and_then(|port| u16::try_from(port).ok()),
    state: health
      .and_then(|health| health.state())
      .map_or(TargetState::Unknown, |state| {
        TargetState::from_api(state.as_str())
      }),
    reason: health
      .and_then(|health| health.reason())
      .map(|reason| reason.as_str().to_owned()),
    description: health
      .and_then(|health| health.description())
      .map(str::to_owned),
  }
}

/// The family's provider over the shared SDK configuration.
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn Elbv2> {
  std::sync::Arc::new(AwsElbv2::new(sdk))
}

#[async_trait::async_trait]
impl Elbv2 for AwsElbv2 {
  async fn find_target_group(&self, region: &str, name: &str) -> CloudResult<Option<TargetGroup>> {
    let result = self
      .clients
      .get(region)
      .describe_target_groups()
      .names(name)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &super::ops::DESCRIBE_TARGET_GROUPS,
          self.clients.sdk(),
          region,
          error,
        )
      });
    // A name that matches no group is `TargetGroupNotFound`.
    let Some(output) = absent_if_not_found(result)? else {
      return Ok(None);
    };
    Ok(output.target_groups().iter().find_map(|group| {
      Some(TargetGroup {
        arn: group.target_group_arn()?.to_owned(),
        name: group.target_group_name().unwrap_or(name).to_owned(),
      })
    }))
  }

  async fn describe_target_health(
    &self,
    region: &str,
    target_group_arn: &str,
  ) -> CloudResult<Option<Vec<TargetHealth>>> {
    let result = self
      .clients
      .get(region)
      .describe_target_health()
      .target_group_arn(target_group_arn)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &super::ops::DESCRIBE_TARGET_HEALTH,
          self.clients.sdk(),
          region,
          error,
        )
      });
    let Some(output) = absent_if_not_found(result)? else {
      return Ok(None);
    };
    Ok(Some(
      output
        .target_health_descriptions()
        .iter()
        .map(to_target)
        .collect(),
    ))
  }
}
