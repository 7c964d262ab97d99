//! ECS: scale a service and wait until it is steady.

use super::{
  poll_until, ActionDef, ActionError, ActionResult, Args, Behaviour, Check, Ctx, Effect,
  Observation, Observed, Outcome, Poll,
};
use crate::cloud::ops;
use crate::{
  cloud::EcsService,
  runbook::{ActionSpec, Call, FieldKind, FieldSpec},
};

const REGION: FieldSpec =
  FieldSpec::required("region", FieldKind::String, "AWS region of the cluster");
const CLUSTER: FieldSpec = FieldSpec::required("cluster", FieldKind::String, "ECS cluster name");
const SERVICE: FieldSpec = FieldSpec::required("service", FieldKind::String, "ECS service name");

async fn describe(ctx: &Ctx<'_>, args: &Args) -> ActionResult<EcsService> {
  let (region, cluster, service) = (
    args.str("region")?,
    args.str("cluster")?,
    args.str("service")?,
  );
  ctx
    .cloud
    .ecs
    .describe_service(region, cluster, service)
    .await?
    .ok_or_else(|| {
      ActionError::failed(format!(
        "ECS service `{cluster}/{service}` does not exist in {region}"
      ))
    })
}

fn state(service: &EcsService) -> String {
  format!(
    "{}/{}: desired {}, running {}, pending {}, {} deployment(s)",
    service.cluster,
    service.name,
    service.desired_count,
    service.running_count,
    service.pending_count,
    service.deployments.len()
  )
}

/// Wait until the service is steady at `desired`.
async fn wait_steady(ctx: &Ctx<'_>, args: &Args, desired: u32) -> ActionResult<EcsService> {
  poll_until(ctx, || async {
    let service = describe(ctx, args).await?;
    Ok(if service.is_steady_at(desired) {
      Poll::Ready(service)
    } else {
      let rollout = service
        .deployments
        .iter()
        .find(|deployment| deployment.status == "PRIMARY")
        .and_then(|deployment| deployment.rollout_state.clone())
        .unwrap_or_else(|| "-".into());
      Poll::Pending(format!(
        "tasks running {}/{desired}, rollout {rollout}",
        service.running_count
      ))
    })
  })
  .await
}

// --- ecs.scale_service ------------------------------------------------------------------------

pub const SCALE_SERVICE: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "ecs.scale_service",
    mutating: true,
    doc: "Set a service's desired count and wait until that many tasks run in one completed deployment.",
    fields: &[
      REGION,
      CLUSTER,
      SERVICE,
      FieldSpec::required("desired_count", FieldKind::Int, "Number of tasks to run"),
    ],
    calls: &[
      Call::to(&ops::ecs::DESCRIBE_SERVICES, "region"),
      Call::to(&ops::ecs::UPDATE_SERVICE, "region"),
    ],
    outputs: &["running_count"],
  },
  behaviour: Behaviour::Effect(&ScaleService),
};

struct ScaleService;

fn desired(args: &Args) -> ActionResult<u32> {
  let value = args.int("desired_count")?;
  u32::try_from(value).map_err(|_| {
    ActionError::failed(format!(
      "`with.desired_count` must be 0 or more, got {value}"
    ))
  })
}

#[async_trait::async_trait]
impl Effect for ScaleService {
  async fn observe(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Observation> {
    let want = desired(args)?;
    let service = describe(ctx, args).await?;
    let current = state(&service);
    let change = format!("desired count {} -> {want}", service.desired_count);
    Ok(if service.desired_count != want {
      Observation::new(Observed::Absent, current, change)
    } else if service.is_steady_at(want) {
      Observation::new(
        Observed::Done,
        current,
        "none: already steady at the desired count",
      )
    } else {
      Observation::new(
        Observed::InProgress,
        current,
        format!("wait for {want} tasks"),
      )
    })
  }

  async fn apply(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Option<String>> {
    let want = desired(args)?;
    ctx
      .cloud
      .ecs
      .update_desired_count(
        args.str("region")?,
        args.str("cluster")?,
        args.str("service")?,
        want,
      )
      .await?;
    Ok(None)
  }

  async fn verify(
    &self,
    ctx: &Ctx<'_>,
    args: &Args,
    _token: Option<&str>,
  ) -> ActionResult<Outcome> {
    let want = desired(args)?;
    let service = wait_steady(ctx, args, want).await?;
    Ok(
      Outcome::new(format!(
        "{}/{} runs {want} task(s)",
        service.cluster, service.name
      ))
      .output("running_count", service.running_count),
    )
  }
}

// --- ecs.wait_stable --------------------------------------------------------------------------

pub const WAIT_STABLE: ActionDef = ActionDef {
  spec: &ActionSpec {
    name: "ecs.wait_stable",
    mutating: false,
    doc: "Wait until a service runs its desired count in one completed deployment.",
    fields: &[REGION, CLUSTER, SERVICE],
    calls: &[Call::to(&ops::ecs::DESCRIBE_SERVICES, "region")],
    outputs: &["running_count"],
  },
  behaviour: Behaviour::Check(&WaitStable),
};

struct WaitStable;

#[async_trait::async_trait]
impl Check for WaitStable {
  async fn check(&self, ctx: &Ctx<'_>, args: &Args) -> ActionResult<Outcome> {
    let service = describe(ctx, args).await?;
    let service = wait_steady(ctx, args, service.desired_count).await?;
    Ok(
      Outcome::new(format!("steady: {}", state(&service)))
        .output("running_count", service.running_count),
    )
  }
}
