//! S3: backup freshness, object integrity, replication.

use chrono::Utc;

use super::{human, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Outcome};
use crate::{
  cloud::{LagUnknown, ReplicaLag, S3Object, S3ReplicationRule},
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
};

const REGION: FieldSpec =
  FieldSpec::required("region", FieldKind::String, "AWS region of the bucket");
const BUCKET: FieldSpec = FieldSpec::required("bucket", FieldKind::String, "Bucket name");
const KEY: FieldSpec = FieldSpec::required("key", FieldKind::String, "Object key");

async fn head(ctx: &Ctx<'_>, args: &Args) -> ActionResult<S3Object> {
  let (region, bucket, key) = (args.str("region")?, args.str("bucket")?, args.str("key")?);
  ctx
    .cloud
    .s3
    .head_object(region, bucket, key)
    .await?
    .ok_or_else(|| ActionError::failed(format!("s3://{bucket}/{key} does not exist")))
}

// --- s3.object_age ----------------------------------------------------------------------------

pub const OBJECT_AGE: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "s3.object_age",
    mutating: false,
    doc:
      "Find the newest object under a prefix and check its age against max_age (default: the RPO).",
    fields: &[
      REGION,
      BUCKET,
      FieldSpec::required("prefix", FieldKind::String, "Key prefix of the backups"),
      FieldSpec::optional(
        "max_age",
        FieldKind::Duration,
        "Fail when the newest object is older (default: objectives.rpo)",
      ),
      FieldSpec::optional(
        "min_size",
        FieldKind::Int,
        "Fail when the newest object is smaller (bytes)",
      ),
    ],
    calls: &[
      Call::to(&crate::cloud::ops::s3::LIST_OBJECTS_V2, "region"),
      Call::to(&crate::cloud::ops::s3::HEAD_OBJECT, "region"),
    ],
    outputs: &[
      "key",
      "age_seconds",
      "size",
      "last_modified",
      "checksum_sha256",
    ],
  },
  behaviour: Behaviour::Check(&ObjectAge),
};

struct ObjectAge;

#[async_trait::async_trait]
impl Check for ObjectAge {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let (region, bucket, prefix) = (
      args.str("region")?,
      args.str("bucket")?,
      args.str("prefix")?,
    );
    let newest = ctx
      .cloud
      .s3
      .list_objects(region, bucket, prefix)
      .await?
      .into_iter()
      .max_by_key(|object| object.last_modified)
      .ok_or_else(|| ActionError::failed(format!("no object under s3://{bucket}/{prefix}")))?;
    let age = (Utc::now() - newest.last_modified)
      .to_std()
      .unwrap_or_default();
    if let Some(limit) = args.opt_duration("max_age").or(ctx.rpo) {
      if age > limit {
        return Err(ActionError::failed(format!(
          "the newest object under s3://{bucket}/{prefix}, {}, is {} old: older than {}",
          newest.key,
          human(age),
          human(limit)
        )));
      }
    }
    if let Some(min) = args.opt_int("min_size") {
      if i128::from(newest.size) < i128::from(min) {
        return Err(ActionError::failed(format!(
          "s3://{bucket}/{} is {} bytes, smaller than {min}",
          newest.key, newest.size
        )));
      }
    }
    // Listing does not return checksums; ask for the newest object's.
    let checksum = ctx
      .cloud
      .s3
      .head_object(region, bucket, &newest.key)
      .await?
      .and_then(|object| object.checksum_sha256);
    Ok(
      Outcome::new(format!(
        "newest backup s3://{bucket}/{} is {} old, {} bytes",
        newest.key,
        human(age),
        newest.size
      ))
      .output("key", &newest.key)
      .output("age_seconds", age.as_secs())
      .output("size", newest.size)
      .output("last_modified", newest.last_modified.to_rfc3339())
      .output("checksum_sha256", checksum.unwrap_or_default())
      .data_loss(Some(age)),
    )
  }
}

// --- s3.verify_object -------------------------------------------------------------------------

pub const VERIFY_OBJECT: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "s3.verify_object",
    mutating: false,
    doc: "Check that an object exists, is at least min_size bytes and has the expected SHA-256 checksum.",
    fields: &[
      REGION,
      BUCKET,
      KEY,
      FieldSpec::optional("min_size", FieldKind::Int, "Minimum size in bytes"),
      FieldSpec::optional("sha256", FieldKind::String, "Expected base64 SHA-256 checksum"),
    ],
    calls: &[
      Call::to(&crate::cloud::ops::s3::HEAD_OBJECT, "region"),
    ],
    outputs: &["size", "checksum_sha256"],
  },
  behaviour: Behaviour::Check(&VerifyObject),
};

struct VerifyObject;

#[async_trait::async_trait]
impl Check for VerifyObject {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let object = head(ctx, args).await?;
    let name = format!("s3://{}/{}", object.bucket, object.key);
    if let Some(min) = args.opt_int("min_size") {
      if i128::from(object.size) < i128::from(min) {
        return Err(ActionError::failed(format!(
          "{name} is {} bytes, smaller than {min}",
          object.size
        )));
      }
    }
    if let Some(expected) = args.opt_str("sha256") {
      match &object.checksum_sha256 {
        Some(actual) if actual == expected => {}
        Some(actual) => {
          return Err(ActionError::failed(format!(
            "{name} has SHA-256 {actual}, expected {expected}"
          )))
        }
        None => {
          return Err(ActionError::failed(format!(
            "{name} has no SHA-256 checksum to compare (upload it with --checksum-algorithm SHA256)"
          )))
        }
      }
    }
    Ok(
      Outcome::new(format!("{name}: {} bytes, checksum ok", object.size))
        .output("size", object.size)
        .output(
          "checksum_sha256",
          object.checksum_sha256.unwrap_or_default(),
        ),
    )
  }
}

// --- s3.replication_status --------------------------------------------------------------------

pub const REPLICATION_STATUS: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "s3.replication_status",
    mutating: false,
    doc:
      "Check an object's replication status (COMPLETED on the source, REPLICA on the destination).",
    fields: &[
      REGION,
      BUCKET,
      KEY,
      FieldSpec::optional(
        "expect",
        FieldKind::Enum(&["COMPLETED", "REPLICA", "PENDING", "FAILED"]),
        "Expected status (default COMPLETED)",
      ),
    ],
    calls: &[Call::to(&crate::cloud::ops::s3::HEAD_OBJECT, "region")],
    outputs: &["status"],
  },
  behaviour: Behaviour::Check(&ReplicationStatus),
};

struct ReplicationStatus;

#[async_trait::async_trait]
impl Check for ReplicationStatus {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let object = head(ctx, args).await?;
    let expect = args.opt_str("expect").unwrap_or("COMPLETED");
    let status = object
      .replication_status
      .clone()
      .unwrap_or_else(|| "NONE".into());
    if status != expect {
      return Err(ActionError::failed(format!(
        "s3://{}/{} replication status is {status}, expected {expect}",
        object.bucket, object.key
      )));
    }
    Ok(
      Outcome::new(format!(
        "s3://{}/{} replication {status}",
        object.bucket, object.key
      ))
      .output("status", status),
    )
  }
}

// --- s3.replication_lag -----------------------------------------------------------------------

pub const REPLICATION_LAG: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "s3.replication_lag",
    mutating: false,
    doc: "Check how far a replication rule's destination bucket is behind its source (CloudWatch \
          AWS/S3 ReplicationLatency, on with S3 Replication Time Control or replication metrics) \
          against max_lag (default: the RPO); an unknown lag fails unless --accept-data-loss.",
    fields: &[
      FieldSpec::required(
        "region",
        FieldKind::String,
        "AWS region of the destination bucket (S3 publishes the rule's metrics there)",
      ),
      FieldSpec::required("source_bucket", FieldKind::String, "The replicated bucket"),
      FieldSpec::required(
        "destination_bucket",
        FieldKind::String,
        "The rule's destination bucket",
      ),
      FieldSpec::required("rule_id", FieldKind::String, "The replication rule's ID"),
      FieldSpec::optional(
        "max_lag",
        FieldKind::Duration,
        "Fail when the destination lags more than this (default: objectives.rpo)",
      ),
    ],
    calls: &[Call::to(
      &crate::cloud::ops::cloudwatch::GET_METRIC_STATISTICS,
      "region",
    )],
    outputs: &["lag_seconds"],
  },
  behaviour: Behaviour::Check(&ReplicationLag),
};

struct ReplicationLag;

#[async_trait::async_trait]
impl Check for ReplicationLag {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let region = args.str("region")?;
    let rule = S3ReplicationRule {
      source_bucket: args.str("source_bucket")?.to_owned(),
      destination_bucket: args.str("destination_bucket")?.to_owned(),
      rule_id: args.str("rule_id")?.to_owned(),
    };
    let name = format!(
      "s3://{} (replication rule `{}` of s3://{})",
      rule.destination_bucket, rule.rule_id, rule.source_bucket
    );
    let lag = ctx.cloud.s3.get_replication_latency(region, &rule).await?;
    let limit = args.opt_duration("max_lag").or(ctx.rpo);
    let accepted = match (limit, lag.measured()) {
      (Some(limit), Some(measured)) if measured > limit && !ctx.accept_data_loss => {
        return Err(ActionError::failed(format!(
          "{name} lags its source by {}, more than {}: objects written in that window are not \
           in the destination yet; refusing (pass --accept-data-loss, or set \
           `accept_data_loss: true` on the step, to go on anyway)",
          human(measured),
          human(limit)
        )))
      }
      (Some(limit), None) if !ctx.accept_data_loss => {
        let mut error = super::rds::unknown_lag_error(&name, &lag, limit);
        if matches!(
          lag,
          ReplicaLag::Unknown {
            reason: LagUnknown::NoDatapoint,
            last: None
          }
        ) {
          error.message.push_str(
            " (S3 publishes ReplicationLatency only for rules with replication metrics or \
             Replication Time Control turned on)",
          );
        }
        return Err(error);
      }
      (Some(limit), measured) if measured.is_none_or(|measured| measured > limit) => {
        " (accepted: --accept-data-loss)"
      }
      _ => "",
    };
    let mut outcome = Outcome::new(format!("{name}: lag {lag}{accepted}")).output(
      "lag_seconds",
      lag
        .measured()
        .map_or(String::new(), |lag| lag.as_secs().to_string()),
    );
    outcome.data_loss = Some(super::rds::data_loss(&lag));
    Ok(outcome)
  }
}

#[cfg(test)]
mod tests {
  use std::{sync::Arc, time::Duration};

  use super::*;
  use crate::{
    cloud::sim::{Sim, SimOptions, BUILTIN_WORLD},
    state::DataLoss,
  };

  /// A world at scale 1 following paused tokio time; `outages` replaces the built-in world's.
  fn world(dir: &std::path::Path, outages: &str) -> Arc<Sim> {
    let file = dir.join("world.yaml");
    std::fs::write(&file, BUILTIN_WORLD.replace("outages: []", outages)).unwrap();
    let sim = Sim::open(&SimOptions {
      world: Some(file),
      time_scale: Some(1.0),
      dir: dir.join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    sim
  }

  fn args_with(max_lag: &str) -> Args {
    let json = serde_json::json!({
      "region": "us-west-2",
      "source_bucket": "app-backups-use1",
      "destination_bucket": "app-backups-usw2",
      "rule_id": "backups",
      "max_lag": max_lag,
    });
    crate::actions::bind(REPLICATION_LAG.spec, json.as_object().unwrap()).unwrap()
  }

  fn args() -> Args {
    args_with("5m")
  }

  /// The S3 family had no replication lag at all: a failover's RPO said nothing about the
  /// objects written in the source region since the last replicated one. The rule's
  /// `ReplicationLatency` is read, bounds the data loss while the source is up, and is unknown
  /// (refused, or accepted and reported unknown) once the source region has failed.
  #[tokio::test(start_paused = true)]
  async fn replication_lag_bounds_the_rpo_and_is_unknown_when_the_source_region_is_down() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};

    let up = tempfile::tempdir().unwrap();
    let sim = world(up.path(), "outages: []");
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "s3-lag", &progress, cancel.clone());
    let outcome = ReplicationLag.check(&ctx, &args()).await.unwrap();
    assert_eq!(outcome.outputs["lag_seconds"], "30");
    assert_eq!(
      outcome.data_loss,
      Some(DataLoss::Bounded(Duration::from_secs(30)))
    );
    let err = ReplicationLag
      .check(&ctx, &args_with("10s"))
      .await
      .unwrap_err();
    assert!(err.message.contains("lags its source by 30s"), "{err}");

    let down = tempfile::tempdir().unwrap();
    let sim = world(down.path(), "outages: [us-east-1]");
    let cloud = sim.cloud();
    tokio::time::advance(Duration::from_secs(5 * 60)).await;
    let ctx = Ctx::new(&cloud, "run-2", "s3-lag", &progress, cancel.clone());
    let err = ReplicationLag.check(&ctx, &args()).await.unwrap_err();
    assert!(err.message.contains("is unknown: "), "{err}");
    assert!(err.message.contains("last measured lag 30s"), "{err}");
    assert!(err.message.contains("--accept-data-loss"), "{err}");
    let accepting = Ctx {
      accept_data_loss: true,
      ..Ctx::new(&cloud, "run-2", "s3-lag", &progress, cancel)
    };
    let outcome = ReplicationLag.check(&accepting, &args()).await.unwrap();
    assert!(
      matches!(&outcome.data_loss, Some(DataLoss::Unknown(basis)) if basis.contains("unknown")),
      "{outcome:?}"
    );
    assert_eq!(outcome.outputs["lag_seconds"], "");
  }
}
