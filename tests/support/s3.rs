//! An `s3://` state on moto: the bucket, a test directory whose drctl reaches it, and read-backs
//! of what drctl wrote there (journal objects, the lock object).

use std::process::Command;

use drctl::{
  cloud::aws::StateStore,
  state::{S3Location, S3State},
};

use super::{moto::Moto, Test};

pub const BUCKET: &str = "drctl-state";
pub const STATE: &str = "s3://drctl-state/team";
/// The local cache of that state, relative to the test directory.
pub const CACHE: &str = ".drctl/s3/drctl-state/team";

/// Create a bucket in moto (with boto3, as the seed script does).
pub fn create_bucket(moto: &Moto, bucket: &str) {
  let status = Command::new("python3")
    .args([
      "-c",
      &format!(
        "import boto3; boto3.client('s3', endpoint_url='{}', region_name='us-east-1')\
         .create_bucket(Bucket='{bucket}')",
        moto.endpoint
      ),
    ])
    .envs(moto.env())
    .status()
    .expect("python3 runs");
  assert!(status.success(), "create bucket {bucket}");
}

/// A test directory whose drctl reaches `endpoint` for AWS (the state bucket).
pub fn s3_test(moto: &Moto, endpoint: &str) -> Test {
  let mut test = Test::new();
  for (key, value) in moto.env() {
    test = test.env(&key, &value);
  }
  test.env("AWS_ENDPOINT_URL", endpoint)
}

/// A runtime for the blocking helpers (a state client is used on the runtime it was built on).
pub fn runtime() -> tokio::runtime::Runtime {
  tokio::runtime::Builder::new_current_thread()
    .enable_all()
    .build()
    .expect("a tokio runtime")
}

/// A client of the state bucket (built on `rt`, and to be used on it only).
pub fn state(moto: &Moto, rt: &tokio::runtime::Runtime) -> S3State {
  S3State {
    location: S3Location::parse(STATE).expect("a valid s3:// URL"),
    store: rt.block_on(StateStore::connect(&moto.settings(), "us-east-1")),
  }
}

/// The journal objects of a run in S3, in key order: (key, body).
pub fn s3_records(moto: &Moto, run_id: &str) -> Vec<(String, String)> {
  let rt = runtime();
  let state = state(moto, &rt);
  let prefix = state.location.journal_prefix(run_id);
  let keys = rt
    .block_on(state.store.list(BUCKET, &prefix))
    .unwrap_or_default();
  keys
    .into_iter()
    .filter_map(|key| {
      let (bytes, _) = rt.block_on(state.store.get(BUCKET, &key)).ok()??;
      Some((key, String::from_utf8_lossy(&bytes).into_owned()))
    })
    .collect()
}

/// The lock object of the lock group `default` (the shipped runbooks' group), if there is one.
pub fn lock_object(moto: &Moto) -> Option<String> {
  let rt = runtime();
  let state = state(moto, &rt);
  rt.block_on(state.store.get(BUCKET, &state.location.lock_key("default")))
    .ok()
    .flatten()
    .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
}

/// Run ids in the local cache of the `s3://` state, oldest first.
pub fn cached_run_ids(test: &Test) -> Vec<String> {
  let mut ids: Vec<String> = std::fs::read_dir(test.path().join(CACHE).join("runs"))
    .map(|entries| {
      entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
    })
    .unwrap_or_default();
  ids.sort();
  ids
}

/// A run's journal in the local cache.
pub fn cached_journal(test: &Test, run_id: &str) -> String {
  std::fs::read_to_string(
    test
      .path()
      .join(CACHE)
      .join("runs")
      .join(run_id)
      .join("journal.jsonl"),
  )
  .unwrap_or_default()
}

/// Replace the lock object of the lock group `default` with `body` (a thief taking it, as
/// `drctl unlock` and another run would), conditionally on the ETag it has now. `false` when
/// there was no lock or the write lost a race.
pub fn steal_lock_object(moto: &Moto, body: &str) -> bool {
  let rt = runtime();
  let state = state(moto, &rt);
  let key = state.location.lock_key("default");
  let Some((_, etag)) = rt.block_on(state.store.get(BUCKET, &key)).ok().flatten() else {
    return false;
  };
  rt.block_on(
    state
      .store
      .put_if_match(BUCKET, &key, body.as_bytes().to_vec(), &etag),
  )
  .is_ok()
}

/// Delete the lock object of the lock group `default` (its holder finished).
pub fn delete_lock_object(moto: &Moto) {
  let rt = runtime();
  let state = state(moto, &rt);
  let key = state.location.lock_key("default");
  let _ = rt.block_on(state.store.delete(BUCKET, &key));
}
