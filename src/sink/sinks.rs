//! The running set of sinks: one queue and one pipeline task per sink, an [`Emitter`]
//! that puts each record in every queue without waiting, and a shutdown that
//! delivers what it can within one limit and reports per sink. Shared code: it runs
//! any [`Sink`], and imports no sink folder.

use super::pipeline::{self, Policy, Sink, Stats};
use super::record::Record;
use serde::Serialize;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The default time [`Sinks::shutdown`] may take, for all sinks together.
pub const DEFAULT_SHUTDOWN_LIMIT: Duration = Duration::from_millis(1500);

/// Extra time `shutdown` gives a task past the deadline before aborting it. Tasks
/// stop on their own at the deadline; this only covers a final flush in progress.
const SHUTDOWN_SLACK: Duration = Duration::from_millis(100);

/// What one sink did, reported at shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkReport {
    /// The sink (`humio https://cloud.humio.com`, `jsonl ./x.jsonl`...).
    pub name: String,
    /// Records the destination acknowledged.
    pub delivered: u64,
    /// Records lost: `queue_full + failed + unsent`.
    pub dropped: u64,
    /// Dropped because the queue was full when emitted.
    pub queue_full: u64,
    /// Dropped after a non-retryable error or when retries ran out.
    pub failed: u64,
    /// Not delivered when the shutdown deadline passed.
    pub unsent: u64,
    /// The last error seen (secrets masked), even if later attempts succeeded.
    pub last_error: Option<String>,
}

impl SinkReport {
    /// Nothing was lost and nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.dropped == 0 && self.last_error.is_none()
    }
}

impl fmt::Display for SinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} delivered", self.name, self.delivered)?;
        if self.dropped > 0 {
            write!(
                f,
                ", {} dropped ({} queue full, {} failed, {} unsent at the deadline)",
                self.dropped, self.queue_full, self.failed, self.unsent
            )?;
        }
        if let Some(e) = &self.last_error {
            write!(f, "; last error: {e}")?;
        }
        Ok(())
    }
}

/// One sink's end of the queue, and its counters.
type Lane = (mpsc::Sender<Arc<Record>>, Arc<Stats>);

/// A cheap, cloneable handle that emits into every sink of a set; give one to the
/// runner's observer and keep the [`Sinks`] for shutdown.
#[derive(Clone, Default)]
pub struct Emitter {
    lanes: Arc<[Lane]>,
}

impl fmt::Debug for Emitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Emitter({} sinks)", self.lanes.len())
    }
}

impl Emitter {
    /// Queue a record for every sink. Never blocks: a full queue drops the record
    /// (counted in the report). Callable from any thread, inside a runtime or not.
    pub fn emit(&self, r: &Record) {
        if self.lanes.is_empty() {
            return;
        }
        let shared = Arc::new(r.clone());
        for (tx, stats) in self.lanes.iter() {
            stats.accepted.fetch_add(1, Ordering::Relaxed);
            if tx.try_send(Arc::clone(&shared)).is_err() {
                stats.accepted.fetch_sub(1, Ordering::Relaxed);
                stats.queue_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A sink fed by a layer on the run's own `tracing` dispatcher rather than by a
/// pipeline lane: OTLP logs, batched and exported by the OpenTelemetry SDK.
pub(crate) trait LayerSink: Send + Sync {
    /// The layer that feeds this sink the run's lifecycle events.
    fn layer(&self, run_id: &str, experiment: &str) -> crate::run::spans::RunLayer;
    /// Deliver what can be delivered within `limit`, then report.
    fn shutdown(
        self: Box<Self>,
        limit: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = SinkReport> + Send>>;
}

struct Task {
    name: String,
    stats: Arc<Stats>,
    handle: JoinHandle<()>,
}

/// The sinks configured for a run. Call [`Sinks::shutdown`] at the end; dropped
/// without it, the tasks deliver what is queued and stop once every [`Emitter`] is
/// gone (or with the runtime).
pub struct Sinks {
    tasks: Vec<Task>,
    senders: Vec<Lane>,
    emitter: Emitter,
    close: watch::Sender<Option<Instant>>,
    /// Sinks fed through a layer (with their names), after the pipeline ones.
    layered: Vec<(String, Box<dyn LayerSink>)>,
    /// Filled by the factory (`registry.rs`).
    pub(super) warnings: Vec<String>,
}

impl fmt::Debug for Sinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Default for Sinks {
    fn default() -> Sinks {
        Sinks::none()
    }
}

impl Sinks {
    /// No sinks: `emit` does nothing, `shutdown` returns at once.
    pub fn none() -> Sinks {
        Sinks {
            tasks: Vec::new(),
            senders: Vec::new(),
            emitter: Emitter::default(),
            close: watch::channel(None).0,
            layered: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Start one more sink (any [`Sink`] implementation) with this policy, on a
    /// task of the current tokio runtime (an error outside one).
    pub fn add<S: Sink>(&mut self, sink: S, policy: Policy) -> Result<(), String> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("sinks need a running tokio runtime".into());
        }
        let (tx, rx) = mpsc::channel(policy.queue_size.max(1));
        let stats = Arc::new(Stats::default());
        let name = sink.name();
        let handle = tokio::spawn(pipeline::run(
            sink,
            rx,
            policy,
            Arc::clone(&stats),
            self.close.subscribe(),
        ));
        self.senders.push((tx, Arc::clone(&stats)));
        self.emitter = Emitter {
            lanes: self.senders.clone().into(),
        };
        self.tasks.push(Task {
            name,
            stats,
            handle,
        });
        Ok(())
    }

    /// Add a sink fed through a layer (see [`Sinks::layers`]).
    pub(crate) fn add_layered(&mut self, name: String, sink: Box<dyn LayerSink>) {
        self.layered.push((name, sink));
    }

    /// The layers to put on the run's dispatcher (`Runner::layers`) so that the
    /// layer-fed sinks (OTLP logs) receive its lifecycle events; every record carries
    /// `run_id` and `experiment` (the title, secrets already masked).
    pub fn layers(&self, run_id: &str, experiment: &str) -> Vec<crate::run::spans::RunLayer> {
        self.layered
            .iter()
            .map(|(_, s)| s.layer(run_id, experiment))
            .collect()
    }

    /// No sink configured.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.layered.is_empty()
    }

    /// The sinks' names: the pipeline sinks in configuration order, then the
    /// layer-fed ones.
    pub fn names(&self) -> Vec<String> {
        self.tasks
            .iter()
            .map(|t| t.name.clone())
            .chain(self.layered.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    /// Things worth telling the user that did not prevent building the sinks.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A handle to emit from elsewhere (an observer). Take it after the last `add`.
    pub fn emitter(&self) -> Emitter {
        self.emitter.clone()
    }

    /// Queue a record for every sink; never blocks, never waits (see [`Emitter::emit`]).
    pub fn emit(&self, r: &Record) {
        self.emitter.emit(r)
    }

    /// Deliver what can be delivered within `limit` (all sinks together, in
    /// parallel), then give up. Returns at most about `limit` + 100 ms later, with
    /// one report per sink: the pipeline sinks in configuration order, then the
    /// layer-fed ones.
    pub async fn shutdown(self, limit: Duration) -> Vec<SinkReport> {
        let deadline = Instant::now() + limit;
        self.close.send_replace(Some(deadline));
        // The layer-fed sinks stop in parallel with the pipelines, within the same limit.
        let layered: Vec<JoinHandle<SinkReport>> = self
            .layered
            .into_iter()
            .map(|(_, s)| tokio::spawn(s.shutdown(limit)))
            .collect();
        let mut reports = Vec::with_capacity(self.tasks.len() + layered.len());
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline + SHUTDOWN_SLACK, &mut t.handle)
                .await
                .is_err()
            {
                t.handle.abort();
                t.stats
                    .error("aborted at the shutdown deadline".to_string());
            }
            reports.push(report(t.name, &t.stats));
        }
        for h in layered {
            if let Ok(r) = h.await {
                reports.push(r);
            }
        }
        reports
    }
}

fn report(name: String, s: &Stats) -> SinkReport {
    let accepted = s.accepted.load(Ordering::Relaxed);
    let delivered = s.delivered.load(Ordering::Relaxed);
    let failed = s.failed.load(Ordering::Relaxed);
    let queue_full = s.queue_full.load(Ordering::Relaxed);
    let unsent = accepted.saturating_sub(delivered + failed);
    SinkReport {
        name,
        delivered,
        dropped: queue_full + failed + unsent,
        queue_full,
        failed,
        unsent,
        last_error: s.last_error.lock().ok().and_then(|e| e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_line() {
        let r = SinkReport {
            name: "http http://x/".into(),
            delivered: 3,
            dropped: 5,
            queue_full: 1,
            failed: 2,
            unsent: 2,
            last_error: Some("HTTP 500".into()),
        };
        assert_eq!(
            r.to_string(),
            "http http://x/: 3 delivered, 5 dropped (1 queue full, 2 failed, 2 unsent at the deadline); last error: HTTP 500"
        );
        assert!(!r.is_clean());
    }
}
