//! `drctl fence list|apply|drop`, and the pending-fence checks other commands make: `status` lists
//! them, a run of a runbook with `refuse_pending_fences: true` (a failback) first tries to apply
//! them and refuses to start (exit 4) while any stays pending, and the scheduler tries them on
//! every tick.

use clap::Subcommand;

use super::{commands::Backend, commands::Context, out, Error, Exit, Output};
use crate::{
  cloud::MutationFence,
  engine::region_fence,
  state::{
    fences::{self, AppliedFence, PendingFence},
    lock::hostname,
  },
};

#[derive(Debug, Clone, Subcommand)]
pub enum FenceCommand {
  /// List the region fences still pending (a failover could not apply them: the region was
  /// down).
  List,
  /// Try to apply the pending fences (or the one with this id) now, on the backend they were
  /// recorded on; exit 1 while any stays pending.
  Apply { id: Option<String> },
  /// Drop a pending fence that can never apply (its region was decommissioned): it is no
  /// longer pending (failback no longer waits for it), and stays listed as dropped, with who
  /// dropped it, when and why. The region it names is not fenced.
  Drop {
    id: String,
    /// Why it can never apply (recorded and shown with it).
    #[arg(long)]
    reason: String,
  },
}

/// What one try at the pending fences did.
#[derive(Debug, Default)]
pub(super) struct Attempt {
  pub applied: Vec<AppliedFence>,
  /// Still pending, each with why.
  pub pending: Vec<(PendingFence, String)>,
}

/// The pending fences of this state (with an `s3://` state, after pulling the runs and the
/// applied records other operators pushed).
pub(super) async fn pending(ctx: &Context) -> Result<Vec<PendingFence>, Error> {
  let s3 = ctx.s3_state().await;
  // A journal this drctl cannot read (a newer drctl's) may hold a fence: refuse, never guess.
  ctx.pull_runs(s3.as_ref()).await?;
  if let Some(s3) = &s3 {
    if let Err(err) = fences::pull_applied(s3, ctx.store.root()).await {
      eprintln!(
        "warning: cannot read applied fences from {} ({err}); using the local cache",
        s3.location
      );
    }
  }
  Ok(fences::pending(&ctx.store))
}

/// The name a backend's runs record (`Cloud::backend`).
fn backend_name(backend: &Backend) -> &'static str {
  match backend {
    Backend::Sim { .. } => "sim",
    Backend::Aws(_) => "aws",
    Backend::Sandbox { .. } => "sandbox",
  }
}

/// Try every pending fence (or the one `only` names) recorded on this command's backend, and
/// record each that applies (locally, and in the bucket of an `s3://` state). `by` says who
/// applied it, for the record.
pub(super) async fn apply_pending(
  ctx: &Context,
  only: Option<&str>,
  by: &str,
) -> Result<Attempt, Error> {
  let mut attempt = Attempt::default();
  let s3 = ctx.s3_state().await;
  for fence in pending(ctx).await? {
    if only.is_some_and(|id| id != fence.id) {
      continue;
    }
    let backend = backend_name(&ctx.backend);
    if fence.backend != backend {
      let why = format!(
        "recorded on the {} backend; apply it with that backend, not {backend}",
        fence.backend
      );
      attempt.pending.push((fence, why));
      continue;
    }
    // On the simulator, the world of the run that left it pending (the region's outage is
    // that world's); elsewhere the account the flags name.
    let dir = ctx.store.run_dir(&fence.run_id);
    if backend == "sim" && !dir.join("world.json").exists() {
      // Opening it would create a fresh world: the fence would be applied in the wrong one.
      let why = "its simulated world is not in this state directory".to_string();
      attempt.pending.push((fence, why));
      continue;
    }
    let cloud = match ctx
      .open_cloud(&dir, Vec::new(), &MutationFence::default(), None)
      .await
    {
      Ok(cloud) => cloud,
      Err(err) => {
        let why = err.message().to_string();
        attempt.pending.push((fence, why));
        continue;
      }
    };
    match region_fence::apply(&cloud, &fence).await {
      Ok(outcome) => {
        let applied = AppliedFence {
          id: fence.id.clone(),
          applied_at: chrono::Utc::now(),
          by: by.to_string(),
          host: hostname(),
          summary: outcome.summary,
          dropped: None,
        };
        if let Err(err) = fences::mark_applied(ctx.store.root(), &applied) {
          let why = format!("applied, but cannot be recorded: {err}");
          attempt.pending.push((fence, why));
          continue;
        }
        if let Some(s3) = &s3 {
          if let Err(err) = fences::push_applied(s3, &applied).await {
            eprintln!(
              "warning: fence {} applied but not recorded in {} ({err})",
              applied.id, s3.location
            );
          }
        }
        tracing::info!(fence = %applied.id, by, "applied a pending region fence");
        attempt.applied.push(applied);
      }
      Err(err) => attempt.pending.push((fence, err.message)),
    }
  }
  Ok(attempt)
}

/// One line per pending fence, for people.
pub(super) fn describe(fence: &PendingFence) -> String {
  format!(
    "{}  {} in {} (runbook {}, {} backend, since {})",
    fence.id,
    fence.action,
    fence.region,
    fence.runbook,
    fence.backend,
    fence.recorded_at.format("%Y-%m-%d %H:%M:%SZ")
  )
}

/// Whether a run is starting or being resumed, for [`refuse_while_pending`].
#[derive(Debug, Clone, Copy)]
pub(super) enum RunEntry<'a> {
  Start,
  /// A resume of this run id: a fence that became pending while it was stopped (a failover
  /// ran meanwhile) holds it back as it would hold back a start.
  Resume(&'a str),
}

/// Refuse a run of a runbook that refuses pending fences while any is pending, after one try
/// at applying them. Exit 4, naming each.
pub(super) async fn refuse_while_pending(
  ctx: &Context,
  runbook: &str,
  entry: RunEntry<'_>,
) -> Result<(), Error> {
  let attempt = apply_pending(ctx, None, &format!("run of {runbook}")).await?;
  for applied in &attempt.applied {
    eprintln!("applied pending fence {}: {}", applied.id, applied.summary);
  }
  if attempt.pending.is_empty() {
    return Ok(());
  }
  let list: Vec<String> = attempt
    .pending
    .iter()
    .map(|(fence, why)| format!("  {}: {why}", describe(fence)))
    .collect();
  let (verb, after) = match entry {
    RunEntry::Start => ("start", String::new()),
    RunEntry::Resume(run_id) => (
      "resume",
      format!("; run {run_id} stays resumable and has changed nothing more"),
    ),
  };
  Err(Error::FencesPending(format!(
    "{runbook} refuses to {verb} while a region fence is pending: the old primary may still \
     take writes. Pending:\n{}\napply them once the region answers (`drctl fence apply`){after}",
    list.join("\n")
  )))
}

/// One line per dropped fence, for people: what it was, who dropped it, when and why.
pub(super) fn describe_dropped(fence: &PendingFence, record: &AppliedFence) -> String {
  format!(
    "{}  dropped by {} on {} at {}: {}",
    describe(fence),
    record.by,
    record.host,
    record.applied_at.format("%Y-%m-%d %H:%M:%SZ"),
    record.dropped.as_deref().unwrap_or_default()
  )
}

/// `drctl fence drop ID --reason TEXT`: record the pending fence `id` as dropped (locally, and
/// in the bucket of an `s3://` state). A usage error (exit 2) for an empty reason or an id
/// that is not pending.
async fn drop_fence(ctx: &Context, id: &str, reason: &str) -> Result<AppliedFence, Error> {
  let reason = reason.trim();
  if reason.is_empty() {
    return Err(Error::Usage(
      "fence drop: --reason must say why the fence can never apply".into(),
    ));
  }
  let Some(fence) = pending(ctx).await?.into_iter().find(|fence| fence.id == id) else {
    return Err(Error::Usage(format!(
      "no pending fence `{id}` (`drctl fence list` shows them)"
    )));
  };
  let record = AppliedFence {
    id: fence.id.clone(),
    applied_at: chrono::Utc::now(),
    by: crate::state::operator::os_user(),
    host: hostname(),
    summary: format!(
      "dropped, never applied: {} in {}",
      fence.action, fence.region
    ),
    dropped: Some(reason.to_string()),
  };
  fences::mark_applied(ctx.store.root(), &record)
    .map_err(|err| Error::Failed(format!("fence drop: cannot record it: {err}")))?;
  if let Some(s3) = ctx.s3_state().await {
    fences::push_applied(&s3, &record).await.map_err(|err| {
      Error::Failed(format!(
        "fence drop: recorded here but not in {} ({err}); run it again",
        s3.location
      ))
    })?;
  }
  tracing::warn!(fence = %record.id, by = %record.by, reason, "dropped a pending region fence");
  Ok(record)
}

pub(super) async fn command(ctx: &Context, command: FenceCommand) -> Result<Exit, Error> {
  match command {
    FenceCommand::List => {
      let pending = pending(ctx).await?;
      let dropped = fences::dropped(&ctx.store);
      match ctx.output {
        // The pending fences, as before; dropped ones are in `drctl status --output json`.
        Output::Json => out(&format!(
          "{}\n",
          serde_json::to_string_pretty(&pending).unwrap_or_default()
        )),
        Output::Text => {
          let mut text = if pending.is_empty() {
            "no pending fences\n".to_string()
          } else {
            format!(
              "{}\n",
              pending.iter().map(describe).collect::<Vec<_>>().join("\n")
            )
          };
          if !dropped.is_empty() {
            text.push_str("dropped (never applied):\n");
            for (fence, record) in &dropped {
              text.push_str(&format!("  {}\n", describe_dropped(fence, record)));
            }
          }
          out(&text);
        }
      }
      Ok(Exit::Succeeded)
    }
    FenceCommand::Drop { id, reason } => {
      let record = drop_fence(ctx, &id, &reason).await?;
      match ctx.output {
        Output::Json => out(&format!(
          "{}\n",
          serde_json::to_string_pretty(&record).unwrap_or_default()
        )),
        Output::Text => out(&format!(
          "dropped {}: {} (by {} on {})\n",
          record.id,
          record.dropped.as_deref().unwrap_or_default(),
          record.by,
          record.host
        )),
      }
      Ok(Exit::Succeeded)
    }
    FenceCommand::Apply { id } => {
      if let Some(id) = &id {
        if !pending(ctx).await?.iter().any(|fence| &fence.id == id) {
          return Err(Error::Usage(format!(
            "no pending fence `{id}` (`drctl fence list` shows them)"
          )));
        }
      }
      let attempt = apply_pending(ctx, id.as_deref(), "drctl fence apply").await?;
      match ctx.output {
        Output::Json => out(&format!(
          "{}\n",
          serde_json::to_string_pretty(&serde_json::json!({
            "applied": attempt.applied,
            "pending": attempt
              .pending
              .iter()
              .map(|(fence, why)| serde_json::json!({ "fence": fence, "reason": why }))
              .collect::<Vec<_>>(),
          }))
          .unwrap_or_default()
        )),
        Output::Text => {
          let mut text = String::new();
          for applied in &attempt.applied {
            text.push_str(&format!("applied {}: {}\n", applied.id, applied.summary));
          }
          for (fence, why) in &attempt.pending {
            text.push_str(&format!("still pending {}: {why}\n", describe(fence)));
          }
          if text.is_empty() {
            text.push_str("no pending fences\n");
          }
          out(&text);
        }
      }
      Ok(if attempt.pending.is_empty() {
        Exit::Succeeded
      } else {
        Exit::Failed
      })
    }
  }
}
