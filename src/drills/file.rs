//! Drill files (`apiVersion: drctl/v1`, `kind: Drill`): the typed model and its validation.
//!
//! Read with the runbook validator's core (the span-keeping YAML tree, the generic readers and
//! the diagnostics list of `runbook::validate::reader`), so a drill's errors look exactly like a
//! runbook's: every error at once, each with `path:line:column`, the key, and a hint. The
//! runbook a drill names is loaded and validated too, and the drill's `params` and
//! `pass.steps_must_succeed` are checked against it.

use std::{
  collections::BTreeMap,
  path::{Path, PathBuf},
  str::FromStr,
  time::Duration,
};

use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{json, Value};

use super::cron::Schedule;
use crate::runbook::{
  self,
  diagnostic::{read_source, source_text, DiagnosticKind, Diagnostics, Document},
  model::{Runbook, Span},
  parse::{join_key, Node, NodeValue},
  suggest::did_you_mean,
  validate::{reader::Reader, valid_id, API_VERSION},
  ActionCatalog,
};

const TOP_KEYS: &[&str] = &[
  "apiVersion",
  "kind",
  "metadata",
  "runbook",
  "params",
  "schedule",
  "mode",
  "target",
  "pass",
  "notify",
  "reports",
  "approvals",
];
const METADATA_KEYS: &[&str] = &["name", "description"];
const SCHEDULE_KEYS: &[&str] = &["cron", "timezone"];
const TARGET_KEYS: &[&str] = &["backend", "profile", "region", "endpoint", "time_scale"];
const PASS_KEYS: &[&str] = &["rto", "rpo", "steps_must_succeed"];
const NOTIFY_KEYS: &[&str] = &["kind", "on", "with"];
const MODES: &[&str] = &["live", "dry-run"];
const APPROVALS: &[&str] = &["yes", "wait"];
const BACKENDS: &[&str] = &["sim", "sandbox", "aws"];
const NOTIFY_KINDS: &[&str] = &["slack", "pagerduty", "webhook"];
const NOTIFY_ON: &[&str] = &["breach", "failure", "success"];
const REPORT_FORMATS: &[&str] = &["json", "md", "junit", "html"];

/// Live runs change the target; dry runs only probe it (`drctl plan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DrillMode {
  Live,
  DryRun,
}

/// How a live drill answers its runbook's approval gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillApprovals {
  /// Answered yes (the drill file is the approval): the default.
  Yes,
  /// Each gate waits for `drctl approve|deny`, as an unattended run does.
  Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetBackend {
  Sim,
  Sandbox,
  Aws,
}

/// Where a drill runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
  pub backend: TargetBackend,
  pub profile: Option<String>,
  pub region: Option<String>,
  pub endpoint: Option<String>,
  pub time_scale: Option<f64>,
}

/// What a drill must achieve to pass. `None` objectives fall back to the runbook's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PassCriteria {
  pub rto: Option<Duration>,
  pub rpo: Option<Duration>,
  pub steps_must_succeed: Vec<String>,
}

/// A notification to send about a drill's result (sent by the notification layer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrillNotify {
  /// `slack`, `pagerduty` or `webhook`.
  pub kind: String,
  /// When: `breach`, `failure`, `success` (default: breach and failure).
  pub on: Vec<String>,
  /// The notifier's settings (`webhook`, `url`, `routing_key`...), templates left as written.
  pub with: BTreeMap<String, String>,
}

/// A validated drill.
#[derive(Debug, Clone)]
pub struct Drill {
  pub path: PathBuf,
  pub name: String,
  pub description: Option<String>,
  /// The runbook file, resolved.
  pub runbook_path: PathBuf,
  /// The validated runbook.
  pub runbook: Runbook,
  pub params: BTreeMap<String, String>,
  pub schedule: Schedule,
  pub mode: DrillMode,
  pub target: Target,
  pub pass: PassCriteria,
  pub notify: Vec<DrillNotify>,
  /// Report formats to write after each run.
  pub reports: Vec<String>,
  /// How the runbook's approval gates are answered (`approvals:`, default `yes`).
  pub approvals: DrillApprovals,
}

impl Drill {
  /// The RTO the drill is judged against: its own, or the runbook's.
  pub fn rto_target(&self) -> Option<Duration> {
    self.pass.rto.or(self.runbook.objectives.rto)
  }

  pub fn rpo_target(&self) -> Option<Duration> {
    self.pass.rpo.or(self.runbook.objectives.rpo)
  }

  /// `-p`-style parameter pairs for `Plan::bind`.
  pub fn param_pairs(&self) -> Vec<(String, String)> {
    self
      .params
      .iter()
      .map(|(key, value)| (key.clone(), value.clone()))
      .collect()
  }
}

/// Where a drill's `runbook:` is looked for: as a path relative to the working directory, then
/// relative to the drill file, then by name in the runbooks directory.
pub fn resolve_runbook(given: &str, drill: &Path, runbooks: &Path) -> (Option<PathBuf>, String) {
  let mut candidates = vec![PathBuf::from(given)];
  if let Some(dir) = drill.parent() {
    candidates.push(dir.join(given));
  }
  for ext in ["yaml", "yml"] {
    candidates.push(runbooks.join(format!("{given}.{ext}")));
  }
  let searched = candidates
    .iter()
    .map(|path| path.display().to_string())
    .collect::<Vec<_>>()
    .join(", ");
  (candidates.into_iter().find(|path| path.is_file()), searched)
}

/// Read and validate a drill file.
pub fn load_file(
  path: &Path,
  runbooks: &Path,
  catalog: &dyn ActionCatalog,
) -> Result<Drill, Diagnostics> {
  let bytes = read_source(Document::Drill, path)?;
  let text = source_text(Document::Drill, path, &bytes)?;
  load(path, text, runbooks, catalog)
}

/// Validate a drill's text. `runbooks` is the directory runbook names are looked up in.
pub fn load(
  path: &Path,
  text: &str,
  runbooks: &Path,
  catalog: &dyn ActionCatalog,
) -> Result<Drill, Diagnostics> {
  // A byte-order mark (Windows editors write one) is not part of the content.
  let text = text.strip_prefix('\u{feff}').unwrap_or(text);
  let mut checker = Checker {
    reader: Reader::new(path, text),
  };
  let drill = checker
    .reader
    .parse(Document::Drill)
    .and_then(|root| checker.drill(&root, runbooks, catalog));
  checker.reader.finish(drill)
}

/// Every drill file (`*.yaml`, `*.yml`) in `dir`, sorted by file name.
pub fn drill_files(dir: &Path) -> Vec<PathBuf> {
  let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
    .into_iter()
    .flatten()
    .flatten()
    .map(|entry| entry.path())
    .filter(|path| {
      path
        .extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml")
    })
    .collect();
  files.sort();
  files
}

/// The JSON Schema (draft 2020-12) of drill files, for editors and `drctl schema --kind drill`,
/// built from the tables the validator below reads. What it cannot see: whether the runbook
/// exists and accepts the `params` and `pass.steps_must_succeed` given, and a cron range that
/// runs backwards (`12-3`).
pub fn json_schema() -> Value {
  let mut defs = runbook::schema::common_defs();
  defs.insert("cron".into(), cron_schema());
  let strings = |values: &[&str]| json!({ "enum": values });
  json!({
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://drctl.dev/schema/drill-v1.json",
    "title": "drctl drill",
    "description": "A drill: a runbook run on a schedule and judged against pass criteria.",
    "type": "object",
    "additionalProperties": false,
    "required": ["apiVersion", "kind", "metadata", "runbook", "schedule"],
    "properties": {
      "apiVersion": { "const": API_VERSION },
      "kind": { "const": "Drill" },
      "metadata": {
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
          "name": { "type": "string", "pattern": runbook::schema::ID_PATTERN },
          "description": { "$ref": "#/$defs/text" }
        }
      },
      "runbook": { "description": "A runbook path, or a name in the runbooks directory.", "$ref": "#/$defs/text" },
      "params": {
        "description": "The runbook's parameters.",
        "type": "object",
        "additionalProperties": { "type": ["string", "number", "boolean", "null"] }
      },
      "schedule": {
        "description": "A cron expression or macro (UTC), or `{ cron, timezone }`.",
        "oneOf": [
          { "$ref": "#/$defs/cron" },
          {
            "type": "object",
            "additionalProperties": false,
            "required": ["cron"],
            "properties": {
              "cron": { "$ref": "#/$defs/cron" },
              "timezone": {
                "description": "An IANA time zone (default UTC).",
                "enum": chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect::<Vec<_>>()
              }
            }
          }
        ]
      },
      "mode": strings(MODES),
      "approvals": {
        "description": "How the runbook's approval gates are answered in a live drill: `yes` (default: the drill file is the approval) or `wait` (for `drctl approve`/`deny`).",
        "enum": APPROVALS
      },
      "target": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "backend": strings(BACKENDS),
          "profile": { "$ref": "#/$defs/text" },
          "region": { "$ref": "#/$defs/text" },
          "endpoint": { "$ref": "#/$defs/text" },
          "time_scale": { "type": "number", "exclusiveMinimum": 0 }
        }
      },
      "pass": {
        "type": "object",
        "additionalProperties": false,
        "properties": {
          "rto": { "$ref": "#/$defs/duration" },
          "rpo": { "$ref": "#/$defs/duration" },
          "steps_must_succeed": { "type": "array", "items": { "$ref": "#/$defs/text" } }
        }
      },
      "notify": {
        "type": "array",
        "items": {
          "type": "object",
          "additionalProperties": false,
          "required": ["kind"],
          "properties": {
            "kind": strings(NOTIFY_KINDS),
            "on": { "type": "array", "items": strings(NOTIFY_ON) },
            "with": { "type": "object", "additionalProperties": { "$ref": "#/$defs/text" } }
          }
        }
      },
      "reports": { "type": "array", "items": strings(REPORT_FORMATS) }
    },
    "$defs": defs
  })
}

/// A 5-field cron expression (values within each field's range, names case-insensitive, steps
/// of at least 1) or a macro.
fn cron_schema() -> Value {
  // Any capitalisation of a name, as the parser lower-cases it.
  let names = |names: &[&str]| -> Vec<String> {
    names
      .iter()
      .map(|name| {
        name
          .chars()
          .map(|c| format!("[{}{}]", c, c.to_ascii_uppercase()))
          .collect()
      })
      .collect()
  };
  let field = |values: &str, named: Vec<String>| {
    let value = std::iter::once(format!("0*(?:{values})"))
      .chain(named)
      .collect::<Vec<_>>()
      .join("|");
    // A step only after `*` or a range (`5/15` is refused, as Debian's cron refuses it).
    let item = format!(r"(?:(?:\*|(?:{value})-(?:{value}))(?:/0*[1-9][0-9]*)?|(?:{value}))");
    format!("{item}(?:,{item})*")
  };
  let fields = [
    field("[0-9]|[1-5][0-9]", Vec::new()),
    field("[0-9]|1[0-9]|2[0-3]", Vec::new()),
    field("[1-9]|[12][0-9]|3[01]", Vec::new()),
    field("[1-9]|1[0-2]", names(super::cron::MONTHS)),
    field("[0-7]", names(super::cron::DAYS)),
  ];
  let macros = super::cron::MACROS
    .iter()
    .map(|(name, _)| name.to_string())
    .collect::<Vec<_>>()
    .join("|");
  json!({
    "description": "`m h dom mon dow` (Vixie cron) or a macro such as `@daily`.",
    "type": "string",
    "pattern": format!(r"^\s*(?:{macros}|{})\s*$", fields.join(r"\s+"))
  })
}

/// The drill walk: the shared runbook reader (positions and diagnostics) and what drill files
/// add to it.
struct Checker<'a> {
  reader: Reader<'a>,
}

impl Checker<'_> {
  fn drill(&mut self, root: &Node, runbooks: &Path, catalog: &dyn ActionCatalog) -> Option<Drill> {
    let entries = self
      .reader
      .expect_map(root, "", "the drill", TOP_KEYS, &[])
      .map(|fields| fields.entries)?;
    let get = |name: &str| entries.iter().find(|entry| entry.key == name);
    for required in ["apiVersion", "kind", "metadata", "runbook", "schedule"] {
      if get(required).is_none() {
        self.reader.report(
          root.span,
          1,
          String::new(),
          DiagnosticKind::MissingKey {
            key: required.into(),
            context: "the drill",
          },
        );
      }
    }
    if let Some(entry) = get("apiVersion") {
      self.reader.expect_api_version(&entry.value);
    }
    if let Some(entry) = get("kind") {
      if let Some(found) = self.reader.expect_string(&entry.value, "kind") {
        if found != "Drill" {
          self
            .reader
            .at(&entry.value, "kind", DiagnosticKind::NotADrill { found });
        }
      }
    }
    let (name, description) = match get("metadata") {
      Some(entry) => self.metadata(&entry.value),
      None => (None, None),
    };
    let runbook = get("runbook").and_then(|entry| {
      let given = self.reader.expect_string(&entry.value, "runbook")?;
      let (found, searched) = resolve_runbook(&given, self.reader.path, runbooks);
      let Some(path) = found else {
        self.reader.at(
          &entry.value,
          "runbook",
          DiagnosticKind::UnknownRunbook {
            name: given,
            searched,
          },
        );
        return None;
      };
      match runbook::load_file(&path, catalog) {
        Ok(runbook) => Some((path, runbook)),
        Err(diagnostics) => {
          self.reader.at(
            &entry.value,
            "runbook",
            DiagnosticKind::InvalidRunbook {
              path: path.display().to_string(),
              errors: diagnostics.len(),
            },
          );
          None
        }
      }
    });
    let params = get("params").map_or_else(BTreeMap::new, |entry| {
      self.params(&entry.value, runbook.as_ref().map(|(_, runbook)| runbook))
    });
    if let (Some((_, runbook)), None) = (&runbook, get("params")) {
      // Required parameters the drill does not set.
      self.missing_params(runbook, &BTreeMap::new(), root, "");
    }
    let schedule = get("schedule").and_then(|entry| self.schedule(&entry.value));
    let mode = match get("mode") {
      Some(entry) => match self
        .reader
        .expect_one_of(&entry.value, "mode", MODES)
        .as_deref()
      {
        Some("dry-run") => Some(DrillMode::DryRun),
        Some(_) => Some(DrillMode::Live),
        None => None,
      },
      None => Some(DrillMode::Live),
    };
    let target = match get("target") {
      Some(entry) => self.target(&entry.value),
      None => Some(Target {
        backend: TargetBackend::Sim,
        profile: None,
        region: None,
        endpoint: None,
        time_scale: None,
      }),
    };
    let pass = match get("pass") {
      Some(entry) => self.pass(&entry.value, runbook.as_ref().map(|(_, runbook)| runbook)),
      None => Some(PassCriteria::default()),
    };
    let notify = get("notify").map_or_else(Vec::new, |entry| self.notify(&entry.value));
    let reports = get("reports").map_or_else(Vec::new, |entry| {
      self
        .reader
        .expect_strings(&entry.value, "reports")
        .into_iter()
        .enumerate()
        .filter_map(|(index, (_, node))| {
          self
            .reader
            .expect_one_of(&node, &format!("reports[{index}]"), REPORT_FORMATS)
        })
        .collect()
    });
    let approvals = match get("approvals") {
      Some(entry) => match self
        .reader
        .expect_one_of(&entry.value, "approvals", APPROVALS)
        .as_deref()
      {
        Some("wait") => Some(DrillApprovals::Wait),
        Some(_) => Some(DrillApprovals::Yes),
        None => None,
      },
      None => Some(DrillApprovals::Yes),
    };
    let (runbook_path, runbook) = runbook?;
    Some(Drill {
      path: self.reader.path.to_path_buf(),
      name: name?,
      description,
      runbook_path,
      runbook,
      params,
      schedule: schedule?,
      mode: mode?,
      target: target?,
      pass: pass?,
      notify,
      reports,
      approvals: approvals?,
    })
  }

  fn metadata(&mut self, node: &Node) -> (Option<String>, Option<String>) {
    let Some(entries) = self
      .reader
      .expect_map(node, "metadata", "metadata", METADATA_KEYS, &[])
      .map(|fields| fields.entries)
    else {
      return (None, None);
    };
    let mut name = None;
    let mut description = None;
    for entry in entries {
      let key = join_key("metadata", &entry.key);
      match entry.key.as_str() {
        "name" => {
          if let Some(text) = self.reader.expect_string(&entry.value, &key) {
            if valid_id(&text) {
              name = Some(text);
            } else {
              self.reader.at(
                &entry.value,
                &key,
                DiagnosticKind::InvalidName {
                  name: text,
                  what: "drill name",
                },
              );
            }
          }
        }
        "description" => description = self.reader.expect_string(&entry.value, &key),
        _ => {}
      }
    }
    if name.is_none() && !entries.iter().any(|entry| entry.key == "name") {
      self.reader.report(
        node.span,
        1,
        "metadata".into(),
        DiagnosticKind::MissingKey {
          key: "name".into(),
          context: "metadata",
        },
      );
    }
    (name, description)
  }

  fn params(&mut self, node: &Node, runbook: Option<&Runbook>) -> BTreeMap<String, String> {
    let Some(entries) = node.as_map() else {
      self.reader.wrong_type(node, "params", "a mapping");
      return BTreeMap::new();
    };
    let mut params = BTreeMap::new();
    for entry in entries {
      let key = join_key("params", &entry.key);
      let Some(value) = entry.value.as_scalar().map(str::to_string) else {
        self
          .reader
          .wrong_type(&entry.value, &key, "a string, number or boolean");
        continue;
      };
      if let Some(runbook) = runbook {
        // Bind this one parameter on its own: its errors are the ones that name it.
        let pair = [(entry.key.clone(), value.clone())];
        if let Err(errors) = runbook::bind_params(runbook, &pair) {
          let quoted = format!("`{}`", entry.key);
          for message in errors.into_iter().filter(|error| error.contains(&quoted)) {
            let unknown = !runbook.params.iter().any(|param| param.name == entry.key);
            let (span, width) = if unknown {
              (entry.key_span, entry.key_width())
            } else {
              (entry.value.span, entry.value.width)
            };
            self.reader.report(
              span,
              width,
              key.clone(),
              DiagnosticKind::RunbookParam {
                runbook: runbook.name.clone(),
                message,
                suggestion: None,
              },
            );
          }
        }
      }
      params.insert(entry.key.clone(), value);
    }
    if let Some(runbook) = runbook {
      self.missing_params(runbook, &params, node, "params");
    }
    params
  }

  fn missing_params(
    &mut self,
    runbook: &Runbook,
    params: &BTreeMap<String, String>,
    node: &Node,
    key: &str,
  ) {
    for param in &runbook.params {
      if param.required && param.default.is_none() && !params.contains_key(&param.name) {
        self.reader.report(
          node.span,
          1,
          key.to_string(),
          DiagnosticKind::RunbookParam {
            runbook: runbook.name.clone(),
            message: format!("missing required parameter `{}`", param.name),
            suggestion: None,
          },
        );
      }
    }
  }

  fn schedule(&mut self, node: &Node) -> Option<Schedule> {
    // `schedule: "@quarterly"` (UTC) or `schedule: { cron: "0 6 * * 1", timezone: Europe/Berlin }`.
    let (cron_node, cron_key, zone) = match &node.value {
      NodeValue::Scalar(..) => (node, "schedule".to_string(), Some(Tz::UTC)),
      NodeValue::Map(_) => {
        let entries = self
          .reader
          .expect_map(node, "schedule", "schedule", SCHEDULE_KEYS, &[])
          .map(|fields| fields.entries)?;
        let cron = entries.iter().find(|entry| entry.key == "cron");
        let zone = match entries.iter().find(|entry| entry.key == "timezone") {
          Some(entry) => self.zone(&entry.value),
          None => Some(Tz::UTC),
        };
        let Some(cron) = cron else {
          self.reader.report(
            node.span,
            1,
            "schedule".into(),
            DiagnosticKind::MissingKey {
              key: "cron".into(),
              context: "schedule",
            },
          );
          return None;
        };
        (&cron.value, "schedule.cron".to_string(), zone)
      }
      NodeValue::List(_) => {
        self
          .reader
          .wrong_type(node, "schedule", "a cron expression or a mapping");
        return None;
      }
    };
    let expression = self.reader.expect_string(cron_node, &cron_key)?;
    match Schedule::new(&expression, zone.unwrap_or(Tz::UTC)) {
      Ok(schedule) => zone.map(|_| schedule),
      Err(error) => {
        // Point into the expression when it is written on one line (plain or quoted).
        let quote = usize::from(matches!(
          &cron_node.value,
          NodeValue::Scalar(_, crate::runbook::parse::ScalarStyle::Quoted)
        ));
        let span = Span {
          line: cron_node.span.line,
          column: cron_node.span.column + quote + error.offset,
        };
        self.reader.report(
          span,
          error.width,
          cron_key,
          DiagnosticKind::BadSchedule {
            message: error.message,
          },
        );
        None
      }
    }
  }

  fn zone(&mut self, node: &Node) -> Option<Tz> {
    let name = self.reader.expect_string(node, "schedule.timezone")?;
    match Tz::from_str(&name) {
      Ok(zone) => Some(zone),
      Err(_) => {
        let suggestion = did_you_mean(&name, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()));
        self.reader.at(
          node,
          "schedule.timezone",
          DiagnosticKind::UnknownTimeZone { name, suggestion },
        );
        None
      }
    }
  }

  fn target(&mut self, node: &Node) -> Option<Target> {
    let entries = self
      .reader
      .expect_map(node, "target", "target", TARGET_KEYS, &[])
      .map(|fields| fields.entries)?;
    let mut target = Target {
      backend: TargetBackend::Sim,
      profile: None,
      region: None,
      endpoint: None,
      time_scale: None,
    };
    let mut ok = true;
    for entry in entries {
      let key = join_key("target", &entry.key);
      match entry.key.as_str() {
        "backend" => match self
          .reader
          .expect_one_of(&entry.value, &key, BACKENDS)
          .as_deref()
        {
          Some("sandbox") => target.backend = TargetBackend::Sandbox,
          Some("aws") => target.backend = TargetBackend::Aws,
          Some(_) => target.backend = TargetBackend::Sim,
          None => ok = false,
        },
        "profile" => target.profile = self.reader.expect_string(&entry.value, &key),
        "region" => target.region = self.reader.expect_string(&entry.value, &key),
        "endpoint" => target.endpoint = self.reader.expect_string(&entry.value, &key),
        "time_scale" => {
          match entry
            .value
            .as_scalar()
            .and_then(|text| text.parse::<f64>().ok())
          {
            Some(scale) if scale > 0.0 && scale.is_finite() => target.time_scale = Some(scale),
            _ => {
              ok = false;
              self
                .reader
                .wrong_type(&entry.value, &key, "a positive number");
            }
          }
        }
        _ => {}
      }
    }
    ok.then_some(target)
  }

  fn pass(&mut self, node: &Node, runbook: Option<&Runbook>) -> Option<PassCriteria> {
    let entries = self
      .reader
      .expect_map(node, "pass", "pass", PASS_KEYS, &[])
      .map(|fields| fields.entries)?;
    let mut pass = PassCriteria::default();
    let mut ok = true;
    for entry in entries {
      let key = join_key("pass", &entry.key);
      match entry.key.as_str() {
        "rto" => {
          pass.rto = self.reader.expect_duration(&entry.value, &key);
          ok &= pass.rto.is_some();
        }
        "rpo" => {
          pass.rpo = self.reader.expect_duration(&entry.value, &key);
          ok &= pass.rpo.is_some();
        }
        "steps_must_succeed" => {
          for (index, (id, item)) in self
            .reader
            .expect_strings(&entry.value, &key)
            .into_iter()
            .enumerate()
          {
            if let Some(runbook) = runbook {
              if runbook.step(&id).is_none() {
                let ids = runbook.steps.iter().map(|step| step.id.as_str());
                self.reader.at(
                  &item,
                  &format!("{key}[{index}]"),
                  DiagnosticKind::RunbookStep {
                    runbook: runbook.name.clone(),
                    suggestion: did_you_mean(&id, ids),
                    id,
                  },
                );
                ok = false;
                continue;
              }
            }
            pass.steps_must_succeed.push(id);
          }
        }
        _ => {}
      }
    }
    ok.then_some(pass)
  }

  fn notify(&mut self, node: &Node) -> Vec<DrillNotify> {
    let NodeValue::List(items) = &node.value else {
      self.reader.wrong_type(node, "notify", "a list");
      return Vec::new();
    };
    let mut notify = Vec::new();
    for (index, item) in items.iter().enumerate() {
      let key = format!("notify[{index}]");
      let Some(entries) = self
        .reader
        .expect_map(item, &key, "a notification", NOTIFY_KEYS, &[])
        .map(|fields| fields.entries)
      else {
        continue;
      };
      let mut entry_out = DrillNotify {
        kind: String::new(),
        on: vec!["breach".into(), "failure".into()],
        with: BTreeMap::new(),
      };
      for entry in entries {
        let field = join_key(&key, &entry.key);
        match entry.key.as_str() {
          "kind" => {
            entry_out.kind = self
              .reader
              .expect_one_of(&entry.value, &field, NOTIFY_KINDS)
              .unwrap_or_default()
          }
          "on" => {
            entry_out.on = self
              .reader
              .expect_strings(&entry.value, &field)
              .into_iter()
              .enumerate()
              .filter_map(|(at, (_, node))| {
                self
                  .reader
                  .expect_one_of(&node, &format!("{field}[{at}]"), NOTIFY_ON)
              })
              .collect()
          }
          "with" => {
            if let Some(settings) = entry.value.as_map() {
              for setting in settings {
                let setting_key = join_key(&field, &setting.key);
                if let Some(value) = self.reader.expect_string(&setting.value, &setting_key) {
                  entry_out.with.insert(setting.key.clone(), value);
                }
              }
            } else {
              self.reader.wrong_type(&entry.value, &field, "a mapping");
            }
          }
          _ => {}
        }
      }
      if !entries.iter().any(|entry| entry.key == "kind") {
        self.reader.report(
          item.span,
          1,
          key.clone(),
          DiagnosticKind::MissingKey {
            key: "kind".into(),
            context: "a notification",
          },
        );
      }
      notify.push(entry_out);
    }
    notify
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::actions::Catalog;

  fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
  }

  #[test]
  fn shipped_drills_validate() {
    let files = drill_files(&repo().join("drills"));
    assert_eq!(files.len(), 3);
    for file in files {
      let drill = load_file(&file, &repo().join("runbooks"), &Catalog)
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
      assert!(drill.schedule.next_after(chrono::Utc::now()).is_some());
    }
  }

  #[test]
  fn invalid_fixtures_match_their_expected_output() {
    let dir = repo().join("tests/fixtures/drills/invalid");
    let files = drill_files(&dir);
    assert!(files.len() >= 3);
    for file in files {
      let relative = file.strip_prefix(repo()).unwrap();
      // Relative paths (tests run in the crate root), so the expected text is portable. Read
      // through `load_file`: some fixtures are not UTF-8.
      let diagnostics = load_file(relative, Path::new("runbooks"), &Catalog).unwrap_err();
      let expected = std::fs::read_to_string(file.with_extension("expected")).unwrap_or_default();
      let actual = format!("{diagnostics}\n");
      if std::env::var_os("DRCTL_BLESS").is_some() {
        std::fs::write(file.with_extension("expected"), &actual).unwrap();
        continue;
      }
      assert_eq!(actual, expected, "{}", file.display());
    }
  }
}
