//! What a report shows, extracted from run records.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::run::record::{RunEntry, RunRecord};

/// A run's verdict, in one word: what a reader of a table of runs looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Completed and the steady state held.
    Held,
    /// The steady state deviated.
    Deviated,
    /// The run failed (an activity or a control broke it).
    Failed,
    /// Aborted (a control, a safeguard or the steady state before the method).
    Aborted,
    /// Interrupted (a signal, the kill switch, a safeguard).
    Interrupted,
}

impl Verdict {
    /// Its word, also the CSS class of its badge.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Deviated => "deviated",
            Verdict::Failed => "failed",
            Verdict::Aborted => "aborted",
            Verdict::Interrupted => "interrupted",
        }
    }

    /// The verdict of a record: its status, and for a completed run whether the
    /// steady state deviated.
    pub fn of(record: &RunRecord) -> Verdict {
        match record.status.as_str() {
            "failed" => Verdict::Failed,
            "aborted" => Verdict::Aborted,
            "interrupted" => Verdict::Interrupted,
            _ if record.deviated => Verdict::Deviated,
            _ => Verdict::Held,
        }
    }
}

/// What a report says of a run before any detail.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The experiment's title.
    pub title: String,
    /// faultline's run id (`None`: a Chaos Toolkit journal).
    pub run_id: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// The journal's status.
    pub status: String,
    /// When it started and ended.
    pub started: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended: Option<DateTime<Utc>>,
    /// Seconds.
    pub duration: f64,
    /// The machine it ran on.
    pub node: String,
    /// The trace id, when spans were recorded.
    pub trace_id: Option<String>,
    /// The experiment's tags.
    pub tags: Vec<String>,
    /// Whether the steady state held before the method (`None`: not checked).
    pub before: Option<bool>,
    /// Whether it held after.
    pub after: Option<bool>,
    /// How many continuous checks ran during the method, and how many failed.
    pub during: (usize, usize),
    /// What interrupted the run (`safeguard`, `kill_switch`, `signal`).
    pub interrupted_by: Option<String>,
    /// Interrupt to rollbacks, milliseconds.
    pub abort_latency_ms: Option<f64>,
    /// Every failed activity: its name and the last line of its exception.
    pub failures: Vec<(String, String)>,
}

/// The summary of a record.
pub fn summary(record: &RunRecord) -> Summary {
    let ext = record.faultline();
    let ss = &record.steady_states;
    let during_failed = ss.during.iter().filter(|h| !h.steady_state_met).count();
    Summary {
        title: record.title().to_string(),
        run_id: record.run_id().map(str::to_string),
        verdict: Verdict::of(record),
        status: record.status.as_str().to_string(),
        started: record.started_at(),
        ended: record.ended_at(),
        duration: record.duration,
        node: record.node.clone(),
        trace_id: record.trace_id().map(str::to_string),
        tags: crate::experiment::labels::tags(&record.experiment),
        before: ss.before.as_ref().map(|h| h.steady_state_met),
        after: ss.after.as_ref().map(|h| h.steady_state_met),
        during: (ss.during.len(), during_failed),
        interrupted_by: ext.and_then(|f| f.interrupted_by.clone()),
        abort_latency_ms: ext.and_then(|f| f.abort_latency_ms),
        failures: phased(record)
            .filter(|(_, e)| e.failed())
            .map(|(_, e)| (e.name().to_string(), failure_line(e)))
            .collect(),
    }
}

/// The last line of an entry's exception (the message), or empty.
pub fn failure_line(e: &RunEntry) -> String {
    e.exception
        .iter()
        .flatten()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string()
}

/// The trace link of a run: the template with `{trace_id}` and `{run_id}`
/// replaced; none without a template or a trace id.
pub fn trace_link(
    template: Option<&str>,
    trace_id: Option<&str>,
    run_id: Option<&str>,
) -> Option<String> {
    let (t, id) = (template?, trace_id?);
    Some(
        t.replace("{trace_id}", id)
            .replace("{run_id}", run_id.unwrap_or_default()),
    )
}

/// The verdicts of the run's SLO probes: every entry whose output judged an
/// objective (the `slo` provider's output), with its phase.
pub fn slo_verdicts(r: &RunRecord) -> Vec<Value> {
    phased(r)
        .filter_map(|(phase, e)| {
            let o = &e.output;
            let (objective, verdict) = (o.get("objective")?, o.get("verdict")?);
            let mut v = json!({"activity": e.name(), "phase": phase.as_str(),
                "objective": objective, "verdict": verdict});
            for k in [
                "sli",
                "target",
                "burn_rate",
                "error_budget_remaining",
                "budget_consumed_by_run",
                "source",
                "reason",
            ] {
                if let Some(x) = o.get(k).filter(|x| !x.is_null()) {
                    v[k] = x.clone();
                }
            }
            Some(v)
        })
        .collect()
}

/// An objective's labels as one line (`name` first when it has one).
pub fn objective_text(objective: &Value) -> String {
    match objective {
        Value::Object(m) => {
            let mut parts: Vec<String> = Vec::new();
            if let Some(n) = m.get("name").and_then(Value::as_str) {
                parts.push(n.to_string());
            }
            parts.extend(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "name")
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            v.as_str().map_or_else(|| v.to_string(), str::to_string)
                        )
                    }),
            );
            parts.join(", ")
        }
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The alerts seen during the run (what the alerts control contributed to the
/// journal's extension); entries that don't read as alerts are left out.
pub fn alerts(r: &RunRecord) -> Vec<crate::alerts::Alert> {
    r.faultline()
        .and_then(|f| f.contributed.get("alerts"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

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

impl Phase {
    /// Its name, as the run history spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::Method => "method",
            Phase::During => "during",
            Phase::After => "after",
            Phase::Rollback => "rollbacks",
        }
    }
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

/// How much of an output a report shows as the actual value.
const OUTPUT_CLIP: usize = 300;

/// At most `max` characters of `text`, an ellipsis marking the cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The fields a reader looks for first.
const FIRST: [&str; 4] = ["query", "time", "actual", "expected"];

/// Every entry with evidence, in the timeline's order.
pub fn evidence(record: &RunRecord) -> Vec<Evidence> {
    phased(record)
        .filter_map(|(phase, e)| {
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let Some(map) = e.evidence.as_ref().and_then(Value::as_object) else {
                // A journal without evidence (the Chaos Toolkit's, an older one):
                // the declared tolerance against the output.
                let met = e.tolerance_met?;
                let mut fields = vec![("actual".to_string(), clip(&text(&e.output), OUTPUT_CLIP))];
                if let Some(t) = e.activity.get("tolerance") {
                    fields.push(("expected".to_string(), text(t)));
                }
                return Some(Evidence {
                    phase,
                    name: e.name().to_string(),
                    met: Some(met),
                    fields,
                });
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
