//! Test-only fault injection: make a step's task panic at a chosen point, so that the tests (unit,
//! integration and the reliability suite) can check what the executor does with a step that ends
//! abnormally — a bug in drctl rather than a failure in the world.
//!
//! It is armed only by the environment variable [`ENV`] (`STEP@POINT`, comma-separated, e.g.
//! `promote@apply`), or by [`arm`] in unit tests, and only strikes in runs on the simulator
//! backend: a run against AWS (or the sandbox) never panics through it, whatever the environment
//! says. The variable is not documented for users.

use std::sync::{Mutex, OnceLock, PoisonError};

/// The variable that arms the hook in a drctl process: `STEP@POINT[,STEP@POINT...]`.
pub const ENV: &str = "DRCTL_TEST_PANIC_STEP";

/// Where in a step's attempt the panic strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Point {
  /// Right after the attempt's `step_started` is journalled, before the action runs.
  Start,
  /// An effect's intent is journalled; its `apply` has not been called.
  Apply,
  /// An effect is applied (or found in place); its `verify` has not been called.
  Verify,
  /// A rollback attempt's `step_started` is journalled; its action has not run.
  Rollback,
}

impl Point {
  fn parse(text: &str) -> Option<Point> {
    match text {
      "start" => Some(Point::Start),
      "apply" => Some(Point::Apply),
      "verify" => Some(Point::Verify),
      "rollback" => Some(Point::Rollback),
      _ => None,
    }
  }

  fn as_str(self) -> &'static str {
    match self {
      Point::Start => "start",
      Point::Apply => "apply",
      Point::Verify => "verify",
      Point::Rollback => "rollback",
    }
  }
}

/// Points armed by [`ENV`], read once per process.
fn from_env() -> &'static [(String, Point)] {
  static ARMED: OnceLock<Vec<(String, Point)>> = OnceLock::new();
  ARMED.get_or_init(|| {
    std::env::var(ENV)
      .unwrap_or_default()
      .split(',')
      .filter_map(|entry| {
        let (step, point) = entry.trim().split_once('@')?;
        Some((step.to_string(), Point::parse(point)?))
      })
      .collect()
  })
}

/// Points armed by unit tests; each strikes once (so a resume in the same test gets through).
static ONCE: Mutex<Vec<(String, Point)>> = Mutex::new(Vec::new());

/// Arm a one-shot panic for `step` at `point` (unit tests; step ids must be unique across the
/// tests that run in parallel).
#[cfg(test)]
pub(crate) fn arm(step: &str, point: Point) {
  ONCE
    .lock()
    .unwrap_or_else(PoisonError::into_inner)
    .push((step.to_string(), point));
}

/// Panic here if a test armed this point for this step and the run is on the simulator.
pub(crate) fn strike(backend: &str, step: &str, point: Point) {
  if backend != "sim" {
    return;
  }
  let from_env = from_env()
    .iter()
    .any(|(armed, at)| armed == step && *at == point);
  let once = {
    let mut armed = ONCE.lock().unwrap_or_else(PoisonError::into_inner);
    let found = armed.iter().position(|(id, at)| id == step && *at == point);
    found.map(|index| armed.remove(index)).is_some()
  };
  if from_env || once {
    panic!(
      "test-only panic in step `{step}` at `{}` ({ENV})",
      point.as_str()
    );
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_hook_strikes_once_and_only_on_the_simulator() {
    arm("hook-guard", Point::Apply);
    for backend in ["aws", "sandbox", "http"] {
      strike(backend, "hook-guard", Point::Apply);
    }
    strike("sim", "hook-guard", Point::Start);
    strike("sim", "other-step", Point::Apply);
    let struck = std::panic::catch_unwind(|| strike("sim", "hook-guard", Point::Apply));
    assert!(struck.is_err(), "the armed point did not strike");
    strike("sim", "hook-guard", Point::Apply);
  }
}
