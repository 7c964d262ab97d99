//! Template references: each `${{ }}` reference a template makes is recorded where the
//! template is read, then checked once every parameter, variable, objective and step is known
//! (what it names exists, and is visible from where it is used).

use std::collections::{HashMap, HashSet};

use super::{
  graph::{ancestors_of, step_ids, Needs},
  Checker,
};
use crate::runbook::{
  action_spec::ActionSpec,
  diagnostic::DiagnosticKind,
  model::*,
  parse::{Node, NodeValue, ScalarStyle},
  suggest::did_you_mean,
  template::{Namespace, Reference, Template},
};

const RUN_FIELDS: &[&str] = &["id", "elapsed", "started_at"];

/// Where a template is used, which decides what it may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
  /// The `vars` entry with this index.
  Var(usize),
  /// Step `index` (its `with`, `when` or approval prompt).
  Step(usize),
  /// Step `index`'s rollback, which may also use the step's own outputs.
  Rollback(usize),
  /// `objectives.recovered_when`: params, vars, env and run facts, no step's outputs.
  Recovery,
}

/// One reference found in a template, to check once everything is declared.
pub(super) struct Use {
  reference: Reference,
  span: Span,
  width: usize,
  key: String,
  place: Place,
}

impl Checker<'_> {
  /// A scalar as a template; numbers and booleans are literal templates of their text.
  pub(super) fn expect_template(
    &mut self,
    node: &Node,
    key: &str,
    place: Place,
  ) -> Option<Template> {
    let text = self.reader.expect_string(node, key)?;
    let template = match &node.value {
      NodeValue::Scalar(_, ScalarStyle::Plain) if !text.contains("${{") => Template::literal(text),
      _ => match Template::parse(&text) {
        Ok(template) => template,
        Err(error) => {
          let needle: String = text
            .get(error.offset..)
            .and_then(|rest| rest.chars().next())
            .into_iter()
            .collect();
          let (span, _) = self.reader.locate(node, error.offset, &needle);
          self.reader.report(
            span,
            1,
            key.to_string(),
            DiagnosticKind::Template {
              message: error.message,
            },
          );
          return None;
        }
      },
    };
    for reference in template.references() {
      let (span, width) = self
        .reader
        .locate(node, reference.offset, &reference.to_string());
      self.uses.push(Use {
        reference: reference.clone(),
        span,
        width,
        key: key.to_string(),
        place,
      });
    }
    Some(template)
  }

  /// Every recorded reference against what the runbook declares.
  pub(super) fn check_uses(
    &mut self,
    params: &[Param],
    vars: &[(String, Template)],
    objectives: &Objectives,
    steps: &[(Option<Step>, Needs)],
  ) {
    let ids = step_ids(steps);
    let mut ancestors: HashMap<usize, HashSet<usize>> = HashMap::new();
    let uses = std::mem::take(&mut self.uses);
    for site in uses {
      let reference = &site.reference;
      let path = &reference.path;
      let shape = |shape: &'static str| DiagnosticKind::BadReference {
        reference: reference.to_string(),
        shape,
      };
      let kind = match reference.namespace {
        Namespace::Params if path.len() != 1 => Some(shape("params.NAME")),
        Namespace::Params => {
          let name = &path[0];
          (!params.iter().any(|param| &param.name == name)).then(|| DiagnosticKind::UnknownParam {
            name: name.clone(),
            suggestion: did_you_mean(name, params.iter().map(|param| param.name.as_str())),
          })
        }
        Namespace::Vars if path.len() != 1 => Some(shape("vars.NAME")),
        Namespace::Vars => {
          let name = &path[0];
          let visible = match site.place {
            Place::Var(index) => &vars[..index.min(vars.len())],
            _ => vars,
          };
          (!visible.iter().any(|(var, _)| var == name)).then(|| DiagnosticKind::UnknownVar {
            name: name.clone(),
            suggestion: did_you_mean(name, visible.iter().map(|(var, _)| var.as_str())),
            later: vars.iter().any(|(var, _)| var == name),
          })
        }
        Namespace::Objectives if path.len() != 1 => Some(shape("objectives.rto")),
        Namespace::Objectives => match path[0].as_str() {
          "rto" if objectives.rto.is_none() => {
            Some(DiagnosticKind::ObjectiveNotSet { name: "rto".into() })
          }
          "rpo" if objectives.rpo.is_none() => {
            Some(DiagnosticKind::ObjectiveNotSet { name: "rpo".into() })
          }
          "rto" | "rpo" => None,
          name => Some(DiagnosticKind::UnknownObjective { name: name.into() }),
        },
        Namespace::Steps if path.len() != 3 || path[1] != "outputs" => {
          Some(shape("steps.ID.outputs.KEY"))
        }
        Namespace::Steps => match site.place {
          Place::Var(_) => Some(DiagnosticKind::NotAvailableHere {
            reference: reference.to_string(),
            place: "vars",
          }),
          Place::Recovery => Some(DiagnosticKind::NotAvailableHere {
            reference: reference.to_string(),
            place: "objectives.recovered_when",
          }),
          Place::Step(index) | Place::Rollback(index) => {
            let (id, key) = (&path[0], &path[2]);
            match ids.get(id.as_str()) {
              None => Some(DiagnosticKind::UnknownStep {
                id: id.clone(),
                suggestion: did_you_mean(id, ids.keys().copied()),
              }),
              Some(&target) => {
                let own = matches!(site.place, Place::Rollback(_)) && target == index;
                let reachable = own
                  || ancestors
                    .entry(index)
                    .or_insert_with(|| ancestors_of(index, steps, &ids))
                    .contains(&target);
                let action = steps
                  .get(target)
                  .and_then(|(step, _)| step.as_ref())
                  .map(|step| step.call.action.clone());
                let spec: Option<ActionSpec> = action
                  .as_deref()
                  .and_then(|action| self.catalog.get(action).copied());
                let step_id = steps
                  .get(index)
                  .and_then(|(step, _)| step.as_ref())
                  .map(|step| step.id.clone())
                  .unwrap_or_default();
                if !reachable {
                  Some(DiagnosticKind::NotANeed {
                    id: id.clone(),
                    step: step_id,
                  })
                } else {
                  match spec {
                    Some(spec) if !spec.outputs.contains(&key.as_str()) => {
                      Some(DiagnosticKind::UnknownOutput {
                        step: id.clone(),
                        action: spec.name.into(),
                        key: key.clone(),
                        outputs: spec.outputs.to_vec(),
                        suggestion: did_you_mean(key, spec.outputs.iter().copied()),
                      })
                    }
                    _ => None,
                  }
                }
              }
            }
          }
        },
        Namespace::Env if path.len() != 1 => Some(shape("env.NAME")),
        Namespace::Secrets if path.len() != 1 => Some(shape("secrets.NAME")),
        Namespace::Env | Namespace::Secrets => None,
        Namespace::Run if path.len() == 1 && RUN_FIELDS.contains(&path[0].as_str()) => None,
        Namespace::Run => {
          let name = path.join(".");
          Some(DiagnosticKind::UnknownRunField {
            suggestion: did_you_mean(&name, RUN_FIELDS.iter().copied()),
            name,
          })
        }
      };
      if let Some(kind) = kind {
        self.reader.report(site.span, site.width, site.key, kind);
      }
    }
  }
}
