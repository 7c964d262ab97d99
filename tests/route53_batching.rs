//! `route53.failover` at fleet scale, on the simulator and against moto through the real SDK:
//! paged zone reads instead of one read per name, one atomic change batch per zone within
//! Route 53's per-request limits (two when a zone's changes do not fit), idempotent
//! observe/apply/verify, and a resume after a crash between two batches that sends only what is
//! still missing. Every call goes through the client-side rate limiter, and the simulator
//! enforces AWS's limits, so the sim variant also proves no call was throttled.

use std::sync::{Arc, Mutex};

use drctl::{
  actions::{self, Behaviour, Ctx, Effect, Observed},
  cloud::{
    aws,
    sim::{read_refusals, Sim, SimOptions, BUILTIN_WORLD},
    ChangeInfo, Cloud, CloudResult, HealthCheckStatus, HealthCheckUpdate, RateLimits, RecordChange,
    RecordPage, RecordPageStart, RecordSet, Route53,
  },
};

use crate::support::moto::Moto;

/// Counts the Route 53 requests the action makes.
struct Counting {
  inner: Arc<dyn Route53>,
  calls: Mutex<Vec<&'static str>>,
}

impl Counting {
  fn note(&self, operation: &'static str) {
    self.calls.lock().unwrap().push(operation);
  }

  fn take(&self) -> Vec<&'static str> {
    std::mem::take(&mut *self.calls.lock().unwrap())
  }
}

fn count(calls: &[&str], operation: &str) -> usize {
  calls.iter().filter(|call| **call == operation).count()
}

#[async_trait::async_trait]
impl Route53 for Counting {
  async fn list_record_sets(&self, zone_id: &str, name: &str) -> CloudResult<Vec<RecordSet>> {
    self.note("ListResourceRecordSets(name)");
    self.inner.list_record_sets(zone_id, name).await
  }
  async fn list_record_sets_page(
    &self,
    zone_id: &str,
    start: Option<&RecordPageStart>,
  ) -> CloudResult<RecordPage> {
    self.note("ListResourceRecordSets(page)");
    self.inner.list_record_sets_page(zone_id, start).await
  }
  async fn get_change(&self, change_id: &str) -> CloudResult<ChangeInfo> {
    self.note("GetChange");
    self.inner.get_change(change_id).await
  }
  async fn get_health_check_status(&self, id: &str) -> CloudResult<HealthCheckStatus> {
    self.note("GetHealthCheckStatus");
    self.inner.get_health_check_status(id).await
  }
  async fn change_record_sets(
    &self,
    zone_id: &str,
    comment: &str,
    changes: &[RecordChange],
  ) -> CloudResult<ChangeInfo> {
    self.note("ChangeResourceRecordSets");
    self
      .inner
      .change_record_sets(zone_id, comment, changes)
      .await
  }
  async fn update_health_check(&self, id: &str, update: HealthCheckUpdate) -> CloudResult<()> {
    self.note("UpdateHealthCheck");
    self.inner.update_health_check(id, update).await
  }
}

/// `with:` for `route53.failover`: `names` CNAMEs in `zone`, all pointing at `target`.
fn records(zone: &str, names: usize, target: &str) -> actions::Args {
  let records: Vec<serde_json::Value> = (0..names)
    .map(|i| serde_json::json!({ "name": format!("svc-{i:04}.example.com"), "value": target }))
    .collect();
  let with = serde_json::json!({ "zone_id": zone, "records": records });
  let def = actions::lookup("route53.failover").unwrap();
  actions::bind(def.spec, with.as_object().unwrap()).unwrap()
}

fn effect() -> &'static dyn Effect {
  match actions::lookup("route53.failover").unwrap().behaviour {
    Behaviour::Effect(effect) => effect,
    Behaviour::Check(_) => unreachable!("route53.failover mutates"),
  }
}

/// Run observe → apply → verify as the engine does; returns whether apply ran.
async fn run_once(cloud: &Cloud, args: &actions::Args) -> bool {
  let progress = |_: &str| {};
  let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
  let ctx = Ctx::new(cloud, "test-run", "flip-dns", &progress, cancel);
  let observation = effect().observe(&ctx, args).await.unwrap();
  let token = match observation.state {
    Observed::Absent => {
      assert!(
        observation.change.len() < 2_000,
        "the journalled change stays short: {}",
        observation.change
      );
      Some(effect().apply(&ctx, args).await.unwrap())
    }
    _ => None,
  };
  let applied = token.is_some();
  let outcome = effect()
    .verify(&ctx, args, token.flatten().as_deref())
    .await
    .unwrap();
  assert!(
    outcome.summary.contains("in their desired state"),
    "{}",
    outcome.summary
  );
  applied
}

/// The whole scenario, on any backend. `zone` is the seeded `example.com.` zone.
async fn fleet_flip(cloud: Cloud, zone: &str) {
  let counting = Arc::new(Counting {
    inner: cloud.route53.clone(),
    calls: Mutex::new(Vec::new()),
  });
  let cloud = Cloud {
    route53: counting.clone(),
    ..cloud
  }
  .rate_limited(RateLimits::default(), None);

  // 400 names: read in pages, changed in one atomic batch (400 UPSERTs count 800 of the
  // 1,000 ResourceRecord elements a request may hold).
  let first = records(zone, 400, "standby.example.net");
  assert!(run_once(&cloud, &first).await);
  let calls = counting.take();
  assert_eq!(count(&calls, "ChangeResourceRecordSets"), 1, "{calls:?}");
  assert_eq!(
    count(&calls, "ListResourceRecordSets(name)"),
    0,
    "{calls:?}"
  );
  // observe and apply read the zone before the change (one page), verify after it (400 more
  // record sets: two pages of 300).
  assert_eq!(
    count(&calls, "ListResourceRecordSets(page)"),
    4,
    "{calls:?}"
  );

  // Idempotent: the same desired state again makes no change.
  assert!(!run_once(&cloud, &first).await);
  let calls = counting.take();
  assert_eq!(count(&calls, "ChangeResourceRecordSets"), 0, "{calls:?}");

  // 700 names pointing elsewhere do not fit one request (1,400 elements): two batches.
  let second = records(zone, 700, "tertiary.example.net");
  assert!(run_once(&cloud, &second).await);
  let calls = counting.take();
  assert_eq!(count(&calls, "ChangeResourceRecordSets"), 2, "{calls:?}");
  let mut listed = Vec::new();
  let mut start = None;
  loop {
    let page = cloud
      .route53
      .list_record_sets_page(zone, start.as_ref())
      .await
      .unwrap();
    listed.extend(page.records);
    match page.next {
      Some(next) => start = Some(next),
      None => break,
    }
  }
  let flipped = listed
    .iter()
    .filter(|record| {
      record.name.starts_with("svc-")
        && record
          .values
          .iter()
          .any(|value| value.trim_end_matches('.') == "tertiary.example.net")
    })
    .count();
  assert_eq!(flipped, 700, "every record was changed");

  // A crash between two batches: the first 450 of a new state went through, then the process
  // died. The resumed step observes, and sends only the 250 still missing, in one batch.
  let third = records(zone, 700, "fourth.example.net");
  let early: Vec<RecordChange> = (0..450)
    .map(|i| RecordChange {
      action: "UPSERT".into(),
      record: RecordSet {
        name: format!("svc-{i:04}.example.com."),
        rtype: "CNAME".into(),
        set_identifier: None,
        failover: None,
        ttl: Some(60),
        values: vec!["fourth.example.net".into()],
        health_check_id: None,
      },
    })
    .collect();
  cloud
    .route53
    .change_record_sets(zone, "the batch before the crash", &early)
    .await
    .unwrap();
  counting.take();
  assert!(run_once(&cloud, &third).await);
  let calls = counting.take();
  assert_eq!(count(&calls, "ChangeResourceRecordSets"), 1, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_fleet_flip_on_the_simulator_is_batched_paged_resumable_and_never_throttled() {
  let tmp = tempfile::tempdir().unwrap();
  let world = BUILTIN_WORLD.replace(
    "time_scale: 40\n",
    "time_scale: 40\naws_rate_limits: true\n",
  );
  assert!(world.contains("aws_rate_limits: true"));
  let path = tmp.path().join("world.yaml");
  std::fs::write(&path, world).unwrap();
  let dir = tmp.path().join("state");
  let sim = Sim::open(&SimOptions {
    world: Some(path),
    time_scale: None,
    dir: dir.clone(),
  })
  .unwrap();
  sim.follow_tokio_time();
  fleet_flip(sim.cloud(), "Z0DRCTLEXAMPLE").await;
  let changes = sim
    .operation_log()
    .iter()
    .filter(|op| op.operation == "ChangeResourceRecordSets")
    .count();
  assert_eq!(changes, 5, "1 + 2 + the pre-crash batch + 1");
  assert_eq!(
    read_refusals(&dir).unwrap(),
    Vec::new(),
    "the client-side limiter kept every call within AWS's limits"
  );
}

#[tokio::test(start_paused = true)]
async fn the_simulator_refuses_a_batch_over_route53s_request_limits() {
  let tmp = tempfile::tempdir().unwrap();
  let sim = Sim::open(&SimOptions {
    world: None,
    time_scale: None,
    dir: tmp.path().to_path_buf(),
  })
  .unwrap();
  let changes: Vec<RecordChange> = (0..501)
    .map(|i| RecordChange {
      action: "UPSERT".into(),
      record: RecordSet {
        name: format!("svc-{i}.example.com."),
        rtype: "CNAME".into(),
        set_identifier: None,
        failover: None,
        ttl: Some(60),
        values: vec!["standby.example.net".into()],
        health_check_id: None,
      },
    })
    .collect();
  let err = sim
    .cloud()
    .route53
    .change_record_sets("Z0DRCTLEXAMPLE", "too big", &changes)
    .await
    .unwrap_err();
  assert_eq!(err.code.as_deref(), Some("InvalidChangeBatch"));
  assert!(
    err.message.contains("1000 exceeded (1002"),
    "{}",
    err.message
  );
  assert!(
    sim.operation_log().is_empty(),
    "a refused batch changes nothing"
  );
  let fits = &changes[..500];
  sim
    .cloud()
    .route53
    .change_record_sets("Z0DRCTLEXAMPLE", "fits", fits)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_fleet_flip_against_moto_through_the_sdk_is_batched_paged_and_resumable() {
  let moto = Moto::start();
  let cloud = aws::connect(&moto.settings()).await.expect("connect");
  let zone = moto.id("/route53/zone_id");
  fleet_flip(cloud, &zone).await;
}
