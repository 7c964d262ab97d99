//! Format versions of what drctl keeps in its state, and the compatibility promise they carry.
//!
//! Every journal record, lock, drill history entry, scheduler claim, freeze and applied-fence
//! record carries a `format` field, locally and in an `s3://` bucket alike (the simulator's `world.json` carries its own
//! `version`, which covers its `operations.jsonl`). An object without one was written before
//! formats were recorded: it is format 1, which is what this drctl writes.
//!
//! The promise:
//! * A drctl reads every format up to its own ([`Kind::current`]): a newer drctl resumes and
//!   reports on what an older one wrote.
//! * A drctl that finds a newer format than its own refuses the command ([`NewerFormat`], exit
//!   2) before it writes anything: it neither guesses what the object means nor overwrites it,
//!   takes it over or breaks it. A newer last journal line is refused, never taken for a torn
//!   one and cut away.
//! * A format is only raised when an older reader would misread the object; fields an older
//!   drctl may ignore are added without raising it. A drctl continuing a journal (a resume)
//!   writes the journal's own format, so a newer drctl never turns an older run into one its
//!   own writer cannot read.

use std::fmt;

use serde::Serialize;

/// The field that holds an object's format.
pub const FIELD: &str = "format";

/// The format of an object written before formats were recorded.
pub const FIRST: u32 = 1;

/// A kind of state object with a format of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
  /// A journal record (`runs/<id>/journal.jsonl`, `runs/<id>/journal/<seq>.json` in S3).
  Journal,
  /// A lock (`locks/<group>.lock`).
  Lock,
  /// A drill history entry (`drills/<name>/history.jsonl`, `drills/<name>/history/` in S3).
  History,
  /// A scheduler's claim of a fire (`drills/<name>/claims/<due>`).
  Claim,
  /// The simulator's world of a run (`runs/<id>/world.json`, with `operations.jsonl`).
  SimWorld,
  /// The explicit freeze of live drills (`freeze.json`).
  Freeze,
  /// A record of a region fence applied after its run (`fences/applied.jsonl`,
  /// `fences/applied/` in S3).
  AppliedFence,
  /// A request to a run from outside it: approve, deny or cancel (`runs/<id>/requests/`).
  ControlRequest,
}

impl Kind {
  /// The newest format of this kind that this drctl reads, and the one it writes.
  pub const fn current(self) -> u32 {
    match self {
      Kind::Journal
      | Kind::Lock
      | Kind::History
      | Kind::Claim
      | Kind::SimWorld
      | Kind::Freeze
      | Kind::AppliedFence
      | Kind::ControlRequest => 1,
    }
  }

  fn noun(self) -> &'static str {
    match self {
      Kind::Journal => "journal",
      Kind::Lock => "lock",
      Kind::History => "drill history",
      Kind::Claim => "drill claim",
      Kind::SimWorld => "simulator world",
      Kind::Freeze => "freeze",
      Kind::AppliedFence => "applied fence record",
      Kind::ControlRequest => "control request",
    }
  }
}

/// An object written by a newer drctl than this one: refused, never read nor changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
  "{} {location}: written by a newer drctl (format {found}); this drctl reads up to {}: \
   upgrade drctl to use this state",
  .kind.noun(),
  .kind.current()
)]
pub struct NewerFormat {
  pub kind: Kind,
  /// The file or `s3://` object.
  pub location: String,
  pub found: u64,
}

/// Why an object's format cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatIssue {
  /// Newer than this drctl reads.
  Newer { found: u64 },
  /// The field is there but holds no format (not a positive integer).
  Invalid(String),
}

impl fmt::Display for FormatIssue {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match self {
      FormatIssue::Newer { found } => write!(f, "format {found} is newer than this drctl reads"),
      FormatIssue::Invalid(why) => f.write_str(why),
    }
  }
}

impl FormatIssue {
  /// The error to report for the object at `location`: [`NewerFormat`] when it is newer.
  pub fn newer(&self, kind: Kind, location: impl fmt::Display) -> Option<NewerFormat> {
    match self {
      FormatIssue::Newer { found } => Some(NewerFormat {
        kind,
        location: location.to_string(),
        found: *found,
      }),
      FormatIssue::Invalid(_) => None,
    }
  }
}

/// The format of a parsed object (its [`FIELD`], or [`FIRST`] without one), if this drctl
/// reads it.
pub fn read(kind: Kind, object: &serde_json::Value) -> Result<u32, FormatIssue> {
  let Some(field) = object.get(FIELD) else {
    return Ok(FIRST);
  };
  let found = field
    .as_u64()
    .filter(|found| *found >= u64::from(FIRST))
    .ok_or_else(|| FormatIssue::Invalid(format!("`{FIELD}` is {field}, not a format")))?;
  match u32::try_from(found) {
    Ok(found) if found <= kind.current() => Ok(found),
    _ => Err(FormatIssue::Newer { found }),
  }
}

/// `body` with its format first, as it is written (the object's own fields follow, in order).
#[derive(Debug, Serialize)]
pub struct Stamped<'a, T: Serialize> {
  format: u32,
  #[serde(flatten)]
  body: &'a T,
}

/// `body` stamped with the current format of `kind`.
pub fn stamped<T: Serialize>(kind: Kind, body: &T) -> Stamped<'_, T> {
  Stamped {
    format: kind.current(),
    body,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn objects_without_a_format_are_the_first_and_newer_ones_are_refused() {
    let read_json = |text: &str| read(Kind::Journal, &serde_json::from_str(text).unwrap());
    assert_eq!(read_json(r#"{"seq":1}"#), Ok(FIRST));
    assert_eq!(read_json(r#"{"format":1}"#), Ok(1));
    assert_eq!(
      read_json(r#"{"format":2}"#),
      Err(FormatIssue::Newer { found: 2 })
    );
    assert_eq!(
      read_json(r#"{"format":99999999999}"#),
      Err(FormatIssue::Newer { found: 99999999999 })
    );
    for invalid in [r#"{"format":0}"#, r#"{"format":"1"}"#, r#"{"format":-1}"#] {
      assert!(
        matches!(read_json(invalid), Err(FormatIssue::Invalid(_))),
        "{invalid}"
      );
    }
    let newer = FormatIssue::Newer { found: 2 }
      .newer(Kind::Lock, "locks/x.lock")
      .unwrap();
    assert_eq!(
      newer.to_string(),
      "lock locks/x.lock: written by a newer drctl (format 2); this drctl reads up to 1: \
       upgrade drctl to use this state"
    );
  }

  #[test]
  fn a_stamped_object_leads_with_its_format() {
    #[derive(Serialize)]
    struct Body {
      b: u32,
      a: u32,
    }
    let text = serde_json::to_string(&stamped(Kind::History, &Body { b: 2, a: 1 })).unwrap();
    assert_eq!(text, r#"{"format":1,"b":2,"a":1}"#);
  }
}
