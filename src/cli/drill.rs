//! `drctl drill list | run NAME | history [NAME]` and `drctl scheduler [--once]`.
//!
//! A drill run is a normal run (the same `commands::execute` as `drctl run`: lock, journal,
//! engine, S3 mirror) on the drill's target, judged against the drill's pass criteria and
//! recorded in the drill's history. Hooks for the parts built elsewhere:
//! * reports: [`write_report_hook`] writes the run's summary JSON next to the history; the
//!   report renderers (`drctl report`) turn it into the drill's `reports:` formats;
//! * notifications: [`notify_hook`] sends the drill's `notify:` entries that are due
//!   (breach/failure/success) and records their outcomes next to the history.

use std::{path::PathBuf, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use clap::{Args as ClapArgs, Subcommand};
use tokio::sync::watch;

use super::{
  commands::{execute, plan_report, render_summary, Backend, Context},
  out, render, sandbox, Error, Exit, Output, RunArgs,
};
use crate::{
  actions::Catalog,
  cloud::aws::AwsSettings,
  drills::{
    self,
    file::{drill_files, DrillMode, TargetBackend},
    history::{self, DrillRun, HistoryEntry, NotRun},
    scheduler::{
      ClaimStore, Clock, DrillRunner, Fire, FireOutcome, Scheduler, SystemClock, TokioClock,
      Verdict,
    },
    Drill, DrillResult, Shortfall,
  },
  plan::Plan,
  runbook::{format_duration, parse_duration},
  state::lock::hostname,
};

/// Where drill files live.
const DRILLS_DIR: &str = "drills";

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
  /// Each drill with its schedule and next fire time (in its time zone and UTC).
  List,
  /// Run a drill now, judge it against its pass criteria, and record it in its history.
  Run { name: String },
  /// Past runs of a drill (or of every drill): result, RTO/RPO achieved vs target, trend.
  History { name: Option<String> },
}

#[derive(Debug, Clone, ClapArgs)]
pub struct SchedulerArgs {
  /// Fire what is due now and exit (for cron, systemd timers, Kubernetes CronJobs).
  #[arg(long)]
  pub once: bool,
  /// Wait a random delay up to this long before each drill (spreads replicas and drills).
  #[arg(long, default_value = "30s", value_name = "DURATION")]
  pub jitter: String,
  /// Pretend the time is this (RFC 3339) when the scheduler starts; it advances from there in
  /// real time. Injected time, for testing schedules without waiting months.
  #[arg(long, hide = true, value_name = "RFC3339")]
  pub now: Option<String>,
}

pub async fn dispatch(ctx: &Context, command: DrillCommand) -> Result<Exit, Error> {
  match command {
    DrillCommand::List => list(ctx).await,
    DrillCommand::Run { name } => {
      let drill = find(ctx, &name)?;
      let signals = interrupts();
      let (code, _) = run_drill(ctx, &drill, "manual", None, signals).await?;
      Ok(code)
    }
    DrillCommand::History { name } => history_command(ctx, name.as_deref()).await,
  }
}

/// Every drill in `drills/`; all errors of all files at once.
pub(super) fn load_all(ctx: &Context) -> Result<Vec<Drill>, Error> {
  let dir = PathBuf::from(DRILLS_DIR);
  let mut drills = Vec::new();
  let mut errors = Vec::new();
  for file in drill_files(&dir) {
    match drills::load_file(&file, &ctx.runbooks, &Catalog) {
      Ok(drill) => drills.push(drill),
      Err(diagnostics) => errors.push(diagnostics.to_string()),
    }
  }
  if !errors.is_empty() {
    return Err(Error::Invalid(errors.join("\n\n")));
  }
  let mut names = std::collections::HashSet::new();
  for drill in &drills {
    if !names.insert(drill.name.clone()) {
      return Err(Error::Usage(format!(
        "two drills are named `{}` in {DRILLS_DIR}/",
        drill.name
      )));
    }
  }
  Ok(drills)
}

fn find(ctx: &Context, name: &str) -> Result<Drill, Error> {
  crate::state::store::check_name(crate::state::store::NameKind::Drill, name)
    .map_err(Error::Usage)?;
  let drills = load_all(ctx)?;
  let names: Vec<String> = drills.iter().map(|drill| drill.name.clone()).collect();
  drills
    .into_iter()
    .find(|drill| drill.name == name)
    .ok_or_else(|| {
      Error::Usage(format!(
        "no drill `{name}` in {DRILLS_DIR}/ (drills: {})",
        names.join(", ")
      ))
    })
}

async fn list(ctx: &Context) -> Result<Exit, Error> {
  let drills = load_all(ctx)?;
  let now = Utc::now();
  // Each drill's last run, read once (a history a newer drctl wrote refuses the command).
  let lasts = drills
    .iter()
    .map(|drill| Ok(read_history(ctx, &drill.name)?.pop()))
    .collect::<Result<Vec<_>, Error>>()?;
  // What holds live drills back right now (nothing: an empty list).
  let frozen = super::freeze::drill_frozen(ctx).await;
  let rows: Vec<serde_json::Value> = drills
    .iter()
    .zip(&lasts)
    .map(|(drill, last)| {
      let next = drill.schedule.next_after(now);
      serde_json::json!({
        "name": drill.name,
        "description": drill.description,
        "runbook": drill.runbook.name,
        "schedule": drill.schedule.expression,
        "timezone": drill.schedule.zone.name(),
        "next_fire_local": next.map(|next| next.with_timezone(&drill.schedule.zone).to_rfc3339()),
        "next_fire_utc": next.map(|next| next.to_rfc3339()),
        "mode": drill.mode,
        "target": drill.target.backend,
        "last_result": last.as_ref().map(|entry| entry.result),
        "last_run_at": last.as_ref().map(|entry| entry.started_at),
        // A live drill that fired now would be skipped for these reasons.
        "frozen": if drill.mode == DrillMode::Live { frozen.clone() } else { Vec::new() },
      })
    })
    .collect();
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::to_string_pretty(&rows).unwrap_or_default()
    )),
    Output::Text => {
      if drills.is_empty() {
        out(&format!("no drills in {DRILLS_DIR}/\n"));
      }
      let mut text: String = frozen
        .iter()
        .map(|reason| format!("live drills are frozen: {reason}\n"))
        .collect();
      text.push_str(&format!(
        "{:<30} {:<22} {:<16} {:<27} {:<22} {}\n",
        "DRILL", "SCHEDULE", "TIME ZONE", "NEXT (LOCAL)", "NEXT (UTC)", "LAST"
      ));
      for (drill, last) in drills.iter().zip(&lasts) {
        let next = drill.schedule.next_after(now);
        text.push_str(&format!(
          "{:<30} {:<22} {:<16} {:<27} {:<22} {}\n",
          drill.name,
          drill.schedule.expression,
          drill.schedule.zone.name(),
          next.map_or("never".into(), |next| next
            .with_timezone(&drill.schedule.zone)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()),
          next.map_or("never".into(), |next| next
            .format("%Y-%m-%d %H:%MZ")
            .to_string()),
          last.as_ref().map_or("-", |entry| entry.result.as_str())
        ));
      }
      out(&text);
    }
  }
  Ok(Exit::Succeeded)
}

fn backend_name(backend: TargetBackend) -> &'static str {
  match backend {
    TargetBackend::Sim => "sim",
    TargetBackend::Sandbox => "sandbox",
    TargetBackend::Aws => "aws",
  }
}

/// How much a backend can affect: the simulator nothing, the sandbox a local server, AWS the
/// world.
fn reach(backend: TargetBackend) -> u8 {
  match backend {
    TargetBackend::Sim => 0,
    TargetBackend::Sandbox => 1,
    TargetBackend::Aws => 2,
  }
}

/// The backend `--sim`, `--sandbox` or `--aws` asks for, if one does.
fn flag_backend(ctx: &Context) -> Option<TargetBackend> {
  let global = &ctx.global;
  if global.aws {
    Some(TargetBackend::Aws)
  } else if global.sandbox {
    Some(TargetBackend::Sandbox)
  } else {
    global.sim.as_ref().map(|_| TargetBackend::Sim)
  }
}

/// The backend a drill runs on: its target's, or a safer one a flag asks for (never a less safe
/// one: the drill file is what was reviewed). Flags that would mean nothing there are refused.
pub(super) fn drill_backend(ctx: &Context, drill: &Drill) -> Result<TargetBackend, Error> {
  let target = drill.target.backend;
  let backend = match flag_backend(ctx) {
    Some(flag) if reach(flag) > reach(target) => {
      let name = backend_name(flag);
      return Err(Error::Usage(format!(
        "drill {} targets {} in its file; --{name} would run it on {name}, which is less safe: \
         change the drill file's target to do that",
        drill.name,
        backend_name(target)
      )));
    }
    Some(flag) => flag,
    None => target,
  };
  if ctx.global.time_scale.is_some() && backend != TargetBackend::Sim {
    return Err(Error::Usage(format!(
      "--time-scale sets the simulator's speed, and drill {} runs on {}",
      drill.name,
      backend_name(backend)
    )));
  }
  let s3_state = matches!(ctx.state, super::state::StateBackend::S3 { .. });
  if let Some(flag) = super::aws_flags(&ctx.global).first() {
    if backend == TargetBackend::Sim && !s3_state {
      return Err(Error::Usage(format!(
        "{flag} configures AWS access, and drill {} runs on sim with a local state",
        drill.name
      )));
    }
  }
  Ok(backend)
}

/// The context a drill runs in: its backend (see [`drill_backend`]), with the target's AWS
/// settings under `--profile`/`--region`.
fn drill_context(ctx: &Context, drill: &Drill, backend: TargetBackend) -> Context {
  let target = &drill.target;
  let global = &ctx.global;
  let moved = backend != target.backend;
  let settings = AwsSettings {
    profile: global.profile.clone().or_else(|| target.profile.clone()),
    region: global.region.clone().or_else(|| target.region.clone()),
    // The target's endpoint is for the target's backend, not the one a flag moved it to.
    endpoint_url: target.endpoint.clone().filter(|_| !moved),
  };
  let backend = match backend {
    TargetBackend::Sim => Backend::Sim {
      world: global
        .sim
        .as_ref()
        .filter(|world| !world.is_empty())
        .map(PathBuf::from),
      time_scale: global.time_scale.or(target.time_scale),
    },
    TargetBackend::Aws => Backend::Aws(settings),
    TargetBackend::Sandbox => Backend::Sandbox {
      endpoint: target.endpoint.clone().filter(|_| !moved),
      settings,
    },
  };
  ctx.with_backend(backend)
}

fn seconds(duration: Option<Duration>) -> Option<f64> {
  duration.map(|duration| duration.as_secs_f64())
}

/// Run a drill now: bind, run on its target, judge, record. Returns the exit code (as for `run`:
/// 0 passed, 1 failed, 3 breached, 130 interrupted) and the history entry.
pub(super) async fn run_drill(
  ctx: &Context,
  drill: &Drill,
  trigger: &str,
  due: Option<DateTime<Utc>>,
  signals: watch::Receiver<u32>,
) -> Result<(Exit, HistoryEntry), Error> {
  let backend = drill_backend(ctx, drill)?;
  if backend != drill.target.backend && ctx.output == Output::Text {
    out(&format!(
      "drill {}: targets {} in its file; running on {}, as --{} asks\n",
      drill.name,
      backend_name(drill.target.backend),
      backend_name(backend),
      backend_name(backend)
    ));
  }
  // Before anything is started for it (a sandbox): a held-back drill only leaves its record.
  let frozen = match drill.mode {
    DrillMode::Live => super::freeze::drill_frozen(ctx).await,
    DrillMode::DryRun => Vec::new(),
  };
  let mut run_ctx = drill_context(ctx, drill, backend);
  // A sandbox target without an endpoint: the running sandbox, or one for this run.
  let _sandbox = if frozen.is_empty() {
    sandbox::attach(&mut run_ctx)?
  } else {
    None
  };
  let plan = Plan::bind(drill.runbook.clone(), &drill.param_pairs())
    .map_err(|err| Error::Usage(format!("drill {}: {err}", drill.name)))?;
  let started_at = Utc::now();
  let mut entry = HistoryEntry {
    drill: drill.name.clone(),
    run_id: String::new(),
    trigger: trigger.to_string(),
    due,
    started_at,
    finished_at: started_at,
    duration_seconds: 0.0,
    result: DrillResult::Skipped,
    run_status: DrillRun::NotRun(NotRun::Skipped),
    mode: match drill.mode {
      DrillMode::Live => "live".into(),
      DrillMode::DryRun => "dry-run".into(),
    },
    backend: backend_name(backend).into(),
    rto_target_seconds: seconds(drill.rto_target()),
    rto_achieved_seconds: None,
    rpo_target_seconds: seconds(drill.rpo_target()),
    rpo_achieved_seconds: None,
    reasons: Vec::new(),
    host: hostname(),
  };
  if !frozen.is_empty() {
    return skip_drill(ctx, drill, entry, frozen).await;
  }
  let summary;
  let code = match drill.mode {
    DrillMode::DryRun => {
      let (report, _) = plan_report(&run_ctx, &plan, None).await?;
      entry.run_status = DrillRun::NotRun(NotRun::Planned);
      let errors = report.probe_errors();
      let shortfalls = if errors > 0 {
        vec![Shortfall::Unprobed(errors)]
      } else if report.fits_rto == Some(false) {
        vec![Shortfall::BudgetsExceedRto]
      } else {
        Vec::new()
      };
      entry.result = DrillResult::of(&shortfalls);
      entry.reasons = shortfalls.iter().map(Shortfall::to_string).collect();
      summary = serde_json::to_value(&report).unwrap_or_default();
      if ctx.output == Output::Text {
        out(&format!(
          "dry run: estimated {} (fits the RTO: {})\n",
          report.estimated_duration,
          report
            .fits_rto
            .map_or("no RTO".into(), |fits| fits.to_string())
        ));
      }
      result_code(entry.result)
    }
    DrillMode::Live => {
      let args = RunArgs {
        params: Vec::new(),
        dry_run: false,
        // Drills run unattended: approval gates are answered yes (the drill file is the
        // approval), unless the drill says `approvals: wait` (then `drctl approve` answers).
        yes: drill.approvals == crate::drills::file::DrillApprovals::Yes,
        max_parallel: 8,
        accept_data_loss: false,
        force: false,
        incident_start: None,
      };
      let outcome = execute(&run_ctx, plan, &args, Some(signals)).await?;
      render_summary(ctx, &outcome);
      let timeline = &outcome.timeline;
      let (result, shortfalls) = drills::judge(drill, outcome.status, timeline);
      entry.run_id = timeline.run_id.clone();
      entry.run_status = DrillRun::Ran(outcome.status);
      entry.rto_achieved_seconds = seconds(timeline.rto_achieved);
      entry.rpo_achieved_seconds = seconds(timeline.rpo_achieved);
      entry.result = result;
      entry.reasons = shortfalls.iter().map(Shortfall::to_string).collect();
      summary = render::timeline_json(timeline);
      result_code(result)
    }
  };
  entry.finished_at = Utc::now();
  entry.duration_seconds = (entry.finished_at - started_at)
    .to_std()
    .unwrap_or_default()
    .as_secs_f64();
  record(ctx, drill, &entry).await?;
  write_report_hook(ctx, drill, &entry, &summary);
  notify_hook(ctx, drill, &entry).await;
  if ctx.output == Output::Text {
    out(&format!(
      "drill {}: {}{}\n",
      drill.name,
      entry.result,
      if entry.reasons.is_empty() {
        String::new()
      } else {
        format!(" ({})", entry.reasons.join("; "))
      }
    ));
  }
  Ok((code, entry))
}

/// The exit code of a drill's verdict (as for `run`: 0 passed, 1 failed, 3 breached, 130
/// interrupted; 4 for a drill a freeze held back, like a run refused by a held lock).
fn result_code(result: DrillResult) -> Exit {
  match result {
    DrillResult::Passed => Exit::Succeeded,
    DrillResult::Failed => Exit::Failed,
    DrillResult::Breached => Exit::Breached,
    DrillResult::Interrupted => Exit::Interrupted,
    DrillResult::Skipped => Exit::Locked,
  }
}

/// A live drill held back by a freeze: recorded in its history as skipped, with why (who froze,
/// when and why, or which live run is in progress). It is not a failure, so no notification
/// goes out and no report is written. Exit 4, like a run refused by a held lock.
async fn skip_drill(
  ctx: &Context,
  drill: &Drill,
  mut entry: HistoryEntry,
  frozen: Vec<String>,
) -> Result<(Exit, HistoryEntry), Error> {
  entry.result = DrillResult::Skipped;
  entry.run_status = DrillRun::NotRun(NotRun::Skipped);
  entry.reasons = frozen;
  record(ctx, drill, &entry).await?;
  if ctx.output == Output::Text {
    out(&format!(
      "drill {}: skipped, live drills are frozen ({})
",
      drill.name,
      entry.reasons.join("; ")
    ));
  }
  Ok((result_code(entry.result), entry))
}

/// Append a drill run to its history (and push it to an `s3://` state).
async fn record(ctx: &Context, drill: &Drill, entry: &HistoryEntry) -> Result<(), Error> {
  history::append(ctx.store.root(), entry).map_err(|err| {
    Error::Failed(format!(
      "{}: {err}",
      history::history_path(ctx.store.root(), &drill.name).display()
    ))
  })?;
  if let Some(s3) = ctx.s3_state().await {
    if let Err(err) = history::push(&s3, entry).await {
      eprintln!(
        "warning: drill history not pushed to {}: {err}",
        s3.location
      );
    }
  }
  Ok(())
}

fn run_dir(ctx: &Context, entry: &HistoryEntry) -> PathBuf {
  let id = if entry.run_id.is_empty() {
    format!("dry-run-{}", entry.started_at.format("%Y%m%d-%H%M%S"))
  } else {
    entry.run_id.clone()
  };
  history::drill_dir(ctx.store.root(), &entry.drill)
    .join("runs")
    .join(id)
}

/// Reports hook: the run's summary (drill verdict + timeline, or the plan of a dry run) as
/// `<state>/drills/<name>/runs/<run-id>/summary.json`, with the formats the drill asks for.
/// The report renderers (`drctl report RUN_ID --format ...`, src/report/) produce the files.
fn write_report_hook(
  ctx: &Context,
  drill: &Drill,
  entry: &HistoryEntry,
  summary: &serde_json::Value,
) {
  let dir = run_dir(ctx, entry);
  let body = serde_json::json!({
    "drill": drill.name,
    "entry": entry,
    "reports": drill.reports,
    "summary": summary,
  });
  let mut written = crate::state::store::create_private_dir(&dir).and_then(|()| {
    crate::state::store::write_private(
      &dir.join("summary.json"),
      serde_json::to_string_pretty(&body).unwrap_or_default(),
    )
  });
  // The drill's reports, rendered from the run's journal (a dry-run drill has no run).
  if !entry.run_id.is_empty() && written.is_ok() {
    match super::report::build(ctx, &entry.run_id) {
      Ok(report) => {
        for name in &drill.reports {
          let Some(format) = super::report::format_named(name) else {
            continue;
          };
          let path = dir.join(format!("report.{}", format.extension()));
          written =
            crate::state::store::write_private(&path, crate::report::render(&report, format));
          if written.is_err() {
            break;
          }
          eprintln!("drill report written to {}", path.display());
        }
      }
      Err(err) => eprintln!(
        "warning: drill report of run {}: {}",
        entry.run_id,
        err.message()
      ),
    }
  }
  if let Err(err) = written {
    eprintln!("warning: {}: {err}", dir.display());
  }
}

/// Notifications: send the drill's `notify:` entries this result triggers (see
/// [`drills::notify`]) and record each outcome in
/// `<state>/drills/<name>/runs/<run-id>/notify.json`. A notification that fails is reported on
/// stderr (by host only) and never changes the drill's verdict.
async fn notify_hook(ctx: &Context, drill: &Drill, entry: &HistoryEntry) {
  let due = drills::notify::due(drill, entry);
  if due.is_empty() {
    return;
  }
  let dir = run_dir(ctx, entry);
  let run_id = dir
    .file_name()
    .map(|name| name.to_string_lossy().into_owned())
    .unwrap_or_default();
  let sent = drills::notify::send_all(drill, entry, &run_id, &dir).await;
  for outcome in &sent {
    let to = outcome.host.as_deref().unwrap_or("(no destination)");
    if outcome.sent() {
      eprintln!(
        "drill {}: {} notification sent to {to}",
        drill.name, outcome.kind
      );
    } else {
      eprintln!(
        "warning: drill {}: {} notification to {to} failed after {} attempt(s): {}",
        drill.name, outcome.kind, outcome.attempts, outcome.message
      );
    }
  }
  let body = serde_json::json!({
    "event": drills::notify::event(entry.result),
    "notify": due,
    "sent": sent,
    "entry": entry,
  });
  let written = crate::state::store::create_private_dir(&dir).and_then(|()| {
    crate::state::store::write_private(
      &dir.join("notify.json"),
      serde_json::to_string_pretty(&body).unwrap_or_default(),
    )
  });
  if let Err(err) = written {
    eprintln!("warning: {}: {err}", dir.display());
  }
}

/// A measured duration (achieved RTO/RPO, run time, trend), as run summaries print it:
/// `6m14s`, `9.4s` — not to the nanosecond.
fn show(duration: Option<f64>) -> String {
  duration.map_or("-".into(), |seconds| {
    crate::actions::human(crate::runbook::from_seconds_saturating(seconds))
  })
}

/// A target, as the drill file wrote it (`15m`).
fn show_target(duration: Option<f64>) -> String {
  duration.map_or("-".into(), |seconds| {
    format_duration(crate::runbook::from_seconds_saturating(seconds))
  })
}

fn delta(seconds: Option<f64>) -> String {
  match seconds {
    None => "-".into(),
    Some(value) if value < 0.0 => format!("-{}", show(Some(-value))),
    Some(value) => format!("+{}", show(Some(value))),
  }
}

async fn history_command(ctx: &Context, name: Option<&str>) -> Result<Exit, Error> {
  let names: Vec<String> = match name {
    Some(name) => vec![find(ctx, name)?.name],
    None => load_all(ctx)?.into_iter().map(|drill| drill.name).collect(),
  };
  let s3 = ctx.s3_state().await;
  let mut json = Vec::new();
  let mut text = String::new();
  for name in &names {
    if let Some(s3) = &s3 {
      match history::pull(s3, ctx.store.root(), name).await {
        Ok(_) => {}
        Err(history::HistoryError::NewerFormat(newer)) => {
          return Err(Error::Usage(newer.to_string()))
        }
        Err(err) => eprintln!(
          "warning: cannot read drill history from {}: {err}",
          s3.location
        ),
      }
    }
    let entries = read_history(ctx, name)?;
    if ctx.output == Output::Text {
      text.push_str(&format!("{name}\n"));
      if entries.is_empty() {
        text.push_str("  no runs yet\n");
        continue;
      }
      text.push_str(&format!(
        "  {:<20} {:<12} {:<22} {:<22} {:<9} {:<10} {}\n",
        "DATE (UTC)", "RESULT", "RTO (TARGET)", "RPO (TARGET)", "DURATION", "Δ PREV", "Δ MEDIAN(5)"
      ));
    }
    for (index, entry) in entries.iter().enumerate() {
      let trend = history::trend(&entries, index);
      match ctx.output {
        Output::Json => json.push(serde_json::json!({"entry": entry, "trend": trend})),
        Output::Text => text.push_str(&format!(
          "  {:<20} {:<12} {:<22} {:<22} {:<9} {:<10} {}\n",
          entry.started_at.format("%Y-%m-%d %H:%M:%S"),
          entry.result,
          format!(
            "{} ({})",
            show(entry.rto_achieved_seconds),
            show_target(entry.rto_target_seconds)
          ),
          format!(
            "{} ({})",
            show(entry.rpo_achieved_seconds),
            show_target(entry.rpo_target_seconds)
          ),
          show(Some(entry.duration_seconds)),
          delta(trend.rto_delta_previous_seconds),
          delta(trend.rto_delta_median5_seconds),
        )),
      }
    }
  }
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::to_string_pretty(&json).unwrap_or_default()
    )),
    Output::Text => out(&text),
  }
  Ok(Exit::Succeeded)
}

/// SIGINT/SIGTERM as an interrupt count: the first stops gracefully (the running drill stops
/// scheduling steps and journals; the scheduler starts nothing new); the second exits at once.
fn interrupts() -> watch::Receiver<u32> {
  super::commands::interrupts(
    "finishing the current drill's in-flight calls, then stopping".into(),
    "An interrupted drill run can be resumed with `drctl resume`".into(),
  )
}

/// Runs the scheduler's fires through [`run_drill`].
struct CliRunner<'a> {
  ctx: &'a Context,
  signals: watch::Receiver<u32>,
}

#[async_trait::async_trait]
impl DrillRunner for CliRunner<'_> {
  async fn run(&self, drill: &Drill, fire: &Fire) -> Result<Verdict, String> {
    run_drill(
      self.ctx,
      drill,
      "scheduler",
      Some(fire.due),
      self.signals.clone(),
    )
    .await
    .map(|(_, entry)| {
      if entry.skipped() {
        Verdict::Skipped(entry.reasons.join("; "))
      } else {
        Verdict::Ran(entry.result)
      }
    })
    .map_err(|err| err.message().to_string())
  }

  /// Apply the region fences failovers left pending, once their region answers.
  async fn on_tick(&self) {
    let attempt = match super::fences::apply_pending(self.ctx, None, "scheduler").await {
      Ok(attempt) => attempt,
      Err(err) => {
        eprintln!("warning: pending fences: {}", err.message());
        return;
      }
    };
    for applied in &attempt.applied {
      if self.ctx.output == Output::Text {
        out(&format!(
          "applied pending fence {}: {}\n",
          applied.id, applied.summary
        ));
      }
    }
  }
}

pub async fn scheduler(ctx: &Context, args: &SchedulerArgs) -> Result<Exit, Error> {
  scheduler_with(ctx, args, interrupts()).await
}

/// The scheduler, stopping on `signals` (`drctl serve --scheduler` shares its own).
pub(super) async fn scheduler_with(
  ctx: &Context,
  args: &SchedulerArgs,
  signals: watch::Receiver<u32>,
) -> Result<Exit, Error> {
  let jitter = parse_duration(&args.jitter)
    .map_err(|err| Error::Usage(format!("--jitter `{}`: {err}", args.jitter)))?;
  let clock: Arc<dyn Clock> = match &args.now {
    None => Arc::new(SystemClock),
    Some(text) => {
      let base = DateTime::parse_from_rfc3339(text).map_err(|err| {
        Error::Usage(format!(
          "--now `{text}`: {err} (expected RFC 3339, e.g. 2027-01-15T00:00:00Z)"
        ))
      })?;
      Arc::new(TokioClock::new(base.with_timezone(&Utc)))
    }
  };
  let drills = load_all(ctx)?;
  // A flag no drill could honour is refused before anything fires.
  for drill in &drills {
    drill_backend(ctx, drill)?;
  }
  let claims = match ctx.s3_state().await {
    Some(s3) => ClaimStore::S3 {
      root: ctx.store.root().to_path_buf(),
      s3,
    },
    None => ClaimStore::Local(ctx.store.root().to_path_buf()),
  };
  let runner = CliRunner {
    ctx,
    signals: signals.clone(),
  };
  if ctx.output == Output::Text && !args.once {
    out(&format!(
      "scheduler: watching {} drill(s); Ctrl-C to stop\n",
      drills.len()
    ));
  }
  let mut scheduler = Scheduler::new(drills, claims, jitter);
  let mut worst = Exit::Succeeded;
  scheduler
    .run(
      clock,
      &runner,
      signals.clone(),
      args.once,
      |fire, outcome| {
        let line = match outcome {
          FireOutcome::Ran { result } => {
            let exit = result_code(*result);
            if exit != Exit::Succeeded {
              worst = exit;
            }
            format!(
              "fired {} (due {}): exit {}",
              fire.drill,
              fire.due,
              exit.code()
            )
          }
          FireOutcome::Claimed => format!(
            "skipped {} (due {}): another scheduler claimed it",
            fire.drill, fire.due
          ),
          // Held back by a freeze: recorded as skipped, not a failure of the scheduler.
          FireOutcome::Skipped { reason } => format!(
            "skipped {} (due {}): live drills are frozen ({reason})",
            fire.drill, fire.due
          ),
          FireOutcome::Error(err) => {
            worst = Exit::Failed;
            format!("error firing {} (due {}): {err}", fire.drill, fire.due)
          }
        };
        match ctx.output {
          Output::Json => out(&format!(
            "{}\n",
            serde_json::json!({"event": "fire", "drill": fire.drill, "due": fire.due, "skipped": fire.skipped, "outcome": line})
          )),
          Output::Text => out(&format!("{line}\n")),
        }
      },
    )
    .await;
  if *signals.borrow() > 0 {
    return Ok(Exit::Interrupted);
  }
  // `--once` reports the worst result of what it fired; the long-running loop ends only on a
  // signal.
  Ok(if args.once { worst } else { Exit::Succeeded })
}

/// A drill's history, oldest first; one a newer drctl wrote refuses the command (exit 2).
fn read_history(ctx: &Context, drill: &str) -> Result<Vec<HistoryEntry>, Error> {
  history::read(ctx.store.root(), drill).map_err(|newer| Error::Usage(newer.to_string()))
}
