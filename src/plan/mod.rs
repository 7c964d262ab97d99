//! Planning: bind a validated runbook's parameters, order its graph, and — for `plan` and
//! `--dry-run` — probe the world read-only to say what each step would change.
//!
//! Only a [`Plan`] can be executed: it is the runbook with parameters bound, variables rendered,
//! the secrets it references read from the environment, and the step graph ordered.

use std::{
  collections::{BTreeMap, HashMap},
  sync::Arc,
  time::Duration,
};

use crate::{
  actions::{self, Args, Behaviour, Ctx, Observed},
  runbook::{
    format_duration, template::Namespace, template::Reference, template::Scope, ActionCall, Arg,
    Runbook, Step, Value,
  },
  state::Redactor,
};

pub mod bind;
pub mod describe;
pub mod stability;

pub use bind::{bind_call, evaluate_when};
pub use describe::{describe, PlanReport, StepPlan, StepStatus};

/// Parameters could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("{}", .errors.join("\n"))]
pub struct PlanError {
  pub errors: Vec<String>,
}

/// A runbook ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
  pub runbook: Arc<Runbook>,
  pub params: BTreeMap<String, Value>,
  pub vars: BTreeMap<String, String>,
  /// Values of the secrets the runbook references (from the environment).
  pub secrets: BTreeMap<String, String>,
  /// Secrets the runbook references that the environment does not set.
  pub missing_secrets: Vec<String>,
  /// For each step (by index), the indices of the steps it needs.
  pub deps: Vec<Vec<usize>>,
  /// Step indices in a topological order (declaration order among independent steps).
  pub order: Vec<usize>,
}

/// Values about the run that templates can reference (`run.*`).
#[derive(Debug, Clone, Default)]
pub struct RunValues {
  pub id: String,
  pub started_at: String,
  pub elapsed: Duration,
}

impl Plan {
  /// Bind parameters (`-p k=v`), read referenced secrets, render vars and order the graph.
  pub fn bind(runbook: Runbook, given: &[(String, String)]) -> Result<Plan, PlanError> {
    let params =
      crate::runbook::bind_params(&runbook, given).map_err(|errors| PlanError { errors })?;
    let mut secrets = BTreeMap::new();
    let mut missing_secrets = Vec::new();
    for name in referenced(&runbook, Namespace::Secrets) {
      match std::env::var(&name) {
        Ok(value) => {
          secrets.insert(name, value);
        }
        Err(_) => missing_secrets.push(name),
      }
    }
    let index: HashMap<&str, usize> = runbook
      .steps
      .iter()
      .enumerate()
      .map(|(i, step)| (step.id.as_str(), i))
      .collect();
    let deps: Vec<Vec<usize>> = runbook
      .steps
      .iter()
      .map(|step| {
        step
          .needs
          .iter()
          .filter_map(|need| index.get(need.as_str()).copied())
          .collect()
      })
      .collect();
    let order = topological(&deps).ok_or_else(|| PlanError {
      errors: vec!["the step graph has a cycle".into()],
    })?;
    let mut plan = Plan {
      runbook: Arc::new(runbook),
      params,
      vars: BTreeMap::new(),
      secrets,
      missing_secrets,
      deps,
      order,
    };
    let mut errors = Vec::new();
    for (name, template) in &plan.runbook.vars {
      let scope = PlanScope {
        plan: &plan,
        run: None,
        outputs: None,
      };
      match template.render(&scope) {
        Ok(value) => {
          plan.vars.insert(name.clone(), value);
        }
        Err(err) => errors.push(format!("vars.{name}: {err}")),
      }
    }
    if !errors.is_empty() {
      return Err(PlanError { errors });
    }
    plan.refuse_unsafe_secrets()?;
    Ok(plan)
  }

  /// A secret that redaction could not keep out of the journal stops the run before it starts.
  fn refuse_unsafe_secrets(&self) -> Result<(), PlanError> {
    let runbook = &self.runbook;
    let path = runbook.path.display().to_string();
    let mut structure = vec![runbook.name.as_str(), path.as_str()];
    for step in &runbook.steps {
      structure.push(&step.id);
      structure.push(&step.call.action);
      if let Some(rollback) = &step.rollback {
        structure.push(&rollback.action);
      }
    }
    self
      .redactor()
      .refuse_unsafe(&structure)
      .map_err(|err| PlanError {
        errors: vec![err.to_string()],
      })
  }

  /// Parameter values for the journal and reports, with secrets redacted.
  pub fn display_params(&self) -> BTreeMap<String, String> {
    let redactor = self.redactor();
    self
      .params
      .iter()
      .map(|(name, value)| (name.clone(), redactor.redact(&value.to_string())))
      .collect()
  }

  /// Redacts the referenced secrets and the values of `secret: true` parameters.
  pub fn redactor(&self) -> Redactor {
    let secrets = self
      .secrets
      .iter()
      .map(|(name, value)| (format!("secrets.{name}"), value.clone()));
    let params = self.runbook.params.iter().filter(|param| param.secret);
    let params = params.filter_map(|param| {
      let value = self.params.get(&param.name)?;
      Some((format!("params.{}", param.name), value.to_string()))
    });
    Redactor::new(secrets.chain(params))
  }

  /// The values to scrub from what the backend itself persists (the simulator's files).
  pub fn secret_values(&self) -> Vec<String> {
    let params = self.runbook.params.iter().filter(|param| param.secret);
    let params = params.filter_map(|param| Some(self.params.get(&param.name)?.to_string()));
    self.secrets.values().cloned().chain(params).collect()
  }

  pub fn step(&self, index: usize) -> &Step {
    &self.runbook.steps[index]
  }

  /// The longest chain of budgets through the graph that ends in a recovery step (what the
  /// RTO measures: a `recovery: false` step such as a fence or a final notify never extends
  /// it), and its length. Steps without a budget count as zero.
  pub fn critical_path_by_budget(&self) -> (Vec<String>, Duration) {
    let steps = &self.runbook.steps;
    let mut finish = vec![Duration::ZERO; steps.len()];
    let mut via: Vec<Option<usize>> = vec![None; steps.len()];
    for &i in &self.order {
      let (start, from) = self.deps[i]
        .iter()
        .map(|&dep| (finish[dep], Some(dep)))
        .max_by_key(|(end, _)| *end)
        .unwrap_or((Duration::ZERO, None));
      // Saturating: budgets are bounded at validation, but a fleet of them may still add up.
      finish[i] = start.saturating_add(steps[i].budget.unwrap_or_default());
      via[i] = from;
    }
    let ends = |recovery_only: bool| {
      (0..steps.len())
        .filter(move |&i| !recovery_only || steps[i].recovery)
        .max_by_key(|&i| (finish[i], std::cmp::Reverse(i)))
    };
    let Some(last) = ends(true).or_else(|| ends(false)) else {
      return (Vec::new(), Duration::ZERO);
    };
    let mut path = vec![steps[last].id.clone()];
    let mut current = via[last];
    while let Some(i) = current {
      path.push(steps[i].id.clone());
      current = via[i];
    }
    path.reverse();
    (path, finish[last])
  }

  /// A scope for rendering templates during a run.
  pub fn scope<'a>(
    &'a self,
    run: &'a RunValues,
    outputs: &'a HashMap<String, BTreeMap<String, String>>,
  ) -> PlanScope<'a> {
    PlanScope {
      plan: self,
      run: Some(run),
      outputs: Some(outputs),
    }
  }
}

/// Names of the secrets (`${{ secrets.X }}`) a runbook references, e.g. so a report can redact
/// their values.
pub fn referenced_secrets(runbook: &Runbook) -> Vec<String> {
  referenced(runbook, Namespace::Secrets)
}

/// Every template reference of a step: its call, rollback, `when:` and approval prompt.
pub fn step_references(step: &Step) -> Vec<Reference> {
  fn visit_arg(arg: &Arg, out: &mut Vec<Reference>) {
    match arg {
      Arg::Template(template, _) => out.extend(template.references().into_iter().cloned()),
      Arg::List(items, _) => items.iter().for_each(|item| visit_arg(item, out)),
      Arg::Map(map, _) => map.values().for_each(|item| visit_arg(item, out)),
    }
  }
  fn visit_call(call: &ActionCall, out: &mut Vec<Reference>) {
    call.with.values().for_each(|arg| visit_arg(arg, out));
  }
  let mut references = Vec::new();
  visit_call(&step.call, &mut references);
  if let Some(rollback) = &step.rollback {
    visit_call(rollback, &mut references);
  }
  if let Some(when) = &step.when {
    references.extend(when.references().into_iter().cloned());
  }
  if let Some(approval) = &step.approval {
    references.extend(approval.prompt.references().into_iter().cloned());
  }
  references
}

/// Names referenced in a namespace anywhere in the runbook.
fn referenced(runbook: &Runbook, namespace: Namespace) -> Vec<String> {
  let mut references = Vec::new();
  for (_, template) in &runbook.vars {
    references.extend(template.references().into_iter().cloned());
  }
  for step in &runbook.steps {
    references.extend(step_references(step));
  }
  let mut names: Vec<String> = references
    .into_iter()
    .filter(|reference| reference.namespace == namespace)
    .filter_map(|reference| reference.path.first().cloned())
    .collect();
  names.sort();
  names.dedup();
  names
}

/// Kahn's algorithm, preferring declaration order. `None` on a cycle.
fn topological(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
  let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
  let mut dependents = vec![Vec::new(); deps.len()];
  for (i, needs) in deps.iter().enumerate() {
    for &dep in needs {
      dependents[dep].push(i);
    }
  }
  let mut ready: std::collections::BTreeSet<usize> =
    (0..deps.len()).filter(|&i| remaining[i] == 0).collect();
  let mut order = Vec::with_capacity(deps.len());
  while let Some(i) = ready.pop_first() {
    order.push(i);
    for &next in &dependents[i] {
      remaining[next] -= 1;
      if remaining[next] == 0 {
        ready.insert(next);
      }
    }
  }
  (order.len() == deps.len()).then_some(order)
}

/// Resolves template references against a plan (and, during a run, step outputs).
pub struct PlanScope<'a> {
  plan: &'a Plan,
  run: Option<&'a RunValues>,
  outputs: Option<&'a HashMap<String, BTreeMap<String, String>>>,
}

impl Scope for PlanScope<'_> {
  fn resolve(&self, reference: &Reference) -> Option<String> {
    let first = reference.path.first()?;
    match reference.namespace {
      Namespace::Params => self.plan.params.get(first).map(Value::to_string),
      Namespace::Vars => self.plan.vars.get(first).cloned(),
      Namespace::Objectives => {
        let objectives = &self.plan.runbook.objectives;
        match first.as_str() {
          "rto" => objectives.rto.map(format_duration),
          "rpo" => objectives.rpo.map(format_duration),
          _ => None,
        }
      }
      Namespace::Steps => {
        let key = reference.path.get(2)?;
        self.outputs?.get(first)?.get(key).cloned()
      }
      // Unset environment variables and secrets render empty (so `when:` can test for them);
      // `plan` warns about every secret that is not set.
      Namespace::Env => Some(std::env::var(first).unwrap_or_default()),
      Namespace::Secrets => Some(self.plan.secrets.get(first).cloned().unwrap_or_default()),
      Namespace::Run => {
        let run = self.run?;
        match first.as_str() {
          "id" => Some(run.id.clone()),
          "elapsed" => Some(actions::human(run.elapsed)),
          "started_at" => Some(run.started_at.clone()),
          _ => None,
        }
      }
    }
  }
}

/// Whether an action call's behaviour mutates.
pub fn is_mutating(call: &ActionCall) -> bool {
  actions::lookup(&call.action).is_some_and(|def| matches!(def.behaviour, Behaviour::Effect(_)))
}

/// Used by `describe`: observe one step read-only.
pub(crate) struct Probe {
  /// `None` for checks.
  pub state: Option<Observed>,
  pub current: String,
  pub change: String,
  pub outputs: BTreeMap<String, String>,
}

/// Used by `describe`: observe an effect, or run a check once.
pub(crate) async fn probe(
  def: &actions::ActionDef,
  ctx: &Ctx<'_>,
  args: &Args,
) -> Result<Probe, actions::ActionError> {
  match def.behaviour {
    Behaviour::Effect(effect) => effect.observe(ctx, args).await.map(|obs| Probe {
      state: Some(obs.state),
      current: obs.current,
      change: obs.change,
      outputs: BTreeMap::new(),
    }),
    Behaviour::Check(check) => check.check(ctx, args).await.map(|outcome| Probe {
      state: None,
      current: outcome.summary,
      change: String::new(),
      outputs: outcome.outputs,
    }),
  }
}

#[cfg(test)]
mod tests {
  use std::{path::Path, time::Duration};

  use super::{topological, Plan};

  /// Two budgets in a chain whose sum overflows a `Duration` (validation now bounds each one;
  /// the critical path must not panic whatever the runbook holds).
  #[test]
  fn the_critical_path_saturates_instead_of_overflowing() {
    let yaml = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: long }\nsteps:\n  \
                - { id: a, action: wait.sleep, with: { duration: 1s }, budget: 1s }\n  \
                - { id: b, action: wait.sleep, needs: [a], with: { duration: 1s }, budget: 1s }\n";
    let mut runbook = crate::runbook::load(
      Path::new("long.yaml"),
      yaml.as_bytes(),
      &crate::actions::Catalog,
    )
    .unwrap();
    for step in &mut runbook.steps {
      step.budget = Some(Duration::from_secs(u64::MAX));
    }
    let plan = Plan::bind(runbook, &[]).unwrap();
    let (path, total) = plan.critical_path_by_budget();
    assert_eq!(path, ["a", "b"]);
    assert_eq!(total, Duration::MAX);
  }

  /// A `recovery: false` step (a fence after the flip, a notify) does not count toward the RTO,
  /// so it never ends the critical path the plan weighs against it, however long its budget.
  #[test]
  fn the_critical_path_ends_in_a_recovery_step() {
    let yaml = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: fence }\nsteps:\n  \
                - { id: flip, action: wait.sleep, with: { duration: 1s }, budget: 1m }\n  \
                - { id: verify, action: wait.sleep, needs: [flip], with: { duration: 1s }, \
                budget: 30s }\n  \
                - { id: fence, action: wait.sleep, needs: [flip], with: { duration: 1s }, \
                budget: 5m, recovery: false }\n";
    let runbook = crate::runbook::load(
      Path::new("fence.yaml"),
      yaml.as_bytes(),
      &crate::actions::Catalog,
    )
    .unwrap();
    let plan = Plan::bind(runbook, &[]).unwrap();
    let (path, total) = plan.critical_path_by_budget();
    assert_eq!(path, ["flip", "verify"]);
    assert_eq!(total, Duration::from_secs(90));
  }

  #[test]
  fn topological_order_prefers_declaration_order_and_detects_cycles() {
    assert_eq!(
      topological(&[vec![], vec![0], vec![0], vec![1, 2]]),
      Some(vec![0, 1, 2, 3])
    );
    assert_eq!(topological(&[vec![1], vec![]]), Some(vec![1, 0]));
    assert_eq!(topological(&[vec![1], vec![0]]), None);
  }
}
