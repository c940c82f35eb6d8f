//! The `http` provider: one request, output `{status, headers, body}`.
//!
//! As the Chaos Toolkit: GET arguments go in the query string, other methods send them
//! as JSON when `Content-Type: application/json`, else as a form; 4xx/5xx are not
//! failures (unless `expected_status` says otherwise); connection errors and timeouts
//! are. Unlike it, `body` is parsed as JSON for any JSON media type (`; charset=utf-8`,
//! `+json`), and `expected_status` is enforced.

use super::{field, seconds, ActivityError, Ctx};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A typed `http` provider.
#[derive(Debug, Clone)]
pub struct HttpProvider {
    /// The URL.
    pub url: String,
    /// The method, uppercase.
    pub method: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Query (GET) or body arguments.
    pub arguments: Option<Value>,
    /// (connect, read) timeouts.
    pub timeout: Option<(Option<Duration>, Duration)>,
    /// Verify the server's certificate.
    pub verify_tls: bool,
    /// Retries on connection failures.
    pub max_retries: u32,
    /// Statuses that count as success; others fail the activity.
    pub expected_status: Option<Vec<u16>>,
    /// The most bytes kept of the response body (`output_limit`), if set here.
    pub output_limit: Option<u64>,
}

fn header_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => super::super::experiment::substitute::python_str(other),
    }
}

impl HttpProvider {
    pub(super) fn from_map(m: &Map<String, Value>) -> Result<HttpProvider, String> {
        let url = match field(m, "url") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(v) => return Err(format!("url must be a string, got {v}")),
            None => return Err("missing url".into()),
        };
        check_url(&url)?;
        let method = match field(m, "method") {
            Some(Value::String(s)) => s.to_ascii_uppercase(),
            Some(v) => return Err(format!("method must be a string, got {v}")),
            None => "GET".into(),
        };
        let headers = match field(m, "headers") {
            Some(Value::Object(h)) => h.iter().map(|(k, v)| (k.clone(), header_text(v))).collect(),
            Some(v) => return Err(format!("headers must be an object, got {v}")),
            None => Vec::new(),
        };
        let timeout = match field(m, "timeout") {
            Some(Value::Array(pair)) if pair.len() == 2 => Some((
                Some(seconds(&pair[0], "the connect timeout")?),
                seconds(&pair[1], "the read timeout")?,
            )),
            Some(v) => Some((None, seconds(v, "timeout")?)),
            None => None,
        };
        let verify_tls = match field(m, "verify_tls") {
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(format!("verify_tls must be true or false, got {v}")),
            None => true,
        };
        let max_retries = match field(m, "max_retries") {
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("max_retries must be a non-negative integer, got {v}"))?,
            None => 0,
        };
        let expected_status = match field(m, "expected_status") {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|s| s.as_u64().and_then(|n| u16::try_from(n).ok()))
                    .collect::<Option<Vec<u16>>>()
                    .ok_or("expected_status must be status codes")?,
            ),
            Some(v) => Some(vec![v
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    format!("expected_status must be a status code, got {v}")
                })?]),
            None => None,
        };
        Ok(HttpProvider {
            url,
            method,
            headers,
            arguments: field(m, "arguments").cloned(),
            timeout,
            verify_tls,
            max_retries,
            expected_status,
            output_limit: super::output_limit(m)?,
        })
    }

    /// Send the request, inside a CLIENT span when the run records spans: the W3C
    /// `traceparent`/`baggage` headers come from that span, so the server's span is its
    /// child. (Without spans, the activity's context, if any, is propagated.)
    pub(super) async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        use crate::run::spans::{self, attr};
        let Some(t) = &ctx.trace else {
            return self.send(ctx, &ctx.headers, None).await;
        };
        let (span, headers) = t.client_span(ctx.redactor, &self.method, &self.url);
        let result = self.send(ctx, &headers, Some(&span)).await;
        let mut error = None;
        match &result {
            Ok(out) => {
                let code = out
                    .get("status")
                    .and_then(Value::as_i64)
                    .unwrap_or_default();
                span.record(attr::HTTP_RESPONSE_STATUS_CODE, code);
                if code >= 400 {
                    error = Some(format!("HTTP {code}"));
                    span.record(attr::ERROR_TYPE, code.to_string().as_str());
                }
            }
            Err(e) => {
                if let Some(code) = e
                    .output
                    .as_ref()
                    .and_then(|o| o.get("status"))
                    .and_then(Value::as_i64)
                {
                    span.record(attr::HTTP_RESPONSE_STATUS_CODE, code);
                }
                error = Some(ctx.redactor.text(&e.message).into_owned());
            }
        }
        spans::end(span, error.as_deref());
        result
    }

    async fn send(
        &self,
        ctx: &Ctx<'_>,
        trace_headers: &[(String, String)],
        span: Option<&tracing::Span>,
    ) -> Result<Value, ActivityError> {
        if let Err(e) = check_url(&self.url) {
            return Err(ActivityError::invalid(e));
        }
        for (k, v) in self.headers.iter().chain(trace_headers) {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(ActivityError::invalid(format!(
                    "invalid header name {k:?}: header names are letters, digits and -!#$%&'*+.^_`|~"
                )));
            }
            if reqwest::header::HeaderValue::from_str(v).is_err() {
                return Err(ActivityError::invalid(format!(
                    "header '{k}' has an invalid value: line breaks and control characters are not allowed"
                )));
            }
        }
        let client = ctx
            .http
            .get(self.verify_tls, self.timeout.and_then(|t| t.0))
            .map_err(ActivityError::new)?;
        let method = reqwest::Method::from_bytes(self.method.as_bytes())
            .map_err(|_| ActivityError::new(format!("invalid HTTP method '{}'", self.method)))?;
        let is_json = self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type") && v.starts_with("application/json")
        });
        let mut attempt = 0;
        let resp = loop {
            let mut req = client.request(method.clone(), &self.url);
            for (k, v) in self.headers.iter().chain(trace_headers) {
                req = req.header(k, v);
            }
            if let Some((c, r)) = self.timeout {
                req = req.timeout(c.unwrap_or_default() + r);
            }
            if let Some(args) = &self.arguments {
                req = if method == reqwest::Method::GET {
                    req.query(&query_pairs(args))
                } else if is_json {
                    req.json(args)
                } else {
                    match args {
                        Value::String(s) => req.body(s.clone()),
                        other => req.form(&query_pairs(other)),
                    }
                };
            }
            match req.send().await {
                Ok(r) => break r,
                Err(e) if e.is_connect() && attempt < self.max_retries => {
                    attempt += 1;
                    if let Some(span) = span {
                        crate::run::spans::retry(span, i64::from(attempt));
                    }
                    tokio::time::sleep(Duration::from_millis(100 * (1 << attempt.min(6)))).await;
                }
                Err(e) if e.is_timeout() => {
                    return Err(ActivityError::new(format!(
                        "activity took too long to complete: no answer from {} in time",
                        self.url
                    )))
                }
                Err(e) if e.is_builder() => {
                    return Err(ActivityError::invalid(format!(
                        "invalid request to {}: {}",
                        self.url,
                        describe_error(&e)
                    )))
                }
                Err(e) => {
                    return Err(ActivityError::new(format!(
                        "failed to connect to {}: {}",
                        self.url,
                        describe_error(&e)
                    )))
                }
            }
        };
        let status = resp.status().as_u16();
        let mut headers = Map::new();
        for (k, v) in resp.headers() {
            headers.insert(
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            );
        }
        let json_body = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_media_type);
        // The body is read to its end (the total is recorded), but only the first
        // `output_limit` bytes are kept: a huge answer must not exhaust memory.
        let mut resp = resp;
        let mut kept = super::capture::Capped::new(ctx.output_limit);
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => kept.push(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(ActivityError::new(format!(
                        "failed to read the response from {}: {}",
                        self.url,
                        describe_error(&e)
                    )))
                }
            }
        }
        let kept = kept.finish();
        let text = kept.text();
        // A cut JSON document does not parse: the kept part is then the body's text.
        let body = if json_body {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            Value::String(text)
        };
        let mut output = serde_json::json!({"status": status, "headers": headers, "body": body});
        if let Some(cut) = super::capture::truncation(&[("body", &kept)]) {
            ctx.warn(format!(
                "{} (output_limit {} bytes)",
                kept.describe("the response body"),
                ctx.output_limit
            ));
            output["truncated"] = cut;
        }
        if let Some(expected) = &self.expected_status {
            if !expected.contains(&status) {
                let excerpt = super::super::experiment::tolerance::brief(&output["body"]);
                let want = expected
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ActivityError {
                    message: format!(
                        "HTTP call failed with code {status} (expected {want}): {excerpt}"
                    ),
                    output: Some(output),
                    invalid: false,
                    details: Vec::new(),
                });
            }
        }
        Ok(output)
    }
}

/// `application/json`, `application/json; charset=utf-8`, `application/problem+json`...
pub fn is_json_media_type(ct: &str) -> bool {
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || media.ends_with("+json")
}

/// Key/value pairs for a query string or form, as `requests` builds them.
fn query_pairs(args: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| super::super::experiment::substitute::python_str(v);
    match args {
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, v)| match v {
                Value::Array(items) => items
                    .iter()
                    .map(|i| (k.clone(), text(i)))
                    .collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                v => vec![(k.clone(), text(v))],
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|p| match p.as_array().map(Vec::as_slice) {
                Some([k, v]) => Some((text(k), text(v))),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The one check of an `http` provider's URL, wherever it is made (validation of a
/// literal, the pre-flight of a substituted one, typing the provider): it parses as a
/// URL and its scheme is http or https.
pub(crate) fn check_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid url '{url}': {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        _ => Err(format!("url '{url}' is not an http(s) URL")),
    }
}

/// An error with its causes, which reqwest keeps in the source chain.
pub fn describe_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

/// HTTP clients shared by every request of a run, one per TLS/connect-timeout setting.
#[derive(Default)]
pub struct Clients {
    clients: Mutex<HashMap<(bool, Option<Duration>), reqwest::Client>>,
}

impl Clients {
    /// The client for these settings.
    pub fn get(
        &self,
        verify_tls: bool,
        connect: Option<Duration>,
    ) -> Result<reqwest::Client, String> {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&(verify_tls, connect)) {
            return Ok(c.clone());
        }
        crate::tls::init();
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .tls_danger_accept_invalid_certs(!verify_tls);
        if let Some(c) = connect {
            b = b.connect_timeout(c);
        }
        let c = b
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {}", describe_error(&e)))?;
        map.insert((verify_tls, connect), c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_are_checked_by_parsing_and_by_scheme() {
        assert_eq!(
            check_url("HTTP://Example.com:8080/a?b").unwrap().as_str(),
            "http://example.com:8080/a?b"
        );
        assert!(check_url("https://x/").is_ok());
        let e = check_url("ftp://x/").unwrap_err();
        assert_eq!(e, "url 'ftp://x/' is not an http(s) URL");
        let e = check_url("http://[::1/").unwrap_err();
        assert!(e.starts_with("invalid url 'http://[::1/': "), "{e}");
        let e = check_url("localhost:8080/health").unwrap_err();
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = check_url("/health").unwrap_err();
        assert!(e.starts_with("invalid url '/health': "), "{e}");
    }

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("application/json; charset=utf-8"));
        assert!(is_json_media_type("application/problem+json"));
        assert!(!is_json_media_type("text/plain"));
    }

    #[test]
    fn typed_from_substituted_values() {
        let p = HttpProvider::from_map(json!({"type": "http", "url": "http://x/", "timeout": [1, 2.5], "expected_status": 503}).as_object().unwrap()).unwrap();
        assert_eq!(
            p.timeout,
            Some((Some(Duration::from_secs(1)), Duration::from_millis(2500)))
        );
        assert_eq!(p.expected_status, Some(vec![503]));
        let e = HttpProvider::from_map(
            json!({"type": "http", "url": "http://x/", "timeout": "soon"})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("timeout"), "{e}");
    }

    #[test]
    fn query_pairs_repeat_lists() {
        assert_eq!(
            query_pairs(&json!({"a": 1, "b": ["x", "y"], "c": true})),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x".into()),
                ("b".into(), "y".into()),
                ("c".into(), "True".into())
            ]
        );
    }
}
