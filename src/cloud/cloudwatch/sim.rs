//! Simulated CloudWatch alarms. Each alarm of the world file watches one condition of the
//! world, and CloudWatch's evaluation of it is modelled:
//!
//! * the alarm's metric has one datapoint per `period` (modelled time, counted from the
//!   world's creation), read at the period's end: breaching or not;
//! * the alarm is in `ALARM` while at least `datapoints_to_alarm` (default: all) of its last
//!   `evaluation_periods` datapoints breach, and `OK` otherwise, as CloudWatch's "M out of N"
//!   rule decides. So an alarm needs its evaluation periods to fire, and clears a period after
//!   the condition stops breaching (for M = N);
//! * before the world was created the world stood as it was created: an alarm watching a
//!   condition that holds at creation is already in `ALARM` then.
//!
//! Nothing here changes the world: an alarm's state is a pure function of the watched
//! condition at each period's end, read from the world as it stood then (the world as created,
//! replayed up to that instant: [`History`]; [`AlarmSpec::evaluate`]).

use std::{collections::BTreeSet, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Alarm, AlarmState, CloudWatch, MAX_ALARM_NAMES};
use crate::cloud::{
  sim::{
    http::endpoint_key,
    state::{Model, Reject, WorldState},
    world::{ModelDuration, WorldSpec},
    History, SimCloud,
  },
  CloudResult,
};

/// How many periods back an alarm's model looks for the moment it entered its state (a day of
/// one-minute periods); an alarm steady for longer reports that bound as its `since`.
const LOOKBACK_PERIODS: u64 = 1440;

/// The alarms of a world (`cloudwatch:` in a world file).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CloudWatchSpec {
  pub alarms: Vec<AlarmSpec>,
}

/// One metric alarm: `{ region, name, watches, period, evaluation_periods, datapoints_to_alarm }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmSpec {
  /// The region the alarm lives in (where `DescribeAlarms` finds it).
  pub region: String,
  pub name: String,
  /// What its metric breaches on.
  pub watches: Watch,
  /// The metric's period: 10s, 30s or a multiple of 60s (default 1m).
  #[serde(default = "default_period")]
  pub period: ModelDuration,
  /// How many of the latest datapoints the alarm looks at (default 1).
  #[serde(default = "one")]
  pub evaluation_periods: u32,
  /// How many of them must breach for `ALARM` (default: all of them).
  #[serde(default)]
  pub datapoints_to_alarm: Option<u32>,
}

/// The condition an alarm's metric breaches on: a map of one key (`{ region_outage: us-east-1 }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WatchFields", into = "WatchFields")]
pub enum Watch {
  /// The region is in outage (the world's `outages`): a canary in another region that cannot
  /// reach it.
  RegionOutage(String),
  /// A Route 53 health check reports unhealthy (`AWS/Route53` `HealthCheckStatus` < 1).
  HealthCheckFailing(String),
  /// A target group of the alarm's region has fewer healthy targets than `count`
  /// (`AWS/ApplicationELB` `HealthyHostCount` < count).
  HealthyHostsBelow { target_group: String, count: u32 },
  /// An endpoint of the world does not answer 2xx or 3xx (a synthetic canary's `SuccessPercent`).
  EndpointFailing(String),
}

/// [`Watch`] as the world file writes it: exactly one of these keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatchFields {
  #[serde(default, skip_serializing_if = "Option::is_none")]
  region_outage: Option<String>,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  health_check_failing: Option<String>,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  healthy_hosts_below: Option<HostsBelow>,
  #[serde(default, skip_serializing_if = "Option::is_none")]
  endpoint_failing: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsBelow {
  target_group: String,
  count: u32,
}

impl TryFrom<WatchFields> for Watch {
  type Error = String;

  fn try_from(fields: WatchFields) -> Result<Watch, String> {
    let mut found = Vec::new();
    if let Some(region) = fields.region_outage {
      found.push(Watch::RegionOutage(region));
    }
    if let Some(id) = fields.health_check_failing {
      found.push(Watch::HealthCheckFailing(id));
    }
    if let Some(HostsBelow {
      target_group,
      count,
    }) = fields.healthy_hosts_below
    {
      found.push(Watch::HealthyHostsBelow {
        target_group,
        count,
      });
    }
    if let Some(url) = fields.endpoint_failing {
      found.push(Watch::EndpointFailing(url));
    }
    match <[Watch; 1]>::try_from(found) {
      Ok([watch]) => Ok(watch),
      Err(found) => Err(format!(
        "an alarm watches exactly one of region_outage, health_check_failing, \
         healthy_hosts_below, endpoint_failing; got {}",
        found.len()
      )),
    }
  }
}

impl From<Watch> for WatchFields {
  fn from(watch: Watch) -> WatchFields {
    let mut fields = WatchFields::default();
    match watch {
      Watch::RegionOutage(region) => fields.region_outage = Some(region),
      Watch::HealthCheckFailing(id) => fields.health_check_failing = Some(id),
      Watch::HealthyHostsBelow {
        target_group,
        count,
      } => {
        fields.healthy_hosts_below = Some(HostsBelow {
          target_group,
          count,
        })
      }
      Watch::EndpointFailing(url) => fields.endpoint_failing = Some(url),
    }
    fields
  }
}

fn default_period() -> ModelDuration {
  ModelDuration::secs(60)
}

fn one() -> u32 {
  1
}

impl Watch {
  fn describe(&self) -> String {
    match self {
      Watch::RegionOutage(region) => format!("{region} is in outage"),
      Watch::HealthCheckFailing(id) => format!("health check {id} is unhealthy"),
      Watch::HealthyHostsBelow {
        target_group,
        count,
      } => format!("target group {target_group} has fewer than {count} healthy targets"),
      Watch::EndpointFailing(url) => format!("{url} does not answer 2xx or 3xx"),
    }
  }
}

impl AlarmSpec {
  fn to_alarm(&self) -> usize {
    self
      .datapoints_to_alarm
      .unwrap_or(self.evaluation_periods)
      .try_into()
      .unwrap_or(usize::MAX)
  }

  /// Whether the watched condition breaches at `at`.
  fn breaching(&self, world: &WorldState, at: DateTime<Utc>) -> bool {
    match &self.watches {
      Watch::RegionOutage(region) => world.in_outage(region, at),
      Watch::HealthCheckFailing(id) => world
        .health_status(id, at, 0)
        .is_none_or(|status| !status.is_healthy()),
      Watch::HealthyHostsBelow {
        target_group,
        count,
      } => {
        let healthy = world
          .elbv2
          .health_by_name(world, at, &self.region, target_group)
          .map_or(0, |targets| {
            targets
              .iter()
              .filter(|target| target.state == crate::cloud::elbv2::TargetState::Healthy)
              .count()
          });
        healthy < usize::try_from(*count).unwrap_or(usize::MAX)
      }
      Watch::EndpointFailing(url) => !world
        .serve(url, at, 0)
        .is_ok_and(|(status, _)| (200..400).contains(&status)),
    }
  }

  /// The alarm as `DescribeAlarms` reports it at `now`: each datapoint is read from the world as
  /// it stood at the end of its period.
  pub(crate) fn evaluate(&self, history: &History<'_>, model: &Model, now: DateTime<Utc>) -> Alarm {
    let period = self.period.0.max(Duration::from_secs(1));
    let evaluation = u64::from(self.evaluation_periods.max(1));
    // The last period that ended by `now`, counted from the world's creation.
    let last =
      i64::try_from(model.elapsed(model.created_at, now).as_nanos() / period.as_nanos().max(1))
        .unwrap_or(i64::MAX);
    let window = usize::try_from(evaluation).unwrap_or(usize::MAX);
    let lookback = i64::try_from(LOOKBACK_PERIODS + evaluation).unwrap_or(i64::MAX);
    // Datapoints `first ..= last`. Before the creation the world stood as it was created, so a
    // window reaching back past it repeats the creation's datapoint.
    let first = last
      .saturating_sub(lookback)
      .max(1 - i64::try_from(window).unwrap_or(i64::MAX));
    let end_of = |k: i64| match u32::try_from(k) {
      Ok(k) => after_creation(model, period.saturating_mul(k)),
      Err(_) if k <= 0 => model.created_at,
      Err(_) => DateTime::<Utc>::MAX_UTC,
    };
    let mut replay = history.replay();
    let at_creation = self.breaching(replay.at(model.created_at), model.created_at);
    let breaching: Vec<bool> = (first..=last)
      .map(|k| {
        if k <= 0 {
          at_creation
        } else {
          let end = end_of(k);
          self.breaching(replay.at(end), end)
        }
      })
      .collect();
    // The state decided at the end of period `first + i` (the window of datapoints ending there).
    let state_at = |i: usize| {
      let from = i.saturating_sub(window - 1);
      let count = breaching[from..=i].iter().filter(|b| **b).count();
      let state = if count >= self.to_alarm() {
        AlarmState::Alarm
      } else {
        AlarmState::Ok
      };
      (state, count)
    };
    let newest = breaching.len() - 1;
    let (state, count) = state_at(newest);
    // The state's start: the end of the first period since which it has held.
    let mut since = newest;
    while since >= window && state_at(since - 1).0 == state {
      since -= 1;
    }
    let since =
      end_of(first.saturating_add(i64::try_from(since).unwrap_or(0))).max(model.created_at);
    let reason = format!(
      "Threshold Crossed: {count} out of the last {evaluation} datapoints were breaching ({}); {} needed for ALARM",
      self.watches.describe(),
      self.to_alarm(),
    );
    Alarm {
      name: self.name.clone(),
      state,
      reason,
      since: Some(since),
      composite: false,
    }
  }
}

/// The wall-clock instant a modelled duration after the world's creation.
fn after_creation(model: &Model, modelled: Duration) -> DateTime<Utc> {
  let wall =
    Duration::try_from_secs_f64(modelled.as_secs_f64() / model.time_scale).unwrap_or(Duration::MAX);
  chrono::Duration::from_std(wall)
    .ok()
    .and_then(|wall| model.created_at.checked_add_signed(wall))
    .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl CloudWatchSpec {
  /// What serde cannot check: regions, what the alarms watch, duplicates, AWS's ranges.
  pub fn validate(&self, world: &WorldSpec, regions: &BTreeSet<&str>) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (i, alarm) in self.alarms.iter().enumerate() {
      let path = format!("cloudwatch.alarms[{i}]");
      if !(regions.is_empty() || regions.contains(alarm.region.as_str())) {
        return Err(format!(
          "{path}.region: `{}` is not one of the world's regions",
          alarm.region
        ));
      }
      if alarm.name.is_empty() || alarm.name.len() > 255 {
        return Err(format!("{path}.name: 1 to 255 characters"));
      }
      if !seen.insert((alarm.region.as_str(), alarm.name.as_str())) {
        return Err(format!("{path}.name: duplicate alarm `{}`", alarm.name));
      }
      let period = alarm.period.0;
      if !(period == Duration::from_secs(10)
        || period == Duration::from_secs(30)
        || (period.as_secs() >= 60 && period.as_secs() % 60 == 0 && period.subsec_nanos() == 0))
      {
        return Err(format!(
          "{path}.period: CloudWatch allows 10s, 30s or a multiple of 60s"
        ));
      }
      if alarm.evaluation_periods == 0 {
        return Err(format!("{path}.evaluation_periods: at least 1"));
      }
      if period.saturating_mul(alarm.evaluation_periods) > Duration::from_secs(24 * 60 * 60) {
        return Err(format!(
          "{path}: evaluation_periods × period is at most one day, as CloudWatch allows"
        ));
      }
      if let Some(m) = alarm.datapoints_to_alarm {
        if m == 0 || m > alarm.evaluation_periods {
          return Err(format!(
            "{path}.datapoints_to_alarm: 1 to evaluation_periods ({}), got {m}",
            alarm.evaluation_periods
          ));
        }
      }
      let watches = format!("{path}.watches");
      match &alarm.watches {
        Watch::RegionOutage(region) => {
          if !(regions.is_empty() || regions.contains(region.as_str())) {
            return Err(format!(
              "{watches}.region_outage: `{region}` is not one of the world's regions"
            ));
          }
        }
        Watch::HealthCheckFailing(id) => {
          if !world
            .route53
            .health_checks
            .iter()
            .any(|check| &check.id == id)
          {
            return Err(format!(
              "{watches}.health_check_failing: no health check `{id}`"
            ));
          }
        }
        Watch::HealthyHostsBelow {
          target_group,
          count,
        } => {
          if !world
            .elbv2
            .target_groups
            .iter()
            .any(|group| group.is(&world.account, &alarm.region, target_group))
          {
            return Err(format!(
              "{watches}.healthy_hosts_below.target_group: no target group `{target_group}` in {}",
              alarm.region
            ));
          }
          if *count == 0 {
            return Err(format!(
              "{watches}.healthy_hosts_below.count: at least 1 (no count of hosts is below 0)"
            ));
          }
        }
        Watch::EndpointFailing(url) => {
          let key = endpoint_key(url);
          if key.is_none()
            || !world
              .endpoints
              .iter()
              .any(|endpoint| endpoint_key(&endpoint.url) == key)
          {
            return Err(format!(
              "{watches}.endpoint_failing: no endpoint `{url}` in the world"
            ));
          }
        }
      }
    }
    Ok(())
  }
}

/// The world's alarms (they change only through what they watch).
#[derive(Debug, Clone, Default)]
pub(crate) struct CloudWatchState {
  alarms: Vec<AlarmSpec>,
}

/// The family's part of the world spec.
pub(crate) type Spec = CloudWatchSpec;

/// The family's part of the simulated world.
pub(crate) type State = CloudWatchState;

/// Read-only: no operation changes it, and a world file keeps the alarms it was created with.
impl crate::cloud::sim::state::FamilyState for CloudWatchState {
  type Spec = Spec;

  fn new(spec: &WorldSpec, _model: &Model) -> Self {
    CloudWatchState {
      alarms: spec.cloudwatch.alarms.clone(),
    }
  }
}

impl CloudWatchState {
  /// `DescribeAlarms` of `names` in `region` at `now`, in the order asked; a name with no alarm
  /// is left out, as CloudWatch does.
  pub(crate) fn describe(
    &self,
    history: &History<'_>,
    model: &Model,
    now: DateTime<Utc>,
    region: &str,
    names: &[String],
  ) -> Result<Vec<Alarm>, Reject> {
    if names.len() > MAX_ALARM_NAMES {
      return Err(Reject::client(
        "ValidationError",
        format!(
          "1 validation error detected: Value at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_ALARM_NAMES}"
        ),
      ));
    }
    let mut seen = BTreeSet::new();
    Ok(
      names
        .iter()
        .filter(|name| seen.insert(name.as_str()))
        .filter_map(|name| {
          self
            .alarms
            .iter()
            .find(|alarm| alarm.region == region && &alarm.name == name)
        })
        .map(|alarm| alarm.evaluate(history, model, now))
        .collect(),
    )
  }
}

#[async_trait::async_trait]
impl CloudWatch for SimCloud {
  async fn describe_alarms(&self, region: &str, names: &[String]) -> CloudResult<Vec<Alarm>> {
    self
      .sim
      .read_with_history(
        &super::ops::DESCRIBE_ALARMS,
        Some(region),
        |state, history, now| {
          state
            .cloudwatch
            .describe(history, &state.model, now, region, names)
        },
      )
      .await
  }
}

#[cfg(test)]
mod tests {
  use std::time::Duration;

  use super::*;
  use crate::cloud::{
    sim::{Sim, SimOptions, BUILTIN_WORLD},
    Cloud,
  };

  /// More alarms for the built-in world's `cloudwatch.alarms`.
  const MORE_ALARMS: &str = r#"
    - region: us-west-2
      name: standby-two-of-three
      watches: { healthy_hosts_below: { target_group: app-standby-tg, count: 3 } }
      evaluation_periods: 3
      datapoints_to_alarm: 2
    - region: us-west-2
      name: primary-region-down
      watches: { region_outage: us-east-1 }
      period: 30s
      evaluation_periods: 2
"#;

  /// The built-in world (with [`MORE_ALARMS`] and `outages`) at scale 1, on paused tokio time.
  fn world(dir: &std::path::Path, outages: &str) -> (std::sync::Arc<Sim>, Cloud) {
    let file = dir.join("world.yaml");
    let anchor = "      period: 1m\n      evaluation_periods: 3\nendpoints:";
    assert!(BUILTIN_WORLD.contains(anchor));
    let text = BUILTIN_WORLD
      .replace(
        anchor,
        &format!("      period: 1m\n      evaluation_periods: 3{MORE_ALARMS}endpoints:"),
      )
      .replace("outages: []", outages);
    std::fs::write(&file, text).unwrap();
    let sim = Sim::open(&SimOptions {
      world: Some(file),
      time_scale: Some(1.0),
      dir: dir.join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    let cloud = sim.cloud();
    (sim, cloud)
  }

  async fn alarm(cloud: &Cloud, name: &str) -> Alarm {
    let mut found = cloud
      .cloudwatch
      .describe_alarms("us-west-2", &[name.to_owned()])
      .await
      .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
  }

  /// Seconds from the world's creation to `at`.
  fn at_second(sim: &Sim, at: Option<DateTime<Utc>>) -> i64 {
    let created = sim.peek(|world, _| world.model.created_at);
    (at.unwrap() - created).num_seconds()
  }

  /// The game day's inverted primary check fails from the start, as it did before the world was
  /// created: its alarm is in ALARM at once.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_an_alarm_on_a_failing_check_is_in_alarm_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, cloud) = world(dir.path(), "outages: []");
    let primary = alarm(&cloud, "app-primary-unhealthy").await;
    assert_eq!(primary.state, AlarmState::Alarm, "{primary:?}");
    assert!(
      primary
        .reason
        .contains("3 out of the last 3 datapoints were breaching (health check hc-primary is unhealthy); 3 needed for ALARM"),
      "{}",
      primary.reason
    );
    assert!(!primary.composite);
  }

  /// ALARM to OK: the standby's three targets are healthy at 174s (tasks start at 120, 132 and
  /// 144s, healthy 30s later); the datapoint of the period ending at 180s is the first that does
  /// not breach, so the alarm is OK from 180s, not before.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_an_alarm_clears_at_the_first_period_end_after_the_condition() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, cloud) = world(dir.path(), "outages: []");
    assert_eq!(
      alarm(&cloud, "app-standby-unhealthy").await.state,
      AlarmState::Alarm,
      "the standby runs no task"
    );
    cloud
      .ecs
      .update_desired_count("us-west-2", "app-standby", "api", 3)
      .await
      .unwrap();
    tokio::time::advance(Duration::from_secs(178)).await;
    let before = alarm(&cloud, "app-standby-unhealthy").await;
    assert_eq!(before.state, AlarmState::Alarm, "{before:?}");
    tokio::time::advance(Duration::from_secs(4)).await;
    let after = alarm(&cloud, "app-standby-unhealthy").await;
    assert_eq!(after.state, AlarmState::Ok, "{after:?}");
    assert_eq!(at_second(&sim, after.since), 180, "{after:?}");
    assert!(
      after
        .reason
        .contains("2 out of the last 3 datapoints were breaching"),
      "{}",
      after.reason
    );
    // Two of the last three datapoints (60s, 120s) still breach: a 2-of-3 alarm clears a
    // period later.
    let two_of_three = alarm(&cloud, "standby-two-of-three").await;
    assert_eq!(two_of_three.state, AlarmState::Alarm, "{two_of_three:?}");
    tokio::time::advance(Duration::from_secs(60)).await;
    let two_of_three = alarm(&cloud, "standby-two-of-three").await;
    assert_eq!(two_of_three.state, AlarmState::Ok, "{two_of_three:?}");
    assert_eq!(at_second(&sim, two_of_three.since), 240);
  }

  /// OK to ALARM needs the evaluation periods: the standby scales to 0 at 250s, and its
  /// draining targets are no healthy hosts; the datapoints at 300, 360 and 420s breach, so the
  /// 3-of-3 alarm fires at 420s and the 2-of-3 at 360s.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_an_alarm_fires_only_after_its_evaluation_periods() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, cloud) = world(dir.path(), "outages: []");
    cloud
      .ecs
      .update_desired_count("us-west-2", "app-standby", "api", 3)
      .await
      .unwrap();
    tokio::time::advance(Duration::from_secs(250)).await;
    assert_eq!(
      alarm(&cloud, "app-standby-unhealthy").await.state,
      AlarmState::Ok
    );
    cloud
      .ecs
      .update_desired_count("us-west-2", "app-standby", "api", 0)
      .await
      .unwrap();
    tokio::time::advance(Duration::from_secs(115)).await; // 365s
    assert_eq!(
      alarm(&cloud, "app-standby-unhealthy").await.state,
      AlarmState::Ok,
      "two breaching datapoints are not three"
    );
    let two = alarm(&cloud, "standby-two-of-three").await;
    assert_eq!(two.state, AlarmState::Alarm, "{two:?}");
    assert_eq!(at_second(&sim, two.since), 360);
    tokio::time::advance(Duration::from_secs(60)).await; // 425s
    let three = alarm(&cloud, "app-standby-unhealthy").await;
    assert_eq!(three.state, AlarmState::Alarm, "{three:?}");
    assert_eq!(at_second(&sim, three.since), 420);
  }

  /// A timed outage: the alarm is in ALARM while it lasts and clears at the first 30s period end
  /// after it.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_an_outage_alarm_follows_the_outage() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, cloud) = world(dir.path(), "outages: [{ region: us-east-1, until: 100s }]");
    assert_eq!(
      alarm(&cloud, "primary-region-down").await.state,
      AlarmState::Alarm
    );
    tokio::time::advance(Duration::from_secs(119)).await;
    assert_eq!(
      alarm(&cloud, "primary-region-down").await.state,
      AlarmState::Alarm,
      "the datapoint at 90s still breached"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let cleared = alarm(&cloud, "primary-region-down").await;
    assert_eq!(cleared.state, AlarmState::Ok, "{cleared:?}");
    assert_eq!(at_second(&sim, cleared.since), 120);
  }

  /// DescribeAlarms leaves out names it does not know, answers each name once, knows alarms only
  /// in their own region, and refuses more than 100 names.
  #[tokio::test(start_paused = true)]
  async fn cloudwatch_describe_alarms_answers_as_cloudwatch_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, cloud) = world(dir.path(), "outages: []");
    let names = |list: &[&str]| {
      list
        .iter()
        .map(|name| (*name).to_owned())
        .collect::<Vec<_>>()
    };
    let found = cloud
      .cloudwatch
      .describe_alarms(
        "us-west-2",
        &names(&["nope", "app-standby-unhealthy", "app-standby-unhealthy"]),
      )
      .await
      .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let elsewhere = cloud
      .cloudwatch
      .describe_alarms("us-east-1", &names(&["app-standby-unhealthy"]))
      .await
      .unwrap();
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    let many: Vec<String> = (0..101).map(|i| format!("alarm-{i}")).collect();
    let err = cloud
      .cloudwatch
      .describe_alarms("us-west-2", &many)
      .await
      .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("ValidationError"), "{err}");
  }

  /// What a world file gets wrong about an alarm is refused with its path.
  #[test]
  fn cloudwatch_world_alarms_are_checked() {
    let with = |alarm: &str| {
      BUILTIN_WORLD.replace(
        "  alarms:\n    - region: us-west-2\n      name: app-primary-unhealthy\n",
        &format!("  alarms:\n{alarm}    - region: us-west-2\n      name: app-primary-unhealthy\n"),
      )
    };
    for (alarm, expected) in [
      (
        "    - { region: us-west-2, name: a, watches: { health_check_failing: hc-nope } }\n",
        "cloudwatch.alarms[0].watches.health_check_failing: no health check `hc-nope`",
      ),
      (
        "    - { region: us-west-2, name: a, watches: { healthy_hosts_below: { target_group: app-primary-tg, count: 1 } } }\n",
        "no target group `app-primary-tg` in us-west-2",
      ),
      (
        "    - { region: us-west-2, name: a, watches: { region_outage: us-east-1, health_check_failing: hc-primary } }\n",
        "watches exactly one of",
      ),
      (
        "    - { region: us-west-2, name: a, watches: { region_outage: us-east-1 }, period: 45s }\n",
        "cloudwatch.alarms[0].period: CloudWatch allows 10s, 30s or a multiple of 60s",
      ),
      (
        "    - { region: us-west-2, name: a, watches: { region_outage: us-east-1 }, evaluation_periods: 2, datapoints_to_alarm: 3 }\n",
        "cloudwatch.alarms[0].datapoints_to_alarm: 1 to evaluation_periods (2), got 3",
      ),
      (
        "    - { region: us-west-2, name: app-primary-unhealthy, watches: { region_outage: us-east-1 } }\n",
        "cloudwatch.alarms[1].name: duplicate alarm `app-primary-unhealthy`",
      ),
      (
        "    - { region: us-west-2, name: a, watches: { endpoint_failing: \"https://nope.example.com/\" } }\n",
        "no endpoint `https://nope.example.com/` in the world",
      ),
      (
        "    - { region: us-west-2, name: a, watches: { region_outage: us-east-1 }, period: 1h, evaluation_periods: 25 }\n",
        "at most one day",
      ),
    ] {
      let err = WorldSpec::from_yaml(&with(alarm)).unwrap_err();
      assert!(err.contains(expected), "{alarm}: {err}");
    }
  }
}
