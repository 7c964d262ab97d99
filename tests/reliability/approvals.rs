//! Approvals across crashes: a run waits at two approval gates without a terminal; another
//! process approves each with `drctl approve` while the run is SIGKILLed at random moments
//! (before, right after and well after the request is written), then resumed, until it ends.
//! Each trial also replays its first request (a copy of the file under a new name, as a second
//! click would write) to check that one wait takes one answer.
//!
//! What is measured, over every trial:
//! * **runs that ended succeeded**: every run must end with exit 0 once both gates are approved.
//! * **gates answered more than once**: `approval_granted` records per gate; exactly one each.
//! * **gated steps started before their approval**: a `step_started` of a gate before its
//!   `approval_granted`; none.
//! * **waits asked again after a crash**: more than one `approval_requested` per gate; none (a
//!   resumed run continues the wait its journal holds open).
//! * **replayed requests journalled as ignored**: of the first request and its copy, exactly one
//!   is applied and the other journalled `control_ignored`.
//! * **journals that do not read strictly**: every line complete with a valid CRC, seq 1, 2, 3.
//!
//! Fast: 6 trials. Full: 40 trials. The seed picks each kill's moment.

use std::{
  process::Child,
  time::{Duration, Instant},
};

use crate::{
  support::{journal, signal, Test},
  Config, Figure,
};

const SECTION: &str = "approvals";
const LIMIT: Duration = Duration::from_secs(60);
const GATES: [&str; 2] = ["promote", "flip"];
const RUNBOOK: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: gated }
steps:
  - id: promote
    action: wait.sleep
    approval: { prompt: "Promote?" }
    with: { duration: 1s }
  - id: flip
    action: wait.sleep
    needs: [promote]
    approval: { prompt: "Flip?" }
    with: { duration: 1s }
"#;

#[derive(Default)]
struct Totals {
  trials: usize,
  succeeded: usize,
  kills: usize,
  answered_twice: usize,
  started_early: usize,
  asked_again: usize,
  not_strict: usize,
  /// Trials whose replayed first request was journalled as ignored (it, or the original).
  replay_ignored: usize,
}

pub fn run(config: &Config) -> Vec<Figure> {
  let trials = if config.full { 40 } else { 6 };
  let mut rng = fastrand::Rng::with_seed(config.seed);
  let mut totals = Totals::default();
  for _ in 0..trials {
    trial(&mut rng, &mut totals);
  }
  let total = totals.trials;
  vec![
    Figure::new(
      SECTION,
      "runs that ended succeeded",
      format!("{}/{total}", totals.succeeded),
      format!("{total}/{total}"),
      totals.succeeded == total,
    ),
    Figure::info(SECTION, "SIGKILLs while waiting or answering", totals.kills),
    Figure::new(
      SECTION,
      "gates answered more than once",
      totals.answered_twice,
      "0",
      totals.answered_twice == 0,
    ),
    Figure::new(
      SECTION,
      "gated steps started before their approval",
      totals.started_early,
      "0",
      totals.started_early == 0,
    ),
    Figure::new(
      SECTION,
      "waits asked again after a crash",
      totals.asked_again,
      "0",
      totals.asked_again == 0,
    ),
    Figure::new(
      SECTION,
      "replayed requests journalled as ignored",
      format!("{}/{total}", totals.replay_ignored),
      format!("{total}/{total}"),
      totals.replay_ignored == total,
    ),
    Figure::new(
      SECTION,
      "journals that do not read strictly",
      totals.not_strict,
      "0",
      totals.not_strict == 0,
    ),
  ]
}

fn journal_has(test: &Test, id: &str, needle: &str) -> bool {
  test.journal(id).contains(needle)
}

/// Start (or resume) and wait until `gate` waits; the process.
fn until_waiting(test: &Test, args: &[&str], id: Option<&str>, gate: &str) -> (Child, String) {
  let mut child = test.spawn(args);
  match asked(test, id, gate) {
    Some(found) => (child, found),
    None => {
      let _ = child.kill();
      let _ = child.wait();
      panic!("the run never waited at {gate}");
    }
  }
}

/// The run (`id`, or the only one) once its journal shows `gate` waiting; `None` after LIMIT.
fn asked(test: &Test, id: Option<&str>, gate: &str) -> Option<String> {
  let gate_needle = format!(r#""step":"{gate}""#);
  let start = Instant::now();
  while start.elapsed() < LIMIT {
    let found = id
      .map(str::to_string)
      .or_else(|| test.run_ids().first().cloned());
    if let Some(found) = found {
      let waiting = test.journal(&found).lines().any(|line| {
        line.contains(r#""event":"approval_requested""#) && line.contains(&gate_needle)
      });
      if waiting {
        return Some(found);
      }
    }
    std::thread::sleep(Duration::from_millis(20));
  }
  None
}

fn trial(rng: &mut fastrand::Rng, totals: &mut Totals) {
  totals.trials += 1;
  let test = Test::new().file("gated.yaml", RUNBOOK);
  let run = ["run", "gated.yaml", "--sim", "--time-scale", "600"];
  let (mut child, id) = until_waiting(&test, &run, None, GATES[0]);
  let resume = ["resume", id.as_str()];
  let mut code = None;
  for (index, gate) in GATES.iter().enumerate() {
    if index > 0 {
      // The previous gate's step runs, then this gate waits (in the same process, or a resume).
      let start = Instant::now();
      while !test
        .journal(&id)
        .lines()
        .any(|line| line.contains("approval_requested") && line.contains(gate))
      {
        if let Ok(Some(_)) = child.try_wait() {
          break;
        }
        assert!(start.elapsed() < LIMIT, "never reached {gate}");
        std::thread::sleep(Duration::from_millis(20));
      }
    }
    // Kill before the approval, at random.
    if rng.bool() {
      signal(&child, "KILL");
      let _ = child.wait();
      totals.kills += 1;
      child = until_waiting(&test, &resume, Some(&id), gate).0;
    }
    let approved = test.run_args(["approve", &id, gate]);
    assert_eq!(approved.code(), 0, "{}", approved.stderr());
    if index == 0 {
      replay(&test, &id);
    }
    // Kill right after, or a little later, at random.
    if rng.bool() {
      std::thread::sleep(Duration::from_millis(rng.u64(0..400)));
      signal(&child, "KILL");
      let _ = child.wait();
      totals.kills += 1;
      child = test.spawn(resume);
    }
  }
  let start = Instant::now();
  while code.is_none() {
    code = child.try_wait().ok().flatten().map(|status| status.code());
    assert!(start.elapsed() < LIMIT, "the run never ended");
    std::thread::sleep(Duration::from_millis(20));
  }
  if code == Some(Some(0)) || journal_has(&test, &id, r#""status":"succeeded""#) {
    totals.succeeded += 1;
  }
  judge(&test, &id, totals);
}

/// Copy the first request file under a new name: a second submission of the same answer.
fn replay(test: &Test, id: &str) {
  let dir = test.path().join(".drctl/runs").join(id).join("requests");
  if let Some(Ok(entry)) = std::fs::read_dir(&dir)
    .ok()
    .and_then(|mut entries| entries.next())
  {
    let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
    let _ = std::fs::write(dir.join("9999999999999-replayed.json"), text);
  }
}

fn judge(test: &Test, id: &str, totals: &mut Totals) {
  let path = test
    .path()
    .join(".drctl/runs")
    .join(id)
    .join("journal.jsonl");
  if journal::strict(&path).is_err() {
    totals.not_strict += 1;
  }
  let text = test.journal(id);
  let ignored = text
    .lines()
    .filter(|line| line.contains(r#""event":"control_ignored""#))
    .count();
  if ignored == 1 {
    totals.replay_ignored += 1;
  }
  for gate in GATES {
    let step = format!(r#""step":"{gate}""#);
    let lines: Vec<&str> = text.lines().filter(|line| line.contains(&step)).collect();
    let granted = lines
      .iter()
      .position(|line| line.contains(r#""event":"approval_granted""#));
    let started = lines
      .iter()
      .position(|line| line.contains(r#""event":"step_started""#));
    let count = |event: &str| lines.iter().filter(|line| line.contains(event)).count();
    if count(r#""event":"approval_granted""#) > 1 {
      totals.answered_twice += 1;
    }
    if count(r#""event":"approval_requested""#) > 1 {
      totals.asked_again += 1;
    }
    if matches!((started, granted), (Some(s), Some(g)) if s < g)
      || granted.is_none() && started.is_some()
    {
      totals.started_early += 1;
    }
  }
}
