//! STS: who the credentials belong to. AWS answers `GetCallerIdentity` for any valid
//! credentials, whatever the IAM policies say (an explicit deny cannot block it), so the call
//! needs no permission and also shows that the credentials work.

use aws_config::SdkConfig;

use super::{config::default_region, errors::cloud_error};
use crate::cloud::{CallerIdentity, CloudError, CloudResult, ErrorKind};

use crate::cloud::ops::sts::GET_CALLER_IDENTITY;

/// The account and ARN the credentials of `sdk` act as.
pub(crate) async fn caller_identity(sdk: &SdkConfig) -> CloudResult<CallerIdentity> {
  let output = aws_sdk_sts::Client::new(sdk)
    .get_caller_identity()
    .send()
    .await
    .map_err(|error| cloud_error(&GET_CALLER_IDENTITY, sdk, &default_region(sdk), error))?;
  match (output.account, output.arn) {
    (Some(account), Some(arn)) => Ok(CallerIdentity { account, arn }),
    _ => Err(CloudError::new(
      ErrorKind::Server,
      GET_CALLER_IDENTITY.service,
      GET_CALLER_IDENTITY.name,
      "the answer names no account or ARN",
    )),
  }
}
