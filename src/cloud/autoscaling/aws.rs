//! EC2 Auto Scaling over the SDK (awsQuery, API version 2011-01-01).

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use aws_config::{Region, SdkConfig};

use super::{AutoScaling, AutoScalingGroup, GroupInstance};
use crate::cloud::{
  aws::{config::RegionalClients, errors::cloud_error},
  CloudResult,
};

pub(crate) struct AwsAutoScaling {
  clients: RegionalClients<aws_sdk_autoscaling::Client>,
}

/// The family's provider over the shared SDK configuration.
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn AutoScaling> {
  std::sync::Arc::new(AwsAutoScaling {
    clients: RegionalClients::new(sdk.clone(), |sdk, region| {
      let config = aws_sdk_autoscaling::config::Builder::from(sdk)
        .region(Region::new(region.to_owned()))
        .build();
      aws_sdk_autoscaling::Client::from_conf(config)
    }),
  })
}

fn count(value: Option<i32>) -> u32 {
  value.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn to_group(group: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Option<AutoScalingGroup> {
  Some(AutoScalingGroup {
    name: group.auto_scaling_group_name()?.to_owned(),
    min_size: count(group.min_size()),
    max_size: count(group.max_size()),
    desired_capacity: count(group.desired_capacity()),
    instances: group
      .instances()
      .iter()
      .map(|instance| GroupInstance {
        id: instance.instance_id().unwrap_or_default().to_owned(),
        lifecycle_state: instance
          .lifecycle_state()
          .map(|state| state.as_str().to_owned())
          .unwrap_or_default(),
        health: instance.health_status().unwrap_or_default().to_owned(),
      })
      .collect(),
  })
}

fn signed(value: u32) -> i32 {
  i32::try_from(value).unwrap_or(i32::MAX)
}

#[async_trait::async_trait]
impl AutoScaling for AwsAutoScaling {
  async fn describe_group(
    &self,
    region: &str,
    name: &str,
  ) -> CloudResult<Option<AutoScalingGroup>> {
    let output = self
      .clients
      .get(region)
      .describe_auto_scaling_groups()
      .auto_scaling_group_names(name)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &super::ops::DESCRIBE_AUTO_SCALING_GROUPS,
          self.clients.sdk(),
          region,
          error,
        )
      })?;
    Ok(
      output
        .auto_scaling_groups()
        .iter()
        .filter(|group| group.auto_scaling_group_name() == Some(name))
        .find_map(to_group),
    )
  }

  async fn set_capacity(
    &self,
    region: &str,
    name: &str,
    desired: u32,
    min_size: Option<u32>,
  ) -> CloudResult<()> {
    self
      .clients
      .get(region)
      .update_auto_scaling_group()
      .auto_scaling_group_name(name)
      .desired_capacity(signed(desired))
      .set_min_size(min_size.map(signed))
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &super::ops::UPDATE_AUTO_SCALING_GROUP,
          self.clients.sdk(),
          region,
          error,
        )
      })?;
    Ok(())
  }
}
