//! The method and its inputs: background activities, pauses, refs, `${}`
//! substitution, configuration from the environment, `--var` and `--var-file`, and
//! rollbacks that keep going after a failure.

use crate::common::*;
use serde_json::{json, Value};

/// A module the python bridge imports from the run's directory (its cwd).
const CALC: &str = "def double(n):\n    return n * 2\n";

fn double(name: &str, n: Value) -> Value {
    python("action", name, "calc", "double", json!({"n": n}))
}

/// The journal entry of the method activity `name`.
fn entry<'a>(out: &'a Output, name: &str) -> &'a Value {
    out.journal()["run"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["activity"]["name"] == json!(name))
        .unwrap_or_else(|| panic!("no entry '{name}' in {}", out.journal()["run"]))
}

fn ts(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap()
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap() as f64 / 1e6
}

/// A background action that marks its start, waits (bounded) for its sibling's
/// start marker, then lingers a little and marks its end.
fn waits_for(me: &str, other: &str) -> Value {
    with(
        sh(
            "action",
            me,
            &format!(
                "touch {me}-started; for i in $(seq 200); do test -e {other}-started && break; sleep 0.05; done; \
                 test -e {other}-started || exit 7; sleep 0.3; echo {me} >> trace; touch {me}-done"
            ),
        ),
        "background",
        json!(true),
    )
}

#[test]
fn background_activities_run_concurrently_and_are_awaited_before_the_after_hypothesis() {
    let dir = TempDir::new("m-bg");
    // Met before the method (nothing started) and after it only if both finished.
    let probe = with(
        sh(
            "probe",
            "both-done",
            "echo probe >> trace; test ! -e a-started || (test -e a-done && test -e b-done)",
        ),
        "tolerance",
        json!(0),
    );
    let exp = experiment(
        vec![probe],
        vec![waits_for("a", "b"), waits_for("b", "a")],
        vec![],
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert!(!out.deviated());
    assert_eq!(out.run_names(), ["a", "b"]);
    for name in ["a", "b"] {
        let e = entry(&out, name);
        assert_eq!(e["status"], json!("succeeded"), "{e}");
        // 7 would mean it never saw its sibling start: they did not run concurrently.
        assert_eq!(e["output"]["status"], json!(0), "{e}");
    }
    let trace = lines(&dir, "trace");
    assert_eq!(trace.len(), 4, "{trace:?}");
    assert_eq!((trace[0].as_str(), trace[3].as_str()), ("probe", "probe"));
    let mut middle = trace[1..3].to_vec();
    middle.sort();
    assert_eq!(middle, ["a", "b"]);
    assert!(out.stderr.contains("[in background]"), "{}", out.stderr);
}

#[test]
fn pauses_happen_outside_the_activity_start_end_and_duration() {
    let dir = TempDir::new("m-pauses");
    let paused = with(
        tracer("action", "paused", "paused"),
        "pauses",
        json!({"before": 0.2, "after": "${p}"}),
    );
    let mut exp = experiment(
        vec![],
        vec![
            tracer("action", "first", "first"),
            paused,
            tracer("action", "last", "last"),
        ],
        vec![],
    );
    exp["configuration"] = json!({"p": 0.2});
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "trace"), ["first", "paused", "last"]);
    let (first, paused, last) = (
        entry(&out, "first"),
        entry(&out, "paused"),
        entry(&out, "last"),
    );
    // The pauses are between the neighbours' ends and starts...
    assert!(
        secs(ts(&paused["start"]) - ts(&first["end"])) >= 0.2,
        "pause before: {first} {paused}"
    );
    assert!(
        secs(ts(&last["start"]) - ts(&paused["end"])) >= 0.2,
        "pause after (\"${{p}}\"): {paused} {last}"
    );
    // ...so the activity's own duration is its start..end, without them.
    let span = secs(ts(&paused["end"]) - ts(&paused["start"]));
    let duration = paused["duration"].as_f64().unwrap();
    assert!(
        duration <= span + 0.01,
        "duration {duration} vs span {span}"
    );
    assert!(out.stderr.contains("Pausing before next activity for 0.2s"));
    assert!(out.stderr.contains("Pausing after activity for 0.2s"));
}

#[test]
fn method_refs_reuse_hypothesis_probes_and_earlier_actions() {
    let dir = TempDir::new("m-refs");
    let probe = with(tracer("probe", "check", "probe"), "tolerance", json!(0));
    let exp = experiment(
        vec![probe.clone()],
        vec![
            json!({"ref": "check"}),
            tracer("action", "write", "write"),
            json!({"ref": "write"}),
        ],
        vec![],
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.run_names(), ["check", "write", "write"]);
    let run = &out.journal()["run"];
    assert_eq!(run[0]["activity"]["type"], json!("probe"));
    assert_eq!(run[0]["activity"]["provider"], probe["provider"]);
    assert!(run[0]["activity"].get("ref").is_none(), "{}", run[0]);
    assert_eq!(
        run[2]["activity"]["provider"],
        run[1]["activity"]["provider"]
    );
    assert_eq!(
        lines(&dir, "trace"),
        ["probe", "probe", "write", "write", "probe"]
    );
}

#[test]
fn substitution_in_title_arguments_url_query_and_native_types() {
    let dir = TempDir::new("m-subst");
    dir.write("calc.py", CALC);
    let server = HttpServer::start(|_| Response::text(200, "hi"));
    let mut exp = experiment(
        vec![
            with(
                process("probe", "greeting-is", "echo", &["${greeting}"]),
                "tolerance",
                json!({"type": "regex", "pattern": "^${greeting}", "target": "stdout"}),
            ),
            with(
                python(
                    "probe",
                    "basename",
                    "os.path",
                    "basename",
                    json!({"p": "/x/${greeting}"}),
                ),
                "tolerance",
                json!("${greeting}"),
            ),
        ],
        vec![
            process("action", "echo", "echo", &["${greeting} world", "n=${n}"]),
            process(
                "action",
                "literal",
                "echo",
                &["$${greeting}", "${unknown_name}", "$greeting"],
            ),
            json!({"type": "action", "name": "call",
                "provider": {"type": "http", "url": "http://127.0.0.1:${port}/hello/${greeting}",
                    "arguments": {"who": "${greeting}"}}}),
            double("native", json!("${n}")),
            double("embedded", json!("${n}${n}")),
        ],
        vec![],
    );
    exp["title"] = json!("Run for ${greeting}");
    exp["configuration"] = json!({"greeting": "bonjour", "n": 4, "port": server.port});
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(!out.deviated());
    assert_eq!(out.hypothesis_names("after"), ["greeting-is", "basename"]);
    assert_eq!(
        out.journal()["experiment"]["title"],
        json!("Run for bonjour")
    );
    assert!(out.stderr.contains("Running experiment: Run for bonjour"));
    assert_eq!(
        entry(&out, "echo")["output"]["stdout"],
        json!("bonjour world n=4\n")
    );
    // `$$` is a literal `$`, unknown names stay as they are, `$name` is substituted.
    assert_eq!(
        entry(&out, "literal")["output"]["stdout"],
        json!("${greeting} ${unknown_name} bonjour\n")
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].path, "/hello/bonjour");
    assert_eq!(reqs[0].query, "who=bonjour");
    assert_eq!(entry(&out, "call")["output"]["status"], json!(200));
    // Exactly "${n}" keeps the integer; embedded, it is text.
    assert_eq!(entry(&out, "native")["output"], json!(8));
    assert_eq!(entry(&out, "embedded")["output"], json!("4444"));
}

#[test]
fn configuration_from_environment_with_type_and_default() {
    let dir = TempDir::new("m-env");
    dir.write("calc.py", CALC);
    let mut exp = experiment(
        vec![],
        vec![
            double("from-env", json!("${num}")),
            double("from-default", json!("${fallback}")),
            process("action", "text", "echo", &["${word}"]),
        ],
        vec![],
    );
    exp["configuration"] = json!({
        "num": {"type": "env", "key": "FAULTLINE_IT_NUM", "env_var_type": "int"},
        "fallback": {"type": "env", "key": "FAULTLINE_IT_SURELY_UNSET", "default": 7, "env_var_type": "int"},
        "word": {"type": "env", "key": "FAULTLINE_IT_WORD"},
    });
    let out = run_experiment_env(
        &dir,
        &exp,
        &[],
        &[
            ("FAULTLINE_IT_NUM", "21"),
            ("FAULTLINE_IT_WORD", "from-env"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(entry(&out, "from-env")["output"], json!(42));
    assert_eq!(entry(&out, "from-default")["output"], json!(14));
    assert_eq!(entry(&out, "text")["output"]["stdout"], json!("from-env\n"));
}

#[test]
fn configuration_from_a_missing_environment_variable_is_invalid_input() {
    let dir = TempDir::new("m-env-missing");
    let mut exp = experiment(vec![], vec![tracer("action", "act", "method")], vec![]);
    exp["configuration"] = json!({"num": {"type": "env", "key": "FAULTLINE_IT_SURELY_UNSET_TOO"}});
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.stderr.contains("FAULTLINE_IT_SURELY_UNSET_TOO"),
        "{}",
        out.stderr
    );
    assert!(lines(&dir, "trace").is_empty());
}

fn var_experiment() -> Value {
    let mut exp = experiment(
        vec![],
        vec![
            process("action", "greet", "echo", &["${greeting}"]),
            double("typed", json!("${n}")),
            double("untyped", json!("${m}")),
        ],
        vec![],
    );
    exp["configuration"] = json!({"greeting": "hello", "n": 1, "m": 1});
    exp
}

#[test]
fn var_flags_override_configuration_with_and_without_type() {
    let dir = TempDir::new("m-var");
    dir.write("calc.py", CALC);
    let out = run_experiment(
        &dir,
        &var_experiment(),
        &[
            "--var",
            "greeting=bonjour",
            "--var",
            "n:int=5",
            "--var",
            "m=5",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(entry(&out, "greet")["output"]["stdout"], json!("bonjour\n"));
    assert_eq!(entry(&out, "typed")["output"], json!(10));
    // Without a type the value is a string: "5" * 2 in Python.
    assert_eq!(entry(&out, "untyped")["output"], json!("55"));
}

#[test]
fn json_var_file_sets_configuration_and_secrets() {
    let dir = TempDir::new("m-varfile-json");
    let vars = dir.write(
        "vars.json",
        &json!({"configuration": {"greeting": "from-json"},
                "secrets": {"creds": {"token": "s3cr3t-from-json"}}})
        .to_string(),
    );
    let mut exp = experiment(
        vec![],
        vec![sh(
            "action",
            "use",
            "echo ${greeting} > greeting.txt; echo ${token} > token.txt",
        )],
        vec![],
    );
    exp["configuration"] = json!({"greeting": "hello"});
    exp["secrets"] = json!({"creds": {"token": "placeholder"}});
    let out = run_experiment(&dir, &exp, &["--var-file", vars.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(lines(&dir, "greeting.txt"), ["from-json"]);
    assert_eq!(lines(&dir, "token.txt"), ["s3cr3t-from-json"]);
    let journal = std::fs::read_to_string(dir.join("journal.json")).unwrap();
    assert!(
        !journal.contains("s3cr3t-from-json"),
        "a secret leaked:\n{journal}"
    );
    assert!(!out.all_text().contains("s3cr3t-from-json"));
}

#[test]
fn yaml_var_file_sets_configuration() {
    let dir = TempDir::new("m-varfile-yaml");
    dir.write("calc.py", CALC);
    let vars = dir.write(
        "vars.yaml",
        "configuration:\n  greeting: from-yaml\n  n: 21\n",
    );
    let out = run_experiment(
        &dir,
        &var_experiment(),
        &["--var-file", vars.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        entry(&out, "greet")["output"]["stdout"],
        json!("from-yaml\n")
    );
    assert_eq!(entry(&out, "typed")["output"], json!(42));
}

#[test]
fn later_var_files_win_and_var_flags_win_over_files() {
    let dir = TempDir::new("m-varfile-order");
    dir.write("calc.py", CALC);
    let first = dir.write(
        "first.json",
        &json!({"configuration": {"greeting": "first", "n": 2}}).to_string(),
    );
    let second = dir.write("second.yaml", "configuration:\n  greeting: second\n");
    let out = run_experiment(
        &dir,
        &var_experiment(),
        &[
            "--var-file",
            first.to_str().unwrap(),
            "--var-file",
            second.to_str().unwrap(),
            "--var",
            "n:int=50",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(entry(&out, "greet")["output"]["stdout"], json!("second\n"));
    assert_eq!(entry(&out, "typed")["output"], json!(100));
}

#[test]
fn dotenv_var_file_reaches_child_processes_and_env_configuration() {
    let dir = TempDir::new("m-dotenv");
    let vars = dir.write(
        "vars.env",
        "# comment\nFAULTLINE_IT_X=from-dotenv\nexport FAULTLINE_IT_Y=\"quoted value\"\n",
    );
    let mut exp = experiment(
        vec![],
        vec![
            sh(
                "action",
                "child",
                "echo $FAULTLINE_IT_X; echo $FAULTLINE_IT_Y",
            ),
            process("action", "configured", "echo", &["${who}"]),
        ],
        vec![],
    );
    exp["configuration"] = json!({"who": {"type": "env", "key": "FAULTLINE_IT_X"}});
    let out = run_experiment(&dir, &exp, &["--var-file", vars.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        entry(&out, "child")["output"]["stdout"],
        json!("from-dotenv\nquoted value\n")
    );
    assert_eq!(
        entry(&out, "configured")["output"]["stdout"],
        json!("from-dotenv\n")
    );
}

/// chaoslib issue #252: a var file may hold full configuration declarations, which
/// replace the experiment's entries and are resolved like them, in order.
#[test]
fn var_file_declarations_are_resolved_env_with_and_without_default_then_dynamic() {
    let dir = TempDir::new("m-varfile-decl");
    let vars = dir.write(
        "vars.json",
        &json!({"configuration": {
            "here": {"type": "env", "key": "FAULTLINE_IT_VF_DIR"},
            "fallback": {"type": "env", "key": "FAULTLINE_IT_VF_SURELY_UNSET",
                "default": "the-default"},
            "exists": {"name": "here exists", "type": "probe",
                "provider": {"type": "python", "module": "os.path", "func": "exists",
                    "arguments": {"path": "${here}"}}}}})
        .to_string(),
    );
    let mut exp = experiment(
        vec![],
        vec![
            process("action", "here", "echo", &["${here}"]),
            process("action", "fallback", "echo", &["${fallback}"]),
            python(
                "action",
                "exists",
                "json",
                "dumps",
                json!({"obj": "${exists}"}),
            ),
        ],
        vec![],
    );
    // Literals in the experiment: the var file's declarations replace them.
    exp["configuration"] = json!({"here": "raw", "fallback": "raw", "exists": "raw"});
    let here = dir.path().to_str().unwrap().to_string();
    let out = run_experiment_env(
        &dir,
        &exp,
        &["--var-file", vars.to_str().unwrap()],
        &[("FAULTLINE_IT_VF_DIR", &here)],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        entry(&out, "here")["output"]["stdout"],
        json!(format!("{here}\n"))
    );
    assert_eq!(
        entry(&out, "fallback")["output"]["stdout"],
        json!("the-default\n")
    );
    // The probe ran with the env entry before it: the directory exists.
    assert_eq!(entry(&out, "exists")["output"], json!("true"));
}

#[test]
fn a_var_file_env_declaration_without_its_variable_is_invalid_input() {
    let dir = TempDir::new("m-varfile-decl-unset");
    let vars = dir.write(
        "vars.json",
        &json!({"configuration": {
            "greeting": {"type": "env", "key": "FAULTLINE_IT_VF_SURELY_UNSET_TOO"}}})
        .to_string(),
    );
    let mut exp = experiment(vec![], vec![tracer("action", "act", "method")], vec![]);
    exp["configuration"] = json!({"greeting": "hello"});
    let out = run_experiment(&dir, &exp, &["--var-file", vars.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.stderr.contains("vars.json"), "{}", out.stderr);
    assert!(
        out.stderr.contains("configuration 'greeting' reads environment variable FAULTLINE_IT_VF_SURELY_UNSET_TOO, which is not set"),
        "{}",
        out.stderr
    );
    assert!(lines(&dir, "trace").is_empty());
}

#[test]
fn a_bad_var_file_declaration_is_refused_naming_the_file_and_key() {
    let dir = TempDir::new("m-varfile-decl-bad");
    let vars = dir.write(
        "vars.json",
        "{\"configuration\": {\n  \"greeting\": {\"type\": \"env\", \"default\": \"x\"},\n  \"n\": {\"type\": \"envv\", \"key\": \"X\"}\n}}\n",
    );
    let mut exp = experiment(vec![], vec![tracer("action", "act", "method")], vec![]);
    exp["configuration"] = json!({"greeting": "hello", "n": 1});
    let out = run_experiment(&dir, &exp, &["--var-file", vars.to_str().unwrap()]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let file = vars.to_str().unwrap();
    assert!(
        out.stderr.contains(&format!(
            "$.configuration.greeting.key (line 2, column 3): {file}: configuration 'greeting': missing required key 'key'"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "{file}: configuration 'n': unknown configuration type 'envv'"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(lines(&dir, "trace").is_empty());
}

#[test]
fn a_failing_rollback_does_not_stop_the_others() {
    let dir = TempDir::new("m-rollbacks");
    let mut exp = experiment(
        vec![],
        vec![tracer("action", "act", "method")],
        vec![
            tracer("action", "r1", "r1"),
            with_provider(
                process("action", "r2-timeout", "sleep", &["30"]),
                "timeout",
                json!(0.2),
            ),
            json!({"type": "action", "name": "r3-refused",
                "provider": {"type": "http", "url": format!("http://127.0.0.1:{}/", closed_port())}}),
            with_provider(
                tracer("action", "r4-invalid", "r4"),
                "timeout",
                json!("${t}"),
            ),
            sh("action", "r5-exit-1", "exit 1"),
            tracer("action", "r6", "r6"),
        ],
    );
    exp["configuration"] = json!({"t": "abc"});
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert_eq!(
        out.rollback_names(),
        [
            "r1",
            "r2-timeout",
            "r3-refused",
            "r4-invalid",
            "r5-exit-1",
            "r6"
        ]
    );
    let statuses: Vec<&str> = out.journal()["rollbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "succeeded",
            "failed",
            "failed",
            "failed",
            "succeeded",
            "succeeded"
        ]
    );
    assert_eq!(lines(&dir, "trace"), ["method", "r1", "r6"]);
}
