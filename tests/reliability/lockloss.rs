//! Lock loss: a failover's lock is stolen at a seeded random instant, on a local state and on an
//! `s3://` state on moto. The thief replaces the lock (as `drctl unlock` followed by another
//! run would) with a holder of its own; the lease is shortened (`DRCTL_LOCK_LEASE=6s`, renewed
//! every 2 s) so that a steal is noticed within seconds.
//!
//! Figures, from the simulator's operation log (every accepted mutating call, with its
//! wall-clock time) and the journal's `lock_lost` record (when the loss was detected):
//! * mutating calls accepted after the loss was detected: 0 (a call is checked against the
//!   fence right before it leaves, so only one already on the wire may land after);
//! * mutating calls between the steal and its detection: reported (the run cannot know yet);
//! * detection latency, steal to `lock_lost.detected_at`: at most the renewal interval (2 s),
//!   plus the renewal's own round trips (100 ms);
//! * exit code 4 for every robbed run, and every one resumed to success once the thief is done.

use std::{
  io::{BufRead, BufReader},
  path::PathBuf,
  process::Child,
  time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::{
  support::{
    moto::Moto,
    s3::{self, CACHE, STATE},
    Test,
  },
  Config, Figure,
};

const SECTION: &str = "lockloss";
const LEASE: &str = "6s";
const RENEW_EVERY: Duration = Duration::from_secs(2);
/// What a renewal's own requests may add to the interval (a conditional PUT, then a GET to name
/// the new holder, on S3).
const ROUND_TRIPS: Duration = Duration::from_millis(100);

pub fn run(config: &Config) -> Vec<Figure> {
  let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x10c4_1055);
  let (local, remote) = if config.full { (20, 10) } else { (2, 2) };
  let mut figures = Tally::default().run_all(&mut rng, local, None);
  let moto = Moto::start();
  s3::create_bucket(&moto, s3::BUCKET);
  figures.extend(Tally::default().run_all(&mut rng, remote, Some(&moto)));
  figures
}

#[derive(Default)]
struct Tally {
  trials: usize,
  exit_4: usize,
  resumed: usize,
  after_detection: usize,
  before_detection: usize,
  worst_latency: Duration,
  undetected: usize,
  notes: Vec<String>,
}

impl Tally {
  fn run_all(mut self, rng: &mut fastrand::Rng, trials: usize, moto: Option<&Moto>) -> Vec<Figure> {
    for _ in 0..trials {
      self.trial(rng, moto);
    }
    let label = if moto.is_some() { "s3" } else { "local" };
    for note in &self.notes {
      eprintln!("   lockloss {label}: {note}");
    }
    vec![
      Figure::new(
        SECTION,
        format!("{label}: mutating calls after the loss was detected"),
        self.after_detection,
        "0",
        self.after_detection == 0 && self.trials == trials,
      ),
      Figure::info(
        SECTION,
        format!("{label}: mutating calls between steal and detection"),
        self.before_detection,
      ),
      Figure::new(
        SECTION,
        format!("{label}: worst detection latency"),
        format!("{:.2}s", self.worst_latency.as_secs_f64()),
        format!(
          "<= {:.1}s (renewal + round trips)",
          (RENEW_EVERY + ROUND_TRIPS).as_secs_f64()
        ),
        self.undetected == 0 && self.worst_latency <= RENEW_EVERY + ROUND_TRIPS,
      ),
      Figure::new(
        SECTION,
        format!("{label}: robbed runs exiting 4"),
        format!("{}/{trials}", self.exit_4),
        "all",
        self.exit_4 == trials,
      ),
      Figure::new(
        SECTION,
        format!("{label}: resumed after the thief was done"),
        format!("{}/{trials}", self.resumed),
        "all",
        self.resumed == trials,
      ),
    ]
  }

  fn trial(&mut self, rng: &mut fastrand::Rng, moto: Option<&Moto>) {
    let test = match moto {
      Some(moto) => s3::s3_test(moto, &moto.endpoint),
      None => Test::new(),
    }
    .env("DRCTL_LOCK_LEASE", LEASE);
    let state: Vec<&str> = if moto.is_some() {
      vec!["--state", STATE]
    } else {
      Vec::new()
    };
    let mut args = vec![
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "40",
    ];
    args.extend(&state);
    let mut child = test.spawn(&args);
    let stderr = drain_stderr(&mut child);
    // Steal somewhere in the failover's first 5 s (it takes about 9).
    let delay = Duration::from_millis(1_000 + rng.u64(0..4_000));
    let began = Instant::now();
    let runs_dir = match moto {
      Some(_) => test.path().join(CACHE).join("runs"),
      None => test.path().join(".drctl/runs"),
    };
    std::thread::sleep(delay);
    let stolen_at = Utc::now();
    let stolen = match moto {
      Some(moto) => s3::steal_lock_object(moto, &thief()),
      None => steal_local(&test),
    };
    let status = wait(&mut child, Duration::from_secs(60));
    let code = status.and_then(|status| status.code());
    self.trials += 1;
    let Some(run_id) = only_run(&runs_dir) else {
      self.notes.push("no run directory".into());
      return;
    };
    if !stolen {
      self.notes.push(format!(
        "{run_id}: the lock was gone before the steal ({:.1}s)",
        began.elapsed().as_secs_f64()
      ));
      return;
    }
    if code == Some(4) {
      self.exit_4 += 1;
    } else {
      self
        .notes
        .push(format!("{run_id}: exit {code:?}\n{}", stderr.join()));
    }
    let journal =
      std::fs::read_to_string(runs_dir.join(&run_id).join("journal.jsonl")).unwrap_or_default();
    match detected_at(&journal) {
      Some(detected) => {
        let latency = (detected - stolen_at).to_std().unwrap_or_default();
        self.worst_latency = self.worst_latency.max(latency);
        let (before, after) = calls_around(&test, &run_id, &state, stolen_at, detected);
        self.before_detection += before;
        self.after_detection += after;
      }
      None => {
        self.undetected += 1;
        self.notes.push(format!("{run_id}: no lock_lost record"));
      }
    }
    // The thief finishes and releases the lock; the robbed run is resumed.
    match moto {
      Some(moto) => s3::delete_lock_object(moto),
      None => {
        let _ = std::fs::remove_file(lock_file(&test));
      }
    }
    let mut resume = vec!["resume", run_id.as_str()];
    resume.extend(&state);
    let resumed = test.run_args(&resume);
    if resumed.code() == 0 {
      self.resumed += 1;
    } else {
      self.notes.push(format!(
        "{run_id}: resume exited {}: {}",
        resumed.code(),
        resumed.stderr()
      ));
    }
  }
}

fn lock_file(test: &Test) -> PathBuf {
  test.path().join(".drctl/locks/default.lock")
}

/// A holder that is alive (this process) on this host, with a long lease.
fn thief() -> String {
  let now = Utc::now();
  serde_json::json!({
    "run_id": "thief-run",
    "runbook": "regional-failover",
    "host": drctl::state::lock::hostname(),
    "pid": std::process::id(),
    "started_at": now,
    "lease_expires_at": now + chrono::Duration::hours(1),
    "token": "thief",
  })
  .to_string()
}

/// Replace the local lock file atomically with the thief's; `false` if there was none.
fn steal_local(test: &Test) -> bool {
  let path = lock_file(test);
  if !path.exists() {
    return false;
  }
  let tmp = path.with_extension("thief");
  std::fs::write(&tmp, thief()).is_ok() && std::fs::rename(&tmp, &path).is_ok()
}

fn only_run(runs_dir: &std::path::Path) -> Option<String> {
  let mut ids: Vec<String> = std::fs::read_dir(runs_dir)
    .ok()?
    .flatten()
    .map(|entry| entry.file_name().to_string_lossy().into_owned())
    .collect();
  ids.sort();
  ids.pop()
}

/// `detected_at` of the journal's `lock_lost` record.
fn detected_at(journal: &str) -> Option<DateTime<Utc>> {
  journal
    .lines()
    .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
    .find(|record| record["event"] == "lock_lost")
    .and_then(|record| record["detected_at"].as_str()?.parse().ok())
}

/// Mutating calls accepted (simulator operation log) between the steal and the detection, and
/// after the detection.
fn calls_around(
  test: &Test,
  run_id: &str,
  state: &[&str],
  stolen: DateTime<Utc>,
  detected: DateTime<Utc>,
) -> (usize, usize) {
  let mut args = vec!["status", run_id, "--output", "json"];
  args.extend(state);
  let status = test.run_args(&args);
  let value: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap_or_default();
  let times: Vec<DateTime<Utc>> = value["operations"]
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(|op| op["at"].as_str()?.parse().ok())
    .collect();
  let before = times
    .iter()
    .filter(|at| **at > stolen && **at <= detected)
    .count();
  let after = times.iter().filter(|at| **at > detected).count();
  (before, after)
}

/// Read a child's stderr in the background (so it never blocks on a full pipe).
fn drain_stderr(child: &mut Child) -> Lines {
  let stderr = child.stderr.take();
  let (tx, rx) = std::sync::mpsc::channel();
  std::thread::spawn(move || {
    if let Some(stderr) = stderr {
      for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let _ = tx.send(line);
      }
    }
  });
  let stdout = child.stdout.take();
  std::thread::spawn(move || {
    if let Some(mut stdout) = stdout {
      let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    }
  });
  Lines(rx)
}

struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
  fn join(&self) -> String {
    self.0.try_iter().collect::<Vec<_>>().join("\n")
  }
}

fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
  let start = Instant::now();
  loop {
    if let Ok(Some(status)) = child.try_wait() {
      return Some(status);
    }
    if start.elapsed() > limit {
      let _ = child.kill();
      return child.wait().ok();
    }
    std::thread::sleep(Duration::from_millis(20));
  }
}
