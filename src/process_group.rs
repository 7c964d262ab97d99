//! The process groups of the commands drctl runs (`exec.command`), and what `/proc` says about
//! processes.
//!
//! Invariants:
//! * Every command is the leader of its own process group (pgid = its pid), so the command and
//!   everything it starts (a `sh -c` with background jobs, a script's children) are killed
//!   together.
//! * While a command may run, a [`ChildGroup`] holds its group. Dropping it SIGKILLs the whole
//!   group, so a step that ends in any way (finished, timed out, interrupted, its task aborted)
//!   leaves nothing running in the group.
//! * Every held group is in one registry; [`kill_all`] SIGKILLs them all, for the second
//!   interrupt and for drctl's exit, when there is no time to wait for steps to unwind.
//! * A SIGKILLed drctl runs none of this. The journal therefore records each group
//!   (`process_started`, with the leader's start time), and [`left_behind`] finds what survived
//!   from a run. A recorded pgid counts only while its leader has the start time recorded
//!   (pids are reused); a group whose leader has exited counts only for members carrying the
//!   run's marker in their environment (`DRCTL_RUN_ID`).

use std::{collections::BTreeSet, path::Path, sync::Mutex};

/// Groups held by a [`ChildGroup`] in this process.
static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// The environment variable every command gets with its run's id: the marker that ties a
/// process (and its descendants, who inherit it) to the run.
pub const RUN_ID_VAR: &str = "DRCTL_RUN_ID";

/// A signal drctl sends to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
  /// Ask to stop (the grace period of a timeout or interrupt).
  Term,
  /// Stop now.
  Kill,
}

impl Signal {
  fn number(self) -> libc::c_int {
    match self {
      Signal::Term => libc::SIGTERM,
      Signal::Kill => libc::SIGKILL,
    }
  }
}

/// The process group of a running command, SIGKILLed when dropped.
#[derive(Debug)]
pub struct ChildGroup {
  pgid: u32,
}

impl ChildGroup {
  /// Hold the group led by `leader`, a child spawned with `process_group(0)` and not yet
  /// reaped (so its pid cannot have been reused).
  pub fn adopt(leader: u32) -> ChildGroup {
    live().insert(leader);
    ChildGroup { pgid: leader }
  }

  pub fn pgid(&self) -> u32 {
    self.pgid
  }

  /// Signal every process in the group.
  pub fn signal(&self, signal: Signal) {
    signal_group(self.pgid, signal);
  }

  /// Let the group outlive this process (`drctl sandbox up`): no longer held, never killed.
  pub fn release(self) {
    live().remove(&self.pgid);
    std::mem::forget(self);
  }
}

/// Signal the group a record names, only while its leader is the process recorded (same start
/// time): a pid reused since is left alone. Returns whether the signal was sent.
pub fn signal_recorded(group: RecordedGroup, signal: Signal) -> bool {
  start_time(group.pgid) == Some(group.leader_start) && signal_group(group.pgid, signal)
}

impl Drop for ChildGroup {
  fn drop(&mut self) {
    signal_group(self.pgid, Signal::Kill);
    live().remove(&self.pgid);
  }
}

fn live() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
  // The set stays consistent whatever a panicking holder did: each change is one insert or remove.
  LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SIGKILL every group a [`ChildGroup`] holds (they stay registered until dropped). Returns how
/// many there were.
pub fn kill_all() -> usize {
  let groups = live().clone();
  for &pgid in &groups {
    signal_group(pgid, Signal::Kill);
  }
  groups.len()
}

/// `kill(-pgid, signal)`. Refuses the pgids that mean something else to kill(2): 0 (our own
/// group) and 1 (with the minus sign: every process we may signal).
#[allow(unsafe_code)]
fn signal_group(pgid: u32, signal: Signal) -> bool {
  let Ok(pgid) = libc::pid_t::try_from(pgid) else {
    return false;
  };
  if pgid <= 1 {
    return false;
  }
  // SAFETY: kill(2) takes plain integers and touches no memory of ours.
  unsafe { libc::kill(-pgid, signal.number()) == 0 }
}

/// `kill(pid, SIGKILL)` for one process.
#[allow(unsafe_code)]
fn kill_process(pid: u32) {
  let Ok(pid) = libc::pid_t::try_from(pid) else {
    return;
  };
  if pid <= 1 {
    return;
  }
  // SAFETY: kill(2) takes plain integers and touches no memory of ours.
  unsafe {
    libc::kill(pid, libc::SIGKILL);
  }
}

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
  pub pid: u32,
  pub ppid: u32,
  pub pgrp: u32,
  /// Field 22: when the process started, in clock ticks after boot. With the pid it names one
  /// process for the life of the machine.
  pub start_time: u64,
  /// Exited and not yet reaped (state `Z`, or `X` while being reaped).
  pub zombie: bool,
}

/// Parse a `/proc/PID/stat` line. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted from the last `)`.
fn parse_stat(pid: u32, text: &str) -> Option<ProcStat> {
  let rest = &text[text.rfind(')')? + 1..];
  let fields: Vec<&str> = rest.split_whitespace().collect();
  // `fields[0]` is field 3 (state), so field N is `fields[N - 3]`.
  Some(ProcStat {
    pid,
    zombie: matches!(*fields.first()?, "Z" | "X"),
    ppid: fields.get(1)?.parse().ok()?,
    pgrp: fields.get(2)?.parse().ok()?,
    start_time: fields.get(19)?.parse().ok()?,
  })
}

/// `/proc/PID/stat` of a process, if it exists.
pub fn stat(pid: u32) -> Option<ProcStat> {
  let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
  parse_stat(pid, &text)
}

/// When a process started (`/proc/PID/stat` field 22), if it exists.
pub fn start_time(pid: u32) -> Option<u64> {
  stat(pid).map(|stat| stat.start_time)
}

/// A process group a run recorded (`process_started`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedGroup {
  pub pgid: u32,
  /// The leader's start time when the group was recorded.
  pub leader_start: u64,
}

/// A process found still running after its run's drctl went away.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Survivor {
  pub pid: u32,
  pub pgid: u32,
  /// Its command line, shortened (for the operator to recognise it).
  pub command: String,
}

/// Processes a run left behind: members of its recorded groups (while the leader is the one
/// recorded, or when they carry the run's marker) and any other process carrying the marker.
/// A process whose ancestors include one of `owners` (the run's own drctl processes, still
/// alive) is supervised, not left behind; so is this process.
pub fn left_behind(run_id: &str, groups: &[RecordedGroup], owners: &[u32]) -> Vec<Survivor> {
  left_behind_in(Path::new("/proc"), run_id, groups, owners)
}

fn left_behind_in(
  proc: &Path,
  run_id: &str,
  groups: &[RecordedGroup],
  owners: &[u32],
) -> Vec<Survivor> {
  let processes = scan(proc);
  let by_pid: std::collections::HashMap<u32, &ProcStat> =
    processes.iter().map(|stat| (stat.pid, stat)).collect();
  let marker = format!("{RUN_ID_VAR}={run_id}");
  let me = std::process::id();
  let supervised = |mut pid: u32| {
    // Bounded: a ppid loop cannot happen, but /proc is read while it changes.
    for _ in 0..256 {
      if pid == me || owners.contains(&pid) {
        return true;
      }
      match by_pid.get(&pid) {
        Some(stat) if stat.ppid > 1 => pid = stat.ppid,
        _ => return false,
      }
    }
    false
  };
  let mut survivors = Vec::new();
  for process in processes.iter().filter(|stat| !stat.zombie) {
    let recorded = groups.iter().find(|group| group.pgid == process.pgrp);
    let leader_is_recorded = recorded.is_some_and(|group| {
      by_pid
        .get(&group.pgid)
        .is_some_and(|leader| leader.start_time == group.leader_start)
    });
    if !leader_is_recorded && !has_marker(proc, process.pid, &marker) {
      continue;
    }
    if supervised(process.pid) {
      continue;
    }
    survivors.push(Survivor {
      pid: process.pid,
      pgid: process.pgrp,
      command: command_line(proc, process.pid),
    });
  }
  survivors
}

/// SIGKILL what [`left_behind`] found: whole groups whose leader is still the recorded one,
/// single processes otherwise.
pub fn kill_survivors(survivors: &[Survivor], groups: &[RecordedGroup]) {
  for survivor in survivors {
    let whole_group = groups.iter().any(|group| {
      group.pgid == survivor.pgid && start_time(group.pgid) == Some(group.leader_start)
    });
    if whole_group {
      signal_group(survivor.pgid, Signal::Kill);
    } else {
      kill_process(survivor.pid);
    }
  }
}

/// Every process in `/proc` whose stat can be read.
fn scan(proc: &Path) -> Vec<ProcStat> {
  let Ok(entries) = std::fs::read_dir(proc) else {
    return Vec::new();
  };
  entries
    .flatten()
    .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
    .filter_map(|pid| {
      let text = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
      parse_stat(pid, &text)
    })
    .collect()
}

/// Whether the process's environment holds exactly `marker` (`NAME=value`). Unreadable
/// environments (other users' processes) hold nothing.
fn has_marker(proc: &Path, pid: u32, marker: &str) -> bool {
  std::fs::read(proc.join(pid.to_string()).join("environ")).is_ok_and(|environ| {
    environ
      .split(|&byte| byte == 0)
      .any(|entry| entry == marker.as_bytes())
  })
}

/// The process's command line, arguments joined by spaces and cut at 120 characters.
fn command_line(proc: &Path, pid: u32) -> String {
  let raw = std::fs::read(proc.join(pid.to_string()).join("cmdline")).unwrap_or_default();
  let text: String = raw
    .split(|&byte| byte == 0)
    .filter(|part| !part.is_empty())
    .map(String::from_utf8_lossy)
    .collect::<Vec<_>>()
    .join(" ");
  match text.char_indices().nth(120) {
    Some((end, _)) => format!("{}…", &text[..end]),
    None => text,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn stat_fields_are_counted_from_the_last_parenthesis() {
    let line = "4242 (sh -c (x) y) S 4200 4242 4100 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 \
                987654 2000000 100 18446744073709551615";
    let stat = parse_stat(4242, line).unwrap();
    assert_eq!(
      stat,
      ProcStat {
        pid: 4242,
        ppid: 4200,
        pgrp: 4242,
        start_time: 987654,
        zombie: false,
      }
    );
    assert!(parse_stat(1, "1 (init) Z 0 1").is_none(), "too short");
    let zombie = "7 (sh) Z 1 7 7 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 55 0 0";
    assert!(parse_stat(7, zombie).unwrap().zombie);
    assert!(!super::stat(std::process::id()).unwrap().zombie);
    assert!(parse_stat(1, "no parenthesis").is_none());
  }

  #[test]
  fn this_process_has_a_start_time_that_names_it() {
    let me = stat(std::process::id()).unwrap();
    assert!(me.start_time > 0);
    assert!(!me.zombie);
    assert_eq!(start_time(std::process::id()), Some(me.start_time));
  }

  /// A fake `/proc`: one recorded group whose leader was replaced (pid reused: another start
  /// time) is not the run's, unless a member carries the run's marker; a marked process outside
  /// any group is found; a process under a live owner is supervised.
  #[test]
  fn survivors_are_recorded_leaders_or_marked_processes_without_a_live_owner() {
    let proc = tempfile::tempdir().unwrap();
    let process = |pid: u32, ppid: u32, pgrp: u32, start: u64, environ: &str| {
      let dir = proc.path().join(pid.to_string());
      std::fs::create_dir_all(&dir).unwrap();
      let mut fields = vec!["0"; 20];
      fields[19] = "START";
      let line = format!("{pid} (cmd) S {ppid} {pgrp} {}", fields[3..].join(" "))
        .replace("START", &start.to_string());
      std::fs::write(dir.join("stat"), line).unwrap();
      std::fs::write(dir.join("environ"), environ.replace(' ', "\0")).unwrap();
      std::fs::write(dir.join("cmdline"), format!("sleep\0{pid}\0")).unwrap();
    };
    // Group 100: leader recorded with start 5 and still that process.
    process(100, 1, 100, 5, "PATH=/bin");
    process(101, 100, 100, 6, "PATH=/bin");
    // Group 200: recorded with start 7, but pid 200 is now another process (start 9).
    process(200, 1, 200, 9, "PATH=/bin");
    process(201, 1, 200, 10, "DRCTL_RUN_ID=run-a");
    // A marked process in a group nobody recorded.
    process(300, 1, 300, 11, "X=1 DRCTL_RUN_ID=run-a");
    // Another run's marker, and a prefix of this one's.
    process(400, 1, 400, 12, "DRCTL_RUN_ID=run-b DRCTL_RUN_ID=run-");
    // A marked child of a live owner (pid 500).
    process(500, 1, 500, 13, "");
    process(501, 500, 501, 14, "DRCTL_RUN_ID=run-a");
    let groups = [
      RecordedGroup {
        pgid: 100,
        leader_start: 5,
      },
      RecordedGroup {
        pgid: 200,
        leader_start: 7,
      },
    ];
    let mut found: Vec<u32> = left_behind_in(proc.path(), "run-a", &groups, &[500])
      .iter()
      .map(|survivor| survivor.pid)
      .collect();
    found.sort();
    assert_eq!(found, [100, 101, 201, 300]);
    let all = left_behind_in(proc.path(), "run-a", &groups, &[]);
    assert!(all.iter().any(|survivor| survivor.pid == 501));
    assert_eq!(all[0].command.split(' ').next(), Some("sleep"));
  }
}
