//! drctl's benchmarks (issue #6), in one go: engine overhead against the critical path (P1), the
//! bash + aws CLI peer against moto (P2), a fleet failover under AWS rate limits (P3) and the
//! CLI's own costs (P4). `cargo bench` measures everything and writes `BENCHMARKS.md` at the
//! repository root from the figures it measured.
//!
//! Under `cargo test --all-targets` (no `--bench` flag) it only smoke-tests each section at a
//! tiny size, so CI proves the harness still works without spending minutes benchmarking.

#[path = "../tests/support/mod.rs"]
mod support;

mod fleet;
mod overhead;
mod peer;
mod serve;
mod startup;

use std::process::ExitCode;

/// How the benchmarks were asked to run.
#[derive(Clone, Debug)]
pub struct Config {
  /// `cargo bench`: measure for real. Otherwise a smoke test at a tiny size.
  pub bench: bool,
  /// Repetitions per measurement (the median is reported).
  pub repeats: usize,
}

/// One row of BENCHMARKS.md.
#[derive(Clone, Debug)]
pub struct Row {
  /// `P1`, `P2`, ...
  pub id: &'static str,
  pub figure: String,
  pub value: String,
  pub target: String,
  pub met: bool,
}

impl Row {
  pub fn new(
    id: &'static str,
    figure: impl Into<String>,
    value: impl ToString,
    target: impl Into<String>,
    met: bool,
  ) -> Row {
    Row {
      id,
      figure: figure.into(),
      value: value.to_string(),
      target: target.into(),
      met,
    }
  }

  /// A figure for context, with no target.
  pub fn info(id: &'static str, figure: impl Into<String>, value: impl ToString) -> Row {
    Row::new(id, figure, value, "", true)
  }
}

/// What a section measured: rows for the table and free text for BENCHMARKS.md.
#[derive(Clone, Debug, Default)]
pub struct Measured {
  pub rows: Vec<Row>,
  /// Markdown: method, environment notes, raw samples.
  pub notes: String,
}

type Section = fn(&Config) -> Measured;

const SECTIONS: &[(&str, Section)] = &[
  ("P1 engine overhead", overhead::run),
  ("P2 against the bash + aws CLI peer", peer::run),
  ("P3 fleet", fleet::run),
  ("P4 CLI", startup::run),
  ("P5 status page", serve::run),
];

fn main() -> ExitCode {
  let bench = std::env::args().any(|arg| arg == "--bench");
  let repeats = std::env::var("DRCTL_BENCH_REPEATS")
    .ok()
    .and_then(|value| value.parse().ok())
    .unwrap_or(if bench { 5 } else { 1 });
  let config = Config { bench, repeats };
  // DRCTL_BENCH_SECTIONS=P3 (or `P3,P4`): only the sections whose name starts with one of these,
  // to re-measure one figure without the slow peer section. BENCHMARKS.md is then not written:
  // it would lose the other sections' figures.
  let only: Option<Vec<String>> = std::env::var("DRCTL_BENCH_SECTIONS").ok().map(|value| {
    value
      .split(',')
      .map(|prefix| prefix.trim().to_string())
      .filter(|prefix| !prefix.is_empty())
      .collect()
  });
  let selected = |name: &str| {
    only.as_ref().is_none_or(|prefixes| {
      prefixes
        .iter()
        .any(|prefix| name.starts_with(prefix.as_str()))
    })
  };

  let mut measured = Vec::new();
  for (name, section) in SECTIONS.iter().filter(|(name, _)| selected(name)) {
    eprintln!("── {name}");
    measured.push((*name, section(&config)));
  }
  let markdown = render(&config, &measured);
  print!("{markdown}");
  if bench && only.is_none() {
    let path = support::repo().join("BENCHMARKS.md");
    std::fs::write(&path, &markdown).expect("BENCHMARKS.md is writable");
    eprintln!("wrote {}", path.display());
  }
  let missed = measured
    .iter()
    .flat_map(|(_, m)| &m.rows)
    .filter(|row| !row.met)
    .count();
  // A missed target is reported, not a failure: the machine is shared and noisy. Smoke mode
  // fails only when a section could not run at all (it panics).
  if missed > 0 {
    eprintln!("{missed} target(s) missed; see the table");
  }
  ExitCode::SUCCESS
}

fn render(config: &Config, measured: &[(&str, Measured)]) -> String {
  let mut out = String::new();
  out.push_str("# drctl benchmarks\n\n");
  out.push_str(&format!(
    "Written by `cargo bench` ({} repetition(s) per figure, medians). Ratios are measured side by \
     side in the same run; absolute times are for context only.\n\n",
    config.repeats
  ));
  out.push_str("| | figure | measured | target | met |\n|---|---|---:|---|---|\n");
  for (_, section) in measured {
    for row in &section.rows {
      let met = if row.target.is_empty() {
        ""
      } else if row.met {
        "yes"
      } else {
        "**no**"
      };
      out.push_str(&format!(
        "| {} | {} | {} | {} | {met} |\n",
        row.id, row.figure, row.value, row.target
      ));
    }
  }
  for (name, section) in measured {
    if !section.notes.is_empty() {
      out.push_str(&format!("\n## {name}\n\n{}\n", section.notes.trim_end()));
    }
  }
  out
}
