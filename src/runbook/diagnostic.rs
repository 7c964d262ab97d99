//! Validation errors: what went wrong ([`DiagnosticKind`], worded in one `Display` impl), where
//! ([`Span`] plus the dotted key such as `steps[1].action`) and how to fix it (`hint`).
//!
//! [`Diagnostics`] renders every error of one file in the same shape:
//!
//! ```text
//! error: unknown action `rds.promte_replica`
//!   --> runbooks/bad.yaml:12:13
//!    |
//! 12 |     action: rds.promte_replica
//!    |             ^^^^^^^^^^^^^^^^^^
//!    = key: steps[1].action
//!    = hint: did you mean `rds.promote_replica`?
//!
//! error: 1 error in runbooks/bad.yaml
//! ```
//!
//! The source line and caret are left out when the position is not in the file (a read error);
//! the `key` line is left out when the error is not about one key (a syntax error).

use std::{fmt, path::PathBuf};

use super::model::Span;

/// One validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
  pub path: PathBuf,
  /// Where the offending value (or key) starts. Line 0 means "the whole file".
  pub span: Span,
  /// How many characters to underline (at least 1).
  pub width: usize,
  /// The dotted key path of the offending node (`steps[1].with.instance`); empty if none.
  pub key: String,
  pub kind: DiagnosticKind,
}

impl Diagnostic {
  /// What to do about it.
  pub fn hint(&self) -> Option<String> {
    self.kind.hint()
  }
}

impl fmt::Display for Diagnostic {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}: {}", location(self), self.kind)
  }
}

fn location(diagnostic: &Diagnostic) -> String {
  if diagnostic.span.line == 0 {
    diagnostic.path.display().to_string()
  } else {
    format!("{}:{}", diagnostic.path.display(), diagnostic.span)
  }
}

/// Which kind of file a diagnostic is about, for the messages that cannot tell from the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
  Runbook,
  Drill,
}

impl fmt::Display for Document {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(match self {
      Document::Runbook => "runbook",
      Document::Drill => "drill file",
    })
  }
}

/// The largest runbook or drill file drctl reads: 10 MiB. The largest real ones are a few
/// kilobytes; a bigger file is a mistake (a log, a dump) that would otherwise be read whole into
/// memory and parsed.
pub const MAX_SOURCE_BYTES: u64 = 10 * 1024 * 1024;

/// Read a runbook or drill file, at most [`MAX_SOURCE_BYTES`] ([`read_bounded`]).
pub fn read_source(document: Document, path: &std::path::Path) -> Result<Vec<u8>, Diagnostics> {
  read_bounded(path, MAX_SOURCE_BYTES).map_err(|error| match error {
    BoundedRead::Io(error) => Diagnostics::unreadable(document, path, &error),
    BoundedRead::TooLarge => Diagnostics::too_large(document, path, MAX_SOURCE_BYTES),
  })
}

/// Why [`read_bounded`] returned no bytes.
#[derive(Debug)]
pub enum BoundedRead {
  Io(std::io::Error),
  /// Larger than the limit.
  TooLarge,
}

/// Read a whole file of at most `limit` bytes: the size is checked before reading (the file's
/// metadata) and while reading (a file that grows, or a FIFO, is never read past the limit), so a
/// huge file costs nothing. The one bounded reader for the files users give drctl.
pub fn read_bounded(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, BoundedRead> {
  use std::io::Read;
  let file = std::fs::File::open(path).map_err(BoundedRead::Io)?;
  let metadata = file.metadata().map_err(BoundedRead::Io)?;
  if metadata.is_file() && metadata.len() > limit {
    return Err(BoundedRead::TooLarge);
  }
  let mut bytes = Vec::new();
  file
    .take(limit.saturating_add(1))
    .read_to_end(&mut bytes)
    .map_err(BoundedRead::Io)?;
  if bytes.len() as u64 > limit {
    return Err(BoundedRead::TooLarge);
  }
  Ok(bytes)
}

/// `bytes` as a human reads a file-size limit: `10 MiB`.
pub fn format_bytes(bytes: u64) -> String {
  const MIB: u64 = 1024 * 1024;
  if bytes.is_multiple_of(MIB) {
    format!("{} MiB", bytes / MIB)
  } else {
    format!("{bytes} bytes")
  }
}

/// A runbook's or drill file's bytes as the parser reads them: UTF-8 (else the one diagnostic,
/// at the first invalid byte) without a leading byte-order mark, which Windows editors write
/// and which is not part of the content.
pub fn source_text<'a>(
  document: Document,
  path: &std::path::Path,
  bytes: &'a [u8],
) -> Result<&'a str, Diagnostics> {
  match std::str::from_utf8(bytes) {
    Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(text)),
    Err(error) => Err(Diagnostics::not_utf8(
      document,
      path,
      bytes,
      error.valid_up_to(),
    )),
  }
}

/// Every way a runbook (or a drill file) can be wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagnosticKind {
  /// The file could not be read.
  Read {
    document: Document,
    message: String,
  },
  NotUtf8 {
    document: Document,
  },
  /// Larger than [`MAX_SOURCE_BYTES`]; not read.
  TooLarge {
    document: Document,
    limit: u64,
  },
  Empty {
    document: Document,
  },
  Syntax {
    message: String,
  },
  TooDeep {
    limit: usize,
  },
  MultipleDocuments,
  /// A warning, not an error: a secret in a command line, which every local user can read.
  /// A `fence: true` step that cannot be a fence.
  BadFence {
    reason: &'static str,
  },
  SecretInArgv {
    /// `secrets.X` or `params.x`.
    reference: String,
  },
  Alias,
  ComplexKey,
  DuplicateKey {
    key: String,
    first_line: usize,
  },
  WrongApiVersion {
    found: String,
  },
  WrongKind {
    found: String,
  },
  UnknownKey {
    key: String,
    context: &'static str,
    suggestion: Option<String>,
    expected: Vec<&'static str>,
  },
  MissingKey {
    key: String,
    context: &'static str,
  },
  WrongType {
    expected: &'static str,
    found: &'static str,
  },
  InvalidName {
    name: String,
    what: &'static str,
  },
  InvalidDuration {
    text: String,
    reason: String,
  },
  InvalidValue {
    expected: String,
    found: String,
    allowed: Vec<&'static str>,
    suggestion: Option<String>,
  },
  UnknownParamType {
    found: String,
    suggestion: Option<String>,
  },
  ParamValue {
    param: String,
    what: &'static str,
    kind: String,
    found: String,
  },
  DefaultNotAllowed {
    param: String,
    found: String,
    allowed: Vec<String>,
  },
  UnknownAction {
    name: String,
    suggestion: Option<String>,
  },
  UnknownField {
    action: String,
    field: String,
    suggestion: Option<String>,
    expected: Vec<&'static str>,
  },
  MissingField {
    action: String,
    field: String,
  },
  FieldType {
    field: String,
    expected: String,
    found: String,
  },
  FieldEnum {
    field: String,
    found: String,
    allowed: Vec<&'static str>,
    suggestion: Option<String>,
  },
  DuplicateStep {
    id: String,
    first_line: usize,
  },
  UnknownNeed {
    id: String,
    suggestion: Option<String>,
  },
  NeedsCycle {
    cycle: Vec<String>,
  },
  Template {
    message: String,
  },
  UnknownParam {
    name: String,
    suggestion: Option<String>,
  },
  UnknownVar {
    name: String,
    suggestion: Option<String>,
    later: bool,
  },
  UnknownObjective {
    name: String,
  },
  ObjectiveNotSet {
    name: String,
  },
  BadReference {
    reference: String,
    shape: &'static str,
  },
  UnknownStep {
    id: String,
    suggestion: Option<String>,
  },
  NotANeed {
    id: String,
    step: String,
  },
  UnknownOutput {
    step: String,
    action: String,
    key: String,
    outputs: Vec<&'static str>,
    suggestion: Option<String>,
  },
  UnknownRunField {
    name: String,
    suggestion: Option<String>,
  },
  NotAvailableHere {
    reference: String,
    place: &'static str,
  },
  // Drill files (`kind: Drill`, see `crate::drills`).
  NotADrill {
    found: String,
  },
  BadSchedule {
    message: String,
  },
  UnknownTimeZone {
    name: String,
    suggestion: Option<String>,
  },
  UnknownRunbook {
    name: String,
    searched: String,
  },
  InvalidRunbook {
    path: String,
    errors: usize,
  },
  RunbookParam {
    runbook: String,
    message: String,
    suggestion: Option<String>,
  },
  RunbookStep {
    runbook: String,
    id: String,
    suggestion: Option<String>,
  },
  /// `objectives.recovered_when.step` names no step of the runbook.
  RecoveryStepUnknown {
    id: String,
    suggestion: Option<String>,
  },
  /// `objectives.recovered_when.step` names a step whose action changes the world.
  RecoveryStepMutates {
    id: String,
    action: String,
  },
  /// `objectives.recovered_when` gives neither or both of `step` and `alarms`, or a `region`
  /// without `alarms`.
  RecoveryConditionShape {
    problem: &'static str,
  },
  /// `objectives.recovered_when.alarms` is empty or names more than CloudWatch describes at once.
  RecoveryAlarmCount {
    count: usize,
    max: usize,
  },
  /// `objectives.recovered_when.within` is over its maximum.
  RecoveryBoundTooLong {
    within: std::time::Duration,
    max: std::time::Duration,
  },
}

fn list(items: &[impl AsRef<str>]) -> String {
  items
    .iter()
    .map(|item| format!("`{}`", item.as_ref()))
    .collect::<Vec<_>>()
    .join(", ")
}

fn did_you_mean(suggestion: &Option<String>) -> Option<String> {
  suggestion
    .as_ref()
    .map(|name| format!("did you mean `{name}`?"))
}

impl fmt::Display for DiagnosticKind {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use DiagnosticKind::*;
    match self {
      Read { document, message } => write!(f, "cannot read the {document}: {message}"),
      NotUtf8 { document } => write!(f, "the {document} is not valid UTF-8"),
      TooLarge { document, limit } => write!(
        f,
        "the {document} is larger than {}, the most drctl reads",
        format_bytes(*limit)
      ),
      Empty { document } => write!(f, "the {document} is empty"),
      Syntax { message } => write!(f, "YAML syntax error: {message}"),
      TooDeep { limit } => write!(f, "nesting is deeper than {limit} levels"),
      MultipleDocuments => f.write_str("a file holds exactly one YAML document"),
      Alias => f.write_str("YAML aliases are not supported"),
      ComplexKey => f.write_str("a mapping key must be a plain string"),
      DuplicateKey { key, .. } => write!(f, "duplicate key `{key}`"),
      WrongApiVersion { found } => write!(f, "unsupported apiVersion `{found}`"),
      WrongKind { found } => write!(f, "unsupported kind `{found}`"),
      UnknownKey { key, context, .. } => write!(f, "unknown key `{key}` in {context}"),
      MissingKey { key, context } => write!(f, "missing required key `{key}` in {context}"),
      WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
      InvalidName { name, what } => write!(f, "invalid {what} `{name}`"),
      InvalidDuration { text, reason } => write!(f, "invalid duration `{text}`: {reason}"),
      InvalidValue {
        expected, found, ..
      } => write!(f, "expected {expected}, found `{found}`"),
      UnknownParamType { found, .. } => write!(f, "unknown parameter type `{found}`"),
      ParamValue {
        param,
        what,
        kind,
        found,
      } => {
        write!(
          f,
          "{what} `{found}` of parameter `{param}` is not a valid {kind}"
        )
      }
      DefaultNotAllowed { param, found, .. } => {
        write!(
          f,
          "default `{found}` of parameter `{param}` is not one of its allowed values"
        )
      }
      UnknownAction { name, .. } => write!(f, "unknown action `{name}`"),
      UnknownField { action, field, .. } => {
        write!(f, "unknown field `{field}` for action `{action}`")
      }
      MissingField { action, field } => {
        write!(f, "missing required field `{field}` for action `{action}`")
      }
      FieldType {
        field,
        expected,
        found,
      } => {
        write!(f, "field `{field}` expects {expected}, found {found}")
      }
      FieldEnum { field, found, .. } => write!(f, "invalid value `{found}` for field `{field}`"),
      DuplicateStep { id, .. } => write!(f, "duplicate step id `{id}`"),
      UnknownNeed { id, .. } => write!(f, "`needs` names unknown step `{id}`"),
      NeedsCycle { cycle } => write!(f, "needs cycle: {}", cycle.join(" -> ")),
      Template { message } => write!(f, "invalid template: {message}"),
      UnknownParam { name, .. } => write!(f, "unknown parameter `params.{name}`"),
      UnknownVar { name, .. } => write!(f, "unknown variable `vars.{name}`"),
      UnknownObjective { name } => write!(f, "unknown objective `objectives.{name}`"),
      ObjectiveNotSet { name } => write!(f, "objective `objectives.{name}` is not set"),
      BadReference { reference, .. } => write!(f, "malformed reference `{reference}`"),
      UnknownStep { id, .. } => write!(f, "reference to unknown step `{id}`"),
      NotANeed { id, step } => {
        write!(
          f,
          "step `{step}` uses outputs of `{id}`, which it does not depend on"
        )
      }
      UnknownOutput { step, key, .. } => write!(f, "step `{step}` has no output `{key}`"),
      UnknownRunField { name, .. } => write!(f, "unknown run field `run.{name}`"),
      NotAvailableHere { reference, place } => {
        write!(f, "`{reference}` is not available in {place}")
      }
      NotADrill { found } => write!(f, "unsupported kind `{found}`"),
      BadSchedule { message } => write!(f, "invalid schedule: {message}"),
      UnknownTimeZone { name, .. } => write!(f, "unknown time zone `{name}`"),
      UnknownRunbook { name, .. } => write!(f, "unknown runbook `{name}`"),
      InvalidRunbook { path, errors } => {
        write!(f, "runbook {path} is invalid ({errors} error(s))")
      }
      RunbookParam {
        runbook, message, ..
      } => write!(f, "{message} (runbook `{runbook}`)"),
      RunbookStep { runbook, id, .. } => write!(f, "runbook `{runbook}` has no step `{id}`"),
      BadFence { reason } => write!(f, "invalid fence: {reason}"),
      SecretInArgv { reference } => write!(
        f,
        "secret `{reference}` in an `exec.command` argv: any local user can read a command line"
      ),
      RecoveryStepUnknown { id, .. } => write!(f, "`recovered_when` names unknown step `{id}`"),
      RecoveryStepMutates { id, action } => write!(
        f,
        "`recovered_when` names step `{id}`, whose action `{action}` changes the world"
      ),
      RecoveryConditionShape { problem } => write!(f, "`recovered_when` {problem}"),
      RecoveryAlarmCount { count, max } => write!(
        f,
        "`recovered_when.alarms` names {count} alarms; it takes 1 to {max}"
      ),
      RecoveryBoundTooLong { within, max } => write!(
        f,
        "`recovered_when.within` of {} is longer than the maximum of {}",
        super::duration::format_duration(*within),
        super::duration::format_duration(*max)
      ),
    }
  }
}

impl DiagnosticKind {
  /// What to do about it, when there is something better to say than the message.
  pub fn hint(&self) -> Option<String> {
    use DiagnosticKind::*;
    match self {
      Read { .. } => None,
      TooLarge { .. } => {
        Some("is this the file you meant? runbooks and drill files are small YAML".into())
      }
      NotUtf8 { .. } => Some("save the file as UTF-8".into()),
      Empty {
        document: Document::Runbook,
      } => Some("a runbook starts with `apiVersion: drctl/v1` and `kind: Runbook`".into()),
      Empty {
        document: Document::Drill,
      } => Some("a drill file starts with `apiVersion: drctl/v1` and `kind: Drill`".into()),
      Syntax { .. } => None,
      TooDeep { .. } => Some("runbooks never need this much nesting; flatten the value".into()),
      MultipleDocuments => Some("put each runbook and each drill in its own file".into()),
      Alias => Some("write the value out in full".into()),
      ComplexKey => None,
      DuplicateKey { first_line, .. } => Some(format!("first defined on line {first_line}")),
      WrongApiVersion { .. } => Some("use `apiVersion: drctl/v1`".into()),
      WrongKind { .. } => Some("use `kind: Runbook`".into()),
      UnknownKey {
        suggestion,
        expected,
        ..
      } => did_you_mean(suggestion).or_else(|| Some(format!("expected one of {}", list(expected)))),
      MissingKey { key, .. } => Some(format!("add `{key}:`")),
      WrongType { .. } => None,
      InvalidName { what, .. } => Some(
        if matches!(*what, "step id" | "runbook name" | "drill name") {
          "use lowercase letters, digits and `-`".into()
        } else if *what == "lock group" {
          "use 1 to 128 lowercase letters, digits and `-` (runbooks that must never run at the \
           same time share one group; the default is `default`)"
            .into()
        } else {
          "use letters, digits, `_` and `-`".into()
        },
      ),
      InvalidDuration { .. } => {
        Some("write a number and a unit, e.g. `500ms`, `90s`, `5m`, `1h30m`, `1d`".into())
      }
      InvalidValue {
        allowed,
        suggestion,
        ..
      } => did_you_mean(suggestion)
        .or_else(|| (!allowed.is_empty()).then(|| format!("expected one of {}", list(allowed)))),
      UnknownParamType { suggestion, .. } => did_you_mean(suggestion)
        .or_else(|| Some("use one of `string`, `int`, `bool`, `duration`".into())),
      ParamValue { .. } => None,
      DefaultNotAllowed { allowed, .. } => Some(format!("allowed values: {}", list(allowed))),
      UnknownAction { suggestion, .. } => did_you_mean(suggestion)
        .or_else(|| Some("`drctl schema` lists every action and its fields".into())),
      UnknownField {
        suggestion,
        expected,
        ..
      } => did_you_mean(suggestion).or_else(|| {
        Some(if expected.is_empty() {
          "this action takes no fields".into()
        } else {
          format!("the action's fields are {}", list(expected))
        })
      }),
      MissingField { field, .. } => Some(format!("add `{field}:` under `with:`")),
      FieldType { .. } => None,
      FieldEnum {
        allowed,
        suggestion,
        ..
      } => Some(match did_you_mean(suggestion) {
        Some(text) => format!("{text} (allowed values: {})", list(allowed)),
        None => format!("allowed values: {}", list(allowed)),
      }),
      DuplicateStep { first_line, .. } => Some(format!("first defined on line {first_line}")),
      UnknownNeed { suggestion, .. } => did_you_mean(suggestion),
      NeedsCycle { .. } => {
        Some("each step waits for the next, so none can start; remove one of these needs".into())
      }
      Template { .. } => Some("write references as `${{ namespace.name }}`".into()),
      UnknownParam { suggestion, .. } => {
        did_you_mean(suggestion).or_else(|| Some("declare it under `params:`".into()))
      }
      UnknownVar {
        suggestion, later, ..
      } => did_you_mean(suggestion).or_else(|| {
        Some(if *later {
          "a variable can only use variables declared before it".into()
        } else {
          "declare it under `vars:`".into()
        })
      }),
      UnknownObjective { .. } => Some("the objectives are `rto` and `rpo`".into()),
      ObjectiveNotSet { name } => Some(format!("set `{name}:` under `objectives:`")),
      BadReference { shape, .. } => Some(format!("write it as `{shape}`")),
      UnknownStep { suggestion, .. } => did_you_mean(suggestion),
      NotANeed { id, .. } => Some(format!("add `{id}` to this step's `needs`")),
      UnknownOutput {
        action,
        outputs,
        suggestion,
        ..
      } => did_you_mean(suggestion).or_else(|| {
        Some(if outputs.is_empty() {
          format!("`{action}` has no outputs")
        } else {
          format!("`{action}` outputs {}", list(outputs))
        })
      }),
      UnknownRunField { suggestion, .. } => did_you_mean(suggestion)
        .or_else(|| Some("use `run.id`, `run.elapsed` or `run.started_at`".into())),
      NotAvailableHere { place, .. } => Some(match *place {
        "vars" => "vars are resolved before any step runs".into(),
        _ => "step outputs can only be used by steps".into(),
      }),
      NotADrill { .. } => Some("use `kind: Drill`".into()),
      BadSchedule { .. } => Some(
        "write `minute hour day-of-month month day-of-week` (e.g. `30 6 * * mon-fri`) or one of \
         `@quarterly`, `@monthly`, `@weekly`, `@daily`"
          .into(),
      ),
      UnknownTimeZone { suggestion, .. } => did_you_mean(suggestion)
        .or_else(|| Some("use an IANA time zone such as `Europe/Berlin` or `UTC`".into())),
      UnknownRunbook { searched, .. } => Some(format!("looked for {searched}")),
      InvalidRunbook { path, .. } => Some(format!("`drctl validate {path}` shows the errors")),
      RunbookParam { suggestion, .. } => did_you_mean(suggestion),
      RunbookStep { suggestion, .. } => did_you_mean(suggestion),
      BadFence { .. } => Some(
        "a fence scales a service down or retires a writer in the region failed away from".into(),
      ),
      SecretInArgv { reference } => Some(format!(
        "pass it in `env:` instead (`env: {{ TOKEN: \"${{{{ {reference} }}}}\" }}`) and use \
         `$TOKEN` in the command"
      )),
      RecoveryStepUnknown { suggestion, .. } => did_you_mean(suggestion)
        .or_else(|| Some("name one of the runbook's read-only steps".into())),
      RecoveryStepMutates { .. } => Some(
        "name a read-only step (a check such as `http.check`): drctl runs it again and again \
         after the run until it passes"
          .into(),
      ),
      RecoveryConditionShape { .. } => Some(
        "give `step: ID` (a read-only step that passes once recovered), or `alarms: [NAME, ...]` \
         with their `region` (recovered once every alarm is OK)"
          .into(),
      ),
      RecoveryAlarmCount { .. } => Some(
        "CloudWatch describes at most 100 alarms at once; a composite alarm can stand for many"
          .into(),
      ),
      RecoveryBoundTooLong { .. } => Some(
        "the run holds its lock while it waits for recovery; a shorter `within` ends the wait \
         with \"not recovered\" (RTO breached)"
          .into(),
      ),
    }
  }
}

/// Every error found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
  path: PathBuf,
  /// The file's text (lossily decoded), for quoting lines.
  source: String,
  /// Byte offset where each line starts, so quoting a line is not a scan of the file.
  line_starts: Vec<usize>,
  items: Vec<Diagnostic>,
}

impl Diagnostics {
  pub fn new(path: PathBuf, source: String, mut items: Vec<Diagnostic>) -> Diagnostics {
    // The YAML scanner places an error at the end of the input on the line after the last one
    // (and an empty value at the end on its own line); point at the end of the last line
    // instead, so that every position is one the user can find in the file.
    let lines: Vec<&str> = source.split('\n').collect();
    for item in &mut items {
      if item.span.line == 0 {
        continue;
      }
      let last = lines.len().max(1);
      if item.span.line > last {
        item.span.line = last;
        item.span.column = usize::MAX;
      }
      let length = lines.get(item.span.line - 1).map_or(0, |line| {
        line.strip_suffix('\r').unwrap_or(line).chars().count()
      });
      item.span.column = item.span.column.clamp(1, length + 1);
    }
    // In file order; stable, so errors at one position keep the order they were found in.
    items.sort_by_key(|item| item.span);
    let line_starts = std::iter::once(0)
      .chain(source.match_indices('\n').map(|(index, _)| index + 1))
      .collect();
    Diagnostics {
      path,
      source,
      line_starts,
      items,
    }
  }

  /// The one error of a file that could not be read (missing, a directory, no permission).
  pub fn unreadable(
    document: Document,
    path: &std::path::Path,
    error: &std::io::Error,
  ) -> Diagnostics {
    let diagnostic = Diagnostic {
      path: path.to_path_buf(),
      span: Span::default(),
      width: 1,
      key: String::new(),
      kind: DiagnosticKind::Read {
        document,
        message: error.to_string(),
      },
    };
    Diagnostics::new(path.to_path_buf(), String::new(), vec![diagnostic])
  }

  /// The one error of a file larger than `limit` bytes (not read).
  pub fn too_large(document: Document, path: &std::path::Path, limit: u64) -> Diagnostics {
    let diagnostic = Diagnostic {
      path: path.to_path_buf(),
      span: Span::default(),
      width: 1,
      key: String::new(),
      kind: DiagnosticKind::TooLarge { document, limit },
    };
    Diagnostics::new(path.to_path_buf(), String::new(), vec![diagnostic])
  }

  /// The one error of a file that is not UTF-8, placed at the first invalid byte.
  pub fn not_utf8(
    document: Document,
    path: &std::path::Path,
    bytes: &[u8],
    valid_up_to: usize,
  ) -> Diagnostics {
    let valid = String::from_utf8_lossy(&bytes[..valid_up_to.min(bytes.len())]);
    let line = valid.matches('\n').count() + 1;
    let column = valid
      .rsplit('\n')
      .next()
      .map_or(0, |last| last.chars().count())
      + 1;
    let diagnostic = Diagnostic {
      path: path.to_path_buf(),
      span: Span { line, column },
      width: 1,
      key: String::new(),
      kind: DiagnosticKind::NotUtf8 { document },
    };
    let source = String::from_utf8_lossy(bytes).into_owned();
    Diagnostics::new(path.to_path_buf(), source, vec![diagnostic])
  }

  pub fn len(&self) -> usize {
    self.items.len()
  }

  pub fn is_empty(&self) -> bool {
    self.items.is_empty()
  }

  pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
    self.items.iter()
  }

  pub fn path(&self) -> &std::path::Path {
    &self.path
  }

  fn line(&self, number: usize) -> Option<&str> {
    let start = *self.line_starts.get(number.checked_sub(1)?)?;
    let end = self
      .line_starts
      .get(number)
      .map_or(self.source.len(), |next| next - 1);
    let line = self.source.get(start..end)?;
    Some(line.strip_suffix('\r').unwrap_or(line))
  }

  fn render_one(&self, f: &mut fmt::Formatter<'_>, item: &Diagnostic) -> fmt::Result {
    writeln!(f, "error: {}", item.kind)?;
    let line = self.line(item.span.line);
    let gutter = if line.is_some() {
      item.span.line.to_string().len()
    } else {
      1
    };
    let pad = " ".repeat(gutter);
    if item.span.line == 0 {
      writeln!(f, "{pad}--> {}", item.path.display())?;
    } else {
      writeln!(f, "{pad}--> {}:{}", item.path.display(), item.span)?;
    }
    if let Some(text) = line {
      // Tabs are drawn as one space so the caret stays under the right character; other
      // control characters (a NUL, an escape sequence) as U+FFFD, never sent to the terminal.
      let text: String = text
        .chars()
        .map(|c| match c {
          '\t' => ' ',
          c if c.is_control() => char::REPLACEMENT_CHARACTER,
          c => c,
        })
        .collect();
      let length = text.chars().count();
      let start = item.span.column.saturating_sub(1).min(length);
      let width = item.width.max(1).min(length.saturating_sub(start).max(1));
      writeln!(f, "{pad} |")?;
      writeln!(f, "{}", format!("{} | {text}", item.span.line).trim_end())?;
      writeln!(f, "{pad} | {}{}", " ".repeat(start), "^".repeat(width))?;
    }
    if !item.key.is_empty() {
      writeln!(f, "{pad} = key: {}", item.key)?;
    }
    if let Some(hint) = item.hint() {
      writeln!(f, "{pad} = hint: {hint}")?;
    }
    Ok(())
  }
}

impl<'a> IntoIterator for &'a Diagnostics {
  type Item = &'a Diagnostic;
  type IntoIter = std::slice::Iter<'a, Diagnostic>;

  fn into_iter(self) -> Self::IntoIter {
    self.items.iter()
  }
}

impl IntoIterator for Diagnostics {
  type Item = Diagnostic;
  type IntoIter = std::vec::IntoIter<Diagnostic>;

  fn into_iter(self) -> Self::IntoIter {
    self.items.into_iter()
  }
}

impl fmt::Display for Diagnostics {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for item in &self.items {
      self.render_one(f, item)?;
      writeln!(f)?;
    }
    let count = self.items.len();
    let noun = if count == 1 { "error" } else { "errors" };
    write!(f, "error: {count} {noun} in {}", self.path.display())
  }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn a_bounded_read_takes_up_to_the_limit_and_refuses_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, "1234").unwrap();
    assert_eq!(read_bounded(&path, 4).unwrap(), b"1234");
    assert!(matches!(read_bounded(&path, 3), Err(BoundedRead::TooLarge)));
    assert!(matches!(
      read_bounded(&dir.path().join("missing"), 4),
      Err(BoundedRead::Io(_))
    ));
    let refused = read_source(Document::Drill, &path).map(|_| ());
    assert!(refused.is_ok());
    assert_eq!(format_bytes(MAX_SOURCE_BYTES), "10 MiB");
    assert_eq!(format_bytes(1000), "1000 bytes");
  }
}
