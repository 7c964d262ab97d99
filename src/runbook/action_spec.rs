//! How an action declares itself to the validator: its name, whether it mutates, and the schema
//! of its `with` block. The table of actions lives in `actions/`; this module only describes it,
//! so that `runbook/` depends on nothing else in the crate.

use super::model::Span;

/// The type a `with` field must have once rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
  String,
  Int,
  Bool,
  Duration,
  /// A byte size (`512KiB`, `4MiB`; see [`super::size`]), bound to a number of bytes.
  ByteSize,
  /// A URL a notification is POSTed to: https, or http to a loopback host (see [`super::url`]).
  NotificationUrl,
  /// One of the listed strings.
  Enum(&'static [&'static str]),
  /// A count of 1 or more, or `all` ([`parse_count_or_all`]).
  CountOrAll,
  /// A list of strings.
  StringList,
  /// A map of string to string (headers, env).
  StringMap,
  /// A list of maps whose fields are described by `items` (e.g. DNS records).
  Objects(&'static [FieldSpec]),
  /// Free-form (a JSON body).
  Any,
}

/// A [`FieldKind::CountOrAll`]: `all` (`None`), or a count from 1 to `u32::MAX`, written in
/// digits alone.
pub fn parse_count_or_all(text: &str) -> Result<Option<u32>, String> {
  if text == "all" {
    return Ok(None);
  }
  match text.parse::<u32>() {
    Ok(count) if count >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(count)),
    _ => Err(format!("`{text}` is not a count (1 or more) or `all`")),
  }
}

/// One field of a `with` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
  pub name: &'static str,
  pub kind: FieldKind,
  pub required: bool,
  pub doc: &'static str,
}

impl FieldSpec {
  pub const fn required(name: &'static str, kind: FieldKind, doc: &'static str) -> Self {
    Self {
      name,
      kind,
      required: true,
      doc,
    }
  }

  pub const fn optional(name: &'static str, kind: FieldKind, doc: &'static str) -> Self {
    Self {
      name,
      kind,
      required: false,
      doc,
    }
  }
}

/// An action as the validator and the schema generator see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionSpec {
  /// `family.name`, e.g. `rds.promote_replica`.
  pub name: &'static str,
  /// Whether the action changes the world (and so journals an intent and implements
  /// observe / apply / verify).
  pub mutating: bool,
  pub doc: &'static str,
  pub fields: &'static [FieldSpec],
  /// Every AWS API operation a live run of this action may send, and the region each is sent
  /// to: what `plan` lists as the step's endpoints (static stability), and, filtered to the
  /// mutating ones, what the dry-run guard refuses ([`ActionSpec::mutating_operations`]).
  pub calls: &'static [Call],
  /// The keys the action puts in `steps.ID.outputs` (for template validation).
  pub outputs: &'static [&'static str],
}

impl ActionSpec {
  pub fn field(&self, name: &str) -> Option<&FieldSpec> {
    self.fields.iter().find(|field| field.name == name)
  }

  /// The AWS API operations this action may send that change the world. Empty for read-only
  /// actions. The dry-run test asserts none of these reach the endpoint.
  pub fn mutating_operations(&self) -> impl Iterator<Item = &'static crate::cloud::ops::Op> {
    self
      .calls
      .iter()
      .map(|call| call.op)
      .filter(|op| op.is_mutating())
  }
}

/// One AWS API operation an action may send, and where its region comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
  pub op: &'static crate::cloud::ops::Op,
  pub region: CallRegion,
}

/// Where one of an action's calls is sent, read off its bound `with` arguments. An operation
/// with a global endpoint ([`crate::cloud::ops::Endpoint::Global`]) goes to its endpoint's home
/// whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRegion {
  /// The region of the ARN in `with.arn` when it is one; else the one `with.field` names;
  /// else the provider's default region.
  Field {
    arn: Option<&'static str>,
    field: Option<&'static str>,
  },
  /// One of the `key`s of the objects in `with.list`, tried in turn (the ARC cluster's
  /// regional endpoints): the call depends on none of them alone.
  AnyOf {
    list: &'static str,
    key: &'static str,
  },
  /// The operation's global endpoint.
  Global,
}

impl Call {
  /// Sent to the region `with.field` names.
  pub const fn to(op: &'static crate::cloud::ops::Op, field: &'static str) -> Call {
    Call {
      op,
      region: CallRegion::Field {
        arn: None,
        field: Some(field),
      },
    }
  }

  /// Sent to the region of the ARN in `with.arn`, or else to the one `with.field` names.
  pub const fn arn_or(
    op: &'static crate::cloud::ops::Op,
    arn: &'static str,
    field: Option<&'static str>,
  ) -> Call {
    Call {
      op,
      region: CallRegion::Field {
        arn: Some(arn),
        field,
      },
    }
  }

  /// Sent to the provider's default region (a resource with no home region: a global cluster).
  pub const fn default_region(op: &'static crate::cloud::ops::Op) -> Call {
    Call {
      op,
      region: CallRegion::Field {
        arn: None,
        field: None,
      },
    }
  }

  /// Sent to one of the `key` regions of the objects in `with.list`.
  pub const fn any_of(
    op: &'static crate::cloud::ops::Op,
    list: &'static str,
    key: &'static str,
  ) -> Call {
    Call {
      op,
      region: CallRegion::AnyOf { list, key },
    }
  }

  /// Sent to the operation's global endpoint.
  pub const fn global(op: &'static crate::cloud::ops::Op) -> Call {
    Call {
      op,
      region: CallRegion::Global,
    }
  }
}

/// A place to look actions up by name (the `actions::CATALOG` table implements it).
pub trait ActionCatalog {
  fn get(&self, name: &str) -> Option<&ActionSpec>;
  fn names(&self) -> Vec<&'static str>;
}

impl ActionCatalog for [ActionSpec] {
  fn get(&self, name: &str) -> Option<&ActionSpec> {
    self.iter().find(|spec| spec.name == name)
  }

  fn names(&self) -> Vec<&'static str> {
    self.iter().map(|spec| spec.name).collect()
  }
}

/// So that a `&'static [ActionSpec]` table can be passed as `&dyn ActionCatalog` (as `&TABLE`):
/// the slice itself is unsized and cannot be turned into a trait object.
impl ActionCatalog for &[ActionSpec] {
  fn get(&self, name: &str) -> Option<&ActionSpec> {
    ActionCatalog::get(*self, name)
  }

  fn names(&self) -> Vec<&'static str> {
    ActionCatalog::names(*self)
  }
}

/// Where a span-carrying thing came from; used by callers that report on `with` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldAt {
  pub field: &'static str,
  pub span: Span,
}
