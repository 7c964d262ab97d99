//! Simulated Route 53: hosted zones with record sets (changes take effect at once in list calls
//! and report `PENDING` until propagated), health checks observed from the world's endpoints,
//! and the failover routing rule used to resolve DNS-backed endpoints.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cloud::ops;
use crate::cloud::sim::{
  state::{missing, Applied, Model, Reject, WorldState},
  world::Route53Spec,
  Operation, SimCloud,
};
use crate::cloud::{
  normalize_dns_name, ChangeInfo, CloudResult, FailoverRole, HealthCheckStatus, HealthCheckUpdate,
  RecordChange, RecordPage, RecordPageStart, RecordSet, Route53, ATTEMPT_TIMEOUT, MAX_BATCH_CHARS,
  MAX_BATCH_RECORDS, RECORD_PAGE_SIZE,
};

/// Route 53's listing order: by name with its labels reversed (`com.example.api`), then type,
/// then set identifier.
fn listing_key(
  name: &str,
  rtype: Option<&str>,
  set_identifier: Option<&str>,
) -> (String, String, String) {
  let name = normalize_dns_name(name);
  let reversed: Vec<&str> = name.trim_end_matches('.').rsplit('.').collect();
  (
    reversed.join("."),
    rtype.unwrap_or_default().to_string(),
    set_identifier.unwrap_or_default().to_string(),
  )
}

#[derive(Debug, Clone)]
struct Zone {
  /// Normalized (lower case, trailing dot).
  name: String,
  records: Vec<RecordSet>,
}

#[derive(Debug, Clone)]
struct HealthCheck {
  target: String,
  inverted: bool,
  disabled: bool,
  checkers: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct Route53State {
  zones: BTreeMap<String, Zone>,
  health_checks: BTreeMap<String, HealthCheck>,
  /// Change id (without `/change/`) → when it was submitted.
  changes: BTreeMap<String, DateTime<Utc>>,
}

/// The change id of the change batch recorded as operation `seq`.
pub(crate) fn change_id(seq: u64) -> String {
  format!("CSIM{seq:010}")
}

fn bare_zone_id(id: &str) -> &str {
  id.strip_prefix("/hostedzone/").unwrap_or(id)
}

fn no_such_zone(id: &str) -> Reject {
  Reject::not_found(
    "NoSuchHostedZone",
    format!("No hosted zone found with ID: {id}"),
  )
}

fn no_such_check(id: &str) -> Reject {
  Reject::not_found(
    "NoSuchHealthCheck",
    format!("A health check with id {id} does not exist."),
  )
}

fn invalid_batch(message: String) -> Reject {
  Reject::client("InvalidChangeBatch", message)
}

/// Endpoint resolution depth limit (a health check whose target resolves through DNS whose
/// failover consults a health check ...).
pub(crate) const MAX_DEPTH: u32 = 8;

impl Route53State {
  pub fn new(spec: &Route53Spec) -> Route53State {
    let zones = spec
      .hosted_zones
      .iter()
      .map(|zone| {
        let records = zone
          .records
          .iter()
          .map(|record| RecordSet {
            name: normalize_dns_name(&record.name),
            rtype: record.rtype.clone(),
            set_identifier: record.set_identifier.clone(),
            failover: record.failover,
            ttl: record.ttl,
            values: record.values.clone(),
            health_check_id: record.health_check_id.clone(),
          })
          .collect();
        let value = Zone {
          name: normalize_dns_name(&zone.name),
          records,
        };
        (bare_zone_id(&zone.id).to_string(), value)
      })
      .collect();
    let health_checks = spec
      .health_checks
      .iter()
      .map(|check| {
        let value = HealthCheck {
          target: check.target.clone(),
          inverted: check.inverted,
          disabled: check.disabled,
          checkers: check.checkers,
        };
        (check.id.clone(), value)
      })
      .collect();
    Route53State {
      zones,
      health_checks,
      changes: BTreeMap::new(),
    }
  }

  pub fn apply(&mut self, op: &Operation) -> Applied {
    match op.operation.as_str() {
      name if name == ops::route53::CHANGE_RESOURCE_RECORD_SETS.name => {
        let changes: Vec<RecordChange> = op
          .detail
          .get("changes")
          .cloned()
          .ok_or_else(|| missing(op, "changes"))
          .and_then(|changes| {
            serde_json::from_value(changes)
              .map_err(|err| Reject::client("InvalidInput", err.to_string()))
          })?;
        let zone_id = bare_zone_id(&op.target).to_string();
        let zone = self
          .zones
          .get(&zone_id)
          .ok_or_else(|| no_such_zone(&zone_id))?;
        if changes.is_empty() {
          return Err(Reject::client("InvalidInput", "The change batch is empty."));
        }
        let (elements, chars) = changes
          .iter()
          .map(RecordChange::batch_weight)
          .fold((0, 0), |(e, c), (de, dc)| (e + de, c + dc));
        if elements > MAX_BATCH_RECORDS {
          return Err(invalid_batch(format!(
            "Number of records limit of {MAX_BATCH_RECORDS} exceeded ({elements}; UPSERT counts \
             each value twice)."
          )));
        }
        if chars > MAX_BATCH_CHARS {
          return Err(invalid_batch(format!(
            "Number of characters limit of {MAX_BATCH_CHARS} exceeded ({chars})."
          )));
        }
        // Validate and apply to a copy: a batch is atomic.
        let mut records = zone.records.clone();
        for change in &changes {
          let mut record = change.record.clone();
          record.name = normalize_dns_name(&record.name);
          let in_zone =
            record.name == zone.name || record.name.ends_with(&format!(".{}", zone.name));
          if !in_zone {
            return Err(invalid_batch(format!(
              "RRSet with DNS name {} is not permitted in zone {}",
              record.name, zone.name
            )));
          }
          if let Some(id) = &record.health_check_id {
            if !self.health_checks.contains_key(id) {
              return Err(invalid_batch(format!("Health check {id} does not exist")));
            }
          }
          if record.failover.is_some() && record.set_identifier.is_none() {
            return Err(invalid_batch(format!(
              "RRSet {} with failover routing needs a set identifier",
              record.name
            )));
          }
          let key = record.key();
          let existing = records.iter().position(|r| r.key() == key);
          match (change.action.as_str(), existing) {
            ("UPSERT", Some(i)) => records[i] = record,
            ("UPSERT", None) | ("CREATE", None) => {
              if record.values.is_empty() {
                return Err(invalid_batch(format!(
                  "RRSet {} has no values",
                  record.name
                )));
              }
              records.push(record);
            }
            ("CREATE", Some(_)) => {
              return Err(invalid_batch(format!(
                "Tried to create resource record set {} type {}, but it already exists",
                record.name, record.rtype
              )))
            }
            ("DELETE", Some(i)) => {
              if records[i] != record {
                return Err(invalid_batch(format!(
                  "Tried to delete resource record set {} type {}, but the values provided do not match",
                  record.name, record.rtype
                )));
              }
              records.remove(i);
            }
            ("DELETE", None) => {
              return Err(invalid_batch(format!(
                "Tried to delete resource record set {} type {}, but it was not found",
                record.name, record.rtype
              )))
            }
            (action, _) => {
              return Err(Reject::client(
                "InvalidInput",
                format!("Unknown change action {action}"),
              ))
            }
          }
        }
        if let Some(zone) = self.zones.get_mut(&zone_id) {
          zone.records = records;
        }
        self.changes.insert(change_id(op.seq), op.at);
        Ok(())
      }
      name if name == ops::route53::UPDATE_HEALTH_CHECK.name => {
        let update: HealthCheckUpdate = serde_json::from_value(op.detail.clone())
          .map_err(|err| Reject::client("InvalidInput", err.to_string()))?;
        let check = self
          .health_checks
          .get_mut(&op.target)
          .ok_or_else(|| no_such_check(&op.target))?;
        if let Some(disabled) = update.disabled {
          check.disabled = disabled;
        }
        if let Some(inverted) = update.inverted {
          check.inverted = inverted;
        }
        Ok(())
      }
      other => Err(Reject::client(
        "InvalidAction",
        format!("route53 has no operation {other}"),
      )),
    }
  }

  /// One page of the zone's record sets in Route 53's listing order, from `start`.
  fn page(&self, zone_id: &str, start: Option<&RecordPageStart>) -> Result<RecordPage, Reject> {
    let zone_id = bare_zone_id(zone_id);
    let zone = self
      .zones
      .get(zone_id)
      .ok_or_else(|| no_such_zone(zone_id))?;
    let mut keyed: Vec<((String, String, String), &RecordSet)> = zone
      .records
      .iter()
      .map(|record| {
        let key = listing_key(
          &record.name,
          Some(&record.rtype),
          record.set_identifier.as_deref(),
        );
        (key, record)
      })
      .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let from = start.map_or(0, |start| {
      let key = listing_key(
        &start.name,
        start.rtype.as_deref(),
        start.set_identifier.as_deref(),
      );
      keyed.partition_point(|(k, _)| *k < key)
    });
    let rest = &keyed[from.min(keyed.len())..];
    let records = rest
      .iter()
      .take(RECORD_PAGE_SIZE)
      .map(|(_, record)| (*record).clone())
      .collect();
    let next = rest
      .get(RECORD_PAGE_SIZE)
      .map(|(_, record)| RecordPageStart {
        name: record.name.clone(),
        rtype: Some(record.rtype.clone()),
        set_identifier: record.set_identifier.clone(),
      });
    Ok(RecordPage { records, next })
  }

  fn list(&self, zone_id: &str, name: &str) -> Result<Vec<RecordSet>, Reject> {
    let zone_id = bare_zone_id(zone_id);
    let zone = self
      .zones
      .get(zone_id)
      .ok_or_else(|| no_such_zone(zone_id))?;
    let name = normalize_dns_name(name);
    Ok(
      zone
        .records
        .iter()
        .filter(|record| record.name == name)
        .cloned()
        .collect(),
    )
  }
}

impl WorldState {
  /// What Route 53's checkers see now (`None`: no such health check).
  pub(crate) fn health_status(
    &self,
    id: &str,
    now: DateTime<Utc>,
    depth: u32,
  ) -> Option<HealthCheckStatus> {
    let check = self.route53.health_checks.get(id)?;
    // A `RECOVERY_CONTROL` health check follows its ARC routing control (On: healthy), not an
    // endpoint (`cloud::arc::sim`).
    let reachable = match self.arc.health_check_state(id) {
      Some(state) => state == crate::cloud::arc::ControlState::On,
      None => self
        .serve(&check.target, now, depth + 1)
        .is_ok_and(|(status, _)| (200..400).contains(&status)),
    };
    let observed_healthy = reachable != check.inverted;
    Some(HealthCheckStatus {
      id: id.to_string(),
      checkers_healthy: if check.disabled || observed_healthy {
        check.checkers
      } else {
        0
      },
      checkers_total: check.checkers,
      disabled: check.disabled,
      inverted: check.inverted,
    })
  }

  /// The failover routing rule: the PRIMARY record's value while its health check is healthy
  /// (or it has none), else the SECONDARY's; a name without failover records answers its first
  /// value.
  pub(crate) fn resolve(
    &self,
    zone_id: &str,
    name: &str,
    now: DateTime<Utc>,
    depth: u32,
  ) -> Option<String> {
    let records = self.route53.list(zone_id, name).ok()?;
    let with_role = |role| records.iter().find(|record| record.failover == Some(role));
    if let Some(primary) = with_role(FailoverRole::Primary) {
      // A record without a health check is always considered healthy.
      let healthy = match primary.health_check_id.as_deref() {
        None => true,
        Some(id) => self
          .health_status(id, now, depth + 1)
          .is_some_and(|status| status.is_healthy()),
      };
      if healthy {
        return primary.values.first().cloned();
      }
    }
    if let Some(secondary) = with_role(FailoverRole::Secondary) {
      return secondary.values.first().cloned();
    }
    records
      .iter()
      .find(|record| record.failover.is_none())
      .and_then(|record| record.values.first().cloned())
  }
}

#[async_trait::async_trait]
impl Route53 for SimCloud {
  async fn list_record_sets(&self, zone_id: &str, name: &str) -> CloudResult<Vec<RecordSet>> {
    self
      .sim
      .read(
        &ops::route53::LIST_RESOURCE_RECORD_SETS,
        None,
        |state, _now| state.route53.list(zone_id, name),
      )
      .await
  }

  async fn list_record_sets_page(
    &self,
    zone_id: &str,
    start: Option<&RecordPageStart>,
  ) -> CloudResult<RecordPage> {
    self
      .sim
      .read(
        &ops::route53::LIST_RESOURCE_RECORD_SETS,
        None,
        |state, _now| state.route53.page(zone_id, start),
      )
      .await
  }

  async fn get_change(&self, change_id: &str) -> CloudResult<ChangeInfo> {
    let bare = change_id.strip_prefix("/change/").unwrap_or(change_id);
    self
      .sim
      .read(&ops::route53::GET_CHANGE, None, |state, now| {
        let submitted_at = *state.route53.changes.get(bare).ok_or_else(|| {
          Reject::not_found(
            "NoSuchChange",
            format!("A change with the specified change ID does not exist: {bare}"),
          )
        })?;
        let insync = state
          .model
          .done(submitted_at, now, state.model.timings.route53_propagation.0);
        Ok(ChangeInfo {
          id: format!("/change/{bare}"),
          status: if insync { "INSYNC" } else { "PENDING" }.into(),
          submitted_at,
        })
      })
      .await
  }

  async fn get_health_check_status(&self, health_check_id: &str) -> CloudResult<HealthCheckStatus> {
    let op = &ops::route53::GET_HEALTH_CHECK_STATUS;
    // Two requests against the rate limit, as on AWS: `GetHealthCheckStatus` for the
    // observations and `GetHealthCheck` for the configuration.
    self
      .sim
      .gate_cost(op.service, op.name, None, Some(ATTEMPT_TIMEOUT), 2)
      .await
      .map_err(|refusal| self.sim.refused(op.service, op.name, refusal))?;
    self
      .sim
      .peek(|state, now| {
        state
          .health_status(health_check_id, now, 0)
          .ok_or_else(|| no_such_check(health_check_id))
      })
      .map_err(|reject| self.sim.reject(op.service, op.name, reject))
  }

  async fn change_record_sets(
    &self,
    zone_id: &str,
    comment: &str,
    changes: &[RecordChange],
  ) -> CloudResult<ChangeInfo> {
    let op = self
      .sim
      .mutate(
        &ops::route53::CHANGE_RESOURCE_RECORD_SETS,
        None,
        bare_zone_id(zone_id),
        json!({ "comment": comment, "changes": changes }),
      )
      .await?;
    let pending = !self.sim.propagation().is_zero();
    Ok(ChangeInfo {
      id: format!("/change/{}", change_id(op.seq)),
      status: if pending { "PENDING" } else { "INSYNC" }.into(),
      submitted_at: op.at,
    })
  }

  async fn update_health_check(
    &self,
    health_check_id: &str,
    update: HealthCheckUpdate,
  ) -> CloudResult<()> {
    self
      .sim
      .mutate(
        &ops::route53::UPDATE_HEALTH_CHECK,
        None,
        health_check_id,
        json!({ "disabled": update.disabled, "inverted": update.inverted }),
      )
      .await
      .map(drop)
  }
}

impl Route53State {
  /// The zones and health checks as a world file declares them, as they stand now.
  pub fn export(&self) -> crate::cloud::sim::world::Route53Spec {
    let hosted_zones = self
      .zones
      .iter()
      .map(|(id, zone)| crate::cloud::sim::world::ZoneSpec {
        id: id.clone(),
        name: zone.name.clone(),
        records: zone
          .records
          .iter()
          .map(|record| crate::cloud::sim::world::RecordSpec {
            name: record.name.clone(),
            rtype: record.rtype.clone(),
            set_identifier: record.set_identifier.clone(),
            failover: record.failover,
            ttl: record.ttl,
            values: record.values.clone(),
            health_check_id: record.health_check_id.clone(),
          })
          .collect(),
      })
      .collect();
    let health_checks = self
      .health_checks
      .iter()
      .map(|(id, check)| crate::cloud::sim::world::HealthCheckSpec {
        id: id.clone(),
        target: check.target.clone(),
        inverted: check.inverted,
        disabled: check.disabled,
        checkers: check.checkers,
      })
      .collect();
    crate::cloud::sim::world::Route53Spec {
      hosted_zones,
      health_checks,
    }
  }
}

/// The family's part of the world spec.
pub(crate) type Spec = crate::cloud::sim::world::Route53Spec;

/// The family's part of the simulated world.
pub(crate) type State = Route53State;

impl crate::cloud::sim::state::FamilyState for Route53State {
  type Spec = Spec;

  fn new(spec: &crate::cloud::sim::world::WorldSpec, _model: &Model) -> Self {
    Route53State::new(&spec.route53)
  }

  fn apply(&mut self, op: &Operation, _model: &Model) -> Applied {
    Route53State::apply(self, op)
  }

  fn export(&self, _created: Self::Spec, _model: &Model, _now: DateTime<Utc>) -> Self::Spec {
    Route53State::export(self)
  }
}
