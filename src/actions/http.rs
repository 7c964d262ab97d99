//! HTTP probes.

use std::time::Duration;

use super::{
  human, poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Outcome,
  Poll,
};
use crate::{
  cloud::{HttpRequest, HttpResponse},
  runbook::{ActionSpec, FieldKind, FieldSpec},
};

pub const CHECK: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "http.check",
    mutating: false,
    doc: "GET a URL and assert its status, body and latency; with `within`, retry until it passes.",
    fields: &[
      FieldSpec::required("url", FieldKind::String, "URL to request"),
      FieldSpec::optional(
        "expect_status",
        FieldKind::Int,
        "Expected status (default 200)",
      ),
      FieldSpec::optional(
        "body_contains",
        FieldKind::String,
        "Text the body must contain",
      ),
      FieldSpec::optional(
        "max_latency",
        FieldKind::Duration,
        "Fail when slower than this",
      ),
      FieldSpec::optional(
        "within",
        FieldKind::Duration,
        "Keep trying for up to this long",
      ),
      FieldSpec::optional(
        "timeout",
        FieldKind::Duration,
        "Per-request timeout (default 10s)",
      ),
      FieldSpec::optional("headers", FieldKind::StringMap, "Request headers"),
    ],
    mutating_operations: &[],
    outputs: &["status", "latency_ms"],
  },
  behaviour: Behaviour::Check(&HttpCheck),
};

struct HttpCheck;

fn judge(args: &Args, response: &HttpResponse) -> Result<(), String> {
  let expect = args.opt_int("expect_status").unwrap_or(200);
  if i64::from(response.status) != expect {
    return Err(format!("status {}, expected {expect}", response.status));
  }
  if let Some(needle) = args.opt_str("body_contains") {
    if !response.body.contains(needle) {
      return Err(format!("body does not contain `{needle}`"));
    }
  }
  if let Some(max) = args.opt_duration("max_latency") {
    if response.latency > max {
      return Err(format!(
        "took {}, more than {}",
        human(response.latency),
        human(max)
      ));
    }
  }
  Ok(())
}

#[async_trait::async_trait]
impl Check for HttpCheck {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let url = args.str("url")?;
    let request = HttpRequest {
      method: "GET".into(),
      url: url.to_string(),
      headers: args.string_map("headers"),
      body: None,
      timeout: args
        .opt_duration("timeout")
        .unwrap_or(Duration::from_secs(10)),
    };
    let within = args.opt_duration("within");
    let start = ctx.cloud.clock.now();
    let response = poll_until(ctx, || async {
      let verdict = match ctx.cloud.http.send(&request).await {
        Ok(response) => judge(args, &response).map(|()| response),
        Err(err) => Err(err.to_string()),
      };
      match verdict {
        Ok(response) => Ok(Poll::Ready(response)),
        Err(why) => match within {
          Some(within) if ctx.cloud.clock.elapsed_since(start) < within => {
            Ok(Poll::Pending(format!("GET {url}: {why}")))
          }
          _ => Err(ActionError::failed(format!("GET {url}: {why}"))),
        },
      }
    })
    .await?;
    Ok(
      Outcome::new(format!(
        "GET {url}: {} in {}",
        response.status,
        human(response.latency)
      ))
      .output("status", response.status)
      .output("latency_ms", response.latency.as_millis()),
    )
  }
}
