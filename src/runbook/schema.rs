//! The JSON Schema (draft 2020-12) of the runbook format, for editors and `drctl schema`.
//!
//! Each step's `with` is constrained per action with `if`/`then` on the `action` constant. The
//! schema is looser than the validator in one way: any scalar may be a `${{ }}` template, whose
//! type is only known once rendered, and references are not checked.

use serde_json::{json, Map, Value};

use super::action_spec::{ActionSpec, FieldKind, FieldSpec};

const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|d|h|m|s))+$";
const NAME_PATTERN: &str = "^[a-z0-9-]+$";

/// The schema of a runbook whose steps use the actions in `catalog`.
pub fn json_schema(catalog: &[ActionSpec]) -> Value {
  let mut actions = Map::new();
  for spec in catalog {
    actions.insert(spec.name.to_string(), with_schema(spec.fields, spec.doc));
  }
  let names: Vec<&str> = catalog.iter().map(|spec| spec.name).collect();
  let conditions: Vec<Value> = catalog
    .iter()
    .map(|spec| {
      json!({
        "if": { "properties": { "action": { "const": spec.name } }, "required": ["action"] },
        "then": { "properties": { "with": { "$ref": format!("#/$defs/actions/{}", spec.name) } } }
      })
    })
    .collect();
  let action = json!({
    "description": "The action to run.",
    "enum": names,
    "x-doc": catalog.iter().map(|spec| (spec.name.to_string(), Value::from(spec.doc))).collect::<Map<_, _>>()
  });
  json!({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://drctl.dev/schema/runbook-v1.json",
    "title": "drctl runbook",
    "description": "A disaster-recovery runbook: parameters, objectives and a DAG of typed steps.",
    "type": "object",
    "additionalProperties": false,
    "required": ["apiVersion", "kind", "metadata", "steps"],
    "properties": {
      "apiVersion": { "const": "drctl/v1" },
      "kind": { "const": "Runbook" },
      "metadata": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
          "name": { "type": "string", "pattern": NAME_PATTERN, "description": "The runbook's name." },
          "description": { "type": "string" }
        }
      },
      "params": {
        "description": "Parameters, given with `-p NAME=VALUE`.",
        "type": "object",
        "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$" },
        "additionalProperties": { "$ref": "#/$defs/param" }
      },
      "vars": {
        "description": "Named values (templates over params, objectives and env).",
        "type": "object",
        "propertyNames": { "pattern": "^[A-Za-z0-9_-]+$" },
        "additionalProperties": { "$ref": "#/$defs/scalar" }
      },
      "objectives": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "rto": { "$ref": "#/$defs/duration", "description": "Recovery time objective." },
          "rpo": { "$ref": "#/$defs/duration", "description": "Recovery point objective." }
        }
      },
      "defaults": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "timeout": { "$ref": "#/$defs/duration" },
          "retry": { "$ref": "#/$defs/retry" }
        }
      },
      "steps": { "type": "array", "items": { "$ref": "#/$defs/step" } }
    },
    "$defs": {
      "duration": {
        "type": "string",
        "pattern": DURATION_PATTERN,
        "description": "A duration such as `500ms`, `90s`, `5m`, `1h30m` or `1d`."
      },
      "template": { "type": "string", "pattern": r"\$\{\{", "description": "A `${{ }}` template." },
      "scalar": { "type": ["string", "number", "boolean"] },
      "retry": {
        "oneOf": [
          { "type": "integer", "minimum": 1, "description": "Total attempts." },
          {
            "type": "object",
            "additionalProperties": false,
            "properties": {
              "attempts": { "type": "integer", "minimum": 1 },
              "backoff": { "$ref": "#/$defs/duration" },
              "max_backoff": { "$ref": "#/$defs/duration" }
            }
          }
        ]
      },
      "param": param_schema(),
      "call": {
        "type": "object",
        "additionalProperties": false,
        "required": ["action"],
        "properties": { "action": action, "with": { "type": "object" } },
        "allOf": conditions
      },
      "step": step_schema(),
      "actions": actions
    }
  })
}

fn param_schema() -> Value {
  let typed = |name: &str, value: Value| {
    json!({
      "if": { "properties": { "type": { "const": name } }, "required": ["type"] },
      "then": { "properties": { "default": value.clone(), "allowed": { "type": "array", "items": value } } }
    })
  };
  json!({
    "type": "object",
    "additionalProperties": false,
    "required": ["type"],
    "properties": {
      "type": { "enum": ["string", "int", "bool", "duration"] },
      "required": { "type": "boolean" },
      "default": { "$ref": "#/$defs/scalar" },
      "allowed": { "type": "array", "items": { "$ref": "#/$defs/scalar" } },
      "description": { "type": "string" },
      "secret": { "type": "boolean", "description": "Redact the value from every output, like a secret" }
    },
    "allOf": [
      typed("int", json!({ "type": "integer" })),
      typed("bool", json!({ "type": "boolean" })),
      typed("duration", json!({ "$ref": "#/$defs/duration" })),
    ]
  })
}

fn step_schema() -> Value {
  let duration = json!({ "$ref": "#/$defs/duration" });
  json!({
    "type": "object",
    "additionalProperties": false,
    "required": ["id", "action"],
    "properties": {
      "id": { "type": "string", "pattern": NAME_PATTERN, "description": "Unique step id." },
      "name": { "type": "string" },
      "action": { "$ref": "#/$defs/call/properties/action" },
      "with": { "type": "object" },
      "needs": {
        "description": "Steps that must succeed first.",
        "oneOf": [
          { "type": "array", "items": { "type": "string", "pattern": NAME_PATTERN } },
          { "type": "string", "pattern": NAME_PATTERN }
        ]
      },
      "when": {
        "description": "Run the step only when this renders to `true`.",
        "type": ["string", "boolean"]
      },
      "timeout": duration,
      "retry": { "$ref": "#/$defs/retry" },
      "budget": { "$ref": "#/$defs/duration", "description": "Expected duration, for the plan." },
      "on_failure": { "enum": ["abort", "continue", "rollback"] },
      "rollback": { "$ref": "#/$defs/call", "description": "A compensating action." },
      "approval": {
        "description": "A human gate before the step (`--yes` answers it).",
        "oneOf": [
          { "type": "boolean" },
          {
            "type": "object",
            "additionalProperties": false,
            "required": ["prompt"],
            "properties": { "prompt": { "type": "string" } }
          }
        ]
      },
      "recovery": { "type": "boolean", "description": "Whether the step counts toward RTO." },
      "always": { "type": "boolean", "description": "Run even after a failure." },
      "accept_data_loss": { "type": "boolean", "description": "Allow data loss beyond the RPO." }
    },
    "allOf": { "$ref": "#/$defs/call/allOf" }
  })
}

/// A `with` block (or one object of an `Objects` field).
fn with_schema(fields: &[FieldSpec], doc: &str) -> Value {
  let properties: Map<String, Value> = fields
    .iter()
    .map(|field| (field.name.to_string(), field_schema(field)))
    .collect();
  let required: Vec<&str> = fields
    .iter()
    .filter(|field| field.required)
    .map(|field| field.name)
    .collect();
  json!({
    "description": doc,
    "type": "object",
    "additionalProperties": false,
    "properties": properties,
    "required": required
  })
}

fn or_template(schema: Value) -> Value {
  json!({ "anyOf": [schema, { "$ref": "#/$defs/template" }] })
}

fn field_schema(field: &FieldSpec) -> Value {
  let mut schema = match field.kind {
    FieldKind::String => json!({ "$ref": "#/$defs/scalar" }),
    FieldKind::Int => or_template(json!({ "type": "integer" })),
    FieldKind::Bool => or_template(json!({ "type": "boolean" })),
    FieldKind::Duration => or_template(json!({ "$ref": "#/$defs/duration" })),
    FieldKind::Enum(values) => or_template(json!({ "enum": values })),
    FieldKind::StringList => json!({ "type": "array", "items": { "$ref": "#/$defs/scalar" } }),
    FieldKind::StringMap => {
      json!({ "type": "object", "additionalProperties": { "$ref": "#/$defs/scalar" } })
    }
    FieldKind::Objects(fields) => json!({ "type": "array", "items": with_schema(fields, "") }),
    FieldKind::Any => json!({}),
  };
  if let Some(object) = schema.as_object_mut() {
    object.insert("description".into(), Value::from(field.doc));
  }
  schema
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::runbook::test_catalog::CATALOG;

  #[test]
  fn constrains_with_per_action() {
    let schema = json_schema(CATALOG);
    assert_eq!(
      schema["$schema"],
      "https://json-schema.org/draft/2020-12/schema"
    );
    let promote = &schema["$defs"]["actions"]["rds.promote_replica"];
    assert_eq!(promote["required"], json!(["region", "instance"]));
    assert_eq!(promote["additionalProperties"], json!(false));
    assert_eq!(
      promote["properties"]["max_lag"]["description"],
      "Refuse to promote beyond this lag."
    );
    let conditions = schema["$defs"]["call"]["allOf"].as_array().unwrap();
    assert_eq!(conditions.len(), CATALOG.len());
    assert_eq!(
      conditions[1]["if"]["properties"]["action"]["const"],
      "rds.promote_replica"
    );
    assert_eq!(
      conditions[1]["then"]["properties"]["with"]["$ref"],
      "#/$defs/actions/rds.promote_replica"
    );
    let expect = &schema["$defs"]["actions"]["route53.health_check"]["properties"]["expect"];
    assert_eq!(expect["anyOf"][0]["enum"], json!(["healthy", "unhealthy"]));
  }

  #[test]
  fn a_param_may_be_declared_secret() {
    let param = param_schema();
    assert_eq!(param["properties"]["secret"]["type"], "boolean");
    assert_eq!(param["additionalProperties"], json!(false));
  }

  #[test]
  fn every_reference_resolves() {
    let schema = json_schema(CATALOG);
    let mut pending = vec![&schema];
    while let Some(value) = pending.pop() {
      match value {
        Value::Object(map) => {
          if let Some(Value::String(reference)) = map.get("$ref") {
            let pointer = reference.trim_start_matches('#');
            assert!(schema.pointer(pointer).is_some(), "dangling {reference}");
          }
          pending.extend(map.values());
        }
        Value::Array(items) => pending.extend(items),
        _ => {}
      }
    }
  }
}
