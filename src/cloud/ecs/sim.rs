//! Simulated ECS services: `UpdateService` starts a new PRIMARY deployment whose tasks start
//! one after another (task `i` ready at `task_start × (1 + 0.1·i)`); a scale-down drains for a
//! while, then the old tasks are gone.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::cloud::ops;
use crate::cloud::sim::{
  state::{detail_str, missing, Applied, Model, Reject},
  world::EcsSpec,
  Operation, SimCloud,
};
use crate::cloud::{CloudResult, Ecs, EcsDeployment, EcsService};

/// AWS's limit of tasks per service.
const MAX_DESIRED: u64 = 5000;

#[derive(Debug, Clone)]
struct Rollout {
  from: u32,
  to: u32,
  since: DateTime<Utc>,
  primary: String,
  /// The deployment being replaced (`ACTIVE` until the rollout completes).
  old: Option<String>,
}

#[derive(Debug, Clone)]
struct Service {
  region: String,
  cluster: String,
  name: String,
  rollout: Rollout,
  deployments: u64,
}

/// How many of `n` new tasks are running `elapsed` after their deployment started.
fn ready_tasks(n: u32, elapsed: Duration, task_start: Duration) -> u32 {
  if n == 0 || task_start.is_zero() {
    return n;
  }
  let ratio = elapsed.as_secs_f64() / task_start.as_secs_f64();
  if ratio < 1.0 {
    return 0;
  }
  // Task i is ready once ratio >= 1 + 0.1·i; the epsilon absorbs float rounding at the edges.
  let last = ((ratio - 1.0) * 10.0 + 1e-9).floor();
  if last >= f64::from(n) {
    n
  } else {
    // In range: 0 <= last < n.
    last as u32 + 1
  }
}

impl Service {
  /// (running tasks, ready tasks of the new deployment, rollout done)
  fn progress(&self, model: &Model, now: DateTime<Utc>) -> (u32, u32, bool) {
    let rollout = &self.rollout;
    let elapsed = model.elapsed(rollout.since, now);
    if rollout.to >= rollout.from {
      let n = rollout.to - rollout.from;
      let ready = ready_tasks(n, elapsed, model.timings.ecs_task_start.0);
      (rollout.from + ready, ready, ready == n)
    } else if elapsed >= model.timings.ecs_drain.0 {
      (rollout.to, 0, true)
    } else {
      (rollout.from, 0, false)
    }
  }

  fn view(&self, model: &Model, now: DateTime<Utc>) -> EcsService {
    let rollout = &self.rollout;
    let (running, ready, done) = self.progress(model, now);
    let deployment =
      |id: &str, status: &str, desired, running, pending, state: &str| EcsDeployment {
        id: id.into(),
        status: status.into(),
        desired_count: desired,
        running_count: running,
        pending_count: pending,
        rollout_state: Some(state.into()),
      };
    let (pending, deployments) = if done {
      let primary = deployment(
        &rollout.primary,
        "PRIMARY",
        rollout.to,
        rollout.to,
        0,
        "COMPLETED",
      );
      (0, vec![primary])
    } else if rollout.to > rollout.from {
      let pending = rollout.to - rollout.from - ready;
      let mut deployments = Vec::new();
      match &rollout.old {
        Some(old) => {
          deployments.push(deployment(
            &rollout.primary,
            "PRIMARY",
            rollout.to,
            ready,
            pending,
            "IN_PROGRESS",
          ));
          deployments.push(deployment(
            old,
            "ACTIVE",
            rollout.from,
            rollout.from,
            0,
            "COMPLETED",
          ));
        }
        None => deployments.push(deployment(
          &rollout.primary,
          "PRIMARY",
          rollout.to,
          running,
          pending,
          "IN_PROGRESS",
        )),
      }
      (pending, deployments)
    } else {
      let draining = rollout.from - rollout.to;
      let mut deployments = vec![deployment(
        &rollout.primary,
        "PRIMARY",
        rollout.to,
        rollout.to,
        0,
        "IN_PROGRESS",
      )];
      if let Some(old) = &rollout.old {
        deployments.push(deployment(old, "ACTIVE", 0, draining, 0, "COMPLETED"));
      }
      (0, deployments)
    };
    EcsService {
      region: self.region.clone(),
      cluster: self.cluster.clone(),
      name: self.name.clone(),
      status: "ACTIVE".into(),
      desired_count: rollout.to,
      running_count: running,
      pending_count: pending,
      deployments,
    }
  }
}

fn deployment_id(n: u64) -> String {
  format!("ecs-svc/{n:019}")
}

type ServiceKey = (String, String, String);

#[derive(Debug, Clone)]
pub(crate) struct EcsState {
  services: BTreeMap<ServiceKey, Service>,
}

impl EcsState {
  pub fn new(spec: &EcsSpec, model: &Model) -> EcsState {
    let services = spec
      .services
      .iter()
      .map(|service| {
        let key = (
          service.region.clone(),
          service.cluster.clone(),
          service.name.clone(),
        );
        let value = Service {
          region: service.region.clone(),
          cluster: service.cluster.clone(),
          name: service.name.clone(),
          rollout: Rollout {
            from: service.running.unwrap_or(service.desired),
            to: service.desired,
            since: model.created_at,
            primary: deployment_id(1),
            old: None,
          },
          deployments: 1,
        };
        (key, value)
      })
      .collect();
    EcsState { services }
  }

  pub fn describe(
    &self,
    model: &Model,
    now: DateTime<Utc>,
    region: &str,
    cluster: &str,
    name: &str,
  ) -> Option<EcsService> {
    self
      .services
      .get(&(region.to_string(), cluster.to_string(), name.to_string()))
      .map(|service| service.view(model, now))
  }

  /// Running tasks of a service (0 for a service the world does not have).
  pub fn running(
    &self,
    model: &Model,
    now: DateTime<Utc>,
    region: &str,
    cluster: &str,
    name: &str,
  ) -> u32 {
    self
      .services
      .get(&(region.to_string(), cluster.to_string(), name.to_string()))
      .map_or(0, |service| service.progress(model, now).0)
  }

  /// Whether the application in `region` has stopped writing: the region has services and
  /// none of them runs a task (the writes a replica of that region's database receives come
  /// from them).
  pub fn stopped_in(&self, model: &Model, now: DateTime<Utc>, region: &str) -> bool {
    let mut services = self
      .services
      .values()
      .filter(|service| service.region == region)
      .peekable();
    services.peek().is_some() && services.all(|service| service.progress(model, now).0 == 0)
  }

  pub fn apply(&mut self, op: &Operation, model: &Model) -> Applied {
    if op.operation != ops::ecs::UPDATE_SERVICE.name {
      return Err(Reject::client(
        "InvalidAction",
        format!("ecs has no operation {}", op.operation),
      ));
    }
    let now = op.at;
    let region = op.region.as_deref().ok_or_else(|| missing(op, "region"))?;
    let cluster = detail_str(op, "cluster")?;
    let name = detail_str(op, "service")?;
    let desired = op
      .detail
      .get("desired_count")
      .and_then(serde_json::Value::as_u64)
      .ok_or_else(|| missing(op, "desired_count"))?;
    if desired > MAX_DESIRED {
      return Err(Reject::client(
        "InvalidParameterException",
        format!("desiredCount {desired} is above the limit of {MAX_DESIRED} tasks."),
      ));
    }
    // Bounded by MAX_DESIRED just above.
    let desired = desired as u32;
    let key = (region.to_string(), cluster.to_string(), name.to_string());
    let Some(service) = self.services.get_mut(&key) else {
      let cluster_exists = self
        .services
        .keys()
        .any(|(r, c, _)| r == region && c == cluster);
      return Err(if cluster_exists {
        Reject::new(
          crate::cloud::ErrorKind::NotFound,
          "ServiceNotFoundException",
          400,
          "Service not found.",
        )
      } else {
        Reject::new(
          crate::cloud::ErrorKind::NotFound,
          "ClusterNotFoundException",
          400,
          "Cluster not found.",
        )
      });
    };
    if desired == service.rollout.to {
      // Same desired count: nothing changes (UpdateService is idempotent).
      return Ok(());
    }
    let (running, _, _) = service.progress(model, now);
    service.deployments += 1;
    service.rollout = Rollout {
      from: running,
      to: desired,
      since: now,
      primary: deployment_id(service.deployments),
      old: Some(service.rollout.primary.clone()),
    };
    Ok(())
  }
}

#[async_trait::async_trait]
impl Ecs for SimCloud {
  async fn describe_service(
    &self,
    region: &str,
    cluster: &str,
    service: &str,
  ) -> CloudResult<Option<EcsService>> {
    self
      .sim
      .read(&ops::ecs::DESCRIBE_SERVICES, Some(region), |state, now| {
        Ok(
          state
            .ecs
            .describe(&state.model, now, region, cluster, service),
        )
      })
      .await
  }

  async fn update_desired_count(
    &self,
    region: &str,
    cluster: &str,
    service: &str,
    desired_count: u32,
  ) -> CloudResult<()> {
    self
      .sim
      .mutate(
        &ops::ecs::UPDATE_SERVICE,
        Some(region),
        &format!("{cluster}/{service}"),
        json!({ "cluster": cluster, "service": service, "desired_count": desired_count }),
      )
      .await
      .map(drop)
  }
}

impl EcsState {
  /// The services as a world file declares them, as they stand at `now`.
  pub fn export_services(
    &self,
    model: &Model,
    now: DateTime<Utc>,
  ) -> Vec<crate::cloud::sim::world::ServiceSpec> {
    self
      .services
      .values()
      .map(|service| crate::cloud::sim::world::ServiceSpec {
        region: service.region.clone(),
        cluster: service.cluster.clone(),
        name: service.name.clone(),
        desired: service.rollout.to,
        running: Some(service.progress(model, now).0),
      })
      .collect()
  }
}

/// The family's part of the world spec.
pub(crate) type Spec = crate::cloud::sim::world::EcsSpec;

/// The family's part of the simulated world.
pub(crate) type State = EcsState;

impl crate::cloud::sim::state::FamilyState for EcsState {
  type Spec = Spec;

  fn new(spec: &crate::cloud::sim::world::WorldSpec, model: &Model) -> Self {
    EcsState::new(&spec.ecs, model)
  }

  fn apply(&mut self, op: &Operation, model: &Model) -> Applied {
    EcsState::apply(self, op, model)
  }

  fn export(&self, _created: Self::Spec, model: &Model, now: DateTime<Utc>) -> Self::Spec {
    crate::cloud::sim::world::EcsSpec {
      services: self.export_services(model, now),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn tasks_start_staggered() {
    let start = Duration::from_secs(100);
    assert_eq!(ready_tasks(3, Duration::from_secs(99), start), 0);
    assert_eq!(ready_tasks(3, Duration::from_secs(100), start), 1);
    assert_eq!(ready_tasks(3, Duration::from_secs(110), start), 2);
    assert_eq!(ready_tasks(3, Duration::from_secs(119), start), 2);
    assert_eq!(ready_tasks(3, Duration::from_secs(120), start), 3);
    assert_eq!(ready_tasks(3, Duration::from_secs(10_000), start), 3);
    assert_eq!(ready_tasks(3, Duration::ZERO, Duration::ZERO), 3);
  }
}
