//! Commands that read and describe: schema, graph, plan and dry runs, and exit codes.

use crate::support::Test;

#[test]
fn schema_is_a_json_schema_covering_every_action() {
  let run = Test::new().args(["schema"]).run().status(0);
  let schema: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
  assert!(schema["$schema"]
    .as_str()
    .unwrap()
    .contains("json-schema.org"));
  let text = run.stdout();
  for action in [
    "rds.promote_replica",
    "route53.failover",
    "ecs.scale_service",
    "notify.pagerduty",
    "wait.until",
  ] {
    assert!(text.contains(action), "schema lacks {action}");
  }
}

#[test]
fn graph_prints_mermaid_edges() {
  let run = Test::new()
    .args(["graph", "runbooks/regional-failover.yaml"])
    .run()
    .status(0);
  let text = run.stdout();
  assert!(text.starts_with("flowchart TD\n"));
  assert!(text.contains("  promote_db --> flip_dns\n"));
  assert!(text.contains("  scale_standby --> flip_dns\n"));
}

#[test]
fn plan_lists_every_step_with_its_change_and_the_critical_path_against_the_rto() {
  let test = Test::new();
  let run = test
    .run_args([
      "plan",
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "--sim",
      "--output",
      "json",
    ])
    .status(0);
  let plan: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
  let steps = plan["steps"].as_array().unwrap();
  assert_eq!(steps.len(), 8);
  let step = |id: &str| steps.iter().find(|step| step["id"] == id).unwrap().clone();
  for step in steps {
    assert!(step["mutating"].is_boolean(), "{step}");
  }
  let promote = step("promote-db");
  assert_eq!(promote["mutating"], true);
  assert_eq!(promote["status"], "would_change");
  assert!(promote["current"]
    .as_str()
    .unwrap()
    .contains("replica of arn:aws:rds:us-east-1"));
  assert!(promote["change"]
    .as_str()
    .unwrap()
    .contains("promote `app-db-replica`"));
  assert_eq!(
    promote["mutating_operations"],
    serde_json::json!(["PromoteReadReplica"])
  );
  let scale = step("scale-standby");
  assert_eq!(scale["change"], "desired count 0 -> 3");
  assert_eq!(step("verify-outage")["status"], "probe_passed");
  assert_eq!(step("verify-secondary")["status"], "after_dependencies");
  assert_eq!(
    plan["critical_path"],
    serde_json::json!([
      "verify-outage",
      "check-replica-lag",
      "promote-db",
      "flip-dns",
      "verify-secondary"
    ])
  );
  assert_eq!(plan["estimated_duration"], "8m40s");
  assert_eq!(plan["rto"], "15m");
  assert_eq!(plan["fits_rto"], true);
  // A plan changes nothing and leaves no run behind.
  assert!(test.run_ids().is_empty());
}

#[test]
fn dry_run_makes_no_run_and_no_change() {
  let test = Test::new();
  let run = test
    .run_args(["failover", "us-west-2", "--dry-run", "--sim"])
    .status(0);
  assert!(
    run.stdout().contains("nothing was changed (dry run)"),
    "{}",
    run.stdout()
  );
  assert!(run
    .stdout()
    .contains("promote-db [rds.promote_replica] mutating — would change"));
  assert!(test.run_ids().is_empty());
}

#[test]
fn bad_params_are_usage_errors() {
  let test = Test::new();
  let run = test
    .run_args(["failover", "eu-central-9", "--sim", "--yes"])
    .status(2);
  assert!(run.stderr().contains("eu-central-9"), "{}", run.stderr());
  let run = test
    .run_args(["run", "runbooks/regional-failover.yaml", "--sim", "--yes"])
    .status(2);
  assert!(run.stderr().contains("target_region"), "{}", run.stderr());
}

#[test]
fn an_approval_without_a_terminal_or_yes_is_refused_clearly() {
  let test = Test::new();
  let run = test
    .run_args([
      "run",
      "runbooks/failback.yaml",
      "--sim",
      "--time-scale",
      "600",
    ])
    .status(1);
  assert!(
    run.stderr().contains("step `flip-dns-home` needs approval")
      && run.stderr().contains("re-run with --yes"),
    "{}",
    run.stderr()
  );
}

#[test]
fn a_run_that_misses_its_rto_ends_breached_with_exit_3() {
  let test = Test::new().file(
    "slow.yaml",
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: slow }
objectives: { rto: 1m }
steps:
  - id: recover
    action: wait.sleep
    with: { duration: 2m }
  - id: tell
    action: wait.sleep
    needs: [recover]
    recovery: false
    with: { duration: 1m }
"#,
  );
  let run = test
    .run_args(["run", "slow.yaml", "--sim", "--time-scale", "60"])
    .status(3);
  // Scheduling delays on a loaded machine are multiplied by the time scale: check the verdict,
  // not the exact figure.
  assert!(run.stdout().contains("RTO achieved 2m"), "{}", run.stdout());
  assert!(
    run.stdout().contains("/ target 1m  BREACHED"),
    "{}",
    run.stdout()
  );
  assert!(run.stdout().contains("result: breached"));
}

#[test]
fn a_live_failover_without_a_terminal_or_yes_is_refused_before_any_change() {
  let test = Test::new();
  let run = test
    .run_args(["failover", "us-west-2", "--sim", "--time-scale", "200"])
    .status(1);
  assert!(
    run.stderr().contains(
      "a live failover needs the operator to confirm the target region on a terminal, or --yes"
    ),
    "{}",
    run.stderr()
  );
  assert!(test.run_ids().is_empty(), "no run was started");
}
