//! The sandbox through the real binary: the shipped runbooks and every action against the
//! patched, seeded moto server (`--sandbox`), with the world checked afterwards through the AWS
//! SDK, the dry run proven by moto's request recorder, and throttling injected by the launcher.
//!
//! Most tests start their own server with `Moto::start()` and make it the running sandbox of the
//! test's state directory (`Moto::attach`), so each test has its own world and the server stops
//! when the test ends.

use std::path::Path;

use drctl::cloud::{
  aws, ops,
  wire::{recorded_operation, WireOp},
  Cloud, FailoverRole,
};

use crate::support::{moto::Moto, repo, Test};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

/// A test directory whose `--sandbox` runs against `moto`.
fn attached(moto: &Moto) -> Test {
  let test = Test::new();
  moto.attach(&test.path().join(".drctl"));
  test
}

fn fixture(test: Test, name: &str) -> Test {
  let text = std::fs::read_to_string(repo().join("tests/fixtures/moto").join(name)).unwrap();
  test.file(&format!("fixtures/{name}"), &text)
}

async fn cloud(moto: &Moto) -> Cloud {
  aws::connect(&moto.settings()).await.expect("connect")
}

fn last_run(test: &Test) -> String {
  test.run_ids().pop().expect("a run")
}

fn journal_backend(test: &Test, run_id: &str) -> String {
  let journal = test.journal(run_id);
  let first: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
  first
    .pointer("/event/backend")
    .or_else(|| first.get("backend"))
    .and_then(|value| value.as_str())
    .unwrap_or_default()
    .to_owned()
}

#[test]
fn failover_with_a_sandbox_of_its_own_succeeds() {
  let test = Test::new();
  let run = test
    .run_args(["failover", "us-west-2", "--sandbox", "--yes"])
    .status(0);
  assert!(run.stderr().contains("backend sandbox"), "{}", run.stderr());
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
  let run_id = last_run(&test);
  assert_eq!(journal_backend(&test, &run_id), "sandbox");
  // The server was stopped with the command: nothing is recorded as running.
  let status = test.run_args(["sandbox", "status"]).status(0);
  assert!(status.stdout().contains("no sandbox running"));
}

#[tokio::test]
async fn failover_changes_the_world_as_seen_through_the_aws_api() {
  let moto = Moto::start();
  let test = attached(&moto);
  let run = test.run_args(["failover", "us-west-2", "--sandbox", "--yes"]);
  let run = run.status(0);
  assert!(run.stdout().contains("RTO achieved"), "{}", run.stdout());

  let cloud = cloud(&moto).await;
  let replica = cloud
    .rds
    .describe_instance(WEST, "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(replica.is_standalone_available(), "{replica:?}");
  let service = cloud
    .ecs
    .describe_service(WEST, "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(service.is_steady_at(3), "{service:?}");
  let records = cloud
    .route53
    .list_record_sets("Z0DRCTLEXAMPLE", "api.example.com.")
    .await
    .unwrap();
  let primary = records
    .iter()
    .find(|record| record.failover == Some(FailoverRole::Primary))
    .unwrap();
  assert_eq!(primary.values, ["api-usw2.example.com"]);
  assert_eq!(primary.health_check_id.as_deref(), Some("hc-secondary"));
  // The sandbox serves the public endpoint from the standby region now.
  let (status, body) = moto.request("GET", "/drctl-sandbox/app/api.example.com/health", "");
  assert_eq!((status, body.as_str()), (200, "ok"));
}

async fn assert_no_restore_instance(moto: &Moto, run_id: &str) {
  let cloud = cloud(moto).await;
  let left = cloud
    .rds
    .describe_instance(EAST, &format!("restore-check-{run_id}"))
    .await
    .unwrap();
  assert!(left.is_none(), "the temporary instance remains: {left:?}");
}

#[tokio::test]
async fn backup_restore_validation_cleans_up_after_success_and_failure() {
  let moto = Moto::start();
  let test = attached(&moto);
  let run = test
    .run_args(["run", "backup-restore-validation", "--sandbox", "--yes"])
    .status(0);
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
  assert_no_restore_instance(&moto, &last_run(&test)).await;

  let failed = test
    .run_args([
      "run",
      "backup-restore-validation",
      "--sandbox",
      "--yes",
      "-p",
      "check_command=exit 3",
    ])
    .status(1);
  assert!(
    failed.stdout().contains("delete-restored"),
    "{}",
    failed.stdout()
  );
  assert_no_restore_instance(&moto, &last_run(&test)).await;
}

#[tokio::test]
async fn route53_actions() {
  let moto = Moto::start();
  let test = fixture(attached(&moto), "route53.yaml");
  // The fixture flips to hc-secondary while the standby runs no tasks: the DNS guard would
  // refuse, and this test is about the actions themselves.
  test
    .run_args([
      "run",
      "fixtures/route53.yaml",
      "--sandbox",
      "--yes",
      "--force",
    ])
    .status(0);
  let cloud = cloud(&moto).await;
  let status = cloud
    .route53
    .get_health_check_status("hc-primary")
    .await
    .unwrap();
  assert!(!status.inverted && status.is_healthy(), "{status:?}");
  let records = cloud
    .route53
    .list_record_sets("Z0DRCTLEXAMPLE", "api.example.com.")
    .await
    .unwrap();
  let secondary = records
    .iter()
    .find(|record| record.failover == Some(FailoverRole::Secondary))
    .unwrap();
  assert_eq!(secondary.values, ["api-use1.example.com"]);
}

#[tokio::test]
async fn rds_actions() {
  let moto = Moto::start();
  let test = fixture(attached(&moto), "rds.yaml");
  test
    .run_args(["run", "fixtures/rds.yaml", "--sandbox", "--yes"])
    .status(0);
  let run_id = last_run(&test);
  let cloud = cloud(&moto).await;
  let replica = cloud
    .rds
    .describe_instance(WEST, "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(replica.is_standalone_available());
  let restored = cloud
    .rds
    .describe_instance(EAST, &format!("moto-restore-{run_id}"))
    .await
    .unwrap();
  assert!(restored.is_none(), "{restored:?}");
  let global = cloud
    .rds
    .describe_global_cluster("app-global")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(
    global.writer(),
    Some("arn:aws:rds:us-west-2:123456789012:cluster:app-aurora-usw2")
  );
}

#[tokio::test]
async fn ecs_and_s3_actions() {
  let moto = Moto::start();
  let test = fixture(attached(&moto), "ecs-s3.yaml");
  let sha256 = moto.id("/s3/objects/1/checksum_sha256");
  test
    .run_args([
      "run",
      "fixtures/ecs-s3.yaml",
      "--sandbox",
      "--yes",
      "-p",
      &format!("sha256={sha256}"),
    ])
    .status(0);
  let service = cloud(&moto)
    .await
    .ecs
    .describe_service(WEST, "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(service.is_steady_at(2), "{service:?}");
  // A wrong checksum fails the step.
  test
    .run_args([
      "run",
      "fixtures/ecs-s3.yaml",
      "--sandbox",
      "--yes",
      "-p",
      "sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ])
    .status(1);
}

#[test]
fn http_notify_exec_and_wait_actions() {
  let moto = Moto::start();
  let test = fixture(attached(&moto), "http-notify-exec-wait.yaml");
  let run = test
    .run_args([
      "run",
      "fixtures/http-notify-exec-wait.yaml",
      "--sandbox",
      "--yes",
    ])
    .status(0);
  let run_id = last_run(&test);
  assert!(run.stderr().contains("`sh` exited 0"), "{}", run.stderr());
  assert!(test.journal(&run_id).contains("restored-yes"));
  let (status, captured) = moto.request("GET", "/drctl-sandbox/captured", "");
  assert_eq!(status, 200);
  let captured: Vec<serde_json::Value> = serde_json::from_str(&captured).unwrap();
  let body = |host: &str| -> serde_json::Value {
    let found = captured
      .iter()
      .find(|entry| entry["host"] == host)
      .unwrap_or_else(|| panic!("nothing captured for {host}: {captured:?}"));
    serde_json::from_str(found["body"].as_str().unwrap()).unwrap()
  };
  let slack = body("hooks.slack.com");
  assert_eq!(slack["text"], format!("slack from {run_id}"), "{slack}");
  let page = body("events.pagerduty.com");
  assert_eq!(page["routing_key"], "moto-routing-key", "{page}");
  assert_eq!(page["event_action"], "trigger", "{page}");
  assert_eq!(
    page["payload"]["summary"],
    format!("page from {run_id}"),
    "{page}"
  );
  assert!(page["dedup_key"]
    .as_str()
    .is_some_and(|key| !key.is_empty()));
  let hook = body("hooks.example.com");
  assert_eq!(hook["event"], "webhook-from-sandbox", "{hook}");
  assert_eq!(captured.len(), 3, "{captured:?}");
}

#[test]
fn plan_and_dry_run_make_no_mutating_call() {
  let moto = Moto::start();
  let test = attached(&moto);
  let (status, _) = moto.request("POST", "/moto-api/recorder/start-recording", "");
  assert_eq!(status, 200);
  // Every shipped runbook, so a new one is covered without editing this test; only
  // regional-failover has a required parameter.
  let mut names: Vec<String> = std::fs::read_dir(crate::support::repo().join("runbooks"))
    .unwrap()
    .flatten()
    .filter_map(|entry| {
      let name = entry.file_name().to_string_lossy().into_owned();
      name.strip_suffix(".yaml").map(str::to_string)
    })
    .collect();
  names.sort();
  assert!(names.len() >= 3, "{names:?}");
  // regional-failover-arc's recovery cluster endpoints are the sandbox's (loopback), one path
  // per region, instead of its defaults (AWS's).
  let arc_endpoints: Vec<String> = [
    "us-east-1",
    "us-west-2",
    "eu-west-1",
    "ap-northeast-1",
    "ap-southeast-2",
  ]
  .iter()
  .enumerate()
  .flat_map(|(i, region)| {
    let n = i + 1;
    [
      "-p".to_owned(),
      format!("cluster_endpoint_{n}_region={region}"),
      "-p".to_owned(),
      format!("cluster_endpoint_{n}={}/arc/{region}/v1", moto.endpoint),
    ]
  })
  .collect();
  let runbooks: Vec<(&str, Vec<&str>)> = names
    .iter()
    .map(|name| {
      let mut params = if name.starts_with("regional-failover") {
        vec!["-p", "target_region=us-west-2"]
      } else {
        vec![]
      };
      if name == "regional-failover-arc" {
        params.extend(arc_endpoints.iter().map(String::as_str));
      }
      (name.as_str(), params)
    })
    .collect();
  for (runbook, params) in &runbooks {
    let mut plan = vec!["plan", runbook, "--sandbox"];
    plan.extend(params);
    let planned = test.run_args(&plan).status(0);
    if *runbook == "regional-failover-arc" {
      assert!(
        planned.stdout().contains("primarycell00001 On -> Off"),
        "the sandbox's routing controls, read through its cluster: {}",
        planned.stdout()
      );
    }
    let mut dry_run = vec!["run", runbook, "--sandbox", "--dry-run"];
    dry_run.extend(params);
    test.run_args(&dry_run).status(0);
  }
  let (status, recording) = moto.request("GET", "/moto-api/recorder/download-recording", "");
  assert_eq!(status, 200, "{recording}");
  let operations: Vec<WireOp> = recording
    .lines()
    .filter(|line| !line.trim().is_empty())
    .map(|line| recorded_operation(&serde_json::from_str(line).unwrap()))
    .collect();
  assert!(
    operations.len() >= 10,
    "the recording holds the probes: {operations:?}"
  );
  // The recovery cluster's calls are recorded too (the launcher serves them, not moto), so a
  // routing control a dry run set would be caught below.
  for expected in [
    &ops::rds::DESCRIBE_DB_INSTANCES,
    &ops::route53::GET_HEALTH_CHECK_STATUS,
    &ops::ecs::DESCRIBE_SERVICES,
    &drctl::cloud::arc::ops::GET_ROUTING_CONTROL_STATE,
  ] {
    assert!(
      operations.iter().any(|op| op.op() == Some(expected)),
      "{expected} not recorded: {operations:?}"
    );
  }
  let mutating = drctl::actions::mutating_operations();
  for operation in &operations {
    assert!(
      !operation.op().is_some_and(|op| mutating.contains(&op)),
      "a dry run called {}: {operations:?}",
      operation.name()
    );
    assert!(
      !matches!(operation, WireOp::Unrecognised(_)),
      "unrecognised request {}",
      operation.name()
    );
    assert!(
      !matches!(
        operation.op(),
        Some(op) if *op == ops::s3::PUT_OBJECT || *op == ops::s3::DELETE_OBJECT
      ),
      "a dry run wrote to S3: {operations:?}"
    );
  }
}

fn set_throttle(moto: &Moto, on: bool) {
  let (status, body) = moto.request(
    "POST",
    "/drctl-sandbox/faults",
    &format!("{{\"throttle\": {on}}}"),
  );
  assert_eq!(status, 200, "{body}");
}

#[test]
fn throttling_fails_after_the_retries_and_resume_finishes() {
  let moto = Moto::start();
  let test = fixture(attached(&moto), "throttled.yaml");
  set_throttle(&moto, true);
  let run = test
    .run_args(["run", "fixtures/throttled.yaml", "--sandbox", "--yes"])
    .status(1);
  let output = format!("{}{}", run.stdout(), run.stderr());
  assert!(output.contains("Throttling"), "{output}");
  assert!(output.contains("request id"), "{output}");
  let run_id = last_run(&test);
  // The summary's attempts column: the step ran the three attempts its retry policy allows.
  let row = run
    .stdout()
    .lines()
    .find(|line| line.trim_start().starts_with("replica "))
    .map(str::to_owned)
    .unwrap_or_default();
  assert!(
    row.contains("failed") && row.trim_end().ends_with(" 3"),
    "{}",
    run.stdout()
  );

  set_throttle(&moto, false);
  let resumed = test.run_args(["resume", &run_id, "--yes"]).status(0);
  assert!(
    resumed.stdout().contains("result: succeeded"),
    "{}",
    resumed.stdout()
  );
}

#[test]
fn resume_of_a_sandbox_run_needs_a_running_sandbox() {
  let run_id;
  let test;
  {
    let moto = Moto::start();
    test = fixture(attached(&moto), "throttled.yaml");
    set_throttle(&moto, true);
    test
      .run_args(["run", "fixtures/throttled.yaml", "--sandbox", "--yes"])
      .status(1);
    run_id = last_run(&test);
  }
  let resumed = test.run_args(["resume", &run_id, "--yes"]).status(2);
  assert!(
    resumed.stderr().contains("drctl sandbox up"),
    "{}",
    resumed.stderr()
  );
}

#[test]
fn sandbox_up_status_and_down() {
  let test = Test::new();
  let up = test.run_args(["sandbox", "up"]).status(0);
  // Whatever happens below, stop the server.
  struct Down<'a>(&'a Test);
  impl Drop for Down<'_> {
    fn drop(&mut self) {
      let _ = self.0.run_args(["sandbox", "down"]);
    }
  }
  let down = Down(&test);
  assert!(
    up.stdout()
      .contains("AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1"),
    "{}",
    up.stdout()
  );
  let record: serde_json::Value = serde_json::from_str(
    &std::fs::read_to_string(test.path().join(".drctl/sandbox.json")).unwrap(),
  )
  .unwrap();
  let endpoint = record["endpoint"].as_str().unwrap().to_owned();
  assert!(up
    .stdout()
    .contains(&format!("export AWS_ENDPOINT_URL={endpoint} ")));
  let status = test.run_args(["sandbox", "status"]).status(0);
  assert!(status.stdout().contains("sandbox running at"));
  // `--sandbox` uses the running server: a plan sees the seeded world.
  test
    .run_args([
      "plan",
      "regional-failover",
      "-p",
      "target_region=us-west-2",
      "--sandbox",
    ])
    .status(0);
  drop(down);
  let status = test.run_args(["sandbox", "status"]).status(0);
  assert!(status.stdout().contains("no sandbox running"));
  assert!(!Path::new(&test.path().join(".drctl/sandbox.json")).exists());
}

/// On moto through the SDK: `drctl failover us-west-2`, then `drctl run failback` on the same
/// server. The failback creates the home replica of the standby writer, stops the standby
/// service, promotes the home replica, points DNS home and recreates `app-db-replica` as the
/// replica of the new home writer.
#[tokio::test]
async fn failback_after_a_failover_on_moto_brings_the_writer_home() {
  let moto = Moto::start();
  let test = attached(&moto);
  test
    .run_args(["failover", "us-west-2", "--sandbox", "--yes"])
    .status(0);
  let before = test.run_ids();
  let run = test
    .run_args(["run", "failback", "--sandbox", "--yes"])
    .status(0);
  assert!(
    run.stdout().contains("result: succeeded"),
    "{}",
    run.stdout()
  );
  let failback = test.new_run(&before);
  let home_writer = format!("app-db-{failback}");

  let cloud = cloud(&moto).await;
  let home = cloud
    .rds
    .describe_instance(EAST, &home_writer)
    .await
    .unwrap()
    .unwrap();
  assert!(home.is_standalone_available(), "{home:?}");
  let standby = cloud
    .rds
    .describe_instance(WEST, "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(
    standby.replica_of,
    Some(format!(
      "arn:aws:rds:us-east-1:123456789012:db:{home_writer}"
    )),
    "{standby:?}"
  );
  let service = cloud
    .ecs
    .describe_service(WEST, "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(service.is_steady_at(0), "{service:?}");
  let (status, body) = moto.request("GET", "/drctl-sandbox/app/api.example.com/health", "");
  assert_eq!((status, body.as_str()), (200, "ok"));
}

/// On moto through the SDK: a failback onto the old writer (`-p home_db=app-db`) is refused,
/// naming it; with `--accept-data-loss` it takes it as it is (RPO unknown: exit 3), creates
/// no home replica and keeps the standby writer, which alone holds the failover's writes.
#[tokio::test]
async fn failback_onto_the_old_writer_on_moto_keeps_the_standby_writer() {
  let moto = Moto::start();
  let test = attached(&moto);
  test
    .run_args(["failover", "us-west-2", "--sandbox", "--yes"])
    .status(0);
  let refused = test
    .run_args([
      "run",
      "failback",
      "--sandbox",
      "--yes",
      "-p",
      "home_db=app-db",
    ])
    .status(1);
  let output = format!("{}{}", refused.stdout(), refused.stderr());
  assert!(
    output.contains("`app-db` in us-east-1 is not a read replica of"),
    "{output}"
  );
  let before = test.run_ids();
  test
    .run_args([
      "run",
      "failback",
      "--sandbox",
      "--yes",
      "-p",
      "home_db=app-db",
      "--accept-data-loss",
    ])
    .status(3);
  let failback = test.new_run(&before);
  let cloud = cloud(&moto).await;
  assert_eq!(
    cloud
      .rds
      .describe_instance(EAST, &format!("app-db-{failback}"))
      .await
      .unwrap(),
    None,
    "no home replica was created"
  );
  let home = cloud
    .rds
    .describe_instance(EAST, "app-db")
    .await
    .unwrap()
    .unwrap();
  assert!(home.is_standalone_available(), "{home:?}");
  let standby = cloud
    .rds
    .describe_instance(WEST, "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(
    standby.is_standalone_available(),
    "the standby writer is kept: {standby:?}"
  );
  let (status, body) = moto.request("GET", "/drctl-sandbox/app/api.example.com/health", "");
  assert_eq!((status, body.as_str()), (200, "ok"));
}

/// On the sandbox the shipped failover reads the standby's target health through the SDK: the
/// launcher registered the scaled-up service's tasks, and they passed their checks.
#[tokio::test]
async fn failover_on_the_sandbox_checks_the_standby_target_health() {
  let moto = Moto::start();
  let test = attached(&moto);
  let run = test
    .run_args(["failover", "us-west-2", "--sandbox", "--yes"])
    .status(0);
  assert!(
    run
      .stderr()
      .contains("target group `app-standby-tg`: 3/3 targets healthy (need all)"),
    "{}",
    run.stderr()
  );
  let cloud = cloud(&moto).await;
  let group = cloud
    .elbv2
    .find_target_group(WEST, "app-standby-tg")
    .await
    .unwrap()
    .unwrap();
  let targets = cloud
    .elbv2
    .describe_target_health(WEST, &group.arn)
    .await
    .unwrap()
    .unwrap();
  assert_eq!(targets.len(), 3, "{targets:?}");
}
