//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a
//! write is on disk before it is acknowledged.
//!
//! Writes go to one writer thread that takes every write waiting and commits them
//! together (group commit): one fsync acknowledges a whole batch, so durability does
//! not cost throughput under many concurrent writers. Each write runs in its own
//! savepoint, so one that fails leaves its batch-mates alone. Reads use their own
//! connections (WAL readers never wait for the writer). Another process may share the
//! file (the CLI while `faultline serve` runs): SQLite's locks order them, and nothing
//! is cached across transactions.

use super::remote_write::{Forwarded, Forwarder};
use super::runs::{Overlap, Param, RunFilter, RunSummary, Where};
use super::{
    entity_id, IndicatorRecord, ObjectiveRecord, Origin, ReportLine, ResultRecord, StoreError,
};
use crate::killswitch::{Engaged, Engagement};
use crate::slo::model::API_VERSION;
use crate::slo::{selects, Indicator, Labels, Objective, ObjectiveResult};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::oneshot;

/// The schema, one migration per version (`PRAGMA user_version` is the count
/// applied). Append only: a store written by this build opens in every later one.
const MIGRATIONS: &[&str] = &[
    // 1: objectives, indicators, results, tokens; runs for the run history.
    "CREATE TABLE objectives (
        id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        labels TEXT NOT NULL,
        indicator_selector TEXT NOT NULL,
        objective_percent REAL NOT NULL,
        window TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        updated_us INTEGER NOT NULL
    );
    CREATE INDEX objectives_org ON objectives(org);
    CREATE TABLE indicators (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        org TEXT NOT NULL,
        labels TEXT NOT NULL,
        from_us INTEGER NOT NULL,
        to_us INTEGER NOT NULL,
        percent REAL NOT NULL,
        good INTEGER,
        total INTEGER,
        run_id TEXT,
        trace_id TEXT,
        created_us INTEGER NOT NULL
    );
    CREATE INDEX indicators_org_to ON indicators(org, to_us);
    CREATE TABLE objective_results (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        objective_id TEXT NOT NULL REFERENCES objectives(id) ON DELETE CASCADE,
        indicator_id TEXT NOT NULL,
        indicator_selector TEXT NOT NULL,
        objective_percent REAL NOT NULL,
        actual_percent REAL NOT NULL,
        from_us INTEGER NOT NULL,
        to_us INTEGER NOT NULL,
        created_us INTEGER NOT NULL,
        good INTEGER,
        total INTEGER
    );
    CREATE INDEX results_objective_to ON objective_results(objective_id, to_us DESC, seq DESC);
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        created_us INTEGER NOT NULL
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        started_us INTEGER,
        ended_us INTEGER,
        status TEXT,
        record TEXT
    );",
    // 2: the run history (the placeholder `runs` of 1 was never written).
    "DROP TABLE runs;
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY,
        org TEXT NOT NULL,
        run_id TEXT NOT NULL,
        experiment_ref TEXT NOT NULL,
        started_us INTEGER NOT NULL,
        ended_us INTEGER NOT NULL,
        status TEXT NOT NULL,
        deviated INTEGER NOT NULL,
        record TEXT NOT NULL,
        UNIQUE (org, run_id)
    );
    CREATE INDEX runs_org_started ON runs(org, started_us);
    CREATE INDEX runs_org_experiment ON runs(org, experiment_ref, started_us);
    CREATE TABLE run_labels (
        org TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        seq INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
        PRIMARY KEY (org, key, value, seq)
    ) WITHOUT ROWID;
    CREATE INDEX run_labels_seq ON run_labels(seq);
    CREATE TABLE run_orgs (
        org TEXT PRIMARY KEY,
        longest_us INTEGER NOT NULL
    );",
    // 3: the server's kill switch, one row (`super::kill`).
    "CREATE TABLE kill_switch (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        engaged INTEGER NOT NULL,
        reason TEXT NOT NULL,
        engaged_by TEXT,
        org TEXT,
        pid INTEGER,
        engaged_at TEXT,
        since_us INTEGER NOT NULL,
        released_us INTEGER
    );",
];

/// The most writes committed together.
const MAX_BATCH: usize = 512;
/// A new objective is judged against at most this many of the newest indicators it
/// selects, so `slo sync` after pushes still shows a trend.
const BACKFILL: usize = 100;

/// A write for the writer thread, with where to answer.
enum Write {
    Objective(
        String,
        Objective,
        oneshot::Sender<Result<(ObjectiveRecord, bool), StoreError>>,
    ),
    Indicator(
        String,
        Indicator,
        Origin,
        oneshot::Sender<Result<IndicatorRecord, StoreError>>,
    ),
    Delete(String, Labels, oneshot::Sender<Result<usize, StoreError>>),
    Token(String, String, oneshot::Sender<Result<(), StoreError>>),
    Run(
        String,
        RunSummary,
        oneshot::Sender<Result<bool, StoreError>>,
    ),
    Engage(Engagement, oneshot::Sender<Result<Engaged, StoreError>>),
    Release(oneshot::Sender<Result<Option<Engagement>, StoreError>>),
    Close(oneshot::Sender<()>),
}

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    forwarder: Option<Forwarder>,
    writes: Mutex<Option<mpsc::Sender<Write>>>,
    readers: Vec<Mutex<Connection>>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| unavailable(&format!("cannot open the store {}", path.display()), e))?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| unavailable("store", e))?;
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        .map_err(|e| unavailable(&format!("cannot set up the store {}", path.display()), e))?;
    Ok(c)
}

/// Bring the schema up to date; refuse a store from a newer faultline.
fn migrate(c: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| unavailable("store migration", e))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| unavailable("store migration", e))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Unavailable(format!(
            "the store {} has schema version {version}, written by a newer faultline; this one knows up to {known}",
            path.display()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)
            .map_err(|e| unavailable(&format!("store migration {}", i + 1), e))?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {known}"))
        .map_err(|e| unavailable("store migration", e))?;
    tx.commit().map_err(|e| unavailable("store migration", e))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn labels_json(l: &Labels) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "{}".into())
}

fn labels_of(text: &str) -> Labels {
    serde_json::from_str(text).unwrap_or_default()
}

fn count(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

impl SqliteStore {
    /// Open or create the file (and its folder), migrate it, start the writer.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, None)
    }

    /// [`SqliteStore::open`], forwarding every committed indicator to `forwarder`.
    pub fn open_with(path: &Path, forwarder: Option<Forwarder>) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                unavailable(
                    &format!("cannot create the store's folder {}", dir.display()),
                    e,
                )
            })?;
        }
        let mut writer = connect(path)?;
        migrate(&mut writer, path)?;
        let readers = (0..2)
            .map(|_| connect(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let (tx, rx) = mpsc::channel();
        let forward = forwarder.clone();
        std::thread::Builder::new()
            .name("faultline-store-writer".into())
            .spawn(move || writer_loop(writer, rx, forward))
            .map_err(|e| unavailable("cannot start the store's writer", e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                forwarder,
                writes: Mutex::new(Some(tx)),
                readers,
            }),
        })
    }

    /// What the remote-write forwarder sent and dropped, when there is one.
    pub fn forward_stats(&self) -> Option<super::remote_write::ForwardStats> {
        self.inner.forwarder.as_ref().map(Forwarder::stats)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Write,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        {
            let guard = self.inner.writes.lock().unwrap_or_else(|p| p.into_inner());
            let sender = guard
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?;
            sender
                .send(make(tx))
                .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        }
        rx.await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // The first free reader, else wait on the first.
            let guard = inner
                .readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .unwrap_or_else(|| inner.readers[0].lock().unwrap_or_else(|p| p.into_inner()));
            f(&guard)
        })
        .await
        .map_err(|e| unavailable("store read", e))?
    }

    pub(super) async fn put_objective(
        &self,
        org: String,
        o: Objective,
    ) -> Result<(ObjectiveRecord, bool), StoreError> {
        self.write(|tx| Write::Objective(org, o, tx)).await
    }

    pub(super) async fn put_indicator(
        &self,
        org: String,
        i: Indicator,
        origin: Origin,
    ) -> Result<IndicatorRecord, StoreError> {
        self.write(|tx| Write::Indicator(org, i, origin, tx)).await
    }

    pub(super) async fn delete_objectives(
        &self,
        org: String,
        selector: Labels,
    ) -> Result<usize, StoreError> {
        self.write(|tx| Write::Delete(org, selector, tx)).await
    }

    pub(super) async fn create_token(&self, org: String) -> Result<String, StoreError> {
        let token = format!(
            "flt_{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let hash = super::token_hash(&token);
        self.write(|tx| Write::Token(org, hash, tx)).await?;
        Ok(token)
    }

    pub(super) async fn token_org(&self, hash: String) -> Result<Option<String>, StoreError> {
        self.read(move |c| {
            c.query_row("SELECT org FROM tokens WHERE hash = ?1", [hash], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| unavailable("store read", e))
        })
        .await
    }

    pub(super) async fn objectives(
        &self,
        org: String,
        selector: Labels,
    ) -> Result<Vec<ObjectiveRecord>, StoreError> {
        self.read(move |c| {
            Ok(load_objectives(c, &org)?
                .into_iter()
                .filter(|o| selects(&selector, &o.labels))
                .collect())
        })
        .await
    }

    pub(super) async fn results_by_indicator_selector(
        &self,
        org: String,
        selector: Labels,
        limit: usize,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        self.read(move |c| {
            let objectives: Vec<ObjectiveRecord> = load_objectives(c, &org)?
                .into_iter()
                .filter(|o| selects(&selector, &o.indicator_selector))
                .collect();
            let mut all = Vec::new();
            for o in &objectives {
                all.extend(newest_results(c, o, limit)?);
            }
            all.sort_by(|a, b| b.to.cmp(&a.to).then(b.created_at.cmp(&a.created_at)));
            all.truncate(limit);
            Ok(all)
        })
        .await
    }

    pub(super) async fn report(
        &self,
        org: String,
        selector: Labels,
        limit: usize,
    ) -> Result<Vec<ReportLine>, StoreError> {
        self.read(move |c| {
            let mut out = Vec::new();
            for o in load_objectives(c, &org)?
                .into_iter()
                .filter(|o| selects(&selector, &o.labels))
            {
                let results = newest_results(c, &o, limit)?;
                out.push(ReportLine {
                    objective: o,
                    results,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn window_results(
        &self,
        org: String,
        objective_id: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        self.read(move |c| {
            let Some(o) = load_objectives(c, &org)?
                .into_iter()
                .find(|o| o.id == objective_id)
            else {
                return Err(StoreError::NotFound(format!(
                    "no objective with id {objective_id}"
                )));
            };
            let mut st = c
                .prepare_cached(
                    "SELECT id, indicator_id, indicator_selector, objective_percent, actual_percent,
                            from_us, to_us, created_us, good, total
                     FROM objective_results
                     WHERE objective_id = ?1 AND to_us >= ?2 AND to_us <= ?3
                     ORDER BY to_us DESC, seq DESC",
                )
                .map_err(|e| unavailable("store read", e))?;
            let rows = st
                .query_map(params![o.id, micros(from), micros(to)], |r| {
                    result_row(r, &o)
                })
                .map_err(|e| unavailable("store read", e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| unavailable("store read", e))
        })
        .await
    }

    pub(super) async fn organisations(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| strings(c, "SELECT DISTINCT org FROM objectives ORDER BY org"))
            .await
    }

    pub(super) async fn put_run(&self, org: String, run: RunSummary) -> Result<bool, StoreError> {
        self.write(|tx| Write::Run(org, run, tx)).await
    }

    pub(super) async fn kill_switch(&self) -> Result<Option<Engagement>, StoreError> {
        self.read(select_kill).await
    }

    pub(super) async fn engage_kill_switch(&self, e: Engagement) -> Result<Engaged, StoreError> {
        self.write(|tx| Write::Engage(e, tx)).await
    }

    pub(super) async fn release_kill_switch(&self) -> Result<Option<Engagement>, StoreError> {
        self.write(Write::Release).await
    }

    pub(super) async fn runs(
        &self,
        org: String,
        filter: RunFilter,
    ) -> Result<Vec<RunSummary>, StoreError> {
        self.read(move |c| {
            let w = Where::new(false, &org).filter(&org, &filter);
            select_runs(c, w, filter.limit)
        })
        .await
    }

    pub(super) async fn run(
        &self,
        org: String,
        run_id: String,
    ) -> Result<Option<RunSummary>, StoreError> {
        self.read(move |c| {
            let mut w = Where::new(false, &org);
            w.and("r.run_id = ?", Param::Text(run_id));
            Ok(select_runs(c, w, 1)?.pop())
        })
        .await
    }

    pub(super) async fn overlapping(
        &self,
        org: String,
        o: Overlap,
    ) -> Result<Vec<RunSummary>, StoreError> {
        self.read(move |c| {
            let longest: Option<i64> = c
                .query_row(
                    "SELECT longest_us FROM run_orgs WHERE org = ?1",
                    [&org],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| unavailable("store read", e))?;
            let Some(longest) = longest else {
                return Ok(Vec::new());
            };
            let w = Where::new(false, &org).overlap(&org, &o, longest);
            select_runs(c, w, o.limit)
        })
        .await
    }

    pub(super) async fn run_organisations(&self) -> Result<Vec<String>, StoreError> {
        self.read(|c| strings(c, "SELECT org FROM run_orgs ORDER BY org"))
            .await
    }

    pub(super) async fn latest_runs(
        &self,
        org: String,
        n: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        self.read(move |c| {
            records(
                c,
                super::runs::LATEST_SQL,
                vec![
                    rusqlite::types::Value::Text(org),
                    rusqlite::types::Value::Integer(n as i64),
                ],
            )
        })
        .await
    }

    pub(super) async fn run_counts(
        &self,
        org: String,
    ) -> Result<Vec<super::runs::RunCount>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(super::runs::COUNTS_SQL)
                .map_err(|e| unavailable("store read", e))?;
            let rows = st
                .query_map([org], |r| {
                    Ok(super::runs::RunCount {
                        status: r.get(0)?,
                        deviated: r.get(1)?,
                        count: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                })
                .map_err(|e| unavailable("store read", e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| unavailable("store read", e))
        })
        .await
    }

    /// Commit what is waiting, stop the writer; later writes fail.
    pub(super) async fn close(&self) {
        let sender = self
            .inner
            .writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(s) = sender {
            let (tx, rx) = oneshot::channel();
            if s.send(Write::Close(tx)).is_ok() {
                let _ = rx.await;
            }
        }
    }
}

fn load_objectives(c: &Connection, org: &str) -> Result<Vec<ObjectiveRecord>, StoreError> {
    let mut st = c
        .prepare_cached(
            "SELECT id, labels, indicator_selector, objective_percent, window, created_us, updated_us
             FROM objectives WHERE org = ?1 ORDER BY created_us, id",
        )
        .map_err(|e| unavailable("store read", e))?;
    let rows = st
        .query_map([org], |r| {
            Ok(ObjectiveRecord {
                id: r.get(0)?,
                labels: labels_of(&r.get::<_, String>(1)?),
                indicator_selector: labels_of(&r.get::<_, String>(2)?),
                objective_percent: r.get(3)?,
                window: r.get(4)?,
                created_at: time(r.get(5)?),
                updated_at: time(r.get(6)?),
            })
        })
        .map_err(|e| unavailable("store read", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| unavailable("store read", e))
}

fn result_row(r: &rusqlite::Row<'_>, o: &ObjectiveRecord) -> rusqlite::Result<ResultRecord> {
    let objective_percent: f64 = r.get(3)?;
    let actual: f64 = r.get(4)?;
    Ok(ResultRecord {
        id: r.get(0)?,
        objective_id: o.id.clone(),
        objective_labels: o.labels.clone(),
        indicator_id: r.get(1)?,
        result: ObjectiveResult {
            indicator_selector: labels_of(&r.get::<_, String>(2)?),
            objective_percent,
            actual_percent: actual,
            remaining_percent: actual - objective_percent,
        },
        from: time(r.get(5)?),
        to: time(r.get(6)?),
        created_at: time(r.get(7)?),
        good: count(r.get(8)?),
        total: count(r.get(9)?),
    })
}

fn newest_results(
    c: &Connection,
    o: &ObjectiveRecord,
    limit: usize,
) -> Result<Vec<ResultRecord>, StoreError> {
    let mut st = c
        .prepare_cached(
            "SELECT id, indicator_id, indicator_selector, objective_percent, actual_percent,
                    from_us, to_us, created_us, good, total
             FROM objective_results WHERE objective_id = ?1
             ORDER BY to_us DESC, seq DESC LIMIT ?2",
        )
        .map_err(|e| unavailable("store read", e))?;
    let rows = st
        .query_map(params![o.id, limit as i64], |r| result_row(r, o))
        .map_err(|e| unavailable("store read", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| unavailable("store read", e))
}

fn select_runs(c: &Connection, w: Where, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
    let sql = format!(
        "SELECT r.record FROM runs r WHERE {}{}",
        w.sql,
        Where::order(limit)
    );
    let params: Vec<rusqlite::types::Value> = w
        .params
        .into_iter()
        .map(|p| match p {
            Param::Int(i) => rusqlite::types::Value::Integer(i),
            Param::Text(t) => rusqlite::types::Value::Text(t),
        })
        .collect();
    records(c, &sql, params)
}

/// The run records (the first column, JSON) a query selects.
fn records(
    c: &Connection,
    sql: &str,
    params: Vec<rusqlite::types::Value>,
) -> Result<Vec<RunSummary>, StoreError> {
    let mut st = c
        .prepare_cached(sql)
        .map_err(|e| unavailable("store read", e))?;
    let rows = st
        .query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(0)
        })
        .map_err(|e| unavailable("store read", e))?;
    let mut out = Vec::new();
    for text in rows {
        let text = text.map_err(|e| unavailable("store read", e))?;
        out.push(
            serde_json::from_str(&text)
                .map_err(|e| unavailable("a stored run record is unreadable", e))?,
        );
    }
    Ok(out)
}

/// The first column of every row of a query without parameters, as text.
fn strings(c: &Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut st = c
        .prepare_cached(sql)
        .map_err(|e| unavailable("store read", e))?;
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(|e| unavailable("store read", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| unavailable("store read", e))
}

/// Store (or replace: a spooled record delivered twice) one run and its labels.
fn put_run(c: &Connection, org: &str, run: &RunSummary) -> Result<bool, StoreError> {
    let w = |e| unavailable("store write", e);
    let replaced = c
        .execute(
            "DELETE FROM runs WHERE org = ?1 AND run_id = ?2",
            params![org, run.run_id],
        )
        .map_err(w)?;
    let record = serde_json::to_string(run).map_err(|e| unavailable("store write", e))?;
    let (started, ended) = (micros(run.started), micros(run.ended));
    c.execute(
        "INSERT INTO runs (org, run_id, experiment_ref, started_us, ended_us, status, deviated, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![org, run.run_id, run.experiment_ref, started, ended, run.status, run.deviated, record],
    )
    .map_err(w)?;
    let seq = c.last_insert_rowid();
    let mut st = c
        .prepare_cached("INSERT INTO run_labels (org, key, value, seq) VALUES (?1, ?2, ?3, ?4)")
        .map_err(w)?;
    for (k, v) in &run.labels {
        st.execute(params![org, k, v, seq]).map_err(w)?;
    }
    c.execute(
        "INSERT INTO run_orgs (org, longest_us) VALUES (?1, ?2)
         ON CONFLICT (org) DO UPDATE SET longest_us = max(longest_us, excluded.longest_us)",
        params![org, ended - started],
    )
    .map_err(w)?;
    Ok(replaced == 0)
}

/// The engagement in force, if any.
fn select_kill(c: &Connection) -> Result<Option<Engagement>, StoreError> {
    c.prepare_cached(super::kill::SELECT_SQL)
        .and_then(|mut st| {
            st.query_row([], |r| {
                Ok(super::kill::Row {
                    reason: r.get(0)?,
                    by: r.get(1)?,
                    org: r.get(2)?,
                    pid: r.get(3)?,
                    at: r.get(4)?,
                })
            })
            .optional()
        })
        .map(|row| row.map(super::kill::Row::engagement))
        .map_err(|e| unavailable("store read (kill switch)", e))
}

/// Engage it unless it is on (one statement), then read what is in force.
fn engage_kill(c: &Connection, e: &Engagement, now: DateTime<Utc>) -> Result<Engaged, StoreError> {
    let row = super::kill::Row::of(e);
    let changed = c
        .execute(
            super::kill::ENGAGE_SQL,
            params![row.reason, row.by, row.org, row.pid, row.at, micros(now)],
        )
        .map_err(|e| unavailable("store write (kill switch)", e))?;
    let there = select_kill(c)?.ok_or_else(|| {
        StoreError::Unavailable("the kill switch reads as released right after engaging it".into())
    })?;
    Ok(if changed > 0 {
        Engaged::Now(there)
    } else {
        Engaged::Already(there)
    })
}

/// Release it: the engagement that was in force, if any.
fn release_kill(c: &Connection, now: DateTime<Utc>) -> Result<Option<Engagement>, StoreError> {
    let before = select_kill(c)?;
    c.execute(super::kill::RELEASE_SQL, params![micros(now)])
        .map_err(|e| unavailable("store write (kill switch)", e))?;
    Ok(before)
}

/// The writer thread: batch, apply each in a savepoint, commit once, answer.
fn writer_loop(mut c: Connection, rx: mpsc::Receiver<Write>, forwarder: Option<Forwarder>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let mut closing = None;
        let mut answers: Vec<Answer> = Vec::new();
        let mut forwards: Vec<Forwarded> = Vec::new();
        let outcome = (|| -> Result<(), StoreError> {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| unavailable("store write", e))?;
            // Microseconds: what the tables keep, so an answer equals a later read.
            let now = time(micros(Utc::now()));
            // Each organisation's objectives, read once per batch: the transaction
            // holds the write lock, so only this batch's own writes change them.
            let mut objectives: HashMap<String, Vec<ObjectiveRecord>> = HashMap::new();
            for w in batch.drain(..) {
                match w {
                    Write::Close(done) => closing = Some(done),
                    Write::Objective(org, o, reply) => {
                        objectives.remove(&org);
                        let r = in_savepoint(&tx, |t| put_objective(t, &org, &o, now));
                        answers.push(answer(reply, r));
                    }
                    Write::Indicator(org, i, origin, reply) => {
                        let r = in_savepoint(&tx, |t| {
                            let known = match objectives.entry(org.clone()) {
                                Entry::Occupied(e) => e.into_mut(),
                                Entry::Vacant(e) => e.insert(load_objectives(t, &org)?),
                            };
                            put_indicator(t, &org, &i, &origin, now, known)
                        });
                        let r = r.map(|(record, objectives)| {
                            if forwarder.is_some() {
                                forwards.push(Forwarded {
                                    org: org.clone(),
                                    labels: record.labels.clone(),
                                    at_ms: record.to.timestamp_millis(),
                                    percent: record.percent,
                                    counts: i.counts,
                                    objectives,
                                });
                            }
                            record
                        });
                        answers.push(answer(reply, r));
                    }
                    Write::Delete(org, selector, reply) => {
                        objectives.remove(&org);
                        let r = in_savepoint(&tx, |t| delete_objectives(t, &org, &selector));
                        answers.push(answer(reply, r));
                    }
                    Write::Run(org, run, reply) => {
                        let r = in_savepoint(&tx, |t| put_run(t, &org, &run));
                        answers.push(answer(reply, r));
                    }
                    Write::Engage(e, reply) => {
                        let r = in_savepoint(&tx, |t| engage_kill(t, &e, now));
                        answers.push(answer(reply, r));
                    }
                    Write::Release(reply) => {
                        let r = in_savepoint(&tx, |t| release_kill(t, now));
                        answers.push(answer(reply, r));
                    }
                    Write::Token(org, hash, reply) => {
                        let r = in_savepoint(&tx, |t| {
                            t.execute(
                                "INSERT INTO tokens (hash, org, created_us) VALUES (?1, ?2, ?3)",
                                params![hash, org, micros(now)],
                            )
                            .map(|_| ())
                            .map_err(|e| unavailable("store write", e))
                        });
                        answers.push(answer(reply, r));
                    }
                }
            }
            tx.commit().map_err(|e| unavailable("store commit", e))
        })();
        // Nothing is acknowledged before the commit (and its fsync) returned.
        for a in answers {
            a(outcome.as_ref().err());
        }
        if let (Some(f), true) = (&forwarder, outcome.is_ok()) {
            f.send(std::mem::take(&mut forwards));
        }
        if let Some(done) = closing {
            if let Some(f) = &forwarder {
                f.finish();
            }
            let _ = done.send(());
            return;
        }
    }
}

/// A reply waiting for its batch's commit.
type Answer = Box<dyn FnOnce(Option<&StoreError>)>;

/// An answer to send once the batch's fate is known: the write's own result if the
/// commit worked, the commit's error otherwise.
fn answer<T: Send + 'static>(
    reply: oneshot::Sender<Result<T, StoreError>>,
    r: Result<T, StoreError>,
) -> Answer {
    Box::new(move |commit: Option<&StoreError>| {
        let _ = reply.send(match commit {
            Some(e) => Err(e.clone()),
            None => r,
        });
    })
}

fn in_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    tx.execute_batch("SAVEPOINT w")
        .map_err(|e| unavailable("store write", e))?;
    match f(tx) {
        Ok(v) => {
            tx.execute_batch("RELEASE w")
                .map_err(|e| unavailable("store write", e))?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.execute_batch("ROLLBACK TO w; RELEASE w");
            Err(e)
        }
    }
}

fn put_objective(
    c: &Connection,
    org: &str,
    o: &Objective,
    now: DateTime<Utc>,
) -> Result<(ObjectiveRecord, bool), StoreError> {
    let id = entity_id(org, "objective", API_VERSION, &o.labels);
    let existing: Option<i64> = c
        .query_row(
            "SELECT created_us FROM objectives WHERE id = ?1",
            [&id],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| unavailable("store write", e))?;
    let created = existing.map(time).unwrap_or(now);
    c.execute(
        "INSERT INTO objectives (id, org, labels, indicator_selector, objective_percent, window, created_us, updated_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(id) DO UPDATE SET indicator_selector = excluded.indicator_selector,
             objective_percent = excluded.objective_percent, window = excluded.window,
             updated_us = excluded.updated_us",
        params![
            id,
            org,
            labels_json(&o.labels),
            labels_json(&o.indicator_selector),
            o.objective_percent,
            o.window,
            micros(created),
            micros(now)
        ],
    )
    .map_err(|e| unavailable("store write", e))?;
    let record = ObjectiveRecord {
        id,
        labels: o.labels.clone(),
        indicator_selector: o.indicator_selector.clone(),
        objective_percent: o.objective_percent,
        window: o.window.clone(),
        created_at: created,
        updated_at: now,
    };
    if existing.is_none() {
        backfill(c, org, &record)?;
    }
    Ok((record, existing.is_none()))
}

/// Judge the newest indicators a new objective selects, so it has a trend at once.
fn backfill(c: &Connection, org: &str, o: &ObjectiveRecord) -> Result<(), StoreError> {
    // Narrow in SQL on the selector's keys, then check exactly here.
    let mut sql = String::from(
        "SELECT id, labels, from_us, to_us, percent, good, total, created_us FROM indicators WHERE org = ?1",
    );
    let mut args: Vec<String> = vec![org.to_string()];
    for (k, v) in &o.indicator_selector {
        args.push(format!("$.\"{}\"", k.replace('"', "\\\"")));
        let path = args.len();
        args.push(v.clone());
        sql.push_str(&format!(
            " AND json_extract(labels, ?{path}) = ?{}",
            path + 1
        ));
    }
    sql.push_str(&format!(" ORDER BY to_us DESC, seq DESC LIMIT {BACKFILL}"));
    let mut st = c.prepare(&sql).map_err(|e| unavailable("store write", e))?;
    type Row = (String, String, i64, i64, f64, Option<i64>, Option<i64>, i64);
    let rows: Vec<Row> = st
        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .map_err(|e| unavailable("store write", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| unavailable("store write", e))?;
    // Oldest first, so sequence numbers keep the order of arrival.
    for (id, labels, from_us, to_us, percent, good, total, created_us) in rows.into_iter().rev() {
        if !selects(&o.indicator_selector, &labels_of(&labels)) {
            continue;
        }
        insert_result(
            c,
            o,
            &id,
            percent,
            (from_us, to_us, created_us),
            (good, total),
        )?;
    }
    Ok(())
}

fn insert_result(
    c: &Connection,
    o: &ObjectiveRecord,
    indicator_id: &str,
    percent: f64,
    (from_us, to_us, created_us): (i64, i64, i64),
    (good, total): (Option<i64>, Option<i64>),
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO objective_results (id, objective_id, indicator_id, indicator_selector,
             objective_percent, actual_percent, from_us, to_us, created_us, good, total)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut st| {
        st.execute(params![
            uuid::Uuid::new_v4().to_string(),
            o.id,
            indicator_id,
            labels_json(&o.indicator_selector),
            o.objective_percent,
            percent,
            from_us,
            to_us,
            created_us,
            good,
            total
        ])
    })
    .map(|_| ())
    .map_err(|e| unavailable("store write", e))
}

/// (objective labels, target, actual) of one objective that judged an indicator.
type Judged = (Labels, f64, f64);

fn put_indicator(
    c: &Connection,
    org: &str,
    i: &Indicator,
    origin: &Origin,
    now: DateTime<Utc>,
    objectives: &[ObjectiveRecord],
) -> Result<(IndicatorRecord, Vec<Judged>), StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    let (good, total) = match i.counts {
        Some((g, t)) => (
            Some(
                i64::try_from(g)
                    .map_err(|_| StoreError::Invalid("spec.good is too large".into()))?,
            ),
            Some(
                i64::try_from(t)
                    .map_err(|_| StoreError::Invalid("spec.total is too large".into()))?,
            ),
        ),
        None => (None, None),
    };
    c.prepare_cached(
        "INSERT INTO indicators (id, org, labels, from_us, to_us, percent, good, total, run_id, trace_id, created_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .and_then(|mut st| {
        st.execute(params![
            id,
            org,
            labels_json(&i.labels),
            micros(i.from),
            micros(i.to),
            i.percent,
            good,
            total,
            origin.run_id,
            origin.trace_id,
            micros(now)
        ])
    })
    .map_err(|e| unavailable("store write", e))?;
    let mut judged = Vec::new();
    for o in objectives {
        if selects(&o.indicator_selector, &i.labels) {
            judged.push((o.labels.clone(), o.objective_percent, i.percent));
            insert_result(
                c,
                o,
                &id,
                i.percent,
                (micros(i.from), micros(i.to), micros(now)),
                (good, total),
            )?;
        }
    }
    let results = judged.len();
    let record = IndicatorRecord {
        id,
        labels: i.labels.clone(),
        from: i.from,
        to: i.to,
        percent: i.percent,
        good: i.counts.map(|c| c.0),
        total: i.counts.map(|c| c.1),
        origin: origin.clone(),
        created_at: now,
        results,
    };
    Ok((record, judged))
}

fn delete_objectives(c: &Connection, org: &str, selector: &Labels) -> Result<usize, StoreError> {
    let ids: Vec<String> = load_objectives(c, org)?
        .into_iter()
        .filter(|o| selects(selector, &o.labels))
        .map(|o| o.id)
        .collect();
    for id in &ids {
        c.execute(
            "DELETE FROM objective_results WHERE objective_id = ?1",
            [id],
        )
        .and_then(|_| c.execute("DELETE FROM objectives WHERE id = ?1", [id]))
        .map_err(|e| unavailable("store write", e))?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objective() -> Objective {
        crate::slo::parse_objective(&json!({
            "metadata": {"labels": {"name": "avail", "service": "api"}},
            "spec": {"indicatorSelector": {"category": "Availability"},
                     "objectivePercent": 99.9, "window": "1h"}}))
        .unwrap()
    }

    fn indicator(percent: f64, at: &str) -> Indicator {
        crate::slo::parse_indicator(&json!({
            "metadata": {"labels": {"category": "Availability", "extra": "x"}},
            "spec": {"from": at, "to": at, "percent": percent}}))
        .unwrap()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn indicators_become_results_newest_first_and_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("fl-store-{}", uuid::Uuid::new_v4()));
        let path = dir.join("s.db");
        rt().block_on(async {
            let s = super::super::Store::open(&super::super::StoreSpec::Sqlite(path.clone()))
                .await
                .unwrap();
            let (o, new) = s.put_objective("Org", &objective()).await.unwrap();
            assert!(new);
            let (again, new) = s.put_objective("org", &objective()).await.unwrap();
            assert!(!new);
            assert_eq!(again.id, o.id);
            assert_eq!(again.created_at, o.created_at);
            let origin = Origin::default();
            let r = s
                .put_indicator("org", &indicator(100.0, "2026-01-01T00:00:00Z"), &origin)
                .await
                .unwrap();
            assert_eq!(r.results, 1);
            s.put_indicator("org", &indicator(90.0, "2026-01-01T00:01:00Z"), &origin)
                .await
                .unwrap();
            // Another org sees nothing.
            assert!(s
                .report("other", &Labels::new(), 5)
                .await
                .unwrap()
                .is_empty());
            s.close().await;
            let s = super::super::Store::open(&super::super::StoreSpec::Sqlite(path.clone()))
                .await
                .unwrap();
            let lines = s.report("org", &Labels::new(), 5).await.unwrap();
            assert_eq!(lines.len(), 1);
            let pct: Vec<f64> = lines[0]
                .results
                .iter()
                .map(|r| r.result.actual_percent)
                .collect();
            assert_eq!(pct, vec![90.0, 100.0]);
            assert!((lines[0].results[0].result.remaining_percent + 9.9).abs() < 1e-9);
            let sel: Labels = [("category".to_string(), "Availability".to_string())].into();
            let by_sel = s
                .results_by_indicator_selector("org", &sel, 1)
                .await
                .unwrap();
            assert_eq!(by_sel.len(), 1);
            assert_eq!(by_sel[0].result.actual_percent, 90.0);
            let n = s
                .delete_objectives("org", &[("service".to_string(), "api".to_string())].into())
                .await
                .unwrap();
            assert_eq!(n, 1);
            assert!(s.report("org", &Labels::new(), 5).await.unwrap().is_empty());
            s.close().await;
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_new_objective_judges_the_indicators_already_there() {
        let dir = std::env::temp_dir().join(format!("fl-store-{}", uuid::Uuid::new_v4()));
        rt().block_on(async {
            let s = super::super::Store::open(&super::super::StoreSpec::Sqlite(dir.join("s.db")))
                .await
                .unwrap();
            for (p, t) in [
                (100.0, "2026-01-01T00:00:00Z"),
                (50.0, "2026-01-01T00:02:00Z"),
            ] {
                let r = s
                    .put_indicator("org", &indicator(p, t), &Origin::default())
                    .await
                    .unwrap();
                assert_eq!(r.results, 0);
            }
            s.put_objective("org", &objective()).await.unwrap();
            let lines = s.report("org", &Labels::new(), 5).await.unwrap();
            let pct: Vec<f64> = lines[0]
                .results
                .iter()
                .map(|r| r.result.actual_percent)
                .collect();
            assert_eq!(pct, vec![50.0, 100.0]);
            s.close().await;
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn tokens_are_kept_as_hashes_for_their_org() {
        let dir = std::env::temp_dir().join(format!("fl-store-{}", uuid::Uuid::new_v4()));
        let path = dir.join("s.db");
        rt().block_on(async {
            let s = super::super::Store::open(&super::super::StoreSpec::Sqlite(path.clone()))
                .await
                .unwrap();
            let t = s.create_token("Team-A").await.unwrap();
            assert_eq!(s.token_org(&t).await.unwrap().as_deref(), Some("team-a"));
            assert_eq!(s.token_org("flt_nope").await.unwrap(), None);
            s.close().await;
        });
        let bytes = std::fs::read(&path).unwrap_or_default();
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        assert!(!bytes.is_empty());
        // Only the hash is written, never the token (checked on the file and its WAL).
        let text = String::from_utf8_lossy(&bytes) + String::from_utf8_lossy(&wal);
        assert!(!text.contains("flt_"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_newer_schema_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("fl-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch("PRAGMA user_version = 99").unwrap();
        }
        let e = SqliteStore::open(&path).err().unwrap();
        assert!(e.to_string().contains("newer faultline"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
