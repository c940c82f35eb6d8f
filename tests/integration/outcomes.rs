//! Run outcomes: every row of the Chaos Toolkit's outcome table (status, deviated,
//! rollbacks, exit code), with faultline's documented differences (rollbacks `always`
//! by default, exit codes 0/1/2), and the journal's shape.
//!
//! Activities append to a `trace` file in the run's directory, so what ran (and in
//! which order) is proven by the processes themselves, not only by the journal.

use crate::common::*;
use serde_json::{json, Value};

fn break_it() -> Value {
    sh("action", "break-it", "echo method >> trace; touch broken")
}

/// A method action that breaks the system, then waits (bounded) until faultline
/// printed its fail-fast line, so a continuous check has deviated (and fail-fast
/// stopped the method) before the next activity is considered.
fn break_and_wait_for_fail_fast() -> Value {
    sh(
        "action",
        "break-and-wait",
        "echo method >> trace; touch broken; for i in $(seq 400); do grep -q 'Terminating immediately' stderr.txt && break; sleep 0.05; done; sleep 0.2",
    )
}

#[test]
fn all_fine_completes_not_deviated_exits_0_and_runs_rollbacks() {
    let dir = TempDir::new("out-fine");
    let exp = experiment(
        vec![healthy_probe()],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(!out.deviated());
    let j = out.journal();
    assert_eq!(
        j["steady_states"]["before"]["steady_state_met"],
        json!(true)
    );
    assert_eq!(j["steady_states"]["after"]["steady_state_met"], json!(true));
    assert_eq!(out.run_names(), ["act"]);
    assert_eq!(out.rollback_names(), ["repair"]);
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "method", "probe", "rollback"]
    );
}

#[test]
fn after_hypothesis_tolerance_missed_is_completed_deviated_exit_1_and_rollbacks_run() {
    let dir = TempDir::new("out-after-missed");
    let exp = experiment(vec![healthy_probe()], vec![break_it()], vec![rollback()]);
    // Rollbacks run under the Chaos Toolkit's `default` strategy too.
    let out = run_experiment(&dir, &exp, &["--rollback-strategy", "default"]);
    assert_eq!(out.code, 1, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(out.deviated());
    let after = &out.journal()["steady_states"]["after"];
    assert_eq!(after["steady_state_met"], json!(false));
    assert_eq!(after["probes"][0]["status"], json!("succeeded"));
    assert_eq!(after["probes"][0]["tolerance_met"], json!(false));
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "method", "probe", "rollback"]
    );
    // The console keeps the Chaos Toolkit's words and says what the journal says.
    assert!(
        out.stderr
            .contains("status: deviated (journal: status completed, deviated true)"),
        "{}",
        out.stderr
    );
}

fn before_missed(strategy: &[&str]) {
    let dir = TempDir::new("out-before-missed");
    std::fs::write(dir.join("broken"), "").unwrap();
    let exp = experiment(
        vec![healthy_probe()],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    );
    let out = run_experiment(&dir, &exp, strategy);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(
        !out.deviated(),
        "a missed before-hypothesis is not a deviation"
    );
    let j = out.journal();
    assert_eq!(
        j["steady_states"]["before"]["steady_state_met"],
        json!(false)
    );
    assert_eq!(
        j["steady_states"]["before"]["probes"][0]["tolerance_met"],
        json!(false)
    );
    assert!(j["steady_states"]["after"].is_null());
    assert!(out.run_names().is_empty(), "the method is skipped");
    assert_eq!(out.rollback_names(), ["repair"]);
    assert_eq!(lines(&dir, "trace"), ["probe", "rollback"]);
}

#[test]
fn before_hypothesis_missed_skips_method_not_deviated_exit_0_rollbacks_run_by_default() {
    before_missed(&[]);
}

#[test]
fn before_hypothesis_missed_rollbacks_run_under_ctk_default_strategy() {
    before_missed(&["--rollback-strategy", "default"]);
}

/// A before-hypothesis whose probe errors: returns the output.
fn before_probe_errors(probe: Value, strategy: &[&str]) -> (TempDir, Output) {
    let dir = TempDir::new("out-before-error");
    let exp = experiment(
        vec![probe],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    );
    let out = run_experiment(&dir, &exp, strategy);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "failed");
    assert!(!out.deviated());
    let j = out.journal();
    let entry = &j["steady_states"]["before"]["probes"][0];
    assert_eq!(entry["status"], json!("failed"));
    assert!(
        entry["exception"].as_array().is_some_and(|e| !e.is_empty()),
        "{entry}"
    );
    assert!(j["steady_states"]["after"].is_null());
    assert!(out.run_names().is_empty(), "the method is skipped");
    assert!(!lines(&dir, "trace").contains(&"method".to_string()));
    (dir, out)
}

fn timing_out_probe() -> Value {
    with(
        with_provider(
            process("probe", "slow", "sleep", &["30"]),
            "timeout",
            json!(0.2),
        ),
        "tolerance",
        json!(0),
    )
}

fn refused_probe() -> Value {
    json!({"type": "probe", "name": "refused",
        "provider": {"type": "http", "url": format!("http://127.0.0.1:{}/health", closed_port()), "timeout": 5},
        "tolerance": 200})
}

#[test]
fn before_probe_timeout_fails_run_exit_2_and_ctk_default_skips_rollbacks() {
    let (dir, out) = before_probe_errors(timing_out_probe(), &["--rollback-strategy", "default"]);
    assert!(out.rollback_names().is_empty());
    assert!(lines(&dir, "trace").is_empty());
}

#[test]
fn before_probe_timeout_fails_run_and_faultline_default_still_rolls_back() {
    let (dir, out) = before_probe_errors(timing_out_probe(), &[]);
    assert_eq!(out.rollback_names(), ["repair"]);
    assert_eq!(lines(&dir, "trace"), ["rollback"]);
}

#[test]
fn before_probe_connection_refused_fails_run_and_ctk_default_skips_rollbacks() {
    let (dir, out) = before_probe_errors(refused_probe(), &["--rollback-strategy", "default"]);
    assert!(out.rollback_names().is_empty());
    assert!(lines(&dir, "trace").is_empty());
}

#[test]
fn before_probe_connection_refused_fails_run_and_faultline_default_still_rolls_back() {
    let (dir, out) = before_probe_errors(refused_probe(), &[]);
    assert_eq!(out.rollback_names(), ["repair"]);
    assert_eq!(lines(&dir, "trace"), ["rollback"]);
}

#[test]
fn method_activity_timeout_fails_its_entry_but_method_continues_and_run_completes() {
    let dir = TempDir::new("out-method-timeout");
    let slow = with_provider(
        process("action", "slow", "sleep", &["30"]),
        "timeout",
        json!(0.2),
    );
    let refused = json!({"type": "action", "name": "refused",
        "provider": {"type": "http", "url": format!("http://127.0.0.1:{}/", closed_port())}});
    let exp = experiment(
        vec![healthy_probe()],
        vec![slow, refused, tracer("action", "next", "method")],
        vec![rollback()],
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(!out.deviated());
    let run = out.journal()["run"].as_array().unwrap().clone();
    assert_eq!(out.run_names(), ["slow", "refused", "next"]);
    for failed in &run[..2] {
        assert_eq!(failed["status"], json!("failed"), "{failed}");
        let exc = failed["exception"].as_array().expect("exception list");
        assert!(
            !exc.is_empty() && exc.iter().all(Value::is_string),
            "{failed}"
        );
    }
    assert!(run[0]["exception"][0].as_str().unwrap().contains("timeout"));
    assert_eq!(run[2]["status"], json!("succeeded"));
    assert!(run[2].get("exception").is_none());
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "method", "probe", "rollback"]
    );
}

fn aborted(strategy: &[&str]) {
    let dir = TempDir::new("out-aborted");
    let mut exp = experiment(
        vec![healthy_probe()],
        vec![
            with_provider(
                tracer("action", "bad-timeout", "never"),
                "timeout",
                json!("${t}"),
            ),
            tracer("action", "after-bad", "never-either"),
        ],
        vec![rollback()],
    );
    exp["configuration"] = json!({"t": "abc"});
    let out = run_experiment(&dir, &exp, strategy);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "aborted");
    assert!(!out.deviated());
    let j = out.journal();
    assert_eq!(out.run_names(), ["bad-timeout"], "the method stops");
    assert_eq!(j["run"][0]["status"], json!("failed"));
    assert!(j["steady_states"]["after"].is_null());
    assert_eq!(out.rollback_names(), ["repair"]);
    assert_eq!(lines(&dir, "trace"), ["probe", "rollback"]);
}

#[test]
fn invalid_provider_after_substitution_aborts_exit_2_and_rollbacks_run() {
    aborted(&[]);
}

#[test]
fn aborted_run_rolls_back_under_ctk_default_strategy_too() {
    aborted(&["--rollback-strategy", "default"]);
}

fn fail_fast_experiment() -> Value {
    experiment(
        vec![healthy_probe()],
        vec![
            break_and_wait_for_fail_fast(),
            tracer("action", "skipped", "skipped"),
        ],
        vec![rollback()],
    )
}

#[test]
fn during_method_only_fail_fast_deviation_is_failed_not_deviated_exit_2() {
    let dir = TempDir::new("out-during-ff");
    let out = run_experiment(
        &dir,
        &fail_fast_experiment(),
        &[
            "--hypothesis-strategy",
            "during-method-only",
            "--hypothesis-frequency",
            "0.05",
            "--fail-fast",
            "--rollback-strategy",
            "default",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "failed");
    assert!(!out.deviated());
    let j = out.journal();
    assert!(j["steady_states"]["before"].is_null());
    assert!(j["steady_states"]["after"].is_null());
    let during = j["steady_states"]["during"].as_array().unwrap();
    assert_eq!(
        during.last().unwrap()["steady_state_met"],
        json!(false),
        "{during:?}"
    );
    assert_eq!(out.run_names(), ["break-and-wait"]);
    assert!(
        out.rollback_names().is_empty(),
        "ctk default skips on failed"
    );
    let trace = lines(&dir, "trace");
    assert!(!trace.contains(&"skipped".to_string()), "{trace:?}");
    assert!(!trace.contains(&"rollback".to_string()), "{trace:?}");
}

#[test]
fn during_method_only_fail_fast_still_rolls_back_under_faultline_default() {
    let dir = TempDir::new("out-during-ff-always");
    let out = run_experiment(
        &dir,
        &fail_fast_experiment(),
        &[
            "--hypothesis-strategy",
            "during-method-only",
            "--hypothesis-frequency",
            "0.05",
            "--fail-fast",
        ],
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "failed");
    assert_eq!(out.rollback_names(), ["repair"]);
    assert_eq!(
        lines(&dir, "trace").last().map(String::as_str),
        Some("rollback")
    );
}

#[test]
fn continuously_fail_fast_deviation_is_completed_deviated_exit_1_and_rollbacks_run() {
    let dir = TempDir::new("out-cont-ff");
    let out = run_experiment(
        &dir,
        &fail_fast_experiment(),
        &[
            "--hypothesis-strategy",
            "continuously",
            "--hypothesis-frequency",
            "0.05",
            "--fail-fast",
            "--rollback-strategy",
            "default",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(out.deviated());
    let j = out.journal();
    assert_eq!(
        j["steady_states"]["before"]["steady_state_met"],
        json!(true)
    );
    assert_eq!(
        j["steady_states"]["after"]["steady_state_met"],
        json!(false)
    );
    let during = j["steady_states"]["during"].as_array().unwrap();
    assert!(during.iter().any(|d| d["steady_state_met"] == json!(false)));
    assert_eq!(out.run_names(), ["break-and-wait"]);
    assert_eq!(out.rollback_names(), ["repair"]);
    let trace = lines(&dir, "trace");
    assert!(!trace.contains(&"skipped".to_string()), "{trace:?}");
    assert_eq!(trace.last().map(String::as_str), Some("rollback"));
}

#[test]
fn after_hypothesis_probe_error_is_failed_and_deviated_exit_2() {
    let dir = TempDir::new("out-after-error");
    let probe = with(
        with_provider(
            sh(
                "probe",
                "hangs-when-broken",
                "echo probe >> trace; if test -e broken; then exec sleep 30; fi",
            ),
            "timeout",
            json!(1),
        ),
        "tolerance",
        json!(0),
    );
    let exp = experiment(vec![probe], vec![break_it()], vec![rollback()]);
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "failed");
    assert!(out.deviated());
    let after = &out.journal()["steady_states"]["after"];
    assert_eq!(after["steady_state_met"], json!(false));
    assert_eq!(after["probes"][0]["status"], json!("failed"));
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "method", "probe", "rollback"]
    );
}

#[test]
fn invalid_hypothesis_probe_after_substitution_aborts_with_a_journal_and_rolls_back() {
    // The Chaos Toolkit crashes on an unexpected error in a hypothesis probe.
    let dir = TempDir::new("out-hypo-invalid");
    let probe = with(
        with_provider(
            tracer("probe", "bad-probe", "probe"),
            "timeout",
            json!("${t}"),
        ),
        "tolerance",
        json!(0),
    );
    let mut exp = experiment(
        vec![probe],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    );
    exp["configuration"] = json!({"t": "abc"});
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert_eq!(out.status(), "aborted");
    assert!(!out.deviated());
    let before = &out.journal()["steady_states"]["before"];
    assert_eq!(before["steady_state_met"], json!(false));
    assert_eq!(before["probes"][0]["status"], json!("failed"));
    assert!(out.run_names().is_empty());
    assert_eq!(lines(&dir, "trace"), ["rollback"]);
}

#[test]
fn hypothesis_stops_at_the_first_probe_out_of_tolerance() {
    let dir = TempDir::new("out-first-miss");
    let exp = experiment(
        vec![
            with(tracer("probe", "one", "one"), "tolerance", json!(0)),
            with(tracer("probe", "two", "two"), "tolerance", json!(1)),
            with(tracer("probe", "three", "three"), "tolerance", json!(0)),
        ],
        vec![tracer("action", "act", "method")],
        vec![],
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.hypothesis_names("before"), ["one", "two"]);
    let probes = &out.journal()["steady_states"]["before"]["probes"];
    assert_eq!(probes[0]["tolerance_met"], json!(true));
    assert_eq!(probes[1]["tolerance_met"], json!(false));
    assert_eq!(lines(&dir, "trace"), ["one", "two"]);
}

/// Top-level keys of a pretty-printed JSON object, in file order.
fn top_level_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split_once("\":").map(|(k, _)| k.to_string()))
        .collect()
}

/// Keys of an object in order (serde_json keeps order in this crate's tests).
fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn journal_keys_timestamps_durations_and_extension_follow_ctk() {
    let dir = TempDir::new("out-journal");
    let exp = experiment(
        vec![healthy_probe()],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let text = std::fs::read_to_string(dir.join("journal.json")).unwrap();
    assert_eq!(
        top_level_keys(&text),
        [
            "chaoslib-version",
            "platform",
            "node",
            "experiment",
            "start",
            "status",
            "deviated",
            "steady_states",
            "run",
            "rollbacks",
            "end",
            "duration",
            "extensions"
        ]
    );
    let j = out.journal();
    assert_eq!(keys(&j["steady_states"]), ["before", "after", "during"]);
    assert_eq!(j["steady_states"]["during"], json!([]));
    assert_eq!(
        keys(&j["steady_states"]["before"]),
        ["steady_state_met", "probes"]
    );

    let stamp = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$").unwrap();
    let mut entries: Vec<&Value> = Vec::new();
    for list in [
        &j["run"],
        &j["rollbacks"],
        &j["steady_states"]["before"]["probes"],
        &j["steady_states"]["after"]["probes"],
    ] {
        entries.extend(list.as_array().unwrap());
    }
    assert_eq!(entries.len(), 4);
    for what in [&j["start"], &j["end"]] {
        assert!(stamp.is_match(what.as_str().unwrap()), "{what}");
    }
    assert!(j["duration"].is_f64(), "{}", j["duration"]);
    for e in entries {
        assert!(stamp.is_match(e["start"].as_str().unwrap()), "{e}");
        assert!(stamp.is_match(e["end"].as_str().unwrap()), "{e}");
        assert!(e["duration"].is_f64(), "{e}");
        let k = keys(e);
        let ctk = ["activity", "output", "start", "status", "end", "duration"];
        let in_order: Vec<&str> = k.iter().copied().filter(|k| ctk.contains(k)).collect();
        assert_eq!(in_order, ctk, "{e}");
    }
    assert_eq!(
        j["run"][0]["output"],
        json!({"status": 0, "stdout": "", "stderr": ""})
    );

    let ext = &j["extensions"][0];
    assert_eq!(ext["name"], json!("faultline"));
    let uuid =
        regex::Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            .unwrap();
    assert!(uuid.is_match(ext["run_id"].as_str().unwrap()), "{ext}");
    assert!(
        out.stderr.contains(ext["run_id"].as_str().unwrap()),
        "the console shows the same run id"
    );
}

#[test]
fn a_journal_reads_back_into_a_run_record_that_writes_it_out_unchanged() {
    // What run history and reports will do: read a journal written by a real run
    // (failed and succeeded entries, an exception, hypothesis states, rollbacks, a
    // masked secret) into the typed record, and get the same bytes back.
    let dir = TempDir::new("out-journal-record");
    let slow = with_provider(
        process("action", "slow", "sleep", &["30"]),
        "timeout",
        json!(0.2),
    );
    let mut exp = experiment(
        vec![healthy_probe()],
        vec![slow, tracer("action", "next", "method")],
        vec![rollback()],
    );
    exp["secrets"] = json!({"vault": {"token": "r3cord-s3cret"}});
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let text = std::fs::read_to_string(dir.join("journal.json")).unwrap();
    assert!(!text.contains("r3cord-s3cret"));
    let record = faultline::run::RunRecord::from_json(&text).unwrap();
    assert_eq!(record.to_json().unwrap() + "\n", text);

    // Its accessors say what the file says.
    let j = out.journal();
    assert_eq!(record.status().as_str(), j["status"]);
    assert_eq!(record.deviated(), j["deviated"]);
    assert_eq!(record.run_id(), j["extensions"][0]["run_id"].as_str());
    assert!(record.run_id().is_some());
    assert_eq!(record.title(), j["experiment"]["title"]);
    let names: Vec<&str> = record.activities().map(|e| e.name()).collect();
    assert_eq!(names, ["healthy", "slow", "next", "healthy", "repair"]);
    assert!(record.run[0].failed() && !record.run[1].failed());
    let (start, end) = (record.started_at().unwrap(), record.ended_at().unwrap());
    let elapsed = (end - start).num_microseconds().unwrap() as f64 / 1e6;
    assert!(
        (elapsed - record.duration).abs() < 0.05,
        "{elapsed} against {}",
        record.duration
    );
}

#[test]
fn an_activity_removing_the_journal_s_directory_does_not_lose_the_journal() {
    // An action that removes the journal's directory during the run must not cost
    // the journal nor the trace file: both are written (directories made) at the end.
    let dir = TempDir::new("out-journal-dir-removed");
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exp = experiment(
        vec![healthy_probe()],
        vec![
            tracer("action", "act", "method"),
            sh(
                "action",
                "clean-up",
                &format!("rm -rf {}", out_dir.display()),
            ),
        ],
        vec![rollback()],
    );
    let journal = out_dir.join("journal.json");
    let out = run_experiment_at(&dir, &exp, &journal, &[], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    assert_eq!(j["status"], "completed");
    assert_eq!(names(&j["run"]), ["act", "clean-up"]);
    assert_eq!(names(&j["rollbacks"]), ["repair"]);
    let trace = std::fs::read_to_string(out_dir.join("journal.trace.json")).unwrap();
    assert!(trace.contains("\"resourceSpans\""), "{trace}");
    assert_no_temporaries(&out_dir);
    assert!(!out.stderr.contains("cannot write"), "{}", out.stderr);
}

#[test]
fn an_unwritable_journal_path_falls_back_to_the_temporary_directory_and_loses_nothing() {
    let dir = TempDir::new("out-journal-fallback");
    let exp = experiment(
        vec![healthy_probe()],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    );
    // A journal path under a regular file cannot be created.
    let blocker = dir.write("not-a-directory", "x");
    let journal = blocker.join("journal.json");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = run_experiment_at(
        &dir,
        &exp,
        &journal,
        &[],
        &[("TMPDIR", tmp.to_str().unwrap())],
    );
    // The run itself went fine; the exit code says the journal is not where asked.
    assert_eq!(out.code, 2, "{}", out.all_text());
    let (saved, traces): (Vec<_>, Vec<_>) = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .partition(|p| !p.to_string_lossy().ends_with(".trace.json"));
    assert_eq!(saved.len(), 1, "{saved:?}");
    // The trace file cannot go beside an unusable path either: it is there too.
    assert_eq!(traces.len(), 1, "{traces:?}");
    let name = saved[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("faultline-journal-") && name.ends_with(".json"),
        "{name}"
    );
    assert!(
        out.stderr.contains("cannot write the journal to")
            && out.stderr.contains(saved[0].to_str().unwrap()),
        "{}",
        out.stderr
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&saved[0]).unwrap()).unwrap();
    assert_eq!(j["status"], "completed");
    assert_eq!(j["deviated"], false);
    assert_eq!(names(&j["run"]), ["act"]);
    assert_eq!(names(&j["rollbacks"]), ["repair"]);
    // Nothing half-written is left beside the blocker either.
    assert_no_temporaries(dir.path());
}

fn simple_run() -> Value {
    experiment(
        vec![healthy_probe()],
        vec![tracer("action", "act", "method")],
        vec![rollback()],
    )
}

/// `mkfifo path`.
fn mkfifo(path: &std::path::Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

fn file_type(path: &std::path::Path) -> std::fs::FileType {
    std::fs::symlink_metadata(path).unwrap().file_type()
}

#[test]
fn a_fifo_at_the_journal_path_is_written_in_place_never_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TempDir::new("out-journal-fifo");
    let fifo = dir.join("journal.fifo");
    mkfifo(&fifo);
    // Someone reads the pipe for the whole run (a log shipper, say).
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let out = run_experiment_at(&dir, &simple_run(), &fifo, &[], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let got = reader.join().unwrap();
    let j: Value = serde_json::from_str(&got).expect("the journal came through the pipe");
    assert_eq!(j["status"], "completed");
    assert!(file_type(&fifo).is_fifo(), "the FIFO was replaced");
    // No trace file beside something that is not a regular file.
    assert!(!dir.join("journal.trace.json").exists());
    assert!(out.stderr.contains("Spans go to file"), "{}", out.stderr);
    assert_no_temporaries(dir.path());
}

#[test]
fn a_fifo_nobody_reads_is_not_a_hang_the_journal_goes_to_the_fallback() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TempDir::new("out-journal-fifo-unread");
    let fifo = dir.join("journal.fifo");
    mkfifo(&fifo);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = run_experiment_at(
        &dir,
        &simple_run(),
        &fifo,
        &[],
        &[("TMPDIR", tmp.to_str().unwrap())],
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(out.stderr.contains("nobody is reading"), "{}", out.stderr);
    let saved: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("faultline-journal-"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert!(file_type(&fifo).is_fifo());
    assert_no_temporaries(dir.path());
}

#[test]
fn a_symlink_at_the_journal_path_is_followed_and_its_target_replaced_atomically() {
    let dir = TempDir::new("out-journal-symlink");
    std::fs::create_dir_all(dir.join("runs")).unwrap();
    let target = dir.join("runs/run-1.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.join("latest.json");
    std::os::unix::fs::symlink("runs/run-1.json", &link).unwrap();
    let out = run_experiment_at(&dir, &simple_run(), &link, &[], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        file_type(&link).is_symlink(),
        "the link was replaced by a file"
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    assert_eq!(j["status"], "completed");
    // The trace file is not put beside the link (nor beside its target).
    assert!(!dir.join("latest.trace.json").exists());
    assert!(!dir.join("runs/run-1.trace.json").exists());
    assert_no_temporaries(dir.path());
    assert_no_temporaries(&dir.join("runs"));
    // A dangling link: its target is created.
    let dangling = dir.join("next.json");
    std::os::unix::fs::symlink("runs/run-2.json", &dangling).unwrap();
    let out = run_experiment_at(&dir, &simple_run(), &dangling, &[], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(file_type(&dangling).is_symlink());
    assert!(dir.join("runs/run-2.json").is_file());
}

#[test]
fn dev_null_as_the_journal_path_stays_the_system_s_dev_null() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TempDir::new("out-journal-devnull");
    let null = std::path::Path::new("/dev/null");
    let before = std::fs::metadata(null).unwrap();
    assert!(before.file_type().is_char_device());
    let out = run_experiment_at(&dir, &simple_run(), null, &[], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let after = std::fs::symlink_metadata(null).unwrap();
    assert!(after.file_type().is_char_device(), "/dev/null was replaced");
    assert_eq!(
        std::os::unix::fs::MetadataExt::rdev(&after),
        std::os::unix::fs::MetadataExt::rdev(&before)
    );
    assert!(!std::path::Path::new("/dev/null.trace.json").exists());
    assert!(!std::path::Path::new("/dev/.null.trace.json.tmp").exists());
}

#[test]
fn dev_stdout_as_the_journal_path_prints_the_journal() {
    let dir = TempDir::new("out-journal-stdout");
    let p = dir.experiment(&simple_run());
    let out = std::process::Command::new(bin())
        .args(["run", p.to_str().unwrap(), "--journal-path", "/dev/stdout"])
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env("TMPDIR", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("the journal on stdout");
    assert_eq!(j["status"], "completed");
    assert_eq!(names(&j["run"]), ["act"]);
}

#[test]
fn dev_stdout_redirected_to_a_log_appends_the_journal_and_keeps_the_log() {
    // `faultline run --journal-path /dev/stdout >> runs.log 2>&1`: /dev/stdout leads,
    // through /proc/self/fd/1, to a regular file; it is written to, never replaced
    // (which would lose what the log held and cut off the console lines after it).
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("out-journal-stdout-log");
    let p = dir.experiment(&simple_run());
    let log = dir.write("runs.log", "an earlier run\n");
    let inode = std::fs::metadata(&log).unwrap().ino();
    let append = || std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let mut child = std::process::Command::new(bin())
        .args(["run", p.to_str().unwrap(), "--journal-path", "/dev/stdout"])
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .env("TMPDIR", dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(append())
        .stderr(append())
        .spawn()
        .unwrap();
    let code = wait_with_limit(&mut child, std::time::Duration::from_secs(60));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        std::fs::metadata(&log).unwrap().ino(),
        inode,
        "the log was replaced"
    );
    assert!(text.starts_with("an earlier run\n"), "{text}");
    // The journal is there whole, between the console's lines.
    let start = text.find("\n{\n").expect("the journal in the log") + 1;
    let end = start + text[start..].find("\n}\n").expect("the journal's end") + 2;
    let j: Value = serde_json::from_str(&text[start..end]).unwrap();
    assert_eq!(j["status"], "completed");
    assert!(text.contains("Journal written to /dev/stdout"), "{text}");
    assert_no_temporaries(dir.path());
}
