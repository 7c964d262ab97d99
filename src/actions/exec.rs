//! Run a local command (e.g. `psql` against a restored instance).

use std::{process::Stdio, time::Duration};

use super::{
  ActionDef, ActionError, ActionResult, Args, Behaviour, Ctx, Effect, Observation, Observed,
  Outcome,
};
use crate::runbook::{ActionSpec, FieldKind, FieldSpec};

/// Captured output kept in outputs and messages (bytes).
const OUTPUT_LIMIT: usize = 4096;

pub const COMMAND: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "exec.command",
    mutating: true,
    doc:
      "Run a command (argv, no shell) with extra environment, a timeout and an expected exit code; \
          stdout and stderr are captured.",
    fields: &[
      FieldSpec::required("argv", FieldKind::StringList, "Program and arguments"),
      FieldSpec::optional("env", FieldKind::StringMap, "Extra environment variables"),
      FieldSpec::optional(
        "timeout",
        FieldKind::Duration,
        "Kill the command after this long (default 5m)",
      ),
      FieldSpec::optional(
        "expect_exit",
        FieldKind::Int,
        "Expected exit code (default 0)",
      ),
      FieldSpec::optional("cwd", FieldKind::String, "Working directory"),
    ],
    mutating_operations: &[],
    outputs: &["exit_code", "stdout"],
  },
  behaviour: Behaviour::Effect(&Command),
};

struct Command;

fn clip(bytes: &[u8]) -> String {
  let text = String::from_utf8_lossy(bytes);
  let text = text.trim();
  if text.len() <= OUTPUT_LIMIT {
    return text.to_string();
  }
  let mut end = OUTPUT_LIMIT;
  while !text.is_char_boundary(end) {
    end -= 1;
  }
  format!("{}…", &text[..end])
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
    let mut command = tokio::process::Command::new(program);
    command
      .args(rest)
      .envs(args.string_map("env"))
      .env("DRCTL_RUN_ID", ctx.run_id)
      .env("DRCTL_STEP", ctx.step_id)
      .stdin(Stdio::null())
      .stdout(Stdio::piped())
      .stderr(Stdio::piped())
      .kill_on_drop(true);
    if let Some(cwd) = args.opt_str("cwd") {
      command.current_dir(cwd);
    }
    let child = command
      .spawn()
      .map_err(|err| ActionError::failed(format!("cannot run `{program}`: {err}")))?;
    // An interrupt (Ctrl-C, SIGTERM) must not wait for a long check: dropping the child kills
    // it (`kill_on_drop`), so the run's clean-up (always-steps) starts at once.
    let mut cancel = ctx.cancel.clone();
    let output = tokio::select! {
      finished = tokio::time::timeout(timeout, child.wait_with_output()) => finished,
      _ = cancel.wait_for(|cancelled| *cancelled) => {
        return Err(ActionError::retryable(format!(
          "interrupted while `{program}` ran; it was killed"
        )));
      }
    }
    .map_err(|_| {
      ActionError::failed(format!(
        "`{program}` did not finish within {}",
        super::human(timeout)
      ))
    })?
    .map_err(|err| ActionError::failed(format!("`{program}`: {err}")))?;
    let code = output.status.code().unwrap_or(-1);
    let expected = args.opt_int("expect_exit").unwrap_or(0);
    if i64::from(code) != expected {
      return Err(ActionError::failed(format!(
        "`{program}` exited {code}, expected {expected}: {}",
        clip(&output.stderr)
      )));
    }
    Ok(Some(
      serde_json::json!({ "code": code, "stdout": clip(&output.stdout) }).to_string(),
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
    Ok(
      Outcome::new(format!("`{program}` exited {code}"))
        .output("exit_code", code)
        .output("stdout", result["stdout"].as_str().unwrap_or_default()),
    )
  }
}

#[cfg(test)]
mod tests {
  use std::time::{Duration, Instant};

  use super::*;

  /// Ctrl-C during a long check kills the command at once instead of waiting for it, so the
  /// run's clean-up (deleting a temporary instance) is not held up by a hung `psql`.
  #[tokio::test]
  async fn an_interrupt_kills_the_running_command() {
    let dir = tempfile::tempdir().unwrap();
    let sim = crate::cloud::sim::Sim::open(&crate::cloud::sim::SimOptions {
      world: None,
      time_scale: Some(1.0),
      dir: dir.path().join("sim"),
    })
    .unwrap();
    let cloud = sim.cloud();
    let (interrupt, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let ctx = Ctx::new(&cloud, "run-1", "check", &progress, cancel);
    let rendered = serde_json::json!({ "argv": ["sleep", "30"] });
    let args = crate::actions::bind(COMMAND.spec, rendered.as_object().unwrap()).unwrap();
    tokio::spawn(async move {
      tokio::time::sleep(Duration::from_millis(200)).await;
      interrupt.send(true).unwrap();
    });
    let start = Instant::now();
    let err = Command.apply(&ctx, &args).await.unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    assert!(
      start.elapsed() < Duration::from_secs(10),
      "the command was waited for: {:?}",
      start.elapsed()
    );
  }
}
