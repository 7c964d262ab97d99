//! Route 53: health check assertions, failover record flips, health check configuration.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{
  poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Effect,
  Observation, Observed, Outcome, Poll,
};
use crate::cloud::ops;
use crate::{
  cloud::{
    change_batches, normalize_dns_name, FailoverRole, HealthCheckStatus, HealthCheckUpdate,
    RecordChange, RecordSet,
  },
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
};

const HEALTH_CHECK_ID: FieldSpec = FieldSpec::required(
  "health_check_id",
  FieldKind::String,
  "Route 53 health check id",
);

// --- route53.health_check ---------------------------------------------------------------------

pub const HEALTH_CHECK: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "route53.health_check",
    mutating: false,
    doc:
      "Assert a health check is healthy or unhealthy by Route 53's rule (healthy when more than \
          18% of checkers report healthy). With `within`, keep checking until it holds.",
    fields: &[
      HEALTH_CHECK_ID,
      FieldSpec::required(
        "expect",
        FieldKind::Enum(&["healthy", "unhealthy"]),
        "The status to assert",
      ),
      FieldSpec::optional(
        "within",
        FieldKind::Duration,
        "Keep checking for up to this long",
      ),
    ],
    calls: &[Call::global(&ops::route53::GET_HEALTH_CHECK_STATUS)],
    outputs: &["healthy", "checkers"],
  },
  behaviour: Behaviour::Check(&HealthCheck),
};

struct HealthCheck;

#[async_trait::async_trait]
impl Check for HealthCheck {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let id = args.str("health_check_id")?;
    let want_healthy = args.str("expect")? == "healthy";
    let within = args.opt_duration("within");
    let start = ctx.cloud.clock.now();
    let status = poll_until(ctx, || async {
      let status = ctx.cloud.route53.get_health_check_status(id).await?;
      let healthy = status.is_healthy();
      let word = if healthy { "healthy" } else { "unhealthy" };
      if healthy == want_healthy {
        return Ok(Poll::Ready(status));
      }
      let waited = ctx.cloud.clock.elapsed_since(start);
      match within {
        Some(within) if waited < within => Ok(Poll::Pending(format!(
          "health check {id}: {word} ({}/{} checkers healthy)",
          status.checkers_healthy, status.checkers_total
        ))),
        _ => Err(ActionError::failed(format!(
          "health check {id} is {word} ({}/{} checkers healthy{}{}), expected {}",
          status.checkers_healthy,
          status.checkers_total,
          if status.inverted { ", inverted" } else { "" },
          if status.disabled { ", disabled" } else { "" },
          args.opt_str("expect").unwrap_or_default()
        ))),
      }
    })
    .await?;
    let healthy = status.is_healthy();
    Ok(
      Outcome::new(format!(
        "health check {id} is {} ({}/{} checkers healthy)",
        if healthy { "healthy" } else { "unhealthy" },
        status.checkers_healthy,
        status.checkers_total
      ))
      .output("healthy", healthy)
      .output(
        "checkers",
        format!("{}/{}", status.checkers_healthy, status.checkers_total),
      ),
    )
  }
}

// --- route53.failover -------------------------------------------------------------------------

const RECORD_FIELDS: &[FieldSpec] = &[
  FieldSpec::required("name", FieldKind::String, "Record name"),
  FieldSpec::optional("type", FieldKind::String, "Record type (default CNAME)"),
  FieldSpec::optional(
    "zone_id",
    FieldKind::String,
    "Hosted zone, when different from the step's",
  ),
  FieldSpec::optional(
    "set_identifier",
    FieldKind::String,
    "Set identifier of a routing-policy record",
  ),
  FieldSpec::optional(
    "failover",
    FieldKind::Enum(&["PRIMARY", "SECONDARY"]),
    "Failover role",
  ),
  FieldSpec::optional("ttl", FieldKind::Int, "TTL in seconds (default 60)"),
  FieldSpec::required(
    "value",
    FieldKind::String,
    "The record's value (a hostname for CNAME)",
  ),
  FieldSpec::optional(
    "health_check_id",
    FieldKind::String,
    "Health check to associate (none when absent)",
  ),
];

pub const FAILOVER: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "route53.failover",
    mutating: true,
    doc: "Make DNS records match the desired state: UPSERT only the records that differ, in one \
          atomic change batch per hosted zone (split only when a zone's changes exceed Route 53's \
          1,000 ResourceRecord elements per request, an UPSERT counting twice), then wait until \
          every change is INSYNC. More than 3 names in a zone are read in 300-record pages, not \
          one request each. Refuses to send traffic (a PRIMARY or plain record) \
          to a target whose health check is unhealthy, unless `--force`.",
    fields: &[
      FieldSpec::optional("zone_id", FieldKind::String, "Hosted zone of the records"),
      FieldSpec::required(
        "records",
        FieldKind::Objects(RECORD_FIELDS),
        "The desired records",
      ),
      FieldSpec::optional("comment", FieldKind::String, "Change batch comment"),
    ],
    calls: &[
      Call::global(&ops::route53::LIST_RESOURCE_RECORD_SETS),
      Call::global(&ops::route53::GET_HEALTH_CHECK_STATUS),
      Call::global(&ops::route53::CHANGE_RESOURCE_RECORD_SETS),
      Call::global(&ops::route53::GET_CHANGE),
    ],
    outputs: &["change_ids", "changed_records"],
  },
  behaviour: Behaviour::Effect(&Failover),
};

struct Failover;

/// The desired records, grouped by zone.
fn desired(args: &Args) -> ActionResult<BTreeMap<String, Vec<RecordSet>>> {
  let default_zone = args.opt_str("zone_id");
  let mut zones: BTreeMap<String, Vec<RecordSet>> = BTreeMap::new();
  for (i, record) in args.objects("records").iter().enumerate() {
    let zone = record.opt_str("zone_id").or(default_zone).ok_or_else(|| {
      ActionError::failed(format!(
        "`with.records[{i}]` has no zone_id and the step sets none"
      ))
    })?;
    let failover = match record.opt_str("failover") {
      Some("PRIMARY") => Some(FailoverRole::Primary),
      Some("SECONDARY") => Some(FailoverRole::Secondary),
      _ => None,
    };
    zones.entry(zone.to_string()).or_default().push(RecordSet {
      name: normalize_dns_name(record.str("name")?),
      rtype: record
        .opt_str("type")
        .unwrap_or("CNAME")
        .to_ascii_uppercase(),
      set_identifier: record.opt_str("set_identifier").map(str::to_string),
      failover,
      ttl: Some(u32::try_from(record.opt_int("ttl").unwrap_or(60)).unwrap_or(60)),
      values: vec![record.str("value")?.to_string()],
      health_check_id: record.opt_str("health_check_id").map(str::to_string),
    });
  }
  if zones.is_empty() {
    return Err(ActionError::failed("`with.records` is empty"));
  }
  Ok(zones)
}

/// Whether an existing record already has the desired content. Values compare as DNS names.
fn matches(existing: &RecordSet, want: &RecordSet) -> bool {
  let norm = |values: &[String]| {
    let mut values: Vec<String> = values
      .iter()
      .map(|value| value.trim_end_matches('.').to_ascii_lowercase())
      .collect();
    values.sort();
    values
  };
  existing.failover == want.failover
    && existing.ttl == want.ttl
    && existing.health_check_id == want.health_check_id
    && norm(&existing.values) == norm(&want.values)
}

/// Up to this many distinct names, a zone is read one `ListResourceRecordSets` per name; above
/// it, the whole zone is read page by page (300 record sets a request). Route 53 allows 5
/// requests per second per account, so 1,000 names read one by one would cost 200 s of the RTO;
/// a zone of 1,000 records is 4 pages.
const PER_NAME_READS: usize = 3;

/// The zone's current record sets for the desired names, keyed as Route 53 keys them.
async fn current_records(
  ctx: &Ctx<'_>,
  zone: &str,
  names: &BTreeSet<String>,
) -> ActionResult<HashMap<(String, String, Option<String>), RecordSet>> {
  let mut found = HashMap::new();
  if names.len() <= PER_NAME_READS {
    for name in names {
      for record in ctx.cloud.route53.list_record_sets(zone, name).await? {
        found.insert(record.key(), record);
      }
    }
    return Ok(found);
  }
  let mut start = None;
  loop {
    let page = ctx
      .cloud
      .route53
      .list_record_sets_page(zone, start.as_ref())
      .await?;
    for record in page.records {
      if names.contains(&normalize_dns_name(&record.name)) {
        found.insert(record.key(), record);
      }
    }
    match page.next {
      // A listing that does not move forward would loop forever: refuse it.
      Some(next) if start.as_ref() == Some(&next) => {
        return Err(ActionError::failed(format!(
          "ListResourceRecordSets of zone {zone} returned the same page twice (from {})",
          next.name
        )))
      }
      Some(next) => start = Some(next),
      None => return Ok(found),
    }
  }
}

/// What observe saw: per zone, the desired records that differ from what Route 53 has, and
/// their current state in words.
struct Differences {
  changes: BTreeMap<String, Vec<RecordSet>>,
  current: Vec<String>,
}

/// For each zone, the desired records that differ from what Route 53 has.
async fn differing(ctx: &Ctx<'_>, args: &Args) -> ActionResult<Differences> {
  let mut changes = BTreeMap::new();
  let mut current = Vec::new();
  for (zone, records) in desired(args)? {
    let names: BTreeSet<String> = records.iter().map(|record| record.name.clone()).collect();
    let existing = current_records(ctx, &zone, &names).await?;
    let mut zone_changes = Vec::new();
    for want in records {
      match existing.get(&want.key()) {
        Some(record) if matches(record, &want) => {}
        Some(record) => {
          current.push(format!(
            "{} {} -> {}",
            want.name,
            label(&want),
            record.values.join(",")
          ));
          zone_changes.push(want);
        }
        None => {
          current.push(format!("{} {} absent", want.name, label(&want)));
          zone_changes.push(want);
        }
      }
    }
    if !zone_changes.is_empty() {
      changes.insert(zone, zone_changes);
    }
  }
  Ok(Differences { changes, current })
}

/// Refuse to send traffic to a target whose health check is unhealthy (unless forced). Only the
/// records about to change and that take traffic count: a SECONDARY record is the fallback, and
/// in a failover it usually names the region that just failed. Each health check is asked once,
/// however many records share it (a fleet's records often share a regional check).
async fn guard_targets(
  ctx: &Ctx<'_>,
  changes: &BTreeMap<String, Vec<RecordSet>>,
) -> ActionResult<()> {
  if ctx.force {
    return Ok(());
  }
  let mut statuses: HashMap<String, HealthCheckStatus> = HashMap::new();
  for record in changes.values().flatten() {
    if record.failover == Some(FailoverRole::Secondary) {
      continue;
    }
    let Some(id) = &record.health_check_id else {
      continue;
    };
    let status = match statuses.get(id) {
      Some(status) => status.clone(),
      None => {
        let status = ctx.cloud.route53.get_health_check_status(id).await?;
        statuses.insert(id.clone(), status.clone());
        status
      }
    };
    if !status.is_healthy() {
      let which = record
        .set_identifier
        .as_ref()
        .map_or(String::new(), |set| format!(" ({set})"));
      return Err(ActionError::failed(format!(
        "refusing to send {}{which} to {}: its health check {id} is unhealthy ({}/{} checkers \
         healthy); pass --force to flip anyway",
        record.name,
        record.values.join(","),
        status.checkers_healthy,
        status.checkers_total
      )));
    }
  }
  Ok(())
}

/// At most this many items of a long list in the words a step journals and prints; a fleet's
/// thousand records would otherwise make every intent record and live line tens of kilobytes.
const LISTED: usize = 5;

fn abbreviated(items: Vec<String>) -> String {
  let total = items.len();
  let mut shown: Vec<String> = items.into_iter().take(LISTED).collect();
  if total > LISTED {
    shown.push(format!("… and {} more", total - LISTED));
  }
  shown.join("; ")
}

fn label(record: &RecordSet) -> String {
  match &record.set_identifier {
    Some(id) => format!("{} ({id})", record.rtype),
    None => record.rtype.clone(),
  }
}

#[async_trait::async_trait]
impl Effect for Failover {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let Differences { changes, current } = differing(ctx, args).await?;
    if changes.is_empty() {
      return Ok(Observation::new(
        Observed::Done,
        "every record already has its desired value",
        "none",
      ));
    }
    guard_targets(ctx, &changes).await?;
    let change = changes
      .iter()
      .map(|(zone, records)| {
        let names: Vec<String> = records
          .iter()
          .map(|record| {
            format!(
              "{} {} -> {}",
              record.name,
              label(record),
              record.values.join(",")
            )
          })
          .collect();
        let batches = change_batches(upserts(records.clone())).len();
        let batches = if batches > 1 {
          format!(" in {batches} change batches")
        } else {
          String::new()
        };
        format!("zone {zone}: UPSERT{batches} {}", abbreviated(names))
      })
      .collect::<Vec<_>>()
      .join(" | ");
    Ok(Observation::new(
      Observed::Absent,
      abbreviated(current),
      change,
    ))
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    // Only what still differs: after a crash between two batches of one zone, the batch that
    // went through is not sent again.
    let Differences { changes, .. } = differing(ctx, args).await?;
    let comment = args
      .opt_str("comment")
      .map(str::to_string)
      .unwrap_or_else(|| format!("drctl run {} step {}", ctx.run_id, ctx.step_id));
    let mut ids = Vec::new();
    for (zone, records) in changes {
      // One atomic batch per zone whenever Route 53's per-request limits allow.
      for batch in change_batches(upserts(records)) {
        let info = ctx
          .cloud
          .route53
          .change_record_sets(&zone, &comment, &batch)
          .await?;
        ids.push(info.id);
      }
    }
    Ok(Some(ids.join(",")))
  }

  async fn verify(&self, ctx: &Ctx<'_>, args: &Args, token: Option<&str>) -> ActionResult<Outcome> {
    let ids: Vec<&str> = token
      .map(|t| t.split(',').filter(|id| !id.is_empty()).collect())
      .unwrap_or_default();
    for id in &ids {
      poll_until(ctx, || async {
        let info = ctx.cloud.route53.get_change(id).await?;
        Ok(if info.is_insync() {
          Poll::Ready(())
        } else {
          Poll::Pending(format!("change {id}: {}", info.status))
        })
      })
      .await?;
    }
    let remaining = differing(ctx, args).await?;
    if !remaining.changes.is_empty() {
      return Err(ActionError::retryable(
        "records still differ from the desired state after the change",
      ));
    }
    let count: usize = desired(args)?.values().map(Vec::len).sum();
    Ok(
      Outcome::new(format!(
        "{count} record(s) in their desired state, changes INSYNC"
      ))
      .output("change_ids", ids.join(","))
      .output("changed_records", count),
    )
  }
}

fn upserts(records: Vec<RecordSet>) -> Vec<RecordChange> {
  records
    .into_iter()
    .map(|record| RecordChange {
      action: "UPSERT".into(),
      record,
    })
    .collect()
}

// --- route53.set_health_check -----------------------------------------------------------------

pub const SET_HEALTH_CHECK: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "route53.set_health_check",
    mutating: true,
    doc: "Disable, enable or invert a health check (drills invert the primary's check to stage an outage).",
    fields: &[
      HEALTH_CHECK_ID,
      FieldSpec::optional("inverted", FieldKind::Bool, "Invert the check's result"),
      FieldSpec::optional("disabled", FieldKind::Bool, "Disable the check (Route 53 then treats it as healthy)"),
    ],
    calls: &[
      Call::global(&ops::route53::GET_HEALTH_CHECK_STATUS),
      Call::global(&ops::route53::UPDATE_HEALTH_CHECK),
    ],
    outputs: &[],
  },
  behaviour: Behaviour::Effect(&SetHealthCheck),
};

struct SetHealthCheck;

fn wanted(args: &Args) -> HealthCheckUpdate {
  HealthCheckUpdate {
    inverted: args.opt_bool("inverted"),
    disabled: args.opt_bool("disabled"),
  }
}

#[async_trait::async_trait]
impl Effect for SetHealthCheck {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let id = args.str("health_check_id")?;
    let want = wanted(args);
    let status = ctx.cloud.route53.get_health_check_status(id).await?;
    let current = format!(
      "{id}: inverted {}, disabled {}",
      status.inverted, status.disabled
    );
    let in_place = want.inverted.is_none_or(|v| v == status.inverted)
      && want.disabled.is_none_or(|v| v == status.disabled);
    let change = format!(
      "set {id}{}{}",
      want
        .inverted
        .map_or(String::new(), |v| format!(" inverted={v}")),
      want
        .disabled
        .map_or(String::new(), |v| format!(" disabled={v}"))
    );
    Ok(if in_place {
      Observation::new(Observed::Done, current, "none")
    } else {
      Observation::new(Observed::Absent, current, change)
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    ctx
      .cloud
      .route53
      .update_health_check(args.str("health_check_id")?, wanted(args))
      .await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let observation = self.observe(ctx, args).await?;
    if observation.state != Observed::Done {
      return Err(ActionError::retryable(format!(
        "health check configuration not yet in place ({})",
        observation.current
      )));
    }
    Ok(Outcome::new(observation.current))
  }
}
