//! The run's Python worker and Python controls, with the real interpreter: modules
//! keep their state across activities, calls overlap, a call that must be stopped
//! kills the worker (recorded, and the next call starts afresh), `chaoslib.exit`
//! interrupts the run, calls carry the trace context into Python's `opentelemetry`,
//! and Python controls run with the Chaos Toolkit's hooks.

use crate::common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const COUNTER: &str = r#"
import os, threading, time
n = 0
def bump():
    global n
    n += 1
    return n
def pid():
    return os.getpid()
def slow(seconds=30):
    time.sleep(seconds)
    return "done"
def poll(seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.05)
    return "done"
_events = {"a": threading.Event(), "b": threading.Event()}
def meet(me, other):
    # Both calls must be running at once: each waits for the other (bounded).
    _events[me].set()
    return _events[other].wait(20)
"#;

fn extension(out: &Output) -> &Value {
    out.journal()["extensions"]
        .as_array()
        .and_then(|l| l.iter().find(|e| e["name"] == "faultline"))
        .expect("the faultline extension")
}

#[test]
fn modules_keep_their_state_across_activities_in_one_interpreter() {
    let dir = TempDir::new("py-state");
    dir.write("counter.py", COUNTER);
    let bump = |name: &str| python("probe", name, "counter", "bump", json!({}));
    let e = experiment(
        vec![with(bump("check"), "tolerance", json!(1))],
        vec![
            bump("second"),
            python("probe", "pid", "counter", "pid", json!({})),
        ],
        vec![python("action", "pid-again", "counter", "pid", json!({}))],
    );
    let out = run_experiment(&dir, &e, &[]);
    assert_no_panic(&out);
    // The hypothesis after the method sees 3, not 1: the state was kept, so the
    // steady state deviates, as under `chaos run`.
    assert_eq!(out.code, 1, "{}", out.all_text());
    assert!(out.deviated());
    assert_eq!(entry(&out.journal()["run"], "second")["output"], 2);
    let after = &out.journal()["steady_states"]["after"]["probes"][0];
    assert_eq!(after["output"], 3, "{after:#}");
    let pid = &entry(&out.journal()["run"], "pid")["output"];
    assert_eq!(
        pid,
        &entry(&out.journal()["rollbacks"], "pid-again")["output"]
    );
    let w = &extension(&out)["python_worker"];
    assert_eq!(w["started"], 1, "{w:#}");
    assert_eq!(w["restarts"], json!([]));
}

#[test]
fn background_python_calls_run_at_the_same_time() {
    let dir = TempDir::new("py-concurrent");
    dir.write("counter.py", COUNTER);
    let meet = |name: &str, me: &str, other: &str| {
        with(
            python(
                "probe",
                name,
                "counter",
                "meet",
                json!({"me": me, "other": other}),
            ),
            "background",
            json!(true),
        )
    };
    let e = experiment(
        vec![],
        vec![meet("a", "a", "b"), meet("b", "b", "a")],
        vec![],
    );
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    for n in ["a", "b"] {
        assert_eq!(
            entry(&out.journal()["run"], n)["output"],
            true,
            "{n} did not meet the other"
        );
    }
}

#[test]
fn a_call_stopped_by_its_timeout_restarts_the_worker_and_the_journal_says_so() {
    let dir = TempDir::new("py-restart");
    dir.write("counter.py", COUNTER);
    let e = experiment(
        vec![],
        vec![
            python("probe", "one", "counter", "bump", json!({})),
            with(
                python("probe", "stuck", "counter", "slow", json!({})),
                "timeout",
                json!(0.5),
            ),
            python("probe", "again", "counter", "bump", json!({})),
        ],
        vec![],
    );
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let run = &out.journal()["run"];
    assert_eq!(entry(run, "one")["output"], 1);
    assert_eq!(entry(run, "stuck")["status"], "failed");
    // A new worker: the counter starts again.
    assert_eq!(entry(run, "again")["output"], 1);
    let w = &extension(&out)["python_worker"];
    assert_eq!(w["started"], 2, "{w:#}");
    let restarts = w["restarts"].as_array().expect("restarts");
    assert_eq!(restarts.len(), 1, "{w:#}");
    assert!(
        restarts[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("counter.slow was stopped before it returned"),
        "{w:#}"
    );
    assert!(
        out.stderr.contains("the Python worker was killed")
            && out.stderr.contains("module state from before is lost"),
        "{}",
        out.stderr
    );
    // The trace says it too, on the experiment span.
    let spans = crate::tracing::file_spans(&dir.join("journal.trace.json"));
    let exp = spans
        .iter()
        .find(|s| s.name == "chaos.experiment")
        .expect("the experiment span");
    assert_eq!(exp.attr_i64("chaos.python.workers"), Some(2));
    assert_eq!(exp.attr_i64("chaos.python.worker_restarts"), Some(1));
}

#[test]
fn an_interpreter_that_exits_on_its_own_is_replaced_and_recorded() {
    let dir = TempDir::new("py-os-exit");
    dir.write("counter.py", COUNTER);
    dir.write("quit.py", "import os\ndef now():\n    os._exit(7)\n");
    let e = experiment(
        vec![],
        vec![
            python("probe", "one", "counter", "bump", json!({})),
            python("action", "die", "quit", "now", json!({})),
            python("probe", "again", "counter", "bump", json!({})),
        ],
        vec![],
    );
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let run = &out.journal()["run"];
    assert_eq!(entry(run, "die")["status"], "failed");
    assert!(
        exception_text(entry(run, "die")).contains("the Python worker ended"),
        "{:#}",
        entry(run, "die")
    );
    assert_eq!(entry(run, "again")["output"], 1);
    let w = &extension(&out)["python_worker"];
    assert_eq!(w["started"], 2, "{w:#}");
    assert!(
        w["restarts"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("exited on its own"),
        "{w:#}"
    );
}

#[test]
fn a_call_in_python_code_is_stopped_in_place_and_the_worker_keeps_its_state() {
    let dir = TempDir::new("py-stop");
    dir.write("counter.py", COUNTER);
    let e = experiment(
        vec![],
        vec![
            python("probe", "one", "counter", "bump", json!({})),
            with(
                python("probe", "polling", "counter", "poll", json!({})),
                "timeout",
                json!(0.5),
            ),
            python("probe", "again", "counter", "bump", json!({})),
        ],
        vec![],
    );
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let run = &out.journal()["run"];
    assert_eq!(entry(run, "polling")["status"], "failed");
    // Stopped where it was (CallStopped raised in its thread): same worker, same state.
    assert_eq!(entry(run, "again")["output"], 2);
    let w = &extension(&out)["python_worker"];
    assert_eq!(w["started"], 1, "{w:#}");
    assert_eq!(w["restarts"], json!([]), "{w:#}");
}

fn exit_experiment(func: &str) -> Value {
    experiment(
        vec![],
        vec![
            with(
                python("probe", "exiter", "exiter", func, json!({})),
                "background",
                json!(true),
            ),
            process("action", "wait", "sleep", &["30"]),
            tracer("action", "never", "never"),
        ],
        vec![tracer("action", "undo", "undo")],
    )
}

const EXITER: &str = r#"
import time
from chaoslib.exit import exit_gracefully, exit_ungracefully
def graceful():
    time.sleep(0.3)
    exit_gracefully()
    return "sent"
def ungraceful():
    time.sleep(0.3)
    exit_ungracefully()
    return "sent"
"#;

#[test]
fn exit_gracefully_interrupts_the_run_and_plays_the_rollbacks() {
    let dir = TempDir::new("py-exit-graceful");
    dir.write("exiter.py", EXITER);
    let out = run_experiment(&dir, &exit_experiment("graceful"), &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert_eq!(out.rollback_names(), ["undo"]);
    assert_eq!(lines(&dir, "trace"), ["undo"]);
    assert!(
        extension(&out)["interrupted_by"]
            .as_str()
            .unwrap_or_default()
            .contains("exit_gracefully"),
        "{:#}",
        extension(&out)
    );
}

#[test]
fn exit_ungracefully_stops_at_once_without_rollbacks() {
    let dir = TempDir::new("py-exit-ungraceful");
    dir.write("exiter.py", EXITER);
    let out = run_experiment(&dir, &exit_experiment("ungraceful"), &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert!(
        out.rollback_names().is_empty(),
        "{:?}",
        out.rollback_names()
    );
    assert!(lines(&dir, "trace").is_empty());
    assert!(
        out.stderr
            .contains("exit_ungracefully() asked to stop at once"),
        "{}",
        out.stderr
    );
}

// ------------------------------------------------------------------ trace context

/// A venv with `opentelemetry-api` (from PyPI, once per target directory); `None`
/// when it cannot be built here (then the test says why and passes, unless
/// `FAULTLINE_REQUIRE_COMPAT=1`, as CI sets it).
fn otel_python() -> Option<PathBuf> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join("otel-venv");
    let python = venv.join("bin").join("python");
    let ready = venv.join(".ready-opentelemetry-api-1.27.0");
    let required = std::env::var("FAULTLINE_REQUIRE_COMPAT").as_deref() == Ok("1");
    let fail = |why: String| {
        if required {
            panic!("{why}");
        }
        eprintln!("skipped: {why}");
        None
    };
    // One builder at a time (test binaries run in parallel).
    let lock = target.join("otel-venv.lock");
    let _ = std::fs::create_dir_all(&target);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .ok()?;
    // Released when the file closes, at return.
    lock_file.lock().ok()?;
    if ready.is_file() && python.is_file() {
        return Some(python);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        return fail("cannot make a venv with python3 -m venv".into());
    }
    let pip = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "opentelemetry-api==1.27.0",
        ])
        .status();
    if !pip.is_ok_and(|s| s.success()) {
        return fail("cannot pip install opentelemetry-api==1.27.0".into());
    }
    let _ = std::fs::write(&ready, "");
    Some(python)
}

#[test]
fn spans_made_in_python_join_the_run_trace_under_the_activity() {
    let Some(python) = otel_python() else { return };
    let dir = TempDir::new("py-otel");
    dir.write(
        "traced.py",
        "from opentelemetry import trace\n\
         def ids():\n\
         \x20   c = trace.get_current_span().get_span_context()\n\
         \x20   return {'trace_id': format(c.trace_id, '032x'), 'span_id': format(c.span_id, '016x')}\n",
    );
    let e = experiment(vec![], vec![python_call("ids")], vec![]);
    let out = run_experiment_env(
        &dir,
        &e,
        &[],
        &[("FAULTLINE_PYTHON", python.to_str().unwrap())],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let ids = &entry(&out.journal()["run"], "ids")["output"];
    let spans = crate::tracing::file_spans(&dir.join("journal.trace.json"));
    let activity = spans
        .iter()
        .find(|s| s.name.contains("ids"))
        .unwrap_or_else(|| {
            panic!(
                "no span of the activity: {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(ids["trace_id"], activity.trace_id.as_str(), "{ids:#}");
    assert_eq!(ids["span_id"], activity.span_id.as_str(), "{ids:#}");
}

fn python_call(func: &str) -> Value {
    python("probe", func, "traced", func, json!({}))
}

// ------------------------------------------------------------------ controls

const CONTROL: &str = r#"
from chaoslib.exceptions import InterruptExecution
calls = []
def configure_control(configuration=None, secrets=None, experiment=None, settings=None, greeting="hi"):
    calls.append("configure:" + greeting)
    configuration["set_by_configure"] = greeting
def before_experiment_control(context, **kwargs):
    calls.append("before_experiment")
def before_activity_control(context, **kwargs):
    calls.append("before:" + context["name"])
def after_activity_control(context, state, configuration=None, secrets=None, **kwargs):
    calls.append("after:%s:%s" % (context["name"], state["status"]))
    if context["name"] == "make-token":
        configuration["token"] = state["output"]
        secrets["vault"]["password"] = "changed-" + state["output"]
    if context["name"] == "stop-here":
        raise InterruptExecution("the control said stop")
def after_method_control(context, state, **kwargs):
    calls.append("after_method:%d" % len(state))
def after_experiment_control(context, state, **kwargs):
    print("CALLS " + ",".join(calls) + " STATUS " + state["status"])
def cleanup_control():
    print("CLEANED UP")
"#;

fn control_experiment(method: Vec<Value>) -> Value {
    json!({
        "title": "python controls", "description": "d",
        "secrets": {"vault": {"password": "initial-secret"}},
        "configuration": {"token": "none-yet"},
        "method": method,
        "rollbacks": [tracer("action", "undo", "undo")]
    })
}

#[test]
fn a_python_control_sees_the_hooks_and_changes_configuration_and_secrets() {
    let dir = TempDir::new("py-ctl");
    dir.write("myctl.py", CONTROL);
    dir.write(
        "tok.py",
        "def make():\n    return 'tok42'\ndef reveal(p):\n    open('secret-used', 'w').write(p)\n    return p\n",
    );
    let mut e = control_experiment(vec![
        python("probe", "make-token", "tok", "make", json!({})),
        sh(
            "action",
            "use-token",
            "echo \"${token} ${set_by_configure}\" > used",
        ),
        json!({"type": "action", "name": "use-secret",
               "provider": {"type": "python", "module": "tok", "func": "reveal",
                            "arguments": {"p": "${password}"}, "secrets": ["vault"]}}),
    ]);
    e["controls"] = json!([{"name": "mine", "provider": {"type": "python", "module": "myctl",
                            "arguments": {"greeting": "hello"}}}]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "used"), ["tok42 hello"]);
    assert!(
        out.stdout.contains("CALLS configure:hello,before_experiment,before:make-token,after:make-token:succeeded,before:use-token,after:use-token:succeeded,before:use-secret,after:use-secret:succeeded,after_method:3,before:undo,after:undo:succeeded STATUS completed")
            || out.stderr.contains("CALLS configure:hello,before_experiment,before:make-token,after:make-token:succeeded,before:use-token,after:use-token:succeeded,before:use-secret,after:use-secret:succeeded,after_method:3,before:undo,after:undo:succeeded STATUS completed"),
        "{}",
        out.all_text()
    );
    assert!(out.all_text().contains("CLEANED UP"), "{}", out.all_text());
    // The secret the control set reached the activity, and the journal masks it.
    assert_eq!(lines(&dir, "secret-used"), ["changed-tok42"]);
    let journal = std::fs::read_to_string(dir.join("journal.json")).unwrap();
    assert!(
        !journal.contains("changed-tok42"),
        "the new secret is in the journal"
    );
    assert!(
        !journal.contains("initial-secret"),
        "the first secret is in the journal"
    );
}

#[test]
fn an_interrupt_raised_by_a_python_control_interrupts_the_run() {
    let dir = TempDir::new("py-ctl-interrupt");
    dir.write("myctl.py", CONTROL);
    let mut e = control_experiment(vec![
        tracer("action", "stop-here", "stop-here"),
        tracer("action", "never", "never"),
    ]);
    e["controls"] = json!([{"name": "mine", "provider": {"type": "python", "module": "myctl"}}]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert_eq!(lines(&dir, "trace"), ["stop-here", "undo"]);
    assert!(
        out.stderr.contains("the control said stop"),
        "{}",
        out.stderr
    );
}

#[test]
fn python_controls_from_settings_and_control_files_and_on_one_activity() {
    let dir = TempDir::new("py-ctl-global");
    dir.write(
        "marks.py",
        "def configure_control(tag='?'):\n    open('marks', 'a').write('configured:' + tag + '\\n')\n\
         def before_activity_control(context, tag='?', **kwargs):\n    open('marks', 'a').write(tag + ':' + context['name'] + '\\n')\n",
    );
    let settings = dir.write(
        "settings.yaml",
        "controls:\n  from-settings:\n    provider:\n      type: python\n      module: marks\n      arguments:\n        tag: settings\n",
    );
    let file = dir.write(
        "controls.json",
        r#"{"from-file": {"provider": {"type": "python", "module": "marks", "arguments": {"tag": "file"}}}}"#,
    );
    let mut e = experiment(
        vec![],
        vec![
            tracer("action", "first", "first"),
            tracer("action", "second", "second"),
        ],
        vec![],
    );
    e["method"][1]["controls"] = json!([{"name": "on-second", "provider": {"type": "python", "module": "marks", "arguments": {"tag": "activity"}}}]);
    let out = run_experiment(
        &dir,
        &e,
        &[
            "--settings",
            settings.to_str().unwrap(),
            "--control-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let mut marks = lines(&dir, "marks");
    marks.sort();
    assert_eq!(
        marks,
        [
            "activity:second",
            "configured:activity",
            "configured:file",
            "configured:settings",
            "file:first",
            "file:second",
            "settings:first",
            "settings:second"
        ]
    );
}

#[test]
fn validate_control_refuses_and_a_missing_control_module_is_a_warning() {
    let dir = TempDir::new("py-ctl-validate");
    dir.write(
        "picky.py",
        "def validate_control(control):\n    if 'bad' in control:\n        raise ValueError('bad key on control')\n",
    );
    let mut e = experiment(vec![], vec![tracer("action", "first", "first")], vec![]);
    e["controls"] =
        json!([{"name": "picky", "bad": 1, "provider": {"type": "python", "module": "picky"}}]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.journal.is_none());
    assert!(
        out.stderr.contains("$.controls[0]") && out.stderr.contains("bad key on control"),
        "{}",
        out.stderr
    );
    // A module that is not installed: said, and the run goes on (as chaos).
    e["controls"] = json!([{"name": "absent", "provider": {"type": "python", "module": "surely_not_installed_xyz"}}]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.stderr.contains("control 'absent'")
            && out.stderr.contains("cannot be loaded")
            && out.stderr.contains("goes on without it"),
        "{}",
        out.stderr
    );
    // A failing hook is said, and the run goes on.
    dir.write(
        "failing.py",
        "def before_method_control(context, **kw):\n    raise RuntimeError('hook broke')\n",
    );
    e["controls"] =
        json!([{"name": "failing", "provider": {"type": "python", "module": "failing"}}]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(out.stderr.contains("hook broke"), "{}", out.stderr);
    assert_eq!(lines(&dir, "trace"), ["first", "first"]);
}

#[test]
fn native_controls_win_over_their_python_modules() {
    let dir = TempDir::new("py-ctl-native");
    // chaostracing is not installed here: declaring it must not reach Python at all.
    let mut e = experiment(vec![], vec![tracer("action", "first", "first")], vec![]);
    e["controls"] = json!([{"name": "tracing", "provider": {"type": "python", "module": "chaostracing.control"}}]);
    let out = run_experiment_env(
        &dir,
        &e,
        &[],
        &[("FAULTLINE_PYTHON", "/nonexistent/python")],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(!out.stderr.contains("cannot be loaded"), "{}", out.stderr);
    assert!(
        extension(&out).get("python_worker").is_none(),
        "{:#}",
        extension(&out)
    );
}

#[test]
fn a_slow_import_is_paid_once_per_run() {
    // The import sleeps 1 s; twenty calls into it still pay it once (one worker).
    let dir = TempDir::new("py-slow-import");
    dir.write(
        "heavy.py",
        "import time\ntime.sleep(1)\nimported = time.time()\ndef when():\n    return imported\n",
    );
    let calls: Vec<Value> = (0..20)
        .map(|i| python("probe", &format!("p{i}"), "heavy", "when", json!({})))
        .collect();
    let e = experiment(vec![], calls, vec![]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let stamps: Vec<f64> = out.journal()["run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["output"].as_f64().expect("a time"))
        .collect();
    assert_eq!(stamps.len(), 20);
    assert!(
        stamps.iter().all(|s| *s == stamps[0]),
        "imported more than once: {stamps:?}"
    );
    let _ = Duration::ZERO;
}
