//! drctl: a disaster-recovery and failover runbook engine.
//!
//! The crate is organised by phase (see ARCHITECTURE.md): `runbook` (parse, validate) → `plan` (bind
//! parameters, probe, order the graph) → `engine` (run a plan, journal every transition) with
//! `actions` acting on the `cloud` provider boundary, `state` keeping journals and locks, and
//! `report` rendering results. `cli` is a thin layer over all of them.

pub mod actions;
pub mod cli;
pub mod cloud;
pub mod drills;
pub mod engine;
pub mod format;
pub mod plan;
pub mod process_group;
pub mod report;
pub mod runbook;
pub mod serve;
pub mod state;
