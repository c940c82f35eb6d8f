//! The composition root: what turns a request (flags, environment, settings) into a
//! run, and a run into a record.
//!
//! Every front end calls this one entry point: the command line today, `serve`, run
//! history and reports next. It resolves precedence (flag > experiment `runtime` >
//! settings `runtime` > default), builds telemetry, log sinks and controls, runs the
//! experiment, writes the journal and returns what happened as values. It never prints
//! and never exits: what a person should read goes to a [`Narrator`], and the exit code
//! is returned.
//!
//! Two runs in one process share nothing: each gets its own [`Processes`] registry,
//! telemetry pipeline, sinks, controls and temporary names (`run_id`).

pub mod catalog;
pub mod controls;
pub mod history;
pub mod kill;
pub mod report;
pub mod run;
pub mod runs;
pub mod schedule;
pub mod serve;
pub mod sinks;
pub mod slo;
mod validate;

pub use crate::provider::process::Processes;
pub use catalog::{run_catalog, CatalogRequest};
pub use run::{run, RunEnd, RunRequest};
pub use validate::{validate, ValidateRequest, Validation};

use crate::event::Level;

/// Where a run's own lines go (the CLI's console; a server's log), besides the
/// lifecycle events it receives, through [`Narrator::layer`], as `tracing` events on
/// the run's subscriber.
pub trait Narrator: Send + Sync {
    /// One line: its level, its stable event name (`docs/telemetry.md`) and its words.
    fn line(&self, level: Level, event: &str, message: &str);

    /// A layer for the run's own `tracing` subscriber: it sees the run's spans and
    /// its lifecycle events (`crate::event::TARGET`). The console renders those.
    fn layer(&self) -> Option<crate::run::spans::RunLayer> {
        None
    }
}

/// A [`Narrator`] that keeps nothing (a test, or a caller that reads the record only).
#[derive(Debug, Default)]
pub struct Silent;

impl Narrator for Silent {
    fn line(&self, _: Level, _: &str, _: &str) {}
}

/// Give a run up at once (a second signal, before exiting): kill every activity of
/// this run still running, daemonised descendants included, and remove the temporary
/// files of journals being written. No rollback, no journal.
pub fn abandon(processes: &Processes) {
    processes.kill_all();
    crate::run::journal::remove_temporaries();
}

/// A random run id (UUID v4).
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
