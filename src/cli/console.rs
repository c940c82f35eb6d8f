//! The console observer: lines like the Chaos Toolkit's
//! (`[2026-11-21 10:00:00 INFO] Probe: …`), coloured on a terminal, or JSON lines.

use super::LogFormat;
use faultline::control::Control;
use faultline::event::{Event, Level, TraceIds};
use std::io::{IsTerminal, Write};

/// Writes events to stderr.
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

impl Control for Console {
    fn name(&self) -> &str {
        "console"
    }
    fn on_event(&self, e: &Event, trace: Option<&TraceIds>) {
        let fields = || {
            let mut fields = e.fields();
            if let (Some(t), Some(o)) = (trace, fields.as_object_mut()) {
                o.insert("trace_id".into(), t.trace_id.clone().into());
                o.insert("span_id".into(), t.span_id.clone().into());
            }
            fields
        };
        self.write(e.level(), e.name(), &e.message(), fields);
        if let (Event::RunStarted { .. }, Some(t)) = (e, trace) {
            self.write(
                Level::Info,
                "experiment.trace_id",
                &format!("Trace id: {}", t.trace_id),
                || serde_json::json!({"trace_id": t.trace_id}),
            );
        }
    }
}

impl faultline::app::Narrator for Console {
    fn line(&self, level: Level, event: &str, message: &str) {
        Console::line(self, level, event, message);
    }
}
