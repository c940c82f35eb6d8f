//! The one place the standard `OTEL_*` variables are read, for traces, logs and
//! metrics alike, by the rules of the OpenTelemetry specification (the OTLP exporter
//! configuration and the SDK environment variables).
//!
//! It exists because these variables used to be read in four places that disagreed
//! (`OTEL_SDK_DISABLED=1` meant "off" for log sinks and "on" for traces). Every
//! consumer (the trace setup in `telemetry/config.rs`, the OTLP logs sink, the sink
//! factory and the run's sink plan in `app/sinks.rs`) now asks this module.
//!
//! Pure: the environment is a function (`env`), so the CLI passes its lookup that
//! overlays `.env` files and tests pass a map; nothing here reads the process
//! environment. A value the specification says to ignore when malformed becomes a
//! warning naming its variable, and the next source is used.
//!
//! # The rules
//!
//! | what | sources, first usable wins |
//! |---|---|
//! | endpoint | faultline's own setting (a base, or a full URL ending in the signal path); `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`, used verbatim; `OTEL_EXPORTER_OTLP_ENDPOINT`, a base to which HTTP appends `/v1/traces`, `/v1/logs` or `/v1/metrics` (gRPC uses it verbatim). None: see [`default_endpoint`] |
//! | protocol | own setting; `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`; `OTEL_EXPORTER_OTLP_PROTOCOL`; `http/protobuf`. Values `grpc`, `http/protobuf`, `http/json` |
//! | headers | `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS` replaces `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values percent-decoded); own headers then replace entries of the same name (case-insensitive) |
//! | timeout | own setting; `OTEL_EXPORTER_OTLP_<SIGNAL>_TIMEOUT`; `OTEL_EXPORTER_OTLP_TIMEOUT` (positive milliseconds) |
//! | exporter | own setting; `OTEL_<SIGNAL>_EXPORTER` (`otlp`, `none`; a list is allowed) |
//! | off | `OTEL_SDK_DISABLED`, true only for the case-insensitive string `true` |
//! | resource | `OTEL_SERVICE_NAME` wins over `service.name` in `OTEL_RESOURCE_ATTRIBUTES` (`k=v,…`, values percent-decoded) |
//!
//! An empty value is the same as an unset variable. An endpoint without a scheme
//! (`localhost:4317`) is taken as `http://` with a warning, as the Go and Python SDKs
//! take it; an endpoint that is not an `http(s)` URL is an unusable destination,
//! reported by [`Endpoint::check`].

use serde::Deserialize;
use std::time::Duration;

/// How the environment is read: a variable's value, or `None` when unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One OpenTelemetry signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metrics.
    Metrics,
}

impl Signal {
    /// The signal's part of a variable name: `TRACES`, `LOGS`, `METRICS`.
    pub fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Logs => "LOGS",
            Signal::Metrics => "METRICS",
        }
    }

    /// The path OTLP/HTTP appends to a base endpoint.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }

    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_<what>`.
    fn var(self, what: &str) -> String {
        format!("OTEL_EXPORTER_OTLP_{}_{what}", self.upper())
    }
}

/// The OTLP transport, spelled as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// OTLP over gRPC.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with a protobuf body (the default).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP over HTTP with a JSON body.
    #[serde(rename = "http/json")]
    HttpJson,
}

impl Protocol {
    /// The variable's spelling, surrounding blanks and case ignored.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => Some(Protocol::HttpJson),
            _ => None,
        }
    }

    /// The spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
            Protocol::HttpJson => "http/json",
        }
    }

    /// How the console names it (`OTLP/gRPC`, `OTLP/HTTP protobuf`, `OTLP/HTTP JSON`).
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Grpc => "OTLP/gRPC",
            Protocol::HttpProtobuf => "OTLP/HTTP protobuf",
            Protocol::HttpJson => "OTLP/HTTP JSON",
        }
    }

    /// Over HTTP (either body).
    pub fn is_http(self) -> bool {
        self != Protocol::Grpc
    }
}

/// Which exporter a signal asked for (`OTEL_<SIGNAL>_EXPORTER`, or faultline's own
/// setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    /// Nothing said: the consumer's default applies.
    Unset,
    /// `otlp` (alone or in a list).
    Otlp,
    /// `none`, and nothing else: the signal is off.
    None,
    /// `file`: the embedded trace file; only faultline's own setting may ask for it.
    File,
}

/// Where a signal goes, and which setting said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL to use: over HTTP it includes the signal path; over gRPC the server.
    pub url: String,
    /// What set it (a variable name, `settings tracing.endpoint`, `endpoint`, or
    /// `the default endpoint`), for messages.
    pub source: String,
    /// The value as written there (with the scheme put in front when it had none),
    /// for messages: a user recognises what they wrote, not what was appended.
    pub written: String,
}

impl Endpoint {
    /// An unusable destination (not an `http://` or `https://` URL with a host) is an
    /// error naming where it came from; the URL's user information is masked.
    pub fn check(&self) -> Result<(), String> {
        // Both as written and as used: `http://` plus `/v1/logs` would parse as the
        // host `v1`. The URL parser also forgives a missing authority (`http:///x`
        // has the host `x`), so the written form must have one.
        let usable = |s: &str| {
            let authority = s
                .split_once("://")
                .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
            authority
                && reqwest::Url::parse(s)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        };
        if usable(&self.written) && usable(&self.url) {
            return Ok(());
        }
        Err(format!(
            "{}: url '{}' is not an http(s) URL (e.g. http://localhost:4318)",
            self.source,
            display_url(&self.written)
        ))
    }
}

/// What faultline's own configuration says for a signal (the settings file's
/// `tracing:` block, an OTLP sink's keys). Each value set wins over the environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides<'a> {
    /// `(source, endpoint)`: a base, or a full URL already ending in the signal path.
    pub endpoint: Option<(&'a str, &'a str)>,
    /// The protocol, already parsed (a bad spelling in a config file is an error there).
    pub protocol: Option<Protocol>,
    /// Headers that replace environment headers of the same name.
    pub headers: &'a [(String, String)],
    /// The export timeout.
    pub timeout: Option<Duration>,
    /// `(source, exporter list)`, as `OTEL_<SIGNAL>_EXPORTER` writes it; may say `file`.
    pub exporter: Option<(&'a str, &'a str)>,
}

/// One signal's OTLP exporter configuration, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSignalConfig {
    /// Which signal.
    pub signal: Signal,
    /// The exporter asked for.
    pub exporter: Exporter,
    /// The transport.
    pub protocol: Protocol,
    /// The configured endpoint; `None` when nothing sets one (the consumer decides
    /// whether to use [`default_endpoint`]).
    pub endpoint: Option<Endpoint>,
    /// Request headers or gRPC metadata, values decoded, in order.
    pub headers: Vec<(String, String)>,
    /// The export timeout, when something sets one.
    pub timeout: Option<Duration>,
    /// Values ignored, each naming its variable.
    pub warnings: Vec<String>,
}

impl OtlpSignalConfig {
    /// The configured endpoint, or the default for the signal and protocol.
    pub fn endpoint_or_default(&self) -> Endpoint {
        self.endpoint
            .clone()
            .unwrap_or_else(|| default_endpoint(self.signal, self.protocol))
    }
}

/// The resource the environment describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceEnv {
    /// `OTEL_SERVICE_NAME`, else `service.name` from `OTEL_RESOURCE_ATTRIBUTES`.
    pub service_name: Option<String>,
    /// The other `OTEL_RESOURCE_ATTRIBUTES` entries, in order; a key written twice
    /// keeps its last value.
    pub attributes: Vec<(String, String)>,
}

/// What every signal shares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtelEnv {
    /// `OTEL_SDK_DISABLED`: every OpenTelemetry signal off.
    pub sdk_disabled: bool,
    /// The resource.
    pub resource: ResourceEnv,
    /// Values ignored, each naming its variable.
    pub warnings: Vec<String>,
}

/// A variable's value, blanks trimmed, `None` when unset or empty (the specification
/// treats an empty value as unset).
pub fn var(env: Env, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `OTEL_SDK_DISABLED`: true only for the case-insensitive string `true`.
pub fn sdk_disabled(env: Env) -> bool {
    sdk_disabled_checked(env).0
}

/// [`sdk_disabled`], and a warning for a value that is neither `true` nor `false`
/// (the specification asks to say that it was taken as false).
fn sdk_disabled_checked(env: Env) -> (bool, Option<String>) {
    match var(env, "OTEL_SDK_DISABLED") {
        None => (false, None),
        Some(v) if v.eq_ignore_ascii_case("true") => (true, None),
        Some(v) if v.eq_ignore_ascii_case("false") => (false, None),
        Some(v) => (
            false,
            Some(format!(
                "OTEL_SDK_DISABLED={v:?} is taken as false: only \"true\" turns OpenTelemetry off"
            )),
        ),
    }
}

/// The `OTEL_SDK_DISABLED` switch and the resource.
pub fn common(env: Env) -> OtelEnv {
    let (sdk_disabled, warning) = sdk_disabled_checked(env);
    let mut warnings: Vec<String> = warning.into_iter().collect();
    let resource = resource(env, &mut warnings);
    OtelEnv {
        sdk_disabled,
        resource,
        warnings,
    }
}

fn resource(env: Env, warnings: &mut Vec<String>) -> ResourceEnv {
    let name = "OTEL_RESOURCE_ATTRIBUTES";
    let mut attributes: Vec<(String, String)> = Vec::new();
    for (k, v) in var(env, name)
        .map(|v| pairs(name, &v, warnings))
        .unwrap_or_default()
    {
        match attributes.iter_mut().find(|(key, _)| *key == k) {
            Some(entry) => entry.1 = v,
            None => attributes.push((k, v)),
        }
    }
    let from_attributes = attributes
        .iter()
        .position(|(k, _)| k == "service.name")
        .map(|i| attributes.remove(i).1);
    ResourceEnv {
        service_name: var(env, "OTEL_SERVICE_NAME").or(from_attributes),
        attributes,
    }
}

/// One signal's exporter configuration: `over` first, then the environment.
pub fn signal(signal: Signal, env: Env, over: &Overrides) -> OtlpSignalConfig {
    let mut warnings = Vec::new();
    let exporter = exporter(signal, env, over, &mut warnings);

    let protocol = over.protocol.unwrap_or_else(|| {
        [signal.var("PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL".into()]
            .iter()
            .find_map(|name| {
                let v = var(env, name)?;
                let p = Protocol::parse(&v);
                if p.is_none() {
                    warnings.push(format!(
                        "{name}={v:?} is not a known protocol (grpc, http/protobuf, http/json); ignored"
                    ));
                }
                p
            })
            .unwrap_or(Protocol::HttpProtobuf)
    });

    let path = signal.http_path();
    let endpoint = if let Some((source, e)) = over.endpoint.filter(|(_, e)| !e.trim().is_empty()) {
        let e = with_scheme(source, e, &mut warnings);
        // Faultline's own settings take a base or a full URL: be forgiving.
        let url = if protocol.is_http() && !e.trim_end_matches('/').ends_with(path) {
            with_path(&e, path)
        } else {
            e.clone()
        };
        Some(Endpoint {
            url,
            source: source.to_string(),
            written: e,
        })
    } else if let Some(e) = var(env, &signal.var("ENDPOINT")) {
        let source = signal.var("ENDPOINT");
        let e = with_scheme(&source, &e, &mut warnings);
        Some(Endpoint {
            url: e.clone(),
            source,
            written: e,
        })
    } else if let Some(e) = var(env, "OTEL_EXPORTER_OTLP_ENDPOINT") {
        let source = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let e = with_scheme(source, &e, &mut warnings);
        Some(Endpoint {
            url: if protocol.is_http() {
                with_path(&e, path)
            } else {
                e.clone()
            },
            source: source.to_string(),
            written: e,
        })
    } else {
        None
    };

    let mut headers = [signal.var("HEADERS"), "OTEL_EXPORTER_OTLP_HEADERS".into()]
        .iter()
        .find_map(|name| var(env, name).map(|v| pairs(name, &v, &mut warnings)))
        .unwrap_or_default();
    for (k, v) in over.headers {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }

    let timeout = over.timeout.or_else(|| {
        [signal.var("TIMEOUT"), "OTEL_EXPORTER_OTLP_TIMEOUT".into()]
            .iter()
            .find_map(|name| millis(env, name, &mut warnings))
    });

    OtlpSignalConfig {
        signal,
        exporter,
        protocol,
        endpoint,
        headers,
        timeout,
        warnings,
    }
}

fn exporter(signal: Signal, env: Env, over: &Overrides, warnings: &mut Vec<String>) -> Exporter {
    let env_name = format!("OTEL_{}_EXPORTER", signal.upper());
    let (source, value, own) = match over.exporter.filter(|(_, v)| !v.trim().is_empty()) {
        Some((source, v)) => (source.to_string(), v.to_string(), true),
        None => match var(env, &env_name) {
            Some(v) => (env_name, v, false),
            None => return Exporter::Unset,
        },
    };
    let names: Vec<String> = value
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let (mut otlp, mut file) = (false, false);
    for n in &names {
        match n.as_str() {
            "otlp" => otlp = true,
            "none" => {}
            "file" if own => file = true,
            other => warnings.push(format!(
                "{source}: exporter {other:?} is not supported (otlp, none); Jaeger and Zipkin are reached over OTLP"
            )),
        }
    }
    if names.iter().all(|n| n == "none") {
        Exporter::None
    } else if otlp {
        Exporter::Otlp
    } else if file {
        Exporter::File
    } else {
        Exporter::Unset
    }
}

/// Where a signal goes when nothing sets an endpoint: `http://localhost:4317` over
/// gRPC, `http://localhost:4318/v1/<signal>` over HTTP.
pub fn default_endpoint(signal: Signal, protocol: Protocol) -> Endpoint {
    let url = if protocol.is_http() {
        format!("http://localhost:4318{}", signal.http_path())
    } else {
        "http://localhost:4317".to_string()
    };
    Endpoint {
        written: url.clone(),
        url,
        source: "the default endpoint".to_string(),
    }
}

/// A positive number of milliseconds from `name`; a malformed one is a warning and
/// `None` (the caller then tries its next source).
pub fn millis(env: Env, name: &str, warnings: &mut Vec<String>) -> Option<Duration> {
    let v = var(env, name)?;
    match v.parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => {
            warnings.push(format!(
                "{name}={v:?} is not a positive number of milliseconds; ignored"
            ));
            None
        }
    }
}

/// `k=v,k2=v2` (W3C baggage's shape) with percent-decoded values. An entry without
/// `=`, with an empty key, or with a malformed escape is left out with a warning.
pub fn pairs(name: &str, value: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.split_once('=').and_then(|(k, v)| {
            let k = k.trim();
            let v = decode(v.trim())?;
            (!k.is_empty()).then(|| (k.to_string(), v))
        });
        match parsed {
            Some(kv) => out.push(kv),
            None => warnings.push(format!(
                "{name}: ignoring malformed entry (expected key=value, value percent-encoded)"
            )),
        }
    }
    out
}

/// Percent-decoding that refuses what `percent-encoding` would pass through: a `%`
/// not followed by two hex digits, or bytes that are not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let malformed = b.iter().enumerate().any(|(i, c)| {
        *c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|v| v.into_owned())
}

/// An OTLP endpoint as written, with `http://` put in front when it has no scheme:
/// `localhost:4317` is a common way to write a local collector, which the Go and
/// Python SDKs accept for gRPC. Said in a warning, so the user can write the scheme
/// (`https://` for TLS); never a reason to stop a run.
pub fn with_scheme(source: &str, raw: &str, warnings: &mut Vec<String>) -> String {
    let raw = raw.trim();
    if raw.contains("://") || raw.is_empty() {
        return raw.to_string();
    }
    let fixed = format!("http://{raw}");
    warnings.push(format!(
        "{source}: {raw:?} has no scheme; using {fixed:?} (write https:// for TLS)"
    ));
    fixed
}

/// A base endpoint with the signal path appended (a trailing `/` is not doubled).
fn with_path(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// An endpoint for display: user information (`user:pass@`) is masked.
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    /// An environment made of these pairs only.
    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    /// `pairs` with `{S}` replaced by the signal's name.
    fn for_signal(s: Signal, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.replace("{S}", s.upper()), v.replace("{p}", s.http_path())))
            .collect()
    }

    fn resolve(s: Signal, pairs: &[(&str, &str)], over: &Overrides) -> OtlpSignalConfig {
        let owned = for_signal(s, pairs);
        let borrowed: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        signal(s, &env_of(&borrowed), over)
    }

    #[test]
    fn otel_sdk_disabled_is_true_only_for_true_for_every_signal() {
        let table: [(Option<&str>, bool, bool); 12] = [
            // value, disabled, warned
            (None, false, false),
            (Some(""), false, false),
            (Some("true"), true, false),
            (Some("TRUE"), true, false),
            (Some("True"), true, false),
            (Some(" true "), true, false),
            (Some("false"), false, false),
            (Some("FALSE"), false, false),
            (Some("1"), false, true),
            (Some("yes"), false, true),
            (Some("on"), false, true),
            (Some("truthy"), false, true),
        ];
        for (value, disabled, warned) in table {
            let pairs: Vec<(&str, &str)> = value
                .map(|v| vec![("OTEL_SDK_DISABLED", v)])
                .unwrap_or_default();
            let env = env_of(&pairs);
            assert_eq!(sdk_disabled(&env), disabled, "{value:?}");
            let c = common(&env);
            assert_eq!(c.sdk_disabled, disabled, "{value:?}");
            assert_eq!(c.warnings.len(), usize::from(warned), "{value:?}: {c:?}");
            if warned {
                assert!(c.warnings[0].starts_with("OTEL_SDK_DISABLED="), "{c:?}");
            }
        }
        // Every consumer reads the same switch; a signal's own settings never re-enable
        // it (the sink factory and the trace plan check `sdk_disabled` first).
        for s in SIGNALS {
            let env = env_of(&[
                ("OTEL_SDK_DISABLED", "1"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ]);
            assert!(!sdk_disabled(&env), "{s:?}");
            assert!(signal(s, &env, &Overrides::default()).endpoint.is_some());
        }
    }

    #[test]
    fn endpoints_follow_the_spec_for_every_signal_and_protocol() {
        // (environment, protocol override, expected URL or None, expected source)
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<Protocol>,
            Option<&'static str>,
            &'static str,
        );
        let table: &[Case] = &[
            // Nothing set: no endpoint (the consumer decides on the default).
            (&[], None, None, ""),
            // The generic one is a base: HTTP appends the signal path.
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
                None,
                Some("http://c:4318{p}"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            // ... without doubling a trailing slash, keeping a base path.
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/base/")],
                None,
                Some("http://c:4318/base{p}"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            // ... also over HTTP/JSON.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ],
                None,
                Some("http://c:4318{p}"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            // gRPC uses it verbatim.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                None,
                Some("http://c:4317"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            // The signal's own endpoint is verbatim, and wins over the generic one.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_ENDPOINT", "http://s:1/custom"),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ],
                None,
                Some("http://s:1/custom"),
                "OTEL_EXPORTER_OTLP_{S}_ENDPOINT",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_{S}_ENDPOINT", "http://s:1")],
                None,
                Some("http://s:1"),
                "OTEL_EXPORTER_OTLP_{S}_ENDPOINT",
            ),
            // An empty value is unset.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_ENDPOINT", "  "),
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ],
                None,
                Some("http://c:4318{p}"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            // The protocol that decides the path is the final one (own setting first).
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ],
                Some(Protocol::Grpc),
                Some("http://c:4317"),
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
        ];
        for s in SIGNALS {
            for (pairs, protocol, url, source) in table {
                let over = Overrides {
                    protocol: *protocol,
                    ..Overrides::default()
                };
                let c = resolve(s, pairs, &over);
                let expected = url.map(|u| {
                    (
                        u.replace("{p}", s.http_path()),
                        source.replace("{S}", s.upper()),
                    )
                });
                let got = c.endpoint.map(|e| (e.url, e.source));
                assert_eq!(got, expected, "{s:?} {pairs:?}");
                assert!(c.warnings.is_empty(), "{s:?} {pairs:?}: {:?}", c.warnings);
            }
        }
    }

    #[test]
    fn own_endpoint_wins_and_may_be_a_base_or_a_full_url() {
        for s in SIGNALS {
            let env = [
                ("OTEL_EXPORTER_OTLP_{S}_ENDPOINT", "http://env:1/x"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:2"),
            ];
            let full = format!("http://own:3{}", s.http_path());
            for (written, expected, protocol) in [
                ("http://own:3", full.clone(), None),
                ("http://own:3/", full.clone(), None),
                (full.as_str(), full.clone(), None),
                (full.as_str(), full.clone(), Some(Protocol::HttpJson)),
                ("http://own:3", "http://own:3".into(), Some(Protocol::Grpc)),
            ] {
                let over = Overrides {
                    endpoint: Some(("settings endpoint", written)),
                    protocol,
                    ..Overrides::default()
                };
                let c = resolve(s, &env, &over);
                let e = c.endpoint.unwrap();
                assert_eq!(
                    (e.url, e.source, e.written),
                    (expected, "settings endpoint".into(), written.to_string()),
                    "{s:?} {written}"
                );
            }
        }
    }

    #[test]
    fn defaults_per_protocol() {
        for s in SIGNALS {
            let c = resolve(s, &[], &Overrides::default());
            assert_eq!(c.protocol, Protocol::HttpProtobuf);
            assert_eq!(c.exporter, Exporter::Unset);
            assert_eq!(c.timeout, None);
            assert!(c.headers.is_empty());
            assert_eq!(
                c.endpoint_or_default().url,
                format!("http://localhost:4318{}", s.http_path())
            );
            assert_eq!(
                default_endpoint(s, Protocol::Grpc).url,
                "http://localhost:4317"
            );
            assert_eq!(
                default_endpoint(s, Protocol::HttpJson).source,
                "the default endpoint"
            );
        }
    }

    #[test]
    fn a_missing_scheme_is_http_with_a_warning() {
        for s in SIGNALS {
            for (pairs, url) in [
                (
                    &[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")][..],
                    format!("http://c:4318{}", s.http_path()),
                ),
                (
                    &[("OTEL_EXPORTER_OTLP_{S}_ENDPOINT", "c:9")][..],
                    "http://c:9".to_string(),
                ),
            ] {
                let c = resolve(s, pairs, &Overrides::default());
                assert_eq!(c.endpoint.unwrap().url, url);
                assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
                assert!(c.warnings[0].contains("has no scheme"), "{:?}", c.warnings);
                assert!(c.warnings[0].starts_with("OTEL_EXPORTER_OTLP_"));
            }
        }
    }

    #[test]
    fn unusable_endpoints_are_errors_naming_their_source() {
        for (url, ok) in [
            ("http://c:4318/v1/traces", true),
            ("https://c", true),
            ("ftp://c:4318", false),
            ("http://", false),
            ("http://:80/v1/traces", false),
            ("http:///v1/traces", false),
            ("http://[::1", false),
            ("not a url://", false),
        ] {
            let e = Endpoint {
                url: url.into(),
                source: "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                written: url.into(),
            };
            match e.check() {
                Ok(()) => assert!(ok, "{url} accepted"),
                Err(m) => {
                    assert!(!ok, "{url}: {m}");
                    assert!(m.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: url '"), "{m}");
                }
            }
        }
        let e = Endpoint {
            url: "ftp://user:pa55@c".into(),
            source: "endpoint".into(),
            written: "ftp://user:pa55@c".into(),
        };
        assert!(!e.check().unwrap_err().contains("pa55"));
        // A base without a host is refused, even once the signal path makes it
        // parse (`http:/v1/logs` has the host `v1`).
        for s in SIGNALS {
            for (var, value) in [
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http:///"),
                ("OTEL_EXPORTER_OTLP_{S}_ENDPOINT", "http://"),
            ] {
                let c = resolve(s, &[(var, value)], &Overrides::default());
                let e = c.endpoint.unwrap();
                assert!(e.check().is_err(), "{s:?} {var}={value}: {}", e.url);
            }
        }
        // The message shows what was written, not the path appended to it.
        let c = signal(
            Signal::Logs,
            &env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://nope")]),
            &Overrides::default(),
        );
        let m = c.endpoint.unwrap().check().unwrap_err();
        assert!(
            m.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: url 'ftp://nope' is not"),
            "{m}"
        );
    }

    #[test]
    fn protocol_precedence_and_malformed_values() {
        // (environment, own setting, expected, warnings)
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<Protocol>,
            Protocol,
            usize,
        );
        let table: &[Case] = &[
            (&[], None, Protocol::HttpProtobuf, 0),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                None,
                Protocol::Grpc,
                0,
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", " HTTP/JSON ")],
                None,
                Protocol::HttpJson,
                0,
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                None,
                Protocol::HttpJson,
                0,
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_PROTOCOL", "http/json"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                Some(Protocol::HttpProtobuf),
                Protocol::HttpProtobuf,
                0,
            ),
            // Malformed: a warning, then the next source.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_PROTOCOL", "thrift"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                None,
                Protocol::Grpc,
                1,
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")],
                None,
                Protocol::HttpProtobuf,
                1,
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_PROTOCOL", "http"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/proto"),
                ],
                None,
                Protocol::HttpProtobuf,
                2,
            ),
        ];
        for s in SIGNALS {
            for (pairs, own, expected, warned) in table {
                let over = Overrides {
                    protocol: *own,
                    ..Overrides::default()
                };
                let c = resolve(s, pairs, &over);
                assert_eq!(c.protocol, *expected, "{s:?} {pairs:?}");
                assert_eq!(
                    c.warnings.len(),
                    *warned,
                    "{s:?} {pairs:?}: {:?}",
                    c.warnings
                );
                for w in &c.warnings {
                    assert!(w.starts_with("OTEL_EXPORTER_OTLP_"), "{w}");
                    assert!(w.contains("not a known protocol"), "{w}");
                }
            }
        }
        assert_eq!(Protocol::parse("grpc").map(Protocol::as_str), Some("grpc"));
        assert_eq!(Protocol::HttpJson.label(), "OTLP/HTTP JSON");
    }

    #[test]
    fn headers_precedence_decoding_and_malformed_entries() {
        // (environment, own headers, expected, warnings)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
            usize,
        );
        let table: &[Case] = &[
            (
                &[("OTEL_EXPORTER_OTLP_HEADERS", "a=1, b = 2 ,c=")],
                &[],
                &[("a", "1"), ("b", "2"), ("c", "")],
                0,
            ),
            // Values are percent-decoded (keys are not).
            (
                &[(
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20abc,x=%E2%9C%93%2C%3D",
                )],
                &[],
                &[("authorization", "Bearer abc"), ("x", "✓,=")],
                0,
            ),
            // The signal's variable replaces the generic one entirely.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_HEADERS", "x=2"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k,x=1"),
                ],
                &[],
                &[("x", "2")],
                0,
            ),
            // Own headers replace entries of the same name, whatever the case.
            (
                &[("OTEL_EXPORTER_OTLP_HEADERS", "X-Team=env,a=1")],
                &[("x-team", "own")],
                &[("a", "1"), ("x-team", "own")],
                0,
            ),
            // Malformed entries: no '=', an empty key, a bad escape, not UTF-8.
            (
                &[(
                    "OTEL_EXPORTER_OTLP_{S}_HEADERS",
                    "ok=1,broken,=v,bad=%zz,cut=%4,latin=%E9",
                )],
                &[],
                &[("ok", "1")],
                5,
            ),
            // Empty is unset: the generic variable applies.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_HEADERS", ""),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "g=1"),
                ],
                &[],
                &[("g", "1")],
                0,
            ),
        ];
        for s in SIGNALS {
            for (pairs, own, expected, warned) in table {
                let own: Vec<(String, String)> = own
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let over = Overrides {
                    headers: &own,
                    ..Overrides::default()
                };
                let c = resolve(s, pairs, &over);
                let got: Vec<(&str, &str)> = c
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(got, *expected, "{s:?} {pairs:?}");
                assert_eq!(c.warnings.len(), *warned, "{s:?}: {:?}", c.warnings);
                let var = format!("OTEL_EXPORTER_OTLP_{}_HEADERS", s.upper());
                for w in &c.warnings {
                    assert!(w.starts_with(&format!("{var}: ignoring malformed")), "{w}");
                }
            }
        }
    }

    #[test]
    fn timeout_precedence_and_malformed_values() {
        // (environment, own, expected, warnings)
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<u64>,
            Option<u64>,
            usize,
        );
        let table: &[Case] = &[
            (&[], None, None, 0),
            (&[("OTEL_EXPORTER_OTLP_TIMEOUT", "250")], None, Some(250), 0),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_TIMEOUT", "100"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "250"),
                ],
                None,
                Some(100),
                0,
            ),
            (
                &[("OTEL_EXPORTER_OTLP_{S}_TIMEOUT", "100")],
                Some(7),
                Some(7),
                0,
            ),
            // Malformed: a warning, then the next source.
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_TIMEOUT", "1.5s"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "250"),
                ],
                None,
                Some(250),
                1,
            ),
            (&[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")], None, None, 1),
            (&[("OTEL_EXPORTER_OTLP_TIMEOUT", "-5")], None, None, 1),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_{S}_TIMEOUT", "soon"),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "later"),
                ],
                None,
                None,
                2,
            ),
        ];
        for s in SIGNALS {
            for (pairs, own, expected, warned) in table {
                let over = Overrides {
                    timeout: own.map(Duration::from_millis),
                    ..Overrides::default()
                };
                let c = resolve(s, pairs, &over);
                assert_eq!(
                    c.timeout,
                    expected.map(Duration::from_millis),
                    "{s:?} {pairs:?}"
                );
                assert_eq!(c.warnings.len(), *warned, "{s:?}: {:?}", c.warnings);
                for w in &c.warnings {
                    assert!(w.starts_with("OTEL_EXPORTER_OTLP_"), "{w}");
                    assert!(w.contains("milliseconds"), "{w}");
                }
            }
        }
    }

    #[test]
    fn exporter_per_signal_and_from_settings() {
        // (environment value, own value, expected, warnings)
        let table: [(Option<&str>, Option<&str>, Exporter, usize); 11] = [
            (None, None, Exporter::Unset, 0),
            (Some("otlp"), None, Exporter::Otlp, 0),
            (Some("OTLP"), None, Exporter::Otlp, 0),
            (Some("none"), None, Exporter::None, 0),
            (Some("none, none"), None, Exporter::None, 0),
            (Some("otlp,none"), None, Exporter::Otlp, 0),
            (Some("jaeger"), None, Exporter::Unset, 1),
            (Some("zipkin,otlp"), None, Exporter::Otlp, 1),
            // Only faultline's own setting may ask for the file.
            (Some("file"), None, Exporter::Unset, 1),
            (Some("none"), Some("file"), Exporter::File, 0),
            (Some("otlp"), Some("none"), Exporter::None, 0),
        ];
        for s in SIGNALS {
            let name = format!("OTEL_{}_EXPORTER", s.upper());
            for (value, own, expected, warned) in table {
                let pairs: Vec<(&str, &str)> =
                    value.map(|v| vec![(name.as_str(), v)]).unwrap_or_default();
                let over = Overrides {
                    exporter: own.map(|o| ("settings exporter", o)),
                    ..Overrides::default()
                };
                let c = signal(s, &env_of(&pairs), &over);
                assert_eq!(c.exporter, expected, "{s:?} {value:?} {own:?}");
                assert_eq!(c.warnings.len(), warned, "{s:?}: {:?}", c.warnings);
                for w in &c.warnings {
                    assert!(w.starts_with(&format!("{name}: exporter")), "{w}");
                }
            }
            // Another signal's variable says nothing about this one.
            let other = if s == Signal::Logs { "TRACES" } else { "LOGS" };
            let name = format!("OTEL_{other}_EXPORTER");
            let env = env_of(&[(name.as_str(), "none")]);
            assert_eq!(
                signal(s, &env, &Overrides::default()).exporter,
                Exporter::Unset
            );
        }
    }

    #[test]
    fn signals_do_not_read_each_others_variables() {
        for s in SIGNALS {
            for other in SIGNALS.into_iter().filter(|o| *o != s) {
                let o = other.upper();
                let owned = [
                    (format!("OTEL_EXPORTER_OTLP_{o}_ENDPOINT"), "http://o:1"),
                    (format!("OTEL_EXPORTER_OTLP_{o}_PROTOCOL"), "grpc"),
                    (format!("OTEL_EXPORTER_OTLP_{o}_HEADERS"), "o=1"),
                    (format!("OTEL_EXPORTER_OTLP_{o}_TIMEOUT"), "9"),
                ];
                let pairs: Vec<(&str, &str)> =
                    owned.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                let c = signal(s, &env_of(&pairs), &Overrides::default());
                assert_eq!(c.endpoint, None, "{s:?} read {o}");
                assert_eq!(c.protocol, Protocol::HttpProtobuf);
                assert!(c.headers.is_empty());
                assert_eq!(c.timeout, None);
            }
        }
    }

    #[test]
    fn resource_service_name_and_attributes() {
        // (environment, service name, attributes, warnings)
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<&'static str>,
            &'static [(&'static str, &'static str)],
            usize,
        );
        let table: &[Case] = &[
            (&[], None, &[], 0),
            (&[("OTEL_SERVICE_NAME", "svc")], Some("svc"), &[], 0),
            (
                &[(
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=ci,service.name=from-attrs,team=sre%2Fchaos",
                )],
                Some("from-attrs"),
                &[("deployment.environment", "ci"), ("team", "sre/chaos")],
                0,
            ),
            // OTEL_SERVICE_NAME wins over service.name in the attributes.
            (
                &[
                    ("OTEL_SERVICE_NAME", "svc"),
                    ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x,a=1"),
                ],
                Some("svc"),
                &[("a", "1")],
                0,
            ),
            // Empty is unset.
            (
                &[
                    ("OTEL_SERVICE_NAME", " "),
                    ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x"),
                ],
                Some("x"),
                &[],
                0,
            ),
            // A key written twice keeps its last value, in its first place.
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "a=1,b=2,a=3")],
                None,
                &[("a", "3"), ("b", "2")],
                0,
            ),
            // Malformed entries are left out, each with a warning.
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "a=1,nokey,=x,bad=%G1")],
                None,
                &[("a", "1")],
                3,
            ),
        ];
        for (pairs, service, attrs, warned) in table {
            let c = common(&env_of(pairs));
            assert_eq!(c.resource.service_name.as_deref(), *service, "{pairs:?}");
            let got: Vec<(&str, &str)> = c
                .resource
                .attributes
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, *attrs, "{pairs:?}");
            assert_eq!(c.warnings.len(), *warned, "{pairs:?}: {:?}", c.warnings);
            for w in &c.warnings {
                assert!(w.starts_with("OTEL_RESOURCE_ATTRIBUTES: "), "{w}");
            }
        }
    }

    #[test]
    fn urls_are_masked_for_display() {
        assert_eq!(
            display_url("https://u:p@h:1/v1/traces"),
            "https://***@h:1/v1/traces"
        );
        assert_eq!(
            display_url("http://h:4318/v1/traces"),
            "http://h:4318/v1/traces"
        );
    }
}
