//! Tracing end to end: the real `faultline` binary exporting to the real OTLP receivers
//! of `otlp.rs` (gRPC, HTTP/protobuf, HTTP/JSON) or to its default `journal.trace.json`.
//!
//! What is proved here: the span tree (parents, names, kinds, statuses, attributes,
//! events), that the trace id on the console and in the journal is the spans' one, W3C
//! propagation to HTTP servers, child processes and Python functions, joining a CI
//! pipeline's `TRACEPARENT`, the demo service's spans inside the experiment's trace,
//! that a dead, silent or failing collector changes nothing about the run, and that no
//! secret reaches a span. Timing is printed and only checked against a generous safety
//! bound: the exit-delay goal itself is measured by `benches/telemetry.rs`.

use crate::common::*;
use crate::otlp::{Blackhole, EventView, OtlpReceiver, SpanView, Transport};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a receiver may take to hold every span once faultline has exited (its
/// shutdown flushes them before the exit, so this is only a safety net).
const SPAN_WAIT: Duration = Duration::from_secs(10);

/// A W3C parent (a CI pipeline's span) for the joining test.
const CI_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CI_SPAN: &str = "00f067aa0ba902b7";

// ---------------------------------------------------------------------------
// Running faultline with a clean telemetry environment
// ---------------------------------------------------------------------------

/// `faultline run experiment.json --journal-path journal.json` in `dir`, started (not
/// awaited) with only `env` as telemetry configuration.
fn start_run(dir: &TempDir, exp: &Value, env: &[(&str, &str)]) -> Child {
    let path = dir.experiment(exp);
    let journal = dir.join("journal.json");
    let _ = std::fs::remove_file(&journal);
    let out = std::fs::File::create(dir.join("stdout.txt")).unwrap();
    let err = std::fs::File::create(dir.join("stderr.txt")).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["run", path.to_str().unwrap(), "--journal-path"])
        .arg(&journal)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for k in TELEMETRY_VARS {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Run to completion (60 s hard limit); also returns the wall time of the process.
fn run_timed(dir: &TempDir, exp: &Value, env: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let mut guard = ChildGuard(Some(start_run(dir, exp, env)));
    let code = wait_with_limit(guard.0.as_mut().unwrap(), Duration::from_secs(60));
    let took = started.elapsed();
    (collect(dir, code, &dir.join("journal.json")), took)
}

fn run(dir: &TempDir, exp: &Value, env: &[(&str, &str)]) -> Output {
    run_timed(dir, exp, env).0
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` + `OTEL_EXPORTER_OTLP_PROTOCOL` for `rx`.
fn otlp_env(rx: &OtlpReceiver, t: Transport) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", t.as_str().to_string()),
    ]
}

/// Borrowed pairs for [`run`].
fn refs<'a>(env: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The value printed after `prefix` on a console line ("Trace id: ...").
fn console_value(out: &Output, prefix: &str) -> String {
    let text = out.all_text();
    text.lines()
        .find_map(|l| l.split_once(prefix).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {prefix:?} line on the console:\n{text}"))
}

/// The journal's faultline extension.
fn extension(out: &Output) -> &Value {
    let ext = &out.journal()["extensions"][0];
    assert_eq!(
        ext["name"],
        "faultline",
        "{:#}",
        out.journal()["extensions"]
    );
    ext
}

fn run_id(out: &Output) -> String {
    extension(out)["run_id"].as_str().unwrap().to_string()
}

fn journal_trace_id(out: &Output) -> String {
    extension(out)["trace_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no trace_id in {:#}", extension(out)))
        .to_string()
}

// ---------------------------------------------------------------------------
// Span helpers over a plain list (receiver or trace file)
// ---------------------------------------------------------------------------

fn names(spans: &[SpanView]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

/// The only span named `name`.
fn one<'a>(spans: &'a [SpanView], name: &str) -> &'a SpanView {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    match found.as_slice() {
        [s] => s,
        _ => panic!(
            "expected one span named {name:?}, found {}; spans: {:?}",
            found.len(),
            names(spans)
        ),
    }
}

fn named<'a>(spans: &'a [SpanView], name: &str) -> Vec<&'a SpanView> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// Direct children of `parent`, in start order.
fn kids<'a>(spans: &'a [SpanView], parent: &SpanView) -> Vec<&'a SpanView> {
    let mut k: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id)
        .collect();
    k.sort_by_key(|s| s.start_unix_nano);
    k
}

/// The only child of `parent` named `name`.
fn kid<'a>(spans: &'a [SpanView], parent: &SpanView, name: &str) -> &'a SpanView {
    let k: Vec<_> = kids(spans, parent)
        .into_iter()
        .filter(|s| s.name == name)
        .collect();
    match k.as_slice() {
        [s] => s,
        _ => panic!(
            "expected one child {name:?} of {:?}, found {}; its children: {:?}",
            parent.name,
            k.len(),
            kids(spans, parent)
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
        ),
    }
}

fn events<'a>(s: &'a SpanView, name: &str) -> Vec<&'a EventView> {
    s.events.iter().filter(|e| e.name == name).collect()
}

fn not_error(s: &SpanView) {
    assert_ne!(s.status_code, "ERROR", "span {:?} is ERROR: {s:#?}", s.name);
}

fn is_error(s: &SpanView) {
    assert_eq!(
        s.status_code, "ERROR",
        "span {:?} should be ERROR: {s:#?}",
        s.name
    );
}

/// `traceparent` split into (trace id, parent id, flags).
fn traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.trim().split('-').collect();
    assert_eq!(parts.len(), 4, "not a W3C traceparent: {v:?}");
    assert_eq!(parts[0], "00", "{v:?}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(n) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(n);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// W3C baggage as decoded key/value pairs (properties dropped).
fn baggage(v: &str) -> Map<String, Value> {
    v.split(',')
        .filter_map(|item| {
            let item = item.split(';').next()?.trim();
            let (k, v) = item.split_once('=')?;
            Some((
                percent_decode(k.trim()),
                Value::String(percent_decode(v.trim())),
            ))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The trace file (OTLP JSON: resourceSpans[].scopeSpans[].spans[])
// ---------------------------------------------------------------------------

fn json_any(v: &Value) -> Value {
    let Some(o) = v.as_object() else {
        return Value::Null;
    };
    if let Some(s) = o.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = o.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = o.get("intValue") {
        return match i {
            Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(i.clone()),
            other => other.clone(),
        };
    }
    if let Some(d) = o.get("doubleValue") {
        return d.clone();
    }
    if let Some(a) = o.get("arrayValue") {
        return Value::Array(
            a["values"]
                .as_array()
                .map(|vs| vs.iter().map(json_any).collect())
                .unwrap_or_default(),
        );
    }
    if let Some(kv) = o.get("kvlistValue") {
        return Value::Object(json_attrs(&kv["values"]));
    }
    Value::Null
}

fn json_attrs(list: &Value) -> Map<String, Value> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_string(),
                        json_any(&kv["value"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn json_u64(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_default(),
        other => other.as_u64().unwrap_or_default(),
    }
}

fn json_enum(v: &Value, names: &[&str], prefix: &str) -> String {
    match v {
        Value::String(s) => s.trim_start_matches(prefix).to_string(),
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| names.get(i as usize))
            .map_or_else(|| format!("CODE_{n}"), |s| s.to_string()),
        _ => names[0].to_string(),
    }
}

/// Every span of an OTLP JSON trace file, as the receivers' views.
pub fn file_spans(path: &Path) -> Vec<SpanView> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("the trace file is JSON");
    let mut out = Vec::new();
    for rs in doc["resourceSpans"].as_array().expect("resourceSpans") {
        let resource = json_attrs(&rs["resource"]["attributes"]);
        for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
            let scope = ss["scope"]["name"].as_str().unwrap_or_default().to_string();
            let scope_version = ss["scope"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for s in ss["spans"].as_array().expect("spans") {
                let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                out.push(SpanView {
                    transport: Transport::HttpJson,
                    resource: resource.clone(),
                    scope: scope.clone(),
                    scope_version: scope_version.clone(),
                    name: text("name"),
                    kind: json_enum(
                        &s["kind"],
                        &[
                            "UNSPECIFIED",
                            "INTERNAL",
                            "SERVER",
                            "CLIENT",
                            "PRODUCER",
                            "CONSUMER",
                        ],
                        "SPAN_KIND_",
                    ),
                    trace_id: text("traceId").to_ascii_lowercase(),
                    span_id: text("spanId").to_ascii_lowercase(),
                    parent_span_id: text("parentSpanId").to_ascii_lowercase(),
                    trace_state: text("traceState"),
                    status_code: json_enum(
                        &s["status"]["code"],
                        &["UNSET", "OK", "ERROR"],
                        "STATUS_CODE_",
                    ),
                    status_message: s["status"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    attributes: json_attrs(&s["attributes"]),
                    events: s["events"]
                        .as_array()
                        .map(|es| {
                            es.iter()
                                .map(|e| EventView {
                                    name: e["name"].as_str().unwrap_or_default().to_string(),
                                    time_unix_nano: json_u64(&e["timeUnixNano"]),
                                    attributes: json_attrs(&e["attributes"]),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    links: Vec::new(),
                    start_unix_nano: json_u64(&s["startTimeUnixNano"]),
                    end_unix_nano: json_u64(&s["endTimeUnixNano"]),
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 1. The span tree
// ---------------------------------------------------------------------------

const TREE_TITLE: &str = "tracing tree";

/// Hypothesis (an http probe), method (a process action), rollbacks (a process action):
/// 11 spans.
fn tree_experiment(srv: &HttpServer) -> Value {
    json!({
        "title": TREE_TITLE,
        "description": "every lifecycle step is a span",
        "tags": ["tracing", "it"],
        "steady-state-hypothesis": {"title": "the service answers", "probes": [
            {"type": "probe", "name": "health", "tolerance": 200,
             "provider": {"type": "http", "url": srv.url("/health"), "timeout": 5}}
        ]},
        "method": [sh("action", "work", "echo working; exit 0")],
        "rollbacks": [process("action", "undo", "true", &[])],
    })
}

const TREE_SPANS: usize = 11;

fn health_server() -> HttpServer {
    HttpServer::start(|_| Response::text(200, "ok"))
}

/// Everything the issue says about the tree of a healthy run.
fn assert_tree(spans: &[SpanView], out: &Output, srv: &HttpServer, service: &str) {
    assert_eq!(spans.len(), TREE_SPANS, "{:?}", names(spans));
    let exp = one(spans, "chaos.experiment");
    assert!(exp.is_root(), "{exp:#?}");
    assert_eq!(exp.kind, "INTERNAL");
    assert_eq!(exp.scope, "faultline");

    // One trace: the one on the console and in the journal.
    let trace = &exp.trace_id;
    assert_eq!(trace.len(), 32);
    assert!(
        spans.iter().all(|s| &s.trace_id == trace),
        "{:#?}",
        spans
            .iter()
            .map(|s| (&s.name, &s.trace_id))
            .collect::<Vec<_>>()
    );
    assert_eq!(&console_value(out, "Trace id: "), trace);
    assert_eq!(&journal_trace_id(out), trace);

    // Resource and the experiment's attributes.
    let run = run_id(out);
    assert_eq!(console_value(out, "Run id: "), run);
    for s in spans {
        assert_eq!(s.service_name(), Some(service), "{s:#?}");
        assert_eq!(s.resource["chaos.run.id"], run.as_str());
        not_error(s);
    }
    assert_eq!(exp.attr_str("chaos.run.id"), Some(run.as_str()));
    assert_eq!(exp.attr_str("chaos.experiment.title"), Some(TREE_TITLE));
    assert_eq!(exp.attr_str("chaos.experiment.status"), Some("completed"));
    assert_eq!(exp.attr("chaos.experiment.deviated"), Some(&json!(false)));

    // Children of the experiment, in lifecycle order.
    let top: Vec<_> = kids(spans, exp);
    let top_names: Vec<&str> = top.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        top_names,
        [
            "chaos.hypothesis",
            "chaos.method",
            "chaos.hypothesis",
            "chaos.rollbacks"
        ]
    );
    for w in top.windows(2) {
        assert!(
            w[0].end_unix_nano <= w[1].start_unix_nano,
            "{} ends after {} starts",
            w[0].name,
            w[1].name
        );
    }
    let (before, method, after, rollbacks) = (top[0], top[1], top[2], top[3]);
    assert_eq!(before.attr_str("chaos.hypothesis.phase"), Some("before"));
    assert_eq!(after.attr_str("chaos.hypothesis.phase"), Some("after"));
    for s in &top {
        assert_eq!(s.kind, "INTERNAL", "{s:#?}");
        assert!(s.start_unix_nano >= exp.start_unix_nano && s.end_unix_nano <= exp.end_unix_nano);
    }

    // Each hypothesis: "probe health" -> "HTTP GET" (CLIENT).
    for h in [before, after] {
        assert_eq!(kids(spans, h).len(), 1, "{:?}", names(spans));
        let probe = kid(spans, h, "probe health");
        assert_eq!(probe.kind, "INTERNAL");
        assert_eq!(probe.attr_str("chaos.activity.name"), Some("health"));
        assert_eq!(probe.attr_str("chaos.activity.type"), Some("probe"));
        assert_eq!(probe.attr_str("chaos.activity.status"), Some("succeeded"));
        let tol = probe.event("chaos.tolerance").expect("a tolerance event");
        assert_eq!(tol.attributes["chaos.tolerance.met"], true);
        assert_eq!(tol.attributes["chaos.tolerance.expected"], "200");

        assert_eq!(kids(spans, probe).len(), 1);
        let client = kid(spans, probe, "HTTP GET");
        assert_eq!(client.kind, "CLIENT");
        assert_eq!(client.attr_str("http.request.method"), Some("GET"));
        assert_eq!(
            client.attr_str("url.full"),
            Some(srv.url("/health").as_str())
        );
        assert_eq!(client.attr_i64("http.response.status_code"), Some(200));
        assert_eq!(client.attr_str("server.address"), Some("127.0.0.1"));
        assert_eq!(client.attr_i64("server.port"), Some(i64::from(srv.port)));
        assert!(client.start_unix_nano >= probe.start_unix_nano);
        assert!(client.end_unix_nano <= probe.end_unix_nano);
    }

    // The method's and the rollbacks' process actions.
    assert_eq!(kids(spans, method).len(), 1);
    let work = kid(spans, method, "action work");
    assert_eq!(work.kind, "INTERNAL");
    assert_eq!(work.attr_str("chaos.activity.name"), Some("work"));
    assert_eq!(work.attr_str("chaos.activity.type"), Some("action"));
    assert_eq!(work.attr_str("chaos.activity.status"), Some("succeeded"));
    assert_eq!(work.attr_str("process.executable.name"), Some("sh"));
    assert_eq!(work.attr_i64("process.exit.code"), Some(0));
    assert_eq!(kids(spans, rollbacks).len(), 1);
    let undo = kid(spans, rollbacks, "action undo");
    assert_eq!(undo.attr_str("process.executable.name"), Some("true"));
    assert_eq!(undo.attr_i64("process.exit.code"), Some(0));
    assert_eq!(undo.attr_str("chaos.activity.status"), Some("succeeded"));
}

fn span_tree_over(transport: Transport, extra: &[(&str, &str)], service: &str) {
    let dir = TempDir::new(&format!("tr-tree-{}", transport.as_str().replace('/', "-")));
    let rx = if transport == Transport::Grpc {
        OtlpReceiver::grpc()
    } else {
        OtlpReceiver::http()
    };
    let srv = health_server();
    let mut env = otlp_env(&rx, transport);
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment=chaos-it,team=sre%20core".into(),
    ));
    env.push((
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20otlp-token-4411,x-tenant=chaos".into(),
    ));
    let mut env = refs(&env);
    env.extend_from_slice(extra);
    let out = run(&dir, &tree_experiment(&srv), &env);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    let spans = rx.wait_for_spans(TREE_SPANS, SPAN_WAIT);
    assert!(
        spans.iter().all(|s| s.transport == transport),
        "{:?}",
        spans.iter().map(|s| s.transport).collect::<Vec<_>>()
    );
    assert_tree(&spans, &out, &srv, service);
    let exp = one(&spans, "chaos.experiment");
    assert_eq!(exp.resource["deployment.environment"], "chaos-it");
    assert_eq!(exp.resource["team"], "sre core");
    assert!(
        out.all_text()
            .contains(&format!("{TREE_SPANS} spans sent to")),
        "{}",
        out.all_text()
    );
}

#[test]
fn span_tree_over_otlp_grpc() {
    span_tree_over(Transport::Grpc, &[], "faultline");
}

#[test]
fn span_tree_over_otlp_http_protobuf_honours_otel_service_name() {
    span_tree_over(
        Transport::HttpProtobuf,
        &[("OTEL_SERVICE_NAME", "chaos-pipeline")],
        "chaos-pipeline",
    );
}

#[test]
fn span_tree_over_otlp_http_json() {
    span_tree_over(Transport::HttpJson, &[], "faultline");
}

// ---------------------------------------------------------------------------
// 2. Statuses and events
// ---------------------------------------------------------------------------

#[test]
fn failures_tolerance_misses_and_deviation_are_errors_with_events() {
    let dir = TempDir::new("tr-status");
    let rx = OtlpReceiver::http();
    let pidfile = dir.join("slow.pid");
    let _sleeps = SleepGuard(vec![pidfile.clone()]);
    let refused = format!("http://127.0.0.1:{}/down", closed_port());
    let e = json!({
        "title": "tracing statuses",
        "description": "failures, pauses, retries, a tolerance miss and a deviation",
        "steady-state-hypothesis": {"title": "nothing is broken", "probes": [
            with(sh("probe", "steady", "test ! -e broken"), "tolerance", json!(0))
        ]},
        "method": [
            with_provider(
                sh("action", "slow", &format!("echo $$ > {}; exec sleep 30", pidfile.display())),
                "timeout", json!(0.5)),
            {"type": "action", "name": "retry",
             "provider": {"type": "http", "url": refused, "max_retries": 2, "timeout": 2}},
            with(sh("action", "break", "touch broken"), "pauses", json!({"after": 0.1})),
        ],
        "rollbacks": [sh("action", "repair", "rm -f broken")],
    });
    let out = run(&dir, &e, &refs(&otlp_env(&rx, Transport::HttpProtobuf)));
    assert_eq!(out.status(), "completed", "{}", out.all_text());
    assert!(out.deviated());
    let ok = rx.wait_spans_until(SPAN_WAIT, |s| {
        s.iter().any(|s| s.name == "chaos.experiment")
    });
    assert!(ok, "no experiment span: {:?}", names(&rx.spans()));
    let spans = rx.spans();

    // A process timeout: the activity is ERROR, with its error.
    let slow = one(&spans, "action slow");
    is_error(slow);
    assert_eq!(slow.attr_str("chaos.activity.status"), Some("failed"));
    let err = slow.attr_str("chaos.activity.error").unwrap_or_default();
    assert!(err.contains("too long"), "{slow:#?}");
    assert!(slow.status_message.contains("too long"), "{slow:#?}");
    // faultline's own words: chaoslib's class name stays in the journal only.
    for text in [err, slow.status_message.as_str()] {
        assert!(!text.contains("chaoslib"), "{slow:#?}");
    }
    assert_eq!(slow.attr("chaos.activity.timeout"), Some(&json!(0.5)));

    // Connection refused twice retried: chaos.retry events on the CLIENT span.
    let retry = one(&spans, "action retry");
    is_error(retry);
    let client = kid(&spans, retry, "HTTP GET");
    assert_eq!(client.kind, "CLIENT");
    is_error(client);
    let attempts: Vec<_> = events(client, "chaos.retry")
        .iter()
        .map(|e| e.attributes["chaos.retry.attempt"].clone())
        .collect();
    assert_eq!(attempts, [json!(1), json!(2)], "{client:#?}");
    assert_eq!(client.attr("http.response.status_code"), None);

    // A pause after "break".
    let brk = one(&spans, "action break");
    not_error(brk);
    let pause = brk.event("chaos.pause").expect("a pause event");
    assert_eq!(pause.attributes["chaos.pause.seconds"], json!(0.1));
    assert_eq!(pause.attributes["chaos.pause.when"], "after");

    // The tolerance verdicts: met before, missed after.
    let exp = one(&spans, "chaos.experiment");
    let hyps = named(&spans, "chaos.hypothesis");
    assert_eq!(hyps.len(), 2);
    let phase = |p: &str| {
        *hyps
            .iter()
            .find(|h| h.attr_str("chaos.hypothesis.phase") == Some(p))
            .unwrap_or_else(|| panic!("no {p} hypothesis"))
    };
    let (before, after) = (phase("before"), phase("after"));
    for h in [before, after] {
        assert_eq!(h.parent_span_id, exp.span_id);
    }
    not_error(before);
    assert_eq!(before.attr("chaos.hypothesis.met"), Some(&json!(true)));
    let met = kid(&spans, before, "probe steady");
    not_error(met);
    let tol = met.event("chaos.tolerance").expect("tolerance event");
    assert_eq!(tol.attributes["chaos.tolerance.met"], true);

    is_error(after);
    assert_eq!(after.attr("chaos.hypothesis.met"), Some(&json!(false)));
    let missed = kid(&spans, after, "probe steady");
    is_error(missed);
    // The probe itself succeeded: only its tolerance was missed.
    assert_eq!(missed.attr_str("chaos.activity.status"), Some("succeeded"));
    assert_eq!(missed.attr_i64("process.exit.code"), Some(1));
    let tol = missed.event("chaos.tolerance").expect("tolerance event");
    assert_eq!(tol.attributes["chaos.tolerance.met"], false);
    assert_eq!(tol.attributes["chaos.tolerance.expected"], "0");
    let reason = tol.attributes["chaos.tolerance.reason"]
        .as_str()
        .unwrap_or_default();
    // Expected vs actual: the exit code the probe returned.
    assert!(reason.contains("got 1"), "{tol:#?}");
    assert_eq!(missed.attr("chaos.tolerance.met"), Some(&json!(false)));

    // The deviation: the experiment is ERROR; rollbacks went fine.
    is_error(exp);
    assert_eq!(exp.attr("chaos.experiment.deviated"), Some(&json!(true)));
    assert_eq!(exp.attr_str("chaos.experiment.status"), Some("completed"));
    let rb = one(&spans, "chaos.rollbacks");
    not_error(rb);
    not_error(kid(&spans, rb, "action repair"));
}

#[test]
fn a_healthy_run_has_no_error_span() {
    // The tree tests check every span; here a run without hypothesis or rollbacks too.
    let dir = TempDir::new("tr-ok");
    let rx = OtlpReceiver::grpc();
    let e = json!({"title": "all fine", "description": "d",
        "method": [sh("action", "a", "true"), with(sh("probe", "b", "echo b"), "pauses", json!({"before": 0.05}))]});
    let out = run(&dir, &e, &refs(&otlp_env(&rx, Transport::Grpc)));
    assert_eq!(out.code, 0, "{}", out.all_text());
    let spans = rx.wait_for_spans(5, SPAN_WAIT);
    let mut n = names(&spans);
    n.sort_unstable();
    // Rollbacks are played (an empty list) under the default strategy.
    assert_eq!(
        n,
        [
            "action a",
            "chaos.experiment",
            "chaos.method",
            "chaos.rollbacks",
            "probe b"
        ]
    );
    for s in &spans {
        assert!(s.status_code == "UNSET" || s.status_code == "OK", "{s:#?}");
    }
    let b = one(&spans, "probe b");
    let pause = b.event("chaos.pause").expect("pause before");
    assert_eq!(pause.attributes["chaos.pause.when"], "before");
}

#[test]
fn sigterm_during_an_activity_makes_the_experiment_span_error_with_an_interrupt_event() {
    let dir = TempDir::new("tr-interrupt");
    let rx = OtlpReceiver::http();
    let pidfile = dir.join("long.pid");
    let _sleeps = SleepGuard(vec![pidfile.clone()]);
    let e = json!({"title": "interrupted", "description": "d",
        "method": [sh("action", "long",
            &format!("echo $$ > {}; touch started; exec sleep 30", pidfile.display()))],
        "rollbacks": [sh("action", "undo", "true")]});
    let env = otlp_env(&rx, Transport::HttpProtobuf);
    let mut guard = ChildGuard(Some(start_run(&dir, &e, &refs(&env))));
    let child = guard.0.as_mut().unwrap();
    let started = dir.join("started");
    wait_until(
        Duration::from_secs(20),
        "the long activity to start",
        || started.exists(),
    );
    send_signal(child.id(), "TERM");
    let code = wait_with_limit(child, Duration::from_secs(20));
    let out = collect(&dir, code, &dir.join("journal.json"));
    assert_eq!(out.status(), "interrupted", "{}", out.all_text());
    assert!(rx.wait_spans_until(SPAN_WAIT, |s| s
        .iter()
        .any(|s| s.name == "chaos.experiment")));
    let spans = rx.spans();
    let exp = one(&spans, "chaos.experiment");
    is_error(exp);
    assert_eq!(exp.attr_str("chaos.experiment.status"), Some("interrupted"));
    let ev = exp.event("chaos.interrupt").expect("an interrupt event");
    let reason = ev.attributes["chaos.interrupt.reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("SIGTERM"), "{ev:#?}");
    let long = one(&spans, "action long");
    is_error(long);
    assert!(long.event("chaos.interrupt").is_some(), "{long:#?}");
    is_error(one(&spans, "chaos.method"));
    // Rollbacks still play, and are fine.
    not_error(one(&spans, "action undo"));
}

#[test]
fn continuous_checks_and_background_activities_hang_under_the_method() {
    let dir = TempDir::new("tr-during");
    let rx = OtlpReceiver::grpc();
    let e = json!({"title": "continuous", "description": "d",
    "runtime": {"hypothesis": {"strategy": "continuously", "frequency": 0.2}},
    "steady-state-hypothesis": {"title": "steady", "probes": [
        with(sh("probe", "steady", "true"), "tolerance", json!(0))]},
    "method": [
        with(sh("action", "bg", "sleep 0.2"), "background", json!(true)),
        sh("action", "wait", "sleep 0.8"),
    ]});
    let out = run(&dir, &e, &refs(&otlp_env(&rx, Transport::Grpc)));
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(rx.wait_spans_until(SPAN_WAIT, |s| s
        .iter()
        .any(|s| s.name == "chaos.experiment")));
    let spans = rx.spans();
    let exp = one(&spans, "chaos.experiment");
    let method = one(&spans, "chaos.method");
    let phase = |p: &str| -> Vec<&SpanView> {
        let mut v: Vec<_> = named(&spans, "chaos.hypothesis")
            .into_iter()
            .filter(|h| h.attr_str("chaos.hypothesis.phase") == Some(p))
            .collect();
        v.sort_by_key(|h| h.start_unix_nano);
        v
    };
    let (before, during, after) = (phase("before"), phase("during"), phase("after"));
    assert_eq!(before.len(), 1);
    assert_eq!(after.len(), 1);
    for h in before.iter().chain(&after) {
        assert_eq!(h.parent_span_id, exp.span_id);
    }
    // One span per continuous check, numbered, under the method.
    let checks = out.journal()["steady_states"]["during"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(during.len() >= 2, "{:?}", names(&spans));
    assert_eq!(during.len(), checks, "one span per journal entry");
    for (i, h) in during.iter().enumerate() {
        assert_eq!(h.parent_span_id, method.span_id, "{h:#?}");
        assert_eq!(h.attr_i64("chaos.hypothesis.iteration"), Some(i as i64 + 1));
        not_error(h);
        let probe = kid(&spans, h, "probe steady");
        assert_eq!(probe.attr_str("chaos.activity.phase"), Some("during"));
    }
    // The background activity belongs to the method too.
    let bg = one(&spans, "action bg");
    assert_eq!(bg.parent_span_id, method.span_id);
    assert_eq!(bg.attr("chaos.activity.background"), Some(&json!(true)));
    assert_eq!(one(&spans, "action wait").parent_span_id, method.span_id);
}

// ---------------------------------------------------------------------------
// 3. Propagation
// ---------------------------------------------------------------------------

/// A module the python bridge imports from the run's directory.
const TP_PY: &str = r#"
import os

def context():
    return {
        "traceparent": os.environ.get("TRACEPARENT", ""),
        "baggage": os.environ.get("BAGGAGE", ""),
    }
"#;

const PROPAGATION_TITLE: &str = "propagation: spans, children & servers";

fn propagation_experiment(srv: &HttpServer) -> Value {
    json!({"title": PROPAGATION_TITLE, "description": "d",
    "method": [
        {"type": "probe", "name": "echo",
         "provider": {"type": "http", "url": srv.url("/echo"), "timeout": 5}},
        sh("action", "env", r#"echo "$TRACEPARENT|$TRACESTATE|$BAGGAGE" > out"#),
        python("probe", "py", "tp", "context", json!({})),
    ]})
}

#[test]
fn traceparent_and_baggage_reach_http_servers_processes_and_python() {
    let dir = TempDir::new("tr-propagate");
    dir.write("tp.py", TP_PY);
    let rx = OtlpReceiver::http();
    let srv = health_server();
    let out = run(
        &dir,
        &propagation_experiment(&srv),
        &refs(&otlp_env(&rx, Transport::HttpProtobuf)),
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let spans = rx.wait_for_spans(6, SPAN_WAIT);
    let exp = one(&spans, "chaos.experiment");
    let trace = exp.trace_id.clone();
    assert_eq!(journal_trace_id(&out), trace);
    let run = run_id(&out);

    // The HTTP server: traceparent from the CLIENT span, baggage with run and title.
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    let h = &reqs[0].headers;
    let client = kid(&spans, one(&spans, "probe echo"), "HTTP GET");
    let (t, parent, flags) = traceparent(h.get("traceparent").expect("a traceparent header"));
    assert_eq!(t, trace);
    assert_eq!(
        parent, client.span_id,
        "the server's parent is the CLIENT span"
    );
    assert_eq!(flags, "01");
    let bag = baggage(h.get("baggage").expect("a baggage header"));
    assert_eq!(bag.get("chaos.run.id"), Some(&json!(run)), "{h:#?}");
    assert_eq!(bag.get("chaos.experiment"), Some(&json!(PROPAGATION_TITLE)));

    // A process: TRACEPARENT names the activity span.
    let env_span = one(&spans, "action env");
    let line = std::fs::read_to_string(dir.join("out")).expect("the process wrote out");
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(parts.len(), 3, "{line:?}");
    let (t, parent, _) = traceparent(parts[0]);
    assert_eq!(t, trace);
    assert_eq!(
        parent, env_span.span_id,
        "the child's parent is its activity span"
    );
    let bag = baggage(parts[2]);
    assert_eq!(bag.get("chaos.run.id"), Some(&json!(run)), "{line:?}");
    assert_eq!(bag.get("chaos.experiment"), Some(&json!(PROPAGATION_TITLE)));

    // A python function: TRACEPARENT in os.environ.
    let py_span = one(&spans, "probe py");
    assert_eq!(py_span.attr_str("code.namespace"), Some("tp"));
    assert_eq!(py_span.attr_str("code.function.name"), Some("context"));
    let py = &entry(&out.journal()["run"], "py")["output"];
    let (t, parent, _) = traceparent(py["traceparent"].as_str().unwrap_or_default());
    assert_eq!(t, trace);
    assert_eq!(parent, py_span.span_id);
    let bag = baggage(py["baggage"].as_str().unwrap_or_default());
    assert_eq!(bag.get("chaos.run.id"), Some(&json!(run)), "{py:#}");
}

#[test]
fn a_run_started_with_traceparent_joins_that_trace() {
    let dir = TempDir::new("tr-join");
    let rx = OtlpReceiver::grpc();
    let srv = health_server();
    let e = json!({"title": "joins the pipeline", "description": "d",
    "method": [
        sh("action", "env", r#"echo "$TRACEPARENT|$TRACESTATE|$BAGGAGE" > out"#),
        {"type": "probe", "name": "echo",
         "provider": {"type": "http", "url": srv.url("/echo"), "timeout": 5}},
    ]});
    let tp = format!("00-{CI_TRACE}-{CI_SPAN}-01");
    let mut env = otlp_env(&rx, Transport::Grpc);
    env.push(("TRACEPARENT", tp));
    env.push(("TRACESTATE", "ci=pipeline-7".into()));
    let out = run(&dir, &e, &refs(&env));
    assert_eq!(out.code, 0, "{}", out.all_text());
    let spans = rx.wait_for_spans(5, SPAN_WAIT);
    let exp = one(&spans, "chaos.experiment");
    assert_eq!(exp.trace_id, CI_TRACE, "{exp:#?}");
    assert_eq!(exp.parent_span_id, CI_SPAN);
    assert!(spans.iter().all(|s| s.trace_id == CI_TRACE));
    assert_eq!(console_value(&out, "Trace id: "), CI_TRACE);
    assert_eq!(journal_trace_id(&out), CI_TRACE);

    // The child gets the run's own span as parent, never the inherited one unchanged.
    let line = std::fs::read_to_string(dir.join("out")).unwrap();
    let parts: Vec<&str> = line.trim_end().split('|').collect();
    let (t, parent, _) = traceparent(parts[0]);
    assert_eq!(t, CI_TRACE);
    assert_eq!(parent, one(&spans, "action env").span_id);
    assert_eq!(
        parts[1], "ci=pipeline-7",
        "the pipeline's tracestate goes on: {line:?}"
    );
    let h = &srv.requests()[0].headers;
    let (t, parent, _) = traceparent(&h["traceparent"]);
    assert_eq!(t, CI_TRACE);
    assert_eq!(
        parent,
        kid(&spans, one(&spans, "probe echo"), "HTTP GET").span_id
    );
    assert_eq!(
        h.get("tracestate").map(String::as_str),
        Some("ci=pipeline-7"),
        "{h:#?}"
    );
}

// ---------------------------------------------------------------------------
// 4. The demo service: chaos trace next to app trace
// ---------------------------------------------------------------------------

// The demo service is started by otlp.rs's launcher (`crate::otlp::demo::Demo`).

#[test]
fn demo_service_spans_sit_under_faultlines_client_spans_in_one_trace() {
    let dir = TempDir::new("tr-demo");
    let rx = OtlpReceiver::http();
    let mut demo = crate::otlp::demo::Demo::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
    ]);
    let url = format!("http://127.0.0.1:{}", demo.port);
    let exp_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-service/experiment.json");
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(&exp_path).unwrap()).unwrap();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
        ("DEMO_SERVICE_URL", url),
    ];
    let out = run(&dir, &exp, &refs(&env));
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    demo.stop();
    let trace = journal_trace_id(&out);
    let run = run_id(&out);

    // 2 probes before, 4 method activities, 2 probes after, 1 rollback: 9 requests.
    let servers_in_trace = |s: &[SpanView]| {
        s.iter()
            .filter(|s| s.kind == "SERVER" && s.trace_id == trace)
            .count()
    };
    let ok = rx.wait_spans_until(SPAN_WAIT, |s| {
        servers_in_trace(s) >= 9 && s.iter().any(|s| s.name == "chaos.experiment")
    });
    let spans = rx.spans();
    assert!(
        ok,
        "{:#?}",
        spans
            .iter()
            .map(|s| (&s.name, &s.kind, &s.trace_id))
            .collect::<Vec<_>>()
    );
    let servers: Vec<&SpanView> = spans.iter().filter(|s| s.kind == "SERVER").collect();
    assert_eq!(
        servers.len(),
        9,
        "{:?}",
        servers.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let exp_span = one(&spans, "chaos.experiment");
    assert_eq!(exp_span.trace_id, trace);
    for s in &servers {
        assert_eq!(s.trace_id, trace, "{s:#?}");
        assert_eq!(s.service_name(), Some("demo-service"));
        let parent = spans
            .iter()
            .find(|p| p.span_id == s.parent_span_id)
            .unwrap_or_else(|| panic!("no parent for {s:#?}"));
        assert_eq!(parent.kind, "CLIENT", "{parent:#?}");
        assert_eq!(parent.service_name(), Some("faultline"));
        assert!(parent.name.starts_with("HTTP "), "{parent:#?}");
        let method = parent.attr_str("http.request.method").unwrap_or_default();
        assert!(
            s.name.starts_with(method),
            "{} under {}",
            s.name,
            parent.name
        );
        assert_eq!(s.attr_str("chaos.run.id"), Some(run.as_str()), "{s:#?}");
        // The server span starts after the client span (same host, same clock); its end
        // may be recorded after the client has read the answer, so it is not compared.
        assert!(
            s.start_unix_nano >= parent.start_unix_nano,
            "{s:#?}\n{parent:#?}"
        );
    }
    // Each activity span of faultline has the CLIENT span the server answered.
    for name in [
        "probe orders-under-fault-1",
        "probe orders-under-fault-2",
        "action reset-faults",
    ] {
        let act = one(&spans, name);
        let client = kids(&spans, act)
            .into_iter()
            .find(|c| c.kind == "CLIENT")
            .unwrap_or_else(|| panic!("no CLIENT span under {name}"));
        assert!(
            servers.iter().any(|s| s.parent_span_id == client.span_id),
            "no server span under {name}'s CLIENT span"
        );
    }
    // The second probe under fault got the 500: both sides say so.
    let second = kids(&spans, one(&spans, "probe orders-under-fault-2"))[0];
    assert_eq!(second.attr_i64("http.response.status_code"), Some(500));
    let server = servers
        .iter()
        .find(|s| s.parent_span_id == second.span_id)
        .unwrap();
    assert_eq!(server.status_code, "ERROR");
    assert_eq!(server.attr_i64("http.response.status_code"), Some(500));
}

// ---------------------------------------------------------------------------
// 5. The default destination and the kill switch
// ---------------------------------------------------------------------------

#[test]
fn without_an_endpoint_the_trace_is_written_next_to_the_journal() {
    let dir = TempDir::new("tr-file");
    let srv = health_server();
    let exp = tree_experiment(&srv);
    let out = run(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let file = dir.join("journal.trace.json");
    assert!(file.exists(), "{}", out.all_text());
    assert!(
        out.all_text().contains("journal.trace.json"),
        "{}",
        out.all_text()
    );
    let spans = file_spans(&file);
    assert_tree(&spans, &out, &srv, "faultline");
    let (status, deviated, run_names, rb_names) = (
        out.status().to_string(),
        out.deviated(),
        out.run_names(),
        out.rollback_names(),
    );

    // The kill switch: no file, same verdict and journal.
    let off = TempDir::new("tr-file-off");
    let out = run(&off, &exp, &[("OTEL_SDK_DISABLED", "true")]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(!off.join("journal.trace.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(off.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("trace"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(out.status(), status);
    assert_eq!(out.deviated(), deviated);
    assert_eq!(out.run_names(), run_names);
    assert_eq!(out.rollback_names(), rb_names);
    assert_eq!(out.hypothesis_names("before"), ["health"]);
    assert_eq!(out.hypothesis_names("after"), ["health"]);
}

// ---------------------------------------------------------------------------
// 6. Telemetry never hurts the run
// ---------------------------------------------------------------------------

/// A run with every kind of step, including a failure and a deviation.
fn outage_experiment() -> Value {
    json!({"title": "collector outage", "description": "d",
        "steady-state-hypothesis": {"title": "nothing is broken", "probes": [
            with(sh("probe", "steady", "test ! -e broken"), "tolerance", json!(0))]},
        "method": [
            sh("action", "work", "echo work"),
            sh("action", "nonzero", "exit 3"),
            with_provider(sh("action", "fails", "exec sleep 2"), "timeout", json!(0.2)),
            sh("action", "break", "touch broken"),
        ],
        "rollbacks": [sh("action", "repair", "rm -f broken")]})
}

/// What must not change: the exit code and the journal's verdict and entries.
fn verdict(out: &Output) -> Value {
    let statuses: Vec<Value> = out.journal()["run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].clone())
        .collect();
    json!({
        "code": out.code,
        "status": out.status(),
        "deviated": out.deviated(),
        "run": out.run_names(),
        "run_statuses": statuses,
        "rollbacks": out.rollback_names(),
        "before": out.hypothesis_names("before"),
        "after": out.hypothesis_names("after"),
    })
}

/// `(undelivered, total)` from "N of M spans not delivered to ...".
fn undelivered(out: &Output) -> Option<(u64, u64)> {
    let text = out.all_text();
    text.lines().find_map(|l| {
        let head = l.split(" spans not delivered to").next()?;
        if head.len() == l.len() {
            return None;
        }
        let mut words = head.split_whitespace().rev();
        let total = words.next()?.parse().ok()?;
        (words.next()? == "of").then_some(())?;
        let n = words.next()?.parse().ok()?;
        Some((n, total))
    })
}

fn outage(tag: &str, endpoint: &str, protocol: &str) {
    let exp = outage_experiment();
    let off = TempDir::new(&format!("tr-out-off-{tag}"));
    let (base, base_took) = run_timed(&off, &exp, &[("OTEL_SDK_DISABLED", "true")]);
    let dir = TempDir::new(&format!("tr-out-{tag}"));
    let (out, took) = run_timed(
        &dir,
        &exp,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ],
    );
    let extra = took.as_secs_f64() - base_took.as_secs_f64();
    eprintln!(
        "telemetry outage {tag} ({protocol}): exit {:.3} s vs {:.3} s with telemetry off: +{extra:.3} s",
        took.as_secs_f64(),
        base_took.as_secs_f64()
    );
    assert_eq!(verdict(&out), verdict(&base), "{}", out.all_text());
    assert_eq!(base.status(), "completed");
    assert!(base.deviated());
    assert_eq!(entry(&base.journal()["run"], "fails")["status"], "failed");
    let (n, total) = undelivered(&out)
        .unwrap_or_else(|| panic!("no 'spans not delivered' line:\n{}", out.all_text()));
    assert!(n > 0 && n <= total, "{n} of {total}");
    // 12 spans: experiment, 2 hypotheses + 2 probes, method + 4 actions, rollbacks + 1.
    assert_eq!(total, 12, "{}", out.all_text());
    // A safety bound only: the 1.5 s goal is measured by benches/telemetry.rs.
    assert!(
        extra < 5.0,
        "faultline exited {extra:.3} s later with the collector down"
    );
}

#[test]
fn refused_collector_over_http_changes_nothing() {
    outage(
        "refused-http",
        &format!("http://127.0.0.1:{}", closed_port()),
        "http/protobuf",
    );
}

#[test]
fn refused_collector_over_grpc_changes_nothing() {
    outage(
        "refused-grpc",
        &format!("http://127.0.0.1:{}", closed_port()),
        "grpc",
    );
}

#[test]
fn blackhole_collector_over_http_changes_nothing() {
    let hole = Blackhole::start();
    outage("blackhole-http", &hole.endpoint(), "http/protobuf");
    assert!(
        hole.connections() > 0,
        "faultline never tried the blackhole"
    );
}

#[test]
fn blackhole_collector_over_grpc_changes_nothing() {
    let hole = Blackhole::start();
    outage("blackhole-grpc", &hole.endpoint(), "grpc");
    assert!(
        hole.connections() > 0,
        "faultline never tried the blackhole"
    );
}

#[test]
fn collector_answering_500_over_http_changes_nothing() {
    let rx = OtlpReceiver::failing(500);
    outage("500-http", &rx.endpoint(), "http/protobuf");
    assert!(
        rx.request_count() > 0,
        "faultline never tried the collector"
    );
}

#[test]
fn collector_failing_over_grpc_changes_nothing() {
    let rx = OtlpReceiver::failing_grpc();
    outage("unavailable-grpc", &rx.endpoint(), "grpc");
    assert!(
        rx.request_count() > 0,
        "faultline never tried the collector"
    );
}

// ---------------------------------------------------------------------------
// 7. Canary secrets never reach a span
// ---------------------------------------------------------------------------

const CANARY_INLINE: &str = "canary-trace-inline-5d81c2a7";
const CANARY_ENV: &str = "canary-trace-env-93be40f1";
const CANARY_KEY: &str = "FAULTLINE_IT_TRACE_CANARY";

const LEAK_PY: &str = r#"
def leak(secrets):
    print("the function prints", secrets["token"])
    return {"token": secrets["token"], "env": secrets["envtoken"]}
"#;

fn canary_experiment(srv: &HttpServer) -> Value {
    let refused = format!("http://127.0.0.1:{}/?k=${{token}}", closed_port());
    json!({
        "title": "canary ${token}",
        "description": "every place a secret could reach a span",
        "secrets": {"api": {
            "token": CANARY_INLINE,
            "envtoken": {"type": "env", "key": CANARY_KEY}
        }},
        "steady-state-hypothesis": {"title": "auth with ${envtoken}", "probes": [
            {"type": "probe", "name": "authorized",
             "tolerance": {"type": "regex", "target": "body", "pattern": "${token}"},
             "provider": {"type": "http", "url": srv.url("/echo?key=${envtoken}&t=${token}"),
                          "secrets": ["api"],
                          "headers": {"Authorization": "Bearer ${token}", "X-Api-Key": "${envtoken}"}}}
        ]},
        "method": [
            {"type": "action", "name": "args", "provider": {"type": "process", "path": "sh",
              "secrets": ["api"],
              "arguments": ["-c", "echo \"$1 $2\"; echo \"$1 $2\" >&2; echo \"$1 $2\" > got", "_", "${token}", "${envtoken}"]}},
            {"type": "action", "name": "py", "provider": {"type": "python", "module": "leak",
              "func": "leak", "secrets": ["api"], "arguments": {}}},
            {"type": "action", "name": "refused", "provider": {"type": "http", "url": refused,
              "secrets": ["api"], "timeout": 2}},
            {"type": "action", "name": "nonzero", "provider": {"type": "process", "path": "sh",
              "secrets": ["api"],
              "arguments": ["-c", "echo \"bad $1\" >&2; exit 4", "_", "${envtoken}"]}},
        ]
    })
}

/// The server echoes the request's authorization and query in a text body.
fn echo_server() -> HttpServer {
    HttpServer::start(|r| {
        let auth = r.headers.get("authorization").cloned().unwrap_or_default();
        Response::text(200, &format!("auth={auth} query={}", r.query))
    })
}

fn assert_no_canary(what: &str, text: &str) {
    for c in [CANARY_INLINE, CANARY_ENV] {
        assert!(!text.contains(c), "secret {c} leaked into {what}:\n{text}");
    }
}

#[test]
fn canary_secrets_never_reach_a_span_or_the_trace_file() {
    let dir = TempDir::new("tr-canary");
    dir.write("leak.py", LEAK_PY);
    let srv = echo_server();
    let exp = canary_experiment(&srv);
    let rx = OtlpReceiver::http();
    let mut env = otlp_env(&rx, Transport::HttpProtobuf);
    env.push((CANARY_KEY, CANARY_ENV.to_string()));
    let out = run(&dir, &exp, &refs(&env));
    assert!(
        rx.wait_spans_until(SPAN_WAIT, |s| s
            .iter()
            .any(|s| s.name == "chaos.experiment")),
        "{}",
        out.all_text()
    );

    // The secrets were really used.
    let got = std::fs::read_to_string(dir.join("got")).unwrap_or_default();
    assert_eq!(got.trim(), format!("{CANARY_INLINE} {CANARY_ENV}"));
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "before and after: {reqs:#?}");
    for r in &reqs {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {CANARY_INLINE}").as_str())
        );
        assert!(r.query.contains(CANARY_ENV), "{r:#?}");
    }
    assert_eq!(out.hypothesis_names("before"), ["authorized"]);
    assert_eq!(
        out.journal()["steady_states"]["before"]["steady_state_met"],
        true,
        "{}",
        out.all_text()
    );
    for name in ["args", "py", "nonzero"] {
        let status = &entry(&out.journal()["run"], name)["status"];
        assert_eq!(status, "succeeded", "{name}");
    }
    assert_eq!(entry(&out.journal()["run"], "refused")["status"], "failed");

    // No OTLP log record carries them either (the logs sink is on with the endpoint).
    rx.wait_for_logs(10, SPAN_WAIT);
    let logs = rx.logs();
    assert!(
        logs.iter().any(|l| format!("{l:?}").contains("***")),
        "masked values are shipped"
    );
    for l in &logs {
        assert_no_canary("log record", &format!("{l:?}"));
    }

    // No span carries them: names, attributes, events, statuses, resource.
    let spans = rx.spans();
    assert!(spans.len() >= 9, "{:?}", names(&spans));
    for s in &spans {
        assert_no_canary(&format!("span {:?}", s.name), &format!("{s:?}"));
    }
    // ...though the masked values are there (the check above is not vacuous).
    let args = one(&spans, "action args");
    assert!(
        args.attr_str("chaos.activity.output")
            .is_some_and(|o| o.contains("***")),
        "{args:#?}"
    );
    let client = kid(&spans, named(&spans, "probe authorized")[0], "HTTP GET");
    assert!(
        client
            .attr_str("url.full")
            .is_some_and(|u| u.contains("***")),
        "{client:#?}"
    );
    assert_eq!(
        one(&spans, "chaos.experiment").attr_str("chaos.experiment.title"),
        Some("canary ***")
    );
    let refused = one(&spans, "action refused");
    is_error(refused);
    assert!(refused.status_message.contains("***"), "{refused:#?}");
    assert_eq!(
        one(&spans, "action nonzero").attr_i64("process.exit.code"),
        Some(4)
    );

    // The same run with the default destination: the trace file is clean too.
    let file_dir = TempDir::new("tr-canary-file");
    file_dir.write("leak.py", LEAK_PY);
    let out = run(&file_dir, &exp, &[(CANARY_KEY, CANARY_ENV)]);
    let file = file_dir.join("journal.trace.json");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("no trace file ({e}):\n{}", out.all_text()));
    assert_no_canary("journal.trace.json", &text);
    assert!(file_spans(&file).len() >= 9);
    assert!(text.contains("***"));
}

/// A secret with a space: the URL carries it percent-encoded (`%20`), and so does the
/// HTTP client's error text.
const CANARY_SPACED: &str = "canary spaced 61f0";

#[test]
fn a_secret_needing_url_encoding_never_reaches_a_span() {
    let dir = TempDir::new("tr-canary-spaced");
    let rx = OtlpReceiver::http();
    let refused = format!("http://127.0.0.1:{}/q?k=${{token}}", closed_port());
    let e = json!({"title": "spaced secret", "description": "d",
        "secrets": {"api": {"token": CANARY_SPACED}},
        "method": [{"type": "action", "name": "refused",
            "provider": {"type": "http", "url": refused, "secrets": ["api"], "timeout": 2}}]});
    let out = run(&dir, &e, &refs(&otlp_env(&rx, Transport::HttpProtobuf)));
    assert!(rx.wait_spans_until(SPAN_WAIT, |s| s
        .iter()
        .any(|s| s.name == "chaos.experiment")));
    let encoded = CANARY_SPACED.replace(' ', "%20");
    let plus = CANARY_SPACED.replace(' ', "+");
    for s in rx.spans() {
        let text = format!("{s:?}");
        for c in [CANARY_SPACED, encoded.as_str(), plus.as_str()] {
            assert!(
                !text.contains(c),
                "secret {c:?} leaked into span {:?}:\n{s:#?}",
                s.name
            );
        }
    }
    let journal = std::fs::read_to_string(dir.join("journal.json")).unwrap();
    assert!(
        !journal.contains(&encoded),
        "and into the journal:\n{journal}"
    );
    assert!(!out.all_text().contains(&encoded), "and the console");
}
