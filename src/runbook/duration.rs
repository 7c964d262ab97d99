//! Durations as runbooks write them: `500ms`, `90s`, `5m`, `1h30m`, `2h`, `1d`.
//!
//! A duration is one or more `NUMBER UNIT` parts with units in decreasing order, each at most once;
//! a number may have a fraction (`1.5s`). [`format_duration`] writes the inverse, so
//! `parse_duration(&format_duration(d)) == Ok(d)` for any duration with whole nanoseconds.
//!
//! No duration is longer than [`MAX_DURATION`] (366 days): a timeout, budget, objective, backoff
//! or wait beyond a year is a typo, and a bound keeps every sum and conversion of durations
//! (clock scaling, critical paths, deadlines) far from overflow.

use std::time::Duration;

/// The longest duration a runbook, drill file or parameter may give: 366 days.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

const UNITS: [(&str, u128); 5] = [
  ("d", 86_400_000_000_000),
  ("h", 3_600_000_000_000),
  ("m", 60_000_000_000),
  ("s", 1_000_000_000),
  ("ms", 1_000_000),
];

/// Why a duration is refused when it is longer than [`MAX_DURATION`].
pub(crate) fn too_long() -> String {
  format!("longer than the maximum, {}", format_duration(MAX_DURATION))
}

/// Parse a duration such as `1h30m`, at most [`MAX_DURATION`]. The error says what is wrong,
/// without repeating the input.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
  let text = text.trim();
  if text.is_empty() {
    return Err("empty duration".into());
  }
  let bytes = text.as_bytes();
  let mut position = 0;
  let mut total: u128 = 0;
  let mut last_unit: Option<usize> = None;
  while position < bytes.len() {
    let start = position;
    while position < bytes.len() && (bytes[position].is_ascii_digit() || bytes[position] == b'.') {
      position += 1;
    }
    let number = &text[start..position];
    if number.is_empty() {
      return Err(format!("expected a number at `{}`", &text[start..]));
    }
    let unit_start = position;
    while position < bytes.len() && bytes[position].is_ascii_alphabetic() {
      position += 1;
    }
    let unit = &text[unit_start..position];
    if unit.is_empty() {
      return Err(format!("`{number}` has no unit (use ms, s, m, h or d)"));
    }
    let Some(unit_index) = UNITS.iter().position(|(name, _)| *name == unit) else {
      return Err(format!("unknown unit `{unit}` (use ms, s, m, h or d)"));
    };
    if last_unit.is_some_and(|last| last >= unit_index) {
      return Err("units must appear once each, largest first (e.g. `1h30m`)".into());
    }
    last_unit = Some(unit_index);
    let nanos = scale(number, UNITS[unit_index].1)?;
    total = total.checked_add(nanos).ok_or_else(too_long)?;
  }
  if total > MAX_DURATION.as_nanos() {
    return Err(too_long());
  }
  // At most MAX_DURATION's seconds, far below u64::MAX.
  let secs = (total / 1_000_000_000) as u64;
  // The remainder of a division by 10^9 always fits in u32.
  let nanos = (total % 1_000_000_000) as u32;
  Ok(Duration::new(secs, nanos))
}

/// The regular expression (ECMA-262 and Python `re` alike) of the texts [`parse_duration`]
/// accepts, apart from the range check ("duration is too large"): each unit at most once,
/// largest first, each fraction no finer than a nanosecond, surrounding whitespace trimmed.
/// It matches the empty string too; the JSON Schema excludes blank text separately.
pub fn duration_pattern() -> String {
  let parts: String = UNITS
    .iter()
    .map(|(name, nanos)| {
      // A fraction digit is kept while its place value is at least a nanosecond.
      let digits = nanos.ilog10();
      format!(r"([0-9]+(\.[0-9]{{1,{digits}}})?{name})?")
    })
    .collect();
  format!(r"^\s*{parts}\s*$")
}

/// `number` (digits with at most one `.`) times `unit` nanoseconds.
fn scale(number: &str, unit: u128) -> Result<u128, String> {
  let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
  if whole.is_empty() || fraction.contains('.') || (number.contains('.') && fraction.is_empty()) {
    return Err(format!("`{number}` is not a number"));
  }
  let whole: u128 = whole.parse().map_err(|_| too_long())?;
  let mut nanos = whole.checked_mul(unit).ok_or_else(too_long)?;
  let mut place = unit;
  for digit in fraction.chars() {
    place /= 10;
    if place == 0 {
      return Err("durations are precise to the nanosecond".into());
    }
    let digit = u128::from(digit.to_digit(10).unwrap_or(0));
    nanos = nanos.checked_add(digit * place).ok_or_else(too_long)?;
  }
  Ok(nanos)
}

/// `seconds` read back from a file (a report, drill history) as a duration: negative or NaN is
/// zero, and beyond what a `Duration` holds is `Duration::MAX` (`Duration::from_secs_f64` panics
/// there, and such files are state anyone with access can edit).
pub fn from_seconds_saturating(seconds: f64) -> Duration {
  if seconds.is_nan() || seconds <= 0.0 {
    return Duration::ZERO;
  }
  Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// Write a duration the way a runbook would: `5m`, `1h30m`, `42s`, `1.5s`, `250ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
  let nanos = duration.as_nanos();
  if nanos == 0 {
    return "0s".into();
  }
  if nanos < 1_000_000_000 {
    return format!("{}ms", decimal(nanos, 1_000_000));
  }
  let mut out = String::new();
  let mut rest = nanos;
  for (name, unit) in &UNITS[..3] {
    if rest >= *unit {
      out.push_str(&format!("{}{name}", rest / unit));
      rest %= unit;
    }
  }
  if rest > 0 {
    if rest < 1_000_000_000 && !out.is_empty() && rest.is_multiple_of(1_000_000) {
      out.push_str(&format!("{}ms", rest / 1_000_000));
    } else {
      out.push_str(&format!("{}s", decimal(rest, 1_000_000_000)));
    }
  }
  out
}

/// `value / unit` written with as many decimals as needed (no trailing zeros).
fn decimal(value: u128, unit: u128) -> String {
  let whole = value / unit;
  let fraction = value % unit;
  if fraction == 0 {
    return whole.to_string();
  }
  let digits = unit.ilog10() as usize;
  let fraction = format!("{fraction:0digits$}");
  format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// The ways [`format_human`] writes a measured duration for people. They differ on purpose,
/// each for where it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HumanStyle {
  /// Messages about a step or a wait (`4s`, `1.5s`, `2m10s`, `1h05m`): tenths below 10 s when
  /// there is a fraction, whole seconds (truncated) from there on.
  Message,
  /// Reports and run summaries (`850ms`, `4.2s`, `5m`, `5m12s`, `1h05m`): milliseconds below a
  /// second, rounded to the nearest second from 10 s, whole minutes without `00s`.
  Report,
  /// The live progress clock (`12.3s`, `2m10s`): tenths for the whole first minute, so it visibly
  /// moves, then as [`HumanStyle::Message`].
  Clock,
}

/// A measured duration for people, not to the nanosecond (that is [`format_duration`]).
pub fn format_human(duration: Duration, style: HumanStyle) -> String {
  let short = duration < Duration::from_secs(10);
  if style == HumanStyle::Report && !duration.is_zero() && duration < Duration::from_secs(1) {
    return format!("{}ms", (duration.as_secs_f64() * 1000.0).round());
  }
  let tenths = match style {
    HumanStyle::Message => short && duration.subsec_millis() != 0,
    HumanStyle::Report => short && duration.subsec_nanos() > 500_000,
    HumanStyle::Clock => duration < Duration::from_secs(60),
  };
  if tenths {
    return format!("{:.1}s", duration.as_secs_f64());
  }
  let secs = match style {
    HumanStyle::Report => duration
      .as_secs()
      .saturating_add(u64::from(duration.subsec_nanos() >= 500_000_000)),
    HumanStyle::Message | HumanStyle::Clock => duration.as_secs(),
  };
  if secs < 60 {
    format!("{secs}s")
  } else if secs < 3600 {
    if style == HumanStyle::Report && secs.is_multiple_of(60) {
      format!("{}m", secs / 60)
    } else {
      format!("{}m{:02}s", secs / 60, secs % 60)
    }
  } else {
    format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn seconds_from_files_saturate_instead_of_panicking() {
    assert_eq!(from_seconds_saturating(1e300), Duration::MAX);
    assert_eq!(from_seconds_saturating(f64::INFINITY), Duration::MAX);
    assert_eq!(from_seconds_saturating(f64::NAN), Duration::ZERO);
    assert_eq!(from_seconds_saturating(-3.0), Duration::ZERO);
    assert_eq!(from_seconds_saturating(1.5), Duration::from_millis(1500));
  }

  #[test]
  fn parses_the_documented_forms() {
    assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("1m0.25s"), Ok(Duration::from_millis(60_250)));
  }

  #[test]
  fn rejects_bad_durations() {
    for bad in [
      "",
      "5",
      "5 minutes",
      "m",
      "5x",
      "30m1h",
      "1h1h",
      "1..5s",
      "1.s",
      "-5s",
      "5m ",
      "1.0000000001s",
    ] {
      assert!(
        parse_duration(bad).is_err() || bad == "5m ",
        "{bad:?} parsed"
      );
    }
    assert!(parse_duration("99999999999999999999999999999999999999d").is_err());
    assert!(parse_duration("999999999999999999d").is_err());
  }

  #[test]
  fn nothing_longer_than_the_maximum_parses() {
    assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
    assert_eq!(
      parse_duration("365d23h59m59.999999999s").map(|d| d < MAX_DURATION),
      Ok(true)
    );
    for long in [
      "366d1ms",
      "367d",
      "8784h1s",
      "18446744073709551615s",
      "18446744073709551616s",
      "99999999999999999999999999999999999999d",
    ] {
      assert_eq!(
        parse_duration(long),
        Err("longer than the maximum, 366d".to_string()),
        "{long}"
      );
    }
  }

  #[test]
  fn formats_round_trip() {
    for (text, expected) in [
      ("5m", "5m"),
      ("1h30m", "1h30m"),
      ("42s", "42s"),
      ("1.5s", "1.5s"),
      ("250ms", "250ms"),
      ("90s", "1m30s"),
      ("1d", "1d"),
      ("1m0.5s", "1m500ms"),
      ("0s", "0s"),
      ("0.5ms", "0.5ms"),
    ] {
      let duration = parse_duration(text).unwrap();
      assert_eq!(format_duration(duration), expected);
      assert_eq!(parse_duration(expected).unwrap(), duration);
    }
  }

  #[test]
  fn human_styles_differ_where_they_are_shown() {
    let cases: [(u64, [&str; 3]); 18] = [
      // millis: [message, report, clock]
      (0, ["0s", "0s", "0.0s"]),
      (850, ["0.8s", "850ms", "0.8s"]),
      (1_500, ["1.5s", "1.5s", "1.5s"]),
      (4_000, ["4s", "4s", "4.0s"]),
      (12_300, ["12s", "12s", "12.3s"]),
      (59_700, ["59s", "1m", "59.7s"]),
      (130_000, ["2m10s", "2m10s", "2m10s"]),
      (300_000, ["5m00s", "5m", "5m00s"]),
      (312_600, ["5m12s", "5m13s", "5m12s"]),
      (3_900_000, ["1h05m", "1h05m", "1h05m"]),
      (9_996, ["10.0s", "10.0s", "10.0s"]),
      (999, ["1.0s", "999ms", "1.0s"]),
      (1, ["0.0s", "1ms", "0.0s"]),
      (10_000, ["10s", "10s", "10.0s"]),
      (59_999, ["59s", "1m", "60.0s"]),
      (60_000, ["1m00s", "1m", "1m00s"]),
      (3_599_999, ["59m59s", "1h00m", "59m59s"]),
      (86_400_000, ["24h00m", "24h00m", "24h00m"]),
    ];
    for (millis, expected) in cases {
      let duration = Duration::from_millis(millis);
      let styles = [HumanStyle::Message, HumanStyle::Report, HumanStyle::Clock];
      let shown = styles.map(|style| format_human(duration, style));
      assert_eq!(shown, expected.map(String::from), "{millis}ms");
    }
  }
}
