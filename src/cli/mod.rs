//! The command line: parse arguments, call one function, render, pick the exit code.
//!
//! Exit codes ([`Exit`], the README's table): 0 succeeded · 1 a step failed · 2 usage or
//! validation error · 3 succeeded but an objective was breached · 4 lock held by another run ·
//! 5 `plan --detailed-exitcode`: changes pending · 130 interrupted.

use std::{
  io::{BufRead, IsTerminal, Write},
  path::{Path, PathBuf},
};

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::state::RunStatus;

mod commands;
pub mod config;
mod control;
mod docs;
mod drill;
mod fences;
mod freeze;
mod live;
mod render;
mod report;
mod sandbox;
mod serve;
mod state;

/// drctl: disaster-recovery and failover runbooks, run crash-safe and timed against RTO/RPO.
#[derive(Debug, Parser)]
#[command(name = "drctl", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
  #[command(flatten)]
  pub global: GlobalArgs,
  #[command(subcommand)]
  pub command: Command,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct GlobalArgs {
  /// Configuration file (default: ./drctl.yaml if present).
  #[arg(long, global = true, value_name = "FILE")]
  pub config: Option<PathBuf>,
  /// State directory or s3://bucket/prefix (default: .drctl, or drctl.yaml's `state`).
  #[arg(long, global = true, value_name = "DIR|S3_URL")]
  pub state: Option<String>,
  /// Output format.
  #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
  pub output: Output,
  /// Run against the in-process simulator, optionally with a WORLD.yaml.
  #[arg(long, global = true, value_name = "WORLD", num_args = 0..=1, default_missing_value = "")]
  pub sim: Option<String>,
  /// Simulator time scale (how many times faster than real time the simulated world runs).
  #[arg(long, global = true, value_name = "FACTOR")]
  pub time_scale: Option<f64>,
  /// Run against real AWS (or AWS_ENDPOINT_URL) through the AWS SDK.
  #[arg(long, global = true, conflicts_with = "sim")]
  pub aws: bool,
  /// Run against a local sandbox: a patched moto server seeded with the built-in world, through
  /// the AWS SDK (the one `drctl sandbox up` started, or one just for this command).
  #[arg(long, global = true, conflicts_with_all = ["sim", "aws"])]
  pub sandbox: bool,
  /// AWS profile (aws backend).
  #[arg(long, global = true)]
  pub profile: Option<String>,
  /// Default AWS region (aws backend).
  #[arg(long, global = true)]
  pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
  Text,
  Json,
}

#[derive(Debug, Clone, ClapArgs)]
pub struct RunArgs {
  /// Set a parameter (repeatable).
  #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
  pub params: Vec<String>,
  /// Make no changes: probe read-only and print what would change.
  #[arg(long)]
  pub dry_run: bool,
  /// Answer every approval with yes.
  #[arg(long, short = 'y')]
  pub yes: bool,
  /// Run at most this many steps at once.
  #[arg(long, default_value_t = 8, value_name = "N")]
  pub max_parallel: usize,
  /// Promote replicas even when their lag exceeds the RPO.
  #[arg(long)]
  pub accept_data_loss: bool,
  /// Flip DNS even to a target whose health check is unhealthy.
  #[arg(long)]
  pub force: bool,
  /// When the incident began (RFC 3339), for RTO; default: when the run starts.
  #[arg(long, value_name = "TIME")]
  pub incident_start: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
  /// Validate runbooks (files or directories; default: the runbooks directory).
  Validate { paths: Vec<PathBuf> },
  /// Show what a run would do, from which current state, without changing anything.
  ///
  /// Exits 1 when a read-only probe could not ask (credentials, unreachable, 5xx, throttled):
  /// the plan is incomplete. A check that answered "not yet" is not an error.
  Plan {
    runbook: PathBuf,
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Exit 5 when a run would change the world (changes pending), 0 when nothing is left to
    /// change; 1 (a probe could not ask) and 2 (usage, validation, credentials) still apply.
    #[arg(long)]
    detailed_exitcode: bool,
    /// The region the run fails away from, for the static-stability analysis: every endpoint
    /// the run would call there is flagged, with the alternative (default: the runbook's
    /// `source_region` parameter).
    #[arg(long, value_name = "REGION")]
    leaving: Option<String>,
  },
  /// Run a runbook.
  Run {
    runbook: PathBuf,
    #[command(flatten)]
    args: RunArgs,
  },
  /// Fail over to REGION with the runbook configured in drctl.yaml.
  Failover {
    /// Its own id: the global `--region` (the AWS default region) is another argument.
    #[arg(id = "target_region", value_name = "REGION")]
    region: String,
    #[command(flatten)]
    args: RunArgs,
  },
  /// Resume an interrupted or failed run from its journal.
  Resume {
    run_id: String,
    #[arg(long, short = 'y')]
    yes: bool,
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_parallel: usize,
    #[arg(long)]
    accept_data_loss: bool,
    /// Flip DNS even to a target whose health check is unhealthy.
    #[arg(long)]
    force: bool,
    /// Give again a parameter the journal holds only redacted (a secret one); repeatable.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
  },
  /// Show a run (default: the latest).
  Status { run_id: Option<String> },
  /// Render a run's report (Markdown, JSON, JUnit XML or HTML).
  Report(report::ReportArgs),
  /// List runs.
  Runs,
  /// Break the stale lock of a lock group (by group name, or by a runbook's name or path).
  Unlock {
    /// A lock group, or a runbook (name or file) whose `metadata.lock_group` to unlock.
    #[arg(value_name = "GROUP|RUNBOOK")]
    runbook: String,
    /// Break it even though its holder is alive (it goes on acting until it notices).
    #[arg(long)]
    force: bool,
  },
  /// Work with the s3:// state (`drctl state sync [RUN_ID]`).
  State {
    #[command(subcommand)]
    command: state::StateCommand,
  },
  /// Print the JSON Schema (draft 2020-12) of runbook files, or of drill files.
  Schema {
    /// Which files the schema describes.
    #[arg(long, value_enum, default_value_t = docs::SchemaKind::Runbook)]
    kind: docs::SchemaKind,
  },
  /// Print a runbook's step graph as a Mermaid flowchart.
  Graph { runbook: PathBuf },
  /// Start, stop or inspect the local sandbox (moto server seeded with the built-in world).
  Sandbox {
    #[command(subcommand)]
    command: sandbox::SandboxCommand,
  },
  /// Drills: list them with their next fire time, run one now, show their history.
  Drill {
    #[command(subcommand)]
    command: drill::DrillCommand,
  },
  /// Fire due drills on their schedules until SIGINT/SIGTERM (`--once`: fire what is due, exit).
  Scheduler(drill::SchedulerArgs),
  /// Print a shell completion script (e.g. `source <(drctl completions bash)`).
  Completions {
    #[arg(value_enum)]
    shell: clap_complete::Shell,
  },
  /// Print the man page (roff; `drctl man | man -l -`).
  Man,
  /// Hold back live drills across the state (`--reason`), or show what holds them back now.
  Freeze {
    /// Why (shown to operators and recorded in the history of every drill skipped).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
  },
  /// Lift the freeze set with `drctl freeze --reason`.
  Unfreeze,
  /// Region fences a failover could not apply (the region was down): list them, apply them.
  Fence {
    #[command(subcommand)]
    command: fences::FenceCommand,
  },
  /// Approve a step of a run that waits for approval (the run takes it up within a second).
  Approve {
    run_id: String,
    step: String,
    /// Why (journalled and shown in the run's reports).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
  },
  /// Deny a step of a run that waits for approval: the step fails (and follows `on_failure`).
  Deny {
    run_id: String,
    step: String,
    /// Why (journalled and shown in the run's reports).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
  },
  /// Stop a run as an interrupt does (always-steps run; resumable with `drctl resume`).
  Cancel {
    run_id: String,
    /// Why (journalled and shown in the run's reports).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
  },
  /// Serve the status page (runs, live runs, reports, drills), /metrics and /healthz.
  Serve(serve::ServeArgs),
}

/// How drctl exits: one variant per documented exit code (README, "Exit codes"). A command
/// that ran returns one; an [`Error`] knows its own ([`Error::exit`]). [`Exit::code`] is the
/// only mapping to numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
  /// 0: succeeded (a plan: nothing failed to probe; with `--detailed-exitcode`, nothing to
  /// change).
  Succeeded,
  /// 1: a step failed, a plan's read-only probe could not ask, or the command failed.
  Failed,
  /// 2: usage or validation error, or missing or refused credentials.
  Usage,
  /// 3: succeeded, but an objective was breached or could not be shown to hold.
  Breached,
  /// 4: the lock is held by another run, a live drill was held back by a freeze, or a region
  /// fence is pending.
  Locked,
  /// 5: `plan --detailed-exitcode` only: changes pending.
  ChangesPending,
  /// 130: interrupted (resumable with `drctl resume`).
  Interrupted,
}

impl Exit {
  pub const ALL: [Exit; 7] = [
    Exit::Succeeded,
    Exit::Failed,
    Exit::Usage,
    Exit::Breached,
    Exit::Locked,
    Exit::ChangesPending,
    Exit::Interrupted,
  ];

  /// The process exit code.
  pub fn code(self) -> i32 {
    match self {
      Exit::Succeeded => 0,
      Exit::Failed => 1,
      Exit::Usage => 2,
      Exit::Breached => 3,
      Exit::Locked => 4,
      Exit::ChangesPending => 5,
      Exit::Interrupted => 130,
    }
  }
}

/// A command's failure; it knows its exit code ([`Error::exit`]).
#[derive(Debug)]
pub enum Error {
  /// Bad usage or parameters: exit 2.
  Usage(String),
  /// A runbook or drill file that does not validate: exit 2. Its rendered diagnostics, printed
  /// as they are (each one starts with its own `error:`).
  Invalid(String),
  /// The lock is held: exit 4.
  Locked(String),
  /// Something went wrong running: exit 1.
  Failed(String),
  /// A runbook with `refuse_pending_fences: true` while a region fence is pending: exit 4.
  FencesPending(String),
}

impl Error {
  pub fn exit(&self) -> Exit {
    match self {
      Error::Usage(_) | Error::Invalid(_) => Exit::Usage,
      Error::Locked(_) | Error::FencesPending(_) => Exit::Locked,
      Error::Failed(_) => Exit::Failed,
    }
  }

  pub fn code(&self) -> i32 {
    self.exit().code()
  }

  pub(crate) fn message(&self) -> &str {
    match self {
      Error::Usage(message)
      | Error::Invalid(message)
      | Error::Locked(message)
      | Error::Failed(message)
      | Error::FencesPending(message) => message,
    }
  }
}

/// `drctl --help`'s list of exit codes (the README's "Exit codes" says the same).
const EXIT_CODES: &str = "Exit codes: 0 succeeded (plan: nothing failed to probe) · 1 a step \
                          failed, or a plan's probe could not ask · 2 usage, validation or \
                          credentials error · 3 succeeded but an objective was breached · 4 lock \
                          held by another run · 5 `plan --detailed-exitcode`: changes pending · \
                          130 interrupted (resumable)";

/// How a run with this status exits. (`plan --detailed-exitcode`'s "changes pending" is
/// [`Exit::ChangesPending`]: Terraform says it with 2, which is drctl's validation error; 5 is
/// the first code drctl does not use.)
pub fn status_code(status: RunStatus) -> Exit {
  match status {
    RunStatus::Succeeded => Exit::Succeeded,
    RunStatus::Failed => Exit::Failed,
    RunStatus::Breached => Exit::Breached,
    RunStatus::Interrupted => Exit::Interrupted,
    RunStatus::LockLost => Exit::Locked,
  }
}

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
  let cli = match Cli::try_parse() {
    Ok(cli) => cli,
    Err(err) => {
      let code = if err.use_stderr() {
        Exit::Usage
      } else {
        Exit::Succeeded
      }
      .code();
      let _ = err.print();
      return code;
    }
  };
  init_tracing(cli.global.output);
  let runtime = match tokio::runtime::Builder::new_multi_thread()
    .worker_threads(2)
    .enable_all()
    .build()
  {
    Ok(runtime) => runtime,
    Err(err) => {
      eprintln!("error: cannot start the runtime: {err}");
      return Exit::Failed.code();
    }
  };
  let result = runtime.block_on(commands::dispatch(cli));
  // Whatever still runs in a command's process group does not outlive drctl.
  crate::process_group::kill_all();
  match result {
    Ok(exit) => exit.code(),
    Err(err @ Error::Invalid(_)) => {
      eprintln!("{}", err.message().trim_end());
      err.code()
    }
    Err(err) => {
      eprintln!("error: {}", err.message());
      err.code()
    }
  }
}

fn init_tracing(output: Output) {
  let directives = log_directives(std::env::var("DRCTL_LOG").ok().as_deref());
  let filter = tracing_subscriber::EnvFilter::try_new(&directives)
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_directives(None)));
  let builder = tracing_subscriber::fmt()
    .with_env_filter(filter)
    .with_writer(std::io::stderr)
    .with_ansi(std::io::stderr().is_terminal());
  let _ = match output {
    Output::Json => builder.json().try_init(),
    Output::Text => builder.try_init(),
  };
}

/// The log filter of `DRCTL_LOG` (default `warn`). The AWS SDK's own events (aws-config's
/// instance-metadata and profile-file warnings, the smithy runtime's) are off unless
/// `DRCTL_LOG` asks for `debug` or `trace`, or names an `aws*` target itself: drctl reports what
/// they are about (missing credentials, a failed call) once, in its own words.
fn log_directives(value: Option<&str>) -> String {
  let given = value
    .map(str::trim)
    .filter(|value| !value.is_empty())
    .unwrap_or("warn");
  let directives: Vec<&str> = given.split(',').map(str::trim).collect();
  let names_aws = directives
    .iter()
    .any(|directive| directive.starts_with("aws"));
  let verbose = directives.iter().any(|directive| {
    directive.eq_ignore_ascii_case("debug") || directive.eq_ignore_ascii_case("trace")
  });
  if names_aws || verbose {
    given.to_owned()
  } else {
    format!("{given},aws=off")
  }
}

/// What a command does with the global backend and AWS flags.
enum FlagUse {
  /// Reads neither the state nor the cloud (`schema`, `validate`, `graph`).
  Nothing,
  /// Reads the state only: AWS flags matter for an `s3://` state.
  State,
  /// Talks to the backend (`plan`, `run`, `failover`).
  Cloud,
  /// Talks to the backend the run's journal names (`resume`): AWS flags only.
  Journal,
  /// Weighs the flags itself (`drill run`, `scheduler`).
  Own,
  /// The local sandbox (`sandbox up|down|status`): `--region` sets its default region; it has
  /// its own credentials and world.
  Sandbox,
}

fn flag_use(command: &Command) -> (FlagUse, &'static str) {
  match command {
    Command::Validate { .. } => (FlagUse::Nothing, "validate"),
    Command::Schema { .. } => (FlagUse::Nothing, "schema"),
    Command::Completions { .. } => (FlagUse::Nothing, "completions"),
    Command::Man => (FlagUse::Nothing, "man"),
    Command::Graph { .. } => (FlagUse::Nothing, "graph"),
    Command::Status { .. } => (FlagUse::State, "status"),
    Command::Report(_) => (FlagUse::State, "report"),
    Command::Runs => (FlagUse::State, "runs"),
    Command::Unlock { .. } => (FlagUse::State, "unlock"),
    Command::State { .. } => (FlagUse::State, "state"),
    Command::Drill {
      command: drill::DrillCommand::List,
    } => (FlagUse::State, "drill list"),
    Command::Drill {
      command: drill::DrillCommand::History { .. },
    } => (FlagUse::State, "drill history"),
    Command::Plan { .. } => (FlagUse::Cloud, "plan"),
    Command::Run { .. } => (FlagUse::Cloud, "run"),
    Command::Failover { .. } => (FlagUse::Cloud, "failover"),
    Command::Drill {
      command: drill::DrillCommand::Run { .. },
    } => (FlagUse::Own, "drill run"),
    Command::Scheduler(_) => (FlagUse::Own, "scheduler"),
    Command::Resume { .. } => (FlagUse::Journal, "resume"),
    Command::Sandbox { .. } => (FlagUse::Sandbox, "sandbox"),
    Command::Freeze { .. } => (FlagUse::State, "freeze"),
    Command::Unfreeze => (FlagUse::State, "unfreeze"),
    Command::Fence {
      command: fences::FenceCommand::List,
    } => (FlagUse::State, "fence list"),
    Command::Fence {
      command: fences::FenceCommand::Apply { .. },
    } => (FlagUse::Cloud, "fence apply"),
    Command::Fence {
      command: fences::FenceCommand::Drop { .. },
    } => (FlagUse::State, "fence drop"),
    Command::Approve { .. } => (FlagUse::State, "approve"),
    Command::Deny { .. } => (FlagUse::State, "deny"),
    Command::Cancel { .. } => (FlagUse::State, "cancel"),
    // The scheduler beside it weighs the backend flags against each drill, as `scheduler` does.
    Command::Serve(args) if args.scheduler => (FlagUse::Own, "serve --scheduler"),
    Command::Serve(_) => (FlagUse::State, "serve"),
  }
}

/// The backend flags given, by name.
fn backend_flags(global: &GlobalArgs) -> Vec<&'static str> {
  let mut flags = Vec::new();
  if global.sim.is_some() {
    flags.push("--sim");
  }
  if global.aws {
    flags.push("--aws");
  }
  if global.sandbox {
    flags.push("--sandbox");
  }
  if global.time_scale.is_some() {
    flags.push("--time-scale");
  }
  flags
}

/// The AWS access flags given, by name.
pub(crate) fn aws_flags(global: &GlobalArgs) -> Vec<&'static str> {
  let mut flags = Vec::new();
  if global.profile.is_some() {
    flags.push("--profile");
  }
  if global.region.is_some() {
    flags.push("--region");
  }
  flags
}

/// A global flag is never ignored: one that means nothing for the command is refused (exit 2).
pub(crate) fn check_global_flags(
  global: &GlobalArgs,
  command: &Command,
  ctx: &commands::Context,
) -> Result<(), Error> {
  let s3_state = matches!(ctx.state, state::StateBackend::S3 { .. });
  let (usage, name) = flag_use(command);
  let refuse = |flag: &str, why: &str| {
    Err(Error::Usage(format!(
      "{flag} has no effect on `drctl {name}` ({why})"
    )))
  };
  match usage {
    FlagUse::Own => Ok(()),
    FlagUse::Sandbox => {
      let backend = backend_flags(global)
        .into_iter()
        .find(|flag| *flag != "--sandbox");
      match backend {
        Some(flag) => refuse(flag, "the sandbox is its own backend, a moto server"),
        None if global.profile.is_some() => {
          refuse("--profile", "the sandbox has its own credentials")
        }
        None => Ok(()),
      }
    }
    FlagUse::Journal => match backend_flags(global).first() {
      Some(flag) => refuse(flag, "a run resumes on the backend it started on"),
      None => Ok(()),
    },
    FlagUse::Nothing => match backend_flags(global)
      .into_iter()
      .chain(aws_flags(global))
      .next()
    {
      Some(flag) => refuse(flag, "it reads neither the state nor the cloud"),
      None => Ok(()),
    },
    FlagUse::State => {
      if let Some(flag) = backend_flags(global).first() {
        return refuse(flag, "it only reads the state");
      }
      match aws_flags(global).first() {
        Some(flag) if !s3_state => refuse(flag, "it only reads the local state"),
        _ => Ok(()),
      }
    }
    FlagUse::Cloud => {
      let backend = match ctx.backend {
        commands::Backend::Sim { .. } => "sim",
        commands::Backend::Aws(_) => "aws",
        commands::Backend::Sandbox { .. } => "sandbox",
      };
      if global.time_scale.is_some() && backend != "sim" {
        return Err(Error::Usage(format!(
          "--time-scale has no effect on the {backend} backend (it sets the simulator's speed)"
        )));
      }
      match aws_flags(global).first() {
        Some(flag) if backend == "sim" && !s3_state => Err(Error::Usage(format!(
          "{flag} has no effect on the sim backend (it configures AWS access, and the state \
           is local)"
        ))),
        _ => Ok(()),
      }
    }
  }
}

/// Print to stdout; a closed pipe (`drctl runs | head`) is not an error.
pub(crate) fn out(text: &str) {
  let mut stdout = std::io::stdout().lock();
  let _ = stdout.write_all(text.as_bytes());
  let _ = stdout.flush();
}

/// Parse `KEY=VALUE` pairs.
pub(crate) fn parse_params(raw: &[String]) -> Result<Vec<(String, String)>, Error> {
  raw
    .iter()
    .map(|pair| {
      pair
        .split_once('=')
        .map(|(key, value)| (key.trim().to_string(), value.to_string()))
        .ok_or_else(|| Error::Usage(format!("parameter `{pair}` is not KEY=VALUE")))
    })
    .collect()
}

/// A runbook argument: a path, or a name in the runbooks directory.
pub(crate) fn resolve_runbook(runbooks: &Path, given: &Path) -> PathBuf {
  if given.exists() {
    return given.to_path_buf();
  }
  for ext in ["yaml", "yml"] {
    let candidate = runbooks.join(given).with_extension(ext);
    if candidate.exists() {
      return candidate;
    }
  }
  given.to_path_buf()
}

/// Whether someone can answer a prompt.
pub(crate) fn interactive() -> bool {
  std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Before a live failover: unless `--yes`, the operator types the target region on a terminal.
pub(crate) fn confirm_failover(region: &str, yes: bool) -> Result<(), Error> {
  if yes {
    return Ok(());
  }
  if !interactive() {
    return Err(Error::Failed(
      "a live failover needs the operator to confirm the target region on a terminal, or --yes"
        .into(),
    ));
  }
  confirm_region(region, &mut std::io::stdin().lock(), &mut std::io::stderr())
    .map_err(Error::Failed)
}

/// Ask on `output` for the target region and read the answer from `input`: it must be exactly
/// `expected` (surrounding whitespace aside).
pub(crate) fn confirm_region(
  expected: &str,
  input: &mut impl BufRead,
  output: &mut impl Write,
) -> Result<(), String> {
  write!(
    output,
    "\n? fail over to {expected}: type the target region to confirm: "
  )
  .and_then(|()| output.flush())
  .map_err(|err| format!("cannot ask for confirmation: {err}"))?;
  let mut answer = String::new();
  input
    .read_line(&mut answer)
    .map_err(|err| format!("cannot read the confirmation: {err}"))?;
  if answer.trim() == expected {
    Ok(())
  } else {
    Err(format!("confirmation did not match: expected {expected}"))
  }
}

#[cfg(test)]
mod tests {
  use super::confirm_region;

  fn ask(expected: &str, typed: &str) -> (Result<(), String>, String) {
    let mut output = Vec::new();
    let result = confirm_region(expected, &mut typed.as_bytes(), &mut output);
    (result, String::from_utf8(output).unwrap())
  }

  #[test]
  fn the_typed_region_confirms_a_failover() {
    let (result, prompt) = ask("us-west-2", "us-west-2\n");
    assert_eq!(result, Ok(()));
    assert!(prompt.contains("type the target region"), "{prompt}");
    assert!(prompt.contains("us-west-2"), "{prompt}");
    assert_eq!(ask("us-west-2", "  us-west-2  \r\n").0, Ok(()));
  }

  #[test]
  fn a_wrong_or_missing_answer_aborts() {
    let expected = Err("confirmation did not match: expected us-west-2".to_string());
    assert_eq!(ask("us-west-2", "us-east-1\n").0, expected);
    assert_eq!(ask("us-west-2", "y\n").0, expected);
    assert_eq!(ask("us-west-2", "US-WEST-2\n").0, expected);
    assert_eq!(ask("us-west-2", "").0, expected, "end of input");
  }

  /// What a subscriber with `DRCTL_LOG=value`'s filter prints of an aws-config warning, a
  /// drctl warning and an SDK debug event.
  fn logged(value: Option<&str>) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
      fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
      }
      fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
      }
    }
    let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
      .with_env_filter(tracing_subscriber::EnvFilter::new(super::log_directives(
        value,
      )))
      .with_writer(move || writer.clone())
      .with_ansi(false)
      .finish();
    tracing::subscriber::with_default(subscriber, || {
      tracing::warn!(target: "aws_config::imds::region", "imds-warning");
      tracing::warn!(target: "aws_config::profile::parser", "profile-warning");
      tracing::warn!(target: "drctl::cli::commands", "drctl-warning");
      tracing::debug!(target: "aws_smithy_runtime::client", "sdk-debug");
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    text
  }

  /// aws-config's own warnings (instance metadata, profile files) are shown only at
  /// `DRCTL_LOG=debug`; drctl's warnings always.
  #[test]
  fn aws_sdk_warnings_show_only_at_debug() {
    for quiet in [
      None,
      Some("warn"),
      Some("info"),
      Some(""),
      Some("warn,drctl=info"),
    ] {
      let text = logged(quiet);
      assert!(text.contains("drctl-warning"), "{quiet:?}: {text}");
      for hidden in ["imds-warning", "profile-warning", "sdk-debug"] {
        assert!(!text.contains(hidden), "{quiet:?}: {text}");
      }
    }
    for verbose in [Some("debug"), Some("TRACE")] {
      let text = logged(verbose);
      for shown in [
        "imds-warning",
        "profile-warning",
        "drctl-warning",
        "sdk-debug",
      ] {
        assert!(text.contains(shown), "{verbose:?}: {text}");
      }
    }
    // A directive for the SDK itself is obeyed as written.
    let text = logged(Some("warn,aws_config=warn"));
    assert!(
      text.contains("imds-warning") && !text.contains("sdk-debug"),
      "{text}"
    );
  }

  /// The README's exit-code table: each row's code and meaning, in order.
  fn documented_exit_codes() -> Vec<(i32, String)> {
    let readme = include_str!("../../README.md");
    let table = readme
      .split_once("Exit codes (every command")
      .map(|(_, rest)| rest)
      .expect("the README has an exit-code table");
    table
      .lines()
      .skip_while(|line| !line.starts_with("|---"))
      .skip(1)
      .take_while(|line| line.starts_with('|'))
      .map(|row| {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let code = cells[0]
          .trim()
          .trim_matches('`')
          .parse()
          .expect("a numeric code");
        (code, cells[1].trim().to_string())
      })
      .collect()
  }

  /// A phrase the README's row for `exit` must contain. The match is exhaustive: a new
  /// variant does not compile until it says what the README documents for it.
  fn documented_as(exit: super::Exit) -> &'static str {
    use super::Exit;
    match exit {
      Exit::Succeeded => "succeeded",
      Exit::Failed => "a step failed",
      Exit::Usage => "usage or validation error",
      Exit::Breached => "an objective was breached",
      Exit::Locked => "locked by another run",
      Exit::ChangesPending => "changes pending",
      Exit::Interrupted => "interrupted",
    }
  }

  #[test]
  fn every_exit_has_the_code_the_readme_documents() {
    let documented = documented_exit_codes();
    let codes: Vec<i32> = super::Exit::ALL.iter().map(|exit| exit.code()).collect();
    let rows: Vec<i32> = documented.iter().map(|(code, _)| *code).collect();
    assert_eq!(codes, rows, "cli::Exit and the README's table disagree");
    for exit in super::Exit::ALL {
      let (_, meaning) = &documented[super::Exit::ALL
        .iter()
        .position(|each| *each == exit)
        .unwrap_or_default()];
      assert!(
        meaning.contains(documented_as(exit)),
        "{exit:?} is {} but the README's row says: {meaning}",
        exit.code()
      );
    }
    // `drctl --help` lists the same codes, in the same order.
    let help: Vec<i32> = super::EXIT_CODES
      .trim_start_matches("Exit codes: ")
      .split(" · ")
      .map(|item| item.split(' ').next().unwrap_or_default().parse().unwrap())
      .collect();
    assert_eq!(help, rows, "--help's exit codes: {}", super::EXIT_CODES);
  }

  #[test]
  fn every_error_exits_with_the_code_the_readme_documents() {
    use super::Error;
    let documented = documented_exit_codes();
    let row = |code: i32| {
      documented
        .iter()
        .find(|(each, _)| *each == code)
        .map(|(_, meaning)| meaning.clone())
        .unwrap_or_else(|| panic!("exit {code} is not in the README's table"))
    };
    let errors = [
      Error::Usage("x".into()),
      Error::Invalid("x".into()),
      Error::Locked("x".into()),
      Error::Failed("x".into()),
      Error::FencesPending("x".into()),
    ];
    // Exhaustive: a new variant does not compile until it names its README row.
    let cases = errors.into_iter().map(|error| {
      let phrase = match &error {
        Error::Usage(_) => "usage",
        Error::Invalid(_) => "validation error",
        Error::Locked(_) => "locked by another run",
        Error::Failed(_) => "failed",
        Error::FencesPending(_) => "a region fence is pending",
      };
      (error, phrase)
    });
    for (error, phrase) in cases {
      let meaning = row(error.code());
      assert!(
        meaning.contains(phrase),
        "{error:?} exits {} but the README's row says: {meaning}",
        error.code()
      );
    }
  }
}
