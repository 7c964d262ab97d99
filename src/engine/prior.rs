//! What a resumed run knows from its journal: the steps that succeeded (with their outputs),
//! were skipped or changed the world, and for the others their attempts so far, an intent
//! with no outcome after it, or a dispatch whose answer was lost.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::state::{journal::Phase, DataLoss, Event, Record};

/// What a resumed run knows from its journal.
#[derive(Debug, Default)]
pub(super) struct Prior {
  pub(super) succeeded: HashMap<String, BTreeMap<String, String>>,
  /// Succeeded steps that changed the world, in completion order (for rollback).
  pub(super) changed: Vec<String>,
  pub(super) skipped: Vec<String>,
  /// Steps with an intent and no outcome after it: the data loss the intent recorded.
  pub(super) intents: HashMap<String, Option<DataLoss>>,
  /// Steps whose request was dispatched with no outcome after it (delivery unknown).
  pub(super) dispatched: HashSet<String>,
  pub(super) attempts: HashMap<String, u32>,
}

impl Prior {
  pub(super) fn from_records(records: &[Record]) -> Prior {
    let mut prior = Prior::default();
    for record in records {
      match &record.event {
        Event::StepStarted {
          step,
          attempt,
          phase: Phase::Run,
        } => {
          prior.attempts.insert(step.clone(), *attempt);
        }
        Event::StepIntent {
          step,
          phase: Phase::Run,
          data_loss_ms,
          data_loss_unknown,
          ..
        } => {
          prior.intents.insert(
            step.clone(),
            DataLoss::from_journal(*data_loss_ms, data_loss_unknown.as_ref()),
          );
        }
        Event::StepDispatched {
          step,
          phase: Phase::Run,
          ..
        } => {
          prior.dispatched.insert(step.clone());
        }
        // A failure answers the dispatch before it (the request was refused or timed out, and
        // the retry policy already decided about it).
        Event::StepFailed {
          step,
          phase: Phase::Run,
          ..
        } => {
          prior.dispatched.remove(step);
        }
        Event::StepSucceeded {
          step,
          phase: Phase::Run,
          outputs,
          changed,
          ..
        } => {
          prior.succeeded.insert(step.clone(), outputs.clone());
          if *changed {
            prior.changed.push(step.clone());
          }
          prior.intents.remove(step);
          prior.dispatched.remove(step);
        }
        // A rolled-back step's change is undone: a resume runs it again, as if it had never
        // run (or the failed step would be retried against a world without that change).
        Event::StepSucceeded {
          step,
          phase: Phase::Rollback,
          ..
        } => {
          prior.succeeded.remove(step);
          prior.changed.retain(|id| id != step);
        }
        Event::StepSkipped { step, .. } => prior.skipped.push(step.clone()),
        _ => {}
      }
    }
    prior
  }
}
