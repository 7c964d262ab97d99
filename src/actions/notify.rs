//! Notifications: Slack incoming webhooks, PagerDuty Events API v2, generic JSON webhooks.
//!
//! A notification is a side effect, so it is an effect: a dry run never sends one, and it is
//! journalled like any other change. `observe` cannot see whether a message was delivered, so
//! every POST is journalled as dispatched (`step_dispatched`, fsynced) right before it leaves.
//! After a crash, a step with an intent but no dispatch record never sent anything and sends
//! now. A step dispatched with no outcome may or may not have been delivered:
//!
//! * A PagerDuty **trigger** is at most once: it is not sent again (a second page at 3 a.m. is
//!   worse than a page whose acknowledgement was lost — and the crash that lost it is itself
//!   visible to whoever resumes). The step is recorded as delivered-unconfirmed, with a warning
//!   naming the `dedup_key` so the operator can look the incident up.
//! * Resolve and acknowledge, Slack and webhooks are at least once: sent again. PagerDuty folds a
//!   repeated resolve into the same incident by its `dedup_key` (derived from run id and step,
//!   so the same across retries and resumes); a repeated chat message is noise, a lost one is a
//!   team left guessing.
//!
//! Delivery: each POST has a timeout (`with.timeout`, default 10s). A 429 or 5xx answer and a
//! transport failure are retryable (the engine retries them with the step's backoff); any other
//! non-2xx answer (400, 401, 404...) is final: sending the same request again will not fix it.
//! A redirect is never followed (it would carry the body, headers and signature wherever it
//! points) and is final too, naming only the scheme and host of its `Location`. URLs are https,
//! or http to a loopback host ([`FieldKind::NotificationUrl`]: checked at validation when
//! literal, when bound once rendered).
//!
//! A failed notification fails its step, and a failed step aborts the run by default. A
//! notification must not decide whether a recovery succeeded, so the idiom is:
//!
//! ```yaml
//! - id: notify
//!   action: notify.slack
//!   needs: [verify-secondary]
//!   with: { webhook: "${{ secrets.SLACK_WEBHOOK_URL }}", text: "...", status: succeeded }
//!   on_failure: continue   # a lost message does not fail the failover
//!   recovery: false        # nor does its delivery time count toward the RTO
//! ```
//!
//! Leave `on_failure` at its default only when the page *is* the point (an escalation that
//! must reach a human before anything else happens).

use std::{collections::BTreeMap, time::Duration};

use hmac::{KeyInit, Mac};
use serde_json::{json, Value as Json};

use super::{
  human, ActionDef, ActionError, ActionResult, Args, Behaviour, Ctx, Effect, Observation, Observed,
  Outcome,
};
use crate::{
  cloud::{HttpRequest, Redirects, DEFAULT_MAX_BODY},
  runbook::{format_duration, url::shown, ActionSpec, FieldKind, FieldSpec},
};

/// Default timeout of one POST.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `scheme://host` of a URL: webhook paths carry secrets, so only the host is ever shown.
pub fn url_host(url: &str) -> String {
  let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
  let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
  let host = host.rsplit('@').next().unwrap_or(host);
  format!("{scheme}://{host}")
}

const TIMEOUT_FIELD: FieldSpec = FieldSpec::optional(
  "timeout",
  FieldKind::Duration,
  "Timeout of one POST (default 10s); retries follow the step's retry policy",
);

/// POST `body` and classify the answer: 2xx is delivered, 429/5xx retryable, anything else
/// final.
async fn post(
  ctx: &Ctx<'_>,
  args: &Args,
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
    timeout: args.opt_duration("timeout").unwrap_or(TIMEOUT),
    // A redirect would take the body, the headers and the signature to wherever it points.
    redirects: Redirects::None,
    max_body: DEFAULT_MAX_BODY,
  };
  let host = url_host(url);
  ctx.dispatching(&format!("POST to {host}"))?;
  let response = ctx.cloud.http.send(&request).await?;
  let redirect = response
    .location
    .as_deref()
    .and_then(|location| url::Url::parse(location).ok());
  match response.status {
    200..=299 => Ok(response.status),
    status @ 300..=399 if redirect.is_some() => Err(ActionError::failed(format!(
      "POST {host} answered {status}, a redirect to {} (redirects are not followed)",
      redirect.as_ref().map(shown).unwrap_or_default()
    ))),
    429 | 500..=599 => Err(ActionError::retryable(format!(
      "POST {host} answered {}",
      response.status
    ))),
    status => Err(ActionError::failed(format!(
      "POST {host} answered {status} (not retried)"
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
    doc: "Post a message to a Slack incoming webhook (Block Kit: status, runbook, region, RTO \
          achieved vs target, report).",
    fields: &[
      FieldSpec::required(
        "webhook",
        FieldKind::NotificationUrl,
        "Incoming webhook URL (use ${{ secrets.X }}); https, or http to a loopback host",
      ),
      FieldSpec::required("text", FieldKind::String, "Message text (mrkdwn)"),
      FieldSpec::optional(
        "status",
        FieldKind::String,
        "Headline status: succeeded, failed, breached (shown with an icon) or any text",
      ),
      FieldSpec::optional(
        "runbook",
        FieldKind::String,
        "Runbook shown (default: this run's runbook)",
      ),
      FieldSpec::optional("region", FieldKind::String, "Region shown"),
      FieldSpec::optional(
        "rto",
        FieldKind::String,
        "RTO shown (default: the RTO clock at this step against the runbook's target)",
      ),
      FieldSpec::optional(
        "report",
        FieldKind::String,
        "Report URL or path (default: the `drctl report RUN_ID` command)",
      ),
      TIMEOUT_FIELD,
    ],
    calls: &[],
    outputs: &[],
  },
  behaviour: Behaviour::Effect(&Slack),
};

struct Slack;

/// The headline of a status: an icon for the verdicts drctl knows, the author's text otherwise.
fn headline(status: &str) -> String {
  let icon = match status.to_ascii_lowercase().as_str() {
    "succeeded" | "success" | "ok" | "met" | "resolved" => "\u{2705}",
    "failed" | "failure" | "error" => "\u{274c}",
    "breached" | "warning" => "\u{26a0}\u{fe0f}",
    "interrupted" | "running" | "started" => "\u{23f3}",
    _ => return status.to_string(),
  };
  format!("{icon} {status}")
}

/// "4m10s of 15m target" from the RTO clock, or the author's text.
fn rto_text(ctx: &Ctx<'_>, args: &Args) -> String {
  match (args.opt_str("rto"), ctx.run.rto) {
    (Some(text), _) => text.to_string(),
    (None, Some(target)) => format!(
      "{} of {} target",
      human(ctx.run.elapsed),
      format_duration(target)
    ),
    (None, None) => format!("{} (no target)", human(ctx.run.elapsed)),
  }
}

/// The webhook body: `text` (the notification fallback) and Block Kit blocks.
fn slack_payload(ctx: &Ctx<'_>, args: &Args) -> ActionResult<Json> {
  let text = args.str("text")?;
  let runbook = args.opt_str("runbook").unwrap_or(ctx.run.runbook);
  let title = match args.opt_str("status") {
    Some(status) => format!("{} \u{2014} {runbook}", headline(status)),
    None => runbook.to_string(),
  };
  let report = match args.opt_str("report") {
    Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
      format!("<{url}|Open the report>")
    }
    Some(path) => format!("`{path}`"),
    None => format!("`drctl report {}`", ctx.run_id),
  };
  let mut fields = vec![json!({ "type": "mrkdwn", "text": format!("*Runbook*\n{runbook}") })];
  if let Some(region) = args.opt_str("region") {
    fields.push(json!({ "type": "mrkdwn", "text": format!("*Region*\n{region}") }));
  }
  fields.push(json!({ "type": "mrkdwn", "text": format!("*RTO*\n{}", rto_text(ctx, args)) }));
  fields.push(json!({ "type": "mrkdwn", "text": format!("*Report*\n{report}") }));
  Ok(json!({
    "text": text,
    "blocks": [
      { "type": "header", "text": { "type": "plain_text", "text": title, "emoji": true } },
      { "type": "section", "text": { "type": "mrkdwn", "text": text } },
      { "type": "section", "fields": fields },
      { "type": "context", "elements": [
        { "type": "mrkdwn", "text": format!("drctl run `{}` \u{b7} step `{}`", ctx.run_id, ctx.step_id) },
      ] },
    ],
  }))
}

#[async_trait::async_trait]
impl Effect for Slack {
  async fn observe(&self, _ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    Ok(observe_send(args.str("webhook")?, "a Slack message"))
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let body = slack_payload(ctx, args)?;
    post(
      ctx,
      args,
      args.str("webhook")?,
      BTreeMap::new(),
      body.to_string(),
    )
    .await?;
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
          derived from the run id and step, so retries and resumes never page twice; a resolve \
          step passes the trigger's key (`${{ steps.ID.outputs.dedup_key }}`). A trigger is sent \
          at most once: one dispatched before a crash is not sent again on resume (output \
          `delivery: unconfirmed` instead of `confirmed`).",
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
      FieldSpec::optional("component", FieldKind::String, "Component (trigger only)"),
      FieldSpec::optional("group", FieldKind::String, "Logical group (trigger only)"),
      FieldSpec::optional("class", FieldKind::String, "Event class (trigger only)"),
      FieldSpec::optional(
        "custom_details",
        FieldKind::Any,
        "Free-form details (default: runbook, run id and step)",
      ),
      FieldSpec::optional(
        "url",
        FieldKind::NotificationUrl,
        "Events API URL (default https://events.pagerduty.com/v2/enqueue); https, or http to a \
         loopback host",
      ),
      TIMEOUT_FIELD,
    ],
    calls: &[],
    outputs: &["dedup_key", "delivery"],
  },
  behaviour: Behaviour::Effect(&PagerDuty),
};

struct PagerDuty;

const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Stable for a (run, step): the same on every attempt and after a resume, so PagerDuty folds a
/// repeated trigger into the open incident instead of paging again.
fn dedup_key(ctx: &Ctx<'_>, args: &Args) -> String {
  args
    .opt_str("dedup_key")
    .map(str::to_string)
    .unwrap_or_else(|| format!("drctl/{}/{}", ctx.run_id, ctx.step_id))
}

/// The Events API v2 body. `payload` only on a trigger (resolve and acknowledge take the key).
fn pagerduty_payload(ctx: &Ctx<'_>, args: &Args) -> ActionResult<Json> {
  let action = args.opt_str("event_action").unwrap_or("trigger");
  let mut body = json!({
    "routing_key": args.str("routing_key")?,
    "event_action": action,
    "dedup_key": dedup_key(ctx, args),
  });
  if action == "trigger" {
    let details = args.json("custom_details").cloned().unwrap_or_else(
      || json!({ "runbook": ctx.run.runbook, "run_id": ctx.run_id, "step": ctx.step_id }),
    );
    let mut payload = json!({
      "summary": args.str("summary")?,
      "source": args.opt_str("source").unwrap_or("drctl"),
      "severity": args.opt_str("severity").unwrap_or("error"),
      "custom_details": details,
    });
    for key in ["component", "group", "class"] {
      if let Some(value) = args.opt_str(key) {
        payload[key] = json!(value);
      }
    }
    body["payload"] = payload;
    body["client"] = json!("drctl");
  }
  Ok(body)
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
    let body = pagerduty_payload(ctx, args)?;
    let url = args.opt_str("url").unwrap_or(PAGERDUTY_URL);
    post(ctx, args, url, BTreeMap::new(), body.to_string()).await?;
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
      .output("dedup_key", key)
      .output("delivery", "confirmed"),
    )
  }

  /// A trigger pages a human: at most once. Resolve and acknowledge are idempotent on
  /// PagerDuty's side (same `dedup_key`), and a lost resolve leaves an incident open: resent.
  fn unconfirmed(&self, ctx: &Ctx<'_>, args: &Args) -> Option<Outcome> {
    if args.opt_str("event_action").unwrap_or("trigger") != "trigger" {
      return None;
    }
    let key = dedup_key(ctx, args);
    Some(
      Outcome::new(format!(
        "warning: PagerDuty trigger dispatched before the interruption, delivery unconfirmed; \
         not sent again (dedup_key {key}: check the incident in PagerDuty)"
      ))
      .output("dedup_key", key)
      .output("delivery", "unconfirmed"),
    )
  }
}

// --- notify.webhook ---------------------------------------------------------------------------

pub const WEBHOOK: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "notify.webhook",
    mutating: true,
    doc: "POST a JSON body to a URL, with custom headers and an optional HMAC-SHA256 signature \
          of `TIMESTAMP.BODY` (the Unix time in X-Drctl-Timestamp, then the exact body bytes), \
          so that a receiver can refuse stale or replayed requests.",
    fields: &[
      FieldSpec::required(
        "url",
        FieldKind::NotificationUrl,
        "URL to POST to: https, or http to a loopback host",
      ),
      FieldSpec::optional(
        "body",
        FieldKind::Any,
        "JSON body (default: run id and step)",
      ),
      FieldSpec::optional("headers", FieldKind::StringMap, "Extra headers"),
      FieldSpec::optional(
        "hmac_secret",
        FieldKind::String,
        "Sign the body with HMAC-SHA256 under this key (use ${{ secrets.X }})",
      ),
      FieldSpec::optional(
        "signature_header",
        FieldKind::String,
        "Header carrying `sha256=<hex>` (default X-Drctl-Signature); the timestamp is always in \
         X-Drctl-Timestamp",
      ),
      TIMEOUT_FIELD,
    ],
    calls: &[],
    outputs: &["status"],
  },
  behaviour: Behaviour::Effect(&Webhook),
};

struct Webhook;

const SIGNATURE_HEADER: &str = "X-Drctl-Signature";
/// The header carrying the Unix time (seconds) the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Drctl-Timestamp";

/// `sha256=<lower-case hex of HMAC-SHA256(secret, message)>`.
pub fn signature(secret: &str, message: &[u8]) -> String {
  // HMAC takes keys of any length (long ones are hashed first), so this cannot fail.
  let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
    .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
  mac.update(message);
  let digest = mac.finalize().into_bytes();
  let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
  format!("sha256={hex}")
}

/// What a webhook signature covers: `TIMESTAMP.BODY`, so that a captured request cannot be
/// replayed later under a fresh timestamp.
pub fn signed_message(timestamp: i64, body: &str) -> String {
  format!("{timestamp}.{body}")
}

#[async_trait::async_trait]
impl Effect for Webhook {
  async fn observe(&self, _ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    Ok(observe_send(args.str("url")?, "a webhook"))
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let body = args
      .json("body")
      .cloned()
      .unwrap_or_else(|| json!({ "run_id": ctx.run_id, "step": ctx.step_id }))
      .to_string();
    let mut headers = args.string_map("headers");
    if let Some(secret) = args.opt_str("hmac_secret") {
      let name = args
        .opt_str("signature_header")
        .unwrap_or(SIGNATURE_HEADER)
        .to_string();
      // Wall-clock time, whatever the backend's clock: the receiver compares it with its own.
      let timestamp = chrono::Utc::now().timestamp();
      let message = signed_message(timestamp, &body);
      headers.insert(TIMESTAMP_HEADER.into(), timestamp.to_string());
      headers.insert(name, signature(secret, message.as_bytes()));
    }
    let status = post(ctx, args, args.str("url")?, headers, body).await?;
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
  use super::*;

  #[test]
  fn signature_matches_rfc_4231_case_2() {
    // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
    assert_eq!(
      signature("Jefe", b"what do ya want for nothing?"),
      "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
  }

  #[test]
  fn a_signature_covers_the_timestamp_then_the_body() {
    assert_eq!(signed_message(1_700_000_000, "{}"), "1700000000.{}");
    assert_ne!(
      signature("k", signed_message(1, "{}").as_bytes()),
      signature("k", signed_message(2, "{}").as_bytes())
    );
  }

  #[test]
  fn headlines_mark_known_verdicts() {
    assert_eq!(headline("succeeded"), "\u{2705} succeeded");
    assert_eq!(headline("breached"), "\u{26a0}\u{fe0f} breached");
    assert_eq!(headline("failed"), "\u{274c} failed");
    assert_eq!(headline("DNS flipped"), "DNS flipped");
  }

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
