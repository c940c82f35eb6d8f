//! Safeguards (`chaosaddons.controls.safeguards`): probes that must stay within
//! tolerance; a miss interrupts the run (rollbacks per strategy), whether checked
//! before the experiment, once in the background, or every `frequency` seconds.

use crate::common::*;
use serde_json::{json, Value};

fn guarded(probes: Value) -> Value {
    json!({
        "title": "guarded", "description": "d",
        "controls": [{"name": "safeguards", "provider": {"type": "python",
            "module": "chaosaddons.controls.safeguards", "arguments": {"probes": probes}}}],
        "steady-state-hypothesis": {"title": "h", "probes": [
            with(tracer("probe", "check", "probe"), "tolerance", json!(0))]},
        "method": [
            sh("action", "break", "echo break >> trace; touch tripwire"),
            // Bounded: at most 20 s, stopped early by the interrupt.
            sh("action", "wait", "echo wait >> trace; for i in $(seq 400); do sleep 0.05; done")
        ],
        "rollbacks": [sh("action", "repair", "echo rollback >> trace; rm -f tripwire")]
    })
}

fn guard(name: &str, extra: Value) -> Value {
    let mut g = with(
        sh("probe", name, "test ! -e tripwire"),
        "tolerance",
        json!(0),
    );
    for (k, v) in extra.as_object().unwrap() {
        g[k] = v.clone();
    }
    g
}

#[test]
fn a_blocking_safeguard_that_misses_stops_the_run_before_anything_runs() {
    let dir = TempDir::new("guard-block");
    std::fs::write(dir.join("tripwire"), "").unwrap();
    let out = run_experiment(
        &dir,
        &guarded(json!([guard("no-tripwire", json!({}))])),
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert!(
        out.stderr.contains("Safeguard 'no-tripwire' tripped"),
        "{}",
        out.stderr
    );
    assert_eq!(
        lines(&dir, "trace"),
        ["rollback"],
        "nothing but the rollback ran"
    );
    let by = out.journal()["extensions"][0]["interrupted_by"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(by.contains("safeguard 'no-tripwire' tripped"), "{by}");
}

#[test]
fn a_periodic_safeguard_interrupts_the_method_when_it_trips() {
    let dir = TempDir::new("guard-freq");
    let out = run_experiment(
        &dir,
        &guarded(json!([guard("watch", json!({"frequency": 0.05}))])),
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert!(
        out.stderr.contains("Safeguard 'watch' tripped"),
        "{}",
        out.stderr
    );
    // The method stopped (the trip lands during or just before the long action, which
    // is then stopped or never started), the after-hypothesis is skipped, the rollback
    // played.
    let trace = lines(&dir, "trace");
    assert_eq!(trace[..2], ["probe", "break"], "{trace:?}");
    assert_eq!(
        trace.last().map(String::as_str),
        Some("rollback"),
        "{trace:?}"
    );
    if let Some(wait) = out.journal()["run"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["activity"]["name"] == "wait")
    {
        assert_eq!(wait["status"], "failed", "stopped by the interrupt");
    }
    assert!(out.journal()["steady_states"]["after"].is_null());
    // From the trip to the rollbacks starting, measured and kept.
    let latency = &out.journal()["extensions"][0]["abort_latency_ms"];
    assert!(latency.as_f64().is_some_and(|ms| ms >= 0.0), "{latency}");
    // The probe's verdict and its evidence are in its journal entry.
    let by = out.journal()["extensions"][0]["interrupted_by"]
        .as_str()
        .unwrap();
    assert!(by.contains("safeguard 'watch' tripped"), "{by}");
}

#[test]
fn safeguards_declared_in_settings_guard_every_run() {
    let dir = TempDir::new("guard-settings");
    let settings = dir.write(
        "settings.yaml",
        &serde_json::to_string(
            &json!({"safeguards": [guard("from-settings", json!({"frequency": 0.05}))]}),
        )
        .unwrap(),
    );
    let mut exp = guarded(json!([]));
    exp.as_object_mut().unwrap().remove("controls");
    let out = run_experiment(&dir, &exp, &["--settings", settings.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert!(
        out.stderr.contains("Safeguard 'from-settings' tripped"),
        "{}",
        out.stderr
    );
    assert_eq!(
        lines(&dir, "trace").last().map(String::as_str),
        Some("rollback")
    );
    assert!(out.journal()["extensions"][0]["abort_latency_ms"].is_number());
    // A run that was not interrupted has no abort latency.
    let calm = TempDir::new("guard-settings-calm");
    let settings = calm.write(
        "settings.yaml",
        &serde_json::to_string(
            &json!({"safeguards": [with(sh("probe", "fine", "true"), "tolerance", json!(0))]}),
        )
        .unwrap(),
    );
    let out = run_experiment(
        &calm,
        &experiment(vec![], vec![sh("action", "a", "true")], vec![]),
        &["--settings", settings.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(out.journal()["extensions"][0]
        .get("abort_latency_ms")
        .is_none());
}

#[test]
fn safeguards_that_stay_within_tolerance_let_the_run_complete() {
    let dir = TempDir::new("guard-ok");
    let mut e = guarded(json!([
        with(sh("probe", "always-fine", "true"), "tolerance", json!(0)),
        with(
            with(sh("probe", "also-fine", "true"), "tolerance", json!(0)),
            "frequency",
            json!(0.05)
        ),
        with(
            with(sh("probe", "once-fine", "true"), "tolerance", json!(0)),
            "background",
            json!(true)
        )
    ]));
    e["method"] = json!([tracer("action", "act", "act")]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(!out.stderr.contains("tripped"), "{}", out.stderr);
}

#[test]
fn a_background_safeguard_checked_once_trips_too() {
    let dir = TempDir::new("guard-once");
    let mut e = guarded(json!([with(
        with(sh("probe", "once", "exit 3"), "tolerance", json!(0)),
        "background",
        json!(true)
    )]));
    e["method"] = json!([sh(
        "action",
        "wait",
        "echo wait >> trace; for i in $(seq 400); do sleep 0.05; done"
    )]);
    let out = run_experiment(&dir, &e, &[]);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert!(
        out.stderr.contains("Safeguard 'once' tripped"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_safeguard_without_a_tolerance_is_invalid_input() {
    let dir = TempDir::new("guard-bad");
    let out = run_experiment(
        &dir,
        &guarded(json!([sh("probe", "no-tolerance", "true")])),
        &[],
    );
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.stderr.contains("provider.arguments.probes[0]"),
        "{}",
        out.stderr
    );
    assert!(out.journal.is_none());
}
