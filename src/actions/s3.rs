//! S3: backup freshness, object integrity, replication.

use chrono::Utc;

use super::{human, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Outcome};
use crate::{
  cloud::S3Object,
  runbook::{ActionSpec, FieldKind, FieldSpec},
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
    mutating_operations: &[],
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
    mutating_operations: &[],
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
    mutating_operations: &[],
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
