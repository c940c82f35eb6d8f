//! The run history's queries on a large history (issue 14), printed next to the goal:
//! `faultline correlate` and `faultline runs list --since 30d` on 100,000 recorded
//! runs, on the embedded SQLite store and on a real PostgreSQL (Debian's, started here
//! as a non-root process on 127.0.0.1). Goal: under 50 ms each (median), for the whole
//! command: process start, opening the store, the query, rendering JSON.
//!
//! The history: 100,000 runs over the last 365 days, 200 experiments, 20 services
//! (`service` and `env` labels), 1 to 30 minutes each and one in a hundred up to 6
//! hours, a tenth deviated. It is written through the library (`Store::put_run`, 256
//! concurrent writers, group commit) and the write rate is printed too. Each command
//! runs 5 times to warm the caches, then 21 times measured; the in-process query
//! (`Store::overlapping`, `Store::runs`) is timed alongside, so the command's own cost
//! shows. Nothing is asserted: the program prints what it measures; it exits non-zero
//! only when it cannot measure.
//!
//! Run with `cargo bench --bench history`. `FAULTLINE_BENCH_RUNS` changes the count.

use chrono::{Duration as Span, Utc};
use faultline::store::runs::{Overlap, RunFilter, RunSummary};
use faultline::store::{Store, StoreSpec};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const ORG: &str = "bench";
const WRITERS: usize = 256;
const WARM: usize = 5;
const MEASURED: usize = 21;

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("history bench: cannot measure: {msg}");
    std::process::exit(2);
}

/// A tiny deterministic generator (xorshift), so every run builds the same history.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn history(n: usize) -> Vec<RunSummary> {
    let now = Utc::now();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    (0..n)
        .map(|i| {
            let exp = rng.below(200);
            let service = exp % 20;
            let started = now - Span::seconds(rng.below(365 * 86_400) as i64);
            let minutes = if rng.below(100) == 0 {
                rng.below(360) + 1
            } else {
                rng.below(30) + 1
            };
            let status = match rng.below(20) {
                0 => "failed",
                1 => "interrupted",
                2 => "aborted",
                _ => "completed",
            };
            RunSummary {
                run_id: format!("run-{i:07}"),
                title: format!("experiment {exp}: kill a pod of svc-{service}"),
                experiment_ref: format!("{exp:032x}"),
                tags: vec!["kubernetes".into(), format!("service:svc-{service}")],
                labels: [
                    ("service".to_string(), format!("svc-{service}")),
                    ("env".to_string(), "prod".to_string()),
                ]
                .into(),
                started,
                ended: started + Span::minutes(minutes as i64),
                status: status.into(),
                deviated: rng.below(10) == 0,
                trace_id: Some(format!("{:032x}", rng.next())),
                journal: Some(format!("/var/lib/chaos/journals/run-{i:07}.json")),
                host: Some("runner-1".into()),
                alerts: vec![],
                slo: vec![],
            }
        })
        .collect()
}

async fn fill(store: &Store, runs: Vec<RunSummary>) -> f64 {
    let runs = Arc::new(runs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (store, runs, next) = (store.clone(), runs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(r) = runs.get(i) else { break };
                if let Err(e) = store.put_run(ORG, r).await {
                    fail(format!("writing run {i}: {e}"));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| fail(e));
    }
    runs.len() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The whole command, `MEASURED` times after `WARM`: median and max in ms, and the
/// number of runs its JSON held.
fn command(args: &[&str], home: &Path) -> (f64, f64, usize) {
    let bin = env!("CARGO_BIN_EXE_faultline");
    let mut times = Vec::new();
    let mut count = 0;
    for i in 0..WARM + MEASURED {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(args)
            .env("HOME", home)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| fail(e));
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            fail(format!(
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if i >= WARM {
            times.push(ms);
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| fail(e));
        count = v
            .get("runs")
            .unwrap_or(&v)
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
    }
    let max = times.iter().copied().fold(0.0, f64::max);
    (median(times), max, count)
}

async fn in_process<F, Fut>(f: F) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times = Vec::new();
    for i in 0..WARM + MEASURED {
        let t = Instant::now();
        f().await;
        if i >= WARM {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

async fn measure(
    kind: &str,
    spec: &StoreSpec,
    store_arg: &str,
    runs: Vec<RunSummary>,
    home: &Path,
) {
    let store = Store::open(spec).await.unwrap_or_else(|e| fail(e));
    let n = runs.len();
    // The incident: a week ago (a time the history is dense around).
    let at = Utc::now() - Span::days(7);
    let rate = fill(&store, runs).await;
    println!("{kind}: {n} runs written through the library at {rate:.0} runs/s");
    let overlap = Overlap {
        from: at - Span::minutes(30),
        to: at,
        labels: Default::default(),
        limit: 50,
    };
    // The labelled query asks for the service of a run the window holds, so it finds
    // something (a service picked blindly may have no run in 30 minutes).
    let service = store
        .overlapping(ORG, &overlap)
        .await
        .unwrap_or_else(|e| fail(e))
        .first()
        .and_then(|r| r.labels.get("service").cloned())
        .unwrap_or_else(|| "svc-3".into());
    let mut labelled = overlap.clone();
    labelled.labels.insert("service".into(), service.clone());
    let since = RunFilter {
        since: Some(Utc::now() - Span::days(30)),
        limit: 50,
        ..RunFilter::default()
    };
    let q1 = in_process(|| async {
        store
            .overlapping(ORG, &overlap)
            .await
            .map(|r| r.len())
            .unwrap_or_else(|e| fail(e))
    })
    .await;
    let q2 = in_process(|| async {
        store
            .overlapping(ORG, &labelled)
            .await
            .map(|r| r.len())
            .unwrap_or_else(|e| fail(e))
    })
    .await;
    let q3 = in_process(|| async {
        store
            .runs(ORG, &since)
            .await
            .map(|r| r.len())
            .unwrap_or_else(|e| fail(e))
    })
    .await;
    store.close().await;
    let at_text = at.to_rfc3339();
    let base = ["--store", store_arg, "--org", ORG, "--format", "json"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        extra
            .iter()
            .map(|s| s.to_string())
            .chain(base.iter().map(|s| s.to_string()))
            .collect()
    };
    let c1: Vec<String> = ["correlate", "--at", &at_text, "--window", "30m"]
        .iter()
        .map(|s| s.to_string())
        .chain(base.iter().map(|s| s.to_string()))
        .collect();
    let mut c2 = c1.clone();
    c2.extend(["--label".to_string(), format!("service={service}")]);
    let c3 = with(&["runs", "list", "--since", "30d"]);
    let c4 = with(&["runs", "list", "--since", "30d", "--limit", "0"]);
    let goal = |ms: f64| if ms < 50.0 { "met" } else { "NOT met" };
    for (name, args, q) in [
        ("correlate --at <7 days ago> --window 30m", &c1, Some(q1)),
        (
            "correlate ... --label service=<a service in the window>",
            &c2,
            Some(q2),
        ),
        ("runs list --since 30d (50 newest)", &c3, Some(q3)),
        ("runs list --since 30d --limit 0 (all)", &c4, None),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (med, max, count) = command(&args, home);
        let query = q
            .map(|q| format!(", query alone {q:.2} ms"))
            .unwrap_or_default();
        let judged = if q.is_some() {
            format!(" (goal < 50 ms: {})", goal(med))
        } else {
            " (no goal)".into()
        };
        println!(
            "{kind}: {name}: {count} runs, command median {med:.1} ms, max {max:.1} ms{query}{judged}"
        );
    }
}

/// A PostgreSQL server for the bench (as the integration tests start one).
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    port: u16,
    dir: PathBuf,
}

impl Postgres {
    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn start(dir: PathBuf) -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()?;
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        std::fs::create_dir_all(&dir).ok()?;
        if as_postgres {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .ok()?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let pg = Postgres {
            bin,
            data: dir.join("data"),
            as_postgres,
            port,
            dir,
        };
        let ok = pg
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
            .stdout(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            fail("initdb failed");
        }
        let ok = pg
            .command("pg_ctl")
            .arg("-D")
            .arg(&pg.data)
            .arg("-o")
            .arg(format!(
                "-k {} -h 127.0.0.1 -p {}",
                pg.dir.display(),
                pg.port
            ))
            .arg("-l")
            .arg(pg.dir.join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            fail("pg_ctl start failed");
        }
        Some(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() {
    let n: usize = std::env::var("FAULTLINE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e));
    let root = std::env::temp_dir().join(format!("faultline-bench-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap_or_else(|e| fail(e));
    let runs = history(n);
    println!(
        "history bench: {n} runs over 365 days, 200 experiments, 20 services; commands: {} warm-up + {} measured runs each",
        WARM, MEASURED
    );

    let db = root.join("store.db");
    rt.block_on(measure(
        "SQLite",
        &StoreSpec::Sqlite(db.clone()),
        db.to_str().unwrap(),
        runs.clone(),
        &root,
    ));

    match Postgres::start(root.join("pg")) {
        Some(pg) => {
            let url = format!("postgres://faultline@127.0.0.1:{}/postgres", pg.port);
            rt.block_on(measure(
                "PostgreSQL",
                &StoreSpec::Postgres(url.clone()),
                &url,
                runs,
                &root,
            ));
        }
        None => println!("PostgreSQL: not installed here, not measured"),
    }
    let _ = std::fs::remove_dir_all(&root);
}
