//! The local state directory: where runs and locks live, and how to list them.

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

  /// A new, unique, sortable run id that is also a valid RDS identifier fragment.
  pub fn new_run_id(&self) -> String {
    loop {
      let id = format!(
        "{}-{:04x}",
        Utc::now().format("%Y%m%d-%H%M%S"),
        fastrand::u16(..)
      );
      if !self.run_dir(&id).exists() {
        return id;
      }
    }
  }

  /// Find a run by id or unique prefix.
  pub fn find_run(&self, id: &str) -> Result<String, String> {
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
      Event::RunResumed { .. } => {
        summary.status = None;
        summary.finished_at = None;
      }
      _ => {}
    }
  }
  summary
}
