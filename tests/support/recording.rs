//! moto's request recorder, read back as AWS operation names: what a run really called through
//! the SDK, for counting mutating calls (a duplicate effect, a guard that let one through).

use drctl::cloud::wire::recorded_operation;

use super::moto::Moto;

/// Start recording every request the server gets (and forget what was recorded before).
pub fn start(moto: &Moto) {
  let _ = moto.request("POST", "/moto-api/recorder/stop-recording", "");
  // moto 5.2 has no clear-recording route (it answers 404 and keeps the log): an empty upload
  // replaces the log.
  let (status, body) = moto.request("POST", "/moto-api/recorder/upload-recording", "");
  assert_eq!(status, 200, "empty the moto recording: {body}");
  let (status, body) = moto.request("POST", "/moto-api/recorder/start-recording", "");
  assert_eq!(status, 200, "start the moto recorder: {body}");
}

/// The operations recorded so far, in order.
pub fn operations(moto: &Moto) -> Vec<String> {
  let (status, recording) = moto.request("GET", "/moto-api/recorder/download-recording", "");
  assert_eq!(status, 200, "download the moto recording: {recording}");
  recording
    .lines()
    .filter(|line| !line.trim().is_empty())
    .filter_map(|line| serde_json::from_str(line).ok())
    .map(|entry| recorded_operation(&entry).name().to_owned())
    .collect()
}
