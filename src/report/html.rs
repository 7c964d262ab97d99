//! The HTML rendering: one self-contained file (inline CSS, no scripts, no external resources)
//! with an SVG Gantt timeline, the objectives and the step table.
//!
//! The timeline has one `<rect class="bar ..." data-step="ID">` per step (tests and tools count
//! them), classed by outcome (`succeeded`, `failed`, `skipped`, `running`, `pending`) and
//! `critical` on the critical path; rollbacks get `data-rollback` bars of their own. The RTO
//! target is a vertical `line.rto` with a label, placed where the target falls relative to the
//! run start (an incident that began before the run eats into it). The page is also well-formed
//! XML, so it can be checked with an XML parser.

use std::fmt::Write as _;

use super::{error_details, escape_xml as esc, human, human_opt, Report, StepReport, Verdict};

const WIDTH: f64 = 960.0;
const LABEL: f64 = 190.0;
const RIGHT: f64 = 70.0;
const ROW: f64 = 26.0;
const BAR: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 28.0;
/// The narrowest bar drawn, so an instant step (or one that never ran) stays visible.
const MIN_BAR: f64 = 3.0;

/// The report's style sheet (also the status pages', `drctl serve`).
pub const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem;color:#1d232a;background:#fff}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1.8rem 0 .6rem}
.status{display:inline-block;padding:.1rem .6rem;border-radius:.8rem;font-weight:600;color:#fff}
.status-succeeded{background:#2e7d32}.status-breached{background:#ef6c00}.status-failed{background:#c62828}
.status-interrupted,.status-running{background:#6d6d6d}
table{border-collapse:collapse;margin:.4rem 0}th,td{border:1px solid #d5d9de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.met{color:#2e7d32;font-weight:600}.breached{color:#c62828;font-weight:700}.not-measured,.no-target{color:#6d6d6d}
tr.critical td:first-child{font-weight:700}code{font-size:.9em}
svg.gantt{border:1px solid #d5d9de;background:#fafbfc;max-width:100%;height:auto}
svg .bar.succeeded{fill:#66bb6a}svg .bar.rolled_back{fill:#9575cd}svg .bar.failed{fill:#e53935}
svg .bar.skipped{fill:#cfd8dc}svg .bar.pending{fill:#eceff1;stroke:#b0bec5}svg .bar.running{fill:#ffb300}
svg .bar.critical{stroke:#0d47a1;stroke-width:3}svg .bar.succeeded.critical{fill:#1e88e5}
svg .label{font-size:12px;fill:#1d232a}svg .label.critical{font-weight:700;fill:#0d47a1}
svg .dur{font-size:11px;fill:#455a64}svg .axis line{stroke:#90a4ae}svg .axis text{font-size:11px;fill:#455a64}
svg .grid{stroke:#e3e7ea}svg .rto{stroke:#c62828;stroke-width:2;stroke-dasharray:6 4}
svg .rto-label{font-size:12px;fill:#c62828;font-weight:600}
svg .rto-achieved{stroke:#2e7d32;stroke-width:1.5;stroke-dasharray:2 3}svg .rto-achieved-label{font-size:11px;fill:#2e7d32}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.swatch{display:inline-block;width:.9rem;height:.9rem;vertical-align:middle;margin-right:.3rem;border-radius:2px}
.muted{color:#6d6d6d;font-size:.9rem}
";

/// A step's bar: where it starts and ends on the time axis, in seconds.
fn span(step: &StepReport, end_of_run: f64, placed: &[(String, f64)]) -> (f64, f64) {
  let after_needs = step
    .needs
    .iter()
    .filter_map(|need| {
      placed
        .iter()
        .find(|(id, _)| id == need)
        .map(|(_, end)| *end)
    })
    .fold(0.0, f64::max);
  let start = step.start_seconds.unwrap_or(after_needs);
  let end = step
    .end_seconds
    .unwrap_or(if step.outcome == "running" {
      end_of_run
    } else {
      start
    })
    .max(start);
  (start, end)
}

/// Most ticks an axis gets ([`tick_step`] aims for ten): the report stays a page however long
/// the run or its RTO.
const MAX_TICKS: usize = 12;

/// A tick interval giving at most ten ticks over `max` seconds: a round number of seconds,
/// minutes or hours up to half a day, then 1, 2 or 5 times a power of ten days.
fn tick_step(max: f64) -> f64 {
  const DAY: f64 = 86_400.0;
  const STEPS: [f64; 17] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    10800.0, 21600.0, 43200.0,
  ];
  if let Some(step) = STEPS.iter().copied().find(|step| max / step <= 10.0) {
    return step;
  }
  let days = max / DAY / 10.0;
  if !days.is_finite() {
    return f64::MAX;
  }
  let mut power = 1.0;
  while power * 10.0 < days {
    power *= 10.0;
  }
  [1.0, 2.0, 5.0, 10.0]
    .into_iter()
    .map(|factor| factor * power * DAY)
    .find(|step| max / step <= 10.0)
    .unwrap_or(10.0 * power * DAY)
}

/// The SVG Gantt chart.
pub fn gantt(report: &Report) -> String {
  let end_of_run = report
    .duration_seconds
    .or_else(|| {
      report
        .steps
        .iter()
        .filter_map(|step| step.end_seconds)
        .reduce(f64::max)
    })
    .unwrap_or(0.0);
  let mut placed: Vec<(String, f64)> = Vec::new();
  let mut bars: Vec<(&StepReport, f64, f64, bool)> = Vec::new();
  for step in &report.steps {
    let (start, end) = span(step, end_of_run, &placed);
    placed.push((step.id.clone(), end));
    bars.push((step, start, end, false));
  }
  for step in &report.rollbacks {
    let (start, end) = span(step, end_of_run, &[]);
    bars.push((step, start, end, true));
  }
  let deadline = report.rto_deadline_seconds();
  let achieved = report
    .objective("RTO")
    .and_then(|objective| objective.achieved_seconds)
    .map(|achieved| achieved - report.incident_lead_seconds);
  let latest = bars
    .iter()
    .map(|(_, _, end, _)| *end)
    .chain(deadline)
    .chain(achieved)
    .fold(end_of_run, f64::max)
    .max(1.0);
  let tick = tick_step(latest);
  let domain = (latest / tick).ceil() * tick;
  let chart = WIDTH - LABEL - RIGHT;
  let x = |secs: f64| LABEL + secs.clamp(0.0, domain) / domain * chart;
  let height = TOP + ROW * bars.len() as f64 + BOTTOM;
  let bottom = TOP + ROW * bars.len() as f64;

  let mut svg = String::new();
  let _ = writeln!(
    svg,
    "<svg class=\"gantt\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
     viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"Timeline of run {}\">",
    esc(&report.run_id)
  );
  // Axis with ticks and grid lines.
  svg.push_str("<g class=\"axis\">\n");
  let _ = writeln!(
    svg,
    "<line x1=\"{LABEL}\" y1=\"{bottom}\" x2=\"{:.1}\" y2=\"{bottom}\"/>",
    LABEL + chart
  );
  for at in (0..=MAX_TICKS)
    .map(|n| n as f64 * tick)
    .take_while(|at| *at <= domain + 1e-9)
  {
    let tx = x(at);
    let _ = writeln!(
      svg,
      "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{TOP}\" x2=\"{tx:.1}\" y2=\"{bottom}\"/>\
       <line class=\"tick\" x1=\"{tx:.1}\" y1=\"{bottom}\" x2=\"{tx:.1}\" y2=\"{:.1}\"/>\
       <text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
      bottom + 5.0,
      bottom + 18.0,
      esc(&human(at))
    );
  }
  svg.push_str("</g>\n");
  // One bar per step.
  svg.push_str("<g class=\"bars\">\n");
  for (row, (step, start, end, rollback)) in bars.iter().enumerate() {
    let y = TOP + ROW * row as f64 + (ROW - BAR) / 2.0;
    let x0 = x(*start);
    let width = (x(*end) - x0).max(MIN_BAR);
    let critical = if step.critical { " critical" } else { "" };
    let outcome = esc(&step.outcome);
    let (attribute, label) = if *rollback {
      ("data-rollback", format!("↩ {}", step.id))
    } else {
      ("data-step", step.id.clone())
    };
    let _ = writeln!(
      svg,
      "<text class=\"label{critical}\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
      LABEL - 8.0,
      y + BAR - 3.0,
      esc(&label)
    );
    let mut title = format!("{} · {} · {}", step.id, step.action, step.outcome);
    if let Some(duration) = step.duration_seconds {
      let _ = write!(title, " · {}", human(duration));
    }
    if step.attempts > 1 {
      let _ = write!(title, " · {} attempts", step.attempts);
    }
    if let Some(error) = &step.error {
      let _ = write!(title, " · {}", error.message);
    }
    let _ = writeln!(
      svg,
      "<rect class=\"bar {outcome}{critical}\" {attribute}=\"{}\" x=\"{x0:.1}\" y=\"{y:.1}\" \
       width=\"{width:.1}\" height=\"{BAR}\" rx=\"3\"><title>{}</title></rect>",
      esc(&step.id),
      esc(&title)
    );
    if let Some(duration) = step.duration_seconds {
      let _ = writeln!(
        svg,
        "<text class=\"dur\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        x0 + width + 4.0,
        y + BAR - 3.0,
        esc(&human(duration))
      );
    }
  }
  svg.push_str("</g>\n");
  if let Some(achieved) = achieved {
    let ax = x(achieved);
    let _ = writeln!(
      svg,
      "<line class=\"rto-achieved\" x1=\"{ax:.1}\" y1=\"{:.1}\" x2=\"{ax:.1}\" y2=\"{bottom}\"/>",
      TOP - 4.0
    );
  }
  if let (Some(deadline), Some(target)) = (
    deadline,
    report
      .objective("RTO")
      .and_then(|objective| objective.target_seconds),
  ) {
    let rx = x(deadline);
    let _ = writeln!(
      svg,
      "<line class=\"rto\" data-rto-seconds=\"{target}\" x1=\"{rx:.1}\" y1=\"{:.1}\" x2=\"{rx:.1}\" y2=\"{bottom}\"/>\
       <text class=\"rto-label\" x=\"{rx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">RTO target {}</text>",
      TOP - 14.0,
      TOP - 18.0,
      esc(&human(target))
    );
  }
  svg.push_str("</svg>\n");
  svg
}

fn verdict_class(verdict: Verdict) -> &'static str {
  match verdict {
    Verdict::Met => "met",
    Verdict::Breached => "breached",
    Verdict::NotMeasured => "not-measured",
    Verdict::NoTarget => "no-target",
    Verdict::Unknown => "breached",
  }
}

pub fn render(report: &Report) -> String {
  let mut html = String::new();
  html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
  html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
  let _ = writeln!(
    html,
    "<title>drctl run {} · {} · {}</title>",
    esc(&report.run_id),
    esc(&report.runbook),
    esc(&report.status)
  );
  let _ = writeln!(html, "<style>{CSS}</style>\n</head>\n<body>");
  let _ = writeln!(
    html,
    "<h1>{} <span class=\"status status-{}\">{}</span></h1>",
    esc(&report.runbook),
    esc(&report.status),
    esc(&report.status.to_uppercase())
  );
  let _ = writeln!(
    html,
    "<p class=\"muted\">Run <code>{}</code></p>",
    esc(&report.run_id)
  );

  html.push_str("<table class=\"meta\">\n");
  let finished = report
    .finished_at
    .map_or_else(|| "-".into(), |at| at.to_rfc3339());
  let mut rows = vec![
    (
      "Runbook",
      format!("{} ({})", report.runbook, report.runbook_path),
    ),
    ("Mode", report.mode.clone()),
    ("Backend", report.backend.clone()),
    ("User", report.user.clone()),
    ("Cloud identity", super::caller_text(report)),
    ("Host", report.host.clone()),
    ("Started", report.started_at.to_rfc3339()),
    ("Finished", finished),
    ("Incident start", report.incident_start.to_rfc3339()),
    ("Duration", human_opt(report.duration_seconds)),
  ];
  if report.resumed > 0 {
    rows.push(("Resumed", super::resumed_text(report)));
  }
  if let Some(step) = &report.failed_step {
    rows.push(("Failed step", step.clone()));
  }
  for line in super::approvals_text(report) {
    rows.push(("Approval", line));
  }
  for (name, value) in rows {
    let _ = writeln!(html, "<tr><th>{name}</th><td>{}</td></tr>", esc(&value));
  }
  html.push_str("</table>\n");
  if report.time_scale != 1.0 {
    let _ = writeln!(
      html,
      "<p class=\"muted\">Times are simulated: the world ran ×{} faster than the wall clock.</p>",
      report.time_scale
    );
  }

  html.push_str("<h2>Objectives</h2>\n<table class=\"objectives\">\n<tr><th>objective</th><th>target</th><th>achieved</th><th>verdict</th></tr>\n");
  for objective in &report.objectives {
    let _ = writeln!(
      html,
      "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"{}\">{}</td></tr>",
      esc(&objective.name),
      esc(&human_opt(objective.target_seconds)),
      esc(&objective.achieved_text()),
      verdict_class(objective.verdict),
      esc(objective.verdict.as_str())
    );
  }
  html.push_str("</table>\n");

  html.push_str("<h2>Timeline</h2>\n");
  html.push_str(&gantt(report));
  html.push_str(
    "<p class=\"legend\">\
     <span><i class=\"swatch\" style=\"background:#66bb6a\"></i>succeeded</span>\
     <span><i class=\"swatch\" style=\"background:#1e88e5;outline:2px solid #0d47a1\"></i>critical path</span>\
     <span><i class=\"swatch\" style=\"background:#e53935\"></i>failed</span>\
     <span><i class=\"swatch\" style=\"background:#cfd8dc\"></i>skipped / not run</span>\
     <span><i class=\"swatch\" style=\"background:#ffb300\"></i>running</span>\
     <span><i class=\"swatch\" style=\"background:#c62828\"></i>RTO target</span></p>\n",
  );
  if !report.critical_path.is_empty() {
    let path: Vec<String> = report.critical_path.iter().map(|id| esc(id)).collect();
    let _ = writeln!(html, "<p>Critical path: {}</p>", path.join(" → "));
  }

  html.push_str("<h2>Steps</h2>\n");
  step_table(&mut html, &report.steps);
  if !report.rollbacks.is_empty() {
    html.push_str("<h2>Rollbacks</h2>\n");
    step_table(&mut html, &report.rollbacks);
  }

  html.push_str("<h2>Parameters</h2>\n");
  if report.params.is_empty() {
    html.push_str("<p>None.</p>\n");
  } else {
    html.push_str("<table class=\"params\">\n<tr><th>name</th><th>value</th></tr>\n");
    for (name, value) in &report.params {
      let _ = writeln!(
        html,
        "<tr><td>{}</td><td><code>{}</code></td></tr>",
        esc(name),
        esc(value)
      );
    }
    html.push_str("</table>\n");
  }

  html.push_str("<h2>Outputs</h2>\n");
  if report.outputs.is_empty() {
    html.push_str("<p>None.</p>\n");
  } else {
    html
      .push_str("<table class=\"outputs\">\n<tr><th>step</th><th>output</th><th>value</th></tr>\n");
    for (step, outputs) in &report.outputs {
      for (name, value) in outputs {
        let _ = writeln!(
          html,
          "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
          esc(step),
          esc(name),
          esc(value)
        );
      }
    }
    html.push_str("</table>\n");
  }

  html.push_str("<h2>API calls</h2>\n");
  if !report.api_calls.recorded {
    html.push_str("<p>Not recorded (the backend keeps no log of its calls).</p>\n");
  } else {
    let _ = writeln!(
      html,
      "<p>{} mutating call(s), from the {}.</p>",
      report.api_calls.total,
      esc(
        report
          .api_calls
          .source
          .as_deref()
          .unwrap_or("operation log")
      )
    );
    if !report.api_calls.by_operation.is_empty() {
      html.push_str("<table class=\"api-calls\">\n<tr><th>operation</th><th>calls</th></tr>\n");
      for (operation, count) in &report.api_calls.by_operation {
        let _ = writeln!(
          html,
          "<tr><td>{}</td><td class=\"num\">{count}</td></tr>",
          esc(operation)
        );
      }
      html.push_str("</table>\n");
    }
  }
  let _ = writeln!(
    html,
    "<p class=\"muted\">Note: {}.</p>",
    esc(&super::AlwaysStepsNotRun::note())
  );
  let _ = writeln!(
    html,
    "<p class=\"muted\">Generated by drctl from the journal of run {}.</p>\n</body>\n</html>",
    esc(&report.run_id)
  );
  html
}

/// A table of steps (or rollbacks), one row each: also the live run view's (`drctl serve`).
pub fn step_table(html: &mut String, steps: &[StepReport]) {
  html.push_str(
    "<table class=\"steps\">\n<tr><th>step</th><th>action</th><th>outcome</th><th>start</th>\
     <th>end</th><th>duration</th><th>attempts</th><th>summary / error</th></tr>\n",
  );
  for step in steps {
    let class = if step.critical {
      " class=\"critical\""
    } else {
      ""
    };
    let mut detail = step.summary.as_deref().map(esc).unwrap_or_default();
    if let (Some(error), "failed") = (&step.error, step.outcome.as_str()) {
      if !detail.is_empty() {
        detail.push_str("<br/>");
      }
      let _ = write!(detail, "<strong>{}</strong>", esc(&error.message));
      let details = error_details(error);
      if !details.is_empty() {
        let _ = write!(detail, " <code>{}</code>", esc(&details));
      }
    }
    let _ = writeln!(
      html,
      "<tr{class}><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td>\
       <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
      esc(&step.id),
      esc(&step.action),
      esc(&step.outcome),
      esc(&human_opt(step.start_seconds)),
      esc(&human_opt(step.end_seconds)),
      esc(&human_opt(step.duration_seconds)),
      step.attempts,
      if detail.is_empty() {
        "-".into()
      } else {
        detail
      }
    );
  }
  html.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::report::{fixture, test_xml};

  #[test]
  fn html_is_self_contained_well_formed_and_escapes_hostile_text() {
    let report = fixture::report();
    let html = render(&report);
    // Well-formed as XML too (the DOCTYPE aside).
    let body = html.trim_start_matches("<!DOCTYPE html>\n");
    test_xml::check_well_formed(body);
    assert!(!html.contains("<script"), "{html}");
    assert!(
      html.contains(
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
      ),
      "{html}"
    );
    assert!(
      html.contains("Rate exceeded &lt;again&gt; &amp; gave up"),
      "{html}"
    );
    assert!(
      html.contains("code Throttling · HTTP 400 · request id req-42"),
      "{html}"
    );
    for external in ["src=", "href=", "@import", "url("] {
      assert!(!html.contains(external), "external resource `{external}`");
    }
    assert!(html.contains("<td class=\"met\">met</td>"), "{html}");
  }

  #[test]
  fn svg_has_one_bar_per_step_the_critical_path_and_the_rto_line() {
    let report = fixture::report();
    let svg = gantt(&report);
    let elements = test_xml::check_well_formed(&svg);
    let bars: Vec<&str> = svg
      .split("<rect")
      .skip(1)
      .filter(|rect| {
        rect
          .split('>')
          .next()
          .is_some_and(|tag| tag.contains("data-step="))
      })
      .collect();
    assert_eq!(bars.len(), report.steps.len(), "{svg}");
    assert_eq!(test_xml::count(&elements, "rect"), report.steps.len());
    for step in &report.steps {
      assert_eq!(
        svg.matches(&format!("data-step=\"{}\"", step.id)).count(),
        1,
        "{}",
        step.id
      );
    }
    assert!(
      svg.contains("class=\"bar succeeded critical\" data-step=\"promote-db\""),
      "{svg}"
    );
    assert!(
      svg.contains("class=\"bar failed\" data-step=\"scale-standby\""),
      "{svg}"
    );
    assert!(
      svg.contains("class=\"bar skipped\" data-step=\"notify\""),
      "{svg}"
    );
    // The incident began 60 s before the run: the 15m target falls at 14m on the axis, which
    // ends there (ticks every 2 minutes).
    assert_eq!(svg.matches("<line class=\"rto\"").count(), 1, "{svg}");
    assert!(svg.contains("RTO target 15m"), "{svg}");
    let rto_x = WIDTH - RIGHT;
    assert!(
      svg.contains(&format!(
        "<line class=\"rto\" data-rto-seconds=\"900\" x1=\"{rto_x:.1}\""
      )),
      "{svg}"
    );
    assert!(svg.contains(">14m</text>"), "{svg}");
    assert!(svg.contains(">12m</text>"), "{svg}");
  }

  /// A 1000-day RTO (and, worse, a run that lasted a century) drew one tick per day: the
  /// report grew with the RTO instead of staying a page.
  #[test]
  fn a_huge_rto_draws_a_bounded_number_of_ticks() {
    const DAY: f64 = 86_400.0;
    for duration in [None, Some(36_500.0 * DAY)] {
      let mut report = fixture::report();
      report.objectives[0].target_seconds = Some(1000.0 * DAY);
      if duration.is_some() {
        report.duration_seconds = duration;
      }
      let html = render(&report);
      assert!(html.len() < 1_000_000, "{} bytes", html.len());
      let svg = gantt(&report);
      test_xml::check_well_formed(&svg);
      let ticks = svg.matches("<line class=\"tick\"").count();
      assert!((2..=12).contains(&ticks), "{ticks} ticks");
    }
  }

  /// A journal whose time scale (or incident start) makes its durations overflow renders with
  /// saturated durations instead of panicking in the timeline.
  #[test]
  fn a_journal_with_an_absurd_time_scale_renders() {
    use crate::{
      report::{ApiCalls, Report},
      state::{Event, Redactor},
    };
    let mut records = fixture::records();
    if let Event::RunStarted {
      time_scale,
      incident_start,
      ..
    } = &mut records[0].event
    {
      *time_scale = 1e300;
      *incident_start = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    }
    let report = Report::from_records(
      &records,
      ApiCalls::count(
        "simulator operation log",
        [crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name],
      ),
      &Redactor::default(),
    )
    .unwrap();
    let html = render(&report);
    assert!(html.len() < 1_000_000, "{} bytes", html.len());
    test_xml::check_well_formed(&gantt(&report));
  }

  #[test]
  fn tick_steps_stay_round_and_about_ten_per_axis() {
    const DAY: f64 = 86_400.0;
    assert_eq!(tick_step(600.0), 60.0);
    assert_eq!(tick_step(5.0 * DAY), 43_200.0);
    assert_eq!(tick_step(10.0 * DAY), DAY);
    assert_eq!(tick_step(15.0 * DAY), 2.0 * DAY);
    assert_eq!(tick_step(1000.0 * DAY), 100.0 * DAY);
    assert_eq!(tick_step(1001.0 * DAY), 200.0 * DAY);
    for max in [1.0, 59.0, 7.0 * DAY, 1000.0 * DAY, 1e12, f64::MAX] {
      let step = tick_step(max);
      assert!(step.is_finite() && step > 0.0, "{max}: {step}");
      assert!(max / step <= 10.0, "{max}: {step}");
    }
  }

  #[test]
  fn svg_without_an_rto_target_draws_no_rto_line() {
    let mut report = fixture::succeeded_report();
    report.objectives[0].target_seconds = None;
    report.objectives[0].verdict = Verdict::NoTarget;
    let svg = gantt(&report);
    test_xml::check_well_formed(&svg);
    assert!(!svg.contains("class=\"rto\""), "{svg}");
  }
}
