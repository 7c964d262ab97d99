//! Fault injection (throttling, 5xx, extra latency, hangs) from a seeded random generator, and
//! token-bucket rate limits in modelled time: the world's own (`rate_limits:` per operation,
//! API family, service or `*`) and, with `aws_rate_limits: true`, AWS's documented limits per
//! API family ([`crate::cloud::limiter::FAMILIES`]), enforced server-side as AWS does: a call
//! over the limit is refused with a throttling error.

use std::{
  collections::BTreeMap,
  sync::{Mutex, PoisonError},
  time::Duration,
};

use super::world::FaultSpec;
use crate::cloud::{
  limiter::{aws_default, family, Bucket as Limit, LimitSetting},
  Clock,
};

/// What the fault injector decided for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
  Pass,
  Throttle,
  Error,
  Hang,
}

#[derive(Debug)]
struct Bucket {
  tokens: f64,
  last: tokio::time::Instant,
}

#[derive(Debug)]
pub(crate) struct Faults {
  spec: BTreeMap<String, FaultSpec>,
  limits: BTreeMap<String, LimitSetting>,
  /// Enforce AWS's documented limits for every API family the world does not override.
  aws_limits: bool,
  rng: Mutex<fastrand::Rng>,
  buckets: Mutex<BTreeMap<(String, String), Bucket>>,
}

impl Faults {
  pub fn new(
    spec: BTreeMap<String, FaultSpec>,
    limits: BTreeMap<String, LimitSetting>,
    aws_limits: bool,
    seed: u64,
  ) -> Self {
    Self {
      spec,
      limits,
      aws_limits,
      rng: Mutex::new(fastrand::Rng::with_seed(seed)),
      buckets: Mutex::new(BTreeMap::new()),
    }
  }

  /// The limit a call counts against, and the bucket's key: the most specific world entry
  /// (operation, API family, service, `*`), else AWS's default for the family when the world
  /// enforces AWS's limits. `None`: unlimited (or `off`).
  fn limit_for(
    &self,
    service: &str,
    operation: &str,
    region: Option<&str>,
  ) -> Option<(Limit, (String, String))> {
    let family = family(service, operation);
    let region = region.unwrap_or("global").to_string();
    let keys = [Some(operation), family, Some(service), Some("*")];
    for key in keys.into_iter().flatten() {
      if let Some(setting) = self.limits.get(key) {
        return match setting {
          LimitSetting::Off => None,
          LimitSetting::Limit(limit) => Some((*limit, (key.to_string(), region))),
        };
      }
    }
    let family = family.filter(|_| self.aws_limits)?;
    // Route 53 is global: its calls carry no region, so one bucket serves the account.
    aws_default(family).map(|limit| (limit, (family.to_string(), region)))
  }

  /// The faults for a call: each field from the most specific entry that sets it — the
  /// operation (`PromoteReadReplica`), then the service (`rds`), then `*`.
  fn lookup(&self, service: &str, operation: &str) -> FaultSpec {
    let mut merged = FaultSpec::default();
    for key in [operation, service, "*"] {
      if let Some(spec) = self.spec.get(key) {
        merged.throttle = merged.throttle.or(spec.throttle);
        merged.error = merged.error.or(spec.error);
        merged.latency = merged.latency.or(spec.latency);
        merged.hang = merged.hang.or(spec.hang);
      }
    }
    merged
  }

  /// Decide one call's fate: extra modelled latency and a verdict. One random draw per call
  /// that has any probability configured, so a seed reproduces a sequential run exactly.
  pub fn roll(&self, service: &str, operation: &str) -> (Duration, Verdict) {
    let spec = self.lookup(service, operation);
    let extra = spec.latency.map_or(Duration::ZERO, |latency| latency.0);
    let hang = spec.hang.unwrap_or(0.0);
    let throttle = spec.throttle.unwrap_or(0.0);
    let error = spec.error.unwrap_or(0.0);
    if hang <= 0.0 && throttle <= 0.0 && error <= 0.0 {
      return (extra, Verdict::Pass);
    }
    let draw = self
      .rng
      .lock()
      .unwrap_or_else(PoisonError::into_inner)
      .f64();
    let verdict = if draw < hang {
      Verdict::Hang
    } else if draw < hang + throttle {
      Verdict::Throttle
    } else if draw < hang + throttle + error {
      Verdict::Error
    } else {
      Verdict::Pass
    };
    (extra, verdict)
  }

  /// Take `cost` tokens from the bucket this call counts against; `false` = over the limit
  /// (the call is refused, as AWS refuses it, and takes no token).
  pub fn take_token(
    &self,
    service: &str,
    operation: &str,
    region: Option<&str>,
    cost: u32,
    clock: &Clock,
  ) -> bool {
    let Some((limit, key)) = self.limit_for(service, operation, region) else {
      return true;
    };
    let capacity = limit.burst.max(1.0);
    let cost = f64::from(cost);
    let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
    let now = clock.now();
    let bucket = buckets.entry(key).or_insert(Bucket {
      tokens: capacity,
      last: now,
    });
    let refill = clock
      .to_modelled(now.saturating_duration_since(bucket.last))
      .as_secs_f64()
      * limit.rate;
    bucket.tokens = (bucket.tokens + refill).min(capacity);
    bucket.last = now;
    // A millionth of a token of slack absorbs float rounding: a client that paced itself on
    // the same clock must not be refused for 0.9999999 tokens.
    if bucket.tokens + 1e-6 >= cost {
      bucket.tokens -= cost;
      true
    } else {
      false
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::cloud::sim::world::ModelDuration;

  #[test]
  fn specific_entries_override_general_ones_field_by_field() {
    let mut spec = BTreeMap::new();
    spec.insert(
      "*".to_string(),
      FaultSpec {
        latency: Some(ModelDuration::secs(1)),
        throttle: Some(0.5),
        ..FaultSpec::default()
      },
    );
    spec.insert(
      crate::cloud::ops::rds::PROMOTE_READ_REPLICA
        .name
        .to_string(),
      FaultSpec {
        throttle: Some(1.0),
        ..FaultSpec::default()
      },
    );
    let faults = Faults::new(spec, BTreeMap::new(), false, 7);
    let merged = faults.lookup("rds", crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name);
    assert_eq!(merged.throttle, Some(1.0));
    assert_eq!(merged.latency, Some(ModelDuration::secs(1)));
    assert_eq!(
      faults
        .roll("rds", crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name)
        .1,
      Verdict::Throttle
    );
  }

  #[tokio::test(start_paused = true)]
  async fn aws_limits_apply_per_family_and_world_entries_override_them() {
    let clock = Clock::scaled(1.0);
    let faults = Faults::new(BTreeMap::new(), BTreeMap::new(), true, 1);
    // Route 53: 5 per second for the whole account.
    for _ in 0..5 {
      assert!(faults.take_token(
        "route53",
        crate::cloud::ops::route53::GET_CHANGE.name,
        None,
        1,
        &clock
      ));
    }
    assert!(!faults.take_token(
      "route53",
      crate::cloud::ops::route53::LIST_RESOURCE_RECORD_SETS.name,
      None,
      1,
      &clock
    ));
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(faults.take_token(
      "route53",
      crate::cloud::ops::route53::GET_CHANGE.name,
      None,
      1,
      &clock
    ));
    // RDS: 300 at once per region, then 12 per second.
    for _ in 0..300 {
      assert!(faults.take_token(
        "rds",
        crate::cloud::ops::rds::DESCRIBE_DB_INSTANCES.name,
        Some("us-west-2"),
        1,
        &clock
      ));
    }
    assert!(!faults.take_token(
      "rds",
      crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name,
      Some("us-west-2"),
      1,
      &clock
    ));
    assert!(faults.take_token(
      "rds",
      crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name,
      Some("us-east-1"),
      1,
      &clock
    ));
    // S3 has no family: unlimited.
    assert!(faults.take_token(
      "s3",
      crate::cloud::ops::s3::HEAD_OBJECT.name,
      Some("us-west-2"),
      1,
      &clock
    ));

    let limits = BTreeMap::from([
      ("route53".to_string(), LimitSetting::Off),
      (
        crate::cloud::ops::ecs::UPDATE_SERVICE.name.to_string(),
        LimitSetting::Limit(Limit::new(1.0, 1.0)),
      ),
    ]);
    let faults = Faults::new(BTreeMap::new(), limits, true, 1);
    for _ in 0..50 {
      assert!(faults.take_token(
        "route53",
        crate::cloud::ops::route53::GET_CHANGE.name,
        None,
        1,
        &clock
      ));
    }
    assert!(faults.take_token(
      "ecs",
      crate::cloud::ops::ecs::UPDATE_SERVICE.name,
      Some("r"),
      1,
      &clock
    ));
    assert!(!faults.take_token(
      "ecs",
      crate::cloud::ops::ecs::UPDATE_SERVICE.name,
      Some("r"),
      1,
      &clock
    ));
    assert!(faults.take_token(
      "ecs",
      crate::cloud::ops::ecs::DESCRIBE_SERVICES.name,
      Some("r"),
      1,
      &clock
    ));
  }

  #[test]
  fn without_the_flag_only_world_entries_limit() {
    let clock = Clock::scaled(1.0);
    let faults = Faults::new(BTreeMap::new(), BTreeMap::new(), false, 1);
    for _ in 0..1000 {
      assert!(faults.take_token(
        "route53",
        crate::cloud::ops::route53::GET_CHANGE.name,
        None,
        1,
        &clock
      ));
    }
  }
}
