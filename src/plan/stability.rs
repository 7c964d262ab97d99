//! Static stability: which endpoints a live run of a plan will call, and which of them live in
//! the region it fails away from.
//!
//! During a regional event the control planes a failover depends on may be served from the
//! region that failed: Route 53's API (`ChangeResourceRecordSets`, `GetHealthCheckStatus`) is
//! served only from us-east-1, and so is IAM's control plane; IAM Identity Center runs in one
//! home region; an `s3://` state bucket lives in one region. AWS's guidance for DR is to fail
//! over with data-plane operations only (static stability).
//!
//! Each action declares the operations it may send and where each goes ([`Call`]); the
//! operation table says whether it is control or data plane and regional or global
//! ([`Op`]). This module binds those to a plan's parameters, step by step, adds what the run
//! itself calls (the credentials preflight, the state bucket, the SSO sign-in), and flags each
//! dependency on the region being left with the documented alternative. Nothing here calls
//! anything: it reads the runbook, the operation table and the configuration.

use serde::Serialize;

use super::Plan;
use crate::{
  actions,
  cloud::ops::{self, Access, Endpoint, Op, Plane},
  runbook::{Arg, CallRegion, Step},
};

/// What the run depends on beyond its steps, read from the configuration (never from AWS).
#[derive(Debug, Clone, Default)]
pub struct Environment {
  /// The region being failed away from: `plan --leaving REGION`, else the runbook's
  /// `source_region` parameter. `None`: nothing is flagged, the endpoints are still listed.
  pub leaving: Option<Leaving>,
  /// The provider's default region (`--region`, `AWS_REGION`, the profile's `region`): where
  /// calls on resources without a home region go (Aurora global clusters).
  pub default_region: String,
  /// The region the credentials preflight asks STS in (the run's target region).
  pub sts_region: Option<String>,
  /// The active profile's IAM Identity Center region (`sso_region`), when it signs in with SSO.
  pub sso: Option<Sso>,
  /// The `s3://` state: its location and the region it is reached in.
  pub state: Option<StateBucket>,
  /// Whether a live run talks to AWS (`--aws`); on the simulator and the sandbox the listing
  /// describes what the same run would call on AWS.
  pub aws: bool,
}

/// The region being left, and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leaving {
  pub region: String,
  /// `--leaving` or `params.source_region`.
  pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sso {
  pub profile: String,
  pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateBucket {
  pub location: String,
  pub region: String,
}

/// One operation a live run may send, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointUse {
  pub service: &'static str,
  pub operation: &'static str,
  /// `read` or `mutate`.
  pub access: &'static str,
  /// `control` or `data`.
  pub plane: &'static str,
  /// `regional`, or `global` (one endpoint for the partition, served from `regions[0]`).
  pub endpoint: &'static str,
  /// The region the call goes to; with `any_of`, the regions it is tried in, in turn. Empty
  /// when the region comes from a template that cannot be rendered before the run.
  pub regions: Vec<String>,
  /// The call goes to any one of `regions` (tried in turn): it depends on none of them alone.
  pub any_of: bool,
}

/// The endpoints of one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepEndpoints {
  pub step: String,
  pub action: String,
  pub endpoints: Vec<EndpointUse>,
  /// Hosts of the URLs the step sends HTTP requests to (probes, notifications).
  pub http_hosts: Vec<HttpHost>,
}

/// The host of a URL a step sends requests to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpHost {
  /// The host alone: never the path or query, which may hold a token.
  pub host: String,
  /// The AWS region it is served from, for an AWS-hosted URL (`sns.R.amazonaws.com`).
  pub region: Option<String>,
}

impl HttpHost {
  fn new(host: String) -> HttpHost {
    HttpHost {
      region: aws_host_region(&host),
      host,
    }
  }
}

/// How a dependency on the region being left plays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
  /// With the region down, this fails and the run cannot go on past it.
  Blocks,
  /// A `fence: true` step acting on the region left: expected to fail while it is down, and
  /// recorded as a pending fence that a later run applies.
  Fence,
  /// Works with the region down, with less to fall back on, or needs something prepared
  /// beforehand (IAM).
  Caution,
}

/// One dependency on the region being left.
#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
  /// The step, or `None` for the run itself (credentials, state, IAM).
  pub step: Option<String>,
  pub severity: Severity,
  /// What depends on the region: `route53 control plane (ChangeResourceRecordSets, GetChange)`.
  pub what: String,
  /// Why it is in the region: `Route 53's API is served only from us-east-1`.
  pub why: String,
  /// The documented alternative.
  pub alternative: String,
}

/// The static-stability section of a plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StaticStability {
  pub leaving: Option<Leaving>,
  /// What the run calls before and around its steps (credentials preflight, state bucket).
  pub run: Vec<EndpointUse>,
  pub steps: Vec<StepEndpoints>,
  pub dependencies: Vec<Dependency>,
}

impl StaticStability {
  /// Dependencies that stop a run with the region down.
  pub fn blocking(&self) -> usize {
    self
      .dependencies
      .iter()
      .filter(|dependency| dependency.severity == Severity::Blocks)
      .count()
  }
}

/// The region being left: `given` (`plan --leaving`), else the plan's `source_region`.
pub fn leaving(plan: &Plan, given: Option<&str>) -> Option<Leaving> {
  if let Some(region) = given {
    return Some(Leaving {
      region: region.to_owned(),
      from: "--leaving".into(),
    });
  }
  let region = plan.params.get("source_region")?.to_string();
  (!region.is_empty()).then(|| Leaving {
    region,
    from: "params.source_region".into(),
  })
}

/// The static-stability analysis of `plan` in `env`.
pub fn analyze(plan: &Plan, env: &Environment) -> StaticStability {
  let outputs = Default::default();
  let run = super::RunValues::default();
  let scope = plan.scope(&run, &outputs);
  let mut steps = Vec::new();
  for &i in &plan.order {
    let step = plan.step(i);
    let Some(def) = actions::lookup(&step.call.action) else {
      continue;
    };
    let render = |arg: &Arg| match arg {
      Arg::Template(template, _) => template.render(&scope).ok(),
      _ => None,
    };
    let field = |name: &str| step.call.with.get(name).and_then(render);
    let mut endpoints: Vec<EndpointUse> = Vec::new();
    for call in def.spec.calls {
      let (regions, any_of) = match (call.op.endpoint, call.region) {
        (Endpoint::Global { home }, _) => (vec![home.to_owned()], false),
        // A declaration error (a regional operation declared global), caught by a test.
        (Endpoint::Regional, CallRegion::Global) => (Vec::new(), false),
        (Endpoint::Regional, CallRegion::Field { arn, field: name }) => {
          let from_arn = arn
            .and_then(&field)
            .and_then(|value| crate::cloud::arn_region(&value).map(str::to_owned));
          let region = from_arn
            .or_else(|| name.and_then(&field))
            .or_else(|| name.is_none().then(|| env.default_region.clone()));
          (region.into_iter().collect(), false)
        }
        (Endpoint::Regional, CallRegion::AnyOf { list, key }) => {
          let regions = match step.call.with.get(list) {
            Some(Arg::List(items, _)) => items
              .iter()
              .filter_map(|item| match item {
                Arg::Map(map, _) => map.get(key).and_then(render),
                _ => None,
              })
              .collect(),
            _ => Vec::new(),
          };
          (regions, true)
        }
      };
      endpoints.push(EndpointUse {
        service: call.op.service,
        operation: call.op.name,
        access: match call.op.access {
          Access::Read => "read",
          Access::Mutate => "mutate",
        },
        plane: plane(call.op),
        endpoint: match call.op.endpoint {
          Endpoint::Regional => "regional",
          Endpoint::Global { .. } => "global",
        },
        regions,
        any_of,
      });
    }
    // Only the host is kept, as the plan's change lines show it (`url::shown`): the path
    // and query of a webhook carry its token.
    let http_hosts = ["url", "webhook"]
      .iter()
      .filter_map(|name| field(name))
      .filter_map(|url| host(&url))
      .map(HttpHost::new)
      .collect();
    steps.push(StepEndpoints {
      step: step.id.clone(),
      action: step.call.action.clone(),
      endpoints,
      http_hosts,
    });
  }
  let mut run_calls = Vec::new();
  if let Some(region) = env.sts_region.clone().filter(|_| env.aws) {
    run_calls.push(EndpointUse {
      service: ops::sts::GET_CALLER_IDENTITY.service,
      operation: ops::sts::GET_CALLER_IDENTITY.name,
      access: "read",
      plane: plane(&ops::sts::GET_CALLER_IDENTITY),
      endpoint: "regional",
      regions: vec![region],
      any_of: false,
    });
  }
  if let Some(state) = &env.state {
    for op in [
      &ops::s3::GET_OBJECT,
      &ops::s3::PUT_OBJECT,
      &ops::s3::LIST_OBJECTS_V2,
    ] {
      run_calls.push(EndpointUse {
        service: op.service,
        operation: op.name,
        access: if op.is_mutating() { "mutate" } else { "read" },
        plane: plane(op),
        endpoint: "regional",
        regions: vec![state.region.clone()],
        any_of: false,
      });
    }
  }
  let dependencies = match &env.leaving {
    Some(leaving) => dependencies(plan, env, &leaving.region, &steps),
    None => Vec::new(),
  };
  StaticStability {
    leaving: env.leaving.clone(),
    run: run_calls,
    steps,
    dependencies,
  }
}

fn plane(op: &Op) -> &'static str {
  match op.plane {
    Plane::Control => "control",
    Plane::Data => "data",
  }
}

/// The host of a URL, lowercased, without port or credentials.
fn host(url: &str) -> Option<String> {
  url::Url::parse(url)
    .ok()?
    .host_str()
    .map(str::to_ascii_lowercase)
}

/// The AWS region an AWS-hosted URL is served from: `sns.R.amazonaws.com`,
/// `ID.execute-api.R.amazonaws.com`, `ID.lambda-url.R.on.aws`, `events.R.amazonaws.com`.
fn aws_host_region(host: &str) -> Option<String> {
  let labels: Vec<&str> = host.split('.').collect();
  let region = if host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn") {
    let at = labels.iter().position(|label| *label == "amazonaws")?;
    labels.get(at.checked_sub(1)?)?
  } else if host.ends_with(".on.aws") {
    let at = labels.iter().position(|label| *label == "on")?;
    labels.get(at.checked_sub(1)?)?
  } else {
    return None;
  };
  crate::cloud::sim::world::is_region_name(region).then(|| (*region).to_owned())
}

fn dependencies(
  plan: &Plan,
  env: &Environment,
  leaving: &str,
  steps: &[StepEndpoints],
) -> Vec<Dependency> {
  let mut found = Vec::new();
  let step_of = |id: &str| plan.runbook.steps.iter().find(|step| step.id == id);
  for entry in steps {
    let Some(step) = step_of(&entry.step) else {
      continue;
    };
    // One dependency per (service, plane, endpoint kind) of the step.
    let mut groups: Vec<(&EndpointUse, Vec<&'static str>)> = Vec::new();
    for endpoint in &entry.endpoints {
      let in_leaving = if endpoint.any_of {
        !endpoint.regions.is_empty() && endpoint.regions.iter().all(|region| region == leaving)
      } else {
        endpoint.regions.iter().any(|region| region == leaving)
      };
      if !in_leaving {
        continue;
      }
      match groups.iter_mut().find(|(first, _)| {
        first.service == endpoint.service
          && first.plane == endpoint.plane
          && first.endpoint == endpoint.endpoint
      }) {
        Some((_, operations)) => operations.push(endpoint.operation),
        None => groups.push((endpoint, vec![endpoint.operation])),
      }
    }
    for (endpoint, operations) in groups {
      found.push(step_dependency(step, endpoint, &operations, leaving));
    }
    // Endpoints tried in turn, some of them in the region left: the call still goes through
    // the others, one failed attempt later.
    if let Some(endpoint) = entry.endpoints.iter().find(|endpoint| {
      endpoint.any_of
        && endpoint.regions.iter().any(|region| region == leaving)
        && endpoint.regions.iter().any(|region| region != leaving)
    }) {
      let down = endpoint.regions.iter().filter(|r| *r == leaving).count();
      found.push(Dependency {
        step: Some(step.id.clone()),
        severity: Severity::Caution,
        what: format!(
          "{} {} plane: {down} of {} endpoints",
          endpoint.service,
          endpoint.plane,
          endpoint.regions.len()
        ),
        why: format!(
          "{down} of the endpoints it tries in turn {} in {leaving}; a call that reaches one \
           of them moves on to the next",
          if down == 1 { "is" } else { "are" }
        ),
        alternative: "none needed: the other regions' endpoints answer".into(),
      });
    }
    for HttpHost { host, region } in &entry.http_hosts {
      if region.as_deref() == Some(leaving) {
        found.push(Dependency {
          step: Some(step.id.clone()),
          severity: if step.call.action.starts_with("notify.") {
            Severity::Caution
          } else {
            Severity::Blocks
          },
          what: format!("HTTP endpoint {host}"),
          why: format!("the URL is served by AWS in {leaving}"),
          alternative: format!(
            "route it through an endpoint outside {leaving} (a notification channel or API in \
             the standby region), or add a second notify step on another channel"
          ),
        });
      }
    }
  }
  if leaving == IAM_HOME {
    found.push(Dependency {
      step: None,
      severity: Severity::Caution,
      what: "IAM control plane".into(),
      why: format!(
        "IAM's control plane (creating or changing roles, policies, users and keys) is served \
         from {IAM_HOME}; signing requests and authorizing them keeps working in every region"
      ),
      alternative: "have the roles and permissions the run needs in place beforehand (a \
                    break-glass role per account), so that nothing during the event depends \
                    on changing IAM"
        .into(),
    });
  }
  if let Some(sts) = env.sts_region.as_deref().filter(|_| env.aws) {
    if sts == leaving {
      found.push(Dependency {
        step: None,
        severity: Severity::Blocks,
        what: format!("sts GetCallerIdentity (credentials preflight) in {sts}"),
        why: format!("the preflight asks STS's regional endpoint in the run's region, {sts}"),
        alternative: "run against the standby region (the preflight asks STS in the region \
                      the run targets, never the global endpoint)"
          .into(),
      });
    }
  }
  if let Some(sso) = &env.sso {
    if sso.region == leaving {
      found.push(Dependency {
        step: None,
        severity: Severity::Blocks,
        what: format!("IAM Identity Center sign-in of profile `{}`", sso.profile),
        why: format!(
          "profile `{}` signs in through IAM Identity Center, whose home region is {}: a new \
           `aws sso login` or an expired session cannot be renewed while it is down",
          sso.profile, sso.region
        ),
        alternative: "keep break-glass credentials that do not go through Identity Center (an \
                      IAM role assumed from another account or region, stored for emergencies), \
                      or sign in before the session is needed"
          .into(),
      });
    }
  }
  if let Some(region) = recovery_alarms_region(plan) {
    if region == leaving {
      let op = &ops::cloudwatch::DESCRIBE_ALARMS;
      found.push(Dependency {
        step: None,
        severity: Severity::Blocks,
        what: format!(
          "{} {} plane ({}) for objectives.recovered_when",
          op.service,
          plane(op),
          op.name
        ),
        why: format!(
          "the recovery condition's alarms live in {leaving}: while it is down they cannot be \
           read, and the run ends not recovered"
        ),
        alternative: "keep the alarms that decide recovery in the standby region (CloudWatch \
                      alarms can watch another region's metrics and canaries), or name a \
                      read-only step of the standby (`recovered_when: { step }`)"
          .into(),
      });
    }
  }
  if let Some(state) = &env.state {
    if state.region == leaving {
      found.push(Dependency {
        step: None,
        severity: Severity::Blocks,
        what: format!("state {}", state.location),
        why: format!(
          "the run's lock, journal and fences live in {}, reached in {}",
          state.location, state.region
        ),
        alternative: format!(
          "keep the shared state in a bucket outside {leaving} (drctl.yaml `state:`), or, for \
           the emergency, run with a local state (`--state DIR`) and push it afterwards"
        ),
      });
    }
  }
  found
}

/// The region of `objectives.recovered_when`'s alarms, rendered with the plan's parameters.
fn recovery_alarms_region(plan: &Plan) -> Option<String> {
  let recovered_when = plan.runbook.objectives.recovered_when.as_ref()?;
  let crate::runbook::RecoveryCondition::Alarms { call, .. } = &recovered_when.condition else {
    return None;
  };
  let outputs = Default::default();
  let run = super::RunValues::default();
  let scope = plan.scope(&run, &outputs);
  match call.with.get("region")? {
    Arg::Template(template, _) => template.render(&scope).ok(),
    _ => None,
  }
}

/// Where IAM's control plane is served from (the `aws` partition).
const IAM_HOME: &str = "us-east-1";

fn step_dependency(
  step: &Step,
  endpoint: &EndpointUse,
  operations: &[&'static str],
  leaving: &str,
) -> Dependency {
  let what = format!(
    "{} {} plane ({})",
    endpoint.service,
    endpoint.plane,
    operations.join(", ")
  );
  let why = match endpoint.endpoint {
    "global" => format!(
      "{}'s API is served only from {leaving}",
      service_name(endpoint.service)
    ),
    _ if endpoint.any_of => format!("every endpoint listed is in {leaving}"),
    _ => format!(
      "the call goes to {}'s endpoint in {leaving}",
      endpoint.service
    ),
  };
  if step.fence {
    return Dependency {
      step: Some(step.id.clone()),
      severity: Severity::Fence,
      what,
      why,
      alternative: "none needed: a fence of the region left; while it is down the fence is \
                    recorded as pending and applied by a later run (`drctl fence list`)"
        .into(),
    };
  }
  let alternative = match (endpoint.service, endpoint.plane) {
    ("route53", _)
      if operations
        .iter()
        .any(|op| is_mutating(endpoint.service, op)) =>
    {
      "Route 53 ARC routing controls through the recovery cluster's regional endpoints (action \
       arc.routing_control, runbooks/regional-failover-arc.yaml: data plane only), or failover \
       records whose health checks move traffic with no API call"
        .to_owned()
    }
    ("route53", _) => "read the routing control states through the ARC cluster's regional \
                       endpoints, or probe the application's own endpoints (http.check, a data \
                       plane) instead of the Route 53 API"
      .to_owned(),
    ("rds", "control") if operations.contains(&ops::rds::DESCRIBE_GLOBAL_CLUSTERS.name) => {
      "point the provider's default region (`--region`, AWS_REGION) at the standby region: a \
       global cluster is managed from any region it has a member in"
        .to_owned()
    }
    ("arc", _) => {
      "list cluster endpoints in more than one region: each call tries them in turn".to_owned()
    }
    _ => format!(
      "act on the standby region's resources instead, or mark the step `fence: true` if it \
       only needs to happen once {leaving} is back"
    ),
  };
  Dependency {
    step: Some(step.id.clone()),
    severity: Severity::Blocks,
    what,
    why,
    alternative,
  }
}

fn is_mutating(service: &str, operation: &str) -> bool {
  ops::find(service, operation).is_some_and(Op::is_mutating)
}

fn service_name(service: &str) -> &str {
  match service {
    "route53" => "Route 53",
    "rds" => "RDS",
    other => other,
  }
}

#[cfg(test)]
mod tests {
  use std::path::Path;

  use super::*;

  fn plan(file: &str, params: &[(&str, &str)]) -> Plan {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
      .join("runbooks")
      .join(file);
    let runbook = crate::runbook::load_file(&path, &actions::Catalog).unwrap();
    let params: Vec<(String, String)> = params
      .iter()
      .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
      .collect();
    Plan::bind(runbook, &params).unwrap()
  }

  fn env(plan: &Plan) -> Environment {
    Environment {
      leaving: leaving(plan, None),
      default_region: "us-west-2".into(),
      sts_region: Some("us-west-2".into()),
      aws: true,
      ..Environment::default()
    }
  }

  fn step<'a>(analysis: &'a StaticStability, id: &str) -> &'a StepEndpoints {
    analysis.steps.iter().find(|step| step.step == id).unwrap()
  }

  #[test]
  fn the_route53_failover_depends_on_us_east_1_and_is_told_the_arc_path() {
    let plan = plan("regional-failover.yaml", &[("target_region", "us-west-2")]);
    let analysis = analyze(&plan, &env(&plan));
    assert_eq!(
      analysis.leaving.as_ref().map(|l| l.from.as_str()),
      Some("params.source_region")
    );
    let flip = step(&analysis, "flip-dns");
    let change = flip
      .endpoints
      .iter()
      .find(|e| e.operation == ops::route53::CHANGE_RESOURCE_RECORD_SETS.name)
      .unwrap();
    assert_eq!(
      (change.plane, change.endpoint, change.regions.as_slice()),
      ("control", "global", ["us-east-1".to_owned()].as_slice())
    );
    let promote = step(&analysis, "promote-db");
    assert!(promote
      .endpoints
      .iter()
      .all(|e| e.regions == ["us-west-2".to_owned()]));
    let blocking: Vec<&Dependency> = analysis
      .dependencies
      .iter()
      .filter(|d| d.severity == Severity::Blocks)
      .collect();
    let flip_dependency = blocking
      .iter()
      .find(|d| d.step.as_deref() == Some("flip-dns"))
      .expect("flip-dns depends on us-east-1");
    assert!(flip_dependency
      .what
      .contains(ops::route53::CHANGE_RESOURCE_RECORD_SETS.name));
    assert!(flip_dependency.why.contains("served only from us-east-1"));
    assert!(flip_dependency.alternative.contains("arc.routing_control"));
    assert!(blocking
      .iter()
      .any(|d| d.step.as_deref() == Some("verify-outage")));
    // The standby region's calls are not flagged; the fences of the region left are, as fences.
    assert!(!blocking
      .iter()
      .any(|d| d.step.as_deref() == Some("promote-db")));
    assert!(analysis
      .dependencies
      .iter()
      .any(|d| d.step.as_deref() == Some("fence-source-db") && d.severity == Severity::Fence));
    assert!(analysis
      .dependencies
      .iter()
      .any(|d| d.step.is_none() && d.what == "IAM control plane"));
  }

  #[test]
  fn the_arc_failover_has_no_blocking_dependency_on_the_region_it_leaves() {
    let plan = plan(
      "regional-failover-arc.yaml",
      &[("target_region", "us-west-2")],
    );
    let analysis = analyze(&plan, &env(&plan));
    assert_eq!(analysis.blocking(), 0, "{:#?}", analysis.dependencies);
    let flip = analysis
      .steps
      .iter()
      .find(|step| step.action == "arc.routing_control")
      .unwrap();
    let update = flip
      .endpoints
      .iter()
      .find(|e| e.operation == crate::cloud::arc::ops::UPDATE_ROUTING_CONTROL_STATE.name)
      .unwrap();
    assert!(update.any_of && update.regions.len() > 1, "{update:?}");
    assert_eq!(update.plane, "data");
    assert!(analysis
      .steps
      .iter()
      .flat_map(|step| &step.endpoints)
      .all(|e| e.service != "route53"));
    let partial = analysis
      .dependencies
      .iter()
      .find(|d| d.step.as_deref() == Some(flip.step.as_str()))
      .expect("the endpoint in us-east-1 is noted");
    assert_eq!(partial.severity, Severity::Caution);
    assert!(
      partial.what.contains("1 of 5 endpoints"),
      "{}",
      partial.what
    );
  }

  #[test]
  fn leaving_another_region_flags_nothing_of_us_east_1() {
    let plan = plan(
      "regional-failover.yaml",
      &[
        ("target_region", "us-east-1"),
        ("source_region", "us-west-2"),
      ],
    );
    let analysis = analyze(&plan, &env(&plan));
    assert!(analysis
      .dependencies
      .iter()
      .all(|d| d.step.as_deref() != Some("flip-dns") && d.what != "IAM control plane"));
  }

  #[test]
  fn the_run_itself_depends_on_its_state_bucket_sso_and_sts_regions() {
    let plan = plan("regional-failover.yaml", &[("target_region", "us-west-2")]);
    let env = Environment {
      leaving: leaving(&plan, Some("us-west-2")),
      default_region: "us-west-2".into(),
      sts_region: Some("us-west-2".into()),
      sso: Some(Sso {
        profile: "prod".into(),
        region: "us-west-2".into(),
      }),
      state: Some(StateBucket {
        location: "s3://dr-state/drctl".into(),
        region: "us-west-2".into(),
      }),
      aws: true,
    };
    let analysis = analyze(&plan, &env);
    let run: Vec<&str> = analysis
      .dependencies
      .iter()
      .filter(|d| d.step.is_none())
      .map(|d| d.what.as_str())
      .collect();
    assert_eq!(
      run,
      [
        "sts GetCallerIdentity (credentials preflight) in us-west-2",
        "IAM Identity Center sign-in of profile `prod`",
        "state s3://dr-state/drctl"
      ]
    );
    assert!(analysis
      .run
      .iter()
      .any(|e| e.service == "s3" && e.regions == ["us-west-2".to_owned()]));
  }

  /// A recovery condition whose alarms live in the region being left blocks: they cannot be
  /// read while it is down. Leaving the other region flags nothing.
  #[test]
  fn recovery_alarms_in_the_region_left_are_a_blocking_dependency() {
    let text = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: alarms }
params:
  source_region: { type: string, default: us-east-1 }
  alarms_region: { type: string, default: us-east-1 }
objectives:
  recovered_when: { alarms: [app-health], region: "${{ params.alarms_region }}" }
steps:
  - id: wait
    action: wait.sleep
    with: { duration: 1s }
"#;
    let runbook =
      crate::runbook::load(Path::new("alarms.yaml"), text.as_bytes(), &actions::Catalog).unwrap();
    let blocked = |params: &[(&str, &str)]| {
      let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
      let plan = Plan::bind(runbook.clone(), &params).unwrap();
      analyze(&plan, &env(&plan))
        .dependencies
        .into_iter()
        .filter(|d| d.what.contains("objectives.recovered_when"))
        .map(|d| (d.severity, d.what, d.why))
        .collect::<Vec<_>>()
    };
    let found = blocked(&[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Severity::Blocks);
    assert_eq!(
      found[0].1,
      "cloudwatch control plane (DescribeAlarms) for objectives.recovered_when"
    );
    assert!(found[0].2.contains("live in us-east-1"), "{found:?}");
    assert!(blocked(&[("alarms_region", "us-west-2")]).is_empty());
  }

  #[test]
  fn aws_hosted_urls_name_their_region() {
    for (url, region) in [
      ("https://sns.us-east-1.amazonaws.com/", Some("us-east-1")),
      (
        "https://abc.execute-api.eu-west-1.amazonaws.com/prod/hook",
        Some("eu-west-1"),
      ),
      (
        "https://xyz.lambda-url.us-west-2.on.aws/",
        Some("us-west-2"),
      ),
      ("https://hooks.slack.com/services/T/B/C", None),
      ("http://user:pw@127.0.0.1:8080/x", None),
    ] {
      let host = host(url).unwrap();
      assert_eq!(aws_host_region(&host).as_deref(), region, "{url}");
    }
    assert_eq!(
      host("http://user:pw@127.0.0.1:8080/x").as_deref(),
      Some("127.0.0.1")
    );
  }
}
