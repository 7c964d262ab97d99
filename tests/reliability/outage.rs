//! State store outage: a failover whose state is `s3://` on moto loses its state bucket mid-run.
//! Two ways: the bucket's endpoint stops answering (a loopback proxy cuts every connection, as
//! a failed region would), and the bucket is deleted outright (then created again, empty). The
//! failover must complete on its local journal; once the bucket is back, `drctl state sync` must
//! reconcile with nothing lost: the S3 journal objects, concatenated, equal the local journal
//! byte for byte, and an operator with an empty cache reads back the same journal.

use std::{process::Command, time::Duration};

use crate::{
  support::{
    moto::Moto,
    proxy::Proxy,
    s3::{self, BUCKET, STATE},
  },
  Config, Figure,
};

const SECTION: &str = "outage";

pub fn run(_config: &Config) -> Vec<Figure> {
  // One server for both scenarios (each run keeps its own journal objects in the bucket).
  let moto = Moto::start();
  s3::create_bucket(&moto, BUCKET);
  let mut figures = Vec::new();
  figures.extend(scenario(&moto, Outage::Unreachable));
  figures.extend(scenario(&moto, Outage::Deleted));
  figures
}

#[derive(Clone, Copy)]
enum Outage {
  /// Every connection to the bucket's endpoint is cut, then it comes back.
  Unreachable,
  /// The bucket and everything in it is deleted, then an empty one is created.
  Deleted,
}

impl Outage {
  fn name(self) -> &'static str {
    match self {
      Outage::Unreachable => "unreachable",
      Outage::Deleted => "deleted",
    }
  }
}

/// Delete the bucket and its objects (with boto3).
fn delete_bucket(moto: &Moto) -> bool {
  Command::new("python3")
    .args([
      "-c",
      &format!(
        "import boto3; b = boto3.resource('s3', endpoint_url='{}', region_name='us-east-1')\
         .Bucket('{BUCKET}'); b.objects.all().delete(); b.delete()",
        moto.endpoint
      ),
    ])
    .envs(moto.env())
    .status()
    .is_ok_and(|status| status.success())
}

fn scenario(moto: &Moto, outage: Outage) -> Vec<Figure> {
  let label = outage.name();
  let proxy = Proxy::start(moto.port);
  let test = s3::s3_test(moto, &proxy.endpoint());
  let failover = [
    "failover",
    "us-west-2",
    "--sim",
    "--yes",
    "--time-scale",
    "60",
    "--state",
    STATE,
  ];
  let child = test.spawn(failover);
  let started = std::time::Instant::now();
  let mut run_id = None;
  while started.elapsed() < Duration::from_secs(60) {
    run_id = s3::cached_run_ids(&test)
      .pop()
      .filter(|id| s3::s3_records(moto, id).len() >= 2);
    if run_id.is_some() {
      break;
    }
    std::thread::sleep(Duration::from_millis(50));
  }
  let cut = match outage {
    Outage::Unreachable => {
      proxy.outage();
      true
    }
    Outage::Deleted => delete_bucket(moto),
  };
  let output = child.wait_with_output().expect("wait for drctl");
  let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
  let Some(run_id) = run_id.or_else(|| s3::cached_run_ids(&test).pop()) else {
    return vec![Figure::new(
      SECTION,
      format!("{label}: failover completes"),
      "no run",
      "exit 0",
      false,
    )];
  };
  let local = s3::cached_journal(&test, &run_id);
  let local_records = local.lines().count();
  let in_s3_during = s3::s3_records(moto, &run_id).len();
  let completed = output.status.code() == Some(0)
    && local.contains(r#""event":"run_finished""#)
    && cut
    && stderr.contains("cannot write the journal to the state bucket");
  if !completed {
    eprintln!(
      "   outage/{label}: exit {:?}, cut {cut}: {}",
      output.status.code(),
      stderr.trim()
    );
  }
  let mut figures = vec![Figure::new(
    SECTION,
    format!("{label}: failover completes on the local journal"),
    format!(
      "exit {}, {local_records} local / {in_s3_during} in S3",
      output.status.code().unwrap_or(-1)
    ),
    "exit 0, fewer in S3",
    completed && in_s3_during < local_records,
  )];

  // The bucket returns.
  match outage {
    Outage::Unreachable => proxy.restore(),
    Outage::Deleted => s3::create_bucket(moto, BUCKET),
  }
  let sync = test.run_args(["state", "sync", "--state", STATE]);
  let remote = s3::s3_records(moto, &run_id);
  let joined: String = remote.iter().map(|(_, body)| body.as_str()).collect();
  let local_lines: Vec<&str> = local.split_inclusive('\n').collect();
  let lost = local_lines
    .iter()
    .enumerate()
    .filter(|(index, line)| {
      remote.get(*index).is_none_or(|(key, body)| {
        body != *line || !key.ends_with(&format!("/journal/{:010}.json", index + 1))
      })
    })
    .count();
  let identical = joined == local && remote.len() == local_records;
  if sync.code() != 0 || !identical {
    eprintln!(
      "   outage/{label}: sync exit {}: {}{}",
      sync.code(),
      sync.stdout().trim(),
      sync.stderr().trim()
    );
  }
  figures.push(Figure::new(
    SECTION,
    format!("{label}: state sync after the bucket returns"),
    format!("exit {}, {} record(s) now in S3", sync.code(), remote.len()),
    format!("exit 0, {local_records}"),
    sync.code() == 0 && remote.len() == local_records,
  ));
  figures.push(Figure::new(
    SECTION,
    format!("{label}: records lost (S3 vs local, byte for byte)"),
    lost,
    "0",
    lost == 0 && identical,
  ));

  // Another operator, with an empty cache, reads the same journal back through the bucket.
  let other = s3::s3_test(moto, &moto.endpoint);
  let status = other.run_args(["status", &run_id, "--state", STATE]);
  let pulled = s3::cached_journal(&other, &run_id);
  let again = test.run_args(["state", "sync", &run_id, "--state", STATE]);
  let met = status.code() == 0
    && status.stdout().contains("succeeded")
    && pulled == local
    && again.code() == 0
    && again.stdout().contains("in sync");
  figures.push(Figure::new(
    SECTION,
    format!("{label}: fresh operator's copy identical, re-sync clean"),
    if met { "yes" } else { "no" },
    "yes",
    met,
  ));
  figures
}
