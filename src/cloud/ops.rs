//! The table of AWS operations drctl calls: one constant per operation. Each service family
//! keeps its own in its folder (`cloud/<family>/mod.rs`, `pub mod ops`, re-exported here under
//! the family's name); STS's call, which belongs to no family, is here.
//!
//! Everything that needs to know about an operation reads it here: the client layer's rate
//! limit family and per-call retry rule ([`super::limiter`]), the actions' lists of the
//! operations they may send that change the world (the dry-run guard), the simulator's fault
//! and rate-limit matching, the sandbox's recorder checks and the fault proxy in the tests.
//! An operation's name is written once, in its constant; everything else refers to it.
//!
//! The resource templates are the AWS Service Authorization Reference's ARN formats of the
//! resource type each action acts on (`"*"` where the action supports no resource-level
//! permission), for deriving an IAM policy from a runbook.

use std::fmt;

/// Whether an operation changes the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
  /// Read-only: `plan` and `--dry-run` may call it.
  Read,
  /// Changes the world: refused by a dry run and by a closed mutation fence.
  Mutate,
}

/// Which errors the client layer may follow with another attempt of the same call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
  /// Any retryable error (throttling, 5xx, transport): asking again changes nothing.
  OnAnyRetryable,
  /// Only throttling: the service refused the request before it took effect. After a 5xx or a
  /// transport failure the effect may be in place, so the engine observes before applying again.
  OnThrottleOnly,
}

/// Control plane (creates, changes and describes resources; what a regional outage or an
/// impaired control plane takes away) or data plane (the resource's own traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
  Control,
  Data,
}

/// Where the operation's endpoint lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
  /// One endpoint per region; the call names its region.
  Regional,
  /// One endpoint for the partition, served from `home`.
  Global { home: &'static str },
}

/// One AWS API operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
  /// The service family as errors and logs name it: `rds`, `ecs`, `route53`, `s3`,
  /// `cloudwatch`, `sts`.
  pub service: &'static str,
  /// The API operation as AWS names it: `PromoteReadReplica`.
  pub name: &'static str,
  pub access: Access,
  /// The IAM action that authorizes it: `rds:PromoteReadReplica`.
  pub iam: &'static str,
  /// The client-side rate-limit family it counts against ([`super::limiter::FAMILIES`]);
  /// `None`: not limited.
  pub family: Option<&'static str>,
  pub retry: Retry,
  /// ARN template of the resources it acts on, or `"*"`.
  pub resource: &'static str,
  pub plane: Plane,
  pub endpoint: Endpoint,
}

impl Op {
  pub fn is_mutating(&self) -> bool {
    self.access == Access::Mutate
  }
}

impl fmt::Display for Op {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(self.name)
  }
}

/// A read of a regional service's control plane, in rate-limit family `family`.
pub const fn read(
  service: &'static str,
  name: &'static str,
  iam: &'static str,
  family: Option<&'static str>,
  resource: &'static str,
) -> Op {
  Op {
    service,
    name,
    access: Access::Read,
    iam,
    family,
    retry: Retry::OnAnyRetryable,
    resource,
    plane: Plane::Control,
    endpoint: Endpoint::Regional,
  }
}

/// A mutating call of a regional service's control plane, in rate-limit family `family`.
pub const fn mutate(
  service: &'static str,
  name: &'static str,
  iam: &'static str,
  family: Option<&'static str>,
  resource: &'static str,
) -> Op {
  Op {
    service,
    name,
    access: Access::Mutate,
    iam,
    family,
    retry: Retry::OnThrottleOnly,
    resource,
    plane: Plane::Control,
    endpoint: Endpoint::Regional,
  }
}

/// The same operation on a global endpoint served from `home`.
pub const fn global(op: Op, home: &'static str) -> Op {
  Op {
    endpoint: Endpoint::Global { home },
    ..op
  }
}

/// The same operation on the data plane.
pub const fn data(op: Op) -> Op {
  Op {
    plane: Plane::Data,
    ..op
  }
}

// The first families keep their operations in their own folders (`cloud/<family>/mod.rs`,
// `pub mod ops`); the table reads them under the family's name here, as it does every family's.
pub use super::{
  cloudwatch::ops as cloudwatch, ecs::ops as ecs, rds::ops as rds, route53::ops as route53,
  s3::ops as s3,
};

/// AWS STS: who the credentials belong to. The SDK sends it to the default region's STS
/// endpoint (regional endpoints are the SDK's default).
pub mod sts {
  use super::{read, Op};

  /// Needs no permission (an explicit deny cannot block it); `*` in IAM terms.
  pub const GET_CALLER_IDENTITY: Op = read(
    "sts",
    "GetCallerIdentity",
    "sts:GetCallerIdentity",
    None,
    "*",
  );

  pub const ALL: &[&Op] = &[&GET_CALLER_IDENTITY];
}

/// [`FAMILIES`]: each service family's operations (`cloud/<family>/mod.rs`, its `ops::ALL`), then
/// the calls that belong to no provider trait of their own.
macro_rules! families {
  ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
    /// Every family's operations: the table.
    pub const FAMILIES: &[&[&Op]] = &[$(super::$family::ops::ALL,)* sts::ALL];
  };
}

super::with_families!(families);

/// Every operation drctl calls.
pub fn all() -> impl Iterator<Item = &'static Op> {
  FAMILIES.iter().flat_map(|family| family.iter().copied())
}

/// The operation `service` `name`, if drctl calls it.
pub fn find(service: &str, name: &str) -> Option<&'static Op> {
  all().find(|op| op.service == service && op.name == name)
}

/// The operation named `name` in any service (names are unique across the table).
pub fn named(name: &str) -> Option<&'static Op> {
  all().find(|op| op.name == name)
}

/// Every operation that changes the world.
pub fn mutating() -> impl Iterator<Item = &'static Op> {
  all().filter(|op| op.is_mutating())
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn names_are_unique_and_consistent() {
    let mut names: Vec<&str> = all().map(|op| op.name).collect();
    let count = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "an operation name appears twice");
    for op in all() {
      assert_eq!(find(op.service, op.name), Some(op));
      assert_eq!(op.retry == Retry::OnThrottleOnly, op.is_mutating(), "{op}");
      assert!(op.iam.contains(':'), "{op}");
      assert!(
        op.resource == "*" || op.resource.starts_with("arn:${Partition}:"),
        "{op}"
      );
      if let Some(family) = op.family {
        assert!(
          super::super::limiter::aws_default(family).is_some(),
          "{op}: unknown family {family}"
        );
      }
    }
    assert_eq!(find("ecs", "Nope"), None);
  }

  #[test]
  fn route53_is_global_in_us_east_1() {
    for op in route53::ALL {
      assert_eq!(op.endpoint, Endpoint::Global { home: "us-east-1" }, "{op}");
      assert_eq!(op.plane, Plane::Control, "{op}");
    }
    assert_eq!(
      cloudwatch::GET_METRIC_STATISTICS.endpoint,
      Endpoint::Regional
    );
  }

  /// Every `.rs` file under `src/`, with its path relative to the crate.
  pub(crate) fn source_files() -> Vec<(String, String)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
      for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
          walk(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
          out.push(path);
        }
      }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    walk(&root.join("src"), &mut paths);
    paths.sort();
    paths
      .into_iter()
      .map(|path| {
        let text = std::fs::read_to_string(&path).unwrap();
        let relative = path.strip_prefix(root).unwrap().display().to_string();
        (relative, text)
      })
      .collect()
  }

  /// An operation's name is written once, in this table: no other file under `src/` (test
  /// modules included) holds it as a string literal. Where a test must assert a rendered name it
  /// asserts the whole rendered text, which is not the bare literal.
  #[test]
  fn no_operation_name_is_written_outside_the_table() {
    let mut found = Vec::new();
    for (path, text) in source_files() {
      if path == "src/cloud/ops.rs" {
        continue;
      }
      // A family may keep its operations in its own folder: `pub mod ops { .. }` of its mod.rs.
      let text = family_ops_removed(&text);
      for op in all() {
        let literal = format!("\"{}\"", op.name);
        for (number, line) in text.lines().enumerate() {
          if line.contains(&literal) {
            found.push(format!("{path}:{}: {}", number + 1, line.trim()));
          }
        }
      }
    }
    assert!(
      found.is_empty(),
      "operation names outside the table (use the `ops` constant):\n{}",
      found.join("\n")
    );
  }

  /// `text` without its top-level `pub mod ops { .. }` block (a family's operation table).
  fn family_ops_removed(text: &str) -> String {
    match text.find("\npub mod ops {\n") {
      Some(start) => match text[start..].find("\n}\n") {
        Some(end) => format!("{}{}", &text[..start], &text[start + end + 2..]),
        None => text.to_string(),
      },
      None => text.to_string(),
    }
  }

  /// Whether `line` uses a crate whose name starts with `prefix` as a path (`aws_config::`,
  /// `use aws_sdk_rds::...`), not in a string (a log target such as `"aws_config::imds"`).
  fn names_crate(line: &str, prefix: &str) -> bool {
    line.match_indices(prefix).any(|(at, _)| {
      let before = line[..at].chars().next_back();
      let rest = &line[at..];
      let ident = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(rest, |end| &rest[..end]);
      !before.is_some_and(|c| c == '"' || c == ':' || c == '_' || c.is_ascii_alphanumeric())
        && rest[ident.len()..].starts_with("::")
    })
  }

  #[test]
  fn a_crate_path_is_told_from_a_string() {
    assert!(names_crate("use aws_sdk_rds::Client;", "aws_sdk_"));
    assert!(names_crate(
      "  let x = aws_config::load().await;",
      "aws_config"
    ));
    assert!(!names_crate("target: \"aws_config::imds\",", "aws_config"));
    assert!(!names_crate("let aws_config = file.aws;", "aws_config"));
  }

  /// The AWS SDK crates are imported only by the SDK plumbing (`src/cloud/aws/`) and the
  /// families' adapters (`src/cloud/<family>/aws.rs`); everything else sees domain types.
  #[test]
  fn the_sdk_is_imported_only_by_the_aws_adapters() {
    let crates = [
      "aws_sdk_",
      "aws_config",
      "aws_smithy",
      "aws_types",
      "aws_credential_types",
    ];
    let mut found = Vec::new();
    for (path, text) in source_files() {
      let adapter = path.starts_with("src/cloud/aws/")
        || (path.starts_with("src/cloud/") && path.ends_with("/aws.rs"));
      // This file names the crates in this test and its examples.
      if adapter || path == "src/cloud/ops.rs" {
        continue;
      }
      for (number, line) in text.lines().enumerate() {
        if crates.iter().any(|name| names_crate(line, name)) {
          found.push(format!("{path}:{}: {}", number + 1, line.trim()));
        }
      }
    }
    assert!(
      found.is_empty(),
      "the SDK outside the adapters:\n{}",
      found.join("\n")
    );
  }
}
