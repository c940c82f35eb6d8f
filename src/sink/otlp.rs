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
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The OTLP transport, as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (plaintext only).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with a protobuf body (the default).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    /// Parse the environment variable's spelling.
    pub fn parse(s: &str) -> Option<OtlpProtocol> {
        match s.trim() {
            "grpc" => Some(OtlpProtocol::Grpc),
            "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
            "http/json" => Some(OtlpProtocol::HttpJson),
            _ => None,
        }
    }

    /// The spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::HttpJson => "http/json",
        }
    }
}

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

fn first_env(env: &dyn Fn(&str) -> Option<String>, names: [&str; 2]) -> Option<(String, String)> {
    names.into_iter().find_map(|n| {
        env(n)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n.to_string(), v.trim().to_string()))
    })
}

fn with_logs_path(base: &str) -> String {
    format!("{}/v1/logs", base.trim_end_matches('/'))
}

/// Merge the sink's settings with the `OTEL_*` environment (see the module docs of
/// `sink` for the precedence).
pub(crate) fn resolve(
    endpoint: Option<&str>,
    protocol: Option<OtlpProtocol>,
    headers: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, String> {
    let mut warnings = Vec::new();
    let protocol = match protocol {
        Some(p) => p,
        None => match first_env(
            env,
            [
                "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ],
        ) {
            Some((var, v)) => OtlpProtocol::parse(&v).ok_or_else(|| {
                format!("{var}='{v}' is not a protocol; hint: grpc, http/protobuf or http/json")
            })?,
            None => OtlpProtocol::HttpProtobuf,
        },
    };
    let http = protocol != OtlpProtocol::Grpc;
    // The endpoint as written (scheme added when missing), then with the signal path.
    let (source, as_written, verbatim) = match endpoint {
        Some(e) => ("endpoint".to_string(), e.to_string(), false),
        None => match env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT").filter(|v| !v.trim().is_empty()) {
            Some(v) => ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT".into(), v, true),
            None => match env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty()) {
                Some(v) => ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), v, false),
                None => (
                    "the default endpoint".into(),
                    if http {
                        "http://localhost:4318/v1/logs"
                    } else {
                        "http://localhost:4317"
                    }
                    .to_string(),
                    true,
                ),
            },
        },
    };
    let as_written = crate::telemetry::with_scheme(&source, &as_written, &mut warnings);
    let url = if http && !verbatim {
        with_logs_path(&as_written)
    } else {
        as_written.clone()
    };
    let mut problems = Vec::new();
    super::http::check_url(&as_written, &mut problems);
    if let Some(p) = problems.pop() {
        return Err(format!("{source}: {p}"));
    }
    if !http && url.starts_with("https://") {
        return Err(format!(
            "{source}: grpc over TLS (https) is not available; hint: use protocol: http/protobuf"
        ));
    }
    let mut merged = BTreeMap::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    ] {
        if let Some(v) = env(var) {
            for (k, val, ok) in parse_pairs(&v) {
                if ok && !k.is_empty() {
                    merged.insert(k, val);
                } else {
                    warnings.push(format!("{var}: ignored an entry that is not key=value"));
                }
            }
        }
    }
    merged.extend(headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut problems = Vec::new();
    super::http::check_headers(&super::Headers(merged.clone()), &mut problems);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
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
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
    }
    let timeout = match first_env(
        env,
        [
            "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ],
    ) {
        Some((var, v)) => match v.parse::<u64>() {
            Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => {
                warnings.push(format!(
                    "{var}='{v}' is not a number of milliseconds; ignored"
                ));
                None
            }
        },
        None => None,
    };
    Ok(Target {
        protocol,
        url,
        headers: merged,
        timeout,
        warnings,
    })
}

/// `k=v,k2=v2` as the OTLP variables write them (values percent-decoded); the flag
/// says whether the entry had an `=`.
fn parse_pairs(s: &str) -> Vec<(String, String, bool)> {
    s.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (percent_decode(k.trim()), percent_decode(v.trim()), true),
            None => (String::new(), String::new(), false),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
/// `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) fn resource(env: &dyn Fn(&str) -> Option<String>) -> Resource {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    attrs.insert("service.name".into(), "faultline".into());
    attrs.insert("service.version".into(), env!("CARGO_PKG_VERSION").into());
    if let Some(v) = env("OTEL_RESOURCE_ATTRIBUTES") {
        for (k, v, ok) in parse_pairs(&v) {
            if ok && !k.is_empty() {
                attrs.insert(k, v);
            }
        }
    }
    if let Some(name) = env("OTEL_SERVICE_NAME").filter(|v| !v.trim().is_empty()) {
        attrs.insert("service.name".into(), name.trim().to_string());
    }
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
        assert_eq!(t.headers["api-key"], "a b");
        assert_eq!(t.headers["x"], "2");
        assert_eq!(t.timeout, Some(Duration::from_millis(750)));
        assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);

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

        let e = resolve(
            None,
            None,
            &none,
            &env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")]),
        )
        .unwrap_err();
        assert!(e.contains("OTEL_EXPORTER_OTLP_PROTOCOL='thrift'"), "{e}");
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
