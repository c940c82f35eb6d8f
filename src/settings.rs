//! The settings file: the Chaos Toolkit's `settings.yaml` shape (`runtime`,
//! `controls`, `notifications`), read from `--settings` or the user's config dir.
//!
//! faultline's own configuration is strict: an unknown top-level key is an error
//! naming the key, so a typo never silently changes how chaos is run.

use crate::experiment::load::load_file;
use crate::experiment::parse::runtime;
use crate::experiment::{Problem, Runtime};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What the settings file says.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where it was read from, if anywhere.
    pub path: Option<PathBuf>,
    /// Default strategies.
    pub runtime: Runtime,
    /// Global controls, by name (served by the controls issue).
    pub controls: Vec<(String, Value)>,
    /// Run-wide activity timeout in seconds.
    pub activity_timeout: Option<f64>,
    /// Bytes kept of each activity output stream or HTTP body (`output_limit`).
    pub output_limit: Option<u64>,
    /// Seconds to wait for an experiment URL (`fetch_timeout`).
    pub fetch_timeout: Option<f64>,
    /// The largest experiment accepted from a URL, in bytes (`fetch_limit`).
    pub fetch_limit: Option<u64>,
    /// Where spans go (over the `OTEL_*` environment variables).
    pub tracing: TracingSettings,
    /// Structured log sinks (each parsed by [`crate::sink::SinkConfig`]).
    pub sinks: Vec<Value>,
    /// The SLO store of SLO activities (`store:`).
    pub store: StoreSettings,
    /// The kill switch file runs obey and `faultline kill` operates (`kill_switch:`).
    pub kill_switch: Option<String>,
    /// Defaults of PromQL queries (`prometheus:`).
    pub prometheus: PrometheusSettings,
}

/// `prometheus:` in the settings file: where PromQL probes go when neither the
/// provider's `base_url` nor the configuration's `prometheus_base_url` says.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSettings {
    /// The base URL, e.g. `http://prometheus:9090`.
    pub base_url: Option<String>,
    /// Seconds one query may take (default 30).
    pub timeout: Option<f64>,
    /// Verify TLS certificates (default true).
    pub verify_tls: Option<bool>,
    /// Seconds between Prometheus' scrapes, for the `slo` probe's data-quality rules
    /// and its wait after a window (default 15).
    pub scrape_interval: Option<f64>,
    /// The objective file `slo` probes read when neither they nor the configuration
    /// (`slo_objective_file`) name one.
    pub objective_file: Option<String>,
}

impl PrometheusSettings {
    /// As plain values for the run (checked when the file was read).
    pub fn defaults(&self) -> crate::provider::prometheus::Defaults {
        crate::provider::prometheus::Defaults {
            base_url: self.base_url.clone(),
            timeout: self
                .timeout
                .and_then(|t| crate::duration::positive_seconds(t).ok()),
            verify_tls: self.verify_tls,
            scrape_interval: self
                .scrape_interval
                .and_then(|t| crate::duration::positive_seconds(t).ok()),
            objective_file: self.objective_file.clone(),
        }
    }
}

/// `store:` in the settings file: the SLO store of a run's SLO activities, when
/// neither the flags nor `FAULTLINE_STORE`/`FAULTLINE_ORG`/`FAULTLINE_TOKEN` say.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// A file path or a `faultline serve` URL.
    pub location: Option<String>,
    /// The organisation.
    pub org: Option<String>,
    /// The bearer token of a remote store.
    pub token: Option<String>,
}

/// The `tracing:` block: what the `OTEL_*` variables say, in the settings file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSettings {
    /// `otlp`, `none` or `file`.
    pub exporter: Option<String>,
    /// OTLP endpoint (base, or full `/v1/traces` URL for HTTP).
    pub endpoint: Option<String>,
    /// `grpc`, `http/protobuf` or `http/json`.
    pub protocol: Option<String>,
    /// Extra headers (gRPC metadata).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Seconds one export may take.
    pub timeout: Option<f64>,
    /// `service.name`.
    pub service_name: Option<String>,
    /// The most, in seconds, telemetry may add to the end of a run (default 1.5).
    pub shutdown_limit: Option<f64>,
    /// Where a trace is shown, for reports' links: a template with `{trace_id}` (and
    /// `{run_id}`), e.g. `http://localhost:16686/trace/{trace_id}`.
    pub trace_url: Option<String>,
}

/// Checks a trace link template: an http(s) URL once `{trace_id}` (which it must
/// hold) and `{run_id}` are replaced.
pub fn check_trace_url(template: &str) -> Result<(), String> {
    if !template.contains("{trace_id}") {
        return Err(format!("{template:?} has no {{trace_id}} to replace"));
    }
    let sample = template
        .replace("{trace_id}", "0af7651916cd43dd8448eb211c80319c")
        .replace("{run_id}", "run");
    match url::Url::parse(&sample) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(u) => Err(format!("{template:?} is a {} URL, not http(s)", u.scheme())),
        Err(e) => Err(format!("{template:?} is not a URL: {e}")),
    }
}

/// `$XDG_CONFIG_HOME/faultline/settings.yaml`, else `~/.config/faultline/settings.yaml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))?;
    Some(base.join("faultline").join("settings.yaml"))
}

/// Read the settings. An explicit path must exist; the default path may not.
pub fn load(path: Option<&Path>) -> Result<Settings, Vec<Problem>> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => match default_path() {
            Some(p) => (p, false),
            None => return Ok(Settings::default()),
        },
    };
    if !explicit && !path.exists() {
        return Ok(Settings::default());
    }
    let name = path.display().to_string();
    let doc = load_file(&path).map_err(|e| {
        let mut p = e.to_problem();
        p.message = format!("settings {name}: {}", p.message);
        vec![p]
    })?;
    let mut s = Settings {
        path: Some(path),
        ..Settings::default()
    };
    let obj = match &doc.value {
        Value::Null => return Ok(s),
        Value::Object(o) => o,
        other => {
            return Err(vec![Problem::new(
                "$",
                format!("settings {name}: expected an object, found {other}"),
            )])
        }
    };
    let mut problems = Vec::new();
    for (k, v) in obj {
        match k.as_str() {
            "runtime" => match runtime(v, "$.runtime") {
                Ok(rt) => s.runtime = rt,
                Err(p) => problems.extend(p),
            },
            "controls" => match v {
                Value::Object(m) => s.controls.extend(m.iter().map(|(k, v)| (k.clone(), v.clone()))),
                Value::Null => {}
                other => problems.push(Problem::new("$.controls", format!("expected an object of controls, found {other}"))),
            },
            // Safeguards for every run, in short: the probes a
            // `chaosaddons.controls.safeguards` control would list.
            "safeguards" => match v {
                Value::Array(_) => s.controls.push((
                    // Not "safeguards": a control of that name may sit beside it.
                    "settings.safeguards".into(),
                    serde_json::json!({"provider": {"type": "python",
                        "module": "faultline.safeguards", "arguments": {"probes": v}}}),
                )),
                Value::Null => {}
                other => problems.push(
                    Problem::new("$.safeguards", format!("expected a list of probes, found {other}"))
                        .hint("safeguards: [{name, type: probe, provider, tolerance, frequency?|background?}]"),
                ),
            },
            "tracing" => match serde_json::from_value::<TracingSettings>(v.clone()) {
                Ok(t) => {
                    for (k, x) in [("timeout", t.timeout), ("shutdown_limit", t.shutdown_limit)] {
                        if let Some(Err(e)) = x.map(crate::duration::positive_seconds) {
                            problems.push(Problem::new(format!("$.tracing.{k}"), e).hint(crate::duration::HINT));
                        }
                    }
                    if let Some(Err(e)) = t.trace_url.as_deref().map(check_trace_url) {
                        problems.push(Problem::new("$.tracing.trace_url", e).hint("e.g. http://localhost:16686/trace/{trace_id}"));
                    }
                    s.tracing = t;
                }
                Err(e) => problems.push(
                    Problem::new("$.tracing", format!("invalid tracing settings: {e}"))
                        .hint("keys are exporter, endpoint, protocol, headers, timeout, service_name, shutdown_limit, trace_url"),
                ),
            },
            "store" => match serde_json::from_value::<StoreSettings>(v.clone()) {
                Ok(st) => s.store = st,
                Err(e) => problems.push(
                    Problem::new("$.store", format!("invalid store settings: {e}"))
                        .hint("keys are location (a file path or a faultline serve URL), org, token"),
                ),
            },
            "kill_switch" => match v {
                Value::String(p) if !p.trim().is_empty() => s.kill_switch = Some(p.clone()),
                other => problems.push(
                    Problem::new("$.kill_switch", format!("expected the path of the kill switch file, found {other}"))
                        .hint("e.g. /run/faultline/kill-switch, one file every run of the machine obeys"),
                ),
            },
            "prometheus" => match serde_json::from_value::<PrometheusSettings>(v.clone()) {
                Ok(p) => {
                    if let Some(Err(e)) = p.timeout.map(crate::duration::positive_seconds) {
                        problems.push(Problem::new("$.prometheus.timeout", e).hint(crate::duration::HINT));
                    }
                    if let Some(Err(e)) = p.scrape_interval.map(crate::duration::positive_seconds) {
                        problems.push(Problem::new("$.prometheus.scrape_interval", e).hint(crate::duration::HINT));
                    }
                    if let Some(u) = &p.base_url {
                        if !(u.starts_with("http://") || u.starts_with("https://")) || url::Url::parse(u).is_err() {
                            problems.push(
                                Problem::new("$.prometheus.base_url", format!("{u:?} is not an http(s) URL"))
                                    .hint("e.g. http://prometheus:9090"),
                            );
                        }
                    }
                    s.prometheus = p;
                }
                Err(e) => problems.push(
                    Problem::new("$.prometheus", format!("invalid prometheus settings: {e}"))
                        .hint("keys are base_url, timeout (seconds), verify_tls, scrape_interval (seconds), objective_file"),
                ),
            },
            "sinks" => match v {
                Value::Array(items) => s.sinks = items.clone(),
                Value::Null => {}
                other => problems.push(Problem::new("$.sinks", format!("expected a list of sinks, found {other}"))),
            },
            "activity_timeout" => match v.as_f64().map(|f| (f, crate::duration::positive_seconds(f))) {
                Some((f, Ok(_))) => s.activity_timeout = Some(f),
                Some((_, Err(e))) => problems.push(Problem::new("$.activity_timeout", e).hint(crate::duration::HINT)),
                None => problems.push(Problem::new("$.activity_timeout", "expected a positive number of seconds")),
            },
            "output_limit" => match v.as_u64() {
                Some(n) => s.output_limit = Some(n),
                None => problems.push(
                    Problem::new("$.output_limit", format!("expected a non-negative whole number of bytes, found {v}"))
                        .hint("bytes kept of each activity's stdout, stderr or HTTP body, e.g. 4194304 (4 MiB, the default)"),
                ),
            },
            "fetch_timeout" => match v.as_f64().map(crate::experiment::load::fetch_timeout) {
                Some(Ok(_)) => s.fetch_timeout = v.as_f64(),
                Some(Err(e)) => problems.push(Problem::new("$.fetch_timeout", e).hint("seconds to wait for an experiment URL, e.g. 30 (the default)")),
                None => problems.push(
                    Problem::new("$.fetch_timeout", format!("expected a positive number of seconds, found {v}"))
                        .hint("seconds to wait for an experiment URL, e.g. 30 (the default)"),
                ),
            },
            "fetch_limit" => match v.as_u64() {
                Some(n) if n > 0 => s.fetch_limit = Some(n),
                _ => problems.push(
                    Problem::new("$.fetch_limit", format!("expected a positive whole number of bytes, found {v}"))
                        .hint("the largest experiment accepted from a URL, e.g. 4194304 (4 MiB, the default)"),
                ),
            },
            // Read by the Chaos Toolkit; accepted so users can share one file.
            "notifications" | "auths" | "vaults" => {}
            other => problems.push(
                Problem::new(format!("$.{other}"), format!("unknown settings key '{other}'"))
                    .hint("settings keys are runtime, controls, safeguards, activity_timeout, output_limit, fetch_timeout, fetch_limit, tracing, sinks, store, kill_switch, prometheus (and the Chaos Toolkit's notifications)"),
            ),
        }
    }
    if problems.is_empty() {
        Ok(s)
    } else {
        for p in &mut problems {
            p.message = format!("settings {name}: {}", p.message);
        }
        crate::experiment::locate::locate_all(&mut problems, &doc.text, doc.format);
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_runtime_and_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("fl-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.yaml");
        std::fs::write(&p, "runtime:\n  rollbacks:\n    strategy: never\n").unwrap();
        let s = load(Some(&p)).unwrap();
        assert_eq!(
            s.runtime.rollback_strategy,
            Some(crate::run::RollbackStrategy::Never)
        );
        std::fs::write(&p, "runtme: {}\n").unwrap();
        let e = load(Some(&p)).unwrap_err();
        assert!(e[0].message.contains("unknown settings key 'runtme'"));
        assert!(load(Some(&dir.join("missing.yaml"))).is_err());
        std::fs::write(&p, "kill_switch: /run/faultline/kill-switch\n").unwrap();
        let s = load(Some(&p)).unwrap();
        assert_eq!(s.kill_switch.as_deref(), Some("/run/faultline/kill-switch"));
        std::fs::write(&p, "kill_switch: 3\n").unwrap();
        let e = load(Some(&p)).unwrap_err();
        assert_eq!(e[0].path, "$.kill_switch", "{e:?}");
        std::fs::write(
            &p,
            "tracing:\n  endpoint: http://127.0.0.1:4318\n  protocol: grpc\n  headers: {x-token: t}\n  shutdown_limit: 0.5\nsinks:\n  - {type: jsonl, path: /tmp/x.jsonl}\n",
        )
        .unwrap();
        let s = load(Some(&p)).unwrap();
        assert_eq!(s.tracing.protocol.as_deref(), Some("grpc"));
        assert_eq!(s.tracing.headers["x-token"], "t");
        assert_eq!(s.tracing.shutdown_limit, Some(0.5));
        assert_eq!(s.sinks.len(), 1);
        std::fs::write(
            &p,
            "prometheus:\n  base_url: http://prom:9090\n  timeout: 5\n  verify_tls: false\n",
        )
        .unwrap();
        let d = load(Some(&p)).unwrap().prometheus.defaults();
        assert_eq!(d.base_url.as_deref(), Some("http://prom:9090"));
        assert_eq!(d.timeout, Some(std::time::Duration::from_secs(5)));
        assert_eq!(d.verify_tls, Some(false));
        std::fs::write(&p, "prometheus:\n  base_ur: x\n").unwrap();
        let e = load(Some(&p)).unwrap_err();
        assert!(e[0].message.contains("base_ur"), "{e:?}");
        std::fs::write(&p, "prometheus:\n  base_url: prom:9090\n  timeout: -1\n").unwrap();
        let e = load(Some(&p)).unwrap_err();
        let paths: Vec<&str> = e.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["$.prometheus.timeout", "$.prometheus.base_url"],
            "{e:?}"
        );
        std::fs::write(&p, "tracing:\n  endpont: x\n").unwrap();
        let e = load(Some(&p)).unwrap_err();
        assert!(e[0].message.contains("endpont"), "{e:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn output_and_fetch_limits_are_checked() {
        let dir = std::env::temp_dir().join(format!("fl-settings-lim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.yaml");
        std::fs::write(
            &p,
            "output_limit: 1048576\nfetch_timeout: 0.5\nfetch_limit: 1000\n",
        )
        .unwrap();
        let s = load(Some(&p)).unwrap();
        assert_eq!(s.output_limit, Some(1_048_576));
        assert_eq!(s.fetch_timeout, Some(0.5));
        assert_eq!(s.fetch_limit, Some(1000));
        std::fs::write(
            &p,
            "output_limit: -1\nfetch_timeout: 1e300\nfetch_limit: 0\n",
        )
        .unwrap();
        let e = load(Some(&p)).unwrap_err();
        let paths: Vec<&str> = e.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["$.output_limit", "$.fetch_timeout", "$.fetch_limit"],
            "{e:?}"
        );
        assert!(e[1].message.contains("100 years"), "{e:?}");
        std::fs::write(&p, "fetch_timeout: -2\n").unwrap();
        let e = load(Some(&p)).unwrap_err();
        assert!(e[0].message.contains("positive number of seconds"), "{e:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
