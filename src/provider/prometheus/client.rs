//! A PromQL client for probes, SLO checks and safeguards: instant and range queries
//! built by `prometheus-http-query` over the run's own reqwest clients, with bearer or
//! basic auth, extra headers, a deadline, and the run's trace context on every request.
//!
//! The answer is kept twice: raw, exactly as Prometheus sent it (the Chaos Toolkit's
//! `chaosprometheus` probes return that document, and jsonpath tolerances read it), and
//! typed, every series with its labels and every sample. A sample value Prometheus
//! sends is text (`"0.5"`, `"NaN"`, `"+Inf"`); one that does not parse is an error,
//! never 0.

use crate::provider::Ctx;
use crate::run::spans::{self, attr};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// How to reach one Prometheus (or a compatible API: Thanos, Mimir, VictoriaMetrics).
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// The base URL, e.g. `http://prometheus:9090` (a path prefix is kept).
    pub base_url: String,
    /// Credentials, from secrets.
    pub auth: Auth,
    /// Extra headers (a tenant id, …), from secrets or the provider.
    pub headers: Vec<(String, String)>,
    /// The most a query may take, end to end (also sent as Prometheus' own `timeout`).
    pub timeout: Duration,
    /// Verify the server's TLS certificate.
    pub verify_tls: bool,
}

/// Credentials for a Prometheus behind a proxy.
#[derive(Clone, PartialEq)]
pub enum Auth {
    /// No `Authorization` header.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic …`.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Auth {
    // Never the secret itself, even in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}:***)"),
        }
    }
}

/// The default deadline of one query.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One sample: a timestamp (Unix seconds) and a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Unix seconds.
    pub t: f64,
    /// The value (may be NaN or infinite, as Prometheus computes them).
    pub v: f64,
}

/// One series of an answer, with every sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels (`__name__` included when Prometheus sends it).
    pub labels: BTreeMap<String, String>,
    /// One sample for an instant vector or a scalar, several for a range.
    pub samples: Vec<Sample>,
}

/// A query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The document as Prometheus sent it.
    pub raw: Value,
    /// `vector`, `matrix` or `scalar`.
    pub result_type: String,
    /// Every series (a scalar is one series without labels).
    pub series: Vec<Series>,
    /// Prometheus' warnings, if any.
    pub warnings: Vec<String>,
}

impl Answer {
    /// Every sample of every series, in order.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.series.iter().flat_map(|s| s.samples.iter())
    }

    /// The only value of an answer that holds exactly one sample; `None` when it is
    /// empty; an error when there are several.
    pub fn single(&self) -> Result<Option<f64>, String> {
        let mut it = self.samples();
        match (it.next(), it.next()) {
            (None, _) => Ok(None),
            (Some(s), None) => Ok(Some(s.v)),
            _ => Err(format!(
                "the query returned {} series with {} samples where one value was expected",
                self.series.len(),
                self.samples().count()
            )),
        }
    }
}

/// Why a query gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PromError {
    /// The endpoint cannot be used as given (bad URL, bad header).
    #[error("{0}")]
    Invalid(String),
    /// Nothing answered.
    #[error("cannot reach Prometheus at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What the connection said.
        reason: String,
    },
    /// No answer within the deadline.
    #[error("Prometheus at {url} did not answer within {seconds}s")]
    Timeout {
        /// The URL tried.
        url: String,
        /// The deadline.
        seconds: f64,
    },
    /// Prometheus refused the query (a PromQL syntax error, a bad time).
    #[error("Prometheus refused the query ({kind}): {message}")]
    Refused {
        /// Prometheus' `errorType` (`bad_data`, `execution`, …) or the HTTP status.
        kind: String,
        /// Prometheus' `error`.
        message: String,
    },
    /// The answer is not what the Prometheus API sends (not JSON, an unparsable value).
    #[error("unexpected answer from Prometheus: {0}")]
    Malformed(String),
}

/// An instant query at `at` (Prometheus' "now" when `None`).
pub async fn instant(
    ctx: &Ctx<'_>,
    ep: &Endpoint,
    query: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Answer, PromError> {
    let client = client(ctx, ep)?;
    let mut b = client
        .query(query)
        .timeout(i64::try_from(ep.timeout.as_millis()).unwrap_or(i64::MAX));
    if let Some(t) = at {
        b = b.query("time", unix(t));
    }
    let (headers, span) = trace(ctx, ep, "api/v1/query");
    for (k, v) in headers {
        b = b.header(header_name(&k)?, header_value(&k, &v)?);
    }
    finish(ep, span, b.get_raw()).await
}

/// A range query from `start` to `end` every `step`.
pub async fn range(
    ctx: &Ctx<'_>,
    ep: &Endpoint,
    query: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    step: Duration,
) -> Result<Answer, PromError> {
    let client = client(ctx, ep)?;
    // The builder takes whole seconds; the window is widened to whole seconds so no
    // sample of it is lost.
    let (s, e) = (
        start.timestamp(),
        end.timestamp() + i64::from(end.timestamp_subsec_nanos() > 0),
    );
    let mut b = client
        .query_range(query, s, e, step.as_secs_f64().max(0.001))
        .timeout(i64::try_from(ep.timeout.as_millis()).unwrap_or(i64::MAX));
    let (headers, span) = trace(ctx, ep, "api/v1/query_range");
    for (k, v) in headers {
        b = b.header(header_name(&k)?, header_value(&k, &v)?);
    }
    finish(ep, span, b.get_raw()).await
}

/// Unix seconds with milliseconds, as Prometheus takes them.
pub fn unix(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

fn client(ctx: &Ctx<'_>, ep: &Endpoint) -> Result<prometheus_http_query::Client, PromError> {
    let url = url::Url::parse(&ep.base_url).map_err(|e| {
        PromError::Invalid(format!("invalid Prometheus URL {:?}: {e}", ep.base_url))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PromError::Invalid(format!(
            "the Prometheus URL {:?} must be http or https",
            ep.base_url
        )));
    }
    let inner = ctx
        .http
        .get(ep.verify_tls, Some(ep.timeout))
        .map_err(PromError::Invalid)?;
    prometheus_http_query::Client::from(inner, &ep.base_url)
        .map_err(|e| PromError::Invalid(format!("invalid Prometheus URL {:?}: {e}", ep.base_url)))
}

fn header_name(k: &str) -> Result<reqwest::header::HeaderName, PromError> {
    reqwest::header::HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| PromError::Invalid(format!("invalid header name {k:?}")))
}

fn header_value(k: &str, v: &str) -> Result<reqwest::header::HeaderValue, PromError> {
    reqwest::header::HeaderValue::from_str(v).map_err(|_| {
        PromError::Invalid(format!(
            "header '{k}' has an invalid value: line breaks and control characters are not allowed"
        ))
    })
}

/// The request's headers (auth, extra, trace context) and its CLIENT span, when the
/// run records spans.
fn trace(
    ctx: &Ctx<'_>,
    ep: &Endpoint,
    path: &str,
) -> (Vec<(String, String)>, Option<tracing::Span>) {
    let mut headers = Vec::new();
    match &ep.auth {
        Auth::None => {}
        Auth::Bearer(t) => headers.push(("authorization".into(), format!("Bearer {t}"))),
        Auth::Basic { user, password } => {
            use base64::Engine as _;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            headers.push(("authorization".into(), format!("Basic {b}")));
        }
    }
    headers.extend(ep.headers.iter().cloned());
    let url = format!("{}/{path}", ep.base_url.trim_end_matches('/'));
    let Some(t) = &ctx.trace else {
        headers.extend(ctx.headers.iter().cloned());
        return (headers, None);
    };
    let (span, trace) = t.client_span(ctx.redactor, "GET", &url);
    headers.extend(trace);
    (headers, Some(span))
}

async fn finish(
    ep: &Endpoint,
    span: Option<tracing::Span>,
    request: impl std::future::Future<Output = Result<reqwest::Response, prometheus_http_query::Error>>,
) -> Result<Answer, PromError> {
    let result = send(ep, request).await;
    if let Some(span) = span {
        match &result {
            Ok((code, _)) => span.record(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(*code)),
            Err(_) => span.record(attr::ERROR_TYPE, "connection"),
        };
        let error = match &result {
            Ok((code, _)) if *code >= 400 => Some(format!("HTTP {code}")),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        spans::end(span, error.as_deref());
    }
    let (code, body) = result?;
    parse(code, &body)
}

async fn send(
    ep: &Endpoint,
    request: impl std::future::Future<Output = Result<reqwest::Response, prometheus_http_query::Error>>,
) -> Result<(u16, String), PromError> {
    let url = ep.base_url.clone();
    let timeout = || PromError::Timeout {
        url: url.clone(),
        seconds: ep.timeout.as_secs_f64(),
    };
    let exchange = async {
        let resp = request.await.map_err(|e| describe(&url, &e))?;
        let code = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| PromError::Unreachable {
            url: url.clone(),
            reason: format!("the answer could not be read: {e}"),
        })?;
        Ok::<_, PromError>((code, body))
    };
    match tokio::time::timeout(ep.timeout, exchange).await {
        Ok(r) => r.map_err(|e| match e {
            PromError::Unreachable { reason, .. } if reason == "timeout" => timeout(),
            e => e,
        }),
        Err(_) => Err(timeout()),
    }
}

fn describe(url: &str, e: &prometheus_http_query::Error) -> PromError {
    use std::error::Error as _;
    let reqwest = e.source().and_then(|s| s.downcast_ref::<reqwest::Error>());
    match reqwest {
        Some(r) if r.is_timeout() => PromError::Unreachable {
            url: url.to_string(),
            reason: "timeout".into(),
        },
        Some(r) if r.is_builder() => PromError::Invalid(format!(
            "invalid request to {url}: {}",
            crate::provider::http::describe_error(r)
        )),
        Some(r) => PromError::Unreachable {
            url: url.to_string(),
            reason: crate::provider::http::describe_error(r),
        },
        None => PromError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        },
    }
}

/// Read an API answer: `{status, data: {resultType, result}, warnings}` or
/// `{status: "error", errorType, error}`.
pub fn parse(code: u16, body: &str) -> Result<Answer, PromError> {
    let raw: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) if code >= 400 => {
            return Err(PromError::Refused {
                kind: format!("HTTP {code}"),
                message: crate::experiment::tolerance::brief(&Value::String(body.trim().into())),
            })
        }
        Err(e) => return Err(PromError::Malformed(format!("not JSON ({e})"))),
    };
    if raw.get("status").and_then(Value::as_str) != Some("success") {
        let s = |k: &str| raw.get(k).and_then(Value::as_str).map(str::to_string);
        return Err(PromError::Refused {
            kind: s("errorType").unwrap_or_else(|| format!("HTTP {code}")),
            message: s("error").unwrap_or_else(|| crate::experiment::tolerance::brief(&raw)),
        });
    }
    let data = raw
        .get("data")
        .ok_or_else(|| PromError::Malformed("no \"data\"".into()))?;
    let result_type = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or_else(|| PromError::Malformed("no \"data.resultType\"".into()))?
        .to_string();
    let result = data.get("result").unwrap_or(&Value::Null);
    let series = match result_type.as_str() {
        "vector" | "matrix" => result
            .as_array()
            .ok_or_else(|| PromError::Malformed("\"data.result\" is not a list".into()))?
            .iter()
            .enumerate()
            .map(|(i, s)| series(i, s))
            .collect::<Result<Vec<_>, _>>()?,
        "scalar" => vec![Series {
            labels: BTreeMap::new(),
            samples: vec![sample(result, "data.result")?],
        }],
        other => {
            return Err(PromError::Malformed(format!(
                "a {other} result is not a number (the query must return a vector, a matrix or a scalar)"
            )))
        }
    };
    let warnings = raw
        .get("warnings")
        .and_then(Value::as_array)
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Answer {
        raw,
        result_type,
        series,
        warnings,
    })
}

fn series(i: usize, s: &Value) -> Result<Series, PromError> {
    let labels = s
        .get("metric")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let samples = if let Some(v) = s.get("value") {
        vec![sample(v, &format!("data.result[{i}].value"))?]
    } else if let Some(vs) = s.get("values").and_then(Value::as_array) {
        vs.iter()
            .enumerate()
            .map(|(j, v)| sample(v, &format!("data.result[{i}].values[{j}]")))
            .collect::<Result<_, _>>()?
    } else {
        // A native histogram, or something newer: not a number either.
        return Err(PromError::Malformed(format!(
            "data.result[{i}] has neither \"value\" nor \"values\""
        )));
    };
    Ok(Series { labels, samples })
}

/// `[1700000000.123, "0.5"]`.
fn sample(v: &Value, at: &str) -> Result<Sample, PromError> {
    let pair = v
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| PromError::Malformed(format!("{at} is not a [time, value] pair")))?;
    let t = pair[0].as_f64().ok_or_else(|| {
        PromError::Malformed(format!("{at}: the time {} is not a number", pair[0]))
    })?;
    let text = pair[1].as_str().ok_or_else(|| {
        PromError::Malformed(format!(
            "{at}: the value {} is not Prometheus' text form",
            pair[1]
        ))
    })?;
    let v = parse_value(text)
        .ok_or_else(|| PromError::Malformed(format!("{at}: the value {text:?} is not a number")))?;
    Ok(Sample { t, v })
}

/// Prometheus' number text: decimal, `NaN`, `+Inf`, `-Inf`.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse::<f64>().ok().filter(|f| f.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_series_and_sample_is_kept_with_its_labels() {
        let body = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"job": "a"}, "values": [[1.0, "1"], [2.0, "2.5"]]},
            {"metric": {"job": "b"}, "values": [[1.0, "NaN"], [2.0, "+Inf"]]}
        ]}});
        let a = parse(200, &body.to_string()).unwrap();
        assert_eq!(a.result_type, "matrix");
        assert_eq!(a.series.len(), 2);
        assert_eq!(a.series[0].labels["job"], "a");
        assert_eq!(a.series[0].samples[1], Sample { t: 2.0, v: 2.5 });
        assert!(a.series[1].samples[0].v.is_nan());
        assert_eq!(a.series[1].samples[1].v, f64::INFINITY);
        assert_eq!(a.raw, body);
        assert!(a.single().is_err());
    }

    #[test]
    fn an_unparsable_value_is_an_error_never_zero() {
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1.0, "twelve"]}]}});
        let e = parse(200, &body.to_string()).unwrap_err();
        assert!(e.to_string().contains("\"twelve\" is not a number"), "{e}");
        let body = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [1.0, 12]}]}});
        assert!(parse(200, &body.to_string()).is_err());
        assert_eq!(parse_value("1e3"), Some(1000.0));
        assert_eq!(parse_value("inf"), None, "only Prometheus' spelling");
    }

    #[test]
    fn scalars_errors_and_strings() {
        let a = parse(
            200,
            &json!({"status": "success", "data": {"resultType": "scalar", "result": [5.0, "3"]}})
                .to_string(),
        )
        .unwrap();
        assert_eq!(a.single().unwrap(), Some(3.0));
        let e = parse(
            400,
            &json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"})
                .to_string(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Prometheus refused the query (bad_data): parse error at char 4"
        );
        let e = parse(502, "Bad Gateway").unwrap_err();
        assert!(e.to_string().contains("HTTP 502"), "{e}");
        let e = parse(
            200,
            &json!({"status": "success", "data": {"resultType": "string", "result": [1.0, "x"]}})
                .to_string(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("string result is not a number"),
            "{e}"
        );
        let empty = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(
            parse(200, &empty.to_string()).unwrap().single().unwrap(),
            None
        );
    }
}
