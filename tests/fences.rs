//! Region fences: a failover fences the region it leaves (scales its service to zero, retires
//! its old writer). With that region down, the fences are journalled as pending; `drctl status`
//! and `drctl fence list` show them, failback refuses to start (exit 4), and the scheduler or a
//! later `drctl fence apply` applies them once the region answers.

use std::time::Duration;

use drctl::cloud::sim::BUILTIN_WORLD;

use crate::support::{count, signal, Test};

/// The built-in world with `us-east-1` really down until `until` (modelled): its health check
/// not inverted (Route 53 sees the outage itself), its endpoints and control plane gone.
fn outage_world(until: &str) -> String {
  let world = BUILTIN_WORLD
    .replace(
      "{ id: hc-primary, target: \"https://api-use1.example.com/health\", inverted: true,",
      "{ id: hc-primary, target: \"https://api-use1.example.com/health\", inverted: false,",
    )
    .replace(
      "outages: []",
      &format!("outages: [{{ region: us-east-1, until: {until} }}]"),
    );
  assert!(world.contains("inverted: false"), "the world has changed");
  world
}

const FENCES: [&str; 2] = ["fence-source-service", "fence-source-db"];

/// On the built-in world (no real outage) the failover fences the old primary in the run: the
/// primary's service is scaled to zero and its writer retired, nothing is left pending, and
/// none of it counts toward the RTO.
#[test]
fn a_failover_fences_the_old_primary_when_its_region_answers() {
  let test = Test::new();
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "600",
    ])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  let operations = test.operations(&run_id);
  assert_eq!(count(&operations, "AddTagsToResource"), 1, "{operations:?}");
  assert_eq!(
    count(&operations, "UpdateService"),
    2,
    "the standby up, the primary down: {operations:?}"
  );
  let status = test.status_json(&run_id);
  assert_eq!(status["pending_fences"], serde_json::json!([]));
  let steps = status["timeline"]["steps"].as_array().unwrap();
  for fence in FENCES {
    let step = steps.iter().find(|step| step["id"] == fence).unwrap();
    assert_eq!(step["outcome"], "succeeded", "{step}");
  }
  assert!(!test.journal(&run_id).contains("fence_pending"));
  let list = test.run_args(["fence", "list"]).status(0);
  assert_eq!(list.stdout(), "no pending fences\n");
}

/// The whole story: the source region is down during the failover, so both fences are
/// pending (the failover still succeeds); status lists them; failback refuses to start;
/// once the region comes back the scheduler's tick applies them; failback then starts.
#[test]
fn fences_left_pending_by_a_failover_are_applied_once_the_region_answers() {
  let test = Test::new().file("world.yaml", &outage_world("4h"));
  // At 2000× a modelled 4 h outage is 7.2 s of wall time from the world's creation.
  let failover = test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "2000",
      // The replica's lag is unknowable with its source down; accepted, as an operator would.
      "--accept-data-loss",
    ])
    // Accepted, the RPO is unknown, so not met: exit 3.
    .status(3);
  assert!(
    failover.stdout().contains("result: breached"),
    "{}",
    failover.stdout()
  );
  let failover_id = test.run_ids().pop().unwrap();
  let journal = test.journal(&failover_id);
  assert_eq!(
    journal.matches("\"event\":\"fence_pending\"").count(),
    2,
    "{journal}"
  );

  let status = test.status_json(&failover_id);
  let pending = status["pending_fences"].as_array().unwrap();
  let ids: Vec<&str> = pending.iter().map(|f| f["id"].as_str().unwrap()).collect();
  for fence in FENCES {
    assert!(
      ids.contains(&format!("{failover_id}/{fence}").as_str()),
      "{ids:?}"
    );
  }
  let retire = pending
    .iter()
    .find(|f| f["action"] == "rds.retire_instance")
    .unwrap();
  assert_eq!(retire["region"], "us-east-1");
  assert_eq!(retire["args"]["instance"], "app-db");
  let text = test.run_args(["status", &failover_id]).status(0).stdout();
  assert!(
    text.contains("Pending fences (2: applied once their region answers"),
    "{text}"
  );

  // The region is still down: failback refuses, naming the fences, and starts no run.
  let runs_before = test.run_ids().len();
  let refused = test
    .run_args(["run", "failback", "--sim", "--yes", "--time-scale", "600"])
    .status(4);
  let stderr = refused.stderr();
  assert!(
    stderr.contains("failback refuses to start while a region fence is pending"),
    "{stderr}"
  );
  assert!(
    stderr.contains(&format!("{failover_id}/fence-source-db")),
    "{stderr}"
  );
  assert_eq!(test.run_ids().len(), runs_before, "no run was started");

  // The region comes back; a scheduler tick applies both fences in the failover's world.
  test.wait_for(Duration::from_secs(60), "the fences to be applied", || {
    test.run_args(["scheduler", "--once", "--sim"]).code();
    test.run_args(["fence", "list"]).stdout() == "no pending fences\n"
  });
  let operations = test.operations(&failover_id);
  assert_eq!(count(&operations, "AddTagsToResource"), 1, "{operations:?}");
  let applied = std::fs::read_to_string(test.path().join(".drctl/fences/applied.jsonl")).unwrap();
  assert_eq!(applied.lines().count(), 2, "{applied}");
  assert!(applied.contains("\"by\":\"scheduler\""), "{applied}");

  // Nothing pending: failback starts, and on the world the failover left (its region back)
  // succeeds.
  let world = test.world_after(&failover_id);
  let world = world.to_str().unwrap();
  test
    .run_args([
      "run",
      "failback",
      "--sim",
      world,
      "--yes",
      "--time-scale",
      "600",
    ])
    .status(0);
}

/// `drctl fence apply ID` names a pending fence; anything else is a usage error.
#[test]
fn fence_apply_refuses_an_unknown_id() {
  let test = Test::new();
  let run = test
    .run_args(["fence", "apply", "20260101-000000-0000/fence-source-db"])
    .status(2);
  assert!(
    run
      .stderr()
      .contains("no pending fence `20260101-000000-0000/fence-source-db`"),
    "{}",
    run.stderr()
  );
}

/// A later run applies what an earlier failover left pending once it is done (never before
/// its own recovery), and records that it did.
#[test]
fn a_later_run_applies_pending_fences_after_it_finishes() {
  let test = Test::new().file("world.yaml", &outage_world("4h"));
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "2000",
      "--accept-data-loss",
    ])
    // Accepted, the RPO is unknown, so not met: exit 3.
    .status(3);
  let failover_id = test.run_ids().pop().unwrap();
  assert_eq!(
    test.status_json(&failover_id)["pending_fences"]
      .as_array()
      .unwrap()
      .len(),
    2
  );
  test.wait_for(Duration::from_secs(60), "a later run to apply them", || {
    let later = test.run_args(["run", "snapshot-age", "--sim", "--time-scale", "600"]);
    assert!([0, 1, 3].contains(&later.code()), "{}", later.stderr());
    test.run_args(["fence", "list"]).stdout() == "no pending fences\n"
  });
  let applied = std::fs::read_to_string(test.path().join(".drctl/fences/applied.jsonl")).unwrap();
  assert_eq!(applied.matches("\"by\":\"run ").count(), 2, "{applied}");
  let operations = test.operations(&failover_id);
  assert_eq!(count(&operations, "AddTagsToResource"), 1, "{operations:?}");
}

/// On an `s3://` state every operator sees the same fences: one left pending by a failover
/// on one machine is listed on another (from the mirrored journal), and once applied on the
/// first, the second sees it applied (from the bucket's create-only record). The second
/// cannot apply a simulator fence itself: that world lives on the first machine.
#[test]
fn pending_fences_are_shared_through_an_s3_state() {
  use crate::support::s3::{create_bucket, s3_test};
  const STATE: &str = "s3://drctl-state/team";
  let moto = crate::support::moto::Moto::start();
  create_bucket(&moto, "drctl-state");
  let first = s3_test(&moto, &moto.endpoint).file("world.yaml", &outage_world("4h"));
  let second = s3_test(&moto, &moto.endpoint);
  first
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "2000",
      "--accept-data-loss",
      "--state",
      STATE,
    ])
    // Accepted, the RPO is unknown, so not met: exit 3.
    .status(3);
  let listed = second
    .run_args(["fence", "list", "--state", STATE, "--output", "json"])
    .status(0)
    .stdout();
  let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
  assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
  let refused = second
    .run_args(["fence", "apply", "--sim", "--state", STATE])
    .status(1);
  assert!(
    refused
      .stdout()
      .contains("its simulated world is not in this state directory"),
    "{}",
    refused.stdout()
  );
  first.wait_for(Duration::from_secs(60), "the first to apply them", || {
    first
      .run_args(["fence", "apply", "--sim", "--state", STATE])
      .code()
      == 0
  });
  let after = second
    .run_args(["fence", "list", "--state", STATE])
    .status(0)
    .stdout();
  assert_eq!(after, "no pending fences\n");
}

/// Only a fresh start of a failback checked for pending fences: a failback killed early and
/// resumed after a new failover left a fence pending went on, back into a region whose old
/// writer may still take writes. The resume refuses (exit 4, naming the fence), changes
/// nothing, and the run stays resumable.
#[test]
fn a_resumed_failback_refuses_while_a_fence_that_became_pending_meanwhile_is() {
  let test = Test::new().file("world.yaml", &outage_world("4h"));
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "600",
    ])
    .status(0);
  let failover = test.run_ids().pop().unwrap();
  let world = test.world_after(&failover);
  let before = test.run_ids();
  // At 40× the home service takes three seconds to scale (two modelled minutes): the failback
  // is killed at its first effect, long before it does anything else.
  let mut child = test.spawn([
    "run",
    "failback",
    "--sim",
    world.to_str().unwrap(),
    "--yes",
    "--time-scale",
    "40",
  ]);
  test.wait_for(
    Duration::from_secs(60),
    "the failback's first intent",
    || {
      test
        .run_ids()
        .iter()
        .filter(|id| !before.contains(id))
        .any(|id| {
          test.journal(id).lines().any(|line| {
            line.contains(r#""event":"step_intent""#) && line.contains(r#""step":"scale-home""#)
          })
        })
    },
  );
  signal(&child, "KILL");
  let _ = child.wait();
  let failback = test.new_run(&before);
  test.run_args(["unlock", "failback"]).status(0);

  // Meanwhile another failover, with its source region down, leaves its fences pending.
  let before = test.run_ids();
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "2000",
      "--accept-data-loss",
    ])
    .status(3);
  let second = test.new_run(&before);
  let journal_before = test.journal(&failback);

  let refused = test.run_args(["resume", &failback, "--yes"]).status(4);
  let stderr = refused.stderr();
  assert!(
    stderr.contains("failback refuses to resume while a region fence is pending"),
    "{stderr}"
  );
  assert!(
    stderr.contains(&format!("{second}/fence-source-db")),
    "{stderr}"
  );
  assert!(
    stderr.contains(&format!("run {failback} stays resumable")),
    "{stderr}"
  );
  assert_eq!(
    test.journal(&failback),
    journal_before,
    "the resume wrote nothing"
  );
  assert!(!test.journal(&failback).contains("run_finished"));
}

/// A fence that can never apply (its region decommissioned) could not be given up: it stayed
/// pending and held every failback back for good. `drctl fence drop ID --reason TEXT` records
/// who dropped it and why, applies nothing, and the fence is listed as dropped, not pending.
#[test]
fn a_dropped_fence_is_recorded_with_who_and_why_and_no_longer_pending() {
  let test = Test::new().file("world.yaml", &outage_world("4h"));
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "2000",
      "--accept-data-loss",
    ])
    .status(3);
  let failover = test.run_ids().pop().unwrap();
  let db = format!("{failover}/fence-source-db");
  let service = format!("{failover}/fence-source-service");

  let blank = test
    .run_args(["fence", "drop", &db, "--reason", "  "])
    .status(2);
  assert!(
    blank.stderr().contains("--reason must say why"),
    "{}",
    blank.stderr()
  );
  test.run_args(["fence", "drop", &db]).status(2);
  let unknown = test
    .run_args([
      "fence",
      "drop",
      "20260101-000000-0000/x",
      "--reason",
      "gone",
    ])
    .status(2);
  assert!(
    unknown
      .stderr()
      .contains("no pending fence `20260101-000000-0000/x`"),
    "{}",
    unknown.stderr()
  );

  let reason = "us-east-1 decommissioned";
  let dropped = test
    .run_args(["fence", "drop", &db, "--reason", reason])
    .status(0);
  assert!(
    dropped
      .stdout()
      .starts_with(&format!("dropped {db}: {reason} (by ")),
    "{}",
    dropped.stdout()
  );
  let list = test.run_args(["fence", "list"]).status(0).stdout();
  let (pending, dropped) = list.split_once("dropped (never applied):\n").unwrap();
  assert!(pending.starts_with(&service), "{list}");
  assert!(!pending.contains(&db), "{list}");
  assert!(dropped.contains(&db) && dropped.contains(reason), "{list}");
  let status = test.status_json(&failover);
  assert_eq!(status["pending_fences"].as_array().unwrap().len(), 1);
  let record = &status["dropped_fences"][0]["dropped"];
  assert_eq!(record["id"], db.as_str());
  assert_eq!(record["dropped"], reason);
  assert!(!record["by"].as_str().unwrap().is_empty(), "{record}");
  let text = test.run_args(["status", &failover]).status(0).stdout();
  assert!(text.contains("Dropped fences (1: never applied"), "{text}");
  // Dropped, not applied: nothing was sent (the old writer was never tagged).
  let operations = test.operations(&failover);
  assert_eq!(count(&operations, "AddTagsToResource"), 0, "{operations:?}");
  // A dropped fence cannot be dropped again (it is not pending).
  test
    .run_args(["fence", "drop", &db, "--reason", reason])
    .status(2);

  // With both dropped, nothing is pending: failback is no longer refused for fences.
  test
    .run_args(["fence", "drop", &service, "--reason", reason])
    .status(0);
  assert!(test
    .run_args(["fence", "list"])
    .stdout()
    .starts_with("no pending fences\n"));
  let failback = test.run_args(["run", "failback", "--sim", "--yes", "--time-scale", "600"]);
  assert_ne!(failback.code(), 4, "{}", failback.stderr());
}
