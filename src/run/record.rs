//! The run record: the typed model of a finished run, which is also the Chaos
//! Toolkit's `journal.json`, key for key and in the same order.
//!
//! A run produces one [`RunRecord`]; [`super::journal`] writes it to disk, and later
//! readers (run history, reports, correlation) read journal files back into it, ours
//! and the real Chaos Toolkit's alike. The format stays as lenient as the Chaos
//! Toolkit's on the way in: the experiment and each activity stay as written
//! (JSON values), unknown top-level keys are kept, an entry cut short without a
//! status is read as such.

use super::Status;
use crate::redact::{mask_secret_block, Redactor};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// How one activity execution ended, as the journal spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityStatus {
    /// The provider returned.
    Succeeded,
    /// The provider failed (the entry carries an `exception`).
    Failed,
    /// A control skipped the activity.
    Skipped,
    /// No status at all: the Chaos Toolkit leaves one out when the activity was cut
    /// short (a signal, an unexpected error). faultline never writes it; it exists so
    /// such a journal reads back as it is, and the key stays absent when written.
    #[default]
    #[serde(skip)]
    Unfinished,
}

impl ActivityStatus {
    /// The journal's spelling (`""` for [`ActivityStatus::Unfinished`], which has none).
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::Succeeded => "succeeded",
            ActivityStatus::Failed => "failed",
            ActivityStatus::Skipped => "skipped",
            ActivityStatus::Unfinished => "",
        }
    }

    fn is_unfinished(&self) -> bool {
        *self == ActivityStatus::Unfinished
    }
}

impl std::fmt::Display for ActivityStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One executed activity, as the journal records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    /// The activity (a ref replaced by its target).
    pub activity: Value,
    /// Its output (null when none).
    #[serde(default)]
    pub output: Value,
    /// Start, ISO 8601 UTC.
    pub start: String,
    /// How it ended.
    #[serde(default, skip_serializing_if = "ActivityStatus::is_unfinished")]
    pub status: ActivityStatus,
    /// Why it failed, as chaoslib formats exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<Vec<String>>,
    /// End, ISO 8601 UTC.
    #[serde(default)]
    pub end: String,
    /// Seconds, pauses excluded.
    #[serde(default)]
    pub duration: f64,
    /// Hypothesis probes: whether the tolerance was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_met: Option<bool>,
    /// faultline's addition for checked tolerances (hypothesis and safeguard probes):
    /// `{verdict: met|not_met|inconclusive, expected, actual, query?, time?, reason}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Value>,
}

impl RunEntry {
    /// True when the activity failed.
    pub fn failed(&self) -> bool {
        self.status == ActivityStatus::Failed
    }

    /// The activity's name.
    pub fn name(&self) -> &str {
        self.activity
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// When it started (`None` when the text is not a timestamp).
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.start)
    }

    /// When it ended (`None` when the text is not a timestamp).
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.end)
    }

    fn redact(&mut self, r: &Redactor) {
        self.activity = r.value(&self.activity);
        self.output = r.value(&self.output);
        redact_text(&mut self.start, r);
        redact_text(&mut self.end, r);
        for line in self.exception.iter_mut().flatten() {
            redact_text(line, r);
        }
    }
}

/// One hypothesis check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HypothesisState {
    /// Whether every probe met its tolerance. The Chaos Toolkit leaves it null when
    /// the check was cut short before a verdict and treats that as not met (`not
    /// state["steady_state_met"]`); it is read as `false` here for the same reason.
    #[serde(deserialize_with = "null_as_false")]
    pub steady_state_met: bool,
    /// The probes that ran, in order.
    #[serde(default)]
    pub probes: Vec<RunEntry>,
}

fn null_as_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}

/// The hypothesis checks of a run: before the method, after it, and during it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SteadyStates {
    /// Before the method (`None`: not checked).
    #[serde(default)]
    pub before: Option<HypothesisState>,
    /// After the method (`None`: not checked).
    #[serde(default)]
    pub after: Option<HypothesisState>,
    /// The continuous checks, in order.
    #[serde(default)]
    pub during: Vec<HypothesisState>,
}

/// faultline's own entry in the journal's `extensions`: what the Chaos Toolkit's
/// keys do not say.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FaultlineExtension {
    /// The faultline version that ran.
    pub version: String,
    /// The run's id (a UUID), also on every span and log line.
    pub run_id: String,
    /// The run's trace id, when spans were recorded.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// `--hypothesis-strategy`, as spelled on the command line.
    pub hypothesis_strategy: String,
    /// `--rollback-strategy`, as spelled on the command line.
    pub rollback_strategy: String,
    /// What interrupted the run, when it was.
    #[serde(default)]
    pub interrupted_by: Option<String>,
    /// Milliseconds from the interrupt (a safeguard's trip, the kill switch, a
    /// signal) to the rollbacks starting, when the run was interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_latency_ms: Option<f64>,
    /// The run's Python worker, when the run needed one: its interpreter, how many
    /// were started, and each one killed mid-call (with when and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_worker: Option<Value>,
    /// What controls found during the run (`crate::control::Findings::journal`), each
    /// under its own key after faultline's (`alerts`: the `faultline.alerts`
    /// control's list). Read back, every key this model does not name lands here.
    #[serde(flatten)]
    pub contributed: Map<String, Value>,
}

impl FaultlineExtension {
    /// The extension's `name`.
    pub const NAME: &'static str = "faultline";

    /// The keys faultline itself writes: a control may not contribute one of them.
    pub const KEYS: [&'static str; 9] = [
        "name",
        "version",
        "run_id",
        "trace_id",
        "hypothesis_strategy",
        "rollback_strategy",
        "interrupted_by",
        "abort_latency_ms",
        "python_worker",
    ];
}

impl Serialize for FaultlineExtension {
    // By hand: `name` comes first and is not a field anyone sets; the controls'
    // contributions follow faultline's own keys. A map, so their keys need not be
    // static (JSON writes a struct and a map alike).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut st = s.serialize_map(None)?;
        st.serialize_entry("name", Self::NAME)?;
        st.serialize_entry("version", &self.version)?;
        st.serialize_entry("run_id", &self.run_id)?;
        st.serialize_entry("trace_id", &self.trace_id)?;
        st.serialize_entry("hypothesis_strategy", &self.hypothesis_strategy)?;
        st.serialize_entry("rollback_strategy", &self.rollback_strategy)?;
        st.serialize_entry("interrupted_by", &self.interrupted_by)?;
        if let Some(ms) = self.abort_latency_ms {
            st.serialize_entry("abort_latency_ms", &ms)?;
        }
        if let Some(w) = &self.python_worker {
            st.serialize_entry("python_worker", w)?;
        }
        for (k, v) in &self.contributed {
            if !Self::KEYS.contains(&k.as_str()) {
                st.serialize_entry(k, v)?;
            }
        }
        st.end()
    }
}

/// One entry of the journal's `extensions`.
// A journal has one or two extensions: boxing faultline's would save nothing worth
// the indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Extension {
    /// faultline's own (`"name": "faultline"`).
    Faultline(FaultlineExtension),
    /// Anyone else's, kept as written.
    Other(Value),
}

impl Serialize for Extension {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Extension::Faultline(f) => f.serialize(s),
            Extension::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Extension {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.get("name").and_then(Value::as_str) != Some(FaultlineExtension::NAME) {
            return Ok(Extension::Other(v));
        }
        serde_json::from_value(v)
            .map(|mut f: FaultlineExtension| {
                // `name` is the extension's tag, not a contribution.
                f.contributed.remove("name");
                Extension::Faultline(f)
            })
            .map_err(|e| serde::de::Error::custom(format!("extension `faultline`: {e}")))
    }
}

/// A finished run: the Chaos Toolkit journal, typed. Serialised, it is the journal
/// on disk (same keys, same order); deserialised, it reads any journal back,
/// faultline's or the Chaos Toolkit's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The version of the runner (chaoslib's, or faultline's in a faultline journal).
    #[serde(rename = "chaoslib-version")]
    pub chaoslib_version: String,
    /// The platform, as Python's `platform.platform()` words it.
    pub platform: String,
    /// The host name.
    pub node: String,
    /// The experiment as it ran (its title substituted), its secrets masked.
    pub experiment: Value,
    /// Start, ISO 8601 UTC.
    pub start: String,
    /// Final status.
    pub status: Status,
    /// Whether the steady state deviated.
    pub deviated: bool,
    /// The hypothesis checks.
    #[serde(default)]
    pub steady_states: SteadyStates,
    /// The method's entries.
    #[serde(default)]
    pub run: Vec<RunEntry>,
    /// The rollbacks' entries.
    #[serde(default)]
    pub rollbacks: Vec<RunEntry>,
    /// End, ISO 8601 UTC.
    pub end: String,
    /// Seconds.
    pub duration: f64,
    /// faultline's extension first (a Chaos Toolkit journal has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<Extension>,
    /// Keys this model does not know (a later Chaos Toolkit's), kept as read.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Everything a run hands over to make its record.
pub struct RecordParts<'a> {
    /// The experiment as loaded (its title substituted).
    pub experiment: Value,
    /// Start time.
    pub start: String,
    /// End time.
    pub end: String,
    /// Seconds.
    pub duration: f64,
    /// Final status.
    pub status: Status,
    /// Whether the steady state deviated.
    pub deviated: bool,
    /// Hypothesis before the method.
    pub before: Option<&'a HypothesisState>,
    /// Hypothesis after the method.
    pub after: Option<&'a HypothesisState>,
    /// Continuous checks.
    pub during: &'a [HypothesisState],
    /// Method entries.
    pub run: &'a [RunEntry],
    /// Rollback entries.
    pub rollbacks: &'a [RunEntry],
    /// faultline's extension (run id, strategies...).
    pub extension: FaultlineExtension,
}

impl RunRecord {
    /// The record of a run, secrets masked: the experiment's `secrets` block, and
    /// every secret value wherever it appears in text (the experiment, activities,
    /// outputs, exceptions, timestamps, host, ids). What is left unmasked is
    /// faultline's own vocabulary: key names, statuses, strategies, booleans and
    /// durations.
    pub fn build(p: RecordParts<'_>, redactor: &Redactor) -> RunRecord {
        let mut experiment = p.experiment;
        mask_secret_block(&mut experiment);
        let mut record = RunRecord {
            chaoslib_version: env!("CARGO_PKG_VERSION").to_string(),
            platform: super::journal::platform(),
            node: super::journal::node(),
            experiment,
            start: p.start,
            status: p.status,
            deviated: p.deviated,
            steady_states: SteadyStates {
                before: p.before.cloned(),
                after: p.after.cloned(),
                during: p.during.to_vec(),
            },
            run: p.run.to_vec(),
            rollbacks: p.rollbacks.to_vec(),
            end: p.end,
            duration: p.duration,
            extensions: vec![Extension::Faultline(p.extension)],
            other: Map::new(),
        };
        record.redact(redactor);
        record
    }

    /// Read a journal (faultline's or the Chaos Toolkit's) from its JSON text.
    pub fn from_json(text: &str) -> serde_json::Result<RunRecord> {
        serde_json::from_str(text)
    }

    /// The journal's JSON text, as written to disk (indented; the file adds a final
    /// newline).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// Final status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the steady state deviated.
    pub fn deviated(&self) -> bool {
        self.deviated
    }

    /// faultline's extension, when the journal is faultline's.
    pub fn faultline(&self) -> Option<&FaultlineExtension> {
        self.extensions.iter().find_map(|e| match e {
            Extension::Faultline(f) => Some(f),
            Extension::Other(_) => None,
        })
    }

    /// The run id (`None` for a Chaos Toolkit journal, which has none).
    pub fn run_id(&self) -> Option<&str> {
        self.faultline().map(|f| f.run_id.as_str())
    }

    /// The trace id, when spans were recorded.
    pub fn trace_id(&self) -> Option<&str> {
        self.faultline().and_then(|f| f.trace_id.as_deref())
    }

    /// The experiment's title.
    pub fn title(&self) -> &str {
        self.experiment
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// When the run started (`None` when the text is not a timestamp).
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.start)
    }

    /// When the run ended (`None` when the text is not a timestamp).
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.end)
    }

    /// Every activity that ran, in the order the journal lists them: the
    /// hypothesis before, the method, the continuous checks, the hypothesis after,
    /// the rollbacks.
    pub fn activities(&self) -> impl Iterator<Item = &RunEntry> {
        let s = &self.steady_states;
        s.before
            .iter()
            .flat_map(|h| &h.probes)
            .chain(&self.run)
            .chain(s.during.iter().flat_map(|h| &h.probes))
            .chain(s.after.iter().flat_map(|h| &h.probes))
            .chain(&self.rollbacks)
    }

    fn redact(&mut self, r: &Redactor) {
        if r.is_empty() {
            return;
        }
        for s in [
            &mut self.chaoslib_version,
            &mut self.platform,
            &mut self.node,
            &mut self.start,
            &mut self.end,
        ] {
            redact_text(s, r);
        }
        self.experiment = r.value(&self.experiment);
        let s = &mut self.steady_states;
        let hypotheses = s.before.iter_mut().chain(&mut s.after).chain(&mut s.during);
        let entries = hypotheses
            .flat_map(|h| &mut h.probes)
            .chain(&mut self.run)
            .chain(&mut self.rollbacks);
        for e in entries {
            e.redact(r);
        }
        for x in &mut self.extensions {
            match x {
                Extension::Faultline(f) => {
                    redact_text(&mut f.version, r);
                    redact_text(&mut f.run_id, r);
                    for s in [&mut f.trace_id, &mut f.interrupted_by]
                        .into_iter()
                        .flatten()
                    {
                        redact_text(s, r);
                    }
                    for v in f.contributed.values_mut() {
                        *v = r.value(v);
                    }
                }
                Extension::Other(v) => *v = r.value(v),
            }
        }
        for v in self.other.values_mut() {
            *v = r.value(v);
        }
    }
}

fn redact_text(s: &mut String, r: &Redactor) {
    if let std::borrow::Cow::Owned(masked) = r.text(s) {
        *s = masked;
    }
}

/// A journal timestamp: RFC 3339 (`2026-11-21T19:05:17.811526+00:00`, as faultline
/// and chaoslib 1.x write it), or without an offset, taken as UTC (older chaoslib's
/// `utcnow().isoformat()`).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn extension() -> FaultlineExtension {
        FaultlineExtension {
            version: "0.1.0".into(),
            run_id: "run-1".into(),
            trace_id: None,
            hypothesis_strategy: "default".into(),
            rollback_strategy: "always".into(),
            interrupted_by: None,
            abort_latency_ms: None,
            python_worker: None,
            contributed: Map::new(),
        }
    }

    #[test]
    fn controls_contributions_follow_faultlines_keys_masked_and_read_back() {
        let mut ext = extension();
        ext.contributed.insert(
            "alerts".into(),
            json!([{"name": "A", "labels": {"k": "v4lue"}}]),
        );
        // A key faultline writes itself is never written twice.
        ext.contributed.insert("run_id".into(), json!("forged"));
        let record = RunRecord::build(
            RecordParts {
                experiment: json!({"title": "t"}),
                start: "s".into(),
                end: "e".into(),
                duration: 1.0,
                status: Status::Completed,
                deviated: false,
                before: None,
                after: None,
                during: &[],
                run: &[],
                rollbacks: &[],
                extension: ext,
            },
            &Redactor::new(["v4lue".to_string()]),
        );
        let text = record.to_json().unwrap();
        let j: Value = serde_json::from_str(&text).unwrap();
        let e = &j["extensions"][0];
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("name"));
        assert_eq!(keys.last().map(|k| k.as_str()), Some("alerts"));
        assert_eq!(e["run_id"], "run-1");
        assert_eq!(e["alerts"][0]["labels"]["k"], "***");
        let back = RunRecord::from_json(&text).unwrap();
        let f = back.faultline().unwrap();
        assert_eq!(f.contributed.keys().collect::<Vec<_>>(), ["alerts"]);
        assert_eq!(back.to_json().unwrap(), text, "written out unchanged");
    }

    #[test]
    fn journal_keys_are_in_the_chaos_toolkit_order() {
        let j = serde_json::to_value(RunRecord::build(
            RecordParts {
                experiment: json!({"title": "t", "secrets": {"s": {"k": "v4lue"}}}),
                start: "s".into(),
                end: "e".into(),
                duration: 1.0,
                status: Status::Completed,
                deviated: false,
                before: None,
                after: None,
                during: &[],
                run: &[],
                rollbacks: &[],
                extension: extension(),
            },
            &Redactor::new(["v4lue".to_string()]),
        ))
        .unwrap();
        let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "chaoslib-version",
                "platform",
                "node",
                "experiment",
                "start",
                "status",
                "deviated",
                "steady_states",
                "run",
                "rollbacks",
                "end",
                "duration",
                "extensions"
            ]
        );
        assert_eq!(j["experiment"]["secrets"]["s"]["k"], "***");
        let ext: Vec<&String> = j["extensions"][0].as_object().unwrap().keys().collect();
        assert_eq!(
            ext,
            [
                "name",
                "version",
                "run_id",
                "trace_id",
                "hypothesis_strategy",
                "rollback_strategy",
                "interrupted_by"
            ]
        );
        assert_eq!(j["extensions"][0]["name"], "faultline");
        assert_eq!(j["extensions"][0]["trace_id"], Value::Null);
        assert_eq!(
            j["steady_states"],
            json!({"before": null, "after": null, "during": []})
        );
    }

    fn entry(name: &str, status: ActivityStatus, output: Value) -> RunEntry {
        RunEntry {
            activity: json!({"type": "probe", "name": name}),
            output,
            start: "2026-11-21T19:05:17.811526+00:00".into(),
            status,
            exception: (status == ActivityStatus::Failed)
                .then(|| vec!["chaoslib.exceptions.ActivityFailed: boom s3cret\n".into()]),
            end: "2026-11-21T19:05:18.000000+00:00".into(),
            duration: 0.188474,
            tolerance_met: None,
            evidence: None,
        }
    }

    #[test]
    fn secrets_are_masked_in_every_text_of_the_record() {
        let probe = RunEntry {
            tolerance_met: Some(true),
            evidence: None,
            ..entry(
                "p s3cret",
                ActivityStatus::Succeeded,
                json!({"s3cret": "s3cret"}),
            )
        };
        let hypothesis = HypothesisState {
            steady_state_met: true,
            probes: vec![probe],
        };
        let failed = entry("a", ActivityStatus::Failed, json!(["x s3cret"]));
        let mut ext = extension();
        ext.interrupted_by = Some("signal s3cret".into());
        let record = RunRecord::build(
            RecordParts {
                experiment: json!({"title": "t s3cret"}),
                start: "s".into(),
                end: "e".into(),
                duration: 1.0,
                status: Status::Interrupted,
                deviated: true,
                before: Some(&hypothesis),
                after: Some(&hypothesis),
                during: std::slice::from_ref(&hypothesis),
                run: std::slice::from_ref(&failed),
                rollbacks: std::slice::from_ref(&failed),
                extension: ext,
            },
            &Redactor::new(["s3cret".to_string()]),
        );
        let text = record.to_json().unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        // Each hypothesis probe 3 times (name, output key and value) in before, after
        // and during; each failed entry twice (output, exception) in run and
        // rollbacks; the title; the interruption.
        assert_eq!(text.matches("***").count(), 3 * 3 + 2 * 2 + 1 + 1, "{text}");
        assert_eq!(record.title(), "t ***");
        // Without secrets, nothing changes.
        let plain = RunRecord::build(
            RecordParts {
                experiment: json!({"title": "t s3cret"}),
                start: "s".into(),
                end: "e".into(),
                duration: 1.0,
                status: Status::Completed,
                deviated: false,
                before: None,
                after: None,
                during: &[],
                run: std::slice::from_ref(&failed),
                rollbacks: &[],
                extension: extension(),
            },
            &Redactor::new(Vec::<String>::new()),
        );
        assert_eq!(plain.run[0], failed);
        assert_eq!(plain.title(), "t s3cret");
    }

    #[test]
    fn a_record_reads_back_what_it_wrote() {
        let hypothesis = HypothesisState {
            steady_state_met: false,
            probes: vec![RunEntry {
                tolerance_met: Some(false),
                evidence: None,
                ..entry("p", ActivityStatus::Succeeded, json!({"status": 1}))
            }],
        };
        let run = [
            entry("a", ActivityStatus::Failed, Value::Null),
            entry("b", ActivityStatus::Skipped, Value::Null),
        ];
        let mut ext = extension();
        ext.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        let record = RunRecord::build(
            RecordParts {
                experiment: json!({"title": "t", "method": [], "zz": 1, "aa": 2}),
                start: "2026-11-21T19:05:17.811526+00:00".into(),
                end: "2026-11-21T19:05:19.811526+00:00".into(),
                duration: 2.000_001,
                status: Status::Completed,
                deviated: true,
                before: None,
                after: Some(&hypothesis),
                during: std::slice::from_ref(&hypothesis),
                run: &run,
                rollbacks: &[],
                extension: ext,
            },
            &Redactor::new(Vec::<String>::new()),
        );
        let text = record.to_json().unwrap();
        let back = RunRecord::from_json(&text).unwrap();
        assert_eq!(back, record);
        assert_eq!(back.to_json().unwrap(), text);
        assert_eq!(back.run_id(), Some("run-1"));
        assert_eq!(back.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(back.status(), Status::Completed);
        assert!(back.deviated());
        let names: Vec<&str> = back.activities().map(RunEntry::name).collect();
        assert_eq!(names, ["a", "b", "p", "p"]);
        let (start, end) = (back.started_at().unwrap(), back.ended_at().unwrap());
        assert_eq!((end - start).num_seconds(), 2);
        assert_eq!(start.timestamp_subsec_micros(), 811_526);
    }

    #[test]
    fn timestamps_with_and_without_an_offset_and_bad_ones() {
        let utc = parse_time("2026-11-21T19:05:17.811526+00:00").unwrap();
        assert_eq!(parse_time("2026-11-21T19:05:17.811526"), Some(utc));
        assert_eq!(
            parse_time("2026-11-21T20:05:17.811526+01:00"),
            Some(utc),
            "an offset is honoured"
        );
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn a_journal_that_is_not_a_journal_is_an_error_naming_what_is_wrong() {
        let e = RunRecord::from_json(r#"{"status": "completed"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
        let e = RunRecord::from_json(
            r#"{"chaoslib-version": "1", "platform": "", "node": "", "experiment": {},
                "start": "", "status": "sideways", "deviated": false, "end": "", "duration": 0}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("sideways"), "{e}");
    }

    /// Journals written by the real Chaos Toolkit (chaostoolkit 1.19.0,
    /// chaostoolkit-lib 1.44.0) for three of the compatibility experiments: see
    /// `tests/compat/README.md`.
    const CTK_JOURNALS: [(&str, &str); 3] = [
        (
            "sigterm-interrupted",
            include_str!("../../tests/compat/journals/sigterm-interrupted.json"),
        ),
        (
            "method-activity-timeout",
            include_str!("../../tests/compat/journals/method-activity-timeout.json"),
        ),
        (
            "after-hypothesis-deviated",
            include_str!("../../tests/compat/journals/after-hypothesis-deviated.json"),
        ),
    ];

    #[test]
    fn chaos_toolkit_journals_read_back_and_write_out_unchanged() {
        for (case, text) in CTK_JOURNALS {
            let record = RunRecord::from_json(text).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(record.to_json().unwrap(), text, "{case}");
            // Every activity the file holds is in the record, in the file's order.
            let raw: Value = serde_json::from_str(text).unwrap();
            let listed = |v: &Value| -> Vec<String> {
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["activity"]["name"].as_str().unwrap().to_string())
                    .collect()
            };
            let ss = &raw["steady_states"];
            let mut expected = listed(&ss["before"]["probes"]);
            expected.extend(listed(&raw["run"]));
            expected.extend(listed(&ss["after"]["probes"]));
            expected.extend(listed(&raw["rollbacks"]));
            let names: Vec<&str> = record.activities().map(RunEntry::name).collect();
            assert_eq!(names, expected, "{case}");
            assert_eq!(record.run_id(), None, "{case}: a CTK journal has no run id");
            assert!(record.ended_at().unwrap() > record.started_at().unwrap());
            assert_eq!(record.title(), format!("compat: {case}"));
        }
        let read = |i: usize| RunRecord::from_json(CTK_JOURNALS[i].1).unwrap();

        // Cut short by SIGTERM: the action has no status, and stays without one.
        let r = read(0);
        assert_eq!((r.status(), r.deviated()), (Status::Interrupted, false));
        assert_eq!(r.run[0].name(), "send-sigterm-to-runner");
        assert_eq!(r.run[0].status, ActivityStatus::Unfinished);
        assert!(r.steady_states.before.as_ref().unwrap().steady_state_met);

        // A timed-out action: failed, with chaoslib's exception lines.
        let r = read(1);
        assert_eq!((r.status(), r.deviated()), (Status::Completed, false));
        let slow = &r.run[0];
        assert!(slow.failed(), "{slow:?}");
        let last = slow.exception.as_ref().unwrap().last().unwrap();
        assert!(
            last.starts_with("chaoslib.exceptions.ActivityFailed: "),
            "{last}"
        );
        assert_eq!(r.run[1].status, ActivityStatus::Succeeded);

        // The hypothesis after the method missed: deviated.
        let r = read(2);
        assert_eq!((r.status(), r.deviated()), (Status::Completed, true));
        let after = r.steady_states.after.as_ref().unwrap();
        assert!(!after.steady_state_met);
        assert_eq!(after.probes[0].tolerance_met, Some(false));
        assert_eq!(r.rollbacks[0].status, ActivityStatus::Succeeded);
    }

    #[test]
    fn a_hypothesis_cut_short_without_a_verdict_reads_as_not_met() {
        // chaoslib leaves `steady_state_met` null when interrupted before a verdict,
        // and itself treats that as not met.
        let h: HypothesisState =
            serde_json::from_str(r#"{"steady_state_met": null, "probes": []}"#).unwrap();
        assert!(!h.steady_state_met);
        let e =
            serde_json::from_str::<HypothesisState>(r#"{"steady_state_met": "yes"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
    }
}
