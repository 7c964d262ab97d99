//! One lock per lock group: a second live run of any runbook of the group (a failback while a
//! failover runs, or a second failover) is refused while one holds it. A runbook names its group
//! with `metadata.lock_group`; every runbook that does not shares the group `default`, so by
//! default one state runs one incident at a time. The lock file (or object) is named after the
//! group and names the holder's runbook.
//!
//! A lock is a file holding its holder (run id, host, pid and that process's start time) and a
//! lease expiry that the holder renews. It is stale when its lease expired, or when its holder
//! ran on this host and that process is gone — a pid alone is not enough, since pids are
//! reused, so the holder's start time (and the boot it counts from) must match too. A stale
//! lock is still refused — the operator sees who died holding it and breaks it with
//! `drctl unlock` — except by `resume` of the very run that holds it, which takes it over. A
//! live holder is never taken over, and `unlock` refuses to break it unless forced.
//!
//! Invariants (local directory):
//! * A lock is created where there is none with `link(2)` of a fully written private file, so
//!   exactly one of N racing runs creates it and nobody ever reads it half-written.
//! * Every change to an existing lock file (takeover, renewal, release, unlock) happens under
//!   an exclusive `flock(2)` of the locks directory: read, decide, replace or delete, as one
//!   step. So of N resumes racing to take over one stale lock exactly one wins; the others
//!   find the winner's live holder and are refused. The kernel drops the guard when its holder
//!   dies, so a crash never leaves it held.
//! * Private files are created with `O_EXCL | O_NOFOLLOW` and mode 0600, never at a
//!   predictable name a symlink could be planted on.
//! * A lock carries its format (`state::format`). One a newer drctl wrote is refused as it is
//!   ([`LockError::NewerFormat`]): never taken over, broken (even with `--force`) or released;
//!   to its own holder's renewal it is a lost lock.

use std::{
  fs::{File, OpenOptions, TryLockError},
  io::{self, Write},
  os::unix::fs::OpenOptionsExt,
  path::{Path, PathBuf},
  time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
  format::{self, NewerFormat},
  journal::sync_dir,
  s3::{self, S3Lock, S3State},
  store::{check_name, create_private_dir, NameKind},
};
use crate::{
  cloud::{FenceReason, MutationFence},
  process_group,
};

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
  /// The lock group held (the holder runbook's `metadata.lock_group`). Absent in locks written
  /// before locks were per group, which were named after their runbook: read back as the name
  /// of the lock file.
  #[serde(default)]
  pub group: String,
  /// Read from a lock that named no group: an older drctl's lock of one runbook, which this
  /// drctl cannot place in a group (see [`LockStore::acquire`]). Never written.
  #[serde(skip)]
  pub legacy: bool,
  pub host: String,
  pub pid: u32,
  /// When the holder process started, as the kernel counts it (Linux: clock ticks since boot,
  /// `/proc/PID/stat` field 22). With `boot_id` it tells a live holder from a later process
  /// that was given the same pid. Absent in locks written before it was recorded, and where
  /// there is no `/proc`: the pid alone is checked then.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub pid_start: Option<u64>,
  /// The boot `pid_start` counts from (`/proc/sys/kernel/random/boot_id`).
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub boot_id: Option<String>,
  pub started_at: DateTime<Utc>,
  pub lease_expires_at: DateTime<Utc>,
}

impl LockHolder {
  /// This process as the holder of the lock group `group` for `run_id` of `runbook` (the lease
  /// is set on acquisition).
  pub fn this_process(run_id: &str, runbook: &str, group: &str) -> LockHolder {
    let pid = std::process::id();
    LockHolder {
      run_id: run_id.to_string(),
      runbook: runbook.to_string(),
      group: group.to_string(),
      legacy: false,
      host: hostname(),
      pid,
      pid_start: process_group::start_time(pid),
      boot_id: boot_id(),
      started_at: Utc::now(),
      lease_expires_at: Utc::now(),
    }
  }

  /// Why the holder is stale, if it is.
  pub fn staleness(&self, now: DateTime<Utc>) -> Option<String> {
    if self.host == hostname() {
      if let Some(why) = self.process_gone() {
        return Some(format!(
          "process {} on {} is gone{why}",
          self.pid, self.host
        ));
      }
    }
    if self.lease_expires_at < now {
      return Some(format!(
        "its lease expired at {}",
        self.lease_expires_at.format("%Y-%m-%d %H:%M:%SZ")
      ));
    }
    None
  }

  /// On this host: `Some` (with a detail, maybe empty) when the holder process no longer
  /// exists — no process has its pid, or the one that has it started at another time (the pid
  /// was reused), or the host rebooted since, or it is a zombie.
  fn process_gone(&self) -> Option<&'static str> {
    if let (Some(theirs), Some(ours)) = (&self.boot_id, boot_id()) {
      if *theirs != ours {
        return Some(" (the host rebooted since)");
      }
    }
    if !has_proc() {
      return (!process_alive(self.pid)).then_some("");
    }
    match process_group::stat(self.pid) {
      None => Some(""),
      Some(stat) if stat.zombie => Some(""),
      Some(stat) if self.pid_start.is_some_and(|start| start != stat.start_time) => {
        Some(" (its pid now belongs to another process)")
      }
      Some(_) => None,
    }
  }

  /// Whether `self`, a holder found in place, may be replaced by `wanted`: only by a resume of
  /// the same run, and only once the holder is stale. Otherwise the error to report.
  pub(crate) fn check_takeover(&self, wanted: &LockHolder) -> Result<(), LockError> {
    let stale = self.staleness(Utc::now());
    if self.run_id != wanted.run_id {
      return Err(LockError::Held {
        holder: Box::new(self.clone()),
        stale,
      });
    }
    match stale {
      Some(_) => Ok(()),
      None => Err(LockError::Live {
        holder: Box::new(self.clone()),
        refused: Refused::Resume,
      }),
    }
  }

  /// Whether `unlock` may break this holder's lock (`force`: even a live one).
  pub(crate) fn check_unlock(&self, force: bool) -> Result<(), LockError> {
    if force || self.staleness(Utc::now()).is_some() {
      Ok(())
    } else {
      Err(LockError::Live {
        holder: Box::new(self.clone()),
        refused: Refused::Unlock,
      })
    }
  }
}

/// What a live holder's lock was not allowed to be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
  /// `drctl resume` of the run that holds it.
  Resume,
  /// `drctl unlock` without `--force`.
  Unlock,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
  #[error("{}", held_message(.holder, .stale.as_deref()))]
  Held {
    holder: Box<LockHolder>,
    /// Why the holder looks dead, when it does.
    stale: Option<String>,
  },
  /// The holder is alive (its process exists on this host with its start time, or its lease
  /// has not expired): it is not taken over, nor broken without `--force`.
  #[error("{}", live_message(.holder, *.refused))]
  Live {
    holder: Box<LockHolder>,
    refused: Refused,
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
  /// Our lock object was overwritten or deleted: someone else may be running a runbook of the
  /// group.
  #[error("{}", lost_message(.group, .path, .now_held_by.as_deref()))]
  Lost {
    group: String,
    path: PathBuf,
    now_held_by: Option<Box<LockHolder>>,
  },
  /// Every attempt lost a race without learning who won.
  #[error("lock {path}: contended (it changed under every attempt); try again")]
  Contended { path: PathBuf },
  /// The lock was written by a newer drctl: it is neither taken over nor broken, even with
  /// `--force` (see `state::format`).
  #[error(transparent)]
  NewerFormat(NewerFormat),
}

fn lost_message(group: &str, path: &Path, now_held_by: Option<&LockHolder>) -> String {
  let by = match now_held_by {
    Some(holder) => format!(
      "it is now held by run {} of runbook `{}` (host {}, pid {})",
      holder.run_id, holder.runbook, holder.host, holder.pid
    ),
    None => "it was broken (`drctl unlock`)".to_string(),
  };
  format!(
    "LOST THE LOCK of lock group `{group}` ({}): {by}; another run may now act on the same \
     resources — check before going on",
    path.display()
  )
}

/// `run ID (host H, pid P, started T)`: who holds a lock, as every message names it.
fn describe(holder: &LockHolder) -> String {
  format!(
    "run {} (host {}, pid {}, started {})",
    holder.run_id,
    holder.host,
    holder.pid,
    holder.started_at.format("%Y-%m-%d %H:%M:%SZ"),
  )
}

/// `run ID (host H, pid P, started T) of runbook `R``.
fn describe_run(holder: &LockHolder) -> String {
  format!("{} of runbook `{}`", describe(holder), holder.runbook)
}

fn held_message(holder: &LockHolder, stale: Option<&str>) -> String {
  let mut message = format!(
    "lock group `{}` is locked by {}",
    holder.group,
    describe_run(holder)
  );
  match stale {
    Some(reason) => message.push_str(&format!(
      "\n  the lock is stale: {reason}\n  resume it with `drctl resume {}`, or break it with `drctl unlock {}`",
      holder.run_id, holder.group
    )),
    None => message.push_str("\n  wait for it to finish, or watch it with `drctl status`"),
  }
  message
}

fn live_message(holder: &LockHolder, refused: Refused) -> String {
  match refused {
    Refused::Resume => format!(
      "{} is still running and holds the lock of lock group `{}`; a live run cannot be \
       resumed\n  wait for it to finish, or watch it with `drctl status {}`",
      describe_run(holder),
      holder.group,
      holder.run_id
    ),
    Refused::Unlock => format!(
      "lock group `{}` is locked by {}, which is alive; refusing to break its lock\n  wait for \
       it to finish, or, once you know it no longer acts, `drctl unlock --force {}`",
      holder.group,
      describe_run(holder),
      holder.group
    ),
  }
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

/// What a lock file holds: its format, its holder and the token of the acquisition that wrote
/// it. Readers that only want the holder ignore the token.
#[derive(Debug, Serialize, Deserialize)]
struct LockFile {
  /// Absent in lock files written before formats were recorded (format 1).
  #[serde(default = "first_format")]
  format: u32,
  #[serde(flatten)]
  holder: LockHolder,
  /// Absent in lock files written before renewal was compare-and-swap.
  #[serde(default)]
  token: String,
}

fn first_format() -> u32 {
  format::FIRST
}

/// Parse a lock as the local file or the S3 object holds it: refused when a newer drctl wrote
/// it, unreadable when it is not a lock.
pub(crate) fn parse_lock<T: serde::de::DeserializeOwned>(
  bytes: &[u8],
  location: &Path,
) -> Result<T, LockError> {
  let unreadable = |reason: String| LockError::Unreadable {
    path: location.to_path_buf(),
    reason,
  };
  let value: serde_json::Value =
    serde_json::from_slice(bytes).map_err(|err| unreadable(err.to_string()))?;
  if let Err(issue) = format::read(format::Kind::Lock, &value) {
    return Err(match issue.newer(format::Kind::Lock, location.display()) {
      Some(newer) => LockError::NewerFormat(newer),
      None => unreadable(issue.to_string()),
    });
  }
  serde_json::from_value(value).map_err(|err| unreadable(err.to_string()))
}

/// A fresh acquisition token.
fn new_token() -> String {
  format!("{:016x}", fastrand::u64(..))
}

impl Lock {
  /// The default lease: renewed every third of it while the run is alive.
  pub const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 60);

  /// Take the lock of the group `holder.group` in `dir`, or report who holds it. A stale lock
  /// held by the same run id (a resume) is taken over; a live one is not ([`LockError::Live`]).
  pub fn acquire(dir: &Path, holder: LockHolder, lease: Duration) -> Result<Lock, LockError> {
    let path = lock_path(dir, &holder.group);
    let io_err = |source| LockError::Io {
      path: path.clone(),
      source,
    };
    create_private_dir(dir).map_err(io_err)?;
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
          let _guard = DirGuard::take(dir)?;
          let current = match read_holder(&path)? {
            Some(current) => current,
            // Released between our create and our read: try again.
            None => continue,
          };
          current.check_takeover(&holder)?;
          replace_with(&path, text.as_bytes()).map_err(io_err)?;
          return Ok(Lock {
            path,
            holder,
            lease,
            token,
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
    let _guard = DirGuard::take(self.dir())?;
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
      // Not something we wrote (we write whole files only, in our format): someone else's.
      Err(LockError::Unreadable { .. } | LockError::NewerFormat(_)) => None,
      Err(err) => return Err(err),
    };
    match current {
      Some(file) if file.holder.run_id == self.holder.run_id && file.token == self.token => Ok(()),
      other => Err(LockError::Lost {
        group: self.holder.group.clone(),
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
    replace_with(&self.path, text.as_bytes()).map_err(io_err)
  }

  /// Release the lock (only if this acquisition still holds it).
  pub fn release(self) -> Result<(), LockError> {
    let _guard = DirGuard::take(self.dir())?;
    match self.expect_ours() {
      Ok(()) => {
        std::fs::remove_file(&self.path).map_err(|source| LockError::Io {
          path: self.path.clone(),
          source,
        })?;
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
    format: format::Kind::Lock.current(),
    holder: holder.clone(),
    token: token.to_string(),
  })
  .map_err(io::Error::other)
}

/// How long a change to a lock file waits for another one in progress in the same directory
/// (each holds the guard for a read and a rename: microseconds, unless its process is stopped).
const GUARD_WAIT: Duration = Duration::from_secs(10);

/// The exclusive `flock(2)` of a locks directory that serializes every change to an existing
/// lock file in it, across processes; released when dropped, or by the kernel when its
/// process dies.
struct DirGuard {
  _dir: File,
}

impl DirGuard {
  fn take(dir: &Path) -> Result<DirGuard, LockError> {
    let io_err = |source| LockError::Io {
      path: dir.to_path_buf(),
      source,
    };
    let handle = File::open(dir).map_err(io_err)?;
    let deadline = Instant::now() + GUARD_WAIT;
    loop {
      match handle.try_lock() {
        Ok(()) => return Ok(DirGuard { _dir: handle }),
        Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
          std::thread::sleep(Duration::from_millis(2));
        }
        Err(TryLockError::WouldBlock) => {
          return Err(LockError::Contended {
            path: dir.to_path_buf(),
          })
        }
        Err(TryLockError::Error(err)) => return Err(io_err(err)),
      }
    }
  }
}

/// A new private file next to `path` holding `contents`, fsynced: created with
/// `O_EXCL | O_NOFOLLOW` at an unpredictable name, mode 0600. Its path.
pub(super) fn write_private(path: &Path, contents: &[u8]) -> io::Result<PathBuf> {
  let private = path.with_extension(format!(
    "lock.{}.{:016x}.tmp",
    std::process::id(),
    fastrand::u64(..)
  ));
  let written = OpenOptions::new()
    .write(true)
    .create_new(true)
    .mode(0o600)
    .custom_flags(libc::O_NOFOLLOW)
    .open(&private)
    .and_then(|mut file| {
      file.write_all(contents)?;
      file.sync_all()
    });
  match written {
    Ok(()) => Ok(private),
    Err(err) => {
      let _ = std::fs::remove_file(&private);
      Err(err)
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

/// Replace the lock file at `path` with `contents` in one step (a private file renamed over
/// it). Callers hold the [`DirGuard`].
pub(super) fn replace_with(path: &Path, contents: &[u8]) -> io::Result<()> {
  let private = write_private(path, contents)?;
  let result = std::fs::rename(&private, path);
  if result.is_err() {
    let _ = std::fs::remove_file(&private);
  } else {
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
  /// Take the lock of `holder.group`, or report who holds it (see [`Lock::acquire`]).
  ///
  /// A live lock an older drctl wrote (one per runbook, naming no group) may be a run of any
  /// group, so it refuses every acquisition, as the holder of the group would: while a state
  /// is shared across an upgrade, a failback started by this drctl never runs beside a failover
  /// started by the older one. Checked once our own lock is held, so a run of this drctl that
  /// starts later sees ours.
  pub async fn acquire(&self, holder: LockHolder, lease: Duration) -> Result<HeldLock, LockError> {
    let wanted = holder.clone();
    let lock = match self {
      LockStore::Local(dir) => Lock::acquire(dir, holder, lease).map(HeldLock::Local),
      LockStore::S3(state) => S3Lock::acquire(state, holder, lease)
        .await
        .map(HeldLock::S3),
    }?;
    match self.check_legacy(&wanted).await {
      Ok(()) => Ok(lock),
      Err(err) => {
        let _ = lock.release().await;
        Err(err)
      }
    }
  }

  /// `Err` when an older drctl's lock forbids `wanted`: a live one of another run (held), or a
  /// live one of the same run (a live run is not resumed). Stale ones of other runs are no
  /// concern of this run: their groups are unknown, and `drctl unlock` breaks them.
  async fn check_legacy(&self, wanted: &LockHolder) -> Result<(), LockError> {
    for found in self.holders().await? {
      let live = found.staleness(Utc::now()).is_none();
      if found.legacy && (live || found.run_id == wanted.run_id) {
        found.check_takeover(wanted)?;
      }
    }
    Ok(())
  }

  /// Who holds the lock of the lock group `group`, if anyone.
  pub async fn holder(&self, group: &str) -> Result<Option<LockHolder>, LockError> {
    match self {
      LockStore::Local(dir) => holder(dir, group),
      LockStore::S3(state) => s3::holder(state, group).await,
    }
  }

  /// Break the lock of the lock group `group`, returning who held it. A live holder's lock is
  /// only broken with `force` ([`LockError::Live`] otherwise).
  pub async fn unlock(&self, group: &str, force: bool) -> Result<Option<LockHolder>, LockError> {
    match self {
      LockStore::Local(dir) => unlock(dir, group, force),
      LockStore::S3(state) => s3::unlock(state, group, force).await,
    }
  }

  /// The holder of every lock in the store, by group (stale ones too: see
  /// [`LockHolder::staleness`]). A lock that cannot be read is left out: it names no run.
  pub async fn holders(&self) -> Result<Vec<LockHolder>, LockError> {
    match self {
      LockStore::Local(dir) => holders(dir),
      LockStore::S3(state) => s3::holders(state).await,
    }
  }

  /// The lock `run_id` holds, if it holds one (whatever its group).
  pub async fn held_by(&self, run_id: &str) -> Result<Option<LockHolder>, LockError> {
    Ok(
      self
        .holders()
        .await?
        .into_iter()
        .find(|holder| holder.run_id == run_id),
    )
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

/// Where the lock of the lock group `group` lives.
pub fn lock_path(dir: &Path, group: &str) -> PathBuf {
  dir.join(format!("{group}.lock"))
}

/// Who holds the lock of the lock group `group`, if anyone.
pub fn holder(dir: &Path, group: &str) -> Result<Option<LockHolder>, LockError> {
  read_holder(&lock_path(dir, group))
}

/// The holders of every readable lock file in `dir` (`<group>.lock`), by group.
pub fn holders(dir: &Path) -> Result<Vec<LockHolder>, LockError> {
  let entries = match std::fs::read_dir(dir) {
    Ok(entries) => entries,
    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
    Err(source) => {
      return Err(LockError::Io {
        path: dir.to_path_buf(),
        source,
      })
    }
  };
  let mut groups: Vec<String> = entries
    .flatten()
    .filter_map(|entry| entry.file_name().into_string().ok())
    .filter_map(|name| name.strip_suffix(".lock").map(str::to_string))
    .filter(|group| check_name(NameKind::LockGroup, group).is_ok())
    .collect();
  groups.sort();
  let mut found = Vec::new();
  for group in groups {
    match holder(dir, &group) {
      Ok(Some(holder)) => found.push(holder),
      // Released since the listing, or not ours to judge: it names no run.
      Ok(None) | Err(LockError::Unreadable { .. }) => {}
      Err(err) => return Err(err),
    }
  }
  Ok(found)
}

/// Break the lock of the lock group `group`, returning who held it: refused while the holder is
/// alive, unless `force`. Under the directory's guard, so a takeover cannot slip in between the
/// check and the removal.
pub fn unlock(dir: &Path, group: &str, force: bool) -> Result<Option<LockHolder>, LockError> {
  let path = lock_path(dir, group);
  if !dir.exists() {
    return Ok(None);
  }
  let _guard = DirGuard::take(dir)?;
  let holder = match read_holder(&path) {
    Ok(holder) => holder,
    // An unreadable lock is still breakable: that is what unlock is for.
    Err(LockError::Unreadable { .. }) => None,
    Err(err) => return Err(err),
  };
  if let Some(holder) = &holder {
    holder.check_unlock(force)?;
  }
  match std::fs::remove_file(&path) {
    Ok(()) => {
      sync_dir(&path);
      Ok(holder)
    }
    Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
    Err(source) => Err(LockError::Io { path, source }),
  }
}

fn read_holder(path: &Path) -> Result<Option<LockHolder>, LockError> {
  read_file(path).map(|file| file.map(|file| file.holder))
}

/// A lock written before locks were per group names no group: its file's name is its key.
pub(crate) fn fill_group(holder: &mut LockHolder, path: &Path) {
  if holder.group.is_empty() {
    holder.legacy = true;
    if let Some(stem) = path.file_stem().and_then(|stem| stem.to_str()) {
      holder.group = stem.to_string();
    }
  }
}

fn read_file(path: &Path) -> Result<Option<LockFile>, LockError> {
  match std::fs::read(path) {
    Ok(bytes) => parse_lock::<LockFile>(&bytes, path).map(|mut file| {
      fill_group(&mut file.holder, path);
      Some(file)
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

/// Whether a process with this pid exists on this host (any process: see
/// [`LockHolder::staleness`] for whether it is the holder).
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

/// Whether this host has a Linux `/proc` to read process start times from.
fn has_proc() -> bool {
  Path::new("/proc/self/stat").exists()
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), if the host has one.
fn boot_id() -> Option<String> {
  std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
    .ok()
    .map(|id| id.trim().to_string())
    .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
  use super::*;

  fn holder(run_id: &str, pid: u32) -> LockHolder {
    LockHolder {
      pid,
      pid_start: process_group::start_time(pid),
      lease_expires_at: Utc::now() + chrono::Duration::hours(1),
      ..LockHolder::this_process(run_id, "regional-failover", "default")
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

  /// Sixteen threads of this process acquire the lock in `dir` at once, thread `n` for the run
  /// `run_id(n)`: what each was told.
  fn race_for_the_lock(
    dir: &Path,
    run_id: impl Fn(usize) -> String + Sync,
  ) -> Vec<Result<Lock, LockError>> {
    std::thread::scope(|scope| {
      let handles: Vec<_> = (0..16)
        .map(|n| {
          let run_id = &run_id;
          scope.spawn(move || {
            Lock::acquire(
              dir,
              holder(&run_id(n), std::process::id()),
              Duration::from_secs(60),
            )
          })
        })
        .collect();
      handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect()
    })
  }

  #[test]
  fn racing_runs_never_see_a_half_written_lock() {
    // Sixteen threads race for one lock, many times: each either takes it or is told who holds
    // it — never that the lock file is unreadable.
    for _ in 0..20 {
      let dir = tempfile::tempdir().unwrap();
      let results = race_for_the_lock(dir.path(), |n| format!("run-{n}"));
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
    assert!(err.to_string().contains("drctl unlock default"));
    let broken = unlock(dir.path(), "default", false).unwrap().unwrap();
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
  fn a_live_run_is_not_taken_over_by_its_own_resume() {
    let dir = tempfile::tempdir().unwrap();
    let live = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    let err = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap_err();
    let LockError::Live { holder, refused } = &err else {
      panic!("{err:?}")
    };
    assert_eq!(
      (holder.run_id.as_str(), *refused),
      ("run-1", Refused::Resume)
    );
    let message = err.to_string();
    assert!(message.contains("run run-1 (host "), "{message}");
    assert!(message.contains("still running"), "{message}");
    assert_eq!(
      read_holder(&live.path).unwrap().unwrap(),
      *live.holder(),
      "the live holder's lock is untouched"
    );
  }

  #[test]
  fn racing_resumes_take_a_stale_lock_over_exactly_once() {
    // A killed run's lock, and sixteen resumes of that run racing for it, many times: exactly
    // one takes it over, every other finds the winner alive.
    for _ in 0..20 {
      let dir = tempfile::tempdir().unwrap();
      let _ = Lock::acquire(dir.path(), holder("run-1", 4_000_000), Lock::DEFAULT_LEASE).unwrap();
      let results = race_for_the_lock(dir.path(), |_| "run-1".to_string());
      let taken = results.iter().filter(|result| result.is_ok()).count();
      let refused = results
        .iter()
        .filter(|result| matches!(result, Err(LockError::Live { .. })))
        .count();
      assert_eq!((taken, refused), (1, 15), "{results:?}");
      let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
      assert_eq!(leftovers, 1, "only the lock file remains");
    }
  }

  #[test]
  fn a_reused_pid_or_a_reboot_makes_a_holder_stale() {
    // Our own pid, alive, but recorded with another start time: the pid was reused.
    let mut reused = holder("run-1", std::process::id());
    assert_eq!(reused.staleness(Utc::now()), None);
    reused.pid_start = reused.pid_start.map(|start| start + 1);
    let why = reused.staleness(Utc::now()).unwrap();
    assert!(
      why.contains("its pid now belongs to another process"),
      "{why}"
    );
    let mut rebooted = holder("run-1", std::process::id());
    rebooted.boot_id = Some("another-boot".into());
    let why = rebooted.staleness(Utc::now()).unwrap();
    assert!(why.contains("rebooted"), "{why}");
    // A holder on another host is judged by its lease only.
    let mut remote = holder("run-1", 4_000_000);
    remote.host = "elsewhere".into();
    remote.lease_expires_at = Utc::now() + chrono::Duration::seconds(60);
    assert_eq!(remote.staleness(Utc::now()), None);
  }

  #[test]
  fn unlock_refuses_a_live_holder_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let _live = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    let err = unlock(dir.path(), "default", false).unwrap_err();
    assert!(
      matches!(
        err,
        LockError::Live {
          refused: Refused::Unlock,
          ..
        }
      ),
      "{err:?}"
    );
    assert!(err.to_string().contains("unlock --force"), "{err}");
    assert!(holder_of(dir.path()).is_some());
    let broken = unlock(dir.path(), "default", true).unwrap().unwrap();
    assert_eq!(broken.run_id, "run-1");
    assert!(holder_of(dir.path()).is_none());
  }

  fn holder_of(dir: &Path) -> Option<LockHolder> {
    super::holder(dir, "default").unwrap()
  }

  #[tokio::test]
  async fn a_live_lock_of_an_older_drctl_refuses_every_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = LockStore::Local(dir.path().to_path_buf());
    // An older drctl's lock: named after its runbook, no group in it, its holder alive.
    let mut old = serde_json::to_value(holder("run-old", std::process::id())).unwrap();
    old.as_object_mut().unwrap().remove("group");
    std::fs::write(lock_path(dir.path(), "regional-failover"), old.to_string()).unwrap();
    let err = store
      .acquire(holder("run-new", std::process::id()), Lock::DEFAULT_LEASE)
      .await
      .unwrap_err();
    let LockError::Held { holder: found, .. } = &err else {
      panic!("{err:?}")
    };
    assert_eq!(found.run_id, "run-old");
    assert!(
      err.to_string().contains("of runbook `regional-failover`"),
      "{err}"
    );
    assert!(
      super::holder(dir.path(), "default").unwrap().is_none(),
      "the refused run released the lock it took"
    );
    // Once that holder is stale (its process gone), it refuses nothing.
    old["pid"] = 4_000_000.into();
    old.as_object_mut().unwrap().remove("pid_start");
    std::fs::write(lock_path(dir.path(), "regional-failover"), old.to_string()).unwrap();
    let lock = store
      .acquire(holder("run-new", std::process::id()), Lock::DEFAULT_LEASE)
      .await
      .unwrap();
    assert_eq!(lock.holder().group, "default");
  }

  #[test]
  fn lock_files_and_their_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locks = dir.path().join("state/locks");
    let lock = Lock::acquire(&locks, holder("run-1", 4_000_000), Lock::DEFAULT_LEASE).unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&lock.path), 0o600);
    assert_eq!(mode(&locks), 0o700);
    assert_eq!(mode(&dir.path().join("state")), 0o700);
  }

  /// Rewrite the lock file of `dir` as a newer drctl would have written it.
  fn restamp_newer(dir: &Path) -> Vec<u8> {
    let path = lock_path(dir, "default");
    let mut value: serde_json::Value =
      serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(value["format"], 1, "{value}");
    value["format"] = 2.into();
    let bytes = serde_json::to_vec_pretty(&value).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    bytes
  }

  #[test]
  fn a_lock_a_newer_drctl_wrote_is_not_taken_broken_renewed_or_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut lock = Lock::acquire(
      dir.path(),
      holder("run-1", std::process::id()),
      Lock::DEFAULT_LEASE,
    )
    .unwrap();
    let newer = restamp_newer(dir.path());
    let path = lock_path(dir.path(), "default");
    let refused = |err: LockError| match err {
      LockError::NewerFormat(newer) => assert_eq!(newer.found, 2),
      other => panic!("expected a newer format, got {other}"),
    };
    // A resume of the very run it names, even with a dead pid (stale), is refused.
    refused(Lock::acquire(dir.path(), holder("run-1", u32::MAX), Lock::DEFAULT_LEASE).unwrap_err());
    refused(unlock(dir.path(), "default", true).unwrap_err());
    refused(super::holder(dir.path(), "default").unwrap_err());
    // Not ours any more: renewing finds it lost, releasing leaves it.
    assert!(matches!(lock.renew(), Err(LockError::Lost { .. })));
    lock.release().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), newer);
  }
}
