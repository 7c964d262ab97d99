//! Run a local command (e.g. `psql` against a restored instance).
//!
//! Each command leads its own process group ([`ChildGroup`]): on a timeout or an interrupt the
//! group gets SIGTERM, then SIGKILL after [`GRACE`]; when the command exits, whatever it left
//! running in its group is SIGKILLed; when the step's task is dropped, the group is SIGKILLed.
//! The group is journalled as soon as it exists, for a drctl that is SIGKILLed itself.
//!
//! The child's environment is built, not inherited: PATH, HOME, LANG and TZ from drctl's, the
//! run's `DRCTL_RUN_ID` and `DRCTL_STEP`, then `env:`. `inherit_env: true` passes drctl's whole
//! environment except its AWS credentials and the variables behind `secrets.*`, which reach a
//! child only through `env:`.

use std::{collections::BTreeMap, ffi::OsString, process::Stdio, time::Duration};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{
  ActionDef, ActionError, ActionResult, Args, Behaviour, Ctx, Effect, Observation, Observed,
  Outcome,
};
use crate::{
  process_group::{self, ChildGroup, Signal},
  runbook::{ActionSpec, FieldKind, FieldSpec},
};

/// Output kept per stream (stdout, stderr); the rest is read and counted, not kept.
pub const CAPTURE_LIMIT: usize = 1 << 20;
/// Captured stderr quoted in a failure message (bytes).
const MESSAGE_LIMIT: usize = 4096;
/// Between SIGTERM and SIGKILL when a command is stopped.
const GRACE: Duration = Duration::from_secs(2);
/// How long output is still read after the command exited and its group was killed: only a
/// process that left the group (`setsid`) can hold the pipes open that long.
const DRAIN: Duration = Duration::from_secs(1);
/// What a child gets from drctl's environment by default.
const BASE_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];
/// drctl's AWS credentials: never passed down, even with `inherit_env: true`.
const CREDENTIAL_ENV: [&str; 5] = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_SECURITY_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

pub const COMMAND: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "exec.command",
    mutating: true,
    doc: "Run a command (argv, no shell) in its own process group with a minimal environment \
          plus `env`, a timeout and an expected exit code; the first MiB of stdout and of stderr \
          is captured. The whole group is killed on timeout, interrupt and exit.",
    fields: &[
      FieldSpec::required("argv", FieldKind::StringList, "Program and arguments"),
      FieldSpec::optional(
        "env",
        FieldKind::StringMap,
        "Environment variables for the command (pass secrets here, not in argv)",
      ),
      FieldSpec::optional(
        "inherit_env",
        FieldKind::Bool,
        "Pass drctl's whole environment (except AWS credentials and secrets) instead of only \
         PATH, HOME, LANG and TZ (default false)",
      ),
      FieldSpec::optional(
        "timeout",
        FieldKind::Duration,
        "Kill the command's process group after this long (default 5m)",
      ),
      FieldSpec::optional(
        "expect_exit",
        FieldKind::Int,
        "Expected exit code (default 0)",
      ),
      FieldSpec::optional("cwd", FieldKind::String, "Working directory"),
    ],
    calls: &[],
    outputs: &[
      "exit_code",
      "stdout",
      "stdout_cut_bytes",
      "stderr_cut_bytes",
    ],
  },
  behaviour: Behaviour::Effect(&Command),
};

struct Command;

/// One output stream: the first [`CAPTURE_LIMIT`] bytes, and how many came in all.
#[derive(Debug, Default)]
struct Capture {
  kept: Vec<u8>,
  total: u64,
}

impl Capture {
  fn push(&mut self, bytes: &[u8]) {
    self.total = self.total.saturating_add(bytes.len() as u64);
    let room = CAPTURE_LIMIT.saturating_sub(self.kept.len());
    self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
  }

  /// Bytes read but not kept.
  fn cut(&self) -> u64 {
    self.total.saturating_sub(self.kept.len() as u64)
  }

  fn text(&self) -> String {
    String::from_utf8_lossy(&self.kept).trim().to_string()
  }
}

/// A stream of the child's, read until it ends.
struct Stream<R> {
  pipe: Option<R>,
  capture: Capture,
}

impl<R: AsyncRead + Unpin> Stream<R> {
  fn new(pipe: Option<R>) -> Self {
    Stream {
      pipe,
      capture: Capture::default(),
    }
  }

  /// Read one chunk; at the end (or on a read error) the pipe is closed. Cancel-safe: a chunk is
  /// only consumed by the read that returns it.
  async fn read_some(&mut self, buffer: &mut [u8]) {
    let Some(pipe) = self.pipe.as_mut() else {
      return std::future::pending().await;
    };
    match pipe.read(buffer).await {
      Ok(0) | Err(_) => self.pipe = None,
      Ok(read) => self.capture.push(&buffer[..read]),
    }
  }

  fn open(&self) -> bool {
    self.pipe.is_some()
  }
}

/// Read both streams until both end.
async fn drain<A: AsyncRead + Unpin, B: AsyncRead + Unpin>(
  stdout: &mut Stream<A>,
  stderr: &mut Stream<B>,
) {
  let mut out_buffer = vec![0u8; 64 * 1024];
  let mut err_buffer = vec![0u8; 16 * 1024];
  while stdout.open() || stderr.open() {
    tokio::select! {
      () = stdout.read_some(&mut out_buffer) => {}
      () = stderr.read_some(&mut err_buffer) => {}
    }
  }
}

/// Wait for the child to exit, reading its output meanwhile (a child blocked on a full pipe
/// would never exit).
async fn wait_reading<A: AsyncRead + Unpin, B: AsyncRead + Unpin>(
  child: &mut tokio::process::Child,
  stdout: &mut Stream<A>,
  stderr: &mut Stream<B>,
) -> std::io::Result<std::process::ExitStatus> {
  let mut out_buffer = vec![0u8; 64 * 1024];
  let mut err_buffer = vec![0u8; 16 * 1024];
  loop {
    tokio::select! {
      status = child.wait() => return status,
      () = stdout.read_some(&mut out_buffer) => {}
      () = stderr.read_some(&mut err_buffer) => {}
    }
  }
}

/// Why a command stopped before it exited on its own.
enum Stopped {
  TimedOut,
  Interrupted,
}

/// Stop a command that overran or was interrupted: SIGTERM to its group, SIGKILL after
/// [`GRACE`] if the leader has not exited, and reap the leader.
async fn stop(child: &mut tokio::process::Child, group: &ChildGroup) {
  group.signal(Signal::Term);
  if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
    group.signal(Signal::Kill);
    let _ = child.wait().await;
  }
  // The leader may have exited on SIGTERM and left others behind.
  group.signal(Signal::Kill);
}

/// The child's environment (before `DRCTL_RUN_ID` and `DRCTL_STEP`): drctl's `parent`
/// environment filtered, then `given` (`env:`). `secret_vars` are the variables behind the
/// runbook's `secrets.*`.
fn child_env(
  parent: impl Iterator<Item = (OsString, OsString)>,
  inherit: bool,
  secret_vars: &[&str],
  given: BTreeMap<String, String>,
) -> BTreeMap<OsString, OsString> {
  let passed = |name: &OsString| {
    let name = name.to_str().unwrap_or_default();
    if inherit {
      !CREDENTIAL_ENV.contains(&name) && !secret_vars.contains(&name)
    } else {
      BASE_ENV.contains(&name)
    }
  };
  let mut env: BTreeMap<OsString, OsString> = parent.filter(|(name, _)| passed(name)).collect();
  env.extend(
    given
      .into_iter()
      .map(|(name, value)| (OsString::from(name), OsString::from(value))),
  );
  env
}

/// `" (stdout: N bytes cut after the first MiB)"`, or nothing.
fn cut_note(stdout_cut: u64, stderr_cut: u64) -> String {
  let parts: Vec<String> = [("stdout", stdout_cut), ("stderr", stderr_cut)]
    .into_iter()
    .filter(|(_, cut)| *cut > 0)
    .map(|(name, cut)| format!("{name}: {cut} bytes cut after the first MiB"))
    .collect();
  if parts.is_empty() {
    String::new()
  } else {
    format!(" ({})", parts.join(", "))
  }
}

fn clip(text: &str) -> String {
  if text.len() <= MESSAGE_LIMIT {
    return text.to_string();
  }
  let mut end = MESSAGE_LIMIT;
  while !text.is_char_boundary(end) {
    end -= 1;
  }
  format!("{}…", &text[..end])
}

/// `cancel` becoming true. A closed channel (no run behind the context) never cancels.
async fn cancelled(mut cancel: tokio::sync::watch::Receiver<bool>) {
  if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
    std::future::pending::<()>().await;
  }
}

#[async_trait::async_trait]
impl Effect for Command {
  async fn observe(&self, _ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let argv = args.string_list("argv");
    let program = argv.first().cloned().unwrap_or_default();
    Ok(Observation::new(
      Observed::Absent,
      "not run",
      format!("run `{program}`"),
    ))
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let argv = args.string_list("argv");
    let Some((program, rest)) = argv.split_first() else {
      return Err(ActionError::failed("`with.argv` is empty"));
    };
    let timeout = args
      .opt_duration("timeout")
      .unwrap_or(Duration::from_secs(300));
    let secret_vars: Vec<&str> = ctx
      .run
      .secrets
      .map(|secrets| secrets.keys().map(String::as_str).collect())
      .unwrap_or_default();
    let env = child_env(
      std::env::vars_os(),
      args.opt_bool("inherit_env").unwrap_or(false),
      &secret_vars,
      args.string_map("env"),
    );
    let mut command = tokio::process::Command::new(program);
    command
      .args(rest)
      .env_clear()
      .envs(env)
      .env(process_group::RUN_ID_VAR, ctx.run_id)
      .env("DRCTL_STEP", ctx.step_id)
      .stdin(Stdio::null())
      .stdout(Stdio::piped())
      .stderr(Stdio::piped())
      .process_group(0)
      .kill_on_drop(true);
    if let Some(cwd) = args.opt_str("cwd") {
      command.current_dir(cwd);
    }
    let mut child = command
      .spawn()
      .map_err(|err| ActionError::failed(format!("cannot run `{program}`: {err}")))?;
    // A child not yet waited for always has its pid.
    let Some(pid) = child.id() else {
      return Err(ActionError::failed(format!("`{program}`: no process id")));
    };
    // From here on, every way out of this function (an early return, the task dropped on a
    // second interrupt) kills the whole group.
    let group = ChildGroup::adopt(pid);
    let leader_start = process_group::start_time(pid).unwrap_or_default();
    ctx.process_started(group.pgid(), leader_start)?;
    let mut stdout = Stream::new(child.stdout.take());
    let mut stderr = Stream::new(child.stderr.take());
    let ended = tokio::select! {
      waited = tokio::time::timeout(timeout, wait_reading(&mut child, &mut stdout, &mut stderr)) => {
        waited.map_err(|_| Stopped::TimedOut)
      }
      () = cancelled(ctx.cancel.clone()) => Err(Stopped::Interrupted),
    };
    let status = match ended {
      Ok(status) => status.map_err(|err| ActionError::failed(format!("`{program}`: {err}")))?,
      Err(stopped) => {
        stop(&mut child, &group).await;
        return Err(match stopped {
          Stopped::TimedOut => ActionError::failed(format!(
            "`{program}` did not finish within {}; its process group was killed",
            super::human(timeout)
          )),
          Stopped::Interrupted => ActionError::retryable(format!(
            "interrupted while `{program}` ran; its process group was killed"
          )),
        });
      }
    };
    // The command exited: what it left running in its group goes with it, which also closes
    // the pipes those processes held.
    group.signal(Signal::Kill);
    let _ = tokio::time::timeout(DRAIN, drain(&mut stdout, &mut stderr)).await;
    drop(group);
    let code = status.code().unwrap_or(-1);
    let expected = args.opt_int("expect_exit").unwrap_or(0);
    let (stdout_cut, stderr_cut) = (stdout.capture.cut(), stderr.capture.cut());
    if i64::from(code) != expected {
      return Err(ActionError::failed(format!(
        "`{program}` exited {code}, expected {expected}{}: {}",
        cut_note(stdout_cut, stderr_cut),
        clip(&stderr.capture.text())
      )));
    }
    Ok(Some(
      serde_json::json!({
        "code": code,
        "stdout": stdout.capture.text(),
        "stdout_cut": stdout_cut,
        "stderr_cut": stderr_cut,
      })
      .to_string(),
    ))
  }

  async fn verify(
    &self,
    _ctx: &Ctx<'_>,
    args: &Args,
    token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let program = args
      .string_list("argv")
      .first()
      .cloned()
      .unwrap_or_default();
    let result: serde_json::Value = token
      .and_then(|token| serde_json::from_str(token).ok())
      .unwrap_or_default();
    let code = result["code"]
      .as_i64()
      .map_or(String::new(), |code| code.to_string());
    let stdout_cut = result["stdout_cut"].as_u64().unwrap_or_default();
    let stderr_cut = result["stderr_cut"].as_u64().unwrap_or_default();
    Ok(
      Outcome::new(format!(
        "`{program}` exited {code}{}",
        cut_note(stdout_cut, stderr_cut)
      ))
      .output("exit_code", code)
      .output("stdout", result["stdout"].as_str().unwrap_or_default())
      .output("stdout_cut_bytes", stdout_cut.to_string())
      .output("stderr_cut_bytes", stderr_cut.to_string()),
    )
  }
}
#[cfg(test)]
mod tests {
  use std::time::{Duration, Instant};

  use super::*;

  /// Live processes whose environment carries `DRCTL_RUN_ID=run_id`.
  fn marked(run_id: &str) -> Vec<u32> {
    let marker = format!("DRCTL_RUN_ID={run_id}");
    std::fs::read_dir("/proc")
      .unwrap()
      .flatten()
      .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
      .filter(|&pid| process_group::stat(pid).is_some_and(|stat| !stat.zombie))
      .filter(|pid| {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
          environ
            .split(|&byte| byte == 0)
            .any(|entry| entry == marker.as_bytes())
        })
      })
      .collect()
  }

  /// Marked processes still alive after a moment for kills to land.
  async fn survivors(run_id: &str) -> Vec<u32> {
    let start = Instant::now();
    loop {
      let found = marked(run_id);
      if found.is_empty() || start.elapsed() > Duration::from_secs(3) {
        return found;
      }
      std::thread::sleep(Duration::from_millis(20));
    }
  }

  fn unique_run_id(what: &str) -> String {
    format!(
      "exec-test-{what}-{}-{:08x}",
      std::process::id(),
      fastrand::u32(..)
    )
  }

  fn sim_cloud(dir: &std::path::Path) -> crate::cloud::Cloud {
    crate::cloud::sim::Sim::open(&crate::cloud::sim::SimOptions {
      world: None,
      time_scale: Some(1.0),
      dir: dir.join("sim"),
    })
    .unwrap()
    .cloud()
  }

  fn bind(with: serde_json::Value) -> Args {
    crate::actions::bind(COMMAND.spec, with.as_object().unwrap()).unwrap()
  }

  /// Two grandchildren that outlive their shell unless the whole group is killed.
  const GRANDCHILDREN: &str = "sleep 300 & sleep 300 & wait";

  /// Ctrl-C during a long check kills the command at once instead of waiting for it, so the
  /// run's clean-up (deleting a temporary instance) is not held up by a hung `psql`; and it kills
  /// the command's whole process group, not only the shell.
  #[tokio::test]
  async fn an_interrupt_kills_the_running_command_and_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = sim_cloud(dir.path());
    let run_id = unique_run_id("interrupt");
    let (interrupt, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(&cloud, &run_id, "check", &progress, cancel);
    let args = bind(serde_json::json!({ "argv": ["sh", "-c", GRANDCHILDREN] }));
    let watched = run_id.clone();
    tokio::spawn(async move {
      while marked(&watched).len() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
      }
      interrupt.send(true).unwrap();
    });
    let start = Instant::now();
    let err = Command.apply(&ctx, &args).await.unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert!(err.retryable);
    assert!(
      start.elapsed() < Duration::from_secs(10),
      "the command was waited for: {:?}",
      start.elapsed()
    );
    assert_eq!(survivors(&run_id).await, Vec::<u32>::new());
  }

  #[tokio::test]
  async fn a_timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = sim_cloud(dir.path());
    let run_id = unique_run_id("timeout");
    let (_interrupt, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(&cloud, &run_id, "check", &progress, cancel);
    let args = bind(serde_json::json!({ "argv": ["sh", "-c", GRANDCHILDREN], "timeout": "1s" }));
    let err = Command.apply(&ctx, &args).await.unwrap_err();
    assert!(
      err.to_string().contains("did not finish within 1s"),
      "{err}"
    );
    assert!(!err.retryable);
    assert_eq!(survivors(&run_id).await, Vec::<u32>::new());
  }

  /// A step task aborted mid-command (the engine dropped it) still kills the group, and the
  /// journal hook saw the group before that.
  #[tokio::test]
  async fn dropping_a_running_command_kills_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = sim_cloud(dir.path());
    let run_id = unique_run_id("drop");
    let (_interrupt, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let journalled = std::sync::Mutex::new(Vec::new());
    let hook = |pgid: u32, leader_start: u64| {
      journalled.lock().unwrap().push((pgid, leader_start));
      Ok(())
    };
    let ctx = Ctx {
      processes: Some(&hook),
      ..Ctx::new(&cloud, &run_id, "check", &progress, cancel)
    };
    let args = bind(serde_json::json!({ "argv": ["sh", "-c", GRANDCHILDREN] }));
    let apply = Command.apply(&ctx, &args);
    let watch = async {
      while marked(&run_id).len() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
      }
    };
    tokio::select! {
      _ = apply => panic!("the command ended on its own"),
      () = watch => {}
    }
    assert_eq!(survivors(&run_id).await, Vec::<u32>::new());
    let journalled = journalled.lock().unwrap().clone();
    assert_eq!(journalled.len(), 1, "{journalled:?}");
    assert!(journalled[0].1 > 0, "the leader's start time is recorded");
  }

  /// What the command leaves running in its group when it exits is killed, and reading its
  /// output does not wait for those processes.
  #[tokio::test]
  async fn a_finished_command_takes_its_background_jobs_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = sim_cloud(dir.path());
    let run_id = unique_run_id("background");
    let (_interrupt, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(&cloud, &run_id, "check", &progress, cancel);
    let args = bind(serde_json::json!({ "argv": ["sh", "-c", "sleep 300 & echo started"] }));
    let start = Instant::now();
    let token = Command.apply(&ctx, &args).await.unwrap().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(token.contains("started"), "{token}");
    assert_eq!(survivors(&run_id).await, Vec::<u32>::new());
  }

  #[test]
  fn a_capture_keeps_the_first_mebibyte_and_counts_the_rest() {
    let mut capture = Capture::default();
    capture.push(&vec![b'a'; CAPTURE_LIMIT - 1]);
    capture.push(b"bcd");
    capture.push(&[b'e'; 10]);
    assert_eq!(capture.kept.len(), CAPTURE_LIMIT);
    assert_eq!(capture.kept.last(), Some(&b'b'));
    assert_eq!(capture.total, CAPTURE_LIMIT as u64 + 12);
    assert_eq!(capture.cut(), 12);
    assert_eq!(
      cut_note(12, 0),
      " (stdout: 12 bytes cut after the first MiB)"
    );
    assert_eq!(cut_note(0, 0), "");
  }

  fn parent() -> Vec<(OsString, OsString)> {
    [
      ("PATH", "/usr/bin:/bin"),
      ("HOME", "/home/ops"),
      ("LANG", "C.UTF-8"),
      ("AWS_SECRET_ACCESS_KEY", "wJalr"),
      ("AWS_ACCESS_KEY_ID", "AKIA"),
      ("AWS_SESSION_TOKEN", "tok"),
      ("DB_PASSWORD", "hunter2"),
      ("EDITOR", "vi"),
    ]
    .into_iter()
    .map(|(name, value)| (name.into(), value.into()))
    .collect()
  }

  fn names(env: &BTreeMap<OsString, OsString>) -> Vec<&str> {
    env.keys().filter_map(|name| name.to_str()).collect()
  }

  #[test]
  fn a_child_gets_only_the_base_variables_and_env() {
    let given = BTreeMap::from([("PGHOST".to_string(), "db".to_string())]);
    let env = child_env(parent().into_iter(), false, &["DB_PASSWORD"], given);
    assert_eq!(names(&env), ["HOME", "LANG", "PATH", "PGHOST"]);
  }

  #[test]
  fn inherit_env_keeps_everything_but_credentials_and_secrets() {
    let given = BTreeMap::from([("DB_PASSWORD".to_string(), "given".to_string())]);
    let env = child_env(
      parent().into_iter(),
      true,
      &["DB_PASSWORD"],
      BTreeMap::new(),
    );
    assert_eq!(names(&env), ["EDITOR", "HOME", "LANG", "PATH"]);
    // A secret passed on purpose, through `env:`, arrives.
    let env = child_env(parent().into_iter(), true, &["DB_PASSWORD"], given);
    assert_eq!(
      env.get(&OsString::from("DB_PASSWORD")),
      Some(&"given".into())
    );
  }
}
