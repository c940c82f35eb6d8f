//! Structured log sinks through the binary: the Humio control of the Chaos Toolkit
//! (token from the experiment's secrets), a generic HTTP sink and a JSON-lines file
//! from the settings file; outages never change the verdict; the token never leaks.

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "humio-canary-token-7f3a";

fn experiment(humio_url: &str) -> Value {
    json!({
        "title": "sinks", "description": "d",
        "configuration": {"humio_url": humio_url},
        "secrets": {"humio": {"ingest_token": TOKEN}},
        "controls": [{"name": "humio-logger", "provider": {"type": "python", "module": "chaoshumio.control", "secrets": ["humio"]}}],
        "steady-state-hypothesis": {"title": "h", "probes": [
            with(tracer("probe", "check", "probe"), "tolerance", json!(0))]},
        "method": [tracer("action", "act", "act"),
            // Prints the token: the output is masked before any record is made.
            {"type": "action", "name": "leak", "provider": {"type": "process", "path": "echo", "arguments": ["${ingest_token}"], "secrets": ["humio"]}}],
        "rollbacks": [tracer("action", "undo", "undo")]
    })
}

fn bodies(srv: &HttpServer, path: &str) -> Vec<Value> {
    srv.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| serde_json::from_str(&r.text()).expect("JSON body"))
        .collect()
}

#[test]
fn chaoshumio_control_ships_every_event_with_the_bearer_token() {
    let dir = TempDir::new("sink-humio");
    let srv = HttpServer::start(|_| Response::json(200, &json!({})));
    let out = run_experiment(&dir, &experiment(&srv.url("")), &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let reqs: Vec<_> = srv
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/ingest/humio-structured")
        .collect();
    assert!(!reqs.is_empty(), "{}", out.all_text());
    for r in &reqs {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let events: Vec<Value> = bodies(&srv, "/api/v1/ingest/humio-structured")
        .into_iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .flat_map(|group| {
            assert!(group["tags"].is_object(), "{group}");
            group["events"].as_array().unwrap().clone()
        })
        .collect();
    let names: Vec<String> = events
        .iter()
        .map(|e| {
            e["attributes"]["event"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    for want in [
        "experiment.started",
        "activity.started",
        "hypothesis.met",
        "rollbacks.started",
        "experiment.ended",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let run_id = out.journal()["extensions"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let trace_id = out.journal()["extensions"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        events
            .iter()
            .all(|e| e["attributes"]["run_id"] == run_id.as_str()),
        "run id on every event"
    );
    assert!(
        events
            .iter()
            .any(|e| e["attributes"]["trace_id"] == trace_id.as_str()),
        "trace id on events"
    );
    assert!(out.stderr.contains("delivered"), "{}", out.stderr);
    // The token works, but never leaks: not in any record sent, the console or the journal.
    for r in srv.requests() {
        assert!(
            !r.text().contains(TOKEN),
            "the token leaked into a sink payload: {}",
            r.text()
        );
    }
    assert!(
        events.iter().any(|e| e["attributes"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("***"))),
        "the masked output is shipped"
    );
    assert!(!out.all_text().contains(TOKEN));
    assert!(!std::fs::read_to_string(dir.join("journal.json"))
        .unwrap()
        .contains(TOKEN));
}

#[test]
fn settings_sinks_http_and_jsonl_receive_the_records() {
    let dir = TempDir::new("sink-http");
    let srv = HttpServer::start(|_| Response::json(200, &json!({})));
    let jsonl = dir.join("logs/events.jsonl");
    let settings = dir.write(
        "settings.yaml",
        &format!(
            "sinks:\n  - type: http\n    url: {}\n    headers: {{Authorization: 'Bearer http-sink'}}\n  - type: jsonl\n    path: {}\n",
            srv.url("/ingest"),
            jsonl.display()
        ),
    );
    let mut e = experiment("http://127.0.0.1:9/");
    e.as_object_mut().unwrap().remove("controls");
    let out = run_experiment(&dir, &e, &["--settings", settings.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let records: Vec<Value> = bodies(&srv, "/ingest")
        .into_iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .collect();
    assert!(srv
        .requests()
        .iter()
        .all(|r| r.headers.get("authorization").map(String::as_str) == Some("Bearer http-sink")));
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    let file_records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        file_records.len(),
        "both sinks get every record"
    );
    assert!(records.len() >= 10, "{records:?}");
    let first = &records[0];
    for key in [
        "time",
        "level",
        "event",
        "message",
        "run_id",
        "experiment",
        "fields",
    ] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    assert!(records
        .iter()
        .any(|r| r["event"] == "activity.succeeded" && r["span_id"].is_string()));
}

/// The same run with a dead sink: same verdict and journal, bounded exit, drops reported.
fn outage(tag: &str, url: String) {
    let dir = TempDir::new(tag);
    let baseline = {
        let d = TempDir::new(&format!("{tag}-base"));
        let mut e = experiment("http://127.0.0.1:9/");
        e.as_object_mut().unwrap().remove("controls");
        run_experiment(&d, &e, &[])
    };
    let start = Instant::now();
    let out = run_experiment(&dir, &experiment(&url), &[]);
    let elapsed = start.elapsed();
    eprintln!("{tag}: run with a dead Humio sink took {elapsed:?}");
    assert_eq!(out.code, baseline.code, "{}", out.all_text());
    assert_eq!(out.status(), baseline.status());
    assert_eq!(out.run_names(), baseline.run_names());
    assert_eq!(out.rollback_names(), baseline.rollback_names());
    assert!(
        out.stderr.contains("dropped"),
        "the drops are reported: {}",
        out.stderr
    );
    // A safety net only: the 1.5 s goal is measured by benches/telemetry.rs.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

#[test]
fn a_refused_sink_does_not_change_the_run() {
    outage(
        "sink-refused",
        format!("http://127.0.0.1:{}", closed_port()),
    );
}

#[test]
fn a_blackhole_sink_does_not_change_the_run() {
    let hole = HttpServer::blackhole();
    outage("sink-blackhole", hole.url(""));
}

#[test]
fn a_failing_sink_does_not_change_the_run() {
    let srv = HttpServer::start(|_| Response::text(500, "down"));
    outage("sink-500", srv.url(""));
}

#[test]
fn humio_control_without_a_token_is_a_warning() {
    let dir = TempDir::new("sink-notoken");
    let mut e = experiment("http://127.0.0.1:9/");
    e.as_object_mut().unwrap().remove("secrets");
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(out.stderr.contains("ingest_token"), "{}", out.stderr);
}

#[test]
fn an_invalid_sink_in_settings_is_invalid_input() {
    let dir = TempDir::new("sink-bad");
    let settings = dir.write("settings.yaml", "sinks:\n  - type: carrier-pigeon\n");
    let out = run_experiment(
        &dir,
        &experiment("http://127.0.0.1:9/"),
        &["--settings", settings.to_str().unwrap()],
    );
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stderr.contains("$.sinks[0]"), "{}", out.stderr);
    assert!(out.journal.is_none());
}
