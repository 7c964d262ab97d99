//! drctl: a disaster-recovery and failover runbook engine.
//!
//! The crate is organised by phase (see ARCHITECTURE.md): `runbook` (parse, validate) → `plan` (bind
//! parameters, probe, order the graph) → `engine` (run a plan, journal every transition) with
//! `actions` acting on the `cloud` provider boundary, `state` keeping journals and locks, and
//! `report` rendering results. `cli` is a thin layer over all of them.

pub mod actions;
pub mod cli;
pub mod cloud;
pub mod drills;
pub mod engine;
pub mod format;
pub mod plan;
pub mod process_group;
pub mod report;
pub mod runbook;
pub mod serve;
pub mod state;

#[cfg(test)]
mod layout {
  use std::{collections::HashMap, path::Path};

  /// How many meaningful lines in a row make a repeated block.
  const BLOCK: usize = 10;

  fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
      let path = entry.unwrap().path();
      if path.is_dir() {
        rust_files(&path, out);
      } else if path.extension().is_some_and(|ext| ext == "rs") {
        out.push(path);
      }
    }
  }

  /// One copy of each helper: no run of ten meaningful lines (trimmed; blank lines, comments
  /// and lines of closing brackets alone left out) appears twice anywhere under `src/`.
  #[test]
  fn no_block_of_ten_lines_is_repeated_in_src() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut first: HashMap<Vec<String>, String> = HashMap::new();
    let mut repeated = Vec::new();
    for file in &files {
      let text = std::fs::read_to_string(file).unwrap();
      let lines: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim().to_owned()))
        .filter(|(_, line)| {
          !line.is_empty()
            && !line.starts_with("//")
            && !line.chars().all(|c| "{}()[];,".contains(c))
        })
        .collect();
      let name = file.strip_prefix(&root).unwrap().display().to_string();
      for window in lines.windows(BLOCK) {
        let key: Vec<String> = window.iter().map(|(_, line)| line.clone()).collect();
        let at = format!("src/{name}:{}-{}", window[0].0, window[BLOCK - 1].0);
        match first.get(&key) {
          Some(earlier) => repeated.push(format!("{at} repeats {earlier}")),
          None => {
            first.insert(key, at);
          }
        }
      }
    }
    assert!(
      repeated.is_empty(),
      "blocks of {BLOCK} lines written twice (make one helper):\n{}",
      repeated.join("\n")
    );
  }
}
