//! `faultline.alerts`: the alerts that fired during the run, recorded in the journal
//! (`extensions[0].alerts`), as `chaos.alert` events on the experiment span and as its
//! `chaos.alerts.count`.
//!
//! Arguments: `alertmanager_url` and/or `prometheus_url`; `matchers` (a list of
//! matchers, or one text of them: `service="checkout"`, `severity=~"critical|page"`);
//! `match_target_labels` (add the run's target labels as `=` matchers); `interval`
//! (seconds between Alertmanager polls, 5 by default, 0.1 to 300);
//! `include_silenced`, `include_inhibited` (true by default: a silenced alert still
//! fired). Bearer tokens come from the secret scopes the declaration lists
//! (`provider.secrets`): `alertmanager_token`, `prometheus_token`.
//!
//! An Alertmanager lists only the alerts firing now, so it is polled in a background
//! task from the experiment's start, and once more at the end. Prometheus keeps
//! history: one range query over the run's window at the end finds alerts that fired
//! and resolved inside it. Each request has [`REQUEST_LIMIT`], and the end's requests
//! run together, so the run waits at most that long for them (and the runner never
//! more than [`super::FINDINGS_LIMIT`]). A source that fails is a warning at the end
//! (`errors`), never a failed run.

use super::{AttrValue, Control, Decision, Findings, FindingsHook, Hook, RunInfo, SpanEvent};
use crate::alerts::{self, alertmanager, Alert, Endpoint, Ledger, Matcher, Source};
use crate::experiment::Problem;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The journal key (in faultline's extension) holding the alerts.
pub const JOURNAL_KEY: &str = "alerts";
/// Span event: one alert that fired during the run.
pub const EVENT_ALERT: &str = "chaos.alert";
/// Its `alertname`.
pub const ATTR_NAME: &str = "chaos.alert.name";
/// `alertmanager` or `prometheus`.
pub const ATTR_SOURCE: &str = "chaos.alert.source";
/// Its labels, as a JSON object.
pub const ATTR_LABELS: &str = "chaos.alert.labels";
/// When it started firing (RFC 3339), when known.
pub const ATTR_STARTS_AT: &str = "chaos.alert.starts_at";
/// Experiment span attribute: how many alerts fired during the run.
pub const ATTR_COUNT: &str = "chaos.alerts.count";

/// The most one request may take, connecting included.
pub const REQUEST_LIMIT: Duration = Duration::from_millis(1500);
/// The default time between two Alertmanager polls.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const MIN_INTERVAL: f64 = 0.1;
const MAX_INTERVAL: f64 = 300.0;
/// Secret keys of the bearer tokens.
pub const SECRET_ALERTMANAGER_TOKEN: &str = "alertmanager_token";
/// The Prometheus provider's own key, so one scope serves both.
pub const SECRET_PROMETHEUS_TOKEN: &str = crate::provider::prometheus::SECRET_TOKEN;

const ARGUMENTS: [&str; 7] = [
    "alertmanager_url",
    "prometheus_url",
    "matchers",
    "match_target_labels",
    "interval",
    "include_silenced",
    "include_inhibited",
];

/// The control's settings, checked.
#[derive(Debug, Clone)]
struct Config {
    alertmanager: Option<String>,
    prometheus: Option<String>,
    matchers: Vec<Matcher>,
    match_target_labels: bool,
    interval: Duration,
    silenced: bool,
    inhibited: bool,
    scopes: Vec<String>,
}

#[derive(Default)]
struct State {
    start: Option<DateTime<Utc>>,
    /// The matchers in force (the arguments' and, when asked, the target labels).
    matchers: Vec<Matcher>,
    ledger: Ledger,
    /// Each distinct error once, with how many times it happened.
    errors: Vec<(String, usize)>,
    am_token: Option<String>,
    prom_token: Option<String>,
    recorded: Vec<Alert>,
}

struct Inner {
    config: Config,
    client: reqwest::Client,
    state: Mutex<State>,
}

/// Records the alerts that fired during the run.
pub struct Alerts {
    inner: Arc<Inner>,
    poller: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) {
        let msg = format!("{what}: {e}");
        let mut st = self.state();
        match st.errors.iter_mut().find(|(m, _)| *m == msg) {
            Some((_, n)) => *n += 1,
            None => st.errors.push((msg, 1)),
        }
    }

    /// One Alertmanager poll, recorded; the labels it listed, `None` when it failed.
    async fn poll(&self) -> Option<Vec<alerts::Labels>> {
        let url = self.config.alertmanager.as_ref()?;
        let (token, matchers) = {
            let st = self.state();
            (st.am_token.clone(), st.matchers.clone())
        };
        let ep = Endpoint {
            url: url.clone(),
            token,
            timeout: REQUEST_LIMIT,
        };
        let q = alertmanager::Query {
            matchers,
            silenced: self.config.silenced,
            inhibited: self.config.inhibited,
        };
        match alertmanager::alerts(&self.client, &ep, &q).await {
            Ok(found) => {
                let labels = found.iter().map(|a| a.labels.clone()).collect();
                let mut st = self.state();
                for a in found {
                    st.ledger.record(a);
                }
                Some(labels)
            }
            Err(e) => {
                self.error("Alertmanager", e);
                None
            }
        }
    }

    /// The Prometheus range query over the window, recorded.
    async fn fired(&self, start: DateTime<Utc>, end: DateTime<Utc>) {
        let Some(url) = &self.config.prometheus else {
            return;
        };
        let (token, matchers) = {
            let st = self.state();
            (st.prom_token.clone(), st.matchers.clone())
        };
        let ep = Endpoint {
            url: url.clone(),
            token,
            timeout: REQUEST_LIMIT,
        };
        match alerts::prometheus::fired(&self.client, &ep, &matchers, start, end).await {
            Ok(found) => {
                let mut st = self.state();
                for a in found {
                    st.ledger.record(a);
                }
            }
            Err(e) => self.error("Prometheus ALERTS", e),
        }
    }
}

/// A URL argument, checked.
fn url_arg(args: &Value, key: &str, path: &str, problems: &mut Vec<Problem>) -> Option<String> {
    match args.get(key)? {
        Value::String(s) if !s.trim().is_empty() => match alerts::check_url(s.trim()) {
            Ok(_) => Some(s.trim().trim_end_matches('/').to_string()),
            Err(e) => {
                problems.push(Problem::new(format!("{path}.{key}"), e));
                None
            }
        },
        v => {
            problems.push(Problem::new(
                format!("{path}.{key}"),
                format!("expected a URL, found {v}"),
            ));
            None
        }
    }
}

fn bool_arg(
    args: &Value,
    key: &str,
    default: bool,
    path: &str,
    problems: &mut Vec<Problem>,
) -> bool {
    match args.get(key) {
        None => default,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            problems.push(Problem::new(
                format!("{path}.{key}"),
                format!("expected true or false, found {v}"),
            ));
            default
        }
    }
}

impl Alerts {
    /// From the declaration's `arguments` (at `path`, for messages) and the secret
    /// scopes it lists. Every problem is returned, each with its path.
    pub fn from_arguments(
        args: &Value,
        scopes: Vec<String>,
        path: &str,
    ) -> Result<Alerts, Vec<Problem>> {
        let mut problems = Vec::new();
        let args = match args {
            Value::Null => &Value::Object(Map::new()),
            Value::Object(_) => args,
            v => {
                return Err(vec![Problem::new(
                    path.to_string(),
                    format!("expected an object of arguments, found {v}"),
                )])
            }
        };
        if let Some(m) = args.as_object() {
            for k in m.keys().filter(|k| !ARGUMENTS.contains(&k.as_str())) {
                problems.push(
                    Problem::new(format!("{path}.{k}"), "unknown argument")
                        .hint(format!("the arguments are {}", ARGUMENTS.join(", "))),
                );
            }
        }
        let alertmanager = url_arg(args, "alertmanager_url", path, &mut problems);
        let prometheus = url_arg(args, "prometheus_url", path, &mut problems);
        if args.get("alertmanager_url").is_none() && args.get("prometheus_url").is_none() {
            problems.push(
                Problem::new(path.to_string(), "no source of alerts")
                    .hint("set alertmanager_url, prometheus_url, or both"),
            );
        }
        let mut matchers = Vec::new();
        let mpath = format!("{path}.matchers");
        match args.get("matchers") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match alerts::parse_matchers(s) {
                Ok(ms) => matchers = ms,
                Err(e) => problems.push(Problem::new(mpath, e).hint(MATCHER_HINT)),
            },
            Some(Value::Array(items)) => {
                for (i, m) in items.iter().enumerate() {
                    match m.as_str().map(alerts::parse_matchers) {
                        Some(Ok(ms)) => matchers.extend(ms),
                        Some(Err(e)) => problems
                            .push(Problem::new(format!("{mpath}[{i}]"), e).hint(MATCHER_HINT)),
                        None => problems.push(
                            Problem::new(
                                format!("{mpath}[{i}]"),
                                format!("expected a matcher, found {m}"),
                            )
                            .hint(MATCHER_HINT),
                        ),
                    }
                }
            }
            Some(v) => problems.push(
                Problem::new(mpath, format!("expected a list of matchers, found {v}"))
                    .hint(MATCHER_HINT),
            ),
        }
        let match_target_labels = bool_arg(args, "match_target_labels", false, path, &mut problems);
        let silenced = bool_arg(args, "include_silenced", true, path, &mut problems);
        let inhibited = bool_arg(args, "include_inhibited", true, path, &mut problems);
        let interval = match args.get("interval") {
            None => DEFAULT_INTERVAL,
            Some(v) => match v.as_f64() {
                Some(s) if (MIN_INTERVAL..=MAX_INTERVAL).contains(&s) => {
                    Duration::from_millis((s * 1000.0) as u64)
                }
                _ => {
                    problems.push(Problem::new(
                        format!("{path}.interval"),
                        format!(
                            "expected seconds from {MIN_INTERVAL} to {MAX_INTERVAL}, found {v}"
                        ),
                    ));
                    DEFAULT_INTERVAL
                }
            },
        };
        let client = match alerts::client(REQUEST_LIMIT) {
            Ok(c) => c,
            Err(e) => {
                problems.push(Problem::new(path.to_string(), e.to_string()));
                return Err(problems);
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Alerts {
            inner: Arc::new(Inner {
                config: Config {
                    alertmanager,
                    prometheus,
                    matchers,
                    match_target_labels,
                    interval,
                    silenced,
                    inhibited,
                    scopes,
                },
                client,
                state: Mutex::default(),
            }),
            poller: Mutex::new(None),
        })
    }

    /// The bearer tokens, from the resolved secrets of the scopes the declaration
    /// lists (called by the composition root once secrets are resolved).
    pub fn set_secrets(&self, secrets: &Map<String, Value>) {
        let mut st = self.inner.state();
        for scope in &self.inner.config.scopes {
            let Some(s) = secrets.get(scope).and_then(Value::as_object) else {
                continue;
            };
            let text = |k: &str| {
                s.get(k).and_then(|v| match v {
                    Value::String(t) => Some(t.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
            };
            if let Some(t) = text(SECRET_ALERTMANAGER_TOKEN) {
                st.am_token = Some(t);
            }
            if let Some(t) = text(SECRET_PROMETHEUS_TOKEN) {
                st.prom_token = Some(t);
            }
        }
    }

    /// What failed while reading alerts, one line per distinct error.
    pub fn errors(&self) -> Vec<String> {
        self.inner
            .state()
            .errors
            .iter()
            .map(|(m, n)| match n {
                1 => m.clone(),
                n => format!("{m} ({n} times)"),
            })
            .collect()
    }

    /// The alerts recorded at the end of the run.
    pub fn recorded(&self) -> Vec<Alert> {
        self.inner.state().recorded.clone()
    }

    fn stop_polling(&self) {
        if let Some(h) = self.poller.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
    }
}

const MATCHER_HINT: &str =
    "matchers are label=\"value\", label!=\"value\", label=~\"regex\" or label!~\"regex\"";

/// The findings of a list of alerts.
fn findings(list: &[Alert], start: DateTime<Utc>) -> Findings {
    let events = list
        .iter()
        .map(|a| {
            let mut attributes = vec![
                (ATTR_NAME, AttrValue::Text(a.name.clone())),
                (ATTR_SOURCE, AttrValue::Text(a.source.as_str().to_string())),
                (
                    ATTR_LABELS,
                    AttrValue::Text(serde_json::to_string(&a.labels).unwrap_or_default()),
                ),
            ];
            if let Some(s) = a.starts_at {
                attributes.push((ATTR_STARTS_AT, AttrValue::Text(crate::timefmt::iso(s))));
            }
            SpanEvent {
                name: EVENT_ALERT,
                at: Some(a.first_seen.max(start).into()),
                attributes,
            }
        })
        .collect();
    Findings {
        journal: vec![(
            JOURNAL_KEY.to_string(),
            serde_json::to_value(list).unwrap_or_default(),
        )],
        attributes: vec![(
            ATTR_COUNT,
            AttrValue::Int(i64::try_from(list.len()).unwrap_or(i64::MAX)),
        )],
        events,
    }
}

impl Control for Alerts {
    fn name(&self) -> &str {
        "alerts"
    }

    fn configure(&self, run: &RunInfo) {
        let mut st = self.inner.state();
        st.start = Some(Utc::now());
        let mut matchers = self.inner.config.matchers.clone();
        let mut skipped = Vec::new();
        if self.inner.config.match_target_labels {
            for (k, v) in &run.labels {
                match Matcher::equal(k, v) {
                    Ok(m) => matchers.push(m),
                    Err(e) => skipped.push(e),
                }
            }
        }
        st.matchers = matchers;
        drop(st);
        for e in skipped {
            self.inner.error("target label not matched", e);
        }
    }

    fn before_experiment<'a>(&'a self, _run: &'a RunInfo) -> Hook<'a> {
        Box::pin(async move {
            if self.inner.config.alertmanager.is_some() {
                let inner = self.inner.clone();
                let every = inner.config.interval;
                let task = tokio::spawn(async move {
                    loop {
                        inner.poll().await;
                        tokio::time::sleep(every).await;
                    }
                });
                if let Some(old) = self
                    .poller
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replace(task)
                {
                    old.abort();
                }
            }
            Decision::Continue
        })
    }

    fn findings<'a>(&'a self, _run: &'a RunInfo) -> FindingsHook<'a> {
        Box::pin(async move {
            self.stop_polling();
            let end = Utc::now();
            let start = self.inner.state().start.unwrap_or(end);
            let (present, ()) = tokio::join!(self.inner.poll(), self.inner.fired(start, end));
            let mut st = self.inner.state();
            if let Some(present) = present {
                st.ledger.resolve_absent(Source::Alertmanager, &present);
            }
            let list = st.ledger.alerts(end);
            st.recorded = list.clone();
            drop(st);
            findings(&list, start)
        })
    }

    fn cleanup(&self) {
        self.stop_polling();
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        self.stop_polling();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(args: Value) -> Vec<String> {
        match Alerts::from_arguments(&args, vec![], "$.controls[0].provider.arguments") {
            Ok(_) => vec![],
            Err(ps) => ps.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn arguments_are_checked_every_problem_at_once() {
        assert!(problems(json!({"alertmanager_url": "http://127.0.0.1:9093"})).is_empty());
        assert!(problems(json!({"prometheus_url": "http://p:9090",
            "matchers": ["service=\"checkout\"", "severity=~\"critical|page\""],
            "match_target_labels": true, "interval": 0.5}))
        .is_empty());
        let ps = problems(
            json!({"alertmanager_url": "ftp://x", "matchers": ["service"],
            "interval": 0, "include_silenced": "yes", "typo": 1}),
        );
        let all = ps.join("\n");
        for says in [
            "alertmanager_url",
            "matchers[0]",
            "interval",
            "include_silenced",
            "typo",
        ] {
            assert!(all.contains(says), "{says} missing:\n{all}");
        }
        let ps = problems(json!({}));
        assert!(ps.join("\n").contains("no source of alerts"), "{ps:?}");
    }

    #[test]
    fn findings_carry_the_journal_list_events_and_count() {
        let start = Utc::now();
        let a = Alert {
            name: "A".into(),
            source: Source::Alertmanager,
            labels: [("alertname".to_string(), "A".to_string())].into(),
            state: "active".into(),
            starts_at: Some(start - chrono::Duration::seconds(5)),
            ends_at: None,
            fingerprint: Some("f".into()),
            first_seen: start - chrono::Duration::seconds(1),
            last_seen: start,
            annotations: Default::default(),
        };
        let f = findings(std::slice::from_ref(&a), start);
        assert_eq!(f.journal[0].0, "alerts");
        assert_eq!(f.journal[0].1[0]["name"], "A");
        assert_eq!(f.journal[0].1[0]["source"], "alertmanager");
        assert_eq!(f.attributes, vec![(ATTR_COUNT, AttrValue::Int(1))]);
        assert_eq!(f.events[0].name, "chaos.alert");
        assert_eq!(f.events[0].at, Some(start.into()), "clamped to the run");
        assert!(f.events[0]
            .attributes
            .contains(&(ATTR_LABELS, AttrValue::Text("{\"alertname\":\"A\"}".into()))));
        let none = findings(&[], start);
        assert_eq!(none.journal[0].1, json!([]));
        assert_eq!(none.attributes, vec![(ATTR_COUNT, AttrValue::Int(0))]);
    }

    #[test]
    fn tokens_come_from_the_listed_scopes_only() {
        let c = Alerts::from_arguments(
            &json!({"alertmanager_url": "http://h"}),
            vec!["alerting".into()],
            "$",
        )
        .ok()
        .unwrap();
        let secrets = json!({"alerting": {"alertmanager_token": "a1", "prometheus_token": "p1"},
            "other": {"alertmanager_token": "x"}});
        c.set_secrets(secrets.as_object().unwrap());
        let st = c.inner.state();
        assert_eq!(st.am_token.as_deref(), Some("a1"));
        assert_eq!(st.prom_token.as_deref(), Some("p1"));
    }
}
