//! Secrets: a canary secret goes through `${{ secrets.CANARY }}` into every field that takes a
//! secret — `http.check` headers, `exec.command` env (whose program prints it on stdout and
//! stderr), the Slack webhook URL, the PagerDuty routing key, a webhook's URL query, headers and
//! HMAC key — while runs succeed, retry (5xx), fail (a command exiting 3 that prints the secret, a
//! 403, an unreachable URL) and are SIGKILLed and resumed. Notifications reach a capture server
//! on loopback (the simulator passes loopback POSTs through), which checks that the secret did
//! get where it was sent: zero leaks from a secret that never travelled would prove nothing.
//!
//! The canary is then counted — raw, base64 (all three alignments), URL-encoded and JSON-escaped
//! — in the stdout and stderr of every process (text and `--output json`; `DRCTL_LOG=debug` text
//! logs and `DRCTL_LOG=trace` JSON logs, every crate's; `plan` and `run --dry-run` too), every file under the state directory (journals, the simulator's world
//! and operation log, locks), `drctl status`/`runs`, and every report format
//! (`drctl report RUN --format json|md|junit|html`, to stdout and to a file).

use std::{
  path::{Path, PathBuf},
  process::Stdio,
  time::{Duration, Instant},
};

use crate::{
  support::{capture::Capture, Test},
  Config, Figure,
};

const SECTION: &str = "secrets";
/// The canary: characters that URL-encoding changes (`/`, `+`, `=`), so encoded forms differ
/// from the raw one.
const CANARY: &str = "cAnArY-7f3/9x+Qz=w8Lk";

/// Every secret-taking field, each fed the canary. `exec-env` prints the secret (stdout and
/// stderr) and exits with `exit_code`.
const RUNBOOK: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: secrets-canary }
params:
  hook: { type: string, required: true }
  exit_code: { type: int, default: 0 }
defaults: { timeout: 1m, retry: { attempts: 3, backoff: 100ms, max_backoff: 200ms } }
steps:
  - id: probe
    action: http.check
    with:
      url: https://api.example.com/health
      expect_status: 503
      headers: { Authorization: "Bearer ${{ secrets.CANARY }}", X-Api-Key: "${{ secrets.CANARY }}" }
  - id: exec-env
    action: exec.command
    needs: [probe]
    on_failure: continue
    retry: { attempts: 1 }
    with:
      argv: [sh, -c, 'test "${#TOKEN}" -eq 21 || exit 9; echo "token=$TOKEN"; echo "token=$TOKEN" >&2; exit "$CODE"']
      env: { TOKEN: "${{ secrets.CANARY }}", CODE: "${{ params.exit_code }}" }
  - id: slack
    action: notify.slack
    needs: [exec-env]
    with: { webhook: "${{ params.hook }}/slack/${{ secrets.CANARY }}", text: "failover drill ${{ run.id }}" }
  - id: pagerduty
    action: notify.pagerduty
    needs: [exec-env]
    with: { routing_key: "${{ secrets.CANARY }}", summary: "drill", url: "${{ params.hook }}/pagerduty" }
  - id: webhook
    action: notify.webhook
    needs: [exec-env]
    with:
      url: "${{ params.hook }}/hook?token=${{ secrets.CANARY }}"
      headers: { X-Token: "${{ secrets.CANARY }}", Authorization: "Bearer ${{ secrets.CANARY }}" }
      hmac_secret: "${{ secrets.CANARY }}"
      body: { note: hello }
  - id: pause
    action: wait.sleep
    needs: [slack, pagerduty, webhook]
    with: { duration: 30s }
  - id: final
    action: exec.command
    needs: [pause]
    with:
      argv: [sh, -c, 'echo "done with $TOKEN"']
      env: { TOKEN: "${{ secrets.CANARY }}" }
"#;

/// The forms a leaked canary could take.
fn forms() -> Vec<(&'static str, String)> {
  forms_of(CANARY)
}

/// The forms a leaked secret could take: raw, URL-encoded, JSON-escaped, base64 (the
/// characters that depend on the secret alone, at each alignment).
pub(crate) fn forms_of(secret: &str) -> Vec<(&'static str, String)> {
  let json = serde_json::to_string(secret).unwrap();
  let mut forms = vec![
    ("raw", secret.to_string()),
    ("url-encoded", url_encode(secret)),
    ("json", json[1..json.len() - 1].to_string()),
  ];
  // Base64 of the secret at each of the three alignments it can have inside a longer text: the
  // characters that depend on the secret alone.
  for offset in 0..3 {
    let mut bytes = vec![b'x'; offset];
    bytes.extend(secret.as_bytes());
    let encoded = base64(&bytes);
    // Character i covers bits [6i, 6i + 6): those wholly inside the secret's bits.
    let (start, end) = (offset * 8, (offset + secret.len()) * 8);
    let core: String = encoded
      .chars()
      .enumerate()
      .filter(|(i, _)| 6 * i >= start && 6 * i + 6 <= end)
      .map(|(_, c)| c)
      .collect();
    forms.push(("base64", core));
  }
  forms.retain(|(_, form)| !form.is_empty());
  forms.sort();
  forms.dedup_by(|a, b| a.1 == b.1);
  forms
}

fn url_encode(text: &str) -> String {
  text
    .bytes()
    .map(|byte| match byte {
      b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
        (byte as char).to_string()
      }
      other => format!("%{other:02X}"),
    })
    .collect()
}

fn base64(bytes: &[u8]) -> String {
  const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  let mut out = String::new();
  for chunk in bytes.chunks(3) {
    let n = chunk.iter().enumerate().fold(0u32, |acc, (i, byte)| {
      acc | (u32::from(*byte) << (16 - 8 * i))
    });
    for i in 0..4 {
      if i <= chunk.len() {
        out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
      } else {
        out.push('=');
      }
    }
  }
  out
}

/// Occurrences of every form of the canary in `text`.
pub(crate) fn occurrences(text: &str, forms: &[(&'static str, String)]) -> usize {
  forms
    .iter()
    .map(|(_, form)| text.matches(form.as_str()).count())
    .sum()
}

/// Where leaks are counted, and what was found.
#[derive(Default)]
struct Leaks {
  output: usize,
  files: usize,
  reports: usize,
  status: usize,
  /// Where each leak was (for the log).
  places: Vec<String>,
}

/// Every process's output goes to a file in `outputs` (outside the state directory).
struct Scenario {
  test: Test,
  outputs: PathBuf,
  capture: Capture,
  processes: usize,
}

impl Scenario {
  fn new() -> Scenario {
    let test = Test::new()
      .file("secrets.yaml", RUNBOOK)
      .env("CANARY", CANARY);
    let outputs = test.path().join("outputs");
    std::fs::create_dir_all(&outputs).expect("create the outputs directory");
    Scenario {
      test,
      outputs,
      capture: Capture::start(&[]),
      processes: 0,
    }
  }

  /// `run` of the canary runbook. JSON output runs log at `trace` (every crate's logs, JSON),
  /// text output runs at `debug` (text).
  fn run_args(&self, hook: &str, exit_code: i32, output: &str) -> Vec<String> {
    self.run_args_at(hook, exit_code, output, "100")
  }

  fn run_args_at(&self, hook: &str, exit_code: i32, output: &str, time_scale: &str) -> Vec<String> {
    [
      "run",
      "secrets.yaml",
      "--sim",
      "--yes",
      "--time-scale",
      time_scale,
      "-p",
      &format!("hook={hook}"),
      "-p",
      &format!("exit_code={exit_code}"),
      "--output",
      output,
    ]
    .map(String::from)
    .to_vec()
  }

  fn spawn(&mut self, args: &[String]) -> std::process::Child {
    self.processes += 1;
    let stdout = self.outputs.join(format!("{}.stdout", self.processes));
    let stderr = self.outputs.join(format!("{}.stderr", self.processes));
    let level = if args.iter().any(|arg| arg == "json") {
      "trace"
    } else {
      "debug"
    };
    self
      .test
      .command(args)
      .env("DRCTL_LOG", level)
      .stdout(Stdio::from(std::fs::File::create(stdout).unwrap()))
      .stderr(Stdio::from(std::fs::File::create(stderr).unwrap()))
      .spawn()
      .expect("drctl starts")
  }

  /// Run to the end; the exit code.
  fn run(&mut self, args: &[String]) -> i32 {
    let mut child = self.spawn(args);
    match wait_until(&mut child, Duration::from_secs(180)) {
      Some(code) => code,
      None => {
        let _ = child.kill();
        let _ = child.wait();
        -1
      }
    }
  }

  /// The last lines the latest process wrote to stderr (for a run that ended unexpectedly).
  fn last_stderr(&self) -> String {
    let text = std::fs::read_to_string(self.outputs.join(format!("{}.stderr", self.processes)))
      .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
  }

  /// The newest run id.
  fn last_run(&self) -> Option<String> {
    self.test.run_ids().pop()
  }
}

pub(crate) fn wait_until(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
  let start = Instant::now();
  loop {
    if let Ok(Some(status)) = child.try_wait() {
      return Some(status.code().unwrap_or(-1));
    }
    if start.elapsed() >= limit {
      return None;
    }
    std::thread::sleep(Duration::from_millis(5));
  }
}

/// What the scenarios did, to show the counts mean something.
#[derive(Default)]
struct Activity {
  succeeded: usize,
  failed: usize,
  retries: usize,
  kills: usize,
  /// Requests at the capture server, and those that carried the canary (every one should: each
  /// notification is sent with it).
  requests: usize,
  delivered: usize,
  /// Runs whose exec step saw the secret in its environment (its length check passed).
  exec_saw_it: usize,
}

pub fn run(config: &Config) -> Vec<Figure> {
  let forms = forms();
  let mut leaks = Leaks::default();
  let mut activity = Activity::default();
  let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x5EC2E7);

  // Succeed, in text and in JSON.
  let mut scenarios = Vec::new();
  let mut succeed = Scenario::new();
  let hook = succeed.capture.url("");
  for output in ["text", "json"] {
    let code = succeed.run(&succeed.run_args(&hook, 0, output));
    tally_run(&mut activity, &succeed, code, 0);
  }
  // The dry-run views of the same runbook: `plan` and `run --dry-run` describe every change.
  for output in ["text", "json"] {
    let mut plan: Vec<String> = ["plan", "secrets.yaml", "--sim", "-p"]
      .map(String::from)
      .to_vec();
    plan.extend([format!("hook={hook}"), "--output".into(), output.into()]);
    let mut dry_run = succeed.run_args(&hook, 0, output);
    dry_run.push("--dry-run".into());
    for args in [plan, dry_run] {
      let code = succeed.run(&args);
      if code != 0 {
        eprintln!(
          "   secrets: `drctl {}` exited {code}:\n{}",
          args.join(" "),
          succeed.last_stderr()
        );
      }
    }
  }
  scenarios.push(succeed);

  // Retry: 5xx twice, then 200 — for each notification.
  let mut retry = Scenario::new();
  let hook = retry.capture.url("");
  for output in ["text", "json"] {
    retry.capture.script(&[500, 502, 503]);
    let code = retry.run(&retry.run_args(&hook, 0, output));
    tally_run(&mut activity, &retry, code, 0);
  }
  scenarios.push(retry);

  // Fail: the command exits 3 after printing the secret, the webhook answers 403 (not retried).
  let mut fail = Scenario::new();
  let hook = fail.capture.url("");
  for output in ["text", "json"] {
    fail
      .capture
      .script(&[403, 403, 403, 403, 403, 403, 403, 403, 403]);
    let code = fail.run(&fail.run_args(&hook, 3, output));
    tally_run(&mut activity, &fail, code, 1);
  }
  scenarios.push(fail);

  // Fail: the hook is unreachable (a closed loopback port): the transport error names the URL.
  let mut unreachable = Scenario::new();
  let closed = format!("http://127.0.0.1:{}", crate::support::refused_port());
  for output in ["text", "json"] {
    let code = unreachable.run(&unreachable.run_args(&closed, 0, output));
    tally_run(&mut activity, &unreachable, code, 1);
  }
  scenarios.push(unreachable);

  // Crash: SIGKILL at random instants, resume (the secret comes from the environment again).
  let mut crash = Scenario::new();
  let hook = crash.capture.url("");
  for output in ["text", "json"] {
    // At 20× the run lasts about 2 s, so the kills land in the notifications and the pause.
    let args = crash.run_args_at(&hook, 0, output, "20");
    let mut child = crash.spawn(&args);
    let mut finished = None;
    for _ in 0..3 {
      if let Some(code) = wait_until(&mut child, Duration::from_millis(rng.u64(50..1200))) {
        finished = Some(code);
        break;
      }
      let _ = child.kill();
      let _ = child.wait();
      activity.kills += 1;
      let Some(run_id) = crash.last_run() else {
        crash.test.run_args(["unlock", "secrets-canary"]);
        child = crash.spawn(&args);
        continue;
      };
      child = crash.spawn(&[
        "resume".into(),
        run_id,
        "--yes".into(),
        "--output".into(),
        output.into(),
      ]);
    }
    let code = match finished {
      Some(code) => code,
      None => wait_until(&mut child, Duration::from_secs(180)).unwrap_or(-1),
    };
    let code = if code == 0 {
      0
    } else {
      match crash.last_run() {
        Some(run_id) => crash.run(&["resume".into(), run_id, "--yes".into()]),
        None => code,
      }
    };
    tally_run(&mut activity, &crash, code, 0);
  }
  scenarios.push(crash);

  for scenario in &mut scenarios {
    count_scenario(scenario, &forms, &mut leaks, &mut activity);
  }
  for place in leaks.places.iter().take(10) {
    eprintln!("   secrets: leak in {place}");
  }

  let total_runs = activity.succeeded + activity.failed;
  vec![
    Figure::new(
      SECTION,
      "SIGKILLs (then resumed)",
      activity.kills,
      ">= 2",
      activity.kills >= 2,
    ),
    Figure::info(
      SECTION,
      "runs (succeeded / failed / SIGKILLs)",
      format!(
        "{} / {} / {}",
        activity.succeeded, activity.failed, activity.kills
      ),
    ),
    Figure::new(
      SECTION,
      "runs ending as planned",
      format!("{total_runs}/10"),
      "10/10",
      total_runs == 10,
    ),
    Figure::new(
      SECTION,
      "retries spent (5xx answers)",
      activity.retries,
      ">= 1",
      activity.retries >= 1,
    ),
    Figure::new(
      SECTION,
      "notifications that carried the canary",
      format!("{}/{}", activity.delivered, activity.requests),
      "all (>= 18)",
      activity.requests >= 18 && activity.delivered == activity.requests,
    ),
    Figure::new(
      SECTION,
      "runs whose command saw it in its env",
      activity.exec_saw_it,
      ">= 8",
      activity.exec_saw_it >= 8,
    ),
    Figure::new(
      SECTION,
      "canary in stdout/stderr/logs (text, json)",
      leaks.output,
      "0",
      leaks.output == 0,
    ),
    Figure::new(
      SECTION,
      "canary in journals and state files",
      leaks.files,
      "0",
      leaks.files == 0,
    ),
    Figure::new(
      SECTION,
      "canary in status and runs",
      leaks.status,
      "0",
      leaks.status == 0,
    ),
    Figure::new(
      SECTION,
      "canary in reports (json, md, junit, html)",
      leaks.reports,
      "0",
      leaks.reports == 0,
    ),
  ]
}

/// Count a run that ended with `code` where `expected` was wanted.
fn tally_run(activity: &mut Activity, scenario: &Scenario, code: i32, expected: i32) {
  if code != expected {
    // Printed before the canary is counted: the redacted output is what drctl wrote.
    eprintln!(
      "   secrets: a run exited {code}, expected {expected}:\n{}",
      scenario.last_stderr()
    );
    return;
  }
  if code == 0 {
    activity.succeeded += 1;
  } else {
    activity.failed += 1;
  }
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
  let mut files = Vec::new();
  for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
    let path = entry.path();
    if path.is_dir() {
      files.extend(walk(&path));
    } else {
      files.push(path);
    }
  }
  files
}

fn count_scenario(
  scenario: &mut Scenario,
  forms: &[(&'static str, String)],
  leaks: &mut Leaks,
  activity: &mut Activity,
) {
  let test = &scenario.test;
  // What reached the capture server: the secret should have (it is where it was sent).
  for request in scenario.capture.seen() {
    let text = format!("{} {:?} {}", request.path, request.headers, request.body);
    activity.requests += 1;
    if occurrences(&text, forms) > 0 {
      activity.delivered += 1;
    }
  }
  for run_id in test.run_ids() {
    let journal = test.journal(&run_id);
    activity.retries += journal.matches(r#""will_retry":true"#).count();
    if journal.contains(r#""step":"exec-env""#)
      && !journal.contains("exit code 9")
      && journal.contains(r#""event":"step_intent""#)
    {
      activity.exec_saw_it += usize::from(journal.contains("token=***"));
    }
    // Status, in both formats, and the run list.
    for args in [
      vec!["status".to_string(), run_id.clone()],
      vec![
        "status".into(),
        run_id.clone(),
        "--output".into(),
        "json".into(),
      ],
      vec!["runs".into()],
      vec!["runs".into(), "--output".into(), "json".into()],
    ] {
      let run = test.run_args(&args);
      let found = occurrences(&run.stdout(), forms) + occurrences(&run.stderr(), forms);
      if found > 0 {
        leaks.places.push(format!("`drctl {}`", args.join(" ")));
      }
      leaks.status += found;
    }
    // Every report format, to stdout and to a file.
    for format in ["json", "md", "junit", "html"] {
      let run = test.run_args(["report", &run_id, "--format", format]);
      let mut found = occurrences(&run.stdout(), forms) + occurrences(&run.stderr(), forms);
      if run.code() != 0 {
        eprintln!(
          "   secrets: report --format {format} exited {}: {}",
          run.code(),
          run.stderr().trim()
        );
      }
      let file = scenario.outputs.join(format!("report-{run_id}.{format}"));
      let to_file = test.run_args([
        "report",
        &run_id,
        "--format",
        format,
        "-o",
        &file.to_string_lossy(),
      ]);
      found += occurrences(&to_file.stdout(), forms) + occurrences(&to_file.stderr(), forms);
      found += occurrences(
        &String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()),
        forms,
      );
      if found > 0 {
        leaks
          .places
          .push(format!("report {run_id} --format {format}"));
      }
      leaks.reports += found;
    }
  }
  // Everything the runs printed (stdout, stderr with debug logs).
  for path in walk(&scenario.outputs) {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if !(name.ends_with(".stdout") || name.ends_with(".stderr")) {
      continue;
    }
    let found = occurrences(
      &String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()),
      forms,
    );
    if found > 0 {
      leaks.places.push(path.display().to_string());
    }
    leaks.output += found;
  }
  // Every file under the state directory.
  for path in walk(&test.path().join(".drctl")) {
    let found = occurrences(
      &String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()),
      forms,
    );
    if found > 0 {
      leaks.places.push(path.display().to_string());
    }
    leaks.files += found;
  }
}
