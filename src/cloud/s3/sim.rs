//! Simulated S3: read-only buckets whose objects were written `age` before the world was
//! created, and the `ReplicationLatency` metric of their replication rules.

use std::collections::BTreeMap;

use crate::cloud::ops;
use crate::cloud::sim::{
  state::{Model, Reject},
  world::{ReplicationSpec, S3Spec},
  SimCloud,
};
use crate::cloud::{
  CloudResult, ErrorKind, LagDatapoint, ReplicaLag, S3Object, S3ReplicationRule, S3,
};

#[derive(Debug, Clone)]
struct Bucket {
  region: String,
  objects: Vec<(crate::cloud::sim::world::ObjectSpec, String)>,
  replication: Option<ReplicationSpec>,
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
          replication: bucket.replication.clone(),
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

impl S3State {
  /// `ReplicationLatency` of `rule` as CloudWatch in `region` holds it, and the modelled now it
  /// is read at: published in the destination bucket's region, for a rule of the world whose
  /// names all match; one datapoint a period holding the rule's latency while the source
  /// bucket's region is up, none from the world's creation on while it is in outage (S3 in the
  /// failed region stops replicating and publishing). Nothing for any other rule.
  fn replication_datapoints(
    &self,
    model: &Model,
    now: chrono::DateTime<chrono::Utc>,
    region: &str,
    rule: &S3ReplicationRule,
    source_down: impl Fn(&str) -> bool,
  ) -> (Vec<LagDatapoint>, chrono::DateTime<chrono::Utc>) {
    let source = self.buckets.get(&rule.source_bucket);
    let spec = source
      .and_then(|bucket| bucket.replication.as_ref())
      .filter(|spec| {
        spec.rule_id == rule.rule_id
          && spec.destination == rule.destination_bucket
          && self
            .buckets
            .get(&spec.destination)
            .is_some_and(|destination| destination.region == region)
      });
    let down = source.is_some_and(|bucket| source_down(&bucket.region));
    let (points, modelled_now) = crate::cloud::rds::sim::modelled_datapoints(
      model,
      now,
      spec.map(|spec| spec.latency.0),
      false,
    );
    let points = points
      .into_iter()
      .filter(|point| !down || point.at < model.created_at)
      .collect();
    (points, modelled_now)
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
      .read(&ops::s3::LIST_OBJECTS_V2, Some(region), |state, _now| {
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
      .read(&ops::s3::HEAD_OBJECT, Some(region), |state, _now| {
        Ok(
          state
            .s3
            .objects(&state.model, region, bucket)?
            .find(|object| object.key == key),
        )
      })
      .await
  }

  async fn get_replication_latency(
    &self,
    region: &str,
    rule: &S3ReplicationRule,
  ) -> CloudResult<ReplicaLag> {
    self
      .sim
      .read(
        &ops::cloudwatch::GET_METRIC_STATISTICS,
        Some(region),
        |state, now| {
          let (points, modelled_now) =
            state
              .s3
              .replication_datapoints(&state.model, now, region, rule, |source| {
                state.in_outage(source, now)
              });
          Ok(ReplicaLag::from_datapoints(&points, modelled_now))
        },
      )
      .await
  }
}

/// The family's part of the world spec.
pub(crate) type Spec = crate::cloud::sim::world::S3Spec;

/// The family's part of the simulated world.
pub(crate) type State = S3State;

impl crate::cloud::sim::state::FamilyState for S3State {
  type Spec = Spec;

  fn new(spec: &crate::cloud::sim::world::WorldSpec, _model: &Model) -> Self {
    S3State::new(&spec.s3)
  }
}
