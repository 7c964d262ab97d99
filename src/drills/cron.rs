//! Drill schedules: 5-field cron expressions (`minute hour day-of-month month day-of-week`) with
//! ranges, lists, steps and names, the macros `@yearly`, `@quarterly`, `@monthly`, `@weekly`,
//! `@daily` and `@hourly`, evaluated in an IANA time zone.
//!
//! Day matching follows Vixie cron: when both day-of-month and day-of-week are restricted, a
//! day matches if either does. Daylight-saving transitions, in the schedule's zone:
//! * a local time that happens twice (autumn) fires once, at its first occurrence;
//! * a local time that does not exist (spring) fires when the gap ends (02:30 → 03:00).

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A cron expression that failed to parse: what is wrong and where, as a character offset and
/// width inside the expression, so a diagnostic can underline the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
  pub offset: usize,
  pub width: usize,
  pub message: String,
}

impl fmt::Display for CronError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&self.message)
  }
}

/// The macros and what they stand for.
pub const MACROS: &[(&str, &str)] = &[
  ("@yearly", "0 0 1 1 *"),
  ("@annually", "0 0 1 1 *"),
  ("@quarterly", "0 0 1 1,4,7,10 *"),
  ("@monthly", "0 0 1 * *"),
  ("@weekly", "0 0 * * 0"),
  ("@daily", "0 0 * * *"),
  ("@midnight", "0 0 * * *"),
  ("@hourly", "0 * * * *"),
];

pub const MONTHS: &[&str] = &[
  "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
pub const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct FieldSpec {
  name: &'static str,
  min: u32,
  max: u32,
  names: &'static [&'static str],
  /// The value the first name stands for.
  names_from: u32,
}

const FIELDS: [FieldSpec; 5] = [
  FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_from: 0,
  },
  FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_from: 0,
  },
  FieldSpec {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    names_from: 0,
  },
  FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: MONTHS,
    names_from: 1,
  },
  FieldSpec {
    name: "day of week",
    min: 0,
    max: 7,
    names: DAYS,
    names_from: 0,
  },
];

/// A parsed 5-field expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
  minutes: u64,
  hours: u64,
  days_of_month: u64,
  months: u64,
  /// Sunday is bit 0 (and 7 is folded onto it).
  days_of_week: u64,
  dom_restricted: bool,
  dow_restricted: bool,
}

impl Cron {
  /// Parse `m h dom mon dow` or a macro.
  pub fn parse(text: &str) -> Result<Cron, CronError> {
    let trimmed = text.trim_start();
    let lead = text.chars().count() - trimmed.chars().count();
    if trimmed.starts_with('@') {
      let word = trimmed.trim_end();
      return match MACROS.iter().find(|(name, _)| *name == word) {
        Some((_, expansion)) => Cron::parse(expansion),
        None => Err(CronError {
          offset: lead,
          width: word.chars().count(),
          message: format!(
            "unknown macro `{word}` (use one of {})",
            MACROS
              .iter()
              .map(|(name, _)| format!("`{name}`"))
              .collect::<Vec<_>>()
              .join(", ")
          ),
        }),
      };
    }
    let fields = split_fields(text);
    if fields.len() != 5 {
      return Err(CronError {
        offset: fields.get(5).map_or(lead, |(offset, _)| *offset),
        width: fields
          .get(5)
          .map_or(text.chars().count().max(1), |(_, f)| f.chars().count()),
        message: format!(
          "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
          fields.len()
        ),
      });
    }
    let mut bits = [0u64; 5];
    for (index, (offset, field)) in fields.iter().enumerate() {
      bits[index] = parse_field(field, *offset, &FIELDS[index])?;
    }
    let mut days_of_week = bits[4];
    if days_of_week & (1 << 7) != 0 {
      days_of_week = (days_of_week & !(1 << 7)) | 1;
    }
    Ok(Cron {
      minutes: bits[0],
      hours: bits[1],
      days_of_month: bits[2],
      months: bits[3],
      days_of_week,
      dom_restricted: fields[2].1 != "*",
      dow_restricted: fields[4].1 != "*",
    })
  }

  fn matches_day(&self, day: NaiveDate) -> bool {
    if self.months & (1 << day.month()) == 0 {
      return false;
    }
    let dom = self.days_of_month & (1 << day.day()) != 0;
    let dow = self.days_of_week & (1 << day.weekday().num_days_from_sunday()) != 0;
    match (self.dom_restricted, self.dow_restricted) {
      (true, true) => dom || dow,
      _ => dom && dow,
    }
  }
}

/// The fields of an expression with their character offsets.
fn split_fields(text: &str) -> Vec<(usize, String)> {
  let mut fields = Vec::new();
  let mut current: Option<(usize, String)> = None;
  for (index, c) in text.chars().enumerate() {
    if c.is_whitespace() {
      if let Some(field) = current.take() {
        fields.push(field);
      }
    } else {
      current
        .get_or_insert_with(|| (index, String::new()))
        .1
        .push(c);
    }
  }
  fields.extend(current);
  fields
}

fn parse_field(field: &str, offset: usize, spec: &FieldSpec) -> Result<u64, CronError> {
  let mut bits = 0u64;
  let mut item_offset = offset;
  for item in field.split(',') {
    bits |= parse_item(item, item_offset, spec)?;
    item_offset += item.chars().count() + 1;
  }
  Ok(bits)
}

fn parse_item(item: &str, offset: usize, spec: &FieldSpec) -> Result<u64, CronError> {
  let error = |at: usize, width: usize, message: String| CronError {
    offset: at,
    width: width.max(1),
    message,
  };
  if item.is_empty() {
    return Err(error(
      offset,
      1,
      format!("empty item in the {} field", spec.name),
    ));
  }
  let (range, step) = match item.split_once('/') {
    Some((range, step)) => (range, Some(step)),
    None => (item, None),
  };
  let step_offset = offset + range.chars().count() + 1;
  let step = match step {
    None => 1,
    Some(text) => match text.parse::<u32>() {
      Ok(step) if step >= 1 && step <= spec.max => step,
      _ => {
        return Err(error(
          step_offset,
          text.chars().count(),
          format!(
            "invalid step `{text}` in the {} field (expected 1-{})",
            spec.name, spec.max
          ),
        ))
      }
    },
  };
  let (low, high) = if range == "*" {
    (spec.min, spec.max)
  } else if let Some((low, high)) = range.split_once('-') {
    let low_value = parse_value(low, offset, spec)?;
    let high_value = parse_value(high, offset + low.chars().count() + 1, spec)?;
    if high_value < low_value {
      return Err(error(
        offset,
        range.chars().count(),
        format!("range `{range}` in the {} field runs backwards", spec.name),
      ));
    }
    (low_value, high_value)
  } else {
    let value = parse_value(range, offset, spec)?;
    // `5/15` means "from 5, every 15".
    (value, if step > 1 { spec.max } else { value })
  };
  let mut bits = 0u64;
  let mut value = low;
  while value <= high {
    bits |= 1 << value;
    value += step;
  }
  Ok(bits)
}

fn parse_value(text: &str, offset: usize, spec: &FieldSpec) -> Result<u32, CronError> {
  let lower = text.to_ascii_lowercase();
  if let Some(index) = spec.names.iter().position(|name| *name == lower) {
    // Names are a handful of entries: the index fits in u32.
    return Ok(spec.names_from + index as u32);
  }
  match text.parse::<u32>() {
    Ok(value) if (spec.min..=spec.max).contains(&value) => Ok(value),
    _ => Err(CronError {
      offset,
      width: text.chars().count().max(1),
      message: format!(
        "`{text}` is not a valid {} (expected {}-{}{})",
        spec.name,
        spec.min,
        spec.max,
        if spec.names.is_empty() {
          String::new()
        } else {
          format!(" or a name such as `{}`", spec.names[0])
        }
      ),
    }),
  }
}

/// When a drill fires: a cron expression in a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
  /// As written (`@quarterly`, `30 6 * * mon-fri`).
  pub expression: String,
  pub cron: Cron,
  pub zone: Tz,
}

/// How far ahead `next_after` looks: a valid expression that matches no day in this many
/// years (`0 0 31 2 *`) never fires.
const HORIZON_DAYS: u32 = 366 * 8;

impl Schedule {
  pub fn new(expression: &str, zone: Tz) -> Result<Schedule, CronError> {
    Ok(Schedule {
      expression: expression.trim().to_string(),
      cron: Cron::parse(expression)?,
      zone,
    })
  }

  /// The first fire time strictly after `after`; `None` when it never fires again.
  pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut day = after.with_timezone(&self.zone).date_naive();
    // Start a day early: the local date of `after` may be past a fire time the zone maps later.
    day = day.pred_opt().unwrap_or(day);
    for _ in 0..HORIZON_DAYS {
      if self.cron.matches_day(day) {
        for hour in (0..24).filter(|hour| self.cron.hours & (1 << hour) != 0) {
          for minute in (0..60).filter(|minute| self.cron.minutes & (1 << minute) != 0) {
            let Some(local) = day.and_hms_opt(hour, minute, 0) else {
              continue;
            };
            if let Some(instant) = self.resolve(local) {
              if instant > after {
                return Some(instant);
              }
            }
          }
        }
      }
      day = day.succ_opt()?;
    }
    None
  }

  /// The last fire time at or before `now` that is after `since`, and how many earlier fire times
  /// in that interval it stands for (missed runs that are not caught up).
  pub fn latest_due(
    &self,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
  ) -> Option<(DateTime<Utc>, u64)> {
    let mut latest = None;
    let mut count = 0u64;
    let mut cursor = since;
    while let Some(next) = self.next_after(cursor) {
      if next > now {
        break;
      }
      latest = Some(next);
      count += 1;
      cursor = next;
    }
    latest.map(|due| (due, count.saturating_sub(1)))
  }

  /// A local time to an instant: the first of two (autumn), the end of the gap (spring).
  fn resolve(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match self.zone.from_local_datetime(&local) {
      chrono::LocalResult::Single(time) => Some(time.with_timezone(&Utc)),
      chrono::LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
      chrono::LocalResult::None => (1..=180).find_map(|minutes| {
        match self
          .zone
          .from_local_datetime(&(local + Duration::minutes(minutes)))
        {
          chrono::LocalResult::Single(time) => Some(time.with_timezone(&Utc)),
          chrono::LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
          chrono::LocalResult::None => None,
        }
      }),
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
      .unwrap()
      .with_timezone(&Utc)
  }

  fn fires(expression: &str, zone: Tz, from: &str, count: usize) -> Vec<String> {
    let schedule = Schedule::new(expression, zone).unwrap();
    let mut at = utc(from);
    (0..count)
      .map(|_| {
        at = schedule.next_after(at).unwrap();
        at.to_rfc3339()
      })
      .collect()
  }

  #[test]
  fn quarterly_is_midnight_on_the_first_of_jan_apr_jul_oct() {
    assert_eq!(
      fires("@quarterly", Tz::UTC, "2026-02-10T12:00:00Z", 4),
      [
        "2026-04-01T00:00:00+00:00",
        "2026-07-01T00:00:00+00:00",
        "2026-10-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00"
      ]
    );
  }

  #[test]
  fn macros() {
    assert_eq!(
      fires("@monthly", Tz::UTC, "2026-01-31T00:00:00Z", 1),
      ["2026-02-01T00:00:00+00:00"]
    );
    // 2026-01-04 is a Sunday.
    assert_eq!(
      fires("@weekly", Tz::UTC, "2026-01-01T00:00:00Z", 2),
      ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]
    );
    assert_eq!(
      fires("@daily", Tz::UTC, "2026-01-01T00:00:00Z", 1),
      ["2026-01-02T00:00:00+00:00"]
    );
  }

  #[test]
  fn ranges_lists_steps_and_names() {
    assert_eq!(
      fires("*/20 9-10 * * *", Tz::UTC, "2026-03-02T09:30:00Z", 4),
      [
        "2026-03-02T09:40:00+00:00",
        "2026-03-02T10:00:00+00:00",
        "2026-03-02T10:20:00+00:00",
        "2026-03-02T10:40:00+00:00"
      ]
    );
    // 2026-03-06 is a Friday: mon-fri skips the weekend.
    assert_eq!(
      fires("0 6 * * mon-fri", Tz::UTC, "2026-03-06T07:00:00Z", 1),
      ["2026-03-09T06:00:00+00:00"]
    );
    assert_eq!(
      fires("15 3 1,15 JAN,jul *", Tz::UTC, "2026-01-02T00:00:00Z", 3),
      [
        "2026-01-15T03:15:00+00:00",
        "2026-07-01T03:15:00+00:00",
        "2026-07-15T03:15:00+00:00"
      ]
    );
    assert_eq!(
      fires("5/30 0 1 1 *", Tz::UTC, "2026-01-01T00:00:00Z", 2),
      ["2026-01-01T00:05:00+00:00", "2026-01-01T00:35:00+00:00"]
    );
    // Sunday as 7; day-of-month or day-of-week when both are restricted.
    assert_eq!(
      fires("0 0 13 * 7", Tz::UTC, "2026-03-01T01:00:00Z", 2),
      ["2026-03-08T00:00:00+00:00", "2026-03-13T00:00:00+00:00"]
    );
  }

  #[test]
  fn time_zones_and_daylight_saving() {
    // 06:00 in Berlin is 05:00 UTC in winter and 04:00 UTC in summer (DST from 2026-03-29).
    assert_eq!(
      fires(
        "0 6 * * *",
        chrono_tz::Europe::Berlin,
        "2026-03-27T12:00:00Z",
        3
      ),
      [
        "2026-03-28T05:00:00+00:00",
        "2026-03-29T04:00:00+00:00",
        "2026-03-30T04:00:00+00:00"
      ]
    );
    // 02:30 does not exist on 2026-03-29 in Berlin: it fires when the gap ends (03:00 CEST).
    assert_eq!(
      fires(
        "30 2 * * *",
        chrono_tz::Europe::Berlin,
        "2026-03-28T12:00:00Z",
        2
      ),
      ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"]
    );
    // 02:30 happens twice on 2026-10-25: it fires once, at the first.
    assert_eq!(
      fires(
        "30 2 * * *",
        chrono_tz::Europe::Berlin,
        "2026-10-24T12:00:00Z",
        2
      ),
      ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    );
  }

  #[test]
  fn latest_due_counts_missed_fires() {
    let schedule = Schedule::new("@quarterly", Tz::UTC).unwrap();
    let (due, skipped) = schedule
      .latest_due(utc("2026-01-15T00:00:00Z"), utc("2026-11-01T00:00:00Z"))
      .unwrap();
    assert_eq!(due, utc("2026-10-01T00:00:00Z"));
    assert_eq!(skipped, 2);
    assert!(schedule
      .latest_due(utc("2026-01-15T00:00:00Z"), utc("2026-03-01T00:00:00Z"))
      .is_none());
  }

  #[test]
  fn errors_point_at_the_field() {
    let error = Cron::parse("0 25 * * *").unwrap_err();
    assert_eq!((error.offset, error.width), (2, 2));
    assert_eq!(error.message, "`25` is not a valid hour (expected 0-23)");
    let error = Cron::parse("0 0 1 1,foo *").unwrap_err();
    assert_eq!((error.offset, error.width), (8, 3));
    let error = Cron::parse("*/0 * * * *").unwrap_err();
    assert_eq!((error.offset, error.width), (2, 1));
    let error = Cron::parse("0 0 * *").unwrap_err();
    assert!(error.message.starts_with("expected 5 fields"));
    let error = Cron::parse("@yearlyy").unwrap_err();
    assert!(error.message.starts_with("unknown macro"));
    assert!(Cron::parse("0 5-1 * * *").is_err());
  }
}
