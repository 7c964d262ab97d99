//! Commands that read and describe: schema, graph, plan and dry runs, and exit codes.

use crate::support::Test;

#[test]
fn schema_is_a_json_schema_covering_every_action() {
  let run = Test::new().args(["schema"]).run().status(0);
  let schema: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
  assert!(schema["$schema"]
    .as_str()
    .unwrap()
    .contains("json-schema.org"));
  let text = run.stdout();
  for action in [
    "rds.promote_replica",
    "route53.failover",
    "ecs.scale_service",
    "notify.pagerduty",
    "wait.until",
  ] {
    assert!(text.contains(action), "schema lacks {action}");
  }
}

#[test]
fn graph_prints_mermaid_edges() {
  let run = Test::new()
    .args(["graph", "runbooks/regional-failover.yaml"])
    .run()
    .status(0);
  let text = run.stdout();
  assert!(text.starts_with("flowchart TD\n"));
  assert!(text.contains("  promote_db --> flip_dns\n"));
  assert!(text.contains("  scale_standby --> flip_dns\n"));
}

#[test]
fn plan_lists_every_step_with_its_change_and_the_critical_path_against_the_rto() {
  let test = Test::new();
  let run = test
    .run_args([
      "plan",
      "runbooks/regional-failover.yaml",
      "-p",
      "target_region=us-west-2",
      "--sim",
      "--output",
      "json",
    ])
    .status(0);
  let plan: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
  let steps = plan["steps"].as_array().unwrap();
  // The hand-run runbook's eight, its target health check (`standby-targets`, before
  // `verify-secondary`), and the two fences of the old primary after the flip.
  assert_eq!(steps.len(), 11);
  let step = |id: &str| steps.iter().find(|step| step["id"] == id).unwrap().clone();
  for step in steps {
    assert!(step["mutating"].is_boolean(), "{step}");
  }
  let promote = step("promote-db");
  assert_eq!(promote["mutating"], true);
  assert_eq!(promote["status"], "would_change");
  assert!(promote["current"]
    .as_str()
    .unwrap()
    .contains("replica of arn:aws:rds:us-east-1"));
  assert!(promote["change"]
    .as_str()
    .unwrap()
    .contains("promote `app-db-replica`"));
  assert_eq!(
    promote["mutating_operations"],
    serde_json::json!(["PromoteReadReplica"])
  );
  let scale = step("scale-standby");
  assert_eq!(scale["change"], "desired count 0 -> 3");
  let retire = step("fence-source-db");
  assert_eq!(retire["status"], "would_change");
  assert_eq!(
    retire["mutating_operations"],
    serde_json::json!(["AddTagsToResource"])
  );
  assert_eq!(step("verify-outage")["status"], "probe_passed");
  assert_eq!(step("verify-secondary")["status"], "after_dependencies");
  assert_eq!(
    plan["critical_path"],
    serde_json::json!([
      "verify-outage",
      "check-replica-lag",
      "promote-db",
      "flip-dns",
      "verify-secondary"
    ])
  );
  assert_eq!(plan["estimated_duration"], "8m40s");
  assert_eq!(plan["rto"], "15m");
  assert_eq!(plan["fits_rto"], true);
  // A plan changes nothing and leaves no run behind.
  assert!(test.run_ids().is_empty());
}

#[test]
fn dry_run_makes_no_run_and_no_change() {
  let test = Test::new();
  let run = test
    .run_args(["failover", "us-west-2", "--dry-run", "--sim"])
    .status(0);
  assert!(
    run.stdout().contains("nothing was changed (dry run)"),
    "{}",
    run.stdout()
  );
  assert!(run
    .stdout()
    .contains("promote-db [rds.promote_replica] mutating — would change"));
  assert!(test.run_ids().is_empty());
}

#[test]
fn bad_params_are_usage_errors() {
  let test = Test::new();
  let run = test
    .run_args(["failover", "eu-central-9", "--sim", "--yes"])
    .status(2);
  assert!(run.stderr().contains("eu-central-9"), "{}", run.stderr());
  let run = test
    .run_args(["run", "runbooks/regional-failover.yaml", "--sim", "--yes"])
    .status(2);
  assert!(run.stderr().contains("target_region"), "{}", run.stderr());
}

#[test]
fn a_runbook_or_drill_that_does_not_load_is_reported_once_per_error_with_exit_2() {
  let test = Test::new()
    .file("runbooks/empty.yaml", "")
    .file("drills/empty.yaml", "");
  let run = test
    .run_args(["run", "missing.yaml", "--sim", "--yes"])
    .status(2);
  assert!(
    run
      .stderr()
      .starts_with("error: cannot read the runbook: No such file or directory"),
    "{}",
    run.stderr()
  );
  let run = test
    .run_args(["run", "runbooks/empty.yaml", "--sim", "--yes"])
    .status(2);
  assert!(
    run
      .stderr()
      .starts_with("error: the runbook is empty\n --> runbooks/empty.yaml:1:1"),
    "{}",
    run.stderr()
  );
  // A drill file's own words, not a runbook's.
  let run = test.run_args(["drill", "list"]).status(2);
  assert!(
    run
      .stderr()
      .starts_with("error: the drill file is empty\n --> drills/empty.yaml:1:1"),
    "{}",
    run.stderr()
  );
  assert!(run.stderr().contains("`kind: Drill`"), "{}", run.stderr());
  assert!(test.run_ids().is_empty());
}

#[test]
fn a_run_that_misses_its_rto_ends_breached_with_exit_3() {
  let test = Test::new().file(
    "slow.yaml",
    r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: slow }
objectives: { rto: 1m }
steps:
  - id: recover
    action: wait.sleep
    with: { duration: 2m }
  - id: tell
    action: wait.sleep
    needs: [recover]
    recovery: false
    with: { duration: 1m }
"#,
  );
  let run = test
    .run_args(["run", "slow.yaml", "--sim", "--time-scale", "60"])
    .status(3);
  // Scheduling delays on a loaded machine are multiplied by the time scale: check the verdict,
  // not the exact figure.
  assert!(run.stdout().contains("RTO achieved 2m"), "{}", run.stdout());
  assert!(
    run.stdout().contains("/ target 1m  BREACHED"),
    "{}",
    run.stdout()
  );
  assert!(run.stdout().contains("result: breached"));
}

#[test]
fn a_live_failover_without_a_terminal_or_yes_is_refused_before_any_change() {
  let test = Test::new();
  let run = test
    .run_args(["failover", "us-west-2", "--sim", "--time-scale", "200"])
    .status(1);
  assert!(
    run.stderr().contains(
      "a live failover needs the operator to confirm the target region on a terminal, or --yes"
    ),
    "{}",
    run.stderr()
  );
  assert!(test.run_ids().is_empty(), "no run was started");
}

// --- The live view on a real terminal -------------------------------------------------------

/// Runs a command on a fresh pseudo-terminal of `COLUMNS`×`ROWS` (Python's `pty`), copies
/// everything it wrote to the terminal to stdout, and exits with its exit code.
const PTY_RUNNER: &str = r#"
import fcntl, os, pty, struct, sys, termios
cols, rows = int(sys.argv[1]), int(sys.argv[2])
argv = sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(sys.stdout.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.execv(argv[0], argv)
out = bytearray()
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(bytes(out))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

const COLUMNS: usize = 80;

/// What a program wrote to a terminal, and its exit code.
struct Terminal {
  text: String,
  code: i32,
}

fn on_a_terminal(test: &Test, args: &[&str]) -> Terminal {
  let output = std::process::Command::new("python3")
    .arg("-c")
    .arg(PTY_RUNNER)
    .arg(COLUMNS.to_string())
    .arg("40")
    .arg(crate::support::BIN)
    .args(args)
    .current_dir(test.path())
    .env("TERM", "xterm")
    .env("NO_COLOR", "1")
    .env_remove("SLACK_WEBHOOK_URL")
    .env_remove("DRCTL_PROGRESS")
    .output()
    .expect("python3 runs");
  Terminal {
    text: String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n"),
    code: output.status.code().unwrap_or(-1),
  }
}

/// The frames of the live view: the text between "cursor up N lines, clear to the end" codes,
/// each checked to be exactly N lines tall (so the redraw erased all of it), and the text after
/// the last frame.
fn frames(text: &str) -> (Vec<String>, String) {
  let mut pieces = Vec::new();
  let mut ups = Vec::new();
  // Warnings (an unset secret) are printed before the live view starts.
  let mut rest = text;
  while rest.starts_with("warning: ") {
    rest = rest.split_once('\n').map_or("", |(_, after)| after);
  }
  while let Some(at) = rest.find("\x1b[") {
    let after = &rest[at + 2..];
    let Some(end) = after.find("F\x1b[J") else {
      break;
    };
    let Ok(lines) = after[..end].parse::<usize>() else {
      break;
    };
    pieces.push(rest[..at].to_string());
    ups.push(lines);
    rest = &after[end + 4..];
  }
  assert!(!pieces.is_empty(), "no redraws: {text}");
  for (frame, up) in pieces.iter().zip(&ups) {
    assert_eq!(
      frame.lines().count(),
      *up,
      "the redraw moved up {up} lines over a frame of another height:\n{frame}"
    );
  }
  // After the last redraw: the final frame, then the summary (after a blank line).
  let (last, summary) = rest.split_once("\n\n").unwrap_or((rest, ""));
  pieces.push(format!("{last}\n"));
  (pieces, summary.to_string())
}

fn row<'a>(frame: &'a str, step: &str) -> &'a str {
  frame
    .lines()
    .find(|line| line.split_whitespace().nth(1) == Some(step))
    .unwrap_or_else(|| panic!("no row for {step} in\n{frame}"))
}

/// A duration as the view prints it: `0.4s`, `17s`, `2m25s`.
fn is_duration(text: &str) -> bool {
  let Some(number) = text.trim_end_matches(',').strip_suffix('s') else {
    return false;
  };
  !number.is_empty()
    && number
      .split('m')
      .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

const FAILOVER_STEPS: [&str; 8] = [
  "verify-outage",
  "probe-public",
  "check-replica-lag",
  "promote-db",
  "scale-standby",
  "flip-dns",
  "verify-secondary",
  "notify",
];

/// Every frame fits the terminal, shows every step, and the RTO clock against its target; the
/// last one shows each step's final state with its elapsed time and the clock stopped at the RTO
/// achieved. Returns the frames.
fn assert_live_view(terminal: &Terminal, title: &str) -> Vec<String> {
  assert!(
    !terminal.text.contains("[   0."),
    "the plain renderer ran instead:\n{}",
    terminal.text
  );
  let (frames, summary) = frames(&terminal.text);
  assert!(frames.len() > 10, "only {} frames", frames.len());
  for frame in &frames {
    assert!(frame.starts_with(title), "{frame}");
    for line in frame.lines() {
      assert!(
        line.chars().count() <= COLUMNS,
        "wider than the terminal ({} > {COLUMNS}): {line}",
        line.chars().count()
      );
    }
    let clock = frame.lines().nth(1).unwrap();
    assert!(
      clock.starts_with("RTO clock ") && clock.contains(" / target 15m  ["),
      "{clock}"
    );
    for step in FAILOVER_STEPS {
      row(frame, step);
    }
  }
  // States move: pending, running, waiting, succeeded.
  let first = &frames[0];
  assert!(row(first, "promote-db").contains("pending"), "{first}");
  let waiting: Vec<&str> = frames
    .iter()
    .map(|frame| row(frame, "promote-db"))
    .filter(|line| line.contains(" waiting "))
    .collect();
  assert!(!waiting.is_empty(), "promote-db never shown waiting");
  for line in &waiting {
    // `… promote-db  waiting  18s  replica status: modifying, still a replica, 17s`
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(is_duration(words[3]), "step elapsed in {line}");
    assert!(line.contains("replica status: modifying"), "{line}");
    assert!(is_duration(words.last().unwrap()), "wait elapsed in {line}");
  }
  let last = frames.last().unwrap();
  for step in FAILOVER_STEPS {
    let line = row(last, step);
    let words: Vec<&str> = line.split_whitespace().collect();
    if step == "notify" {
      assert_eq!(words[..3], ["-", "notify", "skipped"], "{line}");
    } else {
      assert_eq!(words[..3], ["✓", step, "succeeded"], "{line}");
      assert!(is_duration(words[3]), "{line}");
    }
  }
  // The clock stopped at the RTO achieved that the summary reports.
  let achieved = summary
    .lines()
    .find_map(|line| line.trim().strip_prefix("RTO achieved "))
    .and_then(|rest| rest.split_whitespace().next())
    .unwrap_or_else(|| panic!("no RTO achieved in the summary:\n{summary}"));
  let clock = last.lines().nth(1).unwrap();
  assert!(
    clock.starts_with(&format!("RTO clock {achieved} / target 15m"))
      && clock.ends_with("· run succeeded"),
    "{clock} (achieved {achieved})"
  );
  frames
}

#[test]
fn a_failover_on_a_terminal_shows_the_live_view() {
  let test = Test::new();
  let terminal = on_a_terminal(
    &test,
    &[
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "40",
    ],
  );
  assert_eq!(terminal.code, 0, "{}", terminal.text);
  let frames = assert_live_view(&terminal, "drctl run ");
  // The header is wider than 80 columns: clipped, not wrapped.
  assert!(
    frames[0].lines().next().unwrap().ends_with('…'),
    "{}",
    frames[0]
  );
  assert!(terminal.text.contains("result: succeeded"));
}

#[test]
fn a_drill_run_on_a_terminal_shows_the_live_view() {
  let mut test = Test::new();
  let drill =
    std::fs::read_to_string(crate::support::repo().join("drills/quarterly-regional-failover.yaml"))
      .unwrap();
  test = test.file("drills/quarterly-regional-failover.yaml", &drill);
  let terminal = on_a_terminal(&test, &["drill", "run", "quarterly-regional-failover"]);
  assert_eq!(terminal.code, 0, "{}", terminal.text);
  assert_live_view(&terminal, "drctl run ");
  assert!(
    terminal
      .text
      .contains("drill quarterly-regional-failover: passed"),
    "{}",
    terminal.text
  );
}

#[test]
fn global_flags_that_mean_nothing_for_a_command_are_refused() {
  for (args, flag) in [
    (vec!["schema", "--sim"], "--sim"),
    (vec!["schema", "--aws"], "--aws"),
    (vec!["schema", "--region", "us-east-1"], "--region"),
    (vec!["runs", "--sandbox"], "--sandbox"),
    (vec!["runs", "--time-scale", "5"], "--time-scale"),
    (vec!["runs", "--profile", "prod"], "--profile"),
    (vec!["report", "--aws"], "--aws"),
    (vec!["report", "--region", "eu-west-1"], "--region"),
    (vec!["unlock", "regional-failover", "--sim"], "--sim"),
    (
      vec!["unlock", "regional-failover", "--profile", "prod"],
      "--profile",
    ),
    (vec!["status", "--time-scale", "3"], "--time-scale"),
    (vec!["validate", "--aws"], "--aws"),
    (vec!["sandbox", "status", "--sim"], "--sim"),
    (vec!["sandbox", "up", "--aws"], "--aws"),
    (vec!["sandbox", "down", "--time-scale", "5"], "--time-scale"),
    (vec!["sandbox", "up", "--profile", "prod"], "--profile"),
  ] {
    let output = Test::new().args(args.clone()).run();
    assert_eq!(output.code(), 2, "{args:?}: {}", output.stdout());
    let command = args[0];
    assert!(
      output
        .stderr()
        .starts_with(&format!("error: {flag} has no effect on `drctl {command}`")),
      "{args:?}: {}",
      output.stderr()
    );
  }
  // --time-scale is the simulator's, --profile/--region AWS's.
  let output = Test::new()
    .args(["plan", "snapshot-age", "--aws", "--time-scale", "5"])
    .run();
  assert_eq!(output.code(), 2, "{}", output.stdout());
  assert!(
    output
      .stderr()
      .starts_with("error: --time-scale has no effect on the aws backend"),
    "{}",
    output.stderr()
  );
  let output = Test::new()
    .args(["plan", "snapshot-age", "--sim", "--region", "us-east-1"])
    .run();
  assert_eq!(output.code(), 2, "{}", output.stdout());
  assert!(
    output
      .stderr()
      .starts_with("error: --region has no effect on the sim backend"),
    "{}",
    output.stderr()
  );
}

#[test]
fn report_defaults_to_the_latest_run() {
  let test = Test::new();
  let output = test.run_args(["run", "snapshot-age", "--sim", "--yes"]);
  assert_eq!(output.code(), 0, "{}{}", output.stdout(), output.stderr());
  let run_id = test.run_ids().pop().unwrap();
  let output = test.run_args(["report", "--format", "json"]);
  assert_eq!(output.code(), 0, "{}{}", output.stdout(), output.stderr());
  let report: serde_json::Value = serde_json::from_str(&output.stdout()).unwrap();
  assert_eq!(report["run_id"], run_id.as_str(), "{report}");
  let output = Test::new().args(["report"]).run();
  assert_eq!(output.code(), 2);
  assert!(
    output.stderr().starts_with("error: no runs in"),
    "{}",
    output.stderr()
  );
}

/// `failover REGION` and the global `--region` are two arguments: `--region` after `failover`
/// is the AWS default region (refused on the simulator, where it means nothing), and it never
/// changes the region failed over to.
#[test]
fn failover_region_and_the_region_flag_are_separate_arguments() {
  let output = Test::new()
    .args([
      "failover",
      "us-west-2",
      "--dry-run",
      "--region",
      "eu-west-1",
    ])
    .run();
  assert_eq!(output.code(), 2, "{}", output.stderr());
  assert!(
    output
      .stderr()
      .starts_with("error: --region has no effect on the sim backend"),
    "{}",
    output.stderr()
  );
  // On AWS (a closed loopback endpoint): accepted, and the target is still us-west-2.
  let output = crate::support::origin::aws_test()
    .args([
      "failover",
      "us-west-2",
      "--dry-run",
      "--aws",
      "--region",
      "eu-west-1",
      "--output",
      "json",
    ])
    .run();
  assert!(
    !output.stderr().contains("unexpected argument"),
    "{}",
    output.stderr()
  );
  let said = format!("{}{}", output.stdout(), output.stderr());
  assert!(said.contains("\"target_region\": \"us-west-2\""), "{said}");
  assert!(!said.contains("eu-west-1\""), "{said}");
}
