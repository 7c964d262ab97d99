//! The sandbox: the AWS provider against a local, patched moto server (`launcher.py`) seeded
//! with the simulator's built-in world (`seed.py`), both embedded so an installed binary can
//! run one (`drctl sandbox up`, `--sandbox`).
//!
//! AWS calls go through the real SDK to the server's endpoint with fixed test credentials. HTTP
//! probes and notifications go through [`SandboxHttp`], which sends the world's endpoints
//! (`https://api.example.com/...`) to the server's `/drctl-sandbox/app/...` routes and
//! notifications (Slack, PagerDuty, `hooks.example.com`) to its capture route, so a sandbox run
//! never leaves loopback.

// `CloudError` is the boundary's error type, returned by value like every trait method does.
#![allow(clippy::result_large_err)]

use std::{
  path::{Path, PathBuf},
  sync::Arc,
};

use aws_config::Region;
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};

use super::{config, AwsSettings};
use crate::cloud::{
  http::ReqwestHttp, CallerIdentity, Cloud, CloudResult, Http, HttpRequest, HttpResponse,
};

/// The patched moto server (see its module doc for every patch and route).
pub const LAUNCHER_PY: &str = include_str!("launcher.py");
/// Seeds the server with the built-in world and prints the ids as JSON.
pub const SEED_PY: &str = include_str!("seed.py");

/// Credentials and region the sandbox runs with (moto accepts any; these are the convention).
pub const ACCESS_KEY_ID: &str = "testing";
pub const SECRET_ACCESS_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";

/// Hosts of the world's HTTP endpoints, served by the launcher's `/drctl-sandbox/app/` route.
pub const WORLD_HOSTS: [&str; 3] = [
  "api.example.com",
  "api-use1.example.com",
  "api-usw2.example.com",
];
/// Hosts notifications go to, captured by the launcher instead of being sent.
pub const NOTIFICATION_HOSTS: [&str; 3] = [
  "hooks.slack.com",
  "events.pagerduty.com",
  "hooks.example.com",
];

/// Where [`write_scripts`] put the launcher and the seed.
#[derive(Debug, Clone)]
pub struct Scripts {
  pub launcher: PathBuf,
  pub seed: PathBuf,
}

/// Write the embedded scripts into `dir` (created if missing).
pub fn write_scripts(dir: &Path) -> std::io::Result<Scripts> {
  std::fs::create_dir_all(dir)?;
  let scripts = Scripts {
    launcher: dir.join("launcher.py"),
    seed: dir.join("seed.py"),
  };
  std::fs::write(&scripts.launcher, LAUNCHER_PY)?;
  std::fs::write(&scripts.seed, SEED_PY)?;
  Ok(scripts)
}

/// Build the sandbox-backed [`Cloud`] for a server at `endpoint` (`http://127.0.0.1:PORT`).
/// `--profile` is ignored (the sandbox has its own credentials); `--region` still sets the
/// default region.
pub async fn connect(endpoint: &str, settings: &AwsSettings) -> CloudResult<Cloud> {
  // Before the SDK loads: see `aws::connect`.
  let real_http = ReqwestHttp::new()?;
  let sdk = sdk_config(endpoint, settings).await;
  let http = SandboxHttp::new(Arc::new(real_http), endpoint);
  Ok(super::cloud_from(&sdk, Arc::new(http), "sandbox"))
}

/// Who the sandbox says the caller is (moto answers `GetCallerIdentity` for its fixed account).
pub async fn caller_identity(
  endpoint: &str,
  settings: &AwsSettings,
) -> CloudResult<CallerIdentity> {
  super::sts::caller_identity(&sdk_config(endpoint, settings).await).await
}

/// The SDK configuration for the sandbox at `endpoint`: its fixed credentials and a region.
async fn sdk_config(endpoint: &str, settings: &AwsSettings) -> aws_config::SdkConfig {
  let settings = AwsSettings {
    profile: None,
    region: settings.region.clone().or_else(|| Some(REGION.to_owned())),
    endpoint_url: Some(endpoint.to_owned()),
  };
  let credentials = Credentials::new(
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    None,
    None,
    "drctl-sandbox",
  );
  // The sandbox never uses the operator's AWS credentials, whatever the environment holds.
  config::load(&settings)
    .await
    .into_builder()
    .credentials_provider(SharedCredentialsProvider::new(credentials))
    .region(Region::new(settings.region.clone().unwrap_or_default()))
    .build()
}

/// [`Http`] for the sandbox: world endpoints and notifications go to the launcher; everything
/// else passes through to the real client unchanged.
pub struct SandboxHttp {
  inner: Arc<dyn Http>,
  endpoint: String,
}

impl SandboxHttp {
  pub fn new(inner: Arc<dyn Http>, endpoint: &str) -> Self {
    Self {
      inner,
      endpoint: endpoint.trim_end_matches('/').to_owned(),
    }
  }

  /// The URL a request is sent to: rewritten for world and notification hosts.
  pub fn rewrite(&self, url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
      return url.to_owned();
    };
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
      return url.to_owned();
    }
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    // A port (`:443`) and user info do not change which host is meant.
    let host = authority
      .rsplit('@')
      .next()
      .unwrap_or(authority)
      .split(':')
      .next()
      .unwrap_or_default()
      .to_ascii_lowercase();
    let route = if WORLD_HOSTS.contains(&host.as_str()) {
      "app"
    } else if NOTIFICATION_HOSTS.contains(&host.as_str()) {
      "capture"
    } else {
      return url.to_owned();
    };
    let path = if path.starts_with('/') {
      path.to_owned()
    } else {
      format!("/{path}")
    };
    format!("{}/drctl-sandbox/{route}/{host}{path}", self.endpoint)
  }
}

#[async_trait::async_trait]
impl Http for SandboxHttp {
  async fn send(&self, request: &HttpRequest) -> CloudResult<HttpResponse> {
    let mut rewritten = request.clone();
    rewritten.url = self.rewrite(&request.url);
    self.inner.send(&rewritten).await
  }
}

/// The credentials preflight on the sandbox at `endpoint`: the same STS calls as on AWS
/// ([`super::preflight`]), answered by moto for the sandbox's fixed credentials.
pub async fn preflight(
  endpoint: &str,
  settings: &AwsSettings,
  targets: &[super::preflight::CredentialTarget],
) -> Result<Vec<CallerIdentity>, super::preflight::PreflightError> {
  super::preflight::check_trust()?;
  let deadline = tokio::time::Instant::now() + super::preflight::PREFLIGHT_DEADLINE;
  super::preflight::check(&sdk_config(endpoint, settings).await, targets, deadline)
    .await
    .map_err(|failure| {
      failure.explain(super::preflight::SourceReport {
        sources: vec![format!(
          "the sandbox's fixed credentials ({ACCESS_KEY_ID}) at {endpoint}"
        )],
        fix_missing: "restart the sandbox: `drctl sandbox down`, then `drctl sandbox up`".into(),
        fix_refused: "restart the sandbox: `drctl sandbox down`, then `drctl sandbox up`".into(),
      })
    })
}

#[cfg(test)]
mod tests {
  use super::*;

  fn http() -> SandboxHttp {
    SandboxHttp::new(
      Arc::new(ReqwestHttp::new().unwrap()),
      "http://127.0.0.1:5123/",
    )
  }

  #[test]
  fn world_hosts_go_to_the_app_route() {
    assert_eq!(
      http().rewrite("https://api.example.com/health"),
      "http://127.0.0.1:5123/drctl-sandbox/app/api.example.com/health"
    );
    assert_eq!(
      http().rewrite("https://API-USE1.example.com:443"),
      "http://127.0.0.1:5123/drctl-sandbox/app/api-use1.example.com/"
    );
    assert_eq!(
      http().rewrite("https://api-usw2.example.com/health?deep=1"),
      "http://127.0.0.1:5123/drctl-sandbox/app/api-usw2.example.com/health?deep=1"
    );
  }

  #[test]
  fn notifications_go_to_the_capture_route() {
    assert_eq!(
      http().rewrite("https://hooks.slack.com/services/T0/B0/secret"),
      "http://127.0.0.1:5123/drctl-sandbox/capture/hooks.slack.com/services/T0/B0/secret"
    );
    assert_eq!(
      http().rewrite("https://events.pagerduty.com/v2/enqueue"),
      "http://127.0.0.1:5123/drctl-sandbox/capture/events.pagerduty.com/v2/enqueue"
    );
  }

  #[test]
  fn other_urls_pass_through() {
    for url in [
      "https://example.org/health",
      "http://127.0.0.1:8080/x",
      "ftp://api.example.com/x",
      "not a url",
    ] {
      assert_eq!(http().rewrite(url), url);
    }
  }
}
