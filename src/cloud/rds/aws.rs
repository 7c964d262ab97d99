//! RDS (instances, snapshots, Aurora global databases) and the CloudWatch `ReplicaLag` metric.

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use std::{collections::BTreeMap, time::SystemTime};

use aws_config::{Region, SdkConfig};
use aws_sdk_rds::types::Tag;

use crate::cloud::aws::{
  cloudwatch,
  config::{default_region, RegionalClients},
  errors::{absent_if_not_found, cloud_error},
  to_chrono,
};
use crate::cloud::ops;
use crate::cloud::{
  CloudResult, DbInstance, DbSnapshot, ErrorKind, GlobalCluster, GlobalClusterMember,
  GlobalFailover, LagDatapoint, Rds, ReplicaLag, RestoreRequest, SnapshotKind,
};

pub(crate) struct AwsRds {
  rds: RegionalClients<aws_sdk_rds::Client>,
  cloudwatch: RegionalClients<aws_sdk_cloudwatch::Client>,
}

impl AwsRds {
  pub(crate) fn new(sdk: &SdkConfig) -> Self {
    Self {
      rds: RegionalClients::new(sdk.clone(), |sdk, region| {
        let config = aws_sdk_rds::config::Builder::from(sdk)
          .region(Region::new(region.to_owned()))
          .build();
        aws_sdk_rds::Client::from_conf(config)
      }),
      cloudwatch: RegionalClients::new(sdk.clone(), cloudwatch::client),
    }
  }

  /// One-minute maxima of an `AWS/RDS` lag metric over the last
  /// [`LAG_LOOKBACK`](crate::cloud::LAG_LOOKBACK), in seconds
  /// as CloudWatch holds them (negative values kept: they mean replication is not running).
  async fn lag_datapoints(
    &self,
    region: &str,
    metric: &str,
    dimension: &str,
    id: &str,
    now: SystemTime,
  ) -> CloudResult<Vec<LagDatapoint>> {
    let metric = cloudwatch::Metric {
      namespace: "AWS/RDS",
      name: metric,
      dimensions: &[(dimension, id)],
    };
    cloudwatch::lag_datapoints(&self.cloudwatch, region, &metric, now).await
  }

  /// Global clusters are visible from every region; ask the configured one.
  fn global_region(&self) -> String {
    default_region(self.rds.sdk())
  }
}

fn to_instance(region: &str, instance: &aws_sdk_rds::types::DbInstance) -> DbInstance {
  let endpoint = instance.endpoint();
  DbInstance {
    id: instance
      .db_instance_identifier()
      .unwrap_or_default()
      .to_owned(),
    region: region.to_owned(),
    status: instance.db_instance_status().unwrap_or_default().to_owned(),
    engine: instance.engine().unwrap_or_default().to_owned(),
    instance_class: instance.db_instance_class().unwrap_or_default().to_owned(),
    endpoint: endpoint
      .and_then(|endpoint| endpoint.address())
      .map(str::to_owned),
    port: endpoint
      .and_then(|endpoint| endpoint.port())
      .and_then(|port| u16::try_from(port).ok()),
    replica_of: instance
      .read_replica_source_db_instance_identifier()
      .filter(|source| !source.is_empty())
      .map(str::to_owned),
  }
}

#[async_trait::async_trait]
impl Rds for AwsRds {
  async fn describe_instance(&self, region: &str, id: &str) -> CloudResult<Option<DbInstance>> {
    let instance = self.sdk_instance(region, id).await?;
    Ok(instance.map(|db| to_instance(region, &db)))
  }

  async fn replica_lag(&self, region: &str, id: &str) -> CloudResult<ReplicaLag> {
    let now = SystemTime::now();
    let points = self
      .lag_datapoints(region, "ReplicaLag", "DBInstanceIdentifier", id, now)
      .await?;
    Ok(ReplicaLag::from_datapoints(&points, now.into()))
  }

  async fn describe_snapshots(
    &self,
    region: &str,
    instance_id: &str,
  ) -> CloudResult<Vec<DbSnapshot>> {
    let pages = self
      .rds
      .get(region)
      .describe_db_snapshots()
      .db_instance_identifier(instance_id)
      .into_paginator()
      .items()
      .send()
      .collect::<Result<Vec<_>, _>>()
      .await;
    let snapshots = match pages {
      Ok(snapshots) => snapshots,
      Err(error) => {
        let error = cloud_error(
          &ops::rds::DESCRIBE_DB_SNAPSHOTS,
          self.rds.sdk(),
          region,
          error,
        );
        // AWS answers an unknown instance with an empty list; keep that meaning if a
        // compatible endpoint answers DBInstanceNotFound instead.
        if error.kind == ErrorKind::NotFound {
          return Ok(Vec::new());
        }
        return Err(error);
      }
    };
    Ok(
      snapshots
        .iter()
        .filter_map(|snapshot| {
          // A snapshot still `creating` has no create time yet and cannot be restored.
          let created_at = to_chrono(snapshot.snapshot_create_time()?)?;
          Some(DbSnapshot {
            id: snapshot.db_snapshot_identifier()?.to_owned(),
            instance_id: snapshot
              .db_instance_identifier()
              .unwrap_or(instance_id)
              .to_owned(),
            region: region.to_owned(),
            status: snapshot.status().unwrap_or_default().to_owned(),
            kind: match snapshot.snapshot_type() {
              Some("automated") => SnapshotKind::Automated,
              _ => SnapshotKind::Manual,
            },
            created_at,
          })
        })
        .collect(),
    )
  }

  async fn describe_global_cluster(&self, id: &str) -> CloudResult<Option<GlobalCluster>> {
    let result = self
      .rds
      .get(&self.global_region())
      .describe_global_clusters()
      .global_cluster_identifier(id)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::DESCRIBE_GLOBAL_CLUSTERS,
          self.rds.sdk(),
          &self.global_region(),
          error,
        )
      });
    let Some(output) = absent_if_not_found(result)? else {
      return Ok(None);
    };
    // Filter here too: some compatible endpoints ignore the identifier and list them all.
    Ok(
      output
        .global_clusters()
        .iter()
        .find(|cluster| {
          cluster
            .global_cluster_identifier()
            .is_some_and(|cluster_id| cluster_id.eq_ignore_ascii_case(id))
        })
        .map(|cluster| GlobalCluster {
          id: id.to_owned(),
          status: cluster.status().unwrap_or_default().to_owned(),
          members: cluster
            .global_cluster_members()
            .iter()
            .map(|member| GlobalClusterMember {
              cluster_arn: member.db_cluster_arn().unwrap_or_default().to_owned(),
              is_writer: member.is_writer().unwrap_or(false),
            })
            .collect(),
        }),
    )
  }

  async fn promote_read_replica(&self, region: &str, id: &str) -> CloudResult<()> {
    self
      .rds
      .get(region)
      .promote_read_replica()
      .db_instance_identifier(id)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::PROMOTE_READ_REPLICA,
          self.rds.sdk(),
          region,
          error,
        )
      })?;
    Ok(())
  }

  async fn restore_from_snapshot(&self, request: &RestoreRequest) -> CloudResult<()> {
    let tags = request
      .tags
      .iter()
      .map(|(key, value)| Tag::builder().key(key).value(value).build())
      .collect::<Vec<_>>();
    self
      .rds
      .get(&request.region)
      .restore_db_instance_from_db_snapshot()
      .db_instance_identifier(&request.instance_id)
      .db_snapshot_identifier(&request.snapshot_id)
      .set_db_instance_class(request.instance_class.clone())
      .set_tags((!tags.is_empty()).then_some(tags))
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT,
          self.rds.sdk(),
          &request.region,
          error,
        )
      })?;
    Ok(())
  }

  async fn delete_instance(&self, region: &str, id: &str) -> CloudResult<()> {
    self
      .rds
      .get(region)
      .delete_db_instance()
      .db_instance_identifier(id)
      .skip_final_snapshot(true)
      .delete_automated_backups(true)
      .send()
      .await
      .map_err(|error| cloud_error(&ops::rds::DELETE_DB_INSTANCE, self.rds.sdk(), region, error))?;
    Ok(())
  }

  async fn failover_global_cluster(
    &self,
    id: &str,
    target_cluster_arn: &str,
    mode: GlobalFailover,
  ) -> CloudResult<()> {
    // Fail over from the target's region: the old writer's region may be the one that is down.
    let region = crate::cloud::arn_region(target_cluster_arn)
      .map(str::to_owned)
      .unwrap_or_else(|| self.global_region());
    self
      .rds
      .get(&region)
      .failover_global_cluster()
      .global_cluster_identifier(id)
      .target_db_cluster_identifier(target_cluster_arn)
      // Only for a failover: AWS refuses `AllowDataLoss` together with `Switchover`, and a
      // request with neither is a switchover.
      .set_allow_data_loss((mode == GlobalFailover::AllowDataLoss).then_some(true))
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::FAILOVER_GLOBAL_CLUSTER,
          self.rds.sdk(),
          &region,
          error,
        )
      })?;
    Ok(())
  }

  async fn get_global_rpo_lag(&self, region: &str, cluster_id: &str) -> CloudResult<ReplicaLag> {
    let now = SystemTime::now();
    let points = self
      .lag_datapoints(
        region,
        "AuroraGlobalDBRPOLag",
        "DBClusterIdentifier",
        cluster_id,
        now,
      )
      .await?
      .into_iter()
      // The metric is in milliseconds; a negative value keeps its sign.
      .map(|point| LagDatapoint {
        seconds: point.seconds / 1000.0,
        ..point
      })
      .collect::<Vec<_>>();
    Ok(ReplicaLag::from_datapoints(&points, now.into()))
  }

  async fn create_read_replica(&self, request: &crate::cloud::ReplicaRequest) -> CloudResult<()> {
    // Across regions `SourceDBInstanceIdentifier` must be the source's ARN (RDS API Reference,
    // *CreateDBInstanceReadReplica*), read here from the source region so that the partition and
    // account are the source's own. `SourceRegion` is not a wire parameter: the AWS CLI and
    // boto turn it into `PreSignedUrl`, which RDS only reads in GovCloud and China regions (and
    // for encrypted sources, which then also need `KmsKeyId`); this SDK sends the ARN alone, as
    // the API asks in the commercial regions.
    let source = self
      .rds
      .get(&request.source_region)
      .describe_db_instances()
      .db_instance_identifier(&request.source_id)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::DESCRIBE_DB_INSTANCES,
          self.rds.sdk(),
          &request.source_region,
          error,
        )
      })?;
    let source_arn = source
      .db_instances()
      .first()
      .and_then(|db| db.db_instance_arn())
      .map(str::to_owned)
      .ok_or_else(|| {
        crate::cloud::CloudError::new(
          ErrorKind::NotFound,
          ops::rds::CREATE_DB_INSTANCE_READ_REPLICA.service,
          ops::rds::CREATE_DB_INSTANCE_READ_REPLICA.name,
          format!(
            "source DB instance {} has no ARN in {}",
            request.source_id, request.source_region
          ),
        )
      })?;
    let tags = request
      .tags
      .iter()
      .map(|(key, value)| Tag::builder().key(key).value(value).build())
      .collect::<Vec<_>>();
    self
      .rds
      .get(&request.region)
      .create_db_instance_read_replica()
      .db_instance_identifier(&request.instance_id)
      .source_db_instance_identifier(source_arn)
      .set_db_instance_class(request.instance_class.clone())
      .set_tags((!tags.is_empty()).then_some(tags))
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::CREATE_DB_INSTANCE_READ_REPLICA,
          self.rds.sdk(),
          &request.region,
          error,
        )
      })?;
    Ok(())
  }

  async fn list_instance_tags(
    &self,
    region: &str,
    id: &str,
  ) -> CloudResult<Option<BTreeMap<String, String>>> {
    let Some(arn) = self.instance_arn(region, id).await? else {
      return Ok(None);
    };
    let result = self
      .rds
      .get(region)
      .list_tags_for_resource()
      .resource_name(&arn)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::LIST_TAGS_FOR_RESOURCE,
          self.rds.sdk(),
          region,
          error,
        )
      });
    Ok(absent_if_not_found(result)?.map(|output| {
      output
        .tag_list()
        .iter()
        .filter_map(|tag| {
          Some((
            tag.key()?.to_owned(),
            tag.value().unwrap_or_default().to_owned(),
          ))
        })
        .collect()
    }))
  }

  async fn add_instance_tags(
    &self,
    region: &str,
    id: &str,
    tags: &BTreeMap<String, String>,
  ) -> CloudResult<()> {
    let arn = self.instance_arn(region, id).await?.ok_or_else(|| {
      crate::cloud::CloudError::new(
        ErrorKind::NotFound,
        ops::rds::ADD_TAGS_TO_RESOURCE.service,
        ops::rds::ADD_TAGS_TO_RESOURCE.name,
        format!("DB instance {id} not found"),
      )
      .with_code("DBInstanceNotFound")
    })?;
    let tags = tags
      .iter()
      .map(|(key, value)| Tag::builder().key(key).value(value).build())
      .collect::<Vec<_>>();
    self
      .rds
      .get(region)
      .add_tags_to_resource()
      .resource_name(&arn)
      .set_tags(Some(tags))
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::ADD_TAGS_TO_RESOURCE,
          self.rds.sdk(),
          region,
          error,
        )
      })?;
    Ok(())
  }
}

impl AwsRds {
  /// The instance's ARN, which the tagging API names it by (`DescribeDBInstances`);
  /// `Ok(None)` when it does not exist.
  async fn instance_arn(&self, region: &str, id: &str) -> CloudResult<Option<String>> {
    let instance = self.sdk_instance(region, id).await?;
    Ok(instance.and_then(|db| db.db_instance_arn().map(str::to_owned)))
  }

  /// `DescribeDBInstances` for one identifier, as the SDK gives it; `Ok(None)` when it does not
  /// exist.
  async fn sdk_instance(
    &self,
    region: &str,
    id: &str,
  ) -> CloudResult<Option<aws_sdk_rds::types::DbInstance>> {
    let result = self
      .rds
      .get(region)
      .describe_db_instances()
      .db_instance_identifier(id)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::rds::DESCRIBE_DB_INSTANCES,
          self.rds.sdk(),
          region,
          error,
        )
      });
    Ok(absent_if_not_found(result)?.and_then(|output| output.db_instances().first().cloned()))
  }
}

/// The family's provider over the shared per-region SDK configuration.
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn super::Rds> {
  std::sync::Arc::new(AwsRds::new(sdk))
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::cloud::CloudError;

  #[test]
  fn an_error_kind_is_kept() {
    let error = CloudError::new(
      ErrorKind::NotFound,
      ops::rds::DESCRIBE_DB_INSTANCES.service,
      ops::rds::DESCRIBE_DB_INSTANCES.name,
      "gone",
    );
    assert_eq!(absent_if_not_found::<()>(Err(error)), Ok(None));
  }
}
