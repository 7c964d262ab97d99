//! One lock per runbook: a second run of the same runbook is refused while one holds it.
//!
//! A lock is a file created with `O_EXCL` holding its holder (run id, host, pid, start time) and a
//! lease expiry that the holder renews. It is stale when its lease expired, or when its holder
//! ran on this host and that process is gone. A stale lock is still refused — the operator sees
//! who died holding it and breaks it with `drctl unlock` — except by `resume` of the very run
//! that holds it, which takes it over.

use std::{
  fs::OpenOptions,
  io::{self, Write},
  path::{Path, PathBuf},
  time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
  journal::sync_dir,
  s3::{self, S3Lock, S3State},
};

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
  pub run_id: String,
  pub runbook: String,
  pub host: String,
  pub pid: u32,
  pub started_at: DateTime<Utc>,
  pub lease_expires_at: DateTime<Utc>,
}

impl LockHolder {
  /// Why the holder is stale, if it is.
  pub fn staleness(&self, now: DateTime<Utc>) -> Option<String> {
    if self.host == hostname() && !process_alive(self.pid) {
      return Some(format!("process {} on {} is gone", self.pid, self.host));
    }
    if self.lease_expires_at < now {
      return Some(format!(
        "its lease expired at {}",
        self.lease_expires_at.format("%Y-%m-%d %H:%M:%SZ")
      ));
    }
    None
  }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
  #[error("{}", held_message(.holder, .stale.as_deref()))]
  Held {
    holder: Box<LockHolder>,
    /// Why the holder looks dead, when it does.
    stale: Option<String>,
  },
  #[error("lock {path}: {source}")]
  Io {
    path: PathBuf,
    #[source]
    source: io::Error,
  },
  #[error("lock {path}: unreadable ({reason}); inspect it, then `drctl unlock`")]
  Unreadable { path: PathBuf, reason: String },
  /// The state bucket did not answer (or refused).
  #[error("lock {path}: {source}")]
  Remote {
    path: PathBuf,
    #[source]
    source: Box<crate::cloud::CloudError>,
  },
  /// Our lock object was overwritten or deleted: someone else may be running the runbook.
  #[error("{}", lost_message(.runbook, .path, .now_held_by.as_deref()))]
  Lost {
    runbook: String,
    path: PathBuf,
    now_held_by: Option<Box<LockHolder>>,
  },
  /// Every attempt lost a race without learning who won.
  #[error("lock {path}: contended (it changed under every attempt); try again")]
  Contended { path: PathBuf },
}

fn lost_message(runbook: &str, path: &Path, now_held_by: Option<&LockHolder>) -> String {
  let by = match now_held_by {
    Some(holder) => format!(
      "it is now held by run {} (host {}, pid {})",
      holder.run_id, holder.host, holder.pid
    ),
    None => "it was broken (`drctl unlock`)".to_string(),
  };
  format!(
    "LOST THE LOCK of runbook `{runbook}` ({}): {by}; another run may now act on the same \
     resources — check before going on",
    path.display()
  )
}

fn held_message(holder: &LockHolder, stale: Option<&str>) -> String {
  let mut message = format!(
    "runbook `{}` is locked by run {} (host {}, pid {}, started {})",
    holder.runbook,
    holder.run_id,
    holder.host,
    holder.pid,
    holder.started_at.format("%Y-%m-%d %H:%M:%SZ"),
  );
  match stale {
    Some(reason) => message.push_str(&format!(
      "\n  the lock is stale: {reason}\n  resume it with `drctl resume {}`, or break it with `drctl unlock {}`",
      holder.run_id, holder.runbook
    )),
    None => message.push_str("\n  wait for it to finish, or watch it with `drctl status`"),
  }
  message
}

/// A held lock. Dropping it does not release it (a crashed holder must look like one); call
/// [`Lock::release`].
#[derive(Debug)]
pub struct Lock {
  path: PathBuf,
  holder: LockHolder,
  lease: Duration,
}

impl Lock {
  /// The default lease: renewed every third of it while the run is alive.
  pub const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 60);

  /// Take the lock for `holder.runbook` in `dir`, or report who holds it. A lock held by the same
  /// run id (a resume) is taken over.
  pub fn acquire(dir: &Path, holder: LockHolder, lease: Duration) -> Result<Lock, LockError> {
    let path = lock_path(dir, &holder.runbook);
    let io_err = |source| LockError::Io {
      path: path.clone(),
      source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    let mut holder = holder;
    holder.lease_expires_at = Utc::now() + lease;
    let text =
      serde_json::to_string_pretty(&holder).map_err(|err| io_err(io::Error::other(err)))?;
    loop {
      match create_with(&path, text.as_bytes()) {
        Ok(()) => {
          return Ok(Lock {
            path,
            holder,
            lease,
          });
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
          let current = match read_holder(&path)? {
            Some(current) => current,
            // Released between our create and our read: try again.
            None => continue,
          };
          if current.run_id == holder.run_id {
            let lock = Lock {
              path,
              holder,
              lease,
            };
            lock.write()?;
            return Ok(lock);
          }
          let stale = current.staleness(Utc::now());
          return Err(LockError::Held {
            holder: Box::new(current),
            stale,
          });
        }
        Err(err) => return Err(io_err(err)),
      }
    }
  }

  pub fn holder(&self) -> &LockHolder {
    &self.holder
  }

  /// Extend the lease (called periodically by the engine).
  pub fn renew(&mut self) -> Result<(), LockError> {
    self.holder.lease_expires_at = Utc::now() + self.lease;
    self.write()
  }

  fn write(&self) -> Result<(), LockError> {
    let io_err = |source| LockError::Io {
      path: self.path.clone(),
      source,
    };
    let text =
      serde_json::to_string_pretty(&self.holder).map_err(|err| io_err(io::Error::other(err)))?;
    let tmp = self.path.with_extension("lock.tmp");
    std::fs::write(&tmp, text).map_err(io_err)?;
    std::fs::rename(&tmp, &self.path).map_err(io_err)?;
    Ok(())
  }

  /// Release the lock (only if we still hold it).
  pub fn release(self) -> Result<(), LockError> {
    match read_holder(&self.path)? {
      Some(current) if current.run_id == self.holder.run_id => std::fs::remove_file(&self.path)
        .map_err(|source| LockError::Io {
          path: self.path.clone(),
          source,
        }),
      _ => Ok(()),
    }
  }
}

/// Create `path` holding `contents`, failing with `AlreadyExists` if it exists. The lock file
/// must never be seen empty or half-written: a racing run that read it between an `O_EXCL`
/// create and the write would report the lock "unreadable" (exit 1) instead of naming its holder
/// (exit 4) — the reliability suite's 16-way race caught exactly that. So the contents are
/// written and fsynced to a file of our own first, then hard-linked into place (`link(2)` is
/// atomic and refuses an existing name). A crash can leave the private file behind, never a
/// partial lock.
fn create_with(path: &Path, contents: &[u8]) -> io::Result<()> {
  let private = path.with_extension(format!(
    "lock.{}.{:08x}.tmp",
    std::process::id(),
    fastrand::u32(..)
  ));
  let result = (|| {
    let mut file = OpenOptions::new()
      .write(true)
      .create_new(true)
      .open(&private)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::hard_link(&private, path)
  })();
  let _ = std::fs::remove_file(&private);
  if result.is_ok() {
    sync_dir(path);
  }
  result
}

/// Where locks live: one interface for the local directory and the `s3://` bucket.
#[derive(Debug, Clone)]
pub enum LockStore {
  /// A directory of lock files (`<state>/locks`).
  Local(PathBuf),
  /// Lock objects under `<prefix>/locks/` in the state bucket.
  S3(S3State),
}

/// A held lock of either store. Dropping it does not release it; call [`HeldLock::release`].
#[derive(Debug)]
pub enum HeldLock {
  Local(Lock),
  S3(S3Lock),
}

impl LockStore {
  /// Take the lock for `holder.runbook`, or report who holds it (see [`Lock::acquire`]).
  pub async fn acquire(&self, holder: LockHolder, lease: Duration) -> Result<HeldLock, LockError> {
    match self {
      LockStore::Local(dir) => Lock::acquire(dir, holder, lease).map(HeldLock::Local),
      LockStore::S3(state) => S3Lock::acquire(state, holder, lease)
        .await
        .map(HeldLock::S3),
    }
  }

  /// Who holds the lock of `runbook`, if anyone.
  pub async fn holder(&self, runbook: &str) -> Result<Option<LockHolder>, LockError> {
    match self {
      LockStore::Local(dir) => holder(dir, runbook),
      LockStore::S3(state) => s3::holder(state, runbook).await,
    }
  }

  /// Break the lock of `runbook`, returning who held it.
  pub async fn unlock(&self, runbook: &str) -> Result<Option<LockHolder>, LockError> {
    match self {
      LockStore::Local(dir) => unlock(dir, runbook),
      LockStore::S3(state) => s3::unlock(state, runbook).await,
    }
  }
}

impl HeldLock {
  pub fn holder(&self) -> &LockHolder {
    match self {
      HeldLock::Local(lock) => lock.holder(),
      HeldLock::S3(lock) => lock.holder(),
    }
  }

  /// Extend the lease; [`LockError::Lost`] when someone else took or broke the lock.
  pub async fn renew(&mut self) -> Result<(), LockError> {
    match self {
      HeldLock::Local(lock) => lock.renew(),
      HeldLock::S3(lock) => lock.renew().await,
    }
  }

  /// Release the lock (only if we still hold it).
  pub async fn release(self) -> Result<(), LockError> {
    match self {
      HeldLock::Local(lock) => lock.release(),
      HeldLock::S3(lock) => lock.release().await,
    }
  }

  /// Renew the lease every `every` in the background until [`LeaseKeeper::stop`]. A lost lock
  /// is announced loudly on stderr and no longer renewed; a store that does not answer is
  /// warned about once and tried again next time.
  pub fn keep_alive(self, every: Duration) -> LeaseKeeper {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
      let mut lock = self;
      let mut renewing = true;
      let mut warned = false;
      loop {
        tokio::select! {
          _ = &mut stopped => return lock,
          () = tokio::time::sleep(every), if renewing => match lock.renew().await {
            Ok(()) => warned = false,
            Err(err @ LockError::Lost { .. }) => {
              tracing::error!("{err}");
              eprintln!("\nWARNING: {err}\n");
              renewing = false;
            }
            Err(err) => {
              tracing::warn!("cannot renew the lock lease: {err}");
              if !warned {
                warned = true;
                eprintln!("warning: cannot renew the lock lease (will try again): {err}");
              }
            }
          },
        }
      }
    });
    LeaseKeeper { stop, task }
  }
}

/// A lock whose lease is being renewed in the background.
#[derive(Debug)]
pub struct LeaseKeeper {
  stop: tokio::sync::oneshot::Sender<()>,
  task: tokio::task::JoinHandle<HeldLock>,
}

impl LeaseKeeper {
  /// Stop renewing and hand the lock back (after a renewal in flight). `None` only if the
  /// renewal task panicked.
  pub async fn stop(self) -> Option<HeldLock> {
    let _ = self.stop.send(());
    self.task.await.ok()
  }
}

/// Where the lock of `runbook` lives.
pub fn lock_path(dir: &Path, runbook: &str) -> PathBuf {
  dir.join(format!("{runbook}.lock"))
}

/// Who holds the lock of `runbook`, if anyone.
pub fn holder(dir: &Path, runbook: &str) -> Result<Option<LockHolder>, LockError> {
  read_holder(&lock_path(dir, runbook))
}

/// Break the lock of `runbook`, returning who held it.
pub fn unlock(dir: &Path, runbook: &str) -> Result<Option<LockHolder>, LockError> {
  let path = lock_path(dir, runbook);
  let holder = match read_holder(&path) {
    Ok(holder) => holder,
    // An unreadable lock is still breakable: that is what unlock is for.
    Err(LockError::Unreadable { .. }) => None,
    Err(err) => return Err(err),
  };
  match std::fs::remove_file(&path) {
    Ok(()) => Ok(holder),
    Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
    Err(source) => Err(LockError::Io { path, source }),
  }
}

fn read_holder(path: &Path) -> Result<Option<LockHolder>, LockError> {
  match std::fs::read_to_string(path) {
    Ok(text) => serde_json::from_str(&text)
      .map(Some)
      .map_err(|err| LockError::Unreadable {
        path: path.to_path_buf(),
        reason: err.to_string(),
      }),
    Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
    Err(source) => Err(LockError::Io {
      path: path.to_path_buf(),
      source,
    }),
  }
}

/// This machine's host name.
pub fn hostname() -> String {
  std::fs::read_to_string("/proc/sys/kernel/hostname")
    .or_else(|_| std::fs::read_to_string("/etc/hostname"))
    .map(|name| name.trim().to_string())
    .ok()
    .filter(|name| !name.is_empty())
    .or_else(|| std::env::var("HOSTNAME").ok())
    .unwrap_or_else(|| "localhost".into())
}

/// Whether a process with this pid exists on this host.
#[allow(unsafe_code)]
pub fn process_alive(pid: u32) -> bool {
  let Ok(pid) = libc::pid_t::try_from(pid) else {
    return false;
  };
  if pid <= 0 {
    return false;
  }
  // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
  let result = unsafe { libc::kill(pid, 0) };
  result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
  use super::*;

  fn holder(run_id: &str, pid: u32) -> LockHolder {
    LockHolder {
      run_id: run_id.into(),
      runbook: "regional-failover".into(),
      host: hostname(),
      pid,
      started_at: Utc::now(),
      lease_expires_at: Utc::now(),
    }
  }

  #[test]
  fn a_second_run_is_refused_and_told_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let lock = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    let err = Lock::acquire(
      dir.path(),
      holder("run-2", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap_err();
    match &err {
      LockError::Held { holder, stale } => {
        assert_eq!(holder.run_id, "run-1");
        assert!(stale.is_none());
      }
      other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("locked by run run-1"));
    lock.release().unwrap();
    Lock::acquire(
      dir.path(),
      holder("run-2", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
  }

  #[test]
  fn racing_runs_never_see_a_half_written_lock() {
    // Sixteen threads race for one lock, many times: each either takes it or is told who holds
    // it — never that the lock file is unreadable.
    for _ in 0..20 {
      let dir = tempfile::tempdir().unwrap();
      let results: Vec<Result<Lock, LockError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
          .map(|n| {
            let dir = dir.path();
            scope.spawn(move || {
              Lock::acquire(
                dir,
                holder(&format!("run-{n}"), std::process::id()),
                Duration::from_secs(60),
              )
            })
          })
          .collect();
        handles
          .into_iter()
          .map(|handle| handle.join().unwrap())
          .collect()
      });
      let taken = results.iter().filter(|result| result.is_ok()).count();
      let refused = results
        .iter()
        .filter(|result| matches!(result, Err(LockError::Held { .. })))
        .count();
      assert_eq!((taken, refused), (1, 15), "{results:?}");
      let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .collect();
      assert_eq!(
        leftovers.len(),
        1,
        "only the lock file remains: {leftovers:?}"
      );
    }
  }

  #[test]
  fn a_dead_holder_is_stale_and_unlock_breaks_it() {
    let dir = tempfile::tempdir().unwrap();
    // A pid that cannot exist (beyond pid_max).
    let dead = holder("run-dead", 4_000_000);
    let _ = Lock::acquire(dir.path(), dead, Lock::DEFAULT_LEASE).unwrap();
    let err = Lock::acquire(
      dir.path(),
      holder("run-2", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap_err();
    let LockError::Held { stale, .. } = &err else {
      panic!("{err:?}")
    };
    assert!(stale.as_deref().unwrap().contains("is gone"));
    assert!(err.to_string().contains("drctl unlock regional-failover"));
    let broken = unlock(dir.path(), "regional-failover").unwrap().unwrap();
    assert_eq!(broken.run_id, "run-dead");
    Lock::acquire(
      dir.path(),
      holder("run-2", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
  }

  #[test]
  fn an_expired_lease_is_stale() {
    let mut old = holder("run-1", std::process::id());
    old.lease_expires_at = Utc::now() - chrono::Duration::seconds(5);
    assert!(old.staleness(Utc::now()).unwrap().contains("lease expired"));
  }

  #[test]
  fn the_same_run_takes_its_lock_over_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let _ = Lock::acquire(dir.path(), holder("run-1", 4_000_000), Lock::DEFAULT_LEASE).unwrap();
    let lock = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    assert_eq!(lock.holder().pid, std::process::id());
  }
}
