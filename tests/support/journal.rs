//! An independent reader of run journals, for tests that must not trust the code under test to
//! judge its own output: every line is checked against its CRC-32 and the sequence must be
//! contiguous from 1.

use std::path::Path;

/// One journal line as written: its sequence number, event name, step (if any) and exact text
/// (with its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
  pub seq: u64,
  pub event: String,
  pub step: Option<String>,
  pub text: String,
}

/// What is wrong with a line, if anything: `Ok` holds the decoded line.
fn decode(text: &str) -> Result<Line, String> {
  let body = text
    .strip_suffix('\n')
    .ok_or_else(|| "no newline (torn)".to_string())?;
  let mut value: serde_json::Value =
    serde_json::from_str(body).map_err(|err| format!("not JSON: {err}"))?;
  let map = value.as_object_mut().ok_or("not an object")?;
  let crc = map
    .remove("crc")
    .and_then(|crc| crc.as_str().map(str::to_owned))
    .ok_or("no crc")?;
  let content = serde_json::to_string(&value).map_err(|err| err.to_string())?;
  let actual = format!("{:08x}", crc32fast::hash(content.as_bytes()));
  if actual != crc {
    return Err(format!("crc {crc} does not match the content ({actual})"));
  }
  let seq = value["seq"].as_u64().ok_or("no seq")?;
  let event = value["event"].as_str().ok_or("no event")?.to_owned();
  let step = value["step"].as_str().map(str::to_owned);
  Ok(Line {
    seq,
    event,
    step,
    text: text.to_owned(),
  })
}

/// The durable records of a journal that a process may have been killed writing: every complete
/// line with a valid checksum, stopping at the first that is not (a torn tail). Missing file:
/// no records.
pub fn durable(path: &Path) -> Vec<Line> {
  let Ok(bytes) = std::fs::read(path) else {
    return Vec::new();
  };
  let text = String::from_utf8_lossy(&bytes);
  text
    .split_inclusive('\n')
    .map_while(|line| decode(line).ok())
    .collect()
}

/// A finished journal, checked strictly: every line complete with a valid checksum, sequence
/// numbers 1, 2, 3, ... `Err` says which line breaks which rule.
pub fn strict(path: &Path) -> Result<Vec<Line>, String> {
  let bytes = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
  let text = String::from_utf8(bytes).map_err(|err| format!("not UTF-8: {err}"))?;
  let mut lines = Vec::new();
  for (index, raw) in text.split_inclusive('\n').enumerate() {
    let line = decode(raw).map_err(|err| format!("line {}: {err}", index + 1))?;
    if line.seq != index as u64 + 1 {
      return Err(format!(
        "line {}: seq {} breaks the sequence",
        index + 1,
        line.seq
      ));
    }
    lines.push(line);
  }
  if lines.is_empty() {
    return Err("empty journal".into());
  }
  Ok(lines)
}

/// How many of `before` (records seen durable earlier) are not in `after` at the same position,
/// byte for byte.
pub fn lost(before: &[Line], after: &[Line]) -> usize {
  before
    .iter()
    .filter(|line| {
      after
        .get(line.seq.saturating_sub(1) as usize)
        .is_none_or(|kept| kept.text != line.text)
    })
    .count()
}
