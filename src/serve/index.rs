//! The runs the server shows, read from the state's journals and kept between requests.
//!
//! A journal is parsed again only when its length or modification time changed since the last
//! refresh, so a state with 10,000 finished runs costs one `stat` per run per refresh, not
//! 10,000 parses. Requests read the last refresh; [`RunIndex::refresh`] runs in the background
//! (and once before the server answers). Journals are only read.
//!
//! A row holds only what the journal's redaction already guarantees free of secrets: the
//! runbook's name, the backend, the mode, the starting account, times, the status and the
//! objective verdicts (a secret that could occur in a name or a status is refused before a run
//! starts). The run pages, which show summaries, errors and parameters, go through the report
//! builder and its redaction instead.

use std::{collections::HashMap, path::Path, sync::Arc, time::SystemTime};

use chrono::{DateTime, Utc};

use crate::{
  report::{ApiCalls, Report, Verdict},
  state::{store::Store, RunMode, RunStatus, Timeline},
};

/// A journal's identity for the cache: its length and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
  len: u64,
  modified: Option<SystemTime>,
}

impl Stamp {
  /// The stamp of the file at `path`, `None` when it cannot be read.
  pub fn of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
      len: meta.len(),
      modified: meta.modified().ok(),
    })
  }
}

/// One run, as the runs page and `/metrics` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
  pub run_id: String,
  pub runbook: String,
  pub backend: String,
  pub mode: RunMode,
  /// `None`: no end recorded (running, or killed and resumable).
  pub status: Option<RunStatus>,
  pub started_at: DateTime<Utc>,
  /// The operating-system account that started it.
  pub user: String,
  pub rto: Verdict,
  pub rpo: Verdict,
}

/// A run whose journal cannot be read (a newer format, corruption): shown, never skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
  pub run_id: String,
  pub error: String,
}

#[derive(Debug, Clone)]
enum Entry {
  Run(RunRow),
  Unreadable(Unreadable),
}

/// The runs of a state, oldest first, as of the last refresh.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
  pub runs: Vec<RunRow>,
  pub unreadable: Vec<Unreadable>,
}

/// The cache behind the snapshots.
#[derive(Debug, Default)]
pub struct RunIndex {
  cached: HashMap<String, (Stamp, Entry)>,
  /// Journals parsed by the last refresh (the rest came from the cache).
  pub parsed_last: usize,
}

impl RunIndex {
  /// Read what changed since the last refresh and return the state's runs.
  pub fn refresh(&mut self, store: &Store) -> Arc<Snapshot> {
    let ids = store.run_ids();
    let mut cached = HashMap::with_capacity(ids.len());
    let mut snapshot = Snapshot::default();
    self.parsed_last = 0;
    for id in ids {
      let Some(stamp) = Stamp::of(&store.journal_path(&id)) else {
        continue;
      };
      let entry = match self.cached.remove(&id) {
        Some((old, entry)) if old == stamp => entry,
        _ => {
          self.parsed_last += 1;
          read_entry(store, &id)
        }
      };
      match &entry {
        Entry::Run(row) => snapshot.runs.push(row.clone()),
        Entry::Unreadable(unreadable) => snapshot.unreadable.push(unreadable.clone()),
      }
      cached.insert(id, (stamp, entry));
    }
    self.cached = cached;
    Arc::new(snapshot)
  }
}

fn read_entry(store: &Store, id: &str) -> Entry {
  let unreadable = |error: String| {
    Entry::Unreadable(Unreadable {
      run_id: id.to_string(),
      error,
    })
  };
  let records = match store.read_journal(id) {
    Ok(records) => records,
    Err(err) => return unreadable(err.to_string()),
  };
  let Some(timeline) = Timeline::from_records(&records) else {
    return unreadable("the journal does not start with run_started".into());
  };
  // The verdicts come from the report, so the page and `drctl report` cannot disagree.
  let report = Report::from_timeline(&timeline, ApiCalls::not_recorded());
  let verdict = |name: &str| {
    report
      .objective(name)
      .map_or(Verdict::NoTarget, |objective| objective.verdict)
  };
  Entry::Run(RunRow {
    run_id: id.to_string(),
    runbook: timeline.runbook.clone(),
    backend: timeline.backend.clone(),
    mode: timeline.mode,
    status: timeline.status,
    started_at: timeline.started_at,
    user: timeline.user.clone(),
    rto: verdict("RTO"),
    rpo: verdict("RPO"),
  })
}
