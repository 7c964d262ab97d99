//! What a notification URL may be: `https://`, or `http://` to this machine only (a capture
//! server in a test, a local relay). A notification carries secrets — a webhook path, a routing
//! key, an HMAC signature — that plain HTTP would show to every network hop.

/// What the rule requires, as diagnostics say it.
pub const NOTIFICATION_URL: &str = "an https:// URL (http:// only to a loopback host)";

/// `Ok` when `text` is an https URL, or an http one whose host is loopback (`127.0.0.0/8`,
/// `[::1]`, `localhost`). The error is what the URL was, shown as `scheme://host` only: the
/// rest of a webhook URL is a secret.
pub fn check_notification_url(text: &str) -> Result<(), String> {
  let Ok(url) = url::Url::parse(text.trim()) else {
    return Err("not a URL".into());
  };
  let shown = shown(&url);
  match url.scheme() {
    "https" if url.host().is_some() => Ok(()),
    "http" if url.host().is_some_and(|host| is_loopback(&host)) => Ok(()),
    _ => Err(shown),
  }
}

/// Whether a URL host is this machine.
pub fn is_loopback(host: &url::Host<&str>) -> bool {
  match host {
    url::Host::Ipv4(ip) => ip.is_loopback(),
    url::Host::Ipv6(ip) => ip.is_loopback(),
    url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
  }
}

/// `scheme://host[:port]`, with `/…` when the URL had more: what may be shown of a URL whose
/// path or query may be a secret.
pub fn shown(url: &url::Url) -> String {
  let host = match (url.host_str(), url.port()) {
    (Some(host), Some(port)) => format!("{host}:{port}"),
    (Some(host), None) => host.to_string(),
    (None, _) => String::new(),
  };
  let more = url.path() != "/" || url.query().is_some() || url.fragment().is_some();
  format!("{}://{host}{}", url.scheme(), if more { "/…" } else { "" })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn https_anywhere_and_http_only_to_loopback() {
    for ok in [
      "https://hooks.slack.com/services/T0/B0/x",
      "http://127.0.0.1:8080/hook",
      "http://127.0.0.2/x",
      "http://[::1]:9000/",
      "http://localhost/x",
    ] {
      assert_eq!(check_notification_url(ok), Ok(()), "{ok}");
    }
    assert_eq!(
      check_notification_url("http://hooks.example.com/secret?token=1"),
      Err("http://hooks.example.com/…".into())
    );
    // The host is what the client would connect to, not what the text seems to say.
    assert_eq!(
      check_notification_url("http://127.0.0.1@evil.example.com/"),
      Err("http://evil.example.com".into())
    );
    assert_eq!(
      check_notification_url("http://localhost.evil.example.com/"),
      Err("http://localhost.evil.example.com".into())
    );
    assert_eq!(
      check_notification_url("ftp://127.0.0.1/x"),
      Err("ftp://127.0.0.1/…".into())
    );
    assert_eq!(
      check_notification_url("hooks.slack.com/x"),
      Err("not a URL".into())
    );
  }
}
