//! `/metrics`: the Prometheus text exposition format (version 0.0.4).
//!
//! Every family is a gauge with HELP and TYPE lines, emitted even when it has no sample. The
//! names are a contract with the alerting rules in `deploy/`:
//!
//! | metric | labels | sample |
//! |---|---|---|
//! | `drctl_drill_info` | `drill`, `runbook`, `mode` (`live`/`dry-run`) | 1 per configured drill |
//! | `drctl_drill_last_run_timestamp_seconds` | `drill` | start of the last run (skipped fires excluded); absent if it never ran |
//! | `drctl_drill_last_passed` | `drill` | 1 or 0 for that run; absent if it never ran |
//! | `drctl_drill_last_success_timestamp_seconds` | `drill` | start of the last passed run; absent if it never passed |
//! | `drctl_drill_last_rto_achieved_seconds` | `drill` | of the last run, when measured |
//! | `drctl_drill_rto_target_seconds` | `drill` | the drill's RTO (its own or its runbook's) |
//! | `drctl_drill_last_rpo_achieved_seconds` | `drill` | of the last run, when known |
//! | `drctl_drill_rpo_target_seconds` | `drill` | the drill's RPO |
//! | `drctl_drill_expected_interval_seconds` | `drill` | the longest gap between consecutive fires among the next [`INTERVAL_FIRES`] fire times |
//! | `drctl_runs` | `runbook`, `status` | runs in the state by status (`succeeded`, `breached`, `failed`, `interrupted`, `lock_lost`, `running`, `unfinished`) |
//! | `drctl_runs_in_progress` | `runbook` | runs with no end recorded whose lock is live |
//! | `drctl_scheduler_last_tick_timestamp_seconds` | | the last scheduler tick on this state; absent if none |

use std::{collections::BTreeMap, collections::HashSet, fmt::Write as _};

use chrono::{DateTime, Utc};

use super::index::RunRow;
use crate::{
  drills::{file::DrillMode, history::HistoryEntry, Drill},
  state::status_text,
};

/// How many future fire times the expected interval looks at.
pub const INTERVAL_FIRES: usize = 16;

/// The longest gap between consecutive fires among the next [`INTERVAL_FIRES`] after `now`
/// (`None` when the schedule fires fewer than twice more).
pub fn expected_interval(drill: &Drill, now: DateTime<Utc>) -> Option<f64> {
  let mut fires = Vec::with_capacity(INTERVAL_FIRES);
  let mut after = now;
  while fires.len() < INTERVAL_FIRES {
    let Some(next) = drill.schedule.next_after(after) else {
      break;
    };
    fires.push(next);
    after = next;
  }
  fires
    .windows(2)
    .map(|pair| (pair[1] - pair[0]).num_milliseconds() as f64 / 1000.0)
    .reduce(f64::max)
}

/// What `/metrics` knows about one drill.
pub struct DrillFacts<'a> {
  pub drill: &'a Drill,
  /// Its history, oldest first.
  pub history: &'a [HistoryEntry],
  pub expected_interval: Option<f64>,
}

/// The status label of a run.
pub fn status_label(run: &RunRow, live: &HashSet<String>) -> &'static str {
  match run.status {
    Some(_) => status_text(run.status),
    None if is_running(run, live) => status_text(None),
    None => "unfinished",
  }
}

/// No end journalled and a process holds the run's lock.
fn is_running(run: &RunRow, live: &HashSet<String>) -> bool {
  run.status.is_none() && live.contains(&run.run_id)
}

/// The whole exposition.
pub fn render(
  drills: &[DrillFacts<'_>],
  runs: &[RunRow],
  live: &HashSet<String>,
  last_tick: Option<DateTime<Utc>>,
) -> String {
  let mut out = String::with_capacity(4096);
  drill_families(&mut out, drills);
  run_families(&mut out, runs, live);
  family(
    &mut out,
    "drctl_scheduler_last_tick_timestamp_seconds",
    "When a drill scheduler on this state last ticked (Unix time).",
  );
  if let Some(at) = last_tick {
    sample(
      &mut out,
      "drctl_scheduler_last_tick_timestamp_seconds",
      &[],
      timestamp(at),
    );
  }
  out
}

fn drill_families(out: &mut String, drills: &[DrillFacts<'_>]) {
  family(out, "drctl_drill_info", "A configured drill (always 1).");
  for facts in drills {
    let mode = match facts.drill.mode {
      DrillMode::Live => "live",
      DrillMode::DryRun => "dry-run",
    };
    sample(
      out,
      "drctl_drill_info",
      &[
        ("drill", &facts.drill.name),
        ("runbook", &facts.drill.runbook.name),
        ("mode", mode),
      ],
      1.0,
    );
  }
  type Pick = fn(&DrillFacts<'_>) -> Option<f64>;
  let per_drill: [(&str, &str, Pick); 8] = [
    (
      "drctl_drill_last_run_timestamp_seconds",
      "When the drill's last run started (Unix time; fires a freeze skipped do not count).",
      |facts| last_run(facts.history).map(|entry| timestamp(entry.started_at)),
    ),
    (
      "drctl_drill_last_passed",
      "Whether the drill's last run passed (1) or not (0).",
      |facts| last_run(facts.history).map(|entry| f64::from(u8::from(entry.passed()))),
    ),
    (
      "drctl_drill_last_success_timestamp_seconds",
      "When the drill's last passed run started (Unix time).",
      |facts| {
        facts
          .history
          .iter()
          .rev()
          .find(|entry| entry.passed())
          .map(|entry| timestamp(entry.started_at))
      },
    ),
    (
      "drctl_drill_last_rto_achieved_seconds",
      "The RTO the drill's last run achieved, in seconds.",
      |facts| last_run(facts.history).and_then(|entry| entry.rto_achieved_seconds),
    ),
    (
      "drctl_drill_rto_target_seconds",
      "The RTO the drill is judged against, in seconds.",
      |facts| facts.drill.rto_target().map(|target| target.as_secs_f64()),
    ),
    (
      "drctl_drill_last_rpo_achieved_seconds",
      "The RPO the drill's last run achieved, in seconds (absent when unknown).",
      |facts| last_run(facts.history).and_then(|entry| entry.rpo_achieved_seconds),
    ),
    (
      "drctl_drill_rpo_target_seconds",
      "The RPO the drill is judged against, in seconds.",
      |facts| facts.drill.rpo_target().map(|target| target.as_secs_f64()),
    ),
    (
      "drctl_drill_expected_interval_seconds",
      "The longest gap between consecutive fires of the drill's schedule over its next fires, in seconds.",
      |facts| facts.expected_interval,
    ),
  ];
  for (name, help, pick) in per_drill {
    family(out, name, help);
    for facts in drills {
      if let Some(value) = pick(facts) {
        sample(out, name, &[("drill", &facts.drill.name)], value);
      }
    }
  }
}

/// The last entry of a history that ran (a freeze's skip did not).
fn last_run(history: &[HistoryEntry]) -> Option<&HistoryEntry> {
  history.iter().rev().find(|entry| !entry.skipped())
}

fn run_families(out: &mut String, runs: &[RunRow], live: &HashSet<String>) {
  let mut by_status: BTreeMap<(&str, &str), u64> = BTreeMap::new();
  let mut in_progress: BTreeMap<&str, u64> = BTreeMap::new();
  for run in runs {
    *by_status
      .entry((&run.runbook, status_label(run, live)))
      .or_default() += 1;
    let running = in_progress.entry(&run.runbook).or_default();
    if is_running(run, live) {
      *running += 1;
    }
  }
  family(
    out,
    "drctl_runs",
    "Runs in the state, by runbook and status.",
  );
  for ((runbook, status), count) in &by_status {
    sample(
      out,
      "drctl_runs",
      &[("runbook", runbook), ("status", status)],
      *count as f64,
    );
  }
  family(
    out,
    "drctl_runs_in_progress",
    "Runs with no end recorded whose lock is live, by runbook.",
  );
  for (runbook, count) in &in_progress {
    sample(
      out,
      "drctl_runs_in_progress",
      &[("runbook", runbook)],
      *count as f64,
    );
  }
}

fn timestamp(at: DateTime<Utc>) -> f64 {
  at.timestamp_millis() as f64 / 1000.0
}

fn family(out: &mut String, name: &str, help: &str) {
  let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
  let _ = writeln!(out, "# TYPE {name} gauge");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
  out.push_str(name);
  if !labels.is_empty() {
    out.push('{');
    for (index, (label, value)) in labels.iter().enumerate() {
      if index > 0 {
        out.push(',');
      }
      let _ = write!(out, "{label}=\"{}\"", escape_label(value));
    }
    out.push('}');
  }
  let _ = writeln!(out, " {value}");
}

/// A label value as the text format wants it: backslash, double quote and line feed escaped.
pub fn escape_label(value: &str) -> String {
  let mut out = String::with_capacity(value.len());
  for ch in value.chars() {
    match ch {
      '\\' => out.push_str("\\\\"),
      '"' => out.push_str("\\\""),
      '\n' => out.push_str("\\n"),
      ch => out.push(ch),
    }
  }
  out
}

/// HELP text: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
  text.replace('\\', "\\\\").replace('\n', "\\n")
}
