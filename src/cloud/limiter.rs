//! The client layer in front of every provider: client-side rate limiting (one token bucket per
//! AWS API family and region), so a failover of hundreds of services paces its own calls instead
//! of collecting `Throttling` errors and burning retries while the RTO clock runs; and per-call
//! retries (below).
//!
//! * **Where.** [`Cloud::rate_limited`] wraps the RDS, ECS, Route 53 and S3 providers of any
//!   backend (`aws`, `sandbox`, `sim`; every command opens its backend through it), so the same
//!   pacing and retries apply to real AWS and to the simulator. S3 is retried, not limited.
//! * **Time.** Buckets refill on the backend's [`Clock`]: against the simulator (which runs
//!   `time_scale` times faster) a bucket of 5 requests per second lets 5 requests through per
//!   *modelled* second, exactly what the simulator's server-side limits accept.
//! * **Fairness.** A call *reserves* its token at once (the bucket may go negative) and sleeps
//!   until the reservation is covered, so callers are served in the order they asked and a burst
//!   of 500 `DescribeServices` becomes an evenly paced queue, not a thundering herd that retries.
//! * **Defaults** are AWS's documented limits ([`aws_default`]); `drctl.yaml` overrides them per
//!   family (`rate_limits:`), and a family set to `off` is not limited.
//!
//! The families, and the simulator's server-side limits ([`crate::cloud::sim`]), use the same
//! names and defaults, so `aws_rate_limits: true` in a world enforces what this module paces for.
//!
//! # Per-call retries
//!
//! The same decorators retry calls ([`Limiter::call`]), so one place does it for every backend:
//! the SDK clients and the simulator make a single attempt per call, bounded by
//! [`ATTEMPT_TIMEOUT`](crate::cloud::ATTEMPT_TIMEOUT). Without this layer, one throttled
//! `DescribeDBInstances` among the dozens a promotion wait makes failed the whole step attempt.
//!
//! * **Reads** (`describe_*`, `get_*`, `list_*`, `head_*`, `replica_lag`) are retried on any
//!   retryable error (`Throttling`, `Server`, `Transport`): asking again changes nothing.
//! * **Mutating calls** are retried only on `Throttling`: the service refused the request before
//!   it took effect. After a 5xx or a transport failure the effect may be in place, so the error
//!   goes back to the engine, whose next attempt observes the world before applying again; that,
//!   not a blind resend, is what keeps every effect exactly-once.
//! * **Budget.** [`CALL_ATTEMPTS`] attempts (the SDK's standard mode makes 3; an outage throttles
//!   harder), with exponential backoff and full jitter: before retry *n* a wait drawn uniformly
//!   from zero to [`BACKOFF_BASE`] × 2^(n-1), at most [`BACKOFF_CAP`], on the backend's clock. So
//!   at most 3 s of waiting per call (1.5 s expected): short next to a poll interval or a step's
//!   budget, long enough to spread a burst of retries (jitter, not lockstep). Each attempt takes
//!   its token from the bucket again, so retries are paced like any call. Trouble that outlasts
//!   the budget is the engine's: the call returns its last error unchanged (code, request id)
//!   and the step's retry policy (seconds to tens of seconds of backoff) takes over. The step's
//!   timeout bounds everything: the engine drops the call's future.
//! * **Fence.** Right before each attempt of a mutating call leaves, the run's
//!   [`MutationFence`] is checked: once the run has lost its lock, outlived its lease or
//!   cannot write its journal, the call is refused unsent with an `ErrorKind::Fenced` error
//!   (never retried). Every provider of every backend passes through here, so this is the one
//!   place a mutating provider call can be stopped; the engine checks the same fence before
//!   effects that are not provider calls (commands, notifications).
//! * **Visibility.** Each retry is logged at debug (`DRCTL_LOG=drctl::cloud::limiter=debug`)
//!   with service, operation, error code and request id, and counted ([`Limiter::retries`];
//!   the counts are logged when the backend is dropped). Every attempt is a request on the wire
//!   and is counted as one where calls are counted: the simulator records each refused attempt
//!   in `refusals.jsonl`, and each accepted mutating call (a retried one is accepted once) in
//!   its operation log, from which reports count API calls.

use std::{
  collections::{BTreeMap, HashMap},
  fmt,
  future::Future,
  sync::{Arc, Mutex, PoisonError},
  time::Duration,
};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::{
  ops::{Op, Retry},
  Clock, Cloud, CloudError, CloudResult, ErrorKind, MutationFence,
};

/// Attempts per provider call, the first one included (see the module docs).
pub const CALL_ATTEMPTS: u32 = 5;
/// The backoff ceiling before the first retry; it doubles for each retry after.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// The backoff ceiling never grows past this (a bound for a larger [`CALL_ATTEMPTS`]; with 5
/// attempts the ceilings are 0.2, 0.4, 0.8 and 1.6 s).
pub const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Whether an operation's retry rule ([`Op::retry`]) lets `error` be followed by another attempt.
fn may_retry(retry: Retry, error: &CloudError) -> bool {
  match retry {
    Retry::OnAnyRetryable => error.is_retryable(),
    Retry::OnThrottleOnly => error.kind == ErrorKind::Throttling,
  }
}

/// A token bucket: `burst` tokens at most, refilled at `rate` per (backend) second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
  /// Sustained requests per second.
  pub rate: f64,
  /// Bucket size: how many requests may go at once after a quiet period.
  pub burst: f64,
}

impl Bucket {
  pub const fn new(rate: f64, burst: f64) -> Bucket {
    Bucket { rate, burst }
  }

  fn valid(&self) -> bool {
    self.rate.is_finite() && self.rate > 0.0 && self.burst.is_finite() && self.burst >= 1.0
  }
}

/// The API families drctl calls, the scope of each family's bucket, and AWS's documented
/// default limits. A family groups the operations AWS counts against one bucket.
///
/// Sources (checked 2026-11):
/// * Route 53: "the hard limit of five requests per second, per account" for all Route 53 API
///   requests (AWS re:Post knowledge center, *route-53-avoid-throttling-errors*; the Route 53
///   Developer Guide, *Throttling for Amazon Route 53 API requests*, now documents a higher
///   account bucket of 50 / 10 per second; drctl keeps the stricter 5 per second, which is what
///   every account is guaranteed). Route 53 is global: one bucket per account.
/// * RDS: "up to 300 requests in a burst and a sustained 12 requests per second" per account and
///   region, all RDS API operations together (Amazon RDS User Guide, *Request throttling for the
///   Amazon RDS API*).
/// * ECS: token buckets per account, region and action group (Amazon ECS API Reference,
///   *Request throttling for the Amazon ECS API*): service read actions (`DescribeServices`)
///   sustain 20 per second; the example bucket of 50 tokens is used as their burst. The page
///   gives no figure drctl could confirm for `UpdateService`; 5 per second with a burst of 20 is
///   a deliberately conservative assumption (pacing below AWS costs a little time, never a
///   throttle).
/// * CloudWatch `GetMetricStatistics` (replica lag): 400 transactions per second per region
///   (CloudWatch service quotas).
pub const FAMILIES: &[(&str, Scope, Bucket)] = &[
  ("route53", Scope::Account, Bucket::new(5.0, 5.0)),
  ("rds", Scope::Region, Bucket::new(12.0, 300.0)),
  ("ecs.read", Scope::Region, Bucket::new(20.0, 50.0)),
  ("ecs.write", Scope::Region, Bucket::new(5.0, 20.0)),
  ("cloudwatch", Scope::Region, Bucket::new(400.0, 400.0)),
];

/// Whether a family's bucket is shared by the whole account or kept per region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
  Account,
  Region,
}

/// The family an API operation counts against (`None`: drctl does not limit it, e.g. S3), as
/// the operation table says ([`Op::family`]); an operation not in the table is not limited.
pub fn family(service: &str, operation: &str) -> Option<&'static str> {
  super::ops::find(service, operation).and_then(|op| op.family)
}

/// AWS's documented default for a family.
pub fn aws_default(family: &str) -> Option<Bucket> {
  FAMILIES
    .iter()
    .find(|(name, _, _)| *name == family)
    .map(|(_, _, bucket)| *bucket)
}

fn scope(family: &str) -> Scope {
  FAMILIES
    .iter()
    .find(|(name, _, _)| *name == family)
    .map_or(Scope::Region, |(_, scope, _)| *scope)
}

/// One family's setting in `drctl.yaml`: `{ rate: 5, burst: 5 }`, a bare number (a rate whose
/// burst is the same number), or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LimitSetting {
  Off,
  Limit(Bucket),
}

impl<'de> Deserialize<'de> for LimitSetting {
  fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Fields {
      rate: f64,
      burst: Option<f64>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
      Word(String),
      Rate(f64),
      Fields(Fields),
    }
    let setting = match Raw::deserialize(deserializer)? {
      Raw::Word(word) if word == "off" => return Ok(LimitSetting::Off),
      Raw::Word(word) => {
        return Err(de::Error::custom(format!(
          "expected `off`, a rate or {{ rate, burst }}, got `{word}`"
        )))
      }
      Raw::Rate(rate) => Bucket::new(rate, rate.max(1.0)),
      Raw::Fields(fields) => Bucket::new(fields.rate, fields.burst.unwrap_or(fields.rate.max(1.0))),
    };
    if !setting.valid() {
      return Err(de::Error::custom(format!(
        "a rate must be a positive number and a burst at least 1, got rate {} and burst {}",
        setting.rate, setting.burst
      )));
    }
    Ok(LimitSetting::Limit(setting))
  }
}

impl Serialize for LimitSetting {
  fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
    match self {
      LimitSetting::Off => serializer.serialize_str("off"),
      LimitSetting::Limit(bucket) => {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("rate", &bucket.rate)?;
        map.serialize_entry("burst", &bucket.burst)?;
        map.end()
      }
    }
  }
}

/// The client-side limits in force: AWS's defaults with the user's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
  buckets: BTreeMap<&'static str, Bucket>,
}

impl Default for RateLimits {
  /// AWS's documented defaults for every family.
  fn default() -> Self {
    RateLimits {
      buckets: FAMILIES
        .iter()
        .map(|(name, _, bucket)| (*name, *bucket))
        .collect(),
    }
  }
}

impl RateLimits {
  /// No limits at all.
  pub fn none() -> Self {
    RateLimits {
      buckets: BTreeMap::new(),
    }
  }

  /// The defaults with `drctl.yaml`'s overrides; an unknown family is an error naming the
  /// known ones.
  pub fn with_overrides(overrides: &BTreeMap<String, LimitSetting>) -> Result<Self, String> {
    let mut limits = RateLimits::default();
    for (name, setting) in overrides {
      let Some((family, _, _)) = FAMILIES.iter().find(|(family, _, _)| family == name) else {
        let known: Vec<&str> = FAMILIES.iter().map(|(name, _, _)| *name).collect();
        return Err(format!(
          "rate_limits.{name}: unknown API family; expected one of {}",
          known.join(", ")
        ));
      };
      match setting {
        LimitSetting::Off => {
          limits.buckets.remove(family);
        }
        LimitSetting::Limit(bucket) => {
          limits.buckets.insert(family, *bucket);
        }
      }
    }
    Ok(limits)
  }

  pub fn get(&self, family: &str) -> Option<Bucket> {
    self.buckets.get(family).copied()
  }
}

#[derive(Debug)]
struct Tokens {
  /// May be negative: reservations waiting for the refill.
  tokens: f64,
  last: tokio::time::Instant,
  /// The server's view of the same bucket: taken when a call is actually sent, never ahead of
  /// time, with the full burst. Reservations pace callers fairly (first come, first served),
  /// but a caller the runtime wakes late can arrive together with one paced after it; checking
  /// this bucket at send time keeps such bunches from reaching the server.
  sent: f64,
  sent_last: tokio::time::Instant,
}

/// Token buckets per (family, region), on the backend's clock, and the per-call retry policy.
pub struct Limiter {
  clock: Clock,
  limits: RateLimits,
  buckets: Mutex<HashMap<(&'static str, String), Tokens>>,
  /// Backoff jitter. Its own generator (seeded from fastrand's thread-local one) rather than
  /// the thread-local itself: retries run on whichever runtime thread polls them.
  jitter: Mutex<fastrand::Rng>,
  /// Retries made, per operation.
  retries: Mutex<BTreeMap<String, u64>>,
  /// Checked right before every attempt of a mutating call.
  fence: MutationFence,
  /// The account the credentials act as (the preflight's caller identity): named in an AWS
  /// error whose message did not name one.
  account: Option<String>,
}

impl fmt::Debug for Limiter {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("Limiter")
      .field("clock", &self.clock)
      .field("limits", &self.limits)
      .finish_non_exhaustive()
  }
}

impl Drop for Limiter {
  /// The run's per-call retries, in one line (a backend lives as long as its command).
  fn drop(&mut self) {
    let retries = self
      .retries
      .get_mut()
      .unwrap_or_else(PoisonError::into_inner);
    if !retries.is_empty() {
      let total: u64 = retries.values().sum();
      tracing::debug!(total, by_operation = ?retries, "provider calls retried");
    }
  }
}

impl Limiter {
  pub fn new(clock: Clock, limits: RateLimits) -> Limiter {
    Limiter {
      clock,
      limits,
      buckets: Mutex::new(HashMap::new()),
      jitter: Mutex::new(fastrand::Rng::new()),
      retries: Mutex::new(BTreeMap::new()),
      fence: MutationFence::default(),
      account: None,
    }
  }

  /// The same limiter, naming `account` in the AWS errors it hands back.
  pub fn with_account(mut self, account: Option<String>) -> Limiter {
    self.account = account;
    self
  }

  /// The same limiter, refusing mutating calls once `fence` closes.
  pub fn with_fence(mut self, fence: MutationFence) -> Limiter {
    self.fence = fence;
    self
  }

  /// Make a provider call: take its token(s), make the attempt, and retry it by the module's
  /// rules (reads on any retryable error, mutating calls on throttling only, at most
  /// [`CALL_ATTEMPTS`] attempts). The result is the last attempt's, unchanged. A mutating
  /// attempt is not sent once the fence is closed (an `ErrorKind::Fenced` error).
  pub async fn call<T, F, Fut>(
    &self,
    op: &'static Op,
    region: Option<&str>,
    cost: u32,
    mut attempt: F,
  ) -> CloudResult<T>
  where
    F: FnMut() -> Fut,
    Fut: Future<Output = CloudResult<T>>,
  {
    let (service, operation) = (op.service, op.name);
    let mut made = 0;
    loop {
      self.acquire(op, region, cost).await;
      if op.is_mutating() {
        // Last thing before the request leaves: the pacing wait above can be long.
        self.fence.check().map_err(|reason| {
          CloudError::new(
            ErrorKind::Fenced,
            service,
            operation,
            format!("not sent: {reason}"),
          )
        })?;
      }
      made += 1;
      let error = match attempt().await {
        Err(error) if made < CALL_ATTEMPTS && may_retry(op.retry, &error) => error,
        Err(error) => return Err(self.with_caller_account(error)),
        result => return result,
      };
      let backoff = self.backoff(made);
      tracing::debug!(
        service,
        operation,
        code = error.code.as_deref().unwrap_or("-"),
        request_id = error.request_id.as_deref().unwrap_or("-"),
        attempt = made,
        backoff_ms = backoff.as_millis() as u64,
        "retrying a provider call: {}",
        error.message
      );
      *self
        .retries
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(operation.to_string())
        .or_default() += 1;
      self.clock.sleep(backoff).await;
    }
  }

  /// `error`, naming the caller's account if it is an AWS endpoint's (it has a region) and
  /// names none of its own.
  fn with_caller_account(&self, error: CloudError) -> CloudError {
    match &self.account {
      Some(account) if error.region.is_some() && error.account.is_none() => {
        error.with_account(account.clone())
      }
      _ => error,
    }
  }

  /// The wait before retry number `retry` (1, 2, ...): full jitter, uniform in zero to
  /// `BACKOFF_BASE × 2^(retry-1)`, capped at [`BACKOFF_CAP`].
  fn backoff(&self, retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE
      .saturating_mul(1 << retry.saturating_sub(1).min(16))
      .min(BACKOFF_CAP);
    let draw = self
      .jitter
      .lock()
      .unwrap_or_else(PoisonError::into_inner)
      .f64();
    ceiling.mul_f64(draw)
  }

  /// Retries made so far, per operation.
  pub fn retries(&self) -> BTreeMap<String, u64> {
    self
      .retries
      .lock()
      .unwrap_or_else(PoisonError::into_inner)
      .clone()
  }

  /// The bucket an operation draws from (its family, per region or per account) and its limit;
  /// `None` when the operation is not limited.
  fn bucket_of(&self, op: &Op, region: Option<&str>) -> Option<((&'static str, String), Bucket)> {
    let family = op.family?;
    let bucket = self.limits.get(family)?;
    let key = match scope(family) {
      Scope::Account => (family, String::new()),
      Scope::Region => (family, region.unwrap_or_default().to_string()),
    };
    Some((key, bucket))
  }

  /// Reserve `cost` tokens of the operation's family and return how long (modelled) the caller
  /// must wait before sending. Zero when the bucket had them.
  pub fn reserve(&self, op: &Op, region: Option<&str>, cost: u32) -> Duration {
    let Some((key, bucket)) = self.bucket_of(op, region) else {
      return Duration::ZERO;
    };
    let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
    // "Now" is read under the lock: read before it, a caller that lost the race would move
    // `last` backwards and the next refill would count the same interval twice (observed: a
    // few `DescribeServices` over the limit when 500 steps start at once).
    let now = self.clock.now();
    // Keep a fifth of the burst in reserve: a call is paced for the instant its token is
    // there, but a busy runtime may send it later, together with calls paced after it; the
    // server's bucket, capped at the burst while it waited, has then lost the refill the
    // client counted on. The reserve absorbs that jitter (and other clients of the account).
    let capacity = (bucket.burst * 0.8).max(1.0);
    let state = buckets.entry(key).or_insert(Tokens {
      tokens: capacity,
      last: now,
      sent: bucket.burst,
      sent_last: now,
    });
    let refill = self
      .clock
      .to_modelled(now.saturating_duration_since(state.last))
      .as_secs_f64()
      * bucket.rate;
    state.tokens = (state.tokens + refill).min(capacity);
    state.last = state.last.max(now);
    state.tokens -= f64::from(cost);
    if state.tokens >= 0.0 {
      Duration::ZERO
    } else {
      Duration::try_from_secs_f64(-state.tokens / bucket.rate).unwrap_or(Duration::MAX)
    }
  }

  /// Take `cost` tokens from the send-time bucket, or say how long until it has them.
  fn take_at_send(&self, op: &Op, region: Option<&str>, cost: u32) -> Duration {
    let Some((key, bucket)) = self.bucket_of(op, region) else {
      return Duration::ZERO;
    };
    let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
    let now = self.clock.now();
    let Some(state) = buckets.get_mut(&key) else {
      return Duration::ZERO;
    };
    let refill = self
      .clock
      .to_modelled(now.saturating_duration_since(state.sent_last))
      .as_secs_f64()
      * bucket.rate;
    state.sent = (state.sent + refill).min(bucket.burst);
    state.sent_last = state.sent_last.max(now);
    let cost = f64::from(cost);
    if state.sent >= cost {
      state.sent -= cost;
      Duration::ZERO
    } else {
      Duration::try_from_secs_f64((cost - state.sent) / bucket.rate).unwrap_or(Duration::MAX)
    }
  }

  /// Wait until a call of `operation` may be sent: its turn in the queue (a reservation), then
  /// a token of the send-time bucket, taken just before the call leaves.
  pub async fn acquire(&self, op: &Op, region: Option<&str>, cost: u32) {
    // Sleep a hair past the refill instant: the server's bucket (the simulator's, refilled on
    // the same clock) must have the token by the time the request reaches it, whatever the
    // rounding of the timer.
    let margin = self.clock.to_modelled(Duration::from_millis(1));
    let mut wait = self.reserve(op, region, cost);
    loop {
      if !wait.is_zero() {
        tracing::trace!(
          service = op.service,
          operation = op.name,
          wait_ms = wait.as_millis() as u64,
          "rate limited"
        );
        self.clock.sleep(wait + margin).await;
      }
      wait = self.take_at_send(op, region, cost);
      if wait.is_zero() {
        return;
      }
    }
  }
}

/// [`Cloud::rate_limited`], over every family of [`with_families!`](super::with_families).
macro_rules! rate_limited {
  ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
    impl Cloud {
      /// The same providers behind client-side rate limits and per-call retries (see the module
      /// docs). S3 is not rate limited (its limits are per prefix and thousands per second, far
      /// above drctl's reads) but its reads are retried like any other. HTTP is passed through:
      /// probes retry `within` their own deadline, and notifications are side effects. AWS
      /// errors name `account` (the caller identity's) when AWS's message names none.
      pub fn rate_limited(self, limits: RateLimits, account: Option<String>) -> Cloud {
        let limiter = Arc::new(
          Limiter::new(self.clock, limits)
            .with_fence(self.fence.clone())
            .with_account(account),
        );
        Cloud {
          $($family: Arc::new(super::$family::$Limited {
            inner: self.$family,
            limiter: limiter.clone(),
          }),)*
          ..self
        }
      }
    }
  };
}

super::with_families!(rate_limited);

#[cfg(test)]
mod tests {
  use std::{
    collections::VecDeque,
    sync::atomic::{AtomicU32, Ordering},
  };

  use super::*;
  use crate::cloud::{
    ops, DbInstance, DbSnapshot, FenceReason, GlobalCluster, LimitedRds, Rds, RestoreRequest,
  };

  /// An RDS provider that answers from a script: each call takes the next answer (`None`:
  /// success; past the end: success). Errors carry a request id naming the call (`req-3`).
  #[derive(Default)]
  struct Scripted {
    answers: Mutex<VecDeque<Option<ErrorKind>>>,
    calls: AtomicU32,
  }

  impl Scripted {
    fn new(answers: impl IntoIterator<Item = Option<ErrorKind>>) -> Arc<Scripted> {
      Arc::new(Scripted {
        answers: Mutex::new(answers.into_iter().collect()),
        calls: AtomicU32::new(0),
      })
    }

    fn calls(&self) -> u32 {
      self.calls.load(Ordering::SeqCst)
    }

    // `CloudResult` is what every provider returns (see `cloud::aws`).
    #[allow(clippy::result_large_err)]
    fn answer(&self, op: &Op) -> CloudResult<()> {
      let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
      match self.answers.lock().unwrap().pop_front().flatten() {
        None => Ok(()),
        Some(kind) => {
          let code = match kind {
            ErrorKind::Throttling => "Throttling",
            ErrorKind::Server => "InternalFailure",
            ErrorKind::Transport => "RequestTimeout",
            _ => "InvalidDBInstanceState",
          };
          Err(
            CloudError::new(kind, op.service, op.name, "scripted")
              .with_code(code)
              .with_request_id(format!("req-{call}")),
          )
        }
      }
    }
  }

  #[async_trait::async_trait]
  impl Rds for Scripted {
    async fn describe_instance(&self, _: &str, _: &str) -> CloudResult<Option<DbInstance>> {
      self.answer(&ops::rds::DESCRIBE_DB_INSTANCES).map(|()| None)
    }
    async fn replica_lag(&self, _: &str, _: &str) -> CloudResult<crate::cloud::ReplicaLag> {
      self
        .answer(&ops::cloudwatch::GET_METRIC_STATISTICS)
        .map(|()| crate::cloud::ReplicaLag::Unknown {
          reason: crate::cloud::LagUnknown::NoDatapoint,
          last: None,
        })
    }
    async fn describe_snapshots(&self, _: &str, _: &str) -> CloudResult<Vec<DbSnapshot>> {
      self
        .answer(&ops::rds::DESCRIBE_DB_SNAPSHOTS)
        .map(|()| Vec::new())
    }
    async fn describe_global_cluster(&self, _: &str) -> CloudResult<Option<GlobalCluster>> {
      self
        .answer(&ops::rds::DESCRIBE_GLOBAL_CLUSTERS)
        .map(|()| None)
    }
    async fn promote_read_replica(&self, _: &str, _: &str) -> CloudResult<()> {
      self.answer(&ops::rds::PROMOTE_READ_REPLICA)
    }
    async fn restore_from_snapshot(&self, _: &RestoreRequest) -> CloudResult<()> {
      self.answer(&ops::rds::RESTORE_DB_INSTANCE_FROM_DB_SNAPSHOT)
    }
    async fn delete_instance(&self, _: &str, _: &str) -> CloudResult<()> {
      self.answer(&ops::rds::DELETE_DB_INSTANCE)
    }
    async fn failover_global_cluster(
      &self,
      _: &str,
      _: &str,
      _: crate::cloud::GlobalFailover,
    ) -> CloudResult<()> {
      self.answer(&ops::rds::FAILOVER_GLOBAL_CLUSTER)
    }
    async fn get_global_rpo_lag(&self, _: &str, _: &str) -> CloudResult<crate::cloud::ReplicaLag> {
      self.replica_lag("", "").await
    }
    async fn create_read_replica(&self, _: &crate::cloud::ReplicaRequest) -> CloudResult<()> {
      self.answer(&ops::rds::CREATE_DB_INSTANCE_READ_REPLICA)
    }
    async fn list_instance_tags(
      &self,
      _: &str,
      _: &str,
    ) -> CloudResult<Option<BTreeMap<String, String>>> {
      self
        .answer(&ops::rds::LIST_TAGS_FOR_RESOURCE)
        .map(|()| None)
    }
    async fn add_instance_tags(
      &self,
      _: &str,
      _: &str,
      _: &BTreeMap<String, String>,
    ) -> CloudResult<()> {
      self.answer(&ops::rds::ADD_TAGS_TO_RESOURCE)
    }
  }

  /// The scripted provider behind the limiter's decorator, as `Cloud::rate_limited` builds it.
  fn limited(scripted: &Arc<Scripted>, limits: RateLimits) -> (LimitedRds, Arc<Limiter>) {
    let limiter = Arc::new(Limiter::new(Clock::default(), limits));
    let rds = LimitedRds {
      inner: scripted.clone(),
      limiter: limiter.clone(),
    };
    (rds, limiter)
  }

  #[tokio::test(start_paused = true)]
  async fn a_throttled_read_is_retried_until_it_succeeds() {
    let scripted = Scripted::new([Some(ErrorKind::Throttling); 3]);
    let (rds, limiter) = limited(&scripted, RateLimits::default());
    let start = tokio::time::Instant::now();
    let described = rds.describe_instance("us-west-2", "db").await;
    assert_eq!(described, Ok(None));
    assert_eq!(
      scripted.calls(),
      4,
      "three throttled attempts, then the answer"
    );
    assert_eq!(limiter.retries()[ops::rds::DESCRIBE_DB_INSTANCES.name], 3);
    // Full jitter: at most 0.2 + 0.4 + 0.8 s of backoff.
    assert!(
      start.elapsed() <= Duration::from_millis(1400),
      "{:?}",
      start.elapsed()
    );
  }

  /// An AWS error names the account the run's credentials act as (the preflight's caller
  /// identity) when AWS's message did not; an account the message named is kept.
  #[tokio::test(start_paused = true)]
  async fn an_aws_error_names_the_callers_account_unless_it_names_its_own() {
    let limiter = Limiter::new(Clock::default(), RateLimits::default())
      .with_account(Some("123456789012".into()));
    let call = |error: CloudError| {
      limiter.call(
        &ops::rds::PROMOTE_READ_REPLICA,
        Some("us-west-2"),
        1,
        move || {
          let error = error.clone();
          async move { Err::<(), _>(error) }
        },
      )
    };
    let denied = CloudError::new(
      ErrorKind::Client,
      "rds",
      ops::rds::PROMOTE_READ_REPLICA.name,
      "denied",
    )
    .with_region("us-west-2");
    let err = call(denied.clone()).await.unwrap_err();
    assert_eq!(err.account.as_deref(), Some("123456789012"));
    assert!(
      err
        .to_string()
        .contains("(us-west-2, account 123456789012)"),
      "{err}"
    );
    let named = call(denied.with_account("210987654321")).await.unwrap_err();
    assert_eq!(named.account.as_deref(), Some("210987654321"));
    // A simulator error (no region: not an AWS endpoint) stays as it was.
    let sim = CloudError::new(
      ErrorKind::Client,
      "rds",
      ops::rds::PROMOTE_READ_REPLICA.name,
      "no",
    );
    assert_eq!(call(sim).await.unwrap_err().account, None);
  }

  #[tokio::test(start_paused = true)]
  async fn a_read_is_retried_on_5xx_and_transport_failures_too() {
    let scripted = Scripted::new([Some(ErrorKind::Server), Some(ErrorKind::Transport)]);
    let (rds, _) = limited(&scripted, RateLimits::default());
    assert_eq!(rds.describe_instance("us-west-2", "db").await, Ok(None));
    assert_eq!(scripted.calls(), 3);
  }

  #[tokio::test(start_paused = true)]
  async fn a_read_gives_up_after_the_last_attempt_with_that_attempts_error() {
    let scripted = Scripted::new([Some(ErrorKind::Throttling); 10]);
    let (rds, limiter) = limited(&scripted, RateLimits::default());
    let err = rds.describe_instance("us-west-2", "db").await.unwrap_err();
    assert_eq!(scripted.calls(), CALL_ATTEMPTS);
    // The error is the last attempt's, as the provider returned it: code and request id.
    let last = format!("req-{CALL_ATTEMPTS}");
    assert_eq!(err.code.as_deref(), Some("Throttling"));
    assert_eq!(err.request_id.as_deref(), Some(last.as_str()));
    assert_eq!(
      err.to_string(),
      format!("rds DescribeDBInstances: Throttling: scripted (request id {last})")
    );
    assert_eq!(
      limiter.retries()[ops::rds::DESCRIBE_DB_INSTANCES.name],
      u64::from(CALL_ATTEMPTS - 1)
    );
  }

  #[tokio::test(start_paused = true)]
  async fn a_closed_fence_stops_mutating_calls_before_they_leave_and_reads_go_on() {
    let scripted = Scripted::new([Some(ErrorKind::Throttling)]);
    let fence = MutationFence::default();
    let limiter =
      Arc::new(Limiter::new(Clock::default(), RateLimits::default()).with_fence(fence.clone()));
    let rds = LimitedRds {
      inner: scripted.clone(),
      limiter,
    };
    // Throttled once, then the fence closes during the backoff: the retry is not sent.
    let promote = tokio::spawn(async move {
      let result = rds.promote_read_replica("us-west-2", "db").await;
      (rds, result)
    });
    tokio::task::yield_now().await;
    assert_eq!(scripted.calls(), 1);
    fence.close(FenceReason::LockLost("taken by run r2".into()));
    let (rds, result) = promote.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fenced);
    assert!(!err.is_retryable());
    assert_eq!(err.operation, ops::rds::PROMOTE_READ_REPLICA.name);
    assert!(err.message.contains("taken by run r2"), "{}", err.message);
    assert_eq!(
      scripted.calls(),
      1,
      "nothing was sent after the fence closed"
    );
    assert_eq!(
      rds
        .delete_instance("us-west-2", "db")
        .await
        .unwrap_err()
        .kind,
      ErrorKind::Fenced
    );
    assert_eq!(scripted.calls(), 1);
    // Reads are not mutations: they still go out.
    assert_eq!(rds.describe_instance("us-west-2", "db").await, Ok(None));
    assert_eq!(scripted.calls(), 2);
  }

  #[tokio::test(start_paused = true)]
  async fn a_mutating_call_is_retried_on_throttling_only() {
    // Throttled: refused before it took effect, so sent again.
    let scripted = Scripted::new([Some(ErrorKind::Throttling); 2]);
    let (rds, _) = limited(&scripted, RateLimits::default());
    assert_eq!(rds.promote_read_replica("us-west-2", "db").await, Ok(()));
    assert_eq!(scripted.calls(), 3);
    // A 5xx or a transport failure may come after the effect: back to the engine at once.
    for kind in [ErrorKind::Server, ErrorKind::Transport] {
      let scripted = Scripted::new([Some(kind)]);
      let (rds, limiter) = limited(&scripted, RateLimits::default());
      let err = rds
        .promote_read_replica("us-west-2", "db")
        .await
        .unwrap_err();
      assert_eq!(scripted.calls(), 1, "{kind:?}");
      assert_eq!(err.kind, kind);
      assert_eq!(err.request_id.as_deref(), Some("req-1"));
      assert!(limiter.retries().is_empty());
    }
  }

  #[tokio::test(start_paused = true)]
  async fn errors_a_retry_cannot_help_are_returned_at_once() {
    let scripted = Scripted::new([Some(ErrorKind::InvalidState)]);
    let (rds, _) = limited(&scripted, RateLimits::default());
    let err = rds.describe_instance("us-west-2", "db").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert_eq!(scripted.calls(), 1);
  }

  #[tokio::test(start_paused = true)]
  async fn each_retry_takes_a_token_again() {
    // RDS at one request per second: the five attempts are paced a second apart, whatever
    // the (shorter) backoff.
    let limits = RateLimits::with_overrides(&BTreeMap::from([(
      "rds".to_string(),
      LimitSetting::Limit(Bucket::new(1.0, 1.0)),
    )]))
    .unwrap();
    let scripted = Scripted::new([Some(ErrorKind::Throttling); 4]);
    let (rds, _) = limited(&scripted, limits);
    let start = tokio::time::Instant::now();
    assert_eq!(rds.describe_instance("us-west-2", "db").await, Ok(None));
    assert_eq!(scripted.calls(), 5);
    assert!(
      start.elapsed() >= Duration::from_secs(4),
      "{:?}",
      start.elapsed()
    );
  }

  #[tokio::test(start_paused = true)]
  async fn backoff_is_full_jitter_under_a_doubling_ceiling_on_the_backend_clock() {
    let limiter = Limiter::new(Clock::scaled(40.0), RateLimits::default());
    for retry in 1..=8 {
      let ceiling = (BACKOFF_BASE * 2u32.pow(retry - 1)).min(BACKOFF_CAP);
      for _ in 0..50 {
        assert!(limiter.backoff(retry) <= ceiling);
      }
    }
    // Waits are modelled time: against a simulator at ×40, five attempts of an unlimited
    // service take at most 3 s / 40 of the wall.
    let calls = AtomicU32::new(0);
    let start = tokio::time::Instant::now();
    let result: CloudResult<()> = limiter
      .call(&ops::s3::HEAD_OBJECT, Some("us-west-2"), 1, || async {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(CloudError::new(
          ErrorKind::Server,
          "s3",
          ops::s3::HEAD_OBJECT.name,
          "x",
        ))
      })
      .await;
    assert!(result.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), CALL_ATTEMPTS);
    assert!(
      start.elapsed() <= Duration::from_millis(76),
      "{:?}",
      start.elapsed()
    );
  }

  fn limiter(scale: f64, limits: RateLimits) -> Limiter {
    Limiter::new(Clock::scaled(scale), limits)
  }

  #[tokio::test(start_paused = true)]
  async fn a_burst_passes_then_calls_are_paced_at_the_rate() {
    let limiter = limiter(1.0, RateLimits::default());
    // Route 53: 4 at once (a fifth of the burst held in reserve), then one every 200 ms.
    for _ in 0..4 {
      assert_eq!(
        limiter.reserve(&ops::route53::GET_CHANGE, None, 1),
        Duration::ZERO
      );
    }
    let waits: Vec<Duration> = (0..3)
      .map(|_| limiter.reserve(&ops::route53::LIST_RESOURCE_RECORD_SETS, None, 1))
      .collect();
    assert_eq!(
      waits,
      [200, 400, 600].map(Duration::from_millis).to_vec(),
      "reservations queue behind each other"
    );
    // After a quiet second, 5 more tokens: the 3 reserved are paid for, 2 are free.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
      limiter.reserve(&ops::route53::GET_CHANGE, None, 1),
      Duration::ZERO
    );
  }

  /// Callers the runtime wakes late arrive together with callers paced after them. The
  /// send-time bucket holds them back, so what leaves never exceeds what the server's bucket
  /// (the same burst and rate, taken on arrival) allows: `burst + rate × elapsed`.
  #[tokio::test(start_paused = true)]
  async fn late_callers_never_send_more_than_the_server_bucket_allows() {
    let limiter = std::sync::Arc::new(limiter(1.0, RateLimits::default()));
    let start = tokio::time::Instant::now();
    let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for caller in 0..30u64 {
      let (limiter, sent) = (limiter.clone(), sent.clone());
      tasks.push(tokio::spawn(async move {
        let wait = limiter.reserve(&ops::route53::GET_CHANGE, None, 1);
        // A busy runtime: the first ten callers wake 2 s after their turn, together with the
        // callers paced then.
        let late = if caller < 10 { 2000 } else { 0 };
        tokio::time::sleep(wait + Duration::from_millis(late)).await;
        loop {
          let wait = limiter.take_at_send(&ops::route53::GET_CHANGE, None, 1);
          if wait.is_zero() {
            break;
          }
          tokio::time::sleep(wait + Duration::from_millis(1)).await;
        }
        sent.lock().unwrap().push(start.elapsed());
      }));
    }
    for task in tasks {
      task.await.unwrap();
    }
    let mut sent = sent.lock().unwrap().clone();
    sent.sort();
    assert_eq!(sent.len(), 30);
    // Route 53: burst 5, 5 per second. Within any window starting at a send, the calls sent
    // fit the server's bucket.
    for (i, first) in sent.iter().enumerate() {
      for (j, last) in sent.iter().enumerate().skip(i) {
        let allowed = 5.0 + 5.0 * (*last - *first).as_secs_f64();
        assert!(
          (j - i + 1) as f64 <= allowed + 1e-9,
          "{} calls between {first:?} and {last:?}, the server allows {allowed}",
          j - i + 1
        );
      }
    }
  }

  #[tokio::test(start_paused = true)]
  async fn buckets_refill_on_the_backend_clock() {
    // At ×40, one wall-clock 25 ms is one modelled second: 5 Route 53 tokens.
    let limiter = limiter(40.0, RateLimits::default());
    for _ in 0..4 {
      limiter.reserve(&ops::route53::GET_CHANGE, None, 1);
    }
    let wait = limiter.reserve(&ops::route53::GET_CHANGE, None, 1);
    assert_eq!(wait, Duration::from_millis(200), "modelled");
    let start = tokio::time::Instant::now();
    limiter.acquire(&ops::route53::GET_CHANGE, None, 1).await;
    let waited = start.elapsed();
    // The second reservation waits 400 ms modelled = 10 ms wall (+ the 1 ms margin).
    assert!(
      waited >= Duration::from_millis(10) && waited <= Duration::from_millis(12),
      "{waited:?}"
    );
  }

  #[tokio::test(start_paused = true)]
  async fn regional_families_keep_one_bucket_per_region_and_route53_one_per_account() {
    let limits = RateLimits::with_overrides(&BTreeMap::from([(
      "ecs.read".to_string(),
      LimitSetting::Limit(Bucket::new(1.0, 1.0)),
    )]))
    .unwrap();
    let limiter = limiter(1.0, limits);
    assert!(limiter
      .reserve(&ops::ecs::DESCRIBE_SERVICES, Some("us-west-2"), 1)
      .is_zero());
    assert!(limiter
      .reserve(&ops::ecs::DESCRIBE_SERVICES, Some("us-east-1"), 1)
      .is_zero());
    assert_eq!(
      limiter.reserve(&ops::ecs::DESCRIBE_SERVICES, Some("us-west-2"), 1),
      Duration::from_secs(1)
    );
    // Writes have their own bucket.
    assert!(limiter
      .reserve(&ops::ecs::UPDATE_SERVICE, Some("us-west-2"), 1)
      .is_zero());
    // S3 is not limited.
    for _ in 0..10_000 {
      assert!(limiter
        .reserve(&ops::s3::HEAD_OBJECT, Some("us-west-2"), 1)
        .is_zero());
    }
  }

  #[tokio::test(start_paused = true)]
  async fn off_removes_a_family_and_unknown_families_are_errors() {
    let limits = RateLimits::with_overrides(&BTreeMap::from([(
      "route53".to_string(),
      LimitSetting::Off,
    )]))
    .unwrap();
    let limiter = limiter(1.0, limits);
    for _ in 0..100 {
      assert!(limiter
        .reserve(&ops::route53::GET_CHANGE, None, 1)
        .is_zero());
    }
    let err = RateLimits::with_overrides(&BTreeMap::from([(
      "route54".to_string(),
      LimitSetting::Off,
    )]))
    .unwrap_err();
    assert_eq!(
      err,
      "rate_limits.route54: unknown API family; expected one of route53, rds, ecs.read, ecs.write, cloudwatch"
    );
  }

  #[test]
  fn settings_parse_from_yaml() {
    let parsed: BTreeMap<String, LimitSetting> =
      serde_yaml::from_str("route53: { rate: 2, burst: 4 }\nrds: 10\necs.read: off\n").unwrap();
    assert_eq!(
      parsed["route53"],
      LimitSetting::Limit(Bucket::new(2.0, 4.0))
    );
    assert_eq!(parsed["rds"], LimitSetting::Limit(Bucket::new(10.0, 10.0)));
    assert_eq!(parsed["ecs.read"], LimitSetting::Off);
    let err = serde_yaml::from_str::<BTreeMap<String, LimitSetting>>("rds: { rate: 0 }\n")
      .unwrap_err()
      .to_string();
    assert!(err.contains("a rate must be a positive number"), "{err}");
  }

  #[test]
  fn operations_map_to_families() {
    assert_eq!(
      ops::route53::CHANGE_RESOURCE_RECORD_SETS.family,
      Some("route53")
    );
    assert_eq!(ops::ecs::DESCRIBE_SERVICES.family, Some("ecs.read"));
    assert_eq!(ops::ecs::UPDATE_SERVICE.family, Some("ecs.write"));
    assert_eq!(ops::rds::PROMOTE_READ_REPLICA.family, Some("rds"));
    assert_eq!(
      ops::rds::CREATE_DB_INSTANCE_READ_REPLICA.family,
      Some("rds")
    );
    assert_eq!(ops::s3::LIST_OBJECTS_V2.family, None);
    assert_eq!(aws_default("route53"), Some(Bucket::new(5.0, 5.0)));
  }
}
