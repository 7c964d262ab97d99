//! `drctl validate`: the shipped runbooks are valid; every malformed fixture is reported exactly.

use crate::support::{repo, Run, Test, BIN};

fn validate(path: &str) -> Run {
  Run(
    std::process::Command::new(BIN)
      .args(["validate", path])
      .current_dir(repo())
      .env("NO_COLOR", "1")
      .output()
      .unwrap(),
  )
}

#[test]
fn shipped_runbooks_validate() {
  let run = validate("runbooks").status(0);
  assert!(
    run
      .stdout()
      .contains("ok    runbooks/regional-failover.yaml (11 steps)"),
    "{}",
    run.stdout()
  );
  assert!(
    run
      .stdout()
      .contains("ok    runbooks/regional-failover-arc.yaml (9 steps)"),
    "{}",
    run.stdout()
  );
  assert!(run.stdout().contains("5 file(s), 0 invalid"));
}

#[test]
fn every_malformed_runbook_exits_2_with_its_exact_diagnostics() {
  let dir = repo().join("tests/fixtures/runbooks/invalid");
  let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
    .unwrap()
    .flatten()
    .map(|entry| entry.path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
    .collect();
  fixtures.sort();
  assert!(fixtures.len() >= 50, "only {} fixtures", fixtures.len());
  for fixture in fixtures {
    let relative = fixture
      .strip_prefix(repo())
      .unwrap()
      .to_string_lossy()
      .into_owned();
    let expected = std::fs::read_to_string(fixture.with_extension("expected")).unwrap();
    let run = validate(&relative).status(2);
    assert_eq!(
      run.stderr(),
      format!("{expected}\n"),
      "diagnostics of {relative}"
    );
    assert!(!run.stderr().contains("panicked"), "{relative}");
  }
}

#[test]
fn a_typo_a_cycle_and_an_unknown_reference_are_reported_together() {
  let run = validate("tests/fixtures/runbooks/invalid/three_errors.yaml").status(2);
  let stderr = run.stderr();
  assert!(stderr.contains("unknown action `rds.promte_replica`"));
  assert!(stderr.contains("--> tests/fixtures/runbooks/invalid/three_errors.yaml:12:13"));
  assert!(stderr.contains("needs cycle: verify-outage -> notify -> promote-db -> verify-outage"));
  assert!(stderr.contains("unknown parameter `params.regoin`"));
  assert!(stderr.contains("three_errors.yaml:18:81"));
  assert!(stderr.contains("error: 3 errors in"));
}

/// Drill files are validated when drills are loaded (`drctl drill list`): each malformed drill,
/// alone in `drills/`, exits 2 with its exact diagnostics (named by its path there).
#[test]
fn every_malformed_drill_exits_2_with_its_exact_diagnostics() {
  let dir = repo().join("tests/fixtures/drills/invalid");
  let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
    .unwrap()
    .flatten()
    .map(|entry| entry.path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
    .collect();
  fixtures.sort();
  assert!(
    fixtures.len() >= 15,
    "only {} drill fixtures",
    fixtures.len()
  );
  for fixture in fixtures {
    let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
    let expected = std::fs::read_to_string(fixture.with_extension("expected"))
      .unwrap()
      .replace("tests/fixtures/drills/invalid/", "drills/");
    let test = Test::new();
    std::fs::create_dir_all(test.path().join("drills")).unwrap();
    std::fs::copy(&fixture, test.path().join("drills").join(&name)).unwrap();
    let run = test.run_args(["drill", "list"]).status(2);
    assert!(
      run.stderr().contains(expected.trim_end()),
      "diagnostics of {name}\n--- expected\n{expected}\n--- got\n{}",
      run.stderr()
    );
    assert!(!run.stderr().contains("panicked"), "{name}");
  }
}

#[test]
fn drill_files_validate_as_drills_beside_runbooks() {
  let test = Test::new();
  let drills = test.path().join("drills");
  std::fs::create_dir_all(&drills).unwrap();
  for entry in std::fs::read_dir(repo().join("drills")).unwrap() {
    let entry = entry.unwrap();
    std::fs::copy(entry.path(), drills.join(entry.file_name())).unwrap();
  }
  let run = test.run_args(["validate", "drills", "runbooks"]).status(0);
  assert!(
    run
      .stdout()
      .contains("ok    drills/quarterly-regional-failover.yaml (drill of regional-failover)"),
    "{}",
    run.stdout()
  );
  assert!(
    run.stdout().contains("8 file(s), 0 invalid"),
    "{}",
    run.stdout()
  );

  // A broken drill gets the drill file's diagnostics, not a runbook's.
  std::fs::write(
    drills.join("broken.yaml"),
    "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: broken }\nrunbook: no-such-runbook\nschedule: \"@weekly\"\n",
  )
  .unwrap();
  let run = test.run_args(["validate", "drills/broken.yaml"]).status(2);
  assert!(
    run.stderr().contains("drills/broken.yaml:4:"),
    "{}",
    run.stderr()
  );
  assert!(
    !run.stderr().contains("unsupported kind"),
    "{}",
    run.stderr()
  );
}
