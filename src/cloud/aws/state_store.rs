//! A small object store over one S3 client for the `s3://` state backend: journals and lock
//! objects written with S3 conditional writes, so several operators and scheduler replicas
//! share one truth.
//!
//! * [`StateStore::put_if_absent`] is `PutObject` with `If-None-Match: *`: exactly one of two
//!   racing writers creates the object; the other gets [`StoreError::Conflict`].
//! * [`StateStore::put_if_match`] is `PutObject` with `If-Match: ETAG`: an overwrite that only
//!   lands if nobody wrote the object since it was read (compare-and-swap).
//!
//! S3 answers a lost race with `412 PreconditionFailed`, or `409 ConditionalRequestConflict`
//! when two conditional writes overlap in flight; both are a conflict.

use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;

use super::{
  config::endpoint_host,
  errors::{absent_if_not_found, cloud_error_at},
};
use crate::cloud::ops;
use crate::cloud::s3::aws as s3;
use crate::cloud::{CloudError, ErrorKind};

const SERVICE: &str = "s3";

/// Why a state store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
  /// The condition did not hold: the object exists (`put_if_absent`) or changed since it was
  /// read (`put_if_match`).
  #[error("the object was written by someone else in the meantime")]
  Conflict,
  #[error(transparent)]
  Cloud(#[from] CloudError),
}

/// Object store for the state backend, one bucket region.
#[derive(Clone, Debug)]
pub struct StateStore {
  client: aws_sdk_s3::Client,
  /// For error messages: the endpoint host and region the client talks to.
  host: String,
  region: String,
}

impl StateStore {
  /// A store talking to the bucket's `region`.
  pub fn new(sdk: &SdkConfig, region: &str) -> Self {
    Self {
      client: s3::client(sdk, region),
      host: endpoint_host(sdk, SERVICE, region),
      region: region.to_owned(),
    }
  }

  /// Load the shared configuration (as [`super::connect`] does) and build a store.
  pub async fn connect(settings: &super::AwsSettings, region: &str) -> Self {
    Self::new(&super::config::load(settings).await, region)
  }

  /// A store in the default region of `settings` (`--region`, `AWS_REGION`, the profile, or
  /// us-east-1): the `s3://` state backend names no region of its own.
  pub async fn connect_default(settings: &super::AwsSettings) -> Self {
    let sdk = super::config::load(settings).await;
    let region = super::config::default_region(&sdk);
    Self::new(&sdk, &region)
  }

  /// The object's bytes and ETag; `None` when it does not exist.
  pub async fn get(
    &self,
    bucket: &str,
    key: &str,
  ) -> Result<Option<(Vec<u8>, String)>, CloudError> {
    let result = self
      .client
      .get_object()
      .bucket(bucket)
      .key(key)
      .send()
      .await
      .map_err(|error| cloud_error_at(&ops::s3::GET_OBJECT, &self.host, &self.region, error));
    let Some(output) = absent_if_not_found(result)? else {
      return Ok(None);
    };
    let etag = output.e_tag().unwrap_or_default().to_owned();
    let bytes = output.body.collect().await.map_err(|error| {
      CloudError::new(
        ErrorKind::Transport,
        ops::s3::GET_OBJECT.service,
        ops::s3::GET_OBJECT.name,
        error.to_string(),
      )
    })?;
    Ok(Some((bytes.into_bytes().to_vec(), etag)))
  }

  /// Create the object only if it does not exist. Returns the new ETag.
  pub async fn put_if_absent(
    &self,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
  ) -> Result<String, StoreError> {
    let result = self
      .client
      .put_object()
      .bucket(bucket)
      .key(key)
      .body(ByteStream::from(bytes))
      .if_none_match("*")
      .send()
      .await;
    conditional_result(self, result)
  }

  /// Overwrite the object only if its ETag is still `etag`. Returns the new ETag.
  pub async fn put_if_match(
    &self,
    bucket: &str,
    key: &str,
    bytes: Vec<u8>,
    etag: &str,
  ) -> Result<String, StoreError> {
    let result = self
      .client
      .put_object()
      .bucket(bucket)
      .key(key)
      .body(ByteStream::from(bytes))
      .if_match(etag)
      .send()
      .await;
    conditional_result(self, result)
  }

  /// Delete the object (deleting a missing object succeeds, as in S3).
  pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), CloudError> {
    self
      .client
      .delete_object()
      .bucket(bucket)
      .key(key)
      .send()
      .await
      .map_err(|error| cloud_error_at(&ops::s3::DELETE_OBJECT, &self.host, &self.region, error))?;
    Ok(())
  }

  /// Keys under `prefix`, in S3's (lexicographic) order, all pages.
  pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, CloudError> {
    let pages = self
      .client
      .list_objects_v2()
      .bucket(bucket)
      .prefix(prefix)
      .into_paginator()
      .send()
      .collect::<Result<Vec<_>, _>>()
      .await
      .map_err(|error| {
        cloud_error_at(&ops::s3::LIST_OBJECTS_V2, &self.host, &self.region, error)
      })?;
    Ok(
      pages
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|object| object.key().map(str::to_owned))
        .collect(),
    )
  }
}

type PutResult = Result<
  aws_sdk_s3::operation::put_object::PutObjectOutput,
  aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::put_object::PutObjectError>,
>;

fn conditional_result(store: &StateStore, result: PutResult) -> Result<String, StoreError> {
  match result {
    Ok(output) => Ok(output.e_tag().unwrap_or_default().to_owned()),
    Err(error) => {
      let error = cloud_error_at(&ops::s3::PUT_OBJECT, &store.host, &store.region, error);
      let lost_race = matches!(
        error.code.as_deref(),
        Some("PreconditionFailed" | "ConditionalRequestConflict")
      ) || matches!(error.http_status, Some(412 | 409));
      if lost_race {
        Err(StoreError::Conflict)
      } else {
        Err(StoreError::Cloud(error))
      }
    }
  }
}
