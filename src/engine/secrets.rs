//! Secrets across a resume. The journal holds every secret as `***`, so a resumed run must
//! never take a value from it that redaction touched: it would feed `***` to a template.
//!
//! * Secrets (`${{ secrets.X }}`) are read from the environment again (by [`Plan::bind`]).
//! * A parameter journalled redacted (a `secret: true` one, or one whose value held a secret)
//!   must be given again (`drctl resume ID -p name=VALUE`); the value given must redact to
//!   what was journalled.
//! * A succeeded step's output journalled redacted is recomputed: a read-only step runs again.
//!   A mutating step is not repeated for it: a resume that still needs such an output is
//!   refused.
//!
//! Redaction always leaves `***` behind, so a value without it was journalled whole. A value
//! that legitimately contains `***` is treated as redacted: the safe side.

use std::collections::BTreeMap;

use super::{EngineError, Prior};
use crate::{
  plan::{self, Plan},
  runbook::{template::Namespace, Runbook},
  state::redact::MASK,
};

/// Bind the plan of a resumed run: the parameters it started with (`journalled`), plus `again`
/// for those the journal holds only redacted. Errors are user-facing lines.
pub fn bind_resumed(
  runbook: Runbook,
  journalled: &BTreeMap<String, String>,
  again: &[(String, String)],
) -> Result<Plan, Vec<String>> {
  let mut errors = Vec::new();
  for (name, _) in again {
    match journalled.get(name) {
      None => errors.push(format!(
        "parameter `{name}` was not given to the run; a resume cannot add parameters"
      )),
      Some(value) if !value.contains(MASK) => errors.push(format!(
        "parameter `{name}` comes from the journal (`{value}`); a resume cannot change it"
      )),
      Some(_) => {}
    }
  }
  let mut given: Vec<(String, String)> = Vec::new();
  for (name, value) in journalled {
    if !value.contains(MASK) {
      given.push((name.clone(), value.clone()));
    } else if !again.iter().any(|(again, _)| again == name) {
      errors.push(format!(
        "parameter `{name}` held a secret and the journal has it only redacted: pass it again \
         with `-p {name}=VALUE`"
      ));
    }
  }
  if !errors.is_empty() {
    return Err(errors);
  }
  given.extend(again.iter().cloned());
  let plan = Plan::bind(runbook, &given).map_err(|err| err.errors)?;
  let redactor = plan.redactor();
  for (name, _) in again {
    let value = plan.params.get(name).map(ToString::to_string);
    if value.map(|value| redactor.redact(&value)).as_ref() != journalled.get(name) {
      errors.push(format!(
        "parameter `{name}` is not the value the run started with (it redacts differently)"
      ));
    }
  }
  if errors.is_empty() {
    Ok(plan)
  } else {
    Err(errors)
  }
}

/// Outputs of succeeded steps that the journal holds only redacted: read-only steps run again
/// to recompute them; a mutating one is not repeated, so a step still to run that references
/// such an output refuses the resume.
pub(super) fn recover_outputs(plan: &Plan, prior: &mut Prior) -> Result<(), EngineError> {
  let steps = &plan.runbook.steps;
  let redacted: Vec<(String, Vec<String>)> = prior
    .succeeded
    .iter()
    .map(|(step, outputs)| {
      let keys = outputs
        .iter()
        .filter(|(_, value)| value.contains(MASK))
        .map(|(key, _)| key.clone())
        .collect();
      (step.clone(), keys)
    })
    .filter(|(_, keys): &(String, Vec<String>)| !keys.is_empty())
    .collect();
  for (id, keys) in redacted {
    let Some(step) = steps.iter().find(|step| step.id == id) else {
      continue;
    };
    if !plan::is_mutating(&step.call) {
      // Recompute: a check has no effect to repeat.
      prior.succeeded.remove(&id);
      continue;
    }
    let needed_by = steps
      .iter()
      .filter(|other| !prior.succeeded.contains_key(&other.id))
      .filter(|other| !prior.skipped.contains(&other.id))
      .find_map(|other| {
        plan::step_references(other)
          .into_iter()
          .find_map(|reference| {
            let wanted = reference.namespace == Namespace::Steps
              && reference.path.first() == Some(&id)
              && reference.path.get(2).is_some_and(|key| keys.contains(key));
            wanted.then(|| (other.id.clone(), reference.to_string()))
          })
      });
    if let Some((other, reference)) = needed_by {
      return Err(EngineError::Resume(format!(
        "step `{other}` needs `${{{{ {reference} }}}}`, which held a secret: the journal has it \
         only redacted, and step `{id}` changes the world, so it is not run again to recompute \
         it; finish the run by hand or start a new one"
      )));
    }
  }
  Ok(())
}
