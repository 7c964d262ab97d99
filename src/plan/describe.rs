//! `drctl plan` / `--dry-run`: what each step would do, from which current state — with zero
//! mutating calls. Effects are only observed; checks run once (never wait); templates that need
//! outputs of steps that would change the world are shown as such.

use std::{
  collections::{BTreeMap, HashMap, HashSet},
  time::Duration,
};

use serde::Serialize;

use super::{
  bind_call, evaluate_when, probe,
  stability::{Environment, StaticStability},
  Plan, RunValues,
};
use crate::{
  actions::{Behaviour, Ctx, Observed},
  cloud::Cloud,
  runbook::format_duration,
};

/// What the plan found for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
  /// Its effect is not in place: a run would change the world.
  WouldChange,
  /// Its effect is already in place.
  NoChange,
  /// Its effect is under way (a promotion in progress).
  InProgress,
  /// A check that passes now.
  ProbePassed,
  /// A check that was answered and does not pass yet ("not yet": a run would wait or fail
  /// there).
  ProbeFailed,
  /// Its inputs or the state it reads depend on earlier steps that change the world.
  AfterDependencies,
  /// Its `when:` is false.
  Skipped,
  /// It could not be probed: the backend could not be asked (credentials, transport, 5xx,
  /// throttling), or the step's inputs do not render. The plan is incomplete.
  Error,
}

impl StepStatus {
  pub fn as_str(self) -> &'static str {
    match self {
      StepStatus::WouldChange => "would_change",
      StepStatus::NoChange => "no_change",
      StepStatus::InProgress => "in_progress",
      StepStatus::ProbePassed => "probe_passed",
      StepStatus::ProbeFailed => "probe_failed",
      StepStatus::AfterDependencies => "after_dependencies",
      StepStatus::Skipped => "skipped",
      StepStatus::Error => "error",
    }
  }
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
  pub id: String,
  pub name: Option<String>,
  pub action: String,
  pub mutating: bool,
  pub needs: Vec<String>,
  pub always: bool,
  pub recovery: bool,
  pub approval: bool,
  pub status: StepStatus,
  /// The current state, as observed.
  pub current: Option<String>,
  /// What the step would change.
  pub change: Option<String>,
  pub budget: Option<String>,
  pub budget_seconds: Option<u64>,
  /// The AWS operations this step may send that change the world.
  pub mutating_operations: Vec<String>,
}

/// A plan, as printed by `drctl plan`.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
  pub runbook: String,
  pub path: String,
  pub backend: String,
  pub params: BTreeMap<String, String>,
  pub rto: Option<String>,
  pub rpo: Option<String>,
  pub steps: Vec<StepPlan>,
  pub critical_path: Vec<String>,
  pub estimated_duration: String,
  pub estimated_duration_seconds: u64,
  /// Whether the critical path's budgets fit in the RTO.
  pub fits_rto: Option<bool>,
  pub missing_secrets: Vec<String>,
  pub mutating_steps: usize,
  /// With `objectives.recovered_when`: what the run waits for after its last step, and for
  /// how long at most (`step `verify` passes, up to 30m`). Not in the estimate: nothing says
  /// in advance when it will hold.
  pub recovery_wait: Option<String>,
  /// The endpoints a live run calls, and its dependencies on the region it fails away from.
  pub static_stability: StaticStability,
}

/// Describe a plan against the world, read-only; `env` is what the run depends on beyond its
/// steps (see [`super::stability`]).
pub async fn describe(plan: &Plan, cloud: &Cloud, env: &Environment) -> PlanReport {
  let runbook = &plan.runbook;
  let run = RunValues {
    id: "plan".into(),
    started_at: chrono::Utc::now().to_rfc3339(),
    elapsed: Duration::ZERO,
  };
  let mut outputs: HashMap<String, BTreeMap<String, String>> = HashMap::new();
  // Steps whose effect is not in place yet: anything downstream sees a different world.
  let mut changing: HashSet<usize> = HashSet::new();
  let mut plans: Vec<Option<StepPlan>> = vec![None; runbook.steps.len()];
  let (_cancel_tx, cancel) = tokio::sync::watch::channel(false);
  let redactor = plan.redactor();
  for &i in &plan.order {
    let step = plan.step(i);
    let def = crate::actions::lookup(&step.call.action);
    let mutating = def.is_some_and(|def| def.spec.mutating);
    let mut entry = StepPlan {
      id: step.id.clone(),
      name: step.name.clone(),
      action: step.call.action.clone(),
      mutating,
      needs: step.needs.clone(),
      always: step.always,
      recovery: step.recovery,
      approval: step.approval.is_some(),
      status: StepStatus::Skipped,
      current: None,
      change: None,
      budget: step.budget.map(format_duration),
      budget_seconds: step.budget.map(|budget| budget.as_secs()),
      mutating_operations: def
        .map(|def| {
          def
            .spec
            .mutating_operations()
            .map(|op| op.to_string())
            .collect()
        })
        .unwrap_or_default(),
    };
    let upstream_changes = ancestors(plan, i).iter().any(|dep| changing.contains(dep));
    let scope = plan.scope(&run, &outputs);
    let bound = evaluate_when(step, &scope).and_then(|run_it| {
      if run_it {
        bind_call(&step.call, &scope).map(Some)
      } else {
        Ok(None)
      }
    });
    match bound {
      Ok(None) => entry.status = StepStatus::Skipped,
      Err(_) if upstream_changes => {
        entry.status = StepStatus::AfterDependencies;
        entry.change = Some("inputs come from steps that change the world first".into());
        if mutating {
          changing.insert(i);
        }
      }
      Err(err) => {
        entry.status = StepStatus::Error;
        entry.current = Some(redactor.redact(&err));
      }
      Ok(Some((def, args))) => {
        let progress = |_: &str| {};
        let ctx = Ctx {
          rpo: runbook.objectives.rpo,
          accept_data_loss: step.accept_data_loss,
          single_probe: true,
          run: crate::actions::RunFacts {
            runbook: &runbook.name,
            rto: runbook.objectives.rto,
            elapsed: Duration::ZERO,
            ..crate::actions::RunFacts::default()
          },
          ..Ctx::new(cloud, "plan", &step.id, &progress, cancel.clone())
        };
        match probe(def, &ctx, &args).await {
          Ok(super::Probe {
            state: Some(state),
            current,
            change,
            ..
          }) => {
            entry.current = Some(redactor.redact(&current));
            entry.change = Some(redactor.redact(&change));
            entry.status = match state {
              Observed::Done => StepStatus::NoChange,
              Observed::InProgress => StepStatus::InProgress,
              Observed::Absent => StepStatus::WouldChange,
            };
            if state != Observed::Done {
              changing.insert(i);
            }
          }
          Ok(super::Probe {
            state: None,
            current,
            outputs: found,
            ..
          }) => {
            entry.status = StepStatus::ProbePassed;
            entry.current = Some(redactor.redact(&current));
            // Read-only probes feed later templates (a snapshot id found now is the one restored).
            outputs.insert(step.id.clone(), found);
          }
          // The backend could not be asked: nothing was learnt, whatever comes before.
          Err(err) if could_not_ask(&err) => {
            entry.status = StepStatus::Error;
            entry.current = Some(redactor.redact(&err.message));
          }
          Err(err) if upstream_changes => {
            entry.status = StepStatus::AfterDependencies;
            entry.current = Some(redactor.redact(&err.message));
            entry.change =
              Some("expected to pass once earlier steps have changed the world".into());
            if mutating {
              changing.insert(i);
            }
          }
          Err(err) => {
            entry.status = if matches!(def.behaviour, Behaviour::Check(_)) {
              StepStatus::ProbeFailed
            } else {
              StepStatus::Error
            };
            entry.current = Some(redactor.redact(&err.message));
          }
        }
      }
    }
    plans[i] = Some(entry);
  }
  let (critical_path, estimate) = plan.critical_path_by_budget();
  let steps: Vec<StepPlan> = plans.into_iter().flatten().collect();
  PlanReport {
    runbook: runbook.name.clone(),
    path: runbook.path.display().to_string(),
    backend: cloud.backend.clone(),
    params: plan.display_params(),
    rto: runbook.objectives.rto.map(format_duration),
    rpo: runbook.objectives.rpo.map(format_duration),
    mutating_steps: steps.iter().filter(|step| step.mutating).count(),
    steps,
    critical_path,
    estimated_duration: format_duration(estimate),
    estimated_duration_seconds: estimate.as_secs(),
    fits_rto: runbook.objectives.rto.map(|rto| estimate <= rto),
    missing_secrets: plan.missing_secrets.clone(),
    recovery_wait: runbook
      .objectives
      .recovered_when
      .as_ref()
      .map(|wait| format!("{}, up to {}", wait.condition, format_duration(wait.within))),
    static_stability: super::stability::analyze(plan, env),
  }
}

/// Whether a probe failed because the backend could not be asked (credentials, transport,
/// 5xx, throttling, a refused call), rather than because it answered "not there" or "not yet".
fn could_not_ask(err: &crate::actions::ActionError) -> bool {
  err.cloud.as_ref().is_some_and(|cloud| {
    !matches!(
      cloud.kind,
      crate::cloud::ErrorKind::NotFound | crate::cloud::ErrorKind::InvalidState
    )
  })
}

impl PlanReport {
  /// Steps that could not be probed: the plan is incomplete (`drctl plan` exits 1).
  pub fn probe_errors(&self) -> usize {
    self
      .steps
      .iter()
      .filter(|step| step.status == StepStatus::Error)
      .count()
  }

  /// Whether a run would change the world: a mutating step whose effect is not in place (or
  /// under way, or waits on earlier changes).
  pub fn changes_pending(&self) -> bool {
    self.steps.iter().any(|step| {
      step.mutating
        && matches!(
          step.status,
          StepStatus::WouldChange | StepStatus::InProgress | StepStatus::AfterDependencies
        )
    })
  }
}

/// Every step `i` depends on, transitively.
fn ancestors(plan: &Plan, i: usize) -> HashSet<usize> {
  let mut seen = HashSet::new();
  let mut stack = plan.deps[i].clone();
  while let Some(dep) = stack.pop() {
    if seen.insert(dep) {
      stack.extend(plan.deps[dep].iter().copied());
    }
  }
  seen
}

#[cfg(test)]
mod tests {
  use std::{path::Path, time::Duration};

  use super::*;
  use crate::cloud::sim::{Sim, SimOptions};

  /// Real time, not paused: a plan that slept through the pause would not finish in time.
  #[tokio::test]
  async fn a_plan_describes_a_pause_without_waiting_for_it() {
    let yaml = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: pause }\nsteps:\n  \
                - id: settle\n    action: wait.sleep\n    with: { duration: 1h }\n";
    let runbook = crate::runbook::load(
      Path::new("pause.yaml"),
      yaml.as_bytes(),
      &crate::actions::Catalog,
    )
    .unwrap();
    let plan = Plan::bind(runbook, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::open(&SimOptions {
      world: None,
      time_scale: Some(1.0),
      dir: dir.path().join("sim"),
    })
    .unwrap();
    let report = tokio::time::timeout(
      Duration::from_secs(30),
      describe(&plan, &sim.cloud(), &Environment::default()),
    )
    .await
    .expect("the plan waited for the pause");
    assert_eq!(report.steps[0].status, StepStatus::ProbePassed);
    assert_eq!(report.steps[0].current.as_deref(), Some("would wait 1h00m"));
  }
}
