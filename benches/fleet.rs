//! P3: failing a fleet over under AWS's API rate limits, side by side with the single-service
//! regional failover, and P4's peak RSS of the fleet run.
//!
//! Both runs use the same simulated AWS: the same modelled timings (promote 5 m, tasks start in
//! 2 m, DNS propagates in 60 s, 20 ms per API call), the same time scale, and AWS's published
//! rate limits enforced by the simulator (`aws_rate_limits: true`: a call over the limit is
//! refused with `Throttling`). drctl paces itself with its client-side limiter (AWS's defaults)
//! and batches DNS changes per zone, so the fleet should take about as long as one service and
//! receive no throttling errors.
//!
//! The fleet: 500 ECS services, 100 RDS replicas and 1,000 DNS records (a PRIMARY/SECONDARY
//! failover pair per service) in 5 hosted zones, generated here as a world and a runbook whose
//! DAG mirrors `regional-failover.yaml`: verify the outage and probe users per zone → check
//! each replica's lag → promote each replica ∥ scale each service → flip each zone's records
//! in one change batch → verify each zone's public endpoint.

use std::{
  fmt::Write as _,
  path::{Path, PathBuf},
  process::{Command, Stdio},
  time::{Duration, Instant},
};

use drctl::cloud::{
  sim::{read_operation_log, read_refusals},
  MAX_BATCH_RECORDS,
};

use crate::{support, Config, Measured, Row};

/// The fleet's shape.
#[derive(Debug, Clone, Copy)]
struct Fleet {
  services: usize,
  replicas: usize,
  zones: usize,
  /// Modelled time runs this much faster than the wall.
  time_scale: f64,
}

impl Fleet {
  /// Two DNS records (PRIMARY and SECONDARY) per service.
  fn records(&self) -> usize {
    self.services * 2
  }

  fn zone_of(&self, service: usize) -> usize {
    service % self.zones
  }

  /// The service whose endpoints stand for its zone's regional edge (health checks, probes).
  fn edge_service(&self, zone: usize) -> usize {
    zone
  }
}

const FULL: Fleet = Fleet {
  services: 500,
  replicas: 100,
  zones: 5,
  time_scale: 40.0,
};

/// `cargo test --all-targets`: a tiny fleet, scaled so that a debug build runs it in seconds.
const SMOKE: Fleet = Fleet {
  services: 12,
  replicas: 4,
  zones: 3,
  time_scale: 400.0,
};

/// The modelled timings both runs share (the hand-run runbook's).
const TIMINGS: &str = "timings: { promote: 5m, ecs_task_start: 2m, ecs_drain: 30s, \
                       route53_propagation: 60s, restore: 10m, delete: 4m, global_failover: 1m, \
                       api_latency: 20ms }\n";

fn zone_id(zone: usize) -> String {
  format!("Z0FLEET{zone:04}")
}

fn zone_name(zone: usize) -> String {
  format!("zone{zone}.example.com")
}

/// The simulated world of the fleet: every primary in us-east-1 serving, every standby in
/// us-west-2 scaled to zero, replicas 4 s behind, each zone's primary health check inverted (a
/// game day, as the built-in world stages it).
fn fleet_world(fleet: &Fleet) -> String {
  let mut out = String::new();
  let _ = writeln!(out, "time_scale: {}", fleet.time_scale);
  out.push_str("seed: 1\naccount: \"123456789012\"\nregions: [us-east-1, us-west-2]\n");
  out.push_str("aws_rate_limits: true\n");
  out.push_str(TIMINGS);
  out.push_str("rds:\n  instances:\n");
  for i in 0..fleet.replicas {
    let _ = writeln!(
      out,
      "    - {{ id: db-{i}, region: us-east-1 }}\n    - {{ id: db-{i}-replica, region: us-west-2, \
       replica_of: \"arn:aws:rds:us-east-1:123456789012:db:db-{i}\", replica_lag: 4s }}"
    );
  }
  out.push_str("ecs:\n  services:\n");
  for j in 0..fleet.services {
    let _ = writeln!(
      out,
      "    - {{ region: us-east-1, cluster: app-primary, name: svc-{j}, desired: 3 }}\n    - {{ \
       region: us-west-2, cluster: app-standby, name: svc-{j}, desired: 0 }}"
    );
  }
  out.push_str("route53:\n  hosted_zones:\n");
  for zone in 0..fleet.zones {
    let name = zone_name(zone);
    let _ = writeln!(
      out,
      "    - id: {}\n      name: {name}.\n      records:",
      zone_id(zone)
    );
    for j in (0..fleet.services).filter(|&j| fleet.zone_of(j) == zone) {
      for (set, role, host, check) in [
        ("primary", "PRIMARY", "use1", "primary"),
        ("secondary", "SECONDARY", "usw2", "secondary"),
      ] {
        let _ = writeln!(
          out,
          "        - {{ name: svc-{j}.{name}., type: CNAME, set_identifier: {set}, failover: \
           {role}, ttl: 60, values: [svc-{j}-{host}.{name}], health_check_id: hc-{check}-{zone} }}"
        );
      }
    }
  }
  out.push_str("  health_checks:\n");
  for zone in 0..fleet.zones {
    let edge = fleet.edge_service(zone);
    let name = zone_name(zone);
    let _ = writeln!(
      out,
      "    - {{ id: hc-primary-{zone}, target: \"https://svc-{edge}-use1.{name}/health\", \
       inverted: true }}\n    - {{ id: hc-secondary-{zone}, target: \
       \"https://svc-{edge}-usw2.{name}/health\" }}"
    );
  }
  out.push_str("endpoints:\n");
  for zone in 0..fleet.zones {
    let edge = fleet.edge_service(zone);
    let name = zone_name(zone);
    let _ = writeln!(
      out,
      "  - {{ url: \"https://svc-{edge}-use1.{name}/health\", service: {{ region: us-east-1, \
       cluster: app-primary, service: svc-{edge} }} }}\n  - {{ url: \
       \"https://svc-{edge}-usw2.{name}/health\", service: {{ region: us-west-2, cluster: \
       app-standby, service: svc-{edge} }} }}\n  - {{ url: \"https://svc-{edge}.{name}/health\", \
       dns: {{ zone: {}, name: svc-{edge}.{name}. }} }}",
      zone_id(zone)
    );
  }
  out
}

/// The fleet's runbook, shaped like `regional-failover.yaml` at fleet scale.
fn fleet_runbook(fleet: &Fleet) -> String {
  let mut out = String::from(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata:\n  name: fleet-failover\n  description: \
     Generated by benches/fleet.rs\nobjectives: { rto: 15m, rpo: 5m }\ndefaults: { timeout: 10m, \
     retry: { attempts: 3, backoff: 2s, max_backoff: 30s } }\nsteps:\n",
  );
  let outage_steps: Vec<String> = (0..fleet.zones)
    .flat_map(|zone| {
      [
        format!("verify-outage-{zone}"),
        format!("probe-public-{zone}"),
      ]
    })
    .collect();
  for zone in 0..fleet.zones {
    let name = zone_name(zone);
    let edge = fleet.edge_service(zone);
    let _ = writeln!(
      out,
      "  - {{ id: verify-outage-{zone}, action: route53.health_check, with: {{ health_check_id: \
       hc-primary-{zone}, expect: unhealthy }}, budget: 30s }}\n  - {{ id: probe-public-{zone}, \
       action: http.check, with: {{ url: \"https://svc-{edge}.{name}/health\", expect_status: 503 \
       }}, budget: 10s }}"
    );
  }
  let outage = outage_steps.join(", ");
  for i in 0..fleet.replicas {
    let _ = writeln!(
      out,
      "  - {{ id: check-lag-{i}, action: rds.replica_status, needs: [{outage}], with: {{ region: \
       us-west-2, instance: db-{i}-replica, max_lag: \"${{{{ objectives.rpo }}}}\" }}, budget: 10s \
       }}\n  - {{ id: promote-{i}, action: rds.promote_replica, needs: [check-lag-{i}], with: {{ \
       region: us-west-2, instance: db-{i}-replica, max_lag: \"${{{{ objectives.rpo }}}}\" }}, \
       timeout: 20m, budget: 6m }}"
    );
  }
  for j in 0..fleet.services {
    let zone = fleet.zone_of(j);
    let _ = writeln!(
      out,
      "  - {{ id: scale-{j}, action: ecs.scale_service, needs: [verify-outage-{zone}, \
       probe-public-{zone}], with: {{ region: us-west-2, cluster: app-standby, service: svc-{j}, \
       desired_count: 3 }}, budget: 3m }}"
    );
  }
  let promotes: Vec<String> = (0..fleet.replicas)
    .map(|i| format!("promote-{i}"))
    .collect();
  for zone in 0..fleet.zones {
    let name = zone_name(zone);
    let edge = fleet.edge_service(zone);
    let members: Vec<usize> = (0..fleet.services)
      .filter(|&j| fleet.zone_of(j) == zone)
      .collect();
    let mut needs = promotes.clone();
    needs.extend(members.iter().map(|j| format!("scale-{j}")));
    let _ = writeln!(
      out,
      "  - id: flip-dns-{zone}\n    action: route53.failover\n    needs: [{}]\n    timeout: 5m\n    \
       budget: 90s\n    with:\n      zone_id: {}\n      records:",
      needs.join(", "),
      zone_id(zone)
    );
    for j in members {
      let _ = writeln!(
        out,
        "        - {{ name: svc-{j}.{name}, set_identifier: primary, failover: PRIMARY, value: \
         svc-{j}-usw2.{name}, health_check_id: hc-secondary-{zone} }}\n        - {{ name: \
         svc-{j}.{name}, set_identifier: secondary, failover: SECONDARY, value: \
         svc-{j}-use1.{name}, health_check_id: hc-primary-{zone} }}"
      );
    }
    let _ = writeln!(
      out,
      "  - {{ id: verify-secondary-{zone}, action: http.check, needs: [flip-dns-{zone}], with: {{ \
       url: \"https://svc-{edge}.{name}/health\", expect_status: 200, within: 5m }}, budget: 30s }}"
    );
  }
  out
}

/// The built-in world with the fleet's settings: AWS's limits enforced, the same timings and
/// time scale.
fn single_world(fleet: &Fleet) -> String {
  let world = drctl::cloud::sim::BUILTIN_WORLD;
  let mut out = String::new();
  for line in world.lines() {
    if line.starts_with("time_scale:") {
      let _ = writeln!(
        out,
        "time_scale: {}\naws_rate_limits: true",
        fleet.time_scale
      );
    } else if line.starts_with("timings:") {
      out.push_str(TIMINGS);
    } else if line.starts_with("  ") && out.ends_with("api_latency: 20ms }\n") {
      // The built-in timings' body, replaced by TIMINGS above.
    } else {
      out.push_str(line);
      out.push('\n');
    }
  }
  out
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Sample {
  wall: Duration,
  /// Peak resident set (VmHWM) of the drctl process, in KiB.
  peak_rss_kib: u64,
  /// ChangeResourceRecordSets calls accepted, per zone.
  dns_batches: std::collections::BTreeMap<String, usize>,
  /// Calls the simulator refused with a throttling error.
  throttled: usize,
  /// Steps journalled as succeeded.
  succeeded_steps: usize,
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
  let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
  status
    .lines()
    .find_map(|line| line.strip_prefix("VmHWM:"))
    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Run `drctl run` in `dir` and measure it. Panics when the run does not succeed: a benchmark
/// of a failed failover measures nothing.
fn measure(dir: &Path, runbook: &str, world: &str, params: &[&str]) -> Sample {
  let state = dir.join(format!("state-{}", fastrand::u64(..)));
  let log = dir.join("output.log");
  let output = std::fs::File::create(&log).expect("a log file");
  let mut command = Command::new(support::BIN);
  command
    .current_dir(dir)
    .args([
      "run",
      runbook,
      "--yes",
      "--max-parallel",
      "4096",
      "--sim",
      world,
    ])
    .arg("--state")
    .arg(&state)
    .env_remove("SLACK_WEBHOOK_URL")
    .env("NO_COLOR", "1")
    .stdin(Stdio::null())
    .stdout(output.try_clone().expect("a log file"))
    .stderr(output);
  for param in params {
    command.args(["-p", param]);
  }
  let start = Instant::now();
  let mut child = command.spawn().expect("drctl starts");
  let pid = child.id();
  // VmHWM is the process's high-water mark: the last value read before it exits is its peak
  // (to within the 5 ms polling interval at the very end).
  let mut peak = 0;
  let status = loop {
    if let Some(kib) = vm_hwm_kib(pid) {
      peak = peak.max(kib);
    }
    match child.try_wait().expect("waiting for drctl") {
      Some(status) => break status,
      None => std::thread::sleep(Duration::from_millis(5)),
    }
  };
  let wall = start.elapsed();
  let text = std::fs::read_to_string(&log).unwrap_or_default();
  assert!(
    status.success(),
    "drctl run {runbook} failed ({status}):\n{}",
    text
      .lines()
      .rev()
      .take(40)
      .collect::<Vec<_>>()
      .into_iter()
      .rev()
      .collect::<Vec<_>>()
      .join("\n")
  );
  let runs = state.join("runs");
  let run_dir: PathBuf = std::fs::read_dir(&runs)
    .expect("the run's directory")
    .flatten()
    .map(|entry| entry.path())
    .next()
    .expect("one run");
  let mut dns_batches = std::collections::BTreeMap::new();
  for op in read_operation_log(&run_dir).expect("the operation log") {
    if op.operation == drctl::cloud::ops::route53::CHANGE_RESOURCE_RECORD_SETS.name {
      *dns_batches.entry(op.target).or_insert(0) += 1;
    }
  }
  let throttled = read_refusals(&run_dir)
    .expect("the refusals")
    .iter()
    .filter(|refused| {
      refused
        .code
        .as_deref()
        .is_some_and(|code| code.starts_with("Throttling"))
    })
    .count();
  let journal = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap_or_default();
  let succeeded_steps = journal.matches("\"step_succeeded\"").count();
  if std::env::var_os("DRCTL_BENCH_KEEP").is_none() {
    let _ = std::fs::remove_dir_all(&state);
  }
  Sample {
    wall,
    peak_rss_kib: peak,
    dns_batches,
    throttled,
    succeeded_steps,
  }
}

fn median(mut values: Vec<f64>) -> f64 {
  values.sort_by(f64::total_cmp);
  let n = values.len();
  if n == 0 {
    return f64::NAN;
  }
  if n % 2 == 1 {
    values[n / 2]
  } else {
    (values[n / 2 - 1] + values[n / 2]) / 2.0
  }
}

pub fn run(config: &Config) -> Measured {
  let fleet = if config.bench { FULL } else { SMOKE };
  let dir = tempfile::tempdir().expect("a temporary directory");
  let files = dir.path();
  // DRCTL_BENCH_KEEP=1 keeps the generated files and every run's state, for profiling.
  if std::env::var_os("DRCTL_BENCH_KEEP").is_some() {
    eprintln!("   keeping {}", files.display());
  }
  std::fs::write(files.join("fleet.yaml"), fleet_runbook(&fleet)).unwrap();
  std::fs::write(files.join("fleet-world.yaml"), fleet_world(&fleet)).unwrap();
  std::fs::write(files.join("single-world.yaml"), single_world(&fleet)).unwrap();
  let single_runbook = support::repo().join("runbooks/regional-failover.yaml");
  let single_runbook = single_runbook.to_string_lossy().into_owned();

  let validate = Command::new(support::BIN)
    .current_dir(files)
    .args(["validate", "fleet.yaml"])
    .output()
    .expect("drctl validate runs");
  assert!(
    validate.status.success(),
    "the generated fleet runbook does not validate:\n{}{}",
    String::from_utf8_lossy(&validate.stdout),
    String::from_utf8_lossy(&validate.stderr)
  );

  let mut singles = Vec::new();
  let mut fleets = Vec::new();
  for repeat in 0..config.repeats.max(1) {
    // Side by side, alternating, so drift in the machine's load hits both alike.
    let single = measure(
      files,
      &single_runbook,
      "single-world.yaml",
      &["target_region=us-west-2"],
    );
    let run = measure(files, "fleet.yaml", "fleet-world.yaml", &[]);
    eprintln!(
      "   fleet repeat {}: single {:.2}s, fleet {:.2}s, {} MB peak, {} throttled",
      repeat + 1,
      single.wall.as_secs_f64(),
      run.wall.as_secs_f64(),
      run.peak_rss_kib / 1024,
      run.throttled + single.throttled
    );
    singles.push(single);
    fleets.push(run);
  }

  // Every step of the fleet ran (the two notify-free DAGs have no skipped steps).
  let steps = fleet.zones * 4 + fleet.replicas * 2 + fleet.services;
  for run in &fleets {
    assert_eq!(run.succeeded_steps, steps, "every fleet step succeeded");
  }
  let records_per_zone = fleet.records() / fleet.zones;
  let expected_batches: usize = (0..fleet.zones)
    .map(|_| records_per_zone.div_ceil(MAX_BATCH_RECORDS))
    .sum();

  let single_wall = median(singles.iter().map(|s| s.wall.as_secs_f64()).collect());
  let fleet_wall = median(fleets.iter().map(|s| s.wall.as_secs_f64()).collect());
  let ratio = fleet_wall / single_wall;
  let batches = median(
    fleets
      .iter()
      .map(|s| s.dns_batches.values().sum::<usize>() as f64)
      .collect(),
  );
  let max_batches_one_zone = fleets
    .iter()
    .flat_map(|s| s.dns_batches.values().copied())
    .max()
    .unwrap_or(0);
  let throttled_fleet: usize = fleets.iter().map(|s| s.throttled).sum();
  let throttled_single: usize = singles.iter().map(|s| s.throttled).sum();
  let rss_mb = median(
    fleets
      .iter()
      .map(|s| s.peak_rss_kib as f64 / 1024.0)
      .collect(),
  );

  if !config.bench {
    // Smoke: the harness works end to end and the claims hold at a tiny size.
    assert_eq!(
      batches as usize, expected_batches,
      "one change batch per zone"
    );
    assert_eq!(throttled_fleet + throttled_single, 0, "no throttling");
    assert!(rss_mb > 0.0, "peak RSS was read");
  }

  let rows = vec![
    Row::new(
      "P3",
      format!(
        "fleet failover wall time / single-service failover ({} services, {} replicas, {} \
         records in {} zones)",
        fleet.services,
        fleet.replicas,
        fleet.records(),
        fleet.zones
      ),
      format!("{ratio:.2}× ({fleet_wall:.1} s / {single_wall:.1} s)"),
      "≤ 1.2×",
      ratio <= 1.2,
    ),
    Row::new(
      "P3",
      "Route 53 ChangeResourceRecordSets calls (fleet)",
      format!("{batches} (at most {max_batches_one_zone} in one zone)"),
      format!("≤ Σ⌈records/1000⌉ per zone = {expected_batches}"),
      batches as usize <= expected_batches,
    ),
    Row::new(
      "P3",
      "throttling errors received (fleet + single, all repeats)",
      throttled_fleet + throttled_single,
      "0",
      throttled_fleet + throttled_single == 0,
    ),
    Row::new(
      "P4",
      "peak RSS of the fleet run (VmHWM)",
      format!("{rss_mb:.1} MB"),
      "< 50 MB",
      rss_mb < 50.0,
    ),
    Row::info("P3", "steps in the fleet's DAG", steps),
  ];

  let mut notes = String::new();
  let _ = writeln!(
    notes,
    "Method: `drctl run` (the real binary) on the simulator at ×{} with the hand-run runbook's \
     modelled timings (promote 5 m, ECS tasks start in 2 m, DNS propagates in 60 s, 20 ms per API \
     call) and `aws_rate_limits: true`, so the simulator refuses any call over AWS's published \
     limits with `Throttling`: Route 53 5 requests/s per account (AWS re:Post, *How do I avoid \
     Route 53 API throttling errors*), RDS 300 burst / 12 per s per region (RDS User Guide, \
     *Request throttling for the Amazon RDS API*), ECS `DescribeServices` 50 burst / 20 per s \
     (ECS API Reference, *Request throttling*), `UpdateService` 20 / 5 per s (conservative; not \
     confirmed from the docs), CloudWatch `GetMetricStatistics` 400 per s. drctl runs with its \
     default client-side limits (the same figures, per API family and region) and \
     `--max-parallel 4096`.",
    fleet.time_scale
  );
  let _ = writeln!(
    notes,
    "\nThe fleet runbook is generated ({steps} steps): per zone verify the outage and probe \
     users; per replica check lag then promote; per service scale the standby; per zone flip \
     its {records_per_zone} records (a PRIMARY/SECONDARY pair per service) with one \
     `route53.failover` step, which reads the zone in 300-record pages and sends one atomic \
     change batch per zone (Route 53 takes at most 1,000 `ResourceRecord` elements per request \
     and counts an UPSERT's twice, so a batch holds at most 500 single-value UPSERTs; zones of \
     up to 500 records need one batch, which is what ⌈records/1000⌉ per zone also gives here); \
     then verify each zone's public endpoint. The single-service run is \
     `runbooks/regional-failover.yaml` on the built-in world with the same settings."
  );
  let _ = writeln!(
    notes,
    "\nThrottling errors are the simulator's record of refused calls (`refusals.jsonl` in the \
     run directory), whether or not a retry hid them. Peak RSS is the drctl process's VmHWM \
     from /proc, polled every 5 ms until it exits. {} repetition(s), medians; samples (single \
     s / fleet s / fleet MB): {}.",
    fleets.len(),
    singles
      .iter()
      .zip(&fleets)
      .map(|(single, fleet)| format!(
        "{:.2} / {:.2} / {:.1}",
        single.wall.as_secs_f64(),
        fleet.wall.as_secs_f64(),
        fleet.peak_rss_kib as f64 / 1024.0
      ))
      .collect::<Vec<_>>()
      .join(", ")
  );
  if std::env::var_os("DRCTL_BENCH_KEEP").is_some() {
    let _ = dir.keep();
  }
  Measured { rows, notes }
}
