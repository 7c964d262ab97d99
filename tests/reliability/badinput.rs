//! Reliability section `badinput`: malformed runbooks and drill files through the real binary,
//! and a fuzzer over the parsers and validators in process.
//!
//! The corpus is `tests/fixtures/runbooks/invalid/*.yaml` (checked with `drctl validate FILE`)
//! and `tests/fixtures/drills/invalid/*.yaml` (checked with `drctl drill list` in a directory
//! whose `drills/` holds only that file), each next to its `.expected` diagnostics, plus inputs
//! too big to commit that are generated here (a file of thousands of steps, a megabyte-long line,
//! nesting far past the limit). A case passes when the binary exits 2, prints exactly the
//! expected diagnostics, and every error in them has a `path:line:column`.
//!
//! `DRCTL_FUZZ_EXECUTIONS` and `DRCTL_FUZZ_SECONDS` override the fuzzer's budget.

#[path = "fuzz.rs"]
mod fuzz;

use std::{
  path::{Path, PathBuf},
  process::Command,
  time::{Duration, Instant},
};

use crate::{
  support::{repo, Run, Test, BIN},
  Config, Figure,
};

const SECTION: &str = "badinput";

/// How one corpus case went.
struct Case {
  name: String,
  exit_2: bool,
  expected_message: bool,
  positioned: bool,
  panicked: bool,
  detail: String,
}

impl Case {
  fn passed(&self) -> bool {
    self.exit_2 && self.expected_message && self.positioned && !self.panicked
  }
}

pub fn run(config: &Config) -> Vec<Figure> {
  let mut cases = Vec::new();
  cases.extend(runbook_fixtures());
  cases.extend(drill_fixtures());
  cases.extend(generated_cases());

  let total = cases.len();
  let passed = cases.iter().filter(|case| case.passed()).count();
  let panics = cases.iter().filter(|case| case.panicked).count();
  for case in cases.iter().filter(|case| !case.passed()) {
    eprintln!(
      "   badinput case {} failed (exit 2: {}, expected message: {}, positions: {}, panic: {})\n{}",
      case.name,
      case.exit_2,
      case.expected_message,
      case.positioned,
      case.panicked,
      indent(&case.detail)
    );
  }

  let (executions, budget) = fuzz_budget(config);
  let outcome = fuzz::run(config.seed, executions, budget);
  for finding in outcome.panics.iter().chain(&outcome.positionless) {
    eprintln!(
      "   fuzz {} ({}): {}{}",
      finding.kind,
      if outcome.panics.iter().any(|p| std::ptr::eq(p, finding)) {
        "panic"
      } else {
        "no position"
      },
      finding.message,
      finding
        .saved
        .as_ref()
        .map(|path| format!(" — input saved to {}", path.display()))
        .unwrap_or_default()
    );
  }
  let executions_target = if config.full { 100_000 } else { 2_000 };

  vec![
    Figure::new(
      SECTION,
      "malformed runbooks and drill files",
      total,
      "≥ 50",
      total >= 50,
    ),
    Figure::new(
      SECTION,
      "cases exiting 2 with path:line:col and expected message",
      format!("{passed}/{total}"),
      "all",
      passed == total,
    ),
    Figure::new(SECTION, "panics (corpus)", panics, "0", panics == 0),
    Figure::new(
      SECTION,
      "fuzz executions (runbooks/drills)",
      format!(
        "{} ({}/{})",
        outcome.executions, outcome.runbook_executions, outcome.drill_executions
      ),
      format!("≥ {executions_target}"),
      outcome.executions >= executions_target,
    ),
    Figure::info(
      SECTION,
      "fuzz inputs rejected with diagnostics",
      outcome.rejected,
    ),
    Figure::info(
      SECTION,
      "fuzz time, slowest input",
      format!(
        "{:.1}s, {}ms",
        outcome.elapsed.as_secs_f64(),
        outcome.slowest.as_millis()
      ),
    ),
    Figure::new(
      SECTION,
      "fuzz crashes/panics",
      outcome.panics.len(),
      "0",
      outcome.panics.is_empty(),
    ),
    Figure::new(
      SECTION,
      "fuzz errors without a position in the input",
      outcome.positionless.len(),
      "0",
      outcome.positionless.is_empty(),
    ),
  ]
}

/// Executions and a time cap: the fast configuration is CI's (debug build), the full one is
/// issue #5's ≥ 100,000 executions.
fn fuzz_budget(config: &Config) -> (u64, Duration) {
  let executions = std::env::var("DRCTL_FUZZ_EXECUTIONS")
    .ok()
    .and_then(|value| value.parse().ok())
    .unwrap_or(if config.full { 100_000 } else { 10_000 });
  let seconds = std::env::var("DRCTL_FUZZ_SECONDS")
    .ok()
    .and_then(|value| value.parse().ok())
    .unwrap_or(if config.full { 1_800 } else { 60 });
  (executions, Duration::from_secs(seconds))
}

fn indent(text: &str) -> String {
  text
    .lines()
    .map(|line| format!("     | {line}"))
    .collect::<Vec<_>>()
    .join("\n")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
  let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
    .into_iter()
    .flatten()
    .flatten()
    .map(|entry| entry.path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
    .collect();
  files.sort();
  files
}

/// Judge one run of the binary against the expected diagnostics of `file` (as the binary
/// names it).
fn judge(name: String, run: &Run, file: &str, expected: Option<&str>) -> Case {
  let stderr = run.stderr();
  let panicked = run.code() == 101 || run.0.status.code().is_none() || stderr.contains("panicked");
  let errors = error_blocks(&stderr);
  let positioned = !errors.is_empty()
    && errors
      .iter()
      .all(|block| has_position(block, file).is_some());
  let expected_message = match expected {
    Some(expected) => stderr.contains(expected.trim_end()),
    None => true,
  };
  Case {
    name,
    exit_2: run.code() == 2,
    expected_message,
    positioned,
    panicked,
    detail: format!(
      "exit {}\n--- stderr\n{stderr}--- expected\n{}",
      run.code(),
      expected.unwrap_or("(generated case)")
    ),
  }
}

/// The `error: ...` blocks of rendered diagnostics, without the closing `error: N errors in`.
fn error_blocks(stderr: &str) -> Vec<String> {
  let mut blocks: Vec<String> = Vec::new();
  for line in stderr.lines() {
    if line.starts_with("error: ") {
      blocks.push(String::new());
    }
    if let Some(block) = blocks.last_mut() {
      block.push_str(line);
      block.push('\n');
    }
  }
  blocks.retain(|block| {
    let first = block.lines().next().unwrap_or_default();
    !(first.contains(" error in ") || first.contains(" errors in "))
  });
  blocks
}

/// The `line:column` a diagnostic block points at in `file`, if it has one.
fn has_position(block: &str, file: &str) -> Option<(usize, usize)> {
  block.lines().find_map(|line| {
    let rest = line.trim_start().strip_prefix("--> ")?;
    let position = rest.strip_prefix(file)?.strip_prefix(':')?;
    let (line, column) = position.split_once(':')?;
    Some((line.parse().ok()?, column.trim().parse().ok()?))
  })
}

fn validate(path: &str) -> Run {
  Run(
    Command::new(BIN)
      .args(["validate", path])
      .current_dir(repo())
      .env("NO_COLOR", "1")
      .output()
      .expect("drctl runs"),
  )
}

/// `drctl validate` on every malformed runbook of the corpus.
fn runbook_fixtures() -> Vec<Case> {
  let dir = repo().join("tests/fixtures/runbooks/invalid");
  yaml_files(&dir)
    .into_iter()
    .map(|fixture| {
      let relative = fixture
        .strip_prefix(repo())
        .expect("fixtures are under the repository")
        .to_string_lossy()
        .into_owned();
      let expected =
        std::fs::read_to_string(fixture.with_extension("expected")).unwrap_or_default();
      let run = validate(&relative);
      let mut case = judge(relative.clone(), &run, &relative, Some(&expected));
      // The binary prints exactly the fixture's diagnostics, nothing more.
      case.expected_message &= !expected.is_empty() && run.stderr() == format!("{expected}\n");
      case
    })
    .collect()
}

/// `drctl drill list` with each malformed drill file alone in `drills/`.
fn drill_fixtures() -> Vec<Case> {
  let dir = repo().join("tests/fixtures/drills/invalid");
  yaml_files(&dir)
    .into_iter()
    .map(|fixture| {
      let name = fixture
        .file_name()
        .expect("a file name")
        .to_string_lossy()
        .into_owned();
      let bytes = std::fs::read(&fixture).expect("read the drill fixture");
      let expected =
        std::fs::read_to_string(fixture.with_extension("expected")).unwrap_or_default();
      // The fixture's diagnostics name it by its path in the repository; here it is `drills/NAME`.
      let expected = expected.replace("tests/fixtures/drills/invalid/", "drills/");
      let test = Test::new();
      std::fs::create_dir_all(test.path().join("drills")).expect("create drills/");
      std::fs::write(test.path().join("drills").join(&name), bytes).expect("write the drill");
      let run = test.run_args(["drill", "list"]);
      let file = format!("drills/{name}");
      let mut case = judge(
        format!("tests/fixtures/drills/invalid/{name}"),
        &run,
        &file,
        Some(&expected),
      );
      case.expected_message &= !expected.is_empty();
      case
    })
    .collect()
}

/// A runbook with `steps` steps: the last one names an unknown action.
fn huge_runbook(steps: usize) -> (String, usize) {
  let mut text = String::from(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: huge }\nobjectives: { rto: 15m }\nsteps:\n",
  );
  for index in 0..steps {
    text.push_str(&format!(
      "  - id: wait-{index}\n    action: wait.sleep\n    with: {{ duration: 1s }}\n"
    ));
  }
  text.push_str("  - id: last\n    action: wait.sleeep\n");
  let line = text.lines().count();
  (text, line)
}

/// Inputs too big to commit, generated into a temporary directory and validated by the binary.
fn generated_cases() -> Vec<Case> {
  let dir = tempfile::tempdir().expect("a temporary directory");
  let mut cases = Vec::new();
  let mut check =
    |name: &str, contents: Vec<u8>, expected: &str, position: Option<(usize, usize)>| {
      let path = dir.path().join(name);
      std::fs::write(&path, contents).expect("write the generated case");
      let file = path.to_string_lossy().into_owned();
      let started = Instant::now();
      let run = validate(&file);
      let elapsed = started.elapsed();
      let mut case = judge(format!("generated {name}"), &run, &file, None);
      let stderr = run.stderr();
      case.expected_message = stderr.contains(expected);
      if let Some(position) = position {
        let found = error_blocks(&stderr)
          .iter()
          .find(|block| block.contains(expected))
          .and_then(|block| has_position(block, &file));
        case.positioned &= found == Some(position);
      }
      case.detail = format!(
        "exit {} in {:.1}s\n--- stderr\n{}--- expected message\n{expected} at {position:?}",
        run.code(),
        elapsed.as_secs_f64(),
        truncate(&stderr, 4000)
      );
      cases.push(case);
    };

  // Thousands of steps (about 2.5 MB): the one error at the very end is still found and placed.
  let (text, line) = huge_runbook(30_000);
  check(
    "huge_runbook.yaml",
    text.into_bytes(),
    "unknown action `wait.sleeep`",
    Some((line, 13)),
  );

  // One 4 MB line.
  let long = "x".repeat(4 << 20);
  let text = format!(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: long, description: {long} }}\nsteps:\n  - id: a\n    action: wait.sleep\n    with: {{ duration: 1x }}\n"
  );
  check(
    "huge_line.yaml",
    text.into_bytes(),
    "invalid duration `1x`",
    Some((7, 23)),
  );

  // Nesting a thousand times deeper than the limit, in flow and in block style.
  let depth = 100_000;
  let text = format!(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: deep }}\nsteps:\n  - id: a\n    x: {}{}\n",
    "[".repeat(depth),
    "]".repeat(depth)
  );
  check(
    "deep_flow.yaml",
    text.into_bytes(),
    "nesting is deeper than 64 levels",
    None,
  );
  let mut text =
    String::from("apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: deep }\nsteps:\n");
  for level in 0..2_000 {
    text.push_str(&" ".repeat(level));
    text.push_str("- \n");
  }
  check(
    "deep_block.yaml",
    text.into_bytes(),
    "nesting is deeper than 64 levels",
    None,
  );

  // A billion laughs: aliases are refused before anything expands.
  let mut text = String::from(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: laughs }\nvars:\n  a0: &a0 lol\n",
  );
  for level in 1..10 {
    let previous = format!("*a{}", level - 1);
    text.push_str(&format!(
      "  a{level}: &a{level} [{}]\n",
      [previous.as_str(); 10].join(", ")
    ));
  }
  text.push_str("steps: []\n");
  check(
    "billion_laughs.yaml",
    text.into_bytes(),
    "YAML aliases are not supported",
    Some((6, 12)),
  );

  // Only a byte-order mark, only NULs, only newlines.
  check(
    "bom_only.yaml",
    b"\xef\xbb\xbf".to_vec(),
    "the runbook is empty",
    Some((1, 1)),
  );
  // The scanner stops at a NUL as if the file ended there: what follows must not be ignored.
  check(
    "nul_bytes.yaml",
    vec![0; 4096],
    "control character U+0000 is not allowed",
    Some((1, 1)),
  );
  let mut text =
    b"apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: nul }\nsteps: []\n".to_vec();
  text.extend_from_slice(b"\0unknown: [\n");
  check(
    "nul_then_garbage.yaml",
    text,
    "control character U+0000 is not allowed",
    Some((5, 1)),
  );
  check(
    "latin1.yaml",
    b"apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: caf\xe9 }\n".to_vec(),
    "the runbook is not valid UTF-8",
    Some((3, 22)),
  );
  cases
}

fn truncate(text: &str, limit: usize) -> String {
  if text.len() <= limit {
    return text.to_string();
  }
  let mut end = limit;
  while !text.is_char_boundary(end) {
    end -= 1;
  }
  format!("{}… ({} bytes)\n", &text[..end], text.len())
}
