//! Disk full: a run's state directory is a small tmpfs that fills up at a seeded random
//! instant (a filler file written until the kernel answers `ENOSPC`), so the journal meets a
//! real kernel write failure. Then the space comes back (the filler is deleted) and the run is
//! resumed.
//!
//! The run is a chain of 24 `ecs.scale_service` steps (each a mutating call): its journal grows
//! to ~15 KB, crossing several of tmpfs's 4 KiB pages, so a full disk is met by a journal
//! append at a random point of the run (an append that fits in a page already allocated
//! needs no space).
//!
//! Figures:
//! * mutating calls accepted after the run stopped (the simulator's operation log, against the
//!   instant the engine's error names): 0;
//! * runs resumed to success once the space is back: all;
//! * corrupt journals (a line that is torn or fails its checksum, or a gap in the sequence),
//!   read by an independent checker after the failure and after the resume: 0.
//!
//! The tmpfs needs `mount` (root or CAP_SYS_ADMIN). Where mounting is refused, the section
//! reports that as a missed figure rather than passing without measuring.

use std::{
  io::Write,
  path::{Path, PathBuf},
  process::{Child, Command},
  time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::{
  support::{journal, Test},
  Config, Figure,
};

const SECTION: &str = "diskfull";
/// Room for the run's files (journal ~15 KB, world ~6 KB, operation log ~5 KB) and the filler.
const TMPFS_SIZE: &str = "512k";

/// The runbook: 24 scalings of one service, one after another.
fn runbook() -> String {
  let mut yaml =
    String::from("apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: disk-fill }\nsteps:\n");
  for i in 1..=24 {
    yaml.push_str(&format!(
      "  - id: scale-{i}\n    action: ecs.scale_service\n"
    ));
    if i > 1 {
      yaml.push_str(&format!("    needs: [scale-{}]\n", i - 1));
    }
    yaml.push_str(&format!(
      "    with: {{ region: us-west-2, cluster: app-standby, service: api, desired_count: {} }}\n",
      i % 3 + 1
    ));
  }
  yaml
}

pub fn run(config: &Config) -> Vec<Figure> {
  let mut rng = fastrand::Rng::with_seed(config.seed ^ 0xd15c_f011);
  let trials = if config.full { 20 } else { 3 };
  let mut tally = Tally::default();
  for _ in 0..trials {
    let test = Test::new().file("disk-fill.yaml", &runbook());
    let state = test.path().join(".drctl");
    if let Err(why) = mount_tmpfs(&state) {
      return vec![Figure::new(
        SECTION,
        "small tmpfs for the state directory",
        format!("not measured: {why}"),
        "mounted (needs root)",
        false,
      )];
    }
    tally.trial(&test, &state, &mut rng);
    let _ = Command::new("umount").arg(&state).status();
  }
  tally.figures(trials)
}

#[derive(Default)]
struct Tally {
  /// Trials in which the disk filled while the run was going on.
  filled: usize,
  stopped_exit_1: usize,
  after_stop: usize,
  resumed: usize,
  corrupt: usize,
  notes: Vec<String>,
}

impl Tally {
  fn figures(&self, trials: usize) -> Vec<Figure> {
    for note in &self.notes {
      eprintln!("   diskfull: {note}");
    }
    vec![
      Figure::info(
        SECTION,
        "runs that met a full disk (tmpfs)",
        format!("{}/{trials}", self.filled),
      ),
      Figure::new(
        SECTION,
        "mutating calls after the failed write",
        self.after_stop,
        "0",
        self.after_stop == 0 && self.filled > 0,
      ),
      Figure::new(
        SECTION,
        "stopped runs exiting 1",
        format!("{}/{}", self.stopped_exit_1, self.filled),
        "all",
        self.stopped_exit_1 == self.filled,
      ),
      Figure::new(
        SECTION,
        "resumed after space returned",
        format!("{}/{}", self.resumed, self.filled),
        "100 %",
        self.resumed == self.filled && self.filled > 0,
      ),
      Figure::new(
        SECTION,
        "corrupt journals",
        self.corrupt,
        "0",
        self.corrupt == 0,
      ),
    ]
  }

  fn trial(&mut self, test: &Test, state: &Path, rng: &mut fastrand::Rng) {
    let mut child = test.spawn([
      "run",
      "disk-fill.yaml",
      "--sim",
      "--yes",
      "--time-scale",
      "400",
    ]);
    let output = drain(&mut child);
    // The run takes about 6 s.
    std::thread::sleep(Duration::from_millis(500 + rng.u64(0..4_000)));
    let filler = state.join("filler");
    fill(&filler);
    let status = wait(&mut child, Duration::from_secs(60));
    let stderr = output.join().unwrap_or_default();
    let Some(run_id) = test.run_ids().pop() else {
      self.notes.push("no run directory".into());
      let _ = std::fs::remove_file(&filler);
      return;
    };
    let code = status.and_then(|status| status.code());
    let journal_path = state.join("runs").join(&run_id).join("journal.jsonl");
    if code == Some(0) {
      // Finished before the disk filled: nothing to measure.
      self
        .notes
        .push(format!("{run_id}: finished before the disk filled"));
      let _ = std::fs::remove_file(&filler);
      return;
    }
    self.filled += 1;
    if code == Some(1) {
      self.stopped_exit_1 += 1;
    } else {
      self
        .notes
        .push(format!("{run_id}: exit {code:?}: {stderr}"));
    }
    if let Err(why) = journal::strict(&journal_path) {
      self.corrupt += 1;
      self
        .notes
        .push(format!("{run_id}: after the failure: {why}"));
    }
    let _ = std::fs::remove_file(&filler);
    match stopped_at(&stderr) {
      Some(stopped) => self.after_stop += calls_after(test, &run_id, stopped),
      None => self
        .notes
        .push(format!("{run_id}: no stop instant in stderr: {stderr}")),
    }
    let resumed = test.run_args(["resume", run_id.as_str()]);
    if resumed.code() == 0 {
      self.resumed += 1;
    } else {
      self.notes.push(format!(
        "{run_id}: resume exited {}: {}",
        resumed.code(),
        resumed.stderr()
      ));
    }
    if let Err(why) = journal::strict(&journal_path) {
      self.corrupt += 1;
      self
        .notes
        .push(format!("{run_id}: after the resume: {why}"));
    }
  }
}

fn mount_tmpfs(dir: &Path) -> Result<(), String> {
  std::fs::create_dir_all(dir).map_err(|err| err.to_string())?;
  let output = Command::new("mount")
    .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
    .arg(dir)
    .output()
    .map_err(|err| format!("mount: {err}"))?;
  if output.status.success() {
    Ok(())
  } else {
    Err(format!(
      "mount refused: {}",
      String::from_utf8_lossy(&output.stderr).trim()
    ))
  }
}

/// Write `path` until the file system is full.
fn fill(path: &PathBuf) {
  let Ok(mut file) = std::fs::File::create(path) else {
    return;
  };
  let chunk = vec![0u8; 4096];
  while file.write_all(&chunk).is_ok() {}
  // Whatever a partial chunk could still take.
  while file.write_all(&chunk[..64]).is_ok() {}
  let _ = file.sync_all();
}

/// The instant the engine says it stopped (`run ID stopped at <RFC 3339>, ...`).
fn stopped_at(stderr: &str) -> Option<DateTime<Utc>> {
  let rest = stderr.split(" stopped at ").nth(1)?;
  let stamp = rest.split(',').next()?;
  stamp.trim().parse().ok()
}

/// Mutating calls (the simulator's operation log) accepted after `stopped`.
fn calls_after(test: &Test, run_id: &str, stopped: DateTime<Utc>) -> usize {
  let status = test.run_args(["status", run_id, "--output", "json"]);
  let value: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap_or_default();
  value["operations"]
    .as_array()
    .into_iter()
    .flatten()
    .filter_map(|op| op["at"].as_str()?.parse::<DateTime<Utc>>().ok())
    .filter(|at| *at > stopped)
    .count()
}

/// Read a child's stdout and stderr in the background; the handle returns stderr.
fn drain(child: &mut Child) -> std::thread::JoinHandle<String> {
  let stdout = child.stdout.take();
  std::thread::spawn(move || {
    if let Some(mut stdout) = stdout {
      let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    }
  });
  let stderr = child.stderr.take();
  std::thread::spawn(move || {
    let mut text = String::new();
    if let Some(mut stderr) = stderr {
      let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
    }
    text
  })
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
