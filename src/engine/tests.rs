//! Tests of the step executor against the simulator, under paused tokio time (waits take no
//! real time) unless a test needs the journal's wall-clock timestamps to move (RTO).

use std::{
  path::{Path, PathBuf},
  sync::{
    atomic::{AtomicU32, Ordering},
    Arc, Mutex,
  },
  time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::*;
use crate::{
  cloud::sim::{Sim, SimOptions},
  state::{journal, StepError},
};

const MIN: Duration = Duration::from_secs(60);

/// Records every journal record the engine reports.
#[derive(Default)]
struct Recorder {
  records: Mutex<Vec<Record>>,
  waits: Mutex<Vec<(String, String)>>,
}

impl Observer for Recorder {
  fn record(&self, record: &Record) {
    self.records.lock().unwrap().push(record.clone());
  }

  fn waiting(&self, step: &str, status: &str) {
    self
      .waits
      .lock()
      .unwrap()
      .push((step.to_string(), status.to_string()));
  }
}

/// An approver that answers with a fixed verdict and counts the questions.
struct Stub {
  answer: Result<bool, String>,
  calls: AtomicU32,
}

impl Stub {
  fn new(answer: Result<bool, String>) -> Arc<Stub> {
    Arc::new(Stub {
      answer,
      calls: AtomicU32::new(0),
    })
  }
}

#[async_trait::async_trait]
impl Approver for Stub {
  async fn approve(&self, _step: &str, _prompt: &str) -> Result<bool, String> {
    self.calls.fetch_add(1, Ordering::SeqCst);
    self.answer.clone()
  }
}

/// One test's world: a simulator, a state directory and the runbook's plan.
struct Harness {
  dir: tempfile::TempDir,
  sim: Arc<Sim>,
  plan: Arc<Plan>,
  observer: Arc<Recorder>,
  approver: Arc<Stub>,
  options: RunOptions,
}

fn plan(yaml: &str, params: &[(&str, &str)]) -> Plan {
  let runbook = crate::runbook::load(
    Path::new("test.yaml"),
    yaml.as_bytes(),
    &crate::actions::Catalog,
  )
  .unwrap_or_else(|diagnostics| panic!("runbook does not validate: {diagnostics:?}"));
  let given: Vec<(String, String)> = params
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
  Plan::bind(runbook, &given).unwrap()
}

impl Harness {
  /// `world`: `None` = the built-in world; else a world YAML. Time scale 1 unless `scale`.
  fn new(yaml: &str, world: Option<&str>, scale: f64) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let world_path = world.map(|text| {
      let path = dir.path().join("world.yaml");
      std::fs::write(&path, text).unwrap();
      path
    });
    let sim = Sim::open(&SimOptions {
      world: world_path,
      time_scale: Some(scale),
      dir: dir.path().join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    Harness {
      dir,
      sim,
      plan: Arc::new(plan(yaml, &[])),
      observer: Arc::new(Recorder::default()),
      approver: Stub::new(Err("no terminal".into())),
      options: RunOptions {
        run_id: "run-1".into(),
        max_parallel: 8,
        assume_yes: true,
        accept_data_loss: false,
        force: false,
        incident_start: None,
        caller: None,
      },
    }
  }

  fn journal_path(&self) -> PathBuf {
    self.dir.path().join("runs/run-1/journal.jsonl")
  }

  async fn start_with(&self, signals: watch::Receiver<u32>) -> RunOutcome {
    let journal = Journal::create(&self.journal_path()).unwrap();
    start(
      self.plan.clone(),
      self.sim.cloud(),
      journal,
      self.options.clone(),
      Operator {
        observer: self.observer.clone(),
        approver: self.approver.clone(),
        signals,
      },
    )
    .await
    .unwrap()
  }

  async fn start(&self) -> RunOutcome {
    let (_tx, rx) = watch::channel(0u32);
    self.start_with(rx).await
  }

  async fn resume(&self) -> RunOutcome {
    let_the_killed_run_go().await;
    let (journal, records) = Journal::resume(&self.journal_path()).unwrap();
    let (_tx, rx) = watch::channel(0u32);
    resume(
      self.plan.clone(),
      self.sim.cloud(),
      journal,
      records,
      self.options.clone(),
      Operator {
        observer: self.observer.clone(),
        approver: self.approver.clone(),
        signals: rx,
      },
    )
    .await
    .unwrap()
  }

  /// The journal as written to disk.
  fn journal(&self) -> Vec<Record> {
    journal::read(&self.journal_path()).unwrap()
  }

  /// The desired count of the standby service (`app-standby/api` in us-west-2) now.
  async fn standby_desired_count(&self) -> u32 {
    let service = self
      .sim
      .cloud()
      .ecs
      .describe_service("us-west-2", "app-standby", "api")
      .await
      .unwrap()
      .expect("the standby service exists");
    service.desired_count
  }

  fn ops(&self, operation: &str) -> usize {
    self
      .sim
      .operation_log()
      .iter()
      .filter(|op| op.operation == operation)
      .count()
  }
}

fn span<'a>(outcome: &'a RunOutcome, id: &str) -> &'a crate::state::StepSpan {
  outcome
    .timeline
    .steps
    .iter()
    .find(|span| span.id == id)
    .unwrap_or_else(|| panic!("no step `{id}` in the timeline"))
}

fn step_of(event: &Event) -> Option<&str> {
  match event {
    Event::StepStarted { step, .. }
    | Event::StepIntent { step, .. }
    | Event::StepSucceeded { step, .. }
    | Event::StepFailed { step, .. }
    | Event::StepSkipped { step, .. } => Some(step),
    _ => None,
  }
}

/// Index of the first record matching.
fn position(records: &[Record], pred: impl Fn(&Event) -> bool) -> Option<usize> {
  records.iter().position(|record| pred(&record.event))
}

fn started(records: &[Record], id: &str) -> Option<usize> {
  position(
    records,
    |event| matches!(event, Event::StepStarted { step, phase: Phase::Run, .. } if step == id),
  )
}

fn succeeded(records: &[Record], id: &str) -> Option<usize> {
  position(
    records,
    |event| matches!(event, Event::StepSucceeded { step, phase: Phase::Run, .. } if step == id),
  )
}

fn failures<'a>(records: &'a [Record], id: &str) -> Vec<(&'a StepError, bool, Option<u64>)> {
  records
    .iter()
    .filter_map(|record| match &record.event {
      Event::StepFailed {
        step,
        phase: Phase::Run,
        error,
        will_retry,
        backoff_ms,
        ..
      } if step == id => Some((error, *will_retry, *backoff_ms)),
      _ => None,
    })
    .collect()
}

fn sleep_yaml(max_parallel_note: &str) -> String {
  format!(
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: dag, description: "{max_parallel_note}" }}
steps:
  - id: first
    action: wait.sleep
    with: {{ duration: 1m }}
  - id: left
    action: wait.sleep
    needs: [first]
    with: {{ duration: 5m }}
  - id: right
    action: wait.sleep
    needs: [first]
    with: {{ duration: 5m }}
"#
  )
}

// --- 1. DAG timing ----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn independent_steps_run_in_parallel() {
  let h = Harness::new(&sleep_yaml("parallel"), None, 1.0);
  let begin = Instant::now();
  let outcome = h.start().await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert!(took >= 6 * MIN, "ended too early: {took:?}");
  assert!(took < 6 * MIN + Duration::from_secs(5), "took {took:?}");
  // Overlap, from the journal: both 5-minute steps started before either ended, and only
  // after `first` ended.
  let records = h.journal();
  let first_done = succeeded(&records, "first").unwrap();
  let (left_start, right_start) = (
    started(&records, "left").unwrap(),
    started(&records, "right").unwrap(),
  );
  let (left_end, right_end) = (
    succeeded(&records, "left").unwrap(),
    succeeded(&records, "right").unwrap(),
  );
  assert!(first_done < left_start && first_done < right_start);
  assert!(left_start < right_end && right_start < left_end);
  // The observer saw every record the journal holds, in order.
  let seen: Vec<u64> = h
    .observer
    .records
    .lock()
    .unwrap()
    .iter()
    .map(|r| r.seq)
    .collect();
  assert_eq!(seen, records.iter().map(|r| r.seq).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn max_parallel_one_serializes_the_graph() {
  let mut h = Harness::new(&sleep_yaml("serial"), None, 1.0);
  h.options.max_parallel = 1;
  let begin = Instant::now();
  let outcome = h.start().await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert!(took >= 11 * MIN, "took {took:?}");
  assert!(took < 11 * MIN + Duration::from_secs(5), "took {took:?}");
  let records = h.journal();
  let left_end = succeeded(&records, "left").unwrap();
  let right_start = started(&records, "right").unwrap();
  assert!(left_end < right_start, "right started before left ended");
}

/// Timeline offsets come from the journal's wall-clock timestamps × time_scale, so this runs on
/// real time with a fast clock: 1m + 5m ‖ 5m at ×600 is 0.6 s of wall time.
#[tokio::test]
async fn timeline_offsets_show_the_overlap() {
  let h = Harness::new(&sleep_yaml("timeline"), None, 600.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  let left = span(&outcome, "left");
  let right = span(&outcome, "right");
  let first = span(&outcome, "first");
  let (ls, le) = (left.started.unwrap(), left.ended.unwrap());
  let (rs, re) = (right.started.unwrap(), right.ended.unwrap());
  assert!(first.ended.unwrap() <= ls && first.ended.unwrap() <= rs);
  assert!(
    ls < re && rs < le,
    "left {ls:?}..{le:?} right {rs:?}..{re:?}"
  );
  assert!(
    le >= 6 * MIN - Duration::from_secs(1),
    "left ended at {le:?}"
  );
  // Generous upper bound: wall-clock scheduling noise is multiplied by 600.
  assert!(le.max(re) < 9 * MIN, "ended at {:?}", le.max(re));
}

// --- 2. Retries -------------------------------------------------------------------------------

const SCALE_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: scale }
steps:
  - id: scale
    action: ecs.scale_service
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 2 }
    timeout: 10m
    retry: { attempts: 3, backoff: 2s, max_backoff: 30s }
"#;

fn world_with(faults: &str) -> String {
  crate::cloud::sim::BUILTIN_WORLD.replace("faults: {}", faults)
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_retried_with_backoff_then_fail() {
  let world = world_with("faults: { UpdateService: { throttle: 1.0 } }");
  let h = Harness::new(SCALE_YAML, Some(&world), 1.0);
  let begin = Instant::now();
  let outcome = h.start().await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Failed);
  assert_eq!(outcome.timeline.failed_step.as_deref(), Some("scale"));
  let records = h.journal();
  let attempts: Vec<u32> = records
    .iter()
    .filter_map(|r| match &r.event {
      Event::StepStarted {
        step,
        attempt,
        phase: Phase::Run,
      } if step == "scale" => Some(*attempt),
      _ => None,
    })
    .collect();
  assert_eq!(attempts, vec![1, 2, 3]);
  let failed = failures(&records, "scale");
  assert_eq!(failed.len(), 3);
  let retries: Vec<_> = failed.iter().filter(|(_, retry, _)| *retry).collect();
  assert_eq!(retries.len(), 2);
  // Equal jitter: retry n waits in [base·2ⁿ/2, base·2ⁿ].
  let b1 = failed[0].2.unwrap();
  let b2 = failed[1].2.unwrap();
  assert!((1000..=2000).contains(&b1), "first backoff {b1}ms");
  assert!((2000..=4000).contains(&b2), "second backoff {b2}ms");
  assert!(took >= Duration::from_millis(b1 + b2), "took {took:?}");
  let (last, will_retry, backoff) = failed[2];
  assert!(!will_retry && backoff.is_none());
  assert_eq!(last.code.as_deref(), Some("Throttling"));
  assert!(last.request_id.as_deref().is_some_and(|id| !id.is_empty()));
  assert!(last.retryable);
  assert_eq!(span(&outcome, "scale").attempts, 3);
  // Nothing was accepted.
  assert_eq!(h.ops(crate::cloud::ops::ecs::UPDATE_SERVICE.name), 0);
}

#[tokio::test(start_paused = true)]
async fn retryable_error_then_success_succeeds_on_a_later_attempt() {
  // The first UpdateService call is throttled (seeded draw < 0.5 or not): whatever happens, a
  // step with enough attempts against a 50% throttle ends succeeded and changed the world once.
  let world = world_with("faults: { UpdateService: { throttle: 0.5 } }");
  let yaml = SCALE_YAML.replace("attempts: 3", "attempts: 20");
  let h = Harness::new(&yaml, Some(&world), 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(h.ops(crate::cloud::ops::ecs::UPDATE_SERVICE.name), 1);
  let svc = h
    .sim
    .cloud()
    .ecs
    .describe_service("us-west-2", "app-standby", "api")
    .await
    .unwrap()
    .unwrap();
  assert_eq!((svc.desired_count, svc.running_count), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_fail_at_once() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: missing }
steps:
  - id: promote
    action: rds.promote_replica
    with: { region: us-west-2, instance: no-such-db }
    retry: { attempts: 3, backoff: 2s, max_backoff: 30s }
"#;
  let h = Harness::new(yaml, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  let records = h.journal();
  let failed = failures(&records, "promote");
  assert_eq!(failed.len(), 1, "{failed:?}");
  assert!(!failed[0].1);
  assert!(!failed[0].0.retryable);
  assert_eq!(span(&outcome, "promote").attempts, 1);
  assert_eq!(h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name), 0);
}

// --- 3. Timeout -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_hanging_call_times_out_after_the_step_timeout() {
  // The step's timeout is shorter than the provider's attempt timeout (20 s), which would
  // otherwise end the hung call first.
  let world = world_with("faults: { DescribeDBInstances: { hang: 1.0 } }");
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: hang }
steps:
  - id: lag
    action: rds.replica_status
    with: { region: us-west-2, instance: app-db-replica }
    timeout: 15s
    retry: { attempts: 1 }
"#;
  let h = Harness::new(yaml, Some(&world), 1.0);
  let begin = Instant::now();
  let outcome = tokio::time::timeout(Duration::from_secs(3600), h.start())
    .await
    .expect("the run hung");
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Failed);
  assert!(took >= Duration::from_secs(15), "took {took:?}");
  assert!(took < Duration::from_secs(16), "took {took:?}");
  let records = h.journal();
  let failed = failures(&records, "lag");
  assert_eq!(failed.len(), 1);
  assert!(
    failed[0].0.message.contains("timed out"),
    "{:?}",
    failed[0].0
  );
  assert!(failed[0].0.message.contains("15s"), "{:?}", failed[0].0);
}

// --- 4. on_failure ----------------------------------------------------------------------------

fn failure_yaml(on_failure: &str) -> String {
  format!(
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: failures }}
steps:
  - id: scale
    action: ecs.scale_service
    with: {{ region: us-west-2, cluster: app-standby, service: api, desired_count: 2 }}
    rollback:
      action: ecs.scale_service
      with: {{ region: us-west-2, cluster: app-standby, service: api, desired_count: 0 }}
  - id: broken
    action: rds.promote_replica
    needs: [scale]
    with: {{ region: us-west-2, instance: no-such-db }}
    on_failure: {on_failure}
  - id: after
    action: wait.sleep
    needs: [broken]
    with: {{ duration: 10s }}
  - id: cleanup
    action: wait.sleep
    needs: [after]
    always: true
    with: {{ duration: 1s }}
"#
  )
}

#[tokio::test(start_paused = true)]
async fn on_failure_continue_lets_dependents_run() {
  let h = Harness::new(&failure_yaml("continue"), None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(span(&outcome, "broken").outcome, "failed");
  assert_eq!(span(&outcome, "after").outcome, "succeeded");
  assert_eq!(span(&outcome, "cleanup").outcome, "succeeded");
  assert!(outcome.timeline.rollbacks.is_empty());
}

#[tokio::test(start_paused = true)]
async fn on_failure_abort_stops_but_always_steps_run() {
  let h = Harness::new(&failure_yaml("abort"), None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  assert_eq!(outcome.timeline.failed_step.as_deref(), Some("broken"));
  let records = h.journal();
  assert!(started(&records, "after").is_none(), "a later step started");
  assert_eq!(span(&outcome, "cleanup").outcome, "succeeded");
  // No rollback on abort: the service stays scaled.
  assert!(outcome.timeline.rollbacks.is_empty());
  assert_eq!(h.standby_desired_count().await, 2);
  assert!(matches!(
    records.last().map(|r| &r.event),
    Some(Event::RunFinished {
      status: RunStatus::Failed,
      ..
    })
  ));
}

#[tokio::test(start_paused = true)]
async fn on_failure_rollback_undoes_completed_mutating_steps() {
  let h = Harness::new(&failure_yaml("rollback"), None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  let records = h.journal();
  let rollback_started = position(
    &records,
    |e| matches!(e, Event::StepStarted { step, phase: Phase::Rollback, .. } if step == "scale"),
  )
  .expect("no rollback started");
  let rollback_done = position(
    &records,
    |e| matches!(e, Event::StepSucceeded { step, phase: Phase::Rollback, .. } if step == "scale"),
  )
  .expect("rollback did not succeed");
  let broken_failed = position(
    &records,
    |e| matches!(e, Event::StepFailed { step, will_retry: false, .. } if step == "broken"),
  )
  .unwrap();
  assert!(broken_failed < rollback_started && rollback_started < rollback_done);
  // Always-steps run after the rollback.
  let cleanup = started(&records, "cleanup").expect("always-step did not run");
  assert!(rollback_done < cleanup);
  assert!(started(&records, "after").is_none());
  assert_eq!(outcome.timeline.rollbacks.len(), 1);
  assert_eq!(outcome.timeline.rollbacks[0].outcome, "rolled_back");
  assert_eq!(h.standby_desired_count().await, 0);
  let counts: Vec<u64> = h
    .sim
    .operation_log()
    .iter()
    .filter(|op| op.operation == crate::cloud::ops::ecs::UPDATE_SERVICE.name)
    .filter_map(|op| op.detail.get("desired_count").and_then(|v| v.as_u64()))
    .collect();
  assert_eq!(counts, vec![2, 0]);
}

/// ECS in front of the simulator's: the first `refusals` calls that scale to zero (the
/// rollback's) are refused with a retryable 5xx before they reach the world.
struct FlakyScaleDown {
  inner: Arc<dyn crate::cloud::Ecs>,
  refusals: AtomicU32,
}

#[async_trait::async_trait]
impl crate::cloud::Ecs for FlakyScaleDown {
  async fn describe_service(
    &self,
    region: &str,
    cluster: &str,
    service: &str,
  ) -> crate::cloud::CloudResult<Option<crate::cloud::EcsService>> {
    self.inner.describe_service(region, cluster, service).await
  }

  async fn update_desired_count(
    &self,
    region: &str,
    cluster: &str,
    service: &str,
    desired_count: u32,
  ) -> crate::cloud::CloudResult<()> {
    let refuse = desired_count == 0
      && self
        .refusals
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
          left.checked_sub(1)
        })
        .is_ok();
    if refuse {
      return Err(
        crate::cloud::CloudError::new(
          crate::cloud::ErrorKind::Server,
          "ecs",
          crate::cloud::ops::ecs::UPDATE_SERVICE.name,
          "service unavailable",
        )
        .with_code("ServiceUnavailableException")
        .with_status(503)
        .with_request_id("req-flaky"),
      );
    }
    self
      .inner
      .update_desired_count(region, cluster, service, desired_count)
      .await
  }
}

/// Starts `h`'s run with the rollback's first `refusals` scale-downs refused.
async fn start_with_flaky_rollback(h: &Harness, refusals: u32) -> RunOutcome {
  let mut cloud = h.sim.cloud();
  cloud.ecs = Arc::new(FlakyScaleDown {
    inner: cloud.ecs.clone(),
    refusals: AtomicU32::new(refusals),
  });
  let (_tx, rx) = watch::channel(0u32);
  start(
    h.plan.clone(),
    cloud,
    Journal::create(&h.journal_path()).unwrap(),
    h.options.clone(),
    Operator {
      observer: h.observer.clone(),
      approver: h.approver.clone(),
      signals: rx,
    },
  )
  .await
  .unwrap()
}

fn rollback_attempts(records: &[Record], step_id: &str) -> Vec<(u32, bool)> {
  records
    .iter()
    .filter_map(|record| match &record.event {
      Event::StepFailed {
        step,
        attempt,
        phase: Phase::Rollback,
        will_retry,
        ..
      } if step == step_id => Some((*attempt, *will_retry)),
      Event::StepSucceeded {
        step,
        attempt,
        phase: Phase::Rollback,
        ..
      } if step == step_id => Some((*attempt, true)),
      _ => None,
    })
    .collect()
}

#[tokio::test(start_paused = true)]
async fn a_rollback_refused_by_a_retryable_error_is_retried_with_the_steps_policy() {
  // The default policy: 3 attempts. Two refusals, then the scale-down goes through.
  let h = Harness::new(&failure_yaml("rollback"), None, 1.0);
  let outcome = start_with_flaky_rollback(&h, 2).await;
  assert_eq!(outcome.status, RunStatus::Failed);
  let records = h.journal();
  assert_eq!(
    rollback_attempts(&records, "scale"),
    vec![(1, true), (2, true), (3, true)]
  );
  assert_eq!(outcome.timeline.rollbacks.len(), 1);
  assert_eq!(outcome.timeline.rollbacks[0].outcome, "rolled_back");
  assert_eq!(outcome.timeline.rollbacks[0].attempts, 3);
  assert_eq!(h.standby_desired_count().await, 0);
  // The refused calls never reached the world: one scale-up, one scale-down.
  assert_eq!(h.ops(crate::cloud::ops::ecs::UPDATE_SERVICE.name), 2);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_stops_retrying_when_its_attempts_are_spent() {
  let h = Harness::new(&failure_yaml("rollback"), None, 1.0);
  let outcome = start_with_flaky_rollback(&h, 5).await;
  assert_eq!(outcome.status, RunStatus::Failed);
  let records = h.journal();
  assert_eq!(
    rollback_attempts(&records, "scale"),
    vec![(1, true), (2, true), (3, false)]
  );
  let rollback = &outcome.timeline.rollbacks[0];
  assert_eq!(rollback.outcome, "failed");
  let error = rollback.error.as_ref().expect("the last error is kept");
  assert_eq!(error.code.as_deref(), Some("ServiceUnavailableException"));
  assert_eq!(error.request_id.as_deref(), Some("req-flaky"));
  // Always-steps still run after a failed rollback.
  assert_eq!(span(&outcome, "cleanup").outcome, "succeeded");
}

// --- 5. Interrupts ----------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_interrupt_stops_the_run_and_always_steps_still_run() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: interrupt }
steps:
  - id: long
    action: wait.sleep
    with: { duration: 1h }
  - id: next
    action: wait.sleep
    needs: [long]
    with: { duration: 1s }
  - id: cleanup
    action: wait.sleep
    needs: [long]
    always: true
    with: { duration: 30s }
"#;
  let h = Harness::new(yaml, None, 1.0);
  let (tx, rx) = watch::channel(0u32);
  tokio::spawn(async move {
    tokio::time::sleep(2 * MIN).await;
    tx.send(1).unwrap();
    // Keep the sender alive until the run is over.
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
  });
  let begin = Instant::now();
  let outcome = h.start_with(rx).await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Interrupted);
  assert!(took < 3 * MIN, "the long step was not cut short: {took:?}");
  assert!(took >= 2 * MIN + Duration::from_secs(30), "took {took:?}");
  let records = h.journal();
  assert!(position(&records, |e| matches!(e, Event::RunInterrupted { .. })).is_some());
  assert!(succeeded(&records, "long").is_none());
  assert_ne!(span(&outcome, "long").outcome, "succeeded");
  assert!(started(&records, "next").is_none());
  assert_eq!(span(&outcome, "cleanup").outcome, "succeeded");
  assert!(!records
    .iter()
    .any(|r| matches!(r.event, Event::RunFinished { .. })));
}

/// A second interrupt cuts always-steps short: the running one is cancelled, the one after it
/// never starts, and the run still journals its interrupt and returns (no process exit).
#[tokio::test(start_paused = true)]
async fn a_second_interrupt_cuts_always_steps_short() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: interrupt-twice }
steps:
  - id: long
    action: wait.sleep
    with: { duration: 1h }
  - id: cleanup
    action: wait.sleep
    needs: [long]
    always: true
    with: { duration: 1h }
  - id: after-cleanup
    action: wait.sleep
    needs: [cleanup]
    always: true
    with: { duration: 1s }
"#;
  let h = Harness::new(yaml, None, 1.0);
  let (tx, rx) = watch::channel(0u32);
  tokio::spawn(async move {
    tokio::time::sleep(2 * MIN).await;
    tx.send(1).unwrap();
    tokio::time::sleep(3 * MIN).await;
    tx.send(2).unwrap();
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
  });
  let begin = Instant::now();
  let outcome = h.start_with(rx).await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Interrupted);
  assert!(
    took < 6 * MIN,
    "the always-step was not cut short: {took:?}"
  );
  let records = h.journal();
  assert!(started(&records, "cleanup").is_some());
  assert!(succeeded(&records, "cleanup").is_none());
  assert!(started(&records, "after-cleanup").is_none());
  let signal = records.iter().find_map(|r| match &r.event {
    Event::RunInterrupted { signal } => Some(signal.clone()),
    _ => None,
  });
  assert!(
    signal.as_deref().is_some_and(|s| s.contains("twice")),
    "{signal:?}"
  );
}

// --- 6. Approvals -----------------------------------------------------------------------------

const APPROVAL_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: approval }
steps:
  - id: gate
    action: wait.sleep
    approval: { prompt: "Go?" }
    with: { duration: 1s }
"#;

#[tokio::test(start_paused = true)]
async fn a_denied_approval_fails_the_step() {
  let mut h = Harness::new(APPROVAL_YAML, None, 1.0);
  h.options.assume_yes = false;
  h.approver = Stub::new(Ok(false));
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  let records = h.journal();
  let message = &failures(&records, "gate")[0].0.message;
  assert!(
    message.starts_with(&format!(
      "step `gate` was denied by {}",
      crate::state::os_user()
    )),
    "{message}"
  );
}

#[tokio::test(start_paused = true)]
async fn an_approved_step_runs() {
  let mut h = Harness::new(APPROVAL_YAML, None, 1.0);
  h.options.assume_yes = false;
  h.approver = Stub::new(Ok(true));
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(h.approver.calls.load(Ordering::SeqCst), 1);
  assert_eq!(span(&outcome, "gate").outcome, "succeeded");
}

#[tokio::test(start_paused = true)]
async fn assume_yes_does_not_ask() {
  let h = Harness::new(APPROVAL_YAML, None, 1.0);
  assert!(h.options.assume_yes);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(h.approver.calls.load(Ordering::SeqCst), 0);
}

// --- 7. Resume --------------------------------------------------------------------------------

const PROMOTE_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: promote }
objectives: { rpo: 5m }
steps:
  - id: promote
    action: rds.promote_replica
    with: { region: us-west-2, instance: app-db-replica, max_lag: "${{ objectives.rpo }}" }
    timeout: 20m
"#;

/// Cut the journal right after the first `step_intent` of `step` (a crash between the intent
/// and the outcome).
fn truncate_after_intent(path: &Path, step: &str) {
  let text = std::fs::read_to_string(path).unwrap();
  let mut kept = String::new();
  for line in text.lines() {
    kept.push_str(line);
    kept.push('\n');
    if line.contains("\"event\":\"step_intent\"") && line.contains(&format!("\"step\":\"{step}\""))
    {
      break;
    }
  }
  assert!(kept.contains("step_intent"), "no intent in {text}");
  std::fs::write(path, kept).unwrap();
}

fn promote_records_since_resume(records: &[Record]) -> Vec<&Event> {
  let resumed = position(records, |e| matches!(e, Event::RunResumed { .. })).unwrap();
  records[resumed..]
    .iter()
    .map(|r| &r.event)
    .filter(|e| step_of(e) == Some("promote"))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn resume_after_intent_with_the_effect_done_does_not_apply_again() {
  let h = Harness::new(PROMOTE_YAML, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name), 1);
  truncate_after_intent(&h.journal_path(), "promote");

  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(
    h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name),
    1,
    "promoted twice"
  );
  let records = h.journal();
  let since = promote_records_since_resume(&records);
  assert!(
    !since.iter().any(|e| matches!(e, Event::StepIntent { .. })),
    "a second intent: {since:?}"
  );
  assert!(since
    .iter()
    .any(|e| matches!(e, Event::StepSucceeded { changed: true, .. })));
  // The data loss the intent measured survives the resume.
  assert_eq!(outcome.timeline.rpo_achieved, Some(Duration::from_secs(4)));
  assert_eq!(outcome.timeline.resumed, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_after_a_crash_mid_verify_waits_without_applying_again() {
  let h = Harness::new(PROMOTE_YAML, None, 1.0);
  // "kill -9" one minute in: the promotion was accepted and takes 5 minutes.
  let crashed = tokio::time::timeout(MIN, h.start()).await;
  assert!(crashed.is_err(), "the run finished before the crash");
  assert_eq!(h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name), 1);
  let records = h.journal();
  assert!(position(&records, |e| matches!(e, Event::StepIntent { .. })).is_some());
  assert!(succeeded(&records, "promote").is_none());

  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(
    h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name),
    1,
    "promoted twice"
  );
  let records = h.journal();
  let since = promote_records_since_resume(&records);
  assert!(!since.iter().any(|e| matches!(e, Event::StepIntent { .. })));
  assert_eq!(span(&outcome, "promote").outcome, "succeeded");
  assert!(span(&outcome, "promote").changed);
  assert_eq!(outcome.timeline.rpo_achieved, Some(Duration::from_secs(4)));
}

const PAGE_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: page }
steps:
  - id: page
    action: notify.pagerduty
    with: { routing_key: rk, summary: "region down" }
  - id: resolve
    action: notify.pagerduty
    needs: [page]
    with: { routing_key: rk, summary: "recovered", event_action: resolve, dedup_key: "${{ steps.page.outputs.dedup_key }}" }
"#;

/// Cut the journal right after the first `event` record of `step` (a crash at that instant).
fn truncate_after(path: &Path, event: &str, step: &str) {
  let text = std::fs::read_to_string(path).unwrap();
  let mut kept = String::new();
  let mut found = false;
  for line in text.lines() {
    kept.push_str(line);
    kept.push('\n');
    if line.contains(&format!("\"event\":\"{event}\""))
      && line.contains(&format!("\"step\":\"{step}\""))
    {
      found = true;
      break;
    }
  }
  assert!(found, "no {event} of {step} in {text}");
  std::fs::write(path, kept).unwrap();
}

/// The PagerDuty events the simulator received, as `(event_action, dedup_key)`.
fn pages(h: &Harness) -> Vec<(String, String)> {
  h.sim
    .operation_log()
    .iter()
    .filter(|op| op.operation == "POST" && op.target.contains("events.pagerduty.com"))
    .map(|op| {
      let body: serde_json::Value =
        serde_json::from_str(op.detail["body"].as_str().unwrap()).unwrap();
      (
        body["event_action"].as_str().unwrap().to_string(),
        body["dedup_key"].as_str().unwrap().to_string(),
      )
    })
    .collect()
}

/// The events expected, in order, all with the trigger step's key.
fn events(actions: &[&str]) -> Vec<(String, String)> {
  actions
    .iter()
    .map(|action| (action.to_string(), "drctl/run-1/page".to_string()))
    .collect()
}

#[tokio::test(start_paused = true)]
async fn a_trigger_dispatched_before_a_crash_is_not_sent_again_on_resume() {
  let h = Harness::new(PAGE_YAML, None, 1.0);
  assert_eq!(h.start().await.status, RunStatus::Succeeded);
  assert_eq!(pages(&h), events(&["trigger", "resolve"]));
  // Killed after the trigger left the process, before its answer was journalled.
  truncate_after(&h.journal_path(), "step_dispatched", "page");

  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  // No second trigger; the resolve (which never happened in the crashed run's journal) is sent
  // with the same key, so the first trigger's incident is the one resolved.
  assert_eq!(pages(&h), events(&["trigger", "resolve", "resolve"]));
  let page = span(&outcome, "page");
  assert_eq!(page.outcome, "succeeded");
  assert_eq!(page.outputs["delivery"], "unconfirmed");
  assert_eq!(page.outputs["dedup_key"], "drctl/run-1/page");
  let summary = page.summary.as_deref().unwrap();
  assert!(
    summary.starts_with("warning:") && summary.contains("dedup_key drctl/run-1/page"),
    "{summary}"
  );
  assert_eq!(span(&outcome, "resolve").outputs["delivery"], "confirmed");
}

#[tokio::test(start_paused = true)]
async fn a_trigger_whose_intent_was_journalled_but_never_dispatched_is_sent_on_resume() {
  let h = Harness::new(PAGE_YAML, None, 1.0);
  assert_eq!(h.start().await.status, RunStatus::Succeeded);
  // Killed after the intent, before the request left: nobody was paged by this step's record.
  truncate_after(&h.journal_path(), "step_intent", "page");
  let records = h.journal();
  assert!(!records
    .iter()
    .any(|r| matches!(r.event, Event::StepDispatched { .. })));

  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(
    pages(&h),
    events(&["trigger", "resolve", "trigger", "resolve"])
  );
  assert_eq!(span(&outcome, "page").outputs["delivery"], "confirmed");
}

#[tokio::test(start_paused = true)]
async fn a_resolve_dispatched_before_a_crash_is_sent_again_on_resume() {
  let h = Harness::new(PAGE_YAML, None, 1.0);
  assert_eq!(h.start().await.status, RunStatus::Succeeded);
  truncate_after(&h.journal_path(), "step_dispatched", "resolve");

  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  // At least once: a lost resolve would leave the incident open.
  assert_eq!(pages(&h), events(&["trigger", "resolve", "resolve"]));
}

#[tokio::test(start_paused = true)]
async fn a_dispatch_answered_by_a_failure_is_retried_on_resume() {
  let h = Harness::new(PAGE_YAML, None, 1.0);
  assert_eq!(h.start().await.status, RunStatus::Succeeded);
  // A journal where the trigger's dispatch was answered by a final failure (say a 400 that an
  // operator fixed before resuming): the failure answers the dispatch, so the resume sends.
  let path = h.journal_path();
  truncate_after(&path, "step_dispatched", "page");
  let (mut journal, _) = Journal::resume(&path).unwrap();
  journal
    .append(Event::StepFailed {
      step: "page".into(),
      attempt: 1,
      phase: Phase::Run,
      error: StepError {
        message: "POST https://events.pagerduty.com answered 400 (not retried)".into(),
        code: None,
        request_id: None,
        http_status: None,
        retryable: false,
      },
      will_retry: false,
      backoff_ms: None,
    })
    .unwrap();
  drop(journal);

  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(
    pages(&h),
    events(&["trigger", "resolve", "trigger", "resolve"])
  );
}

#[tokio::test(start_paused = true)]
async fn resume_skips_succeeded_steps() {
  let h = Harness::new(PROMOTE_YAML, None, 1.0);
  assert_eq!(h.start().await.status, RunStatus::Succeeded);
  let log_before = h.sim.operation_log();
  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(h.sim.operation_log(), log_before);
  let records = h.journal();
  assert!(
    promote_records_since_resume(&records).is_empty(),
    "the succeeded step ran again"
  );
}

#[tokio::test(start_paused = true)]
async fn resume_refuses_a_changed_runbook() {
  let mut h = Harness::new(PROMOTE_YAML, None, 1.0);
  let crashed = tokio::time::timeout(Duration::from_secs(1), h.start()).await;
  assert!(crashed.is_err());
  h.plan = Arc::new(plan(&PROMOTE_YAML.replace("20m", "25m"), &[]));
  let_the_killed_run_go().await;
  let (journal, records) = Journal::resume(&h.journal_path()).unwrap();
  let (_tx, rx) = watch::channel(0u32);
  let err = resume(
    h.plan.clone(),
    h.sim.cloud(),
    journal,
    records,
    h.options.clone(),
    Operator {
      observer: h.observer.clone(),
      approver: h.approver.clone(),
      signals: rx,
    },
  )
  .await
  .unwrap_err();
  assert!(matches!(err, EngineError::Resume(_)), "{err}");
}

// --- 8. RTO / RPO -----------------------------------------------------------------------------

/// RTO comes from the journal's wall-clock timestamps × time_scale: real time at ×600.
#[tokio::test]
async fn missing_the_rto_is_breached_and_non_recovery_steps_do_not_count() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: rto }
objectives: { rto: 1m }
steps:
  - id: recover
    action: wait.sleep
    with: { duration: 2m }
  - id: notify
    action: wait.sleep
    needs: [recover]
    recovery: false
    with: { duration: 3m }
"#;
  let h = Harness::new(yaml, None, 600.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Breached);
  let rto = outcome.timeline.rto_achieved.unwrap();
  assert!(rto >= 2 * MIN - Duration::from_secs(1), "rto {rto:?}");
  // The 3-minute non-recovery step ends at ≥ 5m; RTO stops at the recovery step's end.
  assert!(rto < 4 * MIN, "rto {rto:?} counted the non-recovery step");
  assert!(span(&outcome, "notify").ended.unwrap() >= 5 * MIN - Duration::from_secs(1));
  assert_eq!(outcome.timeline.rto_met(), Some(false));
  let records = h.journal();
  assert!(matches!(
    records.last().map(|r| &r.event),
    Some(Event::RunFinished {
      status: RunStatus::Breached,
      rto_achieved_ms: Some(_),
      ..
    })
  ));
}

#[tokio::test]
async fn meeting_the_rto_succeeds() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: rto }
objectives: { rto: 10m }
steps:
  - id: recover
    action: wait.sleep
    with: { duration: 2m }
"#;
  let h = Harness::new(yaml, None, 600.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(outcome.timeline.rto_met(), Some(true));
}

#[tokio::test(start_paused = true)]
async fn rpo_achieved_is_the_replica_lag_at_promotion() {
  let h = Harness::new(PROMOTE_YAML, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(outcome.timeline.rpo_achieved, Some(Duration::from_secs(4)));
  assert_eq!(outcome.timeline.rpo_met(), Some(true));
  assert_eq!(
    span(&outcome, "promote")
      .outputs
      .get("data_loss_seconds")
      .map(String::as_str),
    Some("4")
  );
  let records = h.journal();
  assert!(matches!(
    records.last().map(|r| &r.event),
    Some(Event::RunFinished {
      rpo_achieved_ms: Some(4000),
      ..
    })
  ));
}

#[tokio::test(start_paused = true)]
async fn missing_the_rpo_is_breached() {
  // 4s of lag against a 2s RPO, promoted anyway with accept_data_loss.
  let yaml = PROMOTE_YAML.replace("rpo: 5m", "rpo: 2s");
  let mut h = Harness::new(&yaml, None, 1.0);
  h.options.accept_data_loss = true;
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Breached);
  assert_eq!(outcome.timeline.rpo_met(), Some(false));
}

// --- 9. when: ---------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_false_when_skips_the_step_and_its_dependents() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: when }
params:
  enabled: { type: bool, default: false }
steps:
  - id: gated
    action: wait.sleep
    when: "${{ params.enabled }}"
    with: { duration: 1m }
  - id: dependent
    action: wait.sleep
    needs: [gated]
    with: { duration: 1m }
  - id: independent
    action: wait.sleep
    with: { duration: 10s }
"#;
  let h = Harness::new(yaml, None, 1.0);
  let begin = Instant::now();
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert!(begin.elapsed() < MIN);
  assert_eq!(span(&outcome, "gated").outcome, "skipped");
  assert_eq!(span(&outcome, "dependent").outcome, "skipped");
  assert_eq!(span(&outcome, "independent").outcome, "succeeded");
  let records = h.journal();
  assert!(started(&records, "gated").is_none());
  assert!(started(&records, "dependent").is_none());
}

// --- Signals ----------------------------------------------------------------------------------

/// A caller whose signal sender is gone (e.g. the handler could not be installed) must not make
/// the scheduler spin on a closed channel. Real time at ×600: 10 minutes is 1 s, run on a
/// single-threaded runtime in its own thread so that thread's CPU time is the engine's alone.
#[test]
fn a_closed_signal_channel_is_not_an_interrupt_and_does_not_spin() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: closed }
steps:
  - id: wait
    action: wait.sleep
    timeout: 30m
    with: { duration: 10m }
"#;
  let (status, cpu) = std::thread::spawn(move || {
    let runtime = tokio::runtime::Builder::new_current_thread()
      .enable_all()
      .build()
      .unwrap();
    runtime.block_on(async {
      let h = Harness::new(yaml, None, 600.0);
      let (tx, rx) = watch::channel(0u32);
      drop(tx);
      let before = thread_cpu();
      let outcome = tokio::time::timeout(Duration::from_secs(20), h.start_with(rx))
        .await
        .expect("the run did not end");
      (outcome.status, thread_cpu() - before)
    })
  })
  .join()
  .unwrap();
  assert_eq!(status, RunStatus::Succeeded);
  // Waiting 1 s must not burn a core for that second.
  assert!(
    cpu < Duration::from_millis(300),
    "busy loop: {cpu:?} of CPU"
  );
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
  let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
  let fields: Vec<&str> = stat
    .rsplit(')')
    .next()
    .unwrap()
    .split_whitespace()
    .collect();
  // After the command name: state is field 0; utime and stime are fields 11 and 12 (ticks).
  let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
  Duration::from_millis(ticks * 10)
}

// --- Threads ----------------------------------------------------------------------------------

/// Hundreds of steps journalling at once share fsyncs without each holding a thread while it
/// waits for the disk. (They used to: tokio replaced every blocked worker, a 720-step fleet ran
/// on ~190 threads, and their malloc arenas were most of its peak RSS.) The runtime's threads
/// are told apart from the test harness's by their name.
#[test]
fn steps_waiting_for_the_journal_do_not_hold_threads() {
  const NAME: &str = "journal-fsyncs";
  let steps: String = (0..300)
    .map(|i| format!("  - {{ id: s{i}, action: wait.sleep, with: {{ duration: 2s }} }}\n"))
    .collect();
  let yaml =
    format!("apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: wide }}\nsteps:\n{steps}");
  let runtime = tokio::runtime::Builder::new_multi_thread()
    .worker_threads(2)
    .thread_name(NAME)
    .enable_all()
    .build()
    .unwrap();
  let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
  let sampler = {
    let done = done.clone();
    std::thread::spawn(move || {
      let mut most = 0;
      while !done.load(Ordering::Relaxed) {
        let named = std::fs::read_dir("/proc/self/task")
          .unwrap()
          .flatten()
          .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
              .is_ok_and(|comm| comm.trim_end() == NAME)
          })
          .count();
        most = most.max(named);
        std::thread::sleep(Duration::from_millis(1));
      }
      most
    })
  };
  let status = runtime.block_on(async {
    // ×1000: each step sleeps 2 ms, so the 600 records of the run are written all at once.
    let mut h = Harness::new(&yaml, None, 1000.0);
    h.options.max_parallel = 1000;
    h.start().await.status
  });
  done.store(true, Ordering::Relaxed);
  let most = sampler.join().unwrap();
  assert_eq!(status, RunStatus::Succeeded);
  // Two workers, the blocking thread of the fsync in progress, and slack for one a worker
  // handed over.
  assert!(most <= 5, "{most} runtime threads");
}

// --- A step that ends abnormally ---------------------------------------------------------------

/// A promotion (step `id`), a step that needs it, and an always-step that needs that one.
fn crash_yaml(id: &str) -> String {
  format!(
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: crash }}
steps:
  - id: {id}
    action: rds.promote_replica
    with: {{ region: us-west-2, instance: app-db-replica }}
    timeout: 20m
  - id: after
    action: wait.sleep
    needs: [{id}]
    with: {{ duration: 10s }}
  - id: cleanup
    action: wait.sleep
    needs: [after]
    always: true
    with: {{ duration: 1s }}
"#
  )
}

const POINTS: [crash_hook::Point; 3] = [
  crash_hook::Point::Start,
  crash_hook::Point::Apply,
  crash_hook::Point::Verify,
];

#[tokio::test(start_paused = true)]
async fn a_step_that_panics_fails_the_run_and_always_steps_still_run() {
  for (n, point) in POINTS.into_iter().enumerate() {
    let id = format!("panics-{n}");
    crash_hook::arm(&id, point);
    let h = Harness::new(&crash_yaml(&id), None, 1.0);
    let outcome = h.start().await;
    assert_eq!(outcome.status, RunStatus::Failed, "{point:?}");
    assert_eq!(outcome.timeline.failed_step.as_deref(), Some(id.as_str()));
    assert_eq!(span(&outcome, &id).outcome, "failed", "{point:?}");
    assert_eq!(span(&outcome, "cleanup").outcome, "succeeded", "{point:?}");
    let records = h.journal();
    assert!(
      started(&records, "after").is_none(),
      "{point:?}: a later step started"
    );
    let failed = failures(&records, &id);
    assert_eq!(failed.len(), 1, "{point:?}: {failed:?}");
    let (error, will_retry, _) = failed[0];
    assert!(!will_retry);
    assert!(!error.retryable);
    assert!(
      error
        .message
        .starts_with("internal error: the step's task panicked")
        && error.message.contains("test-only panic"),
      "{point:?}: {}",
      error.message
    );
    assert!(matches!(
      records.last().map(|r| &r.event),
      Some(Event::RunFinished {
        status: RunStatus::Failed,
        failed_step: Some(step),
        ..
      }) if *step == id
    ));
  }
}

#[tokio::test(start_paused = true)]
async fn a_run_whose_step_panicked_resumes_to_completion_applying_once() {
  for (n, point) in POINTS.into_iter().enumerate() {
    let id = format!("resumes-{n}");
    crash_hook::arm(&id, point);
    let h = Harness::new(&crash_yaml(&id), None, 1.0);
    assert_eq!(h.start().await.status, RunStatus::Failed, "{point:?}");
    let outcome = h.resume().await;
    assert_eq!(outcome.status, RunStatus::Succeeded, "{point:?}");
    assert_eq!(span(&outcome, &id).outcome, "succeeded", "{point:?}");
    assert_eq!(span(&outcome, "after").outcome, "succeeded", "{point:?}");
    assert_eq!(
      h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name),
      1,
      "{point:?}"
    );
  }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_always_step_fails_the_run() {
  crash_hook::arm("cleanup-panics", crash_hook::Point::Start);
  let yaml = crash_yaml("promote").replace("id: cleanup", "id: cleanup-panics");
  let h = Harness::new(&yaml, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  assert_eq!(span(&outcome, "promote").outcome, "succeeded");
  assert_eq!(span(&outcome, "cleanup-panics").outcome, "failed");
  assert_eq!(
    outcome.timeline.failed_step.as_deref(),
    Some("cleanup-panics")
  );
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_an_on_failure_continue_step_still_fails_the_run() {
  crash_hook::arm("continues", crash_hook::Point::Start);
  let yaml = crash_yaml("continues").replace(
    "    timeout: 20m\n",
    "    timeout: 20m\n    on_failure: continue\n",
  );
  let h = Harness::new(&yaml, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  assert_eq!(span(&outcome, "continues").outcome, "failed");
  assert!(
    started(&h.journal(), "after").is_none(),
    "a later step started"
  );
  assert_eq!(span(&outcome, "cleanup").outcome, "succeeded");
}

/// A run rolled back after a step panicked, then resumed: the rolled-back step runs again (its
/// change was undone), so the resumed run completes the failover instead of retrying the failed
/// step against a world whose earlier changes are gone.
#[tokio::test(start_paused = true)]
async fn resume_after_a_rollback_runs_the_rolled_back_steps_again() {
  crash_hook::arm("promote-rolls-back", crash_hook::Point::Start);
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: rolls-back }
steps:
  - id: scale
    action: ecs.scale_service
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 2 }
    rollback:
      action: ecs.scale_service
      with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 0 }
  - id: promote-rolls-back
    action: rds.promote_replica
    needs: [scale]
    with: { region: us-west-2, instance: app-db-replica }
    on_failure: rollback
"#;
  let h = Harness::new(yaml, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  assert_eq!(outcome.timeline.rollbacks[0].outcome, "rolled_back");
  assert_eq!(h.standby_desired_count().await, 0);
  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(span(&outcome, "scale").outcome, "succeeded");
  assert_eq!(
    h.standby_desired_count().await,
    2,
    "the rolled-back scale-up was not redone"
  );
  assert_eq!(h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name), 1);
}

/// A rollback whose task panics: the other rollbacks and the always-steps still run, the run
/// ends failed, and the journal says why.
#[tokio::test(start_paused = true)]
async fn a_panicking_rollback_fails_its_step_and_the_run_goes_on() {
  crash_hook::arm("undo-panics", crash_hook::Point::Rollback);
  crash_hook::arm("promote-then-undo", crash_hook::Point::Start);
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: undo-panics }
steps:
  - id: scale
    action: ecs.scale_service
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 2 }
    rollback:
      action: ecs.scale_service
      with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 0 }
  - id: undo-panics
    action: ecs.scale_service
    needs: [scale]
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 3 }
    rollback:
      action: ecs.scale_service
      with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 2 }
  - id: promote-then-undo
    action: rds.promote_replica
    needs: [undo-panics]
    with: { region: us-west-2, instance: app-db-replica }
    on_failure: rollback
  - id: cleanup
    action: wait.sleep
    needs: [promote-then-undo]
    always: true
    with: { duration: 1s }
"#;
  let h = Harness::new(yaml, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  assert_eq!(span(&outcome, "cleanup").outcome, "succeeded");
  let records = h.journal();
  let rollback_failure = records.iter().find_map(|record| match &record.event {
    Event::StepFailed {
      step,
      phase: Phase::Rollback,
      error,
      ..
    } if step == "undo-panics" => Some(error.message.clone()),
    _ => None,
  });
  assert!(
    rollback_failure
      .as_deref()
      .is_some_and(|message| message.starts_with("internal error: the step's task panicked")),
    "{rollback_failure:?}"
  );
  // The older step's rollback still ran.
  assert_eq!(h.standby_desired_count().await, 0);
}
// --- Mutation fence ----------------------------------------------------------------------------

const FENCED_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: fenced }
steps:
  - id: long
    action: wait.sleep
    timeout: 2h
    with: { duration: 1h }
  - id: scale
    action: ecs.scale_service
    needs: [long]
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 2 }
  - id: cleanup
    action: ecs.scale_service
    needs: [scale]
    always: true
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 0 }
"#;

#[tokio::test(start_paused = true)]
async fn a_lost_lock_stops_the_run_before_any_further_mutating_call_always_steps_included() {
  let h = Harness::new(FENCED_YAML, None, 1.0);
  let cloud = h.sim.cloud();
  let fence = cloud.fence.clone();
  tokio::spawn(async move {
    tokio::time::sleep(2 * MIN).await;
    fence.close(FenceReason::LockLost("it is now held by run thief".into()));
  });
  let (_tx, rx) = watch::channel(0u32);
  let begin = Instant::now();
  let result = start(
    h.plan.clone(),
    cloud,
    Journal::create(&h.journal_path()).unwrap(),
    h.options.clone(),
    Operator {
      observer: h.observer.clone(),
      approver: h.approver.clone(),
      signals: rx,
    },
  )
  .await;
  let err = result.expect_err("a fenced run is an error");
  assert!(
    matches!(
      &err,
      EngineError::Fenced {
        reason: FenceReason::LockLost(_),
        ..
      }
    ),
    "{err:?}"
  );
  assert!(err.to_string().contains("drctl resume run-1"), "{err}");
  assert!(begin.elapsed() < 3 * MIN, "the wait was not cut short");
  assert_eq!(
    h.ops(crate::cloud::ops::ecs::UPDATE_SERVICE.name),
    0,
    "no mutating call after the loss"
  );
  let records = h.journal();
  assert!(started(&records, "scale").is_none());
  assert!(
    started(&records, "cleanup").is_none(),
    "the always-step ran"
  );
  assert!(matches!(
    records.last().map(|r| &r.event),
    Some(Event::LockLost { reason, .. }) if reason.contains("thief")
  ));
  assert!(!records
    .iter()
    .any(|r| matches!(r.event, Event::RunFinished { .. })));

  // Resumable once the other holder is done.
  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded, "{:#?}", h.journal());
  assert_eq!(h.standby_desired_count().await, 0);
}

#[tokio::test(start_paused = true)]
async fn an_effect_is_not_applied_once_the_fence_is_closed() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: fenced }
steps:
  - id: scale
    action: ecs.scale_service
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 2 }
"#;
  let h = Harness::new(yaml, None, 1.0);
  let cloud = h.sim.cloud();
  // A lease that ran out before the run began: the first check closes the fence.
  cloud.fence.hold_lease_until(Instant::now());
  let (_tx, rx) = watch::channel(0u32);
  let err = start(
    h.plan.clone(),
    cloud,
    Journal::create(&h.journal_path()).unwrap(),
    h.options.clone(),
    Operator {
      observer: h.observer.clone(),
      approver: h.approver.clone(),
      signals: rx,
    },
  )
  .await
  .expect_err("a fenced run is an error");
  assert!(
    matches!(
      &err,
      EngineError::Fenced {
        reason: FenceReason::LeaseExpired,
        ..
      }
    ),
    "{err:?}"
  );
  assert_eq!(h.ops(crate::cloud::ops::ecs::UPDATE_SERVICE.name), 0);
  let records = h.journal();
  let failure = failures(&records, "scale");
  assert!(
    failure[0].0.message.contains("not applied"),
    "{:?}",
    failure
  );
}

/// A run "killed" by dropping its future leaves its aborted step tasks for the runtime to drop,
/// and with them the journal's file and its writer's `flock`: let them go, as a killed
/// process's descriptors go, before the journal is reopened.
async fn let_the_killed_run_go() {
  for _ in 0..100 {
    tokio::task::yield_now().await;
  }
}

// --- honest RPO -------------------------------------------------------------------------------

/// The built-in world with the replica's source region (us-east-1) in outage.
fn source_down_world() -> String {
  crate::cloud::sim::BUILTIN_WORLD.replace("outages: []", "outages: [us-east-1]")
}

/// With the source region down the replica's lag is unknown (ReplicaLag -1). The promotion
/// guard used to read that as 0s and promote with "RPO met"; it must fail closed.
#[tokio::test(start_paused = true)]
async fn promoting_with_the_source_region_down_fails_closed() {
  let h = Harness::new(PROMOTE_YAML, Some(&source_down_world()), 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed, "promoted on unknown lag");
  assert_eq!(h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name), 0);
  let error = span(&outcome, "promote").error.clone().unwrap();
  assert!(
    error.message.contains("replication stopped at"),
    "{}",
    error.message
  );
  assert!(!error.retryable, "an unknown lag is not retried");
}

/// Accepting data loss promotes anyway, and the RPO achieved is then unknown with its basis:
/// never "met", so the run is breached (exit 3), not succeeded.
#[tokio::test(start_paused = true)]
async fn accepted_unknown_lag_reports_rpo_unknown_and_breached() {
  let mut h = Harness::new(PROMOTE_YAML, Some(&source_down_world()), 1.0);
  h.options.accept_data_loss = true;
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Breached);
  assert_eq!(h.ops(crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name), 1);
  assert_eq!(outcome.timeline.rpo_met(), Some(false));
  assert_eq!(outcome.timeline.rpo_achieved, None);
  let basis = outcome.timeline.rpo_unknown.clone().unwrap();
  assert!(basis.contains("replication stopped at"), "{basis}");
  assert!(basis.contains("last measured lag 4s"), "{basis}");
  assert_eq!(
    span(&outcome, "promote")
      .outputs
      .get("data_loss_seconds")
      .map(String::as_str),
    Some(""),
    "an unknown loss is not 0"
  );
  let report = crate::report::Report::from_timeline(
    &outcome.timeline,
    crate::report::ApiCalls::not_recorded(),
  );
  let rpo = report.objective("RPO").unwrap();
  assert_eq!(rpo.verdict, crate::report::Verdict::Unknown);
  for format in [
    crate::report::Format::Json,
    crate::report::Format::Markdown,
    crate::report::Format::Junit,
    crate::report::Format::Html,
  ] {
    let text = crate::report::render(&report, format);
    assert!(
      text.contains("replication stopped at"),
      "{format:?}: {text}"
    );
  }
}

/// A journal written before `data_loss_unknown` existed still reports its measured RPO.
#[test]
fn an_old_journal_without_the_unknown_field_still_reports_its_rpo() {
  let line = r#"{"seq":3,"ts":"2026-11-22T10:00:00Z","event":"step_succeeded","step":"promote","attempt":1,"changed":true,"outputs":{},"data_loss_ms":4000,"summary":"ok"}"#;
  let record: Record = serde_json::from_str(line).unwrap();
  let Event::StepSucceeded {
    data_loss_ms,
    data_loss_unknown,
    ..
  } = record.event
  else {
    panic!("{record:?}");
  };
  assert_eq!(data_loss_ms, Some(4000));
  assert_eq!(data_loss_unknown, None);
}

const AURORA_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: aurora }
objectives: { rpo: 5m }
steps:
  - id: global
    action: rds.failover_global_cluster
    with: { global_cluster: app-global, target_cluster_arn: "arn:aws:rds:us-west-2:123456789012:cluster:app-aurora-usw2" }
    timeout: 20m
"#;

/// The Aurora failover measures the secondary's AuroraGlobalDBRPOLag: the RPO achieved while
/// the primary's region is up, unknown (and refused unless accepted) once it is down.
#[tokio::test(start_paused = true)]
async fn aurora_failover_uses_the_global_rpo_lag() {
  let h = Harness::new(AURORA_YAML, None, 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert_eq!(outcome.timeline.rpo_achieved, Some(Duration::from_secs(1)));

  let h = Harness::new(AURORA_YAML, Some(&source_down_world()), 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  assert_eq!(
    h.ops(crate::cloud::ops::rds::FAILOVER_GLOBAL_CLUSTER.name),
    0
  );

  let mut h = Harness::new(AURORA_YAML, Some(&source_down_world()), 1.0);
  h.options.accept_data_loss = true;
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Breached);
  assert_eq!(
    h.ops(crate::cloud::ops::rds::FAILOVER_GLOBAL_CLUSTER.name),
    1
  );
  let basis = outcome.timeline.rpo_unknown.clone().unwrap();
  assert!(basis.contains("replication stopped at"), "{basis}");
}

// --- run control: approvals and cancels from other processes ---------------------------------

mod run_control {
  use super::*;
  use crate::state::{
    control::{self, ControlAction, ControlRequest, Identity, IdentityVia},
    Store,
  };

  fn person(name: &str, via: IdentityVia) -> Identity {
    Identity {
      name: name.into(),
      via,
    }
  }

  fn request(action: ControlAction, by: Identity) -> ControlRequest {
    ControlRequest {
      action,
      by,
      reason: Some("checked the replica".into()),
      at: chrono::Utc::now(),
    }
  }

  fn approve(by: Identity) -> ControlRequest {
    request(
      ControlAction::Approve {
        step: "gate".into(),
      },
      by,
    )
  }

  impl Harness {
    fn waiting(mut self) -> Harness {
      self.options.assume_yes = false;
      self
    }

    fn store(&self) -> Store {
      Store::new(self.dir.path())
    }

    fn submit(&self, request: &ControlRequest) -> Result<PathBuf, control::ControlError> {
      control::submit(&self.store(), "run-1", request)
    }

    fn count(&self, matches: impl Fn(&Event) -> bool) -> usize {
      journal::read(&self.journal_path())
        .map(|records| records.iter().filter(|r| matches(&r.event)).count())
        .unwrap_or(0)
    }

    /// Wait (in paused time) until the journal holds `n` records that match.
    async fn until(&self, n: usize, matches: impl Fn(&Event) -> bool) {
      for _ in 0..10_000 {
        if self.count(&matches) >= n {
          return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
      }
      panic!("the journal never got there: {:#?}", self.journal());
    }
  }

  fn requested(event: &Event) -> bool {
    matches!(event, Event::ApprovalRequested { .. })
  }

  #[tokio::test(start_paused = true)]
  async fn without_a_terminal_a_step_waits_for_an_approve_request() {
    let h = Harness::new(APPROVAL_YAML, None, 1.0).waiting();
    let approver = async {
      h.until(1, requested).await;
      // Nothing happens while nobody answers.
      tokio::time::sleep(Duration::from_secs(3600)).await;
      assert_eq!(h.count(|e| matches!(e, Event::StepStarted { .. })), 0);
      h.submit(&approve(person("bob", IdentityVia::Token)))
        .unwrap();
    };
    let (outcome, ()) = tokio::join!(h.start(), approver);
    assert_eq!(outcome.status, RunStatus::Succeeded);
    let granted: Vec<_> = h
      .journal()
      .into_iter()
      .filter_map(|record| match record.event {
        Event::ApprovalGranted {
          by,
          via,
          reason,
          nonce,
          ..
        } => Some((by, via, reason, nonce.is_some())),
        _ => None,
      })
      .collect();
    assert_eq!(
      granted,
      [(
        "bob".to_string(),
        IdentityVia::Token,
        Some("checked the replica".to_string()),
        true
      )]
    );
    let decision = &outcome.timeline.approvals[0];
    assert_eq!(decision.decision, crate::state::Decision::Granted);
    assert_eq!(decision.by.as_deref(), Some("bob"));
  }

  #[tokio::test(start_paused = true)]
  async fn a_deny_request_fails_the_step_naming_who_and_why() {
    let h = Harness::new(APPROVAL_YAML, None, 1.0).waiting();
    let denier = async {
      h.until(1, requested).await;
      h.submit(&request(
        ControlAction::Deny {
          step: "gate".into(),
        },
        person("carol", IdentityVia::ProxyHeader),
      ))
      .unwrap();
    };
    let (outcome, ()) = tokio::join!(h.start(), denier);
    assert_eq!(outcome.status, RunStatus::Failed);
    let records = h.journal();
    assert_eq!(
      failures(&records, "gate")[0].0.message,
      "step `gate` was denied by carol: checked the replica"
    );
  }

  const CLEANUP_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: approval }
steps:
  - id: gate
    action: wait.sleep
    approval: { prompt: "Go?" }
    with: { duration: 1s }
  - id: cleanup
    action: wait.sleep
    needs: [gate]
    always: true
    with: { duration: 1s }
"#;

  #[tokio::test(start_paused = true)]
  async fn a_cancel_request_stops_the_run_like_an_interrupt_and_resume_waits_again() {
    let h = Harness::new(CLEANUP_YAML, None, 1.0).waiting();
    let canceller = async {
      h.until(1, requested).await;
      h.submit(&request(
        ControlAction::Cancel,
        person("dave", IdentityVia::OsUser),
      ))
      .unwrap();
    };
    let (outcome, ()) = tokio::join!(h.start(), canceller);
    assert_eq!(outcome.status, RunStatus::Interrupted);
    assert_eq!(span(&outcome, "cleanup").outcome, "succeeded");
    let records = h.journal();
    assert!(records.iter().any(|record| matches!(
      &record.event,
      Event::RunCancelRequested { by, .. } if by == "dave"
    )));
    assert!(records.iter().any(|record| matches!(
      &record.event,
      Event::RunInterrupted { signal } if signal == "cancelled by dave"
    )));
    // Still waiting: an approval given while the run is stopped releases it on resume.
    h.submit(&approve(person("bob", IdentityVia::OsUser)))
      .unwrap();
    let outcome = h.resume().await;
    assert_eq!(outcome.status, RunStatus::Succeeded);
    assert_eq!(
      h.count(requested),
      1,
      "the resumed run continued the same wait"
    );
    assert_eq!(
      h.count(|e| matches!(e, Event::RunCancelRequested { .. })),
      1
    );
  }

  #[tokio::test(start_paused = true)]
  async fn a_run_killed_while_waiting_waits_again_and_takes_the_approval_given_meanwhile() {
    let h = Harness::new(APPROVAL_YAML, None, 1.0).waiting();
    // The run is killed (its future dropped) while it waits.
    let killed = tokio::time::timeout(Duration::from_secs(60), h.start()).await;
    assert!(killed.is_err(), "the run was still waiting");
    assert_eq!(h.count(requested), 1);
    let timeline = Timeline::from_records(&h.journal()).unwrap();
    assert_eq!(timeline.steps[0].outcome, "awaiting_approval");
    h.submit(&approve(person("bob", IdentityVia::OsUser)))
      .unwrap();
    let outcome = h.resume().await;
    assert_eq!(outcome.status, RunStatus::Succeeded);
    assert_eq!(h.count(requested), 1);
    assert_eq!(h.count(|e| matches!(e, Event::ApprovalGranted { .. })), 1);
  }

  #[tokio::test(start_paused = true)]
  async fn an_approval_granted_just_before_a_crash_stands_on_resume() {
    let h = Harness::new(APPROVAL_YAML, None, 1.0).waiting();
    let granted = |e: &Event| matches!(e, Event::ApprovalGranted { .. });
    let approver = async {
      h.until(1, requested).await;
      h.submit(&approve(person("bob", IdentityVia::OsUser)))
        .unwrap();
      h.until(1, granted).await;
    };
    // Killed once the grant is journalled, before the step ends.
    tokio::select! {
      _ = h.start() => panic!("the run ended before it was killed"),
      () = approver => {}
    }
    let outcome = tokio::time::timeout(Duration::from_secs(3600), h.resume())
      .await
      .expect("the resumed run asked again and waited instead of running the approved step");
    assert_eq!(outcome.status, RunStatus::Succeeded);
    assert_eq!(h.count(requested), 1, "asked again after the crash");
    assert_eq!(h.count(granted), 1);
  }

  const TIMEOUT_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: approval }
steps:
  - id: gate
    action: wait.sleep
    approval: { prompt: "Go?", timeout: 30m }
    on_failure: continue
    with: { duration: 1s }
  - id: after
    action: wait.sleep
    needs: [gate]
    with: { duration: 1s }
"#;

  #[tokio::test(start_paused = true)]
  async fn an_unanswered_approval_expires_and_the_step_follows_its_on_failure() {
    let h = Harness::new(TIMEOUT_YAML, None, 1.0).waiting();
    let started = Instant::now();
    let outcome = h.start().await;
    let waited = started.elapsed();
    assert!(
      waited >= 30 * MIN && waited < 31 * MIN,
      "expired after {waited:?}"
    );
    assert_eq!(span(&outcome, "gate").outcome, "failed");
    assert_eq!(span(&outcome, "after").outcome, "succeeded");
    let records = h.journal();
    assert_eq!(
      failures(&records, "gate")[0].0.message,
      "step `gate` was not approved within 30m (approval.timeout)"
    );
    assert_eq!(
      outcome.timeline.approvals[0].decision,
      crate::state::Decision::Expired
    );
  }

  const TWO_PERSON_YAML: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: approval }
steps:
  - id: gate
    action: wait.sleep
    approval: { prompt: "Go?", distinct_from_starter: true }
    with: { duration: 1s }
"#;

  #[tokio::test(start_paused = true)]
  async fn the_two_person_rule_refuses_the_starter_and_a_shared_token_and_keeps_waiting() {
    let h = Harness::new(TWO_PERSON_YAML, None, 1.0).waiting();
    let starter = crate::state::os_user();
    let refused = |e: &Event| matches!(e, Event::ApprovalRefused { .. });
    let approvers = async {
      h.until(1, requested).await;
      h.submit(&approve(person(&starter, IdentityVia::OsUser)))
        .unwrap();
      h.until(1, refused).await;
      h.submit(&approve(person("team", IdentityVia::SharedToken)))
        .unwrap();
      h.until(2, refused).await;
      assert_eq!(h.count(|e| matches!(e, Event::StepStarted { .. })), 0);
      h.submit(&approve(person("bob", IdentityVia::Token)))
        .unwrap();
    };
    let (outcome, ()) = tokio::join!(h.start(), approvers);
    assert_eq!(outcome.status, RunStatus::Succeeded);
    let decisions: Vec<_> = outcome
      .timeline
      .approvals
      .iter()
      .map(|d| (d.decision, d.by.clone().unwrap_or_default()))
      .collect();
    use crate::state::Decision::{Granted, Refused};
    assert_eq!(
      decisions,
      [
        (Refused, starter.clone()),
        (Refused, "team".into()),
        (Granted, "bob".into())
      ]
    );
  }

  #[tokio::test(start_paused = true)]
  async fn a_terminal_approval_by_the_starter_is_refused_under_the_two_person_rule() {
    let mut h = Harness::new(TWO_PERSON_YAML, None, 1.0).waiting();
    h.approver = Stub::new(Ok(true));
    let approvers = async {
      h.until(1, |e| matches!(e, Event::ApprovalRefused { .. }))
        .await;
      h.submit(&approve(person("bob", IdentityVia::OsUser)))
        .unwrap();
    };
    let (outcome, ()) = tokio::join!(h.start(), approvers);
    assert_eq!(outcome.status, RunStatus::Succeeded);
    assert_eq!(outcome.timeline.approvals.len(), 2);
  }

  #[tokio::test(start_paused = true)]
  async fn requests_are_applied_once_and_a_stale_one_never_answers_a_later_wait() {
    let h = Harness::new(APPROVAL_YAML, None, 1.0).waiting();
    let denier = async {
      h.until(1, requested).await;
      h.submit(&request(
        ControlAction::Deny {
          step: "gate".into(),
        },
        person("carol", IdentityVia::OsUser),
      ))
      .unwrap();
    };
    let (outcome, ()) = tokio::join!(h.start(), denier);
    assert_eq!(outcome.status, RunStatus::Failed);
    // A stale approval aimed at the denied wait, planted by hand (submit refuses it now).
    let requests = control::requests_dir(&h.store().run_dir("run-1"));
    let denied = std::fs::read_dir(&requests)
      .unwrap()
      .next()
      .unwrap()
      .unwrap();
    let text = std::fs::read_to_string(denied.path())
      .unwrap()
      .replace(r#""action":"deny""#, r#""action":"approve""#);
    std::fs::write(requests.join("0000000000000-stale.json"), text).unwrap();
    // The resumed run waits anew; neither old request answers it, a new one does.
    let approver = async {
      h.until(2, requested).await;
      tokio::time::sleep(Duration::from_secs(5)).await;
      assert_eq!(h.count(|e| matches!(e, Event::ApprovalDenied { .. })), 1);
      h.submit(&approve(person("bob", IdentityVia::OsUser)))
        .unwrap();
    };
    let (outcome, ()) = tokio::join!(h.resume(), approver);
    assert_eq!(outcome.status, RunStatus::Succeeded);
    let ignored: Vec<String> = h
      .journal()
      .into_iter()
      .filter_map(|record| match record.event {
        Event::ControlIgnored { nonce, why } => Some(format!("{nonce}: {why}")),
        _ => None,
      })
      .collect();
    assert_eq!(
      ignored,
      ["0000000000000-stale: the wait of step `gate` it answers was answered already"]
    );
    assert_eq!(h.count(|e| matches!(e, Event::ApprovalGranted { .. })), 1);
  }
}

// --- recovered_when ---------------------------------------------------------------------------

/// The built-in world with the primary region in outage, for good (`until: None`) or until a
/// modelled time: its endpoints answer 503 until then.
fn primary_outage_world(until: Option<&str>) -> String {
  let outage = match until {
    Some(until) => format!("outages: [{{ region: us-east-1, until: {until} }}]"),
    None => "outages: [us-east-1]".to_string(),
  };
  crate::cloud::sim::BUILTIN_WORLD.replace("outages: []", &outage)
}

/// A runbook whose one recovery step takes a minute and whose recovery is the primary's URL
/// answering: a probe kept out of the run (`when: false`), the recovery condition only.
fn recovered_when_yaml(within: &str) -> String {
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

fn recovery_records(records: &[Record]) -> Vec<&Event> {
  records
    .iter()
    .map(|record| &record.event)
    .filter(|event| {
      matches!(
        event,
        Event::RecoveryWaitStarted { .. } | Event::Recovered { .. } | Event::NotRecovered { .. }
      )
    })
    .collect()
}

/// After the last step the run waits for its condition: the primary comes back at 5m, so the
/// run ends then, recovered, having evaluated the condition every 10 s of backend time.
#[tokio::test(start_paused = true)]
async fn recovery_is_awaited_after_the_last_step_until_the_condition_holds() {
  let world = primary_outage_world(Some("5m"));
  let h = Harness::new(&recovered_when_yaml("30m"), Some(&world), 1.0);
  let begin = Instant::now();
  let outcome = h.start().await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert!(
    took >= 5 * MIN,
    "ended before the primary answered: {took:?}"
  );
  assert!(took < 5 * MIN + Duration::from_secs(15), "took {took:?}");
  let records = h.journal();
  let events = recovery_records(&records);
  assert!(
    matches!(
      events.as_slice(),
      [
        Event::RecoveryWaitStarted { within_ms: 1_800_000, condition },
        Event::Recovered { checks, .. },
      ] if condition == "step `probe` passes" && (20..=30).contains(checks)
    ),
    "{events:?}"
  );
  // The wait comes after every step and before the end.
  let waited = position(&records, |e| matches!(e, Event::RecoveryWaitStarted { .. })).unwrap();
  assert!(succeeded(&records, "work").unwrap() < waited);
  assert!(matches!(
    records.last().map(|r| &r.event),
    Some(Event::RunFinished {
      status: RunStatus::Succeeded,
      ..
    })
  ));
  let recovery = outcome.timeline.recovery.as_ref().unwrap();
  assert_eq!(recovery.outcome, crate::state::RecoveryOutcome::Recovered);
  // The probe's `when: false` kept it out of the run; it still served as the condition.
  assert_eq!(span(&outcome, "probe").outcome, "skipped");
}

/// `recovered_when: { alarms }`: the run scales the standby to 3 at once; its targets are
/// healthy at 174s, and the standby's alarm (3 one-minute periods) is OK from the period end at
/// 180s. The run is recovered then, not when its step ended, and the condition names the alarms.
#[tokio::test(start_paused = true)]
async fn recovery_waits_for_the_alarms_to_be_ok_through_their_evaluation_periods() {
  let yaml = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: recovered-when-alarms }
params:
  target_region: { type: string, default: us-west-2 }
objectives:
  rto: 15m
  recovered_when:
    alarms: [app-standby-unhealthy]
    region: ${{ params.target_region }}
    within: 10m
steps:
  - id: scale
    action: ecs.scale_service
    with: { region: us-west-2, cluster: app-standby, service: api, desired_count: 3 }
"#;
  let world = crate::cloud::sim::BUILTIN_WORLD.to_string();
  let h = Harness::new(yaml, Some(&world), 1.0);
  let begin = Instant::now();
  let outcome = h.start().await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Succeeded);
  assert!(
    took >= Duration::from_secs(180),
    "recovered before the alarm's period ended: {took:?}"
  );
  assert!(took < Duration::from_secs(195), "took {took:?}");
  let records = h.journal();
  let events = recovery_records(&records);
  assert!(
    matches!(
      events.as_slice(),
      [
        Event::RecoveryWaitStarted { condition, .. },
        Event::Recovered { summary, .. },
      ] if condition == "alarms `app-standby-unhealthy` are OK in us-west-2"
        && summary == "1/1 alarms OK in us-west-2"
    ),
    "{events:?}"
  );
  let recovery = outcome.timeline.recovery.as_ref().unwrap();
  assert_eq!(recovery.outcome, crate::state::RecoveryOutcome::Recovered);
}

/// A condition that never holds ends the wait at its bound: not recovered, the RTO breached,
/// never a success.
#[tokio::test(start_paused = true)]
async fn recovery_that_never_comes_is_not_recovered_and_breaches_the_rto() {
  let world = primary_outage_world(None);
  let h = Harness::new(&recovered_when_yaml("2m"), Some(&world), 1.0);
  let begin = Instant::now();
  let outcome = h.start().await;
  let took = begin.elapsed();
  assert_eq!(outcome.status, RunStatus::Breached);
  assert!(took >= 3 * MIN, "the wait ended before its bound: {took:?}");
  assert!(took < 3 * MIN + Duration::from_secs(15), "took {took:?}");
  assert_eq!(outcome.timeline.rto_met(), Some(false));
  assert_eq!(outcome.timeline.rto_achieved, None);
  let records = h.journal();
  let events = recovery_records(&records);
  assert!(
    matches!(
      events.as_slice(),
      [
        Event::RecoveryWaitStarted { within_ms: 120_000, .. },
        Event::NotRecovered { last_error: Some(error), checks, .. },
      ] if error.contains("503") && *checks >= 2
    ),
    "{events:?}"
  );
}

/// A run that fails does not wait for recovery (it did not recover anything).
#[tokio::test(start_paused = true)]
async fn a_failed_run_does_not_wait_for_recovery() {
  let yaml = recovered_when_yaml("30m").replace(
    "    action: wait.sleep\n    with: { duration: 1m }",
    "    action: http.check\n    with: { url: \"https://api-use1.example.com/health\" }",
  );
  let world = primary_outage_world(None);
  let h = Harness::new(&yaml, Some(&world), 1.0);
  let outcome = h.start().await;
  assert_eq!(outcome.status, RunStatus::Failed);
  assert!(recovery_records(&h.journal()).is_empty());
  assert!(outcome.timeline.recovery.is_none());
}

/// An interrupt during the wait ends the run `interrupted`; the resumed run continues the same
/// wait (one `recovery_wait_started`, its bound counted from it) and runs no step again.
#[tokio::test(start_paused = true)]
async fn recovery_wait_interrupted_is_continued_by_resume_without_rerunning_a_step() {
  let world = primary_outage_world(Some("5m"));
  let h = Harness::new(&recovered_when_yaml("30m"), Some(&world), 1.0);
  let (tx, rx) = watch::channel(0u32);
  tokio::spawn(async move {
    tokio::time::sleep(3 * MIN).await;
    tx.send(1).unwrap();
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
  });
  let outcome = h.start_with(rx).await;
  assert_eq!(outcome.status, RunStatus::Interrupted);
  let before = h.journal();
  assert!(
    matches!(
      recovery_records(&before).as_slice(),
      [Event::RecoveryWaitStarted { .. }]
    ),
    "{before:?}"
  );
  let outcome = h.resume().await;
  assert_eq!(outcome.status, RunStatus::Succeeded);
  let records = h.journal();
  let after = &records[before.len()..];
  assert!(
    after.iter().all(|r| step_of(&r.event).is_none()),
    "a step ran again: {after:?}"
  );
  let events = recovery_records(&records);
  assert!(
    matches!(
      events.as_slice(),
      [Event::RecoveryWaitStarted { .. }, Event::Recovered { .. }]
    ),
    "{events:?}"
  );
}
