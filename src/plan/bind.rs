//! Binding a step: the one place where a step's templates (`${{ ... }}`: params, vars,
//! objectives, step outputs, env, secrets, run) meet their values. Its `when:` is evaluated,
//! its approval prompt rendered, and its `with` (or its rollback's) rendered and bound to its
//! action's schema here, and nowhere else: the engine, the approval notices and `plan` all
//! bind through these functions, so a step's inputs read the same in a plan and in a run.
//!
//! A `with` is rendered whole before it is bound: nested lists and maps (e.g. the `with` of
//! the action `wait.until` polls) are rendered with it, and an action binding them further
//! binds values that hold no templates any more.

use crate::{
  actions::{self, ActionDef, Args},
  runbook::{template::Scope, ActionCall, Approval, Arg, Step},
};

/// A rendered `with` block, before it is bound to an action's schema.
pub type Rendered = serde_json::Map<String, serde_json::Value>;

/// Render and bind an action call for execution.
pub fn bind_call(
  call: &ActionCall,
  scope: &dyn Scope,
) -> Result<(&'static ActionDef, Args), String> {
  bind_call_adjusted(call, scope, |_| {})
}

/// [`bind_call`], with `adjust` changing the rendered `with` before it is bound (an approval
/// notice sends its own text through a notify step's target).
pub fn bind_call_adjusted(
  call: &ActionCall,
  scope: &dyn Scope,
  adjust: impl FnOnce(&mut Rendered),
) -> Result<(&'static ActionDef, Args), String> {
  let def =
    actions::lookup(&call.action).ok_or_else(|| format!("unknown action `{}`", call.action))?;
  let mut rendered = render_with(call, scope)?;
  adjust(&mut rendered);
  let args = actions::bind(def.spec, &rendered)?;
  Ok((def, args))
}

/// Evaluate a step's `when:`; `Ok(true)` when it has none.
pub fn evaluate_when(step: &Step, scope: &dyn Scope) -> Result<bool, String> {
  let Some(when) = &step.when else {
    return Ok(true);
  };
  let value = when.render(scope).map_err(|err| format!("when: {err}"))?;
  match value.trim() {
    "true" => Ok(true),
    "false" | "" => Ok(false),
    other => Err(format!(
      "when: `{}` rendered to `{other}`, not true or false",
      when.source()
    )),
  }
}

/// The question an approval asks, rendered; its source text when it cannot be rendered (the
/// question is still worth asking). Not redacted: the caller redacts before showing it.
pub fn approval_prompt(approval: &Approval, scope: &dyn Scope) -> String {
  approval
    .prompt
    .render(scope)
    .unwrap_or_else(|_| approval.prompt.source().to_string())
}

/// Render an action call's `with` block into JSON (strings, lists, maps).
fn render_with(call: &ActionCall, scope: &dyn Scope) -> Result<Rendered, String> {
  fn render(arg: &Arg, scope: &dyn Scope) -> Result<serde_json::Value, String> {
    Ok(match arg {
      Arg::Template(template, _) => {
        serde_json::Value::String(template.render(scope).map_err(|err| err.to_string())?)
      }
      Arg::List(items, _) => serde_json::Value::Array(
        items
          .iter()
          .map(|item| render(item, scope))
          .collect::<Result<_, _>>()?,
      ),
      Arg::Map(map, _) => serde_json::Value::Object(
        map
          .iter()
          .map(|(key, item)| Ok((key.clone(), render(item, scope)?)))
          .collect::<Result<_, String>>()?,
      ),
    })
  }
  call
    .with
    .iter()
    .map(|(key, arg)| {
      Ok((
        key.clone(),
        render(arg, scope).map_err(|err| format!("with.{key}: {err}"))?,
      ))
    })
    .collect()
}

#[cfg(test)]
mod tests {
  use std::{collections::HashMap, path::Path};

  use super::*;
  use crate::plan::{Plan, RunValues};

  fn plan(yaml: &str) -> Plan {
    let runbook = crate::runbook::load(
      Path::new("bind.yaml"),
      yaml.as_bytes(),
      &crate::actions::Catalog,
    )
    .unwrap();
    Plan::bind(runbook, &[("region".into(), "us-west-2".into())]).unwrap()
  }

  const NOTIFY: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: bind }
params:
  region: { type: string }
steps:
  - id: probe
    action: http.check
    with: { url: "http://127.0.0.1:9/health" }
  - id: tell
    action: notify.slack
    needs: [probe]
    when: "${{ params.region == 'us-west-2' }}"
    approval: { prompt: "Flip to ${{ params.region }}?" }
    with:
      webhook: "http://127.0.0.1:9/hook"
      text: "Failing over to ${{ params.region }} after ${{ steps.probe.outputs.latency_ms }} ms"
      status: succeeded
"#;

  /// Every template of a step binds through this module: `when:`, the prompt, and `with`
  /// (params and ancestors' outputs); an adjustment lands before the schema binds it.
  #[test]
  fn a_steps_templates_bind_here_and_an_adjustment_lands_before_the_schema() {
    let plan = plan(NOTIFY);
    let run = RunValues::default();
    let outputs = HashMap::from([(
      "probe".to_string(),
      [("latency_ms".into(), "12".into())].into(),
    )]);
    let scope = plan.scope(&run, &outputs);
    let step = &plan.runbook.steps[1];
    assert_eq!(evaluate_when(step, &scope), Ok(true));
    let approval = step.approval.as_ref().unwrap();
    assert_eq!(approval_prompt(approval, &scope), "Flip to us-west-2?");
    let (def, args) = bind_call(&step.call, &scope).unwrap();
    assert_eq!(def.spec.name, "notify.slack");
    assert_eq!(
      args.str("text").unwrap(),
      "Failing over to us-west-2 after 12 ms"
    );
    assert_eq!(args.opt_str("status"), Some("succeeded"));
    let (_, adjusted) = bind_call_adjusted(&step.call, &scope, |rendered| {
      rendered.insert("text".into(), "waits for approval".into());
      rendered.remove("status");
    })
    .unwrap();
    assert_eq!(adjusted.str("text").unwrap(), "waits for approval");
    assert_eq!(adjusted.opt_str("status"), None);
    // An adjustment the schema refuses is refused, as any bad `with` is.
    let refused = bind_call_adjusted(&step.call, &scope, |rendered| {
      rendered.insert("colour".into(), "red".into());
    });
    assert!(refused.is_err(), "an unknown field was bound");
  }
}
