//! The credentials preflight: before a run takes its lock (and before a plan probes), drctl
//! resolves the credentials once and asks STS `GetCallerIdentity` in the target region.
//! Missing or refused credentials are exit 2 within 5 s, with one readable message.
//!
//! # Zero connections outside loopback, asserted
//!
//! Every endpoint the SDK may call is pointed at a loopback fake ([`FakeAws`]): STS
//! (`AWS_ENDPOINT_URL_STS`), the instance metadata service
//! (`AWS_EC2_METADATA_SERVICE_ENDPOINT`), SSO and SSO OIDC (`AWS_ENDPOINT_URL_SSO[_OIDC]`), with
//! `AWS_CONFIG_FILE`/`AWS_SHARED_CREDENTIALS_FILE`/`HOME` in a temporary directory. Two checks
//! would catch a regression that reached out anyway:
//! * the fakes must see the requests the chain makes (the metadata fake is asked, STS is asked
//!   or not as expected): an override the SDK stopped honouring leaves its fake silent;
//! * the binary runs under `strace -e trace=connect` (`.ci/test` installs strace), and every
//!   `connect()` of an IP socket must be to 127.0.0.0/8 or ::1. Resolving `sts.amazonaws.com`
//!   (a connect to the DNS server) or reaching `169.254.169.254` fails the test.

use std::{
  path::Path,
  process::{Command, Stdio},
  time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{
  fake_aws::{signed_region, Answer, FakeAws},
  Run, Test, BIN,
};

/// The issue's acceptance line: an answer within 5 s (a promise, not a benchmark).
const WITHIN: Duration = Duration::from_secs(5);

/// Variables of the parent's environment that could hand the child credentials or endpoints.
const INHERITED_AWS: [&str; 12] = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_DEFAULT_PROFILE",
  "AWS_ENDPOINT_URL",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_ROLE_ARN",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_EC2_METADATA_DISABLED",
  "DRCTL_LOG",
];

/// The loopback fakes of one test and the environment that points the SDK at them.
struct Fakes {
  sts: FakeAws,
  imds: FakeAws,
  sso: FakeAws,
  home: tempfile::TempDir,
  env: Vec<(String, String)>,
}

impl Fakes {
  fn new(sts: Vec<Answer>) -> Fakes {
    let sts = FakeAws::start(sts);
    // The metadata service of a machine that is not an EC2 instance: nothing there.
    let imds = FakeAws::start(vec![Answer::status(404)]);
    let sso = FakeAws::start(vec![Answer {
      status: 400,
      content_type: "application/json",
      body: "{\"error\":\"invalid_grant\",\"error_description\":\"the refresh token expired\"}"
        .into(),
      headers: vec![
        "x-amzn-errortype: InvalidGrantException".into(),
        "x-amzn-RequestId: req-sso-3".into(),
      ],
    }]);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    let config = home.path().join(".aws/config");
    let credentials = home.path().join(".aws/credentials");
    std::fs::write(&config, "").unwrap();
    std::fs::write(&credentials, "").unwrap();
    let env = vec![
      ("HOME".into(), home.path().display().to_string()),
      ("AWS_CONFIG_FILE".into(), config.display().to_string()),
      (
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        credentials.display().to_string(),
      ),
      ("AWS_REGION".into(), "us-east-1".into()),
      ("AWS_ENDPOINT_URL_STS".into(), sts.url()),
      ("AWS_ENDPOINT_URL_SSO".into(), sso.url()),
      ("AWS_ENDPOINT_URL_SSO_OIDC".into(), sso.url()),
      ("AWS_EC2_METADATA_SERVICE_ENDPOINT".into(), imds.url()),
    ];
    Fakes {
      sts,
      imds,
      sso,
      home,
      env,
    }
  }

  fn set(&mut self, key: &str, value: &str) {
    self.env.push((key.into(), value.into()));
  }

  /// A config file holding `text`.
  fn config(&self, text: &str) {
    std::fs::write(self.home.path().join(".aws/config"), text).unwrap();
  }
}

/// What a run under the fakes did: its output, how long it took, and its `connect()`s of IP
/// sockets (`None` when strace is not installed).
struct Traced {
  run: Run,
  took: Duration,
  connects: Option<Connects>,
}

/// The `connect()`s of IP sockets in an strace log.
struct Connects {
  /// How many there were in all.
  total: usize,
  /// The lines of those to an address outside loopback.
  outside_loopback: Vec<String>,
}

fn strace_available() -> bool {
  Command::new("strace")
    .arg("-V")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .status()
    .is_ok_and(|status| status.success())
}

/// Run drctl in `test`'s directory with only the fakes' environment for AWS.
fn run(test: &Test, fakes: &Fakes, args: &[&str]) -> Traced {
  let trace = test.path().join("connect.trace");
  let traced = strace_available();
  let mut command = if traced {
    let mut command = Command::new("strace");
    command
      .args(["-f", "-qq", "-e", "trace=connect", "-o"])
      .arg(&trace)
      .arg(BIN);
    command
  } else {
    Command::new(BIN)
  };
  command
    .args(args)
    .current_dir(test.path())
    .env("NO_COLOR", "1")
    .stdin(Stdio::null());
  for name in INHERITED_AWS {
    command.env_remove(name);
  }
  for (key, value) in &fakes.env {
    command.env(key, value);
  }
  let started = Instant::now();
  let output = command.output().expect("drctl runs");
  let took = started.elapsed();
  Traced {
    run: Run(output),
    took,
    connects: traced.then(|| connects(&trace)),
  }
}

/// Every `connect()` of an IP socket in an strace log, and those outside loopback.
fn connects(trace: &Path) -> Connects {
  let log = std::fs::read_to_string(trace).unwrap_or_default();
  let addresses: Vec<(&str, &str)> = log
    .lines()
    .filter(|line| line.contains("connect("))
    .filter_map(|line| {
      let address = if line.contains("AF_INET6") {
        line
          .split("inet_pton(AF_INET6, \"")
          .nth(1)?
          .split('"')
          .next()?
      } else if line.contains("AF_INET") {
        line.split("inet_addr(\"").nth(1)?.split('"').next()?
      } else {
        return None;
      };
      Some((line, address))
    })
    .collect();
  Connects {
    total: addresses.len(),
    outside_loopback: addresses
      .iter()
      .filter(|(_, address)| {
        !(address.starts_with("127.") || *address == "::1" || address.starts_with("::ffff:127."))
      })
      .map(|(line, _)| (*line).to_owned())
      .collect(),
  }
}

/// Every connection the run opened was to loopback, and (so that the trace is known to work)
/// it opened at least one: each test's run asks one of its fakes something.
fn assert_only_loopback(traced: &Traced) {
  let connects = traced.connects.as_ref().unwrap_or_else(|| {
    panic!(
      "the loopback check needs `strace` (Debian's strace package); `.ci/test` installs it \
       (apt-get install -y strace)"
    )
  });
  assert!(connects.total > 0, "strace saw no connect() at all");
  assert!(
    connects.outside_loopback.is_empty(),
    "connections outside 127.0.0.0/8:\n{}",
    connects.outside_loopback.join("\n")
  );
}

/// Nothing of a run was written: no run directory, no lock.
fn assert_nothing_started(test: &Test) {
  assert!(
    test.run_ids().is_empty(),
    "a run was started: {:?}",
    test.run_ids()
  );
  let locks = test.path().join(".drctl/locks");
  let held = std::fs::read_dir(&locks)
    .map(|entries| entries.count())
    .unwrap_or(0);
  assert_eq!(held, 0, "a lock was taken in {}", locks.display());
}

/// No credentials anywhere: `failover --aws` and `plan --aws` stop with exit 2 within 5 s,
/// naming every source looked at and what to do, before the lock and before any AWS call.
#[test]
fn no_credentials_exit_2_within_5s_naming_the_sources() {
  let fakes = Fakes::new(vec![Answer::caller_identity("210987654321")]);
  let test = Test::new();
  let traced = run(&test, &fakes, &["--aws", "failover", "us-west-2", "--yes"]);
  let stderr = traced.run.stderr();
  assert_eq!(traced.run.code(), 2, "{stderr}");
  assert!(traced.took < WITHIN, "took {:?}: {stderr}", traced.took);
  for line in [
    "error: no AWS credentials: nothing was sent to AWS (STS GetCallerIdentity in us-west-2 \
     needs credentials)",
    "  tried: environment variables: AWS_ACCESS_KEY_ID is not set",
    "  tried: web identity: AWS_WEB_IDENTITY_TOKEN_FILE is not set",
    "  tried: container role: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI are not set",
    &format!(
      "  tried: instance role: the instance metadata service at {}",
      fakes.imds.url()
    ),
    "  to fix: choose credentials with AWS_PROFILE=NAME (or --profile NAME), or export \
     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where an instance or container role \
     applies",
  ] {
    assert!(
      stderr.lines().any(|said| said == line),
      "missing line {line:?} in:\n{stderr}"
    );
  }
  assert!(
    stderr.contains("  tried: profile `default` in ") && stderr.contains(": no such profile"),
    "{stderr}"
  );
  assert!(stderr.contains("  reason: "), "{stderr}");
  // One readable message: no Rust Debug syntax, no log lines of the SDK.
  for debug in ["{ ", "Some(", "source:", "WARN", "aws_config"] {
    assert!(!stderr.contains(debug), "{debug:?} in:\n{stderr}");
  }
  assert!(
    fakes.sts.seen().is_empty(),
    "STS was called without credentials"
  );
  assert!(
    !fakes.imds.seen().is_empty(),
    "the chain never asked the (fake) instance metadata service: is the endpoint override \
     still honoured?"
  );
  assert_only_loopback(&traced);
  assert_nothing_started(&test);

  let traced = run(
    &test,
    &fakes,
    &[
      "--aws",
      "plan",
      "regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
    ],
  );
  let stderr = traced.run.stderr();
  assert_eq!(traced.run.code(), 2, "{stderr}");
  assert!(traced.took < WITHIN, "took {:?}: {stderr}", traced.took);
  assert!(
    stderr.starts_with("error: no AWS credentials: nothing was sent to AWS"),
    "{stderr}"
  );
  assert!(traced.run.stdout().is_empty(), "{}", traced.run.stdout());
  assert_only_loopback(&traced);

  // At DRCTL_LOG=debug, aws-config's own account of the chain is shown too.
  let mut fakes = fakes;
  fakes.set("DRCTL_LOG", "debug");
  let traced = run(&test, &fakes, &["--aws", "failover", "us-west-2", "--yes"]);
  assert_eq!(traced.run.code(), 2);
  assert!(
    traced.run.stderr().contains("aws_config::"),
    "{}",
    traced.run.stderr()
  );
}

/// An SSO profile whose cached token has expired (and whose refresh the fake SSO OIDC endpoint
/// refuses): exit 2 within 5 s, telling the operator to `aws sso login --profile NAME`.
#[test]
fn an_expired_sso_session_says_to_log_in_again() {
  let mut fakes = Fakes::new(vec![Answer::caller_identity("210987654321")]);
  fakes.config(
    "[profile oncall]\nsso_session = corp\nsso_account_id = 210987654321\n\
     sso_role_name = Failover\nregion = us-east-1\n\n[sso-session corp]\n\
     sso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n",
  );
  // The SDK's token cache: `~/.aws/sso/cache/<sha1 of the session name>.json`.
  let cache = fakes.home.path().join(".aws/sso/cache");
  std::fs::create_dir_all(&cache).unwrap();
  std::fs::write(
    cache.join(format!("{}.json", sha1_hex("corp"))),
    r#"{"accessToken":"expired-token","expiresAt":"2020-01-01T00:00:00Z","refreshToken":"refresh","clientId":"client","clientSecret":"secret","registrationExpiresAt":"2099-01-01T00:00:00Z","region":"us-east-1","startUrl":"https://corp.awsapps.com/start"}"#,
  )
  .unwrap();
  fakes.set("AWS_PROFILE", "oncall");
  let test = Test::new();
  let traced = run(&test, &fakes, &["--aws", "failover", "us-west-2", "--yes"]);
  let stderr = traced.run.stderr();
  assert_eq!(traced.run.code(), 2, "{stderr}");
  assert!(traced.took < WITHIN, "took {:?}: {stderr}", traced.took);
  assert!(
    stderr
      .lines()
      .any(|line| line.starts_with("error: no AWS credentials: nothing was sent to AWS")),
    "{stderr}"
  );
  assert!(
    stderr.contains("  tried: profile `oncall` in ") && stderr.contains(": SSO (session `corp`)"),
    "{stderr}"
  );
  assert!(
    stderr.lines().any(|line| line
      == "  to fix: run `aws sso login --profile oncall` (SSO session `corp`), then run drctl \
          again"),
    "{stderr}"
  );
  assert!(!stderr.contains("expired-token") && !stderr.contains("\"secret\""));
  assert!(
    fakes.sts.seen().is_empty(),
    "STS was called without credentials"
  );
  // The token was refreshed with the (fake) SSO OIDC endpoint, which refused.
  let refreshed = fakes.sso.seen();
  assert!(
    refreshed.iter().any(|request| request.target == "/token"),
    "{refreshed:?}"
  );
  assert_only_loopback(&traced);
  assert_nothing_started(&test);
}

fn sha1_hex(text: &str) -> String {
  let output = Command::new("python3")
    .args([
      "-c",
      "import hashlib,sys; print(hashlib.sha1(sys.argv[1].encode()).hexdigest())",
      text,
    ])
    .output()
    .expect("python3 runs");
  String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Credentials STS refuses (expired, unknown): exit 2 within 5 s with the code and request id,
/// after exactly one call, signed for the target region.
#[test]
fn refused_credentials_exit_2_with_code_and_request_id() {
  for (code, message, request_id) in [
    (
      "ExpiredToken",
      "The security token included in the request is expired",
      "req-expired-7",
    ),
    (
      "InvalidClientTokenId",
      "The security token included in the request is invalid.",
      "req-invalid-9",
    ),
  ] {
    let mut fakes = Fakes::new(vec![Answer::sts_error(403, code, message, request_id)]);
    fakes.set("AWS_ACCESS_KEY_ID", "AKIAPREFLIGHTTEST");
    fakes.set("AWS_SECRET_ACCESS_KEY", "preflight-secret-value");
    fakes.set("AWS_SESSION_TOKEN", "preflight-session-token");
    let test = Test::new();
    let traced = run(&test, &fakes, &["--aws", "failover", "us-west-2", "--yes"]);
    let stderr = traced.run.stderr();
    assert_eq!(traced.run.code(), 2, "{code}: {stderr}");
    assert!(traced.took < WITHIN, "took {:?}: {stderr}", traced.took);
    let expected = format!(
      "\nerror: AWS refused the credentials (STS GetCallerIdentity in us-west-2)\n  code: \
       {code}\n  message: {message}\n  request id: {request_id}\n  tried: environment \
       variables: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set\n"
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
      stderr.contains("\n  to fix: refresh or replace the credentials"),
      "{stderr}"
    );
    for secret in ["preflight-secret-value", "preflight-session-token"] {
      assert!(!stderr.contains(secret), "{stderr}");
    }
    let seen = fakes.sts.seen();
    assert_eq!(seen.len(), 1, "{code}: STS calls: {seen:?}");
    assert_eq!(signed_region(&seen[0]).as_deref(), Some("us-west-2"));
    assert!(
      String::from_utf8_lossy(&seen[0].body).contains("Action=GetCallerIdentity"),
      "{seen:?}"
    );
    assert_only_loopback(&traced);
    assert_nothing_started(&test);
  }
}

/// Valid credentials: the run goes on, the identity STS named (in the target region) is in
/// the journal, and STS was asked once.
#[test]
fn valid_credentials_let_the_run_proceed_and_are_journalled() {
  let mut fakes = Fakes::new(vec![Answer::caller_identity("210987654321")]);
  fakes.set("AWS_ACCESS_KEY_ID", "AKIAPREFLIGHTTEST");
  fakes.set("AWS_SECRET_ACCESS_KEY", "preflight-secret-value");
  let test = Test::new().file(
    "pause.yaml",
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: pause }\nparams:\n  \
     target_region: { type: string, required: true }\nsteps:\n  - id: pause\n    \
     action: wait.sleep\n    with: { duration: 10ms }\n",
  );
  let traced = run(
    &test,
    &fakes,
    &[
      "--aws",
      "run",
      "pause.yaml",
      "-p",
      "target_region=eu-west-1",
      "--yes",
    ],
  );
  assert_eq!(traced.run.code(), 0, "{}", traced.run.stderr());
  let id = test.run_ids().pop().expect("a run");
  let first = test.journal(&id).lines().next().unwrap().to_owned();
  let record: Value = serde_json::from_str(&first).unwrap();
  assert_eq!(record["event"], "run_started", "{record}");
  assert_eq!(record["caller"]["account"], "210987654321", "{record}");
  assert_eq!(
    record["caller"]["arn"], "arn:aws:iam::210987654321:user/preflight",
    "{record}"
  );
  let seen = fakes.sts.seen();
  assert_eq!(seen.len(), 1, "STS calls: {seen:?}");
  assert_eq!(signed_region(&seen[0]).as_deref(), Some("eu-west-1"));
  assert!(fakes.sso.seen().is_empty());
  assert_only_loopback(&traced);
}

/// STS that cannot be reached says nothing about the credentials: one warning line, and the
/// run goes on (without an identity in its journal).
#[test]
fn an_unreachable_sts_warns_and_the_run_goes_on() {
  let mut fakes = Fakes::new(vec![Answer::caller_identity("210987654321")]);
  fakes.set("AWS_ACCESS_KEY_ID", "AKIAPREFLIGHTTEST");
  fakes.set("AWS_SECRET_ACCESS_KEY", "preflight-secret-value");
  // A closed loopback port (discard): refused at once.
  fakes.set("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9");
  let test = Test::new().file(
    "pause.yaml",
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: pause }\nsteps:\n  - id: pause\n    \
     action: wait.sleep\n    with: { duration: 10ms }\n",
  );
  let traced = run(&test, &fakes, &["--aws", "run", "pause.yaml", "--yes"]);
  let stderr = traced.run.stderr();
  assert_eq!(traced.run.code(), 0, "{stderr}");
  let warning = stderr
    .lines()
    .find(|line| line.starts_with("warning: cannot verify the AWS credentials"))
    .unwrap_or_else(|| panic!("no warning in:\n{stderr}"));
  assert!(
    warning.contains("STS GetCallerIdentity in us-east-1 could not be asked")
      && warning.ends_with("going on, the run's own calls will tell"),
    "{warning}"
  );
  assert_only_loopback(&traced);
}

/// `drctl resume` of an AWS run checks the credentials before it takes the run's lock: with
/// none, exit 2 and the same message, and the journal gains no `run_resumed`.
#[test]
fn a_resume_without_credentials_exits_2_before_the_lock() {
  let mut fakes = Fakes::new(vec![Answer::caller_identity("210987654321")]);
  fakes.set("AWS_ACCESS_KEY_ID", "AKIAPREFLIGHTTEST");
  fakes.set("AWS_SECRET_ACCESS_KEY", "preflight-secret-value");
  let test = Test::new().file(
    "resumable.yaml",
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: resumable }\nsteps:\n  \
     - id: wait-for-marker\n    action: exec.command\n    retry: { attempts: 1 }\n    \
     with:\n      argv: [sh, -c, 'test -e marker']\n",
  );
  let traced = run(&test, &fakes, &["--aws", "run", "resumable.yaml", "--yes"]);
  assert_eq!(traced.run.code(), 1, "{}", traced.run.stderr());
  let id = test.run_ids().pop().expect("a run");
  std::fs::write(test.path().join("marker"), "").unwrap();
  // The credentials are gone (an expired session the operator has not renewed).
  fakes
    .env
    .retain(|(key, _)| !key.starts_with("AWS_ACCESS_KEY_ID") && key != "AWS_SECRET_ACCESS_KEY");
  let traced = run(&test, &fakes, &["resume", &id]);
  let stderr = traced.run.stderr();
  assert_eq!(traced.run.code(), 2, "{stderr}");
  assert!(traced.took < WITHIN, "took {:?}: {stderr}", traced.took);
  assert!(
    stderr
      .lines()
      .any(|line| line.starts_with("error: no AWS credentials: nothing was sent to AWS")),
    "{stderr}"
  );
  assert!(
    !test.journal(&id).contains("run_resumed"),
    "{}",
    test.journal(&id)
  );
  assert_only_loopback(&traced);
}

/// `plan --aws` weighs what the run itself depends on against the region it leaves, from the
/// configuration alone: the profile's IAM Identity Center region (through its `sso-session`),
/// the `s3://` state bucket's region, and the STS endpoint the preflight asks (regional, in the
/// target region). Credentials come from the environment, so nothing asks SSO.
#[test]
fn plan_flags_the_sso_region_and_the_state_bucket_of_the_region_left() {
  let mut fakes = Fakes::new(vec![Answer::caller_identity("210987654321")]);
  fakes.set("AWS_ACCESS_KEY_ID", "AKIAPREFLIGHTTEST");
  fakes.set("AWS_SECRET_ACCESS_KEY", "preflight-secret-value");
  fakes.set("AWS_PROFILE", "ops");
  fakes.config(
    "[profile ops]\nsso_session = corp\nsso_account_id = 210987654321\n\
     sso_role_name = dr\n\n[sso-session corp]\nsso_region = us-east-1\n\
     sso_start_url = https://corp.awsapps.com/start\n",
  );
  let test = Test::new()
    .file("drctl.yaml", "state: s3://dr-state/drctl\n")
    .file(
      "pause.yaml",
      "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: pause }\nparams:\n  \
       target_region: { type: string, required: true }\n  \
       source_region: { type: string, default: us-east-1 }\nsteps:\n  - id: pause\n    \
       action: wait.sleep\n    with: { duration: 10ms }\n",
    );
  let traced = run(
    &test,
    &fakes,
    &[
      "--aws",
      "plan",
      "pause.yaml",
      "-p",
      "target_region=us-west-2",
    ],
  );
  let text = traced.run.stdout();
  assert_eq!(traced.run.code(), 0, "{text}{}", traced.run.stderr());
  assert!(
    text.contains("sts control plane (us-west-2): GetCallerIdentity"),
    "{text}"
  );
  assert!(
    text.contains("BLOCKS  (the run itself): IAM Identity Center sign-in of profile `ops`"),
    "{text}"
  );
  assert!(
    text.contains("BLOCKS  (the run itself): state s3://dr-state/drctl"),
    "{text}"
  );
  assert!(
    text.contains("caution (the run itself): IAM control plane"),
    "{text}"
  );
  assert!(
    !text.contains("GetCallerIdentity (credentials preflight)"),
    "{text}"
  );
  let seen = fakes.sts.seen();
  assert_eq!(seen.len(), 1, "STS calls: {seen:?}");
  assert_eq!(signed_region(&seen[0]).as_deref(), Some("us-west-2"));
  assert!(fakes.sso.seen().is_empty());
  assert_only_loopback(&traced);
}
