//! `faultline schedule FILE`: each experiment of the schedule run on time through
//! [`super::run`], never two runs of the same entry at once, only inside its windows;
//! the kill switch refuses runs as for `faultline run`. A shutdown (SIGTERM) starts no
//! new run and interrupts the running ones (rollbacks play, journals are written).

use super::{new_run_id, run, Narrator, RunRequest};
use crate::event::Level;
use crate::exit::ExitCode;
use crate::run::{Interrupt, InterruptSource};
use crate::schedule::{next_firing, parse};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Stops a schedule: no new run, the running ones interrupted.
#[derive(Clone, Default)]
pub struct ScheduleControl {
    stop: Arc<AtomicBool>,
    running: Arc<Mutex<Vec<Interrupt>>>,
}

impl ScheduleControl {
    /// Stop: start nothing more, interrupt every running run.
    pub fn shutdown(&self, reason: &str) {
        self.stop.store(true, Ordering::SeqCst);
        for i in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            i.trigger_from(InterruptSource::Signal, reason.to_string());
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A schedule to run.
pub struct ScheduleRequest {
    /// The schedule file.
    pub file: PathBuf,
    /// Every choice shared by the runs (kill switch, store, record…).
    pub template: RunRequest,
    /// The journals' directory: `<entry name>-<run id>.json` each.
    pub journal_dir: PathBuf,
    pub control: ScheduleControl,
}

/// Run the schedule until it is shut down; exit 3 when the file is wrong, else 0.
pub async fn run_schedule(
    req: ScheduleRequest,
    console: impl Fn(&str) -> Arc<dyn Narrator> + 'static,
) -> ExitCode {
    let out = console("schedule");
    let text = match std::fs::read_to_string(&req.file) {
        Ok(t) => t,
        Err(e) => {
            out.line(
                Level::Error,
                "input.invalid",
                &format!("{}: {e}", req.file.display()),
            );
            return ExitCode::InvalidInput;
        }
    };
    let schedule = match parse(&text) {
        Ok(s) => Arc::new(s),
        Err(problems) => {
            for p in problems {
                out.line(
                    Level::Error,
                    "input.invalid",
                    &format!("{}: {p}", req.file.display()),
                );
            }
            return ExitCode::InvalidInput;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&req.journal_dir) {
        out.line(
            Level::Error,
            "input.invalid",
            &format!("--journal-dir: {e}"),
        );
        return ExitCode::InvalidInput;
    }
    let console = Arc::new(console);
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let busy: Vec<Arc<AtomicBool>> = schedule
                .entries
                .iter()
                .map(|_| Arc::new(AtomicBool::new(false)))
                .collect();
            let mut next: Vec<_> = schedule
                .entries
                .iter()
                .map(|e| next_firing(e, chrono::Utc::now()))
                .collect();
            let mut handles = Vec::new();
            out.line(
                Level::Info,
                "schedule.start",
                &format!(
                    "Scheduling {} experiment(s) from {}",
                    schedule.entries.len(),
                    req.file.display()
                ),
            );
            while !req.control.stopped() {
                let now = chrono::Utc::now();
                for (i, e) in schedule.entries.iter().enumerate() {
                    let Some(at) = next[i] else { continue };
                    if at > now {
                        continue;
                    }
                    next[i] = next_firing(e, now);
                    if !schedule.in_window(e, at) {
                        out.line(
                            Level::Info,
                            "schedule.outside_window",
                            &format!("{}: firing at {at} is outside its windows: not run", e.name),
                        );
                        continue;
                    }
                    if busy[i].swap(true, Ordering::SeqCst) {
                        out.line(
                            Level::Warning,
                            "schedule.overlap",
                            &format!(
                                "{}: firing at {at} skipped: its previous run is still running",
                                e.name
                            ),
                        );
                        continue;
                    }
                    let run_id = new_run_id();
                    let interrupt = Interrupt::new();
                    req.control
                        .running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(interrupt.clone());
                    let safe: String = e
                        .name
                        .chars()
                        .map(|c| {
                            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                                c
                            } else {
                                '_'
                            }
                        })
                        .collect();
                    let mut one = RunRequest {
                        run_id: run_id.clone(),
                        experiment: e.experiment.clone(),
                        journal_path: req.journal_dir.join(format!("{safe}-{run_id}.json")),
                        interrupt: interrupt.clone(),
                        ..req.template.clone()
                    };
                    one.labels.extend(e.labels.iter().cloned());
                    one.vars.extend(e.vars.iter().cloned());
                    if let Some(s) = &e.settings {
                        one.settings = Some(PathBuf::from(s));
                    }
                    out.line(
                        Level::Info,
                        "schedule.fire",
                        &format!("{}: firing at {at}: run {run_id}", e.name),
                    );
                    let narrator = console(&run_id);
                    let flag = busy[i].clone();
                    let running = req.control.running.clone();
                    let name = e.name.clone();
                    let out2 = out.clone();
                    handles.push(tokio::task::spawn_local(async move {
                        let end = run(one, narrator).await;
                        out2.line(
                            Level::Info,
                            "schedule.done",
                            &format!(
                                "{name}: run {run_id} ended with exit code {}",
                                end.code.code()
                            ),
                        );
                        running
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .retain(|x| !x.same(&interrupt));
                        flag.store(false, Ordering::SeqCst);
                    }));
                }
                handles.retain(|h: &tokio::task::JoinHandle<()>| !h.is_finished());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            out.line(
                Level::Info,
                "schedule.stop",
                &format!(
                    "Stopping: no new run; waiting for {} running run(s)",
                    handles.len()
                ),
            );
            for h in handles {
                let _ = h.await;
            }
        })
        .await;
    ExitCode::Success
}
