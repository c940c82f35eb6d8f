//! SLOs as the steady state: the `slo` probe evaluating an OpenSLO objective over a
//! real Prometheus (the shared fixture in `prom.rs`, scraping every second) and a
//! Reliably manifest over the store; met, not met, inconclusive (no traffic, a counter
//! reset), burn-rate gates, the run's share of the error budget against a baseline,
//! and bad keys named by path.

use crate::common::*;
use crate::prom;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An OpenSLO file over the fixture's request counter of `m`, at `target`.
pub(crate) fn openslo(dir: &TempDir, m: &prom::Metrics, target: f64) -> String {
    let sel = m.selector();
    let yaml = format!(
        "apiVersion: openslo/v1
kind: SLO
metadata: {{name: api-availability}}
spec:
  service: api
  budgetingMethod: Occurrences
  timeWindow: [{{duration: 1h, isRolling: true}}]
  objectives: [{{target: {target}}}]
  indicator:
    metadata: {{name: api-avail}}
    spec:
      ratioMetric:
        counter: true
        good: {{metricSource: {{type: Prometheus, spec: {{query: 'http_requests_total{{{sel},code=\"200\"}}'}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: 'http_requests_total{{{sel}}}'}}}}}}
"
    );
    dir.write("slo.yaml", &yaml).to_str().unwrap().to_string()
}

/// Requests in the background, every 100 ms: `mix` holds good and bad per tick (high
/// and low 32 bits), changed while it runs.
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    mix: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    pub(crate) fn start(m: Arc<prom::Metrics>, good: u32, bad: u32) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let mix = Arc::new(AtomicU64::new(pack(good, bad)));
        let (s, x) = (stop.clone(), mix.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: at most 5 minutes.
            for _ in 0..3000 {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let v = x.load(Ordering::SeqCst);
                m.requests(v >> 32, v & 0xffff_ffff);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Traffic {
            stop,
            mix,
            thread: Some(thread),
        }
    }

    pub(crate) fn set(&self, good: u32, bad: u32) {
        self.mix.store(pack(good, bad), Ordering::SeqCst);
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pack(good: u32, bad: u32) -> u64 {
    (u64::from(good) << 32) | u64::from(bad)
}

/// An `slo` probe of the file over the method, with the `slo` tolerance.
pub(crate) fn slo_probe(url: &str, file: &str, extra: Value) -> Value {
    let mut provider = json!({"type": "slo", "objective_file": file, "window": "method",
        "scrape_interval": 1, "base_url": url});
    for (k, v) in extra.as_object().unwrap() {
        provider[k] = v.clone();
    }
    json!({"type": "probe", "name": "slo", "provider": provider, "tolerance": {"type": "slo"}})
}

/// Run `probe` after a method of `method` (default: a 5 s sleep) and return the run.
fn run_after(dir: &TempDir, probe: Value, method: Vec<Value>) -> Output {
    let method = if method.is_empty() {
        vec![sh("action", "wait", "sleep 5")]
    } else {
        method
    };
    let exp = experiment(vec![probe], method, vec![]);
    let store = dir.join("store.db");
    let out = run_experiment_env(
        dir,
        &exp,
        &["--hypothesis-strategy", "after-method-only"],
        &[("FAULTLINE_STORE", store.to_str().unwrap())],
    );
    assert_no_panic(&out);
    out
}

fn after(out: &Output) -> Value {
    out.journal()["steady_states"]["after"]["probes"][0].clone()
}

/// Wait until Prometheus holds the series of `m` with some traffic.
pub(crate) fn wait_traffic(p: &prom::Prom, m: &prom::Metrics) {
    p.wait_for(
        &format!("sum(http_requests_total{{{}}})", m.selector()),
        |v| v > 0.0,
    );
}

#[test]
fn an_slo_met_with_a_quiet_burn_rate_gate() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = Arc::new(prom::Metrics::new("slo-met"));
    let _t = Traffic::start(m.clone(), 20, 0);
    wait_traffic(p, &m);
    let dir = TempDir::new("slo-met");
    let file = openslo(&dir, &m, 0.99);
    let out = run_after(
        &dir,
        slo_probe(
            &p.url,
            &file,
            json!({"burn_rate": [{"long": "4s", "short": "2s", "factor": 2}]}),
        ),
        vec![],
    );
    let probe = after(&out);
    let o = &probe["output"];
    assert_eq!(o["verdict"], "met", "{}", out.all_text());
    assert_eq!(o["met"], true);
    assert_eq!(o["sli"], 1.0, "{o}");
    assert_eq!(o["target"], 0.99);
    assert!(o["events"].as_f64().unwrap() >= 100.0, "{o}");
    assert_eq!(o["burn_rate"], 0.0);
    assert_eq!(o["error_budget_remaining"], 1.0);
    assert_eq!(o["gates"][0]["tripped"], false, "{o}");
    assert_eq!(o["source"], "prometheus");
    assert!(
        o["queries"]["total"]
            .as_str()
            .unwrap()
            .starts_with("sum(increase(http_requests_total{"),
        "{o}"
    );
    assert!(o["window"]["seconds"].as_f64().unwrap() >= 4.0, "{o}");
    assert_eq!(probe["evidence"]["verdict"], "met", "{probe}");
    assert_eq!(out.status(), "completed", "{}", out.all_text());
}

#[test]
fn an_slo_not_met_and_a_gate_that_trips_while_the_sli_holds() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = Arc::new(prom::Metrics::new("slo-notmet"));
    let _t = Traffic::start(m.clone(), 16, 4);
    wait_traffic(p, &m);
    let dir = TempDir::new("slo-notmet");
    // 80 % good against 99 %: not met.
    let file = openslo(&dir, &m, 0.99);
    let out = run_after(&dir, slo_probe(&p.url, &file, json!({})), vec![]);
    let probe = after(&out);
    let o = &probe["output"];
    assert_eq!(o["verdict"], "not_met", "{}", out.all_text());
    assert!((o["sli"].as_f64().unwrap() - 0.8).abs() < 0.02, "{o}");
    assert!((o["burn_rate"].as_f64().unwrap() - 20.0).abs() < 2.0, "{o}");
    assert_eq!(probe["evidence"]["verdict"], "not_met", "{probe}");
    assert_eq!(
        out.journal()["steady_states"]["after"]["steady_state_met"],
        false
    );

    // 80 % good against 70 %: met, but a 20 % error ratio burns the 30 % budget
    // faster than 0.5× over both windows: the gate trips.
    let dir = TempDir::new("slo-gate");
    let file = openslo(&dir, &m, 0.7);
    let out = run_after(
        &dir,
        slo_probe(
            &p.url,
            &file,
            json!({"burn_rate": [{"long": "4s", "short": "2s", "factor": 0.5}], "min_events": 10}),
        ),
        vec![],
    );
    let o = &after(&out)["output"];
    assert_eq!(o["verdict"], "not_met", "{}", out.all_text());
    assert_eq!(o["gates"][0]["tripped"], true, "{o}");
    assert!(
        o["reason"].as_str().unwrap().contains("burn-rate gate"),
        "{o}"
    );
    assert!((o["gates"][0]["threshold"].as_f64().unwrap() - 0.15).abs() < 1e-9);
}

#[test]
fn no_traffic_and_a_counter_reset_are_inconclusive() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    // Series present, never incremented during the run: 0/0.
    let m = prom::Metrics::new("slo-quiet");
    p.wait_for_all(&format!("http_requests_total{{{}}}", m.selector()), |v| {
        v.len() == 2
    });
    let dir = TempDir::new("slo-quiet");
    let file = openslo(&dir, &m, 0.99);
    let out = run_after(&dir, slo_probe(&p.url, &file, json!({})), vec![]);
    let probe = after(&out);
    let o = &probe["output"];
    assert_eq!(o["verdict"], "inconclusive", "{}", out.all_text());
    assert_eq!(o["met"], false);
    assert!(o["reason"].as_str().unwrap().contains("no traffic"), "{o}");
    assert_eq!(probe["evidence"]["verdict"], "inconclusive", "{probe}");
    assert_eq!(
        out.journal()["steady_states"]["after"]["steady_state_met"],
        false
    );

    // Traffic, then a restart in the middle of the method: a counter reset.
    let m = Arc::new(prom::Metrics::new("slo-reset"));
    let t = Traffic::start(m.clone(), 20, 0);
    wait_traffic(p, &m);
    let dir = TempDir::new("slo-reset");
    let file = openslo(&dir, &m, 0.99);
    let flag = dir.join("reset-now");
    let watcher = {
        let (m, flag) = (m.clone(), flag.clone());
        std::thread::spawn(move || {
            for _ in 0..600 {
                if flag.exists() {
                    m.reset();
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let out = run_after(
        &dir,
        slo_probe(&p.url, &file, json!({})),
        vec![sh(
            "action",
            "restart",
            &format!("sleep 3; touch {}; sleep 3", flag.display()),
        )],
    );
    watcher.join().unwrap();
    drop(t);
    let o = &after(&out)["output"];
    assert_eq!(o["verdict"], "inconclusive", "{}", out.all_text());
    assert!(o["reason"].as_str().unwrap().contains("reset"), "{o}");
    assert!(o["data_quality"]["resets"].as_f64().unwrap() >= 1.0, "{o}");
}

#[test]
fn the_budget_a_run_consumed_against_its_baseline() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    // 5 % errors before the run (the baseline), 10 % during the method.
    let m = Arc::new(prom::Metrics::new("slo-budget"));
    let t = Traffic::start(m.clone(), 19, 1);
    wait_traffic(p, &m);
    // Fill the baseline window.
    std::thread::sleep(Duration::from_secs(5));
    let dir = TempDir::new("slo-budget");
    let file = openslo(&dir, &m, 0.8);
    let flag = dir.join("worse");
    let watcher = {
        let flag = flag.clone();
        let mix = t.mix.clone();
        std::thread::spawn(move || {
            for _ in 0..600 {
                if flag.exists() {
                    mix.store(pack(18, 2), Ordering::SeqCst);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = run_after(
        &dir,
        slo_probe(
            &p.url,
            &file,
            json!({"budget": {"baseline": "4s", "max_percent": 0.01}, "min_events": 10}),
        ),
        vec![sh(
            "action",
            "degrade",
            &format!("touch {}; sleep 6", flag.display()),
        )],
    );
    watcher.join().unwrap();
    t.set(20, 0);
    let o = &after(&out)["output"];
    let b = &o["budget"];
    assert!(
        (b["baseline_error_ratio"].as_f64().unwrap() - 0.05).abs() < 0.01,
        "{}",
        out.all_text()
    );
    let total = o["events"].as_f64().unwrap();
    let excess = b["excess_bad_events"].as_f64().unwrap();
    // About 5 % of the run's events are beyond the baseline.
    assert!(excess > 0.03 * total && excess < 0.07 * total, "{o}");
    // The period's budget: 20 % of the run's rate over an hour.
    let seconds = o["window"]["seconds"].as_f64().unwrap();
    let budget = 0.2 * total / seconds * 3600.0;
    assert!(
        (b["period_budget_events"].as_f64().unwrap() - budget).abs() < budget * 1e-6,
        "{o}"
    );
    let consumed = o["budget_consumed_by_run"].as_f64().unwrap();
    assert!((consumed - excess / budget).abs() < 1e-9, "{o}");
    // More than 0.01 % of the hour's budget: not met, though the SLI (90 %) holds.
    assert_eq!(o["verdict"], "not_met", "{o}");
    assert!(
        o["reason"].as_str().unwrap().contains("error budget"),
        "{o}"
    );
    assert!(o["sli"].as_f64().unwrap() > 0.8, "{o}");
}

#[test]
fn a_reliably_manifest_judged_from_the_store() {
    let dir = TempDir::new("slo-reliably");
    let file = dir.write(
        "reliably.yaml",
        "apiVersion: reliably.com/v1
kind: Objective
metadata:
  labels: {name: checkout availability, service: checkout}
spec:
  indicatorSelector: {category: Availability, indicator_name: checkout-availability}
  objectivePercent: 99
  window: 1h
",
    );
    let file = file.to_str().unwrap();
    let indicator = |name: &str, good: u64| {
        json!({"type": "action", "name": name, "provider": {"type": "indicator",
            "labels": {"category": "Availability", "indicator_name": "checkout-availability"},
            "good": good, "total": 100}})
    };
    let probe = |name: &str| {
        json!({"type": "probe", "name": name, "tolerance": {"type": "slo"},
            "provider": {"type": "slo", "objective_file": file, "source": "store"}})
    };
    // The file's objective reaches the store when it opens, before the run's first
    // indicator: both are judged against it.
    let exp = json!({"title": "reliably", "description": "d",
        "steady-state-hypothesis": {"title": "t", "probes": [probe("after")]},
        "method": [indicator("a", 100), indicator("b", 99)]});
    let store = dir.join("store.db");
    let out = run_experiment_env(
        &dir,
        &exp,
        &["--hypothesis-strategy", "after-method-only"],
        &[("FAULTLINE_STORE", store.to_str().unwrap())],
    );
    assert_no_panic(&out);
    let after = &out.journal()["steady_states"]["after"]["probes"][0];
    let o = &after["output"];
    assert_eq!(o["verdict"], "met", "{}", out.all_text());
    assert_eq!(o["source"], "store");
    assert_eq!(o["events"], 200);
    assert!((o["sli"].as_f64().unwrap() - 0.995).abs() < 1e-9, "{o}");
    assert!((o["burn_rate"].as_f64().unwrap() - 0.5).abs() < 1e-6, "{o}");
    assert_eq!(o["objective"]["service"], "checkout");
    assert_eq!(after["evidence"]["verdict"], "met");
    assert_eq!(out.status(), "completed", "{}", out.all_text());
}

#[test]
fn bad_slo_keys_are_named_by_path() {
    let dir = TempDir::new("slo-validate");
    let exp = json!({"title": "bad", "description": "d",
        "steady-state-hypothesis": {"title": "t", "probes": [
            {"type": "probe", "name": "slo", "tolerance": {"type": "slo", "op": "<"},
             "provider": {"type": "slo", "objective_file": "x.yaml", "window": "method",
                "source": "db", "scrape_interval": "soon", "min_events": -1,
                "min_coverage": 2, "up": "up(x)",
                "burn_rate": [{"long": "5m", "short": "1h", "factor": "x", "extra": 1}],
                "budget": {"max_percent": 1, "period": 3}}}]},
        "method": []});
    let path = dir.experiment(&exp);
    let out = faultline(&dir, &["validate", path.to_str().unwrap()], &[]);
    assert_no_panic(&out);
    assert_eq!(out.code, 3, "{}", out.all_text());
    let text = out.all_text();
    let p = "$.steady-state-hypothesis.probes[0]";
    for expected in [
        format!("{p}.tolerance.op"),
        format!("{p}.provider.source"),
        format!("{p}.provider.scrape_interval"),
        format!("{p}.provider.min_events"),
        format!("{p}.provider.min_coverage"),
        format!("{p}.provider.up"),
        format!("{p}.provider.burn_rate[0].short"),
        format!("{p}.provider.burn_rate[0].factor"),
        format!("{p}.provider.burn_rate[0].extra"),
        format!("{p}.provider.budget.baseline"),
        format!("{p}.provider.budget.period"),
    ] {
        assert!(text.contains(&expected), "{expected} in {text}");
    }
}

#[test]
fn the_wait_after_the_window_ends_on_interrupt() {
    let dir = TempDir::new("slo-cancel");
    let file = dir.write(
        "slo.yaml",
        "apiVersion: openslo/v1
kind: SLO
metadata: {name: a}
spec:
  service: api
  timeWindow: [{duration: 1h, isRolling: true}]
  objectives: [{target: 0.99}]
  indicator:
    metadata: {name: a}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'x_total{code=\"200\"}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'x_total'}}}
",
    );
    // A 60 s scrape interval: the probe would wait two minutes before its queries.
    let exp = experiment(
        vec![],
        vec![
            sh("action", "ready", "touch probe.ready"),
            json!({"type": "probe", "name": "slo", "provider": {"type": "slo",
                "objective_file": file.to_str().unwrap(), "scrape_interval": 60,
                "base_url": format!("http://127.0.0.1:{}", closed_port())}}),
        ],
        vec![],
    );
    let p = dir.experiment(&exp);
    let journal = dir.join("journal.json");
    let store = dir.join("store.db");
    let args = [
        "run",
        p.to_str().unwrap(),
        "--journal-path",
        journal.to_str().unwrap(),
    ];
    let mut guard = ChildGuard(Some(spawn(
        &dir,
        &args,
        &[("FAULTLINE_STORE", store.to_str().unwrap())],
    )));
    let child = guard.0.as_mut().unwrap();
    wait_until(Duration::from_secs(30), "the probe to start", || {
        dir.join("probe.ready").exists()
    });
    std::thread::sleep(Duration::from_secs(1));
    let signalled = std::time::Instant::now();
    send_signal(child.id(), "TERM");
    let code = wait_with_limit(child, Duration::from_secs(60));
    let took = signalled.elapsed();
    let out = collect(&dir, code, &journal);
    assert_no_panic(&out);
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    assert_eq!(out.status(), "interrupted", "{}", out.all_text());
    // Stopped in its wait, before any query.
    let probe = entry(&out.journal()["run"], "slo");
    assert_eq!(probe["status"], "failed", "{probe}");
    assert!(exception_text(probe).contains("TERM"), "{probe}");
}

#[test]
fn scrape_gaps_are_inconclusive() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    // The target's series vanish for 4 s of the method: fewer samples than scrapes.
    let m = Arc::new(prom::Metrics::new("slo-gaps"));
    let t = Traffic::start(m.clone(), 20, 0);
    wait_traffic(p, &m);
    let dir = TempDir::new("slo-gaps");
    let file = openslo(&dir, &m, 0.99);
    let (hide, show) = (dir.join("hide"), dir.join("show"));
    let watcher = {
        let (m, hide, show) = (m.clone(), hide.clone(), show.clone());
        std::thread::spawn(move || {
            for _ in 0..600 {
                if hide.exists() {
                    m.hide();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            for _ in 0..600 {
                if show.exists() {
                    m.show();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = run_after(
        &dir,
        slo_probe(&p.url, &file, json!({})),
        vec![sh(
            "action",
            "outage",
            &format!(
                "sleep 2; touch {}; sleep 4; touch {}; sleep 2",
                hide.display(),
                show.display()
            ),
        )],
    );
    watcher.join().unwrap();
    drop(t);
    let o = &after(&out)["output"];
    assert_eq!(o["verdict"], "inconclusive", "{}", out.all_text());
    assert!(o["reason"].as_str().unwrap().contains("scrape gaps"), "{o}");
    assert!(o["data_quality"]["coverage"].as_f64().unwrap() < 0.8, "{o}");
}

#[test]
fn rate_slis_with_bad_events_are_integrated() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = Arc::new(prom::Metrics::new("slo-rate"));
    let _t = Traffic::start(m.clone(), 16, 4);
    wait_traffic(p, &m);
    // Fill the rate()'s own 5 s range before the run.
    std::thread::sleep(Duration::from_secs(5));
    let dir = TempDir::new("slo-rate");
    let sel = m.selector();
    let yaml = format!(
        "apiVersion: openslo/v1
kind: SLO
metadata: {{name: api-errors}}
spec:
  service: api
  timeWindow: [{{duration: 1h, isRolling: true}}]
  objectives: [{{targetPercent: 70}}]
  indicator:
    metadata: {{name: api-errors}}
    spec:
      ratioMetric:
        counter: false
        bad: {{metricSource: {{type: Prometheus, spec: {{query: 'sum(rate(http_requests_total{{{sel},code=\"500\"}}[5s]))'}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: 'sum(rate(http_requests_total{{{sel}}}[5s]))'}}}}}}
"
    );
    let file = dir.write("slo.yaml", &yaml);
    let out = run_after(
        &dir,
        slo_probe(&p.url, file.to_str().unwrap(), json!({"min_events": 10})),
        vec![],
    );
    let o = &after(&out)["output"];
    assert_eq!(o["verdict"], "met", "{}", out.all_text());
    assert!((o["sli"].as_f64().unwrap() - 0.8).abs() < 0.05, "{o}");
    assert!(
        o["queries"]["bad"]
            .as_str()
            .unwrap()
            .contains("sum_over_time(("),
        "{o}"
    );
    // A rate shows no resets and no samples to count: not checked.
    assert!(o["data_quality"]["resets"].is_null(), "{o}");
    assert!(o["data_quality"]["coverage"].is_null(), "{o}");
}

#[test]
fn the_objective_file_prometheus_and_scrape_interval_can_come_from_settings() {
    let Some(p) = prom::prometheus() else {
        return;
    };
    let m = Arc::new(prom::Metrics::new("slo-settings"));
    let _t = Traffic::start(m.clone(), 10, 0);
    wait_traffic(p, &m);
    let dir = TempDir::new("slo-settings");
    let file = openslo(&dir, &m, 0.99);
    let settings = dir.write(
        "settings.yaml",
        &serde_json::to_string(&json!({"prometheus": {
            "base_url": p.url, "scrape_interval": 1, "objective_file": file}}))
        .unwrap(),
    );
    // The probe names neither a file, a URL nor a scrape interval.
    let probe = json!({"type": "probe", "name": "slo", "tolerance": {"type": "slo"},
        "provider": {"type": "slo", "labels": {"service": "api"}, "window": "method", "min_events": 20}});
    let exp = experiment(vec![probe], vec![sh("action", "wait", "sleep 5")], vec![]);
    let out = run_experiment_env(
        &dir,
        &exp,
        &[
            "--hypothesis-strategy",
            "after-method-only",
            "--settings",
            settings.to_str().unwrap(),
        ],
        &[("FAULTLINE_STORE", dir.join("store.db").to_str().unwrap())],
    );
    assert_no_panic(&out);
    let o = &after(&out)["output"];
    assert_eq!(o["verdict"], "met", "{}", out.all_text());
    assert_eq!(o["source"], "prometheus", "{o}");
    assert_eq!(o["window"]["scrape_interval"], 1.0, "{o}");
}
