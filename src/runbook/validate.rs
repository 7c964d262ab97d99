//! Validation: the spanned YAML tree ([`super::parse`]) → a [`Runbook`], or every error found.
//!
//! The walk never stops at the first problem: each part of the file is checked on its own and
//! the errors are collected, so one `drctl validate` shows everything to fix. Cross-references
//! (`needs`, `${{ }}` references) are checked once every step, parameter and variable is known.
//!
//! Nothing here panics on any input, and the work is linear in the size of the file apart from
//! the ancestor walks of `steps.ID.outputs` references (one graph walk per referencing step).

use std::{
  collections::{HashMap, HashSet},
  path::Path,
  time::Duration,
};

use super::{
  action_spec::{ActionCatalog, ActionSpec, FieldKind, FieldSpec},
  diagnostic::{read_source, source_text, Diagnostic, DiagnosticKind, Diagnostics, Document},
  duration::parse_duration,
  model::*,
  parse::{index_key, join_key, parse_document, plain_bool, Entry, Node, NodeValue, ScalarStyle},
  suggest::did_you_mean,
  template::{Namespace, Reference, Template},
};

/// The version this crate reads.
pub const API_VERSION: &str = "drctl/v1";

const TOP_KEYS: &[&str] = &[
  "apiVersion",
  "kind",
  "metadata",
  "params",
  "vars",
  "objectives",
  "defaults",
  "steps",
  "refuse_pending_fences",
];
const METADATA_KEYS: &[&str] = &["name", "description", "lock_group"];
/// The longest lock group accepted (the state's longest name).
const MAX_LOCK_GROUP_LEN: usize = 128;
const PARAM_KEYS: &[&str] = &[
  "type",
  "required",
  "default",
  "allowed",
  "description",
  "secret",
];
const OBJECTIVE_KEYS: &[&str] = &["rto", "rpo", "recovered_when"];
const RECOVERED_WHEN_KEYS: &[&str] = &["step", "within"];
const DEFAULTS_KEYS: &[&str] = &["timeout", "retry"];
const RETRY_KEYS: &[&str] = &["attempts", "backoff", "max_backoff"];
const STEP_KEYS: &[&str] = &[
  "id",
  "name",
  "action",
  "with",
  "needs",
  "when",
  "timeout",
  "retry",
  "budget",
  "on_failure",
  "rollback",
  "approval",
  "recovery",
  "always",
  "accept_data_loss",
  "fence",
];
const ROLLBACK_KEYS: &[&str] = &["action", "with"];
const APPROVAL_KEYS: &[&str] = &["prompt", "timeout", "distinct_from_starter"];
const PARAM_TYPES: &[&str] = &["string", "int", "bool", "duration"];
const ON_FAILURE: &[&str] = &["abort", "continue", "rollback"];
const RUN_FIELDS: &[&str] = &["id", "elapsed", "started_at"];

/// Validate a runbook's bytes. `path` is only used in diagnostics and kept in the model.
pub fn load(
  path: &Path,
  bytes: &[u8],
  catalog: &dyn ActionCatalog,
) -> Result<Runbook, Diagnostics> {
  let text = source_text(Document::Runbook, path, bytes)?;
  let document = parse_document(text);
  let mut checker = Checker::new(path, text, catalog);
  for error in document.errors {
    checker.report(error.span, error.width, error.key, error.kind);
  }
  let runbook = match &document.root {
    Some(root) => checker.runbook(root),
    None => {
      if checker.errors.is_empty() {
        // An empty file still gets a position: its start.
        checker.report(
          Span { line: 1, column: 1 },
          1,
          String::new(),
          DiagnosticKind::Empty {
            document: Document::Runbook,
          },
        );
      }
      None
    }
  };
  match runbook {
    Some(runbook) if checker.errors.is_empty() => Ok(runbook),
    _ => Err(Diagnostics::new(
      path.to_path_buf(),
      text.to_string(),
      checker.errors,
    )),
  }
}

/// Read and validate a runbook file; a read error is reported as a diagnostic too.
pub fn load_file(path: &Path, catalog: &dyn ActionCatalog) -> Result<Runbook, Diagnostics> {
  let bytes = read_source(Document::Runbook, path)?;
  load(path, &bytes, catalog)
}

/// What validates but is unsafe, as diagnostics to print as warnings: a secret
/// (`${{ secrets.X }}` or a `secret: true` parameter) in an `exec.command` argv, where every
/// local user can read it in the process list.
pub fn warnings(runbook: &Runbook) -> Vec<Diagnostic> {
  let secret_params: HashSet<&str> = runbook
    .params
    .iter()
    .filter(|param| param.secret)
    .map(|param| param.name.as_str())
    .collect();
  let mut found = Vec::new();
  for (index, step) in runbook.steps.iter().enumerate() {
    let calls = [
      Some((&step.call, "")),
      step.rollback.as_ref().map(|call| (call, ".rollback")),
    ];
    for (call, place) in calls.into_iter().flatten() {
      if call.action != "exec.command" {
        continue;
      }
      let Some(Arg::List(items, _)) = call.with.get("argv") else {
        continue;
      };
      for (item_index, item) in items.iter().enumerate() {
        let Arg::Template(template, span) = item else {
          continue;
        };
        for reference in template.references() {
          let name = reference
            .path
            .first()
            .map(String::as_str)
            .unwrap_or_default();
          let secret = match reference.namespace {
            Namespace::Secrets => true,
            Namespace::Params => secret_params.contains(name),
            _ => false,
          };
          if secret {
            found.push(Diagnostic {
              path: runbook.path.clone(),
              span: *span,
              width: 1,
              key: format!("steps[{index}]{place}.with.argv[{item_index}]"),
              kind: DiagnosticKind::SecretInArgv {
                reference: format!("{}.{name}", reference.namespace.as_str()),
              },
            });
          }
        }
      }
    }
  }
  found
}

/// Where a template is used, which decides what it may reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
  /// The `vars` entry with this index.
  Var(usize),
  /// Step `index` (its `with`, `when` or approval prompt).
  Step(usize),
  /// Step `index`'s rollback, which may also use the step's own outputs.
  Rollback(usize),
}

/// One reference found in a template, to check once everything is declared.
struct Use {
  reference: Reference,
  span: Span,
  width: usize,
  key: String,
  place: Place,
}

/// The keys of one mapping, after unknown keys have been reported.
struct Fields<'n> {
  entries: &'n [Entry],
  key: String,
}

impl<'n> Fields<'n> {
  fn get(&self, name: &str) -> Option<&'n Node> {
    self
      .entries
      .iter()
      .find(|entry| entry.key == name)
      .map(|entry| &entry.value)
  }

  fn key(&self, name: &str) -> String {
    join_key(&self.key, name)
  }
}

/// A step's `needs`, kept with positions until every id is known.
struct Needs {
  names: Vec<(String, Span, usize)>,
}

struct Checker<'a> {
  path: &'a Path,
  text: &'a str,
  line_starts: Vec<usize>,
  catalog: &'a dyn ActionCatalog,
  errors: Vec<Diagnostic>,
  uses: Vec<Use>,
}

fn valid_id(id: &str) -> bool {
  !id.is_empty()
    && id
      .bytes()
      .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_name(name: &str) -> bool {
  !name.is_empty()
    && name
      .bytes()
      .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl<'a> Checker<'a> {
  fn new(path: &'a Path, text: &'a str, catalog: &'a dyn ActionCatalog) -> Self {
    let line_starts = std::iter::once(0)
      .chain(text.match_indices('\n').map(|(index, _)| index + 1))
      .collect();
    Checker {
      path,
      text,
      line_starts,
      catalog,
      errors: Vec::new(),
      uses: Vec::new(),
    }
  }

  fn report(&mut self, span: Span, width: usize, key: String, kind: DiagnosticKind) {
    self.errors.push(Diagnostic {
      path: self.path.to_path_buf(),
      span,
      width,
      key,
      kind,
    });
  }

  fn at(&mut self, node: &Node, key: &str, kind: DiagnosticKind) {
    self.report(node.span, node.width, key.to_string(), kind);
  }

  fn wrong_type(&mut self, node: &Node, key: &str, expected: &'static str) {
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
  fn locate(&self, node: &Node, offset: usize, needle: &str) -> (Span, usize) {
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

  // ---- generic shapes ------------------------------------------------------------------------

  /// A mapping with keys from `known`, of which `required` must be present.
  fn expect_map<'n>(
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

  fn expect_string(&mut self, node: &Node, key: &str) -> Option<String> {
    match node.as_scalar() {
      Some(text) if !node.is_null() => Some(text.to_string()),
      _ => {
        self.wrong_type(node, key, "a string");
        None
      }
    }
  }

  fn expect_bool(&mut self, node: &Node, key: &str) -> Option<bool> {
    match &node.value {
      NodeValue::Scalar(text, ScalarStyle::Plain) if plain_bool(text).is_some() => plain_bool(text),
      _ => {
        self.wrong_type(node, key, "`true` or `false`");
        None
      }
    }
  }

  fn expect_duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
    let text = self.expect_string(node, key)?;
    match parse_duration(&text) {
      Ok(duration) => Some(duration),
      Err(reason) => {
        self.at(node, key, DiagnosticKind::InvalidDuration { text, reason });
        None
      }
    }
  }

  fn expect_list<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n [Node]> {
    match &node.value {
      NodeValue::List(items) => Some(items),
      _ => {
        self.wrong_type(node, key, "a list");
        None
      }
    }
  }

  /// A scalar as a template; numbers and booleans are literal templates of their text.
  fn expect_template(&mut self, node: &Node, key: &str, place: Place) -> Option<Template> {
    let text = self.expect_string(node, key)?;
    let template = match &node.value {
      NodeValue::Scalar(_, ScalarStyle::Plain) if !text.contains("${{") => Template::literal(text),
      _ => match Template::parse(&text) {
        Ok(template) => template,
        Err(error) => {
          let needle: String = text
            .get(error.offset..)
            .and_then(|rest| rest.chars().next())
            .into_iter()
            .collect();
          let (span, _) = self.locate(node, error.offset, &needle);
          self.report(
            span,
            1,
            key.to_string(),
            DiagnosticKind::Template {
              message: error.message,
            },
          );
          return None;
        }
      },
    };
    for reference in template.references() {
      let (span, width) = self.locate(node, reference.offset, &reference.to_string());
      self.uses.push(Use {
        reference: reference.clone(),
        span,
        width,
        key: key.to_string(),
        place,
      });
    }
    Some(template)
  }

  // ---- the runbook ---------------------------------------------------------------------------

  fn runbook(&mut self, root: &Node) -> Option<Runbook> {
    let top = self.expect_map(
      root,
      "",
      "the runbook",
      TOP_KEYS,
      &["apiVersion", "kind", "metadata", "steps"],
    )?;
    if let Some(node) = top.get("apiVersion") {
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
    if let Some(node) = top.get("kind") {
      if let Some(found) = self.expect_string(node, "kind") {
        if found != "Runbook" {
          self.at(node, "kind", DiagnosticKind::WrongKind { found });
        }
      }
    }
    let (name, description, lock_group) = match top.get("metadata") {
      Some(node) => self.metadata(node),
      None => (None, None, None),
    };
    let params = match top.get("params") {
      Some(node) if !node.is_null() => self.params(node),
      _ => Vec::new(),
    };
    let vars = match top.get("vars") {
      Some(node) if !node.is_null() => self.vars(node),
      _ => Vec::new(),
    };
    let mut objectives = Objectives::default();
    if let Some(node) = top.get("objectives").filter(|node| !node.is_null()) {
      if let Some(fields) = self.expect_map(node, "objectives", "objectives", OBJECTIVE_KEYS, &[]) {
        objectives.rto = fields
          .get("rto")
          .and_then(|node| self.expect_duration(node, "objectives.rto"));
        objectives.rpo = fields
          .get("rpo")
          .and_then(|node| self.expect_duration(node, "objectives.rpo"));
      }
    }
    let mut defaults = StepDefaults::default();
    if let Some(node) = top.get("defaults").filter(|node| !node.is_null()) {
      if let Some(fields) = self.expect_map(node, "defaults", "defaults", DEFAULTS_KEYS, &[]) {
        if let Some(timeout) = fields
          .get("timeout")
          .and_then(|node| self.expect_duration(node, "defaults.timeout"))
        {
          defaults.timeout = timeout;
        }
        if let Some(node) = fields.get("retry") {
          defaults.retry = self.retry(node, "defaults.retry", defaults.retry);
        }
      }
    }
    let steps = match top.get("steps") {
      Some(node) => self.steps(node, &defaults),
      None => Vec::new(),
    };
    if let Some(node) = top
      .get("objectives")
      .and_then(Node::as_map)
      .and_then(|entries| entries.iter().find(|entry| entry.key == "recovered_when"))
      .map(|entry| &entry.value)
    {
      objectives.recovered_when = self.recovered_when(node, &steps);
    }
    self.check_uses(&params, &vars, &objectives, &steps);
    let refuse_pending_fences = top
      .get("refuse_pending_fences")
      .and_then(|node| self.expect_bool(node, "refuse_pending_fences"))
      .unwrap_or(false);
    Some(Runbook {
      path: self.path.to_path_buf(),
      source: self.text.to_string(),
      name: name?,
      description,
      lock_group: lock_group?,
      params,
      vars,
      objectives,
      defaults,
      steps: steps
        .into_iter()
        .map(|(step, _)| step)
        .collect::<Option<Vec<_>>>()?,
      refuse_pending_fences,
    })
  }

  /// `metadata`: the name, the description, and the lock group (`None` only when invalid).
  fn metadata(&mut self, node: &Node) -> (Option<String>, Option<String>, Option<String>) {
    let Some(fields) = self.expect_map(node, "metadata", "metadata", METADATA_KEYS, &["name"])
    else {
      return (None, None, None);
    };
    let name = fields.get("name").and_then(|node| {
      let name = self.expect_string(node, "metadata.name")?;
      if !valid_id(&name) {
        self.at(
          node,
          "metadata.name",
          DiagnosticKind::InvalidName {
            name,
            what: "runbook name",
          },
        );
        return None;
      }
      Some(name)
    });
    let description = fields
      .get("description")
      .and_then(|node| self.expect_string(node, "metadata.description"));
    let lock_group = match fields.get("lock_group") {
      None => Some(DEFAULT_LOCK_GROUP.to_string()),
      Some(node) => self.lock_group(node),
    };
    (name, description, lock_group)
  }

  /// `metadata.lock_group`: it names the lock file (or object) in the state, so it is an id of
  /// at most [`MAX_LOCK_GROUP_LEN`] characters.
  fn lock_group(&mut self, node: &Node) -> Option<String> {
    let group = self.expect_string(node, "metadata.lock_group")?;
    if !valid_id(&group) || group.len() > MAX_LOCK_GROUP_LEN {
      self.at(
        node,
        "metadata.lock_group",
        DiagnosticKind::InvalidName {
          name: group,
          what: "lock group",
        },
      );
      return None;
    }
    Some(group)
  }

  fn params(&mut self, node: &Node) -> Vec<Param> {
    let Some(entries) = node.as_map() else {
      self.wrong_type(node, "params", "a mapping");
      return Vec::new();
    };
    let mut params = Vec::new();
    for entry in entries {
      let key = join_key("params", &entry.key);
      if !valid_name(&entry.key) {
        self.report(
          entry.key_span,
          entry.key_width(),
          key.clone(),
          DiagnosticKind::InvalidName {
            name: entry.key.clone(),
            what: "parameter name",
          },
        );
      }
      let Some(fields) = self.expect_map(&entry.value, &key, "a parameter", PARAM_KEYS, &["type"])
      else {
        continue;
      };
      let kind = fields.get("type").and_then(|node| {
        let found = self.expect_string(node, &fields.key("type"))?;
        let kind = match found.as_str() {
          "string" => ParamType::String,
          "int" => ParamType::Int,
          "bool" => ParamType::Bool,
          "duration" => ParamType::Duration,
          _ => {
            let suggestion = did_you_mean(&found, PARAM_TYPES.iter().copied());
            self.at(
              node,
              &fields.key("type"),
              DiagnosticKind::UnknownParamType { found, suggestion },
            );
            return None;
          }
        };
        Some(kind)
      });
      let required = fields
        .get("required")
        .and_then(|node| self.expect_bool(node, &fields.key("required")))
        .unwrap_or(false);
      let description = fields
        .get("description")
        .and_then(|node| self.expect_string(node, &fields.key("description")));
      let secret = fields
        .get("secret")
        .and_then(|node| self.expect_bool(node, &fields.key("secret")))
        .unwrap_or(false);
      let Some(kind) = kind else { continue };
      let default = fields.get("default").and_then(|node| {
        self.param_value(node, &fields.key("default"), &entry.key, kind, "default")
      });
      let mut allowed = Vec::new();
      if let Some(node) = fields.get("allowed") {
        let allowed_key = fields.key("allowed");
        if let Some(items) = self.expect_list(node, &allowed_key) {
          for (index, item) in items.iter().enumerate() {
            let item_key = index_key(&allowed_key, index);
            if let Some(value) =
              self.param_value(item, &item_key, &entry.key, kind, "allowed value")
            {
              allowed.push(value);
            }
          }
        }
      }
      if let (Some(value), Some(node)) = (&default, fields.get("default")) {
        if !allowed.is_empty() && !allowed.contains(value) {
          self.at(
            node,
            &fields.key("default"),
            DiagnosticKind::DefaultNotAllowed {
              param: entry.key.clone(),
              found: value.to_string(),
              allowed: allowed.iter().map(Value::to_string).collect(),
            },
          );
        }
      }
      params.push(Param {
        name: entry.key.clone(),
        kind,
        required,
        default,
        allowed,
        description,
        secret,
        span: entry.key_span,
      });
    }
    params
  }

  /// A parameter's default or allowed value, typed.
  fn param_value(
    &mut self,
    node: &Node,
    key: &str,
    param: &str,
    kind: ParamType,
    what: &'static str,
  ) -> Option<Value> {
    let text = match node.as_scalar() {
      Some(text) if !node.is_null() => text.to_string(),
      _ => {
        self.at(
          node,
          key,
          DiagnosticKind::ParamValue {
            param: param.into(),
            what,
            kind: kind.to_string(),
            found: node.describe().into(),
          },
        );
        return None;
      }
    };
    let value = parse_value(&text, kind);
    if value.is_none() {
      self.at(
        node,
        key,
        DiagnosticKind::ParamValue {
          param: param.into(),
          what,
          kind: kind.to_string(),
          found: text,
        },
      );
    }
    value
  }

  fn vars(&mut self, node: &Node) -> Vec<(String, Template)> {
    let Some(entries) = node.as_map() else {
      self.wrong_type(node, "vars", "a mapping");
      return Vec::new();
    };
    let mut vars = Vec::new();
    for entry in entries {
      let key = join_key("vars", &entry.key);
      if !valid_name(&entry.key) {
        self.report(
          entry.key_span,
          entry.key_width(),
          key.clone(),
          DiagnosticKind::InvalidName {
            name: entry.key.clone(),
            what: "variable name",
          },
        );
      }
      let index = vars.len();
      let template = self.expect_template(&entry.value, &key, Place::Var(index));
      vars.push((
        entry.key.clone(),
        template.unwrap_or_else(|| Template::literal("")),
      ));
    }
    vars
  }

  fn retry(&mut self, node: &Node, key: &str, base: RetryPolicy) -> RetryPolicy {
    let mut policy = base;
    if let NodeValue::Scalar(text, ScalarStyle::Plain) = &node.value {
      if let Ok(attempts) = text.parse::<i64>() {
        if let Some(attempts) = self.attempts(node, key, attempts) {
          policy.attempts = attempts;
        }
        return policy;
      }
    }
    if node.as_map().is_none() {
      self.wrong_type(node, key, "a mapping or a number of attempts");
      return policy;
    }
    let Some(fields) = self.expect_map(node, key, "retry", RETRY_KEYS, &[]) else {
      return policy;
    };
    if let Some(node) = fields.get("attempts") {
      let attempts_key = fields.key("attempts");
      match node.as_scalar().map(str::parse::<i64>) {
        Some(Ok(attempts))
          if !node.is_null() && matches!(node.value, NodeValue::Scalar(_, ScalarStyle::Plain)) =>
        {
          if let Some(attempts) = self.attempts(node, &attempts_key, attempts) {
            policy.attempts = attempts;
          }
        }
        _ => self.wrong_type(node, &attempts_key, "a number of attempts"),
      }
    }
    if let Some(backoff) = fields
      .get("backoff")
      .and_then(|node| self.expect_duration(node, &fields.key("backoff")))
    {
      policy.backoff = backoff;
    }
    if let Some(max) = fields
      .get("max_backoff")
      .and_then(|node| self.expect_duration(node, &fields.key("max_backoff")))
    {
      policy.max_backoff = max;
    }
    policy
  }

  fn attempts(&mut self, node: &Node, key: &str, attempts: i64) -> Option<u32> {
    match u32::try_from(attempts) {
      Ok(attempts) if attempts >= 1 => Some(attempts),
      _ => {
        self.at(
          node,
          key,
          DiagnosticKind::InvalidValue {
            expected: "at least 1 attempt".into(),
            found: attempts.to_string(),
            allowed: Vec::new(),
            suggestion: None,
          },
        );
        None
      }
    }
  }

  // ---- steps ---------------------------------------------------------------------------------

  fn steps(&mut self, node: &Node, defaults: &StepDefaults) -> Vec<(Option<Step>, Needs)> {
    let Some(items) = self.expect_list(node, "steps") else {
      return Vec::new();
    };
    let mut steps = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (index, item) in items.iter().enumerate() {
      let key = index_key("steps", index);
      let step = self.step(item, &key, index, defaults, &mut first_seen);
      steps.push(step);
    }
    self.check_needs(&steps);
    steps
  }

  fn step(
    &mut self,
    node: &Node,
    key: &str,
    index: usize,
    defaults: &StepDefaults,
    first_seen: &mut HashMap<String, usize>,
  ) -> (Option<Step>, Needs) {
    let mut needs = Needs { names: Vec::new() };
    let Some(fields) = self.expect_map(node, key, "a step", STEP_KEYS, &["id", "action"]) else {
      return (None, needs);
    };
    let id = fields.get("id").and_then(|node| {
      let id_key = fields.key("id");
      let id = self.expect_string(node, &id_key)?;
      if !valid_id(&id) {
        self.at(
          node,
          &id_key,
          DiagnosticKind::InvalidName {
            name: id.clone(),
            what: "step id",
          },
        );
      }
      if let Some(first_line) = first_seen.get(&id) {
        self.at(
          node,
          &id_key,
          DiagnosticKind::DuplicateStep {
            id: id.clone(),
            first_line: *first_line,
          },
        );
      } else {
        first_seen.insert(id.clone(), node.span.line);
      }
      Some(id)
    });
    let name = fields
      .get("name")
      .and_then(|node| self.expect_string(node, &fields.key("name")));
    let call = self.call(&fields, Place::Step(index));
    if let Some(node) = fields.get("needs") {
      let needs_key = fields.key("needs");
      match &node.value {
        NodeValue::List(items) => {
          for (position, item) in items.iter().enumerate() {
            if let Some(name) = self.expect_string(item, &index_key(&needs_key, position)) {
              needs.names.push((name, item.span, position));
            }
          }
        }
        NodeValue::Scalar(..) if !node.is_null() => {
          if let Some(name) = self.expect_string(node, &needs_key) {
            needs.names.push((name, node.span, usize::MAX));
          }
        }
        _ => self.wrong_type(node, &needs_key, "a list of step ids"),
      }
    }
    let when = fields
      .get("when")
      .and_then(|node| self.expect_template(node, &fields.key("when"), Place::Step(index)));
    let timeout = fields
      .get("timeout")
      .and_then(|node| self.expect_duration(node, &fields.key("timeout")));
    let retry = match fields.get("retry") {
      Some(node) => self.retry(node, &fields.key("retry"), defaults.retry),
      None => defaults.retry,
    };
    let budget = fields
      .get("budget")
      .and_then(|node| self.expect_duration(node, &fields.key("budget")));
    let on_failure = fields.get("on_failure").and_then(|node| {
      let on_failure_key = fields.key("on_failure");
      let found = self.expect_string(node, &on_failure_key)?;
      Some(match found.as_str() {
        "abort" => OnFailure::Abort,
        "continue" => OnFailure::Continue,
        "rollback" => OnFailure::Rollback,
        _ => {
          let suggestion = did_you_mean(&found, ON_FAILURE.iter().copied());
          self.at(
            node,
            &on_failure_key,
            DiagnosticKind::InvalidValue {
              expected: "`abort`, `continue` or `rollback`".into(),
              found,
              allowed: Vec::new(),
              suggestion,
            },
          );
          return None;
        }
      })
    });
    let rollback = fields.get("rollback").and_then(|node| {
      let rollback_key = fields.key("rollback");
      let rollback = self.expect_map(
        node,
        &rollback_key,
        "a rollback",
        ROLLBACK_KEYS,
        &["action"],
      )?;
      self.call(&rollback, Place::Rollback(index))
    });
    let approval = fields.get("approval").and_then(|node| {
      let approval_key = fields.key("approval");
      if let NodeValue::Scalar(text, ScalarStyle::Plain) = &node.value {
        return match plain_bool(text) {
          Some(true) => {
            let prompt = format!("Run step `{}`?", id.clone().unwrap_or_default());
            Some(Approval {
              prompt: Template::literal(prompt),
              timeout: None,
              distinct_from_starter: false,
            })
          }
          Some(false) => None,
          None => {
            self.wrong_type(node, &approval_key, "`true` or a mapping with `prompt`");
            None
          }
        };
      }
      let approval = self.expect_map(node, &approval_key, "an approval", APPROVAL_KEYS, &[])?;
      let prompt = match approval.get("prompt") {
        Some(prompt_node) => {
          self.expect_template(prompt_node, &approval.key("prompt"), Place::Step(index))?
        }
        None => Template::literal(format!("Run step `{}`?", id.clone().unwrap_or_default())),
      };
      let timeout = approval.get("timeout").and_then(|node| {
        let key = approval.key("timeout");
        let timeout = self.expect_duration(node, &key)?;
        if timeout.is_zero() {
          let text = self.expect_string(node, &key).unwrap_or_default();
          let reason = "an approval timeout must be longer than zero".to_string();
          self.at(node, &key, DiagnosticKind::InvalidDuration { text, reason });
          return None;
        }
        Some(timeout)
      });
      let distinct_from_starter = approval
        .get("distinct_from_starter")
        .and_then(|node| self.expect_bool(node, &approval.key("distinct_from_starter")))
        .unwrap_or(false);
      Some(Approval {
        prompt,
        timeout,
        distinct_from_starter,
      })
    });
    let mut flag = |name: &str, default: bool| {
      fields
        .get(name)
        .and_then(|node| self.expect_bool(node, &fields.key(name)))
        .unwrap_or(default)
    };
    let recovery = flag("recovery", true);
    let always = flag("always", false);
    let accept_data_loss = flag("accept_data_loss", false);
    let fence = flag("fence", false);
    if fence {
      self.check_fence(&fields, call.as_ref(), on_failure, recovery);
    }
    let step = (|| {
      Some(Step {
        id: id?,
        name,
        call: call?,
        needs: needs.names.iter().map(|(name, ..)| name.clone()).collect(),
        when,
        timeout: timeout.unwrap_or(defaults.timeout),
        retry,
        budget,
        on_failure: on_failure.unwrap_or_default(),
        rollback,
        approval,
        recovery,
        always,
        accept_data_loss,
        fence,
        span: node.span,
      })
    })();
    (step, needs)
  }

  /// A `fence: true` step is best effort against a region that may be down: a mutating action
  /// with a `region` (where it is pending), `on_failure: continue` (it never stops the run) and
  /// `recovery: false` (it never counts toward the RTO).
  fn check_fence(
    &mut self,
    fields: &Fields<'_>,
    call: Option<&ActionCall>,
    on_failure: Option<OnFailure>,
    recovery: bool,
  ) {
    let Some(node) = fields.get("fence") else {
      return;
    };
    let key = fields.key("fence");
    let spec = call.and_then(|call| self.catalog.get(&call.action).copied());
    let reason = if spec.is_some_and(|spec| !spec.mutating) {
      Some("a fence must be a mutating action")
    } else if spec.is_some_and(|spec| spec.field("region").is_none()) {
      Some("a fence must be an action with a `region` (where it is pending)")
    } else if on_failure != Some(OnFailure::Continue) {
      Some("a fence needs `on_failure: continue` (it is best effort: it never stops the run)")
    } else if recovery {
      Some("a fence needs `recovery: false` (it never counts toward the RTO)")
    } else {
      None
    };
    if let Some(reason) = reason {
      self.at(node, &key, DiagnosticKind::BadFence { reason });
    }
  }

  /// `action` + `with` of a step or a rollback.
  fn call(&mut self, fields: &Fields<'_>, place: Place) -> Option<ActionCall> {
    let action_node = fields.get("action")?;
    let action_key = fields.key("action");
    let action = self.expect_string(action_node, &action_key)?;
    let spec = self.catalog.get(&action).copied();
    if spec.is_none() {
      let suggestion = did_you_mean(&action, self.catalog.names());
      self.at(
        action_node,
        &action_key,
        DiagnosticKind::UnknownAction {
          name: action.clone(),
          suggestion,
        },
      );
    }
    let with_key = fields.key("with");
    let mut with = std::collections::BTreeMap::new();
    match fields.get("with") {
      Some(node) if !node.is_null() => {
        if let Some(entries) = node.as_map() {
          for entry in entries {
            let key = join_key(&with_key, &entry.key);
            if let Some(arg) = self.arg(&entry.value, &key, place) {
              with.insert(entry.key.clone(), arg);
            }
          }
          if let Some(spec) = &spec {
            self.check_fields(spec.name, spec.fields, entries, node, &with_key);
          }
        } else {
          self.wrong_type(node, &with_key, "a mapping");
        }
      }
      _ => {
        if let Some(spec) = &spec {
          for field in spec.fields.iter().filter(|field| field.required) {
            self.at(
              action_node,
              &with_key,
              DiagnosticKind::MissingField {
                action: action.clone(),
                field: field.name.into(),
              },
            );
          }
        }
      }
    }
    Some(ActionCall {
      action,
      action_span: action_node.span,
      with,
    })
  }

  fn arg(&mut self, node: &Node, key: &str, place: Place) -> Option<Arg> {
    Some(match &node.value {
      NodeValue::Scalar(..) if node.is_null() => Arg::Template(Template::literal(""), node.span),
      NodeValue::Scalar(..) => Arg::Template(self.expect_template(node, key, place)?, node.span),
      NodeValue::List(items) => {
        let mut args = Vec::new();
        for (index, item) in items.iter().enumerate() {
          args.push(self.arg(item, &index_key(key, index), place)?);
        }
        Arg::List(args, node.span)
      }
      NodeValue::Map(entries) => {
        let mut args = std::collections::BTreeMap::new();
        for entry in entries {
          args.insert(
            entry.key.clone(),
            self.arg(&entry.value, &join_key(key, &entry.key), place)?,
          );
        }
        Arg::Map(args, node.span)
      }
    })
  }

  /// Check a `with` mapping (or one object of an `Objects` field) against the action's fields.
  fn check_fields(
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
          self.report(
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
        self.at(
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
      checker.at(
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
              self.at(
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
            if let Err(reason) = super::size::parse_byte_size(text) {
              mismatch(
                self,
                expected_text(spec.kind),
                format!("`{text}` ({reason})"),
              );
            }
          }
          FieldKind::NotificationUrl => {
            if let Err(shown) = super::url::check_notification_url(text) {
              mismatch(self, expected_text(spec.kind), format!("`{shown}`"));
            }
          }
          FieldKind::Enum(allowed) if !allowed.contains(&text) => {
            let suggestion = did_you_mean(text, allowed.iter().copied());
            self.at(
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
              self.at(
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
              self.at(
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
              None => self.at(
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

  // ---- cross-references ----------------------------------------------------------------------

  /// Unknown `needs` and cycles.
  fn check_needs(&mut self, steps: &[(Option<Step>, Needs)]) {
    let ids = step_ids(steps);
    // edges[i] = (target step, span of the needs entry, its position)
    let mut edges: Vec<Vec<(usize, Span, usize)>> = vec![Vec::new(); steps.len()];
    for (index, (_, needs)) in steps.iter().enumerate() {
      for (name, span, position) in &needs.names {
        let key = needs_key(index, *position);
        match ids.get(name.as_str()) {
          Some(target) => edges[index].push((*target, *span, *position)),
          None => {
            let suggestion = did_you_mean(name, ids.keys().copied());
            self.report(
              *span,
              name.chars().count(),
              key,
              DiagnosticKind::UnknownNeed {
                id: name.clone(),
                suggestion,
              },
            );
          }
        }
      }
    }
    let name_of = |index: usize| -> String {
      steps
        .get(index)
        .and_then(|(step, _)| step.as_ref().map(|step| step.id.clone()))
        .unwrap_or_else(|| {
          ids
            .iter()
            .find(|(_, at)| **at == index)
            .map(|(id, _)| id.to_string())
            .unwrap_or_default()
        })
    };
    // Iterative depth-first search: a chain of thousands of steps must not overflow the stack.
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let mut colour = vec![WHITE; steps.len()];
    for start in 0..steps.len() {
      if colour[start] != WHITE {
        continue;
      }
      let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
      colour[start] = GREY;
      while let Some((node, next)) = stack.last().copied() {
        if let Some((target, span, position)) = edges[node].get(next).copied() {
          if let Some(top) = stack.last_mut() {
            top.1 += 1;
          }
          match colour[target] {
            WHITE => {
              colour[target] = GREY;
              stack.push((target, 0));
            }
            GREY => {
              let from = stack.iter().position(|(at, _)| *at == target).unwrap_or(0);
              let mut cycle: Vec<String> =
                stack[from..].iter().map(|(at, _)| name_of(*at)).collect();
              cycle.push(name_of(target));
              let width = name_of(target).chars().count();
              self.report(
                span,
                width,
                needs_key(node, position),
                DiagnosticKind::NeedsCycle { cycle },
              );
            }
            _ => {}
          }
        } else {
          colour[node] = BLACK;
          stack.pop();
        }
      }
    }
  }

  fn check_uses(
    &mut self,
    params: &[Param],
    vars: &[(String, Template)],
    objectives: &Objectives,
    steps: &[(Option<Step>, Needs)],
  ) {
    let ids = step_ids(steps);
    let mut ancestors: HashMap<usize, HashSet<usize>> = HashMap::new();
    let uses = std::mem::take(&mut self.uses);
    for site in uses {
      let reference = &site.reference;
      let path = &reference.path;
      let shape = |shape: &'static str| DiagnosticKind::BadReference {
        reference: reference.to_string(),
        shape,
      };
      let kind = match reference.namespace {
        Namespace::Params if path.len() != 1 => Some(shape("params.NAME")),
        Namespace::Params => {
          let name = &path[0];
          (!params.iter().any(|param| &param.name == name)).then(|| DiagnosticKind::UnknownParam {
            name: name.clone(),
            suggestion: did_you_mean(name, params.iter().map(|param| param.name.as_str())),
          })
        }
        Namespace::Vars if path.len() != 1 => Some(shape("vars.NAME")),
        Namespace::Vars => {
          let name = &path[0];
          let visible = match site.place {
            Place::Var(index) => &vars[..index.min(vars.len())],
            _ => vars,
          };
          (!visible.iter().any(|(var, _)| var == name)).then(|| DiagnosticKind::UnknownVar {
            name: name.clone(),
            suggestion: did_you_mean(name, visible.iter().map(|(var, _)| var.as_str())),
            later: vars.iter().any(|(var, _)| var == name),
          })
        }
        Namespace::Objectives if path.len() != 1 => Some(shape("objectives.rto")),
        Namespace::Objectives => match path[0].as_str() {
          "rto" if objectives.rto.is_none() => {
            Some(DiagnosticKind::ObjectiveNotSet { name: "rto".into() })
          }
          "rpo" if objectives.rpo.is_none() => {
            Some(DiagnosticKind::ObjectiveNotSet { name: "rpo".into() })
          }
          "rto" | "rpo" => None,
          name => Some(DiagnosticKind::UnknownObjective { name: name.into() }),
        },
        Namespace::Steps if path.len() != 3 || path[1] != "outputs" => {
          Some(shape("steps.ID.outputs.KEY"))
        }
        Namespace::Steps => match site.place {
          Place::Var(_) => Some(DiagnosticKind::NotAvailableHere {
            reference: reference.to_string(),
            place: "vars",
          }),
          Place::Step(index) | Place::Rollback(index) => {
            let (id, key) = (&path[0], &path[2]);
            match ids.get(id.as_str()) {
              None => Some(DiagnosticKind::UnknownStep {
                id: id.clone(),
                suggestion: did_you_mean(id, ids.keys().copied()),
              }),
              Some(&target) => {
                let own = matches!(site.place, Place::Rollback(_)) && target == index;
                let reachable = own
                  || ancestors
                    .entry(index)
                    .or_insert_with(|| ancestors_of(index, steps, &ids))
                    .contains(&target);
                let action = steps
                  .get(target)
                  .and_then(|(step, _)| step.as_ref())
                  .map(|step| step.call.action.clone());
                let spec: Option<ActionSpec> = action
                  .as_deref()
                  .and_then(|action| self.catalog.get(action).copied());
                let step_id = steps
                  .get(index)
                  .and_then(|(step, _)| step.as_ref())
                  .map(|step| step.id.clone())
                  .unwrap_or_default();
                if !reachable {
                  Some(DiagnosticKind::NotANeed {
                    id: id.clone(),
                    step: step_id,
                  })
                } else {
                  match spec {
                    Some(spec) if !spec.outputs.contains(&key.as_str()) => {
                      Some(DiagnosticKind::UnknownOutput {
                        step: id.clone(),
                        action: spec.name.into(),
                        key: key.clone(),
                        outputs: spec.outputs.to_vec(),
                        suggestion: did_you_mean(key, spec.outputs.iter().copied()),
                      })
                    }
                    _ => None,
                  }
                }
              }
            }
          }
        },
        Namespace::Env if path.len() != 1 => Some(shape("env.NAME")),
        Namespace::Secrets if path.len() != 1 => Some(shape("secrets.NAME")),
        Namespace::Env | Namespace::Secrets => None,
        Namespace::Run if path.len() == 1 && RUN_FIELDS.contains(&path[0].as_str()) => None,
        Namespace::Run => {
          let name = path.join(".");
          Some(DiagnosticKind::UnknownRunField {
            suggestion: did_you_mean(&name, RUN_FIELDS.iter().copied()),
            name,
          })
        }
      };
      if let Some(kind) = kind {
        self.report(site.span, site.width, site.key, kind);
      }
    }
  }
}

fn needs_key(index: usize, position: usize) -> String {
  if position == usize::MAX {
    format!("steps[{index}].needs")
  } else {
    format!("steps[{index}].needs[{position}]")
  }
}

/// Step id → index of its first declaration (from the parsed steps, or their needs owners).
impl Checker<'_> {
  /// `objectives.recovered_when`: a read-only step of this runbook (its action passes once the
  /// application is recovered) and the bound of the wait for it, at most
  /// [`MAX_RECOVERY_WITHIN`]. Checked once every step is known.
  fn recovered_when(
    &mut self,
    node: &Node,
    steps: &[(Option<Step>, Needs)],
  ) -> Option<RecoveredWhen> {
    const KEY: &str = "objectives.recovered_when";
    let fields = self.expect_map(
      node,
      KEY,
      "objectives.recovered_when",
      RECOVERED_WHEN_KEYS,
      &["step"],
    )?;
    let within = match fields.get("within") {
      None => Some(DEFAULT_RECOVERY_WITHIN),
      Some(within_node) => {
        let key = fields.key("within");
        let within = self.expect_duration(within_node, &key)?;
        if within > MAX_RECOVERY_WITHIN {
          self.at(
            within_node,
            &key,
            DiagnosticKind::RecoveryBoundTooLong {
              within,
              max: MAX_RECOVERY_WITHIN,
            },
          );
          None
        } else {
          Some(within)
        }
      }
    };
    let step_node = fields.get("step")?;
    let step_key = fields.key("step");
    let id = self.expect_string(step_node, &step_key)?;
    let ids = step_ids(steps);
    let Some(&index) = ids.get(id.as_str()) else {
      // A step that failed its own checks has no id here, and was reported already.
      let suggestion = did_you_mean(&id, ids.keys().copied());
      self.at(
        step_node,
        &step_key,
        DiagnosticKind::RecoveryStepUnknown { id, suggestion },
      );
      return None;
    };
    let action = steps[index]
      .0
      .as_ref()
      .map(|step| step.call.action.clone())?;
    if self.catalog.get(&action).is_some_and(|spec| spec.mutating) {
      self.at(
        step_node,
        &step_key,
        DiagnosticKind::RecoveryStepMutates { id, action },
      );
      return None;
    }
    Some(RecoveredWhen {
      condition: RecoveryCondition::Step { id },
      within: within?,
      span: node.span,
    })
  }
}

fn step_ids(steps: &[(Option<Step>, Needs)]) -> HashMap<&str, usize> {
  let mut ids = HashMap::new();
  for (index, (step, _)) in steps.iter().enumerate() {
    if let Some(step) = step {
      ids.entry(step.id.as_str()).or_insert(index);
    }
  }
  ids
}

/// Every step `index` depends on, directly or not (cycles are tolerated).
fn ancestors_of(
  index: usize,
  steps: &[(Option<Step>, Needs)],
  ids: &HashMap<&str, usize>,
) -> HashSet<usize> {
  let mut seen = HashSet::new();
  let mut queue = vec![index];
  while let Some(at) = queue.pop() {
    let Some((_, needs)) = steps.get(at) else {
      continue;
    };
    for (name, ..) in &needs.names {
      if let Some(&target) = ids.get(name.as_str()) {
        if seen.insert(target) {
          queue.push(target);
        }
      }
    }
  }
  seen
}

fn expected_text(kind: FieldKind) -> &'static str {
  match kind {
    FieldKind::String => "a string",
    FieldKind::Int => "an integer",
    FieldKind::Bool => "`true` or `false`",
    FieldKind::Duration => "a duration",
    FieldKind::ByteSize => "a byte size such as `512KiB` or `4MiB`",
    FieldKind::NotificationUrl => super::url::NOTIFICATION_URL,
    FieldKind::Enum(_) => "one of its allowed values",
    FieldKind::StringList => "a list of strings",
    FieldKind::StringMap => "a mapping of strings",
    FieldKind::Objects(_) => "a list of mappings",
    FieldKind::Any => "a value",
  }
}

/// A parameter value from its text (YAML scalar or `-p key=value`), if it has the right type.
pub(crate) fn parse_value(text: &str, kind: ParamType) -> Option<Value> {
  match kind {
    ParamType::String => Some(Value::String(text.to_string())),
    ParamType::Int => text.trim().parse().ok().map(Value::Int),
    ParamType::Bool => match text.trim() {
      "true" => Some(Value::Bool(true)),
      "false" => Some(Value::Bool(false)),
      _ => None,
    },
    ParamType::Duration => parse_duration(text)
      .ok()
      .map(|_| Value::String(text.trim().to_string())),
  }
}

#[cfg(test)]
mod tests {
  use std::path::PathBuf;

  use super::*;
  use crate::runbook::test_catalog::CATALOG;

  fn check(yaml: &str) -> Result<Runbook, Diagnostics> {
    load(Path::new("rb.yaml"), yaml.as_bytes(), &CATALOG)
  }

  fn kinds(yaml: &str) -> Vec<DiagnosticKind> {
    match check(yaml) {
      Ok(_) => Vec::new(),
      Err(diagnostics) => diagnostics
        .into_iter()
        .map(|diagnostic| diagnostic.kind)
        .collect(),
    }
  }

  const HEADER: &str = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: t }\n";

  /// The positions of the diagnostics of `yaml`.
  fn spans(yaml: &[u8]) -> Vec<(usize, usize)> {
    match load(Path::new("rb.yaml"), yaml, &CATALOG) {
      Ok(_) => Vec::new(),
      Err(diagnostics) => diagnostics
        .iter()
        .map(|diagnostic| (diagnostic.span.line, diagnostic.span.column))
        .collect(),
    }
  }

  // Found by the reliability suite's fuzzer (tests/reliability/fuzz.rs).
  #[test]
  fn a_byte_order_mark_is_not_part_of_the_first_key() {
    let yaml = format!("\u{feff}{HEADER}steps: []\n");
    check(&yaml).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
  }

  #[test]
  fn a_nul_byte_is_an_error_not_the_end_of_the_file() {
    let yaml = format!("{HEADER}steps: []\n\0garbage: [\n");
    assert_eq!(spans(yaml.as_bytes()), vec![(5, 1)]);
    assert!(
      matches!(&kinds(&yaml)[0], DiagnosticKind::Syntax { message } if message.contains("U+0000"))
    );
  }

  #[test]
  fn an_error_at_the_end_of_the_input_is_placed_on_its_last_line() {
    // The scanner puts it on line 5, after the last line.
    let yaml = format!("{HEADER}params:\n  p: {{ type: string, allowed: ");
    assert_eq!(spans(yaml.as_bytes()), vec![(5, 31)]);
    let yaml = format!("{HEADER}steps: [\n");
    let found = spans(yaml.as_bytes());
    assert!(found.iter().all(|&(line, _)| line <= 5), "{found:?}");
  }

  #[test]
  fn an_empty_file_is_reported_at_its_start() {
    assert_eq!(spans(b""), vec![(1, 1)]);
    assert_eq!(spans(b"\n\n"), vec![(1, 1)]);
  }

  fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new("tests/fixtures/runbooks").join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
      .unwrap()
      .map(|entry| entry.unwrap().path())
      .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
      .collect();
    paths.sort();
    paths
  }

  /// Each `invalid/NAME.yaml` renders exactly `NAME.expected`. `DRCTL_BLESS=1` rewrites them.
  #[test]
  fn invalid_fixtures_render_exactly() {
    let paths = fixtures("invalid");
    assert!(paths.len() >= 15, "only {} invalid fixtures", paths.len());
    let mut mismatches = Vec::new();
    for path in paths {
      // The real action table: the fixtures check `with` fields of every action, and
      // `drctl validate` (tests/validate.rs) renders the same files with it.
      let rendered = match load_file(&path, &crate::actions::Catalog) {
        Ok(_) => format!("{} unexpectedly loaded\n", path.display()),
        Err(diagnostics) => format!("{diagnostics}\n"),
      };
      let expected_path = path.with_extension("expected");
      if std::env::var_os("DRCTL_BLESS").is_some() {
        std::fs::write(&expected_path, &rendered).unwrap();
        continue;
      }
      let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
      if rendered != expected {
        mismatches.push(format!(
          "{}:\n--- expected\n{expected}--- got\n{rendered}",
          path.display()
        ));
      }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
  }

  #[test]
  fn valid_fixtures_load() {
    let paths = fixtures("valid");
    assert!(!paths.is_empty());
    for path in paths {
      if let Err(diagnostics) = load_file(&path, &CATALOG) {
        panic!("{diagnostics}");
      }
    }
  }

  #[test]
  fn builds_the_model() {
    let yaml = format!(
      "{HEADER}params:\n  region: {{ type: string, required: true, allowed: [a, b] }}\n  n: {{ type: int, default: 3 }}\n\
       vars:\n  hc: hc-${{{{ params.region }}}}\nobjectives: {{ rto: 15m }}\n\
       defaults: {{ timeout: 1m, retry: {{ attempts: 2 }} }}\n\
       steps:\n  - id: a\n    action: wait.sleep\n    with: {{ duration: 1s }}\n    retry: 5\n\
       \x20 - id: b\n    action: ecs.scale_service\n    needs: [a]\n    approval: true\n    recovery: false\n\
       \x20   with: {{ region: x, cluster: c, service: s, desired_count: \"${{{{ params.n }}}}\" }}\n\
       \x20   rollback: {{ action: ecs.scale_service, with: {{ region: x, cluster: c, service: s, desired_count: 0 }} }}\n"
    );
    let runbook = check(&yaml).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    assert_eq!(runbook.name, "t");
    assert_eq!(
      runbook.params[0].allowed,
      [Value::String("a".into()), Value::String("b".into())]
    );
    assert_eq!(runbook.params[1].default, Some(Value::Int(3)));
    assert_eq!(runbook.objectives.rto, Some(Duration::from_secs(900)));
    let (a, b) = (&runbook.steps[0], &runbook.steps[1]);
    assert_eq!(a.timeout, Duration::from_secs(60));
    assert_eq!(a.retry.attempts, 5);
    assert_eq!(b.retry.attempts, 2);
    assert_eq!(b.retry.backoff, Duration::from_secs(2));
    assert_eq!(b.needs, ["a"]);
    assert!(!b.recovery);
    assert_eq!(
      b.approval.as_ref().unwrap().prompt.source(),
      "Run step `b`?"
    );
    assert!(b.rollback.is_some());
    assert!(
      matches!(b.call.with.get("desired_count"), Some(Arg::Template(template, _)) if !template.is_literal())
    );
    assert_eq!(
      b.call.action_span,
      Span {
        line: 17,
        column: 13
      }
    );
  }

  #[test]
  fn reports_every_error_at_once() {
    let yaml = format!(
      "{HEADER}steps:\n  - id: a\n    action: wait.slep\n    timout: 5m\n  - id: b\n    action: wait.sleep\n    with: {{ duration: soon, extra: 1 }}\n    on_failure: stop\n"
    );
    let kinds = kinds(&yaml);
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    assert!(
      matches!(&kinds[0], DiagnosticKind::UnknownAction { suggestion: Some(s), .. } if s == "wait.sleep")
    );
    assert!(
      matches!(&kinds[1], DiagnosticKind::UnknownKey { suggestion: Some(s), .. } if s == "timeout")
    );
    assert!(matches!(&kinds[2], DiagnosticKind::InvalidDuration { .. }));
    assert!(matches!(&kinds[3], DiagnosticKind::UnknownField { .. }));
    assert!(matches!(&kinds[4], DiagnosticKind::InvalidValue { .. }));
  }

  #[test]
  fn checks_references() {
    let yaml = format!(
      "{HEADER}params:\n  p: {{ type: string }}\nvars:\n  a: \"${{{{ vars.b }}}}\"\n  b: x\n  c: \"${{{{ steps.s1.outputs.lag_seconds }}}}\"\n\
       steps:\n  - id: s1\n    action: rds.promote_replica\n    with: {{ region: \"${{{{ params.q }}}}\", instance: i }}\n\
       \x20   rollback: {{ action: notify.slack, with: {{ webhook: w, text: \"${{{{ steps.s1.outputs.endpoint }}}}\" }} }}\n\
       \x20 - id: s2\n    action: notify.slack\n    needs: [s1]\n    with: {{ webhook: \"${{{{ secrets.HOOK }}}}\", text: \"${{{{ steps.s1.outputs.lag }}}} ${{{{ run.elapsed }}}} ${{{{ run.foo }}}} ${{{{ objectives.rto }}}}\" }}\n\
       \x20 - id: s3\n    action: notify.slack\n    with: {{ webhook: w, text: \"${{{{ steps.s1.outputs.endpoint }}}} ${{{{ steps.nope.outputs.x }}}} ${{{{ objectives.mttr }}}}\" }}\n"
    );
    let kinds = kinds(&yaml);
    let names: Vec<String> = kinds.iter().map(ToString::to_string).collect();
    assert_eq!(
      names,
      [
        "unknown variable `vars.b`",
        "`steps.s1.outputs.lag_seconds` is not available in vars",
        "unknown parameter `params.q`",
        "step `s1` has no output `lag`",
        "unknown run field `run.foo`",
        "objective `objectives.rto` is not set",
        "step `s3` uses outputs of `s1`, which it does not depend on",
        "reference to unknown step `nope`",
        "unknown objective `objectives.mttr`",
      ]
    );
  }

  #[test]
  fn reference_positions_point_into_the_string() {
    let yaml = format!("{HEADER}steps:\n  - id: a\n    action: wait.sleep\n    with: {{ duration: \"${{{{ params.x }}}}\" }}\n");
    let diagnostics = check(&yaml).unwrap_err();
    let diagnostic = diagnostics.iter().next().unwrap();
    assert_eq!(
      diagnostic.span,
      Span {
        line: 7,
        column: 28
      }
    );
    assert_eq!(diagnostic.width, 8);
    assert_eq!(diagnostic.key, "steps[0].with.duration");
  }

  #[test]
  fn long_needs_chains_do_not_overflow() {
    let mut yaml =
      format!("{HEADER}steps:\n  - {{ id: s0, action: wait.sleep, with: {{ duration: 1s }} }}\n");
    for index in 1..20_000 {
      yaml.push_str(&format!(
        "  - {{ id: s{index}, action: wait.sleep, needs: [s{}], with: {{ duration: 1s }} }}\n",
        index - 1
      ));
    }
    yaml = yaml.replace(
      "id: s0, action: wait.sleep,",
      "id: s0, action: wait.sleep, needs: [s19999],",
    );
    let kinds = kinds(&yaml);
    assert_eq!(kinds.len(), 1);
    assert!(matches!(&kinds[0], DiagnosticKind::NeedsCycle { cycle } if cycle.len() == 20_001));
  }

  #[test]
  fn garbage_never_panics() {
    let inputs = [
      "",
      "---",
      "~",
      "[]",
      "- a",
      "a",
      ":",
      "{",
      "steps:",
      "apiVersion: [",
      "\t",
      "? [a]\n: b",
      "apiVersion: drctl/v1\nkind: Runbook\nmetadata: x\nsteps: 3",
      "steps: [{}]",
      "steps: [[]]",
      "steps:\n  - id: x\n    action: wait.sleep\n    with: [1]",
      "params: {a: {type: int, default: []}}",
      "steps: [{id: a, action: notify.slack, with: {text: '${{', webhook: '${{ ( }}'}}]",
    ];
    for input in inputs {
      let _ = check(input);
      let _ = check(&format!("{HEADER}{input}"));
    }
  }
}

#[cfg(test)]
mod fence_tests {
  use std::path::Path;

  use crate::runbook::{load, test_catalog::CATALOG};

  const HEADER: &str = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: t }\n";

  /// `fence: true` is only for a best-effort mutating step with a region: each way to get it
  /// wrong is an error at the `fence` key; a right one is kept in the model, as is the
  /// runbook's `refuse_pending_fences`.
  #[test]
  fn fence_steps_must_be_best_effort_regional_effects() {
    let step = |extra: &str| {
      format!(
        "{HEADER}refuse_pending_fences: true\nsteps:\n  - id: fence-db\n    action: \
         ecs.scale_service\n    with: {{ region: r, cluster: c, service: s, desired_count: 0 \
         }}\n    fence: true\n{extra}"
      )
    };
    let good = step("    on_failure: continue\n    recovery: false\n");
    let runbook = load(Path::new("t.yaml"), good.as_bytes(), &CATALOG).unwrap();
    assert!(runbook.steps[0].fence);
    assert!(runbook.refuse_pending_fences);
    for (extra, reason) in [
      ("    recovery: false\n", "needs `on_failure: continue`"),
      ("    on_failure: continue\n", "needs `recovery: false`"),
    ] {
      let text = step(extra);
      let err = load(Path::new("t.yaml"), text.as_bytes(), &CATALOG)
        .unwrap_err()
        .to_string();
      assert!(
        err.contains(&format!("invalid fence: a fence {reason}")),
        "{err}"
      );
      assert!(err.contains("t.yaml:9:"), "{err}");
    }
    let read_only = format!(
      "{HEADER}steps:\n  - id: f\n    action: wait.sleep\n    with: {{ duration: 1s }}\n    \
       fence: true\n    on_failure: continue\n    recovery: false\n"
    );
    let err = load(Path::new("t.yaml"), read_only.as_bytes(), &CATALOG)
      .unwrap_err()
      .to_string();
    assert!(err.contains("a fence must be a mutating action"), "{err}");
  }
}
