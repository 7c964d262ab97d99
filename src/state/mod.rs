//! Run state: the journal of every run, the lock that keeps two runs of one runbook apart, and
//! the directory layout that holds them.
//!
//! Layout of a local state directory (default `.drctl/`):
//!
//! ```text
//! runs/<run-id>/journal.jsonl     the append-only journal (see `journal`)
//! runs/<run-id>/world.json        the simulator's world, when the run used `--sim`
//! runs/<run-id>/operations.jsonl  the simulator's operation log
//! locks/<runbook>.lock            the lock of a running runbook
//! ```

pub mod journal;
pub mod lock;
pub mod redact;
pub mod store;
pub mod timeline;

pub use journal::{
  Event, Journal, JournalError, Phase, Record, RunMode, RunStatus, StepError, StepInfo,
};
pub use lock::{Lock, LockError, LockHolder};
pub use redact::Redactor;
pub use store::{RunSummary, Store};
pub use timeline::{StepSpan, Timeline};
