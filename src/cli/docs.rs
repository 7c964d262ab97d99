//! Documents about drctl itself, generated from the definitions they describe: the JSON Schemas
//! of runbook and drill files (from the action table and the drill validator's tables), shell
//! completions and the man page (from the clap definition of the command line).

use clap::{CommandFactory, ValueEnum};

use super::{out, Cli, Error, Exit};

/// The files `drctl schema` describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
  /// Runbook files (`kind: Runbook`).
  Runbook,
  /// Drill files (`kind: Drill`).
  Drill,
}

/// `drctl schema [--kind runbook|drill]`.
pub fn schema(kind: SchemaKind) -> Exit {
  let schema = match kind {
    SchemaKind::Runbook => crate::runbook::json_schema(&crate::actions::specs()),
    SchemaKind::Drill => crate::drills::file::json_schema(),
  };
  // Serializing a `serde_json::Value` cannot fail: its keys are strings and it holds no
  // non-finite numbers (serde_json refuses to build those).
  out(&format!(
    "{}\n",
    serde_json::to_string_pretty(&schema).unwrap_or_default()
  ));
  Exit::Succeeded
}

/// `drctl completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Exit {
  let mut command = Cli::command();
  let mut script = Vec::new();
  clap_complete::generate(shell, &mut command, "drctl", &mut script);
  out(&String::from_utf8_lossy(&script));
  Exit::Succeeded
}

/// `drctl man`: the man page (section 1, roff) on stdout.
pub fn man() -> Result<Exit, Error> {
  let mut page = Vec::new();
  clap_mangen::Man::new(Cli::command())
    .render(&mut page)
    .map_err(|err| Error::Failed(format!("cannot render the man page: {err}")))?;
  out(&String::from_utf8_lossy(&page));
  Ok(Exit::Succeeded)
}
