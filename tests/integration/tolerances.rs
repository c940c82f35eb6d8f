//! Tolerances through the binary: every kind in a real hypothesis, against outputs of
//! real processes, the python bridge and a real HTTP server; each met and not met,
//! with the reason visible on the console.
//!
//! The hypothesis runs after the method only, so "met" is exit 0 and "not met" is a
//! deviation (exit 1): the verdict is visible in the exit code, the journal and the
//! console.

use crate::common::*;
use serde_json::{json, Value};

/// A tiny module the python bridge imports from the run's directory (its cwd).
const TOLMOD: &str = r#"
def number(n):
    return n

def at_least_three(value):
    return value >= 3

def exited_zero(value):
    return value["status"] == 0

def explode(value):
    raise RuntimeError("tolerance probe exploded")
"#;

/// Run a one-probe hypothesis (probe named `p`) with `tolerance`, verbose.
fn run_tolerance(dir: &TempDir, probe: Value, tolerance: Value) -> Output {
    dir.write("tolmod.py", TOLMOD);
    let probe = with(with(probe, "name", json!("p")), "tolerance", tolerance);
    let exp = experiment(vec![probe], vec![], vec![]);
    run_experiment(
        dir,
        &exp,
        &["--verbose", "--hypothesis-strategy", "after-method-only"],
    )
}

/// The tolerance is met; the console says so with `reason` in its words.
fn assert_met(probe: Value, tolerance: Value, reason: &str) -> Output {
    let dir = TempDir::new("tol-met");
    let out = run_tolerance(&dir, probe, tolerance.clone());
    assert_eq!(out.code, 0, "{tolerance}: {}", out.all_text());
    assert!(!out.deviated());
    let entry = &out.journal()["steady_states"]["after"]["probes"][0];
    assert_eq!(entry["status"], json!("succeeded"), "{entry}");
    assert_eq!(entry["tolerance_met"], json!(true), "{entry}");
    assert!(
        out.stderr.contains("tolerance of 'p' met") && out.stderr.contains(reason),
        "{tolerance}: expected reason {reason:?} in:\n{}",
        out.stderr
    );
    out
}

/// The tolerance is not met (a deviation); the console gives `reason`.
fn assert_not_met(probe: Value, tolerance: Value, reason: &str) -> Output {
    let dir = TempDir::new("tol-missed");
    let out = run_tolerance(&dir, probe, tolerance.clone());
    assert_eq!(out.code, 1, "{tolerance}: {}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(out.deviated());
    let entry = &out.journal()["steady_states"]["after"]["probes"][0];
    assert_eq!(entry["status"], json!("succeeded"), "{entry}");
    assert_eq!(entry["tolerance_met"], json!(false), "{entry}");
    assert!(
        out.stderr.contains("tolerance of 'p' not met") && out.stderr.contains(reason),
        "{tolerance}: expected reason {reason:?} in:\n{}",
        out.stderr
    );
    out
}

fn py_json(text: &str) -> Value {
    python("probe", "p", "json", "loads", json!({"s": text}))
}

fn py_number(n: Value) -> Value {
    python("probe", "p", "tolmod", "number", json!({"n": n}))
}

fn exit_with(code: i32) -> Value {
    sh("probe", "p", &format!("exit {code}"))
}

fn http_probe(server: &HttpServer, path: &str) -> Value {
    json!({"type": "probe", "name": "p", "provider": {"type": "http", "url": server.url(path)}})
}

#[test]
fn bool_tolerance_met_and_not_met() {
    assert_met(py_json("true"), json!(true), "output equals true");
    assert_not_met(py_json("false"), json!(true), "expected true, got false");
}

#[test]
fn int_tolerance_on_process_status_met_and_not_met() {
    assert_met(exit_with(3), json!(3), "status is 3");
    assert_not_met(exit_with(3), json!(0), "expected status 0, got 3");
}

#[test]
fn int_tolerance_on_a_plain_number_met_and_not_met() {
    assert_met(py_number(json!(7)), json!(7), "output equals 7");
    assert_not_met(py_number(json!(7)), json!(8), "expected 8, got 7");
}

#[test]
fn string_tolerance_met_and_not_met() {
    assert_met(py_json("\"ok\""), json!("ok"), "output equals \"ok\"");
    assert_not_met(
        py_json("\"ok\""),
        json!("ko"),
        "expected \"ko\", got \"ok\"",
    );
}

#[test]
fn list_tolerance_is_membership_of_the_http_status() {
    let server = HttpServer::start(|r| {
        if r.path == "/unavailable" {
            Response::text(503, "down for maintenance")
        } else {
            Response::text(500, "boom")
        }
    });
    assert_met(
        http_probe(&server, "/unavailable"),
        json!([200, 503]),
        "status 503 is in [200,503]",
    );
    // 500 lies between 200 and 503, but with a status a list is membership, not a range.
    assert_not_met(
        http_probe(&server, "/error"),
        json!([200, 503]),
        "expected status in [200,503], got 500",
    );
}

#[test]
fn two_element_list_is_an_inclusive_range_on_a_number() {
    assert_met(py_number(json!(5)), json!([1, 10]), "5 is within [1, 10]");
    assert_met(py_number(json!(10)), json!([1, 10]), "10 is within [1, 10]");
    assert_not_met(
        py_number(json!(5)),
        json!([6, 10]),
        "expected a value within [6, 10], got 5",
    );
}

#[test]
fn longer_list_is_membership_of_a_number() {
    assert_met(py_number(json!(5)), json!([1, 2, 5]), "5 is in [1,2,5]");
    assert_not_met(
        py_number(json!(5)),
        json!([1, 2, 3]),
        "expected one of [1,2,3], got 5",
    );
}

#[test]
fn range_tolerance_with_target_met_and_not_met() {
    let tol = |lo: i32, hi: i32| json!({"type": "range", "range": [lo, hi], "target": "status"});
    assert_met(exit_with(3), tol(1, 5), "3 is within [1, 5]");
    assert_not_met(
        exit_with(3),
        tol(4, 9),
        "expected a value within [4, 9], got 3",
    );
}

#[test]
fn range_tolerance_without_target_on_a_number() {
    let tol = json!({"type": "range", "range": [0.5, 5.5]});
    assert_met(py_number(json!(5)), tol.clone(), "5 is within [0.5, 5.5]");
    assert_not_met(
        py_number(json!(6)),
        tol,
        "expected a value within [0.5, 5.5], got 6",
    );
}

#[test]
fn regex_tolerance_on_stdout_met_and_not_met() {
    let probe = || process("probe", "p", "echo", &["hello world"]);
    let tol = |p: &str| json!({"type": "regex", "pattern": p, "target": "stdout"});
    assert_met(probe(), tol("^hello w.rld"), "matches");
    assert_not_met(probe(), tol("^bye"), "expected a match for \"^bye\"");
}

#[test]
fn regex_dollar_matches_before_a_trailing_newline_like_python() {
    // The Chaos Toolkit uses Python's `re.search`, where `$` also matches just before
    // a final newline: `^hello world$` is met on stdout "hello world\n".
    let probe = process("probe", "p", "echo", &["hello world"]);
    assert_met(
        probe,
        json!({"type": "regex", "pattern": "^hello world$", "target": "stdout"}),
        "matches",
    );
}

#[test]
fn jsonpath_tolerance_on_json_text_in_stdout() {
    let probe = || process("probe", "p", "echo", &["{\"replicas\": 3, \"ready\": 3}"]);
    assert_met(
        probe(),
        json!({"type": "jsonpath", "path": "$.ready", "target": "stdout", "expect": 3}),
        "$.ready found [3], expected [3]",
    );
    assert_not_met(
        probe(),
        json!({"type": "jsonpath", "path": "$.ready", "target": "stdout", "expect": 2}),
        "$.ready found [3], expected [2]",
    );
}

#[test]
fn regex_accepts_python_lookaround_like_the_chaos_toolkit() {
    // `re.search("ok(?!ay)", "okay ok\n")` matches in Python; the `regex` crate has no
    // lookaround, so faultline refuses the experiment as invalid (exit 3).
    assert_met(
        process("probe", "p", "echo", &["okay ok"]),
        json!({"type": "regex", "pattern": "ok(?!ay)", "target": "stdout"}),
        "matches",
    );
}

fn items_server(content_type: &'static str) -> HttpServer {
    HttpServer::start(move |_| {
        Response::json(200, &json!({"items": [{"s": "up"}, {"s": "up"}]}))
            .content_type(content_type)
    })
}

#[test]
fn jsonpath_tolerance_with_count_met_and_not_met() {
    let server = items_server("application/json");
    let tol = |count: u64| json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body", "count": count});
    assert_met(
        http_probe(&server, "/"),
        tol(2),
        "found 2 match(es), expected 2",
    );
    assert_not_met(
        http_probe(&server, "/"),
        tol(3),
        "found 2 match(es), expected 3",
    );
}

#[test]
fn jsonpath_tolerance_with_expect_met_and_not_met() {
    let server = items_server("application/json");
    assert_met(
        http_probe(&server, "/"),
        json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body", "expect": ["up", "up"]}),
        "expected [\"up\",\"up\"]",
    );
    assert_not_met(
        http_probe(&server, "/"),
        json!({"type": "jsonpath", "path": "$.items[0].s", "target": "body", "expect": "down"}),
        "found [\"up\"], expected [\"down\"]",
    );
}

#[test]
fn jsonpath_tolerance_without_count_needs_a_match() {
    let server = items_server("application/json");
    assert_met(
        http_probe(&server, "/"),
        json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body"}),
        "found [\"up\",\"up\"]",
    );
    assert_not_met(
        http_probe(&server, "/"),
        json!({"type": "jsonpath", "path": "$.missing", "target": "body"}),
        "$.missing found nothing",
    );
}

#[test]
fn jsonpath_tolerance_on_a_json_body_with_charset() {
    let server = items_server("application/json; charset=utf-8");
    let out = assert_met(
        http_probe(&server, "/"),
        json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body", "count": 2}),
        "found 2 match(es), expected 2",
    );
    // faultline parses any JSON media type (the Chaos Toolkit keeps this body as text).
    let output = &out.journal()["steady_states"]["after"]["probes"][0]["output"];
    assert_eq!(output["status"], json!(200));
    assert_eq!(output["body"]["items"][0]["s"], json!("up"), "{output}");
    assert_not_met(
        http_probe(&server, "/"),
        json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body", "count": 1}),
        "found 2 match(es), expected 1",
    );
}

fn probe_tolerance(func: &str) -> Value {
    json!({"type": "probe", "name": func,
        "provider": {"type": "python", "module": "tolmod", "func": func}})
}

#[test]
fn probe_tolerance_receives_the_output_as_value() {
    assert_met(
        py_number(json!(5)),
        probe_tolerance("at_least_three"),
        "probe 'at_least_three' returned true",
    );
    assert_not_met(
        py_number(json!(2)),
        probe_tolerance("at_least_three"),
        "probe 'at_least_three' returned false",
    );
}

#[test]
fn probe_tolerance_on_a_process_output() {
    assert_met(
        exit_with(0),
        probe_tolerance("exited_zero"),
        "probe 'exited_zero' returned true",
    );
    assert_not_met(
        exit_with(4),
        probe_tolerance("exited_zero"),
        "probe 'exited_zero' returned false",
    );
}

#[test]
fn probe_tolerance_that_raises_is_not_met_with_the_error() {
    assert_not_met(
        py_number(json!(5)),
        probe_tolerance("explode"),
        "tolerance probe exploded",
    );
}

#[test]
fn range_on_an_object_output_without_target_is_not_met_with_a_reason() {
    // The Chaos Toolkit crashes here (no journal); faultline completes and explains.
    let out = assert_not_met(
        process("probe", "p", "echo", &["3"]),
        json!({"type": "range", "range": [0, 5]}),
        "set \"target\" to the key holding the number",
    );
    assert!(out.journal.is_some());
}

#[test]
fn regex_on_an_object_output_without_target_is_not_met_with_a_reason() {
    let out = assert_not_met(
        process("probe", "p", "echo", &["hello"]),
        json!({"type": "regex", "pattern": "hello"}),
        "set \"target\" to the key holding the text",
    );
    assert!(out.journal.is_some());
}

#[test]
fn range_on_an_object_without_target_before_the_method_completes_not_deviated() {
    let dir = TempDir::new("tol-crash-before");
    let probe = with(
        process("probe", "p", "echo", &["3"]),
        "tolerance",
        json!({"type": "range", "range": [0, 5]}),
    );
    let exp = experiment(
        vec![probe],
        vec![tracer("action", "act", "method")],
        vec![tracer("action", "rb", "rollback")],
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(!out.deviated());
    assert!(out.stderr.contains("set \"target\""), "{}", out.stderr);
    assert_eq!(lines(&dir, "trace"), ["rollback"]);
}
