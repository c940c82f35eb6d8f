//! The run history's commands: `runs list|show|flush|scores|stats` and `correlate`.
//! Flags arrive as text; every one is checked here and named when wrong (exit 3,
//! nothing read); the store's failures are the store's (exit 2). Rendering (table or
//! JSON) is here too, so the CLI only prints.

use super::slo::{open, SloError, StoreRequest};
use crate::slo::Labels;
use crate::store::runs::{parse_duration, parse_time, Overlap, RunFilter, RunSummary};
use crate::store::scores::{self, Score, Stats};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// `--label k=v` (repeatable, or comma-separated) as labels.
pub fn labels(given: &[String]) -> Result<Labels, SloError> {
    let mut out = Labels::new();
    for part in given {
        for kv in part.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = crate::experiment::labels::parse_label(kv)
                .map_err(|e| SloError::Invalid(vec![format!("--label: {e}")]))?;
            out.insert(k, v);
        }
    }
    Ok(out)
}

fn invalid(e: String) -> SloError {
    SloError::Invalid(vec![e])
}

/// `--since 30d` or a time: the start of what is listed.
fn since(text: Option<&str>, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, SloError> {
    text.map(|t| parse_time(t, now).map_err(|e| invalid(format!("--since: {e}"))))
        .transpose()
}

/// `faultline runs list`.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// The store.
    pub store: StoreRequest,
    /// `--since` (a time or a duration ago).
    pub since: Option<String>,
    /// `--until`.
    pub until: Option<String>,
    /// `--status`.
    pub status: Option<String>,
    /// `--label`.
    pub labels: Vec<String>,
    /// `--experiment REF`.
    pub experiment: Option<String>,
    /// `--limit` (0: all).
    pub limit: usize,
}

/// The runs a list request selects, newest first.
pub async fn list(req: &ListRequest) -> Result<Vec<RunSummary>, SloError> {
    let now = Utc::now();
    let filter = RunFilter {
        since: since(req.since.as_deref(), now)?,
        until: req
            .until
            .as_deref()
            .map(|t| parse_time(t, now).map_err(|e| invalid(format!("--until: {e}"))))
            .transpose()?,
        status: req.status.clone(),
        labels: labels(&req.labels)?,
        experiment_ref: req.experiment.clone(),
        limit: req.limit,
    };
    filter
        .check()
        .map_err(|e| invalid(format!("--status: {e}")))?;
    let o = open(&req.store).await?;
    let r = o.store.runs(&o.org, &filter).await.map_err(|e| o.fail(e));
    o.store.close().await;
    r
}

/// One run by id; an unknown id is bad input (exit 3).
pub async fn show(store: &StoreRequest, run_id: &str) -> Result<RunSummary, SloError> {
    if run_id.trim().is_empty() {
        return Err(invalid("the run id is empty".into()));
    }
    let o = open(store).await?;
    let r = o.store.run(&o.org, run_id.trim()).await;
    o.store.close().await;
    match r {
        Ok(r) => Ok(r),
        Err(StoreError::NotFound(_)) => Err(invalid(format!(
            "no run {run_id:?} in the run history at {} (organisation {}): `faultline runs list` shows the ids",
            o.name, o.org
        ))),
        Err(e) => Err(o.fail(e)),
    }
}

/// `faultline correlate`.
#[derive(Debug, Clone, Default)]
pub struct CorrelateRequest {
    /// The store.
    pub store: StoreRequest,
    /// `--at` (default now).
    pub at: Option<String>,
    /// `--window` (default 30m): runs that overlapped `[at - window, at]`.
    pub window: Option<String>,
    /// `--label`.
    pub labels: Vec<String>,
    /// `--limit` (0: all).
    pub limit: usize,
}

/// What `correlate` found.
#[derive(Debug, Clone)]
pub struct Correlation {
    /// The window searched.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
    /// The labels required.
    pub labels: Labels,
    /// The runs that overlapped it, newest first.
    pub runs: Vec<RunSummary>,
}

pub use crate::store::runs::DEFAULT_WINDOW;

/// The runs that overlapped an incident: `[at - window, at]`.
pub async fn correlate(req: &CorrelateRequest) -> Result<Correlation, SloError> {
    let now = Utc::now();
    let at = match req.at.as_deref() {
        Some(t) => parse_time(t, now).map_err(|e| invalid(format!("--at: {e}")))?,
        None => now,
    };
    let window = parse_duration("--window", req.window.as_deref().unwrap_or(DEFAULT_WINDOW))
        .map_err(invalid)?;
    let labels = labels(&req.labels)?;
    let from = at
        .checked_sub_signed(window)
        .ok_or_else(|| invalid("--window: reaches before the start of time".into()))?;
    let o = open(&req.store).await?;
    let overlap = Overlap {
        from,
        to: at,
        labels: labels.clone(),
        limit: req.limit,
    };
    let r = o.store.overlapping(&o.org, &overlap).await;
    o.store.close().await;
    Ok(Correlation {
        from,
        to: at,
        labels,
        runs: r.map_err(|e| o.fail(e))?,
    })
}

/// `faultline correlate --alertmanager URL`: the alerts firing now, each with the runs
/// that overlapped the window before it started.
#[derive(Debug, Clone, Default)]
pub struct AlertsRequest {
    /// The store.
    pub store: StoreRequest,
    /// The Alertmanager's base URL.
    pub alertmanager: String,
    /// `--matchers`: Alertmanager filter syntax (`severity="page", service=~"cart|pay"`).
    pub matchers: Option<String>,
    /// `--window`: how far before an alert started a run may have overlapped.
    pub window: Option<String>,
    /// `--match-labels`: the label names a run and an alert must agree on (default:
    /// every name they share; at least one).
    pub match_labels: Vec<String>,
    /// `--label`: runs carrying these labels only.
    pub labels: Vec<String>,
}

/// One firing alert and the runs that may have caused it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AlertRuns {
    /// The alert, as Alertmanager said it.
    pub alert: crate::alerts::Alert,
    /// The window searched: `[starts_at - window, starts_at]`.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
    /// The runs that overlapped it and agree with the alert's labels, newest first.
    pub runs: Vec<RunSummary>,
}

/// Whether a run and an alert agree: on the names given, or on every name they share;
/// at least one name must be compared.
pub fn agree(run: &Labels, alert: &Labels, names: &[String]) -> bool {
    let compared: Vec<&String> = if names.is_empty() {
        run.keys().filter(|k| alert.contains_key(*k)).collect()
    } else {
        names.iter().collect()
    };
    !compared.is_empty()
        && compared
            .iter()
            .all(|k| matches!((run.get(*k), alert.get(*k)), (Some(a), Some(b)) if a == b))
}

/// Walk the alerts firing now and name the runs that overlapped each.
pub async fn correlate_alerts(req: &AlertsRequest) -> Result<Vec<AlertRuns>, SloError> {
    let now = Utc::now();
    let window = parse_duration("--window", req.window.as_deref().unwrap_or(DEFAULT_WINDOW))
        .map_err(invalid)?;
    let labels = labels(&req.labels)?;
    let matchers = match req.matchers.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(m) => {
            crate::alerts::parse_matchers(m).map_err(|e| invalid(format!("--matchers: {e}")))?
        }
        None => Vec::new(),
    };
    for n in &req.match_labels {
        if !crate::slo::model::valid_label_key(n) {
            return Err(invalid(format!(
                "--match-labels: {n:?} is not a label name"
            )));
        }
    }
    crate::alerts::check_url(&req.alertmanager)
        .map_err(|e| invalid(format!("--alertmanager: {e}")))?;
    // The store first: a bad store is said before the Alertmanager is asked.
    let o = open(&req.store).await?;
    let alerts = match crate::alerts::firing(&req.alertmanager, &matchers).await {
        Ok(a) => a,
        Err(e) => {
            o.store.close().await;
            return Err(SloError::Store {
                store: crate::alerts::shown(&req.alertmanager),
                error: StoreError::Unavailable(e.to_string()),
            });
        }
    };
    let windows: Vec<(DateTime<Utc>, DateTime<Utc>)> = alerts
        .iter()
        .map(|a| {
            let to = a.starts_at.unwrap_or(now).min(now);
            (to.checked_sub_signed(window).unwrap_or(to), to)
        })
        .collect();
    let mut out = Vec::new();
    if let (Some(from), Some(to)) = (
        windows.iter().map(|w| w.0).min(),
        windows.iter().map(|w| w.1).max(),
    ) {
        let overlap = Overlap {
            from,
            to,
            labels: labels.clone(),
            limit: 0,
        };
        let runs = match o.store.overlapping(&o.org, &overlap).await {
            Ok(r) => r,
            Err(e) => {
                o.store.close().await;
                return Err(o.fail(e));
            }
        };
        for (a, (from, to)) in alerts.into_iter().zip(windows) {
            let mine: Vec<RunSummary> = runs
                .iter()
                .filter(|r| r.started <= to && r.ended >= from)
                .filter(|r| agree(&r.labels, &a.labels, &req.match_labels))
                .cloned()
                .collect();
            out.push(AlertRuns {
                alert: a,
                from,
                to,
                runs: mine,
            });
        }
    }
    o.store.close().await;
    // The newest alerts first.
    out.sort_by_key(|a| std::cmp::Reverse(a.to));
    Ok(out)
}

/// The alerts and their runs, for a person.
pub fn alerts_text(found: &[AlertRuns]) -> String {
    if found.is_empty() {
        return "No alert is firing (among those the matchers select).\n".into();
    }
    let mut s = String::new();
    for a in found {
        s.push_str(&format!(
            "ALERT {} {} firing since {}: {}\n",
            a.alert.name,
            labels_text(&a.alert.labels),
            a.alert
                .starts_at
                .map(when)
                .unwrap_or_else(|| "an unknown time".into()),
            match a.runs.len() {
                0 => "no chaos run overlapped the window before it".to_string(),
                n => format!(
                    "{n} chaos run(s) overlapped {} .. {} UTC",
                    when(a.from),
                    when(a.to)
                ),
            }
        ));
        if !a.runs.is_empty() {
            for line in runs_table(&a.runs).lines() {
                s.push_str("  ");
                s.push_str(line);
                s.push('\n');
            }
        }
    }
    s
}

/// `faultline runs scores|stats`: which runs count.
#[derive(Debug, Clone, Default)]
pub struct ProgrammeRequest {
    /// The store.
    pub store: StoreRequest,
    /// `--since` (default: all).
    pub since: Option<String>,
    /// `--label`.
    pub labels: Vec<String>,
    /// `--half-life` of freshness (default 7d).
    pub half_life: Option<String>,
}

async fn programme_runs(req: &ProgrammeRequest) -> Result<Vec<RunSummary>, SloError> {
    let filter = RunFilter {
        since: since(req.since.as_deref(), Utc::now())?,
        labels: labels(&req.labels)?,
        ..RunFilter::default()
    };
    let o = open(&req.store).await?;
    let r = o.store.runs(&o.org, &filter).await.map_err(|e| o.fail(e));
    o.store.close().await;
    r
}

/// Every experiment's scores.
pub async fn scores(req: &ProgrammeRequest) -> Result<Vec<Score>, SloError> {
    let half_life = match req.half_life.as_deref() {
        Some(h) => crate::slo::parse_window(h).map_err(|e| invalid(format!("--half-life: {e}")))?,
        None => scores::HALF_LIFE,
    };
    let runs = programme_runs(req).await?;
    Ok(scores::scores(&runs, Utc::now(), half_life))
}

/// The programme metrics.
pub async fn stats(req: &ProgrammeRequest) -> Result<Stats, SloError> {
    Ok(scores::stats(&programme_runs(req).await?))
}

/// What `runs flush` did.
#[derive(Debug, Clone)]
pub struct FlushReport {
    /// The store.
    pub store: String,
    /// The spool folder of that store.
    pub folder: String,
    /// What happened.
    pub flushed: super::history::Flushed,
}

/// Deliver the spool of the store given.
pub async fn flush(store: &StoreRequest) -> Result<FlushReport, SloError> {
    let env = |k: &str| std::env::var(k).ok();
    let root = super::history::spool_root(&env).ok_or_else(|| {
        invalid("no spool: neither FAULTLINE_SPOOL, XDG_STATE_HOME nor HOME is set".into())
    })?;
    let o = open(store).await?;
    let spec = crate::store::StoreSpec::parse(store.store.as_deref(), store.token.clone(), &env)
        .map_err(|e| invalid(e.to_string()))?;
    let dir = super::history::spool_dir(&root, &spec, &o.org);
    let flushed = super::history::flush(&o.store, &o.org, &dir, 0).await;
    o.store.close().await;
    if let Some(e) = &flushed.error {
        if flushed.delivered == 0 {
            return Err(o.fail(StoreError::Unavailable(e.clone())));
        }
    }
    Ok(FlushReport {
        store: o.name,
        folder: dir.display().to_string(),
        flushed,
    })
}

/// A duration as a person reads it: `850ms`, `12.3s`, `4m05s`, `1h02m`, `3d04h`.
pub fn human(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds().max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms}ms"),
        0..=59 => format!("{:.1}s", ms as f64 / 1000.0),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn labels_text(l: &Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Columns aligned, two spaces apart; the last column is never padded.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i + 1 == n {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn status_text(r: &RunSummary) -> String {
    if r.deviated {
        format!("{} (deviated)", r.status)
    } else {
        r.status.clone()
    }
}

/// The list as a table, newest first.
pub fn runs_table(runs: &[RunSummary]) -> String {
    if runs.is_empty() {
        return "No runs recorded match.\n".into();
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                when(r.started),
                human(r.duration()),
                status_text(r),
                r.title.clone(),
                labels_text(&r.labels),
                r.run_id.clone(),
                r.trace_id.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "STARTED (UTC)",
            "DURATION",
            "STATUS",
            "EXPERIMENT",
            "LABELS",
            "RUN ID",
            "TRACE ID",
        ],
        &rows,
    )
}

/// One run, every field, for a person.
pub fn run_text(r: &RunSummary) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| s.push_str(&format!("{k:<15}{v}\n"));
    kv("Run id", r.run_id.clone());
    kv("Experiment", r.title.clone());
    kv("Reference", r.experiment_ref.clone());
    kv("Status", status_text(r));
    kv("Started (UTC)", when(r.started));
    kv("Ended (UTC)", when(r.ended));
    kv("Duration", human(r.duration()));
    kv("Labels", labels_text(&r.labels));
    kv("Tags", r.tags.join(", "));
    kv("Trace id", r.trace_id.clone().unwrap_or_else(|| "-".into()));
    kv("Journal", r.journal.clone().unwrap_or_else(|| "-".into()));
    kv("Host", r.host.clone().unwrap_or_else(|| "-".into()));
    s.push_str(&format!("Alerts seen    {}\n", r.alerts.len()));
    for a in &r.alerts {
        let name = a.get("name").and_then(Value::as_str).unwrap_or("?");
        let labels = a.get("labels").map(Value::to_string).unwrap_or_default();
        let since = a.get("starts_at").and_then(Value::as_str).unwrap_or("");
        s.push_str(&format!("  - {name} {labels} since {since}\n"));
    }
    s.push_str(&format!("SLO verdicts   {}\n", r.slo.len()));
    for v in &r.slo {
        let text = |k: &str| v.get(k).map(|x| x.to_string()).unwrap_or_default();
        s.push_str(&format!(
            "  - {} {}: {}{}\n",
            v.get("activity").and_then(Value::as_str).unwrap_or("?"),
            text("objective"),
            v.get("verdict").and_then(Value::as_str).unwrap_or("?"),
            v.get("budget_consumed_by_run")
                .and_then(Value::as_f64)
                .map(|b| format!(", budget consumed by the run {:.2} %", b * 100.0))
                .unwrap_or_default()
        ));
    }
    s
}

/// The correlation for a person.
pub fn correlation_text(c: &Correlation) -> String {
    let mut s = format!(
        "Runs that overlapped {} .. {} UTC{}:\n",
        when(c.from),
        when(c.to),
        if c.labels.is_empty() {
            String::new()
        } else {
            format!(" with {}", labels_text(&c.labels))
        }
    );
    if c.runs.is_empty() {
        s.push_str("none: no recorded chaos run overlapped this window.\n");
        return s;
    }
    s.push_str(&runs_table(&c.runs));
    s
}

/// The correlation as JSON.
pub fn correlation_json(c: &Correlation) -> Value {
    json!({"from": c.from, "to": c.to, "labels": c.labels, "runs": c.runs})
}

/// Scores for a person.
pub fn scores_table(s: &[Score]) -> String {
    if s.is_empty() {
        return "No runs recorded match.\n".into();
    }
    let rows: Vec<Vec<String>> = s
        .iter()
        .map(|x| {
            vec![
                x.grade.to_string(),
                x.freshness.to_string(),
                format!("{:.0} %", x.held * 100.0),
                when(x.last_run),
                x.title.clone(),
                labels_text(&x.labels),
                x.trend
                    .iter()
                    .map(|t| match t.as_str() {
                        "completed" => '+',
                        "deviated" => 'x',
                        "interrupted" => '~',
                        _ => '!',
                    })
                    .collect(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "GRADE",
            "FRESHNESS",
            "HELD",
            "LAST RUN (UTC)",
            "EXPERIMENT",
            "LABELS",
            "TREND (old→new)",
        ],
        &rows,
    );
    out.push_str("Trend: + held, x deviated, ~ interrupted, ! failed or aborted.\n");
    out
}

/// Programme metrics for a person.
pub fn stats_text(s: &Stats) -> String {
    let secs = |v: Option<f64>| {
        v.map(|x| human(chrono::Duration::milliseconds((x * 1000.0) as i64)))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = format!(
        "Runs {}, experiments {}, findings (deviated runs) {}, findings per experiment {:.2}\n",
        s.runs, s.experiments, s.findings, s.findings_per_experiment
    );
    out.push_str(&format!(
        "Time to remediation: {} fixed (mean {}, median {}, longest {}), {} open\n\n",
        s.remediation.fixed,
        secs(s.remediation.mean_s),
        secs(s.remediation.median_s),
        secs(s.remediation.max_s),
        s.remediation.open
    ));
    let rows: Vec<Vec<String>> = s
        .months
        .iter()
        .map(|m| {
            vec![
                m.month.clone(),
                m.experiments.to_string(),
                m.runs.to_string(),
                m.findings.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["MONTH", "EXPERIMENTS", "RUNS", "FINDINGS"], &rows));
    out.push('\n');
    let rows: Vec<Vec<String>> = s
        .per_experiment
        .iter()
        .map(|e| {
            vec![
                e.title.clone(),
                e.runs.to_string(),
                e.findings.to_string(),
                e.remediations_s.len().to_string(),
                e.open_since
                    .map(|t| format!("open since {}", when(t)))
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    out.push_str(&table(
        &["EXPERIMENT", "RUNS", "FINDINGS", "FIXED", "OPEN"],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        let d = chrono::Duration::milliseconds;
        assert_eq!(human(d(850)), "850ms");
        assert_eq!(human(d(12_340)), "12.3s");
        assert_eq!(human(d(245_000)), "4m05s");
        assert_eq!(human(d(3_720_000)), "1h02m");
        assert_eq!(human(d(273_600_000)), "3d04h");
    }

    #[test]
    fn runs_and_alerts_agree_on_shared_labels() {
        let l = |p: &[(&str, &str)]| -> Labels {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let run = l(&[("service", "cart"), ("env", "prod")]);
        let alert = l(&[
            ("alertname", "High"),
            ("service", "cart"),
            ("severity", "page"),
        ]);
        assert!(agree(&run, &alert, &[]));
        assert!(!agree(&run, &l(&[("service", "pay")]), &[]));
        assert!(
            !agree(&run, &l(&[("alertname", "x")]), &[]),
            "nothing shared"
        );
        assert!(!agree(&l(&[]), &alert, &[]));
        assert!(agree(&run, &alert, &["service".into()]));
        assert!(
            !agree(&run, &alert, &["env".into()]),
            "the alert has no env"
        );
    }

    #[test]
    fn tables_align_and_labels_are_checked() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
        assert!(labels(&["service".into()]).is_err());
        assert_eq!(labels(&["a=1,b=2".into(), "c=3".into()]).unwrap().len(), 3);
    }
}
