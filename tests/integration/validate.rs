//! Input: `faultline validate` and `faultline run` on good, bad and broken experiments
//! (files and http URLs, JSON and YAML). Every problem is reported at once with its JSON
//! path, its line and column, and a hint; invalid input exits 3; nothing panics.

use crate::common::*;
use serde_json::{json, Value};

fn validate(dir: &TempDir, file: &str, extra: &[&str]) -> Output {
    let mut args = vec!["validate", file];
    args.extend_from_slice(extra);
    let out = faultline(dir, &args, &[]);
    assert_no_panic(&out);
    out
}

fn validate_text(dir: &TempDir, name: &str, text: &str, extra: &[&str]) -> Output {
    let p = dir.write(name, text);
    validate(dir, p.to_str().unwrap(), extra)
}

fn validate_json(dir: &TempDir, doc: &Value) -> Output {
    let p = dir.experiment(doc);
    validate(dir, p.to_str().unwrap(), &[])
}

/// 1-based (line, column) of the first occurrence of `needle` in `text`.
fn loc(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the document"));
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, col)
}

/// The `error: <path>...` line for `path`, with the hint line that follows it, if any.
fn problem<'a>(out: &'a Output, path: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = out.stdout.lines().collect();
    let prefix = format!("error: {path} ");
    let prefix_colon = format!("error: {path}:");
    let i = lines
        .iter()
        .position(|l| l.starts_with(&prefix) || l.starts_with(&prefix_colon))
        .unwrap_or_else(|| panic!("no problem reported at {path}:\n{}", out.stdout));
    let hint = lines
        .get(i + 1)
        .and_then(|l| l.trim_start().strip_prefix("hint: "));
    (lines[i], hint)
}

fn assert_invalid(out: &Output) {
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.stdout.contains("the experiment is invalid"),
        "{}",
        out.stdout
    );
}

fn valid_experiment() -> Value {
    json!({
        "title": "valid",
        "description": "a valid experiment",
        "tags": ["a", "b"],
        "configuration": {"base": "http://127.0.0.1:1", "limit": 3},
        "secrets": {"api": {"token": "x"}},
        "steady-state-hypothesis": {"title": "up", "probes": [
            {"type": "probe", "name": "up", "tolerance": 0,
             "provider": {"type": "process", "path": "true"}},
            {"type": "probe", "name": "range", "tolerance": {"type": "range", "range": [0, 10], "target": "status"},
             "provider": {"type": "process", "path": "true"}}
        ]},
        "method": [
            {"type": "action", "name": "call", "pauses": {"after": 0},
             "provider": {"type": "http", "url": "${base}/x", "method": "POST", "timeout": [1, 2],
                          "headers": {"Authorization": "Bearer ${token}"}, "secrets": ["api"]}},
            {"ref": "up"}
        ],
        "rollbacks": [{"type": "action", "name": "fix",
                       "provider": {"type": "python", "module": "os.path", "func": "exists", "arguments": {"path": "/"}}}]
    })
}

/// Many problems at once, written by hand so each one's position is known.
const MANY_PROBLEMS: &str = r#"{
  "description": 3,
  "tags": "x",
  "steady-state-hypothesis": {
    "title": "h",
    "probes": [
      {"type": "probe", "name": "p1", "provider": {"type": "process", "path": "true"}, "tolerance": {"type": "range", "range": [5, 1]}},
      {"type": "probe", "name": "p2", "provider": {"type": "process", "path": "true"}, "tolerance": {"type": "regex", "pattern": "(unclosed"}}
    ]
  },
  "method": [
    {"type": "action", "name": "a1", "provider": {"type": "ftp"}},
    {"type": "probe", "provider": {"type": "http"}},
    {"type": "action", "name": "a3", "provider": {"type": "http", "url": "http://x", "timeout": "soon", "verify_tls": "yes"}},
    {"ref": "nope"}
  ]
}
"#;

#[test]
fn validate_valid_file_exits_0() {
    let dir = TempDir::new("val-ok");
    let out = validate_json(&dir, &valid_experiment());
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.stdout.contains("the experiment is valid"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("error:"), "{}", out.stdout);
}

/// A problem `validate` must report: path, (line, column), message and hint fragments.
type Expected<'a> = (&'a str, (usize, usize), &'a str, Option<&'a str>);

#[test]
fn validate_reports_every_problem_with_path_location_and_hint() {
    let dir = TempDir::new("val-many");
    let out = validate_text(&dir, "many.json", MANY_PROBLEMS, &[]);
    assert_invalid(&out);
    let t = MANY_PROBLEMS;
    // (path, where the location points, message fragment, hint fragment)
    let expected: &[Expected] = &[
        ("$.title", (1, 1), "missing required key 'title'", None),
        (
            "$.description",
            loc(t, "\"description\""),
            "expected a string, found a number",
            None,
        ),
        (
            "$.tags",
            loc(t, "\"tags\""),
            "expected a list of strings",
            None,
        ),
        (
            "$.steady-state-hypothesis.probes[0].tolerance.range",
            loc(t, "\"range\": [5, 1]"),
            "low bound 5 is above its high bound 1",
            Some("[low, high]"),
        ),
        (
            "$.steady-state-hypothesis.probes[1].tolerance.pattern",
            loc(t, "\"pattern\""),
            "invalid regular expression",
            None,
        ),
        (
            "$.method[0].provider.type",
            loc(t, "\"type\": \"ftp\""),
            "unknown provider type 'ftp'",
            Some("\"http\", \"process\", \"python\" or \"prometheus\""),
        ),
        (
            "$.method[1].name",
            loc(t, "{\"type\": \"probe\", \"provider\""),
            "missing required key 'name'",
            None,
        ),
        (
            "$.method[1].provider.url",
            loc(t, "\"provider\": {\"type\": \"http\"}}"),
            "missing required key 'url'",
            None,
        ),
        (
            "$.method[2].provider.timeout",
            loc(t, "\"timeout\": \"soon\""),
            "expected a number of seconds",
            None,
        ),
        (
            "$.method[2].provider.verify_tls",
            loc(t, "\"verify_tls\""),
            "expected true or false",
            None,
        ),
        (
            "$.method[3].ref",
            loc(t, "\"ref\""),
            "no activity named 'nope'",
            Some(""),
        ),
    ];
    for (path, (line, col), msg, hint) in expected {
        let (l, h) = problem(&out, path);
        assert!(
            l.contains(&format!("(line {line}, column {col})")),
            "{path}: expected line {line}, column {col} in {l:?}"
        );
        assert!(l.contains(msg), "{path}: expected {msg:?} in {l:?}");
        if let Some(hint) = hint {
            let h = h.unwrap_or_else(|| panic!("{path}: no hint:\n{}", out.stdout));
            assert!(h.contains(hint), "{path}: hint {h:?}");
        }
    }
    assert!(
        out.stdout.contains(&format!(
            "the experiment is invalid: {} problem(s)",
            expected.len()
        )),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_every_problem_has_a_hint() {
    let dir = TempDir::new("val-hints");
    let p = dir.write("many.json", MANY_PROBLEMS);
    let out = validate(&dir, p.to_str().unwrap(), &["--log-format", "json"]);
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let missing: Vec<&str> = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["hint"].as_str().is_none_or(str::is_empty))
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(missing.is_empty(), "problems without a hint: {missing:?}");
}

#[test]
fn validate_text_output_has_one_error_line_per_problem() {
    let dir = TempDir::new("val-lines");
    let out = validate_text(&dir, "many.json", MANY_PROBLEMS, &[]);
    let errors = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .count();
    assert!(
        out.stdout
            .contains(&format!("the experiment is invalid: {errors} problem(s)")),
        "{errors} error lines:\n{}",
        out.stdout
    );
}

#[test]
fn validate_malformed_json_gives_line_and_column() {
    let dir = TempDir::new("val-bad-json");
    let out = validate_text(
        &dir,
        "broken.json",
        "{\n  \"title\": \"t\",\n  \"description\": \"d\"\n  \"method\": []\n}\n",
        &[],
    );
    assert_invalid(&out);
    let (l, hint) = problem(&out, "$");
    assert!(l.contains("invalid JSON"), "{l}");
    assert!(l.contains("(line 4, column 3)"), "{l}");
    assert!(hint.is_some_and(|h| h.contains("comma")), "{}", out.stdout);
}

#[test]
fn validate_malformed_yaml_is_reported_with_its_line() {
    let dir = TempDir::new("val-bad-yaml");
    let out = validate_text(
        &dir,
        "broken.yaml",
        "title: t\ndescription: d\nmethod: [unclosed\n  - a: b\n",
        &[],
    );
    assert_invalid(&out);
    let (l, hint) = problem(&out, "$");
    assert!(l.contains("invalid YAML"), "{l}");
    assert!(l.contains("(line 4, column"), "{l}");
    // The message may quote the offending lines before its hint.
    let _ = hint;
    assert!(out.stdout.contains("hint: "), "{}", out.stdout);
}

#[test]
fn validate_yaml_experiment() {
    let dir = TempDir::new("val-yaml");
    let ok = "title: yaml\ndescription: d\nsteady-state-hypothesis:\n  title: h\n  probes:\n    - type: probe\n      name: up\n      tolerance: 0\n      provider:\n        type: process\n        path: \"true\"\nmethod:\n  - ref: up\n";
    let out = validate_text(&dir, "exp.yaml", ok, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    // A problem in YAML is located in the YAML text.
    let bad = "title: yaml\ndescription: d\nmethod:\n  - type: action\n    name: a\n    provider:\n      type: ftp\n";
    let out = validate_text(&dir, "bad.yml", bad, &[]);
    assert_invalid(&out);
    let (l, _) = problem(&out, "$.method[0].provider.type");
    assert!(l.contains("(line 7, column 7)"), "{l}");
    assert!(l.contains("unknown provider type 'ftp'"), "{l}");
}

#[test]
fn validate_unknown_provider_type() {
    let dir = TempDir::new("val-provider");
    let mut e = valid_experiment();
    e["method"][0]["provider"]["type"] = json!("grpc");
    e["rollbacks"][0]["provider"] = json!({"path": "true"});
    let out = validate_json(&dir, &e);
    assert_invalid(&out);
    let (l, hint) = problem(&out, "$.method[0].provider.type");
    assert!(l.contains("unknown provider type 'grpc'"), "{l}");
    assert!(hint.unwrap().contains("http"), "{}", out.stdout);
    let (l, hint) = problem(&out, "$.rollbacks[0].provider.type");
    assert!(l.contains("missing required key 'type'"), "{l}");
    assert!(hint.is_some());
}

#[test]
fn validate_missing_required_keys() {
    let dir = TempDir::new("val-missing");
    let e = json!({
        "steady-state-hypothesis": {"probes": [
            {"type": "probe", "name": "no-tolerance", "provider": {"type": "process", "path": "true"}}]},
        "rollbacks": [
            {"name": "no-type", "provider": {"type": "process"}},
            {"type": "action", "name": "no-provider"},
            {"type": "action", "name": "py", "provider": {"type": "python", "module": "os"}}
        ]
    });
    let out = validate_json(&dir, &e);
    assert_invalid(&out);
    for (path, msg) in [
        ("$.title", "missing required key 'title'"),
        ("$.description", "missing required key 'description'"),
        ("$.method", "missing required key 'method'"),
        (
            "$.steady-state-hypothesis.title",
            "missing required key 'title'",
        ),
        ("$.steady-state-hypothesis.probes[0]", "has no tolerance"),
        ("$.rollbacks[0].type", "missing required key 'type'"),
        (
            "$.rollbacks[0].provider.path",
            "missing required key 'path'",
        ),
        ("$.rollbacks[1].provider", "missing required key 'provider'"),
        (
            "$.rollbacks[2].provider.func",
            "missing required key 'func'",
        ),
    ] {
        let (l, _) = problem(&out, path);
        assert!(l.contains(msg), "{path}: {l}");
        assert!(l.contains("(line "), "{path}: no location in {l}");
    }
    assert!(problem(&out, "$.method").1.is_some(), "hint for method");
}

#[test]
fn validate_bad_tolerances() {
    let dir = TempDir::new("val-tolerance");
    let probe = |name: &str, tol: Value| {
        json!({"type": "probe", "name": name, "tolerance": tol,
               "provider": {"type": "process", "path": "true"}})
    };
    let e = json!({"title": "t", "description": "d", "method": [],
    "steady-state-hypothesis": {"title": "h", "probes": [
        probe("reversed", json!({"type": "range", "range": [10, 1]})),
        probe("regex", json!({"type": "regex", "pattern": "([a-z"})),
        probe("jsonpath", json!({"type": "jsonpath", "path": "$[?"})),
        probe("unknown", json!({"type": "fuzzy"})),
        probe("empty", json!([])),
        probe("range-type", json!({"type": "range", "range": "1-10"})),
    ]}});
    let out = validate_json(&dir, &e);
    assert_invalid(&out);
    let base = "$.steady-state-hypothesis.probes";
    let (l, h) = problem(&out, &format!("{base}[0].tolerance.range"));
    assert!(l.contains("low bound 10 is above its high bound 1"), "{l}");
    assert!(h.is_some());
    let (l, _) = problem(&out, &format!("{base}[1].tolerance.pattern"));
    assert!(l.contains("invalid regular expression"), "{l}");
    let (l, _) = problem(&out, &format!("{base}[2].tolerance.path"));
    assert!(l.contains("invalid JSONPath"), "{l}");
    let (l, h) = problem(&out, &format!("{base}[3].tolerance.type"));
    assert!(l.contains("unknown tolerance type 'fuzzy'"), "{l}");
    assert!(h.unwrap().contains("range"));
    let (l, _) = problem(&out, &format!("{base}[4].tolerance"));
    assert!(l.contains("empty list"), "{l}");
    let (l, _) = problem(&out, &format!("{base}[5].tolerance.range"));
    assert!(l.contains("[low, high]"), "{l}");
    assert!(out.stdout.contains("6 problem(s)"), "{}", out.stdout);
}

#[test]
fn validate_unresolvable_ref_lists_defined_names() {
    let dir = TempDir::new("val-ref");
    let mut e = valid_experiment();
    e["method"][1] = json!({"ref": "upp"});
    e["rollbacks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"ref": 42}));
    let out = validate_json(&dir, &e);
    assert_invalid(&out);
    let (l, hint) = problem(&out, "$.method[1].ref");
    assert!(l.contains("no activity named 'upp'"), "{l}");
    let hint = hint.expect("a hint");
    for name in ["call", "fix", "range", "up"] {
        assert!(hint.contains(name), "{name} not in hint {hint:?}");
    }
    let (l, _) = problem(&out, "$.rollbacks[1].ref");
    assert!(l.contains("expected the name of an activity"), "{l}");
}

#[test]
fn validate_wrong_value_types() {
    let dir = TempDir::new("val-types");
    let e = json!({
        "title": ["not", "a", "string"],
        "description": "d",
        "tags": [1],
        "configuration": ["a"],
        "secrets": {"api": "flat"},
        "runtime": {"rollbacks": {"strategy": "sometimes"}, "hypothesis": {"frequency": -1}},
        "method": [
            {"type": "action", "name": "a", "background": "yes", "pauses": {"before": "soon", "during": 1},
             "provider": {"type": "process", "path": "true", "arguments": 5, "timeout": -1, "env": ["X=1"]}},
            {"type": "action", "name": "b",
             "provider": {"type": "http", "url": "http://x", "headers": ["a"], "max_retries": -1,
                          "expected_status": "ok", "method": "FETCH", "secrets": "api", "timeout": [1, 2, 3]}},
            {"type": "task", "name": "c", "provider": {"type": "python", "module": "m", "func": "f", "arguments": [1]}},
            "not an activity"
        ],
        "rollbacks": {"not": "a list"}
    });
    let out = validate_json(&dir, &e);
    assert_invalid(&out);
    for (path, msg) in [
        ("$.title", "expected a string, found a list"),
        ("$.tags[0]", "expected a string"),
        ("$.configuration", "expected an object"),
        ("$.secrets.api", "expected an object of secrets"),
        ("$.runtime.rollbacks.strategy", "sometimes"),
        ("$.runtime.hypothesis.frequency", "positive number"),
        ("$.method[0].background", "expected true or false"),
        ("$.method[0].pauses.before", "number of seconds"),
        ("$.method[0].pauses.during", "unknown pause"),
        (
            "$.method[0].provider.arguments",
            "a list of arguments or a string",
        ),
        ("$.method[0].provider.timeout", "non-negative"),
        ("$.method[0].provider.env", "an object"),
        ("$.method[1].provider.headers", "an object"),
        ("$.method[1].provider.max_retries", "non-negative integer"),
        ("$.method[1].provider.expected_status", "status code"),
        ("$.method[1].provider.method", "unknown HTTP method 'FETCH'"),
        ("$.method[1].provider.timeout", "2 elements"),
        ("$.method[2].type", "unknown activity type"),
        ("$.method[2].provider.arguments", "an object"),
        ("$.method[3]", "expected an activity object"),
        ("$.rollbacks", "expected a list of activities"),
    ] {
        let (l, _) = problem(&out, path);
        assert!(l.contains(msg), "{path}: expected {msg:?} in {l:?}");
        assert!(l.contains("(line "), "{path}: no location in {l}");
    }
    // A secrets scope given as a single string is accepted (CTK allows it).
    assert!(
        !out.stdout.contains("$.method[1].provider.secrets"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_log_format_json_lists_problems() {
    let dir = TempDir::new("val-json-out");
    let p = dir.write("many.json", MANY_PROBLEMS);
    let out = validate(&dir, p.to_str().unwrap(), &["--log-format", "json"]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let doc: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", out.stdout));
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["source"], p.to_str().unwrap());
    let problems = doc["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 11, "{problems:#?}");
    for p in problems {
        assert!(p["path"].as_str().unwrap().starts_with('$'), "{p}");
        assert!(!p["message"].as_str().unwrap().is_empty(), "{p}");
        assert!(p["line"].as_u64().unwrap() >= 1, "{p}");
        assert!(p["column"].as_u64().unwrap() >= 1, "{p}");
    }
    let ftp = problems
        .iter()
        .find(|p| p["path"] == "$.method[0].provider.type")
        .unwrap();
    let (line, col) = loc(MANY_PROBLEMS, "\"type\": \"ftp\"");
    assert_eq!(ftp["line"], line);
    assert_eq!(ftp["column"], col);
    assert!(ftp["hint"].as_str().unwrap().contains("process"));
    // A valid experiment in JSON form.
    let p = dir.experiment(&valid_experiment());
    let out = validate(&dir, p.to_str().unwrap(), &["--log-format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let doc: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["problems"], json!([]));
}

#[test]
fn validate_warns_about_this_machine_without_failing() {
    let dir = TempDir::new("val-warn");
    let e = json!({"title": "t", "description": "d",
        "configuration": {"endpoint": {"type": "env", "key": "FAULTLINE_IT_SURELY_UNSET_VAR"}},
        "method": [{"type": "action", "name": "a",
                    "provider": {"type": "process", "path": "faultline-it-no-such-tool"}}]});
    let out = validate_json(&dir, &e);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(out.stdout.contains("warning:"), "{}", out.stdout);
    assert!(
        out.stdout.contains("FAULTLINE_IT_SURELY_UNSET_VAR"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("faultline-it-no-such-tool"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_missing_file() {
    let dir = TempDir::new("val-no-file");
    let missing = dir.join("nowhere.json");
    let out = validate(&dir, missing.to_str().unwrap(), &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stdout.contains("nowhere.json"), "{}", out.stdout);
    assert!(out.stdout.contains("cannot read"), "{}", out.stdout);
    // `run` too: exit 3, a message naming the file, no journal.
    let journal = dir.join("journal.json");
    let out = faultline(
        &dir,
        &[
            "run",
            missing.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
        ],
        &[],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stderr.contains("nowhere.json"), "{}", out.stderr);
    assert!(out.journal.is_none());
}

#[test]
fn garbage_documents_are_invalid_input_never_a_panic() {
    let dir = TempDir::new("val-garbage");
    let docs: &[(&str, &str)] = &[
        ("empty.json", ""),
        ("spaces.yaml", "   \n"),
        ("list.json", "[]"),
        ("null.json", "null"),
        ("number.json", "42"),
        ("string.yaml", "just a string"),
        ("title-only.json", "{\"title\": 1}"),
        ("method-number.json", "{\"method\": 5}"),
        ("deep.json", &format!("{}{}", "[".repeat(5000), "]".repeat(5000))),
        ("binary.json", "\u{0}\u{1}\u{2}\u{fffd}"),
        ("bad-utf8-ish.yaml", "title: \"\\xff\"\nmethod: {\n"),
        ("activities-null.json", "{\"title\": \"t\", \"description\": \"d\", \"method\": [null, 1, [], {}], \"rollbacks\": [null]}"),
        ("hypothesis-odd.json", "{\"title\": \"t\", \"description\": \"d\", \"method\": [], \"steady-state-hypothesis\": {\"title\": \"h\", \"probes\": [{\"ref\": \"x\"}, null]}}"),
        ("tolerance-odd.json", "{\"title\": \"t\", \"description\": \"d\", \"method\": [], \"steady-state-hypothesis\": {\"title\": \"h\", \"probes\": [{\"type\": \"probe\", \"name\": \"p\", \"provider\": {\"type\": \"process\", \"path\": \"true\"}, \"tolerance\": {\"type\": \"range\", \"range\": [\"a\", null]}}]}}"),
        ("yaml-anchors.yaml", "a: &a [*a]\n"),
    ];
    for (name, text) in docs {
        let out = validate_text(&dir, name, text, &[]);
        assert_eq!(out.code, 3, "{name}: {}", out.all_text());
        assert!(out.stdout.contains("error: $"), "{name}: {}", out.stdout);
        let p = dir.join(name);
        let journal = dir.join("journal.json");
        let out = faultline(
            &dir,
            &[
                "run",
                p.to_str().unwrap(),
                "--journal-path",
                journal.to_str().unwrap(),
            ],
            &[],
        );
        assert_no_panic(&out);
        assert_eq!(out.code, 3, "run {name}: {}", out.all_text());
        assert!(out.journal.is_none(), "run {name} wrote a journal");
    }
}

#[test]
fn validate_syntax_error_messages_do_not_contradict_their_location() {
    let dir = TempDir::new("val-col0");
    let out = validate_text(&dir, "empty.json", "", &[]);
    assert_eq!(out.code, 3);
    assert!(!out.stdout.contains("column 0"), "{}", out.stdout);
    let text = "{\"title\": \"ééééé\" \"description\": \"d\", \"method\": []}\n";
    let out = validate_text(&dir, "utf8.json", text, &[]);
    assert_eq!(out.code, 3);
    assert!(out.stdout.contains("column 19"), "{}", out.stdout);
    assert!(!out.stdout.contains("column 24"), "{}", out.stdout);
}

#[test]
fn run_invalid_experiment_exits_3_without_a_journal() {
    let dir = TempDir::new("val-run-invalid");
    let p = dir.write("many.json", MANY_PROBLEMS);
    let journal = dir.join("journal.json");
    let args = [
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    let out = faultline(&dir, &args, &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.journal.is_none(), "a journal was written");
    assert!(!journal.exists());
    assert!(
        out.stderr.contains("$.method[0].provider.type"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("11 problem(s)"), "{}", out.stderr);
    // The same with JSON logs: every line parses, problems are named.
    let mut json_args = args.to_vec();
    json_args.extend(["--log-format", "json"]);
    let out = faultline(&dir, &json_args, &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3);
    assert!(out.journal.is_none());
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let invalid: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "input.invalid")
        .collect();
    assert!(invalid.len() >= 11, "{}", out.stderr);
    assert!(invalid
        .iter()
        .any(|l| l["message"].as_str().unwrap().contains("$.method[3].ref")));
}

#[test]
fn run_with_an_unset_environment_variable_exits_3_without_a_journal() {
    let dir = TempDir::new("val-run-env");
    let e = json!({"title": "t", "description": "d",
        "configuration": {"endpoint": {"type": "env", "key": "FAULTLINE_IT_SURELY_UNSET_VAR"}},
        "secrets": {"api": {"token": {"type": "env", "key": "FAULTLINE_IT_UNSET_TOKEN"}}},
        "method": [process("action", "a", "true", &[])]});
    let out = run_experiment(&dir, &e, &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.journal.is_none());
    assert!(
        out.stderr.contains("FAULTLINE_IT_SURELY_UNSET_VAR"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("FAULTLINE_IT_UNSET_TOKEN"),
        "{}",
        out.stderr
    );
}

#[test]
fn experiment_from_an_http_url_json_and_yaml() {
    let dir = TempDir::new("val-url");
    let json_doc = valid_experiment().to_string();
    let yaml_doc = "title: from yaml\ndescription: d\nmethod:\n  - type: action\n    name: hello\n    provider:\n      type: process\n      path: echo\n      arguments: [hi]\n";
    let bad_yaml = "title: t\ndescription: d\nmethod:\n  - type: action\n    name: a\n    provider:\n      type: ftp\n";
    let srv = HttpServer::start(move |r| match r.path.as_str() {
        "/experiment" => Response::text(200, &json_doc).content_type("application/json"),
        "/yaml" => Response::text(200, yaml_doc).content_type("application/yaml"),
        "/bad" => Response::text(200, bad_yaml).content_type("application/yaml"),
        _ => Response::text(404, "no such experiment"),
    });
    let out = validate(&dir, &srv.url("/experiment"), &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let out = validate(&dir, &srv.url("/yaml"), &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let out = validate(&dir, &srv.url("/bad"), &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let (l, _) = problem(&out, "$.method[0].provider.type");
    assert!(l.contains("(line 7, column 7)"), "{l}");
    let out = validate(&dir, &srv.url("/missing"), &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stdout.contains("404"), "{}", out.stdout);
    assert!(out.stdout.contains("/missing"), "{}", out.stdout);
    // And run it from the URL.
    let journal = dir.join("journal.json");
    let url = srv.url("/yaml");
    let out = faultline(
        &dir,
        &["run", &url, "--journal-path", journal.to_str().unwrap()],
        &[],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.journal()["experiment"]["title"], "from yaml");
    assert_eq!(out.journal()["run"][0]["output"]["stdout"], "hi\n");
    // Fetching from a closed port is invalid input too, with the URL named.
    let closed = format!("http://127.0.0.1:{}/x.json", closed_port());
    let out = validate(&dir, &closed, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stdout.contains(&closed), "{}", out.stdout);
}

#[test]
fn validate_syntax_error_columns_count_characters() {
    let dir = TempDir::new("val-utf8-col");
    let text = "{\"title\": \"ééééé\" \"description\": \"d\", \"method\": []}\n";
    let out = validate_text(&dir, "utf8.json", text, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let (line, col) = loc(text, "\"description\"");
    let (l, _) = problem(&out, "$");
    assert!(
        l.contains(&format!("(line {line}, column {col})")),
        "expected column {col} (characters): {l}"
    );
}

#[test]
fn validate_a_directory_is_invalid_input() {
    let dir = TempDir::new("val-dir");
    let out = validate(&dir, dir.path().to_str().unwrap(), &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stdout.contains("cannot read"), "{}", out.stdout);
}

#[test]
fn a_missing_file_is_said_as_such_not_as_a_problem_of_the_experiment() {
    let dir = TempDir::new("val-missing");
    let out = validate(&dir, "no-such-experiment.json", &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.stdout.contains("cannot read no-such-experiment.json"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("problem(s)"), "{}", out.stdout);
}

#[test]
fn problems_are_listed_in_the_order_of_the_document() {
    let dir = TempDir::new("val-order");
    // The parser finds the method's problem before the title's; the report follows the
    // text (title first, then the method, then the rollbacks).
    let text = "{\n  \"title\": 1,\n  \"description\": \"d\",\n  \"rollbacks\": \"x\",\n  \"method\": [{\"type\": \"hammer\", \"name\": \"a\",\n    \"provider\": {\"type\": \"process\", \"path\": \"true\"}}]\n}\n";
    let out = validate_text(&dir, "e.json", text, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let lines: Vec<usize> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .filter_map(|l| {
            let at = l.find("(line ")? + 6;
            l[at..].split(',').next()?.parse().ok()
        })
        .collect();
    assert!(lines.len() >= 3, "{}", out.stdout);
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "{}", out.stdout);
}

#[test]
fn run_help_lists_the_allowed_values_of_the_strategies_and_dry() {
    let dir = TempDir::new("val-help");
    let out = faultline(&dir, &["run", "--help"], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    for values in [
        "[possible values: probes, actions, activities, pause]",
        "[possible values: always, default, never, deviated]",
        "[possible values: default, before-method-only, after-method-only, during-method-only, continuously]",
    ] {
        assert!(out.stdout.contains(values), "{values}:\n{}", out.stdout);
    }
}
