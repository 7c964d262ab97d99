//! Drill history: one JSON line per drill run in `<state>/drills/<name>/history.jsonl`, and with
//! an `s3://` state also one object per run under `drills/<name>/history/` (written with
//! `If-None-Match: *`, so replicas never overwrite each other's entries). Each entry carries its
//! format (`state::format`); one written by a newer drctl is refused, never skipped.

use std::{
  io::Write,
  os::unix::fs::OpenOptionsExt,
  path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DrillResult;
use crate::state::{
  format::{self, FormatIssue, NewerFormat},
  RunStatus, S3State,
};

/// Why a drill's history cannot be read or pulled.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
  /// An entry was written by a newer drctl: refused (nothing was pulled).
  #[error(transparent)]
  NewerFormat(NewerFormat),
  /// The bucket did not answer, or the local file could not be written.
  #[error("{0}")]
  Io(String),
}

/// One drill run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
  pub drill: String,
  /// The engine run (empty for a dry run, which has no journal).
  pub run_id: String,
  /// `manual` (`drctl drill run`) or `scheduler`.
  pub trigger: String,
  /// The schedule time this run was for (scheduler runs only).
  pub due: Option<DateTime<Utc>>,
  pub started_at: DateTime<Utc>,
  pub finished_at: DateTime<Utc>,
  pub duration_seconds: f64,
  pub result: DrillResult,
  /// The run's own status (`succeeded`, `failed`, `breached`, `interrupted`, `lock_lost`), or
  /// `planned` or `skipped` when it did not run.
  pub run_status: DrillRun,
  pub mode: String,
  pub backend: String,
  pub rto_target_seconds: Option<f64>,
  pub rto_achieved_seconds: Option<f64>,
  pub rpo_target_seconds: Option<f64>,
  pub rpo_achieved_seconds: Option<f64>,
  /// Why it did not pass, one line each.
  #[serde(default)]
  pub reasons: Vec<String>,
  pub host: String,
}

/// What became of the run a drill started, as its history line says (`run_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DrillRun {
  /// A live drill ran: the run's own status.
  Ran(RunStatus),
  /// It did not run.
  NotRun(NotRun),
}

/// Why a drill has no run of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotRun {
  /// A dry-run drill: it planned, nothing ran.
  Planned,
  /// A live drill a freeze held back.
  Skipped,
}

impl DrillRun {
  pub fn as_str(self) -> &'static str {
    match self {
      DrillRun::Ran(status) => status.as_str(),
      DrillRun::NotRun(NotRun::Planned) => "planned",
      DrillRun::NotRun(NotRun::Skipped) => DrillResult::Skipped.as_str(),
    }
  }
}

impl HistoryEntry {
  pub fn passed(&self) -> bool {
    self.result == DrillResult::Passed
  }

  /// A live drill a freeze held back: it did not run.
  pub fn skipped(&self) -> bool {
    self.result == DrillResult::Skipped
  }
}

pub fn drill_dir(state_root: &Path, drill: &str) -> PathBuf {
  state_root.join("drills").join(drill)
}

pub fn history_path(state_root: &Path, drill: &str) -> PathBuf {
  drill_dir(state_root, drill).join("history.jsonl")
}

/// Append an entry (flushed and fsynced).
pub fn append(state_root: &Path, entry: &HistoryEntry) -> std::io::Result<()> {
  let path = history_path(state_root, &entry.drill);
  if let Some(dir) = path.parent() {
    crate::state::store::create_private_dir(dir)?;
  }
  let mut line = serde_json::to_string(&format::stamped(format::Kind::History, entry))
    .map_err(std::io::Error::other)?;
  line.push('\n');
  let mut file = std::fs::OpenOptions::new()
    .create(true)
    .append(true)
    .mode(0o600)
    .open(&path)?;
  file.write_all(line.as_bytes())?;
  file.sync_all()
}

/// A drill's history, oldest first. Lines that do not parse (a torn last line) are skipped; an
/// entry a newer drctl wrote is refused.
pub fn read(state_root: &Path, drill: &str) -> Result<Vec<HistoryEntry>, NewerFormat> {
  let path = history_path(state_root, drill);
  let text = std::fs::read_to_string(&path).unwrap_or_default();
  let mut entries = Vec::new();
  for line in text.lines() {
    if let Some(entry) = parse_entry(line.as_bytes(), &path.display())? {
      entries.push(entry);
    }
  }
  entries.sort_by_key(|entry| entry.started_at);
  Ok(entries)
}

/// One entry as written (a line, or an object in S3): `None` when it is not an entry.
fn parse_entry(
  bytes: &[u8],
  location: &dyn std::fmt::Display,
) -> Result<Option<HistoryEntry>, NewerFormat> {
  let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
    return Ok(None);
  };
  match format::read(format::Kind::History, &value) {
    Ok(_) => Ok(serde_json::from_value(value).ok()),
    Err(FormatIssue::Newer { found }) => Err(NewerFormat {
      kind: format::Kind::History,
      location: location.to_string(),
      found,
    }),
    Err(FormatIssue::Invalid(_)) => Ok(None),
  }
}

fn s3_key(s3: &S3State, entry: &HistoryEntry) -> String {
  s3.location.key(&format!(
    "drills/{}/history/{}-{}.json",
    entry.drill,
    entry.started_at.format("%Y%m%dT%H%M%S%.3fZ"),
    if !entry.run_id.is_empty() {
      &entry.run_id
    } else if entry.skipped() {
      DrillResult::Skipped.as_str()
    } else {
      "dry-run"
    }
  ))
}

/// Push an entry to an `s3://` state.
pub async fn push(s3: &S3State, entry: &HistoryEntry) -> Result<(), String> {
  let bytes = serde_json::to_vec(&format::stamped(format::Kind::History, entry))
    .map_err(|err| err.to_string())?;
  match s3
    .store
    .put_if_absent(&s3.location.bucket, &s3_key(s3, entry), bytes)
    .await
  {
    Ok(_) | Err(crate::cloud::aws::StoreError::Conflict) => Ok(()),
    Err(crate::cloud::aws::StoreError::Cloud(err)) => Err(err.to_string()),
  }
}

/// Bring into the local history the entries other replicas pushed to the bucket. Every entry
/// is read before any is added: one a newer drctl wrote stops the pull with nothing added.
pub async fn pull(s3: &S3State, state_root: &Path, drill: &str) -> Result<usize, HistoryError> {
  let remote = |err: crate::cloud::CloudError| HistoryError::Io(err.to_string());
  let prefix = s3.location.key(&format!("drills/{drill}/history/"));
  let keys = s3
    .store
    .list(&s3.location.bucket, &prefix)
    .await
    .map_err(remote)?;
  let known = read(state_root, drill).map_err(HistoryError::NewerFormat)?;
  let mut missing: Vec<HistoryEntry> = Vec::new();
  for key in keys {
    let Some((bytes, _)) = s3
      .store
      .get(&s3.location.bucket, &key)
      .await
      .map_err(remote)?
    else {
      continue;
    };
    let url = format!("s3://{}/{key}", s3.location.bucket);
    let Some(entry) = parse_entry(&bytes, &url).map_err(HistoryError::NewerFormat)? else {
      continue;
    };
    let present = known
      .iter()
      .chain(&missing)
      .any(|k| k.run_id == entry.run_id && k.started_at == entry.started_at);
    if !present {
      missing.push(entry);
    }
  }
  for entry in &missing {
    append(state_root, entry).map_err(|err| HistoryError::Io(err.to_string()))?;
  }
  Ok(missing.len())
}

/// How a run compares with the ones before it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trend {
  /// RTO achieved minus the previous run's, in seconds.
  pub rto_delta_previous_seconds: Option<f64>,
  /// RTO achieved minus the median of the (up to) 5 runs before it, in seconds.
  pub rto_delta_median5_seconds: Option<f64>,
}

/// The trend of `entries[index]` against the runs before it.
pub fn trend(entries: &[HistoryEntry], index: usize) -> Trend {
  let Some(current) = entries
    .get(index)
    .and_then(|entry| entry.rto_achieved_seconds)
  else {
    return Trend::default();
  };
  let before: Vec<f64> = entries[..index]
    .iter()
    .filter_map(|entry| entry.rto_achieved_seconds)
    .collect();
  let previous = before.last().map(|previous| current - previous);
  let mut last5: Vec<f64> = before.iter().rev().take(5).copied().collect();
  last5.sort_by(f64::total_cmp);
  let median = match last5.len() {
    0 => None,
    n if n % 2 == 1 => Some(last5[n / 2]),
    n => Some((last5[n / 2 - 1] + last5[n / 2]) / 2.0),
  };
  Trend {
    rto_delta_previous_seconds: previous,
    rto_delta_median5_seconds: median.map(|median| current - median),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn entry(rto: f64, minute: u32) -> HistoryEntry {
    let at = DateTime::parse_from_rfc3339(&format!("2026-01-01T00:{minute:02}:00Z"))
      .unwrap()
      .with_timezone(&Utc);
    HistoryEntry {
      drill: "d".into(),
      run_id: format!("r{minute}"),
      trigger: "manual".into(),
      due: None,
      started_at: at,
      finished_at: at,
      duration_seconds: 1.0,
      result: DrillResult::Passed,
      run_status: DrillRun::Ran(RunStatus::Succeeded),
      mode: "live".into(),
      backend: "sim".into(),
      rto_target_seconds: Some(900.0),
      rto_achieved_seconds: Some(rto),
      rpo_target_seconds: None,
      rpo_achieved_seconds: None,
      reasons: vec![],
      host: "h".into(),
    }
  }

  #[test]
  fn appends_reads_and_trends() {
    let dir = tempfile::tempdir().unwrap();
    for (minute, rto) in [100.0, 300.0, 200.0, 400.0, 500.0, 600.0, 250.0]
      .into_iter()
      .enumerate()
    {
      append(dir.path(), &entry(rto, minute as u32)).unwrap();
    }
    let entries = read(dir.path(), "d").unwrap();
    assert_eq!(entries.len(), 7);
    let last = trend(&entries, 6);
    assert_eq!(last.rto_delta_previous_seconds, Some(-350.0));
    // The 5 before: 300, 200, 400, 500, 600 → median 400.
    assert_eq!(last.rto_delta_median5_seconds, Some(-150.0));
    assert_eq!(trend(&entries, 0), Trend::default());
  }

  #[test]
  fn an_entry_reads_back_exactly_as_written() {
    // Shortest round-trip text that a fast float parser reads back one ULP off: the PagerDuty
    // payload carries the entry as written, so history must read the same number.
    let dir = tempfile::tempdir().unwrap();
    let rto = 364.75772915699997;
    append(dir.path(), &entry(rto, 0)).unwrap();
    let entries = read(dir.path(), "d").unwrap();
    assert_eq!(entries[0].rto_achieved_seconds, Some(rto));
    let text = std::fs::read_to_string(history_path(dir.path(), "d")).unwrap();
    let value: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(value["rto_achieved_seconds"].as_f64(), Some(rto));
  }
}
