//! Hardening: what an adversarial user tried, each kept as a regression test. Huge
//! durations, `validate` and `run` agreeing, telemetry configuration that must never
//! stop a run, and the malformed-input corpus (`tests/corpus/`).

use crate::common::*;
use serde_json::json;

const HUGE: f64 = 1.8e19;

/// Exit 3, a located problem at `path` with the durations hint, and no panic.
fn assert_rejected_at(out: &Output, path: &str) {
    assert_no_panic(out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let text = out.all_text();
    assert!(
        text.lines()
            .any(|l| l.contains(path) && l.contains("100 years")),
        "no problem at {path} naming the limit:\n{text}"
    );
}

#[test]
fn validate_rejects_durations_that_cannot_be_honoured_with_their_path() {
    let dir = TempDir::new("huge-validate");
    let exp = json!({
        "title": "huge", "description": "d",
        "steady-state-hypothesis": {"title": "s", "probes": [
            {"type": "probe", "name": "p", "tolerance": 0,
             "provider": {"type": "process", "path": "true", "timeout": HUGE}}]},
        "method": [
            {"type": "action", "name": "a", "timeout": HUGE, "pauses": {"before": HUGE, "after": "1e300"},
             "provider": {"type": "process", "path": "true"}},
            {"type": "action", "name": "h", "provider": {"type": "http", "url": "http://127.0.0.1:1/", "timeout": [1, HUGE]}}],
        "runtime": {"hypothesis": {"strategy": "continuously", "frequency": HUGE}}
    });
    let path = dir.experiment(&exp);
    let out = faultline(&dir, &["validate", path.to_str().unwrap()], &[]);
    for p in [
        "$.steady-state-hypothesis.probes[0].provider.timeout",
        "$.method[0].timeout",
        "$.method[0].pauses.before",
        "$.method[0].pauses.after",
        "$.method[1].provider.timeout[1]",
        "$.runtime.hypothesis.frequency",
    ] {
        assert_rejected_at(&out, p);
    }
    // `run` refuses the same experiment before anything runs.
    let out = run_experiment(&dir, &exp, &[]);
    assert_rejected_at(&out, "$.method[0].timeout");
    assert!(out.journal.is_none());
}

#[test]
fn a_duration_made_huge_by_substitution_is_the_activity_s_failure() {
    // Like any definition that is wrong once substituted: that activity fails with the
    // reason, the run is aborted (the method stops), rollbacks still play.
    let dir = TempDir::new("huge-subst");
    let timed = with(sh("action", "bad", "true"), "timeout", json!("${t}"));
    let paused_before = with(
        sh("action", "bad", "true"),
        "pauses",
        json!({"before": "${t}"}),
    );
    let paused_after = with(
        sh("action", "bad", "true"),
        "pauses",
        json!({"after": "${t}"}),
    );
    let provider_timeout = json!({"type": "action", "name": "bad",
        "provider": {"type": "process", "path": "true", "timeout": "${t}"}});
    for (bad, dry_too) in [
        (timed, false),
        (paused_before, true),
        (paused_after, true),
        (provider_timeout, false),
    ] {
        let mut exp = experiment(
            vec![],
            vec![bad.clone(), tracer("action", "after", "after")],
            vec![tracer("action", "rollback", "rolled-back")],
        );
        exp["configuration"] = json!({"t": HUGE});
        for extra in [&[][..], &["--dry", "activities"][..]] {
            let out = run_experiment(&dir, &exp, extra);
            assert_no_panic(&out);
            let j = out.journal();
            if extra.is_empty() || dry_too {
                let e = entry(&j["run"], "bad");
                assert_eq!(e["status"], "failed", "{bad} {extra:?}: {e}");
                assert!(exception_text(e).contains("100 years"), "{e}");
                assert_eq!(out.status(), "aborted", "{bad}");
                assert_eq!(out.run_names(), ["bad"], "{bad}");
            } else {
                assert_eq!(out.status(), "completed", "{bad}");
            }
            assert_eq!(out.rollback_names(), ["rollback"], "{bad} {extra:?}");
        }
    }
}

#[test]
fn a_huge_activity_timeout_flag_is_refused_before_the_run() {
    let dir = TempDir::new("huge-flag");
    let exp = experiment(vec![], vec![sh("action", "a", "true")], vec![]);
    for flag in ["--activity-timeout", "--hypothesis-frequency"] {
        let out = run_experiment(&dir, &exp, &[flag, "1.8e19"]);
        assert_no_panic(&out);
        assert_eq!(out.code, 3, "{}", out.all_text());
        assert!(out.all_text().contains(flag), "{}", out.all_text());
        assert!(out.all_text().contains("100 years"), "{}", out.all_text());
    }
}

#[test]
fn huge_durations_in_the_settings_file_are_located_problems() {
    let dir = TempDir::new("huge-settings");
    let exp = experiment(vec![], vec![sh("action", "a", "true")], vec![]);
    for (text, path) in [
        ("activity_timeout: 1.8e19\n", "$.activity_timeout"),
        ("tracing:\n  timeout: 1.8e19\n", "$.tracing.timeout"),
        ("tracing:\n  shutdown_limit: 1e300\n", "$.tracing.shutdown_limit"),
        ("runtime:\n  hypothesis:\n    frequency: 1.8e19\n", "$.runtime.hypothesis.frequency"),
        (
            "sinks:\n  - {type: jsonl, path: out.jsonl}\n  - {type: http, url: 'http://127.0.0.1:1/', timeout: 1.8e19}\n",
            "100 years",
        ),
    ] {
        let settings = dir.write("settings.yaml", text);
        let out = run_experiment(&dir, &exp, &["--settings", settings.to_str().unwrap()]);
        assert_no_panic(&out);
        assert_eq!(out.code, 3, "{text}: {}", out.all_text());
        assert!(out.all_text().contains(path), "{text}: {}", out.all_text());
        assert!(out.all_text().contains("100 years"), "{text}: {}", out.all_text());
        assert!(out.journal.is_none());
    }
}

#[test]
fn a_huge_safeguard_frequency_is_refused() {
    let dir = TempDir::new("huge-safeguard");
    let mut exp = experiment(vec![], vec![sh("action", "a", "true")], vec![]);
    exp["controls"] = json!([{"name": "safeguards", "provider": {"type": "python",
        "module": "chaosaddons.controls.safeguards", "arguments": {"probes": [
            {"type": "probe", "name": "g", "frequency": HUGE, "tolerance": 0,
             "provider": {"type": "process", "path": "true"}}]}}}]);
    let out = run_experiment(&dir, &exp, &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.all_text().contains("probes[0].frequency"),
        "{}",
        out.all_text()
    );
    assert!(out.all_text().contains("100 years"), "{}", out.all_text());
}

#[test]
fn a_scheme_less_otlp_endpoint_is_used_as_http_with_a_warning_never_stopping_the_run() {
    use crate::otlp::OtlpReceiver;
    use std::time::Duration;
    let exp = experiment(vec![], vec![sh("action", "a", "true")], vec![]);
    for (rx, protocol) in [
        (OtlpReceiver::grpc(), "grpc"),
        (OtlpReceiver::http(), "http/protobuf"),
    ] {
        let dir = TempDir::new("otlp-scheme");
        let bare = rx.endpoint().trim_start_matches("http://").to_string();
        // From the environment, and as the settings' tracing.endpoint.
        let settings = dir.write(
            "settings.yaml",
            &format!("tracing:\n  endpoint: {bare}\n  protocol: {protocol}\n"),
        );
        for (env, extra) in [
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", bare.as_str()),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ],
                vec![],
            ),
            (vec![], vec!["--settings", settings.to_str().unwrap()]),
        ] {
            let before = rx.spans().len();
            let path = dir.experiment(&exp);
            let journal = dir.join("journal.json");
            let mut args = vec![
                "run",
                path.to_str().unwrap(),
                "--journal-path",
                journal.to_str().unwrap(),
            ];
            args.extend(extra.iter().copied());
            let out = faultline(&dir, &args, &env);
            assert_no_panic(&out);
            assert_eq!(out.code, 0, "{protocol} {env:?}: {}", out.all_text());
            assert_eq!(out.status(), "completed");
            assert!(
                out.all_text().contains(&format!("using \"http://{bare}")),
                "no warning naming the endpoint used:\n{}",
                out.all_text()
            );
            // The spans and the log records reached the collector.
            rx.wait_for_spans(before + 3, Duration::from_secs(20));
            assert!(
                !rx.logs().is_empty(),
                "{protocol}: no log records:\n{}",
                out.all_text()
            );
        }
    }
}

#[test]
fn a_broken_otlp_endpoint_from_the_environment_is_a_warning_not_a_stop() {
    let dir = TempDir::new("otlp-broken");
    let exp = experiment(vec![], vec![sh("action", "a", "true")], vec![]);
    for endpoint in ["http://[::1", "ftp://collector:4317", "http://"] {
        let path = dir.experiment(&exp);
        let journal = dir.join("journal.json");
        let out = faultline(
            &dir,
            &[
                "run",
                path.to_str().unwrap(),
                "--journal-path",
                journal.to_str().unwrap(),
            ],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)],
        );
        assert_no_panic(&out);
        assert_eq!(out.code, 0, "{endpoint}: {}", out.all_text());
        assert_eq!(out.status(), "completed");
        assert!(
            out.all_text().contains("OTLP logs are off"),
            "{endpoint}: {}",
            out.all_text()
        );
    }
}

/// `validate`'s and `run`'s verdicts on one experiment: (validate exit, run exit,
/// everything both printed).
fn both(dir: &TempDir, name: &str, text: &str) -> (i32, i32, String) {
    let p = dir.write(name, text);
    let v = faultline(dir, &["validate", p.to_str().unwrap()], &[]);
    assert_no_panic(&v);
    let journal = dir.join("journal.json");
    let r = faultline(
        dir,
        &[
            "run",
            p.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[],
    );
    assert_no_panic(&r);
    (
        v.code,
        r.code,
        format!("{}\n{}", v.all_text(), r.all_text()),
    )
}

#[test]
fn validate_and_run_agree_on_a_literal_url_that_does_not_parse() {
    let dir = TempDir::new("agree-url");
    // ftp: parses as a URL, but the provider only speaks http(s).
    for url in [
        "http://[::1",
        "http://exa mple.com/",
        "not a url",
        "ftp://example.com/",
    ] {
        let exp = json!({"title": "t", "description": "d", "method": [
            {"type": "probe", "name": "p", "provider": {"type": "http", "url": url}}]});
        let (v, r, text) = both(&dir, "e.json", &exp.to_string());
        assert_eq!((v, r), (3, 3), "{url}: {text}");
        assert!(text.contains("error: $.method[0].provider.url"), "{text}");
    }
}

#[test]
fn validate_and_run_agree_on_controls() {
    let dir = TempDir::new("agree-controls");
    let guarded = |probes: serde_json::Value| {
        json!({"title": "t", "description": "d",
            "controls": [
                {"name": "tracing", "provider": {"type": "python", "module": "chaostracing.control"}},
                {"name": "safeguards", "provider": {"type": "python",
                  "module": "chaosaddons.controls.safeguards", "arguments": {"probes": probes}}},
                {"name": "mine", "provider": {"type": "python", "module": "my.own.control"}}],
            "method": [{"type": "action", "name": "a", "provider": {"type": "process", "path": "true"}}]})
    };
    // Served controls: no "not supported" from either; the unknown one is a warning in both.
    let ok = guarded(json!([{"type": "probe", "name": "g", "tolerance": 0,
        "provider": {"type": "process", "path": "true"}}]));
    let (v, r, text) = both(&dir, "ok.json", &ok.to_string());
    assert_eq!((v, r), (0, 0), "{text}");
    assert!(!text.contains("not supported yet"), "{text}");
    assert_eq!(
        text.matches("control 'mine' (my.own.control, $.controls[2]) cannot be loaded")
            .count(),
        2,
        "{text}"
    );
    // A safeguard run refuses is an error for validate too.
    let bad = guarded(json!("not a list"));
    let (v, r, text) = both(&dir, "bad.json", &bad.to_string());
    assert_eq!((v, r), (3, 3), "{text}");
    assert_eq!(
        text.matches("safeguards need a list of probes").count(),
        2,
        "{text}"
    );
}

#[test]
fn duplicate_keys_are_warnings_naming_both_places_in_json_and_yaml_and_the_last_wins() {
    let dir = TempDir::new("dup-keys");
    let json_text = "{\n  \"title\": \"first\",\n  \"description\": \"d\",\n  \"method\": [{\"type\": \"action\", \"name\": \"a\",\n    \"provider\": {\"type\": \"process\", \"path\": \"true\"}}],\n  \"title\": \"second\"\n}\n";
    let yaml_text = "title: first\ndescription: d\nmethod:\n  - type: action\n    name: a\n    provider: {type: process, path: 'true'}\ntitle: second\n";
    for (name, text, first, later) in [
        (
            "e.json",
            json_text,
            "first at line 2 column 3",
            "line 6 column 3",
        ),
        (
            "e.yaml",
            yaml_text,
            "first at line 1 column 1",
            "line 7 column 1",
        ),
    ] {
        let (v, r, all) = both(&dir, name, text);
        assert_eq!((v, r), (0, 0), "{name}: {all}");
        let warnings: Vec<&str> = all
            .lines()
            .filter(|l| l.contains("duplicate key"))
            .collect();
        assert_eq!(warnings.len(), 2, "validate and run each warn once: {all}");
        for w in warnings {
            assert!(w.contains("$.title"), "{w}");
            assert!(w.contains(first), "{w}");
            assert!(w.contains(later), "{w}");
        }
        let journal: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("journal.json")).unwrap())
                .unwrap();
        assert_eq!(journal["experiment"]["title"], "second", "{name}");
    }
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The malformed-input corpus (`tests/corpus/`, one file per way an experiment can be
/// broken): `validate` and `run --dry activities` each exit 3 with an error located
/// by path, line and column, never panic, and write nothing (the command's home,
/// temporary and configuration directories all point into the test's directory).
#[test]
fn the_malformed_input_corpus_is_refused_with_located_errors_and_nothing_written() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let before: Vec<(String, Vec<u8>)> = files_under(&corpus)
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(corpus.join(&f)).unwrap()))
        .collect();
    assert!(before.len() >= 60, "the corpus is there");
    let located = regex::Regex::new(r"\$[^ ]* \(line \d+, column \d+\)").unwrap();
    for (name, content) in &before {
        if name == "README.md" {
            continue;
        }
        let dir = TempDir::new("corpus");
        let home = dir.path().to_str().unwrap().to_string();
        let env = [
            ("HOME", home.as_str()),
            ("TMPDIR", home.as_str()),
            ("XDG_DATA_HOME", home.as_str()),
        ];
        let file = corpus.join(name);
        let file = file.to_str().unwrap();
        let empty = String::from_utf8_lossy(content).trim().is_empty();
        for args in [
            &["validate", file][..],
            &["run", file, "--dry", "activities"][..],
        ] {
            let out = faultline(&dir, args, &env);
            assert_no_panic(&out);
            assert_eq!(out.code, 3, "{name} {args:?}:\n{}", out.all_text());
            let text = out.all_text();
            assert!(
                located.is_match(&text) || (empty && text.contains("$")),
                "{name} {args:?}: no located error:\n{text}"
            );
            assert_eq!(
                files_under(dir.path()),
                ["stderr.txt", "stdout.txt"],
                "{name} {args:?} wrote something"
            );
        }
    }
    for (name, content) in &before {
        assert_eq!(
            &std::fs::read(corpus.join(name)).unwrap(),
            content,
            "{name} changed"
        );
    }
}
