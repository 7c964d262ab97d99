//! The real [`Http`] provider: probes (`GET`) and notifications (`POST`) over reqwest/rustls.
//!
//! A non-2xx status is a response (the probe decides what it means); only failing to get a
//! response — connect error, TLS failure, timeout, broken body — is an error, of kind
//! `Transport`. Nothing is retried here: probes retry `within` their window, notifications with
//! the step's retry policy.

use std::time::{Duration, Instant};

use reqwest::{
  header::{HeaderMap, HeaderName, HeaderValue},
  Method,
};

use super::{CloudError, CloudResult, ErrorKind, Http, HttpRequest, HttpResponse};

const SERVICE: &str = "http";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// `Http` over one pooled reqwest client.
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
  client: reqwest::Client,
}

impl ReqwestHttp {
  // `CloudError` is the boundary's error type, returned by value like every trait method does.
  #[allow(clippy::result_large_err)]
  pub fn new() -> CloudResult<Self> {
    let client = reqwest::Client::builder()
      .connect_timeout(CONNECT_TIMEOUT)
      .user_agent(concat!("drctl/", env!("CARGO_PKG_VERSION")))
      .build()
      .map_err(|error| CloudError::new(ErrorKind::Client, SERVICE, "client", error.to_string()))?;
    Ok(Self { client })
  }
}

fn client_error(operation: &str, message: impl Into<String>) -> CloudError {
  CloudError::new(ErrorKind::Client, SERVICE, operation, message)
}

/// Errors never include the URL: webhook URLs carry secrets.
fn transport_error(operation: &str, error: &reqwest::Error) -> CloudError {
  let what = if error.is_timeout() {
    "timed out"
  } else if error.is_connect() {
    "could not connect"
  } else if error.is_body() || error.is_decode() {
    "failed reading the response body"
  } else {
    "request failed"
  };
  CloudError::new(ErrorKind::Transport, SERVICE, operation, what)
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
    let mut builder = self
      .client
      .request(method, &request.url)
      .headers(headers)
      .timeout(request.timeout);
    if let Some(body) = &request.body {
      builder = builder.body(body.clone());
    }
    let started = Instant::now();
    let response = builder.send().await.map_err(|error| {
      if error.is_builder() {
        client_error(&operation, "invalid request URL")
      } else {
        transport_error(&operation, &error)
      }
    })?;
    let status = response.status().as_u16();
    let body = response
      .text()
      .await
      .map_err(|error| transport_error(&operation, &error))?;
    Ok(HttpResponse {
      status,
      body,
      latency: started.elapsed(),
    })
  }
}
