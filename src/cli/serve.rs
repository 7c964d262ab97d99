//! `drctl serve [--listen ADDR] [--scheduler]`: the status page, `/metrics` and `/healthz` over
//! the configured state (see `crate::serve`), optionally with the drill scheduler in the same
//! process.

use std::{net::SocketAddr, time::Duration};

use clap::Args as ClapArgs;
use tokio::sync::watch;

use super::{commands::Context, drill, out, Error, Exit, Output};
use crate::{
  report::Report,
  serve::{auth::TOKEN_ENV, App, Guard, People, Site, Token},
  state::store::Store,
};

/// `drctl serve` arguments.
#[derive(Debug, Clone, ClapArgs)]
pub struct ServeArgs {
  /// Address to listen on (IP:PORT). Anything but loopback needs DRCTL_SERVE_TOKEN or --tokens.
  #[arg(long, default_value = "127.0.0.1:8080", value_name = "IP:PORT")]
  pub listen: SocketAddr,
  /// Also run the drill scheduler in this process (as `drctl scheduler` does).
  #[arg(long)]
  pub scheduler: bool,
  /// With --scheduler: wait a random delay up to this long before each drill.
  #[arg(
    long,
    default_value = "30s",
    value_name = "DURATION",
    requires = "scheduler"
  )]
  pub jitter: String,
  /// Per-person tokens: a YAML file `tokens: [{name: NAME, token_sha256: HEX}]` (mode 0600).
  /// A request carrying one of them acts as that person.
  #[arg(long, value_name = "FILE")]
  pub tokens: Option<std::path::PathBuf>,
  /// A trusted reverse proxy's header naming the user (e.g. X-Forwarded-User), believed only
  /// on requests that carry DRCTL_SERVE_TOKEN (the proxy's). Needs DRCTL_SERVE_TOKEN.
  #[arg(long, value_name = "NAME")]
  pub proxy_user_header: Option<String>,
}

/// How often the runs, drill histories and locks are read again (an `s3://` state is pulled).
const REFRESH_EVERY: Duration = Duration::from_secs(2);
const REFRESH_EVERY_S3: Duration = Duration::from_secs(15);
/// How often a live view looks at its journal.
const POLL_EVERY: Duration = Duration::from_millis(500);

pub(super) async fn serve(ctx: &Context, args: &ServeArgs) -> Result<Exit, Error> {
  let token = std::env::var(TOKEN_ENV)
    .ok()
    .and_then(|token| Token::new(&token));
  let people = match &args.tokens {
    Some(path) => People::load(path).map_err(Error::Usage)?,
    None => People::default(),
  };
  // Refused before anything is bound.
  guard(args, args.listen, token.clone(), people.clone())?;
  let drills = drill::load_all(ctx)?;
  if args.scheduler {
    for drill in &drills {
      drill::drill_backend(ctx, drill)?;
    }
  }
  let listener = tokio::net::TcpListener::bind(args.listen)
    .await
    .map_err(|err| Error::Failed(format!("cannot listen on {}: {err}", args.listen)))?;
  let bound = listener
    .local_addr()
    .map_err(|err| Error::Failed(format!("cannot listen on {}: {err}", args.listen)))?;
  // The Host check needs the port really bound (`:0` picks one).
  let guard = guard(args, bound, token, people)?;
  let s3 = ctx.s3_state().await;
  let site = Site {
    store: ctx.store.clone(),
    refresh_every: if s3.is_some() {
      REFRESH_EVERY_S3
    } else {
      REFRESH_EVERY
    },
    s3,
    drills,
    report: report_of,
    poll_every: POLL_EVERY,
  };
  let app = App::new(site);
  match ctx.output {
    Output::Json => out(&format!(
      "{}\n",
      serde_json::json!({"event": "listening", "url": format!("http://{bound}/")})
    )),
    Output::Text => out(&format!("drctl serve: listening on http://{bound}/\n")),
  }
  let signals = super::commands::interrupts(
    "stopping the server (a running drill finishes its in-flight calls first)".into(),
    "An interrupted drill run can be resumed with `drctl resume`".into(),
  );
  // The server stops on a signal, or when the scheduler beside it has stopped.
  let (scheduler_done, mut scheduler_stopped) = watch::channel(false);
  let mut stop = signals.clone();
  let shutdown = async move {
    tokio::select! {
      _ = stop.wait_for(|count| *count > 0) => {}
      _ = scheduler_stopped.wait_for(|done| *done) => {}
    }
  };
  let server = crate::serve::serve(listener, app, guard, shutdown);
  let scheduler = async {
    if !args.scheduler {
      return Ok(Exit::Succeeded);
    }
    let scheduler_args = drill::SchedulerArgs {
      once: false,
      jitter: args.jitter.clone(),
      now: None,
    };
    let code = drill::scheduler_with(ctx, &scheduler_args, signals.clone()).await;
    scheduler_done.send_replace(true);
    code
  };
  let (served, scheduled) = tokio::join!(server, scheduler);
  served.map_err(|err| Error::Failed(format!("serving on {bound}: {err}")))?;
  let code = scheduled?;
  Ok(if *signals.borrow() > 0 {
    Exit::Interrupted
  } else {
    code
  })
}

/// The `report` command's report of a run, for the pages.
fn report_of(store: &Store, run_id: &str) -> Result<Report, String> {
  super::report::build_from(store, run_id).map_err(|err| err.message().to_string())
}

/// The access rules for `bound`, or the usage error that stops the server from starting.
fn guard(
  args: &ServeArgs,
  bound: SocketAddr,
  token: Option<Token>,
  people: People,
) -> Result<Guard, Error> {
  let guard = Guard::with_people(bound, token, people).map_err(Error::Usage)?;
  match &args.proxy_user_header {
    Some(name) => guard.with_proxy_header(name).map_err(Error::Usage),
    None => Ok(guard),
  }
}
