//! A real browser for tests: Debian's headless Chromium driven through Debian's chromedriver by
//! Selenium (`tests/support/browser.py`, one JSON request and answer per line). Nothing is
//! downloaded: the browser, the driver and Selenium are the system's (`.ci/test` installs the
//! packages `chromium`, `chromium-driver` and `python3-selenium`). Chromium runs with a fresh
//! profile, its background networking off and a closed loopback port as the proxy for anything
//! not on loopback, so it reaches only the pages a test opens on loopback.
//!
//! Every method panics with the browser's error, so a test reads as a script:
//! `browser.open(url); browser.click("#approve"); browser.wait_for_text("approved", LIMIT)`.
//! The browser quits when the [`Browser`] is dropped.

use std::{
  io::{BufRead, BufReader, Write},
  path::Path,
  process::{Child, ChildStdin, Command, Stdio},
  sync::mpsc::{self, Receiver},
  time::Duration,
};

use serde_json::{json, Value};

use super::repo;

/// How long the browser may take to start, and to answer a request beyond its own timeout.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);
const ANSWER_SLACK: Duration = Duration::from_secs(60);

/// The interpreters that may have Selenium: the one on PATH (where `pip` installs), then
/// Debian's, where the `python3-selenium` package installs it.
const INTERPRETERS: &[&str] = &["python3", "/usr/bin/python3"];

pub struct Browser {
  child: Child,
  stdin: ChildStdin,
  answers: Receiver<String>,
  _profile: tempfile::TempDir,
}

/// The first interpreter that can import Selenium.
fn selenium_python() -> &'static str {
  INTERPRETERS
    .iter()
    .copied()
    .find(|python| {
      Command::new(python)
        .args(["-c", "import selenium.webdriver"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
    })
    .unwrap_or_else(|| {
      panic!(
        "no Python interpreter ({}) can import selenium: the browser tests need Debian's \
         python3-selenium, chromium and chromium-driver (`apt-get install python3-selenium \
         chromium chromium-driver`; .ci/test does)",
        INTERPRETERS.join(", ")
      )
    })
}

impl Browser {
  /// Start headless Chromium; panics saying what is missing if it cannot.
  pub fn start() -> Browser {
    let python = selenium_python();
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let mut child = Command::new(python)
      .arg(repo().join("tests/support/browser.py"))
      .arg(profile.path())
      .stdin(Stdio::piped())
      .stdout(Stdio::piped())
      .stderr(Stdio::inherit())
      .spawn()
      .unwrap_or_else(|err| panic!("cannot start {python} for the browser: {err}"));
    let stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    // Answers come through a channel so that a hung browser fails the test instead of hanging it.
    let (sender, answers) = mpsc::channel();
    std::thread::spawn(move || {
      for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if sender.send(line).is_err() {
          break;
        }
      }
    });
    let mut browser = Browser {
      child,
      stdin,
      answers,
      _profile: profile,
    };
    browser.answer("start", STARTUP_LIMIT);
    browser
  }

  /// Load `url` and wait for it to finish loading.
  pub fn open(&mut self, url: &str) {
    self.request(json!({ "cmd": "open", "url": url }), Duration::ZERO);
  }

  /// Wait until an element matches the CSS `selector`.
  pub fn wait_for_element(&mut self, selector: &str, limit: Duration) {
    self.request(
      json!({ "cmd": "wait_css", "css": selector, "timeout": limit.as_secs_f64() }),
      limit,
    );
  }

  /// Wait until the page's text contains `text`.
  pub fn wait_for_text(&mut self, text: &str, limit: Duration) {
    self.request(
      json!({ "cmd": "wait_text", "text": text, "timeout": limit.as_secs_f64() }),
      limit,
    );
  }

  /// Click the element the CSS `selector` matches (a button, a link).
  pub fn click(&mut self, selector: &str) {
    self.request(json!({ "cmd": "click", "css": selector }), Duration::ZERO);
  }

  /// The page's text as a person sees it (the body's rendered text).
  pub fn text(&mut self) -> String {
    self.value(json!({ "cmd": "text" }))
  }

  /// The page's DOM as it stands, serialised.
  pub fn dom(&mut self) -> String {
    self.value(json!({ "cmd": "dom" }))
  }

  /// Write a PNG screenshot of the viewport (1280×800) to `path`.
  pub fn screenshot(&mut self, path: &Path) {
    let path = path.to_str().expect("a UTF-8 screenshot path");
    self.request(json!({ "cmd": "screenshot", "path": path }), Duration::ZERO);
  }

  /// Replace the text of the field the CSS `selector` matches with `text`, typed as keystrokes.
  pub fn type_into(&mut self, selector: &str, text: &str) {
    self.request(
      json!({ "cmd": "type", "css": selector, "text": text }),
      Duration::ZERO,
    );
  }

  fn value(&mut self, request: Value) -> String {
    let answer = self.request(request, Duration::ZERO);
    answer["value"]
      .as_str()
      .unwrap_or_else(|| panic!("the browser answered without a value: {answer}"))
      .to_string()
  }

  /// Send one request and wait for its answer: its own `limit` plus some slack.
  fn request(&mut self, request: Value, limit: Duration) -> Value {
    writeln!(self.stdin, "{request}")
      .and_then(|()| self.stdin.flush())
      .unwrap_or_else(|err| panic!("the browser is gone ({err}) before {request}"));
    self.answer(&request.to_string(), limit + ANSWER_SLACK)
  }

  fn answer(&mut self, what: &str, limit: Duration) -> Value {
    let line = self
      .answers
      .recv_timeout(limit)
      .unwrap_or_else(|err| panic!("the browser did not answer {what} within {limit:?} ({err})"));
    let answer: Value = serde_json::from_str(&line)
      .unwrap_or_else(|err| panic!("the browser's answer to {what} is not JSON ({err}): {line}"));
    assert!(
      answer["ok"] == true,
      "the browser failed {what}: {}",
      answer["error"].as_str().unwrap_or(&line)
    );
    answer
  }
}

impl Drop for Browser {
  fn drop(&mut self) {
    let quit =
      writeln!(self.stdin, "{}", json!({ "cmd": "quit" })).and_then(|()| self.stdin.flush());
    // Give the driver a moment to close Chromium, then make sure nothing is left behind.
    if quit.is_ok() {
      let _ = self.answers.recv_timeout(Duration::from_secs(20));
    }
    let _ = self.child.kill();
    let _ = self.child.wait();
  }
}
