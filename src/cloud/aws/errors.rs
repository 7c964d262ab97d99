//! One conversion from any SDK error into a [`CloudError`], keeping what the retry policy and
//! the operator need: the service's error code, the HTTP status, the request id, the kind, the
//! region and (when the error says) the account.
//!
//! The message is AWS's own, whole. An error AWS did not answer (a refused connection, a
//! timeout, a failed DNS lookup, missing credentials) gets one sentence naming the endpoint host
//! and what happened, built from the error chain's `Display`s. The SDK's `Debug` form of the
//! error, kilobytes of nested structs, goes only to the debug log (`DRCTL_LOG=debug`).

use std::error::Error as StdError;

use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;

use super::config::endpoint_host;
use crate::cloud::{ops::Op, CloudError, ErrorKind, ATTEMPT_TIMEOUT};

/// Error codes AWS services use to ask the caller to slow down.
const THROTTLING_CODES: &[&str] = &[
  "Throttling",
  "ThrottlingException",
  "ThrottledException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "RequestThrottled",
  "RequestThrottledException",
  "SlowDown",
  "PriorRequestNotComplete",
  "Rate exceeded",
];

/// Convert any SDK error of a call of `op` in `region` (through `sdk`'s
/// endpoints) into a [`CloudError`].
pub(crate) fn cloud_error<E>(
  op: &Op,
  sdk: &SdkConfig,
  region: &str,
  error: SdkError<E, HttpResponse>,
) -> CloudError
where
  E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
  let host = endpoint_host(sdk, op.service, region);
  cloud_error_at(op, &host, region, error)
}

/// [`cloud_error`] for a client whose endpoint `host` is already known.
pub(crate) fn cloud_error_at<E>(
  op: &Op,
  host: &str,
  region: &str,
  error: SdkError<E, HttpResponse>,
) -> CloudError
where
  E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
  let (service, operation) = (op.service, op.name);
  tracing::debug!(service, operation, region, "AWS error in full: {error:?}");
  let status = error
    .raw_response()
    .map(|response| response.status().as_u16());
  let request_id = error
    .meta()
    .request_id()
    .or_else(|| error.request_id())
    .map(str::to_owned);
  let code = error.code().map(str::to_owned);
  let message = match error.message() {
    Some(message) => message.to_owned(),
    None => unanswered(&error, host),
  };
  let kind = match &error {
    SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => ErrorKind::Transport,
    SdkError::ConstructionFailure(_) => ErrorKind::Client,
    // A response arrived but could not be read: the transport broke it, or the server sent
    // something that is not the service's answer (a 5xx page from a proxy).
    SdkError::ResponseError(_) => match status {
      Some(status) if (400..500).contains(&status) => ErrorKind::Client,
      Some(status) if status >= 500 => ErrorKind::Server,
      _ => ErrorKind::Transport,
    },
    _ => classify(code.as_deref(), status),
  };
  let account = account_in(&message);
  let mut converted = CloudError::new(kind, service, operation, message).with_region(region);
  converted.code = code;
  converted.http_status = status;
  converted.request_id = request_id;
  converted.account = account;
  converted
}

/// What happened to a call that has no message from AWS, in one sentence naming `host`.
fn unanswered<E>(error: &SdkError<E, HttpResponse>, host: &str) -> String
where
  E: StdError + 'static,
{
  match error {
    SdkError::TimeoutError(_) => format!(
      "{host}: timed out after {}s without a complete answer",
      ATTEMPT_TIMEOUT.as_secs()
    ),
    SdkError::DispatchFailure(failure) => {
      let what = chain(error);
      if let Some(credentials) = find::<CredentialsError>(error) {
        // Nothing was sent: the request could not be signed.
        format!("no usable credentials: {}", chain(credentials))
      } else if failure.is_timeout() {
        format!("{host}: timed out ({what})")
      } else if let Some(io) = find::<std::io::Error>(error) {
        match io.kind() {
          std::io::ErrorKind::ConnectionRefused => format!("{host}: connection refused"),
          std::io::ErrorKind::ConnectionReset => format!("{host}: connection reset"),
          std::io::ErrorKind::TimedOut => format!("{host}: timed out ({what})"),
          _ => format!("{host}: {what}"),
        }
      } else {
        format!("{host}: {what}")
      }
    }
    SdkError::ResponseError(_) => format!("{host}: the answer could not be read: {}", chain(error)),
    SdkError::ServiceError(_) => format!("{host}: an error answer naming no message"),
    _ => chain(error),
  }
}

/// The `Display`s of the error and its sources, joined with `: `, skipping the SDK's generic
/// wrappers (`dispatch failure`, `io error`) and any text its source repeats.
fn chain(error: &(dyn StdError + 'static)) -> String {
  const WRAPPERS: &[&str] = &[
    "dispatch failure",
    "failed to construct request",
    "request has timed out",
    "response error",
    "service error",
    "io error",
    "timeout",
    "other",
    "user error",
  ];
  let mut parts: Vec<String> = Vec::new();
  let mut next = Some(error);
  while let Some(current) = next {
    let text = crate::cloud::one_line(&current.to_string());
    let seen = parts
      .last()
      .is_some_and(|last| last.contains(text.as_str()));
    if !text.is_empty() && !WRAPPERS.contains(&text.as_str()) && !seen {
      parts.push(text);
    }
    next = current.source();
  }
  if parts.is_empty() {
    "no detail given".to_owned()
  } else {
    parts.join(": ")
  }
}

/// The first error of type `T` in the chain: an `io::Error` is the operating system's reason
/// a connection failed, a `CredentialsError` says that no credentials could be found.
fn find<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
  let mut next = Some(error);
  while let Some(current) = next {
    if let Some(found) = current.downcast_ref::<T>() {
      return Some(found);
    }
    next = current.source();
  }
  None
}

/// The account of the first ARN in `message` (an `AccessDenied` message names the caller:
/// `User: arn:aws:sts::123456789012:assumed-role/...`).
fn account_in(message: &str) -> Option<String> {
  message.match_indices("arn:").find_map(|(at, _)| {
    let account = message[at..].split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|byte| byte.is_ascii_digit()))
      .then(|| account.to_owned())
  })
}

/// The kind of a service error from its code and HTTP status.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
  if let Some(code) = code {
    if THROTTLING_CODES.contains(&code) {
      return ErrorKind::Throttling;
    }
  }
  if status.is_some_and(|status| status == 429) {
    return ErrorKind::Throttling;
  }
  if status.is_some_and(|status| status >= 500) {
    return ErrorKind::Server;
  }
  match code {
    Some(code) if code.contains("NotFound") || code.starts_with("NoSuch") => ErrorKind::NotFound,
    Some(code) if code.starts_with("Invalid") && code.contains("State") => ErrorKind::InvalidState,
    // `HeadObject` answers a missing key with a bare 404: no body, so no code.
    None if status == Some(404) => ErrorKind::NotFound,
    _ => ErrorKind::Client,
  }
}

/// A request the SDK refused to build (a required field missing). Never retryable.
pub(crate) fn build_error(
  op: &Op,
  region: &str,
  error: aws_smithy_types::error::operation::BuildError,
) -> CloudError {
  CloudError::new(ErrorKind::Client, op.service, op.name, chain(&error)).with_region(region)
}

/// `Ok(None)` for a not-found error, so `describe_*` can report absence.
pub(crate) fn absent_if_not_found<T>(
  result: Result<T, CloudError>,
) -> Result<Option<T>, CloudError> {
  match result {
    Ok(value) => Ok(Some(value)),
    Err(error) if error.kind == ErrorKind::NotFound => Ok(None),
    Err(error) => Err(error),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn the_account_comes_from_an_arn_in_the_message_or_stays_unknown() {
    assert_eq!(
      account_in(
        "User: arn:aws:sts::123456789012:assumed-role/oncall/alice is not authorized to perform: rds:PromoteReadReplica"
      )
      .as_deref(),
      Some("123456789012")
    );
    assert_eq!(account_in("arn:aws:route53:::hostedzone/Z1"), None);
    assert_eq!(account_in("Rate exceeded"), None);
  }

  #[test]
  fn codes_and_statuses_map_to_kinds() {
    assert_eq!(
      classify(Some("Throttling"), Some(400)),
      ErrorKind::Throttling
    );
    assert_eq!(classify(Some("SlowDown"), Some(503)), ErrorKind::Throttling);
    assert_eq!(
      classify(Some("Rate exceeded"), Some(400)),
      ErrorKind::Throttling
    );
    assert_eq!(classify(None, Some(429)), ErrorKind::Throttling);
    assert_eq!(
      classify(Some("InternalFailure"), Some(500)),
      ErrorKind::Server
    );
    assert_eq!(
      classify(Some("DBInstanceNotFound"), Some(404)),
      ErrorKind::NotFound
    );
    assert_eq!(classify(Some("NoSuchKey"), Some(404)), ErrorKind::NotFound);
    assert_eq!(classify(None, Some(404)), ErrorKind::NotFound);
    assert_eq!(
      classify(Some("InvalidDBInstanceState"), Some(400)),
      ErrorKind::InvalidState
    );
    assert_eq!(classify(Some("AccessDenied"), Some(403)), ErrorKind::Client);
    assert_eq!(
      classify(Some("InvalidParameterValue"), Some(400)),
      ErrorKind::Client
    );
  }
}
