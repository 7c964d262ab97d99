//! One conversion from any SDK error into a [`CloudError`], keeping what the retry policy and
//! the operator need: the service's error code, the HTTP status, the request id and the kind.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};
use aws_smithy_types::error::{display::DisplayErrorContext, metadata::ProvideErrorMetadata};
use aws_types::request_id::RequestId;

use crate::cloud::{CloudError, ErrorKind};

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

/// Convert any SDK error into a [`CloudError`] for `service` / `operation`.
pub(crate) fn cloud_error<E>(
  service: &str,
  operation: &str,
  error: SdkError<E, HttpResponse>,
) -> CloudError
where
  E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
  let status = error
    .raw_response()
    .map(|response| response.status().as_u16());
  let request_id = error
    .meta()
    .request_id()
    .or_else(|| error.request_id())
    .map(str::to_owned);
  let code = error.code().map(str::to_owned);
  let message = error
    .message()
    .map(str::to_owned)
    .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
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
  let mut converted = CloudError::new(kind, service, operation, message);
  converted.code = code;
  converted.http_status = status;
  converted.request_id = request_id;
  converted
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
  service: &str,
  operation: &str,
  error: aws_smithy_types::error::operation::BuildError,
) -> CloudError {
  CloudError::new(ErrorKind::Client, service, operation, error.to_string())
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
