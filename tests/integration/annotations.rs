//! `faultline.grafana` and `faultline.webhook`: the real binary against HTTP servers
//! on 127.0.0.1 standing in for Grafana's annotation API and for chat/JSON webhooks
//! (`tests/support/http_server.rs`, which records every request).

use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "glsa_t0ken-Sekr1t";

/// The experiment's `start` or `end` in epoch milliseconds.
fn journal_millis(out: &Output, key: &str) -> i64 {
    let text = out.journal()[key].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{key} = {text}: {e}"))
        .timestamp_millis()
}

fn control(name: &str, module: &str, arguments: Value) -> Value {
    json!({"name": name, "provider": {"type": "python", "module": module, "arguments": arguments}})
}

/// A short experiment with these controls (and `extra` top-level keys).
fn experiment_with(controls: Vec<Value>, extra: Value) -> Value {
    let mut e = json!({
        "title": "annotated run", "description": "d",
        "controls": controls,
        "steady-state-hypothesis": {"title": "h", "probes": [
            with(sh("probe", "ok", "true"), "tolerance", json!(0))]},
        "method": [sh("action", "work", "true")],
    });
    if let (Some(e), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    e
}

fn json_of(r: &crate::http_server::Request) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Everything the run wrote (journal, trace file) and printed, for "never appears"
/// checks.
fn everything(dir: &TempDir, out: &Output) -> String {
    let mut all = out.all_text();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("journal") && name.ends_with(".json") {
            all.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
        }
    }
    all
}

#[test]
fn a_run_is_a_grafana_region_with_the_journal_times_tags_and_token() {
    let grafana = HttpServer::start(|r| {
        if r.method == "POST" {
            Response::json(200, &json!({"message": "Annotation added", "id": 42}))
        } else {
            Response::json(200, &json!({"message": "Annotation patched"}))
        }
    });
    let dir = TempDir::new("grafana-region");
    let exp = experiment_with(
        vec![control(
            "grafana",
            "faultline.grafana",
            json!({"url": grafana.url("/grafana/"), "dashboard_uid": "chaos",
                   "panel_id": 3, "tags": ["team:sre"]}),
        )],
        json!({"secrets": {"grafana": {"token": TOKEN}}}),
    );
    let out = run_experiment(&dir, &exp, &["--label", "service=checkout"]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let reqs = grafana.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let (post, patch) = (&reqs[0], &reqs[1]);
    let run_id = out.journal()["extensions"][0]["run_id"].as_str().unwrap();
    let trace_id = out.journal()["extensions"][0]["trace_id"].as_str().unwrap();
    let (start, end) = (journal_millis(&out, "start"), journal_millis(&out, "end"));
    assert!(start <= end);

    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/grafana/api/annotations")
    );
    let auth = format!("Bearer {TOKEN}");
    assert_eq!(post.header("authorization"), Some(auth.as_str()));
    let body = json_of(post);
    assert_eq!(body["time"], json!(start), "{body}");
    assert!(body.get("timeEnd").is_none(), "{body}");
    assert_eq!(body["dashboardUID"], "chaos");
    assert_eq!(body["panelId"], 3);
    assert_eq!(
        strings(&body["tags"]),
        [
            "faultline".to_string(),
            "experiment:annotated run".into(),
            format!("run:{run_id}"),
            "status:running".into(),
            "service:checkout".into(),
            "team:sre".into(),
        ]
    );
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("annotated run") && text.contains(run_id) && text.contains(trace_id),
        "{text}"
    );

    assert_eq!(
        (patch.method.as_str(), patch.path.as_str()),
        ("PATCH", "/grafana/api/annotations/42")
    );
    assert_eq!(patch.header("authorization"), Some(auth.as_str()));
    let body = json_of(patch);
    assert_eq!(body["time"], json!(start), "{body}");
    assert_eq!(body["timeEnd"], json!(end), "{body}");
    let tags = strings(&body["tags"]);
    assert!(tags.contains(&"status:completed".to_string()), "{tags:?}");
    assert!(
        !tags
            .iter()
            .any(|t| t == "status:running" || t == "deviated"),
        "{tags:?}"
    );
    assert!(tags.contains(&"service:checkout".to_string()), "{tags:?}");

    // The token went in the header only: not in the journal, the trace file, the
    // console, nor the bodies.
    let all = everything(&dir, &out);
    assert!(!all.contains(TOKEN), "{all}");
    assert!(!post.text().contains(TOKEN) && !patch.text().contains(TOKEN));
    assert!(!out.stderr.contains("notify.failed"), "{}", out.stderr);
}

#[test]
fn a_failing_grafana_is_retried_and_the_region_delivered() {
    // One 500 for the start, then success for every request.
    let grafana = HttpServer::scripted(
        vec![Response::text(500, "database is locked")],
        Response::json(200, &json!({"id": 7})),
    );
    let dir = TempDir::new("grafana-retry");
    // Declared in a --control-file, the token from the environment.
    let controls = dir.write(
        "controls.json",
        &json!({"controls": {"grafana": {"provider": {"type": "python", "module": "faultline.grafana",
            "arguments": {"url": grafana.url(""), "token_env": "GF_TOKEN"}}}}})
        .to_string(),
    );
    let exp = experiment_with(Vec::new(), json!({}));
    let out = run_experiment_env(
        &dir,
        &exp,
        &["--control-file", controls.to_str().unwrap()],
        &[("GF_TOKEN", TOKEN)],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    let reqs = grafana.requests();
    let seen: Vec<_> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        seen,
        [
            "POST /api/annotations",
            "POST /api/annotations",
            "PATCH /api/annotations/7"
        ]
    );
    assert_eq!(
        json_of(&reqs[1]),
        json_of(&reqs[0]),
        "the retry sends the same start"
    );
    assert_eq!(
        json_of(&reqs[2])["timeEnd"],
        json!(journal_millis(&out, "end"))
    );
    assert!(!out.stderr.contains("faultline.grafana"), "{}", out.stderr);
    assert!(!everything(&dir, &out).contains(TOKEN));
}

#[test]
fn a_dead_grafana_or_webhook_is_a_warning_and_changes_nothing() {
    let dead = crate::http_server::refused_addr();
    let secret_hook = format!("http://{dead}/services/T0/B0/hookSECRETpath");
    let dir = TempDir::new("notify-dead");
    let exp = experiment_with(
        vec![
            control(
                "dashboards",
                "faultline.grafana",
                json!({"url": format!("http://{dead}"), "token": TOKEN}),
            ),
            control(
                "chat",
                "faultline.webhook",
                json!({"url_env": "HOOK_URL", "format": "slack"}),
            ),
        ],
        json!({}),
    );
    let started = Instant::now();
    let out = run_experiment_env(&dir, &exp, &[], &[("HOOK_URL", secret_hook.as_str())]);
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    // Start and end each try 3 times, 200 then 400 ms apart, within 3 s.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let err = &out.stderr;
    assert!(
        err.contains("control 'dashboards' (faultline.grafana): start annotation")
            && err.contains("control 'dashboards' (faultline.grafana): whole-run annotation"),
        "{err}"
    );
    assert!(
        err.contains("not delivered after 3 attempt(s): cannot reach it"),
        "{err}"
    );
    assert!(
        err.contains("control 'chat' (faultline.webhook): start notice"),
        "{err}"
    );
    assert!(
        err.contains("control 'chat' (faultline.webhook): end notice"),
        "{err}"
    );
    let all = everything(&dir, &out);
    assert!(!all.contains(TOKEN), "{all}");
    assert!(!all.contains("hookSECRETpath"), "{all}");
}

#[test]
fn webhooks_say_when_a_run_starts_and_ends_in_slack_and_json() {
    let slack = HttpServer::start(|_| Response::text(200, "ok"));
    let hook = HttpServer::start(|_| Response::status(204));
    let dir = TempDir::new("webhooks");
    let exp = experiment_with(
        vec![
            control(
                "chat",
                "faultline.webhook",
                json!({"url": slack.url("/services/x"), "format": "slack",
                "trace_url": "http://jaeger:16686/trace/{trace_id}"}),
            ),
            control(
                "ops",
                "faultline.webhook",
                json!({"url": hook.url("/hook"),
                "trace_url": "http://jaeger:16686/trace/{trace_id}",
                "headers": {"X-Source": "faultline-it"}}),
            ),
        ],
        json!({}),
    );
    let out = run_experiment(&dir, &exp, &["--label", "service=checkout"]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j = out.journal();
    let run_id = j["extensions"][0]["run_id"].as_str().unwrap();
    let trace_id = j["extensions"][0]["trace_id"].as_str().unwrap();
    let trace_url = format!("http://jaeger:16686/trace/{trace_id}");
    let journal_path = dir.join("journal.json").display().to_string();

    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for r in &reqs {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/hook"));
        assert_eq!(r.header("x-source"), Some("faultline-it"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let (start, end) = (json_of(&reqs[0]), json_of(&reqs[1]));
    let common = |b: &Value| {
        assert_eq!(b["run_id"], run_id, "{b}");
        assert_eq!(b["title"], "annotated run", "{b}");
        assert_eq!(b["trace_id"], trace_id, "{b}");
        assert_eq!(b["trace_url"], trace_url.as_str(), "{b}");
        assert_eq!(b["journal"], journal_path.as_str(), "{b}");
        assert_eq!(b["labels"], json!({"service": "checkout"}), "{b}");
        assert_eq!(b["started"], j["start"], "{b}");
        assert!(
            b["experiment_ref"].as_str().is_some_and(|r| !r.is_empty()),
            "{b}"
        );
    };
    common(&start);
    common(&end);
    assert_eq!(start["event"], "run.started");
    assert_eq!(start["status"], "running");
    assert_eq!(start["ended"], Value::Null);
    assert_eq!(end["event"], "run.ended");
    assert_eq!(end["status"], "completed");
    assert_eq!(end["deviated"], false);
    assert_eq!(end["ended"], j["end"]);
    assert_eq!(end["duration_s"], j["duration"]);

    let reqs = slack.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let (start, end) = (json_of(&reqs[0]), json_of(&reqs[1]));
    assert_eq!(
        start["text"],
        format!("faultline: experiment \"annotated run\" started (run {run_id})")
    );
    assert!(start["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("started"));
    let refs = start["blocks"][1]["elements"][0]["text"].as_str().unwrap();
    assert!(
        refs.contains(&format!("<{trace_url}|trace {trace_id}>")),
        "{refs}"
    );
    assert!(
        refs.contains(&journal_path) && refs.contains("service: checkout"),
        "{refs}"
    );
    let text = end["text"].as_str().unwrap();
    assert!(
        text.starts_with("faultline: experiment \"annotated run\" completed, in "),
        "{text}"
    );
    assert!(end["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap()
        .starts_with(":white_check_mark:"));
}

#[test]
fn a_deviated_run_says_so_in_every_notice() {
    let grafana = HttpServer::start(|_| Response::json(200, &json!({"id": 1})));
    let hook = HttpServer::start(|_| Response::status(200));
    let dir = TempDir::new("notify-deviated");
    let mut exp = experiment_with(
        vec![
            control("g", "faultline.grafana", json!({"url": grafana.url("")})),
            control("w", "faultline.webhook", json!({"url": hook.url("/")})),
        ],
        json!({}),
    );
    exp["steady-state-hypothesis"]["probes"] = json!([with(
        sh("probe", "ok", "test ! -e broken"),
        "tolerance",
        json!(0)
    )]);
    exp["method"] = json!([sh("action", "break", "touch broken")]);
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 1, "{}", out.all_text());
    let patch = json_of(&grafana.requests()[1]);
    let tags = strings(&patch["tags"]);
    assert!(
        tags.contains(&"status:completed".into()) && tags.contains(&"deviated".into()),
        "{tags:?}"
    );
    let end = json_of(&hook.requests()[1]);
    assert_eq!(
        (end["status"].as_str(), end["deviated"].as_bool()),
        (Some("completed"), Some(true))
    );
}

#[test]
fn no_secret_reaches_a_webhook_body() {
    const SECRET: &str = "hunter2-Xq9";
    let slack = HttpServer::start(|_| Response::text(200, "ok"));
    let hook = HttpServer::start(|_| Response::status(200));
    let grafana = HttpServer::start(|_| Response::json(200, &json!({"id": 5})));
    let dir = TempDir::new("notify-secret");
    let mut exp = experiment_with(
        vec![
            control(
                "chat",
                "faultline.webhook",
                json!({"url": slack.url("/s"), "format": "slack"}),
            ),
            control("ops", "faultline.webhook", json!({"url": hook.url("/h")})),
            control("g", "faultline.grafana", json!({"url": grafana.url("")})),
        ],
        json!({
            "secrets": {"app": {"password": SECRET}},
            // The target label comes from configuration holding the secret.
            "configuration": {"service": format!("svc-{SECRET}")},
            "tags": [format!("t-{SECRET}")],
        }),
    );
    exp["title"] = json!(format!("deploy ${{password}} and {SECRET}"));
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let bodies: Vec<String> = [&slack, &hook, &grafana]
        .iter()
        .flat_map(|s| s.requests())
        .map(|r| r.text())
        .collect();
    assert_eq!(bodies.len(), 6, "{bodies:?}");
    for b in &bodies {
        assert!(!b.contains(SECRET) && !b.contains("hunter2"), "{b}");
    }
    let json_start: Value = serde_json::from_str(&bodies[2]).unwrap();
    assert_eq!(json_start["title"], "deploy *** and ***");
    assert_eq!(json_start["labels"]["service"], "svc-***");
}

#[test]
fn a_notifier_without_its_url_or_token_refuses_the_run_before_it_starts() {
    let dir = TempDir::new("notify-invalid");
    let exp = experiment_with(
        vec![
            control("w", "faultline.webhook", json!({"format": "teams"})),
            control(
                "g",
                "faultline.grafana",
                json!({"url": "http://127.0.0.1:9", "token_env": "NOT_SET_ANYWHERE"}),
            ),
        ],
        json!({}),
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.stderr.contains("'url' (or 'url_env') is required"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("'format' must be"), "{}", out.stderr);
    assert!(out.journal.is_none());
    // A credential asked for and missing is found once the environment is known.
    let exp = experiment_with(vec![exp["controls"][1].clone()], json!({}));
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.stderr.contains("control 'g' (faultline.grafana)")
            && out.stderr.contains("NOT_SET_ANYWHERE, which is not set"),
        "{}",
        out.stderr
    );
    assert!(out.journal.is_none());
}

#[test]
fn a_grafana_that_never_answers_costs_the_run_a_bounded_wait() {
    let grafana = HttpServer::blackhole();
    let dir = TempDir::new("grafana-blackhole");
    let exp = experiment_with(
        vec![control(
            "g",
            "faultline.grafana",
            json!({"url": grafana.url("")}),
        )],
        json!({}),
    );
    let started = Instant::now();
    let out = run_experiment(&dir, &exp, &[]);
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.all_text());
    // Each delivery has 3 s, the end waits for the start: about 6 s, never more
    // than the app's 7 s bound on the notifiers.
    assert!(took < Duration::from_secs(12), "{took:?}");
    assert!(
        out.stderr.contains("start annotation (POST ") && out.stderr.contains("no answer within"),
        "{}",
        out.stderr
    );
    // Every attempt reached the server: 3 for the start, up to 3 for the region.
    let n = grafana.requests().len();
    assert!((4..=6).contains(&n), "{n}");
}
