//! Route 53 ARC: set routing controls through the recovery cluster's data plane.
//!
//! Every call is tried on the cluster's endpoints in turn, starting at a random one, as AWS
//! recommends for the ARC data plane ("Best practices for Route 53 ARC": try each regional
//! endpoint, the next one when one fails): an endpoint that cannot be reached, times out,
//! throttles or answers 5xx is skipped for the next; any other answer (a routing control that
//! does not exist, access denied) is the cluster's answer and ends the call. The endpoints and
//! the routing-control ARNs come from the runbook, so a run never calls the recovery
//! control-config API, whose control plane is in one region.

use std::future::Future;

use super::{
  ActionDef, ActionError, ActionResult, Args, Behaviour, Ctx, Effect, Observation, Observed,
  Outcome,
};
use crate::{
  cloud::{
    arc::{ops, ClusterEndpoint, ControlState},
    CloudError, CloudResult, ErrorKind,
  },
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
};

const CONTROL_FIELDS: &[FieldSpec] = &[
  FieldSpec::required("arn", FieldKind::String, "Routing control ARN"),
  FieldSpec::required(
    "state",
    FieldKind::Enum(&["On", "Off"]),
    "The state it must reach",
  ),
];

const ENDPOINT_FIELDS: &[FieldSpec] = &[
  FieldSpec::required(
    "region",
    FieldKind::String,
    "The endpoint's region (signed for)",
  ),
  FieldSpec::required("url", FieldKind::String, "The endpoint's URL"),
];

pub const ROUTING_CONTROL: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "arc.routing_control",
    mutating: true,
    doc: "Set Route 53 ARC routing controls to On or Off through the recovery cluster's regional \
          endpoints (data plane only; each call tries the endpoints in turn), then read them back.",
    fields: &[
      FieldSpec::required(
        "routing_controls",
        FieldKind::Objects(CONTROL_FIELDS),
        "The routing controls and the state each must reach",
      ),
      FieldSpec::required(
        "cluster_endpoints",
        FieldKind::Objects(ENDPOINT_FIELDS),
        "The recovery cluster's regional endpoints",
      ),
    ],
    calls: &[
      Call::any_of(
        &ops::GET_ROUTING_CONTROL_STATE,
        "cluster_endpoints",
        "region",
      ),
      Call::any_of(
        &ops::UPDATE_ROUTING_CONTROL_STATE,
        "cluster_endpoints",
        "region",
      ),
    ],
    outputs: &["endpoint", "changed"],
  },
  behaviour: Behaviour::Effect(&RoutingControl),
};

struct RoutingControl;

/// One routing control and the state it must reach.
struct Wanted {
  arn: String,
  state: ControlState,
}

fn wanted(args: &Args) -> ActionResult<Vec<Wanted>> {
  let controls: Vec<Wanted> = args
    .objects("routing_controls")
    .iter()
    .map(|control| {
      let arn = control.str("arn")?.to_owned();
      let text = control.str("state")?;
      let state = ControlState::parse(text).ok_or_else(|| {
        ActionError::failed(format!("`{text}` is not a routing control state (On, Off)"))
      })?;
      Ok(Wanted { arn, state })
    })
    .collect::<ActionResult<_>>()?;
  if controls.is_empty() {
    return Err(ActionError::failed(
      "`with.routing_controls` names no routing control",
    ));
  }
  Ok(controls)
}

fn endpoints(args: &Args) -> ActionResult<Vec<ClusterEndpoint>> {
  let endpoints: Vec<ClusterEndpoint> = args
    .objects("cluster_endpoints")
    .iter()
    .map(|endpoint| {
      Ok(ClusterEndpoint {
        region: endpoint.str("region")?.to_owned(),
        url: endpoint.str("url")?.to_owned(),
      })
    })
    .collect::<ActionResult<_>>()?;
  if endpoints.is_empty() {
    return Err(ActionError::failed(
      "`with.cluster_endpoints` names no endpoint",
    ));
  }
  Ok(endpoints)
}

/// Whether a failed call should be tried on the next endpoint: this one could not be reached,
/// timed out, throttled or failed (5xx). Any other error is the cluster's answer.
fn next_endpoint(error: &CloudError) -> bool {
  matches!(
    error.kind,
    ErrorKind::Transport | ErrorKind::Server | ErrorKind::Throttling
  )
}

/// `endpoints` from a random one on, in order (wrapping round).
fn rotation(endpoints: &[ClusterEndpoint], start: usize) -> impl Iterator<Item = &ClusterEndpoint> {
  let start = start % endpoints.len().max(1);
  endpoints[start..].iter().chain(&endpoints[..start])
}

/// Make one call on the first endpoint that answers; returns its answer and that endpoint.
/// All failing: one error naming each endpoint's failure, one line each.
async fn on_cluster<'e, T, F, Fut>(
  endpoints: &'e [ClusterEndpoint],
  what: &str,
  call: F,
) -> ActionResult<(T, &'e ClusterEndpoint)>
where
  F: Fn(&'e ClusterEndpoint) -> Fut,
  Fut: Future<Output = CloudResult<T>>,
{
  let mut failures = Vec::new();
  for endpoint in rotation(endpoints, fastrand::usize(..endpoints.len().max(1))) {
    match call(endpoint).await {
      Ok(answer) => return Ok((answer, endpoint)),
      Err(error) if next_endpoint(&error) => failures.push(format!("  {endpoint}: {error}")),
      Err(error) => return Err(error.into()),
    }
  }
  Err(ActionError::retryable(format!(
    "no endpoint of the recovery cluster answered {what}:\n{}",
    failures.join("\n")
  )))
}

/// Every control's state now, and the endpoint that answered the last read.
async fn states<'e>(
  ctx: &Ctx<'_>,
  endpoints: &'e [ClusterEndpoint],
  controls: &[Wanted],
) -> ActionResult<(Vec<ControlState>, &'e ClusterEndpoint)> {
  let mut states = Vec::new();
  let mut answered = &endpoints[0];
  for control in controls {
    let (state, endpoint) =
      on_cluster(endpoints, ops::GET_ROUTING_CONTROL_STATE.name, |endpoint| {
        ctx
          .cloud
          .arc
          .get_routing_control_state(endpoint, &control.arn)
      })
      .await?;
    states.push(state);
    answered = endpoint;
  }
  Ok((states, answered))
}

fn describe(controls: &[Wanted], states: &[ControlState]) -> String {
  controls
    .iter()
    .zip(states)
    .map(|(control, state)| format!("{}: {state}", control.arn))
    .collect::<Vec<_>>()
    .join(", ")
}

#[async_trait::async_trait]
impl Effect for RoutingControl {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let (controls, endpoints) = (wanted(args)?, endpoints(args)?);
    let (states, _) = states(ctx, &endpoints, &controls).await?;
    let changes: Vec<String> = controls
      .iter()
      .zip(&states)
      .filter(|(control, state)| control.state != **state)
      .map(|(control, state)| format!("{} {state} -> {}", control.arn, control.state))
      .collect();
    let current = describe(&controls, &states);
    Ok(if changes.is_empty() {
      Observation::new(
        Observed::Done,
        current,
        "none: every routing control is in its state",
      )
    } else {
      Observation::new(Observed::Absent, current, changes.join(", "))
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let (controls, endpoints) = (wanted(args)?, endpoints(args)?);
    let (states, _) = states(ctx, &endpoints, &controls).await?;
    let mut answered = Vec::new();
    for (control, state) in controls.iter().zip(states) {
      if control.state == state {
        continue;
      }
      let ((), endpoint) = on_cluster(
        &endpoints,
        ops::UPDATE_ROUTING_CONTROL_STATE.name,
        |endpoint| {
          ctx
            .cloud
            .arc
            .update_routing_control_state(endpoint, &control.arn, control.state)
        },
      )
      .await?;
      (ctx.progress)(&format!(
        "{} set {} through {endpoint}",
        control.arn, control.state
      ));
      answered.push(control.arn.clone());
    }
    Ok(Some(answered.join(",")))
  }

  async fn verify(&self, ctx: &Ctx<'_>, args: &Args, token: Option<&str>) -> ActionResult<Outcome> {
    let (controls, endpoints) = (wanted(args)?, endpoints(args)?);
    let (states, endpoint) = states(ctx, &endpoints, &controls).await?;
    let wrong: Vec<String> = controls
      .iter()
      .zip(&states)
      .filter(|(control, state)| control.state != **state)
      .map(|(control, state)| format!("{} is {state}, not {}", control.arn, control.state))
      .collect();
    if !wrong.is_empty() {
      return Err(ActionError::retryable(format!(
        "routing controls read back in the wrong state: {}",
        wrong.join(", ")
      )));
    }
    let changed = token.unwrap_or_default();
    Ok(
      Outcome::new(format!(
        "{} (read back through {endpoint})",
        describe(&controls, &states)
      ))
      .output("endpoint", &endpoint.url)
      .output("changed", changed),
    )
  }
}

#[cfg(test)]
mod tests {
  use serde_json::json;

  use super::*;
  use crate::cloud::sim::{Sim, SimOptions, BUILTIN_WORLD};

  const PRIMARY: &str = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef/routingcontrol/primarycell00001";
  const STANDBY: &str = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef/routingcontrol/standbycell00001";
  const USE1: &str = "https://host-aaaaaa.us-east-1.example.aws/v1";
  const USW2: &str = "https://host-bbbbbb.us-west-2.example.aws/v1";

  fn world(dir: &std::path::Path) -> std::sync::Arc<Sim> {
    let file = dir.join("world.yaml");
    std::fs::write(&file, BUILTIN_WORLD).unwrap();
    let sim = Sim::open(&SimOptions {
      world: Some(file),
      time_scale: Some(1.0),
      dir: dir.join("sim"),
    })
    .unwrap();
    sim.follow_tokio_time();
    sim
  }

  fn bound(endpoints: serde_json::Value) -> Args {
    let with = json!({
      "routing_controls": [
        { "arn": PRIMARY, "state": "Off" },
        { "arn": STANDBY, "state": "On" },
      ],
      "cluster_endpoints": endpoints,
    });
    crate::actions::bind(ROUTING_CONTROL.spec, with.as_object().unwrap()).unwrap()
  }

  fn resolves(sim: &Sim, name: &str) -> Option<String> {
    sim.peek(|world, now| world.resolve("Z0DRCTLEXAMPLE", name, now, 0))
  }

  /// Turning the primary's control Off and the standby's On flips the failover record guarded by
  /// their RECOVERY_CONTROL health checks, with no Route 53 call; a second run changes nothing.
  #[tokio::test(start_paused = true)]
  async fn arc_routing_controls_flip_the_failover_record_without_route53() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "flip", &progress, cancel);
    let args = bound(
      json!([{ "region": "us-east-1", "url": USE1 }, { "region": "us-west-2", "url": USW2 }]),
    );
    assert_eq!(
      resolves(&sim, "app.example.com.").as_deref(),
      Some("api-use1.example.com")
    );

    let seen = RoutingControl.observe(&ctx, &args).await.unwrap();
    assert_eq!(seen.state, Observed::Absent, "{seen:?}");
    assert!(
      seen.change.contains(&format!("{PRIMARY} On -> Off")),
      "{}",
      seen.change
    );
    let token = RoutingControl.apply(&ctx, &args).await.unwrap();
    let outcome = RoutingControl
      .verify(&ctx, &args, token.as_deref())
      .await
      .unwrap();
    assert!(
      [USE1, USW2].contains(&outcome.outputs["endpoint"].as_str()),
      "{outcome:?}"
    );
    assert_eq!(outcome.outputs["changed"], format!("{PRIMARY},{STANDBY}"));
    assert_eq!(
      resolves(&sim, "app.example.com.").as_deref(),
      Some("api-usw2.example.com")
    );

    let log = sim.operation_log();
    let updates: Vec<_> = log
      .iter()
      .filter(|op| op.operation == ops::UPDATE_ROUTING_CONTROL_STATE.name)
      .collect();
    assert_eq!(updates.len(), 2, "{log:?}");
    assert!(updates
      .iter()
      .all(|op| op.service == "route53-recovery-cluster"));
    assert!(log.iter().all(|op| op.service != "route53"), "{log:?}");

    let again = RoutingControl.observe(&ctx, &args).await.unwrap();
    assert_eq!(again.state, Observed::Done, "idempotent: {again:?}");
  }

  /// An endpoint that cannot be reached is skipped for the next; when none answers, the error
  /// names each endpoint's failure on a line of its own.
  #[tokio::test(start_paused = true)]
  async fn arc_an_endpoint_that_fails_is_skipped_and_all_failing_names_each() {
    let (_cancel, cancel) = tokio::sync::watch::channel(false);
    let progress = |_: &str| {};
    let dir = tempfile::tempdir().unwrap();
    let sim = world(dir.path());
    let cloud = sim.cloud();
    let ctx = Ctx::new(&cloud, "run-1", "flip", &progress, cancel);
    let dead = "https://host-dead00.us-east-1.example.aws/v1";
    // Whichever endpoint the rotation starts at, the live one answers.
    for _ in 0..4 {
      let args = bound(
        json!([{ "region": "us-east-1", "url": dead }, { "region": "us-west-2", "url": USW2 }]),
      );
      let outcome = RoutingControl.verify(&ctx, &args, None).await;
      let err = outcome.unwrap_err();
      assert!(err.message.contains("wrong state"), "{err}");
    }
    let args = bound(
      json!([{ "region": "us-east-1", "url": dead }, { "region": "us-west-2", "url": USW2 }]),
    );
    let token = RoutingControl.apply(&ctx, &args).await.unwrap();
    let outcome = RoutingControl
      .verify(&ctx, &args, token.as_deref())
      .await
      .unwrap();
    assert_eq!(outcome.outputs["endpoint"], USW2);

    let other = "https://host-dead01.eu-west-1.example.aws/v1";
    let args = bound(
      json!([{ "region": "us-east-1", "url": dead }, { "region": "eu-west-1", "url": other }]),
    );
    let err = RoutingControl.observe(&ctx, &args).await.unwrap_err();
    assert!(err.retryable);
    let lines: Vec<&str> = err.message.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
      lines[0].contains(&format!(
        "no endpoint of the recovery cluster answered {}",
        ops::GET_ROUTING_CONTROL_STATE.name
      )),
      "{err}"
    );
    for url in [dead, other] {
      assert!(lines.iter().any(|line| line.contains(url)), "{url}: {err}");
    }
  }

  #[test]
  fn arc_rotation_visits_every_endpoint_once_from_any_start() {
    let endpoints: Vec<ClusterEndpoint> = ["a", "b", "c"]
      .iter()
      .map(|region| ClusterEndpoint {
        region: (*region).into(),
        url: format!("https://{region}/v1"),
      })
      .collect();
    for start in 0..5 {
      let order: Vec<&str> = rotation(&endpoints, start)
        .map(|e| e.region.as_str())
        .collect();
      assert_eq!(order.len(), 3);
      assert_eq!(order[0], endpoints[start % 3].region);
    }
  }
}
