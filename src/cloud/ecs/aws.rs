//! ECS services.

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use aws_config::{Region, SdkConfig};

use crate::cloud::aws::{
  config::RegionalClients,
  errors::{absent_if_not_found, cloud_error},
};
use crate::cloud::ops;
use crate::cloud::{CloudError, CloudResult, Ecs, EcsDeployment, EcsService, ErrorKind};

pub(crate) struct AwsEcs {
  clients: RegionalClients<aws_sdk_ecs::Client>,
}

impl AwsEcs {
  pub(crate) fn new(sdk: &SdkConfig) -> Self {
    Self {
      clients: RegionalClients::new(sdk.clone(), |sdk, region| {
        let config = aws_sdk_ecs::config::Builder::from(sdk)
          .region(Region::new(region.to_owned()))
          .build();
        aws_sdk_ecs::Client::from_conf(config)
      }),
    }
  }
}

/// ECS counts are `i32` on the wire and never negative.
fn count(value: i32) -> u32 {
  u32::try_from(value).unwrap_or(0)
}

fn to_service(region: &str, cluster: &str, service: &aws_sdk_ecs::types::Service) -> EcsService {
  EcsService {
    region: region.to_owned(),
    cluster: cluster.to_owned(),
    name: service.service_name().unwrap_or_default().to_owned(),
    status: service.status().unwrap_or_default().to_owned(),
    desired_count: count(service.desired_count()),
    running_count: count(service.running_count()),
    pending_count: count(service.pending_count()),
    deployments: service
      .deployments()
      .iter()
      .map(|deployment| EcsDeployment {
        id: deployment.id().unwrap_or_default().to_owned(),
        status: deployment.status().unwrap_or_default().to_owned(),
        desired_count: count(deployment.desired_count()),
        running_count: count(deployment.running_count()),
        pending_count: count(deployment.pending_count()),
        rollout_state: deployment
          .rollout_state()
          .map(|state| state.as_str().to_owned()),
      })
      .collect(),
  }
}

#[async_trait::async_trait]
impl Ecs for AwsEcs {
  async fn describe_service(
    &self,
    region: &str,
    cluster: &str,
    service: &str,
  ) -> CloudResult<Option<EcsService>> {
    let result = self
      .clients
      .get(region)
      .describe_services()
      .cluster(cluster)
      .services(service)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::ecs::DESCRIBE_SERVICES,
          self.clients.sdk(),
          region,
          error,
        )
      });
    // A missing cluster is `ClusterNotFoundException`; a missing service in a cluster comes
    // back as a `failures` entry with reason `MISSING`, and a deleted one as `INACTIVE`.
    let Some(output) = absent_if_not_found(result)? else {
      return Ok(None);
    };
    Ok(
      output
        .services()
        .iter()
        .find(|found| found.status() != Some("INACTIVE"))
        .map(|found| to_service(region, cluster, found)),
    )
  }

  async fn update_desired_count(
    &self,
    region: &str,
    cluster: &str,
    service: &str,
    desired_count: u32,
  ) -> CloudResult<()> {
    let desired = i32::try_from(desired_count).map_err(|_| {
      CloudError::new(
        ErrorKind::Client,
        ops::ecs::UPDATE_SERVICE.service,
        ops::ecs::UPDATE_SERVICE.name,
        format!("desired count {desired_count} is out of range"),
      )
    })?;
    self
      .clients
      .get(region)
      .update_service()
      .cluster(cluster)
      .service(service)
      .desired_count(desired)
      .send()
      .await
      .map_err(|error| cloud_error(&ops::ecs::UPDATE_SERVICE, self.clients.sdk(), region, error))?;
    Ok(())
  }
}

/// The family's provider over the shared per-region SDK configuration.
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn super::Ecs> {
  std::sync::Arc::new(AwsEcs::new(sdk))
}
