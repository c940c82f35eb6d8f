//! The one place that knows every sink kind: the `sinks:` settings as a tagged
//! [`SinkConfig`], dispatched to each folder's config (validation) and sink
//! (building), and started on the shared pipeline.
//!
//! The import rule of `src/sink/`: sink folders (`jsonl/`, `http/`, `humio/`, `otlp/`)
//! import shared code (`record`, `pipeline`, `options`, `transport`, `sinks`) and
//! never each other; shared code never imports a sink folder, except this file. A
//! test below reads the sources and holds the rule.

use super::http::{self, HttpConfig};
use super::humio::{self, HumioConfig};
use super::jsonl::{JsonlConfig, JsonlSink};
use super::otlp::{self, OtlpConfig};
use super::pipeline::Policy;
use super::sinks::Sinks;
use crate::telemetry::otel_env;
use serde::Deserialize;

/// One sink, as written in the settings file (strict: unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SinkConfig {
    /// Append JSON lines to a file.
    Jsonl(JsonlConfig),
    /// Batched POST of JSON to any URL (array, Loki, Splunk HEC).
    Http(HttpConfig),
    /// Humio / LogScale structured ingest.
    Humio(HumioConfig),
    /// OpenTelemetry logs over OTLP.
    Otlp(OtlpConfig),
}

impl SinkConfig {
    /// The `type`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Jsonl(_) => "jsonl",
            SinkConfig::Http(_) => "http",
            SinkConfig::Humio(_) => "humio",
            SinkConfig::Otlp(_) => "otlp",
        }
    }

    /// [`SinkConfig::validate`], and what building the sink would find wrong in the
    /// environment (an OTLP sink's endpoint, protocol and headers from `OTEL_*`).
    pub fn check_with_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        match self {
            SinkConfig::Otlp(c) => c.check_with_env(env),
            other => other.validate(),
        }
    }

    /// Every problem in this sink's settings, without touching the environment.
    pub fn validate(&self) -> Vec<String> {
        match self {
            SinkConfig::Jsonl(c) => c.validate(),
            SinkConfig::Http(c) => c.validate(),
            SinkConfig::Humio(c) => c.validate(),
            SinkConfig::Otlp(c) => c.validate(),
        }
    }

    fn policy(&self) -> Policy {
        match self {
            SinkConfig::Jsonl(c) => c.policy(),
            SinkConfig::Http(c) => c.policy(),
            SinkConfig::Humio(c) => c.policy(),
            SinkConfig::Otlp(c) => c.policy(),
        }
    }
}

impl Sinks {
    /// Build and start the configured sinks, reading `OTEL_*` from the process
    /// environment. Must be called inside a tokio runtime.
    pub fn from_config(cfg: &[SinkConfig]) -> Result<Sinks, String> {
        Sinks::from_config_with_env(cfg, &|k| std::env::var(k).ok())
    }

    /// As [`Sinks::from_config`], with the environment given (tests, precedence).
    /// Every problem of every sink is reported at once, one per line.
    pub fn from_config_with_env(
        cfg: &[SinkConfig],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Sinks, String> {
        let label = |i: usize, c: &SinkConfig| format!("sink {} ({})", i + 1, c.kind());
        let problems: Vec<String> = cfg
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                c.validate()
                    .into_iter()
                    .map(move |p| format!("{}: {p}", label(i, c)))
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let mut sinks = Sinks::none();
        if cfg.is_empty() {
            return Ok(sinks);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("sinks need a running tokio runtime".into());
        }
        // TLS roots are loaded only when some destination may be https://.
        let https = |u: &str| u.trim().to_ascii_lowercase().starts_with("https://");
        let tls = cfg.iter().any(|c| match c {
            SinkConfig::Jsonl(_) => false,
            SinkConfig::Http(HttpConfig { url, .. })
            | SinkConfig::Humio(HumioConfig { url, .. }) => https(url),
            // The OTLP log exporter builds its own client.
            SinkConfig::Otlp(_) => false,
        });
        let mut shared: Option<reqwest::Client> = None;
        let mut client = || -> Result<reqwest::Client, String> {
            if shared.is_none() {
                shared = Some(super::transport::client(tls)?);
            }
            Ok(shared.clone().expect("set above"))
        };
        let sdk_disabled = otel_env::sdk_disabled(env);
        for (i, c) in cfg.iter().enumerate() {
            let mut policy = c.policy();
            let err = |e: String| format!("{}: {e}", label(i, c));
            match c {
                SinkConfig::Jsonl(j) => {
                    sinks.add(JsonlSink::open(&j.path).map_err(err)?, policy)?
                }
                SinkConfig::Http(h) => {
                    sinks.add(http::build(&client()?, h).map_err(err)?, policy)?
                }
                SinkConfig::Humio(h) => {
                    sinks.add(humio::build(&client()?, h).map_err(err)?, policy)?
                }
                SinkConfig::Otlp(_) if sdk_disabled => sinks.warnings.push(err(
                    "not started: OTEL_SDK_DISABLED=true turns every OpenTelemetry signal off"
                        .into(),
                )),
                SinkConfig::Otlp(o) => {
                    let target = o.resolve(env).map_err(err)?;
                    if o.timeout.is_none() {
                        if let Some(t) = target.timeout {
                            policy.timeout = t;
                        }
                    }
                    sinks
                        .warnings
                        .extend(target.warnings.iter().map(|w| err(w.clone())));
                    let logs = otlp::OtlpLogs::new(&target, &policy, env).map_err(err)?;
                    sinks.add_layered(logs.name(), Box::new(logs));
                }
            }
        }
        Ok(sinks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testkit;
    use crate::sink::{HttpFormat, OtlpProtocol, SinkReport, DEFAULT_SHUTDOWN_LIMIT};
    use serde_json::Value;

    fn parse(yaml: &str) -> Result<Vec<SinkConfig>, String> {
        let v: Value = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
        serde_json::from_value(v["sinks"].clone()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_settings_parse_and_validate() {
        let doc = include_str!("mod.rs");
        let yaml: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.strip_prefix("//! ").unwrap_or("")))
            .collect();
        let cfg = parse(&yaml).unwrap();
        assert_eq!(cfg.len(), 6);
        for c in &cfg {
            assert!(c.validate().is_empty(), "{:?}: {:?}", c, c.validate());
        }
        assert!(matches!(
            &cfg[2],
            SinkConfig::Http(HttpConfig { format: HttpFormat::Loki, labels, .. }) if labels["env"] == "staging"
        ));
        assert!(matches!(
            &cfg[5],
            SinkConfig::Otlp(OtlpConfig {
                protocol: Some(OtlpProtocol::HttpProtobuf),
                retries: Some(2),
                ..
            })
        ));
        // Debug never shows a credential.
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("Bearer abc"), "{debug}");
        assert!(!debug.contains("00000000-0000"), "{debug}");
        assert!(!debug.contains("ingest token"), "{debug}");
    }

    #[test]
    fn unknown_keys_and_types_are_errors() {
        let e = parse("sinks: [{type: http, url: 'http://x', bogus: 1}]").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = parse("sinks: [{type: kafka}]").unwrap_err();
        assert!(e.contains("kafka"), "{e}");
        let e = parse("sinks: [{type: otlp, protocol: thrift}]").unwrap_err();
        assert!(e.contains("thrift"), "{e}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let cfg = parse(
            "sinks:\n\
             - {type: http, url: 'ftp://x', wrap: r, format: loki, batch_size: 0}\n\
             - {type: humio, token: ' '}\n\
             - {type: otlp, protocol: grpc, headers: {'bad key': b}}\n",
        )
        .unwrap();
        let e = Sinks::from_config_with_env(&cfg, &|_| None).unwrap_err();
        assert!(e.contains("sink 1 (http): url 'ftp://x'"), "{e}");
        assert!(e.contains("sink 1 (http): wrap only applies"), "{e}");
        assert!(e.contains("sink 1 (http): batch_size"), "{e}");
        assert!(e.contains("sink 2 (humio): token is empty"), "{e}");
        assert!(
            e.contains("sink 3 (otlp): header 'bad key' cannot be sent as gRPC metadata"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn no_sinks_is_free() {
        let s = Sinks::from_config_with_env(&[], &|_| None).unwrap();
        assert!(s.is_empty());
        s.emit(&testkit::record(0));
        assert!(s.shutdown(DEFAULT_SHUTDOWN_LIMIT).await.is_empty());
    }

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        let cfg = vec![SinkConfig::Jsonl(JsonlConfig {
            path: std::env::temp_dir().join("faultline-sink-no-runtime.jsonl"),
        })];
        let e = Sinks::from_config_with_env(&cfg, &|_| None).unwrap_err();
        assert!(e.contains("tokio runtime"), "{e}");
    }

    #[tokio::test]
    async fn otel_sdk_disabled_turns_the_otlp_sink_off_with_a_warning() {
        let cfg = parse("sinks: [{type: otlp}]").unwrap();
        let env = |k: &str| (k == "OTEL_SDK_DISABLED").then(|| "TRUE".to_string());
        let sinks = Sinks::from_config_with_env(&cfg, &env).unwrap();
        assert!(sinks.is_empty());
        assert!(
            sinks.warnings()[0].contains("OTEL_SDK_DISABLED"),
            "{:?}",
            sinks.warnings()
        );
    }

    #[tokio::test]
    async fn building_is_cheap() {
        let cfg = parse(
            "sinks: [{type: humio, token: t}, {type: otlp}, {type: otlp, protocol: grpc}, \
             {type: http, url: 'https://x.example/'}]",
        )
        .unwrap();
        let t = std::time::Instant::now();
        let sinks = Sinks::from_config_with_env(&cfg, &|_| None).unwrap();
        println!("building 4 network sinks took {:?}", t.elapsed());
        let t = std::time::Instant::now();
        let reports = sinks.shutdown(DEFAULT_SHUTDOWN_LIMIT).await;
        println!("shutting down 4 idle sinks took {:?}", t.elapsed());
        assert!(reports.iter().all(SinkReport::is_clean), "{reports:?}");
    }

    /// The import rule (see the module docs), read from the sources: a sink folder
    /// never names another folder, and shared files never name a folder.
    #[test]
    fn sink_folders_and_shared_code_import_no_circle() {
        let folders = ["jsonl", "http", "humio", "otlp"];
        // The OTLP sink has no encoder or pipeline sink of its own: the OpenTelemetry
        // SDK encodes and sends (`sdk.rs`).
        let roles = |f: &str| -> &[&str] {
            if f == "otlp" {
                &["mod.rs", "config.rs", "sdk.rs", "tests.rs"]
            } else {
                &["mod.rs", "config.rs", "encoder.rs", "sink.rs", "tests.rs"]
            }
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sink");
        let names = |text: &str, folder: &str| {
            [
                format!("super::{folder}"),
                format!("sink::{folder}"),
                format!("super::super::{folder}"),
            ]
            .iter()
            .any(|p| text.contains(p.as_str()))
        };
        for f in folders {
            let mut files: Vec<String> = std::fs::read_dir(dir.join(f))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            let mut expected: Vec<String> = roles(f).iter().map(|r| r.to_string()).collect();
            expected.sort();
            assert_eq!(files, expected, "{f}/ has the fixed file roles");
            for file in &files {
                let text = std::fs::read_to_string(dir.join(f).join(file)).unwrap();
                for other in folders.iter().filter(|o| **o != f) {
                    assert!(!names(&text, other), "{f}/{file} imports the {other} sink");
                }
            }
        }
        let mut shared = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !path.is_file() || name == "registry.rs" || name == "mod.rs" {
                continue;
            }
            shared += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for f in folders {
                assert!(!names(&text, f), "shared {name} imports the {f} sink");
            }
        }
        assert!(
            shared >= 5,
            "record, pipeline, options, transport, sinks: {shared}"
        );
        // mod.rs only declares the folders and re-exports their public settings.
        let m = std::fs::read_to_string(dir.join("mod.rs")).unwrap();
        for line in m.lines().filter(|l| !l.starts_with("//")) {
            if folders.iter().any(|f| line.contains(&format!("{f}::"))) {
                assert!(line.starts_with("pub use "), "mod.rs: {line}");
            }
        }
    }
}
