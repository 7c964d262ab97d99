//! `drctl serve`: a status page over the state (runs, a live run view, run reports, drills),
//! `/metrics` for Prometheus and `/healthz`.
//!
//! The server only reads the state: journals through [`Store`], drill histories through
//! [`crate::drills::history`], locks through [`crate::state::lock`] (an `s3://` state is pulled
//! into its local cache in the background, as `drctl runs` does). Every page is built from the
//! same [`Report`] the `report` command renders, redaction included, so no page shows what
//! the report would not. Who may reach it is [`auth`]'s business.
//!
//! Pages read the last background refresh ([`App::refresh`], every `refresh_every`), so a
//! request never walks the state; the live view watches its own journal (length and mtime,
//! every `poll_every`) and pushes each change as a server-sent event, whichever process writes
//! the journal.

use std::{
  collections::HashSet,
  future::Future,
  sync::{Arc, Mutex, RwLock},
  time::Duration,
};

use axum::{
  body::Bytes,
  middleware,
  routing::{get, post},
  Router,
};
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::{
  drills::{history::HistoryEntry, Drill},
  report::Report,
  state::{store::Store, S3State},
};

pub mod auth;
mod control;
pub mod index;
pub mod metrics;
mod pages;
#[cfg(test)]
mod tests;

pub use auth::{Guard, People, Token};

/// Builds the report of a run (its journal, the simulator's operation log, the redaction of
/// the runbook's secrets): the `report` command's, so the two cannot differ.
pub type ReportBuilder = fn(&Store, &str) -> Result<Report, String>;

/// What the server shows.
pub struct Site {
  /// The state (for `s3://`, its local cache).
  pub store: Store,
  /// The `s3://` state behind the cache, pulled on every refresh.
  pub s3: Option<S3State>,
  pub drills: Vec<Drill>,
  pub report: ReportBuilder,
  /// How often the runs, histories and locks are read again.
  pub refresh_every: Duration,
  /// How often a live view looks at its journal.
  pub poll_every: Duration,
}

/// The state as of the last refresh.
#[derive(Default)]
struct Seen {
  snapshot: Arc<index::Snapshot>,
  /// Run ids whose lock is held by a live holder.
  live: Arc<HashSet<String>>,
  /// Each drill's history (in `Site::drills` order), or why it cannot be read.
  histories: Arc<Vec<Result<Vec<HistoryEntry>, String>>>,
  last_tick: Option<DateTime<Utc>>,
  /// The runs page, rendered when the runs or their liveness changed (10,000 rows are
  /// megabytes of HTML: requests share this copy).
  runs_page: Bytes,
}

/// A running server's shared state.
pub struct App {
  site: Site,
  index: Mutex<index::RunIndex>,
  seen: RwLock<Seen>,
  /// Each drill's expected interval (computed once: the schedule does not change).
  intervals: Vec<Option<f64>>,
  stopping: watch::Sender<bool>,
}

impl App {
  pub fn new(site: Site) -> Arc<App> {
    let now = Utc::now();
    let intervals = site
      .drills
      .iter()
      .map(|drill| metrics::expected_interval(drill, now))
      .collect();
    Arc::new(App {
      site,
      index: Mutex::new(index::RunIndex::default()),
      seen: RwLock::new(Seen::default()),
      intervals,
      stopping: watch::channel(false).0,
    })
  }

  /// Read the state again: pull an `s3://` state into its cache, then re-read what changed.
  pub async fn refresh(self: &Arc<App>) {
    let live = match &self.site.s3 {
      Some(s3) => {
        self.pull(s3).await;
        crate::state::s3::holders(s3).await.ok()
      }
      None => None,
    };
    let app = Arc::clone(self);
    // Walking the state is blocking file I/O.
    let _ = tokio::task::spawn_blocking(move || app.refresh_local(live)).await;
  }

  async fn pull(&self, s3: &S3State) {
    if let Err(err) = crate::state::s3::pull_runs(s3, &self.site.store).await {
      tracing::warn!(state = %s3.location, "cannot read runs: {err}");
    }
    for drill in &self.site.drills {
      let pulled = crate::drills::history::pull(s3, self.site.store.root(), &drill.name).await;
      if let Err(err) = pulled {
        tracing::warn!(drill = %drill.name, "cannot read drill history: {err}");
      }
    }
  }

  /// The local half of a refresh. `holders`: the live lock holders an `s3://` state named
  /// (`None`: read the local locks).
  fn refresh_local(&self, holders: Option<Vec<crate::state::LockHolder>>) {
    let (snapshot, parsed) = match self.index.lock() {
      Ok(mut index) => (index.refresh(&self.site.store), index.parsed_last),
      // A refresh that panicked left the cache half-built: start it again.
      Err(poisoned) => {
        let mut index = poisoned.into_inner();
        *index = index::RunIndex::default();
        (index.refresh(&self.site.store), index.parsed_last)
      }
    };
    let holders = holders.unwrap_or_else(|| {
      crate::state::lock::holders(&self.site.store.locks_dir()).unwrap_or_default()
    });
    let now = Utc::now();
    let live: HashSet<String> = holders
      .into_iter()
      .filter(|holder| holder.staleness(now).is_none())
      .map(|holder| holder.run_id)
      .collect();
    let histories = self
      .site
      .drills
      .iter()
      .map(|drill| {
        crate::drills::history::read(self.site.store.root(), &drill.name)
          .map_err(|newer| newer.to_string())
      })
      .collect();
    let before = self.seen();
    // Nothing parsed, nothing gone, the same live runs: the page is the same.
    let unchanged = parsed == 0
      && before.snapshot.runs.len() == snapshot.runs.len()
      && before.snapshot.unreadable.len() == snapshot.unreadable.len()
      && *before.live == live
      && !before.runs_page.is_empty();
    let runs_page = if unchanged {
      before.runs_page
    } else {
      Bytes::from(pages::runs_html(&snapshot, &live))
    };
    let seen = Seen {
      snapshot,
      runs_page,
      live: Arc::new(live),
      histories: Arc::new(histories),
      last_tick: crate::drills::scheduler::last_tick(self.site.store.root()),
    };
    match self.seen.write() {
      Ok(mut slot) => *slot = seen,
      Err(poisoned) => *poisoned.into_inner() = seen,
    }
  }

  /// The last refresh's view (cheap: shared pointers).
  fn seen(&self) -> Seen {
    let read = |seen: &Seen| Seen {
      snapshot: Arc::clone(&seen.snapshot),
      live: Arc::clone(&seen.live),
      histories: Arc::clone(&seen.histories),
      last_tick: seen.last_tick,
      runs_page: seen.runs_page.clone(),
    };
    match self.seen.read() {
      Ok(seen) => read(&seen),
      Err(poisoned) => read(&poisoned.into_inner()),
    }
  }

  /// The `/metrics` text as of the last refresh.
  pub fn metrics(&self) -> String {
    let seen = self.seen();
    let facts: Vec<metrics::DrillFacts<'_>> = self
      .site
      .drills
      .iter()
      .zip(seen.histories.iter())
      .zip(&self.intervals)
      .map(|((drill, history), interval)| metrics::DrillFacts {
        drill,
        history: history.as_deref().unwrap_or_default(),
        expected_interval: *interval,
      })
      .collect();
    metrics::render(&facts, &seen.snapshot.runs, &seen.live, seen.last_tick)
  }

  /// The runs page as of the last refresh.
  pub fn runs_page(&self) -> Bytes {
    self.seen().runs_page
  }

  /// Journals parsed by the last refresh (the others came from the cache).
  pub fn parsed_last(&self) -> usize {
    self.index.lock().map_or(0, |index| index.parsed_last)
  }
}

/// The routes, behind the guard.
pub fn router(app: Arc<App>, guard: Guard) -> Router {
  Router::new()
    .route("/", get(pages::runs))
    .route("/runs/{id}", get(pages::run))
    .route("/runs/{id}/events", get(pages::events))
    .route("/runs/{id}/report", get(pages::report))
    .route("/drills", get(pages::drills))
    .route("/metrics", get(pages::metrics))
    .route(auth::HEALTH_PATH, get(pages::healthz))
    .route(pages::LIVE_JS_PATH, get(pages::live_js))
    .route("/runs/{id}/approve", post(control::approve))
    .route("/runs/{id}/deny", post(control::deny))
    .route("/runs/{id}/cancel", post(control::cancel))
    .with_state(app)
    .layer(middleware::from_fn_with_state(guard, auth::protect))
}

/// Serve on `listener` until `shutdown` completes: refresh once, then in the background. Live
/// views end their event streams on shutdown, so it does not wait on open browsers.
pub async fn serve(
  listener: tokio::net::TcpListener,
  app: Arc<App>,
  guard: Guard,
  shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
  app.refresh().await;
  let refresher = {
    let app = Arc::clone(&app);
    tokio::spawn(async move {
      loop {
        tokio::time::sleep(app.site.refresh_every).await;
        app.refresh().await;
      }
    })
  };
  let stopping = app.stopping.clone();
  let result = axum::serve(listener, router(app, guard))
    .with_graceful_shutdown(async move {
      shutdown.await;
      stopping.send_replace(true);
    })
    .await;
  refresher.abort();
  result
}
