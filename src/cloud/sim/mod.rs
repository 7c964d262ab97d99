//! The in-process simulator: a modelled AWS account behind the same traits as the real one.
//!
//! * **World.** A YAML world file ([`world::WorldSpec`], or [`BUILTIN_WORLD`]) declares regions,
//!   RDS instances/snapshots/global clusters, ECS services, Route 53 zones and health checks, S3
//!   objects, HTTP endpoints, webhooks, outages, timings, faults and rate limits.
//! * **Time.** Calls await their modelled latency on the [`Clock`] (tokio time, `time_scale`
//!   times faster than the wall), but state transitions are computed lazily from *wall-clock*
//!   timestamps × `time_scale`, so the world keeps moving while no drctl process is alive.
//! * **Persistence.** `dir/world.json` holds the initial world; `dir/operations.jsonl` holds
//!   every accepted mutating call, fsynced before the call returns success. Opening an existing
//!   dir replays the log at the recorded times. The log is the single source of truth: an
//!   effect exists iff its line is complete, so "each effect exactly once" is checkable from it.
//! * **Client.** Each AWS call makes one attempt, as the SDK clients do, and an attempt that
//!   hangs fails after [`ATTEMPT_TIMEOUT`] (modelled) with a retryable `RequestTimeout`, as the
//!   SDK's attempt timeout does. Retries are the client layer's ([`crate::cloud::limiter`]).
//! * **Secrets.** Strings given to [`Sim::set_redactions`] never reach the files: they are
//!   replaced by `***` in everything persisted and in error messages.

use std::{
  convert::Infallible,
  fmt, fs,
  path::{Path, PathBuf},
  sync::{
    atomic::{AtomicI64, AtomicU64, Ordering},
    Arc, Mutex, MutexGuard, PoisonError, RwLock,
  },
  time::Duration,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use self::{
  faults::{Faults, Verdict},
  persist::{OpLog, WorldFile},
  state::{Reject, WorldState},
  world::{Timings, WorldSpec},
};
use super::{
  ops::{Endpoint, Op},
  CallerIdentity, Clock, Cloud, CloudError, CloudResult, ErrorKind, ATTEMPT_TIMEOUT,
};

mod faults;
pub(crate) mod http;
mod persist;
pub(crate) mod state;
pub mod world;

#[cfg(test)]
mod tests;

pub use world::BUILTIN_WORLD;

/// How to open a simulated world.
#[derive(Debug, Clone)]
pub struct SimOptions {
  /// A WORLD.yaml; `None` = the built-in world matching the shipped runbooks.
  pub world: Option<PathBuf>,
  /// Overrides the world's `time_scale` when the world is created (a resumed world keeps the
  /// scale it was created with: its history was computed with it).
  pub time_scale: Option<f64>,
  /// Directory where this run's world persists (`world.json` + `operations.jsonl`). If it
  /// already holds a world (a resumed run), that world is loaded and `world` is ignored.
  pub dir: PathBuf,
}

/// A mutating call the simulator accepted, as recorded in the operation log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
  /// 1, 2, 3, ... in log order.
  pub seq: u64,
  /// Wall-clock time the call was accepted (the time it is replayed at).
  pub at: DateTime<Utc>,
  pub service: String,
  /// The AWS API operation name (`PromoteReadReplica`); `POST` for notifications.
  pub operation: String,
  pub region: Option<String>,
  /// The resource acted on (`app-db-replica`, `app-standby/api`, `Z123`, a webhook URL).
  pub target: String,
  /// Operation parameters (e.g. `{"cluster": .., "service": .., "desired_count": 3}`).
  pub detail: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
  #[error("{path}: {message}")]
  World { path: PathBuf, message: String },
  #[error("simulator state in {path}: {source}")]
  Io {
    path: PathBuf,
    #[source]
    source: std::io::Error,
  },
  /// The run's world was written by a newer drctl (see `crate::format`).
  #[error(transparent)]
  NewerFormat(crate::format::NewerFormat),
}

/// Where "now" comes from for state transitions.
#[derive(Debug, Clone, Copy)]
enum TimeSource {
  Wall,
  /// Wall time at `wall`, then advancing with tokio time (so paused-time tests progress).
  Tokio {
    wall: DateTime<Utc>,
    instant: tokio::time::Instant,
  },
}

/// The world state and its log, changed together under one lock.
struct Core {
  state: WorldState,
  /// The world as it was created: with `ops`, the world at any past instant ([`History`]).
  initial: WorldState,
  log: OpLog,
  ops: Vec<Operation>,
}

/// The world's past: the world as it was created and the operations accepted since, in log
/// order. A model whose answer depends on how the world stood earlier (a CloudWatch alarm's
/// datapoints) replays it with [`History::replay`].
pub(crate) struct History<'a> {
  initial: &'a WorldState,
  ops: &'a [Operation],
}

impl History<'_> {
  /// A replay from the world's creation, to be moved forward in time with [`Replay::at`].
  pub(crate) fn replay(&self) -> Replay<'_> {
    Replay {
      state: self.initial.clone(),
      ops: self.ops,
      next: 0,
    }
  }
}

/// The world replayed up to an instant that only moves forward.
pub(crate) struct Replay<'a> {
  state: WorldState,
  ops: &'a [Operation],
  next: usize,
}

impl Replay<'_> {
  /// The world as it stood at `at`: every operation accepted by then applied. `at` must not
  /// be earlier than the last call's (an earlier one gets the later world).
  pub(crate) fn at(&mut self, at: DateTime<Utc>) -> &WorldState {
    while let Some(op) = self.ops.get(self.next).filter(|op| op.at <= at) {
      // Every logged operation was accepted by this same world, so it applies again.
      let _ = self.state.apply(op);
      self.next += 1;
    }
    &self.state
  }
}

/// An opened simulated world.
pub struct Sim {
  dir: PathBuf,
  clock: Clock,
  timings: Timings,
  faults: Faults,
  /// The world's `faults.region_down`: every endpoint in that region fails.
  region_down: Option<world::RegionDown>,
  core: Mutex<Core>,
  redactions: RwLock<Vec<String>>,
  time_source: Mutex<TimeSource>,
  /// Added to "now", in microseconds (see [`Sim::advance`]).
  skew_micros: AtomicI64,
  requests: AtomicU64,
}

impl fmt::Debug for Sim {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.debug_struct("Sim")
      .field("dir", &self.dir)
      .field("clock", &self.clock)
      .finish_non_exhaustive()
  }
}

/// Why a call was refused before it reached the world.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
  Throttled(Duration),
  Failed(Duration),
  TimedOut(Duration),
  /// The region's endpoint cannot be reached (the region is in outage).
  Unreachable,
  /// The endpoint is in the world's `region_down` region; it failed after that long, in the
  /// way the fault names.
  RegionDown(Duration),
}

/// The providers of one [`Sim`]: one value implements every service trait.
pub(crate) struct SimCloud {
  pub(crate) sim: Arc<Sim>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
  // A panic while holding the lock cannot leave a half-applied world: operations are applied
  // to a copy that replaces the state only once it is complete and logged.
  mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sim {
  /// Open the world persisted in `options.dir`, or create it there from `options.world` (or
  /// the built-in world) if the directory holds none yet.
  pub fn open(options: &SimOptions) -> Result<Arc<Sim>, SimError> {
    let dir = options.dir.clone();
    // The run directory is state: private (0700), like the rest of it.
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
      .create(&dir)
      .map_err(|source| SimError::Io {
        path: dir.clone(),
        source,
      })?;
    let existing = dir.join(persist::WORLD_FILE).exists();
    let file = if existing {
      let file = persist::read_world(&dir)?;
      if options
        .time_scale
        .is_some_and(|scale| scale != file.time_scale)
      {
        tracing::warn!(
          dir = %dir.display(),
          time_scale = file.time_scale,
          "resuming a simulated world keeps the time scale it was created with"
        );
      }
      file
    } else {
      let (spec, source) = match &options.world {
        Some(path) => (
          world::read_world_file(path).and_then(|text| WorldSpec::from_yaml(&text)),
          path.clone(),
        ),
        None => (
          WorldSpec::from_yaml(BUILTIN_WORLD),
          PathBuf::from("<built-in world>"),
        ),
      };
      let spec = spec.map_err(|message| SimError::World {
        path: source.clone(),
        message,
      })?;
      let time_scale = options.time_scale.unwrap_or(spec.time_scale);
      if !(time_scale.is_finite() && time_scale > 0.0) {
        return Err(SimError::World {
          path: source,
          message: format!("time_scale must be a positive number, got {time_scale}"),
        });
      }
      let file = WorldFile::new(spec, Utc::now(), time_scale);
      persist::write_world(&dir, &file)?;
      file
    };

    let initial = WorldState::new(&file.world, file.created_at, file.time_scale);
    let mut state = initial.clone();
    let contents = if existing {
      persist::read_log(&dir)?
    } else {
      // A fresh world: whatever log a crashed creation left behind holds nothing accepted.
      persist::LogContents {
        ops: Vec::new(),
        valid_len: 0,
      }
    };
    for op in &contents.ops {
      state.apply(op).map_err(|reject| SimError::World {
        path: dir.join(persist::LOG_FILE),
        message: format!(
          "operation {} ({} {} {}) cannot be replayed: {} {}",
          op.seq, op.service, op.operation, op.target, reject.code, reject.message
        ),
      })?;
    }
    let log = OpLog::open(&dir, contents.valid_len)?;
    tracing::debug!(
      dir = %dir.display(),
      log = %log.path().display(),
      replayed = contents.ops.len(),
      "opened simulated world"
    );

    Ok(Arc::new(Sim {
      clock: Clock::scaled(file.time_scale),
      timings: file.world.timings.clone(),
      region_down: file.world.faults.region_down.clone(),
      faults: Faults::new(
        file.world.faults.calls.clone(),
        file.world.rate_limits.clone(),
        file.world.aws_rate_limits,
        file.world.seed,
      ),
      core: Mutex::new(Core {
        state,
        initial,
        log,
        ops: contents.ops,
      }),
      redactions: RwLock::new(Vec::new()),
      time_source: Mutex::new(TimeSource::Wall),
      skew_micros: AtomicI64::new(0),
      requests: AtomicU64::new(0),
      dir,
    }))
  }

  /// The providers backed by this world.
  pub fn cloud(self: &Arc<Self>) -> Cloud {
    let providers = Arc::new(SimCloud {
      sim: Arc::clone(self),
    });
    // `SimCloud` implements every family's trait (in `cloud/<family>/sim.rs`).
    macro_rules! providers {
      ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
        Cloud {
          $($family: providers.clone(),)*
          http: providers,
          clock: self.clock,
          backend: "sim".into(),
          fence: Default::default(),
        }
      };
    }
    super::with_families!(providers)
  }

  /// Every operation accepted so far (replayed ones included), in order.
  pub fn operation_log(&self) -> Vec<Operation> {
    lock(&self.core).ops.clone()
  }

  /// Strings (secrets) to replace by `***` in everything the simulator persists or reports.
  pub fn set_redactions(&self, secrets: Vec<String>) {
    let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    // Longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    *self
      .redactions
      .write()
      .unwrap_or_else(PoisonError::into_inner) = secrets;
  }

  /// The directory this world persists in.
  pub fn dir(&self) -> &Path {
    &self.dir
  }

  /// Let the world's "now" advance with tokio time from here on (it still starts at the wall
  /// clock). For tests that run drctl under `tokio::time::pause()`: waits on the [`Clock`] then
  /// move the world along without real sleeping. Not for production use (a world must keep
  /// moving with the wall clock while no process runs).
  pub fn follow_tokio_time(&self) {
    *lock(&self.time_source) = TimeSource::Tokio {
      wall: Utc::now(),
      instant: tokio::time::Instant::now(),
    };
  }

  /// Move the world's "now" forward by a *modelled* duration (for tests: no real sleeping).
  pub fn advance(&self, modelled: Duration) {
    let wall = self.clock.to_wall(modelled);
    let micros = i64::try_from(wall.as_micros()).unwrap_or(i64::MAX);
    let _ = self
      .skew_micros
      .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |skew| {
        Some(skew.saturating_add(micros))
      });
  }

  /// The wall-clock "now" that state transitions are computed from.
  pub(crate) fn now(&self) -> DateTime<Utc> {
    let base = match *lock(&self.time_source) {
      TimeSource::Wall => Utc::now(),
      TimeSource::Tokio { wall, instant } => {
        let since = tokio::time::Instant::now().duration_since(instant);
        chrono::Duration::from_std(since)
          .ok()
          .and_then(|since| wall.checked_add_signed(since))
          .unwrap_or(wall)
      }
    };
    let skew = chrono::Duration::microseconds(self.skew_micros.load(Ordering::SeqCst));
    base.checked_add_signed(skew).unwrap_or(base)
  }

  pub(crate) fn propagation(&self) -> Duration {
    self.timings.route53_propagation.0
  }

  /// A fake but unique request id.
  pub(crate) fn request_id(&self) -> String {
    let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
    format!("sim-{}-{n}", std::process::id())
  }

  pub(crate) fn redact(&self, text: &str) -> String {
    let secrets = self
      .redactions
      .read()
      .unwrap_or_else(PoisonError::into_inner);
    let mut out = text.to_string();
    for secret in secrets.iter() {
      if out.contains(secret.as_str()) {
        out = out.replace(secret.as_str(), "***");
      }
    }
    out
  }

  fn redact_json(&self, value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
      Value::String(text) => Value::String(self.redact(&text)),
      Value::Array(items) => Value::Array(items.into_iter().map(|v| self.redact_json(v)).collect()),
      Value::Object(fields) => Value::Object(
        fields
          .into_iter()
          .map(|(key, value)| (self.redact(&key), self.redact_json(value)))
          .collect(),
      ),
      other => other,
    }
  }

  pub(crate) fn reject(&self, service: &str, operation: &str, reject: Reject) -> CloudError {
    let error = CloudError::new(
      reject.kind,
      service,
      operation,
      self.redact(&reject.message),
    )
    .with_code(reject.code);
    // Status 0: no HTTP exchange happened (a connection that failed), so none to report.
    let error = match reject.status {
      0 => error,
      status => error.with_status(status),
    };
    error.with_request_id(self.request_id())
  }

  /// Note a refused call in `refusals.jsonl` (best effort, not fsynced: it is a record of what
  /// clients were told, for benchmarks and tests, not of the world's state).
  fn record_refusal(&self, error: &CloudError) {
    let line = serde_json::json!({
      "at": self.now(),
      "service": error.service,
      "operation": error.operation,
      "code": error.code,
    });
    let path = self.dir.join(REFUSALS_FILE);
    let written = std::os::unix::fs::OpenOptionsExt::mode(
      fs::OpenOptions::new().create(true).append(true),
      0o600,
    )
    .open(&path)
    .and_then(|mut file| {
      use std::io::Write;
      writeln!(file, "{line}")
    });
    if let Err(err) = written {
      tracing::debug!(path = %path.display(), "cannot record a refused call: {err}");
    }
  }

  pub(crate) fn refused(&self, service: &str, operation: &str, refusal: Refusal) -> CloudError {
    let reject = match refusal {
      Refusal::Throttled(_) => {
        Reject::new(ErrorKind::Throttling, "Throttling", 400, "Rate exceeded")
      }
      Refusal::Failed(_) => Reject::new(
        ErrorKind::Server,
        "InternalFailure",
        500,
        "The request processing has failed because of an unknown error.",
      ),
      Refusal::TimedOut(after) => Reject::new(
        ErrorKind::Transport,
        "RequestTimeout",
        408,
        format!("no answer within {}ms", after.as_millis()),
      ),
      Refusal::Unreachable => Reject::new(
        ErrorKind::Transport,
        "DispatchFailure",
        0,
        format!("could not connect to the {service} endpoint: the region is in outage (simulated)"),
      ),
      Refusal::RegionDown(after) => self.region_down_reject(service, operation, after),
    };
    let error = self.reject(service, operation, reject);
    self.record_refusal(&error);
    error
  }

  /// What every call goes through before it reaches the world: the rate limit, the modelled
  /// latency and the injected faults. Returns the modelled latency the call took.
  ///
  /// `timeout` is the client's: a call that hangs, or whose latency passes it, fails with
  /// `RequestTimeout` once it has elapsed (modelled). AWS calls pass [`ATTEMPT_TIMEOUT`], what
  /// the SDK clients are configured with; HTTP requests their own.
  pub(crate) async fn gate(
    &self,
    service: &str,
    operation: &str,
    region: Option<&str>,
    timeout: Option<Duration>,
  ) -> Result<Duration, Refusal> {
    self.gate_cost(service, operation, region, timeout, 1).await
  }

  /// [`Sim::gate`] for a call that stands for `cost` AWS requests (against the rate limit).
  pub(crate) async fn gate_cost(
    &self,
    service: &str,
    operation: &str,
    region: Option<&str>,
    timeout: Option<Duration>,
    cost: u32,
  ) -> Result<Duration, Refusal> {
    let base = self.timings.api_latency.0;
    if let Some(down) = self.down_endpoint(service, operation, region) {
      let after = match down.fails_with {
        world::DownFailure::Timeout => timeout.unwrap_or(ATTEMPT_TIMEOUT),
        world::DownFailure::Unreachable | world::DownFailure::Error => base,
      };
      self.clock.sleep(after).await;
      return Err(Refusal::RegionDown(after));
    }
    if takes_down(service, operation) && region.is_some_and(|region| self.region_in_outage(region))
    {
      // A connection that fails: refused as soon as it is tried, before any rate limit.
      self.clock.sleep(base).await;
      return Err(Refusal::Unreachable);
    }
    if !self
      .faults
      .take_token(service, operation, region, cost, &self.clock)
    {
      self.clock.sleep(base).await;
      return Err(Refusal::Throttled(base));
    }
    let (extra, verdict) = self.faults.roll(service, operation);
    let latency = base.saturating_add(extra);
    if let Some(timeout) = timeout {
      if verdict == Verdict::Hang || latency > timeout {
        self.clock.sleep(timeout).await;
        return Err(Refusal::TimedOut(timeout));
      }
    }
    self.clock.sleep(latency).await;
    match verdict {
      Verdict::Pass => Ok(latency),
      Verdict::Throttle => Err(Refusal::Throttled(latency)),
      Verdict::Error => Err(Refusal::Failed(latency)),
      Verdict::Hang => {
        tracing::debug!(service, operation, "simulated call hangs");
        let never: Infallible = std::future::pending().await;
        match never {}
      }
    }
  }

  /// The world's `region_down` when the call's endpoint is in that region: a regional call
  /// naming it, or a global operation whose endpoint is served from it (the operation table's
  /// [`Endpoint`]). The one place that decides it.
  fn down_endpoint(
    &self,
    service: &str,
    operation: &str,
    region: Option<&str>,
  ) -> Option<&world::RegionDown> {
    let down = self.region_down.as_ref()?;
    let endpoint_region = match crate::cloud::ops::find(service, operation)?.endpoint {
      Endpoint::Regional => region?,
      Endpoint::Global { home } => home,
    };
    (endpoint_region == down.region).then_some(down)
  }

  /// What a call to an endpoint in the `region_down` region gets back, naming the dependency.
  fn region_down_reject(&self, service: &str, operation: &str, after: Duration) -> Reject {
    let Some(down) = &self.region_down else {
      return Reject::new(ErrorKind::Transport, "DispatchFailure", 0, "region down");
    };
    let region = &down.region;
    let endpoint = match crate::cloud::ops::find(service, operation).map(|op| op.endpoint) {
      Some(Endpoint::Global { home }) => {
        format!("{service}'s global endpoint for {operation}, served only from {home}")
      }
      _ => format!("the {service} endpoint in {region}"),
    };
    let why = format!("{region} is down (simulated region_down)");
    match down.fails_with {
      world::DownFailure::Unreachable => Reject::new(
        ErrorKind::Transport,
        "DispatchFailure",
        0,
        format!("could not connect to {endpoint}: {why}"),
      ),
      world::DownFailure::Error => Reject::new(
        ErrorKind::Server,
        "ServiceUnavailable",
        503,
        format!("{endpoint} answered 503 Service Unavailable: {why}"),
      ),
      world::DownFailure::Timeout => Reject::new(
        ErrorKind::Transport,
        "RequestTimeout",
        408,
        format!(
          "no answer from {endpoint} within {}ms: {why}",
          after.as_millis()
        ),
      ),
    }
  }

  /// Whether `region` is in outage now (the world's `outages`): its control-plane calls fail as
  /// unreachable and its endpoints answer 503. The one place that says so; not to be called
  /// while holding the world (inside a [`Sim::read`] closure use `WorldState::in_outage`).
  pub fn region_in_outage(&self, region: &str) -> bool {
    self.peek(|state, now| state.in_outage(region, now))
  }

  /// Look at the world now, without going through the gate.
  pub(crate) fn peek<T>(&self, read: impl FnOnce(&WorldState, DateTime<Utc>) -> T) -> T {
    let core = lock(&self.core);
    read(&core.state, self.now())
  }

  /// A read-only call that also sees the world's past: gate, then read the world now with its
  /// [`History`].
  pub(crate) async fn read_with_history<T, F>(
    &self,
    op: &'static Op,
    region: Option<&str>,
    read: F,
  ) -> CloudResult<T>
  where
    F: FnOnce(&WorldState, &History<'_>, DateTime<Utc>) -> Result<T, Reject> + Send,
  {
    let (service, operation) = (op.service, op.name);
    self
      .gate(service, operation, region, Some(ATTEMPT_TIMEOUT))
      .await
      .map_err(|refusal| self.refused(service, operation, refusal))?;
    let now = self.now();
    let core = lock(&self.core);
    let history = History {
      initial: &core.initial,
      ops: &core.ops,
    };
    read(&core.state, &history, now).map_err(|reject| self.reject(service, operation, reject))
  }

  /// A read-only call: gate, then read the world now.
  pub(crate) async fn read<T, F>(
    &self,
    op: &'static Op,
    region: Option<&str>,
    read: F,
  ) -> CloudResult<T>
  where
    F: FnOnce(&WorldState, DateTime<Utc>) -> Result<T, Reject> + Send,
  {
    let (service, operation) = (op.service, op.name);
    self
      .gate(service, operation, region, Some(ATTEMPT_TIMEOUT))
      .await
      .map_err(|refusal| self.refused(service, operation, refusal))?;
    self
      .peek(read)
      .map_err(|reject| self.reject(service, operation, reject))
  }

  /// A mutating call: gate, then [`Sim::commit`]. A call that times out in the gate took no
  /// effect (the simulator does not model an answer lost after the effect).
  pub(crate) async fn mutate(
    &self,
    op: &'static Op,
    region: Option<&str>,
    target: &str,
    detail: serde_json::Value,
  ) -> CloudResult<Operation> {
    let (service, operation) = (op.service, op.name);
    self
      .gate(service, operation, region, Some(ATTEMPT_TIMEOUT))
      .await
      .map_err(|refusal| self.refused(service, operation, refusal))?;
    self.commit(service, operation, region, target, detail)
  }

  /// Apply an operation to a copy of the world; if the world accepts it, append it to the log
  /// (fsynced) and only then make the copy the world. So the log and the world never disagree.
  // CloudError is the provider boundary's error type, returned unboxed by every provider.
  #[allow(clippy::result_large_err)]
  pub(crate) fn commit(
    &self,
    service: &str,
    operation: &str,
    region: Option<&str>,
    target: &str,
    detail: serde_json::Value,
  ) -> CloudResult<Operation> {
    let target = self.redact(target);
    let detail = self.redact_json(detail);
    let mut core = lock(&self.core);
    let op = Operation {
      seq: core.ops.last().map_or(1, |last| last.seq + 1),
      at: self.now(),
      service: service.into(),
      operation: operation.into(),
      region: region.map(str::to_string),
      target,
      detail,
    };
    let mut next = core.state.clone();
    next
      .apply(&op)
      .map_err(|reject| self.reject(service, operation, reject))?;
    core.log.append(&op).map_err(|err| {
      self.reject(
        service,
        operation,
        Reject::new(
          ErrorKind::Server,
          "InternalFailure",
          500,
          format!("the simulator could not persist the operation: {err}"),
        ),
      )
    })?;
    core.state = next;
    core.ops.push(op.clone());
    tracing::debug!(seq = op.seq, service, operation, target = %op.target, "simulated operation");
    Ok(op)
  }
}

/// Whether a region in outage takes the call down with it: the regional control-plane
/// operations of the table ([`crate::cloud::ops`]), RDS's and ECS's. Route 53's control plane
/// is global (in us-east-1); CloudWatch's metric reads and S3's object calls are the data
/// plane: the standby region's metrics of a replica stay readable.
fn takes_down(service: &str, operation: &str) -> bool {
  crate::cloud::ops::find(service, operation).is_some_and(|op| {
    op.plane == crate::cloud::ops::Plane::Control
      && op.endpoint == crate::cloud::ops::Endpoint::Regional
  })
}

/// Calls the simulator refused (throttled, failed, timed out), one JSON line each.
pub const REFUSALS_FILE: &str = "refusals.jsonl";

/// A call the simulator refused, as recorded in [`REFUSALS_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
  pub at: DateTime<Utc>,
  pub service: String,
  pub operation: String,
  pub code: Option<String>,
}

/// The refused calls a run's simulator recorded in `dir` (none when it refused none).
/// The simulator's stand-in for STS `GetCallerIdentity`: no credentials are involved, so the
/// identity says so rather than looking like a real account.
pub fn caller_identity() -> CallerIdentity {
  CallerIdentity {
    account: "000000000000".into(),
    arn: "arn:aws:iam::000000000000:user/drctl-simulator".into(),
  }
}

pub fn read_refusals(dir: &Path) -> Result<Vec<Refused>, SimError> {
  let path = dir.join(REFUSALS_FILE);
  let text = match fs::read_to_string(&path) {
    Ok(text) => text,
    Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
    Err(source) => return Err(SimError::Io { path, source }),
  };
  // Lines are written whole by one process; a torn last line (a crash) is skipped.
  Ok(
    text
      .lines()
      .filter_map(|line| serde_json::from_str(line).ok())
      .collect(),
  )
}

/// Read the operation log a run's simulator left in `dir` (a torn last line is ignored).
pub fn read_operation_log(dir: &Path) -> Result<Vec<Operation>, SimError> {
  persist::check_world_format(dir)?;
  persist::read_log(dir).map(|contents| contents.ops)
}

impl Sim {
  /// This world as it stands now, as a world file: its RDS instances, ECS services, Route 53
  /// records and health checks in their current state, the rest as the world was created. A
  /// new world opened from it continues where this one is (a failback on the world a failover
  /// left); only the operation log, and transitions still under way, stay behind.
  pub fn world_now(&self) -> Result<WorldSpec, SimError> {
    let mut world = persist::read_world(&self.dir)?.world;
    let now = self.now();
    let core = lock(&self.core);
    let state = &core.state;
    macro_rules! export {
      ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
        $(
          world.$family = state::FamilyState::export(&state.$family, world.$family, &state.model, now);
        )*
      };
    }
    super::with_families!(export);
    // A timed outage counts from the world's creation: the new world gets what is left of it,
    // and none once it has ended.
    let elapsed = state.model.elapsed(state.model.created_at, now);
    world.outages = world
      .outages
      .into_iter()
      .filter_map(|outage| match outage {
        world::OutageSpec::Region(region) => Some(world::OutageSpec::Region(region)),
        world::OutageSpec::Until(timed) => timed
          .until
          .0
          .checked_sub(elapsed)
          .filter(|left| !left.is_zero())
          .map(|left| {
            world::OutageSpec::Until(world::TimedOutage {
              region: timed.region,
              until: world::ModelDuration(left),
            })
          }),
      })
      .collect();
    Ok(world)
  }
}

/// Refuse a run directory whose world a newer drctl wrote ([`SimError::NewerFormat`]), before
/// anything is written for the run (a resume checks it before it takes the lock).
pub fn check_world_format(dir: &Path) -> Result<(), SimError> {
  persist::check_world_format(dir)
}
