//! The JSON Schema (draft 2020-12) of the runbook format, for editors and `drctl schema`.
//!
//! Generated from the same tables the validator reads: the action table (each step's `with` is
//! constrained per action with `if`/`then` on the `action` constant), the duration grammar and
//! the id rules. It accepts exactly what `drctl validate` accepts, except for what a schema
//! cannot see:
//!
//! * references: `needs` cycles and unknown steps, duplicate step ids, a default outside its
//!   `allowed` values, `${{ }}` template syntax and the names templates refer to;
//! * a duration too large to represent;
//! * what the YAML reader refuses before any runbook rule applies (syntax errors, duplicate keys,
//!   aliases, nesting deeper than 64 levels, several documents).
//!
//! Any scalar a template may stand in for (`${{ params.x }}`) is accepted where the rendered
//! value is checked at run time, as the validator does.

use serde_json::{json, Map, Value};

use super::action_spec::{ActionSpec, FieldKind, FieldSpec};
use super::duration::duration_pattern;

/// Step ids and runbook names (the validator's `valid_id`).
pub const ID_PATTERN: &str = "^[a-z0-9-]+$";
/// Parameter and variable names (the validator's `valid_name`).
const NAME_PATTERN: &str = "^[A-Za-z0-9_-]+$";
/// An integer as text (`"3"`): the validator reads a value's text, so a quoted number counts.
const INTEGER_TEXT: &str = r"^\s*[+-]?[0-9]+\s*$";
/// The largest `retry` attempts (a `u32`).
const MAX_ATTEMPTS: u64 = u32::MAX as u64;

/// The `$defs` shared by the runbook and drill schemas: `duration`, `text` (a non-null scalar)
/// and `template`.
pub fn common_defs() -> Map<String, Value> {
  let defs = json!({
    "duration": {
      "description": "A duration such as `500ms`, `90s`, `5m`, `1h30m` or `1d`: units largest first, each at most once.",
      "type": "string",
      "pattern": duration_pattern(),
      "not": { "pattern": r"^\s*$" }
    },
    "text": {
      "description": "A string (numbers and booleans are read as their text).",
      "type": ["string", "number", "boolean"]
    },
    "template": {
      "description": "A `${{ }}` template, checked once rendered.",
      "type": "string",
      "pattern": r"\$\{\{"
    }
  });
  match defs {
    Value::Object(map) => map,
    _ => Map::new(),
  }
}

/// The schema of a runbook whose steps use the actions in `catalog`.
pub fn json_schema(catalog: &[ActionSpec]) -> Value {
  let mut defs = common_defs();
  defs.extend(
    [
      (
        "id",
        json!({ "type": ["string", "integer"], "pattern": ID_PATTERN, "minimum": 0 }),
      ),
      ("name", json!({ "type": "string", "pattern": NAME_PATTERN })),
      ("action", action_schema(catalog)),
      (
        "with_by_action",
        json!({ "allOf": with_conditions(catalog) }),
      ),
      ("retry", retry_schema()),
      ("param", param_schema()),
      ("call", call_schema()),
      ("step", step_schema()),
      (
        "actions",
        Value::Object(
          catalog
            .iter()
            .map(|spec| (spec.name.to_string(), with_schema(spec.fields, spec.doc)))
            .collect(),
        ),
      ),
    ]
    .map(|(name, schema)| (name.to_string(), schema)),
  );
  json!({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://drctl.dev/schema/runbook-v1.json",
    "title": "drctl runbook",
    "description": "A disaster-recovery runbook: parameters, objectives and a DAG of typed steps.",
    "type": "object",
    "additionalProperties": false,
    "required": ["apiVersion", "kind", "metadata", "steps"],
    "properties": {
      "apiVersion": { "const": super::validate::API_VERSION },
      "kind": { "const": "Runbook" },
      "metadata": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
          "name": { "$ref": "#/$defs/id", "description": "The runbook's name." },
          "description": { "$ref": "#/$defs/text" },
          "lock_group": {
            "$ref": "#/$defs/id",
            "maxLength": 128,
            "description": "The lock group: at most one live run of the runbooks of a group at a time in one state (default `default`, shared by every runbook that declares none)."
          }
        }
      },
      "params": {
        "description": "Parameters, given with `-p NAME=VALUE`.",
        "type": ["object", "null"],
        "propertyNames": { "$ref": "#/$defs/name" },
        "additionalProperties": { "$ref": "#/$defs/param" }
      },
      "vars": {
        "description": "Named values (templates over params, objectives and env).",
        "type": ["object", "null"],
        "propertyNames": { "$ref": "#/$defs/name" },
        "additionalProperties": { "$ref": "#/$defs/text" }
      },
      "objectives": {
        "type": ["object", "null"],
        "additionalProperties": false,
        "properties": {
          "rto": { "$ref": "#/$defs/duration", "description": "Recovery time objective." },
          "rpo": { "$ref": "#/$defs/duration", "description": "Recovery point objective." },
          "recovered_when": {
            "description": "What must hold after the run's last step for the application to count as recovered; the RTO is then measured to the moment it held. Either `step`: a read-only step of this runbook, run again until it passes; or `alarms`: CloudWatch alarm names (1 to 100) in `region`, recovered once every one is OK. `within`: the bound of the wait (default 30m, at most 6h); past it the run is not recovered (RTO breached).",
            "type": "object",
            "additionalProperties": false,
            "oneOf": [
              {
                "required": ["step"],
                "not": { "anyOf": [{ "required": ["alarms"] }, { "required": ["region"] }] }
              },
              { "required": ["alarms", "region"], "not": { "required": ["step"] } }
            ],
            "properties": {
              "step": { "$ref": "#/$defs/id" },
              "alarms": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": { "type": ["string", "number", "boolean"] }
              },
              "region": { "type": "string" },
              "within": { "$ref": "#/$defs/duration" }
            }
          }
        }
      },
      "defaults": {
        "type": ["object", "null"],
        "additionalProperties": false,
        "properties": {
          "timeout": { "$ref": "#/$defs/duration" },
          "retry": { "$ref": "#/$defs/retry" }
        }
      },
      "steps": { "type": "array", "items": { "$ref": "#/$defs/step" } },
      "refuse_pending_fences": { "type": "boolean", "description": "Refuse to start a live run while any region fence is pending (a failback)." }
    },
    "$defs": defs
  })
}

fn action_schema(catalog: &[ActionSpec]) -> Value {
  json!({
    "description": "The action to run.",
    "enum": catalog.iter().map(|spec| spec.name).collect::<Vec<_>>(),
    "x-doc": catalog
      .iter()
      .map(|spec| (spec.name.to_string(), Value::from(spec.doc)))
      .collect::<Map<_, _>>()
  })
}

/// One `if action == NAME then with: <NAME's fields>` per action. `with` may be left out (or
/// empty) only when the action has no required field.
fn with_conditions(catalog: &[ActionSpec]) -> Vec<Value> {
  catalog
    .iter()
    .map(|spec| {
      let reference = json!({ "$ref": format!("#/$defs/actions/{}", spec.name) });
      let then = if spec.fields.iter().any(|field| field.required) {
        json!({ "properties": { "with": reference }, "required": ["with"] })
      } else {
        json!({ "properties": { "with": { "anyOf": [{ "type": "null" }, reference] } } })
      };
      json!({
        "if": { "properties": { "action": { "const": spec.name } }, "required": ["action"] },
        "then": then
      })
    })
    .collect()
}

fn retry_schema() -> Value {
  let attempts = json!({ "type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS });
  json!({
    "oneOf": [
      { "description": "Total attempts.", "allOf": [attempts] },
      {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "attempts": attempts,
          "backoff": { "$ref": "#/$defs/duration" },
          "max_backoff": { "$ref": "#/$defs/duration" }
        }
      }
    ]
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
      "default": { "$ref": "#/$defs/text" },
      "allowed": { "type": "array", "items": { "$ref": "#/$defs/text" } },
      "description": { "$ref": "#/$defs/text" },
      "secret": { "type": "boolean", "description": "Redact the value from every output, like a secret" }
    },
    "allOf": [
      typed("int", json!({ "anyOf": [{ "type": "integer" }, { "type": "string", "pattern": INTEGER_TEXT }] })),
      typed("bool", json!({ "anyOf": [{ "type": "boolean" }, { "enum": ["true", "false"] }] })),
      typed("duration", json!({ "$ref": "#/$defs/duration" })),
    ]
  })
}

/// A rollback: an action and its `with`.
fn call_schema() -> Value {
  json!({
    "type": "object",
    "additionalProperties": false,
    "required": ["action"],
    "properties": {
      "action": { "$ref": "#/$defs/action" },
      "with": { "type": ["object", "null"] }
    },
    "$ref": "#/$defs/with_by_action"
  })
}

fn step_schema() -> Value {
  json!({
    "type": "object",
    "additionalProperties": false,
    "required": ["id", "action"],
    "properties": {
      "id": { "$ref": "#/$defs/id", "description": "Unique step id." },
      "name": { "$ref": "#/$defs/text" },
      "action": { "$ref": "#/$defs/action" },
      "with": { "type": ["object", "null"] },
      "needs": {
        "description": "Steps that must succeed first.",
        "oneOf": [
          { "type": "array", "items": { "$ref": "#/$defs/id" } },
          { "$ref": "#/$defs/id" }
        ]
      },
      "when": {
        "description": "Run the step only when this renders to `true`.",
        "$ref": "#/$defs/text"
      },
      "timeout": { "$ref": "#/$defs/duration" },
      "retry": { "$ref": "#/$defs/retry" },
      "budget": { "$ref": "#/$defs/duration", "description": "Expected duration, for the plan." },
      "on_failure": { "enum": ["abort", "continue", "rollback"] },
      "rollback": { "$ref": "#/$defs/call", "description": "A compensating action." },
      "approval": {
        "description": "A human gate before the step: answered on the run's terminal, by `drctl approve`/`deny`, or `--yes`.",
        "oneOf": [
          { "type": "boolean" },
          {
            "type": "object",
            "additionalProperties": false,
            "properties": {
              "prompt": { "$ref": "#/$defs/text" },
              "timeout": {
                "$ref": "#/$defs/duration",
                "description": "How long to wait for an answer (more than zero, at most 366d); then the step fails and follows `on_failure`."
              },
              "distinct_from_starter": {
                "type": "boolean",
                "description": "Two-person rule: the run's starter, and a shared token, cannot approve it."
              }
            }
          }
        ]
      },
      "recovery": { "type": "boolean", "description": "Whether the step counts toward RTO." },
      "always": { "type": "boolean", "description": "Run even after a failure." },
      "accept_data_loss": { "type": "boolean", "description": "Allow data loss beyond the RPO." },
      "fence": { "type": "boolean", "description": "A region fence: if it cannot be applied it is pending until the region answers." }
    },
    "$ref": "#/$defs/with_by_action"
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

fn or_template(schemas: &[Value]) -> Value {
  let mut any: Vec<Value> = schemas.to_vec();
  any.push(json!({ "$ref": "#/$defs/template" }));
  json!({ "anyOf": any })
}

/// What the validator's `check_field` accepts for a field of this kind.
fn field_schema(field: &FieldSpec) -> Value {
  let mut schema = match field.kind {
    FieldKind::String => json!({ "$ref": "#/$defs/text" }),
    FieldKind::Int => or_template(&[
      json!({ "type": "integer" }),
      json!({ "type": "string", "pattern": INTEGER_TEXT }),
    ]),
    FieldKind::Bool => or_template(&[
      json!({ "type": "boolean" }),
      json!({ "enum": ["true", "false"] }),
    ]),
    FieldKind::Duration => or_template(&[json!({ "$ref": "#/$defs/duration" })]),
    FieldKind::ByteSize => or_template(&[
      json!({ "type": "integer", "minimum": 1 }),
      json!({ "type": "string", "pattern": "^[0-9]+ ?(B|KiB|MiB|GiB)?$" }),
    ]),
    FieldKind::NotificationUrl => or_template(&[json!({
      "type": "string",
      "pattern": "^(https://|http://(127\\.|localhost[:/]|localhost$|\\[::1\\]))",
    })]),
    FieldKind::Enum(values) => or_template(&[json!({ "enum": values })]),
    FieldKind::CountOrAll => or_template(&[
      json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
      json!({ "type": "string", "pattern": "^(all|0*[1-9][0-9]{0,8})$" }),
    ]),
    FieldKind::StringList => json!({ "type": "array", "items": { "$ref": "#/$defs/text" } }),
    // A map's values may be empty (`~`), unlike a field's own value.
    FieldKind::StringMap => json!({
      "type": "object",
      "additionalProperties": { "type": ["string", "number", "boolean", "null"] }
    }),
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
    let conditions = schema["$defs"]["with_by_action"]["allOf"]
      .as_array()
      .unwrap();
    assert_eq!(conditions.len(), CATALOG.len());
    assert_eq!(
      conditions[1]["if"]["properties"]["action"]["const"],
      "rds.promote_replica"
    );
    assert_eq!(
      conditions[1]["then"]["properties"]["with"]["$ref"],
      "#/$defs/actions/rds.promote_replica"
    );
    assert_eq!(conditions[1]["then"]["required"], json!(["with"]));
    assert_eq!(schema["$defs"]["step"]["$ref"], "#/$defs/with_by_action");
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
