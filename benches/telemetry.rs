//! What tracing costs a run, printed as figures: overhead with a live collector, and
//! how much later faultline exits when the collector is broken.
//!
//! Why a program and not a test: timings depend on the machine, so the house rule is
//! that benchmarks print what they measure, next to each other in one run, and never
//! assert a threshold. The goals of issue 3 ("telemetry must never hurt the run") are
//! printed as PASS/MISS; the program exits 0 whatever the verdicts, and non-zero only
//! when it cannot measure: a missing binary, a receiver that cannot start, or a run
//! that fails, times out, writes a journal that is not `completed`, or differs from the
//! same run with telemetry off.
//!
//! Run with `cargo bench --bench telemetry`. Each run is a whole `faultline run`
//! process (wall time from spawn to exit, CPU and peak RSS from `wait4`), with every
//! inherited `OTEL_*`/`TRACEPARENT`/`TRACESTATE`/`BAGGAGE` variable removed, then:
//!
//! - (1) overhead: a method of 100 process probes running `echo N`, with telemetry
//!   off (`OTEL_SDK_DISABLED=true`), with the default exporter (no endpoint: OTLP JSON
//!   written next to the journal), with OTLP/HTTP protobuf to a live receiver, and
//!   with OTLP/gRPC to a live receiver. An OTLP endpoint also turns on faultline's
//!   OTLP logs sink, so the live rows carry spans and log records; the "no logs" rows
//!   (`OTEL_LOGS_EXPORTER=none`) carry spans only. Goal: telemetry on is at most
//!   1.10x off (median wall time).
//! - (2) exit delay: a 3-activity experiment (hypothesis probe, action, rollback; 4
//!   `echo` processes) with the collector refusing connections (a closed port), a
//!   blackhole (accepts, never reads nor answers) and a sick collector (HTTP 500, gRPC
//!   UNAVAILABLE), over OTLP/HTTP protobuf and OTLP/gRPC, next to the same run with
//!   telemetry off and with a live receiver. Goal: every run exits at most 1.5 s later
//!   than the median run with telemetry off.
//!
//! The receivers live in this process on 127.0.0.1, on one tokio worker thread, with
//! `TCP_NODELAY` like a real collector: the HTTP one (axum) answers `POST /v1/traces`
//! and `POST /v1/logs` at once and only counts requests and bytes (it decodes the
//! protobuf only during the sanity run, to count spans and records); the gRPC one is
//! tonic's generated `TraceService` and `LogsService` (tonic decodes the messages;
//! the services only count). The blackholes are std listeners whose thread keeps
//! accepting and holding connections.
//!
//! Rounds are interleaved (every configuration once per round), after 2 warm-up
//! rounds, so drift on the machine affects all columns alike. Every child is killed
//! after 60 s. Every run, warm-ups included, is checked: exit code 0, journal status
//! `completed`, not deviated, the expected entries, and the same journal shape
//! (activity names, statuses, outputs) as the telemetry-off run; with the default
//! exporter the trace file must exist, and a live receiver must have received spans
//! (and log records, unless `OTEL_LOGS_EXPORTER=none`) during the run.
//!
//! Environment: `FAULTLINE_BENCH_RUNS` (measured rounds, default 10),
//! `FAULTLINE_BENCH_BIN` (faultline binary, default the release binary cargo built
//! next to this bench). `XDG_CONFIG_HOME` points into the bench's temporary directory
//! and `FAULTLINE_SETTINGS` is removed, so no user settings file changes the exporter.
//!
//! `telemetry --receivers` only starts the live HTTP and gRPC receivers and prints
//! their addresses, to profile faultline by hand against them.
//!
//! `telemetry --write-fixtures` rewrites `benches/fixtures/telemetry-*.json` from the
//! generators below; the bench itself always runs freshly generated copies from a
//! temporary directory.

// Measuring a child's wall time, CPU and peak RSS needs `wait4`/`waitid`/`kill` from
// libc, which are unsafe FFI calls; the crate denies unsafe code by default, this
// program needs it.
#![allow(unsafe_code)]

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

mod common;
use common::{
    check_journal, fixtures_dir, hundred_echo_probes, median, render, tail, three_activities,
    Expect, Output, Sample, CHILD_TIMEOUT, ECHO_PROBES,
};
use common::{verdict, TempDir};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::{json, Value};

/// Rounds run (and checked) but not measured: page cache, first connections.
const WARMUP_ROUNDS: usize = 2;
const DEFAULT_RUNS: usize = 10;
const THREE_FILE: &str = "telemetry-three-activities.json";
const HUNDRED_FILE: &str = "telemetry-hundred-echo-probes.json";

/// The goals of issue 3 (printed, never asserted).
const GOAL_OVERHEAD_RATIO: f64 = 1.10;
const GOAL_EXIT_DELAY_MS: f64 = 1500.0;
/// From `../shared/reference/chaostoolkit.md`, not measured here: with an unreachable
/// collector, the Chaos Toolkit's OpenTelemetry control took 7.15 s to exit instead of
/// 0.9 s.
const CTK_DEAD_COLLECTOR_EXIT_S: f64 = 7.15;
const CTK_LIVE_EXIT_S: f64 = 0.9;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    // `cargo bench` passes `--bench` (and possibly a filter); only our own flags count.
    if args.iter().any(|a| a == "--write-fixtures") {
        return common::write_fixtures("telemetry", &fixtures());
    }
    if args.iter().any(|a| a == "--receivers") {
        return serve_receivers();
    }
    match bench() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("telemetry: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Experiments

fn fixtures() -> [(&'static str, String); 2] {
    let source = "benches/telemetry.rs";
    [
        (
            THREE_FILE,
            render(&three_activities("faultline telemetry bench", source)),
        ),
        (
            HUNDRED_FILE,
            render(&hundred_echo_probes("faultline telemetry bench", source)),
        ),
    ]
}

/// `telemetry --receivers`: the live receivers alone, for profiling faultline by hand
/// (`perf`, `strace`) against the same collectors the bench uses. Runs until killed.
fn serve_receivers() -> ExitCode {
    let started = Receivers::new().and_then(|rx| {
        let (h, hc) = rx.http(false)?;
        let (g, gc) = rx.grpc(false)?;
        Ok((rx, h, hc, g, gc))
    });
    let (_rx, h, hc, g, gc) = match started {
        Ok(v) => v,
        Err(e) => {
            eprintln!("telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("OTLP/HTTP http://{h}");
    println!("OTLP/gRPC http://{g}");
    let _ = std::io::stdout().flush();
    loop {
        thread::sleep(Duration::from_secs(10));
        let (a, b) = (hc.snapshot(), gc.snapshot());
        eprintln!(
            "HTTP: {} span and {} log requests; gRPC: {} span and {} log requests",
            a.trace_requests, a.log_requests, b.trace_requests, b.log_requests
        );
    }
}

// ---------------------------------------------------------------------------
// Receivers and outages, in this process

/// One signal's traffic at a receiver.
#[derive(Default)]
struct Signal {
    requests: AtomicU64,
    bytes: AtomicU64,
    /// Spans or log records; counted by the HTTP receiver only while `decode` is set.
    items: AtomicU64,
}

impl Signal {
    fn add(&self, bytes: usize) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(bytes as u64, Ordering::SeqCst);
    }
}

/// What one receiver saw. faultline sends spans, and its OTLP logs sink sends log
/// records to the same collector, so a receiver answers both. `decode` is set during
/// the sanity runs only: it makes the HTTP receiver decode bodies to count spans and
/// records (tonic always hands them over decoded).
#[derive(Default)]
struct Counters {
    traces: Signal,
    logs: Signal,
    decode: AtomicBool,
}

/// Requests and bytes a receiver got, for spans and for log records.
#[derive(Clone, Copy, Debug, Default)]
struct Traffic {
    trace_requests: u64,
    trace_bytes: u64,
    log_requests: u64,
    log_bytes: u64,
}

impl Counters {
    fn snapshot(&self) -> Traffic {
        Traffic {
            trace_requests: self.traces.requests.load(Ordering::SeqCst),
            trace_bytes: self.traces.bytes.load(Ordering::SeqCst),
            log_requests: self.logs.requests.load(Ordering::SeqCst),
            log_bytes: self.logs.bytes.load(Ordering::SeqCst),
        }
    }
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;
    fn sub(self, o: Traffic) -> Traffic {
        Traffic {
            trace_requests: self.trace_requests - o.trace_requests,
            trace_bytes: self.trace_bytes - o.trace_bytes,
            log_requests: self.log_requests - o.log_requests,
            log_bytes: self.log_bytes - o.log_bytes,
        }
    }
}

fn count_spans(r: &ExportTraceServiceRequest) -> u64 {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

fn count_records(r: &ExportLogsServiceRequest) -> u64 {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len() as u64)
        .sum()
}

#[derive(Clone)]
struct HttpCollector {
    counters: Arc<Counters>,
    /// Answer 500 instead of 200.
    sick: bool,
}

impl HttpCollector {
    fn answer(&self) -> Response {
        if self.sick {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain")],
                "collector is sick",
            )
                .into_response()
        } else {
            // An empty protobuf body is a valid, empty Export*ServiceResponse.
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Bytes::new(),
            )
                .into_response()
        }
    }
}

async fn http_traces(State(c): State<HttpCollector>, body: Bytes) -> Response {
    c.counters.traces.add(body.len());
    if c.counters.decode.load(Ordering::SeqCst) {
        if let Ok(r) = ExportTraceServiceRequest::decode(body) {
            c.counters
                .traces
                .items
                .fetch_add(count_spans(&r), Ordering::SeqCst);
        }
    }
    c.answer()
}

async fn http_logs(State(c): State<HttpCollector>, body: Bytes) -> Response {
    c.counters.logs.add(body.len());
    if c.counters.decode.load(Ordering::SeqCst) {
        if let Ok(r) = ExportLogsServiceRequest::decode(body) {
            c.counters
                .logs
                .items
                .fetch_add(count_records(&r), Ordering::SeqCst);
        }
    }
    c.answer()
}

#[derive(Clone)]
struct GrpcCollector {
    counters: Arc<Counters>,
    /// Answer UNAVAILABLE instead of OK.
    sick: bool,
}

#[tonic::codegen::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let r = request.into_inner();
        self.counters.traces.add(r.encoded_len());
        self.counters
            .traces
            .items
            .fetch_add(count_spans(&r), Ordering::SeqCst);
        if self.sick {
            return Err(tonic::Status::unavailable("collector is sick"));
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::codegen::async_trait]
impl LogsService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let r = request.into_inner();
        self.counters.logs.add(r.encoded_len());
        self.counters
            .logs
            .items
            .fetch_add(count_records(&r), Ordering::SeqCst);
        if self.sick {
            return Err(tonic::Status::unavailable("collector is sick"));
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// The receivers' runtime: one worker thread, alive until the bench ends.
struct Receivers {
    rt: tokio::runtime::Runtime,
}

impl Receivers {
    fn new() -> Result<Receivers, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("receivers")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the receivers' runtime: {e}"))?;
        Ok(Receivers { rt })
    }

    fn bind(&self) -> Result<tokio::net::TcpListener, String> {
        self.rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("cannot bind a receiver on 127.0.0.1: {e}"))
    }

    /// OTLP/HTTP: `POST /v1/traces` and `POST /v1/logs` answered 200 (or 500 when
    /// `sick`).
    fn http(&self, sick: bool) -> Result<(SocketAddr, Arc<Counters>), String> {
        let listener = self.bind()?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let counters = Arc::new(Counters::default());
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(http_traces))
            .route("/v1/logs", axum::routing::post(http_logs))
            .with_state(HttpCollector {
                counters: counters.clone(),
                sick,
            });
        // Like a real collector, answer without Nagle's delay (a response held back
        // behind a delayed ACK would be charged to faultline).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        self.rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((addr, counters))
    }

    /// OTLP/gRPC: tonic's `TraceService` and `LogsService`, answering OK (or
    /// UNAVAILABLE when `sick`).
    fn grpc(&self, sick: bool) -> Result<(SocketAddr, Arc<Counters>), String> {
        let listener = self.bind()?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let counters = Arc::new(Counters::default());
        let svc = GrpcCollector {
            counters: counters.clone(),
            sick,
        };
        let logs = svc.clone();
        self.rt.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(svc))
                .add_service(LogsServiceServer::new(logs))
                .serve_with_incoming(
                    // As above: no Nagle's delay on the answers (tonic leaves it on for
                    // a listener handed over like this).
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                )
                .await;
        });
        Ok((addr, counters))
    }
}

/// A listener that accepts every connection and holds it, never reading nor
/// answering; its thread keeps accepting until the bench exits.
fn blackhole() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind the blackhole on 127.0.0.1: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    thread::Builder::new()
        .name("blackhole".into())
        .spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming().flatten() {
                held.push(stream);
            }
        })
        .map_err(|e| format!("cannot start the blackhole thread: {e}"))?;
    Ok(addr)
}

/// A port nothing listens on (bound, then released): connections are refused.
fn closed_port() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind: {e}"))?;
    l.local_addr().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Locating the binary

/// First line of `faultline --version`, for the header (best effort, bounded).
fn version_of(bin: &Path, dir: &Path) -> String {
    let argv = [os(bin), os("--version")];
    let (out, err) = (dir.join("version.out"), dir.join("version.err"));
    match measure(&argv, &[], dir, Output::Files(&out, &err)) {
        Ok(s) if s.code == Some(0) => fs::read_to_string(&out)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| "version unknown".to_string()),
        _ => "version unknown".to_string(),
    }
}

// ---------------------------------------------------------------------------
// Measuring one child process

/// Variables a caller's shell may carry that would change where spans go.
fn scrub(cmd: &mut Command) {
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("OTEL_")
            || matches!(
                k.as_str(),
                "TRACEPARENT" | "TRACESTATE" | "BAGGAGE" | "FAULTLINE_SETTINGS"
            )
        {
            cmd.env_remove(&k);
        }
    }
}

/// [`common::measure_with`] with the caller's telemetry variables scrubbed, the settings
/// file isolated, and `vars` added.
fn measure(
    argv: &[OsString],
    vars: &[(String, String)],
    cwd: &Path,
    output: Output<'_>,
) -> std::io::Result<Sample> {
    common::measure_with(argv, cwd, output, |cmd| {
        scrub(cmd);
        cmd.env("XDG_CONFIG_HOME", cwd.join("xdg-config"));
        for (k, v) in vars {
            cmd.env(k, v);
        }
    })
}

// ---------------------------------------------------------------------------
// Configurations

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Part {
    /// (1) overhead, 100 activities.
    Overhead,
    /// (2) exit delay, 3 activities.
    ExitDelay,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::Overhead => "(1) overhead: run, 100 echo probes",
            Part::ExitDelay => "(2) exit delay: run, 3 activities, broken collector",
        }
    }
}

/// What sets a configuration apart, and what its runs must show besides the journal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `OTEL_SDK_DISABLED=true`: the baseline of its part.
    Off,
    /// No endpoint: the embedded OTLP JSON file next to the journal.
    File,
    /// A live receiver: every run must reach it.
    Live,
    /// A broken collector: nothing to expect but a normal run.
    Outage,
}

struct Config {
    part: Part,
    kind: Kind,
    label: String,
    vars: Vec<(String, String)>,
    argv: Vec<OsString>,
    journal: PathBuf,
    expect: Expect,
    receiver: Option<Arc<Counters>>,
    samples: Vec<Sample>,
    /// What the receiver got, per measured run.
    received: Vec<Traffic>,
    /// Why this configuration's figures cannot be trusted, if they cannot.
    broken: Option<String>,
    /// faultline's own console lines about telemetry, from the sanity run.
    notes: Vec<String>,
}

impl Config {
    /// Whether faultline's OTLP logs sink is on (it follows the OTLP endpoint unless
    /// `OTEL_LOGS_EXPORTER=none`).
    fn logs_on(&self) -> bool {
        !self
            .vars
            .iter()
            .any(|(k, v)| k == "OTEL_LOGS_EXPORTER" && v == "none")
    }

    /// `dir/x.json` -> `dir/x.trace.json`: where the default exporter writes.
    fn trace_file(&self) -> PathBuf {
        self.journal.with_extension("trace.json")
    }
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn configs(faultline: &Path, dir: &Path, rx: &Receivers) -> Result<Vec<Config>, String> {
    let mut list = Vec::new();
    let mut n = 0usize;
    let mut add = |part: Part,
                   kind: Kind,
                   label: &str,
                   vars: Vec<(String, String)>,
                   receiver: Option<Arc<Counters>>| {
        n += 1;
        let (file, expect) = match part {
            Part::Overhead => (
                HUNDRED_FILE,
                Expect {
                    method_entries: ECHO_PROBES,
                    rollback_entries: 0,
                    hypothesis_probes: 0,
                },
            ),
            Part::ExitDelay => (
                THREE_FILE,
                Expect {
                    method_entries: 1,
                    rollback_entries: 1,
                    hypothesis_probes: 1,
                },
            ),
        };
        let journal = dir.join(format!("journal-{n:02}.json"));
        list.push(Config {
            part,
            kind,
            label: label.to_string(),
            vars,
            argv: vec![
                os(faultline),
                os("run"),
                os("--journal-path"),
                os(&journal),
                os(dir.join(file)),
            ],
            journal,
            expect,
            receiver,
            samples: Vec::new(),
            received: Vec::new(),
            broken: None,
            notes: Vec::new(),
        });
    };
    let url = |a: SocketAddr| format!("http://{a}");
    let http = |endpoint: String| {
        vec![
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
                "http/protobuf".to_string(),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), endpoint),
        ]
    };
    let grpc = |endpoint: String| {
        vec![
            (
                "OTEL_EXPORTER_OTLP_PROTOCOL".to_string(),
                "grpc".to_string(),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), endpoint),
        ]
    };
    let off = vars(&[("OTEL_SDK_DISABLED", "true")]);

    use Kind::*;
    use Part::*;
    // (1) The baseline comes first in every round.
    add(
        Overhead,
        Off,
        "off (OTEL_SDK_DISABLED=true)",
        off.clone(),
        None,
    );
    add(Overhead, File, "default: OTLP JSON file", Vec::new(), None);
    let (a, c) = rx.http(false)?;
    add(
        Overhead,
        Live,
        "OTLP/HTTP protobuf, live",
        http(url(a)),
        Some(c),
    );
    // The same without the OTLP logs sink, to tell the spans' cost from the logs'.
    let spans_only = |mut v: Vec<(String, String)>| {
        v.push(("OTEL_LOGS_EXPORTER".to_string(), "none".to_string()));
        v
    };
    let (a, c) = rx.http(false)?;
    add(
        Overhead,
        Live,
        "OTLP/HTTP protobuf, live, no logs",
        spans_only(http(url(a))),
        Some(c),
    );
    let (a, c) = rx.grpc(false)?;
    add(Overhead, Live, "OTLP/gRPC, live", grpc(url(a)), Some(c));
    let (a, c) = rx.grpc(false)?;
    add(
        Overhead,
        Live,
        "OTLP/gRPC, live, no logs",
        spans_only(grpc(url(a))),
        Some(c),
    );

    // (2)
    let refused = closed_port()?;
    add(ExitDelay, Off, "off (OTEL_SDK_DISABLED=true)", off, None);
    let (a, c) = rx.http(false)?;
    add(
        ExitDelay,
        Live,
        "HTTP/protobuf, live",
        http(url(a)),
        Some(c),
    );
    add(
        ExitDelay,
        Outage,
        "HTTP/protobuf, refused",
        http(url(refused)),
        None,
    );
    add(
        ExitDelay,
        Outage,
        "HTTP/protobuf, blackhole",
        http(url(blackhole()?)),
        None,
    );
    let (a, _) = rx.http(true)?;
    add(ExitDelay, Outage, "HTTP/protobuf, 500", http(url(a)), None);
    let (a, c) = rx.grpc(false)?;
    add(ExitDelay, Live, "gRPC, live", grpc(url(a)), Some(c));
    add(ExitDelay, Outage, "gRPC, refused", grpc(url(refused)), None);
    add(
        ExitDelay,
        Outage,
        "gRPC, blackhole",
        grpc(url(blackhole()?)),
        None,
    );
    let (a, _) = rx.grpc(true)?;
    add(ExitDelay, Outage, "gRPC, UNAVAILABLE", grpc(url(a)), None);
    Ok(list)
}

// ---------------------------------------------------------------------------
// Checking a run

/// The part of a journal that must not depend on telemetry: the verdict and, for
/// every activity, its name, status and output (times, ids and trace ids left out).
fn shape(j: &Value) -> Value {
    let entries = |v: Option<&Value>| -> Value {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| {
                        json!({
                            "name": r.pointer("/activity/name"),
                            "status": r.get("status"),
                            "output": r.get("output"),
                            "tolerance_met": r.get("tolerance_met"),
                        })
                    })
                    .collect()
            })
            .unwrap_or(Value::Null)
    };
    json!({
        "status": j.get("status"),
        "deviated": j.get("deviated"),
        "before": j.pointer("/steady_states/before/steady_state_met"),
        "before_probes": entries(j.pointer("/steady_states/before/probes")),
        "after": j.pointer("/steady_states/after/steady_state_met"),
        "after_probes": entries(j.pointer("/steady_states/after/probes")),
        "run": entries(j.get("run")),
        "rollbacks": entries(j.get("rollbacks")),
    })
}

/// faultline's console lines about telemetry, without their timestamp.
fn telemetry_lines(stderr: &Path) -> Vec<String> {
    fs::read_to_string(stderr)
        .unwrap_or_default()
        .lines()
        .map(|l| match l.split_once("] ") {
            Some((_, rest)) if l.starts_with('[') => rest,
            _ => l,
        })
        .filter(|l| {
            l.starts_with("Spans go to")
                || l.contains("spans sent to")
                || l.contains("spans not delivered")
                || l.contains(" delivered")
                || l.contains("tracing disabled")
                || l.contains("tracing is off")
        })
        .map(str::to_string)
        .collect()
}

/// One run of `c`, checked: exit code, journal (and its shape against `reference`, the
/// telemetry-off run of the same part), trace file, receiver. `Err` says why the run
/// cannot be trusted.
fn checked_run(
    c: &Config,
    dir: &Path,
    reference: Option<&Value>,
    output: Output<'_>,
) -> Result<(Sample, Value, Traffic), String> {
    let _ = fs::remove_file(&c.journal);
    let _ = fs::remove_file(c.trace_file());
    let before = c.receiver.as_ref().map(|r| r.snapshot());
    let s = measure(&c.argv, &c.vars, dir, output).map_err(|e| format!("cannot spawn: {e}"))?;
    let after = c.receiver.as_ref().map(|r| r.snapshot());
    if s.timed_out {
        return Err(format!("killed after {} s", CHILD_TIMEOUT.as_secs()));
    }
    if s.code != Some(0) {
        return Err(format!(
            "exited with {}",
            s.code
                .map_or("a signal".to_string(), |c| format!("code {c}"))
        ));
    }
    let got = check_journal(&c.journal, &c.expect)
        .map(|j| shape(&j))
        .map_err(|e| format!("journal: {e}"))?;
    if let Some(r) = reference {
        if &got != r {
            return Err(
                "journal differs from the telemetry-off run (verdict, statuses or outputs)"
                    .to_string(),
            );
        }
    }
    if c.kind == Kind::File && !c.trace_file().is_file() {
        return Err(format!("no trace file at {}", c.trace_file().display()));
    }
    let received = match (before, after) {
        (Some(b), Some(a)) => a - b,
        _ => Traffic::default(),
    };
    if c.kind == Kind::Live && received.trace_requests == 0 {
        return Err("the live receiver got no spans during the run".to_string());
    }
    if c.kind == Kind::Live && c.logs_on() && received.log_requests == 0 {
        return Err("the live receiver got no log records during the run".to_string());
    }
    Ok((s, got, received))
}

/// One run with its output kept, before any timing; returns the journal shape.
fn sanity_run(c: &mut Config, dir: &Path, idx: usize, reference: Option<&Value>) -> Option<Value> {
    let out = dir.join(format!("sanity-{idx:02}.out"));
    let err = dir.join(format!("sanity-{idx:02}.err"));
    if let Some(r) = &c.receiver {
        r.traces.items.store(0, Ordering::SeqCst);
        r.logs.items.store(0, Ordering::SeqCst);
        r.decode.store(true, Ordering::SeqCst);
    }
    let result = checked_run(c, dir, reference, Output::Files(&out, &err));
    if let Some(r) = &c.receiver {
        r.decode.store(false, Ordering::SeqCst);
    }
    c.notes.extend(telemetry_lines(&err));
    match result {
        Ok((_, shape, t)) => {
            if let Some(r) = &c.receiver {
                c.notes.push(format!(
                    "receiver: spans {} in {} request(s), {} bytes; log records {} in {} request(s), {} bytes",
                    r.traces.items.load(Ordering::SeqCst),
                    t.trace_requests,
                    t.trace_bytes,
                    r.logs.items.load(Ordering::SeqCst),
                    t.log_requests,
                    t.log_bytes,
                ));
            }
            if c.kind == Kind::File {
                let size = fs::metadata(c.trace_file()).map(|m| m.len()).unwrap_or(0);
                c.notes.push(format!(
                    "{} written, {size} bytes",
                    c.trace_file()
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
            }
            Some(shape)
        }
        Err(why) => {
            c.broken = Some(format!(
                "{why}; stderr tail:\n    {}\n    stdout tail:\n    {}",
                tail(&err, 8),
                tail(&out, 8)
            ));
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Statistics and printing

#[derive(Clone, Copy)]
struct Summary {
    median_ms: f64,
    min_ms: f64,
    max_ms: f64,
    rss_mib: f64,
    cpu_ms: f64,
    /// Median requests and bytes a live receiver got per run: spans, log records.
    trace_requests: f64,
    trace_bytes: f64,
    log_requests: f64,
    log_bytes: f64,
}

fn summarise(c: &Config) -> Option<Summary> {
    if c.broken.is_some() || c.samples.is_empty() {
        return None;
    }
    let wall: Vec<f64> = c.samples.iter().map(|s| s.wall_ms).collect();
    Some(Summary {
        median_ms: median(wall.clone()),
        min_ms: wall.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: wall.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        rss_mib: median(
            c.samples
                .iter()
                .map(|s| s.maxrss_kib as f64 / 1024.0)
                .collect(),
        ),
        cpu_ms: median(c.samples.iter().map(|s| s.cpu_ms).collect()),
        trace_requests: median(c.received.iter().map(|r| r.trace_requests as f64).collect()),
        trace_bytes: median(c.received.iter().map(|r| r.trace_bytes as f64).collect()),
        log_requests: median(c.received.iter().map(|r| r.log_requests as f64).collect()),
        log_bytes: median(c.received.iter().map(|r| r.log_bytes as f64).collect()),
    })
}

fn baseline(list: &[Config], part: Part) -> Option<Summary> {
    list.iter()
        .find(|c| c.part == part && c.kind == Kind::Off)
        .and_then(summarise)
}

/// The 1, 5 and 15-minute load averages, for the header and footer: other work on
/// the machine shows up in every column.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_string())
}

fn bench() -> Result<ExitCode, String> {
    let runs = match env::var("FAULTLINE_BENCH_RUNS") {
        Ok(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("FAULTLINE_BENCH_RUNS={s} is not a positive integer"))?,
        Err(_) => DEFAULT_RUNS,
    };
    let faultline = common::faultline_bin()?;

    let tmp =
        TempDir(env::temp_dir().join(format!("faultline-bench-telemetry-{}", std::process::id())));
    fs::create_dir_all(tmp.0.join("xdg-config"))
        .map_err(|e| format!("cannot create {}: {e}", tmp.0.display()))?;
    let fixture_dir = fixtures_dir();
    let mut stale = Vec::new();
    for (name, text) in fixtures() {
        fs::write(tmp.0.join(name), &text)
            .map_err(|e| format!("cannot write {}: {e}", tmp.0.join(name).display()))?;
        if fs::read_to_string(fixture_dir.join(name)).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }

    let receivers = Receivers::new()?;
    let mut list = configs(&faultline, &tmp.0, &receivers)?;

    println!(
        "faultline telemetry: {runs} measured rounds after {WARMUP_ROUNDS} warm-up rounds, interleaved"
    );
    println!(
        "  faultline: {} ({})",
        faultline.display(),
        version_of(&faultline, &tmp.0)
    );
    println!(
        "  receivers: in this process on 127.0.0.1 (axum HTTP, tonic gRPC, blackhole threads); \
         experiments and journals in {}",
        tmp.0.display()
    );
    println!("  load average at start: {}", loadavg());
    if !stale.is_empty() {
        println!(
            "  note: benches/fixtures/{} differ from what this bench runs; refresh them with \
             `cargo bench --bench telemetry -- --write-fixtures`",
            stale.join(", benches/fixtures/")
        );
    }
    println!();

    // Sanity runs: each part's telemetry-off run first, as the journal reference.
    let mut reference: Vec<(Part, Value)> = Vec::new();
    for i in 0..list.len() {
        let part = list[i].part;
        let r = reference
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, v)| v.clone());
        let got = sanity_run(&mut list[i], &tmp.0, i, r.as_ref());
        if list[i].kind == Kind::Off {
            match got {
                Some(v) => reference.push((part, v)),
                None => {
                    for c in list
                        .iter_mut()
                        .filter(|c| c.part == part && c.kind != Kind::Off)
                    {
                        c.broken = Some("the telemetry-off run of this part failed".into());
                    }
                }
            }
        }
    }
    let reference_of = |part: Part| {
        reference
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, v)| v.clone())
    };

    for round in 0..WARMUP_ROUNDS + runs {
        let warm = round < WARMUP_ROUNDS;
        if warm {
            eprint!("\rwarm-up {}/{WARMUP_ROUNDS}   ", round + 1);
        } else {
            eprint!("\rround {}/{runs}    ", round + 1 - WARMUP_ROUNDS);
        }
        let _ = std::io::stderr().flush();
        for c in list.iter_mut().filter(|c| c.broken.is_none()) {
            let r = reference_of(c.part);
            match checked_run(c, &tmp.0, r.as_ref(), Output::Null) {
                Ok((s, _, received)) if !warm => {
                    c.samples.push(s);
                    c.received.push(received);
                }
                Ok(_) => {}
                Err(why) => {
                    c.broken = Some(format!(
                        "{} {}: {why}",
                        if warm { "warm-up round" } else { "round" },
                        if warm {
                            round + 1
                        } else {
                            round + 1 - WARMUP_ROUNDS
                        }
                    ))
                }
            }
        }
    }
    eprintln!();
    let load_end = loadavg();

    print_overhead(&list, runs);
    println!();
    print_exit_delay(&list, runs);
    println!();
    print_goals(&list);
    println!("load average at the end: {load_end}");

    let broken: Vec<&Config> = list.iter().filter(|c| c.broken.is_some()).collect();
    if broken.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!();
        for c in &broken {
            println!(
                "ERROR {} / {}: {}",
                c.part.label(),
                c.label,
                c.broken.as_deref().unwrap_or("")
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

fn print_notes(c: &Config) {
    for n in &c.notes {
        println!("    {:<33} {n}", "");
    }
}

/// The median, over rounds, of `c`'s run divided by the telemetry-off run of the same
/// round: runs of one round are close in time, so drift on the machine cancels out.
fn paired_ratio(list: &[Config], c: &Config) -> Option<f64> {
    let off = list
        .iter()
        .find(|o| o.part == c.part && o.kind == Kind::Off && o.broken.is_none())?;
    let ratios: Vec<f64> = c
        .samples
        .iter()
        .zip(&off.samples)
        .map(|(s, o)| s.wall_ms / o.wall_ms)
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

fn print_overhead(list: &[Config], runs: usize) {
    let part = Part::Overhead;
    let off = baseline(list, part);
    println!("{}", part.label());
    println!(
        "  {:<33} {:>9} {:>8} {:>7} {:>7} {:>7} {:>6} {:>7} {:>7} {:>10} {:>10}",
        "telemetry",
        "median ms",
        "min ms",
        "vs off",
        "paired",
        "min/min",
        "+ms",
        "CPU ms",
        "RSS MiB",
        "spans",
        "logs"
    );
    println!("  {}", "-".repeat(122));
    for c in list.iter().filter(|c| c.part == part) {
        match summarise(c) {
            Some(s) => {
                let (ratio, paired, min_ratio, plus) = match off {
                    Some(o) if c.kind != Kind::Off => (
                        format!("{:.3}x", s.median_ms / o.median_ms),
                        paired_ratio(list, c).map_or("-".into(), |x| format!("{x:.3}x")),
                        format!("{:.3}x", s.min_ms / o.min_ms),
                        format!("{:+.1}", s.median_ms - o.median_ms),
                    ),
                    _ => ("-".into(), "-".into(), "-".into(), "-".into()),
                };
                let (spans, logs) = if c.receiver.is_some() {
                    (
                        format!("{:.0}, {:.1}", s.trace_requests, s.trace_bytes / 1024.0),
                        format!("{:.0}, {:.1}", s.log_requests, s.log_bytes / 1024.0),
                    )
                } else {
                    ("-".into(), "-".into())
                };
                println!(
                    "  {:<33} {:>9.1} {:>8.1} {:>7} {:>7} {:>7} {:>6} {:>7.1} {:>7.1} {:>10} {:>10}",
                    c.label,
                    s.median_ms,
                    s.min_ms,
                    ratio,
                    paired,
                    min_ratio,
                    plus,
                    s.cpu_ms,
                    s.rss_mib,
                    spans,
                    logs
                );
            }
            None => println!("  {:<33} {:>9}", c.label, "FAILED (see below)"),
        }
        print_notes(c);
    }
    println!(
        "  wall time of the whole `faultline run` process, console to /dev/null; medians of {runs} runs; \
         vs off = median / median,\n  paired = median over rounds of (run / off run of the same round), \
         min/min = min / min, +ms = median - off median; CPU = user + system \
         incl. the waited-for echo processes, median;\n  spans, logs = requests and KiB the receiver got per run (median), \
         OTLP spans and OTLP log records (faultline's logs sink follows the\n  OTLP endpoint; \
         \"no logs\" = OTEL_LOGS_EXPORTER=none)"
    );
    if let Some(o) = off {
        for c in list
            .iter()
            .filter(|c| c.part == part && c.kind != Kind::Off)
        {
            if let Some(s) = summarise(c) {
                println!(
                    "  {}: {:+.3} ms per activity ({:+.1} ms / {ECHO_PROBES})",
                    c.label,
                    (s.median_ms - o.median_ms) / ECHO_PROBES as f64,
                    s.median_ms - o.median_ms
                );
            }
        }
    }
}

fn print_exit_delay(list: &[Config], runs: usize) {
    let part = Part::ExitDelay;
    let off = baseline(list, part);
    println!("{}", part.label());
    println!(
        "  {:<33} {:>9} {:>8} {:>8} {:>13} {:>13} {:>8} {:>8}",
        "collector",
        "median ms",
        "min ms",
        "max ms",
        "delay median",
        "delay worst",
        "CPU ms",
        "RSS MiB"
    );
    println!("  {}", "-".repeat(108));
    for c in list.iter().filter(|c| c.part == part) {
        match summarise(c) {
            Some(s) => {
                let (dm, dw) = match off {
                    Some(o) if c.kind != Kind::Off => (
                        format!("{:+.0} ms", s.median_ms - o.median_ms),
                        format!("{:+.0} ms", s.max_ms - o.median_ms),
                    ),
                    _ => ("-".into(), "-".into()),
                };
                println!(
                    "  {:<33} {:>9.1} {:>8.1} {:>8.1} {:>13} {:>13} {:>8.1} {:>8.1}",
                    c.label, s.median_ms, s.min_ms, s.max_ms, dm, dw, s.cpu_ms, s.rss_mib
                );
            }
            None => println!("  {:<33} {:>9}", c.label, "FAILED (see below)"),
        }
        print_notes(c);
    }
    println!(
        "  wall time of the whole `faultline run` process, console to /dev/null; {runs} runs; delay = \
         median (or slowest run) - median with telemetry off;\n  notes: faultline's own console \
         lines about telemetry in the sanity run (exporter timeout 1 s, shutdown limit 1.5 s: the defaults)"
    );
}

fn print_goals(list: &[Config]) {
    println!("goals (printed figures, not assertions):");
    let off = baseline(list, Part::Overhead);
    for c in list
        .iter()
        .filter(|c| c.part == Part::Overhead && c.kind != Kind::Off)
    {
        let note = if c.kind == Kind::File {
            " (no receiver; the same bar, for information)"
        } else {
            ""
        };
        match (summarise(c), off) {
            (Some(s), Some(o)) => {
                let x = s.median_ms / o.median_ms;
                println!(
                    "  {}  (1) {}: at most {GOAL_OVERHEAD_RATIO:.2}x telemetry off: {x:.3}x ({:.1} ms vs {:.1} ms median; paired {}){note}",
                    verdict(x <= GOAL_OVERHEAD_RATIO),
                    c.label,
                    s.median_ms,
                    o.median_ms,
                    paired_ratio(list, c).map_or("-".into(), |p| format!("{p:.3}x"))
                );
            }
            _ => println!(
                "  n/a   (1) {}: at most {GOAL_OVERHEAD_RATIO:.2}x telemetry off: a run failed",
                c.label
            ),
        }
    }
    let off = baseline(list, Part::ExitDelay);
    for c in list
        .iter()
        .filter(|c| c.part == Part::ExitDelay && c.kind != Kind::Off)
    {
        match (summarise(c), off) {
            (Some(s), Some(o)) => {
                let worst = s.max_ms - o.median_ms;
                println!(
                    "  {}  (2) {}: exits at most {:.1} s after telemetry off: worst run {:+.3} s, median {:+.3} s",
                    verdict(worst <= GOAL_EXIT_DELAY_MS),
                    c.label,
                    GOAL_EXIT_DELAY_MS / 1e3,
                    worst / 1e3,
                    (s.median_ms - o.median_ms) / 1e3
                );
            }
            _ => println!(
                "  n/a   (2) {}: exits at most {:.1} s after telemetry off: a run failed",
                c.label,
                GOAL_EXIT_DELAY_MS / 1e3
            ),
        }
    }
    println!(
        "  for context, not measured here (../shared/reference/chaostoolkit.md): the Chaos Toolkit's \
         OpenTelemetry control\n  took {CTK_DEAD_COLLECTOR_EXIT_S:.2} s to exit with an unreachable \
         collector instead of {CTK_LIVE_EXIT_S:.1} s ({:+.2} s)",
        CTK_DEAD_COLLECTOR_EXIT_S - CTK_LIVE_EXIT_S
    );
}
