//! Simulated HTTP: probes of the world's endpoints (served by an ECS service, or resolved
//! through a Route 53 failover name) and notifications (POSTs to Slack, PagerDuty and declared
//! webhooks), which are recorded in the operation log instead of being sent.
//!
//! One exception: a POST to a loopback host (`127.0.0.1`, `localhost`, `[::1]`, any port) is
//! recorded *and* passed through to the real HTTP client, and the real answer is returned. That
//! is how a test (or an operator trying a runbook out) points a notification at a capture
//! server on the same machine and sees the exact bytes drctl sends, while the rest of the run
//! stays simulated. Nothing off the machine is ever contacted from `--sim`.

use std::{
  collections::{BTreeMap, BTreeSet},
  time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cloud::route53::sim::MAX_DEPTH;

use super::{
  state::WorldState,
  world::{DnsRef, OutageSpec, ServiceRef, WorldSpec},
  Refusal, SimCloud,
};
use crate::cloud::{CloudError, CloudResult, ErrorKind, Http, HttpRequest, HttpResponse};

const SLACK_HOST: &str = "hooks.slack.com";
const PAGERDUTY_HOST: &str = "events.pagerduty.com";

/// Whether a URL's host is this machine: notifications to it are really sent.
fn is_loopback(url: &str) -> bool {
  url::Url::parse(url.trim())
    .ok()
    .and_then(|url| {
      url
        .host()
        .map(|host| crate::runbook::url::is_loopback(&host))
    })
    .unwrap_or(false)
}

/// Header names whose values are credentials whatever the redaction list says.
const SECRET_HEADERS: [&str; 5] = [
  "authorization",
  "proxy-authorization",
  "cookie",
  "x-api-key",
  "x-routing-key",
];

/// `(scheme, host, path)` of an http(s) URL: scheme and host lower-cased, query and fragment
/// dropped, a trailing slash dropped from a non-root path.
pub(crate) fn split_url(url: &str) -> Option<(String, String, String)> {
  let (scheme, rest) = url.trim().split_once("://")?;
  let scheme = scheme.to_ascii_lowercase();
  if scheme != "http" && scheme != "https" {
    return None;
  }
  let rest = rest.split(['?', '#']).next().unwrap_or_default();
  let (host, path) = match rest.find('/') {
    Some(i) => (&rest[..i], &rest[i..]),
    None => (rest, "/"),
  };
  if host.is_empty() {
    return None;
  }
  let path = if path.len() > 1 {
    path.trim_end_matches('/')
  } else {
    path
  };
  let path = if path.is_empty() { "/" } else { path };
  Some((scheme, host.to_ascii_lowercase(), path.to_string()))
}

/// The key an endpoint is looked up by.
pub(crate) fn endpoint_key(url: &str) -> Option<String> {
  split_url(url).map(|(scheme, host, path)| format!("{scheme}://{host}{path}"))
}

#[derive(Debug, Clone)]
enum Target {
  Service(ServiceRef),
  Dns(DnsRef),
}

#[derive(Debug, Clone)]
pub(crate) struct HttpState {
  endpoints: BTreeMap<String, Target>,
  webhooks: BTreeSet<String>,
  pub(super) outages: Vec<OutageSpec>,
}

impl HttpState {
  pub fn new(spec: &WorldSpec) -> HttpState {
    let endpoints = spec
      .endpoints
      .iter()
      .filter_map(|endpoint| {
        let key = endpoint_key(&endpoint.url)?;
        let target = match (&endpoint.service, &endpoint.dns) {
          (Some(service), _) => Target::Service(service.clone()),
          (None, Some(dns)) => Target::Dns(dns.clone()),
          (None, None) => return None,
        };
        Some((key, target))
      })
      .collect();
    HttpState {
      endpoints,
      webhooks: spec
        .webhooks
        .iter()
        .filter_map(|url| endpoint_key(url))
        .collect(),
      // A region that is down answers 503 from its endpoints, as one in outage does.
      outages: spec
        .outages
        .iter()
        .cloned()
        .chain(
          spec
            .faults
            .region_down
            .iter()
            .map(|down| OutageSpec::Region(down.region.clone())),
        )
        .collect(),
    }
  }
}

impl WorldState {
  /// Answer a GET: `(status, body)`, or why the request could not be delivered.
  pub(crate) fn serve(
    &self,
    url: &str,
    now: DateTime<Utc>,
    depth: u32,
  ) -> Result<(u16, String), String> {
    if depth > MAX_DEPTH {
      return Err(format!("resolving {url} loops through Route 53"));
    }
    let (scheme, host, path) =
      split_url(url).ok_or_else(|| format!("`{url}` is not an http(s) URL"))?;
    let key = format!("{scheme}://{host}{path}");
    let target = self
      .http
      .endpoints
      .get(&key)
      .ok_or_else(|| format!("no endpoint {url} in the simulated world"))?;
    match target {
      Target::Service(service) => {
        let running = self.ecs.running(
          &self.model,
          now,
          &service.region,
          &service.cluster,
          &service.service,
        );
        if self.in_outage(&service.region, now) {
          Ok((
            503,
            format!("service unavailable: {} is in outage", service.region),
          ))
        } else if running == 0 {
          Ok((503, "service unavailable: no running tasks".into()))
        } else {
          Ok((200, "ok".into()))
        }
      }
      Target::Dns(dns) => {
        let value = self
          .resolve(&dns.zone, &dns.name, now, depth)
          .ok_or_else(|| format!("{} does not resolve in zone {}", dns.name, dns.zone))?;
        let host = value.trim_end_matches('.');
        self.serve(&format!("{scheme}://{host}{path}"), now, depth + 1)
      }
    }
  }
}

impl SimCloud {
  fn transport(&self, method: &str, message: String) -> CloudError {
    CloudError::new(
      ErrorKind::Transport,
      "http",
      method,
      self.sim.redact(&message),
    )
    .with_request_id(self.sim.request_id())
  }

  /// Faults on HTTP look like what a client sees: a 429 or 500 response, or a timeout.
  // CloudError is the provider boundary's error type, returned unboxed by every provider.
  #[allow(clippy::result_large_err)]
  fn refusal(&self, method: &str, refusal: Refusal) -> CloudResult<HttpResponse> {
    match refusal {
      Refusal::Throttled(latency) => Ok(HttpResponse {
        status: 429,
        body: "Too Many Requests".into(),
        latency,
        truncated: false,
        location: None,
      }),
      Refusal::Failed(latency) => Ok(HttpResponse {
        status: 500,
        body: "Internal Server Error".into(),
        latency,
        truncated: false,
        location: None,
      }),
      Refusal::TimedOut(after) => Err(self.transport(
        method,
        format!("request timed out after {}ms", after.as_millis()),
      )),
      Refusal::Unreachable | Refusal::RegionDown(_) => {
        Err(self.transport(method, "could not connect".into()))
      }
    }
  }
}

fn timeout_of(request: &HttpRequest) -> Option<Duration> {
  (!request.timeout.is_zero()).then_some(request.timeout)
}

#[async_trait::async_trait]
impl Http for SimCloud {
  async fn send(&self, request: &HttpRequest) -> CloudResult<HttpResponse> {
    let method = request.method.to_ascii_uppercase();
    let Some((scheme, host, path)) = split_url(&request.url) else {
      return Err(self.transport(&method, format!("`{}` is not an http(s) URL", request.url)));
    };
    match method.as_str() {
      "GET" | "HEAD" => {
        let latency = match self
          .sim
          .gate("http", &method, None, timeout_of(request))
          .await
        {
          Ok(latency) => latency,
          Err(refusal) => return self.refusal(&method, refusal),
        };
        let served = self
          .sim
          .peek(|state, now| state.serve(&request.url, now, 0));
        match served {
          Ok((status, body)) => Ok(HttpResponse {
            status,
            body: if method == "HEAD" {
              String::new()
            } else {
              body
            },
            latency,
            truncated: false,
            location: None,
          }),
          Err(message) => Err(self.transport(&method, message)),
        }
      }
      "POST" => {
        let key = format!("{scheme}://{host}{path}");
        let loopback = is_loopback(&request.url);
        let allowed = loopback
          || host == SLACK_HOST
          || host == PAGERDUTY_HOST
          || self.sim.peek(|state, _| state.http.webhooks.contains(&key));
        if !allowed {
          return Err(self.transport(
            &method,
            format!(
              "no endpoint for POST {} in the simulated world (declare it under `webhooks:`)",
              request.url
            ),
          ));
        }
        let latency = match self
          .sim
          .gate("http", &method, None, timeout_of(request))
          .await
        {
          Ok(latency) => latency,
          Err(refusal) => return self.refusal(&method, refusal),
        };
        let redacted_url = self.sim.redact(&request.url);
        let target = redacted_url
          .split(['?', '#'])
          .next()
          .unwrap_or_default()
          .to_string();
        let headers: BTreeMap<String, String> = request
          .headers
          .iter()
          .map(|(name, value)| {
            let secret = SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str());
            (
              name.clone(),
              if secret { "***".into() } else { value.clone() },
            )
          })
          .collect();
        let detail = json!({ "headers": headers, "body": request.body });
        let op = self.sim.commit("http", "POST", None, &target, detail)?;
        if loopback {
          let real = crate::cloud::http::ReqwestHttp::shared()?;
          return real.send(request).await;
        }
        if host == PAGERDUTY_HOST {
          let dedup_key = request
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<serde_json::Value>(body).ok())
            .and_then(|body| body.get("dedup_key")?.as_str().map(str::to_string))
            .unwrap_or_else(|| format!("sim-{}", op.seq));
          let body = json!({
            "status": "success",
            "message": "Event processed",
            "dedup_key": dedup_key,
          });
          Ok(HttpResponse {
            status: 202,
            body: body.to_string(),
            latency,
            truncated: false,
            location: None,
          })
        } else {
          Ok(HttpResponse {
            status: 200,
            body: "ok".into(),
            latency,
            truncated: false,
            location: None,
          })
        }
      }
      other => Err(self.transport(
        other,
        format!(
          "the simulated world does not answer {other} {}",
          request.url
        ),
      )),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn urls_split_into_lookup_keys() {
    assert_eq!(
      endpoint_key("HTTPS://API.example.com/health/?x=1").as_deref(),
      Some("https://api.example.com/health")
    );
    assert_eq!(
      endpoint_key("http://h:8080").as_deref(),
      Some("http://h:8080/")
    );
    assert_eq!(endpoint_key("ftp://h/x"), None);
    assert_eq!(endpoint_key("https:///x"), None);
    assert_eq!(endpoint_key("nonsense"), None);
  }

  #[test]
  fn only_loopback_hosts_are_passed_through() {
    assert!(is_loopback("http://127.0.0.1:8080/x"));
    assert!(is_loopback("http://localhost/"));
    assert!(is_loopback("http://[::1]:9000"));
    assert!(!is_loopback("https://hooks.slack.com/services/x"));
    assert!(!is_loopback("http://10.0.0.1:80"));
    assert!(!is_loopback("http://127.0.0.1@evil.example.com/"));
  }
}
