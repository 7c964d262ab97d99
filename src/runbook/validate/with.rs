//! `with` type checks: a step's (or rollback's) `with` mapping against its action's fields in
//! the catalog. Unknown and missing fields, and the type of each literal value; a templated
//! value is checked when it is rendered.

use super::Checker;
use crate::runbook::{
  action_spec::{FieldKind, FieldSpec},
  diagnostic::DiagnosticKind,
  duration::parse_duration,
  parse::{index_key, join_key, Entry, Node, NodeValue},
  suggest::did_you_mean,
};

impl Checker<'_> {
  /// Check a `with` mapping (or one object of an `Objects` field) against the action's fields.
  pub(super) fn check_fields(
    &mut self,
    action: &str,
    specs: &[FieldSpec],
    entries: &[Entry],
    node: &Node,
    key: &str,
  ) {
    for entry in entries {
      let entry_key = join_key(key, &entry.key);
      match specs.iter().find(|spec| spec.name == entry.key) {
        Some(spec) => self.check_field(action, spec, &entry.value, &entry_key),
        None => {
          let suggestion = did_you_mean(&entry.key, specs.iter().map(|spec| spec.name));
          self.reader.report(
            entry.key_span,
            entry.key_width(),
            entry_key,
            DiagnosticKind::UnknownField {
              action: action.into(),
              field: entry.key.clone(),
              suggestion,
              expected: specs.iter().map(|spec| spec.name).collect(),
            },
          );
        }
      }
    }
    for spec in specs.iter().filter(|spec| spec.required) {
      if !entries.iter().any(|entry| entry.key == spec.name) {
        self.reader.at(
          node,
          key,
          DiagnosticKind::MissingField {
            action: action.into(),
            field: spec.name.into(),
          },
        );
      }
    }
  }

  fn check_field(&mut self, action: &str, spec: &FieldSpec, node: &Node, key: &str) {
    let mismatch = |checker: &mut Self, expected: &str, found: String| {
      checker.reader.at(
        node,
        key,
        DiagnosticKind::FieldType {
          field: spec.name.into(),
          expected: expected.into(),
          found,
        },
      );
    };
    if node.is_null() && spec.kind != FieldKind::Any {
      return mismatch(self, expected_text(spec.kind), "nothing".into());
    }
    // Only literal values can be checked now; templates are checked when rendered.
    let literal = match &node.value {
      NodeValue::Scalar(text, _) if !text.contains("${{") => Some(text.as_str()),
      _ => None,
    };
    match spec.kind {
      FieldKind::Any => {}
      FieldKind::String => {
        if node.as_scalar().is_none() {
          mismatch(self, "a string", node.describe().into());
        }
      }
      FieldKind::Int
      | FieldKind::Bool
      | FieldKind::Duration
      | FieldKind::ByteSize
      | FieldKind::NotificationUrl
      | FieldKind::CountOrAll
      | FieldKind::Enum(_) => {
        if node.as_scalar().is_none() {
          return mismatch(self, expected_text(spec.kind), node.describe().into());
        }
        let Some(text) = literal else { return };
        match spec.kind {
          FieldKind::Int if text.trim().parse::<i64>().is_err() => {
            mismatch(self, "an integer", format!("`{text}`"));
          }
          FieldKind::Bool if !matches!(text, "true" | "false") => {
            mismatch(self, "`true` or `false`", format!("`{text}`"));
          }
          FieldKind::Duration => {
            if let Err(reason) = parse_duration(text) {
              self.reader.at(
                node,
                key,
                DiagnosticKind::InvalidDuration {
                  text: text.into(),
                  reason,
                },
              );
            }
          }
          FieldKind::ByteSize => {
            if let Err(reason) = crate::runbook::size::parse_byte_size(text) {
              mismatch(
                self,
                expected_text(spec.kind),
                format!("`{text}` ({reason})"),
              );
            }
          }
          FieldKind::NotificationUrl => {
            if let Err(shown) = crate::runbook::url::check_notification_url(text) {
              mismatch(self, expected_text(spec.kind), format!("`{shown}`"));
            }
          }
          FieldKind::CountOrAll
            if crate::runbook::action_spec::parse_count_or_all(text).is_err() =>
          {
            mismatch(self, expected_text(spec.kind), format!("`{text}`"));
          }
          FieldKind::Enum(allowed) if !allowed.contains(&text) => {
            let suggestion = did_you_mean(text, allowed.iter().copied());
            self.reader.at(
              node,
              key,
              DiagnosticKind::FieldEnum {
                field: spec.name.into(),
                found: text.into(),
                allowed: allowed.to_vec(),
                suggestion,
              },
            );
          }
          _ => {}
        }
      }
      FieldKind::StringList => match &node.value {
        NodeValue::List(items) => {
          for (index, item) in items.iter().enumerate() {
            if item.as_scalar().is_none() || item.is_null() {
              let item_key = index_key(key, index);
              self.reader.at(
                item,
                &item_key,
                DiagnosticKind::FieldType {
                  field: spec.name.into(),
                  expected: "a list of strings".into(),
                  found: item.describe().into(),
                },
              );
            }
          }
        }
        _ => mismatch(self, "a list of strings", node.describe().into()),
      },
      FieldKind::StringMap => match &node.value {
        NodeValue::Map(entries) => {
          for entry in entries {
            if entry.value.as_scalar().is_none() {
              self.reader.at(
                &entry.value,
                &join_key(key, &entry.key),
                DiagnosticKind::FieldType {
                  field: spec.name.into(),
                  expected: "a mapping of strings".into(),
                  found: entry.value.describe().into(),
                },
              );
            }
          }
        }
        _ => mismatch(self, "a mapping of strings", node.describe().into()),
      },
      FieldKind::Objects(fields) => match &node.value {
        NodeValue::List(items) => {
          for (index, item) in items.iter().enumerate() {
            let item_key = index_key(key, index);
            match item.as_map() {
              Some(entries) => self.check_fields(action, fields, entries, item, &item_key),
              None => self.reader.at(
                item,
                &item_key,
                DiagnosticKind::FieldType {
                  field: spec.name.into(),
                  expected: "a list of mappings".into(),
                  found: item.describe().into(),
                },
              ),
            }
          }
        }
        _ => mismatch(self, "a list of mappings", node.describe().into()),
      },
    }
  }
}

fn expected_text(kind: FieldKind) -> &'static str {
  match kind {
    FieldKind::String => "a string",
    FieldKind::Int => "an integer",
    FieldKind::Bool => "`true` or `false`",
    FieldKind::Duration => "a duration",
    FieldKind::ByteSize => "a byte size such as `512KiB` or `4MiB`",
    FieldKind::NotificationUrl => crate::runbook::url::NOTIFICATION_URL,
    FieldKind::Enum(_) => "one of its allowed values",
    FieldKind::CountOrAll => "a count (1 or more) or `all`",
    FieldKind::StringList => "a list of strings",
    FieldKind::StringMap => "a mapping of strings",
    FieldKind::Objects(_) => "a list of mappings",
    FieldKind::Any => "a value",
  }
}
