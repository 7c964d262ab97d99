//! `drctl schema` and `drctl schema --kind drill`: each is a valid draft 2020-12 JSON Schema
//! (checked against the metaschema), and an independent validator, Python's `jsonschema`, gives
//! every runbook and drill file of the repository the verdict `drctl` gives it.
//!
//! The files are read as an editor would: YAML 1.2 turned into JSON by another YAML parser
//! (serde_yaml, not the one drctl validates with). The exceptions are the errors a schema cannot
//! express, listed below by fixture with the reason; each is checked to really be one (drctl
//! rejects the file, and the schema accepts it or the YAML reader refuses it first), so the list
//! cannot hide a disagreement.

use std::{
  collections::BTreeMap,
  path::{Path, PathBuf},
  process::Command,
};

use serde_json::{json, Map, Value};

use crate::support::{repo, Test, BIN};

/// Why a schema cannot reach `drctl`'s verdict on a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beyond {
  /// `needs` forms a cycle.
  Cycle,
  /// A name declared elsewhere: an unknown `needs` step, a `${{ }}` reference, the outputs of a
  /// step not depended on, a drill's runbook or the runbook's parameters.
  Reference,
  /// `${{ }}` template syntax inside a string.
  Template,
  /// Two steps with one id.
  DuplicateId,
  /// A parameter's default outside its own `allowed` list.
  DefaultNotAllowed,
  /// A cron range that runs backwards (`12-3`).
  CronRange,
  /// A duration over its maximum (366 days; 6 hours for `recovered_when.within`): a pattern
  /// sees its units, not its sum.
  DurationBound,
  /// drctl refuses YAML aliases; a schema sees them expanded.
  Alias,
  /// `recovered_when` names a step whose action changes the world: the schema knows the id's
  /// shape, not which step it names.
  MutatingRecoveryStep,
  /// The YAML reader refuses the file (syntax, encoding, duplicate keys, several documents), so
  /// there is no document for a schema to judge. Checked: serde_yaml refuses it too.
  NotYaml,
}

const RUNBOOK_EXCEPTIONS: &[(&str, Beyond)] = &[
  // Written for the unit tests' small action catalog, whose `rds.promote_replica` has a
  // `lag_seconds` output; the real one does not.
  (
    "tests/fixtures/runbooks/valid/regional-failover.yaml",
    Beyond::Reference,
  ),
  (
    "tests/fixtures/runbooks/invalid/duplicate_key_in_step.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/duration_too_long.yaml",
    Beyond::DurationBound,
  ),
  (
    "tests/fixtures/runbooks/invalid/duplicate_step_id.yaml",
    Beyond::DuplicateId,
  ),
  (
    "tests/fixtures/runbooks/invalid/duplicate_yaml_key.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/eof_in_flow_mapping.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/invalid_utf8_sequence.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/long_cycle.yaml",
    Beyond::Cycle,
  ),
  (
    "tests/fixtures/runbooks/invalid/multiple_documents.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/needs_cycle.yaml",
    Beyond::Cycle,
  ),
  (
    "tests/fixtures/runbooks/invalid/needs_self.yaml",
    Beyond::Cycle,
  ),
  (
    "tests/fixtures/runbooks/invalid/non_utf8.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/nul_byte.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/output_not_needed.yaml",
    Beyond::Reference,
  ),
  (
    "tests/fixtures/runbooks/invalid/param_default_not_allowed.yaml",
    Beyond::DefaultNotAllowed,
  ),
  (
    "tests/fixtures/runbooks/invalid/syntax_error.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/tab_indent.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/template_bad_expression.yaml",
    Beyond::Template,
  ),
  (
    "tests/fixtures/runbooks/invalid/template_unclosed.yaml",
    Beyond::Template,
  ),
  (
    "tests/fixtures/runbooks/invalid/template_unknown_root.yaml",
    Beyond::Template,
  ),
  (
    "tests/fixtures/runbooks/invalid/terminal_escape.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/unclosed_flow_list.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/unknown_needs.yaml",
    Beyond::Reference,
  ),
  (
    "tests/fixtures/runbooks/invalid/unknown_template_ref.yaml",
    Beyond::Reference,
  ),
  (
    "tests/fixtures/runbooks/invalid/unterminated_quote.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/runbooks/invalid/yaml_alias.yaml",
    Beyond::Alias,
  ),
  (
    "tests/fixtures/runbooks/invalid/recovered_when_unknown_step.yaml",
    Beyond::Reference,
  ),
  (
    "tests/fixtures/runbooks/invalid/recovered_when_mutating_step.yaml",
    Beyond::MutatingRecoveryStep,
  ),
  (
    "tests/fixtures/runbooks/invalid/recovered_when_bound_too_long.yaml",
    Beyond::DurationBound,
  ),
  (
    "tests/fixtures/runbooks/invalid/recovered_when_alarms_step_output.yaml",
    Beyond::Reference,
  ),
];

const DRILL_EXCEPTIONS: &[(&str, Beyond)] = &[
  (
    "tests/fixtures/drills/invalid/cron-backwards-range.yaml",
    Beyond::CronRange,
  ),
  (
    "tests/fixtures/drills/invalid/duplicate-key.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/drills/invalid/missing-param.yaml",
    Beyond::Reference,
  ),
  (
    "tests/fixtures/drills/invalid/non-utf8.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/drills/invalid/param-not-allowed.yaml",
    Beyond::Reference,
  ),
  (
    "tests/fixtures/drills/invalid/syntax-error.yaml",
    Beyond::NotYaml,
  ),
  (
    "tests/fixtures/drills/invalid/tab-indent.yaml",
    Beyond::NotYaml,
  ),
];

/// One file and both verdicts on it.
struct Case {
  name: String,
  /// `None`: the YAML reader refused the file.
  instance: Option<Value>,
  drctl_accepts: bool,
}

#[derive(Debug, Default)]
struct Tally {
  /// Files both accept.
  accepted: usize,
  /// Files both reject.
  rejected: usize,
  /// Files on the exception list (drctl rejects them, for a reason a schema cannot see).
  exceptions: usize,
  /// Every file the schema accepts.
  schema_accepts: Vec<String>,
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
  let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
    .unwrap()
    .flatten()
    .map(|entry| entry.path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
    .collect();
  files.sort();
  files
}

/// A YAML file as the JSON document an editor validates, or why the YAML reader refused it.
fn to_json(bytes: &[u8]) -> Result<Value, String> {
  let text = std::str::from_utf8(bytes).map_err(|err| err.to_string())?;
  // A byte-order mark may open a YAML stream (YAML 1.2, 5.2); serde_yaml reads one as the start
  // of a second document.
  let text = text.strip_prefix('\u{feff}').unwrap_or(text);
  let yaml: serde_yaml::Value = serde_yaml::from_str(text).map_err(|err| err.to_string())?;
  Ok(yaml_to_json(yaml))
}

fn yaml_to_json(yaml: serde_yaml::Value) -> Value {
  use serde_yaml::Value as Yaml;
  match yaml {
    Yaml::Null => Value::Null,
    Yaml::Bool(value) => Value::Bool(value),
    Yaml::Number(number) => {
      if let Some(value) = number.as_i64() {
        json!(value)
      } else if let Some(value) = number.as_u64() {
        json!(value)
      } else {
        number
          .as_f64()
          .and_then(serde_json::Number::from_f64)
          .map_or(Value::Null, Value::Number)
      }
    }
    Yaml::String(text) => Value::String(text),
    Yaml::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
    Yaml::Mapping(entries) => Value::Object(
      entries
        .into_iter()
        .map(|(key, value)| {
          let key = match key {
            Yaml::String(text) => text,
            other => serde_yaml::to_string(&other)
              .unwrap()
              .trim_end()
              .to_string(),
          };
          (key, yaml_to_json(value))
        })
        .collect::<Map<_, _>>(),
    ),
    Yaml::Tagged(tagged) => yaml_to_json(tagged.value),
  }
}

fn schema(kind: &str) -> Value {
  let output = Command::new(BIN)
    .args(["schema", "--kind", kind])
    .output()
    .unwrap();
  assert!(output.status.success(), "drctl schema --kind {kind}");
  serde_json::from_slice(&output.stdout).unwrap()
}

/// Python's `jsonschema`: checks `schema` against the draft 2020-12 metaschema, then returns
/// each instance's errors (empty: accepted).
fn independent_verdicts(
  schema: &Value,
  instances: &BTreeMap<String, Value>,
) -> BTreeMap<String, Vec<String>> {
  let dir = tempfile::tempdir().unwrap();
  let input = dir.path().join("input.json");
  std::fs::write(
    &input,
    serde_json::to_vec(&json!({ "schema": schema, "instances": instances })).unwrap(),
  )
  .unwrap();
  let output = Command::new("python3")
    .arg(repo().join("tests/support/jsonschema_check.py"))
    .arg(&input)
    .output()
    .expect("python3 runs (the schema tests validate with Python's jsonschema)");
  let stderr = String::from_utf8_lossy(&output.stderr);
  assert!(
    !stderr.contains("No module named 'jsonschema'"),
    "install Python's jsonschema (`python3 -m pip install 'jsonschema>=4.18'`, as .ci/test does)"
  );
  assert!(output.status.success(), "the validator refused: {stderr}");
  serde_json::from_slice(&output.stdout).unwrap()
}

fn exit_code(output: &std::process::Output, name: &str) -> bool {
  let stderr = String::from_utf8_lossy(&output.stderr);
  match output.status.code() {
    Some(0) => true,
    Some(2) => false,
    other => panic!("{name}: drctl exited {other:?}\n{stderr}"),
  }
}

fn runbook_case(path: &Path) -> Case {
  let output = Command::new(BIN)
    .arg("validate")
    .arg(path)
    .env("NO_COLOR", "1")
    .output()
    .unwrap();
  Case {
    name: path
      .strip_prefix(repo())
      .unwrap_or(path)
      .display()
      .to_string(),
    instance: to_json(&std::fs::read(path).unwrap()).ok(),
    drctl_accepts: exit_code(&output, &path.display().to_string()),
  }
}

/// A drill file is validated by `drctl drill list` in a directory with the shipped runbooks and
/// only this drill in `drills/`.
fn drill_case(path: &Path) -> Case {
  let test = Test::new();
  let drills = test.path().join("drills");
  std::fs::create_dir_all(&drills).unwrap();
  std::fs::copy(path, drills.join(path.file_name().unwrap())).unwrap();
  let run = test.run_args(["drill", "list"]);
  Case {
    name: path
      .strip_prefix(repo())
      .unwrap_or(path)
      .display()
      .to_string(),
    instance: to_json(&std::fs::read(path).unwrap()).ok(),
    drctl_accepts: exit_code(&run.0, &path.display().to_string()),
  }
}

/// Compare the verdicts; returns the tally, panics with every disagreement.
fn compare(schema: &Value, cases: &[Case], exceptions: &[(&str, Beyond)]) -> Tally {
  let instances: BTreeMap<String, Value> = cases
    .iter()
    .filter_map(|case| Some((case.name.clone(), case.instance.clone()?)))
    .collect();
  let verdicts = independent_verdicts(schema, &instances);
  let mut tally = Tally::default();
  let mut disagreements = Vec::new();
  for case in cases {
    let errors = verdicts.get(&case.name);
    let schema_accepts = errors.is_some_and(Vec::is_empty);
    if schema_accepts {
      tally.schema_accepts.push(case.name.clone());
    }
    let exception = exceptions
      .iter()
      .find(|(name, _)| *name == case.name)
      .map(|(_, why)| *why);
    match exception {
      Some(why) => {
        tally.exceptions += 1;
        let real = !case.drctl_accepts
          && match why {
            Beyond::NotYaml => case.instance.is_none(),
            _ => schema_accepts,
          };
        if !real {
          disagreements.push(format!(
            "{}: listed as beyond a schema ({why:?}), but drctl accepts: {}, schema errors: {errors:?}",
            case.name, case.drctl_accepts
          ));
        }
      }
      None if case.instance.is_none() => disagreements.push(format!(
        "{}: the YAML reader refused it: {:?}",
        case.name,
        std::fs::read(repo().join(&case.name))
          .ok()
          .and_then(|bytes| to_json(&bytes).err())
      )),
      None if schema_accepts != case.drctl_accepts => disagreements.push(format!(
        "{}: drctl accepts: {}, the schema accepts: {schema_accepts} {errors:?}",
        case.name, case.drctl_accepts
      )),
      None if schema_accepts => tally.accepted += 1,
      None => tally.rejected += 1,
    }
  }
  assert!(
    disagreements.is_empty(),
    "{} disagreement(s):\n{}",
    disagreements.len(),
    disagreements.join("\n")
  );
  tally
}

#[test]
fn the_runbook_schema_gives_every_runbook_drctls_verdict() {
  let mut cases: Vec<Case> = Vec::new();
  for dir in [
    "runbooks",
    "tests/fixtures/runbooks/valid",
    "tests/fixtures/runbooks/invalid",
  ] {
    cases.extend(
      yaml_files(&repo().join(dir))
        .iter()
        .map(|path| runbook_case(path)),
    );
  }
  let valid = cases.iter().filter(|case| case.drctl_accepts).count();
  assert!(valid >= 6, "only {valid} valid runbooks");
  let tally = compare(&schema("runbook"), &cases, RUNBOOK_EXCEPTIONS);
  println!(
    "runbook schema (Python jsonschema, Draft202012Validator): {} files, {} accepted by both, {} rejected by both, {} beyond a schema",
    cases.len(),
    tally.accepted,
    tally.rejected,
    tally.exceptions
  );
  assert_eq!(tally.accepted, valid, "every valid runbook is accepted");
  assert!(tally.rejected >= 15, "{tally:?}");
  // Every shipped runbook and every fixture written to be valid passes the schema.
  for case in &cases {
    if case.name.starts_with("runbooks/") || case.name.contains("/valid/") {
      assert!(tally.schema_accepts.contains(&case.name), "{}", case.name);
    }
  }
}

#[test]
fn the_drill_schema_gives_every_drill_drctls_verdict() {
  let mut cases: Vec<Case> = Vec::new();
  for dir in ["drills", "tests/fixtures/drills/invalid"] {
    cases.extend(
      yaml_files(&repo().join(dir))
        .iter()
        .map(|path| drill_case(path)),
    );
  }
  let valid = cases.iter().filter(|case| case.drctl_accepts).count();
  assert!(valid >= 3, "only {valid} valid drills");
  let tally = compare(&schema("drill"), &cases, DRILL_EXCEPTIONS);
  println!(
    "drill schema (Python jsonschema, Draft202012Validator): {} files, {} accepted by both, {} rejected by both, {} beyond a schema",
    cases.len(),
    tally.accepted,
    tally.rejected,
    tally.exceptions
  );
  assert_eq!(tally.accepted, valid, "every valid drill is accepted");
  assert!(tally.rejected >= 8, "{tally:?}");
}

/// The grammar corners, beyond the fixtures: durations (unit order, precision, whitespace), ids
/// and names, quoted numbers and booleans where the validator reads a value's text. Each probe is
/// a one-step runbook; the schema must agree with drctl on every one.
#[test]
fn the_runbook_schema_agrees_with_drctl_on_grammar_corners() {
  let dir = tempfile::tempdir().unwrap();
  let runbook = |step: &str| {
    format!(
      "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: probe }}\nsteps:\n  - {{ id: a, action: wait.sleep, with: {{ duration: 1s }}, {step} }}\n"
    )
  };
  let mut probes: Vec<String> = [
    "5m",
    "1h30m",
    "1.5s",
    "0.000000001s",
    "0.0000000001s",
    "1d2h3m4s5ms",
    "0.123456ms",
    "0.1234567ms",
    "1.1234567890123d",
    "1.12345678901234d",
    "30s5m",
    "1h1h",
    "1..5s",
    "1.s",
    ".5s",
    "-5s",
    "5mss",
    "5 m",
    "5",
    "m",
    "' 5m'",
    "'5m '",
    "''",
    "' '",
    "500ms",
    "1m0.25s",
  ]
  .iter()
  .map(|duration| runbook(&format!("timeout: {duration}")))
  .collect();
  for retry in [
    "0",
    "1",
    "4294967295",
    "4294967296",
    "'3'",
    "{ attempts: 0 }",
    "{ attempts: 2 }",
  ] {
    probes.push(runbook(&format!("retry: {retry}")));
  }
  for flag in ["true", "false", "True", "'true'", "yes", "1"] {
    probes.push(runbook(&format!("always: {flag}")));
  }
  for id in ["b-2", "B", "b_2", "7", "'7'", "ä"] {
    probes.push(runbook(&format!("name: {id}")).replace("id: a", &format!("id: {id}")));
  }
  for count in [
    "all", "1", "3", "'2'", "0", "-1", "lots", "ALL", "'all '", "1.5", "true",
  ] {
    probes.push(runbook("name: n").replace(
      "action: wait.sleep, with: { duration: 1s }",
      &format!(
        "action: elbv2.target_health, with: {{ target_group: tg, region: us-west-2, \
           min_healthy: {count} }}"
      ),
    ));
  }
  let cases: Vec<Case> = probes
    .iter()
    .enumerate()
    .map(|(index, text)| {
      let path = dir.path().join(format!("probe-{index:02}.yaml"));
      std::fs::write(&path, text).unwrap();
      let mut case = runbook_case(&path);
      case.name = format!("{}\n{text}", case.name);
      case
    })
    .collect();
  let tally = compare(&schema("runbook"), &cases, &[]);
  assert!(tally.accepted >= 10 && tally.rejected >= 10, "{tally:?}");
}
