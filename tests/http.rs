//! `http.check` over the real HTTP provider (the `aws` backend; the check's runbook makes no AWS
//! call): redirects, the body cap, the trust store (`SSL_CERT_FILE`) and proxies
//! (`HTTPS_PROXY`/`NO_PROXY`, also for the AWS SDK). Every host is a loopback address; a
//! redirect goes from 127.0.0.1 to 127.0.0.2, which is another host to the client.

use std::sync::atomic::Ordering;

use crate::support::{
  origin::{aws_test, run_with, Origin, Reply},
  tls::{ConnectProxy, TestCa, TlsOrigin},
};

/// A runbook of one `http.check` step with these `with` lines (each `key: value`).
pub(crate) fn check_runbook(with: &[String]) -> String {
  let with: String = with.iter().map(|line| format!("      {line}\n")).collect();
  format!(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: check-test }}\n\
     defaults: {{ timeout: 1m, retry: {{ attempts: 1 }} }}\nsteps:\n\
     \x20 - id: probe\n    action: http.check\n    with:\n{with}"
  )
}

#[test]
fn a_check_follows_no_redirect_by_default() {
  let far = Origin::start("127.0.0.2", vec![]);
  for status in [301, 302, 303, 307, 308] {
    let near = Origin::start(
      "127.0.0.1",
      vec![Reply::Redirect(status, far.url("/elsewhere/private-path"))],
    );
    let test = aws_test().file(
      "check.yaml",
      &check_runbook(&[
        format!("url: \"{}\"", near.url("/health")),
        "headers: { X-Api-Key: \"${{ secrets.API_KEY }}\" }".into(),
      ]),
    );
    let test = test.env("API_KEY", "key-7f3a9");
    let run = run_with(&test, &[]).status(1);
    let stderr = run.stderr();
    assert!(
      stderr.contains(&format!(
        "status {status}, expected 200 (redirect to {} not followed)",
        far.url("/…")
      )),
      "{status}: {stderr}"
    );
    assert!(!stderr.contains("private-path"), "{stderr}");
    assert_eq!(near.seen().len(), 1);
    assert_eq!(near.seen()[0].headers["x-api-key"], "key-7f3a9");
  }
  assert_eq!(far.bytes_received(), 0, "{:#?}", far.seen());
}

#[test]
fn follow_redirects_follows_only_within_the_origin() {
  let far = Origin::start("127.0.0.2", vec![]);
  let other_port = Origin::start("127.0.0.1", vec![]);
  let near = Origin::start("127.0.0.1", vec![]);
  near.script(vec![
    // Same origin: followed, twice (relative, then absolute), with the header.
    Reply::Redirect(302, "/step-2".into()),
    Reply::Redirect(307, near.url("/step-3")),
    Reply::Status(200),
    // Another host, then another port of the same host: not followed.
    Reply::Redirect(302, far.url("/x")),
    Reply::Redirect(308, other_port.url("/x")),
  ]);
  let runbook = |path: &str| {
    check_runbook(&[
      format!("url: \"{}\"", near.url(path)),
      "follow_redirects: true".into(),
      "headers: { X-Api-Key: \"${{ secrets.API_KEY }}\" }".into(),
    ])
  };
  let test = aws_test()
    .env("API_KEY", "key-7f3a9")
    .file("check.yaml", &runbook("/step-1"));
  run_with(&test, &[]).status(0);
  let paths: Vec<String> = near.seen().iter().map(|r| r.target.clone()).collect();
  assert_eq!(paths, ["/step-1", "/step-2", "/step-3"]);
  assert!(near
    .seen()
    .iter()
    .all(|request| request.headers["x-api-key"] == "key-7f3a9"));

  for to in [&far, &other_port] {
    let test = aws_test()
      .env("API_KEY", "key-7f3a9")
      .file("check.yaml", &runbook("/away"));
    let run = run_with(&test, &[]).status(1);
    assert!(
      run.stderr().contains(&format!(
        "(redirect to {} not followed: another origin)",
        to.url("/…")
      )),
      "{}",
      run.stderr()
    );
  }
  assert_eq!(far.bytes_received(), 0, "{:#?}", far.seen());
  assert_eq!(other_port.bytes_received(), 0, "{:#?}", other_port.seen());
}

#[test]
fn a_check_body_is_cut_at_its_cap() {
  let size = 8 * 1024 * 1024;
  let origin = Origin::start("127.0.0.1", vec![]);
  let runbook = |extra: &[&str]| {
    let mut with = vec![
      format!("url: \"{}\"", origin.url("/big")),
      "body_contains: THE-END".to_string(),
    ];
    with.extend(extra.iter().map(|line| line.to_string()));
    check_runbook(&with)
  };

  origin.script(vec![Reply::Large {
    size,
    tail: "THE-END".into(),
  }]);
  let test = aws_test().file("check.yaml", &runbook(&[]));
  let run = run_with(&test, &[]).status(1);
  assert!(
    run
      .stderr()
      .contains("body does not contain `THE-END` (body cut at 1MiB)"),
    "{}",
    run.stderr()
  );

  origin.script(vec![Reply::Large {
    size,
    tail: "THE-END".into(),
  }]);
  let test = aws_test().file("check.yaml", &runbook(&["max_body: 16MiB"]));
  run_with(&test, &[]).status(0);

  // A check that passes on a cut body says so.
  origin.script(vec![Reply::Large {
    size,
    tail: "THE-END".into(),
  }]);
  let test = aws_test().file(
    "check.yaml",
    &check_runbook(&[format!("url: \"{}\"", origin.url("/big"))]),
  );
  let run = run_with(&test, &[]).status(0);
  assert!(
    run.stderr().contains("(body cut at 1MiB)"),
    "{}",
    run.stderr()
  );

  // A bad size is a validation error at its line and column.
  let test = aws_test().file("check.yaml", &runbook(&["max_body: 4 parsecs"]));
  let run = test.run_args(["validate", "check.yaml"]).status(2);
  assert!(
    run.stderr().contains("check.yaml:11:17"),
    "{}",
    run.stderr()
  );
}

#[test]
fn ssl_cert_file_is_the_trust_store_when_set() {
  let dir = tempfile::tempdir().unwrap();
  let ca = TestCa::generate(dir.path());
  let ca_file = ca.ca.to_str().unwrap();
  let origin = TlsOrigin::start("127.0.0.2", &ca);
  let test = aws_test().file(
    "check.yaml",
    &check_runbook(&[format!("url: \"{}\"", origin.url("/health"))]),
  );

  // The test CA is in no trust store: refused.
  let run = run_with(&test, &[]).status(1);
  assert_eq!(origin.requests.load(Ordering::SeqCst), 0);
  assert!(run.stderr().contains("TLS"), "{}", run.stderr());

  // Given through SSL_CERT_FILE: trusted.
  run_with(&test, &[("SSL_CERT_FILE", ca_file)]).status(0);
  assert_eq!(origin.requests.load(Ordering::SeqCst), 1);

  // An SSL_CERT_FILE that cannot be read is an error that names it, not an empty trust store
  // (nor a panic in the SDK).
  for bad in ["/nonexistent/ca.pem", ""] {
    let run = run_with(&test, &[("SSL_CERT_FILE", bad)]);
    assert!(
      run.stderr().contains(&format!("SSL_CERT_FILE `{bad}`")),
      "{}",
      run.stderr()
    );
    run.status(2);
  }
  assert_eq!(origin.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn https_proxy_is_used_and_no_proxy_bypasses_it() {
  let dir = tempfile::tempdir().unwrap();
  let ca = TestCa::generate(dir.path());
  let ca_file = ca.ca.to_str().unwrap();
  let origin = TlsOrigin::start("127.0.0.2", &ca);
  let proxy = ConnectProxy::start();
  let proxy_url = proxy.url();
  let test = aws_test().file(
    "check.yaml",
    &check_runbook(&[format!("url: \"{}\"", origin.url("/health"))]),
  );
  run_with(
    &test,
    &[("SSL_CERT_FILE", ca_file), ("HTTPS_PROXY", &proxy_url)],
  )
  .status(0);
  assert_eq!(
    proxy.requests(),
    [format!("CONNECT {} HTTP/1.1", origin.authority())]
  );

  run_with(
    &test,
    &[
      ("SSL_CERT_FILE", ca_file),
      ("HTTPS_PROXY", &proxy_url),
      ("NO_PROXY", "127.0.0.2"),
    ],
  )
  .status(0);
  assert_eq!(proxy.requests().len(), 1, "{:?}", proxy.requests());
  assert_eq!(origin.requests.load(Ordering::SeqCst), 2);
}

#[test]
fn the_aws_sdk_uses_https_proxy_and_no_proxy() {
  let dir = tempfile::tempdir().unwrap();
  let ca = TestCa::generate(dir.path());
  let ca_file = ca.ca.to_str().unwrap();
  // Not an AWS endpoint: the call fails, but it shows which way it went.
  let endpoint = TlsOrigin::start("127.0.0.2", &ca);
  let proxy = ConnectProxy::start();
  let proxy_url = proxy.url();
  let test = aws_test()
    .env("AWS_ENDPOINT_URL", &endpoint.url(""))
    .file(
      "check.yaml",
      "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: sdk-proxy }\n\
       defaults: { timeout: 1m, retry: { attempts: 1 } }\nsteps:\n\
       \x20 - id: lag\n    action: rds.replica_status\n    with: { region: us-east-1, instance: db-1 }\n",
    );
  run_with(
    &test,
    &[("SSL_CERT_FILE", ca_file), ("HTTPS_PROXY", &proxy_url)],
  )
  .status(1);
  let connects = proxy.requests();
  assert!(!connects.is_empty());
  assert!(
    connects
      .iter()
      .all(|line| *line == format!("CONNECT {} HTTP/1.1", endpoint.authority())),
    "{connects:?}"
  );
  assert!(endpoint.requests.load(Ordering::SeqCst) > 0);

  let before = proxy.requests().len();
  let direct = endpoint.connections.load(Ordering::SeqCst);
  run_with(
    &test,
    &[
      ("SSL_CERT_FILE", ca_file),
      ("HTTPS_PROXY", &proxy_url),
      ("NO_PROXY", "127.0.0.2"),
    ],
  )
  .status(1);
  assert_eq!(proxy.requests().len(), before, "{:?}", proxy.requests());
  assert!(endpoint.connections.load(Ordering::SeqCst) > direct);
}
