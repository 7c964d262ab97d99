//! Run state: the journal of every run, the lock that keeps two live runs of one lock group
//! apart, the freeze that holds back live drills, and the directory layout that holds them.
//!
//! Layout of a local state directory (default `.drctl/`):
//!
//! ```text
//! runs/<run-id>/journal.jsonl     the append-only journal (see `journal`)
//! runs/<run-id>/world.json        the simulator's world, when the run used `--sim`
//! runs/<run-id>/operations.jsonl  the simulator's operation log
//! runs/<run-id>/requests/*.json   approve/deny/cancel requests to the run (see `control`)
//! locks/<group>.lock              the lock of a lock group, naming the runbook and run holding it
//! freeze.json                     the explicit freeze of live drills (`drctl freeze`), if any
//! fences/applied.jsonl            region fences applied after their run (see `fences`)
//! ```
//!
//! Every journal record, lock, drill history entry and claim carries its format version; a drctl
//! refuses one newer than it reads, before writing anything (see `format`).
//!
//! With `--state s3://bucket/prefix` the same layout lives in the local cache
//! `<root>/s3/<bucket>/<prefix>/` (journals, the simulator's files), the lock lives in the
//! bucket, and every journal record is mirrored there (see `s3` and `mirror`).

pub use crate::format;
pub mod control;
pub mod fences;
pub mod freeze;
pub mod journal;
pub mod lock;
pub mod mirror;
pub mod operator;
pub mod redact;
pub mod s3;
pub mod store;
pub mod timeline;

pub use freeze::{Freeze, FreezeStore, Frozen};
pub use journal::{
  Event, Journal, JournalError, Phase, Record, RunMode, RunStatus, StepError, StepInfo,
};
pub use lock::{HeldLock, LeaseKeeper, LeaseTerms, Lock, LockError, LockHolder, LockStore};
pub use mirror::{JournalMirror, MirrorReport};
pub use operator::os_user;
pub use redact::Redactor;
pub use s3::{S3Location, S3State, SyncReport};
pub use store::{RunSummary, Store};
pub use timeline::{
  status_text, ControlDecision, DataLoss, Decision, Recovery, RecoveryOutcome, Resumption,
  StepOutcome, StepSpan, Timeline,
};
