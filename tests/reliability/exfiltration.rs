//! Exfiltration: what reaches a host a request was not addressed to, and what a huge answer
//! costs. Every request goes through the real HTTP provider (the `aws` backend; the runbooks
//! make no AWS call) to origins on loopback: the first host is 127.0.0.1, the second 127.0.0.2
//! (another host to the client; Linux routes all of 127/8 to `lo`).
//!
//! * **Cross-host redirects**: a Slack, a PagerDuty and a signed webhook notification carrying an
//!   API-key header, and two `http.check`s with the same header (one with `follow_redirects`),
//!   are each answered 301, 302, 303, 307 or 308 with a `Location` on the second host. The second
//!   host counts every byte it received (target 0); the first host confirms that the secrets did
//!   travel to it (zero leaks from secrets that never left would prove nothing).
//! * **Same-origin redirects** with `follow_redirects: true`: followed to the end (target all).
//! * **`http://` notification URLs** to a non-loopback host: refused before sending, as a literal
//!   (`drctl validate`, exit 2) and as a rendered secret (the run's step fails; exit 1).
//! * **A huge body** (64 MiB fast, 512 MiB full) against the default 1 MiB cap: the check's peak
//!   RSS (VmHWM) above the same check reading a 2-byte answer (target: at most the cap plus
//!   8 MiB).

use std::{
  process::Stdio,
  time::{Duration, Instant},
};

use crate::{
  support::{
    origin::{aws_test, run_with, Origin, Reply, RUN},
    Test,
  },
  Config, Figure,
};

const SECTION: &str = "exfiltration";
const API_KEY: &str = "exfil-api-key-6d2c";
const ROUTING_KEY: &str = "exfil-routing-key-91ab";
const HOOK_SECRET: &str = "exfil-hook-secret-0f7e";
/// A Slack webhook's secret is its path.
const SLACK_PATH: &str = "/services/T0/B0/exfil-slack-path-3c5d";
const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];
/// Requests of one round: slack, pagerduty, webhook, check, check with `follow_redirects`.
const REQUESTS: usize = 5;

fn runbook(near: &Origin) -> String {
  format!(
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: {{ name: exfiltration }}
defaults: {{ timeout: 1m, retry: {{ attempts: 1 }} }}
steps:
  - id: slack
    action: notify.slack
    on_failure: continue
    with: {{ webhook: "{slack}", text: "drill" }}
  - id: page
    action: notify.pagerduty
    on_failure: continue
    with: {{ routing_key: "${{{{ secrets.ROUTING_KEY }}}}", summary: "drill", url: "{pd}" }}
  - id: hook
    action: notify.webhook
    on_failure: continue
    with:
      url: "{hook}"
      headers: {{ X-Api-Key: "${{{{ secrets.API_KEY }}}}" }}
      hmac_secret: "${{{{ secrets.HOOK_SECRET }}}}"
  - id: check
    action: http.check
    on_failure: continue
    with:
      url: "{check}"
      headers: {{ X-Api-Key: "${{{{ secrets.API_KEY }}}}" }}
  - id: follow
    action: http.check
    on_failure: continue
    with:
      url: "{follow}"
      follow_redirects: true
      headers: {{ X-Api-Key: "${{{{ secrets.API_KEY }}}}" }}
"#,
    slack = near.url(SLACK_PATH),
    pd = near.url("/v2/enqueue"),
    hook = near.url("/hook"),
    check = near.url("/health"),
    follow = near.url("/follow"),
  )
}

fn with_secrets(test: Test) -> Test {
  test
    .env("API_KEY", API_KEY)
    .env("ROUTING_KEY", ROUTING_KEY)
    .env("HOOK_SECRET", HOOK_SECRET)
}

/// Requests at `origin` carrying a secret (an API key, a routing key, a Slack webhook path) or a
/// signature.
fn carrying_secrets(origin: &Origin) -> usize {
  origin
    .seen()
    .iter()
    .filter(|request| {
      let raw = String::from_utf8_lossy(&request.raw);
      raw.contains(API_KEY)
        || raw.contains(ROUTING_KEY)
        || raw.contains(SLACK_PATH)
        || raw.to_ascii_lowercase().contains("x-drctl-signature")
    })
    .count()
}

/// Cross-host redirects: `(bytes at the second host, requests at the first carrying secrets,
/// requests sent)`.
fn cross_host(rounds: usize) -> (usize, usize, usize) {
  let far = Origin::start("127.0.0.2", vec![]);
  let mut carried = 0;
  let mut sent = 0;
  for _ in 0..rounds {
    for status in STATUSES {
      let location = far.url("/services/T9/B9/stolen");
      let near = Origin::start(
        "127.0.0.1",
        vec![Reply::Redirect(status, location); REQUESTS],
      );
      let test = with_secrets(aws_test()).file("check.yaml", &runbook(&near));
      run_with(&test, &[]);
      carried += carrying_secrets(&near);
      sent += REQUESTS;
    }
  }
  (far.bytes_received(), carried, sent)
}

/// Same-origin redirects with `follow_redirects`: `(checks that reached the end, checks)`.
fn same_origin(rounds: usize) -> (usize, usize) {
  let mut reached = 0;
  for _ in 0..rounds {
    let near = Origin::start("127.0.0.1", vec![]);
    near.script(vec![
      Reply::Redirect(301, "/b".into()),
      Reply::Redirect(307, near.url("/c")),
      Reply::Redirect(308, "/d".into()),
      Reply::Status(200),
    ]);
    let runbook = format!(
      "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: same-origin }}\n\
       defaults: {{ timeout: 1m, retry: {{ attempts: 1 }} }}\nsteps:\n\
       \x20 - id: check\n    action: http.check\n    with: {{ url: \"{}\", follow_redirects: true }}\n",
      near.url("/a")
    );
    let test = aws_test().file("check.yaml", &runbook);
    let run = run_with(&test, &[]);
    let paths: Vec<String> = near.seen().iter().map(|r| r.target.clone()).collect();
    if run.code() == 0 && paths == ["/a", "/b", "/c", "/d"] {
      reached += 1;
    }
  }
  (reached, rounds)
}

/// `http://` to a non-loopback host: `(refusals, attempts)`. Nothing is sent either way (the
/// host does not exist; the refusal comes first).
fn plain_http() -> (usize, usize) {
  let literal = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: plain }\nsteps:\n\
     \x20 - id: hook\n    action: notify.webhook\n    with: { url: \"http://hooks.example.com/x\" }\n";
  let test = aws_test().file("check.yaml", literal);
  let validated = test.run_args(["validate", "check.yaml"]);
  let templated = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: plain }\n\
     defaults: { retry: { attempts: 1 } }\nsteps:\n\
     \x20 - id: hook\n    action: notify.webhook\n    with: { url: \"${{ secrets.HOOK_URL }}\" }\n";
  let test = aws_test()
    .env("HOOK_URL", "http://hooks.example.com/secret")
    .file("check.yaml", templated);
  let run = run_with(&test, &[]);
  let refused =
    usize::from(
      validated.code() == 2
        && validated
          .stderr()
          .contains("http:// only to a loopback host"),
    ) + usize::from(run.code() == 1 && run.stderr().contains("http:// only to a loopback host"));
  (refused, 2)
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
  let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
  status
    .lines()
    .find_map(|line| line.strip_prefix("VmHWM:"))
    .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak RSS (KiB) of one `http.check` of `origin`'s next answer, and its exit code.
fn check_peak(origin: &Origin) -> (u64, Option<i32>) {
  let runbook = format!(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: big }}\n\
     defaults: {{ timeout: 5m, retry: {{ attempts: 1 }} }}\nsteps:\n\
     \x20 - id: check\n    action: http.check\n    with: {{ url: \"{}\", body_contains: THE-END }}\n",
    origin.url("/big")
  );
  let test = aws_test().file("check.yaml", &runbook);
  let mut command = test.command(RUN);
  for name in crate::support::origin::NETWORK_ENV {
    command.env_remove(name);
  }
  let mut child = command
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("drctl starts");
  let pid = child.id();
  let started = Instant::now();
  let mut peak = 0;
  // VmHWM is the process's high-water mark: the last value read before it exits is its peak
  // (to within the polling interval at the very end).
  let code = loop {
    if let Some(kib) = vm_hwm_kib(pid) {
      peak = peak.max(kib);
    }
    match child.try_wait().expect("waiting for drctl") {
      Some(status) => break status.code(),
      None if started.elapsed() > Duration::from_secs(300) => {
        let _ = child.kill();
        let _ = child.wait();
        break None;
      }
      None => std::thread::sleep(Duration::from_millis(2)),
    }
  };
  (peak, code)
}

pub fn run(config: &Config) -> Vec<Figure> {
  let rounds = if config.full { 4 } else { 1 };
  let (leaked, carried, sent) = cross_host(rounds);
  let (followed, same_origin_checks) = same_origin(if config.full { 10 } else { 2 });
  let (refused, plain) = plain_http();

  let huge: u64 = if config.full { 512 } else { 64 } * 1024 * 1024;
  let origin = Origin::start("127.0.0.1", vec![Reply::Status(200)]);
  let (baseline, _) = check_peak(&origin);
  origin.script(vec![Reply::Large {
    size: huge,
    tail: "THE-END".into(),
  }]);
  let (peak, code) = check_peak(&origin);
  let cap_kib = 1024;
  let allowance_kib = cap_kib + 8 * 1024;
  let above = peak.saturating_sub(baseline);

  vec![
    Figure::new(
      SECTION,
      format!(
        "bytes reaching a second host ({sent} cross-host 3xx: slack, pagerduty, webhook, check ×2)"
      ),
      leaked,
      "0",
      leaked == 0,
    ),
    Figure::new(
      SECTION,
      "requests that carried their secrets to the first host",
      format!("{carried}/{sent}"),
      "all",
      carried == sent,
    ),
    Figure::new(
      SECTION,
      "same-origin redirect chains followed (follow_redirects)",
      format!("{followed}/{same_origin_checks}"),
      "all",
      followed == same_origin_checks,
    ),
    Figure::new(
      SECTION,
      "http:// non-loopback notification URLs refused before sending",
      format!("{refused}/{plain}"),
      "all",
      refused == plain,
    ),
    Figure::new(
      SECTION,
      format!(
        "peak RSS above a small answer's, {} MiB body, 1 MiB cap",
        huge / 1024 / 1024
      ),
      format!("{:.1} MiB", above as f64 / 1024.0),
      format!("≤ {} MiB", allowance_kib / 1024),
      above <= allowance_kib && code == Some(1),
    ),
    Figure::info(
      SECTION,
      "body bytes the origin managed to write before the cut",
      format!(
        "{:.1} MiB",
        origin
          .body_bytes_sent
          .load(std::sync::atomic::Ordering::Relaxed) as f64
          / 1024.0
          / 1024.0
      ),
    ),
  ]
}
