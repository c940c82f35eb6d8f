//! The structured log record every sink receives: one per lifecycle event, with the
//! run id, the experiment and the trace context of the step it belongs to. Shared by
//! every sink folder and the pipeline; it imports no sink.

use crate::event::{Event, TraceIds};
use crate::redact::Redactor;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// One structured log record: every lifecycle event becomes one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// When, ISO 8601 UTC with microseconds (`2026-11-21T19:05:17.811526+00:00`).
    pub time: String,
    /// `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.
    pub level: &'static str,
    /// The event name, e.g. `activity.failed` (see `docs/telemetry.md`).
    pub event: &'static str,
    /// The human message, as the console prints it.
    pub message: String,
    /// The run id.
    pub run_id: String,
    /// The trace id, 32 hex digits, when tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The current span id, 16 hex digits, when tracing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The experiment's title.
    pub experiment: String,
    /// The event's structured fields (an object).
    pub fields: Value,
}

impl Record {
    /// The record for an event, stamped now, without trace context.
    pub fn new(event: &Event, run_id: &str, experiment: &str) -> Record {
        Record {
            time: crate::timefmt::now_iso(),
            level: event.level().as_str(),
            event: event.name(),
            message: event.message(),
            run_id: run_id.to_string(),
            trace_id: None,
            span_id: None,
            experiment: experiment.to_string(),
            fields: event.fields(),
        }
    }

    /// With the trace context of the span the event belongs to.
    pub fn with_trace(mut self, trace_id: Option<String>, span_id: Option<String>) -> Record {
        self.trace_id = trace_id;
        self.span_id = span_id;
        self
    }

    /// With the ids an observer receives with the event (`None`: tracing off).
    pub fn traced(self, ids: Option<&TraceIds>) -> Record {
        match ids {
            Some(t) => self.with_trace(Some(t.trace_id.clone()), Some(t.span_id.clone())),
            None => self,
        }
    }

    /// With every secret masked in the message, the title and the fields.
    pub fn redacted(mut self, r: &Redactor) -> Record {
        if r.is_empty() {
            return self;
        }
        self.message = r.text(&self.message).into_owned();
        self.experiment = r.text(&self.experiment).into_owned();
        self.fields = r.value(&self.fields);
        self
    }
}

/// A batch as a sink receives it.
pub type Batch = [Arc<Record>];

/// The record's time as Unix nanoseconds (now if unparsable: never fail a batch
/// over a timestamp).
pub(crate) fn unix_nanos(r: &Record) -> u64 {
    chrono::DateTime::parse_from_rfc3339(&r.time)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .or_else(|| chrono::Utc::now().timestamp_nanos_opt())
        .map_or(0, |n| n.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_from_event_and_redaction() {
        let e = Event::ActivityEnded {
            name: "kill".into(),
            phase: crate::run::Phase::Method,
            succeeded: false,
            error: Some("token s3cr3t-value refused".into()),
            output: Value::Null,
        };
        let r = Record::new(&e, "run-1", "title s3cr3t-value")
            .with_trace(Some("a".repeat(32)), Some("b".repeat(16)))
            .redacted(&Redactor::new(["s3cr3t-value".to_string()]));
        assert_eq!(r.trace_id.as_deref(), Some("a".repeat(32).as_str()));
        let ids = TraceIds {
            trace_id: "c".repeat(32),
            span_id: "d".repeat(16),
        };
        let t = Record::new(&e, "r", "t").traced(Some(&ids));
        assert_eq!(t.span_id.as_deref(), Some("d".repeat(16).as_str()));
        assert_eq!(r.event, "activity.failed");
        assert_eq!(r.level, "ERROR");
        assert_eq!(r.experiment, "title ***");
        assert_eq!(r.fields["error"], json!("token *** refused"));
        assert!(!serde_json::to_string(&r).unwrap().contains("s3cr3t"));
        let v = serde_json::to_value(Record::new(&e, "r", "t")).unwrap();
        assert!(v.get("trace_id").is_none());
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            [
                "time",
                "level",
                "event",
                "message",
                "run_id",
                "experiment",
                "fields"
            ]
        );
    }
}
