//! Records as OTLP logs: one `ResourceLogs` (the resource from `OTEL_SERVICE_NAME`
//! and `OTEL_RESOURCE_ATTRIBUTES`), one `ScopeLogs` (`faultline`), one `LogRecord`
//! per record; as protobuf or JSON for OTLP/HTTP, as the request itself for gRPC.
//! Pure.

use crate::sink::record::{unix_nanos, Batch, Record};
use crate::sink::transport::HttpEncoder;
use crate::telemetry::otel_env;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::Value;
use std::collections::BTreeMap;

/// The OTLP/HTTP body: protobuf, or the protobuf-JSON mapping.
pub(crate) struct OtlpHttpEncoder {
    /// The resource every request carries.
    pub resource: Resource,
    /// JSON instead of protobuf.
    pub json: bool,
}

impl HttpEncoder for OtlpHttpEncoder {
    fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "application/x-protobuf"
        }
    }

    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String> {
        encode_http(batch, &self.resource, self.json)
    }
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

pub(super) fn hex_id(s: Option<&str>, len: usize) -> Vec<u8> {
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
