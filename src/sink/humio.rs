//! The Humio / LogScale sink: structured ingest, in the shape `chaoshumio.control`
//! sends, so existing Humio searches and dashboards keep working.
//!
//! chaoshumio tags each request with `level` = the event name and `type` = what it
//! is about; faultline does the same per event (one payload element per event name
//! in a batch) with `provider: faultline`, and puts the whole record, fields
//! flattened, in `attributes`.

use super::http::{Encoder, HttpSink};
use super::Batch;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The ingest path under the Humio base URL.
const INGEST_PATH: &str = "/api/v1/ingest/humio-structured";

/// The sink for a Humio base URL (or the full ingest URL) and ingest token.
pub(crate) fn sink(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    tags: &BTreeMap<String, String>,
) -> Result<HttpSink, String> {
    let url = ingest_url(url);
    let mut fixed = Map::new();
    fixed.insert("host".into(), json!(crate::run::journal::node()));
    fixed.insert("chaosengineering".into(), json!("true"));
    fixed.insert("provider".into(), json!("faultline"));
    fixed.insert("system".into(), json!(std::env::consts::OS));
    fixed.insert("machine".into(), json!(std::env::consts::ARCH));
    for (k, v) in tags {
        fixed.insert(k.clone(), json!(v));
    }
    HttpSink::new(
        client,
        "humio",
        &url,
        &BTreeMap::new(),
        Some(token.trim()),
        Encoder::Humio { tags: fixed },
    )
}

/// The ingest URL for a base URL (kept as is when it already is the ingest URL): the
/// path extended, a query kept after it. A URL that does not parse is passed on for
/// the sink to refuse with its usual message.
fn ingest_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_string();
    };
    let path = u.path().trim_end_matches('/').to_string();
    if path.ends_with(INGEST_PATH) {
        u.set_path(&path);
    } else if let Ok(mut segments) = u.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(INGEST_PATH.split('/').filter(|s| !s.is_empty()));
    }
    u.to_string()
}

/// `[{"tags": {...}, "events": [{"timestamp", "attributes"}]}]`, one element per
/// event name, in order of first appearance.
pub(crate) fn body(batch: &Batch, tags: &Map<String, Value>) -> Value {
    let mut groups: Vec<(&str, Vec<Value>)> = Vec::new();
    for r in batch {
        let mut attributes = Map::new();
        attributes.insert("event".into(), json!(r.event));
        attributes.insert("level".into(), json!(r.level));
        attributes.insert("message".into(), json!(r.message));
        attributes.insert("run_id".into(), json!(r.run_id));
        if let Some(t) = &r.trace_id {
            attributes.insert("trace_id".into(), json!(t));
        }
        if let Some(s) = &r.span_id {
            attributes.insert("span_id".into(), json!(s));
        }
        attributes.insert("experiment".into(), json!(r.experiment));
        if let Value::Object(fields) = &r.fields {
            for (k, v) in fields {
                attributes.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let event = json!({"timestamp": r.time, "attributes": attributes});
        match groups.iter_mut().find(|(name, _)| *name == r.event) {
            Some((_, events)) => events.push(event),
            None => groups.push((r.event, vec![event])),
        }
    }
    Value::Array(
        groups
            .into_iter()
            .map(|(name, events)| {
                let mut t = tags.clone();
                t.insert("level".into(), json!(name));
                t.insert("type".into(), json!(name.split('.').next().unwrap_or(name)));
                json!({"tags": t, "events": events})
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, Reply};
    use super::super::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
    use serde_json::{json, Value};

    #[test]
    fn the_ingest_path_goes_on_the_path_not_after_a_query() {
        use super::ingest_url;
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

    fn humio(url: String, token: &str) -> SinkConfig {
        serde_json::from_value(
            json!({"type": "humio", "url": url, "token": token, "tags": {"team": "sre"}}),
        )
        .unwrap()
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
}
