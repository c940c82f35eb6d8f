//! Real OTLP receivers for the telemetry tests, built on `opentelemetry-proto`: a gRPC
//! one (tonic `TraceService` + `LogsService`) and an HTTP one (`POST /v1/traces`,
//! `/v1/logs`, protobuf or JSON), each on a free 127.0.0.1 port, on its own thread with
//! its own Tokio runtime (the tests are synchronous), recording everything received as
//! flat views that are easy to assert on. Outage modes: [`OtlpReceiver::failing`]
//! (answers an error status to everything), [`Blackhole`] (accepts connections, never
//! answers) and `common::closed_port()` (connection refused).
//!
//! The self-tests below send spans with the real `opentelemetry-otlp` exporter over the
//! three protocols; the demo-service tests prove `examples/demo-service` joins the
//! caller's trace and counts its requests in Prometheus metrics.

#![allow(dead_code)]

use crate::common::*;
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
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status};
use prost::Message;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// What was received
// ---------------------------------------------------------------------------

/// How a batch reached the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

impl Transport {
    /// The `OTEL_EXPORTER_OTLP_PROTOCOL` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::HttpProtobuf => "http/protobuf",
            Transport::HttpJson => "http/json",
        }
    }
}

/// One span event.
#[derive(Debug, Clone)]
pub struct EventView {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Map<String, Value>,
}

/// One span link.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub trace_id: String,
    pub span_id: String,
    pub attributes: Map<String, Value>,
}

/// One received span, flattened with its resource and scope.
#[derive(Debug, Clone)]
pub struct SpanView {
    pub transport: Transport,
    /// Resource attributes (`service.name`, `OTEL_RESOURCE_ATTRIBUTES` entries, ...).
    pub resource: Map<String, Value>,
    pub scope: String,
    pub scope_version: String,
    pub name: String,
    /// `INTERNAL`, `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER` or `UNSPECIFIED`.
    pub kind: String,
    /// Lowercase hex, 32 characters.
    pub trace_id: String,
    /// Lowercase hex, 16 characters.
    pub span_id: String,
    /// Lowercase hex; empty for a root span.
    pub parent_span_id: String,
    pub trace_state: String,
    /// `UNSET`, `OK` or `ERROR`.
    pub status_code: String,
    pub status_message: String,
    /// Ints are JSON integers, doubles numbers, arrays arrays, bytes lowercase hex.
    pub attributes: Map<String, Value>,
    pub events: Vec<EventView>,
    pub links: Vec<LinkView>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
}

impl SpanView {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
    pub fn attr_i64(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
    pub fn service_name(&self) -> Option<&str> {
        self.resource.get("service.name").and_then(Value::as_str)
    }
    pub fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }
    pub fn event(&self, name: &str) -> Option<&EventView> {
        self.events.iter().find(|e| e.name == name)
    }
}

/// One received log record, flattened with its resource and scope.
#[derive(Debug, Clone)]
pub struct LogView {
    pub transport: Transport,
    pub resource: Map<String, Value>,
    pub scope: String,
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    pub severity_text: String,
    pub event_name: String,
    /// The body as JSON (a string body is a JSON string, a map body an object, ...).
    pub body: Value,
    pub attributes: Map<String, Value>,
    /// Lowercase hex; empty when the record carries no trace context.
    pub trace_id: String,
    pub span_id: String,
}

impl LogView {
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }
}

/// One export request as it arrived (also recorded when it was refused or undecodable).
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The URL path (HTTP) or the gRPC method path.
    pub path: String,
    /// Header names lowercase; gRPC metadata included.
    pub headers: HashMap<String, String>,
    /// The answer given (HTTP status; 200 for an accepted gRPC call, 503 for a failed one).
    pub status: u16,
}

#[derive(Default)]
struct Collected {
    spans: Vec<SpanView>,
    logs: Vec<LogView>,
    requests: Vec<ReceivedRequest>,
}

type Shared = Arc<Mutex<Collected>>;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn any_to_json(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attrs(&kv.values)),
        Some(any_value::Value::BytesValue(b)) => Value::String(hex(b)),
        _ => Value::Null,
    }
}

fn attrs(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map_or(Value::Null, any_to_json),
            )
        })
        .collect()
}

fn resource_attrs(r: &Option<Resource>) -> Map<String, Value> {
    r.as_ref().map(|r| attrs(&r.attributes)).unwrap_or_default()
}

fn scope_of(s: &Option<InstrumentationScope>) -> (String, String) {
    s.as_ref()
        .map(|s| (s.name.clone(), s.version.clone()))
        .unwrap_or_default()
}

fn span_views(req: ExportTraceServiceRequest, transport: Transport) -> Vec<SpanView> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource = resource_attrs(&rs.resource);
        for ss in rs.scope_spans {
            let (scope, scope_version) = scope_of(&ss.scope);
            for s in ss.spans {
                let kind = span::SpanKind::try_from(s.kind)
                    .map(|k| k.as_str_name().trim_start_matches("SPAN_KIND_").to_string())
                    .unwrap_or_else(|_| format!("KIND_{}", s.kind));
                let (status_code, status_message) = match &s.status {
                    Some(st) => (
                        status::StatusCode::try_from(st.code)
                            .map(|c| {
                                c.as_str_name()
                                    .trim_start_matches("STATUS_CODE_")
                                    .to_string()
                            })
                            .unwrap_or_else(|_| format!("CODE_{}", st.code)),
                        st.message.clone(),
                    ),
                    None => ("UNSET".to_string(), String::new()),
                };
                out.push(SpanView {
                    transport,
                    resource: resource.clone(),
                    scope: scope.clone(),
                    scope_version: scope_version.clone(),
                    name: s.name,
                    kind,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    trace_state: s.trace_state,
                    status_code,
                    status_message,
                    attributes: attrs(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| EventView {
                            name: e.name.clone(),
                            time_unix_nano: e.time_unix_nano,
                            attributes: attrs(&e.attributes),
                        })
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| LinkView {
                            trace_id: hex(&l.trace_id),
                            span_id: hex(&l.span_id),
                            attributes: attrs(&l.attributes),
                        })
                        .collect(),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                });
            }
        }
    }
    out
}

fn log_views(req: ExportLogsServiceRequest, transport: Transport) -> Vec<LogView> {
    let mut out = Vec::new();
    for rl in req.resource_logs {
        let resource = resource_attrs(&rl.resource);
        for sl in rl.scope_logs {
            let (scope, _) = scope_of(&sl.scope);
            for r in sl.log_records {
                out.push(LogView {
                    transport,
                    resource: resource.clone(),
                    scope: scope.clone(),
                    time_unix_nano: r.time_unix_nano,
                    observed_time_unix_nano: r.observed_time_unix_nano,
                    severity_number: r.severity_number,
                    severity_text: r.severity_text.clone(),
                    event_name: r.event_name.clone(),
                    body: r.body.as_ref().map_or(Value::Null, any_to_json),
                    attributes: attrs(&r.attributes),
                    trace_id: hex(&r.trace_id),
                    span_id: hex(&r.span_id),
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------

/// Which server an [`OtlpReceiver`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    Grpc,
    Http,
}

/// A real OTLP receiver on 127.0.0.1 (free port) recording everything it receives.
/// Stops on drop (its runtime and open connections are dropped with it).
pub struct OtlpReceiver {
    pub port: u16,
    pub kind: ReceiverKind,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// OTLP/gRPC: `TraceService/Export` and `LogsService/Export`.
    pub fn grpc() -> OtlpReceiver {
        Self::start_grpc(false)
    }

    /// OTLP/gRPC answering every export with `UNAVAILABLE` (requests still recorded).
    pub fn failing_grpc() -> OtlpReceiver {
        Self::start_grpc(true)
    }

    /// OTLP/HTTP: `POST /v1/traces` and `/v1/logs`, `application/x-protobuf` or
    /// `application/json`; answers 200 with an empty response message of the same
    /// encoding.
    pub fn http() -> OtlpReceiver {
        Self::start_http(None)
    }

    /// HTTP answering `status` (e.g. 500) to everything; requests (headers) still
    /// recorded, nothing decoded.
    pub fn failing(status: u16) -> OtlpReceiver {
        Self::start_http(Some(status))
    }

    /// The base endpoint, for `OTEL_EXPORTER_OTLP_ENDPOINT` (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `{endpoint}/v1/traces` (for `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` over HTTP).
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint())
    }

    /// `{endpoint}/v1/logs` (for `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` over HTTP).
    pub fn logs_url(&self) -> String {
        format!("{}/v1/logs", self.endpoint())
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<SpanView> {
        self.shared.lock().unwrap().spans.clone()
    }

    /// Every log record received so far, in arrival order.
    pub fn logs(&self) -> Vec<LogView> {
        self.shared.lock().unwrap().logs.clone()
    }

    /// Every export request received so far (accepted or not).
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// The headers (HTTP) or metadata (gRPC) of every export request, names lowercase.
    pub fn requests_headers(&self) -> Vec<HashMap<String, String>> {
        self.requests().into_iter().map(|r| r.headers).collect()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().unwrap().requests.len()
    }

    /// Poll until at least `n` spans arrived; panics after `limit` naming what came.
    pub fn wait_for_spans(&self, n: usize, limit: Duration) -> Vec<SpanView> {
        let start = Instant::now();
        loop {
            let spans = self.spans();
            if spans.len() >= n {
                return spans;
            }
            if start.elapsed() > limit {
                let names: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
                panic!(
                    "expected {n} spans within {limit:?}, got {}: {names:?}",
                    spans.len()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Poll until at least `n` log records arrived; panics after `limit`.
    pub fn wait_for_logs(&self, n: usize, limit: Duration) -> Vec<LogView> {
        let start = Instant::now();
        loop {
            let logs = self.logs();
            if logs.len() >= n {
                return logs;
            }
            if start.elapsed() > limit {
                panic!(
                    "expected {n} log records within {limit:?}, got {}",
                    logs.len()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Poll until `pred` holds for the spans received; false after `limit`.
    pub fn wait_spans_until(&self, limit: Duration, pred: impl Fn(&[SpanView]) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if pred(&self.spans()) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The only span named `name`; panics (listing the names) when there is none or
    /// more than one.
    pub fn span(&self, name: &str) -> SpanView {
        let spans = self.spans();
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        match found.as_slice() {
            [one] => (*one).clone(),
            _ => panic!(
                "expected one span named {name:?}, found {}; spans: {:?}",
                found.len(),
                spans.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()
            ),
        }
    }

    /// Every span named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<SpanView> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }

    /// The direct children of `parent` (same trace, parent id = its span id).
    pub fn children(&self, parent: &SpanView) -> Vec<SpanView> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
            .collect()
    }

    /// Every span of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<SpanView> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }

    fn start_grpc(fail: bool) -> OtlpReceiver {
        Self::start(ReceiverKind::Grpc, move |listener, shared| async move {
            let svc = Arc::new(GrpcCollector { shared, fail });
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::from_arc(svc.clone()))
                .add_service(LogsServiceServer::from_arc(svc))
                .serve_with_incoming(incoming)
                .await;
        })
    }

    fn start_http(fail: Option<u16>) -> OtlpReceiver {
        Self::start(ReceiverKind::Http, move |listener, shared| async move {
            let router = axum::Router::new()
                .fallback(http_export)
                .with_state(HttpCollector { shared, fail });
            let _ = axum::serve(listener, router).await;
        })
    }

    fn start<F, Fut>(kind: ReceiverKind, serve: F) -> OtlpReceiver
    where
        F: FnOnce(tokio::net::TcpListener, Shared) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let shared = Shared::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{port}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    tokio::select! {
                        _ = serve(listener, sh) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here drops every connection task with it.
            })
            .unwrap();
        OtlpReceiver {
            port,
            kind,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// gRPC metadata as lowercase header strings.
fn metadata_headers(md: &tonic::metadata::MetadataMap) -> HashMap<String, String> {
    md.clone()
        .into_headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

struct GrpcCollector {
    shared: Shared,
    fail: bool,
}

impl GrpcCollector {
    fn record(&self, path: &str, md: &tonic::metadata::MetadataMap) -> Result<(), tonic::Status> {
        self.shared.lock().unwrap().requests.push(ReceivedRequest {
            path: path.to_string(),
            headers: metadata_headers(md),
            status: if self.fail { 503 } else { 200 },
        });
        if self.fail {
            Err(tonic::Status::unavailable("failing on purpose"))
        } else {
            Ok(())
        }
    }
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.record(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request.metadata(),
        )?;
        let spans = span_views(request.into_inner(), Transport::Grpc);
        self.shared.lock().unwrap().spans.extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.record(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request.metadata(),
        )?;
        let logs = log_views(request.into_inner(), Transport::Grpc);
        self.shared.lock().unwrap().logs.extend(logs);
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[derive(Clone)]
struct HttpCollector {
    shared: Shared,
    fail: Option<u16>,
}

/// Decode `body` as protobuf or JSON, per the content type.
fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    transport: Transport,
    body: &[u8],
) -> Result<T, String> {
    match transport {
        Transport::HttpJson => serde_json::from_slice(body).map_err(|e| e.to_string()),
        _ => T::decode(body).map_err(|e| e.to_string()),
    }
}

async fn http_export(
    axum::extract::State(c): axum::extract::State<HttpCollector>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    let path = uri.path().to_string();
    let header_map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let content_type = header_map
        .get("content-type")
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let answer = |status: u16, body: axum::response::Response| {
        c.shared.lock().unwrap().requests.push(ReceivedRequest {
            path: path.clone(),
            headers: header_map.clone(),
            status,
        });
        body
    };

    if let Some(status) = c.fail {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return answer(status, (code, "failing on purpose").into_response());
    }
    if method != axum::http::Method::POST || !(path == "/v1/traces" || path == "/v1/logs") {
        return answer(
            404,
            (StatusCode::NOT_FOUND, "not an OTLP path").into_response(),
        );
    }
    let transport = match content_type.as_str() {
        "application/x-protobuf" => Transport::HttpProtobuf,
        "application/json" => Transport::HttpJson,
        other => {
            let msg = format!("unsupported content type {other:?}");
            return answer(
                415,
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, msg).into_response(),
            );
        }
    };
    if header_map.contains_key("content-encoding") {
        let msg = "compressed bodies are not supported by this test receiver";
        return answer(
            415,
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, msg).into_response(),
        );
    }
    let decoded = if path == "/v1/traces" {
        decode::<ExportTraceServiceRequest>(transport, &body).map(|req| {
            let spans = span_views(req, transport);
            c.shared.lock().unwrap().spans.extend(spans);
            ExportTraceServiceResponse::default().encode_to_vec()
        })
    } else {
        decode::<ExportLogsServiceRequest>(transport, &body).map(|req| {
            let logs = log_views(req, transport);
            c.shared.lock().unwrap().logs.extend(logs);
            ExportLogsServiceResponse::default().encode_to_vec()
        })
    };
    match decoded {
        Err(e) => answer(400, (StatusCode::BAD_REQUEST, e).into_response()),
        Ok(empty) => {
            let response = match transport {
                Transport::HttpJson => (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    "{}".as_bytes().to_vec(),
                )
                    .into_response(),
                _ => (
                    [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                    empty,
                )
                    .into_response(),
            };
            answer(200, response)
        }
    }
}

// ---------------------------------------------------------------------------
// Blackhole
// ---------------------------------------------------------------------------

/// A collector that accepts TCP connections and holds them without ever reading or
/// answering (every export waits for its timeout). Closes them all on drop.
pub struct Blackhole {
    pub port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (held.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => h.lock().unwrap().push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Blackhole {
            port,
            held,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.held.lock().unwrap().clear();
    }
}

// ---------------------------------------------------------------------------
// Self-tests: the real opentelemetry-otlp exporter against each receiver
// ---------------------------------------------------------------------------

mod selftest {
    use super::*;
    use opentelemetry::trace::{
        Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
    };
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_otlp::{
        Protocol, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
    };
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::Resource;

    /// Export a root INTERNAL span with a CLIENT child (attributes, an event, ERROR
    /// status) through `protocol` to `endpoint`, sending an `authorization` header.
    fn export_two_spans(protocol: Protocol, endpoint: &str) {
        // The HTTP exporters build a reqwest client: TLS needs its provider first.
        faultline::tls::init();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let auth = "Bearer selftest-token".to_string();
        // The tonic exporter must be built inside the runtime, which must outlive
        // shutdown (dependencies.md pitfall 7).
        let provider = rt.block_on(async {
            let exporter = match protocol {
                Protocol::Grpc => {
                    let mut md = tonic::metadata::MetadataMap::new();
                    md.insert("authorization", auth.parse().unwrap());
                    SpanExporter::builder()
                        .with_tonic()
                        .with_endpoint(endpoint)
                        .with_metadata(md)
                        .with_timeout(Duration::from_secs(5))
                        .build()
                        .unwrap()
                }
                p => SpanExporter::builder()
                    .with_http()
                    .with_protocol(p)
                    .with_endpoint(format!("{endpoint}/v1/traces"))
                    .with_headers(HashMap::from([("authorization".to_string(), auth)]))
                    .with_timeout(Duration::from_secs(5))
                    .build()
                    .unwrap(),
            };
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    Resource::builder_empty()
                        .with_service_name("otlp-selftest")
                        .with_attribute(KeyValue::new("deployment.environment", "test"))
                        .build(),
                )
                .build()
        });
        let tracer = provider.tracer("faultline-selftest");
        let root = tracer
            .span_builder("experiment")
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new("chaos.run.id", "run-1"),
                KeyValue::new("chaos.count", 3_i64),
                KeyValue::new("chaos.ratio", 0.5),
                KeyValue::new("chaos.flag", true),
            ])
            .start(&tracer);
        let cx = Context::new().with_span(root);
        let mut child = tracer
            .span_builder("probe GET /health")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 503_i64),
            ])
            .start_with_context(&tracer, &cx);
        child.add_event(
            "chaos.tolerance.verdict",
            vec![
                KeyValue::new("expected", "200"),
                KeyValue::new("actual", "503"),
            ],
        );
        child.set_status(Status::error("tolerance not met"));
        child.end();
        cx.span().end();
        // Not on the runtime's thread, runtime still alive (pitfall 7); nothing flushes
        // by itself (pitfall 9).
        provider.shutdown().unwrap();
        drop(rt);
    }

    fn check_two_spans(rx: &OtlpReceiver, transport: Transport) {
        let spans = rx.wait_for_spans(2, Duration::from_secs(10));
        assert_eq!(spans.len(), 2, "{spans:#?}");
        let root = rx.span("experiment");
        let child = rx.span("probe GET /health");
        assert!(spans.iter().all(|s| s.transport == transport));

        assert!(root.is_root(), "{root:#?}");
        assert_eq!(root.kind, "INTERNAL");
        assert_eq!(root.trace_id.len(), 32);
        assert_eq!(root.span_id.len(), 16);
        assert_eq!(root.service_name(), Some("otlp-selftest"));
        assert_eq!(root.resource["deployment.environment"], "test");
        assert_eq!(root.scope, "faultline-selftest");
        assert_eq!(root.attr_str("chaos.run.id"), Some("run-1"));
        assert_eq!(root.attr_i64("chaos.count"), Some(3));
        assert_eq!(root.attr("chaos.ratio"), Some(&serde_json::json!(0.5)));
        assert_eq!(root.attr("chaos.flag"), Some(&Value::Bool(true)));
        assert_eq!(root.status_code, "UNSET");

        assert_eq!(child.kind, "CLIENT");
        assert_eq!(child.trace_id, root.trace_id);
        assert_eq!(child.parent_span_id, root.span_id);
        assert_eq!(rx.children(&root).len(), 1);
        assert_eq!(child.attr_i64("http.response.status_code"), Some(503));
        assert_eq!(child.status_code, "ERROR");
        assert_eq!(child.status_message, "tolerance not met");
        let verdict = child.event("chaos.tolerance.verdict").expect("event");
        assert_eq!(verdict.attributes["expected"], "200");
        assert_eq!(verdict.attributes["actual"], "503");
        assert!(child.start_unix_nano > 0 && child.end_unix_nano >= child.start_unix_nano);

        let headers = rx.requests_headers();
        assert!(!headers.is_empty());
        assert!(
            headers.iter().all(
                |h| h.get("authorization").map(String::as_str) == Some("Bearer selftest-token")
            ),
            "{headers:?}"
        );
    }

    #[test]
    fn otlp_grpc_receiver_gets_exporter_spans() {
        let rx = OtlpReceiver::grpc();
        export_two_spans(Protocol::Grpc, &rx.endpoint());
        check_two_spans(&rx, Transport::Grpc);
        assert!(rx.requests()[0].path.ends_with("TraceService/Export"));
    }

    #[test]
    fn otlp_http_protobuf_receiver_gets_exporter_spans() {
        let rx = OtlpReceiver::http();
        export_two_spans(Protocol::HttpBinary, &rx.endpoint());
        check_two_spans(&rx, Transport::HttpProtobuf);
        let r = &rx.requests()[0];
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.headers["content-type"], "application/x-protobuf");
    }

    #[test]
    fn otlp_http_json_receiver_gets_exporter_spans() {
        let rx = OtlpReceiver::http();
        export_two_spans(Protocol::HttpJson, &rx.endpoint());
        check_two_spans(&rx, Transport::HttpJson);
        assert_eq!(rx.requests()[0].headers["content-type"], "application/json");
    }

    fn sample_logs() -> ExportLogsServiceRequest {
        serde_json::from_value(serde_json::json!({
            "resourceLogs": [{
                "resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": "faultline"}}]},
                "scopeLogs": [{
                    "scope": {"name": "faultline.events"},
                    "logRecords": [{
                        "timeUnixNano": "1700000000000000000",
                        "severityNumber": 9,
                        "severityText": "INFO",
                        "eventName": "chaos.activity.succeeded",
                        "body": {"stringValue": "activity succeeded"},
                        "attributes": [
                            {"key": "chaos.run.id", "value": {"stringValue": "run-1"}},
                            {"key": "chaos.attempt", "value": {"intValue": "2"}}],
                        "traceId": "0af7651916cd43dd8448eb211c80319c",
                        "spanId": "b7ad6b7169203331"
                    }]
                }]
            }]
        }))
        .unwrap()
    }

    fn check_log(rx: &OtlpReceiver, transport: Transport) {
        let logs = rx.wait_for_logs(1, Duration::from_secs(5));
        let l = &logs[0];
        assert_eq!(l.transport, transport);
        assert_eq!(l.resource["service.name"], "faultline");
        assert_eq!(l.scope, "faultline.events");
        assert_eq!(l.severity_number, 9);
        assert_eq!(l.severity_text, "INFO");
        assert_eq!(l.event_name, "chaos.activity.succeeded");
        assert_eq!(l.body, "activity succeeded");
        assert_eq!(l.attr_str("chaos.run.id"), Some("run-1"));
        assert_eq!(l.attr("chaos.attempt"), Some(&serde_json::json!(2)));
        assert_eq!(l.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(l.span_id, "b7ad6b7169203331");
        assert_eq!(l.time_unix_nano, 1_700_000_000_000_000_000);
    }

    #[test]
    fn otlp_receivers_get_logs_over_http_and_grpc() {
        let http = OtlpReceiver::http();
        faultline::tls::init();
        let client = reqwest::blocking::Client::new();
        let r = client
            .post(http.logs_url())
            .header("content-type", "application/x-protobuf")
            .body(sample_logs().encode_to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(ExportLogsServiceResponse::decode(r.bytes().unwrap()).is_ok());
        check_log(&http, Transport::HttpProtobuf);

        let json = OtlpReceiver::http();
        let r = client
            .post(json.logs_url())
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&sample_logs()).unwrap())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        check_log(&json, Transport::HttpJson);

        let grpc = OtlpReceiver::grpc();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
            let mut client = LogsServiceClient::connect(grpc.endpoint()).await.unwrap();
            client.export(sample_logs()).await.unwrap();
        });
        check_log(&grpc, Transport::Grpc);
    }

    #[test]
    fn otlp_receiver_rejects_what_is_not_otlp() {
        let rx = OtlpReceiver::http();
        faultline::tls::init();
        let client = reqwest::blocking::Client::new();
        let r = client
            .post(rx.traces_url())
            .header("content-type", "text/plain")
            .body("hello")
            .send()
            .unwrap();
        assert_eq!(r.status(), 415);
        let r = client
            .post(rx.traces_url())
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            client.get(rx.endpoint()).send().unwrap().status(),
            404,
            "only POST /v1/traces and /v1/logs"
        );
        assert!(rx.spans().is_empty());
        let statuses: Vec<_> = rx.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [415, 400, 404]);
    }

    #[test]
    fn otlp_outage_modes_fail_as_advertised() {
        let failing = OtlpReceiver::failing(500);
        faultline::tls::init();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let r = client
            .post(failing.traces_url())
            .header("content-type", "application/x-protobuf")
            .header("authorization", "Bearer x")
            .body(Vec::new())
            .send()
            .unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(failing.request_count(), 1);
        assert_eq!(failing.requests_headers()[0]["authorization"], "Bearer x");

        let hole = Blackhole::start();
        let started = Instant::now();
        let err = client
            .post(format!("{}/v1/traces", hole.endpoint()))
            .body(Vec::new())
            .send()
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(hole.connections(), 1);

        let err = client
            .post(format!("http://127.0.0.1:{}/v1/traces", closed_port()))
            .body(Vec::new())
            .send()
            .unwrap_err();
        assert!(err.is_connect(), "{err}");

        let grpc = OtlpReceiver::failing_grpc();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = rt.block_on(async {
            use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
            let mut client = TraceServiceClient::connect(grpc.endpoint()).await.unwrap();
            client
                .export(ExportTraceServiceRequest::default())
                .await
                .unwrap_err()
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(grpc.request_count(), 1);
    }
}

// ---------------------------------------------------------------------------
// The demo service (examples/demo-service) joins the caller's trace
// ---------------------------------------------------------------------------

pub(crate) mod demo {
    use super::*;

    /// `target/debug/examples/demo-service`, next to this test binary's `deps/`.
    /// `cargo test` builds examples but a filtered `cargo test --test integration` does
    /// not, and a stale binary would test old code: so `cargo build --example
    /// demo-service` runs once per test process (a fraction of a second when fresh;
    /// cargo releases the build lock before it runs the tests).
    pub(crate) fn demo_binary() -> PathBuf {
        static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = built.as_ref() {
            return p.clone();
        }
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let bin = profile_dir.join("examples").join("demo-service");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "--example",
            "demo-service",
            "--target-dir",
        ])
        .arg(profile_dir.parent().unwrap())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        // A failed build (the crate mid-edit under a running test) falls back to the
        // binary already there, if any.
        match cmd.spawn() {
            Ok(mut child) => {
                let code = wait_with_limit(&mut child, Duration::from_secs(900));
                if code != 0 {
                    eprintln!(
                        "cargo build --example demo-service failed; using {}",
                        bin.display()
                    );
                }
            }
            Err(e) => eprintln!("cannot run cargo ({e}); using {}", bin.display()),
        }
        assert!(bin.exists(), "no demo service at {}", bin.display());
        *built = Some(bin.clone());
        bin
    }

    /// A running demo service; killed on drop if still alive.
    pub(crate) struct Demo {
        guard: ChildGuard,
        pub(crate) port: u16,
        stderr: PathBuf,
        _dir: TempDir,
    }

    impl Demo {
        pub(crate) fn start(env: &[(&str, &str)]) -> Demo {
            let dir = TempDir::new("demo-service");
            let stderr = dir.join("stderr.txt");
            let mut cmd = Command::new(demo_binary());
            cmd.args(["--port", "0"]);
            // Only the `env` given decides where its spans go.
            for k in TELEMETRY_VARS {
                cmd.env_remove(k);
            }
            cmd.env_remove("OTEL_SERVICE_NAME")
                .env_remove("OTEL_SDK_DISABLED")
                .env_remove("OTEL_TRACES_EXPORTER")
                .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .env_remove("OTEL_RESOURCE_ATTRIBUTES")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(&stderr).unwrap());
            for (k, v) in env {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let guard = ChildGuard(Some(child));
            // Read the first line on a thread so a silent child cannot hang the test;
            // keep draining so later prints never hit a closed pipe.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(first)) = lines.next() {
                    let _ = tx.send(first);
                }
                for _ in lines {}
            });
            let first = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| {
                    panic!(
                        "demo service printed no first line; stderr:\n{}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    )
                });
            let port = first
                .strip_prefix("listening on 127.0.0.1:")
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
            Demo {
                guard,
                port,
                stderr,
                _dir: dir,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }

        /// SIGTERM, then wait (bounded) for a clean exit: the spans are flushed by then.
        pub(crate) fn stop(&mut self) {
            let child = self.guard.0.as_mut().unwrap();
            send_signal(child.id(), "TERM");
            let code = wait_with_limit(child, Duration::from_secs(15));
            let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            assert_eq!(code, 0, "demo service exit code; stderr:\n{stderr}");
            assert!(stderr.contains("demo-service: stopped"), "{stderr}");
        }
    }

    fn http() -> reqwest::blocking::Client {
        faultline::tls::init();
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_ID: &str = "00f067aa0ba902b7";

    #[test]
    fn demo_service_server_spans_join_the_callers_trace_and_metrics_count_them() {
        let rx = OtlpReceiver::http();
        let mut demo = Demo::start(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]);
        let client = http();
        let r = client
            .get(demo.url("/api/orders"))
            .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
            .header("tracestate", "faultline=run1")
            .header(
                "baggage",
                "chaos.run.id=run-42,chaos.experiment=demo,other=x",
            )
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let orders: Value = r.json().unwrap();
        assert!(!orders.as_array().unwrap().is_empty());
        assert_eq!(
            client.get(demo.url("/health")).send().unwrap().status(),
            200
        );

        let metrics = client
            .get(demo.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let has_line = |parts: &[&str], value: &str| {
            metrics.lines().any(|l| {
                parts.iter().all(|p| l.contains(p)) && l.split_whitespace().last() == Some(value)
            })
        };
        assert!(
            has_line(
                &[
                    "demo_http_requests_total{",
                    "route=\"/api/orders\"",
                    "status=\"200\""
                ],
                "1"
            ),
            "{metrics}"
        );
        assert!(
            metrics.contains("# TYPE demo_http_request_duration_seconds histogram"),
            "{metrics}"
        );
        assert!(
            has_line(
                &[
                    "demo_http_request_duration_seconds_bucket{",
                    "route=\"/api/orders\"",
                    "le=\"+Inf\""
                ],
                "1"
            ),
            "{metrics}"
        );
        assert!(
            metrics.contains("demo_http_request_duration_seconds_bucket{")
                && metrics.contains("le=\"0.005\""),
            "{metrics}"
        );

        demo.stop();
        let spans = rx.wait_for_spans(3, Duration::from_secs(10));
        let server = rx.span("GET /api/orders");
        assert_eq!(server.kind, "SERVER");
        assert_eq!(server.trace_id, TRACE_ID, "{server:#?}");
        assert_eq!(server.parent_span_id, PARENT_ID);
        assert_eq!(server.trace_state, "faultline=run1");
        assert_eq!(server.service_name(), Some("demo-service"));
        assert_eq!(server.attr_str("http.route"), Some("/api/orders"));
        assert_eq!(server.attr_str("http.request.method"), Some("GET"));
        assert_eq!(server.attr_i64("http.response.status_code"), Some(200));
        assert_eq!(server.attr_str("chaos.run.id"), Some("run-42"));
        assert_eq!(server.attr_str("chaos.experiment"), Some("demo"));
        assert_eq!(
            server.attr("other"),
            None,
            "only chaos.* baggage is recorded"
        );
        assert_eq!(server.status_code, "UNSET");
        let inner = rx.children(&server);
        assert_eq!(inner.len(), 1, "{spans:#?}");
        assert_eq!(inner[0].name, "orders.load");
        assert_eq!(inner[0].kind, "INTERNAL");

        let health = rx.span("GET /health");
        assert!(health.is_root(), "no traceparent: a new trace");
        assert_ne!(health.trace_id, TRACE_ID);
        assert!(rx.spans_named("GET /metrics").is_empty());
    }

    #[test]
    fn demo_service_faults_show_in_status_codes_and_spans_over_grpc() {
        let rx = OtlpReceiver::grpc();
        let mut demo = Demo::start(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "orders"),
        ]);
        let client = http();
        let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
        let post = |path: &str| {
            let r = client
                .post(demo.url(path))
                .header("traceparent", &traceparent)
                .send()
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().unwrap()
        };
        let get = |path: &str| {
            client
                .get(demo.url(path))
                .header("traceparent", &traceparent)
                .send()
                .unwrap()
                .status()
                .as_u16()
        };

        let state = post("/fault/errors?rate=0.5");
        assert_eq!(state["error_rate"], 0.5);
        let codes: Vec<u16> = (0..4).map(|_| get("/api/orders")).collect();
        assert_eq!(codes, [200, 500, 200, 500], "every 2nd request fails");
        assert_eq!(get("/health"), 200);

        post("/fault/errors?rate=1.0");
        assert_eq!(get("/health"), 503);
        assert_eq!(get("/api/orders"), 500);
        let r = client
            .post(demo.url("/fault/errors?rate=2"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 400);

        post("/fault/reset");
        post("/fault/latency?ms=300");
        let started = Instant::now();
        assert_eq!(get("/api/orders"), 200);
        assert!(started.elapsed() >= Duration::from_millis(300));
        let state = post("/fault/reset");
        assert_eq!(
            state,
            serde_json::json!({"latency_ms": 0, "error_rate": 0.0})
        );
        assert_eq!(get("/health"), 200);

        demo.stop();
        assert!(
            rx.wait_spans_until(Duration::from_secs(10), |s| s
                .iter()
                .filter(|s| s.name == "GET /api/orders")
                .count()
                == 6),
            "{:#?}",
            rx.spans()
        );
        let spans = rx.trace(TRACE_ID);
        assert!(spans.iter().all(|s| s.transport == Transport::Grpc));
        assert!(spans.iter().all(|s| s.service_name() == Some("orders")));
        let failed: Vec<_> = spans
            .iter()
            .filter(|s| s.name == "GET /api/orders" && s.status_code == "ERROR")
            .collect();
        assert_eq!(failed.len(), 3, "{spans:#?}");
        assert!(failed
            .iter()
            .all(|s| s.attr_i64("http.response.status_code") == Some(500)
                && s.parent_span_id == PARENT_ID));
        let health_503 = spans
            .iter()
            .find(|s| {
                s.name == "GET /health" && s.attr_i64("http.response.status_code") == Some(503)
            })
            .expect("a 503 health span");
        assert_eq!(health_503.status_code, "ERROR");
        let slow = spans
            .iter()
            .find(|s| s.name == "orders.load" && s.event("fault.latency").is_some())
            .expect("an orders.load span with the latency event");
        assert_eq!(
            slow.event("fault.latency").unwrap().attributes["fault.latency_ms"],
            300
        );
        assert_eq!(
            spans
                .iter()
                .filter(|s| s.name == "POST /fault/reset")
                .count(),
            2
        );
    }
}
