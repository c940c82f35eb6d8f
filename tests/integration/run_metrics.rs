//! `faultline.metrics` end to end, with the real binary: pushed to a real Pushgateway
//! that a real Prometheus scrapes (`honor_labels: true`, every second), written by
//! remote write into a real Prometheus, and served on `/metrics` during the run; the
//! series queried back through Prometheus' HTTP API. Each test labels its run with a
//! service of its own (`--label service=...`), so reused storage never mixes runs.
//!
//! The runs wait in an action until the test creates `go` in the run's folder: the
//! "during the run" checks are conditions waited on, never sleeps.

use crate::common::*;
use crate::metrics::{get, pushgateway};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A Prometheus with the remote-write receiver on, scraping the Pushgateway on
/// `pushgateway` (when given) every second with `honor_labels: true`, as the
/// Pushgateway's documentation asks.
fn prometheus(dir: &TempDir, pushgateway: Option<u16>) -> Option<(ChildGuard, u16)> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("prometheus").exists()));
    if !found {
        assert!(
            !crate::prom::required(),
            "prometheus is not installed (apt-get install prometheus)"
        );
        eprintln!("skipped: prometheus is not installed");
        return None;
    }
    let scrape = pushgateway.map_or_else(
        || "scrape_configs: []\n".to_string(),
        |pg| {
            format!(
                "scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{pg}']\n"
            )
        },
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{scrape}"),
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
        get(port, "/-/ready").is_some()
    });
    Some((guard, port))
}

/// Every series of an instant query: (labels, value); empty on an error.
fn query(port: u16, promql: &str) -> Vec<(serde_json::Map<String, Value>, f64)> {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("query", promql)
        .finish();
    let Some(body) = get(port, &format!("/api/v1/query?{q}")) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    v.pointer("/data/result")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|s| {
                    Some((
                        s.get("metric")?.as_object()?.clone(),
                        s.pointer("/value/1")?.as_str()?.parse().ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Wait (at most 30 s) until the query has exactly one series, of value `want`;
/// return its labels.
fn wait_value(port: u16, promql: &str, want: f64) -> serde_json::Map<String, Value> {
    let mut last = Vec::new();
    let start = std::time::Instant::now();
    loop {
        let got = query(port, promql);
        if got.len() == 1 && got[0].1 == want {
            return got.into_iter().next().unwrap().0;
        }
        last = if got.is_empty() { last } else { got };
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {promql} == {want}; last answer: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A run that checks a probe, then waits in its method until `go` exists (bounded:
/// 60 s), with `faultline.metrics` declared with `arguments`.
fn experiment(arguments: Value) -> Value {
    json!({
        "title": "run metrics", "description": "d",
        "controls": [{"name": "metrics", "provider": {"type": "python",
            "module": "faultline.metrics", "arguments": arguments}}],
        "steady-state-hypothesis": {"title": "h", "probes": [
            with(sh("probe", "ok", "true"), "tolerance", json!(0))]},
        "method": [sh("action", "wait-for-go",
            "i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done")],
    })
}

/// A unique service name, the run's target label.
fn service() -> String {
    format!("svc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Start the run in the background, labelled `service=<service>`.
fn start(dir: &TempDir, exp: &Value, service: &str) -> Child {
    let path = dir.experiment(exp);
    let journal = dir.join("journal.json");
    let label = format!("service={service}");
    spawn(
        dir,
        &[
            "run",
            path.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
            "--label",
            &label,
        ],
        &[],
    )
}

/// Let the waiting action end, and the run with it.
fn finish(dir: &TempDir, mut child: Child) -> Output {
    std::fs::write(dir.join("go"), "").unwrap();
    let code = wait_with_limit(&mut child, Duration::from_secs(60));
    collect(dir, code, &dir.join("journal.json"))
}

#[test]
fn pushed_metrics_are_scraped_into_prometheus_during_and_after_the_run_then_the_group_is_deleted() {
    let Some((_gw, pg)) = pushgateway() else {
        return;
    };
    let dir = TempDir::new("run-metrics-push");
    let Some((_prom, prom)) = prometheus(&dir, Some(pg)) else {
        return;
    };
    // Prometheus picks up new targets on a ~5 s tick: scraping has begun once `up` is.
    wait_value(prom, "up{job=\"pushgateway\"}", 1.0);
    let svc = service();
    let child = start(
        &dir,
        &experiment(
            json!({"pushgateway_url": format!("http://127.0.0.1:{pg}"), "delete_after": 3}),
        ),
        &svc,
    );
    // During the run: the gauge alert rules join on, with the target label.
    let labels = wait_value(
        prom,
        &format!("faultline_experiment_active{{service=\"{svc}\"}}"),
        1.0,
    );
    assert_eq!(labels["job"], "faultline", "{labels:?}");
    assert_eq!(labels["experiment"], "run metrics", "{labels:?}");
    let run_id = labels["run_id"].as_str().unwrap().to_string();
    let reference = labels["experiment_ref"].as_str().unwrap().to_string();
    assert_eq!(reference.len(), 32, "{labels:?}");
    // What an alert rule does: keep only what belongs to a service under a run.
    let joined = query(
        prom,
        &format!(
            "faultline_run_info{{service=\"{svc}\"}} and on(service) (faultline_experiment_active == 1)"
        ),
    );
    assert_eq!(joined.len(), 1, "{joined:?}");
    let out = finish(&dir, child);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.journal()["extensions"][0]["run_id"], run_id.as_str());
    assert!(
        !out.stderr.contains("faultline run metrics"),
        "{}",
        out.stderr
    );
    // The group is gone from the Pushgateway (deleted before faultline exited)…
    let gw = get(pg, "/metrics").unwrap();
    assert!(!gw.contains(&svc), "the group is still there:\n{gw}");
    // …after Prometheus scraped the final push (the series are stale now, hence
    // last_over_time).
    let last = |q: &str| format!("last_over_time({q}[5m])");
    let sel = format!("service=\"{svc}\"");
    wait_value(
        prom,
        &last(&format!("faultline_experiment_active{{{sel}}}")),
        0.0,
    );
    wait_value(
        prom,
        &last(&format!(
            "faultline_runs_total{{{sel},status=\"completed\",deviated=\"false\"}}"
        )),
        1.0,
    );
    wait_value(
        prom,
        &last(&format!("faultline_deviations_total{{{sel}}}")),
        0.0,
    );
    wait_value(
        prom,
        &last(&format!(
            "faultline_run_duration_seconds_bucket{{{sel},le=\"+Inf\"}}"
        )),
        1.0,
    );
    wait_value(
        prom,
        &last(&format!(
            "faultline_run_duration_seconds_bucket{{{sel},le=\"7200\"}}"
        )),
        1.0,
    );
    let action = format!(
        "faultline_activity_duration_seconds_bucket{{{sel},activity_kind=\"action\",phase=\"method\",status=\"succeeded\""
    );
    wait_value(prom, &last(&format!("{action},le=\"600\"}}")), 1.0);
    // It waited for Prometheus to see the run: more than 5 ms.
    wait_value(prom, &last(&format!("{action},le=\"0.005\"}}")), 0.0);
    wait_value(
        prom,
        &last(&format!(
            "faultline_activity_duration_seconds_count{{{sel},activity_kind=\"probe\",phase=\"before\"}}"
        )),
        1.0,
    );
    let info = wait_value(
        prom,
        &last(&format!("faultline_run_info{{{sel},run_id=\"{run_id}\"}}")),
        1.0,
    );
    assert!(info.contains_key("trace_id"), "{info:?}");
}

#[test]
fn keep_group_leaves_the_final_push_on_the_pushgateway() {
    let Some((_gw, pg)) = pushgateway() else {
        return;
    };
    let dir = TempDir::new("run-metrics-keep");
    let svc = service();
    let args = json!({"pushgateway_url": format!("http://127.0.0.1:{pg}"), "keep_group": true,
        "job": "faultline-it", "grouping_key": {"team": "sre"}});
    let child = start(&dir, &experiment(args), &svc);
    wait_until(Duration::from_secs(30), "the start push", || {
        get(pg, "/metrics").is_some_and(|m| m.contains(&svc))
    });
    let out = finish(&dir, child);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let gw = get(pg, "/metrics").unwrap();
    let active = gw
        .lines()
        .find(|l| l.starts_with("faultline_experiment_active{") && l.contains(&svc))
        .unwrap_or_else(|| panic!("the group is gone:\n{gw}"));
    for label in ["job=\"faultline-it\"", "team=\"sre\""] {
        assert!(active.contains(label), "{label} missing: {active}");
    }
    assert!(active.ends_with(" 0"), "{active}");
    assert!(gw
        .lines()
        .any(|l| l.starts_with("faultline_runs_total{") && l.contains(&svc) && l.ends_with(" 1")));
}

#[test]
fn remote_write_puts_the_start_and_end_samples_into_prometheus() {
    let dir = TempDir::new("run-metrics-rw");
    let Some((_prom, prom)) = prometheus(&dir, None) else {
        return;
    };
    let svc = service();
    let url = format!("http://127.0.0.1:{prom}/api/v1/write");
    let child = start(&dir, &experiment(json!({"remote_write_url": url})), &svc);
    let sel = format!("service=\"{svc}\"");
    let labels = wait_value(prom, &format!("faultline_experiment_active{{{sel}}}"), 1.0);
    // Remote write has no grouping key: the run id tells runs apart.
    let run_id = labels["run_id"].as_str().unwrap().to_string();
    assert_eq!(labels["experiment"], "run metrics", "{labels:?}");
    let out = finish(&dir, child);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        !out.stderr.contains("faultline run metrics"),
        "{}",
        out.stderr
    );
    assert_eq!(out.journal()["extensions"][0]["run_id"], run_id.as_str());
    wait_value(prom, &format!("faultline_experiment_active{{{sel}}}"), 0.0);
    wait_value(
        prom,
        &format!("faultline_runs_total{{{sel},status=\"completed\",deviated=\"false\",run_id=\"{run_id}\"}}"),
        1.0,
    );
    wait_value(
        prom,
        &format!("faultline_run_duration_seconds_bucket{{{sel},le=\"+Inf\"}}"),
        1.0,
    );
    wait_value(
        prom,
        &format!("faultline_activity_duration_seconds_count{{{sel},activity_kind=\"action\",phase=\"method\"}}"),
        1.0,
    );
}

#[test]
fn listen_serves_metrics_during_the_run_and_stops_after() {
    let dir = TempDir::new("run-metrics-listen");
    let port = free_port();
    let svc = service();
    let mut exp = experiment(json!({"listen": format!("127.0.0.1:{port}")}));
    // Target labels from tags: one named like a label of faultline's own.
    exp["tags"] = json!(["team:sre", "status:prod"]);
    let child = start(&dir, &exp, &svc);
    let mut body = String::new();
    // Active from the start; the hypothesis probe's duration once it has run (the
    // method then waits for `go`, so both hold together while the run goes on).
    wait_until(
        Duration::from_secs(30),
        "/metrics during the run, after the hypothesis",
        || {
            body = get(port, "/metrics").unwrap_or_default();
            body.lines().any(|l| {
                l.starts_with("faultline_experiment_active{")
                    && l.contains(&svc)
                    && l.ends_with(" 1")
            }) && body.lines().any(|l| {
                l.starts_with("faultline_activity_duration_seconds_count{")
                    && l.contains("phase=\"before\"")
                    && l.ends_with(" 1")
            })
        },
    );
    let active = body
        .lines()
        .find(|l| l.starts_with("faultline_experiment_active{"))
        .unwrap();
    for label in [
        "team=\"sre\"",
        "target_status=\"prod\"",
        "experiment=\"run metrics\"",
    ] {
        assert!(active.contains(label), "{label} missing: {active}");
    }
    // Live: the hypothesis probe already ran.
    assert!(
        body.lines().any(
            |l| l.starts_with("faultline_activity_duration_seconds_count{")
                && l.contains("phase=\"before\"")
                && l.ends_with(" 1")
        ),
        "{body}"
    );
    let out = finish(&dir, child);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening"
    );
}

#[test]
fn a_port_in_use_is_a_warning_and_the_run_goes_on() {
    let dir = TempDir::new("run-metrics-busy");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let mut exp = experiment(json!({"listen": addr.to_string()}));
    exp["method"] = json!([sh("action", "a", "true")]);
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.stderr
            .contains(&format!("faultline run metrics: cannot listen on {addr}")),
        "{}",
        out.stderr
    );
}

#[test]
fn wrong_arguments_stop_the_run_before_it_starts_naming_each() {
    let dir = TempDir::new("run-metrics-args");
    let exp = experiment(json!({"buckets": {"run": [10, 5]}, "keep_groups": true}));
    let out = run_experiment(&dir, &exp, &[]);
    assert_ne!(out.code, 0, "{}", out.all_text());
    let text = out.all_text();
    assert!(
        text.contains("buckets.run: [1]: 5 is not above 10"),
        "{text}"
    );
    assert!(text.contains("keep_groups: unknown argument"), "{text}");
    assert!(!dir.join("go").exists());
}

#[test]
fn silent_or_dead_destinations_are_warnings_within_their_limits() {
    // Accepts the connection, reads the request, never answers.
    let hole = HttpServer::blackhole();
    let dir = TempDir::new("run-metrics-dead");
    let mut exp = experiment(json!({
        "pushgateway_url": hole.url(""),
        "remote_write_url": format!("http://127.0.0.1:{}/api/v1/write", closed_port()),
    }));
    exp["method"] = json!([sh("action", "a", "true")]);
    let started = std::time::Instant::now();
    let out = run_experiment(&dir, &exp, &[]);
    let elapsed = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("faultline run metrics:"))
        .collect();
    // Start and end: a push and a write each; then the group's deletion.
    assert_eq!(
        warnings
            .iter()
            .filter(|l| l.contains(&format!("no answer from {} within 1s", hole.url(""))))
            .count(),
        3,
        "{warnings:#?}"
    );
    assert_eq!(
        warnings
            .iter()
            .filter(|l| l.contains("cannot reach http://127.0.0.1:"))
            .count(),
        2,
        "{warnings:#?}"
    );
    let methods: Vec<String> = hole.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, ["PUT", "PUT", "DELETE"]);
    // A safety net only: three requests of at most 1 s each, the first beside the run.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}
