//! The SLO store under load, printed as figures next to their goals (issue 11):
//!
//! - (1) acknowledged durable indicator writes per second over HTTP, from 64
//!   concurrent keep-alive clients, to `faultline serve` on the embedded store (every
//!   answer is a 201 after the commit's fsync), and side by side in the same run the
//!   same pushes (same clients, same count) to `prometheus-pushgateway`, which keeps
//!   them in memory only. Goals: at least 5,000 writes/s, and at least the
//!   Pushgateway's rate.
//! - (2) `faultline slo report` latency with 1,000,000 indicators stored (100
//!   objectives, 10,000 indicators each, so 1,000,000 objective results too): the whole
//!   command (process start, open, query, render) and the server's
//!   `GET /api/v1/orgs/{org}/report`. Goal: under 200 ms (median).
//! - (3) the server's peak RSS (`VmHWM`) after it served the load on that store.
//!   Goal: under 100 MB.
//!
//! The million indicators are written through the library (`Store::put_indicator`,
//! 256 concurrent writers, group commit) before the server starts, and their rate is
//! printed too. Nothing is asserted: the program prints what it measures and exits 0;
//! it exits non-zero only when it cannot measure (a server that does not start, a
//! write that is refused). Every load loop is bounded by a count.
//!
//! Run with `cargo bench --bench store`. Environment: `FAULTLINE_BENCH_BIN` (default:
//! the release binary next to this bench), `FAULTLINE_BENCH_INDICATORS` (default
//! 1,000,000), `FAULTLINE_BENCH_WRITES` (HTTP writes per contender, default 100,000).

use faultline::slo::{parse_indicator, parse_objective};
use faultline::store::{Origin, Store, StoreSpec};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Makes request number `i` on a client.
type MakeRequest = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

const CLIENTS: usize = 64;
const OBJECTIVES: usize = 100;
const ORG: &str = "bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bin() -> PathBuf {
    if let Some(b) = std::env::var_os("FAULTLINE_BENCH_BIN") {
        return b.into();
    }
    let me = std::env::current_exe().expect("own path");
    // target/release/deps/store-… -> target/release/faultline
    me.parent()
        .and_then(Path::parent)
        .map(|d| d.join("faultline"))
        .expect("the release binary's folder")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("store bench: cannot measure: {msg}");
    std::process::exit(2);
}

fn wait_for(url: &str) {
    let client = reqwest::blocking::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if client
            .get(url)
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fail(format!("{url} never answered"));
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// 100 objectives, one per service, and `n` indicators spread over them.
async fn seed(db: &Path, n: usize) -> f64 {
    let store = Store::open(&StoreSpec::Sqlite(db.to_path_buf()))
        .await
        .unwrap_or_else(|e| fail(e));
    for s in 0..OBJECTIVES {
        let o = parse_objective(&json!({
            "metadata": {"labels": {"name": format!("availability-{s}"), "service": format!("svc-{s}")}},
            "spec": {"indicatorSelector": {"service": format!("svc-{s}"), "category": "Availability"},
                     "objectivePercent": 99.9, "window": "1h"}}))
        .unwrap();
        store
            .put_objective(ORG, &o)
            .await
            .unwrap_or_else(|e| fail(e));
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (store, next) = (store.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let at = chrono::Utc::now() - chrono::Duration::seconds((n - i) as i64);
                let ind = parse_indicator(&json!({
                    "metadata": {"labels": {"service": format!("svc-{}", i % OBJECTIVES), "category": "Availability"}},
                    "spec": {"from": at.to_rfc3339(), "to": at.to_rfc3339(), "percent": if i % 10 == 0 { 90.0 } else { 100.0 }}}))
                .unwrap();
                store
                    .put_indicator(ORG, &ind, &Origin::default())
                    .await
                    .unwrap_or_else(|e| fail(e));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    store.close().await;
    rate
}

/// `total` requests from 64 keep-alive clients; returns acknowledged requests/s.
async fn load(total: usize, make: MakeRequest, ok_status: u16) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (next, make) = (next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            // One client each: its own keep-alive connection.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .tcp_nodelay(true)
                .build()
                .unwrap();
            let mut ok = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return ok;
                }
                match make(&client, i).send().await {
                    Ok(r) if r.status().as_u16() == ok_status => ok += 1,
                    Ok(r) => fail(format!("a write was answered {}", r.status())),
                    Err(e) => fail(format!("a write failed: {e}")),
                }
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    ok as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    faultline::tls::init();
    let bin = bin();
    if !bin.exists() {
        fail(format!(
            "{} does not exist (cargo build --release)",
            bin.display()
        ));
    }
    let indicators = env_usize("FAULTLINE_BENCH_INDICATORS", 1_000_000);
    let writes = env_usize("FAULTLINE_BENCH_WRITES", 100_000);
    let dir = std::env::temp_dir().join(format!("faultline-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("store.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    println!("faultline store bench: {} ({} indicators seeded, {} HTTP writes per contender, {CLIENTS} clients)", bin.display(), indicators, writes);
    let seed_rate = rt.block_on(seed(&db, indicators));
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!("seeded {indicators} indicators through the library at {seed_rate:.0}/s (store file {size:.0} MB)");

    // (2a) The command, on the embedded file, before the server holds it.
    let mut cli = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let out = Command::new(&bin)
            .args(["slo", "report", "--format", "json", "--org", ORG, "--store"])
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        cli.push(start.elapsed().as_secs_f64() * 1000.0);
        if !out.status.success() {
            fail(format!(
                "slo report: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let cli_ms = median(cli);

    let token = Command::new(&bin)
        .args(["token", "create", "--org", ORG, "--store"])
        .arg(&db)
        .output()
        .unwrap();
    if !token.status.success() {
        fail(format!(
            "token create: {}",
            String::from_utf8_lossy(&token.stderr)
        ));
    }
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();

    let port = free_port();
    let server = Guard(
        Command::new(&bin)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--store"])
            .arg(&db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{base}/healthz"));

    let pg_port = free_port();
    let _pushgateway = match Command::new("prometheus-pushgateway")
        .args([
            format!("--web.listen-address=127.0.0.1:{pg_port}"),
            "--persistence.file=".to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => Guard(c),
        Err(e) => fail(format!("prometheus-pushgateway: {e}")),
    };
    let pg_base = format!("http://127.0.0.1:{pg_port}");
    wait_for(&format!("{pg_base}/-/ready"));

    // (1) Interleaved halves, so drift on the machine hits both contenders alike.
    let url = format!("{base}/api/v1/orgs/{ORG}/indicators");
    let auth = format!("Bearer {token}");
    let ours: MakeRequest = Arc::new(move |c, i| {
        let now = chrono::Utc::now().to_rfc3339();
        c.post(&url).header("Authorization", &auth).json(&json!({
                "metadata": {"labels": {"service": format!("svc-{}", i % OBJECTIVES), "category": "Availability"}},
                "spec": {"from": now, "to": now, "percent": 100.0}}))
    });
    let theirs: MakeRequest = Arc::new(move |c, i| {
        c.put(format!(
            "{pg_base}/metrics/job/bench/instance/{}",
            i % CLIENTS
        ))
        .body(format!(
            "faultline_indicator_percent{{service=\"svc-{}\",category=\"Availability\"}} 100\n",
            i % OBJECTIVES
        ))
    });
    let half = writes / 2;
    let mut ours_rates = Vec::new();
    let mut theirs_rates = Vec::new();
    for _ in 0..2 {
        ours_rates.push(rt.block_on(load(half, ours.clone(), 201)));
        theirs_rates.push(rt.block_on(load(half, theirs.clone(), 200)));
    }
    let ours_rate = ours_rates.iter().sum::<f64>() / ours_rates.len() as f64;
    let theirs_rate = theirs_rates.iter().sum::<f64>() / theirs_rates.len() as f64;

    // (2b) The server's report.
    let client = reqwest::blocking::Client::new();
    let mut served = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        let r = client
            .get(format!("{base}/api/v1/orgs/{ORG}/report?limit=5"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap_or_else(|e| fail(e));
        let body = r.text().unwrap_or_default();
        served.push(start.elapsed().as_secs_f64() * 1000.0);
        if !body.starts_with('[') {
            fail(format!(
                "report answered {}",
                body.chars().take(200).collect::<String>()
            ));
        }
    }
    let served_ms = median(served);
    let rss = peak_rss_mb(server.0.id());

    println!();
    println!("(1) acknowledged writes/s over HTTP, {CLIENTS} keep-alive clients, {writes} writes per contender");
    println!("    faultline serve (durable, fsync per commit) {ours_rate:>10.0}/s  (halves: {:.0}, {:.0})", ours_rates[0], ours_rates[1]);
    println!("    prometheus-pushgateway (memory only)        {theirs_rate:>10.0}/s  (halves: {:.0}, {:.0})", theirs_rates[0], theirs_rates[1]);
    println!(
        "    goal >= 5000/s: {}; goal >= the Pushgateway's rate: {} ({:.2}x)",
        verdict(ours_rate >= 5000.0),
        verdict(ours_rate >= theirs_rate),
        ours_rate / theirs_rate
    );
    println!("(2) slo report with {indicators} indicators, {OBJECTIVES} objectives (median)");
    println!("    faultline slo report --format json (whole command) {cli_ms:>7.1} ms  goal < 200 ms: {}", verdict(cli_ms < 200.0));
    println!("    GET /api/v1/orgs/{ORG}/report (server)             {served_ms:>7.1} ms  goal < 200 ms: {}", verdict(served_ms < 200.0));
    println!(
        "(3) server peak RSS (VmHWM) after the load              {rss:>7.1} MB  goal < 100 MB: {}",
        verdict(rss < 100.0)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
