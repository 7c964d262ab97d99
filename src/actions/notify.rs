//! Notifications: Slack incoming webhooks, PagerDuty Events API v2, generic JSON webhooks.
//!
//! A notification is a side effect, so it is an effect: a dry run never sends one, and it is
//! journalled like any other change. `observe` cannot see whether a message was delivered, so a
//! crash between sending and journalling may send it twice — except to PagerDuty, whose
//! `dedup_key` (derived from run id and step) makes the repeat a no-op.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;

use super::{
  ActionDef, ActionError, ActionResult, Args, Behaviour, Ctx, Effect, Observation, Observed,
  Outcome,
};
use crate::{
  cloud::HttpRequest,
  runbook::{ActionSpec, FieldKind, FieldSpec},
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// `scheme://host` of a URL: webhook paths carry secrets, so only the host is ever shown.
pub fn url_host(url: &str) -> String {
  let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
  let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
  let host = host.rsplit('@').next().unwrap_or(host);
  format!("{scheme}://{host}")
}

async fn post(
  ctx: &Ctx<'_>,
  url: &str,
  headers: BTreeMap<String, String>,
  body: String,
) -> ActionResult<u16> {
  let mut headers = headers;
  headers
    .entry("content-type".into())
    .or_insert_with(|| "application/json".into());
  let request = HttpRequest {
    method: "POST".into(),
    url: url.to_string(),
    headers,
    body: Some(body),
    timeout: TIMEOUT,
  };
  let response = ctx.cloud.http.send(&request).await?;
  let host = url_host(url);
  match response.status {
    200..=299 => Ok(response.status),
    429 | 500..=599 => Err(ActionError::retryable(format!(
      "POST {host} answered {}",
      response.status
    ))),
    status => Err(ActionError::failed(format!(
      "POST {host} answered {status}"
    ))),
  }
}

fn observe_send(url: &str, what: &str) -> Observation {
  Observation::new(
    Observed::Absent,
    "not sent",
    format!("POST {what} to {}", url_host(url)),
  )
}

// --- notify.slack -----------------------------------------------------------------------------

pub const SLACK: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "notify.slack",
    mutating: true,
    doc: "Post a message to a Slack incoming webhook.",
    fields: &[
      FieldSpec::required(
        "webhook",
        FieldKind::String,
        "Incoming webhook URL (use ${{ secrets.X }})",
      ),
      FieldSpec::required("text", FieldKind::String, "Message text (mrkdwn)"),
    ],
    mutating_operations: &[],
    outputs: &[],
  },
  behaviour: Behaviour::Effect(&Slack),
};

struct Slack;

#[async_trait::async_trait]
impl Effect for Slack {
  async fn observe(&self, _ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    Ok(observe_send(args.str("webhook")?, "a Slack message"))
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let text = args.str("text")?;
    let body = json!({
      "text": text,
      "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": text } }],
    });
    post(ctx, args.str("webhook")?, BTreeMap::new(), body.to_string()).await?;
    Ok(None)
  }

  async fn verify(
    &self,
    _ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    Ok(Outcome::new(format!(
      "posted to {}",
      url_host(args.str("webhook")?)
    )))
  }
}

// --- notify.pagerduty -------------------------------------------------------------------------

pub const PAGERDUTY: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "notify.pagerduty",
    mutating: true,
    doc: "Trigger or resolve a PagerDuty incident (Events API v2). The dedup_key defaults to one \
          derived from the run id and step, so retries and resumes never page twice.",
    fields: &[
      FieldSpec::required(
        "routing_key",
        FieldKind::String,
        "Integration routing key (use ${{ secrets.X }})",
      ),
      FieldSpec::required("summary", FieldKind::String, "Incident summary"),
      FieldSpec::optional(
        "event_action",
        FieldKind::Enum(&["trigger", "resolve", "acknowledge"]),
        "Default trigger",
      ),
      FieldSpec::optional(
        "severity",
        FieldKind::Enum(&["critical", "error", "warning", "info"]),
        "Default error",
      ),
      FieldSpec::optional(
        "dedup_key",
        FieldKind::String,
        "Deduplication key (default drctl/RUN_ID/STEP)",
      ),
      FieldSpec::optional(
        "source",
        FieldKind::String,
        "Source of the event (default drctl)",
      ),
      FieldSpec::optional(
        "url",
        FieldKind::String,
        "Events API URL (default https://events.pagerduty.com/v2/enqueue)",
      ),
    ],
    mutating_operations: &[],
    outputs: &["dedup_key"],
  },
  behaviour: Behaviour::Effect(&PagerDuty),
};

struct PagerDuty;

const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn dedup_key(ctx: &Ctx<'_>, args: &Args) -> String {
  args
    .opt_str("dedup_key")
    .map(str::to_string)
    .unwrap_or_else(|| format!("drctl/{}/{}", ctx.run_id, ctx.step_id))
}

#[async_trait::async_trait]
impl Effect for PagerDuty {
  async fn observe(&self, _ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    Ok(observe_send(
      args.opt_str("url").unwrap_or(PAGERDUTY_URL),
      "a PagerDuty event",
    ))
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let action = args.opt_str("event_action").unwrap_or("trigger");
    let key = dedup_key(ctx, args);
    let mut body = json!({
      "routing_key": args.str("routing_key")?,
      "event_action": action,
      "dedup_key": key,
    });
    if action == "trigger" {
      body["payload"] = json!({
        "summary": args.str("summary")?,
        "source": args.opt_str("source").unwrap_or("drctl"),
        "severity": args.opt_str("severity").unwrap_or("error"),
      });
    }
    let url = args.opt_str("url").unwrap_or(PAGERDUTY_URL);
    post(ctx, url, BTreeMap::new(), body.to_string()).await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let key = dedup_key(ctx, args);
    Ok(
      Outcome::new(format!(
        "PagerDuty {} sent (dedup_key {key})",
        args.opt_str("event_action").unwrap_or("trigger")
      ))
      .output("dedup_key", key),
    )
  }
}

// --- notify.webhook ---------------------------------------------------------------------------

pub const WEBHOOK: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "notify.webhook",
    mutating: true,
    doc: "POST a JSON body to a URL, with custom headers.",
    fields: &[
      FieldSpec::required("url", FieldKind::String, "URL to POST to"),
      FieldSpec::optional(
        "body",
        FieldKind::Any,
        "JSON body (default: run id and step)",
      ),
      FieldSpec::optional("headers", FieldKind::StringMap, "Extra headers"),
    ],
    mutating_operations: &[],
    outputs: &["status"],
  },
  behaviour: Behaviour::Effect(&Webhook),
};

struct Webhook;

#[async_trait::async_trait]
impl Effect for Webhook {
  async fn observe(&self, _ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    Ok(observe_send(args.str("url")?, "a webhook"))
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let body = args
      .json("body")
      .cloned()
      .unwrap_or_else(|| json!({ "run_id": ctx.run_id, "step": ctx.step_id }));
    let status = post(
      ctx,
      args.str("url")?,
      args.string_map("headers"),
      body.to_string(),
    )
    .await?;
    Ok(Some(status.to_string()))
  }

  async fn verify(
    &self,
    _ctx: &Ctx<'_>,
    args: &Args,
    token: Option<&str>,
  ) -> ActionResult<Outcome> {
    Ok(
      Outcome::new(format!("posted to {}", url_host(args.str("url")?)))
        .output("status", token.unwrap_or_default()),
    )
  }
}

#[cfg(test)]
mod tests {
  use super::url_host;

  #[test]
  fn only_the_host_of_a_webhook_is_shown() {
    assert_eq!(
      url_host("https://hooks.slack.com/services/T000/B000/SECRET"),
      "https://hooks.slack.com"
    );
    assert_eq!(
      url_host("http://user:pw@127.0.0.1:8080/x?token=1"),
      "http://127.0.0.1:8080"
    );
  }
}
