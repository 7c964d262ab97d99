//! The `s3://bucket/prefix` state backend: the lock object and the journal mirror in a bucket
//! that several operators and scheduler replicas share.
//!
//! Layout under the prefix:
//!
//! ```text
//! locks/<group>.lock                    the lock of a lock group: a `LockHolder` as JSON, like the
//!                                       local lock
//! freeze.json                           the freeze of live drills (`drctl freeze`), if any
//! runs/<run-id>/journal/<seq:010>.json  one object per journal record: the exact local line
//! ```
//!
//! Invariants:
//! * Every object is written with a condition. A journal record is created with
//!   `If-None-Match: *` and never overwritten; records are pushed in sequence order and pushing
//!   stops at the first failure, so the S3 copy of a run is always a prefix of its local
//!   journal, byte for byte.
//! * The lock is created with `If-None-Match: *` and renewed or taken over with `If-Match`, so
//!   exactly one of N racing runs holds it, and a holder whose object was overwritten finds out
//!   on its next renewal.
//! * Every object carries its format (`state::format`). A lock, a record to pull or a history
//!   entry that a newer drctl wrote is refused (exit 2): never taken over, broken, or pulled
//!   into the local cache, where it would pass for this drctl's own.
//! * The local journal (in the cache directory `<state root>/s3/<bucket>/<prefix>/`) is always
//!   written first: a run is never blocked by a bucket it cannot reach.

use std::{
  collections::{BTreeMap, BTreeSet},
  fmt,
  io::Write,
  os::unix::fs::OpenOptionsExt,
  path::{Path, PathBuf},
  time::Duration,
};

use chrono::Utc;

use super::{
  format::{self, NewerFormat},
  journal::{self, JournalError},
  lock::{self, LockError, LockHolder},
  store::{self, Store},
};
use crate::cloud::{
  aws::{StateStore, StoreError},
  CloudError,
};

/// Where the state lives in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
  pub bucket: String,
  /// Without leading or trailing `/`; may be empty.
  pub prefix: String,
}

impl S3Location {
  /// Parse `s3://bucket[/prefix]`.
  pub fn parse(url: &str) -> Result<S3Location, String> {
    let rest = url
      .strip_prefix("s3://")
      .ok_or_else(|| format!("state `{url}`: not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
      return Err(format!(
        "state `{url}`: no bucket (expected s3://bucket/prefix)"
      ));
    }
    Ok(S3Location {
      bucket: bucket.to_string(),
      prefix: prefix.trim_matches('/').to_string(),
    })
  }

  pub fn key(&self, rest: &str) -> String {
    if self.prefix.is_empty() {
      rest.to_string()
    } else {
      format!("{}/{rest}", self.prefix)
    }
  }

  pub fn lock_key(&self, group: &str) -> String {
    self.key(&format!("locks/{group}.lock"))
  }

  /// Where every lock object lives.
  pub fn locks_prefix(&self) -> String {
    self.key("locks/")
  }

  /// The freeze of live drills (see `state::freeze`).
  pub fn freeze_key(&self) -> String {
    self.key("freeze.json")
  }

  pub fn runs_prefix(&self) -> String {
    self.key("runs/")
  }

  pub fn journal_prefix(&self, run_id: &str) -> String {
    self.key(&format!("runs/{run_id}/journal/"))
  }

  pub fn record_key(&self, run_id: &str, seq: u64) -> String {
    format!("{}{seq:010}.json", self.journal_prefix(run_id))
  }

  /// The local cache of this location under a state root (`.drctl`).
  pub fn cache_dir(&self, root: &Path) -> PathBuf {
    let mut dir = root.join("s3").join(&self.bucket);
    for part in self.prefix.split('/').filter(|part| !part.is_empty()) {
      dir.push(part);
    }
    dir
  }
}

impl fmt::Display for S3Location {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if self.prefix.is_empty() {
      write!(f, "s3://{}", self.bucket)
    } else {
      write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
  }
}

/// A connected `s3://` state: the location and the client that reaches it.
#[derive(Debug, Clone)]
pub struct S3State {
  pub location: S3Location,
  pub store: StateStore,
}

// ---------------------------------------------------------------------------------------------
// The lock.
// ---------------------------------------------------------------------------------------------

/// A lock held in S3: the object and the ETag of our last write.
#[derive(Debug)]
pub struct S3Lock {
  state: S3State,
  key: String,
  holder: LockHolder,
  lease: Duration,
  etag: String,
}

/// How many times acquiring retries a race it lost without learning who won (the object was
/// deleted or overwritten between two of our requests).
const ACQUIRE_ROUNDS: usize = 8;

impl S3Lock {
  /// Take the lock, or report who holds it. A stale lock held by the same run id (a resume) is
  /// taken over with a conditional overwrite; a live one is not ([`LockError::Live`]).
  pub async fn acquire(
    state: &S3State,
    holder: LockHolder,
    lease: Duration,
  ) -> Result<S3Lock, LockError> {
    let key = state.location.lock_key(&holder.group);
    let mut holder = holder;
    holder.lease_expires_at = Utc::now() + lease;
    let body = holder_bytes(&holder, &key)?;
    let (bucket, store) = (&state.location.bucket, &state.store);
    for _ in 0..ACQUIRE_ROUNDS {
      let conflict = match store.put_if_absent(bucket, &key, body.clone()).await {
        Ok(etag) => {
          return Ok(S3Lock {
            state: state.clone(),
            key,
            holder,
            lease,
            etag,
          })
        }
        Err(StoreError::Conflict) => true,
        Err(StoreError::Cloud(source)) => return Err(remote(state, &key, source)),
      };
      debug_assert!(conflict);
      let Some((bytes, etag)) = store
        .get(bucket, &key)
        .await
        .map_err(|source| remote(state, &key, source))?
      else {
        // Released between our write and our read: try again.
        continue;
      };
      // A takeover is a conditional overwrite of the very object we judged stale: of N racing
      // resumes exactly one `If-Match` succeeds; the others go round again and find the
      // winner alive.
      parse_holder(&bytes, state, &key)?.check_takeover(&holder)?;
      match store.put_if_match(bucket, &key, body.clone(), &etag).await {
        Ok(etag) => {
          return Ok(S3Lock {
            state: state.clone(),
            key,
            holder,
            lease,
            etag,
          })
        }
        Err(StoreError::Conflict) => continue,
        Err(StoreError::Cloud(source)) => return Err(remote(state, &key, source)),
      }
    }
    Err(LockError::Contended {
      path: s3_url(state, &key),
    })
  }

  pub fn holder(&self) -> &LockHolder {
    &self.holder
  }

  /// Extend the lease, only if the object is still the one we wrote. If it is not, the lock is
  /// lost ([`LockError::Lost`]) and someone else may be running a runbook of its group.
  pub async fn renew(&mut self) -> Result<(), LockError> {
    let mut holder = self.holder.clone();
    holder.lease_expires_at = Utc::now() + self.lease;
    let body = holder_bytes(&holder, &self.key)?;
    let bucket = &self.state.location.bucket;
    match self
      .state
      .store
      .put_if_match(bucket, &self.key, body, &self.etag)
      .await
    {
      Ok(etag) => {
        self.etag = etag;
        self.holder = holder;
        Ok(())
      }
      Err(StoreError::Conflict) => {
        let now_held_by = match self.state.store.get(bucket, &self.key).await {
          Ok(Some((bytes, _))) => serde_json::from_slice(&bytes).ok(),
          _ => None,
        };
        Err(LockError::Lost {
          group: self.holder.group.clone(),
          path: s3_url(&self.state, &self.key),
          now_held_by: now_held_by.map(Box::new),
        })
      }
      // A missing object (broken with `drctl unlock`) answers If-Match with 404.
      Err(StoreError::Cloud(source)) if source.http_status == Some(404) => Err(LockError::Lost {
        group: self.holder.group.clone(),
        path: s3_url(&self.state, &self.key),
        now_held_by: None,
      }),
      Err(StoreError::Cloud(source)) => Err(remote(&self.state, &self.key, source)),
    }
  }

  /// Release the lock, only if we still hold it.
  pub async fn release(self) -> Result<(), LockError> {
    let bucket = &self.state.location.bucket;
    let current = self
      .state
      .store
      .get(bucket, &self.key)
      .await
      .map_err(|source| remote(&self.state, &self.key, source))?;
    // Read-then-delete: a conditional DeleteObject is not used because S3-compatible stores
    // (moto among them) do not all honour it. The window is one round trip, and only a run
    // that takes the lock in it (after our lease was seen expired) is affected.
    // "Still ours" is our last write's ETag, not the run id: a resume of this same run that
    // took the lock over wrote another object, and that one is not ours to delete.
    match current {
      Some((_, etag)) if etag == self.etag => self
        .state
        .store
        .delete(bucket, &self.key)
        .await
        .map_err(|source| remote(&self.state, &self.key, source)),
      _ => Ok(()),
    }
  }
}

/// Who holds the lock of the lock group `group` in S3, if anyone.
pub async fn holder(state: &S3State, group: &str) -> Result<Option<LockHolder>, LockError> {
  let key = state.location.lock_key(group);
  match state
    .store
    .get(&state.location.bucket, &key)
    .await
    .map_err(|source| remote(state, &key, source))?
  {
    Some((bytes, _)) => parse_holder(&bytes, state, &key).map(Some),
    None => Ok(None),
  }
}

/// The holders of every readable lock object under `locks/`, by group.
pub async fn holders(state: &S3State) -> Result<Vec<LockHolder>, LockError> {
  let prefix = state.location.locks_prefix();
  let keys = state
    .store
    .list(&state.location.bucket, &prefix)
    .await
    .map_err(|source| remote(state, &prefix, source))?;
  let mut found = Vec::new();
  for key in keys {
    let Some(group) = key
      .strip_prefix(&prefix)
      .and_then(|name| name.strip_suffix(".lock"))
      .filter(|group| store::check_name(store::NameKind::LockGroup, group).is_ok())
    else {
      continue;
    };
    match holder(state, group).await {
      Ok(Some(holder)) => found.push(holder),
      // Released since the listing, or unreadable: it names no run.
      Ok(None) | Err(LockError::Unreadable { .. }) => {}
      Err(err) => return Err(err),
    }
  }
  Ok(found)
}

/// Break the lock of the lock group `group` in S3, returning who held it: refused while the
/// holder is alive, unless `force`. Read-then-delete, like [`S3Lock::release`]: a takeover in
/// that one round trip would be deleted with it.
pub async fn unlock(
  state: &S3State,
  group: &str,
  force: bool,
) -> Result<Option<LockHolder>, LockError> {
  let key = state.location.lock_key(group);
  let Some((bytes, _)) = state
    .store
    .get(&state.location.bucket, &key)
    .await
    .map_err(|source| remote(state, &key, source))?
  else {
    return Ok(None);
  };
  // An unreadable lock is still breakable: that is what unlock is for. One a newer drctl
  // wrote is not: this drctl cannot tell whether its holder lives.
  let holder = match parse_holder(&bytes, state, &key) {
    Ok(holder) => Some(holder),
    Err(LockError::Unreadable { .. }) => None,
    Err(err) => return Err(err),
  };
  if let Some(holder) = &holder {
    holder.check_unlock(force)?;
  }
  state
    .store
    .delete(&state.location.bucket, &key)
    .await
    .map_err(|source| remote(state, &key, source))?;
  Ok(holder)
}

fn s3_url(state: &S3State, key: &str) -> PathBuf {
  PathBuf::from(format!("s3://{}/{key}", state.location.bucket))
}

fn remote(state: &S3State, key: &str, source: CloudError) -> LockError {
  LockError::Remote {
    path: s3_url(state, key),
    source: Box::new(source),
  }
}

fn holder_bytes(holder: &LockHolder, key: &str) -> Result<Vec<u8>, LockError> {
  serde_json::to_vec_pretty(&format::stamped(format::Kind::Lock, holder)).map_err(|err| {
    LockError::Unreadable {
      path: PathBuf::from(key),
      reason: err.to_string(),
    }
  })
}

fn parse_holder(bytes: &[u8], state: &S3State, key: &str) -> Result<LockHolder, LockError> {
  let mut holder: LockHolder = lock::parse_lock(bytes, &s3_url(state, key))?;
  lock::fill_group(&mut holder, Path::new(key));
  Ok(holder)
}

// ---------------------------------------------------------------------------------------------
// The journal mirror: sync and pull.
// ---------------------------------------------------------------------------------------------

/// Why a sync or pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
  #[error(transparent)]
  Journal(#[from] JournalError),
  #[error("{location}: {source}")]
  Remote {
    location: String,
    #[source]
    source: CloudError,
  },
  #[error("{0}")]
  Local(String),
  /// A record in the bucket was written by a newer drctl: nothing was pulled.
  #[error(transparent)]
  NewerFormat(#[from] NewerFormat),
}

/// A record whose S3 copy differs from the local line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConflict {
  pub seq: u64,
  pub local_crc: String,
  pub remote_crc: String,
}

/// What a sync of one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
  pub run_id: String,
  /// Records pushed by this sync, in order.
  pub pushed: Vec<u64>,
  /// Records that were already in S3 and match the local lines.
  pub verified: usize,
  pub conflicts: Vec<SyncConflict>,
  /// Records in S3 beyond the end of the local journal.
  pub remote_only: Vec<u64>,
}

impl SyncReport {
  pub fn in_sync(&self) -> bool {
    self.conflicts.is_empty()
  }
}

/// The `crc` field of a journal line, for reports.
fn crc_of(line: &[u8]) -> String {
  serde_json::from_slice::<serde_json::Value>(line)
    .ok()
    .and_then(|value| {
      value
        .get("crc")
        .and_then(|crc| crc.as_str())
        .map(String::from)
    })
    .unwrap_or_else(|| "unreadable".into())
}

fn parse_record_key(key: &str, prefix: &str) -> Option<u64> {
  key
    .strip_prefix(prefix)?
    .strip_suffix(".json")?
    .parse()
    .ok()
}

/// Push one line with `If-None-Match: *`; an existing object must hold the same bytes.
/// `Ok(true)`: pushed; `Ok(false)`: already there, identical; `Err(Ok(conflict))`: differs.
pub(crate) async fn push_line(
  state: &S3State,
  run_id: &str,
  seq: u64,
  line: &str,
) -> Result<Result<bool, SyncConflict>, CloudError> {
  let key = state.location.record_key(run_id, seq);
  let bucket = &state.location.bucket;
  match state
    .store
    .put_if_absent(bucket, &key, line.as_bytes().to_vec())
    .await
  {
    Ok(_) => Ok(Ok(true)),
    Err(StoreError::Conflict) => verify_line(state, &key, seq, line)
      .await
      .map(|verified| verified.map(|()| false)),
    Err(StoreError::Cloud(err)) => Err(err),
  }
}

async fn verify_line(
  state: &S3State,
  key: &str,
  seq: u64,
  line: &str,
) -> Result<Result<(), SyncConflict>, CloudError> {
  let remote = state
    .store
    .get(&state.location.bucket, key)
    .await?
    .map(|(bytes, _)| bytes)
    .unwrap_or_default();
  if remote == line.as_bytes() {
    Ok(Ok(()))
  } else {
    Ok(Err(SyncConflict {
      seq,
      local_crc: crc_of(line.as_bytes()),
      remote_crc: crc_of(&remote),
    }))
  }
}

/// Push the records of `run_id` that are missing in S3, in order, and verify the ones already
/// there. Idempotent. Pushing stops at the first conflict (a later record must never land
/// after a hole or a mismatch).
pub async fn sync_run(
  state: &S3State,
  store: &Store,
  run_id: &str,
) -> Result<SyncReport, SyncError> {
  let lines = journal::read_lines(&store.journal_path(run_id))?;
  let prefix = state.location.journal_prefix(run_id);
  let remote_err = |source| SyncError::Remote {
    location: format!("s3://{}/{prefix}", state.location.bucket),
    source,
  };
  let remote: BTreeSet<u64> = state
    .store
    .list(&state.location.bucket, &prefix)
    .await
    .map_err(remote_err)?
    .iter()
    .filter_map(|key| parse_record_key(key, &prefix))
    .collect();
  let mut report = SyncReport {
    run_id: run_id.to_string(),
    ..SyncReport::default()
  };
  for (seq, line) in &lines {
    let outcome = if remote.contains(seq) {
      let key = state.location.record_key(run_id, *seq);
      verify_line(state, &key, *seq, line)
        .await
        .map_err(remote_err)?
        .map(|()| false)
    } else if report.conflicts.is_empty() {
      push_line(state, run_id, *seq, line)
        .await
        .map_err(remote_err)?
    } else {
      continue;
    };
    match outcome {
      Ok(true) => report.pushed.push(*seq),
      Ok(false) => report.verified += 1,
      Err(conflict) => report.conflicts.push(conflict),
    }
  }
  let last = lines.last().map_or(0, |(seq, _)| *seq);
  report.remote_only = remote.into_iter().filter(|seq| *seq > last).collect();
  if report.in_sync() && report.remote_only.is_empty() {
    clear_unsynced(store, run_id);
  }
  Ok(report)
}

/// Copy into the local cache the journal records that are in S3 but not here (runs started by
/// other operators or replicas, or progress made elsewhere). Only records that extend a local
/// journal contiguously are added; a local journal is never rewritten. Every record is read
/// before any is written: one that a newer drctl wrote ([`SyncError::NewerFormat`]) stops the
/// pull with nothing written. Returns the runs that got records.
pub async fn pull_runs(state: &S3State, store: &Store) -> Result<Vec<String>, SyncError> {
  let prefix = state.location.runs_prefix();
  let keys = state
    .store
    .list(&state.location.bucket, &prefix)
    .await
    .map_err(|source| SyncError::Remote {
      location: format!("s3://{}/{prefix}", state.location.bucket),
      source,
    })?;
  let mut runs: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
  for key in &keys {
    let Some((run_id, _)) = key
      .strip_prefix(&prefix)
      .and_then(|rest| rest.split_once('/'))
    else {
      continue;
    };
    // A run id from the bucket becomes a local path: one that could leave the cache is skipped.
    if store::check_name(store::NameKind::RunId, run_id).is_err() {
      continue;
    }
    if let Some(seq) = parse_record_key(key, &state.location.journal_prefix(run_id)) {
      runs.entry(run_id.to_string()).or_default().insert(seq);
    }
  }
  let mut pulls = Vec::new();
  for (run_id, seqs) in runs {
    let path = store.journal_path(&run_id);
    // A run a process on this machine is writing (a resume racing this pull) is skipped: its
    // local journal is ahead of the bucket, and appending here would duplicate its records.
    let Some(no_writer) = journal::writer_absent(&path)? else {
      continue;
    };
    let last = match journal::read_lines(&path) {
      Ok(lines) => lines.last().map_or(0, |(seq, _)| *seq),
      Err(JournalError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => 0,
      Err(JournalError::Empty { .. }) => 0,
      Err(err) => return Err(err.into()),
    };
    let text = fetch_records(state, &run_id, last + 1, &seqs).await?;
    if !text.is_empty() {
      pulls.push((run_id, path, text, no_writer));
    }
  }
  let mut pulled = Vec::new();
  for (run_id, path, text, _no_writer) in pulls {
    append_pulled(&path, &text)?;
    pulled.push(run_id);
  }
  Ok(pulled)
}

/// The journal lines of `run_id` in S3 from `first` on, as long as they are contiguous: each
/// checked to be a journal line in a format this drctl reads.
async fn fetch_records(
  state: &S3State,
  run_id: &str,
  first: u64,
  seqs: &BTreeSet<u64>,
) -> Result<String, SyncError> {
  let mut text = String::new();
  let mut seq = first;
  while seqs.contains(&seq) {
    let key = state.location.record_key(run_id, seq);
    let url = format!("s3://{}/{key}", state.location.bucket);
    let Some((bytes, _)) = state
      .store
      .get(&state.location.bucket, &key)
      .await
      .map_err(|source| SyncError::Remote {
        location: url.clone(),
        source,
      })?
    else {
      break;
    };
    let line =
      String::from_utf8(bytes).map_err(|_| SyncError::Local(format!("{url}: not UTF-8")))?;
    let Some(body) = line.strip_suffix('\n') else {
      return Err(SyncError::Local(format!("{url}: not a journal line")));
    };
    if let Err(journal::DecodeError::Newer { found }) = journal::decode(body) {
      return Err(SyncError::NewerFormat(NewerFormat {
        kind: format::Kind::Journal,
        location: url,
        found,
      }));
    }
    text.push_str(&line);
    seq += 1;
  }
  Ok(text)
}

/// Append pulled lines to a local journal (created if need be), durably.
// The error `pull_runs` returns, made once per pull: its size costs nothing.
#[allow(clippy::result_large_err)]
fn append_pulled(path: &Path, text: &str) -> Result<(), SyncError> {
  let local_err = |err: std::io::Error| SyncError::Local(format!("{}: {err}", path.display()));
  if let Some(dir) = path.parent() {
    store::create_private_dir(dir).map_err(local_err)?;
  }
  let mut file = std::fs::OpenOptions::new()
    .create(true)
    .append(true)
    .mode(0o600)
    .custom_flags(libc::O_NOFOLLOW)
    .open(path)
    .map_err(local_err)?;
  file.write_all(text.as_bytes()).map_err(local_err)?;
  file.sync_all().map_err(local_err)
}

/// The file that says which records of a run the mirror could not push.
pub fn unsynced_path(store: &Store, run_id: &str) -> PathBuf {
  store.run_dir(run_id).join("s3-unsynced.json")
}

/// Record that records from `first_seq` on are not in S3 (best effort: the mirror is advisory).
pub(crate) fn mark_unsynced(store: &Store, run_id: &str, first_seq: u64, reason: &str) {
  let text = serde_json::json!({
    "format": format::Kind::Journal.current(),
    "first_unsynced_seq": first_seq,
    "reason": reason,
    "since": Utc::now(),
  });
  let _ = store::write_private(&unsynced_path(store, run_id), format!("{text}\n"));
}

pub(crate) fn clear_unsynced(store: &Store, run_id: &str) {
  let _ = std::fs::remove_file(unsynced_path(store, run_id));
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn locations_parse_and_name_their_keys() {
    let location = S3Location::parse("s3://drctl-state/team/dr/").unwrap();
    assert_eq!(location.bucket, "drctl-state");
    assert_eq!(location.prefix, "team/dr");
    assert_eq!(
      location.lock_key("regional-failover"),
      "team/dr/locks/regional-failover.lock"
    );
    assert_eq!(
      location.record_key("20260101-000000-abcd", 7),
      "team/dr/runs/20260101-000000-abcd/journal/0000000007.json"
    );
    assert_eq!(location.to_string(), "s3://drctl-state/team/dr");
    assert_eq!(
      location.cache_dir(Path::new(".drctl")),
      Path::new(".drctl/s3/drctl-state/team/dr")
    );
    let bare = S3Location::parse("s3://bucket").unwrap();
    assert_eq!(bare.lock_key("x"), "locks/x.lock");
    assert!(S3Location::parse("s3:///x").is_err());
    assert!(S3Location::parse("/tmp/x").is_err());
  }

  #[test]
  fn record_keys_sort_in_sequence_order() {
    let location = S3Location::parse("s3://b/p").unwrap();
    let prefix = location.journal_prefix("r");
    let mut keys: Vec<String> = [10, 2, 1, 100]
      .iter()
      .map(|seq| location.record_key("r", *seq))
      .collect();
    keys.sort();
    let seqs: Vec<u64> = keys
      .iter()
      .filter_map(|key| parse_record_key(key, &prefix))
      .collect();
    assert_eq!(seqs, [1, 2, 10, 100]);
  }

  #[test]
  fn the_crc_of_a_line_is_reported() {
    assert_eq!(crc_of(b"{\"seq\":1,\"crc\":\"0badf00d\"}\n"), "0badf00d");
    assert_eq!(crc_of(b"garbage"), "unreadable");
  }
}
