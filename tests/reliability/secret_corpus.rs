//! Secret corpus: adversarial secret values — the current year and date, digits of a run id,
//! JSON keys, event and status names, a step id, an action name, 1–3-byte values, URL- and
//! JSON-special characters, non-ASCII — each set as `secrets.CORPUS` next to a long canary
//! (`secrets.TOKEN`) in a run whose command prints both, raw, base64 and URL-encoded.
//!
//! Each value is either refused before the run starts (exit 2, naming `secrets.CORPUS`, no run
//! created, the canary nowhere) or the run succeeds and its forms (raw, JSON-escaped,
//! URL-encoded, base64 at three alignments) are counted in every output: stdout and stderr at
//! `DRCTL_LOG=trace`, every file under the state directory, `status` (text and JSON) and every
//! report format. A short accepted value such as `null` can occur in an output for reasons of
//! its own, so each output is compared with a control run whose corpus secret is a random value
//! of the same length: leaked bytes are the occurrences beyond the control's, times their
//! length. The canary is counted absolutely.

use std::path::Path;

use crate::{
  secrets::{forms_of, occurrences, walk},
  support::Test,
  Config, Figure,
};

const SECTION: &str = "secret-corpus";
const TOKEN: &str = "t0k3n-Canary/x+Q=9";

const RUNBOOK: &str = r#"apiVersion: drctl/v1
kind: Runbook
metadata: { name: corpus }
steps:
  - id: corpus-step
    action: exec.command
    with:
      argv: [sh, -c, 'echo "c=$C t=$T"; echo "c=$C" >&2; printf %s "$C" | base64; printf x%s "$C" | base64; printf xy%s "$C" | base64; python3 -c "import os, urllib.parse as u; print(u.quote(os.environ[\"C\"], safe=\"\"), u.quote_plus(os.environ[\"C\"]), u.quote(os.environ[\"T\"], safe=\"\"))"']
      env: { C: "${{ secrets.CORPUS }}", T: "${{ secrets.TOKEN }}" }
  - id: after
    action: wait.sleep
    needs: [corpus-step]
    with: { duration: 1s }
"#;

/// The values: what an operator could plausibly set, and what an attacker would pick to break
/// redaction.
fn corpus(full: bool) -> Vec<String> {
  let now = chrono::Utc::now();
  let mut values: Vec<String> = vec![
    now.format("%Y").to_string(),
    now.format("%Y%m%d").to_string(),
    now.format("%H%M").to_string(),
    "a".into(),
    "ab".into(),
    "%2F".into(),
    "step".into(),
    "succeeded".into(),
    "run_started".into(),
    "corpus-step".into(),
    "p@ss/w+rd=x y&z?#".into(),
    "quote\"back\\slash".into(),
    "null".into(),
    "pässwörd-ü".into(),
    "100%-sure".into(),
  ];
  if full {
    values.extend(
      [
        "1",
        "Z",
        "***",
        "0000",
        "1970",
        "failed",
        "running",
        "outputs",
        "\"event\":",
        "step_succeeded",
        "exec.command",
        "wait.sleep",
        "deadbeef",
        "true",
        "crc",
        "tab\there",
        "<script>&amp;",
        "a1b2c3d4e5f60718293a4b5c6d7e8f90",
      ]
      .map(String::from),
    );
  }
  values
}

/// A random alphanumeric value of `len` bytes (the control for a corpus value).
fn control(rng: &mut fastrand::Rng, len: usize) -> String {
  // Capitals and `Q`-`Y` only: no digit, hex letter or word the record structure holds.
  (0..len.max(8))
    .map(|_| char::from(rng.u8(b'Q'..=b'Y')))
    .collect()
}

/// What one run printed and left behind, by place.
struct Outputs {
  code: i32,
  stderr: String,
  places: Vec<(String, String)>,
  runs: usize,
}

fn run_one(value: &str) -> Outputs {
  let test = Test::new()
    .file("corpus.yaml", RUNBOOK)
    .env("CORPUS", value)
    .env("TOKEN", TOKEN)
    .env("DRCTL_LOG", "trace");
  let run = test.run_args([
    "run",
    "corpus.yaml",
    "--sim",
    "--yes",
    "--time-scale",
    "100",
    "--output",
    "json",
  ]);
  let mut places = vec![
    ("stdout".to_string(), run.stdout()),
    ("stderr".to_string(), run.stderr()),
  ];
  let ids = test.run_ids();
  for run_id in &ids {
    for (name, args) in [
      ("status", vec!["status", run_id.as_str()]),
      ("status json", vec!["status", run_id, "--output", "json"]),
      ("report json", vec!["report", run_id, "--format", "json"]),
      ("report md", vec!["report", run_id, "--format", "md"]),
      ("report junit", vec!["report", run_id, "--format", "junit"]),
      ("report html", vec!["report", run_id, "--format", "html"]),
    ] {
      let shown = test.run_args(&args);
      places.push((name.to_string(), shown.stdout() + &shown.stderr()));
    }
  }
  let state = test.path().join(".drctl");
  for path in walk(&state) {
    let relative = path.strip_prefix(&state).unwrap_or(&path);
    places.push((
      state_place(relative),
      String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned(),
    ));
  }
  Outputs {
    code: run.code(),
    stderr: run.stderr(),
    places,
    runs: ids.len(),
  }
}

/// A state file's place, without the run id (so a control run's file compares with it).
fn state_place(relative: &Path) -> String {
  let name = relative
    .file_name()
    .unwrap_or_default()
    .to_string_lossy()
    .into_owned();
  format!("state file {name}")
}

/// Leaked bytes of `value`'s forms in `test` beyond those in `control`, place by place.
fn leaked_beyond(
  value: &str,
  test: &Outputs,
  control: &Outputs,
  where_: &mut Vec<String>,
) -> usize {
  let forms = forms_of(value);
  let mut leaked = 0;
  for (place, text) in &test.places {
    let baseline: usize = control
      .places
      .iter()
      .filter(|(other, _)| other == place)
      .map(|(_, text)| bytes(text, &forms))
      .max()
      .unwrap_or(0);
    let found = bytes(text, &forms);
    if found > baseline {
      where_.push(format!("{value:?} in {place}"));
      leaked += found - baseline;
    }
  }
  leaked
}

/// Bytes of every form in `text`.
fn bytes(text: &str, forms: &[(&'static str, String)]) -> usize {
  forms
    .iter()
    .map(|(_, form)| text.matches(form.as_str()).count() * form.len())
    .sum()
}

pub fn run(config: &Config) -> Vec<Figure> {
  let mut rng = fastrand::Rng::with_seed(config.seed ^ 0xC0_8905);
  let token_forms = forms_of(TOKEN);
  let values = corpus(config.full);
  let mut refused = 0usize;
  let mut ran = 0usize;
  let mut saw_them = 0usize;
  let mut unexpected = Vec::new();
  let mut leaked = 0usize;
  let mut token_leaked = 0usize;
  let mut places = Vec::new();
  for value in &values {
    let outputs = run_one(value);
    for (place, text) in &outputs.places {
      let found = occurrences(text, &token_forms);
      if found > 0 {
        places.push(format!("canary with {value:?} in {place}"));
      }
      token_leaked += found * TOKEN.len();
    }
    match outputs.code {
      2 if outputs.runs == 0
        && outputs
          .stderr
          .contains("secret `secrets.CORPUS` cannot be redacted safely") =>
      {
        refused += 1
      }
      0 => {
        ran += 1;
        // The command did get both secrets (and printed them, redacted in the journal).
        let journal = outputs
          .places
          .iter()
          .find(|(place, _)| place == "state file journal.jsonl")
          .map(|(_, text)| text.as_str())
          .unwrap_or_default();
        saw_them += usize::from(journal.contains("c=*** t=***"));
        let control = run_one(&control(&mut rng, value.len()));
        leaked += leaked_beyond(value, &outputs, &control, &mut places);
      }
      code => unexpected.push(format!(
        "{value:?} exited {code}: {}",
        outputs.stderr.trim()
      )),
    }
  }
  for line in unexpected.iter().chain(&places).take(10) {
    eprintln!("   {SECTION}: {line}");
  }
  vec![
    Figure::info(
      SECTION,
      "corpus values (refused / ran)",
      format!("{} ({refused} / {ran})", values.len()),
    ),
    Figure::new(
      SECTION,
      "values refused up front (exit 2) or run clean",
      format!("{}/{}", refused + ran, values.len()),
      "all",
      unexpected.is_empty() && refused + ran == values.len(),
    ),
    Figure::new(
      SECTION,
      "runs whose command printed both (redacted)",
      format!("{saw_them}/{ran}"),
      "all",
      saw_them == ran,
    ),
    Figure::new(
      SECTION,
      "corpus bytes leaked (every output)",
      leaked,
      "0",
      leaked == 0,
    ),
    Figure::new(
      SECTION,
      "canary bytes leaked next to them",
      token_leaked,
      "0",
      token_leaked == 0,
    ),
  ]
}
