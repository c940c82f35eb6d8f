//! The Humio sink against a real HTTP server on 127.0.0.1: the chaoshumio payload,
//! the bearer token, and the token kept out of reports.

use crate::sink::testkit::{self, Reply};
use crate::sink::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
use serde_json::{json, Value};

fn humio(url: String, token: &str) -> SinkConfig {
    serde_json::from_value(
        json!({"type": "humio", "url": url, "token": token, "tags": {"team": "sre"}}),
    )
    .unwrap()
}

#[test]
fn the_ingest_path_goes_on_the_path_not_after_a_query() {
    use super::sink::ingest_url;
    let full = "https://h.example/api/v1/ingest/humio-structured";
    assert_eq!(ingest_url("https://h.example"), full);
    assert_eq!(ingest_url("https://h.example/"), full);
    assert_eq!(ingest_url(&format!("{full}/")), full);
    assert_eq!(
        ingest_url("https://h.example/logscale/?org=a"),
        "https://h.example/logscale/api/v1/ingest/humio-structured?org=a"
    );
    assert_eq!(ingest_url("not a url"), "not a url");
}

#[tokio::test]
async fn structured_ingest_payload_and_bearer_token() {
    let srv = testkit::Server::start(vec![]).await;
    let sinks =
        Sinks::from_config_with_env(&[humio(srv.url("/"), "ingest-t0ken")], &|_| None).unwrap();
    let mut ended = testkit::record(3);
    ended.event = "experiment.ended";
    sinks.emit(&testkit::record(1));
    sinks.emit(&ended);
    sinks.emit(&testkit::record(2));
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    assert_eq!(reports[0].delivered, 3, "{}", reports[0]);
    assert!(reports[0].name.starts_with("humio http://127.0.0.1:"));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/api/v1/ingest/humio-structured");
    assert_eq!(r.header("authorization"), Some("Bearer ingest-t0ken"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let groups = body.as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let tags = &groups[0]["tags"];
    assert_eq!(tags["level"], "activity.started");
    assert_eq!(tags["type"], "activity");
    assert_eq!(tags["provider"], "faultline");
    assert_eq!(tags["chaosengineering"], "true");
    assert_eq!(tags["team"], "sre");
    assert!(tags["host"].is_string());
    assert_eq!(groups[1]["tags"]["level"], "experiment.ended");
    assert_eq!(groups[1]["tags"]["type"], "experiment");
    let events = groups[0]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["timestamp"], "2026-11-21T19:05:17.000001+00:00");
    assert_eq!(
        events[0]["attributes"],
        json!({
            "event": "activity.started", "level": "INFO", "message": "message 1",
            "run_id": "run-1", "trace_id": testkit::TRACE_ID, "span_id": testkit::SPAN_ID,
            "experiment": "demo", "activity": "a1", "phase": "method", "n": 1,
            "nested": {"k": true}, "none": null
        })
    );
}

#[tokio::test]
async fn base_url_may_be_the_full_ingest_url() {
    let srv = testkit::Server::start(vec![]).await;
    let url = srv.url("/api/v1/ingest/humio-structured/");
    let sinks = Sinks::from_config_with_env(&[humio(url, "t0k")], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    assert_eq!(srv.requests()[0].path, "/api/v1/ingest/humio-structured");
}

#[tokio::test]
async fn the_token_never_shows_in_reports() {
    let srv = testkit::Server::start(vec![Reply::EchoAuth(403)]).await;
    let token = "canary-humio-t0ken-value";
    let sinks = Sinks::from_config_with_env(&[humio(srv.url("/"), token)], &|_| None).unwrap();
    let debug = format!("{sinks:?}");
    sinks.emit(&testkit::record(1));
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    let text = format!("{debug} {} {:?}", reports[0], reports);
    assert!(text.contains("403"), "{text}");
    assert!(!text.contains(token), "{text}");
    assert_eq!(reports[0].failed, 1);
}
