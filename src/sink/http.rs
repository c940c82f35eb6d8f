//! Every sink that POSTs over HTTP (generic JSON, Loki, Splunk HEC, Humio, OTLP/HTTP):
//! one transport, one attempt per `send`, and an [`Encoder`] per body shape.
//!
//! The transport classifies failures for the shared retry machinery (connection
//! errors, timeouts, 408, 429 and 5xx are retryable) and masks every header value
//! (tokens, passwords) in the error text it reports.

use super::{humio, otlp, Batch, Record, SendError, Sink};
use crate::redact::Redactor;
use opentelemetry_proto::tonic::resource::v1::Resource;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The body shapes.
pub(crate) enum Encoder {
    /// `[record, ...]` or `{"<wrap>": [record, ...]}`.
    Array { wrap: Option<String> },
    /// Loki push API.
    Loki { labels: BTreeMap<String, String> },
    /// Splunk HEC event batches.
    SplunkHec {
        labels: BTreeMap<String, String>,
        host: String,
    },
    /// Humio structured ingest; the fixed tags.
    Humio { tags: Map<String, Value> },
    /// OTLP logs, protobuf or JSON.
    Otlp { resource: Resource, json: bool },
}

impl Encoder {
    fn content_type(&self) -> &'static str {
        match self {
            Encoder::Otlp { json: false, .. } => "application/x-protobuf",
            _ => "application/json",
        }
    }

    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String> {
        let json = |v: &Value| serde_json::to_vec(v).map_err(|e| e.to_string());
        match self {
            Encoder::Array { wrap } => {
                let records: Vec<&Record> = batch.iter().map(|r| &**r).collect();
                let records = serde_json::to_value(records).map_err(|e| e.to_string())?;
                match wrap {
                    Some(key) => json(&json!({ key.as_str(): records })),
                    None => json(&records),
                }
            }
            Encoder::Loki { labels } => json(&loki(batch, labels)?),
            Encoder::SplunkHec { labels, host } => splunk_hec(batch, labels, host),
            Encoder::Humio { tags } => json(&humio::body(batch, tags)),
            Encoder::Otlp { resource, json } => otlp::encode_http(batch, resource, *json),
        }
    }
}

/// Loki: one stream per level, values `["<unix ns>", "<record JSON>"]`, in order.
fn loki(batch: &Batch, labels: &BTreeMap<String, String>) -> Result<Value, String> {
    let mut streams: Vec<(&str, Vec<Value>)> = Vec::new();
    for r in batch {
        let line = serde_json::to_string(&**r).map_err(|e| e.to_string())?;
        let entry = json!([unix_nanos(r).to_string(), line]);
        match streams.iter_mut().find(|(l, _)| *l == r.level) {
            Some((_, values)) => values.push(entry),
            None => streams.push((r.level, vec![entry])),
        }
    }
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|(level, values)| {
            let mut stream = Map::new();
            stream.insert("service_name".into(), json!("faultline"));
            stream.insert("level".into(), json!(level.to_ascii_lowercase()));
            for (k, v) in labels {
                stream.insert(k.clone(), json!(v));
            }
            json!({"stream": stream, "values": values})
        })
        .collect();
    Ok(json!({ "streams": streams }))
}

/// Splunk HEC: newline-separated event objects.
fn splunk_hec(
    batch: &Batch,
    labels: &BTreeMap<String, String>,
    host: &str,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(batch.len() * 400);
    for r in batch {
        let micros = (unix_nanos(r) / 1_000) as f64;
        let mut ev = json!({
            "time": micros / 1e6,
            "host": host,
            "source": "faultline",
            "sourcetype": "_json",
            "event": &**r,
        });
        if !labels.is_empty() {
            ev["fields"] = json!(labels);
        }
        serde_json::to_writer(&mut out, &ev).map_err(|e| e.to_string())?;
        out.push(b'\n');
    }
    Ok(out)
}

/// The record's time as Unix nanoseconds (now if unparsable: never fail a batch
/// over a timestamp).
pub(crate) fn unix_nanos(r: &Record) -> u64 {
    chrono::DateTime::parse_from_rfc3339(&r.time)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .or_else(|| chrono::Utc::now().timestamp_nanos_opt())
        .map_or(0, |n| n.max(0) as u64)
}

/// Pure checks for a URL in the settings.
pub(crate) fn check_url(url: &str, problems: &mut Vec<String>) {
    match Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => problems.push(format!("url '{}' is not an http(s) URL", display_url(url))),
    }
}

/// Pure checks for headers in the settings (values never quoted: credentials).
pub(crate) fn check_headers(h: &super::Headers, problems: &mut Vec<String>) {
    for (k, v) in &h.0 {
        if HeaderName::from_bytes(k.as_bytes()).is_err() {
            problems.push(format!("header name '{k}' is not valid"));
        } else if HeaderValue::from_str(v).is_err() {
            problems.push(format!("the value of header '{k}' is not valid"));
        }
    }
}

/// A URL as reports show it: no user, password, query or fragment.
pub(crate) fn display_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u)
            if u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            url.to_string()
        }
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The HTTP client every HTTP sink of a run shares (one connection pool, one TLS
/// setup: building a client costs milliseconds). `tls: false` when no destination is
/// `https://`.
pub(crate) fn client(tls: bool) -> Result<reqwest::Client, String> {
    crate::tls::init();
    let mut b =
        reqwest::Client::builder().user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")));
    if !tls {
        // Only plain http:// destinations: skip loading the system certificate store.
        b = b.tls_certs_only(Vec::<reqwest::Certificate>::new());
    }
    b.build().map_err(|e| {
        format!(
            "cannot build an HTTP client: {}",
            crate::provider::http::describe_error(&e)
        )
    })
}

/// A batched JSON/protobuf POST sink.
pub(crate) struct HttpSink {
    name: String,
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    encoder: Encoder,
    redactor: Redactor,
}

impl HttpSink {
    /// `kind` names the sink in reports; `bearer` adds `Authorization: Bearer ...`.
    pub(crate) fn new(
        client: &reqwest::Client,
        kind: &str,
        url: &str,
        headers: &BTreeMap<String, String>,
        bearer: Option<&str>,
        encoder: Encoder,
    ) -> Result<HttpSink, String> {
        let parsed = Url::parse(url)
            .map_err(|_| format!("url '{}' is not an http(s) URL", display_url(url)))?;
        let mut map = HeaderMap::new();
        let mut secrets: Vec<String> = Vec::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("header name '{k}' is not valid"))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| format!("the value of header '{k}' is not valid"))?;
            value.set_sensitive(true);
            map.insert(name, value);
            secrets.push(v.clone());
            // "Bearer xyz" / "Splunk xyz": the credential alone may be echoed back.
            if let Some((_, cred)) = v.split_once(' ') {
                secrets.push(cred.trim().to_string());
            }
        }
        if let Some(token) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "token contains characters not allowed in a header".to_string())?;
            value.set_sensitive(true);
            map.insert(AUTHORIZATION, value);
            secrets.push(token.to_string());
        }
        map.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(encoder.content_type()),
        );
        for s in [
            parsed.password().map(str::to_string),
            Some(parsed.username().to_string()),
        ]
        .into_iter()
        .flatten()
        {
            secrets.push(s);
        }
        Ok(HttpSink {
            name: format!("{kind} {}", display_url(url)),
            client: client.clone(),
            url: parsed,
            headers: map,
            encoder,
            redactor: Redactor::new(secrets),
        })
    }

    fn clean(&self, s: &str) -> String {
        self.redactor.text(s).into_owned()
    }
}

/// At most this much of an error response's body goes into the report.
const BODY_EXCERPT: usize = 200;

impl Sink for HttpSink {
    type Payload = Vec<u8>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String> {
        self.encoder.encode(batch)
    }

    async fn send(&mut self, body: &Vec<u8>) -> Result<(), SendError> {
        let res = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body.clone())
            .send()
            .await;
        let resp = match res {
            Ok(r) => r,
            Err(e) => {
                let fatal = e.is_builder();
                let text = self.clean(&crate::provider::http::describe_error(&e.without_url()));
                return Err(if fatal {
                    SendError::Fatal(text)
                } else {
                    SendError::Retryable(text)
                });
            }
        };
        let status = resp.status();
        if status.is_success() {
            // Read the (small) answer so the connection goes back to the pool.
            let _ = resp.bytes().await;
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
        let text = self.clean(&if excerpt.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {excerpt}")
        });
        let code = status.as_u16();
        Err(if status.is_server_error() || code == 429 || code == 408 {
            SendError::Retryable(text)
        } else {
            SendError::Fatal(text)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, Reply};
    use super::super::{SinkConfig, Sinks, DEFAULT_SHUTDOWN_LIMIT};
    use super::display_url;
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    fn http(url: String, extra: Value) -> SinkConfig {
        let mut v = json!({"type": "http", "url": url});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn display_url_hides_credentials() {
        assert_eq!(
            display_url("https://u:p4ss@logs.example.com/x?token=abc#f"),
            "https://logs.example.com/x"
        );
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
        let sinks =
            Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
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
        let sinks =
            Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
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
        let sinks =
            Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
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
        let sinks =
            Sinks::from_config_with_env(&[http(srv.url("/"), json!({}))], &|_| None).unwrap();
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
}
