//! The canary: one secret put into every kind of event a run can make, and every
//! channel faultline writes to checked for zero occurrences of it, in any encoding.
//!
//! Masking is meant to be total (issue 10: "secrets masked in one place that every
//! channel passes through"); this test is its proof. One experiment carries the secret
//! into an activity's error message (a Python exception, a process's stderr), a
//! safeguard trip (its probe prints the secret and misses its tolerance), failing HTTP
//! requests whose URL query and headers hold it (a closed port, and a server answering
//! 500 that echoes it raw, percent-, form-, JSON- and base64-encoded), `--verbose`
//! outputs, a continuous hypothesis whose tolerance misses and quotes the value (cut
//! by the reason's length limit in the middle of the secret), the title, a control's
//! configuration, a pause and a warning. Two runs between them cover every channel:
//! spans over OTLP/HTTP-JSON and in the trace file, both console formats, the JSON
//! lines file, the http sink in its array, Loki and Splunk HEC formats, Humio, OTLP
//! logs (turned on by the OTLP endpoint, and as a settings sink over gRPC), the
//! journal and the error messages (console, journal `exception`s, span statuses).
//!
//! Each channel is first shown to have received the events (their names, or `***`
//! where the secret was), so "no secret found" never passes on an empty channel.

use crate::common::*;
use crate::otlp::{LogView, OtlpReceiver, SpanView};
use crate::secrets::url_decode;
use base64::Engine as _;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The canary: an `@`, a space and a quote make every encoding differ from the raw
/// value; it starts and ends with runs of unreserved characters (`kanary`,
/// `ret-7d1e`) that every textual encoding (percent, form, JSON, HTML, Rust `Debug`)
/// leaves as they are, so finding either finds any form of a leak, whole or cut.
const CANARY: &str = "kanary@42 sec\"ret-7d1e";

/// Where the experiment quotes the secret after this much padding, the tolerance
/// reason's 120-character excerpt (`tolerance::brief`) ends inside the secret.
const PADDING: usize = 100;

/// Every form of the canary that must never appear: whole encodings, the unreserved
/// head and tail any encoding (or a cut) keeps, and the secret's own base64 characters
/// at each of the three alignments it can have inside a longer value (basic auth).
fn forms() -> Vec<String> {
    let b64 = |prefix: &str| {
        base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{CANARY}"))
    };
    let mut forms = vec![
        CANARY.to_string(),
        "kanary".into(),
        "ret-7d1e".into(),
        "kanary%4042%20sec%22ret-7d1e".into(),
        "kanary%4042+sec%22ret-7d1e".into(),
        "kanary@42+sec".into(),
        "kanary@42%20sec".into(),
        r#"kanary@42 sec\"ret"#.into(),
        r#"sec\u0022ret"#.into(),
    ];
    // Alignment 0: every whole group but the last; alignments 1 and 2: after the
    // first group, which mixes in the prefix's bytes.
    let a0 = b64("");
    forms.push(a0[..a0.len() - 4].to_string());
    for prefix in ["a", "ad"] {
        let a = b64(prefix);
        forms.push(a[4..a.len() - 4].to_string());
    }
    forms
}

/// The forms of the canary found in `text`.
fn found(text: &str) -> Vec<String> {
    forms().into_iter().filter(|f| text.contains(f)).collect()
}

/// A channel's text: it received the events (`witnesses` all appear) and holds no
/// form of the canary.
fn assert_channel(what: &str, text: &str, witnesses: &[&str]) {
    for w in witnesses {
        assert!(
            text.contains(w),
            "{what} never received {w:?}, so its check would mean nothing:\n{text}"
        );
    }
    let leaks = found(text);
    assert!(
        leaks.is_empty(),
        "the canary leaked into {what} as {leaks:?}:\n{text}"
    );
}

const PYTHON: &str = r#"
import sys

def fail(secrets):
    print("the function saw " + secrets["pw"], file=sys.stderr)
    raise RuntimeError("rejected " + secrets["pw"])
"#;

/// A server that answers the sinks with 200, and `/fail` with a 500 echoing the
/// request's secret in every form a server could: the raw query, decoded (JSON-escaped
/// in a text body), form-encoded, in a basic-auth header value, and the headers sent.
fn server() -> HttpServer {
    HttpServer::start(|r| {
        if r.path != "/fail" {
            return Response::json(200, &json!({}));
        }
        let decoded = url_decode(r.query.trim_start_matches("q="));
        let form: String = decoded
            .bytes()
            .map(|b| match b {
                b' ' => "+".to_string(),
                b if b.is_ascii_alphanumeric() || b"-._*".contains(&b) => char::from(b).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{decoded}"));
        Response::text(
            500,
            &json!({"query": r.query, "decoded": decoded, "form": form,
                    "basic": format!("Basic {basic}"),
                    "token": r.headers.get("x-token"), "auth": r.headers.get("authorization")})
            .to_string(),
        )
    })
}

/// The experiment: the canary in every kind of event (see the module's doc).
fn experiment(dir: &TempDir, srv: &HttpServer, metrics_port: u16) -> Value {
    dir.write("canary_py.py", PYTHON);
    let padding = "x".repeat(PADDING);
    let armed = dir.join("armed");
    let checked = dir.join("checked");
    json!({
        "title": "canary run for ${pw}",
        "description": "every kind of event carries the secret",
        "secrets": {"s": {"pw": CANARY}},
        "controls": [
            // A safeguard whose probe prints the secret once armed, and misses.
            {"name": "safeguards", "provider": {"type": "python", "module": "chaosaddons.controls.safeguards",
             "arguments": {"probes": [{"type": "probe", "name": "guard", "frequency": 0.05,
                "tolerance": {"type": "regex", "pattern": "^calm", "target": "stdout"},
                "provider": {"type": "process", "path": "sh", "arguments": ["-c",
                    format!("if [ -f {0} ]; then cat {0}; else echo calm; fi", armed.display())]}}]}}},
            // Controls configured with the secret: one faultline serves (its push URL
            // fails and the error is reported), one it does not know (a warning).
            {"name": "metrics", "provider": {"type": "python", "module": "chaosprometheus.metrics",
             "arguments": {"pushgateway_url": format!("http://127.0.0.1:{metrics_port}/kanary%4042%20sec%22ret-7d1e"),
                           "job": "canary"}}},
            {"name": "notes", "provider": {"type": "python", "module": "acme.notes",
             "arguments": {"token": CANARY}}}
        ],
        // Checked continuously during the method: prints padding then the secret and
        // misses, so the tolerance reason quotes the value, cut inside the secret.
        "steady-state-hypothesis": {"title": "calm with ${pw}", "probes": [
            {"type": "probe", "name": "calm-check",
             "tolerance": {"type": "regex", "pattern": "^calm", "target": "stdout"},
             "provider": {"type": "process", "path": "sh", "secrets": ["s"], "arguments": ["-c",
                format!("printf '%s%s' {padding} \"$1\"; echo >> {}", checked.display()), "_", "${pw}"]}}
        ]},
        "method": [
            // --verbose outputs and a process error message.
            {"type": "action", "name": "print", "provider": {"type": "process", "path": "sh", "secrets": ["s"],
             "arguments": ["-c", "echo \"out:$1\"; echo \"err:$1\" >&2; exit 3", "_", "${pw}"]}},
            // A Python exception holding the secret (and a line on its stderr).
            {"type": "action", "name": "py-raise", "provider": {"type": "python", "module": "canary_py",
             "func": "fail", "secrets": ["s"]}},
            // Failing HTTP requests whose query and headers hold the secret.
            {"type": "action", "name": "refused", "provider": {"type": "http", "secrets": ["s"],
             "url": format!("http://127.0.0.1:{}/r?q=${{pw}}", closed_port()),
             "headers": {"X-Token": "${pw}"}}},
            {"type": "action", "name": "answered-500", "provider": {"type": "http", "secrets": ["s"],
             "url": format!("{}?q=${{pw}}", srv.url("/fail")), "expected_status": 200,
             "headers": {"X-Token": "${pw}", "Authorization": "Bearer ${pw}"}}},
            // Once the continuous check has missed (its second run ended, so the
            // first one's verdict is out), arm the safeguard; it trips while `wait`
            // runs (bounded: 20 s at most, stopped by the trip).
            {"type": "action", "name": "arm", "provider": {"type": "process", "path": "sh", "secrets": ["s"],
             "arguments": ["-c", format!("for i in $(seq 400); do [ \"$(cat {} 2>/dev/null | wc -l)\" -ge 2 ] && break; sleep 0.05; done; printf '%s' \"$1\" > {}",
                checked.display(), armed.display()), "_", "${pw}"]}},
            sh("action", "wait", "for i in $(seq 400); do sleep 0.05; done")
        ],
        "rollbacks": [
            // A pause holding the secret: not a number of seconds, the rollback fails.
            {"type": "action", "name": "paused", "pauses": {"before": "${pw}"},
             "provider": {"type": "process", "path": "true"}},
            {"type": "action", "name": "rollback-print", "provider": {"type": "process", "path": "echo",
             "secrets": ["s"], "arguments": ["rollback", "${pw}"]}}
        ]
    })
}

/// Run `faultline` in `dir` with `args`, with only `env` as telemetry configuration.
fn run_clean(dir: &TempDir, args: &[&str], env: &[(&str, String)]) -> Output {
    let journal = dir.join("journal.json");
    let _ = std::fs::remove_file(&journal);
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        // The run history (embedded store) and its spool: the test's own.
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap());
    for k in TELEMETRY_VARS {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut guard = ChildGuard(Some(cmd.spawn().unwrap()));
    let code = wait_with_limit(guard.0.as_mut().unwrap(), Duration::from_secs(120));
    collect(dir, code, &journal)
}

/// The settings file: every log sink kind on `srv` and a JSON-lines file, plus `extra`
/// sinks (YAML list items).
fn settings(dir: &TempDir, srv: &HttpServer, extra: &str) -> String {
    let text = format!(
        "sinks:\n  - {{type: jsonl, path: '{}'}}\n  - {{type: http, url: '{}'}}\n  - {{type: http, url: '{}', format: loki}}\n  - {{type: http, url: '{}', format: splunk-hec, headers: {{Authorization: 'Splunk hec-token'}}}}\n  - {{type: humio, url: '{}', token: 'humio-token'}}\n{extra}",
        dir.join("events.jsonl").display(),
        srv.url("/array"),
        srv.url("/loki/api/v1/push"),
        srv.url("/services/collector/event"),
        srv.url(""),
    );
    dir.write("settings.yaml", &text).display().to_string()
}

/// Run the canary experiment; check what every run must show and what every channel
/// it always has (console, journal, file and http sinks) holds. Returns the output.
fn run_canary(
    dir: &TempDir,
    srv: &HttpServer,
    extra_sinks: &str,
    flags: &[&str],
    env: &[(&str, String)],
) -> Output {
    let metrics = closed_port();
    let exp = dir.experiment(&experiment(dir, srv, metrics));
    let settings = settings(dir, srv, extra_sinks);
    let journal = dir.join("journal.json");
    let var = format!("undeclared={CANARY}");
    let mut args = vec![
        "run",
        exp.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
        "--settings",
        &settings,
        "--verbose",
        "--hypothesis-strategy",
        "during-method-only",
        "--hypothesis-frequency",
        "0.05",
        "--var",
        &var,
    ];
    args.extend_from_slice(flags);
    let out = run_clean(dir, &args, env);
    assert_no_panic(&out);
    let j = out.journal();

    // The secret did its job: the real value reached the server, in query and headers.
    let fail = srv
        .requests()
        .into_iter()
        .find(|r| r.path == "/fail")
        .expect("the 500 server was called");
    assert_eq!(url_decode(fail.query.trim_start_matches("q=")), CANARY);
    assert_eq!(fail.headers["x-token"], CANARY);

    // Every kind of event happened, masked where the secret was.
    assert_eq!(j["status"], "interrupted", "{}", out.all_text());
    let by = j["extensions"][0]["interrupted_by"]
        .as_str()
        .unwrap_or_default();
    assert!(
        by.contains("safeguard 'guard' tripped") && by.contains("***"),
        "{by}"
    );
    assert_eq!(j["experiment"]["title"], "canary run for ***");
    let run = &j["run"];
    assert_eq!(entry(run, "print")["output"]["stdout"], "out:***\n");
    assert_eq!(entry(run, "print")["output"]["stderr"], "err:***\n");
    assert!(exception_text(entry(run, "py-raise")).contains("rejected ***"));
    assert!(
        exception_text(entry(run, "refused")).contains("q=***"),
        "{:#}",
        entry(run, "refused")
    );
    let e500 = exception_text(entry(run, "answered-500"));
    assert!(e500.contains("500") && e500.contains("***"), "{e500}");
    let body = entry(run, "answered-500")["output"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        body.contains("\"basic\":\"Basic ") && body.contains("***"),
        "{body}"
    );
    let during = j["steady_states"]["during"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        during.iter().any(|d| d["steady_state_met"] == false),
        "the continuous check missed: {during:#?}"
    );
    let rb = &j["rollbacks"];
    assert_eq!(
        entry(rb, "rollback-print")["output"]["stdout"],
        "rollback ***\n"
    );
    assert!(
        exception_text(entry(rb, "paused")).contains("***"),
        "{:#}",
        entry(rb, "paused")
    );

    // The journal, as written on disk.
    let raw = std::fs::read_to_string(&journal).unwrap();
    assert_channel(
        "the journal",
        &raw,
        &[
            "rejected ***",
            "safeguard 'guard' tripped",
            "pauses.before",
            "out:***",
        ],
    );
    // The run history: the record as the store keeps it (the title substituted).
    let history = faultline(dir, &["runs", "list", "--format", "json"], &[]);
    assert_eq!(history.code, 0, "{}", history.all_text());
    assert_channel("the run history", &history.stdout, &["canary run for ***"]);
    // The console: its lines, its errors and warnings.
    assert_channel("stdout", &out.stdout, &[]);
    assert_channel(
        "stderr (the console)",
        &out.stderr,
        &[
            "rejected ***",
            "guard",
            "tripped",
            "not declared",
            "acme.notes",
            "out:***",
            "calm-check",
            "Prometheus",
        ],
    );
    // Every log sink got the events; none got the secret.
    let structured = [
        "safeguard.tripped",
        "activity.failed",
        "tolerance.checked",
        "activity.output",
        "rejected ***",
        "canary run for ***",
    ];
    let jsonl = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    assert_channel("the jsonl sink", &jsonl, &structured);
    // The trip's record carries its structured fields (once `{}`), masked.
    let trip: Value = jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["event"] == "safeguard.tripped")
        .expect("a safeguard.tripped record");
    assert_eq!(trip["fields"]["safeguard"], "guard", "{trip}");
    assert!(
        trip["fields"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("***")),
        "{trip}"
    );
    for (path, what) in [
        ("/array", "the http sink (array)"),
        ("/loki/api/v1/push", "the http sink (Loki)"),
        ("/services/collector/event", "the http sink (Splunk HEC)"),
        ("/api/v1/ingest/humio-structured", "the Humio sink"),
    ] {
        let bodies: String = srv
            .requests()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| format!("{}\n{:?}\n", r.text(), r.headers))
            .collect();
        assert_channel(what, &bodies, &structured);
    }
    out
}

/// Spans (OTLP or the trace file) received the events, masked: the title, the
/// safeguard's trip, the tolerance miss, the failed activities' statuses and the
/// client span of the refused request.
fn assert_spans(what: &str, spans: &[SpanView]) {
    let text = format!("{spans:#?}");
    let has = |name: &str| spans.iter().any(|s| s.name == name);
    assert!(
        has("chaos.experiment"),
        "{what}: no experiment span:\n{text}"
    );
    let exp = spans.iter().find(|s| s.name == "chaos.experiment").unwrap();
    assert_eq!(
        exp.attr_str("chaos.experiment.title"),
        Some("canary run for ***"),
        "{what}"
    );
    assert!(
        exp.events.iter().any(|e| e.name == "chaos.safeguard"),
        "{what}: no safeguard event:\n{text}"
    );
    let events: Vec<_> = spans.iter().flat_map(|s| &s.events).collect();
    assert!(
        events.iter().any(|e| e.name == "chaos.tolerance"
            && e.attributes.get("chaos.tolerance.met") == Some(&json!(false))),
        "{what}: no missed tolerance:\n{text}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.status_message.contains("rejected ***")),
        "{what}: no failed python span:\n{text}"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.kind == "CLIENT"
                && s.attr_str("url.full").is_some_and(|u| u.contains("q=***"))),
        "{what}: no client span with the masked URL:\n{text}"
    );
    assert_channel(what, &text, &["***"]);
}

/// OTLP log records received the events, masked.
fn assert_logs(what: &str, logs: &[LogView]) {
    let text = format!("{logs:#?}");
    assert_channel(
        what,
        &text,
        &[
            "safeguard.tripped",
            "activity.failed",
            "tolerance.checked",
            "rejected ***",
            "canary run for ***",
        ],
    );
}

#[test]
fn the_canary_reaches_no_channel_string_console_otlp_spans_and_logs() {
    let dir = TempDir::new("canary-otlp");
    let srv = server();
    let rx = OtlpReceiver::http();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
    ];
    let out = run_canary(&dir, &srv, "", &["--log-format", "string"], &env);
    // Spans and logs were sent before faultline exited; this only waits for the
    // receiver's thread to have recorded them.
    assert!(
        rx.wait_spans_until(Duration::from_secs(10), |s| s
            .iter()
            .any(|s| s.name == "chaos.experiment")),
        "no experiment span received:\n{}",
        out.all_text()
    );
    assert_spans("the spans sent over OTLP", &rx.spans());
    let logs = rx.wait_for_logs(1, Duration::from_secs(10));
    assert!(!logs.is_empty());
    assert_logs("the OTLP logs (from the endpoint)", &rx.logs());
    // Everything the collector received, headers included.
    assert_channel(
        "the OTLP requests' headers",
        &format!("{:?}", rx.requests()),
        &[],
    );
}

#[test]
fn the_canary_reaches_no_channel_json_console_trace_file_otlp_logs_sink() {
    let dir = TempDir::new("canary-file");
    let srv = server();
    let rx = OtlpReceiver::grpc();
    let extra = format!(
        "  - {{type: otlp, endpoint: '{}', protocol: grpc}}\n",
        rx.endpoint()
    );
    let out = run_canary(&dir, &srv, &extra, &["--log-format", "json"], &[]);
    for line in out.stderr.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("console line is not JSON ({e}): {line}"));
    }
    let spans = crate::tracing::file_spans(&dir.join("journal.trace.json"));
    assert_spans("the trace file", &spans);
    assert_channel(
        "the trace file (as written)",
        &std::fs::read_to_string(dir.join("journal.trace.json")).unwrap(),
        &["***"],
    );
    let logs = rx.wait_for_logs(1, Duration::from_secs(10));
    assert!(!logs.is_empty());
    assert_logs("the OTLP logs (a settings sink over gRPC)", &rx.logs());
}
