//! One function per command.

use std::{
  path::{Path, PathBuf},
  sync::Arc,
  time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{
  config::{read_config, ConfigFile},
  interactive, out, parse_params, render, resolve_runbook, sandbox, status_code, Cli, Command,
  Error, Exit, GlobalArgs, Output, RunArgs,
};
use crate::{
  actions::Catalog,
  cloud::{
    aws::{
      preflight::{CredentialTarget, Principal},
      AwsSettings,
    },
    sim::{Sim, SimOptions},
    CallerIdentity, Cloud, MutationFence, RateLimits,
  },
  engine::{self, Approver, Operator, RunOptions},
  plan::{self, Plan},
  process_group::{self, RecordedGroup, Survivor},
  runbook::{self, Runbook},
  state::{
    control::ControlAction,
    lock::{hostname, HeldLock, LeaseKeeper, LeaseTerms, LockError, LockHolder},
    store::{check_name, create_private_dir, NameKind},
    Event, Journal, JournalError, Record, RunStatus, Store, Timeline,
  },
};

/// Settings every command shares, resolved once from flags and drctl.yaml.
pub struct Context {
  pub file: ConfigFile,
  pub runbooks: PathBuf,
  pub store: Store,
  pub output: Output,
  pub backend: Backend,
  /// Where runs and locks live (`store` is its local cache for an `s3://` state).
  pub state: super::state::StateBackend,
  /// The global flags as given (a drill weighs `--sim`/`--sandbox`/`--aws` against its target).
  pub global: GlobalArgs,
}

/// Which AWS a run talks to.
#[derive(Debug, Clone)]
pub enum Backend {
  Sim {
    world: Option<PathBuf>,
    time_scale: Option<f64>,
  },
  Aws(AwsSettings),
  /// A local moto server at `endpoint` (`None` until `sandbox::prepare` has found or started one).
  Sandbox {
    endpoint: Option<String>,
    settings: AwsSettings,
  },
}

impl Context {
  /// The same settings with another backend (a drill's `target`).
  pub(super) fn with_backend(&self, backend: Backend) -> Context {
    Context {
      file: self.file.clone(),
      runbooks: self.runbooks.clone(),
      store: self.store.clone(),
      output: self.output,
      backend,
      state: self.state.clone(),
      global: self.global.clone(),
    }
  }

  fn new(global: &GlobalArgs) -> Result<Context, Error> {
    let (file, _) = read_config(global.config.as_deref()).map_err(Error::Usage)?;
    let runbooks = file
      .runbooks
      .clone()
      .unwrap_or_else(|| PathBuf::from("runbooks"));
    let state = global
      .state
      .clone()
      .or_else(|| file.state.clone())
      .unwrap_or_else(|| ".drctl".into());
    let aws_config = file.aws.clone().unwrap_or_default();
    let aws = AwsSettings {
      profile: global.profile.clone().or(aws_config.profile),
      region: global.region.clone().or(aws_config.region),
      endpoint_url: aws_config.endpoint_url,
    };
    let (store, state) = super::state::resolve(&state, &aws)?;
    let backend = if global.aws {
      Backend::Aws(aws)
    } else if global.sandbox {
      Backend::Sandbox {
        endpoint: None,
        settings: aws,
      }
    } else if let Some(world) = &global.sim {
      Backend::Sim {
        world: (!world.is_empty()).then(|| PathBuf::from(world)),
        time_scale: global.time_scale,
      }
    } else {
      match file.backend.as_deref() {
        None | Some("sim") => Backend::Sim {
          world: None,
          time_scale: global.time_scale,
        },
        Some("aws") => Backend::Aws(aws),
        Some("sandbox") => Backend::Sandbox {
          endpoint: None,
          settings: aws,
        },
        Some(other) => {
          return Err(Error::Usage(format!(
            "drctl.yaml: backend `{other}` is not one of sim, aws, sandbox"
          )))
        }
      }
    };
    Ok(Context {
      file,
      runbooks,
      store,
      output: global.output,
      backend,
      state,
      global: global.clone(),
    })
  }

  /// A run id given (or a unique prefix), or the latest run.
  pub(super) fn run_or_latest(&self, run_id: Option<&str>) -> Result<String, Error> {
    match run_id {
      Some(id) => self.store.find_run(id).map_err(Error::Usage),
      None => self
        .store
        .run_ids()
        .pop()
        .ok_or_else(|| Error::Usage(format!("no runs in {}", self.store.runs_dir().display()))),
    }
  }

  /// Open the backend for a run whose state lives in `dir`, behind the client-side rate limits
  /// (AWS's defaults, or drctl.yaml's `rate_limits`), whatever the backend.
  /// The backend, behind the client layer, refusing mutating calls once `fence` closes.
  pub(super) async fn open_cloud(
    &self,
    dir: &Path,
    secrets: Vec<String>,
    fence: &MutationFence,
    caller: Option<&CallerIdentity>,
  ) -> Result<Cloud, Error> {
    let limits = RateLimits::with_overrides(&self.file.rate_limits)
      .map_err(|err| Error::Usage(format!("drctl.yaml: {err}")))?;
    let backend = Cloud {
      fence: fence.clone(),
      ..self.open_backend(dir, secrets).await?
    };
    // AWS errors name the caller's account when AWS's message does not.
    Ok(backend.rate_limited(limits, caller.map(|caller| caller.account.clone())))
  }

  async fn open_backend(&self, dir: &Path, secrets: Vec<String>) -> Result<Cloud, Error> {
    match &self.backend {
      Backend::Sim { world, time_scale } => {
        let sim = Sim::open(&SimOptions {
          world: world.clone(),
          time_scale: *time_scale,
          dir: dir.to_path_buf(),
        })
        .map_err(|err| Error::Usage(format!("simulator: {err}")))?;
        sim.set_redactions(secrets);
        Ok(sim.cloud())
      }
      Backend::Aws(settings) => crate::cloud::aws::connect(settings)
        .await
        .map_err(|err| connect_error("cannot reach AWS", err)),
      Backend::Sandbox {
        endpoint: Some(endpoint),
        settings,
      } => crate::cloud::aws::sandbox::connect(endpoint, settings)
        .await
        .map_err(|err| connect_error("cannot reach the sandbox", err)),
      Backend::Sandbox { endpoint: None, .. } => Err(Error::Failed(
        "internal: the sandbox was not started before the command".into(),
      )),
    }
  }

  /// The credentials preflight of a run or plan of `plan` (before the lock, before any probe):
  /// who the credentials act as, for the journal. Missing or refused credentials are a usage
  /// error (exit 2); STS that cannot be asked is a warning, and the run goes on without an
  /// identity (see `cloud::aws::preflight`).
  pub(super) async fn preflight(&self, plan: &Plan) -> Result<Option<CallerIdentity>, Error> {
    let targets = self.credential_targets(plan);
    let checked = match &self.backend {
      Backend::Sim { .. } => return Ok(Some(crate::cloud::sim::caller_identity())),
      Backend::Aws(settings) => crate::cloud::aws::preflight::preflight(settings, &targets).await,
      Backend::Sandbox {
        endpoint: Some(endpoint),
        settings,
      } => crate::cloud::aws::sandbox::preflight(endpoint, settings, &targets).await,
      Backend::Sandbox { endpoint: None, .. } => return Ok(None),
    };
    match checked {
      // One target today (see `credential_targets`), so one identity.
      Ok(identities) => Ok(identities.into_iter().next()),
      Err(err) if err.blocks_run() => Err(Error::Usage(err.to_string())),
      Err(err) => {
        eprintln!("warning: {err}");
        Ok(None)
      }
    }
  }

  /// What a live run of `plan` depends on beyond its steps, from the configuration alone:
  /// the region it leaves, the default region, STS's, the SSO region of the profile, the
  /// state bucket's region (see `plan::stability`).
  pub(super) async fn stability_environment(
    &self,
    plan: &Plan,
    leaving: Option<&str>,
  ) -> plan::stability::Environment {
    let (settings, aws) = match &self.backend {
      Backend::Aws(settings) => (Some(settings), true),
      Backend::Sandbox { settings, .. } => (Some(settings), false),
      Backend::Sim { .. } => (None, false),
    };
    let facts = match settings {
      Some(settings) => Some(crate::cloud::aws::preflight::profile_facts(settings).await),
      None => None,
    };
    let default_region = match (&facts, &self.global.region) {
      (Some(facts), _) => facts.region.clone(),
      (None, Some(region)) => region.clone(),
      (None, None) => crate::cloud::aws::config::FALLBACK_REGION.to_owned(),
    };
    let sts_region = self
      .credential_targets(plan)
      .into_iter()
      .next()
      .and_then(|target| target.region)
      .or_else(|| Some(default_region.clone()));
    let sso = facts.as_ref().filter(|_| aws).and_then(|facts| {
      Some(plan::stability::Sso {
        profile: facts.profile.clone(),
        region: facts.sso_region.clone()?,
      })
    });
    let state = match &self.state {
      super::state::StateBackend::Local => None,
      super::state::StateBackend::S3 { location, settings } => Some(plan::stability::StateBucket {
        location: location.to_string(),
        region: crate::cloud::aws::preflight::profile_facts(settings)
          .await
          .region,
      }),
    };
    plan::stability::Environment {
      leaving: plan::stability::leaving(plan, leaving),
      default_region,
      sts_region,
      sso,
      state,
      aws,
    }
  }

  /// The (credentials, region) pairs a run of `plan` uses: today one, the configured
  /// credentials in the region the run targets (the failover parameter, `target_region` unless
  /// drctl.yaml's `failover.param` names another; else the default region). Runbooks acting in
  /// several accounts would add a pair per (role, region).
  fn credential_targets(&self, plan: &Plan) -> Vec<CredentialTarget> {
    let param = self
      .file
      .failover
      .as_ref()
      .and_then(|failover| failover.param.clone())
      .unwrap_or_else(|| "target_region".into());
    let region = plan
      .params
      .get(&param)
      .map(ToString::to_string)
      .filter(|region| !region.is_empty());
    vec![CredentialTarget {
      principal: Principal::Configured,
      region,
    }]
  }
}

/// A backend that cannot be built: a `Client` error is the environment's configuration (an
/// unreadable `SSL_CERT_FILE`), a usage error; anything else failed.
fn connect_error(what: &str, err: crate::cloud::CloudError) -> Error {
  match err.kind {
    crate::cloud::ErrorKind::Client => Error::Usage(format!("{what}: {}", err.message)),
    _ => Error::Failed(format!("{what}: {err}")),
  }
}

pub async fn dispatch(cli: Cli) -> Result<Exit, Error> {
  let mut ctx = Context::new(&cli.global)?;
  super::check_global_flags(&cli.global, &cli.command, &ctx)?;
  // With `--sandbox`: the server this command runs against, stopped when this guard drops
  // (after the command, whether it succeeded or not).
  let _sandbox = sandbox::prepare(&mut ctx, &cli.command)?;
  match cli.command {
    Command::Validate { paths } => validate(&ctx, &paths),
    Command::Schema { kind } => Ok(super::docs::schema(kind)),
    Command::Completions { shell } => Ok(super::docs::completions(shell)),
    Command::Man => super::docs::man(),
    Command::Graph { runbook } => {
      let runbook = load(&ctx, &runbook)?;
      out(&render::mermaid(&runbook));
      Ok(Exit::Succeeded)
    }
    Command::Plan {
      runbook,
      params,
      detailed_exitcode,
      leaving,
    } => {
      let plan = bind(&ctx, &runbook, &params)?;
      dry_run(&ctx, &plan, detailed_exitcode, leaving.as_deref()).await
    }
    Command::Run { runbook, args } => {
      let plan = bind(&ctx, &runbook, &args.params)?;
      if args.dry_run {
        return dry_run(&ctx, &plan, false, None).await;
      }
      run(&ctx, plan, &args).await
    }
    Command::Failover { region, args } => {
      let failover = ctx.file.failover.clone().unwrap_or_default();
      let runbook = failover
        .runbook
        .clone()
        .unwrap_or_else(|| ctx.runbooks.join("regional-failover.yaml"));
      let param = failover
        .param
        .clone()
        .unwrap_or_else(|| "target_region".into());
      let mut params: Vec<String> = failover
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
      params.push(format!("{param}={region}"));
      params.extend(args.params.iter().cloned());
      let plan = bind(&ctx, &runbook, &params)?;
      if args.dry_run {
        return dry_run(&ctx, &plan, false, None).await;
      }
      // Before the run, so before its first mutating step.
      super::confirm_failover(&region, args.yes)?;
      run(&ctx, plan, &args).await
    }
    Command::Resume {
      run_id,
      yes,
      max_parallel,
      accept_data_loss,
      force,
      params,
    } => {
      let again = parse_params(&params)?;
      let options = ResumeOptions {
        yes,
        max_parallel,
        accept_data_loss,
        force,
      };
      resume(&ctx, &run_id, options, &again).await
    }
    Command::Status { run_id } => status(&ctx, run_id.as_deref()).await,
    Command::Report(args) => super::report::report(&ctx, &args).await,
    Command::Runs => runs(&ctx).await,
    Command::Unlock { runbook, force } => unlock(&ctx, &runbook, force).await,
    Command::Sandbox { command } => sandbox::command(ctx.store.root(), ctx.output, &command),
    Command::State { command } => super::state::dispatch(&ctx, command).await,
    Command::Drill { command } => super::drill::dispatch(&ctx, command).await,
    Command::Scheduler(args) => super::drill::scheduler(&ctx, &args).await,
    Command::Freeze { reason } => super::freeze::freeze(&ctx, reason.as_deref()).await,
    Command::Unfreeze => super::freeze::unfreeze(&ctx).await,
    Command::Fence { command } => super::fences::command(&ctx, command).await,
    Command::Approve {
      run_id,
      step,
      reason,
    } => super::control::submit(&ctx, &run_id, ControlAction::Approve { step }, reason),
    Command::Deny {
      run_id,
      step,
      reason,
    } => super::control::submit(&ctx, &run_id, ControlAction::Deny { step }, reason),
    Command::Cancel { run_id, reason } => {
      super::control::submit(&ctx, &run_id, ControlAction::Cancel, reason)
    }
    Command::Serve(args) => super::serve::serve(&ctx, &args).await,
  }
}

fn load(ctx: &Context, path: &Path) -> Result<Runbook, Error> {
  let path = resolve_runbook(&ctx.runbooks, path);
  let runbook = runbook::load_file(&path, &Catalog)
    .map_err(|diagnostics| Error::Invalid(diagnostics.to_string()))?;
  print_warnings(&runbook);
  Ok(runbook)
}

/// Print a runbook's validation warnings (to stderr): what validates but is unsafe.
fn print_warnings(runbook: &Runbook) {
  for warning in runbook::validate::warnings(runbook) {
    let hint = warning
      .hint()
      .map(|hint| format!("\n  = hint: {hint}"))
      .unwrap_or_default();
    eprintln!("warning: {warning}\n  = key: {}{hint}", warning.key);
  }
}

fn bind(ctx: &Context, path: &Path, params: &[String]) -> Result<Plan, Error> {
  let runbook = load(ctx, path)?;
  let given = parse_params(params)?;
  Plan::bind(runbook, &given).map_err(|err| Error::Usage(format!("{}: {err}", path.display())))
}

fn validate(ctx: &Context, paths: &[PathBuf]) -> Result<Exit, Error> {
  let roots = if paths.is_empty() {
    vec![ctx.runbooks.clone()]
  } else {
    paths.to_vec()
  };
  let mut files = Vec::new();
  for root in &roots {
    if root.is_dir() {
      let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|err| Error::Usage(format!("{}: {err}", root.display())))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
          matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
          )
        })
        .collect();
      found.sort();
      files.extend(found);
    } else {
      files.push(root.clone());
    }
  }
  if files.is_empty() {
    return Err(Error::Usage(format!(
      "no runbooks found in {}",
      roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
    )));
  }
  let mut failed = 0;
  let mut report = Vec::new();
  for file in &files {
    // A drill file (`kind: Drill`) is validated as one, so `drctl validate drills/` works.
    let checked = if is_drill_file(file) {
      crate::drills::file::load_file(file, &ctx.runbooks, &Catalog)
        .map(|drill| format!("drill of {}", drill.runbook.name))
    } else {
      runbook::load_file(file, &Catalog).map(|runbook| {
        print_warnings(&runbook);
        format!("{} steps", runbook.steps.len())
      })
    };
    match checked {
      Ok(summary) => {
        report.push(
          serde_json::json!({"path": file.display().to_string(), "ok": true, "summary": summary}),
        );
        if ctx.output == Output::Text {
          out(&format!("ok    {} ({summary})\n", file.display()));
        }
      }
      Err(diagnostics) => {
        failed += 1;
        report.push(serde_json::json!({"path": file.display().to_string(), "ok": false, "errors": diagnostics.len()}));
        eprintln!("{diagnostics}\n");
      }
    }
  }
  if ctx.output == Output::Json {
    out(&format!("{}\n", serde_json::Value::Array(report)));
  } else if files.len() > 1 {
    out(&format!("{} file(s), {} invalid\n", files.len(), failed));
  }
  Ok(if failed > 0 {
    Exit::Usage
  } else {
    Exit::Succeeded
  })
}

/// Whether a file declares `kind: Drill` at its top level. Anything unreadable is left to the
/// runbook loader, which reports it with its position.
fn is_drill_file(path: &std::path::Path) -> bool {
  use std::io::Read;
  // The head of the file is enough: `kind:` sits at the top, and a huge file is the loader's
  // to refuse.
  let mut head = Vec::new();
  let read = std::fs::File::open(path).and_then(|file| file.take(64 * 1024).read_to_end(&mut head));
  read.is_ok() && {
    String::from_utf8_lossy(&head).lines().any(|line| {
      line
        .strip_prefix("kind:")
        .is_some_and(|kind| kind.trim().trim_matches(['"', '\'']) == "Drill")
    })
  }
}

/// Print the plan; its exit code: 1 when a probe could not ask (the plan is incomplete); with
/// `detailed` (`plan --detailed-exitcode`), 5 when changes are pending, else 0.
async fn dry_run(
  ctx: &Context,
  plan: &Plan,
  detailed: bool,
  leaving: Option<&str>,
) -> Result<Exit, Error> {
  let (report, cloud) = plan_report(ctx, plan, leaving).await?;
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::to_string_pretty(&report).unwrap_or_default()
    )),
    Output::Text => out(&render::plan_text(&report, &cloud)),
  }
  Ok(if report.probe_errors() > 0 {
    Exit::Failed
  } else if detailed && report.changes_pending() {
    Exit::ChangesPending
  } else {
    Exit::Succeeded
  })
}

/// Probe read-only and describe what a run of `plan` would change (`drctl plan`, dry-run drills).
pub(super) async fn plan_report(
  ctx: &Context,
  plan: &Plan,
  leaving: Option<&str>,
) -> Result<(plan::PlanReport, Cloud), Error> {
  // Missing or expired credentials stop a plan before its first probe, as they stop a run.
  let caller = ctx.preflight(plan).await?;
  // A fresh private directory (mkdtemp), removed when `dir` drops.
  let dir = tempfile::Builder::new()
    .prefix("drctl-plan-")
    .tempdir()
    .map_err(|err| Error::Failed(format!("cannot create a temporary directory: {err}")))?;
  let cloud = ctx
    .open_cloud(
      dir.path(),
      plan.secret_values(),
      &MutationFence::default(),
      caller.as_ref(),
    )
    .await?;
  let env = ctx.stability_environment(plan, leaving).await;
  let report = plan::describe(plan, &cloud, &env).await;
  Ok((report, cloud))
}

/// Approvals on a terminal. Without one it answers `Err`, and the engine waits for a request
/// file (`drctl approve|deny`) alone.
struct TerminalApprover;

#[async_trait::async_trait]
impl Approver for TerminalApprover {
  async fn approve(&self, step: &str, prompt: &str) -> Result<bool, String> {
    if !interactive() {
      // The engine waits for `drctl approve|deny` instead.
      return Err(format!(
        "step `{step}` needs approval (\"{prompt}\") and there is no terminal to ask on"
      ));
    }
    let question =
      format!("\n? approve step `{step}`: {prompt} [y/N] (or `drctl approve` from another shell) ");
    // The live view must not draw over the question. Held by this future, not by the reading
    // thread: when another answer wins (`drctl approve`), the future is dropped and the view
    // goes on, while the thread still waits for a line nobody needs any more.
    let _paused = super::live::Paused::new();
    eprint!("{question}");
    tokio::task::spawn_blocking(move || {
      let mut answer = String::new();
      std::io::stdin()
        .read_line(&mut answer)
        .map_err(|err| format!("cannot read the answer: {err}"))?;
      Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
    })
    .await
    .map_err(|err| err.to_string())?
  }
}

/// SIGINT/SIGTERM of a run: the first asks the engine to stop gracefully; the second ends the
/// process.
fn signals(run_id: &str) -> watch::Receiver<u32> {
  interrupts(
    "no new steps will start; finishing in-flight calls and clean-up".into(),
    format!("The journal is consistent; resume with `drctl resume {run_id}`"),
  )
}

/// SIGINT/SIGTERM as an interrupt count. The first is counted (and `first` says what happens
/// now). The second SIGKILLs every command's process group and the sandbox at once, and the run
/// then ends without its always-steps, returning through `main` with 130 (`second` says how to
/// recover); later ones kill again whatever was started since.
pub(super) fn interrupts(first: String, second: String) -> watch::Receiver<u32> {
  let (tx, rx) = watch::channel(0u32);
  tokio::spawn(async move {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
      return;
    };
    loop {
      tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
      }
      let count = tx.borrow().saturating_add(1);
      if count >= 2 {
        let killed = crate::process_group::kill_all();
        eprintln!(
          "\ninterrupted again: stopping now ({killed} process group(s) killed, always-steps cut \
           short). {second}"
        );
      } else {
        eprintln!("\ninterrupt: {first} (press Ctrl-C again to stop now)");
      }
      let _ = tx.send(count);
    }
  });
  rx
}

fn operator(observer: Arc<dyn engine::Observer>, run_id: &str) -> Operator {
  Operator {
    observer,
    approver: Arc::new(TerminalApprover),
    signals: signals(run_id),
  }
}

/// Keep a lock's lease alive while the run goes on; `fence` closes when it is lost or expires.
fn renew_lease(lock: HeldLock, fence: &MutationFence) -> LeaseKeeper {
  lock.keep_alive(lease_terms().renew_every, fence.clone())
}

/// The lock's lease and renewal interval: [`LeaseTerms::DEFAULT`], or a lease of
/// `DRCTL_LOCK_LEASE` (a duration such as `6s`, renewed every third of it). Undocumented on
/// purpose: the reliability suite shortens the lease to steal locks within seconds; in
/// production a short lease only makes a slow state store stop a failover sooner.
fn lease_terms() -> LeaseTerms {
  std::env::var("DRCTL_LOCK_LEASE")
    .ok()
    .and_then(|text| crate::runbook::parse_duration(&text).ok())
    .filter(|lease| *lease >= Duration::from_secs(1))
    .map_or(LeaseTerms::DEFAULT, LeaseTerms::with_lease)
}

/// What the engine's error means for the exit code: a lost lock is 4 (someone else holds it),
/// everything else 1.
fn engine_failed(err: engine::EngineError) -> Error {
  match &err {
    engine::EngineError::Fenced { reason, .. } if reason.is_lock_loss() => {
      Error::Locked(err.to_string())
    }
    _ => Error::Failed(err.to_string()),
  }
}

fn locked(err: LockError) -> Error {
  match err {
    LockError::Held { .. } | LockError::Live { .. } => Error::Locked(err.to_string()),
    LockError::NewerFormat(newer) => Error::Usage(newer.to_string()),
    other => Error::Failed(other.to_string()),
  }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, Error> {
  DateTime::parse_from_rfc3339(text)
    .map(|time| time.with_timezone(&Utc))
    .map_err(|err| {
      Error::Usage(format!(
        "--incident-start `{text}`: {err} (expected RFC 3339, e.g. 2026-11-22T03:04:05Z)"
      ))
    })
}

async fn run(ctx: &Context, plan: Plan, args: &RunArgs) -> Result<Exit, Error> {
  let outcome = execute(ctx, plan, args, None).await?;
  render_summary(ctx, &outcome);
  // A later run applies the fences earlier failovers left pending, once it is done (so never
  // delaying its own recovery). Those still pending stay listed by `drctl status`.
  let by = format!("run {}", outcome.timeline.run_id);
  match super::fences::apply_pending(ctx, None, &by).await {
    Ok(attempt) => {
      for applied in attempt.applied {
        eprintln!("applied pending fence {}: {}", applied.id, applied.summary);
      }
    }
    Err(err) => eprintln!("warning: pending fences: {}", err.message()),
  }
  Ok(status_code(outcome.status))
}

/// Run a bound plan on the context's backend: take the lock, journal (mirrored to an `s3://`
/// state), run the engine, release the lock (kept when interrupted: the run is to be resumed).
/// Shared by `run`, `failover`, `drill run` and the scheduler. `signals` is the interrupt count
/// to obey (default: this run's own SIGINT/SIGTERM handler).
pub(super) async fn execute(
  ctx: &Context,
  plan: Plan,
  args: &RunArgs,
  signals: Option<watch::Receiver<u32>>,
) -> Result<engine::RunOutcome, Error> {
  let incident_start = args.incident_start.as_deref().map(parse_time).transpose()?;
  if plan.runbook.refuse_pending_fences {
    super::fences::refuse_while_pending(ctx, &plan.runbook.name, super::fences::RunEntry::Start)
      .await?;
  }
  warn_missing_secrets(&plan);
  warn_region_dependencies(ctx, &plan).await;
  // Before the lock: a run whose credentials are missing or expired holds nothing.
  let caller = ctx.preflight(&plan).await?;
  let run_id = ctx.store.new_run_id();
  let holder = LockHolder::this_process(&run_id, &plan.runbook.name, &plan.runbook.lock_group);
  let s3 = ctx.s3_state().await;
  let lock = ctx
    .lock_store(s3.as_ref())
    .acquire(holder, lease_terms().lease)
    .await
    .map_err(locked)?;
  let fence = MutationFence::default();
  let renewal = renew_lease(lock, &fence);
  let run_dir = ctx.store.run_dir(&run_id);
  let mut mirror = None;
  let result = async {
    create_private_dir(&run_dir)
      .map_err(|err| Error::Failed(format!("{}: {err}", run_dir.display())))?;
    let cloud = ctx
      .open_cloud(&run_dir, plan.secret_values(), &fence, caller.as_ref())
      .await?;
    let mut journal = Journal::create(&ctx.store.journal_path(&run_id))
      .map_err(|err| Error::Failed(err.to_string()))?;
    mirror = super::state::start_mirror(ctx, s3.as_ref(), &run_id);
    if let Some(mirror) = &mirror {
      journal.set_mirror(mirror.sender());
    }
    let plan = Arc::new(plan);
    let observer = render::observer(ctx.output, &plan, &cloud, &run_id);
    let options = RunOptions {
      run_id: run_id.clone(),
      max_parallel: args.max_parallel,
      assume_yes: args.yes,
      accept_data_loss: args.accept_data_loss,
      force: args.force,
      incident_start,
      caller,
    };
    let mut operator = operator(observer, &run_id);
    if let Some(signals) = signals {
      operator.signals = signals;
    }
    engine::start(plan.clone(), cloud, journal, options, operator)
      .await
      .map_err(engine_failed)
  };
  let outcome = result.await;
  let location = s3.as_ref().map(|s3| s3.location.to_string());
  super::state::finish_mirror(mirror, location.as_deref().unwrap_or_default(), &run_id).await;
  release(renewal.stop().await, outcome).await
}

/// Render the outcome, release the lock (kept when interrupted: the run is to be resumed), and
/// pick the exit code.
async fn finish(
  ctx: &Context,
  lock: Option<HeldLock>,
  outcome: Result<engine::RunOutcome, Error>,
) -> Result<Exit, Error> {
  let outcome = release(lock, outcome).await?;
  render_summary(ctx, &outcome);
  Ok(status_code(outcome.status))
}

/// Release the lock after a run (kept when interrupted: the run is to be resumed).
async fn release(
  lock: Option<HeldLock>,
  outcome: Result<engine::RunOutcome, Error>,
) -> Result<engine::RunOutcome, Error> {
  let Some(lock) = lock else {
    return Err(Error::Failed(
      "internal: the lock renewal task panicked".into(),
    ));
  };
  let outcome = match outcome {
    Ok(outcome) => outcome,
    Err(err) => {
      let _ = lock.release().await;
      return Err(err);
    }
  };
  if !outcome.status.is_resumable() {
    if let Err(err) = lock.release().await {
      eprintln!("warning: {err}");
    }
  }
  Ok(outcome)
}

pub(super) fn render_summary(ctx: &Context, outcome: &engine::RunOutcome) {
  match ctx.output {
    Output::Text => out(&render::summary(&outcome.timeline)),
    Output::Json => out(&format!(
      "{}\n",
      serde_json::json!({"ts": Utc::now(), "event": "summary", "step": null, "status": outcome.status, "timeline": render::timeline_json(&outcome.timeline)})
    )),
  }
}

/// `drctl resume`'s flags.
struct ResumeOptions {
  yes: bool,
  max_parallel: usize,
  accept_data_loss: bool,
  force: bool,
}

/// Warn about every secret a run renders that the environment does not set (it renders empty).
fn warn_missing_secrets(plan: &Plan) {
  for name in &plan.missing_secrets {
    eprintln!("warning: secret `{name}` is not set in the environment; it renders empty");
  }
}

/// A run that depends on the region it fails away from says so, in one line, before it starts:
/// while that region is down those steps fail (`drctl plan` lists each with its alternative).
async fn warn_region_dependencies(ctx: &Context, plan: &Plan) {
  let env = ctx.stability_environment(plan, None).await;
  let analysis = plan::stability::analyze(plan, &env);
  let Some(leaving) = &analysis.leaving else {
    return;
  };
  let mut blocked: Vec<&str> = analysis
    .dependencies
    .iter()
    .filter(|dependency| dependency.severity == plan::stability::Severity::Blocks)
    .map(|dependency| dependency.step.as_deref().unwrap_or("the run itself"))
    .collect();
  blocked.dedup();
  if blocked.is_empty() {
    return;
  }
  eprintln!(
    "warning: {} depend{} on {region}, the region this run fails away from: while {region} is down \
     they fail (`drctl plan` lists each dependency and its alternative)",
    blocked.join(", "),
    if blocked.len() == 1 { "s" } else { "" },
    region = leaving.region,
  );
}

async fn resume(
  ctx: &Context,
  run_id: &str,
  options: ResumeOptions,
  again: &[(String, String)],
) -> Result<Exit, Error> {
  let ResumeOptions {
    yes,
    max_parallel,
    accept_data_loss,
    force,
  } = options;
  let s3 = ctx.s3_state().await;
  ctx.pull_runs(s3.as_ref()).await?;
  let run_id = ctx.store.find_run(run_id).map_err(Error::Usage)?;
  let journal_path = ctx.store.journal_path(&run_id);
  let records = crate::state::journal::read(&journal_path).map_err(super::state::journal_error)?;
  let Some(Event::RunStarted {
    runbook_path,
    params,
    backend,
    runbook,
    ..
  }) = records.first().map(|r| r.event.clone())
  else {
    return Err(Error::Failed(format!(
      "{}: does not start with run_started",
      journal_path.display()
    )));
  };
  if let Some(code) = finished_already(&journal_path, &run_id)? {
    return Ok(code);
  }
  // A world a newer drctl wrote is refused before anything is written (the lock included).
  crate::cloud::sim::check_world_format(&ctx.store.run_dir(&run_id))
    .map_err(super::state::sim_error)?;
  let loaded = runbook::load_file(Path::new(&runbook_path), &Catalog)
    .map_err(|diagnostics| Error::Invalid(diagnostics.to_string()))?;
  let plan = engine::bind_resumed(loaded, &params, again)
    .map_err(|errors| Error::Usage(format!("run {run_id}: {}", errors.join("\n"))))?;
  warn_missing_secrets(&plan);
  // Checked on every resume, not only at the start: a fence that became pending while the run
  // was stopped (a failover ran meanwhile) means the old primary may take writes again.
  if plan.runbook.refuse_pending_fences {
    let entry = super::fences::RunEntry::Resume(&run_id);
    super::fences::refuse_while_pending(ctx, &plan.runbook.name, entry).await?;
  }
  let resumed_ctx = Context {
    backend: match backend.as_str() {
      "sim" => Backend::Sim {
        world: None,
        time_scale: None,
      },
      // The sandbox's world lives in the server `drctl sandbox up` started: resume there.
      "sandbox" => sandbox::resume_backend(ctx, &run_id)?,
      // A run resumes against the backend it started on; AWS settings come from this
      // invocation (credentials are not journalled).
      _ => match &ctx.backend {
        Backend::Aws(settings) => Backend::Aws(settings.clone()),
        Backend::Sandbox { settings, .. } => Backend::Aws(settings.clone()),
        Backend::Sim { .. } => Backend::Aws(AwsSettings::default()),
      },
    },
    file: ctx.file.clone(),
    runbooks: ctx.runbooks.clone(),
    store: ctx.store.clone(),
    output: ctx.output,
    state: ctx.state.clone(),
    global: ctx.global.clone(),
  };
  // Before the lock, as for a new run: missing or expired credentials hold nothing.
  let caller = resumed_ctx.preflight(&plan).await?;
  // The lock before the journal is opened for writing: a live holder (the run itself, or
  // another resume of it) is never joined (exit 4, naming it).
  let lock = ctx
    .lock_store(s3.as_ref())
    .acquire(
      LockHolder::this_process(&run_id, &runbook, &plan.runbook.lock_group),
      lease_terms().lease,
    )
    .await
    .map_err(locked)?;
  // What was read above may be stale by now: a racing resume may have finished the run and
  // released the lock before we took it.
  if let Some(code) = finished_already(&journal_path, &run_id)? {
    let _ = lock.release().await;
    return Ok(code);
  }
  let fence = MutationFence::default();
  let renewal = renew_lease(lock, &fence);
  // Now that this process owns the run, what its killed predecessor left running goes.
  kill_left_behind(&run_id, &records);
  let mut mirror = None;
  let result = async {
    let run_dir = ctx.store.run_dir(&run_id);
    let cloud = resumed_ctx
      .open_cloud(&run_dir, plan.secret_values(), &fence, caller.as_ref())
      .await?;
    let (mut journal, records) =
      Journal::resume(&journal_path).map_err(super::state::journal_error)?;
    mirror = super::state::start_mirror(ctx, s3.as_ref(), &run_id);
    if let Some(mirror) = &mirror {
      journal.set_mirror(mirror.sender());
    }
    let plan = Arc::new(plan);
    let observer = render::observer(ctx.output, &plan, &cloud, &run_id);
    let options = RunOptions {
      run_id: run_id.clone(),
      max_parallel,
      assume_yes: yes,
      accept_data_loss,
      force,
      incident_start: None,
      // Who resumes it, journalled beside who started it (`run_started` keeps that).
      caller,
    };
    engine::resume(
      plan,
      cloud,
      journal,
      records,
      options,
      operator(observer, &run_id),
    )
    .await
    .map_err(engine_failed)
  };
  let outcome = result.await;
  let location = s3.as_ref().map(|s3| s3.location.to_string());
  super::state::finish_mirror(mirror, location.as_deref().unwrap_or_default(), &run_id).await;
  finish(ctx, renewal.stop().await, outcome).await
}

/// The processes a run's commands left running after its drctl went away (SIGKILLed): see
/// [`process_group::left_behind`].
/// Only groups recorded by a drctl on this host count (a run may have moved hosts through an
/// `s3://` state; pids mean nothing elsewhere).
fn left_behind(run_id: &str, records: &[Record]) -> (Vec<Survivor>, Vec<RecordedGroup>) {
  let this_host = hostname();
  let mut on_this_host = false;
  let mut groups = Vec::new();
  let mut owners = Vec::new();
  for record in records {
    match &record.event {
      Event::ProcessStarted {
        pgid, leader_start, ..
      } if on_this_host => groups.push(RecordedGroup {
        pgid: *pgid,
        leader_start: *leader_start,
      }),
      Event::RunStarted { pid, host, .. } | Event::RunResumed { pid, host, .. } => {
        on_this_host = *host == this_host;
        if on_this_host {
          owners.push(*pid);
        }
      }
      _ => {}
    }
  }
  (process_group::left_behind(run_id, &groups, &owners), groups)
}

/// Kill what a run's killed drctl left running, and say so.
fn kill_left_behind(run_id: &str, records: &[Record]) {
  let (survivors, groups) = left_behind(run_id, records);
  if survivors.is_empty() {
    return;
  }
  process_group::kill_survivors(&survivors, &groups);
  eprintln!(
    "killed {} processes left behind by the interrupted run (process groups {})",
    survivors.len(),
    pgid_list(&survivors)
  );
}

/// `"1234, 1240"`: the distinct process groups of `survivors`.
fn pgid_list(survivors: &[Survivor]) -> String {
  let pgids: std::collections::BTreeSet<u32> =
    survivors.iter().map(|survivor| survivor.pgid).collect();
  pgids
    .iter()
    .map(u32::to_string)
    .collect::<Vec<_>>()
    .join(", ")
}

/// If the run's journal says it succeeded (or breached), say so; its exit code.
fn finished_already(journal_path: &Path, run_id: &str) -> Result<Option<Exit>, Error> {
  let records = crate::state::journal::read(journal_path).map_err(super::state::journal_error)?;
  match Timeline::from_records(&records).and_then(|timeline| timeline.status) {
    Some(status @ (RunStatus::Succeeded | RunStatus::Breached)) => {
      out(&format!(
        "run {run_id} already finished: {}\n",
        status.as_str()
      ));
      Ok(Some(status_code(status)))
    }
    _ => Ok(None),
  }
}

async fn status(ctx: &Context, run_id: Option<&str>) -> Result<Exit, Error> {
  let s3 = ctx.s3_state().await;
  ctx.pull_runs(s3.as_ref()).await?;
  let run_id = ctx.run_or_latest(run_id)?;
  let records = ctx
    .store
    .read_journal(&run_id)
    .map_err(super::state::journal_error)?;
  let timeline = Timeline::from_records(&records).ok_or_else(|| {
    Error::Failed(format!(
      "run {run_id}: the journal does not start with run_started"
    ))
  })?;
  let run_dir = ctx.store.run_dir(&run_id);
  let operations = if run_dir.join("operations.jsonl").exists() {
    crate::cloud::sim::read_operation_log(&run_dir).map_err(super::state::sim_error)?
  } else {
    Vec::new()
  };
  let holder = ctx
    .lock_store(s3.as_ref())
    .held_by(&run_id)
    .await
    .ok()
    .flatten();
  let frozen = super::freeze::active(ctx, s3.as_ref()).await;
  let running = holder
    .as_ref()
    .is_some_and(|holder| holder.run_id == run_id && holder.staleness(Utc::now()).is_none());
  let (survivors, _) = left_behind(&run_id, &records);
  let pending_fences = super::fences::pending(ctx).await?;
  let dropped_fences = crate::state::fences::dropped(&ctx.store);
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::to_string_pretty(&serde_json::json!({
        "run_id": run_id,
        "running": running,
        "timeline": render::timeline_json(&timeline),
        "operations": operations,
        "left_behind": survivors,
        "frozen": super::freeze::frozen_json(&frozen),
        "pending_fences": pending_fences,
        "dropped_fences": dropped_fences
          .iter()
          .map(|(fence, record)| serde_json::json!({ "fence": fence, "dropped": record }))
          .collect::<Vec<_>>(),
      }))
      .unwrap_or_default()
    )),
    Output::Text => {
      let mut text = render::summary(&timeline);
      if running {
        text.push_str("  (still running)\n");
      } else if timeline.status.is_none_or(|status| status.is_resumable()) {
        text.push_str(&format!("  resume it with: drctl resume {run_id}\n"));
      }
      if !survivors.is_empty() {
        text.push_str(&format!(
          "  left behind: {} processes of this run still run without it (process groups {}); \
           `drctl resume {run_id}` kills them\n",
          survivors.len(),
          pgid_list(&survivors)
        ));
        for survivor in &survivors {
          text.push_str(&format!(
            "    pid {:>7}  {}\n",
            survivor.pid, survivor.command
          ));
        }
      }
      text.push_str(&super::freeze::frozen_text(&frozen));
      if !operations.is_empty() {
        text.push_str(&format!(
          "\nOperations ({} mutating calls in the simulated world)\n",
          operations.len()
        ));
        for op in &operations {
          text.push_str(&format!(
            "  {:>3}  {}  {} {} {}\n",
            op.seq,
            op.at.format("%H:%M:%S%.3f"),
            op.service,
            op.operation,
            op.target
          ));
        }
      }
      if !pending_fences.is_empty() {
        text.push_str(&format!(
          "\nPending fences ({}: applied once their region answers; failback refuses to start \
           until then; `drctl fence apply` tries now)\n",
          pending_fences.len()
        ));
        for fence in &pending_fences {
          text.push_str(&format!("  {}\n", super::fences::describe(fence)));
        }
      }
      if !dropped_fences.is_empty() {
        text.push_str(&format!(
          "\nDropped fences ({}: never applied, no longer waited for)\n",
          dropped_fences.len()
        ));
        for (fence, record) in &dropped_fences {
          text.push_str(&format!(
            "  {}\n",
            super::fences::describe_dropped(fence, record)
          ));
        }
      }
      out(&text);
    }
  }
  Ok(Exit::Succeeded)
}

async fn runs(ctx: &Context) -> Result<Exit, Error> {
  let s3 = ctx.s3_state().await;
  ctx.pull_runs(s3.as_ref()).await?;
  let runs = ctx.store.runs();
  // Every run is listed; one a newer drctl wrote is named, and makes the exit code 2.
  let newer = runs
    .iter()
    .any(|run| matches!(run, Err(JournalError::NewerFormat(_))));
  match ctx.output {
    Output::Json => {
      let list: Vec<serde_json::Value> = runs
        .iter()
        .map(|run| match run {
          Ok(summary) => serde_json::to_value(summary).unwrap_or_default(),
          Err(err) => {
            if matches!(err, JournalError::NewerFormat(_)) {
              eprintln!("error: {err}");
            }
            serde_json::json!({"error": err.to_string()})
          }
        })
        .collect();
      out(&format!(
        "{}\n",
        serde_json::to_string_pretty(&list).unwrap_or_default()
      ));
    }
    Output::Text => {
      if runs.is_empty() {
        out(&format!("no runs in {}\n", ctx.store.runs_dir().display()));
      }
      for run in runs {
        match run {
          Ok(run) => out(&format!(
            "{:<22} {:<28} {:<8} {:<12} {}\n",
            run.run_id,
            run.runbook,
            run.backend,
            run
              .status
              .map_or("running/killed", |status| status.as_str()),
            run.started_at.format("%Y-%m-%d %H:%M:%SZ")
          )),
          Err(err) => eprintln!("error: {err}"),
        }
      }
    }
  }
  Ok(if newer { Exit::Usage } else { Exit::Succeeded })
}

/// The lock group `drctl unlock NAME` means: a runbook file's group, the group of the runbook
/// `NAME` in the runbooks directory, or else the group named `NAME`.
fn lock_group_of(ctx: &Context, name: &str) -> Result<String, Error> {
  if name.ends_with(".yaml") || name.ends_with(".yml") {
    return Ok(load(ctx, Path::new(name))?.lock_group);
  }
  check_name(NameKind::LockGroup, name).map_err(Error::Usage)?;
  let path = super::resolve_runbook(&ctx.runbooks, Path::new(name));
  if path.is_file() {
    return Ok(load(ctx, &path)?.lock_group);
  }
  Ok(name.to_string())
}

/// `drctl unlock [--force] GROUP|RUNBOOK`: break a stale lock (a live holder's only with
/// `--force`).
async fn unlock(ctx: &Context, target: &str, force: bool) -> Result<Exit, Error> {
  let group = lock_group_of(ctx, target)?;
  check_name(NameKind::LockGroup, &group).map_err(Error::Usage)?;
  let s3 = ctx.s3_state().await;
  let locks = ctx.lock_store(s3.as_ref());
  // An older drctl's lock of the runbook `target` (named after it, no group in it) is what
  // `drctl unlock RUNBOOK` meant to it: that one goes first.
  // One a newer drctl wrote under that name is neither broken nor looked past (exit 2).
  let legacy = check_name(NameKind::LockGroup, target).is_ok()
    && match locks.holder(target).await {
      Ok(holder) => holder.is_some_and(|holder| holder.legacy),
      Err(err @ LockError::NewerFormat(_)) => return Err(locked(err)),
      Err(_) => false,
    };
  let name = if legacy { target.to_string() } else { group };
  match locks.unlock(&name, force).await.map_err(locked)? {
    Some(holder) => {
      if force && holder.staleness(Utc::now()).is_none() {
        eprintln!(
          "warning: broke the lock of a live holder (run {} on {}, pid {}); it goes on acting \
           until it notices",
          holder.run_id, holder.host, holder.pid
        );
      }
      out(&format!(
        "unlocked lock group `{name}` (was held by run {} of runbook `{}` on {}, pid {}, started \
         {})\n",
        holder.run_id,
        holder.runbook,
        holder.host,
        holder.pid,
        holder.started_at.format("%Y-%m-%d %H:%M:%SZ")
      ));
      Ok(Exit::Succeeded)
    }
    None => {
      out(&format!("lock group `{name}` was not locked\n"));
      Ok(Exit::Succeeded)
    }
  }
}
