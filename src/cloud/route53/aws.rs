//! Route 53: record sets, change batches and health checks. A global service: one client,
//! in us-east-1.

// `CloudError` is the provider boundary's error type and every trait method returns it by value
// (see `cloud::aws`).
#![allow(clippy::result_large_err)]

use aws_config::{Region, SdkConfig};
use aws_sdk_route53::types::{
  Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, ResourceRecordSetFailover,
  RrType,
};

use crate::cloud::aws::{
  config::ROUTE53_REGION,
  errors::{build_error, cloud_error},
  to_chrono,
};
use crate::cloud::ops::{self, Op};
use crate::cloud::{
  normalize_dns_name, ChangeInfo, CloudError, CloudResult, ErrorKind, FailoverRole,
  HealthCheckStatus, HealthCheckUpdate, RecordChange, RecordPage, RecordPageStart, RecordSet,
  Route53, RECORD_PAGE_SIZE,
};

pub(crate) struct AwsRoute53 {
  client: aws_sdk_route53::Client,
  /// For error messages: the endpoint the client talks to.
  sdk: SdkConfig,
}

impl AwsRoute53 {
  pub(crate) fn new(sdk: &SdkConfig) -> Self {
    let config = aws_sdk_route53::config::Builder::from(sdk)
      .region(Region::new(ROUTE53_REGION))
      .build();
    Self {
      client: aws_sdk_route53::Client::from_conf(config),
      sdk: sdk.clone(),
    }
  }
}

fn to_record(record: &ResourceRecordSet) -> RecordSet {
  let mut values: Vec<String> = record
    .resource_records()
    .iter()
    .map(|value| value.value().to_owned())
    .collect();
  if let Some(alias) = record.alias_target() {
    values.push(alias.dns_name().to_owned());
  }
  RecordSet {
    name: normalize_dns_name(record.name()),
    rtype: record.r#type().as_str().to_owned(),
    set_identifier: record.set_identifier().map(str::to_owned),
    failover: record.failover().and_then(|role| match role {
      ResourceRecordSetFailover::Primary => Some(FailoverRole::Primary),
      ResourceRecordSetFailover::Secondary => Some(FailoverRole::Secondary),
      _ => None,
    }),
    ttl: record.ttl().and_then(|ttl| u32::try_from(ttl).ok()),
    values,
    health_check_id: record.health_check_id().map(str::to_owned),
  }
}

/// The SDK record set for a domain record. Values are written as resource records; drctl does
/// not write alias records.
fn to_sdk_record(record: &RecordSet) -> Result<ResourceRecordSet, CloudError> {
  let operation = &ops::route53::CHANGE_RESOURCE_RECORD_SETS;
  let values = record
    .values
    .iter()
    .map(|value| ResourceRecord::builder().value(value).build())
    .collect::<Result<Vec<_>, _>>()
    .map_err(|error| build_error(operation, ROUTE53_REGION, error))?;
  ResourceRecordSet::builder()
    .name(normalize_dns_name(&record.name))
    .r#type(RrType::from(record.rtype.as_str()))
    .set_set_identifier(record.set_identifier.clone())
    .set_failover(record.failover.map(|role| match role {
      FailoverRole::Primary => ResourceRecordSetFailover::Primary,
      FailoverRole::Secondary => ResourceRecordSetFailover::Secondary,
    }))
    .set_ttl(record.ttl.map(i64::from))
    .set_resource_records((!values.is_empty()).then_some(values))
    .set_health_check_id(record.health_check_id.clone())
    .build()
    .map_err(|error| build_error(operation, ROUTE53_REGION, error))
}

fn to_change_info(
  operation: &Op,
  info: Option<&aws_sdk_route53::types::ChangeInfo>,
) -> CloudResult<ChangeInfo> {
  let info = info.ok_or_else(|| {
    CloudError::new(
      ErrorKind::Server,
      operation.service,
      operation.name,
      "response carried no ChangeInfo",
    )
  })?;
  Ok(ChangeInfo {
    // Route 53 answers `/change/C123`; `GetChange` takes either form.
    id: info.id().trim_start_matches("/change/").to_owned(),
    status: info.status().as_str().to_owned(),
    submitted_at: to_chrono(info.submitted_at()).unwrap_or_default(),
  })
}

#[async_trait::async_trait]
impl Route53 for AwsRoute53 {
  async fn list_record_sets(&self, zone_id: &str, name: &str) -> CloudResult<Vec<RecordSet>> {
    let wanted = normalize_dns_name(name);
    let mut records = Vec::new();
    let mut start: Option<(String, Option<RrType>, Option<String>)> =
      Some((wanted.clone(), None, None));
    // Record sets are listed in name order from the start name; stop at the first other name.
    while let Some((start_name, start_type, start_identifier)) = start.take() {
      let output = self
        .client
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .start_record_name(start_name)
        .set_start_record_type(start_type)
        .set_start_record_identifier(start_identifier)
        .send()
        .await
        .map_err(|error| {
          cloud_error(
            &ops::route53::LIST_RESOURCE_RECORD_SETS,
            &self.sdk,
            ROUTE53_REGION,
            error,
          )
        })?;
      let mut past_name = false;
      for record in output.resource_record_sets() {
        // The listing starts at `wanted`, so the first other name means there are no more.
        if normalize_dns_name(record.name()) == wanted {
          records.push(to_record(record));
        } else {
          past_name = true;
          break;
        }
      }
      if output.is_truncated() && !past_name {
        if let Some(next_name) = output.next_record_name() {
          start = Some((
            next_name.to_owned(),
            output.next_record_type().cloned(),
            output.next_record_identifier().map(str::to_owned),
          ));
        }
      }
    }
    Ok(records)
  }

  async fn list_record_sets_page(
    &self,
    zone_id: &str,
    start: Option<&RecordPageStart>,
  ) -> CloudResult<RecordPage> {
    let output = self
      .client
      .list_resource_record_sets()
      .hosted_zone_id(zone_id)
      .max_items(i32::try_from(RECORD_PAGE_SIZE).unwrap_or(i32::MAX))
      .set_start_record_name(start.map(|start| start.name.clone()))
      .set_start_record_type(start.and_then(|start| start.rtype.as_deref().map(RrType::from)))
      .set_start_record_identifier(start.and_then(|start| start.set_identifier.clone()))
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::route53::LIST_RESOURCE_RECORD_SETS,
          &self.sdk,
          ROUTE53_REGION,
          error,
        )
      })?;
    let records = output
      .resource_record_sets()
      .iter()
      .map(to_record)
      .collect();
    let next = match (output.is_truncated(), output.next_record_name()) {
      (true, Some(name)) => Some(RecordPageStart {
        name: name.to_owned(),
        rtype: output
          .next_record_type()
          .map(|rtype| rtype.as_str().to_owned()),
        set_identifier: output.next_record_identifier().map(str::to_owned),
      }),
      _ => None,
    };
    Ok(RecordPage { records, next })
  }

  async fn get_change(&self, change_id: &str) -> CloudResult<ChangeInfo> {
    let output = self
      .client
      .get_change()
      .id(change_id)
      .send()
      .await
      .map_err(|error| cloud_error(&ops::route53::GET_CHANGE, &self.sdk, ROUTE53_REGION, error))?;
    to_change_info(&ops::route53::GET_CHANGE, output.change_info())
  }

  async fn get_health_check_status(&self, health_check_id: &str) -> CloudResult<HealthCheckStatus> {
    let status = self
      .client
      .get_health_check_status()
      .health_check_id(health_check_id)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::route53::GET_HEALTH_CHECK_STATUS,
          &self.sdk,
          ROUTE53_REGION,
          error,
        )
      })?;
    let check = self
      .client
      .get_health_check()
      .health_check_id(health_check_id)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::route53::GET_HEALTH_CHECK,
          &self.sdk,
          ROUTE53_REGION,
          error,
        )
      })?;
    let config = check
      .health_check()
      .and_then(|check| check.health_check_config());
    let observations = status.health_check_observations();
    // Observations are already inverted by Route 53 when the check is `Inverted`.
    let healthy = observations
      .iter()
      .filter(|observation| {
        observation
          .status_report()
          .and_then(|report| report.status())
          .is_some_and(|text| text.starts_with("Success"))
      })
      .count();
    Ok(HealthCheckStatus {
      id: health_check_id.to_owned(),
      checkers_healthy: u32::try_from(healthy).unwrap_or(u32::MAX),
      checkers_total: u32::try_from(observations.len()).unwrap_or(u32::MAX),
      disabled: config.and_then(|config| config.disabled()).unwrap_or(false),
      inverted: config.and_then(|config| config.inverted()).unwrap_or(false),
    })
  }

  async fn change_record_sets(
    &self,
    zone_id: &str,
    comment: &str,
    changes: &[RecordChange],
  ) -> CloudResult<ChangeInfo> {
    let operation = &ops::route53::CHANGE_RESOURCE_RECORD_SETS;
    let changes = changes
      .iter()
      .map(|change| {
        Change::builder()
          .action(ChangeAction::from(
            change.action.to_ascii_uppercase().as_str(),
          ))
          .resource_record_set(to_sdk_record(&change.record)?)
          .build()
          .map_err(|error| build_error(operation, ROUTE53_REGION, error))
      })
      .collect::<Result<Vec<_>, _>>()?;
    let batch = ChangeBatch::builder()
      .set_comment((!comment.is_empty()).then(|| comment.to_owned()))
      .set_changes(Some(changes))
      .build()
      .map_err(|error| build_error(operation, ROUTE53_REGION, error))?;
    let output = self
      .client
      .change_resource_record_sets()
      .hosted_zone_id(zone_id)
      .change_batch(batch)
      .send()
      .await
      .map_err(|error| cloud_error(operation, &self.sdk, ROUTE53_REGION, error))?;
    to_change_info(operation, output.change_info())
  }

  async fn update_health_check(
    &self,
    health_check_id: &str,
    update: HealthCheckUpdate,
  ) -> CloudResult<()> {
    self
      .client
      .update_health_check()
      .health_check_id(health_check_id)
      .set_disabled(update.disabled)
      .set_inverted(update.inverted)
      .send()
      .await
      .map_err(|error| {
        cloud_error(
          &ops::route53::UPDATE_HEALTH_CHECK,
          &self.sdk,
          ROUTE53_REGION,
          error,
        )
      })?;
    Ok(())
  }
}

/// The family's provider over the shared per-region SDK configuration.
pub(crate) fn provider(sdk: &SdkConfig) -> std::sync::Arc<dyn super::Route53> {
  std::sync::Arc::new(AwsRoute53::new(sdk))
}
