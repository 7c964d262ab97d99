//! AWS errors as the user sees them: one line each, with service, operation, region, account,
//! code, AWS's whole message and the request id; never the SDK's `Debug` dump. Every endpoint
//! here is on loopback (a port nobody listens on), never AWS.

use std::process::Output;

use crate::support::{debug_syntax, refused_port, Test};

/// `drctl plan` of the shipped failover on `--aws`, every endpoint at `endpoint`, with
/// `credentials` (or none at all: no variables, no files, no instance metadata).
fn plan_aws(endpoint: &str, credentials: bool) -> Output {
  let test = Test::new();
  let home = test.path().join("home");
  std::fs::create_dir_all(&home).expect("create a home");
  for file in ["config", "credentials"] {
    std::fs::write(home.join(file), "").expect("write an empty AWS file");
  }
  let mut command = test.command([
    "plan",
    "runbooks/regional-failover.yaml",
    "-p",
    "target_region=us-west-2",
    "-p",
    &format!("public_url={endpoint}/health"),
    "--aws",
  ]);
  for name in [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  ] {
    command.env_remove(name);
  }
  command
    .env("HOME", &home)
    .env("AWS_CONFIG_FILE", home.join("config"))
    .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ENDPOINT_URL", endpoint);
  if credentials {
    command
      .env("AWS_ACCESS_KEY_ID", "testing")
      .env("AWS_SECRET_ACCESS_KEY", "testing");
  }
  command.output().expect("drctl runs")
}

/// The output lines that report an AWS call's error.
fn aws_error_lines(text: &str) -> Vec<&str> {
  text
    .lines()
    .filter(|line| {
      ["rds ", "ecs ", "route53 ", "s3 ", "cloudwatch ", "sts "]
        .iter()
        .any(|service| line.contains(service))
        && line.contains("account ")
    })
    .collect()
}

/// Everything the user sees holds no `Debug` dump, and no line is a novel.
fn assert_readable(output: &Output) -> String {
  let text = format!(
    "{}{}",
    String::from_utf8_lossy(&output.stdout),
    String::from_utf8_lossy(&output.stderr)
  );
  let found = debug_syntax(&text);
  assert!(found.is_empty(), "Debug syntax {found:?} in:\n{text}");
  for line in text.lines() {
    assert!(line.len() < 1000, "a {}-byte line:\n{line}", line.len());
  }
  text
}

#[test]
fn plan_against_a_refused_endpoint_names_the_host_on_one_line_per_error() {
  let port = refused_port();
  let output = plan_aws(&format!("http://127.0.0.1:{port}"), true);
  let text = assert_readable(&output);
  let lines = aws_error_lines(&text);
  assert!(!lines.is_empty(), "no AWS error shown:\n{text}");
  for line in lines {
    assert!(
      line.contains(&format!("127.0.0.1:{port}: connection refused")),
      "{line}"
    );
    assert!(
      line.contains("(us-west-2, account unknown)")
        || line.contains("(us-east-1, account unknown)"),
      "{line}"
    );
  }
}

/// Without credentials the preflight stops the plan before any probe: one readable message
/// (one fact per line, no `Debug` dump), exit 2, and no step's call was attempted.
#[test]
fn plan_without_credentials_stops_at_the_preflight_on_readable_lines() {
  let port = refused_port();
  let output = plan_aws(&format!("http://127.0.0.1:{port}"), false);
  let text = assert_readable(&output);
  assert_eq!(output.status.code(), Some(2), "{text}");
  assert!(text.contains("error: no AWS credentials"), "{text}");
  assert!(text.contains("to fix: "), "{text}");
  let lines = aws_error_lines(&text);
  assert!(
    lines.is_empty(),
    "a probe ran without credentials: {lines:?}"
  );
}

/// A wait the step's timeout ends says what it was waiting on, in the error itself (the
/// journal, `drctl status`, reports), not only in the progress lines that scrolled by.
#[test]
fn a_step_timeout_names_what_the_step_last_saw() {
  let test = Test::new().file(
    "waits.yaml",
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: waits }\nsteps:\n  \
     - id: wait-primary\n    action: http.check\n    \
     with: { url: \"https://api-use1.example.com/health\", expect_status: 418, within: 10m }\n    \
     timeout: 1m\n    retry: { attempts: 1 }\n",
  );
  let run = test
    .run_args(["run", "waits.yaml", "--sim", "--yes", "--time-scale", "600"])
    .status(1);
  let expected = "timed out after 1m (the step's timeout); last seen: GET \
                  https://api-use1.example.com/health: status 200, expected 418";
  let shown = format!("{}{}", run.stdout(), run.stderr());
  assert!(shown.contains(expected), "{shown}");
  let id = test.run_ids().pop().unwrap();
  let report = test.run_args(["report", &id, "--format", "json"]).status(0);
  let report: serde_json::Value = serde_json::from_str(&report.stdout()).unwrap();
  assert_eq!(report["steps"][0]["error"]["message"], expected, "{report}");
}
