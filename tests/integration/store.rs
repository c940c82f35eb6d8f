//! One set of store checks, run on every backend: the embedded SQLite file and a real
//! PostgreSQL (Debian's `postgresql`, installed by .ci/run, started here as a non-root
//! process on 127.0.0.1 with its own data folder and socket folder).

use crate::common::*;
use faultline::slo::{parse_indicator, parse_objective, Labels};
use faultline::store::{Origin, Store, StoreSpec};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn objective(name: &str, selector: &[(&str, &str)], target: f64) -> faultline::slo::Objective {
    let sel: Labels = labels(selector);
    parse_objective(&json!({
        "metadata": {"labels": {"name": name, "service": "api"}},
        "spec": {"indicatorSelector": sel, "objectivePercent": target, "window": "1h"}}))
    .unwrap()
}

fn indicator(selector: &[(&str, &str)], percent: f64, at: &str) -> faultline::slo::Indicator {
    let mut l = labels(selector);
    l.insert("extra".into(), "kept".into());
    parse_indicator(&json!({
        "metadata": {"labels": l},
        "spec": {"from": at, "to": at, "percent": percent}}))
    .unwrap()
}

/// Everything a backend must do the same way. `reopen` gives a new handle on the
/// same data (after the first is closed).
async fn checks(store: Store, reopen: impl std::future::Future<Output = Store>) {
    let avail = [("category", "Availability")];
    // Upsert by labels: the same id, the first creation time kept.
    let (o, new) = store
        .put_objective("Acme", &objective("avail", &avail, 99.0))
        .await
        .unwrap();
    assert!(new);
    let (again, new) = store
        .put_objective("acme", &objective("avail", &avail, 99.5))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(again.id, o.id);
    assert_eq!(again.created_at, o.created_at);
    assert_eq!(
        store.objectives("acme", &Labels::new()).await.unwrap()[0].objective_percent,
        99.5
    );

    // Indicators become results, newest first (by `to`, then arrival).
    let origin = Origin {
        run_id: Some("run-1".into()),
        trace_id: Some("0af7651916cd43dd8448eb211c80319c".into()),
    };
    let r = store
        .put_indicator(
            "acme",
            &indicator(&avail, 100.0, "2026-01-01T00:00:00Z"),
            &origin,
        )
        .await
        .unwrap();
    assert_eq!(r.results, 1);
    assert_eq!(r.origin, origin);
    store
        .put_indicator(
            "acme",
            &indicator(&avail, 90.0, "2026-01-01T00:02:00Z"),
            &Origin::default(),
        )
        .await
        .unwrap();
    store
        .put_indicator(
            "acme",
            &indicator(&avail, 95.0, "2026-01-01T00:01:00Z"),
            &Origin::default(),
        )
        .await
        .unwrap();
    let lines = store.report("acme", &Labels::new(), 5).await.unwrap();
    let actual: Vec<f64> = lines[0]
        .results
        .iter()
        .map(|r| r.result.actual_percent)
        .collect();
    assert_eq!(actual, [90.0, 95.0, 100.0]);
    assert!((lines[0].results[0].result.remaining_percent + 9.5).abs() < 1e-9);

    // Reads by indicator selector, with a limit.
    let by = store
        .results_by_indicator_selector("acme", &labels(&avail), 2)
        .await
        .unwrap();
    assert_eq!(by.len(), 2);
    assert_eq!(by[0].result.actual_percent, 90.0);

    // A window.
    let from = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z")
        .unwrap()
        .into();
    let to = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:01:30Z")
        .unwrap()
        .into();
    let w = store.window_results("acme", &o.id, from, to).await.unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].result.actual_percent, 95.0);

    // Organisations are apart.
    assert!(store
        .report("other", &Labels::new(), 5)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .put_objective("bad org!", &objective("x", &avail, 1.0))
        .await
        .is_err());

    // A new objective judges the indicators already stored.
    let (late, _) = store
        .put_objective("acme", &objective("late", &avail, 80.0))
        .await
        .unwrap();
    let lines = store
        .report("acme", &labels(&[("name", "late")]), 10)
        .await
        .unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].objective.id, late.id);
    assert_eq!(lines[0].results.len(), 3);

    // Concurrent writers: every acknowledged write is there.
    let lat = [("category", "Latency")];
    store
        .put_objective("acme", &objective("latency", &lat, 50.0))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..10 {
                let at = format!("2026-01-02T00:{:02}:{:02}Z", t, n);
                let r = s
                    .put_indicator("acme", &indicator(&lat, 60.0, &at), &Origin::default())
                    .await
                    .unwrap();
                ids.push(r.id);
            }
            ids
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 320);

    // Tokens: kept as hashes, for their organisation.
    let token = store.create_token("Acme").await.unwrap();
    assert_eq!(
        store.token_org(&token).await.unwrap().as_deref(),
        Some("acme")
    );
    assert_eq!(store.token_org("flt_unknown").await.unwrap(), None);
    store.close().await;
    assert!(store
        .put_indicator(
            "acme",
            &indicator(&lat, 1.0, "2026-01-03T00:00:00Z"),
            &Origin::default()
        )
        .await
        .is_err());

    // Everything acknowledged survives a new handle.
    let store = reopen.await;
    let lines = store
        .report("acme", &labels(&[("name", "latency")]), 1000)
        .await
        .unwrap();
    let mut stored: Vec<String> = lines[0]
        .results
        .iter()
        .map(|r| r.indicator_id.clone())
        .collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged);
    assert_eq!(
        store.token_org(&token).await.unwrap().as_deref(),
        Some("acme")
    );

    // Delete by selector, with its results; an empty selector is refused.
    assert!(store
        .delete_objectives("acme", &Labels::new())
        .await
        .is_err());
    let n = store
        .delete_objectives("acme", &labels(&[("service", "api")]))
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert!(store
        .report("acme", &Labels::new(), 5)
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

#[test]
fn the_embedded_store_passes_the_store_checks() {
    let dir = TempDir::new("store-sqlite");
    let spec = StoreSpec::Sqlite(dir.join("nested/folder/store.db"));
    runtime().block_on(async {
        let store = Store::open(&spec).await.unwrap();
        checks(store, async { Store::open(&spec).await.unwrap() }).await;
    });
}

/// A PostgreSQL server for one test: its own data folder, socket folder and port.
pub(crate) struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
    _dir: TempDir,
}

impl Postgres {
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            // initdb and postgres refuse to run as root.
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    pub(crate) fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                let mut v: Vec<PathBuf> = d.flatten().map(|e| e.path().join("bin")).collect();
                v.sort();
                v.pop()
            })
            .filter(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            if std::env::var("FAULTLINE_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("PostgreSQL is not installed (apt-get install postgresql)");
            }
            eprintln!("skipped: PostgreSQL is not installed");
            return None;
        };
        let dir = TempDir::new("postgres");
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of the postgres folder");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            bin,
            data: dir.join("data"),
            port,
            as_postgres,
            _dir: dir,
        };
        let out = pg
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "faultline",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&pg.data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        Some(pg)
    }

    /// Start the server (again, after [`Postgres::stop`]) on the same port and data
    /// folder, waiting until it accepts connections: a database that comes back
    /// after a restart or a failover.
    pub(crate) fn start_again(&self) {
        let socket = self._dir.path().to_path_buf();
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(format!(
                "-k {} -h 127.0.0.1 -p {} -c fsync=on",
                socket.display(),
                self.port
            ))
            .arg("-l")
            .arg(self._dir.join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "pg_ctl start: {}",
            log(&self._dir.join("log"))
        );
    }

    /// Its port on 127.0.0.1 (the superuser `faultline` connects without a password).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// A fresh database on this server.
    pub(crate) fn database(&self, rt: &tokio::runtime::Runtime) -> String {
        let name = format!("t{}", uuid::Uuid::new_v4().simple());
        let admin = format!("postgres://faultline@127.0.0.1:{}/postgres", self.port);
        rt.block_on(async {
            let (c, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            c.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
        });
        format!("postgres://faultline@127.0.0.1:{}/{name}", self.port)
    }
}

fn log(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

impl Postgres {
    /// Stop the server now (immediate shutdown: the clients' connections drop), as a
    /// database that goes away under `faultline serve`. Dropping it stops it too.
    pub(crate) fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn postgresql_passes_the_same_store_checks() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = runtime();
    let url = pg.database(&rt);
    let spec = StoreSpec::parse(Some(&url), None, &|_| None).unwrap();
    assert!(matches!(spec, StoreSpec::Postgres(_)));
    rt.block_on(async {
        let store = Store::open(&spec).await.unwrap();
        checks(store, async { Store::open(&spec).await.unwrap() }).await;
    });
}

#[test]
fn replicas_starting_together_migrate_once_and_share_one_database() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = runtime();
    let url = pg.database(&rt);
    let spec = StoreSpec::Postgres(url);
    rt.block_on(async {
        let (a, b) = tokio::join!(Store::open(&spec), Store::open(&spec));
        let (a, b) = (a.unwrap(), b.unwrap());
        a.put_objective("acme", &objective("shared", &[("k", "v")], 90.0))
            .await
            .unwrap();
        b.put_indicator(
            "acme",
            &indicator(&[("k", "v")], 80.0, "2026-01-01T00:00:00Z"),
            &Origin::default(),
        )
        .await
        .unwrap();
        let lines = a.report("acme", &Labels::new(), 5).await.unwrap();
        assert_eq!(lines[0].results.len(), 1);
        assert_eq!(lines[0].results[0].result.actual_percent, 80.0);
        a.close().await;
        b.close().await;
    });
    // A password in the URL never shows in what names the store.
    let shown = StoreSpec::Postgres("postgres://u:s3cret@127.0.0.1:1/db".into()).describe();
    assert!(!shown.contains("s3cret"), "{shown}");
}

/// Waits for `what` to answer within `limit`: a store call that hangs fails the test
/// instead of holding it.
async fn answers<T>(what: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), what)
        .await
        .expect("the store answered within 60 s (it must fail fast, not hang)")
}

#[test]
fn a_restarted_postgresql_is_reconnected_to_and_the_outage_fails_fast() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = runtime();
    let url = pg.database(&rt);
    let spec = StoreSpec::Postgres(url);
    let avail = [("category", "Availability")];
    let store = rt.block_on(async {
        let store = Store::open(&spec).await.unwrap();
        store
            .put_objective("acme", &objective("avail", &avail, 99.0))
            .await
            .unwrap();
        assert!(store.kill_switch().await.unwrap().is_none());
        store.ready().await.unwrap();
        store
    });

    // The database goes away: every read and write fails as unavailable, at once
    // (not after some timeout of the database's), again and again.
    pg.stop();
    let Store::Postgres(pg_store) = &store else {
        unreachable!()
    };
    let before = pg_store.reconnect_attempts();
    let outage = std::time::Instant::now();
    rt.block_on(async {
        // Many callers at once: they share one attempt (and its backoff), they do
        // not each try to connect.
        let mut calls = Vec::new();
        for _ in 0..64 {
            let s = store.clone();
            calls.push(tokio::spawn(async move {
                s.objectives("acme", &Labels::new()).await
            }));
        }
        for c in calls {
            assert!(answers(c).await.unwrap().is_err());
        }
        for _ in 0..3 {
            let e = answers(store.objectives("acme", &Labels::new()))
                .await
                .unwrap_err();
            assert!(
                matches!(e, faultline::store::StoreError::Unavailable(_)),
                "{e:?}"
            );
            let e = answers(store.put_indicator(
                "acme",
                &indicator(&avail, 50.0, "2026-01-01T00:00:00Z"),
                &Origin::default(),
            ))
            .await
            .unwrap_err();
            assert!(
                matches!(e, faultline::store::StoreError::Unavailable(_)),
                "{e:?}"
            );
            assert!(answers(store.kill_switch()).await.is_err());
            assert!(answers(store.ready()).await.is_err());
        }
    });

    // At most one attempt per backoff (1 s) for the whole process, whatever the
    // number of requests (64 + 3 × 4 here).
    let attempts = pg_store.reconnect_attempts() - before;
    assert!(
        attempts <= 2 + outage.elapsed().as_secs(),
        "{attempts} attempts in {:?}",
        outage.elapsed()
    );
    eprintln!(
        "outage: {} requests, {attempts} connection attempts in {:?}",
        64 + 12,
        outage.elapsed()
    );

    // It comes back on the same port and data: the same handle works again, reads
    // and writes, without being opened anew.
    pg.start_again();
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let read = answers(store.objectives("acme", &Labels::new())).await;
            let write = answers(store.put_indicator(
                "acme",
                &indicator(&avail, 100.0, "2026-01-01T00:01:00Z"),
                &Origin::default(),
            ))
            .await;
            if let (Ok(objectives), Ok(r)) = (&read, &write) {
                assert_eq!(objectives.len(), 1);
                assert_eq!(r.results, 1);
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the store did not come back: {read:?} {write:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        // Every read connection is made again as it is used: many reads at once all
        // work (none is handed a dead connection).
        let mut reads = Vec::new();
        for _ in 0..16 {
            let s = store.clone();
            reads.push(tokio::spawn(async move {
                s.report("acme", &Labels::new(), 5).await
            }));
        }
        for r in reads {
            let lines = answers(r).await.unwrap().unwrap();
            assert_eq!(lines[0].results.len(), 1);
        }
        assert!(store.kill_switch().await.unwrap().is_none());
        store.ready().await.unwrap();
        store.close().await;
    });
}
