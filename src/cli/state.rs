//! Where state lives (`--state DIR|s3://bucket/prefix`), and `drctl state sync`.
//!
//! With an `s3://` state the commands work on a local cache (`.drctl/s3/<bucket>/<prefix>/`,
//! relative to the working directory) laid out like a local state directory; the lock lives in
//! the bucket and journals are mirrored there. Reading commands first pull into the cache what
//! other operators wrote.

use std::{path::PathBuf, time::Duration};

use clap::Subcommand;

use super::{commands::Context, out, Error, Exit, Output};
use crate::{
  cloud::aws::{AwsSettings, StateStore},
  state::{
    journal::{self, JournalError},
    lock::LockStore,
    s3::{self, S3Location, S3State, SyncReport},
    FreezeStore, JournalMirror, Store,
  },
};

/// `drctl state ...`
#[derive(Debug, Subcommand)]
pub enum StateCommand {
  /// Push journal records missing in the s3:// state (all runs, or RUN_ID), verifying those
  /// already there.
  Sync { run_id: Option<String> },
}

/// The state backend a command runs with.
#[derive(Debug, Clone)]
pub enum StateBackend {
  /// A local directory: the store is the whole truth.
  Local,
  /// A bucket shared by operators; the store is its local cache.
  S3 {
    location: S3Location,
    /// How to reach the bucket (drctl.yaml `aws`, `--profile`, `--region`, the environment).
    settings: AwsSettings,
  },
}

/// How long a run waits at its end for the mirror to push what is pending.
const MIRROR_FLUSH_LIMIT: Duration = Duration::from_secs(15);

/// Resolve `--state` / drctl.yaml `state` into a local store and a backend.
pub(super) fn resolve(state: &str, settings: &AwsSettings) -> Result<(Store, StateBackend), Error> {
  if !state.starts_with("s3://") {
    return Ok((Store::new(state), StateBackend::Local));
  }
  let location = S3Location::parse(state).map_err(Error::Usage)?;
  let cache = location.cache_dir(&PathBuf::from(".drctl"));
  Ok((
    Store::new(cache),
    StateBackend::S3 {
      location,
      settings: settings.clone(),
    },
  ))
}

impl Context {
  /// The client of an `s3://` state (no request is sent yet).
  pub(super) async fn s3_state(&self) -> Option<S3State> {
    match &self.state {
      StateBackend::Local => None,
      StateBackend::S3 { location, settings } => Some(S3State {
        location: location.clone(),
        store: StateStore::connect_default(settings).await,
      }),
    }
  }

  /// Where this state keeps its explicit freeze.
  pub(super) fn freeze_store(&self, s3: Option<&S3State>) -> FreezeStore {
    match s3 {
      Some(s3) => FreezeStore::S3(s3.clone()),
      None => FreezeStore::local(self.store.root()),
    }
  }

  /// Where this state keeps its locks.
  pub(super) fn lock_store(&self, s3: Option<&S3State>) -> LockStore {
    match s3 {
      Some(s3) => LockStore::S3(s3.clone()),
      None => LockStore::Local(self.store.locks_dir()),
    }
  }

  /// Bring into the local cache the runs (and records) others pushed to the bucket. A bucket
  /// that does not answer is a warning: the cache still holds what this machine knows. A record
  /// a newer drctl wrote refuses the command (exit 2), with nothing pulled.
  pub(super) async fn pull_runs(&self, s3: Option<&S3State>) -> Result<(), Error> {
    let Some(s3) = s3 else { return Ok(()) };
    match s3::pull_runs(s3, &self.store).await {
      Ok(_) => {}
      Err(s3::SyncError::NewerFormat(newer)) => return Err(Error::Usage(newer.to_string())),
      Err(err) => eprintln!(
        "warning: cannot read runs from {} ({err}); showing the local cache {}",
        s3.location,
        self.store.root().display()
      ),
    }
    Ok(())
  }
}

/// Start mirroring a run's journal (an `s3://` state only), pushing the records it already has
/// (a resume) first.
pub(super) fn start_mirror(
  ctx: &Context,
  s3: Option<&S3State>,
  run_id: &str,
) -> Option<JournalMirror> {
  let s3 = s3?;
  let existing = journal::read_lines(&ctx.store.journal_path(run_id)).unwrap_or_default();
  Some(JournalMirror::start(
    s3.clone(),
    ctx.store.clone(),
    run_id,
    existing,
  ))
}

/// Let the mirror push what is pending, and say what is left unsynced.
pub(super) async fn finish_mirror(mirror: Option<JournalMirror>, location: &str, run_id: &str) {
  let Some(mirror) = mirror else { return };
  match mirror.finish(MIRROR_FLUSH_LIMIT).await {
    Some(report) if report.unsynced.is_empty() && report.conflict.is_none() => {}
    Some(report) => eprintln!(
      "warning: {} journal record(s) of run {run_id} are not in {location} (from seq {}){}; \
       the local journal is complete — push them with `drctl state sync {run_id}`",
      report.unsynced.len(),
      report
        .unsynced
        .first()
        .map_or_else(|| "?".to_string(), u64::to_string),
      report
        .error
        .map(|error| format!(": {error}"))
        .unwrap_or_default()
    ),
    None => eprintln!(
      "warning: the journal of run {run_id} may not be complete in {location} (the upload did \
       not finish in {}s); push it with `drctl state sync {run_id}`",
      MIRROR_FLUSH_LIMIT.as_secs()
    ),
  }
}

/// `drctl state sync [RUN_ID]`: exit 0 when everything is in sync, 1 on a conflict or error.
pub(super) async fn dispatch(ctx: &Context, command: StateCommand) -> Result<Exit, Error> {
  match command {
    StateCommand::Sync { run_id } => sync(ctx, run_id.as_deref()).await,
  }
}

async fn sync(ctx: &Context, run_id: Option<&str>) -> Result<Exit, Error> {
  let Some(s3) = ctx.s3_state().await else {
    return Err(Error::Usage(format!(
      "`drctl state sync` needs an s3:// state (--state s3://bucket/prefix); the state is the \
       local directory {}",
      ctx.store.root().display()
    )));
  };
  let run_ids = match run_id {
    Some(id) => vec![ctx.store.find_run(id).map_err(Error::Usage)?],
    None => ctx.store.run_ids(),
  };
  let mut reports = Vec::new();
  let mut failed = false;
  // A journal a newer drctl wrote is not pushed (nor anything of it checked): exit 2.
  let mut newer = false;
  for run_id in &run_ids {
    match s3::sync_run(&s3, &ctx.store, run_id).await {
      Ok(report) => {
        failed |= !report.in_sync();
        reports.push(Ok(report));
      }
      Err(err) => {
        failed = true;
        newer |= matches!(
          err,
          s3::SyncError::Journal(JournalError::NewerFormat(_)) | s3::SyncError::NewerFormat(_)
        );
        reports.push(Err((run_id.clone(), err.to_string())));
      }
    }
  }
  let released = release_finished_locks(ctx, &s3, &reports).await;
  match ctx.output {
    Output::Json => {
      let list: Vec<serde_json::Value> = reports
        .iter()
        .map(|report| match report {
          Ok(report) => report_json(report),
          Err((run_id, error)) => serde_json::json!({"run_id": run_id, "error": error}),
        })
        .collect();
      out(&format!(
        "{}\n",
        serde_json::json!({"state": s3.location.to_string(), "runs": list, "released_locks": released})
      ));
    }
    Output::Text => {
      let mut text = String::new();
      if reports.is_empty() {
        text.push_str(&format!("no runs in {}\n", ctx.store.runs_dir().display()));
      }
      for report in &reports {
        match report {
          Ok(report) => text.push_str(&report_text(report)),
          Err((run_id, error)) => eprintln!("error: run {run_id}: {error}"),
        }
      }
      for line in &released {
        text.push_str(line);
        text.push('\n');
      }
      out(&text);
    }
  }
  Ok(if newer {
    Exit::Usage
  } else if failed {
    Exit::Failed
  } else {
    Exit::Succeeded
  })
}

fn report_json(report: &SyncReport) -> serde_json::Value {
  serde_json::json!({
    "run_id": report.run_id,
    "pushed": report.pushed,
    "verified": report.verified,
    "conflicts": report.conflicts.iter().map(|conflict| serde_json::json!({
      "seq": conflict.seq, "local_crc": conflict.local_crc, "remote_crc": conflict.remote_crc,
    })).collect::<Vec<_>>(),
    "remote_only": report.remote_only,
  })
}

fn report_text(report: &SyncReport) -> String {
  let mut text = match (report.pushed.first(), report.pushed.last()) {
    (Some(first), Some(last)) => format!(
      "run {}: pushed {} record(s) (seq {first}..{last}), {} already in S3\n",
      report.run_id,
      report.pushed.len(),
      report.verified
    ),
    _ => format!(
      "run {}: in sync ({} record(s) verified)\n",
      report.run_id, report.verified
    ),
  };
  for conflict in &report.conflicts {
    text.push_str(&format!(
      "  CONFLICT seq {}: local crc {} but S3 has crc {}; records after it were not pushed\n",
      conflict.seq, conflict.local_crc, conflict.remote_crc
    ));
  }
  if !report.remote_only.is_empty() {
    text.push_str(&format!(
      "  S3 has {} record(s) beyond the local journal (seq {}..); another machine went on with \
       this run\n",
      report.remote_only.len(),
      report.remote_only[0]
    ));
  }
  text
}

/// A finished run whose lock release could not reach the bucket left its lock behind; once its
/// journal is in sync, release it (the holder is that very run, so nobody else is affected).
async fn release_finished_locks(
  ctx: &Context,
  s3: &S3State,
  reports: &[Result<SyncReport, (String, String)>],
) -> Vec<String> {
  let locks = LockStore::S3(s3.clone());
  let mut released = Vec::new();
  for report in reports.iter().flatten().filter(|report| report.in_sync()) {
    let Ok(records) = ctx.store.read_journal(&report.run_id) else {
      continue;
    };
    let summary = crate::state::store::summarize(&report.run_id, &records);
    let finished = summary.status.is_some_and(|status| !status.is_resumable());
    if !finished {
      continue;
    }
    let Ok(Some(holder)) = locks.held_by(&report.run_id).await else {
      continue;
    };
    // Forced: the holder's run is finished, so it no longer acts whether or not it is alive.
    if locks.unlock(&holder.group, true).await.is_ok() {
      released.push(format!(
        "released the lock of lock group `{}` left by finished run {} of `{}`",
        holder.group, report.run_id, summary.runbook
      ));
    }
  }
  released
}

/// A journal that cannot be read: exit 2 when a newer drctl wrote it, 1 otherwise.
pub(super) fn journal_error(err: JournalError) -> Error {
  match err {
    JournalError::NewerFormat(newer) => Error::Usage(newer.to_string()),
    other => Error::Failed(other.to_string()),
  }
}

/// A simulator world that cannot be read: exit 2 when a newer drctl wrote it, 1 otherwise.
pub(super) fn sim_error(err: crate::cloud::sim::SimError) -> Error {
  match err {
    crate::cloud::sim::SimError::NewerFormat(newer) => Error::Usage(newer.to_string()),
    other => Error::Failed(other.to_string()),
  }
}
