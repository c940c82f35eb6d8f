//! The native `prometheus` provider: PromQL probes, instant or over a range, with every
//! series kept as evidence; and `chaosprometheus.probes.query` / `query_interval` run
//! natively with the Chaos Toolkit's arguments and output.
//!
//! Where a query goes is resolved once, here, for every PromQL user (this provider,
//! the chaosprometheus probes, SLO checks): [`endpoint`].

pub mod client;

use super::{field, seconds, ActivityError, Ctx};
use chrono::{DateTime, TimeZone as _, Utc};
use client::{Answer, Auth, Endpoint, PromError};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The settings file's `prometheus:` section, as plain values: the run-wide defaults
/// of every PromQL query (carried to providers in [`super::RunFacts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    /// The base URL when neither the provider nor the configuration gives one.
    pub base_url: Option<String>,
    /// The deadline of one query when the provider sets none.
    pub timeout: Option<Duration>,
    /// Verify TLS certificates when the provider does not say.
    pub verify_tls: Option<bool>,
    /// Prometheus' scrape interval, for `slo` probes that do not say.
    pub scrape_interval: Option<Duration>,
    /// The objective file of `slo` probes that name none (settings'
    /// `prometheus.objective_file`).
    pub objective_file: Option<String>,
}

/// The configuration key naming the Prometheus base URL (the Chaos Toolkit's).
pub const CONFIG_BASE_URL: &str = "prometheus_base_url";
/// The Chaos Toolkit's default base URL (chaosprometheus functions only).
pub const CHAOSTOOLKIT_DEFAULT_URL: &str = "http://localhost:9090";
/// Secret keys read from the provider's `secrets` scopes.
pub const SECRET_TOKEN: &str = "prometheus_token";
/// Basic auth user (with [`SECRET_PASSWORD`]).
pub const SECRET_USERNAME: &str = "prometheus_username";
/// Basic auth password.
pub const SECRET_PASSWORD: &str = "prometheus_password";
/// Extra headers: an object (or its JSON text) of header names to values.
pub const SECRET_HEADERS: &str = "prometheus_headers";

/// Where a PromQL query of this provider definition goes, and with which credentials.
///
/// The base URL is the provider's `base_url`, else the configuration's
/// `prometheus_base_url`, else the settings' `prometheus.base_url`; none is an error.
/// Credentials come from the secrets of the scopes the provider lists:
/// `prometheus_token` (bearer), `prometheus_username` + `prometheus_password`
/// (basic), `prometheus_headers` (extra headers). `timeout` (seconds) and
/// `verify_tls` come from the provider, else the settings; 30 s and `true` by default.
pub fn endpoint(m: &Map<String, Value>, ctx: &Ctx<'_>) -> Result<Endpoint, String> {
    endpoint_with(m, ctx, None)
}

/// [`endpoint`], with a last-resort base URL (the chaosprometheus functions' default).
pub fn endpoint_with(
    m: &Map<String, Value>,
    ctx: &Ctx<'_>,
    fallback: Option<&str>,
) -> Result<Endpoint, String> {
    let defaults = &ctx.run.prometheus;
    let text = |v: &Value, what: &str| match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        v => Err(format!("{what} must be a non-empty string, got {v}")),
    };
    let base_url = match (field(m, "base_url"), field(&ctx.configuration, CONFIG_BASE_URL)) {
        (Some(v), _) => text(v, "base_url")?,
        (None, Some(v)) => text(v, &format!("the configuration's {CONFIG_BASE_URL}"))?,
        (None, None) => match (&defaults.base_url, fallback) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => f.to_string(),
            (None, None) => {
                return Err(format!(
                    "no Prometheus URL: set the provider's base_url, the configuration key {CONFIG_BASE_URL}, or base_url in the settings' prometheus section"
                ))
            }
        },
    };
    let base_url = base_url.trim_end_matches('/').to_string();
    let timeout = match field(m, "timeout") {
        Some(v) => positive(v, "timeout")?,
        None => defaults.timeout.unwrap_or(client::DEFAULT_TIMEOUT),
    };
    let verify_tls = match field(m, "verify_tls") {
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("verify_tls must be true or false, got {v}")),
        None => defaults.verify_tls.unwrap_or(true),
    };
    let mut headers = match field(m, "headers") {
        Some(v) => header_list(v, "headers")?,
        None => Vec::new(),
    };
    let (mut token, mut user, mut password) = (None, None, None);
    // Secret values are never quoted in these errors: only the key is named.
    let secret_text = |v: &Value, key: &str| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("the secret {key} must be text")),
    };
    for scope in ctx.secrets.values().filter_map(Value::as_object) {
        if let Some(v) = field(scope, SECRET_TOKEN) {
            token = Some(secret_text(v, SECRET_TOKEN)?);
        }
        if let Some(v) = field(scope, SECRET_USERNAME) {
            user = Some(secret_text(v, SECRET_USERNAME)?);
        }
        if let Some(v) = field(scope, SECRET_PASSWORD) {
            password = Some(secret_text(v, SECRET_PASSWORD)?);
        }
        if let Some(v) = field(scope, SECRET_HEADERS) {
            let parsed;
            let v = match v {
                Value::String(s) => {
                    parsed = serde_json::from_str::<Value>(s).map_err(|_| {
                        format!("the secret {SECRET_HEADERS} must be an object (or its JSON text) of header names to values")
                    })?;
                    &parsed
                }
                v => v,
            };
            headers.extend(header_list(v, &format!("the secret {SECRET_HEADERS}")).map_err(
                |_| format!("the secret {SECRET_HEADERS} must be an object of header names to text values"),
            )?);
        }
    }
    let auth = match (token, user, password) {
        (Some(_), Some(_), _) => {
            return Err(format!(
                "both {SECRET_TOKEN} and {SECRET_USERNAME} are set: give a bearer token or basic credentials, not both"
            ))
        }
        (Some(t), None, _) => Auth::Bearer(t),
        (None, Some(user), password) => Auth::Basic {
            user,
            password: password.unwrap_or_default(),
        },
        (None, None, Some(_)) => {
            return Err(format!(
                "{SECRET_PASSWORD} is set without {SECRET_USERNAME}"
            ))
        }
        (None, None, None) => Auth::None,
    };
    Ok(Endpoint {
        base_url,
        auth,
        headers,
        timeout,
        verify_tls,
    })
}

fn positive(v: &Value, what: &str) -> Result<Duration, String> {
    let d = seconds(v, what)?;
    if d.is_zero() {
        return Err(format!("{what} must be more than 0 seconds"));
    }
    Ok(d)
}

fn header_list(v: &Value, what: &str) -> Result<Vec<(String, String)>, String> {
    let Value::Object(h) = v else {
        return Err(format!(
            "{what} must be an object of header names to values, got {v}"
        ));
    };
    h.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            v => Err(format!("{what}.{k} must be text, got {v}")),
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// The `prometheus` provider.

/// The python module whose `query` and `query_interval` faultline runs natively.
pub const CHAOSPROMETHEUS: &str = "chaosprometheus.probes";

/// Whether a python provider is a chaosprometheus probe faultline runs natively.
pub fn is_native_python(module: &str, func: &str) -> bool {
    module == CHAOSPROMETHEUS && matches!(func, "query" | "query_interval")
}

/// The keys of a `prometheus` provider. Unlike the Chaos Toolkit's providers, others
/// are refused: this provider is faultline's own, and a typo (`rnage`) must not turn a
/// range query into an instant one. `output_limit`, which every provider may carry,
/// is accepted and has nothing to limit here.
const KEYS: [&str; 10] = [
    "type",
    "query",
    "at",
    "range",
    "base_url",
    "timeout",
    "verify_tls",
    "headers",
    "secrets",
    "output_limit",
];

/// A point in time, resolved when the query runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum When {
    /// The moment the query runs.
    Now,
    /// When the experiment started.
    Start,
    /// When the method started (an error before it has).
    MethodStart,
    /// When the method ended (an error before it has).
    MethodEnd,
    /// A fixed time.
    At(DateTime<Utc>),
}

/// A named window of a range query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// Experiment start → now.
    Run,
    /// Method start → method end (now while it runs).
    Method,
    /// As long as the method, just before it: a baseline to compare it with.
    BeforeMethod,
    /// The last this long, up to now.
    Last(Duration),
}

/// Instant or range.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// One evaluation at a time.
    Instant(When),
    /// Evaluations every `step` over a window.
    Range {
        /// The window (named, or from `start` to `end`).
        span: Span,
        /// Time between two evaluations (default: the window / 100, at least 1 s).
        step: Option<Duration>,
    },
}

/// A range query's window.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    /// A named window.
    Named(Window),
    /// Explicit bounds.
    Between(When, When),
}

/// A typed `prometheus` provider.
#[derive(Debug, Clone)]
pub struct PrometheusProbe {
    /// The PromQL.
    pub query: String,
    /// Instant or range.
    pub mode: Mode,
    /// The provider's own deadline, if it sets one.
    pub timeout: Option<Duration>,
    /// The endpoint keys as written (resolved with the run's configuration, secrets
    /// and settings when the query runs).
    endpoint: Map<String, Value>,
}

/// Read a time: `now`, `start`, `method_start`, `method_end`, RFC 3339, or Unix seconds.
pub fn when(v: &Value) -> Result<When, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(unix_time)
            .map(When::At)
            .ok_or_else(|| format!("{n} is not a time in Unix seconds")),
        Value::String(s) => match s.trim() {
            "now" => Ok(When::Now),
            "start" => Ok(When::Start),
            "method_start" => Ok(When::MethodStart),
            "method_end" => Ok(When::MethodEnd),
            t => {
                if let Ok(f) = t.parse::<f64>() {
                    return unix_time(f)
                        .map(When::At)
                        .ok_or_else(|| format!("{t} is not a time in Unix seconds"));
                }
                DateTime::parse_from_rfc3339(t)
                    .map(|d| When::At(d.with_timezone(&Utc)))
                    .map_err(|_| {
                        format!("{t:?} is not a time: write now, start, method_start, method_end, an RFC 3339 time or Unix seconds")
                    })
            }
        },
        v => Err(format!(
            "expected a time (now, start, method_start, method_end, RFC 3339 or Unix seconds), got {v}"
        )),
    }
}

fn unix_time(f: f64) -> Option<DateTime<Utc>> {
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    Utc.timestamp_millis_opt((f * 1000.0).round() as i64)
        .single()
}

fn duration(v: &Value, what: &str) -> Result<Duration, String> {
    let d = match v {
        Value::String(s) if s.trim().parse::<f64>().is_err() => {
            crate::slo::parse_window(s).map_err(|e| format!("{what}: {e}"))?
        }
        v => seconds(v, what)?,
    };
    if d.is_zero() {
        return Err(format!("{what} must be longer than nothing"));
    }
    Ok(d)
}

fn window(s: &str) -> Result<Window, String> {
    match s.trim() {
        "run" => Ok(Window::Run),
        "method" => Ok(Window::Method),
        "before_method" => Ok(Window::BeforeMethod),
        t => crate::slo::parse_window(t)
            .map(Window::Last)
            .map_err(|e| format!("window: {e}; or one of run, method, before_method")),
    }
}

impl PrometheusProbe {
    /// Every problem of a definition, as (key path, message).
    pub fn from_map_problems(
        m: &Map<String, Value>,
    ) -> Result<PrometheusProbe, Vec<(String, String)>> {
        let mut problems: Vec<(String, String)> = Vec::new();
        for k in m.keys().filter(|k| !KEYS.contains(&k.as_str())) {
            problems.push((
                k.clone(),
                format!("unknown key '{k}' (keys are {})", KEYS[1..].join(", ")),
            ));
        }
        let query = match field(m, "query") {
            Some(Value::String(q)) if !q.trim().is_empty() => q.clone(),
            Some(v) => {
                problems.push(("query".into(), format!("must be PromQL text, got {v}")));
                String::new()
            }
            None => {
                problems.push((
                    "query".into(),
                    "missing required key 'query' (PromQL)".into(),
                ));
                String::new()
            }
        };
        let mut mode = Mode::Instant(When::Now);
        match (field(m, "at"), field(m, "range")) {
            (Some(_), Some(_)) => problems.push((
                "at".into(),
                "give either at (an instant query) or range (a range query), not both".into(),
            )),
            (Some(at), None) => match when(at) {
                Ok(w) => mode = Mode::Instant(w),
                Err(e) => problems.push(("at".into(), e)),
            },
            (None, Some(Value::String(w))) => match window(w) {
                Ok(w) => {
                    mode = Mode::Range {
                        span: Span::Named(w),
                        step: None,
                    }
                }
                Err(e) => problems.push(("range".into(), e)),
            },
            (None, Some(Value::Object(r))) => {
                let before = problems.len();
                const RANGE_KEYS: [&str; 4] = ["window", "start", "end", "step"];
                for k in r.keys().filter(|k| !RANGE_KEYS.contains(&k.as_str())) {
                    problems.push((
                        format!("range.{k}"),
                        format!("unknown key '{k}' (keys are window, or start and end; and step)"),
                    ));
                }
                let step = field(r, "step")
                    .map(|v| duration(v, "step"))
                    .transpose()
                    .unwrap_or_else(|e| {
                        problems.push(("range.step".into(), e));
                        None
                    });
                let mut bound = |k: &str, default: Option<When>| match field(r, k) {
                    Some(v) => when(v)
                        .map_err(|e| problems.push((format!("range.{k}"), e)))
                        .ok(),
                    None if default.is_some() => default,
                    None => {
                        problems.push((
                            format!("range.{k}"),
                            "missing: give window, or start (and end, now by default)".into(),
                        ));
                        None
                    }
                };
                let span = match field(r, "window") {
                    Some(w) if field(r, "start").is_some() || field(r, "end").is_some() => {
                        let _ = w;
                        problems.push((
                            "range.window".into(),
                            "give either window or start/end, not both".into(),
                        ));
                        None
                    }
                    Some(Value::String(w)) => window(w)
                        .map_err(|e| problems.push(("range.window".into(), e)))
                        .ok()
                        .map(Span::Named),
                    Some(v) => {
                        problems.push((
                            "range.window".into(),
                            format!("must be run, method, before_method or a duration such as 5m, got {v}"),
                        ));
                        None
                    }
                    None => {
                        let start = bound("start", None);
                        let end = bound("end", Some(When::Now));
                        start.zip(end).map(|(s, e)| Span::Between(s, e))
                    }
                };
                if let Some(span) = span {
                    if problems.len() == before {
                        mode = Mode::Range { span, step };
                    }
                }
            }
            (None, Some(v)) => problems.push((
                "range".into(),
                format!("must be a window (run, method, before_method, 5m) or an object {{window | start, end; step}}, got {v}"),
            )),
            (None, None) => {}
        }
        let timeout = match field(m, "timeout").map(|v| positive(v, "timeout")) {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                problems.push(("timeout".into(), e));
                None
            }
            None => None,
        };
        if let Some(v) = field(m, "base_url") {
            match v {
                Value::String(u)
                    if url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) => {
                }
                v => problems.push((
                    "base_url".into(),
                    format!("must be an http(s) URL, got {v}"),
                )),
            }
        }
        if let Some(v) = field(m, "verify_tls").filter(|v| !v.is_boolean()) {
            problems.push((
                "verify_tls".into(),
                format!("must be true or false, got {v}"),
            ));
        }
        if let Some(Err(e)) = field(m, "headers").map(|v| header_list(v, "headers")) {
            problems.push(("headers".into(), e));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let endpoint = ["base_url", "timeout", "verify_tls", "headers"]
            .iter()
            .filter_map(|k| m.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        Ok(PrometheusProbe {
            query,
            mode,
            timeout,
            endpoint,
        })
    }

    /// Type a substituted definition.
    pub fn from_map(m: &Map<String, Value>) -> Result<PrometheusProbe, String> {
        Self::from_map_problems(m).map_err(|p| join(&p))
    }

    /// Run the query; the output is the answer with every series (see the README).
    pub async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let ep = endpoint(&self.endpoint, ctx).map_err(ActivityError::invalid)?;
        let now = Utc::now();
        match &self.mode {
            Mode::Instant(w) => {
                let t = resolve(*w, ctx, now).map_err(ActivityError::new)?;
                let a = client::instant(ctx, &ep, &self.query, Some(t))
                    .await
                    .map_err(|e| failure(&self.query, e))?;
                Ok(output(&self.query, &a, Some(t), None))
            }
            Mode::Range { span, step } => {
                let (start, end) = bounds(span, ctx, now).map_err(ActivityError::new)?;
                if end < start {
                    return Err(ActivityError::new(format!(
                        "the range ends ({}) before it starts ({})",
                        crate::timefmt::iso(end),
                        crate::timefmt::iso(start)
                    )));
                }
                let step = step.unwrap_or_else(|| default_step(start, end));
                let a = client::range(ctx, &ep, &self.query, start, end, step)
                    .await
                    .map_err(|e| failure(&self.query, e))?;
                Ok(output(&self.query, &a, None, Some((start, end, step))))
            }
        }
    }
}

/// The window / 100, at least one second, in whole milliseconds.
pub fn default_step(start: DateTime<Utc>, end: DateTime<Utc>) -> Duration {
    let ms = (end - start).num_milliseconds().max(0) as u64 / 100;
    Duration::from_millis(ms.max(1000))
}

fn resolve(w: When, ctx: &Ctx<'_>, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let method = ctx.run.method_times();
    match w {
        When::Now => Ok(now),
        When::Start => Ok(ctx.run.started),
        When::MethodStart => method
            .started
            .ok_or_else(|| "method_start: the method has not started yet".into()),
        When::MethodEnd => method.ended.ok_or_else(|| {
            "method_end: the method has not ended yet (use it in the steady-state hypothesis after the method, or a rollback)".into()
        }),
        When::At(t) => Ok(t),
    }
}

fn bounds(
    span: &Span,
    ctx: &Ctx<'_>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let method = ctx.run.method_times();
    let not_started = || "the method window: the method has not started yet".to_string();
    match span {
        Span::Between(s, e) => Ok((resolve(*s, ctx, now)?, resolve(*e, ctx, now)?)),
        Span::Named(Window::Run) => Ok((ctx.run.started, now)),
        Span::Named(Window::Method) => {
            let s = method.started.ok_or_else(not_started)?;
            Ok((s, method.ended.unwrap_or(now)))
        }
        Span::Named(Window::BeforeMethod) => {
            let s = method.started.ok_or_else(not_started)?;
            let len = method.ended.unwrap_or(now) - s;
            Ok((s - len, s))
        }
        Span::Named(Window::Last(d)) => {
            let d = chrono::Duration::from_std(*d).map_err(|e| e.to_string())?;
            Ok((now - d, now))
        }
    }
}

/// A failed query as the activity's failure: a refusal names the query.
fn failure(query: &str, e: PromError) -> ActivityError {
    match e {
        PromError::Refused { kind, message } => ActivityError::new(format!(
            "Prometheus refused the query {query:?} ({kind}): {message}"
        )),
        PromError::Invalid(m) => ActivityError::invalid(m),
        e => ActivityError::new(e.to_string()),
    }
}

/// A sample value for JSON: a number, or Prometheus' text for NaN and infinities.
pub fn number(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v == f64::INFINITY {
        Value::String("+Inf".into())
    } else if v == f64::NEG_INFINITY {
        Value::String("-Inf".into())
    } else {
        serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
    }
}

/// The provider's output: `{query, type, time | start, end, step, result_type,
/// series: [{labels, value} | {labels, values: [[t, v]]}], warnings?}`, every series kept.
pub fn output(
    query: &str,
    a: &Answer,
    time: Option<DateTime<Utc>>,
    range: Option<(DateTime<Utc>, DateTime<Utc>, Duration)>,
) -> Value {
    let mut o = Map::new();
    o.insert("query".into(), json!(query));
    let instant = range.is_none();
    o.insert(
        "type".into(),
        json!(if instant { "instant" } else { "range" }),
    );
    if let Some(t) = time {
        o.insert("time".into(), json!(crate::timefmt::iso(t)));
    }
    if let Some((s, e, step)) = range {
        o.insert("start".into(), json!(crate::timefmt::iso(s)));
        o.insert("end".into(), json!(crate::timefmt::iso(e)));
        o.insert("step".into(), json!(step.as_secs_f64()));
    }
    o.insert("result_type".into(), json!(a.result_type));
    let series: Vec<Value> = a
        .series
        .iter()
        .map(|s| {
            let labels: Map<String, Value> =
                s.labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            // A vector holds one sample per series; a matrix (or a subquery asked
            // instantly) several.
            if a.result_type != "matrix" && s.samples.len() == 1 {
                json!({"labels": labels, "value": number(s.samples[0].v)})
            } else {
                json!({"labels": labels, "values": s.samples.iter().map(|p| json!([p.t, number(p.v)])).collect::<Vec<_>>()})
            }
        })
        .collect();
    o.insert("series".into(), Value::Array(series));
    if !a.warnings.is_empty() {
        o.insert("warnings".into(), json!(a.warnings));
    }
    Value::Object(o)
}

fn join(p: &[(String, String)]) -> String {
    p.iter()
        .map(|(k, m)| format!("{k}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn is_template(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("${"),
        Value::Object(m) => m.values().any(is_template),
        Value::Array(a) => a.iter().any(is_template),
        _ => false,
    }
}

/// The problems of a `prometheus` provider or a native chaosprometheus probe, as
/// (key path under the provider, message); the same code types them at run time, so
/// `validate` and `run` agree. Keys built by `${}` are checked when they are known.
pub fn check(m: &Map<String, Value>) -> Vec<(String, String)> {
    match m.get("type").and_then(Value::as_str) {
        Some("prometheus") => {
            let mut m = m.clone();
            // A templated value is replaced by a stand-in of the right kind.
            for (k, stand_in) in [
                ("query", json!("up")),
                ("at", json!("now")),
                ("range", json!("run")),
                ("base_url", json!("http://localhost:9090")),
                ("timeout", json!(1)),
                ("verify_tls", json!(true)),
                ("headers", json!({})),
            ] {
                if m.get(k).is_some_and(is_template) {
                    m.insert(k.into(), stand_in);
                }
            }
            PrometheusProbe::from_map_problems(&m)
                .err()
                .unwrap_or_default()
        }
        Some("python") => {
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
            if !is_native_python(s("module"), s("func"))
                || m.get("arguments").is_some_and(is_template)
            {
                return Vec::new();
            }
            ChaosProbe::from_map_problems(m).err().unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------
// chaosprometheus.probes.query / query_interval, natively.

/// `chaosprometheus.probes.query(query, when=None, timeout=None)` or
/// `query_interval(query, start, end, step=1, timeout=None)`, run natively: the same
/// arguments, Prometheus' document as received.
#[derive(Debug, Clone)]
pub struct ChaosProbe {
    query: String,
    /// `when` (query) or `start`, `end` (query_interval), as written.
    times: ChaosTimes,
    /// The endpoint keys (`timeout`, `verify_tls`).
    endpoint: Map<String, Value>,
}

#[derive(Debug, Clone)]
enum ChaosTimes {
    Instant(Option<String>),
    Range {
        start: String,
        end: String,
        step: Duration,
    },
}

impl ChaosProbe {
    fn from_map_problems(m: &Map<String, Value>) -> Result<ChaosProbe, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let empty = Map::new();
        let args = match m.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(a)) => a,
            Some(v) => {
                return Err(vec![(
                    "arguments".into(),
                    format!("must be an object of argument names to values, got {v}"),
                )])
            }
        };
        let func = m.get("func").and_then(Value::as_str).unwrap_or("query");
        let known: &[&str] = if func == "query" {
            &["query", "when", "timeout", "verify_tls"]
        } else {
            &["query", "start", "end", "step", "timeout", "verify_tls"]
        };
        for k in args.keys().filter(|k| !known.contains(&k.as_str())) {
            problems.push((
                format!("arguments.{k}"),
                format!(
                    "{func}() has no argument '{k}' (it takes {})",
                    known.join(", ")
                ),
            ));
        }
        let templated = |k: &str| args.get(k).is_some_and(is_template);
        let text =
            |k: &str, problems: &mut Vec<(String, String)>, required: bool| match field(args, k) {
                Some(Value::String(s)) => {
                    if !templated(k) && k != "query" {
                        if let Err(e) = parse_human_time(s, Utc::now()) {
                            problems.push((format!("arguments.{k}"), e));
                        }
                    }
                    Some(s.clone())
                }
                Some(Value::Number(n)) if k != "query" => Some(n.to_string()),
                Some(v) => {
                    problems.push((format!("arguments.{k}"), format!("must be text, got {v}")));
                    None
                }
                None if required => {
                    problems.push((format!("arguments.{k}"), format!("{func}() needs '{k}'")));
                    None
                }
                None => None,
            };
        let query = text("query", &mut problems, true).unwrap_or_default();
        let times = if func == "query" {
            ChaosTimes::Instant(text("when", &mut problems, false))
        } else {
            let start = text("start", &mut problems, true).unwrap_or_default();
            let end = text("end", &mut problems, true).unwrap_or_default();
            let step = match field(args, "step") {
                None => Duration::from_secs(1),
                Some(v) if templated("step") => {
                    let _ = v;
                    Duration::from_secs(1)
                }
                Some(v) => duration(v, "step").unwrap_or_else(|e| {
                    problems.push(("arguments.step".into(), e));
                    Duration::from_secs(1)
                }),
            };
            ChaosTimes::Range { start, end, step }
        };
        let mut endpoint = Map::new();
        if let Some(v) = field(args, "timeout") {
            if !templated("timeout") {
                if let Err(e) = positive(v, "timeout") {
                    problems.push(("arguments.timeout".into(), e));
                }
            }
            endpoint.insert("timeout".into(), v.clone());
        }
        if let Some(v) = field(args, "verify_tls") {
            if !v.is_boolean() && !templated("verify_tls") {
                problems.push((
                    "arguments.verify_tls".into(),
                    format!("must be true or false, got {v}"),
                ));
            }
            endpoint.insert("verify_tls".into(), v.clone());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ChaosProbe {
            query,
            times,
            endpoint,
        })
    }

    /// Type a substituted definition.
    pub fn from_map(m: &Map<String, Value>) -> Result<ChaosProbe, String> {
        Self::from_map_problems(m).map_err(|p| join(&p))
    }

    /// The timeout argument, if given (the activity's deadline).
    pub fn timeout(&self) -> Option<Duration> {
        field(&self.endpoint, "timeout").and_then(|v| seconds(v, "timeout").ok())
    }

    /// Run it: Prometheus' document as received.
    pub async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let ep = endpoint_with(&self.endpoint, ctx, Some(CHAOSTOOLKIT_DEFAULT_URL))
            .map_err(ActivityError::invalid)?;
        let now = Utc::now();
        let answer = match &self.times {
            ChaosTimes::Instant(when) => {
                let at = when
                    .as_deref()
                    .filter(|w| !w.trim().is_empty())
                    .map(|w| parse_human_time(w, now))
                    .transpose()
                    .map_err(ActivityError::invalid)?;
                client::instant(ctx, &ep, &self.query, Some(at.unwrap_or(now))).await
            }
            ChaosTimes::Range { start, end, step } => {
                let s = parse_human_time(start, now).map_err(ActivityError::invalid)?;
                let e = parse_human_time(end, now).map_err(ActivityError::invalid)?;
                client::range(ctx, &ep, &self.query, s, e, *step).await
            }
        };
        answer.map(|a| a.raw).map_err(|e| failure(&self.query, e))
    }
}

/// The times chaosprometheus reads with `dateparser`, in their common forms: `now`,
/// `5 minutes ago`, `an hour ago`, `in 2 minutes`, RFC 3339, `2024-01-31 10:00:00`
/// and `2024-01-31` (UTC), Unix seconds.
pub fn parse_human_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if lower == "now" || lower == "right now" {
        return Ok(now);
    }
    if let Ok(f) = t.parse::<f64>() {
        return unix_time(f).ok_or_else(|| format!("{t} is not a time in Unix seconds"));
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    // `30s ago` as `30 s ago`.
    let spaced: String = lower
        .split_whitespace()
        .map(|w| match w.find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) if i > 0 && w[..i].parse::<f64>().is_ok() => format!("{} {}", &w[..i], &w[i..]),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let (n, unit, sign) = match words.as_slice() {
        [n, unit, "ago"] => (*n, *unit, -1),
        ["in", n, unit] => (*n, *unit, 1),
        _ => ("", "", 0),
    };
    let n = match n {
        "a" | "an" | "one" => Some(1.0),
        n => n.parse::<f64>().ok().filter(|n| n.is_finite() && *n >= 0.0),
    };
    let unit = match unit.trim_end_matches('s') {
        "second" | "sec" | "" => Some(1.0),
        "minute" | "min" | "m" => Some(60.0),
        "hour" | "hr" | "h" => Some(3600.0),
        "day" | "d" => Some(86400.0),
        "week" | "w" => Some(604_800.0),
        _ => None,
    };
    match (n, unit) {
        (Some(n), Some(u)) if sign != 0 => {
            let ms = (n * u * 1000.0).round() as i64;
            Ok(now + chrono::Duration::milliseconds(ms * sign))
        }
        _ => Err(format!(
            "cannot read the time {t:?}: write now, '5 minutes ago', 'in 1 hour', an RFC 3339 time (2024-01-31T10:00:00Z) or Unix seconds"
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::provider::{http::Clients, process::Processes, RunFacts};
    use serde_json::json;

    /// A run's facts for provider tests: started now, these PromQL defaults.
    pub(crate) fn facts(prometheus: Defaults) -> RunFacts {
        RunFacts {
            run_id: "r".into(),
            trace_id: None,
            started: chrono::Utc::now(),
            slo: Default::default(),
            method: Default::default(),
            prometheus,
            python: crate::provider::python::worker::Worker::new(Processes::new()),
        }
    }

    pub(crate) fn with_ctx<T>(
        configuration: Value,
        secrets: Value,
        facts: &RunFacts,
        f: impl FnOnce(&Ctx<'_>) -> T,
    ) -> T {
        let configuration = configuration.as_object().cloned().unwrap_or_default();
        let http = Clients::default();
        let processes = Processes::default();
        let redactor = crate::redact::Redactor::new(Vec::<String>::new());
        let ctx = Ctx {
            configuration: std::sync::Arc::new(configuration.clone()),
            secrets: secrets.as_object().cloned().unwrap_or_default(),
            http: &http,
            headers: Vec::new(),
            env: Vec::new(),
            logs: Default::default(),
            trace: None,
            redactor: &redactor,
            output_limit: 1 << 20,
            warnings: Default::default(),
            processes: &processes,
            run: facts,
        };
        f(&ctx)
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_base_url_comes_from_the_provider_then_the_configuration_then_the_settings() {
        let settings = facts(Defaults {
            base_url: Some("http://settings:9090".into()),
            timeout: Some(Duration::from_secs(7)),
            verify_tls: Some(false),
            ..Defaults::default()
        });
        let conf = json!({"prometheus_base_url": "http://conf:9090/"});
        with_ctx(conf.clone(), json!({}), &settings, |ctx| {
            let ep = endpoint(&map(json!({"base_url": "http://own:1"})), ctx).unwrap();
            assert_eq!(ep.base_url, "http://own:1");
            let ep = endpoint(&map(json!({})), ctx).unwrap();
            assert_eq!(ep.base_url, "http://conf:9090");
            assert_eq!(ep.timeout, Duration::from_secs(7));
            assert!(!ep.verify_tls);
        });
        with_ctx(json!({}), json!({}), &settings, |ctx| {
            let ep = endpoint(&map(json!({"timeout": 2, "verify_tls": true})), ctx).unwrap();
            assert_eq!(ep.base_url, "http://settings:9090");
            assert_eq!(ep.timeout, Duration::from_secs(2));
            assert!(ep.verify_tls);
        });
        let bare = facts(Defaults::default());
        with_ctx(json!({}), json!({}), &bare, |ctx| {
            let e = endpoint(&map(json!({})), ctx).unwrap_err();
            for place in ["base_url", "prometheus_base_url", "settings"] {
                assert!(e.contains(place), "{e}");
            }
            let ep = endpoint_with(&map(json!({})), ctx, Some(CHAOSTOOLKIT_DEFAULT_URL)).unwrap();
            assert_eq!(ep.base_url, "http://localhost:9090");
            assert_eq!(ep.timeout, client::DEFAULT_TIMEOUT);
            assert!(ep.verify_tls);
        });
    }

    #[test]
    fn credentials_come_from_secrets_and_are_never_quoted() {
        let f = facts(Defaults::default());
        let m = map(json!({"base_url": "http://p:9090", "headers": {"x-a": "1"}}));
        let secrets = json!({"prom": {"prometheus_token": "s3cr3t",
            "prometheus_headers": "{\"X-Scope-OrgID\": \"tenant-1\"}"}});
        with_ctx(json!({}), secrets, &f, |ctx| {
            let ep = endpoint(&m, ctx).unwrap();
            assert_eq!(ep.auth, Auth::Bearer("s3cr3t".into()));
            assert_eq!(
                ep.headers,
                [
                    ("x-a".into(), "1".into()),
                    ("X-Scope-OrgID".into(), "tenant-1".into())
                ]
            );
            assert!(!format!("{ep:?}").contains("s3cr3t"));
        });
        let secrets =
            json!({"a": {"prometheus_username": "u"}, "b": {"prometheus_password": "pw"}});
        with_ctx(json!({}), secrets, &f, |ctx| {
            let ep = endpoint(&m, ctx).unwrap();
            assert_eq!(
                ep.auth,
                Auth::Basic {
                    user: "u".into(),
                    password: "pw".into()
                }
            );
        });
        let secrets = json!({"a": {"prometheus_token": "tok", "prometheus_username": "u",
            "prometheus_headers": "not json"}});
        with_ctx(json!({}), secrets, &f, |ctx| {
            let e = endpoint(&m, ctx).unwrap_err();
            assert!(!e.contains("tok") && !e.contains("not json"), "{e}");
        });
    }

    #[test]
    fn provider_syntax_and_its_problems() {
        let p = |v: Value| PrometheusProbe::from_map_problems(&map(v));
        let ok = p(json!({"type": "prometheus", "query": "up"})).unwrap();
        assert_eq!(ok.mode, Mode::Instant(When::Now));
        let ok = p(json!({"type": "prometheus", "query": "up", "at": "method_end"})).unwrap();
        assert_eq!(ok.mode, Mode::Instant(When::MethodEnd));
        let ok = p(json!({"type": "prometheus", "query": "up", "at": 1700000000})).unwrap();
        assert!(matches!(ok.mode, Mode::Instant(When::At(t)) if t.timestamp() == 1_700_000_000));
        let ok = p(json!({"type": "prometheus", "query": "up", "range": "method"})).unwrap();
        assert_eq!(
            ok.mode,
            Mode::Range {
                span: Span::Named(Window::Method),
                step: None
            }
        );
        let ok = p(json!({"type": "prometheus", "query": "up",
            "range": {"start": "2026-01-01T00:00:00Z", "step": "15s"}}))
        .unwrap();
        assert!(
            matches!(ok.mode, Mode::Range { span: Span::Between(When::At(_), When::Now), step: Some(s) } if s.as_secs() == 15)
        );
        let ok =
            p(json!({"type": "prometheus", "query": "up", "range": {"window": "5m", "step": 5}}))
                .unwrap();
        assert!(
            matches!(ok.mode, Mode::Range { span: Span::Named(Window::Last(d)), .. } if d.as_secs() == 300)
        );
        let bad = p(json!({"type": "prometheus", "qurey": "up", "at": "later",
            "range": {"window": "run", "start": "now", "stepp": 1}, "timeout": 0}))
        .unwrap_err();
        let keys: Vec<&str> = bad.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["qurey", "query", "at", "timeout"], "{bad:?}");
        let bad = p(json!({"type": "prometheus", "query": "up",
            "range": {"window": "fortnight", "stepp": 1}}))
        .unwrap_err();
        let keys: Vec<&str> = bad.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["range.stepp", "range.window"], "{bad:?}");
        // Templates are checked once substituted.
        assert!(check(&map(
            json!({"type": "prometheus", "query": "${q}", "at": "${t}"})
        ))
        .is_empty());
        let py = |args: Value| {
            check(&map(
                json!({"type": "python", "module": "chaosprometheus.probes",
                "func": "query_interval", "arguments": args}),
            ))
        };
        assert!(
            py(json!({"query": "up", "start": "5 minutes ago", "end": "now", "step": 2}))
                .is_empty()
        );
        let bad = py(json!({"query": "up", "start": "last tuesday-ish", "stp": 1}));
        let keys: Vec<&str> = bad.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["arguments.stp", "arguments.start", "arguments.end"],
            "{bad:?}"
        );
    }

    #[test]
    fn dateparser_forms() {
        let now = DateTime::parse_from_rfc3339("2026-12-05T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |t: &str| parse_human_time(t, now).map(crate::timefmt::iso);
        assert_eq!(parse_human_time("now", now).unwrap(), now);
        assert_eq!(
            parse_human_time("5 minutes ago", now).unwrap(),
            now - chrono::Duration::minutes(5)
        );
        assert_eq!(
            parse_human_time("an hour ago", now).unwrap(),
            now - chrono::Duration::hours(1)
        );
        assert_eq!(
            parse_human_time("30s ago", now).unwrap(),
            now - chrono::Duration::seconds(30)
        );
        assert_eq!(
            parse_human_time("in 2 days", now).unwrap(),
            now + chrono::Duration::days(2)
        );
        assert_eq!(
            parse_human_time("2026-12-05T11:00:00+01:00", now).unwrap(),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_human_time("2026-12-05 10:00:00", now).unwrap(),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_human_time("2026-12-05", now).unwrap(),
            now - chrono::Duration::hours(12)
        );
        assert_eq!(parse_human_time("1796472000", now).unwrap(), now);
        assert!(at("next full moon").unwrap_err().contains("5 minutes ago"));
    }

    #[test]
    fn the_output_keeps_every_series_and_writes_non_finite_values_as_prometheus_does() {
        let body = json!({"status": "success", "warnings": ["w"], "data": {"resultType": "vector", "result": [
            {"metric": {"job": "a"}, "value": [1.5, "0.25"]},
            {"metric": {"job": "b"}, "value": [1.5, "NaN"]},
            {"metric": {"job": "c"}, "value": [1.5, "+Inf"]},
            {"metric": {"job": "d"}, "value": [1.5, "-Inf"]}]}});
        let a = client::parse(200, &body.to_string()).unwrap();
        let t = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let o = output("q", &a, Some(t), None);
        assert_eq!(
            o,
            json!({"query": "q", "type": "instant", "time": crate::timefmt::iso(t),
                "result_type": "vector", "warnings": ["w"], "series": [
                {"labels": {"job": "a"}, "value": 0.25},
                {"labels": {"job": "b"}, "value": "NaN"},
                {"labels": {"job": "c"}, "value": "+Inf"},
                {"labels": {"job": "d"}, "value": "-Inf"}]})
        );
        let body = json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {}, "values": [[1.0, "1"], [2.0, "2"]]}]}});
        let a = client::parse(200, &body.to_string()).unwrap();
        let o = output("q", &a, None, Some((t, t, Duration::from_millis(1500))));
        assert_eq!(o["type"], "range");
        assert_eq!(o["step"], 1.5);
        assert_eq!(o["series"][0]["values"], json!([[1.0, 1.0], [2.0, 2.0]]));
        assert!(o.get("warnings").is_none());
        assert_eq!(
            default_step(t, t + chrono::Duration::seconds(50)),
            Duration::from_secs(1)
        );
        assert_eq!(
            default_step(t, t + chrono::Duration::hours(1)),
            Duration::from_secs(36)
        );
    }
}
