//! Drill schedules: 5-field cron expressions (`minute hour day-of-month month day-of-week`) with
//! ranges, lists, steps and names, the macros `@yearly`, `@monthly`, `@weekly`, `@daily` and
//! `@hourly` (and drctl's own `@quarterly`), evaluated in an IANA time zone exactly as Debian's
//! cron (Vixie cron 3.0 with Debian's patches) runs them with `TZ` set to that zone:
//!
//! * Parsing follows entry.c: `*` is the field's whole range (0-7 for day of week, 7 = Sunday),
//!   any positive step, no step after a single value (`5/15` is refused). drctl also refuses a
//!   backwards range (`5-1`), which entry.c accepts as matching nothing.
//! * Day matching follows cron.c's `find_jobs`: when the day-of-month or the day-of-week field
//!   starts with `*` (entry.c's DOM_STAR / DOW_STAR, so `*/3` too) a day must match both;
//!   otherwise either.
//! * Clock changes follow cron.c's main loop, which compares the local minute it wakes at with
//!   the one it expected. A job whose minute or hour field starts with `*` (MIN_STAR / HR_STAR,
//!   and `@hourly`) is a wildcard job; the rest are fixed-time jobs.
//!   - forward by 5-179 minutes (a daylight-saving gap): fixed-time jobs due in the gap run when
//!     it ends, once; wildcard jobs run only on the new time;
//!   - back by at most 180 minutes: fixed-time jobs run in the first pass of the repeated time
//!     only, wildcard jobs in both;
//!   - forward by 1-4 minutes (to cron.c, a late wake-up): everything due in them runs at its end;
//!   - any larger change is a clock jump: nothing skipped is caught up, a repeated time runs again.
//!
//! Fire times are computed, never simulated minute by minute: [`Schedule::next_after`] walks the
//! matching wall-clock minutes from where a clock change could reach back, and
//! [`Schedule::latest_due`] counts whole days at once and resolves minute by minute only the
//! partial days at its ends and the days of a clock change.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Offset, TimeZone, Utc};
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

/// A parsed 5-field expression: one bit per allowed value of each field, and the flags Debian's
/// cron keeps beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
  minutes: u64,
  hours: u64,
  days_of_month: u64,
  months: u64,
  /// Sunday is bit 0 (and 7 is folded onto it).
  days_of_week: u64,
  /// The day-of-month field starts with `*` (`*`, `*/2`): the two day fields are then ANDed.
  dom_star: bool,
  /// The day-of-week field starts with `*`.
  dow_star: bool,
  /// The minute or the hour field starts with `*`: a "wildcard" job, which runs on the new time
  /// across a clock change instead of being caught up or kept from repeating.
  wildcard: bool,
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
    let starred = |index: usize| fields[index].1.starts_with('*');
    Ok(Cron {
      minutes: bits[0],
      hours: bits[1],
      days_of_month: bits[2],
      months: bits[3],
      days_of_week,
      dom_star: starred(2),
      dow_star: starred(4),
      wildcard: starred(0) || starred(1),
    })
  }

  fn matches_day(&self, day: NaiveDate) -> bool {
    if self.months & (1 << day.month()) == 0 {
      return false;
    }
    let dom = self.days_of_month & (1 << day.day()) != 0;
    let dow = self.days_of_week & (1 << day.weekday().num_days_from_sunday()) != 0;
    if self.dom_star || self.dow_star {
      dom && dow
    } else {
      dom || dow
    }
  }

  /// The first matching wall-clock minute at or after `from`, within `limit` (both in minutes of
  /// naive local time since 1970-01-01 00:00).
  fn next_match(&self, from: i64, limit: i64) -> Option<i64> {
    let mut day = from.div_euclid(MINUTES_PER_DAY);
    let mut start = from.rem_euclid(MINUTES_PER_DAY);
    while day * MINUTES_PER_DAY <= limit {
      if self.matches_day(naive_day(day)?) {
        if let Some(at) = self.first_time_from(start) {
          let minute = day * MINUTES_PER_DAY + at;
          return (minute <= limit).then_some(minute);
        }
      }
      day += 1;
      start = 0;
    }
    None
  }

  /// The last matching wall-clock minute at or before `from`, not before `limit`.
  fn prev_match(&self, from: i64, limit: i64) -> Option<i64> {
    let mut day = from.div_euclid(MINUTES_PER_DAY);
    let mut end = from.rem_euclid(MINUTES_PER_DAY);
    while (day + 1) * MINUTES_PER_DAY > limit {
      if self.matches_day(naive_day(day)?) {
        if let Some(at) = self.last_time_until(end) {
          let minute = day * MINUTES_PER_DAY + at;
          return (minute >= limit).then_some(minute);
        }
      }
      day -= 1;
      end = MINUTES_PER_DAY - 1;
    }
    None
  }

  /// The first matching time of day (minutes after midnight) at or after `start`.
  fn first_time_from(&self, start: i64) -> Option<i64> {
    let (hour, minute) = (start / 60, start % 60);
    let first_hour = next_bit(self.hours, hour)?;
    let first_minute = if first_hour == hour {
      match next_bit(self.minutes, minute) {
        Some(minute) => minute,
        None => return next_bit(self.hours, hour + 1).map(|h| h * 60 + self.first_minute()),
      }
    } else {
      self.first_minute()
    };
    Some(first_hour * 60 + first_minute)
  }

  /// The last matching time of day at or before `end`.
  fn last_time_until(&self, end: i64) -> Option<i64> {
    let (hour, minute) = (end / 60, end % 60);
    let last_hour = prev_bit(self.hours, hour)?;
    let last_minute = if last_hour == hour {
      match prev_bit(self.minutes, minute) {
        Some(minute) => minute,
        None => return prev_bit(self.hours, hour - 1).map(|h| h * 60 + self.last_minute()),
      }
    } else {
      self.last_minute()
    };
    Some(last_hour * 60 + last_minute)
  }

  fn first_minute(&self) -> i64 {
    // A parsed field has at least one value: every item sets a bit or is an error.
    i64::from(self.minutes.trailing_zeros())
  }

  fn last_minute(&self) -> i64 {
    63 - i64::from(self.minutes.leading_zeros())
  }

  /// How many times a matching day fires when the clock runs normally.
  fn fires_per_day(&self) -> u64 {
    u64::from(self.hours.count_ones()) * u64::from(self.minutes.count_ones())
  }
}

const MINUTES_PER_DAY: i64 = 24 * 60;

/// The lowest set bit of `mask` at or above `from` (`from` may be past the top).
fn next_bit(mask: u64, from: i64) -> Option<i64> {
  if !(0..64).contains(&from) {
    return None;
  }
  let rest = mask >> from;
  (rest != 0).then(|| from + i64::from(rest.trailing_zeros()))
}

/// The highest set bit of `mask` at or below `from`.
fn prev_bit(mask: u64, from: i64) -> Option<i64> {
  if !(0..64).contains(&from) {
    return None;
  }
  let rest = mask << (63 - from);
  (rest != 0).then(|| from - i64::from(rest.leading_zeros()))
}

fn naive_day(day: i64) -> Option<NaiveDate> {
  NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(Duration::try_days(day)?)
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
  let step_text = step;
  let step = match step {
    None => 1,
    // As in Debian's cron, any positive step: one past the range keeps only its start.
    Some(text) => match text.parse::<u32>() {
      Ok(step) if step >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => step,
      _ => {
        return Err(error(
          step_offset,
          text.chars().count(),
          format!(
            "invalid step `{text}` in the {} field (expected a number from 1)",
            spec.name
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
    if step_text.is_some() {
      // Debian's cron refuses a step after a single value; other crons read `5/15` as `5-max/15`.
      return Err(error(
        offset,
        item.chars().count(),
        format!(
          "a step needs a range: write `{range}-{}/{}` or `*/{}` in the {} field",
          spec.max, step, step, spec.name
        ),
      ));
    }
    (value, value)
  };
  let mut bits = 0u64;
  let mut value = low;
  while value <= high {
    bits |= 1 << value;
    value = value.saturating_add(step);
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
    Ok(value)
      if (spec.min..=spec.max).contains(&value) && text.bytes().all(|b| b.is_ascii_digit()) =>
    {
      Ok(value)
    }
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

/// How far ahead `next_after` looks: the Gregorian calendar repeats every 400 years, so an
/// expression that matches no day in that many (`0 0 31 2 *`) never fires.
const HORIZON_DAYS: i64 = 146_097;

/// How far around an instant a clock change can reach back or ahead (the largest offset changes
/// in the time zone database are a day).
const CHANGE_REACH_HOURS: i64 = 26;

/// Debian's cron classifies a clock change by how far the local minute moved between two
/// wake-ups (one more than the minutes skipped): 6-180 forward, or 0-179 back, is a
/// daylight-saving change (cron.c's "case 2" and "case 0"); 2-5 forward is a late wake-up
/// ("case 1"); anything larger is a clock jump that just runs what matches the new time.
const LATE_WAKEUP_MINUTES: i64 = 5;
const DST_CHANGE_MINUTES: i64 = 180;

/// The instants one matching wall-clock minute fires at, in UTC minutes since the epoch.
struct Resolved {
  /// Its first instant (or, in a gap, where the gap ends): never decreases as the wall-clock
  /// minute increases.
  first: i64,
  /// Its last instant (the second of a repeated minute): never decreases either.
  last: i64,
  fires: [Option<i64>; 2],
}

/// Counts the candidate minutes a search resolves, to keep searches bounded (see the tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct Work {
  pub candidates: u64,
  pub days: u64,
}

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
    self
      .next_minute_after(utc_minute(after), &mut Work::default())
      .and_then(from_utc_minute)
  }

  /// The last fire time at or before `now` that is after `since`, and how many earlier fire times
  /// in that interval it stands for (missed runs that are not caught up). Computed directly: the
  /// work grows with the number of days in the interval, not the number of fire times.
  pub fn latest_due(
    &self,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
  ) -> Option<(DateTime<Utc>, u64)> {
    self.latest_due_counting(since, now, &mut Work::default())
  }

  /// [`Schedule::latest_due`], adding the work it did to `work`.
  pub fn latest_due_counting(
    &self,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    work: &mut Work,
  ) -> Option<(DateTime<Utc>, u64)> {
    let (since, now) = (utc_minute(since), utc_minute(now));
    let due = self.last_minute_between(since, now, work)?;
    let count = self.count_between(since, now, work);
    Some((from_utc_minute(due)?, count.saturating_sub(1)))
  }

  /// The zone's UTC offset at a UTC minute, in whole minutes.
  fn offset(&self, utc: i64) -> i64 {
    let seconds = from_utc_minute(utc).map_or(0, |time| {
      i64::from(
        self
          .zone
          .offset_from_utc_datetime(&time.naive_utc())
          .fix()
          .local_minus_utc(),
      )
    });
    seconds.div_euclid(60)
  }

  fn wall(&self, utc: i64) -> i64 {
    utc + self.offset(utc)
  }

  /// The first fire minute after UTC minute `after`.
  fn next_minute_after(&self, after: i64, work: &mut Work) -> Option<i64> {
    // A clock set back in the coming hours repeats wall-clock minutes before the current one.
    let here = self.offset(after);
    let lowest = (1..=CHANGE_REACH_HOURS)
      .map(|hours| self.offset(after + hours * 60))
      .min()
      .unwrap_or(here);
    let from = self.wall(after) - (here - lowest).max(0);
    let limit = from + HORIZON_DAYS * MINUTES_PER_DAY;
    let mut best: Option<i64> = None;
    let mut wall = self.cron.next_match(from, limit)?;
    loop {
      let resolved = self.resolve(wall, work);
      if best.is_some_and(|best| resolved.first >= best) {
        return best;
      }
      for fire in resolved.fires.into_iter().flatten() {
        if fire > after && best.is_none_or(|best| fire < best) {
          best = Some(fire);
        }
      }
      match self.cron.next_match(wall + 1, limit) {
        Some(next) => wall = next,
        None => return best,
      }
    }
  }

  /// The last fire minute in `(since, now]`.
  fn last_minute_between(&self, since: i64, now: i64, work: &mut Work) -> Option<i64> {
    // A clock set back in the past hours means wall-clock minutes after the current one happened.
    let here = self.offset(now);
    let highest = (1..=CHANGE_REACH_HOURS)
      .map(|hours| self.offset(now - hours * 60))
      .max()
      .unwrap_or(here);
    let from = self.wall(now) + (highest - here).max(0);
    let limit = self.wall(since) - CHANGE_REACH_HOURS * 60;
    let mut best: Option<i64> = None;
    let mut wall = self.cron.prev_match(from, limit)?;
    loop {
      let resolved = self.resolve(wall, work);
      if resolved.last <= since || best.is_some_and(|best| resolved.last <= best) {
        return best;
      }
      for fire in resolved.fires.into_iter().flatten() {
        if fire > since && fire <= now && best.is_none_or(|best| fire > best) {
          best = Some(fire);
        }
      }
      match self.cron.prev_match(wall - 1, limit) {
        Some(next) => wall = next,
        None => return best,
      }
    }
  }

  /// How many distinct fire minutes fall in `(since, now]`. A day whose clock runs normally and
  /// that lies wholly inside counts its matches at once; the others (the ends, clock changes) are
  /// resolved minute by minute.
  fn count_between(&self, since: i64, now: i64, work: &mut Work) -> u64 {
    if now <= since {
      return 0;
    }
    let reach = CHANGE_REACH_HOURS * 60;
    let first_day = (self.wall(since) - reach).div_euclid(MINUTES_PER_DAY);
    let last_day = (self.wall(now) + reach).div_euclid(MINUTES_PER_DAY);
    let mut count = 0u64;
    let mut resolved_fires = std::collections::BTreeSet::new();
    for day in first_day..=last_day {
      work.days += 1;
      let Some(date) = naive_day(day) else { continue };
      if !self.cron.matches_day(date) {
        continue;
      }
      let start = day * MINUTES_PER_DAY;
      if let Some((first, last)) = self.plain_day(start) {
        if first > since && last <= now {
          count += self.cron.fires_per_day();
          continue;
        }
        if last <= since || first > now {
          continue;
        }
      }
      let end = start + MINUTES_PER_DAY - 1;
      let mut wall = self.cron.next_match(start, end);
      while let Some(minute) = wall {
        let resolved = self.resolve(minute, work);
        for fire in resolved.fires.into_iter().flatten() {
          if fire > since && fire <= now {
            resolved_fires.insert(fire);
          }
        }
        wall = self.cron.next_match(minute + 1, end);
      }
    }
    count + resolved_fires.len() as u64
  }

  /// For a day (its first wall-clock minute) on which the clock runs normally, before, through and
  /// right after it: its first and last minute as UTC minutes.
  fn plain_day(&self, start: i64) -> Option<(i64, i64)> {
    let offset = self.offset(start - self.offset(start));
    let first = start - offset;
    let last = first + MINUTES_PER_DAY - 1;
    let steady = [first - 1, first + MINUTES_PER_DAY / 2, last, last + 1]
      .iter()
      .all(|&utc| self.offset(utc) == offset);
    steady.then_some((first, last))
  }

  /// Where a matching wall-clock minute fires, as Debian's cron does when its clock changes:
  /// * a minute that happens once fires then;
  /// * a minute that happens twice (the clock went back at most 3 hours) fires the first time,
  ///   and the second time too for a wildcard job;
  /// * a minute that does not happen (the clock went forward) fires when the gap ends, except
  ///   for a wildcard job in a daylight-saving gap (over 5 minutes, under 3 hours), and except
  ///   in a larger jump, where nothing is caught up.
  fn resolve(&self, wall: i64, work: &mut Work) -> Resolved {
    work.candidates += 1;
    let wildcard = self.cron.wildcard;
    // Each offset the zone has around this wall time gives a candidate instant; those whose
    // offset is in force then are where the wall time happens.
    let around = [self.offset(wall - self.offset(wall)), self.offset(wall)];
    let mut instants: Vec<i64> = (-CHANGE_REACH_HOURS..=CHANGE_REACH_HOURS)
      .step_by(CHANGE_REACH_HOURS as usize)
      .map(|hours| self.offset(wall - hours * 60))
      .chain(around)
      .map(|offset| wall - offset)
      .filter(|&utc| self.wall(utc) == wall)
      .collect();
    instants.sort_unstable();
    instants.dedup();
    match instants.as_slice() {
      [] => {
        // In a gap: it ends at the first minute whose wall-clock time is past this one.
        let end = self.gap_end(wall);
        let jump = self.wall(end) - self.wall(end - 1) - 1;
        let fires = if jump < LATE_WAKEUP_MINUTES || (!wildcard && jump < DST_CHANGE_MINUTES) {
          Some(end)
        } else {
          None
        };
        Resolved {
          first: end,
          last: end,
          fires: [fires, None],
        }
      }
      [once] => Resolved {
        first: *once,
        last: *once,
        fires: [Some(*once), None],
      },
      [first, .., last] => {
        let back = self.offset(*first) - self.offset(*last);
        let again = wildcard || back > DST_CHANGE_MINUTES;
        Resolved {
          first: *first,
          last: *last,
          fires: [Some(*first), again.then_some(*last)],
        }
      }
    }
  }

  /// The first UTC minute whose wall-clock time is after `wall`, for a wall time in a gap.
  fn gap_end(&self, wall: i64) -> i64 {
    // Before the gap the wall clock is behind `wall`, after it ahead: bisect between.
    let mut low = wall - self.offset(wall - CHANGE_REACH_HOURS * 60) - 1;
    let mut high = wall - self.offset(wall + CHANGE_REACH_HOURS * 60) + 1;
    if low > high {
      std::mem::swap(&mut low, &mut high);
    }
    while self.wall(low) > wall && low > high - 4 * CHANGE_REACH_HOURS * 60 {
      low -= 60;
    }
    while self.wall(high) <= wall && high < low + 4 * CHANGE_REACH_HOURS * 60 {
      high += 60;
    }
    while high - low > 1 {
      let middle = low + (high - low) / 2;
      if self.wall(middle) > wall {
        high = middle;
      } else {
        low = middle;
      }
    }
    high
  }
}

/// An instant as whole minutes since the epoch (rounded down).
fn utc_minute(time: DateTime<Utc>) -> i64 {
  time.timestamp().div_euclid(60)
}

fn from_utc_minute(minute: i64) -> Option<DateTime<Utc>> {
  DateTime::from_timestamp(minute.checked_mul(60)?, 0)
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
      fires("5-59/30 0 1 1 *", Tz::UTC, "2026-01-01T00:00:00Z", 2),
      ["2026-01-01T00:05:00+00:00", "2026-01-01T00:35:00+00:00"]
    );
    // A step past the range keeps its start, as in Debian's cron.
    assert_eq!(
      fires("*/60 */24 1 1 *", Tz::UTC, "2026-01-01T00:00:00Z", 1),
      ["2027-01-01T00:00:00+00:00"]
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
  fn a_day_field_starting_with_a_star_is_anded_with_the_other() {
    // `*/3` in day-of-week starts with `*`: both day fields must match (a 10th that is a Sunday,
    // Wednesday or Saturday), not either. 2026-03-11 is the next Wednesday.
    assert_eq!(
      fires("1 10 10 * */3", Tz::UTC, "2026-03-01T00:00:00Z", 3),
      [
        "2026-05-10T10:01:00+00:00",
        "2026-06-10T10:01:00+00:00",
        "2026-10-10T10:01:00+00:00"
      ]
    );
    // The same in day-of-month: `*/2` and Monday means odd days that are Mondays.
    assert_eq!(
      fires("0 0 */2 * mon", Tz::UTC, "2026-03-01T00:00:00Z", 2),
      ["2026-03-09T00:00:00+00:00", "2026-03-23T00:00:00+00:00"]
    );
    // Neither starts with `*`: either matches.
    assert_eq!(
      fires("0 0 10 * wed", Tz::UTC, "2026-03-01T00:00:00Z", 2),
      ["2026-03-04T00:00:00+00:00", "2026-03-10T00:00:00+00:00"]
    );
  }

  #[test]
  fn new_york_spring_forward_2026_03_08() {
    let zone = chrono_tz::America::New_York;
    // 02:00-02:59 EST does not exist: a fixed-time job due then runs when the gap ends, 03:00 EDT.
    assert_eq!(
      fires("30 2 * * *", zone, "2026-03-07T12:00:00Z", 2),
      ["2026-03-08T07:00:00+00:00", "2026-03-09T06:30:00+00:00"]
    );
    // A job whose minute or hour field starts with `*` runs on the new time: 02:30 is skipped,
    // 03:30 EDT runs as usual.
    assert_eq!(
      fires("30 * * * *", zone, "2026-03-08T06:00:00Z", 3),
      [
        "2026-03-08T06:30:00+00:00",
        "2026-03-08T07:30:00+00:00",
        "2026-03-08T08:30:00+00:00"
      ]
    );
    assert_eq!(
      fires("*/20 2 * * *", zone, "2026-03-08T06:00:00Z", 2),
      ["2026-03-09T06:00:00+00:00", "2026-03-09T06:20:00+00:00"]
    );
  }

  #[test]
  fn new_york_fall_back_2026_11_01() {
    let zone = chrono_tz::America::New_York;
    // 01:00-01:59 happens twice: a fixed-time job runs once, in the first (EDT).
    assert_eq!(
      fires("30 1 * * *", zone, "2026-10-31T12:00:00Z", 2),
      ["2026-11-01T05:30:00+00:00", "2026-11-02T06:30:00+00:00"]
    );
    // Starting inside the repeated hour, it does not run again that day.
    assert_eq!(
      fires("45 1 * * *", zone, "2026-11-01T06:10:00Z", 1),
      ["2026-11-02T06:45:00+00:00"]
    );
    // A job whose minute or hour field starts with `*` runs in both.
    assert_eq!(
      fires("30 * * * *", zone, "2026-11-01T05:00:00Z", 3),
      [
        "2026-11-01T05:30:00+00:00",
        "2026-11-01T06:30:00+00:00",
        "2026-11-01T07:30:00+00:00"
      ]
    );
    assert_eq!(
      fires("*/30 1 * * *", zone, "2026-11-01T05:00:00Z", 5),
      [
        "2026-11-01T05:30:00+00:00",
        "2026-11-01T06:00:00+00:00",
        "2026-11-01T06:30:00+00:00",
        "2026-11-02T06:00:00+00:00",
        "2026-11-02T06:30:00+00:00"
      ]
    );
  }

  #[test]
  fn latest_due_of_a_minutely_drill_six_months_behind_is_computed_directly() {
    let schedule = Schedule::new("* * * * *", chrono_tz::America::New_York).unwrap();
    let since = utc("2026-01-01T00:00:30Z");
    let now = utc("2026-07-01T12:34:56Z");
    let mut work = Work::default();
    let (due, skipped) = schedule.latest_due_counting(since, now, &mut work).unwrap();
    assert_eq!(due, utc("2026-07-01T12:34:00Z"));
    // Every minute in between fires once: 2026-03-08 loses an hour of wall-clock time, but a
    // wildcard job simply runs on the new time.
    let minutes = (utc("2026-07-01T12:34:00Z") - utc("2026-01-01T00:01:00Z")).num_minutes() + 1;
    assert_eq!(skipped, minutes as u64 - 1);
    // 260,000 fire times, decided from a few thousand candidates (the partial days at both ends,
    // and the day of the clock change), not one per fire time.
    assert!(work.candidates < 6_000, "{work:?}");
    assert!(work.days < 200, "{work:?}");
  }

  #[test]
  fn latest_due_counts_a_fixed_job_once_across_both_changes() {
    // 02:30 does not exist on 2026-03-08 (it runs at 03:00) and 01:30 twice on 2026-11-01 (it
    // runs once): 365 days, 365 fire times.
    let schedule = Schedule::new("30 1,2 * * *", chrono_tz::America::New_York).unwrap();
    let (due, skipped) = schedule
      .latest_due(utc("2026-01-01T12:00:00Z"), utc("2027-01-01T12:00:00Z"))
      .unwrap();
    assert_eq!(due, utc("2027-01-01T07:30:00Z"));
    assert_eq!(skipped, 2 * 365 - 1);
    // In the missing hour, the fixed-time job's two minutes run once, at 03:00; the wildcard
    // job's do not run. Both run twice on 2026-03-09.
    let (since, now) = (utc("2026-03-07T12:00:00Z"), utc("2026-03-09T12:00:00Z"));
    let fixed = Schedule::new("0,30 2 * * *", chrono_tz::America::New_York).unwrap();
    assert_eq!(fixed.latest_due(since, now).unwrap().1, 3 - 1);
    let wildcard = Schedule::new("*/30 2 * * *", chrono_tz::America::New_York).unwrap();
    assert_eq!(wildcard.latest_due(since, now).unwrap().1, 2 - 1);
    // In the repeated hour the wildcard job runs twice: every UTC hour has its :30.
    let hourly = Schedule::new("30 * * * *", chrono_tz::America::New_York).unwrap();
    let (_, skipped) = hourly
      .latest_due(utc("2026-10-31T12:00:00Z"), utc("2026-11-02T12:00:00Z"))
      .unwrap();
    assert_eq!(skipped, 48 - 1);
  }

  #[test]
  fn a_half_hour_daylight_saving_change() {
    // Lord Howe Island moves its clocks by 30 minutes: 02:00 becomes 02:30 on 2026-10-04.
    let zone = chrono_tz::Australia::Lord_Howe;
    assert_eq!(
      fires("15 2 * * *", zone, "2026-10-03T12:00:00Z", 1),
      ["2026-10-03T15:30:00+00:00"]
    );
    // 01:15 (14:45 UTC) runs, 02:15 does not exist, 03:15 runs on the new time.
    assert_eq!(
      fires("15 * * * *", zone, "2026-10-03T14:00:00Z", 2),
      ["2026-10-03T14:45:00+00:00", "2026-10-03T16:15:00+00:00"]
    );
  }

  #[test]
  fn a_clock_change_at_quarter_to() {
    // The Chatham Islands (UTC+12:45) go from 02:45 to 03:45 on 2028-09-24, a Sunday: a
    // wildcard job for hour 3 runs from 03:45, on the new time.
    let zone = chrono_tz::Pacific::Chatham;
    assert_eq!(
      fires("* 3 * * */6", zone, "2028-09-23T02:45:29Z", 2),
      ["2028-09-23T14:00:00+00:00", "2028-09-23T14:01:00+00:00"]
    );
    // A fixed-time job due at 03:00 runs when the gap ends.
    assert_eq!(
      fires("0 3 * * *", zone, "2028-09-23T02:45:29Z", 2),
      ["2028-09-23T14:00:00+00:00", "2028-09-24T13:15:00+00:00"]
    );
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
    // Debian's cron refuses a step after a single value (others read it as `5-59/15`).
    let error = Cron::parse("0 5/15 * * *").unwrap_err();
    assert_eq!((error.offset, error.width), (2, 4));
    assert_eq!(
      error.message,
      "a step needs a range: write `5-23/15` or `*/15` in the hour field"
    );
    assert!(Cron::parse("+5 * * * *").is_err());
    let error = Cron::parse("0 0 * *").unwrap_err();
    assert!(error.message.starts_with("expected 5 fields"));
    let error = Cron::parse("@yearlyy").unwrap_err();
    assert!(error.message.starts_with("unknown macro"));
    assert!(Cron::parse("0 5-1 * * *").is_err());
  }
}
