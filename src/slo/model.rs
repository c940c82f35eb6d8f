//! Reliably objectives and indicators, checked: every problem at once, each naming its
//! field (`spec.objectivePercent`, `metadata.labels.service`...), so the CLI and the
//! server can refuse bad input before anything is stored.

use super::window::parse_window;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Labels: string keys to string values, sorted.
pub type Labels = BTreeMap<String, String>;

/// A label key as Prometheus and Grafana take it: `[a-zA-Z_][a-zA-Z0-9_]*`, at most
/// 64 characters (run target labels; SLO labels are Reliably's and looser).
pub fn valid_label_key(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && k.len() <= 64
}

/// `k=v` as a label, every problem named (`--label` and the serve queries).
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let Some((k, v)) = text.split_once('=') else {
        return Err(format!("label {text:?}: expected key=value"));
    };
    let (k, v) = (k.trim(), v.trim());
    if !valid_label_key(k) {
        return Err(format!(
            "label {text:?}: the key must be letters, digits and '_', not starting with a digit (at most 64)"
        ));
    }
    if v.is_empty() {
        return Err(format!("label {text:?}: the value is empty"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The only `apiVersion` of Reliably documents.
pub const API_VERSION: &str = "reliably.com/v1";

/// At most this many labels on an objective, selector or indicator.
pub const MAX_LABELS: usize = 64;
/// A label name's longest length, in bytes.
pub const MAX_LABEL_NAME: usize = 256;
/// A label value's longest length, in bytes.
pub const MAX_LABEL_VALUE: usize = 1024;

/// One problem of a document: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SloProblem {
    /// The field, as a dotted path (`spec.window`).
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for SloProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// An objective: what share of an indicator must be good over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    /// Its labels (`name`, `service`...): its identity.
    pub labels: Labels,
    /// Which indicators count: every key/value here must be among theirs.
    pub indicator_selector: Labels,
    /// The target, 0 to 100.
    pub objective_percent: f64,
    /// The window, as written (`1h`), and its length.
    pub window: String,
    /// The window's length.
    pub window_length: Duration,
    /// The SLI's queries, when the objective came from an OpenSLO document that
    /// has them (a Reliably objective has none: its indicators are pushed).
    pub sli: Option<Sli>,
}

/// An OpenSLO SLI's Prometheus queries, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// `ratioMetric`: good or bad events over total events.
    Ratio {
        /// `counter: true`: the queries read counters.
        counter: bool,
        /// The good events' query (or none, when `bad` is given).
        good: Option<String>,
        /// The bad events' query (or none, when `good` is given).
        bad: Option<String>,
        /// Every event's query.
        total: String,
    },
    /// `thresholdMetric`: one query whose value is compared with each objective's
    /// `op` and `value` (kept; not evaluated by the `slo` provider yet).
    Threshold {
        /// The query.
        query: String,
    },
}

/// An indicator: the share of good events over `[from, to]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicator {
    /// Its labels, which objectives select on.
    pub labels: Labels,
    /// The start of what it measures.
    pub from: DateTime<Utc>,
    /// The end of what it measures (not before `from`).
    pub to: DateTime<Utc>,
    /// The share of good events, 0 to 100.
    pub percent: f64,
    /// Good and total event counts, when given (`percent` is then `good / total`).
    pub counts: Option<(u64, u64)>,
}

/// One indicator judged against one objective that selects it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveResult {
    /// The objective's indicator selector.
    pub indicator_selector: Labels,
    /// The objective's target.
    pub objective_percent: f64,
    /// The indicator's percent.
    pub actual_percent: f64,
    /// `actual - objective`, in percentage points (not an error budget).
    pub remaining_percent: f64,
}

impl ObjectiveResult {
    /// The result of `indicator` for `objective`.
    pub fn of(objective: &Objective, indicator: &Indicator) -> ObjectiveResult {
        ObjectiveResult {
            indicator_selector: objective.indicator_selector.clone(),
            objective_percent: objective.objective_percent,
            actual_percent: indicator.percent,
            remaining_percent: indicator.percent - objective.objective_percent,
        }
    }

    /// The objective was met by this indicator.
    pub fn met(&self) -> bool {
        self.remaining_percent >= 0.0
    }
}

/// `slo_is_met`: met when there are results and none missed; no result is not met.
pub fn is_met(results: &[ObjectiveResult]) -> bool {
    !results.is_empty() && results.iter().all(ObjectiveResult::met)
}

/// Whether `selector` selects `labels`: each of its key/values is among them (extra
/// labels allowed).
pub fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Problems collected while reading one document.
struct Check {
    problems: Vec<SloProblem>,
}

impl Check {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(SloProblem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn object<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        match v.get_path(path) {
            Some(Value::Object(o)) => Some(o),
            Some(other) => {
                self.problem(path, format!("must be an object, got {}", kind(other)));
                None
            }
            None => {
                self.problem(path, "is missing");
                None
            }
        }
    }

    /// String labels: keys non-empty, values strings (numbers and booleans are taken
    /// as their text, as YAML writes them unquoted).
    fn labels(&mut self, v: &Value, path: &str, required: bool) -> Labels {
        let mut out = Labels::new();
        let Some(o) = (if required || v.get_path(path).is_some() {
            self.object(v, path)
        } else {
            None
        }) else {
            return out;
        };
        if required && o.is_empty() {
            self.problem(path, "must hold at least one label");
        }
        if o.len() > MAX_LABELS {
            self.problem(
                path,
                format!("has {} labels, at most {MAX_LABELS} are allowed", o.len()),
            );
        }
        for (k, val) in o {
            let here = format!("{path}.{k}");
            if k.trim().is_empty() {
                self.problem(path, "a label has an empty name");
                continue;
            }
            if k.len() > MAX_LABEL_NAME || k.chars().any(char::is_control) {
                self.problem(
                    &here,
                    format!(
                        "a label name must be at most {MAX_LABEL_NAME} bytes without control characters"
                    ),
                );
                continue;
            }
            if val.as_str().is_some_and(|s| s.len() > MAX_LABEL_VALUE) {
                self.problem(&here, format!("is longer than {MAX_LABEL_VALUE} bytes"));
                continue;
            }
            match val {
                Value::String(s) => {
                    out.insert(k.clone(), s.clone());
                }
                Value::Number(n) => {
                    out.insert(k.clone(), n.to_string());
                }
                Value::Bool(b) => {
                    out.insert(k.clone(), b.to_string());
                }
                other => self.problem(&here, format!("must be a string, got {}", kind(other))),
            }
        }
        out
    }

    fn percent(&mut self, v: Option<&Value>, path: &str) -> Option<f64> {
        match v {
            Some(Value::Number(n)) => match n.as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => Some(p),
                _ => {
                    self.problem(path, format!("must be between 0 and 100, got {n}"));
                    None
                }
            },
            Some(other) => {
                self.problem(
                    path,
                    format!("must be a number from 0 to 100, got {}", kind(other)),
                );
                None
            }
            None => {
                self.problem(path, "is missing");
                None
            }
        }
    }

    fn time(&mut self, v: &Value, path: &str) -> Option<DateTime<Utc>> {
        match v.get_path(path) {
            Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s.trim()) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    self.problem(
                        path,
                        format!("{s:?} is not an RFC 3339 time ({e}), e.g. 2021-07-22T09:32:16Z"),
                    );
                    None
                }
            },
            Some(other) => {
                self.problem(
                    path,
                    format!("must be an RFC 3339 time string, got {}", kind(other)),
                );
                None
            }
            None => {
                self.problem(path, "is missing");
                None
            }
        }
    }

    fn header(&mut self, v: &Value, want: &str) {
        if !v.is_object() {
            self.problem("$", format!("a {want} must be an object, got {}", kind(v)));
            return;
        }
        // The guide's own PUT sends neither: both are optional, but when given they
        // must say this.
        match v.get("apiVersion") {
            None => {}
            Some(Value::String(a)) if a == API_VERSION => {}
            Some(other) => self.problem(
                "apiVersion",
                format!("must be {API_VERSION:?}, got {other}"),
            ),
        }
        match v.get("kind") {
            None => {}
            Some(Value::String(k)) if k.eq_ignore_ascii_case(want) => {}
            Some(other) => self.problem("kind", format!("must be {want:?}, got {other}")),
        }
    }

    fn done<T>(self, value: Option<T>) -> Result<T, Vec<SloProblem>> {
        match value {
            Some(v) if self.problems.is_empty() => Ok(v),
            _ => Err(self.problems),
        }
    }
}

trait GetPath {
    fn get_path(&self, path: &str) -> Option<&Value>;
}

impl GetPath for Value {
    fn get_path(&self, path: &str) -> Option<&Value> {
        path.split('.')
            .try_fold(self, |v, k| v.get(k))
            .filter(|v| !v.is_null())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// An objective document (`kind: Objective`), checked.
pub fn parse_objective(v: &Value) -> Result<Objective, Vec<SloProblem>> {
    let mut c = Check {
        problems: Vec::new(),
    };
    c.header(v, "Objective");
    if !v.is_object() {
        return Err(c.problems);
    }
    let labels = c.labels(v, "metadata.labels", true);
    let indicator_selector = c.labels(v, "spec.indicatorSelector", true);
    let objective_percent = c.percent(v.get_path("spec.objectivePercent"), "spec.objectivePercent");
    let window = match v.get_path("spec.window") {
        Some(Value::String(w)) => match parse_window(w) {
            Ok(d) => Some((w.trim().to_string(), d)),
            Err(e) => {
                c.problem("spec.window", e);
                None
            }
        },
        Some(other) => {
            c.problem(
                "spec.window",
                format!("must be a duration string such as 1h, got {}", kind(other)),
            );
            None
        }
        None => {
            c.problem("spec.window", "is missing");
            None
        }
    };
    let built = match (objective_percent, window) {
        (Some(p), Some((w, d))) => Some(Objective {
            labels,
            indicator_selector,
            objective_percent: p,
            window: w,
            window_length: d,
            sli: None,
        }),
        _ => None,
    };
    c.done(built)
}

/// An indicator document (`kind: indicator`), checked: a percent, or good and total
/// counts (or both, when they agree).
pub fn parse_indicator(v: &Value) -> Result<Indicator, Vec<SloProblem>> {
    let mut c = Check {
        problems: Vec::new(),
    };
    c.header(v, "indicator");
    if !v.is_object() {
        return Err(c.problems);
    }
    let labels = c.labels(v, "metadata.labels", true);
    let from = c.time(v, "spec.from");
    let to = c.time(v, "spec.to");
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            c.problem("spec.from", format!("{f} is after spec.to ({t})"));
        }
    }
    let count = |c: &mut Check, key: &str| -> Option<u64> {
        let path = format!("spec.{key}");
        match v.get_path(&path) {
            None => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(other) => {
                c.problem(
                    &path,
                    format!("must be a whole number of events, got {other}"),
                );
                None
            }
        }
    };
    let good = count(&mut c, "good");
    let total = count(&mut c, "total");
    let counts = match (good, total) {
        (Some(_), Some(0)) => {
            c.problem("spec.total", "must be above 0 (no events: no indicator)");
            None
        }
        (Some(g), Some(t)) if g > t => {
            c.problem("spec.good", format!("{g} is more than spec.total ({t})"));
            None
        }
        (Some(g), Some(t)) => Some((g, t)),
        (Some(_), None) => {
            c.problem("spec.total", "is missing (spec.good needs it)");
            None
        }
        (None, Some(_)) => {
            c.problem("spec.good", "is missing (spec.total needs it)");
            None
        }
        (None, None) => None,
    };
    let given = v.get_path("spec.percent");
    let percent = match (given, counts) {
        (None, Some((g, t))) => Some(g as f64 * 100.0 / t as f64),
        (None, None) if good.is_none() && total.is_none() => {
            c.problem(
                "spec.percent",
                "is missing (or give spec.good and spec.total)",
            );
            None
        }
        (None, None) => None,
        (Some(p), counts) => {
            let p = c.percent(Some(p), "spec.percent");
            if let (Some(p), Some((g, t))) = (p, counts) {
                let derived = g as f64 * 100.0 / t as f64;
                if (p - derived).abs() > 1e-6 {
                    c.problem(
                        "spec.percent",
                        format!("{p} disagrees with spec.good / spec.total ({derived})"),
                    );
                }
            }
            p
        }
    };
    let built = match (from, to, percent) {
        (Some(from), Some(to), Some(percent)) => Some(Indicator {
            labels,
            from,
            to,
            percent,
            counts,
        }),
        _ => None,
    };
    c.done(built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guide_objective() -> Value {
        json!({"apiVersion": "reliably.com/v1", "kind": "Objective",
            "metadata": {"labels": {"name": "99.9% of our requests are in the 2xx class",
                "service": "exploring-reliability-guide-service"}},
            "spec": {"indicatorSelector": {"category": "Availability",
                "indicator_name": "exploring-reliability-guide-service-availability-indicator"},
                "objectivePercent": 99.9, "window": "1h"}})
    }

    fn guide_indicator(percent: f64) -> Value {
        // As the guide's `requests.put` sends it: no apiVersion nor kind.
        json!({"metadata": {"labels": {"category": "Availability",
                "indicator_name": "exploring-reliability-guide-service-availability-indicator",
                "extra": "allowed"}},
            "spec": {"from": "2021-07-22T09:32:16Z", "to": "2021-07-22T09:32:16Z", "percent": percent}})
    }

    #[test]
    fn the_guides_objective_and_indicators_give_its_results() {
        let o = parse_objective(&guide_objective()).unwrap();
        assert_eq!(o.objective_percent, 99.9);
        assert_eq!(o.window_length, Duration::from_secs(3600));
        let healthy = parse_indicator(&guide_indicator(100.0)).unwrap();
        let unhealthy = parse_indicator(&guide_indicator(90.0)).unwrap();
        for i in [&healthy, &unhealthy] {
            assert!(selects(&o.indicator_selector, &i.labels));
        }
        let r1 = ObjectiveResult::of(&o, &healthy);
        let r2 = ObjectiveResult::of(&o, &unhealthy);
        assert!(r1.met() && !r2.met());
        assert!((r1.remaining_percent - 0.1).abs() < 1e-9);
        assert!((r2.remaining_percent + 9.9).abs() < 1e-9);
        assert!(is_met(std::slice::from_ref(&r1)));
        assert!(!is_met(&[r1.clone(), r2]));
        // No result is not met (the guide's warning case).
        assert!(!is_met(&[]));
        let camel = serde_json::to_value(&r1).unwrap();
        assert!(camel.get("remainingPercent").is_some(), "{camel}");
    }

    #[test]
    fn selection_needs_every_selector_label() {
        let l = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let labels = l(&[("a", "1"), ("b", "2")]);
        assert!(selects(&l(&[("a", "1")]), &labels));
        assert!(selects(&l(&[]), &labels));
        assert!(!selects(&l(&[("a", "2")]), &labels));
        assert!(!selects(&l(&[("a", "1"), ("c", "3")]), &labels));
    }

    #[test]
    fn counts_give_the_percent_and_must_agree_with_it() {
        let mut v = guide_indicator(0.0);
        v["spec"] = json!({"from": "2021-07-22T09:00:00Z", "to": "2021-07-22T10:00:00+01:00",
            "good": 999, "total": 1000});
        let i = parse_indicator(&v).unwrap();
        assert_eq!(i.counts, Some((999, 1000)));
        assert!((i.percent - 99.9).abs() < 1e-9);
        v["spec"]["percent"] = json!(50);
        let e = parse_indicator(&v).unwrap_err();
        assert_eq!(e[0].path, "spec.percent", "{e:?}");
    }

    /// Every bad input is refused with every problem, each naming its field.
    #[test]
    fn bad_documents_name_every_field_at_fault() {
        let cases: Vec<(Value, &[&str])> = vec![
            (json!([]), &["$"]),
            (
                json!({"kind": "Objective"}),
                &[
                    "metadata.labels",
                    "spec.indicatorSelector",
                    "spec.objectivePercent",
                    "spec.window",
                ],
            ),
            (
                json!({"apiVersion": "v2", "kind": "SLO", "metadata": {"labels": {"n": "x"}},
                "spec": {"indicatorSelector": {"c": "a"}, "objectivePercent": 101, "window": "1 day"}}),
                &["apiVersion", "kind", "spec.objectivePercent", "spec.window"],
            ),
            (
                json!({"metadata": {"labels": {"n": ["x"], "": "y"}},
                "spec": {"indicatorSelector": {}, "objectivePercent": "99", "window": 3600}}),
                &[
                    "metadata.labels.n",
                    "metadata.labels",
                    "spec.indicatorSelector",
                    "spec.objectivePercent",
                    "spec.window",
                ],
            ),
        ];
        for (doc, paths) in cases {
            let e = parse_objective(&doc).unwrap_err();
            let got: Vec<&str> = e.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(got, paths, "{doc}: {e:?}");
            assert!(e.iter().all(|p| !p.message.is_empty()));
        }
        let ind: Vec<(Value, &[&str])> = vec![
            (
                json!({"kind": "objective", "metadata": {"labels": {"a": "b"}},
                "spec": {"from": "2021-07-22T10:00:00Z", "to": "2021-07-22T09:00:00Z", "percent": -1}}),
                &["kind", "spec.from", "spec.percent"],
            ),
            (
                json!({"metadata": {"labels": {"a": "b"}}, "spec": {"from": "yesterday", "percent": 100}}),
                &["spec.from", "spec.to"],
            ),
            (
                json!({"metadata": {"labels": {"a": "b"}},
                "spec": {"from": "2021-07-22T09:00:00Z", "to": "2021-07-22T09:00:00Z", "good": 5, "total": 4}}),
                &["spec.good"],
            ),
            (
                json!({"metadata": {"labels": {"a": "b"}},
                "spec": {"from": "2021-07-22T09:00:00Z", "to": "2021-07-22T09:00:00Z", "good": 1.5, "total": 0}}),
                &["spec.good", "spec.good"],
            ),
            (
                json!({"metadata": {"labels": {"a": "b"}},
                "spec": {"from": "2021-07-22T09:00:00Z", "to": "2021-07-22T09:00:00Z"}}),
                &["spec.percent"],
            ),
        ];
        for (doc, paths) in ind {
            let e = parse_indicator(&doc).unwrap_err();
            let got: Vec<&str> = e.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(got, paths, "{doc}: {e:?}");
        }
    }
}
