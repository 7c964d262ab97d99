//! One lock per runbook: a second run of the same runbook is refused while one holds it.
//!
//! A lock is a file created with `O_EXCL` holding its holder (run id, host, pid, start time) and a
//! lease expiry that the holder renews. It is stale when its lease expired, or when its holder
//! ran on this host and that process is gone. A stale lock is still refused — the operator sees
//! who died holding it and breaks it with `drctl unlock` — except by `resume` of the very run
//! that holds it, which takes it over.
//!
//! Renewal is compare-and-swap: the lock file also carries a token drawn at each acquisition
//! (`token`), and a renewal replaces the file only if it still names this run *and* this token,
//! atomically (rename of a private file) while holding an advisory lock on the locks directory
//! that `unlock` and a same-run takeover also take. A renewal that finds anything else reports
//! [`LockError::Lost`]: the lock was broken or taken, and the run must stop mutating (see
//! [`HeldLock::keep_alive`] and [`crate::cloud::MutationFence`]).

use std::{
  fs::OpenOptions,
  io::{self, Write},
  path::{Path, PathBuf},
  time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
  journal::{create_dir_all_durable, sync_dir},
  s3::{self, S3Lock, S3State},
};
use crate::cloud::{FenceReason, MutationFence};

/// How long a lock's lease lasts, and how often its holder renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
  pub lease: Duration,
  pub renew_every: Duration,
}

impl LeaseTerms {
  /// A ten-minute lease, renewed every third of it: two renewals may fail before it expires.
  pub const DEFAULT: LeaseTerms = LeaseTerms::with_lease(Lock::DEFAULT_LEASE);

  /// A lease of `lease`, renewed every third of it.
  pub const fn with_lease(lease: Duration) -> LeaseTerms {
    LeaseTerms {
      lease,
      renew_every: Duration::from_nanos((lease.as_nanos() / 3) as u64),
    }
  }
}

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
  /// Drawn at acquisition and written into the file: a renewal replaces the file only while it
  /// still carries it (a takeover by a resume of the same run id draws another).
  token: String,
}

/// What a lock file holds: its holder and the token of the acquisition that wrote it. Readers
/// that only want the holder ignore the token.
#[derive(Debug, Serialize, Deserialize)]
struct LockFile {
  #[serde(flatten)]
  holder: LockHolder,
  /// Absent in lock files written before renewal was compare-and-swap.
  #[serde(default)]
  token: String,
}

/// A fresh acquisition token.
fn new_token() -> String {
  format!("{:016x}", fastrand::u64(..))
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
    create_dir_all_durable(dir).map_err(io_err)?;
    let mut holder = holder;
    holder.lease_expires_at = Utc::now() + lease;
    let token = new_token();
    let text = lock_text(&holder, &token).map_err(io_err)?;
    loop {
      match create_with(&path, text.as_bytes()) {
        Ok(()) => {
          return Ok(Lock {
            path,
            holder,
            lease,
            token,
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
              token,
            };
            let _guard = DirGuard::lock(dir).map_err(|source| LockError::Io {
              path: lock.path.clone(),
              source,
            })?;
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

  /// Extend the lease, compare-and-swap: only if the file still names this run and this
  /// acquisition's token. Otherwise the lock is [`LockError::Lost`] (broken with `drctl unlock`,
  /// or taken by another run or another resume of this one) and the file is left as it is.
  pub fn renew(&mut self) -> Result<(), LockError> {
    let io_err = |source| LockError::Io {
      path: self.path.clone(),
      source,
    };
    let _guard = DirGuard::lock(self.dir()).map_err(io_err)?;
    self.expect_ours()?;
    let mut renewed = self.holder.clone();
    renewed.lease_expires_at = Utc::now() + self.lease;
    let previous = std::mem::replace(&mut self.holder, renewed);
    if let Err(err) = self.write() {
      self.holder = previous;
      return Err(err);
    }
    Ok(())
  }

  fn dir(&self) -> &Path {
    self.path.parent().unwrap_or(Path::new("."))
  }

  /// `Ok` when the lock file is still the one this acquisition wrote (run id and token).
  fn expect_ours(&self) -> Result<(), LockError> {
    let current = match read_file(&self.path) {
      Ok(current) => current,
      // Not something we wrote (we write whole files only): someone else's.
      Err(LockError::Unreadable { .. }) => None,
      Err(err) => return Err(err),
    };
    match current {
      Some(file) if file.holder.run_id == self.holder.run_id && file.token == self.token => Ok(()),
      other => Err(LockError::Lost {
        runbook: self.holder.runbook.clone(),
        path: self.path.clone(),
        now_held_by: other.map(|file| Box::new(file.holder)),
      }),
    }
  }

  /// Replace the lock file with our holder, atomically: a private file, fsynced, renamed over
  /// it, then the directory fsynced. Callers hold the directory's [`DirGuard`].
  fn write(&self) -> Result<(), LockError> {
    let io_err = |source| LockError::Io {
      path: self.path.clone(),
      source,
    };
    let text = lock_text(&self.holder, &self.token).map_err(io_err)?;
    let private = write_private(&self.path, text.as_bytes()).map_err(io_err)?;
    let renamed = std::fs::rename(&private, &self.path);
    if renamed.is_err() {
      let _ = std::fs::remove_file(&private);
    }
    renamed.map_err(io_err)?;
    sync_dir(&self.path);
    Ok(())
  }

  /// Release the lock (only if this acquisition still holds it).
  pub fn release(self) -> Result<(), LockError> {
    let io_err = |source| LockError::Io {
      path: self.path.clone(),
      source,
    };
    let _guard = DirGuard::lock(self.dir()).map_err(io_err)?;
    match self.expect_ours() {
      Ok(()) => {
        std::fs::remove_file(&self.path).map_err(io_err)?;
        sync_dir(&self.path);
        Ok(())
      }
      Err(LockError::Lost { .. }) => Ok(()),
      Err(err) => Err(err),
    }
  }
}

/// The text of a lock file.
fn lock_text(holder: &LockHolder, token: &str) -> io::Result<String> {
  serde_json::to_string_pretty(&LockFile {
    holder: holder.clone(),
    token: token.to_string(),
  })
  .map_err(io::Error::other)
}

/// An exclusive advisory lock (`flock`) on a locks directory, held while a lock file is
/// replaced or removed, so that a renewal's check of the file and its replacement are one step
/// to every other renewal, takeover and `unlock`. Creating a lock (`link(2)`, which refuses an
/// existing name) needs no guard. Released on drop (closing the descriptor).
struct DirGuard {
  _dir: std::fs::File,
}

impl DirGuard {
  #[allow(unsafe_code)]
  fn lock(dir: &Path) -> io::Result<DirGuard> {
    use std::os::fd::AsRawFd;
    let handle = std::fs::File::open(dir)?;
    loop {
      // SAFETY: flock on a descriptor we own; it touches no memory.
      let result = unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) };
      if result == 0 {
        return Ok(DirGuard { _dir: handle });
      }
      let err = io::Error::last_os_error();
      if err.kind() != io::ErrorKind::Interrupted {
        return Err(err);
      }
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
  let private = write_private(path, contents)?;
  let result = std::fs::hard_link(&private, path);
  let _ = std::fs::remove_file(&private);
  if result.is_ok() {
    sync_dir(path);
  }
  result
}

/// Write `contents` to a new private file next to `path` (created new, never an existing one),
/// fsynced; returns its path. Removed again if writing fails.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<PathBuf> {
  let private = path.with_extension(format!(
    "lock.{}.{:08x}.tmp",
    std::process::id(),
    fastrand::u32(..)
  ));
  let written = (|| {
    let mut file = OpenOptions::new()
      .write(true)
      .create_new(true)
      .open(&private)?;
    file.write_all(contents)?;
    file.sync_all()
  })();
  match written {
    Ok(()) => Ok(private),
    Err(err) => {
      let _ = std::fs::remove_file(&private);
      Err(err)
    }
  }
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

  /// Renew the lease every `every` in the background until [`LeaseKeeper::stop`], holding
  /// `fence` open only as long as the lease lasts:
  /// * a renewal that finds the lock taken or broken ([`LockError::Lost`]) closes the fence at
  ///   once (it is announced loudly on stderr) and renewing stops;
  /// * a store that does not answer is warned about once and tried again next time; the run
  ///   goes on (its journal is local) until the lease it last renewed runs out, then the fence
  ///   closes ([`FenceReason::LeaseExpired`]): another operator may by then hold the lock.
  ///
  /// The lease is followed on the monotonic clock from the moment each renewal was written, and
  /// every mutating call checks it too ([`MutationFence::check`]), so no call leaves after it
  /// ends, even while a renewal hangs. So a loss is seen within `every` of the steal, an
  /// unreachable store within the lease.
  pub fn keep_alive(self, every: Duration, fence: MutationFence) -> LeaseKeeper {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
      let mut lock = self;
      fence.hold_lease_until(lease_deadline(lock.holder()));
      let mut warned = false;
      let mut next = tokio::time::Instant::now() + every;
      loop {
        let deadline = fence.lease_until().unwrap_or(next);
        tokio::select! {
          _ = &mut stopped => return lock,
          () = tokio::time::sleep_until(deadline), if fence.reason().is_none() => {
            // Closes the fence (the lease is over) unless a renewal moved the deadline.
            let _ = fence.check();
          }
          () = tokio::time::sleep_until(next), if fence.reason().is_none() => {
            next += every;
            // A renewal that hangs past the lease is abandoned: the lease is over anyway.
            let renewal = tokio::time::timeout_at(deadline, lock.renew()).await;
            match renewal {
              Ok(Ok(())) => {
                warned = false;
                fence.hold_lease_until(lease_deadline(lock.holder()));
              }
              Ok(Err(err @ LockError::Lost { .. })) => {
                eprintln!("\nLOCK LOST: {err}\n  no further mutating call will be made\n");
                fence.close(FenceReason::LockLost(err.to_string()));
              }
              Ok(Err(err)) => {
                tracing::warn!("cannot renew the lock lease: {err}");
                if !warned {
                  warned = true;
                  eprintln!(
                    "warning: cannot renew the lock lease (will try again until it expires): {err}"
                  );
                }
              }
              Err(_) => {
                let _ = fence.check();
              }
            }
          },
        }
      }
    });
    LeaseKeeper { stop, task }
  }
}

/// The end of a holder's lease on the monotonic clock: what is left of it now.
fn lease_deadline(holder: &LockHolder) -> tokio::time::Instant {
  let left = (holder.lease_expires_at - Utc::now())
    .to_std()
    .unwrap_or(Duration::ZERO);
  tokio::time::Instant::now() + left
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
  let _guard = match DirGuard::lock(dir) {
    Ok(guard) => Some(guard),
    Err(err) if err.kind() == io::ErrorKind::NotFound => None,
    Err(source) => return Err(LockError::Io { path, source }),
  };
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
  read_file(path).map(|file| file.map(|file| file.holder))
}

fn read_file(path: &Path) -> Result<Option<LockFile>, LockError> {
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

  #[test]
  fn a_renewal_does_not_take_back_a_lock_that_unlock_gave_to_another_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    unlock(dir.path(), "regional-failover").unwrap();
    let _second = Lock::acquire(
      dir.path(),
      holder("run-2", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    let err = first.renew().unwrap_err();
    match &err {
      LockError::Lost { now_held_by, .. } => {
        assert_eq!(now_held_by.as_ref().unwrap().run_id, "run-2");
      }
      other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("LOST THE LOCK"), "{err}");
    let current = super::holder(dir.path(), "regional-failover")
      .unwrap()
      .unwrap();
    assert_eq!(
      current.run_id, "run-2",
      "the renewal overwrote the new holder"
    );
    // Releasing a lost lock leaves the new holder's alone.
    first.release().unwrap();
    assert_eq!(
      super::holder(dir.path(), "regional-failover")
        .unwrap()
        .unwrap()
        .run_id,
      "run-2"
    );
  }

  #[test]
  fn a_renewal_after_a_broken_lock_does_not_recreate_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    unlock(dir.path(), "regional-failover").unwrap();
    assert!(matches!(
      lock.renew(),
      Err(LockError::Lost {
        now_held_by: None,
        ..
      })
    ));
    assert!(super::holder(dir.path(), "regional-failover")
      .unwrap()
      .is_none());
  }

  #[test]
  fn a_takeover_by_another_resume_of_the_same_run_makes_the_old_renewal_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut old = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    let _new = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    assert!(matches!(old.renew(), Err(LockError::Lost { .. })));
  }

  #[test]
  fn a_renewal_extends_the_lease_of_a_lock_still_ours() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Duration::from_secs(60),
    )
    .unwrap();
    let before = lock.holder().lease_expires_at;
    std::thread::sleep(Duration::from_millis(5));
    lock.renew().unwrap();
    let on_disk = super::holder(dir.path(), "regional-failover")
      .unwrap()
      .unwrap();
    assert!(on_disk.lease_expires_at > before);
    assert_eq!(on_disk, *lock.holder());
    lock.renew().unwrap();
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no private files are left behind");
  }

  #[tokio::test(start_paused = true)]
  async fn the_keeper_closes_the_fence_within_one_renewal_of_a_steal() {
    let dir = tempfile::tempdir().unwrap();
    let lock = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Duration::from_secs(6),
    )
    .unwrap();
    let fence = MutationFence::default();
    let keeper = HeldLock::Local(lock).keep_alive(Duration::from_secs(2), fence.clone());
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(fence.check(), Ok(()), "renewals kept the lease");
    unlock(dir.path(), "regional-failover").unwrap();
    let stolen = tokio::time::Instant::now();
    let reason = tokio::time::timeout(Duration::from_secs(60), fence.closed())
      .await
      .expect("the loss is noticed");
    assert!(
      stolen.elapsed() <= Duration::from_secs(2),
      "{:?}",
      stolen.elapsed()
    );
    assert!(matches!(reason, FenceReason::LockLost(_)), "{reason:?}");
    assert!(keeper.stop().await.is_some());
  }

  #[tokio::test(start_paused = true)]
  async fn an_unrenewable_lease_closes_the_fence_when_it_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path().join("locks");
    let lock = Lock::acquire(
      &locks,
      holder("run-1", std::process::id()),
      Duration::from_secs(6),
    )
    .unwrap();
    // The store stops answering: the directory is gone (renewals fail with an I/O error, not
    // with a loss).
    std::fs::remove_dir_all(&locks).unwrap();
    let fence = MutationFence::default();
    let started = tokio::time::Instant::now();
    let keeper = HeldLock::Local(lock).keep_alive(Duration::from_secs(2), fence.clone());
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    assert_eq!(fence.check(), Ok(()), "the lease is not over yet");
    let reason = tokio::time::timeout(Duration::from_secs(60), fence.closed())
      .await
      .expect("the expiry is noticed");
    assert_eq!(reason, FenceReason::LeaseExpired);
    let took = started.elapsed();
    assert!(
      took <= Duration::from_secs(6) && took >= Duration::from_millis(5_900),
      "{took:?}"
    );
    assert!(keeper.stop().await.is_some());
  }
}
