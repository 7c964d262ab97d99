//! Loading the AWS configuration once, and one SDK client per (service, region), built lazily.

use std::{
  collections::HashMap,
  sync::{Mutex, PoisonError},
  time::Duration,
};

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, Region, SdkConfig};

use super::AwsSettings;
use crate::cloud::ATTEMPT_TIMEOUT;

/// Route 53 is a global service; its API lives in us-east-1.
pub(crate) const ROUTE53_REGION: &str = "us-east-1";
/// Used when neither `--region`, `AWS_REGION` nor the profile names one.
pub(crate) const FALLBACK_REGION: &str = "us-east-1";

/// A TCP/TLS connect that takes longer than this is a dead endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Load the shared configuration the standard way (environment, shared config and credentials
/// files, SSO, web identity, ECS container and EC2 instance roles), with `--profile`,
/// `--region` and an explicit endpoint layered on top. `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>` are read by `aws-config` itself and reach every client built
/// from the result.
pub(crate) async fn load(settings: &AwsSettings) -> SdkConfig {
  let mut loader = aws_config::defaults(BehaviorVersion::latest())
    // SDK retries off: drctl's client layer and the engine own retries (see the module doc of
    // `aws`). One attempt that takes longer than `ATTEMPT_TIMEOUT` is a hung endpoint: it
    // becomes a `Transport` error that may be retried.
    .retry_config(RetryConfig::standard().with_max_attempts(1))
    .timeout_config(
      TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build(),
    );
  if let Some(profile) = &settings.profile {
    loader = loader.profile_name(profile);
  }
  if let Some(region) = &settings.region {
    loader = loader.region(Region::new(region.clone()));
  }
  if let Some(endpoint) = &settings.endpoint_url {
    loader = loader.endpoint_url(endpoint);
  }
  loader.load().await
}

/// Whether S3 must use path-style addressing: a custom endpoint (moto, MinIO, a VPC endpoint
/// URL) usually cannot serve `bucket.host` virtual-hosted names.
pub(crate) fn s3_custom_endpoint(sdk: &SdkConfig) -> bool {
  sdk.endpoint_url().is_some()
    || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|value| !value.is_empty())
}

/// The region of `sdk`, or [`FALLBACK_REGION`].
pub(crate) fn default_region(sdk: &SdkConfig) -> String {
  sdk
    .region()
    .map(|region| region.as_ref().to_owned())
    .unwrap_or_else(|| FALLBACK_REGION.to_owned())
}

/// SDK clients of one service, one per region, built on first use. SDK clients are cheap
/// handles over shared state, so a clone is handed out.
pub(crate) struct RegionalClients<C> {
  sdk: SdkConfig,
  build: fn(&SdkConfig, &str) -> C,
  clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> RegionalClients<C> {
  pub(crate) fn new(sdk: SdkConfig, build: fn(&SdkConfig, &str) -> C) -> Self {
    Self {
      sdk,
      build,
      clients: Mutex::new(HashMap::new()),
    }
  }

  pub(crate) fn get(&self, region: &str) -> C {
    // A panic while holding this lock cannot leave the map half-updated (an insert either
    // happened or not), so a poisoned lock is still safe to use.
    let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
    clients
      .entry(region.to_owned())
      .or_insert_with(|| (self.build)(&self.sdk, region))
      .clone()
  }

  pub(crate) fn sdk(&self) -> &SdkConfig {
    &self.sdk
  }
}

/// The host (and port) a client of `service` in `region` sends to, for error messages:
/// `AWS_ENDPOINT_URL_<SERVICE>`, else the configured endpoint (`--sandbox`, `AWS_ENDPOINT_URL`),
/// else AWS's public name (`rds.us-west-2.amazonaws.com`; Route 53's is global).
pub(crate) fn endpoint_host(sdk: &SdkConfig, service: &str, region: &str) -> String {
  let variable = format!(
    "AWS_ENDPOINT_URL_{}",
    match service {
      "route53" => "ROUTE_53".to_owned(),
      other => other.to_ascii_uppercase(),
    }
  );
  let custom = std::env::var(variable)
    .ok()
    .filter(|value| !value.is_empty())
    .or_else(|| sdk.endpoint_url().map(str::to_owned));
  match custom {
    Some(url) => {
      let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
      rest.split('/').next().unwrap_or(rest).to_owned()
    }
    None => match service {
      "route53" => "route53.amazonaws.com".to_owned(),
      "cloudwatch" => format!("monitoring.{region}.amazonaws.com"),
      other => format!("{other}.{region}.amazonaws.com"),
    },
  }
}
