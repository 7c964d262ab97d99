//! RPO unknown: failovers with the source region down, on the simulator, through the real binary.
//!
//! The world's `outages` lists us-east-1, so the standby replica's ReplicaLag reads -1 for two
//! periods, then no datapoint is published (stale), then none is left in the lookback. Each run
//! waits a different modelled time after the outage began (`wait.sleep`) before it reads the
//! lag, so the three ways a lag is unknown are all met:
//!
//! * without `--accept-data-loss` the lag check fails closed: exit 1, the reason in the error,
//!   no promotion;
//! * with it, the replica is promoted and the report's RPO is `unknown`, with its basis, never
//!   `met`: the run is breached (exit 3).
//!
//! The figure the section is held to: 0 runs with the RPO verdict `met`. The shipped
//! `regional-failover` runbook runs too (its pre-flight `rds.replica_status` check).

use crate::{
  support::{count, Test},
  Config, Figure,
};

const SECTION: &str = "rpo-unknown";

/// The built-in world with the replica's source region down. Its primary health check is no
/// longer inverted (the built-in world inverts it to stage a game day): the region really fails.
fn source_down_world() -> String {
  let world = drctl::cloud::sim::BUILTIN_WORLD
    .replace("outages: []", "outages: [us-east-1]")
    .replace(
      r#"target: "https://api-use1.example.com/health", inverted: true"#,
      r#"target: "https://api-use1.example.com/health""#,
    );
  assert_ne!(
    world,
    drctl::cloud::sim::BUILTIN_WORLD,
    "the built-in world has an outages list to change"
  );
  world
}

/// Wait `WAIT` after the outage began, then promote against a 5-minute RPO.
const PROMOTE_AFTER: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: promote-after }
objectives: { rpo: 5m }
steps:
  - id: wait
    action: wait.sleep
    with: { duration: WAIT }
    timeout: 2h
  - id: promote-db
    action: rds.promote_replica
    needs: [wait]
    with: { region: us-west-2, instance: app-db-replica }
    timeout: 30m
"#;

/// How the lag is unknown after a wait, and the words the basis must hold.
struct Case {
  wait: &'static str,
  unknown: &'static str,
  basis: &'static str,
}

const FAST: &[Case] = &[
  Case {
    wait: "1s",
    unknown: "-1",
    basis: "replication stopped at",
  },
  Case {
    wait: "5m",
    unknown: "stale",
    basis: "older than 2 periods",
  },
  Case {
    wait: "20m",
    unknown: "no datapoint",
    basis: "no lag datapoint",
  },
];

const FULL: &[Case] = &[
  Case {
    wait: "30s",
    unknown: "-1",
    basis: "replication stopped at",
  },
  Case {
    wait: "1m30s",
    unknown: "-1",
    basis: "replication stopped at",
  },
  Case {
    wait: "4m",
    unknown: "stale",
    basis: "older than 2 periods",
  },
  Case {
    wait: "10m",
    unknown: "stale",
    basis: "older than 2 periods",
  },
  Case {
    wait: "17m",
    unknown: "no datapoint",
    basis: "no lag datapoint",
  },
  Case {
    wait: "1h",
    unknown: "no datapoint",
    basis: "no lag datapoint",
  },
];

/// What one run showed.
#[derive(Default)]
struct Tally {
  runs: usize,
  met: usize,
  failed_closed: usize,
  refusals: usize,
  unknown_reported: usize,
  accepted: usize,
}

pub fn run(config: &Config) -> Vec<Figure> {
  let mut tally = Tally::default();
  let cases = if config.full {
    FAST.iter().chain(FULL).collect::<Vec<_>>()
  } else {
    FAST.iter().collect()
  };
  for case in &cases {
    promote_after(case, &mut tally);
  }
  shipped_failover(&mut tally);
  vec![
    Figure::new(
      SECTION,
      "runs with the source region down whose RPO verdict is met",
      format!("{} of {}", tally.met, tally.runs),
      "0",
      tally.met == 0 && tally.runs > 0,
    ),
    Figure::new(
      SECTION,
      "unknown lag, no --accept-data-loss: step fails (exit 1), no promotion",
      format!("{}/{}", tally.failed_closed, tally.refusals),
      "all",
      tally.failed_closed == tally.refusals && tally.refusals > 0,
    ),
    Figure::new(
      SECTION,
      "--accept-data-loss: RPO reported unknown with its basis (exit 3)",
      format!("{}/{}", tally.unknown_reported, tally.accepted),
      "all",
      tally.unknown_reported == tally.accepted && tally.accepted > 0,
    ),
  ]
}

/// The RPO objective of a run's JSON report.
fn rpo_objective(test: &Test, run_id: &str) -> serde_json::Value {
  let report = test.run_args(["report", run_id, "--format", "json"]);
  let json: serde_json::Value = serde_json::from_str(&report.stdout()).unwrap_or_default();
  json["objectives"]
    .as_array()
    .and_then(|objectives| objectives.iter().find(|o| o["name"] == "RPO").cloned())
    .unwrap_or_default()
}

/// Run drctl once more in `test`: the outcome, the new run's id and its mutating calls.
fn run_new(test: &Test, args: &[&str]) -> (crate::support::Run, Option<String>, Vec<String>) {
  let before = test.run_ids();
  let run = test.run_args(args);
  let new = test.run_ids().into_iter().find(|id| !before.contains(id));
  let calls = new
    .as_ref()
    .map(|id| test.operations(id))
    .unwrap_or_default();
  (run, new, calls)
}

fn record(
  tally: &mut Tally,
  label: &str,
  test: &Test,
  args: &[&str],
  basis: &str,
  recovery_code: i32,
) {
  // Refused: fails closed, with the reason, and promotes nothing.
  let (refused, run_id, calls) = run_new(test, args);
  tally.runs += 1;
  tally.refusals += 1;
  let rpo = run_id
    .as_deref()
    .map(|id| rpo_objective(test, id))
    .unwrap_or_default();
  tally.met += usize::from(rpo["verdict"] == "met");
  let closed = refused.code() == 1
    && refused.stderr().contains(basis)
    && refused.stderr().contains("--accept-data-loss")
    && count(&calls, "PromoteReadReplica") == 0;
  tally.failed_closed += usize::from(closed);
  if !closed {
    eprintln!(
      "   {label}: refused run exit {}, calls {calls:?}: {}",
      refused.code(),
      refused.stderr().trim()
    );
  }

  // Accepted: promotes, reports RPO unknown with the basis, exit 3 (never "met").
  let mut accepted_args = args.to_vec();
  accepted_args.push("--accept-data-loss");
  let (accepted, run_id, calls) = run_new(test, &accepted_args);
  tally.runs += 1;
  tally.accepted += 1;
  let rpo = run_id
    .as_deref()
    .map(|id| rpo_objective(test, id))
    .unwrap_or_default();
  tally.met += usize::from(rpo["verdict"] == "met");
  let reported = accepted.code() == recovery_code
    && rpo["verdict"] == "unknown"
    && rpo["achieved_seconds"].is_null()
    && rpo["basis"]
      .as_str()
      .is_some_and(|text| text.contains(basis))
    && count(&calls, "PromoteReadReplica") == 1;
  tally.unknown_reported += usize::from(reported);
  if !reported {
    eprintln!(
      "   {label}: accepted run exit {}, RPO {rpo}, calls {calls:?}: {}",
      accepted.code(),
      accepted.stderr().trim()
    );
  }
}

fn promote_after(case: &Case, tally: &mut Tally) {
  let test = Test::new()
    .file("down.yaml", &source_down_world())
    .file("promote.yaml", &PROMOTE_AFTER.replace("WAIT", case.wait));
  let args = [
    "run",
    "promote.yaml",
    "--sim",
    "down.yaml",
    "--time-scale",
    "600",
    "--yes",
  ];
  let label = format!("wait {} ({})", case.wait, case.unknown);
  record(tally, &label, &test, &args, case.basis, 3);
}

/// The shipped failover, right after the region failed (-1): its pre-flight replica check
/// refuses; accepted, it completes with the RPO unknown.
fn shipped_failover(tally: &mut Tally) {
  let test = Test::new().file("down.yaml", &source_down_world());
  let args = [
    "failover",
    "us-west-2",
    "--sim",
    "down.yaml",
    "--time-scale",
    "600",
    "--yes",
  ];
  record(
    tally,
    "regional-failover",
    &test,
    &args,
    "replication stopped at",
    3,
  );
}
