//! `drctl plan`'s static-stability analysis: the endpoints each step of a live run calls
//! (service, region, control or data plane) and the dependencies on the region it fails away
//! from, with the alternative for each.

use serde_json::Value;

use crate::support::Test;

fn plan_json(test: &Test, args: &[&str]) -> Value {
  let mut all = vec!["plan"];
  all.extend_from_slice(args);
  all.extend_from_slice(&["--sim", "--output", "json"]);
  let run = test.run_args(&all);
  serde_json::from_str(&run.stdout()).unwrap_or_else(|err| panic!("{err}: {}", run.stderr()))
}

fn blocking(plan: &Value) -> Vec<String> {
  plan["static_stability"]["dependencies"]
    .as_array()
    .unwrap()
    .iter()
    .filter(|d| d["severity"] == "blocks")
    .map(|d| d["step"].as_str().unwrap_or("(run)").to_owned())
    .collect()
}

/// Every step of every shipped runbook is listed, each AWS action with at least one endpoint,
/// every endpoint with its region(s) known before the run and a plane and endpoint kind.
#[test]
fn every_shipped_runbook_lists_each_steps_endpoints_with_their_regions() {
  let test = Test::new();
  for (runbook, params) in [
    ("regional-failover", vec!["-p", "target_region=us-west-2"]),
    (
      "regional-failover-arc",
      vec!["-p", "target_region=us-west-2"],
    ),
    ("failback", vec![]),
    ("backup-restore-validation", vec![]),
    ("snapshot-age", vec![]),
  ] {
    let path = format!("runbooks/{runbook}.yaml");
    let mut args = vec![path.as_str()];
    args.extend(params);
    let plan = plan_json(&test, &args);
    let listed = plan["static_stability"]["steps"].as_array().unwrap();
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(listed.len(), steps.len(), "{runbook}");
    for step in listed {
      let action = step["action"].as_str().unwrap();
      let family = action.split('.').next().unwrap();
      let endpoints = step["endpoints"].as_array().unwrap();
      let aws = !["exec", "wait", "http", "notify"].contains(&family);
      assert_eq!(!endpoints.is_empty(), aws, "{runbook} {step}");
      for endpoint in endpoints {
        let regions = endpoint["regions"].as_array().unwrap();
        assert!(!regions.is_empty(), "{runbook}: {endpoint}");
        assert!(
          regions
            .iter()
            .all(|r| r.as_str().is_some_and(|r| r.matches('-').count() >= 2)),
          "{runbook}: {endpoint}"
        );
        assert!(["control", "data"].contains(&endpoint["plane"].as_str().unwrap()));
        assert!(["regional", "global"].contains(&endpoint["endpoint"].as_str().unwrap()));
        if endpoint["service"] == "route53" {
          assert_eq!(endpoint["endpoint"], "global", "{endpoint}");
          assert_eq!(endpoint["regions"], serde_json::json!(["us-east-1"]));
        }
      }
    }
  }
}

/// Failing away from us-east-1, the Route 53 API runbook is told its Route 53 steps are
/// blocked and what to use instead; the ARC runbook has nothing blocking. Failing away from
/// another region, Route 53's us-east-1 control plane is not flagged.
#[test]
fn the_route53_runbook_is_flagged_leaving_us_east_1_and_the_arc_one_is_not() {
  let test = Test::new();
  let api = plan_json(
    &test,
    &[
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
    ],
  );
  assert_eq!(
    api["static_stability"]["leaving"],
    serde_json::json!({ "region": "us-east-1", "from": "params.source_region" })
  );
  assert_eq!(blocking(&api), ["verify-outage", "flip-dns"]);
  let flip = api["static_stability"]["dependencies"]
    .as_array()
    .unwrap()
    .iter()
    .find(|d| d["step"] == "flip-dns")
    .unwrap();
  assert!(flip["why"]
    .as_str()
    .unwrap()
    .contains("served only from us-east-1"));
  assert!(flip["alternative"]
    .as_str()
    .unwrap()
    .contains("arc.routing_control"));

  let arc = plan_json(
    &test,
    &[
      "runbooks/regional-failover-arc.yaml",
      "-p",
      "target_region=us-west-2",
    ],
  );
  assert!(blocking(&arc).is_empty(), "{}", arc["static_stability"]);

  let back = plan_json(
    &test,
    &[
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-east-1",
      "-p",
      "source_region=us-west-2",
    ],
  );
  assert!(blocking(&back).is_empty(), "{}", back["static_stability"]);
  let fences: Vec<&str> = back["static_stability"]["dependencies"]
    .as_array()
    .unwrap()
    .iter()
    .filter(|d| d["severity"] == "fence")
    .map(|d| d["step"].as_str().unwrap())
    .collect();
  assert_eq!(fences, ["fence-source-service", "fence-source-db"]);
}

/// The text form says the same, and `--leaving` overrides the runbook's `source_region`.
#[test]
fn plan_text_names_the_dependency_and_the_alternative_and_leaving_overrides() {
  let test = Test::new();
  let run = test
    .run_args([
      "plan",
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "--sim",
    ])
    .status(0);
  let text = run.stdout();
  assert!(
    text.contains("Static stability: the endpoints a live run calls"),
    "{text}"
  );
  assert!(
    text.contains("route53 control plane (global, served from us-east-1)"),
    "{text}"
  );
  assert!(
    text.contains("Depends on us-east-1, the region it fails away from (params.source_region)"),
    "{text}"
  );
  assert!(
    text.contains("BLOCKS  flip-dns: route53 control plane"),
    "{text}"
  );
  assert!(
    text.contains("instead: Route 53 ARC routing controls"),
    "{text}"
  );
  assert!(
    text.contains("2 dependencies on us-east-1 would stop a run while us-east-1 is down"),
    "{text}"
  );

  let elsewhere = test
    .run_args([
      "plan",
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "--leaving",
      "eu-west-1",
      "--sim",
    ])
    .status(0);
  assert!(
    elsewhere
      .stdout()
      .contains("nothing depends on eu-west-1, the region it fails away from (--leaving)"),
    "{}",
    elsewhere.stdout()
  );
}

/// A notification URL in a secret is weighed: an API Gateway in the region left is flagged by
/// its host, as the plan's change line shows it, and its path and query (the token) are never
/// printed.
#[test]
fn a_secret_notification_url_is_flagged_without_showing_it() {
  let secret = "https://a1b2c3.execute-api.us-east-1.amazonaws.com/prod/hook?token=k7Qp2ZxW9v";
  let test = Test::new().env("DR_HOOK_URL", secret).file(
    "hook.yaml",
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: hook }\nparams:\n  \
       source_region: { type: string, default: us-east-1 }\nsteps:\n  - id: tell\n    \
       action: notify.webhook\n    with: { url: \"${{ secrets.DR_HOOK_URL }}\" }\n",
  );
  let text = test.run_args(["plan", "hook.yaml", "--sim"]).stdout();
  assert!(
    !text.contains("k7Qp2ZxW9v") && !text.contains("/prod/hook"),
    "{text}"
  );
  assert!(
    text.contains("caution tell: HTTP endpoint a1b2c3.execute-api.us-east-1.amazonaws.com"),
    "{text}"
  );
  let json = test
    .run_args(["plan", "hook.yaml", "--sim", "--output", "json"])
    .stdout();
  assert!(
    !json.contains("k7Qp2ZxW9v") && !json.contains("/prod/hook"),
    "{json}"
  );
  let plan: Value = serde_json::from_str(&json).unwrap();
  assert_eq!(
    plan["static_stability"]["steps"][0]["http_hosts"][0]["region"],
    "us-east-1"
  );
}

/// Before a live run starts, one line says which steps depend on the region it leaves; the ARC
/// failover, which has none, says nothing of the kind.
#[test]
fn a_live_run_names_its_steps_that_depend_on_the_region_it_leaves() {
  let test = Test::new();
  let run_of = |runbook: &str| {
    test.run_args([
      "run",
      runbook,
      "-p",
      "target_region=us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "600",
    ])
  };
  let api = run_of("runbooks/regional-failover.yaml");
  assert!(
    api.stderr().contains(
      "warning: verify-outage, flip-dns depend on us-east-1, the region this run fails away from"
    ),
    "{}",
    api.stderr()
  );
  let arc = run_of("runbooks/regional-failover-arc.yaml");
  assert!(
    !arc.stderr().contains("the region this run fails away from"),
    "{}",
    arc.stderr()
  );
}
