//! The validated runbook: what `parse` + `validate` produce and what the planner consumes.
//!
//! Every node that a later phase may need to blame keeps its [`Span`], so an error found at plan
//! or run time (a template that renders to a bad value) can still point at the file.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

use super::template::Template;

/// A position in a source file (1-based line and column).
#[derive(
  Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Span {
  pub line: usize,
  pub column: usize,
}

impl fmt::Display for Span {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}:{}", self.line, self.column)
  }
}

/// The lock group of a runbook that declares none. Every runbook of a state shares it unless it
/// says otherwise, so a failback and a failover of the same application can never run at once.
pub const DEFAULT_LOCK_GROUP: &str = "default";

/// A validated runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
  /// The file it came from (for diagnostics and the journal).
  pub path: PathBuf,
  /// The file's text, kept so that run-time errors can quote it.
  pub source: String,
  pub name: String,
  pub description: Option<String>,
  /// The lock group (`metadata.lock_group`, default [`DEFAULT_LOCK_GROUP`]): at most one live
  /// run of the runbooks of one group holds the group's lock in a state at a time.
  pub lock_group: String,
  /// In declaration order.
  pub params: Vec<Param>,
  /// `vars:` values (templates over params).
  pub vars: Vec<(String, Template)>,
  pub objectives: Objectives,
  pub defaults: StepDefaults,
  /// In declaration order; ids are unique and `needs` form a DAG (checked).
  pub steps: Vec<Step>,
  /// `refuse_pending_fences: true` (a failback): a live run refuses to start while any region
  /// fence is pending (exit 4), so traffic never returns to a region whose old writer or
  /// services were not fenced.
  pub refuse_pending_fences: bool,
}

impl Runbook {
  pub fn step(&self, id: &str) -> Option<&Step> {
    self.steps.iter().find(|step| step.id == id)
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
  String,
  Int,
  Bool,
  Duration,
}

impl fmt::Display for ParamType {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(match self {
      ParamType::String => "string",
      ParamType::Int => "int",
      ParamType::Bool => "bool",
      ParamType::Duration => "duration",
    })
  }
}

/// A typed parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
  Bool(bool),
  Int(i64),
  /// Strings and durations are both carried as their source text (`"5m"`); a duration param's
  /// text has been checked to parse.
  String(String),
}

impl fmt::Display for Value {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      Value::Bool(value) => write!(f, "{value}"),
      Value::Int(value) => write!(f, "{value}"),
      Value::String(value) => f.write_str(value),
    }
  }
}

#[derive(Debug, Clone)]
pub struct Param {
  pub name: String,
  pub kind: ParamType,
  pub required: bool,
  pub default: Option<Value>,
  /// Empty = anything of the right type.
  pub allowed: Vec<Value>,
  pub description: Option<String>,
  /// `secret: true`: the value is redacted from every output like a `${{ secrets.X }}`, and is
  /// not journalled (a resume needs it given again).
  pub secret: bool,
  pub span: Span,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objectives {
  pub rto: Option<Duration>,
  pub rpo: Option<Duration>,
  /// `recovered_when`: what must hold after the run's last step for the application to count as
  /// recovered. With it, the RTO is measured to the moment it held, not to the last step.
  pub recovered_when: Option<RecoveredWhen>,
}

/// How long drctl waits for `recovered_when` when the runbook gives no `within`: long enough for
/// Route 53 propagation (a record's TTL, up to a few minutes) and an alarm's evaluation periods
/// (typically 3 to 5 one-minute periods) to pass several times over, and twice the common
/// 15-minute RTO, so that a recovery that breaches the RTO is still measured rather than cut off.
pub const DEFAULT_RECOVERY_WITHIN: Duration = Duration::from_secs(30 * 60);

/// The longest `recovered_when.within` accepted. The run holds its lock while it waits; a
/// recovery not seen within 6 hours is an incident of its own, not a wait.
pub const MAX_RECOVERY_WITHIN: Duration = Duration::from_secs(6 * 60 * 60);

/// `objectives.recovered_when`: a condition, and how long after the run's last step to wait
/// for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredWhen {
  pub condition: RecoveryCondition,
  /// The bound of the wait, from the end of the run's last step ([`DEFAULT_RECOVERY_WITHIN`]
  /// when not given; at most [`MAX_RECOVERY_WITHIN`]).
  pub within: Duration,
  pub span: Span,
}

/// What "recovered" means.
#[derive(Debug, Clone)]
pub enum RecoveryCondition {
  /// A read-only step of the runbook: recovered once its action passes.
  Step { id: String },
  /// A set of CloudWatch alarms: recovered once every one of them is OK. `call` is the
  /// `cloudwatch.alarm_state` call that checks it (`alarms`, `region`, `state: OK`); `names`
  /// and `region` are their source text, for people.
  Alarms {
    call: ActionCall,
    names: Vec<String>,
    region: String,
  },
}

/// The action a `recovered_when: { alarms }` condition is checked with.
pub const RECOVERY_ALARMS_ACTION: &str = "cloudwatch.alarm_state";

impl PartialEq for RecoveryCondition {
  fn eq(&self, other: &Self) -> bool {
    self.to_string() == other.to_string()
  }
}

impl Eq for RecoveryCondition {}

impl fmt::Display for RecoveryCondition {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      RecoveryCondition::Step { id } => write!(f, "step `{id}` passes"),
      RecoveryCondition::Alarms { names, region, .. } => {
        let names: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
        write!(f, "alarms {} are OK in {region}", names.join(", "))
      }
    }
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
  /// Total attempts including the first (1 = no retry).
  pub attempts: u32,
  /// Delay before the second attempt; doubles each time, with jitter, up to `max_backoff`.
  pub backoff: Duration,
  pub max_backoff: Duration,
}

impl Default for RetryPolicy {
  fn default() -> Self {
    Self {
      attempts: 3,
      backoff: Duration::from_secs(2),
      max_backoff: Duration::from_secs(30),
    }
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepDefaults {
  pub timeout: Duration,
  pub retry: RetryPolicy,
}

impl Default for StepDefaults {
  fn default() -> Self {
    Self {
      timeout: Duration::from_secs(10 * 60),
      retry: RetryPolicy::default(),
    }
  }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
  /// Stop scheduling new steps; always-steps still run. The run fails.
  #[default]
  Abort,
  /// Record the failure and carry on; dependents of the failed step still run.
  Continue,
  /// Like abort, then run the `rollback` of every completed mutating step in reverse order.
  Rollback,
}

/// An action invocation: the action's name and its `with` arguments (templates, not yet rendered).
#[derive(Debug, Clone)]
pub struct ActionCall {
  pub action: String,
  pub action_span: Span,
  pub with: BTreeMap<String, Arg>,
}

/// A `with` argument: a scalar template, a list or a map of them.
#[derive(Debug, Clone)]
pub enum Arg {
  Template(Template, Span),
  List(Vec<Arg>, Span),
  Map(BTreeMap<String, Arg>, Span),
}

impl Arg {
  pub fn span(&self) -> Span {
    match self {
      Arg::Template(_, span) | Arg::List(_, span) | Arg::Map(_, span) => *span,
    }
  }
}

/// A human gate before a step.
#[derive(Debug, Clone)]
pub struct Approval {
  /// What the operator is asked (a template).
  pub prompt: Template,
  /// How long to wait for an answer (modelled time, from the first `approval_requested`);
  /// then the step fails and follows its `on_failure`. `None`: wait until answered.
  pub timeout: Option<Duration>,
  /// The two-person rule: the run's starter cannot approve it, nor can a shared token.
  pub distinct_from_starter: bool,
}

#[derive(Debug, Clone)]
pub struct Step {
  pub id: String,
  pub name: Option<String>,
  pub call: ActionCall,
  pub needs: Vec<String>,
  /// Run the step only when this renders to `true` (otherwise it is skipped).
  pub when: Option<Template>,
  pub timeout: Duration,
  pub retry: RetryPolicy,
  /// Expected duration (modelled): the plan sums budgets along the critical path.
  pub budget: Option<Duration>,
  pub on_failure: OnFailure,
  /// A compensating action, run in reverse order when a later step fails with `rollback`.
  pub rollback: Option<ActionCall>,
  pub approval: Option<Approval>,
  /// `false`: does not count toward RTO (e.g. a final notify). Default `true`.
  pub recovery: bool,
  /// Runs even after a failure or an interrupt (clean-up). Default `false`.
  pub always: bool,
  /// Per-step override: allow data loss beyond the RPO (`rds.promote_replica`).
  pub accept_data_loss: bool,
  /// A region fence (`fence: true`): best effort against the old primary's region. If it
  /// cannot be applied it is journalled as pending, to be applied once the region answers,
  /// and runbooks with `refuse_pending_fences: true` refuse to start until then.
  pub fence: bool,
  pub span: Span,
}
