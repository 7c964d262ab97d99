//! Byte sizes as runbooks write them: `512B`, `64KiB`, `4MiB`, `1GiB` (binary units; a bare
//! number is bytes). [`format_byte_size`] writes the inverse.

/// The largest size a field may name: a body held in memory is at most this.
pub const MAX_BYTE_SIZE: u64 = 1024 * 1024 * 1024;

const UNITS: [(&str, u64); 4] = [
  ("GiB", 1024 * 1024 * 1024),
  ("MiB", 1024 * 1024),
  ("KiB", 1024),
  ("B", 1),
];

/// Parse a size such as `4MiB`: a whole number and an optional unit, at least 1 byte and at
/// most [`MAX_BYTE_SIZE`]. The error says what is wrong, without repeating the input.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
  let text = text.trim();
  let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
  let (number, unit) = text.split_at(digits);
  if number.is_empty() {
    return Err("expected a whole number of bytes, e.g. `512KiB` or `4MiB`".into());
  }
  let scale = match unit.trim() {
    "" => 1,
    unit => UNITS
      .iter()
      .find(|(name, _)| *name == unit)
      .map(|(_, scale)| *scale)
      .ok_or_else(|| format!("unknown unit `{unit}` (use B, KiB, MiB or GiB)"))?,
  };
  let size = number
    .parse::<u64>()
    .ok()
    .and_then(|number| number.checked_mul(scale))
    .filter(|size| *size <= MAX_BYTE_SIZE)
    .ok_or("more than the maximum, 1GiB")?;
  if size == 0 {
    return Err("must be at least 1 byte".into());
  }
  Ok(size)
}

/// `4MiB`, `1536KiB`, `100B`: the largest unit that divides the size exactly.
pub fn format_byte_size(size: u64) -> String {
  let (name, scale) = UNITS
    .iter()
    .find(|(_, scale)| size >= *scale && size.is_multiple_of(*scale))
    .copied()
    .unwrap_or(("B", 1));
  format!("{}{name}", size / scale)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn sizes_parse_in_binary_units_and_format_back() {
    assert_eq!(parse_byte_size("4MiB"), Ok(4 * 1024 * 1024));
    assert_eq!(parse_byte_size("512 KiB"), Ok(512 * 1024));
    assert_eq!(parse_byte_size("100"), Ok(100));
    assert_eq!(parse_byte_size("1GiB"), Ok(MAX_BYTE_SIZE));
    for size in [1, 100, 1024, 1536 * 1024, 4 * 1024 * 1024, MAX_BYTE_SIZE] {
      assert_eq!(parse_byte_size(&format_byte_size(size)), Ok(size));
    }
    assert_eq!(format_byte_size(1024 * 1024), "1MiB");
    assert_eq!(format_byte_size(1536), "1536B");
  }

  #[test]
  fn bad_sizes_say_why() {
    assert!(parse_byte_size("2GiB").unwrap_err().contains("maximum"));
    assert!(parse_byte_size("99999999999999999999")
      .unwrap_err()
      .contains("maximum"));
    assert!(parse_byte_size("4 parsecs")
      .unwrap_err()
      .contains("unknown unit `parsecs`"));
    assert!(parse_byte_size("MiB").unwrap_err().contains("whole number"));
    assert!(parse_byte_size("1.5MiB")
      .unwrap_err()
      .contains("unknown unit `.5MiB`"));
    assert!(parse_byte_size("0")
      .unwrap_err()
      .contains("at least 1 byte"));
  }
}
