//! The browser harness (`support::browser`) against a page served on 127.0.0.1 by a tiny server
//! in the test: a button whose click POSTs to the server and shows its answer, as a status
//! page's approve button does.

use std::{
  io::Write,
  net::{TcpListener, TcpStream},
  path::Path,
  sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
  },
  time::Duration,
};

use crate::support::{browser::Browser, origin::read_request};

const LIMIT: Duration = Duration::from_secs(30);

const PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>harness</title>
<style>
  body { font: 18px sans-serif; margin: 40px; background: #fff; color: #111; }
  #state { padding: 20px; background: #fde68a; width: 400px; }
  #state.done { background: #86efac; }
</style></head>
<body>
<h1>Approval</h1>
<p id="state">waiting for approval</p>
<button id="approve" type="button">Approve</button>
<script>
  document.getElementById("approve").addEventListener("click", async () => {
    const answer = await fetch("/approve", { method: "POST", body: "step=promote-db" });
    const state = document.getElementById("state");
    state.textContent = await answer.text();
    state.className = "done";
    const done = document.createElement("p");
    done.id = "released";
    done.textContent = "run released";
    document.body.appendChild(done);
  });
</script>
</body></html>
"#;

/// Serves `PAGE` at `/` and counts `POST /approve`s; returns its URL and the count.
fn serve_page() -> (String, Arc<AtomicUsize>) {
  let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
  let url = format!("http://{}/", listener.local_addr().expect("local address"));
  let approvals = Arc::new(AtomicUsize::new(0));
  let counter = approvals.clone();
  std::thread::spawn(move || {
    for stream in listener.incoming() {
      let Ok(stream) = stream else { continue };
      let counter = counter.clone();
      // One thread per connection: Chromium may open a connection it sends nothing on.
      std::thread::spawn(move || answer(stream, &counter));
    }
  });
  (url, approvals)
}

fn answer(mut stream: TcpStream, approvals: &AtomicUsize) {
  let Some(request) = read_request(&stream) else {
    return;
  };
  let (status, kind, body) = match (request.method.as_str(), request.target.as_str()) {
    ("GET", "/") => ("200 OK", "text/html; charset=utf-8", PAGE.to_string()),
    ("POST", "/approve") if request.body == b"step=promote-db" => {
      let n = approvals.fetch_add(1, Ordering::SeqCst) + 1;
      ("200 OK", "text/plain", format!("approved ({n})"))
    }
    _ => ("404 Not Found", "text/plain", "not found".to_string()),
  };
  let _ = write!(
    stream,
    "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
    body.len()
  );
}

/// The width and height in a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32, usize) {
  let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
  assert!(
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 24 && &bytes[12..16] == b"IHDR",
    "{} is not a PNG",
    path.display()
  );
  let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
  (word(16), word(20), bytes.len())
}

#[test]
fn browser_clicks_a_button_and_screenshots_the_page() {
  let (url, approvals) = serve_page();
  let shots = tempfile::tempdir().unwrap();
  let before = shots.path().join("before.png");
  let after = shots.path().join("after.png");

  let mut browser = Browser::start();
  browser.open(&url);
  browser.wait_for_element("#approve", LIMIT);
  assert!(browser.text().contains("waiting for approval"));
  browser.screenshot(&before);

  browser.click("#approve");
  browser.wait_for_element("#released", LIMIT);
  browser.wait_for_text("approved (1)", LIMIT);
  let text = browser.text();
  assert!(
    text.contains("approved (1)") && text.contains("run released"),
    "{text}"
  );
  assert!(!text.contains("waiting for approval"), "{text}");
  assert!(
    browser
      .dom()
      .contains(r#"<p id="state" class="done">approved (1)</p>"#),
    "{}",
    browser.dom()
  );
  assert_eq!(approvals.load(Ordering::SeqCst), 1, "one POST /approve");
  browser.screenshot(&after);
  drop(browser);

  for shot in [&before, &after] {
    let (width, height, bytes) = png_size(shot);
    assert_eq!((width, height), (1280, 800), "{}", shot.display());
    // A blank 1280×800 page compresses to a few hundred bytes; text and colours take more.
    assert!(bytes > 5_000, "{}: only {bytes} bytes", shot.display());
  }
  assert_ne!(
    std::fs::read(&before).unwrap(),
    std::fs::read(&after).unwrap(),
    "the click changed what the page shows"
  );
}

#[test]
fn browser_reports_a_missing_element_with_its_selector() {
  let (url, _) = serve_page();
  let mut browser = Browser::start();
  browser.open(&url);
  let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    browser.wait_for_element("#no-such-button", Duration::from_millis(500))
  }))
  .expect_err("waiting for a missing element fails");
  let message = failure
    .downcast_ref::<String>()
    .cloned()
    .unwrap_or_default();
  assert!(
    message.contains("no element matches `#no-such-button`"),
    "{message}"
  );
  // The browser still answers after a failed request.
  assert!(browser.text().contains("waiting for approval"));
}
