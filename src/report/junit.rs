//! The JUnit XML rendering, so CI systems show a drill natively: one `<testsuite>` for the run,
//! one `<testcase>` per step (classname `drctl.<runbook>.steps`) and one per objective (classname
//! `drctl.<runbook>.objectives`). A failed step or a breached objective is a `<failure>`; a
//! skipped step, a step the run never reached and an objective without a target or measurement
//! are `<skipped>`. `time` attributes are seconds.

use std::fmt::Write as _;

use super::{error_details, escape_xml as esc, human_opt, Report, StepReport, Verdict};
use crate::state::StepOutcome;

/// How a testcase ended.
enum CaseResult {
  Passed,
  Failed {
    message: String,
    kind: String,
    body: String,
  },
  Skipped(String),
}

fn step_result(step: &StepReport) -> CaseResult {
  match step.outcome {
    StepOutcome::Succeeded | StepOutcome::RolledBack => CaseResult::Passed,
    StepOutcome::Failed => {
      let (message, kind, body) = match &step.error {
        Some(error) => {
          let details = error_details(error);
          let mut body = format!("{}\n", error.message);
          if !details.is_empty() {
            let _ = writeln!(body, "{details}");
          }
          let _ = writeln!(body, "attempts: {}", step.attempts);
          (
            error.message.clone(),
            error.code.clone().unwrap_or_else(|| "StepFailed".into()),
            body,
          )
        }
        None => (
          "the step failed".to_string(),
          "StepFailed".to_string(),
          format!("attempts: {}\n", step.attempts),
        ),
      };
      CaseResult::Failed {
        message,
        kind,
        body,
      }
    }
    StepOutcome::Skipped => CaseResult::Skipped(
      step
        .summary
        .clone()
        .unwrap_or_else(|| "skipped".to_string()),
    ),
    StepOutcome::Running => CaseResult::Skipped("the run ended while this step was running".into()),
    StepOutcome::AwaitingApproval => {
      CaseResult::Skipped("the run ended while this step waited for approval".into())
    }
    StepOutcome::Pending => CaseResult::Skipped("the run never reached this step".into()),
  }
}

fn testcase(
  xml: &mut String,
  name: &str,
  classname: &str,
  time: f64,
  result: &CaseResult,
  out: &str,
) {
  let _ = write!(
    xml,
    "    <testcase name=\"{}\" classname=\"{}\" time=\"{time:.3}\"",
    esc(name),
    esc(classname)
  );
  if matches!(result, CaseResult::Passed) && out.is_empty() {
    xml.push_str("/>\n");
    return;
  }
  xml.push_str(">\n");
  match result {
    CaseResult::Passed => {}
    CaseResult::Failed {
      message,
      kind,
      body,
    } => {
      let _ = writeln!(
        xml,
        "      <failure message=\"{}\" type=\"{}\">{}</failure>",
        esc(message),
        esc(kind),
        esc(body)
      );
    }
    CaseResult::Skipped(message) => {
      let _ = writeln!(xml, "      <skipped message=\"{}\"/>", esc(message));
    }
  }
  if !out.is_empty() {
    let _ = writeln!(xml, "      <system-out>{}</system-out>", esc(out));
  }
  xml.push_str("    </testcase>\n");
}

pub fn render(report: &Report) -> String {
  let suite = format!("drctl.{}", report.runbook);
  let mut cases = String::new();
  let (mut tests, mut failures, mut skipped) = (0, 0, 0);
  let mut count = |result: &CaseResult| {
    tests += 1;
    match result {
      CaseResult::Passed => {}
      CaseResult::Failed { .. } => failures += 1,
      CaseResult::Skipped(_) => skipped += 1,
    }
  };
  for step in &report.steps {
    let result = step_result(step);
    count(&result);
    let mut out = format!("action: {}\noutcome: {}\n", step.action, step.outcome);
    let _ = writeln!(
      out,
      "start: {} · end: {} · attempts: {}",
      human_opt(step.start_seconds),
      human_opt(step.end_seconds),
      step.attempts
    );
    if let Some(summary) = &step.summary {
      let _ = writeln!(out, "summary: {summary}");
    }
    for (name, value) in &step.outputs {
      let _ = writeln!(out, "output {name}: {value}");
    }
    testcase(
      &mut cases,
      &step.id,
      &format!("{suite}.steps"),
      step.duration_seconds.unwrap_or(0.0),
      &result,
      &out,
    );
  }
  for objective in &report.objectives {
    let result = match objective.verdict {
      Verdict::Met => CaseResult::Passed,
      Verdict::Breached => CaseResult::Failed {
        message: match (&report.recovery, objective.achieved_seconds) {
          // Not recovered within `recovered_when`'s bound: nothing was achieved; say why.
          (Some(recovery), None)
            if objective.name == "RTO"
              && recovery.outcome == crate::state::RecoveryOutcome::NotRecovered =>
          {
            format!(
              "RTO breached: not recovered: {} did not hold within {} of the run's last step \
               (target {})",
              recovery.condition,
              super::human(recovery.within_seconds),
              human_opt(objective.target_seconds)
            )
          }
          _ => format!(
            "{} breached: achieved {} against a target of {}",
            objective.name,
            human_opt(objective.achieved_seconds),
            human_opt(objective.target_seconds)
          ),
        },
        kind: "ObjectiveBreached".into(),
        body: String::new(),
      },
      Verdict::NotMeasured => CaseResult::Skipped(format!(
        "{} not measured (target {})",
        objective.name,
        human_opt(objective.target_seconds)
      )),
      Verdict::NoTarget => {
        CaseResult::Skipped(format!("the runbook sets no {} target", objective.name))
      }
      Verdict::Unknown => CaseResult::Failed {
        message: format!(
          "{} not met: achieved {} against a target of {}",
          objective.name,
          objective.achieved_text(),
          human_opt(objective.target_seconds)
        ),
        kind: "ObjectiveUnknown".into(),
        body: String::new(),
      },
    };
    count(&result);
    let out = format!(
      "target: {} · achieved: {} · verdict: {}\n",
      human_opt(objective.target_seconds),
      objective.achieved_text(),
      objective.verdict.as_str()
    );
    testcase(
      &mut cases,
      &objective.name,
      &format!("{suite}.objectives"),
      objective.achieved_seconds.unwrap_or(0.0),
      &result,
      &out,
    );
  }

  let time = report.duration_seconds.unwrap_or(0.0);
  let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  let _ = writeln!(
    xml,
    "<testsuites name=\"drctl\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">"
  );
  let _ = writeln!(
    xml,
    "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{}\" hostname=\"{}\" id=\"{}\">",
    esc(&suite),
    report.started_at.format("%Y-%m-%dT%H:%M:%S"),
    esc(&report.host),
    esc(&report.run_id),
  );
  xml.push_str("    <properties>\n");
  let mut properties: Vec<(String, String)> = vec![
    ("run_id".into(), report.run_id.clone()),
    ("runbook".into(), report.runbook.clone()),
    ("runbook_path".into(), report.runbook_path.clone()),
    ("status".into(), report.status_text().into()),
    ("mode".into(), report.mode.clone()),
    ("backend".into(), report.backend.clone()),
    ("user".into(), report.user.clone()),
    ("cloud_identity".into(), super::caller_text(report)),
    ("host".into(), report.host.clone()),
    ("started_at".into(), report.started_at.to_rfc3339()),
    ("critical_path".into(), report.critical_path.join(" ")),
    (
      "always_steps_not_run_when".into(),
      super::AlwaysStepsNotRun::note(),
    ),
  ];
  if let Some(finished) = report.finished_at {
    properties.push(("finished_at".into(), finished.to_rfc3339()));
  }
  if report.resumed > 0 {
    properties.push(("resumed".into(), super::resumed_text(report)));
  }
  if let Some(recovery) = super::recovery_text(report) {
    properties.push(("recovery".into(), recovery));
  }
  for (i, line) in super::approvals_text(report).into_iter().enumerate() {
    properties.push((format!("approval.{}", i + 1), line));
  }
  if report.api_calls.recorded {
    for (operation, calls) in &report.api_calls.by_operation {
      properties.push((format!("api_calls.{operation}"), calls.to_string()));
    }
  } else {
    properties.push(("api_calls".into(), "not recorded".into()));
  }
  for (name, value) in &report.params {
    properties.push((format!("param.{name}"), value.clone()));
  }
  for (name, value) in properties {
    let _ = writeln!(
      xml,
      "      <property name=\"{}\" value=\"{}\"/>",
      esc(&name),
      esc(&value)
    );
  }
  xml.push_str("    </properties>\n");
  xml.push_str(&cases);
  xml.push_str("  </testsuite>\n</testsuites>\n");
  xml
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::report::{fixture, test_xml};

  #[test]
  fn junit_is_well_formed_with_one_testcase_per_step_and_objective() {
    let report = fixture::report();
    let xml = render(&report);
    let elements = test_xml::check_well_formed(&xml);
    assert_eq!(test_xml::count(&elements, "testsuite"), 1, "{xml}");
    assert_eq!(
      test_xml::count(&elements, "testcase"),
      report.steps.len() + 2,
      "{xml}"
    );
    assert!(
      xml.contains("tests=\"6\" failures=\"1\" errors=\"0\" skipped=\"2\""),
      "{xml}"
    );
    assert!(xml.contains("<testcase name=\"promote-db\" classname=\"drctl.regional-failover.steps\" time=\"320.000\">"), "{xml}");
    assert!(
      xml.contains(
        "<failure message=\"Rate exceeded &lt;again&gt; &amp; gave up\" type=\"Throttling\">"
      ),
      "{xml}"
    );
    assert!(xml.contains("request id req-42"), "{xml}");
    assert!(
      xml.contains(
        "<skipped message=\"a dependency failed &amp; &lt;i&gt;so&lt;/i&gt; did this\"/>"
      ),
      "{xml}"
    );
    assert!(
      xml.contains(
        "<testcase name=\"RPO\" classname=\"drctl.regional-failover.objectives\" time=\"4.000\">"
      ),
      "{xml}"
    );
    assert!(!xml.contains("<script>"), "{xml}");
    assert!(
      xml.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;"),
      "{xml}"
    );
  }

  #[test]
  fn junit_fails_a_breached_objective() {
    let mut report = fixture::succeeded_report();
    report.objectives[0].achieved_seconds = Some(1000.0);
    report.objectives[0].verdict = Verdict::Breached;
    let xml = render(&report);
    test_xml::check_well_formed(&xml);
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(
      xml.contains("<failure message=\"RTO breached: achieved 16m40s against a target of 15m\" type=\"ObjectiveBreached\">"),
      "{xml}"
    );
  }

  /// A run not recovered within `recovered_when`'s bound achieved no RTO: the failure says so,
  /// and why, rather than "achieved -".
  #[test]
  fn junit_says_a_run_was_not_recovered() {
    let mut report = fixture::succeeded_report();
    report.objectives[0].achieved_seconds = None;
    report.objectives[0].verdict = Verdict::Breached;
    report.recovery = Some(super::super::RecoveryReport {
      condition: "step `verify` passes".into(),
      within_seconds: 1800.0,
      outcome: crate::state::RecoveryOutcome::NotRecovered,
      wait_start_seconds: 60.0,
      end_seconds: Some(1860.0),
      recovery_seconds: None,
      checks: 12,
      summary: None,
    });
    let xml = render(&report);
    test_xml::check_well_formed(&xml);
    assert!(
      xml.contains(
        "<failure message=\"RTO breached: not recovered: step `verify` passes did not hold \
         within 30m of the run&#39;s last step (target 15m)\" type=\"ObjectiveBreached\">"
      ),
      "{xml}"
    );
    assert!(!xml.contains("achieved - against"), "{xml}");
  }
}
