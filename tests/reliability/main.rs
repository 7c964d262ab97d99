//! The reliability suite (issue #5): crashes, faults, bad input, concurrency, guards, secrets and a
//! state-store outage, each section measuring figures against a target. It prints one table at
//! the end and exits non-zero when any target is missed.
//!
//! `cargo test --test reliability` runs the fast configuration (the one CI runs, as part of
//! `cargo test --all-targets`); `DRCTL_RELIABILITY=full cargo test --release --test reliability`
//! runs the full one. `DRCTL_RELIABILITY_SEED=N` reproduces a run; `DRCTL_RELIABILITY_ONLY=crash,faults`
//! runs some sections only.

#[path = "../support/mod.rs"]
mod support;

mod approvals;
mod badinput;
mod concurrency;
mod crash;
mod diskfull;
mod exfiltration;
mod faults;
mod guards;
mod lockloss;
mod orphans;
mod outage;
mod region_down;
mod resumerace;
mod rpo_unknown;
mod secret_corpus;
mod secrets;
mod stepcrash;

use std::{process::ExitCode, time::Instant};

/// What the suite was asked to do.
#[derive(Clone, Debug)]
pub struct Config {
  /// The full configuration (issue #5's figures) rather than CI's fast one.
  pub full: bool,
  /// Seed for every random choice; printed so that a run can be repeated.
  pub seed: u64,
}

/// One measured figure and the target it is held to.
#[derive(Clone, Debug)]
pub struct Figure {
  pub section: &'static str,
  pub name: String,
  pub value: String,
  pub target: String,
  pub met: bool,
}

impl Figure {
  /// A figure with a target it either meets or misses.
  pub fn new(
    section: &'static str,
    name: impl Into<String>,
    value: impl ToString,
    target: impl Into<String>,
    met: bool,
  ) -> Figure {
    Figure {
      section,
      name: name.into(),
      value: value.to_string(),
      target: target.into(),
      met,
    }
  }

  /// A figure reported for context, with no target.
  pub fn info(section: &'static str, name: impl Into<String>, value: impl ToString) -> Figure {
    Figure::new(section, name, value, "", true)
  }
}

type Section = fn(&Config) -> Vec<Figure>;

const SECTIONS: &[(&str, Section)] = &[
  ("crash", crash::run),
  ("faults", faults::run),
  ("badinput", badinput::run),
  ("concurrency", concurrency::run),
  ("guards", guards::run),
  ("secrets", secrets::run),
  ("secret-corpus", secret_corpus::run),
  ("outage", outage::run),
  ("stepcrash", stepcrash::run),
  ("exfiltration", exfiltration::run),
  ("orphans", orphans::run),
  ("resumerace", resumerace::run),
  ("lockloss", lockloss::run),
  ("diskfull", diskfull::run),
  ("rpo-unknown", rpo_unknown::run),
  ("approvals", approvals::run),
  ("region-down", region_down::run),
];

fn main() -> ExitCode {
  // `cargo test` passes libtest flags (`--nocapture`, filters); this harness ignores them.
  let full = std::env::var("DRCTL_RELIABILITY").is_ok_and(|value| value == "full");
  let seed = std::env::var("DRCTL_RELIABILITY_SEED")
    .ok()
    .and_then(|value| value.parse().ok())
    .unwrap_or_else(|| fastrand::u64(..));
  let only: Option<Vec<String>> = std::env::var("DRCTL_RELIABILITY_ONLY").ok().map(|value| {
    value
      .split(',')
      .map(|part| part.trim().to_string())
      .collect()
  });
  let config = Config { full, seed };
  eprintln!(
    "reliability suite: {} configuration, seed {seed}",
    if full { "full" } else { "fast" }
  );

  let mut figures = Vec::new();
  for (name, section) in SECTIONS {
    if only
      .as_ref()
      .is_some_and(|only| !only.iter().any(|o| o == name))
    {
      continue;
    }
    let start = Instant::now();
    eprintln!("── {name}");
    let measured = section(&config);
    eprintln!("   {name} took {:.1}s", start.elapsed().as_secs_f64());
    figures.extend(measured);
  }

  print_table(&config, &figures);
  let missed = figures.iter().filter(|figure| !figure.met).count();
  if missed > 0 {
    println!("\n{missed} target(s) missed");
    ExitCode::FAILURE
  } else {
    println!("\nall targets met");
    ExitCode::SUCCESS
  }
}

fn print_table(config: &Config, figures: &[Figure]) {
  let widths = [
    figures
      .iter()
      .map(|f| f.section.len())
      .max()
      .unwrap_or(0)
      .max(7),
    figures
      .iter()
      .map(|f| f.name.chars().count())
      .max()
      .unwrap_or(0)
      .max(6),
    figures
      .iter()
      .map(|f| f.value.chars().count())
      .max()
      .unwrap_or(0)
      .max(5),
    figures
      .iter()
      .map(|f| f.target.chars().count())
      .max()
      .unwrap_or(0)
      .max(6),
  ];
  println!(
    "\nreliability ({} configuration, seed {})\n",
    if config.full { "full" } else { "fast" },
    config.seed
  );
  println!(
    "| {:w0$} | {:w1$} | {:>w2$} | {:w3$} | met |",
    "section",
    "figure",
    "value",
    "target",
    w0 = widths[0],
    w1 = widths[1],
    w2 = widths[2],
    w3 = widths[3]
  );
  println!(
    "|{}|{}|{}|{}|-----|",
    "-".repeat(widths[0] + 2),
    "-".repeat(widths[1] + 2),
    "-".repeat(widths[2] + 2),
    "-".repeat(widths[3] + 2)
  );
  for figure in figures {
    let met = if figure.target.is_empty() {
      ""
    } else if figure.met {
      "yes"
    } else {
      "NO"
    };
    println!(
      "| {:w0$} | {:w1$} | {:>w2$} | {:w3$} | {met:3} |",
      figure.section,
      figure.name,
      figure.value,
      figure.target,
      w0 = widths[0],
      w1 = widths[1],
      w2 = widths[2],
      w3 = widths[3]
    );
  }
}
