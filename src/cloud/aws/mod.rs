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
//!
//! # Trust and proxies
//!
//! The SDK's default HTTPS client (hyper 1 + rustls) is kept: it trusts the OS store, or
//! exactly `SSL_CERT_FILE`/`SSL_CERT_DIR` when set, and — with `BehaviorVersion::latest()`, as
//! `config::load` asks — reads `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` from the
//! environment. Both match the HTTP provider's ([`super::http`]), so no client of its own is
//! configured here. [`connect`] checks the certificate variables first: the SDK's loader asserts
//! (in a debug build) that they yield a certificate, and otherwise trusts nothing.

// `CloudError` is the provider boundary's error type and every trait method returns it by value;
// the helpers here return the same type rather than a boxed one the callers would unbox.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{http::ReqwestHttp, CallerIdentity, Clock, Cloud, CloudError, Http};

pub(crate) mod cloudwatch;
pub(crate) mod config;
pub(crate) mod errors;
pub mod preflight;
pub mod sandbox;
pub mod state_store;
mod sts;

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
  // First: it checks that an `SSL_CERT_FILE` the SDK will also trust yields a certificate (the
  // SDK's own loader asserts that, in a debug build, while the configuration loads).
  let http = ReqwestHttp::new()?;
  let sdk = config::load(settings).await;
  Ok(cloud_from(&sdk, Arc::new(http), "aws"))
}

/// The providers over one loaded SDK configuration.
/// Who the credentials `settings` resolve to act as (STS `GetCallerIdentity`).
pub async fn caller_identity(settings: &AwsSettings) -> Result<CallerIdentity, CloudError> {
  sts::caller_identity(&config::load(settings).await).await
}

/// Each family's adapter (`cloud/<family>/aws.rs`, its `provider`) builds its own SDK clients
/// from the shared configuration.
fn cloud_from(sdk: &aws_config::SdkConfig, http: Arc<dyn Http>, backend: &str) -> Cloud {
  macro_rules! providers {
    ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
      Cloud {
        $($family: super::$family::aws::provider(sdk),)*
        http,
        clock: Clock::default(),
        backend: backend.to_owned(),
        fence: Default::default(),
      }
    };
  }
  super::with_families!(providers)
}

/// An SDK timestamp as a chrono one (`None` if out of chrono's range).
pub(crate) fn to_chrono(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
  DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}
