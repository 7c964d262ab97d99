//! The scheduler: fire due drills, at most once per (drill, due time) across every replica.
//!
//! * [`due`] is a pure function of the drills, when each last fired, and `now`.
//! * After downtime, a drill that missed several fire times fires **once**, for the latest one
//!   (never a storm of missed runs); the skipped ones are counted and logged. Both come from
//!   [`super::cron::Schedule::latest_due`], which counts whole days at once, so a per-minute
//!   drill months behind decides at once.
//! * Before running a fire, the scheduler claims `(drill, due time)` with an atomic create: a
//!   local `O_EXCL` file `<state>/drills/<name>/claims/<due>`, or an S3 object written with
//!   `If-None-Match: *`. Two schedulers sharing a state therefore run each fire exactly once.
//! * A drill that has never fired starts counting from the first time a scheduler saw it
//!   (`<state>/drills/<name>/since`), so `drctl scheduler --once` from cron fires what fell due
//!   between two invocations.
//! * Time comes from a [`Clock`]; the loop sleeps on tokio time, so tests use a paused runtime.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{file::Drill, history, DrillResult};
use crate::{
  cloud::aws::StoreError,
  state::{lock::hostname, S3State},
};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
  fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
  fn now(&self) -> DateTime<Utc> {
    Utc::now()
  }
}

/// Wall time that advances with tokio time: `base` plus the tokio time elapsed since creation.
/// Under `tokio::time::pause()` it moves only when the runtime's clock does.
pub struct TokioClock {
  base: DateTime<Utc>,
  start: tokio::time::Instant,
}

impl TokioClock {
  pub fn new(base: DateTime<Utc>) -> TokioClock {
    TokioClock {
      base,
      start: tokio::time::Instant::now(),
    }
  }
}

impl Clock for TokioClock {
  fn now(&self) -> DateTime<Utc> {
    let elapsed = tokio::time::Instant::now() - self.start;
    self.base + chrono::Duration::from_std(elapsed).unwrap_or_default()
  }
}

/// One drill to run for one due time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
  pub drill: String,
  pub due: DateTime<Utc>,
  /// Earlier fire times missed during downtime and not caught up.
  pub skipped: u64,
}

/// The fires due at `now`: for each drill, the latest fire time after `last_fired` (its last
/// fire, or when a scheduler first saw it) and at or before `now`. Drills without an entry in
/// `last_fired` are not due.
pub fn due(
  drills: &[Drill],
  last_fired: &HashMap<String, DateTime<Utc>>,
  now: DateTime<Utc>,
) -> Vec<Fire> {
  drills
    .iter()
    .filter_map(|drill| {
      let since = *last_fired.get(&drill.name)?;
      let (due, skipped) = drill.schedule.latest_due(since, now)?;
      Some(Fire {
        drill: drill.name.clone(),
        due,
        skipped,
      })
    })
    .collect()
}

/// Where claims and anchors live.
#[derive(Debug, Clone)]
pub enum ClaimStore {
  /// A local state root.
  Local(PathBuf),
  /// An `s3://` state (anchors are still kept in the local cache `root`).
  S3 { root: PathBuf, s3: S3State },
}

fn claim_name(due: DateTime<Utc>) -> String {
  due.format("%Y%m%dT%H%M%SZ").to_string()
}

impl ClaimStore {
  fn root(&self) -> &PathBuf {
    match self {
      ClaimStore::Local(root) | ClaimStore::S3 { root, .. } => root,
    }
  }

  /// Claim `(drill, due)`: `Ok(true)` if this process won it, `Ok(false)` if another did.
  pub async fn claim(&self, drill: &str, due: DateTime<Utc>) -> Result<bool, String> {
    let body = serde_json::json!({
      "format": crate::state::format::Kind::Claim.current(),
      "host": hostname(),
      "pid": std::process::id(),
      "claimed_at": Utc::now(),
      "due": due,
    })
    .to_string();
    match self {
      ClaimStore::S3 { s3, root } => {
        let key = s3
          .location
          .key(&format!("drills/{drill}/claims/{}", claim_name(due)));
        let won = match s3
          .store
          .put_if_absent(&s3.location.bucket, &key, body.clone().into_bytes())
          .await
        {
          Ok(_) => true,
          Err(StoreError::Conflict) => false,
          Err(StoreError::Cloud(err)) => return Err(format!("claim {key}: {err}")),
        };
        // Keep the local cache's anchor current too (ignore a local duplicate).
        let _ = claim_local(root, drill, due, &body);
        Ok(won)
      }
      ClaimStore::Local(root) => claim_local(root, drill, due, &body),
    }
  }

  /// When `drill` last fired (its newest claim) or was first seen; records "first seen now" when
  /// neither exists.
  pub fn anchor(&self, drill: &str, now: DateTime<Utc>) -> DateTime<Utc> {
    let dir = history::drill_dir(self.root(), drill);
    let newest_claim = std::fs::read_dir(dir.join("claims"))
      .into_iter()
      .flatten()
      .flatten()
      .filter_map(|entry| entry.file_name().into_string().ok())
      .filter_map(|name| {
        chrono::NaiveDateTime::parse_from_str(&name, "%Y%m%dT%H%M%SZ")
          .ok()
          .map(|naive| naive.and_utc())
      })
      .max();
    if let Some(claim) = newest_claim {
      return claim;
    }
    let since = dir.join("since");
    if let Some(time) = std::fs::read_to_string(&since)
      .ok()
      .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
    {
      return time.with_timezone(&Utc);
    }
    let _ = crate::state::store::create_private_dir(&dir);
    // Create-new: if another replica wrote it first, theirs stands (read it back).
    let written = crate::state::store::private_file()
      .create_new(true)
      .open(&since)
      .and_then(|mut file| {
        std::io::Write::write_all(&mut file, now.to_rfc3339().as_bytes())?;
        file.sync_all()
      });
    if written.is_err() {
      if let Some(time) = std::fs::read_to_string(&since)
        .ok()
        .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok())
      {
        return time.with_timezone(&Utc);
      }
    }
    now
  }

  /// Record that a scheduler ticked at `now` (`<state>/scheduler/last_tick`, in the local state
  /// or the `s3://` state's cache): what `drctl serve`'s
  /// `drctl_scheduler_last_tick_timestamp_seconds` reports. Written whole and renamed into
  /// place, so a reader never sees half of it; a failure is logged, never fatal to the tick.
  pub fn record_tick(&self, now: DateTime<Utc>) {
    let dir = self.root().join(TICK_DIR);
    let body = serde_json::json!({
      "format": TICK_FORMAT,
      "at": now,
      "host": hostname(),
      "pid": std::process::id(),
    })
    .to_string();
    let temp = dir.join(format!("{TICK_FILE}.{}.tmp", std::process::id()));
    let written = crate::state::store::create_private_dir(&dir)
      .and_then(|()| crate::state::store::write_private(&temp, &body))
      .and_then(|()| std::fs::rename(&temp, dir.join(TICK_FILE)));
    if let Err(err) = written {
      let _ = std::fs::remove_file(&temp);
      tracing::warn!(
        "cannot record the scheduler tick in {}: {err}",
        dir.display()
      );
    }
  }
}

/// Where [`ClaimStore::record_tick`] keeps the last tick, under the state root.
const TICK_DIR: &str = "scheduler";
const TICK_FILE: &str = "last_tick";
/// The tick record's format (only `at` is read).
const TICK_FORMAT: u32 = 1;

/// When a scheduler on the state at `state_root` last ticked; `None` if none ever did (or the
/// record cannot be read).
pub fn last_tick(state_root: &std::path::Path) -> Option<DateTime<Utc>> {
  let text = std::fs::read_to_string(state_root.join(TICK_DIR).join(TICK_FILE)).ok()?;
  let record: serde_json::Value = serde_json::from_str(&text).ok()?;
  let at = record.get("at")?.as_str()?;
  DateTime::parse_from_rfc3339(at)
    .ok()
    .map(|at| at.with_timezone(&Utc))
}

fn claim_local(
  root: &std::path::Path,
  drill: &str,
  due: DateTime<Utc>,
  body: &str,
) -> Result<bool, String> {
  let dir = history::drill_dir(root, drill).join("claims");
  crate::state::store::create_private_dir(&dir)
    .map_err(|err| format!("{}: {err}", dir.display()))?;
  let path = dir.join(claim_name(due));
  match crate::state::store::private_file()
    .create_new(true)
    .open(&path)
  {
    Ok(mut file) => {
      std::io::Write::write_all(&mut file, body.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|err| format!("{}: {err}", path.display()))?;
      Ok(true)
    }
    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
    Err(err) => Err(format!("{}: {err}", path.display())),
  }
}

/// What became of a fire the runner was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
  /// It ran: the drill's verdict.
  Ran(DrillResult),
  /// A freeze held it back (recorded as skipped in the drill's history): why.
  Skipped(String),
}

/// Runs one fire of a drill and records its result (history, reports, notifications).
#[async_trait::async_trait]
pub trait DrillRunner: Send + Sync {
  /// What became of it, or why it could not run.
  async fn run(&self, drill: &Drill, fire: &Fire) -> Result<Verdict, String>;

  /// Called on every tick (at least hourly, and with `--once`), before the due drills fire:
  /// work that must not wait for a schedule (applying pending region fences). Its failures
  /// are its own to report.
  async fn on_tick(&self) {}
}

/// What the scheduler did with a fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
  Ran {
    result: DrillResult,
  },
  /// Another scheduler claimed it.
  Claimed,
  /// Claimed, but held back by a freeze (and recorded as skipped): why. Not a failure.
  Skipped {
    reason: String,
  },
  Error(String),
}

/// The scheduler's state: the drills and when each last fired.
pub struct Scheduler {
  pub drills: Vec<Drill>,
  pub claims: ClaimStore,
  /// Random delay before each run, up to this much.
  pub jitter: Duration,
  last_fired: HashMap<String, DateTime<Utc>>,
}

impl Scheduler {
  pub fn new(drills: Vec<Drill>, claims: ClaimStore, jitter: Duration) -> Scheduler {
    Scheduler {
      drills,
      claims,
      jitter,
      last_fired: HashMap::new(),
    }
  }

  /// Load each drill's anchor from the state (once per drill).
  fn load_anchors(&mut self, now: DateTime<Utc>) {
    for drill in &self.drills {
      if !self.last_fired.contains_key(&drill.name) {
        let anchor = self.claims.anchor(&drill.name, now);
        self.last_fired.insert(drill.name.clone(), anchor);
      }
    }
  }

  /// Fire what is due at `now`: claim each fire, wait the jitter, run it. Stops starting new
  /// fires once `shutdown` is raised.
  pub async fn tick(
    &mut self,
    now: DateTime<Utc>,
    runner: &dyn DrillRunner,
    shutdown: &watch::Receiver<u32>,
  ) -> Vec<(Fire, FireOutcome)> {
    self.load_anchors(now);
    let fires = due(&self.drills, &self.last_fired, now);
    let mut outcomes = Vec::new();
    for fire in fires {
      if *shutdown.borrow() > 0 {
        break;
      }
      // Whatever happens next, this due time is dealt with: never retry it in a loop.
      self.last_fired.insert(fire.drill.clone(), fire.due);
      if fire.skipped > 0 {
        tracing::warn!(
          drill = %fire.drill,
          due = %fire.due,
          skipped = fire.skipped,
          "missed fire times during downtime: catching up once, for the latest"
        );
      }
      let outcome = match self.claims.claim(&fire.drill, fire.due).await {
        Ok(false) => FireOutcome::Claimed,
        Err(err) => FireOutcome::Error(err),
        Ok(true) => {
          if !self.jitter.is_zero() {
            let delay = self.jitter.mul_f64(fastrand::f64());
            let mut stop = shutdown.clone();
            tokio::select! {
              _ = tokio::time::sleep(delay) => {}
              _ = stop.wait_for(|count| *count > 0) => {}
            }
          }
          match self.drills.iter().find(|drill| drill.name == fire.drill) {
            Some(drill) => match runner.run(drill, &fire).await {
              Ok(Verdict::Ran(result)) => FireOutcome::Ran { result },
              Ok(Verdict::Skipped(reason)) => FireOutcome::Skipped { reason },
              Err(err) => FireOutcome::Error(err),
            },
            None => FireOutcome::Error(format!("drill `{}` vanished", fire.drill)),
          }
        }
      };
      outcomes.push((fire, outcome));
    }
    outcomes
  }

  /// The next time any drill fires after `now`.
  pub fn next_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    self
      .drills
      .iter()
      .filter_map(|drill| {
        let after = self
          .last_fired
          .get(&drill.name)
          .copied()
          .map_or(now, |last| last.max(now));
        drill.schedule.next_after(after)
      })
      .min()
  }

  /// Run until `shutdown` is raised: fire what is due, sleep (on tokio time) until the next fire
  /// time, repeat. With `once`, fire what is due and return.
  pub async fn run(
    &mut self,
    clock: Arc<dyn Clock>,
    runner: &dyn DrillRunner,
    mut shutdown: watch::Receiver<u32>,
    once: bool,
    mut on_fire: impl FnMut(&Fire, &FireOutcome),
  ) {
    loop {
      runner.on_tick().await;
      let now = clock.now();
      self.claims.record_tick(now);
      for (fire, outcome) in self.tick(now, runner, &shutdown).await {
        on_fire(&fire, &outcome);
      }
      if once || *shutdown.borrow() > 0 {
        return;
      }
      let now = clock.now();
      // Wake at the next fire time, and at least hourly (the clock may jump: suspend, NTP).
      let wait = self
        .next_fire(now)
        .and_then(|next| (next - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
        .min(Duration::from_secs(3600));
      tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.wait_for(|count| *count > 0) => return,
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use std::sync::Mutex;

  use super::*;
  use crate::actions::Catalog;

  fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
      .unwrap()
      .with_timezone(&Utc)
  }

  fn quarterly() -> Drill {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    super::super::file::load_file(
      &repo.join("drills/quarterly-regional-failover.yaml"),
      &repo.join("runbooks"),
      &Catalog,
    )
    .unwrap()
  }

  #[derive(Default)]
  struct Recorder {
    fires: Mutex<Vec<DateTime<Utc>>>,
  }

  #[async_trait::async_trait]
  impl DrillRunner for Recorder {
    async fn run(&self, _drill: &Drill, fire: &Fire) -> Result<Verdict, String> {
      self.fires.lock().unwrap().push(fire.due);
      Ok(Verdict::Ran(DrillResult::Passed))
    }
  }

  fn no_shutdown() -> watch::Receiver<u32> {
    let (tx, rx) = watch::channel(0);
    std::mem::forget(tx);
    rx
  }

  #[tokio::test]
  async fn quarterly_fires_four_times_over_a_simulated_year() {
    let state = tempfile::tempdir().unwrap();
    let mut scheduler = Scheduler::new(
      vec![quarterly()],
      ClaimStore::Local(state.path().to_path_buf()),
      Duration::ZERO,
    );
    let runner = Recorder::default();
    let shutdown = no_shutdown();
    // Seen first on 2025-12-15; step through 2026 six hours at a time.
    let mut now = utc("2025-12-15T00:00:00Z");
    while now < utc("2026-12-31T00:00:00Z") {
      scheduler.tick(now, &runner, &shutdown).await;
      now += chrono::Duration::hours(6);
    }
    let fires = runner.fires.lock().unwrap().clone();
    assert_eq!(
      fires,
      [
        utc("2026-01-01T00:00:00Z"),
        utc("2026-04-01T00:00:00Z"),
        utc("2026-07-01T00:00:00Z"),
        utc("2026-10-01T00:00:00Z")
      ]
    );
  }

  #[tokio::test]
  async fn downtime_catches_up_at_most_once() {
    let state = tempfile::tempdir().unwrap();
    let runner = Recorder::default();
    let shutdown = no_shutdown();
    let claims = ClaimStore::Local(state.path().to_path_buf());
    let mut now = utc("2025-12-15T00:00:00Z");
    let mut scheduler = Scheduler::new(vec![quarterly()], claims.clone(), Duration::ZERO);
    while now < utc("2026-02-01T00:00:00Z") {
      scheduler.tick(now, &runner, &shutdown).await;
      now += chrono::Duration::days(1);
    }
    // Down from February to mid-November: April, July and October are missed. A new process
    // (anchors from the state) catches up once, for October, then fires nothing more this year.
    let mut scheduler = Scheduler::new(vec![quarterly()], claims, Duration::ZERO);
    now = utc("2026-11-15T00:00:00Z");
    let outcomes = scheduler.tick(now, &runner, &shutdown).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].0.skipped, 2);
    while now < utc("2026-12-31T00:00:00Z") {
      scheduler.tick(now, &runner, &shutdown).await;
      now += chrono::Duration::hours(1);
    }
    let fires = runner.fires.lock().unwrap().clone();
    assert_eq!(
      fires,
      [utc("2026-01-01T00:00:00Z"), utc("2026-10-01T00:00:00Z")]
    );
  }

  #[tokio::test]
  async fn two_schedulers_on_one_state_fire_once_per_quarter() {
    let state = tempfile::tempdir().unwrap();
    let runner = Recorder::default();
    let shutdown = no_shutdown();
    let claims = ClaimStore::Local(state.path().to_path_buf());
    let mut first = Scheduler::new(vec![quarterly()], claims.clone(), Duration::ZERO);
    let mut second = Scheduler::new(vec![quarterly()], claims, Duration::ZERO);
    let mut now = utc("2025-12-15T00:00:00Z");
    let mut claimed = 0;
    while now < utc("2026-12-31T00:00:00Z") {
      // Both wake at the same instants, in either order.
      let (a, b) = tokio::join!(
        first.tick(now, &runner, &shutdown),
        second.tick(now + chrono::Duration::seconds(1), &runner, &shutdown)
      );
      claimed += a
        .iter()
        .chain(&b)
        .filter(|(_, outcome)| *outcome == FireOutcome::Claimed)
        .count();
      now += chrono::Duration::hours(12);
    }
    assert_eq!(runner.fires.lock().unwrap().len(), 4);
    assert_eq!(claimed, 4);
  }

  /// Holds back every fire, as a runner does while a freeze is in force.
  #[derive(Default)]
  struct Frozen {
    asked: Mutex<Vec<DateTime<Utc>>>,
  }

  #[async_trait::async_trait]
  impl DrillRunner for Frozen {
    async fn run(&self, _drill: &Drill, fire: &Fire) -> Result<Verdict, String> {
      self.asked.lock().unwrap().push(fire.due);
      Ok(Verdict::Skipped("frozen by alice: CHG-42".into()))
    }
  }

  #[tokio::test(start_paused = true)]
  async fn a_fire_held_back_by_a_freeze_is_skipped_once_and_never_retried() {
    let state = tempfile::tempdir().unwrap();
    let claims = ClaimStore::Local(state.path().to_path_buf());
    let mut scheduler = Scheduler::new(vec![quarterly()], claims, Duration::ZERO);
    let runner = Frozen::default();
    let shutdown = no_shutdown();
    scheduler
      .tick(utc("2025-12-15T00:00:00Z"), &runner, &shutdown)
      .await;
    let mut outcomes = Vec::new();
    let mut now = utc("2026-01-01T00:00:00Z");
    // After the freeze lifts (the next ticks), January is not fired again: it was dealt with.
    while now < utc("2026-03-31T00:00:00Z") {
      outcomes.extend(scheduler.tick(now, &runner, &shutdown).await);
      now += chrono::Duration::hours(6);
    }
    assert_eq!(
      outcomes,
      [(
        Fire {
          drill: "quarterly-regional-failover".into(),
          due: utc("2026-01-01T00:00:00Z"),
          skipped: 0,
        },
        FireOutcome::Skipped {
          reason: "frozen by alice: CHG-42".into()
        }
      )]
    );
    assert_eq!(runner.asked.lock().unwrap().len(), 1);
  }

  #[tokio::test(start_paused = true)]
  async fn the_loop_sleeps_on_tokio_time() {
    let state = tempfile::tempdir().unwrap();
    let claims = ClaimStore::Local(state.path().to_path_buf());
    let runner = Arc::new(Recorder::default());
    let (stop, shutdown) = watch::channel(0u32);
    let clock = Arc::new(TokioClock::new(utc("2025-12-15T00:00:00Z")));
    let task = {
      let runner = runner.clone();
      let clock: Arc<dyn Clock> = clock.clone();
      tokio::spawn(async move {
        let mut scheduler = Scheduler::new(vec![quarterly()], claims, Duration::from_secs(30));
        scheduler
          .run(clock, runner.as_ref(), shutdown, false, |_, _| {})
          .await;
      })
    };
    // A simulated year passes in no real time (the paused runtime jumps to each timer).
    while clock.now() < utc("2026-12-31T00:00:00Z") {
      tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
    stop.send(1).unwrap();
    task.await.unwrap();
    assert_eq!(runner.fires.lock().unwrap().len(), 4);
  }

  /// `drctl serve` reports the scheduler's last tick: every loop records one, `--once` too.
  #[tokio::test(start_paused = true)]
  async fn every_tick_is_recorded_in_the_state() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(last_tick(dir.path()), None);
    let now = utc("2027-01-15T00:00:00Z");
    let mut scheduler = Scheduler::new(
      vec![quarterly()],
      ClaimStore::Local(dir.path().to_path_buf()),
      Duration::ZERO,
    );
    let (_tx, rx) = watch::channel(0u32);
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new(now));
    scheduler
      .run(clock, &Recorder::default(), rx, true, |_, _| {})
      .await;
    assert_eq!(last_tick(dir.path()), Some(now));
    // Nothing but the record itself is left behind (no temporary file).
    let names: Vec<String> = std::fs::read_dir(dir.path().join("scheduler"))
      .unwrap()
      .map(|entry| entry.unwrap().file_name().into_string().unwrap())
      .collect();
    assert_eq!(names, ["last_tick"]);
  }
}
