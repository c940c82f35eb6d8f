//! The machinery every sink shares: a bounded queue, batching by size or time,
//! retries with exponential backoff, a per-request timeout, and a shutdown deadline
//! that cuts everything (requests, backoffs, flushes) short.
//!
//! One background task per sink runs [`run`]. The experiment only ever touches the
//! queue with `try_send`, so a sink that is slow, down or a blackhole can lose
//! records but can never slow the run. All waiting happens here, raced against the
//! deadline that [`super::Sinks::shutdown`] publishes on a `watch` channel.
//!
//! Accounting is done with atomics so that a task aborted at any await point still
//! leaves exact counts: whatever was accepted and is neither delivered nor failed
//! was not delivered at the deadline.

use super::record::{Batch, Record};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Why one attempt to send a batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try (connection error, timeout, 408, 429, 5xx).
    Retryable(String),
    /// Retrying would fail the same way (4xx, an unwritable file).
    Fatal(String),
}

/// A destination for records. The shared machinery calls `encode` once per batch
/// and `send` once per attempt, never concurrently, on a background task; it owns
/// timeouts, retries and the deadline, so a sink only does one attempt's I/O.
pub trait Sink: Send + 'static {
    /// What `encode` produces and every attempt sends.
    type Payload: Send + Sync + 'static;

    /// How reports and errors name this sink (no secrets: no token, no password).
    fn name(&self) -> String;

    /// Turn a batch into the body to send (pure).
    fn encode(&self, batch: &Batch) -> Result<Self::Payload, String>;

    /// One attempt at delivering a payload. Must be async I/O only: the binary's
    /// runtime is current-thread.
    fn send(
        &mut self,
        payload: &Self::Payload,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Called once when the queue is drained at shutdown (flush a file).
    fn finish(&mut self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
}

/// How a sink batches and retries. Each sink kind picks its defaults; the
/// settings file may override some per sink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Records waiting in the queue at most; beyond, new records are dropped.
    pub queue_size: usize,
    /// Records per request at most.
    pub batch_size: usize,
    /// How long a partial batch waits for more records before it is sent.
    pub linger: Duration,
    /// Retries after the first attempt, on retryable errors only.
    pub retries: u32,
    /// First backoff; doubles after each retry (100 ms, 200 ms, 400 ms...).
    pub backoff: Duration,
    /// One attempt at most (never past the shutdown deadline).
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            queue_size: 10_000,
            batch_size: 500,
            linger: Duration::from_millis(200),
            retries: 3,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Counters for one sink, shared between `emit`, the task and the report.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Records put in the queue.
    pub accepted: AtomicU64,
    /// Records refused because the queue was full.
    pub queue_full: AtomicU64,
    /// Records the destination acknowledged.
    pub delivered: AtomicU64,
    /// Records given up on: a non-retryable error, or retries exhausted.
    pub failed: AtomicU64,
    /// The last error seen, even if a later attempt succeeded.
    pub last_error: Mutex<Option<String>>,
}

impl Stats {
    pub(crate) fn error(&self, e: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e);
        }
    }

    /// Record `e` unless an error is already known (which says more).
    fn note(&self, e: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            last.get_or_insert_with(|| e.to_string());
        }
    }

    fn fail(&self, n: u64, e: String) {
        self.failed.fetch_add(n, Ordering::Relaxed);
        self.error(e);
    }
}

/// Resolves once shutdown has started (never if the `Sinks` were dropped instead).
async fn closing(mut rx: watch::Receiver<Option<Instant>>) -> Instant {
    let at = match rx.wait_for(Option::is_some).await {
        Ok(d) => Some((*d).unwrap_or_else(Instant::now)),
        Err(_) => None,
    };
    match at {
        Some(at) => at,
        None => std::future::pending().await,
    }
}

/// Resolves at the shutdown deadline.
async fn deadline(rx: watch::Receiver<Option<Instant>>) {
    let at = closing(rx).await;
    tokio::time::sleep_until(at).await
}

fn past_deadline(rx: &watch::Receiver<Option<Instant>>) -> bool {
    rx.borrow().is_some_and(|d| Instant::now() >= d)
}

/// The task behind one sink: batch, deliver, repeat; on shutdown drain the queue
/// without waiting for more, until it is empty or the deadline passes.
pub(crate) async fn run<S: Sink>(
    mut sink: S,
    mut rx: mpsc::Receiver<Arc<Record>>,
    policy: Policy,
    stats: Arc<Stats>,
    close: watch::Receiver<Option<Instant>>,
) {
    let max = policy.batch_size.max(1);
    let mut open = true;
    loop {
        let shutting_down = close.borrow().is_some();
        let mut batch: Vec<Arc<Record>> = Vec::with_capacity(max.min(64));
        if shutting_down || !open {
            while batch.len() < max {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
        } else {
            tokio::select! {
                n = rx.recv_many(&mut batch, max) => if n == 0 { open = false; continue },
                _ = closing(close.clone()) => continue,
            }
            let flush_at = Instant::now() + policy.linger;
            while batch.len() < max {
                let room = max - batch.len();
                tokio::select! {
                    biased;
                    n = rx.recv_many(&mut batch, room) => if n == 0 { open = false; break },
                    _ = tokio::time::sleep_until(flush_at) => break,
                    _ = closing(close.clone()) => break,
                }
            }
        }
        deliver(&mut sink, &batch, &policy, &stats, &close).await;
        if past_deadline(&close) {
            break;
        }
    }
    if !past_deadline(&close) {
        tokio::select! {
            biased;
            r = sink.finish() => if let Err(e) = r { stats.error(e) },
            _ = deadline(close.clone()) => stats.note("shutdown deadline reached while flushing"),
        }
    }
}

/// Deliver one batch: encode once, then try, back off and retry within the policy.
/// At the deadline the batch is abandoned and counts as not delivered.
async fn deliver<S: Sink>(
    sink: &mut S,
    batch: &Batch,
    policy: &Policy,
    stats: &Stats,
    close: &watch::Receiver<Option<Instant>>,
) {
    let n = batch.len() as u64;
    let payload = match sink.encode(batch) {
        Ok(p) => p,
        Err(e) => return stats.fail(n, format!("cannot encode: {e}")),
    };
    let mut attempt: u32 = 0;
    loop {
        let outcome = tokio::select! {
            r = tokio::time::timeout(policy.timeout, sink.send(&payload)) => match r {
                Ok(r) => r,
                Err(_) => Err(SendError::Retryable(format!(
                    "no answer within {:.1} s", policy.timeout.as_secs_f64()
                ))),
            },
            _ = deadline(close.clone()) => {
                return stats.note("no answer before the shutdown deadline");
            }
        };
        match outcome {
            Ok(()) => {
                stats.delivered.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Err(SendError::Fatal(e)) => return stats.fail(n, e),
            Err(SendError::Retryable(e)) if attempt >= policy.retries => {
                let tries = attempt + 1;
                return stats.fail(
                    n,
                    format!("{e} ({tries} attempt{})", if tries > 1 { "s" } else { "" }),
                );
            }
            Err(SendError::Retryable(e)) => {
                stats.error(e);
                let wait = policy.backoff.saturating_mul(1u32 << attempt.min(16));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = deadline(close.clone()) => return,
                }
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, Reply, Server};
    use super::super::{SinkConfig, SinkReport, Sinks, DEFAULT_SHUTDOWN_LIMIT};
    use super::*;
    use serde_json::json;
    use std::time::Instant as StdInstant;

    fn cfg(v: serde_json::Value) -> SinkConfig {
        serde_json::from_value(v).unwrap()
    }

    /// Every network sink kind, pointed at `base` (`http://host:port`).
    fn all_kinds(base: &str) -> Vec<(&'static str, SinkConfig)> {
        vec![
            (
                "http",
                cfg(json!({"type": "http", "url": format!("{base}/ingest")})),
            ),
            (
                "loki",
                cfg(
                    json!({"type": "http", "format": "loki", "url": format!("{base}/loki/api/v1/push")}),
                ),
            ),
            (
                "humio",
                cfg(json!({"type": "humio", "url": base, "token": "t0ken"})),
            ),
            ("otlp-proto", cfg(json!({"type": "otlp", "endpoint": base}))),
            (
                "otlp-json",
                cfg(json!({"type": "otlp", "endpoint": base, "protocol": "http/json"})),
            ),
            (
                "otlp-grpc",
                cfg(json!({"type": "otlp", "endpoint": base, "protocol": "grpc"})),
            ),
        ]
    }

    /// Emit `n` records, let the run go on for `run_for`, shut down with the default
    /// limit; return the reports and the measured shutdown time.
    async fn outage(
        cfgs: &[SinkConfig],
        n: usize,
        run_for: Duration,
    ) -> (Vec<SinkReport>, Duration, Duration) {
        let sinks = Sinks::from_config_with_env(cfgs, &|_| None).unwrap();
        let t = StdInstant::now();
        let records: Vec<_> = (0..n).map(testkit::record).collect();
        for r in &records {
            sinks.emit(r);
        }
        // The OTLP sink is fed by a layer on the run's dispatcher.
        testkit::emit_traced(&sinks, &records);
        let emit = t.elapsed();
        tokio::time::sleep(run_for).await;
        let t = StdInstant::now();
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        (reports, t.elapsed(), emit)
    }

    fn check_all_dropped(what: &str, reports: &[SinkReport], n: u64, took: Duration) {
        for r in reports {
            println!("{what}: shutdown {took:?}: {r}");
            assert_eq!(r.delivered, 0, "{r}");
            assert_eq!(r.dropped, n, "{r}");
            assert!(r.last_error.is_some(), "{r}");
        }
        // A safety net, not a timing assertion: the limit is 1.5 s.
        assert!(
            took < Duration::from_secs(4),
            "{what}: shutdown took {took:?}"
        );
    }

    #[tokio::test]
    async fn connection_refused() {
        let base = format!("http://{}", testkit::refused_addr());
        for (kind, c) in all_kinds(&base) {
            let (reports, took, emit) = outage(&[c], 50, Duration::ZERO).await;
            println!("refused/{kind}: 50 emits took {emit:?}");
            check_all_dropped(&format!("refused/{kind}"), &reports, 50, took);
        }
    }

    #[tokio::test]
    async fn blackhole() {
        let srv = Server::blackhole().await;
        for (kind, c) in all_kinds(&srv.url("")) {
            let (reports, took, _) = outage(&[c], 50, Duration::ZERO).await;
            check_all_dropped(&format!("blackhole/{kind}"), &reports, 50, took);
            assert!(reports[0].unsent == 50, "{}", reports[0]);
        }
    }

    #[tokio::test]
    async fn always_500() {
        let srv = Server::start_then(vec![], Reply::Status(500)).await;
        for (kind, c) in all_kinds(&srv.url("")) {
            if kind == "otlp-grpc" {
                continue; // an HTTP/1.1 500 is not a gRPC answer; see grpc_always_unavailable
            }
            let (reports, took, _) = outage(&[c], 50, Duration::ZERO).await;
            check_all_dropped(&format!("500/{kind}"), &reports, 50, took);
        }
        // 1 attempt + 3 retries per pipeline sink (http, loki, humio); the OTLP log
        // exporter follows the OTLP specification, where 500 is not retryable: one
        // attempt each (otlp-proto, otlp-json).
        assert_eq!(srv.requests().len(), 3 * 4 + 2);
    }

    #[tokio::test]
    async fn grpc_always_unavailable() {
        use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
            LogsService, LogsServiceServer,
        };
        use opentelemetry_proto::tonic::collector::logs::v1::{
            ExportLogsServiceRequest, ExportLogsServiceResponse,
        };
        struct Down;
        #[tonic::async_trait]
        impl LogsService for Down {
            async fn export(
                &self,
                _: tonic::Request<ExportLogsServiceRequest>,
            ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
                Err(tonic::Status::unavailable("down"))
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(LogsServiceServer::new(Down))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        let c =
            cfg(json!({"type": "otlp", "endpoint": format!("http://{addr}"), "protocol": "grpc"}));
        let (reports, took, _) = outage(&[c], 50, Duration::ZERO).await;
        check_all_dropped("unavailable/otlp-grpc", &reports, 50, took);
        // The SDK's exporter names the gRPC status code, not the server's message.
        assert!(reports[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("Unavailable"));
    }

    #[tokio::test]
    async fn every_sink_down_at_once_still_returns_within_the_limit() {
        let hole = Server::blackhole().await;
        let refused = format!("http://{}", testkit::refused_addr());
        let mut cfgs: Vec<SinkConfig> = all_kinds(&hole.url("")).into_iter().map(|k| k.1).collect();
        cfgs.extend(all_kinds(&refused).into_iter().map(|k| k.1));
        // Outage during the run too: the first batch is stuck before shutdown starts.
        let (reports, took, emit) = outage(&cfgs, 2_000, Duration::from_millis(300)).await;
        println!("12 sinks down: 2,000 emits took {emit:?}");
        check_all_dropped("all down", &reports, 2_000, took);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let srv = Server::blackhole().await;
        let c = cfg(json!({"type": "http", "url": srv.url("/"), "queue_size": 10}));
        let sinks = Sinks::from_config_with_env(&[c], &|_| None).unwrap();
        let record = testkit::record(1);
        let t = StdInstant::now();
        for _ in 0..10_000 {
            sinks.emit(&record);
        }
        let took = t.elapsed();
        // From another thread, outside the runtime, too.
        let emitter = sinks.emitter();
        std::thread::spawn(move || {
            for _ in 0..1_000 {
                emitter.emit(&record);
            }
        })
        .join()
        .unwrap();
        println!("10,000 emits into a full queue took {took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        let t = StdInstant::now();
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        let r = &reports[0];
        println!("full queue: shutdown {:?}: {r}", t.elapsed());
        // The task never ran during the emits (current-thread runtime): exactly the
        // queue's 10 records were accepted.
        assert_eq!(r.queue_full, 11_000 - 10, "{r}");
        assert_eq!(r.dropped, 11_000, "{r}");
        assert_eq!(r.delivered, 0, "{r}");
    }

    /// A sink defined outside this module, through the public trait.
    struct Collect(Arc<Mutex<Vec<usize>>>, Arc<Mutex<bool>>);

    impl Sink for Collect {
        type Payload = usize;
        fn name(&self) -> String {
            "collect".into()
        }
        fn encode(&self, batch: &Batch) -> Result<usize, String> {
            Ok(batch.len())
        }
        async fn send(&mut self, n: &usize) -> Result<(), SendError> {
            self.0.lock().unwrap().push(*n);
            Ok(())
        }
        async fn finish(&mut self) -> Result<(), String> {
            *self.1.lock().unwrap() = true;
            Ok(())
        }
    }

    #[tokio::test]
    async fn custom_sinks_use_the_same_machinery() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let finished = Arc::new(Mutex::new(false));
        let mut sinks = Sinks::none();
        sinks
            .add(
                Collect(Arc::clone(&sizes), Arc::clone(&finished)),
                Policy {
                    batch_size: 4,
                    ..Policy::default()
                },
            )
            .unwrap();
        for i in 0..10 {
            sinks.emit(&testkit::record(i));
        }
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        assert_eq!(reports[0].delivered, 10);
        assert_eq!(*sizes.lock().unwrap(), [4, 4, 2]);
        assert!(*finished.lock().unwrap());
    }

    #[tokio::test]
    async fn retries_back_off_exponentially() {
        let srv = Server::start(vec![
            Reply::Status(500),
            Reply::Status(502),
            Reply::Status(429),
        ])
        .await;
        let c = cfg(json!({"type": "http", "url": srv.url("/")}));
        let sinks = Sinks::from_config_with_env(&[c], &|_| None).unwrap();
        sinks.emit(&testkit::record(1));
        let t = StdInstant::now();
        let reports = sinks.shutdown(Duration::from_secs(3)).await;
        let took = t.elapsed();
        println!("3 failures then success: {took:?}: {}", reports[0]);
        assert_eq!(reports[0].delivered, 1, "{}", reports[0]);
        assert_eq!(srv.requests().len(), 4);
        // 100 + 200 + 400 ms of backoff at least.
        assert!(took >= Duration::from_millis(700), "{took:?}");
    }
}
