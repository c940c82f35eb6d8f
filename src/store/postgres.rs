//! The shared store: PostgreSQL, so several `faultline serve` replicas behind a load
//! balancer use one database. The same semantics as the embedded store
//! ([`super::sqlite`]): one writer task per process commits every waiting write in one
//! transaction (group commit, a savepoint per write, answers only after the commit);
//! reads use their own connections; the schema version lives in `faultline_schema`
//! and migrations run under an advisory lock, so replicas starting together migrate
//! once. Labels are JSONB, so a selector is a containment query (`@>`). A connection
//! lost to a database restart is made again on its next use ([`Connector`]: one
//! attempt at a time, bounded, with a backoff); a read retries once on the new
//! connection, a write never does (docs/store.md, "A lost connection").

use super::remote_write::{Forwarded, Forwarder};
use super::runs::{Overlap, Param, RunFilter, RunSummary, Where};
use super::{
    entity_id, IndicatorRecord, ObjectiveRecord, Origin, ReportLine, ResultRecord, StoreError,
};
use crate::killswitch::{Engaged, Engagement};
use crate::slo::model::API_VERSION;
use crate::slo::{selects, Indicator, Labels, Objective, ObjectiveResult};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, GenericClient, NoTls, Row};

/// The schema, one migration per version. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: as SQLite's first migration.
    "CREATE TABLE objectives (
        id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        labels JSONB NOT NULL,
        indicator_selector JSONB NOT NULL,
        objective_percent DOUBLE PRECISION NOT NULL,
        time_window TEXT NOT NULL,
        created_us BIGINT NOT NULL,
        updated_us BIGINT NOT NULL
    );
    CREATE INDEX objectives_org ON objectives(org);
    CREATE TABLE indicators (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        org TEXT NOT NULL,
        labels JSONB NOT NULL,
        from_us BIGINT NOT NULL,
        to_us BIGINT NOT NULL,
        percent DOUBLE PRECISION NOT NULL,
        good BIGINT,
        total BIGINT,
        run_id TEXT,
        trace_id TEXT,
        created_us BIGINT NOT NULL
    );
    CREATE INDEX indicators_org_to ON indicators(org, to_us);
    CREATE TABLE objective_results (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        objective_id TEXT NOT NULL REFERENCES objectives(id) ON DELETE CASCADE,
        indicator_id TEXT NOT NULL,
        indicator_selector JSONB NOT NULL,
        objective_percent DOUBLE PRECISION NOT NULL,
        actual_percent DOUBLE PRECISION NOT NULL,
        from_us BIGINT NOT NULL,
        to_us BIGINT NOT NULL,
        created_us BIGINT NOT NULL,
        good BIGINT,
        total BIGINT
    );
    CREATE INDEX results_objective_to ON objective_results(objective_id, to_us DESC, seq DESC);
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        created_us BIGINT NOT NULL
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        org TEXT NOT NULL,
        started_us BIGINT,
        ended_us BIGINT,
        status TEXT,
        record JSONB
    );",
    // 2: as SQLite's second migration.
    "DROP TABLE runs;
    CREATE TABLE runs (
        seq BIGSERIAL PRIMARY KEY,
        org TEXT NOT NULL,
        run_id TEXT NOT NULL,
        experiment_ref TEXT NOT NULL,
        started_us BIGINT NOT NULL,
        ended_us BIGINT NOT NULL,
        status TEXT NOT NULL,
        deviated BOOLEAN NOT NULL,
        record TEXT NOT NULL,
        UNIQUE (org, run_id)
    );
    CREATE INDEX runs_org_started ON runs(org, started_us);
    CREATE INDEX runs_org_experiment ON runs(org, experiment_ref, started_us);
    CREATE TABLE run_labels (
        org TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        seq BIGINT NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
        PRIMARY KEY (org, key, value, seq)
    );
    CREATE INDEX run_labels_seq ON run_labels(seq);
    CREATE TABLE run_orgs (
        org TEXT PRIMARY KEY,
        longest_us BIGINT NOT NULL
    );",
    // 3: as SQLite's third migration (the server's kill switch).
    "CREATE TABLE kill_switch (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        engaged BOOLEAN NOT NULL,
        reason TEXT NOT NULL,
        engaged_by TEXT,
        org TEXT,
        pid BIGINT,
        engaged_at TEXT,
        since_us BIGINT NOT NULL,
        released_us BIGINT
    );",
];

/// Taken while migrating: one replica migrates, the others wait and find it done.
const MIGRATION_LOCK: i64 = 0x6661_756c_746c_696e; // "faultlin"
/// The most writes committed together.
const MAX_BATCH: usize = 512;
/// A new objective judges at most this many of the newest indicators it selects.
const BACKFILL: i64 = 100;
/// Read connections per process.
const READERS: usize = 4;
/// The longest wait for a new connection (TCP, TLS-less handshake, authentication).
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// After a failed connection attempt, the next one waits this long: meanwhile every
/// caller fails at once with that attempt's error (a dead database is tried about once
/// a second by the whole process, not once per request).
const BACKOFF: Duration = Duration::from_secs(1);
/// The longest a read, or a batch of writes, may take before it fails as
/// unavailable (its connection is then dropped: a database that stopped answering
/// without closing the connection does not hold a request forever).
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Write {
    Objective(String, Objective, Reply<(ObjectiveRecord, bool)>),
    Indicator(String, Indicator, Origin, Reply<IndicatorRecord>),
    Delete(String, Labels, Reply<usize>),
    Token(String, String, Reply<()>),
    Run(String, RunSummary, Reply<bool>),
    Engage(Engagement, Reply<Engaged>),
    Release(Reply<Option<Engagement>>),
    Close(oneshot::Sender<()>),
}

/// Run a read (`body`, an expression of type `Result<T, StoreError>` using the
/// connection `c`) on a read connection, made again first if it was lost. A read that
/// fails because its connection closed under it (the database restarted) runs once
/// more on a new connection: reads change nothing, so that is safe. Every other
/// failure, and a second one, is the answer (`Unavailable`: a 503). A macro, not a
/// function taking an async closure: the futures of such closures are not provably
/// `Send` for every lifetime (the server's handlers need them to be).
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {{
        let store = $store;
        let mut slot = store.reader().await;
        let mut fresh = store.inner.connector.ensure(&mut slot).await?;
        loop {
            let Some($c) = slot.as_ref() else {
                break Err(StoreError::Unavailable(
                    "the store has no connection".into(),
                ));
            };
            match tokio::time::timeout(REQUEST_LIMIT, async { $body }).await {
                Ok(Err(_)) if !fresh && slot.as_ref().is_some_and(Client::is_closed) => {
                    store.inner.connector.ensure(&mut slot).await?;
                    fresh = true;
                }
                Ok(r) => break r,
                Err(_) => {
                    // Dropping it closes it: whatever it waited for is abandoned.
                    *slot = None;
                    break Err(timed_out("store read"));
                }
            }
        }
    }};
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL without its password, to name the store.
    shown: String,
    writes: Mutex<Option<mpsc::UnboundedSender<Write>>>,
    /// The read connections; `None` once one was found lost and could not be made
    /// again yet.
    readers: Vec<tokio::sync::Mutex<Option<Client>>>,
    connector: Arc<Connector>,
    forwarder: Option<Forwarder>,
}

/// Makes the connections again after the database went away (a restart, a
/// failover, a network cut): one attempt at a time for the whole process, each
/// bounded by [`CONNECT_LIMIT`], and none within [`BACKOFF`] of a failed one.
struct Connector {
    url: String,
    shown: String,
    /// The last attempt's failure, while it is recent.
    failed: tokio::sync::Mutex<Option<(Instant, StoreError)>>,
    /// Connection attempts made again since the store was opened.
    attempts: std::sync::atomic::AtomicU64,
}

impl Connector {
    async fn connect(&self) -> Result<Client, StoreError> {
        // Callers queue here: the first tries, the others wait for its outcome and
        // then either connect too (their own slot) or fail at once with its error.
        let mut failed = self.failed.lock().await;
        if let Some((at, e)) = &*failed {
            if at.elapsed() < BACKOFF {
                return Err(e.clone());
            }
        }
        self.attempts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let made = match tokio::time::timeout(CONNECT_LIMIT, connect(&self.url, &self.shown)).await
        {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "cannot connect to the store {}: no answer within {}s",
                self.shown,
                CONNECT_LIMIT.as_secs()
            ))),
        };
        match made {
            Ok(c) => {
                *failed = None;
                Ok(c)
            }
            Err(e) => {
                *failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// The slot's connection, made again first when there is none or it is closed;
    /// whether it is new.
    async fn ensure(&self, slot: &mut Option<Client>) -> Result<bool, StoreError> {
        if slot.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(false);
        }
        *slot = None;
        *slot = Some(self.connect().await?);
        Ok(true)
    }
}

fn timed_out(what: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "{what}: the store did not answer within {}s",
        REQUEST_LIMIT.as_secs()
    ))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// A database error with the server's message, not only its class.
fn db(what: &str, e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => unavailable(what, d.message()),
        None => unavailable(what, e),
    }
}

/// The URL without a password, for messages.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "postgres://…".into(),
    }
}

async fn connect(url: &str, shown: &str) -> Result<Client, StoreError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| db(&format!("cannot connect to the store {shown}"), e))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; requests then fail
        // with their own errors, and the client reads as closed, so its slot is
        // connected again on its next use.
        let _ = connection.await;
    });
    Ok(client)
}

async fn migrate(c: &mut Client, shown: &str) -> Result<(), StoreError> {
    let tx = c
        .transaction()
        .await
        .map_err(|e| db("store migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| db("store migration", e))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS faultline_schema (version INTEGER NOT NULL)")
        .await
        .map_err(|e| db("store migration", e))?;
    let version: i32 = tx
        .query_opt("SELECT version FROM faultline_schema", &[])
        .await
        .map_err(|e| db("store migration", e))?
        .map(|r| r.get(0))
        .unwrap_or(0);
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(StoreError::Unavailable(format!(
            "the store {shown} has schema version {version}, written by a newer faultline; this one knows up to {known}"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| db(&format!("store migration {}", i + 1), e))?;
    }
    tx.execute("DELETE FROM faultline_schema", &[])
        .await
        .map_err(|e| db("store migration", e))?;
    tx.execute(
        "INSERT INTO faultline_schema (version) VALUES ($1)",
        &[&known],
    )
    .await
    .map_err(|e| db("store migration", e))?;
    tx.commit().await.map_err(|e| db("store migration", e))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

fn labels_value(l: &Labels) -> Value {
    serde_json::to_value(l).unwrap_or_default()
}

fn labels_of(v: Value) -> Labels {
    serde_json::from_value(v).unwrap_or_default()
}

fn count(v: Option<i64>) -> Option<u64> {
    v.and_then(|n| u64::try_from(n).ok())
}

impl PgStore {
    /// Connect, migrate, start the writer task.
    pub async fn open(url: &str, forwarder: Option<Forwarder>) -> Result<PgStore, StoreError> {
        let shown = shown(url);
        // The readers connect while the writer connects and migrates: a command that
        // opens the store for one query waits for about two connections, not five.
        let mut connecting = tokio::task::JoinSet::new();
        for _ in 0..READERS {
            let (url, shown) = (url.to_string(), shown.clone());
            connecting.spawn(async move { connect(&url, &shown).await });
        }
        let mut writer = connect(url, &shown).await?;
        migrate(&mut writer, &shown).await?;
        let mut readers = Vec::new();
        while let Some(r) = connecting.join_next().await {
            let client = r.map_err(|e| unavailable("connecting to the store", e))??;
            readers.push(tokio::sync::Mutex::new(Some(client)));
        }
        let connector = Arc::new(Connector {
            url: url.to_string(),
            shown: shown.clone(),
            failed: tokio::sync::Mutex::new(None),
            attempts: std::sync::atomic::AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer_loop(
            writer,
            connector.clone(),
            rx,
            forwarder.clone(),
        ));
        Ok(PgStore {
            inner: Arc::new(Inner {
                shown,
                writes: Mutex::new(Some(tx)),
                readers,
                connector,
                forwarder,
            }),
        })
    }

    /// The database, without its password.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// How many times a lost connection was tried again since the store was opened
    /// (successful or not): at most one attempt a second while the database is away.
    pub fn reconnect_attempts(&self) -> u64 {
        self.inner
            .connector
            .attempts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the remote-write forwarder sent and dropped, when there is one.
    pub fn forward_stats(&self) -> Option<super::remote_write::ForwardStats> {
        self.inner.forwarder.as_ref().map(Forwarder::stats)
    }

    async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> Write) -> Result<T, StoreError> {
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

    async fn reader(&self) -> tokio::sync::MutexGuard<'_, Option<Client>> {
        for r in &self.inner.readers {
            if let Ok(g) = r.try_lock() {
                return g;
            }
        }
        self.inner.readers[0].lock().await
    }

    /// Whether the store answers a trivial read now (`/readyz`).
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        read!(self, |c| {
            c.simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| db("store read", e))
        })
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
        read!(self, |c| {
            Ok(
                c.query_opt("SELECT org FROM tokens WHERE hash = $1", &[&hash])
                    .await
                    .map_err(|e| db("store read", e))?
                    .map(|r| r.get(0)),
            )
        })
    }

    pub(super) async fn kill_switch(&self) -> Result<Option<Engagement>, StoreError> {
        read!(self, |c| select_kill(c, false).await)
    }

    pub(super) async fn engage_kill_switch(&self, e: Engagement) -> Result<Engaged, StoreError> {
        self.write(|tx| Write::Engage(e, tx)).await
    }

    pub(super) async fn release_kill_switch(&self) -> Result<Option<Engagement>, StoreError> {
        self.write(Write::Release).await
    }

    pub(super) async fn put_run(&self, org: String, run: RunSummary) -> Result<bool, StoreError> {
        self.write(|tx| Write::Run(org, run, tx)).await
    }

    pub(super) async fn runs(
        &self,
        org: String,
        filter: RunFilter,
    ) -> Result<Vec<RunSummary>, StoreError> {
        read!(self, |c| {
            let w = Where::new(true, &org).filter(&org, &filter);
            select_runs(c, w, filter.limit).await
        })
    }

    pub(super) async fn run(
        &self,
        org: String,
        run_id: String,
    ) -> Result<Option<RunSummary>, StoreError> {
        read!(self, |c| {
            let mut w = Where::new(true, &org);
            w.and("r.run_id = ?", Param::Text(run_id.clone()));
            Ok(select_runs(c, w, 1).await?.pop())
        })
    }

    pub(super) async fn overlapping(
        &self,
        org: String,
        o: Overlap,
    ) -> Result<Vec<RunSummary>, StoreError> {
        read!(self, |c| {
            let longest: Option<i64> = c
                .query_opt("SELECT longest_us FROM run_orgs WHERE org = $1", &[&org])
                .await
                .map_err(|e| db("store read", e))?
                .map(|r| r.get(0));
            let Some(longest) = longest else {
                return Ok(Vec::new());
            };
            let w = Where::new(true, &org).overlap(&org, &o, longest);
            select_runs(c, w, o.limit).await
        })
    }

    pub(super) async fn run_organisations(&self) -> Result<Vec<String>, StoreError> {
        read!(self, |c| {
            Ok(c.query("SELECT org FROM run_orgs ORDER BY org", &[])
                .await
                .map_err(|e| db("store read", e))?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    pub(super) async fn latest_runs(
        &self,
        org: String,
        n: usize,
    ) -> Result<Vec<RunSummary>, StoreError> {
        read!(self, |c| {
            let sql = super::runs::LATEST_SQL
                .replace("?1", "$1")
                .replace("?2", "$2");
            let rows = c
                .query(sql.as_str(), &[&org, &(n as i64)])
                .await
                .map_err(|e| db("store read", e))?;
            records(&rows)
        })
    }

    pub(super) async fn run_counts(
        &self,
        org: String,
    ) -> Result<Vec<super::runs::RunCount>, StoreError> {
        read!(self, |c| {
            let sql = super::runs::COUNTS_SQL.replace("?1", "$1");
            Ok(c.query(sql.as_str(), &[&org])
                .await
                .map_err(|e| db("store read", e))?
                .iter()
                .map(|r| super::runs::RunCount {
                    status: r.get(0),
                    deviated: r.get(1),
                    count: r.get::<_, i64>(2).max(0) as u64,
                })
                .collect())
        })
    }

    pub(super) async fn organisations(&self) -> Result<Vec<String>, StoreError> {
        read!(self, |c| {
            Ok(
                c.query("SELECT DISTINCT org FROM objectives ORDER BY org", &[])
                    .await
                    .map_err(|e| db("store read", e))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect(),
            )
        })
    }

    pub(super) async fn objectives(
        &self,
        org: String,
        selector: Labels,
    ) -> Result<Vec<ObjectiveRecord>, StoreError> {
        read!(self, |c| {
            Ok(load_objectives(c, &org)
                .await?
                .into_iter()
                .filter(|o| selects(&selector, &o.labels))
                .collect())
        })
    }

    pub(super) async fn results_by_indicator_selector(
        &self,
        org: String,
        selector: Labels,
        limit: usize,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        read!(self, |c| {
            let mut all = Vec::new();
            for o in load_objectives(c, &org)
                .await?
                .iter()
                .filter(|o| selects(&selector, &o.indicator_selector))
            {
                all.extend(newest_results(c, o, limit).await?);
            }
            all.sort_by(|a, b| b.to.cmp(&a.to).then(b.created_at.cmp(&a.created_at)));
            all.truncate(limit);
            Ok(all)
        })
    }

    pub(super) async fn report(
        &self,
        org: String,
        selector: Labels,
        limit: usize,
    ) -> Result<Vec<ReportLine>, StoreError> {
        read!(self, |c| {
            let mut out = Vec::new();
            for o in load_objectives(c, &org)
                .await?
                .into_iter()
                .filter(|o| selects(&selector, &o.labels))
            {
                let results = newest_results(c, &o, limit).await?;
                out.push(ReportLine {
                    objective: o,
                    results,
                });
            }
            Ok(out)
        })
    }

    pub(super) async fn window_results(
        &self,
        org: String,
        objective_id: String,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        read!(self, |c| {
            let Some(o) = load_objectives(c, &org)
                .await?
                .into_iter()
                .find(|o| o.id == objective_id)
            else {
                return Err(StoreError::NotFound(format!(
                    "no objective with id {objective_id}"
                )));
            };
            let rows = c
            .query(
                "SELECT id, indicator_id, indicator_selector, objective_percent, actual_percent,
                        from_us, to_us, created_us, good, total
                 FROM objective_results
                 WHERE objective_id = $1 AND to_us >= $2 AND to_us <= $3
                 ORDER BY to_us DESC, seq DESC",
                &[&o.id, &micros(from), &micros(to)],
            )
            .await
            .map_err(|e| db("store read", e))?;
            Ok(rows.iter().map(|r| result_row(r, &o)).collect())
        })
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

async fn load_objectives(
    c: &impl GenericClient,
    org: &str,
) -> Result<Vec<ObjectiveRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT id, labels, indicator_selector, objective_percent, time_window, created_us, updated_us
             FROM objectives WHERE org = $1 ORDER BY created_us, id",
            &[&org],
        )
        .await
        .map_err(|e| db("store read", e))?;
    Ok(rows
        .iter()
        .map(|r| ObjectiveRecord {
            id: r.get(0),
            labels: labels_of(r.get(1)),
            indicator_selector: labels_of(r.get(2)),
            objective_percent: r.get(3),
            window: r.get(4),
            created_at: time(r.get(5)),
            updated_at: time(r.get(6)),
        })
        .collect())
}

fn result_row(r: &Row, o: &ObjectiveRecord) -> ResultRecord {
    let objective_percent: f64 = r.get(3);
    let actual: f64 = r.get(4);
    ResultRecord {
        id: r.get(0),
        objective_id: o.id.clone(),
        objective_labels: o.labels.clone(),
        indicator_id: r.get(1),
        result: ObjectiveResult {
            indicator_selector: labels_of(r.get(2)),
            objective_percent,
            actual_percent: actual,
            remaining_percent: actual - objective_percent,
        },
        from: time(r.get(5)),
        to: time(r.get(6)),
        created_at: time(r.get(7)),
        good: count(r.get(8)),
        total: count(r.get(9)),
    }
}

async fn newest_results(
    c: &Client,
    o: &ObjectiveRecord,
    limit: usize,
) -> Result<Vec<ResultRecord>, StoreError> {
    let rows = c
        .query(
            "SELECT id, indicator_id, indicator_selector, objective_percent, actual_percent,
                    from_us, to_us, created_us, good, total
             FROM objective_results WHERE objective_id = $1
             ORDER BY to_us DESC, seq DESC LIMIT $2",
            &[&o.id, &(limit as i64)],
        )
        .await
        .map_err(|e| db("store read", e))?;
    Ok(rows.iter().map(|r| result_row(r, o)).collect())
}

/// A reply waiting for its batch's commit.
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn answer<T: Send + 'static>(reply: Reply<T>, r: Result<T, StoreError>) -> Answer {
    Box::new(move |commit: Option<&StoreError>| {
        let _ = reply.send(match commit {
            Some(e) => Err(e.clone()),
            None => r,
        });
    })
}

/// Release a write's savepoint, or roll it back when the write failed.
async fn finish(sp: tokio_postgres::Transaction<'_>, ok: bool) -> Result<(), StoreError> {
    if ok {
        sp.commit().await
    } else {
        sp.rollback().await
    }
    .map_err(|e| db("store write", e))
}

async fn select_runs(
    c: &impl GenericClient,
    w: Where,
    limit: usize,
) -> Result<Vec<RunSummary>, StoreError> {
    let sql = format!(
        "SELECT r.record FROM runs r WHERE {}{}",
        w.sql,
        Where::order(limit)
    );
    let params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = w
        .params
        .into_iter()
        .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
            match p {
                Param::Int(i) => Box::new(i),
                Param::Text(t) => Box::new(t),
            }
        })
        .collect();
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let rows = c
        .query(sql.as_str(), &refs)
        .await
        .map_err(|e| db("store read", e))?;
    records(&rows)
}

/// The run records (the first column, JSON) of these rows.
fn records(rows: &[Row]) -> Result<Vec<RunSummary>, StoreError> {
    rows.iter()
        .map(|r| {
            serde_json::from_str(r.get::<_, &str>(0))
                .map_err(|e| unavailable("a stored run record is unreadable", e))
        })
        .collect()
}

/// Store (or replace: a spooled record delivered twice) one run and its labels.
async fn put_run(c: &impl GenericClient, org: &str, run: &RunSummary) -> Result<bool, StoreError> {
    let w = |e| db("store write", e);
    let replaced = c
        .execute(
            "DELETE FROM runs WHERE org = $1 AND run_id = $2",
            &[&org, &run.run_id],
        )
        .await
        .map_err(w)?;
    let record = serde_json::to_string(run).map_err(|e| unavailable("store write", e))?;
    let (started, ended) = (micros(run.started), micros(run.ended));
    let seq: i64 = c
        .query_one(
            "INSERT INTO runs (org, run_id, experiment_ref, started_us, ended_us, status, deviated, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
            &[&org, &run.run_id, &run.experiment_ref, &started, &ended, &run.status, &run.deviated, &record],
        )
        .await
        .map_err(w)?
        .get(0);
    for (k, v) in &run.labels {
        c.execute(
            "INSERT INTO run_labels (org, key, value, seq) VALUES ($1, $2, $3, $4)",
            &[&org, k, v, &seq],
        )
        .await
        .map_err(w)?;
    }
    c.execute(
        "INSERT INTO run_orgs (org, longest_us) VALUES ($1, $2)
         ON CONFLICT (org) DO UPDATE SET longest_us = GREATEST(run_orgs.longest_us, excluded.longest_us)",
        &[&org, &(ended - started)],
    )
    .await
    .map_err(w)?;
    Ok(replaced == 0)
}

/// `?N` placeholders as PostgreSQL's `$N`.
fn dollars(sql: &str) -> String {
    (1..=9).rev().fold(sql.to_string(), |s, n| {
        s.replace(&format!("?{n}"), &format!("${n}"))
    })
}

/// The engagement in force, if any (`lock`: `FOR UPDATE`, inside a write).
async fn select_kill(c: &impl GenericClient, lock: bool) -> Result<Option<Engagement>, StoreError> {
    let sql = if lock {
        format!("{} FOR UPDATE", super::kill::SELECT_SQL)
    } else {
        super::kill::SELECT_SQL.to_string()
    };
    let row = c
        .query_opt(sql.as_str(), &[])
        .await
        .map_err(|e| db("store read (kill switch)", e))?;
    Ok(row.map(|r| {
        super::kill::Row {
            reason: r.get(0),
            by: r.get(1),
            org: r.get(2),
            pid: r.get(3),
            at: r.get(4),
        }
        .engagement()
    }))
}

/// Engage it unless it is on (one upsert: of two replicas engaging at once, the
/// second waits for the first's row lock and then finds it engaged), then read what
/// is in force.
async fn engage_kill(
    c: &impl GenericClient,
    e: &Engagement,
    now: DateTime<Utc>,
) -> Result<Engaged, StoreError> {
    let row = super::kill::Row::of(e);
    let changed = c
        .execute(
            dollars(super::kill::ENGAGE_SQL).as_str(),
            &[
                &row.reason,
                &row.by,
                &row.org,
                &row.pid,
                &row.at,
                &micros(now),
            ],
        )
        .await
        .map_err(|e| db("store write (kill switch)", e))?;
    let there = select_kill(c, false).await?.ok_or_else(|| {
        StoreError::Unavailable("the kill switch reads as released right after engaging it".into())
    })?;
    Ok(if changed > 0 {
        Engaged::Now(there)
    } else {
        Engaged::Already(there)
    })
}

/// Release it: the engagement that was in force, if any (its row locked, so of two
/// releases at once only one reports it).
async fn release_kill(
    c: &impl GenericClient,
    now: DateTime<Utc>,
) -> Result<Option<Engagement>, StoreError> {
    let before = select_kill(c, true).await?;
    c.execute(dollars(super::kill::RELEASE_SQL).as_str(), &[&micros(now)])
        .await
        .map_err(|e| db("store write (kill switch)", e))?;
    Ok(before)
}

/// Answer a write that was not tried (the store cannot be reached): `Close` is
/// handed back, to be answered once the batch is done.
fn refuse(w: Write, e: &StoreError) -> Option<oneshot::Sender<()>> {
    fn no<T>(reply: Reply<T>, e: &StoreError) {
        let _ = reply.send(Err(e.clone()));
    }
    match w {
        Write::Objective(_, _, r) => no(r, e),
        Write::Indicator(_, _, _, r) => no(r, e),
        Write::Delete(_, _, r) => no(r, e),
        Write::Token(_, _, r) => no(r, e),
        Write::Run(_, _, r) => no(r, e),
        Write::Engage(_, r) => no(r, e),
        Write::Release(r) => no(r, e),
        Write::Close(done) => return Some(done),
    }
    None
}

/// The writer task: batch, apply each in a savepoint, commit once, answer. Its
/// connection is made again before a batch when it was lost; a batch whose
/// connection breaks under it fails as a whole (nothing of it is committed unless
/// the break came during the commit itself, when the outcome is unknown) and is
/// never retried here: see docs/store.md, "A lost connection".
async fn writer_loop(
    c: Client,
    connector: Arc<Connector>,
    mut rx: mpsc::UnboundedReceiver<Write>,
    forwarder: Option<Forwarder>,
) {
    let mut slot = Some(c);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let mut closing = None;
        if let Err(e) = connector.ensure(&mut slot).await {
            for w in batch.drain(..) {
                closing = refuse(w, &e).or(closing);
            }
        }
        let mut answers: Vec<Answer> = Vec::new();
        let mut forwards: Vec<Forwarded> = Vec::new();
        let work = async {
            let Some(c) = slot.as_mut() else {
                return Ok(());
            };
            if batch.is_empty() {
                return Ok(());
            }
            let mut tx = c.transaction().await.map_err(|e| db("store write", e))?;
            // Microseconds: what the tables keep, so an answer equals a later read.
            let now = time(micros(Utc::now()));
            // Each organisation's objectives, read once per batch (another replica
            // may change them meanwhile: its writes commit separately, as they would
            // a moment later).
            let mut objectives: HashMap<String, Vec<ObjectiveRecord>> = HashMap::new();
            for w in batch.drain(..) {
                match w {
                    Write::Close(done) => closing = Some(done),
                    Write::Objective(org, o, reply) => {
                        objectives.remove(&org);
                        let sp = tx.savepoint("w").await.map_err(|e| db("store write", e))?;
                        let r = put_objective(&sp, &org, &o, now).await;
                        finish(sp, r.is_ok()).await?;
                        answers.push(answer(reply, r));
                    }
                    Write::Indicator(org, i, origin, reply) => {
                        let sp = tx.savepoint("w").await.map_err(|e| db("store write", e))?;
                        if !objectives.contains_key(&org) {
                            let known = load_objectives(&sp, &org).await?;
                            objectives.insert(org.clone(), known);
                        }
                        let known = objectives.get(&org).map(Vec::as_slice).unwrap_or_default();
                        let r = put_indicator(&sp, &org, &i, &origin, now, known).await;
                        finish(sp, r.is_ok()).await?;
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
                        let sp = tx.savepoint("w").await.map_err(|e| db("store write", e))?;
                        let r = delete_objectives(&sp, &org, &selector).await;
                        finish(sp, r.is_ok()).await?;
                        answers.push(answer(reply, r));
                    }
                    Write::Run(org, run, reply) => {
                        let sp = tx.savepoint("w").await.map_err(|e| db("store write", e))?;
                        let r = put_run(&sp, &org, &run).await;
                        finish(sp, r.is_ok()).await?;
                        answers.push(answer(reply, r));
                    }
                    Write::Engage(e, reply) => {
                        let sp = tx.savepoint("w").await.map_err(|e| db("store write", e))?;
                        let r = engage_kill(&sp, &e, now).await;
                        finish(sp, r.is_ok()).await?;
                        answers.push(answer(reply, r));
                    }
                    Write::Release(reply) => {
                        let sp = tx.savepoint("w").await.map_err(|e| db("store write", e))?;
                        let r = release_kill(&sp, now).await;
                        finish(sp, r.is_ok()).await?;
                        answers.push(answer(reply, r));
                    }
                    Write::Token(org, hash, reply) => {
                        let sp = tx.savepoint("w").await.map_err(|e| db("store write", e))?;
                        let r = sp
                            .execute(
                                "INSERT INTO tokens (hash, org, created_us) VALUES ($1, $2, $3)",
                                &[&hash, &org, &micros(now)],
                            )
                            .await
                            .map(|_| ())
                            .map_err(|e| db("store write", e));
                        finish(sp, r.is_ok()).await?;
                        answers.push(answer(reply, r));
                    }
                }
            }
            tx.commit().await.map_err(|e| db("store commit", e))
        };
        // A connection that broke, or one left mid-transaction by the time limit, is
        // dropped (which closes it, and PostgreSQL rolls back what it had open): the
        // next batch connects anew.
        let (outcome, lost) = match tokio::time::timeout(REQUEST_LIMIT, work).await {
            Ok(r) => {
                let lost = r.is_err() && slot.as_ref().is_none_or(Client::is_closed);
                (r, lost)
            }
            Err(_) => (Err(timed_out("store write")), true),
        };
        if lost {
            slot = None;
        }
        // Nothing is acknowledged before the commit returned.
        for a in answers {
            a(outcome.as_ref().err());
        }
        if let (Some(f), true) = (&forwarder, outcome.is_ok()) {
            f.send(std::mem::take(&mut forwards));
        }
        if let Some(done) = closing {
            if let Some(f) = &forwarder {
                let f = f.clone();
                let _ = tokio::task::spawn_blocking(move || f.finish()).await;
            }
            let _ = done.send(());
            return;
        }
    }
}

async fn put_objective(
    c: &impl GenericClient,
    org: &str,
    o: &Objective,
    now: DateTime<Utc>,
) -> Result<(ObjectiveRecord, bool), StoreError> {
    let id = entity_id(org, "objective", API_VERSION, &o.labels);
    let existing: Option<i64> = c
        .query_opt("SELECT created_us FROM objectives WHERE id = $1", &[&id])
        .await
        .map_err(|e| db("store write", e))?
        .map(|r| r.get(0));
    let created = existing.map(time).unwrap_or(now);
    c.execute(
        "INSERT INTO objectives (id, org, labels, indicator_selector, objective_percent, time_window, created_us, updated_us)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET indicator_selector = excluded.indicator_selector,
             objective_percent = excluded.objective_percent, time_window = excluded.time_window,
             updated_us = excluded.updated_us",
        &[
            &id,
            &org,
            &labels_value(&o.labels),
            &labels_value(&o.indicator_selector),
            &o.objective_percent,
            &o.window,
            &micros(created),
            &micros(now),
        ],
    )
    .await
    .map_err(|e| db("store write", e))?;
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
        // The newest indicators it selects, oldest first (arrival order kept).
        let rows = c
            .query(
                "SELECT id, percent, from_us, to_us, created_us, good, total FROM (
                     SELECT * FROM indicators WHERE org = $1 AND labels @> $2
                     ORDER BY to_us DESC, seq DESC LIMIT $3) newest
                 ORDER BY to_us, seq",
                &[&org, &labels_value(&o.indicator_selector), &BACKFILL],
            )
            .await
            .map_err(|e| db("store write", e))?;
        for r in rows {
            let id: String = r.get(0);
            insert_result(
                c,
                &record,
                &id,
                r.get(1),
                (r.get(2), r.get(3), r.get(4)),
                (r.get(5), r.get(6)),
            )
            .await?;
        }
    }
    Ok((record, existing.is_none()))
}

async fn insert_result(
    c: &impl GenericClient,
    o: &ObjectiveRecord,
    indicator_id: &str,
    percent: f64,
    (from_us, to_us, created_us): (i64, i64, i64),
    (good, total): (Option<i64>, Option<i64>),
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO objective_results (id, objective_id, indicator_id, indicator_selector,
             objective_percent, actual_percent, from_us, to_us, created_us, good, total)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &uuid::Uuid::new_v4().to_string(),
            &o.id,
            &indicator_id,
            &labels_value(&o.indicator_selector),
            &o.objective_percent,
            &percent,
            &from_us,
            &to_us,
            &created_us,
            &good,
            &total,
        ],
    )
    .await
    .map(|_| ())
    .map_err(|e| db("store write", e))
}

/// (objective labels, target, actual) of one objective that judged an indicator.
type Judged = (Labels, f64, f64);

async fn put_indicator(
    c: &impl GenericClient,
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
    c.execute(
        "INSERT INTO indicators (id, org, labels, from_us, to_us, percent, good, total, run_id, trace_id, created_us)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &id,
            &org,
            &labels_value(&i.labels),
            &micros(i.from),
            &micros(i.to),
            &i.percent,
            &good,
            &total,
            &origin.run_id,
            &origin.trace_id,
            &micros(now),
        ],
    )
    .await
    .map_err(|e| db("store write", e))?;
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
            )
            .await?;
        }
    }
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
        results: judged.len(),
    };
    Ok((record, judged))
}

async fn delete_objectives(
    c: &impl GenericClient,
    org: &str,
    selector: &Labels,
) -> Result<usize, StoreError> {
    let ids: Vec<String> = load_objectives(c, org)
        .await?
        .into_iter()
        .filter(|o| selects(selector, &o.labels))
        .map(|o| o.id)
        .collect();
    for id in &ids {
        c.execute(
            "DELETE FROM objective_results WHERE objective_id = $1",
            &[id],
        )
        .await
        .map_err(|e| db("store write", e))?;
        c.execute("DELETE FROM objectives WHERE id = $1", &[id])
            .await
            .map_err(|e| db("store write", e))?;
    }
    Ok(ids.len())
}
