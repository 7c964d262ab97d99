//! P4, the CLI's own costs: `drctl validate` over 1,000 generated runbooks, and `drctl
//! --version` start-up. (P4's third figure, peak RSS on the fleet run, is measured by the fleet
//! section, which runs the fleet.)

use std::time::{Duration, Instant};

use crate::{overhead::median, support, Config, Measured, Row};

/// Write `count` runbooks into `dir/runbooks`: the shipped runbooks (29 to 102 lines, every
/// action family, templates, rollbacks, `always` clean-up), each copy with its own name and its
/// own resource names, as a company with one runbook per service would have them.
fn generate(dir: &std::path::Path, count: usize) -> (usize, usize) {
  let mut shipped: Vec<(String, String)> = std::fs::read_dir(support::repo().join("runbooks"))
    .expect("runbooks/ is readable")
    .flatten()
    .filter_map(|entry| {
      let name = entry.file_name().to_string_lossy().into_owned();
      let stem = name.strip_suffix(".yaml")?.to_owned();
      Some((stem, std::fs::read_to_string(entry.path()).ok()?))
    })
    .collect();
  shipped.sort();
  assert!(!shipped.is_empty(), "no shipped runbooks to generate from");
  let out = dir.join("runbooks");
  std::fs::create_dir_all(&out).expect("create the runbooks directory");
  let mut bytes = 0;
  let mut lines = 0;
  for i in 0..count {
    let (stem, text) = &shipped[i % shipped.len()];
    let service = format!("svc{i:04}");
    let text = text
      .replace(&format!("name: {stem}"), &format!("name: {stem}-{service}"))
      .replace("app-db-replica", &format!("{service}-db-replica"))
      .replace("default: api,", &format!("default: {service},"))
      .replace("api.example.com", &format!("{service}.example.com"));
    bytes += text.len();
    lines += text.lines().count();
    std::fs::write(out.join(format!("{stem}-{service}.yaml")), text).expect("write a runbook");
  }
  (bytes, lines)
}

fn time_command(test: &support::Test, args: &[&str]) -> Duration {
  let started = Instant::now();
  let run = test.run_args(args);
  let elapsed = started.elapsed();
  assert_eq!(
    run.code(),
    0,
    "drctl {args:?} failed:\n{}\n{}",
    run.stdout(),
    run.stderr()
  );
  elapsed
}

pub fn run(config: &Config) -> Measured {
  let (count, version_runs) = if config.bench { (1000, 200) } else { (40, 10) };
  let test = support::Test::new();
  let generated = tempfile::tempdir().expect("a temporary directory");
  let (bytes, lines) = generate(generated.path(), count);
  let dir = generated.path().join("runbooks");
  let dir = dir.to_str().expect("a UTF-8 temporary path");

  // A validation that fails must not count as fast: time_command asserts exit 0, and the
  // output must name every file.
  let first = test.run_args(["validate", dir]);
  assert_eq!(first.code(), 0, "{}\n{}", first.stdout(), first.stderr());
  let mut validate: Vec<f64> = (0..config.repeats.max(3))
    .map(|_| time_command(&test, &["validate", dir]).as_secs_f64())
    .collect();
  let validate_all = validate.clone();
  let validate = median(&mut validate);

  let mut version: Vec<f64> = (0..version_runs)
    .map(|_| time_command(&test, &["--version"]).as_secs_f64() * 1000.0)
    .collect();
  let version_min = version.iter().copied().fold(f64::INFINITY, f64::min);
  let version = median(&mut version);

  let rows = vec![
    Row::new(
      "P4",
      format!("`drctl validate` over {count} generated runbooks"),
      format!("{:.0} ms", validate * 1000.0),
      "< 1 s",
      validate < 1.0,
    ),
    Row::new(
      "P4",
      "`drctl --version` start-up",
      format!("{version:.1} ms"),
      "< 10 ms",
      version < 10.0,
    ),
  ];
  let notes = format!(
    "- `drctl validate DIR` over {count} runbooks ({:.1} MB, {lines} lines: the shipped \
     runbooks, each copy renamed with its own resource names), median of {} runs: {:.0} ms \
     (runs: {}).\n\
     - `drctl --version`, spawned {version_runs} times from the harness: median {version:.1} ms, \
     fastest {version_min:.1} ms (includes fork/exec and the dynamic loader).\n\
     - Binary: `{}`.\n",
    bytes as f64 / 1e6,
    validate_all.len(),
    validate * 1000.0,
    validate_all
      .iter()
      .map(|secs| format!("{:.0} ms", secs * 1000.0))
      .collect::<Vec<_>>()
      .join(", "),
    support::BIN,
  );
  Measured { rows, notes }
}
