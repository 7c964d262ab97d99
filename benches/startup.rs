//! P4, the CLI's own costs: `drctl validate` over 1,000 generated runbooks, and `drctl
//! --version` start-up. (P4's third figure, peak RSS on the fleet run, is measured by the fleet
//! section, which runs the fleet.)

use std::time::{Duration, Instant};

use crate::{overhead::median, support, Config, Measured, Row};

/// Write `count` runbooks into `dir/runbooks`: the shipped runbooks (29 to 102 lines, every
/// action family, templates, rollbacks, `always` clean-up), each copy with its own name and its
/// own resource names, as a company with one runbook per service would have them.
fn generate(dir: &std::path::Path, count: usize) -> (usize, usize) {
  let mut shipped: Vec<(String, String)> = std::fs::read_dir(support::repo().join("runbooks"))
    .expect("runbooks/ is readable")
    .flatten()
    .filter_map(|entry| {
      let name = entry.file_name().to_string_lossy().into_owned();
      let stem = name.strip_suffix(".yaml")?.to_owned();
      Some((stem, std::fs::read_to_string(entry.path()).ok()?))
    })
    .collect();
  shipped.sort();
  assert!(!shipped.is_empty(), "no shipped runbooks to generate from");
  let out = dir.join("runbooks");
  std::fs::create_dir_all(&out).expect("create the runbooks directory");
  let mut bytes = 0;
  let mut lines = 0;
  for i in 0..count {
    let (stem, text) = &shipped[i % shipped.len()];
    let service = format!("svc{i:04}");
    let text = text
      .replace(&format!("name: {stem}"), &format!("name: {stem}-{service}"))
      .replace("app-db-replica", &format!("{service}-db-replica"))
      .replace("default: api,", &format!("default: {service},"))
      .replace("api.example.com", &format!("{service}.example.com"));
    bytes += text.len();
    lines += text.lines().count();
    std::fs::write(out.join(format!("{stem}-{service}.yaml")), text).expect("write a runbook");
  }
  (bytes, lines)
}

/// CPU time (user + system) of this process's reaped children so far, from `/proc/self/stat`
/// (`cutime` + `cstime`): on a loaded machine the wall time of a short command is mostly
/// waiting for a core, its CPU time is not. `None` off Linux.
fn children_cpu() -> Option<Duration> {
  let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
  // Fields after the command name, which is in parentheses and may hold spaces.
  let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
  // cutime and cstime are fields 16 and 17 of the whole line, 14 and 15 after `(comm)`: the
  // line's field 3 is this list's index 0. Both count USER_HZ ticks, which Linux fixes at 100
  // for /proc whatever the kernel's own tick rate.
  let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
  Some(Duration::from_millis(ticks * 10))
}

/// Instructions `drctl ARGS` executes, counted by valgrind's callgrind (reproducible, unlike
/// times on a shared machine); `None` when valgrind is not installed.
fn instructions(test: &support::Test, args: &[&str]) -> Option<u64> {
  let out = test.path().join("callgrind.out");
  let output = std::process::Command::new("valgrind")
    .arg("--tool=callgrind")
    .arg(format!("--callgrind-out-file={}", out.display()))
    .arg(support::BIN)
    .args(args)
    .current_dir(test.path())
    .stdin(std::process::Stdio::null())
    .output()
    .ok()?;
  if !output.status.success() {
    return None;
  }
  // callgrind's summary line: `==PID== Collected : 158937921`.
  String::from_utf8_lossy(&output.stderr)
    .lines()
    .find_map(|line| {
      line
        .split_once("Collected :")
        .map(|(_, n)| n.trim().to_owned())
    })
    .and_then(|n| n.parse().ok())
}

fn time_command(test: &support::Test, args: &[&str]) -> Duration {
  let started = Instant::now();
  let run = test.run_args(args);
  let elapsed = started.elapsed();
  assert_eq!(
    run.code(),
    0,
    "drctl {args:?} failed:\n{}\n{}",
    run.stdout(),
    run.stderr()
  );
  elapsed
}

/// What profiling found and changed (issue #6, item 5), with the instruction counts measured
/// before and after under callgrind (`valgrind --tool=callgrind drctl validate DIR` over 100
/// generated runbooks, 25 of each shipped one; release build).
const PROFILE: &str = "- Profile (callgrind, release build, `drctl validate` over 100 generated runbooks, 25 of each shipped one): before, 158.9 M instructions (1.59 M per runbook): 38 % in the YAML scanner (yaml-rust2), 30 % in malloc/free, and 15.7 % in `alloc::fmt::format`, mostly 12,325 `format!` calls from the parser building a key path for every YAML node (`parent.name`, `parent[i]`) and more from the validator. Key paths are now built with one exact-size allocation (`runbook::parse::join_key`, `index_key`): 136.9 M instructions after (−13.9 %, 1.37 M per runbook). `drctl --version` executes 2.0 M instructions, 57 % of them the dynamic loader applying the 86,704 relative relocations of the PIE binary; left as is (packing them with `-z pack-relative-relocs` would require glibc ≥ 2.36 wherever drctl runs). The largest overhead of a simulated failover (P1) is not CPU (a whole run uses ~20 ms of CPU) but one `fdatasync` per journal record; see P1.";

pub fn run(config: &Config) -> Measured {
  let (count, version_runs) = if config.bench { (1000, 200) } else { (40, 10) };
  let test = support::Test::new();
  let generated = tempfile::tempdir().expect("a temporary directory");
  let (bytes, lines) = generate(generated.path(), count);
  let dir = generated.path().join("runbooks");
  let dir = dir.to_str().expect("a UTF-8 temporary path");

  // A validation that fails must not count as fast: time_command asserts exit 0, and the
  // output must name every file.
  let first = test.run_args(["validate", dir]);
  assert_eq!(first.code(), 0, "{}\n{}", first.stdout(), first.stderr());
  let cpu_before = children_cpu();
  let mut validate: Vec<f64> = (0..config.repeats.max(3))
    .map(|_| time_command(&test, &["validate", dir]).as_secs_f64())
    .collect();
  let validate_cpu = cpu_before
    .zip(children_cpu())
    .map(|(before, after)| (after - before).as_secs_f64() / validate.len() as f64);
  let validate_all = validate.clone();
  let validate = median(&mut validate);

  let cpu_before = children_cpu();
  let mut version: Vec<f64> = (0..version_runs)
    .map(|_| time_command(&test, &["--version"]).as_secs_f64() * 1000.0)
    .collect();
  let version_cpu = cpu_before
    .zip(children_cpu())
    .map(|(before, after)| (after - before).as_secs_f64() * 1000.0 / version_runs as f64);
  // Instruction counts (bench only: valgrind runs ~50× slower): `--version`, and `validate`
  // over 100 of the generated runbooks.
  let counted = if config.bench {
    let sample = generated.path().join("sample");
    std::fs::create_dir_all(&sample).expect("create the sample directory");
    let mut names: Vec<_> = std::fs::read_dir(dir)
      .expect("read the generated runbooks")
      .flatten()
      .map(|entry| entry.path())
      .collect();
    names.sort();
    // Every tenth, so the sample mixes the shipped runbooks as the whole set does.
    for path in names.iter().step_by((names.len() / 100).max(1)).take(100) {
      std::fs::copy(path, sample.join(path.file_name().expect("a file name")))
        .expect("copy a runbook");
    }
    let sample = sample.to_str().expect("a UTF-8 temporary path").to_owned();
    instructions(&test, &["--version"]).zip(instructions(&test, &["validate", &sample]))
  } else {
    None
  };
  let version_min = version.iter().copied().fold(f64::INFINITY, f64::min);
  let version = median(&mut version);

  let mut rows = vec![
    Row::new(
      "P4",
      format!("`drctl validate` over {count} generated runbooks"),
      format!("{:.0} ms", validate * 1000.0),
      "< 1 s",
      validate < 1.0,
    ),
    Row::new(
      "P4",
      "`drctl --version` start-up",
      format!("{version:.1} ms"),
      "< 10 ms",
      version < 10.0,
    ),
  ];
  rows.push(catch_up());
  if let Some((version_ir, validate_ir)) = counted {
    rows.push(Row::info(
      "P4",
      "instructions: `--version` / `validate` per runbook (callgrind)",
      format!(
        "{:.2} M / {:.2} M",
        version_ir as f64 / 1e6,
        validate_ir as f64 / 1e8
      ),
    ));
  }
  let cpu = |value: Option<f64>, unit: &str| {
    value.map_or("n/a".to_owned(), |value| format!("{value:.1} {unit}"))
  };
  let notes = format!(
    "{PROFILE}\n\
     - CPU time (user + system, from the children's `/proc` accounting): validate {} per run, \
     `--version` {} per run. The machine is shared: the wall times above include waiting for a \
     core.\n\
     - `drctl validate DIR` over {count} runbooks ({:.1} MB, {lines} lines: the shipped \
     runbooks, each copy renamed with its own resource names), median of {} runs: {:.0} ms \
     (runs: {}).\n\
     - `drctl --version`, spawned {version_runs} times from the harness: median {version:.1} ms, \
     fastest {version_min:.1} ms (includes fork/exec and the dynamic loader).\n\
     - Binary: `{}`.\n",
    cpu(validate_cpu.map(|secs| secs * 1000.0), "ms"),
    cpu(version_cpu, "ms"),
    bytes as f64 / 1e6,
    validate_all.len(),
    validate * 1000.0,
    validate_all
      .iter()
      .map(|secs| format!("{:.0} ms", secs * 1000.0))
      .collect::<Vec<_>>()
      .join(", "),
    support::BIN,
  );
  Measured { rows, notes }
}

/// The scheduler's catch-up decision for a per-minute drill six months behind: its latest due
/// time and how many fire times it skipped, computed from whole days.
fn catch_up() -> Row {
  let schedule =
    drctl::drills::Schedule::new("* * * * *", chrono_tz::America::New_York).expect("a schedule");
  let since = "2026-01-01T00:00:00Z".parse().expect("a time");
  let now = "2026-07-01T00:00:00Z".parse().expect("a time");
  let mut work = drctl::drills::cron::Work::default();
  let started = Instant::now();
  let (_, skipped) = schedule
    .latest_due_counting(since, now, &mut work)
    .expect("a due time");
  let elapsed = started.elapsed().as_secs_f64() * 1000.0;
  Row::new(
    "P4",
    format!(
      "scheduler catch-up, per-minute drill 6 months behind ({skipped} skipped; {} candidates, \
       {} days resolved)",
      work.candidates, work.days
    ),
    format!("{elapsed:.1} ms"),
    "< 100 ms",
    elapsed < 100.0,
  )
}
