//! P5, the status page: `drctl serve`'s runs page and `/metrics` over a state holding 10,000
//! runs, served over loopback HTTP by the server the binary runs (`drctl::serve`, in process).
//!
//! The state: one real failover journal (`drctl failover us-west-2 --sim`) copied under 10,000
//! run ids (a copy keeps its journalled run id; the server lists runs by directory, and parses
//! each journal as it would any other). Requests read the last background refresh; the refresh
//! itself is timed too: cold (every journal parsed) and warm (every journal unchanged, one
//! `stat` each).

use std::{
  sync::Arc,
  time::{Duration, Instant},
};

use drctl::{
  report::{ApiCalls, Report},
  serve::{App, Guard, Site},
  state::{store::Store, Redactor},
};

use crate::{overhead::median, support, Config, Measured, Row};

fn report_of(store: &Store, run_id: &str) -> Result<Report, String> {
  let records = store.read_journal(run_id).map_err(|err| err.to_string())?;
  Report::from_records(&records, ApiCalls::not_recorded(), &Redactor::default())
}

/// A state of `count` runs, copies of one real failover journal.
fn state(test: &support::Test, count: usize) -> Store {
  test
    .run_args([
      "failover",
      "us-west-2",
      "--sim",
      "--yes",
      "--time-scale",
      "400",
    ])
    .status(0);
  let template_id = test.run_ids().pop().expect("a run");
  let store = Store::new(test.path().join(".drctl"));
  let journal = std::fs::read(store.journal_path(&template_id)).expect("the journal");
  for i in 0..count {
    let id = format!("20260101-{:06}-{:04x}", i / 60_000, i % 60_000);
    std::fs::create_dir_all(store.run_dir(&id)).expect("a run directory");
    std::fs::write(store.journal_path(&id), &journal).expect("a journal");
  }
  store
}

fn ms(duration: Duration) -> f64 {
  duration.as_secs_f64() * 1000.0
}

pub fn run(config: &Config) -> Measured {
  let count = if config.bench { 10_000 } else { 50 };
  let requests = if config.bench { 20 } else { 2 };
  let test = support::Test::new();
  let store = state(&test, count);
  let runtime = tokio::runtime::Builder::new_multi_thread()
    .worker_threads(2)
    .enable_all()
    .build()
    .expect("a runtime");
  let site = Site {
    store: store.clone(),
    s3: None,
    drills: Vec::new(),
    report: report_of,
    refresh_every: Duration::from_secs(3600),
    poll_every: Duration::from_millis(500),
  };
  let app = App::new(site);
  let cold = Instant::now();
  runtime.block_on(app.refresh());
  let cold = cold.elapsed();
  let mut warm = Vec::new();
  for _ in 0..config.repeats.max(3) {
    let start = Instant::now();
    runtime.block_on(app.refresh());
    warm.push(ms(start.elapsed()));
  }
  assert_eq!(app.parsed_last(), 0, "a warm refresh parses nothing");

  let (page_ms, metrics_ms, page_bytes) = runtime.block_on(serve_and_measure(&app, requests));
  let page = median(&mut page_ms.clone());
  let metrics = median(&mut metrics_ms.clone());
  let mut rows = vec![
    Row::new(
      "P5",
      format!("runs page, {count} runs in the state (loopback HTTP, median of {requests})"),
      format!("{page:.1} ms"),
      "< 200 ms",
      page < 200.0,
    ),
    Row::new(
      "P5",
      format!("/metrics, {count} runs (median of {requests})"),
      format!("{metrics:.2} ms"),
      "< 10 ms",
      metrics < 10.0,
    ),
    Row::info(
      "P5",
      format!("background refresh of {count} runs: cold / warm"),
      format!("{:.0} ms / {:.1} ms", ms(cold), median(&mut warm)),
    ),
  ];
  rows.push(Row::info(
    "P5",
    "runs page size",
    format!("{:.1} MB", page_bytes as f64 / 1e6),
  ));
  let notes = format!(
    "The server (`drctl::serve`, as `drctl serve` runs it) on 127.0.0.1, the client reqwest in \
     the same process, keep-alive, after one cold refresh. Each request reads the last \
     background refresh: the runs are cached by journal length and mtime, so a warm refresh \
     costs one `stat` per run and parses nothing. Samples (ms): runs page {page_ms:.1?}; \
     /metrics {metrics_ms:.2?}; warm refresh {warm:.1?}.\n"
  );
  Measured { rows, notes }
}

async fn serve_and_measure(app: &Arc<App>, requests: usize) -> (Vec<f64>, Vec<f64>, usize) {
  let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
    .await
    .expect("a loopback port");
  let bound = listener.local_addr().expect("its address");
  let guard = Guard::new(bound, None).expect("loopback needs no token");
  let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
  let server = tokio::spawn(drctl::serve::serve(
    listener,
    Arc::clone(app),
    guard,
    async {
      let _ = stopped.await;
    },
  ));
  let client = reqwest::Client::new();
  let base = format!("http://{bound}");
  let time = |path: &'static str| {
    let client = client.clone();
    let url = format!("{base}{path}");
    async move {
      let start = Instant::now();
      let response = client.get(&url).send().await.expect("an answer");
      assert_eq!(response.status(), 200, "{url}");
      let body = response.bytes().await.expect("a body");
      (ms(start.elapsed()), body.len())
    }
  };
  // One request each to warm the connection.
  time("/").await;
  time("/metrics").await;
  let mut page = Vec::new();
  let mut metrics = Vec::new();
  let mut bytes = 0;
  for _ in 0..requests {
    let (elapsed, len) = time("/").await;
    page.push(elapsed);
    bytes = len;
    metrics.push(time("/metrics").await.0);
  }
  let _ = stop.send(());
  let _ = server.await;
  (page, metrics, bytes)
}
