//! The local state directory: where runs and locks live, and how to list them.
//!
//! Run ids, runbook names and drill names become file names in it, so every one a user gives
//! is checked first ([`check_name`]): one path component of letters, digits, `-` and `_`, so
//! that nothing it names can lie outside the state directory.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::journal::{self, Event, JournalError, Record, RunMode, RunStatus};

/// A local state directory.
#[derive(Debug, Clone)]
pub struct Store {
  root: PathBuf,
}

/// One line of `drctl runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
  pub run_id: String,
  pub runbook: String,
  pub mode: RunMode,
  pub backend: String,
  pub started_at: DateTime<Utc>,
  pub finished_at: Option<DateTime<Utc>>,
  /// `None` while running (or killed: a journal without `run_finished`).
  pub status: Option<RunStatus>,
}

impl Store {
  pub fn new(root: impl Into<PathBuf>) -> Store {
    Store { root: root.into() }
  }

  pub fn root(&self) -> &Path {
    &self.root
  }

  pub fn runs_dir(&self) -> PathBuf {
    self.root.join("runs")
  }

  pub fn locks_dir(&self) -> PathBuf {
    self.root.join("locks")
  }

  pub fn run_dir(&self, run_id: &str) -> PathBuf {
    self.runs_dir().join(run_id)
  }

  pub fn journal_path(&self, run_id: &str) -> PathBuf {
    self.run_dir(run_id).join("journal.jsonl")
  }

  /// A new, unique run id that is also a valid RDS identifier fragment: `YYYYMMDD-HHMMSS-xxxx`.
  ///
  /// Ids sort in the order runs started, which is what "the latest run" means: within one
  /// second the hex suffix climbs by a random step above every suffix that second already has
  /// here. Once a second's suffixes run out, the next second is waited for.
  pub fn new_run_id(&self) -> String {
    loop {
      let stamp = Utc::now().format("%Y%m%d-%H%M%S").to_string();
      // Every run directory, journal written yet or not.
      let highest = std::fs::read_dir(self.runs_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter_map(|id| {
          let suffix = id.strip_prefix(stamp.as_str())?.strip_prefix('-')?;
          u16::from_str_radix(suffix, 16).ok()
        })
        .max();
      let suffix = match highest {
        None => u32::from(fastrand::u16(..0x1000)),
        Some(highest) => u32::from(highest) + fastrand::u32(1..=16),
      };
      if suffix > u32::from(u16::MAX) {
        std::thread::sleep(std::time::Duration::from_millis(20));
        continue;
      }
      let id = format!("{stamp}-{suffix:04x}");
      if !self.run_dir(&id).exists() {
        return id;
      }
    }
  }

  /// Find a run by id or unique prefix (checked first: see [`check_name`]).
  pub fn find_run(&self, id: &str) -> Result<String, String> {
    check_name(NameKind::RunId, id)?;
    if self.journal_path(id).exists() {
      return Ok(id.to_string());
    }
    let matches: Vec<String> = self
      .run_ids()
      .into_iter()
      .filter(|candidate| candidate.starts_with(id))
      .collect();
    match matches.as_slice() {
      [one] => Ok(one.clone()),
      [] => Err(format!(
        "no run `{id}` in {} (list them with `drctl runs`)",
        self.runs_dir().display()
      )),
      many => Err(format!(
        "`{id}` matches {} runs: {}",
        many.len(),
        many.join(", ")
      )),
    }
  }

  /// All run ids, oldest first.
  pub fn run_ids(&self) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(self.runs_dir())
      .into_iter()
      .flatten()
      .flatten()
      .filter(|entry| entry.path().join("journal.jsonl").exists())
      .filter_map(|entry| entry.file_name().into_string().ok())
      .filter(|id| check_name(NameKind::RunId, id).is_ok())
      .collect();
    ids.sort();
    ids
  }

  /// Read a run's journal.
  pub fn read_journal(&self, run_id: &str) -> Result<Vec<Record>, JournalError> {
    journal::read(&self.journal_path(run_id))
  }

  /// Summaries of every run, oldest first. Unreadable journals are reported, not skipped.
  pub fn runs(&self) -> Vec<Result<RunSummary, JournalError>> {
    self
      .run_ids()
      .into_iter()
      .map(|id| {
        self
          .read_journal(&id)
          .map(|records| summarize(&id, &records))
      })
      .collect()
  }
}

/// Create a state directory (and its missing parents) readable by its owner only: 0700 whatever
/// the umask (a umask can only take bits away).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
  use std::os::unix::fs::DirBuilderExt;
  // The directories this creates, outermost first once reversed.
  let mut missing = Vec::new();
  let mut probe = Some(dir);
  while let Some(candidate) = probe {
    if candidate.as_os_str().is_empty() || candidate.is_dir() {
      break;
    }
    missing.push(candidate);
    probe = candidate.parent();
  }
  std::fs::DirBuilder::new()
    .recursive(true)
    .mode(0o700)
    .create(dir)?;
  // Each new directory is made durable in its parent, so a crash cannot lose the directory of
  // a file that was fsynced inside it.
  for created in missing.iter().rev() {
    super::journal::sync_dir(created);
  }
  Ok(())
}

/// Options that open a state file for writing readable by its owner only: 0600 whatever the
/// umask, and never through a symbolic link planted at its path.
pub fn private_file() -> std::fs::OpenOptions {
  use std::os::unix::fs::OpenOptionsExt;
  let mut options = std::fs::OpenOptions::new();
  options
    .write(true)
    .mode(0o600)
    .custom_flags(libc::O_NOFOLLOW);
  options
}

/// Write a whole state file (a drill's summary, report or notification record, the sandbox
/// record): created 0600, truncated if it exists (and made 0600 if an older drctl left it wider).
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
  use std::{io::Write, os::unix::fs::PermissionsExt};
  let mut file = private_file().create(true).truncate(true).open(path)?;
  file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
  file.write_all(contents.as_ref())
}

/// What a name given by the user names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
  RunId,
  Runbook,
  Drill,
  /// A runbook's `metadata.lock_group` (or a runbook name resolving to it).
  LockGroup,
}

impl NameKind {
  fn as_str(&self) -> &'static str {
    match self {
      NameKind::RunId => "run id",
      NameKind::Runbook => "runbook name",
      NameKind::Drill => "drill name",
      NameKind::LockGroup => "lock group or runbook name",
    }
  }
}

/// The longest name accepted (run ids are 20 characters; runbook and drill names are short).
const MAX_NAME_LEN: usize = 128;

/// Check a run id, runbook or drill name given by the user before it becomes part of a path:
/// 1 to 128 ASCII letters, digits, `-` and `_` (no `/`, no `.`, so no `..`). `Err` is the
/// message for the user.
pub fn check_name(kind: NameKind, name: &str) -> Result<(), String> {
  let valid = !name.is_empty()
    && name.len() <= MAX_NAME_LEN
    && name
      .bytes()
      .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
  if valid {
    return Ok(());
  }
  let shown: String = name.chars().take(MAX_NAME_LEN).collect();
  Err(format!(
    "`{}` is not a valid {}: use 1 to {MAX_NAME_LEN} letters, digits, `-` and `_`{}",
    shown.escape_debug(),
    kind.as_str(),
    match kind {
      NameKind::RunId => " (list runs with `drctl runs`)",
      NameKind::Runbook => " (the runbook's metadata.name, or the path of its file)",
      NameKind::Drill => " (list drills with `drctl drill list`)",
      NameKind::LockGroup => {
        " (a runbook's metadata.lock_group, default `default`; or the runbook's name or file)"
      }
    }
  ))
}

/// Summarize a journal.
pub fn summarize(run_id: &str, records: &[Record]) -> RunSummary {
  let mut summary = RunSummary {
    run_id: run_id.to_string(),
    runbook: String::new(),
    mode: RunMode::Live,
    backend: String::new(),
    started_at: records.first().map_or_else(Utc::now, |record| record.ts),
    finished_at: None,
    status: None,
  };
  for record in records {
    match &record.event {
      Event::RunStarted {
        runbook,
        mode,
        backend,
        ..
      } => {
        summary.runbook = runbook.clone();
        summary.mode = *mode;
        summary.backend = backend.clone();
      }
      Event::RunFinished { status, .. } => {
        summary.status = Some(*status);
        summary.finished_at = Some(record.ts);
      }
      Event::RunInterrupted { .. } => {
        summary.status = Some(RunStatus::Interrupted);
        summary.finished_at = Some(record.ts);
      }
      Event::LockLost { .. } => {
        summary.status = Some(RunStatus::LockLost);
        summary.finished_at = Some(record.ts);
      }
      Event::RunResumed { .. } => {
        summary.status = None;
        summary.finished_at = None;
      }
      _ => {}
    }
  }
  summary
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn names_that_could_leave_the_state_directory_are_refused() {
    for name in ["20261201-204523-4252", "regional-failover", "a_b", "X"] {
      assert_eq!(check_name(NameKind::RunId, name), Ok(()), "{name}");
    }
    for name in [
      "", "..", ".", "../x", "a/b", "/etc", "a.lock", "a\0b", "a b", "é",
    ] {
      let err = check_name(NameKind::Runbook, name).unwrap_err();
      assert!(err.contains("is not a valid runbook name"), "{err}");
    }
    assert!(check_name(NameKind::Drill, &"a".repeat(129)).is_err());
    let store = Store::new("/nonexistent-state");
    let err = store.find_run("../../x").unwrap_err();
    assert!(err.starts_with("`../../x` is not a valid run id"), "{err}");
  }

  /// "The latest run" is the last id in sort order (`drctl status` with no id), so runs started
  /// within one second must still sort in the order they started.
  #[test]
  fn run_ids_sort_in_the_order_runs_started_even_within_one_second() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut started = Vec::new();
    for _ in 0..64 {
      let id = store.new_run_id();
      check_name(NameKind::RunId, &id).unwrap();
      create_private_dir(&store.run_dir(&id)).unwrap();
      std::fs::write(store.journal_path(&id), "").unwrap();
      started.push(id);
    }
    assert_eq!(store.run_ids(), started);
  }
}
