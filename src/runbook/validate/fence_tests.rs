use std::path::Path;

use crate::runbook::{load, test_catalog::CATALOG};

const HEADER: &str = "apiVersion: drctl/v1\nkind: Runbook\nmetadata: { name: t }\n";

/// `fence: true` is only for a best-effort mutating step with a region: each way to get it
/// wrong is an error at the `fence` key; a right one is kept in the model, as is the
/// runbook's `refuse_pending_fences`.
#[test]
fn fence_steps_must_be_best_effort_regional_effects() {
  let step = |extra: &str| {
    format!(
      "{HEADER}refuse_pending_fences: true\nsteps:\n  - id: fence-db\n    action: \
       ecs.scale_service\n    with: {{ region: r, cluster: c, service: s, desired_count: 0 \
       }}\n    fence: true\n{extra}"
    )
  };
  let good = step("    on_failure: continue\n    recovery: false\n");
  let runbook = load(Path::new("t.yaml"), good.as_bytes(), &CATALOG).unwrap();
  assert!(runbook.steps[0].fence);
  assert!(runbook.refuse_pending_fences);
  for (extra, reason) in [
    ("    recovery: false\n", "needs `on_failure: continue`"),
    ("    on_failure: continue\n", "needs `recovery: false`"),
  ] {
    let text = step(extra);
    let err = load(Path::new("t.yaml"), text.as_bytes(), &CATALOG)
      .unwrap_err()
      .to_string();
    assert!(
      err.contains(&format!("invalid fence: a fence {reason}")),
      "{err}"
    );
    assert!(err.contains("t.yaml:9:"), "{err}");
  }
  let read_only = format!(
    "{HEADER}steps:\n  - id: f\n    action: wait.sleep\n    with: {{ duration: 1s }}\n    \
     fence: true\n    on_failure: continue\n    recovery: false\n"
  );
  let err = load(Path::new("t.yaml"), read_only.as_bytes(), &CATALOG)
    .unwrap_err()
    .to_string();
  assert!(err.contains("a fence must be a mutating action"), "{err}");
}
