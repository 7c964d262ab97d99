//! Who may reach `drctl serve`, and what every response carries.
//!
//! * **Bind.** A loopback `--listen` (127.0.0.0/8, `::1`) needs nothing; any other address is
//!   refused at start (exit 2) unless `DRCTL_SERVE_TOKEN` is set, and then every request but
//!   `/healthz` must carry `Authorization: Bearer TOKEN`.
//! * **State-changing requests** (any method but GET and HEAD) need the token on every bind,
//!   loopback included; without a configured token none is accepted. The server has no such
//!   endpoint yet, so an authorized one is answered 405 by the router.
//! * **DNS rebinding.** On a loopback bind the `Host` header must name the server itself
//!   (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, or the bound address): a page on another
//!   origin whose name was re-pointed at 127.0.0.1 is answered 421.
//! * **Headers.** Every response carries a Content-Security-Policy that allows scripts only from
//!   the server itself (the live view's one script file; no inline script), no framing, no
//!   plugins, plus `nosniff`, `no-referrer` and `no-store`.
//!
//! The token is compared in constant time: both sides are hashed (SHA-256) and the digests
//! compared without an early exit, so neither the content nor the length of a wrong guess shows
//! in the timing.

use std::net::{IpAddr, SocketAddr};

use axum::{
  extract::{Request, State},
  http::{header, HeaderMap, HeaderValue, Method, StatusCode},
  middleware::Next,
  response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// The environment variable holding the token.
pub const TOKEN_ENV: &str = "DRCTL_SERVE_TOKEN";

/// The Content-Security-Policy of every response. Styles may be inline: the run report is one
/// self-contained file with its CSS (and a few `style` attributes) inside; scripts may not.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                       style-src 'self' 'unsafe-inline'; img-src 'self'; base-uri 'none'; \
                       form-action 'self'; frame-ancestors 'none'";

/// The path that answers without a token (liveness probes carry none).
pub const HEALTH_PATH: &str = "/healthz";

/// A token, kept only as its digest.
#[derive(Clone)]
pub struct Token([u8; 32]);

impl Token {
  /// `None` for an empty value: an empty token would let every request in.
  pub fn new(secret: &str) -> Option<Token> {
    (!secret.is_empty()).then(|| Token(digest(secret.as_bytes())))
  }

  /// Whether `presented` is the token, in time independent of where they differ.
  pub fn matches(&self, presented: &[u8]) -> bool {
    let other = digest(presented);
    self
      .0
      .iter()
      .zip(other.iter())
      .fold(0u8, |acc, (a, b)| acc | (a ^ b))
      == 0
  }
}

impl std::fmt::Debug for Token {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("Token(***)")
  }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
  Sha256::digest(bytes).into()
}

/// The access rules of one bind.
#[derive(Debug, Clone)]
pub struct Guard {
  bound: SocketAddr,
  token: Option<Token>,
}

impl Guard {
  /// The rules for a server bound at `bound`. `Err` (a usage error, exit 2) for a bind beyond
  /// loopback without a token.
  pub fn new(bound: SocketAddr, token: Option<Token>) -> Result<Guard, String> {
    if !bound.ip().is_loopback() && token.is_none() {
      return Err(format!(
        "--listen {bound} is not a loopback address: set {TOKEN_ENV} (every request must then \
         carry `Authorization: Bearer TOKEN`), or listen on 127.0.0.1"
      ));
    }
    Ok(Guard { bound, token })
  }

  pub fn loopback(&self) -> bool {
    self.bound.ip().is_loopback()
  }

  /// Whether a `Host` header names this server (checked on loopback binds only).
  pub fn host_allowed(&self, host: Option<&str>) -> bool {
    if !self.loopback() {
      return true;
    }
    let Some(host) = host else { return false };
    let port = self.bound.port();
    let bound = match self.bound.ip() {
      IpAddr::V4(ip) => format!("{ip}:{port}"),
      IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    };
    let host = host.to_ascii_lowercase();
    [
      format!("127.0.0.1:{port}"),
      format!("localhost:{port}"),
      format!("[::1]:{port}"),
      bound,
    ]
    .contains(&host)
  }

  /// Whether the request carries the configured token (never, without one).
  pub fn authorized(&self, headers: &HeaderMap) -> bool {
    let Some(token) = &self.token else {
      return false;
    };
    headers
      .get_all(header::AUTHORIZATION)
      .iter()
      .filter_map(|value| value.as_bytes().strip_prefix(b"Bearer "))
      .any(|presented| token.matches(presented))
  }

  /// What a request needs before it reaches a page: `None` to let it through.
  pub fn refuse(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Refusal> {
    let host = headers
      .get(header::HOST)
      .and_then(|value| value.to_str().ok());
    if !self.host_allowed(host) {
      return Some(Refusal::WrongHost);
    }
    let reads = method == Method::GET || method == Method::HEAD;
    let needs_token = !reads || (!self.loopback() && path != HEALTH_PATH);
    if needs_token && !self.authorized(headers) {
      return Some(Refusal::NoToken);
    }
    None
  }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
  /// The Host header names another server (DNS rebinding): 421.
  WrongHost,
  /// The token is missing or wrong: 401.
  NoToken,
}

impl IntoResponse for Refusal {
  fn into_response(self) -> Response {
    match self {
      Refusal::WrongHost => (
        StatusCode::MISDIRECTED_REQUEST,
        "this server answers only to its own address (Host header refused)\n",
      )
        .into_response(),
      Refusal::NoToken => (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"drctl\"")],
        "a token is required: Authorization: Bearer TOKEN\n",
      )
        .into_response(),
    }
  }
}

/// The middleware: refuse what the guard refuses, and put the security headers on every
/// response (refusals included).
pub async fn protect(State(guard): State<Guard>, request: Request, next: Next) -> Response {
  let refusal = guard.refuse(request.method(), request.uri().path(), request.headers());
  let mut response = match refusal {
    Some(refusal) => refusal.into_response(),
    None => next.run(request).await,
  };
  let headers = response.headers_mut();
  for (name, value) in [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
  ] {
    headers.insert(name, HeaderValue::from_static(value));
  }
  response
}

#[cfg(test)]
mod tests {
  use super::*;

  fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
      map.append(name.clone(), HeaderValue::from_str(value).unwrap());
    }
    map
  }

  fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
  }

  #[test]
  fn a_bind_beyond_loopback_needs_a_token() {
    let err = Guard::new(addr("0.0.0.0:8080"), None).unwrap_err();
    assert!(err.contains("DRCTL_SERVE_TOKEN"), "{err}");
    assert!(Guard::new(addr("0.0.0.0:8080"), Token::new("t")).is_ok());
    // 127.0.0.2 is loopback too.
    assert!(Guard::new(addr("127.0.0.2:8080"), None).is_ok());
    assert!(Guard::new(addr("[::1]:8080"), None).is_ok());
    assert!(Token::new("").is_none());
  }

  #[test]
  fn a_loopback_bind_answers_only_to_its_own_names() {
    let guard = Guard::new(addr("127.0.0.1:8080"), None).unwrap();
    for host in [
      "127.0.0.1:8080",
      "localhost:8080",
      "LOCALHOST:8080",
      "[::1]:8080",
    ] {
      assert!(guard.host_allowed(Some(host)), "{host}");
    }
    for host in [
      "evil.example:8080",
      "127.0.0.1:8081",
      "localhost",
      "127.0.0.1",
      "attacker.localhost:8080",
      "",
    ] {
      assert!(!guard.host_allowed(Some(host)), "{host}");
    }
    assert!(!guard.host_allowed(None));
    let other = Guard::new(addr("127.0.0.2:9000"), None).unwrap();
    assert!(other.host_allowed(Some("127.0.0.2:9000")));
    let wide = Guard::new(addr("0.0.0.0:9000"), Token::new("t")).unwrap();
    assert!(wide.host_allowed(Some("drctl.internal:9000")));
  }

  #[test]
  fn state_changing_requests_need_the_token_on_every_bind() {
    let host = (header::HOST, "127.0.0.1:8080");
    let open = Guard::new(addr("127.0.0.1:8080"), None).unwrap();
    assert_eq!(
      open.refuse(&Method::GET, "/", &headers(std::slice::from_ref(&host))),
      None
    );
    // No token configured: nothing state-changing is accepted at all.
    assert_eq!(
      open.refuse(
        &Method::POST,
        "/runs",
        &headers(&[host.clone(), (header::AUTHORIZATION, "Bearer x")])
      ),
      Some(Refusal::NoToken)
    );
    let guarded = Guard::new(addr("127.0.0.1:8080"), Token::new("s3cret")).unwrap();
    assert_eq!(
      guarded.refuse(
        &Method::POST,
        "/runs",
        &headers(std::slice::from_ref(&host))
      ),
      Some(Refusal::NoToken)
    );
    assert_eq!(
      guarded.refuse(
        &Method::POST,
        "/runs",
        &headers(&[host.clone(), (header::AUTHORIZATION, "Bearer wrong")])
      ),
      Some(Refusal::NoToken)
    );
    assert_eq!(
      guarded.refuse(
        &Method::POST,
        "/runs",
        &headers(&[host.clone(), (header::AUTHORIZATION, "Bearer s3cret")])
      ),
      None
    );
    // The Host check comes first, token or not.
    assert_eq!(
      guarded.refuse(
        &Method::GET,
        "/",
        &headers(&[
          (header::HOST, "rebound.example:8080"),
          (header::AUTHORIZATION, "Bearer s3cret")
        ])
      ),
      Some(Refusal::WrongHost)
    );
  }

  #[test]
  fn beyond_loopback_every_page_but_the_health_check_needs_the_token() {
    let guard = Guard::new(addr("0.0.0.0:8080"), Token::new("s3cret")).unwrap();
    let none = headers(&[(header::HOST, "10.0.0.5:8080")]);
    for path in ["/", "/metrics", "/drills", "/runs/x"] {
      assert_eq!(
        guard.refuse(&Method::GET, path, &none),
        Some(Refusal::NoToken),
        "{path}"
      );
    }
    assert_eq!(guard.refuse(&Method::GET, HEALTH_PATH, &none), None);
    let with = headers(&[
      (header::HOST, "10.0.0.5:8080"),
      (header::AUTHORIZATION, "Bearer s3cret"),
    ]);
    assert_eq!(guard.refuse(&Method::GET, "/metrics", &with), None);
    // Only the bearer scheme, exactly.
    let basic = headers(&[(header::AUTHORIZATION, "Basic s3cret")]);
    assert!(!guard.authorized(&basic));
    let prefix = headers(&[(header::AUTHORIZATION, "Bearer s3cre")]);
    assert!(!guard.authorized(&prefix));
  }

  #[test]
  fn the_token_never_shows_in_debug_output() {
    let guard = Guard::new(addr("0.0.0.0:1"), Token::new("hunter2-token")).unwrap();
    let shown = format!("{guard:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
  }
}
