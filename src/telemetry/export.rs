//! The pieces between the SDK and the destination that faultline needs and the SDK
//! does not give: counting what was delivered (the SDK's `shutdown` returns Ok even
//! when every span was lost) and the embedded OTLP JSON file.

use crate::redact::Redactor;
use opentelemetry::{Array, Context, KeyValue, StringValue, Value as OtelValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Delivery counters shared by the counting processor and exporter.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sampled spans that ended (handed to the pipeline).
    pub ended: AtomicU64,
    /// Spans the destination accepted.
    pub exported: AtomicU64,
    /// Spans in batches the exporter reported as failed.
    pub failed: AtomicU64,
    /// The first export error, then the latest if it differs.
    pub error: Mutex<Option<String>>,
}

impl Stats {
    fn record_error(&self, e: &OTelSdkError) {
        let text = match e {
            OTelSdkError::InternalFailure(m) => m.clone(),
            other => other.to_string(),
        };
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(text);
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Counts every sampled span that ends, before the batch queue can drop it, so that
/// `ended - exported` covers export failures, queue overflow and spans still queued
/// when the shutdown limit ran out. Masks every secret in the span on the way, so no
/// exporter (file or OTLP) ever sees one, whatever the code that made the span wrote.
#[derive(Debug)]
pub struct CountingProcessor<P> {
    pub inner: P,
    pub stats: Arc<Stats>,
    pub redactor: Redactor,
}

/// Every string of a span (name, attributes, events, links, status) with secrets
/// masked.
pub fn redact_span(r: &Redactor, span: &mut SpanData) {
    if r.is_empty() {
        return;
    }
    let text = |s: &str| -> Option<String> {
        match r.text(s) {
            std::borrow::Cow::Owned(o) => Some(o),
            std::borrow::Cow::Borrowed(_) => None,
        }
    };
    let attributes = |kvs: &mut Vec<KeyValue>| {
        for kv in kvs.iter_mut() {
            match &kv.value {
                OtelValue::String(s) => {
                    if let Some(m) = text(s.as_str()) {
                        kv.value = OtelValue::String(m.into());
                    }
                }
                OtelValue::Array(Array::String(items)) => {
                    let masked: Vec<StringValue> = items
                        .iter()
                        .map(|i| {
                            text(i.as_str())
                                .map(StringValue::from)
                                .unwrap_or_else(|| i.clone())
                        })
                        .collect();
                    kv.value = OtelValue::Array(Array::String(masked));
                }
                _ => {}
            }
        }
    };
    if let Some(m) = text(&span.name) {
        span.name = m.into();
    }
    attributes(&mut span.attributes);
    for e in span.events.events.iter_mut() {
        if let Some(m) = text(&e.name) {
            e.name = m.into();
        }
        attributes(&mut e.attributes);
    }
    for l in span.links.links.iter_mut() {
        attributes(&mut l.attributes);
    }
    if let opentelemetry::trace::Status::Error { description } = &span.status {
        if let Some(m) = text(description) {
            span.status = opentelemetry::trace::Status::error(m);
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        redact_span(&self.redactor, &mut span);
        if span.span_context.is_sampled() {
            self.stats.ended.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts what the wrapped exporter delivered and keeps its error text.
#[derive(Debug)]
pub struct CountingExporter<E> {
    pub inner: E,
    pub stats: Arc<Stats>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.stats.exported.fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                self.stats.record_error(e);
                self.stats.failed.fetch_add(n, Ordering::Relaxed)
            }
        };
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.inner.shutdown()
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The spans collected for the embedded file, written once at shutdown.
#[derive(Debug)]
pub struct FileSink {
    pub path: PathBuf,
    resource: Resource,
    spans: Mutex<Vec<SpanData>>,
}

impl FileSink {
    pub fn new(path: PathBuf, resource: Resource) -> Arc<FileSink> {
        Arc::new(FileSink {
            path,
            resource,
            spans: Mutex::new(Vec::new()),
        })
    }

    /// Everything collected so far, as one OTLP request (one resource, spans grouped
    /// by instrumentation scope). The spans are handed over, not copied: the file is
    /// written once, at shutdown.
    pub fn take_request(&self) -> ExportTraceServiceRequest {
        let spans = std::mem::take(&mut *self.spans.lock().unwrap_or_else(|p| p.into_inner()));
        let resource = ResourceAttributesWithSchema::from(&self.resource);
        ExportTraceServiceRequest {
            resource_spans: if spans.is_empty() {
                Vec::new()
            } else {
                group_spans_by_resource_and_scope(spans, &resource)
            },
        }
    }

    /// Write the file atomically (temporary file put in place; no flush to disk: the
    /// journal is the durable record): a reader sees the previous file or the complete
    /// new one, never half a trace. The content is OTLP JSON (the protobuf-JSON mapping
    /// with hex ids) on one line, as the OpenTelemetry Collector's file exporter writes
    /// it, so that its `otlpjsonfile` receiver can read the file back.
    pub fn write(&self) -> Result<usize, String> {
        let request = self.take_request();
        let n = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        use crate::run::journal::{write_file, Durability};
        write_file(&self.path, Durability::AtomicOnly, |w| {
            serde_json::to_writer(w, &request)
        })
        .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        Ok(n)
    }
}

/// The exporter side of the file sink: collecting costs a lock and a push.
#[derive(Debug)]
pub struct FileExporter(pub Arc<FileSink>);

impl SpanExporter for FileExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0
            .spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch);
        Ok(())
    }
}
