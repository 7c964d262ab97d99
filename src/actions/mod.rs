//! Actions: the verbs of a runbook. One file per family, one entry per action in [`ACTIONS`].
//!
//! An action is either a **check** (read-only: it looks at the world and passes or fails) or an
//! **effect** (mutating). An effect implements three things, which is what makes a resumed run
//! exactly-once in effect:
//!
//! * `observe` — read the world and say whether the effect is already in place, underway, or
//!   absent, and describe the change that `apply` would make. Read-only; also what `plan` shows.
//! * `apply` — make the change. Only called when `observe` said `Absent`, after the engine has
//!   journalled the intent. Must be safe to call again if a crash lost its outcome.
//! * `verify` — wait until the effect is true in the world and return the step's outputs.
//!
//! Actions talk to the world only through [`Cloud`]. Arguments arrive bound and typed ([`Args`]):
//! durations as milliseconds, integers as numbers, so actions never parse text.

use std::{collections::BTreeMap, future::Future, time::Duration};

use serde_json::Value as Json;

use crate::{
  cloud::{Cloud, CloudError},
  runbook::{ActionCatalog, ActionSpec, FieldKind, FieldSpec},
};

pub mod arc;
pub mod autoscaling;
pub mod cloudwatch;
pub mod ecs;
pub mod elbv2;
pub mod exec;
pub mod http;
pub mod notify;
pub mod rds;
pub mod route53;
pub mod s3;
pub mod wait;

/// Result of an action.
pub type ActionResult<T> = Result<T, ActionError>;

/// Why an action failed.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionError {
  pub message: String,
  /// The provider error behind it, with its code and request id (boxed: errors travel in every
  /// `Result` of every action, and are rare).
  pub cloud: Option<Box<CloudError>>,
  pub retryable: bool,
}

impl ActionError {
  /// A failure that retrying will not fix (a guard refused, a check failed).
  pub fn failed(message: impl Into<String>) -> Self {
    Self {
      message: message.into(),
      cloud: None,
      retryable: false,
    }
  }

  /// A failure that may pass if tried again later.
  pub fn retryable(message: impl Into<String>) -> Self {
    Self {
      message: message.into(),
      cloud: None,
      retryable: true,
    }
  }
}

impl std::fmt::Display for ActionError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(&self.message)
  }
}

impl From<CloudError> for ActionError {
  fn from(err: CloudError) -> Self {
    Self {
      message: err.to_string(),
      retryable: err.is_retryable(),
      cloud: Some(Box::new(err)),
    }
  }
}

/// What the engine tells an action about the run it is part of.
pub struct Ctx<'a> {
  pub cloud: &'a Cloud,
  pub run_id: &'a str,
  pub step_id: &'a str,
  /// The runbook's RPO, the default limit for data-loss guards.
  pub rpo: Option<Duration>,
  /// The operator accepted losing more data than the RPO (`--accept-data-loss` or the step's
  /// `accept_data_loss: true`).
  pub accept_data_loss: bool,
  /// The operator forced the run (`--force`): DNS may be flipped to a target whose health check
  /// is unhealthy.
  pub force: bool,
  /// Reports what a long wait is waiting on ("replica status: modifying").
  pub progress: &'a (dyn Fn(&str) + Send + Sync),
  /// Becomes true when the run is interrupted: waits stop early.
  pub cancel: tokio::sync::watch::Receiver<bool>,
  /// Planning: look once, never wait (a wait that is not yet satisfied reports what it saw).
  pub single_probe: bool,
  /// How long the step expects to take (its `budget`), if it says: waits poll densely enough
  /// to notice completion within a hundredth of it (see [`poll_interval`]).
  pub expected: Option<Duration>,
  /// Facts about the run as a whole, for notifications ("failover done in 4m10s, RTO 15m").
  pub run: RunFacts<'a>,
  /// Journals that a request is about to leave the process (`step_dispatched`, fsynced), so a
  /// resumed run can tell "never sent" from "sent, answer lost". `None` where nothing is
  /// journalled (planning, drill notifications).
  pub dispatch: Option<&'a DispatchHook<'a>>,
  /// Journals the process group a command started (`process_started`, fsynced). `None` where
  /// nothing is journalled.
  pub processes: Option<&'a ProcessHook<'a>>,
}

/// Journals a dispatch (`what` went out, and where); `Err` when the journal cannot be written.
pub type DispatchHook<'a> = dyn Fn(&str) -> Result<(), String> + Send + Sync + 'a;

/// Journals a started process group (its pgid and its leader's start time); `Err` when the
/// journal cannot be written.
pub type ProcessHook<'a> = dyn Fn(u32, u64) -> Result<(), String> + Send + Sync + 'a;

impl<'a> Ctx<'a> {
  /// A context with no guards relaxed, no budget, no dispatch journal and no run facts: what a
  /// caller outside the engine starts from, setting the fields it knows with `..Ctx::new(..)`.
  pub fn new(
    cloud: &'a Cloud,
    run_id: &'a str,
    step_id: &'a str,
    progress: &'a (dyn Fn(&str) + Send + Sync),
    cancel: tokio::sync::watch::Receiver<bool>,
  ) -> Ctx<'a> {
    Ctx {
      cloud,
      run_id,
      step_id,
      rpo: None,
      accept_data_loss: false,
      force: false,
      progress,
      cancel,
      single_probe: false,
      expected: None,
      run: RunFacts::default(),
      dispatch: None,
      processes: None,
    }
  }
}

/// What a step may know about the run around it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFacts<'a> {
  /// The runbook's name.
  pub runbook: &'a str,
  /// The runbook's RTO target.
  pub rto: Option<Duration>,
  /// Backend time from the incident start (default: the run's start) to this step's start: the
  /// RTO clock as the step sees it.
  pub elapsed: Duration,
  /// The runbook's secrets by the environment variable each is read from: a command never
  /// inherits those variables (`exec.command`).
  pub secrets: Option<&'a BTreeMap<String, String>>,
}

impl Ctx<'_> {
  pub fn cancelled(&self) -> bool {
    *self.cancel.borrow()
  }

  /// Call right before sending a request that `observe` cannot see afterwards: journals the
  /// dispatch. A journal that cannot be written stops the send (the request has not left).
  pub fn dispatching(&self, what: &str) -> ActionResult<()> {
    match self.dispatch {
      Some(journal) => journal(what).map_err(|err| ActionError::failed(format!("journal: {err}"))),
      None => Ok(()),
    }
  }

  /// Call right after a command started its process group: journals it, so that a drctl
  /// killed before it could stop the group leaves a record of it.
  pub fn process_started(&self, pgid: u32, leader_start: u64) -> ActionResult<()> {
    match self.processes {
      Some(journal) => {
        journal(pgid, leader_start).map_err(|err| ActionError::failed(format!("journal: {err}")))
      }
      None => Ok(()),
    }
  }
}

/// A step's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
  pub summary: String,
  pub outputs: BTreeMap<String, String>,
  /// A data-loss window this step measured (replica lag, backup age), or why it could not:
  /// feeds RPO achieved.
  pub data_loss: Option<crate::state::DataLoss>,
}

impl Outcome {
  pub fn new(summary: impl Into<String>) -> Self {
    Self {
      summary: summary.into(),
      ..Self::default()
    }
  }

  pub fn output(mut self, key: &str, value: impl ToString) -> Self {
    self.outputs.insert(key.to_string(), value.to_string());
    self
  }

  pub fn data_loss(mut self, window: Option<Duration>) -> Self {
    self.data_loss = window.map(crate::state::DataLoss::Bounded);
    self
  }
}

/// Where the world stands relative to an effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Observed {
  /// Already in place: nothing to apply.
  Done,
  /// A change toward it is underway (ours, from before a crash): wait, don't apply again.
  InProgress,
  /// Not in place: apply.
  Absent,
}

/// What `observe` saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
  pub state: Observed,
  /// The current state, in words ("app-db-replica: available, replica of app-db, lag 4s").
  pub current: String,
  /// The change `apply` would make ("promote app-db-replica to a standalone instance").
  pub change: String,
  /// The data-loss window the change would incur, measured now (it may be gone afterwards), or
  /// why it cannot be measured.
  pub data_loss: Option<crate::state::DataLoss>,
}

impl Observation {
  pub fn new(state: Observed, current: impl Into<String>, change: impl Into<String>) -> Self {
    Self {
      state,
      current: current.into(),
      change: change.into(),
      data_loss: None,
    }
  }
}

/// A read-only action.
#[async_trait::async_trait]
pub trait Check: Send + Sync {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome>;
}

/// A mutating action. See the module documentation for the contract.
#[async_trait::async_trait]
pub trait Effect: Send + Sync {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation>;
  /// Returns a token for `verify` (e.g. a Route 53 change id), when there is one.
  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>>;
  /// `token` is `None` when the effect was already in place or underway before this process.
  async fn verify(&self, ctx: &Ctx<'_>, args: &Args, token: Option<&str>) -> ActionResult<Outcome>;

  /// At-most-once delivery. Called on resume for a step whose journal shows a request was
  /// dispatched ([`Ctx::dispatching`]) with no outcome after it: it left the process and its
  /// answer was lost, so it may or may not have arrived. `Some(outcome)` records that outcome
  /// without sending again — for effects where a duplicate is worse than a possible loss (a
  /// second page to a human). `None` (the default): observe and apply again, at least once.
  fn unconfirmed(&self, _ctx: &Ctx<'_>, _args: &Args) -> Option<Outcome> {
    None
  }
}

/// How an action behaves.
#[derive(Clone, Copy)]
pub enum Behaviour {
  Check(&'static dyn Check),
  Effect(&'static dyn Effect),
}

/// An entry of the action table.
#[derive(Clone, Copy)]
pub struct ActionDef {
  pub spec: &'static ActionSpec,
  pub behaviour: Behaviour,
}

/// Every action drctl knows.
pub static ACTIONS: &[ActionDef] = &[
  route53::HEALTH_CHECK,
  route53::FAILOVER,
  route53::SET_HEALTH_CHECK,
  rds::REPLICA_STATUS,
  rds::PROMOTE_REPLICA,
  rds::LATEST_SNAPSHOT,
  rds::RESTORE_SNAPSHOT,
  rds::DELETE_INSTANCE,
  rds::FAILOVER_GLOBAL_CLUSTER,
  ecs::SCALE_SERVICE,
  ecs::WAIT_STABLE,
  s3::OBJECT_AGE,
  s3::VERIFY_OBJECT,
  s3::REPLICATION_STATUS,
  s3::REPLICATION_LAG,
  http::CHECK,
  notify::SLACK,
  notify::PAGERDUTY,
  notify::WEBHOOK,
  exec::COMMAND,
  wait::SLEEP,
  wait::UNTIL,
  rds::CREATE_REPLICA,
  rds::RETIRE_INSTANCE,
  elbv2::TARGET_HEALTH,
  arc::ROUTING_CONTROL,
  cloudwatch::ALARM_STATE,
  autoscaling::SET_CAPACITY,
];

/// Look an action up by name.
pub fn lookup(name: &str) -> Option<&'static ActionDef> {
  ACTIONS.iter().find(|def| def.spec.name == name)
}

/// The action table as the validator sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalog;

impl ActionCatalog for Catalog {
  fn get(&self, name: &str) -> Option<&ActionSpec> {
    lookup(name).map(|def| def.spec)
  }

  fn names(&self) -> Vec<&'static str> {
    ACTIONS.iter().map(|def| def.spec.name).collect()
  }
}

/// Every action's spec, in table order (for the JSON Schema).
pub fn specs() -> Vec<ActionSpec> {
  ACTIONS.iter().map(|def| *def.spec).collect()
}

/// Every AWS operation any action may send that changes the world, by name.
pub fn mutating_operations() -> Vec<&'static crate::cloud::ops::Op> {
  let mut operations: Vec<&'static crate::cloud::ops::Op> = ACTIONS
    .iter()
    .flat_map(|def| def.spec.mutating_operations())
    .collect();
  operations.sort_unstable_by_key(|op| op.name);
  operations.dedup();
  operations
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// Bound, typed `with` arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(serde_json::Map<String, Json>);

impl Args {
  pub fn as_json(&self) -> &serde_json::Map<String, Json> {
    &self.0
  }

  fn missing(key: &str) -> ActionError {
    ActionError::failed(format!("`with.{key}` is required"))
  }

  pub fn opt_str(&self, key: &str) -> Option<&str> {
    self.0.get(key).and_then(Json::as_str)
  }

  pub fn str(&self, key: &str) -> ActionResult<&str> {
    self.opt_str(key).ok_or_else(|| Self::missing(key))
  }

  pub fn opt_int(&self, key: &str) -> Option<i64> {
    self.0.get(key).and_then(Json::as_i64)
  }

  pub fn int(&self, key: &str) -> ActionResult<i64> {
    self.opt_int(key).ok_or_else(|| Self::missing(key))
  }

  /// A non-negative integer field (a [`FieldKind::ByteSize`] is bound to one).
  pub fn opt_u64(&self, key: &str) -> Option<u64> {
    self.0.get(key).and_then(Json::as_u64)
  }

  pub fn opt_bool(&self, key: &str) -> Option<bool> {
    self.0.get(key).and_then(Json::as_bool)
  }

  pub fn opt_duration(&self, key: &str) -> Option<Duration> {
    self
      .0
      .get(key)
      .and_then(Json::as_u64)
      .map(Duration::from_millis)
  }

  pub fn duration(&self, key: &str) -> ActionResult<Duration> {
    self.opt_duration(key).ok_or_else(|| Self::missing(key))
  }

  pub fn string_list(&self, key: &str) -> Vec<String> {
    self
      .0
      .get(key)
      .and_then(Json::as_array)
      .map(|items| {
        items
          .iter()
          .filter_map(|item| item.as_str().map(str::to_string))
          .collect()
      })
      .unwrap_or_default()
  }

  pub fn string_map(&self, key: &str) -> BTreeMap<String, String> {
    self
      .0
      .get(key)
      .and_then(Json::as_object)
      .map(|map| {
        map
          .iter()
          .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
          .collect()
      })
      .unwrap_or_default()
  }

  pub fn objects(&self, key: &str) -> Vec<Args> {
    self
      .0
      .get(key)
      .and_then(Json::as_array)
      .map(|items| {
        items
          .iter()
          .filter_map(|item| item.as_object().cloned().map(Args))
          .collect()
      })
      .unwrap_or_default()
  }

  pub fn json(&self, key: &str) -> Option<&Json> {
    self.0.get(key)
  }

  /// Arguments bound earlier and read back as [`Args::as_json`] gave them (a pending region
  /// fence's, from its journal): already typed, so not bound again.
  pub fn from_bound(bound: serde_json::Map<String, Json>) -> Args {
    Args(bound)
  }
}

/// Bind rendered `with` values (strings, lists and maps of strings) to an action's schema:
/// check required fields and convert each to its type. Errors name the field.
pub fn bind(spec: &ActionSpec, rendered: &serde_json::Map<String, Json>) -> Result<Args, String> {
  bind_fields(spec.fields, rendered, "with").map(Args)
}

fn bind_fields(
  fields: &[FieldSpec],
  rendered: &serde_json::Map<String, Json>,
  at: &str,
) -> Result<serde_json::Map<String, Json>, String> {
  let mut out = serde_json::Map::new();
  for field in fields {
    match rendered.get(field.name) {
      Some(value) => {
        let path = format!("{at}.{}", field.name);
        out.insert(
          field.name.to_string(),
          bind_value(field.kind, value, &path)?,
        );
      }
      None if field.required => return Err(format!("`{at}.{}` is required", field.name)),
      None => {}
    }
  }
  if let Some(unknown) = rendered
    .keys()
    .find(|key| !fields.iter().any(|f| f.name == *key))
  {
    return Err(format!("`{at}.{unknown}` is not a field of this action"));
  }
  Ok(out)
}

fn bind_value(kind: FieldKind, value: &Json, path: &str) -> Result<Json, String> {
  let text = || {
    value
      .as_str()
      .map(str::to_string)
      .or_else(|| match value {
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
      })
      .ok_or_else(|| format!("`{path}` must be a single value"))
  };
  Ok(match kind {
    FieldKind::String => Json::String(text()?),
    FieldKind::Int => {
      let text = text()?;
      Json::from(
        text
          .trim()
          .parse::<i64>()
          .map_err(|_| format!("`{path}` must be an integer, got `{text}`"))?,
      )
    }
    FieldKind::Bool => {
      let text = text()?;
      Json::Bool(match text.trim() {
        "true" => true,
        "false" => false,
        _ => return Err(format!("`{path}` must be true or false, got `{text}`")),
      })
    }
    FieldKind::Duration => {
      let text = text()?;
      let duration =
        crate::runbook::parse_duration(text.trim()).map_err(|err| format!("`{path}`: {err}"))?;
      Json::from(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
    FieldKind::ByteSize => {
      let text = text()?;
      let size =
        crate::runbook::parse_byte_size(&text).map_err(|err| format!("`{path}`: {err}"))?;
      Json::from(size)
    }
    FieldKind::NotificationUrl => {
      let text = text()?;
      if let Err(shown) = crate::runbook::url::check_notification_url(&text) {
        return Err(format!(
          "`{path}` must be {}, not {shown}",
          crate::runbook::url::NOTIFICATION_URL
        ));
      }
      Json::String(text)
    }
    FieldKind::CountOrAll => {
      let text = text()?;
      crate::runbook::action_spec::parse_count_or_all(&text)
        .map_err(|err| format!("`{path}`: {err}"))?;
      Json::String(text)
    }
    FieldKind::Enum(allowed) => {
      let text = text()?;
      if !allowed.contains(&text.as_str()) {
        return Err(format!(
          "`{path}` must be one of {}, got `{text}`",
          allowed.join(", ")
        ));
      }
      Json::String(text)
    }
    FieldKind::StringList => match value {
      Json::Array(items) => Json::Array(
        items
          .iter()
          .enumerate()
          .map(|(i, item)| bind_value(FieldKind::String, item, &format!("{path}[{i}]")))
          .collect::<Result<_, _>>()?,
      ),
      _ => return Err(format!("`{path}` must be a list")),
    },
    FieldKind::StringMap => match value {
      Json::Object(map) => Json::Object(
        map
          .iter()
          .map(|(k, v)| {
            Ok((
              k.clone(),
              bind_value(FieldKind::String, v, &format!("{path}.{k}"))?,
            ))
          })
          .collect::<Result<_, String>>()?,
      ),
      _ => return Err(format!("`{path}` must be a map")),
    },
    FieldKind::Objects(fields) => match value {
      Json::Array(items) => Json::Array(
        items
          .iter()
          .enumerate()
          .map(|(i, item)| {
            let at = format!("{path}[{i}]");
            item
              .as_object()
              .ok_or_else(|| format!("`{at}` must be a map"))
              .and_then(|map| bind_fields(fields, map, &at))
              .map(Json::Object)
          })
          .collect::<Result<_, _>>()?,
      ),
      _ => return Err(format!("`{path}` must be a list")),
    },
    FieldKind::Any => value.clone(),
  })
}

// ---------------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------------

/// One look at something being waited on.
pub enum Poll<T> {
  Ready(T),
  /// Not yet; the status in words ("replica status: modifying").
  Pending(String),
}

/// How long a wait sleeps before its next look, `elapsed` into the wait, for a step that
/// expects to take `expected` (its budget).
///
/// A twentieth of the time waited so far, at least 1 s: a short wait is noticed quickly and a
/// long one does not hammer the API. The interval is also what a completion can go unnoticed
/// for, and that lag adds straight to the RTO, so it is capped: at a hundredth of the step's
/// expected duration (between 2 s and 15 s) when the step gives one, else at 15 s. A five-minute
/// promotion budgeted at 6 m is then noticed within 3.6 s of completing instead of up to 15 s,
/// for about 110 `DescribeDBInstances` calls instead of 75 (0.4/s; the AWS CLI's waiter makes
/// 10 but notices up to 30 s late). The 2 s floor keeps a one-minute Route 53 change at about
/// 45 `GetChange` calls, as before, well inside Route 53's 5 requests/s per account.
pub fn poll_interval(elapsed: Duration, expected: Option<Duration>) -> Duration {
  const MIN: Duration = Duration::from_secs(1);
  const MAX: Duration = Duration::from_secs(15);
  const MIN_CAP: Duration = Duration::from_secs(2);
  let cap = expected.map_or(MAX, |expected| (expected / 100).clamp(MIN_CAP, MAX));
  (elapsed / 20).clamp(MIN, cap)
}

/// Poll until ready, sleeping [`poll_interval`] between looks (backend time). Transient
/// (retryable) errors are tolerated a few times in a row. The step's timeout bounds the whole
/// wait; an interrupt ends it early.
pub async fn poll_until<T, F, Fut>(ctx: &Ctx<'_>, mut probe: F) -> ActionResult<T>
where
  F: FnMut() -> Fut,
  Fut: Future<Output = ActionResult<Poll<T>>>,
{
  const TOLERATED_ERRORS: u32 = 5;
  let clock = ctx.cloud.clock;
  let start = clock.now();
  let mut errors = 0;
  let mut last_status = String::new();
  loop {
    match probe().await {
      Ok(Poll::Ready(value)) => return Ok(value),
      Ok(Poll::Pending(status)) if ctx.single_probe => {
        return Err(ActionError::failed(format!("not yet: {status}")))
      }
      Ok(Poll::Pending(status)) => {
        errors = 0;
        if status != last_status {
          (ctx.progress)(&status);
          last_status = status;
        }
      }
      Err(err) if err.retryable && errors < TOLERATED_ERRORS => {
        errors += 1;
        // Shown, so that a wait the step's timeout ends still says what it was failing on
        // (an endpoint that does not answer, in a region that is down).
        let status = format!("retrying after: {err}");
        if status != last_status {
          (ctx.progress)(&status);
          last_status = status;
        }
      }
      Err(err) => return Err(err),
    }
    if ctx.cancelled() {
      return Err(ActionError::retryable(format!(
        "interrupted while waiting ({last_status})"
      )));
    }
    let interval = poll_interval(clock.elapsed_since(start), ctx.expected);
    let mut cancel = ctx.cancel.clone();
    tokio::select! {
      _ = clock.sleep(interval) => {}
      _ = cancel.wait_for(|cancelled| *cancelled) => {}
    }
  }
}

/// Format a duration for people: `4s`, `2m10s`, `1h05m` (the message style of
/// [`crate::runbook::format_human`]).
pub fn human(duration: Duration) -> String {
  crate::runbook::format_human(duration, crate::runbook::HumanStyle::Message)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn every_action_name_is_unique_and_mutating_ones_are_effects() {
    let mut names: Vec<&str> = ACTIONS.iter().map(|def| def.spec.name).collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count);
    for def in ACTIONS {
      let is_effect = matches!(def.behaviour, Behaviour::Effect(_));
      assert_eq!(def.spec.mutating, is_effect, "{}", def.spec.name);
      if !def.spec.mutating {
        assert!(
          def.spec.mutating_operations().next().is_none(),
          "{}",
          def.spec.name
        );
      }
    }
  }

  /// Each declared call says where it goes in terms the action has: a global call is on a
  /// global operation, a regional one reads fields the action declares, and a mutating AWS
  /// action declares the mutating operations it sends.
  #[test]
  fn every_declared_call_is_routed_through_fields_the_action_has() {
    use crate::{
      cloud::ops::Endpoint,
      runbook::{CallRegion, FieldKind},
    };
    for def in ACTIONS {
      let spec = def.spec;
      for call in spec.calls {
        let name = format!("{} {}", spec.name, call.op.name);
        match (call.region, call.op.endpoint) {
          (CallRegion::Global, endpoint) => {
            assert!(matches!(endpoint, Endpoint::Global { .. }), "{name}")
          }
          (CallRegion::Field { arn, field }, Endpoint::Regional) => {
            for field in arn.into_iter().chain(field) {
              assert!(spec.field(field).is_some(), "{name}: no field `{field}`");
            }
          }
          (CallRegion::AnyOf { list, key }, Endpoint::Regional) => match spec.field(list) {
            Some(FieldSpec {
              kind: FieldKind::Objects(items),
              ..
            }) => assert!(items.iter().any(|item| item.name == key), "{name}"),
            other => panic!("{name}: `{list}` is not a list of objects: {other:?}"),
          },
          (_, Endpoint::Global { .. }) => panic!("{name}: a global operation routed by field"),
        }
      }
      // An AWS action that changes the world declares the call that does (notifications
      // change the world over HTTP, with no AWS call).
      if spec.mutating && !spec.calls.is_empty() {
        assert!(spec.mutating_operations().next().is_some(), "{}", spec.name);
      }
    }
  }

  #[test]
  fn bind_converts_types_and_names_the_bad_field() {
    let spec = rds::PROMOTE_REPLICA.spec;
    let rendered = serde_json::json!({"region": "us-west-2", "instance": "db", "max_lag": "5m"});
    let args = bind(spec, rendered.as_object().unwrap()).unwrap();
    assert_eq!(args.opt_duration("max_lag"), Some(Duration::from_secs(300)));
    let bad = serde_json::json!({"region": "us-west-2", "instance": "db", "max_lag": "soon"});
    let err = bind(spec, bad.as_object().unwrap()).unwrap_err();
    assert!(err.starts_with("`with.max_lag`"), "{err}");
    let missing = serde_json::json!({"region": "us-west-2"});
    assert_eq!(
      bind(spec, missing.as_object().unwrap()).unwrap_err(),
      "`with.instance` is required"
    );
  }

  #[test]
  fn poll_intervals_grow_with_the_wait_and_are_capped_by_the_budget() {
    let secs = Duration::from_secs;
    assert_eq!(poll_interval(secs(0), None), secs(1));
    assert_eq!(poll_interval(secs(100), None), secs(5));
    assert_eq!(poll_interval(secs(600), None), secs(15));
    // A 6 m budget caps the interval at 3.6 s; a short budget never below 2 s, a long one
    // never above 15 s.
    assert_eq!(
      poll_interval(secs(300), Some(secs(360))),
      Duration::from_millis(3600)
    );
    assert_eq!(poll_interval(secs(60), Some(secs(90))), secs(2));
    assert_eq!(poll_interval(secs(10), Some(secs(90))), secs(1));
    assert_eq!(poll_interval(secs(3600), Some(secs(7200))), secs(15));
  }

  /// Polls `poll_until` (paused tokio time, a simulated cloud at scale 1) on something that
  /// completes `done` after the wait starts: (how late it was noticed, how many looks).
  async fn wait_for(done: Duration, expected: Option<Duration>) -> (Duration, u32) {
    let dir = tempfile::tempdir().unwrap();
    let sim = crate::cloud::sim::Sim::open(&crate::cloud::sim::SimOptions {
      world: None,
      time_scale: Some(1.0),
      dir: dir.path().join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    let cloud = sim.cloud();
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx {
      expected,
      ..Ctx::new(&cloud, "run-1", "promote-db", &progress, cancel)
    };
    let start = tokio::time::Instant::now();
    let looks = std::cell::Cell::new(0u32);
    poll_until(&ctx, || async {
      looks.set(looks.get() + 1);
      Ok(if start.elapsed() >= done {
        Poll::Ready(())
      } else {
        Poll::Pending("modifying".into())
      })
    })
    .await
    .unwrap();
    (start.elapsed() - done, looks.get())
  }

  #[tokio::test(start_paused = true)]
  async fn a_budgeted_wait_notices_completion_within_a_hundredth_of_its_budget() {
    // The hand-run runbook's 5 m promotion, in a step budgeted at 6 m.
    let (late, looks) = wait_for(Duration::from_secs(300), Some(Duration::from_secs(360))).await;
    assert!(late <= Duration::from_millis(3600), "noticed {late:?} late");
    assert!((90..=120).contains(&looks), "{looks} looks");
    // Without a budget: intervals grow to 15 s, so fewer looks but up to 15 s late.
    let (late, looks) = wait_for(Duration::from_secs(300), None).await;
    assert!(late <= Duration::from_secs(15), "noticed {late:?} late");
    assert!((60..90).contains(&looks), "{looks} looks");
    // The one-minute Route 53 propagation in a step budgeted at 90 s.
    let (late, looks) = wait_for(Duration::from_secs(60), Some(Duration::from_secs(90))).await;
    assert!(late <= Duration::from_secs(2), "noticed {late:?} late");
    assert!(looks <= 46, "{looks} looks");
  }

  #[test]
  fn human_durations() {
    assert_eq!(human(Duration::from_secs(4)), "4s");
    assert_eq!(human(Duration::from_millis(1500)), "1.5s");
    assert_eq!(human(Duration::from_secs(130)), "2m10s");
    assert_eq!(human(Duration::from_secs(3900)), "1h05m");
  }
}
