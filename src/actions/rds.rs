//! RDS: replica status and promotion, snapshots and restores, Aurora global failover.

use std::{collections::BTreeMap, time::Duration};

use chrono::Utc;

use super::{
  human, poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Effect,
  Observation, Observed, Outcome, Poll,
};
use crate::{
  cloud::{DbInstance, RestoreRequest, SnapshotKind},
  runbook::{ActionSpec, FieldKind, FieldSpec},
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

/// Check a replica's lag against the limit; `Ok(lag)` when within it or accepted.
async fn guarded_lag(
  ctx: &Ctx<'_>,
  args: &Args,
  instance: &DbInstance,
) -> ActionResult<Option<Duration>> {
  let lag = ctx
    .cloud
    .rds
    .replica_lag(&instance.region, &instance.id)
    .await?;
  let Some(limit) = lag_limit(ctx, args) else {
    return Ok(lag);
  };
  if ctx.accept_data_loss {
    return Ok(lag);
  }
  match lag {
    Some(lag) if lag > limit => Err(ActionError::failed(format!(
      "replica `{}` lags its source by {}, more than the RPO of {}: promoting it would lose more \
       data than the runbook allows; refusing (pass --accept-data-loss, or set \
       `accept_data_loss: true` on the step, to promote anyway)",
      instance.id,
      human(lag),
      human(limit)
    ))),
    Some(lag) => Ok(Some(lag)),
    None => Err(ActionError::retryable(format!(
      "no ReplicaLag datapoint for `{}` in the last minutes: cannot prove the lag is within the \
       RPO of {} (pass --accept-data-loss to promote without proof)",
      instance.id,
      human(limit)
    ))),
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
    let beyond = max_lag.is_some_and(|limit| lag.is_none_or(|lag| lag > limit));
    let accepted = if beyond && ctx.accept_data_loss {
      " (beyond max_lag: accepted, --accept-data-loss)"
    } else {
      ""
    };
    if let Some(limit) = max_lag.filter(|_| !ctx.accept_data_loss) {
      match lag {
        Some(lag) if lag > limit => {
          return Err(ActionError::failed(format!(
            "replica `{}` lags {} behind, more than {}",
            instance.id,
            human(lag),
            human(limit)
          )))
        }
        None => {
          return Err(ActionError::retryable(format!(
            "no ReplicaLag datapoint for `{}`: cannot prove the lag is within {}",
            instance.id,
            human(limit)
          )))
        }
        Some(_) => {}
      }
    }
    let lag_text = lag.map_or("unknown".to_string(), human);
    Ok(
      Outcome::new(format!(
        "{}, lag {lag_text}{accepted}",
        describe_instance(&instance)
      ))
      .output("status", &instance.status)
      .output("source", source)
      .output(
        "lag_seconds",
        lag.map_or(String::new(), |lag| lag.as_secs().to_string()),
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
    refuse_retired(ctx, &instance, "promote it").await?;
    let lag = guarded_lag(ctx, args, &instance).await?;
    let current = format!("{current}, lag {}", lag.map_or("unknown".into(), human));
    Ok(Observation {
      data_loss: lag,
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
      "Fail an Aurora global database over to a secondary cluster and wait until it is the writer.",
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
    ],
    mutating_operations: &["FailoverGlobalCluster"],
    outputs: &["writer"],
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
      Observation::new(Observed::Absent, current, change)
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
    mutating_operations: &["AddTagsToResource"],
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
      .filter(|op| op.operation == "AddTagsToResource")
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
