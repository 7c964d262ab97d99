//! `drctl report RUN_ID [--format json|md|junit|html] [-o FILE]`: render a run's report from its
//! journal (and the simulator's operation log, when the run had one).

use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, ValueEnum};

use super::{commands::Context, out, Error, Exit};
use crate::{
  actions::Catalog,
  report::{self, ApiCalls, Format, Report},
  runbook,
  state::{store::Store, Redactor},
};

/// `drctl report` arguments.
#[derive(Debug, Clone, ClapArgs)]
pub struct ReportArgs {
  /// The run (its id or a unique prefix; default: the latest).
  pub run_id: Option<String>,
  /// Report format.
  #[arg(long, short = 'f', value_enum, default_value_t = ReportFormat::Md)]
  pub format: ReportFormat,
  /// Write the report to FILE instead of stdout.
  #[arg(short = 'o', long = "out", value_name = "FILE")]
  pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
  Json,
  Md,
  Junit,
  Html,
}

impl From<ReportFormat> for Format {
  fn from(format: ReportFormat) -> Format {
    match format {
      ReportFormat::Json => Format::Json,
      ReportFormat::Md => Format::Markdown,
      ReportFormat::Junit => Format::Junit,
      ReportFormat::Html => Format::Html,
    }
  }
}

pub(super) async fn report(ctx: &Context, args: &ReportArgs) -> Result<Exit, Error> {
  let s3 = ctx.s3_state().await;
  ctx.pull_runs(s3.as_ref()).await?;
  let run_id = ctx.run_or_latest(args.run_id.as_deref())?;
  let report = build(ctx, &run_id)?;
  let text = report::render(&report, args.format.into());
  match &args.out {
    Some(path) => {
      if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
      {
        std::fs::create_dir_all(parent)
          .map_err(|err| Error::Failed(format!("{}: {err}", parent.display())))?;
      }
      std::fs::write(path, text)
        .map_err(|err| Error::Failed(format!("{}: {err}", path.display())))?;
      eprintln!("report of run {run_id} written to {}", path.display());
    }
    None => out(&text),
  }
  Ok(Exit::Succeeded)
}

/// Build the report of a run from its journal (and the simulator's operation log, if any).
pub(super) fn build(ctx: &Context, run_id: &str) -> Result<Report, Error> {
  build_from(&ctx.store, run_id)
}

/// [`build`] over a store (`drctl serve`'s pages show the same report).
pub(super) fn build_from(store: &Store, run_id: &str) -> Result<Report, Error> {
  let records = store
    .read_journal(run_id)
    .map_err(super::state::journal_error)?;
  let run_dir = store.run_dir(run_id);
  let api_calls = if run_dir.join("operations.jsonl").exists() {
    let operations =
      crate::cloud::sim::read_operation_log(&run_dir).map_err(super::state::sim_error)?;
    ApiCalls::count(
      "simulator operation log",
      operations.into_iter().map(|op| op.operation),
    )
  } else {
    ApiCalls::not_recorded()
  };
  let redactor = records
    .first()
    .and_then(|record| match &record.event {
      crate::state::Event::RunStarted { runbook_path, .. } => Some(runbook_path.clone()),
      _ => None,
    })
    .map_or_else(Redactor::default, |path| redactor_for(Path::new(&path)));
  Report::from_records(&records, api_calls, &redactor)
    .map_err(|why| Error::Failed(format!("run {run_id}: {why}")))
}

/// The format named in a drill's `reports:` list.
pub(super) fn format_named(name: &str) -> Option<Format> {
  Some(match name {
    "json" => Format::Json,
    "md" => Format::Markdown,
    "junit" => Format::Junit,
    "html" => Format::Html,
    _ => return None,
  })
}

/// The redaction of the run's secrets, as far as they can be known now: the values in the
/// environment of the secrets the runbook references. The journal already holds redacted text;
/// this catches a secret that slipped into a summary or an error. A runbook that no longer loads
/// leaves the journal's own redaction.
fn redactor_for(runbook_path: &Path) -> Redactor {
  let Ok(runbook) = runbook::load_file(runbook_path, &Catalog) else {
    return Redactor::default();
  };
  Redactor::new(
    crate::plan::referenced_secrets(&runbook)
      .into_iter()
      .filter_map(|name| Some((format!("secrets.{name}"), std::env::var(name).ok()?))),
  )
}
