//! Where spans go and how they are sampled, resolved once from the standard `OTEL_*`
//! variables and the settings file, without touching the exporter crates.
//!
//! Pure: the environment is read through a function so tests pass a map, and every
//! value the spec says to ignore when invalid becomes a warning instead of an error.

use super::TelemetryConfig;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Sampler;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The export timeout when neither the settings file nor `OTEL_EXPORTER_OTLP_*TIMEOUT`
/// sets one: short, so a collector that never answers costs at most this per batch
/// (the SDK's 10 s default would hold the exit far beyond the shutdown limit).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How spans leave the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (tonic).
    Grpc,
    /// OTLP over HTTP, protobuf body.
    HttpProtobuf,
    /// OTLP over HTTP, JSON body.
    HttpJson,
}

impl Protocol {
    fn parse(s: &str) -> Option<Protocol> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => Some(Protocol::HttpJson),
            _ => None,
        }
    }

    /// The label used in [`super::Telemetry::destination`].
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Grpc => "OTLP/gRPC",
            Protocol::HttpProtobuf => "OTLP/HTTP protobuf",
            Protocol::HttpJson => "OTLP/HTTP JSON",
        }
    }
}

/// The resolved destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Sink {
    /// No spans are recorded (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
    Disabled,
    /// The embedded default: OTLP JSON in a file next to the journal.
    File(PathBuf),
    /// An OTLP receiver.
    Otlp {
        /// Transport and encoding.
        protocol: Protocol,
        /// Full URL: for HTTP it includes `/v1/traces`.
        endpoint: String,
        /// Extra request headers or gRPC metadata, already percent-decoded.
        headers: Vec<(String, String)>,
        /// Budget for one batch, retries included.
        timeout: Duration,
    },
}

/// Everything `Telemetry::init` needs, decided.
#[derive(Debug)]
pub struct Plan {
    pub sink: Sink,
    pub sampler: Sampler,
    pub resource: Vec<KeyValue>,
    pub scheduled_delay: Duration,
    pub max_queue_size: usize,
    /// Values that were ignored, each with a hint (the CLI prints them).
    pub warnings: Vec<String>,
}

/// `dir/journal.json` -> `dir/journal.trace.json` (any extension is replaced), when
/// the journal path is a regular directory entry (a regular file, or nothing yet).
/// Beside anything else (a symlink, `/dev/stdout`, a FIFO, a device) no file is put:
/// the trace goes to the temporary directory, `faultline-<run id>.trace.json`, and the
/// console's "Spans go to" line says so.
pub fn trace_file_for(journal: &Path, run_id: &str) -> PathBuf {
    let regular = match std::fs::symlink_metadata(journal) {
        Ok(m) => m.file_type().is_file(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    };
    if !regular {
        return std::env::temp_dir().join(format!("faultline-{run_id}.trace.json"));
    }
    let stem = journal
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "journal".into());
    journal.with_file_name(format!("{stem}.trace.json"))
}

/// Percent-decoding as the OTLP header and resource-attribute variables require;
/// `None` when an escape is malformed or the bytes are not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `k=v,k2=v2` with percent-decoded values; malformed entries are reported by name.
fn parse_pairs(var: &str, value: &str, warnings: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = item.split_once('=').and_then(|(k, v)| {
            let k = k.trim();
            let v = percent_decode(v.trim())?;
            (!k.is_empty()).then(|| (k.to_string(), v))
        });
        match parsed {
            Some(kv) => out.push(kv),
            None => warnings.push(format!(
                "{var}: ignoring malformed entry (expected key=value, value percent-encoded)"
            )),
        }
    }
    out
}

/// The first variable that is set and not empty (the spec treats empty as unset).
fn first(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Option<(&'static str, String)> {
    names.iter().find_map(|n| {
        env(n)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(|v| (*n, v))
    })
}

/// An OTLP endpoint as written (settings or `OTEL_*`), with `http://` put in front
/// when it has no scheme: `localhost:4317` is a common way to write a local collector,
/// which the Go and Python SDKs accept for gRPC. Said in a warning, so the user can
/// write the scheme (`https://` for TLS); never a reason to stop a run.
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

fn valid_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/'))
}

/// Append the signal path to a base endpoint, as the spec does for
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn with_traces_path(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

fn parse_sampler(env: &dyn Fn(&str) -> Option<String>, warnings: &mut Vec<String>) -> Sampler {
    let name = first(env, &["OTEL_TRACES_SAMPLER"]).map(|(_, v)| v.to_ascii_lowercase());
    let mut ratio = || -> f64 {
        match first(env, &["OTEL_TRACES_SAMPLER_ARG"]) {
            None => 1.0,
            Some((_, v)) => match v.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    warnings.push(format!(
                        "OTEL_TRACES_SAMPLER_ARG={v:?} is not a ratio between 0 and 1; using 1.0"
                    ));
                    1.0
                }
            },
        }
    };
    let parent = |s: Sampler| Sampler::ParentBased(Box::new(s));
    match name.as_deref() {
        None | Some("parentbased_always_on") => parent(Sampler::AlwaysOn),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatioBased(ratio()),
        Some("parentbased_always_off") => parent(Sampler::AlwaysOff),
        Some("parentbased_traceidratio") => parent(Sampler::TraceIdRatioBased(ratio())),
        Some(other) => {
            warnings.push(format!(
                "OTEL_TRACES_SAMPLER={other:?} is not supported (always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio); using parentbased_always_on"
            ));
            parent(Sampler::AlwaysOn)
        }
    }
}

fn parse_ms(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
    warnings: &mut Vec<String>,
) -> Option<Duration> {
    for n in names {
        if let Some((var, v)) = first(env, &[n]) {
            match v.parse::<u64>() {
                Ok(ms) if ms > 0 => return Some(Duration::from_millis(ms)),
                _ => warnings.push(format!(
                    "{var}={v:?} is not a positive number of milliseconds; ignored"
                )),
            }
        }
    }
    None
}

/// Resolve the configuration. Settings-file fields win over the environment; an
/// error means the destination cannot be used at all (a malformed endpoint).
/// Spans waiting for export at most (the SDK's 2048, not the 8192 some SDKs use: the
/// queue is allocated up front, and a run makes a few hundred spans between exports).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

pub fn plan(cfg: &TelemetryConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, String> {
    let mut warnings = Vec::new();

    // Resource: OTEL_RESOURCE_ATTRIBUTES, then the service name on top.
    let mut attrs: Vec<(String, String)> = match first(env, &["OTEL_RESOURCE_ATTRIBUTES"]) {
        Some((var, v)) => parse_pairs(var, &v, &mut warnings),
        None => Vec::new(),
    };
    let service = cfg
        .service_name
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| first(env, &["OTEL_SERVICE_NAME"]).map(|(_, v)| v))
        .or_else(|| {
            attrs
                .iter()
                .rev()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "faultline".to_string());
    attrs.retain(|(k, _)| k != "service.name");
    let mut resource = vec![KeyValue::new("service.name", service)];
    if !attrs.iter().any(|(k, _)| k == "service.version") {
        resource.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    resource.extend(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)));
    resource.push(KeyValue::new("chaos.run.id", cfg.run_id.clone()));

    let sampler = parse_sampler(env, &mut warnings);

    let scheduled_delay = parse_ms(env, &["OTEL_BSP_SCHEDULE_DELAY"], &mut warnings)
        .unwrap_or(Duration::from_millis(1000));
    let max_queue_size = match first(env, &["OTEL_BSP_MAX_QUEUE_SIZE"]) {
        Some((_, v)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| {
                warnings.push(format!(
                    "OTEL_BSP_MAX_QUEUE_SIZE={v:?} is not a positive integer; using {DEFAULT_MAX_QUEUE_SIZE}"
                ));
                DEFAULT_MAX_QUEUE_SIZE
            }),
        None => DEFAULT_MAX_QUEUE_SIZE,
    };

    let done = |sink: Sink, sampler: Sampler, warnings: Vec<String>| Plan {
        sink,
        sampler,
        resource: resource.clone(),
        scheduled_delay,
        max_queue_size,
        warnings,
    };

    // Disabled?
    let sdk_disabled = first(env, &["OTEL_SDK_DISABLED"])
        .map(|(_, v)| v.eq_ignore_ascii_case("true"))
        .unwrap_or(false);
    // The kill switch wins over everything, the settings file included.
    if sdk_disabled {
        return Ok(done(Sink::Disabled, sampler, warnings));
    }
    let exporter = match cfg
        .exporter
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(e) => Some(("settings exporter", e.to_ascii_lowercase())),
        None => first(env, &["OTEL_TRACES_EXPORTER"]).map(|(n, v)| (n, v.to_ascii_lowercase())),
    };
    let mut explicit_otlp = false;
    let mut forced_file = false;
    if let Some((var, value)) = &exporter {
        let names: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.iter().all(|n| *n == "none") {
            return Ok(done(Sink::Disabled, sampler, warnings));
        }
        for n in &names {
            match *n {
                "otlp" => explicit_otlp = true,
                "file" if *var == "settings exporter" => forced_file = true,
                "none" => {}
                other => warnings.push(format!(
                    "{var}: exporter {other:?} is not supported (otlp, none); Jaeger and Zipkin are reached over OTLP"
                )),
            }
        }
    }
    if forced_file && !explicit_otlp {
        return Ok(done(
            Sink::File(trace_file_for(&cfg.journal_path, &cfg.run_id)),
            sampler,
            warnings,
        ));
    }

    // Protocol.
    let protocol = match cfg
        .protocol
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(p) => Protocol::parse(p).ok_or_else(|| {
            format!("settings: unknown OTLP protocol {p:?} (grpc, http/protobuf, http/json)")
        })?,
        None => {
            let mut chosen = None;
            for var in [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ] {
                if let Some((var, v)) = first(env, &[var]) {
                    match Protocol::parse(&v) {
                        Some(p) => {
                            chosen = Some(p);
                            break;
                        }
                        None => warnings.push(format!(
                            "{var}={v:?} is not a known protocol (grpc, http/protobuf, http/json); ignored"
                        )),
                    }
                }
            }
            chosen.unwrap_or(Protocol::HttpProtobuf)
        }
    };

    // Endpoint.
    let grpc = protocol == Protocol::Grpc;
    let configured: Option<(&str, String)> = if let Some(e) = cfg
        .endpoint
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let e = &with_scheme("settings tracing.endpoint", e, &mut warnings);
        // The settings file takes a base or a full URL: be forgiving.
        let url = if grpc || e.trim_end_matches('/').ends_with("/v1/traces") {
            e.to_string()
        } else {
            with_traces_path(e)
        };
        Some(("settings endpoint", url))
    } else if let Some((var, e)) = first(env, &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]) {
        Some((var, with_scheme(var, &e, &mut warnings)))
    } else if let Some((var, e)) = first(env, &["OTEL_EXPORTER_OTLP_ENDPOINT"]) {
        let e = with_scheme(var, &e, &mut warnings);
        Some((var, if grpc { e } else { with_traces_path(&e) }))
    } else {
        None
    };
    let (source, endpoint) = match configured {
        Some(c) => c,
        None if explicit_otlp => (
            "default endpoint",
            if grpc {
                "http://localhost:4317".to_string()
            } else {
                "http://localhost:4318/v1/traces".to_string()
            },
        ),
        None => {
            return Ok(done(
                Sink::File(trace_file_for(&cfg.journal_path, &cfg.run_id)),
                sampler,
                warnings,
            ));
        }
    };
    if !valid_url(&endpoint) {
        return Err(format!(
            "{source}: {endpoint:?} is not an http:// or https:// URL (e.g. http://localhost:4318)"
        ));
    }

    // Headers: the signal variable replaces the generic one; settings entries win per key.
    let mut headers = match first(
        env,
        &[
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ],
    ) {
        Some((var, v)) => parse_pairs(var, &v, &mut warnings),
        None => Vec::new(),
    };
    for (k, v) in &cfg.headers {
        headers.retain(|(hk, _)| !hk.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }

    let timeout = cfg
        .export_timeout
        .or_else(|| {
            parse_ms(
                env,
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                    "OTEL_EXPORTER_OTLP_TIMEOUT",
                ],
                &mut warnings,
            )
        })
        .unwrap_or(DEFAULT_EXPORT_TIMEOUT);

    Ok(done(
        Sink::Otlp {
            protocol,
            endpoint,
            headers,
            timeout,
        },
        sampler,
        warnings,
    ))
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

    fn cfg() -> TelemetryConfig {
        TelemetryConfig::new("run-1", "out/journal.json")
    }

    fn plan_with(cfg: &TelemetryConfig, vars: &[(&str, &str)]) -> Result<Plan, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        plan(cfg, &|k| map.get(k).cloned())
    }

    #[test]
    fn no_endpoint_means_the_file_next_to_the_journal() {
        let p = plan_with(&cfg(), &[]).unwrap();
        assert_eq!(p.sink, Sink::File(PathBuf::from("out/journal.trace.json")));
        assert_eq!(
            trace_file_for(Path::new("j"), "r"),
            PathBuf::from("j.trace.json")
        );
    }

    #[test]
    fn disabled_and_none_record_nothing() {
        let p = plan_with(
            &cfg(),
            &[
                ("OTEL_SDK_DISABLED", "TRUE"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318"),
            ],
        )
        .unwrap();
        assert_eq!(p.sink, Sink::Disabled);
        let p = plan_with(&cfg(), &[("OTEL_TRACES_EXPORTER", "none")]).unwrap();
        assert_eq!(p.sink, Sink::Disabled);
        let p = plan_with(&cfg(), &[("OTEL_SDK_DISABLED", "false")]).unwrap();
        assert!(matches!(p.sink, Sink::File(_)));
    }

    #[test]
    fn endpoints_follow_the_spec_per_protocol() {
        let http = |vars: &[(&str, &str)]| match plan_with(&cfg(), vars).unwrap().sink {
            Sink::Otlp {
                endpoint, protocol, ..
            } => (protocol, endpoint),
            s => panic!("{s:?}"),
        };
        assert_eq!(
            http(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
            (Protocol::HttpProtobuf, "http://c:4318/v1/traces".into())
        );
        assert_eq!(
            http(&[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other")
            ]),
            (Protocol::HttpProtobuf, "http://c:4318/custom".into())
        );
        assert_eq!(
            http(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            ]),
            (Protocol::Grpc, "http://c:4317".into())
        );
        assert_eq!(
            http(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
            ]),
            (Protocol::HttpJson, "http://c:4318/v1/traces".into())
        );
        assert_eq!(
            http(&[("OTEL_TRACES_EXPORTER", "otlp")]),
            (
                Protocol::HttpProtobuf,
                "http://localhost:4318/v1/traces".into()
            )
        );
        let mut c = cfg();
        c.endpoint = Some("http://s:4318/v1/traces".into());
        c.protocol = Some("http/json".into());
        match plan_with(&c, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:1")])
            .unwrap()
            .sink
        {
            Sink::Otlp {
                endpoint, protocol, ..
            } => {
                assert_eq!(endpoint, "http://s:4318/v1/traces");
                assert_eq!(protocol, Protocol::HttpJson);
            }
            s => panic!("{s:?}"),
        }
        assert!(plan_with(
            &cfg(),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://localhost:4318")]
        )
        .is_err());
        // Without a scheme, as the Go and Python SDKs take it: http://, with a warning.
        let p = plan_with(&cfg(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]).unwrap();
        match p.sink {
            Sink::Otlp { endpoint, .. } => {
                assert_eq!(endpoint, "http://localhost:4318/v1/traces")
            }
            s => panic!("{s:?}"),
        }
        assert!(p.warnings[0].contains("has no scheme"), "{:?}", p.warnings);
    }

    #[test]
    fn headers_timeouts_and_bad_values() {
        let mut c = cfg();
        c.headers = vec![("X-Team".into(), "settings".into())];
        let p = plan_with(
            &c,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20abc,x-team=env,broken",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "250"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
                ("OTEL_TRACES_SAMPLER", "sometimes"),
            ],
        )
        .unwrap();
        match p.sink {
            Sink::Otlp {
                headers,
                timeout,
                protocol,
                ..
            } => {
                assert_eq!(
                    headers,
                    vec![
                        ("authorization".to_string(), "Bearer abc".to_string()),
                        ("X-Team".to_string(), "settings".to_string())
                    ]
                );
                assert_eq!(timeout, Duration::from_millis(250));
                assert_eq!(protocol, Protocol::HttpProtobuf);
            }
            s => panic!("{s:?}"),
        }
        assert_eq!(p.warnings.len(), 3, "{:?}", p.warnings);
    }

    #[test]
    fn resource_and_sampler() {
        let p = plan_with(
            &cfg(),
            &[
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=ci,service.name=fromattrs,team=sre%2Fchaos",
                ),
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ],
        )
        .unwrap();
        let get = |k: &str| {
            p.resource
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("fromattrs"));
        assert_eq!(get("team").as_deref(), Some("sre/chaos"));
        assert_eq!(get("chaos.run.id").as_deref(), Some("run-1"));
        assert!(matches!(p.sampler, Sampler::TraceIdRatioBased(r) if r == 0.25));
        let p = plan_with(
            &cfg(),
            &[
                ("OTEL_SERVICE_NAME", "svc"),
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=x"),
            ],
        )
        .unwrap();
        assert_eq!(p.resource[0].value.to_string(), "svc");
        assert!(matches!(
            plan_with(&cfg(), &[]).unwrap().sampler,
            Sampler::ParentBased(_)
        ));
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
