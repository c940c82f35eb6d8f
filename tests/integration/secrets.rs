//! Safety: secrets reach the systems that need them (a real HTTP server, a real
//! process, a Python function) and nothing else: never the journal, stdout or stderr,
//! whatever the log format or verbosity. Providers see only the scopes they list.

use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;

/// Canary values: if one shows up in faultline's output, a secret leaked.
const INLINE: &str = "canary-inline-7f3a9c51";
const FROM_ENV: &str = "canary-env-b41d2e86";
const NUMBER: u64 = 739_145_268_301;
const FROM_VAR_FILE: &str = "canary-varfile-5e0a17c3";
const ENV_KEY: &str = "FAULTLINE_IT_CANARY";

fn canaries() -> Vec<String> {
    vec![
        INLINE.to_string(),
        FROM_ENV.to_string(),
        NUMBER.to_string(),
        FROM_VAR_FILE.to_string(),
    ]
}

/// Every canary is absent from `text`.
fn assert_clean(what: &str, text: &str) {
    for c in canaries() {
        assert!(!text.contains(&c), "secret {c} leaked into {what}:\n{text}");
    }
}

/// The journal file (as written on disk), stdout and stderr hold no canary.
fn assert_nothing_leaked(out: &Output, journal: &Path) {
    let raw = std::fs::read_to_string(journal).expect("a journal");
    assert_clean("the journal", &raw);
    assert_clean("stdout", &out.stdout);
    assert_clean("stderr", &out.stderr);
}

const LEAK_PY: &str = r#"
def leak(secrets):
    print("the function prints", secrets["token"])
    return {"api": secrets, "joined": "token=" + secrets["token"]}

def fail(secrets):
    raise RuntimeError("rejected token " + secrets["token"])

def show(secrets=None):
    return {"got": secrets}
"#;

fn leaky_experiment(dir: &TempDir, srv: &HttpServer) -> Value {
    dir.write("leak.py", LEAK_PY);
    let refused = format!("http://127.0.0.1:{}/?k=${{token}}", closed_port());
    let got = dir.join("got.txt");
    json!({
        "title": "secrets for ${token}",
        "description": "every way a secret could leak",
        "secrets": {"api": {
            "token": INLINE,
            "envtoken": {"type": "env", "key": ENV_KEY},
            "pin": NUMBER
        }},
        "steady-state-hypothesis": {"title": "auth works with ${envtoken}", "probes": [
            {"type": "probe", "name": "authorized", "tolerance": 200,
             "provider": {"type": "http", "url": srv.url("/echo"), "secrets": ["api"],
                          "headers": {"Authorization": "Bearer ${token}", "X-Api-Key": "${envtoken}"}}},
            {"type": "probe", "name": "body-has-it",
             "tolerance": {"type": "regex", "pattern": "Bearer", "target": "body"},
             "provider": {"type": "http", "url": srv.url("/text"), "secrets": ["api"],
                          "headers": {"Authorization": "Bearer ${token}"}}}
        ]},
        "method": [
            {"type": "action", "name": "call", "provider": {"type": "http", "url": srv.url("/echo?pin=${pin}"),
              "method": "POST", "secrets": ["api"],
              "headers": {"Authorization": "Bearer ${token}", "Content-Type": "application/json"},
              "arguments": {"token": "${token}", "env": "${envtoken}"}}},
            {"type": "action", "name": "print", "provider": {"type": "process", "path": "sh",
              "arguments": ["-c", format!("printf '%s %s %s' \"$1\" \"$2\" \"$3\" > {}; echo \"out:$1:$2:$3\"; echo \"err:$1:$2:$3\" >&2", got.display()),
                            "_", "${token}", "${envtoken}", "${pin}"]}},
            {"type": "action", "name": "shell-string", "provider": {"type": "process", "path": "echo",
              "arguments": "token=${token} env=${envtoken}"}},
            {"type": "action", "name": "refused", "provider": {"type": "http", "url": refused}},
            {"type": "probe", "name": "python-returns-it", "provider": {"type": "python",
              "module": "leak", "func": "leak", "secrets": ["api"]}},
            {"type": "probe", "name": "python-raises-it", "provider": {"type": "python",
              "module": "leak", "func": "fail", "secrets": ["api"]}}
        ],
        "rollbacks": [
            {"type": "action", "name": "rollback-prints", "provider": {"type": "process", "path": "echo",
              "arguments": ["rollback", "${token}", "${envtoken}"]}}
        ]
    })
}

fn echo_server() -> HttpServer {
    HttpServer::start(|r| {
        let auth = r.headers.get("authorization").cloned().unwrap_or_default();
        match r.path.as_str() {
            "/text" => Response::text(200, &format!("you sent {auth}")),
            _ => Response::json(
                200,
                &json!({"auth": auth, "key": r.headers.get("x-api-key"), "query": r.query, "body": r.text()}),
            ),
        }
    })
}

/// Run the leaky experiment with these console flags; check the secrets worked and
/// nothing leaked.
fn run_leaky(tag: &str, flags: &[&str]) -> Output {
    let dir = TempDir::new(tag);
    let srv = echo_server();
    let e = leaky_experiment(&dir, &srv);
    let p = dir.experiment(&e);
    let journal = dir.join("journal.json");
    let mut args = vec![
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let out = faultline(&dir, &args, &[(ENV_KEY, FROM_ENV)]);
    assert_no_panic(&out);
    assert_eq!(out.code, 0, "{}", out.all_text());

    // The secrets did their job: the real values reached the server and the process.
    let reqs = srv.requests();
    assert!(reqs.len() >= 3, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r.headers["authorization"], format!("Bearer {INLINE}"));
    }
    assert_eq!(reqs[0].headers["x-api-key"], FROM_ENV);
    let post = reqs.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(post.query, format!("pin={NUMBER}"));
    let body: Value = serde_json::from_str(&post.text()).unwrap();
    assert_eq!(body, json!({"token": INLINE, "env": FROM_ENV}));
    assert_eq!(
        std::fs::read_to_string(dir.join("got.txt")).unwrap(),
        format!("{INLINE} {FROM_ENV} {NUMBER}")
    );

    // ... and went nowhere else.
    assert_nothing_leaked(&out, &journal);
    let j = out.journal();
    assert_eq!(j["status"], "completed");
    assert_eq!(j["steady_states"]["before"]["steady_state_met"], true);
    let run = &j["run"];
    assert_eq!(entry(run, "print")["output"]["stdout"], "out:***:***:***\n");
    assert_eq!(entry(run, "print")["output"]["stderr"], "err:***:***:***\n");
    assert_eq!(
        entry(run, "shell-string")["output"]["stdout"],
        "token=*** env=***\n"
    );
    assert_eq!(entry(run, "call")["output"]["body"]["auth"], "Bearer ***");
    assert_eq!(entry(run, "refused")["status"], "failed");
    assert!(exception_text(entry(run, "refused")).contains("k=***"));
    assert_eq!(
        entry(run, "python-returns-it")["output"]["joined"],
        "token=***"
    );
    let raised = exception_text(entry(run, "python-raises-it"));
    assert!(raised.contains("rejected token ***"), "{raised}");
    assert_eq!(
        entry(&j["rollbacks"], "rollback-prints")["output"]["stdout"],
        "rollback *** ***\n"
    );
    assert_eq!(j["experiment"]["title"], "secrets for ***");
    out
}

#[test]
fn secrets_work_but_never_leak_string_logs_verbose() {
    let out = run_leaky("sec-string", &["--verbose"]);
    // The verbose console did print outputs (masked), so the check above meant something.
    assert!(out.stderr.contains("***"), "{}", out.stderr);
}

#[test]
fn secrets_work_but_never_leak_json_logs_verbose() {
    let out = run_leaky("sec-json", &["--verbose", "--log-format", "json"]);
    for line in out.stderr.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("console line is not JSON ({e}): {line}"));
        assert!(v["event"].is_string(), "{line}");
    }
    assert!(out.stderr.contains("***"), "{}", out.stderr);
}

#[test]
fn secrets_never_leak_without_verbose() {
    run_leaky("sec-quiet", &[]);
}

#[test]
fn secret_block_is_masked_in_the_journals_experiment_copy() {
    let out = run_leaky("sec-block", &["--rollback-strategy", "always"]);
    let secrets = &out.journal()["experiment"]["secrets"]["api"];
    assert_eq!(secrets["token"], "***");
    assert_eq!(secrets["pin"], "***");
    // An environment reference names a variable, not a value: it stays readable.
    assert_eq!(secrets["envtoken"], json!({"type": "env", "key": ENV_KEY}));
}

#[test]
fn secrets_from_a_var_file_are_masked_too() {
    let dir = TempDir::new("sec-varfile");
    let vars = dir.write(
        "vars.json",
        &json!({"secrets": {"vault": {"password": FROM_VAR_FILE}}}).to_string(),
    );
    let e = json!({"title": "var file", "description": "d",
        "secrets": {"vault": {"password": "placeholder-overridden"}},
        "method": [{"type": "action", "name": "use", "provider": {"type": "process", "path": "sh",
            "arguments": ["-c", "echo \"pw=$1\"; echo \"$1\" > used.txt", "_", "${password}"]}}]});
    let out = run_experiment(
        &dir,
        &e,
        &["--var-file", vars.to_str().unwrap(), "--verbose"],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        std::fs::read_to_string(dir.join("used.txt"))
            .unwrap()
            .trim(),
        FROM_VAR_FILE
    );
    assert_nothing_leaked(&out, &dir.join("journal.json"));
    assert_eq!(
        entry(&out.journal()["run"], "use")["output"]["stdout"],
        "pw=***\n"
    );
}

#[test]
fn a_provider_without_the_scope_does_not_get_the_secrets() {
    let dir = TempDir::new("sec-scope");
    dir.write("leak.py", LEAK_PY);
    let e = json!({"title": "scopes", "description": "d",
    "secrets": {"api": {"token": INLINE}, "db": {"password": FROM_VAR_FILE}},
    "method": [
        {"type": "probe", "name": "unscoped",
         "provider": {"type": "python", "module": "leak", "func": "show"}},
        {"type": "probe", "name": "scoped",
         "provider": {"type": "python", "module": "leak", "func": "show", "secrets": ["db"]}},
        {"type": "probe", "name": "unknown-scope",
         "provider": {"type": "python", "module": "leak", "func": "show", "secrets": ["nope"]}}
    ]});
    let out = run_experiment(&dir, &e, &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let run = &out.journal()["run"];
    // As the Chaos Toolkit passes them: nothing without listed scopes (the parameter
    // keeps its default), else the listed scopes' keys, flattened.
    assert_eq!(entry(run, "unscoped")["output"], json!({"got": null}));
    assert_eq!(
        entry(run, "scoped")["output"],
        json!({"got": {"password": "***"}})
    );
    assert_eq!(entry(run, "unknown-scope")["output"], json!({"got": {}}));
    assert_nothing_leaked(&out, &dir.join("journal.json"));
}

#[test]
fn secrets_in_error_messages_and_warnings_are_masked() {
    let dir = TempDir::new("sec-errors");
    // A pause or a provider that is invalid once substituted fails its activity and
    // aborts the run; the reason names the value, masked.
    for bad in [
        json!({"type": "action", "name": "bad", "pauses": {"after": "${token}"},
               "provider": {"type": "process", "path": "true"}}),
        json!({"type": "action", "name": "bad",
               "provider": {"type": "process", "path": "true", "timeout": "${token}"}}),
    ] {
        let e = json!({"title": "errors", "description": "d",
            "secrets": {"api": {"token": INLINE}}, "method": [bad]});
        for flags in [
            &["--verbose"][..],
            &["--verbose", "--log-format", "json"][..],
        ] {
            let out = run_experiment(&dir, &e, flags);
            assert_no_panic(&out);
            assert_eq!(out.code, 2, "{}", out.all_text());
            assert_eq!(out.status(), "aborted");
            assert_nothing_leaked(&out, &dir.join("journal.json"));
            let failed = entry(&out.journal()["run"], "bad");
            assert_eq!(failed["status"], "failed");
            assert!(exception_text(failed).contains("***"), "{failed:#}");
            assert!(out.stderr.contains("***"), "{}", out.stderr);
        }
    }
    // An activity that cannot run, named by a secret: whether a check before the run
    // refuses it or the run fails it (--no-validation), the path is named masked.
    let e = json!({"title": "errors", "description": "d",
        "secrets": {"api": {"token": INLINE}},
        "method": [{"type": "action", "name": "path-is-secret",
                    "provider": {"type": "process", "path": "${token}"}}]});
    for flags in [
        &["--verbose"][..],
        &["--verbose", "--log-format", "json"][..],
        &["--verbose", "--no-validation"][..],
    ] {
        let out = run_experiment(&dir, &e, flags);
        assert_no_panic(&out);
        assert_clean("stdout", &out.stdout);
        assert_clean("stderr", &out.stderr);
        let journal = std::fs::read_to_string(dir.join("journal.json")).unwrap_or_default();
        assert_clean("the journal", &journal);
        assert!(
            out.stderr.contains("'***'") || journal.contains("'***'"),
            "{flags:?}: the missing executable is not named:\n{}",
            out.all_text()
        );
    }
}

/// A secret with characters that URLs, forms and JSON encode: `@`, a space, a quote.
const ENCODED: &str = "p@ss word\"7";

/// Every form the secret can take on the way out; none may appear anywhere.
fn encoded_forms() -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("admin:{ENCODED}"));
    vec![
        ENCODED.to_string(),
        "p@ss%20word".into(),
        "p%40ss%20word".into(),
        "p%40ss+word".into(),
        "p@ss+word".into(),
        // JSON-escaped: the quote as \" (serde) and \u0022 (other encoders).
        r#"word\"7"#.into(),
        // The secret's own bits of `admin:<secret>` in base64 (basic auth).
        b64[8..b64.len() - 4].to_string(),
    ]
}

fn assert_no_form(what: &str, text: &str) {
    for f in encoded_forms() {
        assert!(
            !text.contains(&f),
            "the secret leaked as {f:?} into {what}:\n{text}"
        );
    }
}

#[test]
fn a_secret_in_any_encoded_form_never_leaks_on_any_channel() {
    use base64::Engine as _;
    let dir = TempDir::new("sec-encoded");
    // Echoes what it got, as servers do: the raw query, the decoded query as JSON, and
    // the credentials as a basic-auth header value would carry them.
    let srv = HttpServer::start(|r| {
        let decoded: String = url_decode(&r.query);
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("admin:{}", decoded.trim_start_matches("q=")));
        if r.path.starts_with("/ingest")
            || r.path.starts_with("/api/")
            || r.path.starts_with("/v1/")
        {
            return Response::json(200, &json!({}));
        }
        let form: String = decoded
            .trim_start_matches("q=")
            .bytes()
            .map(|b| match b {
                b' ' => "+".to_string(),
                b if b.is_ascii_alphanumeric() => char::from(b).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        // As text: the JSON escapes stay in the body the journal keeps.
        Response::text(
            200,
            &json!({"path": r.path, "query": r.query, "decoded": decoded, "form": form,
                    "basic": format!("Basic {basic}")})
            .to_string(),
        )
    });
    let jsonl = dir.join("events.jsonl");
    let settings = dir.write(
        "settings.yaml",
        &format!(
            "sinks:\n  - {{type: http, url: '{}'}}\n  - {{type: jsonl, path: '{}'}}\n  - {{type: otlp, endpoint: '{}', protocol: http/json}}\n",
            srv.url("/ingest"),
            jsonl.display(),
            srv.url(""),
        ),
    );
    let refused = format!("http://127.0.0.1:{}/r/${{pw}}?q=${{pw}}", closed_port());
    let e = json!({
        "title": "encoded", "description": "d",
        "configuration": {"humio_url": srv.url("")},
        "secrets": {"s": {"pw": ENCODED, "ingest_token": "humio-token-5a1c"}},
        "controls": [
            {"name": "humio-logger", "provider": {"type": "python", "module": "chaoshumio.control", "secrets": ["s"]}},
            {"name": "safeguards", "provider": {"type": "python", "module": "chaosaddons.controls.safeguards",
             "arguments": {"probes": [{"type": "probe", "name": "guard", "frequency": 0.05,
                "tolerance": 0,
                "provider": {"type": "process", "path": "sh", "arguments": ["-c",
                    format!("if [ -f {0} ]; then cat {0}; exit 1; fi", dir.join("guard.txt").display())]}}]}}}
        ],
        "method": [
            {"type": "probe", "name": "echo", "provider": {"type": "http", "secrets": ["s"],
             "url": format!("{}?q=${{pw}}", srv.url("/p/${pw}"))}},
            {"type": "probe", "name": "refused", "provider": {"type": "http", "secrets": ["s"], "url": refused}},
            // The guard's probe prints the secret, then the guard trips: its reason
            // quotes the output.
            {"type": "action", "name": "arm", "provider": {"type": "process", "path": "sh", "secrets": ["s"],
             "arguments": ["-c", format!("printf '%s' \"$1\" > {}", dir.join("guard.txt").display()), "_", "${pw}"]}},
            {"type": "action", "name": "wait", "provider": {"type": "process", "path": "sleep", "arguments": ["30"]}}
        ],
        "rollbacks": [{"type": "action", "name": "undo", "provider": {"type": "process", "path": "true"}}]
    });
    for flags in [
        &["--verbose"][..],
        &["--verbose", "--log-format", "json"][..],
    ] {
        let _ = std::fs::remove_file(&jsonl);
        let _ = std::fs::remove_file(dir.join("guard.txt"));
        let mut args = flags.to_vec();
        args.extend(["--settings", settings.to_str().unwrap()]);
        let out = run_experiment(&dir, &e, &args);
        assert_no_panic(&out);
        let j = out.journal();
        // The secret did its job, and the guard tripped on it.
        let got = srv
            .requests()
            .into_iter()
            .find(|r| r.path.starts_with("/p/"))
            .unwrap();
        assert!(got.query.contains("word"), "{got:?}");
        assert_eq!(j["status"], "interrupted", "{}", out.all_text());
        assert!(
            out.all_text().contains("safeguard.tripped")
                || out.all_text().contains("Safeguard 'guard' tripped")
        );
        assert_no_form("stdout", &out.stdout);
        assert_no_form("stderr", &out.stderr);
        assert_no_form(
            "the journal",
            &std::fs::read_to_string(dir.join("journal.json")).unwrap(),
        );
        assert_no_form(
            "the trace file",
            &std::fs::read_to_string(dir.join("journal.trace.json")).unwrap(),
        );
        assert_no_form("the jsonl sink", &std::fs::read_to_string(&jsonl).unwrap());
        let bodies: String = srv
            .requests()
            .iter()
            .filter(|r| !r.path.starts_with("/p/"))
            .map(|r| r.text())
            .collect();
        assert!(
            bodies.contains("safeguard"),
            "the sinks got the trip:\n{bodies}"
        );
        assert_no_form("the http, Humio and OTLP sinks", &bodies);
        let echo = entry(&j["run"], "echo");
        let body = echo["output"]["body"].as_str().unwrap_or_default();
        assert!(body.contains("\"basic\":\"Basic "), "{echo}");
        assert!(body.contains("***"), "{echo}");
    }
}

/// Percent-decoding (`+` as a space), as a server does.
pub(crate) fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
