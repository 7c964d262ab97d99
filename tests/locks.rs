//! One live run per lock group at a time; stale locks are reported and can be broken.

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
  test.path().join(".drctl/locks/default.lock")
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
    refused.stderr().contains("drctl unlock default"),
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

/// The effects of a failover, each applied exactly once: two `UpdateService`s, the standby
/// scaled up and the old primary fenced (scaled to zero).
const EFFECTS: [(&str, usize); 4] = [
  ("PromoteReadReplica", 1),
  ("UpdateService", 2),
  ("ChangeResourceRecordSets", 1),
  ("AddTagsToResource", 1),
];

#[test]
fn resuming_a_live_run_exits_4_naming_the_holder_and_changes_nothing() {
  let test = Test::new();
  let first = test.spawn(SLOW);
  let holder = wait_for_holder(&test);
  let journal = test
    .path()
    .join(".drctl/runs")
    .join(&holder)
    .join("journal.jsonl");
  let before = crate::support::journal::durable(&journal);

  let resume = test.run_args(["resume", &holder, "--yes"]).status(4);
  let stderr = resume.stderr();
  assert!(stderr.contains(&format!("run {holder} (host ")), "{stderr}");
  assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
  assert!(stderr.contains("still running"), "{stderr}");
  assert!(stderr.contains("started "), "{stderr}");

  let output = first.wait_with_output().unwrap();
  assert_eq!(
    output.status.code(),
    Some(0),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let after = crate::support::journal::strict(&journal).unwrap();
  assert_eq!(crate::support::journal::lost(&before, &after), 0);
  assert!(
    after.iter().all(|line| line.event != "run_resumed"),
    "the refused resume wrote to the journal"
  );
  let operations = test.operations(&holder);
  for (effect, times) in EFFECTS {
    assert_eq!(
      crate::support::count(&operations, effect),
      times,
      "{effect}: {operations:?}"
    );
  }
}

#[test]
fn unlock_refuses_a_live_holder_unless_forced() {
  let test = Test::new();
  let mut first = test.spawn(SLOW);
  let holder = wait_for_holder(&test);
  let refused = test.run_args(["unlock", "regional-failover"]).status(4);
  let stderr = refused.stderr();
  assert!(stderr.contains(&format!("run {holder} (host ")), "{stderr}");
  assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
  assert!(stderr.contains("unlock --force"), "{stderr}");
  assert!(lock_file(&test).exists(), "the live holder's lock is kept");

  let forced = test
    .run_args(["unlock", "--force", "regional-failover"])
    .status(0);
  assert!(
    forced
      .stdout()
      .contains(&format!("was held by run {holder}")),
    "{}",
    forced.stdout()
  );
  assert!(!lock_file(&test).exists());
  signal(&first, "KILL");
  let _ = first.wait();
}

#[test]
fn a_reused_pid_does_not_keep_a_dead_holders_lock_alive() {
  let test = Test::new();
  let mut first = test.spawn(SLOW);
  let holder = wait_for_holder(&test);
  signal(&first, "KILL");
  let _ = first.wait();
  // The dead holder's pid now belongs to another, live process (one that started later).
  let mut other = std::process::Command::new("sleep")
    .arg("60")
    .spawn()
    .unwrap();
  let mut lock: serde_json::Value =
    serde_json::from_str(&std::fs::read_to_string(lock_file(&test)).unwrap()).unwrap();
  lock["pid"] = other.id().into();
  std::fs::write(lock_file(&test), lock.to_string()).unwrap();

  let refused = test.run_args(SLOW).status(4);
  let stderr = refused.stderr();
  assert!(
    stderr.contains(&format!("locked by run {holder}")),
    "{stderr}"
  );
  assert!(stderr.contains("the lock is stale"), "{stderr}");
  assert!(
    stderr.contains("its pid now belongs to another process"),
    "{stderr}"
  );
  // ... so its own run may take it over.
  test.run_args(["resume", &holder, "--yes"]).status(0);
  let _ = other.kill();
  let _ = other.wait();
}

#[test]
fn run_ids_and_names_cannot_reach_outside_the_state_directory() {
  let test = Test::new();
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "1000",
    ])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  // A journal outside the state directory, where `.drctl/runs/../../x` points.
  let outside = test.path().join("x");
  std::fs::create_dir_all(&outside).unwrap();
  std::fs::write(outside.join("journal.jsonl"), test.journal(&run_id)).unwrap();
  for args in [
    vec!["status", "../../x"],
    vec!["report", "../../x"],
    vec!["resume", "../../x", "--yes"],
    vec!["status", "/etc/passwd"],
    vec!["report", "x/../../../x"],
  ] {
    let run = test.run_args(&args).status(2);
    assert!(
      run.stderr().contains("is not a valid run id"),
      "{args:?}: {}",
      run.stderr()
    );
    assert!(run.stdout().is_empty(), "{args:?}: {}", run.stdout());
  }
  // `unlock ../../victim` would remove `victim.lock` next to the state directory.
  let victim = test.path().join("victim.lock");
  std::fs::write(&victim, "{}").unwrap();
  for name in ["../../victim", "a/b", "..", ""] {
    let run = test.run_args(["unlock", name]).status(2);
    assert!(
      run
        .stderr()
        .contains("is not a valid lock group or runbook name"),
      "{name}: {}",
      run.stderr()
    );
  }
  assert!(
    victim.exists(),
    "unlock reached outside the state directory"
  );
  for command in ["run", "history"] {
    let run = test.run_args(["drill", command, "../x"]).status(2);
    assert!(
      run.stderr().contains("is not a valid drill name"),
      "{command}: {}",
      run.stderr()
    );
  }
  // A valid id still works.
  test.run_args(["status", &run_id]).status(0);
}

/// Run drctl under `umask 000`, which must not loosen the modes of what it creates.
fn run_umask_000(test: &Test, args: &[&str]) -> std::process::Output {
  std::process::Command::new("sh")
    .args(["-c", "umask 000; exec \"$@\"", "sh", crate::support::BIN])
    .args(args)
    .current_dir(test.path())
    .env("NO_COLOR", "1")
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap()
}

fn mode(path: &std::path::Path) -> u32 {
  use std::os::unix::fs::PermissionsExt;
  std::fs::metadata(path)
    .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    .permissions()
    .mode()
    & 0o777
}

#[test]
fn state_is_private_even_under_umask_000() {
  let test = Test::new().file(
    "drills/weekly-snapshot-age.yaml",
    &std::fs::read_to_string(crate::support::repo().join("drills/weekly-snapshot-age.yaml"))
      .unwrap(),
  );
  let output = run_umask_000(
    &test,
    &[
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "1000",
    ],
  );
  assert_eq!(
    output.status.code(),
    Some(0),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let run_id = test.run_ids().pop().unwrap();
  let state = test.path().join(".drctl");
  let run_dir = state.join("runs").join(&run_id);
  for dir in [
    state.clone(),
    state.join("runs"),
    run_dir.clone(),
    state.join("locks"),
  ] {
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
  }
  for file in ["journal.jsonl", "world.json", "operations.jsonl"] {
    assert_eq!(mode(&run_dir.join(file)), 0o600, "{file}");
  }

  // A lock, while its run holds it.
  let mut child = std::process::Command::new("sh")
    .args(["-c", "umask 000; exec \"$@\"", "sh", crate::support::BIN])
    .args(SLOW)
    .current_dir(test.path())
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
  test.wait_for(Duration::from_secs(20), "the lock", || {
    lock_file(&test).exists()
  });
  assert_eq!(mode(&lock_file(&test)), 0o600);
  signal(&child, "KILL");
  let _ = child.wait();
  // The killed failover's stale lock holds its group (`default`, the drill's too) until it is
  // broken.
  test.run_args(["unlock", "default"]).status(0);

  // Drill history.
  let output = run_umask_000(&test, &["drill", "run", "weekly-snapshot-age"]);
  assert_eq!(
    output.status.code(),
    Some(0),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let drill_dir = state.join("drills/weekly-snapshot-age");
  assert_eq!(mode(&state.join("drills")), 0o700);
  assert_eq!(mode(&drill_dir), 0o700);
  assert_eq!(mode(&drill_dir.join("history.jsonl")), 0o600);
  // A scheduler tick (its first-seen record and claims).
  let output = run_umask_000(&test, &["scheduler", "--once"]);
  assert!(
    output.status.success(),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  // Every file and directory drctl left in the state, whatever wrote it: the drill's summary,
  // reports and notification record included.
  let mut pending = vec![state.clone()];
  let mut files = 0;
  while let Some(dir) = pending.pop() {
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(&dir).unwrap() {
      let path = entry.unwrap().path();
      if path.is_dir() {
        pending.push(path);
      } else {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
      }
    }
  }
  assert!(
    std::fs::read_dir(drill_dir.join("runs"))
      .unwrap()
      .flatten()
      .any(|run| run.path().join("summary.json").exists()),
    "the drill wrote no summary to check"
  );
  assert!(files > 8, "{files} files");
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
  // It is not shown as still running: it stopped for its lock, and says how to go on.
  assert_eq!(test.status_json(&run_id)["timeline"]["status"], "lock_lost");
  let text = test
    .run_args(["status", run_id.as_str()])
    .status(0)
    .stdout();
  assert!(
    text.contains(&format!("resume it with: drctl resume {run_id}")),
    "{text}"
  );
  assert!(!text.contains("still running"), "{text}");
  // The other holder is done: the robbed run resumes to the end.
  std::fs::remove_file(lock_file(&test)).unwrap();
  test.run_args(["resume", run_id.as_str()]).status(0);
  assert_eq!(test.status_json(&run_id)["timeline"]["status"], "succeeded");
}
