//! SLO activities in experiments, through the real binary on a temporary store file:
//! the native `indicator` provider, the guide's `slo_is_met` run natively (met,
//! deviated with the guide's table, no result), the native `slo` probe's status, the
//! run id and trace id on what a run pushed, no store file for runs that need none,
//! and bad definitions refused before anything runs. Objectives are stored through the
//! library (`faultline::store`), as `faultline slo sync` would.

use crate::common::*;
use faultline::store::{Store, StoreSpec};
use serde_json::{json, Value};

const SERVICE: &str = "exploring-reliability-guide-service";
const NAME: &str = "99.9% of our requests are in the 2xx class";
const INDICATOR: &str = "exploring-reliability-guide-service-availability-indicator";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The guide's objective, stored in `store` (organisation `default`).
fn put_guide_objective(store: &std::path::Path) {
    let doc = json!({"apiVersion": "reliably.com/v1", "kind": "Objective",
        "metadata": {"labels": {"name": NAME, "service": SERVICE}},
        "spec": {"indicatorSelector": {"category": "Availability", "indicator_name": INDICATOR},
                 "objectivePercent": 99.9, "window": "1h"}});
    let objective = faultline::slo::parse_objective(&doc).unwrap();
    runtime().block_on(async {
        let s = Store::open(&StoreSpec::Sqlite(store.to_path_buf()))
            .await
            .unwrap();
        s.put_objective("default", &objective).await.unwrap();
        s.close().await;
    });
}

/// The guide's steady-state probe, unchanged.
fn slo_is_met() -> Value {
    json!({"name": "SLO is met", "type": "probe", "tolerance": true,
        "provider": {"type": "python", "module": "chaosreliably.slo.probes", "func": "slo_is_met",
            "arguments": {"labels": {"name": NAME, "service": SERVICE}}}})
}

/// The native form of the guide's `send_good_indicator` / `send_bad_indicator`.
fn send_indicator(name: &str, amount: Value) -> Value {
    let mut provider = json!({"type": "indicator",
        "labels": {"category": "Availability", "indicator_name": INDICATOR}});
    for (k, v) in amount.as_object().unwrap() {
        provider[k] = v.clone();
    }
    json!({"type": "action", "name": name, "provider": provider})
}

fn guide_experiment(title: &str, action: Value) -> Value {
    json!({"title": title, "description": "the Reliably guide, natively",
        "steady-state-hypothesis": {"title": "We do not fail our SLO when conducting an experiment",
            "probes": [slo_is_met()]},
        "method": [action]})
}

fn run_on(dir: &TempDir, store: &std::path::Path, exp: &Value, extra: &[&str]) -> Output {
    let out = run_experiment_env(
        dir,
        exp,
        extra,
        &[("FAULTLINE_STORE", store.to_str().unwrap())],
    );
    assert_no_panic(&out);
    out
}

/// The outputs of the hypothesis probe "SLO is met", before then after.
fn slo_outputs(out: &Output) -> Vec<Value> {
    let j = out.journal();
    ["before", "after"]
        .iter()
        .map(|phase| j["steady_states"][phase]["probes"][0]["output"].clone())
        .collect()
}

/// The `chaos.slo.*` attributes of every span called `name` in the run's trace file,
/// in order.
fn slo_spans(dir: &TempDir, name: &str) -> Vec<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(dir.join("journal.trace.json")).unwrap();
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let doc: Value = serde_json::from_str(line).unwrap();
        for rs in doc["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    if span["name"] != name {
                        continue;
                    }
                    out.push(
                        span["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|a| a["key"].as_str().unwrap().starts_with("chaos.slo."))
                            .map(|a| (a["key"].as_str().unwrap().to_string(), a["value"].clone()))
                            .collect(),
                    );
                }
            }
        }
    }
    assert!(!out.is_empty(), "no span {name:?} in {text}");
    out
}

#[test]
fn the_guide_healthy_then_unhealthy_met_then_deviated_with_the_table() {
    let dir = TempDir::new("slo-guide");
    let store = dir.join("store.db");
    put_guide_objective(&store);

    let healthy = guide_experiment(
        "A Healthy Service",
        send_indicator("send_good_indicator", json!({"good": true})),
    );
    // No result yet: checked after the method only, as the guide does.
    let first = run_on(
        &dir,
        &store,
        &healthy,
        &["--hypothesis-strategy", "after-method-only"],
    );
    assert_eq!(first.code, 0, "{}", first.all_text());
    assert_eq!(first.status(), "completed");
    assert!(
        first.stderr.contains("All Objective Results were OK."),
        "{}",
        first.all_text()
    );

    let again = run_on(&dir, &store, &healthy, &[]);
    assert_eq!(again.code, 0, "{}", again.all_text());
    assert_eq!(slo_outputs(&again), [json!(true), json!(true)]);

    let unhealthy = guide_experiment(
        "An Unhealthy Service",
        send_indicator("send_bad_indicator", json!({"percent": 90})),
    );
    let bad = run_on(&dir, &store, &unhealthy, &[]);
    assert_eq!(bad.code, 1, "{}", bad.all_text());
    assert!(bad.deviated());
    assert_eq!(slo_outputs(&bad), [json!(true), json!(false)]);
    let text = bad.all_text();
    assert!(
        text.contains("The following Objective Results were not OK:"),
        "{text}"
    );
    assert!(
        text.contains("    Objective Results are sorted by latest at the top:"),
        "{text}"
    );
    // The guide's columns; times as Go prints them (`+0000 UTC`), the selector as
    // Python does.
    assert!(text.contains("|   Objective % |   Actual % |   Remaining % | Indicator Selector                                                                                           |"), "{text}");
    assert!(text.contains("    | From    "), "{text}");
    assert!(text.contains(" +0000 UTC |          99.9 |         90 |          -9.9 | {'category': 'Availability', 'indicator_name': 'exploring-reliability-guide-service-availability-indicator'} |"), "{text}");
    // The on-call reader's attributes on the probe's span (the default trace file
    // beside the journal).
    let spans = slo_spans(&dir, "probe SLO is met");
    let after = spans.last().unwrap();
    assert_eq!(
        after["chaos.slo.met"],
        json!({"boolValue": false}),
        "{after:?}"
    );
    assert_eq!(
        after["chaos.slo.actual_percent"],
        json!({"doubleValue": 90.0})
    );
    assert_eq!(
        after["chaos.slo.target_percent"],
        json!({"doubleValue": 99.9})
    );
    assert_eq!(
        after["chaos.slo.objective"],
        json!({"stringValue": format!("name={NAME},service={SERVICE}")})
    );
    assert_eq!(
        after["chaos.slo.store"],
        json!({"stringValue": store.to_str().unwrap()})
    );
    let push = slo_spans(&dir, "action send_bad_indicator");
    assert_eq!(
        push[0]["chaos.slo.indicator.percent"],
        json!({"doubleValue": 90.0})
    );
    // Only the failing result is in the table: one row after the header and rule.
    assert_eq!(
        text.matches("+0000 UTC |          99.9 |").count(),
        1,
        "{text}"
    );
}

#[test]
fn no_result_is_not_met_with_the_warning() {
    let dir = TempDir::new("slo-none");
    let store = dir.join("store.db");
    put_guide_objective(&store);
    let exp = json!({"title": "nothing yet", "description": "d",
        "steady-state-hypothesis": {"title": "t", "probes": [slo_is_met()]},
        "method": [sh("action", "noop", "true")]});
    let out = run_on(&dir, &store, &exp, &[]);
    let text = out.all_text();
    assert!(
        text.contains("No objective results were found so we must bail out"),
        "{text}"
    );
    assert_eq!(slo_outputs(&out)[0], json!(false), "{text}");
    // Not met before the method: the method is skipped (as the Chaos Toolkit does).
    assert!(out.run_names().is_empty(), "{text}");
}

#[test]
fn an_unknown_objective_fails_the_probe_by_name() {
    let dir = TempDir::new("slo-unknown");
    let store = dir.join("store.db");
    put_guide_objective(&store);
    let mut probe = slo_is_met();
    probe["provider"]["arguments"]["labels"] = json!({"service": "nobody"});
    let exp = json!({"title": "unknown", "description": "d",
        "steady-state-hypothesis": {"title": "t", "probes": [probe]},
        "method": []});
    let out = run_on(&dir, &store, &exp, &[]);
    let before = &out.journal()["steady_states"]["before"]["probes"][0];
    assert_eq!(before["status"], "failed", "{}", out.all_text());
    assert!(
        exception_text(before).contains("No objectives found to match the given labels"),
        "{}",
        out.all_text()
    );
}

#[test]
fn a_pushed_indicator_carries_the_run_id_and_trace_id() {
    let dir = TempDir::new("slo-origin");
    let store = dir.join("store.db");
    let exp = json!({"title": "push", "description": "d",
        "method": [send_indicator("push", json!({"good": 999, "total": 1000}))]});
    let out = run_on(&dir, &store, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let j = out.journal();
    let ext = &j["extensions"][0];
    let (run_id, trace_id) = (
        ext["run_id"].as_str().unwrap(),
        ext["trace_id"].as_str().unwrap(),
    );
    assert_eq!(trace_id.len(), 32);
    let output = &j["run"][0]["output"];
    assert_eq!(output["runId"], run_id, "{output}");
    assert_eq!(output["traceId"], trace_id, "{output}");
    assert_eq!(output["percent"], json!(99.9), "{output}");
    assert_eq!(
        (output["good"].clone(), output["total"].clone()),
        (json!(999), json!(1000))
    );
    // And in the store itself, read back from the file.
    let db = rusqlite::Connection::open(&store).unwrap();
    let (r, t, from_us): (String, String, i64) = db
        .query_row(
            "SELECT run_id, trace_id, from_us FROM indicators WHERE id = ?1",
            [output["id"].as_str().unwrap()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!((r.as_str(), t.as_str()), (run_id, trace_id));
    // `from` defaults to the experiment's start.
    let start = chrono::DateTime::parse_from_rfc3339(j["start"].as_str().unwrap()).unwrap();
    assert!(
        (start.timestamp_micros() - from_us).abs() < 1_000,
        "{start} vs {from_us}"
    );
}

#[test]
fn the_slo_probe_gives_the_status_over_the_run_and_a_window() {
    let dir = TempDir::new("slo-status");
    let store = dir.join("store.db");
    put_guide_objective(&store);
    let status = |name: &str, window: &str| {
        json!({"type": "probe", "name": name,
            "tolerance": {"type": "jsonpath", "path": "$.met", "expect": true},
            "provider": {"type": "slo", "labels": {"service": SERVICE}, "window": window}})
    };
    // 1999 good of 2000 over the run: 99.95 %, half the 0.1 % budget left.
    let exp = json!({"title": "status", "description": "d",
        "method": [send_indicator("a", json!({"good": 1000, "total": 1000})),
                   send_indicator("b", json!({"good": 999, "total": 1000})),
                   status("over the run", "run")]});
    let out = run_on(&dir, &store, &exp, &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let s = &out.journal()["run"][2]["output"];
    assert_eq!(s["verdict"], "met", "{s}");
    assert_eq!(s["met"], true);
    assert_eq!(s["indicators"], 2);
    assert_eq!(
        (s["good"].clone(), s["total"].clone()),
        (json!(1999), json!(2000))
    );
    assert!(
        (s["actual_percent"].as_f64().unwrap() - 99.95).abs() < 1e-9,
        "{s}"
    );
    assert_eq!(s["target_percent"], json!(99.9));
    // The run history keeps the verdict beside the run (issue 14).
    let list = faultline(
        &dir,
        &["runs", "list", "--limit", "1", "--format", "json"],
        &[("FAULTLINE_STORE", store.to_str().unwrap())],
    );
    assert_eq!(list.code, 0, "{}", list.all_text());
    let runs: Value = serde_json::from_str(&list.stdout).unwrap();
    let verdicts = &runs[0]["slo"];
    assert_eq!(verdicts.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(verdicts[0]["activity"], "over the run");
    assert_eq!(verdicts[0]["phase"], "method");
    assert_eq!(verdicts[0]["verdict"], "met");
    assert_eq!(verdicts[0]["objective"]["service"], SERVICE, "{verdicts}");
    assert!(
        (s["error_budget_remaining_percent"].as_f64().unwrap() - 50.0).abs() < 1e-6,
        "{s}"
    );

    // A new run's window holds only its own indicators: a bad one misses the target,
    // while the last hour still holds all three.
    let exp = json!({"title": "status", "description": "d",
        "steady-state-hypothesis": {"title": "t", "probes": [status("over the run", "run")]},
        "method": [send_indicator("bad", json!({"good": 0, "total": 1000})),
                   status("over the hour", "1h")]});
    let out = run_on(
        &dir,
        &store,
        &exp,
        &["--hypothesis-strategy", "after-method-only"],
    );
    assert_eq!(out.code, 1, "{}", out.all_text());
    let after = &out.journal()["steady_states"]["after"]["probes"][0]["output"];
    assert_eq!(after["verdict"], "not_met", "{after}");
    assert_eq!(after["indicators"], 1, "{after}");
    let hour = &out.journal()["run"][1]["output"];
    assert_eq!(hour["indicators"], 3, "{hour}");

    // Nothing in the window: inconclusive, never met.
    let exp = json!({"title": "status", "description": "d",
        "method": [status("empty run", "run")]});
    let out = run_on(&dir, &store, &exp, &[]);
    let s = &out.journal()["run"][0]["output"];
    assert_eq!(s["verdict"], "inconclusive", "{}", out.all_text());
    assert_eq!(s["met"], false);
}

#[test]
fn a_run_without_slo_activities_creates_no_store_file() {
    let dir = TempDir::new("slo-nofile");
    let data = dir.join("data");
    let env = [
        ("XDG_DATA_HOME", data.to_str().unwrap()),
        ("FAULTLINE_STORE", ""),
    ];
    let plain = experiment(vec![], vec![sh("action", "noop", "true")], vec![]);
    // The SLO activities open no store (--no-record: nor does the run history).
    let out = run_experiment_env(&dir, &plain, &["--no-record"], &env);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(!data.join("faultline").exists(), "a store was created");
    // The same place is the default store of a run that needs one.
    let push = experiment(
        vec![],
        vec![send_indicator("push", json!({"good": true}))],
        vec![],
    );
    let out = run_experiment_env(&dir, &push, &["--no-record"], &env);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(data.join("faultline/store.db").exists());
}

#[test]
fn bad_slo_definitions_are_refused_before_anything_runs() {
    let dir = TempDir::new("slo-invalid");
    let exp = json!({"title": "bad", "description": "d",
        "steady-state-hypothesis": {"title": "t", "probes": [
            {"type": "probe", "name": "met", "tolerance": true,
             "provider": {"type": "python", "module": "chaosreliably.slo.probes", "func": "slo_is_met",
                "arguments": {"labels": {"service": 7}, "limit": 0}}},
            {"type": "probe", "name": "status", "tolerance": true,
             "provider": {"type": "slo", "labels": {"service": "x"}, "window": "soon"}}]},
        "method": [
            {"type": "action", "name": "push", "provider": {"type": "indicator",
                "labels": {"category": "Availability"}, "percent": 101,
                "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}},
            {"type": "action", "name": "nothing", "provider": {"type": "indicator", "labels": {}}}]});
    let path = dir.experiment(&exp);
    let out = faultline(&dir, &["validate", path.to_str().unwrap()], &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let text = out.all_text();
    for expected in [
        "$.steady-state-hypothesis.probes[0].provider.arguments.labels.service",
        "$.steady-state-hypothesis.probes[0].provider.arguments.limit",
        "$.steady-state-hypothesis.probes[1].provider.window",
        "$.steady-state-hypothesis.probes[1].tolerance",
        "$.method[0].provider.percent",
        "$.method[0].provider.from",
        "$.method[1].provider.labels",
        "$.method[1].provider.percent",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(text.contains("\"path\": \"$.met\""), "{text}");
    // `run` refuses it the same way, and writes nothing to any store.
    let store = dir.join("store.db");
    let out = run_on(&dir, &store, &exp, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(!store.exists());
}

#[test]
fn a_store_that_cannot_work_is_refused_only_when_needed() {
    let dir = TempDir::new("slo-badstore");
    let push = experiment(
        vec![],
        vec![send_indicator("push", json!({"good": true}))],
        vec![],
    );
    let out = run_experiment_env(&dir, &push, &["--store", "ftp://x/y"], &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.all_text().contains("unknown scheme"),
        "{}",
        out.all_text()
    );
    let out = run_experiment_env(
        &dir,
        &push,
        &["--org", "a/b"],
        &[("FAULTLINE_STORE", dir.join("s.db").to_str().unwrap())],
    );
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.all_text().contains("--org"), "{}", out.all_text());
    let plain = experiment(vec![], vec![sh("action", "noop", "true")], vec![]);
    let out = run_experiment_env(&dir, &plain, &["--store", "ftp://x/y"], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
}

/// A real `faultline serve` on a free port over `store` (killed on drop), and a token
/// of organisation `org` made with `faultline token create`.
struct Served {
    _child: ChildGuard,
    addr: String,
    token: String,
}

fn serve(dir: &TempDir, store: &std::path::Path, org: &str) -> Served {
    let made = std::process::Command::new(bin())
        .args(["token", "create", "--org", org, "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let token = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let log = dir.join("serve.out");
    let child = std::process::Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--store"])
        .arg(store)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("serve.err")).unwrap())
        .spawn()
        .unwrap();
    let child = ChildGuard(Some(child));
    let mut addr = String::new();
    wait_until(
        std::time::Duration::from_secs(30),
        "faultline serve to listen",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match text
                .lines()
                .find_map(|l| l.strip_prefix("faultline serve: listening on http://"))
            {
                Some(rest) => {
                    addr = rest.split_whitespace().next().unwrap().to_string();
                    true
                }
                None => false,
            }
        },
    );
    Served {
        _child: child,
        addr,
        token,
    }
}

#[test]
fn slo_is_met_reads_the_server_reliably_host_names() {
    let dir = TempDir::new("slo-reliably-host");
    let served = serve(&dir, &dir.join("served.db"), "guide");
    // The guide's objective and a Bad indicator, on the server only.
    let doc = json!({"metadata": {"labels": {"name": NAME, "service": SERVICE}},
        "spec": {"indicatorSelector": {"category": "Availability", "indicator_name": INDICATOR},
                 "objectivePercent": 99.9, "window": "1h"}});
    let bad = json!({"metadata": {"labels": {"category": "Availability", "indicator_name": INDICATOR}},
        "spec": {"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "percent": 90.0}});
    runtime().block_on(async {
        let spec = StoreSpec::Remote {
            base: format!("http://{}", served.addr).parse().unwrap(),
            token: Some(served.token.clone()),
        };
        let s = Store::open(&spec).await.unwrap();
        s.put_objective("guide", &faultline::slo::parse_objective(&doc).unwrap())
            .await
            .unwrap();
        s.put_indicator(
            "guide",
            &faultline::slo::parse_indicator(&bad).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    });
    let local = dir.join("local.db");
    let exp = json!({"title": "remote", "description": "d",
        "steady-state-hypothesis": {"title": "t", "probes": [slo_is_met()]},
        "method": []});
    // From the environment, as the Reliably client reads it (the run history off:
    // the run's own store must stay unopened).
    let out = run_experiment_env(
        &dir,
        &exp,
        &["--no-record"],
        &[
            ("FAULTLINE_STORE", local.to_str().unwrap()),
            ("RELIABLY_HOST", served.addr.as_str()),
            ("RELIABLY_TOKEN", served.token.as_str()),
            ("RELIABLY_ORG", "guide"),
        ],
    );
    assert_no_panic(&out);
    assert_eq!(slo_outputs(&out)[0], json!(false), "{}", out.all_text());
    assert!(
        out.all_text()
            .contains("2026-01-01 00:00:00 +0000 UTC |          99.9 |         90 |"),
        "{}",
        out.all_text()
    );
    assert!(!local.exists(), "the run's own store was opened");

    // From the probe's secrets, which come first; a wrong token is refused by name.
    let with_secrets = |token: &str| {
        let mut probe = slo_is_met();
        probe["provider"]["secrets"] = json!(["reliably"]);
        json!({"title": "remote", "description": "d",
            "secrets": {"reliably": {"host": served.addr, "token": token, "org": "guide"}},
            "steady-state-hypothesis": {"title": "t", "probes": [probe]},
            "method": []})
    };
    let env = [
        ("FAULTLINE_STORE", local.to_str().unwrap()),
        ("RELIABLY_HOST", "127.0.0.1:1"),
    ];
    let out = run_experiment_env(&dir, &with_secrets(&served.token), &["--no-record"], &env);
    assert_eq!(slo_outputs(&out)[0], json!(false), "{}", out.all_text());
    assert!(
        out.all_text().contains("|          -9.9 |"),
        "{}",
        out.all_text()
    );
    let out = run_experiment_env(&dir, &with_secrets("not-a-token"), &["--no-record"], &env);
    let probe = &out.journal()["steady_states"]["before"]["probes"][0];
    assert_eq!(probe["status"], "failed", "{}", out.all_text());
    let why = exception_text(probe);
    assert!(why.contains("401") || why.contains("token"), "{why}");
    assert!(
        !out.all_text().contains("not-a-token"),
        "{}",
        out.all_text()
    );
    assert!(!local.exists());
}

#[test]
fn the_settings_file_names_the_store_when_nothing_else_does() {
    let dir = TempDir::new("slo-settings");
    let from_settings = dir.join("from-settings.db");
    let settings = dir.write(
        "settings.yaml",
        &format!(
            "store:\n  location: {}\n  org: team-a\n",
            from_settings.display()
        ),
    );
    let push = experiment(
        vec![],
        vec![send_indicator("push", json!({"good": true}))],
        vec![],
    );
    let s = settings.to_str().unwrap();
    let out = run_experiment_env(&dir, &push, &["--settings", s], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let db = rusqlite::Connection::open(&from_settings).unwrap();
    let org: String = db
        .query_row("SELECT org FROM indicators", [], |r| r.get(0))
        .unwrap();
    assert_eq!(org, "team-a");
    // The environment comes first.
    let from_env = dir.join("from-env.db");
    let out = run_experiment_env(
        &dir,
        &push,
        &["--settings", s],
        &[("FAULTLINE_STORE", from_env.to_str().unwrap())],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(from_env.exists());
    // The block is strict, as the whole file is.
    let bad = dir.write("bad.yaml", "store:\n  path: x.db\n");
    let out = run_experiment_env(&dir, &push, &["--settings", bad.to_str().unwrap()], &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(out.all_text().contains("$.store"), "{}", out.all_text());
}
