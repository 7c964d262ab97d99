//! Resume races: `drctl resume` of a run while that run is alive, and 2, 4 and 8 resumes of a
//! killed run racing each other, on one local state directory and on one `s3://` state (moto)
//! (`regional-failover.yaml` on the simulator at 100×, so a run or a resume holds its lock for a
//! few seconds, far longer than the racers take to start).
//!
//! What is measured, per race:
//! * **proceeded**: how many processes ran the run (to completion: exit 0, or 3 when the
//!   kill-to-resume gap at 100× pushed the RTO past its target). Counted in the journal itself
//!   (its `run_resumed` records), not from exit codes: exactly one for a killed run, none while
//!   the run is alive. Every other process must exit 4 naming the live holder (its run id,
//!   host, pid and start), or — a racer that only got to the lock after the winner had finished
//!   and released it — report the run as already finished, changing nothing.
//! * **duplicate effects**: from the simulator's operation log (`drctl status --output json`),
//!   a failover makes exactly one `PromoteReadReplica`, two `UpdateService`s (the standby up,
//!   the old primary fenced to zero), one `ChangeResourceRecordSets` and one
//!   `AddTagsToResource` (the old writer retired); anything beyond is a duplicate, and none
//!   missing is a target too.
//! * **journal records lost or overwritten**: the records durable before the race (every
//!   complete line with a valid CRC) must all be in the final journal at the same position,
//!   byte for byte, and the final journal must read strictly (tests/support/journal.rs): every
//!   line complete with a valid CRC, seq 1, 2, 3, ...
//!
//! The fast configuration races once per case (on S3: the live run and 4 resumes); the full one
//! five times per case, 2, 4 and 8 on both states.
//!
//! A killed run is killed (SIGKILL) once its first mutating step has journalled its intent, so
//! the winning resume has an effect in flight to observe before it applies anything.

use std::{
  process::{Child, Output},
  time::{Duration, Instant},
};

use crate::{
  support::{
    count, journal,
    moto::Moto,
    s3::{self, CACHE, STATE},
    Test,
  },
  Config, Figure,
};

const SECTION: &str = "resumerace";
const LEVELS: [usize; 3] = [2, 4, 8];
/// How many resumes race the live run.
const LIVE_RACERS: usize = 4;
/// Each effect of a failover and how many calls it makes (see the module documentation).
const EFFECTS: [(&str, usize); 4] = [
  ("PromoteReadReplica", 1),
  ("UpdateService", 2),
  ("ChangeResourceRecordSets", 1),
  ("AddTagsToResource", 1),
];
const FAILOVER: [&str; 6] = [
  "failover",
  "us-west-2",
  "--sim",
  "--yes",
  "--time-scale",
  "100",
];
/// A run or resume that is not killed must finish within this.
const FINISH_LIMIT: Duration = Duration::from_secs(120);

pub fn run(config: &Config) -> Vec<Figure> {
  let rounds = if config.full { 5 } else { 1 };
  let mut totals = Totals::default();
  let mut figures = Vec::new();
  figures.extend(state_figures(&State::Local, &LEVELS, rounds, &mut totals));
  let moto = Moto::start();
  s3::create_bucket(&moto, s3::BUCKET);
  // Races on S3 take a few round trips more each: the fast configuration races 4 there.
  let s3_levels: &[usize] = if config.full { &LEVELS } else { &[4] };
  figures.extend(state_figures(
    &State::S3(&moto),
    s3_levels,
    rounds,
    &mut totals,
  ));
  figures.push(Figure::new(
    SECTION,
    "duplicate effects (all races)",
    totals.duplicates,
    "0",
    totals.duplicates == 0,
  ));
  figures.push(Figure::new(
    SECTION,
    "missing effects (all races)",
    totals.missing,
    "0",
    totals.missing == 0,
  ));
  figures.push(Figure::new(
    SECTION,
    format!(
      "journal records lost or overwritten (of {} checked)",
      totals.checked
    ),
    totals.lost,
    "0",
    totals.lost == 0,
  ));
  figures.push(Figure::new(
    SECTION,
    "final journals that fail the strict check",
    totals.bad_journals,
    "0",
    totals.bad_journals == 0,
  ));
  figures
}

/// Where the races' state lives.
enum State<'a> {
  Local,
  S3(&'a Moto),
}

impl State<'_> {
  fn name(&self) -> &'static str {
    match self {
      State::Local => "local",
      State::S3(_) => "s3",
    }
  }

  fn test(&self) -> Test {
    match self {
      State::Local => Test::new(),
      State::S3(moto) => s3::s3_test(moto, &moto.endpoint),
    }
  }

  fn args(&self, args: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    if let State::S3(_) = self {
      args.extend(["--state".into(), STATE.into()]);
    }
    args
  }

  fn run_ids(&self, test: &Test) -> Vec<String> {
    match self {
      State::Local => test.run_ids(),
      State::S3(_) => s3::cached_run_ids(test),
    }
  }

  fn journal_path(&self, test: &Test, run_id: &str) -> std::path::PathBuf {
    let root = match self {
      State::Local => test.path().join(".drctl"),
      State::S3(_) => test.path().join(CACHE),
    };
    root.join("runs").join(run_id).join("journal.jsonl")
  }

  fn locked(&self, test: &Test) -> bool {
    match self {
      State::Local => test.path().join(".drctl/locks/default.lock").exists(),
      State::S3(moto) => s3::lock_object(moto).is_some(),
    }
  }

  /// The simulator's operation names, in order.
  fn operations(&self, test: &Test, run_id: &str) -> Vec<String> {
    let run = test.run_args(self.args(&["status", run_id, "--output", "json"]));
    let status: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap_or_default();
    status["operations"]
      .as_array()
      .map(|ops| {
        ops
          .iter()
          .filter_map(|op| op["operation"].as_str().map(str::to_string))
          .collect()
      })
      .unwrap_or_default()
  }
}

fn state_figures(
  state: &State,
  levels: &[usize],
  rounds: usize,
  totals: &mut Totals,
) -> Vec<Figure> {
  let mut figures = Vec::new();
  let live: Vec<Race> = (0..rounds).map(|_| live_race(state)).collect();
  figures.push(race_figure(
    &format!(
      "{}: resume ×{LIVE_RACERS} racing the live run",
      state.name()
    ),
    &live,
    0,
    LIVE_RACERS,
  ));
  live.iter().for_each(|race| totals.add(race));
  for &n in levels {
    let races: Vec<Race> = (0..rounds).map(|_| killed_race(state, n)).collect();
    figures.push(race_figure(
      &format!("{}: {n} resumes of a killed run at once", state.name()),
      &races,
      1,
      n - 1,
    ));
    races.iter().for_each(|race| totals.add(race));
  }
  figures
}

/// What one race came to.
#[derive(Debug, Default)]
struct Race {
  /// `run_resumed` records the racers added to the journal.
  proceeded: usize,
  /// Racers that exited 4 naming the live holder.
  refused_naming: usize,
  /// Racers that came after the winner had finished and said so.
  late: usize,
  duplicates: usize,
  missing: usize,
  checked: usize,
  lost: usize,
  strict_ok: bool,
  /// What went wrong, for the log.
  trouble: Vec<String>,
}

#[derive(Default)]
struct Totals {
  duplicates: usize,
  missing: usize,
  checked: usize,
  lost: usize,
  bad_journals: usize,
}

impl Totals {
  fn add(&mut self, race: &Race) {
    self.duplicates += race.duplicates;
    self.missing += race.missing;
    self.checked += race.checked;
    self.lost += race.lost;
    self.bad_journals += usize::from(!race.strict_ok);
  }
}

fn race_figure(name: &str, races: &[Race], proceed: usize, refuse: usize) -> Figure {
  let met = |race: &Race| race.proceeded == proceed && race.refused_naming + race.late == refuse;
  let good = races.iter().filter(|race| met(race)).count();
  let shown = races
    .iter()
    .find(|race| !met(race))
    .unwrap_or(&races[races.len() - 1]);
  for race in races {
    for trouble in &race.trouble {
      eprintln!("   {name}: {trouble}");
    }
  }
  let mut label = name.to_string();
  if races.len() > 1 {
    label = format!("{label} ({good}/{} rounds)", races.len());
  }
  Figure::new(
    SECTION,
    label,
    format!(
      "{} proceeded, {} exit 4 naming the holder{}",
      shown.proceeded,
      shown.refused_naming,
      if shown.late > 0 {
        format!(", {} found it finished", shown.late)
      } else {
        String::new()
      }
    ),
    format!("{proceed} proceeded, {refuse} exit 4 naming the holder (or found it finished)"),
    good == races.len(),
  )
}

/// Start a failover and wait until it holds the lock and its journal has `event` (or any
/// record). Its run id, or `None` if it never got there.
fn start_failover(state: &State, test: &Test, event: Option<&str>) -> (Child, Option<String>) {
  let child = test.spawn(state.args(&FAILOVER));
  let start = Instant::now();
  while start.elapsed() < Duration::from_secs(60) {
    if let Some(id) = state.run_ids(test).pop() {
      let text = std::fs::read_to_string(state.journal_path(test, &id)).unwrap_or_default();
      let ready = match event {
        Some(event) => text.contains(&format!(r#""event":"{event}""#)),
        None => !text.is_empty(),
      };
      if ready && state.locked(test) {
        return (child, Some(id));
      }
    }
    std::thread::sleep(Duration::from_millis(5));
  }
  (child, None)
}

/// Start `n` resumes of `run_id` at once and wait for them.
fn resumes(state: &State, test: &Test, run_id: &str, n: usize) -> Vec<(u32, Output)> {
  let children: Vec<Child> = (0..n)
    .map(|_| test.spawn(state.args(&["resume", run_id, "--yes"])))
    .collect();
  children
    .into_iter()
    .map(|child| {
      let pid = child.id();
      (pid, wait(child))
    })
    .collect()
}

fn wait(child: Child) -> Output {
  let pid = child.id();
  let start = Instant::now();
  let output = child.wait_with_output().expect("wait for drctl");
  if start.elapsed() > FINISH_LIMIT {
    eprintln!("   process {pid} took {:?}", start.elapsed());
  }
  output
}

/// Whether a run (or resume) ran to completion: exit 0, or 3 when the time between the kill
/// and the resume, multiplied by the time scale, pushed the RTO past its target (time the
/// outage really lasted; the crash section counts those the same way).
fn completed(output: &Output) -> bool {
  matches!(output.status.code(), Some(0 | 3))
}

/// Whether a resume found the run already finished (it came after the winner released).
fn found_finished(output: &Output) -> bool {
  String::from_utf8_lossy(&output.stdout).contains("already finished")
}

/// Whether a refused racer named the holder (`run ID (host H, pid P, started T)`).
fn names_holder(output: &Output, run_id: &str, holder_pid: Option<u32>) -> bool {
  let stderr = String::from_utf8_lossy(&output.stderr);
  output.status.code() == Some(4)
    && stderr.contains(&format!("run {run_id} (host "))
    && stderr.contains("started ")
    && holder_pid.is_none_or(|pid| stderr.contains(&format!("pid {pid},")))
}

/// Check the run's effects and journal after a race, against the records durable before it.
fn check(state: &State, test: &Test, run_id: &str, before: &[journal::Line], race: &mut Race) {
  let operations = state.operations(test, run_id);
  for (effect, times) in EFFECTS {
    let n = count(&operations, effect);
    race.missing += times.saturating_sub(n);
    race.duplicates += n.saturating_sub(times);
  }
  if race.duplicates + race.missing > 0 {
    race.trouble.push(format!("operations {operations:?}"));
  }
  race.checked += before.len();
  match journal::strict(&state.journal_path(test, run_id)) {
    Ok(after) => {
      race.strict_ok = true;
      race.lost += journal::lost(before, &after);
      race.proceeded = after
        .iter()
        .filter(|line| line.event == "run_resumed")
        .count();
      if !after.iter().any(|line| line.event == "run_finished") {
        race.trouble.push("the run did not finish".into());
      }
    }
    Err(err) => {
      race.trouble.push(format!("journal: {err}"));
      race.lost += before.len();
    }
  }
}

/// Resumes racing the live run: all are refused, the run goes on alone.
fn live_race(state: &State) -> Race {
  let test = state.test();
  let mut race = Race::default();
  let (child, run_id) = start_failover(state, &test, None);
  let Some(run_id) = run_id else {
    race.trouble.push("the failover never started".into());
    let _ = wait(child);
    return race;
  };
  let holder_pid = child.id();
  let before = journal::durable(&state.journal_path(&test, &run_id));
  let outputs = resumes(state, &test, &run_id, LIVE_RACERS);
  let run = wait(child);
  if !completed(&run) {
    race.trouble.push(format!(
      "the live run exited {:?}: {}",
      run.status.code(),
      String::from_utf8_lossy(&run.stderr).trim()
    ));
  }
  for (_, output) in &outputs {
    if names_holder(output, &run_id, Some(holder_pid)) {
      race.refused_naming += 1;
    } else {
      race.trouble.push(format!(
        "a resume exited {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).trim()
      ));
    }
  }
  check(state, &test, &run_id, &before, &mut race);
  race
}

/// `n` resumes of a killed run: one proceeds, the others are refused naming it.
fn killed_race(state: &State, n: usize) -> Race {
  let test = state.test();
  let mut race = Race::default();
  let (mut child, run_id) = start_failover(state, &test, Some("step_intent"));
  let _ = child.kill();
  let _ = child.wait();
  let Some(run_id) = run_id else {
    race
      .trouble
      .push("the failover never journalled an intent".into());
    return race;
  };
  let before = journal::durable(&state.journal_path(&test, &run_id));
  let outputs = resumes(state, &test, &run_id, n);
  let winners: Vec<u32> = outputs
    .iter()
    .filter(|(_, output)| completed(output) && !found_finished(output))
    .map(|(pid, _)| *pid)
    .collect();
  let winner = match winners.as_slice() {
    [pid] => Some(*pid),
    _ => None,
  };
  for (pid, output) in &outputs {
    if Some(*pid) == winner {
      continue;
    }
    if winner.is_some() && names_holder(output, &run_id, winner) {
      race.refused_naming += 1;
    } else if found_finished(output) {
      race.late += 1;
    } else {
      race.trouble.push(format!(
        "a resume exited {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).trim()
      ));
    }
  }
  check(state, &test, &run_id, &before, &mut race);
  race
}
