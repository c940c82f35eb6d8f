//! `faultline schedule FILE`: each experiment of the schedule run on time through
//! [`super::run`], never two runs of the same entry at once, only inside its windows;
//! the kill switch refuses runs as for `faultline run`. A shutdown (SIGTERM) starts no
//! new run and interrupts the running ones (rollbacks play, journals are written); an
//! abandon (a second signal) kills what they run at once.

use super::{new_run_id, run, Narrator, Processes, RunRequest};
use crate::event::Level;
use crate::exit::ExitCode;
use crate::run::{Interrupt, InterruptSource};
use crate::schedule::{jitter_delay, next_firing, parse_in, Schedule};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Stops a schedule: no new run, the running ones interrupted.
#[derive(Clone, Default)]
pub struct ScheduleControl {
    stop: Arc<AtomicBool>,
    /// Each running run's interrupt and child processes.
    running: Arc<Mutex<Vec<(Interrupt, Processes)>>>,
}

impl ScheduleControl {
    /// Stop: start nothing more, interrupt every running run.
    pub fn shutdown(&self, reason: &str) {
        self.stop.store(true, Ordering::SeqCst);
        for (i, _) in self.lock().iter() {
            i.trigger_from(InterruptSource::Signal, reason.to_string());
        }
    }

    /// Give every running run up at once (a second signal, before exiting): start
    /// nothing more, kill each run's activities (daemonised descendants included) and
    /// remove the temporary files of journals being written. No rollback, no journal.
    pub fn abandon(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for (_, p) in self.lock().iter() {
            super::abandon(p);
        }
        crate::run::journal::remove_temporaries();
    }

    /// How many runs are running.
    pub fn running(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Interrupt, Processes)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
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

/// Read, parse and check a schedule file: every problem, each with the file's name
/// and its path in the file. Relative paths in it (experiments, settings, var files)
/// are resolved against the file's directory here, and those files must exist.
pub fn load(file: &Path) -> Result<Schedule, Vec<String>> {
    let text =
        std::fs::read_to_string(file).map_err(|e| vec![format!("{}: {e}", file.display())])?;
    let base = file.parent().unwrap_or(Path::new(""));
    let resolve = |s: &str| {
        let full = base.join(s);
        if full.exists() {
            Ok(full.to_string_lossy().into_owned())
        } else {
            Err(format!("{}: no such file", full.display()))
        }
    };
    parse_in(&text, &resolve).map_err(|p| {
        p.into_iter()
            .map(|p| format!("{}: {p}", file.display()))
            .collect()
    })
}

/// Run the schedule until it is shut down; exit 3 when the file is wrong (every
/// problem said, nothing run), else 0.
pub async fn run_schedule(
    req: ScheduleRequest,
    console: impl Fn(&str) -> Arc<dyn Narrator> + 'static,
) -> ExitCode {
    let out = console("schedule");
    // The file's problems, then the flags': every one said, nothing run.
    let (schedule, mut problems) = match load(&req.file) {
        Ok(s) => (Some(Arc::new(s)), Vec::new()),
        Err(p) => (None, p),
    };
    problems.extend(
        req.template
            .labels
            .iter()
            .filter_map(|l| crate::experiment::labels::parse_label(l).err())
            .map(|e| format!("--label: {e}")),
    );
    let schedule = match schedule {
        Some(s) if problems.is_empty() => s,
        _ => {
            for p in problems {
                out.line(Level::Error, "input.invalid", &p);
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
                            "schedule.skipped",
                            &format!("{}: firing at {at} is outside its windows: not run", e.name),
                        );
                        continue;
                    }
                    if busy[i].swap(true, Ordering::SeqCst) {
                        out.line(
                            Level::Warning,
                            "schedule.skipped",
                            &format!(
                                "{}: firing at {at} skipped: its previous run is still running",
                                e.name
                            ),
                        );
                        continue;
                    }
                    let run_id = new_run_id();
                    let interrupt = Interrupt::new();
                    // Each run its own child processes, so that an abandon kills them all.
                    let processes = Processes::new();
                    req.control
                        .lock()
                        .push((interrupt.clone(), processes.clone()));
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
                        processes,
                        ..req.template.clone()
                    };
                    one.labels.extend(e.labels.iter().cloned());
                    one.vars.extend(e.vars.iter().cloned());
                    one.var_files.extend(e.var_files.iter().map(PathBuf::from));
                    if let Some(s) = schedule.settings(e) {
                        one.settings = Some(PathBuf::from(s));
                    }
                    if e.rollback_strategy.is_some() {
                        one.rollback_strategy = e.rollback_strategy;
                    }
                    if e.hypothesis_strategy.is_some() {
                        one.hypothesis_strategy = e.hypothesis_strategy;
                    }
                    let delay = e
                        .jitter
                        .map(|j| jitter_delay(j, uuid::Uuid::new_v4().as_u128()));
                    out.line(
                        Level::Info,
                        "schedule.fire",
                        &match delay {
                            Some(d) => format!(
                                "{}: firing at {at}: run {run_id}, starting in {:.1} s (jitter)",
                                e.name,
                                d.as_secs_f64()
                            ),
                            None => format!("{}: firing at {at}: run {run_id}", e.name),
                        },
                    );
                    let narrator = console(&run_id);
                    let flag = busy[i].clone();
                    let control = req.control.clone();
                    let name = e.name.clone();
                    let out2 = out.clone();
                    handles.push(tokio::task::spawn_local(async move {
                        // The jitter: the entry stays busy; a shutdown ends the wait
                        // (its interrupt is triggered) and the run never starts.
                        if let Some(d) = delay {
                            let until = tokio::time::Instant::now() + d;
                            while !interrupt.is_set() && tokio::time::Instant::now() < until {
                                let left = until - tokio::time::Instant::now();
                                tokio::time::sleep(left.min(Duration::from_millis(50))).await;
                            }
                        }
                        if delay.is_some() && interrupt.is_set() {
                            out2.line(
                                Level::Info,
                                "schedule.skipped",
                                &format!(
                                    "{name}: run {run_id} not started: stopped during its jitter"
                                ),
                            );
                        } else {
                            let end = run(one, narrator).await;
                            out2.line(
                                Level::Info,
                                "schedule.done",
                                &format!(
                                    "{name}: run {run_id} ended with exit code {}",
                                    end.code.code()
                                ),
                            );
                        }
                        control.lock().retain(|(x, _)| !x.same(&interrupt));
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
