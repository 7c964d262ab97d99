//! Crash safety: SIGKILL at any instant — including between a mutating step's intent and its
//! outcome — then resume: the run ends succeeded with every mutating effect applied exactly once
//! (counted from the simulator's operation log). SIGINT ends a run gracefully with exit 130.

use std::time::Duration;

use crate::support::{count, signal, Test};

const FAILOVER: [&str; 6] = [
  "failover",
  "us-west-2",
  "--sim",
  "--yes",
  "--time-scale",
  "40",
];

fn resume_args(run_id: &str) -> Vec<String> {
  vec!["resume".into(), run_id.into(), "--yes".into()]
}

/// Whether the run's journal holds the intent of the promotion.
fn promote_intent(test: &Test) -> bool {
  test.run_ids().first().is_some_and(|id| {
    test.journal(id).lines().any(|line| {
      line.contains(r#""event":"step_intent""#) && line.contains(r#""step":"promote-db""#)
    })
  })
}

fn assert_exactly_once(test: &Test, run_id: &str) {
  let operations = test.operations(run_id);
  // Two `UpdateService`s: the standby scaled up, and the old primary fenced (scaled to zero).
  for (operation, times) in [
    ("PromoteReadReplica", 1),
    ("UpdateService", 2),
    ("ChangeResourceRecordSets", 1),
    ("AddTagsToResource", 1),
  ] {
    assert_eq!(
      count(&operations, operation),
      times,
      "{operation} in {operations:?}"
    );
  }
  let status = test.status_json(run_id);
  assert_eq!(status["timeline"]["status"], "succeeded");
}

#[test]
fn killed_between_intent_and_outcome_resumes_without_repeating_the_effect() {
  let test = Test::new();
  let mut child = test.spawn(FAILOVER);
  test.wait_for(Duration::from_secs(30), "the promote intent", || {
    promote_intent(&test)
  });
  signal(&child, "KILL");
  let _ = child.wait();
  let run_id = test.run_ids().pop().unwrap();
  let journal = test.journal(&run_id);
  assert!(!journal.contains("run_finished"), "killed before the end");

  let resumed = test.run_args(resume_args(&run_id)).status(0);
  assert!(
    resumed.stderr().contains("resumed on"),
    "{}",
    resumed.stderr()
  );
  assert_exactly_once(&test, &run_id);
}

#[test]
fn killed_at_random_instants_every_resume_converges_exactly_once() {
  // Seeded, so a failure reproduces: kill points (ms after start) drawn from a fixed sequence.
  let mut rng = fastrand::Rng::with_seed(0xD5C7);
  let test = Test::new();
  let mut child = test.spawn(FAILOVER);
  let mut kills = 0;
  let run_id = loop {
    std::thread::sleep(Duration::from_millis(rng.u64(300..2500)));
    if child.try_wait().unwrap().is_some() {
      break test.run_ids().pop().unwrap();
    }
    signal(&child, "KILL");
    let _ = child.wait();
    kills += 1;
    let run_id = test.run_ids().pop().unwrap();
    if kills >= 4 {
      break run_id;
    }
    child = test.spawn(resume_args(&run_id));
  };
  assert!(kills >= 2, "the run was killed at least twice ({kills})");
  // Resume until it finishes (a kill may land after the end: resume then reports it finished).
  test.run_args(resume_args(&run_id)).status(0);
  assert_exactly_once(&test, &run_id);
}

#[test]
fn sigint_stops_gracefully_with_exit_130_and_the_run_resumes() {
  let test = Test::new();
  let child = test.spawn(FAILOVER);
  test.wait_for(Duration::from_secs(30), "promotion to start", || {
    promote_intent(&test)
  });
  signal(&child, "INT");
  let output = child.wait_with_output().unwrap();
  assert_eq!(
    output.status.code(),
    Some(130),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let run_id = test.run_ids().pop().unwrap();
  assert!(test.journal(&run_id).contains("run_interrupted"));
  let resumed = test.run_args(resume_args(&run_id)).status(0);
  assert!(resumed.stdout().contains("result: succeeded"));
  assert_exactly_once(&test, &run_id);
}

/// The failback, killed between the intent and the outcome of a step, resumes and applies each
/// of its effects exactly once: on the world a finished failover left.
#[test]
fn a_failback_killed_between_intent_and_outcome_applies_each_effect_once() {
  let test = Test::new();
  test.run_args(FAILOVER).status(0);
  let failover = test.run_ids().pop().unwrap();
  let world = test.world_after(&failover);
  for (step, at) in [("create-home-replica", 0), ("promote-home", 1)] {
    let test = Test::new();
    let before = test.run_ids();
    let mut child = test.spawn([
      "run",
      "failback",
      "--sim",
      world.to_str().unwrap(),
      "--yes",
      "--time-scale",
      "600",
    ]);
    let intent = |test: &Test| {
      let ids: Vec<String> = test
        .run_ids()
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
      ids.first().is_some_and(|id| {
        test.journal(id).lines().any(|line| {
          line.contains(r#""event":"step_intent""#) && line.contains(&format!(r#""step":"{step}""#))
        })
      })
    };
    test.wait_for(Duration::from_secs(60), step, || intent(&test));
    signal(&child, "KILL");
    let _ = child.wait();
    let run_id = test.new_run(&before);
    assert!(
      !test.journal(&run_id).contains("run_finished"),
      "killed at {step} ({at})"
    );
    test.run_args(resume_args(&run_id)).status(0);
    let operations = test.operations(&run_id);
    for (operation, times) in [
      ("CreateDBInstanceReadReplica", 2),
      // The home service back up (fenced to 0 by the failover), the standby's writes stopped.
      ("UpdateService", 2),
      ("PromoteReadReplica", 1),
      ("ChangeResourceRecordSets", 1),
      ("DeleteDBInstance", 1),
    ] {
      assert_eq!(
        count(&operations, operation),
        times,
        "killed at {step}: {operation} in {operations:?}"
      );
    }
    assert_eq!(test.status_json(&run_id)["timeline"]["status"], "succeeded");
  }
}

/// Whether the run's journal has an `event` record of `step`.
fn journalled(test: &Test, event: &str, step: &str) -> bool {
  test.run_ids().first().is_some_and(|id| {
    test.journal(id).lines().any(|line| {
      line.contains(&format!(r#""event":"{event}""#))
        && line.contains(&format!(r#""step":"{step}""#))
    })
  })
}

#[tokio::test]
async fn an_interrupted_backup_restore_on_moto_deletes_its_temporary_instance() {
  let moto = crate::support::moto::Moto::start();
  let test = Test::new();
  moto.attach(&test.path().join(".drctl"));
  // The check holds the run while the temporary instance exists; Ctrl-C lands then.
  let child = test.spawn([
    "run",
    "backup-restore-validation",
    "--sandbox",
    "--yes",
    "-p",
    "check_command=sleep 3",
  ]);
  test.wait_for(Duration::from_secs(60), "the check to start", || {
    journalled(&test, "step_started", "check-restored")
  });
  let run_id = test.run_ids().pop().unwrap();
  let cloud = drctl::cloud::aws::connect(&moto.settings())
    .await
    .expect("connect");
  let temporary = format!("restore-check-{run_id}");
  let restored = cloud
    .rds
    .describe_instance("us-east-1", &temporary)
    .await
    .unwrap();
  assert!(restored.is_some(), "the restore made no instance");
  signal(&child, "INT");
  let output = child.wait_with_output().unwrap();
  assert_eq!(
    output.status.code(),
    Some(130),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let journal = test.journal(&run_id);
  assert!(journal.contains("run_interrupted"), "{journal}");
  assert!(
    journalled(&test, "step_succeeded", "delete-restored"),
    "{journal}"
  );
  let left = cloud
    .rds
    .describe_instance("us-east-1", &temporary)
    .await
    .unwrap();
  assert!(left.is_none(), "the temporary instance remains: {left:?}");
}
