//! Crash-safe persistence of a world: `world.json` (the initial world, written once,
//! atomically) and `operations.jsonl` (one line per accepted mutating call, fsynced before the
//! call returns). An effect exists iff its line is complete; a torn last line is dropped.

use std::{
  fs::{self, File, OpenOptions},
  io::{self, Write},
  os::unix::fs::OpenOptionsExt,
  path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{world::WorldSpec, Operation, SimError};

pub(crate) const WORLD_FILE: &str = "world.json";
pub(crate) const LOG_FILE: &str = "operations.jsonl";
/// The format of `world.json` (and of the `operations.jsonl` beside it).
const FORMAT_VERSION: u32 = crate::format::Kind::SimWorld.current();

/// `world.json`: the world as it was created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorldFile {
  pub version: u32,
  pub created_at: DateTime<Utc>,
  /// The effective time scale (the world's, or the override it was opened with).
  pub time_scale: f64,
  pub world: WorldSpec,
}

impl WorldFile {
  pub fn new(world: WorldSpec, created_at: DateTime<Utc>, time_scale: f64) -> Self {
    Self {
      version: FORMAT_VERSION,
      created_at,
      time_scale,
      world,
    }
  }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SimError + '_ {
  move |source| SimError::Io {
    path: path.to_path_buf(),
    source,
  }
}

/// Write `world.json` atomically: a temporary file, fsync, rename, fsync the directory.
pub(crate) fn write_world(dir: &Path, file: &WorldFile) -> Result<(), SimError> {
  let path = dir.join(WORLD_FILE);
  let tmp = dir.join(format!("{WORLD_FILE}.tmp"));
  let bytes = serde_json::to_vec_pretty(file).map_err(|err| SimError::World {
    path: path.clone(),
    message: err.to_string(),
  })?;
  {
    // State is private (0600), and the temporary name is ours alone: a leftover from a crash
    // is replaced, a symlink planted there is not followed.
    let _ = fs::remove_file(&tmp);
    let mut out = OpenOptions::new()
      .write(true)
      .create_new(true)
      .mode(0o600)
      .custom_flags(libc::O_NOFOLLOW)
      .open(&tmp)
      .map_err(io_error(&tmp))?;
    out.write_all(&bytes).map_err(io_error(&tmp))?;
    out.sync_all().map_err(io_error(&tmp))?;
  }
  fs::rename(&tmp, &path).map_err(io_error(&path))?;
  sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), SimError> {
  File::open(dir)
    .and_then(|handle| handle.sync_all())
    .map_err(io_error(dir))
}

/// Refuse a `world.json` a newer drctl wrote (before its fields are judged: a newer world may
/// have fields this drctl does not know). A run directory without one passes.
pub(crate) fn check_world_format(dir: &Path) -> Result<(), SimError> {
  let path = dir.join(WORLD_FILE);
  let text = match fs::read_to_string(&path) {
    Ok(text) => text,
    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
    Err(err) => return Err(io_error(&path)(err)),
  };
  let version = serde_json::from_str::<serde_json::Value>(&text)
    .ok()
    .and_then(|value| value.get("version").and_then(serde_json::Value::as_u64));
  match version {
    Some(found) if found > u64::from(FORMAT_VERSION) => {
      Err(SimError::NewerFormat(crate::format::NewerFormat {
        kind: crate::format::Kind::SimWorld,
        location: path.display().to_string(),
        found,
      }))
    }
    _ => Ok(()),
  }
}

pub(crate) fn read_world(dir: &Path) -> Result<WorldFile, SimError> {
  check_world_format(dir)?;
  let path = dir.join(WORLD_FILE);
  let text = fs::read_to_string(&path).map_err(io_error(&path))?;
  let file: WorldFile = serde_json::from_str(&text).map_err(|err| SimError::World {
    path: path.clone(),
    message: err.to_string(),
  })?;
  if file.version != FORMAT_VERSION {
    return Err(SimError::World {
      path,
      message: format!(
        "unsupported simulator state version {} (expected {FORMAT_VERSION})",
        file.version
      ),
    });
  }
  file.world.validate().map_err(|message| SimError::World {
    path: path.clone(),
    message,
  })?;
  Ok(file)
}

/// The complete operations of a log and the byte length they end at (anything after is a torn
/// write of a call that never returned).
pub(crate) struct LogContents {
  pub ops: Vec<Operation>,
  pub valid_len: u64,
}

/// Parse `operations.jsonl`. A missing file is an empty log. The last line is torn when it has
/// no newline or does not parse; any earlier bad line is corruption and an error.
pub(crate) fn read_log(dir: &Path) -> Result<LogContents, SimError> {
  let path = dir.join(LOG_FILE);
  let bytes = match fs::read(&path) {
    Ok(bytes) => bytes,
    Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
    Err(err) => return Err(io_error(&path)(err)),
  };
  let mut ops: Vec<Operation> = Vec::new();
  let mut offset = 0usize;
  let mut valid_len = 0usize;
  while offset < bytes.len() {
    let Some(newline) = bytes[offset..].iter().position(|&b| b == b'\n') else {
      // No newline: the write of this line never completed.
      break;
    };
    let end = offset + newline;
    let line = &bytes[offset..end];
    let is_last = end + 1 >= bytes.len();
    match serde_json::from_slice::<Operation>(line) {
      Ok(op) => {
        let expected = ops.last().map_or(1, |last| last.seq + 1);
        if op.seq != expected {
          return Err(SimError::World {
            path,
            message: format!(
              "operation log is corrupt at byte {offset}: sequence {} where {expected} was expected",
              op.seq
            ),
          });
        }
        ops.push(op);
        valid_len = end + 1;
      }
      Err(_) if is_last => break,
      Err(err) => {
        return Err(SimError::World {
          path,
          message: format!("operation log is corrupt at byte {offset}: {err}"),
        })
      }
    }
    offset = end + 1;
  }
  Ok(LogContents {
    ops,
    // usize always fits in u64 on supported targets.
    valid_len: valid_len as u64,
  })
}

/// The append side of `operations.jsonl`.
#[derive(Debug)]
pub(crate) struct OpLog {
  path: PathBuf,
  file: File,
  len: u64,
}

impl OpLog {
  /// Open for appending, cutting away anything after `valid_len` (a torn last line).
  pub fn open(dir: &Path, valid_len: u64) -> Result<OpLog, SimError> {
    let path = dir.join(LOG_FILE);
    let file = OpenOptions::new()
      .create(true)
      .append(true)
      .mode(0o600)
      .custom_flags(libc::O_NOFOLLOW)
      .open(&path)
      .map_err(io_error(&path))?;
    let len = file.metadata().map_err(io_error(&path))?.len();
    if len != valid_len {
      file.set_len(valid_len).map_err(io_error(&path))?;
      file.sync_all().map_err(io_error(&path))?;
    }
    sync_dir(dir)?;
    Ok(OpLog {
      path,
      file,
      len: valid_len,
    })
  }

  /// Append one operation and fsync it. On failure nothing of the line remains.
  pub fn append(&mut self, op: &Operation) -> io::Result<()> {
    let mut line = serde_json::to_vec(op).map_err(io::Error::other)?;
    line.push(b'\n');
    let written = self
      .file
      .write_all(&line)
      .and_then(|()| self.file.sync_data());
    match written {
      Ok(()) => {
        self.len += line.len() as u64;
        Ok(())
      }
      Err(err) => {
        // Cut the partial line away so later appends do not follow garbage; if even that fails
        // the next open drops the torn tail.
        let _ = self.file.set_len(self.len);
        Err(err)
      }
    }
  }

  pub fn path(&self) -> &Path {
    &self.path
  }
}
