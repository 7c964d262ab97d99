//! The AWS provider through the real SDK, against a patched, seeded moto server on loopback:
//! real requests, real XML/JSON, real error bodies.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use drctl::cloud::{
  aws::{self, StateStore, StoreError},
  http::ReqwestHttp,
  Cloud, ErrorKind, FailoverRole, GlobalFailover, HealthCheckUpdate, Http, HttpRequest, LagUnknown,
  RecordChange, RecordSet, Redirects, ReplicaLag, RestoreRequest, SnapshotKind, DEFAULT_MAX_BODY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::moto::Moto;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

async fn cloud(moto: &Moto) -> Cloud {
  aws::connect(&moto.settings()).await.expect("connect")
}

/// Poll `check` every 200 ms until it returns true, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
  F: FnMut() -> Fut,
  Fut: std::future::Future<Output = bool>,
{
  let started = tokio::time::Instant::now();
  while started.elapsed() < limit {
    if check().await {
      return true;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
  }
  false
}

#[tokio::test]
async fn rds_instances_replicas_and_promotion() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;

  let primary = cloud
    .rds
    .describe_instance(EAST, "app-db")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(primary.status, "available");
  assert_eq!(primary.engine, "postgres");
  assert_eq!(primary.instance_class, "db.r6g.large");
  assert!(primary.replica_of.is_none());
  assert!(primary.endpoint.is_some());

  let replica = cloud
    .rds
    .describe_instance(WEST, "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(replica.region, WEST);
  assert_eq!(
    replica.replica_of.as_deref(),
    Some("arn:aws:rds:us-east-1:123456789012:db:app-db")
  );
  assert!(!replica.is_standalone_available());

  assert_eq!(
    cloud
      .rds
      .describe_instance(WEST, "no-such-db")
      .await
      .unwrap(),
    None
  );

  let lag = cloud.rds.replica_lag(WEST, "app-db-replica").await.unwrap();
  assert_eq!(lag.measured(), Some(Duration::from_secs(4)), "{lag:?}");
  assert_eq!(
    cloud.rds.replica_lag(WEST, "app-db").await.unwrap(),
    ReplicaLag::Unknown {
      reason: LagUnknown::NoDatapoint,
      last: None
    }
  );

  cloud
    .rds
    .promote_read_replica(WEST, "app-db-replica")
    .await
    .unwrap();
  let promoted = cloud
    .rds
    .describe_instance(WEST, "app-db-replica")
    .await
    .unwrap()
    .unwrap();
  assert!(
    promoted.replica_of.is_none(),
    "a promoted replica is standalone"
  );
  assert_eq!(promoted.status, "modifying");
  let rds = cloud.rds.clone();
  assert!(
    eventually(Duration::from_secs(10), || {
      let rds = rds.clone();
      async move {
        rds
          .describe_instance(WEST, "app-db-replica")
          .await
          .unwrap()
          .is_some_and(|db| db.is_standalone_available())
      }
    })
    .await,
    "the promoted replica becomes available"
  );

  // Promoting again is refused: the action observes first for exactly this reason.
  let again = cloud
    .rds
    .promote_read_replica(WEST, "app-db-replica")
    .await
    .unwrap_err();
  assert_eq!(again.kind, ErrorKind::InvalidState);
  assert!(!again.is_retryable());
}

#[tokio::test]
async fn rds_snapshots_restore_and_delete() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;

  let snapshots = cloud.rds.describe_snapshots(EAST, "app-db").await.unwrap();
  let manual: Vec<_> = snapshots
    .iter()
    .filter(|snapshot| snapshot.kind == SnapshotKind::Manual)
    .collect();
  assert_eq!(manual.len(), 2, "{snapshots:?}");
  assert!(snapshots
    .iter()
    .any(|snapshot| snapshot.kind == SnapshotKind::Automated));
  for snapshot in &snapshots {
    assert_eq!(snapshot.instance_id, "app-db");
    assert_eq!(snapshot.region, EAST);
    assert!(snapshot.created_at.timestamp() > 0);
  }
  assert!(cloud
    .rds
    .describe_snapshots(EAST, "no-such-db")
    .await
    .unwrap()
    .is_empty());

  let newest_manual = moto.id("/rds/manual_snapshot");
  let request = RestoreRequest {
    region: EAST.to_owned(),
    snapshot_id: newest_manual,
    instance_id: "app-db-restore-test".to_owned(),
    instance_class: Some("db.t3.medium".to_owned()),
    tags: BTreeMap::from([("drctl:run-id".to_owned(), "run-1".to_owned())]),
  };
  cloud.rds.restore_from_snapshot(&request).await.unwrap();
  let restored = cloud
    .rds
    .describe_instance(EAST, "app-db-restore-test")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(restored.instance_class, "db.t3.medium");
  assert!(restored.replica_of.is_none());

  let repeat = cloud.rds.restore_from_snapshot(&request).await.unwrap_err();
  assert_eq!(repeat.code.as_deref(), Some("DBInstanceAlreadyExists"));
  assert_eq!(repeat.kind, ErrorKind::Client);

  cloud
    .rds
    .delete_instance(EAST, "app-db-restore-test")
    .await
    .unwrap();
  assert_eq!(
    cloud
      .rds
      .describe_instance(EAST, "app-db-restore-test")
      .await
      .unwrap(),
    None
  );
  let gone = cloud
    .rds
    .delete_instance(EAST, "app-db-restore-test")
    .await
    .unwrap_err();
  assert_eq!(gone.kind, ErrorKind::NotFound);
  assert_eq!(gone.code.as_deref(), Some("DBInstanceNotFound"));

  // A cross-region replica can be deleted too (moto answered 500 without the launcher patch).
  cloud
    .rds
    .delete_instance(WEST, "app-db-replica")
    .await
    .unwrap();
  assert_eq!(
    cloud
      .rds
      .describe_instance(WEST, "app-db-replica")
      .await
      .unwrap(),
    None
  );
}

#[tokio::test]
async fn rds_global_cluster_failover() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let primary = moto.id("/global_cluster/primary_cluster_arn");
  let secondary = moto.id("/global_cluster/secondary_cluster_arn");

  let global = cloud
    .rds
    .describe_global_cluster("app-global")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(global.status, "available");
  assert_eq!(global.members.len(), 2);
  assert_eq!(global.writer(), Some(primary.as_str()));
  assert_eq!(
    cloud
      .rds
      .describe_global_cluster("no-such-global")
      .await
      .unwrap(),
    None
  );

  cloud
    .rds
    .failover_global_cluster("app-global", &secondary, GlobalFailover::Switchover)
    .await
    .unwrap();
  let global = cloud
    .rds
    .describe_global_cluster("app-global")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(global.writer(), Some(secondary.as_str()));
  assert_eq!(global.status, "available");
}

#[tokio::test]
async fn errors_carry_code_status_and_request_id() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;

  let error = cloud
    .rds
    .promote_read_replica(WEST, "no-such-db")
    .await
    .unwrap_err();
  assert_eq!(error.kind, ErrorKind::NotFound);
  assert_eq!(error.service, "rds");
  assert_eq!(error.operation, "PromoteReadReplica");
  assert_eq!(error.code.as_deref(), Some("DBInstanceNotFound"));
  assert_eq!(error.http_status, Some(404));
  assert!(
    error.request_id.as_deref().is_some_and(|id| !id.is_empty()),
    "{error:?}"
  );
  assert!(error.to_string().contains("DBInstanceNotFound"), "{error}");

  // A JSON-protocol service (ECS) and a REST-XML one (Route 53) map the same way.
  let error = cloud
    .ecs
    .update_desired_count(EAST, "no-such-cluster", "api", 1)
    .await
    .unwrap_err();
  assert_eq!(error.kind, ErrorKind::NotFound, "{error:?}");
  assert_eq!(error.code.as_deref(), Some("ClusterNotFoundException"));
  assert_eq!(error.http_status, Some(400));

  let error = cloud
    .route53
    .get_health_check_status("no-such-check")
    .await
    .unwrap_err();
  assert_eq!(error.kind, ErrorKind::NotFound, "{error:?}");
  assert_eq!(error.code.as_deref(), Some("NoSuchHealthCheck"));
  assert_eq!(error.http_status, Some(404));
}

#[tokio::test]
async fn a_dead_endpoint_is_a_retryable_transport_error() {
  // Nothing listens there.
  let port = crate::support::refused_port();
  let settings = aws::AwsSettings {
    profile: None,
    region: Some(EAST.to_owned()),
    endpoint_url: Some(format!("http://127.0.0.1:{port}")),
  };
  crate::support::moto::set_process_env();
  let cloud = aws::connect(&settings).await.unwrap();
  let error = cloud
    .rds
    .describe_instance(EAST, "app-db")
    .await
    .unwrap_err();
  assert_eq!(error.kind, ErrorKind::Transport, "{error:?}");
  assert!(error.is_retryable());
  assert_eq!(error.http_status, None);
}

#[tokio::test]
async fn ecs_describe_and_scale() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;

  let api = cloud
    .ecs
    .describe_service(EAST, "app-primary", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(api.status, "ACTIVE");
  assert_eq!(api.desired_count, 3);
  assert!(api.is_steady_at(3), "{api:?}");
  assert_eq!(
    api.deployments[0].rollout_state.as_deref(),
    Some("COMPLETED")
  );

  let standby = cloud
    .ecs
    .describe_service(WEST, "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(standby.desired_count, 0);

  cloud
    .ecs
    .update_desired_count(WEST, "app-standby", "api", 3)
    .await
    .unwrap();
  // Idempotent: the same count again changes nothing.
  cloud
    .ecs
    .update_desired_count(WEST, "app-standby", "api", 3)
    .await
    .unwrap();
  let scaled = cloud
    .ecs
    .describe_service(WEST, "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(scaled.desired_count, 3);
  assert!(scaled.is_steady_at(3), "{scaled:?}");

  assert_eq!(
    cloud
      .ecs
      .describe_service(WEST, "app-standby", "nope")
      .await
      .unwrap(),
    None
  );
  assert_eq!(
    cloud
      .ecs
      .describe_service(WEST, "no-such-cluster", "api")
      .await
      .unwrap(),
    None
  );
}

#[tokio::test]
async fn route53_records_changes_and_health_checks() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let zone = moto.id("/route53/zone_id");
  let primary_check = moto.id("/route53/primary_health_check");

  // Found by name with or without the trailing dot.
  let records = cloud
    .route53
    .list_record_sets(&zone, "api.example.com")
    .await
    .unwrap();
  assert_eq!(records.len(), 2, "{records:?}");
  let by_role = |role| {
    records
      .iter()
      .find(|record| record.failover == Some(role))
      .unwrap()
  };
  let primary = by_role(FailoverRole::Primary);
  assert_eq!(primary.name, "api.example.com.");
  assert_eq!(primary.rtype, "CNAME");
  assert_eq!(primary.set_identifier.as_deref(), Some("primary"));
  assert_eq!(primary.values, ["api-use1.example.com"]);
  assert_eq!(
    primary.health_check_id.as_deref(),
    Some(primary_check.as_str())
  );
  assert_eq!(primary.ttl, Some(60));
  let secondary = by_role(FailoverRole::Secondary);
  assert_eq!(secondary.values, ["api-usw2.example.com"]);

  // Fail over: point the primary record at the standby region.
  let change = RecordChange {
    action: "UPSERT".to_owned(),
    record: RecordSet {
      values: vec!["api-usw2.example.com".to_owned()],
      ..primary.clone()
    },
  };
  let info = cloud
    .route53
    .change_record_sets(&zone, "drctl failover", &[change])
    .await
    .unwrap();
  assert_eq!(info.status, "PENDING");
  assert!(!info.id.is_empty());
  let pending = cloud.route53.get_change(&info.id).await.unwrap();
  assert_eq!(pending.id, info.id);
  assert!(!pending.is_insync());
  let route53 = cloud.route53.clone();
  let id = info.id.clone();
  assert!(
    eventually(Duration::from_secs(10), || {
      let route53 = route53.clone();
      let id = id.clone();
      async move { route53.get_change(&id).await.unwrap().is_insync() }
    })
    .await
  );
  let records = cloud
    .route53
    .list_record_sets(&zone, "api.example.com.")
    .await
    .unwrap();
  let primary = records
    .iter()
    .find(|record| record.failover == Some(FailoverRole::Primary))
    .unwrap();
  assert_eq!(primary.values, ["api-usw2.example.com"]);

  let missing = cloud.route53.get_change("CNOSUCHCHANGE").await.unwrap_err();
  assert_eq!(missing.kind, ErrorKind::NotFound);
  assert_eq!(missing.code.as_deref(), Some("NoSuchChange"));

  // The seeded world stages a game day: the primary's check is inverted while its endpoint
  // answers, so Route 53 sees it down.
  let status = cloud
    .route53
    .get_health_check_status(&primary_check)
    .await
    .unwrap();
  assert!(status.inverted && !status.is_healthy(), "{status:?}");
  let normal = HealthCheckUpdate {
    inverted: Some(false),
    disabled: None,
  };
  cloud
    .route53
    .update_health_check(&primary_check, normal)
    .await
    .unwrap();

  // Health: healthy, then the endpoint goes down, then inverted, then disabled.
  let status = cloud
    .route53
    .get_health_check_status(&primary_check)
    .await
    .unwrap();
  assert!(status.is_healthy(), "{status:?}");
  assert_eq!(status.checkers_healthy, status.checkers_total);
  assert!(status.checkers_total > 0);

  moto.set_endpoint_health(&primary_check, false);
  let status = cloud
    .route53
    .get_health_check_status(&primary_check)
    .await
    .unwrap();
  assert!(!status.is_healthy(), "{status:?}");
  assert_eq!(status.checkers_healthy, 0);

  let invert = HealthCheckUpdate {
    inverted: Some(true),
    disabled: None,
  };
  cloud
    .route53
    .update_health_check(&primary_check, invert)
    .await
    .unwrap();
  let status = cloud
    .route53
    .get_health_check_status(&primary_check)
    .await
    .unwrap();
  assert!(status.inverted);
  assert!(
    status.is_healthy(),
    "inverted: a down endpoint is healthy: {status:?}"
  );

  moto.set_endpoint_health(&primary_check, true);
  let status = cloud
    .route53
    .get_health_check_status(&primary_check)
    .await
    .unwrap();
  assert!(
    !status.is_healthy(),
    "inverted: an up endpoint is unhealthy: {status:?}"
  );

  let disable = HealthCheckUpdate {
    inverted: None,
    disabled: Some(true),
  };
  cloud
    .route53
    .update_health_check(&primary_check, disable)
    .await
    .unwrap();
  let status = cloud
    .route53
    .get_health_check_status(&primary_check)
    .await
    .unwrap();
  assert!(status.disabled && status.inverted);
  assert!(
    status.is_healthy(),
    "a disabled check is healthy: {status:?}"
  );
}

#[tokio::test]
async fn s3_listing_and_head_with_checksum() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  assert!(moto
    .env()
    .contains(&("AWS_ENDPOINT_URL".to_owned(), moto.endpoint.clone())));

  let objects = cloud
    .s3
    .list_objects(EAST, "app-backups-use1", "postgres/")
    .await
    .unwrap();
  let keys: Vec<_> = objects.iter().map(|object| object.key.as_str()).collect();
  assert_eq!(
    keys,
    [
      "postgres/app-db-2026-11-21T03-00.dump",
      "postgres/app-db-2026-11-22T03-00.dump"
    ]
  );
  assert!(objects
    .iter()
    .all(|object| object.size > 0 && object.etag.is_some()));
  // As in the simulator's world, the standby bucket holds the replica of the newest dump.
  let replicas = cloud
    .s3
    .list_objects(WEST, "app-backups-usw2", "postgres/")
    .await
    .unwrap();
  assert_eq!(replicas.len(), 1);
  assert_eq!(replicas[0].key, "postgres/app-db-2026-11-22T03-00.dump");

  let key = "postgres/app-db-2026-11-22T03-00.dump";
  let head = cloud
    .s3
    .head_object(EAST, "app-backups-use1", key)
    .await
    .unwrap()
    .unwrap();
  let expected = moto.seeded["s3"]["objects"][1]["checksum_sha256"]
    .as_str()
    .unwrap()
    .to_owned();
  assert_eq!(head.checksum_sha256.as_deref(), Some(expected.as_str()));
  assert_eq!(
    head.size,
    moto.seeded["s3"]["objects"][1]["size"].as_u64().unwrap()
  );
  assert_eq!(head.replication_status.as_deref(), Some("COMPLETED"));
  let replica = cloud
    .s3
    .head_object(WEST, "app-backups-usw2", key)
    .await
    .unwrap()
    .unwrap();
  assert_eq!(replica.replication_status.as_deref(), Some("REPLICA"));

  assert_eq!(
    cloud
      .s3
      .head_object(EAST, "app-backups-use1", "postgres/nope")
      .await
      .unwrap(),
    None
  );
  let error = cloud
    .s3
    .list_objects(EAST, "no-such-bucket", "")
    .await
    .unwrap_err();
  assert_eq!(error.kind, ErrorKind::NotFound);
  assert_eq!(error.code.as_deref(), Some("NoSuchBucket"));
}

#[tokio::test]
async fn state_store_conditional_writes() {
  let moto = Moto::start();
  let store = StateStore::connect(&moto.settings(), EAST).await;
  let bucket = "app-backups-use1";
  let key = "drctl/locks/regional-failover.json";

  assert_eq!(store.get(bucket, key).await.unwrap(), None);
  let etag = store
    .put_if_absent(bucket, key, b"holder-a".to_vec())
    .await
    .unwrap();
  assert!(matches!(
    store.put_if_absent(bucket, key, b"holder-b".to_vec()).await,
    Err(StoreError::Conflict)
  ));
  let (bytes, read_etag) = store.get(bucket, key).await.unwrap().unwrap();
  assert_eq!(bytes, b"holder-a");
  assert_eq!(read_etag, etag);

  let renewed = store
    .put_if_match(bucket, key, b"holder-a renewed".to_vec(), &etag)
    .await
    .unwrap();
  assert_ne!(renewed, etag);
  assert!(matches!(
    store
      .put_if_match(bucket, key, b"stale".to_vec(), &etag)
      .await,
    Err(StoreError::Conflict)
  ));

  assert!(store
    .list(bucket, "drctl/locks/")
    .await
    .unwrap()
    .contains(&key.to_owned()));
  store.delete(bucket, key).await.unwrap();
  assert_eq!(store.get(bucket, key).await.unwrap(), None);
  assert!(store.list(bucket, "drctl/locks/").await.unwrap().is_empty());
}

/// A one-shot HTTP server on loopback that answers every request with `status`.
async fn serve_once(status: u16, delay: Duration) -> SocketAddr {
  let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
  let address = listener.local_addr().unwrap();
  tokio::spawn(async move {
    let (mut socket, _) = listener.accept().await.unwrap();
    let mut buffer = vec![0; 4096];
    let _ = socket.read(&mut buffer).await;
    tokio::time::sleep(delay).await;
    let body = "pong";
    let response = format!(
      "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
      body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
  });
  address
}

#[tokio::test]
async fn http_provider_statuses_and_timeouts() {
  let http = ReqwestHttp::new().unwrap();
  let request = |address: SocketAddr, method: &str, timeout: Duration| HttpRequest {
    method: method.to_owned(),
    url: format!("http://{address}/healthz"),
    headers: BTreeMap::from([("x-drctl".to_owned(), "probe".to_owned())]),
    body: (method == "POST").then(|| "{}".to_owned()),
    timeout,
    redirects: Redirects::None,
    max_body: DEFAULT_MAX_BODY,
  };

  let ok = serve_once(200, Duration::ZERO).await;
  let response = http
    .send(&request(ok, "GET", Duration::from_secs(5)))
    .await
    .unwrap();
  assert_eq!(response.status, 200);
  assert_eq!(response.body, "pong");

  let down = serve_once(503, Duration::ZERO).await;
  let response = http
    .send(&request(down, "POST", Duration::from_secs(5)))
    .await
    .unwrap();
  assert_eq!(
    response.status, 503,
    "a non-2xx is a response, not an error"
  );

  let slow = serve_once(200, Duration::from_secs(5)).await;
  let error = http
    .send(&request(slow, "GET", Duration::from_millis(300)))
    .await
    .unwrap_err();
  assert_eq!(error.kind, ErrorKind::Transport);
  assert!(error.message.contains("timed out"), "{error}");

  let closed = SocketAddr::from(([127, 0, 0, 1], crate::support::refused_port()));
  let error = http
    .send(&request(closed, "GET", Duration::from_secs(5)))
    .await
    .unwrap_err();
  assert_eq!(error.kind, ErrorKind::Transport);
  assert!(error.is_retryable());
}

/// Put `ReplicaLag` datapoints for `instance` in us-west-2, each `(seconds ago, value)`.
fn put_replica_lag(moto: &Moto, instance: &str, points: &[(f64, f64)]) {
  let spec = serde_json::json!({
    "region": WEST,
    "namespace": "AWS/RDS",
    "metric": "ReplicaLag",
    "dimensions": { "DBInstanceIdentifier": instance },
    "points": points,
  });
  let (status, body) = moto.request("POST", "/drctl-sandbox/metrics", &spec.to_string());
  assert_eq!(status, 200, "putting datapoints: {body}");
}

/// RDS reports ReplicaLag -1 while replication is not running (a replica whose source region
/// failed). The adapter used to clamp it to 0s, which promoted the replica as "RPO met".
#[tokio::test]
async fn a_negative_replica_lag_reads_as_unknown_not_zero() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  put_replica_lag(
    &moto,
    "lag-stopped",
    &[
      (300.0, 4.0),
      (240.0, 5.0),
      (180.0, -1.0),
      (120.0, -1.0),
      (30.0, -1.0),
    ],
  );
  let lag = cloud.rds.replica_lag(WEST, "lag-stopped").await.unwrap();
  let ReplicaLag::Unknown {
    reason: LagUnknown::Stopped { since },
    last: Some(last),
  } = lag
  else {
    panic!("-1 read as {lag:?}");
  };
  assert_eq!(
    last.lag,
    Duration::from_secs(5),
    "the last non-negative datapoint"
  );
  assert!(since > last.at, "stopped after the last measurement");
  assert!(lag.to_string().contains("replication stopped at"), "{lag}");
}

/// A datapoint older than two one-minute periods says nothing about now; the adapter used to
/// accept one up to ten minutes old as the current lag.
#[tokio::test]
async fn a_stale_replica_lag_reads_as_unknown() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  put_replica_lag(
    &moto,
    "lag-stale",
    &[(420.0, 3.0), (360.0, 3.0), (300.0, 3.0)],
  );
  let lag = cloud.rds.replica_lag(WEST, "lag-stale").await.unwrap();
  assert!(
    matches!(
      lag,
      ReplicaLag::Unknown {
        reason: LagUnknown::Stale { .. },
        last: Some(_),
      }
    ),
    "a five-minute-old datapoint read as {lag:?}"
  );
}

/// An Aurora global database secondary's RPO lag is read from the engine's own metric,
/// `AuroraGlobalDBRPOLag` (milliseconds, `DBClusterIdentifier`), with the same rules.
#[tokio::test]
async fn aurora_rpo_lag_reads_the_engines_own_metric() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let lag = cloud
    .rds
    .get_global_rpo_lag(WEST, "app-aurora-usw2")
    .await
    .unwrap();
  assert_eq!(lag.measured(), Some(Duration::from_millis(800)), "{lag:?}");
  let spec = serde_json::json!({
    "region": WEST,
    "namespace": "AWS/RDS",
    "metric": "AuroraGlobalDBRPOLag",
    "dimensions": { "DBClusterIdentifier": "aurora-stopped" },
    "points": [[240.0, 900.0], [60.0, -1.0]],
    "unit": "Milliseconds",
  });
  let (status, body) = moto.request("POST", "/drctl-sandbox/metrics", &spec.to_string());
  assert_eq!(status, 200, "{body}");
  let lag = cloud
    .rds
    .get_global_rpo_lag(WEST, "aurora-stopped")
    .await
    .unwrap();
  assert!(
    matches!(
      lag,
      ReplicaLag::Unknown {
        reason: LagUnknown::Stopped { .. },
        last: Some(last),
      } if last.lag == Duration::from_millis(900)
    ),
    "{lag:?}"
  );
}

/// `CreateDBInstanceReadReplica` across regions through the SDK: the source named by its ARN,
/// the replica `creating` then `available` with a `ReplicaLag` datapoint, a repeat refused as
/// `DBInstanceAlreadyExists` (the launcher's patch (i): moto would replace the instance).
#[tokio::test]
async fn rds_cross_region_read_replica_is_created_once_and_becomes_available() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let request = drctl::cloud::ReplicaRequest {
    region: WEST.into(),
    instance_id: "app-db-second".into(),
    source_region: EAST.into(),
    source_id: "app-db".into(),
    instance_class: None,
    tags: BTreeMap::from([("drctl:run-id".to_string(), "r1".to_string())]),
  };
  cloud.rds.create_read_replica(&request).await.unwrap();
  let created = cloud
    .rds
    .describe_instance(WEST, "app-db-second")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(created.status, "creating");
  assert_eq!(
    created.replica_of.as_deref(),
    Some("arn:aws:rds:us-east-1:123456789012:db:app-db")
  );
  assert!(
    eventually(Duration::from_secs(10), || async {
      cloud
        .rds
        .describe_instance(WEST, "app-db-second")
        .await
        .unwrap()
        .is_some_and(|instance| instance.status == "available")
    })
    .await,
    "the replica never became available"
  );
  let lag = cloud.rds.replica_lag(WEST, "app-db-second").await.unwrap();
  assert_eq!(lag.measured(), Some(Duration::ZERO), "{lag:?}");
  let again = cloud.rds.create_read_replica(&request).await.unwrap_err();
  assert_eq!(
    again.code.as_deref(),
    Some("DBInstanceAlreadyExists"),
    "{again}"
  );
  assert!(again.request_id.is_some(), "{again}");
  // A source that does not exist is named in the error.
  let missing = drctl::cloud::ReplicaRequest {
    instance_id: "app-db-third".into(),
    source_id: "no-such-db".into(),
    ..request
  };
  let err = cloud.rds.create_read_replica(&missing).await.unwrap_err();
  assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

/// `rds.retire_instance` through the SDK: `ListTagsForResource` and `AddTagsToResource` on the
/// instance's ARN, once (a second observe sees it done), and `rds.replica_status role:
/// standalone` then refuses the retired writer.
#[tokio::test]
async fn rds_retire_instance_tags_the_writer_once_and_it_is_refused_as_a_writer() {
  use drctl::actions::{self, Behaviour, Ctx, Observed};
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let tags = cloud.rds.list_instance_tags(EAST, "app-db").await.unwrap();
  assert!(
    tags
      .as_ref()
      .is_some_and(|tags| !tags.contains_key("drctl:retired")),
    "{tags:?}"
  );
  assert_eq!(
    cloud
      .rds
      .list_instance_tags(EAST, "no-such-db")
      .await
      .unwrap(),
    None
  );

  let (_cancel, cancel) = tokio::sync::watch::channel(false);
  let progress = |_: &str| {};
  let ctx = Ctx::new(&cloud, "run-42", "fence-source-db", &progress, cancel);
  let retire = actions::lookup("rds.retire_instance").unwrap();
  let Behaviour::Effect(effect) = retire.behaviour else {
    panic!("an effect");
  };
  let args = actions::bind(
    retire.spec,
    serde_json::json!({"region": EAST, "instance": "app-db"})
      .as_object()
      .unwrap(),
  )
  .unwrap();
  assert_eq!(
    effect.observe(&ctx, &args).await.unwrap().state,
    Observed::Absent
  );
  effect.apply(&ctx, &args).await.unwrap();
  let outcome = effect.verify(&ctx, &args, None).await.unwrap();
  assert!(
    outcome.outputs["retired"].starts_with("run-42 "),
    "{outcome:?}"
  );
  assert_eq!(
    effect.observe(&ctx, &args).await.unwrap().state,
    Observed::Done
  );
  let tags = cloud
    .rds
    .list_instance_tags(EAST, "app-db")
    .await
    .unwrap()
    .unwrap();
  assert!(tags["drctl:retired"].starts_with("run-42 "), "{tags:?}");

  let status = actions::lookup("rds.replica_status").unwrap();
  let Behaviour::Check(check) = status.behaviour else {
    panic!("a check");
  };
  let standalone = actions::bind(
    status.spec,
    serde_json::json!({"region": EAST, "instance": "app-db", "role": "standalone"})
      .as_object()
      .unwrap(),
  )
  .unwrap();
  let err = check.check(&ctx, &standalone).await.unwrap_err();
  assert!(err.message.contains("was retired as a writer"), "{err}");
}

/// S3 replication's lag through the SDK: CloudWatch `AWS/S3` `ReplicationLatency` in the
/// destination's region, named by `SourceBucket`, `DestinationBucket` and `RuleId`. The seeded
/// rule reads its 30 s; a rule without metrics, or whose datapoints stopped (its source region
/// failed), is unknown, never zero.
#[tokio::test]
async fn s3_replication_latency_reads_the_rules_metric_and_is_unknown_without_one() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let rule = |source: &str, rule_id: &str| drctl::cloud::S3ReplicationRule {
    source_bucket: source.into(),
    destination_bucket: "app-backups-usw2".into(),
    rule_id: rule_id.into(),
  };
  let lag = cloud
    .s3
    .get_replication_latency(WEST, &rule("app-backups-use1", "backups"))
    .await
    .unwrap();
  assert_eq!(lag.measured(), Some(Duration::from_secs(30)), "{lag:?}");
  assert_eq!(
    cloud
      .s3
      .get_replication_latency(WEST, &rule("app-backups-use1", "no-metrics"))
      .await
      .unwrap(),
    ReplicaLag::Unknown {
      reason: LagUnknown::NoDatapoint,
      last: None
    }
  );
  let spec = serde_json::json!({
    "region": WEST,
    "namespace": "AWS/S3",
    "metric": "ReplicationLatency",
    "dimensions": {
      "SourceBucket": "stopped-source",
      "DestinationBucket": "app-backups-usw2",
      "RuleId": "backups",
    },
    "points": [[420.0, 12.0], [360.0, 15.0], [300.0, 14.0]],
  });
  let (status, body) = moto.request("POST", "/drctl-sandbox/metrics", &spec.to_string());
  assert_eq!(status, 200, "{body}");
  let lag = cloud
    .s3
    .get_replication_latency(WEST, &rule("stopped-source", "backups"))
    .await
    .unwrap();
  assert!(
    matches!(
      lag,
      ReplicaLag::Unknown {
        reason: LagUnknown::Stale { .. },
        last: Some(last),
      } if last.lag == Duration::from_secs(14)
    ),
    "{lag:?}"
  );
}

/// `FailoverGlobalCluster` through the SDK sends `AllowDataLoss` only for a failover: without
/// it AWS performs a switchover, which it refuses while the writer's region is down.
#[tokio::test]
async fn global_failover_sends_allow_data_loss_only_for_a_failover() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let secondary = "arn:aws:rds:us-west-2:123456789012:cluster:app-aurora-usw2";
  let primary = "arn:aws:rds:us-east-1:123456789012:cluster:app-aurora-use1";
  cloud
    .rds
    .failover_global_cluster("app-global", secondary, GlobalFailover::AllowDataLoss)
    .await
    .unwrap();
  cloud
    .rds
    .failover_global_cluster("app-global", primary, GlobalFailover::Switchover)
    .await
    .unwrap();
  let (status, body) = moto.request("GET", "/drctl-sandbox/global-failovers", "");
  assert_eq!(status, 200, "{body}");
  let requests: serde_json::Value = serde_json::from_str(&body).unwrap();
  assert_eq!(
    requests,
    serde_json::json!([
      { "global": "app-global", "target": secondary, "allow_data_loss": true },
      { "global": "app-global", "target": primary, "allow_data_loss": false },
    ])
  );
}

/// ELBv2 through the SDK (awsQuery XML): the seed's target groups are found by name, their
/// health follows the ECS service the launcher registers as targets, and a missing group is
/// `None`, not an error.
#[tokio::test]
async fn elbv2_target_health_follows_the_standby_service() {
  use drctl::cloud::elbv2::TargetState;

  let moto = Moto::start();
  let cloud = cloud(&moto).await;

  let primary = cloud
    .elbv2
    .find_target_group(EAST, "app-primary-tg")
    .await
    .unwrap()
    .expect("the seed's primary target group");
  assert!(
    primary.arn.starts_with(
      "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/app-primary-tg/"
    ),
    "{primary:?}"
  );
  assert_eq!(
    moto.seeded["elbv2"][EAST]["arn"].as_str(),
    Some(primary.arn.as_str())
  );
  // The primary's three tasks were registered when the seed created the service.
  let ok = eventually(Duration::from_secs(10), || async {
    let targets = cloud
      .elbv2
      .describe_target_health(EAST, &primary.arn)
      .await
      .unwrap()
      .unwrap();
    targets.len() == 3 && targets.iter().all(|t| t.state == TargetState::Healthy)
  })
  .await;
  assert!(ok, "the primary's three targets become healthy");

  let standby = cloud
    .elbv2
    .find_target_group(WEST, "app-standby-tg")
    .await
    .unwrap()
    .unwrap();
  let targets = cloud
    .elbv2
    .describe_target_health(WEST, &standby.arn)
    .await
    .unwrap()
    .unwrap();
  assert!(targets.is_empty(), "the standby runs no task: {targets:?}");

  cloud
    .ecs
    .update_desired_count(WEST, "app-standby", "api", 2)
    .await
    .unwrap();
  let targets = cloud
    .elbv2
    .describe_target_health(WEST, &standby.arn)
    .await
    .unwrap()
    .unwrap();
  assert_eq!(targets.len(), 2, "{targets:?}");
  assert!(
    targets.iter().all(|t| t.state == TargetState::Initial
      && t.reason.as_deref() == Some("Elb.InitialHealthChecking")
      && t.port == Some(80)),
    "{targets:?}"
  );
  let ok = eventually(Duration::from_secs(10), || async {
    let targets = cloud
      .elbv2
      .describe_target_health(WEST, &standby.arn)
      .await
      .unwrap()
      .unwrap();
    targets.len() == 2
      && targets
        .iter()
        .all(|t| t.state == TargetState::Healthy && t.reason.is_none())
  })
  .await;
  assert!(ok, "the standby's targets pass their checks");

  cloud
    .ecs
    .update_desired_count(WEST, "app-standby", "api", 0)
    .await
    .unwrap();
  let draining = cloud
    .elbv2
    .describe_target_health(WEST, &standby.arn)
    .await
    .unwrap()
    .unwrap();
  assert!(
    draining.iter().all(|t| t.state == TargetState::Draining
      && t.reason.as_deref() == Some("Target.DeregistrationInProgress")),
    "{draining:?}"
  );
  let ok = eventually(Duration::from_secs(10), || async {
    cloud
      .elbv2
      .describe_target_health(WEST, &standby.arn)
      .await
      .unwrap()
      .unwrap()
      .is_empty()
  })
  .await;
  assert!(ok, "drained targets are gone");

  assert_eq!(
    cloud
      .elbv2
      .find_target_group(WEST, "no-such-tg")
      .await
      .unwrap(),
    None
  );
  let missing = standby.arn.replace("app-standby-tg", "no-such-tg");
  assert_eq!(
    cloud
      .elbv2
      .describe_target_health(WEST, &missing)
      .await
      .unwrap(),
    None
  );
}

/// Route 53 ARC through the real SDK against the sandbox's recovery cluster: a routing control's
/// state reads back after an update, an endpoint that refuses connections is skipped for the
/// next, and the health check the control drives follows it.
#[tokio::test]
async fn arc_routing_control_through_the_cluster_endpoints() {
  use drctl::actions::{arc::ROUTING_CONTROL, Behaviour, Ctx};
  use drctl::cloud::arc::{ClusterEndpoint, ControlState};

  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let secondary_check = moto.id("/route53/secondary_health_check");
  let arn = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef/routingcontrol/standbycell00001";
  let declared = serde_json::json!({
    "arn": arn, "name": "standby-cell", "state": "Off", "health_check_id": secondary_check,
  });
  let (status, body) = moto.request("POST", "/drctl-sandbox/arc", &declared.to_string());
  assert_eq!(status, 200, "{body}");

  // A loopback port nobody listens on: connections are refused.
  let refused = {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
  };
  let dead = ClusterEndpoint {
    region: EAST.into(),
    url: format!("http://127.0.0.1:{refused}/arc/{EAST}/v1"),
  };
  let live = ClusterEndpoint {
    region: WEST.into(),
    url: format!("{}/arc/{WEST}/v1", moto.endpoint),
  };
  let err = cloud
    .arc
    .get_routing_control_state(&dead, arn)
    .await
    .unwrap_err();
  assert_eq!(err.kind, ErrorKind::Transport, "{err}");
  assert_eq!(
    cloud
      .arc
      .get_routing_control_state(&live, arn)
      .await
      .unwrap(),
    ControlState::Off
  );
  let missing = cloud
    .arc
    .get_routing_control_state(
      &live,
      "arn:aws:route53-recovery-control::123456789012:controlpanel/x/routingcontrol/none",
    )
    .await
    .unwrap_err();
  assert_eq!(
    missing.code.as_deref(),
    Some("ResourceNotFoundException"),
    "{missing}"
  );
  assert!(missing.request_id.is_some(), "{missing}");
  assert!(
    !cloud
      .route53
      .get_health_check_status(&secondary_check)
      .await
      .unwrap()
      .is_healthy(),
    "Off: the check guarding the standby is unhealthy"
  );

  // The action: the dead endpoint listed first and last, so whichever it starts at, it moves on.
  let (_cancel, cancel) = tokio::sync::watch::channel(false);
  let progress = |_: &str| {};
  let ctx = Ctx::new(&cloud, "run-1", "flip", &progress, cancel);
  let with = serde_json::json!({
    "routing_controls": [{ "arn": arn, "state": "On" }],
    "cluster_endpoints": [
      { "region": dead.region, "url": dead.url },
      { "region": live.region, "url": live.url },
    ],
  });
  let args = drctl::actions::bind(ROUTING_CONTROL.spec, with.as_object().unwrap()).unwrap();
  let Behaviour::Effect(effect) = ROUTING_CONTROL.behaviour else {
    panic!("arc.routing_control mutates");
  };
  let token = effect.apply(&ctx, &args).await.unwrap();
  let outcome = effect.verify(&ctx, &args, token.as_deref()).await.unwrap();
  assert_eq!(outcome.outputs["endpoint"], live.url, "{outcome:?}");
  assert_eq!(
    cloud
      .arc
      .get_routing_control_state(&live, arn)
      .await
      .unwrap(),
    ControlState::On
  );
  assert!(
    cloud
      .route53
      .get_health_check_status(&secondary_check)
      .await
      .unwrap()
      .is_healthy(),
    "On: the RECOVERY_CONTROL check follows its routing control"
  );
  let again = effect.observe(&ctx, &args).await.unwrap();
  assert_eq!(again.state, drctl::actions::Observed::Done, "{again:?}");
}

/// CloudWatch alarms through the SDK (awsQuery): the seed's two alarms are read with their
/// state, reason and time, a name CloudWatch does not know is left out, and a state change made
/// with another client (boto3) is what the adapter reads next.
#[tokio::test]
async fn cloudwatch_alarms_are_read_with_state_reason_and_time() {
  use drctl::cloud::cloudwatch::AlarmState;

  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  let names: Vec<String> = [
    "app-standby-unhealthy",
    "app-primary-unhealthy",
    "no-such-alarm",
  ]
  .iter()
  .map(|name| (*name).to_owned())
  .collect();
  let mut alarms = cloud
    .cloudwatch
    .describe_alarms(WEST, &names)
    .await
    .unwrap();
  alarms.sort_by(|a, b| a.name.cmp(&b.name));
  let seen: Vec<(&str, AlarmState)> = alarms
    .iter()
    .map(|alarm| (alarm.name.as_str(), alarm.state))
    .collect();
  assert_eq!(
    seen,
    [
      ("app-primary-unhealthy", AlarmState::Alarm),
      ("app-standby-unhealthy", AlarmState::Alarm)
    ]
  );
  assert!(
    alarms[1]
      .reason
      .contains("app-standby-tg has fewer than 3 healthy targets"),
    "{alarms:?}"
  );
  assert!(alarms
    .iter()
    .all(|alarm| alarm.since.is_some() && !alarm.composite));
  assert!(
    cloud
      .cloudwatch
      .describe_alarms(EAST, &names)
      .await
      .unwrap()
      .is_empty(),
    "the alarms live in us-west-2"
  );

  let status = std::process::Command::new("python3")
    .args([
      "-c",
      "import sys, boto3; boto3.client('cloudwatch', region_name='us-west-2', \
       endpoint_url=sys.argv[1]).set_alarm_state(AlarmName='app-standby-unhealthy', \
       StateValue='OK', StateReason='Threshold Crossed: the standby is healthy')",
      &moto.endpoint,
    ])
    .envs(moto.env())
    .status()
    .unwrap();
  assert!(status.success());
  let alarms = cloud
    .cloudwatch
    .describe_alarms(WEST, &names[..1])
    .await
    .unwrap();
  assert_eq!(alarms.len(), 1);
  assert_eq!(alarms[0].state, AlarmState::Ok, "{alarms:?}");
  assert_eq!(
    alarms[0].reason,
    "Threshold Crossed: the standby is healthy"
  );
}

/// Run a boto3 snippet against moto (`endpoint` is `sys.argv[1]`); its stdout.
fn boto3(moto: &Moto, script: &str) -> String {
  let output = std::process::Command::new("python3")
    .args(["-c", script, &moto.endpoint])
    .envs(moto.env())
    .output()
    .unwrap();
  assert!(
    output.status.success(),
    "boto3: {}",
    String::from_utf8_lossy(&output.stderr)
  );
  String::from_utf8_lossy(&output.stdout).into_owned()
}

/// EC2 Auto Scaling through the SDK (awsQuery): a group boto3 created is read with its sizes,
/// the adapter's update sets desired and min in one call, and boto3 (another client) sees what
/// it set; a group that does not exist reads as none and cannot be updated.
#[tokio::test]
async fn autoscaling_group_capacity_is_read_and_set() {
  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  boto3(
    &moto,
    "import sys, boto3\n\
     c = boto3.client('autoscaling', region_name='us-west-2', endpoint_url=sys.argv[1])\n\
     c.create_launch_configuration(LaunchConfigurationName='web', ImageId='ami-12c6146b', \
     InstanceType='t3.micro')\n\
     c.create_auto_scaling_group(AutoScalingGroupName='web-standby', \
     LaunchConfigurationName='web', MinSize=0, MaxSize=10, DesiredCapacity=0, \
     AvailabilityZones=['us-west-2a'])\n",
  );
  let group = cloud
    .autoscaling
    .describe_group(WEST, "web-standby")
    .await
    .unwrap()
    .expect("the group boto3 created");
  assert_eq!(
    (
      group.min_size,
      group.max_size,
      group.desired_capacity,
      group.in_service()
    ),
    (0, 10, 0, 0)
  );
  assert!(cloud
    .autoscaling
    .describe_group(EAST, "web-standby")
    .await
    .unwrap()
    .is_none());

  cloud
    .autoscaling
    .set_capacity(WEST, "web-standby", 3, Some(3))
    .await
    .unwrap();
  let seen = boto3(
    &moto,
    "import sys, boto3\n\
     c = boto3.client('autoscaling', region_name='us-west-2', endpoint_url=sys.argv[1])\n\
     g = c.describe_auto_scaling_groups(AutoScalingGroupNames=['web-standby'])['AutoScalingGroups'][0]\n\
     print(g['MinSize'], g['DesiredCapacity'], len(g['Instances']))\n",
  );
  assert_eq!(seen.trim(), "3 3 3");
  let group = cloud
    .autoscaling
    .describe_group(WEST, "web-standby")
    .await
    .unwrap()
    .unwrap();
  assert_eq!(group.desired_capacity, 3);
  assert_eq!(group.in_service(), 3, "{group:?}");
  assert!(
    group.instances.iter().all(|i| i.id.starts_with("i-")),
    "{group:?}"
  );

  let err = cloud
    .autoscaling
    .set_capacity(WEST, "no-such-group", 1, None)
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("ValidationError"), "{err}");
  assert!(err.request_id.is_some(), "{err}");
}

/// `autoscaling.set_capacity` through the SDK against moto: 50 % of the primary group's 4 is 2;
/// observe says what changes, apply and verify set it, observe then finds it done, and boto3
/// sees exactly one capacity of 2 with the minimum raised.
#[tokio::test]
async fn autoscaling_set_capacity_scales_the_standby_to_half_the_primary() {
  use drctl::actions::{autoscaling::SET_CAPACITY, Behaviour, Ctx, Observed};

  let moto = Moto::start();
  let cloud = cloud(&moto).await;
  boto3(
    &moto,
    "import sys, boto3\n\
     for region, name, desired in (('us-east-1', 'web-primary', 4), ('us-west-2', 'web-standby', 0)):\n\
     \x20 c = boto3.client('autoscaling', region_name=region, endpoint_url=sys.argv[1])\n\
     \x20 c.create_launch_configuration(LaunchConfigurationName='web', ImageId='ami-12c6146b', \
     InstanceType='t3.micro')\n\
     \x20 c.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName='web', \
     MinSize=0, MaxSize=10, DesiredCapacity=desired, AvailabilityZones=[region + 'a'])\n",
  );
  let (_cancel, cancel) = tokio::sync::watch::channel(false);
  let progress = |_: &str| {};
  let ctx = Ctx::new(&cloud, "run-1", "scale-standby", &progress, cancel);
  let with = serde_json::json!({
    "region": WEST, "group": "web-standby", "percent_of": "web-primary",
    "percent_of_region": EAST, "percent": 50, "set_min": true,
  });
  let args = drctl::actions::bind(SET_CAPACITY.spec, with.as_object().unwrap()).unwrap();
  let Behaviour::Effect(effect) = SET_CAPACITY.behaviour else {
    panic!("autoscaling.set_capacity mutates");
  };
  let seen = effect.observe(&ctx, &args).await.unwrap();
  assert_eq!(seen.state, Observed::Absent);
  assert_eq!(seen.change, "desired capacity 0 -> 2, min 0 -> 2");
  let token = effect.apply(&ctx, &args).await.unwrap();
  let outcome = effect.verify(&ctx, &args, token.as_deref()).await.unwrap();
  assert_eq!(outcome.outputs["in_service"], "2", "{outcome:?}");
  let again = effect.observe(&ctx, &args).await.unwrap();
  assert_eq!(again.state, Observed::Done, "{again:?}");
  let seen = boto3(
    &moto,
    "import sys, boto3\n\
     c = boto3.client('autoscaling', region_name='us-west-2', endpoint_url=sys.argv[1])\n\
     g = c.describe_auto_scaling_groups(AutoScalingGroupNames=['web-standby'])['AutoScalingGroups'][0]\n\
     print(g['MinSize'], g['DesiredCapacity'])\n",
  );
  assert_eq!(seen.trim(), "2 2");
}
