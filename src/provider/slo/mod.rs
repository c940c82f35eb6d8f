//! SLO activities: the native `indicator` provider (push an indicator tagged with the
//! run), the native `slo` probe (an objective's status over the run or a window), and
//! the guide's `chaosreliably.slo.probes.slo_is_met`, run natively without Python.
//!
//! The engine never sees a store: the composition root builds a [`SloAccess`] (which
//! store, which organisation, the `RELIABLY_*` settings) and the runner only carries it
//! to these providers in [`super::RunFacts`]. The store is opened on first use, so a
//! run without SLO activities never creates a database file.

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
                store: tokio::sync::OnceCell::new(),
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
            .get_or_try_init(|| {
                let forward = match spec {
                    StoreSpec::Remote { .. } => None,
                    _ => self.inner.remote_write.as_deref(),
                };
                Store::open_with(spec, forward)
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
            if templated(&["labels", "window"]) {
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

/// Where the run window is: `run` (the experiment's start to now) or a duration back
/// from now.
#[derive(Debug, Clone, PartialEq)]
enum Window {
    Run,
    Last(String, std::time::Duration),
}

/// The native `slo` probe: `{"type": "slo", "labels": {...}, "window": "run" | "1h"}`;
/// its output is the objective's [`crate::slo::SloStatus`] over the window.
#[derive(Debug, Clone)]
pub struct SloProbe {
    labels: Labels,
    window: Window,
}

impl SloProbe {
    fn from_map_problems(m: &Map<String, Value>) -> Result<SloProbe, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let labels = labels(m.get("labels"), "labels", &mut problems);
        let window = match m.get("window").filter(|v| !v.is_null()) {
            None => Some(Window::Run),
            Some(Value::String(s)) if s.trim() == "run" => Some(Window::Run),
            Some(Value::String(s)) => match parse_window(s) {
                Ok(d) if !d.is_zero() => Some(Window::Last(s.trim().to_string(), d)),
                Ok(_) => {
                    problems.push(("window".into(), "must be longer than nothing".into()));
                    None
                }
                Err(e) => {
                    problems.push((
                        "window".into(),
                        format!("{e} (or \"run\": the experiment's start to now)"),
                    ));
                    None
                }
            },
            Some(other) => {
                problems.push((
                    "window".into(),
                    format!("must be \"run\" or a duration such as \"1h\", got {other}"),
                ));
                None
            }
        };
        match window {
            Some(window) if problems.is_empty() => Ok(SloProbe { labels, window }),
            _ => Err(problems),
        }
    }

    /// Type a substituted definition.
    pub fn from_map(m: &Map<String, Value>) -> Result<SloProbe, String> {
        Self::from_map_problems(m).map_err(|p| join(&p))
    }

    pub(super) async fn run(&self, ctx: &Ctx<'_>) -> Result<Value, ActivityError> {
        let slo = &ctx.run.slo;
        record(ctx, attr::SLO_STORE, slo.describe().as_str());
        record(ctx, attr::SLO_OBJECTIVE, labels_text(&self.labels).as_str());
        let store = slo.store().await?;
        let obj = objective(store, slo.org(), &self.labels).await?;
        let to = Utc::now();
        let from = match &self.window {
            Window::Run => ctx.run.started,
            Window::Last(text, d) => {
                let d = chrono::Duration::from_std(*d)
                    .map_err(|_| ActivityError::new(format!("window {text:?} is too long")))?;
                to.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
            }
        };
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
        if let Some(a) = status.actual_percent {
            record(ctx, attr::SLO_ACTUAL_PERCENT, a);
        }
        if let Some(reason) = &status.reason {
            ctx.warn(format!(
                "objective {}: inconclusive, {reason}",
                labels_text(&obj.labels)
            ));
        }
        serde_json::to_value(&status).map_err(|e| ActivityError::new(e.to_string()))
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
