//! The guide's commands with the real binary on a temporary store file: `slo sync`,
//! `indicator push`, `slo report` (table, JSON, `-w`), `slo delete`; every bad input
//! exits 3 and leaves the store as it was; a store that cannot be reached exits 2.

use crate::common::{
    assert_no_panic, bin, collect, send_signal, wait_until, wait_with_limit, Output, TempDir,
};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const NAME: &str = "99.9% of our requests are in the 2xx class";
const SERVICE: &str = "exploring-reliability-guide-service";
const INDICATOR: &str = "exploring-reliability-guide-service-availability-indicator";

/// The guide's `reliably.yaml`, as it prints it.
const GUIDE_YAML: &str = "apiVersion: reliably.com/v1
kind: Objective
metadata:
  labels:
    name: 99.9% of our requests are in the 2xx class
    service: exploring-reliability-guide-service
spec:
  indicatorSelector:
    category: Availability
    indicator_name: exploring-reliability-guide-service-availability-indicator
  objectivePercent: 99.9
  window: 1h
";

/// The guide's report header, once an objective line is there.
const HEADER: &str = "                                                        Current  Objective  / Time Window     Type             Trend";

/// `faultline <args>` in `dir`, the store at `<dir>/store.db` through
/// `FAULTLINE_STORE`, `stdin` fed when given.
fn fl(dir: &TempDir, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("FAULTLINE_STORE", dir.join("store.db"))
        .env_remove("FAULTLINE_TOKEN")
        .env_remove("FAULTLINE_ORG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).unwrap();
    }
    let code = wait_with_limit(&mut child, Duration::from_secs(60));
    let out = collect(dir, code, &dir.join("no-journal"));
    assert_no_panic(&out);
    out
}

/// [`fl`], which must exit 0.
fn ok(dir: &TempDir, args: &[&str]) -> Output {
    let out = fl(dir, args, None);
    assert_eq!(out.code, 0, "faultline {args:?}:\n{}", out.all_text());
    out
}

fn push(dir: &TempDir, extra: &[&str], store: &[&str]) -> Output {
    let sel = format!("category=Availability,indicator_name={INDICATOR}");
    let mut args = vec!["indicator", "push", "--selector", &sel];
    args.extend_from_slice(extra);
    args.extend_from_slice(store);
    ok(dir, &args)
}

/// The objective's report line, with `trend` and `current`.
fn guide_line(icon: &str, current: &str, trend: &str) -> String {
    format!("  {icon} {NAME}{current:>16}      99.9%  / 1h0m0s          Availability     {trend}")
}

/// The guide's flow: sync, report, push good, report, push bad, report, on `store`
/// (extra flags naming it; none: the file of `FAULTLINE_STORE`).
fn guide_flow(dir: &TempDir, store: &[&str]) {
    dir.write("reliably.yaml", GUIDE_YAML);
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(store.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let a = with(args);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        ok(dir, &a)
    };
    // `slo sync` reads reliably.yaml in the current directory, as the guide's does.
    let synced = run(&["slo", "sync"]);
    assert!(
        synced.stdout.starts_with("created objective "),
        "{}",
        synced.stdout
    );
    assert!(synced.stdout.contains(&format!("name={NAME}")));
    assert!(synced.stdout.ends_with("1 objective(s) synced\n"));
    // Again: the same labels, so the same objective, updated.
    let again = run(&["slo", "sync", "-f", "reliably.yaml"]);
    assert!(
        again.stdout.starts_with("updated objective "),
        "{}",
        again.stdout
    );

    let empty = run(&["slo", "report"]);
    let lines: Vec<&str> = empty.stdout.lines().collect();
    assert_eq!(lines[0], HEADER);
    assert_eq!(lines[1], format!("  Service #1: {SERVICE}"));
    // No result yet: no icon, no current value.
    assert_eq!(
        lines[2],
        format!(
            "     {NAME}{}99.9%  / 1h0m0s          Availability",
            " ".repeat(22)
        )
    );

    let good = push(dir, &["--good"], store);
    assert!(
        good.stdout.contains("(100.00%); 1 objective(s) judged it"),
        "{}",
        good.stdout
    );
    let report = run(&["slo", "report"]);
    assert_eq!(
        report.stdout,
        format!(
            "{HEADER}\n  Service #1: {SERVICE}\n{}\n",
            guide_line("✅", "100.00%", "✓")
        )
    );

    push(dir, &["--percent", "90"], store);
    let report = run(&["slo", "report"]);
    assert_eq!(
        report.stdout,
        format!(
            "{HEADER}\n  Service #1: {SERVICE}\n{}\n",
            guide_line("❌", "90.00%", "✓ ✕")
        )
    );
}

#[test]
fn the_guides_flow_on_the_embedded_store() {
    let dir = TempDir::new("slo-guide");
    guide_flow(&dir, &[]);
    assert!(dir.join("store.db").exists(), "the store is the file named");
    assert!(!dir.join("data").exists(), "the default store was not used");
}

/// The same flow through `--store postgres://…` (a real PostgreSQL, as the store
/// checks start it), which wins over `FAULTLINE_STORE`.
#[test]
fn the_guides_flow_on_postgresql() {
    let Some(pg) = crate::store::Postgres::start() else {
        return;
    };
    let url = pg.database(&crate::store::runtime());
    let dir = TempDir::new("slo-pg");
    guide_flow(&dir, &["--store", &url]);
    assert!(
        !dir.join("store.db").exists(),
        "--store wins over FAULTLINE_STORE"
    );
}

/// The same flow against a real `faultline serve` (its own store file, a token of
/// organisation `guide`); its organisation is walled off from others, a missing
/// token is refused (exit 2), bad input is still refused before it is sent (exit 3).
#[test]
fn the_guides_flow_against_faultline_serve() {
    let dir = TempDir::new("slo-serve");
    let server_store = dir.join("server.db");
    let token = crate::server::token(&dir, "guide", &server_store);
    let served = crate::server::Served::start(&dir, "slo", &server_store, &[]);
    let base = served.base.clone();
    let remote = [
        "--store",
        base.as_str(),
        "--token",
        token.as_str(),
        "--org",
        "guide",
    ];
    guide_flow(&dir, &remote);
    assert!(
        !dir.join("store.db").exists(),
        "nothing went to the local file"
    );

    let report = |extra: &[&str]| {
        let mut args = vec!["slo", "report", "--format", "json", "--store", &base];
        args.extend_from_slice(extra);
        fl(&dir, &args, None)
    };
    let before = report(&["--token", &token, "--org", "guide"]);
    assert_eq!(before.code, 0, "{}", before.all_text());
    // Another organisation's data is not this token's: 403, exit 2.
    let other = report(&["--token", &token, "--org", "other"]);
    assert_eq!(other.code, 2, "{}", other.all_text());
    // No token: 401, exit 2; the token never shows in what is printed.
    let anonymous = report(&["--org", "guide"]);
    assert_eq!(anonymous.code, 2, "{}", anonymous.all_text());
    assert!(!other.all_text().contains(&token) && !anonymous.all_text().contains(&token));
    // Bad input is refused here, before the server sees it.
    let sel = format!("category=Availability,indicator_name={INDICATOR}");
    let mut bad = vec!["indicator", "push", "--selector", &sel, "--percent", "150"];
    bad.extend_from_slice(&remote);
    let out = fl(&dir, &bad, None);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let after = report(&["--token", &token, "--org", "guide"]);
    let results = |o: &Output| -> Value {
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        v[0]["results"].clone()
    };
    assert_eq!(results(&after), results(&before));
    assert!(!served.output().contains(&token), "{}", served.output());
}

#[test]
fn the_report_as_json_has_results_newest_first_and_each_status() {
    let dir = TempDir::new("slo-json");
    dir.write("reliably.yaml", GUIDE_YAML);
    ok(&dir, &["slo", "sync"]);
    push(&dir, &["--good"], &[]);
    push(&dir, &["--good-count", "9", "--total-count", "10"], &[]);
    let out = ok(&dir, &["slo", "report", "--format", "json"]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["objective"]["labels"]["name"], NAME);
    assert_eq!(item["objective"]["window"], "1h");
    let actuals: Vec<f64> = item["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actualPercent"].as_f64().unwrap())
        .collect();
    assert_eq!(actuals, [90.0, 100.0], "newest first");
    assert_eq!(item["results"][0]["good"], 9);
    let status = &item["status"];
    assert_eq!(status["verdict"], "not_met");
    assert_eq!(status["met"], false);
    assert_eq!(status["indicators"], 2);
    assert_eq!(status["actual_percent"], 95.0);
    assert_eq!(status["target_percent"], 99.9);
    // --limit caps the results per objective.
    let one = ok(&dir, &["slo", "report", "--format", "json", "--limit", "1"]);
    let v: Value = serde_json::from_str(&one.stdout).unwrap();
    assert_eq!(v[0]["results"].as_array().unwrap().len(), 1);
    // A selector that selects nothing: an empty list, not an error.
    let none = ok(
        &dir,
        &[
            "slo",
            "report",
            "--format",
            "json",
            "--selector",
            "service=other",
        ],
    );
    assert_eq!(none.stdout.trim(), "[]");
}

/// What the store holds, as `report --format json` shows it, without the status's
/// window (which moves with the clock).
fn snapshot(dir: &TempDir) -> Value {
    let out = ok(
        dir,
        &["slo", "report", "--format", "json", "--limit", "100"],
    );
    let mut v: Value = serde_json::from_str(&out.stdout).unwrap();
    for item in v.as_array_mut().unwrap() {
        item.as_object_mut().unwrap().remove("status");
    }
    v
}

#[test]
fn every_bad_input_exits_3_names_where_and_leaves_the_store_unchanged() {
    let dir = TempDir::new("slo-bad");
    dir.write("reliably.yaml", GUIDE_YAML);
    ok(&dir, &["slo", "sync"]);
    push(&dir, &["--good"], &[]);
    let before = snapshot(&dir);
    assert_eq!(before[0]["results"].as_array().unwrap().len(), 1);

    dir.write("malformed.yaml", "kind: Objective\nmetadata: [\n");
    dir.write(
        "unknown-kind.yaml",
        &format!(
            "{}---\nkind: Indicator\n",
            GUIDE_YAML.replace(NAME, "another")
        ),
    );
    dir.write(
        "bad-labels.yaml",
        &GUIDE_YAML.replace(
            "    name: 99.9% of our requests are in the 2xx class\n",
            "    name: [not, a, string]\n",
        ),
    );
    dir.write(
        "bad-percent.json",
        r#"{"apiVersion": "reliably.com/v1", "kind": "Objective",
            "metadata": {"labels": {"name": "x"}},
            "spec": {"indicatorSelector": {"a": "b"}, "objectivePercent": 120, "window": "1h"}}"#,
    );
    let sel = format!("category=Availability,indicator_name={INDICATOR}");
    // (arguments, what stderr must name)
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["slo", "sync", "-f", "malformed.yaml"],
            vec!["malformed.yaml: document 1: $: is not valid YAML"],
        ),
        (
            vec!["slo", "sync", "-f", "unknown-kind.yaml"],
            vec!["unknown-kind.yaml: document 2: kind"],
        ),
        (
            vec!["slo", "sync", "-f", "bad-labels.yaml"],
            vec!["bad-labels.yaml: document 1: metadata.labels.name: must be a string"],
        ),
        // A good file and a bad one: the good one is not stored either.
        (
            vec![
                "slo",
                "sync",
                "-f",
                "reliably.yaml",
                "-f",
                "bad-percent.json",
            ],
            vec!["bad-percent.json: document 1: spec.objectivePercent: must be between 0 and 100"],
        ),
        (
            vec!["slo", "sync", "-f", "missing.yaml"],
            vec!["missing.yaml: cannot read it"],
        ),
        (
            vec!["indicator", "push", "--selector", &sel, "--percent", "150"],
            vec!["--percent (spec.percent): must be between 0 and 100, got 150"],
        ),
        (
            vec!["indicator", "push", "--selector", &sel, "--percent", "-1"],
            vec!["--percent (spec.percent): must be between 0 and 100"],
        ),
        (
            vec![
                "indicator",
                "push",
                "--selector",
                &sel,
                "--good",
                "--from",
                "2026-01-02T00:00:00Z",
                "--to",
                "2026-01-01T00:00:00Z",
            ],
            vec!["--from (spec.from): 2026-01-02 00:00:00 UTC is after spec.to"],
        ),
        (
            vec![
                "indicator",
                "push",
                "--selector",
                &sel,
                "--bad",
                "--to",
                "yesterday",
            ],
            vec!["--to (spec.to): \"yesterday\" is not an RFC 3339 time"],
        ),
        (
            vec![
                "indicator",
                "push",
                "--selector",
                &sel,
                "--good-count",
                "11",
                "--total-count",
                "10",
            ],
            vec!["--good-count (spec.good): 11 is more than spec.total (10)"],
        ),
        (
            vec!["indicator", "push", "--selector", &sel, "--good-count", "1"],
            vec!["--total-count"],
        ),
        (
            vec!["indicator", "push", "--selector", &sel, "--good", "--bad"],
            vec!["cannot be used with"],
        ),
        (
            vec!["indicator", "push", "--selector", "=x", "--good"],
            vec!["--selector: selector \"=x\": the key is empty"],
        ),
        (
            vec!["indicator", "push", "--selector", "", "--good"],
            vec!["--selector (metadata.labels): must hold at least one label"],
        ),
        (
            vec!["slo", "report", "--selector", "service"],
            vec!["--selector: selector \"service\": expected key=value"],
        ),
        (
            vec!["slo", "report", "--limit", "0"],
            vec!["--limit: must be at least 1"],
        ),
        (
            vec!["slo", "delete", "--selector", "service"],
            vec!["expected key=value"],
        ),
        (
            vec!["slo", "delete", "--selector", ""],
            vec!["refusing to delete every objective"],
        ),
        (vec!["slo", "delete"], vec!["--selector"]),
        (
            vec!["slo", "report", "--org", "a/b"],
            vec!["--org: organisation \"a/b\""],
        ),
        (
            vec!["slo", "report", "--store", "ftp://x"],
            vec!["unknown scheme"],
        ),
    ];
    for (args, needles) in cases {
        let out = fl(&dir, &args, None);
        assert_eq!(out.code, 3, "faultline {args:?}:\n{}", out.all_text());
        for n in needles {
            assert!(
                out.stderr.contains(n),
                "faultline {args:?}: stderr lacks {n:?}:\n{}",
                out.stderr
            );
        }
        assert_eq!(
            snapshot(&dir),
            before,
            "faultline {args:?} changed the store"
        );
    }
    // Standard input too: a bad document there is named `<stdin>`.
    let out = fl(&dir, &["slo", "sync", "-f", "-"], Some("kind: Objective\n"));
    assert_eq!(out.code, 3, "{}", out.all_text());
    assert!(
        out.stderr
            .contains("<stdin>: document 1: metadata.labels: is missing"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("problem(s); the store was not touched"));
    assert_eq!(snapshot(&dir), before);
}

/// OpenSLO v1, after the Reliably objective, in one stream on stdin.
const OPENSLO: &str = "apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-availability
spec:
  service: api
  budgetingMethod: Occurrences
  indicator:
    metadata:
      name: api-good-requests
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_requests_total{code!~\"5..\"}[1m]))
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_requests_total[1m]))
  timeWindow:
    - duration: 28d
      isRolling: true
  objectives:
    - target: 0.995
";

#[test]
fn several_documents_reliably_and_openslo_from_files_and_stdin_then_delete() {
    let dir = TempDir::new("slo-many");
    dir.write(
        "more.json",
        &serde_json::json!([
            {"kind": "objective", "metadata": {"labels": {"name": "latency", "service": "api"}},
             "spec": {"indicatorSelector": {"category": "Latency", "service": "api"},
                      "objectivePercent": 99, "window": "30m"}},
            {"kind": "Objective", "metadata": {"labels": {"name": "checkout", "service": "shop"}},
             "spec": {"indicatorSelector": {"category": "Availability", "service": "shop"},
                      "objectivePercent": 95, "window": "PT2H"}}
        ])
        .to_string(),
    );
    let stream = format!("{GUIDE_YAML}---\n{OPENSLO}");
    let out = fl(
        &dir,
        &["slo", "sync", "-f", "-", "-f", "more.json"],
        Some(&stream),
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(
        out.stdout.matches("created objective").count(),
        4,
        "{}",
        out.stdout
    );
    assert!(out.stdout.ends_with("4 objective(s) synced\n"));

    // The OpenSLO SLO selects indicators by service and indicator name.
    push(&dir, &["--percent", "99.9"], &[]);
    ok(
        &dir,
        &[
            "indicator",
            "push",
            "--selector",
            "service=api",
            "--selector",
            "indicator_name=api-good-requests",
            "--percent",
            "99.1",
        ],
    );
    let report = ok(&dir, &["slo", "report"]);
    let want = [
        HEADER.to_string(),
        "  Service #1: api".into(),
        format!(
            "  ❌ api-availability{} 99.10%      99.5%  / 672h0m0s{}✕",
            " ".repeat(35),
            " ".repeat(25)
        ),
        format!(
            "     latency{}99%  / 30m0s           Latency",
            " ".repeat(59)
        ),
        format!("  Service #2: {SERVICE}"),
        guide_line("✅", "99.90%", "✓"),
        "  Service #3: shop".into(),
        format!(
            "     checkout{}95%  / 2h0m0s          Availability",
            " ".repeat(58)
        ),
    ];
    assert_eq!(
        report.stdout,
        want.map(|l| l + "\n").concat(),
        "{}",
        report.stdout
    );
    // A selector narrows the report.
    let shop = ok(&dir, &["slo", "report", "--selector", "service=shop"]);
    assert_eq!(shop.stdout.lines().count(), 3, "{}", shop.stdout);
    assert!(shop.stdout.contains("Service #1: shop"));

    let deleted = ok(&dir, &["slo", "delete", "--selector", "service=api"]);
    assert_eq!(deleted.stdout, "deleted 2 objective(s)\n");
    let after = snapshot(&dir);
    let names: Vec<&str> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["objective"]["labels"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"checkout") && names.contains(&NAME),
        "{names:?}"
    );
    let again = ok(&dir, &["slo", "delete", "--selector", "service=api"]);
    assert_eq!(again.stdout, "deleted 0 objective(s)\n");
}

#[test]
fn watch_prints_frames_until_ctrl_c_then_exits_0() {
    let dir = TempDir::new("slo-watch");
    dir.write("reliably.yaml", GUIDE_YAML);
    ok(&dir, &["slo", "sync"]);
    push(&dir, &["--good"], &[]);
    let child = Command::new(bin())
        .args(["slo", "report", "-w"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("FAULTLINE_STORE", dir.join("store.db"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("watch.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("watch-err.txt")).unwrap())
        .spawn()
        .unwrap();
    // Killed on drop if an assertion fails first.
    let mut guard = crate::common::ChildGuard(Some(child));
    let banner = "Refreshing SLO report every 3 seconds. Press CTRL+C to quit.";
    let read = || std::fs::read_to_string(dir.join("watch.txt")).unwrap_or_default();
    wait_until(
        Duration::from_secs(30),
        "two frames of slo report -w",
        || read().matches(banner).count() >= 2,
    );
    let child = guard.0.as_mut().unwrap();
    send_signal(child.id(), "INT");
    let code = wait_with_limit(child, Duration::from_secs(10));
    let text = read();
    assert_eq!(
        code,
        0,
        "{text}\n{}",
        std::fs::read_to_string(dir.join("watch-err.txt")).unwrap_or_default()
    );
    // Not a terminal: no screen clearing, no colour; each frame is the whole table.
    assert!(!text.contains('\x1b'), "{text:?}");
    let frame = format!(
        "{banner}\n{HEADER}\n  Service #1: {SERVICE}\n{}\n",
        guide_line("✅", "100.00%", "✓")
    );
    assert!(text.starts_with(&frame), "{text}");
    assert!(text.matches(&frame).count() >= 2, "{text}");
}

#[test]
fn a_store_that_cannot_be_reached_or_written_exits_2() {
    let dir = TempDir::new("slo-down");
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = fl(
        &dir,
        &[
            "indicator",
            "push",
            "--store",
            &url,
            "--selector",
            "a=b",
            "--good",
        ],
        None,
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(out.stderr.contains("cannot be reached"), "{}", out.stderr);
    let out = fl(&dir, &["slo", "report", "--store", &url], None);
    assert_eq!(out.code, 2, "{}", out.all_text());
    // A store file whose folder cannot be made (a file is in the way).
    dir.write("blocker", "not a folder");
    let out = fl(
        &dir,
        &[
            "indicator",
            "push",
            "--store",
            "blocker/store.db",
            "--selector",
            "a=b",
            "--good",
        ],
        None,
    );
    assert_eq!(out.code, 2, "{}", out.all_text());
    assert!(out.stderr.contains("blocker"), "{}", out.stderr);
}
