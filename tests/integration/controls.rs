//! Controls: declared in the experiment (top, hypothesis, activity), in the settings
//! file and with --control-file; the book's human-intervention controls answered on
//! standard input; unknown python controls are warnings, never failures.

use crate::common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn control(module: &str) -> Value {
    json!({"name": "ctl", "provider": {"type": "python", "module": module}})
}

fn base(controls: Option<Value>) -> Value {
    let mut e = json!({
        "title": "controls", "description": "d",
        "steady-state-hypothesis": {"title": "h", "probes": [
            with(tracer("probe", "check", "probe"), "tolerance", json!(0))]},
        "method": [tracer("action", "first", "first"), tracer("action", "second", "second")],
        "rollbacks": [tracer("action", "undo", "rollback")]
    });
    if let Some(c) = controls {
        e["controls"] = c;
    }
    e
}

/// Run with `answers` on standard input.
fn run_with_stdin(dir: &TempDir, exp: &Value, extra: &[&str], answers: &str) -> Output {
    let path = dir.experiment(exp);
    let journal = dir.join("journal.json");
    let mut cmd = Command::new(bin());
    cmd.args([
        "run",
        path.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ])
    .args(extra)
    .current_dir(dir.path())
    .env("NO_COLOR", "1")
    .env("XDG_CONFIG_HOME", dir.join("xdg"))
    .env("XDG_DATA_HOME", dir.join("xdg-data"))
    .env("XDG_STATE_HOME", dir.join("xdg-state"))
    .stdin(Stdio::piped())
    .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
    .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answers.as_bytes())
        .unwrap();
    let code = wait_with_limit(&mut child, Duration::from_secs(120));
    collect(dir, code, &journal)
}

#[test]
fn confirm_control_yes_everywhere_completes() {
    let dir = TempDir::new("ctl-yes");
    let out = run_with_stdin(
        &dir,
        &base(Some(json!([control("chaoshci.aborthci")]))),
        &[],
        "y\ny\ny\ny\n",
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    // Asked before the probe, both actions and the probe again; never before a rollback.
    assert_eq!(
        out.stderr
            .matches("Do you want to continue the experiment? [y/N]")
            .count(),
        4,
        "{}",
        out.stderr
    );
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "first", "second", "probe", "rollback"]
    );
}

#[test]
fn confirm_control_no_interrupts_and_rollbacks_still_run() {
    let dir = TempDir::new("ctl-no");
    // yes to the hypothesis probe and the first action, no to the second.
    let out = run_with_stdin(
        &dir,
        &base(Some(json!([control("chaoshci.aborthci")]))),
        &[],
        "y\ny\nn\n",
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert_eq!(
        out.run_names(),
        ["first"],
        "the refused activity has no entry"
    );
    assert_eq!(out.rollback_names(), ["undo"]);
    assert_eq!(lines(&dir, "trace"), ["probe", "first", "rollback"]);
    assert!(out.stderr.contains("manually aborted"), "{}", out.stderr);
    let ext = &out.journal()["extensions"][0];
    assert!(
        ext["interrupted_by"]
            .as_str()
            .unwrap()
            .contains("manually aborted"),
        "{ext}"
    );
}

#[test]
fn confirm_with_closed_stdin_interrupts_before_anything_runs() {
    let dir = TempDir::new("ctl-eof");
    let out = run_with_stdin(
        &dir,
        &base(Some(json!([control("chaoshci.aborthci")]))),
        &[],
        "",
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");
    assert_eq!(
        lines(&dir, "trace"),
        ["rollback"],
        "nothing but the rollback ran"
    );
    assert!(out.stderr.contains("no answer"), "{}", out.stderr);
}

#[test]
fn pause_control_declared_on_one_activity_pauses_only_there() {
    let dir = TempDir::new("ctl-act");
    let mut e = base(None);
    e["method"][1]["controls"] = json!([control("chaoshci.simplehci")]);
    let out = run_with_stdin(&dir, &e, &[], "\n");
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        out.stderr.matches("Press Enter to continue").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("About to run action 'second'"),
        "{}",
        out.stderr
    );
}

#[test]
fn hypothesis_level_control_covers_only_hypothesis_probes() {
    let dir = TempDir::new("ctl-hypo");
    let mut e = base(None);
    e["steady-state-hypothesis"]["controls"] = json!([control("chaoshci.simplehci")]);
    let out = run_with_stdin(&dir, &e, &[], "\n\n");
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        out.stderr.matches("Press Enter to continue").count(),
        2,
        "{}",
        out.stderr
    );
}

#[test]
fn top_level_control_with_automatic_false_does_not_reach_activities() {
    let dir = TempDir::new("ctl-auto");
    let mut c = control("chaoshci.simplehci");
    c["automatic"] = json!(false);
    let out = run_with_stdin(&dir, &base(Some(json!([c]))), &[], "");
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        out.stderr.matches("Press Enter to continue").count(),
        0,
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_python_control_is_a_warning_naming_it() {
    let dir = TempDir::new("ctl-unknown");
    let out = run_with_stdin(
        &dir,
        &base(Some(json!([control("mycompany.chaos.controls")]))),
        &[],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.stderr.contains("mycompany.chaos.controls"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("goes on without it"), "{}", out.stderr);
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "first", "second", "probe", "rollback"]
    );
}

#[test]
fn tracing_control_declarations_are_served_without_a_warning() {
    let dir = TempDir::new("ctl-tracing");
    let out = run_with_stdin(
        &dir,
        &base(Some(json!([
            control("chaostracing.oltp"),
            control("chaostracing.control")
        ]))),
        &[],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(!out.stderr.contains("goes on without it"), "{}", out.stderr);
}

#[test]
fn settings_file_and_control_file_declare_global_controls() {
    let dir = TempDir::new("ctl-global");
    let settings = dir.write(
        "settings.yaml",
        "controls:\n  ask:\n    provider:\n      type: python\n      module: chaoshci.aborthci\n",
    );
    let out = run_with_stdin(
        &dir,
        &base(None),
        &["--settings", settings.to_str().unwrap()],
        "y\nn\n",
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "interrupted");

    let dir = TempDir::new("ctl-file");
    let file = dir.write(
        "controls.json",
        r#"[{"name": "pause", "provider": {"type": "python", "module": "chaoshci.simplehci"}}]"#,
    );
    let out = run_with_stdin(
        &dir,
        &base(None),
        &["--control-file", file.to_str().unwrap()],
        "",
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        out.stderr.matches("Press Enter to continue").count(),
        5,
        "{}",
        out.stderr
    );
}

#[test]
fn a_broken_control_file_is_invalid_input() {
    let dir = TempDir::new("ctl-badfile");
    let file = dir.write("controls.json", "{\"x\": {\"nope\": 1}}");
    let out = run_with_stdin(
        &dir,
        &base(None),
        &["--control-file", file.to_str().unwrap()],
        "",
    );
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stderr.contains("provider"), "{}", out.stderr);
    assert!(out.journal.is_none());
}
