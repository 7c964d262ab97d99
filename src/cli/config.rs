//! `drctl.yaml` and the typed configuration the commands run with. What the user typed (clap
//! structs) becomes a [`Config`] once; nothing downstream looks at raw flags.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `drctl.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
  /// Directory of runbooks (default `runbooks`).
  pub runbooks: Option<PathBuf>,
  /// State directory (default `.drctl`), or `s3://bucket/prefix` for a shared state.
  pub state: Option<String>,
  /// Default backend: `sim` (default), `aws` or `sandbox`.
  pub backend: Option<String>,
  /// What `drctl failover REGION` runs.
  pub failover: Option<FailoverConfig>,
  /// Settings for the `aws` backend.
  pub aws: Option<AwsConfig>,
  /// Client-side API rate limits per API family (`route53`, `rds`, `ecs.read`, `ecs.write`,
  /// `cloudwatch`): `{ rate, burst }`, a bare rate, or `off`. Families not named keep AWS's
  /// documented defaults (see `cloud::limiter`).
  #[serde(default)]
  pub rate_limits: std::collections::BTreeMap<String, crate::cloud::LimitSetting>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
  /// Runbook path (default `<runbooks>/regional-failover.yaml`).
  pub runbook: Option<PathBuf>,
  /// The parameter REGION binds to (default `target_region`).
  pub param: Option<String>,
  /// Extra parameters.
  #[serde(default)]
  pub params: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
  pub profile: Option<String>,
  pub region: Option<String>,
  pub endpoint_url: Option<String>,
}

/// Read `drctl.yaml`: the explicit `--config` path must exist; the default one may not.
pub fn read_config(path: Option<&Path>) -> Result<(ConfigFile, PathBuf), String> {
  let (path, required) = match path {
    Some(path) => (path.to_path_buf(), true),
    None => (PathBuf::from("drctl.yaml"), false),
  };
  let text = match std::fs::read_to_string(&path) {
    Ok(text) => text,
    Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {
      return Ok((ConfigFile::default(), path))
    }
    Err(err) => return Err(format!("{}: {err}", path.display())),
  };
  let config: ConfigFile = serde_yaml::from_str(&text).map_err(|err| match err.location() {
    Some(at) => format!("{}:{}:{}: {err}", path.display(), at.line(), at.column()),
    None => format!("{}: {err}", path.display()),
  })?;
  Ok((config, path))
}
