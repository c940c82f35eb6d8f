//! Strategies: when the hypothesis is checked, when rollbacks are played, where the
//! strategies come from (flag > experiment `runtime` > settings file), and dry runs.
//!
//! Probes and actions append to a `trace` file, so the order of what ran is proven by
//! the processes themselves.

use crate::common::*;
use serde_json::{json, Value};
use std::path::PathBuf;

fn probe() -> Value {
    with(tracer("probe", "check", "probe"), "tolerance", json!(0))
}

fn simple() -> Value {
    experiment(
        vec![probe()],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    )
}

/// A method action that waits (bounded) until `trace` has `n` lines (written by
/// probes), so a continuous hypothesis has provably run several times.
fn wait_for_probes(n: usize) -> Value {
    sh(
        "action",
        "wait-for-probes",
        &format!(
            "for i in $(seq 400); do test \"$(cat trace 2>/dev/null | wc -l)\" -ge {n} && break; sleep 0.05; done; echo method >> trace"
        ),
    )
}

fn count(trace: &[String], tag: &str) -> usize {
    trace.iter().filter(|l| *l == tag).count()
}

#[test]
fn hypothesis_default_checks_before_and_after() {
    let dir = TempDir::new("st-default");
    let out = run_experiment(&dir, &simple(), &["--hypothesis-strategy", "default"]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j = out.journal();
    assert_eq!(out.hypothesis_names("before"), ["check"]);
    assert_eq!(out.hypothesis_names("after"), ["check"]);
    assert_eq!(j["steady_states"]["during"], json!([]));
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "method", "probe", "rollback"]
    );
    assert_eq!(j["extensions"][0]["hypothesis_strategy"], json!("default"));
}

#[test]
fn hypothesis_before_method_only_skips_the_after_check() {
    let dir = TempDir::new("st-before");
    let out = run_experiment(
        &dir,
        &simple(),
        &["--hypothesis-strategy", "before-method-only"],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j = out.journal();
    assert_eq!(out.hypothesis_names("before"), ["check"]);
    assert!(j["steady_states"]["after"].is_null());
    assert_eq!(j["steady_states"]["during"], json!([]));
    assert_eq!(lines(&dir, "trace"), ["probe", "method", "rollback"]);
}

#[test]
fn hypothesis_after_method_only_skips_the_before_check() {
    let dir = TempDir::new("st-after");
    let out = run_experiment(
        &dir,
        &simple(),
        &["--hypothesis-strategy", "after-method-only"],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j = out.journal();
    assert!(j["steady_states"]["before"].is_null());
    assert_eq!(out.hypothesis_names("after"), ["check"]);
    assert_eq!(lines(&dir, "trace"), ["method", "probe", "rollback"]);
}

#[test]
fn hypothesis_after_method_only_deviation_is_reported() {
    let dir = TempDir::new("st-after-dev");
    let exp = experiment(
        vec![healthy_probe()],
        vec![sh("action", "break-it", "touch broken")],
        vec![],
    );
    let out = run_experiment(&dir, &exp, &["--hypothesis-strategy", "after-method-only"]);
    assert_eq!(out.code, 1, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(out.deviated());
}

#[test]
fn hypothesis_during_method_only_checks_repeatedly_and_never_before_or_after() {
    let dir = TempDir::new("st-during");
    let exp = experiment(vec![probe()], vec![wait_for_probes(2)], vec![rollback()]);
    let out = run_experiment(
        &dir,
        &exp,
        &[
            "--hypothesis-strategy",
            "during-method-only",
            "--hypothesis-frequency",
            "0.05",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j = out.journal();
    assert!(j["steady_states"]["before"].is_null());
    assert!(j["steady_states"]["after"].is_null());
    let during = j["steady_states"]["during"].as_array().unwrap();
    assert!(during.len() >= 2, "{during:?}");
    for d in during {
        assert_eq!(d["steady_state_met"], json!(true), "{d}");
        assert_eq!(d["probes"][0]["activity"]["name"], json!("check"));
        assert_eq!(d["probes"][0]["tolerance_met"], json!(true));
    }
    let trace = lines(&dir, "trace");
    assert_eq!(count(&trace, "probe"), during.len(), "{trace:?}");
    assert_eq!(count(&trace, "method"), 1);
    assert_eq!(trace.last().map(String::as_str), Some("rollback"));
}

#[test]
fn hypothesis_continuously_checks_before_during_and_after() {
    let dir = TempDir::new("st-cont");
    let exp = experiment(vec![probe()], vec![wait_for_probes(3)], vec![rollback()]);
    let out = run_experiment(
        &dir,
        &exp,
        &[
            "--hypothesis-strategy",
            "continuously",
            "--hypothesis-frequency",
            "0.05",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j = out.journal();
    assert_eq!(out.hypothesis_names("before"), ["check"]);
    assert_eq!(out.hypothesis_names("after"), ["check"]);
    let during = j["steady_states"]["during"].as_array().unwrap();
    assert!(during.len() >= 2, "{during:?}");
    let trace = lines(&dir, "trace");
    assert_eq!(count(&trace, "probe"), during.len() + 2, "{trace:?}");
    assert_eq!(trace[0], "probe");
    assert_eq!(&trace[trace.len() - 2..], ["probe", "rollback"]);
    assert_eq!(
        j["extensions"][0]["hypothesis_strategy"],
        json!("continuously")
    );
}

// --- rollback strategies × outcomes -------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Completed,
    Deviated,
    Failed,
}

/// Run a scenario ending in `outcome` under `--rollback-strategy strategy`; returns
/// whether the rollback ran (checked against the journal and the trace).
fn rollback_ran(strategy: &str, outcome: Outcome) -> bool {
    let dir = TempDir::new("st-rb");
    let (probe, method) = match outcome {
        Outcome::Completed => (healthy_probe(), tracer("action", "act", "method")),
        Outcome::Deviated => (healthy_probe(), sh("action", "break-it", "touch broken")),
        Outcome::Failed => (
            with(
                with_provider(
                    process("probe", "slow", "sleep", &["30"]),
                    "timeout",
                    json!(0.2),
                ),
                "tolerance",
                json!(0),
            ),
            tracer("action", "act", "method"),
        ),
    };
    let exp = experiment(vec![probe], vec![method], vec![rollback()]);
    let out = run_experiment(&dir, &exp, &["--rollback-strategy", strategy]);
    let (code, status, deviated) = match outcome {
        Outcome::Completed => (0, "completed", false),
        Outcome::Deviated => (1, "completed", true),
        Outcome::Failed => (2, "failed", false),
    };
    assert_eq!(out.code, code, "{outcome:?}: {}", out.all_text());
    assert_eq!(out.status(), status, "{outcome:?}");
    assert_eq!(out.deviated(), deviated, "{outcome:?}");
    assert_eq!(
        out.journal()["extensions"][0]["rollback_strategy"],
        json!(strategy)
    );
    let ran = lines(&dir, "trace").contains(&"rollback".to_string());
    assert_eq!(ran, out.rollback_names() == ["repair"], "{outcome:?}");
    ran
}

#[test]
fn rollback_strategy_always_plays_on_completed_deviated_and_failed() {
    assert!(rollback_ran("always", Outcome::Completed));
    assert!(rollback_ran("always", Outcome::Deviated));
    assert!(rollback_ran("always", Outcome::Failed));
}

#[test]
fn rollback_strategy_default_plays_unless_failed() {
    assert!(rollback_ran("default", Outcome::Completed));
    assert!(rollback_ran("default", Outcome::Deviated));
    assert!(!rollback_ran("default", Outcome::Failed));
}

#[test]
fn rollback_strategy_never_never_plays() {
    assert!(!rollback_ran("never", Outcome::Completed));
    assert!(!rollback_ran("never", Outcome::Deviated));
    assert!(!rollback_ran("never", Outcome::Failed));
}

#[test]
fn rollback_strategy_deviated_plays_only_when_deviated() {
    assert!(!rollback_ran("deviated", Outcome::Completed));
    assert!(rollback_ran("deviated", Outcome::Deviated));
    assert!(!rollback_ran("deviated", Outcome::Failed));
}

// --- where strategies come from ------------------------------------------------------

fn runtime(hypothesis: &str, rollbacks: &str) -> Value {
    json!({"hypothesis": {"strategy": hypothesis}, "rollbacks": {"strategy": rollbacks}})
}

/// A settings file `name` in `dir` whose `runtime` block names both strategies.
fn write_settings(dir: &TempDir, name: &str, hypothesis: &str, rollbacks: &str) -> PathBuf {
    dir.write(
        name,
        &format!("runtime:\n  hypothesis:\n    strategy: {hypothesis}\n  rollbacks:\n    strategy: {rollbacks}\n"),
    )
}

#[test]
fn strategies_from_the_experiment_runtime_block() {
    let dir = TempDir::new("st-rt");
    let mut exp = simple();
    exp["runtime"] = runtime("before-method-only", "never");
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["probe", "method"]);
    let ext = &out.journal()["extensions"][0];
    assert_eq!(ext["hypothesis_strategy"], json!("before-method-only"));
    assert_eq!(ext["rollback_strategy"], json!("never"));
}

#[test]
fn frequency_and_fail_fast_from_the_experiment_runtime_block() {
    let dir = TempDir::new("st-rt-ff");
    let mut exp = experiment(
        vec![healthy_probe()],
        vec![
            sh(
                "action",
                "break-and-wait",
                "touch broken; for i in $(seq 400); do grep -q 'Terminating immediately' stderr.txt && break; sleep 0.05; done; sleep 0.2",
            ),
            tracer("action", "skipped", "skipped"),
        ],
        vec![],
    );
    exp["runtime"] =
        json!({"hypothesis": {"strategy": "continuously", "frequency": 0.05, "fail_fast": true}});
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 1, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(out.deviated());
    assert_eq!(out.run_names(), ["break-and-wait"]);
    assert!(!lines(&dir, "trace").contains(&"skipped".to_string()));
}

#[test]
fn strategies_from_a_settings_file() {
    let dir = TempDir::new("st-settings");
    let settings = write_settings(&dir, "settings.yaml", "after-method-only", "never");
    let out = run_experiment(&dir, &simple(), &["--settings", settings.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["method", "probe"]);
    let ext = &out.journal()["extensions"][0];
    assert_eq!(ext["hypothesis_strategy"], json!("after-method-only"));
    assert_eq!(ext["rollback_strategy"], json!("never"));
}

#[test]
fn strategies_from_a_settings_file_named_in_the_environment() {
    let dir = TempDir::new("st-settings-env");
    let settings = write_settings(&dir, "settings.yaml", "after-method-only", "never");
    let out = run_experiment_env(
        &dir,
        &simple(),
        &[],
        &[("FAULTLINE_SETTINGS", settings.to_str().unwrap())],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["method", "probe"]);
    // The flag wins over the environment.
    std::fs::remove_file(dir.join("trace")).unwrap();
    let other = write_settings(&dir, "other.yaml", "before-method-only", "never");
    let out = run_experiment_env(
        &dir,
        &simple(),
        &["--settings", other.to_str().unwrap()],
        &[("FAULTLINE_SETTINGS", settings.to_str().unwrap())],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["probe", "method"]);
}

#[test]
fn strategies_from_the_default_settings_path() {
    let dir = TempDir::new("st-xdg");
    std::fs::create_dir_all(dir.join("xdg/faultline")).unwrap();
    write_settings(
        &dir,
        "xdg/faultline/settings.yaml",
        "after-method-only",
        "never",
    );
    let out = run_experiment(&dir, &simple(), &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["method", "probe"]);
}

#[test]
fn experiment_runtime_wins_over_settings() {
    let dir = TempDir::new("st-prec-rt");
    let settings = write_settings(&dir, "settings.yaml", "after-method-only", "never");
    let mut exp = simple();
    exp["runtime"] = runtime("before-method-only", "always");
    let out = run_experiment(&dir, &exp, &["--settings", settings.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["probe", "method", "rollback"]);
}

#[test]
fn flags_win_over_experiment_runtime_and_settings() {
    let dir = TempDir::new("st-prec-flag");
    let settings = write_settings(&dir, "settings.yaml", "after-method-only", "always");
    let mut exp = simple();
    exp["runtime"] = runtime("before-method-only", "always");
    let out = run_experiment(
        &dir,
        &exp,
        &[
            "--settings",
            settings.to_str().unwrap(),
            "--hypothesis-strategy",
            "default",
            "--rollback-strategy",
            "never",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["probe", "method", "probe"]);
    let ext = &out.journal()["extensions"][0];
    assert_eq!(ext["hypothesis_strategy"], json!("default"));
    assert_eq!(ext["rollback_strategy"], json!("never"));
}

// --- dry runs -------------------------------------------------------------------------

/// Every activity creates a marker file named after itself.
fn dry_experiment() -> Value {
    experiment(
        vec![with(
            sh("probe", "hypothesis-probe", "touch hypothesis-probe"),
            "tolerance",
            json!(0),
        )],
        vec![
            sh("probe", "method-probe", "touch method-probe"),
            sh("action", "method-action", "touch method-action"),
        ],
        vec![sh("action", "rollback-action", "touch rollback-action")],
    )
}

fn ran(dir: &TempDir) -> Vec<&'static str> {
    [
        "hypothesis-probe",
        "method-probe",
        "method-action",
        "rollback-action",
    ]
    .into_iter()
    .filter(|m| dir.join(m).exists())
    .collect()
}

fn dry(mode: &str) -> (TempDir, Output) {
    let dir = TempDir::new("st-dry");
    let out = run_experiment(&dir, &dry_experiment(), &["--dry", mode]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert_eq!(out.journal()["experiment"]["dry"], json!(mode));
    assert_eq!(out.run_names(), ["method-probe", "method-action"]);
    (dir, out)
}

#[test]
fn dry_probes_executes_actions_only() {
    let (dir, out) = dry("probes");
    assert_eq!(ran(&dir), ["method-action", "rollback-action"]);
    assert_eq!(out.hypothesis_names("before"), ["hypothesis-probe"]);
}

#[test]
fn dry_actions_executes_probes_only() {
    let (dir, _) = dry("actions");
    assert_eq!(ran(&dir), ["hypothesis-probe", "method-probe"]);
}

#[test]
fn dry_activities_executes_nothing() {
    let (dir, out) = dry("activities");
    assert!(ran(&dir).is_empty(), "{:?}", ran(&dir));
    assert_eq!(out.rollback_names(), ["rollback-action"]);
}

#[test]
fn dry_pause_skips_pauses_but_runs_activities() {
    let dir = TempDir::new("st-dry-pause");
    let mut exp = dry_experiment();
    // 60 s before and after: without skipping, the harness' 120 s limit would fail the test.
    exp["method"][1]["pauses"] = json!({"before": 60, "after": 60});
    let out = run_experiment(&dir, &exp, &["--dry", "pause"]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert_eq!(
        ran(&dir),
        [
            "hypothesis-probe",
            "method-probe",
            "method-action",
            "rollback-action"
        ]
    );
}
