//! The credentials preflight: before a run takes its lock (and before a plan probes anything),
//! resolve the credentials once and ask STS `GetCallerIdentity` who they belong to, on the
//! REGIONAL STS endpoint of each region the run targets (`sts.REGION.amazonaws.com`: the global
//! endpoint lives in us-east-1, which may be the region being failed away from).
//!
//! What it promises:
//! * No credentials (no source produced any, an SSO session that has expired, a role that cannot
//!   be assumed) and credentials STS refuses (`ExpiredToken`, `InvalidClientTokenId`, ...) are a
//!   [`PreflightError::NoCredentials`] / [`PreflightError::Refused`]: the run must not start
//!   (exit 2), within [`PREFLIGHT_DEADLINE`] of starting to look.
//! * STS that cannot be reached or answers 5xx/throttling says nothing about the credentials:
//!   [`PreflightError::Unverified`], and the caller lets the run go on (a failover is not held
//!   back by a verification endpoint).
//! * Every message is plain lines, one fact per line, that never carry a secret: the sources
//!   looked at, what went wrong, and what to do.
//!
//! It checks a list of [`CredentialTarget`]s (credentials, region). Today a run uses one set of
//! credentials, so the list has one element per region the run targets; once runbooks can act
//! in several accounts (through roles), each (role, region) pair joins the list.

// `CloudError` is the boundary's error type, returned by value like every trait method does.
#![allow(clippy::result_large_err)]

use std::{borrow::Cow, fmt, time::Duration};

use aws_config::SdkConfig;
use aws_sdk_sts::config::{ProvideCredentials, Region, SharedCredentialsProvider};
use aws_types::os_shim_internal::{Env, Fs};

use super::{config, sts, AwsSettings};
use crate::cloud::{http::ReqwestHttp, CallerIdentity, CloudError, ErrorKind};

/// How long the preflight may take in all: resolving credentials (which may walk a profile
/// chain, read an SSO cache, ask a container or instance metadata endpoint) and every STS call.
/// The promise is an answer within 5 s; this leaves room for starting up and printing.
pub const PREFLIGHT_DEADLINE: Duration = Duration::from_secs(4);

/// Whose credentials a target is checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
  /// The credentials the configuration resolves (`--profile`/`AWS_PROFILE`, the environment,
  /// SSO, web identity, container or instance role): the ones every call of a run uses today.
  Configured,
}

/// One (credentials, region) pair a run will use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialTarget {
  pub principal: Principal,
  /// The region whose regional STS endpoint is asked; `None`: the configured default region.
  pub region: Option<String>,
}

/// Why the preflight did not confirm the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreflightError {
  /// No credentials could be resolved.
  NoCredentials {
    region: String,
    /// What the credentials provider said (its error and causes, one line).
    reason: String,
    sources: Vec<String>,
    fix: String,
  },
  /// STS answered, and refused the credentials (expired, unknown, badly signed).
  Refused {
    region: String,
    error: CloudError,
    sources: Vec<String>,
    fix: String,
  },
  /// The environment's configuration cannot be used (an `SSL_CERT_FILE` that yields no
  /// certificate): nothing was asked.
  Configuration { message: String },
  /// STS could not be asked (unreachable, 5xx, throttled, too slow): the credentials are
  /// neither confirmed nor refused.
  Unverified { region: String, reason: String },
}

impl PreflightError {
  /// Whether the run must not start (missing or refused credentials).
  pub fn blocks_run(&self) -> bool {
    !matches!(self, PreflightError::Unverified { .. })
  }
}

impl fmt::Display for PreflightError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      PreflightError::NoCredentials {
        region,
        reason,
        sources,
        fix,
      } => {
        writeln!(
          f,
          "no AWS credentials: nothing was sent to AWS (STS GetCallerIdentity in {region} \
           needs credentials)"
        )?;
        writeln!(f, "  reason: {reason}")?;
        for source in sources {
          writeln!(f, "  tried: {source}")?;
        }
        write!(f, "  to fix: {fix}")
      }
      PreflightError::Refused {
        region,
        error,
        sources,
        fix,
      } => {
        writeln!(
          f,
          "AWS refused the credentials (STS GetCallerIdentity in {region})"
        )?;
        writeln!(f, "  code: {}", error.code.as_deref().unwrap_or("none"))?;
        match (&error.code, error.http_status) {
          (Some(_), _) | (None, None) => writeln!(f, "  message: {}", error.message)?,
          // No code: the body was not an AWS error, and the SDK's account of it is no message.
          (None, Some(status)) => writeln!(f, "  message: HTTP {status} without an AWS error")?,
        }
        writeln!(
          f,
          "  request id: {}",
          error.request_id.as_deref().unwrap_or("none")
        )?;
        for source in sources {
          writeln!(f, "  tried: {source}")?;
        }
        write!(f, "  to fix: {fix}")
      }
      PreflightError::Configuration { message } => write!(f, "cannot reach AWS: {message}"),
      PreflightError::Unverified { region, reason } => write!(
        f,
        "cannot verify the AWS credentials: STS GetCallerIdentity in {region} could not be \
         asked ({reason}); going on, the run's own calls will tell"
      ),
    }
  }
}

impl std::error::Error for PreflightError {}

/// The preflight on AWS with `settings`: who the credentials act as, for each target in order.
pub async fn preflight(
  settings: &AwsSettings,
  targets: &[CredentialTarget],
) -> Result<Vec<CallerIdentity>, PreflightError> {
  check_trust()?;
  let deadline = tokio::time::Instant::now() + PREFLIGHT_DEADLINE;
  let checked = match tokio::time::timeout_at(deadline, config::load(settings)).await {
    Ok(sdk) => check(&sdk, targets, deadline).await,
    // Loading the configuration only waits on the network for a region (instance metadata).
    Err(_) => Err(Failure::Missing {
      region: settings.region.clone().unwrap_or_default(),
      reason: format!(
        "the configuration did not load within {}s (no region configured, and the instance \
         metadata service did not answer)",
        PREFLIGHT_DEADLINE.as_secs()
      ),
    }),
  };
  match checked {
    Ok(identities) => Ok(identities),
    Err(failure) => Err(failure.explain(source_report(settings).await)),
  }
}

/// Before the SDK loads: an `SSL_CERT_FILE`/`SSL_CERT_DIR` that yields no certificate is a
/// configuration error (the SDK's loader would assert on it; see `aws::connect`).
pub(crate) fn check_trust() -> Result<(), PreflightError> {
  ReqwestHttp::new()
    .map(drop)
    .map_err(|error| PreflightError::Configuration {
      message: error.message,
    })
}

/// What went wrong, before it is explained with the sources looked at.
pub(crate) enum Failure {
  Missing { region: String, reason: String },
  Refused { region: String, error: CloudError },
  Unverified { region: String, reason: String },
}

impl Failure {
  pub(crate) fn explain(self, report: SourceReport) -> PreflightError {
    match self {
      Failure::Missing { region, reason } => PreflightError::NoCredentials {
        region,
        reason,
        sources: report.sources,
        fix: report.fix_missing,
      },
      Failure::Refused { region, error } => PreflightError::Refused {
        region,
        error,
        sources: report.sources,
        fix: report.fix_refused,
      },
      Failure::Unverified { region, reason } => PreflightError::Unverified { region, reason },
    }
  }
}

/// Resolve the credentials of `sdk` once, then ask STS in each target's region, all before
/// `deadline`.
pub(crate) async fn check(
  sdk: &SdkConfig,
  targets: &[CredentialTarget],
  deadline: tokio::time::Instant,
) -> Result<Vec<CallerIdentity>, Failure> {
  let default_region = config::default_region(sdk);
  let region_of = |target: &CredentialTarget| {
    target
      .region
      .clone()
      .unwrap_or_else(|| default_region.clone())
  };
  let first_region = targets
    .first()
    .map(region_of)
    .unwrap_or_else(|| default_region.clone());
  let missing = |reason: String| Failure::Missing {
    region: first_region.clone(),
    reason,
  };
  let Some(provider) = sdk.credentials_provider() else {
    return Err(missing(
      "the configuration has no credentials provider".into(),
    ));
  };
  let credentials = match tokio::time::timeout_at(deadline, provider.provide_credentials()).await {
    Ok(Ok(credentials)) => credentials,
    Ok(Err(error)) => return Err(missing(error_chain(&error))),
    Err(_) => {
      return Err(missing(format!(
        "no source produced credentials within {}s",
        PREFLIGHT_DEADLINE.as_secs()
      )))
    }
  };
  // Resolved once: every STS call below signs with these, not with a second resolution.
  let resolved = SharedCredentialsProvider::new(credentials);
  let mut identities = Vec::with_capacity(targets.len());
  for target in targets {
    let region = region_of(target);
    // Every principal is the configured credentials today; a role would be assumed here, with
    // `resolved` as its source credentials, before asking STS who it is.
    let Principal::Configured = target.principal;
    let regional = sdk
      .to_builder()
      .region(Region::new(region.clone()))
      .credentials_provider(resolved.clone())
      .build();
    match tokio::time::timeout_at(deadline, sts::caller_identity(&regional)).await {
      Ok(Ok(identity)) => identities.push(identity),
      Ok(Err(error)) if refused(&error) => return Err(Failure::Refused { region, error }),
      Ok(Err(error)) => {
        return Err(Failure::Unverified {
          region,
          reason: unanswered(&error),
        })
      }
      Err(_) => {
        return Err(Failure::Unverified {
          region,
          reason: format!("no answer within {}s", PREFLIGHT_DEADLINE.as_secs()),
        })
      }
    }
  }
  Ok(identities)
}

/// Whether STS refused the credentials: a 4xx answer that is not throttling (`ExpiredToken`,
/// `InvalidClientTokenId`, `SignatureDoesNotMatch`, `AccessDenied`, ...).
fn refused(error: &CloudError) -> bool {
  !error.is_retryable()
    && error
      .http_status
      .is_some_and(|status| (400..500).contains(&status))
}

/// Why STS gave no verdict, in words (the SDK's own rendering of an unreadable answer may hold
/// its Debug form).
fn unanswered(error: &CloudError) -> String {
  let mut reason = match (error.kind, error.http_status) {
    (ErrorKind::Transport, _) => "the endpoint could not be reached, or did not answer".to_owned(),
    (ErrorKind::Throttling, _) => "throttled".to_owned(),
    (_, Some(status)) if status >= 500 => format!("HTTP {status} from the service"),
    (_, Some(status)) => format!("an HTTP {status} answer that is not STS's"),
    (_, None) => "the request could not be sent".to_owned(),
  };
  if let Some(code) = &error.code {
    reason.push_str(&format!(", code {code}"));
  }
  if let Some(request_id) = &error.request_id {
    reason.push_str(&format!(", request id {request_id}"));
  }
  reason
}

/// An error and its causes, joined on one line (never the Debug form).
fn error_chain(error: &dyn std::error::Error) -> String {
  let mut parts = vec![error.to_string()];
  let mut source = error.source();
  while let Some(cause) = source {
    let text = cause.to_string();
    if !parts.iter().any(|part| part.contains(&text)) {
      parts.push(text);
    }
    source = cause.source();
  }
  parts.join(": ").lines().collect::<Vec<_>>().join(" ")
}

/// Where credentials are looked for, as configured, and what to do when none work.
pub(crate) struct SourceReport {
  /// One line per source, in the order the default chain tries them.
  pub sources: Vec<String>,
  /// What to do when no source produced credentials.
  pub fix_missing: String,
  /// What to do when STS refused the credentials it got.
  pub fix_refused: String,
}

/// The kind of credentials a profile is configured for.
enum ProfileKind {
  Sso {
    session: Option<String>,
  },
  Role {
    arn: String,
  },
  StaticKeys,
  Process,
  WebIdentity,
  /// The profile exists but names no credentials.
  Empty,
}

/// The credential sources of the default chain, as this environment configures them. Names
/// variables, files, profiles and roles; never a key or a token.
pub(crate) async fn source_report(settings: &AwsSettings) -> SourceReport {
  let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
  let mut sources = Vec::new();
  sources.push(match env("AWS_ACCESS_KEY_ID") {
    Some(_) if env("AWS_SECRET_ACCESS_KEY").is_some() => {
      "environment variables: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set".to_owned()
    }
    Some(_) => {
      "environment variables: AWS_ACCESS_KEY_ID is set, AWS_SECRET_ACCESS_KEY is not".to_owned()
    }
    None => "environment variables: AWS_ACCESS_KEY_ID is not set".to_owned(),
  });
  let (profile, kind, profile_line) = profile_source(settings).await;
  sources.push(profile_line);
  sources.push(match env("AWS_WEB_IDENTITY_TOKEN_FILE") {
    Some(file) => format!(
      "web identity: token file {file}, role {}",
      env("AWS_ROLE_ARN").unwrap_or_else(|| "(AWS_ROLE_ARN not set)".into())
    ),
    None => "web identity: AWS_WEB_IDENTITY_TOKEN_FILE is not set".to_owned(),
  });
  sources.push(
    match env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
      .or_else(|| env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
    {
      Some(_) => "container role: the container credentials endpoint is configured".to_owned(),
      None => "container role: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI are not set"
        .to_owned(),
    },
  );
  sources.push(
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
      "instance role: the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED)"
        .to_owned()
    } else {
      format!(
        "instance role: the instance metadata service at {}",
        env("AWS_EC2_METADATA_SERVICE_ENDPOINT").unwrap_or_else(|| "169.254.169.254".into())
      )
    },
  );
  let choose = "choose credentials with AWS_PROFILE=NAME (or --profile NAME), or export \
                AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance or \
                container role applies";
  let (fix_missing, fix_refused) = match kind {
    Some(ProfileKind::Sso { session }) => {
      let login = match session {
        Some(session) => format!(
          "run `aws sso login --profile {profile}` (SSO session `{session}`), then run drctl \
           again"
        ),
        None => format!("run `aws sso login --profile {profile}`, then run drctl again"),
      };
      (login.clone(), login)
    }
    Some(ProfileKind::Role { arn }) => (
      format!(
        "profile `{profile}` assumes role {arn}: check that its source credentials work and may \
         assume it, or {choose}"
      ),
      format!(
        "profile `{profile}` assumes role {arn}: assume it again (its session may have \
         expired), or {choose}"
      ),
    ),
    _ => (
      choose.to_owned(),
      format!(
        "refresh or replace the credentials (a temporary session may have expired): {choose}"
      ),
    ),
  };
  SourceReport {
    sources,
    fix_missing,
    fix_refused,
  }
}

/// The profile the chain reads, what it is configured for, and its line in the report.
async fn profile_source(settings: &AwsSettings) -> (String, Option<ProfileKind>, String) {
  let files = format!(
    "{} and {}",
    std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| "~/.aws/config".into()),
    std::env::var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|_| "~/.aws/credentials".into())
  );
  let selected = settings.profile.clone().map(Cow::Owned);
  let loaded =
    aws_config::profile::load(&Fs::real(), &Env::real(), &Default::default(), selected).await;
  let profiles = match loaded {
    Ok(profiles) => profiles,
    Err(error) => {
      let name = settings.profile.clone().unwrap_or_else(|| "default".into());
      let line = format!(
        "profile `{name}` in {files}: the files cannot be read: {}",
        error_chain(&error)
      );
      return (name, None, line);
    }
  };
  let name = profiles.selected_profile().to_owned();
  let Some(profile) = profiles.get_profile(&name) else {
    return (
      name.clone(),
      None,
      format!("profile `{name}` in {files}: no such profile"),
    );
  };
  let kind = if profile.get("sso_session").is_some() || profile.get("sso_start_url").is_some() {
    ProfileKind::Sso {
      session: profile.get("sso_session").map(str::to_owned),
    }
  } else if let Some(arn) = profile.get("role_arn") {
    if profile.get("web_identity_token_file").is_some() {
      ProfileKind::WebIdentity
    } else {
      ProfileKind::Role {
        arn: arn.to_owned(),
      }
    }
  } else if profile.get("credential_process").is_some() {
    ProfileKind::Process
  } else if profile.get("aws_access_key_id").is_some() {
    ProfileKind::StaticKeys
  } else {
    ProfileKind::Empty
  };
  let what = match &kind {
    ProfileKind::Sso {
      session: Some(session),
    } => format!("SSO (session `{session}`)"),
    ProfileKind::Sso { session: None } => "SSO".to_owned(),
    ProfileKind::Role { arn } => format!("assumes role {arn}"),
    ProfileKind::StaticKeys => "access keys".to_owned(),
    ProfileKind::Process => "credential_process".to_owned(),
    ProfileKind::WebIdentity => "web identity token file".to_owned(),
    ProfileKind::Empty => "names no credentials".to_owned(),
  };
  let line = format!("profile `{name}` in {files}: {what}");
  (name, Some(kind), line)
}

/// What the shared config files say about the active profile, read from the files alone (no
/// network, no credentials resolved): for `plan`'s static-stability analysis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileFacts {
  /// The profile the chain reads.
  pub profile: String,
  /// The default region: `--region`, `AWS_REGION` / `AWS_DEFAULT_REGION`, the profile's
  /// `region`, else us-east-1 (what the SDK clients fall back to).
  pub region: String,
  /// The IAM Identity Center region the profile signs in through (`sso_region` of the profile
  /// or of its `sso_session`), when it uses SSO.
  pub sso_region: Option<String>,
}

/// [`ProfileFacts`] of `settings`.
pub async fn profile_facts(settings: &AwsSettings) -> ProfileFacts {
  read_profile_facts(settings, &Fs::real(), &Env::real()).await
}

async fn read_profile_facts(settings: &AwsSettings, fs: &Fs, env: &Env) -> ProfileFacts {
  let selected = settings.profile.clone().map(Cow::Owned);
  let loaded = aws_config::profile::load(fs, env, &Default::default(), selected).await;
  let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
    .iter()
    .filter_map(|name| env.get(name).ok())
    .find(|value| !value.is_empty());
  let mut facts = ProfileFacts {
    profile: settings.profile.clone().unwrap_or_else(|| "default".into()),
    region: settings.region.clone().or(env_region).unwrap_or_default(),
    sso_region: None,
  };
  if let Ok(profiles) = loaded {
    facts.profile = profiles.selected_profile().to_owned();
    if let Some(profile) = profiles.get_profile(&facts.profile) {
      if facts.region.is_empty() {
        facts.region = profile.get("region").unwrap_or_default().to_owned();
      }
      let session = profile
        .get("sso_session")
        .and_then(|name| profiles.sso_session(name))
        .and_then(|session| session.get("sso_region"));
      facts.sso_region = profile.get("sso_region").or(session).map(str::to_owned);
    }
  }
  if facts.region.is_empty() {
    facts.region = config::FALLBACK_REGION.to_owned();
  }
  facts
}

#[cfg(test)]
mod tests {
  use std::sync::{Arc, Mutex};

  use aws_sdk_sts::config::Credentials;
  use aws_smithy_runtime_api::{
    client::{
      http::{http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpConnector},
      orchestrator::HttpRequest,
    },
    http::{Response, StatusCode},
  };
  use aws_smithy_types::body::SdkBody;

  use super::*;

  /// An HTTP connector that records every request's URI and answers as STS does.
  #[derive(Debug, Clone, Default)]
  struct Recorder(Arc<Mutex<Vec<String>>>);

  impl HttpConnector for Recorder {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
      self.0.lock().unwrap().push(request.uri().to_owned());
      let body = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                  <GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/x</Arn>\
                  <UserId>AIDA</UserId><Account>111122223333</Account>\
                  </GetCallerIdentityResult></GetCallerIdentityResponse>";
      HttpConnectorFuture::ready(Ok(Response::new(
        StatusCode::try_from(200).unwrap(),
        SdkBody::from(body),
      )))
    }
  }

  /// Each target's region is asked on its regional endpoint, us-east-1 included (never the
  /// global `sts.amazonaws.com`, which lives in us-east-1), with credentials resolved once.
  #[tokio::test]
  async fn sts_is_asked_on_the_regional_endpoint_of_each_target() {
    let recorder = Recorder::default();
    let connector = recorder.clone();
    let settings = AwsSettings {
      region: Some("us-east-1".into()),
      ..AwsSettings::default()
    };
    let mut builder = config::load(&settings).await.into_builder();
    // No endpoint override: what AWS itself would be asked.
    builder.set_endpoint_url(None);
    let sdk = builder
      .http_client(http_client_fn(move |_, _| {
        SharedHttpConnector::new(connector.clone())
      }))
      .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
        "AKIDPREFLIGHT",
        "secret",
        None,
        None,
        "test",
      )))
      .build();
    let targets: Vec<CredentialTarget> = ["us-west-2", "us-east-1", "eu-west-1"]
      .into_iter()
      .map(|region| CredentialTarget {
        principal: Principal::Configured,
        region: Some(region.into()),
      })
      .chain([CredentialTarget {
        principal: Principal::Configured,
        region: None,
      }])
      .collect();
    let deadline = tokio::time::Instant::now() + PREFLIGHT_DEADLINE;
    let identities = check(&sdk, &targets, deadline)
      .await
      .unwrap_or_else(|_| panic!("the preflight failed"));
    assert_eq!(identities.len(), 4);
    assert_eq!(identities[0].account, "111122223333");
    let hosts: Vec<String> = recorder
      .0
      .lock()
      .unwrap()
      .iter()
      .map(|uri| {
        uri
          .trim_start_matches("https://")
          .split('/')
          .next()
          .unwrap_or_default()
          .to_owned()
      })
      .collect();
    assert_eq!(
      hosts,
      [
        "sts.us-west-2.amazonaws.com",
        "sts.us-east-1.amazonaws.com",
        "sts.eu-west-1.amazonaws.com",
        // No region named: the configured default.
        "sts.us-east-1.amazonaws.com",
      ]
    );
  }

  /// The static-stability analysis reads the SSO region from the profile, or from the
  /// `sso-session` it names, and the default region the way the SDK does.
  #[tokio::test]
  async fn profile_facts_read_the_sso_region_of_the_profile_or_its_session() {
    let config = "[profile legacy]\nsso_start_url = https://x.awsapps.com/start\n\
                  sso_region = eu-west-1\nregion = eu-central-1\n\n\
                  [profile modern]\nsso_session = corp\n\n\
                  [sso-session corp]\nsso_region = us-east-1\n\
                  sso_start_url = https://y.awsapps.com/start\n\n\
                  [profile keys]\naws_access_key_id = AKIA\n";
    let fs = Fs::from_slice(&[("/cfg", config)]);
    let env = Env::from_slice(&[
      ("AWS_CONFIG_FILE", "/cfg"),
      ("AWS_SHARED_CREDENTIALS_FILE", "/none"),
    ]);
    let facts = |profile: &str, region: Option<&str>| AwsSettings {
      profile: Some(profile.into()),
      region: region.map(str::to_owned),
      endpoint_url: None,
    };
    let legacy = read_profile_facts(&facts("legacy", None), &fs, &env).await;
    assert_eq!(legacy.sso_region.as_deref(), Some("eu-west-1"));
    assert_eq!(legacy.region, "eu-central-1");
    let modern = read_profile_facts(&facts("modern", Some("us-west-2")), &fs, &env).await;
    assert_eq!(modern.sso_region.as_deref(), Some("us-east-1"));
    assert_eq!(modern.region, "us-west-2");
    let keys = read_profile_facts(&facts("keys", None), &fs, &env).await;
    assert_eq!((keys.sso_region, keys.region.as_str()), (None, "us-east-1"));
  }
}
