//! The shared real-Prometheus fixture: one Debian `prometheus` per test binary,
//! started on first use on a free 127.0.0.1 port with a fresh storage folder,
//! scraping (every second) a `/metrics` target served by this test process from a
//! registry the tests change.
//!
//! ```ignore
//! let Some(prom) = prom::prometheus() else { return };   // skipped without prometheus
//! let m = prom::Metrics::new("my-test");                  // series labelled test="my-test-<id>"
//! m.requests(90, 10);                                     // http_requests_total{code="200"|"500"}
//! m.observe(0.2);                                         // http_request_duration_seconds
//! let q = format!("sum(http_requests_total{{{}}})", m.selector());
//! prom.wait_for(&q, |v| v == 100.0);                      // until the samples are in
//! ```
//! `m.reset()` zeroes its counters and histogram (a counter reset, as a restart),
//! `m.hide()` stops serving its series (they go stale), `m.show()` serves them again;
//! dropping `m` hides them. Each [`Metrics`] has its own `test` label, so tests run in
//! parallel and a reused storage never mixes runs.
//!
//! Prometheus applies new scrape targets on a ~5 s tick: the first samples are
//! queryable about 5-6 s after it starts, hence [`Prom::wait_for`]. It dies with the
//! test process (`PR_SET_PDEATHSIG`, armed from a thread that lives as long as the
//! process: the signal follows the thread that forked, not the process). Without
//! `prometheus` on PATH the tests using it are skipped with a message, except in CI
//! (`CI` or `FAULTLINE_REQUIRE_SERVERS=1`), where it is an error.

#![allow(dead_code)]

use crate::http_server::{Response, Server};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running Prometheus.
pub struct Prom {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port of the scraped target (this process).
    pub target_port: u16,
}

/// The latency histogram's bucket bounds.
pub const BUCKETS: [f64; 6] = [0.05, 0.1, 0.25, 0.5, 1.0, f64::INFINITY];

#[derive(Default, Clone)]
struct Series {
    good: u64,
    bad: u64,
    /// Cumulative per bucket of [`BUCKETS`].
    buckets: [u64; 6],
    count: u64,
    sum: f64,
    hidden: bool,
}

static REGISTRY: Mutex<BTreeMap<String, Series>> = Mutex::new(BTreeMap::new());
static PROM: OnceLock<Option<Prom>> = OnceLock::new();
static TARGET: OnceLock<Server> = OnceLock::new();
static CHILD: Mutex<Option<(Child, std::path::PathBuf)>> = Mutex::new(None);

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<String, Series>> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether the servers the tests need must be there (CI).
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
        || std::env::var("FAULTLINE_REQUIRE_SERVERS").as_deref() == Ok("1")
}

/// The test binary's Prometheus, started on first call; `None` (after saying so)
/// when `prometheus` is not installed outside CI.
pub fn prometheus() -> Option<&'static Prom> {
    let p = PROM.get_or_init(start).as_ref();
    if p.is_none() {
        eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
    }
    p
}

fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("prometheus").is_file()))
}

fn start() -> Option<Prom> {
    if !installed() {
        assert!(
            !required(),
            "prometheus is not installed (apt-get install prometheus)"
        );
        return None;
    }
    let target = TARGET.get_or_init(|| Server::start(|_| exposition()));
    let dir = std::env::temp_dir().join(format!(
        "faultline-prom-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: faultline-tests\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            target.port
        ),
    )
    .unwrap();
    let port = crate::common::free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    // Spawned from a thread that never ends: PR_SET_PDEATHSIG fires when the forking
    // thread exits, and test threads end with their test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("prometheus-parent".into())
        .spawn(move || {
            let mut cmd = Command::new("prometheus");
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            let r = cmd.spawn();
            let _ = tx.send(r);
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    let child = rx.recv().unwrap().expect("start prometheus");
    *CHILD.lock().unwrap_or_else(|p| p.into_inner()) = Some((child, dir));
    stop_at_exit_too();
    let prom = Prom {
        port,
        url: format!("http://127.0.0.1:{port}"),
        target_port: target.port,
    };
    crate::common::wait_until(Duration::from_secs(60), "prometheus to be ready", || {
        get(&prom.url, "/-/ready").is_some()
    });
    Some(prom)
}

/// The child gets SIGKILL when the thread that spawned it ends.
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent; nothing
    // else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn stop_at_exit_too() {
    // SAFETY: registers a plain extern "C" function that only uses a mutex (try_lock)
    // and std calls.
    unsafe {
        libc::atexit(stop_at_exit);
    }
}

/// The test harness exits with `exit()`: stop Prometheus and remove its storage then.
extern "C" fn stop_at_exit() {
    if let Ok(mut c) = CHILD.try_lock() {
        if let Some((mut child, dir)) = c.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn get(base: &str, path_and_query: &str) -> Option<String> {
    faultline::tls::init();
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?
        .get(format!("{base}{path_and_query}"))
        .send()
        .ok()?;
    (resp.status() == 200).then(|| resp.text().ok()).flatten()
}

/// The text exposition of every shown series.
fn exposition() -> Response {
    let mut out = String::new();
    out.push_str("# TYPE http_requests_total counter\n");
    let reg = registry();
    for (test, s) in reg.iter().filter(|(_, s)| !s.hidden) {
        out.push_str(&format!(
            "http_requests_total{{test=\"{test}\",code=\"200\"}} {}\n",
            s.good
        ));
        out.push_str(&format!(
            "http_requests_total{{test=\"{test}\",code=\"500\"}} {}\n",
            s.bad
        ));
    }
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for (test, s) in reg.iter().filter(|(_, s)| !s.hidden) {
        for (le, n) in BUCKETS.iter().zip(s.buckets) {
            let le = if le.is_infinite() {
                "+Inf".to_string()
            } else {
                le.to_string()
            };
            out.push_str(&format!(
                "http_request_duration_seconds_bucket{{test=\"{test}\",le=\"{le}\"}} {n}\n"
            ));
        }
        out.push_str(&format!(
            "http_request_duration_seconds_count{{test=\"{test}\"}} {}\n",
            s.count
        ));
        out.push_str(&format!(
            "http_request_duration_seconds_sum{{test=\"{test}\"}} {}\n",
            s.sum
        ));
    }
    Response::text(200, &out).content_type("text/plain; version=0.0.4")
}

/// One test's series, labelled `test="<tag>-<unique>"`; hidden when dropped.
pub struct Metrics {
    test: String,
}

impl Metrics {
    /// New series (all zero, served from now on).
    pub fn new(tag: &str) -> Metrics {
        let test = format!("{tag}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        registry().insert(test.clone(), Series::default());
        Metrics { test }
    }

    /// The `test` label's value.
    pub fn test(&self) -> &str {
        &self.test
    }

    /// `test="<value>"`, to put in a selector.
    pub fn selector(&self) -> String {
        format!("test=\"{}\"", self.test)
    }

    fn with(&self, f: impl FnOnce(&mut Series)) {
        f(registry().entry(self.test.clone()).or_default());
    }

    /// Count `good` requests (code 200) and `bad` ones (code 500).
    pub fn requests(&self, good: u64, bad: u64) {
        self.with(|s| {
            s.good += good;
            s.bad += bad;
        });
    }

    /// Observe one request latency, in seconds.
    pub fn observe(&self, seconds: f64) {
        self.with(|s| {
            for (i, le) in BUCKETS.iter().enumerate() {
                if seconds <= *le {
                    s.buckets[i] += 1;
                }
            }
            s.count += 1;
            s.sum += seconds;
        });
    }

    /// Set everything back to zero: a counter reset, as after a restart.
    pub fn reset(&self) {
        self.with(|s| {
            *s = Series {
                hidden: s.hidden,
                ..Series::default()
            }
        });
    }

    /// Stop serving these series (Prometheus marks them stale at the next scrape).
    pub fn hide(&self) {
        self.with(|s| s.hidden = true);
    }

    /// Serve them again.
    pub fn show(&self) {
        self.with(|s| s.hidden = false);
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.hide();
    }
}

impl Prom {
    /// An instant query's document, as Prometheus answers it (`None` on an error).
    pub fn query(&self, promql: &str) -> Option<Value> {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .finish();
        serde_json::from_str(&get(&self.url, &format!("/api/v1/query?{q}"))?).ok()
    }

    /// Every value of an instant query (one per series), `None` on an error.
    pub fn values(&self, promql: &str) -> Option<Vec<f64>> {
        let doc = self.query(promql)?;
        doc.pointer("/data/result")?
            .as_array()?
            .iter()
            .map(|s| {
                faultline::provider::prometheus::client::parse_value(
                    s.pointer("/value/1")?.as_str()?,
                )
            })
            .collect()
    }

    /// Wait (at most 30 s) until the query returns exactly one value for which `cond`
    /// holds; return it. Panics with the last answer otherwise.
    pub fn wait_for(&self, promql: &str, cond: impl Fn(f64) -> bool) -> f64 {
        self.wait_for_all(promql, |vs| vs.len() == 1 && cond(vs[0]))[0]
    }

    /// Wait (at most 30 s) until the query's values satisfy `cond`; return them.
    pub fn wait_for_all(&self, promql: &str, cond: impl Fn(&[f64]) -> bool) -> Vec<f64> {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Some(vs) = self.values(promql) {
                if cond(&vs) {
                    return vs;
                }
                last = Some(vs);
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {promql:?}; last answer: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Wait (at most 30 s) until the query returns no series (hidden series gone stale).
    pub fn wait_empty(&self, promql: &str) {
        self.wait_for_all(promql, <[f64]>::is_empty);
    }
}
