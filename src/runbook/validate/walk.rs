//! The runbook walk: each top-level section, parameter and step read into the model, top to
//! bottom, with the generic readers. `with` fields, the step graph and template references are
//! checked by their own files once the walk has what they need.

use std::collections::HashMap;

use super::{graph::Needs, reader::Fields, references::Place, Checker};
use crate::runbook::{
  diagnostic::DiagnosticKind,
  duration::parse_duration,
  model::*,
  parse::{index_key, join_key, plain_bool, Node, NodeValue, ScalarStyle},
  suggest::did_you_mean,
  template::Template,
};

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
const RECOVERED_WHEN_KEYS: &[&str] = &["step", "alarms", "region", "within"];
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

/// A runbook, drill or step id, or a lock group: lower-case letters, digits and `-`.
pub(crate) fn valid_id(id: &str) -> bool {
  !id.is_empty()
    && id
      .bytes()
      .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A parameter or variable name: letters, digits, `_` and `-`.
fn valid_name(name: &str) -> bool {
  !name.is_empty()
    && name
      .bytes()
      .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Checker<'_> {
  // ---- the runbook ---------------------------------------------------------------------------

  pub(super) fn runbook(&mut self, root: &Node) -> Option<Runbook> {
    let top = self.reader.expect_map(
      root,
      "",
      "the runbook",
      TOP_KEYS,
      &["apiVersion", "kind", "metadata", "steps"],
    )?;
    if let Some(node) = top.get("apiVersion") {
      self.reader.expect_api_version(node);
    }
    if let Some(node) = top.get("kind") {
      if let Some(found) = self.reader.expect_string(node, "kind") {
        if found != "Runbook" {
          self
            .reader
            .at(node, "kind", DiagnosticKind::WrongKind { found });
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
      if let Some(fields) =
        self
          .reader
          .expect_map(node, "objectives", "objectives", OBJECTIVE_KEYS, &[])
      {
        objectives.rto = fields
          .get("rto")
          .and_then(|node| self.reader.expect_duration(node, "objectives.rto"));
        objectives.rpo = fields
          .get("rpo")
          .and_then(|node| self.reader.expect_duration(node, "objectives.rpo"));
      }
    }
    let mut defaults = StepDefaults::default();
    if let Some(node) = top.get("defaults").filter(|node| !node.is_null()) {
      if let Some(fields) = self
        .reader
        .expect_map(node, "defaults", "defaults", DEFAULTS_KEYS, &[])
      {
        if let Some(timeout) = fields
          .get("timeout")
          .and_then(|node| self.reader.expect_duration(node, "defaults.timeout"))
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
      .and_then(|node| self.reader.expect_bool(node, "refuse_pending_fences"))
      .unwrap_or(false);
    Some(Runbook {
      path: self.reader.path.to_path_buf(),
      source: self.reader.text.to_string(),
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
    let Some(fields) =
      self
        .reader
        .expect_map(node, "metadata", "metadata", METADATA_KEYS, &["name"])
    else {
      return (None, None, None);
    };
    let name = fields.get("name").and_then(|node| {
      let name = self.reader.expect_string(node, "metadata.name")?;
      if !valid_id(&name) {
        self.reader.at(
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
      .and_then(|node| self.reader.expect_string(node, "metadata.description"));
    let lock_group = match fields.get("lock_group") {
      None => Some(DEFAULT_LOCK_GROUP.to_string()),
      Some(node) => self.lock_group(node),
    };
    (name, description, lock_group)
  }

  /// `metadata.lock_group`: it names the lock file (or object) in the state, so it is an id of
  /// at most [`MAX_LOCK_GROUP_LEN`] characters.
  fn lock_group(&mut self, node: &Node) -> Option<String> {
    let group = self.reader.expect_string(node, "metadata.lock_group")?;
    if !valid_id(&group) || group.len() > MAX_LOCK_GROUP_LEN {
      self.reader.at(
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
      self.reader.wrong_type(node, "params", "a mapping");
      return Vec::new();
    };
    let mut params = Vec::new();
    for entry in entries {
      let key = join_key("params", &entry.key);
      if !valid_name(&entry.key) {
        self.reader.report(
          entry.key_span,
          entry.key_width(),
          key.clone(),
          DiagnosticKind::InvalidName {
            name: entry.key.clone(),
            what: "parameter name",
          },
        );
      }
      let Some(fields) =
        self
          .reader
          .expect_map(&entry.value, &key, "a parameter", PARAM_KEYS, &["type"])
      else {
        continue;
      };
      let kind = fields.get("type").and_then(|node| {
        let found = self.reader.expect_string(node, &fields.key("type"))?;
        let kind = match found.as_str() {
          "string" => ParamType::String,
          "int" => ParamType::Int,
          "bool" => ParamType::Bool,
          "duration" => ParamType::Duration,
          _ => {
            let suggestion = did_you_mean(&found, PARAM_TYPES.iter().copied());
            self.reader.at(
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
        .and_then(|node| self.reader.expect_bool(node, &fields.key("required")))
        .unwrap_or(false);
      let description = fields
        .get("description")
        .and_then(|node| self.reader.expect_string(node, &fields.key("description")));
      let secret = fields
        .get("secret")
        .and_then(|node| self.reader.expect_bool(node, &fields.key("secret")))
        .unwrap_or(false);
      let Some(kind) = kind else { continue };
      let default = fields.get("default").and_then(|node| {
        self.param_value(node, &fields.key("default"), &entry.key, kind, "default")
      });
      let mut allowed = Vec::new();
      if let Some(node) = fields.get("allowed") {
        let allowed_key = fields.key("allowed");
        if let Some(items) = self.reader.expect_list(node, &allowed_key) {
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
          self.reader.at(
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
        self.reader.at(
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
      self.reader.at(
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
      self.reader.wrong_type(node, "vars", "a mapping");
      return Vec::new();
    };
    let mut vars = Vec::new();
    for entry in entries {
      let key = join_key("vars", &entry.key);
      if !valid_name(&entry.key) {
        self.reader.report(
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
      self
        .reader
        .wrong_type(node, key, "a mapping or a number of attempts");
      return policy;
    }
    let Some(fields) = self.reader.expect_map(node, key, "retry", RETRY_KEYS, &[]) else {
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
        _ => self
          .reader
          .wrong_type(node, &attempts_key, "a number of attempts"),
      }
    }
    if let Some(backoff) = fields
      .get("backoff")
      .and_then(|node| self.reader.expect_duration(node, &fields.key("backoff")))
    {
      policy.backoff = backoff;
    }
    if let Some(max) = fields.get("max_backoff").and_then(|node| {
      self
        .reader
        .expect_duration(node, &fields.key("max_backoff"))
    }) {
      policy.max_backoff = max;
    }
    policy
  }

  fn attempts(&mut self, node: &Node, key: &str, attempts: i64) -> Option<u32> {
    match u32::try_from(attempts) {
      Ok(attempts) if attempts >= 1 => Some(attempts),
      _ => {
        self.reader.at(
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
    let Some(items) = self.reader.expect_list(node, "steps") else {
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
    let Some(fields) = self
      .reader
      .expect_map(node, key, "a step", STEP_KEYS, &["id", "action"])
    else {
      return (None, needs);
    };
    let id = fields.get("id").and_then(|node| {
      let id_key = fields.key("id");
      let id = self.reader.expect_string(node, &id_key)?;
      if !valid_id(&id) {
        self.reader.at(
          node,
          &id_key,
          DiagnosticKind::InvalidName {
            name: id.clone(),
            what: "step id",
          },
        );
      }
      if let Some(first_line) = first_seen.get(&id) {
        self.reader.at(
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
      .and_then(|node| self.reader.expect_string(node, &fields.key("name")));
    let call = self.call(&fields, Place::Step(index));
    if let Some(node) = fields.get("needs") {
      self.needs(node, &fields.key("needs"), &mut needs);
    }
    let when = fields
      .get("when")
      .and_then(|node| self.expect_template(node, &fields.key("when"), Place::Step(index)));
    let timeout = fields
      .get("timeout")
      .and_then(|node| self.reader.expect_duration(node, &fields.key("timeout")));
    let retry = match fields.get("retry") {
      Some(node) => self.retry(node, &fields.key("retry"), defaults.retry),
      None => defaults.retry,
    };
    let budget = fields
      .get("budget")
      .and_then(|node| self.reader.expect_duration(node, &fields.key("budget")));
    let on_failure = fields.get("on_failure").and_then(|node| {
      let on_failure_key = fields.key("on_failure");
      let found = self.reader.expect_string(node, &on_failure_key)?;
      Some(match found.as_str() {
        "abort" => OnFailure::Abort,
        "continue" => OnFailure::Continue,
        "rollback" => OnFailure::Rollback,
        _ => {
          let suggestion = did_you_mean(&found, ON_FAILURE.iter().copied());
          self.reader.at(
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
      let rollback = self.reader.expect_map(
        node,
        &rollback_key,
        "a rollback",
        ROLLBACK_KEYS,
        &["action"],
      )?;
      self.call(&rollback, Place::Rollback(index))
    });
    let approval = fields
      .get("approval")
      .and_then(|node| self.approval(node, &fields.key("approval"), index, id.as_deref()));
    let mut flag = |name: &str, default: bool| {
      fields
        .get(name)
        .and_then(|node| self.reader.expect_bool(node, &fields.key(name)))
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

  /// A step's `needs`: a list of step ids, or one id; checked by `graph` once every id is known.
  fn needs(&mut self, node: &Node, needs_key: &str, needs: &mut Needs) {
    match &node.value {
      NodeValue::List(items) => {
        for (position, item) in items.iter().enumerate() {
          if let Some(name) = self
            .reader
            .expect_string(item, &index_key(needs_key, position))
          {
            needs.names.push((name, item.span, position));
          }
        }
      }
      NodeValue::Scalar(..) if !node.is_null() => {
        if let Some(name) = self.reader.expect_string(node, needs_key) {
          needs.names.push((name, node.span, usize::MAX));
        }
      }
      _ => self
        .reader
        .wrong_type(node, needs_key, "a list of step ids"),
    }
  }

  /// A step's `approval`: `true` (the default prompt) or a mapping with `prompt`, `timeout` and
  /// `distinct_from_starter`; `None` when there is none (or it is invalid, reported).
  fn approval(
    &mut self,
    node: &Node,
    approval_key: &str,
    index: usize,
    id: Option<&str>,
  ) -> Option<Approval> {
    if let NodeValue::Scalar(text, ScalarStyle::Plain) = &node.value {
      return match plain_bool(text) {
        Some(true) => {
          let prompt = format!("Run step `{}`?", id.unwrap_or_default());
          Some(Approval {
            prompt: Template::literal(prompt),
            timeout: None,
            distinct_from_starter: false,
          })
        }
        Some(false) => None,
        None => {
          self
            .reader
            .wrong_type(node, approval_key, "`true` or a mapping with `prompt`");
          None
        }
      };
    }
    let approval = self
      .reader
      .expect_map(node, approval_key, "an approval", APPROVAL_KEYS, &[])?;
    let prompt = match approval.get("prompt") {
      Some(prompt_node) => {
        self.expect_template(prompt_node, &approval.key("prompt"), Place::Step(index))?
      }
      None => Template::literal(format!("Run step `{}`?", id.unwrap_or_default())),
    };
    let timeout = approval.get("timeout").and_then(|node| {
      let key = approval.key("timeout");
      let timeout = self.reader.expect_duration(node, &key)?;
      if timeout.is_zero() {
        let text = self.reader.expect_string(node, &key).unwrap_or_default();
        let reason = "an approval timeout must be longer than zero".to_string();
        self
          .reader
          .at(node, &key, DiagnosticKind::InvalidDuration { text, reason });
        return None;
      }
      Some(timeout)
    });
    let distinct_from_starter = approval
      .get("distinct_from_starter")
      .and_then(|node| {
        self
          .reader
          .expect_bool(node, &approval.key("distinct_from_starter"))
      })
      .unwrap_or(false);
    Some(Approval {
      prompt,
      timeout,
      distinct_from_starter,
    })
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
      self
        .reader
        .at(node, &key, DiagnosticKind::BadFence { reason });
    }
  }

  /// `action` + `with` of a step or a rollback.
  fn call(&mut self, fields: &Fields<'_>, place: Place) -> Option<ActionCall> {
    let action_node = fields.get("action")?;
    let action_key = fields.key("action");
    let action = self.reader.expect_string(action_node, &action_key)?;
    let spec = self.catalog.get(&action).copied();
    if spec.is_none() {
      let suggestion = did_you_mean(&action, self.catalog.names());
      self.reader.at(
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
          self.reader.wrong_type(node, &with_key, "a mapping");
        }
      }
      _ => {
        if let Some(spec) = &spec {
          for field in spec.fields.iter().filter(|field| field.required) {
            self.reader.at(
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
    let fields = self.reader.expect_map(
      node,
      KEY,
      "objectives.recovered_when",
      RECOVERED_WHEN_KEYS,
      &[],
    )?;
    let within = match fields.get("within") {
      None => Some(DEFAULT_RECOVERY_WITHIN),
      Some(within_node) => {
        let key = fields.key("within");
        let within = self.reader.expect_duration(within_node, &key)?;
        if within > MAX_RECOVERY_WITHIN {
          self.reader.at(
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
    let condition = match (fields.get("step"), fields.get("alarms")) {
      (Some(_), Some(_)) => Err("gives both `step` and `alarms`; it takes one of them"),
      (None, None) => Err("needs `step` or `alarms`"),
      (Some(_), None) if fields.get("region").is_some() => {
        Err("gives a `region`, which goes with `alarms` (a step has its own)")
      }
      (None, Some(_)) if fields.get("region").is_none() => {
        Err("gives `alarms` without the `region` they live in")
      }
      (Some(step_node), None) => Ok(self.recovery_step(step_node, &fields.key("step"), steps)),
      (None, Some(alarms_node)) => Ok(self.recovery_alarms(alarms_node, &fields)),
    };
    let condition = match condition {
      Ok(condition) => condition?,
      Err(problem) => {
        self.reader.at(
          node,
          KEY,
          DiagnosticKind::RecoveryConditionShape { problem },
        );
        return None;
      }
    };
    Some(RecoveredWhen {
      condition,
      within: within?,
      span: node.span,
    })
  }

  /// `recovered_when.alarms` (a list of alarm names) and `region`: checked with the
  /// `cloudwatch.alarm_state` call they make, `state: OK`.
  fn recovery_alarms(
    &mut self,
    alarms_node: &Node,
    fields: &Fields<'_>,
  ) -> Option<RecoveryCondition> {
    let alarms_key = fields.key("alarms");
    let items = self.reader.expect_list(alarms_node, &alarms_key)?;
    let max = crate::cloud::cloudwatch::MAX_ALARM_NAMES;
    if items.is_empty() || items.len() > max {
      self.reader.at(
        alarms_node,
        &alarms_key,
        DiagnosticKind::RecoveryAlarmCount {
          count: items.len(),
          max,
        },
      );
      return None;
    }
    let mut names = Vec::new();
    let mut args = Vec::new();
    for (index, item) in items.iter().enumerate() {
      let key = index_key(&alarms_key, index);
      let template = self.expect_template(item, &key, Place::Recovery)?;
      names.push(template.source().to_owned());
      args.push(Arg::Template(template, item.span));
    }
    let region_node = fields.get("region")?;
    let region = self.expect_template(region_node, &fields.key("region"), Place::Recovery)?;
    let mut with = std::collections::BTreeMap::new();
    with.insert("alarms".to_owned(), Arg::List(args, alarms_node.span));
    let region_text = region.source().to_owned();
    with.insert("region".to_owned(), Arg::Template(region, region_node.span));
    with.insert(
      "state".to_owned(),
      Arg::Template(Template::literal("OK"), alarms_node.span),
    );
    Some(RecoveryCondition::Alarms {
      call: ActionCall {
        action: crate::runbook::model::RECOVERY_ALARMS_ACTION.to_owned(),
        action_span: alarms_node.span,
        with,
      },
      names,
      region: region_text,
    })
  }

  /// `recovered_when.step`: a read-only step of this runbook.
  fn recovery_step(
    &mut self,
    step_node: &Node,
    step_key: &str,
    steps: &[(Option<Step>, Needs)],
  ) -> Option<RecoveryCondition> {
    let step_key = step_key.to_owned();
    let id = self.reader.expect_string(step_node, &step_key)?;
    let ids = super::graph::step_ids(steps);
    let Some(&index) = ids.get(id.as_str()) else {
      // A step that failed its own checks has no id here, and was reported already.
      let suggestion = did_you_mean(&id, ids.keys().copied());
      self.reader.at(
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
      self.reader.at(
        step_node,
        &step_key,
        DiagnosticKind::RecoveryStepMutates { id, action },
      );
      return None;
    }
    Some(RecoveryCondition::Step { id })
  }
}
