//! State format versions: a state written before versions existed (the fixture in
//! `tests/fixtures/state-format-1/`, written by drctl 0.1.0) still reads, reports and resumes;
//! a state written by a newer drctl is refused with exit 2 and not one byte of it changes.

use std::{
  collections::BTreeMap,
  path::{Path, PathBuf},
};

use crate::support::{count, repo, Test};

/// The fixture's runs.
const FINISHED: &str = "20261201-231543-3d10";
const INTERRUPTED: &str = "20261201-231553-a267";
const DRILL: &str = "weekly-snapshot-age";

/// The format this drctl writes and reads up to.
const CURRENT: u64 = 1;

/// What every refusal of a newer format says.
fn newer_message(found: u64) -> String {
  format!("written by a newer drctl (format {found}); this drctl reads up to {CURRENT}: upgrade")
}

fn copy_dir(from: &Path, to: &Path) {
  std::fs::create_dir_all(to).unwrap();
  for entry in std::fs::read_dir(from).unwrap() {
    let entry = entry.unwrap();
    let target = to.join(entry.file_name());
    if entry.file_type().unwrap().is_dir() {
      copy_dir(&entry.path(), &target);
    } else {
      std::fs::copy(entry.path(), &target).unwrap();
    }
  }
}

/// A test directory holding the fixture: its runbooks (the ones its runs were started from, so
/// resume finds them unchanged), its drill, and its state as `.drctl/`.
fn fixture() -> Test {
  let test = Test::new();
  let fixture = repo().join("tests/fixtures/state-format-1");
  copy_dir(&fixture.join("runbooks"), &test.path().join("runbooks"));
  copy_dir(&fixture.join("drills"), &test.path().join("drills"));
  copy_dir(&fixture.join("state"), &test.path().join(".drctl"));
  test
}

/// Every file under the state directory, with its bytes.
fn snapshot(test: &Test) -> BTreeMap<PathBuf, Vec<u8>> {
  fn walk(dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
      let entry = entry.unwrap();
      if entry.file_type().unwrap().is_dir() {
        walk(&entry.path(), files);
      } else {
        files.insert(entry.path(), std::fs::read(entry.path()).unwrap());
      }
    }
  }
  let mut files = BTreeMap::new();
  walk(&test.path().join(".drctl"), &mut files);
  files
}

/// A journal line stamped with `format` (its checksum recomputed, as a drctl writing that
/// format would have written it).
fn stamp_journal_line(line: &str, format: u64) -> String {
  let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
  let map = value.as_object_mut().unwrap();
  map.remove("crc");
  map.insert("format".into(), format.into());
  let crc = crc32fast::hash(serde_json::to_string(&value).unwrap().as_bytes());
  value
    .as_object_mut()
    .unwrap()
    .insert("crc".into(), format!("{crc:08x}").into());
  serde_json::to_string(&value).unwrap()
}

/// A JSON document stamped with `format`.
fn stamp_json(text: &str, format: u64) -> String {
  let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
  value
    .as_object_mut()
    .unwrap()
    .insert("format".into(), format.into());
  serde_json::to_string_pretty(&value).unwrap()
}

/// Rewrite every line of a JSON-lines file with `stamp`.
fn restamp_lines(path: &Path, stamp: impl Fn(&str) -> String) {
  let text = std::fs::read_to_string(path).unwrap();
  let lines: Vec<String> = text.lines().map(stamp).collect();
  std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn state_file(test: &Test, rest: &str) -> PathBuf {
  test.path().join(".drctl").join(rest)
}

/// Run `args` and check it is refused for a newer format (exit 2, the message), changing no byte
/// of the state directory.
fn assert_refused(test: &Test, args: &[&str], found: u64) {
  let before = snapshot(test);
  let run = test.run_args(args.iter().copied());
  assert_eq!(
    run.code(),
    2,
    "{args:?}: stdout {} stderr {}",
    run.stdout(),
    run.stderr()
  );
  assert!(
    run.stderr().contains(&newer_message(found)),
    "{args:?}: {}",
    run.stderr()
  );
  assert!(snapshot(test) == before, "{args:?} changed the state");
}

#[test]
fn a_state_written_before_format_versions_is_reported_and_resumed() {
  let test = fixture();
  let status = test.status_json(FINISHED);
  assert_eq!(status["timeline"]["status"], "succeeded", "{status}");
  let report = test
    .run_args(["report", FINISHED, "--format", "json"])
    .status(0);
  let report: serde_json::Value = serde_json::from_str(&report.stdout()).unwrap();
  assert_eq!(report["status"], "succeeded", "{report}");
  let runs = test.run_args(["runs"]).status(0).stdout();
  for run_id in [FINISHED, INTERRUPTED] {
    assert!(runs.contains(run_id), "{runs}");
  }
  let history = test
    .run_args(["drill", "history", DRILL])
    .status(0)
    .stdout();
  assert!(history.contains("passed"), "{history}");

  let old_lines = test.journal(INTERRUPTED).lines().count();
  // Resumed long after its start, the run finishes, past its RTO (exit 3).
  let resumed = test.run_args(["resume", INTERRUPTED, "--yes"]).status(3);
  assert!(
    resumed.stdout().contains("result: breached"),
    "{}",
    resumed.stdout()
  );
  let operations = test.operations(INTERRUPTED);
  for operation in [
    "PromoteReadReplica",
    "UpdateService",
    "ChangeResourceRecordSets",
  ] {
    assert_eq!(
      count(&operations, operation),
      1,
      "{operation} in {operations:?}"
    );
  }
  // The records written before versions stay as they were; the resume's carry the format.
  let journal = test.journal(INTERRUPTED);
  let fixture_journal = std::fs::read_to_string(repo().join(format!(
    "tests/fixtures/state-format-1/state/runs/{INTERRUPTED}/journal.jsonl"
  )))
  .unwrap();
  assert!(journal.starts_with(&fixture_journal));
  let appended: Vec<serde_json::Value> = journal
    .lines()
    .skip(old_lines)
    .map(|line| serde_json::from_str(line).unwrap())
    .collect();
  assert!(!appended.is_empty());
  for record in &appended {
    assert_eq!(record["format"], CURRENT, "{record}");
  }
  // And the run's status after its resume reads the two together.
  assert_eq!(
    test.status_json(INTERRUPTED)["timeline"]["status"],
    "breached"
  );
}

#[test]
fn a_journal_from_a_newer_drctl_is_refused_and_nothing_is_written() {
  let test = fixture();
  restamp_lines(
    &state_file(&test, &format!("runs/{INTERRUPTED}/journal.jsonl")),
    |line| stamp_journal_line(line, CURRENT + 1),
  );
  for args in [
    vec!["status", INTERRUPTED],
    vec!["report", INTERRUPTED, "--format", "md"],
    vec!["resume", INTERRUPTED, "--yes"],
    vec!["runs"],
    vec!["runs", "--output", "json"],
  ] {
    assert_refused(&test, &args, CURRENT + 1);
  }
  // Only the newer journal's records are refused: a newer last line is not a torn one either.
  let path = state_file(&test, &format!("runs/{FINISHED}/journal.jsonl"));
  let text = std::fs::read_to_string(&path).unwrap();
  let mut lines: Vec<String> = text.lines().map(String::from).collect();
  let last = lines.pop().unwrap();
  lines.push(stamp_journal_line(&last, CURRENT + 7));
  std::fs::write(&path, lines.join("\n") + "\n").unwrap();
  assert_refused(&test, &["status", FINISHED], CURRENT + 7);
}

#[test]
fn a_lock_from_a_newer_drctl_is_neither_taken_nor_broken() {
  let test = fixture();
  let path = state_file(&test, "locks/regional-failover.lock");
  let text = std::fs::read_to_string(&path).unwrap();
  std::fs::write(&path, stamp_json(&text, CURRENT + 1)).unwrap();
  for args in [
    vec!["failover", "us-west-2", "--sim", "--yes"],
    vec!["resume", INTERRUPTED, "--yes"],
    vec!["unlock", "regional-failover"],
    vec!["unlock", "--force", "regional-failover"],
  ] {
    assert_refused(&test, &args, CURRENT + 1);
  }
}

#[test]
fn drill_history_from_a_newer_drctl_is_refused() {
  let test = fixture();
  restamp_lines(
    &state_file(&test, &format!("drills/{DRILL}/history.jsonl")),
    |line| {
      let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
      value["format"] = (CURRENT + 1).into();
      value.to_string()
    },
  );
  for args in [vec!["drill", "history", DRILL], vec!["drill", "list"]] {
    assert_refused(&test, &args, CURRENT + 1);
  }
}

#[test]
fn a_simulator_world_from_a_newer_drctl_is_refused_before_anything_is_written() {
  let test = fixture();
  let path = state_file(&test, &format!("runs/{INTERRUPTED}/world.json"));
  let mut world: serde_json::Value =
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
  world["version"] = (CURRENT + 1).into();
  std::fs::write(&path, serde_json::to_string_pretty(&world).unwrap()).unwrap();
  assert_refused(&test, &["resume", INTERRUPTED, "--yes"], CURRENT + 1);
  assert_refused(&test, &["status", INTERRUPTED], CURRENT + 1);
}

// ---------------------------------------------------------------------------------------------
// One `s3://` state shared by drctls of different versions (moto).
// ---------------------------------------------------------------------------------------------

mod shared_bucket {
  use std::collections::BTreeMap;

  use drctl::{
    cloud::aws::StateStore,
    state::{LockHolder, S3Location, S3State},
  };

  use super::{newer_message, snapshot, stamp_journal_line, CURRENT, DRILL};
  use crate::support::{
    moto::Moto,
    repo,
    s3::{create_bucket, s3_test, BUCKET, CACHE, STATE},
    Test,
  };

  const NEWER_RUN: &str = "20991231-000000-beef";

  struct Bucket {
    rt: tokio::runtime::Runtime,
    state: S3State,
  }

  impl Bucket {
    fn new(moto: &Moto) -> Bucket {
      let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
      let store = rt.block_on(StateStore::connect(&moto.settings(), "us-east-1"));
      Bucket {
        rt,
        state: S3State {
          location: S3Location::parse(STATE).unwrap(),
          store,
        },
      }
    }

    fn key(&self, rest: &str) -> String {
      self.state.location.key(rest)
    }

    fn put(&self, key: &str, body: &str) {
      self
        .rt
        .block_on(
          self
            .state
            .store
            .put_if_absent(BUCKET, key, body.as_bytes().to_vec()),
        )
        .unwrap();
    }

    fn get(&self, key: &str) -> Option<String> {
      self
        .rt
        .block_on(self.state.store.get(BUCKET, key))
        .unwrap()
        .map(|(bytes, _)| String::from_utf8(bytes).unwrap())
    }

    /// Every object of the state, with its body.
    fn objects(&self) -> BTreeMap<String, String> {
      let keys = self
        .rt
        .block_on(self.state.store.list(BUCKET, &self.key("")))
        .unwrap();
      keys
        .into_iter()
        .map(|key| {
          let body = self.get(&key).unwrap_or_default();
          (key, body)
        })
        .collect()
    }
  }

  /// Run `args` against the bucket: refused for a newer format, with neither the bucket nor
  /// the local cache changed.
  fn assert_refused(test: &Test, bucket: &Bucket, args: &[&str], found: u64) {
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--state", STATE]);
    std::fs::create_dir_all(test.path().join(".drctl")).unwrap();
    let (objects, local) = (bucket.objects(), snapshot(test));
    let run = test.run_args(args.iter().copied());
    assert_eq!(run.code(), 2, "{args:?}: {}", run.stderr());
    assert!(
      run.stderr().contains(&newer_message(found)),
      "{args:?}: {}",
      run.stderr()
    );
    assert!(bucket.objects() == objects, "{args:?} changed the bucket");
    assert!(snapshot(test) == local, "{args:?} changed the local cache");
  }

  #[test]
  fn drctls_of_two_versions_on_one_s3_state_refuse_rather_than_misread_or_overwrite() {
    let moto = Moto::start();
    create_bucket(&moto, BUCKET);
    let bucket = Bucket::new(&moto);
    let test = s3_test(&moto, &moto.endpoint);
    let drill = format!("drills/{DRILL}.yaml");
    std::fs::create_dir_all(test.path().join("drills")).unwrap();
    std::fs::copy(repo().join(&drill), test.path().join(&drill)).unwrap();
    test
      .run_args(["drill", "run", DRILL, "--state", STATE])
      .status(0);

    // Everything this drctl wrote to the bucket carries its format.
    let objects = bucket.objects();
    let journal: Vec<&String> = objects
      .iter()
      .filter(|(key, _)| key.contains("/journal/"))
      .map(|(_, body)| body)
      .collect();
    let history: Vec<&String> = objects
      .iter()
      .filter(|(key, _)| key.contains("/history/"))
      .map(|(_, body)| body)
      .collect();
    assert!(!journal.is_empty() && history.len() == 1, "{objects:?}");
    for body in journal.iter().chain(&history) {
      let value: serde_json::Value = serde_json::from_str(body).unwrap();
      assert_eq!(value["format"], CURRENT, "{body}");
    }

    // A newer drctl holds the lock: this one neither takes it over nor breaks it.
    let mut holder = LockHolder::this_process(NEWER_RUN, "regional-failover", "default");
    holder.lease_expires_at = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut lock = serde_json::to_value(&holder).unwrap();
    lock["format"] = (CURRENT + 1).into();
    let lock_key = bucket.state.location.lock_key("default");
    bucket.put(&lock_key, &lock.to_string());
    let failover = [
      "run",
      "regional-failover",
      "-p",
      "target_region=us-west-2",
      "--sim",
      "--yes",
    ];
    assert_refused(&test, &bucket, &failover, CURRENT + 1);
    assert_refused(
      &test,
      &bucket,
      &["unlock", "regional-failover"],
      CURRENT + 1,
    );
    assert_refused(
      &test,
      &bucket,
      &["unlock", "--force", "regional-failover"],
      CURRENT + 1,
    );
    assert_eq!(bucket.get(&lock_key), Some(lock.to_string()));
    let _ = bucket
      .rt
      .block_on(bucket.state.store.delete(BUCKET, &lock_key));

    // A newer drctl's run in the bucket is not pulled into the cache (by this operator, or
    // another one with an empty cache), neither as a run nor as a torn journal.
    let first = journal[0].trim_end();
    let newer = stamp_journal_line(first, CURRENT + 1) + "\n";
    bucket.put(&bucket.state.location.record_key(NEWER_RUN, 1), &newer);
    assert_refused(&test, &bucket, &["runs"], CURRENT + 1);
    let other = s3_test(&moto, &moto.endpoint);
    assert_refused(&other, &bucket, &["status", NEWER_RUN], CURRENT + 1);
    assert!(!other.path().join(".drctl/s3").join(BUCKET).exists());
    let _ = bucket.rt.block_on(
      bucket
        .state
        .store
        .delete(BUCKET, &bucket.state.location.record_key(NEWER_RUN, 1)),
    );

    // A newer drctl's drill history entry is refused, not skipped.
    let mut entry: serde_json::Value = serde_json::from_str(history[0]).unwrap();
    entry["format"] = (CURRENT + 1).into();
    entry["run_id"] = NEWER_RUN.into();
    bucket.put(
      &bucket.key(&format!(
        "drills/{DRILL}/history/29991231T000000.000Z-{NEWER_RUN}.json"
      )),
      &entry.to_string(),
    );
    assert_refused(&test, &bucket, &["drill", "history", DRILL], CURRENT + 1);

    // A local journal a newer drctl wrote is not pushed by `state sync`.
    let run_id = objects
      .keys()
      .find_map(|key| key.split("/runs/").nth(1)?.split('/').next())
      .unwrap()
      .to_string();
    let path = test
      .path()
      .join(CACHE)
      .join("runs")
      .join(&run_id)
      .join("journal.jsonl");
    super::restamp_lines(&path, |line| stamp_journal_line(line, CURRENT + 1));
    assert_refused(&test, &bucket, &["state", "sync", &run_id], CURRENT + 1);
  }
}
