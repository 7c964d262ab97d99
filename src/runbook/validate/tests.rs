use std::{path::PathBuf, time::Duration};

use super::*;
use crate::runbook::test_catalog::CATALOG;

fn check(yaml: &str) -> Result<Runbook, Diagnostics> {
  load(Path::new("rb.yaml"), yaml.as_bytes(), &CATALOG)
}

fn kinds(yaml: &str) -> Vec<DiagnosticKind> {
  match check(yaml) {
    Ok(_) => Vec::new(),
    Err(diagnostics) => diagnostics
      .into_iter()
      .map(|diagnostic| diagnostic.kind)
      .collect(),
  }
}

const HEADER: &str = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: t }\n";

/// The positions of the diagnostics of `yaml`.
fn spans(yaml: &[u8]) -> Vec<(usize, usize)> {
  match load(Path::new("rb.yaml"), yaml, &CATALOG) {
    Ok(_) => Vec::new(),
    Err(diagnostics) => diagnostics
      .iter()
      .map(|diagnostic| (diagnostic.span.line, diagnostic.span.column))
      .collect(),
  }
}

// Found by the reliability suite's fuzzer (tests/reliability/fuzz.rs).
#[test]
fn a_byte_order_mark_is_not_part_of_the_first_key() {
  let yaml = format!("\u{feff}{HEADER}steps: []\n");
  check(&yaml).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
}

#[test]
fn a_nul_byte_is_an_error_not_the_end_of_the_file() {
  let yaml = format!("{HEADER}steps: []\n\0garbage: [\n");
  assert_eq!(spans(yaml.as_bytes()), vec![(5, 1)]);
  assert!(
    matches!(&kinds(&yaml)[0], DiagnosticKind::Syntax { message } if message.contains("U+0000"))
  );
}

#[test]
fn an_error_at_the_end_of_the_input_is_placed_on_its_last_line() {
  // The scanner puts it on line 5, after the last line.
  let yaml = format!("{HEADER}params:\n  p: {{ type: string, allowed: ");
  assert_eq!(spans(yaml.as_bytes()), vec![(5, 31)]);
  let yaml = format!("{HEADER}steps: [\n");
  let found = spans(yaml.as_bytes());
  assert!(found.iter().all(|&(line, _)| line <= 5), "{found:?}");
}

#[test]
fn an_empty_file_is_reported_at_its_start() {
  assert_eq!(spans(b""), vec![(1, 1)]);
  assert_eq!(spans(b"\n\n"), vec![(1, 1)]);
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
  let dir = Path::new("tests/fixtures/runbooks").join(kind);
  let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
    .unwrap()
    .map(|entry| entry.unwrap().path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
    .collect();
  paths.sort();
  paths
}

/// Each `invalid/NAME.yaml` renders exactly `NAME.expected`. `DRCTL_BLESS=1` rewrites them.
#[test]
fn invalid_fixtures_render_exactly() {
  let paths = fixtures("invalid");
  assert!(paths.len() >= 15, "only {} invalid fixtures", paths.len());
  let mut mismatches = Vec::new();
  for path in paths {
    // The real action table: the fixtures check `with` fields of every action, and
    // `drctl validate` (tests/validate.rs) renders the same files with it.
    let rendered = match load_file(&path, &crate::actions::Catalog) {
      Ok(_) => format!("{} unexpectedly loaded\n", path.display()),
      Err(diagnostics) => format!("{diagnostics}\n"),
    };
    let expected_path = path.with_extension("expected");
    if std::env::var_os("DRCTL_BLESS").is_some() {
      std::fs::write(&expected_path, &rendered).unwrap();
      continue;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if rendered != expected {
      mismatches.push(format!(
        "{}:\n--- expected\n{expected}--- got\n{rendered}",
        path.display()
      ));
    }
  }
  assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn valid_fixtures_load() {
  let paths = fixtures("valid");
  assert!(!paths.is_empty());
  for path in paths {
    if let Err(diagnostics) = load_file(&path, &CATALOG) {
      panic!("{diagnostics}");
    }
  }
}

#[test]
fn builds_the_model() {
  let yaml = format!(
    "{HEADER}params:\n  region: {{ type: string, required: true, allowed: [a, b] }}\n  n: {{ type: int, default: 3 }}\n\
     vars:\n  hc: hc-${{{{ params.region }}}}\nobjectives: {{ rto: 15m }}\n\
     defaults: {{ timeout: 1m, retry: {{ attempts: 2 }} }}\n\
     steps:\n  - id: a\n    action: wait.sleep\n    with: {{ duration: 1s }}\n    retry: 5\n\
     \x20 - id: b\n    action: ecs.scale_service\n    needs: [a]\n    approval: true\n    recovery: false\n\
     \x20   with: {{ region: x, cluster: c, service: s, desired_count: \"${{{{ params.n }}}}\" }}\n\
     \x20   rollback: {{ action: ecs.scale_service, with: {{ region: x, cluster: c, service: s, desired_count: 0 }} }}\n"
  );
  let runbook = check(&yaml).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
  assert_eq!(runbook.name, "t");
  assert_eq!(
    runbook.params[0].allowed,
    [Value::String("a".into()), Value::String("b".into())]
  );
  assert_eq!(runbook.params[1].default, Some(Value::Int(3)));
  assert_eq!(runbook.objectives.rto, Some(Duration::from_secs(900)));
  let (a, b) = (&runbook.steps[0], &runbook.steps[1]);
  assert_eq!(a.timeout, Duration::from_secs(60));
  assert_eq!(a.retry.attempts, 5);
  assert_eq!(b.retry.attempts, 2);
  assert_eq!(b.retry.backoff, Duration::from_secs(2));
  assert_eq!(b.needs, ["a"]);
  assert!(!b.recovery);
  assert_eq!(
    b.approval.as_ref().unwrap().prompt.source(),
    "Run step `b`?"
  );
  assert!(b.rollback.is_some());
  assert!(
    matches!(b.call.with.get("desired_count"), Some(Arg::Template(template, _)) if !template.is_literal())
  );
  assert_eq!(
    b.call.action_span,
    Span {
      line: 17,
      column: 13
    }
  );
}

#[test]
fn reports_every_error_at_once() {
  let yaml = format!(
    "{HEADER}steps:\n  - id: a\n    action: wait.slep\n    timout: 5m\n  - id: b\n    action: wait.sleep\n    with: {{ duration: soon, extra: 1 }}\n    on_failure: stop\n"
  );
  let kinds = kinds(&yaml);
  assert_eq!(kinds.len(), 5, "{kinds:?}");
  assert!(
    matches!(&kinds[0], DiagnosticKind::UnknownAction { suggestion: Some(s), .. } if s == "wait.sleep")
  );
  assert!(
    matches!(&kinds[1], DiagnosticKind::UnknownKey { suggestion: Some(s), .. } if s == "timeout")
  );
  assert!(matches!(&kinds[2], DiagnosticKind::InvalidDuration { .. }));
  assert!(matches!(&kinds[3], DiagnosticKind::UnknownField { .. }));
  assert!(matches!(&kinds[4], DiagnosticKind::InvalidValue { .. }));
}

#[test]
fn checks_references() {
  let yaml = format!(
    "{HEADER}params:\n  p: {{ type: string }}\nvars:\n  a: \"${{{{ vars.b }}}}\"\n  b: x\n  c: \"${{{{ steps.s1.outputs.lag_seconds }}}}\"\n\
     steps:\n  - id: s1\n    action: rds.promote_replica\n    with: {{ region: \"${{{{ params.q }}}}\", instance: i }}\n\
     \x20   rollback: {{ action: notify.slack, with: {{ webhook: w, text: \"${{{{ steps.s1.outputs.endpoint }}}}\" }} }}\n\
     \x20 - id: s2\n    action: notify.slack\n    needs: [s1]\n    with: {{ webhook: \"${{{{ secrets.HOOK }}}}\", text: \"${{{{ steps.s1.outputs.lag }}}} ${{{{ run.elapsed }}}} ${{{{ run.foo }}}} ${{{{ objectives.rto }}}}\" }}\n\
     \x20 - id: s3\n    action: notify.slack\n    with: {{ webhook: w, text: \"${{{{ steps.s1.outputs.endpoint }}}} ${{{{ steps.nope.outputs.x }}}} ${{{{ objectives.mttr }}}}\" }}\n"
  );
  let kinds = kinds(&yaml);
  let names: Vec<String> = kinds.iter().map(ToString::to_string).collect();
  assert_eq!(
    names,
    [
      "unknown variable `vars.b`",
      "`steps.s1.outputs.lag_seconds` is not available in vars",
      "unknown parameter `params.q`",
      "step `s1` has no output `lag`",
      "unknown run field `run.foo`",
      "objective `objectives.rto` is not set",
      "step `s3` uses outputs of `s1`, which it does not depend on",
      "reference to unknown step `nope`",
      "unknown objective `objectives.mttr`",
    ]
  );
}

#[test]
fn reference_positions_point_into_the_string() {
  let yaml = format!("{HEADER}steps:\n  - id: a\n    action: wait.sleep\n    with: {{ duration: \"${{{{ params.x }}}}\" }}\n");
  let diagnostics = check(&yaml).unwrap_err();
  let diagnostic = diagnostics.iter().next().unwrap();
  assert_eq!(
    diagnostic.span,
    Span {
      line: 7,
      column: 28
    }
  );
  assert_eq!(diagnostic.width, 8);
  assert_eq!(diagnostic.key, "steps[0].with.duration");
}

#[test]
fn long_needs_chains_do_not_overflow() {
  let mut yaml =
    format!("{HEADER}steps:\n  - {{ id: s0, action: wait.sleep, with: {{ duration: 1s }} }}\n");
  for index in 1..20_000 {
    yaml.push_str(&format!(
      "  - {{ id: s{index}, action: wait.sleep, needs: [s{}], with: {{ duration: 1s }} }}\n",
      index - 1
    ));
  }
  yaml = yaml.replace(
    "id: s0, action: wait.sleep,",
    "id: s0, action: wait.sleep, needs: [s19999],",
  );
  let kinds = kinds(&yaml);
  assert_eq!(kinds.len(), 1);
  assert!(matches!(&kinds[0], DiagnosticKind::NeedsCycle { cycle } if cycle.len() == 20_001));
}

#[test]
fn garbage_never_panics() {
  let inputs = [
    "",
    "---",
    "~",
    "[]",
    "- a",
    "a",
    ":",
    "{",
    "steps:",
    "apiVersion: [",
    "\t",
    "? [a]\n: b",
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: x\nsteps: 3",
    "steps: [{}]",
    "steps: [[]]",
    "steps:\n  - id: x\n    action: wait.sleep\n    with: [1]",
    "params: {a: {type: int, default: []}}",
    "steps: [{id: a, action: notify.slack, with: {text: '${{', webhook: '${{ ( }}'}}]",
  ];
  for input in inputs {
    let _ = check(input);
    let _ = check(&format!("{HEADER}{input}"));
  }
}
