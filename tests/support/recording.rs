//! moto's request recorder, read back as AWS operation names: what a run really called through
//! the SDK, for counting mutating calls (a duplicate effect, a guard that let one through).

use super::moto::Moto;

/// Start recording every request the server gets (and forget what was recorded before).
pub fn start(moto: &Moto) {
  let _ = moto.request("POST", "/moto-api/recorder/stop-recording", "");
  // moto 5.2 has no clear-recording route (it answers 404 and keeps the log): an empty upload
  // replaces the log.
  let (status, body) = moto.request("POST", "/moto-api/recorder/upload-recording", "");
  assert_eq!(status, 200, "empty the moto recording: {body}");
  let (status, body) = moto.request("POST", "/moto-api/recorder/start-recording", "");
  assert_eq!(status, 200, "start the moto recorder: {body}");
}

/// The operations recorded so far, in order.
pub fn operations(moto: &Moto) -> Vec<String> {
  let (status, recording) = moto.request("GET", "/moto-api/recorder/download-recording", "");
  assert_eq!(status, 200, "download the moto recording: {recording}");
  recording
    .lines()
    .filter(|line| !line.trim().is_empty())
    .filter_map(|line| serde_json::from_str(line).ok())
    .map(|entry| operation(&entry))
    .collect()
}

/// The operation a recorded request called: `X-Amz-Target` (JSON protocols), `Action=` (query
/// protocols), else the REST method and path (Route 53, S3).
fn operation(entry: &serde_json::Value) -> String {
  let headers = entry["headers"].as_object().cloned().unwrap_or_default();
  let header = |name: &str| {
    headers
      .iter()
      .find(|(key, _)| key.eq_ignore_ascii_case(name))
      .and_then(|(_, value)| value.as_str())
      .map(str::to_owned)
  };
  if let Some(target) = header("X-Amz-Target") {
    return target.rsplit('.').next().unwrap_or_default().to_owned();
  }
  let url = entry["url"].as_str().unwrap_or_default();
  let body = match (entry["body"].as_str(), entry["body_encoded"].as_bool()) {
    (Some(body), Some(true)) => String::from_utf8(base64_decode(body)).unwrap_or_default(),
    (Some(body), _) => body.to_owned(),
    _ => String::new(),
  };
  let query = url.split_once('?').map(|(_, query)| query).unwrap_or("");
  for pair in query.split('&').chain(body.split('&')) {
    if let Some(action) = pair.strip_prefix("Action=") {
      return action.to_owned();
    }
  }
  let method = entry["method"].as_str().unwrap_or_default();
  let path = url
    .split_once("://")
    .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
    .unwrap_or("/");
  let path = path.split('?').next().unwrap_or(path);
  if let Some(route53) = path.strip_prefix("/2013-04-01/") {
    return match (method, route53) {
      ("POST", path) if path.ends_with("/rrset") || path.ends_with("/rrset/") => {
        "ChangeResourceRecordSets".into()
      }
      ("POST", path) if path.starts_with("healthcheck/") => "UpdateHealthCheck".into(),
      ("GET", path) if path.starts_with("healthcheck/") && path.ends_with("/status") => {
        "GetHealthCheckStatus".into()
      }
      ("GET", path) if path.starts_with("healthcheck/") => "GetHealthCheck".into(),
      ("GET", path) if path.contains("/rrset") => "ListResourceRecordSets".into(),
      ("GET", path) if path.starts_with("change/") => "GetChange".into(),
      (method, path) => format!("Route53 {method} {path}"),
    };
  }
  format!("{method} {path}")
}

fn base64_decode(text: &str) -> Vec<u8> {
  const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let mut out = Vec::new();
  let mut buffer = 0u32;
  let mut bits = 0;
  for byte in text.bytes() {
    let Some(value) = ALPHABET.iter().position(|&c| c == byte) else {
      continue;
    };
    buffer = (buffer << 6) | value as u32;
    bits += 6;
    if bits >= 8 {
      bits -= 8;
      out.push((buffer >> bits) as u8);
    }
  }
  out
}
