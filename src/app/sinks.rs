//! Which log sinks a run feeds: the settings file's `sinks:`, a `chaoshumio.control`
//! declaration (its ingest token from the experiment's secrets), and OTLP logs when an
//! OTLP endpoint is configured (the same `OTEL_EXPORTER_OTLP_*` variables as traces,
//! plus `OTEL_EXPORTER_OTLP_LOGS_*`; `OTEL_LOGS_EXPORTER=none` and
//! `OTEL_SDK_DISABLED=true` turn it off), all read through
//! [`crate::telemetry::otel_env`].

use crate::experiment::config::Resolved;
use crate::experiment::{ControlDecl, Problem};
use crate::settings::Settings;
use crate::sink::SinkConfig;
use crate::telemetry::otel_env::{self, Exporter, Signal};
use serde_json::{json, Value};

/// The sinks to build, and what to tell the user.
#[derive(Default)]
pub struct Plan {
    /// Sink configurations, in order.
    pub configs: Vec<SinkConfig>,
    /// Warnings (a sink that cannot be set up; the run goes on without it).
    pub warnings: Vec<String>,
}

fn humio(d: &ControlDecl, resolved: &Resolved) -> Result<SinkConfig, String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let url = text(d.arguments.get("humio_url"))
        .or_else(|| text(d.arguments.get("url")))
        .or_else(|| text(resolved.configuration.get("humio_url")));
    let scopes = if d.secrets.is_empty() {
        vec!["humio".to_string()]
    } else {
        d.secrets.clone()
    };
    let token = scopes.iter().find_map(|s| {
        let scope = resolved.secrets.get(s)?;
        text(scope.get("ingest_token")).or_else(|| text(scope.get("token")))
    });
    let Some(token) = token else {
        return Err(format!(
            "control '{}' (chaoshumio.control) needs an ingest token in secrets.{}.ingest_token: Humio logging is off for this run",
            d.name, scopes[0]
        ));
    };
    let mut cfg = json!({"type": "humio", "token": token});
    if let Some(u) = url {
        cfg["url"] = Value::String(u);
    }
    serde_json::from_value(cfg)
        .map_err(|e| format!("control '{}' (chaoshumio.control): {e}", d.name))
}

/// Decide the sinks. Errors in the settings file's `sinks:` are invalid input.
pub fn plan(
    settings: &Settings,
    humio_decls: &[ControlDecl],
    resolved: &Resolved,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Vec<Problem>> {
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    for (i, v) in settings.sinks.iter().enumerate() {
        match serde_json::from_value::<SinkConfig>(v.clone()) {
            Ok(c) => plan.configs.push(c),
            Err(e) => problems.push(
                Problem::new(format!("$.sinks[{i}]"), format!("invalid sink: {e}"))
                    .hint("a sink has a type: jsonl (path), http (url, headers, format), humio (url, token) or otlp (endpoint, protocol)"),
            ),
        }
    }
    for d in humio_decls {
        match humio(d, resolved) {
            Ok(c) => plan.configs.push(c),
            Err(w) => plan.warnings.push(w),
        }
    }
    // The same resolver as the trace setup's: `OTEL_SDK_DISABLED` is true only for
    // "true", and an empty variable is unset. Its warnings are the sink's to give,
    // when it is built.
    let logs = otel_env::signal(Signal::Logs, env, &Default::default());
    let disabled = otel_env::sdk_disabled(env) || logs.exporter == Exporter::None;
    let env_endpoint = logs.endpoint.is_some();
    let settings_endpoint = settings.tracing.endpoint.clone();
    let already = plan.configs.iter().any(|c| c.kind() == "otlp");
    if !disabled && !already && (env_endpoint || settings_endpoint.is_some()) {
        let mut cfg = json!({"type": "otlp"});
        if !env_endpoint {
            if let Some(e) = settings_endpoint {
                cfg["endpoint"] = Value::String(e);
            }
            if let Some(p) = &settings.tracing.protocol {
                cfg["protocol"] = Value::String(p.clone());
            }
        }
        // Enabled by telemetry configuration, not asked for as a sink: whatever is
        // wrong with it is a warning, never a reason to stop the run.
        match serde_json::from_value::<SinkConfig>(cfg) {
            Ok(c) => match c.check_with_env(env).as_slice() {
                [] => plan.configs.push(c),
                problems => plan.warnings.push(format!(
                    "OTLP logs are off for this run: {}",
                    problems.join("; ")
                )),
            },
            Err(e) => plan
                .warnings
                .push(format!("OTLP logs are off for this run: {e}")),
        }
    }
    if problems.is_empty() {
        Ok(plan)
    } else {
        Err(problems)
    }
}
