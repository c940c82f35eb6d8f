//! Test support for the sinks: sample records, and the shared HTTP test server
//! (`tests/support/http_server.rs`) answering from a script of replies (statuses,
//! echoes, or never), in the words the sink tests use.

use super::Record;
use crate::test_http::{self, Response};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Mutex;

pub use crate::test_http::refused_addr;

pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const SPAN_ID: &str = "00f067aa0ba902b7";

/// A sample record; `i` is also the microsecond of its time.
pub fn record(i: usize) -> Record {
    Record {
        time: format!("2026-11-21T19:05:17.{i:06}+00:00"),
        level: "INFO",
        event: "activity.started",
        message: format!("message {i}"),
        run_id: "run-1".into(),
        trace_id: Some(TRACE_ID.into()),
        span_id: Some(SPAN_ID.into()),
        experiment: "demo".into(),
        fields: json!({"activity": format!("a{i}"), "phase": "method", "n": i,
                       "nested": {"k": true}, "none": null}),
    }
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(
        format!(
            "faultline-sink-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        )
        .replace([' ', ':', '{', '}', ','], "_"),
    );
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// How the server answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// This status, empty body.
    Status(u16),
    /// This status, the request's Authorization header echoed in the body.
    EchoAuth(u16),
    /// Read the request, never answer (the connection stays open).
    Never,
}

impl Reply {
    fn answer(self, req: &test_http::Request) -> Response {
        match self {
            Reply::Status(s) => Response::status(s),
            Reply::EchoAuth(s) => Response::text(
                s,
                &format!(
                    "refused credentials: {}",
                    req.header("authorization").unwrap_or("")
                ),
            ),
            Reply::Never => Response::never(),
        }
    }
}

/// The shared test server answering from a script; derefs to it for `url`,
/// `requests` and `addr`. (`async` only so the sink tests read the same as before.)
pub struct Server(test_http::Server);

impl std::ops::Deref for Server {
    type Target = test_http::Server;
    fn deref(&self) -> &test_http::Server {
        &self.0
    }
}

impl Server {
    /// Answers from `script` in order, then 200.
    pub async fn start(script: Vec<Reply>) -> Server {
        Server::start_then(script, Reply::Status(200)).await
    }

    /// Answers from `script` in order, then `then` forever.
    pub async fn start_then(script: Vec<Reply>, then: Reply) -> Server {
        let script = Mutex::new(script.into_iter().rev().collect::<Vec<_>>());
        Server(test_http::Server::start(move |req| {
            let next = script
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or(then);
            next.answer(req)
        }))
    }

    /// A server that accepts connections and never answers.
    pub async fn blackhole() -> Server {
        Server::start_then(vec![], Reply::Never).await
    }
}

/// Emit records the way the runner emits lifecycle events, as `tracing` events of
/// target [`crate::event::TARGET`] on a dispatcher carrying the sinks' layers: how the
/// layer-fed sinks (OTLP logs) receive them. The run id and title are the first
/// record's; the record's time is not carried (the event's time is now).
pub fn emit_traced(sinks: &super::Sinks, records: &[Record]) {
    use crate::event::field;
    use tracing_subscriber::layer::SubscriberExt;
    let Some(first) = records.first() else {
        return;
    };
    let layers = sinks.layers(&first.run_id, &first.experiment);
    if layers.is_empty() {
        return;
    }
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layers));
    tracing::dispatcher::with_default(&dispatch, || {
        for r in records {
            let fields = r.fields.to_string();
            tracing::event!(target: crate::event::TARGET, tracing::Level::INFO, {
                { field::EVENT } = r.event,
                { field::LEVEL } = r.level,
                { field::MESSAGE } = r.message.as_str(),
                { field::FIELDS } = fields.as_str(),
                { field::TRACE_ID } = r.trace_id.as_deref(),
                { field::SPAN_ID } = r.span_id.as_deref(),
            });
        }
    });
}
