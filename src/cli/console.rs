//! The console observer: lines like the Chaos Toolkit's
//! (`[2026-11-21 10:00:00 INFO] Probe: …`), coloured on a terminal, or JSON lines.
//!
//! A `tracing` layer on the run's subscriber: it renders the lifecycle events
//! (`faultline::event::TARGET`) the runner emits inside its spans. Lines outside a run
//! (validation, the journal's path, the telemetry report) go through [`Console::line`].

use super::LogFormat;
use faultline::event::{field, Level};
use std::io::{IsTerminal, Write};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Writes events to stderr.
#[derive(Clone)]
pub struct Console {
    format: LogFormat,
    verbose: bool,
    color: bool,
    run_id: String,
}

impl Console {
    /// A console for this format.
    pub fn new(format: LogFormat, verbose: bool, no_color: bool, run_id: String) -> Console {
        let color = !no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stderr().is_terminal();
        Console {
            format,
            verbose,
            color,
            run_id,
        }
    }

    /// Print a line outside the event stream (validation, journal path...).
    pub fn line(&self, level: Level, event: &str, message: &str) {
        self.write(level, event, message, || serde_json::json!({}));
    }

    /// One line; `fields` (the event's structured fields) are only built for JSON lines.
    fn write(
        &self,
        level: Level,
        event: &str,
        message: &str,
        fields: impl FnOnce() -> serde_json::Value,
    ) {
        if level == Level::Debug && !self.verbose {
            return;
        }
        let line = match self.format {
            LogFormat::Json => {
                let mut obj = serde_json::json!({
                    "time": faultline::timefmt::now_iso(),
                    "level": level.as_str(),
                    "event": event,
                    "message": message,
                    "run_id": self.run_id,
                });
                if let (Some(o), serde_json::Value::Object(f)) = (obj.as_object_mut(), fields()) {
                    for (k, v) in f {
                        o.entry(k).or_insert(v);
                    }
                }
                obj.to_string()
            }
            LogFormat::String => {
                let stamp = format!("[{} {}]", faultline::timefmt::console_now(), level.as_str());
                if self.color {
                    let c = match level {
                        Level::Debug => "36",
                        Level::Info => "32",
                        Level::Warning => "33",
                        Level::Error | Level::Critical => "31",
                    };
                    format!("\x1b[{c}m{stamp}\x1b[0m {message}")
                } else {
                    format!("{stamp} {message}")
                }
            }
        };
        let mut line = line;
        line.push('\n');
        // One write per line: stderr is unbuffered, and lines from background
        // activities must not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// What the console reads from one lifecycle event.
struct Seen<'a> {
    console: &'a Console,
    event: String,
    level: Option<Level>,
    message: Option<String>,
    fields: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
}

impl Seen<'_> {
    /// Whether the line will be printed: the level comes first among the fields, so
    /// a debug message nobody shows is never formatted.
    fn shown(&self) -> bool {
        self.level
            .is_some_and(|l| l != Level::Debug || self.console.verbose)
    }
}

impl Visit for Seen<'_> {
    fn record_str(&mut self, f: &Field, value: &str) {
        match f.name() {
            field::EVENT => self.event = value.to_string(),
            field::LEVEL => self.level = Level::parse(value),
            field::TRACE_ID => self.trace_id = Some(value.to_string()),
            field::SPAN_ID => self.span_id = Some(value.to_string()),
            _ => {}
        }
    }

    fn record_debug(&mut self, f: &Field, value: &dyn std::fmt::Debug) {
        match f.name() {
            field::MESSAGE if self.shown() => self.message = Some(format!("{value:?}")),
            // Only JSON lines carry the structured fields.
            field::FIELDS if self.shown() && matches!(self.console.format, LogFormat::Json) => {
                self.fields = Some(format!("{value:?}"))
            }
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Console {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != faultline::event::TARGET {
            return;
        }
        let mut seen = Seen {
            console: self,
            event: String::new(),
            level: None,
            message: None,
            fields: None,
            trace_id: None,
            span_id: None,
        };
        event.record(&mut seen);
        let (Some(level), Some(message)) = (seen.level, seen.message.take()) else {
            return;
        };
        let fields = || {
            let mut fields = seen
                .fields
                .as_deref()
                .and_then(|f| serde_json::from_str(f).ok())
                .unwrap_or_else(|| serde_json::json!({}));
            if let (Some(t), Some(s), Some(o)) =
                (&seen.trace_id, &seen.span_id, fields.as_object_mut())
            {
                o.insert("trace_id".into(), t.clone().into());
                o.insert("span_id".into(), s.clone().into());
            }
            fields
        };
        self.write(level, &seen.event, &message, fields);
        if let ("experiment.started", Some(t)) = (seen.event.as_str(), &seen.trace_id) {
            self.write(
                Level::Info,
                "experiment.trace_id",
                &format!("Trace id: {t}"),
                || serde_json::json!({"trace_id": t}),
            );
        }
    }
}

impl faultline::app::Narrator for Console {
    fn line(&self, level: Level, event: &str, message: &str) {
        Console::line(self, level, event, message);
    }

    fn layer(&self) -> Option<faultline::run::spans::RunLayer> {
        Some(Box::new(self.clone()))
    }
}
