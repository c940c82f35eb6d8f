//! The pieces between the SDK and the destination that faultline needs and the SDK
//! does not give: counting what was delivered (the SDK's `shutdown` returns Ok even
//! when every span was lost) and the embedded OTLP JSON file.

use opentelemetry::Context;
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
/// when the shutdown limit ran out.
#[derive(Debug)]
pub struct CountingProcessor<P> {
    pub inner: P,
    pub stats: Arc<Stats>,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
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
    /// The file's temporary name, created ahead by [`FileSink::stage`].
    staged: Mutex<Option<crate::run::journal::Pending>>,
}

impl FileSink {
    pub fn new(path: PathBuf, resource: Resource) -> Arc<FileSink> {
        Arc::new(FileSink {
            path,
            resource,
            spans: Mutex::new(Vec::new()),
            staged: Mutex::new(None),
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

    /// Create the file's temporary name now (see [`crate::run::journal::stage`]), so
    /// that [`FileSink::write`] only writes. Best effort: on failure, `write` tries
    /// again and reports the error.
    pub fn stage(&self) {
        let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
        if staged.is_none() {
            *staged = crate::run::journal::stage(&self.path).ok();
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
        let write = |p: crate::run::journal::Pending| {
            p.fill(|w| serde_json::to_writer(w, &request))?.rename()
        };
        let staged = self.staged.lock().unwrap_or_else(|p| p.into_inner()).take();
        // A file staged at the start may have gone with its directory (an activity
        // cleaning up): then it is written once more, from scratch.
        staged
            .map_or_else(|| Err(std::io::Error::other("not staged")), write)
            .or_else(|_| crate::run::journal::stage(&self.path).and_then(write))
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
