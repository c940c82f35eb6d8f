//! The native `prometheus` provider and the chaosprometheus probes against a real
//! Prometheus (the shared fixture in `prom.rs`), and against the recording HTTP server
//! for what goes on the wire (trace context, credentials, refusals).

use crate::common::*;
use crate::prom;
use serde_json::{json, Value};

/// A hypothesis probe querying `query` with a threshold tolerance.
fn probe(name: &str, base: &str, query: &str, tolerance: Value) -> Value {
    json!({"type": "probe", "name": name,
        "provider": {"type": "prometheus", "base_url": base, "query": query},
        "tolerance": tolerance})
}

fn first_probe(out: &Output) -> &Value {
    &out.journal()["steady_states"]["before"]["probes"][0]
}

#[test]
fn the_fixture_serves_counters_histograms_resets_and_stale_series() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = prom::Metrics::new("fixture");
    m.requests(9, 1);
    m.observe(0.07);
    m.observe(0.3);
    let sel = m.selector();
    p.wait_for(&format!("sum(http_requests_total{{{sel}}})"), |v| v == 10.0);
    p.wait_for(
        &format!("http_request_duration_seconds_bucket{{{sel},le=\"0.1\"}}"),
        |v| v == 1.0,
    );
    p.wait_for(
        &format!("http_request_duration_seconds_count{{{sel}}}"),
        |v| v == 2.0,
    );
    m.reset();
    p.wait_for(&format!("sum(http_requests_total{{{sel}}})"), |v| v == 0.0);
    m.hide();
    p.wait_empty(&format!("http_requests_total{{{sel}}}"));
}

#[test]
fn a_probe_met_not_met_and_without_data_under_each_on_no_data() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = prom::Metrics::new("verdicts");
    m.requests(95, 5);
    let sel = m.selector();
    let ratio = format!(
        "sum(http_requests_total{{{sel},code=\"500\"}}) / sum(http_requests_total{{{sel}}})"
    );
    p.wait_for(&ratio, |v| v == 0.05);
    let dir = TempDir::new("prom-verdicts");

    let met = run_experiment(
        &dir,
        &experiment(
            vec![probe(
                "errors",
                &p.url,
                &ratio,
                json!({"type": "threshold", "op": "<", "value": 0.1}),
            )],
            vec![],
            vec![],
        ),
        &[],
    );
    assert_eq!(met.status(), "completed", "{}", met.all_text());
    let e = &first_probe(&met)["evidence"];
    assert_eq!(e["verdict"], "met", "{e}");
    assert_eq!(e["expected"], "< 0.1");
    assert_eq!(e["actual"], json!([0.05]));
    assert_eq!(e["query"], ratio.as_str());
    assert!(e["time"].as_str().unwrap().starts_with("20"), "{e}");
    let output = &first_probe(&met)["output"];
    assert_eq!(output["type"], "instant");
    assert_eq!(output["series"][0]["value"], 0.05);

    let not_met = run_experiment(
        &dir,
        &experiment(
            vec![probe(
                "errors",
                &p.url,
                &ratio,
                json!({"type": "threshold", "op": "<", "value": 0.01}),
            )],
            vec![],
            vec![],
        ),
        &[],
    );
    assert_eq!(
        not_met.journal()["steady_states"]["before"]["steady_state_met"],
        false,
        "{}",
        not_met.all_text()
    );
    let e = &first_probe(&not_met)["evidence"];
    assert_eq!(e["verdict"], "not_met", "{e}");
    assert_eq!(e["actual"], json!([0.05]));

    let nothing = format!("sum(http_requests_total{{{sel},code=\"404\"}})");
    for (on_no_data, verdict, failed) in [
        ("fail", "not_met", true),
        ("pass", "met", false),
        ("inconclusive", "inconclusive", true),
    ] {
        let out = run_experiment(
            &dir,
            &experiment(
                vec![probe(
                    "no-data",
                    &p.url,
                    &nothing,
                    json!({"type": "threshold", "op": "<", "value": 1, "on_no_data": on_no_data}),
                )],
                vec![],
                vec![],
            ),
            &[],
        );
        let e = &first_probe(&out)["evidence"];
        assert_eq!(e["verdict"], verdict, "{on_no_data}: {e}");
        assert_eq!(
            out.journal()["steady_states"]["before"]["steady_state_met"],
            !failed,
            "{on_no_data}: {}",
            out.all_text()
        );
        assert_eq!(first_probe(&out)["output"]["series"], json!([]));
    }
}

#[test]
fn reduce_decides_over_every_series() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = prom::Metrics::new("reduce");
    m.requests(90, 10);
    let q = format!("http_requests_total{{{}}}", m.selector());
    p.wait_for_all(&q, |v| v.len() == 2 && v.iter().sum::<f64>() == 100.0);
    let dir = TempDir::new("prom-reduce");
    let out = run_experiment(
        &dir,
        &experiment(
            vec![
                probe(
                    "sum",
                    &p.url,
                    &q,
                    json!({"type": "threshold", "op": "==", "value": 100, "reduce": "sum"}),
                ),
                probe(
                    "min",
                    &p.url,
                    &q,
                    json!({"type": "threshold", "op": "<", "value": 50, "reduce": "min"}),
                ),
                // Last: a probe not met ends the hypothesis.
                probe(
                    "all",
                    &p.url,
                    &q,
                    json!({"type": "threshold", "op": "<", "value": 50}),
                ),
            ],
            vec![],
            vec![],
        ),
        &[],
    );
    let probes = &out.journal()["steady_states"]["before"]["probes"];
    // Every series is in the output, with its labels.
    let series = probes[2]["output"]["series"]
        .as_array()
        .unwrap_or_else(|| panic!("{probes:#}\n{}", out.all_text()));
    let mut codes: Vec<&str> = series
        .iter()
        .map(|s| s["labels"]["code"].as_str().unwrap())
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, ["200", "500"]);
    assert_eq!(probes[0]["evidence"]["verdict"], "met", "{}", probes[0]);
    assert_eq!(probes[0]["evidence"]["actual"], 100.0);
    assert_eq!(probes[1]["evidence"]["verdict"], "met");
    assert_eq!(probes[1]["evidence"]["actual"], 10.0);
    assert_eq!(probes[2]["evidence"]["verdict"], "not_met");
    assert_eq!(
        probes[2]["evidence"]["first_failing"]["labels"]["code"],
        "200"
    );
}

#[test]
fn a_range_query_over_the_method_window() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = prom::Metrics::new("range");
    m.requests(10, 0);
    let q = format!("sum(http_requests_total{{{}}})", m.selector());
    p.wait_for(&q, |v| v == 10.0);
    let dir = TempDir::new("prom-range");
    let mut exp = experiment(vec![], vec![sh("action", "wait", "sleep 3")], vec![]);
    exp["steady-state-hypothesis"] = json!({"title": "range", "probes": [{
        "type": "probe", "name": "over-method",
        "provider": {"type": "prometheus", "base_url": p.url, "query": q,
                     "range": {"window": "method", "step": 1}},
        "tolerance": {"type": "threshold", "op": ">=", "value": 10}}]});
    // The method window is known once the method has run.
    let out = run_experiment(&dir, &exp, &["--hypothesis-strategy", "after-method-only"]);
    assert_eq!(out.status(), "completed", "{}", out.all_text());
    let after = &out.journal()["steady_states"]["after"]["probes"][0];
    let o = &after["output"];
    assert_eq!(o["type"], "range", "{o}");
    assert_eq!(o["result_type"], "matrix");
    assert_eq!(o["step"], 1.0);
    let values = o["series"][0]["values"].as_array().unwrap();
    assert!(values.len() >= 3, "{o}");
    assert!(values.iter().all(|v| v[1] == 10.0), "{o}");
    // The window is the method's own, as the journal times it.
    let method = &out.journal()["run"][0];
    let (s, e) = (o["start"].as_str().unwrap(), o["end"].as_str().unwrap());
    let t = |x: &str| {
        chrono::DateTime::parse_from_rfc3339(x)
            .unwrap()
            .timestamp_millis()
    };
    let ms = |x: &Value| {
        chrono::NaiveDateTime::parse_from_str(x.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.f")
            .map(|d| d.and_utc().timestamp_millis())
            .unwrap_or_else(|_| t(x.as_str().unwrap()))
    };
    assert!(
        (t(s) - ms(&method["start"])).abs() < 500,
        "{s} vs {}",
        method["start"]
    );
    assert!(
        (t(e) - ms(&method["end"])).abs() < 500,
        "{e} vs {}",
        method["end"]
    );
    assert_eq!(after["evidence"]["verdict"], "met");
    assert_eq!(after["evidence"]["start"], s);
    assert!(after["evidence"]["samples"].as_u64().unwrap() >= 3);
}

#[test]
fn a_chaosprometheus_experiment_runs_unchanged_without_python() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = prom::Metrics::new("ctk");
    m.requests(42, 0);
    let q = format!("sum(http_requests_total{{{}}})", m.selector());
    p.wait_for(&q, |v| v == 42.0);
    let dir = TempDir::new("prom-ctk");
    let exp = json!({
        "title": "chaosprometheus probes",
        "description": "as written for the Chaos Toolkit",
        "configuration": {"prometheus_base_url": p.url},
        "steady-state-hypothesis": {"title": "traffic", "probes": [
            {"type": "probe", "name": "requests",
             "provider": {"type": "python", "module": "chaosprometheus.probes", "func": "query",
                          "arguments": {"query": q, "when": "now"}},
             "tolerance": {"type": "jsonpath", "path": "$.data.result[0].value[1]", "expect": "42"}},
            {"type": "probe", "name": "recent",
             "provider": {"type": "python", "module": "chaosprometheus.probes", "func": "query_interval",
                          "arguments": {"query": q, "start": "10 seconds ago", "end": "now", "step": 1}},
             "tolerance": {"type": "jsonpath", "path": "$.status", "expect": "success"}}
        ]},
        "method": []
    });
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
        &[("FAULTLINE_PYTHON", "/nonexistent/python3")],
    );
    assert_eq!(out.status(), "completed", "{}", out.all_text());
    let probes = &out.journal()["steady_states"]["before"]["probes"];
    assert_eq!(probes[0]["output"]["status"], "success");
    assert_eq!(probes[0]["output"]["data"]["resultType"], "vector");
    assert_eq!(probes[0]["output"]["data"]["result"][0]["value"][1], "42");
    assert_eq!(probes[1]["output"]["data"]["resultType"], "matrix");
    assert!(!probes[1]["output"]["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// A recording server answering every query with one sample.
fn fake_prometheus() -> HttpServer {
    HttpServer::start(|_| {
        Response::json(
            200,
            &json!({"status": "success", "data": {"resultType": "vector",
                "result": [{"metric": {"job": "x"}, "value": [1.0, "1"]}]}}),
        )
    })
}

#[test]
fn requests_carry_trace_context_and_credentials_and_secrets_stay_out_of_the_journal() {
    let server = fake_prometheus();
    let base = server.url("");
    let dir = TempDir::new("prom-auth");
    let provider = |scope: &str| {
        json!({"type": "prometheus", "base_url": base, "query": "up", "secrets": [scope],
               "headers": {"x-extra": "1"}})
    };
    let mut exp = experiment(
        vec![
            json!({"type": "probe", "name": "bearer", "provider": provider("bearer"), "tolerance": {"type": "threshold", "op": "==", "value": 1}}),
            json!({"type": "probe", "name": "basic", "provider": provider("basic"), "tolerance": {"type": "threshold", "op": "==", "value": 1}}),
        ],
        vec![],
        vec![],
    );
    exp["secrets"] = json!({
        "bearer": {"prometheus_token": "tok-s3cr3t-123",
                   "prometheus_headers": {"X-Scope-OrgID": "tenant-7"}},
        "basic": {"prometheus_username": "alice", "prometheus_password": "pw-s3cr3t-456"}
    });
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.status(), "completed", "{}", out.all_text());
    // The hypothesis runs before and after the (empty) method.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r.path, "/api/v1/query");
        assert!(r.query.contains("query=up"), "{}", r.query);
        assert!(r.query.contains("time="), "{}", r.query);
        let tp = r.header("traceparent").expect("traceparent");
        assert_eq!(tp.split('-').count(), 4, "{tp}");
        assert_eq!(r.header("x-extra"), Some("1"));
    }
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Bearer tok-s3cr3t-123")
    );
    assert_eq!(reqs[0].header("x-scope-orgid"), Some("tenant-7"));
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:pw-s3cr3t-456");
    assert_eq!(
        reqs[1].header("authorization"),
        Some(format!("Basic {basic}").as_str())
    );
    assert_eq!(reqs[1].header("x-scope-orgid"), None);
    // Not in the console, the journal, nor the spans (basic auth's base64 included).
    let text = out.all_text()
        + &std::fs::read_to_string(dir.join("journal.json")).unwrap()
        + &std::fs::read_to_string(dir.join("journal.trace.json")).unwrap();
    assert!(text.contains("HTTP GET"), "the CLIENT spans are there");
    for secret in ["tok-s3cr3t-123", "pw-s3cr3t-456", basic.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
}

#[test]
fn a_refused_query_names_the_query_and_never_shows_a_secret() {
    // Prometheus echoing what it was sent (the token included) in its refusal.
    let server = HttpServer::start(|r| {
        Response::json(
            400,
            &json!({"status": "error", "errorType": "bad_data",
                "error": format!("1:5: parse error: unexpected end of input (auth {})",
                    r.header("authorization").unwrap_or(""))}),
        )
    });
    let dir = TempDir::new("prom-refused");
    let mut exp = experiment(
        vec![],
        vec![json!({"type": "probe", "name": "broken",
            "provider": {"type": "prometheus", "base_url": server.url(""),
                         "query": "rate(x[", "secrets": ["prom"]}})],
        vec![],
    );
    exp["secrets"] = json!({"prom": {"prometheus_token": "tok-s3cr3t-789"}});
    let out = run_experiment(&dir, &exp, &[]);
    let entry = &out.journal()["run"][0];
    assert_eq!(entry["status"], "failed", "{entry}");
    let exc = exception_text(entry);
    assert!(
        exc.contains("Prometheus refused the query \"rate(x[\" (bad_data)"),
        "{exc}"
    );
    assert!(exc.contains("parse error"), "{exc}");
    let text = out.all_text() + &std::fs::read_to_string(dir.join("journal.json")).unwrap();
    assert!(!text.contains("tok-s3cr3t-789"), "a secret leaked");

    // Nothing listening: said clearly.
    let out = run_experiment(
        &dir,
        &experiment(
            vec![],
            vec![json!({"type": "probe", "name": "down",
                "provider": {"type": "prometheus", "base_url": format!("http://127.0.0.1:{}", closed_port()),
                             "query": "up", "timeout": 2}})],
            vec![],
        ),
        &[],
    );
    let exc = exception_text(&out.journal()["run"][0]);
    assert!(
        exc.contains("cannot reach Prometheus at http://127.0.0.1:"),
        "{exc}"
    );

    // Connected, never answered: the deadline says so.
    let hole = HttpServer::blackhole();
    let started = std::time::Instant::now();
    let out = run_experiment(
        &dir,
        &experiment(
            vec![],
            vec![json!({"type": "probe", "name": "slow",
                "provider": {"type": "prometheus", "base_url": hole.url(""),
                             "query": "up", "timeout": 1}})],
            vec![],
        ),
        &[],
    );
    let exc = exception_text(&out.journal()["run"][0]);
    // The provider's timeout is the activity's: whichever deadline fires first says so.
    assert!(
        exc.contains("did not answer within 1s") || exc.contains("(timeout of 1s)"),
        "{exc}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn validate_names_bad_prometheus_keys_by_path() {
    let dir = TempDir::new("prom-validate");
    let exp = experiment(
        vec![],
        vec![
            json!({"type": "probe", "name": "a",
                "provider": {"type": "prometheus", "qurey": "up", "at": "yesterday",
                             "range": {"window": "method"}}}),
            json!({"type": "probe", "name": "b",
                "provider": {"type": "python", "module": "chaosprometheus.probes",
                             "func": "query_interval", "arguments": {"query": "up", "start": "a while ago"}}}),
        ],
        vec![],
    );
    let path = dir.experiment(&exp);
    let out = faultline(
        &dir,
        &["validate", path.to_str().unwrap()],
        &[("FAULTLINE_PYTHON", "/nonexistent/python3")],
    );
    assert_eq!(out.code, 3, "{}", out.all_text());
    for p in [
        "$.method[0].provider.qurey",
        "$.method[0].provider.query",
        "$.method[0].provider.at",
        "$.method[1].provider.arguments.start",
        "$.method[1].provider.arguments.end",
    ] {
        assert!(
            out.stdout.contains(&format!("error: {p} ")),
            "{p} missing:\n{}",
            out.all_text()
        );
    }
    assert!(
        !out.all_text().contains("python"),
        "no Python needed:\n{}",
        out.all_text()
    );
}
