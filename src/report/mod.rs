//! Run reports: what a run did, for the on-call engineer, the auditor and the CI system.
//!
//! A [`Report`] is built from a run's journal (through [`Timeline`], so a report and the engine's
//! verdict can never disagree) plus, when the backend recorded one, the count of mutating API
//! calls per operation. Four renderers turn it into text: [`json`], [`markdown`], [`junit`] and
//! [`html`] (one self-contained file with an SVG Gantt timeline).
//!
//! Invariants:
//! * Every string in a report passed through the run's [`Redactor`] (the journal already holds
//!   redacted parameters; redacting again catches secrets that reached a summary or an error).
//! * Renderers escape every string they embed (XML, HTML, Markdown table cells); nothing from a
//!   journal is trusted as markup.
//! * Times are offsets from the run start in backend time (see `state::timeline`); JSON and JUnit
//!   carry them in seconds with millisecond precision.
//!
//! ## JSON fields (`"schema": "drctl.report/v1"`)
//!
//! | field | meaning |
//! |---|---|
//! | `schema` | always `drctl.report/v1`; a change to the fields below bumps it |
//! | `run_id`, `runbook`, `runbook_path` | which run of which runbook |
//! | `status` | `succeeded`, `breached`, `failed`, `interrupted`, `lock_lost` (stopped: another run took its lock), or `running` (no end recorded) |
//! | `mode`, `backend`, `time_scale` | `live`/`dry-run`; `sim`, `aws`, `sandbox`; simulated-time factor |
//! | `user`, `host` | who started the run (the operating-system account), where |
//! | `caller` | who the backend's credentials act as: `account`, `arn` (STS `GetCallerIdentity`; the simulator's stand-in); `null` when not recorded |
//! | `started_at`, `finished_at`, `incident_start` | RFC 3339 wall-clock times, to the second |
//! | `duration_seconds` | backend time from run start to its end (`null` while running) |
//! | `incident_lead_seconds` | how long before the run the incident began (counts toward RTO) |
//! | `resumed`, `failed_step` | how often the run was resumed; the step that failed it |
//! | `resumed_by[]` | each resume, oldest first: `at`, `host`, `user`, `caller` (as for the start) |
//! | `params` | parameter values, secrets redacted |
//! | `objectives[]` | `name` (`RTO`/`RPO`), `target_seconds`, `achieved_seconds`, `verdict` (`met`, `breached`, `not_measured`, `no_target`, `unknown`: never met, counts as breached), `basis` (with `unknown` only: what is known instead of a bound) |
//! | `critical_path[]` | step ids of the chain that determined the run's length |
//! | `steps[]`, `rollbacks[]` | `id`, `action`, `mutating`, `recovery`, `needs`, `outcome`, `critical`, `attempts`, `changed`, `start_seconds`, `end_seconds`, `duration_seconds`, `budget_seconds`, `data_loss_seconds`, `summary`, `error` (`message`, `code`, `request_id`, `http_status`, `retryable`), `outputs` |
//! | `outputs` | step id → output name → value, for steps that produced outputs |
//! | `api_calls` | `recorded` (false: the backend kept no log), `source`, `total`, `by_operation` (operation name → count of mutating calls) |
//! | `approvals[]` | each answer to an approval, and each cancel, in order: `step` (`null` for a cancel), `decision` (`granted`, `denied`, `refused`: it could not count under the two-person rule, `expired`, `cancel_requested`), `by`, `via` (`os_user`, `token`, `proxy_header`, `shared_token`; `null` for an expiry), `reason` (for `refused`: why), `at` |
//! | `always_steps_not_run_when` | the cases in which `always: true` steps do not run: `lock_lost`, `journal_unwritable`, `second_signal` (the same in every report) |

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::state::{DataLoss, Record, Redactor, StepError, StepSpan, Timeline};

pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;

/// The schema tag of the JSON rendering.
pub const SCHEMA: &str = "drctl.report/v1";

/// A report format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
  Json,
  Markdown,
  Junit,
  Html,
}

impl Format {
  /// The usual file extension.
  pub fn extension(&self) -> &'static str {
    match self {
      Format::Json => "json",
      Format::Markdown => "md",
      Format::Junit => "xml",
      Format::Html => "html",
    }
  }
}

/// Render a report in a format.
pub fn render(report: &Report, format: Format) -> String {
  match format {
    Format::Json => json::render(report),
    Format::Markdown => markdown::render(report),
    Format::Junit => junit::render(report),
    Format::Html => html::render(report),
  }
}

/// A wall-clock time as reports show it: to the second (the journal keeps the nanoseconds).
fn to_the_second(time: DateTime<Utc>) -> DateTime<Utc> {
  time.trunc_subsecs(0)
}

/// Who resumed the run, for the text formats: `2 time(s): T by alice as ARN on host; …`.
pub fn resumed_text(report: &Report) -> String {
  let each = report.resumed_by.iter().map(|resume| {
    let who = if resume.user.is_empty() {
      "an unrecorded user"
    } else {
      resume.user.as_str()
    };
    let identity = resume
      .caller
      .as_ref()
      .map_or_else(String::new, |caller| format!(" as {}", caller.arn));
    format!(
      "{} by {who}{identity} on {}",
      resume.at.to_rfc3339(),
      resume.host
    )
  });
  let each: Vec<String> = each.collect();
  if each.is_empty() {
    format!("{} time(s)", report.resumed)
  } else {
    format!("{} time(s): {}", report.resumed, each.join("; "))
  }
}

/// Who approved, denied or cancelled, for the text formats: one line per decision.
pub fn approvals_text(report: &Report) -> Vec<String> {
  report
    .approvals
    .iter()
    .map(crate::state::ControlDecision::text)
    .collect()
}

/// Who the backend's credentials acted as, for the text formats: `ARN (account N)`, or `-`.
pub fn caller_text(report: &Report) -> String {
  report.caller.as_ref().map_or_else(
    || "-".into(),
    |caller| format!("{} (account {})", caller.arn, caller.account),
  )
}

/// A run, as a report tells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
  pub schema: String,
  pub run_id: String,
  pub runbook: String,
  pub runbook_path: String,
  pub status: String,
  pub mode: String,
  pub backend: String,
  pub time_scale: f64,
  pub user: String,
  pub caller: Option<crate::cloud::CallerIdentity>,
  pub host: String,
  pub started_at: DateTime<Utc>,
  pub finished_at: Option<DateTime<Utc>>,
  pub incident_start: DateTime<Utc>,
  pub duration_seconds: Option<f64>,
  pub incident_lead_seconds: f64,
  pub resumed: u32,
  /// Who resumed the run, oldest first.
  #[serde(default)]
  pub resumed_by: Vec<crate::state::Resumption>,
  pub failed_step: Option<String>,
  pub params: BTreeMap<String, String>,
  pub objectives: Vec<Objective>,
  pub critical_path: Vec<String>,
  pub steps: Vec<StepReport>,
  pub rollbacks: Vec<StepReport>,
  pub outputs: BTreeMap<String, BTreeMap<String, String>>,
  pub api_calls: ApiCalls,
  pub always_steps_not_run_when: Vec<AlwaysStepsNotRun>,
  /// Approvals granted, denied, refused (two-person rule) or expired, and cancels, in order.
  #[serde(default)]
  pub approvals: Vec<crate::state::ControlDecision>,
}

/// A case in which `always: true` steps do not run. Every report names them all, so that a
/// clean-up that did not happen is never read as one that was forgotten, or as one that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlwaysStepsNotRun {
  /// The run's lock was taken or broken, or its lease expired: another run owns the world.
  LockLost,
  /// The journal could not be written: nothing may change that it cannot record.
  JournalUnwritable,
  /// A second SIGINT/SIGTERM: the process stops at once.
  SecondSignal,
}

impl AlwaysStepsNotRun {
  pub const ALL: [AlwaysStepsNotRun; 3] = [
    AlwaysStepsNotRun::LockLost,
    AlwaysStepsNotRun::JournalUnwritable,
    AlwaysStepsNotRun::SecondSignal,
  ];

  pub fn describe(self) -> &'static str {
    match self {
      AlwaysStepsNotRun::LockLost => "the run lost its lock (another run now owns the world)",
      AlwaysStepsNotRun::JournalUnwritable => "its journal could not be written",
      AlwaysStepsNotRun::SecondSignal => "a second interrupt stopped it at once",
    }
  }

  /// The sentence every human-readable report carries.
  pub fn note() -> String {
    let cases: Vec<&str> = Self::ALL.iter().map(|case| case.describe()).collect();
    format!(
      "always-steps run after a failure and after a first interrupt, but not when {}",
      cases.join("; when ")
    )
  }
}

/// An objective (RTO or RPO): its target, what the run achieved, and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
  pub name: String,
  pub target_seconds: Option<f64>,
  pub achieved_seconds: Option<f64>,
  pub verdict: Verdict,
  /// With the verdict `unknown`: what is known instead of a bound ("step `promote`: unknown:
  /// replication stopped at T; last measured lag L at T'"). Absent otherwise.
  #[serde(default, skip_serializing_if = "Option::is_none")]
  pub basis: Option<String>,
}

impl Objective {
  /// What was achieved, in words: a duration, `-`, or `unknown (BASIS)`.
  pub fn achieved_text(&self) -> String {
    match &self.basis {
      Some(basis) if self.verdict == Verdict::Unknown => format!("unknown ({basis})"),
      _ => human_opt(self.achieved_seconds),
    }
  }
}

/// Whether an objective held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
  Met,
  Breached,
  /// There is a target, but the run measured nothing (recovery did not complete, or no step
  /// reported a data-loss window).
  NotMeasured,
  /// The runbook sets no target.
  NoTarget,
  /// There is a target, but what was achieved could not be bounded (a replica's lag was
  /// unknown and the operator accepted data loss). Never met: counts as a breach (exit 3).
  Unknown,
}

impl Verdict {
  pub fn as_str(&self) -> &'static str {
    match self {
      Verdict::Met => "met",
      Verdict::Breached => "breached",
      Verdict::NotMeasured => "not measured",
      Verdict::NoTarget => "no target",
      Verdict::Unknown => "unknown",
    }
  }
}

/// A step's line in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
  pub id: String,
  pub action: String,
  pub mutating: bool,
  pub recovery: bool,
  pub needs: Vec<String>,
  /// `succeeded`, `failed`, `skipped`, `running`, `pending`, `rolled_back`.
  pub outcome: String,
  /// On the critical path.
  pub critical: bool,
  pub attempts: u32,
  pub changed: bool,
  pub start_seconds: Option<f64>,
  pub end_seconds: Option<f64>,
  pub duration_seconds: Option<f64>,
  pub budget_seconds: Option<f64>,
  pub data_loss_seconds: Option<f64>,
  pub summary: Option<String>,
  pub error: Option<ErrorReport>,
  pub outputs: BTreeMap<String, String>,
}

/// A step's (last) error, with what AWS said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
  pub message: String,
  /// The AWS error code (`Throttling`, `InvalidDBInstanceState`).
  pub code: Option<String>,
  pub request_id: Option<String>,
  pub http_status: Option<u16>,
  pub retryable: bool,
}

/// Mutating API calls the run made, per operation name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApiCalls {
  /// False when the backend kept no log of its calls (counts are then unknown, not zero).
  pub recorded: bool,
  /// Where the counts come from (`simulator operation log`).
  pub source: Option<String>,
  pub total: u64,
  pub by_operation: BTreeMap<String, u64>,
}

impl ApiCalls {
  /// No log of API calls exists for the run.
  pub fn not_recorded() -> ApiCalls {
    ApiCalls::default()
  }

  /// Count operation names from a log.
  pub fn count<I, S>(source: &str, operations: I) -> ApiCalls
  where
    I: IntoIterator<Item = S>,
    S: Into<String>,
  {
    let mut by_operation = BTreeMap::new();
    let mut total = 0;
    for operation in operations {
      *by_operation.entry(operation.into()).or_insert(0) += 1;
      total += 1;
    }
    ApiCalls {
      recorded: true,
      source: Some(source.to_string()),
      total,
      by_operation,
    }
  }
}

impl Report {
  /// Build a report from a run's journal. An error when the journal does not start with
  /// `run_started`, or when redaction cannot make the report safe (it fails closed: no report
  /// rather than one that might hold a secret). Every string passes through `redactor`.
  pub fn from_records(
    records: &[Record],
    api_calls: ApiCalls,
    redactor: &Redactor,
  ) -> Result<Report, String> {
    let timeline = Timeline::from_records(records)
      .ok_or_else(|| "the journal does not start with run_started".to_string())?;
    Report::from_timeline(&timeline, api_calls).redacted(redactor)
  }

  /// Build a report from a timeline (no redaction: see [`Report::redacted`]).
  pub fn from_timeline(timeline: &Timeline, api_calls: ApiCalls) -> Report {
    let critical_path = timeline.critical_path();
    let step = |span: &StepSpan| StepReport {
      id: span.id.clone(),
      action: span.action.clone(),
      mutating: span.mutating,
      recovery: span.recovery,
      needs: span.needs.clone(),
      outcome: span.outcome.clone(),
      critical: critical_path.contains(&span.id),
      attempts: span.attempts,
      changed: span.changed,
      start_seconds: seconds(span.started),
      end_seconds: seconds(span.ended),
      duration_seconds: seconds(span.duration()),
      budget_seconds: seconds(span.budget),
      data_loss_seconds: seconds(span.data_loss.as_ref().and_then(DataLoss::bound)),
      summary: span.summary.clone(),
      error: span.error.as_ref().map(error_report),
      outputs: span.outputs.clone(),
    };
    let steps: Vec<StepReport> = timeline.steps.iter().map(step).collect();
    let mut rollbacks: Vec<StepReport> = timeline.rollbacks.iter().map(step).collect();
    // A rollback is not on the run's critical path, even when its step is.
    rollbacks.iter_mut().for_each(|step| step.critical = false);
    let outputs = steps
      .iter()
      .filter(|step| !step.outputs.is_empty())
      .map(|step| (step.id.clone(), step.outputs.clone()))
      .collect();
    let incident_lead = (timeline.started_at - timeline.incident_start)
      .to_std()
      .unwrap_or_default();
    Report {
      schema: SCHEMA.into(),
      run_id: timeline.run_id.clone(),
      runbook: timeline.runbook.clone(),
      runbook_path: timeline.runbook_path.clone(),
      status: timeline
        .status
        .map_or("running", |status| status.as_str())
        .into(),
      mode: match timeline.mode {
        crate::state::RunMode::Live => "live",
        crate::state::RunMode::DryRun => "dry-run",
      }
      .into(),
      backend: timeline.backend.clone(),
      time_scale: timeline.time_scale,
      user: timeline.user.clone(),
      caller: timeline.caller.clone(),
      host: timeline.host.clone(),
      started_at: to_the_second(timeline.started_at),
      finished_at: timeline.finished_at.map(to_the_second),
      incident_start: to_the_second(timeline.incident_start),
      duration_seconds: seconds(timeline.finished_at.map(|end| timeline.offset(end))),
      incident_lead_seconds: round_ms(incident_lead.as_secs_f64()),
      resumed: timeline.resumed,
      resumed_by: timeline
        .resumed_by
        .iter()
        .map(|resume| crate::state::Resumption {
          at: to_the_second(resume.at),
          ..resume.clone()
        })
        .collect(),
      failed_step: timeline.failed_step.clone(),
      params: timeline.params.clone(),
      objectives: vec![
        objective("RTO", timeline.rto_target, timeline.rto_achieved, None),
        objective(
          "RPO",
          timeline.rpo_target,
          timeline.rpo_achieved,
          timeline.rpo_unknown.as_deref(),
        ),
      ],
      critical_path,
      steps,
      rollbacks,
      outputs,
      api_calls,
      always_steps_not_run_when: AlwaysStepsNotRun::ALL.to_vec(),
      approvals: timeline
        .approvals
        .iter()
        .map(|decision| crate::state::ControlDecision {
          at: to_the_second(decision.at),
          ..decision.clone()
        })
        .collect(),
    }
  }

  /// The same report with every string value passed through `redactor`, keys included. Fails
  /// closed: when the redacted report is no longer a report (a secret is part of its structure),
  /// there is no report, never the unredacted one.
  pub fn redacted(self, redactor: &Redactor) -> Result<Report, String> {
    if redactor.is_empty() {
      return Ok(self);
    }
    let refused =
      || "a secret is part of the report's structure; refusing to render it".to_string();
    let mut value = serde_json::to_value(&self).map_err(|_| refused())?;
    redactor.redact_json(&mut value);
    serde_json::from_value(value).map_err(|_| refused())
  }

  pub fn objective(&self, name: &str) -> Option<&Objective> {
    self
      .objectives
      .iter()
      .find(|objective| objective.name == name)
  }

  /// Where the RTO target falls on the timeline: seconds after the run start (the incident may
  /// have begun before the run, which eats into the target). `None` without a target.
  pub fn rto_deadline_seconds(&self) -> Option<f64> {
    let target = self.objective("RTO")?.target_seconds?;
    Some(target - self.incident_lead_seconds)
  }
}

fn error_report(error: &StepError) -> ErrorReport {
  ErrorReport {
    message: error.message.clone(),
    code: error.code.clone(),
    request_id: error.request_id.clone(),
    http_status: error.http_status,
    retryable: error.retryable,
  }
}

/// `unknown`: the basis of an achieved value that could not be bounded (it wins over any
/// bound measured by other steps: the run's data loss is then unknown).
fn objective(
  name: &str,
  target: Option<Duration>,
  achieved: Option<Duration>,
  unknown: Option<&str>,
) -> Objective {
  if let Some(basis) = unknown {
    return Objective {
      name: name.into(),
      target_seconds: seconds(target),
      achieved_seconds: None,
      verdict: if target.is_some() {
        Verdict::Unknown
      } else {
        Verdict::NoTarget
      },
      basis: Some(basis.to_string()),
    };
  }
  let verdict = match (target, achieved) {
    (None, _) => Verdict::NoTarget,
    (Some(_), None) => Verdict::NotMeasured,
    (Some(target), Some(achieved)) if achieved <= target => Verdict::Met,
    (Some(_), Some(_)) => Verdict::Breached,
  };
  Objective {
    name: name.into(),
    target_seconds: seconds(target),
    achieved_seconds: seconds(achieved),
    verdict,
    basis: None,
  }
}

fn round_ms(secs: f64) -> f64 {
  (secs * 1000.0).round() / 1000.0
}

fn seconds(duration: Option<Duration>) -> Option<f64> {
  duration.map(|duration| round_ms(duration.as_secs_f64()))
}

/// A duration for people: `850ms`, `4.2s`, `5m12s`, `1h05m`.
pub fn human(secs: f64) -> String {
  if secs < 0.0 {
    return format!("-{}", human(-secs));
  }
  if secs < 1.0 && secs > 0.0 {
    return format!("{}ms", (secs * 1000.0).round());
  }
  if secs < 10.0 && secs.fract() > 0.0005 {
    return format!("{secs:.1}s");
  }
  let whole = secs.round() as u64;
  if whole < 60 {
    format!("{whole}s")
  } else if whole < 3600 {
    if whole.is_multiple_of(60) {
      format!("{}m", whole / 60)
    } else {
      format!("{}m{:02}s", whole / 60, whole % 60)
    }
  } else {
    format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
  }
}

/// `human`, or `-` when there is nothing.
pub fn human_opt(secs: Option<f64>) -> String {
  secs.map_or_else(|| "-".into(), human)
}

/// Escape text for XML and HTML, in content and in quoted attributes. Characters XML 1.0 does
/// not allow at all (most C0 controls) become U+FFFD, so the document stays well-formed.
pub fn escape_xml(text: &str) -> String {
  let mut out = String::with_capacity(text.len());
  for ch in text.chars() {
    match ch {
      '&' => out.push_str("&amp;"),
      '<' => out.push_str("&lt;"),
      '>' => out.push_str("&gt;"),
      '"' => out.push_str("&quot;"),
      '\'' => out.push_str("&#39;"),
      '\n' => out.push_str("&#10;"),
      '\r' => out.push_str("&#13;"),
      '\t' => out.push_str("&#9;"),
      ch if (ch as u32) < 0x20 || ch == '\u{FFFE}' || ch == '\u{FFFF}' => out.push('\u{FFFD}'),
      ch => out.push(ch),
    }
  }
  out
}

/// An error's AWS details in one line: `code Throttling · HTTP 400 · request id abc`.
pub fn error_details(error: &ErrorReport) -> String {
  let mut text = String::new();
  if let Some(code) = &error.code {
    let _ = write!(text, "code {code}");
  }
  if let Some(status) = error.http_status {
    if !text.is_empty() {
      text.push_str(" · ");
    }
    let _ = write!(text, "HTTP {status}");
  }
  if let Some(id) = &error.request_id {
    if !text.is_empty() {
      text.push_str(" · ");
    }
    let _ = write!(text, "request id {id}");
  }
  text
}

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
pub(crate) mod test_xml;

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn builds_objectives_outputs_and_the_critical_path_from_a_journal() {
    let report = fixture::report();
    assert_eq!(report.schema, SCHEMA);
    assert_eq!(report.status, "failed");
    assert_eq!(report.user, "alice");
    assert_eq!(report.steps.len(), 4);
    let rto = report.objective("RTO").unwrap();
    assert_eq!(rto.target_seconds, Some(900.0));
    assert_eq!(rto.verdict, Verdict::NotMeasured);
    let rpo = report.objective("RPO").unwrap();
    assert_eq!(rpo.achieved_seconds, Some(4.0));
    assert_eq!(rpo.verdict, Verdict::Met);
    assert_eq!(report.critical_path, ["verify-outage", "promote-db"]);
    assert_eq!(report.outputs["promote-db"]["endpoint"], "db.example");
    let failed = &report.steps[2];
    assert_eq!(failed.outcome, "failed");
    assert_eq!(failed.attempts, 2);
    let error = failed.error.as_ref().unwrap();
    assert_eq!(error.code.as_deref(), Some("Throttling"));
    assert_eq!(error.request_id.as_deref(), Some("req-42"));
    assert!(report.api_calls.recorded);
    assert_eq!(
      report.api_calls.by_operation[crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name],
      1
    );
  }

  /// The journal keeps nanoseconds; every format shows whole seconds, and the operator: the OS
  /// user and the cloud caller identity.
  #[test]
  fn every_format_shows_times_to_the_second_and_who_ran_it() {
    let report = fixture::report();
    assert_eq!(report.started_at.timestamp_subsec_nanos(), 0);
    for format in [Format::Json, Format::Markdown, Format::Junit, Format::Html] {
      let text = render(&report, format);
      assert!(!text.contains("03:00:00.1"), "{format:?}: {text}");
      assert!(!text.contains(".123456789"), "{format:?}");
      assert!(
        text.contains("2024-03-01T03:00:00+00:00") || text.contains("2024-03-01T03:00:00Z"),
        "{format:?}: {text}"
      );
      assert!(text.contains("alice"), "{format:?}");
      assert!(
        text.contains("arn:aws:iam::123456789012:user/alice"),
        "{format:?}: {text}"
      );
      assert!(text.contains("123456789012"), "{format:?}");
    }
    let markdown = render(&report, Format::Markdown);
    assert!(
      markdown.contains(
        "| Cloud identity | arn:aws:iam::123456789012:user/alice (account 123456789012) |"
      ),
      "{markdown}"
    );
  }

  #[test]
  fn every_format_names_the_cases_in_which_always_steps_do_not_run() {
    let report = fixture::report();
    let json: serde_json::Value = serde_json::from_str(&json::render(&report)).unwrap();
    assert_eq!(
      json["always_steps_not_run_when"],
      serde_json::json!(["lock_lost", "journal_unwritable", "second_signal"])
    );
    for format in [Format::Markdown, Format::Html, Format::Junit] {
      let text = render(&report, format);
      for words in [
        "lost its lock",
        "journal could not be written",
        "second interrupt",
      ] {
        assert!(text.contains(words), "{format:?} lacks `{words}`:\n{text}");
      }
    }
  }

  #[test]
  fn redacts_every_string() {
    let records = fixture::records();
    let redactor = Redactor::new([("secrets.S".to_string(), "hunter2-secret".to_string())]);
    let report = Report::from_records(&records, ApiCalls::not_recorded(), &redactor).unwrap();
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(text.contains("***"), "{text}");
  }

  #[test]
  fn a_report_that_redaction_breaks_is_refused_not_rendered_unredacted() {
    let records = fixture::records();
    // `status` is a key of every report: redacting it leaves no report. The run's other
    // secret must not come out in clear because of that.
    let redactor = Redactor::new([
      ("secrets.KEY".to_string(), "status".to_string()),
      ("secrets.S".to_string(), "hunter2-secret".to_string()),
    ]);
    let refused = Report::from_records(&records, ApiCalls::not_recorded(), &redactor);
    assert!(refused.is_err(), "{refused:?}");
  }

  #[test]
  fn formats_durations_for_people() {
    assert_eq!(human(0.25), "250ms");
    assert_eq!(human(4.2), "4.2s");
    assert_eq!(human(4.0), "4s");
    assert_eq!(human(312.0), "5m12s");
    assert_eq!(human(900.0), "15m");
    assert_eq!(human(3900.0), "1h05m");
  }

  #[test]
  fn escapes_markup_and_forbidden_characters() {
    assert_eq!(
      escape_xml("<a href=\"x\">&'\u{1}"),
      "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{FFFD}"
    );
  }
}

#[cfg(test)]
mod approval_tests {
  use super::*;
  use crate::state::{control::IdentityVia, Event};

  /// The fixture's run with a refused, then a granted approval and a cancel, the reason holding
  /// a secret and markup.
  fn report() -> Report {
    let mut records = fixture::records();
    let at = records[0].ts + chrono::Duration::seconds(5);
    let next = records.len() as u64 + 1;
    let events = [
      Event::ApprovalRefused {
        step: "promote-db".into(),
        by: "alice".into(),
        via: IdentityVia::OsUser,
        why: "alice started the run".into(),
        at,
        nonce: Some("n1".into()),
      },
      Event::ApprovalGranted {
        step: "promote-db".into(),
        by: "bob".into(),
        via: IdentityVia::Token,
        reason: Some("<b>lag ok</b> hunter2-secret".into()),
        at,
        nonce: Some("n2".into()),
      },
      Event::RunCancelRequested {
        by: "carol".into(),
        via: IdentityVia::ProxyHeader,
        reason: None,
        at,
        nonce: "n3".into(),
      },
    ];
    records.extend(events.into_iter().enumerate().map(|(i, event)| Record {
      seq: next + i as u64,
      ts: at,
      event,
    }));
    let redactor = Redactor::new([("secrets.S".to_string(), "hunter2-secret".to_string())]);
    Report::from_records(&records, ApiCalls::not_recorded(), &redactor).unwrap()
  }

  #[test]
  fn every_format_says_who_approved_refused_or_cancelled_when_and_why() {
    let report = report();
    let decisions: Vec<_> = report
      .approvals
      .iter()
      .map(|decision| (decision.decision, decision.by.clone().unwrap()))
      .collect();
    use crate::state::Decision::*;
    assert_eq!(
      decisions,
      [
        (Refused, "alice".into()),
        (Granted, "bob".into()),
        (CancelRequested, "carol".into())
      ]
    );
    let granted = "step promote-db: granted by bob (token) at 2024-03-01T03:00:05Z";
    for format in [Format::Json, Format::Markdown, Format::Junit, Format::Html] {
      let text = render(&report, format);
      assert!(!text.contains("hunter2-secret"), "{format:?}: {text}");
      if matches!(format, Format::Junit | Format::Html) {
        assert!(
          !text.contains("<b>lag"),
          "{format:?} does not escape the reason"
        );
      }
      assert!(text.contains("carol"), "{format:?}: {text}");
      if format == Format::Json {
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["approvals"][1]["by"], "bob");
        assert_eq!(json["approvals"][1]["via"], "token");
        assert_eq!(json["approvals"][1]["at"], "2024-03-01T03:00:05Z");
        assert_eq!(json["approvals"][0]["reason"], "alice started the run");
      } else {
        assert!(text.contains(granted), "{format:?}: {text}");
      }
    }
  }
}
