//! Pre-flight: can this machine run the experiment as written?
//!
//! Parsing is pure; this is the part of the Chaos Toolkit's validation that looks at
//! the machine: every `process` executable must be found, every `http` URL must parse,
//! every `python` module must import and have the named function. `faultline run` refuses to start when something
//! is missing (exit 3), instead of aborting halfway through a fault injection;
//! `--no-validation` skips it, as in the Chaos Toolkit. `faultline validate` reports the
//! same findings as warnings.

use crate::experiment::substitute::Vars;
use crate::experiment::{Activity, Experiment, Problem};
use crate::provider::process::Processes;
use crate::provider::python::worker::Worker;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Every activity of the experiment with the JSON path of its list.
fn activities(exp: &Experiment) -> Vec<(String, &Activity)> {
    let mut out = Vec::new();
    if let Some(h) = &exp.hypothesis {
        for (i, a) in h.probes.iter().enumerate() {
            out.push((format!("$.steady-state-hypothesis.probes[{i}]"), a));
        }
    }
    for (i, a) in exp.method.iter().enumerate() {
        out.push((format!("$.method[{i}]"), a));
    }
    for (i, a) in exp.rollbacks.iter().enumerate() {
        out.push((format!("$.rollbacks[{i}]"), a));
    }
    out
}

/// Check executables and python modules; every problem found, with its path.
pub async fn check(
    exp: &Experiment,
    configuration: &Map<String, Value>,
    secrets: &Map<String, Value>,
    processes: &Processes,
    python: &Worker,
) -> Vec<Problem> {
    let vars = Vars {
        configuration,
        secrets,
    };
    let mut problems = Vec::new();
    // The python activities to check, by path: module, function, arguments, name.
    let mut checks: Vec<Value> = Vec::new();
    // Each executable is looked up on PATH once, however many activities run it.
    let mut found: BTreeMap<String, bool> = BTreeMap::new();
    for (path, a) in activities(exp) {
        let p = vars.value(&a.provider);
        match p.get("type").and_then(Value::as_str) {
            Some("process") => {
                if let Some(exe) = p.get("path").and_then(Value::as_str) {
                    let missing = !exe.contains('$')
                        && !*found
                            .entry(exe.to_string())
                            .or_insert_with(|| processes.which(exe).is_some());
                    if missing {
                        problems.push(
                            Problem::new(format!("{path}.provider.path"), format!("activity '{}': executable '{exe}' is not found on this machine", a.name))
                                .hint("install it or fix the path (or --no-validation: skip the pre-flight check of this machine; the experiment's structure is always checked)"),
                        );
                    }
                }
            }
            Some("http") => {
                // A literal URL was checked by parsing; this one came from `${}`.
                let templated = a
                    .provider
                    .get("url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.contains('$'));
                if let Some(url) = p.get("url").and_then(Value::as_str).filter(|_| templated) {
                    if !url.contains('$') {
                        if let Err(e) = crate::provider::http::check_url(url) {
                            problems.push(
                                Problem::new(
                                    format!("{path}.provider.url"),
                                    format!("activity '{}': {e}", a.name),
                                )
                                .hint("a full http(s) URL, e.g. http://127.0.0.1:8080/health"),
                            );
                        }
                    }
                }
            }
            Some("python") => {
                if let (Some(m), Some(f)) = (
                    p.get("module").and_then(Value::as_str),
                    p.get("func").and_then(Value::as_str),
                ) {
                    // Run natively (`slo_is_met`): no Python needed.
                    if crate::provider::is_native_python(m, f) {
                        continue;
                    }
                    checks.push(serde_json::json!({
                        "key": path,
                        "module": m,
                        "func": f,
                        "arguments": p.get("arguments").cloned().unwrap_or(Value::Null),
                        "name": a.name,
                    }));
                }
            }
            _ => {}
        }
    }
    if checks.is_empty() {
        return problems;
    }
    let interpreter = python.python().to_string();
    if !python.is_running() && processes.which(&interpreter).is_none() {
        let first = checks
            .first()
            .and_then(|c| c["key"].as_str())
            .map_or_else(|| "$".to_string(), |k| format!("{k}.provider.module"));
        problems.push(
            Problem::new(first, format!("python activities need a Python interpreter, and '{interpreter}' is not found on PATH"))
                .hint("install python3, or set FAULTLINE_PYTHON to the interpreter that has your modules"),
        );
        return problems;
    }
    // Through the run's worker, as chaos validates in its own process: the modules
    // imported here stay imported for the run.
    let mut req = Map::new();
    req.insert("op".into(), "check".into());
    req.insert("items".into(), Value::Array(checks));
    match python
        .call(req, "the pre-flight check of python activities")
        .await
    {
        Ok(reply) => match (reply.get("ok"), reply.get("error")) {
            (Some(Value::Object(found)), _) => {
                for (path, f) in found {
                    let why = f["why"].as_str().unwrap_or("cannot be loaded").to_string();
                    if f["kind"] == "arguments" {
                        problems.push(
                            Problem::new(format!("{path}.provider.arguments"), why)
                                .hint("give the function's required arguments and only those (configuration and secrets are passed by faultline when the function declares them)"),
                        );
                    } else {
                        problems.push(
                            Problem::new(format!("{path}.provider.module"), why)
                                .hint("install the module where this interpreter finds it (or run from the directory holding it; FAULTLINE_PYTHON picks the interpreter)"),
                        );
                    }
                }
            }
            (_, e) => problems.push(Problem::new(
                "$",
                format!(
                    "could not check python modules with {interpreter}: {}",
                    e.and_then(Value::as_str).unwrap_or("no answer")
                ),
            )),
        },
        Err(e) => problems.push(Problem::new(
            "$",
            format!("could not check python modules with {interpreter}: {e}"),
        )),
    }
    problems
}
