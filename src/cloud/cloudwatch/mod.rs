//! Amazon CloudWatch: the state of a team's own alarms (read-only), and the metric reads the
//! replication checks make (their SDK plumbing is `cloud::aws::cloudwatch`).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult};

pub(crate) mod aws;
pub(crate) mod sim;

/// The most alarm names one `DescribeAlarms` takes (`AlarmNames`, "Maximum number of 100
/// items").
pub const MAX_ALARM_NAMES: usize = 100;

/// Amazon CloudWatch, read in the region that holds the alarm or publishes the metric.
pub mod ops {
  use crate::cloud::ops::{data, read, Op};

  /// The lag metrics of replicas and replication rules. No resource-level permission: AWS
  /// authorizes it on `*`.
  pub const GET_METRIC_STATISTICS: Op = data(read(
    "cloudwatch",
    "GetMetricStatistics",
    "cloudwatch:GetMetricStatistics",
    Some("cloudwatch"),
    "*",
  ));
  /// Alarms by name, metric and composite. Authorized on the alarm's ARN.
  pub const DESCRIBE_ALARMS: Op = read(
    "cloudwatch",
    "DescribeAlarms",
    "cloudwatch:DescribeAlarms",
    Some("cloudwatch"),
    "arn:${Partition}:cloudwatch:${Region}:${Account}:alarm:${AlarmName}",
  );

  pub const ALL: &[&Op] = &[&GET_METRIC_STATISTICS, &DESCRIBE_ALARMS];
}

/// An alarm's state (`StateValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlarmState {
  #[serde(rename = "OK")]
  Ok,
  #[serde(rename = "ALARM")]
  Alarm,
  /// Not enough data to decide (a new alarm, or a metric that stopped arriving).
  #[serde(rename = "INSUFFICIENT_DATA")]
  InsufficientData,
}

impl AlarmState {
  pub fn as_str(self) -> &'static str {
    match self {
      AlarmState::Ok => "OK",
      AlarmState::Alarm => "ALARM",
      AlarmState::InsufficientData => "INSUFFICIENT_DATA",
    }
  }

  /// The state as the API names it; anything else reads as `INSUFFICIENT_DATA` (never as OK
  /// or ALARM, which a check would act on).
  pub fn from_api(text: &str) -> AlarmState {
    match text {
      "OK" => AlarmState::Ok,
      "ALARM" => AlarmState::Alarm,
      _ => AlarmState::InsufficientData,
    }
  }
}

impl fmt::Display for AlarmState {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(self.as_str())
  }
}

/// One alarm as `DescribeAlarms` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarm {
  pub name: String,
  pub state: AlarmState,
  /// Why it is in that state, in CloudWatch's words (`Threshold Crossed: 3 out of the last 3
  /// datapoints ...`).
  pub reason: String,
  /// When it entered that state.
  pub since: Option<DateTime<Utc>>,
  /// A composite alarm (its state is a rule over other alarms).
  pub composite: bool,
}

service_family! {
  /// CloudWatch alarms, read-only.
  pub trait CloudWatch, limited LimitedCloudWatch {
    /// `DescribeAlarms` of the named alarms (at most [`MAX_ALARM_NAMES`]), metric and
    /// composite, in `region`. An alarm that does not exist is not in the answer.
    [ops::DESCRIBE_ALARMS, Some(region), 1]
    async fn describe_alarms(&self, region: &str, names: &[String]) -> CloudResult<Vec<Alarm>>;
  }
}
