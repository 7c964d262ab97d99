//! `drctl plan`'s exit codes, for a CI preflight: a probe that could not ask (the backend
//! failed, not the check) is exit 1, never "fits the RTO" and 0; a check that answered "not
//! yet" is fine. With `--detailed-exitcode`: 0 nothing to change, 5 changes pending.

use drctl::cloud::sim::BUILTIN_WORLD;
use serde_json::Value;

use crate::support::Test;

/// One mutating step on the built-in world's primary ECS service (3 tasks desired, 3 running).
fn scale_to(count: u32) -> String {
  format!(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: scale }}\n\
     objectives: {{ rto: 15m }}\nsteps:\n  - id: scale\n    action: ecs.scale_service\n    \
     budget: 1m\n    with: {{ region: us-east-1, cluster: app-primary, service: api, \
     desired_count: {count} }}\n"
  )
}

/// A check on the built-in world's primary health check (inverted: unhealthy) expecting it
/// healthy: answered, and "not yet".
const NOT_YET: &str = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: not-yet }\n\
                       steps:\n  - id: secondary-down\n    action: route53.health_check\n    \
                       with: { health_check_id: hc-primary, expect: healthy }\n";

/// The built-in world with `faults` (YAML flow map) injected.
fn world_with(faults: &str) -> String {
  assert!(BUILTIN_WORLD.contains("faults: {}"));
  BUILTIN_WORLD.replace("faults: {}", &format!("faults: {faults}"))
}

/// `drctl plan runbook.yaml` on `world` (text and JSON): the exit codes and the JSON report.
fn plan(world: &str, runbook: &str, detailed: bool) -> (i32, i32, Value, String) {
  let test = Test::new()
    .file("world.yaml", world)
    .file("runbook.yaml", runbook);
  let mut args = vec!["plan", "runbook.yaml", "--sim", "world.yaml"];
  if detailed {
    args.push("--detailed-exitcode");
  }
  let text = test.run_args(&args);
  args.extend(["--output", "json"]);
  let json = test.run_args(&args);
  let report: Value = serde_json::from_str(&json.stdout())
    .unwrap_or_else(|err| panic!("{err}: {}{}", json.stdout(), json.stderr()));
  (text.code(), json.code(), report, text.stdout())
}

#[test]
fn a_probe_that_could_not_ask_exits_1() {
  // An effect's observe (DescribeServices) answered 500.
  let (code, json_code, report, text) =
    plan(&world_with("{ ecs: { error: 1.0 } }"), &scale_to(3), false);
  assert_eq!((code, json_code), (1, 1), "{text}");
  assert_eq!(report["steps"][0]["status"], "error", "{report}");
  assert!(
    text.contains(
      "error: 1 step(s) could not be probed (status `error` above): this plan is incomplete"
    ),
    "{text}"
  );
  // A check's probe (GetHealthCheckStatus) throttled every time: not "not yet" either.
  let (code, _, report, text) = plan(
    &world_with("{ route53: { throttle: 1.0 } }"),
    NOT_YET,
    false,
  );
  assert_eq!(code, 1, "{text}");
  assert_eq!(report["steps"][0]["status"], "error", "{report}");
  // --detailed-exitcode does not hide it.
  let (code, _, _, text) = plan(&world_with("{ ecs: { error: 1.0 } }"), &scale_to(5), true);
  assert_eq!(code, 1, "{text}");
}

#[test]
fn not_yet_is_not_an_error() {
  let (code, json_code, report, text) = plan(BUILTIN_WORLD, NOT_YET, false);
  assert_eq!((code, json_code), (0, 0), "{text}");
  assert_eq!(report["steps"][0]["status"], "probe_failed", "{report}");
  assert!(!text.contains("could not be probed"), "{text}");
  // Nothing mutates: nothing to change.
  assert_eq!(plan(BUILTIN_WORLD, NOT_YET, true).0, 0);
}

#[test]
fn detailed_exitcode_tells_nothing_to_change_from_changes_pending() {
  // 3 tasks desired and running: nothing to change.
  let (code, _, report, text) = plan(BUILTIN_WORLD, &scale_to(3), true);
  assert_eq!(code, 0, "{text}");
  assert_eq!(report["steps"][0]["status"], "no_change", "{report}");
  // 5: changes pending, with the flag only.
  let (code, json_code, report, text) = plan(BUILTIN_WORLD, &scale_to(5), true);
  assert_eq!((code, json_code), (5, 5), "{text}");
  assert_eq!(report["steps"][0]["status"], "would_change", "{report}");
  assert_eq!(plan(BUILTIN_WORLD, &scale_to(5), false).0, 0);
  // The shipped failover, before a failover: changes pending.
  let test = Test::new();
  let run = test.run_args([
    "plan",
    "regional-failover.yaml",
    "-p",
    "target_region=us-west-2",
    "--detailed-exitcode",
  ]);
  assert_eq!(run.code(), 5, "{}{}", run.stdout(), run.stderr());
}

/// The codes are documented where an operator looks: `drctl --help` and `plan --help`.
#[test]
fn the_plan_codes_are_in_the_help() {
  let help = Test::new().run_args(["--help"]).status(0).stdout();
  assert!(
    help.contains("5 `plan --detailed-exitcode`: changes pending"),
    "{help}"
  );
  let help = Test::new().run_args(["plan", "--help"]).status(0).stdout();
  assert!(help.contains("--detailed-exitcode"), "{help}");
  assert!(
    help.contains("Exit 5 when a run would change the world"),
    "{help}"
  );
}
