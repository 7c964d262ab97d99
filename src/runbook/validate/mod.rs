//! Validation: the spanned YAML tree ([`super::parse`]) → a [`Runbook`], or every error found.
//!
//! The walk never stops at the first problem: each part of the file is checked on its own and
//! the errors are collected, so one `drctl validate` shows everything to fix. Cross-references
//! (`needs`, `${{ }}` references) are checked once every step, parameter and variable is known.
//!
//! Nothing here panics on any input, and the work is linear in the size of the file apart from
//! the ancestor walks of `steps.ID.outputs` references (one graph walk per referencing step).
//!
//! One job per file:
//! * `reader`: the generic YAML readers (typed access with positions) and the file's list of
//!   diagnostics; drill files ([`crate::drills::file`]) are read with the same core;
//! * `walk`: the runbook walk, top to bottom, building the model;
//! * `with`: each action's `with` checked against its fields in the action catalog;
//! * `graph`: the step graph (unknown `needs`, cycles, what a step depends on);
//! * `references`: the `${{ }}` references of templates, checked once everything is declared.

mod graph;
pub(crate) mod reader;
mod references;
mod walk;
mod with;

use std::{collections::HashSet, path::Path};

use self::{reader::Reader, references::Use};
use super::{
  action_spec::ActionCatalog,
  diagnostic::{read_source, source_text, Diagnostic, DiagnosticKind, Diagnostics, Document},
  model::*,
  template::Namespace,
};

pub(crate) use walk::{parse_value, valid_id};

/// The version this crate reads.
pub const API_VERSION: &str = "drctl/v1";

/// Validate a runbook's bytes. `path` is only used in diagnostics and kept in the model.
pub fn load(
  path: &Path,
  bytes: &[u8],
  catalog: &dyn ActionCatalog,
) -> Result<Runbook, Diagnostics> {
  let text = source_text(Document::Runbook, path, bytes)?;
  let mut checker = Checker {
    reader: Reader::new(path, text),
    catalog,
    uses: Vec::new(),
  };
  let runbook = checker
    .reader
    .parse(Document::Runbook)
    .and_then(|root| checker.runbook(&root));
  checker.reader.finish(runbook)
}

/// Read and validate a runbook file; a read error is reported as a diagnostic too.
pub fn load_file(path: &Path, catalog: &dyn ActionCatalog) -> Result<Runbook, Diagnostics> {
  let bytes = read_source(Document::Runbook, path)?;
  load(path, &bytes, catalog)
}

/// What validates but is unsafe, as diagnostics to print as warnings: a secret
/// (`${{ secrets.X }}` or a `secret: true` parameter) in an `exec.command` argv, where every
/// local user can read it in the process list.
pub fn warnings(runbook: &Runbook) -> Vec<Diagnostic> {
  let secret_params: HashSet<&str> = runbook
    .params
    .iter()
    .filter(|param| param.secret)
    .map(|param| param.name.as_str())
    .collect();
  let mut found = Vec::new();
  for (index, step) in runbook.steps.iter().enumerate() {
    let calls = [
      Some((&step.call, "")),
      step.rollback.as_ref().map(|call| (call, ".rollback")),
    ];
    for (call, place) in calls.into_iter().flatten() {
      if call.action != "exec.command" {
        continue;
      }
      let Some(Arg::List(items, _)) = call.with.get("argv") else {
        continue;
      };
      for (item_index, item) in items.iter().enumerate() {
        let Arg::Template(template, span) = item else {
          continue;
        };
        for reference in template.references() {
          let name = reference
            .path
            .first()
            .map(String::as_str)
            .unwrap_or_default();
          let secret = match reference.namespace {
            Namespace::Secrets => true,
            Namespace::Params => secret_params.contains(name),
            _ => false,
          };
          if secret {
            found.push(Diagnostic {
              path: runbook.path.clone(),
              span: *span,
              width: 1,
              key: format!("steps[{index}]{place}.with.argv[{item_index}]"),
              kind: DiagnosticKind::SecretInArgv {
                reference: format!("{}.{name}", reference.namespace.as_str()),
              },
            });
          }
        }
      }
    }
  }
  found
}

/// The runbook walk's state: the file's reader, the action catalog `with` and fences are
/// checked against, and the template references found so far (checked once everything is
/// declared, in `references`).
struct Checker<'a> {
  reader: Reader<'a>,
  catalog: &'a dyn ActionCatalog,
  uses: Vec<Use>,
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fence_tests;
