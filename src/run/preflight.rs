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

const CHECK: &str = r#"
import importlib, json, os, sys
out_fd = os.dup(1)
os.dup2(2, 1)
sys.stdout = sys.stderr
if os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())
out = {}
for key in json.load(sys.stdin):
    mod, func = key.split(":", 1)
    try:
        m = importlib.import_module(mod)
    except BaseException as e:
        out[key] = "cannot import module '%s' (%s: %s)" % (mod, type(e).__name__, e)
        continue
    if not callable(getattr(m, func, None)):
        out[key] = "module '%s' has no function '%s'" % (mod, func)
os.write(out_fd, json.dumps(out).encode())
"#;

/// Check executables and python modules; every problem found, with its path.
pub async fn check(
    exp: &Experiment,
    configuration: &Map<String, Value>,
    secrets: &Map<String, Value>,
    processes: &Processes,
) -> Vec<Problem> {
    let vars = Vars {
        configuration,
        secrets,
    };
    let mut problems = Vec::new();
    let mut python: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
                    python
                        .entry(format!("{m}:{f}"))
                        .or_default()
                        .push(format!("{path}.provider.module"));
                }
            }
            _ => {}
        }
    }
    if python.is_empty() {
        return problems;
    }
    let interpreter = std::env::var("FAULTLINE_PYTHON").unwrap_or_else(|_| "python3".into());
    if processes.which(&interpreter).is_none() {
        let first = python
            .values()
            .flatten()
            .next()
            .cloned()
            .unwrap_or_else(|| "$".into());
        problems.push(
            Problem::new(first, format!("python activities need a Python interpreter, and '{interpreter}' is not found on PATH"))
                .hint("install python3, or set FAULTLINE_PYTHON to the interpreter that has your modules"),
        );
        return problems;
    }
    let mut cmd = tokio::process::Command::new(&interpreter);
    cmd.arg("-c").arg(CHECK);
    let keys: Vec<&String> = python.keys().collect();
    let input = serde_json::to_vec(&keys).unwrap_or_default();
    match crate::provider::process::run_captured(
        cmd,
        Some(input),
        crate::provider::capture::DEFAULT_OUTPUT_LIMIT,
        processes,
    )
    .await
    {
        Ok(out) => match serde_json::from_str::<Map<String, Value>>(out.stdout.text().trim()) {
            Ok(missing) => {
                for (key, why) in missing {
                    for path in python.get(&key).into_iter().flatten() {
                        problems.push(
                            Problem::new(path.clone(), why.as_str().unwrap_or("cannot be loaded").to_string())
                                .hint("install the module where this interpreter finds it (or run from the directory holding it; FAULTLINE_PYTHON picks the interpreter)"),
                        );
                    }
                }
            }
            Err(_) => problems.push(Problem::new(
                "$",
                format!(
                    "could not check python modules with {interpreter}: {}",
                    out.stderr.text().trim()
                ),
            )),
        },
        Err(e) => problems.push(Problem::new(
            "$",
            format!("could not start {interpreter} to check python modules: {e}"),
        )),
    }
    problems
}
