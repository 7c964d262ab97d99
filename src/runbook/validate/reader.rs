//! The generic YAML readers every validated file shares (runbooks and drill files): typed
//! access to the spanned tree's nodes, each `expect_*` reporting a diagnostic at the node's
//! `path:line:column` and returning `None` when the node has the wrong shape, and the one list
//! of diagnostics a file collects. Nothing here knows what a runbook or a drill is.

use std::{path::Path, time::Duration};

use super::API_VERSION;
use crate::runbook::{
  diagnostic::{Diagnostic, DiagnosticKind, Diagnostics, Document},
  duration::parse_duration,
  model::Span,
  parse::{join_key, parse_document, plain_bool, Entry, Node, NodeValue, ScalarStyle},
  suggest::did_you_mean,
};

/// The keys of one mapping, after unknown keys have been reported.
pub(crate) struct Fields<'n> {
  pub(crate) entries: &'n [Entry],
  pub(crate) key: String,
}

impl<'n> Fields<'n> {
  pub(crate) fn get(&self, name: &str) -> Option<&'n Node> {
    self
      .entries
      .iter()
      .find(|entry| entry.key == name)
      .map(|entry| &entry.value)
  }

  pub(crate) fn key(&self, name: &str) -> String {
    join_key(&self.key, name)
  }
}

/// One file being read: its text (for positions inside scalars) and the diagnostics found so far.
pub(crate) struct Reader<'a> {
  pub(crate) path: &'a Path,
  pub(crate) text: &'a str,
  line_starts: Vec<usize>,
  errors: Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
  pub(crate) fn new(path: &'a Path, text: &'a str) -> Self {
    let line_starts = std::iter::once(0)
      .chain(text.match_indices('\n').map(|(index, _)| index + 1))
      .collect();
    Reader {
      path,
      text,
      line_starts,
      errors: Vec::new(),
    }
  }

  /// The text's YAML tree, with the parser's errors reported. `None` when there is no root; an
  /// empty file without other errors is reported at its start (it still gets a position).
  pub(crate) fn parse(&mut self, document: Document) -> Option<Node> {
    let parsed = parse_document(self.text);
    for error in parsed.errors {
      self.report(error.span, error.width, error.key, error.kind);
    }
    if parsed.root.is_none() && self.errors.is_empty() {
      self.report(
        Span { line: 1, column: 1 },
        1,
        String::new(),
        DiagnosticKind::Empty { document },
      );
    }
    parsed.root
  }

  /// What the walk built, if nothing was reported; otherwise every diagnostic, in order.
  pub(crate) fn finish<T>(self, built: Option<T>) -> Result<T, Diagnostics> {
    match built {
      Some(built) if self.errors.is_empty() => Ok(built),
      _ => Err(Diagnostics::new(
        self.path.to_path_buf(),
        self.text.to_string(),
        self.errors,
      )),
    }
  }

  pub(crate) fn report(&mut self, span: Span, width: usize, key: String, kind: DiagnosticKind) {
    self.errors.push(Diagnostic {
      path: self.path.to_path_buf(),
      span,
      width: width.max(1),
      key,
      kind,
    });
  }

  pub(crate) fn at(&mut self, node: &Node, key: &str, kind: DiagnosticKind) {
    self.report(node.span, node.width, key.to_string(), kind);
  }

  pub(crate) fn wrong_type(&mut self, node: &Node, key: &str, expected: &'static str) {
    self.at(
      node,
      key,
      DiagnosticKind::WrongType {
        expected,
        found: node.describe(),
      },
    );
  }

  /// The text of line `number` (1-based), without its line break.
  fn line(&self, number: usize) -> Option<&'a str> {
    let start = *self.line_starts.get(number.checked_sub(1)?)?;
    let end = self
      .line_starts
      .get(number)
      .map_or(self.text.len(), |next| next - 1);
    self.text.get(start..end)
  }

  /// Where `needle`, found at byte `offset` of `node`'s scalar text, sits in the file. Exact for
  /// single-line plain and quoted scalars without escapes before it (checked against the source
  /// line); otherwise the scalar's own position.
  pub(crate) fn locate(&self, node: &Node, offset: usize, needle: &str) -> (Span, usize) {
    let fallback = (node.span, node.width);
    let Some(text) = node.as_scalar() else {
      return fallback;
    };
    let quote = match &node.value {
      NodeValue::Scalar(_, ScalarStyle::Plain) => 0,
      NodeValue::Scalar(_, ScalarStyle::Quoted) => 1,
      _ => return fallback,
    };
    let Some(before) = text.get(..offset) else {
      return fallback;
    };
    let column = node.span.column + quote + before.chars().count();
    let found = self.line(node.span.line).is_some_and(|line| {
      let rest: String = line
        .chars()
        .skip(column - 1)
        .take(needle.chars().count())
        .collect();
      rest == needle
    });
    if found {
      (
        Span {
          line: node.span.line,
          column,
        },
        needle.chars().count().max(1),
      )
    } else {
      fallback
    }
  }

  /// A mapping with keys from `known`, of which `required` must be present.
  pub(crate) fn expect_map<'n>(
    &mut self,
    node: &'n Node,
    key: &str,
    context: &'static str,
    known: &[&'static str],
    required: &[&'static str],
  ) -> Option<Fields<'n>> {
    let Some(entries) = node.as_map() else {
      self.wrong_type(node, key, "a mapping");
      return None;
    };
    for entry in entries {
      if !known.contains(&entry.key.as_str()) {
        let suggestion = did_you_mean(&entry.key, known.iter().copied());
        self.report(
          entry.key_span,
          entry.key_width(),
          join_key(key, &entry.key),
          DiagnosticKind::UnknownKey {
            key: entry.key.clone(),
            context,
            suggestion,
            expected: known.to_vec(),
          },
        );
      }
    }
    for name in required {
      if !entries.iter().any(|entry| entry.key == *name) {
        self.at(
          node,
          key,
          DiagnosticKind::MissingKey {
            key: name.to_string(),
            context,
          },
        );
      }
    }
    Some(Fields {
      entries,
      key: key.to_string(),
    })
  }

  pub(crate) fn expect_string(&mut self, node: &Node, key: &str) -> Option<String> {
    match node.as_scalar() {
      Some(text) if !node.is_null() => Some(text.to_string()),
      _ => {
        self.wrong_type(node, key, "a string");
        None
      }
    }
  }

  pub(crate) fn expect_bool(&mut self, node: &Node, key: &str) -> Option<bool> {
    match &node.value {
      NodeValue::Scalar(text, ScalarStyle::Plain) if plain_bool(text).is_some() => plain_bool(text),
      _ => {
        self.wrong_type(node, key, "`true` or `false`");
        None
      }
    }
  }

  pub(crate) fn expect_duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
    let text = self.expect_string(node, key)?;
    match parse_duration(&text) {
      Ok(duration) => Some(duration),
      Err(reason) => {
        self.at(node, key, DiagnosticKind::InvalidDuration { text, reason });
        None
      }
    }
  }

  pub(crate) fn expect_list<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n [Node]> {
    match &node.value {
      NodeValue::List(items) => Some(items),
      _ => {
        self.wrong_type(node, key, "a list");
        None
      }
    }
  }

  /// A string from `allowed`.
  pub(crate) fn expect_one_of(
    &mut self,
    node: &Node,
    key: &str,
    allowed: &[&'static str],
  ) -> Option<String> {
    let text = self.expect_string(node, key)?;
    if allowed.contains(&text.as_str()) {
      return Some(text);
    }
    self.at(
      node,
      key,
      DiagnosticKind::InvalidValue {
        expected: format!("one of {}", allowed.join(", ")),
        found: text.clone(),
        allowed: allowed.to_vec(),
        suggestion: did_you_mean(&text, allowed.iter().copied()),
      },
    );
    None
  }

  /// The strings of a list, each with its node; an item that is not a string is reported and
  /// left out.
  pub(crate) fn expect_strings(&mut self, node: &Node, key: &str) -> Vec<(String, Node)> {
    match &node.value {
      NodeValue::List(items) => items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
          let item_key = format!("{key}[{index}]");
          self
            .expect_string(item, &item_key)
            .map(|text| (text, item.clone()))
        })
        .collect(),
      _ => {
        self.wrong_type(node, key, "a list");
        Vec::new()
      }
    }
  }

  /// `apiVersion`, which runbooks and drill files share: [`API_VERSION`].
  pub(crate) fn expect_api_version(&mut self, node: &Node) {
    if let Some(found) = self.expect_string(node, "apiVersion") {
      if found != API_VERSION {
        self.at(
          node,
          "apiVersion",
          DiagnosticKind::WrongApiVersion { found },
        );
      }
    }
  }
}
