//! Run control from outside the run: approve or deny a step waiting for approval, or cancel the
//! run, from another process (`drctl approve|deny|cancel`) or a server.
//!
//! The run stays the only writer of its journal. A request is a write-once file,
//! `runs/<id>/requests/<nonce>.json`: created with `O_EXCL` (never overwritten), 0600, fsynced,
//! stamped with its format ([`Kind::ControlRequest`]). The running process polls the directory,
//! journals what it does with each request (`approval_granted`, `approval_denied`,
//! `approval_refused`, `run_cancel_requested`, or `control_ignored`) with the request's nonce, and
//! never looks at a nonce its journal already holds: a request is applied at most once, also
//! across crashes and resumes. A request written while the run was dead is taken up when it is
//! resumed, if its step still waits.
//!
//! An approval answers one wait: the `approval_requested` record open when it was submitted
//! (its `seq`, kept in the file). Once that wait was answered (granted, denied or expired), a
//! later request of the same step that was aimed at it is ignored, so a stale "approve" can
//! never release a step a person has since denied.
//!
//! With an `s3://` state the journal being written lives in the running host's local cache:
//! requests reach a run only when submitted on that host (with the same state setting).

use std::{
  collections::{BTreeMap, HashSet},
  io::{Read, Write},
  path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
  format::{self, Kind},
  journal::{self, Event, JournalError, Record},
  store::{self, Store},
};

/// How an identity was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityVia {
  /// The operating-system account of the process (`drctl approve`, the run's terminal).
  OsUser,
  /// A per-person token (a token file mapping tokens to names).
  Token,
  /// A trusted reverse proxy's header.
  ProxyHeader,
  /// One token shared by several people: not a person, never satisfies a two-person rule.
  SharedToken,
}

impl IdentityVia {
  pub fn as_str(self) -> &'static str {
    match self {
      IdentityVia::OsUser => "os_user",
      IdentityVia::Token => "token",
      IdentityVia::ProxyHeader => "proxy_header",
      IdentityVia::SharedToken => "shared_token",
    }
  }
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
  pub name: String,
  pub via: IdentityVia,
}

impl Identity {
  /// The operating-system account of this process.
  pub fn os_user() -> Identity {
    Identity {
      name: super::os_user(),
      via: IdentityVia::OsUser,
    }
  }
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ControlAction {
  Approve { step: String },
  Deny { step: String },
  Cancel,
}

/// A request to a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
  #[serde(flatten)]
  pub action: ControlAction,
  pub by: Identity,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub reason: Option<String>,
  pub at: DateTime<Utc>,
}

/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// The largest request file read; anything larger is not a request drctl wrote.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// Why a request was not submitted. Every kind but [`ControlError::Io`] is the user's to fix
/// (exit 2); `Io` is exit 1.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
  #[error("{0}")]
  UnknownRun(String),
  #[error("run {run_id} has no step `{step}`")]
  UnknownStep { run_id: String, step: String },
  #[error(
    "step `{step}` of run {run_id} is not waiting for approval{}",
    if *.has_approval { "" } else { " (it has no `approval:`)" }
  )]
  NotWaiting {
    run_id: String,
    step: String,
    has_approval: bool,
  },
  #[error("run {run_id} is {status}: there is nothing to {action}")]
  Stopped {
    run_id: String,
    status: &'static str,
    action: &'static str,
  },
  #[error("the reason must be one line of at most {MAX_REASON_CHARS} characters")]
  BadReason,
  #[error(transparent)]
  Journal(#[from] JournalError),
  #[error("{}: {source}", .path.display())]
  Io {
    path: PathBuf,
    #[source]
    source: std::io::Error,
  },
}

impl ControlError {
  /// The exit code: 2 for a request that does not apply, 1 when it could not be written.
  pub fn code(&self) -> i32 {
    match self {
      ControlError::Io { .. } => 1,
      ControlError::Journal(JournalError::Io { .. }) => 1,
      _ => 2,
    }
  }
}

/// The directory of a run's requests.
pub fn requests_dir(run_dir: &Path) -> PathBuf {
  run_dir.join("requests")
}

/// Check `request` against run `run_id`'s journal and write it for the run to pick up; the
/// request file's path. An approval or denial needs its step to be waiting for approval (or to
/// have been waiting when the run was interrupted or killed: it is honoured on resume); a cancel
/// needs a run that has not stopped. This is the one entry point for every front end.
pub fn submit(
  store: &Store,
  run_id: &str,
  request: &ControlRequest,
) -> Result<PathBuf, ControlError> {
  let run_id = store.find_run(run_id).map_err(ControlError::UnknownRun)?;
  if let Some(reason) = &request.reason {
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
      return Err(ControlError::BadReason);
    }
  }
  let records = store.read_journal(&run_id)?;
  let wait = check_applies(&run_id, &records, &request.action)?;
  write_request(&store.run_dir(&run_id), wait, request)
}

/// The wait an approval or denial answers (`None` for a cancel), or why the request does not
/// apply to the run as its journal stands.
fn check_applies(
  run_id: &str,
  records: &[Record],
  action: &ControlAction,
) -> Result<Option<u64>, ControlError> {
  let summary = store::summarize(run_id, records);
  let stopped = |action: &'static str| {
    summary.status.map(|status| ControlError::Stopped {
      run_id: run_id.to_string(),
      status: status.as_str(),
      action,
    })
  };
  let step = match action {
    ControlAction::Cancel => {
      return match stopped("cancel") {
        Some(err) => Err(err),
        None => Ok(None),
      };
    }
    ControlAction::Approve { step } | ControlAction::Deny { step } => step,
  };
  let Some(Event::RunStarted { steps, .. }) = records.first().map(|record| &record.event) else {
    return Err(ControlError::UnknownRun(format!(
      "run {run_id}: its journal does not start with run_started"
    )));
  };
  let Some(info) = steps.iter().find(|info| &info.id == step) else {
    return Err(ControlError::UnknownStep {
      run_id: run_id.to_string(),
      step: step.clone(),
    });
  };
  // An interrupted run waits again on resume; a finished one never will.
  if let Some(status) = summary.status.filter(|status| !status.is_resumable()) {
    return Err(ControlError::Stopped {
      run_id: run_id.to_string(),
      status: status.as_str(),
      action: "approve or deny",
    });
  }
  match open_waits(records).get(step) {
    Some(seq) => Ok(Some(*seq)),
    None => Err(ControlError::NotWaiting {
      run_id: run_id.to_string(),
      step: step.clone(),
      has_approval: info.approval,
    }),
  }
}

/// A request as it is written: its format, the wait it answers, the request.
#[derive(Debug, Serialize, Deserialize)]
struct RequestFile {
  /// The `seq` of the `approval_requested` record an approval or denial answers.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  wait: Option<u64>,
  #[serde(flatten)]
  request: ControlRequest,
}

/// Write a request file: a fresh name (never an existing file), 0600, durable when this returns.
fn write_request(
  run_dir: &Path,
  wait: Option<u64>,
  request: &ControlRequest,
) -> Result<PathBuf, ControlError> {
  let dir = requests_dir(run_dir);
  let io = |path: &Path| {
    let path = path.to_path_buf();
    move |source| ControlError::Io { path, source }
  };
  store::create_private_dir(&dir).map_err(io(&dir))?;
  let body = RequestFile {
    wait,
    request: request.clone(),
  };
  let text = serde_json::to_string(&format::stamped(Kind::ControlRequest, &body))
    .map_err(|err| io(&dir)(std::io::Error::other(err)))?;
  loop {
    // Sortable by submission time; unique by the random part and O_EXCL.
    let nonce = format!(
      "{:013}-{:016x}",
      request.at.timestamp_millis().max(0),
      fastrand::u64(..)
    );
    let path = dir.join(format!("{nonce}.json"));
    let mut file = match store::private_file().create_new(true).open(&path) {
      Ok(file) => file,
      Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
      Err(err) => return Err(io(&path)(err)),
    };
    file
      .write_all(text.as_bytes())
      .and_then(|()| file.sync_all())
      .map_err(io(&path))?;
    journal::sync_dir(&dir);
    return Ok(path);
  }
}

/// The open approval waits of a journal: step → `seq` of the `approval_requested` that opened
/// it. A run that finished has none.
pub fn open_waits(records: &[Record]) -> BTreeMap<String, u64> {
  let mut waits = BTreeMap::new();
  for record in records {
    match &record.event {
      Event::ApprovalRequested { step, .. } => {
        waits.entry(step.clone()).or_insert(record.seq);
      }
      Event::ApprovalGranted { step, .. }
      | Event::ApprovalDenied { step, .. }
      | Event::ApprovalExpired { step, .. } => {
        waits.remove(step);
      }
      Event::RunFinished { .. } => waits.clear(),
      _ => {}
    }
  }
  waits
}

/// Whether `step`'s wait opened by record `wait` has been answered (a later answer of the
/// step's exists): a request aimed at it is stale.
pub fn answered_since(records: &[Record], step: &str, wait: u64) -> bool {
  records.iter().any(|record| {
    record.seq >= wait
      && matches!(
        &record.event,
        Event::ApprovalGranted { step: id, .. }
          | Event::ApprovalDenied { step: id, .. }
          | Event::ApprovalExpired { step: id, .. } if id == step
      )
  })
}

/// Whether `step` holds an approval not yet used: granted, and the step has had no outcome
/// since (the run crashed or stopped between the answer and the step's end). A resumed run
/// then runs the step without asking again.
pub fn standing_grant(records: &[Record], step: &str) -> bool {
  let mut granted = false;
  for record in records {
    match &record.event {
      Event::ApprovalGranted { step: id, .. } if id == step => granted = true,
      Event::ApprovalRequested { step: id, .. }
      | Event::StepSucceeded {
        step: id,
        phase: super::Phase::Run,
        ..
      }
      | Event::StepFailed {
        step: id,
        phase: super::Phase::Run,
        ..
      } if id == step => granted = false,
      _ => {}
    }
  }
  granted
}

/// Every nonce a journal holds: requests already dealt with.
pub fn journalled_nonces(records: &[Record]) -> HashSet<String> {
  records
    .iter()
    .filter_map(|record| match &record.event {
      Event::ApprovalGranted { nonce, .. }
      | Event::ApprovalDenied { nonce, .. }
      | Event::ApprovalRefused { nonce, .. } => nonce.clone(),
      Event::RunCancelRequested { nonce, .. } | Event::ControlIgnored { nonce, .. } => {
        Some(nonce.clone())
      }
      _ => None,
    })
    .collect()
}

/// Whether `by` may approve a step of a run started by `starter`: with the two-person rule, a
/// shared token and the starter cannot. `Err` says why.
pub fn may_approve(
  by: &Identity,
  starter: &str,
  distinct_from_starter: bool,
) -> Result<(), String> {
  if !distinct_from_starter {
    return Ok(());
  }
  if by.via == IdentityVia::SharedToken {
    return Err(
      "a shared token is not a person, and this step needs someone other than the run's starter \
       (`distinct_from_starter`)"
        .into(),
    );
  }
  if by.name == starter {
    return Err(format!(
      "{} started the run, and this step needs someone else's approval \
       (`distinct_from_starter`)",
      by.name
    ));
  }
  Ok(())
}

/// A request file found in a run's requests directory.
#[derive(Debug, Clone)]
pub struct Received {
  /// The file's name without `.json`: the request's nonce.
  pub nonce: String,
  /// The request and the wait it answers, or why it cannot be read.
  pub content: Result<(ControlRequest, Option<u64>), String>,
}

/// The requests in `run_dir` whose nonce is not in `known`, oldest first.
pub fn read_new(run_dir: &Path, known: &HashSet<String>) -> Vec<Received> {
  let Ok(entries) = std::fs::read_dir(requests_dir(run_dir)) else {
    return Vec::new();
  };
  let mut found: Vec<(String, PathBuf)> = entries
    .flatten()
    .filter_map(|entry| {
      let name = entry.file_name().into_string().ok()?;
      let nonce = name.strip_suffix(".json")?.to_string();
      // Only names drctl writes: never a path, never a temporary file.
      (store::check_name(store::NameKind::RunId, &nonce).is_ok() && !known.contains(&nonce))
        .then(|| (nonce, entry.path()))
    })
    .collect();
  found.sort();
  found
    .into_iter()
    .map(|(nonce, path)| Received {
      nonce,
      content: read_request(&path),
    })
    .collect()
}

fn read_request(path: &Path) -> Result<(ControlRequest, Option<u64>), String> {
  use std::os::unix::fs::OpenOptionsExt;
  let mut text = String::new();
  std::fs::OpenOptions::new()
    .read(true)
    .custom_flags(libc::O_NOFOLLOW)
    .open(path)
    .and_then(|file| file.take(MAX_REQUEST_BYTES).read_to_string(&mut text))
    .map_err(|err| format!("cannot read it: {err}"))?;
  let value: serde_json::Value =
    serde_json::from_str(&text).map_err(|err| format!("not a request: {err}"))?;
  format::read(Kind::ControlRequest, &value).map_err(|issue| issue.to_string())?;
  let file: RequestFile =
    serde_json::from_value(value).map_err(|err| format!("not a request: {err}"))?;
  Ok((file.request, file.wait))
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::state::{journal::Journal, RunMode, StepInfo};

  fn started() -> Event {
    Event::RunStarted {
      run_id: "r1".into(),
      runbook: "rb".into(),
      runbook_path: "rb.yaml".into(),
      runbook_digest: "0".into(),
      params: Default::default(),
      mode: RunMode::Live,
      backend: "sim".into(),
      time_scale: 1.0,
      incident_start: Utc::now(),
      host: "h".into(),
      user: "alice".into(),
      caller: None,
      pid: 1,
      rto_ms: None,
      rpo_ms: None,
      accept_data_loss: false,
      force: false,
      steps: ["gate", "plain"]
        .into_iter()
        .map(|id| StepInfo {
          id: id.into(),
          name: None,
          action: "wait.sleep".into(),
          needs: Vec::new(),
          mutating: false,
          recovery: true,
          always: false,
          budget_ms: None,
          approval: id == "gate",
        })
        .collect(),
    }
  }

  fn request(action: ControlAction) -> ControlRequest {
    ControlRequest {
      action,
      by: Identity {
        name: "bob".into(),
        via: IdentityVia::OsUser,
      },
      reason: Some("looks right".into()),
      at: Utc::now(),
    }
  }

  fn approve() -> ControlRequest {
    request(ControlAction::Approve {
      step: "gate".into(),
    })
  }

  /// A store with run `r1` whose journal holds `events` after `run_started`.
  fn store_with(events: Vec<Event>) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut journal = Journal::create(&store.journal_path("r1")).unwrap();
    journal.append(started()).unwrap();
    for event in events {
      journal.append(event).unwrap();
    }
    (dir, store)
  }

  fn requested() -> Event {
    Event::ApprovalRequested {
      step: "gate".into(),
      prompt: "Go?".into(),
      timeout_ms: None,
      distinct_from_starter: false,
    }
  }

  #[test]
  fn a_request_is_a_private_write_once_file_the_run_can_read_back() {
    let (_dir, store) = store_with(vec![requested()]);
    let sent = approve();
    let path = submit(&store, "r1", &sent).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
      text.starts_with(r#"{"format":1,"wait":2,"action":"approve""#),
      "{text}"
    );
    let second = submit(&store, "r1", &sent).unwrap();
    assert_ne!(path, second, "every request gets its own file");
    let found = read_new(&store.run_dir("r1"), &HashSet::new());
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].content, Ok((sent.clone(), Some(2))));
    let known: HashSet<String> = [found[0].nonce.clone()].into();
    assert_eq!(read_new(&store.run_dir("r1"), &known).len(), 1);
  }

  #[test]
  fn requests_that_do_not_apply_are_refused_before_anything_is_written() {
    let (_dir, store) = store_with(vec![]);
    let err = submit(&store, "r1", &approve()).unwrap_err();
    assert_eq!(
      err.to_string(),
      "step `gate` of run r1 is not waiting for approval"
    );
    assert_eq!(err.code(), 2);
    let plain = request(ControlAction::Approve {
      step: "plain".into(),
    });
    let err = submit(&store, "r1", &plain).unwrap_err();
    assert_eq!(
      err.to_string(),
      "step `plain` of run r1 is not waiting for approval (it has no `approval:`)"
    );
    let err = submit(
      &store,
      "r1",
      &request(ControlAction::Deny {
        step: "nope".into(),
      }),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "run r1 has no step `nope`");
    let err = submit(&store, "r2", &approve()).unwrap_err();
    assert!(err.to_string().starts_with("no run `r2`"), "{err}");
    let mut long = approve();
    long.reason = Some("x".repeat(MAX_REASON_CHARS + 1));
    assert!(matches!(
      submit(&store, "r1", &long),
      Err(ControlError::BadReason)
    ));
    long.reason = Some("two\nlines".into());
    assert!(matches!(
      submit(&store, "r1", &long),
      Err(ControlError::BadReason)
    ));
    assert!(!requests_dir(&store.run_dir("r1")).exists());

    let answered = Event::ApprovalDenied {
      step: "gate".into(),
      by: "carol".into(),
      via: IdentityVia::OsUser,
      reason: None,
      at: Utc::now(),
      nonce: None,
    };
    let finished = Event::RunFinished {
      status: crate::state::RunStatus::Failed,
      rto_achieved_ms: None,
      rpo_achieved_ms: None,
      failed_step: Some("gate".into()),
    };
    let (_dir, store) = store_with(vec![requested(), answered, finished]);
    let err = submit(&store, "r1", &approve()).unwrap_err();
    assert_eq!(
      err.to_string(),
      "run r1 is failed: there is nothing to approve or deny"
    );
    let err = submit(&store, "r1", &request(ControlAction::Cancel)).unwrap_err();
    assert_eq!(
      err.to_string(),
      "run r1 is failed: there is nothing to cancel"
    );
  }

  #[test]
  fn an_interrupted_wait_still_takes_answers_for_its_resume() {
    let interrupted = Event::RunInterrupted {
      signal: "SIGINT".into(),
    };
    let (_dir, store) = store_with(vec![requested(), interrupted]);
    assert!(submit(&store, "r1", &approve()).is_ok());
  }

  #[test]
  fn a_wait_closes_with_its_answer_and_stale_answers_are_known() {
    let records: Vec<Record> = [
      requested(),
      Event::ApprovalExpired {
        step: "gate".into(),
        timeout_ms: 1,
      },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, event)| Record {
      seq: i as u64 + 2,
      ts: Utc::now(),
      event,
    })
    .collect();
    assert_eq!(open_waits(&records[..1]).get("gate"), Some(&2));
    assert!(open_waits(&records).is_empty());
    assert!(!answered_since(&records[..1], "gate", 2));
    assert!(answered_since(&records, "gate", 2));
  }

  #[test]
  fn the_two_person_rule_refuses_the_starter_and_shared_tokens() {
    let person = |name: &str, via| Identity {
      name: name.into(),
      via,
    };
    assert!(may_approve(&person("alice", IdentityVia::OsUser), "alice", false).is_ok());
    let err = may_approve(&person("alice", IdentityVia::Token), "alice", true).unwrap_err();
    assert!(err.starts_with("alice started the run"), "{err}");
    assert!(may_approve(&person("bob", IdentityVia::ProxyHeader), "alice", true).is_ok());
    let err = may_approve(&person("bob", IdentityVia::SharedToken), "alice", true).unwrap_err();
    assert!(err.starts_with("a shared token is not a person"), "{err}");
  }

  #[test]
  fn a_newer_or_garbled_request_is_reported_not_applied() {
    let (_dir, store) = store_with(vec![requested()]);
    let dir = requests_dir(&store.run_dir("r1"));
    store::create_private_dir(&dir).unwrap();
    std::fs::write(dir.join("1-a.json"), r#"{"format":2,"action":"cancel"}"#).unwrap();
    std::fs::write(dir.join("2-b.json"), "{").unwrap();
    std::fs::write(dir.join("x.tmp"), "{}").unwrap();
    let found = read_new(&store.run_dir("r1"), &HashSet::new());
    assert_eq!(found.len(), 2);
    assert!(found[0].content.as_ref().unwrap_err().contains("newer"));
    assert!(found[1]
      .content
      .as_ref()
      .unwrap_err()
      .starts_with("not a request"));
  }
}
