//! The Markdown rendering: for a ticket, a post-mortem or a pull request. Tables throughout; every
//! cell is escaped so a summary can neither break a table nor inject HTML.

use std::fmt::Write as _;

use super::{error_details, human, human_opt, Report, StepReport, Verdict};
use crate::state::StepOutcome;

/// Escape text for a Markdown table cell: HTML-significant characters as entities, pipes and
/// backticks backslash-escaped, line breaks as spaces.
pub fn cell(text: &str) -> String {
  let mut out = String::with_capacity(text.len());
  for ch in text.chars() {
    match ch {
      '&' => out.push_str("&amp;"),
      '<' => out.push_str("&lt;"),
      '>' => out.push_str("&gt;"),
      '|' => out.push_str("\\|"),
      '`' => out.push_str("\\`"),
      '*' | '_' | '[' | ']' | '\\' => {
        out.push('\\');
        out.push(ch);
      }
      '\n' | '\r' => out.push(' '),
      ch => out.push(ch),
    }
  }
  out
}

fn opt(text: Option<&str>) -> String {
  text.map_or_else(|| "-".into(), cell)
}

pub fn render(report: &Report) -> String {
  let mut md = String::new();
  let _ = writeln!(
    md,
    "# Run report: {} — {}\n",
    cell(&report.runbook),
    cell(&report.status_text().to_uppercase())
  );
  md.push_str("| | |\n|---|---|\n");
  let mut rows = vec![
    ("Run", report.run_id.clone()),
    ("Runbook", super::runbook_text(report)),
    ("Status", report.status_text().into()),
  ];
  rows.extend(super::run_facts(report));
  for (name, value) in rows {
    let _ = writeln!(md, "| {name} | {} |", cell(&value));
  }
  if report.resumed > 0 {
    let _ = writeln!(md, "| Resumed | {} |", cell(&super::resumed_text(report)));
  }
  if let Some(step) = &report.failed_step {
    let _ = writeln!(md, "| Failed step | {} |", cell(step));
  }
  if let Some(recovery) = super::recovery_text(report) {
    let _ = writeln!(md, "| Recovery | {} |", cell(&recovery));
  }
  if report.time_scale != 1.0 {
    let _ = writeln!(
      md,
      "\nTimes are simulated: the world ran ×{} faster than the wall clock.",
      report.time_scale
    );
  }

  if !report.approvals.is_empty() {
    md.push_str("\n## Approvals\n\n");
    for line in super::approvals_text(report) {
      let _ = writeln!(md, "- {}", cell(&line));
    }
  }

  md.push_str("\n## Parameters\n\n");
  if report.params.is_empty() {
    md.push_str("None.\n");
  } else {
    md.push_str("| name | value |\n|---|---|\n");
    for (name, value) in &report.params {
      let _ = writeln!(md, "| {} | {} |", cell(name), cell(value));
    }
  }

  md.push_str(
    "\n## Objectives\n\n| objective | target | achieved | verdict |\n|---|---|---|---|\n",
  );
  for objective in &report.objectives {
    let verdict = match objective.verdict {
      Verdict::Met => "met".to_string(),
      Verdict::Breached => "**BREACHED**".to_string(),
      Verdict::Unknown => "**UNKNOWN** (not met)".to_string(),
      other => other.as_str().to_string(),
    };
    let _ = writeln!(
      md,
      "| {} | {} | {} | {verdict} |",
      cell(&objective.name),
      human_opt(objective.target_seconds),
      cell(&objective.achieved_text()),
    );
  }

  md.push_str("\n## Timeline\n\n");
  if !report.critical_path.is_empty() {
    let path: Vec<String> = report.critical_path.iter().map(|id| cell(id)).collect();
    let _ = writeln!(md, "Critical path: {}\n", path.join(" → "));
  }
  step_table(&mut md, &report.steps);
  if !report.rollbacks.is_empty() {
    md.push_str("\n### Rollbacks\n\n");
    step_table(&mut md, &report.rollbacks);
  }

  let failed: Vec<&StepReport> = report
    .steps
    .iter()
    .chain(&report.rollbacks)
    .filter(|step| step.error.is_some())
    .collect();
  if !failed.is_empty() {
    md.push_str("\n## Errors\n\n| step | outcome | error | AWS code | request id | HTTP |\n|---|---|---|---|---|---|\n");
    for step in failed {
      if let Some(error) = &step.error {
        let _ = writeln!(
          md,
          "| {} | {} | {} | {} | {} | {} |",
          cell(&step.id),
          cell(step.outcome.as_str()),
          cell(&error.message),
          opt(error.code.as_deref()),
          opt(error.request_id.as_deref()),
          error
            .http_status
            .map_or_else(|| "-".into(), |status| status.to_string()),
        );
      }
    }
  }

  md.push_str("\n## Outputs\n\n");
  if report.outputs.is_empty() {
    md.push_str("None.\n");
  } else {
    md.push_str("| step | output | value |\n|---|---|---|\n");
    for (step, outputs) in &report.outputs {
      for (name, value) in outputs {
        let _ = writeln!(md, "| {} | {} | {} |", cell(step), cell(name), cell(value));
      }
    }
  }

  md.push_str("\n## API calls\n\n");
  if !report.api_calls.recorded {
    md.push_str("Not recorded (the backend keeps no log of its calls).\n");
  } else {
    let source = report
      .api_calls
      .source
      .as_deref()
      .unwrap_or("operation log");
    let _ = writeln!(
      md,
      "{} mutating call(s), from the {}.\n",
      report.api_calls.total,
      cell(source)
    );
    if !report.api_calls.by_operation.is_empty() {
      md.push_str("| operation | calls |\n|---|---:|\n");
      for (operation, count) in &report.api_calls.by_operation {
        let _ = writeln!(md, "| {} | {count} |", cell(operation));
      }
    }
  }
  let _ = writeln!(md, "\n> Note: {}.", super::AlwaysStepsNotRun::note());
  md
}

fn step_table(md: &mut String, steps: &[StepReport]) {
  md.push_str(
    "| step | action | outcome | start | end | duration | attempts | summary |\n\
     |---|---|---|---:|---:|---:|---:|---|\n",
  );
  for step in steps {
    let id = if step.critical {
      format!("**{}**", cell(&step.id))
    } else {
      cell(&step.id)
    };
    let mut summary = step.summary.as_deref().map(cell).unwrap_or_default();
    if let Some(error) = &step.error {
      if step.outcome == StepOutcome::Failed {
        let details = error_details(error);
        if !summary.is_empty() {
          summary.push_str("; ");
        }
        summary.push_str(&cell(&error.message));
        if !details.is_empty() {
          let _ = write!(summary, " ({})", cell(&details));
        }
      }
    }
    let _ = writeln!(
      md,
      "| {id} | {} | {} | {} | {} | {} | {} | {} |",
      cell(&step.action),
      cell(step.outcome.as_str()),
      step.start_seconds.map_or_else(|| "-".into(), human),
      step.end_seconds.map_or_else(|| "-".into(), human),
      human_opt(step.duration_seconds),
      step.attempts,
      if summary.is_empty() {
        "-".into()
      } else {
        summary
      },
    );
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::report::fixture;

  #[test]
  fn markdown_has_tables_for_objectives_steps_errors_outputs_and_api_calls() {
    let md = render(&fixture::report());
    assert!(
      md.starts_with("# Run report: regional-failover — FAILED"),
      "{md}"
    );
    assert!(md.contains("| User | alice |"), "{md}");
    assert!(md.contains("| RTO | 15m | - | not measured |"), "{md}");
    assert!(md.contains("| RPO | 5m | 4s | met |"), "{md}");
    assert!(
      md.contains("| scale-standby | failed | Rate exceeded &lt;again&gt; &amp; gave up | Throttling | req-42 | 400 |"),
      "{md}"
    );
    assert!(
      md.contains("| **verify-outage** | route53.health\\_check |"),
      "{md}"
    );
    assert!(
      md.contains("| promote-db | endpoint | db.example |"),
      "{md}"
    );
    assert!(md.contains("| UpdateService | 2 |"), "{md}");
    assert!(!md.contains("<script>"), "{md}");
    assert!(md.contains("&lt;script&gt;"), "{md}");
  }

  #[test]
  fn markdown_says_when_api_calls_were_not_recorded() {
    let md = render(&fixture::succeeded_report());
    assert!(md.contains("Not recorded"), "{md}");
    assert!(md.contains("— SUCCEEDED"), "{md}");
  }

  #[test]
  fn cells_cannot_break_a_table() {
    assert_eq!(cell("a|b\nc"), "a\\|b c");
  }
}
