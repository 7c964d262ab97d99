//! Processes on this machine, from `/proc`: the orphan checks count every live process that
//! carries a unique marker in its command line or environment.

use std::time::{Duration, Instant};

/// A marker unique to one test run (an environment value and command-line argument).
pub fn marker(what: &str) -> String {
  format!(
    "drctl-orphan-{what}-{}-{:08x}",
    std::process::id(),
    fastrand::u32(..)
  )
}

/// Live (not zombie) processes whose command line or environment contains `marker`.
pub fn marked(marker: &str) -> Vec<u32> {
  let Ok(entries) = std::fs::read_dir("/proc") else {
    return Vec::new();
  };
  let needle = marker.as_bytes();
  let contains = |haystack: &[u8]| {
    haystack
      .windows(needle.len())
      .any(|window| window == needle)
  };
  entries
    .flatten()
    .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
    .filter(|pid| {
      let dir = format!("/proc/{pid}");
      let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
      let zombie = stat
        .rfind(')')
        .is_some_and(|end| stat[end + 1..].trim_start().starts_with('Z'));
      !zombie
        && (std::fs::read(format!("{dir}/cmdline")).is_ok_and(|text| contains(&text))
          || std::fs::read(format!("{dir}/environ")).is_ok_and(|text| contains(&text)))
    })
    .collect()
}

/// Marked processes still alive after `settle` (kills take a moment to land).
pub fn survivors(marker: &str, settle: Duration) -> Vec<u32> {
  let start = Instant::now();
  loop {
    let found = marked(marker);
    if found.is_empty() || start.elapsed() >= settle {
      return found;
    }
    std::thread::sleep(Duration::from_millis(20));
  }
}

/// SIGKILL every marked process (clean-up after a test that found survivors).
pub fn kill_marked(marker: &str) {
  for pid in marked(marker) {
    let _ = std::process::Command::new("kill")
      .args(["-KILL", &pid.to_string()])
      .stderr(std::process::Stdio::null())
      .status();
  }
}
