//! RDS: replica status and promotion, snapshots and restores, Aurora global failover.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;

use super::{
  human, poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Effect,
  Observation, Observed, Outcome, Poll,
};
use crate::{
  cloud::{DbInstance, ReplicaLag, RestoreRequest, SnapshotKind},
  runbook::{ActionSpec, FieldKind, FieldSpec},
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
fn data_loss(lag: &ReplicaLag) -> DataLoss {
  match lag {
    ReplicaLag::Measured(measurement) => DataLoss::Bounded(measurement.lag),
    ReplicaLag::Unknown { .. } => DataLoss::Unknown(lag.to_string()),
  }
}

/// Why an unknown lag stops the step: the lag metric's words, and the way out.
fn unknown_lag_error(id: &str, lag: &ReplicaLag, limit: Duration) -> ActionError {
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
    ],
    mutating_operations: &[],
    outputs: &["status", "source", "lag_seconds"],
  },
  behaviour: Behaviour::Check(&ReplicaStatus),
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
    mutating_operations: &["PromoteReadReplica"],
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
    let region = args.str("region")?;
    let id = args.str("instance")?;
    let instance = poll_until(ctx, || async {
      let instance = describe(ctx, region, id).await?;
      Ok(if instance.is_standalone_available() {
        Poll::Ready(instance)
      } else {
        Poll::Pending(format!(
          "replica status: {}{}",
          instance.status,
          if instance.replica_of.is_some() {
            ", still a replica"
          } else {
            ""
          }
        ))
      })
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
    mutating_operations: &[],
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
    mutating_operations: &["RestoreDBInstanceFromDBSnapshot"],
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
      tags: BTreeMap::from([
        ("drctl:run-id".to_string(), ctx.run_id.to_string()),
        ("drctl:step".to_string(), ctx.step_id.to_string()),
      ]),
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
    let region = args.str("region")?;
    let id = args.str("instance")?;
    let instance = poll_until(ctx, || async {
      let instance = describe(ctx, region, id).await?;
      Ok(if instance.status == "available" {
        Poll::Ready(instance)
      } else {
        Poll::Pending(format!("restored instance status: {}", instance.status))
      })
    })
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
    mutating_operations: &["DeleteDBInstance"],
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
          runbook's RPO) or unknown.",
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
    mutating_operations: &["FailoverGlobalCluster"],
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
    ctx
      .cloud
      .rds
      .failover_global_cluster(args.str("global_cluster")?, args.str("target_cluster_arn")?)
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
