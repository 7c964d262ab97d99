//! Sending a drill's notifications: each due `notify:` entry becomes a `notify.slack`,
//! `notify.pagerduty` or `notify.webhook` action, bound like a runbook step's and run (apply,
//! then verify) over real HTTP once the drill has its verdict.
//!
//! `with:` values may use `${{ secrets.X }}` and `${{ env.X }}` (both read from the environment),
//! `${{ params.X }}` (the drill's params) and `${{ run.id }}`. Fields left out get defaults from
//! the drill's result (Slack text, status, runbook, RTO and report; PagerDuty summary, dedup_key
//! and details; the webhook body is the history entry).
//!
//! A notification that cannot be sent is reported (by host only: webhook URLs are secrets) and
//! recorded with its outcome; it never changes the drill's verdict.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::{json, Value as Json};

use super::{file::DrillNotify, history::HistoryEntry, Drill, DrillResult};
use crate::{
  actions::{self, notify::url_host, ActionError, Behaviour, Ctx, RunFacts},
  cloud::{http::http_only, Cloud, Http},
  runbook::{
    format_duration,
    template::{Namespace, Reference, Scope, Template},
  },
  state::RunStatus,
};

/// Attempts per notification (transient failures only: transport, 429, 5xx).
const ATTEMPTS: u32 = 3;
/// Backoff before the second attempt; doubled before each further one.
const BACKOFF: Duration = Duration::from_secs(1);
/// Upper bound on one attempt (apply + verify), whatever the notifier's own `timeout`.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// What happened to one notification (recorded in `notify.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sent {
  pub kind: String,
  pub on: Vec<String>,
  pub outcome: Delivery,
  pub attempts: u32,
  /// `scheme://host` the notification went (or would have gone) to.
  pub host: Option<String>,
  /// The notifier's summary when sent, the reason when not.
  pub message: String,
  /// The notifier's outputs (`dedup_key`, `status`).
  pub outputs: BTreeMap<String, String>,
}

/// Whether a notification went out (`outcome` in `notify.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
  Sent,
  Failed,
}

impl Sent {
  pub fn sent(&self) -> bool {
    self.outcome == Delivery::Sent
  }
}

/// The event a drill result triggers: `success`, `breach` or `failure`.
pub fn event(result: DrillResult) -> &'static str {
  match result {
    DrillResult::Passed => "success",
    DrillResult::Breached => "breach",
    DrillResult::Failed | DrillResult::Interrupted | DrillResult::Skipped => "failure",
  }
}

/// The drill's `notify:` entries due for `entry`'s result.
pub fn due<'a>(drill: &'a Drill, entry: &HistoryEntry) -> Vec<&'a DrillNotify> {
  let event = event(entry.result);
  drill
    .notify
    .iter()
    .filter(|notify| notify.on.iter().any(|on| on == event))
    .collect()
}

/// Send every due notification over real HTTP. `run_id` names the run (the run's id, or the
/// dry run's directory name); `run_dir` holds its reports.
pub async fn send_all(
  drill: &Drill,
  entry: &HistoryEntry,
  run_id: &str,
  run_dir: &Path,
) -> Vec<Sent> {
  let due = due(drill, entry);
  if due.is_empty() {
    return Vec::new();
  }
  let http: Arc<dyn Http> = match crate::cloud::http::ReqwestHttp::shared() {
    Ok(http) => Arc::new(http),
    Err(err) => {
      return due
        .iter()
        .map(|notify| failed(notify, None, 0, format!("no HTTP client: {}", err.message)))
        .collect()
    }
  };
  let cloud = http_only(http);
  let mut sent = Vec::new();
  for notify in due {
    sent.push(send(&cloud, drill, entry, run_id, run_dir, notify).await);
  }
  sent
}

fn failed(notify: &DrillNotify, host: Option<String>, attempts: u32, message: String) -> Sent {
  Sent {
    kind: notify.kind.clone(),
    on: notify.on.clone(),
    outcome: Delivery::Failed,
    attempts,
    host,
    message,
    outputs: BTreeMap::new(),
  }
}

/// Send one notification: render, default, bind, then apply + verify with retries.
pub async fn send(
  cloud: &Cloud,
  drill: &Drill,
  entry: &HistoryEntry,
  run_id: &str,
  run_dir: &Path,
  notify: &DrillNotify,
) -> Sent {
  let name = format!("notify.{}", notify.kind);
  let Some(def) = actions::lookup(&name) else {
    return failed(
      notify,
      None,
      0,
      format!("unknown notifier `{}`", notify.kind),
    );
  };
  let Behaviour::Effect(effect) = def.behaviour else {
    return failed(notify, None, 0, format!("`{name}` is not a notifier"));
  };
  let rendered = match with(drill, entry, run_id, run_dir, notify) {
    Ok(rendered) => rendered,
    Err(message) => return failed(notify, None, 0, message),
  };
  let host = rendered
    .get(match notify.kind.as_str() {
      "slack" => "webhook",
      _ => "url",
    })
    .and_then(Json::as_str)
    .map(url_host)
    .or_else(|| (notify.kind == "pagerduty").then(|| "https://events.pagerduty.com".into()));
  let args = match actions::bind(def.spec, &rendered) {
    Ok(args) => args,
    Err(message) => return failed(notify, host, 0, message),
  };
  let (_cancel, cancel) = tokio::sync::watch::channel(false);
  let progress = |_: &str| {};
  let step_id = format!("notify-{}", notify.kind);
  let ctx = Ctx {
    rpo: drill.rpo_target(),
    run: RunFacts {
      runbook: &drill.runbook.name,
      rto: drill.rto_target(),
      elapsed: crate::runbook::from_seconds_saturating(
        entry.rto_achieved_seconds.unwrap_or_default(),
      ),
      ..RunFacts::default()
    },
    ..Ctx::new(cloud, run_id, &step_id, &progress, cancel)
  };
  let mut attempt = 0;
  let mut backoff = BACKOFF;
  loop {
    attempt += 1;
    let result = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
      let token = effect.apply(&ctx, &args).await?;
      effect.verify(&ctx, &args, token.as_deref()).await
    })
    .await
    .unwrap_or_else(|_| Err(ActionError::retryable("timed out")));
    match result {
      Ok(outcome) => {
        return Sent {
          kind: notify.kind.clone(),
          on: notify.on.clone(),
          outcome: Delivery::Sent,
          attempts: attempt,
          host,
          message: outcome.summary,
          outputs: outcome.outputs,
        }
      }
      Err(err) if err.retryable && attempt < ATTEMPTS => {
        tokio::time::sleep(backoff).await;
        backoff *= 2;
      }
      Err(err) => return failed(notify, host, attempt, err.message),
    }
  }
}

/// The notifier's `with`: the drill's settings rendered, over defaults from the result.
fn with(
  drill: &Drill,
  entry: &HistoryEntry,
  run_id: &str,
  run_dir: &Path,
  notify: &DrillNotify,
) -> Result<serde_json::Map<String, Json>, String> {
  let scope = DrillScope { drill, run_id };
  let mut with = defaults(drill, entry, run_id, run_dir, &notify.kind);
  for (key, text) in &notify.with {
    let value = Template::parse(text)
      .map_err(|err| format!("`with.{key}`: {err}"))?
      .render(&scope)
      .map_err(|err| format!("`with.{key}`: {err}"))?;
    with.insert(key.clone(), Json::String(value));
  }
  Ok(with)
}

fn defaults(
  drill: &Drill,
  entry: &HistoryEntry,
  run_id: &str,
  run_dir: &Path,
  kind: &str,
) -> serde_json::Map<String, Json> {
  let headline = format!("Drill {}: {}", drill.name, entry.result);
  let text = if entry.reasons.is_empty() {
    headline.clone()
  } else {
    format!("{headline} ({})", entry.reasons.join("; "))
  };
  // The entry as its history line holds it, format included.
  let entry_json = serde_json::to_value(crate::state::format::stamped(
    crate::state::format::Kind::History,
    entry,
  ))
  .unwrap_or_default();
  let mut with = serde_json::Map::new();
  match kind {
    "slack" => {
      // Slack's status word is a run's: a passed drill is a succeeded run.
      let status = match entry.result {
        DrillResult::Passed => RunStatus::Succeeded.as_str(),
        other => other.as_str(),
      };
      with.insert("text".into(), json!(text));
      with.insert("status".into(), json!(status));
      with.insert("runbook".into(), json!(drill.runbook.name));
      if let Some(region) = region(drill) {
        with.insert("region".into(), json!(region));
      }
      with.insert("rto".into(), json!(rto_text(entry)));
      if let Some(report) = ["html", "md"]
        .iter()
        .map(|extension| run_dir.join(format!("report.{extension}")))
        .find(|path| path.exists())
      {
        with.insert("report".into(), json!(report.display().to_string()));
      }
    }
    "pagerduty" => {
      with.insert("summary".into(), json!(text));
      with.insert(
        "dedup_key".into(),
        json!(format!("drctl-drill/{}/{run_id}", drill.name)),
      );
      with.insert(
        "source".into(),
        json!(format!("drctl drill {}", drill.name)),
      );
      with.insert("custom_details".into(), entry_json);
    }
    "webhook" => {
      with.insert("body".into(), entry_json);
    }
    _ => {}
  }
  with
}

/// The region a drill exercises: where a failover goes (`target_region`), else the region
/// the drill's target runs in.
fn region(drill: &Drill) -> Option<&str> {
  drill
    .params
    .get("target_region")
    .or(drill.params.get("region"))
    .or(drill.target.region.as_ref())
    .map(String::as_str)
}

/// "4m10s of 15m target".
fn rto_text(entry: &HistoryEntry) -> String {
  let show = |seconds: f64| format_duration(crate::runbook::from_seconds_saturating(seconds));
  match (entry.rto_achieved_seconds, entry.rto_target_seconds) {
    (Some(achieved), Some(target)) => format!("{} of {} target", show(achieved), show(target)),
    (Some(achieved), None) => format!("{} (no target)", show(achieved)),
    (None, Some(target)) => format!("not measured ({} target)", show(target)),
    (None, None) => "not measured".into(),
  }
}

/// `secrets.X` and `env.X` from the environment (an unset one is an error: the notification
/// would go nowhere), `params.X` from the drill, `run.id`.
struct DrillScope<'a> {
  drill: &'a Drill,
  run_id: &'a str,
}

impl Scope for DrillScope<'_> {
  fn resolve(&self, reference: &Reference) -> Option<String> {
    let first = reference.path.first()?;
    match reference.namespace {
      Namespace::Secrets | Namespace::Env => std::env::var(first).ok(),
      Namespace::Params => self.drill.params.get(first).cloned(),
      Namespace::Run if first == "id" => Some(self.run_id.to_string()),
      _ => None,
    }
  }
}

#[cfg(test)]
mod tests {
  use std::path::PathBuf;

  use super::*;
  use crate::{actions::Catalog, drills::history::DrillRun};

  fn drill() -> Drill {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = repo.join("drills/quarterly-regional-failover.yaml");
    super::super::file::load_file(&path, &repo.join("runbooks"), &Catalog)
      .unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
  }

  fn entry(result: &str) -> HistoryEntry {
    let now = chrono::Utc::now();
    HistoryEntry {
      drill: "quarterly-regional-failover".into(),
      run_id: "run-1".into(),
      trigger: "manual".into(),
      due: None,
      started_at: now,
      finished_at: now,
      duration_seconds: 1.0,
      result: serde_json::from_value(json!(result)).unwrap(),
      run_status: DrillRun::Ran(RunStatus::Succeeded),
      mode: "live".into(),
      backend: "sim".into(),
      rto_target_seconds: Some(900.0),
      rto_achieved_seconds: Some(1000.0),
      rpo_target_seconds: None,
      rpo_achieved_seconds: None,
      reasons: vec!["RTO 16m40s exceeds 15m".into()],
      host: "h".into(),
    }
  }

  fn notify(kind: &str, with: &[(&str, &str)]) -> DrillNotify {
    DrillNotify {
      kind: kind.into(),
      on: vec!["breach".into()],
      with: with
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect(),
    }
  }

  fn bound(kind: &str, with_: &[(&str, &str)]) -> serde_json::Map<String, Json> {
    let (drill, entry) = (drill(), entry("breached"));
    let rendered = with(
      &drill,
      &entry,
      "run-1",
      Path::new("/nonexistent"),
      &notify(kind, with_),
    )
    .unwrap();
    let def = actions::lookup(&format!("notify.{kind}")).unwrap();
    actions::bind(def.spec, &rendered).unwrap();
    rendered
  }

  #[test]
  fn pagerduty_defaults_to_a_stable_dedup_key_and_a_summary() {
    let with = bound("pagerduty", &[("routing_key", "rk")]);
    assert_eq!(
      with["dedup_key"],
      "drctl-drill/quarterly-regional-failover/run-1"
    );
    let summary = with["summary"].as_str().unwrap();
    assert!(summary.contains("breached"), "{summary}");
    assert_eq!(with["custom_details"]["result"], "breached");
  }

  #[test]
  fn slack_defaults_describe_the_result_and_the_author_wins() {
    let with = bound("slack", &[("webhook", "https://x"), ("runbook", "mine")]);
    assert_eq!(with["status"], "breached");
    assert_eq!(with["runbook"], "mine");
    assert_eq!(with["region"], "us-west-2");
    assert_eq!(with["rto"], "16m40s of 15m target");
  }

  #[test]
  fn an_unset_secret_is_an_error_naming_it() {
    let err = with(
      &drill(),
      &entry("breached"),
      "run-1",
      Path::new("/nonexistent"),
      &notify(
        "webhook",
        &[("url", "${{ secrets.DRCTL_TEST_SURELY_UNSET }}")],
      ),
    )
    .unwrap_err();
    assert!(err.contains("secrets.DRCTL_TEST_SURELY_UNSET"), "{err}");
  }
}
