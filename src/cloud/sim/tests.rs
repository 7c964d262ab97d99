//! Behaviour of the simulator through the provider traits, as drctl's actions see it.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use tempfile::TempDir;

use super::*;
use crate::cloud::{
  FailoverRole, GlobalFailover, HealthCheckUpdate, HttpRequest, RecordChange, RecordSet, Redirects,
  RestoreRequest, DEFAULT_MAX_BODY,
};

const MIN: u64 = 60;

fn open(dir: &Path) -> Arc<Sim> {
  Sim::open(&SimOptions {
    world: None,
    time_scale: None,
    dir: dir.to_path_buf(),
  })
  .unwrap()
}

/// The built-in world with extra top-level YAML appended (faults, rate limits).
fn open_with(dir: &Path, extra: &str) -> Arc<Sim> {
  let world = BUILTIN_WORLD
    .replace("faults: {}\n", "")
    .replace("rate_limits: {}\n", "")
    .replace("seed: 1\n", "")
    + extra;
  std::fs::create_dir_all(dir).unwrap();
  let path = dir.join("world.yaml");
  std::fs::write(&path, world).unwrap();
  Sim::open(&SimOptions {
    world: Some(path),
    time_scale: None,
    dir: dir.join("state"),
  })
  .unwrap()
}

fn get(url: &str) -> HttpRequest {
  HttpRequest {
    method: "GET".into(),
    url: url.into(),
    headers: BTreeMap::new(),
    body: None,
    timeout: Duration::from_secs(10),
    redirects: Redirects::None,
    max_body: DEFAULT_MAX_BODY,
  }
}

fn post(url: &str, body: &str) -> HttpRequest {
  HttpRequest {
    method: "POST".into(),
    url: url.into(),
    headers: BTreeMap::from([("Content-Type".to_string(), "application/json".to_string())]),
    body: Some(body.into()),
    timeout: Duration::from_secs(10),
    redirects: Redirects::None,
    max_body: DEFAULT_MAX_BODY,
  }
}

#[tokio::test(start_paused = true)]
async fn promote_moves_modifying_to_available_and_clears_replica_of() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let cloud = sim.cloud();
  assert_eq!(cloud.backend, "sim");
  assert_eq!(cloud.clock.scale(), 40.0);

  let before = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(before.status, "available");
  assert_eq!(
    before.replica_of.as_deref(),
    Some("arn:aws:rds:us-east-1:123456789012:db:app-db")
  );
  assert_eq!(
    cloud
      .rds
      .replica_lag("us-west-2", "app-db-replica")
      .await
      .unwrap()
      .measured(),
    Some(Duration::from_secs(4))
  );

  cloud
    .rds
    .promote_read_replica("us-west-2", "app-db-replica")
    .await
    .unwrap();
  let during = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(during.status, "modifying");
  assert!(during.replica_of.is_some());

  sim.advance(Duration::from_secs(4 * MIN));
  let still = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(still.status, "modifying");

  sim.advance(Duration::from_secs(MIN));
  let after = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(after.is_standalone_available(), "{after:?}");
  assert_eq!(
    cloud
      .rds
      .replica_lag("us-west-2", "app-db-replica")
      .await
      .unwrap()
      .measured(),
    None
  );

  let log = sim.operation_log();
  assert_eq!(log.len(), 1);
  assert_eq!(
    log[0].operation,
    crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name
  );
  assert_eq!(log[0].target, "app-db-replica");
  assert_eq!(log[0].region.as_deref(), Some("us-west-2"));
}

#[tokio::test(start_paused = true)]
async fn promoting_a_standalone_instance_is_invalid_state() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let cloud = sim.cloud();
  let err = cloud
    .rds
    .promote_read_replica("us-east-1", "app-db")
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::InvalidState);
  assert_eq!(err.code.as_deref(), Some("InvalidDBInstanceState"));
  assert_eq!(err.http_status, Some(400));
  assert!(err
    .request_id
    .as_deref()
    .is_some_and(|id| id.starts_with("sim-")));

  let missing = cloud
    .rds
    .promote_read_replica("us-east-1", "nope")
    .await
    .unwrap_err();
  assert_eq!(missing.kind, ErrorKind::NotFound);
  assert_eq!(missing.code.as_deref(), Some("DBInstanceNotFound"));
  assert_ne!(missing.request_id, err.request_id);
  assert!(cloud
    .rds
    .describe_instance("us-east-1", "nope")
    .await
    .unwrap()
    .is_none());
  assert!(
    sim.operation_log().is_empty(),
    "refused calls are not logged"
  );
}

#[tokio::test(start_paused = true)]
async fn scaling_rises_task_by_task_and_ends_steady() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let ecs = sim.cloud().ecs;
  let service = ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(service.is_steady_at(0));

  ecs
    .update_desired_count("us-west-2", "app-standby", "api", 3)
    .await
    .unwrap();
  let started = ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(started.desired_count, 3);
  assert_eq!(started.running_count, 0);
  assert_eq!(started.pending_count, 3);
  assert_eq!(started.deployments.len(), 2);
  assert_eq!(started.deployments[0].status, "PRIMARY");
  assert_eq!(
    started.deployments[0].rollout_state.as_deref(),
    Some("IN_PROGRESS")
  );
  assert_eq!(started.deployments[1].status, "ACTIVE");
  assert!(!started.is_steady_at(3));

  sim.advance(Duration::from_secs(2 * MIN));
  let one = ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(one.running_count, 1);
  assert!(!one.is_steady_at(3));

  sim.advance(Duration::from_secs(30));
  let done = ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(done.is_steady_at(3), "{done:?}");

  // Same count again: idempotent, nothing restarts.
  ecs
    .update_desired_count("us-west-2", "app-standby", "api", 3)
    .await
    .unwrap();
  let same = ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(same.is_steady_at(3));

  // Scale down: tasks drain, then the count drops.
  ecs
    .update_desired_count("us-west-2", "app-standby", "api", 1)
    .await
    .unwrap();
  let draining = ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!((draining.desired_count, draining.running_count), (1, 3));
  sim.advance(Duration::from_secs(30));
  let down = ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(down.is_steady_at(1), "{down:?}");

  let err = ecs
    .update_desired_count("us-west-2", "app-standby", "web", 1)
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("ServiceNotFoundException"));
  assert_eq!(err.kind, ErrorKind::NotFound);
  let err = ecs
    .update_desired_count("us-west-2", "nope", "api", 1)
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("ClusterNotFoundException"));
  assert!(ecs
    .describe_service("us-west-2", "nope", "api")
    .await
    .unwrap()
    .is_none());
}

fn primary_record(value: &str) -> RecordSet {
  RecordSet {
    name: "api.example.com".into(),
    rtype: "CNAME".into(),
    set_identifier: Some("primary".into()),
    failover: Some(FailoverRole::Primary),
    ttl: Some(60),
    values: vec![value.into()],
    health_check_id: Some("hc-primary".into()),
  }
}

#[tokio::test(start_paused = true)]
async fn record_change_is_pending_then_insync_and_visible_at_once() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let route53 = sim.cloud().route53;
  let change = route53
    .change_record_sets(
      "Z0DRCTLEXAMPLE",
      "failover",
      &[RecordChange {
        action: "UPSERT".into(),
        record: primary_record("api-usw2.example.com"),
      }],
    )
    .await
    .unwrap();
  assert_eq!(change.status, "PENDING");
  let records = route53
    .list_record_sets("Z0DRCTLEXAMPLE", "api.example.com.")
    .await
    .unwrap();
  assert_eq!(records.len(), 2);
  let primary = records
    .iter()
    .find(|r| r.failover == Some(FailoverRole::Primary))
    .unwrap();
  assert_eq!(primary.values, vec!["api-usw2.example.com".to_string()]);

  assert!(!route53.get_change(&change.id).await.unwrap().is_insync());
  sim.advance(Duration::from_secs(60));
  let synced = route53.get_change(&change.id).await.unwrap();
  assert!(synced.is_insync());
  assert_eq!(synced.submitted_at, change.submitted_at);

  let err = route53
    .change_record_sets("ZNOPE", "x", &[])
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("NoSuchHostedZone"));
  assert_eq!(err.kind, ErrorKind::NotFound);
  let err = route53.get_change("/change/CNOPE").await.unwrap_err();
  assert_eq!(err.kind, ErrorKind::NotFound);
  let outside = RecordChange {
    action: "UPSERT".into(),
    record: RecordSet {
      name: "api.other.org.".into(),
      ..primary_record("x")
    },
  };
  let err = route53
    .change_record_sets("Z0DRCTLEXAMPLE", "x", &[outside])
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("InvalidChangeBatch"));
  assert_eq!(sim.operation_log().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn health_checks_follow_endpoints_inversion_and_disabling() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let route53 = sim.cloud().route53;
  // Primary endpoint answers 200, but the game day inverted its check.
  let primary = route53.get_health_check_status("hc-primary").await.unwrap();
  assert_eq!((primary.checkers_healthy, primary.checkers_total), (0, 16));
  assert!(primary.inverted && !primary.is_healthy());
  // Standby has no tasks: 503.
  let secondary = route53
    .get_health_check_status("hc-secondary")
    .await
    .unwrap();
  assert!(!secondary.is_healthy());

  let update = HealthCheckUpdate {
    inverted: Some(false),
    disabled: None,
  };
  route53
    .update_health_check("hc-primary", update)
    .await
    .unwrap();
  let primary = route53.get_health_check_status("hc-primary").await.unwrap();
  assert_eq!(primary.checkers_healthy, 16);
  assert!(primary.is_healthy());

  let disable = HealthCheckUpdate {
    disabled: Some(true),
    inverted: None,
  };
  route53
    .update_health_check("hc-secondary", disable)
    .await
    .unwrap();
  let secondary = route53
    .get_health_check_status("hc-secondary")
    .await
    .unwrap();
  assert!(secondary.disabled && secondary.is_healthy());

  let err = route53
    .get_health_check_status("hc-nope")
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("NoSuchHealthCheck"));
  let err = route53
    .update_health_check("hc-nope", update)
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn dns_endpoint_follows_the_failover_rule() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let cloud = sim.cloud();
  let api = "https://api.example.com/health";
  // The primary's check is inverted → Route 53 answers the secondary, which has no tasks.
  let response = cloud.http.send(&get(api)).await.unwrap();
  assert_eq!(response.status, 503);
  assert_eq!(response.latency, Duration::from_millis(20));
  let direct = cloud
    .http
    .send(&get("https://api-use1.example.com/health"))
    .await
    .unwrap();
  assert_eq!((direct.status, direct.body.as_str()), (200, "ok"));

  cloud
    .ecs
    .update_desired_count("us-west-2", "app-standby", "api", 3)
    .await
    .unwrap();
  sim.advance(Duration::from_secs(2 * MIN));
  let response = cloud.http.send(&get(api)).await.unwrap();
  assert_eq!((response.status, response.body.as_str()), (200, "ok"));

  let err = cloud
    .http
    .send(&get("https://nowhere.example.com/"))
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Transport);
  assert!(err.message.contains("no endpoint"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn outage_regions_answer_503() {
  let tmp = TempDir::new().unwrap();
  let world = BUILTIN_WORLD.replace("outages: []", "outages: [us-east-1]");
  let path = tmp.path().join("w.yaml");
  std::fs::write(&path, world).unwrap();
  let sim = Sim::open(&SimOptions {
    world: Some(path),
    time_scale: Some(100.0),
    dir: tmp.path().join("state"),
  })
  .unwrap();
  let cloud = sim.cloud();
  assert_eq!(cloud.clock.scale(), 100.0);
  let response = cloud
    .http
    .send(&get("https://api-use1.example.com/health"))
    .await
    .unwrap();
  assert_eq!(response.status, 503);
}

#[tokio::test(start_paused = true)]
async fn restore_and_delete_lifecycle() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let rds = sim.cloud().rds;
  let snapshots = rds.describe_snapshots("us-east-1", "app-db").await.unwrap();
  assert_eq!(snapshots.len(), 2);
  let request = RestoreRequest {
    region: "us-east-1".into(),
    snapshot_id: "rds:app-db-2026-11-22-03-00".into(),
    instance_id: "app-db-restore-test".into(),
    instance_class: Some("db.t4g.medium".into()),
    tags: BTreeMap::from([("drctl:run-id".to_string(), "r1".to_string())]),
  };
  rds.restore_from_snapshot(&request).await.unwrap();
  let creating = rds
    .describe_instance("us-east-1", "app-db-restore-test")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(creating.status, "creating");
  assert_eq!(creating.endpoint, None);
  assert_eq!(creating.instance_class, "db.t4g.medium");

  let again = rds.restore_from_snapshot(&request).await.unwrap_err();
  assert_eq!(again.code.as_deref(), Some("DBInstanceAlreadyExists"));

  sim.advance(Duration::from_secs(8 * MIN));
  let backing = rds
    .describe_instance("us-east-1", "app-db-restore-test")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(backing.status, "backing-up");
  sim.advance(Duration::from_secs(2 * MIN));
  let ready = rds
    .describe_instance("us-east-1", "app-db-restore-test")
    .await
    .unwrap()
    .unwrap();
  assert!(ready.is_standalone_available());
  assert!(ready.endpoint.is_some());
  assert_eq!(ready.port, Some(5432));

  rds
    .delete_instance("us-east-1", "app-db-restore-test")
    .await
    .unwrap();
  let deleting = rds
    .describe_instance("us-east-1", "app-db-restore-test")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(deleting.status, "deleting");
  sim.advance(Duration::from_secs(4 * MIN));
  assert!(rds
    .describe_instance("us-east-1", "app-db-restore-test")
    .await
    .unwrap()
    .is_none());
  let gone = rds
    .delete_instance("us-east-1", "app-db-restore-test")
    .await
    .unwrap_err();
  assert_eq!(gone.code.as_deref(), Some("DBInstanceNotFound"));
  assert_eq!(gone.kind, ErrorKind::NotFound);

  let bad = RestoreRequest {
    snapshot_id: "nope".into(),
    ..request.clone()
  };
  let err = rds.restore_from_snapshot(&bad).await.unwrap_err();
  assert_eq!(err.code.as_deref(), Some("DBSnapshotNotFound"));
  let bad = RestoreRequest {
    instance_id: "-bad--id".into(),
    ..request
  };
  let err = rds.restore_from_snapshot(&bad).await.unwrap_err();
  assert_eq!(err.kind, ErrorKind::Client);
}

#[tokio::test(start_paused = true)]
async fn global_cluster_fails_over_after_the_modelled_minute() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let rds = sim.cloud().rds;
  let usw2 = "arn:aws:rds:us-west-2:123456789012:cluster:app-aurora-usw2";
  let before = rds
    .describe_global_cluster("app-global")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(
    before.writer(),
    Some("arn:aws:rds:us-east-1:123456789012:cluster:app-aurora-use1")
  );
  rds
    .failover_global_cluster("app-global", usw2, GlobalFailover::Switchover)
    .await
    .unwrap();
  let during = rds
    .describe_global_cluster("app-global")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(during.status, "failing-over");
  sim.advance(Duration::from_secs(MIN));
  let after = rds
    .describe_global_cluster("app-global")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(after.status, "available");
  assert_eq!(after.writer(), Some(usw2));
  assert!(rds.describe_global_cluster("nope").await.unwrap().is_none());
  let err = rds
    .failover_global_cluster("nope", usw2, GlobalFailover::Switchover)
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("GlobalClusterNotFoundFault"));
}

#[tokio::test(start_paused = true)]
async fn s3_objects_are_dated_from_world_creation() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let created_at = sim.peek(|state, _| state.model.created_at);
  let s3 = sim.cloud().s3;
  let objects = s3
    .list_objects("us-east-1", "app-backups-use1", "postgres/")
    .await
    .unwrap();
  assert_eq!(objects.len(), 2);
  let newest = objects.iter().max_by_key(|o| o.last_modified).unwrap();
  assert_eq!(newest.key, "postgres/app-db-2026-11-22T03-00.dump");
  assert_eq!(newest.size, 52_428_800);
  assert_eq!(
    created_at - newest.last_modified,
    chrono::Duration::hours(3)
  );
  assert_eq!(newest.replication_status.as_deref(), Some("COMPLETED"));
  let replica = s3
    .head_object("us-west-2", "app-backups-usw2", &newest.key)
    .await
    .unwrap()
    .unwrap();
  assert_eq!(replica.replication_status.as_deref(), Some("REPLICA"));
  assert_eq!(replica.checksum_sha256, newest.checksum_sha256);
  assert!(s3
    .head_object("us-west-2", "app-backups-usw2", "x")
    .await
    .unwrap()
    .is_none());
  let err = s3.list_objects("us-east-1", "nope", "").await.unwrap_err();
  assert_eq!(err.code.as_deref(), Some("NoSuchBucket"));
}

#[tokio::test(start_paused = true)]
async fn a_reopened_world_has_the_same_state_and_log() {
  let tmp = TempDir::new().unwrap();
  let options = SimOptions {
    world: None,
    // Slow enough that nothing completes on its own while the test runs.
    time_scale: Some(0.001),
    dir: tmp.path().to_path_buf(),
  };
  let (log, replica, standby) = {
    let sim = Sim::open(&options).unwrap();
    let cloud = sim.cloud();
    cloud
      .rds
      .promote_read_replica("us-west-2", "app-db-replica")
      .await
      .unwrap();
    cloud
      .ecs
      .update_desired_count("us-west-2", "app-standby", "api", 3)
      .await
      .unwrap();
    cloud
      .route53
      .update_health_check(
        "hc-primary",
        HealthCheckUpdate {
          inverted: Some(false),
          disabled: None,
        },
      )
      .await
      .unwrap();
    cloud
      .http
      .send(&post("https://hooks.example.com/drctl", "{}"))
      .await
      .unwrap();
    let replica = cloud
      .rds
      .describe_instance("us-west-2", "app-db-replica")
      .await
      .unwrap();
    let standby = cloud
      .ecs
      .describe_service("us-west-2", "app-standby", "api")
      .await
      .unwrap();
    (sim.operation_log(), replica, standby)
  };
  assert_eq!(log.len(), 4);

  let sim = Sim::open(&options).unwrap();
  assert_eq!(sim.operation_log(), log);
  assert_eq!(read_operation_log(tmp.path()).unwrap(), log);
  let cloud = sim.cloud();
  assert_eq!(cloud.clock.scale(), 0.001);
  assert_eq!(
    cloud
      .rds
      .describe_instance("us-west-2", "app-db-replica")
      .await
      .unwrap(),
    replica
  );
  assert_eq!(
    cloud
      .ecs
      .describe_service("us-west-2", "app-standby", "api")
      .await
      .unwrap(),
    standby
  );
  assert!(cloud
    .route53
    .get_health_check_status("hc-primary")
    .await
    .unwrap()
    .is_healthy());

  // The replayed world keeps moving, and new operations continue the sequence.
  sim.advance(Duration::from_secs(5 * MIN));
  let promoted = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(promoted.is_standalone_available());
  cloud
    .rds
    .delete_instance("us-east-1", "app-db")
    .await
    .unwrap();
  assert_eq!(
    read_operation_log(tmp.path()).unwrap().last().unwrap().seq,
    5
  );
}

/// The failover's two effects in the standby region: the replica promoted, the service scaled
/// to 2.
async fn promote_and_scale(cloud: &crate::cloud::Cloud) {
  cloud
    .rds
    .promote_read_replica("us-west-2", "app-db-replica")
    .await
    .unwrap();
  cloud
    .ecs
    .update_desired_count("us-west-2", "app-standby", "api", 2)
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_torn_last_line_is_ignored_and_cut_away() {
  let tmp = TempDir::new().unwrap();
  {
    let sim = open(tmp.path());
    let cloud = sim.cloud();
    promote_and_scale(&cloud).await;
  }
  let log_path = tmp.path().join("operations.jsonl");
  let good = std::fs::read(&log_path).unwrap();
  let mut torn = good.clone();
  torn.extend_from_slice(br#"{"seq":3,"at":"2026-"#);
  std::fs::write(&log_path, &torn).unwrap();
  assert_eq!(read_operation_log(tmp.path()).unwrap().len(), 2);

  let sim = open(tmp.path());
  assert_eq!(sim.operation_log().len(), 2);
  assert_eq!(
    std::fs::read(&log_path).unwrap(),
    good,
    "the torn tail is truncated"
  );
  let standby = sim
    .cloud()
    .ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(standby.desired_count, 2);
  sim
    .cloud()
    .ecs
    .update_desired_count("us-west-2", "app-standby", "api", 1)
    .await
    .unwrap();
  assert_eq!(read_operation_log(tmp.path()).unwrap().len(), 3);
  drop(sim);

  // A bad line in the middle is corruption, never skipped.
  let mut corrupt = b"garbage\n".to_vec();
  corrupt.extend_from_slice(&std::fs::read(&log_path).unwrap());
  std::fs::write(&log_path, corrupt).unwrap();
  assert!(Sim::open(&SimOptions {
    world: None,
    time_scale: None,
    dir: tmp.path().to_path_buf(),
  })
  .is_err());
  assert!(read_operation_log(tmp.path()).is_err());
}

async fn throttle_pattern(dir: &Path) -> Vec<bool> {
  let sim = open_with(
    dir,
    "seed: 42\nfaults:\n  DescribeDBInstances: { throttle: 0.5 }\n",
  );
  let rds = sim.cloud().rds;
  let mut pattern = Vec::new();
  for _ in 0..24 {
    match rds.describe_instance("us-east-1", "app-db").await {
      Ok(_) => pattern.push(false),
      Err(err) => {
        assert_eq!(err.kind, ErrorKind::Throttling);
        assert_eq!(err.code.as_deref(), Some("Throttling"));
        assert_eq!(err.http_status, Some(400));
        pattern.push(true);
      }
    }
  }
  pattern
}

#[tokio::test(start_paused = true)]
async fn faults_with_a_fixed_seed_are_reproducible() {
  let a = TempDir::new().unwrap();
  let b = TempDir::new().unwrap();
  let first = throttle_pattern(a.path()).await;
  let second = throttle_pattern(b.path()).await;
  assert_eq!(first, second);
  assert!(
    first.iter().any(|&t| t) && first.iter().any(|&t| !t),
    "{first:?}"
  );
  // The seed was replaced, so the world file kept the override.
  let world = std::fs::read_to_string(a.path().join("world.yaml")).unwrap();
  assert!(world.contains("seed: 42"));
}

#[tokio::test(start_paused = true)]
async fn error_faults_are_server_errors_and_are_not_logged() {
  let tmp = TempDir::new().unwrap();
  let sim = open_with(tmp.path(), "faults:\n  rds: { error: 1.0, latency: 2s }\n");
  let cloud = sim.cloud();
  let start = cloud.clock.now();
  let call = cloud
    .rds
    .promote_read_replica("us-west-2", "app-db-replica");
  let err = tokio::time::timeout(Duration::from_secs(3600), call)
    .await
    .expect("the call hung")
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Server);
  assert_eq!(err.code.as_deref(), Some("InternalFailure"));
  assert_eq!(err.http_status, Some(500));
  assert!(cloud.clock.elapsed_since(start) >= Duration::from_secs(2));
  assert!(sim.operation_log().is_empty());
  // Other services are untouched.
  cloud
    .ecs
    .update_desired_count("us-west-2", "app-standby", "api", 1)
    .await
    .unwrap();
}

/// A hung AWS call ends as the SDK's attempt timeout ends it: a retryable `RequestTimeout`
/// after `ATTEMPT_TIMEOUT` of modelled time, not a wait until the step's timeout.
#[tokio::test(start_paused = true)]
async fn a_hung_call_fails_after_the_attempt_timeout() {
  let tmp = TempDir::new().unwrap();
  let sim = open_with(
    tmp.path(),
    "faults:\n  PromoteReadReplica: { hang: 1.0 }\n  DescribeDBInstances: { hang: 1.0 }\n",
  );
  let cloud = sim.cloud();
  let start = cloud.clock.now();
  let call = cloud.rds.describe_instance("us-west-2", "app-db-replica");
  let err = tokio::time::timeout(Duration::from_secs(3600), call)
    .await
    .expect("the call hung")
    .unwrap_err();
  let took = cloud.clock.elapsed_since(start);
  assert!(
    took >= ATTEMPT_TIMEOUT && took < ATTEMPT_TIMEOUT + Duration::from_secs(1),
    "{took:?}"
  );
  assert_eq!(err.kind, ErrorKind::Transport);
  assert!(err.is_retryable());
  assert_eq!(err.code.as_deref(), Some("RequestTimeout"));
  assert!(err.request_id.is_some(), "{err:?}");
  // A hung mutating call times out the same way, and takes no effect.
  let start = cloud.clock.now();
  let call = cloud
    .rds
    .promote_read_replica("us-west-2", "app-db-replica");
  let err = tokio::time::timeout(Duration::from_secs(3600), call)
    .await
    .expect("the call hung")
    .unwrap_err();
  let took = cloud.clock.elapsed_since(start);
  assert!(took < ATTEMPT_TIMEOUT + Duration::from_secs(1), "{took:?}");
  assert_eq!(err.kind, ErrorKind::Transport);
  assert!(sim.operation_log().is_empty());
  // An HTTP probe times out after its own timeout.
  let sim = open_with(&tmp.path().join("b"), "faults:\n  GET: { hang: 1.0 }\n");
  let err = sim
    .cloud()
    .http
    .send(&get("https://api-use1.example.com/health"))
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Transport);
}

/// Behind the client layer every backend gets, a read that keeps hanging is tried
/// `CALL_ATTEMPTS` times, each attempt ended by the attempt timeout and recorded as refused, and
/// the caller gets the last attempt's error.
#[tokio::test(start_paused = true)]
async fn behind_the_client_layer_a_hung_read_is_retried_then_fails() {
  use crate::cloud::{limiter::CALL_ATTEMPTS, RateLimits};
  let tmp = TempDir::new().unwrap();
  let sim = open_with(
    tmp.path(),
    "faults:\n  DescribeDBInstances: { hang: 1.0 }\n",
  );
  let cloud = sim.cloud().rate_limited(RateLimits::default(), None);
  let start = cloud.clock.now();
  let call = cloud.rds.describe_instance("us-west-2", "app-db-replica");
  let err = tokio::time::timeout(Duration::from_secs(3600), call)
    .await
    .expect("the call hung")
    .unwrap_err();
  let took = cloud.clock.elapsed_since(start);
  assert_eq!(err.code.as_deref(), Some("RequestTimeout"));
  let refused = read_refusals(sim.dir()).unwrap();
  assert_eq!(refused.len(), CALL_ATTEMPTS as usize, "{refused:?}");
  assert!(refused
    .iter()
    .all(|refusal| refusal.operation == crate::cloud::ops::rds::DESCRIBE_DB_INSTANCES.name));
  // Five attempt timeouts, and at most 3 s of backoff between them.
  let attempts = ATTEMPT_TIMEOUT * CALL_ATTEMPTS;
  assert!(
    took >= attempts && took < attempts + Duration::from_secs(4),
    "{took:?}"
  );
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_throttles_excess_calls() {
  let tmp = TempDir::new().unwrap();
  let sim = open_with(tmp.path(), "rate_limits: { route53: 5 }\n");
  let cloud = sim.cloud();
  let mut throttled = 0;
  for _ in 0..20 {
    let listed = cloud
      .route53
      .list_record_sets("Z0DRCTLEXAMPLE", "api.example.com")
      .await;
    if let Err(err) = listed {
      assert_eq!(err.kind, ErrorKind::Throttling);
      assert_eq!(err.code.as_deref(), Some("Throttling"));
      throttled += 1;
    }
  }
  // 5 in the bucket plus 5/s refill over 20 × 20 ms of modelled latency.
  assert!((10..=15).contains(&throttled), "{throttled}");
  // Every refusal is on record for benchmarks and tests.
  assert_eq!(read_refusals(sim.dir()).unwrap().len(), throttled);
  // A health check status is two requests (the status and the check's configuration), as on
  // AWS: after a quiet second, two of them use 4 of the 5 tokens and a third is refused.
  cloud.clock.sleep(Duration::from_secs(1)).await;
  cloud
    .route53
    .get_health_check_status("hc-secondary")
    .await
    .unwrap();
  cloud
    .route53
    .get_health_check_status("hc-secondary")
    .await
    .unwrap();
  let err = cloud
    .route53
    .get_health_check_status("hc-secondary")
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Throttling);
  cloud.clock.sleep(Duration::from_secs(1)).await;
  cloud
    .route53
    .get_health_check_status("hc-secondary")
    .await
    .unwrap();
  // Other services have no limit.
  for _ in 0..20 {
    cloud
      .rds
      .describe_instance("us-east-1", "app-db")
      .await
      .unwrap();
  }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
  haystack
    .windows(needle.len())
    .any(|window| window == needle.as_bytes())
}

#[tokio::test(start_paused = true)]
async fn secrets_never_reach_the_files() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  let slack_secret = "T0000/B0000/XXXXSECRETXXXX";
  let routing_key = "R0UTINGKEY0123456789";
  sim.set_redactions(vec![slack_secret.into(), routing_key.into()]);
  let http = sim.cloud().http;

  let slack_url = format!("https://hooks.slack.com/services/{slack_secret}");
  let mut slack = post(
    &slack_url,
    &format!(r#"{{"text":"failover done {slack_secret}"}}"#),
  );
  slack
    .headers
    .insert("Authorization".into(), "Bearer hunter2".into());
  let response = http.send(&slack).await.unwrap();
  assert_eq!(response.status, 200);

  let pagerduty = post(
    "https://events.pagerduty.com/v2/enqueue",
    &format!(r#"{{"routing_key":"{routing_key}","event_action":"trigger","dedup_key":"dr-1"}}"#),
  );
  let response = http.send(&pagerduty).await.unwrap();
  assert_eq!(response.status, 202);
  let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
  assert_eq!(body["status"], "success");
  assert_eq!(body["dedup_key"], "dr-1");

  let err = http
    .send(&post(
      &format!("https://evil.example.com/{routing_key}"),
      "{}",
    ))
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Transport);
  assert!(!err.message.contains(routing_key), "{err}");

  let log = sim.operation_log();
  assert_eq!(log.len(), 2);
  assert_eq!(log[0].service, "http");
  assert_eq!(log[0].operation, "POST");
  assert_eq!(log[0].target, "https://hooks.slack.com/services/***");
  assert_eq!(log[1].target, "https://events.pagerduty.com/v2/enqueue");
  assert_eq!(log[0].detail["headers"]["Authorization"], "***");

  for entry in std::fs::read_dir(tmp.path()).unwrap() {
    let bytes = std::fs::read(entry.unwrap().path()).unwrap();
    for secret in [slack_secret, "XXXXSECRETXXXX", routing_key, "hunter2"] {
      assert!(
        !contains(&bytes, secret),
        "{secret} reached the state files"
      );
    }
  }
}

#[test]
fn opening_a_bad_world_names_the_file() {
  let tmp = TempDir::new().unwrap();
  let path = tmp.path().join("w.yaml");
  std::fs::write(&path, "rds: { instances: [ { id: a } ] }\n").unwrap();
  let err = Sim::open(&SimOptions {
    world: Some(path),
    time_scale: None,
    dir: tmp.path().join("state"),
  })
  .unwrap_err();
  let message = err.to_string();
  assert!(
    message.contains("w.yaml") && message.contains("rds.instances[0]"),
    "{message}"
  );
  assert!(!tmp.path().join("state/world.json").exists());
}

#[tokio::test(start_paused = true)]
async fn a_world_can_follow_paused_tokio_time() {
  let tmp = TempDir::new().unwrap();
  let sim = open(tmp.path());
  sim.follow_tokio_time();
  let cloud = sim.cloud();
  cloud
    .rds
    .promote_read_replica("us-west-2", "app-db-replica")
    .await
    .unwrap();
  cloud.clock.sleep(Duration::from_secs(4 * MIN)).await;
  let during = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(during.status, "modifying");
  cloud.clock.sleep(Duration::from_secs(MIN)).await;
  let after = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(after.is_standalone_available());
}

/// The built-in world with its source region (us-east-1) in outage.
fn open_source_down(dir: &Path) -> Arc<Sim> {
  let world = BUILTIN_WORLD.replace("outages: []", "outages: [us-east-1]");
  std::fs::create_dir_all(dir).unwrap();
  let path = dir.join("world.yaml");
  std::fs::write(&path, world).unwrap();
  Sim::open(&SimOptions {
    world: Some(path),
    time_scale: Some(1.0),
    dir: dir.join("state"),
  })
  .unwrap()
}

/// A replica whose source region failed used to read its seeded lag (4s) as if replication
/// still ran: its ReplicaLag must read -1 (unknown, replication stopped), not a lag.
#[tokio::test(start_paused = true)]
async fn a_replica_whose_source_region_is_down_has_no_measured_lag() {
  let tmp = TempDir::new().unwrap();
  let sim = open_source_down(tmp.path());
  sim.follow_tokio_time();
  let cloud = sim.cloud();
  let lag = cloud
    .rds
    .replica_lag("us-west-2", "app-db-replica")
    .await
    .unwrap();
  let crate::cloud::ReplicaLag::Unknown { reason, last } = lag else {
    panic!("a lag was measured with the source region down: {lag:?}");
  };
  assert!(
    matches!(reason, crate::cloud::LagUnknown::Stopped { .. }),
    "{reason:?}"
  );
  assert_eq!(last.map(|last| last.lag), Some(Duration::from_secs(4)));
  assert!(lag.to_string().contains("replication stopped at"), "{lag}");

  // Two periods later the -1 datapoints stop: stale; past the lookback, none at all.
  sim.advance(Duration::from_secs(5 * MIN));
  let lag = cloud
    .rds
    .replica_lag("us-west-2", "app-db-replica")
    .await
    .unwrap();
  assert!(
    matches!(
      lag,
      crate::cloud::ReplicaLag::Unknown {
        reason: crate::cloud::LagUnknown::Stale { .. },
        ..
      }
    ),
    "{lag:?}"
  );
  sim.advance(Duration::from_secs(20 * MIN));
  let lag = cloud
    .rds
    .replica_lag("us-west-2", "app-db-replica")
    .await
    .unwrap();
  assert_eq!(
    lag,
    crate::cloud::ReplicaLag::Unknown {
      reason: crate::cloud::LagUnknown::NoDatapoint,
      last: None
    }
  );
}

/// `world_now` is the world as it stands: a new world opened from it continues where this one
/// is (the promoted replica standalone, the scaled service at its count, the flipped record).
#[tokio::test(start_paused = true)]
async fn world_now_continues_where_the_world_stands() {
  let tmp = TempDir::new().unwrap();
  let sim = open(&tmp.path().join("first"));
  let cloud = sim.cloud();
  promote_and_scale(&cloud).await;
  sim.advance(Duration::from_secs(10 * MIN));
  let world = sim.world_now().unwrap();
  world.validate().unwrap();
  let path = tmp.path().join("after.yaml");
  std::fs::write(&path, serde_json::to_string(&world).unwrap()).unwrap();
  let next = Sim::open(&SimOptions {
    world: Some(path),
    time_scale: None,
    dir: tmp.path().join("next"),
  })
  .unwrap();
  let cloud = next.cloud();
  let replica = cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(replica.is_standalone_available(), "{replica:?}");
  let standby = cloud
    .ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert!(standby.is_steady_at(2), "{standby:?}");
  let writer = cloud
    .rds
    .describe_instance("us-east-1", "app-db")
    .await
    .unwrap()
    .unwrap();
  assert!(writer.is_standalone_available());
  assert!(next.operation_log().is_empty(), "the log stays behind");
}

/// A world exported mid-run keeps its instances' tags: the `drctl:retired` mark a failover put
/// on the old writer used to be lost, so a failback on that world took it for a writer again.
#[tokio::test(start_paused = true)]
async fn world_now_keeps_instance_tags() {
  let tmp = TempDir::new().unwrap();
  let sim = open(&tmp.path().join("first"));
  let cloud = sim.cloud();
  let tags = BTreeMap::from([("drctl:retired".to_string(), "run-1".to_string())]);
  cloud
    .rds
    .add_instance_tags("us-east-1", "app-db", &tags)
    .await
    .unwrap();
  let world = sim.world_now().unwrap();
  let path = tmp.path().join("after.yaml");
  std::fs::write(&path, serde_json::to_string(&world).unwrap()).unwrap();
  let next = Sim::open(&SimOptions {
    world: Some(path),
    time_scale: None,
    dir: tmp.path().join("next"),
  })
  .unwrap();
  assert_eq!(
    next
      .cloud()
      .rds
      .list_instance_tags("us-east-1", "app-db")
      .await
      .unwrap(),
    Some(tags)
  );
  assert_eq!(
    next
      .cloud()
      .rds
      .list_instance_tags("us-west-2", "app-db-replica")
      .await
      .unwrap(),
    Some(BTreeMap::new()),
    "an untagged instance stays untagged"
  );
}

/// With the writer's region down, AWS refuses a switchover of an Aurora global database: only a
/// failover with `AllowDataLoss` goes through (and says so in the operation log). The simulator
/// used to accept a switchover from a dead region.
#[tokio::test(start_paused = true)]
async fn a_global_switchover_is_refused_while_the_writers_region_is_down() {
  let tmp = TempDir::new().unwrap();
  let sim = open_outage(tmp.path(), "[us-east-1]");
  let rds = sim.cloud().rds;
  let usw2 = "arn:aws:rds:us-west-2:123456789012:cluster:app-aurora-usw2";
  let err = rds
    .failover_global_cluster("app-global", usw2, GlobalFailover::Switchover)
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("InvalidGlobalClusterStateFault"));
  assert!(sim.operation_log().is_empty(), "refused: nothing changed");
  rds
    .failover_global_cluster("app-global", usw2, GlobalFailover::AllowDataLoss)
    .await
    .unwrap();
  let log = sim.operation_log();
  assert_eq!(log.len(), 1);
  assert_eq!(log[0].detail["allow_data_loss"], true);
  sim.advance(Duration::from_secs(MIN));
  let after = rds
    .describe_global_cluster("app-global")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(after.writer(), Some(usw2));
}

/// The built-in world with `outages` replaced (at scale 40, paused tokio time).
fn open_outage(dir: &Path, outages: &str) -> Arc<Sim> {
  let world = BUILTIN_WORLD.replace("outages: []", &format!("outages: {outages}"));
  open_world(dir, &world)
}

/// A world written to `dir/w.yaml` and opened (default scale, paused tokio time).
fn open_world(dir: &Path, world: &str) -> Arc<Sim> {
  std::fs::create_dir_all(dir).unwrap();
  let path = dir.join("w.yaml");
  std::fs::write(&path, world).unwrap();
  let sim = Sim::open(&SimOptions {
    world: Some(path),
    time_scale: None,
    dir: dir.join("state"),
  })
  .unwrap();
  sim.follow_tokio_time();
  sim
}

/// A region in outage takes its control plane with it: RDS and ECS calls there fail as an
/// unreachable endpoint does (retryable, no effect), the other region's still answer.
#[tokio::test(start_paused = true)]
async fn outage_regions_refuse_control_plane_calls_as_unreachable() {
  let tmp = TempDir::new().unwrap();
  let sim = open_outage(tmp.path(), "[us-east-1]");
  let cloud = sim.cloud();
  assert!(sim.region_in_outage("us-east-1"));
  assert!(!sim.region_in_outage("us-west-2"));
  let err = cloud
    .ecs
    .update_desired_count("us-east-1", "app-primary", "api", 0)
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Transport, "{err}");
  assert!(err.is_retryable());
  assert_eq!(err.http_status, None, "{err}");
  assert!(err.message.contains("in outage"), "{err}");
  let err = cloud
    .rds
    .describe_instance("us-east-1", "app-db")
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Transport, "{err}");
  assert!(
    sim.operation_log().is_empty(),
    "no effect reached the world"
  );
  assert!(cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .is_some());
}

/// A timed outage ends: the region answers again (control plane and endpoints) once `until`
/// has passed in modelled time.
#[tokio::test(start_paused = true)]
async fn timed_outage_regions_come_back() {
  let tmp = TempDir::new().unwrap();
  let sim = open_outage(tmp.path(), "[{ region: us-east-1, until: 20m }]");
  let cloud = sim.cloud();
  assert!(sim.region_in_outage("us-east-1"));
  let down = cloud
    .http
    .send(&get("https://api-use1.example.com/health"))
    .await
    .unwrap();
  assert_eq!(down.status, 503);
  assert!(cloud
    .ecs
    .describe_service("us-east-1", "app-primary", "api")
    .await
    .is_err());
  sim.advance(Duration::from_secs(20 * MIN));
  assert!(!sim.region_in_outage("us-east-1"));
  let up = cloud
    .http
    .send(&get("https://api-use1.example.com/health"))
    .await
    .unwrap();
  assert_eq!(up.status, 200);
  cloud
    .ecs
    .update_desired_count("us-east-1", "app-primary", "api", 0)
    .await
    .unwrap();
  assert_eq!(sim.operation_log().len(), 1);
}

// --- faults: { region_down } ------------------------------------------------------------------

/// The built-in world with `faults: { region_down: ... }` (at scale 40, paused tokio time).
fn open_region_down(dir: &Path, down: &str) -> Arc<Sim> {
  let world = BUILTIN_WORLD.replace("faults: {}", &format!("faults: {{ region_down: {down} }}"));
  assert_ne!(
    world, BUILTIN_WORLD,
    "the built-in world has `faults: {{}}`"
  );
  open_world(dir, &world)
}

/// A region that is down takes every endpoint it serves with it, not only its regional control
/// planes: its CloudWatch metrics (data plane), and Route 53's control plane, which is global and
/// served from us-east-1. The other region still answers, and the refusal names the dependency.
#[tokio::test(start_paused = true)]
async fn region_down_fails_every_endpoint_of_the_region_global_ones_served_there_included() {
  let tmp = TempDir::new().unwrap();
  let sim = open_region_down(tmp.path(), "us-east-1");
  let cloud = sim.cloud();

  let err = cloud
    .route53
    .change_record_sets("Z0DRCTLEXAMPLE", "flip", &[])
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Transport, "{err}");
  assert!(err.is_retryable(), "{err}");
  assert!(err.message.contains("served only from us-east-1"), "{err}");
  assert!(err.message.contains("us-east-1 is down"), "{err}");
  assert!(cloud
    .route53
    .get_health_check_status("hc-primary")
    .await
    .is_err());

  // The data plane of the region too: an outage leaves its metrics readable, this does not.
  let err = cloud
    .rds
    .replica_lag("us-east-1", "app-db")
    .await
    .unwrap_err();
  assert!(
    err.message.contains("the cloudwatch endpoint in us-east-1"),
    "{err}"
  );
  assert!(cloud
    .ecs
    .describe_service("us-east-1", "app-primary", "api")
    .await
    .is_err());
  let down = cloud
    .http
    .send(&get("https://api-use1.example.com/health"))
    .await
    .unwrap();
  assert_eq!(down.status, 503);

  // The standby region answers.
  assert!(cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .unwrap()
    .is_some());
  assert!(cloud
    .ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .is_ok());
  assert!(
    sim.operation_log().is_empty(),
    "no effect reached the world"
  );
}

/// Failing away from us-west-2 leaves Route 53's control plane (us-east-1) alone.
#[tokio::test(start_paused = true)]
async fn region_down_elsewhere_leaves_the_global_endpoints_of_us_east_1_up() {
  let tmp = TempDir::new().unwrap();
  let sim = open_region_down(tmp.path(), "us-west-2");
  let cloud = sim.cloud();
  assert!(cloud
    .route53
    .list_record_sets("Z0DRCTLEXAMPLE", "api.example.com.")
    .await
    .is_ok());
  assert!(cloud
    .rds
    .describe_instance("us-west-2", "app-db-replica")
    .await
    .is_err());
}

/// The 5xx form answers 503 ServiceUnavailable (retryable); the timeout form gets no answer and
/// fails once the SDK's attempt timeout has passed, in modelled time.
#[tokio::test(start_paused = true)]
async fn region_down_fails_with_5xx_or_a_timeout_when_the_world_says_so() {
  let tmp = TempDir::new().unwrap();
  let sim = open_region_down(
    &tmp.path().join("error"),
    "{ region: us-east-1, fails_with: error }",
  );
  let err = sim
    .cloud()
    .rds
    .describe_instance("us-east-1", "app-db")
    .await
    .unwrap_err();
  assert_eq!(err.http_status, Some(503), "{err}");
  assert_eq!(err.code.as_deref(), Some("ServiceUnavailable"), "{err}");
  assert!(err.is_retryable(), "{err}");

  let sim = open_region_down(
    &tmp.path().join("timeout"),
    "{ region: us-east-1, fails_with: timeout }",
  );
  let cloud = sim.cloud();
  let before = cloud.clock.now();
  let err = cloud
    .rds
    .describe_instance("us-east-1", "app-db")
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("RequestTimeout"), "{err}");
  let waited = cloud.clock.elapsed_since(before);
  assert!(
    waited >= ATTEMPT_TIMEOUT,
    "failed after {waited:?}, before the attempt timeout"
  );
}

/// A bad `region_down` is a world-file error naming the key; a good one round-trips through the
/// world's JSON form.
#[test]
fn region_down_is_checked_and_round_trips() {
  for bad in [
    "'us east 1'",
    "us-east",
    "{ region: us-east-1, fails_with: maybe }",
    "{ zone: a }",
  ] {
    let yaml = BUILTIN_WORLD.replace("faults: {}", &format!("faults: {{ region_down: {bad} }}"));
    let err = world::WorldSpec::from_yaml(&yaml).unwrap_err();
    assert!(
      err.contains("region_down") || err.contains("fails_with") || err.contains("zone"),
      "{bad}: {err}"
    );
  }
  let yaml = BUILTIN_WORLD.replace(
    "faults: {}",
    "faults: { region_down: { region: us-east-1, fails_with: timeout }, UpdateService: { throttle: 0.5 } }",
  );
  let spec = world::WorldSpec::from_yaml(&yaml).unwrap();
  let down = spec.faults.region_down.clone().unwrap();
  assert_eq!(down.region, "us-east-1");
  assert_eq!(down.fails_with, world::DownFailure::Timeout);
  assert_eq!(spec.faults.calls.len(), 1);
  let json = serde_json::to_string(&spec).unwrap();
  let back: world::WorldSpec = serde_json::from_str(&json).unwrap();
  assert_eq!(back, spec);
}
