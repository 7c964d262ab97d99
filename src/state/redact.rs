//! Secrets never reach stdout, stderr, logs, journals or reports: everything that leaves the
//! process through drctl's own writers passes through a [`Redactor`].
//!
//! Invariants:
//! * Every form a secret can take in text is replaced by `***`: raw, JSON-escaped, URL-encoded
//!   (percent-encoding with either case of hex digits, and form encoding) and base64 (standard
//!   and URL-safe alphabets, at each of the three alignments a secret can have inside a longer
//!   encoded text: the characters that depend on the secret alone).
//! * A journal record is redacted string by string, keys included, and then its serialized line
//!   is checked: if any form of any secret is still there, [`Redactor::redact_record`] refuses
//!   the record ([`Leak`]). Nothing falls back to the unredacted record: the caller stops the
//!   run (fail closed).
//! * That check can only fail for a secret that also occurs in what redaction cannot touch:
//!   numbers, timestamps, checksums, run ids, JSON keys, event and status names, step ids. Such
//!   a secret (and any shorter than [`MIN_SECRET_LEN`]) is refused before a run starts by
//!   [`Redactor::refuse_unsafe`], which names the secret, never its value.

use std::sync::Arc;

use super::{
  control::IdentityVia,
  journal::{Event, Phase, Record, RunMode, RunStatus, StepError, StepInfo},
};

/// What a redacted secret is replaced by.
pub const MASK: &str = "***";

/// Secrets shorter than this (in bytes) cannot be redacted without mangling ordinary text, and
/// their base64 forms are too short to recognise: a run that references one is refused.
pub const MIN_SECRET_LEN: usize = 4;

/// A secret that cannot be redacted safely, named (`secrets.X` or `params.x`) but not shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret `{name}` cannot be redacted safely: {reason}; use a longer, more specific value")]
pub struct UnsafeSecret {
  pub name: String,
  pub reason: String,
}

/// A record that still holds a form of a secret after redaction: it must not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a record still holds secret `{name}` ({form}) after redaction; it was not written")]
pub struct Leak {
  pub name: String,
  pub form: FormKind,
}

/// How a secret is spelled in some text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
  Raw,
  JsonEscaped,
  UrlEncoded,
  Base64,
}

impl std::fmt::Display for FormKind {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str(match self {
      FormKind::Raw => "raw",
      FormKind::JsonEscaped => "JSON-escaped",
      FormKind::UrlEncoded => "URL-encoded",
      FormKind::Base64 => "base64",
    })
  }
}

#[derive(Debug)]
struct Form {
  text: String,
  kind: FormKind,
  /// Index into `Redactor::names`.
  secret: usize,
}

/// Replaces every form of every known secret with `***`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
  /// Longest first, so a form that contains another is replaced whole.
  forms: Arc<Vec<Form>>,
  /// Each secret's name and value (the value only for [`Redactor::refuse_unsafe`]).
  secrets: Arc<Vec<(String, String)>>,
}

impl Redactor {
  /// A redactor for these secrets, each `(name, value)`; empty values are ignored (there is
  /// nothing to leak).
  pub fn new(secrets: impl IntoIterator<Item = (String, String)>) -> Redactor {
    let secrets: Vec<(String, String)> = secrets
      .into_iter()
      .filter(|(_, value)| !value.is_empty())
      .collect();
    let mut forms: Vec<Form> = secrets
      .iter()
      .enumerate()
      .flat_map(|(index, (_, value))| {
        forms_of(value).into_iter().map(move |(kind, text)| Form {
          text,
          kind,
          secret: index,
        })
      })
      .collect();
    forms.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.text.cmp(&b.text)));
    forms.dedup_by(|a, b| a.text == b.text);
    Redactor {
      forms: Arc::new(forms),
      secrets: Arc::new(secrets),
    }
  }

  pub fn is_empty(&self) -> bool {
    self.forms.is_empty()
  }

  pub fn redact(&self, text: &str) -> String {
    let mut out = text.to_string();
    for form in self.forms.iter() {
      if out.contains(form.text.as_str()) {
        out = out.replace(form.text.as_str(), MASK);
      }
    }
    out
  }

  /// Whether `text` holds a form of a secret (redacting it would change it).
  pub fn holds_secret(&self, text: &str) -> bool {
    self.find(text).is_some()
  }

  /// The first form of a secret found in `text`.
  fn find(&self, text: &str) -> Option<&Form> {
    self.forms.iter().find(|form| text.contains(&form.text))
  }

  /// Redact every string inside a record, object keys included, and check the result: the
  /// record must still be a record, and its serialized line must hold no form of any secret.
  /// `Err` means the record must not be written.
  pub fn redact_record(&self, record: Record) -> Result<Record, Leak> {
    if self.is_empty() {
      return Ok(record);
    }
    let leak = |form: &Form| Leak {
      name: self.secrets[form.secret].0.clone(),
      form: form.kind,
    };
    // A record always serializes (its maps have string keys); if it did not, nothing of it
    // could be checked, so it is refused like a leak of the first secret.
    let unserializable = || Leak {
      name: self.secrets[self.forms[0].secret].0.clone(),
      form: FormKind::Raw,
    };
    let mut value = serde_json::to_value(&record).map_err(|_| unserializable())?;
    self.redact_json(&mut value);
    let redacted: Record = match serde_json::from_value(value.clone()) {
      Ok(redacted) => redacted,
      // Redaction broke the record's structure: some secret is part of it. Name that one.
      Err(_) => return Err(self.breaker(&record).unwrap_or_else(unserializable)),
    };
    let line = serde_json::to_string(&redacted).map_err(|_| unserializable())?;
    match self.find(&line) {
      Some(form) => Err(leak(form)),
      None => Ok(redacted),
    }
  }

  /// The secret whose redaction alone makes `record` no longer a record.
  fn breaker(&self, record: &Record) -> Option<Leak> {
    let value = serde_json::to_value(record).ok()?;
    self.secrets.iter().find_map(|secret| {
      let mut value = value.clone();
      Redactor::new([secret.clone()]).redact_json(&mut value);
      serde_json::from_value::<Record>(value)
        .is_err()
        .then(|| Leak {
          name: secret.0.clone(),
          form: FormKind::Raw,
        })
    })
  }

  /// Redact every string in a JSON value, object keys included.
  pub fn redact_json(&self, value: &mut serde_json::Value) {
    match value {
      serde_json::Value::String(text) => *text = self.redact(text),
      serde_json::Value::Array(items) => items.iter_mut().for_each(|item| self.redact_json(item)),
      serde_json::Value::Object(map) => {
        let entries = std::mem::take(map);
        for (key, mut item) in entries {
          self.redact_json(&mut item);
          map.insert(self.redact(&key), item);
        }
      }
      _ => {}
    }
  }

  /// Refuse, before a run starts, a secret that redaction cannot keep out of the journal: one
  /// shorter than [`MIN_SECRET_LEN`], or one with a form that can occur in a record's
  /// structure — its keys, event and status names and the words in `structure` (the runbook's
  /// name and path, step ids, action names) — or in the values redaction never touches
  /// (numbers, timestamps, checksums, run ids).
  pub fn refuse_unsafe(&self, structure: &[&str]) -> Result<(), UnsafeSecret> {
    let skeleton = skeleton(structure);
    for (index, (name, value)) in self.secrets.iter().enumerate() {
      let refuse = |reason: String| UnsafeSecret {
        name: name.clone(),
        reason,
      };
      if value.len() < MIN_SECRET_LEN {
        return Err(refuse(format!("it is shorter than {MIN_SECRET_LEN} bytes")));
      }
      for form in self.forms.iter().filter(|form| form.secret == index) {
        let spelled = match form.kind {
          FormKind::Raw => "it".to_string(),
          kind => format!("its {kind} form"),
        };
        if skeleton.contains(&form.text) {
          return Err(refuse(format!(
            "{spelled} occurs in the journal's structure (field, event or status names, the \
             runbook's name or path, step ids or action names)"
          )));
        }
        if generated_text(&form.text) {
          return Err(refuse(format!(
            "{spelled} could occur in a run id, timestamp, number or checksum"
          )));
        }
      }
    }
    Ok(())
  }
}

/// Whether `text` could be part of what drctl generates and redaction leaves alone: numbers
/// (`seq`, `pid`, milliseconds, `time_scale` such as `1e-5`), RFC 3339 timestamps, the 8 hex
/// digits of a record's checksum, a run id (`20260101-120000-a1b2`).
fn generated_text(text: &str) -> bool {
  let numeric = text
    .chars()
    .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | ':' | '.' | 'T' | 'Z' | 'e'));
  let hex = text.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
  let run_id = text
    .chars()
    .all(|c| matches!(c, '0'..='9' | 'a'..='f' | '-'));
  (numeric && text.len() <= 40) || (hex && text.len() <= 8) || (run_id && text.len() <= 20)
}

/// One serialized record of every kind, with every free string empty except the `structure`
/// words: the text a secret must not be part of.
fn skeleton(structure: &[&str]) -> String {
  let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
  let step = StepInfo {
    id: String::new(),
    name: Some(String::new()),
    action: String::new(),
    needs: vec![String::new()],
    mutating: true,
    recovery: false,
    always: true,
    budget_ms: Some(0),
    approval: true,
  };
  let error = StepError {
    message: String::new(),
    code: Some(String::new()),
    request_id: Some(String::new()),
    http_status: Some(0),
    retryable: false,
  };
  let mut events = vec![
    Event::RunStarted {
      run_id: String::new(),
      runbook: String::new(),
      runbook_path: String::new(),
      runbook_digest: String::new(),
      params: [(String::new(), String::new())].into(),
      mode: RunMode::Live,
      backend: String::new(),
      time_scale: 1.0,
      incident_start: epoch,
      host: String::new(),
      user: String::new(),
      caller: Some(crate::cloud::CallerIdentity {
        account: String::new(),
        arn: String::new(),
      }),
      pid: 0,
      rto_ms: Some(0),
      rpo_ms: Some(0),
      accept_data_loss: true,
      force: true,
      steps: vec![step],
    },
    Event::RunStarted {
      run_id: String::new(),
      runbook: String::new(),
      runbook_path: String::new(),
      runbook_digest: String::new(),
      params: Default::default(),
      mode: RunMode::DryRun,
      backend: String::new(),
      time_scale: 1.0,
      incident_start: epoch,
      host: String::new(),
      user: String::new(),
      caller: None,
      pid: 0,
      rto_ms: None,
      rpo_ms: None,
      accept_data_loss: false,
      force: false,
      steps: Vec::new(),
    },
    Event::RunResumed {
      host: String::new(),
      pid: 0,
      user: String::new(),
      caller: None,
    },
    Event::RunInterrupted {
      signal: String::new(),
    },
    Event::StepSkipped {
      step: String::new(),
      reason: String::new(),
    },
    Event::FencePending {
      step: String::new(),
      action: String::new(),
      region: String::new(),
      args: [(String::new(), serde_json::Value::String(String::new()))]
        .into_iter()
        .collect(),
    },
    Event::ApprovalRequested {
      step: String::new(),
      prompt: String::new(),
      timeout_ms: Some(0),
      distinct_from_starter: true,
    },
    Event::ApprovalExpired {
      step: String::new(),
      timeout_ms: 0,
    },
    Event::ControlIgnored {
      nonce: String::new(),
      why: String::new(),
    },
    Event::RecoveryWaitStarted {
      condition: String::new(),
      within_ms: 0,
    },
    Event::Recovered {
      at: epoch,
      checks: 0,
      summary: String::new(),
    },
    Event::NotRecovered {
      by: epoch,
      checks: 0,
      last_error: Some(String::new()),
    },
  ];
  for via in [
    IdentityVia::OsUser,
    IdentityVia::Token,
    IdentityVia::ProxyHeader,
    IdentityVia::SharedToken,
  ] {
    let (by, reason, nonce) = (String::new(), Some(String::new()), Some(String::new()));
    events.extend([
      Event::ApprovalGranted {
        step: String::new(),
        by: by.clone(),
        via,
        reason: reason.clone(),
        at: epoch,
        nonce: nonce.clone(),
      },
      Event::ApprovalDenied {
        step: String::new(),
        by: by.clone(),
        via,
        reason: reason.clone(),
        at: epoch,
        nonce: nonce.clone(),
      },
      Event::ApprovalRefused {
        step: String::new(),
        by: by.clone(),
        via,
        why: String::new(),
        at: epoch,
        nonce,
      },
      Event::RunCancelRequested {
        by,
        via,
        reason,
        at: epoch,
        nonce: String::new(),
      },
    ]);
  }
  for phase in [Phase::Run, Phase::Rollback] {
    events.extend([
      Event::StepStarted {
        step: String::new(),
        attempt: 0,
        phase,
      },
      Event::StepIntent {
        step: String::new(),
        attempt: 0,
        phase,
        change: String::new(),
        data_loss_ms: Some(0),
        data_loss_unknown: Some(String::new()),
      },
      Event::StepDispatched {
        step: String::new(),
        phase,
        what: String::new(),
      },
      Event::ProcessStarted {
        step: String::new(),
        phase,
        pgid: 0,
        leader_start: 0,
      },
      Event::StepSucceeded {
        step: String::new(),
        attempt: 0,
        phase,
        changed: true,
        outputs: [(String::new(), String::new())].into(),
        data_loss_ms: Some(0),
        data_loss_unknown: Some(String::new()),
        summary: String::new(),
      },
      Event::StepFailed {
        step: String::new(),
        attempt: 0,
        phase,
        error: error.clone(),
        will_retry: true,
        backoff_ms: Some(0),
      },
    ]);
  }
  for status in [
    RunStatus::Succeeded,
    RunStatus::Breached,
    RunStatus::Failed,
    RunStatus::Interrupted,
    RunStatus::LockLost,
  ] {
    events.push(Event::RunFinished {
      status,
      rto_achieved_ms: Some(0),
      rpo_achieved_ms: Some(0),
      failed_step: Some(String::new()),
    });
  }
  let mut text = String::new();
  for event in events {
    let record = Record {
      seq: 0,
      ts: epoch,
      event,
    };
    text.push_str(&serde_json::to_string(&record).unwrap_or_default());
    // The checksum and format fields every line carries.
    text.push_str(",\"crc\":\"\",\"format\":0}\n");
  }
  // JSON's literals, which the JSON views of a run (`--output json`, reports) also hold.
  text.push_str("null true false\n");
  for word in structure {
    text.push_str(word);
    text.push('\n');
  }
  text
}

/// Every form of `secret` that redaction replaces, each once.
fn forms_of(secret: &str) -> Vec<(FormKind, String)> {
  let mut forms = vec![(FormKind::Raw, secret.to_string())];
  // Exactly one quote off each end: the secret itself may end in an (escaped) quote.
  if let Some(json) = serde_json::to_string(secret).ok().and_then(|json| {
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.to_string())
  }) {
    forms.push((FormKind::JsonEscaped, json));
  }
  forms.push((
    FormKind::UrlEncoded,
    percent_encode(secret, HEX_UPPER, false),
  ));
  forms.push((
    FormKind::UrlEncoded,
    percent_encode(secret, HEX_LOWER, false),
  ));
  forms.push((
    FormKind::UrlEncoded,
    percent_encode(secret, HEX_UPPER, true),
  ));
  for alphabet in [BASE64_STANDARD, BASE64_URL_SAFE] {
    for offset in 0..3 {
      let core = base64_core(secret.as_bytes(), offset, alphabet);
      if !core.is_empty() {
        forms.push((FormKind::Base64, core));
      }
    }
  }
  let mut seen = std::collections::HashSet::new();
  forms.retain(|(_, text)| seen.insert(text.clone()));
  forms
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// RFC 3986 percent-encoding (unreserved characters kept); `form`: `application/x-www-form-
/// urlencoded`, where a space is `+`.
fn percent_encode(text: &str, hex: &[u8; 16], form: bool) -> String {
  let mut out = String::with_capacity(text.len() * 3);
  for byte in text.bytes() {
    match byte {
      b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
        out.push(char::from(byte))
      }
      b' ' if form => out.push('+'),
      _ => {
        out.push('%');
        out.push(char::from(hex[usize::from(byte >> 4)]));
        out.push(char::from(hex[usize::from(byte & 15)]));
      }
    }
  }
  out
}

const BASE64_STANDARD: &[u8; 64] =
  b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL_SAFE: &[u8; 64] =
  b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters that depend on `secret` alone when it starts `offset` bytes (0, 1 or
/// 2) into a group of three: whatever surrounds it, an encoding of a text holding the secret
/// at that alignment contains this string.
fn base64_core(secret: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
  let start_bit = offset * 8;
  let end_bit = start_bit + secret.len() * 8;
  let bit = |position: usize| -> u8 {
    let byte = secret[(position - start_bit) / 8];
    (byte >> (7 - (position - start_bit) % 8)) & 1
  };
  // Character i covers bits [6i, 6i + 6): keep those wholly inside the secret.
  let first = start_bit.div_ceil(6);
  let mut out = String::new();
  let mut i = first;
  while 6 * i + 6 <= end_bit {
    let index = (0..6).fold(0usize, |acc, k| (acc << 1) | usize::from(bit(6 * i + k)));
    out.push(char::from(alphabet[index]));
    i += 1;
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  fn redactor(values: &[(&str, &str)]) -> Redactor {
    Redactor::new(
      values
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string())),
    )
  }

  /// A reference base64 encoder (padding included), to check the cores against.
  fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
      let n = chunk.iter().enumerate().fold(0u32, |acc, (i, byte)| {
        acc | (u32::from(*byte) << (16 - 8 * i))
      });
      for i in 0..4 {
        if i <= chunk.len() {
          out.push(char::from(
            BASE64_STANDARD[((n >> (18 - 6 * i)) & 63) as usize],
          ));
        } else {
          out.push('=');
        }
      }
    }
    out
  }

  #[test]
  fn replaces_every_occurrence() {
    let redactor = redactor(&[("secrets.PW", "hunter2")]);
    assert_eq!(
      redactor.redact("pw=hunter2 again hunter2"),
      "pw=*** again ***"
    );
  }

  #[test]
  fn base64_cores_are_found_inside_any_encoding_of_the_secret() {
    let secret = "cAnArY-7f3/9x+Qz=w8Lk";
    let redactor = redactor(&[("secrets.C", secret)]);
    for prefix in ["", "a", "ab", "abc", "abcd", "user:"] {
      for suffix in ["", "x", "xy", "xyz"] {
        let encoded = base64(format!("{prefix}{secret}{suffix}").as_bytes());
        assert!(
          redactor.holds_secret(&encoded),
          "{prefix}|{suffix}: {encoded}"
        );
        assert!(!redactor.redact(&encoded).contains(&encoded), "{encoded}");
      }
    }
  }

  #[test]
  fn url_and_json_forms_are_redacted() {
    let secret = "p@ss w/rd+\"q\"";
    let redactor = redactor(&[("secrets.P", secret)]);
    for text in [
      "p%40ss%20w%2Frd%2B%22q%22",
      "p%40ss%20w%2frd%2b%22q%22",
      "p%40ss+w%2Frd%2B%22q%22",
      r#"p@ss w/rd+\"q\""#,
    ] {
      assert_eq!(redactor.redact(&format!("a={text}&b")), "a=***&b", "{text}");
    }
  }

  #[test]
  fn keys_are_redacted_too() {
    let redactor = redactor(&[("secrets.K", "k3y-s3cr3t")]);
    let mut value = serde_json::json!({ "k3y-s3cr3t": { "x": ["k3y-s3cr3t"] } });
    redactor.redact_json(&mut value);
    assert_eq!(value, serde_json::json!({ "***": { "x": ["***"] } }));
  }

  fn record(event: Event) -> Record {
    Record {
      seq: 7,
      ts: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
      event,
    }
  }

  #[test]
  fn a_secret_in_the_structure_fails_closed_instead_of_falling_back() {
    // `1970` is part of the timestamp: redacting it breaks the record, which used to be
    // written unredacted, with the other secret in it.
    let redactor = redactor(&[("secrets.YEAR", "1970"), ("secrets.TOKEN", "t0ken-value")]);
    let skipped = record(Event::StepSkipped {
      step: "x".into(),
      reason: "t0ken-value".into(),
    });
    let err = redactor.redact_record(skipped).unwrap_err();
    assert_eq!(err.name, "secrets.YEAR");
    assert!(!err.to_string().contains("1970"), "{err}");
    // A secret equal to an event name survives redaction of the strings (the tag is
    // re-serialized): the line check catches it.
    let redactor = redactor_for_tag();
    let err = redactor
      .redact_record(record(Event::RunInterrupted {
        signal: "SIGINT".into(),
      }))
      .unwrap_err();
    assert_eq!(err.name, "secrets.TAG");
  }

  fn redactor_for_tag() -> Redactor {
    redactor(&[("secrets.TAG", "run_interrupted")])
  }

  #[test]
  fn a_redacted_record_is_still_a_record() {
    let redactor = redactor(&[("secrets.T", "t0ken-value")]);
    let redacted = redactor
      .redact_record(record(Event::StepSucceeded {
        step: "a".into(),
        attempt: 1,
        phase: Phase::Run,
        changed: false,
        outputs: [("t0ken-value".to_string(), "x t0ken-value".to_string())].into(),
        data_loss_ms: None,
        data_loss_unknown: None,
        summary: "dGhlIHQwa2VuLXZhbHVl".into(),
      }))
      .unwrap();
    let Event::StepSucceeded {
      outputs, summary, ..
    } = redacted.event
    else {
      panic!("not a step_succeeded");
    };
    assert_eq!(outputs, [("***".to_string(), "x ***".to_string())].into());
    assert!(!summary.contains("MGtlbi12YWx1"), "{summary}");
  }

  #[test]
  fn unsafe_secrets_are_refused_by_name() {
    let cases: &[(&str, &str)] = &[
      ("ab", "shorter than 4 bytes"),
      ("2026", "run id, timestamp, number or checksum"),
      ("20261201-2017", "run id, timestamp, number or checksum"),
      ("deadbeef", "run id, timestamp, number or checksum"),
      ("succeeded", "structure"),
      ("step_started", "structure"),
      ("null", "structure"),
      ("runbook_digest", "structure"),
      ("\"event\":", "structure"),
      ("promote-db", "structure"),
      // The format every record carries (`state::format`).
      ("\"format\":", "structure"),
    ];
    for (value, reason) in cases {
      let err = redactor(&[("secrets.S", value)])
        .refuse_unsafe(&["promote-db", "rds.promote_replica"])
        .unwrap_err();
      assert_eq!(err.name, "secrets.S");
      assert!(err.reason.contains(reason), "{value}: {err}");
      assert!(!err.to_string().contains(value), "{err}");
    }
    for value in [
      "hunter2-hunter2",
      "cAnArY-7f3/9x+Qz=w8Lk",
      "0123456789abcdef0123456789abcdef01234567",
    ] {
      assert_eq!(
        redactor(&[("secrets.S", value)]).refuse_unsafe(&["promote-db"]),
        Ok(()),
        "{value}"
      );
    }
  }
}
