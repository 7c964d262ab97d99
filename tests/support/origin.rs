//! A scripted HTTP/1.1 origin on any loopback address (`127.0.0.1`, `127.0.0.2`, ...: Linux
//! routes all of 127/8 to `lo`, so two addresses are two hosts to a client). It records every
//! request and every byte it received, and answers each with the next scripted [`Reply`]:
//! a status, a redirect, or a large body streamed without holding it in memory. The far end of
//! the redirect, body-cap and proxy tests, which run on the `aws` backend ([`aws_test`]) so that
//! requests go through the real HTTP provider.

use std::{
  collections::{BTreeMap, VecDeque},
  io::{BufRead, BufReader, Read, Write},
  net::{TcpListener, TcpStream},
  sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
  },
};

use super::{Run, Test};

/// `drctl run check.yaml --aws --yes`: the real HTTP provider, with no AWS call unless the
/// runbook makes one.
pub const RUN: [&str; 4] = ["run", "check.yaml", "--aws", "--yes"];

/// A test on the `aws` backend that can never reach AWS (no credentials, no metadata service,
/// no shared config).
pub fn aws_test() -> Test {
  Test::new()
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing")
    .env("AWS_EC2_METADATA_DISABLED", "true")
    .env("AWS_CONFIG_FILE", "/nonexistent")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    // Every AWS call drctl makes on its own (the caller identity) goes to a closed loopback
    // port and fails at once, never to AWS.
    .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
}

/// The variables that choose proxies and trust: removed from the environment of every run,
/// then set as each test asks.
pub const NETWORK_ENV: [&str; 10] = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
  "NO_PROXY",
  "no_proxy",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
];

/// `drctl run check.yaml --aws --yes` with exactly these of [`NETWORK_ENV`] set.
pub fn run_with(test: &Test, network: &[(&str, &str)]) -> Run {
  let mut command = test.command(RUN);
  for name in NETWORK_ENV {
    command.env_remove(name);
  }
  for (name, value) in network {
    command.env(name, value);
  }
  Run(command.output().expect("drctl runs"))
}

/// One request the origin saw.
#[derive(Debug, Clone)]
pub struct Request {
  pub method: String,
  /// The request target as sent: a path, or an absolute URL when sent to a proxy.
  pub target: String,
  /// Lower-cased names.
  pub headers: BTreeMap<String, String>,
  pub body: Vec<u8>,
  /// Every byte of the request as received (request line, headers, body).
  pub raw: Vec<u8>,
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
  /// This status, with a short body.
  Status(u16),
  /// This 3xx status with a `Location` header.
  Redirect(u16, String),
  /// 200 with a body of `size` bytes of `x` ending in `tail` (`size` counts the tail).
  Large { size: u64, tail: String },
}

pub struct Origin {
  pub ip: String,
  pub port: u16,
  seen: Arc<Mutex<Vec<Request>>>,
  replies: Arc<Mutex<VecDeque<Reply>>>,
  /// Bytes of response bodies written successfully.
  pub body_bytes_sent: Arc<AtomicU64>,
}

impl Origin {
  /// Listen on `ip` (a loopback address) and answer with `replies` in order, then `200`.
  pub fn start(ip: &str, replies: Vec<Reply>) -> Origin {
    let listener = TcpListener::bind((ip, 0)).expect("bind a loopback address");
    let port = listener.local_addr().expect("local address").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
    let body_bytes_sent = Arc::new(AtomicU64::new(0));
    let (seen_in, replies_in, sent_in) = (seen.clone(), replies.clone(), body_bytes_sent.clone());
    std::thread::spawn(move || {
      for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let (seen, replies, sent) = (seen_in.clone(), replies_in.clone(), sent_in.clone());
        // One thread per connection: a client that stops reading a large body must not block
        // the next one.
        std::thread::spawn(move || serve(stream, &seen, &replies, &sent));
      }
    });
    Origin {
      ip: ip.to_string(),
      port,
      seen,
      replies,
      body_bytes_sent,
    }
  }

  pub fn url(&self, path: &str) -> String {
    format!("http://{}:{}{path}", self.ip, self.port)
  }

  pub fn authority(&self) -> String {
    format!("{}:{}", self.ip, self.port)
  }

  pub fn seen(&self) -> Vec<Request> {
    self.seen.lock().unwrap().clone()
  }

  /// Every byte every request carried (zero when nothing reached this host).
  pub fn bytes_received(&self) -> usize {
    self.seen().iter().map(|request| request.raw.len()).sum()
  }

  /// Answer the next requests with these.
  pub fn script(&self, replies: Vec<Reply>) {
    self.replies.lock().unwrap().extend(replies);
  }
}

fn serve(
  mut stream: TcpStream,
  seen: &Mutex<Vec<Request>>,
  replies: &Mutex<VecDeque<Reply>>,
  sent: &AtomicU64,
) {
  let Some(request) = read_request(&stream) else {
    return;
  };
  seen.lock().unwrap().push(request);
  let reply = replies.lock().unwrap().pop_front();
  let _ = match reply.unwrap_or(Reply::Status(200)) {
    Reply::Status(status) => write!(
      stream,
      "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
    ),
    Reply::Redirect(status, location) => write!(
      stream,
      "HTTP/1.1 {status} Moved\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ),
    Reply::Large { size, tail } => write_large(&mut stream, size, &tail, sent),
  };
}

fn write_large(
  stream: &mut TcpStream,
  size: u64,
  tail: &str,
  sent: &AtomicU64,
) -> std::io::Result<()> {
  write!(
    stream,
    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
  )?;
  let chunk = vec![b'x'; 64 * 1024];
  let mut left = size.saturating_sub(tail.len() as u64);
  while left > 0 {
    let n = left.min(chunk.len() as u64) as usize;
    stream.write_all(&chunk[..n])?;
    sent.fetch_add(n as u64, Ordering::Relaxed);
    left -= n as u64;
  }
  stream.write_all(tail.as_bytes())?;
  sent.fetch_add(tail.len() as u64, Ordering::Relaxed);
  Ok(())
}

/// Read one request (headers, and a `content-length` body), keeping every byte.
pub fn read_request(stream: &TcpStream) -> Option<Request> {
  let mut reader = BufReader::new(stream.try_clone().ok()?);
  let mut raw = Vec::new();
  let mut line = String::new();
  if reader.read_line(&mut line).ok()? == 0 {
    return None;
  }
  raw.extend_from_slice(line.as_bytes());
  let mut parts = line.split_whitespace();
  let method = parts.next().unwrap_or_default().to_string();
  let target = parts.next().unwrap_or_default().to_string();
  let mut headers = BTreeMap::new();
  loop {
    let mut header = String::new();
    if reader.read_line(&mut header).ok()? == 0 {
      break;
    }
    raw.extend_from_slice(header.as_bytes());
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
  raw.extend_from_slice(&body);
  Some(Request {
    method,
    target,
    headers,
    body,
    raw,
  })
}
