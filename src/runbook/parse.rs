//! YAML → a tree of [`Node`]s that remember where they came from.
//!
//! serde_yaml keeps no positions on values and stops at the first error, so the runbook is read
//! with yaml-rust2's marked-event parser into this small tree instead; validation walks the tree,
//! reports every error it finds, and knows the line and column of every key and value.
//!
//! Limits, so that no input can hurt the validator: nesting deeper than [`MAX_DEPTH`] is an error
//! (the walkers recurse, so this also bounds their stack), aliases are refused (no "billion
//! laughs"), and everything here is linear in the size of the file.

use std::collections::HashMap;

use yaml_rust2::{
  parser::{Event, Parser},
  scanner::{Marker, TScalarStyle},
};

use super::{diagnostic::DiagnosticKind, model::Span};

/// Deepest nesting of mappings and lists accepted.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
  Plain,
  Quoted,
  /// `|` or `>` blocks.
  Block,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
  pub value: NodeValue,
  pub span: Span,
  /// Characters to underline when blaming this node.
  pub width: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
  Scalar(String, ScalarStyle),
  List(Vec<Node>),
  Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
  pub key: String,
  pub key_span: Span,
  pub value: Node,
}

impl Entry {
  pub fn key_width(&self) -> usize {
    self.key.chars().count().max(1)
  }
}

impl Node {
  /// A plain `~`, `null` or empty value.
  pub fn is_null(&self) -> bool {
    matches!(&self.value, NodeValue::Scalar(text, ScalarStyle::Plain)
      if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
  }

  /// What the node is, for "expected X, found Y" messages.
  pub fn describe(&self) -> &'static str {
    match &self.value {
      NodeValue::Map(_) => "a mapping",
      NodeValue::List(_) => "a list",
      NodeValue::Scalar(_, ScalarStyle::Plain) if self.is_null() => "nothing",
      NodeValue::Scalar(text, ScalarStyle::Plain) => {
        if plain_bool(text).is_some() {
          "a boolean"
        } else if text.parse::<i64>().is_ok() {
          "an integer"
        } else if text.parse::<f64>().is_ok() {
          "a number"
        } else {
          "a string"
        }
      }
      NodeValue::Scalar(..) => "a string",
    }
  }

  pub fn as_scalar(&self) -> Option<&str> {
    match &self.value {
      NodeValue::Scalar(text, _) => Some(text),
      _ => None,
    }
  }

  pub fn as_map(&self) -> Option<&[Entry]> {
    match &self.value {
      NodeValue::Map(entries) => Some(entries),
      _ => None,
    }
  }
}

/// A plain scalar's boolean value (YAML 1.2 core schema).
pub fn plain_bool(text: &str) -> Option<bool> {
  match text {
    "true" | "True" | "TRUE" => Some(true),
    "false" | "False" | "FALSE" => Some(false),
    _ => None,
  }
}

/// An error found while reading the YAML, before any runbook rule applies.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
  pub span: Span,
  pub width: usize,
  pub key: String,
  pub kind: DiagnosticKind,
}

/// The result of reading a file: the tree (if the YAML could be read to the end) and the errors.
#[derive(Debug, Default)]
pub struct Document {
  pub root: Option<Node>,
  pub errors: Vec<ParseError>,
}

fn span(mark: Marker) -> Span {
  Span {
    line: mark.line(),
    column: mark.col() + 1,
  }
}

enum Frame {
  List {
    items: Vec<Node>,
    span: Span,
    key: String,
  },
  Map {
    entries: Vec<Entry>,
    seen: HashMap<String, usize>,
    pending: Option<(String, Span)>,
    span: Span,
    key: String,
  },
}

impl Frame {
  fn key(&self) -> &str {
    match self {
      Frame::List { key, .. } | Frame::Map { key, .. } => key,
    }
  }

  /// The key path of the next child of this frame.
  fn child_key(&self) -> String {
    match self {
      Frame::List { items, key, .. } => index_key(key, items.len()),
      Frame::Map {
        pending: Some((name, _)),
        key,
        ..
      } => join_key(key, name),
      Frame::Map { key, .. } => key.clone(),
    }
  }
}

/// `parent.name`. Every node of every runbook gets a key path, so this is on the hot path of
/// `drctl validate` (callgrind: `format!` cost ~900 instructions a call, more than the YAML
/// scanner spends on the key itself); one exact-size allocation and two copies instead.
pub fn join_key(parent: &str, name: &str) -> String {
  if parent.is_empty() {
    return name.to_owned();
  }
  let mut key = String::with_capacity(parent.len() + 1 + name.len());
  key.push_str(parent);
  key.push('.');
  key.push_str(name);
  key
}

/// `parent[index]`, without `format!` (see [`join_key`]).
pub fn index_key(parent: &str, index: usize) -> String {
  // Decimal digits of `index`, most significant first.
  let mut digits = [0u8; 20];
  let mut at = digits.len();
  let mut rest = index;
  loop {
    at -= 1;
    // `rest % 10` is below 10, so the cast cannot truncate.
    digits[at] = b'0' + (rest % 10) as u8;
    rest /= 10;
    if rest == 0 {
      break;
    }
  }
  let mut key = String::with_capacity(parent.len() + 2 + digits.len() - at);
  key.push_str(parent);
  key.push('[');
  // ASCII digits are valid UTF-8.
  key.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
  key.push(']');
  key
}

/// The first character YAML does not allow in a stream (C0 and C1 controls other than tab,
/// line breaks and NEL, DEL, U+FFFE/U+FFFF), with its position. The scanner stops at a NUL as if
/// the file ended there, so without this check whatever follows a NUL would be silently ignored.
fn forbidden_character(text: &str) -> Option<(Span, char)> {
  let mut line = 1;
  let mut column = 1;
  for c in text.chars() {
    let forbidden = matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}')
      || matches!(c, '\u{80}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}');
    if forbidden {
      return Some((Span { line, column }, c));
    }
    if c == '\n' {
      line += 1;
      column = 1;
    } else {
      column += 1;
    }
  }
  None
}

/// Read `text` as one YAML document.
pub fn parse_document(text: &str) -> Document {
  let mut document = Document::default();
  if let Some((span, c)) = forbidden_character(text) {
    document.errors.push(ParseError {
      span,
      width: 1,
      key: String::new(),
      kind: DiagnosticKind::Syntax {
        message: format!(
          "control character U+{:04X} is not allowed in a YAML file",
          u32::from(c)
        ),
      },
    });
    return document;
  }
  let mut parser = Parser::new_from_str(text);
  let mut stack: Vec<Frame> = Vec::new();
  let mut documents = 0;
  loop {
    let (event, mark) = match parser.next_token() {
      Ok(next) => next,
      Err(error) => {
        let marker = error.marker();
        // The scanner has its own (deeper) nesting limit for flow collections.
        let kind = if error.info() == "recursion limit exceeded" {
          DiagnosticKind::TooDeep { limit: MAX_DEPTH }
        } else {
          DiagnosticKind::Syntax {
            message: error.info().to_string(),
          }
        };
        document.errors.push(ParseError {
          span: Span {
            line: marker.line().max(1),
            column: marker.col() + 1,
          },
          width: 1,
          key: String::new(),
          kind,
        });
        document.root = None;
        return document;
      }
    };
    let at = span(mark);
    let key = stack.last().map(Frame::child_key).unwrap_or_default();
    let node = match event {
      Event::StreamEnd => break,
      Event::DocumentStart => {
        documents += 1;
        if documents > 1 {
          document.errors.push(ParseError {
            span: at,
            width: 3,
            key: String::new(),
            kind: DiagnosticKind::MultipleDocuments,
          });
          return document;
        }
        continue;
      }
      Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
      Event::Alias(_) => {
        document.errors.push(ParseError {
          span: at,
          width: 1,
          key,
          kind: DiagnosticKind::Alias,
        });
        Node {
          value: NodeValue::Scalar(String::new(), ScalarStyle::Plain),
          span: at,
          width: 1,
        }
      }
      Event::Scalar(value, style, _, _) => {
        let (style, extra) = match style {
          TScalarStyle::Plain => (ScalarStyle::Plain, 0),
          TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => (ScalarStyle::Quoted, 2),
          TScalarStyle::Literal | TScalarStyle::Folded => (ScalarStyle::Block, 0),
        };
        let width = if style == ScalarStyle::Block {
          1
        } else {
          value.chars().count() + extra
        };
        Node {
          value: NodeValue::Scalar(value, style),
          span: at,
          width: width.max(1),
        }
      }
      Event::SequenceStart(..) | Event::MappingStart(..) => {
        if stack.len() >= MAX_DEPTH {
          document.errors.push(ParseError {
            span: at,
            width: 1,
            key,
            kind: DiagnosticKind::TooDeep { limit: MAX_DEPTH },
          });
          document.root = None;
          return document;
        }
        stack.push(if matches!(event, Event::SequenceStart(..)) {
          Frame::List {
            items: Vec::new(),
            span: at,
            key,
          }
        } else {
          Frame::Map {
            entries: Vec::new(),
            seen: HashMap::new(),
            pending: None,
            span: at,
            key,
          }
        });
        continue;
      }
      Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
        Some(Frame::List { items, span, .. }) => Node {
          value: NodeValue::List(items),
          span,
          width: 1,
        },
        Some(Frame::Map { entries, span, .. }) => {
          // A block mapping's start event is marked at its first `:`; blame its first key.
          let span = entries
            .first()
            .map_or(span, |first| first.key_span.min(span));
          Node {
            value: NodeValue::Map(entries),
            span,
            width: 1,
          }
        }
        None => continue,
      },
    };
    match stack.last_mut() {
      None => document.root = Some(node),
      Some(Frame::List { items, .. }) => items.push(node),
      Some(Frame::Map {
        pending,
        entries,
        seen,
        key: map_key,
        ..
      }) => match pending.take() {
        None => {
          let name = match &node.value {
            NodeValue::Scalar(text, _) => text.clone(),
            _ => {
              document.errors.push(ParseError {
                span: node.span,
                width: 1,
                key: map_key.clone(),
                kind: DiagnosticKind::ComplexKey,
              });
              "?".to_string()
            }
          };
          *pending = Some((name, node.span));
        }
        Some((name, key_span)) => {
          if let Some(first_line) = seen.get(&name) {
            document.errors.push(ParseError {
              span: key_span,
              width: name.chars().count().max(1),
              key: join_key(map_key, &name),
              kind: DiagnosticKind::DuplicateKey {
                key: name,
                first_line: *first_line,
              },
            });
          } else {
            seen.insert(name.clone(), key_span.line);
            entries.push(Entry {
              key: name,
              key_span,
              value: node,
            });
          }
        }
      },
    }
  }
  // Unbalanced events cannot come out of the parser; if they did, the tree is incomplete.
  if !stack.is_empty() {
    let key = stack
      .last()
      .map(|frame| frame.key().to_string())
      .unwrap_or_default();
    document.errors.push(ParseError {
      span: Span { line: 1, column: 1 },
      width: 1,
      key,
      kind: DiagnosticKind::Syntax {
        message: "unexpected end of the document".into(),
      },
    });
    document.root = None;
  }
  document
}

/// Where each key path (`steps[2].with.instance`) of a document sits: the key's position (none
/// for list items and the root) and the value's. For later phases that need to blame a path they
/// only know by name.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
  entries: HashMap<String, (Option<Span>, Span)>,
}

impl SpanIndex {
  pub fn build(root: &Node) -> SpanIndex {
    let mut entries = HashMap::new();
    // Explicit stack: the tree is at most MAX_DEPTH deep, but there is no need to recurse.
    let mut pending: Vec<(String, Option<Span>, &Node)> = vec![(String::new(), None, root)];
    while let Some((key, key_span, node)) = pending.pop() {
      match &node.value {
        NodeValue::Scalar(..) => {}
        NodeValue::List(items) => pending.extend(
          items
            .iter()
            .enumerate()
            .map(|(index, item)| (index_key(&key, index), None, item)),
        ),
        NodeValue::Map(map) => pending.extend(map.iter().map(|entry| {
          (
            join_key(&key, &entry.key),
            Some(entry.key_span),
            &entry.value,
          )
        })),
      }
      entries.insert(key, (key_span, node.span));
    }
    SpanIndex { entries }
  }

  /// The position of the key at `path` (`None` for list items or an unknown path).
  pub fn key(&self, path: &str) -> Option<Span> {
    self.entries.get(path).and_then(|(key, _)| *key)
  }

  /// The position of the value at `path`.
  pub fn value(&self, path: &str) -> Option<Span> {
    self.entries.get(path).map(|(_, value)| *value)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn key_paths_join_names_and_indexes() {
    assert_eq!(join_key("", "steps"), "steps");
    assert_eq!(join_key("steps[3]", "with"), "steps[3].with");
    assert_eq!(index_key("steps", 0), "steps[0]");
    assert_eq!(
      index_key("steps[12].with.records", 1047),
      "steps[12].with.records[1047]"
    );
    assert_eq!(index_key("", usize::MAX), format!("[{}]", usize::MAX));
  }

  fn map(node: &Node) -> &[Entry] {
    node.as_map().unwrap()
  }

  #[test]
  fn records_positions_of_keys_and_values() {
    let document = parse_document("a: 1\nsteps:\n  - id: x\n    with: { k: 'v' }\n");
    assert!(document.errors.is_empty(), "{:?}", document.errors);
    let root = document.root.unwrap();
    let entries = map(&root);
    assert_eq!(entries[0].key_span, Span { line: 1, column: 1 });
    assert_eq!(entries[0].value.span, Span { line: 1, column: 4 });
    let NodeValue::List(steps) = &entries[1].value.value else {
      panic!()
    };
    let step = map(&steps[0]);
    assert_eq!(step[0].key_span, Span { line: 3, column: 5 });
    let with = map(&step[1].value);
    assert_eq!(
      with[0].value.span,
      Span {
        line: 4,
        column: 16
      }
    );
    assert_eq!(with[0].value.width, 3);
  }

  #[test]
  fn indexes_key_paths() {
    let root = parse_document("a: 1\nsteps:\n  - id: x\n    with: { k: v }\n")
      .root
      .unwrap();
    let index = SpanIndex::build(&root);
    assert_eq!(
      index.key("steps[0].with.k"),
      Some(Span {
        line: 4,
        column: 13
      })
    );
    assert_eq!(
      index.value("steps[0].with.k"),
      Some(Span {
        line: 4,
        column: 16
      })
    );
    assert_eq!(index.key("steps[0]"), None);
    assert_eq!(index.value("steps[0]"), Some(Span { line: 3, column: 5 }));
    assert_eq!(index.value("nope"), None);
  }

  #[test]
  fn empty_values_are_null() {
    let document = parse_document("a:\nb: ~\n");
    let root = document.root.unwrap();
    assert!(map(&root).iter().all(|entry| entry.value.is_null()));
  }

  #[test]
  fn duplicate_keys_are_errors() {
    let document = parse_document("a: 1\nb:\n  c: 1\n  c: 2\n");
    assert_eq!(document.errors.len(), 1);
    let error = &document.errors[0];
    assert_eq!(error.span, Span { line: 4, column: 3 });
    assert_eq!(error.key, "b.c");
    assert_eq!(
      error.kind,
      DiagnosticKind::DuplicateKey {
        key: "c".into(),
        first_line: 3
      }
    );
  }

  #[test]
  fn deep_nesting_is_refused_without_overflowing() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let document = parse_document(&text);
    assert!(document.root.is_none());
    assert!(matches!(
      document.errors[0].kind,
      DiagnosticKind::TooDeep { .. }
    ));
    let text: String = (0..200)
      .map(|depth| format!("{}k:\n", " ".repeat(depth)))
      .collect();
    let document = parse_document(&text);
    assert!(document.root.is_none());
    assert_eq!(
      document.errors[0].kind,
      DiagnosticKind::TooDeep { limit: MAX_DEPTH }
    );
    assert_eq!(document.errors[0].span.line, 65);
  }

  #[test]
  fn syntax_errors_have_positions() {
    let document = parse_document("a: [1, 2\nb: c\n");
    assert!(document.root.is_none());
    assert!(matches!(
      document.errors[0].kind,
      DiagnosticKind::Syntax { .. }
    ));
  }

  #[test]
  fn aliases_are_refused() {
    let document = parse_document("a: &x 1\nb: *x\n");
    assert_eq!(document.errors[0].kind, DiagnosticKind::Alias);
  }
}
