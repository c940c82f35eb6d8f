//! A catalog of experiments run in turn, each through [`super::run`] with its own run
//! id and journal; the JUnit report written at the end.

use super::{new_run_id, run, Narrator, RunRequest};
use crate::catalog::junit::{self, Case, Verdict};
use crate::event::Level;
use crate::exit::ExitCode;
use crate::run::{Interrupt, Status};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A catalog to run.
pub struct CatalogRequest {
    /// Every choice but the experiment, its run id, its journal and its interrupt.
    pub template: RunRequest,
    /// The experiments, expanded (see [`crate::catalog::expand`]).
    pub experiments: Vec<String>,
    /// The journal of a single experiment, or the directory of a catalog's.
    pub journal_path: PathBuf,
    /// Where the JUnit report goes, if anywhere.
    pub junit: Option<PathBuf>,
    /// Where the report of the runs goes (`--report`), if anywhere.
    pub report: Option<ReportTarget>,
    /// The running experiment's interrupt (the signal handler triggers it); once an
    /// interrupt is triggered (signal, kill switch), the catalog stops after its run.
    pub current: Arc<Mutex<Interrupt>>,
}

/// `--report FILE`: the report of the runs just made, as `faultline report` makes it.
#[derive(Debug, Clone)]
pub struct ReportTarget {
    /// The file.
    pub path: PathBuf,
    /// HTML or Markdown.
    pub format: crate::report::Format,
    /// The trace link template, checked.
    pub trace_url: Option<String>,
}

/// Run the catalog; `console` makes each run's narrator from its run id.
pub async fn run_catalog(
    req: CatalogRequest,
    console: impl Fn(&str) -> Arc<dyn Narrator>,
) -> ExitCode {
    let single = req.experiments.len() == 1;
    let names = crate::catalog::journal_names(&req.experiments);
    if !single {
        if let Err(e) = std::fs::create_dir_all(&req.journal_path) {
            console("catalog").line(
                Level::Error,
                "input.invalid",
                &format!(
                    "--journal-path {}: cannot create the journal directory: {e}",
                    req.journal_path.display()
                ),
            );
            return ExitCode::InvalidInput;
        }
    }
    let started = chrono::Utc::now();
    let mut codes = Vec::new();
    let mut cases = Vec::new();
    let mut stopped: Option<String> = None;
    let mut reported: Vec<crate::report::Input> = Vec::new();
    for (i, exp) in req.experiments.iter().enumerate() {
        if let Some(why) = &stopped {
            cases.push(Case {
                name: exp.clone(),
                classname: exp.clone(),
                time: 0.0,
                verdict: Verdict::Skipped {
                    message: format!("the catalog stopped: {why}"),
                },
                system_out: String::new(),
            });
            continue;
        }
        let run_id = new_run_id();
        let journal = if single {
            req.journal_path.clone()
        } else {
            req.journal_path.join(&names[i])
        };
        let interrupt = Interrupt::new();
        *req.current.lock().unwrap_or_else(|e| e.into_inner()) = interrupt.clone();
        let one = RunRequest {
            run_id: run_id.clone(),
            experiment: exp.clone(),
            journal_path: journal.clone(),
            interrupt: interrupt.clone(),
            ..req.template.clone()
        };
        let out = console(&run_id);
        if !single {
            out.line(
                Level::Info,
                "catalog.next",
                &format!("Experiment {} of {}: {exp}", i + 1, req.experiments.len()),
            );
        }
        let clock = std::time::Instant::now();
        let end = run(one, out.clone()).await;
        codes.push(end.code);
        if end.code == ExitCode::KillSwitch {
            stopped = Some("the kill switch is engaged".into());
        } else if let Some(reason) = interrupt.reason() {
            stopped = Some(reason);
        }
        let title = end
            .outcome
            .as_ref()
            .and_then(|o| o.record.experiment.get("title"))
            .and_then(|t| t.as_str())
            .unwrap_or(exp)
            .to_string();
        let verdict = match (&end.outcome, end.code) {
            (Some(o), _) if o.status == Status::Completed && !o.deviated => Verdict::Passed,
            (Some(o), _) if o.status == Status::Completed || o.status == Status::Failed => {
                Verdict::Failure {
                    message: if o.deviated {
                        "the steady state deviated".into()
                    } else {
                        format!("the run {}", o.status.as_str())
                    },
                    text: junit::deviation_evidence(&o.record),
                }
            }
            (Some(o), _) => Verdict::Error {
                message: format!("the run was {}", o.status.as_str()),
                text: junit::deviation_evidence(&o.record),
            },
            (None, ExitCode::KillSwitch) => Verdict::Error {
                message: "refused: the kill switch is engaged".into(),
                text: String::new(),
            },
            (None, _) => Verdict::Error {
                message: "refused: the experiment or its input is invalid (see the log)".into(),
                text: String::new(),
            },
        };
        let trace = end
            .outcome
            .as_ref()
            .and_then(|o| o.trace_id.clone())
            .unwrap_or_else(|| "none".into());
        let journal_text = end
            .journal
            .as_ref()
            .map(|j| j.display().to_string())
            .unwrap_or_else(|| "none".into());
        if let (Some(o), Some(_)) = (&end.outcome, &req.report) {
            reported.push(crate::report::Input {
                source: journal_text.clone(),
                record: o.record.clone(),
                labels: end.labels.clone(),
                notes: Vec::new(),
            });
        }
        cases.push(Case {
            name: title,
            classname: exp.clone(),
            time: clock.elapsed().as_secs_f64(),
            verdict,
            system_out: format!("run id: {run_id}\ntrace id: {trace}\njournal: {journal_text}\n"),
        });
    }
    let mut code = crate::catalog::worst(codes);
    if let Some(target) = &req.report {
        let report = crate::report::Report {
            runs: reported,
            trace_url: target.trace_url.clone(),
            generated: chrono::Utc::now(),
            skipped: Vec::new(),
        };
        let text = crate::report::render(&report, target.format);
        let out = console("catalog");
        match super::report::write(&target.path, &text) {
            Ok(()) => out.line(
                Level::Info,
                "catalog.report",
                &format!(
                    "Report on {} run(s) written to {}",
                    report.runs.len(),
                    target.path.display()
                ),
            ),
            Err(e) => {
                out.line(
                    Level::Error,
                    "catalog.report",
                    &format!(
                        "--report {}: cannot write the report: {e}",
                        target.path.display()
                    ),
                );
                code = crate::catalog::worst([code, ExitCode::Failed]);
            }
        }
    }
    if let Some(path) = &req.junit {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let xml = junit::render(
            "faultline",
            &started.format("%Y-%m-%dT%H:%M:%S").to_string(),
            &host,
            &cases,
        );
        let tmp = path.with_extension("xml.tmp");
        let written = std::fs::write(&tmp, xml).and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            console("catalog").line(
                Level::Error,
                "catalog.junit",
                &format!("--junit {}: cannot write the report: {e}", path.display()),
            );
            return crate::catalog::worst([code, ExitCode::Failed]);
        }
    }
    code
}
