//! Who may reach `drctl serve`, and what every response carries.
//!
//! * **Bind.** A loopback `--listen` (127.0.0.0/8, `::1`) needs nothing; any other address is
//!   refused at start (exit 2) unless `DRCTL_SERVE_TOKEN` is set, and then every request but
//!   `/healthz` must carry `Authorization: Bearer TOKEN`.
//! * **State-changing requests** (any method but GET and HEAD) need the token on every bind,
//!   loopback included; without a configured token (shared or per-person) none is accepted.
//!   They are the run-control endpoints (`super::control`).
//! * **DNS rebinding.** On a loopback bind the `Host` header must name the server itself
//!   (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`, or the bound address): a page on another
//!   origin whose name was re-pointed at 127.0.0.1 is answered 421.
//! * **Headers.** Every response carries a Content-Security-Policy that allows scripts only from
//!   the server itself (the live view's one script file; no inline script), no framing, no
//!   plugins, plus `nosniff`, `no-referrer` and `no-store`.
//!
//! * **Identities.** `--tokens FILE` maps per-person tokens (their SHA-256 digests) to names: a
//!   request carrying one acts as that person ([`IdentityVia::Token`]); the shared token acts
//!   as "shared token" ([`IdentityVia::SharedToken`]), which never satisfies a two-person rule.
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

use crate::state::control::{Identity, IdentityVia};

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
    self.matches_digest(&digest(presented))
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
  /// Per-person tokens (`--tokens FILE`).
  people: People,
  /// A trusted reverse proxy's user header (`--proxy-user-header`), believed only on requests
  /// carrying the shared token (the proxy's).
  proxy_header: Option<header::HeaderName>,
}

impl Guard {
  /// The rules for a server bound at `bound`. `Err` (a usage error, exit 2) for a bind beyond
  /// loopback without a token.
  pub fn new(bound: SocketAddr, token: Option<Token>) -> Result<Guard, String> {
    Guard::with_people(bound, token, People::default())
  }

  /// [`Guard::new`] that also accepts the per-person tokens of `people` (which, like the
  /// shared token, let a bind beyond loopback start).
  pub fn with_people(
    bound: SocketAddr,
    token: Option<Token>,
    people: People,
  ) -> Result<Guard, String> {
    if !bound.ip().is_loopback() && token.is_none() && people.is_empty() {
      return Err(format!(
        "--listen {bound} is not a loopback address: set {TOKEN_ENV} (every request must then \
         carry `Authorization: Bearer TOKEN`), or listen on 127.0.0.1"
      ));
    }
    Ok(Guard {
      bound,
      token,
      people,
      proxy_header: None,
    })
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

  /// Whether the request carries a configured token, shared or a person's (never, without
  /// one).
  pub fn authorized(&self, headers: &HeaderMap) -> bool {
    self.identity(headers).is_some()
  }

  /// Who the request's token says it is: the person whose token it carries
  /// ([`IdentityVia::Token`]), else "shared token" ([`IdentityVia::SharedToken`]) for the
  /// shared one; `None` without a configured token.
  pub fn identity(&self, headers: &HeaderMap) -> Option<Identity> {
    let presented: Vec<&[u8]> = headers
      .get_all(header::AUTHORIZATION)
      .iter()
      .filter_map(|value| value.as_bytes().strip_prefix(b"Bearer "))
      .collect();
    if let Some(name) = presented
      .iter()
      .find_map(|token| self.people.name_of(token))
    {
      return Some(Identity {
        name: name.to_string(),
        via: IdentityVia::Token,
      });
    }
    let shared = self.token.as_ref()?;
    if !presented.iter().any(|token| shared.matches(token)) {
      return None;
    }
    // The proxy's request: its header names the person, when it names one properly.
    let proxied = self
      .proxy_header
      .as_ref()
      .and_then(|name| headers.get(name))
      .and_then(|value| value.to_str().ok())
      .map(str::trim)
      .filter(|user| {
        !user.is_empty()
          && user.chars().count() <= MAX_PROXY_USER_CHARS
          && !user.chars().any(char::is_control)
      });
    Some(match proxied {
      Some(user) => Identity {
        name: user.to_string(),
        via: IdentityVia::ProxyHeader,
      },
      None => Identity {
        name: SHARED_NAME.to_string(),
        via: IdentityVia::SharedToken,
      },
    })
  }

  /// Believe `name` (a trusted reverse proxy's user header) on requests that carry the shared
  /// token. `Err` (a usage error) without a shared token: the header would never be believed.
  pub fn with_proxy_header(mut self, name: &str) -> Result<Guard, String> {
    if self.token.is_none() {
      return Err(format!(
        "--proxy-user-header needs {TOKEN_ENV}: the header is believed only on requests that \
         carry that token (the proxy's)"
      ));
    }
    let name = header::HeaderName::from_bytes(name.as_bytes())
      .map_err(|_| format!("--proxy-user-header `{name}` is not an HTTP header name"))?;
    self.proxy_header = Some(name);
    Ok(self)
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
/// A request let through with a token carries its [`Identity`] as an extension.
pub async fn protect(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
  let refusal = guard.refuse(request.method(), request.uri().path(), request.headers());
  let mut response = match refusal {
    Some(refusal) => refusal.into_response(),
    None => {
      if let Some(identity) = guard.identity(request.headers()) {
        request.extensions_mut().insert(identity);
      }
      next.run(request).await
    }
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

/// The longest user name a proxy header may give.
const MAX_PROXY_USER_CHARS: usize = 200;

/// The name a request authenticated by the shared token acts as.
pub const SHARED_NAME: &str = "shared token";

/// Per-person tokens: each person's name and token digest.
#[derive(Debug, Clone, Default)]
pub struct People(Vec<(String, Token)>);

/// The tokens file as written.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
  tokens: Vec<TokenEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
  name: String,
  token_sha256: String,
}

impl People {
  pub fn is_empty(&self) -> bool {
    self.0.is_empty()
  }

  /// Whose token `presented` is. Every digest is compared (no early exit), each in constant
  /// time.
  pub fn name_of(&self, presented: &[u8]) -> Option<&str> {
    let digest = digest(presented);
    let mut found = None;
    for (name, token) in &self.0 {
      if token.matches_digest(&digest) && found.is_none() {
        found = Some(name.as_str());
      }
    }
    found
  }

  /// Read a tokens file: YAML `tokens: [{name: NAME, token_sha256: HEX}]`. `Err` (a usage
  /// error, exit 2) for a file group or others may read or write (as ssh refuses such keys),
  /// one that does not parse (naming line and column), an empty, duplicate or reserved name,
  /// a digest that is not 64 hex digits, or the same digest twice.
  pub fn load(path: &std::path::Path) -> Result<People, String> {
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|err| format!("{shown}: {err}"))?;
    {
      use std::os::unix::fs::PermissionsExt;
      let mode = metadata.permissions().mode() & 0o777;
      if mode & 0o077 != 0 {
        return Err(format!(
          "{shown}: the tokens file is accessible by group or others (mode {mode:o}): \
           chmod 600 it"
        ));
      }
    }
    let text = std::fs::read_to_string(path).map_err(|err| format!("{shown}: {err}"))?;
    People::parse(&text).map_err(|why| format!("{shown}:{why}"))
  }

  /// The tokens of a file's text (errors start with `line:column: ` where known).
  fn parse(text: &str) -> Result<People, String> {
    let file: TokensFile = serde_yaml::from_str(text).map_err(|err| match err.location() {
      Some(at) => format!("{}:{}: {err}", at.line(), at.column()),
      None => format!(" {err}"),
    })?;
    let mut people = Vec::with_capacity(file.tokens.len());
    for (index, entry) in file.tokens.into_iter().enumerate() {
      let which = format!(" tokens[{index}]");
      let name = entry.name.trim();
      if name.is_empty() || name.chars().any(char::is_control) {
        return Err(format!("{which}: `name` must be a non-empty line of text"));
      }
      if name == SHARED_NAME {
        return Err(format!("{which}: the name `{SHARED_NAME}` is reserved"));
      }
      let digest = parse_hex_digest(&entry.token_sha256).ok_or_else(|| {
        format!("{which}: `token_sha256` must be 64 hex digits (`printf %s TOKEN | sha256sum`)")
      })?;
      if people
        .iter()
        .any(|(other, _): &(String, Token)| other == name)
      {
        return Err(format!("{which}: `{name}` appears twice"));
      }
      if people
        .iter()
        .any(|(_, token)| token.matches_digest(&digest))
      {
        return Err(format!("{which}: the same token digest appears twice"));
      }
      people.push((name.to_string(), Token(digest)));
    }
    Ok(People(people))
  }
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
  let hex = hex.trim().as_bytes();
  if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
    return None;
  }
  let mut out = [0u8; 32];
  for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
    let text = std::str::from_utf8(pair).ok()?;
    *byte = u8::from_str_radix(text, 16).ok()?;
  }
  Some(out)
}

impl Token {
  /// Whether `other` is this token's digest, in constant time.
  fn matches_digest(&self, other: &[u8; 32]) -> bool {
    self
      .0
      .iter()
      .zip(other.iter())
      .fold(0u8, |acc, (a, b)| acc | (a ^ b))
      == 0
  }
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

  fn tokens_file(text: &str, mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.yaml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (dir, path)
  }

  fn hex(token: &str) -> String {
    digest(token.as_bytes())
      .iter()
      .map(|byte| format!("{byte:02x}"))
      .collect()
  }

  #[test]
  fn a_persons_token_names_the_person_and_the_shared_one_names_no_one() {
    let text = format!(
      "tokens:\n  - name: alice\n    token_sha256: {}\n  - name: bob\n    token_sha256: {}\n",
      hex("alice-secret"),
      hex("bob-secret").to_uppercase()
    );
    let (_dir, path) = tokens_file(&text, 0o600);
    let people = People::load(&path).unwrap();
    let guard =
      Guard::with_people(addr("127.0.0.1:8080"), Token::new("shared"), people.clone()).unwrap();
    let with = |token: &str| {
      guard.identity(&headers(&[(
        header::AUTHORIZATION,
        &format!("Bearer {token}"),
      )]))
    };
    assert_eq!(
      with("alice-secret"),
      Some(Identity {
        name: "alice".into(),
        via: IdentityVia::Token
      })
    );
    assert_eq!(with("bob-secret").unwrap().name, "bob");
    assert_eq!(
      with("shared"),
      Some(Identity {
        name: SHARED_NAME.into(),
        via: IdentityVia::SharedToken
      })
    );
    assert_eq!(with("alice-secre"), None);
    assert_eq!(
      with(&hex("alice-secret")),
      None,
      "the digest is not the token"
    );
    // Per-person tokens alone let a bind beyond loopback start, and do not show in Debug.
    let wide = Guard::with_people(addr("0.0.0.0:8080"), None, people).unwrap();
    assert!(!format!("{wide:?}").contains(&hex("alice-secret")[..16]));
  }

  #[test]
  fn a_tokens_file_others_can_read_or_that_is_malformed_is_refused() {
    let good = format!("tokens:\n  - name: alice\n    token_sha256: {}\n", hex("a"));
    for mode in [0o640, 0o604, 0o660, 0o644] {
      let (_dir, path) = tokens_file(&good, mode);
      let err = People::load(&path).unwrap_err();
      assert!(err.contains("chmod 600"), "{mode:o}: {err}");
    }
    let (_dir, path) = tokens_file(&good, 0o400);
    assert!(People::load(&path).is_ok());
    let cases = [
      (
        "tokens:\n  - name: alice\n    token_sha256: abc\n".to_string(),
        "64 hex digits",
      ),
      (
        format!(
          "tokens:\n  - name: alice\n    token_sha256: +{}\n",
          &hex("a")[1..]
        ),
        "64 hex digits",
      ),
      (
        format!(
          "tokens:\n  - name: alice\n    token_sha256: {0}\n  - name: bob\n    token_sha256: {0}\n",
          hex("a")
        ),
        "same token digest",
      ),
      (
        format!(
          "tokens:\n  - name: alice\n    token_sha256: {}\n  - name: alice\n    token_sha256: {}\n",
          hex("a"),
          hex("b")
        ),
        "appears twice",
      ),
      (
        format!(
          "tokens:\n  - name: shared token\n    token_sha256: {}\n",
          hex("a")
        ),
        "reserved",
      ),
      (
        format!("tokens:\n  - name: alice\n    token: {}\n", hex("a")),
        ":3:",
      ),
    ];
    for (text, expected) in cases {
      let (_dir, path) = tokens_file(&text, 0o600);
      let err = People::load(&path).unwrap_err();
      assert!(err.contains(expected), "{text}: {err}");
      assert!(err.starts_with(&path.display().to_string()), "{err}");
    }
  }

  #[test]
  fn a_proxy_header_is_believed_only_with_the_shared_token() {
    let text = format!(
      "tokens:\n  - name: alice\n    token_sha256: {}\n",
      hex("alice-secret")
    );
    let (_dir, path) = tokens_file(&text, 0o600);
    let people = People::load(&path).unwrap();
    let err = Guard::with_people(addr("127.0.0.1:8080"), None, people.clone())
      .unwrap()
      .with_proxy_header("x-forwarded-user")
      .unwrap_err();
    assert!(err.contains("DRCTL_SERVE_TOKEN"), "{err}");
    let guard = Guard::with_people(addr("127.0.0.1:8080"), Token::new("proxy-tok"), people)
      .unwrap()
      .with_proxy_header("X-Forwarded-User")
      .unwrap();
    let with = |pairs: &[(&str, &str)]| {
      let mut map = HeaderMap::new();
      for (name, value) in pairs {
        map.append(
          header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
          HeaderValue::from_str(value).unwrap(),
        );
      }
      guard.identity(&map)
    };
    assert_eq!(
      with(&[
        ("authorization", "Bearer proxy-tok"),
        ("x-forwarded-user", "erin")
      ]),
      Some(Identity {
        name: "erin".into(),
        via: IdentityVia::ProxyHeader
      })
    );
    // Without the proxy's token the header is nothing.
    assert_eq!(with(&[("x-forwarded-user", "erin")]), None);
    assert_eq!(
      with(&[
        ("authorization", "Bearer wrong"),
        ("x-forwarded-user", "erin")
      ]),
      None
    );
    // A person's token is that person, whatever the header says.
    assert_eq!(
      with(&[
        ("authorization", "Bearer alice-secret"),
        ("x-forwarded-user", "erin")
      ])
      .unwrap()
      .name,
      "alice"
    );
    // The proxy's token without (or with an empty) header is the shared token.
    for pairs in [
      &[("authorization", "Bearer proxy-tok")][..],
      &[
        ("authorization", "Bearer proxy-tok"),
        ("x-forwarded-user", "  "),
      ][..],
    ] {
      assert_eq!(with(pairs).unwrap().via, IdentityVia::SharedToken);
    }
    assert!(Guard::new(addr("127.0.0.1:1"), Token::new("t"))
      .unwrap()
      .with_proxy_header("bad header")
      .is_err());
  }
}
