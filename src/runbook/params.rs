//! Binding `-p key=value` arguments to a runbook's declared parameters.

use std::collections::BTreeMap;

use super::{
  model::{ParamType, Runbook, Value},
  suggest::did_you_mean,
  validate::parse_value,
};

/// Turn `-p` arguments (already split at the first `=`) into typed values, apply defaults, and
/// check required parameters, allowed values, types and unknown names. Every problem is
/// reported, each as one user-facing line. Optional parameters without a default and not given
/// are absent from the result.
pub fn bind_params(
  runbook: &Runbook,
  given: &[(String, String)],
) -> Result<BTreeMap<String, Value>, Vec<String>> {
  let mut errors = Vec::new();
  let mut values = BTreeMap::new();
  let mut seen = BTreeMap::new();
  for (name, text) in given {
    let Some(param) = runbook.params.iter().find(|param| &param.name == name) else {
      let names = runbook.params.iter().map(|param| param.name.as_str());
      errors.push(match did_you_mean(name, names) {
        Some(close) => format!("unknown parameter `{name}` (did you mean `{close}`?)"),
        None if runbook.params.is_empty() => {
          format!(
            "unknown parameter `{name}`: runbook `{}` takes no parameters",
            runbook.name
          )
        }
        None => format!(
          "unknown parameter `{name}` (runbook `{}` takes {})",
          runbook.name,
          quoted(runbook.params.iter().map(|param| param.name.clone()))
        ),
      });
      continue;
    };
    if seen.insert(name.clone(), ()).is_some() {
      errors.push(format!("parameter `{name}` is given more than once"));
      continue;
    }
    // A secret parameter's value is never echoed back.
    let shown = if param.secret {
      "a secret value".to_string()
    } else {
      format!("`{text}`")
    };
    let Some(value) = parse_value(text, param.kind) else {
      errors.push(format!(
        "parameter `{name}` must be {}, got {shown}",
        match param.kind {
          ParamType::String => "a string",
          ParamType::Int => "an integer",
          ParamType::Bool => "`true` or `false`",
          ParamType::Duration => "a duration such as `90s`, `5m` or `1h30m`",
        }
      ));
      continue;
    };
    if !param.allowed.is_empty() && !param.allowed.contains(&value) {
      errors.push(format!(
        "parameter `{name}` must be one of {}, got {shown}",
        quoted(param.allowed.iter().map(Value::to_string))
      ));
      continue;
    }
    values.insert(name.clone(), value);
  }
  for param in &runbook.params {
    if values.contains_key(&param.name) || seen.contains_key(&param.name) {
      continue;
    }
    if let Some(default) = &param.default {
      values.insert(param.name.clone(), default.clone());
    } else if param.required {
      let mut message = format!(
        "missing required parameter `{0}` (pass `-p {0}=VALUE`",
        param.name
      );
      if !param.allowed.is_empty() {
        message.push_str(&format!(
          "; one of {}",
          quoted(param.allowed.iter().map(Value::to_string))
        ));
      }
      message.push(')');
      errors.push(message);
    }
  }
  if errors.is_empty() {
    Ok(values)
  } else {
    Err(errors)
  }
}

fn quoted(items: impl Iterator<Item = String>) -> String {
  items
    .map(|item| format!("`{item}`"))
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
  use std::path::Path;

  use super::*;
  use crate::runbook::{load, test_catalog::CATALOG};

  fn runbook() -> Runbook {
    let yaml = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: t }\nparams:\n\
      \x20 target_region: { type: string, required: true, allowed: [us-west-2, us-east-1] }\n\
      \x20 replicas: { type: int, default: 3 }\n  force: { type: bool, default: false }\n\
      \x20 max_wait: { type: duration, default: 5m }\n  note: { type: string }\n\
      steps:\n  - { id: a, action: wait.sleep, with: { duration: 1s } }\n";
    load(Path::new("t.yaml"), yaml.as_bytes(), &CATALOG).unwrap_or_else(|d| panic!("{d}"))
  }

  fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
      .iter()
      .map(|(key, value)| (key.to_string(), value.to_string()))
      .collect()
  }

  #[test]
  fn binds_typed_values_and_defaults() {
    let values = bind_params(
      &runbook(),
      &given(&[("target_region", "us-east-1"), ("force", "true")]),
    )
    .unwrap();
    assert_eq!(values["target_region"], Value::String("us-east-1".into()));
    assert_eq!(values["force"], Value::Bool(true));
    assert_eq!(values["replicas"], Value::Int(3));
    assert_eq!(values["max_wait"], Value::String("5m".into()));
    assert!(!values.contains_key("note"));
  }

  #[test]
  fn reports_every_problem() {
    let errors = bind_params(
      &runbook(),
      &given(&[
        ("replicas", "many"),
        ("forse", "true"),
        ("max_wait", "soon"),
        ("zzz", "1"),
      ]),
    )
    .unwrap_err();
    assert_eq!(
      errors,
      [
        "parameter `replicas` must be an integer, got `many`",
        "unknown parameter `forse` (did you mean `force`?)",
        "parameter `max_wait` must be a duration such as `90s`, `5m` or `1h30m`, got `soon`",
        "unknown parameter `zzz` (runbook `t` takes `target_region`, `replicas`, `force`, `max_wait`, `note`)",
        "missing required parameter `target_region` (pass `-p target_region=VALUE`; one of `us-west-2`, `us-east-1`)",
      ]
    );
    let errors = bind_params(&runbook(), &given(&[("target_region", "eu-west-1")])).unwrap_err();
    assert_eq!(
      errors,
      ["parameter `target_region` must be one of `us-west-2`, `us-east-1`, got `eu-west-1`"]
    );
    let twice = given(&[
      ("target_region", "us-east-1"),
      ("target_region", "us-west-2"),
    ]);
    assert_eq!(
      bind_params(&runbook(), &twice).unwrap_err(),
      ["parameter `target_region` is given more than once"]
    );
  }
}
