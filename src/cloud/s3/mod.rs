//! S3 (the actions' reads): the provider trait, its domain types and operations; the SDK
//! adapter ([`aws`]) and the simulator model ([`sim`]). The S3 state store is
//! [`crate::cloud::aws::state_store`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult, ReplicaLag};

pub(crate) mod aws;
pub(crate) mod sim;

/// Amazon S3: the actions' reads and the S3 state store's object calls. Not rate limited (its
/// limits are per prefix and thousands per second). Object calls are the data plane.
///
/// The family's part of the operation table ([`crate::cloud::ops`], where `FAMILIES` is
/// collected from every family's `ALL`).
pub mod ops {
  use crate::cloud::ops::{data, mutate, read, Op};

  const BUCKET: &str = "arn:${Partition}:s3:::${BucketName}";
  const OBJECT: &str = "arn:${Partition}:s3:::${BucketName}/${ObjectName}";

  /// Authorized by `s3:ListBucket` on the bucket.
  pub const LIST_OBJECTS_V2: Op = data(read("s3", "ListObjectsV2", "s3:ListBucket", None, BUCKET));
  /// Authorized by `s3:GetObject`, as a `GetObject` is.
  pub const HEAD_OBJECT: Op = data(read("s3", "HeadObject", "s3:GetObject", None, OBJECT));
  pub const GET_OBJECT: Op = data(read("s3", "GetObject", "s3:GetObject", None, OBJECT));
  pub const PUT_OBJECT: Op = data(mutate("s3", "PutObject", "s3:PutObject", None, OBJECT));
  pub const DELETE_OBJECT: Op = data(mutate(
    "s3",
    "DeleteObject",
    "s3:DeleteObject",
    None,
    OBJECT,
  ));

  pub const ALL: &[&Op] = &[
    &LIST_OBJECTS_V2,
    &HEAD_OBJECT,
    &GET_OBJECT,
    &PUT_OBJECT,
    &DELETE_OBJECT,
  ];
}

/// An S3 object's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Object {
  pub bucket: String,
  pub key: String,
  pub size: u64,
  pub last_modified: DateTime<Utc>,
  pub etag: Option<String>,
  /// Base64 SHA-256 checksum, when the object was uploaded with one.
  pub checksum_sha256: Option<String>,
  /// `COMPLETED`, `PENDING`, `FAILED`, `REPLICA`; absent when no replication rule applies.
  pub replication_status: Option<String>,
}

/// One S3 replication rule, as its metrics name it: the source and destination bucket names
/// and the rule's `ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3ReplicationRule {
  pub source_bucket: String,
  pub destination_bucket: String,
  pub rule_id: String,
}

service_family! {
  /// S3 (read-only for actions; the state backend has its own store). S3 has no rate-limit
  /// family, so the limiter lets its calls straight through; what it adds is the per-call
  /// retry of reads.
  pub trait S3, limited LimitedS3 {
    /// `ListObjectsV2` under a prefix (all pages).
    [ops::LIST_OBJECTS_V2, Some(region), 1]
    async fn list_objects(
      &self,
      region: &str,
      bucket: &str,
      prefix: &str,
    ) -> CloudResult<Vec<S3Object>>;
    /// `HeadObject` with checksum mode enabled; `Ok(None)` when missing.
    [ops::HEAD_OBJECT, Some(region), 1]
    async fn head_object(
      &self,
      region: &str,
      bucket: &str,
      key: &str,
    ) -> CloudResult<Option<S3Object>>;
    /// How far a replication rule's destination is behind its source: CloudWatch `AWS/S3`
    /// `ReplicationLatency` (seconds; S3 Replication metrics, on with S3 Replication Time
    /// Control), dimensions `SourceBucket`, `DestinationBucket` and `RuleId`, published in the
    /// **destination** bucket's region (`region`), one-minute maxima over [`LAG_LOOKBACK`](super::LAG_LOOKBACK),
    /// classified by [`ReplicaLag::from_datapoints`]: a rule without metrics, or whose source
    /// stopped publishing (its region failed), is `Unknown`, never zero. Read-only.
    [crate::cloud::ops::cloudwatch::GET_METRIC_STATISTICS, Some(region), 1]
    async fn get_replication_latency(
      &self,
      region: &str,
      rule: &S3ReplicationRule,
    ) -> CloudResult<ReplicaLag>;
  }
}
