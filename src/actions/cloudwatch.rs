//! CloudWatch alarms: wait until a team's own alarms are in a state (ALARM to confirm an outage,
//! OK to decide the application is healthy again).

use chrono::{DateTime, SecondsFormat, Utc};

use super::{
  poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Outcome, Poll,
};
use crate::{
  cloud::cloudwatch::{Alarm, AlarmState, MAX_ALARM_NAMES},
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
};

pub const ALARM_STATE: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "cloudwatch.alarm_state",
    mutating: false,
    doc: "Assert that every named CloudWatch alarm is in a state (ALARM or OK); with `within`, \
          keep looking until they all are.",
    fields: &[
      FieldSpec::required(
        "alarms",
        FieldKind::StringList,
        "Alarm names (metric or composite alarms), 1 to 100",
      ),
      FieldSpec::required("region", FieldKind::String, "AWS region the alarms live in"),
      FieldSpec::required(
        "state",
        FieldKind::Enum(&["ALARM", "OK"]),
        "The state every alarm must be in; INSUFFICIENT_DATA is neither",
      ),
      FieldSpec::optional(
        "within",
        FieldKind::Duration,
        "Keep looking for up to this long",
      ),
    ],
    calls: &[Call::to(
      &crate::cloud::cloudwatch::ops::DESCRIBE_ALARMS,
      "region",
    )],
    outputs: &["in_state", "total", "states", "since"],
  },
  behaviour: Behaviour::Check(&AlarmStateCheck),
};

struct AlarmStateCheck;

/// The names asked for, each once, in the runbook's order.
fn names(args: &Args) -> ActionResult<Vec<String>> {
  let mut names: Vec<String> = Vec::new();
  for name in args.string_list("alarms") {
    if name.trim().is_empty() {
      return Err(ActionError::failed("`with.alarms` has an empty alarm name"));
    }
    if !names.contains(&name) {
      names.push(name);
    }
  }
  if names.is_empty() {
    return Err(ActionError::failed(
      "`with.alarms` names no alarm: there would be nothing to check",
    ));
  }
  if names.len() > MAX_ALARM_NAMES {
    return Err(ActionError::failed(format!(
      "`with.alarms` names {} alarms; CloudWatch describes at most {MAX_ALARM_NAMES} at once",
      names.len()
    )));
  }
  Ok(names)
}

fn wanted(args: &Args) -> ActionResult<AlarmState> {
  match args.str("state")? {
    "ALARM" => Ok(AlarmState::Alarm),
    "OK" => Ok(AlarmState::Ok),
    other => Err(ActionError::failed(format!(
      "`with.state` must be ALARM or OK, got `{other}`"
    ))),
  }
}

/// What one look saw, in the order the names were given.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
  wanted: AlarmState,
  alarms: Vec<Alarm>,
}

impl Seen {
  fn in_state(&self) -> usize {
    self
      .alarms
      .iter()
      .filter(|alarm| alarm.state == self.wanted)
      .count()
  }

  fn holds(&self) -> bool {
    self.in_state() == self.alarms.len()
  }

  /// `app-a=OK,app-b=ALARM`.
  fn states(&self) -> String {
    self
      .alarms
      .iter()
      .map(|alarm| format!("{}={}", alarm.name, alarm.state))
      .collect::<Vec<_>>()
      .join(",")
  }

  /// Since when every alarm has been in the wanted state: the latest of their state changes.
  fn since(&self) -> Option<DateTime<Utc>> {
    self.alarms.iter().filter_map(|alarm| alarm.since).max()
  }

  /// `2/2 alarms OK in us-west-2`, and each alarm not in the state with its reason.
  fn describe(&self, region: &str) -> String {
    let mut text = format!(
      "{}/{} alarms {} in {region}",
      self.in_state(),
      self.alarms.len(),
      self.wanted
    );
    let others: Vec<String> = self
      .alarms
      .iter()
      .filter(|alarm| alarm.state != self.wanted)
      .map(|alarm| {
        let since = alarm
          .since
          .map(|at| format!(" since {}", at.to_rfc3339_opts(SecondsFormat::Secs, true)))
          .unwrap_or_default();
        let reason = if alarm.reason.is_empty() {
          String::new()
        } else {
          format!(": {}", alarm.reason)
        };
        format!("{} {}{since}{reason}", alarm.name, alarm.state)
      })
      .collect();
    if !others.is_empty() {
      text.push_str(&format!("; not {}: ", self.wanted));
      text.push_str(&others.join("; "));
    }
    text
  }
}

/// The alarms in the order asked; a name CloudWatch does not know is an error (a typo would
/// otherwise wait out `within` for an alarm that never answers).
fn in_order(names: &[String], found: Vec<Alarm>, region: &str) -> ActionResult<Vec<Alarm>> {
  let missing: Vec<&str> = names
    .iter()
    .filter(|name| !found.iter().any(|alarm| &alarm.name == *name))
    .map(String::as_str)
    .collect();
  if !missing.is_empty() {
    return Err(ActionError::failed(format!(
      "no CloudWatch alarm named {} in {region}",
      missing
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
    )));
  }
  Ok(
    names
      .iter()
      .filter_map(|name| found.iter().find(|alarm| &alarm.name == name).cloned())
      .collect(),
  )
}

#[async_trait::async_trait]
impl Check for AlarmStateCheck {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let names = names(args)?;
    let region = args.str("region")?;
    let wanted = wanted(args)?;
    let within = args.opt_duration("within");
    let start = ctx.cloud.clock.now();
    let seen = poll_until(ctx, || async {
      let found = ctx.cloud.cloudwatch.describe_alarms(region, &names).await?;
      let seen = Seen {
        wanted,
        alarms: in_order(&names, found, region)?,
      };
      if seen.holds() {
        return Ok(Poll::Ready(seen));
      }
      let status = seen.describe(region);
      match within {
        Some(within) if ctx.cloud.clock.elapsed_since(start) < within => Ok(Poll::Pending(status)),
        _ => Err(ActionError::failed(status)),
      }
    })
    .await?;
    let since = seen
      .since()
      .map(|at| at.to_rfc3339_opts(SecondsFormat::Millis, true))
      .unwrap_or_default();
    Ok(
      Outcome::new(seen.describe(region))
        .output("in_state", seen.in_state())
        .output("total", seen.alarms.len())
        .output("states", seen.states())
        .output("since", since),
    )
  }
}

#[cfg(test)]
mod tests {
  use std::time::Duration;

  use super::*;
  use crate::cloud::sim::{Sim, SimOptions, BUILTIN_WORLD};

  /// The built-in world at scale 1 following paused tokio time; `faults` replaces its own.
  fn world(dir: &std::path::Path, faults: &str) -> std::sync::Arc<Sim> {
    let file = dir.join("world.yaml");
    std::fs::write(&file, BUILTIN_WORLD.replace("faults: {}", faults)).unwrap();
    let sim = Sim::open(&SimOptions {
      world: Some(file),
      time_scale: Some(1.0),
      dir: dir.join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    sim
  }

  fn bound(with: serde_json::Value) -> Args {
    crate::actions::bind(ALARM_STATE.spec, with.as_object().unwrap()).unwrap()
  }

  /// The game day's primary alarm confirms the outage at once; the standby's alarm clears only
  /// once its targets are healthy and a period has ended, and `within` waits for it; `since` is
  /// when the last alarm of the set entered the state.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_alarm_state_confirms_the_outage_and_waits_for_ok() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path(), "faults: {}");
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "alarms", &progress, cancel);
    let outage = bound(serde_json::json!({
      "alarms": ["app-primary-unhealthy"], "region": "us-west-2", "state": "ALARM",
    }));
    let outcome = AlarmStateCheck.check(&ctx, &outage).await.unwrap();
    assert_eq!(outcome.summary, "1/1 alarms ALARM in us-west-2");
    assert_eq!(outcome.outputs["states"], "app-primary-unhealthy=ALARM");

    let healthy = serde_json::json!({
      "alarms": ["app-standby-unhealthy", "app-primary-unhealthy"], "region": "us-west-2",
      "state": "OK",
    });
    let err = AlarmStateCheck
      .check(&ctx, &bound(healthy.clone()))
      .await
      .unwrap_err();
    assert!(
      err
        .message
        .starts_with("0/2 alarms OK in us-west-2; not OK: app-standby-unhealthy ALARM since ")
        && err
          .message
          .contains("Threshold Crossed: 3 out of the last 3 datapoints were breaching"),
      "{err}"
    );

    cloud
      .ecs
      .update_desired_count("us-west-2", "app-standby", "api", 3)
      .await
      .unwrap();
    let standby = bound(serde_json::json!({
      "alarms": ["app-standby-unhealthy"], "region": "us-west-2", "state": "OK", "within": "5m",
    }));
    let started = tokio::time::Instant::now();
    let outcome = AlarmStateCheck.check(&ctx, &standby).await.unwrap();
    let waited = started.elapsed();
    // Healthy at 174s, OK from the period end at 180s; noticed within a poll interval.
    assert!(
      waited >= Duration::from_secs(180) && waited < Duration::from_secs(200),
      "{waited:?}"
    );
    assert_eq!(outcome.outputs["in_state"], "1");
    assert_eq!(outcome.outputs["total"], "1");
    let created = sim.peek(|world, _| world.model.created_at);
    let since: DateTime<Utc> = outcome.outputs["since"].parse().unwrap();
    // `since` is written to the millisecond.
    assert!(
      (179_999..=180_000).contains(&(since - created).num_milliseconds()),
      "{outcome:?}"
    );
  }

  /// A name CloudWatch does not know fails at once, even with `within` (a typo never becomes a
  /// wait); an empty set, or one over CloudWatch's 100 names, is refused before any call.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_alarm_state_refuses_unknown_and_empty_alarm_sets() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path(), "faults: {}");
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "alarms", &progress, cancel);
    let typo = bound(serde_json::json!({
      "alarms": ["app-standby-unhealthy", "app-standby-unhealty"], "region": "us-west-2",
      "state": "OK", "within": "30m",
    }));
    let started = tokio::time::Instant::now();
    let err = AlarmStateCheck.check(&ctx, &typo).await.unwrap_err();
    assert_eq!(
      err.message,
      "no CloudWatch alarm named `app-standby-unhealty` in us-west-2"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    let elsewhere = bound(serde_json::json!({
      "alarms": ["app-standby-unhealthy"], "region": "us-east-1", "state": "OK",
    }));
    let err = AlarmStateCheck.check(&ctx, &elsewhere).await.unwrap_err();
    assert!(err.message.contains("in us-east-1"), "{err}");

    let empty = bound(serde_json::json!({ "alarms": [], "region": "us-west-2", "state": "OK" }));
    let err = AlarmStateCheck.check(&ctx, &empty).await.unwrap_err();
    assert!(err.message.contains("names no alarm"), "{err}");
    let many: Vec<String> = (0..101).map(|i| format!("alarm-{i}")).collect();
    let many = bound(serde_json::json!({ "alarms": many, "region": "us-west-2", "state": "OK" }));
    let err = AlarmStateCheck.check(&ctx, &many).await.unwrap_err();
    assert!(err.message.contains("at most 100"), "{err}");
  }

  /// With the alarms' region down, CloudWatch cannot be asked: the check fails saying so, and
  /// never reports a state it did not read.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_alarm_state_in_a_region_that_is_down_cannot_be_read() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path(), "faults: { region_down: us-west-2 }");
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "alarms", &progress, cancel);
    let args = bound(serde_json::json!({
      "alarms": ["app-primary-unhealthy"], "region": "us-west-2", "state": "ALARM",
    }));
    let err = AlarmStateCheck.check(&ctx, &args).await.unwrap_err();
    assert!(
      err
        .message
        .contains(crate::cloud::cloudwatch::ops::DESCRIBE_ALARMS.name),
      "{err}"
    );
    assert!(!err.message.contains("alarms ALARM"), "{err}");
  }
}
