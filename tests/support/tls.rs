//! TLS and proxies on loopback: a test CA and a server certificate generated at test time with
//! the `openssl` command (for `127.0.0.1` and `127.0.0.2`), an HTTPS origin signed by that CA,
//! and an HTTP `CONNECT` proxy that records which authorities it was asked to tunnel to.

use std::{
  io::{Read, Write},
  net::{Shutdown, TcpListener, TcpStream},
  path::{Path, PathBuf},
  process::Command,
  sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
  },
};

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

/// A CA and a server certificate it signed, as PEM files in `dir`.
pub struct TestCa {
  /// The CA certificate: what `SSL_CERT_FILE` points at.
  pub ca: PathBuf,
  pub cert: PathBuf,
  pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
  let output = Command::new("openssl")
    .args(args)
    .current_dir(dir)
    .output()
    .expect("the openssl command is installed (the TLS tests generate their CA with it)");
  assert!(
    output.status.success(),
    "openssl {args:?}: {}",
    String::from_utf8_lossy(&output.stderr)
  );
}

impl TestCa {
  pub fn generate(dir: &Path) -> TestCa {
    let ec = [
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
    ];
    let mut ca_args = vec!["req", "-x509"];
    ca_args.extend(ec);
    ca_args.extend([
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=drctl test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca_args);
    let mut csr_args = vec!["req"];
    csr_args.extend(ec);
    csr_args.extend([
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=127.0.0.2",
    ]);
    openssl(dir, &csr_args);
    std::fs::write(
      dir.join("server.ext"),
      "subjectAltName=IP:127.0.0.1,IP:127.0.0.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
      dir,
      &[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
      ],
    );
    TestCa {
      ca: dir.join("ca.pem"),
      cert: dir.join("server.pem"),
      key: dir.join("server.key"),
    }
  }
}

/// An HTTPS origin on `ip` answering every request `200 tls-ok`, with the CA's server
/// certificate. Counts the TCP connections it accepted and the requests it answered.
pub struct TlsOrigin {
  pub ip: String,
  pub port: u16,
  pub connections: Arc<AtomicUsize>,
  pub requests: Arc<AtomicUsize>,
}

impl TlsOrigin {
  pub fn start(ip: &str, ca: &TestCa) -> TlsOrigin {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&ca.cert)
      .unwrap()
      .collect::<Result<_, _>>()
      .unwrap();
    let key = PrivateKeyDer::from_pem_file(&ca.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
      rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind((ip, 0)).expect("bind a loopback address");
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (connections_in, requests_in) = (connections.clone(), requests.clone());
    std::thread::spawn(move || {
      for stream in listener.incoming().flatten() {
        connections_in.fetch_add(1, Ordering::SeqCst);
        let (config, requests) = (config.clone(), requests_in.clone());
        std::thread::spawn(move || {
          let Ok(connection) = rustls::ServerConnection::new(config) else {
            return;
          };
          let mut tls = rustls::StreamOwned::new(connection, stream);
          // Read the request head; the handshake happens on the first read.
          let mut head = Vec::new();
          let mut byte = [0u8; 1];
          while !head.ends_with(b"\r\n\r\n") {
            match tls.read(&mut byte) {
              Ok(1) => head.push(byte[0]),
              _ => return,
            }
          }
          requests.fetch_add(1, Ordering::SeqCst);
          let _ = tls.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 6\r\nconnection: close\r\n\r\ntls-ok",
          );
          tls.conn.send_close_notify();
          let _ = tls.flush();
        });
      }
    });
    TlsOrigin {
      ip: ip.to_string(),
      port,
      connections,
      requests,
    }
  }

  pub fn url(&self, path: &str) -> String {
    format!("https://{}:{}{path}", self.ip, self.port)
  }

  pub fn authority(&self) -> String {
    format!("{}:{}", self.ip, self.port)
  }
}

/// An HTTP proxy on 127.0.0.1 that tunnels `CONNECT host:port` to loopback hosts only and
/// answers anything else `502`. Records the request line of every request.
pub struct ConnectProxy {
  pub port: u16,
  requests: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
  pub fn start() -> ConnectProxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let requests_in = requests.clone();
    std::thread::spawn(move || {
      for client in listener.incoming().flatten() {
        let requests = requests_in.clone();
        std::thread::spawn(move || tunnel(client, &requests));
      }
    });
    ConnectProxy { port, requests }
  }

  pub fn url(&self) -> String {
    format!("http://127.0.0.1:{}", self.port)
  }

  /// The request lines seen (`CONNECT 127.0.0.2:4433 HTTP/1.1`).
  pub fn requests(&self) -> Vec<String> {
    self.requests.lock().unwrap().clone()
  }
}

fn tunnel(mut client: TcpStream, requests: &Mutex<Vec<String>>) {
  // Byte by byte up to the blank line, so nothing of the tunnelled stream is consumed here.
  let mut head = Vec::new();
  let mut byte = [0u8; 1];
  while !head.ends_with(b"\r\n\r\n") {
    match client.read(&mut byte) {
      Ok(1) => head.push(byte[0]),
      _ => return,
    }
  }
  let head = String::from_utf8_lossy(&head).into_owned();
  let line = head.lines().next().unwrap_or_default().to_string();
  requests.lock().unwrap().push(line.clone());
  let mut parts = line.split_whitespace();
  let (method, authority) = (
    parts.next().unwrap_or_default(),
    parts.next().unwrap_or_default(),
  );
  // Tests reach only loopback addresses.
  if method != "CONNECT" || !authority.starts_with("127.") {
    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
    return;
  }
  let Ok(server) = TcpStream::connect(authority) else {
    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
    return;
  };
  if client
    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
    .is_err()
  {
    return;
  }
  let (Ok(mut client_read), Ok(mut server_write)) = (client.try_clone(), server.try_clone()) else {
    return;
  };
  let upstream = std::thread::spawn(move || {
    let _ = std::io::copy(&mut client_read, &mut server_write);
    let _ = server_write.shutdown(Shutdown::Write);
  });
  let (mut server_read, mut client_write) = (server, client);
  let _ = std::io::copy(&mut server_read, &mut client_write);
  let _ = client_write.shutdown(Shutdown::Write);
  let _ = upstream.join();
}
