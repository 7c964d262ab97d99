//! Files over 10 MiB are refused before they are read: runbooks, drill files and world files
//! exit 2 with a message naming the file and the limit. The files here are sparse (they cost no
//! disk), and the largest is far bigger than memory: only a size check before reading survives it.

use std::{fs::File, path::Path};

use crate::support::Test;

const MIB: u64 = 1024 * 1024;

/// A file of `len` zero bytes that takes no space on disk.
fn sparse(path: &Path, len: u64) {
  std::fs::create_dir_all(path.parent().unwrap()).unwrap();
  File::create(path).unwrap().set_len(len).unwrap();
}

#[test]
fn a_runbook_over_10_mib_is_refused_before_it_is_read() {
  let test = Test::new();
  for (name, len) in [("big", 10 * MIB + 1), ("huge", 1 << 40)] {
    let file = format!("runbooks/{name}.yaml");
    sparse(&test.path().join(&file), len);
    for args in [
      vec!["validate", file.as_str()],
      vec!["run", file.as_str(), "--sim", "--yes"],
      vec!["plan", file.as_str(), "--sim"],
    ] {
      let run = test.run_args(&args).status(2);
      assert!(
        run.stderr().contains(&format!(
          "error: the runbook is larger than 10 MiB, the most drctl reads\n --> {file}"
        )),
        "{args:?}: {}",
        run.stderr()
      );
    }
  }
  assert!(test.run_ids().is_empty());
}

#[test]
fn a_runbook_of_exactly_10_mib_is_read() {
  let test = Test::new();
  let file = "runbooks/limit.yaml";
  let mut yaml = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: limit }\nsteps:\n  - { id: a, action: wait.sleep, with: { duration: 1s } }\n".to_string();
  let pad = 10 * MIB as usize - yaml.len();
  yaml.push('#');
  yaml.push_str(&" ".repeat(pad - 2));
  yaml.push('\n');
  assert_eq!(yaml.len() as u64, 10 * MIB);
  let test = test.file(file, &yaml);
  test.run_args(["validate", file]).status(0);
}

#[test]
fn a_drill_file_over_10_mib_is_refused() {
  let test = Test::new();
  sparse(&test.path().join("drills/big.yaml"), 10 * MIB + 1);
  let run = test.run_args(["drill", "list"]).status(2);
  assert!(
    run.stderr().contains(
      "error: the drill file is larger than 10 MiB, the most drctl reads\n --> drills/big.yaml"
    ),
    "{}",
    run.stderr()
  );
}

#[test]
fn a_world_file_over_10_mib_is_refused() {
  let test = Test::new();
  sparse(&test.path().join("big-world.yaml"), 1 << 40);
  let run = test
    .run_args([
      "run",
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "--sim",
      "big-world.yaml",
      "--yes",
    ])
    .status(2);
  assert!(
    run
      .stderr()
      .contains("big-world.yaml: the world file is larger than 10 MiB, the most drctl reads"),
    "{}",
    run.stderr()
  );
  // The run's directory may exist (the simulator lives in it), but no run started.
  for run_id in test.run_ids() {
    assert_eq!(test.journal(&run_id), "", "{run_id} started");
  }
}
