//! Which AWS operation a request on the wire is, read from the request itself: the one decoder
//! the tests' moto recorder checks, the reliability suite's fault proxy and the benchmarks use.
//! Not part of drctl's interface.
//!
//! * JSON protocols (ECS, CloudWatch's JSON flavour): `X-Amz-Target: Service_Version.Operation`.
//! * Query protocols (RDS, STS, CloudWatch): `Action=Operation` in the query or the form body.
//! * REST protocols: Route 53 by its `/2013-04-01/` paths; any other REST request is taken as
//!   S3's (the only other REST service drctl calls), by method.
//!
//! Operations in the table ([`super::ops`]) are named as the table names them; anything else is
//! described as `Route53 METHOD PATH` or `S3 METHOD PATH`, or by the name the request carried.

use super::ops::{self, Op};

/// What a request was: an operation of the table, or a description of one that is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireOp {
  Known(&'static Op),
  /// Named by its target or action but not in the table (moto's own, the sandbox's seeding).
  Named(String),
  /// A REST request this decoder does not know: `Route53 GET /2013-04-01/...`, `S3 POST /...`.
  Unrecognised(String),
}

impl WireOp {
  /// The operation's name, or the description.
  pub fn name(&self) -> &str {
    match self {
      WireOp::Known(op) => op.name,
      WireOp::Named(name) | WireOp::Unrecognised(name) => name,
    }
  }

  pub fn op(&self) -> Option<&'static Op> {
    match self {
      WireOp::Known(op) => Some(op),
      _ => None,
    }
  }
}

/// The operation of a request: `method`, `target` (path and query), a header lookup and the
/// body (as text; a binary body matters only for S3, which is decided by method).
pub fn operation(
  method: &str,
  target: &str,
  header: impl Fn(&str) -> Option<String>,
  body: &str,
) -> WireOp {
  if let Some(target) = header("X-Amz-Target") {
    let name = target.rsplit('.').next().unwrap_or_default();
    return named(name);
  }
  let (path, query) = target.split_once('?').unwrap_or((target, ""));
  for pair in query.split('&').chain(body.split('&')) {
    if let Some(action) = pair.strip_prefix("Action=") {
      return named(action);
    }
  }
  if let Some(route53) = path.strip_prefix("/2013-04-01/") {
    return route53_operation(method, route53)
      .map(WireOp::Known)
      .unwrap_or_else(|| WireOp::Unrecognised(format!("Route53 {method} {path}")));
  }
  let op = match method {
    "GET" if query.split('&').any(|pair| pair == "list-type=2") => &ops::s3::LIST_OBJECTS_V2,
    "GET" => &ops::s3::GET_OBJECT,
    "HEAD" => &ops::s3::HEAD_OBJECT,
    "PUT" => &ops::s3::PUT_OBJECT,
    "DELETE" => &ops::s3::DELETE_OBJECT,
    other => return WireOp::Unrecognised(format!("S3 {other} {path}")),
  };
  WireOp::Known(op)
}

/// One entry of moto's request recorder (`/moto-api/recorder/download-recording`, one JSON
/// object a line: `method`, `url`, `headers`, `body`, `body_encoded`).
pub fn recorded_operation(entry: &serde_json::Value) -> WireOp {
  let headers = entry["headers"].as_object().cloned().unwrap_or_default();
  let header = |name: &str| {
    headers
      .iter()
      .find(|(key, _)| key.eq_ignore_ascii_case(name))
      .and_then(|(_, value)| value.as_str())
      .map(str::to_owned)
  };
  let url = entry["url"].as_str().unwrap_or_default();
  let body = match (entry["body"].as_str(), entry["body_encoded"].as_bool()) {
    (Some(body), Some(true)) => String::from_utf8(base64_decode(body)).unwrap_or_default(),
    (Some(body), _) => body.to_owned(),
    _ => String::new(),
  };
  let target = url
    .split_once("://")
    .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
    .unwrap_or("/");
  let method = entry["method"].as_str().unwrap_or_default();
  operation(method, target, header, &body)
}

fn named(name: &str) -> WireOp {
  ops::named(name).map_or_else(|| WireOp::Named(name.to_owned()), WireOp::Known)
}

/// Route 53's REST operations by method and path (after `/2013-04-01/`).
fn route53_operation(method: &str, path: &str) -> Option<&'static Op> {
  let path = path.trim_end_matches('/');
  Some(match method {
    "POST" if path.ends_with("/rrset") => &ops::route53::CHANGE_RESOURCE_RECORD_SETS,
    "POST" if path.starts_with("healthcheck/") => &ops::route53::UPDATE_HEALTH_CHECK,
    "GET" if path.starts_with("healthcheck/") && path.ends_with("/status") => {
      &ops::route53::GET_HEALTH_CHECK_STATUS
    }
    "GET" if path.starts_with("healthcheck/") => &ops::route53::GET_HEALTH_CHECK,
    "GET" if path.contains("/rrset") => &ops::route53::LIST_RESOURCE_RECORD_SETS,
    "GET" if path.starts_with("change/") => &ops::route53::GET_CHANGE,
    _ => return None,
  })
}

/// Standard base64 (moto's encoding of a binary body); anything else in the text is skipped.
fn base64_decode(text: &str) -> Vec<u8> {
  let mut out = Vec::new();
  let (mut buffer, mut bits) = (0u32, 0);
  for byte in text.bytes() {
    let value = match byte {
      b'A'..=b'Z' => byte - b'A',
      b'a'..=b'z' => byte - b'a' + 26,
      b'0'..=b'9' => byte - b'0' + 52,
      b'+' => 62,
      b'/' => 63,
      _ => continue,
    };
    buffer = (buffer << 6) | u32::from(value);
    bits += 6;
    if bits >= 8 {
      bits -= 8;
      out.push((buffer >> bits) as u8);
    }
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  fn no_header(_: &str) -> Option<String> {
    None
  }

  #[test]
  fn each_protocol_names_its_operation() {
    let ecs = |name: &str| {
      (name == "X-Amz-Target")
        .then(|| "AmazonEC2ContainerServiceV20141113.UpdateService".to_owned())
    };
    assert_eq!(
      operation("POST", "/", ecs, "{}"),
      WireOp::Known(&ops::ecs::UPDATE_SERVICE)
    );
    assert_eq!(
      operation(
        "POST",
        "/",
        no_header,
        "Action=PromoteReadReplica&Version=2014-10-31"
      ),
      WireOp::Known(&ops::rds::PROMOTE_READ_REPLICA)
    );
    assert_eq!(
      operation("POST", "/", no_header, "Action=DescribeDBClusters"),
      WireOp::Named("DescribeDBClusters".into())
    );
    assert_eq!(
      operation("POST", "/2013-04-01/hostedzone/Z1/rrset/", no_header, ""),
      WireOp::Known(&ops::route53::CHANGE_RESOURCE_RECORD_SETS)
    );
    assert_eq!(
      operation("GET", "/2013-04-01/healthcheck/h1/status", no_header, ""),
      WireOp::Known(&ops::route53::GET_HEALTH_CHECK_STATUS)
    );
    assert_eq!(
      operation("GET", "/bucket?list-type=2&prefix=a", no_header, ""),
      WireOp::Known(&ops::s3::LIST_OBJECTS_V2)
    );
    assert_eq!(
      operation("PATCH", "/bucket/key", no_header, "").name(),
      "S3 PATCH /bucket/key"
    );
  }

  #[test]
  fn a_recorded_entry_is_decoded_with_its_base64_body() {
    let entry = serde_json::json!({
      "method": "POST",
      "url": "http://127.0.0.1:5000/",
      "headers": {},
      // "Action=DeleteDBInstance"
      "body": "QWN0aW9uPURlbGV0ZURCSW5zdGFuY2U=",
      "body_encoded": true,
    });
    assert_eq!(
      recorded_operation(&entry),
      WireOp::Known(&ops::rds::DELETE_DB_INSTANCE)
    );
  }
}
