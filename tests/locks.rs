//! One run per runbook at a time; stale locks are reported and can be broken.

use std::time::Duration;

use crate::support::{signal, Test};

const SLOW: [&str; 6] = [
  "failover",
  "us-west-2",
  "--sim",
  "--yes",
  "--time-scale",
  "30",
];

fn lock_file(test: &Test) -> std::path::PathBuf {
  test.path().join(".drctl/locks/regional-failover.lock")
}

#[test]
fn a_second_failover_while_one_runs_exits_4_naming_the_holder() {
  let test = Test::new();
  let mut first = test.spawn(SLOW);
  // The lock is taken (and fsynced) before the run directory is created: wait for both.
  test.wait_for(
    Duration::from_secs(20),
    "the first run to take the lock",
    || lock_file(&test).exists() && !test.run_ids().is_empty(),
  );
  let holder = test.run_ids().pop().unwrap();
  let second = test.run_args(SLOW).status(4);
  let stderr = second.stderr();
  assert!(
    stderr.contains(&format!("locked by run {holder}")),
    "{stderr}"
  );
  assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
  assert!(stderr.contains("host "), "{stderr}");
  assert_eq!(test.run_ids().len(), 1, "the refused run left no state");
  signal(&first, "KILL");
  let _ = first.wait();
}

#[test]
fn a_killed_holder_leaves_a_stale_lock_that_unlock_breaks() {
  let test = Test::new();
  let mut first = test.spawn(SLOW);
  test.wait_for(
    Duration::from_secs(20),
    "the first run to take the lock",
    || lock_file(&test).exists() && !test.run_ids().is_empty(),
  );
  signal(&first, "KILL");
  let _ = first.wait();
  let holder = test.run_ids().pop().unwrap();

  let refused = test.run_args(SLOW).status(4);
  assert!(
    refused.stderr().contains("the lock is stale"),
    "{}",
    refused.stderr()
  );
  assert!(
    refused.stderr().contains("drctl unlock regional-failover"),
    "{}",
    refused.stderr()
  );

  let unlock = test.run_args(["unlock", "regional-failover"]).status(0);
  assert!(
    unlock
      .stdout()
      .contains(&format!("was held by run {holder}")),
    "{}",
    unlock.stdout()
  );
  assert!(!lock_file(&test).exists());
  let again = test.run_args(["unlock", "regional-failover"]).status(0);
  assert!(again.stdout().contains("was not locked"));
}
