//! The background uploader that mirrors a run's journal to S3 (the `s3://` backend).
//!
//! The journal hands each line to the mirror after its local fsync ([`MirrorSender`]); sending
//! never blocks. The uploader pushes lines in sequence order, one object per record, created
//! with `If-None-Match: *`. When the bucket cannot be reached it warns once on stderr, writes
//! `s3-unsynced.json` in the run directory, keeps the lines in memory and tries again at most
//! every [`RETRY_EVERY`]; the run goes on. Whatever is still missing at the end is pushed later
//! by `drctl state sync`.

use std::{collections::VecDeque, time::Duration};

use tokio::{
  sync::{mpsc, oneshot},
  task::JoinHandle,
  time::Instant,
};

use super::{
  s3::{self, S3State, SyncConflict},
  store::Store,
};

/// How long the uploader waits before trying an unreachable bucket again.
pub const RETRY_EVERY: Duration = Duration::from_secs(15);

enum Message {
  Line(u64, String),
  Flush(oneshot::Sender<MirrorReport>),
}

/// The journal's end of the mirror.
#[derive(Debug, Clone)]
pub struct MirrorSender {
  tx: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match self {
      Message::Line(seq, _) => write!(f, "Line({seq})"),
      Message::Flush(_) => write!(f, "Flush"),
    }
  }
}

impl MirrorSender {
  pub(crate) fn send(&self, seq: u64, line: String) {
    // The uploader has gone only if the run is ending; the local journal holds the line.
    let _ = self.tx.send(Message::Line(seq, line));
  }
}

/// Where the mirror stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorReport {
  /// The highest sequence number known to be in S3 (every record up to it is).
  pub synced_through: u64,
  /// Records not (yet) in S3, in order.
  pub unsynced: Vec<u64>,
  /// Why they are not.
  pub error: Option<String>,
  pub conflict: Option<SyncConflict>,
}

/// A running uploader.
#[derive(Debug)]
pub struct JournalMirror {
  tx: mpsc::UnboundedSender<Message>,
  task: JoinHandle<()>,
}

struct Uploader {
  state: S3State,
  store: Store,
  run_id: String,
  pending: VecDeque<(u64, String)>,
  synced_through: u64,
  /// Set while the bucket is unreachable: when to try again.
  retry_at: Option<Instant>,
  error: Option<String>,
  conflict: Option<SyncConflict>,
  warned: bool,
}

impl JournalMirror {
  /// Start mirroring `run_id`; `existing` are the lines already in the local journal (a
  /// resume), pushed first (those already in S3 are verified, not rewritten).
  pub fn start(
    state: S3State,
    store: Store,
    run_id: &str,
    existing: Vec<(u64, String)>,
  ) -> JournalMirror {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut uploader = Uploader {
      state,
      store,
      run_id: run_id.to_string(),
      pending: existing.into(),
      synced_through: 0,
      retry_at: None,
      error: None,
      conflict: None,
      warned: false,
    };
    let task = tokio::spawn(async move {
      uploader.drain(false).await;
      while let Some(message) = rx.recv().await {
        match message {
          Message::Line(seq, line) => {
            uploader.pending.push_back((seq, line));
            uploader.drain(false).await;
          }
          Message::Flush(reply) => {
            uploader.drain(true).await;
            let _ = reply.send(uploader.report());
          }
        }
      }
    });
    JournalMirror { tx, task }
  }

  /// What the journal sends lines to.
  pub fn sender(&self) -> MirrorSender {
    MirrorSender {
      tx: self.tx.clone(),
    }
  }

  /// Push what is pending (trying an unreachable bucket once more), waiting at most `limit`,
  /// then stop. `None` when the limit passed first.
  pub async fn finish(self, limit: Duration) -> Option<MirrorReport> {
    let (reply, answer) = oneshot::channel();
    let report = if self.tx.send(Message::Flush(reply)).is_ok() {
      tokio::time::timeout(limit, answer)
        .await
        .ok()
        .and_then(Result::ok)
    } else {
      None
    };
    self.task.abort();
    let _ = self.task.await;
    report
  }
}

impl Uploader {
  /// Push pending lines in order until one fails. `force` ignores the retry delay.
  async fn drain(&mut self, force: bool) {
    if self.conflict.is_some() {
      return;
    }
    if let Some(at) = self.retry_at {
      if !force && Instant::now() < at {
        return;
      }
    }
    while let Some((seq, line)) = self.pending.front() {
      match s3::push_line(&self.state, &self.run_id, *seq, line).await {
        Ok(Ok(_)) => {
          self.synced_through = *seq;
          self.pending.pop_front();
          if self.retry_at.take().is_some() {
            eprintln!(
              "note: the state bucket {} is reachable again; mirroring run {} resumed",
              self.state.location, self.run_id
            );
          }
        }
        Ok(Err(conflict)) => {
          eprintln!(
            "warning: journal record {} of run {} differs in {} (local crc {}, S3 crc {}); \
             mirroring stopped, the local journal is kept — inspect with `drctl state sync {}`",
            conflict.seq,
            self.run_id,
            self.state.location,
            conflict.local_crc,
            conflict.remote_crc,
            self.run_id
          );
          s3::mark_unsynced(&self.store, &self.run_id, *seq, "conflict");
          self.conflict = Some(conflict);
          return;
        }
        Err(err) => {
          let reason = err.to_string();
          if !self.warned {
            self.warned = true;
            eprintln!(
              "warning: cannot write the journal to the state bucket {} ({reason}); the run goes \
               on with its local journal {}; records from {} on are not in S3 yet — push them \
               later with `drctl state sync {}`",
              self.state.location,
              self.store.journal_path(&self.run_id).display(),
              seq,
              self.run_id
            );
          }
          s3::mark_unsynced(&self.store, &self.run_id, *seq, &reason);
          self.error = Some(reason);
          self.retry_at = Some(Instant::now() + RETRY_EVERY);
          return;
        }
      }
    }
    if self.error.take().is_some() {
      s3::clear_unsynced(&self.store, &self.run_id);
    }
  }

  fn report(&self) -> MirrorReport {
    MirrorReport {
      synced_through: self.synced_through,
      unsynced: self.pending.iter().map(|(seq, _)| *seq).collect(),
      error: if self.pending.is_empty() {
        None
      } else {
        self.error.clone()
      },
      conflict: self.conflict.clone(),
    }
  }
}
