//! The provider boundary: one trait per AWS service family, domain structs in and out.
//!
//! Actions talk only to these traits, so every action runs unchanged on `sim` (the in-process
//! simulator) and on `aws` (the AWS SDK for Rust, against AWS or any compatible endpoint such as
//! moto). No SDK type crosses this boundary.
//!
//! # Contracts every provider keeps
//!
//! * Methods named `describe_*`, `get_*`, `list_*`, `head_*` and `replica_lag` are **read-only**:
//!   they never change the world, so `plan` and `--dry-run` may call them freely.
//! * Every other method **mutates**. Each is documented with its idempotency: calling it again
//!   once its effect is in place must not create a second effect (a second promotion, a second
//!   change batch that differs). Actions additionally `observe` before they `apply`, so a mutating
//!   call is only repeated after a crash between the call and its journalled outcome.
//! * Errors are [`CloudError`]: the service's error code, the HTTP status, the request id and
//!   whether a retry can help. A backend's provider makes **one attempt** per call, bounded by
//!   [`ATTEMPT_TIMEOUT`] (the SDK by its configuration, the simulator in modelled time), so a hung
//!   endpoint becomes a retryable `Transport` error on every backend alike.
//! * Retries happen in two layers, each with its own job (see [`limiter`] for the rules):
//!   **per call**, in the client layer every backend is wrapped in ([`Cloud::rate_limited`]): a
//!   read is retried on any retryable error, a mutating call only on `Throttling` (refused before
//!   it took effect), a few times with short jittered backoff; and **per step**, by the engine's
//!   retry policy, which re-observes the world before applying again. A call that exhausts its
//!   attempts returns its last error unchanged (code and request id), for the engine to decide.
//! * A mutating call that returns an error leaves the step's checkpoint at "intent": on resume
//!   the action observes the world again before deciding whether to apply.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::runbook::format_duration;

/// The service families, written once: every place that needs one thing per family (the
/// [`Cloud`] struct, [`Cloud::rate_limited`], the HTTP-only backend, the AWS and simulator
/// backends, the operation table's list) expands a macro over this list. An entry is the
/// family's module (`cloud/<family>/`), its provider trait and its limited decorator (both
/// declared in the module with [`service_family!`](family)).
macro_rules! with_families {
  ($callback:ident) => {
    $callback! {
      rds: Rds, LimitedRds;
      ecs: Ecs, LimitedEcs;
      route53: Route53, LimitedRoute53;
      s3: S3, LimitedS3;
      elbv2: Elbv2, LimitedElbv2;
      arc: RecoveryCluster, LimitedRecoveryCluster;
      cloudwatch: CloudWatch, LimitedCloudWatch;
      autoscaling: AutoScaling, LimitedAutoScaling;
    }
  };
}
pub(crate) use with_families;

pub mod arc;
pub mod autoscaling;
pub mod aws;
pub mod cloudwatch;
pub mod ecs;
pub mod elbv2;
mod family;
pub mod fence;
pub mod http;
pub mod limiter;
pub mod ops;
pub mod rds;
pub mod route53;
pub mod s3;
pub mod sim;
#[doc(hidden)]
pub mod wire;

pub use ecs::*;
pub use fence::{FenceReason, MutationFence};
pub use limiter::{LimitSetting, RateLimits};
pub use rds::*;
pub use route53::*;
pub use s3::*;

/// Result of a provider call.
pub type CloudResult<T> = Result<T, CloudError>;

/// How long one attempt of a provider call (send and read the whole answer) may take before it
/// counts as a hung endpoint and fails with a retryable `Transport` error. The SDK clients are
/// configured with it; the simulator applies it in modelled time, so that a hung call ends the
/// same way on every backend instead of waiting for the step's timeout.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// What kind of failure a provider call met; decides retryability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
  /// The service asked us to slow down (`Throttling`, `ThrottlingException`, `SlowDown`,
  /// `PriorRequestNotComplete`). Retryable.
  Throttling,
  /// The service failed (HTTP 5xx). Retryable.
  Server,
  /// The call did not complete in time, or the connection failed. Retryable.
  Transport,
  /// The resource does not exist.
  NotFound,
  /// The resource is in a state that does not allow the call (e.g. `InvalidDBInstanceState`).
  InvalidState,
  /// The request was rejected (validation, access denied, unknown parameter). Not retryable.
  Client,
  /// The call was refused before it was sent because this is a dry run.
  DryRun,
  /// The call was refused before it was sent because the run's [`MutationFence`] is closed
  /// (the lock was lost, the lease expired, or the journal cannot be written). Not retryable.
  Fenced,
}

/// Who a backend's credentials belong to: STS `GetCallerIdentity` on AWS and the sandbox, a
/// fixed simulated identity on the simulator. Recorded in the journal and shown in reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerIdentity {
  /// The 12-digit account id.
  pub account: String,
  /// The caller's ARN (`arn:aws:iam::123456789012:user/alice`, or an assumed role's session).
  pub arn: String,
}

/// A typed provider error: never flattened to a string before the retry policy has seen it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudError {
  pub kind: ErrorKind,
  /// Service family: `rds`, `ecs`, `route53`, `s3`, `cloudwatch`, `http`.
  pub service: String,
  /// The API operation, as AWS names it (`PromoteReadReplica`).
  pub operation: String,
  /// The service's error code (`DBInstanceNotFound`, `Throttling`), when it sent one.
  pub code: Option<String>,
  pub message: String,
  pub http_status: Option<u16>,
  pub request_id: Option<String>,
  /// The region whose endpoint answered (or failed to): `us-east-1` for Route 53's global API.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub region: Option<String>,
  /// The account the call acted in, when something said so (the caller's ARN in an
  /// `AccessDenied` message); never guessed.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub account: Option<String>,
}

impl CloudError {
  pub fn new(
    kind: ErrorKind,
    service: impl Into<String>,
    operation: impl Into<String>,
    message: impl Into<String>,
  ) -> Self {
    Self {
      kind,
      service: service.into(),
      operation: operation.into(),
      code: None,
      message: message.into(),
      http_status: None,
      request_id: None,
      region: None,
      account: None,
    }
  }

  pub fn with_code(mut self, code: impl Into<String>) -> Self {
    self.code = Some(code.into());
    self
  }

  pub fn with_status(mut self, status: u16) -> Self {
    self.http_status = Some(status);
    self
  }

  pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
    self.request_id = Some(request_id.into());
    self
  }

  /// Whether calling again later can succeed. Only throttling, 5xx and transport failures are.
  pub fn is_retryable(&self) -> bool {
    matches!(
      self.kind,
      ErrorKind::Throttling | ErrorKind::Server | ErrorKind::Transport
    )
  }

  pub fn with_region(mut self, region: impl Into<String>) -> Self {
    self.region = Some(region.into());
    self
  }

  pub fn with_account(mut self, account: impl Into<String>) -> Self {
    self.account = Some(account.into());
    self
  }
}

/// One line per error, whatever the service sent:
/// `rds PromoteReadReplica (us-west-2, account 123456789012): AccessDenied: User: ... is not
/// authorized to perform: rds:PromoteReadReplica ... (HTTP 403, request id 1a2b)`. The
/// parenthesis after the operation is there for calls made in a region (every AWS call);
/// the message is kept whole, its line breaks folded into spaces.
impl fmt::Display for CloudError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{} {}", self.service, self.operation)?;
    if let Some(region) = &self.region {
      match &self.account {
        Some(account) => write!(f, " ({region}, account {account})")?,
        None => write!(f, " ({region}, account unknown)")?,
      }
    }
    f.write_str(":")?;
    if let Some(code) = &self.code {
      write!(f, " {code}:")?;
    }
    let message = one_line(&self.message);
    if message.is_empty() {
      f.write_str(" no message")?;
    } else {
      write!(f, " {message}")?;
    }
    match (self.http_status, &self.request_id) {
      (Some(status), Some(id)) => write!(f, " (HTTP {status}, request id {id})"),
      (Some(status), None) => write!(f, " (HTTP {status})"),
      (None, Some(id)) => write!(f, " (request id {id})"),
      (None, None) => Ok(()),
    }
  }
}

/// `text` on one line: every run of whitespace that holds a line break becomes one space, and
/// nothing is cut.
pub fn one_line(text: &str) -> String {
  let mut folded = String::with_capacity(text.len());
  // `lines` splits at `\n` and `\r\n`; a lone `\r` would still move the cursor.
  let text = text.replace('\r', "\n");
  for (index, line) in text.trim().lines().enumerate() {
    let line = line.trim();
    if line.is_empty() {
      continue;
    }
    if index > 0 && !folded.is_empty() {
      folded.push(' ');
    }
    folded.push_str(line);
  }
  folded
}

impl std::error::Error for CloudError {}

// ---------------------------------------------------------------------------------------------
// Domain structs
// ---------------------------------------------------------------------------------------------

/// An HTTP request made by a probe or a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
  pub method: String,
  pub url: String,
  pub headers: BTreeMap<String, String>,
  pub body: Option<String>,
  #[serde(with = "duration_ms")]
  pub timeout: Duration,
  /// Which redirects the provider follows; the 3xx it does not follow is the response.
  #[serde(default)]
  pub redirects: Redirects,
  /// Read at most this many bytes of the response body; the rest is never read.
  #[serde(default = "default_max_body")]
  pub max_body: u64,
}

/// The body cap of a request that does not choose one: 1 MiB.
pub const DEFAULT_MAX_BODY: u64 = 1024 * 1024;

fn default_max_body() -> u64 {
  DEFAULT_MAX_BODY
}

/// Which redirects a request follows. Headers (an API key, a signature) and the body go with a
/// followed redirect, so a redirect to another host is never followed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redirects {
  /// None: a 3xx is the response (notifications always; checks by default).
  #[default]
  None,
  /// Only to the same origin (scheme, host and port), at most 10 in a row.
  SameOrigin,
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
  pub status: u16,
  /// The body, up to the request's `max_body` bytes (lossily decoded as UTF-8).
  pub body: String,
  #[serde(with = "duration_ms")]
  pub latency: Duration,
  /// Whether the body was longer than `max_body` and cut there.
  #[serde(default)]
  pub truncated: bool,
  /// The `Location` header of a 3xx that was not followed, resolved against the request URL.
  #[serde(default)]
  pub location: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Service traits
// ---------------------------------------------------------------------------------------------

/// HTTP: probes (read-only `GET`s) and notifications (`POST`s, which are side effects).
#[async_trait::async_trait]
pub trait Http: Send + Sync {
  /// Send a request. A non-2xx status is a response, not an error; errors are transport
  /// failures and timeouts (`ErrorKind::Transport`). A provider follows only the redirects
  /// `request.redirects` allows (a 3xx it does not follow is the response, with `location`),
  /// and reads at most `request.max_body` bytes of the body (`truncated` when it cut).
  async fn send(&self, request: &HttpRequest) -> CloudResult<HttpResponse>;
}

/// The `Cloud` struct: one provider field per family of [`with_families!`].
macro_rules! cloud_struct {
  ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
    /// The set of providers a run talks to: one per service family (the field is the family's
    /// module name, `cloud.rds`), and HTTP.
    #[derive(Clone)]
    pub struct Cloud {
      $(pub $family: Arc<dyn $family::$Trait>,)*
      pub http: Arc<dyn Http>,
      /// The backend's clock: waits and elapsed times run on it (the simulator speeds time up).
      pub clock: Clock,
      /// A short name for reports: `sim`, `aws`, `sandbox`.
      pub backend: String,
      /// The run's mutation fence: every mutating call checks it right before it leaves (the
      /// client layer of [`Cloud::rate_limited`] for provider calls, the engine for the rest).
      pub fence: MutationFence,
    }
  };
}

with_families!(cloud_struct);

impl fmt::Debug for Cloud {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("Cloud")
      .field("backend", &self.backend)
      .field("clock", &self.clock)
      .finish()
  }
}

/// The backend's time. Real AWS runs at scale 1; the simulator runs its modelled durations
/// `scale` times faster, and so must drctl's own timeouts, backoffs and RTO clock, so that a
/// 20-minute step timeout means the same thing against a 5-minute (modelled) promotion.
///
/// Built on tokio time, so tests can pause and advance it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
  scale: f64,
}

impl Default for Clock {
  fn default() -> Self {
    Self { scale: 1.0 }
  }
}

impl Clock {
  /// A clock running `scale` times faster than the wall (scale must be positive and finite;
  /// anything else is treated as 1).
  pub fn scaled(scale: f64) -> Self {
    if scale.is_finite() && scale > 0.0 {
      Self { scale }
    } else {
      Self { scale: 1.0 }
    }
  }

  pub fn scale(&self) -> f64 {
    self.scale
  }

  /// Wall time that a modelled duration takes (saturating at `Duration::MAX`).
  pub fn to_wall(&self, modelled: Duration) -> Duration {
    saturating_secs(modelled.as_secs_f64() / self.scale)
  }

  /// Modelled time that a wall duration represents (saturating at `Duration::MAX`).
  pub fn to_modelled(&self, wall: Duration) -> Duration {
    saturating_secs(wall.as_secs_f64() * self.scale)
  }

  /// Sleep for a modelled duration.
  pub async fn sleep(&self, modelled: Duration) {
    tokio::time::sleep(self.to_wall(modelled)).await;
  }

  /// Now, as a tokio instant (for measuring with [`Clock::elapsed_since`]).
  pub fn now(&self) -> tokio::time::Instant {
    tokio::time::Instant::now()
  }

  /// Modelled time elapsed since `start`.
  pub fn elapsed_since(&self, start: tokio::time::Instant) -> Duration {
    self.to_modelled(start.elapsed())
  }
}

/// `secs` seconds as a duration; beyond what a `Duration` holds, `Duration::MAX` (`Duration`'s
/// own float conversions panic there). `secs` is never negative or NaN: durations and scales are.
fn saturating_secs(secs: f64) -> Duration {
  Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// Serialize durations as integer milliseconds.
pub mod duration_ms {
  use std::time::Duration;

  use serde::{Deserialize, Deserializer, Serializer};

  pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
  }

  pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    Ok(Duration::from_millis(u64::deserialize(deserializer)?))
  }
}

/// The region named in an ARN (`arn:aws:rds:REGION:ACCOUNT:cluster:NAME`).
pub fn arn_region(arn: &str) -> Option<&str> {
  arn
    .strip_prefix("arn:")
    .and_then(|rest| rest.split(':').nth(2))
    .filter(|region| !region.is_empty())
}

/// The resource name at the end of an ARN (`arn:aws:rds:REGION:ACCOUNT:cluster:NAME` → `NAME`).
pub fn arn_resource_name(arn: &str) -> &str {
  arn.rsplit(':').next().unwrap_or(arn)
}

// ---------------------------------------------------------------------------------------------
// Replication lag
// ---------------------------------------------------------------------------------------------

/// How often RDS publishes `ReplicaLag` (and Aurora `AuroraGlobalDBRPOLag`): one datapoint a
/// minute. A lag read asks for one-minute periods.
pub const LAG_PERIOD: Duration = Duration::from_secs(60);

/// A datapoint older than this many periods says nothing about now: the metric stopped being
/// published (the source or the replica is gone, or CloudWatch is not receiving it).
pub const LAG_STALE_PERIODS: u32 = 2;

/// How far back a lag read looks: far enough to find the last healthy measurement after
/// replication stopped, and to tell "stale" from "no datapoint".
pub const LAG_LOOKBACK: Duration = Duration::from_secs(15 * 60);

/// One datapoint of a lag metric: the period's start and its maximum, in seconds. A negative
/// value is what RDS reports while replication is not running (-1 for MySQL and MariaDB).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagDatapoint {
  pub at: DateTime<Utc>,
  pub seconds: f64,
}

/// A non-negative lag measured at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagMeasurement {
  #[serde(with = "duration_ms")]
  pub lag: Duration,
  pub at: DateTime<Utc>,
}

/// Why a replica's lag is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum LagUnknown {
  /// The newest datapoint is negative: replication is not running (a replica whose source
  /// region failed shows this), since the first of the trailing negative datapoints.
  Stopped { since: DateTime<Utc> },
  /// The newest datapoint is older than [`LAG_STALE_PERIODS`] periods.
  Stale { newest: DateTime<Utc> },
  /// No datapoint at all in the last [`LAG_LOOKBACK`].
  NoDatapoint,
}

/// A replica's lag behind its source, read from its lag metric. Never a guess: anything but a
/// current, non-negative newest datapoint is [`ReplicaLag::Unknown`], not zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaLag {
  /// The newest datapoint, current and non-negative.
  Measured(LagMeasurement),
  /// The lag cannot be known now; `last` is the newest non-negative datapoint in the lookback.
  Unknown {
    reason: LagUnknown,
    last: Option<LagMeasurement>,
  },
}

impl ReplicaLag {
  /// Classify a lag metric's datapoints (any order) as read at `now`.
  pub fn from_datapoints(points: &[LagDatapoint], now: DateTime<Utc>) -> ReplicaLag {
    let healthy = |point: &&LagDatapoint| point.seconds.is_finite() && point.seconds >= 0.0;
    let last = points
      .iter()
      .filter(healthy)
      .max_by_key(|point| point.at)
      .map(|point| LagMeasurement {
        lag: saturating_secs(point.seconds),
        at: point.at,
      });
    let Some(newest) = points.iter().max_by_key(|point| point.at) else {
      return ReplicaLag::Unknown {
        reason: LagUnknown::NoDatapoint,
        last,
      };
    };
    let stale_after = LAG_PERIOD * LAG_STALE_PERIODS;
    let age = (now - newest.at).to_std().unwrap_or_default();
    if age > stale_after {
      return ReplicaLag::Unknown {
        reason: LagUnknown::Stale { newest: newest.at },
        last,
      };
    }
    if !healthy(&newest) {
      // The first negative datapoint after the last healthy one: when replication stopped.
      let since = points
        .iter()
        .filter(|point| !healthy(point))
        .filter(|point| last.is_none_or(|last| point.at > last.at))
        .map(|point| point.at)
        .min()
        .unwrap_or(newest.at);
      return ReplicaLag::Unknown {
        reason: LagUnknown::Stopped { since },
        last,
      };
    }
    // `newest` is healthy, so `last` is it.
    ReplicaLag::Measured(LagMeasurement {
      lag: saturating_secs(newest.seconds),
      at: newest.at,
    })
  }

  /// The measured lag; `None` when unknown.
  pub fn measured(&self) -> Option<Duration> {
    match self {
      ReplicaLag::Measured(measurement) => Some(measurement.lag),
      ReplicaLag::Unknown { .. } => None,
    }
  }
}

fn lag_time(at: DateTime<Utc>) -> String {
  at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl fmt::Display for ReplicaLag {
  /// `4s (measured at T)`, or `unknown: replication stopped at T; last measured lag 4s at T'`:
  /// the basis a report gives for an RPO it cannot bound.
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      ReplicaLag::Measured(m) => write!(
        f,
        "{} (measured at {})",
        format_duration(m.lag),
        lag_time(m.at)
      ),
      ReplicaLag::Unknown { reason, last } => {
        f.write_str("unknown: ")?;
        match reason {
          LagUnknown::Stopped { since } => write!(
            f,
            "replication stopped at {} (the lag metric reads negative)",
            lag_time(*since)
          )?,
          LagUnknown::Stale { newest } => write!(
            f,
            "the newest lag datapoint, from {}, is older than {} periods of {}",
            lag_time(*newest),
            LAG_STALE_PERIODS,
            format_duration(LAG_PERIOD)
          )?,
          LagUnknown::NoDatapoint => write!(
            f,
            "no lag datapoint in the last {}",
            format_duration(LAG_LOOKBACK)
          )?,
        }
        match last {
          Some(m) => write!(
            f,
            "; last measured lag {} at {}",
            format_duration(m.lag),
            lag_time(m.at)
          ),
          None => f.write_str("; no earlier measurement"),
        }
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn arn_region_reads_the_fourth_field() {
    assert_eq!(
      arn_region("arn:aws:rds:us-west-2:123456789012:cluster:app-global-usw2"),
      Some("us-west-2")
    );
    assert_eq!(arn_region("app-global-usw2"), None);
    assert_eq!(arn_region("arn:aws:rds::123:global-cluster:x"), None);
  }

  /// A timeout of `18446744073709551615s` at `--time-scale 1` used to panic converting to wall
  /// time, taking its step's task down with it.
  #[test]
  fn clock_conversions_saturate_instead_of_panicking() {
    let huge = Duration::from_secs(u64::MAX);
    assert_eq!(Clock::scaled(1.0).to_wall(huge), Duration::MAX);
    assert_eq!(Clock::scaled(0.5).to_wall(huge), Duration::MAX);
    assert_eq!(Clock::scaled(1000.0).to_modelled(huge), Duration::MAX);
    assert_eq!(Clock::scaled(1.0).to_modelled(Duration::MAX), Duration::MAX);
    assert_eq!(
      Clock::scaled(40.0).to_wall(Duration::from_secs(400)),
      Duration::from_secs(10)
    );
    assert_eq!(
      Clock::scaled(40.0).to_modelled(Duration::from_secs(10)),
      Duration::from_secs(400)
    );
  }

  #[test]
  fn health_follows_the_18_percent_rule() {
    let status = |healthy, total| HealthCheckStatus {
      id: "hc".into(),
      checkers_healthy: healthy,
      checkers_total: total,
      disabled: false,
      inverted: false,
    };
    assert!(!status(0, 16).is_healthy());
    assert!(!status(2, 16).is_healthy(), "12.5 % is not more than 18 %");
    assert!(status(3, 16).is_healthy(), "18.75 % is more than 18 %");
    assert!(
      !status(9, 50).is_healthy(),
      "exactly 18 % is not more than 18 %"
    );
    assert!(status(10, 50).is_healthy());
  }

  #[test]
  fn only_throttling_server_and_transport_errors_retry() {
    let err = |kind| CloudError::new(kind, "rds", ops::rds::PROMOTE_READ_REPLICA.name, "x");
    assert!(err(ErrorKind::Throttling).is_retryable());
    assert!(err(ErrorKind::Server).is_retryable());
    assert!(err(ErrorKind::Transport).is_retryable());
    assert!(!err(ErrorKind::InvalidState).is_retryable());
    assert!(!err(ErrorKind::Client).is_retryable());
    assert!(!err(ErrorKind::NotFound).is_retryable());
  }

  #[test]
  fn error_display_keeps_code_status_and_request_id() {
    let err = CloudError::new(
      ErrorKind::Throttling,
      "rds",
      ops::rds::PROMOTE_READ_REPLICA.name,
      "Rate exceeded",
    )
    .with_code("Throttling")
    .with_status(400)
    .with_request_id("req-1");
    assert_eq!(
      err.to_string(),
      "rds PromoteReadReplica: Throttling: Rate exceeded (HTTP 400, request id req-1)"
    );
  }

  #[test]
  fn error_display_names_region_and_account_and_keeps_the_whole_message_on_one_line() {
    let permission = "User: arn:aws:sts::123456789012:assumed-role/oncall/alice is not \
      authorized to perform: rds:PromoteReadReplica on resource: \
      arn:aws:rds:us-west-2:123456789012:db:orders-replica because no identity-based policy \
      allows the rds:PromoteReadReplica action";
    let err = CloudError::new(
      ErrorKind::Client,
      "rds",
      ops::rds::PROMOTE_READ_REPLICA.name,
      format!("{permission}\n  (second line)\r(third)\r\n"),
    )
    .with_code("AccessDenied")
    .with_status(403)
    .with_request_id("1a2b")
    .with_region("us-west-2");
    assert_eq!(
      err.to_string(),
      format!(
        "rds PromoteReadReplica (us-west-2, account unknown): AccessDenied: {permission} \
         (second line) (third) (HTTP 403, request id 1a2b)"
      )
    );
    let err = err.with_account("123456789012");
    assert!(
      err
        .to_string()
        .starts_with("rds PromoteReadReplica (us-west-2, account 123456789012): AccessDenied: "),
      "{err}"
    );
  }

  /// The lag rules at their edges: exactly two periods old is current, a second more is stale;
  /// a NaN is no measurement; datapoints come in any order.
  #[test]
  fn lag_classification_at_the_edges() {
    let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let ago = |secs: i64| now - chrono::Duration::seconds(secs);
    let point = |secs: i64, seconds: f64| LagDatapoint {
      at: ago(secs),
      seconds,
    };
    assert_eq!(
      ReplicaLag::from_datapoints(&[point(120, 3.0)], now).measured(),
      Some(Duration::from_secs(3))
    );
    assert_eq!(
      ReplicaLag::from_datapoints(&[point(121, 3.0)], now),
      ReplicaLag::Unknown {
        reason: LagUnknown::Stale { newest: ago(121) },
        last: Some(LagMeasurement {
          lag: Duration::from_secs(3),
          at: ago(121)
        }),
      }
    );
    // Unordered: the newest decides; the first -1 after the last measurement is "since".
    let lag = ReplicaLag::from_datapoints(
      &[
        point(60, -1.0),
        point(240, 2.0),
        point(180, -1.0),
        point(300, 4.0),
      ],
      now,
    );
    assert_eq!(
      lag,
      ReplicaLag::Unknown {
        reason: LagUnknown::Stopped { since: ago(180) },
        last: Some(LagMeasurement {
          lag: Duration::from_secs(2),
          at: ago(240)
        }),
      }
    );
    assert_eq!(
      lag.to_string(),
      "unknown: replication stopped at 2027-01-15T07:57:00Z (the lag metric reads negative); \
       last measured lag 2s at 2027-01-15T07:56:00Z"
    );
    assert_eq!(
      ReplicaLag::from_datapoints(&[point(30, f64::NAN)], now),
      ReplicaLag::Unknown {
        reason: LagUnknown::Stopped { since: ago(30) },
        last: None,
      }
    );
    assert_eq!(
      ReplicaLag::from_datapoints(&[], now).to_string(),
      "unknown: no lag datapoint in the last 15m; no earlier measurement"
    );
  }
}
