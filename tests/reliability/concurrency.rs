//! Concurrency: 2, 4, 8 and 16 simultaneous `drctl failover us-west-2 --yes` on one state —
//! local (`.drctl/`) and `s3://` on moto. Exactly one may proceed (exit 0, one run recorded);
//! every other exits 4 naming the holder's run id and host. Then a holder killed with SIGKILL
//! leaves a lock the next run reports as stale (exit 4), `drctl unlock` breaks it, and the run
//! after that proceeds.

use std::time::{Duration, Instant};

use crate::{
  support::{
    moto::Moto,
    s3::{self, STATE},
    Test,
  },
  Config, Figure,
};

const SECTION: &str = "concurrency";
const LEVELS: [usize; 4] = [2, 4, 8, 16];

/// One state backend under test.
struct Backend<'a> {
  name: &'static str,
  test: Test,
  /// `Some` for the `s3://` state.
  moto: Option<&'a Moto>,
}

impl Backend<'_> {
  /// `failover` at this time scale on this backend's state. At 100× a failover holds the lock
  /// for about 4 s, far longer than 16 processes take to start and try it.
  fn failover(&self, time_scale: &str) -> Vec<String> {
    let mut args: Vec<String> = [
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      time_scale,
    ]
    .map(String::from)
    .to_vec();
    if self.moto.is_some() {
      args.extend(["--state".into(), STATE.into()]);
    }
    args
  }

  fn with_state(&self, args: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    if self.moto.is_some() {
      args.extend(["--state".into(), STATE.into()]);
    }
    args
  }

  fn run_ids(&self) -> Vec<String> {
    match self.moto {
      Some(_) => s3::cached_run_ids(&self.test),
      None => self.test.run_ids(),
    }
  }

  fn journal(&self, run_id: &str) -> String {
    match self.moto {
      Some(_) => s3::cached_journal(&self.test, run_id),
      None => self.test.journal(run_id),
    }
  }

  fn locked(&self) -> bool {
    match self.moto {
      Some(moto) => s3::lock_object(moto).is_some(),
      None => self.test.path().join(".drctl/locks/default.lock").exists(),
    }
  }
}

pub fn run(config: &Config) -> Vec<Figure> {
  // The full configuration races every level several times: a lock that lets two through now
  // and then is the failure this section exists to catch.
  let rounds = if config.full { 5 } else { 1 };
  let mut figures = Vec::new();
  let local = Backend {
    name: "local",
    test: Test::new(),
    moto: None,
  };
  figures.extend(backend_figures(&local, rounds));

  let moto = Moto::start();
  s3::create_bucket(&moto, s3::BUCKET);
  let remote = Backend {
    name: "s3",
    test: s3::s3_test(&moto, &moto.endpoint),
    moto: Some(&moto),
  };
  figures.extend(backend_figures(&remote, rounds));
  figures
}

fn backend_figures(backend: &Backend, rounds: usize) -> Vec<Figure> {
  let mut figures = Vec::new();
  for n in LEVELS {
    let results: Vec<Figure> = (0..rounds).map(|_| race(backend, n)).collect();
    let met = results.iter().filter(|figure| figure.met).count();
    // The first round that missed, else the last one, with how many rounds met the target.
    let mut shown = results
      .iter()
      .find(|figure| !figure.met)
      .unwrap_or(&results[results.len() - 1])
      .clone();
    if rounds > 1 {
      shown.name = format!("{} ({met}/{rounds} rounds)", shown.name);
      shown.met = met == rounds;
    }
    figures.push(shown);
  }
  figures.push(stale(backend));
  figures
}

/// `n` failovers at once: exactly one proceeds, the others are refused naming it.
fn race(backend: &Backend, n: usize) -> Figure {
  let name = format!("{}: {n} at once", backend.name);
  let target = format!("1 ran, {} exit 4 naming it", n - 1);
  let before = backend.run_ids();
  let args = backend.failover("100");
  let children: Vec<_> = (0..n).map(|_| backend.test.spawn(&args)).collect();
  let outputs: Vec<_> = children
    .into_iter()
    .map(|child| child.wait_with_output().expect("wait for drctl"))
    .collect();
  let new: Vec<String> = backend
    .run_ids()
    .into_iter()
    .filter(|id| !before.contains(id))
    .collect();
  let winners = outputs
    .iter()
    .filter(|output| output.status.code() == Some(0))
    .count();
  let winner_id = match new.as_slice() {
    [id] => Some(id.clone()),
    _ => None,
  };
  let mut refused = 0;
  let mut named = 0;
  for output in &outputs {
    if output.status.code() != Some(4) {
      continue;
    }
    refused += 1;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if winner_id
      .as_ref()
      .is_some_and(|id| stderr.contains(&format!("locked by run {id}")) && stderr.contains("host "))
    {
      named += 1;
    }
  }
  let finished = winner_id
    .as_ref()
    .is_some_and(|id| backend.journal(id).contains(r#""event":"run_finished""#));
  let met = winners == 1 && refused == n - 1 && named == n - 1 && finished && !backend.locked();
  if !met {
    let codes: Vec<_> = outputs.iter().map(|o| o.status.code()).collect();
    eprintln!(
      "   {name}: exit codes {codes:?}, new runs {new:?}, lock left: {}",
      backend.locked()
    );
    for output in outputs
      .iter()
      .filter(|o| o.status.code() != Some(0))
      .take(2)
    {
      eprintln!(
        "   stderr: {}",
        String::from_utf8_lossy(&output.stderr).trim()
      );
    }
  }
  Figure::new(
    SECTION,
    name,
    format!("{winners} ran, {refused} exit 4 ({named} naming it)"),
    target,
    met,
  )
}

/// A holder killed with SIGKILL: the next run is refused with "stale", `drctl unlock` breaks the
/// lock, and the run after proceeds.
fn stale(backend: &Backend) -> Figure {
  let name = format!("{}: killed holder → stale, unlock, next runs", backend.name);
  let before = backend.run_ids();
  let mut holder = backend.test.spawn(backend.failover("10"));
  let start = Instant::now();
  let holder_id = loop {
    let started = backend
      .run_ids()
      .into_iter()
      .find(|id| !before.contains(id) && !backend.journal(id).is_empty());
    if let (Some(id), true) = (&started, backend.locked()) {
      break Some(id.clone());
    }
    if start.elapsed() > Duration::from_secs(60) {
      break None;
    }
    std::thread::sleep(Duration::from_millis(20));
  };
  let _ = holder.kill();
  let _ = holder.wait();
  let Some(holder_id) = holder_id else {
    return Figure::new(SECTION, name, "holder never started", "yes", false);
  };
  let refused = backend.test.run_args(backend.failover("200"));
  let refused_ok = refused.code() == 4
    && refused.stderr().contains("the lock is stale")
    && refused
      .stderr()
      .contains(&format!("locked by run {holder_id}"))
    && refused.stderr().contains("drctl unlock default");
  let unlock = backend
    .test
    .run_args(backend.with_state(&["unlock", "regional-failover"]));
  let unlock_ok = unlock.code() == 0
    && unlock
      .stdout()
      .contains(&format!("was held by run {holder_id}"))
    && !backend.locked();
  let next = backend.test.run_args(backend.failover("200"));
  let next_ok = next.code() == 0;
  let met = refused_ok && unlock_ok && next_ok;
  if !met {
    eprintln!(
      "   {name}: refused {} ({}), unlock {} ({}), next {} ({})",
      refused.code(),
      refused.stderr().trim(),
      unlock.code(),
      unlock.stdout().trim(),
      next.code(),
      next.stderr().trim()
    );
  }
  let yes = |ok: bool| if ok { "yes" } else { "no" };
  Figure::new(
    SECTION,
    name,
    format!(
      "stale {} / unlock {} / next {}",
      yes(refused_ok),
      yes(unlock_ok),
      yes(next_ok)
    ),
    "yes / yes / yes",
    met,
  )
}
