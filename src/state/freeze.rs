//! Freezes: while one is active, live drills do not start (they are recorded as skipped).
//!
//! There are two kinds, and [`active`] reports both:
//! * an explicit freeze, `drctl freeze --reason TEXT` until `drctl unfreeze`: one file
//!   `<state>/freeze.json` (or the object `<prefix>/freeze.json` of an `s3://` state) saying who
//!   froze, when and why. It has no expiry: a human set it, a human lifts it.
//! * an implicit freeze by every live run while it runs: that is its lock (see `lock`), so it is
//!   held, renewed and released exactly like the lock, and it ends when the lock goes stale (the
//!   holder process is gone from this host, or its lease ran out). A crashed run therefore stops
//!   freezing drills as soon as its lock is stale, without anyone running `drctl unlock`, and a
//!   stale lock never blocks a drill of another lock group.
//!
//! A freeze only holds back drills: an operator's `drctl run` and `drctl failover` go ahead
//! (they take their group's lock as always), and dry-run drills still run (they make no
//! mutating call).
//!
//! Invariants: the local file is replaced in one step (a private file renamed over it) and the
//! S3 object is written with a condition on what was read (`If-None-Match: *` or `If-Match`), so
//! a reader never sees half a freeze and two `drctl freeze` never interleave their writes.

use std::{fmt, io, path::PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
  lock::{self, LockError, LockHolder, LockStore},
  s3::S3State,
  store::create_private_dir,
};
use crate::cloud::{aws::StoreError, CloudError};

/// An explicit freeze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freeze {
  /// Why (`--reason`).
  pub reason: String,
  /// The operating-system account that froze.
  pub by: String,
  pub host: String,
  pub at: DateTime<Utc>,
}

impl Freeze {
  /// A freeze by this process's user, now.
  pub fn now(reason: &str) -> Freeze {
    Freeze {
      reason: reason.to_string(),
      by: super::os_user(),
      host: lock::hostname(),
      at: Utc::now(),
    }
  }
}

impl fmt::Display for Freeze {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(
      f,
      "frozen by {} on {} at {}: {}",
      self.by,
      self.host,
      self.at.format("%Y-%m-%d %H:%M:%SZ"),
      self.reason
    )
  }
}

/// Why live drills must not start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frozen {
  /// `drctl freeze`.
  Explicit(Freeze),
  /// A live run holds a lock that is not stale.
  Running(LockHolder),
}

impl fmt::Display for Frozen {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Frozen::Explicit(freeze) => freeze.fmt(f),
      Frozen::Running(holder) => write!(
        f,
        "live run {} of runbook `{}` is in progress (lock group `{}`, host {}, started {})",
        holder.run_id,
        holder.runbook,
        holder.group,
        holder.host,
        holder.started_at.format("%Y-%m-%d %H:%M:%SZ")
      ),
    }
  }
}

#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
  #[error("freeze {path}: {source}")]
  Io {
    path: PathBuf,
    #[source]
    source: io::Error,
  },
  #[error("freeze {path}: unreadable ({reason}); inspect it, then `drctl unfreeze`")]
  Unreadable { path: PathBuf, reason: String },
  #[error("freeze {path}: {source}")]
  Remote {
    path: PathBuf,
    #[source]
    source: Box<CloudError>,
  },
  #[error("freeze {path}: it changed under every attempt; try again")]
  Contended { path: PathBuf },
  #[error(transparent)]
  Lock(#[from] LockError),
  /// Written by a newer drctl: neither read (live drills stay held back) nor lifted.
  #[error(transparent)]
  NewerFormat(crate::format::NewerFormat),
}

/// Where the explicit freeze lives.
#[derive(Debug, Clone)]
pub enum FreezeStore {
  /// `<state root>/freeze.json`.
  Local(PathBuf),
  /// `<prefix>/freeze.json` in the state bucket.
  S3(S3State),
}

/// How many times a write retries a race it lost (the object changed between read and write).
const WRITE_ROUNDS: usize = 8;

impl FreezeStore {
  /// A local state directory's freeze.
  pub fn local(state_root: &std::path::Path) -> FreezeStore {
    FreezeStore::Local(state_root.join("freeze.json"))
  }

  fn path(&self) -> PathBuf {
    match self {
      FreezeStore::Local(path) => path.clone(),
      FreezeStore::S3(state) => PathBuf::from(format!(
        "s3://{}/{}",
        state.location.bucket,
        state.location.freeze_key()
      )),
    }
  }

  /// The explicit freeze, if there is one.
  pub async fn get(&self) -> Result<Option<Freeze>, FreezeError> {
    let bytes = match self {
      FreezeStore::Local(path) => match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(source) => {
          return Err(FreezeError::Io {
            path: path.clone(),
            source,
          })
        }
      },
      FreezeStore::S3(state) => self.get_object(state).await?.map(|(bytes, _)| bytes),
    };
    bytes.map(|bytes| self.parse(&bytes)).transpose()
  }

  fn parse(&self, bytes: &[u8]) -> Result<Freeze, FreezeError> {
    use crate::format::{self, Kind};
    let unreadable = |reason: String| FreezeError::Unreadable {
      path: self.path(),
      reason,
    };
    let value: serde_json::Value =
      serde_json::from_slice(bytes).map_err(|err| unreadable(err.to_string()))?;
    if let Err(issue) = format::read(Kind::Freeze, &value) {
      return Err(match issue.newer(Kind::Freeze, self.path().display()) {
        Some(newer) => FreezeError::NewerFormat(newer),
        None => unreadable(issue.to_string()),
      });
    }
    serde_json::from_value(value).map_err(|err| unreadable(err.to_string()))
  }

  async fn get_object(&self, state: &S3State) -> Result<Option<(Vec<u8>, String)>, FreezeError> {
    state
      .store
      .get(&state.location.bucket, &state.location.freeze_key())
      .await
      .map_err(|source| self.remote(source))
  }

  fn remote(&self, source: CloudError) -> FreezeError {
    FreezeError::Remote {
      path: self.path(),
      source: Box::new(source),
    }
  }

  /// Freeze (replacing the freeze there is, if any: its new reason stands); the one replaced.
  pub async fn set(&self, freeze: &Freeze) -> Result<Option<Freeze>, FreezeError> {
    let stamped = crate::format::stamped(crate::format::Kind::Freeze, freeze);
    let text = serde_json::to_vec_pretty(&stamped).map_err(|err| FreezeError::Unreadable {
      path: self.path(),
      reason: err.to_string(),
    })?;
    match self {
      FreezeStore::Local(path) => {
        let io_err = |source| FreezeError::Io {
          path: path.clone(),
          source,
        };
        if let Some(dir) = path.parent() {
          create_private_dir(dir).map_err(io_err)?;
        }
        let replaced = self.get().await.ok().flatten();
        lock::replace_with(path, &text).map_err(io_err)?;
        Ok(replaced)
      }
      FreezeStore::S3(state) => {
        let (bucket, key) = (&state.location.bucket, state.location.freeze_key());
        for _ in 0..WRITE_ROUNDS {
          let current = self.get_object(state).await?;
          let written = match &current {
            None => state.store.put_if_absent(bucket, &key, text.clone()).await,
            Some((_, etag)) => {
              state
                .store
                .put_if_match(bucket, &key, text.clone(), etag)
                .await
            }
          };
          match written {
            Ok(_) => {
              return Ok(current.and_then(|(bytes, _)| self.parse(&bytes).ok()));
            }
            Err(StoreError::Conflict) => continue,
            Err(StoreError::Cloud(source)) => return Err(self.remote(source)),
          }
        }
        Err(FreezeError::Contended { path: self.path() })
      }
    }
  }

  /// Lift the explicit freeze; the one lifted (`None`: there was none). An unreadable freeze
  /// is lifted too: that is what unfreeze is for.
  pub async fn clear(&self) -> Result<Option<Freeze>, FreezeError> {
    let lifted = match self.get().await {
      Ok(freeze) => freeze,
      Err(FreezeError::Unreadable { .. }) => None,
      Err(err) => return Err(err),
    };
    match self {
      FreezeStore::Local(path) => match std::fs::remove_file(path) {
        Ok(()) => {
          super::journal::sync_dir(path);
          Ok(lifted)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FreezeError::Io {
          path: path.clone(),
          source,
        }),
      },
      FreezeStore::S3(state) => {
        state
          .store
          .delete(&state.location.bucket, &state.location.freeze_key())
          .await
          .map_err(|source| self.remote(source))?;
        Ok(lifted)
      }
    }
  }
}

/// Every freeze in force at `now`: the explicit one first, then each live run (a lock that is
/// not stale), by lock group. Empty: live drills may start.
pub async fn active(
  freezes: &FreezeStore,
  locks: &LockStore,
  now: DateTime<Utc>,
) -> Result<Vec<Frozen>, FreezeError> {
  let mut found: Vec<Frozen> = freezes
    .get()
    .await?
    .into_iter()
    .map(Frozen::Explicit)
    .collect();
  found.extend(
    locks
      .holders()
      .await?
      .into_iter()
      .filter(|holder| holder.staleness(now).is_none())
      .map(Frozen::Running),
  );
  Ok(found)
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::state::lock::Lock;

  fn stores(dir: &std::path::Path) -> (FreezeStore, LockStore) {
    (FreezeStore::local(dir), LockStore::Local(dir.join("locks")))
  }

  #[tokio::test]
  async fn an_explicit_freeze_holds_until_unfrozen() {
    let dir = tempfile::tempdir().unwrap();
    let (freezes, locks) = stores(dir.path());
    assert!(active(&freezes, &locks, Utc::now())
      .await
      .unwrap()
      .is_empty());
    let freeze = Freeze::now("change window CHG-1");
    assert_eq!(freezes.set(&freeze).await.unwrap(), None);
    let found = active(&freezes, &locks, Utc::now()).await.unwrap();
    assert_eq!(found, [Frozen::Explicit(freeze.clone())]);
    let text = found[0].to_string();
    assert!(
      text.starts_with(&format!("frozen by {} on ", freeze.by)),
      "{text}"
    );
    assert!(text.ends_with(": change window CHG-1"), "{text}");
    // A second freeze replaces the first and says which it replaced.
    let second = Freeze::now("extended");
    assert_eq!(freezes.set(&second).await.unwrap(), Some(freeze));
    assert_eq!(freezes.clear().await.unwrap(), Some(second));
    assert_eq!(freezes.clear().await.unwrap(), None);
    assert!(active(&freezes, &locks, Utc::now())
      .await
      .unwrap()
      .is_empty());
  }

  /// The freeze carries its format; one a newer drctl wrote is neither read nor lifted, and
  /// live drills stay held back (an error, which the scheduler takes as frozen).
  #[tokio::test]
  async fn a_freeze_a_newer_drctl_wrote_is_neither_read_nor_lifted() {
    let dir = tempfile::tempdir().unwrap();
    let (freezes, locks) = stores(dir.path());
    freezes.set(&Freeze::now("window")).await.unwrap();
    let path = dir.path().join("freeze.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["format"], 1, "{text}");
    value["format"] = 2.into();
    std::fs::write(&path, value.to_string()).unwrap();
    let newer = |err: FreezeError| match err {
      FreezeError::NewerFormat(newer) => assert_eq!(newer.found, 2),
      other => panic!("expected a newer format, got {other}"),
    };
    newer(active(&freezes, &locks, Utc::now()).await.unwrap_err());
    newer(freezes.clear().await.unwrap_err());
    assert!(path.exists(), "a newer drctl's freeze was lifted");
  }

  #[tokio::test]
  async fn a_live_run_freezes_until_its_lock_is_released_or_stale() {
    let dir = tempfile::tempdir().unwrap();
    let (freezes, locks) = stores(dir.path());
    let live = Lock::acquire(
      &dir.path().join("locks"),
      LockHolder::this_process("run-1", "regional-failover", "default"),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    let found = active(&freezes, &locks, Utc::now()).await.unwrap();
    assert!(
      matches!(found.as_slice(), [Frozen::Running(holder)] if holder.run_id == "run-1"),
      "{found:?}"
    );
    assert!(found[0]
      .to_string()
      .contains("live run run-1 of runbook `regional-failover`"));
    // Once its lease has run out the lock is stale: the run no longer freezes anything.
    let later = Utc::now() + chrono::Duration::hours(1);
    assert!(active(&freezes, &locks, later).await.unwrap().is_empty());
    live.release().unwrap();
    assert!(active(&freezes, &locks, Utc::now())
      .await
      .unwrap()
      .is_empty());
  }

  #[tokio::test]
  async fn a_crashed_runs_lock_does_not_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let (freezes, locks) = stores(dir.path());
    // A holder on this host whose process is gone (a pid beyond pid_max), lease still running.
    let dead = LockHolder {
      pid: 4_000_000,
      pid_start: None,
      ..LockHolder::this_process("run-dead", "regional-failover", "default")
    };
    let _kept = Lock::acquire(&dir.path().join("locks"), dead, Lock::DEFAULT_LEASE).unwrap();
    assert_eq!(locks.holders().await.unwrap().len(), 1);
    assert!(active(&freezes, &locks, Utc::now())
      .await
      .unwrap()
      .is_empty());
  }

  #[tokio::test]
  async fn an_unreadable_freeze_is_an_error_and_unfreeze_lifts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (freezes, locks) = stores(dir.path());
    std::fs::write(dir.path().join("freeze.json"), "{torn").unwrap();
    let err = active(&freezes, &locks, Utc::now()).await.unwrap_err();
    assert!(matches!(err, FreezeError::Unreadable { .. }), "{err:?}");
    assert_eq!(freezes.clear().await.unwrap(), None);
    assert!(!dir.path().join("freeze.json").exists());
  }
}
