//! What the `prometheus` provider adds to a PromQL query (issue 12), printed next to
//! its goal: against a real Prometheus on 127.0.0.1 (Debian's `prometheus`, scraping
//! itself so `up` has a sample), N bare HTTP round trips (reqwest, `GET
//! /api/v1/query?query=up`, body read) and, in the same run, the same query through the
//! provider's code path in process (`Provider::from_value` then `Provider::run` with a
//! run's `Ctx`: endpoint resolution, the PromQL client, parsing every series, the
//! output document). Both after a warm-up, interleaved so they share the machine's
//! state. Prints median and max of each and the added time (difference of medians).
//! Goal: under 5 ms added.
//!
//! Nothing is asserted; it exits non-zero only when it cannot measure (no Prometheus,
//! no sample). Run with `cargo bench --bench promql`; `FAULTLINE_BENCH_QUERIES`
//! (default 200) sets N.

use faultline::provider::{http::Clients, process::Processes, Ctx, Provider, RunFacts};
use serde_json::{json, Map, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child, std::path::PathBuf);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

fn main() {
    faultline::tls::init();
    let n: usize = std::env::var("FAULTLINE_BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("faultline-bench-promql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let port = free_port();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    )
    .expect("write the config");
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        eprintln!("cannot start prometheus (apt-get install prometheus)");
        std::process::exit(2);
    };
    let _guard = Kill(child, dir);
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/api/v1/query?query=up");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let bare = reqwest::Client::new();
    // Wait (at most 30 s) for the first sample of `up`.
    let ready = rt.block_on(async {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = bare.get(&url).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["data"]["result"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                    {
                        return true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    });
    if !ready {
        eprintln!("prometheus gave no sample of `up` within 30 s");
        std::process::exit(2);
    }

    let provider =
        Provider::from_value(&json!({"type": "prometheus", "query": "up", "base_url": base}))
            .expect("a provider");
    let configuration = Map::new();
    let http = Clients::default();
    let processes = Processes::default();
    let redactor = faultline::redact::Redactor::new(Vec::<String>::new());
    let facts = RunFacts {
        run_id: "bench".into(),
        trace_id: None,
        started: chrono::Utc::now(),
        slo: Default::default(),
        method: Default::default(),
        prometheus: Default::default(),
        python: faultline::provider::python::worker::Worker::new(processes.clone()),
    };
    let ctx = Ctx {
        configuration: std::sync::Arc::new(configuration),
        secrets: Map::new(),
        http: &http,
        headers: Vec::new(),
        env: Vec::new(),
        logs: Default::default(),
        trace: None,
        redactor: &redactor,
        output_limit: 4 << 20,
        warnings: Default::default(),
        processes: &processes,
        run: &facts,
    };
    let (mut t_bare, mut t_prov) = (Vec::with_capacity(n), Vec::with_capacity(n));
    rt.block_on(async {
        for i in 0..(n + 20) {
            let t = Instant::now();
            let body = bare
                .get(&url)
                .send()
                .await
                .expect("a bare answer")
                .text()
                .await
                .expect("a body");
            let d_bare = t.elapsed();
            assert!(body.contains("success"));
            let t = Instant::now();
            let out = provider.run(&ctx).await.expect("a provider answer");
            let d_prov = t.elapsed();
            assert!(out["series"].as_array().is_some_and(|s| !s.is_empty()));
            if i >= 20 {
                t_bare.push(d_bare);
                t_prov.push(d_prov);
            }
        }
    });
    let (bm, bx) = stats(t_bare);
    let (pm, px) = stats(t_prov);
    println!(
        "PromQL instant query `up`, {n} each after 20 warm-up, 127.0.0.1 (Prometheus {}):",
        version()
    );
    println!("  bare reqwest GET      median {bm:7.3} ms   max {bx:7.3} ms");
    println!("  prometheus provider   median {pm:7.3} ms   max {px:7.3} ms");
    println!("  added (median diff)   {:7.3} ms   goal < 5 ms", pm - bm);
}

fn version() -> String {
    Command::new("prometheus")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| "?".into())
}
