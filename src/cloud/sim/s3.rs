//! Simulated S3: read-only buckets whose objects were written `age` before the world was
//! created.

use std::collections::BTreeMap;

use super::{
  state::{Model, Reject},
  world::S3Spec,
  SimCloud,
};
use crate::cloud::{CloudResult, ErrorKind, S3Object, S3};

#[derive(Debug, Clone)]
struct Bucket {
  region: String,
  objects: Vec<(super::world::ObjectSpec, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct S3State {
  buckets: BTreeMap<String, Bucket>,
}

impl S3State {
  pub fn new(spec: &S3Spec) -> S3State {
    let buckets = spec
      .buckets
      .iter()
      .map(|bucket| {
        let objects = bucket
          .objects
          .iter()
          .map(|object| {
            // A stable fake ETag: the same object always reports the same one.
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(object.key.as_bytes());
            hasher.update(&object.size.to_le_bytes());
            if let Some(sha) = &object.sha256 {
              hasher.update(sha.as_bytes());
            }
            (
              object.clone(),
              format!("\"{:08x}{:024x}\"", hasher.finalize(), object.size),
            )
          })
          .collect();
        let value = Bucket {
          region: bucket.region.clone(),
          objects,
        };
        (bucket.name.clone(), value)
      })
      .collect();
    S3State { buckets }
  }

  fn bucket(&self, region: &str, name: &str) -> Result<&Bucket, Reject> {
    let bucket = self.buckets.get(name).ok_or_else(|| {
      Reject::not_found(
        "NoSuchBucket",
        format!("The specified bucket does not exist: {name}"),
      )
    })?;
    if bucket.region != region {
      return Err(Reject::new(
        ErrorKind::Client,
        "PermanentRedirect",
        301,
        format!(
          "The bucket {name} is in {}; address it through that region's endpoint.",
          bucket.region
        ),
      ));
    }
    Ok(bucket)
  }

  fn objects<'a>(
    &'a self,
    model: &'a Model,
    region: &str,
    name: &'a str,
  ) -> Result<impl Iterator<Item = S3Object> + 'a, Reject> {
    let bucket = self.bucket(region, name)?;
    Ok(bucket.objects.iter().map(move |(object, etag)| S3Object {
      bucket: name.to_string(),
      key: object.key.clone(),
      size: object.size,
      last_modified: model.before_creation(object.age.0),
      etag: Some(etag.clone()),
      checksum_sha256: object.sha256.clone(),
      replication_status: object.replication_status.clone(),
    }))
  }
}

#[async_trait::async_trait]
impl S3 for SimCloud {
  async fn list_objects(
    &self,
    region: &str,
    bucket: &str,
    prefix: &str,
  ) -> CloudResult<Vec<S3Object>> {
    self
      .sim
      .read("s3", "ListObjectsV2", Some(region), |state, _now| {
        let mut objects: Vec<S3Object> = state
          .s3
          .objects(&state.model, region, bucket)?
          .filter(|object| object.key.starts_with(prefix))
          .collect();
        // ListObjectsV2 returns keys in UTF-8 binary order.
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
      })
      .await
  }

  async fn head_object(
    &self,
    region: &str,
    bucket: &str,
    key: &str,
  ) -> CloudResult<Option<S3Object>> {
    self
      .sim
      .read("s3", "HeadObject", Some(region), |state, _now| {
        Ok(
          state
            .s3
            .objects(&state.model, region, bucket)?
            .find(|object| object.key == key),
        )
      })
      .await
  }
}
