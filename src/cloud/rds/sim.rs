//! Simulated RDS: instances and read replicas (promotion, restore, delete), snapshots, Aurora
//! global clusters, and the CloudWatch `ReplicaLag` metric.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cloud::ops;
use crate::cloud::sim::{
  state::{detail_str, missing, Applied, Model, Reject},
  world::RdsSpec,
  Operation, SimCloud,
};
use crate::cloud::{
  CloudResult, DbInstance, DbSnapshot, GlobalCluster, GlobalClusterMember, GlobalFailover,
  LagDatapoint, Rds, ReplicaLag, RestoreRequest, LAG_LOOKBACK, LAG_PERIOD,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
  Steady,
  Promoting(DateTime<Utc>),
  Restoring(DateTime<Utc>),
  Deleting(DateTime<Utc>),
  /// `CreateDBInstanceReadReplica` accepted then: `creating` until `create_replica` has passed.
  Creating(DateTime<Utc>),
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
  /// For a replica this world created: when its creation started. Its lag is then the time
  /// the creation took, caught up over `replica_catch_up`, on top of the steady lag.
  created: Option<DateTime<Utc>>,
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
      Phase::Creating(since) => {
        if model.done(since, now, model.timings.create_replica.0) {
          self.phase = Phase::Steady;
          self.status = "available".into();
        }
        true
      }
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
      Phase::Creating(_) => {
        endpoint = None;
        "creating".into()
      }
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

  /// The replica's `ReplicaLag` datapoints over the last [`LAG_LOOKBACK`], one a period, in
  /// modelled time from the world's creation (so the metric follows the time scale). While its
  /// source region is up, every datapoint holds the replica's lag. When that region is in
  /// outage (from the world's creation: outages are part of the world), replication stops:
  /// datapoints from then on read -1 for [`STOPPED_PERIODS`] periods, then RDS publishes none.
  /// Empty for an instance that is not (or no longer) a replica, or is still being created.
  /// The lag itself is [`Instance::lag_now`]'s (catch-up, writes stopped).
  fn lag_datapoints(
    &self,
    model: &Model,
    now: DateTime<Utc>,
    source_down: bool,
    writes_stopped: bool,
  ) -> (Vec<LagDatapoint>, DateTime<Utc>) {
    let lag = self.lag_now(model, now, writes_stopped);
    modelled_datapoints(model, now, lag, source_down)
  }
}

/// A lag metric's datapoints over the last [`LAG_LOOKBACK`] as the world publishes them, and
/// the modelled now they are read at (see [`Instance::lag_datapoints`]). `lag: None`: nothing is
/// published.
pub(crate) fn modelled_datapoints(
  model: &Model,
  now: DateTime<Utc>,
  lag: Option<Duration>,
  source_down: bool,
) -> (Vec<LagDatapoint>, DateTime<Utc>) {
  let modelled_now = model.created_at + chrono_duration(model.elapsed(model.created_at, now));
  let Some(lag) = lag else {
    return (Vec::new(), modelled_now);
  };
  let period = chrono_duration(LAG_PERIOD);
  let lookback = chrono_duration(LAG_LOOKBACK);
  let stopped_until = model.created_at + period * STOPPED_PERIODS;
  // Periods counted from the world's creation, the newest at or before now.
  let newest = (modelled_now - model.created_at).num_seconds() / period.num_seconds().max(1);
  let points = (0..=lookback.num_seconds() / period.num_seconds().max(1))
    .map(|back| model.created_at + period * i32::try_from(newest - back).unwrap_or(i32::MIN))
    .filter(|at| !source_down || *at < stopped_until)
    .map(|at| LagDatapoint {
      at,
      seconds: if source_down && at >= model.created_at {
        -1.0
      } else {
        lag.as_secs_f64()
      },
    })
    .collect();
  (points, modelled_now)
}

/// The RPO lag the world's Aurora global database secondaries report while their primary's
/// region is up (Aurora replicates across regions in about a second).
const AURORA_RPO_LAG: Duration = Duration::from_secs(1);

/// How many periods a replica whose source failed reports -1 before its datapoints stop.
const STOPPED_PERIODS: i32 = 2;

fn chrono_duration(duration: Duration) -> chrono::Duration {
  chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The source region of a replica: the region in its source's ARN, else its own.
fn source_region<'a>(replica_region: &'a str, replica_of: &'a str) -> &'a str {
  crate::cloud::arn_region(replica_of).unwrap_or(replica_region)
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
          created: None,
          tags: instance.tags.clone(),
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
      name if name == ops::rds::PROMOTE_READ_REPLICA.name => {
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
      name if name == ops::rds::RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT.name => {
        let request: RestoreRequest = serde_json::from_value(op.detail.clone())
          .map_err(|err| Reject::client("InvalidParameterValue", err.to_string()))?;
        let key = self.new_instance_key(&request.region, &request.instance_id)?;
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
          created: None,
          tags: request.tags.clone(),
        };
        self.instances.insert(key, instance);
        Ok(())
      }
      name if name == ops::rds::DELETE_DB_INSTANCE.name => {
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
      name if name == ops::rds::FAILOVER_GLOBAL_CLUSTER.name => {
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
      name if name == ops::rds::CREATE_DB_INSTANCE_READ_REPLICA.name => {
        self.create_replica(op, model)
      }
      name if name == ops::rds::ADD_TAGS_TO_RESOURCE.name => {
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
      .read(
        &ops::rds::DESCRIBE_DB_INSTANCES,
        Some(region),
        |state, now| Ok(state.rds.describe(&state.model, now, region, id)),
      )
      .await
  }

  async fn replica_lag(&self, region: &str, id: &str) -> CloudResult<ReplicaLag> {
    self
      .sim
      .read(
        &ops::cloudwatch::GET_METRIC_STATISTICS,
        Some(region),
        |state, now| {
          let Some(instance) = state
            .rds
            .instances
            .get(&(region.to_string(), id.to_string()))
          else {
            return Ok(ReplicaLag::from_datapoints(&[], now));
          };
          let source = instance
            .replica_of
            .as_deref()
            .map(|source| source_region(region, source));
          let source_down = source.is_some_and(|source| state.in_outage(source, now));
          let writes_stopped =
            source.is_some_and(|source| state.ecs.stopped_in(&state.model, now, source));
          let (points, modelled_now) =
            instance.lag_datapoints(&state.model, now, source_down, writes_stopped);
          Ok(ReplicaLag::from_datapoints(&points, modelled_now))
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
      .read(
        &ops::rds::DESCRIBE_DB_SNAPSHOTS,
        Some(region),
        |state, _now| {
          Ok(
            state
              .rds
              .snapshots
              .iter()
              .filter(|snapshot| snapshot.region == region && snapshot.instance_id == instance_id)
              .cloned()
              .collect(),
          )
        },
      )
      .await
  }

  async fn describe_global_cluster(&self, id: &str) -> CloudResult<Option<GlobalCluster>> {
    self
      .sim
      .read(&ops::rds::DESCRIBE_GLOBAL_CLUSTERS, None, |state, now| {
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
      .mutate(&ops::rds::PROMOTE_READ_REPLICA, Some(region), id, json!({}))
      .await
      .map(drop)
  }

  async fn restore_from_snapshot(&self, request: &RestoreRequest) -> CloudResult<()> {
    let detail = serde_json::to_value(request).unwrap_or_default();
    self
      .sim
      .mutate(
        &ops::rds::RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT,
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
      .mutate(&ops::rds::DELETE_DB_INSTANCE, Some(region), id, json!({}))
      .await
      .map(drop)
  }

  async fn failover_global_cluster(
    &self,
    id: &str,
    target_cluster_arn: &str,
    mode: GlobalFailover,
  ) -> CloudResult<()> {
    // AWS performs a switchover only while every member is healthy: with the writer's region
    // down, only a failover that allows data loss goes through.
    let writer_down = self.sim.peek(|state, now| {
      state.rds.globals.get(id).is_some_and(|global| {
        global
          .view(&state.model, now)
          .writer()
          .and_then(crate::cloud::arn_region)
          .is_some_and(|region| state.in_outage(region, now))
      })
    });
    if writer_down && mode == GlobalFailover::Switchover {
      return Err(
        crate::cloud::CloudError::new(
          crate::cloud::ErrorKind::InvalidState,
          ops::rds::FAILOVER_GLOBAL_CLUSTER.service,
          ops::rds::FAILOVER_GLOBAL_CLUSTER.name,
          format!(
            "Global cluster {id} cannot switch over: its writer's region does not answer. \
             Fail over with AllowDataLoss."
          ),
        )
        .with_code("InvalidGlobalClusterStateFault")
        .with_status(400),
      );
    }
    self
      .sim
      .mutate(
        &ops::rds::FAILOVER_GLOBAL_CLUSTER,
        None,
        id,
        json!({
          "target_cluster_arn": target_cluster_arn,
          "allow_data_loss": mode == GlobalFailover::AllowDataLoss,
        }),
      )
      .await
      .map(drop)
  }

  async fn get_global_rpo_lag(&self, region: &str, cluster_id: &str) -> CloudResult<ReplicaLag> {
    self
      .sim
      .read(
        &ops::cloudwatch::GET_METRIC_STATISTICS,
        Some(region),
        |state, now| {
          // A secondary (not the writer) of a global cluster, in `region`: the metric is
          // published for it alone, in its own region.
          let secondary_of = state.rds.globals.values().find_map(|global| {
            let view = global.view(&state.model, now);
            let is_secondary = view.members.iter().any(|member| {
              !member.is_writer
                && crate::cloud::arn_region(&member.cluster_arn) == Some(region)
                && crate::cloud::arn_resource_name(&member.cluster_arn) == cluster_id
            });
            is_secondary.then_some(view)
          });
          let (lag, source_down) = match &secondary_of {
            Some(global) => (
              Some(AURORA_RPO_LAG),
              global
                .writer()
                .and_then(crate::cloud::arn_region)
                .is_some_and(|writer| state.in_outage(writer, now)),
            ),
            None => (None, false),
          };
          let (points, modelled_now) = modelled_datapoints(&state.model, now, lag, source_down);
          Ok(ReplicaLag::from_datapoints(&points, modelled_now))
        },
      )
      .await
  }

  async fn create_read_replica(&self, request: &crate::cloud::ReplicaRequest) -> CloudResult<()> {
    let detail = serde_json::to_value(request).unwrap_or_default();
    self
      .sim
      .mutate(
        &ops::rds::CREATE_DB_INSTANCE_READ_REPLICA,
        Some(&request.region),
        &request.instance_id,
        detail,
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
      .read(
        &ops::rds::LIST_TAGS_FOR_RESOURCE,
        Some(region),
        |state, now| {
          let key = (region.to_string(), id.to_string());
          Ok(state.rds.instances.get(&key).and_then(|instance| {
            instance
              .view(&state.model, now)
              .map(|_| instance.tags.clone())
          }))
        },
      )
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
        &ops::rds::ADD_TAGS_TO_RESOURCE,
        Some(region),
        id,
        json!({ "tags": tags }),
      )
      .await
      .map(drop)
  }
}

/// The lag a replica this world creates has once it has caught up, while its source takes
/// writes.
const CREATED_REPLICA_STEADY_LAG: Duration = Duration::from_secs(1);

impl Instance {
  /// The `ReplicaLag` a replica reports now. While its source region's application has stopped
  /// writing (`writes_stopped`), the steady lag drains to zero; a replica this world created
  /// first works off the backlog of its creation. `None` while creating (no datapoints yet), and
  /// for an instance that is not a replica.
  fn lag_now(&self, model: &Model, now: DateTime<Utc>, writes_stopped: bool) -> Option<Duration> {
    let mut current = self.clone();
    if !current.settle(model, now) || current.replica_of.is_none() {
      return None;
    }
    if matches!(current.phase, Phase::Creating(_)) {
      return None;
    }
    let steady = if writes_stopped {
      Duration::ZERO
    } else {
      current.lag?
    };
    let backlog = current.created.map_or(Duration::ZERO, |since| {
      let create = model.timings.create_replica.0;
      let caught_up = model.elapsed(since, now).saturating_sub(create);
      let catch_up = model.timings.replica_catch_up.0;
      if catch_up.is_zero() || caught_up >= catch_up {
        Duration::ZERO
      } else {
        create.mul_f64(1.0 - caught_up.as_secs_f64() / catch_up.as_secs_f64())
      }
    });
    Some(backlog + steady)
  }
}

impl RdsState {
  /// The key of an instance a request creates: refused as AWS does when the identifier is not
  /// valid or an instance of that name exists in the region.
  fn new_instance_key(&self, region: &str, id: &str) -> Result<(String, String), Reject> {
    if !valid_instance_id(id) {
      return Err(Reject::client(
        "InvalidParameterValue",
        format!("DBInstanceIdentifier `{id}` is not a valid identifier."),
      ));
    }
    let key = (region.to_string(), id.to_string());
    if self.instances.contains_key(&key) {
      return Err(Reject::client(
        "DBInstanceAlreadyExists",
        format!("DB instance already exists: {id}"),
      ));
    }
    Ok(key)
  }

  /// `CreateDBInstanceReadReplica`: a new replica of an available source, named by its ARN as
  /// AWS reports a cross-region source (`ReadReplicaSourceDBInstanceIdentifier`).
  fn create_replica(&mut self, op: &Operation, model: &Model) -> Applied {
    let now = op.at;
    let request: crate::cloud::ReplicaRequest = serde_json::from_value(op.detail.clone())
      .map_err(|err| Reject::client("InvalidParameterValue", err.to_string()))?;
    let key = self.new_instance_key(&request.region, &request.instance_id)?;
    let source = self
      .instances
      .get(&(request.source_region.clone(), request.source_id.clone()))
      .ok_or_else(|| instance_not_found(&request.source_id))?;
    if source.phase != Phase::Steady || source.status != "available" {
      return Err(Reject::invalid_state(
        "InvalidDBInstanceState",
        format!("DB Instance {} is not in available state.", source.id),
      ));
    }
    let instance = Instance {
      id: request.instance_id.clone(),
      region: request.region.clone(),
      engine: source.engine.clone(),
      class: request
        .instance_class
        .clone()
        .unwrap_or_else(|| source.class.clone()),
      status: "creating".into(),
      endpoint: Some(format!(
        "{}.csim01.{}.rds.amazonaws.com",
        request.instance_id, request.region
      )),
      port: source.port,
      replica_of: Some(format!(
        "arn:aws:rds:{}:{}:db:{}",
        source.region, model.account, source.id
      )),
      lag: Some(CREATED_REPLICA_STEADY_LAG),
      phase: Phase::Creating(now),
      created: Some(now),
      tags: request.tags.clone(),
    };
    self.instances.insert(key, instance);
    Ok(())
  }
}

impl RdsState {
  /// The instances as a world file declares them, as they stand at `now` (settled; a
  /// replica's current lag becomes its `replica_lag`). Snapshots and global clusters are the
  /// world's own: the world file keeps them.
  pub fn export_instances(
    &self,
    model: &Model,
    now: DateTime<Utc>,
  ) -> Vec<crate::cloud::sim::world::InstanceSpec> {
    self
      .instances
      .values()
      .filter_map(|instance| {
        let view = instance.view(model, now)?;
        let replica_lag = instance
          .lag_now(model, now, false)
          .map(|lag| crate::cloud::sim::world::ModelDuration(Duration::from_secs(lag.as_secs())));
        Some(crate::cloud::sim::world::InstanceSpec {
          id: view.id,
          region: view.region,
          engine: view.engine,
          class: view.instance_class,
          status: view.status,
          endpoint: view.endpoint,
          port: view.port,
          replica_of: view.replica_of,
          replica_lag,
          tags: instance.tags.clone(),
        })
      })
      .collect()
  }
}

/// The family's part of the world spec.
pub(crate) type Spec = crate::cloud::sim::world::RdsSpec;

/// The family's part of the simulated world.
pub(crate) type State = RdsState;

impl crate::cloud::sim::state::FamilyState for RdsState {
  type Spec = Spec;

  fn new(spec: &crate::cloud::sim::world::WorldSpec, model: &Model) -> Self {
    RdsState::new(&spec.rds, model)
  }

  fn apply(&mut self, op: &Operation, model: &Model) -> Applied {
    RdsState::apply(self, op, model)
  }

  fn export(&self, created: Self::Spec, model: &Model, now: DateTime<Utc>) -> Self::Spec {
    crate::cloud::sim::world::RdsSpec {
      instances: self.export_instances(model, now),
      ..created
    }
  }
}
