//! Drill schedules against an implementation nobody here wrote: cronsim (PyPI), a cron evaluator
//! written to match Debian's cron, its DST handling included. Seeded random expressions in seven
//! time zones (daylight saving in four, half-hour and 45-minute offsets among them), a quarter of them started within a day of a clock change; the next five fire times
//! of each must agree exactly.
//!
//! What cronsim does not model of Debian's cron, and so is not drawn here (the unit tests in
//! src/drills/cron.rs cover drctl's side of each):
//! * macros: cronsim has none, so `tests/support/cron_reference.py` expands them as Debian's
//!   entry.c sets their bits and flags; `@quarterly` is drctl's own and not drawn;
//! * a step after a single value (`5/15`): Debian refuses it (so does drctl), cronsim reads
//!   `5-59/15`; and a step after a one-value range (`8-8/14`): Debian reads `8`, cronsim again
//!   `8-59/14`;
//! * a day of month no chosen month has (`0 0 30 2 *`): cronsim refuses it, Debian accepts it;
//!   drawn expressions avoid it;
//! * clock changes at midnight (America/Santiago, Asia/Beirut): for a wildcard job cronsim can
//!   land on the missing midnight itself, Debian's cron runs only what matches the new time; no
//!   zone drawn here changes its clocks at midnight;
//! * clock changes that are not whole hours at whole hours: cronsim steps a wildcard job's hours
//!   in UTC from the top of the hour, so after a 30-minute change (Australia/Lord_Howe) it fires
//!   at :30 past each hour where Debian's cron (and drctl) fire at :00, and after a change at
//!   02:45 (Pacific/Chatham, to 03:45) it skips the rest of hour 3, which Debian's cron runs;
//!   neither zone is drawn, the unit tests cover both;
//! * clock changes of 5 minutes or less, or of 3 hours or more, which Debian's cron treats as a
//!   late wake-up or a clock jump: no zone drawn here has one in 2025-2031.
//!
//! `.ci/test` installs cronsim; without it this test fails and says how to install it.

use std::{
  io::Write,
  process::{Command, Stdio},
};

use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;
use drctl::drills::Schedule;

const ZONES: &[&str] = &[
  "UTC",
  "America/New_York",
  "Europe/Berlin",
  "Asia/Kolkata",
  "Asia/Kathmandu",
  "Australia/Adelaide",
  "America/Los_Angeles",
];
const CASES: usize = 12_000;
const FIRES: usize = 5;
const SEED: u64 = 0x0C20_2026;

/// The cronsim version whose behaviour was checked against Debian's cron.c and entry.c.
const CRONSIM: &str = "cronsim==2.7";

/// One field: the values it may take, and names (months, days of week).
struct FieldSpec {
  min: u32,
  max: u32,
  names: &'static [&'static str],
  names_from: u32,
}

const FIELDS: [FieldSpec; 5] = [
  FieldSpec {
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
  },
  FieldSpec {
    min: 0,
    max: 23,
    names: &[],
    names_from: 0,
  },
  FieldSpec {
    min: 1,
    max: 31,
    names: &[],
    names_from: 0,
  },
  FieldSpec {
    min: 1,
    max: 12,
    names: &[
      "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    names_from: 1,
  },
  FieldSpec {
    min: 0,
    max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    names_from: 0,
  },
];

const MACROS: &[&str] = &[
  "@hourly",
  "@daily",
  "@midnight",
  "@weekly",
  "@monthly",
  "@yearly",
  "@annually",
];

/// A value as written: a number, or now and then a name in random case.
fn value(rng: &mut fastrand::Rng, spec: &FieldSpec, value: u32) -> String {
  let named = value >= spec.names_from
    && ((value - spec.names_from) as usize) < spec.names.len()
    && rng.u8(0..3) == 0;
  if !named {
    return value.to_string();
  }
  let name = spec.names[(value - spec.names_from) as usize];
  match rng.u8(0..3) {
    0 => name.to_uppercase(),
    1 => {
      let mut chars = name.chars();
      chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
      })
    }
    _ => name.to_string(),
  }
}

/// One list item and the values it stands for.
fn item(rng: &mut fastrand::Rng, spec: &FieldSpec, star_allowed: bool) -> (String, Vec<u32>) {
  let span = spec.max - spec.min;
  match rng.u8(0..10) {
    0 | 1 if star_allowed => ("*".into(), (spec.min..=spec.max).collect()),
    2 if star_allowed => {
      let step = rng.u32(1..=span + 2);
      (
        format!("*/{step}"),
        (spec.min..=spec.max).step_by(step as usize).collect(),
      )
    }
    3 | 4 => {
      let low = rng.u32(spec.min..=spec.max);
      let high = rng.u32(low..=spec.max);
      (
        format!("{}-{}", value(rng, spec, low), value(rng, spec, high)),
        (low..=high).collect(),
      )
    }
    5 => {
      // cronsim reads a one-value range with a step (`8-8/14`) as `8/14`: never drawn.
      let low = rng.u32(spec.min..spec.max);
      let high = rng.u32(low + 1..=spec.max);
      let step = rng.u32(1..=span.max(1) / 2 + 1);
      (
        format!(
          "{}-{}/{step}",
          value(rng, spec, low),
          value(rng, spec, high)
        ),
        (low..=high).step_by(step as usize).collect(),
      )
    }
    _ => {
      let v = rng.u32(spec.min..=spec.max);
      (value(rng, spec, v), vec![v])
    }
  }
}

/// A field: one item, or a list of up to four (a list may start with `*` too).
fn field(rng: &mut fastrand::Rng, spec: &FieldSpec) -> (String, Vec<u32>) {
  let count = if rng.u8(0..4) == 0 {
    rng.usize(2..=4)
  } else {
    1
  };
  let mut text = Vec::new();
  let mut values = Vec::new();
  for index in 0..count {
    let star_allowed = index == 0 || rng.u8(0..6) == 0;
    let (item, item_values) = item(rng, spec, star_allowed);
    text.push(item);
    values.extend(item_values);
  }
  (text.join(","), values)
}

const DAYS_IN_MONTH: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// A random expression that Debian's cron and cronsim read alike (see the module header).
fn expression(rng: &mut fastrand::Rng) -> String {
  if rng.u8(0..20) == 0 {
    return MACROS[rng.usize(..MACROS.len())].to_string();
  }
  loop {
    let fields: Vec<(String, Vec<u32>)> = FIELDS.iter().map(|spec| field(rng, spec)).collect();
    let fewest_days = fields[2].1.iter().min().copied().unwrap_or(1);
    let longest_month = fields[3]
      .1
      .iter()
      .map(|&month| DAYS_IN_MONTH[month as usize])
      .max()
      .unwrap_or(31);
    if fewest_days > longest_month {
      continue;
    }
    return fields
      .into_iter()
      .map(|(text, _)| text)
      .collect::<Vec<_>>()
      .join(if rng.u8(0..8) == 0 { "  " } else { " " });
  }
}

/// The instants in [from, to) at which the zone's UTC offset changes (to the minute).
fn clock_changes(zone: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
  use chrono::{Offset, TimeZone};
  let offset = |at: DateTime<Utc>| zone.offset_from_utc_datetime(&at.naive_utc()).fix();
  let mut changes = Vec::new();
  let mut at = from;
  while at < to {
    let next = at + Duration::hours(1);
    if offset(at) != offset(next) {
      let (mut low, mut high) = (at, next);
      while high - low > Duration::minutes(1) {
        let middle = low + (high - low) / 2;
        if offset(middle) == offset(low) {
          low = middle;
        } else {
          high = middle;
        }
      }
      changes.push(high);
    }
    at = next;
  }
  changes
}

struct Case {
  expr: String,
  zone: &'static str,
  start: DateTime<Utc>,
  near_change: bool,
}

fn cases() -> Vec<Case> {
  let mut rng = fastrand::Rng::with_seed(SEED);
  let from = "2025-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
  let to = "2031-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
  let changes: Vec<Vec<DateTime<Utc>>> = ZONES
    .iter()
    .map(|zone| clock_changes(zone.parse().unwrap(), from, to))
    .collect();
  (0..CASES)
    .map(|_| {
      let zone_index = rng.usize(..ZONES.len());
      let zone_changes = &changes[zone_index];
      let near_change = !zone_changes.is_empty() && rng.u8(0..10) < 5;
      let start = if near_change {
        let change = zone_changes[rng.usize(..zone_changes.len())];
        change + Duration::seconds(rng.i64(-86_400..=86_400))
      } else {
        from + Duration::seconds(rng.i64(0..(to - from).num_seconds()))
      };
      Case {
        expr: expression(&mut rng),
        zone: ZONES[zone_index],
        start,
        near_change,
      }
    })
    .collect()
}

fn reference(cases: &[Case]) -> Vec<Result<Vec<String>, String>> {
  let script = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/cron_reference.py"
  );
  let available = Command::new("python3")
    .args(["-c", "import cronsim"])
    .status()
    .is_ok_and(|status| status.success());
  assert!(
    available,
    "the cron reference needs cronsim: python3 -m pip install '{CRONSIM}' (.ci/test does)"
  );
  let mut child = Command::new("python3")
    .arg(script)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .expect("python3 runs");
  let mut input = String::new();
  for case in cases {
    input.push_str(
      &serde_json::json!({
        "expr": case.expr,
        "zone": case.zone,
        "start": case.start.to_rfc3339(),
        "count": FIRES,
      })
      .to_string(),
    );
    input.push('\n');
  }
  let mut stdin = child.stdin.take().unwrap();
  let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
  let output = child.wait_with_output().unwrap();
  writer.join().unwrap().unwrap();
  assert!(output.status.success(), "the reference script failed");
  String::from_utf8(output.stdout)
    .unwrap()
    .lines()
    .map(|line| {
      let value: serde_json::Value = serde_json::from_str(line).unwrap();
      match value.get("fires").and_then(|fires| fires.as_array()) {
        Some(fires) => Ok(
          fires
            .iter()
            .map(|fire| fire.as_str().unwrap().to_string())
            .collect(),
        ),
        None => Err(value["error"].as_str().unwrap_or("?").to_string()),
      }
    })
    .collect()
}

fn drctl_fires(case: &Case) -> Result<Vec<String>, String> {
  let schedule = Schedule::new(&case.expr, case.zone.parse().unwrap())
    .map_err(|err| format!("refused: {err}"))?;
  let zone: Tz = case.zone.parse().unwrap();
  let year = |at: DateTime<Utc>| at.with_timezone(&zone).year();
  let mut at = case.start;
  let mut fires = Vec::new();
  while fires.len() < FIRES {
    let Some(next) = schedule.next_after(at) else {
      break;
    };
    // cronsim gives up on a fire time more than 50 years after the last (Debian's cron has no
    // such limit, nor does drctl within the 400-year calendar cycle).
    if year(next) > year(at) + 50 {
      break;
    }
    fires.push(next.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    at = next;
  }
  Ok(fires)
}

#[test]
fn drill_schedules_agree_with_debian_cron_as_cronsim_models_it() {
  let cases = cases();
  let expected = reference(&cases);
  assert_eq!(expected.len(), cases.len(), "one answer per case");
  let mut disagreements = Vec::new();
  for (case, expected) in cases.iter().zip(&expected) {
    let actual = drctl_fires(case);
    if &actual != expected {
      disagreements.push(format!(
        "{:?} in {} after {}{}:\n  drctl:   {actual:?}\n  cronsim: {expected:?}",
        case.expr,
        case.zone,
        case.start.to_rfc3339(),
        if case.near_change {
          " (near a clock change)"
        } else {
          ""
        }
      ));
    }
  }
  let near = cases.iter().filter(|case| case.near_change).count();
  let macros = cases
    .iter()
    .filter(|case| case.expr.starts_with('@'))
    .count();
  let both_days = cases
    .iter()
    .filter(|case| {
      let fields: Vec<&str> = case.expr.split_whitespace().collect();
      fields.len() == 5 && !fields[2].starts_with('*') && !fields[4].starts_with('*')
    })
    .count();
  eprintln!(
    "cron reference ({CRONSIM}): {} expressions, {} zones, {near} ({:.0} %) started within a day \
     of a clock change, {macros} macros, {both_days} with both day fields restricted, {} fire \
     times each: {} disagreements",
    cases.len(),
    ZONES.len(),
    100.0 * near as f64 / cases.len() as f64,
    FIRES,
    disagreements.len()
  );
  assert!(near * 5 >= cases.len(), "at least 20 % near a clock change");
  assert!(
    disagreements.is_empty(),
    "{} of {} disagree; the first:\n{}",
    disagreements.len(),
    cases.len(),
    disagreements
      .iter()
      .take(10)
      .cloned()
      .collect::<Vec<_>>()
      .join("\n")
  );
}
