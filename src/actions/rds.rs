//! RDS: replica status and promotion, snapshots and restores, Aurora global failover.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;

use super::{
  human, poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Effect,
  Observation, Observed, Outcome, Poll,
};
use crate::cloud::ops;
use crate::{
  cloud::{DbInstance, GlobalFailover, ReplicaLag, RestoreRequest, SnapshotKind},
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
  state::DataLoss,
};

const REGION: FieldSpec =
  FieldSpec::required("region", FieldKind::String, "AWS region of the instance");
const INSTANCE: FieldSpec =
  FieldSpec::required("instance", FieldKind::String, "DB instance identifier");

/// Statuses an instance passes through on its way back to `available`.
const TRANSITIONAL: &[&str] = &[
  "modifying",
  "rebooting",
  "renaming",
  "backing-up",
  "creating",
  "upgrading",
  "configuring-enhanced-monitoring",
  "configuring-log-exports",
  "starting",
];

async fn describe(ctx: &Ctx<'_>, region: &str, id: &str) -> ActionResult<DbInstance> {
  ctx
    .cloud
    .rds
    .describe_instance(region, id)
    .await?
    .ok_or_else(|| ActionError::failed(format!("DB instance `{id}` does not exist in {region}")))
}

/// The instance a step names (`with.region`, `with.instance`).
fn instance_ref(args: &Args) -> ActionResult<(&str, &str)> {
  Ok((args.str("region")?, args.str("instance")?))
}

/// Poll the instance a step names until `ready` holds; `pending` says what it is meanwhile.
async fn await_instance(
  ctx: &Ctx<'_>,
  args: &Args,
  ready: fn(&DbInstance) -> bool,
  pending: fn(&DbInstance) -> String,
) -> ActionResult<DbInstance> {
  let (region, id) = instance_ref(args)?;
  poll_until(ctx, || async {
    let instance = describe(ctx, region, id).await?;
    Ok(if ready(&instance) {
      Poll::Ready(instance)
    } else {
      Poll::Pending(pending(&instance))
    })
  })
  .await
}

fn describe_instance(instance: &DbInstance) -> String {
  match &instance.replica_of {
    Some(source) => format!("{}: {}, replica of {source}", instance.id, instance.status),
    None => format!("{}: {}, standalone", instance.id, instance.status),
  }
}

/// The lag limit: the step's `max_lag`, else the runbook's RPO.
fn lag_limit(ctx: &Ctx<'_>, args: &Args) -> Option<Duration> {
  args.opt_duration("max_lag").or(ctx.rpo)
}

/// The data loss a promotion at this lag incurs: the measured lag, or, when the lag is unknown,
/// no bound, with the basis the report gives for it.
pub(super) fn data_loss(lag: &ReplicaLag) -> DataLoss {
  match lag {
    ReplicaLag::Measured(measurement) => DataLoss::Bounded(measurement.lag),
    ReplicaLag::Unknown { .. } => DataLoss::Unknown(lag.to_string()),
  }
}

/// Why an unknown lag stops the step: the lag metric's words, and the way out.
pub(super) fn unknown_lag_error(id: &str, lag: &ReplicaLag, limit: Duration) -> ActionError {
  ActionError::failed(format!(
    "the lag of replica `{id}` is {lag}: cannot prove it is within {}; refusing (pass \
     --accept-data-loss, or set `accept_data_loss: true` on the step, to go on without proof; \
     the RPO achieved is then reported as unknown)",
    human(limit)
  ))
}

/// Read a replica's lag and check it against the limit; `Ok(lag)` when within it or accepted.
/// An unknown lag fails closed: a negative, stale or missing datapoint is no proof of anything.
async fn guarded_lag(
  ctx: &Ctx<'_>,
  args: &Args,
  instance: &DbInstance,
) -> ActionResult<ReplicaLag> {
  let lag = ctx
    .cloud
    .rds
    .replica_lag(&instance.region, &instance.id)
    .await?;
  guard_lag(ctx, args, &instance.id, lag)
}

/// Check a lag already read, of the replica (or Aurora secondary) `id`, against the limit.
fn guard_lag(ctx: &Ctx<'_>, args: &Args, id: &str, lag: ReplicaLag) -> ActionResult<ReplicaLag> {
  // No limit (no `max_lag`, no RPO): nothing to prove; the lag is still reported.
  let Some(limit) = lag_limit(ctx, args) else {
    return Ok(lag);
  };
  if ctx.accept_data_loss {
    return Ok(lag);
  }
  match lag.measured() {
    Some(measured) if measured > limit => Err(ActionError::failed(format!(
      "replica `{id}` lags its source by {}, more than the RPO of {}: making it the writer would \
       lose more data than the runbook allows; refusing (pass --accept-data-loss, or set \
       `accept_data_loss: true` on the step, to go on anyway)",
      human(measured),
      human(limit)
    ))),
    Some(_) => Ok(lag),
    None => Err(unknown_lag_error(id, &lag, limit)),
  }
}

// --- rds.replica_status -----------------------------------------------------------------------

pub const REPLICA_STATUS: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.replica_status",
    mutating: false,
    doc: "Assert an instance exists and is available, and either is a read replica lagging its source \
          by no more than max_lag (role: replica, the default) or is a standalone writer (role: standalone).",
    fields: &[
      REGION,
      INSTANCE,
      FieldSpec::optional("max_lag", FieldKind::Duration, "Fail when the replica lags more than this"),
      FieldSpec::optional("role", FieldKind::Enum(&["replica", "standalone"]), "What the instance must be (default replica)"),
      FieldSpec::optional("within", FieldKind::Duration, "Keep checking until it passes or this has passed (waits for a replica to catch up)"),
      FieldSpec::optional("source", FieldKind::String, "The replica must replicate this instance (ARN, or identifier in source_region): anything else does not hold its writes and is refused unless --accept-data-loss"),
      FieldSpec::optional("source_region", FieldKind::String, "Region of `source` when it is an identifier (default: region)"),
    ],
    calls: &[
      Call::to(&ops::rds::DESCRIBE_DB_INSTANCES, "region"),
      Call::to(&crate::cloud::ops::cloudwatch::GET_METRIC_STATISTICS, "region"),
    ],
    outputs: &["status", "source", "lag_seconds"],
  },
  behaviour: Behaviour::Check(&PolledReplicaStatus),
};

struct ReplicaStatus;

#[async_trait::async_trait]
impl Check for ReplicaStatus {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let region = args.str("region")?;
    let instance = describe(ctx, region, args.str("instance")?).await?;
    if args.opt_str("role") == Some("standalone") {
      if !instance.is_standalone_available() {
        return Err(ActionError::failed(format!(
          "`{}` is not a standalone available instance ({})",
          instance.id,
          describe_instance(&instance)
        )));
      }
      refuse_retired(ctx, &instance, "treat it as the writer").await?;
      return Ok(
        Outcome::new(describe_instance(&instance))
          .output("status", &instance.status)
          .output("source", "")
          .output("lag_seconds", ""),
      );
    }
    let Some(source) = instance.replica_of.clone() else {
      return Err(ActionError::failed(format!(
        "`{}` is not a read replica ({})",
        instance.id, instance.status
      )));
    };
    let lag = ctx.cloud.rds.replica_lag(region, &instance.id).await?;
    let max_lag = args.opt_duration("max_lag");
    // `--accept-data-loss` (or `accept_data_loss: true`) is the operator saying the lag is known
    // and accepted: a pre-flight lag check must not stop the failover that the promotion guard
    // would let through. The lag is still measured and reported.
    let beyond = max_lag.is_some_and(|limit| lag.measured().is_none_or(|lag| lag > limit));
    let accepted = if beyond && ctx.accept_data_loss {
      " (beyond max_lag: accepted, --accept-data-loss)"
    } else {
      ""
    };
    if let Some(limit) = max_lag.filter(|_| !ctx.accept_data_loss) {
      match lag.measured() {
        Some(measured) if measured > limit => {
          return Err(ActionError::failed(format!(
            "replica `{}` lags {} behind, more than {}",
            instance.id,
            human(measured),
            human(limit)
          )))
        }
        // Not retried: a -1 or a stale datapoint will not turn into proof by asking again
        // seconds later, and a retry loop would only delay the failure the operator must see.
        None => return Err(unknown_lag_error(&instance.id, &lag, limit)),
        Some(_) => {}
      }
    }
    Ok(
      Outcome::new(format!(
        "{}, lag {lag}{accepted}",
        describe_instance(&instance)
      ))
      .output("status", &instance.status)
      .output("source", source)
      .output(
        "lag_seconds",
        lag
          .measured()
          .map_or(String::new(), |lag| lag.as_secs().to_string()),
      ),
    )
  }
}

// --- rds.promote_replica ----------------------------------------------------------------------

pub const PROMOTE_REPLICA: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.promote_replica",
    mutating: true,
    doc:
      "Promote a read replica to a standalone writable instance and wait until it is available. \
          Refuses when the replica lags more than max_lag (default: the runbook's RPO).",
    fields: &[
      REGION,
      INSTANCE,
      FieldSpec::optional(
        "max_lag",
        FieldKind::Duration,
        "Refuse to promote beyond this lag (default: objectives.rpo)",
      ),
    ],
    calls: &[
      Call::to(&ops::rds::DESCRIBE_DB_INSTANCES, "region"),
      Call::to(
        &crate::cloud::ops::cloudwatch::GET_METRIC_STATISTICS,
        "region",
      ),
      Call::to(&ops::rds::PROMOTE_READ_REPLICA, "region"),
    ],
    outputs: &["endpoint", "data_loss_seconds"],
  },
  behaviour: Behaviour::Effect(&PromoteReplica),
};

struct PromoteReplica;

#[async_trait::async_trait]
impl Effect for PromoteReplica {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let instance = describe(ctx, args.str("region")?, args.str("instance")?).await?;
    let current = describe_instance(&instance);
    let change = format!(
      "promote `{}` to a standalone writable instance",
      instance.id
    );
    if instance.replica_of.is_none() {
      return Ok(if instance.status == "available" {
        Observation::new(Observed::Done, current, "none: already standalone")
      } else {
        Observation::new(Observed::InProgress, current, change)
      });
    }
    if TRANSITIONAL.contains(&instance.status.as_str()) {
      return Ok(Observation::new(Observed::InProgress, current, change));
    }
    if instance.status != "available" {
      return Err(ActionError::failed(format!(
        "cannot promote `{}` while it is {}",
        instance.id, instance.status
      )));
    }
    refuse_retired(ctx, &instance, "promote it").await?;
    let lag = guarded_lag(ctx, args, &instance).await?;
    let current = format!("{current}, lag {lag}");
    Ok(Observation {
      data_loss: Some(data_loss(&lag)),
      ..Observation::new(Observed::Absent, current, change)
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    ctx
      .cloud
      .rds
      .promote_read_replica(args.str("region")?, args.str("instance")?)
      .await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let id = args.str("instance")?;
    let instance = await_instance(ctx, args, DbInstance::is_standalone_available, |instance| {
      format!(
        "replica status: {}{}",
        instance.status,
        if instance.replica_of.is_some() {
          ", still a replica"
        } else {
          ""
        }
      )
    })
    .await?;
    Ok(
      Outcome::new(format!("`{id}` is a standalone instance, available"))
        .output("endpoint", instance.endpoint.unwrap_or_default()),
    )
  }
}

// --- rds.latest_snapshot ----------------------------------------------------------------------

pub const LATEST_SNAPSHOT: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.latest_snapshot",
    mutating: false,
    doc:
      "Find the newest available snapshot (automated or manual) of an instance and check its age \
          against max_age (default: the runbook's RPO).",
    fields: &[
      REGION,
      INSTANCE,
      FieldSpec::optional(
        "max_age",
        FieldKind::Duration,
        "Fail when the newest snapshot is older (default: objectives.rpo)",
      ),
      FieldSpec::optional(
        "kind",
        FieldKind::Enum(&["any", "automated", "manual"]),
        "Which snapshots to consider (default any)",
      ),
    ],
    calls: &[Call::to(&ops::rds::DESCRIBE_DB_SNAPSHOTS, "region")],
    outputs: &["snapshot_id", "age_seconds", "created_at", "kind"],
  },
  behaviour: Behaviour::Check(&LatestSnapshot),
};

struct LatestSnapshot;

#[async_trait::async_trait]
impl Check for LatestSnapshot {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let region = args.str("region")?;
    let instance = args.str("instance")?;
    let kind = args.opt_str("kind").unwrap_or("any");
    let snapshots = ctx.cloud.rds.describe_snapshots(region, instance).await?;
    let newest = snapshots
      .into_iter()
      .filter(|snapshot| snapshot.status == "available")
      .filter(|snapshot| match kind {
        "automated" => snapshot.kind == SnapshotKind::Automated,
        "manual" => snapshot.kind == SnapshotKind::Manual,
        _ => true,
      })
      .max_by_key(|snapshot| snapshot.created_at)
      .ok_or_else(|| {
        ActionError::failed(format!("no available snapshot of `{instance}` in {region}"))
      })?;
    let age = (Utc::now() - newest.created_at)
      .to_std()
      .unwrap_or_default();
    let limit = args.opt_duration("max_age").or(ctx.rpo);
    if let Some(limit) = limit {
      if age > limit {
        return Err(ActionError::failed(format!(
          "the newest snapshot of `{instance}`, {}, is {} old: older than {}",
          newest.id,
          human(age),
          human(limit)
        )));
      }
    }
    let kind = match newest.kind {
      SnapshotKind::Automated => "automated",
      SnapshotKind::Manual => "manual",
    };
    Ok(
      Outcome::new(format!(
        "newest snapshot {} ({kind}) is {} old",
        newest.id,
        human(age)
      ))
      .output("snapshot_id", &newest.id)
      .output("age_seconds", age.as_secs())
      .output("created_at", newest.created_at.to_rfc3339())
      .output("kind", kind)
      .data_loss(Some(age)),
    )
  }
}

// --- rds.restore_snapshot ---------------------------------------------------------------------

pub const RESTORE_SNAPSHOT: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.restore_snapshot",
    mutating: true,
    doc: "Restore a snapshot into a new instance and wait until it is available.",
    fields: &[
      REGION,
      FieldSpec::required("snapshot_id", FieldKind::String, "The snapshot to restore"),
      FieldSpec::required(
        "instance",
        FieldKind::String,
        "Identifier of the new instance",
      ),
      FieldSpec::optional(
        "instance_class",
        FieldKind::String,
        "Instance class of the new instance",
      ),
    ],
    calls: &[
      Call::to(&ops::rds::DESCRIBE_DB_INSTANCES, "region"),
      Call::to(&ops::rds::RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT, "region"),
    ],
    outputs: &["instance", "endpoint", "port"],
  },
  behaviour: Behaviour::Effect(&RestoreSnapshot),
};

struct RestoreSnapshot;

#[async_trait::async_trait]
impl Effect for RestoreSnapshot {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let region = args.str("region")?;
    let id = args.str("instance")?;
    let snapshot = args.str("snapshot_id")?;
    let change = format!("restore snapshot {snapshot} into new instance `{id}`");
    Ok(match ctx.cloud.rds.describe_instance(region, id).await? {
      None => Observation::new(Observed::Absent, format!("`{id}` does not exist"), change),
      Some(instance) if instance.status == "available" => Observation::new(
        Observed::Done,
        describe_instance(&instance),
        "none: already restored",
      ),
      Some(instance) if instance.status == "deleting" => {
        return Err(ActionError::retryable(format!(
          "`{id}` is being deleted; waiting before restoring into that name"
        )))
      }
      Some(instance) => {
        Observation::new(Observed::InProgress, describe_instance(&instance), change)
      }
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let request = RestoreRequest {
      region: args.str("region")?.to_string(),
      snapshot_id: args.str("snapshot_id")?.to_string(),
      instance_id: args.str("instance")?.to_string(),
      instance_class: args.opt_str("instance_class").map(str::to_string),
      tags: run_tags(ctx),
    };
    ctx.cloud.rds.restore_from_snapshot(&request).await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let id = args.str("instance")?;
    let instance = await_instance(
      ctx,
      args,
      |instance| instance.status == "available",
      |instance| format!("restored instance status: {}", instance.status),
    )
    .await?;
    Ok(
      Outcome::new(format!("`{id}` restored and available"))
        .output("instance", id)
        .output("endpoint", instance.endpoint.unwrap_or_default())
        .output(
          "port",
          instance.port.map_or(String::new(), |port| port.to_string()),
        ),
    )
  }
}

// --- rds.delete_instance ----------------------------------------------------------------------

pub const DELETE_INSTANCE: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.delete_instance",
    mutating: true,
    doc:
      "Delete an instance (no final snapshot) and wait until it is gone. Already gone is success.",
    fields: &[REGION, INSTANCE],
    calls: &[
      Call::to(&ops::rds::DESCRIBE_DB_INSTANCES, "region"),
      Call::to(&ops::rds::DELETE_DB_INSTANCE, "region"),
    ],
    outputs: &[],
  },
  behaviour: Behaviour::Effect(&DeleteInstance),
};

struct DeleteInstance;

#[async_trait::async_trait]
impl Effect for DeleteInstance {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let region = args.str("region")?;
    let id = args.str("instance")?;
    let change = format!("delete instance `{id}`");
    Ok(match ctx.cloud.rds.describe_instance(region, id).await? {
      None => Observation::new(
        Observed::Done,
        format!("`{id}` does not exist"),
        "none: already gone",
      ),
      Some(instance) if instance.status == "deleting" => {
        Observation::new(Observed::InProgress, describe_instance(&instance), change)
      }
      Some(instance) => Observation::new(Observed::Absent, describe_instance(&instance), change),
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    match ctx
      .cloud
      .rds
      .delete_instance(args.str("region")?, args.str("instance")?)
      .await
    {
      Ok(()) => Ok(None),
      Err(err) if err.kind == crate::cloud::ErrorKind::NotFound => Ok(None),
      Err(err) => Err(err.into()),
    }
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let region = args.str("region")?;
    let id = args.str("instance")?;
    poll_until(ctx, || async {
      Ok(match ctx.cloud.rds.describe_instance(region, id).await? {
        None => Poll::Ready(()),
        Some(instance) => Poll::Pending(format!("instance status: {}", instance.status)),
      })
    })
    .await?;
    Ok(Outcome::new(format!("`{id}` deleted")))
  }
}

// --- rds.failover_global_cluster --------------------------------------------------------------

pub const FAILOVER_GLOBAL_CLUSTER: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.failover_global_cluster",
    mutating: true,
    doc:
      "Fail an Aurora global database over to a secondary cluster and wait until it is the writer. \
          Refuses when the secondary's AuroraGlobalDBRPOLag is beyond max_lag (default: the \
          runbook's RPO) or unknown. A switchover while that lag is measured; a failover allowing \
          data loss (AllowDataLoss) when it is unknown, only with --accept-data-loss.",
    fields: &[
      FieldSpec::required(
        "global_cluster",
        FieldKind::String,
        "Global cluster identifier",
      ),
      FieldSpec::required(
        "target_cluster_arn",
        FieldKind::String,
        "ARN of the cluster to make the writer",
      ),
      FieldSpec::optional(
        "max_lag",
        FieldKind::Duration,
        "Refuse to fail over beyond this AuroraGlobalDBRPOLag (default: objectives.rpo)",
      ),
    ],
    calls: &[
      Call::default_region(&ops::rds::DESCRIBE_GLOBAL_CLUSTERS),
      Call::arn_or(
        &crate::cloud::ops::cloudwatch::GET_METRIC_STATISTICS,
        "target_cluster_arn",
        None,
      ),
      Call::default_region(&ops::rds::FAILOVER_GLOBAL_CLUSTER),
    ],
    outputs: &["writer", "data_loss_seconds"],
  },
  behaviour: Behaviour::Effect(&FailoverGlobalCluster),
};

struct FailoverGlobalCluster;

#[async_trait::async_trait]
impl Effect for FailoverGlobalCluster {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let id = args.str("global_cluster")?;
    let target = args.str("target_cluster_arn")?;
    let cluster = ctx
      .cloud
      .rds
      .describe_global_cluster(id)
      .await?
      .ok_or_else(|| ActionError::failed(format!("global cluster `{id}` does not exist")))?;
    if !cluster
      .members
      .iter()
      .any(|member| member.cluster_arn == target)
    {
      return Err(ActionError::failed(format!(
        "`{target}` is not a member of global cluster `{id}`"
      )));
    }
    let writer = cluster.writer().unwrap_or("none").to_string();
    let current = format!("{id}: {}, writer {writer}", cluster.status);
    let change = format!("fail `{id}` over to {target}");
    Ok(if writer == target && cluster.status == "available" {
      Observation::new(Observed::Done, current, "none: already the writer")
    } else if cluster.status != "available" {
      Observation::new(Observed::InProgress, current, change)
    } else {
      // The engine's own measure of what the secondary is missing: its RPO lag, read before
      // the failover erases it, and guarded like a replica's lag.
      let region = crate::cloud::arn_region(target).unwrap_or_default();
      let secondary = crate::cloud::arn_resource_name(target);
      let lag = ctx.cloud.rds.get_global_rpo_lag(region, secondary).await?;
      let lag = guard_lag(ctx, args, secondary, lag)?;
      Observation {
        data_loss: Some(data_loss(&lag)),
        ..Observation::new(
          Observed::Absent,
          format!("{current}, RPO lag {lag}"),
          change,
        )
      }
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let target = args.str("target_cluster_arn")?;
    let mode = global_failover_mode(ctx, target).await?;
    ctx
      .cloud
      .rds
      .failover_global_cluster(args.str("global_cluster")?, target, mode)
      .await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let id = args.str("global_cluster")?;
    let target = args.str("target_cluster_arn")?;
    poll_until(ctx, || async {
      let cluster = ctx
        .cloud
        .rds
        .describe_global_cluster(id)
        .await?
        .ok_or_else(|| ActionError::failed(format!("global cluster `{id}` disappeared")))?;
      Ok(
        if cluster.writer() == Some(target) && cluster.status == "available" {
          Poll::Ready(())
        } else {
          Poll::Pending(format!("global cluster status: {}", cluster.status))
        },
      )
    })
    .await?;
    Ok(Outcome::new(format!("{target} is the writer of `{id}`")).output("writer", target))
  }
}

/// How to make `target` the writer, from its RPO lag read right before the call: a switchover
/// while the lag is measured (the writer replicates to it, so its region answers: nothing need be
/// lost, and AWS performs a switchover only then); a failover allowing data loss when the lag is
/// unknown (replication stopped: the writer's region is down, and a switchover would be refused),
/// which only `--accept-data-loss` allows.
async fn global_failover_mode(ctx: &Ctx<'_>, target: &str) -> ActionResult<GlobalFailover> {
  let region = crate::cloud::arn_region(target).unwrap_or_default();
  let secondary = crate::cloud::arn_resource_name(target);
  let lag = ctx.cloud.rds.get_global_rpo_lag(region, secondary).await?;
  match lag {
    ReplicaLag::Measured(_) => Ok(GlobalFailover::Switchover),
    ReplicaLag::Unknown { .. } if ctx.accept_data_loss => Ok(GlobalFailover::AllowDataLoss),
    ReplicaLag::Unknown { .. } => Err(ActionError::failed(format!(
      "the RPO lag of `{secondary}` is {lag}: its writer's region looks down, so only a failover \
       that allows data loss (AllowDataLoss) can make it the writer; refusing (pass \
       --accept-data-loss to fail over without proof of what is lost)"
    ))),
  }
}

// --- rds.create_replica -----------------------------------------------------------------------

/// A source instance, named by ARN (`arn:PARTITION:rds:REGION:ACCOUNT:db:ID`) or by identifier
/// and region.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceRef {
  region: String,
  id: String,
}

impl SourceRef {
  /// `source` (an ARN or an identifier) and `source_region` (for an identifier; default
  /// `default_region`) from a step's arguments.
  fn from_args(args: &Args, default_region: &str) -> ActionResult<SourceRef> {
    let source = args.str("source")?;
    let given_region = args.opt_str("source_region");
    match parse_db_arn(source) {
      Some(arn) => match given_region {
        Some(region) if region != arn.region => Err(ActionError::failed(format!(
          "`with.source_region` is {region} but the ARN `{source}` names {}",
          arn.region
        ))),
        _ => Ok(arn),
      },
      None if source.starts_with("arn:") => Err(ActionError::failed(format!(
        "`with.source`: `{source}` is not an RDS DB instance ARN \
         (arn:aws:rds:REGION:ACCOUNT:db:ID)"
      ))),
      None => Ok(SourceRef {
        region: given_region.unwrap_or(default_region).to_string(),
        id: source.to_string(),
      }),
    }
  }

  /// Whether a replica's `ReadReplicaSourceDBInstanceIdentifier` names this instance: its ARN
  /// (how AWS reports a source in another region), or its bare identifier (a source in the
  /// replica's own region).
  fn is_named_by(&self, replica_of: &str, replica_region: &str) -> bool {
    match parse_db_arn(replica_of) {
      Some(arn) => arn == *self,
      None => replica_of == self.id && replica_region == self.region,
    }
  }
}

impl std::fmt::Display for SourceRef {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "`{}` in {}", self.id, self.region)
  }
}

/// The region and identifier in an RDS DB instance ARN.
fn parse_db_arn(arn: &str) -> Option<SourceRef> {
  let parts: Vec<&str> = arn.split(':').collect();
  match parts.as_slice() {
    ["arn", _partition, "rds", region, _account, "db", id]
      if !region.is_empty() && !id.is_empty() =>
    {
      Some(SourceRef {
        region: (*region).to_string(),
        id: (*id).to_string(),
      })
    }
    _ => None,
  }
}

/// Whether `instance` is a read replica of `source`.
fn replicates(instance: &DbInstance, source: &SourceRef) -> bool {
  instance
    .replica_of
    .as_deref()
    .is_some_and(|replica_of| source.is_named_by(replica_of, &instance.region))
}

pub const CREATE_REPLICA: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.create_replica",
    mutating: true,
    doc:
      "Create a (cross-region) read replica of a source instance and wait until it is available. \
          A replica of that source already under that name is success; any other instance under \
          that name is refused.",
    fields: &[
      FieldSpec::required(
        "region",
        FieldKind::String,
        "Region to create the replica in",
      ),
      FieldSpec::required(
        "instance",
        FieldKind::String,
        "Identifier of the new replica",
      ),
      FieldSpec::required(
        "source",
        FieldKind::String,
        "The source instance: its ARN, or its identifier in source_region",
      ),
      FieldSpec::optional(
        "source_region",
        FieldKind::String,
        "Region of the source when `source` is an identifier (default: region)",
      ),
      FieldSpec::optional(
        "instance_class",
        FieldKind::String,
        "Instance class of the replica (default: the source's)",
      ),
      FieldSpec::optional(
        "existing",
        FieldKind::String,
        "Use this instance (in region) instead of creating `instance` (empty: create): a replica \
         of the source is used as it is; any other instance does not hold the source's data and \
         is refused unless --accept-data-loss, which takes it as it is",
      ),
    ],
    calls: &[
      Call::to(&ops::rds::DESCRIBE_DB_INSTANCES, "region"),
      Call::to(&ops::rds::CREATE_DB_INSTANCE_READ_REPLICA, "region"),
    ],
    outputs: &["instance", "source", "endpoint", "replicates"],
  },
  behaviour: Behaviour::Effect(&CreateReplica),
};

struct CreateReplica;

/// `rds.create_replica`'s `existing`, when set (an empty value is unset).
fn existing(args: &Args) -> Option<&str> {
  args.opt_str("existing").filter(|id| !id.is_empty())
}

/// The instance the step is about: `existing` when set, else the replica it creates.
fn replica_id(args: &Args) -> ActionResult<&str> {
  existing(args).map_or_else(|| args.str("instance"), Ok)
}

/// An `existing` instance that does not replicate the source: refused, naming it and what
/// `--accept-data-loss` would do; with it, taken as it is (`Ok(())`).
fn guard_existing(ctx: &Ctx<'_>, instance: &DbInstance, source: &SourceRef) -> ActionResult<()> {
  if ctx.accept_data_loss {
    return Ok(());
  }
  Err(ActionError::failed(format!(
    "`{}` in {} is not a read replica of {source} ({}): it does not hold the writes made on \
     {source}; refusing. With --accept-data-loss it is taken as it is, without those writes \
     (the RPO achieved is then unknown), and the writer {source} is kept, neither deleted nor \
     recreated, so that they can be recovered from it",
    instance.id,
    instance.region,
    describe_instance(instance)
  )))
}

#[async_trait::async_trait]
impl Effect for CreateReplica {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let region = args.str("region")?;
    let id = replica_id(args)?;
    let source = SourceRef::from_args(args, region)?;
    if existing(args).is_some() {
      let instance = describe(ctx, region, id).await?;
      let current = describe_instance(&instance);
      if !replicates(&instance, &source) {
        guard_existing(ctx, &instance, &source)?;
        return Ok(Observation::new(
          Observed::Done,
          current,
          format!(
            "none: `{id}` is used as it is, without the writes made on {source} (accepted: \
             --accept-data-loss)"
          ),
        ));
      }
    }
    let change = format!("create `{id}` in {region}, a read replica of {source}");
    let Some(instance) = ctx.cloud.rds.describe_instance(region, id).await? else {
      let source_instance = describe(ctx, &source.region, &source.id).await?;
      return Ok(Observation::new(
        Observed::Absent,
        format!(
          "`{id}` does not exist in {region}; source {}",
          describe_instance(&source_instance)
        ),
        change,
      ));
    };
    let current = describe_instance(&instance);
    if !replicates(&instance, &source) {
      return Err(ActionError::failed(format!(
        "`{id}` already exists in {region} and is not a read replica of {source} ({current}): \
         it does not hold the source's data; refusing to take it for the replica (choose \
         another identifier, or remove it first)"
      )));
    }
    Ok(if instance.status == "available" {
      Observation::new(Observed::Done, current, "none: the replica exists")
    } else if TRANSITIONAL.contains(&instance.status.as_str()) {
      Observation::new(Observed::InProgress, current, change)
    } else {
      return Err(ActionError::failed(format!(
        "the replica `{id}` is {}: it will not become available on its own",
        instance.status
      )));
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let region = args.str("region")?;
    let source = SourceRef::from_args(args, region)?;
    let request = crate::cloud::ReplicaRequest {
      region: region.to_string(),
      instance_id: replica_id(args)?.to_string(),
      source_region: source.region,
      source_id: source.id,
      instance_class: args.opt_str("instance_class").map(str::to_string),
      tags: run_tags(ctx),
    };
    ctx.cloud.rds.create_read_replica(&request).await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let region = args.str("region")?;
    let id = replica_id(args)?;
    let source = SourceRef::from_args(args, region)?;
    if existing(args).is_some() {
      let instance = describe(ctx, region, id).await?;
      if !replicates(&instance, &source) {
        guard_existing(ctx, &instance, &source)?;
        return Ok(
          Outcome::new(format!(
            "`{id}` is used as it is: not a read replica of {source}, so without the writes \
             made there (accepted: --accept-data-loss)"
          ))
          .output("instance", id)
          .output("source", instance.replica_of.unwrap_or_default())
          .output("endpoint", instance.endpoint.unwrap_or_default())
          .output("replicates", false),
        );
      }
    }
    let instance = poll_until(ctx, || async {
      let instance = describe(ctx, region, id).await?;
      if !replicates(&instance, &source) {
        return Err(ActionError::failed(format!(
          "`{id}` is not a read replica of {source} ({})",
          describe_instance(&instance)
        )));
      }
      Ok(if instance.status == "available" {
        Poll::Ready(instance)
      } else {
        Poll::Pending(format!("replica status: {}", instance.status))
      })
    })
    .await?;
    Ok(
      Outcome::new(format!("`{id}` is an available read replica of {source}"))
        .output("instance", id)
        .output("source", instance.replica_of.unwrap_or_default())
        .output("endpoint", instance.endpoint.unwrap_or_default())
        .output("replicates", true),
    )
  }
}

// --- rds.replica_status: `within` and `source` --------------------------------------------------

/// `rds.replica_status` with its `source` guard and its `within` polling around the one-look
/// check ([`ReplicaStatus`]), whose lag logic it leaves as it is.
struct PolledReplicaStatus;

#[async_trait::async_trait]
impl Check for PolledReplicaStatus {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let within = args.opt_duration("within");
    let start = ctx.cloud.clock.now();
    poll_until(ctx, || async {
      // A refusal by the guard is final: a standalone instance does not become a replica of
      // the source by waiting.
      if let Some(accepted) = source_guard(ctx, args).await? {
        return Ok(Poll::Ready(accepted));
      }
      match ReplicaStatus.check(ctx, args).await {
        Ok(outcome) => Ok(Poll::Ready(outcome)),
        Err(err) => match within {
          Some(within) if ctx.cloud.clock.elapsed_since(start) < within => {
            Ok(Poll::Pending(err.message))
          }
          _ => Err(err),
        },
      }
    })
    .await
  }
}

/// With `source`: an instance that is not a read replica of it does not hold the writes made on
/// the source, so it is refused; with `--accept-data-loss` it is accepted as it is
/// (`Ok(Some(outcome))`). `Ok(None)`: no `source`, or the instance replicates it; the replica
/// check decides.
async fn source_guard(ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<Outcome>> {
  if args.opt_str("source").is_none() {
    return Ok(None);
  }
  let region = args.str("region")?;
  let source = SourceRef::from_args(args, region)?;
  let instance = describe(ctx, region, args.str("instance")?).await?;
  if replicates(&instance, &source) {
    return Ok(None);
  }
  let current = describe_instance(&instance);
  if ctx.accept_data_loss {
    let mut outcome = Outcome::new(format!(
      "{current}: not a read replica of {source}, so without the writes made there \
       (accepted: --accept-data-loss)"
    ))
    .output("status", &instance.status)
    .output("source", instance.replica_of.unwrap_or_default())
    .output("lag_seconds", "");
    // What it lacks cannot be measured: the RPO achieved is unknown, never met.
    outcome.data_loss = Some(DataLoss::Unknown(format!(
      "`{}` does not replicate {source}: the writes made there are not on it",
      instance.id
    )));
    return Ok(Some(outcome));
  }
  Err(ActionError::failed(format!(
    "`{}` is not a read replica of {source} ({current}): it does not hold the writes made on \
     {source}; refusing (pass --accept-data-loss to go on without them)",
    instance.id
  )))
}

/// The tags drctl puts on an instance it creates: which run and step made it.
fn run_tags(ctx: &Ctx<'_>) -> BTreeMap<String, String> {
  BTreeMap::from([
    ("drctl:run-id".to_string(), ctx.run_id.to_string()),
    ("drctl:step".to_string(), ctx.step_id.to_string()),
  ])
}

#[cfg(test)]
mod tests {
  use std::sync::Arc;

  use super::*;
  use crate::cloud::sim::{Sim, SimOptions};

  const MIN: u64 = 60;

  /// The built-in world at scale 1, following paused tokio time.
  fn world(dir: &std::path::Path) -> Arc<Sim> {
    let sim = Sim::open(&SimOptions {
      world: None,
      time_scale: Some(1.0),
      dir: dir.join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    sim
  }

  fn args(json: serde_json::Value, def: &ActionDef) -> Args {
    crate::actions::bind(def.spec, json.as_object().unwrap()).unwrap()
  }

  fn effect(def: &ActionDef) -> &'static dyn Effect {
    match def.behaviour {
      Behaviour::Effect(effect) => effect,
      Behaviour::Check(_) => unreachable!("{} is an effect", def.spec.name),
    }
  }

  fn check(def: &ActionDef) -> &'static dyn Check {
    match def.behaviour {
      Behaviour::Check(check) => check,
      Behaviour::Effect(_) => unreachable!("{} is a check", def.spec.name),
    }
  }

  fn home_replica() -> serde_json::Value {
    serde_json::json!({
      "region": "us-west-2",
      "instance": "app-db-second",
      "source": "arn:aws:rds:us-east-1:123456789012:db:app-db",
    })
  }

  #[test]
  fn sources_are_read_from_an_arn_or_an_identifier_and_a_region() {
    let arn = args(home_replica(), &CREATE_REPLICA);
    let source = SourceRef::from_args(&arn, "us-west-2").unwrap();
    assert_eq!(source.region, "us-east-1");
    assert_eq!(source.id, "app-db");
    assert!(source.is_named_by("arn:aws:rds:us-east-1:123456789012:db:app-db", "us-west-2"));
    assert!(!source.is_named_by("arn:aws:rds:us-west-2:123456789012:db:app-db", "us-west-2"));
    assert!(
      !source.is_named_by("app-db", "us-west-2"),
      "an id names its own region"
    );
    assert!(source.is_named_by("app-db", "us-east-1"));
    let by_id = args(
      serde_json::json!({"region": "us-east-1", "instance": "x", "source": "app-db-replica", "source_region": "us-west-2"}),
      &CREATE_REPLICA,
    );
    let source = SourceRef::from_args(&by_id, "us-east-1").unwrap();
    assert_eq!(
      (source.region.as_str(), source.id.as_str()),
      ("us-west-2", "app-db-replica")
    );
    let clash = args(
      serde_json::json!({"region": "us-east-1", "instance": "x", "source": "arn:aws:rds:us-east-1:1:db:a", "source_region": "us-west-2"}),
      &CREATE_REPLICA,
    );
    let err = SourceRef::from_args(&clash, "us-east-1").unwrap_err();
    assert!(err.message.contains("names us-east-1"), "{err}");
    let bad = args(
      serde_json::json!({"region": "us-east-1", "instance": "x", "source": "arn:aws:rds:us-east-1:1:cluster:a"}),
      &CREATE_REPLICA,
    );
    let err = SourceRef::from_args(&bad, "us-east-1").unwrap_err();
    assert!(err.message.contains("not an RDS DB instance ARN"), "{err}");
  }

  #[tokio::test(start_paused = true)]
  async fn create_replica_creates_once_waits_until_available_and_is_then_done() {
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(&cloud, "run-1", "create-home-replica", &progress, cancel);
    let args = args(home_replica(), &CREATE_REPLICA);
    let create = effect(&CREATE_REPLICA);

    let before = create.observe(&ctx, &args).await.unwrap();
    assert_eq!(before.state, Observed::Absent, "{before:?}");
    assert!(
      before.current.contains("app-db: available, standalone"),
      "{before:?}"
    );
    create.apply(&ctx, &args).await.unwrap();
    let during = create.observe(&ctx, &args).await.unwrap();
    assert_eq!(during.state, Observed::InProgress, "{during:?}");
    assert!(during.current.contains("creating"), "{during:?}");
    let lag = cloud
      .rds
      .replica_lag("us-west-2", "app-db-second")
      .await
      .unwrap();
    assert_eq!(lag.measured(), None, "no datapoint while creating: {lag:?}");

    let started = tokio::time::Instant::now();
    let outcome = create.verify(&ctx, &args, None).await.unwrap();
    let took = started.elapsed();
    assert!(
      took >= Duration::from_secs(15 * MIN) && took < Duration::from_secs(16 * MIN),
      "{took:?}"
    );
    assert_eq!(
      outcome.outputs["source"],
      "arn:aws:rds:us-east-1:123456789012:db:app-db"
    );
    assert!(!outcome.outputs["endpoint"].is_empty());
    let after = create.observe(&ctx, &args).await.unwrap();
    assert_eq!(after.state, Observed::Done, "{after:?}");
    let ops: Vec<String> = sim
      .operation_log()
      .into_iter()
      .map(|op| op.operation)
      .collect();
    assert_eq!(ops, [ops::rds::CREATE_DB_INSTANCE_READ_REPLICA.name]);

    // Its lag starts at the creation's 15 minutes and falls to the steady second over the
    // 5-minute catch-up.
    let lag = || async {
      cloud
        .rds
        .replica_lag("us-west-2", "app-db-second")
        .await
        .unwrap()
        .measured()
        .expect("a measured lag once available")
    };
    assert!(
      lag().await > Duration::from_secs(14 * MIN),
      "{:?}",
      lag().await
    );
    cloud.clock.sleep(Duration::from_secs(150)).await;
    let halfway = lag().await;
    assert!(
      halfway > Duration::from_secs(6 * MIN) && halfway < Duration::from_secs(8 * MIN),
      "{halfway:?}"
    );
    cloud.clock.sleep(Duration::from_secs(3 * MIN)).await;
    assert_eq!(lag().await, Duration::from_secs(1));
    // Writes stop in the source's region (its service scaled to 0): the lag drains to zero.
    cloud
      .ecs
      .update_desired_count("us-east-1", "app-primary", "api", 0)
      .await
      .unwrap();
    cloud.clock.sleep(Duration::from_secs(MIN)).await;
    assert_eq!(lag().await, Duration::ZERO);
  }

  #[tokio::test(start_paused = true)]
  async fn create_replica_refuses_an_instance_that_is_not_a_replica_of_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(&cloud, "run-1", "create-home-replica", &progress, cancel);
    // `app-db` exists in us-east-1 as a standalone writer: not a replica of app-db-replica.
    let args = args(
      serde_json::json!({"region": "us-east-1", "instance": "app-db", "source": "app-db-replica", "source_region": "us-west-2"}),
      &CREATE_REPLICA,
    );
    let err = effect(&CREATE_REPLICA)
      .observe(&ctx, &args)
      .await
      .unwrap_err();
    assert!(!err.retryable);
    assert_eq!(
      err.message,
      "`app-db` already exists in us-east-1 and is not a read replica of `app-db-replica` in \
       us-west-2 (app-db: available, standalone): it does not hold the source's data; refusing \
       to take it for the replica (choose another identifier, or remove it first)"
    );
    assert!(sim.operation_log().is_empty());
  }

  #[tokio::test(start_paused = true)]
  async fn replica_status_with_source_refuses_another_database_unless_data_loss_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(
      &cloud,
      "run-1",
      "home-db-holds-the-writes",
      &progress,
      cancel.clone(),
    );
    let status = check(&REPLICA_STATUS);
    let standalone = args(
      serde_json::json!({"region": "us-east-1", "instance": "app-db", "source": "app-db-replica", "source_region": "us-west-2", "within": "10m"}),
      &REPLICA_STATUS,
    );
    let started = tokio::time::Instant::now();
    let err = status.check(&ctx, &standalone).await.unwrap_err();
    assert!(
      started.elapsed() < Duration::from_secs(MIN),
      "a refusal is not waited on"
    );
    assert!(
      err
        .message
        .contains("does not hold the writes made on `app-db-replica` in us-west-2"),
      "{err}"
    );
    assert!(err.message.contains("--accept-data-loss"), "{err}");
    let accepting = Ctx {
      accept_data_loss: true,
      ..Ctx::new(
        &cloud,
        "run-1",
        "home-db-holds-the-writes",
        &progress,
        cancel,
      )
    };
    let outcome = status.check(&accepting, &standalone).await.unwrap();
    assert!(
      outcome.summary.contains("accepted: --accept-data-loss"),
      "{outcome:?}"
    );
    // The real replica of the source passes.
    let replica = args(
      serde_json::json!({"region": "us-west-2", "instance": "app-db-replica", "source": "app-db", "source_region": "us-east-1", "max_lag": "5m"}),
      &REPLICA_STATUS,
    );
    let outcome = status.check(&ctx, &replica).await.unwrap();
    assert_eq!(outcome.outputs["lag_seconds"], "4");
  }

  /// With the writer's region down the secondary's RPO lag is unknown, and AWS refuses a
  /// switchover: the action used to send one anyway (no `AllowDataLoss`), so a failover from a
  /// dead region could never go through. It fails over with `AllowDataLoss`, and only with
  /// `--accept-data-loss`.
  #[tokio::test(start_paused = true)]
  async fn a_global_failover_from_a_dead_region_allows_data_loss_only_when_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("world.yaml");
    std::fs::write(
      &file,
      crate::cloud::sim::BUILTIN_WORLD.replace("outages: []", "outages: [us-east-1]"),
    )
    .unwrap();
    let sim = Sim::open(&SimOptions {
      world: Some(file),
      time_scale: Some(1.0),
      dir: dir.path().join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let failover = effect(&FAILOVER_GLOBAL_CLUSTER);
    let target = "arn:aws:rds:us-west-2:123456789012:cluster:app-aurora-usw2";
    let step = args(
      serde_json::json!({"global_cluster": "app-global", "target_cluster_arn": target}),
      &FAILOVER_GLOBAL_CLUSTER,
    );
    tokio::time::advance(Duration::from_secs(5 * MIN)).await;
    let ctx = Ctx::new(&cloud, "run-1", "failover-db", &progress, cancel.clone());
    let err = failover.apply(&ctx, &step).await.unwrap_err();
    assert!(err.message.contains("AllowDataLoss"), "{err}");
    assert!(err.message.contains("--accept-data-loss"), "{err}");
    assert!(sim.operation_log().is_empty(), "{:?}", sim.operation_log());
    let accepting = Ctx {
      accept_data_loss: true,
      ..Ctx::new(&cloud, "run-1", "failover-db", &progress, cancel)
    };
    failover.apply(&accepting, &step).await.unwrap();
    let log = sim.operation_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].detail["allow_data_loss"], true);
    failover.verify(&accepting, &step, None).await.unwrap();
  }

  #[tokio::test(start_paused = true)]
  async fn replica_status_within_waits_until_the_new_replica_has_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(&cloud, "run-1", "wait", &progress, cancel);
    let create = effect(&CREATE_REPLICA);
    let created = args(home_replica(), &CREATE_REPLICA);
    create.apply(&ctx, &created).await.unwrap();
    let caught_up = args(
      serde_json::json!({"region": "us-west-2", "instance": "app-db-second", "source": "arn:aws:rds:us-east-1:123456789012:db:app-db", "max_lag": "30s", "within": "1h"}),
      &REPLICA_STATUS,
    );
    let started = tokio::time::Instant::now();
    let outcome = check(&REPLICA_STATUS)
      .check(&ctx, &caught_up)
      .await
      .unwrap();
    let took = started.elapsed();
    // 15 minutes creating, then the lag falls below 30 s a little before the 5-minute catch-up
    // ends.
    assert!(
      took > Duration::from_secs(19 * MIN) && took < Duration::from_secs(21 * MIN),
      "{took:?}"
    );
    assert!(
      outcome.outputs["lag_seconds"].parse::<u64>().unwrap() <= 30,
      "{outcome:?}"
    );
    // Without `within` it is one look: a replica still creating fails at once.
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let ctx = Ctx::new(&cloud, "run-1", "wait", &progress, cancel);
    create.apply(&ctx, &created).await.unwrap();
    let once = args(
      serde_json::json!({"region": "us-west-2", "instance": "app-db-second", "max_lag": "30s"}),
      &REPLICA_STATUS,
    );
    assert!(check(&REPLICA_STATUS).check(&ctx, &once).await.is_err());
  }
}

// --- rds.retire_instance ----------------------------------------------------------------------

/// The tag that marks an instance as a retired writer (a region fence): its value says which
/// run retired it and when. drctl refuses to treat a retired instance as a writer.
pub const RETIRED_TAG: &str = "drctl:retired";

pub const RETIRE_INSTANCE: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "rds.retire_instance",
    mutating: true,
    doc: "Mark an instance as a retired writer (tag drctl:retired with the run id and time), so \
          drctl refuses it as a writer (rds.replica_status role: standalone, rds.promote_replica) \
          unless --accept-data-loss. Fences the old primary after a failover; already retired is \
          success.",
    fields: &[REGION, INSTANCE],
    calls: &[
      Call::to(&ops::rds::LIST_TAGS_FOR_RESOURCE, "region"),
      Call::to(&ops::rds::ADD_TAGS_TO_RESOURCE, "region"),
    ],
    outputs: &["retired"],
  },
  behaviour: Behaviour::Effect(&RetireInstance),
};

struct RetireInstance;

/// The instance's tags; an instance that does not exist is an error.
async fn instance_tags(
  ctx: &Ctx<'_>,
  region: &str,
  id: &str,
) -> ActionResult<BTreeMap<String, String>> {
  ctx
    .cloud
    .rds
    .list_instance_tags(region, id)
    .await?
    .ok_or_else(|| ActionError::failed(format!("DB instance `{id}` does not exist in {region}")))
}

#[async_trait::async_trait]
impl Effect for RetireInstance {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let id = args.str("instance")?;
    let tags = instance_tags(ctx, args.str("region")?, id).await?;
    Ok(match tags.get(RETIRED_TAG) {
      Some(retired) => Observation::new(
        Observed::Done,
        format!("`{id}` retired ({retired})"),
        "none: already retired",
      ),
      None => Observation::new(
        Observed::Absent,
        format!("`{id}` is not retired"),
        format!("tag `{id}` {RETIRED_TAG}, so drctl no longer treats it as a writer"),
      ),
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let value = format!("{} {}", ctx.run_id, Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
    let tags = BTreeMap::from([(RETIRED_TAG.to_string(), value)]);
    ctx
      .cloud
      .rds
      .add_instance_tags(args.str("region")?, args.str("instance")?, &tags)
      .await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let region = args.str("region")?;
    let id = args.str("instance")?;
    let retired = poll_until(ctx, || async {
      let tags = instance_tags(ctx, region, id).await?;
      Ok(match tags.get(RETIRED_TAG) {
        Some(retired) => Poll::Ready(retired.clone()),
        None => Poll::Pending(format!("`{id}` not yet tagged {RETIRED_TAG}")),
      })
    })
    .await?;
    Ok(Outcome::new(format!("`{id}` retired ({retired})")).output("retired", retired))
  }
}

/// Refuse a retired instance (see [`RETIRED_TAG`]) where it would be used as a writer, unless
/// the operator accepted losing data: the writes taken since it was retired are not on it.
async fn refuse_retired(ctx: &Ctx<'_>, instance: &DbInstance, use_as: &str) -> ActionResult<()> {
  let tags = ctx
    .cloud
    .rds
    .list_instance_tags(&instance.region, &instance.id)
    .await?
    .unwrap_or_default();
  match tags.get(RETIRED_TAG) {
    Some(retired) if !ctx.accept_data_loss => Err(ActionError::failed(format!(
      "`{}` was retired as a writer ({RETIRED_TAG}: {retired}): the writes made since it was \
       fenced are not on it; refusing to {use_as} (pass --accept-data-loss to use it anyway)",
      instance.id
    ))),
    _ => Ok(()),
  }
}

#[cfg(test)]
mod retire_tests {
  use super::*;
  use crate::cloud::sim::{Sim, SimOptions};

  fn args(pairs: serde_json::Value) -> Args {
    super::super::bind(RETIRE_INSTANCE.spec, pairs.as_object().unwrap()).unwrap()
  }

  /// `rds.retire_instance` tags the old writer once (observe, apply, verify; a second run
  /// observes it done), and a retired instance is then refused as a writer unless the operator
  /// accepts the data loss.
  #[tokio::test(start_paused = true)]
  async fn a_retired_writer_is_tagged_once_and_refused_as_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::open(&SimOptions {
      world: None,
      time_scale: None,
      dir: dir.path().join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(
      &cloud,
      "run-7",
      "fence-source-db",
      &progress,
      cancel.clone(),
    );
    let retire = args(serde_json::json!({"region": "us-east-1", "instance": "app-db"}));
    let Behaviour::Effect(effect) = RETIRE_INSTANCE.behaviour else {
      panic!("retire_instance is an effect");
    };
    assert_eq!(
      effect.observe(&ctx, &retire).await.unwrap().state,
      Observed::Absent
    );
    effect.apply(&ctx, &retire).await.unwrap();
    let outcome = effect.verify(&ctx, &retire, None).await.unwrap();
    assert!(
      outcome.outputs["retired"].starts_with("run-7 "),
      "{outcome:?}"
    );
    assert_eq!(
      effect.observe(&ctx, &retire).await.unwrap().state,
      Observed::Done
    );
    let tagged = sim
      .operation_log()
      .iter()
      .filter(|op| op.operation == ops::rds::ADD_TAGS_TO_RESOURCE.name)
      .count();
    assert_eq!(tagged, 1);

    let standalone = super::super::bind(
      REPLICA_STATUS.spec,
      serde_json::json!({"region": "us-east-1", "instance": "app-db", "role": "standalone"})
        .as_object()
        .unwrap(),
    )
    .unwrap();
    let err = ReplicaStatus.check(&ctx, &standalone).await.unwrap_err();
    assert!(!err.retryable);
    assert!(
      err
        .message
        .starts_with("`app-db` was retired as a writer (drctl:retired: run-7 "),
      "{err}"
    );
    assert!(err.message.contains("--accept-data-loss"), "{err}");
    let accepted = Ctx {
      accept_data_loss: true,
      ..Ctx::new(&cloud, "run-8", "home-db-writable", &progress, cancel)
    };
    ReplicaStatus.check(&accepted, &standalone).await.unwrap();
  }
}
