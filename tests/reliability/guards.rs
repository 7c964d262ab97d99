//! Guards: the checks that stand between a tired operator and a worse outage.
//!
//! * Promotion is refused while the replica lags more than the RPO (a simulated world whose
//!   replica lags 12 minutes against a 5-minute RPO), unless `--accept-data-loss`.
//! * DNS is not flipped to a target whose health check is unhealthy, unless `--force`.
//! * On a terminal (a real pty, driven from Python's `pty` module), a live failover asks for the
//!   target region before its first mutating step; a wrong answer changes nothing; `--yes`
//!   skips the question.
//!
//! "Changes nothing" is counted from the simulator's operation log: 0 mutating calls.

use std::{path::Path, process::Command};

use crate::{
  support::{count, Run, Test},
  Config, Figure,
};

const SECTION: &str = "guards";

/// The built-in world with a replica 12 minutes behind its source.
fn lagging_world() -> String {
  let world = drctl::cloud::sim::BUILTIN_WORLD.replace("replica_lag: 4s", "replica_lag: 12m");
  assert_ne!(
    world,
    drctl::cloud::sim::BUILTIN_WORLD,
    "the built-in world has a replica_lag to change"
  );
  world
}

/// Promote the replica alone, against the runbook's RPO.
const PROMOTE: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: promote-only }
objectives: { rpo: 5m }
steps:
  - id: promote-db
    action: rds.promote_replica
    with: { region: us-west-2, instance: app-db-replica }
"#;

/// Flip the public record to the standby while `app-standby/api` runs no tasks, so its health
/// check (hc-secondary) is unhealthy.
const FLIP_TO_UNHEALTHY: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: flip-early }
steps:
  - id: flip-dns
    action: route53.failover
    with:
      zone_id: Z0DRCTLEXAMPLE
      records:
        - { name: api.example.com, type: CNAME, set_identifier: primary, failover: PRIMARY, ttl: 60, value: api-usw2.example.com, health_check_id: hc-secondary }
        - { name: api.example.com, type: CNAME, set_identifier: secondary, failover: SECONDARY, ttl: 60, value: api-use1.example.com, health_check_id: hc-primary }
"#;

pub fn run(_config: &Config) -> Vec<Figure> {
  let mut figures = Vec::new();
  figures.extend(lag_guard());
  figures.extend(dns_guard());
  figures.extend(tty_guard());
  figures
}

/// Run drctl; the outcome and every mutating call the new run's simulated world accepted (run
/// ids sort by second, so the new run is found by difference, not by position).
fn run_counting<I, S>(test: &Test, args: I) -> (Run, Vec<String>)
where
  I: IntoIterator<Item = S>,
  S: AsRef<std::ffi::OsStr>,
{
  let before = test.run_ids();
  let run = test.run_args(args);
  let calls = test
    .run_ids()
    .into_iter()
    .filter(|id| !before.contains(id))
    .flat_map(|id| test.operations(&id))
    .collect();
  (run, calls)
}

fn lag_guard() -> Vec<Figure> {
  let mut figures = Vec::new();
  let sim = ["--sim", "lagging.yaml", "--time-scale", "400", "--yes"];

  // The promotion alone.
  let test = Test::new()
    .file("lagging.yaml", &lagging_world())
    .file("promote.yaml", PROMOTE);
  let mut args = vec!["run", "promote.yaml"];
  args.extend(sim);
  let (refused, calls) = run_counting(&test, &args);
  let held = refused.code() == 1
    && refused.stderr().contains("more than the RPO of 5m")
    && refused.stderr().contains("--accept-data-loss")
    && calls.is_empty();
  if !held {
    eprintln!(
      "   lag guard: exit {}, calls {calls:?}: {}",
      refused.code(),
      refused.stderr().trim()
    );
  }
  figures.push(Figure::new(
    SECTION,
    "lag 12m > RPO 5m: promote refused",
    format!("exit {}, {} mutating call(s)", refused.code(), calls.len()),
    "exit 1, 0 mutating calls",
    held,
  ));
  args.push("--accept-data-loss");
  let (bypass, calls) = run_counting(&test, &args);
  // Promoting 12 minutes behind loses more than the RPO allows: the run succeeds but is
  // breached (exit 3).
  let worked = bypass.code() == 3 && count(&calls, "PromoteReadReplica") == 1;
  if !worked {
    eprintln!(
      "   lag bypass: exit {}, calls {calls:?}: {}",
      bypass.code(),
      bypass.stderr().trim()
    );
  }
  figures.push(Figure::new(
    SECTION,
    "--accept-data-loss promotes (RPO breached)",
    format!(
      "exit {}, {} promotion(s)",
      bypass.code(),
      count(&calls, "PromoteReadReplica")
    ),
    "exit 3, 1 promotion",
    worked,
  ));

  // The shipped failover on the same world: no promotion without the flag, one with it.
  let test = Test::new().file("lagging.yaml", &lagging_world());
  let mut args = vec!["failover", "us-west-2"];
  args.extend(sim);
  let (refused, calls) = run_counting(&test, &args);
  // Refused for lag, the failover changes nothing at all: not the promotion, and not the
  // standby's scale-up either (it waits for the lag check).
  let held = refused.code() == 1 && calls.is_empty();
  if !held {
    eprintln!(
      "   failover lag guard: exit {}, calls {calls:?}: {}",
      refused.code(),
      refused.stderr().trim()
    );
  }
  figures.push(Figure::new(
    SECTION,
    "lag > RPO: shipped failover changes nothing",
    format!("exit {}, {} mutating call(s)", refused.code(), calls.len()),
    "exit 1, 0 mutating calls",
    held,
  ));
  let test = Test::new().file("lagging.yaml", &lagging_world());
  args.push("--accept-data-loss");
  let (bypass, calls) = run_counting(&test, &args);
  let worked = bypass.code() == 3 && count(&calls, "PromoteReadReplica") == 1;
  if !worked {
    eprintln!(
      "   failover lag bypass: exit {}, calls {calls:?}: {}",
      bypass.code(),
      bypass.stderr().trim()
    );
  }
  figures.push(Figure::new(
    SECTION,
    "shipped failover --accept-data-loss promotes",
    format!(
      "exit {}, {} promotion(s)",
      bypass.code(),
      count(&calls, "PromoteReadReplica")
    ),
    "exit 3, 1 promotion",
    worked,
  ));
  figures
}

fn dns_guard() -> Vec<Figure> {
  let mut figures = Vec::new();
  let test = Test::new().file("flip.yaml", FLIP_TO_UNHEALTHY);
  let args = ["run", "flip.yaml", "--sim", "--time-scale", "600", "--yes"];
  let (refused, calls) = run_counting(&test, args);
  let held = refused.code() == 1
    && refused
      .stderr()
      .contains("hc-secondary is unhealthy (0/16 checkers healthy); pass --force to flip anyway")
    && calls.is_empty();
  if !held {
    eprintln!(
      "   dns guard: exit {}, calls {calls:?}: {}",
      refused.code(),
      refused.stderr().trim()
    );
  }
  figures.push(Figure::new(
    SECTION,
    "DNS flip to an unhealthy target refused",
    format!("exit {}, {} mutating call(s)", refused.code(), calls.len()),
    "exit 1, 0 mutating calls",
    held,
  ));
  let test = Test::new().file("flip.yaml", FLIP_TO_UNHEALTHY);
  let (forced, calls) = run_counting(&test, args.iter().copied().chain(["--force"]));
  let worked = forced.code() == 0 && count(&calls, "ChangeResourceRecordSets") == 1;
  figures.push(Figure::new(
    SECTION,
    "--force flips DNS anyway",
    format!(
      "exit {}, {} change(s)",
      forced.code(),
      count(&calls, "ChangeResourceRecordSets")
    ),
    "exit 0, 1 change",
    worked,
  ));
  figures
}

/// Runs drctl on a pty: argv[1] the working directory, argv[2] the answer to type at the region
/// prompt, the rest drctl's command line. Prints JSON: exit code, whether the prompt appeared,
/// how many runs existed when it did, and everything drctl wrote to the terminal.
const PTY_DRIVER: &str = r#"
import json, os, pty, select, sys, time
cwd, answer, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    os.chdir(cwd)
    os.environ["NO_COLOR"] = "1"
    os.execv(argv[0], argv)
output, prompted, runs_at_prompt = b"", False, None
deadline = time.time() + 120
while time.time() < deadline:
    ready, _, _ = select.select([fd], [], [], 0.1)
    if ready:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    if not prompted and b"type the target region to confirm" in output:
        prompted = True
        runs = os.path.join(cwd, ".drctl", "runs")
        runs_at_prompt = len(os.listdir(runs)) if os.path.isdir(runs) else 0
        os.write(fd, answer.encode() + b"\r")
_, status = os.waitpid(pid, 0)
print(json.dumps({
    "code": os.waitstatus_to_exitcode(status),
    "prompted": prompted,
    "runs_at_prompt": runs_at_prompt,
    "output": output.decode("utf-8", "replace"),
}))
"#;

struct PtyRun {
  code: i64,
  prompted: bool,
  runs_at_prompt: Option<u64>,
  output: String,
}

fn on_pty(dir: &Path, answer: &str, args: &[&str]) -> Option<PtyRun> {
  let driver = dir.join("pty_driver.py");
  std::fs::write(&driver, PTY_DRIVER).ok()?;
  let output = Command::new("python3")
    .arg(&driver)
    .arg(dir)
    .arg(answer)
    .arg(crate::support::BIN)
    .args(args)
    .env_remove("SLACK_WEBHOOK_URL")
    .output()
    .ok()?;
  let value: serde_json::Value = match serde_json::from_slice(&output.stdout) {
    Ok(value) => value,
    Err(err) => {
      eprintln!(
        "   pty driver: {err}: {}",
        String::from_utf8_lossy(&output.stderr)
      );
      return None;
    }
  };
  Some(PtyRun {
    code: value["code"].as_i64().unwrap_or(-1),
    prompted: value["prompted"].as_bool().unwrap_or(false),
    runs_at_prompt: value["runs_at_prompt"].as_u64(),
    output: value["output"].as_str().unwrap_or_default().to_owned(),
  })
}

fn tty_guard() -> Vec<Figure> {
  // Promote, scale the standby up, flip DNS, and fence the old primary (scale it to zero,
  // retire its writer).
  const FAILOVER_CALLS: usize = 5;
  let mut figures = Vec::new();
  let live = ["failover", "us-west-2", "--sim", "--time-scale", "400"];

  // The right answer: asked before anything ran, then the failover proceeds.
  let test = Test::new();
  let right = on_pty(test.path(), "us-west-2", &live);
  let calls: Vec<String> = test
    .run_ids()
    .iter()
    .flat_map(|id| test.operations(id))
    .collect();
  let (value, met) = match &right {
    Some(run) => (
      format!(
        "asked: {}, runs before answer: {}, exit {}, {} mutating call(s)",
        if run.prompted { "yes" } else { "no" },
        run.runs_at_prompt.map_or("-".into(), |n| n.to_string()),
        run.code,
        calls.len()
      ),
      run.prompted
        && run.runs_at_prompt == Some(0)
        && run.code == 0
        && calls.len() == FAILOVER_CALLS,
    ),
    None => ("the pty driver failed".into(), false),
  };
  if !met {
    if let Some(run) = &right {
      eprintln!("   tty (right answer) output:\n{}", run.output);
    }
  }
  figures.push(Figure::new(
    SECTION,
    "tty: region asked before any step; right answer runs",
    value,
    "asked: yes, runs before answer: 0, exit 0, 5 mutating calls",
    met,
  ));

  // A wrong answer: nothing runs, nothing changes, no lock is left behind.
  let test = Test::new();
  let wrong = on_pty(test.path(), "us-east-1", &live);
  let runs = test.run_ids().len();
  let lock_left = test.path().join(".drctl/locks/default.lock").exists();
  let (value, met) = match &wrong {
    Some(run) => (
      format!(
        "asked: {}, exit {}, runs {runs}, lock left: {lock_left}",
        if run.prompted { "yes" } else { "no" },
        run.code,
      ),
      run.prompted
        && run.code != 0
        && run.output.contains("confirmation did not match")
        && runs == 0
        && !lock_left,
    ),
    None => ("the pty driver failed".into(), false),
  };
  figures.push(Figure::new(
    SECTION,
    "tty: wrong region changes nothing",
    value,
    "asked: yes, exit 1, runs 0, lock left: false",
    met,
  ));

  // --yes on a terminal: no question.
  let test = Test::new();
  let mut args = live.to_vec();
  args.push("--yes");
  let yes = on_pty(test.path(), "", &args);
  let calls: Vec<String> = test
    .run_ids()
    .iter()
    .flat_map(|id| test.operations(id))
    .collect();
  let (value, met) = match &yes {
    Some(run) => (
      format!(
        "asked: {}, exit {}, {} mutating call(s)",
        if run.prompted { "yes" } else { "no" },
        run.code,
        calls.len()
      ),
      !run.prompted && run.code == 0 && calls.len() == FAILOVER_CALLS,
    ),
    None => ("the pty driver failed".into(), false),
  };
  figures.push(Figure::new(
    SECTION,
    "tty: --yes skips the question",
    value,
    "asked: no, exit 0, 5 mutating calls",
    met,
  ));
  figures
}
