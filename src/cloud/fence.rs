//! The mutation fence: one switch per run that every mutating call checks right before it
//! leaves, and that anything which learns the run may no longer act can close, with a reason.
//!
//! Why one mechanism: several different discoveries mean the same thing, "this process must not
//! change the world any more".
//! * the run's lock was taken or broken by someone else (a renewal found the lock file or object
//!   changed under it): another operator now owns the world;
//! * the lease the run last renewed has run out (the state store did not answer the renewals):
//!   another operator may legitimately have taken the lock;
//! * the journal cannot be written (disk full, I/O error): a call made now could not be
//!   journalled, so a resume could not know about it.
//!
//! Invariants:
//! * Once closed, a fence stays closed, and keeps the first reason it was given.
//! * [`MutationFence::check`] is what every mutating call asks right before it is sent: the
//!   client layer ([`crate::cloud::limiter`]) for each attempt of every provider call it knows to
//!   mutate, and the engine before every `apply` and before every notification is dispatched. A
//!   call already on the wire when the fence closes is not recalled; none starts after.
//! * The lease is held on a monotonic clock (tokio's [`Instant`], so tests can pause it): a
//!   wall-clock jump neither extends nor cuts it. `check` closes the fence itself once the
//!   lease's deadline has passed, so an expired lease stops mutations at the very next call, not
//!   at the next renewal.
//! * A fence nobody holds a lease on (planning, tests, drill notifications) only closes when
//!   told to.

use std::{
  fmt,
  sync::{Arc, Mutex, PoisonError},
};

use tokio::{sync::watch, time::Instant};

/// Why a fence closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FenceReason {
  /// Someone else took or broke the run's lock (the message says who, when known).
  LockLost(String),
  /// The run's lease ran out without a successful renewal (the state store did not answer).
  LeaseExpired,
  /// The journal could not be written (the message says why).
  JournalUnwritable(String),
}

impl FenceReason {
  /// Whether the run lost its claim on the world (exit 4), rather than its journal (exit 1).
  pub fn is_lock_loss(&self) -> bool {
    matches!(self, FenceReason::LockLost(_) | FenceReason::LeaseExpired)
  }
}

impl fmt::Display for FenceReason {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      FenceReason::LockLost(why) => write!(f, "{why}"),
      FenceReason::LeaseExpired => write!(
        f,
        "the lock's lease expired without a successful renewal (the state store did not \
         answer); another run may now hold the lock"
      ),
      FenceReason::JournalUnwritable(why) => write!(f, "the journal cannot be written: {why}"),
    }
  }
}

/// See the module docs. Cheap to clone: every clone is the same fence.
#[derive(Clone, Default)]
pub struct MutationFence {
  inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
  state: Mutex<FenceState>,
  /// Told `true` when the fence closes, for those who wait for it.
  closed: watch::Sender<bool>,
}

#[derive(Default)]
struct FenceState {
  reason: Option<FenceReason>,
  /// When it closed (wall clock, for the record).
  closed_at: Option<chrono::DateTime<chrono::Utc>>,
  /// The lease's end on the monotonic clock, once someone holds one.
  lease_until: Option<Instant>,
}

impl fmt::Debug for MutationFence {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let state = self.state();
    f.debug_struct("MutationFence")
      .field("reason", &state.reason)
      .field("lease_until", &state.lease_until)
      .finish()
  }
}

impl MutationFence {
  fn state(&self) -> std::sync::MutexGuard<'_, FenceState> {
    self
      .inner
      .state
      .lock()
      .unwrap_or_else(PoisonError::into_inner)
  }

  /// Close the fence. The first reason wins; returns whether this call closed it.
  pub fn close(&self, reason: FenceReason) -> bool {
    let mut state = self.state();
    if state.reason.is_some() {
      return false;
    }
    tracing::error!("no further mutating call: {reason}");
    state.reason = Some(reason);
    state.closed_at = Some(chrono::Utc::now());
    drop(state);
    self.inner.closed.send_replace(true);
    true
  }

  /// The lease is good until `deadline` (a renewal succeeded). Never moves the deadline back.
  pub fn hold_lease_until(&self, deadline: Instant) {
    let mut state = self.state();
    state.lease_until = Some(state.lease_until.map_or(deadline, |old| old.max(deadline)));
  }

  /// When the lease ends, if one is held.
  pub fn lease_until(&self) -> Option<Instant> {
    self.state().lease_until
  }

  /// May a mutating call leave now? `Err` with the reason the fence is closed; an expired lease
  /// closes it here.
  pub fn check(&self) -> Result<(), FenceReason> {
    let mut state = self.state();
    if let Some(reason) = &state.reason {
      return Err(reason.clone());
    }
    match state.lease_until {
      Some(deadline) if Instant::now() >= deadline => {
        state.reason = Some(FenceReason::LeaseExpired);
        state.closed_at = Some(chrono::Utc::now());
        drop(state);
        tracing::error!("no further mutating call: {}", FenceReason::LeaseExpired);
        self.inner.closed.send_replace(true);
        Err(FenceReason::LeaseExpired)
      }
      _ => Ok(()),
    }
  }

  /// When the fence closed (wall clock), if it did.
  pub fn closed_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
    self.state().closed_at
  }

  /// Why the fence is closed, if it is (without checking the lease).
  pub fn reason(&self) -> Option<FenceReason> {
    self.state().reason.clone()
  }

  /// Wait until the fence closes (by [`close`](Self::close), or by [`check`](Self::check) seeing
  /// the lease expired), and say why.
  pub async fn closed(&self) -> FenceReason {
    let mut closed = self.inner.closed.subscribe();
    loop {
      if let Some(reason) = self.reason() {
        return reason;
      }
      // The sender lives in `inner`, which `self` keeps alive: `changed` cannot fail.
      let _ = closed.changed().await;
    }
  }
}

#[cfg(test)]
mod tests {
  use std::time::Duration;

  use super::*;

  #[tokio::test(start_paused = true)]
  async fn a_closed_fence_stays_closed_with_its_first_reason() {
    let fence = MutationFence::default();
    assert_eq!(fence.check(), Ok(()));
    assert!(fence.close(FenceReason::JournalUnwritable("disk full".into())));
    assert!(!fence.close(FenceReason::LeaseExpired));
    assert_eq!(
      fence.clone().check(),
      Err(FenceReason::JournalUnwritable("disk full".into()))
    );
    assert!(!fence.reason().unwrap().is_lock_loss());
  }

  #[tokio::test(start_paused = true)]
  async fn an_expired_lease_closes_the_fence_at_the_next_check() {
    let fence = MutationFence::default();
    fence.hold_lease_until(Instant::now() + Duration::from_secs(6));
    tokio::time::advance(Duration::from_millis(5_999)).await;
    assert_eq!(fence.check(), Ok(()));
    // A renewal never shortens the lease.
    fence.hold_lease_until(Instant::now());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(fence.check(), Err(FenceReason::LeaseExpired));
    assert!(fence.reason().unwrap().is_lock_loss());
  }

  #[tokio::test(start_paused = true)]
  async fn waiters_learn_when_it_closes() {
    let fence = MutationFence::default();
    let waiter = tokio::spawn({
      let fence = fence.clone();
      async move { fence.closed().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished());
    fence.close(FenceReason::LockLost("taken by run r2".into()));
    assert_eq!(
      waiter.await.unwrap(),
      FenceReason::LockLost("taken by run r2".into())
    );
  }
}
