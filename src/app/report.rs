//! `faultline report`: the journals named (files, directories, `-` for standard
//! input) and the runs the history selects (`--since`, `--label`), read and rendered
//! by [`crate::report`].
//!
//! A journal named on the command line that cannot be read or is not a journal is bad
//! input (exit 3, every one named, nothing written). A file in a named directory that
//! is not a journal (the OTLP file beside it, say) is left out quietly; a recorded
//! run whose journal is gone or unreadable is shown under "Not shown" with why, and
//! told on the console. A store that fails is the store's failure (exit 2).

use super::runs::{self, ListRequest};
use super::slo::{SloError, StoreRequest};
use crate::report::{Input, Report};
use crate::run::record::{RunEntry, RunRecord};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// `faultline report`.
#[derive(Debug, Clone, Default)]
pub struct ReportRequest {
    /// Journals: files, directories (their `*.json`), `-` for standard input.
    pub journals: Vec<String>,
    /// The store of the run history.
    pub store: StoreRequest,
    /// `--since`: recorded runs started since (a time or a duration ago).
    pub since: Option<String>,
    /// `--until`.
    pub until: Option<String>,
    /// `--label k=v`: recorded runs with these target labels.
    pub labels: Vec<String>,
    /// At most this many recorded runs (0: all), newest kept.
    pub limit: usize,
    /// `--trace-url` / `FAULTLINE_TRACE_URL`.
    pub trace_url: Option<String>,
    /// `--settings` (for `tracing.trace_url`).
    pub settings: Option<PathBuf>,
    /// Standard input's text, when a journal is `-` (read by the caller).
    pub stdin: Option<String>,
}

impl ReportRequest {
    /// Whether the run history is asked for.
    pub fn from_store(&self) -> bool {
        self.since.is_some() || self.until.is_some() || !self.labels.is_empty()
    }
}

fn invalid(problems: Vec<String>) -> SloError {
    SloError::Invalid(problems)
}

/// Reads a journal's text as a record; the error names what is wrong. A Chaos
/// Toolkit journal may hold items that are not activities in its `run`, `rollbacks`
/// or a hypothesis' `probes` (a control's hook appends to the state it is given, and
/// that state is the journal): they are left out, and said in the report.
fn parse(name: &str, text: &str) -> Result<(RunRecord, Vec<String>), String> {
    let strict = match RunRecord::from_json(text) {
        Ok(r) => return Ok((r, Vec::new())),
        Err(e) => e,
    };
    let refused = || {
        format!("{name}: not a run journal ({strict}); give a journal written by `faultline run` or `chaos run`")
    };
    let mut v: Value = serde_json::from_str(text).map_err(|_| refused())?;
    let mut dropped = 0;
    let mut keep_activities = |list: Option<&mut Value>| {
        if let Some(Value::Array(items)) = list {
            let before = items.len();
            items.retain(|i| serde_json::from_value::<RunEntry>(i.clone()).is_ok());
            dropped += before - items.len();
        }
    };
    keep_activities(v.get_mut("run"));
    keep_activities(v.get_mut("rollbacks"));
    if let Some(ss) = v.get_mut("steady_states") {
        for phase in ["before", "after"] {
            keep_activities(ss.get_mut(phase).and_then(|h| h.get_mut("probes")));
        }
        if let Some(Value::Array(during)) = ss.get_mut("during") {
            for h in during {
                keep_activities(h.get_mut("probes"));
            }
        }
    }
    if dropped == 0 {
        return Err(refused());
    }
    let record: RunRecord = serde_json::from_value(v).map_err(|_| refused())?;
    Ok((
        record,
        vec![format!(
            "{dropped} item(s) of the journal's activity lists are not activities (a control's additions, say) and are left out"
        )],
    ))
}

fn read(path: &Path) -> Result<(RunRecord, Vec<String>), String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read it: {e}"))?;
    parse(&name, &text)
}

/// The trace link template: the flag (or its variable), else the settings'
/// `tracing.trace_url`; checked either way. The problems name the flag or the
/// setting.
pub fn trace_url(
    flag: Option<&str>,
    settings: Option<&Path>,
) -> Result<Option<String>, Vec<String>> {
    if let Some(t) = flag.filter(|t| !t.trim().is_empty()) {
        crate::settings::check_trace_url(t).map_err(|e| vec![format!("--trace-url: {e}")])?;
        return Ok(Some(t.to_string()));
    }
    let settings = crate::settings::load(settings)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(settings.tracing.trace_url)
}

/// Writes a report whole: a temporary file beside it, renamed.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Whether a journal is seen for the first time (a file given twice, or named and
/// also recorded, is shown once).
fn take(path: &Path, seen: &mut HashSet<PathBuf>) -> bool {
    seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
}

/// Reads every journal and recorded run the request names; what could not be shown
/// is in the report's `skipped`.
pub async fn gather(req: &ReportRequest) -> Result<Report, SloError> {
    if req.journals.is_empty() && !req.from_store() {
        return Err(invalid(vec![
            "nothing to report on: give journals (files, directories, - for standard input), or --since/--label to take recorded runs from the run history".into(),
        ]));
    }
    let trace_url =
        trace_url(req.trace_url.as_deref(), req.settings.as_deref()).map_err(invalid)?;
    let mut problems = Vec::new();
    let mut runs: Vec<Input> = Vec::new();
    let mut skipped = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for given in &req.journals {
        if given == "-" {
            match req.stdin.as_deref().map(|t| parse("<stdin>", t)) {
                Some(Ok((record, notes))) => runs.push(Input {
                    source: "<stdin>".into(),
                    record,
                    labels: BTreeMap::new(),
                    notes,
                }),
                Some(Err(e)) => problems.push(e),
                None => problems.push("<stdin>: nothing was read".into()),
            }
            continue;
        }
        let path = Path::new(given);
        if path.is_dir() {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(entries) => entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
                    .collect(),
                Err(e) => {
                    problems.push(format!("{given}: cannot read the directory: {e}"));
                    continue;
                }
            };
            files.sort();
            let before = runs.len();
            for f in files {
                // Not a journal (the OTLP file written beside each journal, other JSON): left out.
                if let Ok((record, notes)) = read(&f) {
                    if take(&f, &mut seen) {
                        runs.push(Input {
                            source: f.display().to_string(),
                            record,
                            labels: BTreeMap::new(),
                            notes,
                        });
                    }
                }
            }
            if runs.len() == before {
                problems.push(format!(
                    "{given}: no run journal (*.json) in this directory"
                ));
            }
            continue;
        }
        match read(path) {
            Ok((record, notes)) => {
                if take(path, &mut seen) {
                    runs.push(Input {
                        source: given.clone(),
                        record,
                        labels: BTreeMap::new(),
                        notes,
                    });
                }
            }
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    if req.from_store() {
        let list = runs::list(&ListRequest {
            store: req.store.clone(),
            since: req.since.clone(),
            until: req.until.clone(),
            status: None,
            labels: req.labels.clone(),
            experiment: None,
            limit: req.limit,
        })
        .await?;
        if list.is_empty() && runs.is_empty() {
            return Err(invalid(vec![format!(
                "no recorded run matches{}{}{}: `faultline runs list` shows what the history holds",
                req.since
                    .as_deref()
                    .map(|s| format!(" --since {s}"))
                    .unwrap_or_default(),
                req.until
                    .as_deref()
                    .map(|s| format!(" --until {s}"))
                    .unwrap_or_default(),
                if req.labels.is_empty() {
                    String::new()
                } else {
                    format!(" --label {}", req.labels.join(" --label "))
                }
            )]));
        }
        for summary in list {
            let what = format!(
                "run {} ({}, started {})",
                summary.run_id,
                summary.title,
                crate::timefmt::iso(summary.started)
            );
            let Some(journal) = summary.journal.as_deref() else {
                skipped.push(format!("{what}: no journal was written"));
                continue;
            };
            let path = Path::new(journal);
            match read(path) {
                Ok((record, notes)) => {
                    if take(path, &mut seen) {
                        runs.push(Input {
                            source: journal.to_string(),
                            record,
                            labels: summary.labels.clone(),
                            notes,
                        });
                    }
                }
                Err(e) => skipped.push(format!("{what}: journal {e}")),
            }
        }
    }
    if runs.is_empty() {
        return Err(invalid(
            std::iter::once("no journal could be read; nothing to report".to_string())
                .chain(skipped)
                .collect(),
        ));
    }
    runs.sort_by_key(|r| r.record.started_at());
    Ok(Report {
        runs,
        trace_url,
        generated: chrono::Utc::now(),
        skipped,
    })
}
