//! Simulated RDS: instances and read replicas (promotion, restore, delete), snapshots, Aurora
//! global clusters, and the CloudWatch `ReplicaLag` metric.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{
  state::{detail_str, missing, Applied, Model, Reject},
  world::RdsSpec,
  Operation, SimCloud,
};
use crate::cloud::{
  CloudResult, DbInstance, DbSnapshot, GlobalCluster, GlobalClusterMember, Rds, RestoreRequest,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
  Steady,
  Promoting(DateTime<Utc>),
  Restoring(DateTime<Utc>),
  Deleting(DateTime<Utc>),
}

#[derive(Debug, Clone)]
struct Instance {
  id: String,
  region: String,
  engine: String,
  class: String,
  status: String,
  endpoint: Option<String>,
  port: Option<u16>,
  replica_of: Option<String>,
  lag: Option<Duration>,
  phase: Phase,
  tags: BTreeMap<String, String>,
}

impl Instance {
  /// Fold a finished transition into the steady state; `false` once the instance is gone.
  fn settle(&mut self, model: &Model, now: DateTime<Utc>) -> bool {
    match self.phase {
      Phase::Steady => true,
      Phase::Promoting(since) => {
        if model.done(since, now, model.timings.promote.0) {
          self.phase = Phase::Steady;
          self.status = "available".into();
          self.replica_of = None;
          self.lag = None;
        }
        true
      }
      Phase::Restoring(since) => {
        if model.done(since, now, model.timings.restore.0) {
          self.phase = Phase::Steady;
          self.status = "available".into();
        }
        true
      }
      Phase::Deleting(since) => !model.done(since, now, model.timings.delete.0),
    }
  }

  fn view(&self, model: &Model, now: DateTime<Utc>) -> Option<DbInstance> {
    let mut current = self.clone();
    if !current.settle(model, now) {
      return None;
    }
    let mut endpoint = current.endpoint.clone();
    let status = match current.phase {
      Phase::Steady => current.status.clone(),
      Phase::Promoting(_) => "modifying".into(),
      Phase::Restoring(since) => {
        if model.elapsed(since, now) < model.timings.restore.0.mul_f64(0.75) {
          endpoint = None;
          "creating".into()
        } else {
          "backing-up".into()
        }
      }
      Phase::Deleting(_) => "deleting".into(),
    };
    Some(DbInstance {
      id: current.id,
      region: current.region,
      status,
      engine: current.engine,
      instance_class: current.class,
      endpoint,
      port: current.port,
      replica_of: current.replica_of,
    })
  }

  fn lag(&self, model: &Model, now: DateTime<Utc>) -> Option<Duration> {
    let mut current = self.clone();
    if !current.settle(model, now) || current.replica_of.is_none() {
      return None;
    }
    current.lag
  }
}

#[derive(Debug, Clone)]
struct Global {
  id: String,
  members: Vec<GlobalClusterMember>,
  /// Since when, and to which member cluster ARN.
  failing_over: Option<(DateTime<Utc>, String)>,
}

impl Global {
  fn settle(&mut self, model: &Model, now: DateTime<Utc>) {
    if let Some((since, target)) = &self.failing_over {
      if model.done(*since, now, model.timings.global_failover.0) {
        for member in &mut self.members {
          member.is_writer = member.cluster_arn == *target;
        }
        self.failing_over = None;
      }
    }
  }

  fn view(&self, model: &Model, now: DateTime<Utc>) -> GlobalCluster {
    let mut current = self.clone();
    current.settle(model, now);
    GlobalCluster {
      id: current.id,
      status: if current.failing_over.is_some() {
        "failing-over".into()
      } else {
        "available".into()
      },
      members: current.members,
    }
  }
}

#[derive(Debug, Clone)]
pub(crate) struct RdsState {
  instances: BTreeMap<(String, String), Instance>,
  snapshots: Vec<DbSnapshot>,
  globals: BTreeMap<String, Global>,
}

fn instance_not_found(id: &str) -> Reject {
  Reject::not_found("DBInstanceNotFound", format!("DBInstance {id} not found."))
}

/// RDS identifiers: 1–63 letters, digits or hyphens, starting with a letter, no `--`, no
/// trailing hyphen.
fn valid_instance_id(id: &str) -> bool {
  let starts_with_letter = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
  starts_with_letter
    && id.len() <= 63
    && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    && !id.contains("--")
    && !id.ends_with('-')
}

impl RdsState {
  pub fn new(spec: &RdsSpec, model: &Model) -> RdsState {
    let instances = spec
      .instances
      .iter()
      .map(|instance| {
        let key = (instance.region.clone(), instance.id.clone());
        let replica = instance.replica_of.is_some();
        let value = Instance {
          id: instance.id.clone(),
          region: instance.region.clone(),
          engine: instance.engine.clone(),
          class: instance.class.clone(),
          status: instance.status.clone(),
          endpoint: instance.endpoint.clone(),
          port: instance.port,
          replica_of: instance.replica_of.clone(),
          lag: if replica {
            Some(instance.replica_lag.map_or(Duration::ZERO, |lag| lag.0))
          } else {
            None
          },
          phase: Phase::Steady,
          tags: BTreeMap::new(),
        };
        (key, value)
      })
      .collect();
    let snapshots = spec
      .snapshots
      .iter()
      .map(|snapshot| DbSnapshot {
        id: snapshot.id.clone(),
        instance_id: snapshot.instance.clone(),
        region: snapshot.region.clone(),
        status: "available".into(),
        kind: snapshot.kind,
        created_at: model.before_creation(snapshot.age.0),
      })
      .collect();
    let globals = spec
      .global_clusters
      .iter()
      .map(|cluster| {
        let global = Global {
          id: cluster.id.clone(),
          members: cluster
            .members
            .iter()
            .map(|member| GlobalClusterMember {
              cluster_arn: member.cluster_arn.clone(),
              is_writer: member.writer,
            })
            .collect(),
          failing_over: None,
        };
        (cluster.id.clone(), global)
      })
      .collect();
    RdsState {
      instances,
      snapshots,
      globals,
    }
  }

  fn settle(&mut self, model: &Model, now: DateTime<Utc>) {
    self
      .instances
      .retain(|_, instance| instance.settle(model, now));
    for global in self.globals.values_mut() {
      global.settle(model, now);
    }
  }

  pub fn describe(
    &self,
    model: &Model,
    now: DateTime<Utc>,
    region: &str,
    id: &str,
  ) -> Option<DbInstance> {
    self
      .instances
      .get(&(region.to_string(), id.to_string()))
      .and_then(|instance| instance.view(model, now))
  }

  pub fn apply(&mut self, op: &Operation, model: &Model) -> Applied {
    let now = op.at;
    self.settle(model, now);
    match op.operation.as_str() {
      "PromoteReadReplica" => {
        let region = op.region.as_deref().ok_or_else(|| missing(op, "region"))?;
        let key = (region.to_string(), op.target.clone());
        let instance = self
          .instances
          .get_mut(&key)
          .ok_or_else(|| instance_not_found(&op.target))?;
        if instance.replica_of.is_none() {
          return Err(Reject::invalid_state(
            "InvalidDBInstanceState",
            format!("DB Instance {} is not a read replica.", op.target),
          ));
        }
        if instance.phase != Phase::Steady || instance.status != "available" {
          return Err(Reject::invalid_state(
            "InvalidDBInstanceState",
            format!("DB Instance {} is not in available state.", op.target),
          ));
        }
        instance.phase = Phase::Promoting(now);
        Ok(())
      }
      "RestoreDBInstanceFromDBSnapshot" => {
        let request: RestoreRequest = serde_json::from_value(op.detail.clone())
          .map_err(|err| Reject::client("InvalidParameterValue", err.to_string()))?;
        if !valid_instance_id(&request.instance_id) {
          return Err(Reject::client(
            "InvalidParameterValue",
            format!(
              "DBInstanceIdentifier `{}` is not a valid identifier.",
              request.instance_id
            ),
          ));
        }
        let key = (request.region.clone(), request.instance_id.clone());
        if self.instances.contains_key(&key) {
          return Err(Reject::client(
            "DBInstanceAlreadyExists",
            format!("DB instance already exists: {}", request.instance_id),
          ));
        }
        let snapshot = self
          .snapshots
          .iter()
          .find(|snapshot| snapshot.id == request.snapshot_id && snapshot.region == request.region)
          .ok_or_else(|| {
            Reject::not_found(
              "DBSnapshotNotFound",
              format!("DBSnapshot {} not found.", request.snapshot_id),
            )
          })?;
        let source = self
          .instances
          .get(&(snapshot.region.clone(), snapshot.instance_id.clone()));
        let instance = Instance {
          id: request.instance_id.clone(),
          region: request.region.clone(),
          engine: source.map_or_else(|| "postgres".into(), |source| source.engine.clone()),
          class: request
            .instance_class
            .clone()
            .or_else(|| source.map(|source| source.class.clone()))
            .unwrap_or_else(|| "db.r6g.large".into()),
          status: "available".into(),
          endpoint: Some(format!(
            "{}.csim01.{}.rds.amazonaws.com",
            request.instance_id, request.region
          )),
          port: Some(source.and_then(|source| source.port).unwrap_or(5432)),
          replica_of: None,
          lag: None,
          phase: Phase::Restoring(now),
          tags: request.tags.clone(),
        };
        self.instances.insert(key, instance);
        Ok(())
      }
      "DeleteDBInstance" => {
        let region = op.region.as_deref().ok_or_else(|| missing(op, "region"))?;
        let key = (region.to_string(), op.target.clone());
        let instance = self
          .instances
          .get_mut(&key)
          .ok_or_else(|| instance_not_found(&op.target))?;
        if matches!(instance.phase, Phase::Deleting(_)) {
          return Err(Reject::invalid_state(
            "InvalidDBInstanceState",
            format!("Instance {} is already being deleted.", op.target),
          ));
        }
        instance.phase = Phase::Deleting(now);
        Ok(())
      }
      "FailoverGlobalCluster" => {
        let target = detail_str(op, "target_cluster_arn")?.to_string();
        let global = self.globals.get_mut(&op.target).ok_or_else(|| {
          Reject::not_found(
            "GlobalClusterNotFoundFault",
            format!("Global cluster {} not found.", op.target),
          )
        })?;
        if global.failing_over.is_some() {
          return Err(Reject::invalid_state(
            "InvalidGlobalClusterStateFault",
            format!("Global cluster {} is already failing over.", op.target),
          ));
        }
        let member = global
          .members
          .iter()
          .find(|member| member.cluster_arn == target)
          .ok_or_else(|| {
            Reject::client(
              "InvalidParameterValue",
              format!("{target} is not a member of global cluster {}.", op.target),
            )
          })?;
        // Failing over to the current writer changes nothing (idempotent).
        if !member.is_writer {
          global.failing_over = Some((now, target));
        }
        Ok(())
      }
      "AddTagsToResource" => {
        let region = op.region.as_deref().ok_or_else(|| missing(op, "region"))?;
        let tags: BTreeMap<String, String> = op
          .detail
          .get("tags")
          .cloned()
          .map(serde_json::from_value)
          .ok_or_else(|| missing(op, "tags"))?
          .map_err(|err| Reject::client("InvalidParameterValue", err.to_string()))?;
        let instance = self
          .instances
          .get_mut(&(region.to_string(), op.target.clone()))
          .ok_or_else(|| instance_not_found(&op.target))?;
        instance.tags.extend(tags);
        Ok(())
      }
      other => Err(Reject::client(
        "InvalidAction",
        format!("rds has no operation {other}"),
      )),
    }
  }
}

#[async_trait::async_trait]
impl Rds for SimCloud {
  async fn describe_instance(&self, region: &str, id: &str) -> CloudResult<Option<DbInstance>> {
    self
      .sim
      .read("rds", "DescribeDBInstances", Some(region), |state, now| {
        Ok(state.rds.describe(&state.model, now, region, id))
      })
      .await
  }

  async fn replica_lag(&self, region: &str, id: &str) -> CloudResult<Option<Duration>> {
    self
      .sim
      .read(
        "cloudwatch",
        "GetMetricStatistics",
        Some(region),
        |state, now| {
          Ok(
            state
              .rds
              .instances
              .get(&(region.to_string(), id.to_string()))
              .and_then(|instance| instance.lag(&state.model, now)),
          )
        },
      )
      .await
  }

  async fn describe_snapshots(
    &self,
    region: &str,
    instance_id: &str,
  ) -> CloudResult<Vec<DbSnapshot>> {
    self
      .sim
      .read("rds", "DescribeDBSnapshots", Some(region), |state, _now| {
        Ok(
          state
            .rds
            .snapshots
            .iter()
            .filter(|snapshot| snapshot.region == region && snapshot.instance_id == instance_id)
            .cloned()
            .collect(),
        )
      })
      .await
  }

  async fn describe_global_cluster(&self, id: &str) -> CloudResult<Option<GlobalCluster>> {
    self
      .sim
      .read("rds", "DescribeGlobalClusters", None, |state, now| {
        Ok(
          state
            .rds
            .globals
            .get(id)
            .map(|global| global.view(&state.model, now)),
        )
      })
      .await
  }

  async fn promote_read_replica(&self, region: &str, id: &str) -> CloudResult<()> {
    self
      .sim
      .mutate("rds", "PromoteReadReplica", Some(region), id, json!({}))
      .await
      .map(drop)
  }

  async fn restore_from_snapshot(&self, request: &RestoreRequest) -> CloudResult<()> {
    let detail = serde_json::to_value(request).unwrap_or_default();
    self
      .sim
      .mutate(
        "rds",
        "RestoreDBInstanceFromDBSnapshot",
        Some(&request.region),
        &request.instance_id,
        detail,
      )
      .await
      .map(drop)
  }

  async fn delete_instance(&self, region: &str, id: &str) -> CloudResult<()> {
    self
      .sim
      .mutate("rds", "DeleteDBInstance", Some(region), id, json!({}))
      .await
      .map(drop)
  }

  async fn failover_global_cluster(&self, id: &str, target_cluster_arn: &str) -> CloudResult<()> {
    self
      .sim
      .mutate(
        "rds",
        "FailoverGlobalCluster",
        None,
        id,
        json!({ "target_cluster_arn": target_cluster_arn }),
      )
      .await
      .map(drop)
  }

  async fn list_instance_tags(
    &self,
    region: &str,
    id: &str,
  ) -> CloudResult<Option<BTreeMap<String, String>>> {
    self
      .sim
      .read("rds", "ListTagsForResource", Some(region), |state, now| {
        let key = (region.to_string(), id.to_string());
        Ok(state.rds.instances.get(&key).and_then(|instance| {
          instance
            .view(&state.model, now)
            .map(|_| instance.tags.clone())
        }))
      })
      .await
  }

  async fn add_instance_tags(
    &self,
    region: &str,
    id: &str,
    tags: &BTreeMap<String, String>,
  ) -> CloudResult<()> {
    self
      .sim
      .mutate(
        "rds",
        "AddTagsToResource",
        Some(region),
        id,
        json!({ "tags": tags }),
      )
      .await
      .map(drop)
  }
}
