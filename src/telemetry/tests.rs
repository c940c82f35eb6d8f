//! Telemetry against real receivers on 127.0.0.1 (gRPC, HTTP/protobuf, HTTP/JSON),
//! the embedded file, propagation, and collector outages.
//!
//! `#[tokio::test]` runs on a current-thread runtime, the same flavour as the binary.
//! Timings are printed, never asserted tightly: the upper bound of 5 s is only a
//! safety net against a hang.

use super::receiver::{attr, closed_port, spans, GrpcReceiver, HttpReceiver, Mode, Received};
use super::*;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use std::path::Path;

const SAFETY_NET: Duration = Duration::from_secs(5);

fn env_of(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |k| map.get(k).cloned()
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!(
        "faultline-telemetry-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One experiment span with `n - 1` activity children, all ended; returns the trace id.
fn emit(t: &Telemetry, n: usize) -> String {
    let tracer = t.tracer();
    let parent = t.parent_context();
    let root = tracer
        .span_builder("chaos.experiment")
        .with_attributes([KeyValue::new("chaos.experiment.title", "kill the cache")])
        .start_with_context(&tracer, &parent);
    let exp = parent.with_span(root);
    for i in 0..n.saturating_sub(1) {
        let mut s = tracer
            .span_builder("chaos.activity")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("chaos.activity.name", format!("probe-{i}")),
                KeyValue::new("http.request.method", "GET"),
            ])
            .start_with_context(&tracer, &exp);
        s.end();
    }
    let trace_id = exp.span().span_context().trace_id().to_string();
    exp.span().end();
    trace_id
}

fn read_file(path: &Path) -> ExportTraceServiceRequest {
    let bytes = std::fs::read(path).expect("trace file");
    serde_json::from_slice(&bytes).expect("an OTLP JSON ExportTraceServiceRequest")
}

#[tokio::test]
async fn the_embedded_default_writes_loadable_otlp_json_next_to_the_journal() {
    let dir = temp_dir("file");
    let journal = dir.join("journal.json");
    let t = Telemetry::init(TelemetryConfig::new("run-file", &journal), &env_of(&[])).unwrap();
    let file = dir.join("journal.trace.json");
    assert_eq!(t.destination(), format!("file {}", file.display()));
    assert!(t.is_recording());
    let trace_id = emit(&t, 4);
    let report = t.shutdown().await;
    println!("file: {report} in {:?}", report.elapsed);
    assert_eq!(
        (report.spans, report.exported, report.undelivered),
        (4, 4, 0)
    );
    assert!(report.complete(), "{report:?}");

    // Typed: the same shape an OTLP/HTTP JSON receiver accepts.
    let request = read_file(&file);
    let got = spans(std::slice::from_ref(&request));
    assert_eq!(got.len(), 4);
    assert!(got
        .iter()
        .all(|(svc, _)| svc.as_deref() == Some("faultline")));
    let resource = &request.resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes;
    assert_eq!(attr(resource, "chaos.run.id").as_deref(), Some("run-file"));
    let root = got
        .iter()
        .find(|(_, s)| s.name == "chaos.experiment")
        .unwrap();
    assert!(root.1.parent_span_id.is_empty());
    for (_, s) in got.iter().filter(|(_, s)| s.name == "chaos.activity") {
        assert_eq!(s.parent_span_id, root.1.span_id);
        assert_eq!(s.trace_id, root.1.trace_id);
        assert!(attr(&s.attributes, "chaos.activity.name").is_some());
    }

    // One request per line, as the Collector's file exporter writes and its
    // `otlpjsonfile` receiver reads.
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.ends_with("}\n"));

    // Untyped: ids are lower-case hex strings as the OTLP JSON mapping wants.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    let tid = span["traceId"].as_str().expect("traceId is a string");
    assert_eq!(tid, trace_id);
    assert!(
        tid.len() == 32
            && tid
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
    assert_eq!(
        v["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"],
        "faultline"
    );

    // Atomic: nothing else left in the directory.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["journal.trace.json"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dropping_without_shutdown_still_writes_the_file() {
    let dir = temp_dir("drop");
    let t = Telemetry::init(TelemetryConfig::new("r", dir.join("j.json")), &env_of(&[])).unwrap();
    emit(&t, 2);
    drop(t);
    assert_eq!(spans(&[read_file(&dir.join("j.trace.json"))]).len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

enum Live {
    Http(HttpReceiver),
    Grpc(GrpcReceiver),
}

impl Live {
    fn start(protocol: &str) -> Live {
        if protocol == "grpc" {
            Live::Grpc(GrpcReceiver::start(false))
        } else {
            Live::Http(HttpReceiver::start(Mode::Ok))
        }
    }
    fn url(&self) -> String {
        match self {
            Live::Http(r) => r.url(),
            Live::Grpc(r) => r.url(),
        }
    }
    fn received(&self) -> Vec<Received> {
        match self {
            Live::Http(r) => r.received(),
            Live::Grpc(r) => r.received(),
        }
    }
}

/// Spans, resource, attributes and headers arrive over `protocol`.
async fn delivers_over(protocol: &str) {
    let receiver = Live::start(protocol);
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
        ("OTEL_SERVICE_NAME", "chaos-ci".to_string()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=staging".to_string(),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%20s3cret,x-tenant=chaos".to_string(),
        ),
    ];
    let t = Telemetry::init(
        TelemetryConfig::new("run-42", "unused.json"),
        &env_of(&vars),
    )
    .unwrap();
    println!("{protocol}: destination {}", t.destination());
    assert!(t.destination().contains(&receiver.url()));
    let trace_id = emit(&t, 5);
    let report = t.shutdown().await;
    println!("{protocol}: {report} in {:?}", report.elapsed);
    assert!(report.complete(), "{report:?}");
    assert_eq!((report.spans, report.exported), (5, 5));

    let received = receiver.received();
    assert!(!received.is_empty());
    let requests: Vec<_> = received.iter().map(|r| r.request.clone()).collect();
    let got = spans(&requests);
    assert_eq!(got.len(), 5);
    assert!(got
        .iter()
        .all(|(svc, _)| svc.as_deref() == Some("chaos-ci")));
    let resource = &requests[0].resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes;
    assert_eq!(
        attr(resource, "deployment.environment").as_deref(),
        Some("staging")
    );
    assert_eq!(attr(resource, "chaos.run.id").as_deref(), Some("run-42"));
    let root = got
        .iter()
        .find(|(_, s)| s.name == "chaos.experiment")
        .unwrap();
    assert_eq!(
        attr(&root.1.attributes, "chaos.experiment.title").as_deref(),
        Some("kill the cache")
    );
    assert_eq!(const_hex(&root.1.trace_id), trace_id);
    let probe = got
        .iter()
        .find(|(_, s)| s.name == "chaos.activity")
        .unwrap();
    assert_eq!(
        attr(&probe.1.attributes, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(probe.1.parent_span_id, root.1.span_id);

    let first = &received[0];
    assert_eq!(first.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(first.header("x-tenant"), Some("chaos"));
    match protocol {
        "grpc" => assert_eq!(first.header("content-type"), Some("application/grpc")),
        "http/json" => {
            assert_eq!(first.path, "/v1/traces");
            assert_eq!(first.header("content-type"), Some("application/json"));
        }
        _ => {
            assert_eq!(first.path, "/v1/traces");
            assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
        }
    }
}

fn const_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn spans_arrive_over_grpc_on_a_current_thread_runtime() {
    delivers_over("grpc").await;
}

#[tokio::test]
async fn spans_arrive_over_http_protobuf() {
    delivers_over("http/protobuf").await;
}

#[tokio::test]
async fn spans_arrive_over_http_json() {
    delivers_over("http/json").await;
}

#[tokio::test]
async fn settings_fields_override_the_environment() {
    let receiver = HttpReceiver::start(Mode::Ok);
    let mut cfg = TelemetryConfig::new("run-s", "unused.json");
    cfg.endpoint = Some(receiver.url()); // a base: /v1/traces is appended
    cfg.protocol = Some("http/json".into());
    cfg.headers = vec![("x-api-key".into(), "100%literal".into())];
    cfg.service_name = Some("from-settings".into());
    let vars = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", closed_port()),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
        ("OTEL_SERVICE_NAME", "from-env".to_string()),
    ];
    let t = Telemetry::init(cfg, &env_of(&vars)).unwrap();
    emit(&t, 1);
    let report = t.shutdown().await;
    assert!(report.complete(), "{report:?}");
    let received = receiver.received();
    assert_eq!(received[0].path, "/v1/traces");
    assert_eq!(received[0].header("x-api-key"), Some("100%literal"));
    assert_eq!(
        spans(&[received[0].request.clone()])[0].0.as_deref(),
        Some("from-settings")
    );
}

#[tokio::test]
async fn a_traceparent_in_the_environment_is_the_experiment_parent() {
    let dir = temp_dir("parent");
    let ci_trace = "0af7651916cd43dd8448eb211c80319c";
    let ci_span = "b7ad6b7169203331";
    let vars = [
        ("TRACEPARENT", format!("00-{ci_trace}-{ci_span}-01")),
        ("TRACESTATE", "ci=gitlab".to_string()),
    ];
    let t = Telemetry::init(
        TelemetryConfig::new("run-p", dir.join("journal.json")),
        &env_of(&vars),
    )
    .unwrap();
    assert!(t.has_env_parent());
    let tracer = t.tracer();
    let parent = t.parent_context();
    let exp = parent.with_span(tracer.start_with_context("chaos.experiment", &parent));
    let act = exp.with_span(tracer.start_with_context("chaos.activity", &exp));
    let (trace, act_span) = propagation::ids(&act).unwrap();
    assert_eq!(trace, ci_trace);

    // HTTP: inject, then extract as the target service would.
    let headers = propagation::http_headers(
        &act,
        &[
            (propagation::BAGGAGE_RUN_ID, "run-p"),
            (propagation::BAGGAGE_EXPERIMENT, "kill the cache"),
        ],
    );
    let back = propagation::extract_headers(&headers);
    assert_eq!(
        propagation::ids(&back),
        Some((trace.clone(), act_span.clone()))
    );
    let baggage = headers.iter().find(|(k, _)| k == "baggage").unwrap();
    assert!(baggage.1.contains("chaos.run.id=run-p"), "{}", baggage.1);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "tracestate" && v == "ci=gitlab"));

    // A real child process sees the activity as its parent.
    let out = std::process::Command::new("sh")
        .args(["-c", "printf '%s|%s' \"$TRACEPARENT\" \"$BAGGAGE\""])
        .envs(propagation::child_env(
            &act,
            &[(propagation::BAGGAGE_RUN_ID, "run-p")],
        ))
        .output()
        .expect("sh");
    let seen = String::from_utf8(out.stdout).unwrap();
    assert_eq!(seen, format!("00-{trace}-{act_span}-01|chaos.run.id=run-p"));

    act.span().end();
    exp.span().end();
    let report = t.shutdown().await;
    assert_eq!(report.exported, 2);
    let got = spans(&[read_file(&dir.join("journal.trace.json"))]);
    let root = got
        .iter()
        .find(|(_, s)| s.name == "chaos.experiment")
        .unwrap();
    assert_eq!(const_hex(&root.1.parent_span_id), ci_span);
    assert_eq!(const_hex(&root.1.trace_id), ci_trace);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn disabled_spans_are_no_ops_and_nothing_is_written() {
    let dir = temp_dir("disabled");
    let t = Telemetry::init(
        TelemetryConfig::new("r", dir.join("journal.json")),
        &env_of(&[("OTEL_SDK_DISABLED", "true".into())]),
    )
    .unwrap();
    assert_eq!(t.destination(), "disabled");
    assert!(!t.is_recording());
    let span = t.tracer().start("chaos.experiment");
    assert!(!span.is_recording());
    assert!(span.span_context().is_valid(), "propagation still has ids");
    drop(span);
    let report = t.shutdown().await;
    assert_eq!(report.spans, 0);
    assert_eq!(report.to_string(), "tracing disabled");
    assert!(!dir.join("journal.trace.json").exists());

    // always_off keeps the file but records nothing.
    let t = Telemetry::init(
        TelemetryConfig::new("r", dir.join("journal.json")),
        &env_of(&[("OTEL_TRACES_SAMPLER", "always_off".into())]),
    )
    .unwrap();
    emit(&t, 3);
    let report = t.shutdown().await;
    assert_eq!((report.spans, report.exported), (0, 0));
    assert!(read_file(&dir.join("journal.trace.json"))
        .resource_spans
        .is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grpc_outside_a_runtime_is_an_error_not_a_panic() {
    let vars = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4317".to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
    ];
    let err = Telemetry::init(TelemetryConfig::new("r", "j.json"), &env_of(&vars)).unwrap_err();
    assert!(err.contains("tokio runtime"), "{err}");
}

#[tokio::test]
async fn grpc_over_https_is_a_clear_error_without_a_tls_feature() {
    let vars = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4317".to_string(),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
    ];
    let err = Telemetry::init(TelemetryConfig::new("r", "j.json"), &env_of(&vars)).unwrap_err();
    println!("gRPC over https: {err}");
    assert!(err.contains("HTTPS"), "{err}");
}

// ---- outages -------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Outage {
    Refused,
    Blackhole,
    Errors,
}

enum Target {
    Closed(std::net::SocketAddr),
    Http(HttpReceiver),
    Grpc(GrpcReceiver),
}

impl Target {
    fn start(outage: Outage, protocol: &str) -> Target {
        match (outage, protocol) {
            (Outage::Refused, _) => Target::Closed(closed_port()),
            // A TCP blackhole is the same for gRPC and HTTP: the handshake never completes.
            (Outage::Blackhole, _) => Target::Http(HttpReceiver::start(Mode::Blackhole)),
            (Outage::Errors, "grpc") => Target::Grpc(GrpcReceiver::start(true)),
            (Outage::Errors, _) => Target::Http(HttpReceiver::start(Mode::Status(500))),
        }
    }
    fn url(&self) -> String {
        match self {
            Target::Closed(a) => format!("http://{a}"),
            Target::Http(r) => r.url(),
            Target::Grpc(r) => r.url(),
        }
    }
}

/// Run `n` spans into `outage` over `protocol`; the shutdown must come back within
/// the limit (printed) and report every span as undelivered.
async fn survive(
    outage: Outage,
    protocol: &str,
    n: usize,
    extra: &[(&str, String)],
) -> ShutdownReport {
    let target = Target::start(outage, protocol);
    let mut vars = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", target.url()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
    ];
    vars.extend(extra.iter().cloned());
    let t = Telemetry::init(TelemetryConfig::new("run-o", "unused.json"), &env_of(&vars)).unwrap();
    let limit = t.shutdown_limit();
    emit(&t, n);
    let start = Instant::now();
    let report = t.shutdown().await;
    let elapsed = start.elapsed();
    println!(
        "outage {outage:?} over {protocol} ({n} spans{}): shutdown took {:.3} s (limit {:.1} s): {report}",
        if extra.is_empty() { String::new() } else { format!(", {extra:?}") },
        elapsed.as_secs_f64(),
        limit.as_secs_f64(),
    );
    assert!(elapsed < SAFETY_NET, "shutdown took {elapsed:?}");
    assert_eq!(report.spans, n as u64, "{report:?}");
    assert_eq!(report.exported, 0, "{report:?}");
    assert_eq!(report.undelivered, n as u64, "{report:?}");
    assert!(report.error.is_some(), "{report:?}");
    assert!(!report.complete());
    drop(target);
    report
}

const PROTOCOLS: [&str; 3] = ["grpc", "http/protobuf", "http/json"];

#[tokio::test]
async fn a_refused_connection_costs_little_and_is_reported() {
    for p in PROTOCOLS {
        let r = survive(Outage::Refused, p, 5, &[]).await;
        assert_eq!(r.failed, 5, "{r:?}");
    }
}

#[tokio::test]
async fn a_blackhole_collector_is_bounded_by_the_export_timeout() {
    for p in PROTOCOLS {
        survive(Outage::Blackhole, p, 5, &[]).await;
    }
}

#[tokio::test]
async fn a_collector_answering_errors_is_reported() {
    for p in PROTOCOLS {
        let r = survive(Outage::Errors, p, 5, &[]).await;
        assert_eq!(r.failed, 5, "{r:?}");
    }
}

#[tokio::test]
async fn the_shutdown_limit_wins_over_a_long_user_timeout() {
    for p in PROTOCOLS {
        let r = survive(
            Outage::Blackhole,
            p,
            5,
            &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10000".to_string())],
        )
        .await;
        assert!(r.timed_out, "{r:?}");
    }
}

#[tokio::test]
async fn many_spans_into_a_blackhole_stay_within_the_limit() {
    for p in ["grpc", "http/protobuf"] {
        survive(Outage::Blackhole, p, 3001, &[]).await;
    }
}

/// The binary's exit path: a current-thread runtime, `shutdown().await` inside it, then
/// `runtime.shutdown_timeout(200 ms)` as `cli::main` does. Nothing we leave behind may
/// hold the runtime's shutdown.
#[test]
fn the_binary_exit_path_stays_within_the_limit() {
    for p in PROTOCOLS {
        let hole = HttpReceiver::start(Mode::Blackhole);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", hole.url()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", p.to_string()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10000".to_string()),
        ];
        let start = rt.block_on(async {
            let t = Telemetry::init(TelemetryConfig::new("r", "j.json"), &env_of(&vars)).unwrap();
            emit(&t, 20);
            let start = Instant::now();
            let report = t.shutdown().await;
            assert_eq!(report.undelivered, 20);
            start
        });
        rt.shutdown_timeout(Duration::from_millis(200));
        let elapsed = start.elapsed();
        println!(
            "exit path, blackhole over {p}: shutdown + runtime shutdown took {:.3} s",
            elapsed.as_secs_f64()
        );
        assert!(elapsed < SAFETY_NET);
    }
}

/// Spans leave during the run (the batch timer), not only at shutdown, while the
/// current-thread runtime is busy awaiting like the runner does.
#[tokio::test]
async fn spans_are_exported_during_the_run_on_a_current_thread_runtime() {
    for p in ["grpc", "http/protobuf"] {
        let receiver = Live::start(p);
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", p.to_string()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
        ];
        let t = Telemetry::init(TelemetryConfig::new("r", "j.json"), &env_of(&vars)).unwrap();
        emit(&t, 3);
        let start = Instant::now();
        while receiver.received().is_empty() && start.elapsed() < SAFETY_NET {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "{p}: first batch arrived {:.3} s after the spans ended, before shutdown",
            start.elapsed().as_secs_f64()
        );
        assert_eq!(spans(&[receiver.received()[0].request.clone()]).len(), 3);
        let report = t.shutdown().await;
        assert!(report.complete(), "{report:?}");
    }
}
