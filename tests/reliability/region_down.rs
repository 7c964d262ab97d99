//! Region down: `faults: { region_down: us-east-1 }` fails every endpoint of the region being
//! left, Route 53's control plane (served only from us-east-1) included, as a regional event can.
//!
//! Through the real binary on the simulator, both shipped failovers run against that world:
//!
//! * `regional-failover` flips DNS through the Route 53 API. It must fail at its first Route 53
//!   call, with a message naming the dependency (the global endpoint served from us-east-1), and
//!   change nothing.
//! * `regional-failover-arc` flips DNS with ARC routing controls through the recovery cluster's
//!   regional endpoints (data planes; the us-east-1 endpoint is skipped for the next). It must
//!   complete every recovery step with no Route 53 call, and meet its RTO. Its RPO is unknown
//!   (the source region stopped publishing the replica's lag), so the run ends `breached`
//!   (exit 3) under `--accept-data-loss`, as any failover from a dead region does.
//!
//! Beforehand, `drctl plan` against the same world must have flagged the dependency: the
//! Route 53 runbook's steps that call Route 53 as blocked, nothing blocking in the ARC one. And
//! every call a run sent to us-east-1 (each one refused, so each in the run's
//! `refusals.jsonl`) must be one the plan listed as going there: the plan's listing is checked
//! against what the simulator saw, not against the declarations it is made from.
//!
//! The fast configuration injects refused connections; the full one adds the 503 and the
//! timeout forms (the simulator's unit tests check the timeout form once in the fast suite).

use crate::{
  support::{repo, Run, Test},
  Config, Figure,
};

const SECTION: &str = "region-down";

/// The built-in world with us-east-1 down in the way `fails_with` names. The primary's health
/// check is no longer inverted (the built-in world inverts it to stage a game day).
fn down_world(fails_with: &str) -> String {
  let world = drctl::cloud::sim::BUILTIN_WORLD
    .replace(
      "faults: {}",
      &format!("faults: {{ region_down: {{ region: us-east-1, fails_with: {fails_with} }} }}"),
    )
    .replace(
      r#"target: "https://api-use1.example.com/health", inverted: true"#,
      r#"target: "https://api-use1.example.com/health""#,
    );
  assert!(
    world.contains("region_down") && !world.contains("inverted: true"),
    "the built-in world has `faults: {{}}` and one inverted check to change"
  );
  world
}

/// What one failover against the down world showed.
struct Outcome {
  code: i32,
  stderr: String,
  report: serde_json::Value,
  operations: Vec<String>,
  /// The run's `refusals.jsonl`: one line per call the simulator refused.
  refusals: String,
}

impl Outcome {
  fn step(&self, id: &str) -> &str {
    self.report["steps"]
      .as_array()
      .and_then(|steps| steps.iter().find(|step| step["id"] == id))
      .and_then(|step| step["outcome"].as_str())
      .unwrap_or("missing")
  }

  /// Route 53 API calls the run made: with us-east-1 down each one is refused (the simulator
  /// records every refused call in the run's `refusals.jsonl`), and a change that got through
  /// would be in the operation log.
  fn route53_calls(&self) -> usize {
    let refused = self
      .refusals
      .lines()
      .filter(|line| line.contains(r#""service":"route53""#))
      .count();
    let changed = self
      .operations
      .iter()
      .filter(|op| ["ChangeResourceRecordSets", "UpdateHealthCheck"].contains(&op.as_str()))
      .count();
    refused + changed
  }
}

/// What `drctl plan` said beforehand, against the same world, about the region being left.
struct Warned {
  /// Steps (or `(run)`) flagged as blocked while us-east-1 is down.
  blocking: Vec<String>,
  /// Every (service, operation) the plan lists as sent to an endpoint in us-east-1.
  in_down_region: Vec<(String, String)>,
}

/// `drctl COMMAND runbooks/RUNBOOK.yaml` against the downed world, failing over to us-west-2,
/// with `extra` arguments.
fn against_the_down_world(test: &Test, command: &str, runbook: &str, extra: &[&str]) -> Run {
  let path = repo().join("runbooks").join(format!("{runbook}.yaml"));
  let path = path.to_string_lossy();
  let mut args = vec![
    command,
    &path,
    "-p",
    "target_region=us-west-2",
    "--sim",
    "down.yaml",
    "--time-scale",
    "600",
  ];
  args.extend_from_slice(extra);
  test.run_args(&args)
}

fn plan(test: &Test, runbook: &str) -> Warned {
  let out = against_the_down_world(test, "plan", runbook, &["--output", "json"]);
  let plan: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap_or_default();
  let analysis = &plan["static_stability"];
  let blocking = analysis["dependencies"]
    .as_array()
    .into_iter()
    .flatten()
    .filter(|dependency| dependency["severity"] == "blocks")
    .map(|dependency| dependency["step"].as_str().unwrap_or("(run)").to_owned())
    .collect();
  let steps = analysis["steps"].as_array().into_iter().flatten();
  let in_down_region = steps
    .flat_map(|step| step["endpoints"].as_array().into_iter().flatten())
    .chain(analysis["run"].as_array().into_iter().flatten())
    .filter(|endpoint| {
      endpoint["regions"]
        .as_array()
        .is_some_and(|regions| regions.iter().any(|region| region == "us-east-1"))
    })
    .map(|endpoint| {
      let text = |key: &str| endpoint[key].as_str().unwrap_or_default().to_owned();
      (text("service"), text("operation"))
    })
    .collect();
  Warned {
    blocking,
    in_down_region,
  }
}

/// The refused calls of a run (service, operation) that the plan did not list as going to
/// us-east-1: with us-east-1 down, every call there is refused, so each refusal is a call the
/// plan must have listed in that region.
fn unlisted(outcome: &Outcome, warned: &Warned) -> Vec<String> {
  let mut missing: Vec<String> = outcome
    .refusals
    .lines()
    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    .map(|refusal| {
      let text = |key: &str| refusal[key].as_str().unwrap_or_default().to_owned();
      (text("service"), text("operation"))
    })
    .filter(|call| !warned.in_down_region.contains(call))
    .map(|(service, operation)| format!("{service} {operation}"))
    .collect();
  missing.sort();
  missing.dedup();
  missing
}

fn failover(test: &Test, runbook: &str) -> Outcome {
  let before = test.run_ids();
  let run = against_the_down_world(test, "run", runbook, &["--yes", "--accept-data-loss"]);
  let id = test.run_ids().into_iter().find(|id| !before.contains(id));
  let report = id
    .as_ref()
    .map(|id| {
      let out = test.run_args(["report", id, "--format", "json"]);
      serde_json::from_str(&out.stdout()).unwrap_or_default()
    })
    .unwrap_or_default();
  let refusals = id
    .as_ref()
    .and_then(|id| {
      std::fs::read_to_string(
        test
          .path()
          .join(".drctl/runs")
          .join(id)
          .join("refusals.jsonl"),
      )
      .ok()
    })
    .unwrap_or_default();
  let operations = id.map(|id| test.operations(&id)).unwrap_or_default();
  Outcome {
    code: run.code(),
    stderr: run.stderr(),
    report,
    operations,
    refusals,
  }
}

pub fn run(config: &Config) -> Vec<Figure> {
  let forms: &[&str] = if config.full {
    &["unreachable", "error", "timeout"]
  } else {
    &["unreachable"]
  };
  let mut figures = Vec::new();
  for form in forms {
    let test = Test::new().file("down.yaml", &down_world(form));

    // The Route 53 API path: fails at its first Route 53 call, naming the dependency, and
    // changes nothing.
    let api_plan = plan(&test, "regional-failover");
    let api = failover(&test, "regional-failover");
    let named = api.stderr.contains("served only from us-east-1")
      && api.stderr.contains("route53")
      && api.stderr.contains("us-east-1 is down");
    let failed_first = api.step("verify-outage") == "failed" && api.step("flip-dns") == "pending";
    let met = api.code == 1 && named && failed_first && api.operations.is_empty();
    if !met {
      eprintln!(
        "   region-down/{form}: regional-failover exit {}, verify-outage {}, flip-dns {}, changes {:?}: {}",
        api.code,
        api.step("verify-outage"),
        api.step("flip-dns"),
        api.operations,
        api.stderr.trim()
      );
    }
    figures.push(Figure::new(
      SECTION,
      format!("{form}: Route 53 API runbook stops at its first Route 53 call, dependency named"),
      format!(
        "exit {}, {} change(s){}",
        api.code,
        api.operations.len(),
        if named { ", named" } else { ", not named" }
      ),
      "exit 1, 0 changes, named",
      met,
    ));

    // The plan had warned: the step the run failed at was flagged as blocked, and every call
    // the run sent to us-east-1 was listed there.
    let flagged = ["verify-outage", "flip-dns"]
      .iter()
      .all(|id| api_plan.blocking.iter().any(|step| step == id));
    let missing = unlisted(&api, &api_plan);
    let met = flagged && missing.is_empty() && !api.refusals.is_empty();
    if !met {
      eprintln!(
        "   region-down/{form}: plan of regional-failover flagged {:?}; refused calls not listed \
         in us-east-1: {missing:?}",
        api_plan.blocking
      );
    }
    figures.push(Figure::new(
      SECTION,
      format!("{form}: plan had warned: the failing steps flagged, every refused call listed"),
      format!(
        "{} flagged, {} refused call(s) unlisted",
        api_plan.blocking.join(", "),
        missing.len()
      ),
      "verify-outage and flip-dns flagged, 0 unlisted",
      met,
    ));

    // The data-plane path: completes with no Route 53 call.
    let arc_plan = plan(&test, "regional-failover-arc");
    let arc = failover(&test, "regional-failover-arc");
    let recovery = [
      "check-replica-lag",
      "promote-db",
      "scale-standby",
      "flip-dns",
      "standby-targets",
      "verify-secondary",
    ];
    let succeeded = recovery
      .iter()
      .filter(|id| arc.step(id) == "succeeded")
      .count();
    let rto_met = arc.report["objectives"]
      .as_array()
      .and_then(|objectives| objectives.iter().find(|o| o["name"] == "RTO"))
      .is_some_and(|rto| rto["verdict"] == "met");
    let flips = arc
      .operations
      .iter()
      .filter(|op| *op == "UpdateRoutingControlState")
      .count();
    let met = arc.code == 3
      && succeeded == recovery.len()
      && rto_met
      && flips == 2
      && arc.route53_calls() == 0;
    if !met {
      eprintln!(
        "   region-down/{form}: regional-failover-arc exit {}, {succeeded}/{} recovery steps, RTO met {rto_met}, changes {:?}, route53 calls {}: {}",
        arc.code,
        recovery.len(),
        arc.operations,
        arc.route53_calls(),
        arc.stderr.trim()
      );
    }
    figures.push(Figure::new(
      SECTION,
      format!("{form}: ARC runbook completes on data planes (RTO met, 0 Route 53 calls)"),
      format!(
        "{succeeded}/{} steps, {} Route 53 call(s), RTO {}",
        recovery.len(),
        arc.route53_calls(),
        if rto_met { "met" } else { "not met" }
      ),
      format!("{0}/{0}, 0, met", recovery.len()),
      met,
    ));
    let missing = unlisted(&arc, &arc_plan);
    let met = arc_plan.blocking.is_empty() && missing.is_empty();
    if !met {
      eprintln!(
        "   region-down/{form}: plan of regional-failover-arc flagged {:?}; refused calls not \
         listed in us-east-1: {missing:?}",
        arc_plan.blocking
      );
    }
    figures.push(Figure::new(
      SECTION,
      format!("{form}: plan of the ARC runbook: nothing blocking, every refused call listed"),
      format!(
        "{} blocking, {} refused call(s) unlisted",
        arc_plan.blocking.len(),
        missing.len()
      ),
      "0 blocking, 0 unlisted",
      met,
    ));
  }
  figures
}
