//! Full runs of the shipped runbooks on the simulator.

use std::time::Duration;

use crate::support::{count, signal, Test};

fn offsets(step: &serde_json::Value) -> (f64, f64) {
  (
    step["start_seconds"].as_f64().unwrap(),
    step["end_seconds"].as_f64().unwrap(),
  )
}

#[test]
fn failover_promotes_and_scales_in_parallel_and_meets_its_objectives() {
  let test = Test::new();
  let run = test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "200",
    ])
    .status(0);
  let stdout = run.stdout();
  assert!(stdout.contains("RTO achieved"), "{stdout}");
  assert!(stdout.contains("/ target 15m  met"), "{stdout}");
  assert!(
    stdout.contains("RPO achieved 4s / target 5m  met"),
    "{stdout}"
  );
  assert!(stdout.contains("result: succeeded"));
  // One line per transition, with the elapsed time.
  assert!(run.stderr().contains("▶ promote-db"), "{}", run.stderr());

  let run_id = test.run_ids().pop().unwrap();
  let status = test.status_json(&run_id);
  let steps = status["timeline"]["steps"].as_array().unwrap();
  let step = |id: &str| steps.iter().find(|step| step["id"] == id).unwrap();
  let (promote_start, promote_end) = offsets(step("promote-db"));
  let (scale_start, scale_end) = offsets(step("scale-standby"));
  assert!(
    scale_start < promote_end && promote_start < scale_end,
    "promote and scale overlap"
  );
  assert!(
    promote_end - promote_start >= 300.0,
    "promotion takes its modelled 5 minutes"
  );
  let (flip_start, _) = offsets(step("flip-dns"));
  assert!(
    flip_start >= promote_end && flip_start >= scale_end,
    "DNS flips after both"
  );
  assert_eq!(
    status["timeline"]["objectives"]["rpo_achieved_seconds"],
    4.0
  );
  assert_eq!(status["timeline"]["status"], "succeeded");

  let operations = test.operations(&run_id);
  assert_eq!(
    count(&operations, "PromoteReadReplica"),
    1,
    "{operations:?}"
  );
  // The standby scaled up, and the old primary fenced (scaled to zero).
  assert_eq!(count(&operations, "UpdateService"), 2, "{operations:?}");
  assert_eq!(
    count(&operations, "ChangeResourceRecordSets"),
    1,
    "{operations:?}"
  );
}

#[test]
fn backup_restore_validation_restores_checks_and_always_deletes() {
  let test = Test::new();
  let run = test
    .run_args([
      "run",
      "backup-restore-validation",
      "--sim",
      "--yes",
      "--time-scale",
      "600",
    ])
    .status(0);
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
  let run_id = test.run_ids().pop().unwrap();
  let operations = test.operations(&run_id);
  assert_eq!(
    operations,
    ["RestoreDBInstanceFromDBSnapshot", "DeleteDBInstance"]
  );
  let status = test.status_json(&run_id);
  let rpo = status["timeline"]["objectives"]["rpo_achieved_seconds"]
    .as_f64()
    .unwrap();
  assert!(
    (3.0 * 3600.0..3.0 * 3600.0 + 120.0).contains(&rpo),
    "snapshot age ~3h, got {rpo}"
  );
}

#[test]
fn backup_restore_deletes_the_temporary_instance_when_the_check_fails() {
  let test = Test::new();
  let run = test
    .run_args([
      "run",
      "backup-restore-validation",
      "--sim",
      "--yes",
      "--time-scale",
      "600",
      "-p",
      "check_command=exit 7",
    ])
    .status(1);
  assert!(
    run.stderr().contains("exited 7, expected 0"),
    "{}",
    run.stderr()
  );
  let run_id = test.run_ids().pop().unwrap();
  assert_eq!(
    test.operations(&run_id),
    ["RestoreDBInstanceFromDBSnapshot", "DeleteDBInstance"]
  );
  let status = test.status_json(&run_id);
  let steps = status["timeline"]["steps"].as_array().unwrap();
  let delete = steps
    .iter()
    .find(|step| step["id"] == "delete-restored")
    .unwrap();
  assert_eq!(delete["outcome"], "succeeded");
}

/// With nothing to fail back from (the built-in world's writer is home, its standby a replica),
/// failback refuses before it changes anything.
#[test]
fn failback_on_the_built_in_world_refuses_with_nothing_to_fail_back_from() {
  let test = Test::new();
  let run = test
    .run_args(["run", "failback", "--sim", "--yes", "--time-scale", "600"])
    .status(1);
  assert!(
    run
      .stderr()
      .contains("`app-db-replica` is not a standalone available instance"),
    "{}",
    run.stderr()
  );
  let run_id = test.run_ids().pop().unwrap();
  assert_eq!(test.operations(&run_id), Vec::<String>::new());
}

/// What `drctl failover us-west-2` leaves, `drctl run failback` returns: the writes made in the
/// standby region reach home through a replica of the standby writer, promoted once writes have
/// stopped and its lag is zero, and the standby region gets its replica back under the name the
/// next failover promotes, which then succeeds too.
#[test]
fn failback_after_a_failover_brings_the_writer_home_and_the_standby_replica_back() {
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
  let failover = test.run_ids().pop().unwrap();
  let after_failover = test.world_after(&failover);
  let before = test.run_ids();
  let world = after_failover.to_str().unwrap();
  let run = test
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
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
  let failback = test.new_run(&before);
  let operations = test.operations(&failback);
  for (operation, times) in [
    ("CreateDBInstanceReadReplica", 2),
    ("PromoteReadReplica", 1),
    ("DeleteDBInstance", 1),
    ("ChangeResourceRecordSets", 1),
    ("UpdateHealthCheck", 1),
    // The home service, which the failover fenced to 0, back up; the standby's writes stopped.
    ("UpdateService", 2),
  ] {
    assert_eq!(
      count(&operations, operation),
      times,
      "{operation} in {operations:?}"
    );
  }
  let order: Vec<&str> = operations
    .iter()
    .map(String::as_str)
    .filter(|op| {
      [
        "CreateDBInstanceReadReplica",
        "UpdateService",
        "PromoteReadReplica",
        "ChangeResourceRecordSets",
        "DeleteDBInstance",
      ]
      .contains(op)
    })
    .collect();
  assert_eq!(
    order,
    [
      "UpdateService",
      "CreateDBInstanceReadReplica",
      "UpdateService",
      "PromoteReadReplica",
      "ChangeResourceRecordSets",
      "DeleteDBInstance",
      "CreateDBInstanceReadReplica"
    ],
    "writes stop before the promotion, DNS follows it, the standby replica comes last"
  );

  // The roles at the end: the home writer is the promoted replica, the standby replicates it.
  let home_writer = format!("app-db-{failback}");
  let world: serde_json::Value =
    serde_json::from_str(&std::fs::read_to_string(test.world_after(&failback)).unwrap()).unwrap();
  let instance = |region: &str, id: &str| {
    world["rds"]["instances"]
      .as_array()
      .unwrap()
      .iter()
      .find(|instance| instance["region"] == region && instance["id"] == id)
      .cloned()
      .unwrap_or_else(|| panic!("no {id} in {region}: {world}"))
  };
  let home = instance("us-east-1", &home_writer);
  assert_eq!(home["status"], "available");
  assert!(
    home["replica_of"].is_null(),
    "the home writer is standalone: {home}"
  );
  let standby = instance("us-west-2", "app-db-replica");
  assert_eq!(standby["status"], "available");
  assert_eq!(
    standby["replica_of"],
    format!("arn:aws:rds:us-east-1:123456789012:db:{home_writer}")
  );
  let services = world["ecs"]["services"].as_array().unwrap();
  let standby_service = services
    .iter()
    .find(|service| service["region"] == "us-west-2")
    .unwrap();
  assert_eq!(
    standby_service["desired"], 0,
    "writes stay stopped in the standby region"
  );

  // The next failover works with what the failback left, once the next game day inverts the
  // primary's health check again (the failback put it back to normal).
  let after_failback = test.world_after(&failback);
  let mut next: serde_json::Value =
    serde_json::from_str(&std::fs::read_to_string(&after_failback).unwrap()).unwrap();
  for check in next["route53"]["health_checks"].as_array_mut().unwrap() {
    if check["id"] == "hc-primary" {
      check["inverted"] = true.into();
    }
  }
  std::fs::write(&after_failback, next.to_string()).unwrap();
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      after_failback.to_str().unwrap(),
      "--yes",
      "--time-scale",
      "600",
    ])
    .status(0);
}

#[test]
fn secrets_never_reach_output_journal_or_state() {
  const CANARY: &str = "canary-8f3e1d2c9b";
  let webhook = format!("https://hooks.slack.com/services/T000/B000/{CANARY}");
  let test = Test::new().env("SLACK_WEBHOOK_URL", &webhook);
  let run = test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "400",
    ])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  let operations = test.operations(&run_id);
  assert_eq!(
    count(&operations, "POST"),
    1,
    "the Slack message was sent: {operations:?}"
  );
  assert!(!run.stdout().contains(CANARY) && !run.stderr().contains(CANARY));
  let json = test.run_args(["status", &run_id, "--output", "json"]);
  assert!(!json.stdout().contains(CANARY));
  for entry in walk(&test.path().join(".drctl")) {
    let bytes = std::fs::read(&entry).unwrap();
    assert!(
      !String::from_utf8_lossy(&bytes).contains(CANARY),
      "{} holds the secret",
      entry.display()
    );
  }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
  let mut files = Vec::new();
  for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
    let path = entry.path();
    if path.is_dir() {
      files.extend(walk(&path));
    } else {
      files.push(path);
    }
  }
  files
}

#[test]
fn backup_restore_deletes_the_temporary_instance_when_interrupted() {
  let test = Test::new();
  let child = test.spawn([
    "run",
    "backup-restore-validation",
    "--sim",
    "--yes",
    "--time-scale",
    "40",
  ]);
  test.wait_for(
    std::time::Duration::from_secs(30),
    "the restore to start",
    || {
      test.run_ids().first().is_some_and(|id| {
        test.journal(id).lines().any(|line| {
          line.contains(r#""event":"step_intent""#) && line.contains(r#""step":"restore""#)
        })
      })
    },
  );
  crate::support::signal(&child, "INT");
  let output = child.wait_with_output().unwrap();
  assert_eq!(
    output.status.code(),
    Some(130),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  let run_id = test.run_ids().pop().unwrap();
  assert_eq!(
    test.operations(&run_id),
    ["RestoreDBInstanceFromDBSnapshot", "DeleteDBInstance"],
    "the always-step deleted the temporary instance"
  );
  let status = test.status_json(&run_id);
  let steps = status["timeline"]["steps"].as_array().unwrap();
  let delete = steps
    .iter()
    .find(|step| step["id"] == "delete-restored")
    .unwrap();
  assert_eq!(delete["outcome"], "succeeded");
  assert_eq!(status["timeline"]["status"], "interrupted");
}

/// Flip the public record to the standby while `app-standby/api` runs no tasks, so its health
/// check (hc-secondary) is unhealthy.
const FLIP_TO_UNHEALTHY: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: flip-early }
steps:
  - id: flip-dns
    action: route53.failover
    with:
      zone_id: Z0DRCTLEXAMPLE
      records:
        - { name: api.example.com, type: CNAME, set_identifier: primary, failover: PRIMARY, ttl: 60, value: api-usw2.example.com, health_check_id: hc-secondary }
        - { name: api.example.com, type: CNAME, set_identifier: secondary, failover: SECONDARY, ttl: 60, value: api-use1.example.com, health_check_id: hc-primary }
"#;

#[test]
fn dns_is_not_flipped_to_an_unhealthy_target() {
  let test = Test::new().file("flip.yaml", FLIP_TO_UNHEALTHY);
  let run = test
    .run_args(["run", "flip.yaml", "--sim", "--time-scale", "600"])
    .status(1);
  assert!(
    run.stderr().contains(
      "refusing to send api.example.com. (primary) to api-usw2.example.com: its health check \
       hc-secondary is unhealthy (0/16 checkers healthy); pass --force to flip anyway"
    ),
    "{}",
    run.stderr()
  );
  let run_id = test.run_ids().pop().unwrap();
  let operations = test.operations(&run_id);
  assert_eq!(
    count(&operations, "ChangeResourceRecordSets"),
    0,
    "{operations:?}"
  );
}

#[test]
fn force_flips_dns_to_an_unhealthy_target() {
  let test = Test::new().file("flip.yaml", FLIP_TO_UNHEALTHY);
  test
    .run_args([
      "run",
      "flip.yaml",
      "--sim",
      "--time-scale",
      "600",
      "--force",
    ])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  let operations = test.operations(&run_id);
  assert_eq!(
    count(&operations, "ChangeResourceRecordSets"),
    1,
    "{operations:?}"
  );
  assert!(
    test.journal(&run_id).contains(r#""force":true"#),
    "journalled so a resume keeps it"
  );
}

/// Failback onto an existing home database (`-p home_db=ID`) that does not hold the standby
/// writer's data: the shipped failback could never reach its `--accept-data-loss` path (the home
/// writer was always a new replica). The old writer is refused, named, with what the flag would
/// do; with the flag it is taken as it is, the RPO is unknown (exit 3), nothing is created or
/// promoted, and the standby writer, the only copy of the failover's writes, is kept.
#[test]
fn failback_onto_the_old_writer_is_refused_unless_data_loss_is_accepted() {
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
  let failover = test.run_ids().pop().unwrap();
  let world = test.world_after(&failover);
  let world = world.to_str().unwrap();
  let failback = |accept: bool| {
    let mut args = vec![
      "run",
      "failback",
      "--sim",
      world,
      "--yes",
      "--time-scale",
      "600",
      "-p",
      "home_db=app-db",
    ];
    if accept {
      args.push("--accept-data-loss");
    }
    args
  };

  let before = test.run_ids();
  let refused = test.run_args(failback(false)).status(1);
  let output = format!("{}{}", refused.stdout(), refused.stderr());
  assert!(
    output.contains("`app-db` in us-east-1 is not a read replica of `app-db-replica` in us-west-2"),
    "{output}"
  );
  assert!(
    output.contains("With --accept-data-loss it is taken as it is"),
    "{output}"
  );
  let run = test.new_run(&before);
  let operations = test.operations(&run);
  for operation in [
    "CreateDBInstanceReadReplica",
    "PromoteReadReplica",
    "ChangeResourceRecordSets",
    "DeleteDBInstance",
  ] {
    assert_eq!(
      count(&operations, operation),
      0,
      "{operation} in {operations:?}"
    );
  }

  let before = test.run_ids();
  let accepted = test
    .run_args(failback(true))
    // The home database lacks what the standby writer took: the RPO is unknown, not met.
    .status(3);
  assert!(
    accepted.stdout().contains("result: breached"),
    "{}",
    accepted.stdout()
  );
  let run = test.new_run(&before);
  let operations = test.operations(&run);
  for (operation, times) in [
    ("CreateDBInstanceReadReplica", 0),
    ("PromoteReadReplica", 0),
    ("DeleteDBInstance", 0),
    ("ChangeResourceRecordSets", 1),
  ] {
    assert_eq!(
      count(&operations, operation),
      times,
      "{operation} in {operations:?}"
    );
  }
  let status = test.status_json(&run);
  let steps = status["timeline"]["steps"].as_array().unwrap();
  let outcome = |id: &str| {
    steps
      .iter()
      .find(|step| step["id"] == id)
      .map(|step| step["outcome"].clone())
      .unwrap_or_default()
  };
  assert_eq!(outcome("promote-home"), "succeeded");
  assert_eq!(outcome("flip-dns-home"), "succeeded");
  assert_eq!(outcome("retire-standby-writer"), "skipped");
  assert_eq!(outcome("recreate-standby-replica"), "skipped");
  let text = serde_json::to_string(&status).unwrap();
  assert!(
    text.contains("`app-db` does not replicate `app-db-replica` in us-west-2"),
    "{text}"
  );
  let after: serde_json::Value =
    serde_json::from_str(&std::fs::read_to_string(test.world_after(&run)).unwrap()).unwrap();
  let standby = after["rds"]["instances"]
    .as_array()
    .unwrap()
    .iter()
    .find(|instance| instance["region"] == "us-west-2" && instance["id"] == "app-db-replica")
    .cloned()
    .unwrap();
  assert!(
    standby["replica_of"].is_null(),
    "the standby writer is kept as it is: {standby}"
  );
}

// --- objectives.recovered_when ------------------------------------------------------------------

/// The built-in world with the primary region (us-east-1) in outage until `until` (modelled,
/// from the run's start), or for good.
fn primary_outage_world(until: Option<&str>) -> String {
  let outage = match until {
    Some(until) => format!("outages: [{{ region: us-east-1, until: {until} }}]"),
    None => "outages: [us-east-1]".to_string(),
  };
  drctl::cloud::sim::BUILTIN_WORLD.replace("outages: []", &outage)
}

/// One recovery step of a minute; recovered once the primary's URL answers (a probe kept out
/// of the run with `when: false`: the recovery condition only).
fn recovered_when_runbook(within: &str) -> String {
  format!(
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: recovered-when }}
objectives: {{ rto: 15m, recovered_when: {{ step: probe, within: {within} }} }}
steps:
  - id: work
    action: wait.sleep
    with: {{ duration: 1m }}
  - id: probe
    action: http.check
    when: "false"
    with: {{ url: "https://api-use1.example.com/health" }}
"#
  )
}

fn report_json(test: &Test, run_id: &str) -> serde_json::Value {
  let run = test
    .run_args(["report", run_id, "--format", "json"])
    .status(0);
  serde_json::from_str(&run.stdout()).unwrap()
}

/// The RTO runs to the moment the condition held (the primary answers again at 5m), not to the
/// run's last step (1m); every report shows both.
#[test]
fn recovered_when_measures_the_rto_to_recovery_not_to_the_last_step() {
  let test = Test::new()
    .file("runbook.yaml", &recovered_when_runbook("30m"))
    .file("world.yaml", &primary_outage_world(Some("5m")));
  let run = test
    .run_args([
      "run",
      "runbook.yaml",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "300",
    ])
    .status(0);
  let stdout = run.stdout();
  assert!(stdout.contains("recovery: recovered "), "{stdout}");
  assert!(
    stdout.contains("(step `probe` passes; the run's steps took 1m"),
    "{stdout}"
  );
  assert!(stdout.contains("result: succeeded"), "{stdout}");
  let run_id = test.run_ids().pop().unwrap();
  let report = report_json(&test, &run_id);
  let recovery = &report["recovery"];
  assert_eq!(recovery["outcome"], "recovered", "{recovery}");
  let steps_took = recovery["wait_start_seconds"].as_f64().unwrap();
  let recovered = recovery["recovery_seconds"].as_f64().unwrap();
  assert!((60.0..120.0).contains(&steps_took), "{recovery}");
  // The outage is timed from the world's creation, which precedes the run's start by the
  // modelled time in between (at 300x, a loaded machine's few real milliseconds are a second
  // or more): recovery comes at most that much before 5m into the run.
  assert!((290.0..360.0).contains(&recovered), "{recovery}");
  let rto = &report["objectives"][0];
  assert_eq!(rto["name"], "RTO");
  assert_eq!(rto["achieved_seconds"].as_f64(), Some(recovered), "{rto}");
  assert_eq!(rto["verdict"], "met");
  let plan = test
    .run_args(["plan", "runbook.yaml", "--sim", "world.yaml"])
    .status(0);
  assert!(
    plan.stdout().contains(
      "then the wait for recovery (not estimated; the RTO runs to its end): step `probe` \
       passes, up to 30m"
    ),
    "{}",
    plan.stdout()
  );
  for format in ["md", "junit", "html"] {
    let text = test
      .run_args(["report", &run_id, "--format", format])
      .status(0)
      .stdout();
    assert!(
      text.contains("after the incident start (step ") && text.contains("probe"),
      "{format}: {text}"
    );
  }
}

/// A condition that never holds: at the bound the run is "not recovered", the RTO breached,
/// exit 3, never a silent success.
#[test]
fn recovered_when_that_never_holds_is_not_recovered_and_exits_3() {
  let test = Test::new()
    .file("runbook.yaml", &recovered_when_runbook("3m"))
    .file("world.yaml", &primary_outage_world(None));
  let run = test
    .run_args([
      "run",
      "runbook.yaml",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "300",
    ])
    .status(3);
  let stdout = run.stdout();
  assert!(
    stdout.contains("recovery: NOT RECOVERED: step `probe` passes did not hold within 3m"),
    "{stdout}"
  );
  assert!(
    stdout.contains("RTO achieved - / target 15m  BREACHED"),
    "{stdout}"
  );
  assert!(stdout.contains("result: breached"), "{stdout}");
  let run_id = test.run_ids().pop().unwrap();
  let report = report_json(&test, &run_id);
  assert_eq!(report["recovery"]["outcome"], "not_recovered");
  assert_eq!(
    report["recovery"]["recovery_seconds"],
    serde_json::Value::Null
  );
  assert_eq!(report["objectives"][0]["verdict"], "breached");
  assert_eq!(report["status"], "breached");
}

/// `kill -9` during the wait for recovery: `drctl resume` continues the same wait (its bound
/// counted from the first one) and runs no step again.
#[test]
fn a_kill_during_the_recovery_wait_resumes_the_wait_without_rerunning_a_step() {
  let test = Test::new()
    .file("runbook.yaml", &recovered_when_runbook("30m"))
    // At ×60 the primary answers 10 s (wall) after the run started.
    .file("world.yaml", &primary_outage_world(Some("10m")));
  let mut child = test.spawn([
    "run",
    "runbook.yaml",
    "--sim",
    "world.yaml",
    "--yes",
    "--time-scale",
    "60",
  ]);
  test.wait_for(Duration::from_secs(30), "the recovery wait", || {
    test.run_ids().first().is_some_and(|id| {
      test
        .journal(id)
        .contains(r#""event":"recovery_wait_started""#)
    })
  });
  signal(&child, "KILL");
  let _ = child.wait();
  let run_id = test.run_ids().pop().unwrap();
  let killed = test.journal(&run_id);
  assert!(!killed.contains("run_finished"), "killed before the end");
  let started = killed.matches(r#""event":"step_started""#).count();

  let resumed = test.run_args(["resume", &run_id, "--yes"]).status(0);
  assert!(
    resumed.stdout().contains("recovery: recovered "),
    "{}",
    resumed.stdout()
  );
  let journal = test.journal(&run_id);
  assert_eq!(
    journal.matches(r#""event":"step_started""#).count(),
    started,
    "a step ran again: {journal}"
  );
  assert_eq!(
    journal
      .matches(r#""event":"recovery_wait_started""#)
      .count(),
    1
  );
  assert_eq!(journal.matches(r#""event":"recovered""#).count(), 1);
  let report = report_json(&test, &run_id);
  let recovered = report["recovery"]["recovery_seconds"].as_f64().unwrap();
  assert!(recovered >= 600.0, "{}", report["recovery"]);
}

/// The shipped failover checks the standby's ALB target health, as the hand-run runbook's
/// "Verify Secondary is Healthy" does, after the scale-up and before the public URL.
#[test]
fn failover_checks_the_standby_target_health_before_the_public_url() {
  let test = Test::new();
  let run = test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "200",
    ])
    .status(0);
  assert!(
    run
      .stderr()
      .contains("target group `app-standby-tg`: 3/3 targets healthy (need all)"),
    "{}",
    run.stderr()
  );
  let run_id = test.run_ids().pop().unwrap();
  let status = test.status_json(&run_id);
  let steps = status["timeline"]["steps"].as_array().unwrap();
  let step = |id: &str| steps.iter().find(|step| step["id"] == id).unwrap();
  let (targets_start, targets_end) = offsets(step("standby-targets"));
  let (_, scale_end) = offsets(step("scale-standby"));
  let (url_start, _) = offsets(step("verify-secondary"));
  assert!(targets_start >= scale_end, "after the scale-up");
  assert!(url_start >= targets_end, "before the public URL");
  assert_eq!(step("standby-targets")["outcome"], "succeeded");
}

/// `regional-failover-arc` fails over with the DNS flip done by ARC routing controls through the
/// recovery cluster's data plane: it completes, the public name then answers from the standby,
/// and no Route 53 API call is made (the routing controls drive the failover records' health
/// checks).
#[test]
fn arc_failover_flips_dns_with_routing_controls_and_no_route53_call() {
  let test = Test::new();
  let runbook = crate::support::repo().join("runbooks/regional-failover-arc.yaml");
  let runbook = runbook.to_str().unwrap();
  test.run_args(["validate", runbook]).status(0);
  let plan = test
    .run_args(["plan", runbook, "-p", "target_region=us-west-2", "--sim"])
    .status(0);
  assert!(
    plan
      .stdout()
      .contains("flip-dns [arc.routing_control] mutating — would change"),
    "{}",
    plan.stdout()
  );
  assert!(
    plan.stdout().contains("primarycell00001 On -> Off"),
    "{}",
    plan.stdout()
  );
  let run = test
    .run_args([
      "run",
      runbook,
      "-p",
      "target_region=us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "200",
    ])
    .status(0);
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
  assert!(
    run
      .stderr()
      .contains("GET https://app.example.com/health: 200"),
    "the public name answers from the standby: {}",
    run.stderr()
  );
  let run_id = test.run_ids().pop().unwrap();
  let status = test.status_json(&run_id);
  let operations = status["operations"].as_array().unwrap();
  let services: Vec<&str> = operations
    .iter()
    .map(|op| op["service"].as_str().unwrap())
    .collect();
  assert!(!services.contains(&"route53"), "{services:?}");
  let names = test.operations(&run_id);
  assert_eq!(count(&names, "UpdateRoutingControlState"), 2, "{names:?}");
  assert_eq!(count(&names, "ChangeResourceRecordSets"), 0, "{names:?}");
  assert_eq!(count(&names, "UpdateHealthCheck"), 0, "{names:?}");
  let steps = status["timeline"]["steps"].as_array().unwrap();
  let flip = steps.iter().find(|step| step["id"] == "flip-dns").unwrap();
  assert_eq!(flip["outcome"], "succeeded", "{flip}");

  // The world the run left: the primary cell's control Off, the standby's On, and the public
  // name answering while the old primary (fenced to zero tasks) cannot, so it resolves to the
  // standby.
  let after = test.world_after(&run_id);
  let world: serde_json::Value =
    serde_json::from_str(&std::fs::read_to_string(&after).unwrap()).unwrap();
  let controls = world["arc"]["routing_controls"].as_array().unwrap();
  let state = |name: &str| {
    controls
      .iter()
      .find(|control| control["name"] == name)
      .unwrap_or_else(|| panic!("no {name}: {world}"))["state"]
      .clone()
  };
  assert_eq!(state("primary-cell"), "Off");
  assert_eq!(state("standby-cell"), "On");
  let probe = test.path().join("probe.yaml");
  std::fs::write(
    &probe,
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: probe }\nsteps:\n  \
     - { id: old-primary, action: http.check, with: { url: 'https://api-use1.example.com/health', expect_status: 503 } }\n  \
     - { id: public, action: http.check, with: { url: 'https://app.example.com/health', expect_status: 200 } }\n",
  )
  .unwrap();
  let run = test
    .run_args([
      "run",
      probe.to_str().unwrap(),
      "--sim",
      after.to_str().unwrap(),
      "--yes",
    ])
    .status(0);
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
}

/// `recovered_when: { alarms }` through the binary: the shipped failover's steps scale the
/// standby; the run is recovered once the standby's alarm is OK (its targets healthy, then the
/// end of a one-minute period), and the RTO runs to that moment. An alarm set that never clears
/// (the game day's primary alarm stays in ALARM) ends "not recovered", exit 3.
#[test]
fn recovered_when_alarms_waits_for_the_alarms_and_a_set_that_never_clears_breaches() {
  let runbook = |alarms: &str| {
    format!(
      r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: recovered-when-alarms }}
params:
  target_region: {{ type: string, default: us-west-2 }}
objectives:
  rto: 15m
  recovered_when: {{ alarms: [{alarms}], region: "${{{{ params.target_region }}}}", within: 10m }}
steps:
  - id: scale-standby
    action: ecs.scale_service
    with: {{ region: us-west-2, cluster: app-standby, service: api, desired_count: 3 }}
"#
    )
  };
  let test = Test::new()
    .file("recovers.yaml", &runbook("app-standby-unhealthy"))
    .file(
      "never.yaml",
      &runbook("app-standby-unhealthy, app-primary-unhealthy"),
    );
  let args = |file: &'static str| ["run", file, "--sim", "--yes", "--time-scale", "300"];
  let run = test.run_args(args("recovers.yaml")).status(0);
  let stdout = run.stdout();
  assert!(
    stdout.contains("(alarms `app-standby-unhealthy` are OK in us-west-2; the run's steps took"),
    "{stdout}"
  );
  let run_id = test.run_ids().pop().unwrap();
  let report = report_json(&test, &run_id);
  let recovery = &report["recovery"];
  assert_eq!(recovery["outcome"], "recovered", "{recovery}");
  assert_eq!(
    recovery["summary"], "1/1 alarms OK in us-west-2",
    "{recovery}"
  );
  // The third task starts at 144s and is healthy at 174s; the alarm clears at the period end
  // at 180s of the world (created a moment before the run).
  let steps_took = recovery["wait_start_seconds"].as_f64().unwrap();
  let recovered = recovery["recovery_seconds"].as_f64().unwrap();
  assert!((140.0..175.0).contains(&steps_took), "{recovery}");
  assert!((170.0..200.0).contains(&recovered), "{recovery}");

  let run = test.run_args(args("never.yaml")).status(3);
  let stdout = run.stdout();
  assert!(stdout.contains("NOT RECOVERED"), "{stdout}");
  let run_id = test.run_ids().pop().unwrap();
  let report = report_json(&test, &run_id);
  assert_eq!(report["recovery"]["outcome"], "not_recovered");
  let error = report["recovery"]["summary"]
    .as_str()
    .unwrap_or_default()
    .to_owned()
    + &report.to_string();
  assert!(
    error.contains("not OK: app-primary-unhealthy ALARM since"),
    "{report}"
  );
}

/// `autoscaling.set_capacity` through the binary on the simulator: a dry run says what would
/// change and sends no update; a live run sets the capacity once and ends when the three
/// instances are InService (3m for the first, a tenth more for each next: 3m36s modelled).
#[test]
fn autoscaling_set_capacity_dry_run_changes_nothing_and_a_run_scales_once() {
  let world = drctl::cloud::sim::BUILTIN_WORLD.replacen(
    "\nendpoints:\n",
    "\nautoscaling:\n  groups:\n    - { region: us-west-2, name: web-standby, min: 0, max: 10, desired: 0 }\nendpoints:\n",
    1,
  );
  let runbook = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: scale }
steps:
  - id: scale-standby
    action: autoscaling.set_capacity
    with: { region: us-west-2, group: web-standby, desired: 3, set_min: true }
"#;
  let test = Test::new()
    .file("runbook.yaml", runbook)
    .file("world.yaml", &world);
  let dry = test
    .run_args([
      "run",
      "runbook.yaml",
      "--sim",
      "world.yaml",
      "--dry-run",
      "--yes",
    ])
    .status(0);
  let stdout = dry.stdout();
  assert!(
    stdout.contains("now:    web-standby: desired 0 (min 0, max 10), 0 InService")
      && stdout.contains("change: desired capacity 0 -> 3, min 0 -> 3")
      && stdout.contains("nothing was changed (dry run)"),
    "{stdout}"
  );
  let run = test
    .run_args([
      "run",
      "runbook.yaml",
      "--sim",
      "world.yaml",
      "--yes",
      "--time-scale",
      "300",
    ])
    .status(0);
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
  let run_id = test.run_ids().pop().unwrap();
  let report = report_json(&test, &run_id);
  let text = report.to_string();
  assert!(
    text.contains("web-standby: 3/3 instances InService"),
    "{text}"
  );
  let status = test
    .run_args(["status", &run_id, "--output", "json"])
    .status(0)
    .stdout();
  let updates = status.matches("\"UpdateAutoScalingGroup\"").count();
  assert_eq!(updates, 1, "{status}");
}
