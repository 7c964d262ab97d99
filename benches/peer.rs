//! P2, against the peer: the regional failover as the bash + aws CLI script a team writes from
//! the hand-run runbook (`benches/peer/failover.sh`), and as `drctl run regional-failover
//! --sandbox`, each against its own freshly started and seeded patched moto (the same seed, so
//! the same world), side by side in the same run, alternating which goes first.
//!
//! AWS API calls are counted from moto's request recorder, which sees every AWS request and
//! none of the sandbox's own routes (the HTTP probes and the Slack capture), so both sides are
//! counted the same way.

use std::{
  collections::BTreeMap,
  process::{Command, Stdio},
  time::{Duration, Instant},
};

use drctl::cloud::{ops, wire::recorded_operation};

use crate::{
  overhead::median,
  support::{self, moto::Moto},
  Config, Measured, Row,
};

/// The peer script, kept in the repository next to this file.
fn script() -> std::path::PathBuf {
  support::repo().join("benches/peer/failover.sh")
}

/// The AWS CLI the script needs: installed with pip when missing (awscli v1, a pure-Python
/// package).
fn ensure_aws_cli() -> String {
  let version = || {
    Command::new("aws")
      .arg("--version")
      .stdin(Stdio::null())
      .output()
      .ok()
      .filter(|output| output.status.success())
      .map(|output| {
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
          + &String::from_utf8_lossy(&output.stderr);
        text.trim().to_owned()
      })
  };
  if let Some(version) = version() {
    return version;
  }
  let status = Command::new("python3")
    .args(["-m", "pip", "install", "--quiet", "awscli"])
    .status()
    .expect("run pip");
  assert!(status.success(), "pip install awscli failed");
  version().expect("the aws CLI runs after pip install awscli")
}

/// The URL drctl's sandbox serves a world endpoint or a notification capture at.
fn sandbox_url(moto: &Moto, route: &str, host_and_path: &str) -> String {
  format!("{}/drctl-sandbox/{route}/{host_and_path}", moto.endpoint)
}

/// One side's run: wall time and the AWS operations moto recorded, in order.
struct Side {
  wall: Duration,
  operations: Vec<String>,
}

fn start_recording(moto: &Moto) {
  let (status, body) = moto.request("POST", "/moto-api/recorder/start-recording", "");
  assert_eq!(status, 200, "start the recorder: {body}");
}

fn recorded(moto: &Moto) -> Vec<String> {
  let (status, recording) = moto.request("GET", "/moto-api/recorder/download-recording", "");
  assert_eq!(status, 200, "download the recording: {recording}");
  recording
    .lines()
    .filter(|line| !line.trim().is_empty())
    .map(|line| {
      let entry = serde_json::from_str(line).expect("a recorded request is JSON");
      recorded_operation(&entry).name().to_owned()
    })
    .collect()
}

/// Whether the sandbox captured one Slack post.
fn notified(moto: &Moto) -> bool {
  let (_, captured) = moto.request("GET", "/drctl-sandbox/captured", "");
  serde_json::from_str::<serde_json::Value>(&captured)
    .ok()
    .and_then(|value| value.as_array().cloned())
    .is_some_and(|posts| posts.iter().any(|post| post["host"] == "hooks.slack.com"))
}

/// Run the script against `moto` (`--check`: only its read-only pre-flight steps).
fn run_script(moto: &Moto, check_only: bool) -> Side {
  start_recording(moto);
  let mut command = Command::new("bash");
  command
    .arg(script())
    .args(check_only.then_some("--check"))
    .envs(moto.env())
    .env("TARGET_REGION", "us-west-2")
    .env(
      "PUBLIC_URL",
      sandbox_url(moto, "app", "api.example.com/health"),
    )
    .env(
      "SLACK_WEBHOOK_URL",
      sandbox_url(moto, "capture", "hooks.slack.com/services/T000/B000/bench"),
    )
    // The operator's own AWS configuration must not leak in.
    .env("AWS_CONFIG_FILE", "/dev/null")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    .stdin(Stdio::null());
  let started = Instant::now();
  let output = command.output().expect("run the peer script");
  let wall = started.elapsed();
  assert!(
    output.status.success(),
    "the peer script failed:\n{}\n{}",
    String::from_utf8_lossy(&output.stdout),
    String::from_utf8_lossy(&output.stderr)
  );
  if !check_only {
    assert!(notified(moto), "the peer script posted no Slack message");
  }
  Side {
    wall,
    operations: recorded(moto),
  }
}

fn run_drctl(moto: &Moto) -> Side {
  let test = support::Test::new().env(
    "SLACK_WEBHOOK_URL",
    "https://hooks.slack.com/services/T000/B000/bench",
  );
  moto.attach(&test.path().join(".drctl"));
  start_recording(moto);
  let started = Instant::now();
  let run = test.run_args([
    "run",
    "runbooks/regional-failover.yaml",
    "-p",
    "target_region=us-west-2",
    "--sandbox",
    "--yes",
  ]);
  let wall = started.elapsed();
  assert_eq!(
    run.code(),
    0,
    "drctl's failover failed:\n{}\n{}",
    run.stdout(),
    run.stderr()
  );
  assert!(notified(moto), "drctl posted no Slack message");
  Side {
    wall,
    operations: recorded(moto),
  }
}

pub fn run(config: &Config) -> Measured {
  let aws_version = ensure_aws_cli();
  if !config.bench {
    // Smoke: one moto; the script's read-only pre-flight (`--check`: the outage and replica
    // checks, through the same CLI, endpoint and recorder) and then drctl's whole failover.
    let moto = Moto::start();
    let script = run_script(&moto, true);
    assert!(
      script.operations.len() >= 3,
      "the script's checks made AWS calls: {:?}",
      script.operations
    );
    let drctl = run_drctl(&moto);
    assert!(
      drctl
        .operations
        .iter()
        .any(|op| op == ops::rds::PROMOTE_READ_REPLICA.name),
      "drctl promoted the replica: {:?}",
      drctl.operations
    );
    return Measured {
      rows: vec![Row::info(
        "P2",
        "smoke: script pre-flight calls / drctl failover calls",
        format!("{} / {}", script.operations.len(), drctl.operations.len()),
      )],
      notes: String::new(),
    };
  }

  let mut pairs: Vec<(Side, Side)> = Vec::new();
  for i in 0..config.repeats {
    // A fresh, identically seeded world for each side; alternate who goes first so a noisy
    // neighbour does not always hit the same side.
    let (script, drctl) = if i % 2 == 0 {
      let script = run_script(&Moto::start(), false);
      (script, run_drctl(&Moto::start()))
    } else {
      let drctl = run_drctl(&Moto::start());
      (run_script(&Moto::start(), false), drctl)
    };
    eprintln!(
      "   P2 pair {}: script {:.1}s ({} calls), drctl {:.2}s ({} calls)",
      i + 1,
      script.wall.as_secs_f64(),
      script.operations.len(),
      drctl.wall.as_secs_f64(),
      drctl.operations.len()
    );
    pairs.push((script, drctl));
  }

  let mut ratios: Vec<f64> = pairs
    .iter()
    .map(|(script, drctl)| script.wall.as_secs_f64() / drctl.wall.as_secs_f64())
    .collect();
  let mut script_walls: Vec<f64> = pairs.iter().map(|(s, _)| s.wall.as_secs_f64()).collect();
  let mut drctl_walls: Vec<f64> = pairs.iter().map(|(_, d)| d.wall.as_secs_f64()).collect();
  let mut script_calls: Vec<f64> = pairs
    .iter()
    .map(|(s, _)| s.operations.len() as f64)
    .collect();
  let mut drctl_calls: Vec<f64> = pairs
    .iter()
    .map(|(_, d)| d.operations.len() as f64)
    .collect();
  let ratio = median(&mut ratios);
  let script_wall = median(&mut script_walls);
  let drctl_wall = median(&mut drctl_walls);
  let script_calls = median(&mut script_calls);
  let drctl_calls = median(&mut drctl_calls);

  let rows = vec![
    Row::new(
      "P2",
      "wall time: script / drctl (same seeded moto)",
      format!("{ratio:.1}× ({script_wall:.1} s / {drctl_wall:.2} s)"),
      "≥ 10×",
      ratio >= 10.0,
    ),
    Row::new(
      "P2",
      "AWS API calls: drctl / script",
      format!("{drctl_calls:.0} / {script_calls:.0}"),
      "drctl ≤ script",
      drctl_calls <= script_calls,
    ),
  ];

  let by_operation = |operations: &[String]| {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for operation in operations {
      *counts.entry(operation.as_str()).or_default() += 1;
    }
    counts
      .iter()
      .map(|(operation, count)| format!("{operation} {count}"))
      .collect::<Vec<_>>()
      .join(", ")
  };
  let mut samples = String::new();
  for (i, (script, drctl)) in pairs.iter().enumerate() {
    samples.push_str(&format!(
      "| {} | {:.1} | {:.2} | {:.1}× | {} | {} |\n",
      i + 1,
      script.wall.as_secs_f64(),
      drctl.wall.as_secs_f64(),
      script.wall.as_secs_f64() / drctl.wall.as_secs_f64(),
      script.operations.len(),
      drctl.operations.len()
    ));
  }
  let (last_script, last_drctl) = pairs.last().expect("at least one pair");
  let notes = format!(
    "`benches/peer/failover.sh` ({aws_version}) and `drctl run runbooks/regional-failover.yaml \
     -p target_region=us-west-2 --sandbox --yes` (release build), each against its own patched \
     moto started and seeded by `tests/support/moto.rs` (same seed script: same world), {n} \
     pairs, alternating which side runs first; medians. Wall time is the process's, from spawn \
     to exit; starting moto is not counted for either side. Calls are every AWS request moto's \
     recorder saw during the run.\n\n\
     How the comparison is kept fair:\n\n\
     - Same work: both verify the outage (Route 53 health check status, and the public URL), \
       check the replica (status, source, `ReplicaLag` from CloudWatch) against the RPO, \
       promote it and wait until it is a standalone instance, scale the standby ECS service to \
       3 and wait for its tasks, UPSERT the same two failover records in one change batch and \
       wait for INSYNC, check the public URL answers 200, and post to Slack (captured by the \
       sandbox; both posts are asserted).\n\
     - Same wait semantics as a team writes them: the script uses the CLI's own waiters \
       (`aws rds wait db-instance-available`, `aws ecs wait services-stable`, `aws route53 wait \
       resource-record-sets-changed`: they look at once, then every 30 s / 15 s / 30 s) and a \
       5 s curl loop; drctl polls with its adaptive interval (1 s at first). The patched moto \
       keeps a promoted replica `modifying` and a change `PENDING` for 1.5 s, so the waits are \
       real on both sides.\n\
     - The script runs the hand-run runbook's order, one step after another (promotion, then \
       the scale-up); drctl overlaps the promotion with the scale-up as its DAG allows.\n\
     - drctl does more per run than the script: it checks the DNS target's health check before \
       the flip (a guard), reads the current records to describe the change and to observe \
       them (what makes resume exactly-once), and journals every transition with fsync.\n\n\
     | pair | script (s) | drctl (s) | ratio | script calls | drctl calls |\n\
     |---:|---:|---:|---:|---:|---:|\n{samples}\n\
     Calls of the last pair — script: {}; drctl: {}.\n",
    by_operation(&last_script.operations),
    by_operation(&last_drctl.operations),
    n = pairs.len(),
  );
  Measured { rows, notes }
}
