//! The OTLP logs sink: records as OpenTelemetry `LogRecord`s, to any collector,
//! over gRPC, HTTP/protobuf or HTTP/JSON, configured like every OTLP exporter
//! (`OTEL_EXPORTER_OTLP_LOGS_*`, then `OTEL_EXPORTER_OTLP_*`).
//!
//! The HTTP protocols go through the shared HTTP transport; gRPC uses the tonic
//! client generated in `opentelemetry-proto`, with the headers sent as gRPC metadata.
//! TLS (`https://`) is not available over gRPC (use `http/protobuf`).

use super::http::{display_url, unix_nanos, Encoder, HttpSink};
use super::{Batch, Record, SendError, Sink};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use crate::telemetry::otel_env::{self, Overrides, Signal};
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The OTLP transport, as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it: the one protocol
/// type of [`crate::telemetry::otel_env`], named as the sink settings name it.
pub use crate::telemetry::otel_env::Protocol as OtlpProtocol;

/// Where and how to send, once settings and environment are merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub protocol: OtlpProtocol,
    /// The full URL: `.../v1/logs` over HTTP, the server address over gRPC.
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// From `OTEL_EXPORTER_OTLP_(LOGS_)TIMEOUT`.
    pub timeout: Option<Duration>,
    pub warnings: Vec<String>,
}

/// Merge the sink's settings with the `OTEL_*` environment, as
/// [`otel_env::signal`] does for every signal (the sink's keys win), then check what
/// this sink can send: an `http(s)` URL, valid header names and values, and over gRPC
/// plaintext and metadata-safe names.
pub(crate) fn resolve(
    endpoint: Option<&str>,
    protocol: Option<OtlpProtocol>,
    headers: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, String> {
    let own: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let logs = otel_env::signal(
        Signal::Logs,
        env,
        &Overrides {
            endpoint: endpoint.map(|e| ("endpoint", e)),
            protocol,
            headers: &own,
            ..Overrides::default()
        },
    );
    let target = logs.endpoint_or_default();
    target.check()?;
    let http = logs.protocol.is_http();
    if !http && target.url.starts_with("https://") {
        return Err(format!(
            "{}: grpc over TLS (https) is not available; hint: use protocol: http/protobuf",
            target.source
        ));
    }
    let merged: BTreeMap<String, String> = logs.headers.into_iter().collect();
    let mut problems = Vec::new();
    super::http::check_headers(&super::Headers(merged.clone()), &mut problems);
    if !http {
        for k in merged.keys() {
            if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                k.to_ascii_lowercase().as_bytes(),
            )
            .is_err()
            {
                problems.push(format!("header '{k}' cannot be sent as gRPC metadata"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(Target {
        protocol: logs.protocol,
        url: target.url,
        headers: merged,
        timeout: logs.timeout,
        warnings: logs.warnings,
    })
}

fn string(s: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    })
}

fn kv(key: impl Into<String>, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
        ..Default::default()
    }
}

/// The resource: `service.name` (`OTEL_SERVICE_NAME`, else from
/// `OTEL_RESOURCE_ATTRIBUTES`, else `faultline`), `service.version`, and the other
/// `OTEL_RESOURCE_ATTRIBUTES`, sorted by key. Malformed entries are left out; the trace
/// setup, which reads the same variables through the same resolver, reports them.
pub(crate) fn resource(env: &dyn Fn(&str) -> Option<String>) -> Resource {
    let found = otel_env::common(env).resource;
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
    attrs.extend(found.attributes);
    attrs.insert(
        "service.name".into(),
        found.service_name.unwrap_or_else(|| "faultline".into()),
    );
    Resource {
        attributes: attrs.into_iter().map(|(k, v)| kv(k, string(v))).collect(),
        ..Default::default()
    }
}

fn any(v: &Value) -> Option<AnyValue> {
    let value = match v {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Array(a) => any_value::Value::ArrayValue(ArrayValue {
            values: a.iter().map(|v| any(v).unwrap_or_default()).collect(),
        }),
        Value::Object(m) => any_value::Value::KvlistValue(KeyValueList {
            values: m
                .iter()
                .filter_map(|(k, v)| any(v).map(|a| kv(k.clone(), Some(a))))
                .collect(),
        }),
    };
    Some(AnyValue { value: Some(value) })
}

/// Fields as attributes: `chaos.<key>`, nested objects flattened with dots.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<KeyValue>) {
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| flatten(&format!("{prefix}.{k}"), v, out)),
        Value::Null => {}
        other => out.push(kv(prefix, any(other))),
    }
}

fn hex_id(s: Option<&str>, len: usize) -> Vec<u8> {
    let Some(s) = s.filter(|s| s.len() == len * 2) else {
        return Vec::new();
    };
    let bytes: Option<Vec<u8>> = (0..len)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    bytes
        .filter(|b| b.iter().any(|x| *x != 0))
        .unwrap_or_default()
}

fn severity(level: &str) -> SeverityNumber {
    match level {
        "DEBUG" => SeverityNumber::Debug,
        "INFO" => SeverityNumber::Info,
        "WARNING" => SeverityNumber::Warn,
        "ERROR" => SeverityNumber::Error,
        "CRITICAL" => SeverityNumber::Fatal,
        _ => SeverityNumber::Unspecified,
    }
}

/// One OTLP log record.
pub(crate) fn log_record(r: &Record) -> LogRecord {
    let t = unix_nanos(r);
    let mut attributes = vec![
        kv("event.name", string(r.event)),
        kv("chaos.run.id", string(r.run_id.clone())),
        kv("chaos.experiment.title", string(r.experiment.clone())),
    ];
    if let Value::Object(fields) = &r.fields {
        for (k, v) in fields {
            flatten(&format!("chaos.{k}"), v, &mut attributes);
        }
    }
    LogRecord {
        time_unix_nano: t,
        observed_time_unix_nano: t,
        severity_number: severity(r.level) as i32,
        severity_text: r.level.to_string(),
        body: string(r.message.clone()),
        attributes,
        trace_id: hex_id(r.trace_id.as_deref(), 16),
        span_id: hex_id(r.span_id.as_deref(), 8),
        event_name: r.event.to_string(),
        ..Default::default()
    }
}

/// The export request for a batch.
pub(crate) fn request(batch: &Batch, resource: &Resource) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "faultline".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                log_records: batch.iter().map(|r| log_record(r)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The OTLP/HTTP body.
pub(crate) fn encode_http(
    batch: &Batch,
    resource: &Resource,
    json: bool,
) -> Result<Vec<u8>, String> {
    let req = request(batch, resource);
    if json {
        serde_json::to_vec(&req).map_err(|e| e.to_string())
    } else {
        Ok(prost::Message::encode_to_vec(&req))
    }
}

/// The OTLP sink for a target: the HTTP transport or the gRPC client.
pub(crate) enum Built {
    Http(HttpSink),
    Grpc(GrpcSink),
}

/// Build the OTLP sink for a resolved target.
pub(crate) fn build(
    client: &reqwest::Client,
    target: Target,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Built, String> {
    let resource = resource(env);
    let kind = format!("otlp {}", target.protocol.as_str());
    Ok(match target.protocol {
        OtlpProtocol::Grpc => Built::Grpc(GrpcSink {
            name: format!("{kind} {}", display_url(&target.url)),
            url: target.url,
            headers: target.headers.into_iter().collect(),
            export: None,
            resource,
        }),
        p => {
            let encoder = Encoder::Otlp {
                resource,
                json: p == OtlpProtocol::HttpJson,
            };
            Built::Http(HttpSink::new(
                client,
                &kind,
                &target.url,
                &target.headers,
                None,
                encoder,
            )?)
        }
    })
}

type ExportFuture = Pin<Box<dyn Future<Output = Result<(), (i32, String)>> + Send>>;
type Export = Box<dyn FnMut(ExportLogsServiceRequest) -> ExportFuture + Send>;

/// Connect, and return a function that exports over the connected channel (its
/// type, `tonic::transport::Channel`, cannot be named from this crate).
async fn connect(url: String, headers: Vec<(String, String)>) -> Result<Export, String> {
    use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
    let mut metadata: Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)> = Vec::new();
    for (k, v) in &headers {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("header '{k}' cannot be sent as gRPC metadata"))?;
        let value = MetadataValue::try_from(v.as_str())
            .map_err(|_| format!("header '{k}' has a value gRPC metadata cannot carry"))?;
        metadata.push((key, value));
    }
    let client = LogsServiceClient::connect(url).await.map_err(|e| {
        format!(
            "cannot connect: {}",
            crate::provider::http::describe_error(&e)
        )
    })?;
    Ok(Box::new(move |req| {
        let mut c = client.clone();
        let mut request = tonic::Request::new(req);
        for (k, v) in &metadata {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        Box::pin(async move {
            c.export(request).await.map(|_| ()).map_err(|s| {
                (
                    i32::from(s.code()),
                    format!("grpc {:?}: {}", s.code(), s.message()),
                )
            })
        })
    }))
}

/// gRPC status codes worth retrying (the OTLP specification's list, plus UNKNOWN,
/// which tonic reports when the channel cannot reach the server).
fn retryable_grpc(code: i32) -> bool {
    matches!(code, 1 | 2 | 4 | 8 | 10 | 11 | 14 | 15)
}

/// OTLP over gRPC with the generated tonic client.
pub(crate) struct GrpcSink {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    export: Option<Export>,
    resource: Resource,
}

impl Sink for GrpcSink {
    type Payload = ExportLogsServiceRequest;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn encode(&self, batch: &Batch) -> Result<ExportLogsServiceRequest, String> {
        Ok(request(batch, &self.resource))
    }

    async fn send(&mut self, req: &ExportLogsServiceRequest) -> Result<(), SendError> {
        if self.export.is_none() {
            self.export = Some(
                connect(self.url.clone(), self.headers.clone())
                    .await
                    .map_err(SendError::Retryable)?,
            );
        }
        let export = self.export.as_mut().expect("connected above");
        match export(req.clone()).await {
            Ok(()) => Ok(()),
            Err((code, text)) if retryable_grpc(code) => Err(SendError::Retryable(text)),
            Err((_, text)) => Err(SendError::Fatal(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testkit::{self, Reply};
    use crate::sink::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
        LogsService, LogsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

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

    /// What every OTLP test checks on the decoded request.
    fn check_request(req: &ExportLogsServiceRequest, n: usize) {
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
        assert_eq!(r.time_unix_nano, 1_795_287_917_000_001_000);
        assert_eq!(r.severity_number, SeverityNumber::Info as i32);
        assert_eq!(r.severity_text, "INFO");
        assert_eq!(r.body.as_ref().unwrap().value, Some(s("message 1")));
        assert_eq!(r.event_name, "activity.started");
        assert_eq!(r.trace_id, hex_id(Some(testkit::TRACE_ID), 16));
        assert_eq!(r.trace_id.len(), 16);
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
            r.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        assert_eq!(get("service.name"), Some(s("chaos-runner")));
        assert_eq!(get("deployment.environment"), Some(s("ci")));
        assert_eq!(get("service.version"), Some(s(env!("CARGO_PKG_VERSION"))));
    }

    #[test]
    fn ids_and_json_shape() {
        assert!(hex_id(Some("zz"), 1).is_empty());
        assert!(hex_id(Some(&"0".repeat(32)), 16).is_empty());
        assert!(hex_id(Some("abc"), 16).is_empty());
        // OTLP/JSON: camelCase, hex ids, 64-bit integers as strings.
        let batch = [Arc::new(testkit::record(1))];
        let v: Value =
            serde_json::from_slice(&encode_http(&batch, &resource(&|_| None), true).unwrap())
                .unwrap();
        let rec = &v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
        assert_eq!(rec["traceId"], testkit::TRACE_ID);
        assert_eq!(rec["spanId"], testkit::SPAN_ID);
        assert_eq!(rec["timeUnixNano"], "1795287917000001000");
        assert_eq!(rec["severityNumber"], 9);
        assert_eq!(rec["body"], json!({"stringValue": "message 1"}));
    }

    #[tokio::test]
    async fn http_protobuf_decodes_back() {
        let srv = testkit::Server::start(vec![]).await;
        let cfg = otlp(json!({"endpoint": srv.url(""), "headers": {"x-api-key": "k3y"}}));
        let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
        sinks.emit(&testkit::record(1));
        sinks.emit(&testkit::record(2));
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
        check_request(&req, 2);
    }

    #[tokio::test]
    async fn http_json_decodes_back_with_the_logs_endpoint_verbatim() {
        let srv = testkit::Server::start(vec![]).await;
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &srv.url("/custom/logs")),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
        ]);
        let sinks = Sinks::from_config_with_env(&[otlp(json!({}))], &env).unwrap();
        sinks.emit(&testkit::record(1));
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        assert_eq!(reports[0].delivered, 1, "{}", reports[0]);
        let r = &srv.requests()[0];
        assert_eq!(r.path, "/custom/logs");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let req: ExportLogsServiceRequest = serde_json::from_slice(&r.body).unwrap();
        check_request(&req, 1);
    }

    #[tokio::test]
    async fn http_retries_503() {
        let srv = testkit::Server::start(vec![Reply::Status(503)]).await;
        let cfg = otlp(json!({"endpoint": srv.url("")}));
        let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
        sinks.emit(&testkit::record(1));
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
        let cfg =
            otlp(json!({"endpoint": url, "protocol": "grpc", "headers": {"X-Api-Key": "k3y"}}));
        let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
        assert!(sinks.warnings().is_empty());
        for i in 1..=3 {
            sinks.emit(&testkit::record(i));
        }
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        let r = &reports[0];
        assert_eq!((r.delivered, r.dropped), (3, 0), "{r}");
        assert!(
            r.last_error.as_deref().unwrap().contains("Unavailable"),
            "{r}"
        );
        let got = rx.got.lock().unwrap();
        assert_eq!(got.len(), 1);
        check_request(&got[0], 3);
        assert_eq!(
            *rx.api_keys.lock().unwrap(),
            ["k3y"],
            "headers arrive as gRPC metadata"
        );
    }
}
