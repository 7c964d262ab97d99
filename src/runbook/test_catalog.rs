//! A small action catalog for tests. Names and fields match the real ones in `actions/`, so the
//! fixtures under `tests/fixtures/runbooks/` validate the same way with the real catalog.

use super::action_spec::{ActionSpec, Call, FieldKind, FieldSpec};
use crate::cloud::ops;

pub const CATALOG: &[ActionSpec] = &[
  ActionSpec {
    name: "route53.health_check",
    mutating: false,
    doc: "Assert that a Route 53 health check is healthy or unhealthy.",
    fields: &[
      FieldSpec::required(
        "health_check_id",
        FieldKind::String,
        "The health check's id.",
      ),
      FieldSpec::required(
        "expect",
        FieldKind::Enum(&["healthy", "unhealthy"]),
        "The expected status.",
      ),
    ],
    calls: &[],
    outputs: &["status"],
  },
  ActionSpec {
    name: "rds.promote_replica",
    mutating: true,
    doc: "Promote a read replica to a standalone primary.",
    fields: &[
      FieldSpec::required("region", FieldKind::String, "The replica's region."),
      FieldSpec::required(
        "instance",
        FieldKind::String,
        "The replica's DB instance identifier.",
      ),
      FieldSpec::optional(
        "max_lag",
        FieldKind::Duration,
        "Refuse to promote beyond this lag.",
      ),
    ],
    calls: &[Call::to(&ops::rds::PROMOTE_READ_REPLICA, "region")],
    outputs: &["lag_seconds", "endpoint"],
  },
  ActionSpec {
    name: "notify.slack",
    mutating: false,
    doc: "Post a message to a Slack incoming webhook.",
    fields: &[
      FieldSpec::required(
        "webhook",
        FieldKind::String,
        "The webhook URL (use a secret).",
      ),
      FieldSpec::required("text", FieldKind::String, "The message."),
    ],
    calls: &[],
    outputs: &[],
  },
  ActionSpec {
    name: "ecs.scale_service",
    mutating: true,
    doc: "Set an ECS service's desired count and wait until it is running.",
    fields: &[
      FieldSpec::required("region", FieldKind::String, "The cluster's region."),
      FieldSpec::required("cluster", FieldKind::String, "The cluster name."),
      FieldSpec::required("service", FieldKind::String, "The service name."),
      FieldSpec::required("desired_count", FieldKind::Int, "How many tasks to run."),
    ],
    calls: &[Call::to(&ops::ecs::UPDATE_SERVICE, "region")],
    outputs: &["running_count"],
  },
  ActionSpec {
    name: "wait.sleep",
    mutating: false,
    doc: "Wait for a fixed time.",
    fields: &[FieldSpec::required(
      "duration",
      FieldKind::Duration,
      "How long to wait.",
    )],
    calls: &[],
    outputs: &[],
  },
];
