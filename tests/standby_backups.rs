//! Backups that survive the region: the shipped drills validate the snapshot copy in the standby
//! region (newest copy there younger than the RPO, restored there, checked, always deleted), and
//! the weekly snapshot-age check covers both regions, on the simulator and on moto.

use crate::support::{moto::Moto, repo, Test};

const STANDBY: &str = "us-west-2";
/// The simulator's copy of the newest snapshot in the standby region.
const SIM_COPY: &str = "app-db-copy-2026-11-22-03-00";

/// A test directory with the shipped drills.
fn with_drills() -> Test {
  let mut test = Test::new();
  for entry in std::fs::read_dir(repo().join("drills")).unwrap() {
    let entry = entry.unwrap();
    let contents = std::fs::read_to_string(entry.path()).unwrap();
    test = test.file(
      &format!("drills/{}", entry.file_name().to_string_lossy()),
      &contents,
    );
  }
  test
}

/// The outputs a step's `step_succeeded` record journalled.
fn outputs(test: &Test, run_id: &str, step: &str) -> serde_json::Value {
  test
    .journal(run_id)
    .lines()
    .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
    .find(|record| record["event"] == "step_succeeded" && record["step"] == step)
    .map(|record| record["outputs"].clone())
    .unwrap_or_else(|| panic!("no step_succeeded of {step}"))
}

#[test]
fn the_monthly_drill_restores_the_standby_copy_there_and_deletes_it() {
  let test = with_drills();
  let run = test.run_args(["drill", "run", "monthly-backup-restore"]);
  assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
  let run_id = test.run_ids().pop().unwrap();
  assert_eq!(
    outputs(&test, &run_id, "latest-snapshot")["snapshot_id"],
    SIM_COPY
  );
  let status = test.status_json(&run_id);
  let temporary = format!("restore-check-{run_id}");
  let calls: Vec<(String, String, String)> = status["operations"]
    .as_array()
    .unwrap()
    .iter()
    .map(|op| {
      (
        op["operation"].as_str().unwrap().to_string(),
        op["region"].as_str().unwrap_or_default().to_string(),
        op["target"].as_str().unwrap().to_string(),
      )
    })
    .collect();
  for operation in ["RestoreDBInstanceFromDBSnapshot", "DeleteDBInstance"] {
    assert!(
      calls.contains(&(operation.into(), STANDBY.into(), temporary.clone())),
      "{operation} of {temporary} in {STANDBY}: {calls:?}"
    );
  }
}

#[test]
fn the_weekly_snapshot_age_check_covers_both_regions() {
  let test = with_drills();
  let run = test.run_args(["drill", "run", "weekly-snapshot-age"]);
  assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
  let run_id = test.run_ids().pop().unwrap();
  assert_eq!(
    outputs(&test, &run_id, "latest-snapshot")["snapshot_id"],
    "rds:app-db-2026-11-22-03-00"
  );
  assert_eq!(
    outputs(&test, &run_id, "latest-snapshot-standby")["snapshot_id"],
    SIM_COPY
  );
  // An instance without a copy in the standby region fails the check, naming the region.
  let missing = test.run_args(["run", "snapshot-age", "--sim", "-p", "instance=no-such-db"]);
  assert_eq!(missing.code(), 1, "{}", missing.stderr());
  let text = missing.stdout() + &missing.stderr();
  assert!(
    text.contains(&format!(
      "no available snapshot of `no-such-db` in {STANDBY}"
    )),
    "{text}"
  );
}

#[tokio::test]
async fn on_moto_the_standby_copy_is_found_restored_there_checked_and_deleted() {
  let moto = Moto::start();
  let test = Test::new();
  moto.attach(&test.path().join(".drctl"));
  test
    .run_args([
      "run",
      "backup-restore-validation",
      "--sandbox",
      "--yes",
      "-p",
      "snapshot_region=us-west-2",
    ])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  assert_eq!(
    outputs(&test, &run_id, "latest-snapshot")["snapshot_id"],
    moto.id("/rds/standby_copy")
  );
  let cloud = drctl::cloud::aws::connect(&moto.settings())
    .await
    .expect("connect");
  let temporary = format!("restore-check-{run_id}");
  let left = cloud
    .rds
    .describe_instance(STANDBY, &temporary)
    .await
    .unwrap();
  assert!(
    left.is_none_or(|instance| instance.status == "deleting"),
    "the temporary instance is left"
  );

  test
    .run_args(["run", "snapshot-age", "--sandbox", "--yes"])
    .status(0);
  let run_id = test.run_ids().pop().unwrap();
  assert_eq!(
    outputs(&test, &run_id, "latest-snapshot-standby")["snapshot_id"],
    moto.id("/rds/standby_copy")
  );
}
