//! HTTP probes.

use std::time::Duration;

use super::{
  human, poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Outcome,
  Poll,
};
use crate::{
  cloud::{http::MAX_REDIRECTS, HttpRequest, HttpResponse, Redirects, DEFAULT_MAX_BODY},
  runbook::{format_byte_size, url::shown, ActionSpec, FieldKind, FieldSpec},
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
      FieldSpec::optional(
        "follow_redirects",
        FieldKind::Bool,
        "Follow redirects within the same origin (scheme, host, port), up to 10 (default \
         false: a 3xx is the answer); never to another origin",
      ),
      FieldSpec::optional(
        "max_body",
        FieldKind::ByteSize,
        "Read at most this much of the body (default 1MiB); the rest is not read",
      ),
    ],
    calls: &[],
    outputs: &["status", "latency_ms"],
  },
  behaviour: Behaviour::Check(&HttpCheck),
};

struct HttpCheck;

fn judge(args: &Args, request: &HttpRequest, response: &HttpResponse) -> Result<(), String> {
  let expect = args.opt_int("expect_status").unwrap_or(200);
  if i64::from(response.status) != expect {
    return Err(format!(
      "status {}, expected {expect}{}",
      response.status,
      unfollowed(request, response)
    ));
  }
  if let Some(needle) = args.opt_str("body_contains") {
    if !response.body.contains(needle) {
      return Err(format!(
        "body does not contain `{needle}`{}",
        cut(request, response)
      ));
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

/// Why a redirect the response carries was not followed (empty when it carries none).
fn unfollowed(request: &HttpRequest, response: &HttpResponse) -> String {
  let Some(location) = response.location.as_deref() else {
    return String::new();
  };
  let Ok(to) = url::Url::parse(location) else {
    return String::new();
  };
  let why = match request.redirects {
    Redirects::None => String::new(),
    Redirects::SameOrigin => match url::Url::parse(&request.url) {
      Ok(from) if from.origin() == to.origin() => format!(": more than {MAX_REDIRECTS} in a row"),
      _ => ": another origin".into(),
    },
  };
  format!(" (redirect to {} not followed{why})", shown(&to))
}

/// ` (body cut at 1MiB)` when the body was longer than the cap.
fn cut(request: &HttpRequest, response: &HttpResponse) -> String {
  if response.truncated {
    format!(" (body cut at {})", format_byte_size(request.max_body))
  } else {
    String::new()
  }
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
      redirects: if args.opt_bool("follow_redirects").unwrap_or(false) {
        Redirects::SameOrigin
      } else {
        Redirects::None
      },
      max_body: args.opt_u64("max_body").unwrap_or(DEFAULT_MAX_BODY),
    };
    let within = args.opt_duration("within");
    let start = ctx.cloud.clock.now();
    let response = poll_until(ctx, || async {
      let verdict = match ctx.cloud.http.send(&request).await {
        Ok(response) => judge(args, &request, &response).map(|()| response),
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
        "GET {url}: {} in {}{}",
        response.status,
        human(response.latency),
        cut(&request, &response)
      ))
      .output("status", response.status)
      .output("latency_ms", response.latency.as_millis()),
    )
  }
}
