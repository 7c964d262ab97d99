//! A loopback TCP proxy that can drop every connection: a state bucket (or any endpoint) in a
//! region that just failed, and back again.

use std::{
  io::{Read, Write},
  net::{Shutdown, TcpListener, TcpStream},
  sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
  },
};

pub struct Proxy {
  pub port: u16,
  up: Arc<AtomicBool>,
  open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
  /// Forward 127.0.0.1:<new port> to 127.0.0.1:`target`.
  pub fn start(target: u16) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let up = Arc::new(AtomicBool::new(true));
    let open = Arc::new(Mutex::new(Vec::<TcpStream>::new()));
    let (accept_up, accept_open) = (up.clone(), open.clone());
    std::thread::spawn(move || {
      for client in listener.incoming().flatten() {
        if !accept_up.load(Ordering::SeqCst) {
          let _ = client.shutdown(Shutdown::Both);
          continue;
        }
        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
          continue;
        };
        let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
          continue;
        };
        {
          let mut open = accept_open.lock().unwrap();
          open.push(client_copy);
          open.push(server_copy);
        }
        let (Ok(client_read), Ok(server_write)) = (client.try_clone(), server.try_clone()) else {
          continue;
        };
        for (mut from, mut to) in [(client_read, server_write), (server, client)] {
          std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            loop {
              match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                  if to.write_all(&buffer[..n]).is_err() {
                    break;
                  }
                }
              }
            }
            let _ = to.shutdown(Shutdown::Both);
          });
        }
      }
    });
    Proxy { port, up, open }
  }

  pub fn endpoint(&self) -> String {
    format!("http://127.0.0.1:{}", self.port)
  }

  /// Refuse new connections and cut the open ones.
  pub fn outage(&self) {
    self.up.store(false, Ordering::SeqCst);
    for stream in self.open.lock().unwrap().drain(..) {
      let _ = stream.shutdown(Shutdown::Both);
    }
  }

  pub fn restore(&self) {
    self.up.store(true, Ordering::SeqCst);
  }
}
