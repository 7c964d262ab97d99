//! A scripted AWS-like endpoint on loopback (STS, instance metadata, SSO OIDC): it records every
//! request and answers each with the next scripted [`Answer`] (the last one repeats). The far
//! end of the credentials preflight tests, which point every endpoint the SDK may call at one
//! of these, so that a test run never leaves loopback and the fakes show what was asked.

use std::{
  collections::VecDeque,
  io::Write,
  net::TcpListener,
  sync::{Arc, Mutex},
};

use super::origin::{read_request, Request};

/// One answer: status, content type, body.
#[derive(Debug, Clone)]
pub struct Answer {
  pub status: u16,
  pub content_type: &'static str,
  pub body: String,
  /// Extra header lines (`name: value`), as AWS sends them.
  pub headers: Vec<String>,
}

impl Answer {
  /// STS `GetCallerIdentity` naming `account`.
  pub fn caller_identity(account: &str) -> Answer {
    Answer {
      status: 200,
      content_type: "text/xml",
      body: format!(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/preflight</Arn>\
         <UserId>AIDAPREFLIGHT</UserId><Account>{account}</Account></GetCallerIdentityResult>\
         <ResponseMetadata><RequestId>req-identity-1</RequestId></ResponseMetadata>\
         </GetCallerIdentityResponse>"
      ),
      headers: vec!["x-amzn-RequestId: req-identity-1".into()],
    }
  }

  /// An STS (awsQuery) error.
  pub fn sts_error(status: u16, code: &str, message: &str, request_id: &str) -> Answer {
    Answer {
      status,
      content_type: "text/xml",
      body: format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
         <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>{request_id}</RequestId></ErrorResponse>"
      ),
      headers: vec![format!("x-amzn-RequestId: {request_id}")],
    }
  }

  /// A bare status with a short text body.
  pub fn status(status: u16) -> Answer {
    Answer {
      status,
      content_type: "text/plain",
      body: "no".into(),
      headers: Vec::new(),
    }
  }
}

pub struct FakeAws {
  pub port: u16,
  seen: Arc<Mutex<Vec<Request>>>,
}

impl FakeAws {
  /// Listen on 127.0.0.1 and answer with `answers` in order (the last one repeats).
  pub fn start(answers: Vec<Answer>) -> FakeAws {
    assert!(!answers.is_empty(), "a fake needs at least one answer");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let seen_in = seen.clone();
    std::thread::spawn(move || {
      for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let Some(request) = read_request(&stream) else {
          continue;
        };
        seen_in.lock().unwrap().push(request);
        let answer = {
          let mut answers = answers.lock().unwrap();
          if answers.len() > 1 {
            answers.pop_front()
          } else {
            answers.front().cloned()
          }
        };
        let Some(answer) = answer else { continue };
        let headers: String = answer
          .headers
          .iter()
          .map(|header| format!("{header}\r\n"))
          .collect();
        let _ = write!(
          stream,
          "HTTP/1.1 {} X\r\ncontent-type: {}\r\n{headers}content-length: {}\r\nconnection: \
           close\r\n\r\n{}",
          answer.status,
          answer.content_type,
          answer.body.len(),
          answer.body
        );
      }
    });
    FakeAws { port, seen }
  }

  pub fn url(&self) -> String {
    format!("http://127.0.0.1:{}", self.port)
  }

  pub fn seen(&self) -> Vec<Request> {
    self.seen.lock().unwrap().clone()
  }
}

/// The region a SigV4 request was signed for (`Credential=AKID/DATE/REGION/SERVICE/...`).
pub fn signed_region(request: &Request) -> Option<String> {
  let authorization = request.headers.get("authorization")?;
  let scope = authorization.split("Credential=").nth(1)?;
  scope.split('/').nth(2).map(str::to_owned)
}
