//! Route 53: the provider trait, its domain types and operations; the SDK adapter ([`aws`]) and
//! the simulator model ([`sim`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{family::service_family, CloudResult};

pub(crate) mod aws;
pub(crate) mod sim;

/// Amazon Route 53: a global service whose control plane is in us-east-1; one rate-limit
/// bucket per account.
///
/// The family's part of the operation table ([`crate::cloud::ops`], where `FAMILIES` is
/// collected from every family's `ALL`).
pub mod ops {
  use crate::cloud::ops::{global, mutate, read, Op};

  const HOSTED_ZONE: &str = "arn:${Partition}:route53:::hostedzone/${Id}";
  const CHANGE: &str = "arn:${Partition}:route53:::change/${Id}";
  const HEALTH_CHECK: &str = "arn:${Partition}:route53:::healthcheck/${Id}";
  const FAMILY: Option<&str> = Some("route53");
  const HOME: &str = "us-east-1";

  pub const LIST_RESOURCE_RECORD_SETS: Op = global(
    read(
      "route53",
      "ListResourceRecordSets",
      "route53:ListResourceRecordSets",
      FAMILY,
      HOSTED_ZONE,
    ),
    HOME,
  );
  pub const GET_CHANGE: Op = global(
    read("route53", "GetChange", "route53:GetChange", FAMILY, CHANGE),
    HOME,
  );
  pub const GET_HEALTH_CHECK_STATUS: Op = global(
    read(
      "route53",
      "GetHealthCheckStatus",
      "route53:GetHealthCheckStatus",
      FAMILY,
      HEALTH_CHECK,
    ),
    HOME,
  );
  pub const GET_HEALTH_CHECK: Op = global(
    read(
      "route53",
      "GetHealthCheck",
      "route53:GetHealthCheck",
      FAMILY,
      HEALTH_CHECK,
    ),
    HOME,
  );
  pub const CHANGE_RESOURCE_RECORD_SETS: Op = global(
    mutate(
      "route53",
      "ChangeResourceRecordSets",
      "route53:ChangeResourceRecordSets",
      FAMILY,
      HOSTED_ZONE,
    ),
    HOME,
  );
  pub const UPDATE_HEALTH_CHECK: Op = global(
    mutate(
      "route53",
      "UpdateHealthCheck",
      "route53:UpdateHealthCheck",
      FAMILY,
      HEALTH_CHECK,
    ),
    HOME,
  );

  pub const ALL: &[&Op] = &[
    &LIST_RESOURCE_RECORD_SETS,
    &GET_CHANGE,
    &GET_HEALTH_CHECK_STATUS,
    &GET_HEALTH_CHECK,
    &CHANGE_RESOURCE_RECORD_SETS,
    &UPDATE_HEALTH_CHECK,
  ];
}

/// Route 53 failover routing role of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FailoverRole {
  Primary,
  Secondary,
}

/// A Route 53 resource record set (CNAME/A/AAAA/TXT values; alias targets are values too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
  /// Fully qualified name with a trailing dot, as Route 53 returns it.
  pub name: String,
  #[serde(rename = "type")]
  pub rtype: String,
  pub set_identifier: Option<String>,
  pub failover: Option<FailoverRole>,
  pub ttl: Option<u32>,
  pub values: Vec<String>,
  pub health_check_id: Option<String>,
}

impl RecordSet {
  /// The key Route 53 identifies a record set by.
  pub fn key(&self) -> (String, String, Option<String>) {
    (
      normalize_dns_name(&self.name),
      self.rtype.clone(),
      self.set_identifier.clone(),
    )
  }
}

/// `example.com` and `example.com.` name the same record.
pub fn normalize_dns_name(name: &str) -> String {
  let lower = name.to_ascii_lowercase();
  if lower.ends_with('.') {
    lower
  } else {
    format!("{lower}.")
  }
}

/// The status of a Route 53 change batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeInfo {
  pub id: String,
  /// `PENDING` or `INSYNC`.
  pub status: String,
  pub submitted_at: DateTime<Utc>,
}

impl ChangeInfo {
  pub fn is_insync(&self) -> bool {
    self.status == "INSYNC"
  }
}

/// What Route 53's checkers report for a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckStatus {
  pub id: String,
  /// Checkers whose latest observation was a success.
  pub checkers_healthy: u32,
  pub checkers_total: u32,
  /// The health check's configuration (`Disabled` checks are always healthy; `Inverted` flips).
  /// Providers report observations already inverted, as `GetHealthCheckStatus` does.
  pub disabled: bool,
  pub inverted: bool,
}

impl HealthCheckStatus {
  /// Route 53's rule: healthy when more than 18 % of checkers report healthy; a disabled
  /// check is considered healthy.
  pub fn is_healthy(&self) -> bool {
    if self.disabled {
      return true;
    }
    if self.checkers_total == 0 {
      return false;
    }
    u64::from(self.checkers_healthy) * 100 > u64::from(self.checkers_total) * 18
  }
}

/// A health check configuration change (for drills: disable, or invert to stage an outage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthCheckUpdate {
  pub disabled: Option<bool>,
  pub inverted: Option<bool>,
}

/// A record change sent in a change batch. drctl only ever UPSERTs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordChange {
  pub action: String,
  pub record: RecordSet,
}

/// Where a page of `ListResourceRecordSets` starts (`StartRecordName`, `StartRecordType`,
/// `StartRecordIdentifier`), as the previous page's `NextRecord*` said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPageStart {
  pub name: String,
  #[serde(rename = "type")]
  pub rtype: Option<String>,
  pub set_identifier: Option<String>,
}

/// One page of a hosted zone's record sets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordPage {
  pub records: Vec<RecordSet>,
  /// Where the next page starts; `None` on the last page.
  pub next: Option<RecordPageStart>,
}

/// Route 53's page size for `ListResourceRecordSets` (its default and maximum `MaxItems`).
pub const RECORD_PAGE_SIZE: usize = 300;

/// Route 53's limits on one `ChangeResourceRecordSets` request (Route 53 Developer Guide,
/// *Quotas*, "Maximums on API requests"): at most 1,000 `ResourceRecord` elements and 32,000
/// characters across all `Value` elements, an UPSERT counting each of its values twice.
pub const MAX_BATCH_RECORDS: usize = 1000;
pub const MAX_BATCH_CHARS: usize = 32_000;

impl RecordChange {
  /// What this change counts against the batch limits: (`ResourceRecord` elements, value
  /// characters).
  pub fn batch_weight(&self) -> (usize, usize) {
    let factor = if self.action.eq_ignore_ascii_case("UPSERT") {
      2
    } else {
      1
    };
    let values = self.record.values.len().max(1);
    let chars: usize = self.record.values.iter().map(String::len).sum();
    (values * factor, chars * factor)
  }
}

/// Split one zone's changes into as few change batches as Route 53 accepts, in order. One batch
/// (atomic) whenever the changes fit; a zone with more than a batch's worth gets several, each
/// atomic on its own.
pub fn change_batches(changes: Vec<RecordChange>) -> Vec<Vec<RecordChange>> {
  let mut batches: Vec<Vec<RecordChange>> = Vec::new();
  let (mut elements, mut chars) = (0, 0);
  for change in changes {
    let (e, c) = change.batch_weight();
    let full = elements + e > MAX_BATCH_RECORDS || chars + c > MAX_BATCH_CHARS;
    match batches.last_mut() {
      Some(batch) if !full => batch.push(change),
      _ => {
        batches.push(vec![change]);
        (elements, chars) = (0, 0);
      }
    }
    elements += e;
    chars += c;
  }
  batches
}

service_family! {
  /// Route 53 (a global service: no region parameter).
  pub trait Route53, limited LimitedRoute53 {
    /// `ListResourceRecordSets` filtered to one name (all types and set identifiers of it).
    [ops::LIST_RESOURCE_RECORD_SETS, None, 1]
    async fn list_record_sets(&self, zone_id: &str, name: &str) -> CloudResult<Vec<RecordSet>>;
    /// One `ListResourceRecordSets` request over the whole zone: up to [`RECORD_PAGE_SIZE`]
    /// record sets from `start` (`None`: the zone's first record). One call is one request, so
    /// a caller reading many names pays one request per page instead of one per name; the rate
    /// limiter counts it exactly.
    [ops::LIST_RESOURCE_RECORD_SETS, None, 1]
    async fn list_record_sets_page(
      &self,
      zone_id: &str,
      start: Option<&RecordPageStart>,
    ) -> CloudResult<RecordPage>;
    /// `GetChange`.
    [ops::GET_CHANGE, None, 1]
    async fn get_change(&self, change_id: &str) -> CloudResult<ChangeInfo>;
    /// `GetHealthCheckStatus`, plus the check's `Disabled`/`Inverted` configuration: two
    /// requests (`GetHealthCheck` for the configuration; every provider makes both).
    [ops::GET_HEALTH_CHECK_STATUS, None, 2]
    async fn get_health_check_status(&self, health_check_id: &str) -> CloudResult<HealthCheckStatus>;

    /// `ChangeResourceRecordSets`: one atomic batch for one zone. Mutating; UPSERT is idempotent.
    [ops::CHANGE_RESOURCE_RECORD_SETS, None, 1]
    async fn change_record_sets(
      &self,
      zone_id: &str,
      comment: &str,
      changes: &[RecordChange],
    ) -> CloudResult<ChangeInfo>;
    /// `UpdateHealthCheck` (disable / invert). Mutating, idempotent.
    [ops::UPDATE_HEALTH_CHECK, None, 1]
    async fn update_health_check(
      &self,
      health_check_id: &str,
      update: HealthCheckUpdate,
    ) -> CloudResult<()>;
  }
}
