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

/// Wait until the first run holds the lock and has started its journal; its run id.
fn wait_for_holder(test: &Test) -> String {
  test.wait_for(
    Duration::from_secs(20),
    "the first run to take the lock and start",
    || lock_file(test).exists() && test.run_ids().iter().any(|id| !test.journal(id).is_empty()),
  );
  test.run_ids().pop().unwrap()
}

#[test]
fn a_second_failover_while_one_runs_exits_4_naming_the_holder() {
  let test = Test::new();
  let mut first = test.spawn(SLOW);
  let holder = wait_for_holder(&test);
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
  let holder = wait_for_holder(&test);
  signal(&first, "KILL");
  let _ = first.wait();

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

#[test]
fn a_run_whose_lock_is_taken_by_another_run_stops_exits_4_and_is_resumable() {
  // Renewed every second: the loss is noticed within about a second.
  let test = Test::new().env("DRCTL_LOCK_LEASE", "3s");
  let first = test.spawn(SLOW);
  let run_id = wait_for_holder(&test);
  // `drctl unlock`, then another run takes the lock: the running one must not take it back.
  let thief = serde_json::json!({
    "run_id": "thief-run",
    "runbook": "regional-failover",
    "host": "elsewhere",
    "pid": 1,
    "started_at": chrono::Utc::now(),
    "lease_expires_at": chrono::Utc::now() + chrono::Duration::hours(1),
  });
  std::fs::remove_file(lock_file(&test)).unwrap();
  std::fs::write(lock_file(&test), thief.to_string()).unwrap();
  let robbed = first.wait_with_output().unwrap();
  let stderr = String::from_utf8_lossy(&robbed.stderr);
  assert_eq!(robbed.status.code(), Some(4), "{stderr}");
  assert!(stderr.contains("thief-run"), "{stderr}");
  assert!(
    stderr.contains(&format!("drctl resume {run_id}")),
    "{stderr}"
  );
  let lock = std::fs::read_to_string(lock_file(&test)).unwrap();
  assert!(
    lock.contains("thief-run"),
    "the lock was taken back: {lock}"
  );
  assert!(
    test.journal(&run_id).contains("\"event\":\"lock_lost\""),
    "{}",
    test.journal(&run_id)
  );
  // The other holder is done: the robbed run resumes to the end.
  std::fs::remove_file(lock_file(&test)).unwrap();
  test.run_args(["resume", run_id.as_str()]).status(0);
}
