//! The run history, from a run's side: every finished run becomes a
//! [`RunSummary`] recorded in the run's store (the embedded file by default, or the
//! `--store` given). Recording never fails the run: a store that cannot take the record
//! within [`DELIVERY_LIMIT`] has it written to a local spool, one folder per store,
//! delivered first by the next run that records into that store, or by `faultline runs
//! flush`.
//!
//! The spool is `$FAULTLINE_SPOOL`, else `$XDG_STATE_HOME/faultline/spool`, else
//! `~/.local/state/faultline/spool`; each store's folder is named by a hash of the
//! store's description (never its token) and organisation, and holds one JSON file per
//! run (`{"store", "org", "run"}`), written to a temporary name and renamed.

use super::Narrator;
use crate::event::Level;
use crate::run::{Outcome, RunRecord};
use crate::store::runs::RunSummary;
use crate::store::{Store, StoreError, StoreSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a run waits for its store to take its record (and the spool before it).
pub const DELIVERY_LIMIT: Duration = Duration::from_secs(5);
/// At most this many spooled records are delivered by one run (the rest by the next).
const FLUSH_PER_RUN: usize = 200;

/// Event names of the history's lines (`docs/telemetry.md`).
pub mod event {
    /// The run was recorded.
    pub const RECORDED: &str = "history.recorded";
    /// The store could not take it: spooled.
    pub const SPOOLED: &str = "history.spooled";
    /// Neither recorded nor spooled.
    pub const FAILED: &str = "history.failed";
    /// Spooled records were delivered.
    pub const FLUSHED: &str = "history.flushed";
}

/// The run's summary, from its record (secrets already masked there), its target
/// labels and where its journal went.
pub fn summary(
    outcome: &Outcome,
    title: &str,
    labels: &crate::experiment::labels::TargetLabels,
    journal: Option<&Path>,
) -> RunSummary {
    let r = &outcome.record;
    let started = r.started_at().unwrap_or_else(chrono::Utc::now);
    let ended = r.ended_at().unwrap_or(started).max(started);
    RunSummary {
        run_id: r.run_id().unwrap_or_default().to_string(),
        title: title.to_string(),
        experiment_ref: crate::experiment::labels::experiment_ref(&r.experiment),
        tags: crate::experiment::labels::tags(&r.experiment),
        labels: labels.clone(),
        started,
        ended,
        status: outcome.status.as_str().to_string(),
        deviated: outcome.deviated,
        trace_id: outcome.trace_id.clone(),
        journal: journal.map(|p| absolute(p).display().to_string()),
        host: Some(r.node.clone()).filter(|n| !n.is_empty()),
        // What the alerts control contributed to the journal's extension.
        alerts: r
            .faultline()
            .and_then(|f| f.contributed.get("alerts"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        slo: slo_verdicts(r),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The verdicts of the run's SLO probes: every entry whose output judged an
/// objective (the report reads them the same way).
pub fn slo_verdicts(r: &RunRecord) -> Vec<Value> {
    crate::report::model::slo_verdicts(r)
}

/// Where spooled records wait.
pub fn spool_root(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let given = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    if let Some(d) = given("FAULTLINE_SPOOL") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = given("XDG_STATE_HOME") {
        return Some(PathBuf::from(d).join("faultline").join("spool"));
    }
    given("HOME").map(|h| {
        PathBuf::from(h)
            .join(".local")
            .join("state")
            .join("faultline")
            .join("spool")
    })
}

/// The spool folder of one store and organisation.
pub fn spool_dir(root: &Path, spec: &StoreSpec, org: &str) -> PathBuf {
    let key = Sha256::digest(format!("{}\0{org}", spec.describe()).as_bytes());
    let hex: String = key[..8].iter().map(|b| format!("{b:02x}")).collect();
    root.join(hex)
}

/// A spooled record.
#[derive(Debug, Serialize, Deserialize)]
struct Spooled {
    store: String,
    org: String,
    run: RunSummary,
}

/// Write one record to the spool; its path.
fn spool(dir: &Path, spec: &StoreSpec, org: &str, run: &RunSummary) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the spool {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.json", run.run_id));
    let tmp = dir.join(format!(".{}.{}.tmp", run.run_id, std::process::id()));
    let body = serde_json::to_vec_pretty(&Spooled {
        store: spec.describe(),
        org: org.to_string(),
        run: run.clone(),
    })
    .map_err(|e| e.to_string())?;
    std::fs::write(&tmp, body)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })?;
    Ok(path)
}

/// What a flush did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flushed {
    /// Records the store took (and that left the spool).
    pub delivered: usize,
    /// Records still waiting (the store failed, or more than one flush takes).
    pub waiting: usize,
    /// Files that are not records (named, left in place).
    pub unreadable: Vec<String>,
    /// The first delivery error, if any.
    pub error: Option<String>,
}

/// Deliver what waits in `dir` to `store`, oldest first, at most `max` (0: all).
/// Stops at the first store error (the store is down: no use trying the rest).
pub async fn flush(store: &Store, org: &str, dir: &Path, max: usize) -> Flushed {
    let mut out = Flushed::default();
    let Ok(read) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = read
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    files.sort();
    for (i, (_, path)) in files.iter().enumerate() {
        if out.error.is_some() || (max > 0 && i >= max) {
            out.waiting += 1;
            continue;
        }
        let parsed: Result<Spooled, String> = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()));
        let spooled = match parsed {
            Ok(s) => s,
            Err(e) => {
                out.unreadable.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        match store.put_run(org, &spooled.run).await {
            Ok(_) => {
                let _ = std::fs::remove_file(path);
                out.delivered += 1;
            }
            Err(StoreError::Invalid(e)) => {
                out.unreadable.push(format!("{}: {e}", path.display()));
            }
            Err(e) => {
                out.error = Some(e.to_string());
                out.waiting += 1;
            }
        }
    }
    out
}

/// Where a run records itself.
pub struct Target {
    /// The store, or why it cannot be used.
    pub spec: Result<StoreSpec, String>,
    /// Its organisation.
    pub org: String,
    /// The spool's root.
    pub spool: Option<PathBuf>,
}

/// Record a finished run: deliver what the spool holds for this store, then the run;
/// a store that fails or is slow gets the run spooled. Says what happened, once.
pub async fn record(target: &Target, run: &RunSummary, out: &dyn Narrator) {
    let spec = match &target.spec {
        Ok(s) => s,
        Err(e) => {
            out.line(
                Level::Warning,
                event::FAILED,
                &format!("run history: {e}: this run is not recorded"),
            );
            return;
        }
    };
    let dir = target
        .spool
        .as_ref()
        .map(|root| spool_dir(root, spec, &target.org));
    let attempt = async {
        let store = Store::open(spec).await?;
        let flushed = match &dir {
            Some(d) => Some(flush(&store, &target.org, d, FLUSH_PER_RUN).await),
            None => None,
        };
        let r = store.put_run(&target.org, run).await;
        store.close().await;
        r.map(|_| flushed)
    };
    let why = match tokio::time::timeout(DELIVERY_LIMIT, attempt).await {
        Ok(Ok(flushed)) => {
            if let Some(f) = flushed.filter(|f| f.delivered > 0) {
                out.line(
                    Level::Info,
                    event::FLUSHED,
                    &format!(
                        "Run history: {} spooled record(s) delivered to {}",
                        f.delivered,
                        spec.describe()
                    ),
                );
            }
            out.line(
                Level::Info,
                event::RECORDED,
                &format!("Run recorded in the run history at {}", spec.describe()),
            );
            return;
        }
        Ok(Err(StoreError::Invalid(e))) => {
            // The store refused the record itself: spooling would not help.
            out.line(
                Level::Warning,
                event::FAILED,
                &format!("run history: the store refused this run's record: {e}"),
            );
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", DELIVERY_LIMIT.as_secs()),
    };
    // Name the store once (a remote store's errors already name it).
    let why = if why.contains(spec.describe().trim_end_matches('/')) {
        why
    } else {
        format!("the store at {}: {why}", spec.describe())
    };
    match dir.as_deref().map(|d| spool(d, spec, &target.org, run)) {
        Some(Ok(path)) => out.line(
            Level::Warning,
            event::SPOOLED,
            &format!(
                "run history: this run could not be recorded ({why}); its record waits in {} and is delivered by the next run or `faultline runs flush`",
                path.display()
            ),
        ),
        Some(Err(e)) => out.line(
            Level::Error,
            event::FAILED,
            &format!("run history: this run could not be recorded ({why}), and {e}: it is lost"),
        ),
        None => out.line(
            Level::Error,
            event::FAILED,
            &format!(
                "run history: this run could not be recorded ({why}), and there is no spool (set FAULTLINE_SPOOL or HOME): it is lost"
            ),
        ),
    }
}
