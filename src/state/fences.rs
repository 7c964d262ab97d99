//! Region fences that could not be applied, and their application later.
//!
//! A failover fences the region it leaves (`fence: true` steps: scale its services to zero,
//! retire its old writer). With that region down, a fence step fails; the engine then journals
//! a `fence_pending` record in its run's journal, right after the step's last `step_failed`.
//! Those records are the source of truth for what was left pending: nothing else has to be
//! written for a fence to be pending, so a crash cannot lose one.
//!
//! A pending fence is applied later (by a later run, the scheduler or `drctl fence apply`) once
//! its region answers. That is recorded as one JSON line in `<state>/fences/applied.jsonl`
//! (fsynced, 0600) and, with an `s3://` state, as the object `fences/applied/<run>/<step>.json`
//! written with `If-None-Match: *`, so every operator and scheduler replica sees it and none
//! overwrites another's record. A fence is pending while its `fence_pending` record has no
//! applied line with its id.
//!
//! A fence that can never apply (its region was decommissioned) is *dropped* by a person
//! (`drctl fence drop ID --reason TEXT`): an applied record with `dropped` set to the reason,
//! kept and shared like any other, so the fence is no longer pending and stays listed as
//! dropped, with who dropped it, when and why.

use std::{
  collections::BTreeSet,
  io::Write,
  os::unix::fs::OpenOptionsExt,
  path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{journal::Event, S3State, Store};

/// A fence step that could not be applied, as its run journalled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingFence {
  /// `<run-id>/<step>`: unique, and what `drctl fence apply ID` takes.
  pub id: String,
  /// The run that could not apply it.
  pub run_id: String,
  pub runbook: String,
  /// The backend that run used (`sim`, `aws`, `sandbox`): the fence is applied on the same.
  pub backend: String,
  pub step: String,
  pub action: String,
  pub region: String,
  /// The step's bound arguments, redacted as the journal holds them.
  pub args: serde_json::Map<String, serde_json::Value>,
  pub recorded_at: DateTime<Utc>,
}

/// A pending fence that was applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedFence {
  /// The [`PendingFence::id`].
  pub id: String,
  pub applied_at: DateTime<Utc>,
  /// Who applied it: `drctl fence apply`, `scheduler`, or `run <run-id>`.
  pub by: String,
  pub host: String,
  /// What the action reported ("`app-db` retired (...)").
  pub summary: String,
  /// Set when the fence was dropped instead (`drctl fence drop`): the reason given. A dropped
  /// fence was never applied; `by` names who dropped it.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub dropped: Option<String>,
}

fn applied_path(root: &Path) -> PathBuf {
  root.join("fences").join("applied.jsonl")
}

/// Every fence any run journalled as pending, oldest run first (applied ones included).
/// Journals that cannot be read are skipped here; `drctl runs` reports them.
pub fn recorded(store: &Store) -> Vec<PendingFence> {
  let mut fences = Vec::new();
  for run_id in store.run_ids() {
    let Ok(records) = store.read_journal(&run_id) else {
      continue;
    };
    let (mut runbook, mut backend) = (String::new(), String::new());
    for record in records {
      match record.event {
        Event::RunStarted {
          runbook: name,
          backend: used,
          ..
        } => (runbook, backend) = (name, used),
        Event::FencePending {
          step,
          action,
          region,
          args,
        } => fences.push(PendingFence {
          id: format!("{run_id}/{step}"),
          run_id: run_id.clone(),
          runbook: runbook.clone(),
          backend: backend.clone(),
          step,
          action,
          region,
          args,
          recorded_at: record.ts,
        }),
        _ => {}
      }
    }
  }
  fences
}

/// Every applied record in the local state. Lines that do not parse (a torn last line) are
/// skipped.
pub fn applied(root: &Path) -> Vec<AppliedFence> {
  std::fs::read_to_string(applied_path(root))
    .unwrap_or_default()
    .lines()
    .filter_map(parse_applied)
    .collect()
}

/// An applied record, unless it does not parse or a newer drctl wrote it: such a fence counts
/// as still pending (failback stays refused; applying a fence again observes it done first).
fn parse_applied(text: &str) -> Option<AppliedFence> {
  let value: serde_json::Value = serde_json::from_str(text).ok()?;
  crate::format::read(crate::format::Kind::AppliedFence, &value).ok()?;
  serde_json::from_value(value).ok()
}

/// An applied record as it is written: with its format.
fn applied_json(fence: &AppliedFence) -> serde_json::Result<String> {
  serde_json::to_string(&crate::format::stamped(
    crate::format::Kind::AppliedFence,
    fence,
  ))
}

/// The fences still pending: journalled as pending, never applied.
pub fn pending(store: &Store) -> Vec<PendingFence> {
  let done: BTreeSet<String> = applied(store.root())
    .into_iter()
    .map(|fence| fence.id)
    .collect();
  recorded(store)
    .into_iter()
    .filter(|fence| !done.contains(&fence.id))
    .collect()
}

/// The fences that were dropped rather than applied, each with its drop record, oldest run
/// first.
pub fn dropped(store: &Store) -> Vec<(PendingFence, AppliedFence)> {
  let drops: Vec<AppliedFence> = applied(store.root())
    .into_iter()
    .filter(|record| record.dropped.is_some())
    .collect();
  recorded(store)
    .into_iter()
    .filter_map(|fence| {
      let record = drops.iter().find(|record| record.id == fence.id)?.clone();
      Some((fence, record))
    })
    .collect()
}

/// Record a fence as applied (appended, flushed and fsynced).
pub fn mark_applied(root: &Path, fence: &AppliedFence) -> std::io::Result<()> {
  let path = applied_path(root);
  if let Some(dir) = path.parent() {
    super::store::create_private_dir(dir)?;
  }
  let mut line = applied_json(fence).map_err(std::io::Error::other)?;
  line.push('\n');
  let mut file = std::fs::OpenOptions::new()
    .create(true)
    .append(true)
    .mode(0o600)
    .open(&path)?;
  file.write_all(line.as_bytes())?;
  file.sync_all()
}

fn s3_key(s3: &S3State, id: &str) -> String {
  s3.location.key(&format!("fences/applied/{id}.json"))
}

/// Push an applied record to an `s3://` state (create-only: a record already there stands).
pub async fn push_applied(s3: &S3State, fence: &AppliedFence) -> Result<(), String> {
  let bytes = applied_json(fence)
    .map_err(|err| err.to_string())?
    .into_bytes();
  match s3
    .store
    .put_if_absent(&s3.location.bucket, &s3_key(s3, &fence.id), bytes)
    .await
  {
    Ok(_) | Err(crate::cloud::aws::StoreError::Conflict) => Ok(()),
    Err(crate::cloud::aws::StoreError::Cloud(err)) => Err(err.to_string()),
  }
}

/// Bring into the local state the applied records other operators pushed to the bucket.
pub async fn pull_applied(s3: &S3State, root: &Path) -> Result<usize, String> {
  let prefix = s3.location.key("fences/applied/");
  let keys = s3
    .store
    .list(&s3.location.bucket, &prefix)
    .await
    .map_err(|err| err.to_string())?;
  let mut known: BTreeSet<String> = applied(root).into_iter().map(|fence| fence.id).collect();
  let mut added = 0;
  for key in keys {
    let Some((bytes, _)) = s3
      .store
      .get(&s3.location.bucket, &key)
      .await
      .map_err(|err| err.to_string())?
    else {
      continue;
    };
    let Some(fence) = std::str::from_utf8(&bytes).ok().and_then(parse_applied) else {
      continue;
    };
    if known.insert(fence.id.clone()) {
      mark_applied(root, &fence).map_err(|err| err.to_string())?;
      added += 1;
    }
  }
  Ok(added)
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::state::{Journal, RunMode};

  fn started(run_id: &str) -> Event {
    Event::RunStarted {
      run_id: run_id.into(),
      runbook: "regional-failover".into(),
      runbook_path: "runbooks/regional-failover.yaml".into(),
      runbook_digest: "0".into(),
      params: Default::default(),
      mode: RunMode::Live,
      backend: "sim".into(),
      time_scale: 40.0,
      incident_start: Utc::now(),
      host: "h".into(),
      user: "u".into(),
      caller: None,
      pid: 1,
      rto_ms: None,
      rpo_ms: None,
      accept_data_loss: false,
      force: false,
      steps: Vec::new(),
    }
  }

  /// A `fence_pending` record makes a fence pending; an applied line with its id (from this
  /// process or pulled from the bucket) ends it.
  #[test]
  fn a_journalled_fence_is_pending_until_marked_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let run_id = "20261201T000000-abcd";
    super::super::store::create_private_dir(&store.run_dir(run_id)).unwrap();
    let mut journal = Journal::create(&store.journal_path(run_id)).unwrap();
    journal.append(started(run_id)).unwrap();
    let args = serde_json::json!({"region": "us-east-1", "instance": "app-db"});
    journal
      .append(Event::FencePending {
        step: "fence-source-db".into(),
        action: "rds.retire_instance".into(),
        region: "us-east-1".into(),
        args: args.as_object().unwrap().clone(),
      })
      .unwrap();
    drop(journal);
    let pending = pending(&store);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, format!("{run_id}/fence-source-db"));
    assert_eq!(pending[0].backend, "sim");
    assert_eq!(pending[0].runbook, "regional-failover");
    mark_applied(
      dir.path(),
      &AppliedFence {
        id: pending[0].id.clone(),
        applied_at: Utc::now(),
        by: "drctl fence apply".into(),
        host: "h".into(),
        summary: "`app-db` retired".into(),
        dropped: None,
      },
    )
    .unwrap();
    assert!(super::pending(&store).is_empty());
    assert_eq!(recorded(&store).len(), 1);
    let line = std::fs::read_to_string(applied_path(dir.path())).unwrap();
    assert!(line.starts_with("{\"format\":1,"), "{line}");

    // An applied record a newer drctl wrote is not taken for applied: the fence stays pending
    // (failback stays refused) rather than being read as this drctl guesses.
    std::fs::write(
      applied_path(dir.path()),
      line.replacen("\"format\":1,", "\"format\":2,", 1),
    )
    .unwrap();
    assert_eq!(super::pending(&store).len(), 1);
  }
}
