//! The run history: one [`RunSummary`] per run, kept by every store kind, and the
//! queries on it ([`RunFilter`]: lists newest first; overlaps for correlation).
//!
//! A summary is small and self-contained (the journal stays where it was written; the
//! summary names it), stored whole as JSON beside the columns the queries use: org,
//! start, end, status, experiment reference, and one row per target label in a label
//! index, so `--label service=x` is an index lookup, not a scan.
//!
//! Overlap queries (`started <= to AND ended >= from`) cannot use one B-tree range for
//! both bounds; the stores keep each organisation's longest run, so a run overlapping
//! `[from, to]` started within `[from - longest, to]`: one bounded index range.

use crate::slo::Labels;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StoreError;

/// How far before an incident a run may have overlapped it, unless told.
pub const DEFAULT_WINDOW: &str = "30m";

/// The statuses a run ends with.
pub const STATUSES: [&str; 4] = ["completed", "failed", "aborted", "interrupted"];

/// One run, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The experiment's title (substituted, secrets masked).
    pub title: String,
    /// The experiment's stable reference (a hash of its canonical form).
    pub experiment_ref: String,
    /// The experiment's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the run targets (`service`, …).
    #[serde(default)]
    pub labels: Labels,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub ended: DateTime<Utc>,
    /// `completed`, `failed`, `aborted` or `interrupted`.
    pub status: String,
    /// Whether the steady state deviated.
    pub deviated: bool,
    /// The run's trace id (32 hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Where its journal was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// The machine it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The alerts seen firing during the run (the alerts control's record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<Value>,
    /// The SLO verdicts of its `slo` probes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<Value>,
}

impl RunSummary {
    /// Check what a client sent (the server's input, a spooled file): every problem
    /// named by its field.
    pub fn check(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Invalid(m));
        if self.run_id.trim().is_empty() || self.run_id.len() > 128 {
            return bad("runId: give 1 to 128 characters".into());
        }
        if self.run_id.chars().any(|c| c.is_control() || c == '/') {
            return bad(format!(
                "runId {:?}: no '/' or control characters",
                self.run_id
            ));
        }
        if !STATUSES.contains(&self.status.as_str()) {
            return bad(format!(
                "status {:?}: expected one of {}",
                self.status,
                STATUSES.join(", ")
            ));
        }
        if self.ended < self.started {
            return bad(format!(
                "ended {} is before started {}",
                self.ended.to_rfc3339(),
                self.started.to_rfc3339()
            ));
        }
        if self.experiment_ref.is_empty() || self.experiment_ref.len() > 128 {
            return bad("experimentRef: give 1 to 128 characters".into());
        }
        for k in self.labels.keys() {
            if !crate::slo::model::valid_label_key(k) {
                return bad(format!("labels.{k}: not a label name"));
            }
        }
        Ok(())
    }

    /// The run's length.
    pub fn duration(&self) -> chrono::Duration {
        self.ended - self.started
    }
}

/// How many runs ended with a status (and deviated or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCount {
    /// The status.
    pub status: String,
    /// Deviated.
    pub deviated: bool,
    /// How many.
    pub count: u64,
}

/// The newest `n` runs of each experiment of `org`: `?1` org, `?2` n.
pub(super) const LATEST_SQL: &str = "SELECT record FROM (
        SELECT r.record, ROW_NUMBER() OVER (PARTITION BY r.experiment_ref ORDER BY r.started_us DESC, r.seq DESC) AS n
        FROM runs r WHERE r.org = ?1) AS ranked
    WHERE n <= ?2";

/// Counts by status: `?1` org.
pub(super) const COUNTS_SQL: &str =
    "SELECT status, deviated, COUNT(*) FROM runs WHERE org = ?1 GROUP BY status, deviated ORDER BY status, deviated";

/// Which runs a list wants. Newest first by start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Started at or before.
    pub until: Option<DateTime<Utc>>,
    /// This status only.
    pub status: Option<String>,
    /// Carrying every one of these labels.
    pub labels: Labels,
    /// Runs of this experiment only.
    pub experiment_ref: Option<String>,
    /// At most this many (0: all).
    pub limit: usize,
}

impl RunFilter {
    /// Check the status.
    pub fn check(&self) -> Result<(), StoreError> {
        if let Some(s) = &self.status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(StoreError::Invalid(format!(
                    "status {s:?}: expected one of {}",
                    STATUSES.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Runs that overlapped `[from, to]` (the incident's window), newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlap {
    /// The window's start.
    pub from: DateTime<Utc>,
    /// The window's end.
    pub to: DateTime<Utc>,
    /// Carrying every one of these labels.
    pub labels: Labels,
    /// At most this many (0: all).
    pub limit: usize,
}

/// A time as people and dashboards write it, every form named in the error:
/// RFC 3339 (`2026-12-05T10:00:00Z`, `+01:00`), a date and time without a zone read as
/// UTC (`2026-12-05 10:00`, `2026-12-05T10:00:00`), a date (`2026-12-05`, midnight UTC),
/// `now`, a duration ago (`30m`, `-30m`, `2h ago`), or Unix time in seconds or
/// milliseconds (Grafana's `${__from}`: 13 digits).
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let t = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a time: write RFC 3339 (2026-12-05T10:00:00Z), a UTC date and time (2026-12-05 10:00), now, a duration ago (30m, 2h ago) or Unix seconds/milliseconds"
        )
    };
    if t.is_empty() {
        return Err("the time is empty: write RFC 3339 (2026-12-05T10:00:00Z), now, or 30m for 30 minutes ago".into());
    }
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        let n: i64 = t.parse().map_err(|_| bad())?;
        let at = if t.len() >= 12 {
            Utc.timestamp_millis_opt(n).single()
        } else {
            Utc.timestamp_opt(n, 0).single()
        };
        return at.ok_or_else(bad);
    }
    let ago = t
        .strip_suffix("ago")
        .map(str::trim)
        .or_else(|| t.strip_prefix('-'))
        .unwrap_or(t);
    let d = crate::slo::parse_window(ago).map_err(|_| bad())?;
    let d = chrono::Duration::from_std(d).map_err(|_| bad())?;
    now.checked_sub_signed(d).ok_or_else(bad)
}

/// A duration as `--window`/`--since` take it (`30m`, `2h`, `30d`, `PT1H`).
pub fn parse_duration(what: &str, text: &str) -> Result<chrono::Duration, String> {
    let d = crate::slo::parse_window(text).map_err(|e| format!("{what}: {e}"))?;
    chrono::Duration::from_std(d).map_err(|_| format!("{what}: {text:?} is too long"))
}

/// A SQL `WHERE` tail for the filters both SQL stores share, with its parameters in
/// order: `?N`-numbered for SQLite, `$N` for PostgreSQL (`dollar`). Values are never
/// put into the text.
pub(super) struct Where {
    pub sql: String,
    pub params: Vec<Param>,
    dollar: bool,
}

/// A parameter of [`Where`].
#[derive(Debug, Clone)]
pub(super) enum Param {
    Int(i64),
    Text(String),
}

impl Where {
    pub fn new(dollar: bool, org: &str) -> Where {
        let mut w = Where {
            sql: String::new(),
            params: Vec::new(),
            dollar,
        };
        let p = w.push(Param::Text(org.to_string()));
        w.sql = format!("r.org = {p}");
        w
    }

    /// Add a parameter; its placeholder.
    pub fn push(&mut self, p: Param) -> String {
        self.params.push(p);
        if self.dollar {
            format!("${}", self.params.len())
        } else {
            format!("?{}", self.params.len())
        }
    }

    pub fn and(&mut self, clause: &str, p: Param) {
        let ph = self.push(p);
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace('?', &ph));
    }

    /// Every label as an index lookup.
    pub fn labels(&mut self, org: &str, labels: &Labels) {
        for (k, v) in labels {
            let (o, k, v) = (
                self.push(Param::Text(org.to_string())),
                self.push(Param::Text(k.clone())),
                self.push(Param::Text(v.clone())),
            );
            self.sql.push_str(&format!(
                " AND r.seq IN (SELECT l.seq FROM run_labels l WHERE l.org = {o} AND l.key = {k} AND l.value = {v})"
            ));
        }
    }

    /// The list filter.
    pub fn filter(mut self, org: &str, f: &RunFilter) -> Where {
        if let Some(s) = f.since {
            self.and("r.started_us >= ?", Param::Int(s.timestamp_micros()));
        }
        if let Some(u) = f.until {
            self.and("r.started_us <= ?", Param::Int(u.timestamp_micros()));
        }
        if let Some(s) = &f.status {
            self.and("r.status = ?", Param::Text(s.clone()));
        }
        if let Some(e) = &f.experiment_ref {
            self.and("r.experiment_ref = ?", Param::Text(e.clone()));
        }
        self.labels(org, &f.labels);
        self
    }

    /// The overlap filter, given the organisation's longest run.
    pub fn overlap(mut self, org: &str, o: &Overlap, longest_us: i64) -> Where {
        let from = o.from.timestamp_micros();
        let to = o.to.timestamp_micros();
        self.and(
            "r.started_us >= ?",
            Param::Int(from.saturating_sub(longest_us)),
        );
        self.and("r.started_us <= ?", Param::Int(to));
        self.and("r.ended_us >= ?", Param::Int(from));
        self.labels(org, &o.labels);
        self
    }

    /// ` ORDER BY … LIMIT n` for a limit (0: none).
    pub fn order(limit: usize) -> String {
        let mut s = " ORDER BY r.started_us DESC, r.seq DESC".to_string();
        if limit > 0 {
            s.push_str(&format!(" LIMIT {limit}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn summary(id: &str) -> RunSummary {
        let t = Utc::now();
        RunSummary {
            run_id: id.into(),
            title: "t".into(),
            experiment_ref: "ref".into(),
            tags: vec![],
            labels: Labels::new(),
            started: t,
            ended: t,
            status: "completed".into(),
            deviated: false,
            trace_id: None,
            journal: None,
            host: None,
            alerts: vec![],
            slo: vec![],
        }
    }

    #[test]
    fn summaries_are_checked_field_by_field() {
        assert!(summary("a").check().is_ok());
        let mut s = summary("a/b");
        assert!(s.check().unwrap_err().to_string().contains("runId"));
        s = summary("a");
        s.status = "done".into();
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("status \"done\""));
        s = summary("a");
        s.ended = s.started - chrono::Duration::seconds(1);
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("before started"));
        s = summary("a");
        s.labels.insert("bad-key".into(), "x".into());
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("labels.bad-key"));
    }

    #[test]
    fn times_are_read_in_every_form_people_write() {
        use chrono::TimeZone;
        let now = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let at = |t: &str| parse_time(t, now).unwrap();
        assert_eq!(at("now"), now);
        assert_eq!(at("2026-12-05T11:00:00Z"), now - chrono::Duration::hours(1));
        assert_eq!(
            at("2026-12-05T12:00:00+01:00"),
            now - chrono::Duration::hours(1)
        );
        assert_eq!(at("2026-12-05 11:30"), now - chrono::Duration::minutes(30));
        assert_eq!(at("2026-12-05"), now - chrono::Duration::hours(12));
        assert_eq!(at("30m"), now - chrono::Duration::minutes(30));
        assert_eq!(at("-2h"), now - chrono::Duration::hours(2));
        assert_eq!(at("2h ago"), now - chrono::Duration::hours(2));
        assert_eq!(at(&now.timestamp().to_string()), now);
        assert_eq!(at(&now.timestamp_millis().to_string()), now);
        for bad in ["", "yesterday", "2026-13-01", "12:00"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
        assert!(parse_time("soon", now)
            .unwrap_err()
            .contains("\"soon\" is not a time"));
        assert!(parse_duration("--window", "5 minutes")
            .unwrap_err()
            .starts_with("--window"));
    }

    #[test]
    fn where_clauses_number_their_parameters() {
        let f = RunFilter {
            status: Some("failed".into()),
            labels: [("service".to_string(), "api".to_string())].into(),
            ..RunFilter::default()
        };
        let w = Where::new(true, "o").filter("o", &f);
        assert_eq!(w.params.len(), 5);
        assert!(w.sql.contains("r.status = $2"), "{}", w.sql);
        assert!(w.sql.contains("l.value = $5"), "{}", w.sql);
        let w = Where::new(false, "o").filter("o", &f);
        assert!(w.sql.contains("r.status = ?2"), "{}", w.sql);
        assert_eq!(Where::order(0), " ORDER BY r.started_us DESC, r.seq DESC");
        assert!(Where::order(5).ends_with("LIMIT 5"));
    }
}
