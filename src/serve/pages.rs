//! The pages: runs, a live run, a run's report, drills; and `/metrics`, `/healthz` and the live
//! view's script. Every string from the state is escaped (`report::escape_xml`); every run is
//! shown through its [`Report`], redaction included.

use std::{collections::HashSet, convert::Infallible, fmt::Write as _, sync::Arc};

use axum::{
  extract::{Path, State},
  http::{header, StatusCode},
  response::{
    sse::{Event as SseEvent, KeepAlive, Sse},
    Html, IntoResponse, Response,
  },
};
use chrono::{DateTime, Utc};
use futures_util::Stream;

use super::{index::Snapshot, index::Stamp, metrics, App};
use crate::{
  drills::{file::DrillMode, history::HistoryEntry, Drill},
  report::{escape_xml as esc, html, human, human_opt, Report, Verdict},
  state::{
    store::{check_name, NameKind},
    StepOutcome,
  },
};

/// Where the live view's script is served from (`script-src 'self'`: no inline script).
pub const LIVE_JS_PATH: &str = "/static/live.js";

/// The live view's script: replace the live part of the page with each event's HTML, which the
/// server rendered and escaped. No framework.
const LIVE_JS: &str = r#""use strict";
(function () {
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var events = new EventSource(live.getAttribute("data-events"));
  events.addEventListener("update", function (event) { live.innerHTML = event.data; });
  events.addEventListener("done", function (event) {
    live.innerHTML = event.data;
    document.body.setAttribute("data-finished", "true");
    events.close();
  });
})();
(function () {
  var control = document.getElementById("control");
  if (!control || !window.fetch) { return; }
  var token = document.getElementById("control-token");
  var reason = document.getElementById("control-reason");
  var answer = document.getElementById("control-answer");
  var KEY = "drctl-token";
  try { token.value = window.sessionStorage.getItem(KEY) || ""; } catch (e) {}
  token.addEventListener("input", function () {
    try { window.sessionStorage.setItem(KEY, token.value); } catch (e) {}
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.control") : null;
    if (!button) { return; }
    var action = button.getAttribute("data-action");
    var body = {};
    var step = button.getAttribute("data-step");
    if (step) { body.step = step; }
    if (reason.value.trim() !== "") { body.reason = reason.value; }
    if (token.value === "") {
      answer.setAttribute("data-status", "0");
      answer.textContent = "Type your token first.";
      return;
    }
    answer.removeAttribute("data-status");
    answer.textContent = "Sending…";
    fetch("/runs/" + encodeURIComponent(control.getAttribute("data-run")) + "/" + action, {
      method: "POST",
      credentials: "omit",
      headers: { "Authorization": "Bearer " + token.value, "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        answer.setAttribute("data-status", String(response.status));
        answer.textContent = text;
      });
    }, function () {
      answer.setAttribute("data-status", "0");
      answer.textContent = "The server could not be reached.";
    });
  });
})();
"#;

const EXTRA_CSS: &str = "
nav{margin:-1rem 0 1.2rem;font-size:.95rem}nav a{margin-right:1.2rem}
.status-lock_lost,.status-unfinished{background:#6d6d6d}
svg.trend{border:1px solid #d5d9de;background:#fafbfc;max-width:100%;height:auto;margin-right:1rem}
svg.trend .achieved{fill:none;stroke:#1e88e5;stroke-width:2}svg.trend .target{stroke:#c62828;stroke-width:2;stroke-dasharray:6 4}
svg.trend .point.passed{fill:#2e7d32}svg.trend .point.failed{fill:#c62828}
svg.trend text{font-size:11px;fill:#455a64}svg.trend .title{font-size:13px;font-weight:600;fill:#1d232a}
";

fn page(title: &str, body: &str) -> Html<String> {
  Html(format!(
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
     <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
     <title>{} · drctl</title>\n<style>{}{EXTRA_CSS}</style>\n</head>\n<body>\n\
     <nav><a href=\"/\">Runs</a><a href=\"/drills\">Drills</a><a href=\"/metrics\">Metrics</a></nav>\n\
     {body}</body>\n</html>\n",
    esc(title),
    html::CSS
  ))
}

fn not_found(what: &str) -> Response {
  (
    StatusCode::NOT_FOUND,
    page(
      "not found",
      &format!("<h1>Not found</h1>\n<p>{}</p>\n", esc(what)),
    ),
  )
    .into_response()
}

/// The run id of a path, if it names a run of the state.
fn known_run(app: &App, id: &str) -> Option<String> {
  check_name(NameKind::RunId, id).ok()?;
  app
    .site
    .store
    .journal_path(id)
    .exists()
    .then(|| id.to_string())
}

pub async fn runs(State(app): State<Arc<App>>) -> Html<axum::body::Bytes> {
  Html(app.runs_page())
}

/// The runs page, newest first.
pub fn runs_html(snapshot: &Snapshot, live: &HashSet<String>) -> String {
  let mut body = String::with_capacity(256 + snapshot.runs.len() * 420);
  let _ = writeln!(
    body,
    "<h1>Runs</h1>\n<p class=\"muted\">{} run(s) in the state.</p>",
    snapshot.runs.len()
  );
  for unreadable in &snapshot.unreadable {
    let _ = writeln!(
      body,
      "<p class=\"breached\">Run <code>{}</code> cannot be read: {}</p>",
      esc(&unreadable.run_id),
      esc(&unreadable.error)
    );
  }
  body.push_str(
    "<table class=\"runs\">\n<tr><th>run</th><th>status</th><th>runbook</th><th>backend</th>\
     <th>mode</th><th>RTO</th><th>RPO</th><th>started (UTC)</th><th>started by</th></tr>\n",
  );
  for run in snapshot.runs.iter().rev() {
    let status = metrics::status_label(run, live);
    let id = esc(&run.run_id);
    let _ = writeln!(
      body,
      "<tr data-run=\"{id}\"><td><a href=\"/runs/{id}\"><code>{id}</code></a></td>\
       <td><span class=\"status status-{status}\">{status}</span></td><td>{}</td><td>{}</td>\
       <td>{}</td><td class=\"{}\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
      esc(&run.runbook),
      esc(&run.backend),
      mode_text(run.mode),
      verdict_class(run.rto),
      run.rto.as_str(),
      verdict_class(run.rpo),
      run.rpo.as_str(),
      run.started_at.format("%Y-%m-%d %H:%M:%S"),
      esc(&run.user),
    );
  }
  body.push_str("</table>\n");
  page("runs", &body).0
}

fn mode_text(mode: crate::state::RunMode) -> &'static str {
  match mode {
    crate::state::RunMode::Live => "live",
    crate::state::RunMode::DryRun => "dry-run",
  }
}

fn verdict_class(verdict: Verdict) -> &'static str {
  match verdict {
    Verdict::Met => "met",
    Verdict::Breached | Verdict::Unknown => "breached",
    Verdict::NotMeasured => "not-measured",
    Verdict::NoTarget => "no-target",
  }
}

fn build(app: &App, id: &str) -> Result<Report, String> {
  (app.site.report)(&app.site.store, id)
}

/// A live run: its header, then the part the event stream replaces.
pub async fn run(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
  let Some(id) = known_run(&app, &id) else {
    return not_found("no such run");
  };
  let report = match build(&app, &id) {
    Ok(report) => report,
    Err(why) => return (StatusCode::INTERNAL_SERVER_ERROR, esc(&why)).into_response(),
  };
  let id = esc(&id);
  let body = format!(
    "<h1>{} <small class=\"muted\">run <code>{id}</code></small></h1>\n\
     <p class=\"muted\">{} · {} backend · started {} by {} · <a href=\"/runs/{id}/report\">full report</a></p>\n\
     <div id=\"live\" data-events=\"/runs/{id}/events\">{}</div>\n\
     {}\
     <script src=\"{LIVE_JS_PATH}\" defer></script>\n",
    esc(&report.runbook),
    esc(&report.mode),
    esc(&report.backend),
    report.started_at.to_rfc3339(),
    esc(&report.user),
    live_fragment(&report),
    CONTROL_FORM.replace("{id}", &id),
  );
  page(&format!("run {}", report.run_id), &body).into_response()
}

/// What the live view updates: status, objectives, the timeline and the step table.
pub fn live_fragment(report: &Report) -> String {
  let mut out = String::new();
  let status = report.status_text();
  let _ = write!(
    out,
    "<p><span class=\"status status-{status}\" id=\"run-status\">{status}</span> \
     <span class=\"muted\">{} step(s) done of {} · elapsed {}</span></p>\n<p>",
    report
      .steps
      .iter()
      .filter(|step| !step.outcome.is_open())
      .count(),
    report.steps.len(),
    human_opt(report.duration_seconds.or_else(|| {
      report
        .steps
        .iter()
        .filter_map(|step| step.end_seconds.or(step.start_seconds))
        .reduce(f64::max)
    })),
  );
  for objective in &report.objectives {
    let _ = write!(
      out,
      "{} target {} achieved {} <span class=\"{}\">{}</span> &#160; ",
      esc(&objective.name),
      human_opt(objective.target_seconds),
      esc(&objective.achieved_text()),
      verdict_class(objective.verdict),
      objective.verdict.as_str()
    );
  }
  out.push_str("</p>\n");
  control_buttons(&mut out, report);
  out.push_str(&html::gantt(report));
  out.push_str("<h2>Steps</h2>\n");
  html::step_table(&mut out, &report.steps);
  out
}

/// The live view's event stream: an `update` event with [`live_fragment`] each time the
/// journal changes, then `done` once the run has ended.
pub async fn events(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
  let Some(id) = known_run(&app, &id) else {
    return not_found("no such run");
  };
  Sse::new(watch_journal(app, id))
    .keep_alive(KeepAlive::default())
    .into_response()
}

struct Watch {
  app: Arc<App>,
  id: String,
  stamp: Option<Stamp>,
  first: bool,
  done: bool,
}

fn watch_journal(app: Arc<App>, id: String) -> impl Stream<Item = Result<SseEvent, Infallible>> {
  let start = Watch {
    app,
    id,
    stamp: None,
    first: true,
    done: false,
  };
  futures_util::stream::unfold(start, |mut watch| async move {
    loop {
      if watch.done || *watch.app.stopping.borrow() {
        return None;
      }
      if !watch.first {
        tokio::time::sleep(watch.app.site.poll_every).await;
      }
      watch.first = false;
      let stamp = Stamp::of(&watch.app.site.store.journal_path(&watch.id));
      if stamp.is_none() || stamp == watch.stamp {
        continue;
      }
      watch.stamp = stamp;
      let event = match build(&watch.app, &watch.id) {
        Ok(report) => {
          watch.done = report.status.is_some();
          SseEvent::default()
            .event(if watch.done { "done" } else { "update" })
            .data(live_fragment(&report))
        }
        Err(why) => SseEvent::default()
          .event("update")
          .data(format!("<p class=\"breached\">{}</p>", esc(&why))),
      };
      return Some((Ok(event), watch));
    }
  })
}

/// A run's full report: the `report --format html` page.
pub async fn report(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
  let Some(id) = known_run(&app, &id) else {
    return not_found("no such run");
  };
  match build(&app, &id) {
    Ok(report) => Html(html::render(&report)).into_response(),
    Err(why) => (StatusCode::INTERNAL_SERVER_ERROR, esc(&why)).into_response(),
  }
}

pub async fn drills(State(app): State<Arc<App>>) -> Html<String> {
  let seen = app.seen();
  let now = Utc::now();
  let mut body = String::from("<h1>Drills</h1>\n");
  if app.site.drills.is_empty() {
    body.push_str("<p>No drills configured (drills/*.yaml).</p>\n");
  }
  for (drill, history) in app.site.drills.iter().zip(seen.histories.iter()) {
    drill_section(&mut body, drill, history, now);
  }
  page("drills", &body)
}

fn drill_section(
  out: &mut String,
  drill: &Drill,
  history: &Result<Vec<HistoryEntry>, String>,
  now: DateTime<Utc>,
) {
  let name = esc(&drill.name);
  let _ = writeln!(out, "<h2 id=\"drill-{name}\">{name}</h2>");
  let next = drill.schedule.next_after(now);
  let entries = match history {
    Ok(entries) => entries.as_slice(),
    Err(why) => {
      let _ = writeln!(
        out,
        "<p class=\"breached\">History unreadable: {}</p>",
        esc(why)
      );
      &[]
    }
  };
  let last = entries.last();
  let rows = [
    ("Runbook", drill.runbook.name.clone()),
    (
      "Mode",
      match drill.mode {
        DrillMode::Live => "live",
        DrillMode::DryRun => "dry-run",
      }
      .to_string(),
    ),
    (
      "Schedule",
      format!(
        "{} ({})",
        drill.schedule.expression,
        drill.schedule.zone.name()
      ),
    ),
    (
      "Next fire",
      next.map_or_else(
        || "never".into(),
        |next| {
          format!(
            "{} ({})",
            next.format("%Y-%m-%d %H:%M UTC"),
            next
              .with_timezone(&drill.schedule.zone)
              .format("%Y-%m-%d %H:%M %Z")
          )
        },
      ),
    ),
    (
      "Last result",
      last.map_or_else(
        || "never ran".into(),
        |entry| {
          format!(
            "{} on {}",
            entry.result,
            entry.started_at.format("%Y-%m-%d %H:%M UTC")
          )
        },
      ),
    ),
    ("Runs recorded", entries.len().to_string()),
  ];
  out.push_str("<table class=\"meta\">\n");
  for (label, value) in rows {
    let _ = writeln!(out, "<tr><th>{label}</th><td>{}</td></tr>", esc(&value));
  }
  out.push_str("</table>\n<p>\n");
  let ran: Vec<&HistoryEntry> = entries.iter().filter(|entry| !entry.skipped()).collect();
  out.push_str(&trend_chart(
    &drill.name,
    "RTO",
    &ran,
    |entry| entry.rto_achieved_seconds,
    drill.rto_target().map(|target| target.as_secs_f64()),
  ));
  out.push_str(&trend_chart(
    &drill.name,
    "RPO",
    &ran,
    |entry| entry.rpo_achieved_seconds,
    drill.rpo_target().map(|target| target.as_secs_f64()),
  ));
  out.push_str("</p>\n");
}

const CHART_W: f64 = 460.0;
const CHART_H: f64 = 200.0;
const PAD_L: f64 = 56.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 26.0;
const PAD_B: f64 = 30.0;

/// An objective achieved over a drill's runs (oldest left), against its target: one
/// `circle.point` per run that measured it (`passed` or `failed`), joined by `polyline.achieved`,
/// and a dashed `line.target`.
pub fn trend_chart(
  drill: &str,
  objective: &str,
  runs: &[&HistoryEntry],
  achieved: fn(&HistoryEntry) -> Option<f64>,
  target: Option<f64>,
) -> String {
  let mut svg = String::new();
  let _ = write!(
    svg,
    "<svg class=\"trend\" data-drill=\"{}\" data-objective=\"{objective}\" xmlns=\"http://www.w3.org/2000/svg\" \
     width=\"{CHART_W}\" height=\"{CHART_H}\" viewBox=\"0 0 {CHART_W} {CHART_H}\" role=\"img\">\
     <text class=\"title\" x=\"{PAD_L}\" y=\"16\">{objective} achieved vs target</text>",
    esc(drill)
  );
  let points: Vec<(usize, f64, bool)> = runs
    .iter()
    .enumerate()
    .filter_map(|(index, entry)| achieved(entry).map(|value| (index, value, entry.passed())))
    .collect();
  let top = points
    .iter()
    .map(|(_, value, _)| *value)
    .chain(target)
    .fold(0.0, f64::max)
    .max(1.0)
    * 1.15;
  let plot_w = CHART_W - PAD_L - PAD_R;
  let plot_h = CHART_H - PAD_T - PAD_B;
  let x = |index: usize| {
    if runs.len() <= 1 {
      PAD_L + plot_w / 2.0
    } else {
      PAD_L + plot_w * index as f64 / (runs.len() - 1) as f64
    }
  };
  let y = |value: f64| PAD_T + plot_h * (1.0 - value / top);
  let _ = write!(
    svg,
    "<line x1=\"{PAD_L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#90a4ae\"/>\
     <text x=\"4\" y=\"{}\">{}</text><text x=\"4\" y=\"{}\">0s</text>",
    y(0.0),
    PAD_L + plot_w,
    y(0.0),
    y(top / 1.15) + 4.0,
    human(top / 1.15),
    y(0.0) + 4.0
  );
  if let Some(target) = target {
    let _ = write!(
      svg,
      "<line class=\"target\" x1=\"{PAD_L}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\"/>\
       <text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">target {3}</text>",
      y(target),
      PAD_L + plot_w,
      y(target) - 4.0,
      human(target)
    );
  }
  if points.is_empty() {
    let _ = write!(
      svg,
      "<text x=\"{}\" y=\"{}\">no measured runs yet</text>",
      PAD_L + 10.0,
      PAD_T + plot_h / 2.0
    );
  } else {
    let line: Vec<String> = points
      .iter()
      .map(|(index, value, _)| format!("{:.1},{:.1}", x(*index), y(*value)))
      .collect();
    let _ = write!(
      svg,
      "<polyline class=\"achieved\" points=\"{}\"/>",
      line.join(" ")
    );
    for (index, value, passed) in &points {
      let _ = write!(
        svg,
        "<circle class=\"point {}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"><title>{}: {}</title></circle>",
        if *passed { "passed" } else { "failed" },
        x(*index),
        y(*value),
        runs[*index].started_at.format("%Y-%m-%d %H:%M"),
        human(*value)
      );
    }
  }
  if let (Some(first), Some(last)) = (runs.first(), runs.last()) {
    let _ = write!(
      svg,
      "<text x=\"{PAD_L}\" y=\"{0}\">{1}</text><text x=\"{2}\" y=\"{0}\" text-anchor=\"end\">{3}</text>",
      CHART_H - 8.0,
      first.started_at.format("%Y-%m-%d"),
      PAD_L + plot_w,
      last.started_at.format("%Y-%m-%d"),
    );
  }
  svg.push_str("</svg>\n");
  svg
}

pub async fn metrics(State(app): State<Arc<App>>) -> Response {
  (
    [(
      header::CONTENT_TYPE,
      "text/plain; version=0.0.4; charset=utf-8",
    )],
    app.metrics(),
  )
    .into_response()
}

pub async fn healthz() -> &'static str {
  "ok\n"
}

pub async fn live_js() -> Response {
  (
    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
    LIVE_JS,
  )
    .into_response()
}

/// The run page's token and reason fields (outside the live part, so an update keeps what was
/// typed) and where the server's answer shows. The token stays in the browser's
/// sessionStorage; the buttons are in [`control_buttons`]. `{id}` is the escaped run id.
const CONTROL_FORM: &str = "<section id=\"control\" data-run=\"{id}\">\n<h2>Control</h2>\n\
<p><label>Your token <input type=\"password\" id=\"control-token\" autocomplete=\"off\" \
spellcheck=\"false\"/></label> <label>Reason <input type=\"text\" id=\"control-reason\" \
maxlength=\"1000\"/></label></p>\n<p id=\"control-answer\" role=\"status\"></p>\n</section>\n";

/// Approve and Deny for each step waiting for approval, and Cancel while the run is going.
fn control_buttons(out: &mut String, report: &Report) {
  for step in report
    .steps
    .iter()
    .filter(|step| step.outcome == StepOutcome::AwaitingApproval)
  {
    let id = esc(&step.id);
    let _ = writeln!(
      out,
      "<p class=\"approval\" data-step=\"{id}\">Step <code>{id}</code> waits for approval: \
       <button type=\"button\" class=\"control\" data-action=\"approve\" data-step=\"{id}\">Approve</button> \
       <button type=\"button\" class=\"control\" data-action=\"deny\" data-step=\"{id}\">Deny</button></p>"
    );
  }
  if report.status.is_none() {
    out.push_str(
      "<p><button type=\"button\" class=\"control\" data-action=\"cancel\">Cancel run</button></p>\n",
    );
  }
}
