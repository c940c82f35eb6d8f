//! The log sinks as a `tracing` layer on the run's subscriber: every lifecycle event
//! (target [`crate::event::TARGET`]) becomes one [`Record`] (with the run id, the
//! experiment, and the trace and span ids of the step it belongs to), handed to the
//! configured sinks without ever blocking the run.
//!
//! The run id and the experiment's title (substituted and masked) are read from the
//! experiment span (`chaos.experiment`) when it opens: it opens before the first
//! event, and it is the run's root, so the layer needs nothing from the caller but
//! the sinks' [`Emitter`].

use super::{Emitter, Record};
use crate::event::{field, static_name, Level, TARGET};
use crate::run::spans::{attr, name};
use std::sync::OnceLock;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Feeds every lifecycle event of the run to the sinks.
pub struct SinksLayer {
    emitter: Emitter,
    /// The run id and the experiment's title, from the experiment span.
    run: OnceLock<(String, String)>,
}

impl SinksLayer {
    /// A layer feeding this emitter.
    pub fn new(emitter: Emitter) -> SinksLayer {
        SinksLayer {
            emitter,
            run: OnceLock::new(),
        }
    }
}

/// The run id and title of the experiment span.
#[derive(Default)]
struct RunFields {
    run_id: String,
    title: String,
}

impl Visit for RunFields {
    fn record_str(&mut self, f: &Field, value: &str) {
        match f.name() {
            attr::RUN_ID => self.run_id = value.to_string(),
            attr::EXPERIMENT_TITLE => self.title = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// What a record is made of, read from one lifecycle event.
#[derive(Default)]
struct EventFields {
    event: Option<&'static str>,
    level: Option<Level>,
    message: Option<String>,
    fields: Option<serde_json::Value>,
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl Visit for EventFields {
    fn record_str(&mut self, f: &Field, value: &str) {
        match f.name() {
            field::EVENT => self.event = static_name(value),
            field::LEVEL => self.level = Level::parse(value),
            field::TRACE_ID => self.trace_id = Some(value.to_string()),
            field::SPAN_ID => self.span_id = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, f: &Field, value: &dyn std::fmt::Debug) {
        match f.name() {
            // Both are `Display` values: their `Debug` is their text.
            field::MESSAGE => self.message = Some(format!("{value:?}")),
            field::FIELDS => self.fields = serde_json::from_str(&format!("{value:?}")).ok(),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for SinksLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() != name::EXPERIMENT || self.run.get().is_some() {
            return;
        }
        let mut run = RunFields::default();
        attrs.record(&mut run);
        let _ = self.run.set((run.run_id, run.title));
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != TARGET {
            return;
        }
        let mut seen = EventFields::default();
        event.record(&mut seen);
        // Every lifecycle event carries all of these (`Event::trace_in`); a `tracing`
        // event on that target written by anything else is not one.
        let (Some(event), Some(level), Some(message)) = (seen.event, seen.level, seen.message)
        else {
            return;
        };
        let (run_id, experiment) = self.run.get().cloned().unwrap_or_default();
        self.emitter.emit(&Record {
            time: crate::timefmt::now_iso(),
            level: level.as_str(),
            event,
            message,
            run_id,
            trace_id: seen.trace_id,
            span_id: seen.span_id,
            experiment,
            fields: seen
                .fields
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, TraceIds};
    use crate::run::spans::{self, Trace};
    use crate::run::{Phase, Status};
    use crate::sink::{testkit, SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
    use serde_json::{json, Value};

    /// Events through the run's subscriber reach a real JSON-lines file as the very
    /// records [`Record::new`] makes of them (level, name, message, fields, run id,
    /// experiment, trace and span ids), stamps aside; other `tracing` events do not.
    #[tokio::test]
    async fn lifecycle_events_become_the_records_of_those_events() {
        let dir = testkit::temp_dir("sinks-layer");
        let path = dir.join("run.jsonl");
        let cfg: Vec<SinkConfig> =
            serde_json::from_value(json!([{"type": "jsonl", "path": path}])).unwrap();
        let sinks = Sinks::from_config_with_env(&cfg, &|_| None).unwrap();
        let parent = opentelemetry::Context::new();
        let trace = Trace::new(
            None,
            &parent,
            vec![Box::new(SinksLayer::new(sinks.emitter()))],
        );
        let ids = TraceIds {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
        };
        let events = [
            (
                Event::RunStarted {
                    title: "the title".into(),
                    run_id: "run-1".into(),
                },
                Some(ids.clone()),
            ),
            (
                Event::ActivityEnded {
                    name: "probe \"x\"".into(),
                    phase: Phase::Method,
                    succeeded: false,
                    error: Some("boom".into()),
                    output: json!({"n": 0.1, "deep": {"list": [1, "two", null]}}),
                },
                Some(ids.clone()),
            ),
            (
                Event::ToleranceChecked {
                    name: "p".into(),
                    met: true,
                    verdict: "met",
                    reason: "ok".into(),
                    evidence: json!({"expected": "< 1", "actual": 0.5, "query": "up"}),
                },
                None,
            ),
            (
                Event::RunEnded {
                    status: Status::Failed,
                    deviated: true,
                },
                None,
            ),
        ];
        tracing::dispatcher::with_default(trace.dispatch(), || {
            tracing::info!(target: "faultline::other", event = "activity.failed", "not one");
            let span = spans::experiment(
                &parent,
                "run-1",
                "the title",
                "default",
                "default",
                None,
                None,
            );
            for (e, ids) in &events {
                e.trace_in(&span, ids.as_ref());
            }
        });
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        assert!(reports[0].is_clean(), "{}", reports[0]);
        let stamped = |mut v: Value| {
            assert!(
                v["time"].as_str().is_some_and(|t| t.ends_with("+00:00")),
                "{v}"
            );
            v.as_object_mut().unwrap().remove("time");
            v
        };
        let got: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| stamped(serde_json::from_str(l).unwrap()))
            .collect();
        let want: Vec<Value> = events
            .iter()
            .map(|(e, ids)| {
                stamped(json!(
                    Record::new(e, "run-1", "the title").traced(ids.as_ref())
                ))
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(got[1]["level"], "ERROR");
        assert_eq!(got[2]["level"], "DEBUG");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
