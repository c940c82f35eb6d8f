//! Building the run's controls from every place they are declared: the experiment (top
//! level, hypothesis, activities), the settings file's `controls:` and
//! `--control-file`. Known python modules map to built-ins
//! ([`crate::control::builtin::lookup`]); unknown ones become warnings naming them.

use crate::control::alerts::Alerts;
use crate::control::builtin::{lookup, Builtin, Confirm, Pause};
use crate::control::deliver::Notifier;
use crate::control::grafana::Grafana;
use crate::control::metrics::RunMetrics;
use crate::control::python::{Loaded, PythonControl, PythonEnv};
use crate::control::run_metrics::FaultlineMetrics;
use crate::control::webhook::Webhook;
use crate::control::{Control, Scope, Scoped};
use crate::experiment::load::load_file;
use crate::experiment::{ControlDecl, Experiment, Problem};
use crate::run::{Safeguard, SafeguardMode};
use crate::settings::Settings;
use serde_json::Value;
use std::path::Path;

/// Controls declared outside the experiment (settings, --control-file).
#[derive(Debug, Clone)]
pub struct Global {
    /// Its name.
    pub name: String,
    /// Its python module.
    pub module: Option<String>,
    /// Its arguments.
    pub arguments: Value,
    /// Where it came from, for messages.
    pub origin: String,
    /// The declaration as written.
    pub raw: Value,
}

/// Parse a `controls` value: `{name: {provider: {...}}}` (settings shape) or
/// `[{name, provider}]` (experiment shape).
pub fn parse_globals(v: &Value, origin: &str) -> Result<Vec<Global>, Problem> {
    let one = |name: &str, c: &Value| -> Result<Global, Problem> {
        let provider = c.get("provider").ok_or_else(|| {
            Problem::new(format!("{origin}: controls.{name}"), "missing 'provider'")
                .hint("a control is {\"provider\": {\"type\": \"python\", \"module\": ...}}")
        })?;
        Ok(Global {
            name: name.to_string(),
            module: provider
                .get("module")
                .and_then(Value::as_str)
                .map(str::to_string),
            arguments: provider.get("arguments").cloned().unwrap_or(Value::Null),
            origin: origin.to_string(),
            raw: c.clone(),
        })
    };
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Object(m) if m.contains_key("controls") => parse_globals(&m["controls"], origin),
        Value::Object(m) => m.iter().map(|(k, c)| one(k, c)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("control-{i}"));
                one(&name, c)
            })
            .collect(),
        other => Err(Problem::new(
            format!("{origin}: controls"),
            format!("expected an object or a list of controls, found {other}"),
        )),
    }
}

/// The secret scopes a control's provider lists: the experiment's parsed ones, or as
/// written in a settings/--control-file declaration.
fn secret_scopes(decl: Option<&ControlDecl>, raw: &Value) -> Vec<String> {
    match decl {
        Some(d) => d.secrets.clone(),
        None => raw
            .pointer("/provider/secrets")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The global controls: the settings file's `controls:`, then each `--control-file`.
pub fn collect_globals(
    settings: &Settings,
    control_files: &[std::path::PathBuf],
) -> Result<Vec<Global>, Problem> {
    let mut globals = Vec::new();
    if !settings.controls.is_empty() {
        let map: serde_json::Map<String, Value> = settings.controls.iter().cloned().collect();
        let origin = settings.path.as_ref().map_or_else(
            || "settings".to_string(),
            |p| format!("settings {}", p.display()),
        );
        globals.extend(parse_globals(&Value::Object(map), &origin)?);
    }
    for f in control_files {
        globals.extend(load_control_file(f)?);
    }
    Ok(globals)
}

/// Read a `--control-file` (JSON or YAML).
pub fn load_control_file(path: &Path) -> Result<Vec<Global>, Problem> {
    let origin = path.display().to_string();
    let doc = load_file(path).map_err(|e| {
        let mut p = e.to_problem();
        p.message = format!("{origin}: {}", p.message);
        p
    })?;
    parse_globals(&doc.value, &origin)
}

/// What the declarations amount to.
#[derive(Default)]
pub struct Built {
    /// Built-in controls to install.
    pub controls: Vec<Box<dyn Control>>,
    /// Humio sinks requested by `chaoshumio.control` (declaration, for the sink setup).
    pub humio: Vec<ControlDecl>,
    /// Warnings to print (unknown or not-yet-served controls).
    pub warnings: Vec<String>,
    /// Pushgateway metrics controls, to report their push errors at the end.
    pub metrics: Vec<std::sync::Arc<RunMetrics>>,
    /// Controls that deliver notices (`faultline.grafana`, `faultline.webhook`): their
    /// credentials are resolved with the run's secrets, their failures reported at
    /// the end.
    pub notifiers: Vec<std::sync::Arc<dyn Notifier>>,
    /// `faultline.metrics` controls, to report their delivery errors at the end.
    pub run_metrics: Vec<std::sync::Arc<FaultlineMetrics>>,
    /// Alerts controls: given their tokens once secrets are resolved, and their
    /// errors and alerts reported at the end.
    pub alerts: Vec<std::sync::Arc<Alerts>>,
    /// Safeguard probes (`chaosaddons.controls.safeguards`).
    pub safeguards: Vec<Safeguard>,
    /// Problems in control declarations that make the run unsafe to start.
    pub problems: Vec<Problem>,
}

/// `arguments.probes`: each a probe with a tolerance; `frequency: N` repeats it every
/// N seconds, `background: true` runs it once concurrently, neither = a blocking check
/// before the experiment. Wrong definitions are problems: a safeguard that cannot run
/// must not let the experiment start unguarded.
fn safeguards(b: &mut Built, origin: &str, arguments: &Value) {
    let Some(probes) = arguments.get("probes").and_then(Value::as_array) else {
        b.problems.push(
            Problem::new(format!("{origin}.provider.arguments.probes"), "safeguards need a list of probes")
                .hint("arguments: {\"probes\": [{\"type\": \"probe\", \"name\": ..., \"tolerance\": ..., \"provider\": ...}]}"),
        );
        return;
    };
    let mut modes = Vec::new();
    let mut stripped = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let mode = match (
            p.get("frequency"),
            p.get("background").and_then(Value::as_bool),
        ) {
            (Some(f), _) => match f.as_f64().map(crate::duration::positive_seconds) {
                Some(Ok(d)) => SafeguardMode::Every(d),
                Some(Err(e)) => {
                    b.problems.push(
                        Problem::new(
                            format!("{origin}.provider.arguments.probes[{i}].frequency"),
                            e,
                        )
                        .hint(crate::duration::HINT),
                    );
                    continue;
                }
                None => {
                    b.problems.push(Problem::new(
                        format!("{origin}.provider.arguments.probes[{i}].frequency"),
                        "expected a positive number of seconds",
                    ));
                    continue;
                }
            },
            (None, Some(true)) => SafeguardMode::Once,
            _ => SafeguardMode::Blocking,
        };
        let mut p = p.clone();
        if let Some(o) = p.as_object_mut() {
            o.remove("frequency");
            o.remove("background");
        }
        modes.push(mode);
        stripped.push(p);
    }
    // Checked as hypothesis probes: each needs a valid provider and a tolerance.
    let doc = serde_json::json!({"title": "safeguards", "description": "", "method": [],
        "steady-state-hypothesis": {"title": "safeguards", "probes": stripped}});
    match crate::experiment::parse(&doc) {
        Ok(e) => {
            let probes = e.hypothesis.map(|h| h.probes).unwrap_or_default();
            for (probe, mode) in probes.into_iter().zip(modes) {
                b.safeguards.push(Safeguard { probe, mode });
            }
        }
        Err(problems) => b.problems.extend(problems.into_iter().map(|mut p| {
            p.path = p.path.replacen(
                "$.steady-state-hypothesis.probes",
                &format!("{origin}.provider.arguments.probes"),
                1,
            );
            p
        })),
    }
}

fn scope_of(d: &ControlDecl) -> Scope {
    if let Some(a) = &d.activity {
        Scope::Activity(a.clone())
    } else if d.path.starts_with("$.steady-state-hypothesis") {
        Scope::Hypothesis
    } else if d.automatic {
        Scope::Everything
    } else {
        Scope::ExperimentOnly
    }
}

/// Where a declaration is, and what it says.
struct Declared<'a> {
    name: &'a str,
    module: Option<&'a str>,
    scope: Scope,
    origin: &'a str,
    decl: Option<&'a ControlDecl>,
    arguments: &'a Value,
    raw: &'a Value,
}

fn install(b: &mut Built, d: Declared<'_>, python: Option<&PythonEnv>) {
    let Declared {
        name,
        module,
        scope,
        origin,
        decl,
        arguments,
        raw,
    } = d;
    let Some(module) = module else {
        b.warnings.push(format!(
            "control '{name}' ({origin}) names no python module: ignored"
        ));
        return;
    };
    match lookup(module) {
        Some(Builtin::Pause) => b.controls.push(Box::new(Scoped { inner: Pause, scope })),
        Some(Builtin::Confirm) => b.controls.push(Box::new(Scoped { inner: Confirm, scope })),
        // Tracing is on by default: declaring it changes nothing.
        Some(Builtin::Tracing) => {}
        Some(Builtin::Humio) => match decl {
            Some(d) => b.humio.push(d.clone()),
            None => b.humio.push(ControlDecl {
                name: name.to_string(),
                module: Some(module.to_string()),
                path: origin.to_string(),
                activity: None,
                automatic: true,
                arguments: arguments.clone(),
                secrets: vec!["humio".into()],
                raw: Value::Null,
            }),
        },
        Some(Builtin::Safeguards) => safeguards(b, origin, arguments),
        Some(kind @ (Builtin::Grafana | Builtin::Webhook)) => {
            // The secret scopes the declaration's provider lists (where a token or a
            // webhook URL may be).
            let scopes = secret_scopes(decl, raw);
            let built = if kind == Builtin::Grafana {
                Grafana::from_arguments(name, arguments, &scopes)
                    .map(|g| notifier(b, std::sync::Arc::new(g)))
            } else {
                Webhook::from_arguments(name, arguments, &scopes)
                    .map(|w| notifier(b, std::sync::Arc::new(w)))
            };
            if let Err(problems) = built {
                b.problems.extend(problems.into_iter().map(|p| {
                    Problem::new(
                        format!("{origin}.provider.arguments"),
                        format!("control '{name}' ({module}): {p}"),
                    )
                }));
            }
        }
        Some(Builtin::Alerts) => {
            let scopes = secret_scopes(decl, raw);
            match Alerts::from_arguments(
                arguments,
                scopes,
                &format!("{origin}.provider.arguments"),
            ) {
                Ok(a) => {
                    let a = std::sync::Arc::new(a);
                    b.alerts.push(a.clone());
                    b.controls.push(Box::new(a));
                }
                Err(problems) => b.problems.extend(problems),
            }
        }
        Some(Builtin::PrometheusMetrics) => {
            let m = std::sync::Arc::new(RunMetrics::from_arguments(arguments));
            b.metrics.push(m.clone());
            b.controls.push(Box::new(m));
        }
        Some(Builtin::FaultlineMetrics) => match FaultlineMetrics::from_arguments(arguments) {
            Ok(m) => {
                let m = std::sync::Arc::new(m);
                b.run_metrics.push(m.clone());
                // Run-level only: the run and its activities, whatever the scope it
                // was declared in.
                b.controls.push(Box::new(m));
            }
            Err(problems) => b.problems.extend(problems.into_iter().map(|p| {
                Problem::new(format!("{origin}.provider.arguments"), p)
                    .hint("see docs/telemetry.md, \"Run metrics\", for faultline.metrics' arguments")
            })),
        },
        // Any other module is a Python control: loaded in the run's worker, checked
        // by its own `validate_control`, as the Chaos Toolkit loads it.
        None => match python {
            Some(env) => match env.load(module, raw) {
                Loaded::Ready => {
                    let top = matches!(scope, Scope::Everything | Scope::ExperimentOnly);
                    b.controls.push(Box::new(Scoped {
                        inner: PythonControl::new(name, module, raw, env.clone(), top),
                        scope,
                    }))
                }
                Loaded::Missing(why) => b.warnings.push(format!(
                    "control '{name}' ({module}, {origin}) cannot be loaded: {why}: the run goes on without it, as the Chaos Toolkit's does"
                )),
                Loaded::Refused(why) => b.problems.push(
                    Problem::new(origin.to_string(), format!("control '{name}': its validate_control refused the declaration: {why}"))
                        .hint("fix the control's declaration as its module asks"),
                ),
            },
            None => b.warnings.push(format!(
                "control '{name}' ({module}, {origin}) is a python control: not loaded here"
            )),
        },
    }
}

/// Install a notifying control: observed at the experiment level (its hooks are
/// `before_experiment` and `after_experiment`), and kept for its credentials and
/// report.
fn notifier<N: Notifier + Control + 'static>(b: &mut Built, n: std::sync::Arc<N>) {
    b.notifiers.push(n.clone());
    b.controls.push(Box::new(n));
}

/// Build the global controls (settings file, `--control-file`): they exist before the
/// experiment is loaded, so they see the loading hooks.
pub fn build_globals(globals: &[Global], python: Option<&PythonEnv>) -> Built {
    let mut b = Built::default();
    for g in globals {
        install(
            &mut b,
            Declared {
                name: &g.name,
                module: g.module.as_deref(),
                scope: Scope::Everything,
                origin: &g.origin,
                decl: None,
                arguments: &g.arguments,
                raw: &g.raw,
            },
            python,
        );
    }
    b
}

/// Add the controls the experiment declares.
pub fn add_experiment(b: &mut Built, exp: &Experiment, python: Option<&PythonEnv>) {
    for d in &exp.controls {
        install(
            b,
            Declared {
                name: &d.name,
                module: d.module.as_deref(),
                scope: scope_of(d),
                origin: &d.path,
                decl: Some(d),
                arguments: &d.arguments,
                raw: &d.raw,
            },
            python,
        );
    }
}
