//! A seeded, in-process fuzzer for the runbook and drill parsers and validators.
//!
//! No cargo-fuzz (it needs nightly): a property-based loop instead. Each execution takes a seed
//! input (a shipped or fixture runbook or drill, or an input the loop generated), applies a few
//! random mutations — byte flips, line deletions and duplications, indentation shifts, token
//! splices from other inputs, truncation, YAML punctuation, invalid UTF-8, deep nesting — or
//! generates a random YAML structure from the format's vocabulary, and runs
//! `runbook::load` or `drills::file::load` on it under `catch_unwind`. Properties checked:
//!
//! * no panic, anywhere in parsing, validation or rendering the diagnostics;
//! * every diagnostic has a position (`line:column`, 1-based) inside the input: the line exists
//!   and the column is at most one past its last character.
//!
//! A failing input is written to `$DRCTL_FUZZ_FINDINGS` (default `target/fuzz-findings/`) so it
//! can be added to the corpus.

use std::{
  cell::RefCell,
  panic::{self, AssertUnwindSafe},
  path::{Path, PathBuf},
  time::{Duration, Instant},
};

use drctl::{actions::Catalog, drills, runbook};

/// What the fuzzer found.
#[derive(Debug, Default)]
pub struct Outcome {
  pub executions: u64,
  pub runbook_executions: u64,
  pub drill_executions: u64,
  /// Inputs that were rejected with diagnostics (the rest loaded).
  pub rejected: u64,
  pub panics: Vec<Finding>,
  pub positionless: Vec<Finding>,
  pub slowest: Duration,
  pub elapsed: Duration,
}

#[derive(Debug)]
pub struct Finding {
  pub kind: &'static str,
  pub message: String,
  pub saved: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
  Runbook,
  Drill,
}

struct Seed {
  kind: Kind,
  bytes: Vec<u8>,
}

thread_local! {
  /// The message of the last panic on this thread (the hook stores it instead of printing it).
  static PANIC_MESSAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Words of the format, for generated structures and splices.
const KEYS: &[&str] = &[
  "apiVersion",
  "kind",
  "metadata",
  "name",
  "description",
  "params",
  "vars",
  "objectives",
  "rto",
  "rpo",
  "defaults",
  "timeout",
  "retry",
  "attempts",
  "backoff",
  "max_backoff",
  "steps",
  "id",
  "action",
  "needs",
  "with",
  "budget",
  "on_failure",
  "rollback",
  "approval",
  "prompt",
  "when",
  "recovery",
  "always",
  "accept_data_loss",
  "type",
  "required",
  "default",
  "allowed",
  "runbook",
  "schedule",
  "cron",
  "timezone",
  "mode",
  "target",
  "backend",
  "pass",
  "steps_must_succeed",
  "reports",
  "notify",
  "on",
  "region",
  "instance",
  "desired_count",
  "cluster",
  "service",
  "health_check_id",
  "expect",
  "duration",
  "<<",
  "",
];

const SCALARS: &[&str] = &[
  "drctl/v1",
  "Runbook",
  "Drill",
  "rds.promote_replica",
  "ecs.scale_service",
  "wait.sleep",
  "route53.health_check",
  "notify.slack",
  "http.check",
  "exec.command",
  "5m",
  "90s",
  "1h30m",
  "0s",
  "-5m",
  "99999999999999999999d",
  "1.5h",
  "ms",
  "3",
  "-1",
  "18446744073709551616",
  "true",
  "null",
  "~",
  "abort",
  "rollback",
  "continue",
  "us-west-2",
  "live",
  "dry-run",
  "sim",
  "@quarterly",
  "@never",
  "\"0 25 * * mon\"",
  "\"*/0 * * * *\"",
  "\"59-0 * * * *\"",
  "\"${{ params.target_region }}\"",
  "\"${{ steps.a.outputs.x }}\"",
  "\"${{ }}\"",
  "\"${{ params.\"",
  "\"${{ env.X == 'a' && !secrets.Y }}\"",
  "\"${{ run.id }} ${{ vars.v }}\"",
  "\"${{ ((((( }}\"",
  "Europe/Berlin",
  "Mars/Olympus",
  "!!binary aGVsbG8=",
  "&anchor x",
  "*anchor",
  "'unterminated",
  "\"unterminated",
  "|",
  ">-",
  "[a, b",
  "{a: 1",
  "é😀",
];

/// Fragments that are dangerous to a YAML scanner.
const PUNCTUATION: &[&[u8]] = &[
  b"{",
  b"}",
  b"[",
  b"]",
  b":",
  b": ",
  b"- ",
  b"? ",
  b",",
  b"#",
  b"&a ",
  b"*a",
  b"!",
  b"!!str ",
  b"%YAML 1.2\n",
  b"---\n",
  b"...\n",
  b"\"",
  b"'",
  b"|",
  b">",
  b"\t",
  b"\r",
  b"\r\n",
  b"\0",
  b"\xef\xbb\xbf",
  b"\xff",
  b"\xc3",
  b"\xed\xa0\x80",
  b"\xe2\x80\xa8",
  b"${{",
  b"}}",
  b"\\",
  b"\\u",
  b"\\x",
  b"\n",
  b"  ",
];

/// Run the fuzzer for `executions` inputs or until `budget` has passed, whichever comes first.
pub fn run(seed: u64, executions: u64, budget: Duration) -> Outcome {
  let root = crate::support::repo();
  let seeds = seeds(&root);
  let runbooks_dir = root.join("runbooks");
  let findings_dir = std::env::var_os("DRCTL_FUZZ_FINDINGS")
    .map(PathBuf::from)
    .unwrap_or_else(|| root.join("target/fuzz-findings"));
  let mut rng = fastrand::Rng::with_seed(seed);
  let mut outcome = Outcome::default();

  let previous_hook = panic::take_hook();
  panic::set_hook(Box::new(|info| {
    let location = info
      .location()
      .map(|l| format!(" at {}:{}", l.file(), l.line()))
      .unwrap_or_default();
    let payload = info
      .payload()
      .downcast_ref::<&str>()
      .map(|s| s.to_string())
      .or_else(|| info.payload().downcast_ref::<String>().cloned())
      .unwrap_or_else(|| "(non-string panic)".into());
    PANIC_MESSAGE.with(|slot| *slot.borrow_mut() = Some(format!("{payload}{location}")));
  }));

  let started = Instant::now();
  while outcome.executions < executions && started.elapsed() < budget {
    let (kind, input) = next_input(&mut rng, &seeds);
    let one = Instant::now();
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(kind, &input, &runbooks_dir)));
    outcome.slowest = outcome.slowest.max(one.elapsed());
    outcome.executions += 1;
    match kind {
      Kind::Runbook => outcome.runbook_executions += 1,
      Kind::Drill => outcome.drill_executions += 1,
    }
    match result {
      Ok(Ok(rejected)) => outcome.rejected += u64::from(rejected),
      Ok(Err(problem)) => {
        outcome.rejected += 1;
        if outcome.positionless.len() < 20 {
          let saved = save(&findings_dir, "positionless", kind, &input);
          outcome.positionless.push(Finding {
            kind: kind_name(kind),
            message: problem,
            saved,
          });
        }
      }
      Err(_) => {
        let message = PANIC_MESSAGE
          .with(|slot| slot.borrow_mut().take())
          .unwrap_or_default();
        if outcome.panics.len() < 20 {
          let saved = save(&findings_dir, "panic", kind, &input);
          outcome.panics.push(Finding {
            kind: kind_name(kind),
            message,
            saved,
          });
        }
      }
    }
  }
  outcome.elapsed = started.elapsed();
  panic::set_hook(previous_hook);
  outcome
}

fn kind_name(kind: Kind) -> &'static str {
  match kind {
    Kind::Runbook => "runbook",
    Kind::Drill => "drill",
  }
}

/// Keep a failing input for the corpus; a name from its content, so reruns do not pile up.
fn save(dir: &Path, what: &str, kind: Kind, input: &[u8]) -> Option<PathBuf> {
  use std::hash::{Hash, Hasher};
  let mut hasher = std::collections::hash_map::DefaultHasher::new();
  input.hash(&mut hasher);
  let path = dir.join(format!(
    "{what}-{}-{:016x}.yaml",
    kind_name(kind),
    hasher.finish()
  ));
  std::fs::create_dir_all(dir).ok()?;
  std::fs::write(&path, input).ok()?;
  Some(path)
}

/// Parse and validate one input. `Ok(true)`: rejected with well-formed diagnostics;
/// `Ok(false)`: it loaded; `Err`: a diagnostic without a position inside the input.
fn check(kind: Kind, input: &[u8], runbooks_dir: &Path) -> Result<bool, String> {
  let path = Path::new("fuzz.yaml");
  let (diagnostics, text) = match kind {
    Kind::Runbook => match runbook::load(path, input, &Catalog) {
      Ok(_) => return Ok(false),
      Err(diagnostics) => (diagnostics, String::from_utf8_lossy(input).into_owned()),
    },
    Kind::Drill => {
      // Drill files are read as text; invalid UTF-8 is the runbook loader's case.
      let text = String::from_utf8_lossy(input).into_owned();
      match drills::file::load(path, &text, runbooks_dir, &Catalog) {
        Ok(_) => return Ok(false),
        Err(diagnostics) => (diagnostics, text),
      }
    }
  };
  // Rendering must not panic either (it slices the source line by the span).
  let rendered = diagnostics.to_string();
  if diagnostics.is_empty() {
    return Err(format!("rejected with no diagnostic: {rendered}"));
  }
  let lines: Vec<&str> = text.split('\n').collect();
  for diagnostic in &diagnostics {
    let span = diagnostic.span;
    let within = span.line >= 1
      && span.column >= 1
      && lines.get(span.line - 1).is_some_and(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        span.column <= line.chars().count() + 1
      });
    if !within {
      return Err(format!(
        "{}:{} outside the input ({} lines): {}",
        span.line,
        span.column,
        lines.len(),
        diagnostic.kind
      ));
    }
  }
  Ok(true)
}

/// The starting inputs: shipped runbooks and drills, and every fixture.
fn seeds(root: &Path) -> Vec<Seed> {
  let mut seeds = Vec::new();
  let sources = [
    ("runbooks", Kind::Runbook),
    ("tests/fixtures/runbooks/valid", Kind::Runbook),
    ("tests/fixtures/runbooks/invalid", Kind::Runbook),
    ("drills", Kind::Drill),
    ("tests/fixtures/drills/invalid", Kind::Drill),
  ];
  for (dir, kind) in sources {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
      .into_iter()
      .flatten()
      .flatten()
      .map(|entry| entry.path())
      .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
      .collect();
    paths.sort();
    for path in paths {
      if let Ok(bytes) = std::fs::read(&path) {
        seeds.push(Seed { kind, bytes });
      }
    }
  }
  assert!(seeds.len() >= 10, "only {} fuzz seeds", seeds.len());
  seeds
}

fn next_input(rng: &mut fastrand::Rng, seeds: &[Seed]) -> (Kind, Vec<u8>) {
  if rng.u8(..10) == 0 {
    let kind = if rng.bool() {
      Kind::Runbook
    } else {
      Kind::Drill
    };
    let mut out = Vec::new();
    match kind {
      Kind::Runbook => out.extend_from_slice(b"apiVersion: drctl/v1\nkind: Runbook\n"),
      Kind::Drill => out.extend_from_slice(b"apiVersion: drctl/v1\nkind: Drill\n"),
    }
    let entries = rng.usize(1..6);
    generate_map(rng, &mut out, 0, entries);
    return (kind, out);
  }
  let seed = &seeds[rng.usize(..seeds.len())];
  let mut input = seed.bytes.clone();
  for _ in 0..rng.usize(1..5) {
    mutate(rng, &mut input, seeds);
  }
  (seed.kind, input)
}

fn line_bounds(input: &[u8]) -> Vec<(usize, usize)> {
  let mut bounds = Vec::new();
  let mut start = 0;
  for (index, byte) in input.iter().enumerate() {
    if *byte == b'\n' {
      bounds.push((start, index + 1));
      start = index + 1;
    }
  }
  if start < input.len() {
    bounds.push((start, input.len()));
  }
  bounds
}

/// A whitespace-delimited token of some seed.
fn random_token<'a>(rng: &mut fastrand::Rng, seeds: &'a [Seed]) -> &'a [u8] {
  let bytes = &seeds[rng.usize(..seeds.len())].bytes;
  if bytes.is_empty() {
    return b"x";
  }
  let mut start = rng.usize(..bytes.len());
  while start > 0 && !bytes[start - 1].is_ascii_whitespace() {
    start -= 1;
  }
  let mut end = start;
  while end < bytes.len() && !bytes[end].is_ascii_whitespace() {
    end += 1;
  }
  &bytes[start..end]
}

fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, seeds: &[Seed]) {
  let lines = line_bounds(input);
  match rng.u8(..14) {
    // Flip a bit.
    0 if !input.is_empty() => {
      let at = rng.usize(..input.len());
      input[at] ^= 1 << rng.u8(..8);
    }
    // Replace a byte with a random one.
    1 if !input.is_empty() => {
      let at = rng.usize(..input.len());
      input[at] = rng.u8(..);
    }
    // Delete a line.
    2 if !lines.is_empty() => {
      let (start, end) = lines[rng.usize(..lines.len())];
      input.drain(start..end);
    }
    // Duplicate a line (duplicate keys, repeated steps).
    3 if !lines.is_empty() => {
      let (start, end) = lines[rng.usize(..lines.len())];
      let copy = input[start..end].to_vec();
      input.splice(end..end, copy);
    }
    // Shift a line's indentation.
    4 if !lines.is_empty() => {
      let (start, _) = lines[rng.usize(..lines.len())];
      if rng.bool() {
        let indent: &[u8] = [&b" "[..], b"  ", b"    ", b"\t"][rng.usize(..4)];
        input.splice(start..start, indent.iter().copied());
      } else {
        let mut end = start;
        while end < input.len() && end < start + 2 && input[end] == b' ' {
          end += 1;
        }
        input.drain(start..end);
      }
    }
    // Splice a token from another input.
    5 => {
      let token = random_token(rng, seeds).to_vec();
      let at = rng.usize(..=input.len());
      input.splice(at..at, token);
    }
    // Replace a token with a word of the format.
    6 if !input.is_empty() => {
      let at = rng.usize(..input.len());
      let mut end = at;
      while end < input.len() && !input[end].is_ascii_whitespace() {
        end += 1;
      }
      let word = if rng.bool() {
        KEYS[rng.usize(..KEYS.len())]
      } else {
        SCALARS[rng.usize(..SCALARS.len())]
      };
      input.splice(at..end, word.bytes());
    }
    // Insert YAML punctuation or a broken byte sequence.
    7 => {
      let fragment = PUNCTUATION[rng.usize(..PUNCTUATION.len())];
      let at = rng.usize(..=input.len());
      input.splice(at..at, fragment.iter().copied());
    }
    // Truncate.
    8 if !input.is_empty() => {
      input.truncate(rng.usize(..input.len()));
    }
    // Swap two lines.
    9 if lines.len() >= 2 => {
      let a = lines[rng.usize(..lines.len())];
      let b = lines[rng.usize(..lines.len())];
      let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
      if first.1 <= second.0 {
        let mut out = input[..first.0].to_vec();
        out.extend_from_slice(&input[second.0..second.1]);
        out.extend_from_slice(&input[first.1..second.0]);
        out.extend_from_slice(&input[first.0..first.1]);
        out.extend_from_slice(&input[second.1..]);
        *input = out;
      }
    }
    // Deep nesting, sometimes past the limit.
    10 => {
      let depth = [10, 63, 64, 65, 200, 5000][rng.usize(..6)];
      let at = rng.usize(..=input.len());
      let (open, close): (&[u8], &[u8]) = match rng.u8(..3) {
        0 => (b"[", b"]"),
        1 => (b"{a: ", b"}"),
        _ => (b"- ", b""),
      };
      let mut nested = Vec::new();
      for _ in 0..depth {
        nested.extend_from_slice(open);
      }
      nested.push(b'x');
      for _ in 0..depth {
        nested.extend_from_slice(close);
      }
      input.splice(at..at, nested);
    }
    // Repeat a chunk many times (large inputs).
    11 if !lines.is_empty() => {
      let (start, end) = lines[rng.usize(..lines.len())];
      let copy = input[start..end].to_vec();
      let times = rng.usize(1..200);
      let mut block = Vec::with_capacity(copy.len() * times);
      for _ in 0..times {
        block.extend_from_slice(&copy);
      }
      input.splice(end..end, block);
    }
    // Replace a value after a `: ` with a random scalar.
    12 => {
      let positions: Vec<usize> = input
        .windows(2)
        .enumerate()
        .filter(|(_, pair)| pair == b": ")
        .map(|(index, _)| index + 2)
        .collect();
      if !positions.is_empty() {
        let at = positions[rng.usize(..positions.len())];
        let mut end = at;
        while end < input.len() && input[end] != b'\n' && input[end] != b',' && input[end] != b'}' {
          end += 1;
        }
        let scalar = SCALARS[rng.usize(..SCALARS.len())];
        input.splice(at..end, scalar.bytes());
      }
    }
    // Insert a generated structure at the start of a line.
    _ => {
      let at = lines
        .get(rng.usize(..lines.len().max(1)))
        .map_or(0, |(start, _)| *start);
      let mut block = Vec::new();
      let (indent, entries) = (rng.usize(0..3), rng.usize(1..3));
      generate_map(rng, &mut block, indent, entries);
      input.splice(at..at, block);
    }
  }
}

/// A random block mapping of the format's keys at `indent` levels (two spaces each).
fn generate_map(rng: &mut fastrand::Rng, out: &mut Vec<u8>, indent: usize, entries: usize) {
  for _ in 0..entries {
    out.extend(std::iter::repeat_n(b' ', indent * 2));
    out.extend_from_slice(KEYS[rng.usize(..KEYS.len())].as_bytes());
    out.extend_from_slice(b":");
    generate_value(rng, out, indent);
  }
}

fn generate_value(rng: &mut fastrand::Rng, out: &mut Vec<u8>, indent: usize) {
  let nested = indent < 6;
  match rng.u8(..6) {
    0 if nested => {
      out.push(b'\n');
      let entries = rng.usize(1..4);
      generate_map(rng, out, indent + 1, entries);
    }
    1 if nested => {
      out.push(b'\n');
      for _ in 0..rng.usize(1..4) {
        out.extend(std::iter::repeat_n(b' ', indent * 2 + 2));
        out.extend_from_slice(b"- ");
        if rng.bool() {
          out.extend_from_slice(KEYS[rng.usize(..KEYS.len())].as_bytes());
          out.extend_from_slice(b": ");
        }
        out.extend_from_slice(SCALARS[rng.usize(..SCALARS.len())].as_bytes());
        out.push(b'\n');
      }
    }
    2 => {
      out.extend_from_slice(b" { ");
      for index in 0..rng.usize(0..4) {
        if index > 0 {
          out.extend_from_slice(b", ");
        }
        out.extend_from_slice(KEYS[rng.usize(..KEYS.len())].as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(SCALARS[rng.usize(..SCALARS.len())].as_bytes());
      }
      out.extend_from_slice(b" }\n");
    }
    3 => {
      out.extend_from_slice(b" [");
      for index in 0..rng.usize(0..4) {
        if index > 0 {
          out.extend_from_slice(b", ");
        }
        out.extend_from_slice(SCALARS[rng.usize(..SCALARS.len())].as_bytes());
      }
      out.extend_from_slice(b"]\n");
    }
    _ => {
      out.push(b' ');
      out.extend_from_slice(SCALARS[rng.usize(..SCALARS.len())].as_bytes());
      out.push(b'\n');
    }
  }
}
