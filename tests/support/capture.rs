//! A tiny HTTP/1.1 server on 127.0.0.1 that records every request (method, path, headers, body)
//! and answers with scripted statuses (200 once the script runs out): the far end of webhooks,
//! Slack and PagerDuty notifications and HTTP checks in tests.

use std::{
  collections::{BTreeMap, VecDeque},
  io::{BufRead, BufReader, Read, Write},
  net::TcpListener,
  sync::{Arc, Condvar, Mutex},
};

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Captured {
  pub method: String,
  pub path: String,
  /// Lower-cased names.
  pub headers: BTreeMap<String, String>,
  pub body: String,
}

#[derive(Default)]
struct Script {
  /// Statuses to answer, in order; 200 once they run out.
  statuses: VecDeque<u16>,
  /// Hold the answer to the next request until released.
  hold_next: bool,
  released: bool,
}

pub struct Capture {
  pub port: u16,
  seen: Arc<Mutex<Vec<Captured>>>,
  script: Arc<(Mutex<Script>, Condvar)>,
}

impl Capture {
  pub fn start(statuses: &[u16]) -> Capture {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new((
      Mutex::new(Script {
        statuses: statuses.iter().copied().collect(),
        ..Script::default()
      }),
      Condvar::new(),
    ));
    let (seen_in, script_in) = (seen.clone(), script.clone());
    std::thread::spawn(move || {
      for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some(request) = read_request(&mut stream) else {
          continue;
        };
        seen_in.lock().unwrap().push(request);
        let status = {
          let (lock, wake) = &*script_in;
          let mut script = lock.lock().unwrap();
          if script.hold_next {
            script.hold_next = false;
            while !script.released {
              script = wake.wait(script).unwrap();
            }
          }
          script.statuses.pop_front().unwrap_or(200)
        };
        let body = r#"{"status":"success"}"#;
        let _ = write!(
          stream,
          "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
          body.len()
        );
      }
    });
    Capture { port, seen, script }
  }

  pub fn url(&self, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", self.port)
  }

  pub fn seen(&self) -> Vec<Captured> {
    self.seen.lock().unwrap().clone()
  }

  /// Answer the next requests with these statuses.
  pub fn script(&self, statuses: &[u16]) {
    self
      .script
      .0
      .lock()
      .unwrap()
      .statuses
      .extend(statuses.iter().copied());
  }

  /// Hold the answer to the next request until [`Capture::release`].
  pub fn hold_next(&self) {
    self.script.0.lock().unwrap().hold_next = true;
  }

  pub fn release(&self) {
    let (lock, wake) = &*self.script;
    lock.lock().unwrap().released = true;
    wake.notify_all();
  }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Captured> {
  let mut reader = BufReader::new(stream.try_clone().ok()?);
  let mut line = String::new();
  if reader.read_line(&mut line).ok()? == 0 {
    return None;
  }
  let mut parts = line.split_whitespace();
  let method = parts.next().unwrap_or_default().to_string();
  let path = parts.next().unwrap_or_default().to_string();
  let mut headers = BTreeMap::new();
  loop {
    let mut header = String::new();
    reader.read_line(&mut header).ok()?;
    let header = header.trim_end();
    if header.is_empty() {
      break;
    }
    if let Some((name, value)) = header.split_once(':') {
      headers.insert(name.to_ascii_lowercase(), value.trim().to_string());
    }
  }
  let length: usize = headers
    .get("content-length")
    .and_then(|length| length.parse().ok())
    .unwrap_or(0);
  let mut body = vec![0; length];
  reader.read_exact(&mut body).ok()?;
  Some(Captured {
    method,
    path,
    headers,
    body: String::from_utf8_lossy(&body).into_owned(),
  })
}
