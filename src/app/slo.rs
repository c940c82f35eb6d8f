//! The guide's commands, assembled: `slo sync`, `slo report`, `slo delete` and
//! `indicator push` as requests the CLI fills from its flags. Here input is read and
//! checked in full (every problem, naming the file, the document and the field) before
//! the store is opened, so bad input never touches what is stored; then the store
//! named by `--store` (an SQLite file or a `faultline serve`) does the work. Nothing is
//! printed: outcomes are values, the CLI decides what to show and the exit code.

pub use crate::slo::report::watch_banner;
use crate::slo::report::{table, ReportEntry};
use crate::slo::{parse_indicator, parse_objectives, status, Sample, SloStatus};
use crate::store::{
    parse_selector, IndicatorRecord, ObjectiveRecord, Origin, ReportLine, Store, StoreError,
    StoreSpec,
};
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::PathBuf;

/// Which store, as the shared flags give it (`--store`, `--token`, `--org`).
#[derive(Debug, Clone, Default)]
pub struct StoreRequest {
    /// `--store` / `FAULTLINE_STORE`: a path or an `http(s)://` URL (`None`: the
    /// default file).
    pub store: Option<String>,
    /// `--token` / `FAULTLINE_TOKEN`, for a remote store.
    pub token: Option<String>,
    /// `--org` / `FAULTLINE_ORG`.
    pub org: String,
}

/// Why a command did nothing (or stopped).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SloError {
    /// The input is wrong: every problem, each naming where (nothing was stored).
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The store refused or could not do it.
    #[error("{}", store_message(store, error))]
    Store {
        /// The store, as named to the user (never a token).
        store: String,
        /// What went wrong.
        error: StoreError,
    },
}

/// The store's error, naming the store once (a remote store's errors already do).
fn store_message(store: &str, error: &StoreError) -> String {
    let text = error.to_string();
    if text.contains(store.trim_end_matches('/')) {
        text
    } else {
        format!("{store}: {text}")
    }
}

impl SloError {
    /// The exit code this error means (`crate::exit` decides).
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            SloError::Invalid(_) => crate::exit::ExitCode::InvalidInput,
            SloError::Store { error, .. } => crate::exit::ExitCode::for_store(error),
        }
    }
}

/// An open store and how it is named.
pub(super) struct Opened {
    pub(super) store: Store,
    pub(super) name: String,
    pub(super) org: String,
}

impl Opened {
    pub(super) fn fail(&self, error: StoreError) -> SloError {
        SloError::Store {
            store: self.name.clone(),
            error,
        }
    }
}

pub(super) async fn open(req: &StoreRequest) -> Result<Opened, SloError> {
    let spec = StoreSpec::parse(req.store.as_deref(), req.token.clone(), &|k| {
        std::env::var(k).ok()
    })
    .map_err(|e| SloError::Invalid(vec![e.to_string()]))?;
    let org = crate::store::org_name(&req.org)
        .map_err(|e| SloError::Invalid(vec![format!("--org: {e}")]))?;
    let name = spec.describe();
    // An embedded or PostgreSQL store forwards what it commits to Prometheus remote
    // write when asked (a remote store forwards on the server's side).
    let remote_write = std::env::var("FAULTLINE_REMOTE_WRITE")
        .ok()
        .filter(|u| !u.trim().is_empty() && !matches!(spec, StoreSpec::Remote { .. }));
    let store = Store::open_with(&spec, remote_write.as_deref())
        .await
        .map_err(|error| SloError::Store {
            store: name.clone(),
            error,
        })?;
    Ok(Opened { store, name, org })
}

/// `--selector k=v …` as labels; a bad one is invalid input.
fn selector(parts: &[String]) -> Result<crate::slo::Labels, SloError> {
    parse_selector(parts.iter().map(String::as_str))
        .map_err(|e| SloError::Invalid(vec![format!("--selector: {e}")]))
}

/// Where objective documents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// Text already read (standard input), with the name to show.
    Text {
        /// How problems name it (`<stdin>`).
        name: String,
        /// The documents.
        text: String,
    },
}

/// `faultline slo sync`.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The store.
    pub store: StoreRequest,
    /// The objective files, in order.
    pub sources: Vec<Source>,
}

/// One objective stored by `sync`.
#[derive(Debug, Clone, Serialize)]
pub struct Synced {
    /// What is stored now.
    pub objective: ObjectiveRecord,
    /// New (`true`) or replacing one with the same labels.
    pub created: bool,
}

/// Read and check every document of every source, then store them all: one bad
/// document anywhere and nothing is stored.
pub async fn sync(req: &SyncRequest) -> Result<Vec<Synced>, SloError> {
    let mut objectives = Vec::new();
    let mut problems = Vec::new();
    for source in &req.sources {
        let (name, text) = match source {
            Source::File(p) => match std::fs::read_to_string(p) {
                Ok(t) => (p.display().to_string(), t),
                Err(e) => {
                    problems.push(format!("{}: cannot read it: {e}", p.display()));
                    continue;
                }
            },
            Source::Text { name, text } => (name.clone(), text.clone()),
        };
        match parse_objectives(&text) {
            Ok(os) => objectives.extend(os),
            Err(ps) => problems.extend(ps.into_iter().map(|p| {
                // Every problem names its document, even in a one-document file.
                let path = if p.path.starts_with("document ") {
                    p.path
                } else {
                    format!("document 1: {}", p.path)
                };
                format!("{name}: {path}: {}", p.message)
            })),
        }
    }
    if !problems.is_empty() {
        return Err(SloError::Invalid(problems));
    }
    let s = open(&req.store).await?;
    let mut out = Vec::new();
    for o in &objectives {
        let (objective, created) = s
            .store
            .put_objective(&s.org, o)
            .await
            .map_err(|e| s.fail(e))?;
        out.push(Synced { objective, created });
    }
    s.store.close().await;
    Ok(out)
}

/// `faultline slo report`.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// The store.
    pub store: StoreRequest,
    /// `--selector k=v …` (none: every objective).
    pub selector: Vec<String>,
    /// Results per objective.
    pub limit: usize,
}

/// One objective of the report, with its status over its own window ending now.
#[derive(Debug, Clone, Serialize)]
pub struct ReportItem {
    /// The objective and its newest results, newest first.
    #[serde(flatten)]
    pub line: ReportLine,
    /// Its status over its window.
    pub status: SloStatus,
}

/// What `slo report` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Report {
    /// One item per objective.
    pub items: Vec<ReportItem>,
}

impl Report {
    /// The guide's table.
    pub fn table(&self, color: bool) -> String {
        let entries: Vec<ReportEntry> = self
            .items
            .iter()
            .map(|i| {
                let o = &i.line.objective;
                ReportEntry {
                    labels: o.labels.clone(),
                    indicator_selector: o.indicator_selector.clone(),
                    objective_percent: o.objective_percent,
                    window: o.objective().window_length,
                    results: i.line.results.iter().map(|r| r.result.clone()).collect(),
                }
            })
            .collect();
        table(&entries, color)
    }

    /// The JSON form: each objective, its results and its status.
    pub fn json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A checked report request, ready to be fetched again and again (`-w`).
pub struct ReportSource {
    opened: Opened,
    selector: crate::slo::Labels,
    limit: usize,
}

/// Check the request and open the store once; [`ReportSource::fetch`] then reads a
/// frame.
pub async fn report_source(req: &ReportRequest) -> Result<ReportSource, SloError> {
    let selector = selector(&req.selector)?;
    if req.limit == 0 {
        return Err(SloError::Invalid(
            vec!["--limit: must be at least 1".into()],
        ));
    }
    let opened = open(&req.store).await?;
    Ok(ReportSource {
        opened,
        selector,
        limit: req.limit,
    })
}

impl ReportSource {
    /// The report now.
    pub async fn fetch(&self) -> Result<Report, SloError> {
        let s = &self.opened;
        let lines = s
            .store
            .report(&s.org, &self.selector, self.limit)
            .await
            .map_err(|e| s.fail(e))?;
        let now = Utc::now();
        let mut items = Vec::with_capacity(lines.len());
        for line in lines {
            let o = &line.objective;
            let window = o.objective().window_length;
            let from = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
            let in_window = s
                .store
                .window_results(&s.org, &o.id, from, now)
                .await
                .map_err(|e| s.fail(e))?;
            let samples: Vec<Sample> = in_window
                .iter()
                .map(|r| Sample {
                    percent: r.result.actual_percent,
                    counts: r.good.zip(r.total),
                })
                .collect();
            let status = status(o.objective_percent, &samples, from, now);
            items.push(ReportItem { line, status });
        }
        Ok(Report { items })
    }

    /// Close the store.
    pub async fn close(&self) {
        self.opened.store.close().await;
    }
}

/// `faultline slo delete`.
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    /// The store.
    pub store: StoreRequest,
    /// `--selector k=v …`: required.
    pub selector: Vec<String>,
}

/// Delete the objectives the selector selects (with their results); how many.
pub async fn delete(req: &DeleteRequest) -> Result<usize, SloError> {
    let sel = selector(&req.selector)?;
    if sel.is_empty() {
        return Err(SloError::Invalid(vec![
            "--selector: give at least one k=v: refusing to delete every objective".into(),
        ]));
    }
    let s = open(&req.store).await?;
    let n = s
        .store
        .delete_objectives(&s.org, &sel)
        .await
        .map_err(|e| s.fail(e))?;
    s.store.close().await;
    Ok(n)
}

/// What an indicator says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IndicatorValue {
    /// A percent of good events (`--good` is 100, `--bad` 0).
    Percent(f64),
    /// Good and total event counts.
    Counts {
        /// Good events.
        good: u64,
        /// All events.
        total: u64,
    },
}

/// `faultline indicator push`.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The store.
    pub store: StoreRequest,
    /// `--selector k=v …`: the indicator's labels.
    pub selector: Vec<String>,
    /// Its value.
    pub value: IndicatorValue,
    /// `--from` as typed (RFC 3339; `None`: now).
    pub from: Option<String>,
    /// `--to` as typed (RFC 3339; `None`: now).
    pub to: Option<String>,
}

/// The flag each indicator field comes from, so a problem names what was typed.
const FLAGS: &[(&str, &str)] = &[
    ("metadata.labels", "--selector"),
    ("spec.percent", "--percent"),
    ("spec.good", "--good-count"),
    ("spec.total", "--total-count"),
    ("spec.from", "--from"),
    ("spec.to", "--to"),
];

/// Check the indicator as the store's API would (every problem, naming the flag and
/// the field), then store it; the stored record says how many objectives judged it.
pub async fn push_indicator(req: &PushRequest) -> Result<IndicatorRecord, SloError> {
    let labels = selector(&req.selector)?;
    let now = crate::timefmt::now_iso();
    let mut spec = json!({
        "from": req.from.clone().unwrap_or_else(|| now.clone()),
        "to": req.to.clone().unwrap_or(now),
    });
    match req.value {
        IndicatorValue::Percent(p) => {
            // NaN and infinities are no JSON numbers: say what was typed.
            spec["percent"] = serde_json::Number::from_f64(p)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(p.to_string()));
        }
        IndicatorValue::Counts { good, total } => {
            spec["good"] = json!(good);
            spec["total"] = json!(total);
        }
    }
    let doc = json!({"metadata": {"labels": labels}, "spec": spec});
    let indicator = parse_indicator(&doc).map_err(|ps| {
        SloError::Invalid(
            ps.into_iter()
                .map(|p| {
                    let flag = FLAGS
                        .iter()
                        .find(|(f, _)| p.path == *f || p.path.starts_with(&format!("{f}.")))
                        .map_or(String::new(), |(_, flag)| format!("{flag} "));
                    format!("{flag}({}): {}", p.path, p.message)
                })
                .collect(),
        )
    })?;
    let s = open(&req.store).await?;
    let record = s
        .store
        .put_indicator(&s.org, &indicator, &Origin::default())
        .await
        .map_err(|e| s.fail(e))?;
    s.store.close().await;
    Ok(record)
}
