//! RDS (and the CloudWatch lag metrics of its replicas): the provider trait, its domain types
//! and operations; the SDK adapter ([`aws`]) and the simulator model ([`sim`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult, ReplicaLag};

pub(crate) mod aws;
pub(crate) mod sim;

/// Amazon RDS. One rate-limit family for every operation, per account and region.
///
/// The family's part of the operation table ([`crate::cloud::ops`], where `FAMILIES` is
/// collected from every family's `ALL`).
pub mod ops {
  use crate::cloud::ops::{mutate, read, Op};

  const DB: &str = "arn:${Partition}:rds:${Region}:${Account}:db:${DbInstanceName}";
  const SNAPSHOT: &str = "arn:${Partition}:rds:${Region}:${Account}:snapshot:${SnapshotName}";
  const GLOBAL_CLUSTER: &str = "arn:${Partition}:rds::${Account}:global-cluster:${GlobalCluster}";
  const FAMILY: Option<&str> = Some("rds");

  pub const DESCRIBE_DB_INSTANCES: Op = read(
    "rds",
    "DescribeDBInstances",
    "rds:DescribeDBInstances",
    FAMILY,
    DB,
  );
  pub const DESCRIBE_DB_SNAPSHOTS: Op = read(
    "rds",
    "DescribeDBSnapshots",
    "rds:DescribeDBSnapshots",
    FAMILY,
    SNAPSHOT,
  );
  /// A global cluster has no home region: the call goes to the provider's default region.
  pub const DESCRIBE_GLOBAL_CLUSTERS: Op = read(
    "rds",
    "DescribeGlobalClusters",
    "rds:DescribeGlobalClusters",
    FAMILY,
    GLOBAL_CLUSTER,
  );
  pub const LIST_TAGS_FOR_RESOURCE: Op = read(
    "rds",
    "ListTagsForResource",
    "rds:ListTagsForResource",
    FAMILY,
    DB,
  );
  pub const PROMOTE_READ_REPLICA: Op = mutate(
    "rds",
    "PromoteReadReplica",
    "rds:PromoteReadReplica",
    FAMILY,
    DB,
  );
  pub const RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT: Op = mutate(
    "rds",
    "RestoreDBInstanceFromDBSnapshot",
    "rds:RestoreDBInstanceFromDBSnapshot",
    FAMILY,
    DB,
  );
  pub const DELETE_DB_INSTANCE: Op = mutate(
    "rds",
    "DeleteDBInstance",
    "rds:DeleteDBInstance",
    FAMILY,
    DB,
  );
  pub const FAILOVER_GLOBAL_CLUSTER: Op = mutate(
    "rds",
    "FailoverGlobalCluster",
    "rds:FailoverGlobalCluster",
    FAMILY,
    GLOBAL_CLUSTER,
  );
  pub const CREATE_DB_INSTANCE_READ_REPLICA: Op = mutate(
    "rds",
    "CreateDBInstanceReadReplica",
    "rds:CreateDBInstanceReadReplica",
    FAMILY,
    DB,
  );
  pub const ADD_TAGS_TO_RESOURCE: Op = mutate(
    "rds",
    "AddTagsToResource",
    "rds:AddTagsToResource",
    FAMILY,
    DB,
  );

  pub const ALL: &[&Op] = &[
    &DESCRIBE_DB_INSTANCES,
    &DESCRIBE_DB_SNAPSHOTS,
    &DESCRIBE_GLOBAL_CLUSTERS,
    &LIST_TAGS_FOR_RESOURCE,
    &PROMOTE_READ_REPLICA,
    &RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT,
    &DELETE_DB_INSTANCE,
    &FAILOVER_GLOBAL_CLUSTER,
    &CREATE_DB_INSTANCE_READ_REPLICA,
    &ADD_TAGS_TO_RESOURCE,
  ];
}

/// An RDS DB instance as drctl needs to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbInstance {
  pub id: String,
  pub region: String,
  /// `DBInstanceStatus`: `available`, `modifying`, `creating`, `backing-up`, `deleting`, ...
  pub status: String,
  pub engine: String,
  pub instance_class: String,
  /// Endpoint address, once the instance has one.
  pub endpoint: Option<String>,
  pub port: Option<u16>,
  /// `ReadReplicaSourceDBInstanceIdentifier`: set while this instance is a read replica.
  pub replica_of: Option<String>,
}

impl DbInstance {
  /// A standalone writable instance: available and no longer linked to a source.
  pub fn is_standalone_available(&self) -> bool {
    self.status == "available" && self.replica_of.is_none()
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
  Automated,
  Manual,
}

/// An RDS DB snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbSnapshot {
  pub id: String,
  pub instance_id: String,
  pub region: String,
  /// `available`, `creating`, ...
  pub status: String,
  pub kind: SnapshotKind,
  pub created_at: DateTime<Utc>,
}

/// Parameters for restoring a snapshot into a new instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreRequest {
  pub region: String,
  pub snapshot_id: String,
  pub instance_id: String,
  pub instance_class: Option<String>,
  /// Tags put on the new instance (drctl marks temporary instances with `drctl:run-id`).
  pub tags: BTreeMap<String, String>,
}

/// An Aurora global database and its member clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalCluster {
  pub id: String,
  /// `available`, `failing-over`, `switching-over`, ...
  pub status: String,
  pub members: Vec<GlobalClusterMember>,
}

impl GlobalCluster {
  /// The ARN of the member that is currently the writer.
  pub fn writer(&self) -> Option<&str> {
    self
      .members
      .iter()
      .find(|member| member.is_writer)
      .map(|member| member.cluster_arn.as_str())
  }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalClusterMember {
  pub cluster_arn: String,
  pub is_writer: bool,
}

/// How `FailoverGlobalCluster` changes the writer. Without `AllowDataLoss` the call is a
/// *switchover*, which AWS only performs while every member, the current writer's region
/// included, is healthy: it loses nothing. A *failover* (`AllowDataLoss=true`) is the answer to a
/// regional outage: it promotes the target without waiting for the writer, and loses what had
/// not replicated to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GlobalFailover {
  Switchover,
  AllowDataLoss,
}

/// Parameters for creating a (cross-region) read replica of an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaRequest {
  /// Where the replica is created.
  pub region: String,
  /// The replica's identifier.
  pub instance_id: String,
  /// The source instance's region (`SourceRegion`) and identifier; providers name the source by
  /// its ARN, as `CreateDBInstanceReadReplica` requires across regions.
  pub source_region: String,
  pub source_id: String,
  pub instance_class: Option<String>,
  /// Tags put on the new replica (drctl marks what it created with `drctl:run-id`).
  pub tags: BTreeMap<String, String>,
}

service_family! {
  /// RDS (and the CloudWatch `ReplicaLag` metric, which belongs with it for drctl's purposes).
  pub trait Rds, limited LimitedRds {
    /// `DescribeDBInstances` for one identifier; `Ok(None)` when it does not exist.
    [ops::DESCRIBE_DB_INSTANCES, Some(region), 1]
    async fn describe_instance(&self, region: &str, id: &str) -> CloudResult<Option<DbInstance>>;
    /// The replica's lag behind its source (CloudWatch `AWS/RDS ReplicaLag`, one-minute maxima
    /// over the last [`LAG_LOOKBACK`](super::LAG_LOOKBACK), classified by [`ReplicaLag::from_datapoints`]): a negative,
    /// stale or missing newest datapoint is `Unknown`, never zero.
    [crate::cloud::ops::cloudwatch::GET_METRIC_STATISTICS, Some(region), 1]
    async fn replica_lag(&self, region: &str, id: &str) -> CloudResult<ReplicaLag>;
    /// `DescribeDBSnapshots` for an instance (automated and manual).
    [ops::DESCRIBE_DB_SNAPSHOTS, Some(region), 1]
    async fn describe_snapshots(
      &self,
      region: &str,
      instance_id: &str,
    ) -> CloudResult<Vec<DbSnapshot>>;
    /// `DescribeGlobalClusters` for one identifier. A global cluster has no home region; its
    /// calls go to the provider's default region.
    [ops::DESCRIBE_GLOBAL_CLUSTERS, None, 1]
    async fn describe_global_cluster(&self, id: &str) -> CloudResult<Option<GlobalCluster>>;

    /// `PromoteReadReplica`. Mutating. Not idempotent at the API (a standalone instance is an
    /// `InvalidDBInstanceState`), so the action observes first.
    [ops::PROMOTE_READ_REPLICA, Some(region), 1]
    async fn promote_read_replica(&self, region: &str, id: &str) -> CloudResult<()>;
    /// `RestoreDBInstanceFromDBSnapshot`. Mutating; `DBInstanceAlreadyExists` on a repeat.
    [ops::RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT, Some(request.region.as_str()), 1]
    async fn restore_from_snapshot(&self, request: &RestoreRequest) -> CloudResult<()>;
    /// `DeleteDBInstance` (skipping the final snapshot). Mutating; `DBInstanceNotFound` once gone.
    [ops::DELETE_DB_INSTANCE, Some(region), 1]
    async fn delete_instance(&self, region: &str, id: &str) -> CloudResult<()>;
    /// `FailoverGlobalCluster` to the member cluster `target_cluster_arn`, as a switchover or, with
    /// [`GlobalFailover::AllowDataLoss`], as a failover (see there). Mutating.
    [ops::FAILOVER_GLOBAL_CLUSTER, None, 1]
    async fn failover_global_cluster(
      &self,
      id: &str,
      target_cluster_arn: &str,
      mode: GlobalFailover,
    ) -> CloudResult<()>;
    /// An Aurora global database secondary's RPO lag: CloudWatch `AWS/RDS`
    /// `AuroraGlobalDBRPOLag` (milliseconds) of the secondary cluster (`DBClusterIdentifier`),
    /// in its own region, classified like [`Rds::replica_lag`]. Read-only.
    [crate::cloud::ops::cloudwatch::GET_METRIC_STATISTICS, Some(region), 1]
    async fn get_global_rpo_lag(&self, region: &str, cluster_id: &str) -> CloudResult<ReplicaLag>;
    /// `CreateDBInstanceReadReplica` of `request.source_id` (in `request.source_region`) into
    /// `request.region`. Mutating; `DBInstanceAlreadyExists` on a repeat, so the action observes
    /// first. The replica is `creating` until it is `available`, then catches up on its source.
    [ops::CREATE_DB_INSTANCE_READ_REPLICA, Some(request.region.as_str()), 1]
    async fn create_read_replica(&self, request: &ReplicaRequest) -> CloudResult<()>;
    /// `ListTagsForResource` of an instance (found by `DescribeDBInstances`): its tags.
    /// `Ok(None)` when the instance does not exist. Two requests: `DescribeDBInstances` for the
    /// ARN, then `ListTagsForResource`.
    [ops::LIST_TAGS_FOR_RESOURCE, Some(region), 2]
    async fn list_instance_tags(
      &self,
      region: &str,
      id: &str,
    ) -> CloudResult<Option<BTreeMap<String, String>>>;
    /// `AddTagsToResource` on an instance. Mutating, idempotent: a tag set again to the value it
    /// has changes nothing (another value replaces it); other tags are left alone. Two requests
    /// (the instance's ARN first).
    [ops::ADD_TAGS_TO_RESOURCE, Some(region), 2]
    async fn add_instance_tags(
      &self,
      region: &str,
      id: &str,
      tags: &BTreeMap<String, String>,
    ) -> CloudResult<()>;
  }
}
