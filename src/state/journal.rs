//! The run journal: one JSON object per line, one line per transition, each carrying a CRC-32 of
//! its own content, flushed and fsynced before the engine moves on.
//!
//! Invariants:
//! * A record is durable once [`Journal::append`] returns (or [`GroupCommit::append`], which
//!   shares fsyncs between a run's parallel steps); the engine never acts on a transition
//!   before its record is durable (an intent is journalled before the call it announces).
//! * A crash can leave at most the last line torn (no newline, or a checksum that does not
//!   match). Reading ignores such a last line, and reopening for append truncates it away.
//! * A bad line anywhere else is corruption: reading fails and names the line. It is never
//!   silently skipped, because a skipped `step_succeeded` would repeat an effect.
//! * A write or fsync that fails (disk full, I/O error) leaves the file ending at a good record:
//!   a failed write is cut back to where it began, a failed fsync back to the last record known
//!   durable (after a failed fsync the kernel may have dropped the pages it could not write, so
//!   nothing written since the last good fsync is trusted). The journal is then *broken*: it
//!   refuses every later record, so nothing can be journalled past the failure, and the run
//!   stops before any further mutating call (the engine closes its mutation fence). A resume
//!   once the disk is back continues from that good record.
//! * Creating a journal makes its directory entry durable too: every directory created on the
//!   way, and the file's own entry, are fsynced in their parents.

use std::{
  collections::BTreeMap,
  fs::{File, OpenOptions},
  io::{self, Read, Seek, SeekFrom, Write},
  os::unix::fs::OpenOptionsExt,
  path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
  control::IdentityVia,
  format::{self, FormatIssue, NewerFormat},
  mirror::MirrorSender,
  redact::Redactor,
  store::create_private_dir,
};

/// How a run acts on the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
  Live,
  DryRun,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
  Succeeded,
  /// Succeeded, but an objective (RTO or RPO) was missed.
  Breached,
  Failed,
  /// Stopped by SIGINT/SIGTERM; resumable.
  Interrupted,
  /// Stopped because another run took its lock or its lease expired (the `lock_lost` record):
  /// no mutating call after that; resumable once the other holder is done. Never written in
  /// a `run_finished` record, only read off the journal.
  LockLost,
}

impl RunStatus {
  pub fn as_str(&self) -> &'static str {
    match self {
      RunStatus::Succeeded => "succeeded",
      RunStatus::Breached => "breached",
      RunStatus::Failed => "failed",
      RunStatus::Interrupted => "interrupted",
      RunStatus::LockLost => "lock_lost",
    }
  }

  /// The run stopped without an outcome and `drctl resume` continues it.
  pub fn is_resumable(&self) -> bool {
    matches!(self, RunStatus::Interrupted | RunStatus::LockLost)
  }
}

/// A step's error as journalled: the message plus what the AWS error said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
  pub message: String,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub code: Option<String>,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub request_id: Option<String>,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub http_status: Option<u16>,
  pub retryable: bool,
}

/// A step as the journal describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
  pub id: String,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub name: Option<String>,
  pub action: String,
  #[serde(default)]
  pub needs: Vec<String>,
  pub mutating: bool,
  pub recovery: bool,
  pub always: bool,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub budget_ms: Option<u64>,
  /// The step has an `approval:` gate (absent in older journals: false).
  #[serde(default, skip_serializing_if = "std::ops::Not::not")]
  pub approval: bool,
}

/// Which half of a step's life a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
  #[default]
  Run,
  Rollback,
}

impl Phase {
  fn is_run(&self) -> bool {
    *self == Phase::Run
  }
}

/// A transition of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
  RunStarted {
    run_id: String,
    runbook: String,
    runbook_path: String,
    /// CRC-32 of the runbook's text: resume refuses a runbook that changed under the run.
    runbook_digest: String,
    /// Parameter values, with secrets already redacted.
    params: BTreeMap<String, String>,
    mode: RunMode,
    backend: String,
    time_scale: f64,
    incident_start: DateTime<Utc>,
    host: String,
    /// The operating-system account that started the run.
    user: String,
    /// Who the backend's credentials act as (STS `GetCallerIdentity`; the simulator's stand-in).
    /// Absent in journals written before it was recorded, or when the backend could not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caller: Option<crate::cloud::CallerIdentity>,
    pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rto_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rpo_ms: Option<u64>,
    /// Options that change behaviour and must survive a resume.
    #[serde(default)]
    accept_data_loss: bool,
    /// `--force`: flip DNS even to a target whose health check is unhealthy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    force: bool,
    /// The step graph, so reports need not re-read the runbook.
    #[serde(default)]
    steps: Vec<StepInfo>,
  },
  RunResumed {
    host: String,
    pid: u32,
    /// The operating-system account that resumed the run (absent in older journals).
    #[serde(default)]
    user: String,
    /// Who the credentials of the resuming process act as, when the backend could say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    caller: Option<crate::cloud::CallerIdentity>,
  },
  StepStarted {
    step: String,
    attempt: u32,
    #[serde(default, skip_serializing_if = "Phase::is_run")]
    phase: Phase,
  },
  /// Written before a mutating call. `observation` is what `observe` saw (current state, data
  /// loss measured before the change), kept because the change may erase it.
  StepIntent {
    step: String,
    attempt: u32,
    #[serde(default, skip_serializing_if = "Phase::is_run")]
    phase: Phase,
    change: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_loss_ms: Option<u64>,
    /// Set instead of `data_loss_ms` when the data loss could not be measured: the basis the
    /// report gives ("replication stopped at T; last measured lag L"). Absent in older journals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_loss_unknown: Option<String>,
  },
  /// Written (fsynced) after the intent, immediately before a request whose delivery cannot be
  /// observed afterwards (a notification) leaves the process. An intent without this record
  /// means the request never went out; with it and no outcome after it, the request may have
  /// been delivered and its answer lost — an at-most-once effect is then not sent again.
  StepDispatched {
    step: String,
    #[serde(default, skip_serializing_if = "Phase::is_run")]
    phase: Phase,
    /// What went out, and where (host only: webhook URLs carry secrets).
    what: String,
  },
  StepSucceeded {
    step: String,
    attempt: u32,
    #[serde(default, skip_serializing_if = "Phase::is_run")]
    phase: Phase,
    /// Whether the step changed the world (false: the effect was already in place).
    changed: bool,
    #[serde(default)]
    outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_loss_ms: Option<u64>,
    summary: String,
    /// As in `step_intent`: the basis of a data loss that could not be measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data_loss_unknown: Option<String>,
  },
  StepFailed {
    step: String,
    attempt: u32,
    #[serde(default, skip_serializing_if = "Phase::is_run")]
    phase: Phase,
    error: StepError,
    /// True when the engine will try again after `backoff_ms`.
    will_retry: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backoff_ms: Option<u64>,
  },
  StepSkipped {
    step: String,
    reason: String,
  },
  /// Written right after a command (`exec.command`) started as the leader of its own process
  /// group. A drctl that is SIGKILLed cannot kill the group: `status` reports the survivors and
  /// `resume` kills them. `leader_start` is the leader's start time (clock ticks after boot,
  /// `/proc/PID/stat` field 22), so a reused pgid is not mistaken for the group.
  ProcessStarted {
    step: String,
    #[serde(default, skip_serializing_if = "Phase::is_run")]
    phase: Phase,
    pgid: u32,
    leader_start: u64,
  },
  RunInterrupted {
    signal: String,
  },
  /// The run's lock was taken or broken by someone else, or its lease expired unrenewed: the
  /// run stopped before any further mutating call (always-steps included). Resumable.
  LockLost {
    reason: String,
    /// When the loss was detected (the fence closed); no mutating call left after it.
    detected_at: DateTime<Utc>,
  },
  RunFinished {
    status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rto_achieved_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rpo_achieved_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_step: Option<String>,
  },
  /// A region fence (a `fence: true` step) that could not be applied: it stays pending until
  /// a later run, the scheduler or `drctl fence apply` applies it (see `state::fences`).
  /// Written right after the step's last `step_failed`. `args` are the step's bound
  /// arguments, redacted like every record.
  FencePending {
    step: String,
    action: String,
    region: String,
    args: serde_json::Map<String, serde_json::Value>,
  },
  /// A step with `approval:` began waiting for an answer (see `state::control`). The wait is
  /// identified by this record's `seq`; it stays open until an `approval_granted`,
  /// `approval_denied` or `approval_expired` of the step, across interrupts, crashes and
  /// resumes (a resumed run waits again under the same record, its timeout counted from it).
  ApprovalRequested {
    step: String,
    /// The rendered prompt (redacted like every record).
    prompt: String,
    /// `approval.timeout`, when the step has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    /// `approval.distinct_from_starter`: the run's starter cannot approve it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    distinct_from_starter: bool,
  },
  /// A waiting step was approved; the step runs next.
  ApprovalGranted {
    step: String,
    /// Who: an operating-system account, a token's person, a proxy-asserted user.
    by: String,
    via: IdentityVia,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// When the answer was given (the record's `ts` is when the run took it up).
    at: DateTime<Utc>,
    /// The request file's nonce (absent for an answer typed on the run's terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
  },
  /// A waiting step was denied; the step fails and follows its `on_failure`.
  ApprovalDenied {
    step: String,
    by: String,
    via: IdentityVia,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
  },
  /// An approval that may not count (the two-person rule): the step keeps waiting.
  ApprovalRefused {
    step: String,
    by: String,
    via: IdentityVia,
    why: String,
    at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
  },
  /// Nobody answered within `approval.timeout`: the step fails and follows its `on_failure`.
  ApprovalExpired {
    step: String,
    timeout_ms: u64,
  },
  /// Someone asked the run to stop (`drctl cancel`): it stops as on a first interrupt.
  RunCancelRequested {
    by: String,
    via: IdentityVia,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: DateTime<Utc>,
    nonce: String,
  },
  /// A control request the run did not apply (its step no longer waits for it, it names no
  /// approval step, it could not be read): journalled so that it is never looked at again.
  ControlIgnored {
    nonce: String,
    why: String,
  },
  /// Every step is done, the run did not fail, and the runbook declares
  /// `objectives.recovered_when`: the run waits for it, for at most `within_ms` of backend time
  /// from this record. A resumed run continues this wait under this record, never starts a new
  /// one, and runs no step again.
  RecoveryWaitStarted {
    /// What is waited for, in words (``step `verify` passes``).
    condition: String,
    within_ms: u64,
  },
  /// The recovery condition held at `at`: the RTO is measured from the incident start to it.
  Recovered {
    at: DateTime<Utc>,
    /// How many times the condition was evaluated (across resumes: since the last one).
    checks: u32,
    /// What the passing evaluation saw (its action's summary).
    summary: String,
  },
  /// The bound of the wait passed at `by` without the condition holding: not recovered, the
  /// RTO breached.
  NotRecovered {
    by: DateTime<Utc>,
    checks: u32,
    /// Why the last evaluation did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
  },
}

/// One journal line: a sequence number, a wall-clock timestamp and the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
  pub seq: u64,
  pub ts: DateTime<Utc>,
  #[serde(flatten)]
  pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
  #[error("journal {path}: {source}")]
  Io {
    path: PathBuf,
    #[source]
    source: io::Error,
  },
  #[error("journal {path}:{line}: corrupt record ({reason}); refusing to guess what happened")]
  Corrupt {
    path: PathBuf,
    line: usize,
    reason: String,
  },
  #[error("journal {path}: empty (the run never started)")]
  Empty { path: PathBuf },
  /// Another process holds the journal open for writing (a live run of it).
  #[error("journal {path}: another process is writing it (a live run?)")]
  Busy { path: PathBuf },
  /// Redaction could not make a record safe to write (fail closed: nothing was written).
  #[error("journal {path}: {leak}; stopping the run")]
  Unredactable {
    path: PathBuf,
    #[source]
    leak: super::redact::Leak,
  },
  /// A record in a format newer than this drctl reads (see `state::format`): refused, never
  /// skipped nor cut away as torn.
  #[error(transparent)]
  NewerFormat(NewerFormat),
}

/// Encode a record of a journal in `format` as one line (without the newline): the record's
/// JSON with its `format`, and a `crc` field holding the CRC-32 of that JSON without it. Keys
/// are sorted (serde_json's default map), so re-encoding the parsed line reproduces the
/// checksummed text exactly.
fn encode(record: &Record, journal_format: u32) -> Result<String, serde_json::Error> {
  let serde_json::Value::Object(mut map) = serde_json::to_value(record)? else {
    // A struct with a flattened enum always serializes as an object.
    unreachable!("a journal record serializes as an object")
  };
  map.insert(format::FIELD.into(), journal_format.into());
  let text = serde_json::to_string(&map)?;
  let crc = crc32fast::hash(text.as_bytes());
  map.insert(
    "crc".into(),
    serde_json::Value::String(format!("{crc:08x}")),
  );
  serde_json::to_string(&map)
}

/// Why a line is not a record this drctl reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
  /// A record in a newer format (whatever its checksum: a newer drctl may checksum otherwise).
  Newer { found: u64 },
  /// Not a valid record (torn, if it is the last line; corrupt otherwise).
  Invalid(String),
}

impl From<String> for DecodeError {
  fn from(reason: String) -> DecodeError {
    DecodeError::Invalid(reason)
  }
}

impl From<&str> for DecodeError {
  fn from(reason: &str) -> DecodeError {
    DecodeError::Invalid(reason.to_string())
  }
}

/// Decode one line (without its newline): the record and its format.
pub(crate) fn decode(line: &str) -> Result<(Record, u32), DecodeError> {
  let mut value: serde_json::Value =
    serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
  let record_format = match format::read(format::Kind::Journal, &value) {
    Ok(record_format) => record_format,
    Err(FormatIssue::Newer { found }) => return Err(DecodeError::Newer { found }),
    Err(FormatIssue::Invalid(why)) => return Err(DecodeError::Invalid(why)),
  };
  let map = value.as_object_mut().ok_or("not a JSON object")?;
  let crc = map
    .remove("crc")
    .and_then(|crc| crc.as_str().map(str::to_string))
    .ok_or("no checksum")?;
  let text = serde_json::to_string(&value).map_err(|err| err.to_string())?;
  let actual = format!("{:08x}", crc32fast::hash(text.as_bytes()));
  if actual != crc {
    return Err(format!("checksum {crc} does not match content ({actual})").into());
  }
  let record = serde_json::from_value(value).map_err(|err| format!("unknown record: {err}"))?;
  Ok((record, record_format))
}

/// An open journal, positioned for appending.
#[derive(Debug)]
pub struct Journal {
  path: PathBuf,
  file: File,
  next_seq: u64,
  redactor: Redactor,
  /// Where each durable line is handed for mirroring (the `s3://` backend), if anywhere.
  mirror: Option<MirrorSender>,
  /// Lines written but not yet known durable (group commit), with their sequence numbers.
  unsynced: Vec<(u64, String)>,
  /// Bytes of whole records written (the file's good length).
  len: u64,
  /// Bytes of records known durable.
  durable_len: u64,
  /// Why the journal refuses records: a write or fsync failed (see the module docs).
  broken: Option<String>,
  /// The format its records are written in: the journal's own, kept for its whole life.
  format: u32,
}

impl Journal {
  /// Create a new journal; fails if one exists.
  pub fn create(path: &Path) -> Result<Journal, JournalError> {
    let io_err = |source| JournalError::Io {
      path: path.to_path_buf(),
      source,
    };
    if let Some(parent) = path.parent() {
      create_private_dir(parent).map_err(io_err)?;
    }
    let file = OpenOptions::new()
      .create_new(true)
      .append(true)
      .mode(0o600)
      .custom_flags(libc::O_NOFOLLOW)
      .open(path)
      .map_err(io_err)?;
    file.lock().map_err(io_err)?;
    sync_dir(path);
    Ok(Journal {
      path: path.to_path_buf(),
      file,
      next_seq: 1,
      redactor: Redactor::default(),
      mirror: None,
      unsynced: Vec::new(),
      len: 0,
      durable_len: 0,
      broken: None,
      format: format::Kind::Journal.current(),
    })
  }

  /// Open an existing journal to continue it: read every record, truncate a torn last line.
  pub fn resume(path: &Path) -> Result<(Journal, Vec<Record>), JournalError> {
    let Contents {
      records,
      valid_len,
      format,
    } = read_contents(path)?;
    let io_err = |source| JournalError::Io {
      path: path.to_path_buf(),
      source,
    };
    // Append mode: every write lands at the end of the file as it is then, never over a record
    // someone else appended after we read it. (The lock keeps a second writer out; this keeps
    // a mistake in that from destroying records.)
    let file = OpenOptions::new()
      .read(true)
      .append(true)
      .custom_flags(libc::O_NOFOLLOW)
      .open(path)
      .map_err(io_err)?;
    // Held for the journal's life (see `writer_absent`). A pull holds it for moments only, so
    // wait a little for one; a writer holds it for its life, so never wait for that.
    lock_for_writing(&file, path)?;
    file.set_len(valid_len).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    let next_seq = records.last().map_or(1, |record| record.seq + 1);
    Ok((
      Journal {
        path: path.to_path_buf(),
        file,
        next_seq,
        redactor: Redactor::default(),
        mirror: None,
        unsynced: Vec::new(),
        len: valid_len,
        durable_len: valid_len,
        broken: None,
        format,
      },
      records,
    ))
  }

  pub fn path(&self) -> &Path {
    &self.path
  }

  /// Scrub these secrets from every record written from now on.
  pub fn set_redactor(&mut self, redactor: Redactor) {
    self.redactor = redactor;
  }

  /// Hand every line appended from now on to `mirror` once it is durable locally.
  pub fn set_mirror(&mut self, mirror: MirrorSender) {
    self.mirror = Some(mirror);
  }

  /// Append an event; durable (fsynced) when this returns.
  pub fn append(&mut self, event: Event) -> Result<Record, JournalError> {
    let record = self.write(event)?;
    if let Err(source) = self.file.sync_data() {
      return Err(self.sync_failed(source));
    }
    self.mark_durable(record.seq);
    Ok(record)
  }

  /// Write an event without waiting for the disk, for group commit: the record is durable only
  /// once an fsync through [`Journal::sync_handle`] that started after this returned has
  /// finished, and [`Journal::mark_durable`] has been told so. Nobody may act on the record
  /// before then.
  pub fn write(&mut self, event: Event) -> Result<Record, JournalError> {
    if let Some(why) = &self.broken {
      return Err(JournalError::Io {
        path: self.path.clone(),
        source: io::Error::other(format!("not written: an earlier write failed ({why})")),
      });
    }
    let record = Record {
      seq: self.next_seq,
      ts: Utc::now(),
      event,
    };
    // Secrets are scrubbed from the event before it is checksummed and written, so no journal
    // line ever holds one, whoever built the event; a record that redaction cannot make safe
    // is not written at all (and the sequence number is not spent).
    let record =
      self
        .redactor
        .redact_record(record)
        .map_err(|leak| JournalError::Unredactable {
          path: self.path.clone(),
          leak,
        })?;
    let mut line = encode(&record, self.format).map_err(|err| JournalError::Io {
      path: self.path.clone(),
      source: io::Error::other(err),
    })?;
    line.push('\n');
    if let Err(source) = self.file.write_all(line.as_bytes()) {
      // Part of the line may be in the file: cut it away, so the journal ends at a good record.
      self.cut_back_to(self.len);
      self.broken = Some(source.to_string());
      return Err(JournalError::Io {
        path: self.path.clone(),
        source,
      });
    }
    self.len += line.len() as u64;
    self.next_seq += 1;
    self.unsynced.push((record.seq, line));
    Ok(record)
  }

  /// An fsync of the journal failed: nothing written since the last good fsync is trusted, so
  /// the file is cut back to the last durable record and the journal refuses records from now
  /// on. Returns the error to report.
  pub fn sync_failed(&mut self, source: io::Error) -> JournalError {
    self.cut_back_to(self.durable_len);
    self.len = self.durable_len;
    if let Some((first, _)) = self.unsynced.first() {
      self.next_seq = *first;
    }
    self.unsynced.clear();
    self.broken = Some(source.to_string());
    JournalError::Io {
      path: self.path.clone(),
      source,
    }
  }

  /// Why the journal refuses records, if it does (a write or fsync failed).
  pub fn broken(&self) -> Option<&str> {
    self.broken.as_deref()
  }

  /// Truncate the file to `len` (best effort: if even that fails, the torn tail is what a
  /// reader ignores and a resume truncates) and make the truncation durable.
  fn cut_back_to(&mut self, len: u64) {
    let cut = self
      .file
      .set_len(len)
      .and_then(|()| self.file.seek(SeekFrom::Start(len)).map(|_| ()))
      .and_then(|()| self.file.sync_all());
    if let Err(err) = cut {
      tracing::error!(
        "journal {}: cannot cut back a failed write: {err}",
        self.path.display()
      );
    }
  }

  /// The sequence number of the last record written (durable or not).
  pub fn written_seq(&self) -> u64 {
    self.next_seq - 1
  }

  /// A second handle on the journal file, to fsync it without holding the journal: while one
  /// task waits for the disk, others keep writing, and the next fsync covers them all.
  pub fn sync_handle(&self) -> Result<File, JournalError> {
    self.file.try_clone().map_err(|source| JournalError::Io {
      path: self.path.clone(),
      source,
    })
  }

  /// Every record up to `seq` is durable (an fsync that started after it was written has
  /// finished): hand their lines to the mirror. After the fsync: the local journal is the
  /// truth, the mirror only ever copies it. Sending never blocks (the uploader runs in the
  /// background).
  pub fn mark_durable(&mut self, seq: u64) {
    let done = self
      .unsynced
      .partition_point(|(line_seq, _)| *line_seq <= seq);
    for (line_seq, line) in self.unsynced.drain(..done) {
      self.durable_len += line.len() as u64;
      if let Some(mirror) = &self.mirror {
        mirror.send(line_seq, line);
      }
    }
  }
}

/// How long [`Journal::resume`] waits for the journal's `flock` (a pull holds it for moments).
const WRITER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Take the journal's exclusive `flock`, waiting at most [`WRITER_LOCK_WAIT`]: a journal still
/// locked after that has a live writer ([`JournalError::Busy`]), never a reason to hang.
fn lock_for_writing(file: &File, path: &Path) -> Result<(), JournalError> {
  let deadline = std::time::Instant::now() + WRITER_LOCK_WAIT;
  loop {
    match file.try_lock() {
      Ok(()) => return Ok(()),
      Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
        std::thread::sleep(std::time::Duration::from_millis(5));
      }
      Err(std::fs::TryLockError::WouldBlock) => {
        return Err(JournalError::Busy {
          path: path.to_path_buf(),
        })
      }
      Err(std::fs::TryLockError::Error(source)) => {
        return Err(JournalError::Io {
          path: path.to_path_buf(),
          source,
        })
      }
    }
  }
}

/// Proof that no process writes a journal, while it lives (see [`writer_absent`]).
#[derive(Debug)]
pub struct NoWriter {
  _file: Option<File>,
}

/// If no process is writing the journal at `path`, a guard (an exclusive `flock`) that keeps
/// a writer from opening it until dropped; `None` while a writer has it open (a [`Journal`]
/// holds that `flock` for its whole life). For appending records pulled from elsewhere: a
/// journal being written is its own truth and is never appended to behind its writer's back.
/// A journal that does not exist has no writer.
pub fn writer_absent(path: &Path) -> Result<Option<NoWriter>, JournalError> {
  let io_err = |source| JournalError::Io {
    path: path.to_path_buf(),
    source,
  };
  let file = match OpenOptions::new()
    .append(true)
    .custom_flags(libc::O_NOFOLLOW)
    .open(path)
  {
    Ok(file) => file,
    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Some(NoWriter { _file: None })),
    Err(err) => return Err(io_err(err)),
  };
  match file.try_lock() {
    Ok(()) => Ok(Some(NoWriter { _file: Some(file) })),
    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
    Err(std::fs::TryLockError::Error(err)) => Err(io_err(err)),
  }
}

/// Read every valid record of a journal (ignoring a torn last line).
pub fn read(path: &Path) -> Result<Vec<Record>, JournalError> {
  read_contents(path).map(|contents| contents.records)
}

/// Every valid record's sequence number and exact line (with its newline), as written: what
/// the `s3://` backend mirrors byte for byte.
pub fn read_lines(path: &Path) -> Result<Vec<(u64, String)>, JournalError> {
  let Contents {
    records, valid_len, ..
  } = read_contents(path)?;
  let io_err = |source| JournalError::Io {
    path: path.to_path_buf(),
    source,
  };
  let bytes = std::fs::read(path).map_err(io_err)?;
  let valid = bytes.get(..valid_len as usize).unwrap_or(&bytes);
  // Every line of the valid prefix decoded as UTF-8 already (a record was read from it).
  let text = String::from_utf8_lossy(valid);
  Ok(
    records
      .iter()
      .zip(text.split_inclusive('\n'))
      .map(|(record, line)| (record.seq, line.to_string()))
      .collect(),
  )
}

/// What reading a journal found.
struct Contents {
  records: Vec<Record>,
  /// The byte length of the valid prefix.
  valid_len: u64,
  /// The journal's format: the newest of its records'.
  format: u32,
}

/// Read a journal's valid records.
fn read_contents(path: &Path) -> Result<Contents, JournalError> {
  let io_err = |source| JournalError::Io {
    path: path.to_path_buf(),
    source,
  };
  let mut bytes = Vec::new();
  File::open(path)
    .and_then(|mut file| file.read_to_end(&mut bytes))
    .map_err(io_err)?;
  let mut records = Vec::new();
  let mut journal_format = format::FIRST;
  let mut offset = 0usize;
  let mut line_no = 0usize;
  while offset < bytes.len() {
    line_no += 1;
    let rest = &bytes[offset..];
    let (line, complete) = match rest.iter().position(|&byte| byte == b'\n') {
      Some(end) => (&rest[..end], true),
      None => (rest, false),
    };
    let next = offset + line.len() + usize::from(complete);
    let is_last = next >= bytes.len();
    let decoded = std::str::from_utf8(line)
      .map_err(|err| DecodeError::Invalid(err.to_string()))
      .and_then(decode);
    match decoded {
      Ok((record, record_format)) if complete => {
        journal_format = journal_format.max(record_format);
        records.push(record);
      }
      // A line without its newline is torn even if it parses: the fsync did not finish.
      Ok(_) => break,
      // Whole or not, first or last: a newer drctl wrote it, so this one cannot judge it.
      Err(DecodeError::Newer { found }) => {
        return Err(JournalError::NewerFormat(NewerFormat {
          kind: format::Kind::Journal,
          location: path.display().to_string(),
          found,
        }))
      }
      Err(_) if is_last => break,
      Err(DecodeError::Invalid(reason)) => {
        return Err(JournalError::Corrupt {
          path: path.to_path_buf(),
          line: line_no,
          reason,
        })
      }
    }
    offset = next;
  }
  if records.is_empty() {
    return Err(JournalError::Empty {
      path: path.to_path_buf(),
    });
  }
  Ok(Contents {
    records,
    valid_len: offset as u64,
    format: journal_format,
  })
}

/// Make a file's creation durable by syncing its directory (best effort).
pub(crate) fn sync_dir(path: &Path) {
  if let Some(dir) = path.parent() {
    if let Ok(handle) = File::open(dir) {
      let _ = handle.sync_all();
    }
  }
}

/// A journal written by many tasks at once (a run's parallel steps), sharing fsyncs: group
/// commit. A fleet of hundreds of steps starting at once would otherwise queue hundreds of
/// fsyncs, one after another, on the critical path.
///
/// Contract: a record is durable when [`GroupCommit::append`] (or
/// [`GroupCommit::append_blocking`]) returns it, exactly as with [`Journal::append`]; nobody may
/// act on a record before then. A write or fsync that fails breaks the journal (see the module
/// docs): that call and every later one, including those still waiting for an fsync that never
/// covered their record, return `Err`. [`GroupCommit::records`] holds every record written, in
/// journal order, whether or not its writer still waits for the disk.
///
/// Waiting is asynchronous on purpose. It used to block the thread (`block_in_place` around a
/// std mutex): every step waiting for the disk then held a thread, and tokio started another
/// worker to replace it, so the fleet benchmark's 720 steps ran on ~190 threads. Each thread got
/// its own malloc arena (up to 16 on 2 cores) that kept its freed memory: ~35 MB of the run's
/// 60 MB peak RSS. Now the two workers, plus one blocking thread for the fsync, serve every
/// writer.
pub struct GroupCommit {
  journal: std::sync::Mutex<Journal>,
  /// The highest sequence number known durable. Held by the one task that fsyncs on behalf of
  /// every record written before its fsync started. An async mutex: writers waiting for that
  /// fsync yield their worker thread instead of blocking it.
  durable: tokio::sync::Mutex<u64>,
  /// A second handle on the journal file, fsynced without holding `journal` (on a
  /// blocking-pool thread, hence shared).
  sync_file: std::sync::Arc<File>,
  /// Every record, in journal order.
  records: std::sync::Mutex<Vec<Record>>,
}

impl GroupCommit {
  /// Share `journal`, whose records so far (`records`) are all durable.
  pub fn new(journal: Journal, records: Vec<Record>) -> Result<GroupCommit, JournalError> {
    let sync_file = journal.sync_handle()?;
    Ok(GroupCommit {
      durable: tokio::sync::Mutex::new(journal.written_seq()),
      sync_file: std::sync::Arc::new(sync_file),
      journal: std::sync::Mutex::new(journal),
      records: std::sync::Mutex::new(records),
    })
  }

  /// Append an event; durable when this returns, its fsync shared with every writer waiting
  /// at the same time.
  pub async fn append(&self, event: Event) -> Result<Record, JournalError> {
    let record = self.write(event)?;
    self.durable(record.seq).await?;
    Ok(record)
  }

  /// [`GroupCommit::append`] for synchronous callers: fsyncs on its own rather than joining
  /// the group commit, blocking the thread. Only for rare records (a notification's
  /// dispatch), so it cannot multiply threads.
  pub fn append_blocking(&self, event: Event) -> Result<Record, JournalError> {
    let record = self.write(event)?;
    let sync = || self.sync_file.sync_data();
    let multi_thread = tokio::runtime::Handle::try_current()
      .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let synced = if multi_thread {
      tokio::task::block_in_place(sync)
    } else {
      sync()
    };
    if let Err(source) = synced {
      return Err(self.sync_failed(source));
    }
    self.journal().mark_durable(record.seq);
    Ok(record)
  }

  /// Every record written so far, in journal order (durable or still waiting for the disk).
  pub fn records(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
    self
      .records
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner())
  }

  fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
    self
      .journal
      .lock()
      .unwrap_or_else(|poisoned| poisoned.into_inner())
  }

  /// Write a record (not yet durable) and keep it in [`GroupCommit::records`]. Kept in write
  /// order, under the journal's lock.
  fn write(&self, event: Event) -> Result<Record, JournalError> {
    let mut journal = self.journal();
    let record = journal.write(event)?;
    self.records().push(record.clone());
    Ok(record)
  }

  /// An fsync failed: the journal cuts itself back to its last durable record.
  fn sync_failed(&self, source: io::Error) -> JournalError {
    self.journal().sync_failed(source)
  }

  /// Return once record `seq` is durable: either an fsync that started after it was written
  /// already finished, or this call fsyncs for it and every record written before.
  async fn durable(&self, seq: u64) -> Result<(), JournalError> {
    let mut durable = self.durable.lock().await;
    if *durable >= seq {
      return Ok(());
    }
    let upto = {
      let journal = self.journal();
      // An fsync failed while this record waited: it was cut away with everything unsynced.
      if let Some(why) = journal.broken() {
        return Err(JournalError::Io {
          path: journal.path().to_path_buf(),
          source: io::Error::other(format!("not durable: a journal fsync failed ({why})")),
        });
      }
      journal.written_seq()
    };
    // On the blocking pool: no runtime worker waits for the disk, and the group commit keeps it
    // to one fsync (one thread) at a time.
    let file = std::sync::Arc::clone(&self.sync_file);
    let synced = tokio::task::spawn_blocking(move || file.sync_data())
      .await
      .unwrap_or_else(|join| Err(io::Error::other(join)));
    if let Err(source) = synced {
      return Err(self.sync_failed(source));
    }
    *durable = upto;
    self.journal().mark_durable(upto);
    Ok(())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn started() -> Event {
    Event::StepStarted {
      step: "promote-db".into(),
      attempt: 1,
      phase: Phase::Run,
    }
  }

  #[test]
  fn secrets_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.set_redactor(Redactor::new([(
      "secrets.S".to_string(),
      "s3cr3t-\"quoted\"".to_string(),
    )]));
    journal
      .append(Event::StepSkipped {
        step: "x".into(),
        reason: "token s3cr3t-\"quoted\" leaked".into(),
      })
      .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
      read(&path).unwrap()[0].event
        == Event::StepSkipped {
          step: "x".into(),
          reason: "token *** leaked".into()
        }
    );
  }

  #[test]
  fn a_record_redaction_cannot_make_safe_is_not_written_and_the_journal_stays_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    let year = Utc::now().format("%Y").to_string();
    journal.set_redactor(Redactor::new([
      ("secrets.YEAR".to_string(), year.clone()),
      ("secrets.TOKEN".to_string(), "t0ken-value".to_string()),
    ]));
    let err = journal
      .append(Event::StepSkipped {
        step: "x".into(),
        reason: "t0ken-value".into(),
      })
      .unwrap_err();
    assert!(matches!(err, JournalError::Unredactable { .. }), "{err}");
    assert!(err.to_string().contains("secrets.YEAR"), "{err}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("t0ken-value"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    // The journal is still whole: the next record follows the last good one.
    journal.set_redactor(Redactor::default());
    journal.append(started()).unwrap();
    let records = read(&path).unwrap();
    assert_eq!(
      records.iter().map(|record| record.seq).collect::<Vec<_>>(),
      [1, 2]
    );
  }

  #[test]
  fn records_round_trip_with_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    journal
      .append(Event::StepSkipped {
        step: "x".into(),
        reason: "when was false".into(),
      })
      .unwrap();
    let records = read(&path).unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[1].seq, 2);
    assert_eq!(records[0].event, started());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.lines().all(|line| line.contains("\"crc\":")));
  }

  #[test]
  fn a_torn_last_line_is_ignored_and_truncated_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    drop(journal);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"{\"seq\":2,\"ts\":\"2026-").unwrap();
    drop(file);

    assert_eq!(read(&path).unwrap().len(), 1);
    let (mut journal, records) = Journal::resume(&path).unwrap();
    assert_eq!(records.len(), 1);
    let record = journal.append(started()).unwrap();
    assert_eq!(record.seq, 2);
    assert_eq!(read(&path).unwrap().len(), 2);
  }

  #[test]
  fn a_resumed_journal_appends_after_records_written_behind_its_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    drop(journal);
    let (mut resumed, _) = Journal::resume(&path).unwrap();
    // Another writer appends after the resume read the journal: the resumed journal's next
    // line must land after it, not over it.
    let mut other = Journal::create(&dir.path().join("other.jsonl")).unwrap();
    let line = encode(&other.append(started()).unwrap(), 1).unwrap() + "\n";
    OpenOptions::new()
      .append(true)
      .open(&path)
      .unwrap()
      .write_all(line.as_bytes())
      .unwrap();
    resumed.append(started()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains(&line), "{text}");
  }

  #[test]
  fn a_journal_being_written_is_not_appended_to_by_a_pull() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    assert!(
      writer_absent(&path).unwrap().is_some(),
      "no journal, no writer"
    );
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    assert!(
      writer_absent(&path).unwrap().is_none(),
      "its writer holds it"
    );
    drop(journal);
    let guard = writer_absent(&path).unwrap();
    assert!(guard.is_some());
    drop(guard);
    let (_resumed, records) = Journal::resume(&path).unwrap();
    assert_eq!(records.len(), 1);
    assert!(
      writer_absent(&path).unwrap().is_none(),
      "a resumed journal too"
    );
  }

  #[test]
  fn journals_are_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs/r/journal.jsonl");
    Journal::create(&path).unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
  }

  #[test]
  fn a_complete_last_line_without_newline_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    journal.append(started()).unwrap();
    drop(journal);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.trim_end_matches('\n')).unwrap();
    assert_eq!(read(&path).unwrap().len(), 1);
  }

  #[test]
  fn a_corrupt_middle_line_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    for _ in 0..3 {
      journal.append(started()).unwrap();
    }
    drop(journal);
    let text = std::fs::read_to_string(&path).unwrap();
    let tampered = text.replacen("promote-db", "promote-XX", 2);
    // Only the second line changed? replacen touched lines 1 and 2; restore line 1.
    let mut lines: Vec<&str> = tampered.lines().collect();
    let original: Vec<&str> = text.lines().collect();
    lines[0] = original[0];
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    match read(&path) {
      Err(JournalError::Corrupt { line, reason, .. }) => {
        assert_eq!(line, 2);
        assert!(reason.contains("checksum"), "{reason}");
      }
      other => panic!("expected corruption, got {other:?}"),
    }
  }

  #[test]
  fn an_empty_journal_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    std::fs::write(&path, "").unwrap();
    assert!(matches!(read(&path), Err(JournalError::Empty { .. })));
  }

  /// A journal's lines, each stamped with `found` as a newer drctl would write it.
  fn restamp(path: &Path, found: u64, lines: std::ops::RangeFrom<usize>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
      let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
      if lines.contains(&index) {
        let map = value.as_object_mut().unwrap();
        map.remove("crc");
        map.insert("format".into(), found.into());
        let crc = crc32fast::hash(serde_json::to_string(&map).unwrap().as_bytes());
        map.insert("crc".into(), format!("{crc:08x}").into());
      }
      out.push_str(&value.to_string());
      out.push('\n');
    }
    std::fs::write(path, out).unwrap();
  }

  #[test]
  fn every_record_carries_the_journals_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    journal.append(started()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    for line in text.lines() {
      let value: serde_json::Value = serde_json::from_str(line).unwrap();
      assert_eq!(value["format"], 1, "{line}");
    }
    assert_eq!(read(&path).unwrap().len(), 2);
  }

  #[test]
  fn a_newer_record_is_refused_wherever_it_is_and_never_cut_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    for _ in 0..3 {
      journal.append(started()).unwrap();
    }
    drop(journal);
    // The last line only: a reader that took it for a torn line would cut it away on resume.
    restamp(&path, 2, 2..);
    let before = std::fs::read(&path).unwrap();
    for err in [
      read(&path).unwrap_err(),
      Journal::resume(&path).unwrap_err(),
    ] {
      match err {
        JournalError::NewerFormat(newer) => assert_eq!(newer.found, 2),
        other => panic!("expected a newer format, got {other}"),
      }
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "the journal changed");
    // Every line, and with a format this drctl cannot even count to.
    restamp(&path, u64::MAX, 0..);
    assert!(matches!(read(&path), Err(JournalError::NewerFormat(_))));
  }

  #[test]
  fn a_record_with_a_format_that_is_no_number_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let mut journal = Journal::create(&path).unwrap();
    journal.append(started()).unwrap();
    journal.append(started()).unwrap();
    drop(journal);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"format\":1", "\"format\":\"x\"", 1)).unwrap();
    assert!(matches!(
      read(&path),
      Err(JournalError::Corrupt { line: 1, .. })
    ));
  }

  // --- Group commit ------------------------------------------------------------------------

  fn skipped(i: usize) -> Event {
    Event::StepSkipped {
      step: format!("s{i}"),
      reason: "test".into(),
    }
  }

  /// A journal with its first record, shared for group commit.
  fn group(path: &Path) -> std::sync::Arc<GroupCommit> {
    let mut journal = Journal::create(path).unwrap();
    let first = journal.append(started()).unwrap();
    std::sync::Arc::new(GroupCommit::new(journal, vec![first]).unwrap())
  }

  fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
      .worker_threads(2)
      .thread_name(name)
      .enable_all()
      .build()
      .unwrap()
  }

  /// Writers at once, some blocking: one gapless sequence, and the records kept are the
  /// file's, in its order.
  #[test]
  fn group_commit_keeps_every_writers_record_in_journal_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    let group = group(&path);
    let mut seqs = runtime("group-order").block_on(async {
      let mut tasks = tokio::task::JoinSet::new();
      for i in 0..200 {
        let group = group.clone();
        tasks.spawn(async move {
          let record = if i % 40 == 0 {
            group.append_blocking(skipped(i))
          } else {
            group.append(skipped(i)).await
          };
          record.unwrap().seq
        });
      }
      tasks.join_all().await
    });
    seqs.sort_unstable();
    assert_eq!(seqs, (2..=201).collect::<Vec<u64>>());
    let on_disk: Vec<u64> = read(&path).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(on_disk, (1..=201).collect::<Vec<u64>>());
    let kept: Vec<u64> = group.records().iter().map(|r| r.seq).collect();
    assert_eq!(kept, on_disk);
  }

  /// Hundreds of writers waiting for the disk at once share fsyncs without each holding a
  /// thread (see [`GroupCommit`]). The runtime's threads are told apart by their name.
  #[test]
  fn group_commit_writers_waiting_for_the_disk_do_not_hold_threads() {
    const NAME: &str = "group-fsyncs";
    let dir = tempfile::tempdir().unwrap();
    let group = group(&dir.path().join("journal.jsonl"));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
      let done = done.clone();
      std::thread::spawn(move || {
        let mut most = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
          let named = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|task| {
              std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == NAME)
            })
            .count();
          most = most.max(named);
          std::thread::sleep(std::time::Duration::from_millis(1));
        }
        most
      })
    };
    runtime(NAME).block_on(async {
      let mut tasks = tokio::task::JoinSet::new();
      for i in 0..600 {
        let group = group.clone();
        tasks.spawn(async move { group.append(skipped(i)).await.map(|_| ()) });
      }
      for appended in tasks.join_all().await {
        appended.unwrap();
      }
    });
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.join().unwrap();
    // Two workers, the blocking thread of the fsync in progress, and slack for one a worker
    // handed over.
    assert!(most <= 5, "{most} runtime threads");
  }
}
