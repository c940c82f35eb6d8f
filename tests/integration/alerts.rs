//! `faultline.alerts`: the alerts that fired during a run, against a real
//! Alertmanager (Debian's prometheus-alertmanager, fed by the test through
//! `POST /api/v2/alerts`) and a real Prometheus whose rule fires from a metric the
//! test serves. Each test starts its own server on a free 127.0.0.1 port with its
//! storage in a temporary folder, and kills it at the end (and, through
//! `PR_SET_PDEATHSIG`, if the test dies first). Without the servers the tests are
//! skipped with a message, unless `FAULTLINE_REQUIRE_SERVERS=1` (or `CI`).
//!
//! Every wait is on a condition (a file the run writes, what the server answers); the
//! experiments' method waits for a `go` file the test creates when it is done.

use crate::common::*;
use crate::http_server::{Response, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server process killed on drop, with its temporary folder.
pub(crate) struct Daemon {
    pub(crate) url: String,
    _child: ChildGuard,
    _dir: TempDir,
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// `name` is installed; otherwise skipped (an error when servers are required).
fn installed(name: &str, package: &str) -> bool {
    if on_path(name) {
        return true;
    }
    assert!(
        !crate::prom::required(),
        "{name} is not installed (apt-get install {package})"
    );
    eprintln!("skipped: {name} is not installed (apt-get install {package})");
    false
}

/// Start `program args` (dying with this thread's process), wait until `ready` holds.
fn daemon(program: &str, args: &[String], dir: TempDir, url: String) -> Daemon {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
    crate::prom::die_with_parent(&mut cmd);
    let child = ChildGuard(Some(cmd.spawn().unwrap()));
    let d = Daemon {
        url,
        _child: child,
        _dir: dir,
    };
    wait_until(
        Duration::from_secs(60),
        &format!("{program} to be ready"),
        || http_get(&d.url, "/-/ready").is_some(),
    );
    d
}

fn http_client() -> reqwest::blocking::Client {
    faultline::tls::init();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The body of a 200 answer, `None` otherwise.
fn http_get(base: &str, path_and_query: &str) -> Option<String> {
    let resp = http_client()
        .get(format!("{base}{path_and_query}"))
        .send()
        .ok()?;
    (resp.status() == 200).then(|| resp.text().ok()).flatten()
}

/// A real Alertmanager with a null receiver, clustering off.
pub(crate) fn alertmanager() -> Option<Daemon> {
    if !installed("prometheus-alertmanager", "prometheus-alertmanager") {
        return None;
    }
    let dir = TempDir::new("alertmanager");
    let config = dir.write(
        "alertmanager.yml",
        "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
    );
    let port = free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    Some(daemon(
        "prometheus-alertmanager",
        &args,
        dir,
        format!("http://127.0.0.1:{port}"),
    ))
}

/// Post alerts to the Alertmanager, as Prometheus does.
pub(crate) fn post_alerts(am: &Daemon, alerts: Value) {
    let resp = http_client()
        .post(format!("{}/api/v2/alerts", am.url))
        .json(&alerts)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap_or_default());
}

/// The alerts the Alertmanager lists as active with this `alertname`.
pub(crate) fn active(am: &Daemon, name: &str) -> Vec<Value> {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("active", "true")
        .append_pair("filter", &format!("alertname=\"{name}\""))
        .finish();
    http_get(&am.url, &format!("/api/v2/alerts?{q}"))
        .and_then(|t| serde_json::from_str::<Vec<Value>>(&t).ok())
        .unwrap_or_default()
}

pub(crate) fn in_secs(s: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(s))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An experiment whose method says it started (`started`) and waits for `go`.
fn experiment(alerts_arguments: Value, secrets: Option<Value>) -> Value {
    let mut control = json!({"name": "alerts", "provider": {"type": "python",
        "module": "faultline.alerts", "arguments": alerts_arguments}});
    let mut e = json!({
        "title": "alerts during a run", "description": "d",
        "method": [sh("action", "wait-for-go",
            "touch started; while [ ! -e go ]; do sleep 0.05; done")],
    });
    if let Some(s) = secrets {
        control["provider"]["secrets"] = json!(["alerting"]);
        e["secrets"] = json!({"alerting": s});
    }
    e["controls"] = json!([control]);
    e
}

/// `faultline run` started in `dir` with a clean telemetry environment (spans go
/// to `journal.trace.json`).
fn start(dir: &TempDir, exp: &Value, extra: &[&str]) -> ChildGuard {
    let path = dir.experiment(exp);
    let mut cmd = Command::new(bin());
    cmd.args(["run", path.to_str().unwrap(), "--journal-path"])
        .arg(dir.join("journal.json"))
        .args(extra)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("FAULTLINE_KILL_SWITCH", dir.join("kill-switch"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr.txt")).unwrap());
    for k in TELEMETRY_VARS {
        cmd.env_remove(k);
    }
    ChildGuard(Some(cmd.spawn().unwrap()))
}

/// Let the run's method end, and wait for the run.
fn finish(dir: &TempDir, mut run: ChildGuard) -> Output {
    std::fs::write(dir.join("go"), "").unwrap();
    let child: &mut Child = run.0.as_mut().unwrap();
    let code = wait_with_limit(child, Duration::from_secs(60));
    collect(dir, code, &dir.join("journal.json"))
}

fn wait_started(dir: &TempDir) {
    wait_until(Duration::from_secs(30), "the run's method to start", || {
        dir.join("started").exists()
    });
}

fn recorded(out: &Output) -> Vec<Value> {
    let ext = &out.journal()["extensions"][0];
    ext["alerts"]
        .as_array()
        .unwrap_or_else(|| panic!("no alerts in the extension: {ext:#}\n{}", out.all_text()))
        .clone()
}

fn named<'a>(alerts: &'a [Value], name: &str) -> &'a Value {
    alerts
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("{name} not recorded: {alerts:#?}"))
}

/// The experiment span of the trace file beside the journal.
fn experiment_span(path: &Path) -> crate::otlp::SpanView {
    crate::tracing::file_spans(path)
        .into_iter()
        .find(|s| s.name == "chaos.experiment")
        .expect("an experiment span")
}

#[test]
fn alerts_posted_during_a_run_are_recorded_in_the_journal_and_on_the_span() {
    let Some(am) = alertmanager() else {
        return;
    };
    let token = "am-t0ken-s3cret";
    let dir = TempDir::new("alerts-am");
    let exp = experiment(
        json!({"alertmanager_url": am.url, "interval": 0.2,
            "matchers": ["severity=~\"page|critical\""], "match_target_labels": true}),
        Some(json!({"alertmanager_token": token})),
    );
    // A firing alert before the run that is not ours.
    post_alerts(
        &am,
        json!([{"labels": {"alertname": "Unrelated", "service": "search", "severity": "page"}}]),
    );
    let run = start(&dir, &exp, &["--label", "service=checkout"]);
    wait_started(&dir);
    post_alerts(
        &am,
        json!([
            // Fires and resolves during the run: only the polls see it.
            {"labels": {"alertname": "CheckoutLatency", "service": "checkout", "severity": "page"},
             "annotations": {"summary": "p99 above 2s"}, "endsAt": in_secs(2)},
            // Still firing at the end.
            {"labels": {"alertname": "CheckoutDown", "service": "checkout", "severity": "critical"},
             "annotations": {"summary": "no checkout", "description": "not kept"}},
            // Not matched: another service (the target label), or another severity.
            {"labels": {"alertname": "CartDown", "service": "cart", "severity": "page"}},
            {"labels": {"alertname": "CheckoutInfo", "service": "checkout", "severity": "info"}},
        ]),
    );
    wait_until(
        Duration::from_secs(20),
        "CheckoutLatency to resolve",
        || active(&am, "CheckoutLatency").is_empty(),
    );
    let ended = Instant::now();
    let out = finish(&dir, run);
    eprintln!("the run ended {:?} after the method", ended.elapsed());
    assert_eq!(out.code, 0, "{}", out.all_text());
    let alerts = recorded(&out);
    let mut names: Vec<&str> = alerts.iter().map(|a| a["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["CheckoutDown", "CheckoutLatency"], "{alerts:#?}");

    let latency = named(&alerts, "CheckoutLatency");
    assert_eq!(latency["source"], "alertmanager");
    assert_eq!(latency["state"], "resolved", "{latency:#}");
    assert!(latency["ends_at"].is_string(), "{latency:#}");
    assert!(latency["fingerprint"]
        .as_str()
        .is_some_and(|f| !f.is_empty()));
    assert_eq!(latency["annotations"]["summary"], "p99 above 2s");
    assert_eq!(
        latency["labels"],
        json!({"alertname": "CheckoutLatency", "service": "checkout", "severity": "page"})
    );
    let down = named(&alerts, "CheckoutDown");
    assert_eq!(down["state"], "active", "{down:#}");
    assert!(down["ends_at"].is_null(), "still firing: {down:#}");
    assert!(down["starts_at"].is_string());
    assert_eq!(down["annotations"], json!({"summary": "no checkout"}));
    for a in &alerts {
        let (first, last) = (
            a["first_seen"].as_str().unwrap(),
            a["last_seen"].as_str().unwrap(),
        );
        let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
        assert!(t(first) <= t(last), "{a:#}");
    }
    let text = out.all_text();
    assert!(text.contains("2 alert(s) fired during the run"), "{text}");
    assert!(!text.contains("alerts during the run:"), "{text}");

    // The experiment span: one event per alert, and the count.
    let trace = dir.join("journal.trace.json");
    let span = experiment_span(&trace);
    assert_eq!(span.attr_i64("chaos.alerts.count"), Some(2), "{span:#?}");
    let events: Vec<_> = span
        .events
        .iter()
        .filter(|e| e.name == "chaos.alert")
        .collect();
    assert_eq!(events.len(), 2, "{span:#?}");
    let ev = events
        .iter()
        .find(|e| e.attributes["chaos.alert.name"] == "CheckoutDown")
        .expect("a CheckoutDown event");
    assert_eq!(ev.attributes["chaos.alert.source"], "alertmanager");
    let labels: Value =
        serde_json::from_str(ev.attributes["chaos.alert.labels"].as_str().unwrap()).unwrap();
    assert_eq!(labels["severity"], "critical");
    assert!(ev.attributes["chaos.alert.starts_at"].is_string());

    // The bearer token went nowhere faultline writes.
    let journal = std::fs::read_to_string(dir.join("journal.json")).unwrap();
    let spans = std::fs::read_to_string(&trace).unwrap();
    for (what, t) in [("journal", &journal), ("trace", &spans), ("console", &text)] {
        assert!(!t.contains(token), "the token is in the {what}");
    }
}

#[test]
fn unreachable_sources_are_a_warning_at_the_end_not_a_failed_run() {
    let dir = TempDir::new("alerts-dead");
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let exp = experiment(
        json!({"alertmanager_url": dead, "prometheus_url": dead, "interval": 0.2}),
        Some(json!({"alertmanager_token": "t0k3n-dead", "prometheus_token": "t0k3n-dead"})),
    );
    let run = start(&dir, &exp, &[]);
    wait_started(&dir);
    let ended = Instant::now();
    let out = finish(&dir, run);
    let took = ended.elapsed();
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(out.status(), "completed");
    assert_eq!(recorded(&out), Vec::<Value>::new());
    let text = out.all_text();
    assert!(
        text.contains("alerts during the run: Alertmanager: cannot reach"),
        "{text}"
    );
    assert!(text.contains("Prometheus ALERTS: cannot reach"), "{text}");
    assert!(!text.contains("t0k3n-dead"), "{text}");
    // The end waits for the sources at most REQUEST_LIMIT (1.5 s); the rest is the
    // run's own ending (telemetry, journal) in a debug build on a busy machine.
    assert!(
        took < Duration::from_secs(8),
        "the run ended {took:?} after go"
    );
}

#[test]
fn a_bad_declaration_is_refused_before_the_run() {
    let dir = TempDir::new("alerts-bad");
    let exp = experiment(
        json!({"alertmanager_url": "ftp://x", "matchers": ["service"], "interval": 0}),
        None,
    );
    let out = run_experiment(&dir, &exp, &[]);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let text = out.all_text();
    for says in ["alertmanager_url", "matchers[0]", "interval"] {
        assert!(text.contains(says), "{says}: {text}");
    }
    assert!(!dir.join("started").exists());
}

/// A real Prometheus scraping `target` every second, evaluating `rules` every second.
fn prometheus_with_rules(target: &Server, rules: &str) -> Option<Daemon> {
    if !installed("prometheus", "prometheus") {
        return None;
    }
    let dir = TempDir::new("alerts-prometheus");
    let rules = dir.write("rules.yml", rules);
    let config = dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: alerts-test\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            rules.display(),
            target.port
        ),
    );
    let port = free_port();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    Some(daemon(
        "prometheus",
        &args,
        dir,
        format!("http://127.0.0.1:{port}"),
    ))
}

/// How many series an instant query returns (`None` on an error).
fn series(prom: &Daemon, promql: &str) -> Option<usize> {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("query", promql)
        .finish();
    let doc: Value =
        serde_json::from_str(&http_get(&prom.url, &format!("/api/v1/query?{q}"))?).ok()?;
    Some(doc.pointer("/data/result")?.as_array()?.len())
}

#[test]
fn a_prometheus_rule_that_fires_and_resolves_during_the_run_is_recorded_from_alerts() {
    let broken = Arc::new(AtomicU8::new(0));
    let value = broken.clone();
    let target = Server::start(move |_| {
        Response::text(
            200,
            &format!(
                "# TYPE faultline_alerts_test_broken gauge\nfaultline_alerts_test_broken {}\n",
                value.load(Ordering::SeqCst)
            ),
        )
        .content_type("text/plain; version=0.0.4")
    });
    let rules = "groups:\n  - name: faultline-alerts-test\n    interval: 1s\n    rules:\n      - alert: FaultlineTestBroken\n        expr: faultline_alerts_test_broken > 0\n        for: 0s\n        labels:\n          severity: page\n      - alert: FaultlineTestAlways\n        expr: vector(1)\n        labels:\n          severity: info\n";
    let Some(prom) = prometheus_with_rules(&target, rules) else {
        return;
    };
    // The target scraped, the always-firing rule evaluated: Prometheus is running both.
    wait_until(Duration::from_secs(60), "the first scrape", || {
        series(&prom, "faultline_alerts_test_broken") == Some(1)
    });
    wait_until(
        Duration::from_secs(30),
        "FaultlineTestAlways to fire",
        || {
            series(
                &prom,
                "ALERTS{alertname=\"FaultlineTestAlways\",alertstate=\"firing\"}",
            ) == Some(1)
        },
    );
    let dir = TempDir::new("alerts-prom");
    let exp = experiment(
        json!({"prometheus_url": prom.url, "matchers": "{severity=\"page\"}"}),
        None,
    );
    let run = start(&dir, &exp, &[]);
    wait_started(&dir);
    let firing = "ALERTS{alertname=\"FaultlineTestBroken\",alertstate=\"firing\"}";
    broken.store(1, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(30),
        "FaultlineTestBroken to fire",
        || series(&prom, firing) == Some(1),
    );
    broken.store(0, Ordering::SeqCst);
    wait_until(
        Duration::from_secs(30),
        "FaultlineTestBroken to resolve",
        || series(&prom, firing) == Some(0),
    );
    let out = finish(&dir, run);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let alerts = recorded(&out);
    assert_eq!(alerts.len(), 1, "only the matching rule: {alerts:#?}");
    let a = named(&alerts, "FaultlineTestBroken");
    assert_eq!(a["source"], "prometheus");
    assert_eq!(a["state"], "resolved", "{a:#}");
    assert!(
        a["starts_at"].is_string() && a["ends_at"].is_string(),
        "{a:#}"
    );
    assert_eq!(a["labels"]["severity"], "page");
    assert!(a["labels"].get("alertstate").is_none() && a["labels"].get("__name__").is_none());
    assert!(a.get("fingerprint").is_none());
    let span = experiment_span(&dir.join("journal.trace.json"));
    assert_eq!(span.attr_i64("chaos.alerts.count"), Some(1));
    let ev = span.event("chaos.alert").expect("a chaos.alert event");
    assert_eq!(ev.attributes["chaos.alert.source"], "prometheus");
    assert!(
        !out.all_text().contains("alerts during the run:"),
        "{}",
        out.all_text()
    );
}

#[test]
fn the_settings_file_and_a_control_file_declare_it_too() {
    let Some(am) = alertmanager() else {
        return;
    };
    post_alerts(
        &am,
        json!([{"labels": {"alertname": "Global", "service": "checkout"}}]),
    );
    let bare = json!({"title": "t", "description": "d",
        "secrets": {"alerting": {"alertmanager_token": "glob4l-t0ken"}},
        "method": [sh("action", "a", "true")]});
    let arguments = json!({"alertmanager_url": am.url, "matchers": "service=\"checkout\""});

    let dir = TempDir::new("alerts-settings");
    let settings = dir.write(
        "settings.yaml",
        &format!(
            "controls:\n  alerts:\n    provider:\n      type: python\n      module: faultline.alerts\n      secrets: [alerting]\n      arguments: {arguments}\n"
        ),
    );
    let out = run_experiment(&dir, &bare, &["--settings", settings.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    assert_eq!(recorded(&out)[0]["name"], "Global", "{}", out.all_text());

    let dir = TempDir::new("alerts-control-file");
    let file = dir.write(
        "controls.json",
        &json!([{"name": "alerts", "provider": {"type": "python",
            "module": "faultline.alerts", "arguments": arguments}}])
        .to_string(),
    );
    let out = run_experiment(&dir, &bare, &["--control-file", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let alerts = recorded(&out);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["state"], "active");
    assert!(!out.all_text().contains("glob4l-t0ken"));
}

/// `faultline::alerts::firing`, what `faultline correlate --alertmanager URL` calls:
/// the alerts firing now that match, from a real Alertmanager.
#[test]
fn firing_lists_the_alerts_firing_now_that_match() {
    let Some(am) = alertmanager() else {
        return;
    };
    post_alerts(
        &am,
        json!([
            {"labels": {"alertname": "Now", "service": "checkout", "severity": "page"},
             "annotations": {"summary": "now"}},
            {"labels": {"alertname": "Elsewhere", "service": "cart", "severity": "page"}},
            {"labels": {"alertname": "Over", "service": "checkout"}, "endsAt": in_secs(-60),
             "startsAt": in_secs(-120)},
        ]),
    );
    let matchers = faultline::alerts::parse_matchers(r#"service="checkout""#).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let found = rt
        .block_on(faultline::alerts::firing(&am.url, &matchers))
        .unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    let a = &found[0];
    assert_eq!(a.name, "Now");
    assert_eq!(a.source, faultline::alerts::Source::Alertmanager);
    assert_eq!(a.state, "active");
    assert_eq!(a.annotations["summary"], "now");
    assert!(a.fingerprint.is_some() && a.starts_at.is_some());
    // Nothing matches: an empty list, not an error.
    let none = faultline::alerts::Matcher::parse(r#"service=~"x|y""#).unwrap();
    let all = rt
        .block_on(faultline::alerts::firing(&am.url, &[none]))
        .unwrap();
    assert!(all.is_empty(), "{all:#?}");
    // A dead Alertmanager is an error naming it.
    let dead = format!("http://127.0.0.1:{}", closed_port());
    let e = rt
        .block_on(faultline::alerts::firing(&dead, &matchers))
        .unwrap_err();
    assert!(e.to_string().contains("cannot reach"), "{e}");
}

/// The run history keeps the alerts a run saw, and `correlate --alertmanager` names
/// for each alert firing now the runs that overlapped the window before it started
/// and share its labels: the on-call engineer's question, against a real Alertmanager.
#[test]
fn correlate_names_the_runs_behind_each_firing_alert_and_the_record_keeps_the_alerts_seen() {
    let Some(am) = alertmanager() else {
        return;
    };
    let dir = TempDir::new("alerts-correlate");
    // Firing before the run: seen by it, but not caused by it.
    post_alerts(
        &am,
        json!([{"labels": {"alertname": "CheckoutErrors", "service": "checkout", "severity": "page"}}]),
    );
    let exp = json!({
        "title": "checkout loses a pod", "description": "d",
        "controls": [{"name": "alerts", "provider": {"type": "python",
            "module": "faultline.alerts", "arguments": {"alertmanager_url": am.url}}}],
        "method": [sh("action", "work", "true")],
    });
    let out = run_experiment(&dir, &exp, &["--label", "service=checkout"]);
    assert_eq!(out.code, 0, "{}", out.all_text());
    let run_id = out.journal()["extensions"][0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = faultline(&dir, &["runs", "show", &run_id, "--format", "json"], &[]);
    assert_eq!(list.code, 0, "{}", list.all_text());
    let record: Value = serde_json::from_str(&list.stdout).unwrap();
    let seen: Vec<&str> = record["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["CheckoutErrors"], "{record}");

    // After the run: one alert on the run's service, one on another.
    post_alerts(
        &am,
        json!([
            {"labels": {"alertname": "CheckoutLatency", "service": "checkout", "severity": "page"}},
            {"labels": {"alertname": "SearchSlow", "service": "search", "severity": "page"}},
        ]),
    );
    wait_until(Duration::from_secs(30), "the alerts to be active", || {
        !active(&am, "CheckoutLatency").is_empty() && !active(&am, "SearchSlow").is_empty()
    });
    let c = faultline(
        &dir,
        &[
            "correlate",
            "--alertmanager",
            &am.url,
            "--window",
            "30m",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(c.code, 0, "{}", c.all_text());
    let found: Value = serde_json::from_str(&c.stdout).unwrap();
    let runs_of = |name: &str| -> Vec<String> {
        found["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["alert"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {found}"))["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["runId"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(runs_of("CheckoutLatency"), vec![run_id.clone()]);
    assert!(runs_of("SearchSlow").is_empty(), "another service");
    assert!(
        runs_of("CheckoutErrors").is_empty(),
        "it started before the run"
    );
    // The table says it in words; matchers narrow the alerts walked.
    let c = faultline(
        &dir,
        &[
            "correlate",
            "--alertmanager",
            &am.url,
            "--matchers",
            "alertname=\"CheckoutLatency\"",
        ],
        &[],
    );
    assert_eq!(c.code, 0, "{}", c.all_text());
    assert!(c.stdout.contains("ALERT CheckoutLatency"), "{}", c.stdout);
    assert!(
        c.stdout.contains("1 chaos run(s) overlapped"),
        "{}",
        c.stdout
    );
    assert!(c.stdout.contains(&run_id), "{}", c.stdout);
    assert!(!c.stdout.contains("SearchSlow"), "{}", c.stdout);
    // Bad input: exit 3, named.
    let bad = faultline(
        &dir,
        &[
            "correlate",
            "--alertmanager",
            &am.url,
            "--matchers",
            "=page",
        ],
        &[],
    );
    assert_eq!(bad.code, 3, "{}", bad.all_text());
    assert!(bad.all_text().contains("--matchers"), "{}", bad.all_text());
    // An Alertmanager that is down: exit 2, named.
    let down = format!("http://127.0.0.1:{}", free_port());
    let d = faultline(&dir, &["correlate", "--alertmanager", &down], &[]);
    assert_eq!(d.code, 2, "{}", d.all_text());
    assert!(d.all_text().contains("127.0.0.1"), "{}", d.all_text());
}
