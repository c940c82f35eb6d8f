//! What a report shows, extracted from run records.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::run::record::{RunEntry, RunRecord};

/// Where on the run an activity belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The hypothesis checked before the method.
    Before,
    /// The method's actions and probes.
    Method,
    /// A continuous hypothesis check during the method.
    During,
    /// The hypothesis checked after the method.
    After,
    /// A rollback.
    Rollback,
}

/// One bar of the timeline: seconds from the run's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Where it belongs.
    pub phase: Phase,
    /// The activity's name.
    pub name: String,
    /// Its start, in seconds after the run's start.
    pub offset: f64,
    /// How long it took, in seconds.
    pub duration: f64,
    /// Whether it failed or missed its tolerance.
    pub failed: bool,
}

/// Every entry with its phase, in the journal's order.
fn phased(record: &RunRecord) -> impl Iterator<Item = (Phase, &RunEntry)> {
    let s = &record.steady_states;
    s.before
        .iter()
        .flat_map(|h| h.probes.iter().map(|e| (Phase::Before, e)))
        .chain(record.run.iter().map(|e| (Phase::Method, e)))
        .chain(
            s.during
                .iter()
                .flat_map(|h| h.probes.iter().map(|e| (Phase::During, e))),
        )
        .chain(
            s.after
                .iter()
                .flat_map(|h| h.probes.iter().map(|e| (Phase::After, e))),
        )
        .chain(record.rollbacks.iter().map(|e| (Phase::Rollback, e)))
}

/// The run's activities and hypothesis checks on a time axis, in the
/// journal's order; an entry without a readable start is left out.
pub fn timeline(record: &RunRecord) -> Vec<Span> {
    let Some(origin) = record.started_at() else {
        return Vec::new();
    };
    let tagged = phased(record);
    tagged
        .filter_map(|(phase, e): (Phase, &RunEntry)| {
            let start = e.started_at()?;
            Some(Span {
                phase,
                name: e.name().to_string(),
                offset: (start - origin).num_milliseconds() as f64 / 1000.0,
                duration: e.duration,
                failed: e.failed() || e.tolerance_met == Some(false),
            })
        })
        .collect()
}

/// A probe's evidence for its tolerance, as the journal keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// Where the probe ran.
    pub phase: Phase,
    /// The probe's name.
    pub name: String,
    /// The tolerance's verdict (`None`: no tolerance).
    pub met: Option<bool>,
    /// The evidence's fields as text: `query`, `time`, `actual`, `expected`
    /// first when present, then the others in the journal's order.
    pub fields: Vec<(String, String)>,
}

/// The fields a reader looks for first.
const FIRST: [&str; 4] = ["query", "time", "actual", "expected"];

/// Every entry with evidence, in the timeline's order.
pub fn evidence(record: &RunRecord) -> Vec<Evidence> {
    phased(record)
        .filter_map(|(phase, e)| {
            let map = e.evidence.as_ref()?.as_object()?;
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let mut fields: Vec<(String, String)> = FIRST
                .iter()
                .filter_map(|k| map.get(*k).map(|v| (k.to_string(), text(v))))
                .collect();
            fields.extend(
                map.iter()
                    .filter(|(k, _)| !FIRST.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), text(v))),
            );
            Some(Evidence {
                phase,
                name: e.name().to_string(),
                met: e.tolerance_met,
                fields,
            })
        })
        .collect()
}

/// The experiment's declared `contributions` (Chaos Toolkit format: a map of
/// name to `high`, `medium`, `low` or `none`), aggregated over runs: for each
/// contribution, how many runs declared it at each level.
pub fn contributions<'a>(
    records: impl IntoIterator<Item = &'a RunRecord>,
) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for record in records {
        let Some(map) = record
            .experiment
            .get("contributions")
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (name, level) in map {
            let level = level.as_str().unwrap_or("none").to_string();
            *out.entry(name.clone())
                .or_default()
                .entry(level)
                .or_default() += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(contributions: Value) -> RunRecord {
        let mut r = RunRecord::from_json(
            r#"{"chaoslib-version":"1","platform":"p","node":"n","experiment":{"title":"t"},
            "start":"2026-01-01T00:00:00","status":"completed","deviated":false,
            "steady_states":{"before":null,"after":null,"during":[]},"run":[],"rollbacks":[],
            "end":"2026-01-01T00:00:01","duration":1.0}"#,
        )
        .expect("a journal");
        r.experiment["contributions"] = contributions;
        r
    }

    #[test]
    fn the_timeline_places_each_phase_after_the_start() {
        let entry = |name: &str, start: &str, tol: bool| {
            serde_json::json!({"activity": {"name": name}, "output": null, "start": start,
                "status": "succeeded", "end": start, "duration": 0.5, "tolerance_met": tol})
        };
        let mut r = record(Value::Null);
        r.steady_states.before = Some(
            serde_json::from_value(serde_json::json!({"steady_state_met": true,
                "probes": [entry("up", "2026-01-01T00:00:00", true)]}))
            .expect("a state"),
        );
        r.run = vec![
            serde_json::from_value(entry("kill", "2026-01-01T00:00:00.250", true))
                .expect("an entry"),
        ];
        r.rollbacks =
            vec![
                serde_json::from_value(entry("restart", "2026-01-01T00:00:00.750", false))
                    .expect("an entry"),
            ];
        let t = timeline(&r);
        let phases: Vec<_> = t
            .iter()
            .map(|s| (s.phase, s.name.as_str(), s.offset, s.failed))
            .collect();
        assert_eq!(
            phases,
            [
                (Phase::Before, "up", 0.0, false),
                (Phase::Method, "kill", 0.25, false),
                (Phase::Rollback, "restart", 0.75, true),
            ]
        );
    }

    #[test]
    fn evidence_puts_query_time_actual_expected_first() {
        let mut r = record(Value::Null);
        r.run = vec![serde_json::from_value(serde_json::json!({
            "activity": {"name": "p99"}, "output": 3, "start": "2026-01-01T00:00:00",
            "status": "succeeded", "end": "2026-01-01T00:00:01", "duration": 1.0,
            "tolerance_met": false,
            "evidence": {"verdict": "not_met", "expected": "< 0.5", "actual": 0.9,
                "query": "histogram_quantile(0.99, x)", "time": "2026-01-01T00:00:01Z"}
        }))
        .expect("an entry")];
        let ev = evidence(&r);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].phase, ev[0].name.as_str(), ev[0].met),
            (Phase::Method, "p99", Some(false))
        );
        let keys: Vec<_> = ev[0].fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["query", "time", "actual", "expected", "verdict"]);
        assert_eq!(ev[0].fields[2].1, "0.9");
        assert_eq!(ev[0].fields[0].1, "histogram_quantile(0.99, x)");
    }

    #[test]
    fn contributions_are_counted_per_level() {
        let a = record(serde_json::json!({"reliability": "high", "security": "none"}));
        let b = record(serde_json::json!({"reliability": "high"}));
        let c = record(serde_json::json!({"reliability": "low"}));
        let agg = contributions([&a, &b, &c]);
        assert_eq!(agg["reliability"]["high"], 2);
        assert_eq!(agg["reliability"]["low"], 1);
        assert_eq!(agg["security"]["none"], 1);
    }
}
