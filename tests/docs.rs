//! The README and ARCHITECTURE.md, checked against the binary and the tree: the README's shell
//! commands run (except the long ones, listed below with the test that covers them), its sample
//! output has the shape a real run prints, its command-line summary names every subcommand, and
//! neither document links outside the repository or names a path that does not exist.

use std::collections::BTreeSet;

use crate::support::{repo, Test, BIN};

/// README shell commands the doc test does not run, each with what covers it instead.
const NOT_RUN: &[(&str, &str)] = &[
  ("bash .ci/test", "it is the test suite this test is part of"),
  ("bash .ci/run", "CI itself: fmt, clippy, then `.ci/test`"),
  (
    "cargo bench",
    "about ten minutes; its smoke version runs under `cargo test --all-targets`",
  ),
  (
    "cargo test --test reliability",
    "the reliability suite, run by `cargo test --all-targets`",
  ),
  (
    "DRCTL_RELIABILITY=full cargo test --release --test reliability",
    "the full reliability configuration: tens of minutes",
  ),
  (
    "drctl serve",
    "serves until stopped: `serve::the_status_pages_render_in_headless_chromium_and_a_live_run_moves`",
  ),
  (
    "drctl serve --scheduler",
    "serves until stopped: `serve::serve_with_the_scheduler_ticks_and_reports_it_in_metrics`",
  ),
  (
    "DRCTL_SERVE_TOKEN=$(cat token) drctl serve --listen 0.0.0.0:8080",
    "binds beyond loopback: `serve::tests::beyond_loopback_the_token_is_required` (0.0.0.0, \
     reached through 127.0.0.1)",
  ),
  (
    "drctl serve --tokens /etc/drctl/tokens.yaml",
    "serves until stopped, with a tokens file: \
     `serve::an_approval_clicked_on_the_live_page_releases_the_run_as_the_tokens_person`",
  ),
  (
    "printf %s \"$ALICES_TOKEN\" | sha256sum",
    "not drctl: how the test makes the digest it writes into a tokens file (the same \
     `sha256sum`, in `serve::an_approval_clicked_on_the_live_page_releases_the_run_as_the_tokens_person`)",
  ),
];

fn read(name: &str) -> String {
  std::fs::read_to_string(repo().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// The fenced blocks of a Markdown file: (info string, body).
fn blocks(markdown: &str) -> Vec<(String, String)> {
  let mut blocks = Vec::new();
  let mut open: Option<(String, String)> = None;
  for line in markdown.lines() {
    match (&mut open, line.strip_prefix("```")) {
      (None, Some(info)) => open = Some((info.trim().to_string(), String::new())),
      (Some(_), Some(_)) => blocks.extend(open.take()),
      (Some((_, body)), None) => {
        body.push_str(line);
        body.push('\n');
      }
      (None, None) => {}
    }
  }
  blocks
}

/// The commands of the README's `sh` blocks, comments stripped.
fn shell_commands(readme: &str) -> Vec<String> {
  blocks(readme)
    .into_iter()
    .filter(|(info, _)| info == "sh")
    .flat_map(|(_, body)| {
      body
        .lines()
        .map(|line| line.split(" #").next().unwrap_or("").trim().to_string())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
    })
    .collect()
}

/// The section of a Markdown file under `heading`, up to the next heading of the same level.
fn section<'a>(markdown: &'a str, heading: &str) -> &'a str {
  let start = markdown
    .find(&format!("\n{heading}\n"))
    .unwrap_or_else(|| panic!("no section {heading:?}"));
  let level = heading.split(' ').next().unwrap_or("##");
  let rest = &markdown[start + heading.len() + 2..];
  let end = rest
    .find(&format!("\n{level} "))
    .map_or(rest.len(), |end| end + 1);
  &rest[..end]
}

#[test]
fn every_readme_shell_command_runs_or_is_listed_with_what_covers_it() {
  let readme = read("README.md");
  let commands = shell_commands(&readme);
  assert!(commands.len() >= 5, "README sh blocks: {commands:?}");
  let mut ran = 0;
  for command in &commands {
    if NOT_RUN.iter().any(|(skipped, _)| skipped == command) {
      continue;
    }
    // `cargo run --release -- ARGS` is the binary under test with ARGS (a release build would
    // take minutes; the binary is the same code), and so is `drctl ARGS [> FILE]`.
    let (line, out) = match command.split_once(" > ") {
      Some((line, file)) => (line, Some(file.trim())),
      None => (command.as_str(), None),
    };
    let args = line
      .strip_prefix("cargo run --release -- ")
      .or_else(|| line.strip_prefix("drctl "))
      .unwrap_or_else(|| panic!("README command {command:?} is neither run nor in NOT_RUN"));
    let test = Test::new();
    let run = test.run_args(args.split_whitespace());
    if let Some(file) = out {
      assert!(!run.stdout().is_empty(), "`{command}` wrote nothing");
      std::fs::write(test.path().join(file), run.stdout()).unwrap();
    }
    assert_eq!(
      run.code(),
      0,
      "README command `{command}`\n--- stdout\n{}\n--- stderr\n{}",
      run.stdout(),
      run.stderr()
    );
    ran += 1;
  }
  assert!(ran >= 1, "no README command ran");
  for (skipped, _) in NOT_RUN {
    assert!(
      commands.iter().any(|command| command == skipped),
      "NOT_RUN lists {skipped:?}, which the README no longer has"
    );
  }
}

#[test]
fn the_readme_sample_run_has_the_shape_of_a_real_failover() {
  let readme = read("README.md");
  let sample = blocks(&readme)
    .into_iter()
    .map(|(_, body)| body)
    .find(|body| body.starts_with("drctl run "))
    .expect("the README shows a run");
  let run = Test::new()
    .args(["failover", "us-west-2", "--sim", "--yes"])
    .run()
    .status(0);
  let output = run.stdout() + &run.stderr();
  // The lines that do not depend on timing are printed exactly as shown.
  for line in sample.lines().filter(|line| {
    line.contains("critical path:") || line.contains("result:") || line.contains("RTO ")
  }) {
    let fixed = line.trim();
    let fixed = if let Some(path) = fixed.strip_prefix("critical path: ") {
      // Which of the two parallel outage checks finishes last varies; the path from the lag
      // check on does not.
      path
        .find("check-replica-lag")
        .map_or(path, |at| &path[at..])
    } else if fixed.starts_with("RTO achieved") || fixed.starts_with("RPO achieved") {
      // "RTO achieved 6m06s / target 15m  met": the achieved figure varies from run to run.
      fixed.rsplit_once(" / ").map_or(fixed, |(_, target)| target)
    } else if fixed.starts_with("drctl run ") {
      // The header after its run id.
      fixed.split_once(" · ").map_or(fixed, |(_, rest)| rest)
    } else {
      fixed
    };
    assert!(
      output.contains(fixed),
      "the README shows {fixed:?}; a real run printed:\n{output}"
    );
  }
  // Every step the sample shows is a step of the run.
  for line in sample.lines().filter(|line| line.starts_with('[')) {
    let step = line
      .split_whitespace()
      .nth(3)
      .expect("a sample line names its step");
    assert!(
      output.contains(step),
      "README step {step} not in:\n{output}"
    );
  }
}

#[test]
fn the_readme_validation_error_is_what_validate_prints() {
  let shipped = read("runbooks/regional-failover.yaml");
  assert!(shipped.contains("action: rds.promote_replica"));
  let typo = shipped.replacen(
    "action: rds.promote_replica",
    "action: rds.promte_replica",
    1,
  );
  let run = Test::new()
    .file("runbooks/bad.yaml", &typo)
    .args(["validate", "runbooks/bad.yaml"])
    .run()
    .status(2);
  let readme = read("README.md");
  let sample = blocks(&readme)
    .into_iter()
    .map(|(_, body)| body)
    .find(|body| body.starts_with("error: unknown action"))
    .expect("the README shows a validation error");
  let printed = run.stderr();
  for line in sample.lines() {
    // Line and column depend on where the README's example has the typo; the rest is exact.
    let expected = if line.trim_start().starts_with("-->") {
      "--> runbooks/bad.yaml:"
    } else if line.contains('|') || line.trim_start().starts_with("= key:") {
      continue;
    } else {
      line.trim()
    };
    assert!(
      printed.contains(expected),
      "README shows {expected:?}; validate printed:\n{printed}"
    );
  }
}

#[test]
fn the_readme_drctl_yaml_example_is_accepted() {
  let readme = read("README.md");
  let config = blocks(&readme)
    .into_iter()
    .map(|(_, body)| body)
    .find(|body| body.starts_with("runbooks: runbooks"))
    .expect("the README shows a drctl.yaml");
  Test::new()
    .file("drctl.yaml", &config)
    .args(["failover", "us-west-2", "--sim", "--dry-run", "--yes"])
    .run()
    .status(0);
}

/// The subcommands `drctl --help` lists (without `help`).
fn subcommands(args: &[&str]) -> Vec<String> {
  let output = std::process::Command::new(BIN)
    .args(args)
    .arg("--help")
    .output()
    .expect("drctl runs");
  let help = String::from_utf8_lossy(&output.stdout).into_owned();
  let commands = help
    .split("Commands:\n")
    .nth(1)
    .unwrap_or_else(|| panic!("`drctl {args:?} --help` lists no commands:\n{help}"));
  commands
    .lines()
    .take_while(|line| line.starts_with("  "))
    .filter_map(|line| line.split_whitespace().next())
    .filter(|name| *name != "help")
    .map(str::to_string)
    .collect()
}

#[test]
fn the_readme_command_line_names_every_subcommand_and_only_real_ones() {
  let readme = read("README.md");
  let summary = blocks(section(&readme, "## Command line"))
    .into_iter()
    .find(|(_, body)| body.starts_with("drctl validate"))
    .map(|(_, body)| body)
    .expect("the command line summary");
  let summary = summary.as_str();
  let top = subcommands(&[]);
  assert!(top.len() >= 10, "{top:?}");
  for command in &top {
    assert!(
      summary.contains(&format!("drctl {command}")),
      "the README's command line does not name `drctl {command}`"
    );
    if ["drill", "sandbox", "state"].contains(&command.as_str()) {
      for sub in subcommands(&[command]) {
        assert!(
          summary.contains(&format!("drctl {command} {sub}"))
            || summary.contains(&sub)
              && summary
                .lines()
                .any(|line| line.contains(&format!("drctl {command} ")) && line.contains(&sub)),
          "the README's command line does not name `drctl {command} {sub}`"
        );
      }
    }
  }
  let named: BTreeSet<&str> = summary
    .split("drctl ")
    .skip(1)
    .filter_map(|rest| rest.split(|c: char| !c.is_ascii_lowercase()).next())
    .filter(|name| !name.is_empty() && *name != "yaml")
    .collect();
  for name in named {
    assert!(
      top.iter().any(|command| command == name),
      "the README names `drctl {name}`, which is not a subcommand ({top:?})"
    );
  }
}

#[test]
fn the_runbooks_table_lists_every_shipped_runbook_and_drill_files_are_named() {
  let readme = read("README.md");
  let table = section(&readme, "## Runbooks");
  for dir in ["runbooks", "drills"] {
    for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
      let name = entry.unwrap().file_name().to_string_lossy().into_owned();
      let named = if dir == "runbooks" {
        table.contains(&format!("`{name}`"))
      } else {
        readme.contains(&name) || readme.contains(name.trim_end_matches(".yaml"))
      };
      assert!(named, "the README does not name {dir}/{name}");
    }
  }
}

#[test]
fn the_docs_link_only_inside_the_repository_and_to_paths_that_exist() {
  for doc in ["README.md", "ARCHITECTURE.md"] {
    let text = read(doc);
    assert!(
      !text.contains("](../") && !text.contains("](/"),
      "{doc} links outside the repository"
    );
    for (at, _) in text.match_indices("](") {
      let target = &text[at + 2..];
      let target = &target[..target.find(')').unwrap_or(target.len())];
      if target.starts_with("http") || target.starts_with('#') {
        continue;
      }
      let path = target.split('#').next().unwrap_or(target);
      assert!(
        repo().join(path).exists(),
        "{doc} links to {target}, which does not exist"
      );
    }
    let issue_number = text.match_indices('#').any(|(at, _)| {
      text[at + 1..].starts_with(|c: char| c.is_ascii_digit())
        && (text[..at].ends_with("issue ") || text[..at].ends_with('('))
    });
    assert!(!issue_number, "{doc} refers to issue numbers");
  }
}

#[test]
fn every_source_path_architecture_md_names_exists() {
  let text = read("ARCHITECTURE.md");
  let mut named = 0;
  for (at, _) in text.match_indices('`') {
    let rest = &text[at + 1..];
    let Some(end) = rest.find('`') else { break };
    let path = &rest[..end];
    let path = path.split("::").next().unwrap_or(path);
    if !(path.starts_with("src/") || path.starts_with("tests/") || path.starts_with("benches"))
      || path.contains('<')
      || path.contains(' ')
    {
      continue;
    }
    named += 1;
    assert!(
      repo().join(path).exists(),
      "ARCHITECTURE.md names {path}, which does not exist"
    );
  }
  assert!(named >= 15, "ARCHITECTURE.md names {named} paths");
}
