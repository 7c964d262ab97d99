//! Fault injection (throttling, 5xx, extra latency, hangs) from a seeded random generator, and
//! per-service token-bucket rate limits in modelled time.

use std::{
  collections::BTreeMap,
  sync::{Mutex, PoisonError},
  time::Duration,
};

use super::world::FaultSpec;
use crate::cloud::Clock;

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
  limits: BTreeMap<String, f64>,
  rng: Mutex<fastrand::Rng>,
  buckets: Mutex<BTreeMap<(String, String), Bucket>>,
}

impl Faults {
  pub fn new(spec: BTreeMap<String, FaultSpec>, limits: BTreeMap<String, f64>, seed: u64) -> Self {
    Self {
      spec,
      limits,
      rng: Mutex::new(fastrand::Rng::with_seed(seed)),
      buckets: Mutex::new(BTreeMap::new()),
    }
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

  /// Take a token from the service's bucket in this region; `false` = over the rate limit.
  pub fn take_token(&self, service: &str, region: Option<&str>, clock: &Clock) -> bool {
    let Some(&rate) = self.limits.get(service).or_else(|| self.limits.get("*")) else {
      return true;
    };
    let capacity = rate.max(1.0);
    let key = (service.to_string(), region.unwrap_or("global").to_string());
    let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
    let now = clock.now();
    let bucket = buckets.entry(key).or_insert(Bucket {
      tokens: capacity,
      last: now,
    });
    let refill = clock
      .to_modelled(now.duration_since(bucket.last))
      .as_secs_f64()
      * rate;
    bucket.tokens = (bucket.tokens + refill).min(capacity);
    bucket.last = now;
    if bucket.tokens >= 1.0 {
      bucket.tokens -= 1.0;
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
      "PromoteReadReplica".to_string(),
      FaultSpec {
        throttle: Some(1.0),
        ..FaultSpec::default()
      },
    );
    let faults = Faults::new(spec, BTreeMap::new(), 7);
    let merged = faults.lookup("rds", "PromoteReadReplica");
    assert_eq!(merged.throttle, Some(1.0));
    assert_eq!(merged.latency, Some(ModelDuration::secs(1)));
    assert_eq!(
      faults.roll("rds", "PromoteReadReplica").1,
      Verdict::Throttle
    );
  }
}
