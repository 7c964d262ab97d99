//! CloudWatch alarms over the SDK (awsQuery, API version 2010-08-01; the crate is pinned for
//! that protocol, see Cargo.toml).

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, MetricAlarm, StateValue};

use super::{Alarm, AlarmState, CloudWatch};
use crate::cloud::{
  aws::{cloudwatch::client, config::RegionalClients, errors::cloud_error, to_chrono},
  CloudResult,
};

pub(crate) struct AwsCloudWatch {
  clients: RegionalClients<aws_sdk_cloudwatch::Client>,
}

/// The family's provider over the shared SDK configuration.
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn CloudWatch> {
  std::sync::Arc::new(AwsCloudWatch {
    clients: RegionalClients::new(sdk.clone(), client),
  })
}

fn state(value: Option<&StateValue>) -> AlarmState {
  value.map_or(AlarmState::InsufficientData, |value| {
    AlarmState::from_api(value.as_str())
  })
}

fn metric_alarm(alarm: &MetricAlarm) -> Option<Alarm> {
  Some(Alarm {
    name: alarm.alarm_name()?.to_owned(),
    state: state(alarm.state_value()),
    reason: alarm.state_reason().unwrap_or_default().to_owned(),
    since: alarm.state_updated_timestamp().and_then(to_chrono),
    composite: false,
  })
}

fn composite_alarm(alarm: &CompositeAlarm) -> Option<Alarm> {
  Some(Alarm {
    name: alarm.alarm_name()?.to_owned(),
    state: state(alarm.state_value()),
    reason: alarm.state_reason().unwrap_or_default().to_owned(),
    since: alarm.state_updated_timestamp().and_then(to_chrono),
    composite: true,
  })
}

#[async_trait::async_trait]
impl CloudWatch for AwsCloudWatch {
  async fn describe_alarms(&self, region: &str, names: &[String]) -> CloudResult<Vec<Alarm>> {
    let mut alarms = Vec::new();
    let mut next: Option<String> = None;
    loop {
      let output = self
        .clients
        .get(region)
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .alarm_types(AlarmType::MetricAlarm)
        .alarm_types(AlarmType::CompositeAlarm)
        .max_records(100)
        .set_next_token(next.take())
        .send()
        .await
        .map_err(|error| {
          cloud_error(
            &super::ops::DESCRIBE_ALARMS,
            self.clients.sdk(),
            region,
            error,
          )
        })?;
      alarms.extend(output.metric_alarms().iter().filter_map(metric_alarm));
      alarms.extend(output.composite_alarms().iter().filter_map(composite_alarm));
      match output.next_token() {
        Some(token) if !token.is_empty() => next = Some(token.to_owned()),
        _ => return Ok(alarms),
      }
    }
  }
}
