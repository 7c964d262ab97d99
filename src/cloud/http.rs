//! The real [`Http`] provider: probes (`GET`) and notifications (`POST`) over reqwest/rustls.
//!
//! A non-2xx status is a response (the probe decides what it means); only failing to get a
//! response — connect error, TLS failure, timeout, broken body — is an error, of kind
//! `Transport`. Nothing is retried here: probes retry `within` their window, notifications with
//! the step's retry policy.
//!
//! What this provider promises, whatever the request:
//!
//! * **Redirects** are followed only as [`HttpRequest::redirects`] says: none (the 3xx is the
//!   response, with its `Location` resolved), or within the same origin — scheme, host and
//!   port — at most [`MAX_REDIRECTS`] in a row. Headers and bodies therefore never reach a host
//!   the request was not addressed to.
//! * **Bodies** are streamed and read up to [`HttpRequest::max_body`] bytes; the rest is never
//!   read (the connection is dropped) and the response says it was cut.
//! * **Trust**: the operating system's certificate store plus the bundled Mozilla roots; when
//!   `SSL_CERT_FILE` or `SSL_CERT_DIR` is set, exactly the certificates found there instead
//!   (as OpenSSL-based tools and the AWS SDK do). One that is set but yields no certificate is
//!   an error when the client is built, not an empty trust store.
//! * **Proxies**: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (either case), read
//!   when the client is built.

use std::{
  ffi::OsString,
  sync::Arc,
  time::{Duration, Instant},
};

use reqwest::{
  header::{HeaderMap, HeaderName, HeaderValue, LOCATION},
  redirect, Method,
};

use super::{
  ops::Op, Clock, Cloud, CloudError, CloudResult, ErrorKind, Http, HttpRequest, HttpResponse,
  Redirects,
};

const SERVICE: &str = "http";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Same-origin redirects followed in a row before the last 3xx is returned as the response.
pub const MAX_REDIRECTS: usize = 10;

/// `Http` over pooled reqwest clients: one that follows no redirect, one that follows
/// same-origin ones.
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
  direct: reqwest::Client,
  same_origin: reqwest::Client,
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
  /// The operating system's store plus the bundled Mozilla roots.
  System,
  /// Only the certificates in `SSL_CERT_FILE` / `SSL_CERT_DIR`.
  Environment,
}

impl TrustRoots {
  /// Decide from the environment, checking that a certificate file or directory that is set
  /// yields at least one certificate.
  // `CloudError` is the boundary's error type, returned by value like every trait method does.
  #[allow(clippy::result_large_err)]
  pub fn from_env() -> CloudResult<TrustRoots> {
    let file = std::env::var_os("SSL_CERT_FILE");
    let dir = std::env::var_os("SSL_CERT_DIR");
    let (name, value): (&str, OsString) = match (file, dir) {
      (None, None) => return Ok(TrustRoots::System),
      (Some(file), _) => ("SSL_CERT_FILE", file),
      (None, Some(dir)) => ("SSL_CERT_DIR", dir),
    };
    let shown = value.to_string_lossy().into_owned();
    if value.is_empty() {
      return Err(client_error(
        "client",
        format!("{name} `` is set but empty: unset it, or point it at PEM CA certificates"),
      ));
    }
    let loaded = rustls_native_certs::load_native_certs();
    if loaded.certs.is_empty() {
      let why = loaded
        .errors
        .first()
        .map(|error| format!(" ({error})"))
        .unwrap_or_default();
      return Err(client_error(
        "client",
        format!("{name} `{shown}`: no CA certificate could be read{why}"),
      ));
    }
    Ok(TrustRoots::Environment)
  }
}

impl ReqwestHttp {
  /// One provider for the whole process, built on first use: building one loads the trust
  /// store (a few hundred certificates), too slow to repeat per request. The environment it
  /// reads (`SSL_CERT_FILE`, proxies) is the process's, which does not change.
  // `CloudError` is the boundary's error type, returned by value like every trait method does.
  #[allow(clippy::result_large_err)]
  pub fn shared() -> CloudResult<Self> {
    static SHARED: std::sync::OnceLock<CloudResult<ReqwestHttp>> = std::sync::OnceLock::new();
    SHARED.get_or_init(ReqwestHttp::new).clone()
  }

  // `CloudError` is the boundary's error type, returned by value like every trait method does.
  #[allow(clippy::result_large_err)]
  pub fn new() -> CloudResult<Self> {
    let trust = TrustRoots::from_env()?;
    let same_origin = redirect::Policy::custom(|attempt| {
      let previous = attempt.previous().last();
      let same = previous.is_some_and(|previous| previous.origin() == attempt.url().origin());
      if same && attempt.previous().len() <= MAX_REDIRECTS {
        attempt.follow()
      } else {
        attempt.stop()
      }
    });
    Ok(Self {
      direct: client(trust, redirect::Policy::none())?,
      same_origin: client(trust, same_origin)?,
    })
  }
}

// `CloudError` is the boundary's error type, returned by value like every trait method does.
#[allow(clippy::result_large_err)]
fn client(trust: TrustRoots, redirects: redirect::Policy) -> CloudResult<reqwest::Client> {
  reqwest::Client::builder()
    .connect_timeout(CONNECT_TIMEOUT)
    .user_agent(concat!("drctl/", env!("CARGO_PKG_VERSION")))
    .redirect(redirects)
    // The OS store (or, when set, SSL_CERT_FILE / SSL_CERT_DIR, which reqwest's loader reads in
    // its place); the bundled roots only alongside the OS store.
    .tls_built_in_native_certs(true)
    .tls_built_in_webpki_certs(trust == TrustRoots::System)
    .build()
    .map_err(|error| client_error("client", error.to_string()))
}

fn client_error(operation: &str, message: impl Into<String>) -> CloudError {
  CloudError::new(ErrorKind::Client, SERVICE, operation, message)
}

/// Errors never include the URL: webhook URLs carry secrets. Neither does the reason a
/// connection failed (the innermost error: a TLS alert, `Connection refused`).
fn transport_error(operation: &str, error: &reqwest::Error) -> CloudError {
  let what = if error.is_timeout() {
    "timed out".to_string()
  } else if let Some(tls) = tls_failure(error) {
    format!("TLS handshake failed: {tls}")
  } else if error.is_connect() {
    match innermost(error) {
      Some(reason) => format!("could not connect: {reason}"),
      None => "could not connect".to_string(),
    }
  } else if error.is_body() || error.is_decode() {
    "failed reading the response body".to_string()
  } else {
    "request failed".to_string()
  };
  CloudError::new(ErrorKind::Transport, SERVICE, operation, what)
}

/// The rustls error somewhere under `error`, if the failure was the TLS handshake. An
/// `io::Error` hides the error it wraps from `source()`, so each one is opened too.
fn tls_failure(error: &reqwest::Error) -> Option<String> {
  fn rustls_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
      return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_in(inner)
  }
  let mut source = std::error::Error::source(error);
  while let Some(current) = source {
    if let Some(tls) = rustls_in(current) {
      return Some(tls.to_string());
    }
    source = current.source();
  }
  None
}

/// The Display of the innermost source of `error` (not of `error` itself, which names the
/// URL).
fn innermost(error: &reqwest::Error) -> Option<String> {
  let mut source = std::error::Error::source(error)?;
  while let Some(next) = source.source() {
    source = next;
  }
  Some(source.to_string())
}

/// A redirect's `Location`, resolved against the URL that answered it.
fn location(response: &reqwest::Response) -> Option<String> {
  let value = response.headers().get(LOCATION)?.to_str().ok()?;
  response.url().join(value).ok().map(String::from)
}

/// Read the body up to `cap` bytes: `(body, cut)`. Nothing past the cap is read; memory held is
/// at most the cap plus one chunk.
async fn read_capped(
  response: &mut reqwest::Response,
  cap: u64,
  operation: &str,
) -> CloudResult<(String, bool)> {
  let cap = usize::try_from(cap).unwrap_or(usize::MAX);
  let expected = response
    .content_length()
    .and_then(|length| usize::try_from(length).ok())
    .unwrap_or(0);
  let mut body = Vec::with_capacity(expected.min(cap));
  let mut cut = false;
  while let Some(chunk) = response
    .chunk()
    .await
    .map_err(|error| transport_error(operation, &error))?
  {
    let room = cap - body.len();
    if chunk.len() > room {
      body.extend_from_slice(&chunk[..room]);
      cut = true;
      break;
    }
    body.extend_from_slice(&chunk);
  }
  Ok((String::from_utf8_lossy(&body).into_owned(), cut))
}

#[async_trait::async_trait]
impl Http for ReqwestHttp {
  async fn send(&self, request: &HttpRequest) -> CloudResult<HttpResponse> {
    let operation = request.method.to_ascii_uppercase();
    let method = Method::from_bytes(operation.as_bytes())
      .map_err(|_| client_error(&operation, format!("invalid method {:?}", request.method)))?;
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
      let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| client_error(&operation, format!("invalid header name {name:?}")))?;
      // The value may be a secret (an Authorization header): never echo it.
      let value = HeaderValue::from_str(value)
        .map_err(|_| client_error(&operation, format!("invalid value for header {name}")))?;
      headers.insert(name, value);
    }
    let client = match request.redirects {
      Redirects::None => &self.direct,
      Redirects::SameOrigin => &self.same_origin,
    };
    let mut builder = client
      .request(method, &request.url)
      .headers(headers)
      .timeout(request.timeout);
    if let Some(body) = &request.body {
      builder = builder.body(body.clone());
    }
    let started = Instant::now();
    let mut response = builder.send().await.map_err(|error| {
      if error.is_builder() {
        client_error(&operation, "invalid request URL")
      } else {
        transport_error(&operation, &error)
      }
    })?;
    let status = response.status().as_u16();
    let location = response
      .status()
      .is_redirection()
      .then(|| location(&response))
      .flatten();
    let (body, truncated) = read_capped(&mut response, request.max_body, &operation).await?;
    Ok(HttpResponse {
      status,
      body,
      latency: started.elapsed(),
      truncated,
      location,
    })
  }
}

/// A [`Cloud`] whose only working provider is `http`: for work that only POSTs (a drill's
/// notifications, sent after the run, whatever the drill's target was). Every other provider
/// answers a `Client` error without doing anything.
pub fn http_only(http: Arc<dyn Http>) -> Cloud {
  macro_rules! unavailable {
    ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
      Cloud {
        $($family: Arc::new(Unavailable),)*
        http,
        clock: Clock::default(),
        backend: "http".into(),
        fence: Default::default(),
      }
    };
  }
  super::with_families!(unavailable)
}

/// The providers of [`http_only`] other than `http`. Every family's trait is implemented for
/// it by [`service_family!`](super::family): each call is [`Unavailable::error`].
pub(crate) struct Unavailable;

impl Unavailable {
  /// What every call of an unavailable provider answers, unsent.
  pub(crate) fn error(op: &Op) -> CloudError {
    CloudError::new(
      ErrorKind::Client,
      op.service,
      op.name,
      "not available here (only HTTP is)",
    )
  }
}
