//! Where spans go and how they are sampled, decided once from the settings file and
//! the standard `OTEL_*` variables, without touching the exporter crates.
//!
//! The exporter variables (endpoint, protocol, headers, timeout, `OTEL_SDK_DISABLED`,
//! the resource) are resolved by [`super::otel_env`], as for logs and metrics; this
//! file adds what only traces have (sampler, batch processor, the trace file) and lets
//! the settings file win. Pure: the environment is read through a function so tests
//! pass a map, and every value the spec says to ignore when invalid becomes a warning
//! instead of an error.

use super::otel_env::{self, Exporter, Overrides, Signal};
use super::TelemetryConfig;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::Sampler;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The export timeout when neither the settings file nor `OTEL_EXPORTER_OTLP_*TIMEOUT`
/// sets one: short, so a collector that never answers costs at most this per batch
/// (the SDK's 10 s default would hold the exit far beyond the shutdown limit).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_millis(1000);

/// How spans leave the process (the one protocol type, from [`super::otel_env`]).
pub use super::otel_env::Protocol;

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

/// The first variable that is set and not empty (the spec treats empty as unset).
fn first(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&'static str],
) -> Option<(&'static str, String)> {
    names
        .iter()
        .find_map(|n| otel_env::var(env, n).map(|v| (*n, v)))
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

/// Resolve the configuration. Settings-file fields win over the environment; an
/// error means the destination cannot be used at all (a malformed endpoint).
/// Spans waiting for export at most (the SDK's 2048, not the 8192 some SDKs use: the
/// queue is allocated up front, and a run makes a few hundred spans between exports).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

pub fn plan(cfg: &TelemetryConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Plan, String> {
    let mut warnings = Vec::new();

    // Resource: the settings' service name, then what the environment says.
    let common = otel_env::common(env);
    warnings.extend(common.warnings);
    let service = cfg
        .service_name
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or(common.resource.service_name)
        .unwrap_or_else(|| "faultline".to_string());
    let attrs = common.resource.attributes;
    let mut resource = vec![KeyValue::new("service.name", service)];
    if !attrs.iter().any(|(k, _)| k == "service.version") {
        resource.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    resource.extend(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)));
    resource.push(KeyValue::new("chaos.run.id", cfg.run_id.clone()));

    let sampler = parse_sampler(env, &mut warnings);

    let scheduled_delay = otel_env::millis(env, "OTEL_BSP_SCHEDULE_DELAY", &mut warnings)
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

    // The kill switch wins over everything, the settings file included.
    if common.sdk_disabled {
        return Ok(done(Sink::Disabled, sampler, warnings));
    }
    // A protocol misspelt in the settings file is an error there; in the environment
    // it is a warning (the resolver's).
    let protocol = match cfg
        .protocol
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(p) => Some(Protocol::parse(p).ok_or_else(|| {
            format!("settings: unknown OTLP protocol {p:?} (grpc, http/protobuf, http/json)")
        })?),
        None => None,
    };
    let traces = otel_env::signal(
        Signal::Traces,
        env,
        &Overrides {
            endpoint: cfg
                .endpoint
                .as_deref()
                .map(|e| ("settings tracing.endpoint", e)),
            protocol,
            headers: &cfg.headers,
            timeout: cfg.export_timeout,
            exporter: cfg.exporter.as_deref().map(|e| ("settings exporter", e)),
        },
    );
    warnings.extend(traces.warnings.iter().cloned());
    let file = || Sink::File(trace_file_for(&cfg.journal_path, &cfg.run_id));
    let endpoint = match (traces.exporter, &traces.endpoint) {
        (Exporter::None, _) => return Ok(done(Sink::Disabled, sampler, warnings)),
        (Exporter::File, _) | (Exporter::Unset, None) => {
            return Ok(done(file(), sampler, warnings))
        }
        (Exporter::Otlp | Exporter::Unset, _) => traces.endpoint_or_default(),
    };
    endpoint.check()?;
    Ok(done(
        Sink::Otlp {
            protocol: traces.protocol,
            endpoint: endpoint.url,
            headers: traces.headers,
            timeout: traces.timeout.unwrap_or(DEFAULT_EXPORT_TIMEOUT),
        },
        sampler,
        warnings,
    ))
}

pub use super::otel_env::display_url;

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
