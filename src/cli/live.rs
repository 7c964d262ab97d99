//! The live view of a run on a terminal: one row per step with its state and elapsed time, the
//! RTO clock against its target, and what a waiting step is waiting on — redrawn in place.
//!
//! Split in two so the drawing is testable without a terminal: [`Board`] folds journal records
//! and waits into the state of the run, and [`frame`] turns a board and an instant into text.
//! [`LiveTty`] is the [`Observer`] that owns a board and redraws it on every event and on a
//! ticker (so clocks move while nothing happens), erasing the previous frame with ANSI codes.
//! Only used when stderr is a terminal and the output is text; otherwise the plain
//! one-line-per-event renderer runs.

use std::{
  io::Write,
  sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex, Weak,
  },
  time::Duration,
};

use chrono::{DateTime, Utc};

use crate::{
  actions::human,
  engine::Observer,
  runbook::format_duration,
  state::{journal::Phase, Event, Record, Redactor, StepOutcome},
};

/// How often the clocks are redrawn while no event arrives.
const TICK: Duration = Duration::from_millis(250);

/// Set while a prompt owns the terminal (an approval): the view does not draw over it.
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Holds the live view still while it lives (an approval prompt is on screen).
pub struct Paused;

impl Paused {
  pub fn new() -> Paused {
    PAUSED.store(true, Ordering::SeqCst);
    Paused
  }
}

impl Drop for Paused {
  fn drop(&mut self) {
    PAUSED.store(false, Ordering::SeqCst);
  }
}

/// Where a step stands in the live view: a journalled [`StepOutcome`], or one of the two
/// in-between states only the view shows (waiting on a condition, about to retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
  Pending,
  Running,
  Waiting,
  Retrying,
  Succeeded,
  Failed,
  Skipped,
}

impl StepState {
  fn word(self) -> &'static str {
    match self {
      StepState::Pending => StepOutcome::Pending.as_str(),
      StepState::Running => StepOutcome::Running.as_str(),
      StepState::Waiting => "waiting",
      StepState::Retrying => "retrying",
      StepState::Succeeded => StepOutcome::Succeeded.as_str(),
      StepState::Failed => StepOutcome::Failed.as_str(),
      StepState::Skipped => StepOutcome::Skipped.as_str(),
    }
  }

  fn mark(self) -> (&'static str, &'static str) {
    match self {
      StepState::Pending => ("·", "2"),
      StepState::Running => ("▶", "36"),
      StepState::Waiting => ("…", "36"),
      StepState::Retrying => ("!", "33"),
      StepState::Succeeded => ("✓", "32"),
      StepState::Failed => ("✗", "31"),
      StepState::Skipped => ("-", "2"),
    }
  }
}

/// One row of the view.
#[derive(Debug, Clone)]
pub struct StepRow {
  pub id: String,
  pub state: StepState,
  pub attempt: u32,
  pub started: Option<DateTime<Utc>>,
  pub ended: Option<DateTime<Utc>>,
  /// What the step is waiting on, and since when.
  pub waiting: Option<(String, DateTime<Utc>)>,
  /// The last summary or error.
  pub note: String,
}

/// The state of a run as the view shows it.
#[derive(Debug, Clone)]
pub struct Board {
  pub title: String,
  pub steps: Vec<StepRow>,
  pub rto: Option<Duration>,
  /// When the RTO clock started (the incident start; default the run's first record).
  pub clock_start: Option<DateTime<Utc>>,
  /// Backend time runs this many times faster than the wall (the simulator).
  pub scale: f64,
  /// `Some(status)` once the run finished or was interrupted: the clock stops.
  pub finished: Option<(String, DateTime<Utc>)>,
  /// The RTO achieved, once the run finished: the clock's final reading. (The run may end after
  /// its last recovery step — a final notification — and that time is not part of the RTO.)
  pub rto_achieved: Option<Duration>,
}

impl Board {
  pub fn new(title: String, steps: &[String], rto: Option<Duration>, scale: f64) -> Board {
    Board {
      title,
      steps: steps
        .iter()
        .map(|id| StepRow {
          id: id.clone(),
          state: StepState::Pending,
          attempt: 0,
          started: None,
          ended: None,
          waiting: None,
          note: String::new(),
        })
        .collect(),
      rto,
      clock_start: None,
      scale,
      finished: None,
      rto_achieved: None,
    }
  }

  fn row(&mut self, id: &str) -> Option<&mut StepRow> {
    self.steps.iter_mut().find(|row| row.id == id)
  }

  /// Fold one journal record in. Rollback records annotate the row without changing its state.
  pub fn apply(&mut self, record: &Record) {
    let ts = record.ts;
    match &record.event {
      Event::RunStarted { incident_start, .. } => {
        self.clock_start = Some(*incident_start.min(&ts));
      }
      Event::RunResumed { .. } => {
        self.finished = None;
        self.rto_achieved = None;
        self.clock_start.get_or_insert(ts);
      }
      Event::StepStarted {
        step,
        attempt,
        phase,
      } => {
        if let Some(row) = self.row(step) {
          if *phase == Phase::Rollback {
            row.note = "rolling back".into();
          } else {
            row.state = StepState::Running;
            row.attempt = *attempt;
            row.started.get_or_insert(ts);
            row.ended = None;
            row.waiting = None;
          }
        }
      }
      Event::StepIntent { step, change, .. } => {
        if let Some(row) = self.row(step) {
          row.note.clone_from(change);
        }
      }
      Event::ProcessStarted { .. } => {}
      Event::StepDispatched { step, what, .. } => {
        if let Some(row) = self.row(step) {
          row.note.clone_from(what);
        }
      }
      Event::StepSucceeded {
        step,
        summary,
        phase,
        ..
      } => {
        if let Some(row) = self.row(step) {
          if *phase == Phase::Rollback {
            row.note = format!("rolled back: {summary}");
          } else {
            row.state = StepState::Succeeded;
            row.ended = Some(ts);
            row.waiting = None;
            row.note.clone_from(summary);
          }
        }
      }
      Event::StepFailed {
        step,
        error,
        will_retry,
        phase,
        ..
      } => {
        if let Some(row) = self.row(step) {
          row.waiting = None;
          row.note.clone_from(&error.message);
          if *phase == Phase::Run {
            if *will_retry {
              row.state = StepState::Retrying;
            } else {
              row.state = StepState::Failed;
              row.ended = Some(ts);
            }
          }
        }
      }
      Event::StepSkipped { step, reason } => {
        if let Some(row) = self.row(step) {
          row.state = StepState::Skipped;
          row.note.clone_from(reason);
        }
      }
      Event::FencePending { step, region, .. } => {
        if let Some(row) = self.row(step) {
          row.note = format!("fence pending until {region} answers");
        }
      }
      Event::ApprovalRequested { step, .. } => {
        let text = super::control::describe(&record.event).map(|(_, text)| text);
        if let (Some(row), Some(text)) = (self.row(step), text) {
          row.state = StepState::Waiting;
          row.waiting = Some((text, ts));
        }
      }
      Event::ApprovalGranted { step, .. }
      | Event::ApprovalDenied { step, .. }
      | Event::ApprovalRefused { step, .. }
      | Event::ApprovalExpired { step, .. } => {
        let text = super::control::describe(&record.event).map(|(_, text)| text);
        if let (Some(row), Some(text)) = (self.row(step), text) {
          row.note = text;
        }
      }
      Event::RunCancelRequested { .. } | Event::ControlIgnored { .. } => {}
      Event::RunInterrupted { signal } => {
        self.finished = Some((format!("interrupted ({signal})"), ts));
      }
      Event::LockLost { .. } => {
        self.finished = Some(("stopped: lock lost".to_string(), ts));
      }
      Event::RunFinished {
        status,
        rto_achieved_ms,
        ..
      } => {
        self.finished = Some((status.as_str().to_string(), ts));
        self.rto_achieved = rto_achieved_ms.map(Duration::from_millis);
      }
      // The live view shows the steps; the wait for recovery is on the progress lines.
      Event::RecoveryWaitStarted { .. } | Event::Recovered { .. } | Event::NotRecovered { .. } => {}
    }
  }

  /// A copy with every text a step reported redacted.
  fn redacted(&self, redactor: &Redactor) -> Board {
    let mut board = self.clone();
    board.title = redactor.redact(&board.title);
    for row in &mut board.steps {
      row.note = redactor.redact(&row.note);
      if let Some((status, _)) = &mut row.waiting {
        *status = redactor.redact(status);
      }
    }
    board
  }

  /// A step reports what it is waiting on.
  pub fn waiting(&mut self, step: &str, status: &str, now: DateTime<Utc>) {
    if let Some(row) = self.row(step) {
      row.state = StepState::Waiting;
      row.waiting = Some((status.to_string(), now));
    }
  }

  /// Backend time between two instants.
  fn span(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    let wall = (to - from).to_std().unwrap_or_default();
    crate::cloud::Clock::scaled(self.scale).to_modelled(wall)
  }
}

/// `line` cut to `columns` visible characters (ANSI colour sequences pass through and count for
/// nothing), with `…` marking the cut. A line wider than the terminal wraps, and the redraw
/// moves the cursor up by *lines*, so a wrapped frame would leave its tail on screen.
fn clip(line: &str, columns: usize) -> String {
  let mut out = String::with_capacity(line.len());
  let mut visible = 0;
  let mut chars = line.chars().peekable();
  let total = strip_ansi(line).chars().count();
  if total <= columns {
    return line.to_string();
  }
  while let Some(c) = chars.next() {
    if c == '\x1b' {
      out.push(c);
      // CSI: ESC [ parameters final-byte.
      for next in chars.by_ref() {
        out.push(next);
        if next.is_ascii_alphabetic() {
          break;
        }
      }
      continue;
    }
    if visible + 1 >= columns {
      out.push('…');
      // Keep a colour reset that follows, so the cut never leaves the terminal painted.
      if line.contains('\x1b') {
        out.push_str("\x1b[0m");
      }
      break;
    }
    out.push(c);
    visible += 1;
  }
  out
}

/// `text` without ANSI CSI sequences.
fn strip_ansi(text: &str) -> String {
  let mut out = String::with_capacity(text.len());
  let mut chars = text.chars();
  while let Some(c) = chars.next() {
    if c == '\x1b' {
      for next in chars.by_ref() {
        if next.is_ascii_alphabetic() {
          break;
        }
      }
    } else {
      out.push(c);
    }
  }
  out
}

/// The terminal's width in columns (stderr's), when it has one. Asked before every frame: the
/// window may be resized while a run goes on.
#[allow(unsafe_code)]
fn terminal_columns() -> Option<usize> {
  let mut size = libc::winsize {
    ws_row: 0,
    ws_col: 0,
    ws_xpixel: 0,
    ws_ypixel: 0,
  };
  // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points at a live local of
  // that type; on failure (not a terminal) it writes nothing and returns -1.
  let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
  (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// The frame for `board` at `now`. Pure: the same board and instant give the same text. Lines
/// are clipped to `columns` when the terminal's width is known.
pub fn frame(board: &Board, now: DateTime<Utc>, color: bool, columns: Option<usize>) -> String {
  let text = frame_lines(board, now, color, columns);
  match columns {
    Some(columns) => text
      .lines()
      .map(|line| format!("{}\n", clip(line, columns)))
      .collect(),
    None => text,
  }
}

fn frame_lines(board: &Board, now: DateTime<Utc>, color: bool, columns: Option<usize>) -> String {
  let paint = |code: &str, text: &str| {
    if color {
      format!("\x1b[{code}m{text}\x1b[0m")
    } else {
      text.to_string()
    }
  };
  let end = board.finished.as_ref().map_or(now, |(_, at)| *at);
  let mut text = format!("{}\n", board.title);
  let elapsed = board.rto_achieved.unwrap_or_else(|| {
    board
      .clock_start
      .map(|start| board.span(start, end))
      .unwrap_or_default()
  });
  let mut clock = format!("RTO clock {}", human(elapsed));
  match board.rto {
    Some(target) => {
      let share = elapsed.as_secs_f64() / target.as_secs_f64().max(f64::EPSILON);
      const WIDTH: usize = 20;
      // Saturating float-to-int casts: a share above 1 fills the bar.
      let filled = ((share * WIDTH as f64).round() as usize).min(WIDTH);
      let bar = format!("{}{}", "█".repeat(filled), "░".repeat(WIDTH - filled));
      let verdict = if elapsed > target {
        paint("31", "BREACHED")
      } else {
        format!("{}%", (share * 100.0).floor() as u64)
      };
      clock.push_str(&format!(
        " / target {}  [{bar}] {verdict}",
        format_duration(target)
      ));
    }
    None => clock.push_str(" (no RTO target)"),
  }
  if let Some((status, _)) = &board.finished {
    clock.push_str(&format!("  · run {status}"));
  }
  text.push_str(&clock);
  text.push('\n');
  let width = board
    .steps
    .iter()
    .map(|row| row.id.len())
    .max()
    .unwrap_or(4);
  for row in &board.steps {
    let (mark, code) = row.state.mark();
    let time = match (row.started, row.ended) {
      (Some(start), Some(stop)) => human(board.span(start, stop)),
      (Some(start), None) if board.finished.is_none() => human(board.span(start, now)),
      (Some(start), None) => human(board.span(start, end)),
      _ => String::new(),
    };
    let attempt = if row.attempt > 1 {
      format!(" (attempt {})", row.attempt)
    } else {
      String::new()
    };
    let prefix = format!(
      "  {mark} {:<width$}  {:<9} {:>7}  ",
      row.id,
      row.state.word(),
      time
    );
    // Room left for the detail on this terminal.
    let room = columns
      .map(|columns| columns.saturating_sub(prefix.chars().count() + attempt.chars().count()));
    let detail = match (&row.waiting, row.state) {
      (Some((status, since)), StepState::Waiting) => {
        // How long it has waited matters most: cut the status, never the time.
        let waited = format!(", {}", human(board.span(*since, end)));
        let status = match room {
          Some(room) => clip(status, room.saturating_sub(waited.chars().count())),
          None => status.clone(),
        };
        format!("{status}{waited}")
      }
      _ if row.state == StepState::Pending => String::new(),
      _ => row.note.clone(),
    };
    let line = format!(
      "  {} {:<width$}  {:<9} {:>7}  {detail}{attempt}",
      paint(code, mark),
      row.id,
      row.state.word(),
      time,
    );
    text.push_str(line.trim_end());
    text.push('\n');
  }
  text
}

struct Inner {
  board: Mutex<Board>,
  redactor: Redactor,
  color: bool,
  /// Lines of the frame on screen (erased before the next one).
  drawn: Mutex<usize>,
  done: AtomicBool,
}

impl Inner {
  fn draw(&self) {
    if PAUSED.load(Ordering::SeqCst) {
      // The prompt scrolled the old frame away: start a fresh one below it afterwards.
      *self.drawn.lock().unwrap_or_else(|p| p.into_inner()) = 0;
      return;
    }
    let text = {
      let board = self.board.lock().unwrap_or_else(|p| p.into_inner());
      // Redact before the frame is cut to the terminal's width: a cut secret would no longer
      // match the redactor.
      let board = board.redacted(&self.redactor);
      frame(&board, Utc::now(), self.color, terminal_columns())
    };
    let mut drawn = self.drawn.lock().unwrap_or_else(|p| p.into_inner());
    let mut stderr = std::io::stderr().lock();
    if *drawn > 0 {
      // Up to the first line of the previous frame, then clear to the end of the screen.
      let _ = write!(stderr, "\x1b[{}F\x1b[J", *drawn);
    }
    let _ = write!(stderr, "{text}");
    let _ = stderr.flush();
    *drawn = text.lines().count();
  }
}

/// The live view as an [`Observer`].
pub struct LiveTty {
  inner: Arc<Inner>,
}

impl LiveTty {
  pub fn start(board: Board, redactor: Redactor, color: bool) -> LiveTty {
    let inner = Arc::new(Inner {
      board: Mutex::new(board),
      redactor,
      color,
      drawn: Mutex::new(0),
      done: AtomicBool::new(false),
    });
    let weak: Weak<Inner> = Arc::downgrade(&inner);
    // The ticker ends with the run (or when the view is dropped).
    std::thread::spawn(move || loop {
      std::thread::sleep(TICK);
      let Some(inner) = weak.upgrade() else { break };
      if inner.done.load(Ordering::SeqCst) {
        break;
      }
      inner.draw();
    });
    LiveTty { inner }
  }
}

impl Observer for LiveTty {
  fn record(&self, record: &Record) {
    let finished = matches!(
      record.event,
      Event::RunFinished { .. } | Event::RunInterrupted { .. }
    );
    self
      .inner
      .board
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .apply(record);
    self.inner.draw();
    if finished {
      self.inner.done.store(true, Ordering::SeqCst);
    }
  }

  fn waiting(&self, step: &str, status: &str) {
    self
      .inner
      .board
      .lock()
      .unwrap_or_else(|p| p.into_inner())
      .waiting(step, status, Utc::now());
    self.inner.draw();
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::state::{RunStatus, StepError};

  fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
  }

  fn record(secs: i64, event: Event) -> Record {
    Record {
      seq: 0,
      ts: at(secs),
      event,
    }
  }

  fn board() -> Board {
    let steps = ["verify-outage", "promote-db", "scale-app", "flip-dns"].map(String::from);
    let mut board = Board::new(
      "drctl run r1 · regional-failover · backend sim".into(),
      &steps,
      Some(Duration::from_secs(15 * 60)),
      1.0,
    );
    board.clock_start = Some(at(0));
    board
  }

  #[test]
  fn a_frame_shows_states_times_the_rto_clock_and_the_wait() {
    let mut board = board();
    let started = |step: &str, secs| {
      record(
        secs,
        Event::StepStarted {
          step: step.into(),
          attempt: 1,
          phase: Phase::Run,
        },
      )
    };
    board.apply(&started("verify-outage", 0));
    board.apply(&record(
      4,
      Event::StepSucceeded {
        step: "verify-outage".into(),
        attempt: 1,
        summary: "hc-primary is unhealthy".into(),
        changed: false,
        phase: Phase::Run,
        outputs: Default::default(),
        data_loss_ms: None,
        data_loss_unknown: None,
      },
    ));
    board.apply(&started("promote-db", 5));
    board.waiting("promote-db", "replica status: modifying", at(20));
    board.apply(&started("scale-app", 5));
    board.apply(&record(
      30,
      Event::StepFailed {
        step: "scale-app".into(),
        attempt: 1,
        error: StepError {
          message: "ThrottlingException".into(),
          code: None,
          request_id: None,
          http_status: None,
          retryable: true,
        },
        will_retry: true,
        backoff_ms: Some(2000),
        phase: Phase::Run,
      },
    ));
    let text = frame(&board, at(150), false, None);
    assert_eq!(
      text,
      "drctl run r1 · regional-failover · backend sim\n\
       RTO clock 2m30s / target 15m  [███░░░░░░░░░░░░░░░░░] 16%\n\
       \x20 ✓ verify-outage  succeeded      4s  hc-primary is unhealthy\n\
       \x20 … promote-db     waiting     2m25s  replica status: modifying, 2m10s\n\
       \x20 ! scale-app      retrying    2m25s  ThrottlingException\n\
       \x20 · flip-dns       pending\n"
    );
  }

  #[test]
  fn the_clock_stops_at_the_end_and_shows_a_breach() {
    let mut board = board();
    board.apply(&record(
      1000,
      Event::RunFinished {
        status: RunStatus::Breached,
        rto_achieved_ms: Some(1_000_000),
        rpo_achieved_ms: None,
        failed_step: None,
      },
    ));
    let text = frame(&board, at(5000), false, None);
    assert!(
      text
        .contains("RTO clock 16m40s / target 15m  [████████████████████] BREACHED  · run breached"),
      "{text}"
    );
  }

  #[test]
  fn the_final_clock_is_the_rto_achieved_not_the_run_end() {
    let mut board = board();
    // The last recovery step ended at 6m; a final notification kept the run going to 7m.
    board.apply(&record(
      420,
      Event::RunFinished {
        status: RunStatus::Succeeded,
        rto_achieved_ms: Some(360_000),
        rpo_achieved_ms: None,
        failed_step: None,
      },
    ));
    let text = frame(&board, at(5000), false, None);
    assert!(text.contains("RTO clock 6m00s / target 15m"), "{text}");
  }

  #[test]
  fn a_narrow_terminal_cuts_the_wait_status_but_keeps_how_long() {
    let mut board = board();
    board.apply(&record(
      5,
      Event::StepStarted {
        step: "promote-db".into(),
        attempt: 1,
        phase: Phase::Run,
      },
    ));
    board.waiting(
      "promote-db",
      "replica status: modifying, still a replica of arn:aws:rds:us-east-1:123456789012:db:app-db",
      at(20),
    );
    let text = frame(&board, at(150), false, Some(60));
    let line = text
      .lines()
      .find(|line| line.contains("promote-db"))
      .unwrap();
    assert_eq!(
      line,
      "  … promote-db     waiting     2m25s  replica status…, 2m10s"
    );
  }

  #[test]
  fn lines_are_clipped_to_the_terminal_width_keeping_colours_balanced() {
    let mut board = board();
    board.title = "x".repeat(100);
    let text = frame(&board, at(10), true, Some(40));
    for line in text.lines() {
      assert!(strip_ansi(line).chars().count() <= 40, "{line:?}");
    }
    let title = text.lines().next().unwrap();
    assert_eq!(title, format!("{}…", "x".repeat(39)));
    assert_eq!(clip("\x1b[32m✓\x1b[0m short", 40), "\x1b[32m✓\x1b[0m short");
    assert_eq!(
      clip("\x1b[32m✓\x1b[0m a long note", 8),
      "\x1b[32m✓\x1b[0m a lon…\x1b[0m"
    );
  }
}
