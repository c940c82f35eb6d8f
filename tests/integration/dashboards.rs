//! `dashboards/` and `docker-compose.yml`, checked without Grafana or Docker.
//!
//! The dashboards: every PromQL expression in every dashboard JSON (panel targets,
//! Prometheus annotations, templating queries) runs against a real Prometheus holding
//! faultline's metrics, produced for real: a `faultline run` with `faultline.metrics`
//! pushing to a real Pushgateway, a `faultline serve` with a recorded run and an
//! objective (its `/metrics` scraped, its indicators remote-written), and the demo
//! service under fault. An expression that fails to parse, or that returns nothing,
//! fails the test naming dashboard, panel and expression.
//!
//! The compose stack: the file validates against the Compose Specification schema
//! (vendored in `tests/fixtures/compose-spec/`), every file it mounts or builds from
//! exists and parses (Prometheus' and Alertmanager's through `promtool` and `amtool`),
//! and the `Dockerfile` builds exactly what `.ci/run` builds.

use crate::common::*;
use crate::metrics::{get, pushgateway};
use crate::server::{token, Served};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The service label of the test's run and objective.
const SERVICE: &str = "orders";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
}

/// Every dashboard JSON in `dashboards/`, by file name.
fn dashboards() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then_some(p)
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 2, "the dashboards are missing: {out:?}");
    out
}

/// Whether a datasource reference is Prometheus (an object with `type`, or a name).
fn is_prometheus(ds: Option<&Value>) -> bool {
    match ds {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.to_lowercase().contains("prometheus"),
        Some(v) => v["type"] == "prometheus",
    }
}

/// (where, expression) for every Prometheus expression of a dashboard: panel targets
/// (rows' panels too) and annotations.
fn expressions(dash: &Value) -> Vec<(String, String)> {
    fn panels(list: &[Value], out: &mut Vec<(String, String)>) {
        for p in list {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let ds = t.get("datasource").or_else(|| p.get("datasource"));
                if let (Some(expr), true) = (t["expr"].as_str(), is_prometheus(ds)) {
                    out.push((format!("panel {title:?}"), expr.to_string()));
                }
            }
            panels(p["panels"].as_array().map_or(&[], Vec::as_slice), out);
        }
    }
    let mut out = Vec::new();
    panels(
        dash["panels"].as_array().map_or(&[], Vec::as_slice),
        &mut out,
    );
    for a in dash["annotations"]["list"].as_array().into_iter().flatten() {
        if let (Some(expr), true) = (a["expr"].as_str(), is_prometheus(a.get("datasource"))) {
            out.push((format!("annotation {:?}", a["name"]), expr.to_string()));
        }
    }
    out
}

/// What a templating query asks for: `label_values(selector, label)`, or a
/// `query_result(expr)`.
fn variable_query(v: &Value) -> Option<String> {
    let q = &v["query"];
    q.as_str()
        .or_else(|| q["query"].as_str())
        .map(str::to_string)
}

/// Replace Grafana's variables in `expr`: the built-in intervals by fixed ranges, the
/// dashboard's by `values`. Anything left with a `$` is a variable the test does not
/// know, and fails.
fn substitute(expr: &str, values: &BTreeMap<String, String>) -> String {
    let mut all: Vec<(String, String)> = [
        ("__range", "1h"),
        ("__rate_interval", "1m"),
        ("__interval", "5m"),
        ("__range_s", "3600"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    all.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Longest names first, so `$__range` does not eat `$__range_s`'s prefix.
    all.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut s = expr.to_string();
    for (k, v) in &all {
        for form in [
            format!("${{{k}:regex}}"),
            format!("${{{k}:pipe}}"),
            format!("${{{k}}}"),
            format!("[[{k}]]"),
            format!("${k}"),
        ] {
            s = s.replace(&form, v);
        }
    }
    s
}

/// An instant query: `Ok(series)` or `Err(Prometheus' error)`.
fn query(port: u16, promql: &str) -> Result<Vec<Value>, String> {
    faultline::tls::init();
    let r = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .map_err(|e| e.to_string())?;
    let v: Value = r.json().map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The values of a label, among the series that match `selector` (or all).
fn label_values(port: u16, label: &str, selector: Option<&str>) -> Result<Vec<String>, String> {
    faultline::tls::init();
    let mut req = reqwest::blocking::Client::new().get(format!(
        "http://127.0.0.1:{port}/api/v1/label/{label}/values"
    ));
    if let Some(s) = selector {
        req = req.query(&[("match[]", s)]);
    }
    let v: Value = req
        .send()
        .map_err(|e| e.to_string())?
        .json()
        .map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect())
}

/// Wait (at most `LIMIT`) until `probe` gives `Ok(Some(_))`; `Err` fails at once,
/// `Ok(None)` (nothing yet) fails at the limit. `tick` runs between tries (traffic).
fn wait_for<T>(
    what: &str,
    mut tick: impl FnMut(),
    mut probe: impl FnMut() -> Result<Option<T>, String>,
) -> T {
    const LIMIT: Duration = Duration::from_secs(60);
    let start = Instant::now();
    loop {
        match probe() {
            Ok(Some(t)) => return t,
            Err(e) => panic!("{what}: Prometheus refused it: {e}"),
            Ok(None) => assert!(
                start.elapsed() < LIMIT,
                "{what}: returned nothing within {LIMIT:?}, though faultline's metrics are there"
            ),
        }
        tick();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The demo service (examples/demo-service) on a free port, spans off.
fn demo_service(dir: &TempDir) -> (ChildGuard, u16) {
    let out = dir.join("demo.out");
    let child = Command::new(crate::otlp::demo::demo_binary())
        .args(["--port", "0"])
        .env("OTEL_SDK_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child));
    let mut port = 0;
    wait_until(
        Duration::from_secs(60),
        "the demo service to listen",
        || {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(rest) = text.split("listening on ").nth(1) {
                let addr = rest.lines().next().unwrap_or_default();
                port = addr.rsplit(':').next().unwrap().trim().parse().unwrap();
                return true;
            }
            false
        },
    );
    (guard, port)
}

fn http() -> reqwest::blocking::Client {
    faultline::tls::init();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A Prometheus on `port` scraping the Pushgateway (`honor_labels`), `faultline
/// serve` and the demo service every second, with the repository's alert rules and
/// the remote-write receiver on.
fn prometheus(dir: &TempDir, port: u16, targets: [(&str, String); 3]) -> ChildGuard {
    let mut config =
        String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n");
    for rules in std::fs::read_dir(root().join("deploy/prometheus/rules")).unwrap() {
        config += &format!("  - {}\n", rules.unwrap().path().display());
    }
    config += "scrape_configs:\n";
    for (job, target) in &targets {
        let honor = if *job == "pushgateway" {
            "    honor_labels: true\n"
        } else {
            ""
        };
        config += &format!(
            "  - job_name: {job}\n{honor}    static_configs:\n      - targets: ['{target}']\n"
        );
    }
    let file = dir.write("prometheus.yml", &config);
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.err")).unwrap())
        .spawn()
        .unwrap();
    let guard = ChildGuard(Some(child));
    wait_until(Duration::from_secs(60), "prometheus to be ready", || {
        get(port, "/-/ready").is_some()
    });
    guard
}

/// A run against the demo service that turns errors on, probes the orders route,
/// waits for `go` in its folder (so the test sees it active), and resets the faults.
fn chaos_experiment(demo: u16, pushgateway: u16) -> Value {
    let base = format!("http://127.0.0.1:{demo}");
    let http = |kind: &str, name: &str, method: &str, path: &str| {
        json!({"type": kind, "name": name, "provider": {"type": "http", "method": method,
               "url": format!("{base}{path}"), "timeout": 5}})
    };
    json!({
        "title": "orders survive errors", "description": "dashboards test",
        "controls": [{"name": "metrics", "provider": {"type": "python",
            "module": "faultline.metrics", "arguments": {
                "pushgateway_url": format!("http://127.0.0.1:{pushgateway}"),
                "keep_group": true}}}],
        "steady-state-hypothesis": {"title": "healthy", "probes": [
            with(http("probe", "health", "GET", "/health"), "tolerance", json!(200))]},
        "method": [
            http("action", "inject-errors", "POST", "/fault/errors?rate=0.5"),
            http("probe", "orders-1", "GET", "/api/orders"),
            http("probe", "orders-2", "GET", "/api/orders"),
            sh("action", "wait-for-go",
               "i=0; while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done"),
        ],
        "rollbacks": [http("action", "reset", "POST", "/fault/reset")],
    })
}

#[test]
fn every_dashboard_expression_returns_data_from_faultlines_real_metrics() {
    let needed = ["prometheus", "prometheus-pushgateway"];
    if let Some(missing) = needed.iter().find(|p| !installed(p)) {
        assert!(!crate::prom::required(), "{missing} is not installed");
        eprintln!("skipped: {missing} is not installed");
        return;
    }
    let dir = TempDir::new("dashboards-promql");
    let Some((_gw, pg)) = pushgateway() else {
        return;
    };
    let (_demo, demo) = demo_service(&dir);
    let prom_port = free_port();
    let store = dir.join("store.db");
    let tok = token(&dir, "default", &store);
    let write = format!("http://127.0.0.1:{prom_port}/api/v1/write");
    let served = Served::start(&dir, "dash", &store, &["--remote-write", &write]);
    let serve_addr = served.base.trim_start_matches("http://").to_string();
    let _prom = prometheus(
        &dir,
        prom_port,
        [
            ("pushgateway", format!("127.0.0.1:{pg}")),
            ("faultline-serve", serve_addr),
            ("demo-service", format!("127.0.0.1:{demo}")),
        ],
    );
    let client = http();

    // An objective on the service and an indicator for it (remote-written on commit).
    let objective = json!({"apiVersion": "reliably.com/v1", "kind": "Objective",
        "metadata": {"labels": {"name": "orders-availability", "service": SERVICE}},
        "spec": {"indicatorSelector": {"category": "Availability", "service": SERVICE},
                 "objectivePercent": 99.0, "window": "1h"}});
    let r = client
        .put(format!(
            "{}/api/entities/default/reliably.com/v1/objective",
            served.base
        ))
        .bearer_auth(&tok)
        .body(objective.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());

    // The chaos run, recorded in serve's run history, its metrics on the Pushgateway.
    let exp = dir.experiment(&chaos_experiment(demo, pg));
    let journal = dir.join("journal.json");
    let label = format!("service={SERVICE}");
    let mut child = spawn(
        &dir,
        &[
            "run",
            exp.to_str().unwrap(),
            "--journal-path",
            journal.to_str().unwrap(),
            "--label",
            &label,
            "--store",
            &served.base,
            "--token",
            &tok,
        ],
        &[],
    );
    wait_for(
        "faultline_experiment_active == 1 during the run",
        || {},
        || {
            let q = format!("faultline_experiment_active{{service=\"{SERVICE}\"}} == 1");
            query(prom_port, &q).map(|r| (!r.is_empty()).then_some(()))
        },
    );
    std::fs::write(dir.join("go"), "").unwrap();
    let code = wait_with_limit(&mut child, Duration::from_secs(60));
    let out = collect(&dir, code, &journal);
    assert_eq!(out.code, 0, "{}", out.all_text());

    // The indicator, after the run (so the objective's window holds both).
    let now = chrono::Utc::now().to_rfc3339();
    let indicator = json!({"metadata": {"labels": {"category": "Availability", "service": SERVICE}},
                           "spec": {"from": now, "to": now, "percent": 99.5}});
    let r = client
        .put(format!(
            "{}/entities/default/reliably.com/v1/indicator",
            served.base
        ))
        .bearer_auth(&tok)
        .body(indicator.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());

    // Traffic with errors, so rates over the demo service's counters have data.
    let demo_base = format!("http://127.0.0.1:{demo}");
    client
        .post(format!("{demo_base}/fault/errors?rate=0.5"))
        .send()
        .unwrap();
    let traffic = || {
        for _ in 0..2 {
            let _ = client.get(format!("{demo_base}/api/orders")).send();
        }
    };

    let mut checked = 0;
    for (file, dash) in dashboards() {
        // The variables: query ones take a value Prometheus really has; constants and
        // custom ones their first value.
        let mut values = BTreeMap::new();
        for v in dash["templating"]["list"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap().to_string();
            let raw = variable_query(v).unwrap_or_default();
            let value = match v["type"].as_str() {
                Some("query") if is_prometheus(v.get("datasource")) => {
                    let q = substitute(&raw, &values);
                    let what = format!("{file}: variable ${name}: {q}");
                    let inner = q
                        .strip_prefix("label_values(")
                        .and_then(|s| s.strip_suffix(')'))
                        .unwrap_or_else(|| panic!("{what}: not label_values(...)"));
                    let (selector, label) = match inner.rsplit_once(',') {
                        Some((s, l)) => (Some(s.trim().to_string()), l.trim().to_string()),
                        None => (None, inner.trim().to_string()),
                    };
                    if let Some(s) = &selector {
                        // The selector must parse as PromQL too.
                        query(prom_port, s).unwrap_or_else(|e| panic!("{what}: {e}"));
                    }
                    let got = wait_for(&what, traffic, || {
                        label_values(prom_port, &label, selector.as_deref())
                            .map(|v| (!v.is_empty()).then_some(v))
                    });
                    if got.iter().any(|g| g == SERVICE) {
                        SERVICE.to_string()
                    } else {
                        got[0].clone()
                    }
                }
                Some("constant" | "custom" | "textbox") => {
                    raw.split(',').next().unwrap_or_default().trim().to_string()
                }
                other => panic!("{file}: variable ${name} of type {other:?} is not checked"),
            };
            values.insert(name, value);
        }
        for (place, expr) in expressions(&dash) {
            let promql = substitute(&expr, &values);
            let what = format!("{file}: {place}: {expr} (as {promql})");
            assert!(!promql.contains('$'), "{what}: an unknown variable");
            wait_for(&what, traffic, || {
                query(prom_port, &promql).map(|r| (!r.is_empty()).then_some(()))
            });
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} expressions found");
    drop(served);
}

// --- docker-compose.yml --------------------------------------------------------------

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// Run a checker (`promtool`, `amtool`); `false` when it is not installed (outside CI).
fn check_with(program: &str, args: &[&str]) -> bool {
    if !installed(program) {
        assert!(
            !crate::prom::required(),
            "{program} is not installed (.ci/run installs it)"
        );
        eprintln!("skipped: {program} is not installed");
        return false;
    }
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[test]
fn the_compose_file_is_valid_and_everything_it_mounts_exists_and_parses() {
    let compose = yaml(&root().join("docker-compose.yml"));
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/compose-spec/compose-spec.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&compose)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "docker-compose.yml: {errors:#?}");
    // The schema is no rubber stamp: a wrong type is refused.
    let mut broken = compose.clone();
    broken["services"]["prometheus"]["ports"] = json!("9090");
    assert!(!validator.is_valid(&broken));

    let services = compose["services"].as_object().unwrap();
    for name in [
        "otel-collector",
        "jaeger",
        "prometheus",
        "pushgateway",
        "alertmanager",
        "grafana",
        "faultline",
        "demo-service",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    assert!(services["otel-collector"]["image"]
        .as_str()
        .unwrap()
        .contains("opentelemetry-collector-contrib"));
    let prom_args = services["prometheus"]["command"].to_string();
    assert!(
        prom_args.contains("--web.enable-remote-write-receiver"),
        "{prom_args}"
    );

    // Every bind mount's source exists; each maps a container path to a repo path.
    let mut mounts: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (name, s) in services {
        for v in s["volumes"].as_array().into_iter().flatten() {
            let v = v.as_str().unwrap();
            let mut parts = v.split(':');
            let (src, dst) = (parts.next().unwrap(), parts.next().unwrap());
            if !src.starts_with('.') {
                continue; // a named volume
            }
            let path = root().join(src);
            assert!(path.exists(), "{name}: {src} does not exist");
            mounts.insert(dst.to_string(), path);
        }
        if let Some(build) = s.get("build") {
            let file = build["dockerfile"].as_str().unwrap_or("Dockerfile");
            let path = root().join(build["context"].as_str().unwrap()).join(file);
            assert!(path.exists(), "{name}: {} does not exist", path.display());
        }
    }
    let mounted = |dst: &str| -> PathBuf {
        mounts
            .get(dst)
            .unwrap_or_else(|| panic!("nothing mounted at {dst}: {mounts:?}"))
            .clone()
    };

    // The collector: receivers, exporters, and a traces pipeline using only those.
    let collector = yaml(&mounted("/etc/otelcol-contrib/config.yaml"));
    let traces = &collector["service"]["pipelines"]["traces"];
    for (section, list) in [
        ("receivers", "receivers"),
        ("exporters", "exporters"),
        ("processors", "processors"),
    ] {
        for c in traces[list].as_array().unwrap() {
            assert!(
                collector[section].get(c.as_str().unwrap()).is_some(),
                "collector: the traces pipeline's {c} is not in {section}"
            );
        }
    }
    assert!(collector["receivers"]["otlp"]["protocols"]["grpc"].is_object());
    assert!(collector["exporters"].to_string().contains("jaeger:4317"));

    // Prometheus and its rules; Alertmanager.
    let prom = mounted("/etc/prometheus/prometheus.yml");
    check_with("promtool", &["check", "config", prom.to_str().unwrap()]);
    let rules = mounted("/etc/prometheus/rules");
    for r in std::fs::read_dir(&rules).unwrap() {
        let r = r.unwrap().path();
        check_with("promtool", &["check", "rules", r.to_str().unwrap()]);
    }
    let p = yaml(&prom);
    let jobs = p["scrape_configs"].to_string();
    for target in ["demo-service:8090", "faultline:8089", "pushgateway:9091"] {
        assert!(
            jobs.contains(target),
            "prometheus.yml does not scrape {target}"
        );
    }
    let am = mounted("/etc/alertmanager/alertmanager.yml");
    check_with("amtool", &["check-config", am.to_str().unwrap()]);

    // The demo objective the README syncs is one faultline accepts.
    let dir = TempDir::new("compose-objectives");
    let store = dir.join("store.db");
    let objectives = root().join("deploy/faultline/objectives.yaml");
    let out = faultline(
        &dir,
        &[
            "slo",
            "sync",
            "-f",
            objectives.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{}", out.all_text());
    // The chaos run's control file parses, and declares faultline.metrics.
    let controls = yaml(&mounted("/etc/faultline/controls.yaml"));
    assert_eq!(
        controls["metrics"]["provider"]["module"],
        "faultline.metrics"
    );

    // Grafana: datasources with the uids the dashboards use; the dashboard provider's
    // folder is the mounted dashboards/.
    let mut uids = Vec::new();
    for f in std::fs::read_dir(mounted("/etc/grafana/provisioning/datasources")).unwrap() {
        let d = yaml(&f.unwrap().path());
        for s in d["datasources"].as_array().unwrap() {
            uids.push(s["uid"].as_str().unwrap().to_string());
        }
    }
    for f in std::fs::read_dir(mounted("/etc/grafana/provisioning/dashboards")).unwrap() {
        let d = yaml(&f.unwrap().path());
        for p in d["providers"].as_array().unwrap() {
            let path = p["options"]["path"].as_str().unwrap();
            let folder = mounted(path);
            let count = std::fs::read_dir(&folder)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "json")
                })
                .count();
            assert!(count >= 2, "{path}: {count} dashboards");
        }
    }
    for (file, dash) in dashboards() {
        assert!(
            dash["uid"].is_string() && dash["title"].is_string(),
            "{file}"
        );
        let text = dash.to_string();
        for uid in ["prometheus", "faultline-api"] {
            if text.contains(&format!("\"uid\":\"{uid}\"")) {
                assert!(
                    uids.contains(&uid.to_string()),
                    "{file}: datasource {uid} is not provisioned"
                );
            }
        }
    }
}

#[test]
fn the_dockerfile_builds_what_ci_builds_from_a_pinned_image_and_ships_only_the_binary() {
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let build = ci
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cargo build --release"))
        .unwrap()
        .trim_end_matches("2>&1")
        .trim()
        .to_string();
    let docker = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let stages: Vec<Vec<&str>> = docker
        .split("\nFROM ")
        .skip(usize::from(!docker.starts_with("FROM ")))
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect()
        })
        .collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    // The build image carries its version (rust:1.NN-bookworm); the runtime image a
    // release tag, never an implied or explicit `latest`.
    for (i, s) in stages.iter().enumerate() {
        let image = s[0]
            .trim_start_matches("FROM ")
            .split_whitespace()
            .next()
            .unwrap();
        let tag = image.rsplit_once(':').map_or("", |(_, t)| t);
        assert!(!tag.is_empty() && tag != "latest", "{image}: no tag");
        if i == 0 {
            assert!(
                tag.contains(char::is_numeric),
                "{image}: not pinned to a version"
            );
        }
    }
    assert!(stages[0][0].contains("rust:1."), "{:?}", stages[0][0]);
    let runs: Vec<&str> = stages[0]
        .iter()
        .filter_map(|l| l.trim().strip_prefix("RUN "))
        .collect();
    assert_eq!(
        runs,
        [build.as_str()],
        "the build stage runs .ci/run's build"
    );
    let last = stages.last().unwrap();
    let copies: Vec<&&str> = last.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(
        copies[0].contains("--from=") && copies[0].contains("/target/release/faultline "),
        "{copies:?}"
    );
    assert!(!last.iter().any(|l| l.starts_with("ADD")));
}
