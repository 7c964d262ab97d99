//! Reliability section `faults`: throttling (30 %), 5xx (10 %), latency and hung calls on every
//! backend, with the real binary.
//!
//! * **Simulator.** The built-in world with seeded faults on every AWS service (`rds`, `ecs`,
//!   `route53`, `s3`; HTTP probes are left alone so that a failure is about AWS): throttling
//!   30 %, 5xx 10 %, hung calls 1 %, and extra latency on the polled operations. Runs of
//!   `regional-failover` as shipped (three attempts per step), of a copy with 200 attempts per
//!   step and no hangs, and of `backup-restore-validation`.
//! * **SDK.** A loopback fault proxy ([`faultproxy`]) in front of a seeded moto server answers
//!   each AWS API call, at random, with that protocol's throttling error, a 5xx, a latency
//!   spike, or no answer at all; the rest it forwards. `drctl --sandbox` runs 200-attempt copies
//!   of `regional-failover` and `backup-restore-validation` through it.
//!
//! Every run is watched from outside: a run that prints nothing for two minutes (or passes a
//! generous cap) is killed and counted as hung. Every AWS error printed (`SERVICE OPERATION
//! (REGION, account ...): CODE: MESSAGE (HTTP n, request id ID)`) must carry its request id, and
//! every AWS error shown, journalled or logged as a per-call retry must be one line with no Rust
//! `Debug` syntax. An `AccessDenied` the proxy serves must be shown whole (IAM's message names
//! the missing permission) with region and account, and `plan` against a refused loopback port
//! must name the host and "connection refused". For every failed run, the error the
//! user saw (the `✗` line) must be an AWS error whose code and request id match the journal's,
//! or a hung call's timeout (the attempt timeout, 20 s on both backends, or the step's). A step
//! that stops on a retryable error must have used all its attempts: a run whose retries suffice
//! completes. Calls are retried at the provider boundary first (reads on any retryable error,
//! mutating calls on throttling, five attempts), so with 40 % of calls failing a read still
//! fails about 1 % of the time and a mutating call about 11 % (its 5xx and timeouts are the
//! engine's to retry). Step retries are counted from the journal (`step_failed` with
//! `will_retry`), per-call retries from drctl's debug log (`retrying a provider call`). No
//! mutating effect may be applied twice: the same operation with the same target and arguments
//! in the simulator's operation log, or forwarded to moto and answered 2xx, more than once per
//! run.
//!
//! Knobs: `DRCTL_FAULTS_SIM_RUNS` (runs per simulator scenario), `DRCTL_FAULTS_SDK_RUNS`,
//! `DRCTL_FAULTS_LOG_DIR` (keep the SDK runs' output there).

#[path = "faultproxy.rs"]
mod faultproxy;

use std::{
  collections::BTreeMap,
  io::Read,
  process::Stdio,
  sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
  },
  time::{Duration, Instant},
};

use crate::{
  support::{moto::Moto, Test},
  Config, Figure,
};

const SECTION: &str = "faults";

/// The faults every AWS service of the simulated world gets (`HANG` is replaced by the hang
/// probability of the scenario).
const SIM_FAULTS: &str = "faults:\n\
  \x20 rds: { throttle: 0.3, error: 0.1, hang: HANG }\n\
  \x20 ecs: { throttle: 0.3, error: 0.1, hang: HANG }\n\
  \x20 route53: { throttle: 0.3, error: 0.1, hang: HANG }\n\
  \x20 s3: { throttle: 0.3, error: 0.1, hang: HANG }\n\
  \x20 DescribeDBInstances: { latency: 3s }\n\
  \x20 DescribeServices: { latency: 2s }\n\
  \x20 GetChange: { latency: 5s }\n";

/// The simulated world runs this much faster than the wall clock, so that a run's modelled
/// minutes take seconds (a hung call's 20 s attempt timeout is 50 ms).
const TIME_SCALE: &str = "400";

/// What happened to runs of one scenario.
#[derive(Default, Debug)]
struct Tally {
  runs: usize,
  completed: usize,
  /// Runs that failed with an AWS error as the reason the user saw.
  aws_failures: usize,
  /// ... of which the error named the AWS code and the request id.
  aws_failures_explained: usize,
  /// Runs that failed because a hung call timed out (its attempt timeout or the step's).
  hang_timeouts: usize,
  /// Runs that passed the outer deadline (killed by the harness).
  hung_runs: usize,
  /// Runs that failed for any other reason (with the reason, for the log).
  unexplained: Vec<String>,
  retries: usize,
  /// Calls retried at the provider boundary (drctl's debug log).
  call_retries: usize,
  /// AWS errors on stderr (`... (HTTP n, request id ID)`), and how many named a request id.
  errors_shown: usize,
  errors_with_id: usize,
  /// AWS errors checked for their form (shown and journalled), and the ones that failed it.
  errors_checked: usize,
  unreadable: Vec<String>,
  /// Failed runs whose failing step stopped with retryable error and attempts left.
  gave_up_early: Vec<String>,
  /// Rollbacks that still failed on a retryable error once their step's attempts were spent.
  rollbacks_given_up: Vec<String>,
  /// Runs that must complete (retries suffice), and how many did.
  must_complete: usize,
  must_complete_done: usize,
  duplicate_effects: Vec<String>,
}

impl Tally {
  fn add(&mut self, other: Tally) {
    self.runs += other.runs;
    self.completed += other.completed;
    self.aws_failures += other.aws_failures;
    self.aws_failures_explained += other.aws_failures_explained;
    self.hang_timeouts += other.hang_timeouts;
    self.hung_runs += other.hung_runs;
    self.unexplained.extend(other.unexplained);
    self.retries += other.retries;
    self.call_retries += other.call_retries;
    self.errors_shown += other.errors_shown;
    self.errors_with_id += other.errors_with_id;
    self.errors_checked += other.errors_checked;
    self.unreadable.extend(other.unreadable);
    self.gave_up_early.extend(other.gave_up_early);
    self.rollbacks_given_up.extend(other.rollbacks_given_up);
    self.must_complete += other.must_complete;
    self.must_complete_done += other.must_complete_done;
    self.duplicate_effects.extend(other.duplicate_effects);
  }
}

/// One finished (or killed) run of the binary.
struct Finished {
  code: Option<i32>,
  stdout: String,
  stderr: String,
  timed_out: bool,
}

/// How long a run may go without printing anything before it counts as hung. Every retry,
/// attempt and state change prints a line; the longest silence a healthy run has is a hung call
/// waiting for its 20 s attempt timeout (on the SDK path: 50 ms in the simulator at ×400).
const STALL: Duration = Duration::from_secs(120);

/// Run the binary in `test`'s directory; kill it when it prints nothing for [`STALL`] (a hung
/// run) or passes `cap` (a backstop for a run that makes progress forever).
fn run_with_deadline(test: &Test, args: &[&str], cap: Duration) -> Finished {
  let mut child = test
    .command(args)
    // Per-call retries are logged at debug: counted from stderr.
    .env("DRCTL_LOG", "warn,drctl::cloud::limiter=debug")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("drctl starts");
  let started = Instant::now();
  // Milliseconds since `started` of the last output, updated by the threads that drain the
  // pipes (so that a chatty run cannot block on a full pipe either).
  let last_output = Arc::new(AtomicU64::new(0));
  let drain = |mut pipe: Box<dyn Read + Send>| {
    let last_output = last_output.clone();
    std::thread::spawn(move || {
      let mut bytes = Vec::new();
      let mut chunk = [0u8; 4096];
      while let Ok(read) = pipe.read(&mut chunk) {
        if read == 0 {
          break;
        }
        bytes.extend_from_slice(&chunk[..read]);
        last_output.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
      }
      String::from_utf8_lossy(&bytes).into_owned()
    })
  };
  let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
  let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
  let mut timed_out = false;
  let status = loop {
    if let Ok(Some(status)) = child.try_wait() {
      break Some(status);
    }
    let silent = started
      .elapsed()
      .saturating_sub(Duration::from_millis(last_output.load(Ordering::Relaxed)));
    if silent > STALL || started.elapsed() > cap {
      timed_out = true;
      let _ = child.kill();
      break child.wait().ok();
    }
    std::thread::sleep(Duration::from_millis(20));
  };
  Finished {
    code: status.and_then(|status| status.code()),
    stdout: out.join().unwrap_or_default(),
    stderr: err.join().unwrap_or_default(),
    timed_out,
  }
}

/// A progress line reporting an AWS error answer (`[  1.2s] ! step  rds DescribeDBInstances
/// (us-west-2, account unknown): Throttling: Rate exceeded (HTTP 400, request id ...)`), not a
/// call that got no answer at all (a timeout).
fn aws_error_line(line: &str) -> bool {
  let progress =
    line.trim_start().starts_with('[') && (line.contains(" ! ") || line.contains(" ✗ "));
  progress && aws_error(line).is_some() && !line.contains(": timed out after ")
}

/// The AWS error in a line, from its service on: `rds DescribeDBInstances (us-west-2, account
/// unknown): ...` (the SDK path) or `rds DescribeDBInstances: ...` (the simulator).
fn aws_error(line: &str) -> Option<&str> {
  ["rds ", "ecs ", "route53 ", "s3 ", "cloudwatch ", "sts "]
    .iter()
    .filter_map(|service| {
      line
        .match_indices(&format!(" {service}"))
        .find_map(|(at, _)| {
          let error = &line[at + 1..];
          let operation = error[service.len()..].split([' ', ':']).next()?;
          let after = &error[service.len() + operation.len()..];
          (operation.starts_with(|c: char| c.is_ascii_uppercase())
            && (after.starts_with(": ") || after.starts_with(" (")))
          .then_some(error)
        })
    })
    .next()
}

/// What is wrong with the form of an AWS error the user saw (empty: nothing): it is one line,
/// holds no Rust `Debug` syntax, and an error AWS answered keeps its request id.
fn form_problems(error: &str) -> Vec<String> {
  let mut problems: Vec<String> = crate::support::debug_syntax(error)
    .into_iter()
    .map(|fragment| format!("Debug syntax `{fragment}`"))
    .collect();
  if error.contains('\n') || error.contains('\r') {
    problems.push("more than one line".to_owned());
  }
  problems
}

/// Judge one finished run from its output and journal.
fn judge(test: &Test, finished: &Finished, label: &str, attempts: u64) -> Tally {
  let mut tally = Tally {
    runs: 1,
    ..Tally::default()
  };
  let journal = test
    .run_ids()
    .last()
    .map(|id| test.journal(id))
    .unwrap_or_default();
  let records: Vec<serde_json::Value> = journal
    .lines()
    .filter_map(|line| serde_json::from_str(line).ok())
    .collect();
  tally.retries = records
    .iter()
    .filter(|record| record["event"] == "step_failed" && record["will_retry"] == true)
    .count();
  tally.call_retries = finished
    .stderr
    .lines()
    .filter(|line| line.contains("retrying a provider call"))
    .count();
  // A step that stops on a retryable error must have used every attempt it had.
  for record in &records {
    let last = record["event"] == "step_failed" && record["will_retry"] == false;
    let run_phase = record["phase"].as_str().is_none_or(|phase| phase == "run");
    let retryable = record["error"]["retryable"] == true;
    let attempt = record["attempt"].as_u64().unwrap_or(0);
    if last && run_phase && retryable && attempt < attempts {
      tally.gave_up_early.push(format!(
        "{label}: step {} gave up after attempt {attempt} of {attempts}: {}",
        record["step"], record["error"]["message"]
      ));
    }
  }
  // Every AWS error the user saw, and every one the journal keeps, is readable.
  let journalled: Vec<String> = records
    .iter()
    .filter_map(|record| record["error"]["message"].as_str())
    .map(|message| format!(" {message}"))
    .collect();
  let shown = finished
    .stderr
    .lines()
    .chain(finished.stdout.lines())
    .chain(journalled.iter().map(String::as_str))
    .filter_map(aws_error);
  // The per-call retries' debug lines carry the message of every fault the calls met (a
  // hung call's timeout included).
  let retried = finished
    .stderr
    .lines()
    .filter_map(|line| line.split_once("retrying a provider call: "))
    .map(|(_, message)| message);
  for error in shown.chain(retried) {
    tally.errors_checked += 1;
    let problems = form_problems(error);
    if !problems.is_empty() {
      tally
        .unreadable
        .push(format!("{label}: {}: {error}", problems.join(", ")));
    }
  }
  for line in finished.stderr.lines().filter(|line| aws_error_line(line)) {
    tally.errors_shown += 1;
    // S3 answers HEAD requests without a body, so there the HTTP status is all there is.
    // An error AWS answered has its HTTP status next to the request id.
    let coded = line.contains(" (HTTP ");
    if coded && line.contains("request id ") {
      tally.errors_with_id += 1;
    } else {
      tally.unexplained.push(format!(
        "{label}: an AWS error without its code or request id: {line}"
      ));
    }
  }
  // A rollback is retried with its step's policy: count rollbacks that still stopped on a
  // retryable error (the last attempt's failure says `will_retry: false`).
  for record in &records {
    if record["event"] == "step_failed"
      && record["phase"] == "rollback"
      && record["error"]["retryable"] == true
      && record["will_retry"] == false
    {
      tally.rollbacks_given_up.push(format!(
        "{label}: rollback of {} failed on a retryable error after its last attempt: {}",
        record["step"], record["error"]["message"]
      ));
    }
  }
  if finished.timed_out {
    tally.hung_runs = 1;
    tally.unexplained.push(format!(
      "{label}: stalled (no output for {STALL:?}) or passed its cap; killed"
    ));
    return tally;
  }
  match finished.code {
    Some(0 | 3) => tally.completed = 1,
    Some(1) => {
      // The errors the user saw: `✗ step ...` progress lines (rollbacks included).
      let failures: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|line| line.contains(" ✗ "))
        .collect();
      if failures.is_empty() {
        tally.unexplained.push(format!(
          "{label}: exit 1 without an error line\n{}{}",
          finished.stdout, finished.stderr
        ));
      }
      let mut aws = false;
      let mut explained = true;
      let mut hang = false;
      for line in &failures {
        // A hung call ends at its attempt timeout: the SDK's (no answer, so no AWS code or
        // request id) or the simulator's, which models it as a `RequestTimeout`; or at the
        // step's timeout if that comes first.
        if line.contains("(the step's timeout)")
          || line.contains(": timed out after ")
          || line.contains(": RequestTimeout: ")
        {
          hang = true;
        } else if let Some(error) = final_error(&records, line) {
          aws = true;
          let code = error["code"].as_str().unwrap_or_default();
          let request_id = error["request_id"].as_str().unwrap_or_default();
          if code.is_empty()
            || request_id.is_empty()
            || !line.contains(code)
            || !line.contains(&format!("request id {request_id}"))
          {
            explained = false;
            tally.unexplained.push(format!(
              "{label}: AWS error without its code or request id: {line}"
            ));
          }
        } else {
          explained = false;
          tally.unexplained.push(format!(
            "{label}: a failure that is neither AWS nor a timeout: {line}"
          ));
        }
      }
      if aws {
        tally.aws_failures = 1;
        tally.aws_failures_explained = usize::from(explained);
      }
      if hang && !aws {
        tally.hang_timeouts = 1;
      }
    }
    other => tally.unexplained.push(format!(
      "{label}: exit {other:?}\n{}{}",
      finished.stdout, finished.stderr
    )),
  }
  tally
}

/// The journal's record of the AWS error behind a `✗` line: the last `step_failed` of that step
/// whose error has an AWS code.
fn final_error<'a>(records: &'a [serde_json::Value], line: &str) -> Option<&'a serde_json::Value> {
  records.iter().rev().find_map(|record| {
    let step = record["step"].as_str()?;
    let error = &record["error"];
    (record["event"] == "step_failed"
      && error["code"].is_string()
      && line.contains(&format!(" {step} ")))
    .then_some(error)
  })
}

/// Mutating effects in the simulator's operation log applied more than once.
fn sim_duplicates(test: &Test, label: &str) -> Vec<String> {
  let Some(run_id) = test.run_ids().pop() else {
    return Vec::new();
  };
  let log = std::fs::read_to_string(
    test
      .path()
      .join(".drctl/runs")
      .join(&run_id)
      .join("operations.jsonl"),
  )
  .unwrap_or_default();
  let mut seen: BTreeMap<String, usize> = BTreeMap::new();
  for line in log.lines() {
    let Ok(op) = serde_json::from_str::<serde_json::Value>(line) else {
      continue;
    };
    let key = format!(
      "{} {} {} {}",
      op["operation"], op["region"], op["target"], op["detail"]
    );
    *seen.entry(key).or_default() += 1;
  }
  seen
    .into_iter()
    .filter(|(_, count)| *count > 1)
    .map(|(key, count)| format!("{label}: {key} applied {count} times"))
    .collect()
}

fn world_with_faults(seed: u64, hang: f64) -> String {
  let builtin = drctl::cloud::sim::BUILTIN_WORLD;
  assert!(builtin.contains("faults: {}\n") && builtin.contains("\nseed: "));
  let world = builtin.replace(
    "faults: {}\n",
    &SIM_FAULTS.replace("HANG", &hang.to_string()),
  );
  world
    .lines()
    .map(|line| {
      if line.starts_with("seed: ") {
        format!("seed: {seed}")
      } else {
        line.to_string()
      }
    })
    .collect::<Vec<_>>()
    .join("\n")
    + "\n"
}

/// The shipped retry policy of `regional-failover`.
const SHIPPED_RETRY: &str = "retry: { attempts: 3, backoff: 2s, max_backoff: 30s }";
const SHIPPED_ATTEMPTS: u64 = 3;
/// Attempts per step for runs meant to get through: a call fails 40 % of the time, and a
/// mutating call that meets a 5xx (10 %) restarts its step's attempt (only throttling is
/// retried per call), so a step of several mutating calls may need many attempts.
const PATIENT_ATTEMPTS: u64 = 200;

/// A shipped runbook with [`PATIENT_ATTEMPTS`] attempts per step, named `name`: runs whose
/// retries suffice.
fn patient(runbook: &str, name: &str) -> String {
  assert!(
    runbook.contains(SHIPPED_RETRY),
    "the shipped retry policy changed"
  );
  let patient = runbook.replace(
    SHIPPED_RETRY,
    &format!("retry: {{ attempts: {PATIENT_ATTEMPTS}, backoff: 250ms, max_backoff: 2s }}"),
  );
  let mut lines: Vec<String> = patient.lines().map(str::to_string).collect();
  if let Some(line) = lines.iter_mut().find(|line| line.starts_with("  name: ")) {
    *line = format!("  name: {name}");
  }
  lines.join("\n") + "\n"
}

fn shipped(name: &str) -> String {
  std::fs::read_to_string(crate::support::repo().join(format!("runbooks/{name}.yaml")))
    .unwrap_or_else(|err| panic!("read {name}.yaml: {err}"))
}

/// One way of running under simulated faults.
struct Scenario {
  name: &'static str,
  args: &'static [&'static str],
  hang: f64,
  attempts: u64,
  /// Every run must complete (its retries suffice and nothing hangs).
  must_complete: bool,
}

const SCENARIOS: &[Scenario] = &[
  Scenario {
    name: "regional-failover (as shipped, 3 attempts, 1 % hangs)",
    args: &["failover", "us-west-2", "--yes"],
    hang: 0.01,
    attempts: SHIPPED_ATTEMPTS,
    must_complete: false,
  },
  Scenario {
    name: "regional-failover (200 attempts, no hangs)",
    args: &[
      "run",
      "runbooks/patient-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "--yes",
    ],
    hang: 0.0,
    attempts: PATIENT_ATTEMPTS,
    must_complete: true,
  },
  Scenario {
    name: "backup-restore-validation (as shipped, 1 % hangs)",
    args: &["run", "backup-restore-validation", "--yes"],
    hang: 0.01,
    attempts: SHIPPED_ATTEMPTS,
    must_complete: false,
  },
];

fn simulator(config: &Config, figures: &mut Vec<Figure>) -> Tally {
  let default_runs = if config.full { 40 } else { 2 };
  let runs = env_usize("DRCTL_FAULTS_SIM_RUNS").unwrap_or(default_runs);
  let deadline = Duration::from_secs(600);
  let failover = patient(&shipped("regional-failover"), "patient-failover");
  let mut total = Tally::default();
  for (index, scenario) in SCENARIOS.iter().enumerate() {
    let mut tally = Tally::default();
    for run in 0..runs {
      let seed = config
        .seed
        .wrapping_add((index as u64) << 32)
        .wrapping_add(run as u64);
      let test = Test::new()
        .file("world.yaml", &world_with_faults(seed, scenario.hang))
        .file("runbooks/patient-failover.yaml", &failover);
      let mut args: Vec<&str> = scenario.args.to_vec();
      args.extend(["--sim", "world.yaml", "--time-scale", TIME_SCALE]);
      let label = format!("sim {} (world seed {seed})", scenario.name);
      let finished = run_with_deadline(&test, &args, deadline);
      let mut one = judge(&test, &finished, &label, scenario.attempts);
      one.duplicate_effects = sim_duplicates(&test, &label);
      if scenario.must_complete {
        one.must_complete = 1;
        one.must_complete_done = one.completed;
      }
      tally.add(one);
    }
    figures.push(Figure::info(
      SECTION,
      format!(
        "sim {}: completed · failed on AWS error · on a hang",
        scenario.name
      ),
      format!(
        "{}/{} · {} · {}",
        tally.completed, tally.runs, tally.aws_failures, tally.hang_timeouts
      ),
    ));
    total.add(tally);
  }
  total
}

fn env_usize(name: &str) -> Option<usize> {
  std::env::var(name)
    .ok()
    .and_then(|value| value.parse().ok())
}

pub fn run(config: &Config) -> Vec<Figure> {
  let mut figures = Vec::new();
  let mut total = simulator(config, &mut figures);
  let sdk = sdk(config, &mut figures);
  total.add(sdk);
  total.add(sdk_readable(&mut figures));

  for problem in total
    .unexplained
    .iter()
    .chain(&total.duplicate_effects)
    .chain(&total.gave_up_early)
    .chain(&total.rollbacks_given_up)
    .chain(&total.unreadable)
  {
    eprintln!("   faults: {problem}");
  }
  let unexplained = total.unexplained.len();
  figures.extend([
    Figure::info(SECTION, "runs under faults", total.runs),
    Figure::info(SECTION, "runs completed", total.completed),
    Figure::info(SECTION, "step retries spent (journal)", total.retries),
    Figure::info(
      SECTION,
      "per-call retries (provider boundary, debug log)",
      total.call_retries,
    ),
    Figure::info(
      SECTION,
      "runs with 200 attempts per step: completed",
      format!("{}/{}", total.must_complete_done, total.must_complete),
    ),
    Figure::new(
      SECTION,
      "runs failed with attempts left (retries sufficed)",
      total.gave_up_early.len(),
      "0",
      total.gave_up_early.is_empty(),
    ),
    Figure::info(
      SECTION,
      "rollbacks failed on a retryable error after every attempt",
      total.rollbacks_given_up.len(),
    ),
    Figure::new(
      SECTION,
      "AWS errors shown with code (S3 HEAD: status) + request id",
      format!("{}/{}", total.errors_with_id, total.errors_shown),
      "100 %",
      total.errors_with_id == total.errors_shown,
    ),
    Figure::new(
      SECTION,
      "AWS errors one line, no Rust Debug syntax (shown and journalled)",
      format!(
        "{}/{}",
        total.errors_checked - total.unreadable.len(),
        total.errors_checked
      ),
      "100 %",
      total.unreadable.is_empty(),
    ),
    Figure::new(
      SECTION,
      "failed runs: AWS errors shown with code + request id",
      format!("{}/{}", total.aws_failures_explained, total.aws_failures),
      "100 %",
      total.aws_failures_explained == total.aws_failures,
    ),
    Figure::info(
      SECTION,
      "failed runs: on a hung call (attempt or step timeout)",
      total.hang_timeouts,
    ),
    Figure::new(
      SECTION,
      "hung runs (silent for 2 min, killed)",
      total.hung_runs,
      "0",
      total.hung_runs == 0,
    ),
    Figure::new(
      SECTION,
      "failures neither AWS error nor timeout",
      unexplained - total.hung_runs.min(unexplained),
      "0",
      unexplained == total.hung_runs,
    ),
    Figure::new(
      SECTION,
      "mutating effects applied twice",
      total.duplicate_effects.len(),
      "0",
      total.duplicate_effects.is_empty(),
    ),
  ]);
  figures
}

/// Faults on the SDK path: 30 % throttling, 10 % 5xx, 10 % latency spikes, and hung calls: the
/// fifth call always, and 2 % of all calls in the full configuration (each costs the SDK's
/// 20-second attempt timeout, too slow for CI's fast configuration).
fn sdk_rates(config: &Config) -> faultproxy::Rates {
  faultproxy::Rates {
    throttle: 0.3,
    error: 0.1,
    hang: if config.full { 0.02 } else { 0.0 },
    spike: 0.1,
    spike_latency: Duration::from_millis(if config.full { 1500 } else { 500 }),
    hang_nth: Some(5),
    deny: None,
  }
}

/// `regional-failover` (200 attempts per step) with `--sandbox` on a fresh moto behind the fault
/// proxy, once per run.
fn sdk(config: &Config, figures: &mut Vec<Figure>) -> Tally {
  let runs = env_usize("DRCTL_FAULTS_SDK_RUNS").unwrap_or(if config.full { 4 } else { 1 });
  // A hung call costs the SDK's 20 s attempt timeout; a run may meet several, and 200 attempts
  // of backoff: only a stall (see `STALL`) is a hung run.
  let deadline = Duration::from_secs(1800);
  let failover = patient(&shipped("regional-failover"), "patient-failover");
  let restore = patient(&shipped("backup-restore-validation"), "patient-restore");
  let mut tally = Tally::default();
  let mut proxy_totals = faultproxy::Stats::default();
  for run in 0..runs {
    let moto = Moto::start();
    let proxy = faultproxy::FaultProxy::start(
      moto.port,
      sdk_rates(config),
      config.seed.wrapping_add(run as u64),
    );
    let test = Test::new()
      .file("runbooks/patient-failover.yaml", &failover)
      .file("runbooks/patient-restore.yaml", &restore);
    let state = test.path().join(".drctl");
    moto.attach(&state);
    // The sandbox record names moto's process (alive) and the proxy's endpoint: every call of
    // `--sandbox` goes through the proxy.
    let record = state.join("sandbox.json");
    let mut sandbox: serde_json::Value =
      serde_json::from_str(&std::fs::read_to_string(&record).expect("read sandbox.json"))
        .expect("sandbox.json is JSON");
    sandbox["endpoint"] = proxy.endpoint().into();
    sandbox["port"] = proxy.port.into();
    std::fs::write(&record, sandbox.to_string()).expect("write sandbox.json");

    // Every other run restores a backup (RDS restore and delete, S3 reads: S3's error format).
    let (name, args): (&str, &[&str]) = if run % 2 == 0 {
      (
        "regional-failover",
        &[
          "run",
          "runbooks/patient-failover.yaml",
          "-p",
          "target_region=us-west-2",
          "--sandbox",
          "--yes",
        ],
      )
    } else {
      (
        "backup-restore-validation",
        &["run", "runbooks/patient-restore.yaml", "--sandbox", "--yes"],
      )
    };
    let label = format!("sdk {name} ×{PATIENT_ATTEMPTS} run {run}");
    let started = Instant::now();
    let finished = run_with_deadline(&test, args, deadline);
    eprintln!(
      "   faults: {label}: exit {:?} in {:.0}s",
      finished.code,
      started.elapsed().as_secs_f64()
    );
    if let Some(dir) = std::env::var_os("DRCTL_FAULTS_LOG_DIR") {
      let _ = std::fs::write(
        std::path::Path::new(&dir).join(format!("sdk-run-{run}.log")),
        format!("{}\n{}", finished.stdout, finished.stderr),
      );
    }
    let mut one = judge(&test, &finished, &label, PATIENT_ATTEMPTS);
    one.must_complete = 1;
    one.must_complete_done = one.completed;
    // Give the proxy a moment to see the client close hung connections.
    std::thread::sleep(Duration::from_millis(200));
    let stats = proxy.take_stats();
    for ((operation, body), count) in &stats.applied {
      if *count > 1 {
        one.duplicate_effects.push(format!(
          "{label}: {operation} applied {count} times ({} bytes of request)",
          body.len()
        ));
      }
    }
    proxy_totals.requests += stats.requests;
    proxy_totals.throttled += stats.throttled;
    proxy_totals.errors += stats.errors;
    proxy_totals.spikes += stats.spikes;
    proxy_totals.hung += stats.hung;
    proxy_totals.hung_released += stats.hung_released;
    tally.add(one);
  }
  figures.push(Figure::info(
    SECTION,
    "sdk (moto behind the fault proxy, both runbooks): completed · failed on AWS error · on a hang",
    format!(
      "{}/{} · {} · {}",
      tally.completed, tally.runs, tally.aws_failures, tally.hang_timeouts
    ),
  ));
  figures.push(Figure::info(
    SECTION,
    "sdk calls: throttled · 5xx · latency spikes · hung / total",
    format!(
      "{} · {} · {} · {} / {}",
      proxy_totals.throttled,
      proxy_totals.errors,
      proxy_totals.spikes,
      proxy_totals.hung,
      proxy_totals.requests
    ),
  ));
  figures.push(Figure::new(
    SECTION,
    "sdk hung calls ended by drctl (not left hanging)",
    format!("{}/{}", proxy_totals.hung_released, proxy_totals.hung),
    "all",
    proxy_totals.hung_released == proxy_totals.hung,
  ));
  tally
}

/// The errors AWS and the network give that the random faults do not: an `AccessDenied` whose
/// long message names the missing permission (the fault proxy answers `PromoteReadReplica` so),
/// and a refused connection (`plan` against a loopback port nobody listens on). Each must be
/// shown whole, on one line, with its region and account (or "account unknown").
fn sdk_readable(figures: &mut Vec<Figure>) -> Tally {
  let moto = Moto::start();
  let rates = faultproxy::Rates {
    throttle: 0.0,
    error: 0.0,
    hang: 0.0,
    spike: 0.0,
    spike_latency: Duration::ZERO,
    hang_nth: None,
    deny: Some("PromoteReadReplica"),
  };
  let proxy = faultproxy::FaultProxy::start(moto.port, rates, 0);
  let test = Test::new();
  let state = test.path().join(".drctl");
  moto.attach(&state);
  let point_sandbox_at = |endpoint: String, port: u16| {
    let record = state.join("sandbox.json");
    let mut sandbox: serde_json::Value =
      serde_json::from_str(&std::fs::read_to_string(&record).expect("read sandbox.json"))
        .expect("sandbox.json is JSON");
    sandbox["endpoint"] = endpoint.into();
    sandbox["port"] = port.into();
    std::fs::write(&record, sandbox.to_string()).expect("write sandbox.json");
  };
  point_sandbox_at(proxy.endpoint(), proxy.port);
  let label = "sdk regional-failover, PromoteReadReplica denied";
  let finished = run_with_deadline(
    &test,
    &[
      "run",
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "--sandbox",
      "--yes",
    ],
    Duration::from_secs(600),
  );
  let mut tally = judge(&test, &finished, label, 3);
  let message = faultproxy::denied_message("rds", "PromoteReadReplica");
  let whole = format!(
    "rds PromoteReadReplica (us-west-2, account {}): AccessDenied: {message} (HTTP 403, request id drctl-fault-",
    faultproxy::DENIED_ACCOUNT
  );
  let denied_shown = finished.code == Some(1)
    && finished
      .stderr
      .lines()
      .any(|line| line.contains(" ✗ ") && line.contains(&whole));
  if !denied_shown {
    tally.unreadable.push(format!(
      "{label}: exit {:?}, no `✗` line with the whole AccessDenied error `{whole}...`\n{}{}",
      finished.code, finished.stdout, finished.stderr
    ));
  }
  figures.push(Figure::new(
    SECTION,
    "sdk AccessDenied shown whole: region, account, code, IAM's message, request id",
    if denied_shown { "yes" } else { "no" },
    "yes",
    denied_shown,
  ));

  // Nothing listens on `refused`: every call's connection is refused.
  let refused = crate::support::refused_port();
  let endpoint = format!("http://127.0.0.1:{refused}");
  let test = Test::new().env("AWS_ENDPOINT_URL", &endpoint);
  let public_url = format!("public_url={endpoint}/health");
  let finished = run_with_deadline(
    &test,
    &[
      "plan",
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "-p",
      &public_url,
      "--aws",
    ],
    Duration::from_secs(600),
  );
  let expected = format!("127.0.0.1:{refused}: connection refused");
  let errors: Vec<&str> = finished
    .stdout
    .lines()
    .chain(finished.stderr.lines())
    .filter_map(aws_error)
    .collect();
  let named = errors
    .iter()
    .filter(|error| error.contains("account unknown): ") && error.contains(&expected))
    .count();
  for error in &errors {
    tally.errors_checked += 1;
    let problems = form_problems(error);
    if !problems.is_empty() {
      tally.unreadable.push(format!(
        "sdk plan, refused endpoint: {}: {error}",
        problems.join(", ")
      ));
    }
  }
  figures.push(Figure::new(
    SECTION,
    "sdk refused connection: errors naming host and \"connection refused\"",
    format!("{named}/{}", errors.len()),
    "all, ≥ 1",
    named == errors.len() && named > 0,
  ));
  tally
}
