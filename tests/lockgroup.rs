//! One incident at a time: lock groups (a failback is refused while a failover holds the group)
//! and freezes (`drctl freeze`, and every live run, hold back live drills; a held-back drill is
//! recorded as skipped, with why), on a local and on an `s3://` state.

use std::time::Duration;

use crate::support::{moto::Moto, s3::create_bucket, signal, Test};

/// A failover slow enough to be caught holding its lock.
const SLOW: [&str; 6] = [
  "failover",
  "us-west-2",
  "--sim",
  "--yes",
  "--time-scale",
  "30",
];

/// A quick live drill (a 1s sleep on the simulator) fired `@quarterly`, in its own lock group so
/// that only a freeze, never a held lock, can hold it back.
const TICK_RUNBOOK: &str = "apiVersion: drctl/v1\nkind: Runbook\n\
  metadata: { name: tick, lock_group: drills }\n\
  objectives: { rto: 15m }\nsteps:\n  - id: tick\n    action: wait.sleep\n    with: { duration: 1s }\n";
const TICK_DRILL: &str = "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: tick-drill }\n\
  runbook: tick\nschedule: \"@quarterly\"\nmode: live\ntarget: { backend: sim }\nreports: [json]\n";
const DRY_DRILL: &str = "apiVersion: drctl/v1\nkind: Drill\nmetadata: { name: dry-drill }\n\
  runbook: tick\nschedule: \"@quarterly\"\nmode: dry-run\ntarget: { backend: sim }\n";

fn with_tick() -> Test {
  Test::new()
    .file("runbooks/tick.yaml", TICK_RUNBOOK)
    .file("drills/tick-drill.yaml", TICK_DRILL)
}

fn lock_file(test: &Test, group: &str) -> std::path::PathBuf {
  test.path().join(format!(".drctl/locks/{group}.lock"))
}

/// Wait until a run holds a lock (whatever it is keyed by) and has started its journal; its run
/// id.
fn wait_for_failover(test: &Test) -> String {
  let locks = test.path().join(".drctl/locks");
  test.wait_for(
    Duration::from_secs(20),
    "the failover to take the lock and start",
    || {
      std::fs::read_dir(&locks).is_ok_and(|mut files| files.next().is_some())
        && test.run_ids().iter().any(|id| !test.journal(id).is_empty())
    },
  );
  test.run_ids().pop().unwrap()
}

/// The drill's history entries, oldest first.
fn history(test: &Test, drill: &str, state: &[&str]) -> Vec<serde_json::Value> {
  let mut args = vec!["drill", "history", drill, "--output", "json"];
  args.extend_from_slice(state);
  let run = test.run_args(&args).status(0);
  let rows: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
  rows
    .as_array()
    .unwrap()
    .iter()
    .map(|row| row["entry"].clone())
    .collect()
}

#[test]
fn a_failback_is_refused_while_a_failover_holds_the_group() {
  let test = Test::new();
  let mut failover = test.spawn(SLOW);
  let holder = wait_for_failover(&test);
  let refused = test
    .run_args(["run", "failback", "--sim", "--yes"])
    .status(4);
  let stderr = refused.stderr();
  assert!(
    stderr.contains(&format!(
      "lock group `default` is locked by run {holder} (host "
    )),
    "{stderr}"
  );
  assert!(
    stderr.contains(&format!("pid {}", failover.id())),
    "{stderr}"
  );
  assert!(
    stderr.contains("of runbook `regional-failover`"),
    "{stderr}"
  );
  assert_eq!(test.run_ids(), [holder], "the refused failback left no run");
  signal(&failover, "KILL");
  let _ = failover.wait();
}

#[test]
fn a_runbook_of_another_lock_group_runs_beside_a_failover() {
  let test = with_tick();
  let mut failover = test.spawn(SLOW);
  let holder = wait_for_failover(&test);
  let tick = test.run_args(["run", "tick", "--sim", "--yes"]).status(0);
  assert!(!tick.stderr().contains("locked"), "{}", tick.stderr());
  assert!(lock_file(&test, "default").exists());
  assert!(
    !lock_file(&test, "drills").exists(),
    "the tick released its own group's lock"
  );
  // `unlock` takes a runbook name and breaks its group's lock: the failover's, here.
  let refused = test.run_args(["unlock", "failback"]).status(4);
  assert!(
    refused
      .stderr()
      .contains(&format!("lock group `default` is locked by run {holder}")),
    "{}",
    refused.stderr()
  );
  signal(&failover, "KILL");
  let _ = failover.wait();
  let unlock = test.run_args(["unlock", "default"]).status(0);
  assert!(
    unlock.stdout().contains(&format!(
      "unlocked lock group `default` (was held by run {holder} of runbook `regional-failover`"
    )),
    "{}",
    unlock.stdout()
  );
}

#[test]
fn a_scheduled_live_drill_is_skipped_during_a_freeze_and_recorded_with_the_reason() {
  let test = with_tick().file("drills/dry-drill.yaml", DRY_DRILL);
  let once = |now: &str| test.run_args(["scheduler", "--once", "--jitter", "0s", "--now", now]);
  // First sight: the scheduler starts counting from mid-December.
  once("2026-12-15T00:00:00Z").status(0);
  let frozen = test
    .run_args(["freeze", "--reason", "CHG-42 database upgrade"])
    .status(0);
  assert!(
    frozen.stdout().contains("are frozen: frozen by "),
    "{}",
    frozen.stdout()
  );
  let shown = test.run_args(["freeze"]).status(0).stdout();
  assert!(shown.contains(": CHG-42 database upgrade"), "{shown}");
  {
    use std::os::unix::fs::PermissionsExt;
    let freeze = std::fs::metadata(test.path().join(".drctl/freeze.json")).unwrap();
    assert_eq!(
      freeze.permissions().mode() & 0o777,
      0o600,
      "the freeze is private"
    );
  }
  assert!(
    test
      .run_args(["drill", "list"])
      .status(0)
      .stdout()
      .contains("CHG-42"),
    "drill list shows the freeze"
  );

  // January's fire: the live drill is skipped (not failed: exit 0), the dry-run drill runs.
  let run = once("2027-01-15T00:00:00Z").status(0);
  let stdout = run.stdout();
  assert!(
    stdout.contains(
      "skipped tick-drill (due 2027-01-01 00:00:00 UTC): live drills are frozen (frozen by "
    ),
    "{stdout}"
  );
  assert!(stdout.contains("CHG-42 database upgrade)"), "{stdout}");
  assert!(
    stdout.contains("fired dry-drill (due 2027-01-01 00:00:00 UTC): exit 0"),
    "{stdout}"
  );
  assert!(test.run_ids().is_empty(), "the skipped drill did not run");
  let entries = history(&test, "tick-drill", &[]);
  assert_eq!(entries.len(), 1, "{entries:#?}");
  let entry = &entries[0];
  assert_eq!(entry["result"], "skipped", "{entry}");
  assert_eq!(entry["trigger"], "scheduler", "{entry}");
  assert_eq!(entry["due"], "2027-01-01T00:00:00Z", "{entry}");
  let reason = entry["reasons"][0].as_str().unwrap();
  assert!(reason.starts_with("frozen by "), "{reason}");
  assert!(reason.ends_with(": CHG-42 database upgrade"), "{reason}");

  // A manual run of the live drill is held back too, and says so (exit 4).
  let manual = test.run_args(["drill", "run", "tick-drill"]).status(4);
  assert!(
    manual
      .stdout()
      .contains("drill tick-drill: skipped, live drills are frozen"),
    "{}",
    manual.stdout()
  );

  let lifted = test.run_args(["unfreeze"]).status(0);
  assert!(
    lifted.stdout().contains("unfroze live drills on "),
    "{}",
    lifted.stdout()
  );
  test.run_args(["unfreeze"]).status(0);
  assert!(test
    .run_args(["freeze"])
    .status(0)
    .stdout()
    .contains("are not frozen"));
  // April's fire runs again.
  let run = once("2027-04-15T00:00:00Z").status(0);
  assert!(
    run
      .stdout()
      .contains("fired tick-drill (due 2027-04-01 00:00:00 UTC): exit 0"),
    "{}",
    run.stdout()
  );
  let results: Vec<String> = history(&test, "tick-drill", &[])
    .iter()
    .map(|entry| entry["result"].as_str().unwrap().to_string())
    .collect();
  assert_eq!(results, ["skipped", "skipped", "passed"]);
}

#[test]
fn a_live_run_freezes_drills_while_it_runs_and_not_after_it_crashed() {
  let test = with_tick();
  let mut failover = test.spawn(SLOW);
  let holder = wait_for_failover(&test);
  let skipped = test.run_args(["drill", "run", "tick-drill"]).status(4);
  let expected = format!("live run {holder} of runbook `regional-failover` is in progress");
  assert!(skipped.stdout().contains(&expected), "{}", skipped.stdout());
  let shown = test.run_args(["freeze"]).status(0).stdout();
  assert!(shown.contains(&expected), "{shown}");
  let status = test.run_args(["status", &holder]).status(0).stdout();
  assert!(status.contains("(still running)"), "{status}");
  assert!(
    status.contains(&format!("live drills are frozen: {expected}")),
    "{status}"
  );

  // Killed: its lock is stale (the process is gone), so it freezes nothing any more, though
  // its lock stays until it is resumed or unlocked.
  signal(&failover, "KILL");
  let _ = failover.wait();
  assert!(lock_file(&test, "default").exists());
  test.run_args(["drill", "run", "tick-drill"]).status(0);
  let results: Vec<String> = history(&test, "tick-drill", &[])
    .iter()
    .map(|entry| entry["result"].as_str().unwrap().to_string())
    .collect();
  assert_eq!(results, ["skipped", "passed"]);
}

#[test]
fn a_bad_lock_group_is_a_validation_error_with_its_position() {
  let test = Test::new().file(
    "runbooks/bad.yaml",
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata:\n  name: bad\n  lock_group: \"../x\"\n\
     steps:\n  - { id: a, action: wait.sleep, with: { duration: 1s } }\n",
  );
  let run = test.run_args(["validate", "runbooks/bad.yaml"]).status(2);
  let stderr = run.stderr();
  assert!(stderr.contains("invalid lock group `../x`"), "{stderr}");
  assert!(stderr.contains("runbooks/bad.yaml:5:15"), "{stderr}");
  let empty = test.run_args(["freeze", "--reason", "  "]).status(2);
  assert!(empty.stderr().contains("--reason"), "{}", empty.stderr());
}

// --- On an `s3://` state (moto) ------------------------------------------------------------

const BUCKET: &str = "drctl-lockgroup";
const STATE: &str = "s3://drctl-lockgroup/team";

/// An operator's machine: its own working directory (its own cache) on the shared state.
fn operator(moto: &Moto) -> Test {
  let mut test = with_tick();
  for (key, value) in moto.env() {
    test = test.env(&key, &value);
  }
  test.env("AWS_ENDPOINT_URL", &moto.endpoint)
}

#[test]
fn on_an_s3_state_a_freeze_and_a_failover_hold_back_what_other_machines_start() {
  let moto = Moto::start();
  create_bucket(&moto, BUCKET);
  let (alice, bob) = (operator(&moto), operator(&moto));
  let state = ["--state", STATE];
  let with_state = |args: &[&'static str]| [args, &state[..]].concat();

  alice
    .run_args(with_state(&[
      "freeze",
      "--reason",
      "region evacuation drill",
    ]))
    .status(0);
  let shown = bob.run_args(with_state(&["freeze"])).status(0).stdout();
  assert!(shown.contains(": region evacuation drill"), "{shown}");
  let skipped = bob
    .run_args(with_state(&["drill", "run", "tick-drill"]))
    .status(4);
  assert!(
    skipped.stdout().contains("region evacuation drill"),
    "{}",
    skipped.stdout()
  );
  // Alice reads Bob's skipped run from the bucket.
  let entries = history(&alice, "tick-drill", &state);
  assert_eq!(entries.len(), 1, "{entries:#?}");
  assert_eq!(entries[0]["result"], "skipped");
  bob.run_args(with_state(&["unfreeze"])).status(0);
  alice
    .run_args(with_state(&["drill", "run", "tick-drill"]))
    .status(0);

  // Alice's failover holds the group `default` in the bucket: Bob's failback is refused, and
  // his live drill is held back by her run.
  let cache = alice.path().join(".drctl/s3/drctl-lockgroup/team/runs");
  let run_ids = || -> Vec<String> {
    std::fs::read_dir(&cache)
      .unwrap()
      .flatten()
      .map(|entry| entry.file_name().to_string_lossy().into_owned())
      .collect()
  };
  let before = run_ids();
  let mut failover = alice.spawn(with_state(&SLOW));
  alice.wait_for(Duration::from_secs(30), "the failover to start", || {
    run_ids().len() > before.len()
  });
  let holder = run_ids()
    .into_iter()
    .find(|id| !before.contains(id))
    .unwrap();
  let refused = bob
    .run_args(with_state(&["run", "failback", "--sim", "--yes"]))
    .status(4);
  assert!(
    refused.stderr().contains(&format!(
      "lock group `default` is locked by run {holder} (host "
    )),
    "{}",
    refused.stderr()
  );
  assert!(refused.stderr().contains("of runbook `regional-failover`"));
  let held_back = bob
    .run_args(with_state(&["drill", "run", "tick-drill"]))
    .status(4);
  assert!(
    held_back
      .stdout()
      .contains(&format!("live run {holder} of runbook `regional-failover`")),
    "{}",
    held_back.stdout()
  );
  signal(&failover, "KILL");
  let _ = failover.wait();
}

#[test]
fn a_live_lock_of_an_older_drctl_refuses_a_failback_until_unlocked_by_its_runbook_name() {
  let test = Test::new();
  // What an older drctl wrote for its failover: named after the runbook, no group in it, held
  // on another host with a lease running for another hour.
  let old = serde_json::json!({
    "run_id": "20261201-000000-0ld0",
    "runbook": "regional-failover",
    "host": "ops-old",
    "pid": 1,
    "started_at": chrono::Utc::now(),
    "lease_expires_at": chrono::Utc::now() + chrono::Duration::hours(1),
  });
  let legacy = test.path().join(".drctl/locks/regional-failover.lock");
  std::fs::create_dir_all(legacy.parent().unwrap()).unwrap();
  std::fs::write(&legacy, old.to_string()).unwrap();
  let refused = test
    .run_args(["run", "failback", "--sim", "--yes"])
    .status(4);
  assert!(
    refused
      .stderr()
      .contains("locked by run 20261201-000000-0ld0 (host ops-old"),
    "{}",
    refused.stderr()
  );
  assert!(
    test.run_ids().is_empty(),
    "the refused failback left no run"
  );
  assert!(
    !lock_file(&test, "default").exists(),
    "nor its group's lock"
  );
  test.run_args(["unlock", "regional-failover"]).status(4);
  let forced = test
    .run_args(["unlock", "--force", "regional-failover"])
    .status(0);
  assert!(
    forced
      .stdout()
      .contains("was held by run 20261201-000000-0ld0"),
    "{}",
    forced.stdout()
  );
  assert!(!legacy.exists());
  // The group is free again: a live run of it goes ahead.
  test
    .run_args(["failover", "us-west-2", "--sim", "--yes"])
    .status(0);
}
