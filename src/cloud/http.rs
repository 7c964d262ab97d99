//! The real [`Http`] provider: probes (`GET`) and notifications (`POST`) over reqwest/rustls.
//!
//! A non-2xx status is a response (the probe decides what it means); only failing to get a
//! response — connect error, TLS failure, timeout, broken body — is an error, of kind
//! `Transport`. Nothing is retried here: probes retry `within` their window, notifications with
//! the step's retry policy.

use std::{
  sync::Arc,
  time::{Duration, Instant},
};

use reqwest::{
  header::{HeaderMap, HeaderName, HeaderValue},
  Method,
};

use super::{
  ChangeInfo, Clock, Cloud, CloudError, CloudResult, DbInstance, DbSnapshot, Ecs, EcsService,
  ErrorKind, GlobalCluster, HealthCheckStatus, HealthCheckUpdate, Http, HttpRequest, HttpResponse,
  Rds, RecordChange, RecordSet, RestoreRequest, Route53, S3Object, S3,
};

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

/// A [`Cloud`] whose only working provider is `http`: for work that only POSTs (a drill's
/// notifications, sent after the run, whatever the drill's target was). Every other provider
/// answers a `Client` error without doing anything.
pub fn http_only(http: Arc<dyn Http>) -> Cloud {
  let unavailable = Arc::new(Unavailable);
  Cloud {
    rds: unavailable.clone(),
    ecs: unavailable.clone(),
    route53: unavailable.clone(),
    s3: unavailable,
    http,
    clock: Clock::default(),
    backend: "http".into(),
    fence: Default::default(),
  }
}

/// The providers of [`http_only`] other than `http`.
struct Unavailable;

// `CloudError` is the boundary's error type, returned by value like every trait method does.
#[allow(clippy::result_large_err)]
fn unavailable<T>(service: &str, operation: &str) -> CloudResult<T> {
  Err(CloudError::new(
    ErrorKind::Client,
    service,
    operation,
    "not available here (only HTTP is)",
  ))
}

#[async_trait::async_trait]
impl Rds for Unavailable {
  async fn describe_instance(&self, _: &str, _: &str) -> CloudResult<Option<DbInstance>> {
    unavailable("rds", "DescribeDBInstances")
  }
  async fn replica_lag(&self, _: &str, _: &str) -> CloudResult<Option<Duration>> {
    unavailable("cloudwatch", "GetMetricStatistics")
  }
  async fn describe_snapshots(&self, _: &str, _: &str) -> CloudResult<Vec<DbSnapshot>> {
    unavailable("rds", "DescribeDBSnapshots")
  }
  async fn describe_global_cluster(&self, _: &str) -> CloudResult<Option<GlobalCluster>> {
    unavailable("rds", "DescribeGlobalClusters")
  }
  async fn promote_read_replica(&self, _: &str, _: &str) -> CloudResult<()> {
    unavailable("rds", "PromoteReadReplica")
  }
  async fn restore_from_snapshot(&self, _: &RestoreRequest) -> CloudResult<()> {
    unavailable("rds", "RestoreDBInstanceFromDBSnapshot")
  }
  async fn delete_instance(&self, _: &str, _: &str) -> CloudResult<()> {
    unavailable("rds", "DeleteDBInstance")
  }
  async fn failover_global_cluster(&self, _: &str, _: &str) -> CloudResult<()> {
    unavailable("rds", "FailoverGlobalCluster")
  }
}

#[async_trait::async_trait]
impl Ecs for Unavailable {
  async fn describe_service(&self, _: &str, _: &str, _: &str) -> CloudResult<Option<EcsService>> {
    unavailable("ecs", "DescribeServices")
  }
  async fn update_desired_count(&self, _: &str, _: &str, _: &str, _: u32) -> CloudResult<()> {
    unavailable("ecs", "UpdateService")
  }
}

#[async_trait::async_trait]
impl Route53 for Unavailable {
  async fn list_record_sets(&self, _: &str, _: &str) -> CloudResult<Vec<RecordSet>> {
    unavailable("route53", "ListResourceRecordSets")
  }
  async fn list_record_sets_page(
    &self,
    _: &str,
    _: Option<&super::RecordPageStart>,
  ) -> CloudResult<super::RecordPage> {
    unavailable("route53", "ListResourceRecordSets")
  }
  async fn get_change(&self, _: &str) -> CloudResult<ChangeInfo> {
    unavailable("route53", "GetChange")
  }
  async fn get_health_check_status(&self, _: &str) -> CloudResult<HealthCheckStatus> {
    unavailable("route53", "GetHealthCheckStatus")
  }
  async fn change_record_sets(
    &self,
    _: &str,
    _: &str,
    _: &[RecordChange],
  ) -> CloudResult<ChangeInfo> {
    unavailable("route53", "ChangeResourceRecordSets")
  }
  async fn update_health_check(&self, _: &str, _: HealthCheckUpdate) -> CloudResult<()> {
    unavailable("route53", "UpdateHealthCheck")
  }
}

#[async_trait::async_trait]
impl S3 for Unavailable {
  async fn list_objects(&self, _: &str, _: &str, _: &str) -> CloudResult<Vec<S3Object>> {
    unavailable("s3", "ListObjectsV2")
  }
  async fn head_object(&self, _: &str, _: &str, _: &str) -> CloudResult<Option<S3Object>> {
    unavailable("s3", "HeadObject")
  }
}
