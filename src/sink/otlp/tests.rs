//! The OTLP logs sink: endpoint resolution over the environment, the record's shape,
//! and delivery through the SDK to a real HTTP server and a real tonic OTLP/gRPC
//! receiver on 127.0.0.1.

use super::config::{resolve, OtlpProtocol};
use super::sdk::resource;
use crate::sink::testkit::{self, Reply};
use crate::sink::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use serde_json::json;
use serde_json::Value;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn otlp(extra: serde_json::Value) -> SinkConfig {
    let mut v = json!({"type": "otlp"});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
    r.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// What every OTLP test checks on the decoded request: `n` records of
/// `testkit::record`, emitted between `since` and now (Unix nanoseconds).
fn check_request(req: &ExportLogsServiceRequest, n: usize, since: u64) {
    assert_eq!(req.resource_logs.len(), 1);
    let rl = &req.resource_logs[0];
    let res = rl.resource.as_ref().unwrap();
    let name = res
        .attributes
        .iter()
        .find(|a| a.key == "service.name")
        .unwrap();
    assert_eq!(name.value.as_ref().unwrap().value, Some(s("faultline")));
    let sl = &rl.scope_logs[0];
    assert_eq!(sl.scope.as_ref().unwrap().name, "faultline");
    assert_eq!(sl.log_records.len(), n);
    let r = &sl.log_records[0];
    // The event's time: when it was emitted.
    assert!(
        (since..=unix_nanos_now()).contains(&r.time_unix_nano),
        "{}",
        r.time_unix_nano
    );
    assert_eq!(r.observed_time_unix_nano, r.time_unix_nano);
    assert_eq!(r.severity_number, SeverityNumber::Info as i32);
    assert_eq!(r.severity_text, "INFO");
    assert_eq!(r.body.as_ref().unwrap().value, Some(s("message 1")));
    assert_eq!(r.event_name, "activity.started");
    assert_eq!(hex(&r.trace_id), testkit::TRACE_ID);
    assert_eq!(r.trace_id.len(), 16);
    assert_eq!(hex(&r.span_id), testkit::SPAN_ID);
    assert_eq!(r.span_id.len(), 8);
    assert_eq!(r.span_id[0], 0x00);
    assert_eq!(r.span_id[1], 0xf0);
    assert_eq!(attr(r, "event.name"), Some(&s("activity.started")));
    assert_eq!(attr(r, "chaos.run.id"), Some(&s("run-1")));
    assert_eq!(attr(r, "chaos.experiment.title"), Some(&s("demo")));
    assert_eq!(attr(r, "chaos.activity"), Some(&s("a1")));
    assert_eq!(attr(r, "chaos.n"), Some(&any_value::Value::IntValue(1)));
    assert_eq!(
        attr(r, "chaos.nested.k"),
        Some(&any_value::Value::BoolValue(true))
    );
    assert_eq!(attr(r, "chaos.none"), None);
    // The bridge's raw fields are not sent: they are in the record's own fields.
    for raw in ["event", "level", "message", "fields", "trace_id", "span_id"] {
        assert_eq!(attr(r, raw), None, "{raw}");
    }
}

#[test]
fn endpoint_resolution() {
    let none = BTreeMap::new();
    let t = resolve(None, None, &none, &env_of(&[])).unwrap();
    assert_eq!(
        (t.protocol, t.url.as_str()),
        (OtlpProtocol::HttpProtobuf, "http://localhost:4318/v1/logs")
    );
    let t = resolve(None, Some(OtlpProtocol::Grpc), &none, &env_of(&[])).unwrap();
    assert_eq!(t.url, "http://localhost:4317");

    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x=1"),
        ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x=2,broken"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "750"),
    ]);
    let t = resolve(None, None, &none, &env).unwrap();
    assert_eq!(t.protocol, OtlpProtocol::HttpJson);
    assert_eq!(t.url, "http://collector:4318/v1/logs");
    // The logs-specific headers replace the generic ones, as the spec says (and
    // as traces do): api-key is not sent.
    assert_eq!(t.headers.get("api-key"), None);
    assert_eq!(t.headers["x"], "2");
    assert_eq!(t.timeout, Some(Duration::from_millis(750)));
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    let t = resolve(
        None,
        None,
        &none,
        &env_of(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x=1")]),
    )
    .unwrap();
    assert_eq!(t.headers["api-key"], "a b");
    assert_eq!(t.headers["x"], "1");

    // The logs-specific endpoint is verbatim, and wins over the generic one.
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://logs:9999/custom",
        ),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]);
    let t = resolve(None, None, &none, &env).unwrap();
    assert_eq!(
        (t.protocol, t.url.as_str()),
        (OtlpProtocol::HttpProtobuf, "http://logs:9999/custom")
    );
    // The sink's own settings win over everything.
    let mine = BTreeMap::from([("x".to_string(), "mine".to_string())]);
    let t = resolve(
        Some("http://mine:1"),
        Some(OtlpProtocol::HttpJson),
        &mine,
        &env,
    )
    .unwrap();
    assert_eq!(t.url, "http://mine:1/v1/logs");
    assert_eq!(t.headers["x"], "mine");

    // A malformed protocol is ignored with a warning naming it (the spec's rule
    // for every OTEL_* value), as for traces.
    let t = resolve(
        None,
        None,
        &none,
        &env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")]),
    )
    .unwrap();
    assert_eq!(t.protocol, OtlpProtocol::HttpProtobuf);
    assert!(
        t.warnings[0].starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=\"thrift\""),
        "{:?}",
        t.warnings
    );
    // The sink's own endpoint may already end in /v1/logs.
    let t = resolve(Some("http://mine:1/v1/logs"), None, &none, &env_of(&[])).unwrap();
    assert_eq!(t.url, "http://mine:1/v1/logs");
    let e = resolve(
        Some("https://c:4317"),
        Some(OtlpProtocol::Grpc),
        &none,
        &env_of(&[]),
    )
    .unwrap_err();
    assert!(e.contains("grpc over TLS"), "{e}");
    let e = resolve(
        None,
        None,
        &none,
        &env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://nope")]),
    )
    .unwrap_err();
    assert!(
        e.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: url 'ftp://nope'"),
        "{e}"
    );
    // Without a scheme: http://, said in a warning.
    let t = resolve(
        None,
        None,
        &none,
        &env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]),
    )
    .unwrap();
    assert_eq!(t.url, "http://collector:4318/v1/logs");
    assert!(t.warnings[0].contains("has no scheme"), "{:?}", t.warnings);
    let t = resolve(
        None,
        Some(OtlpProtocol::Grpc),
        &none,
        &env_of(&[("OTEL_EXPORTER_OTLP_HEADERS", "a=b")]),
    )
    .unwrap();
    assert_eq!(t.headers["a"], "b", "headers go as gRPC metadata");
}

#[test]
fn resource_from_environment() {
    let r = resource(&env_of(&[
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=ci,service.name=x",
        ),
        ("OTEL_SERVICE_NAME", "chaos-runner"),
    ]));
    let get = |k: &str| {
        r.get(&opentelemetry::Key::new(k.to_string()))
            .map(|v| v.to_string())
    };
    assert_eq!(get("service.name").as_deref(), Some("chaos-runner"));
    assert_eq!(get("deployment.environment").as_deref(), Some("ci"));
    assert_eq!(
        get("service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn ids_and_json_shape() {
    let srv = testkit::Server::start(vec![]).await;
    let cfg = otlp(json!({"endpoint": srv.url(""), "protocol": "http/json"}));
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    let mut zero = testkit::record(2);
    zero.trace_id = Some("0".repeat(32));
    let mut bad = testkit::record(3);
    bad.trace_id = Some("zz".into());
    let mut none = testkit::record(4);
    none.trace_id = None;
    none.span_id = None;
    none.level = "CRITICAL";
    testkit::emit_traced(&sinks, &[testkit::record(1), zero, bad, none]);
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    assert_eq!(reports[0].delivered, 4, "{}", reports[0]);
    // OTLP/JSON: camelCase, hex ids, 64-bit integers as strings.
    let v: Value = serde_json::from_slice(&srv.requests()[0].body).unwrap();
    let recs = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
    let rec = &recs[0];
    assert_eq!(rec["traceId"], testkit::TRACE_ID);
    assert_eq!(rec["spanId"], testkit::SPAN_ID);
    assert!(rec["timeUnixNano"].is_string(), "{rec}");
    assert_eq!(rec["severityNumber"], 9);
    assert_eq!(rec["body"], json!({"stringValue": "message 1"}));
    // An all-zero, malformed or missing id: no trace context at all.
    for r in [&recs[1], &recs[2], &recs[3]] {
        assert!(r["traceId"].as_str().unwrap_or("").is_empty(), "{r}");
        assert!(r["spanId"].as_str().unwrap_or("").is_empty(), "{r}");
    }
    // CRITICAL is FATAL, and its text stays faultline's.
    assert_eq!(recs[3]["severityNumber"], 21);
    assert_eq!(recs[3]["severityText"], "CRITICAL");
}

#[tokio::test]
async fn http_protobuf_decodes_back() {
    let srv = testkit::Server::start(vec![]).await;
    let cfg = otlp(json!({"endpoint": srv.url(""), "headers": {"x-api-key": "k3y"}}));
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    let since = unix_nanos_now();
    testkit::emit_traced(&sinks, &[testkit::record(1), testkit::record(2)]);
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    assert_eq!(reports[0].delivered, 2, "{}", reports[0]);
    assert!(reports[0]
        .name
        .starts_with("otlp http/protobuf http://127.0.0.1:"));
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/v1/logs");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(r.header("x-api-key"), Some("k3y"));
    let req: ExportLogsServiceRequest = prost::Message::decode(r.body.as_slice()).unwrap();
    check_request(&req, 2, since);
}

#[tokio::test]
async fn http_json_decodes_back_with_the_logs_endpoint_verbatim() {
    let srv = testkit::Server::start(vec![]).await;
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &srv.url("/custom/logs")),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
    ]);
    let sinks = Sinks::from_config_with_env(&[otlp(json!({}))], &env).unwrap();
    let since = unix_nanos_now();
    testkit::emit_traced(&sinks, &[testkit::record(1)]);
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    assert_eq!(reports[0].delivered, 1, "{}", reports[0]);
    let r = &srv.requests()[0];
    assert_eq!(r.path, "/custom/logs");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let req: ExportLogsServiceRequest = serde_json::from_slice(&r.body).unwrap();
    check_request(&req, 1, since);
}

#[tokio::test]
async fn http_retries_503() {
    let srv = testkit::Server::start(vec![Reply::Status(503)]).await;
    let cfg = otlp(json!({"endpoint": srv.url("")}));
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    testkit::emit_traced(&sinks, &[testkit::record(1)]);
    let r = &sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await[0];
    assert_eq!((r.delivered, r.dropped), (1, 0), "{r}");
    assert_eq!(srv.requests().len(), 2);
}

/// A real OTLP/gRPC receiver (tonic server), answering with scripted statuses.
#[derive(Default, Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    fail_first: Arc<Mutex<u32>>,
    api_keys: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        {
            let mut f = self.fail_first.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(tonic::Status::unavailable("warming up"));
            }
        }
        if let Some(k) = req.metadata().get("x-api-key") {
            self.api_keys
                .lock()
                .unwrap()
                .push(k.to_str().unwrap_or_default().to_string());
        }
        self.got.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

async fn grpc_server(fail_first: u32) -> (String, Receiver) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rx = Receiver::default();
    *rx.fail_first.lock().unwrap() = fail_first;
    let svc = LogsServiceServer::new(rx.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (format!("http://{addr}"), rx)
}

#[tokio::test]
async fn grpc_export_to_a_tonic_receiver_with_retry() {
    let (url, rx) = grpc_server(1).await;
    let cfg = otlp(json!({"endpoint": url, "protocol": "grpc", "headers": {"X-Api-Key": "k3y"}}));
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    assert!(sinks.warnings().is_empty());
    let since = unix_nanos_now();
    let records: Vec<_> = (1..=3).map(testkit::record).collect();
    testkit::emit_traced(&sinks, &records);
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    let r = &reports[0];
    // The SDK retried the UNAVAILABLE answer itself (a retry that succeeds is no
    // error to report).
    assert_eq!((r.delivered, r.dropped), (3, 0), "{r}");
    assert_eq!(
        *rx.fail_first.lock().unwrap(),
        0,
        "the first attempt was refused"
    );
    let got = rx.got.lock().unwrap();
    assert_eq!(got.len(), 1);
    check_request(&got[0], 3, since);
    assert_eq!(
        *rx.api_keys.lock().unwrap(),
        ["k3y"],
        "headers arrive as gRPC metadata"
    );
}
