//! SLO activities: the native `indicator` provider (push an indicator tagged with the
//! run), the native `slo` probe (an objective's status over the run or a window), and
//! the guide's `chaosreliably.slo.probes.slo_is_met`, run natively without Python.
//!
//! The engine never sees a store: the composition root builds a [`SloAccess`] (which
//! store, which organisation, the `RELIABLY_*` settings) and the runner only carries it
//! to these providers in [`super::RunFacts`]. The store is opened on first use, so a
//! run without SLO activities never creates a database file.

pub mod promql;
pub mod table;

use super::{ActivityError, Ctx};
use crate::run::spans::attr;
use crate::slo::{parse_indicator, parse_window, Labels, Sample};
use crate::store::{Origin, Store, StoreError, StoreSpec, DEFAULT_ORG};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The python module and function `slo_is_met` is known by (chaostoolkit-reliably).
pub const SLO_IS_MET: (&str, &str) = ("chaosreliably.slo.probes", "slo_is_met");

/// Whether a python provider is one faultline runs natively (so the pre-flight does
/// not look for the module).
pub fn is_native_python(module: &str, func: &str) -> bool {
    (module, func) == SLO_IS_MET
}

/// Whether a provider definition needs SLO data (the app then checks the store
/// settings before the run starts).
pub fn uses_slo(provider: &Value) -> bool {
    match provider.get("type").and_then(Value::as_str) {
        Some("indicator" | "slo") => true,
        Some("python") => {
            let s = |k: &str| provider.get(k).and_then(Value::as_str).unwrap_or("");
            is_native_python(s("module"), s("func"))
        }
        _ => false,
    }
}

/// The objectives an `slo` probe definition reads from the store out of a file it
/// names literally (`objective_file` without a template): those its `labels` select,
/// judged from the store (`source: store`, or objectives without SLI queries). The app
/// hands them to [`SloAccess::with_objectives`]; a file that cannot be read gives none
/// here (the probe reports it when it runs).
pub fn store_objectives(provider: &Value) -> Vec<crate::slo::Objective> {
    let s = |k: &str| provider.get(k).and_then(Value::as_str);
    if s("type") != Some("slo") || s("source") == Some("prometheus") {
        return Vec::new();
    }
    let Some(path) = s("objective_file").filter(|p| !p.contains("${")) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(path.trim()) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    let wanted = provider
        .get("labels")
        .filter(|v| !v.is_null())
        .map(|v| labels(Some(v), "labels", &mut problems));
    let store_source = s("source") == Some("store");
    crate::slo::parse_objectives(&text)
        .unwrap_or_default()
        .into_iter()
        .filter(|o| {
            wanted
                .as_ref()
                .is_none_or(|l| crate::slo::selects(l, &o.labels))
        })
        .filter(|o| store_source || o.sli.is_none())
        .collect()
}

/// The Reliably client's settings from the environment (`RELIABLY_HOST`,
/// `RELIABLY_TOKEN`, `RELIABLY_ORG`); a probe's secrets `host`, `token`, `org` come
/// first, as in the Reliably client.
#[derive(Debug, Clone, Default)]
pub struct ReliablyEnv {
    /// `RELIABLY_HOST`: a bare `host:port`.
    pub host: Option<String>,
    /// `RELIABLY_TOKEN`.
    pub token: Option<String>,
    /// `RELIABLY_ORG`.
    pub org: Option<String>,
}

/// The run's way to its SLO store: where it is, which organisation, opened on first
/// use and shared by every activity of the run. Cheap to clone.
#[derive(Clone)]
pub struct SloAccess {
    inner: Arc<Inner>,
}

struct Inner {
    spec: Result<StoreSpec, String>,
    org: String,
    reliably: ReliablyEnv,
    /// Where an embedded or PostgreSQL store forwards the indicators it commits.
    remote_write: Option<String>,
    /// Objectives from files the run's `slo` probes name over the store, upserted as
    /// soon as the store opens, so every indicator the run pushes is judged against
    /// them.
    objectives: Vec<crate::slo::Objective>,
    store: tokio::sync::OnceCell<Store>,
}

impl Default for SloAccess {
    /// No store: SLO activities fail saying so (a runner assembled without one).
    fn default() -> SloAccess {
        SloAccess::new(
            Err("this run was given no SLO store".into()),
            DEFAULT_ORG.into(),
            ReliablyEnv::default(),
        )
    }
}

impl SloAccess {
    /// Access to the store at `spec` (or why there is none), as organisation `org`.
    pub fn new(spec: Result<StoreSpec, String>, org: String, reliably: ReliablyEnv) -> SloAccess {
        SloAccess {
            inner: Arc::new(Inner {
                spec,
                org,
                reliably,
                remote_write: None,
                objectives: Vec::new(),
                store: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The same access, upserting `objectives` into the store when it opens.
    pub fn with_objectives(self, objectives: Vec<crate::slo::Objective>) -> SloAccess {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            spec: shared.spec.clone(),
            org: shared.org.clone(),
            reliably: shared.reliably.clone(),
            remote_write: shared.remote_write.clone(),
            objectives: shared.objectives.clone(),
            store: tokio::sync::OnceCell::new(),
        });
        SloAccess {
            inner: Arc::new(Inner {
                objectives,
                ..inner
            }),
        }
    }

    /// The same access, forwarding what an embedded or PostgreSQL store commits to
    /// Prometheus remote write at `url` (`FAULTLINE_REMOTE_WRITE`); a remote store
    /// forwards on its own side.
    pub fn with_remote_write(self, url: Option<String>) -> SloAccess {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            spec: shared.spec.clone(),
            org: shared.org.clone(),
            reliably: shared.reliably.clone(),
            remote_write: shared.remote_write.clone(),
            objectives: shared.objectives.clone(),
            store: tokio::sync::OnceCell::new(),
        });
        SloAccess {
            inner: Arc::new(Inner {
                remote_write: url.filter(|u| !u.trim().is_empty()),
                ..inner
            }),
        }
    }

    /// The run's organisation.
    pub fn org(&self) -> &str {
        &self.inner.org
    }

    /// Where the store is (a path or a URL, never a token).
    pub fn describe(&self) -> String {
        match &self.inner.spec {
            Ok(s) => describe(s),
            Err(_) => "none".into(),
        }
    }

    /// The run's store, opened (and for a file, created) on first use.
    pub async fn store(&self) -> Result<&Store, ActivityError> {
        let spec = self
            .inner
            .spec
            .as_ref()
            .map_err(|e| ActivityError::new(e.clone()))?;
        self.inner
            .store
            .get_or_try_init(|| async {
                let forward = match spec {
                    StoreSpec::Remote { .. } => None,
                    _ => self.inner.remote_write.as_deref(),
                };
                let store = Store::open_with(spec, forward).await?;
                for o in &self.inner.objectives {
                    store.put_objective(&self.inner.org, o).await?;
                }
                Ok::<_, StoreError>(store)
            })
            .await
            .map_err(|e| ActivityError::new(format!("the SLO store {}: {e}", describe(spec))))
    }

    /// Whether an activity opened the store.
    pub fn opened(&self) -> bool {
        self.inner.store.initialized()
    }

    /// Commit what was written and close the store, if it was opened.
    pub async fn close(&self) {
        if let Some(s) = self.inner.store.get() {
            s.close().await;
        }
    }
}

/// A store as spans and messages show it: a URL without any user or password in it.
fn describe(spec: &StoreSpec) -> String {
    match spec {
        StoreSpec::Remote { base, .. } => {
            let mut u = base.clone();
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        other => other.describe(),
    }
}

fn store_error(what: &str, e: StoreError) -> ActivityError {
    ActivityError::new(format!("{what}: {e}"))
}

/// Record an attribute on the activity's span, when spans are recorded.
fn record(ctx: &Ctx<'_>, name: &'static str, value: impl tracing::Value) {
    if let Some(t) = &ctx.trace {
        t.parent.record(name, value);
    }
}

fn labels_text(l: &Labels) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn is_template(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains("${"))
}

/// Labels written in an experiment: a non-empty object of strings. Problems as
/// (key path, message).
fn labels(v: Option<&Value>, path: &str, problems: &mut Vec<(String, String)>) -> Labels {
    let mut out = Labels::new();
    match v {
        None | Some(Value::Null) => problems.push((
            path.into(),
            "is missing: the objective's labels, e.g. {\"service\": \"api\"}".into(),
        )),
        Some(Value::Object(m)) if m.is_empty() => {
            problems.push((path.into(), "must hold at least one label".into()))
        }
        Some(Value::Object(m)) => {
            for (k, v) in m {
                match v {
                    Value::String(s) => {
                        out.insert(k.clone(), s.clone());
                    }
                    other => problems.push((
                        format!("{path}.{k}"),
                        format!("a label's value must be a string, got {other}"),
                    )),
                }
            }
        }
        Some(other) => problems.push((
            path.into(),
            format!("must be an object of label names to strings, got {other}"),
        )),
    }
    out
}

fn join(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(p, m)| format!("{p}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Check an SLO provider definition (`indicator`, `slo`, or the python `slo_is_met`)
/// as written, before substitution: every problem as (key path under the provider,
/// message). Fields holding a `${}` template are checked once substituted, at run time.
pub fn check(m: &Map<String, Value>) -> Vec<(String, String)> {
    let templated = |keys: &[&str]| keys.iter().any(|k| m.get(*k).is_some_and(is_template));
    match m.get("type").and_then(Value::as_str) {
        Some("indicator") => {
            if templated(&["labels", "percent", "good", "total", "from", "to"]) {
                return Vec::new();
            }
            IndicatorProvider::from_map_problems(m)
                .err()
                .unwrap_or_default()
        }
        Some("slo") => {
            if templated(&[
                "labels",
                "window",
                "objective_file",
                "source",
                "scrape_interval",
                "min_events",
                "min_coverage",
                "up",
                "burn_rate",
                "budget",
            ]) {
                return Vec::new();
            }
            SloProbe::from_map_problems(m).err().unwrap_or_default()
        }
        Some("python") => {
            let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
            if !is_native_python(s("module"), s("func")) {
                return Vec::new();
            }
            let args = m.get("arguments");
            let templated = args.is_some_and(is_template)
                || args
                    .and_then(Value::as_object)
                    .is_some_and(|a| a.values().any(is_template));
            if templated {
                return Vec::new();
            }
            SloIsMet::from_map_problems(m).err().unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// The native `indicator` provider: `{"type": "indicator", "labels": {...},
/// "percent": P | "good": G, "total": T | "good": true/false, "from": T, "to": T}`.
#[derive(Debug, Clone)]
pub struct IndicatorProvider {
    labels: Labels,
    /// The `spec` of the indicator document, without the times not given.
    spec: Map<String, Value>,
    from: Option<Value>,
    to: Option<Value>,
}

/// An indicator problem's path (`spec.percent`, `metadata.labels.x`) as the
/// provider's key.
fn provider_path(p: &str) -> String {
    p.strip_prefix("metadata.")
        .or_else(|| p.strip_prefix("spec."))
        .unwrap_or(p)
        .to_string()
}

impl IndicatorProvider {
    fn from_map_problems(
        m: &Map<String, Value>,
    ) -> Result<IndicatorProvider, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut spec = Map::new();
        let given = |k: &str| m.get(k).filter(|v| !v.is_null());
        match given("good") {
            // The shortcut: a Good (100 %) or Bad (0 %) indicator, as the guide sends.
            Some(Value::Bool(good)) => {
                if given("percent").is_some() || given("total").is_some() {
                    problems.push((
                        "good".into(),
                        "true/false is a shortcut for percent 100/0: give it alone, without percent or total".into(),
                    ));
                }
                spec.insert("percent".into(), json!(if *good { 100.0 } else { 0.0 }));
            }
            _ => {
                for k in ["percent", "good", "total"] {
                    if let Some(v) = given(k) {
                        spec.insert(k.into(), v.clone());
                    }
                }
            }
        }
        let (from, to) = (given("from").cloned(), given("to").cloned());
        // Missing times are the run's start and now: checked here with stand-ins that
        // keep the given one's order.
        let now = Value::String(crate::timefmt::now_iso());
        let check_from = from.clone().or_else(|| to.clone()).unwrap_or(now.clone());
        let check_to = to.clone().or_else(|| from.clone()).unwrap_or(now);
        let mut doc_spec = spec.clone();
        doc_spec.insert("from".into(), check_from);
        doc_spec.insert("to".into(), check_to);
        let doc = json!({"metadata": {"labels": m.get("labels").cloned().unwrap_or(Value::Null)},
                         "spec": doc_spec});
        // The labels as the indicator document reads them (its problems are ours).
        let labels = match parse_indicator(&doc) {
            Ok(i) => i.labels,
            Err(found) => {
                problems.extend(
                    found
                        .into_iter()
                        .map(|p| (provider_path(&p.path), p.message.replace("spec.", ""))),
                );
                Labels::new()
            }
        };
        if problems.is_empty() {
            Ok(IndicatorProvider {
                labels,
                spec,
                from,
                to,
            })
        } else {
            Err(problems)
        }
    }

    /// Type a substituted definition.
    pub fn from_map(m: &Map<String, Value>) -> Result<IndicatorProvider, String> {
        Self::from_map_problems(m).map_err(|p| join(&p))
    }

    pub(super) async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let facts = ctx.run;
        let mut spec = self.spec.clone();
        spec.insert(
            "from".into(),
            self.from
                .clone()
                .unwrap_or_else(|| Value::String(crate::timefmt::iso(facts.started))),
        );
        spec.insert(
            "to".into(),
            self.to
                .clone()
                .unwrap_or_else(|| Value::String(crate::timefmt::now_iso())),
        );
        let doc = json!({"metadata": {"labels": self.labels}, "spec": spec});
        let indicator = parse_indicator(&doc).map_err(|p| {
            ActivityError::new(format!(
                "the indicator is invalid: {}",
                p.iter()
                    .map(|p| format!("{}: {}", provider_path(&p.path), p.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })?;
        let slo = &facts.slo;
        record(ctx, attr::SLO_STORE, slo.describe().as_str());
        record(ctx, attr::SLO_INDICATOR_PERCENT, indicator.percent);
        let store = slo.store().await?;
        let origin = Origin {
            run_id: Some(facts.run_id.clone()),
            trace_id: facts.trace_id.clone(),
        };
        let stored = store
            .put_indicator(slo.org(), &indicator, &origin)
            .await
            .map_err(|e| store_error("pushing the indicator", e))?;
        record(ctx, attr::SLO_INDICATOR_ID, stored.id.as_str());
        serde_json::to_value(&stored).map_err(|e| ActivityError::new(e.to_string()))
    }
}

/// The objective with these labels (the first whose labels include them all), in
/// `org` of `store`.
async fn objective(
    store: &Store,
    org: &str,
    labels: &Labels,
) -> Result<crate::store::ObjectiveRecord, ActivityError> {
    let found = store
        .objectives(org, labels)
        .await
        .map_err(|e| store_error("looking up the objective", e))?;
    found.into_iter().next().ok_or_else(|| {
        ActivityError::new(format!(
            "No objectives found to match the given labels ({}) in organisation '{org}'",
            labels_text(labels)
        ))
    })
}

/// Where the evaluated window is: `run` (the experiment's start to now), `method`
/// (the method's start to its end, or now while it runs) or a duration back from now.
#[derive(Debug, Clone, PartialEq)]
enum Window {
    Run,
    Method,
    Last(String, std::time::Duration),
}

/// Where the events come from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    /// The objective's SLI queries, over Prometheus.
    Prometheus,
    /// The indicators pushed to the store.
    Store,
}

/// The default scrape interval (Prometheus' own default is 1 m; 15 s is the common
/// configuration).
pub const DEFAULT_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);
/// The configuration key of the scrape interval when the provider sets none.
pub const CONFIG_SCRAPE_INTERVAL: &str = "prometheus_scrape_interval";
/// The configuration key naming an objective file when the provider names none.
pub const CONFIG_OBJECTIVE_FILE: &str = "slo_objective_file";
/// The least scrape coverage accepted by default.
pub const DEFAULT_MIN_COVERAGE: f64 = 0.8;

/// The native `slo` probe: `{"type": "slo", "labels": {...}, "window": "run" | "method"
/// | "1h", "objective_file": PATH, "source": "prometheus" | "store", ...}`; from the
/// store its output is the objective's [`crate::slo::SloStatus`] over the window (with
/// `sli`, `target`, `events`, `burn_rate`, `error_budget_remaining` added); from
/// Prometheus see [`promql::evaluate`] and `docs/slo.md`.
#[derive(Debug, Clone)]
pub struct SloProbe {
    labels: Option<Labels>,
    window: Window,
    objective_file: Option<String>,
    source: Option<Source>,
    scrape_interval: Option<std::time::Duration>,
    min_events: Option<f64>,
    min_coverage: f64,
    up: Option<String>,
    gates: Vec<promql::Gate>,
    budget: Option<promql::BudgetSpec>,
    raw: Map<String, Value>,
}

fn duration_key(
    v: &Value,
    path: &str,
    problems: &mut Vec<(String, String)>,
) -> Option<std::time::Duration> {
    let d = match v {
        Value::String(s) => parse_window(s).map_err(|e| e.to_string()),
        Value::Number(_) => super::seconds(v, path),
        other => Err(format!(
            "must be a duration such as \"5m\" or seconds, got {other}"
        )),
    };
    match d {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            problems.push((path.into(), "must be longer than nothing".into()));
            None
        }
        Err(e) => {
            problems.push((path.into(), e));
            None
        }
    }
}

fn number_key(
    v: &Value,
    path: &str,
    min: f64,
    problems: &mut Vec<(String, String)>,
) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && n >= min => Some(n),
        _ => {
            problems.push((
                path.into(),
                format!("must be a number of at least {min}, got {v}"),
            ));
            None
        }
    }
}

impl SloProbe {
    fn from_map_problems(m: &Map<String, Value>) -> Result<SloProbe, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let given = |k: &str| m.get(k).filter(|v| !v.is_null());
        let objective_file = match given("objective_file") {
            None => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(other) => {
                problems.push((
                    "objective_file".into(),
                    format!(
                        "must be the path of an objective file (Reliably or OpenSLO), got {other}"
                    ),
                ));
                None
            }
        };
        let labels = match (given("labels"), &objective_file) {
            (None, Some(_)) => None,
            (v, _) => Some(labels(v, "labels", &mut problems)),
        };
        let window = match given("window") {
            None => Some(Window::Run),
            Some(Value::String(s)) if s.trim() == "run" => Some(Window::Run),
            Some(Value::String(s)) if s.trim() == "method" => Some(Window::Method),
            Some(Value::String(s)) => match parse_window(s) {
                Ok(d) if !d.is_zero() => Some(Window::Last(s.trim().to_string(), d)),
                Ok(_) => {
                    problems.push(("window".into(), "must be longer than nothing".into()));
                    None
                }
                Err(e) => {
                    problems.push((
                        "window".into(),
                        format!("{e} (or \"run\": the experiment's start to now, or \"method\")"),
                    ));
                    None
                }
            },
            Some(other) => {
                problems.push((
                    "window".into(),
                    format!(
                        "must be \"run\", \"method\" or a duration such as \"1h\", got {other}"
                    ),
                ));
                None
            }
        };
        let source = match given("source").map(|v| (v, v.as_str())) {
            None => None,
            Some((_, Some("prometheus"))) => Some(Source::Prometheus),
            Some((_, Some("store"))) => Some(Source::Store),
            Some((v, _)) => {
                problems.push((
                    "source".into(),
                    format!("must be \"prometheus\" or \"store\", got {v}"),
                ));
                None
            }
        };
        let scrape_interval = given("scrape_interval")
            .and_then(|v| duration_key(v, "scrape_interval", &mut problems));
        let min_events =
            given("min_events").and_then(|v| number_key(v, "min_events", 0.0, &mut problems));
        let min_coverage = match given("min_coverage") {
            None => DEFAULT_MIN_COVERAGE,
            Some(v) => match number_key(v, "min_coverage", 0.0, &mut problems) {
                Some(c) if c <= 1.0 => c,
                Some(c) => {
                    problems.push((
                        "min_coverage".into(),
                        format!("must be from 0 to 1, got {c}"),
                    ));
                    DEFAULT_MIN_COVERAGE
                }
                None => DEFAULT_MIN_COVERAGE,
            },
        };
        let up = match given("up") {
            None => None,
            Some(Value::String(s)) if promql::is_selector(s) => Some(s.trim().to_string()),
            Some(other) => {
                problems.push((
                    "up".into(),
                    format!(
                        "must be a selector of up series such as up{{job=\"api\"}}, got {other}"
                    ),
                ));
                None
            }
        };
        let mut gates = Vec::new();
        match given("burn_rate") {
            None => {}
            Some(Value::Array(a)) => {
                for (i, g) in a.iter().enumerate() {
                    let path = format!("burn_rate[{i}]");
                    let Some(g) = g.as_object() else {
                        problems.push((path, "must be an object {\"long\": \"1h\", \"short\": \"5m\", \"factor\": 14.4}".into()));
                        continue;
                    };
                    for k in g.keys().filter(|k| !matches!(k.as_str(), "long" | "short" | "factor")) {
                        problems.push((format!("{path}.{k}"), "a burn-rate gate takes only long, short and factor".into()));
                    }
                    let get = |k: &str, problems: &mut Vec<(String, String)>| {
                        let v = g.get(k);
                        if v.is_none() {
                            problems.push((format!("{path}.{k}"), "is missing".into()));
                        }
                        v
                    };
                    let long = get("long", &mut problems).and_then(|v| duration_key(v, &format!("{path}.long"), &mut problems));
                    let short = get("short", &mut problems).and_then(|v| duration_key(v, &format!("{path}.short"), &mut problems));
                    let factor = get("factor", &mut problems).and_then(|v| number_key(v, &format!("{path}.factor"), 0.0, &mut problems));
                    if let (Some(long), Some(short)) = (long, short) {
                        if short >= long {
                            problems.push((format!("{path}.short"), "must be shorter than long".into()));
                        }
                    }
                    if let (Some(long), Some(short), Some(factor)) = (long, short, factor) {
                        gates.push(promql::Gate { long, short, factor });
                    }
                }
            }
            Some(other) => problems.push(("burn_rate".into(), format!("must be a list of gates such as [{{\"long\": \"1h\", \"short\": \"5m\", \"factor\": 14.4}}], got {other}"))),
        }
        let budget = match given("budget") {
            None => None,
            Some(Value::Object(b)) => {
                for k in b
                    .keys()
                    .filter(|k| !matches!(k.as_str(), "baseline" | "period_events" | "max_percent"))
                {
                    problems.push((
                        format!("budget.{k}"),
                        "the budget takes only baseline, period_events and max_percent".into(),
                    ));
                }
                let baseline = match b.get("baseline") {
                    None => {
                        problems.push((
                            "budget.baseline".into(),
                            "is missing: the window measured before the run, e.g. \"1h\"".into(),
                        ));
                        None
                    }
                    Some(v) => duration_key(v, "budget.baseline", &mut problems),
                };
                let period_events = match b.get("period_events").filter(|v| !v.is_null()) {
                    None => None,
                    Some(Value::String(q)) if !q.trim().is_empty() => Some(q.clone()),
                    Some(other) => {
                        problems.push((
                            "budget.period_events".into(),
                            format!("must be a PromQL query, got {other}"),
                        ));
                        None
                    }
                };
                let max_percent = b
                    .get("max_percent")
                    .filter(|v| !v.is_null())
                    .and_then(|v| number_key(v, "budget.max_percent", 0.0, &mut problems));
                baseline.map(|baseline| promql::BudgetSpec {
                    baseline,
                    period_events,
                    max_percent,
                })
            }
            Some(other) => {
                problems.push(("budget".into(), format!("must be an object {{\"baseline\": \"1h\", \"max_percent\": 2}}, got {other}")));
                None
            }
        };
        if source == Some(Source::Store) && (!gates.is_empty() || budget.is_some()) {
            problems.push(("source".into(), "burn_rate and budget need Prometheus: the store holds percents, not event counts over arbitrary windows".into()));
        }
        match window {
            Some(window) if problems.is_empty() => Ok(SloProbe {
                labels,
                window,
                objective_file,
                source,
                scrape_interval,
                min_events,
                min_coverage,
                up,
                gates,
                budget,
                raw: m.clone(),
            }),
            _ => Err(problems),
        }
    }

    /// Type a substituted definition.
    pub fn from_map(m: &Map<String, Value>) -> Result<SloProbe, String> {
        Self::from_map_problems(m).map_err(|p| join(&p))
    }

    /// The evaluated window: `(from, to)`.
    fn bounds(&self, ctx: &Ctx<'_>) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
        let now = Utc::now();
        Ok(match &self.window {
            Window::Run => (ctx.run.started, now),
            Window::Method => {
                let m = ctx.run.method_times();
                let from = m.started.ok_or_else(|| {
                    "window \"method\": the method has not started yet".to_string()
                })?;
                (from, m.ended.unwrap_or(now))
            }
            Window::Last(text, d) => {
                let d = chrono::Duration::from_std(*d)
                    .map_err(|_| format!("window {text:?} is too long"))?;
                (
                    now.checked_sub_signed(d)
                        .unwrap_or(DateTime::<Utc>::MIN_UTC),
                    now,
                )
            }
        })
    }

    /// The objective from the file named by the provider or the configuration, if any.
    fn file_objective(&self, ctx: &Ctx<'_>) -> Result<Option<crate::slo::Objective>, String> {
        let path = match (
            &self.objective_file,
            ctx.configuration.get(CONFIG_OBJECTIVE_FILE),
        ) {
            (Some(p), _) => p.clone(),
            (None, Some(Value::String(p))) if !p.trim().is_empty() => p.trim().to_string(),
            _ => match &ctx.run.prometheus.objective_file {
                Some(p) if !p.trim().is_empty() => p.trim().to_string(),
                _ => return Ok(None),
            },
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("the objective file {path}: {e}"))?;
        let all = crate::slo::parse_objectives(&text).map_err(|ps| {
            format!(
                "the objective file {path}: {}",
                ps.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        let mut found = all.into_iter().filter(|o| {
            self.labels
                .as_ref()
                .is_none_or(|l| crate::slo::selects(l, &o.labels))
        });
        match (found.next(), found.next(), &self.labels) {
            (Some(o), None, _) | (Some(o), Some(_), Some(_)) => Ok(Some(o)),
            (Some(_), Some(_), None) => Err(format!(
                "the objective file {path} holds several objectives: name one with labels"
            )),
            (None, _, l) => Err(format!(
                "the objective file {path} has no objective with the labels ({})",
                l.as_ref().map(labels_text).unwrap_or_default()
            )),
        }
    }

    pub(super) async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let file = self.file_objective(ctx).map_err(ActivityError::new)?;
        let source = self.source.unwrap_or(match &file {
            Some(o) if o.sli.is_some() => Source::Prometheus,
            _ => Source::Store,
        });
        if source == Source::Prometheus {
            let Some(obj) = file.as_ref() else {
                return Err(ActivityError::new(
                    "source \"prometheus\" needs an objective with SLI queries: name an OpenSLO file with objective_file (or the configuration's slo_objective_file)",
                ));
            };
            return self.run_prometheus(ctx, obj).await;
        }
        let slo = &ctx.run.slo;
        record(ctx, attr::SLO_STORE, slo.describe().as_str());
        let store = slo.store().await?;
        let obj = match &file {
            // A file's objective is upserted (by labels, idempotent), so the run's
            // indicators are judged against it from now on.
            Some(o) => {
                record(ctx, attr::SLO_OBJECTIVE, labels_text(&o.labels).as_str());
                store
                    .put_objective(slo.org(), o)
                    .await
                    .map_err(|e| store_error("storing the file's objective", e))?
                    .0
            }
            None => {
                let labels = self.labels.clone().unwrap_or_default();
                record(ctx, attr::SLO_OBJECTIVE, labels_text(&labels).as_str());
                objective(store, slo.org(), &labels).await?
            }
        };
        let (from, to) = self.bounds(ctx).map_err(ActivityError::new)?;
        let results = store
            .window_results(slo.org(), &obj.id, from, to)
            .await
            .map_err(|e| store_error("reading the objective's results", e))?;
        let samples: Vec<Sample> = results
            .iter()
            .map(|r| Sample {
                percent: r.result.actual_percent,
                counts: r.good.zip(r.total),
            })
            .collect();
        let status = crate::slo::status(obj.objective_percent, &samples, from, to);
        record(ctx, attr::SLO_MET, status.met);
        record(ctx, attr::SLO_TARGET_PERCENT, status.target_percent);
        record(ctx, attr::SLO_VERDICT, verdict_text(status.verdict));
        if let Some(a) = status.actual_percent {
            record(ctx, attr::SLO_ACTUAL_PERCENT, a);
        }
        if let Some(reason) = &status.reason {
            ctx.warn(format!(
                "objective {}: inconclusive, {reason}",
                labels_text(&obj.labels)
            ));
        }
        let mut out =
            serde_json::to_value(&status).map_err(|e| ActivityError::new(e.to_string()))?;
        // The same keys as the Prometheus evaluation, so one tolerance reads both.
        if let Some(m) = out.as_object_mut() {
            let target = status.target_percent / 100.0;
            let sli = status.actual_percent.map(|a| a / 100.0);
            let (burn, remaining) = match sli {
                Some(s) => crate::slo::eval::burn(1.0 - s, target),
                None => (None, None),
            };
            m.insert("sli".into(), json!(sli));
            m.insert("target".into(), json!(target));
            m.insert("events".into(), json!(status.total));
            m.insert("burn_rate".into(), json!(burn));
            m.insert("error_budget_remaining".into(), json!(remaining));
            m.insert("budget_consumed_by_run".into(), Value::Null);
            m.insert("source".into(), json!("store"));
            m.insert("objective".into(), json!(obj.labels));
        }
        Ok(out)
    }

    async fn run_prometheus(
        &self,
        ctx: &Ctx<'_>,
        obj: &crate::slo::Objective,
    ) -> Result<Value, ActivityError> {
        record(ctx, attr::SLO_OBJECTIVE, labels_text(&obj.labels).as_str());
        let sli = obj.sli.as_ref().ok_or_else(|| {
            ActivityError::new(format!(
                "the objective {} has no SLI queries (a Reliably objective): use source \"store\"",
                labels_text(&obj.labels)
            ))
        })?;
        let ep = super::prometheus::endpoint(&self.raw, ctx).map_err(ActivityError::new)?;
        let scrape_interval = match (
            self.scrape_interval,
            ctx.configuration.get(CONFIG_SCRAPE_INTERVAL),
        ) {
            (Some(d), _) => d,
            (None, Some(v)) => {
                let mut ps = Vec::new();
                duration_key(v, CONFIG_SCRAPE_INTERVAL, &mut ps)
                    .ok_or_else(|| ActivityError::new(join(&ps)))?
            }
            (None, None) => ctx
                .run
                .prometheus
                .scrape_interval
                .unwrap_or(DEFAULT_SCRAPE_INTERVAL),
        };
        let (from, to) = self.bounds(ctx).map_err(ActivityError::new)?;
        let plan = promql::Plan {
            sli,
            target: obj.objective_percent / 100.0,
            period: obj.window_length,
            from,
            to,
            scrape_interval,
            min_events: self.min_events,
            min_coverage: self.min_coverage,
            up: self.up.as_deref(),
            gates: &self.gates,
            budget: self.budget.as_ref(),
        };
        let mut out = promql::evaluate(ctx, &ep, &plan).await?;
        out.insert("source".into(), json!("prometheus"));
        out.insert("objective".into(), json!(obj.labels));
        let verdict = out
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        record(ctx, attr::SLO_VERDICT, verdict.as_str());
        record(ctx, attr::SLO_MET, verdict == "met");
        record(ctx, attr::SLO_TARGET_PERCENT, obj.objective_percent);
        if let Some(s) = out.get("sli").and_then(Value::as_f64) {
            record(ctx, attr::SLO_ACTUAL_PERCENT, s * 100.0);
        }
        if let Some(b) = out.get("burn_rate").and_then(Value::as_f64) {
            record(ctx, attr::SLO_BURN_RATE, b);
        }
        if let Some(e) = out.get("events").and_then(Value::as_f64) {
            record(ctx, attr::SLO_EVENTS, e);
        }
        if let Some(c) = out.get("budget_consumed_by_run").and_then(Value::as_f64) {
            record(ctx, attr::SLO_BUDGET_CONSUMED, c);
        }
        if verdict == "inconclusive" {
            ctx.warn(format!(
                "objective {}: inconclusive, {}",
                labels_text(&obj.labels),
                out.get("reason").and_then(Value::as_str).unwrap_or("")
            ));
        }
        Ok(Value::Object(out))
    }
}

fn verdict_text(v: crate::slo::Verdict) -> &'static str {
    match v {
        crate::slo::Verdict::Met => "met",
        crate::slo::Verdict::NotMet => "not_met",
        crate::slo::Verdict::Inconclusive => "inconclusive",
    }
}

/// `chaosreliably.slo.probes.slo_is_met(labels, limit=1)`, natively: met when the
/// newest `limit` results of the objective with those labels all have a remaining
/// percent of at least 0; no result is not met.
#[derive(Debug, Clone)]
pub struct SloIsMet {
    labels: Labels,
    limit: usize,
}

/// The most results `slo_is_met` may ask for (the native API's own cap).
const MAX_LIMIT: u64 = 10_000;

impl SloIsMet {
    fn from_map_problems(m: &Map<String, Value>) -> Result<SloIsMet, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let empty = Map::new();
        let args = match m.get("arguments") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(a)) => a,
            Some(other) => {
                return Err(vec![(
                    "arguments".into(),
                    format!("must be an object with 'labels' (and 'limit'), got {other}"),
                )])
            }
        };
        let labels = labels(args.get("labels"), "arguments.labels", &mut problems);
        let limit = match args.get("limit").filter(|v| !v.is_null()) {
            None => 1,
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if (1..=MAX_LIMIT).contains(&n) => n as usize,
                    _ => {
                        problems.push((
                            "arguments.limit".into(),
                            format!("must be a whole number from 1 to {MAX_LIMIT}, got {v}"),
                        ));
                        1
                    }
                }
            }
        };
        for k in args.keys() {
            if !matches!(k.as_str(), "labels" | "limit") {
                problems.push((
                    format!("arguments.{k}"),
                    "slo_is_met takes only 'labels' and 'limit'".into(),
                ));
            }
        }
        if problems.is_empty() {
            Ok(SloIsMet { labels, limit })
        } else {
            Err(problems)
        }
    }

    /// Type a substituted python definition of `slo_is_met`.
    pub fn from_map(m: &Map<String, Value>) -> Result<SloIsMet, String> {
        Self::from_map_problems(m).map_err(|p| join(&p))
    }

    /// Where to read: a server named by the probe's secret `host` or `RELIABLY_HOST`
    /// (with `token`/`RELIABLY_TOKEN` and `org`/`RELIABLY_ORG`), else the run's store.
    async fn target<'c>(
        &self,
        ctx: &'c Ctx<'_>,
    ) -> Result<(std::borrow::Cow<'c, Store>, String, String), ActivityError> {
        let slo = &ctx.run.slo;
        let env = &slo.inner.reliably;
        // The listed scopes' keys, flattened (a later scope wins), as chaoslib passes
        // `secrets` to the function.
        let secret = |k: &str| -> Option<String> {
            ctx.secrets
                .values()
                .filter_map(Value::as_object)
                .filter_map(|s| s.get(k))
                .next_back()
                .and_then(|v| v.as_str().map(str::to_string))
        };
        let pick = |k: &str, env: &Option<String>| {
            secret(k)
                .or_else(|| env.clone())
                .filter(|s| !s.trim().is_empty())
        };
        let Some(host) = pick("host", &env.host) else {
            let store = slo.store().await?;
            return Ok((
                std::borrow::Cow::Borrowed(store),
                slo.org().to_string(),
                slo.describe(),
            ));
        };
        let org = pick("org", &env.org).ok_or_else(|| {
            ActivityError::new(format!(
                "slo_is_met: the Reliably host {host} is set but no organisation: set RELIABLY_ORG or the probe's secret 'org'"
            ))
        })?;
        let token = pick("token", &env.token);
        // As the Reliably client: http unless the configuration says
        // `reliably_use_http: false`.
        let https = matches!(
            ctx.configuration.get("reliably_use_http"),
            Some(Value::Bool(false))
        ) || ctx
            .configuration
            .get("reliably_use_http")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case("false"));
        let host = host.trim().trim_end_matches('/');
        let scheme = if https { "https" } else { "http" };
        let base = url::Url::parse(&format!("{scheme}://{host}")).map_err(|e| {
            ActivityError::new(format!(
                "slo_is_met: the Reliably host {host:?} is not a host:port ({e})"
            ))
        })?;
        let spec = StoreSpec::Remote { base, token };
        let describe = describe(&spec);
        let store = Store::open(&spec)
            .await
            .map_err(|e| ActivityError::new(format!("the SLO store {describe}: {e}")))?;
        Ok((std::borrow::Cow::Owned(store), org, describe))
    }

    pub(super) async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let (store, org, describe) = self.target(ctx).await?;
        record(ctx, attr::SLO_STORE, describe.as_str());
        record(ctx, attr::SLO_OBJECTIVE, labels_text(&self.labels).as_str());
        let obj = objective(&store, &org, &self.labels).await?;
        let results = store
            .results_by_indicator_selector(&org, &obj.indicator_selector, self.limit)
            .await
            .map_err(|e| store_error("Failed to retrieve SLO results", e))?;
        if let Some(newest) = results.first() {
            record(ctx, attr::SLO_ACTUAL_PERCENT, newest.result.actual_percent);
        }
        record(ctx, attr::SLO_TARGET_PERCENT, obj.objective_percent);
        if results.is_empty() {
            ctx.warn("No objective results were found so we must bail out");
            record(ctx, attr::SLO_MET, false);
            return Ok(Value::Bool(false));
        }
        let failing: Vec<table::Row> = results
            .iter()
            .filter(|r| !r.result.met())
            .map(|r| table::Row {
                from: r.from,
                to: r.to,
                objective_percent: r.result.objective_percent,
                actual_percent: r.result.actual_percent,
                remaining_percent: r.result.remaining_percent,
                indicator_selector: r.result.indicator_selector.clone(),
            })
            .collect();
        let met = failing.is_empty();
        record(ctx, attr::SLO_MET, met);
        if met {
            ctx.log("All Objective Results were OK.");
        } else {
            ctx.warn(table::not_ok_message(&failing));
        }
        Ok(Value::Bool(met))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn indicator_definitions_name_every_problem() {
        let p = check(&obj(
            json!({"type": "indicator", "labels": {"a": ["x"]}, "percent": 120}),
        ));
        let paths: Vec<&str> = p.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["labels.a", "percent"], "{p:?}");
        let p = check(&obj(
            json!({"type": "indicator", "labels": {"a": "b"}, "percent": 120,
            "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}),
        ));
        let paths: Vec<&str> = p.iter().map(|(p, _)| p.as_str()).collect();
        assert!(
            paths.contains(&"percent") && paths.contains(&"from"),
            "{p:?}"
        );
        let p = check(&obj(json!({"type": "indicator", "labels": {"a": "b"}})));
        assert_eq!(p[0].0, "percent", "{p:?}");
        let p = check(&obj(
            json!({"type": "indicator", "labels": {"a": "b"}, "good": true, "percent": 5}),
        ));
        assert_eq!(p[0].0, "good", "{p:?}");
        assert!(check(&obj(
            json!({"type": "indicator", "labels": {"a": "b"}, "good": 9, "total": 10})
        ))
        .is_empty());
        assert!(check(&obj(
            json!({"type": "indicator", "labels": {"a": "b"}, "good": false})
        ))
        .is_empty());
        assert!(check(&obj(
            json!({"type": "indicator", "labels": "${l}", "percent": 1})
        ))
        .is_empty());
    }

    #[test]
    fn slo_and_slo_is_met_definitions_are_checked() {
        assert!(check(&obj(
            json!({"type": "slo", "labels": {"s": "x"}, "window": "1h"})
        ))
        .is_empty());
        assert!(check(&obj(json!({"type": "slo", "labels": {"s": "x"}}))).is_empty());
        let p = check(&obj(json!({"type": "slo", "labels": {}, "window": "soon"})));
        let paths: Vec<&str> = p.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["labels", "window"], "{p:?}");
        let p = check(&obj(
            json!({"type": "python", "module": SLO_IS_MET.0, "func": SLO_IS_MET.1,
            "arguments": {"limit": 0, "lables": {}}}),
        ));
        let paths: Vec<&str> = p.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["arguments.labels", "arguments.limit", "arguments.lables"],
            "{p:?}"
        );
        assert!(check(&obj(
            json!({"type": "python", "module": SLO_IS_MET.0, "func": SLO_IS_MET.1,
            "arguments": {"labels": {"service": "x"}, "limit": 5}})
        ))
        .is_empty());
    }

    #[test]
    fn slo_evaluation_keys_are_checked() {
        assert!(
            check(&obj(json!({"type": "slo", "objective_file": "slo.yaml",
            "window": "method", "scrape_interval": "15s", "min_events": 100,
            "min_coverage": 0.9, "up": "up{job=\"api\"}",
            "burn_rate": [{"long": "1h", "short": "5m", "factor": 14.4}],
            "budget": {"baseline": "1h", "max_percent": 2, "period_events": "sum(x)"}})))
            .is_empty()
        );
        // A file without labels is fine; no file and no labels is not.
        let p = check(&obj(json!({"type": "slo"})));
        assert_eq!(p[0].0, "labels", "{p:?}");
        let p = check(&obj(
            json!({"type": "slo", "labels": {"s": "x"}, "source": "store",
            "budget": {"baseline": "1h"}}),
        ));
        assert_eq!(p[0].0, "source", "{p:?}");
        let p = check(&obj(json!({"type": "slo", "objective_file": "f",
            "burn_rate": [{"long": "5m", "short": "5m", "factor": 1}, 3]})));
        let paths: Vec<&str> = p.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["burn_rate[0].short", "burn_rate[1]"], "{p:?}");
    }

    #[test]
    fn file_objectives_judged_from_the_store_are_found_before_the_run() {
        let dir = std::env::temp_dir().join(format!("faultline-slo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("objectives.yaml");
        std::fs::write(
            &file,
            "apiVersion: reliably.com/v1
kind: Objective
metadata: {labels: {name: a, service: api}}
spec: {indicatorSelector: {category: Availability}, objectivePercent: 99, window: 1h}
---
apiVersion: reliably.com/v1
kind: Objective
metadata: {labels: {name: b, service: api}}
spec: {indicatorSelector: {category: Latency}, objectivePercent: 95, window: 1h}
",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(
            store_objectives(&json!({"type": "slo", "objective_file": f})).len(),
            2
        );
        let one =
            store_objectives(&json!({"type": "slo", "objective_file": f, "labels": {"name": "b"}}));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].labels["name"], "b");
        assert!(store_objectives(
            &json!({"type": "slo", "objective_file": f, "source": "prometheus"})
        )
        .is_empty());
        assert!(store_objectives(&json!({"type": "slo", "objective_file": "${f}"})).is_empty());
        assert!(store_objectives(&json!({"type": "http", "objective_file": f})).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_url_is_shown_without_credentials() {
        let spec = StoreSpec::Remote {
            base: "http://user:pw@127.0.0.1:8089/".parse().unwrap(),
            token: Some("t0ken".into()),
        };
        let access = SloAccess::new(Ok(spec), "o".into(), ReliablyEnv::default());
        assert_eq!(access.describe(), "http://127.0.0.1:8089/");
        assert!(!access.opened());
    }

    #[test]
    fn only_slo_activities_use_the_store() {
        assert!(uses_slo(&json!({"type": "indicator"})));
        assert!(uses_slo(&json!({"type": "slo"})));
        assert!(uses_slo(
            &json!({"type": "python", "module": SLO_IS_MET.0, "func": SLO_IS_MET.1})
        ));
        assert!(!uses_slo(
            &json!({"type": "python", "module": "m", "func": "slo_is_met"})
        ));
        assert!(!uses_slo(&json!({"type": "process", "path": "true"})));
    }
}
