//! Secrets never reach stdout, stderr, logs, journals or reports: everything that leaves the
//! process through drctl's own writers passes through a [`Redactor`].

use std::sync::Arc;

use super::journal::Record;

/// Replaces every known secret value with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
  /// Longest first, so a secret that contains another is replaced whole.
  secrets: Arc<Vec<String>>,
}

/// Secrets shorter than this are not redacted (replacing every `1` would make output useless and
/// such values are not secrets worth the name); `plan` warns about them.
pub const MIN_SECRET_LEN: usize = 4;

impl Redactor {
  pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
    let mut secrets: Vec<String> = secrets
      .into_iter()
      .filter(|secret| secret.len() >= MIN_SECRET_LEN)
      .collect();
    // Also the forms a secret takes inside JSON strings and URLs.
    let extra: Vec<String> = secrets
      .iter()
      .flat_map(|secret| {
        let json = serde_json::to_string(secret).unwrap_or_default();
        [json.trim_matches('"').to_string()]
      })
      .collect();
    secrets.extend(extra);
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    Redactor {
      secrets: Arc::new(secrets),
    }
  }

  pub fn is_empty(&self) -> bool {
    self.secrets.is_empty()
  }

  pub fn redact(&self, text: &str) -> String {
    let mut out = text.to_string();
    for secret in self.secrets.iter() {
      if out.contains(secret.as_str()) {
        out = out.replace(secret.as_str(), "***");
      }
    }
    out
  }

  /// Redact every string inside a record.
  pub fn redact_record(&self, record: Record) -> Record {
    if self.is_empty() {
      return record;
    }
    let Ok(mut value) = serde_json::to_value(&record) else {
      return record;
    };
    self.redact_json(&mut value);
    serde_json::from_value(value).unwrap_or(record)
  }

  pub fn redact_json(&self, value: &mut serde_json::Value) {
    match value {
      serde_json::Value::String(text) => *text = self.redact(text),
      serde_json::Value::Array(items) => items.iter_mut().for_each(|item| self.redact_json(item)),
      serde_json::Value::Object(map) => map.values_mut().for_each(|item| self.redact_json(item)),
      _ => {}
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn replaces_every_occurrence_and_ignores_tiny_values() {
    let redactor = Redactor::new(["hunter2".to_string(), "ab".to_string()]);
    assert_eq!(
      redactor.redact("pw=hunter2 again hunter2 ab"),
      "pw=*** again *** ab"
    );
  }
}
