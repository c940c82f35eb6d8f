//! Indicators forwarded by Prometheus remote write to a real Prometheus (Debian's
//! `prometheus`, installed by .ci/run, with `--web.enable-remote-write-receiver`):
//! the series arrive with the indicators' own timestamps, and a dead receiver never
//! fails a write.

use crate::common::*;
use faultline::slo::{parse_indicator, parse_objective};
use faultline::store::{Origin, Store, StoreSpec};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A Prometheus with the remote-write receiver on, and nothing to scrape.
fn prometheus(dir: &std::path::Path) -> Option<(ChildGuard, u16)> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("prometheus").exists()));
    if !found {
        if std::env::var("FAULTLINE_REQUIRE_SERVERS").as_deref() == Ok("1") {
            panic!("prometheus is not installed (apt-get install prometheus)");
        }
        eprintln!("skipped: prometheus is not installed");
        return None;
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child));
    wait_until(Duration::from_secs(60), "prometheus to be ready", || {
        query(port, "/-/ready").is_some()
    });
    Some((guard, port))
}

fn query(port: u16, path: &str) -> Option<String> {
    faultline::tls::init();
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .ok()?;
    (resp.status() == 200).then(|| resp.text().ok()).flatten()
}

/// The value of an instant query at `time` (unix seconds), if it has one series.
fn value_at(port: u16, promql: &str, time: f64) -> Option<f64> {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("query", promql)
        .append_pair("time", &format!("{time:.3}"))
        .finish();
    let body = query(port, &format!("/api/v1/query?{q}"))?;
    let v: Value = serde_json::from_str(&body).ok()?;
    let result = v.pointer("/data/result")?.as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0].pointer("/value/1")?.as_str()?.parse().ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn indicators_reach_prometheus_with_their_own_timestamps() {
    let dir = TempDir::new("remote-write");
    let Some((_prom, port)) = prometheus(dir.path()) else {
        return;
    };
    // Unique per run: series from earlier runs stay in a reused data folder.
    let test_id = uuid::Uuid::new_v4().simple().to_string();
    let now = chrono::Utc::now();
    let earlier = now - chrono::Duration::seconds(30);
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let rt = runtime();
    let store = rt.block_on(async {
        let spec = StoreSpec::Sqlite(dir.path().join("store.db"));
        let store = Store::open_with(&spec, Some(&url)).await.unwrap();
        let objective = parse_objective(&json!({
            "metadata": {"labels": {"name": "avail", "service": "api", "test_id": test_id}},
            "spec": {"indicatorSelector": {"test_id": test_id},
                     "objectivePercent": 99.5, "window": "1h"}}))
        .unwrap();
        store.put_objective("acme", &objective).await.unwrap();
        for (at, good, total) in [(earlier, 100, 100), (now, 9, 10)] {
            let i = parse_indicator(&json!({
                "metadata": {"labels": {"test_id": test_id, "app.kubernetes.io/name": "api"}},
                "spec": {"from": at.to_rfc3339(), "to": at.to_rfc3339(),
                         "good": good, "total": total}}))
            .unwrap();
            store
                .put_indicator("acme", &i, &Origin::default())
                .await
                .unwrap();
        }
        store.close().await;
        store
    });
    let Store::Sqlite(s) = &store else {
        unreachable!()
    };
    let stats = s.forward_stats().unwrap();
    assert_eq!((stats.sent, stats.dropped), (2, 0), "{stats:?}");

    let sel = format!("{{test_id=\"{test_id}\", org=\"acme\", app_kubernetes_io_name=\"api\"}}");
    let at = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
    // Each sample is where its indicator says, not where it arrived.
    wait_until(
        Duration::from_secs(30),
        "the forwarded samples to be queryable",
        || value_at(port, &format!("faultline_indicator_percent{sel}"), at(now)) == Some(90.0),
    );
    assert_eq!(
        value_at(
            port,
            &format!("faultline_indicator_percent{sel}"),
            at(earlier)
        ),
        Some(100.0)
    );
    assert_eq!(
        value_at(port, &format!("faultline_indicator_total{sel}"), at(now)),
        Some(10.0)
    );
    let objective = format!("{{test_id=\"{test_id}\", name=\"avail\", service=\"api\"}}");
    assert_eq!(
        value_at(
            port,
            &format!("faultline_objective_target_percent{objective}"),
            at(now)
        ),
        Some(99.5)
    );
    assert_eq!(
        value_at(
            port,
            &format!("faultline_objective_actual_percent{objective}"),
            at(now)
        ),
        Some(90.0)
    );
}

#[test]
fn a_dead_receiver_never_fails_a_write_and_the_loss_is_counted() {
    let dir = TempDir::new("remote-write");
    let url = format!("http://127.0.0.1:{}/api/v1/write", free_port());
    let rt = runtime();
    rt.block_on(async {
        let spec = StoreSpec::Sqlite(dir.path().join("store.db"));
        let store = Store::open_with(&spec, Some(&url)).await.unwrap();
        let objective = parse_objective(&json!({
            "metadata": {"labels": {"name": "o"}},
            "spec": {"indicatorSelector": {"k": "v"}, "objectivePercent": 99, "window": "1h"}}))
        .unwrap();
        store.put_objective("acme", &objective).await.unwrap();
        let i = parse_indicator(&json!({
            "metadata": {"labels": {"k": "v"}},
            "spec": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "percent": 50}}))
        .unwrap();
        let r = store
            .put_indicator("acme", &i, &Origin::default())
            .await
            .unwrap();
        assert_eq!(r.percent, 50.0);
        store.close().await;
        let Store::Sqlite(s) = &store else {
            unreachable!()
        };
        assert_eq!(s.forward_stats().unwrap().dropped, 1);
        // The write itself is there.
        let reopened = Store::open(&spec).await.unwrap();
        let lines = reopened
            .report("acme", &Default::default(), 5)
            .await
            .unwrap();
        assert_eq!(lines[0].results.len(), 1);
        assert_eq!(lines[0].results[0].result.actual_percent, 50.0);
        reopened.close().await;
    });
}

#[test]
fn indicator_push_forwards_to_the_remote_write_url_it_is_given() {
    let dir = TempDir::new("remote-write-cli");
    let Some((_prom, port)) = prometheus(dir.path()) else {
        return;
    };
    let test_id = uuid::Uuid::new_v4().simple().to_string();
    let selector = format!("test_id={test_id}");
    let out = Command::new(bin())
        .args([
            "indicator",
            "push",
            "--selector",
            &selector,
            "--percent",
            "97.5",
        ])
        .env("FAULTLINE_STORE", dir.join("store.db"))
        .env(
            "FAULTLINE_REMOTE_WRITE",
            format!("http://127.0.0.1:{port}/api/v1/write"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let q = format!("faultline_indicator_percent{{test_id=\"{test_id}\", org=\"default\"}}");
    wait_until(
        Duration::from_secs(30),
        "the pushed indicator in Prometheus",
        || value_at(port, &q, now) == Some(97.5),
    );
}
