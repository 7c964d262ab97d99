//! Crash anywhere: `drctl failover` on `regional-failover.yaml`, SIGKILLed at seeded random
//! instants — the first process, then the `drctl resume` that follows it, and so on — and finally
//! resumed to completion. On the simulator (each run its own world) and against moto through the
//! AWS SDK (`--sandbox`, each run its own server). The same for `drctl run failback`, after a
//! completed failover: on the simulator on the world it left (`Sim::world_now`), and on moto on
//! the same server (counting only the failback's requests).
//!
//! What is measured, per run:
//! * **resumed to completion**: the last `drctl resume` exits 0 (or 3) and the journal ends
//!   `run_finished` with every step succeeded: `succeeded`, or `breached` when the wall time
//!   between a kill and its resume, multiplied by the time scale, pushed the RTO past its target
//!   (counted separately; it is time the outage really lasted).
//! * **duplicate effects**: mutating calls beyond one per effect, from the simulator's operation
//!   log (`drctl status --output json`) or moto's request recorder. A run makes exactly one
//!   `PromoteReadReplica`, two `UpdateService`s (the standby up, the old primary fenced to
//!   zero), one `ChangeResourceRecordSets` and one `AddTagsToResource` (the old writer
//!   retired); none missing is a target too.
//! * **journal records lost**: right after each kill, every complete journal line with a valid
//!   CRC (what the killed process had made durable), and every event it printed with a `seq`
//!   (`--output json`, printed only after the record is fsynced), must be in the final journal at
//!   the same position, byte for byte (printed events: same seq, event and step). The final
//!   journal must also read strictly: every line complete with a valid CRC, seq 1, 2, 3, ...
//!   A record the process never finished writing (a torn tail) is not counted: resume drops it.
//! * A kill before the run's first journal record leaves nothing to resume, only a stale lock:
//!   as an operator would, the suite breaks it with `drctl unlock` and starts the failover again
//!   (counted as "restarted").
//!
//! Each simulator run gets `--time-scale 200` or `1000` (seeded): a failover takes about 2 s or
//! 0.5 s of wall time instead of 10 s at the default 40, which is what lets 500 kills fit in a
//! few minutes, and kill instants are drawn uniformly over that lifetime, so they land in
//! start-up, probes, intents, waits and the end alike. Against moto a failover takes about 5 s
//! (the sandbox's modelled promotion and DNS propagation).

use std::{
  collections::BTreeMap,
  fs::File,
  path::Path,
  process::{Child, Stdio},
  sync::{
    atomic::{AtomicUsize, Ordering},
    Mutex,
  },
  time::{Duration, Instant},
};

use crate::{
  support::{journal, moto::Moto, recording, Test},
  Config, Figure,
};

const SECTION: &str = "crash";
/// The effects of a failover and how many calls each makes: each is applied exactly once, and
/// `UpdateService` serves two (the standby scaled up, the old primary fenced to zero).
const EFFECTS: [(&str, usize); 4] = [
  ("PromoteReadReplica", 1),
  ("UpdateService", 2),
  ("ChangeResourceRecordSets", 1),
  ("AddTagsToResource", 1),
];
/// The effects of a failback and how many times each is applied: two replicas (home, then the
/// standby one again), the home service back up (the failover fenced it to 0) and the standby's
/// writes stopped, one promotion, one DNS change, one health check reset, one retired standby
/// writer.
const FAILBACK_EFFECTS: [(&str, usize); 6] = [
  ("CreateDBInstanceReadReplica", 2),
  ("UpdateService", 2),
  ("PromoteReadReplica", 1),
  ("ChangeResourceRecordSets", 1),
  ("UpdateHealthCheck", 1),
  ("DeleteDBInstance", 1),
];
/// The events a process printed with a sequence number: (seq, event, step).
type Reported = Vec<(u64, String, Option<String>)>;

/// A process that is not killed must finish within this.
const FINISH_LIMIT: Duration = Duration::from_secs(180);

pub fn run(config: &Config) -> Vec<Figure> {
  let mut figures = vec![checker_catches_damage()];
  let sim_kills = if config.full { 500 } else { 40 };
  let sim = campaign(config, &Target::Sim, sim_kills, 3);
  figures.extend(sim.figures(Target::Sim.name(), sim_kills));
  let moto_kills = if config.full { 50 } else { 4 };
  if moto_kills > 0 {
    let moto = campaign(config, &Target::Moto, moto_kills, 2);
    figures.extend(moto.figures(Target::Moto.name(), moto_kills));
  }
  let failback_kills = if config.full { 200 } else { 8 };
  let failback = campaign(config, &Target::SimFailback, failback_kills, 2);
  figures.extend(failback.figures(Target::SimFailback.name(), failback_kills));
  let moto_failback_kills = if config.full { 20 } else { 2 };
  let moto_failback = campaign(config, &Target::MotoFailback, moto_failback_kills, 1);
  figures.extend(moto_failback.figures(Target::MotoFailback.name(), moto_failback_kills));
  figures
}

/// Where the runs go.
enum Target {
  Sim,
  Moto,
  /// `drctl run failback` on the simulator, on the world a finished failover left.
  SimFailback,
  /// `drctl run failback --sandbox` on the moto server a finished failover changed.
  MotoFailback,
}

/// Simulator time scales a run may get, with the wall time a failover takes at each (so kill
/// instants are drawn over the whole run): at 200× the promotion's wait dominates, at 1000× the
/// probes, intents and journal writes take a larger share of the wall time.
const SIM_SCALES: [(&str, u64); 2] = [("200", 2_500), ("1000", 700)];
/// The same for a failback, which waits through two replica creations and catch-ups (about 50
/// modelled minutes): about 5 s at 600×, 3 s at 1000×.
const FAILBACK_SCALES: [(&str, u64); 2] = [("600", 5_500), ("1000", 3_500)];

impl Target {
  fn name(&self) -> &'static str {
    match self {
      Target::Sim => "sim",
      Target::Moto => "moto",
      Target::SimFailback => "sim failback",
      Target::MotoFailback => "moto failback",
    }
  }

  /// The runbook the runs are of (its lock is what a restart breaks).
  fn runbook(&self) -> &'static str {
    match self {
      Target::Sim | Target::Moto => "regional-failover",
      Target::SimFailback | Target::MotoFailback => "failback",
    }
  }

  /// The effects a run applies, each with how many times.
  fn effects(&self) -> Vec<(&'static str, usize)> {
    match self {
      Target::Sim | Target::Moto => EFFECTS.to_vec(),
      Target::SimFailback | Target::MotoFailback => FAILBACK_EFFECTS.to_vec(),
    }
  }

  /// What the crashed run starts from: for a failback, a failover run to completion (never
  /// killed) and the world it left, as a world file.
  fn prepare(&self, test: &Test) -> Option<std::path::PathBuf> {
    match self {
      Target::Sim | Target::Moto => None,
      Target::MotoFailback => {
        let failover = test.run_args(["failover", "us-west-2", "--sandbox", "--yes"]);
        assert_eq!(
          failover.code(),
          0,
          "the failover before the failback: {}",
          failover.stderr()
        );
        None
      }
      Target::SimFailback => {
        let failover = test.run_args([
          "failover",
          "us-west-2",
          "--sim",
          "--yes",
          "--time-scale",
          "1000",
        ]);
        assert_eq!(
          failover.code(),
          0,
          "the failover before the failback: {}",
          failover.stderr()
        );
        let run_id = test.run_ids().pop().expect("the failover's run");
        Some(test.world_after(&run_id))
      }
    }
  }

  /// The run's command line and up to how long after its start a process is killed. `world`:
  /// the world file a failback starts from.
  fn failover(
    &self,
    rng: &mut fastrand::Rng,
    world: Option<&std::path::Path>,
  ) -> (Vec<String>, u64) {
    let (mut args, window): (Vec<String>, u64) = match self {
      Target::MotoFailback => (
        ["run", "failback", "--sandbox", "--yes"]
          .map(String::from)
          .to_vec(),
        6_000,
      ),
      Target::SimFailback => {
        let (scale, window) = FAILBACK_SCALES[rng.usize(..FAILBACK_SCALES.len())];
        let world = world.expect("a failback starts from the world a failover left");
        (
          vec![
            "run".into(),
            "failback".into(),
            "--sim".into(),
            world.display().to_string(),
            "--yes".into(),
            "--time-scale".into(),
            scale.into(),
          ],
          window,
        )
      }
      Target::Sim => {
        let (scale, window) = SIM_SCALES[rng.usize(..SIM_SCALES.len())];
        (
          [
            "failover",
            "us-west-2",
            "--sim",
            "--yes",
            "--time-scale",
            scale,
          ]
          .map(String::from)
          .to_vec(),
          window,
        )
      }
      Target::Moto => (
        ["failover", "us-west-2", "--sandbox", "--yes"]
          .map(String::from)
          .to_vec(),
        6_000,
      ),
    };
    args.extend(["--output".into(), "json".into()]);
    (args, window)
  }
}

/// Totals over many runs.
#[derive(Default)]
struct Tally {
  /// Runs killed at least once (or that failed).
  runs: usize,
  /// Runs that finished before their first kill came.
  unkilled: usize,
  kills: usize,
  /// Kills that landed between a mutating step's intent and its outcome.
  kills_in_flight: usize,
  /// Kills before the first journal record: no run to resume; unlocked and started again.
  restarts: usize,
  succeeded: usize,
  breached: usize,
  duplicates: usize,
  missing_effects: usize,
  records_checked: usize,
  lost: usize,
  bad_journals: usize,
  failures: Vec<String>,
}

impl Tally {
  fn add(&mut self, run: RunTally) {
    // A run that ended before its first kill tested nothing about crashes: it is counted apart
    // (unless it failed, which counts against the target like any other failure).
    if run.kills == 0 && run.succeeded {
      self.unkilled += 1;
    } else {
      self.runs += 1;
      self.succeeded += usize::from(run.succeeded);
    }
    self.kills += run.kills;
    self.kills_in_flight += run.kills_in_flight;
    self.restarts += run.restarts;
    self.breached += usize::from(run.breached);
    self.duplicates += run.duplicates;
    self.missing_effects += run.missing_effects;
    self.records_checked += run.records_checked;
    self.lost += run.lost;
    self.bad_journals += usize::from(run.bad_journal);
    if let Some(failure) = run.failure {
      self.failures.push(failure);
    }
  }

  fn figures(&self, backend: &str, target_kills: usize) -> Vec<Figure> {
    for failure in self.failures.iter().take(5) {
      eprintln!("   crash/{backend}: {failure}");
    }
    let percent = if self.runs == 0 {
      0.0
    } else {
      100.0 * self.succeeded as f64 / self.runs as f64
    };
    vec![
      Figure::new(
        SECTION,
        format!("{backend}: SIGKILLs"),
        self.kills,
        format!(">= {target_kills}"),
        self.kills >= target_kills,
      ),
      Figure::info(
        SECTION,
        format!("{backend}: kills between intent and outcome"),
        self.kills_in_flight,
      ),
      Figure::info(
        SECTION,
        format!("{backend}: kills before the first record (restarted)"),
        self.restarts,
      ),
      Figure::new(
        SECTION,
        format!("{backend}: runs resumed to completion"),
        format!("{}/{} ({percent:.0} %)", self.succeeded, self.runs),
        "100 %",
        self.runs > 0 && self.succeeded == self.runs,
      ),
      Figure::info(
        SECTION,
        format!("{backend}: runs that ended before a kill (not counted)"),
        self.unkilled,
      ),
      Figure::info(
        SECTION,
        format!("{backend}: of which RTO breached (kill gaps × scale)"),
        self.breached,
      ),
      Figure::new(
        SECTION,
        format!("{backend}: effects applied more than once"),
        self.duplicates,
        "0",
        self.duplicates == 0,
      ),
      Figure::new(
        SECTION,
        format!("{backend}: effects never applied"),
        self.missing_effects,
        "0",
        self.missing_effects == 0,
      ),
      Figure::new(
        SECTION,
        format!("{backend}: journal records lost"),
        format!("{} of {}", self.lost, self.records_checked),
        "0",
        self.lost == 0 && self.records_checked > 0,
      ),
      Figure::new(
        SECTION,
        format!("{backend}: journals failing CRC/sequence"),
        self.bad_journals,
        "0",
        self.bad_journals == 0,
      ),
    ]
  }
}

#[derive(Default)]
struct RunTally {
  kills: usize,
  kills_in_flight: usize,
  restarts: usize,
  succeeded: bool,
  breached: bool,
  duplicates: usize,
  missing_effects: usize,
  records_checked: usize,
  lost: usize,
  bad_journal: bool,
  failure: Option<String>,
}

/// Runs on `workers` threads until `kills` kills have been made.
fn campaign(config: &Config, target: &Target, kills: usize, workers: usize) -> Tally {
  let made = AtomicUsize::new(0);
  let next = AtomicUsize::new(0);
  let tally = Mutex::new(Tally::default());
  std::thread::scope(|scope| {
    for _ in 0..workers {
      scope.spawn(|| {
        while made.load(Ordering::SeqCst) < kills {
          let index = next.fetch_add(1, Ordering::SeqCst);
          // One seed per run, so a run reproduces whichever worker takes it.
          let mut rng = fastrand::Rng::with_seed(
            config.seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
          );
          let run = match target {
            Target::Sim | Target::SimFailback => crash_run(target, &mut rng, None),
            Target::Moto | Target::MotoFailback => {
              let moto = Moto::start();
              crash_run(target, &mut rng, Some(&moto))
            }
          };
          let before = made.fetch_add(run.kills, Ordering::SeqCst);
          // A line every 50 kills, so a long full run shows it is alive.
          if (before + run.kills) / 50 > before / 50 {
            eprintln!(
              "   crash/{}: {} kills so far",
              target.name(),
              before + run.kills
            );
          }
          tally.lock().unwrap().add(run);
        }
      });
    }
  });
  tally.into_inner().unwrap()
}

/// A process started with its stdout in a file (so a full pipe never stalls it).
struct Process {
  child: Child,
  stdout: std::path::PathBuf,
}

fn spawn(test: &Test, args: &[String], number: usize) -> Process {
  let stdout = test.path().join(format!("process-{number}.stdout"));
  let stderr = test.path().join(format!("process-{number}.stderr"));
  let child = test
    .command(args)
    .stdout(Stdio::from(
      File::create(&stdout).expect("create a stdout file"),
    ))
    .stderr(Stdio::from(
      File::create(stderr).expect("create a stderr file"),
    ))
    .spawn()
    .expect("drctl starts");
  Process { child, stdout }
}

/// Wait up to `limit` for the process to end on its own; `None` if it did not.
fn wait_until(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
  let start = Instant::now();
  loop {
    if let Ok(Some(status)) = child.try_wait() {
      return Some(status);
    }
    if start.elapsed() >= limit {
      return None;
    }
    std::thread::sleep(Duration::from_millis(5));
  }
}

fn sigkill(child: &mut Child) {
  // SIGKILL (`Child::kill` sends SIGKILL on Unix).
  let _ = child.kill();
  let _ = child.wait();
}

/// The newest run with at least one durable journal record, other than the `prepared` ones (the
/// failover a failback starts from).
fn current_run(test: &Test, prepared: &[String]) -> Option<String> {
  test
    .run_ids()
    .into_iter()
    .rev()
    .filter(|id| !prepared.contains(id))
    .find(|id| !journal::durable(&journal_path(test, id)).is_empty())
}

fn journal_path(test: &Test, run_id: &str) -> std::path::PathBuf {
  test
    .path()
    .join(".drctl/runs")
    .join(run_id)
    .join("journal.jsonl")
}

/// What a process printed with a sequence number.
fn reported(stdout: &Path) -> Reported {
  std::fs::read_to_string(stdout)
    .unwrap_or_default()
    .lines()
    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    .filter_map(|event| {
      Some((
        event["seq"].as_u64()?,
        event["event"].as_str()?.to_owned(),
        event["step"].as_str().map(str::to_owned),
      ))
    })
    .collect()
}

/// Kills that land between a mutating step's intent and its outcome (from the durable records).
fn in_flight(lines: &[journal::Line]) -> bool {
  let mut open: BTreeMap<String, bool> = BTreeMap::new();
  for line in lines {
    let Some(step) = &line.step else { continue };
    match line.event.as_str() {
      "step_intent" => {
        open.insert(step.clone(), true);
      }
      "step_succeeded" | "step_failed" => {
        open.insert(step.clone(), false);
      }
      _ => {}
    }
  }
  open.values().any(|open| *open)
}

/// One run: start, kill up to a few times (each kill followed by a resume), resume to the end,
/// then check the effects and the journal.
fn crash_run(target: &Target, rng: &mut fastrand::Rng, moto: Option<&Moto>) -> RunTally {
  let mut tally = RunTally::default();
  let mut test = Test::new();
  if let Some(moto) = moto {
    for (key, value) in moto.env() {
      test = test.env(&key, &value);
    }
    moto.attach(&test.path().join(".drctl"));
    recording::start(moto);
  }
  let world = target.prepare(&test);
  if let Some(moto) = moto {
    // Count the requests of the run under test only, not those of a failover before it.
    recording::start(moto);
  }
  // The failover a failback starts from is not one of the runs under test.
  let prepared = test.run_ids();
  let (failover, window_ms) = target.failover(rng, world.as_deref());
  let max_kills = rng.usize(1..=4);
  let mut snapshots: Vec<(String, Vec<journal::Line>)> = Vec::new();
  let mut reports: Vec<(String, Reported)> = Vec::new();
  let mut number = 0;
  let mut process = spawn(&test, &failover, number);
  let mut exited = None;
  while tally.kills < max_kills {
    let delay = Duration::from_millis(rng.u64(0..window_ms));
    if let Some(status) = wait_until(&mut process.child, delay) {
      exited = Some(status);
      break;
    }
    sigkill(&mut process.child);
    tally.kills += 1;
    match current_run(&test, &prepared) {
      Some(run_id) => {
        let durable = journal::durable(&journal_path(&test, &run_id));
        tally.kills_in_flight += usize::from(in_flight(&durable));
        snapshots.push((run_id.clone(), durable));
        reports.push((run_id.clone(), reported(&process.stdout)));
        number += 1;
        process = spawn(
          &test,
          &[
            "resume".into(),
            run_id,
            "--yes".into(),
            "--output".into(),
            "json".into(),
          ],
          number,
        );
      }
      None => {
        // Killed before the run's first record: nothing to resume. The operator breaks the
        // dead process's lock and starts over.
        tally.restarts += 1;
        test.run_args(["unlock", target.runbook()]);
        number += 1;
        process = spawn(&test, &failover, number);
      }
    }
  }
  // Let the last process finish, then resume to the end (a no-op if it finished).
  if exited.is_none() && wait_until(&mut process.child, FINISH_LIMIT).is_none() {
    sigkill(&mut process.child);
    tally.failure = Some(format!(
      "{}: a process did not finish within {FINISH_LIMIT:?}",
      test.path().display()
    ));
  }
  if reported(&process.stdout).is_empty() {
    // Nothing to add: a process that printed nothing reported nothing.
  } else if let Some(run_id) = current_run(&test, &prepared) {
    reports.push((run_id, reported(&process.stdout)));
  }
  let Some(run_id) = current_run(&test, &prepared) else {
    tally.failure = Some("no run has a journal".into());
    let _ = test.dir.keep();
    return tally;
  };
  let last = test.run_args(["resume", &run_id, "--yes"]);
  let path = journal_path(&test, &run_id);
  let journal = match journal::strict(&path) {
    Ok(lines) => lines,
    Err(err) => {
      tally.bad_journal = true;
      tally.failure = Some(format!("{}: {err}", path.display()));
      journal::durable(&path)
    }
  };
  // Every step succeeded: `succeeded`, or `breached` when the time between a kill and its
  // resume, multiplied by the time scale, pushed the RTO over its target (exit 3).
  let finished = journal.last().is_some_and(|line| {
    line.event == "run_finished"
      && (line.text.contains(r#""status":"succeeded""#)
        || line.text.contains(r#""status":"breached""#))
  });
  tally.breached = journal
    .last()
    .is_some_and(|line| line.text.contains(r#""status":"breached""#));
  tally.succeeded = matches!(last.code(), 0 | 3) && finished;
  if !tally.succeeded && tally.failure.is_none() {
    tally.failure = Some(format!(
      "{}: resume exited {}: {}",
      test.path().display(),
      last.code(),
      last.stderr()
    ));
  }

  // Journal records lost: durable at a kill, or reported by a process, and not kept.
  for (snapshot_run, lines) in &snapshots {
    if *snapshot_run == run_id {
      tally.records_checked += lines.len();
      tally.lost += journal::lost(lines, &journal);
    }
  }
  for (report_run, events) in &reports {
    if *report_run != run_id {
      continue;
    }
    for (seq, event, step) in events {
      tally.records_checked += 1;
      let kept = journal
        .get(seq.saturating_sub(1) as usize)
        .is_some_and(|line| line.seq == *seq && line.event == *event && line.step == *step);
      tally.lost += usize::from(!kept);
    }
  }

  // Effects, from the operation log of the world the run changed.
  let operations = match moto {
    Some(moto) => recording::operations(moto),
    None => test.operations(&run_id),
  };
  let effects = target.effects();
  let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
  for operation in &operations {
    if let Some((effect, _)) = effects.iter().find(|(effect, _)| *effect == operation) {
      *counts.entry(effect).or_default() += 1;
    }
  }
  for (effect, expected) in effects {
    let made = counts.get(effect).copied().unwrap_or(0);
    tally.missing_effects += expected.saturating_sub(made);
    tally.duplicates += made.saturating_sub(expected);
  }
  if (tally.duplicates > 0 || tally.missing_effects > 0 || tally.lost > 0)
    && tally.failure.is_none()
  {
    tally.failure = Some(format!(
      "{}: effects {counts:?}, {} lost record(s)",
      test.path().display(),
      tally.lost
    ));
  }
  if tally.failure.is_some() {
    // Keep the evidence of a failed run for inspection.
    let _ = test.dir.keep();
  }
  tally
}

/// The journal checks must be able to fail: a finished run's journal, damaged three ways (a record
/// dropped, two swapped, one byte changed), is rejected by the strict reader and shows records
/// lost against the original.
fn checker_catches_damage() -> Figure {
  let name = "journal checker rejects dropped/swapped/altered records";
  let test = Test::new();
  let run = test.run_args([
    "failover",
    "us-west-2",
    "--sim",
    "--yes",
    "--time-scale",
    "1000",
  ]);
  let Some(run_id) = test.run_ids().pop() else {
    return Figure::new(
      SECTION,
      name,
      format!("no run (exit {})", run.code()),
      "3/3",
      false,
    );
  };
  let path = journal_path(&test, &run_id);
  let Ok(original) = journal::strict(&path) else {
    return Figure::new(
      SECTION,
      name,
      "the intact journal was rejected",
      "3/3",
      false,
    );
  };
  let lines: Vec<String> = original.iter().map(|line| line.text.clone()).collect();
  let middle = lines.len() / 2;
  let mut dropped = lines.clone();
  dropped.remove(middle);
  let mut swapped = lines.clone();
  swapped.swap(middle, middle + 1);
  let mut altered = lines.clone();
  // One byte of the timestamp: 2026 becomes 3026, so the content no longer matches its CRC.
  altered[middle] = altered[middle].replacen("\"ts\":\"2", "\"ts\":\"3", 1);
  let mut caught = 0;
  for damaged in [dropped, swapped, altered] {
    let file = test.path().join("damaged.jsonl");
    std::fs::write(&file, damaged.concat()).expect("write the damaged journal");
    let rejected = journal::strict(&file).is_err();
    let lost = journal::lost(&original, &journal::durable(&file));
    caught += usize::from(rejected && lost > 0);
  }
  Figure::new(SECTION, name, format!("{caught}/3"), "3/3", caught == 3)
}
