//! `drctl completions SHELL` and `drctl man`: the scripts load in their shells, and the man page
//! renders without a warning.

use std::process::Command;

use crate::support::Test;

/// Bash sources the script; completing `drctl dr` (through the `_drctl` function the script
/// registers, driven with COMP_WORDS as bash's completion does) offers `drill`, and completing a
/// subcommand's flags offers them.
#[test]
fn bash_completes_subcommands_and_flags() {
  let test = Test::new();
  let script = test.run_args(["completions", "bash"]).status(0).stdout();
  let path = test.path().join("drctl.bash");
  std::fs::write(&path, script).unwrap();
  let complete = |words: &[&str]| -> Vec<String> {
    let program = format!(
      r#"source "$1" || exit 9
complete -p drctl >/dev/null || exit 8
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
_drctl drctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
      words = words
        .iter()
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" "),
      cword = words.len() - 1,
    );
    let output = Command::new("bash")
      .args(["--norc", "--noprofile", "-c", &program, "bash"])
      .arg(&path)
      .output()
      .expect("bash runs");
    assert!(
      output.status.success(),
      "bash: {}",
      String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
      .lines()
      .map(str::to_string)
      .collect()
  };
  assert_eq!(complete(&["drctl", "dr"]), ["drill"]);
  let subcommands = complete(&["drctl", ""]);
  for expected in ["validate", "run", "schema", "completions", "man"] {
    assert!(
      subcommands.iter().any(|word| word == expected),
      "{expected} in {subcommands:?}"
    );
  }
  let flags = complete(&["drctl", "schema", "--"]);
  assert!(flags.iter().any(|flag| flag == "--kind"), "{flags:?}");
}

/// zsh, fish and PowerShell get a script each that names drctl's subcommands.
#[test]
fn every_shell_gets_a_script() {
  let test = Test::new();
  for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
    let script = test.run_args(["completions", shell]).status(0).stdout();
    assert!(script.contains("drctl"), "{shell}");
    assert!(script.contains("validate"), "{shell}");
  }
  let run = test.run_args(["completions", "tcsh"]).status(2);
  assert!(
    run.stderr().contains("invalid value 'tcsh'"),
    "{}",
    run.stderr()
  );
}

/// `drctl man` renders with groff's warnings all on (`-ww`) and none printed, and `man -l`
/// formats it too.
#[test]
fn the_man_page_renders_without_warnings() {
  let test = Test::new();
  let page = test.run_args(["man"]).status(0).stdout();
  assert!(page.contains(".TH drctl 1"), "{page}");
  let path = test.path().join("drctl.1");
  std::fs::write(&path, &page).unwrap();
  let groff = Command::new("groff")
    .args(["-ww", "-man", "-Tutf8", "-z"])
    .arg(&path)
    .output()
    .expect("groff runs (.ci/test installs it)");
  assert!(groff.status.success());
  assert_eq!(String::from_utf8_lossy(&groff.stderr), "", "groff warnings");
  let man = Command::new("man")
    .arg("-l")
    .arg(&path)
    .env("MANPAGER", "cat")
    .env("MANWIDTH", "80")
    .env("MAN_KEEP_STDERR", "1")
    .output()
    .expect("man runs (.ci/test installs man-db)");
  let stderr = String::from_utf8_lossy(&man.stderr);
  assert!(man.status.success(), "man -l: {stderr}");
  assert_eq!(stderr, "", "man -l warnings");
  let text = String::from_utf8_lossy(&man.stdout);
  for section in ["NAME", "SYNOPSIS", "SUBCOMMANDS", "completions"] {
    assert!(text.contains(section), "{section} in\n{text}");
  }
}
