//! A journal for the renderers' tests: four steps, one failed with an AWS error after a retry,
//! one skipped, and summaries that try to inject markup.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{ApiCalls, Report};
use crate::cloud::CallerIdentity;
use crate::state::{Event, Phase, Record, Redactor, RunMode, RunStatus, StepError, StepInfo};

/// A summary that must come out escaped in every format.
pub const HOSTILE: &str = "<script>alert(\"x\")</script> & <b>bold</b>";

fn start() -> DateTime<Utc> {
  // With nanoseconds, as the journal records them: reports show whole seconds.
  Utc.with_ymd_and_hms(2024, 3, 1, 3, 0, 0).single().unwrap() + Duration::nanoseconds(123_456_789)
}

fn step(id: &str, action: &str, needs: &[&str], mutating: bool) -> StepInfo {
  StepInfo {
    id: id.into(),
    name: None,
    action: action.into(),
    needs: needs.iter().map(|need| need.to_string()).collect(),
    mutating,
    recovery: true,
    always: false,
    budget_ms: Some(60_000),
    approval: false,
  }
}

pub fn records() -> Vec<Record> {
  let at = |secs: i64| start() + Duration::seconds(secs);
  let events: Vec<(i64, Event)> = vec![
    (
      0,
      Event::RunStarted {
        run_id: "20240301-030000-abcd".into(),
        runbook: "regional-failover".into(),
        runbook_path: "runbooks/regional-failover.yaml".into(),
        runbook_digest: "0".into(),
        params: BTreeMap::from([("target_region".to_string(), "us-west-2".to_string())]),
        mode: RunMode::Live,
        backend: "sim".into(),
        time_scale: 1.0,
        incident_start: start() - Duration::seconds(60),
        host: "ops-1".into(),
        user: "alice".into(),
        caller: Some(CallerIdentity {
          account: "123456789012".into(),
          arn: "arn:aws:iam::123456789012:user/alice".into(),
        }),
        pid: 42,
        rto_ms: Some(900_000),
        rpo_ms: Some(300_000),
        accept_data_loss: false,
        force: false,
        steps: vec![
          step("verify-outage", "route53.health_check", &[], false),
          step(
            "promote-db",
            "rds.promote_replica",
            &["verify-outage"],
            true,
          ),
          step(
            "scale-standby",
            "ecs.scale_service",
            &["verify-outage"],
            true,
          ),
          step(
            "notify",
            "notify.slack",
            &["promote-db", "scale-standby"],
            false,
          ),
        ],
      },
    ),
    (
      0,
      Event::StepStarted {
        step: "verify-outage".into(),
        attempt: 1,
        phase: Phase::Run,
      },
    ),
    (
      10,
      Event::StepSucceeded {
        step: "verify-outage".into(),
        attempt: 1,
        phase: Phase::Run,
        changed: false,
        outputs: BTreeMap::new(),
        data_loss_ms: None,
        data_loss_unknown: None,
        summary: "primary unhealthy (token hunter2-secret)".into(),
      },
    ),
    (
      10,
      Event::StepStarted {
        step: "promote-db".into(),
        attempt: 1,
        phase: Phase::Run,
      },
    ),
    (
      10,
      Event::StepStarted {
        step: "scale-standby".into(),
        attempt: 1,
        phase: Phase::Run,
      },
    ),
    (
      20,
      Event::StepFailed {
        step: "scale-standby".into(),
        attempt: 1,
        phase: Phase::Run,
        error: StepError {
          message: "Rate exceeded".into(),
          code: Some("Throttling".into()),
          request_id: Some("req-41".into()),
          http_status: Some(400),
          retryable: true,
        },
        will_retry: true,
        backoff_ms: Some(2000),
      },
    ),
    (
      22,
      Event::StepStarted {
        step: "scale-standby".into(),
        attempt: 2,
        phase: Phase::Run,
      },
    ),
    (
      60,
      Event::StepFailed {
        step: "scale-standby".into(),
        attempt: 2,
        phase: Phase::Run,
        error: StepError {
          message: "Rate exceeded <again> & gave up".into(),
          code: Some("Throttling".into()),
          request_id: Some("req-42".into()),
          http_status: Some(400),
          retryable: true,
        },
        will_retry: false,
        backoff_ms: None,
      },
    ),
    (
      330,
      Event::StepSucceeded {
        step: "promote-db".into(),
        attempt: 1,
        phase: Phase::Run,
        changed: true,
        outputs: BTreeMap::from([("endpoint".to_string(), "db.example".to_string())]),
        data_loss_ms: Some(4000),
        data_loss_unknown: None,
        summary: HOSTILE.into(),
      },
    ),
    (
      330,
      Event::StepSkipped {
        step: "notify".into(),
        reason: "a dependency failed & <i>so</i> did this".into(),
      },
    ),
    (
      331,
      Event::RunFinished {
        status: RunStatus::Failed,
        rto_achieved_ms: None,
        rpo_achieved_ms: Some(4000),
        failed_step: Some("scale-standby".into()),
      },
    ),
  ];
  events
    .into_iter()
    .enumerate()
    .map(|(seq, (secs, event))| Record {
      seq: seq as u64 + 1,
      ts: at(secs),
      event,
    })
    .collect()
}

/// The fixture's report, with API calls recorded.
pub fn report() -> Report {
  Report::from_records(
    &records(),
    ApiCalls::count(
      "simulator operation log",
      [
        crate::cloud::ops::rds::PROMOTE_READ_REPLICA.name,
        crate::cloud::ops::ecs::UPDATE_SERVICE.name,
        crate::cloud::ops::ecs::UPDATE_SERVICE.name,
      ],
    ),
    &Redactor::default(),
  )
  .unwrap()
}

/// A run that succeeded: every step succeeded (the failed one on its second attempt).
pub fn succeeded_report() -> Report {
  let mut records = records();
  for record in &mut records {
    match &mut record.event {
      Event::StepFailed {
        will_retry, step, ..
      } if step == "scale-standby" && !*will_retry => {
        record.event = Event::StepSucceeded {
          step: "scale-standby".into(),
          attempt: 2,
          phase: Phase::Run,
          changed: true,
          outputs: BTreeMap::new(),
          data_loss_ms: None,
          data_loss_unknown: None,
          summary: "3/3 running".into(),
        };
      }
      Event::StepSkipped { .. } => {
        record.event = Event::StepSucceeded {
          step: "notify".into(),
          attempt: 1,
          phase: Phase::Run,
          changed: false,
          outputs: BTreeMap::new(),
          data_loss_ms: None,
          data_loss_unknown: None,
          summary: "posted".into(),
        };
      }
      Event::RunFinished {
        status,
        failed_step,
        ..
      } => {
        *status = RunStatus::Succeeded;
        *failed_step = None;
      }
      _ => {}
    }
  }
  Report::from_records(&records, ApiCalls::not_recorded(), &Redactor::default()).unwrap()
}
