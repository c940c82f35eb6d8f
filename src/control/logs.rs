//! The log-sink control: every lifecycle event becomes one structured
//! [`Record`](crate::sink::Record) (with the run id, the experiment, and the trace and
//! span ids of the step it belongs to), handed to the configured sinks without ever
//! blocking the run.

use super::{Control, RunInfo};
use crate::event::{Event, TraceIds};
use crate::sink::{Emitter, Record};
use std::sync::OnceLock;

/// Feeds every event to the sinks.
pub struct LogSinks {
    emitter: Emitter,
    run: OnceLock<(String, String)>,
}

impl LogSinks {
    /// A control feeding this emitter.
    pub fn new(emitter: Emitter) -> LogSinks {
        LogSinks {
            emitter,
            run: OnceLock::new(),
        }
    }
}

impl Control for LogSinks {
    fn name(&self) -> &str {
        "log sinks"
    }

    fn configure(&self, run: &RunInfo) {
        let _ = self.run.set((run.run_id.clone(), run.title.clone()));
    }

    fn on_event(&self, event: &Event, trace: Option<&TraceIds>) {
        let (run_id, experiment) = self.run.get().cloned().unwrap_or_default();
        self.emitter.emit(&Record {
            time: crate::timefmt::now_iso(),
            level: event.level().as_str(),
            event: event.name(),
            message: event.message(),
            run_id,
            trace_id: trace.map(|t| t.trace_id.clone()),
            span_id: trace.map(|t| t.span_id.clone()),
            experiment,
            fields: event.fields(),
        });
    }
}
