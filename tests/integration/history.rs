//! The run history (issue 14): every run recorded in its store, on SQLite and on a
//! real PostgreSQL; the queries (`runs list|show`, `correlate`) from the library and
//! from the binary; the spool when the store cannot be reached, delivered by `runs
//! flush` and by the next run; `faultline serve`'s run routes (what `--store URL`
//! speaks, Grafana annotations, scores, stats, the run gauges of `/metrics`); scores
//! and stats on a history the test builds; bad input (exit 3).

use crate::common::*;
use crate::server::{token, Served};
use crate::store::Postgres;
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use faultline::slo::Labels;
use faultline::store::runs::{Overlap, RunFilter, RunSummary};
use faultline::store::{Store, StoreError, StoreSpec};
use serde_json::{json, Value};
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap()
}

/// A run of `exp` starting `start_min` minutes after t0, lasting `len_min`.
fn run(
    id: &str,
    exp: &str,
    start_min: i64,
    len_min: i64,
    status: &str,
    l: &[(&str, &str)],
) -> RunSummary {
    let started = t0() + Span::minutes(start_min);
    RunSummary {
        run_id: id.into(),
        title: format!("experiment {exp}"),
        experiment_ref: exp.into(),
        tags: vec!["t".into()],
        labels: labels(l),
        started,
        ended: started + Span::minutes(len_min),
        status: status.into(),
        deviated: false,
        trace_id: Some(format!("{:0>32}", id.len())),
        journal: Some(format!("/tmp/{id}.json")),
        host: Some("h".into()),
        alerts: vec![],
        slo: vec![],
    }
}

fn ids(runs: &[RunSummary]) -> Vec<&str> {
    runs.iter().map(|r| r.run_id.as_str()).collect()
}

/// The same checks on every store kind.
async fn history_checks(store: Store, reopen: impl std::future::Future<Output = Store>) {
    let org = "acme";
    let svc_a = [("service", "cart"), ("env", "prod")];
    let svc_b = [("service", "pay"), ("env", "prod")];
    // A long run (10 hours) started well before everything else.
    let long = run("long", "soak", -600, 600, "completed", &svc_a);
    let mut history = vec![
        run("r1", "e1", 0, 5, "completed", &svc_a),
        run("r2", "e1", 60, 5, "failed", &svc_a),
        run("r3", "e2", 120, 30, "completed", &svc_b),
        run("r4", "e2", 180, 5, "interrupted", &svc_b),
        long,
    ];
    history[1].deviated = true;
    for r in &history {
        assert!(store.put_run(org, r).await.unwrap(), "{} is new", r.run_id);
    }
    // Another organisation's run is never seen.
    store
        .put_run("other", &run("x1", "e1", 0, 5, "completed", &svc_a))
        .await
        .unwrap();

    // Newest first; every filter.
    let all = store.runs(org, &RunFilter::default()).await.unwrap();
    assert_eq!(ids(&all), ["r4", "r3", "r2", "r1", "long"]);
    assert_eq!(all[1], history[2], "a run reads back as it was recorded");
    let f = |since: i64| RunFilter {
        since: Some(t0() + Span::minutes(since)),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.runs(org, &f(60)).await.unwrap()),
        ["r4", "r3", "r2"]
    );
    let until = RunFilter {
        until: Some(t0() + Span::minutes(60)),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.runs(org, &until).await.unwrap()),
        ["r2", "r1", "long"]
    );
    let status = RunFilter {
        status: Some("failed".into()),
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.runs(org, &status).await.unwrap()), ["r2"]);
    let bad = RunFilter {
        status: Some("done".into()),
        ..RunFilter::default()
    };
    assert!(matches!(
        store.runs(org, &bad).await,
        Err(StoreError::Invalid(_))
    ));
    let pay = RunFilter {
        labels: labels(&[("service", "pay"), ("env", "prod")]),
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.runs(org, &pay).await.unwrap()), ["r4", "r3"]);
    let none = RunFilter {
        labels: labels(&[("service", "pay"), ("env", "dev")]),
        ..RunFilter::default()
    };
    assert!(store.runs(org, &none).await.unwrap().is_empty());
    let e1 = RunFilter {
        experiment_ref: Some("e1".into()),
        limit: 1,
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.runs(org, &e1).await.unwrap()), ["r2"]);

    // One run; an unknown one.
    assert_eq!(store.run(org, "r3").await.unwrap(), history[2]);
    assert!(matches!(
        store.run(org, "nope").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.run("other", "r3").await,
        Err(StoreError::NotFound(_))
    ));

    // Overlaps: the incident window [t0+62m, t0+130m] meets r2 (60..65), r3
    // (120..150) and not r1 (0..5) nor r4 (180..); the long soak ended at t0.
    let overlap = |from: i64, to: i64, l: &[(&str, &str)]| Overlap {
        from: t0() + Span::minutes(from),
        to: t0() + Span::minutes(to),
        labels: labels(l),
        limit: 0,
    };
    let o = store
        .overlapping(org, &overlap(62, 130, &[]))
        .await
        .unwrap();
    assert_eq!(ids(&o), ["r3", "r2"]);
    let o = store
        .overlapping(org, &overlap(62, 130, &[("service", "cart")]))
        .await
        .unwrap();
    assert_eq!(ids(&o), ["r2"]);
    // A window inside the long run finds it though it started 10 hours before.
    let o = store
        .overlapping(org, &overlap(-300, -290, &[]))
        .await
        .unwrap();
    assert_eq!(ids(&o), ["long"]);
    // Touching ends count; a window after everything finds nothing.
    let o = store
        .overlapping(org, &overlap(185, 185, &[]))
        .await
        .unwrap();
    assert_eq!(ids(&o), ["r4"]);
    assert!(store
        .overlapping(org, &overlap(1000, 1100, &[]))
        .await
        .unwrap()
        .is_empty());
    let backwards = overlap(10, 5, &[]);
    assert!(matches!(
        store.overlapping(org, &backwards).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store
        .overlapping("nobody", &overlap(0, 10, &[]))
        .await
        .unwrap()
        .is_empty());

    // Recording the same run again replaces it (a spool delivered twice).
    let mut again = history[0].clone();
    again.labels = labels(&[("service", "checkout")]);
    assert!(!store.put_run(org, &again).await.unwrap());
    let all = store.runs(org, &RunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 5);
    let checkout = RunFilter {
        labels: labels(&[("service", "checkout")]),
        ..RunFilter::default()
    };
    assert_eq!(ids(&store.runs(org, &checkout).await.unwrap()), ["r1"]);
    let cart_e1 = RunFilter {
        labels: labels(&[("service", "cart")]),
        experiment_ref: Some("e1".into()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(&store.runs(org, &cart_e1).await.unwrap()),
        ["r2"],
        "old labels are gone"
    );

    // A bad record is refused, naming the field.
    let mut bad = run("b/1", "e1", 0, 1, "completed", &[]);
    let e = store.put_run(org, &bad).await.unwrap_err();
    assert!(e.to_string().contains("runId"), "{e}");
    bad.run_id = "b1".into();
    bad.status = "done".into();
    let e = store.put_run(org, &bad).await.unwrap_err();
    assert!(e.to_string().contains("status"), "{e}");

    // What scores and /metrics read.
    let latest = store.latest_runs(org, 1).await.unwrap();
    let mut l: Vec<&str> = ids(&latest);
    l.sort();
    assert_eq!(l, ["long", "r2", "r4"]);
    let counts = store.run_counts(org).await.unwrap();
    let n: u64 = counts.iter().map(|c| c.count).sum();
    assert_eq!(n, 5);
    assert!(counts
        .iter()
        .any(|c| c.status == "failed" && c.deviated && c.count == 1));
    assert_eq!(store.run_organisations().await.unwrap(), ["acme", "other"]);
    store.close().await;

    // Everything is still there after reopening.
    let store = reopen.await;
    assert_eq!(
        store.runs(org, &RunFilter::default()).await.unwrap().len(),
        5
    );
    let o = store
        .overlapping(org, &overlap(-300, -290, &[]))
        .await
        .unwrap();
    assert_eq!(ids(&o), ["long"]);
    store.close().await;
}

#[test]
fn the_embedded_store_keeps_and_queries_the_run_history() {
    let dir = TempDir::new("history-sqlite");
    let spec = StoreSpec::Sqlite(dir.join("store.db"));
    runtime().block_on(async {
        let store = Store::open(&spec).await.unwrap();
        history_checks(store, async { Store::open(&spec).await.unwrap() }).await;
    });
}

#[test]
fn postgresql_keeps_and_queries_the_run_history() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = runtime();
    let url = pg.database(&rt);
    let spec = StoreSpec::Postgres(url);
    rt.block_on(async {
        let store = Store::open(&spec).await.unwrap();
        history_checks(store, async { Store::open(&spec).await.unwrap() }).await;
    });
}

fn tagged_experiment() -> Value {
    json!({
        "title": "cart survives ${who}",
        "description": "d",
        "tags": ["service:cart", "kubernetes"],
        "configuration": {"who": "a pod kill", "target_labels": {"team": "payments"}},
        "method": [sh("action", "work", "true")],
    })
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn every_run_is_recorded_with_its_labels_and_found_by_the_queries() {
    let dir = TempDir::new("history-run");
    let exp = dir.experiment(&tagged_experiment());
    let journal = dir.join("journal.json");
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
            "--label",
            "env=staging",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.all_text()
            .contains("Run recorded in the run history at"),
        "{}",
        out.stdout
    );
    let store = dir.join("xdg-data/faultline/store.db");
    assert!(store.exists(), "the embedded store is the default");
    let j = out.journal();
    let run_id = j["extensions"][0]["run_id"].as_str().unwrap().to_string();
    let trace_id = j["extensions"][0]["trace_id"].as_str().unwrap().to_string();

    let list = faultline(&dir, &["runs", "list", "--format", "json"], &[]);
    assert_eq!(list.code, 0, "{}", list.all_text());
    let runs = json_of(&list);
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let r = &runs[0];
    assert_eq!(r["runId"], run_id.as_str());
    assert_eq!(r["traceId"], trace_id.as_str());
    assert_eq!(
        r["title"], "cart survives a pod kill",
        "the title as substituted"
    );
    assert_eq!(r["status"], "completed");
    assert_eq!(r["deviated"], false);
    assert_eq!(
        r["labels"],
        json!({"env": "staging", "service": "cart", "team": "payments"})
    );
    assert_eq!(r["journal"], journal.to_str().unwrap());
    assert_eq!(r["tags"], json!(["service:cart", "kubernetes"]));
    assert_eq!(r["experimentRef"].as_str().unwrap().len(), 32);
    // The journal's times are the record's.
    let started: DateTime<Utc> = r["started"].as_str().unwrap().parse().unwrap();
    let j_start = DateTime::parse_from_rfc3339(j["start"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(
        (started - j_start).num_milliseconds().abs() <= 1,
        "{started} vs {j_start}"
    );

    // The table names the run and its trace.
    let table = faultline(&dir, &["runs", "list", "--label", "service=cart"], &[]);
    assert_eq!(table.code, 0);
    assert!(
        table.stdout.contains(&run_id) && table.stdout.contains(&trace_id),
        "{}",
        table.stdout
    );
    let other = faultline(&dir, &["runs", "list", "--label", "service=pay"], &[]);
    assert!(
        other.stdout.contains("No runs recorded match"),
        "{}",
        other.stdout
    );

    let show = faultline(&dir, &["runs", "show", &run_id], &[]);
    assert_eq!(show.code, 0, "{}", show.all_text());
    assert!(show.stdout.contains("cart survives a pod kill"));
    assert!(show.stdout.contains(journal.to_str().unwrap()));

    // correlate: an incident a minute after the run, window 30m, the service's label.
    let at = (Utc::now() + Span::minutes(1)).to_rfc3339();
    let c = faultline(
        &dir,
        &[
            "correlate",
            "--at",
            &at,
            "--label",
            "service=cart",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(c.code, 0, "{}", c.all_text());
    let c = json_of(&c);
    assert_eq!(c["runs"][0]["runId"], run_id.as_str());
    assert_eq!(c["runs"][0]["traceId"], trace_id.as_str());
    // Another service, or an incident two hours later, names none.
    let c = faultline(
        &dir,
        &["correlate", "--at", &at, "--label", "service=pay"],
        &[],
    );
    assert!(
        c.stdout.contains("none: no recorded chaos run overlapped"),
        "{}",
        c.stdout
    );
    let later = (Utc::now() + Span::hours(2)).to_rfc3339();
    let c = faultline(
        &dir,
        &["correlate", "--at", &later, "--format", "json"],
        &[],
    );
    assert_eq!(json_of(&c)["runs"], json!([]));

    // --no-record: nothing more recorded.
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
            "--no-record",
        ],
        &[],
    );
    assert_eq!(out.code, 0);
    assert!(
        !out.all_text().contains("Run recorded"),
        "{}",
        out.all_text()
    );
    let list = faultline(&dir, &["runs", "list", "--format", "json"], &[]);
    assert_eq!(json_of(&list).as_array().unwrap().len(), 1);
}

#[test]
fn a_run_with_no_record_creates_no_store() {
    let dir = TempDir::new("history-norecord");
    let exp = dir.experiment(&tagged_experiment());
    let out = faultline(&dir, &["run", exp.to_str().unwrap(), "--no-record"], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(!dir.join("xdg-data").exists());
}

#[test]
fn bad_input_is_named_and_exits_3() {
    let dir = TempDir::new("history-bad");
    let exp = dir.experiment(&tagged_experiment());
    // Make a store with one run, so "unknown" is about the id, not the store.
    let out = faultline(&dir, &["run", exp.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let cases: &[(&[&str], &str)] = &[
        (&["runs", "show", "no-such-run"], "no run \"no-such-run\""),
        (
            &["correlate", "--at", "yesterday-ish"],
            "--at: \"yesterday-ish\" is not a time",
        ),
        (
            &["correlate", "--window", "5 minutes"],
            "--window: \"5 minutes\" is not a duration",
        ),
        (
            &["correlate", "--label", "service"],
            "--label: label \"service\": expected key=value",
        ),
        (
            &["runs", "list", "--since", "last week"],
            "--since: \"last week\" is not a time",
        ),
        (
            &["runs", "list", "--status", "done"],
            "status \"done\": expected one of",
        ),
        (&["runs", "scores", "--half-life", "0s"], "--half-life"),
        (
            &["run", exp.to_str().unwrap(), "--label", "9=x"],
            "--label: label \"9=x\"",
        ),
    ];
    for (args, said) in cases {
        let out = faultline(&dir, args, &[]);
        assert_eq!(out.code, 3, "{args:?}: {}", out.all_text());
        assert!(
            out.all_text().contains(said),
            "{args:?}: {}",
            out.all_text()
        );
        assert_no_panic(&out);
    }
}

#[test]
fn an_unreachable_store_spools_the_record_and_a_flush_or_the_next_run_delivers_it() {
    let dir = TempDir::new("history-spool");
    let exp = dir.experiment(&tagged_experiment());
    let store = dir.join("served.db");
    // A port nothing listens on: the run still succeeds, the record waits.
    let port = free_port();
    let dead = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = faultline(&dir, &["run", exp.to_str().unwrap(), "--store", &dead], &[]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.all_text().contains("could not be recorded"),
        "{}",
        out.all_text()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let spooled: Vec<_> = walk(&dir.join("xdg-state/faultline/spool"));
    assert_eq!(spooled.len(), 1, "{spooled:?}");
    let record: Value = serde_json::from_slice(&std::fs::read(&spooled[0]).unwrap()).unwrap();
    let first_id = record["run"]["runId"].as_str().unwrap().to_string();
    assert_eq!(record["store"], format!("{dead}/"));

    // Now a server on that port: flush delivers (with a token: secured).
    let tok = token(&dir, "default", &store);
    let served = Served::start_on(&dir, "spool", &store, &format!("127.0.0.1:{port}"), &[]);
    assert_eq!(served.base, dead);
    let flush = faultline(
        &dir,
        &["runs", "flush", "--store", &dead, "--token", &tok],
        &[],
    );
    assert_eq!(flush.code, 0, "{}", flush.all_text());
    assert!(
        flush.stdout.contains("1 record(s) delivered"),
        "{}",
        flush.stdout
    );
    assert!(walk(&dir.join("xdg-state/faultline/spool")).is_empty());
    let list = faultline(
        &dir,
        &[
            "runs", "list", "--store", &dead, "--token", &tok, "--format", "json",
        ],
        &[],
    );
    assert_eq!(json_of(&list)[0]["runId"], first_id.as_str());

    // A wrong token: the store refuses (401), the record waits for a right one ...
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--store",
            &dead,
            "--token",
            "flt_wrong",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(out.all_text().contains("401"), "{}", out.all_text());
    assert_eq!(walk(&dir.join("xdg-state/faultline/spool")).len(), 1);
    drop(served);
    // ... and with the server gone, spooled too; the next run with the server back
    // delivers both before its own.
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--store",
            &dead,
            "--token",
            &tok,
        ],
        &[],
    );
    assert_eq!(out.code, 0);
    assert_eq!(walk(&dir.join("xdg-state/faultline/spool")).len(), 2);
    let _served = Served::start_on(&dir, "spool2", &store, &format!("127.0.0.1:{port}"), &[]);
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--store",
            &dead,
            "--token",
            &tok,
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.all_text().contains("2 spooled record(s) delivered"),
        "{}",
        out.all_text()
    );
    assert!(walk(&dir.join("xdg-state/faultline/spool")).is_empty());
    let list = faultline(
        &dir,
        &[
            "runs", "list", "--store", &dead, "--token", &tok, "--format", "json",
        ],
        &[],
    );
    assert_eq!(json_of(&list).as_array().unwrap().len(), 4);
}

/// Files under `root`, recursively.
fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_run_records_itself_in_postgresql_and_correlate_reads_it_there() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    let rt = runtime();
    let url = pg.database(&rt);
    let dir = TempDir::new("history-pg");
    let exp = dir.experiment(&tagged_experiment());
    let out = faultline(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--store",
            &url,
            "--org",
            "acme",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert!(
        out.all_text().contains("Run recorded"),
        "{}",
        out.all_text()
    );
    assert!(
        !dir.join("xdg-data").exists(),
        "nothing in the embedded store"
    );
    let c = faultline(
        &dir,
        &[
            "correlate",
            "--store",
            &url,
            "--org",
            "acme",
            "--label",
            "service=cart",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(c.code, 0, "{}", c.all_text());
    assert_eq!(json_of(&c)["runs"].as_array().unwrap().len(), 1);
    // Another organisation sees nothing.
    let c = faultline(
        &dir,
        &["runs", "list", "--store", &url, "--format", "json"],
        &[],
    );
    assert_eq!(json_of(&c), json!([]));
}

fn get(url: &str, token: &str) -> (u16, Value) {
    faultline::tls::init();
    let r = reqwest::blocking::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .unwrap();
    let code = r.status().as_u16();
    let text = r.text().unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn serve_answers_history_queries_annotations_scores_stats_and_run_gauges() {
    let dir = TempDir::new("history-serve");
    let store = dir.join("store.db");
    // A history the test builds: experiment e1 deviates then is fixed; e2 always holds.
    let rt = runtime();
    rt.block_on(async {
        let s = Store::open(&StoreSpec::Sqlite(store.clone()))
            .await
            .unwrap();
        let now = Utc::now();
        let put = |id: &str, exp: &str, ago_h: i64, status: &str, deviated: bool| {
            let mut r = run(
                id,
                exp,
                0,
                10,
                status,
                &[("service", if exp == "e1" { "cart" } else { "pay" })],
            );
            r.started = now - Span::hours(ago_h);
            r.ended = r.started + Span::minutes(10);
            r.deviated = deviated;
            r
        };
        let runs = vec![
            put("a1", "e1", 50, "completed", false),
            put("a2", "e1", 40, "completed", true),
            put("a3", "e1", 30, "completed", false),
            put("b1", "e2", 20, "completed", false),
            put("b2", "e2", 2, "completed", false),
        ];
        for r in &runs {
            s.put_run("default", r).await.unwrap();
        }
        s.close().await;
    });
    let tok = token(&dir, "default", &store);
    let served = Served::start(&dir, "h", &store, &[]);
    let api = format!("{}/api/v1/orgs/default", served.base);

    let (code, list) = get(&format!("{api}/runs?label=service=cart&limit=2"), &tok);
    assert_eq!(code, 200, "{list}");
    let got: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runId"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["a3", "a2"]);
    let (code, one) = get(&format!("{api}/runs/b2"), &tok);
    assert_eq!((code, one["runId"].as_str()), (200, Some("b2")));
    let (code, err) = get(&format!("{api}/runs/zzz"), &tok);
    assert_eq!(code, 404, "{err}");
    let (code, err) = get(&format!("{api}/correlate?at=tomorrow"), &tok);
    assert_eq!(code, 400);
    assert!(err.to_string().contains("is not a time"), "{err}");

    // Grafana: from/to in epoch milliseconds, as ${__from}/${__to} give them.
    let now = Utc::now();
    let from = (now - Span::hours(3)).timestamp_millis();
    let to = now.timestamp_millis();
    let (code, ann) = get(&format!("{api}/annotations?from={from}&to={to}"), &tok);
    assert_eq!(code, 200, "{ann}");
    let ann = ann.as_array().unwrap();
    assert_eq!(ann.len(), 1, "{ann:?}");
    assert_eq!(ann[0]["runId"], "b2");
    assert_eq!(ann[0]["isRegion"], true);
    assert!(ann[0]["timeEnd"].as_i64().unwrap() - ann[0]["time"].as_i64().unwrap() == 600_000);
    let tags: Vec<&str> = ann[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"faultline")
            && tags.contains(&"service:pay")
            && tags.contains(&"status:completed"),
        "{tags:?}"
    );

    // Scores and stats on that history.
    let (code, scores) = get(&format!("{api}/scores"), &tok);
    assert_eq!(code, 200, "{scores}");
    let e1 = scores
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["experimentRef"] == "e1")
        .unwrap();
    // Weights 1, 2, 3: held 1 + 3 of 6.
    assert!(
        (e1["held"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-9,
        "{e1}"
    );
    assert_eq!(e1["grade"], "C");
    let e2 = scores
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["experimentRef"] == "e2")
        .unwrap();
    assert_eq!(e2["grade"], "A");
    assert!(e2["freshness"].as_u64().unwrap() > e1["freshness"].as_u64().unwrap());
    let (code, stats) = get(&format!("{api}/stats"), &tok);
    assert_eq!(code, 200, "{stats}");
    assert_eq!(stats["findings"], 1);
    assert_eq!(stats["remediation"]["fixed"], 1);
    // a2 ended 40h - 10m ago, a3 30h - 10m ago: 10 hours.
    assert_eq!(
        stats["remediation"]["medianS"].as_f64().unwrap().round(),
        36_000.0
    );

    // The CLI over the same server says the same.
    let out = faultline(
        &dir,
        &[
            "runs",
            "scores",
            "--store",
            &served.base,
            "--token",
            &tok,
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(json_of(&out), scores);
    let out = faultline(
        &dir,
        &["runs", "stats", "--store", &served.base, "--token", &tok],
        &[],
    );
    assert!(
        out.stdout.contains("1 fixed (mean 10h00m"),
        "{}",
        out.stdout
    );

    // /metrics: the run gauges, labelled with the target labels.
    let text = reqwest::blocking::get(format!("{}/metrics", served.base))
        .unwrap()
        .text()
        .unwrap();
    let line = |name: &str, has: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(has))
            .unwrap_or_else(|| panic!("no {name} with {has} in\n{text}"))
            .to_string()
    };
    assert!(line("faultline_experiment_grade{", "service=\"cart\"").ends_with(" 2"));
    assert!(line("faultline_experiment_grade{", "service=\"pay\"").ends_with(" 4"));
    assert!(line("faultline_runs_recorded{", "deviated=\"true\"").ends_with(" 1"));
    line("faultline_experiment_freshness{", "experiment_ref=\"e2\"");
    line(
        "faultline_experiment_last_run_status{",
        "status=\"completed\"",
    );
}
