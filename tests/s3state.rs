//! The `s3://` state backend against moto: one lock for N racing runs, stale locks, journals
//! mirrored byte for byte, and a run that outlives its state bucket.

use std::time::Duration;

use drctl::{
  cloud::aws::StateStore,
  state::{LockError, LockHolder, LockStore, S3Location, S3State},
};

use crate::support::{
  moto::Moto,
  proxy::Proxy,
  s3::{cached_run_ids, create_bucket, runtime, s3_test, state, BUCKET, CACHE, STATE},
  signal, Test,
};

fn run_args(time_scale: &str) -> Vec<String> {
  [
    "run",
    "regional-failover",
    "-p",
    "target_region=us-west-2",
    "--sim",
    "--yes",
    "--time-scale",
    time_scale,
    "--state",
    STATE,
  ]
  .map(String::from)
  .to_vec()
}

/// The journal objects of a run in S3, in key order.
fn s3_records(moto: &Moto, run_id: &str) -> Vec<(String, String)> {
  let rt = runtime();
  let state = state(moto, &rt);
  let prefix = state.location.journal_prefix(run_id);
  let keys = rt.block_on(state.store.list(BUCKET, &prefix)).unwrap();
  keys
    .into_iter()
    .map(|key| {
      let (bytes, _) = rt.block_on(state.store.get(BUCKET, &key)).unwrap().unwrap();
      (key, String::from_utf8(bytes).unwrap())
    })
    .collect()
}

fn lock_object(moto: &Moto) -> Option<String> {
  let rt = runtime();
  let state = state(moto, &rt);
  rt.block_on(state.store.get(BUCKET, &state.location.lock_key("default")))
    .unwrap()
    .map(|(bytes, _)| String::from_utf8(bytes).unwrap())
}

fn local_journal(test: &Test, run_id: &str) -> String {
  std::fs::read_to_string(
    test
      .path()
      .join(CACHE)
      .join("runs")
      .join(run_id)
      .join("journal.jsonl"),
  )
  .unwrap()
}

/// The S3 copy of a run is the local journal, record for record, byte for byte, in order.
fn assert_mirrored(moto: &Moto, test: &Test, run_id: &str) {
  let local = local_journal(test, run_id);
  let remote = s3_records(moto, run_id);
  let lines: Vec<&str> = local.split_inclusive('\n').collect();
  assert_eq!(remote.len(), lines.len(), "records in S3 vs local");
  for (index, ((key, body), line)) in remote.iter().zip(&lines).enumerate() {
    assert!(
      key.ends_with(&format!("/journal/{:010}.json", index + 1)),
      "{key}"
    );
    assert_eq!(body, line, "record {}", index + 1);
  }
  let joined: String = remote.iter().map(|(_, body)| body.as_str()).collect();
  assert_eq!(joined, local);
}

#[test]
fn racing_runs_on_one_s3_lock_let_exactly_one_proceed() {
  let moto = Moto::start();
  create_bucket(&moto, BUCKET);
  let test = s3_test(&moto, &moto.endpoint);
  for n in [2, 4, 8, 16] {
    let before = cached_run_ids(&test);
    let children: Vec<_> = (0..n).map(|_| test.spawn(run_args("60"))).collect();
    let outputs: Vec<_> = children
      .into_iter()
      .map(|child| child.wait_with_output().unwrap())
      .collect();
    let codes: Vec<i32> = outputs
      .iter()
      .map(|output| output.status.code().unwrap_or(-1))
      .collect();
    let winners = codes.iter().filter(|code| **code == 0).count();
    let refused = codes.iter().filter(|code| **code == 4).count();
    let stderrs: Vec<String> = outputs
      .iter()
      .map(|output| String::from_utf8_lossy(&output.stderr).into_owned())
      .collect();
    assert_eq!(
      (winners, refused),
      (1, n - 1),
      "{n} runs: exit codes {codes:?}\n{}",
      stderrs.join("\n---\n")
    );
    let new: Vec<String> = cached_run_ids(&test)
      .into_iter()
      .filter(|id| !before.contains(id))
      .collect();
    assert_eq!(new.len(), 1, "only the winner left a run: {new:?}");
    let winner = &new[0];
    for (code, stderr) in codes.iter().zip(&stderrs) {
      if *code == 4 {
        assert!(
          stderr.contains(&format!("locked by run {winner}")),
          "{stderr}"
        );
        assert!(stderr.contains("host "), "{stderr}");
      }
    }
    assert!(lock_object(&moto).is_none(), "the winner released the lock");
    assert_mirrored(&moto, &test, winner);
  }
}

#[test]
fn a_killed_holder_leaves_a_stale_s3_lock_that_unlock_breaks() {
  let moto = Moto::start();
  create_bucket(&moto, BUCKET);
  let test = s3_test(&moto, &moto.endpoint);
  let mut first = test.spawn(run_args("20"));
  test.wait_for(
    Duration::from_secs(30),
    "the lock object and the run",
    || lock_object(&moto).is_some() && !cached_run_ids(&test).is_empty(),
  );
  signal(&first, "KILL");
  let _ = first.wait();
  let holder = cached_run_ids(&test).pop().unwrap();
  assert!(lock_object(&moto).unwrap().contains(&holder));

  let refused = test.run_args(run_args("20")).status(4);
  let stderr = refused.stderr();
  assert!(
    stderr.contains(&format!("locked by run {holder}")),
    "{stderr}"
  );
  assert!(stderr.contains("the lock is stale"), "{stderr}");
  assert!(stderr.contains("is gone"), "{stderr}");
  assert!(stderr.contains("drctl unlock default"), "{stderr}");

  let unlock = test
    .run_args(["unlock", "regional-failover", "--state", STATE])
    .status(0);
  assert!(
    unlock
      .stdout()
      .contains(&format!("was held by run {holder}")),
    "{}",
    unlock.stdout()
  );
  assert!(lock_object(&moto).is_none());
  let again = test
    .run_args(["unlock", "regional-failover", "--state", STATE])
    .status(0);
  assert!(again.stdout().contains("was not locked"));
}

#[test]
fn a_finished_runs_journal_is_in_s3_in_order_and_byte_identical() {
  let moto = Moto::start();
  create_bucket(&moto, BUCKET);
  let test = s3_test(&moto, &moto.endpoint);
  test.run_args(run_args("200")).status(0);
  let run_id = cached_run_ids(&test).pop().unwrap();
  assert_mirrored(&moto, &test, &run_id);
  assert!(lock_object(&moto).is_none());

  // Another operator, with an empty cache, sees the run through the bucket.
  let other = s3_test(&moto, &moto.endpoint);
  let runs = other.run_args(["runs", "--state", STATE]).status(0);
  assert!(runs.stdout().contains(&run_id), "{}", runs.stdout());
  assert!(runs.stdout().contains("succeeded"), "{}", runs.stdout());
  let status = other
    .run_args(["status", &run_id, "--state", STATE])
    .status(0);
  assert!(status.stdout().contains("succeeded"), "{}", status.stdout());
  assert_eq!(
    local_journal(&other, &run_id),
    local_journal(&test, &run_id)
  );

  // Sync is idempotent, and it notices an S3 record that differs from the local one.
  let sync = test
    .run_args(["state", "sync", &run_id, "--state", STATE])
    .status(0);
  assert!(sync.stdout().contains("in sync"), "{}", sync.stdout());
  let rt = runtime();
  let state = state(&moto, &rt);
  let key = state.location.record_key(&run_id, 2);
  rt.block_on(state.store.delete(BUCKET, &key)).unwrap();
  rt.block_on(state.store.put_if_absent(
    BUCKET,
    &key,
    b"{\"seq\":2,\"crc\":\"deadbeef\"}\n".to_vec(),
  ))
  .unwrap();
  let conflict = test.run_args(["state", "sync", "--state", STATE]).status(1);
  assert!(
    conflict.stdout().contains("CONFLICT seq 2: local crc"),
    "{}",
    conflict.stdout()
  );
  assert!(
    conflict.stdout().contains("S3 has crc deadbeef"),
    "{}",
    conflict.stdout()
  );
}

#[test]
fn a_run_outlives_its_state_bucket_and_sync_pushes_the_rest() {
  let moto = Moto::start();
  create_bucket(&moto, BUCKET);
  let proxy = Proxy::start(moto.port);
  let test = s3_test(&moto, &proxy.endpoint());
  let child = test.spawn(run_args("40"));
  test.wait_for(Duration::from_secs(30), "the first records in S3", || {
    cached_run_ids(&test)
      .pop()
      .is_some_and(|run_id| s3_records(&moto, &run_id).len() >= 2)
  });
  proxy.outage();
  let output = child.wait_with_output().unwrap();
  let stderr = String::from_utf8_lossy(&output.stderr);
  assert_eq!(output.status.code(), Some(0), "{stderr}");
  assert!(
    stderr.contains("cannot write the journal to the state bucket s3://drctl-state/team"),
    "{stderr}"
  );
  assert!(stderr.contains("drctl state sync"), "{stderr}");
  let run_id = cached_run_ids(&test).pop().unwrap();
  let unsynced = test
    .path()
    .join(CACHE)
    .join("runs")
    .join(&run_id)
    .join("s3-unsynced.json");
  assert!(unsynced.exists(), "the run recorded what is unsynced");
  let local_records = local_journal(&test, &run_id).lines().count();
  let in_s3 = s3_records(&moto, &run_id).len();
  assert!(in_s3 < local_records, "{in_s3} of {local_records} in S3");
  assert!(local_journal(&test, &run_id).contains("\"run_finished\""));

  proxy.restore();
  let sync = test.run_args(["state", "sync", "--state", STATE]).status(0);
  assert!(
    sync.stdout().contains(&format!(
      "run {run_id}: pushed {} record(s) (seq {}..{local_records}), {in_s3} already in S3",
      local_records - in_s3,
      in_s3 + 1
    )),
    "{}",
    sync.stdout()
  );
  // The lock the run could not release is released once its journal is safe.
  assert!(
    sync.stdout().contains(&format!(
      "released the lock of lock group `default` left by finished run {run_id} of `regional-failover`"
    )),
    "{}",
    sync.stdout()
  );
  assert!(lock_object(&moto).is_none());
  assert!(!unsynced.exists());
  assert_mirrored(&moto, &test, &run_id);
  let again = test
    .run_args(["state", "sync", &run_id, "--state", STATE])
    .status(0);
  assert!(
    again.stdout().contains(&format!(
      "run {run_id}: in sync ({local_records} record(s) verified)"
    )),
    "{}",
    again.stdout()
  );
}

fn holder(run_id: &str) -> LockHolder {
  LockHolder::this_process(run_id, "regional-failover", "default")
}

/// A holder on this host whose process is gone (a pid beyond pid_max).
fn dead_holder(run_id: &str) -> LockHolder {
  LockHolder {
    pid: 4_000_000,
    pid_start: None,
    ..holder(run_id)
  }
}

#[tokio::test]
async fn the_s3_lock_is_taken_over_on_resume_and_lost_when_overwritten() {
  let moto = Moto::start();
  create_bucket(&moto, BUCKET);
  let state = S3State {
    location: S3Location::parse(STATE).unwrap(),
    store: StateStore::connect(&moto.settings(), "us-east-1").await,
  };
  let locks = LockStore::S3(state.clone());
  let lease = Duration::from_secs(60);
  let mut first = locks.acquire(holder("run-1"), lease).await.unwrap();
  match locks.acquire(holder("run-2"), lease).await {
    Err(LockError::Held { holder, stale }) => {
      assert_eq!(holder.run_id, "run-1");
      assert!(stale.is_none());
    }
    other => panic!("{other:?}"),
  }
  first.renew().await.unwrap();
  // A resume of run-1 while run-1 is alive is refused, and the lock is left as it was.
  match locks.acquire(holder("run-1"), lease).await {
    Err(LockError::Live { holder, .. }) => assert_eq!(holder.run_id, "run-1"),
    other => panic!("{other:?}"),
  }
  first.renew().await.unwrap();
  // ... and so is `unlock` without force.
  assert!(matches!(
    locks.unlock("default", false).await,
    Err(LockError::Live { .. })
  ));
  first.release().await.unwrap();

  // Of resumes of a dead run-1, exactly one takes the lock over; the old holder's next
  // renewal finds out.
  let mut first = locks.acquire(dead_holder("run-1"), lease).await.unwrap();
  let racers: Vec<_> = (0..4)
    .map(|_| {
      let locks = locks.clone();
      tokio::spawn(async move { locks.acquire(holder("run-1"), lease).await })
    })
    .collect();
  let mut won = Vec::new();
  let mut refused = 0;
  for racer in racers {
    match racer.await.unwrap() {
      Ok(lock) => won.push(lock),
      Err(LockError::Live { .. }) => refused += 1,
      Err(other) => panic!("{other:?}"),
    }
  }
  assert_eq!((won.len(), refused), (1, 3));
  let resumed = won.pop().unwrap();
  let err = first.renew().await.unwrap_err();
  assert!(matches!(err, LockError::Lost { .. }), "{err:?}");
  assert!(err.to_string().contains("LOST THE LOCK"), "{err}");
  // Releasing a lock we lost leaves the new holder's in place (same run id: released).
  assert_eq!(
    locks.holder("default").await.unwrap().unwrap().run_id,
    "run-1"
  );
  resumed.release().await.unwrap();
  assert!(locks.holder("default").await.unwrap().is_none());

  // An expired lease is stale.
  let mut old = holder("run-3");
  old.host = "elsewhere".into();
  let held = locks.acquire(old, Duration::from_millis(1)).await.unwrap();
  tokio::time::sleep(Duration::from_millis(20)).await;
  match locks.acquire(holder("run-4"), lease).await {
    Err(LockError::Held { stale, .. }) => {
      assert!(stale.unwrap().contains("lease expired"))
    }
    other => panic!("{other:?}"),
  }
  // Broken under its holder: the renewal reports the loss.
  let broken = locks.unlock("default", false).await.unwrap().unwrap();
  assert_eq!(broken.run_id, "run-3");
  let mut held = held;
  assert!(matches!(held.renew().await, Err(LockError::Lost { .. })));
}
