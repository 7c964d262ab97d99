//! A step's retry policy, shared by its run and its rollback: each attempt is bounded by the
//! step's timeout; a retryable failure is tried again, after an exponential backoff with
//! jitter, until the step's attempts are spent or the run stops.

use std::{future::Future, time::Duration};

use tokio::sync::watch;

use crate::{
  actions::ActionError,
  cloud::Clock,
  runbook::{format_duration, RetryPolicy},
};

/// Run one attempt under the step's `timeout` (modelled time). Past it, the attempt fails
/// with "`what` after `timeout` (the step's timeout)", and what the action last reported
/// (`last_seen`: the state it was waiting on, or the error it was retrying after).
pub(super) async fn within_timeout<T>(
  clock: Clock,
  timeout: Duration,
  what: &str,
  last_seen: impl FnOnce() -> Option<String>,
  attempt: impl Future<Output = Result<T, ActionError>>,
) -> Result<T, ActionError> {
  match tokio::time::timeout(clock.to_wall(timeout), attempt).await {
    Ok(result) => result,
    Err(_) => {
      let last = last_seen().map_or_else(String::new, |last| format!("; last seen: {last}"));
      Err(ActionError::failed(format!(
        "{what} after {} (the step's timeout){last}",
        format_duration(timeout)
      )))
    }
  }
}

/// After attempt `attempt` failed with `err`: the backoff before the next attempt, or `None`
/// when there is none (the error is not retryable, `attempt` was the `last`, or the run is
/// `stopping`). `first` is the first attempt this process makes (a resumed step counts on).
pub(super) fn next_attempt(
  policy: &RetryPolicy,
  err: &ActionError,
  attempt: u32,
  (first, last): (u32, u32),
  stopping: bool,
) -> Option<Duration> {
  if !err.retryable || attempt >= last || stopping {
    return None;
  }
  Some(backoff(policy.backoff, policy.max_backoff, attempt - first))
}

/// Wait out a backoff, or less if the run stops meanwhile (`cancel`).
pub(super) async fn pause(clock: Clock, backoff: Duration, mut cancel: watch::Receiver<bool>) {
  tokio::select! {
    _ = clock.sleep(backoff) => {}
    _ = cancel.wait_for(|cancelled| *cancelled) => {}
  }
}

/// Exponential backoff with "equal jitter": half the delay fixed, half random, so retries from
/// many runs spread out but never collapse to zero.
pub fn backoff(base: Duration, max: Duration, retry: u32) -> Duration {
  let exp = base.saturating_mul(2u32.saturating_pow(retry.min(20)));
  let capped = exp.min(max.max(base));
  let half = capped / 2;
  half + half.mul_f64(fastrand::f64())
}
