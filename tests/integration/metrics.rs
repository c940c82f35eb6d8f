//! `chaosprometheus.metrics`: run metrics pushed to a real Pushgateway (Debian's
//! prometheus-pushgateway, installed by .ci/run), with the Chaos Toolkit's names.

use crate::common::*;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn pushgateway() -> Option<(ChildGuard, u16)> {
    let found = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join("prometheus-pushgateway").exists())
    });
    if !found {
        if std::env::var("FAULTLINE_REQUIRE_SERVERS").as_deref() == Ok("1") {
            panic!(
                "prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)"
            );
        }
        eprintln!("skipped: prometheus-pushgateway is not installed");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("prometheus-pushgateway")
        .args([
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--persistence.file=".to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child));
    wait_until(Duration::from_secs(30), "the pushgateway to listen", || {
        get(port, "/-/ready").is_some()
    });
    Some((guard, port))
}

/// The body of a `200` answer to `GET path` on the gateway, `None` otherwise.
pub fn get(port: u16, path: &str) -> Option<String> {
    faultline::tls::init();
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    resp.text().ok()
}

fn experiment(url: &str, deviate: bool) -> Value {
    experiment_with(
        json!({"pushgateway_url": url, "job": "faultline-it"}),
        deviate,
    )
}

/// The experiment with the control's `arguments`.
fn experiment_with(arguments: Value, deviate: bool) -> Value {
    json!({
        "title": "metrics", "description": "d",
        "controls": [{"name": "metrics", "provider": {"type": "python", "module": "chaosprometheus.metrics",
            "arguments": arguments}}],
        "steady-state-hypothesis": {"title": "h", "probes": [
            with(sh("probe", "ok", "test ! -e broken"), "tolerance", json!(0))]},
        "method": [sh("action", "maybe-break", if deviate { "touch broken" } else { "true" })],
    })
}

#[test]
fn run_metrics_reach_the_pushgateway_with_the_chaos_toolkit_names() {
    let Some((_gw, port)) = pushgateway() else {
        return;
    };
    let dir = TempDir::new("metrics-push");
    let out = run_experiment(
        &dir,
        &experiment(&format!("http://127.0.0.1:{port}"), true),
        &[],
    );
    assert_eq!(out.code, 1, "{}", out.all_text());
    let trace_id = out.journal()["extensions"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    let metrics = get(port, "/metrics").unwrap();
    let line = |prefix: &str| -> String {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix) && l.contains("job=\"faultline-it\""))
            .unwrap_or_else(|| panic!("{prefix} missing:\n{metrics}"))
            .to_string()
    };
    let status = metrics
        .lines()
        .find(|l| {
            l.starts_with("chaostoolkit_experiment_status{")
                && l.contains("chaostoolkit_experiment_status=\"completed\"")
        })
        .unwrap_or_else(|| panic!("status missing:\n{metrics}"));
    assert!(status.ends_with(" 1"), "{status}");
    assert!(
        status.contains(&format!("chaostoolkit_run_trace_id=\"{trace_id}\"")),
        "{status}"
    );
    assert!(line("chaostoolkit_deviated_experiment_total{").ends_with(" 1"));
    assert!(line("chaostoolkit_inprogress_experiment{").ends_with(" 0"));
    assert!(line("chaostoolkit_experiment_duration_dist_count{").ends_with(" 1"));
}

#[test]
fn a_dead_pushgateway_is_a_warning_and_changes_nothing() {
    let dir = TempDir::new("metrics-dead");
    let out = run_experiment(
        &dir,
        &experiment(&format!("http://127.0.0.1:{}", closed_port()), false),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(
        out.stderr.contains("Prometheus run metrics: cannot reach"),
        "{}",
        out.stderr
    );
}

#[test]
fn grouping_key_values_with_slashes_and_spaces_reach_the_pushgateway_as_given() {
    let Some((_gw, port)) = pushgateway() else {
        return;
    };
    let dir = TempDir::new("metrics-grouping");
    let args = json!({
        "pushgateway_url": format!("http://127.0.0.1:{port}/"),
        "job": "faultline/it job",
        "grouping_key": {"path": "/var/tmp", "team": "sre ops?"},
    });
    let out = run_experiment(&dir, &experiment_with(args, false), &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        !out.stderr.contains("Prometheus run metrics"),
        "{}",
        out.stderr
    );
    let metrics = get(port, "/metrics").unwrap();
    let status = metrics
        .lines()
        .find(|l| {
            l.starts_with("chaostoolkit_experiment_status{")
                && l.contains("chaostoolkit_experiment_status=\"completed\"")
        })
        .unwrap_or_else(|| panic!("status missing:\n{metrics}"));
    for label in [
        "job=\"faultline/it job\"",
        "path=\"/var/tmp\"",
        "team=\"sre ops?\"",
    ] {
        assert!(status.contains(label), "{label} missing: {status}");
    }
    assert!(status.ends_with(" 1"), "{status}");
}

#[test]
fn a_pushgateway_that_refuses_the_push_is_a_warning_saying_why() {
    let Some((_gw, port)) = pushgateway() else {
        return;
    };
    let dir = TempDir::new("metrics-refused");
    // "__bad" is a reserved label name: the Pushgateway answers 400 and says why.
    let args = json!({
        "pushgateway_url": format!("http://127.0.0.1:{port}"),
        "grouping_key": {"__bad": "x"},
    });
    let out = run_experiment(&dir, &experiment_with(args, false), &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.stderr.contains(&format!(
            "Prometheus run metrics: http://127.0.0.1:{port} answered 400"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn a_pushgateway_that_never_answers_is_a_warning_within_the_push_limit() {
    // Accepts the connection, reads the push, never answers.
    let hole = HttpServer::blackhole();
    let dir = TempDir::new("metrics-blackhole");
    let started = std::time::Instant::now();
    let out = run_experiment(&dir, &experiment(&hole.url(""), false), &[]);
    let elapsed = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(
        out.stderr.contains(&format!(
            "Prometheus run metrics: no answer from {} within 1s",
            hole.url("")
        )),
        "{}",
        out.stderr
    );
    // Both pushes (start and end) were sent, and each gave up on its own.
    let puts = hole.requests();
    assert_eq!(puts.len(), 2, "{puts:?}");
    for r in &puts {
        assert_eq!(r.method, "PUT");
        assert!(
            r.path
                .starts_with("/metrics/job/faultline-it/chaostoolkit_experiment_ref/"),
            "{}",
            r.path
        );
    }
    assert!(puts[1].text().contains("chaostoolkit_experiment_status{"));
    // A safety net only: two pushes of at most 1 s each.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}
