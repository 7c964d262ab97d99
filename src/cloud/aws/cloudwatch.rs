//! CloudWatch reads: the lag metrics drctl classifies with [`ReplicaLag::from_datapoints`]
//! (RDS `ReplicaLag` and `AuroraGlobalDBRPOLag`, S3 `ReplicationLatency`).
//!
//! [`ReplicaLag::from_datapoints`]: crate::cloud::ReplicaLag::from_datapoints

use std::time::SystemTime;

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudwatch::types::{Dimension, Statistic};

use super::{config::RegionalClients, errors::cloud_error, to_chrono};
use crate::cloud::ops;
use crate::cloud::{CloudResult, LagDatapoint, LAG_LOOKBACK, LAG_PERIOD};

/// Build a CloudWatch client for `region`.
pub(crate) fn client(sdk: &SdkConfig, region: &str) -> aws_sdk_cloudwatch::Client {
  let config = aws_sdk_cloudwatch::config::Builder::from(sdk)
    .region(Region::new(region.to_owned()))
    .build();
  aws_sdk_cloudwatch::Client::from_conf(config)
}

/// One metric of a namespace, named by its dimensions (`(name, value)`).
pub(crate) struct Metric<'a> {
  pub namespace: &'a str,
  pub name: &'a str,
  pub dimensions: &'a [(&'a str, &'a str)],
}

/// `GetMetricStatistics`: one-minute maxima of `metric` over the last [`LAG_LOOKBACK`] before
/// `now`, as CloudWatch holds them (negative values kept: for RDS they mean replication is not
/// running).
pub(crate) async fn lag_datapoints(
  clients: &RegionalClients<aws_sdk_cloudwatch::Client>,
  region: &str,
  metric: &Metric<'_>,
  now: SystemTime,
) -> CloudResult<Vec<LagDatapoint>> {
  let dimensions = metric
    .dimensions
    .iter()
    .map(|(name, value)| Dimension::builder().name(*name).value(*value).build())
    .collect();
  let output = clients
    .get(region)
    .get_metric_statistics()
    .namespace(metric.namespace)
    .metric_name(metric.name)
    .set_dimensions(Some(dimensions))
    .start_time((now - LAG_LOOKBACK).into())
    .end_time(now.into())
    .period(i32::try_from(LAG_PERIOD.as_secs()).unwrap_or(60))
    .statistics(Statistic::Maximum)
    .send()
    .await
    .map_err(|error| {
      cloud_error(
        &ops::cloudwatch::GET_METRIC_STATISTICS,
        clients.sdk(),
        region,
        error,
      )
    })?;
  Ok(
    output
      .datapoints()
      .iter()
      .filter_map(|point| {
        Some(LagDatapoint {
          at: to_chrono(point.timestamp()?)?,
          seconds: point.maximum()?,
        })
      })
      .collect(),
  )
}
