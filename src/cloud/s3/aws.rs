//! S3 reads for actions: listings and object metadata.

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use aws_config::{Region, SdkConfig};
use aws_sdk_s3::types::ChecksumMode;

use crate::cloud::aws::{
  cloudwatch,
  config::{s3_custom_endpoint, RegionalClients},
  errors::{absent_if_not_found, cloud_error},
  to_chrono,
};
use crate::cloud::ops;
use crate::cloud::{CloudResult, ReplicaLag, S3Object, S3ReplicationRule, S3};

/// Build an S3 client for `region`, with path-style addressing on a custom endpoint.
pub(crate) fn client(sdk: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
  let config = aws_sdk_s3::config::Builder::from(sdk)
    .region(Region::new(region.to_owned()))
    .force_path_style(s3_custom_endpoint(sdk))
    .build();
  aws_sdk_s3::Client::from_conf(config)
}

pub(crate) struct AwsS3 {
  clients: RegionalClients<aws_sdk_s3::Client>,
  cloudwatch: RegionalClients<aws_sdk_cloudwatch::Client>,
}

impl AwsS3 {
  pub(crate) fn new(sdk: &SdkConfig) -> Self {
    Self {
      clients: RegionalClients::new(sdk.clone(), client),
      cloudwatch: RegionalClients::new(sdk.clone(), cloudwatch::client),
    }
  }
}

/// S3 sizes are `i64` on the wire and never negative.
fn size(value: Option<i64>) -> u64 {
  value.and_then(|size| u64::try_from(size).ok()).unwrap_or(0)
}

#[async_trait::async_trait]
impl S3 for AwsS3 {
  async fn list_objects(
    &self,
    region: &str,
    bucket: &str,
    prefix: &str,
  ) -> CloudResult<Vec<S3Object>> {
    let pages = self
      .clients
      .get(region)
      .list_objects_v2()
      .bucket(bucket)
      .prefix(prefix)
      .into_paginator()
      .send()
      .collect::<Result<Vec<_>, _>>()
      .await
      .map_err(|error| cloud_error(&ops::s3::LIST_OBJECTS_V2, self.clients.sdk(), region, error))?;
    Ok(
      pages
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|object| {
          Some(S3Object {
            bucket: bucket.to_owned(),
            key: object.key()?.to_owned(),
            size: size(object.size()),
            last_modified: to_chrono(object.last_modified()?)?,
            etag: object.e_tag().map(str::to_owned),
            // A listing carries neither; `head_object` has them.
            checksum_sha256: None,
            replication_status: None,
          })
        })
        .collect(),
    )
  }

  async fn head_object(
    &self,
    region: &str,
    bucket: &str,
    key: &str,
  ) -> CloudResult<Option<S3Object>> {
    let result = self
      .clients
      .get(region)
      .head_object()
      .bucket(bucket)
      .key(key)
      .checksum_mode(ChecksumMode::Enabled)
      .send()
      .await
      .map_err(|error| cloud_error(&ops::s3::HEAD_OBJECT, self.clients.sdk(), region, error));
    Ok(absent_if_not_found(result)?.map(|head| {
      S3Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: size(head.content_length()),
        last_modified: head.last_modified().and_then(to_chrono).unwrap_or_default(),
        etag: head.e_tag().map(str::to_owned),
        checksum_sha256: head.checksum_sha256().map(str::to_owned),
        replication_status: head
          .replication_status()
          .map(|status| status.as_str().to_owned()),
      }
    }))
  }

  async fn get_replication_latency(
    &self,
    region: &str,
    rule: &S3ReplicationRule,
  ) -> CloudResult<ReplicaLag> {
    let now = std::time::SystemTime::now();
    // S3 publishes a rule's replication metrics in the destination bucket's region.
    let metric = cloudwatch::Metric {
      namespace: "AWS/S3",
      name: "ReplicationLatency",
      dimensions: &[
        ("SourceBucket", &rule.source_bucket),
        ("DestinationBucket", &rule.destination_bucket),
        ("RuleId", &rule.rule_id),
      ],
    };
    let points = cloudwatch::lag_datapoints(&self.cloudwatch, region, &metric, now).await?;
    Ok(ReplicaLag::from_datapoints(&points, now.into()))
  }
}

/// The family's provider over the shared per-region SDK configuration.
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn super::S3> {
  std::sync::Arc::new(AwsS3::new(sdk))
}
