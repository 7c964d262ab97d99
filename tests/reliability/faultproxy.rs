//! A loopback HTTP/1.1 proxy in front of moto that injects AWS faults, for the SDK path of the
//! `faults` section.
//!
//! Each AWS API request (not the sandbox's own `/drctl-sandbox/` routes) is, at random:
//! answered with that service's throttling error in its own protocol, answered with a 5xx,
//! delayed (a latency spike) and then forwarded, held open without an answer (a hung call,
//! until the client gives up), or forwarded as is. The protocols: Route 53 and S3 are restXml
//! (`<ErrorResponse><Error><Code>` and S3's bare `<Error>`), RDS and CloudWatch are awsQuery
//! (`<ErrorResponse>` with `<RequestId>`), ECS is awsJson1_1 (`__type` and `x-amzn-errortype`).
//! Every injected error carries a request id header (and in the body where the protocol has
//! one), so that the user-facing error can be checked for it.
//!
//! The proxy reads one request at a time per connection (the SDK's connection pool keeps
//! connections alive) and forwards each on a fresh `Connection: close` connection to moto.

use std::{
  collections::BTreeMap,
  sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex, PoisonError,
  },
  time::Duration,
};

use drctl::cloud::wire::{self, WireOp};
use tokio::{
  io::{AsyncReadExt, AsyncWriteExt},
  net::{TcpListener, TcpStream},
};

/// Probabilities per AWS API request.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
  pub throttle: f64,
  pub error: f64,
  pub hang: f64,
  pub spike: f64,
  pub spike_latency: Duration,
  /// Also hang the AWS request with this number (1-based), so that a short run meets a hang.
  pub hang_nth: Option<u64>,
  /// Answer every call of this operation with `AccessDenied` (403) and IAM's long message naming
  /// the missing permission ([`denied_message`]).
  pub deny: Option<&'static str>,
}

/// What the proxy did, for the figures.
#[derive(Default, Debug, Clone)]
pub struct Stats {
  pub requests: u64,
  pub throttled: u64,
  pub errors: u64,
  pub spikes: u64,
  pub hung: u64,
  /// Hung calls the client gave up on (closed the connection).
  pub hung_released: u64,
  /// Calls answered `AccessDenied`.
  pub denied: u64,
  /// Forwarded requests moto answered 2xx: (operation, request body) → count.
  pub applied: BTreeMap<(String, String), u64>,
}

struct Shared {
  upstream: u16,
  rates: Rates,
  rng: Mutex<fastrand::Rng>,
  stats: Mutex<Stats>,
  ids: AtomicU64,
  requests: AtomicU64,
}

pub struct FaultProxy {
  pub port: u16,
  shared: Arc<Shared>,
  runtime: Option<tokio::runtime::Runtime>,
}

impl FaultProxy {
  /// Listen on a free loopback port and forward to `upstream` (moto's port).
  pub fn start(upstream: u16, rates: Rates, seed: u64) -> FaultProxy {
    let runtime = tokio::runtime::Builder::new_multi_thread()
      .worker_threads(2)
      .enable_all()
      .build()
      .expect("a tokio runtime for the fault proxy");
    let listener = runtime
      .block_on(TcpListener::bind("127.0.0.1:0"))
      .expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let shared = Arc::new(Shared {
      upstream,
      rates,
      rng: Mutex::new(fastrand::Rng::with_seed(seed)),
      stats: Mutex::new(Stats::default()),
      ids: AtomicU64::new(1),
      requests: AtomicU64::new(0),
    });
    let accept = shared.clone();
    runtime.spawn(async move {
      while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(serve(stream, accept.clone()));
      }
    });
    FaultProxy {
      port,
      shared,
      runtime: Some(runtime),
    }
  }

  pub fn endpoint(&self) -> String {
    format!("http://127.0.0.1:{}", self.port)
  }

  /// The figures so far, and start counting afresh.
  pub fn take_stats(&self) -> Stats {
    std::mem::take(&mut *lock(&self.shared.stats))
  }
}

impl Drop for FaultProxy {
  fn drop(&mut self) {
    if let Some(runtime) = self.runtime.take() {
      // Hung connections are still parked; do not wait for them.
      runtime.shutdown_background();
    }
  }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
  mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One HTTP/1.1 request as read from the client.
struct Request {
  head: String,
  method: String,
  path: String,
  headers: Vec<(String, String)>,
  body: Vec<u8>,
}

impl Request {
  fn header(&self, name: &str) -> Option<&str> {
    self
      .headers
      .iter()
      .find(|(key, _)| key.eq_ignore_ascii_case(name))
      .map(|(_, value)| value.as_str())
  }

  /// The service from the SigV4 credential scope (`Credential=AKID/date/region/SERVICE/aws4_request`).
  fn service(&self) -> String {
    self
      .header("authorization")
      .and_then(|auth| auth.split("Credential=").nth(1))
      .and_then(|scope| scope.split('/').nth(3))
      .unwrap_or("unknown")
      .to_string()
  }

  /// The operation, as the one wire decoder reads it; a REST request that is not Route 53's
  /// is named after its service (S3's, when it is one).
  fn operation(&self, service: &str) -> String {
    let body = String::from_utf8_lossy(&self.body);
    let header = |name: &str| self.header(name).map(str::to_owned);
    match wire::operation(&self.method, &self.path, header, &body) {
      WireOp::Unrecognised(_) if service != "s3" => {
        let path = self.path.split('?').next().unwrap_or_default();
        format!("{service} {} {path}", self.method)
      }
      decoded => decoded.name().to_owned(),
    }
  }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
  let head_end = loop {
    if let Some(end) = find(buffer, b"\r\n\r\n") {
      break end;
    }
    let mut chunk = [0u8; 8192];
    let read = stream.read(&mut chunk).await.ok()?;
    if read == 0 {
      return None;
    }
    buffer.extend_from_slice(&chunk[..read]);
  };
  let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
  buffer.drain(..head_end + 4);
  let mut lines = head.split("\r\n");
  let request_line = lines.next()?;
  let mut parts = request_line.split(' ');
  let method = parts.next()?.to_string();
  let path = parts.next()?.to_string();
  let headers: Vec<(String, String)> = lines
    .filter_map(|line| line.split_once(':'))
    .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
    .collect();
  let mut request = Request {
    head,
    method,
    path,
    headers,
    body: Vec::new(),
  };
  if request
    .header("transfer-encoding")
    .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
  {
    request.body = read_chunked(stream, buffer).await?;
  } else {
    let length: usize = request
      .header("content-length")
      .and_then(|value| value.parse().ok())
      .unwrap_or(0);
    while buffer.len() < length {
      let mut chunk = [0u8; 8192];
      let read = stream.read(&mut chunk).await.ok()?;
      if read == 0 {
        return None;
      }
      buffer.extend_from_slice(&chunk[..read]);
    }
    request.body = buffer.drain(..length).collect();
  }
  Some(request)
}

async fn read_chunked(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
  let mut body = Vec::new();
  loop {
    let line_end = loop {
      if let Some(end) = find(buffer, b"\r\n") {
        break end;
      }
      let mut chunk = [0u8; 8192];
      let read = stream.read(&mut chunk).await.ok()?;
      if read == 0 {
        return None;
      }
      buffer.extend_from_slice(&chunk[..read]);
    };
    let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
    let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
    buffer.drain(..line_end + 2);
    while buffer.len() < size + 2 {
      let mut chunk = [0u8; 8192];
      let read = stream.read(&mut chunk).await.ok()?;
      if read == 0 {
        return None;
      }
      buffer.extend_from_slice(&chunk[..read]);
    }
    body.extend(buffer.drain(..size));
    buffer.drain(..2);
    if size == 0 {
      return Some(body);
    }
  }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
  haystack
    .windows(needle.len())
    .position(|window| window == needle)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
  Pass,
  Throttle,
  Error,
  Hang,
  Deny,
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
  let mut buffer = Vec::new();
  while let Some(request) = read_request(&mut client, &mut buffer).await {
    let aws =
      !request.path.starts_with("/drctl-sandbox/") && !request.path.starts_with("/moto-api");
    let service = request.service();
    let operation = request.operation(&service);
    let (fate, spike) = if aws && shared.rates.deny == Some(operation.as_str()) {
      (Fate::Deny, None)
    } else if aws {
      let rates = shared.rates;
      let number = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
      let mut rng = lock(&shared.rng);
      let draw = rng.f64();
      let fate = if draw < rates.hang || rates.hang_nth == Some(number) {
        Fate::Hang
      } else if draw < rates.hang + rates.throttle {
        Fate::Throttle
      } else if draw < rates.hang + rates.throttle + rates.error {
        Fate::Error
      } else {
        Fate::Pass
      };
      let spike = (rng.f64() < rates.spike).then_some(rates.spike_latency);
      (fate, spike)
    } else {
      (Fate::Pass, None)
    };
    if aws {
      let mut stats = lock(&shared.stats);
      stats.requests += 1;
      match fate {
        Fate::Throttle => stats.throttled += 1,
        Fate::Error => stats.errors += 1,
        Fate::Hang => stats.hung += 1,
        Fate::Deny => stats.denied += 1,
        Fate::Pass => {}
      }
      if spike.is_some() {
        stats.spikes += 1;
      }
    }
    if let Some(latency) = spike {
      tokio::time::sleep(latency).await;
    }
    let response = match fate {
      Fate::Hang => {
        // Hold the connection open without an answer until the client gives up on it.
        let mut sink = [0u8; 1024];
        loop {
          match tokio::time::timeout(Duration::from_secs(600), client.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
          }
        }
        lock(&shared.stats).hung_released += 1;
        return;
      }
      Fate::Throttle | Fate::Error => {
        let id = format!(
          "drctl-fault-{:08}",
          shared.ids.fetch_add(1, Ordering::Relaxed)
        );
        aws_error(&service, &request, fate == Fate::Throttle, &id)
      }
      Fate::Deny => {
        let id = format!(
          "drctl-fault-{:08}",
          shared.ids.fetch_add(1, Ordering::Relaxed)
        );
        access_denied(&service, &operation, &id)
      }
      Fate::Pass => match forward(shared.upstream, &request).await {
        Some((status, response)) => {
          if aws && (200..300).contains(&status) && is_mutating(&operation) {
            let key = (
              operation.clone(),
              String::from_utf8_lossy(&request.body).into_owned(),
            );
            *lock(&shared.stats).applied.entry(key).or_default() += 1;
          }
          response
        }
        None => b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n".to_vec(),
      },
    };
    if client.write_all(&response).await.is_err() {
      return;
    }
  }
}

/// Send the request to moto on a fresh connection and re-frame the answer for a kept-alive
/// client connection: (status, bytes to send).
async fn forward(upstream: u16, request: &Request) -> Option<(u16, Vec<u8>)> {
  let mut server = TcpStream::connect(("127.0.0.1", upstream)).await.ok()?;
  let mut head = String::new();
  let mut lines = request.head.split("\r\n");
  head.push_str(lines.next()?);
  head.push_str("\r\n");
  for (key, value) in &request.headers {
    if ["connection", "content-length", "transfer-encoding"]
      .iter()
      .any(|skip| key.eq_ignore_ascii_case(skip))
    {
      continue;
    }
    head.push_str(&format!("{key}: {value}\r\n"));
  }
  head.push_str(&format!(
    "content-length: {}\r\nconnection: close\r\n\r\n",
    request.body.len()
  ));
  server.write_all(head.as_bytes()).await.ok()?;
  server.write_all(&request.body).await.ok()?;
  let mut raw = Vec::new();
  server.read_to_end(&mut raw).await.ok()?;
  let head_end = find(&raw, b"\r\n\r\n")?;
  let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
  let mut body = raw[head_end + 4..].to_vec();
  let mut lines = head.split("\r\n");
  let status_line = lines.next()?.to_string();
  let status: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
  let headers: Vec<(String, String)> = lines
    .filter_map(|line| line.split_once(':'))
    .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
    .collect();
  let chunked = headers.iter().any(|(key, value)| {
    key.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
  });
  if chunked {
    body = dechunk(&body)?;
  }
  let head_request = request.method == "HEAD";
  let mut out = format!("{status_line}\r\n");
  for (key, value) in &headers {
    let framing = ["connection", "transfer-encoding"]
      .iter()
      .any(|skip| key.eq_ignore_ascii_case(skip))
      // A HEAD answer keeps the length of the object it describes.
      || (!head_request && key.eq_ignore_ascii_case("content-length"));
    if !framing {
      out.push_str(&format!("{key}: {value}\r\n"));
    }
  }
  if head_request {
    body.clear();
  } else {
    out.push_str(&format!("content-length: {}\r\n", body.len()));
  }
  out.push_str("\r\n");
  let mut bytes = out.into_bytes();
  bytes.extend_from_slice(&body);
  Some((status, bytes))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
  let mut body = Vec::new();
  loop {
    let end = find(raw, b"\r\n")?;
    let size_text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
    raw = &raw[end + 2..];
    if size == 0 {
      return Some(body);
    }
    body.extend_from_slice(raw.get(..size)?);
    raw = raw.get(size + 2..)?;
  }
}

/// A throttling error or a 5xx in the protocol of `service`, with request id `id`.
fn aws_error(service: &str, request: &Request, throttle: bool, id: &str) -> Vec<u8> {
  let (status, content_type, extra_headers, body) = match service {
    // awsJson1_1.
    "ecs" => {
      let (status, code, message) = if throttle {
        (400, "ThrottlingException", "Rate exceeded")
      } else {
        (
          500,
          "ServerException",
          "Service unavailable, try again later",
        )
      };
      (
        status,
        "application/x-amz-json-1.1",
        format!("x-amzn-errortype: {code}:http://internal.amazon.com/coral/com.amazon.coral.availability/\r\n"),
        format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
      )
    }
    // restXml with S3's own error document (no `ErrorResponse` wrapper).
    "s3" => {
      let (status, code, message) = if throttle {
        (503, "SlowDown", "Please reduce your request rate.")
      } else {
        (
          500,
          "InternalError",
          "We encountered an internal error. Please try again.",
        )
      };
      let body = if request.method == "HEAD" {
        String::new()
      } else {
        format!(
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{id}</RequestId><HostId>drctl-fault-proxy</HostId></Error>"
        )
      };
      (
        status,
        "application/xml",
        format!("x-amz-request-id: {id}\r\nx-amz-id-2: drctl-fault-proxy\r\n"),
        body,
      )
    }
    // restXml (Route 53) and awsQuery (RDS, CloudWatch): an `ErrorResponse` document.
    _ => {
      let (status, kind, code, message) = if throttle {
        (400, "Sender", "Throttling", "Rate exceeded")
      } else {
        (
          500,
          "Receiver",
          "InternalFailure",
          "The request processing has failed because of an unknown error.",
        )
      };
      let namespace = match service {
        "route53" => "https://route53.amazonaws.com/doc/2013-04-01/",
        "rds" => "http://rds.amazonaws.com/doc/2014-10-31/",
        _ => "http://monitoring.amazonaws.com/doc/2010-08-01/",
      };
      (
        status,
        "text/xml",
        String::new(),
        format!(
          "<?xml version=\"1.0\"?>\n<ErrorResponse xmlns=\"{namespace}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
        ),
      )
    }
  };
  let reason = match status {
    400 => "Bad Request",
    500 => "Internal Server Error",
    _ => "Service Unavailable",
  };
  let length = if request.method == "HEAD" {
    0
  } else {
    body.len()
  };
  format!(
    "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\nx-amzn-requestid: {id}\r\n{extra_headers}content-length: {length}\r\n\r\n{body}"
  )
  .into_bytes()
}

/// The account of the identity the fault proxy's `AccessDenied` answers name.
pub const DENIED_ACCOUNT: &str = "123456789012";

/// IAM's message for a call of `service:operation` that no policy allows: long, and naming the
/// missing permission (AWS sends it whole; drctl must show it whole).
pub fn denied_message(service: &str, operation: &str) -> String {
  format!(
    "User: arn:aws:sts::{DENIED_ACCOUNT}:assumed-role/drctl-oncall/alice@example.com is not \
     authorized to perform: {service}:{operation} on resource: \
     arn:aws:{service}:us-west-2:{DENIED_ACCOUNT}:db:app-db-replica because no identity-based \
     policy allows the {service}:{operation} action"
  )
}

/// `AccessDenied` (403) for `operation` in the protocol of `service`, with request id `id`.
fn access_denied(service: &str, operation: &str, id: &str) -> Vec<u8> {
  let message = denied_message(service, operation);
  let (content_type, extra_headers, body) = match service {
    "ecs" => (
      "application/x-amz-json-1.1",
      "x-amzn-errortype: AccessDeniedException\r\n".to_string(),
      format!("{{\"__type\":\"AccessDeniedException\",\"message\":\"{message}\"}}"),
    ),
    _ => (
      "text/xml",
      String::new(),
      format!(
        "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>"
      ),
    ),
  };
  format!(
    "HTTP/1.1 403 Forbidden\r\ncontent-type: {content_type}\r\nx-amzn-requestid: {id}\r\n{extra_headers}content-length: {}\r\n\r\n{body}",
    body.len()
  )
  .into_bytes()
}

/// Whether `operation` is one whose effect must not be applied twice: one an action may send to
/// change the world (the actions' catalog, from the operation table).
fn is_mutating(operation: &str) -> bool {
  drctl::actions::mutating_operations()
    .iter()
    .any(|op| op.name == operation)
}
