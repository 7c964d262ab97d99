//! Notifications against a capture server on loopback, through the real binary on `--sim` (the
//! simulator passes POSTs to loopback hosts through to the real HTTP client): exact payloads,
//! retries on 5xx but not 4xx, one PagerDuty dedup_key across a kill and a resume. Also the
//! plain (non-TTY) and JSON-lines progress outputs.

use std::time::Duration;

use crate::support::{
  capture::Capture,
  origin::{Origin, Reply},
  repo, signal, Test,
};

fn runbook(steps: &str) -> String {
  format!(
    "apiVersion: drctl/v1\nkind: Runbook\nmetadata: {{ name: notify-test }}\n\
     objectives: {{ rto: 15m }}\n\
     defaults: {{ timeout: 1m, retry: {{ attempts: 3, backoff: 1s }} }}\nsteps:\n{steps}"
  )
}

fn run_args(extra: &[&str]) -> Vec<String> {
  let mut args: Vec<String> = ["run", "notify.yaml", "--sim", "--yes", "--time-scale", "20"]
    .map(String::from)
    .to_vec();
  args.extend(extra.iter().map(|arg| arg.to_string()));
  args
}

/// HMAC-SHA256, computed here independently of drctl (RFC 2104 over the `sha2` crate).
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
  use sha2::{Digest, Sha256};
  let mut block = [0u8; 64];
  block[..key.len()].copy_from_slice(key);
  let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
  let inner = Sha256::new()
    .chain_update(pad(0x36))
    .chain_update(message)
    .finalize();
  let outer = Sha256::new()
    .chain_update(pad(0x5c))
    .chain_update(inner)
    .finalize();
  outer.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn slack_pagerduty_and_webhook_payloads_are_exact() {
  let capture = Capture::start(&[200, 202, 202, 200]);
  let steps = format!(
    r#"  - id: slack
    action: notify.slack
    with:
      webhook: "{slack}"
      text: "Failover to us-west-2 complete"
      status: succeeded
      region: us-west-2
      rto: "4m10s of 15m target"
      report: "https://reports.example.com/r/1"
  - id: page
    action: notify.pagerduty
    needs: [slack]
    with: {{ routing_key: "${{{{ secrets.PD_KEY }}}}", summary: "Failover started", severity: critical, url: "{pd}" }}
  - id: resolve
    action: notify.pagerduty
    needs: [page]
    with: {{ routing_key: "${{{{ secrets.PD_KEY }}}}", summary: "Failover done", event_action: resolve, dedup_key: "${{{{ steps.page.outputs.dedup_key }}}}", url: "{pd}" }}
  - id: hook
    action: notify.webhook
    needs: [resolve]
    with:
      url: "{hook}"
      headers: {{ X-Team: sre }}
      hmac_secret: "${{{{ secrets.HOOK_SECRET }}}}"
      body: {{ event: failover, region: us-west-2 }}
"#,
    slack = capture.url("/services/T0/B0/x"),
    pd = capture.url("/v2/enqueue"),
    hook = capture.url("/hook"),
  );
  let test = Test::new()
    .file("notify.yaml", &runbook(&steps))
    .env("PD_KEY", "pd-routing-key")
    .env("HOOK_SECRET", "hook-secret");
  test.run_args(run_args(&[])).status(0);
  let run_id = test.run_ids().pop().unwrap();
  let seen = capture.seen();
  assert_eq!(seen.len(), 4, "{seen:#?}");
  assert!(seen.iter().all(|request| request.method == "POST"));
  let paths: Vec<&str> = seen.iter().map(|request| request.path.as_str()).collect();
  assert_eq!(
    paths,
    ["/services/T0/B0/x", "/v2/enqueue", "/v2/enqueue", "/hook"]
  );

  assert_eq!(
    seen[0].body,
    format!(
      r#"{{"blocks":[{{"text":{{"emoji":true,"text":"✅ succeeded — notify-test","type":"plain_text"}},"type":"header"}},{{"text":{{"text":"Failover to us-west-2 complete","type":"mrkdwn"}},"type":"section"}},{{"fields":[{{"text":"*Runbook*\nnotify-test","type":"mrkdwn"}},{{"text":"*Region*\nus-west-2","type":"mrkdwn"}},{{"text":"*RTO*\n4m10s of 15m target","type":"mrkdwn"}},{{"text":"*Report*\n<https://reports.example.com/r/1|Open the report>","type":"mrkdwn"}}],"type":"section"}},{{"elements":[{{"text":"drctl run `{run_id}` · step `slack`","type":"mrkdwn"}}],"type":"context"}}],"text":"Failover to us-west-2 complete"}}"#
    )
  );
  assert_eq!(
    seen[1].body,
    format!(
      r#"{{"client":"drctl","dedup_key":"drctl/{run_id}/page","event_action":"trigger","payload":{{"custom_details":{{"run_id":"{run_id}","runbook":"notify-test","step":"page"}},"severity":"critical","source":"drctl","summary":"Failover started"}},"routing_key":"pd-routing-key"}}"#
    )
  );
  assert_eq!(
    seen[2].body,
    format!(
      r#"{{"dedup_key":"drctl/{run_id}/page","event_action":"resolve","routing_key":"pd-routing-key"}}"#
    )
  );
  let hook = &seen[3];
  assert_eq!(hook.body, r#"{"event":"failover","region":"us-west-2"}"#);
  assert_eq!(hook.headers["content-type"], "application/json");
  assert_eq!(hook.headers["x-team"], "sre");
  let timestamp = &hook.headers["x-drctl-timestamp"];
  assert_eq!(
    hook.headers["x-drctl-signature"],
    format!(
      "sha256={}",
      hmac_sha256_hex(
        b"hook-secret",
        format!("{timestamp}.{}", hook.body).as_bytes()
      )
    )
  );
  // Secrets never reach the journal.
  let journal = test.journal(&run_id);
  assert!(!journal.contains("pd-routing-key") && !journal.contains("hook-secret"));
}

const HOOK_STEP: &str = "  - id: hook\n    action: notify.webhook\n    with: { url: \"URL\" }\n";

#[test]
fn a_server_error_is_retried_and_then_succeeds() {
  let capture = Capture::start(&[500, 200]);
  let test = Test::new().file(
    "notify.yaml",
    &runbook(&HOOK_STEP.replace("URL", &capture.url("/hook"))),
  );
  let run = test.run_args(run_args(&[])).status(0);
  let seen = capture.seen();
  assert_eq!(seen.len(), 2, "{seen:#?}");
  assert_eq!(seen[0].body, seen[1].body);
  assert!(run.stderr().contains("answered 500"), "{}", run.stderr());
}

#[test]
fn a_client_error_is_not_retried() {
  let capture = Capture::start(&[400, 200, 200]);
  let test = Test::new().file(
    "notify.yaml",
    &runbook(&HOOK_STEP.replace("URL", &capture.url("/hook"))),
  );
  let run = test.run_args(run_args(&[])).status(1);
  assert_eq!(capture.seen().len(), 1);
  assert!(
    run.stderr().contains("answered 400 (not retried)"),
    "{}",
    run.stderr()
  );
}

#[test]
fn a_failed_notification_with_on_failure_continue_does_not_fail_the_run() {
  let capture = Capture::start(&[404]);
  let step = format!(
    "{}    on_failure: continue\n    recovery: false\n",
    HOOK_STEP.replace("URL", &capture.url("/hook"))
  );
  let test = Test::new().file("notify.yaml", &runbook(&step));
  test.run_args(run_args(&[])).status(0);
  assert_eq!(capture.seen().len(), 1);
}

/// `(event_action, dedup_key)` of every PagerDuty event the capture server saw.
fn pagerduty_events(capture: &Capture) -> Vec<(String, String)> {
  capture
    .seen()
    .iter()
    .map(|request| {
      let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
      (
        body["event_action"].as_str().unwrap().to_string(),
        body["dedup_key"].as_str().unwrap().to_string(),
      )
    })
    .collect()
}

#[test]
fn a_pagerduty_trigger_dispatched_before_a_kill_is_not_sent_again_on_resume() {
  let capture = Capture::start(&[]);
  // The trigger arrives, but its answer never does: the process is killed while waiting.
  capture.hold_next();
  let url = capture.url("/v2/enqueue");
  let steps = format!(
    "  - id: page\n    action: notify.pagerduty\n    with: {{ routing_key: rk, summary: down, url: \"{url}\" }}\n\
     \x20 - id: resolve\n    action: notify.pagerduty\n    needs: [page]\n    with: {{ routing_key: rk, summary: up, event_action: resolve, dedup_key: \"${{{{ steps.page.outputs.dedup_key }}}}\", url: \"{url}\" }}\n"
  );
  let test = Test::new().file("notify.yaml", &runbook(&steps));
  let mut child = test.spawn(run_args(&[]));
  test.wait_for(Duration::from_secs(30), "the trigger", || {
    !capture.seen().is_empty()
  });
  signal(&child, "KILL");
  let _ = child.wait();
  capture.release();
  let run_id = test.run_ids().pop().unwrap();
  let journal = test.journal(&run_id);
  assert!(
    journal.contains(r#""event":"step_dispatched""#),
    "{journal}"
  );
  assert!(!journal.contains("step_succeeded"), "{journal}");

  let resumed = test
    .run_args(["resume", run_id.as_str(), "--yes"])
    .status(0);
  let key = format!("drctl/{run_id}/page");
  assert!(
    resumed.stderr().contains(&format!(
      "warning: PagerDuty trigger dispatched before the interruption, delivery unconfirmed; not sent again (dedup_key {key}"
    )),
    "{}",
    resumed.stderr()
  );
  // Resuming a finished run sends nothing more.
  test.run_args(["resume", run_id.as_str(), "--yes"]);
  assert_eq!(
    pagerduty_events(&capture),
    [
      ("trigger".to_string(), key.clone()),
      ("resolve".to_string(), key)
    ],
    "{:#?}",
    capture.seen()
  );
  let status = test.status_json(&run_id);
  let page = status["timeline"]["steps"]
    .as_array()
    .unwrap()
    .iter()
    .find(|step| step["id"] == "page")
    .unwrap()
    .clone();
  assert_eq!(page["outputs"]["delivery"], "unconfirmed", "{page}");
}

#[test]
fn a_pagerduty_trigger_killed_before_it_was_dispatched_is_sent_on_resume() {
  let capture = Capture::start(&[]);
  let url = capture.url("/v2/enqueue");
  // A slow first step holds the run before the trigger; the kill lands there, so the journal
  // has nothing of the trigger's and the resume must send it (once).
  let steps = format!(
    "  - id: hold\n    action: wait.sleep\n    with: {{ duration: 30s }}\n\
     \x20 - id: page\n    action: notify.pagerduty\n    needs: [hold]\n    with: {{ routing_key: rk, summary: down, url: \"{url}\" }}\n"
  );
  let test = Test::new().file("notify.yaml", &runbook(&steps));
  let mut child = test.spawn(run_args(&[]));
  test.wait_for(Duration::from_secs(30), "the hold step", || {
    test
      .run_ids()
      .first()
      .is_some_and(|id| test.journal(id).contains(r#""step":"hold""#))
  });
  signal(&child, "KILL");
  let _ = child.wait();
  let run_id = test.run_ids().pop().unwrap();
  assert!(!test.journal(&run_id).contains(r#""step":"page""#));
  test
    .run_args(["resume", run_id.as_str(), "--yes"])
    .status(0);
  let key = format!("drctl/{run_id}/page");
  assert_eq!(pagerduty_events(&capture), [("trigger".to_string(), key)]);
}

#[test]
fn without_a_terminal_progress_is_one_plain_line_per_event() {
  let capture = Capture::start(&[]);
  let test = Test::new().file(
    "notify.yaml",
    &runbook(&HOOK_STEP.replace("URL", &capture.url("/hook"))),
  );
  let run = test.run_args(run_args(&[])).status(0);
  let stderr = run.stderr();
  assert!(!stderr.contains('\x1b'), "no ANSI codes: {stderr}");
  let lines: Vec<&str> = stderr
    .lines()
    .filter(|line| line.starts_with('['))
    .collect();
  assert!(
    lines
      .iter()
      .any(|line| line.contains("▶ hook") && line.contains("started")),
    "{stderr}"
  );
  assert!(
    lines
      .iter()
      .any(|line| line.contains("✓ hook") && line.contains("posted to http://127.0.0.1")),
    "{stderr}"
  );
  assert!(
    lines.last().unwrap().contains("finished: succeeded"),
    "{stderr}"
  );
}

#[test]
fn json_output_streams_events_with_ts_event_step_and_status_then_a_summary() {
  let capture = Capture::start(&[500, 200]);
  let test = Test::new().file(
    "notify.yaml",
    &runbook(&HOOK_STEP.replace("URL", &capture.url("/hook"))),
  );
  let run = test.run_args(run_args(&["--output", "json"])).status(0);
  let events: Vec<serde_json::Value> = run
    .stdout()
    .lines()
    .map(|line| serde_json::from_str(line).unwrap())
    .collect();
  for event in &events {
    for field in ["ts", "event", "step", "status"] {
      assert!(event.get(field).is_some(), "{field} missing in {event}");
    }
  }
  let names: Vec<(&str, &str)> = events
    .iter()
    .map(|event| {
      (
        event["event"].as_str().unwrap(),
        event["status"].as_str().unwrap(),
      )
    })
    .collect();
  assert_eq!(
    names,
    [
      ("run_started", "running"),
      ("step_started", "running"),
      ("step_intent", "applying"),
      ("step_dispatched", "applying"),
      ("step_failed", "retrying"),
      ("step_started", "running"),
      ("step_intent", "applying"),
      ("step_dispatched", "applying"),
      ("step_succeeded", "succeeded"),
      ("run_finished", "succeeded"),
      ("summary", "succeeded"),
    ]
  );
  assert_eq!(events[1]["step"], "hook");
  assert_eq!(events[0]["step"], serde_json::Value::Null);
}

#[test]
fn notifications_never_follow_a_redirect() {
  let far = Origin::start("127.0.0.2", vec![]);
  for status in [301, 302, 303, 307, 308] {
    let near = Origin::start(
      "127.0.0.1",
      vec![Reply::Redirect(status, far.url("/services/T9/B9/stolen")); 3],
    );
    let steps = format!(
      r#"  - id: slack
    action: notify.slack
    on_failure: continue
    with: {{ webhook: "{slack}", text: "hello" }}
  - id: page
    action: notify.pagerduty
    on_failure: continue
    with: {{ routing_key: "${{{{ secrets.PD_KEY }}}}", summary: "down", url: "{pd}" }}
  - id: hook
    action: notify.webhook
    on_failure: continue
    with:
      url: "{hook}"
      headers: {{ X-Api-Key: "${{{{ secrets.API_KEY }}}}" }}
      hmac_secret: "${{{{ secrets.HOOK_SECRET }}}}"
"#,
      slack = near.url("/services/T0/B0/x"),
      pd = near.url("/v2/enqueue"),
      hook = near.url("/hook"),
    );
    let test = Test::new()
      .file("notify.yaml", &runbook(&steps))
      .env("PD_KEY", "pd-routing-key")
      .env("API_KEY", "api-key-5e1")
      .env("HOOK_SECRET", "hook-secret");
    let run = test.run_args(run_args(&[])).status(0);
    let stderr = run.stderr();
    let refusal = format!(
      "POST {} answered {status}, a redirect to {} (redirects are not followed)",
      near.url(""),
      far.url("/…")
    );
    assert_eq!(stderr.matches(&refusal).count(), 3, "{status}: {stderr}");
    assert!(!stderr.contains("stolen"), "{stderr}");
    // Each was sent once (a redirect is final, not retried), and only to the first host.
    assert_eq!(near.seen().len(), 3, "{:#?}", near.seen());
  }
  assert_eq!(far.bytes_received(), 0, "{:#?}", far.seen());
}

#[test]
fn http_notification_urls_are_refused_unless_loopback() {
  // A literal URL: refused at validation, at its line and column.
  let steps = "  - id: hook\n    action: notify.webhook\n    with: { url: \"http://hooks.example.com/x\" }\n\
               \x20 - id: slack\n    action: notify.slack\n    with: { webhook: \"http://127.0.0.1:9/x\", text: hi }\n";
  let test = Test::new().file("notify.yaml", &runbook(steps));
  let run = test.run_args(["validate", "notify.yaml"]).status(2);
  let stderr = run.stderr();
  assert!(stderr.contains("notify.yaml:9:18"), "{stderr}");
  assert!(
    stderr.contains(
      "field `url` expects an https:// URL (http:// only to a loopback host), found `http://hooks.example.com/…`"
    ),
    "{stderr}"
  );
  // The loopback one is fine.
  assert!(!stderr.contains("notify.yaml:12:"), "{stderr}");

  // A templated one: refused when rendered, naming the host but not the rest of the URL.
  let capture = Capture::start(&[]);
  let steps =
    "  - id: hook\n    action: notify.webhook\n    with: { url: \"${{ secrets.HOOK_URL }}\" }\n";
  let test = Test::new()
    .file("notify.yaml", &runbook(steps))
    .env("HOOK_URL", "http://hooks.example.com/secret-path-3f1");
  let run = test.run_args(run_args(&[])).status(1);
  let stderr = run.stderr();
  assert!(
    stderr.contains(
      "`with.url` must be an https:// URL (http:// only to a loopback host), not http://hooks.example.com"
    ),
    "{stderr}"
  );
  assert!(!stderr.contains("secret-path-3f1"), "{stderr}");
  assert!(capture.seen().is_empty());
}

/// The README's receiver-side verification snippet, run with python3 over `(body, timestamp,
/// signature)`; prints what `verify` returned.
fn readme_verify(secret: &str, body: &str, timestamp: &str, signature: &str) -> String {
  let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
  let (_, after) = readme
    .split_once("<!-- webhook-verification -->")
    .expect("the README marks its verification snippet");
  let snippet = after
    .split_once("```python\n")
    .and_then(|(_, code)| code.split_once("```"))
    .map(|(code, _)| code)
    .expect("a python block after the marker");
  let program = format!(
    "{snippet}\nimport os\nprint(verify(os.environb[b'SECRET'], os.environb[b'BODY'], \
     os.environ['TIMESTAMP'], os.environ['SIGNATURE']))\n"
  );
  let output = std::process::Command::new("python3")
    .args(["-c", &program])
    .env("SECRET", secret)
    .env("BODY", body)
    .env("TIMESTAMP", timestamp)
    .env("SIGNATURE", signature)
    .output()
    .expect("python3 runs");
  assert!(
    output.status.success(),
    "{}",
    String::from_utf8_lossy(&output.stderr)
  );
  String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn webhook_signatures_cover_a_timestamp_and_the_readme_verifies_them() {
  let capture = Capture::start(&[]);
  let steps = format!(
    "  - id: hook\n    action: notify.webhook\n    with: {{ url: \"{}\", hmac_secret: \"${{{{ secrets.HOOK_SECRET }}}}\", body: {{ event: drill }} }}\n",
    capture.url("/hook")
  );
  let test = Test::new()
    .file("notify.yaml", &runbook(&steps))
    .env("HOOK_SECRET", "hook-secret");
  test.run_args(run_args(&[])).status(0);
  let hook = capture.seen().pop().unwrap();
  let timestamp = hook.headers["x-drctl-timestamp"].clone();
  let now = chrono::Utc::now().timestamp();
  let sent: i64 = timestamp.parse().unwrap();
  assert!((now - 60..=now).contains(&sent), "{timestamp} vs {now}");
  let signature = hook.headers["x-drctl-signature"].clone();
  // Recomputed here, independently of drctl: HMAC-SHA256 over `timestamp.body`.
  assert_eq!(
    signature,
    format!(
      "sha256={}",
      hmac_sha256_hex(
        b"hook-secret",
        format!("{timestamp}.{}", hook.body).as_bytes()
      )
    )
  );

  assert_eq!(
    readme_verify("hook-secret", &hook.body, &timestamp, &signature),
    "True"
  );
  // Another key, another body, a replayed signature under a fresh timestamp: refused.
  assert_eq!(
    readme_verify("other", &hook.body, &timestamp, &signature),
    "False"
  );
  assert_eq!(
    readme_verify("hook-secret", "{}", &timestamp, &signature),
    "False"
  );
  let later = (sent + 5).to_string();
  assert_eq!(
    readme_verify("hook-secret", &hook.body, &later, &signature),
    "False"
  );
  // An old (replayed) request whose signature is right: refused for its age.
  let old = (sent - 3600).to_string();
  let old_signature = format!(
    "sha256={}",
    hmac_sha256_hex(b"hook-secret", format!("{old}.{}", hook.body).as_bytes())
  );
  assert_eq!(
    readme_verify("hook-secret", &hook.body, &old, &old_signature),
    "False"
  );
}
