//! W3C trace context and baggage across the boundaries a chaos run crosses: HTTP
//! requests made by providers, child processes, and faultline's own start inside a CI
//! pipeline's trace.
//!
//! Free functions over an explicit [`Context`], so the runner passes the activity's
//! context instead of relying on a thread-local "current" one (tasks hop threads and a
//! current-thread runtime interleaves activities).

use opentelemetry::baggage::{BaggageExt, BaggageMetadata, KeyValueMetadata};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use std::collections::HashMap;

/// Baggage key carrying the run id.
pub const BAGGAGE_RUN_ID: &str = "chaos.run.id";
/// Baggage key carrying the experiment title.
pub const BAGGAGE_EXPERIMENT: &str = "chaos.experiment";

/// `cx` plus `entries` in its baggage (an entry replaces an inherited one with the same key).
fn with_entries(cx: &Context, entries: &[(&str, &str)]) -> Context {
    if entries.is_empty() {
        return cx.clone();
    }
    let mut merged: Vec<KeyValueMetadata> = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| KeyValueMetadata::new(k.clone(), v.clone(), m.clone()))
        .collect();
    // Later entries replace earlier ones with the same key.
    merged.extend(entries.iter().map(|(k, v)| {
        KeyValueMetadata::new(k.to_string(), v.to_string(), BaggageMetadata::default())
    }));
    cx.with_baggage(merged)
}

/// The carrier fields, lower-case names: `traceparent`, `tracestate`, `baggage`.
fn inject(cx: &Context, entries: &[(&str, &str)]) -> HashMap<String, String> {
    let cx = with_entries(cx, entries);
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    BaggagePropagator::new().inject_context(&cx, &mut carrier);
    carrier
}

/// W3C `traceparent` (+ `tracestate` when not empty) and `baggage` headers for an HTTP
/// request made inside `cx` (the CLIENT span's context). `baggage` entries are added
/// to whatever baggage `cx` already carries, e.g.
/// `[(BAGGAGE_RUN_ID, run_id), (BAGGAGE_EXPERIMENT, title)]`.
///
/// Empty when `cx` has no valid span and no baggage.
pub fn http_headers(cx: &Context, baggage: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut carrier = inject(cx, baggage);
    let mut out = Vec::with_capacity(3);
    for name in ["traceparent", "tracestate", "baggage"] {
        if let Some(v) = carrier.remove(name).filter(|v| !v.is_empty()) {
            out.push((name.to_string(), v));
        }
    }
    out
}

/// The same as `TRACEPARENT`, `TRACESTATE` and `BAGGAGE` environment variables for a
/// child process. When `cx` has a valid span, all three are present, `TRACESTATE` and
/// `BAGGAGE` possibly empty, so that values faultline itself inherited (from a CI
/// pipeline) never reach the child unchanged.
pub fn child_env(cx: &Context, baggage: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut carrier = inject(cx, baggage);
    let valid = cx.span().span_context().is_valid();
    let mut out = Vec::with_capacity(3);
    for (name, var) in [
        ("traceparent", "TRACEPARENT"),
        ("tracestate", "TRACESTATE"),
        ("baggage", "BAGGAGE"),
    ] {
        match carrier.remove(name) {
            Some(v) if valid || !v.is_empty() => out.push((var.to_string(), v)),
            None if valid => out.push((var.to_string(), String::new())),
            _ => {}
        }
    }
    out
}

struct Fields(HashMap<String, String>);

impl Extractor for Fields {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// A parent context from `TRACEPARENT` / `TRACESTATE` (and `BAGGAGE`) in faultline's
/// own environment (a CI pipeline's trace), when `TRACEPARENT` is valid W3C.
///
/// Start the experiment span with `tracer.start_with_context(name, &parent)`: it
/// joins that trace (same trace id, parent span id from the variable). The default
/// sampler (`parentbased_always_on`) follows the parent's sampled flag.
pub fn parent_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Context> {
    let mut fields = HashMap::new();
    for (var, name) in [
        ("TRACEPARENT", "traceparent"),
        ("TRACESTATE", "tracestate"),
        ("BAGGAGE", "baggage"),
    ] {
        if let Some(v) = env(var) {
            fields.insert(name.to_string(), v);
        }
    }
    let fields = Fields(fields);
    let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &fields);
    if !cx.span().span_context().is_valid() {
        return None;
    }
    Some(BaggagePropagator::new().extract_with_context(&cx, &fields))
}

/// Extract a context from HTTP-style headers (case-insensitive names): what a
/// receiving service does with [`http_headers`]' output.
pub fn extract_headers(headers: &[(String, String)]) -> Context {
    let fields = Fields(
        headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
    );
    let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &fields);
    BaggagePropagator::new().extract_with_context(&cx, &fields)
}

/// The trace id and span id of `cx`'s span as lower-case hex (32 and 16 digits), for
/// the console, the journal and log events; `None` when `cx` has no valid span.
pub fn ids(cx: &Context) -> Option<(String, String)> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use std::str::FromStr;

    fn cx() -> Context {
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::from_str("vendor=v1").unwrap(),
        );
        Context::new().with_remote_span_context(sc)
    }

    #[test]
    fn headers_round_trip() {
        let h = http_headers(
            &cx(),
            &[
                (BAGGAGE_RUN_ID, "r-1"),
                (BAGGAGE_EXPERIMENT, "kill a pod, then wait"),
            ],
        );
        assert_eq!(
            h[0],
            (
                "traceparent".into(),
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()
            )
        );
        assert_eq!(h[1], ("tracestate".into(), "vendor=v1".into()));
        assert_eq!(h[2].0, "baggage");
        let back = extract_headers(&h);
        assert_eq!(ids(&back), ids(&cx()));
        assert_eq!(
            back.baggage()
                .get(BAGGAGE_RUN_ID)
                .map(|v| v.as_str().to_string())
                .as_deref(),
            Some("r-1")
        );
        assert_eq!(
            back.baggage()
                .get(BAGGAGE_EXPERIMENT)
                .map(|v| v.as_str().to_string())
                .as_deref(),
            Some("kill a pod, then wait")
        );
    }

    #[test]
    fn child_env_overrides_inherited_values() {
        let env = child_env(&cx(), &[]);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["TRACEPARENT", "TRACESTATE", "BAGGAGE"]);
        assert_eq!(env[2].1, "");
        assert!(child_env(&Context::new(), &[]).is_empty());
        assert!(http_headers(&Context::new(), &[]).is_empty());
    }

    #[test]
    fn parent_from_env_needs_a_valid_traceparent() {
        let vars: HashMap<&str, &str> = [
            (
                "TRACEPARENT",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("TRACESTATE", "ci=gitlab"),
            ("BAGGAGE", "pipeline=42"),
        ]
        .into();
        let cx = parent_from_env(&|k| vars.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(ids(&cx).unwrap().0, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(cx.span().span_context().is_remote());
        assert_eq!(
            cx.span().span_context().trace_state().get("ci"),
            Some("gitlab")
        );
        assert_eq!(
            cx.baggage()
                .get("pipeline")
                .map(|v| v.as_str().to_string())
                .as_deref(),
            Some("42")
        );
        assert!(parent_from_env(&|_| None).is_none());
        assert!(
            parent_from_env(&|k| (k == "TRACEPARENT").then(|| "00-zz-11-01".to_string())).is_none()
        );
    }
}
