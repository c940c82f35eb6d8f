//! `faultline report`: reports made from real runs' journals and from the run history,
//! rendered in a real headless Chromium (Debian's `chromium`, driven through
//! `chromedriver` from `chromium-driver` over WebDriver), which must show every key
//! element; the HTML must make no request (a trace link points at a test server that
//! must see nothing). The screenshots in `docs/` are made here:
//! `FAULTLINE_UPDATE_SCREENSHOTS=1 cargo test --test integration report::` rewrites
//! them. Without Chromium (or Prometheus and Alertmanager for the single-run report)
//! the tests are skipped with a message, unless `FAULTLINE_REQUIRE_SERVERS=1`.

use crate::common::*;
use crate::http_server::{Response, Server};
use crate::{alerts, prom, slo_eval};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// The WebDriver element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Headless Chromium through chromedriver; the session is closed and the driver
/// killed on drop.
struct Browser {
    base: String,
    session: String,
    http: reqwest::blocking::Client,
    _driver: ChildGuard,
    _dir: TempDir,
}

/// A browser, or `None` (skipped) when Chromium or its driver is not installed.
fn browser() -> Option<Browser> {
    let mut found = Vec::new();
    for (bin, package) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ] {
        match on_path(bin) {
            Some(p) => found.push(p),
            None => {
                assert!(
                    !prom::required(),
                    "{bin} is not installed (apt-get install {package})"
                );
                eprintln!("skipped: {bin} is not installed (apt-get install {package})");
                return None;
            }
        }
    }
    faultline::tls::init();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let dir = TempDir::new("chromedriver");
    let port = free_port();
    let mut cmd = Command::new(&found[1]);
    cmd.arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("driver.log")).unwrap())
        .stderr(Stdio::null());
    prom::die_with_parent(&mut cmd);
    let driver = ChildGuard(Some(cmd.spawn().unwrap()));
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(60), "chromedriver to be ready", || {
        http.get(format!("{base}/status"))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|v| v["value"]["ready"] == true)
    });
    let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome",
        "goog:chromeOptions": {"binary": found[0], "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--window-size=1280,1000",
            format!("--user-data-dir={}", dir.join("profile").display())]}}}});
    let v: Value = http
        .post(format!("{base}/session"))
        .json(&caps)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let session = v["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
        .to_string();
    Some(Browser {
        base,
        session,
        http,
        _driver: driver,
        _dir: dir,
    })
}

impl Browser {
    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let v: Value = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["value"].clone()
    }

    fn get(&self, path: &str) -> Value {
        let v: Value = self
            .http
            .get(self.url(path))
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["value"].clone()
    }

    fn open(&self, file: &Path) {
        let abs = std::path::absolute(file).unwrap();
        self.post("/url", json!({"url": format!("file://{}", abs.display())}));
    }

    /// The elements a CSS selector finds.
    fn all(&self, css: &str) -> Vec<String> {
        let found = self.post("/elements", json!({"using": "css selector", "value": css}));
        found
            .as_array()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .iter()
            .map(|e| {
                e[ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("{css}: {e}"))
                    .to_string()
            })
            .collect()
    }

    fn one(&self, css: &str) -> String {
        let all = self.all(css);
        assert!(!all.is_empty(), "{css}: not in the page");
        all[0].clone()
    }

    /// WebDriver's "displayed" (CSS display, visibility, opacity, size) and a size on
    /// the page: the element is there for a reader.
    fn assert_visible(&self, css: &str) {
        let el = self.one(css);
        assert_eq!(
            self.get(&format!("/element/{el}/displayed")),
            true,
            "{css} is not displayed"
        );
        let r = self.get(&format!("/element/{el}/rect"));
        assert!(
            r["width"].as_f64().unwrap() > 10.0 && r["height"].as_f64().unwrap() > 5.0,
            "{css} has no size: {r}"
        );
    }

    /// In the page but not shown (in a folded `<details>`).
    fn assert_hidden(&self, css: &str) {
        let el = self.one(css);
        assert_eq!(
            self.get(&format!("/element/{el}/displayed")),
            false,
            "{css} is displayed"
        );
    }

    fn text(&self, css: &str) -> String {
        let el = self.one(css);
        self.get(&format!("/element/{el}/text"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn attribute(&self, css: &str, name: &str) -> String {
        let el = self.one(css);
        self.get(&format!("/element/{el}/attribute/{name}"))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A screenshot of the whole page, through the DevTools protocol (WebDriver's
    /// own covers the window only).
    fn screenshot(&self, to: &Path) {
        let cdp = |cmd: &str, params: Value| {
            self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
        };
        let size = cdp("Page.getLayoutMetrics", json!({}))["cssContentSize"].clone();
        let shot = cdp(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}}),
        );
        let data = shot["data"]
            .as_str()
            .unwrap_or_else(|| panic!("no screenshot: {shot}"));
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        std::fs::write(to, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send();
    }
}

/// Where a screenshot goes: `docs/` when asked to update them, else the test's folder.
fn screenshot_path(dir: &TempDir, name: &str) -> PathBuf {
    if std::env::var("FAULTLINE_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name)
    } else {
        dir.join(name)
    }
}

/// What the HTML itself must hold: no script, nothing fetched, a policy that forbids
/// any request.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "<script", " src=", "<link", "@import", "url(", "<iframe", "<img",
    ] {
        assert!(!lower.contains(bad), "the report holds {bad:?}");
    }
    assert!(
        html.contains("Content-Security-Policy\" content=\"default-src 'none'"),
        "no policy forbidding requests"
    );
}

/// A run of an experiment that breaks an SLO judged from a real Prometheus, while a
/// real Alertmanager sees an alert fire, with a rollback that fails; reported as
/// HTML and Markdown, the HTML checked in Chromium.
#[test]
fn a_report_on_one_run_shows_every_section_in_chromium() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let Some(am) = alerts::alertmanager() else {
        return;
    };
    let Some(browser) = browser() else {
        return;
    };
    let m = Arc::new(prom::Metrics::new("report"));
    let traffic = slo_eval::Traffic::start(m.clone(), 20, 0);
    slo_eval::wait_traffic(p, &m);
    let dir = TempDir::new("report-one");
    let file = slo_eval::openslo(&dir, &m, 0.99);
    let requests = format!("sum(http_requests_total{{{}}})", m.selector());
    let mut slo = slo_eval::slo_probe(&p.url, &file, json!({}));
    slo["name"] = json!("checkout-availability");
    let exp = json!({
        "title": "Checkout survives losing a replica",
        "description": "One replica is stopped; checkout must keep its availability SLO.",
        "tags": ["checkout", "service:checkout"],
        "contributions": {"availability": "high", "latency": "medium"},
        "steady-state-hypothesis": {"title": "checkout serves", "probes": [
            {"type": "probe", "name": "requests-flowing",
             "provider": {"type": "prometheus", "base_url": p.url, "query": requests},
             "tolerance": {"type": "threshold", "op": ">", "value": 0}},
            slo,
        ]},
        "method": [
            sh("action", "stop-replica", "touch started; while [ ! -e go ]; do sleep 0.05; done"),
            sh("action", "let-it-burn", "sleep 5"),
        ],
        "rollbacks": [
            sh("action", "start-replica", "true"),
            {"type": "action", "name": "flush-cache",
             "provider": {"type": "http", "url": format!("http://{}/flush", crate::http_server::refused_addr()), "timeout": 2}},
        ],
        "controls": [{"name": "alerts", "provider": {"type": "python",
            "module": "faultline.alerts",
            "arguments": {"alertmanager_url": am.url, "interval": 0.2}}}],
    });
    let path = dir.experiment(&exp);
    let journal = dir.join("journal.json");
    let mut run = ChildGuard(Some(spawn(
        &dir,
        &[
            "run",
            path.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
            "--hypothesis-strategy",
            "after-method-only",
        ],
        &[],
    )));
    wait_until(Duration::from_secs(60), "the method to start", || {
        dir.join("started").exists()
    });
    // The fault: a third of the requests fail, and the alert fires.
    traffic.set(14, 7);
    alerts::post_alerts(
        &am,
        json!([{"labels": {"alertname": "CheckoutErrorRate", "service": "checkout", "severity": "page"},
                "annotations": {"summary": "5xx above 5% on checkout"}}]),
    );
    wait_until(Duration::from_secs(30), "the alert to be active", || {
        !alerts::active(&am, "CheckoutErrorRate").is_empty()
    });
    std::fs::write(dir.join("go"), "").unwrap();
    let code = wait_with_limit(run.0.as_mut().unwrap(), Duration::from_secs(120));
    drop(traffic);
    let out = collect(&dir, code, &journal);
    assert_no_panic(&out);
    assert_eq!(out.code, 1, "deviated: {}", out.all_text());
    // `faultline()` below removes `journal.json` before each command.
    let journal = dir.join("checkout.json");
    std::fs::rename(dir.join("journal.json"), &journal).unwrap();
    let trace_id = out.journal()["extensions"][0]["trace_id"]
        .as_str()
        .unwrap()
        .to_string();

    // A trace viewer that must never be asked anything while the report is read.
    let viewer = Server::start(|_| Response::text(200, "trace"));
    let template = format!("{}/{{trace_id}}?run={{run_id}}", viewer.url("/trace"));
    let report = dir.join("report.html");
    let made = faultline(
        &dir,
        &[
            "report",
            journal.to_str().unwrap(),
            "-o",
            report.to_str().unwrap(),
            "--trace-url",
            &template,
        ],
        &[],
    );
    assert_eq!(made.code, 0, "{}", made.all_text());
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);

    browser.open(&report);
    for css in [
        "#report-title",
        "#summary",
        "#timeline",
        "#evidence",
        "#rollbacks",
        "#slo",
        "#alerts",
        "#failures",
        "a.trace",
    ] {
        browser.assert_visible(css);
    }
    // One bar per activity: two hypothesis probes after, two actions, two rollbacks.
    assert_eq!(browser.all("#timeline rect.bar").len(), 6);
    // The SLO not met after the method, and the rollback that failed.
    assert_eq!(browser.all("#timeline rect.bar.failed").len(), 2);
    let summary = browser.text("#summary");
    assert!(summary.contains("deviated"), "{summary}");
    assert!(
        summary.contains("checkout, service:checkout"),
        "the tags: {summary}"
    );
    let evidence = browser.text("#evidence");
    assert!(evidence.contains(&requests), "the query: {evidence}");
    assert!(evidence.contains("> 0"), "expected: {evidence}");
    let slo = browser.text("#slo");
    assert!(slo.contains("api-availability"), "{slo}");
    assert!(slo.contains("not met"), "{slo}");
    assert!(slo.contains("99.000 %"), "the target: {slo}");
    let alerts_text = browser.text("#alerts");
    assert!(alerts_text.contains("CheckoutErrorRate"), "{alerts_text}");
    assert!(
        alerts_text.contains("5xx above 5% on checkout"),
        "{alerts_text}"
    );
    let rollbacks = browser.text("#rollbacks");
    assert!(
        rollbacks.contains("flush-cache") && rollbacks.contains("failed"),
        "{rollbacks}"
    );
    assert!(browser.text("#failures").contains("flush-cache"));
    let run_id = out.journal()["extensions"][0]["run_id"].as_str().unwrap();
    assert_eq!(
        browser.attribute("a.trace", "href"),
        format!("{}/{trace_id}?run={run_id}", viewer.url("/trace"))
    );
    browser.screenshot(&screenshot_path(&dir, "report-single.png"));
    assert!(
        viewer.requests().is_empty(),
        "the report made a request: {:?}",
        viewer
            .requests()
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    );

    // The same as Markdown, on standard output.
    let md = faultline(
        &dir,
        &[
            "report",
            journal.to_str().unwrap(),
            "--format",
            "markdown",
            "--trace-url",
            &template,
        ],
        &[],
    );
    assert_eq!(md.code, 0, "{}", md.all_text());
    for says in [
        "# Chaos report: Checkout survives losing a replica",
        "❌ deviated",
        "### Timeline",
        "| Probe | Where | Verdict | Expected | Actual | Query | Time |",
        "CheckoutErrorRate",
        "flush-cache",
        "api-availability",
        &format!("[`{trace_id}`]("),
    ] {
        assert!(md.stdout.contains(says), "{says:?} not in:\n{}", md.stdout);
    }
}

/// An experiment whose hypothesis checks `test -e FILE` (held when it exists), with a
/// method that may remove it, and declared contributions.
fn catalog_experiment(
    title: &str,
    remove: bool,
    contributions: Value,
    rollback_fails: bool,
) -> Value {
    let mut rollbacks = vec![sh("action", "restore-marker", "touch marker")];
    if rollback_fails {
        rollbacks.push(json!({"type": "action", "name": "notify-owner",
            "provider": {"type": "http", "timeout": 2,
                "url": format!("http://{}/notify", crate::http_server::refused_addr())}}));
    }
    json!({
        "title": title, "description": "a catalog entry",
        "tags": ["team:payments"],
        "contributions": contributions,
        "steady-state-hypothesis": {"title": "the marker is there", "probes": [
            {"type": "probe", "name": "marker-exists", "tolerance": 0,
             "provider": {"type": "process", "path": "test", "arguments": ["-e", "marker"]}}]},
        "method": [sh("action", if remove { "remove-marker" } else { "touch-marker" },
            if remove { "rm -f marker; sleep 0.2" } else { "touch marker; sleep 0.2" })],
        "rollbacks": rollbacks,
    })
}

/// Four runs of a catalog, recorded in the run history; the report on the runs the
/// history holds (`--since`), with the verdicts table and the contributions chart in
/// Chromium; a journal gone is named under "Not shown"; a directory of journals reads
/// the same runs.
#[test]
fn a_report_on_many_runs_from_the_history_in_chromium() {
    let Some(browser) = browser() else {
        return;
    };
    let dir = TempDir::new("report-many");
    std::fs::write(dir.join("marker"), "").unwrap();
    let cat = dir.join("catalog");
    std::fs::create_dir_all(&cat).unwrap();
    for (name, exp) in [
        (
            "1-payments-db-failover.json",
            catalog_experiment(
                "Payments survive a database failover",
                false,
                json!({"availability": "high", "reliability": "high"}),
                false,
            ),
        ),
        (
            "2-cache-eviction.json",
            catalog_experiment(
                "Cart tolerates a cache eviction",
                false,
                json!({"latency": "medium", "availability": "low"}),
                false,
            ),
        ),
        (
            "3-zone-outage.json",
            catalog_experiment(
                "Checkout rides out a zone outage",
                true,
                json!({"availability": "high", "security": "none"}),
                false,
            ),
        ),
        (
            "4-queue-backlog.json",
            catalog_experiment(
                "Orders drain a queue backlog",
                false,
                json!({"reliability": "medium"}),
                true,
            ),
        ),
    ] {
        std::fs::write(cat.join(name), serde_json::to_string_pretty(&exp).unwrap()).unwrap();
    }
    let ran = faultline(
        &dir,
        &["run", cat.to_str().unwrap(), "--label", "env=staging"],
        &[],
    );
    assert_eq!(ran.code, 1, "one deviated: {}", ran.all_text());
    let journals = dir.join("journals");

    let report = dir.join("many.html");
    let made = faultline(
        &dir,
        &[
            "report",
            "--since",
            "1h",
            "--label",
            "env=staging",
            "-o",
            report.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(made.code, 0, "{}", made.all_text());
    assert!(
        made.stderr.contains("report on 4 run(s)"),
        "{}",
        made.all_text()
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    browser.open(&report);
    for css in [
        "#report-title",
        "#overview",
        "#verdicts",
        "#contributions",
        "#run-1",
        "#run-4-timeline",
        "#run-4-rollbacks",
    ] {
        browser.assert_visible(css);
    }
    assert_eq!(browser.all("#verdicts tbody tr").len(), 4);
    let verdicts = browser.text("#verdicts");
    assert!(
        verdicts.contains("Checkout rides out a zone outage"),
        "{verdicts}"
    );
    assert_eq!(verdicts.matches("deviated").count(), 1, "{verdicts}");
    assert_eq!(verdicts.matches("held").count(), 3, "{verdicts}");
    // Contributions, a segment per level declared: availability high ×2 and low,
    // reliability high and medium, latency medium, security none.
    assert_eq!(browser.all("#contributions rect.level").len(), 6);
    assert_eq!(browser.all("#contributions rect.level.high").len(), 2);
    // Oldest first: the runs in the catalog's order.
    assert!(browser
        .text("#run-1")
        .contains("Payments survive a database failover"));
    browser.assert_hidden("#run-1-timeline");
    browser.assert_hidden("#run-2-summary");
    assert!(browser.text("#run-4").contains("Target"));
    assert!(browser.text("#run-4").contains("env=staging"));
    assert!(browser.text("#run-4-rollbacks").contains("notify-owner"));
    browser.screenshot(&screenshot_path(&dir, "report-many.png"));

    // A directory of journals (the OTLP files beside them are not journals): the same
    // four runs.
    let from_dir = faultline(
        &dir,
        &["report", journals.to_str().unwrap(), "--format", "markdown"],
        &[],
    );
    assert_eq!(from_dir.code, 0, "{}", from_dir.all_text());
    assert!(
        from_dir.stdout.contains("# Chaos report: 4 runs"),
        "{}",
        from_dir.stdout
    );
    assert!(
        from_dir.stdout.contains("| availability | 2 | 0 | 1 | 0 |"),
        "{}",
        from_dir.stdout
    );

    // A recorded run whose journal is gone: named, the others reported.
    let gone = journals.join("3-zone-outage.json");
    std::fs::remove_file(&gone).unwrap();
    let partial = faultline(
        &dir,
        &["report", "--since", "1h", "--format", "markdown"],
        &[],
    );
    assert_eq!(partial.code, 0, "{}", partial.all_text());
    assert!(
        partial.stdout.contains("# Chaos report: 3 runs"),
        "{}",
        partial.stdout
    );
    assert!(
        partial.stdout.contains("## Not shown"),
        "{}",
        partial.stdout
    );
    assert!(
        partial.stdout.contains("Checkout rides out a zone outage"),
        "{}",
        partial.stdout
    );
    assert!(
        partial.stderr.contains("not in the report"),
        "{}",
        partial.all_text()
    );
}

/// Bad input: one line naming what is wrong, exit 3, nothing written; a store that
/// cannot be reached or a file that cannot be written: exit 2.
#[test]
fn bad_input_is_named_and_nothing_is_written() {
    let dir = TempDir::new("report-bad");
    let out = run_experiment(
        &dir,
        &experiment(vec![], vec![sh("action", "noop", "true")], vec![]),
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    // `faultline()` removes `journal.json` before each command.
    let journal = dir.join("noop.json");
    std::fs::rename(dir.join("journal.json"), &journal).unwrap();
    let j = journal.to_str().unwrap();
    let not_journal = dir.write("other.json", "{\"a\": 1}");
    let settings = dir.write("settings.yaml", "tracing:\n  trace_url: jaeger/{trace}\n");
    let target = dir.join("out.html");
    let t = target.to_str().unwrap();
    for (args, says) in [
        (vec!["report"], "nothing to report on"),
        (
            vec!["report", "missing.json"],
            "missing.json: cannot read it",
        ),
        (
            vec!["report", not_journal.to_str().unwrap()],
            "other.json: not a run journal",
        ),
        (
            vec!["report", j, "--trace-url", "ftp://x/{trace_id}"],
            "--trace-url",
        ),
        (
            vec!["report", j, "--trace-url", "http://x/trace"],
            "no {trace_id}",
        ),
        (vec!["report", "--since", "last tuesday"], "--since"),
        (
            vec!["report", "--since", "1h", "--label", "env=none"],
            "no recorded run matches --since 1h --label env=none",
        ),
        (vec!["report", "--label", "env"], "--label"),
        (
            vec!["report", j, "--settings", settings.to_str().unwrap()],
            "$.tracing.trace_url",
        ),
    ] {
        let mut args = args;
        args.extend(["-o", t]);
        let r = faultline(&dir, &args, &[]);
        assert_eq!(r.code, 3, "{args:?}: {}", r.all_text());
        assert!(
            r.stderr.contains(says),
            "{args:?} should say {says:?}: {}",
            r.stderr
        );
        assert!(!r.all_text().contains("panicked"));
        assert!(!target.exists(), "{args:?} wrote the report");
    }
    let refused = format!("http://{}", crate::http_server::refused_addr());
    let r = faultline(
        &dir,
        &["report", "--since", "1h", "--store", &refused, "-o", t],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.all_text());
    assert!(!target.exists());
    let r = faultline(&dir, &["report", j, "-o", "no-such-dir/r.html"], &[]);
    assert_eq!(r.code, 2, "{}", r.all_text());
    assert!(
        r.stderr
            .contains("cannot write the report to no-such-dir/r.html"),
        "{}",
        r.stderr
    );
    assert_no_temporaries(dir.path());
    // And it works: the journal given twice is one run.
    let r = faultline(&dir, &["report", j, j, "-o", t], &[]);
    assert_eq!(r.code, 0, "{}", r.all_text());
    assert!(r.stderr.contains("report on 1 run(s)"), "{}", r.stderr);
    assert_self_contained(&std::fs::read_to_string(&target).unwrap());
}
