//! The world's mutable state and the one function that changes it: [`WorldState::apply`].
//!
//! State transitions are lazy: a mutation records *when* it happened (wall clock), and every read
//! computes the current status from `(now − then) × time_scale` against the modelled duration.
//! So a world keeps progressing while no process runs it, and replaying the operation log at the
//! recorded times rebuilds exactly the state the previous process had.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
  http::HttpState,
  world::{Timings, WorldSpec},
  Operation,
};
use crate::cloud::ErrorKind;

/// Time in the world: when it was created and how fast it runs.
#[derive(Debug, Clone)]
pub(crate) struct Model {
  pub created_at: DateTime<Utc>,
  pub time_scale: f64,
  pub timings: Timings,
  /// The world's account id (in the ARNs the world hands out).
  pub account: String,
}

impl Model {
  /// Modelled time elapsed between two wall-clock instants (zero if `since` is in the future).
  pub fn elapsed(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    let wall = (now - since).to_std().unwrap_or(Duration::ZERO);
    Duration::try_from_secs_f64(wall.as_secs_f64() * self.time_scale).unwrap_or(Duration::MAX)
  }

  /// Whether a modelled duration started at `since` has passed by `now`.
  pub fn done(&self, since: DateTime<Utc>, now: DateTime<Utc>, modelled: Duration) -> bool {
    self.elapsed(since, now) >= modelled
  }

  /// The wall-clock instant a modelled age before the world's creation.
  pub fn before_creation(&self, age: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
      .ok()
      .and_then(|age| self.created_at.checked_sub_signed(age))
      .unwrap_or(DateTime::<Utc>::MIN_UTC)
  }
}

/// Why the world refused a call; turned into a [`crate::cloud::CloudError`] with a request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
  pub kind: ErrorKind,
  pub code: String,
  pub status: u16,
  pub message: String,
}

impl Reject {
  pub fn new(kind: ErrorKind, code: &str, status: u16, message: impl Into<String>) -> Self {
    Self {
      kind,
      code: code.into(),
      status,
      message: message.into(),
    }
  }

  pub fn not_found(code: &str, message: impl Into<String>) -> Self {
    Self::new(ErrorKind::NotFound, code, 404, message)
  }

  pub fn invalid_state(code: &str, message: impl Into<String>) -> Self {
    Self::new(ErrorKind::InvalidState, code, 400, message)
  }

  pub fn client(code: &str, message: impl Into<String>) -> Self {
    Self::new(ErrorKind::Client, code, 400, message)
  }
}

pub(crate) type Applied = Result<(), Reject>;

/// A family's part of the simulated world (`cloud/<family>/sim.rs`): built from the world
/// spec, and changed only by the accepted operations of its family, which [`WorldState::apply`]
/// hands it by service name (the family's module name).
pub(crate) trait FamilyState: Sized {
  /// The family's part of the world spec.
  type Spec;

  fn new(spec: &WorldSpec, model: &Model) -> Self;

  /// Apply one accepted operation of this family at its recorded time. On `Err` the state is
  /// unchanged. A read-only family applies nothing.
  fn apply(&mut self, op: &Operation, _model: &Model) -> Applied {
    Err(cannot_apply(op))
  }

  /// The family's part of a world file that declares the state as it stands `now`, from the
  /// part the world was created with (`Sim::world_now`). A family whose state operations do
  /// not change keeps `created`.
  fn export(&self, created: Self::Spec, _model: &Model, _now: DateTime<Utc>) -> Self::Spec {
    created
  }
}

fn cannot_apply(op: &Operation) -> Reject {
  Reject::client(
    "InvalidAction",
    format!("the simulator cannot apply {} {}", op.service, op.operation),
  )
}

/// [`WorldState`]: one field per family of [`with_families!`](crate::cloud::with_families).
macro_rules! world_state {
  ($($family:ident: $Trait:ident, $Limited:ident;)*) => {
    /// Everything in the world that can change or be read.
    #[derive(Debug, Clone)]
    pub(crate) struct WorldState {
      pub model: Model,
      $(pub $family: crate::cloud::$family::sim::State,)*
      pub http: HttpState,
    }

    impl WorldState {
      pub fn new(spec: &WorldSpec, created_at: DateTime<Utc>, time_scale: f64) -> WorldState {
        let model = Model {
          created_at,
          time_scale,
          timings: spec.timings.clone(),
          account: spec.account.clone(),
        };
        WorldState {
          $($family: FamilyState::new(spec, &model),)*
          http: HttpState::new(spec),
          model,
        }
      }

      /// Apply one accepted operation at its recorded time. The only way the world changes; the
      /// same operation log applied to the same initial world always gives the same state.
      /// On `Err` the state is unchanged.
      pub fn apply(&mut self, op: &Operation) -> Applied {
        let model = self.model.clone();
        $(
          // By the family's name, or by the service of one of its operations (`arc`'s
          // operations are `route53-recovery-cluster`'s).
          if op.service == stringify!($family)
            || crate::cloud::$family::ops::ALL
              .iter()
              .any(|known| known.service == op.service && known.name == op.operation)
          {
            return FamilyState::apply(&mut self.$family, op, &model);
          }
        )*
        match (op.service.as_str(), op.operation.as_str()) {
          // A notification changes nothing in the world; its log line is the effect.
          ("http", "POST") => Ok(()),
          _ => Err(cannot_apply(op)),
        }
      }
    }
  };
}

crate::cloud::with_families!(world_state);

impl WorldState {
  /// Whether `region` is in outage at `now`: the world's rule, which [`super::Sim::region_in_outage`]
  /// (for callers outside the world's lock) and the HTTP endpoints go by. A plain outage lasts
  /// forever; a timed one ends `until` (modelled) after the world was created.
  pub(crate) fn in_outage(&self, region: &str, now: DateTime<Utc>) -> bool {
    let elapsed = self.model.elapsed(self.model.created_at, now);
    self
      .http
      .outages
      .iter()
      .any(|outage| outage.region() == region && outage.until().is_none_or(|until| elapsed < until))
  }
}

/// Read a field of an operation's `detail`.
pub(crate) fn detail_str<'a>(op: &'a Operation, field: &str) -> Result<&'a str, Reject> {
  op.detail
    .get(field)
    .and_then(serde_json::Value::as_str)
    .ok_or_else(|| missing(op, field))
}

pub(crate) fn missing(op: &Operation, field: &str) -> Reject {
  Reject::client(
    "MissingParameter",
    format!("{} is missing the parameter `{field}`", op.operation),
  )
}
