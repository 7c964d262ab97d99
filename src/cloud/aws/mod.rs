//! The real-AWS provider: the cloud traits over the AWS SDK for Rust.
//!
//! Works against AWS and any AWS-compatible endpoint (moto for `--sandbox` and the tests):
//! credentials and region come the standard way (environment, profiles, SSO, container and
//! instance roles), `--profile`/`--region` override them, and `AWS_ENDPOINT_URL` /
//! `AWS_ENDPOINT_URL_<SERVICE>` redirect the clients. One SDK client per (service, region) is
//! built on first use and reused: a failover spans regions, so every call names its region.
//!
//! # Who retries what
//!
//! * **The SDK does not retry.** Every client is built with `RetryConfig::standard()` and one
//!   attempt. Throttling, 5xx and transport failures come back as a [`CloudError`] whose kind
//!   says it is retryable. The SDK's retry would apply the same rules to every operation; drctl
//!   needs different ones for reads and writes, and the same ones on the simulator.
//! * **drctl's client layer retries calls** ([`crate::cloud::limiter`], the rate-limit decorators
//!   every backend is wrapped in): a read on any retryable error, a mutating call only on
//!   `Throttling` (refused before it took effect), up to
//!   [`CALL_ATTEMPTS`](crate::cloud::limiter::CALL_ATTEMPTS) attempts with jittered backoff,
//!   each attempt taking its rate-limit token again.
//! * **The engine retries steps**, with the step's retry policy (attempts, backoff, max backoff),
//!   on [`CloudError::is_retryable`]: a call that used its attempts, or a mutating call that met a
//!   5xx or a transport failure (it may have taken effect), fails the attempt, and the next one
//!   observes the world before applying again. Only the two layers multiply: the SDK adds none.
//! * **Timeouts** bound every attempt: 3 s to connect, [`crate::cloud::ATTEMPT_TIMEOUT`] (20 s)
//!   for the whole attempt. A hung endpoint becomes a `Transport` error that can be retried,
//!   inside the step's own timeout.
//! * Waiting for an effect (`available`, `INSYNC`, running count) is the actions' `verify`
//!   loop, not a retry.

// `CloudError` is the provider boundary's error type and every trait method returns it by value;
// the helpers here return the same type rather than a boxed one the callers would unbox.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{http::ReqwestHttp, Clock, Cloud, CloudError, Http};

mod config;
mod ecs;
mod errors;
mod rds;
mod route53;
mod s3;
pub mod sandbox;
pub mod state_store;

pub use state_store::{StateStore, StoreError};

/// What the user chose on the command line; everything else comes from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
  /// `--profile`: a named profile from the shared config files.
  pub profile: Option<String>,
  /// `--region`: the default region (calls that name a region use theirs).
  pub region: Option<String>,
  /// An endpoint for every service (`--sandbox` points this at moto). `AWS_ENDPOINT_URL` does
  /// the same without it.
  pub endpoint_url: Option<String>,
}

/// Build the AWS-backed [`Cloud`]. No request is sent yet: credentials are resolved on the
/// first call, so a missing credential is reported by the first step that needs one.
pub async fn connect(settings: &AwsSettings) -> Result<Cloud, CloudError> {
  let sdk = config::load(settings).await;
  Ok(cloud_from(&sdk, Arc::new(ReqwestHttp::new()?), "aws"))
}

/// The providers over one loaded SDK configuration.
fn cloud_from(sdk: &aws_config::SdkConfig, http: Arc<dyn Http>, backend: &str) -> Cloud {
  Cloud {
    rds: Arc::new(rds::AwsRds::new(sdk)),
    ecs: Arc::new(ecs::AwsEcs::new(sdk)),
    route53: Arc::new(route53::AwsRoute53::new(sdk)),
    s3: Arc::new(s3::AwsS3::new(sdk)),
    http,
    clock: Clock::default(),
    backend: backend.to_owned(),
    fence: Default::default(),
  }
}

/// An SDK timestamp as a chrono one (`None` if out of chrono's range).
fn to_chrono(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
  DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}
