//! Text and JSON renderings of plans, live runs and finished runs.

use std::{
  io::{IsTerminal, Write},
  sync::{Arc, Mutex},
  time::Duration,
};

use crate::{
  actions::human,
  cloud::Cloud,
  engine::Observer,
  plan::{Plan, PlanReport},
  runbook::{format_duration, format_human, HumanStyle, Runbook},
  state::{journal::Phase, status_text, Event, Record, Redactor, StepOutcome, Timeline},
};

use super::Output;

/// The live view of a run: one line per transition, with the elapsed (backend) time.
struct LiveText {
  redactor: Redactor,
  /// Steps that change the world (only those can report "no change needed").
  mutating: Vec<String>,
  started: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
  scale: f64,
  width: usize,
  color: bool,
}

/// JSON lines of journal records and waits, for other tools.
struct LiveJson {
  redactor: Redactor,
}

pub fn observer(output: Output, plan: &Plan, cloud: &Cloud, run_id: &str) -> Arc<dyn Observer> {
  let redactor = plan.redactor();
  match output {
    Output::Json => Arc::new(LiveJson { redactor }),
    Output::Text => {
      let runbook = &plan.runbook;
      let scale = cloud.clock.scale();
      let mut header = format!(
        "drctl run {run_id} · {} · backend {}",
        runbook.name, cloud.backend
      );
      if scale != 1.0 {
        header.push_str(&format!(" (simulated time ×{scale})"));
      }
      if let Some(rto) = runbook.objectives.rto {
        header.push_str(&format!(" · RTO {}", format_duration(rto)));
      }
      if let Some(rpo) = runbook.objectives.rpo {
        header.push_str(&format!(" · RPO {}", format_duration(rpo)));
      }
      if live_view() {
        let board = super::live::Board::new(
          redactor.redact(&header),
          &runbook
            .steps
            .iter()
            .map(|step| step.id.clone())
            .collect::<Vec<_>>(),
          runbook.objectives.rto,
          scale,
        );
        let color = std::env::var_os("NO_COLOR").is_none();
        return Arc::new(super::live::LiveTty::start(board, redactor, color));
      }
      eprintln!("{}", redactor.redact(&header));
      let width = runbook
        .steps
        .iter()
        .map(|step| step.id.len())
        .max()
        .unwrap_or(8);
      Arc::new(LiveText {
        redactor,
        mutating: runbook
          .steps
          .iter()
          .filter(|step| crate::plan::is_mutating(&step.call))
          .map(|step| step.id.clone())
          .collect(),
        started: Mutex::new(None),
        scale,
        width,
        color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
      })
    }
  }
}

/// The redrawn view is for a person at a terminal: stderr is a TTY that understands cursor
/// movement, and `DRCTL_PROGRESS=plain` was not asked for (then: one line per event).
fn live_view() -> bool {
  std::io::stderr().is_terminal()
    && std::env::var("TERM").map_or(true, |term| term != "dumb")
    && std::env::var("DRCTL_PROGRESS").map_or(true, |mode| mode != "plain")
}

impl LiveText {
  fn line(&self, record: &Record, mark: &str, color: &str, step: &str, text: &str) {
    let elapsed = {
      let mut started = self
        .started
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
      let start = *started.get_or_insert(record.ts);
      let wall = (record.ts - start).to_std().unwrap_or_default();
      crate::cloud::Clock::scaled(self.scale).to_modelled(wall)
    };
    let mark = if self.color {
      format!("\x1b[{color}m{mark}\x1b[0m")
    } else {
      mark.to_string()
    };
    let line = format!(
      "[{:>7}] {mark} {step:<width$}  {text}",
      format_human(elapsed, HumanStyle::Clock),
      width = self.width
    );
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", self.redactor.redact(&line));
  }
}

impl Observer for LiveText {
  fn record(&self, record: &Record) {
    let rollback = |phase: &Phase| {
      if *phase == Phase::Rollback {
        "rollback "
      } else {
        ""
      }
    };
    match &record.event {
      Event::RunStarted { .. } => {
        self.line(record, "●", "1", "run", "started");
      }
      Event::RunResumed {
        host, pid, user, ..
      } => {
        let by = if user.is_empty() {
          String::new()
        } else {
          format!(" by {user}")
        };
        self.line(
          record,
          "●",
          "1",
          "run",
          &format!("resumed on {host} (pid {pid}){by}"),
        );
      }
      Event::StepStarted {
        step,
        attempt,
        phase,
      } => {
        let again = if *attempt > 1 {
          format!(" (attempt {attempt})")
        } else {
          String::new()
        };
        self.line(
          record,
          "▶",
          "36",
          step,
          &format!("{}started{again}", rollback(phase)),
        );
      }
      Event::StepIntent {
        step,
        change,
        phase,
        ..
      } => {
        self.line(
          record,
          "→",
          "33",
          step,
          &format!("{}{change}", rollback(phase)),
        );
      }
      // The intent line already said what is being sent and where.
      Event::StepDispatched { .. } | Event::ProcessStarted { .. } => {}
      Event::StepSucceeded {
        step,
        summary,
        changed,
        phase,
        ..
      } => {
        let note = if *changed || !self.mutating.contains(step) {
          ""
        } else {
          " (no change needed)"
        };
        self.line(
          record,
          "✓",
          "32",
          step,
          &format!("{}{summary}{note}", rollback(phase)),
        );
      }
      Event::StepFailed {
        step,
        error,
        will_retry,
        backoff_ms,
        phase,
        ..
      } => {
        let retry = match (will_retry, backoff_ms) {
          (true, Some(ms)) => format!(" — retrying in {}", human(Duration::from_millis(*ms))),
          _ => String::new(),
        };
        let mark = if *will_retry { "!" } else { "✗" };
        self.line(
          record,
          mark,
          "31",
          step,
          &format!("{}{}{retry}", rollback(phase), error.message),
        );
      }
      Event::StepSkipped { step, reason } => {
        self.line(record, "-", "2", step, &format!("skipped: {reason}"))
      }
      Event::FencePending { step, region, .. } => self.line(
        record,
        "!",
        "33",
        step,
        &format!("fence pending: applied once {region} answers (drctl fence list)"),
      ),
      Event::ApprovalRequested { .. }
      | Event::ApprovalGranted { .. }
      | Event::ApprovalDenied { .. }
      | Event::ApprovalRefused { .. }
      | Event::ApprovalExpired { .. }
      | Event::RunCancelRequested { .. }
      | Event::ControlIgnored { .. } => {
        if let Some((step, text)) = super::control::describe(&record.event) {
          self.line(record, "?", "35", step.unwrap_or("run"), &text);
        }
      }
      Event::RunInterrupted { signal } => {
        self.line(record, "■", "33", "run", &format!("interrupted ({signal})"));
      }
      Event::LockLost { reason, .. } => {
        self.line(record, "■", "31", "run", &format!("stopped: {reason}"));
      }
      Event::RunFinished { status, .. } => {
        self.line(
          record,
          "●",
          "1",
          "run",
          &format!("finished: {}", status.as_str()),
        );
      }
      Event::RecoveryWaitStarted {
        condition,
        within_ms,
      } => self.line(
        record,
        "…",
        "2",
        "recovery",
        &format!(
          "waiting until {condition}, for at most {}",
          format_duration(Duration::from_millis(*within_ms))
        ),
      ),
      Event::Recovered { summary, .. } => self.line(
        record,
        "✓",
        "32",
        "recovery",
        &format!("recovered: {summary}"),
      ),
      Event::NotRecovered { last_error, .. } => self.line(
        record,
        "✗",
        "31",
        "recovery",
        &format!(
          "not recovered within the bound{}",
          last_error
            .as_deref()
            .map_or_else(String::new, |error| format!(": {error}"))
        ),
      ),
    }
  }

  fn waiting(&self, step: &str, status: &str) {
    let now = chrono::Utc::now();
    let record = Record {
      seq: 0,
      ts: now,
      event: Event::RunInterrupted {
        signal: String::new(),
      },
    };
    self.line(&record, "…", "2", step, status);
  }
}

impl Observer for LiveJson {
  /// Every line has `ts`, `event`, `step` (null for the run's own events) and `status` (what
  /// the event says about the step or the run), plus the journal record's own fields.
  fn record(&self, record: &Record) {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    let status = match &record.event {
      Event::RunStarted { .. } | Event::RunResumed { .. } | Event::StepStarted { .. } => {
        StepOutcome::Running.as_str()
      }
      Event::StepIntent { .. } | Event::StepDispatched { .. } | Event::ProcessStarted { .. } => {
        "applying"
      }
      Event::StepSucceeded { .. } => StepOutcome::Succeeded.as_str(),
      Event::StepFailed {
        will_retry: true, ..
      } => "retrying",
      Event::StepFailed { .. } => StepOutcome::Failed.as_str(),
      Event::StepSkipped { .. } => StepOutcome::Skipped.as_str(),
      Event::FencePending { .. } => "fence_pending",
      Event::ApprovalRequested { .. } | Event::ApprovalRefused { .. } => {
        StepOutcome::AwaitingApproval.as_str()
      }
      Event::ApprovalGranted { .. } => "approved",
      Event::ApprovalDenied { .. } => "denied",
      Event::ApprovalExpired { .. } => "approval_expired",
      Event::RunCancelRequested { .. } => "cancelling",
      Event::ControlIgnored { .. } => "request_ignored",
      Event::RunInterrupted { .. } => "interrupted",
      Event::LockLost { .. } => "lock_lost",
      Event::RunFinished { status, .. } => status.as_str(),
      Event::RecoveryWaitStarted { .. } => "awaiting_recovery",
      Event::Recovered { .. } => "recovered",
      Event::NotRecovered { .. } => "not_recovered",
    };
    if let Some(fields) = value.as_object_mut() {
      fields.entry("step").or_insert(serde_json::Value::Null);
      fields.insert("status".into(), status.into());
    }
    self.redactor.redact_json(&mut value);
    super::out(&format!("{value}\n"));
  }

  fn waiting(&self, step: &str, status: &str) {
    let value = serde_json::json!({
      "ts": chrono::Utc::now(),
      "event": "step_waiting",
      "step": step,
      "status": self.redactor.redact(status),
    });
    super::out(&format!("{value}\n"));
  }
}

fn duration_opt(duration: Option<Duration>) -> String {
  duration.map_or_else(|| "-".into(), human)
}

/// The end-of-run summary.
pub fn summary(timeline: &Timeline) -> String {
  let mut text = String::new();
  text.push_str(&format!(
    "\nRun {} · {} · {}\n",
    timeline.run_id, timeline.runbook, timeline.backend
  ));
  let width = timeline
    .steps
    .iter()
    .map(|step| step.id.len())
    .max()
    .unwrap_or(4)
    .max(4);
  text.push_str(&format!(
    "  {:<width$}  {:<10} {:>9} {:>9}  {}\n",
    "step", "outcome", "start", "duration", "attempts"
  ));
  for step in &timeline.steps {
    text.push_str(&format!(
      "  {:<width$}  {:<10} {:>9} {:>9}  {}\n",
      step.id,
      step.outcome,
      duration_opt(step.started),
      duration_opt(step.duration()),
      step.attempts,
    ));
  }
  for step in &timeline.rollbacks {
    text.push_str(&format!(
      "  {:<width$}  {:<10} {:>9} {:>9}  (rollback)\n",
      step.id,
      step.outcome,
      duration_opt(step.started),
      duration_opt(step.duration()),
    ));
  }
  let path = timeline.critical_path();
  if !path.is_empty() {
    text.push_str(&format!("  critical path: {}\n", path.join(" → ")));
  }
  for decision in &timeline.approvals {
    text.push_str(&format!("  approval: {}\n", decision.text()));
  }
  if let Some(recovery) = crate::report::RecoveryReport::from_timeline(timeline) {
    text.push_str(&format!("  recovery: {}\n", recovery.text()));
  }
  let objective =
    |name: &str, achieved: Option<Duration>, target: Option<Duration>, met: Option<bool>| {
      let verdict = match met {
        Some(true) => "met",
        Some(false) => "BREACHED",
        None => "not measured",
      };
      format!(
        "  {name} achieved {} / target {}  {verdict}\n",
        duration_opt(achieved),
        target.map_or("-".into(), format_duration)
      )
    };
  text.push_str(&objective(
    "RTO",
    timeline.rto_achieved,
    timeline.rto_target,
    timeline.rto_met(),
  ));
  match &timeline.rpo_unknown {
    // No bound to show: say so, with what is known, and never "met".
    Some(basis) => text.push_str(&format!(
      "  RPO achieved unknown / target {}  {}\n    basis: {basis}\n",
      timeline.rpo_target.map_or("-".into(), format_duration),
      if timeline.rpo_target.is_some() {
        "NOT MET (unknown)"
      } else {
        "no target"
      }
    )),
    None => text.push_str(&objective(
      "RPO",
      timeline.rpo_achieved,
      timeline.rpo_target,
      timeline.rpo_met(),
    )),
  }
  if timeline.time_scale != 1.0 {
    text.push_str(&format!(
      "  (times are simulated: the world ran ×{} faster than the wall clock)\n",
      timeline.time_scale
    ));
  }
  let status = status_text(timeline.status);
  text.push_str(&format!("  result: {status}"));
  if let Some(step) = &timeline.failed_step {
    text.push_str(&format!(" (step `{step}` failed)"));
  }
  text.push('\n');
  text
}

/// A timeline as JSON, with durations in seconds.
pub fn timeline_json(timeline: &Timeline) -> serde_json::Value {
  let secs =
    |duration: Option<Duration>| duration.map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0);
  let steps: Vec<serde_json::Value> = timeline
    .steps
    .iter()
    .map(|step| {
      serde_json::json!({
        "id": step.id,
        "action": step.action,
        "mutating": step.mutating,
        "recovery": step.recovery,
        "needs": step.needs,
        "outcome": step.outcome,
        "changed": step.changed,
        "attempts": step.attempts,
        "start_seconds": secs(step.started),
        "end_seconds": secs(step.ended),
        "duration_seconds": secs(step.duration()),
        "summary": step.summary,
        "error": step.error,
        "outputs": step.outputs,
        "data_loss_seconds": secs(step.data_loss.as_ref().and_then(|loss| loss.bound())),
      })
    })
    .collect();
  serde_json::json!({
    "run_id": timeline.run_id,
    "runbook": timeline.runbook,
    "runbook_path": timeline.runbook_path,
    "mode": timeline.mode,
    "backend": timeline.backend,
    "time_scale": timeline.time_scale,
    "params": timeline.params,
    "host": timeline.host,
    "user": timeline.user,
    "started_at": timeline.started_at,
    "finished_at": timeline.finished_at,
    "incident_start": timeline.incident_start,
    "status": timeline.status,
    "resumed": timeline.resumed,
    "failed_step": timeline.failed_step,
    "approvals": timeline.approvals,
    "objectives": {
      "rto_target_seconds": secs(timeline.rto_target),
      "rto_achieved_seconds": secs(timeline.rto_achieved),
      "rto_met": timeline.rto_met(),
      "rpo_target_seconds": secs(timeline.rpo_target),
      "rpo_achieved_seconds": secs(timeline.rpo_achieved),
      "rpo_met": timeline.rpo_met(),
      "rpo_unknown": timeline.rpo_unknown,
    },
    "critical_path": timeline.critical_path(),
    "steps": steps,
    "recovery": crate::report::RecoveryReport::from_timeline(timeline),
  })
}

/// `drctl plan` as text.
pub fn plan_text(report: &PlanReport, cloud: &Cloud) -> String {
  let mut text = format!(
    "Plan for {} ({}) on backend {}\n",
    report.runbook, report.path, cloud.backend
  );
  if !report.params.is_empty() {
    let params: Vec<String> = report
      .params
      .iter()
      .map(|(k, v)| format!("{k}={v}"))
      .collect();
    text.push_str(&format!("  params: {}\n", params.join(" ")));
  }
  text.push('\n');
  for step in &report.steps {
    let kind = if step.mutating {
      "mutating"
    } else {
      "read-only"
    };
    text.push_str(&format!(
      "  {} [{}] {} — {}\n",
      step.id,
      step.action,
      kind,
      step.status.as_str().replace('_', " ")
    ));
    if let Some(current) = &step.current {
      text.push_str(&format!("      now:    {current}\n"));
    }
    if let Some(change) = step.change.as_ref().filter(|change| !change.is_empty()) {
      text.push_str(&format!("      change: {change}\n"));
    }
  }
  text.push_str(&format!(
    "\n  critical path: {}\n  estimated duration: {} (sum of budgets on the critical path)",
    report.critical_path.join(" → "),
    report.estimated_duration
  ));
  if let Some(rto) = &report.rto {
    let fits = match report.fits_rto {
      Some(true) => "fits",
      _ => "does NOT fit",
    };
    text.push_str(&format!(" — {fits} the RTO of {rto}"));
  }
  text.push('\n');
  if let Some(wait) = &report.recovery_wait {
    text.push_str(&format!(
      "  then the wait for recovery (not estimated; the RTO runs to its end): {wait}\n"
    ));
  }
  if !report.missing_secrets.is_empty() {
    text.push_str(&format!(
      "  warning: secrets not set in the environment: {}\n",
      report.missing_secrets.join(", ")
    ));
  }
  let errors = report.probe_errors();
  if errors > 0 {
    text.push_str(&format!(
      "  error: {errors} step(s) could not be probed (status `error` above): this plan is \
       incomplete\n"
    ));
  }
  text.push_str(&format!(
    "  {} mutating step(s); nothing was changed (dry run).\n",
    report.mutating_steps
  ));
  text.push_str(&stability_text(&report.static_stability));
  text
}

/// The static-stability section of `drctl plan`: each step's endpoints, grouped by service,
/// plane and region, then the dependencies on the region being left with their alternatives.
fn stability_text(analysis: &crate::plan::stability::StaticStability) -> String {
  use crate::plan::stability::{EndpointUse, Severity};
  let mut text = String::from("\nStatic stability: the endpoints a live run calls\n");
  let place = |endpoint: &EndpointUse| {
    let regions = match endpoint.regions.as_slice() {
      [] => "region decided during the run".to_owned(),
      regions if endpoint.any_of => format!("any of {}", regions.join(", ")),
      regions => regions.join(", "),
    };
    match endpoint.endpoint {
      "global" => format!("global, served from {regions}"),
      _ => regions,
    }
  };
  let mut line = |who: &str, endpoints: &[EndpointUse], hosts: Vec<String>| {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for endpoint in endpoints {
      let key = format!(
        "{} {} plane ({})",
        endpoint.service,
        endpoint.plane,
        place(endpoint)
      );
      match groups.iter_mut().find(|(k, _)| *k == key) {
        Some((_, ops)) => ops.push(endpoint.operation),
        None => groups.push((key, vec![endpoint.operation])),
      }
    }
    let mut parts: Vec<String> = groups
      .into_iter()
      .map(|(key, ops)| format!("{key}: {}", ops.join(", ")))
      .collect();
    parts.extend(hosts.into_iter().map(|host| format!("https {host}")));
    if parts.is_empty() {
      parts.push("no AWS call".into());
    }
    text.push_str(&format!("  {who:<22} {}\n", parts[0]));
    for part in &parts[1..] {
      text.push_str(&format!("  {:<22} {part}\n", ""));
    }
  };
  if !analysis.run.is_empty() {
    line("(the run itself)", &analysis.run, Vec::new());
  }
  for step in &analysis.steps {
    let hosts = step
      .http_hosts
      .iter()
      .map(|host| host.host.clone())
      .collect();
    line(&step.step, &step.endpoints, hosts);
  }
  let Some(leaving) = &analysis.leaving else {
    text.push_str(
      "  (pass --leaving REGION to check them against the region the run fails away from)\n",
    );
    return text;
  };
  let region = &leaving.region;
  if analysis.dependencies.is_empty() {
    text.push_str(&format!(
      "  nothing depends on {region}, the region it fails away from ({})\n",
      leaving.from
    ));
    return text;
  }
  text.push_str(&format!(
    "\nDepends on {region}, the region it fails away from ({}):\n",
    leaving.from
  ));
  for dependency in &analysis.dependencies {
    let mark = match dependency.severity {
      Severity::Blocks => "BLOCKS",
      Severity::Fence => "fence",
      Severity::Caution => "caution",
    };
    let who = dependency.step.as_deref().unwrap_or("(the run itself)");
    text.push_str(&format!("  {mark:<7} {who}: {}\n", dependency.what));
    text.push_str(&format!("          why: {}\n", dependency.why));
    text.push_str(&format!("          instead: {}\n", dependency.alternative));
  }
  let blocking = analysis.blocking();
  if blocking > 0 {
    text.push_str(&format!(
      "  warning: {blocking} dependenc{} on {region} would stop a run while {region} is down\n",
      if blocking == 1 { "y" } else { "ies" }
    ));
  }
  text
}

/// A runbook's graph as a Mermaid flowchart.
pub fn mermaid(runbook: &Runbook) -> String {
  let mut text = String::from("flowchart TD\n");
  for step in &runbook.steps {
    let label = step.name.clone().unwrap_or_else(|| step.id.clone());
    let shape = if crate::plan::is_mutating(&step.call) {
      format!(
        "[\"{}<br/><i>{}</i>\"]",
        label.replace('"', "'"),
        step.call.action
      )
    } else {
      format!(
        "(\"{}<br/><i>{}</i>\")",
        label.replace('"', "'"),
        step.call.action
      )
    };
    text.push_str(&format!("  {}{shape}\n", node(&step.id)));
  }
  for step in &runbook.steps {
    for need in &step.needs {
      text.push_str(&format!("  {} --> {}\n", node(need), node(&step.id)));
    }
  }
  text
}

fn node(id: &str) -> String {
  id.replace('-', "_")
}

#[cfg(test)]
mod rpo_tests {
  use super::*;

  /// `drctl status` and a run's summary show an unknown RPO as unknown, with its basis, and
  /// never as met (nor as a measured `0s`).
  #[test]
  fn an_unknown_rpo_is_shown_with_its_basis_and_not_met() {
    let mut timeline = Timeline::from_records(&crate::report::fixture::records()).unwrap();
    timeline.rpo_achieved = None;
    timeline.rpo_unknown = Some("step `promote-db`: unknown: replication stopped at T".into());
    let text = summary(&timeline);
    assert!(
      text.contains("RPO achieved unknown / target 5m  NOT MET (unknown)"),
      "{text}"
    );
    assert!(
      text.contains("basis: step `promote-db`: unknown: replication stopped at T"),
      "{text}"
    );
    let json = timeline_json(&timeline);
    assert_eq!(json["objectives"]["rpo_met"], false, "{json}");
    assert_eq!(
      json["objectives"]["rpo_unknown"],
      "step `promote-db`: unknown: replication stopped at T"
    );
  }
}
