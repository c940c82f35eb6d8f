//! `faultline run` with several experiments (a catalog): a directory and a glob, the
//! journals in a directory, the exit status of the whole, the JUnit report validated
//! against `tests/fixtures/junit.xsd` with `xmllint`; the kill switch stops a catalog.

use crate::common::*;
use serde_json::json;
use std::process::Command;

fn passing(title: &str) -> serde_json::Value {
    let mut e = experiment(
        vec![healthy_probe()],
        vec![tracer("action", "act", title)],
        vec![],
    );
    e["title"] = json!(title);
    e
}

fn deviating() -> serde_json::Value {
    let probe = with(
        sh(
            "probe",
            "checkout-errors",
            "echo 'errors <5%> & \"rising\"'; test ! -e deviated",
        ),
        "tolerance",
        json!(0),
    );
    let mut e = experiment(
        vec![probe],
        vec![sh(
            "action",
            "act",
            "echo deviating >> trace; touch deviated",
        )],
        vec![],
    );
    e["title"] = json!("checkout <deviates> & more");
    e
}

/// The catalog's files: `cat/` (a passing, a deviating as YAML-named JSON, an invalid)
/// and `extra/*.json` (a passing).
fn write_catalog(dir: &TempDir) {
    std::fs::create_dir_all(dir.join("cat")).unwrap();
    std::fs::create_dir_all(dir.join("extra")).unwrap();
    let w = |p: &str, v: &serde_json::Value| {
        std::fs::write(dir.join(p), serde_json::to_string_pretty(v).unwrap()).unwrap()
    };
    w("cat/a_pass.json", &passing("first passes"));
    w("cat/b_deviate.yaml", &deviating());
    w("cat/c_invalid.json", &json!({"title": "no method"}));
    std::fs::write(dir.join("cat/notes.txt"), "not an experiment").unwrap();
    w("extra/d_pass.json", &passing("last passes"));
}

fn xmllint_valid(path: &std::path::Path) {
    let xsd = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/junit.xsd");
    let out = Command::new("xmllint")
        .args(["--noout", "--schema", xsd])
        .arg(path)
        .output()
        .expect("xmllint (Debian libxml2-utils) is installed");
    assert!(
        out.status.success(),
        "the JUnit report does not validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn journal(dir: &TempDir, name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
}

#[test]
fn a_catalog_runs_each_experiment_with_its_journal_and_one_junit_report() {
    let dir = TempDir::new("catalog");
    write_catalog(&dir);
    let out = faultline(
        &dir,
        &[
            "run",
            "cat",
            "extra/*.json",
            "--journal-path",
            "journals",
            "--junit",
            "report.xml",
            "--report",
            "report.md",
            "--label",
            "team=payments",
        ],
        &[],
    );
    assert_no_panic(&out);
    // The worst of 0, 1, 3 (invalid), 0 is the invalid input (docs/schedule.md).
    assert_eq!(out.code, 3, "{}", out.all_text());
    let a = journal(&dir, "journals/a_pass.json");
    let b = journal(&dir, "journals/b_deviate.json");
    let d = journal(&dir, "journals/d_pass.json");
    assert!(!dir.join("journals/c_invalid.json").exists());
    assert_eq!(
        (a["status"].as_str(), a["deviated"].as_bool()),
        (Some("completed"), Some(false))
    );
    assert_eq!(
        (b["status"].as_str(), b["deviated"].as_bool()),
        (Some("completed"), Some(true))
    );
    assert_eq!(d["status"], "completed");
    // In order, each once.
    assert_eq!(
        lines(&dir, "trace")
            .iter()
            .filter(|l| !l.starts_with("probe"))
            .collect::<Vec<_>>(),
        ["first passes", "deviating", "last passes"]
    );

    let report = dir.join("report.xml");
    xmllint_valid(&report);
    let xml = std::fs::read_to_string(&report).unwrap();
    assert!(
        xml.contains("tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("<testcase name=\"first passes\" classname=\"cat/a_pass.json\""),
        "{xml}"
    );
    // The deviation, escaped, with the probe's evidence.
    assert!(
        xml.contains("<testcase name=\"checkout &lt;deviates&gt; &amp; more\" classname=\"cat/b_deviate.yaml\""),
        "{xml}"
    );
    let failure = &xml[xml.find("<failure").unwrap()..xml.find("</failure>").unwrap()];
    assert!(failure.contains("checkout-errors"), "{failure}");
    assert!(
        failure.contains("errors &lt;5%&gt; &amp; \\&quot;rising\\&quot;"),
        "{failure}"
    );
    assert!(
        xml.contains("<testcase name=\"cat/c_invalid.json\" classname=\"cat/c_invalid.json\""),
        "{xml}"
    );
    assert!(
        xml.contains("<error message=\"refused: the experiment or its input is invalid"),
        "{xml}"
    );
    // system-out: run id, trace id and journal of each run, as the journal says.
    for (j, file) in [
        (&a, "journals/a_pass.json"),
        (&b, "journals/b_deviate.json"),
    ] {
        let ext = j["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "faultline")
            .unwrap();
        let run_id = ext["run_id"].as_str().unwrap();
        assert!(xml.contains(&format!("run id: {run_id}\n")), "{xml}");
        if let Some(trace) = ext["trace_id"].as_str() {
            assert!(xml.contains(&format!("trace id: {trace}\n")), "{xml}");
        }
        assert!(xml.contains(&format!("journal: {file}\n")), "{xml}");
    }

    // --report: the three runs made (the refused one made none), as `faultline report`
    // makes it, with their target labels.
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.starts_with("# Chaos report: 3 runs"), "{md}");
    assert!(
        md.contains("checkout &lt;deviates&gt; & more — ❌ deviated"),
        "{md}"
    );
    assert_eq!(md.matches("| Target | team=payments |").count(), 3, "{md}");
    assert!(md.contains("| Journal | `journals/a_pass.json` |"), "{md}");
    assert!(
        out.stdout
            .contains("Report on 3 run(s) written to report.md")
            || out
                .stderr
                .contains("Report on 3 run(s) written to report.md"),
        "{}",
        out.all_text()
    );
}

#[test]
fn run_report_writes_html_and_checks_its_trace_links_before_running() {
    let dir = TempDir::new("catalog-report");
    write_catalog(&dir);
    // A wrong template: refused before anything runs.
    let bad = faultline(
        &dir,
        &[
            "run",
            "cat/a_pass.json",
            "--report",
            "r.html",
            "--trace-url",
            "http://jaeger/trace",
        ],
        &[],
    );
    assert_eq!(bad.code, 3, "{}", bad.all_text());
    assert!(bad.all_text().contains("--trace-url"), "{}", bad.all_text());
    assert!(lines(&dir, "trace").is_empty(), "nothing ran");
    assert!(!dir.join("r.html").exists());
    // One experiment, HTML, trace links from the template.
    let out = faultline(
        &dir,
        &[
            "run",
            "cat/a_pass.json",
            "--report",
            "r.html",
            "--trace-url",
            "http://jaeger:16686/trace/{trace_id}",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let html = std::fs::read_to_string(dir.join("r.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("Chaos report: first passes"), "{html}");
    let trace = out.journal()["extensions"][0]["trace_id"].as_str().unwrap();
    assert!(
        html.contains(&format!("href=\"http://jaeger:16686/trace/{trace}\"")),
        "{html}"
    );
    // A report that cannot be written: the run's code is kept worse (2), the journal is there.
    let out = faultline(
        &dir,
        &["run", "cat/a_pass.json", "--report", "no-such-dir/r.md"],
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(
        out.all_text()
            .contains("--report no-such-dir/r.md: cannot write the report"),
        "{}",
        out.all_text()
    );
    assert!(dir.join("journal.json").exists());
}

#[test]
fn an_engaged_kill_switch_stops_the_catalog() {
    let dir = TempDir::new("catalog-kill");
    write_catalog(&dir);
    let engaged = faultline(&dir, &["kill", "--reason", "freeze"], &[]);
    assert_eq!(engaged.code, 0, "{}", engaged.all_text());
    let out = faultline(&dir, &["run", "cat", "--junit", "report.xml"], &[]);
    assert_eq!(out.code, 4, "{}", out.all_text());
    assert!(!dir.join("journals/a_pass.json").exists());
    assert!(lines(&dir, "trace").is_empty());
    xmllint_valid(&dir.join("report.xml"));
    let xml = std::fs::read_to_string(dir.join("report.xml")).unwrap();
    assert!(
        xml.contains("tests=\"3\" failures=\"0\" errors=\"1\" skipped=\"2\""),
        "{xml}"
    );
    assert!(
        xml.contains("<error message=\"refused: the kill switch is engaged\""),
        "{xml}"
    );
}

#[test]
fn a_single_experiment_keeps_its_journal_path() {
    let dir = TempDir::new("catalog-one");
    let out = run_experiment(&dir, &passing("alone"), &["--junit", "one.xml"]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    xmllint_valid(&dir.join("one.xml"));
}
