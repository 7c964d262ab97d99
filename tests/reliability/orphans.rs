//! Orphans: processes left running after a run ends in each way it can end. The runbook's
//! command (`sh -c 'sleep 300 & sleep 300 & wait'`) starts two grandchildren; every process it
//! makes carries a unique marker in its environment (and the shell in its command line), and
//! survivors are counted by scanning `/proc` for that marker, a few seconds after drctl exited.
//!
//! * **timed out**: the command's `timeout` expires (exit 1).
//! * **interrupted**: one SIGINT while the command runs (exit 130).
//! * **twice interrupted**: one SIGINT, and a second one while an always-step's command runs
//!   (exit 130, the interrupt still journalled).
//! * **SIGKILLed, then resumed**: drctl is SIGKILLed while the command runs (nothing can clean
//!   up: the grandchildren must still be there, or the figure proves nothing), `drctl status`
//!   must report them, and `drctl resume` must kill them.
//! * **sandbox, twice interrupted** and (full configuration) **sandbox, SIGKILLed**: the same
//!   runbook on `--sandbox`, whose moto server (a child of drctl) inherits drctl's environment
//!   and so the marker.
//!
//! Fast: 2 runs of each ending on the simulator, 1 twice-interrupted sandbox run. Full: 25 of
//! each, and 5 of each sandbox ending.

use std::{
  process::Child,
  time::{Duration, Instant},
};

use crate::{
  support::{
    procs::{kill_marked, marked, marker},
    signal, Test,
  },
  Config, Figure,
};

const SECTION: &str = "orphans";
/// How long kills may take to land before a survivor counts.
const SETTLE: Duration = Duration::from_secs(3);
/// Every wait for a process to appear or exit.
const LIMIT: Duration = Duration::from_secs(120);

/// `spawn` starts the grandchildren (and does nothing when `spawned` exists: a resumed run
/// finishes at once); `cleanup`, an always-step, does the same when `hold` is `yes`.
const RUNBOOK: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: orphans }
params:
  mark: { type: string, required: true }
  timeout: { type: string, default: 5m }
  hold: { type: string, default: "no" }
steps:
  - id: spawn
    action: exec.command
    with:
      argv: [sh, -c, 'test -e spawned && exit 0; touch spawned; sleep 300 & sleep 300 & wait', "${{ params.mark }}"]
      env: { MARK: "${{ params.mark }}" }
      timeout: "${{ params.timeout }}"
  - id: cleanup
    action: exec.command
    needs: [spawn]
    always: true
    with:
      argv: [sh, -c, 'test "$HOLD" = yes || exit 0; sleep 300 & sleep 300 & wait', "${{ params.mark }}-cleanup"]
      env: { MARK: "${{ params.mark }}", HOLD: "${{ params.hold }}" }
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
  TimedOut,
  Interrupted,
  TwiceInterrupted,
  Killed,
}

impl Ending {
  const ALL: [Ending; 4] = [
    Ending::TimedOut,
    Ending::Interrupted,
    Ending::TwiceInterrupted,
    Ending::Killed,
  ];

  fn name(self) -> &'static str {
    match self {
      Ending::TimedOut => "timed out",
      Ending::Interrupted => "interrupted (SIGINT once)",
      Ending::TwiceInterrupted => "twice interrupted",
      Ending::Killed => "SIGKILLed, then resumed",
    }
  }
}

/// What one run left.
#[derive(Default)]
struct Tally {
  runs: usize,
  survivors: usize,
  /// Runs whose exit code or journal was not what the ending promises.
  wrong_exit: usize,
  /// SIGKILLed runs: survivors right after the kill (expected), and how many of them
  /// `drctl status` reported.
  left_by_kill: usize,
  reported: usize,
}

pub fn run(config: &Config) -> Vec<Figure> {
  let runs = if config.full { 25 } else { 2 };
  let mut figures = Vec::new();
  for ending in Ending::ALL {
    let mut tally = Tally::default();
    for _ in 0..runs {
      one_run(ending, false, &mut tally);
    }
    figures.extend(tally.figures(ending.name(), ending));
  }
  // Each sandbox run starts moto (seconds in a debug build); the fast configuration makes one.
  let sandbox_runs = if config.full { 5 } else { 1 };
  let sandbox_endings: &[Ending] = if config.full {
    &[Ending::TwiceInterrupted, Ending::Killed]
  } else {
    &[Ending::TwiceInterrupted]
  };
  if moto_installed() {
    for &ending in sandbox_endings {
      let mut tally = Tally::default();
      for _ in 0..sandbox_runs {
        one_run(ending, true, &mut tally);
      }
      figures.extend(tally.figures(&format!("sandbox, {}", ending.name()), ending));
    }
  } else {
    figures.push(Figure::new(
      SECTION,
      "sandbox runs (python3 -m moto.server missing)",
      0,
      "moto installed",
      false,
    ));
  }
  figures
}

fn moto_installed() -> bool {
  std::process::Command::new("python3")
    .args(["-c", "import moto.server, boto3"])
    .output()
    .is_ok_and(|output| output.status.success())
}

impl Tally {
  fn figures(&self, name: &str, ending: Ending) -> Vec<Figure> {
    let mut figures = vec![
      Figure::info(SECTION, format!("{name}: runs"), self.runs),
      Figure::new(
        SECTION,
        format!("{name}: processes left"),
        self.survivors,
        "0",
        self.survivors == 0 && self.runs > 0,
      ),
      Figure::new(
        SECTION,
        format!("{name}: wrong exit or journal"),
        self.wrong_exit,
        "0",
        self.wrong_exit == 0,
      ),
    ];
    if ending == Ending::Killed {
      figures.push(Figure::new(
        SECTION,
        format!("{name}: left by the kill, reported by status"),
        format!("{}/{}", self.reported, self.left_by_kill),
        "all, ≥ 3 per run",
        self.reported == self.left_by_kill && self.left_by_kill >= 3 * self.runs,
      ));
    }
    figures
  }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) -> bool {
  let start = Instant::now();
  while !condition() {
    if start.elapsed() > LIMIT {
      eprintln!("   orphans: timed out waiting for {what}");
      return false;
    }
    std::thread::sleep(Duration::from_millis(20));
  }
  true
}

/// Wait for the child to exit; its exit code (None if it had to be killed).
fn exit_code(mut child: Child) -> Option<i32> {
  let start = Instant::now();
  loop {
    if let Ok(Some(status)) = child.try_wait() {
      return status.code();
    }
    if start.elapsed() > LIMIT {
      let _ = child.kill();
      let _ = child.wait();
      return None;
    }
    std::thread::sleep(Duration::from_millis(20));
  }
}

/// Marked processes still alive after [`SETTLE`].
fn settled_survivors(mark: &str) -> usize {
  let start = Instant::now();
  loop {
    let found = marked(mark).len();
    if found == 0 || start.elapsed() >= SETTLE {
      return found;
    }
    std::thread::sleep(Duration::from_millis(50));
  }
}

fn one_run(ending: Ending, sandbox: bool, tally: &mut Tally) {
  tally.runs += 1;
  let mark = marker("reliability");
  let test = Test::new()
    .file("orphans.yaml", RUNBOOK)
    .env("DRCTL_ORPHAN_TAG", &mark);
  let timeout = if ending == Ending::TimedOut {
    "1s"
  } else {
    "5m"
  };
  let backend = if sandbox { "--sandbox" } else { "--sim" };
  let args: Vec<String> = [
    "run",
    "orphans.yaml",
    backend,
    "--yes",
    "-p",
    &format!("mark={mark}"),
    "-p",
    &format!("timeout={timeout}"),
    "-p",
    if ending == Ending::TwiceInterrupted {
      "hold=yes"
    } else {
      "hold=no"
    },
  ]
  .map(String::from)
  .to_vec();
  let child = test.spawn(&args);
  // The shell and both sleeps of the first step: only the command's processes have `MARK=`
  // (drctl and the sandbox server carry the marker as `DRCTL_ORPHAN_TAG=`).
  let command_mark = format!("MARK={mark}");
  let running = wait_until("the grandchildren", || marked(&command_mark).len() >= 3);
  let good = running
    && match ending {
      Ending::TimedOut => exit_code(child) == Some(1),
      Ending::Interrupted => {
        signal(&child, "INT");
        exit_code(child) == Some(130)
      }
      Ending::TwiceInterrupted => {
        signal(&child, "INT");
        let cleanup = format!("{mark}-cleanup");
        let started = wait_until("the always-step", || !marked(&cleanup).is_empty());
        std::thread::sleep(Duration::from_millis(100));
        signal(&child, "INT");
        let code = exit_code(child);
        let journalled = test
          .run_ids()
          .pop()
          .is_some_and(|id| test.journal(&id).contains(r#""event":"run_interrupted""#));
        started && code == Some(130) && journalled
      }
      Ending::Killed => killed_then_resumed(&test, child, &mark, sandbox, tally),
    };
  if !good {
    tally.wrong_exit += 1;
  }
  tally.survivors += settled_survivors(&mark);
  kill_marked(&mark);
}

/// SIGKILL drctl while its command runs; count what is left, what `status` reports, and resume.
fn killed_then_resumed(
  test: &Test,
  mut child: Child,
  mark: &str,
  sandbox: bool,
  tally: &mut Tally,
) -> bool {
  signal(&child, "KILL");
  let _ = child.wait();
  let Some(run_id) = test.run_ids().pop() else {
    return false;
  };
  // Counted once the kill has landed everywhere it can: the sandbox's launcher notices that
  // drctl is gone within a quarter of a second and exits.
  std::thread::sleep(Duration::from_millis(if sandbox { 1500 } else { 200 }));
  let left = marked(mark).len();
  tally.left_by_kill += left;
  let status = test.run_args(["status", &run_id, "--output", "json"]);
  let reported = serde_json::from_str::<serde_json::Value>(&status.stdout())
    .ok()
    .and_then(|status| status["left_behind"].as_array().map(Vec::len))
    .unwrap_or_default();
  tally.reported += reported.min(left);
  if sandbox {
    // The resume of a sandbox run needs the server `drctl sandbox up` starts.
    let up = test.run_args(["sandbox", "up"]);
    if up.code() != 0 {
      return false;
    }
  }
  let resumed = test.run_args(["resume", &run_id, "--yes"]);
  if sandbox {
    test.run_args(["sandbox", "down"]);
  }
  resumed.code() == 0
}
