//! Graph checks: the steps' `needs` form a DAG of known ids. Unknown `needs` and cycles are
//! reported here; [`ancestors_of`] answers which steps' outputs a step may use.

use std::collections::{HashMap, HashSet};

use super::Checker;
use crate::runbook::{diagnostic::DiagnosticKind, model::*, suggest::did_you_mean};

/// A step's `needs`, kept with positions until every id is known.
pub(super) struct Needs {
  pub(super) names: Vec<(String, Span, usize)>,
}

impl Checker<'_> {
  /// Unknown `needs` and cycles.
  pub(super) fn check_needs(&mut self, steps: &[(Option<Step>, Needs)]) {
    let ids = step_ids(steps);
    // edges[i] = (target step, span of the needs entry, its position)
    let mut edges: Vec<Vec<(usize, Span, usize)>> = vec![Vec::new(); steps.len()];
    for (index, (_, needs)) in steps.iter().enumerate() {
      for (name, span, position) in &needs.names {
        let key = needs_key(index, *position);
        match ids.get(name.as_str()) {
          Some(target) => edges[index].push((*target, *span, *position)),
          None => {
            let suggestion = did_you_mean(name, ids.keys().copied());
            self.reader.report(
              *span,
              name.chars().count(),
              key,
              DiagnosticKind::UnknownNeed {
                id: name.clone(),
                suggestion,
              },
            );
          }
        }
      }
    }
    let name_of = |index: usize| -> String {
      steps
        .get(index)
        .and_then(|(step, _)| step.as_ref().map(|step| step.id.clone()))
        .unwrap_or_else(|| {
          ids
            .iter()
            .find(|(_, at)| **at == index)
            .map(|(id, _)| id.to_string())
            .unwrap_or_default()
        })
    };
    // Iterative depth-first search: a chain of thousands of steps must not overflow the stack.
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut colour = vec![WHITE; steps.len()];
    for start in 0..steps.len() {
      if colour[start] != WHITE {
        continue;
      }
      let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
      colour[start] = GREY;
      while let Some((node, next)) = stack.last().copied() {
        if let Some((target, span, position)) = edges[node].get(next).copied() {
          if let Some(top) = stack.last_mut() {
            top.1 += 1;
          }
          match colour[target] {
            WHITE => {
              colour[target] = GREY;
              stack.push((target, 0));
            }
            GREY => {
              let from = stack.iter().position(|(at, _)| *at == target).unwrap_or(0);
              let mut cycle: Vec<String> =
                stack[from..].iter().map(|(at, _)| name_of(*at)).collect();
              cycle.push(name_of(target));
              let width = name_of(target).chars().count();
              self.reader.report(
                span,
                width,
                needs_key(node, position),
                DiagnosticKind::NeedsCycle { cycle },
              );
            }
            _ => {}
          }
        } else {
          colour[node] = BLACK;
          stack.pop();
        }
      }
    }
  }
}

fn needs_key(index: usize, position: usize) -> String {
  if position == usize::MAX {
    format!("steps[{index}].needs")
  } else {
    format!("steps[{index}].needs[{position}]")
  }
}

/// Step id → index of its first declaration (from the parsed steps, or their needs owners).
pub(super) fn step_ids(steps: &[(Option<Step>, Needs)]) -> HashMap<&str, usize> {
  let mut ids = HashMap::new();
  for (index, (step, _)) in steps.iter().enumerate() {
    if let Some(step) = step {
      ids.entry(step.id.as_str()).or_insert(index);
    }
  }
  ids
}

/// Every step `index` depends on, directly or not (cycles are tolerated).
pub(super) fn ancestors_of(
  index: usize,
  steps: &[(Option<Step>, Needs)],
  ids: &HashMap<&str, usize>,
) -> HashSet<usize> {
  let mut seen = HashSet::new();
  let mut queue = vec![index];
  while let Some(at) = queue.pop() {
    let Some((_, needs)) = steps.get(at) else {
      continue;
    };
    for (name, ..) in &needs.names {
      if let Some(&target) = ids.get(name.as_str()) {
        if seen.insert(target) {
          queue.push(target);
        }
      }
    }
  }
  seen
}
