//! The generic HTTP sink against a real HTTP server on 127.0.0.1: bodies, headers,
//! batching, retries and masking.

use crate::sink::testkit::{self, Reply};
use crate::sink::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn http(url: String, extra: Value) -> SinkConfig {
    let mut v = json!({"type": "http", "url": url});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn array_body_with_custom_headers() {
    let srv = testkit::Server::start(vec![]).await;
    let cfg = http(
        srv.url("/ingest"),
        json!({"headers": {"Authorization": "Bearer t0ken-123", "X-Team": "sre"}}),
    );
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    sinks.emit(&testkit::record(2));
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    assert_eq!(reports[0].delivered, 2, "{}", reports[0]);
    assert!(reports[0].is_clean(), "{}", reports[0]);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/ingest");
    assert_eq!(r.header("authorization"), Some("Bearer t0ken-123"));
    assert_eq!(r.header("x-team"), Some("sre"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, json!([testkit::record(1), testkit::record(2)]));
    assert!(!reports[0].name.contains("t0ken"));
}

#[tokio::test]
async fn wrapped_array() {
    let srv = testkit::Server::start(vec![]).await;
    let cfg = http(srv.url("/"), json!({"wrap": "records"}));
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    let body: Value = serde_json::from_slice(&srv.requests()[0].body).unwrap();
    assert_eq!(body, json!({"records": [testkit::record(1)]}));
}

#[tokio::test]
async fn loki_push_body() {
    let srv = testkit::Server::start(vec![]).await;
    let cfg = http(
        srv.url("/loki/api/v1/push"),
        json!({"format": "loki", "labels": {"env": "staging"}, "headers": {"X-Scope-OrgID": "t1"}}),
    );
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    let mut failed = testkit::record(2);
    failed.level = "ERROR";
    sinks.emit(&testkit::record(1));
    sinks.emit(&failed);
    sinks.emit(&testkit::record(3));
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    assert_eq!(reports[0].delivered, 3, "{}", reports[0]);
    let r = &srv.requests()[0];
    assert_eq!(r.header("x-scope-orgid"), Some("t1"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    let streams = body["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2);
    assert_eq!(
        streams[0]["stream"],
        json!({"service_name": "faultline", "level": "info", "env": "staging"})
    );
    assert_eq!(streams[1]["stream"]["level"], "error");
    let values = streams[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 2);
    // "2026-11-21T19:05:17.000001+00:00" in Unix nanoseconds, as a string.
    assert_eq!(values[0][0], json!("1795287917000001000"));
    let line: Value = serde_json::from_str(values[0][1].as_str().unwrap()).unwrap();
    assert_eq!(line, json!(testkit::record(1)));
    assert_eq!(streams[1]["values"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn splunk_hec_body() {
    let srv = testkit::Server::start(vec![]).await;
    let cfg = http(
        srv.url("/services/collector/event"),
        json!({"format": "splunk-hec", "headers": {"Authorization": "Splunk hec-t0ken"}, "labels": {"env": "prod"}}),
    );
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    sinks.emit(&testkit::record(2));
    sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    let r = &srv.requests()[0];
    assert_eq!(r.header("authorization"), Some("Splunk hec-t0ken"));
    let text = String::from_utf8(r.body.clone()).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["time"], json!(1795287917.000001));
    assert_eq!(events[1]["time"], json!(1795287917.000002));
    assert_eq!(events[0]["source"], "faultline");
    assert_eq!(events[0]["sourcetype"], "_json");
    assert_eq!(events[0]["fields"], json!({"env": "prod"}));
    assert_eq!(events[0]["event"], json!(testkit::record(1)));
    assert!(events[0]["host"].is_string());
}

#[tokio::test]
async fn batches_of_at_most_500() {
    let srv = testkit::Server::start(vec![]).await;
    let sinks = Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
    for i in 0..1200 {
        sinks.emit(&testkit::record(i));
    }
    let reports = sinks.shutdown(Duration::from_secs(5)).await;
    assert_eq!(reports[0].delivered, 1200, "{}", reports[0]);
    let sizes: Vec<usize> = srv
        .requests()
        .iter()
        .map(|r| serde_json::from_slice::<Vec<Value>>(&r.body).unwrap().len())
        .collect();
    assert_eq!(sizes, [500, 500, 200]);
    // Order is kept across batches.
    let first: Vec<Value> = serde_json::from_slice(&srv.requests()[1].body).unwrap();
    assert_eq!(first[0]["message"], "message 500");
}

#[tokio::test]
async fn batches_by_time_while_running() {
    let srv = testkit::Server::start(vec![]).await;
    let sinks = Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    // No shutdown: the 200 ms linger alone sends the partial batch.
    let t = Instant::now();
    while srv.requests().is_empty() && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("partial batch sent after {:?}", t.elapsed());
    assert_eq!(srv.requests().len(), 1);
    sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
}

#[tokio::test]
async fn retries_after_a_500_then_succeeds() {
    let srv = testkit::Server::start(vec![Reply::Status(500), Reply::Status(200)]).await;
    let sinks = Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
    let r = &reports[0];
    assert_eq!((r.delivered, r.dropped), (1, 0), "{r}");
    assert_eq!(srv.requests().len(), 2);
    assert_eq!(srv.requests()[0].body, srv.requests()[1].body);
    assert!(r.last_error.as_deref().unwrap().contains("500"), "{r}");
}

#[tokio::test]
async fn a_4xx_is_not_retried() {
    let srv = testkit::Server::start(vec![Reply::Status(400)]).await;
    let sinks = Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    let r = &sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await[0];
    assert_eq!((r.delivered, r.failed, r.dropped), (0, 1, 1), "{r}");
    assert_eq!(srv.requests().len(), 1);
}

#[tokio::test]
async fn secrets_in_echoed_errors_are_masked() {
    // The server echoes the request's Authorization header in its 401 body.
    let srv = testkit::Server::start(vec![Reply::EchoAuth(401)]).await;
    let cfg = http(
        format!("http://user:pa55word@{}/x?k=v", srv.addr),
        json!({"headers": {"Authorization": "Bearer canary-s3cret"}}),
    );
    let sinks = Sinks::from_config_with_env(&[cfg], &|_| None).unwrap();
    sinks.emit(&testkit::record(1));
    let r = &sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await[0];
    let text = format!("{r} {r:?}");
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("canary-s3cret"), "{text}");
    assert!(!text.contains("pa55word"), "{text}");
    assert!(!text.contains("k=v"), "{text}");
}
