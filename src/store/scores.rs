//! What the run history says about a chaos programme: per-experiment scores (as the
//! Reliably tour describes them: a trend grade A–D over the last ten runs, a freshness
//! from 0 to 100) and programme metrics (seed 004: experiments per month, findings
//! per experiment, time to remediation). Pure functions over [`RunSummary`]s; the
//! store brings the runs, the CLI and the server show the results.
//!
//! Definitions (also in `docs/runs.md`):
//! - a run **held** when it completed and its steady state did not deviate; a
//!   **finding** is a run that deviated;
//! - the **grade** weighs the last ten runs linearly, newest heaviest (weights 1 to
//!   10): the weighted share of runs that held gives A (≥ 90 %), B (≥ 75 %), C (≥ 50 %)
//!   or D. An interrupted run counts half: it neither proved nor disproved anything;
//! - **freshness** is `100 × 0.5^(age / half-life)`, rounded, where age is the time
//!   since the last run ended and the half-life is 7 days unless given: 100 just after
//!   a run, 50 a half-life later, 0 after about seven;
//! - **time to remediation** runs from the end of an experiment's first deviated run
//!   (after its last held run) to the end of its next run that held; a finding with no
//!   such run yet is **open**.

use super::runs::RunSummary;
use crate::slo::Labels;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// How many runs the grade looks at.
pub const GRADE_RUNS: usize = 10;
/// The default half-life of freshness.
pub const HALF_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);

/// One experiment's scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// The experiment's reference.
    pub experiment_ref: String,
    /// Its title, as its newest run had it.
    pub title: String,
    /// The labels of its newest run.
    pub labels: Labels,
    /// A, B, C or D.
    pub grade: char,
    /// The weighted share of runs that held, 0 to 1.
    pub held: f64,
    /// The statuses of the runs graded, oldest first (`deviated` for a finding).
    pub trend: Vec<String>,
    /// When its newest run ended.
    pub last_run: DateTime<Utc>,
    /// 0 to 100.
    pub freshness: u8,
}

/// What a run contributes to the grade: 1 held, 0.5 interrupted, 0 otherwise.
fn worth(r: &RunSummary) -> f64 {
    match (r.status.as_str(), r.deviated) {
        ("completed", false) => 1.0,
        ("interrupted", false) => 0.5,
        _ => 0.0,
    }
}

/// A run's word in a trend.
fn word(r: &RunSummary) -> String {
    if r.deviated {
        "deviated".into()
    } else {
        r.status.clone()
    }
}

/// The grade of a weighted share.
pub fn grade(held: f64) -> char {
    match held {
        h if h >= 0.9 => 'A',
        h if h >= 0.75 => 'B',
        h if h >= 0.5 => 'C',
        _ => 'D',
    }
}

/// Freshness after `age`, with `half_life`.
pub fn freshness(age: chrono::Duration, half_life: Duration) -> u8 {
    let age = age.num_milliseconds().max(0) as f64 / 1000.0;
    let h = half_life.as_secs_f64().max(1.0);
    (100.0 * 0.5f64.powf(age / h)).round().clamp(0.0, 100.0) as u8
}

/// The scores of every experiment among `runs` (any order), best grade first, then
/// freshest.
pub fn scores(runs: &[RunSummary], now: DateTime<Utc>, half_life: Duration) -> Vec<Score> {
    let mut by: BTreeMap<&str, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs {
        by.entry(&r.experiment_ref).or_default().push(r);
    }
    let mut out: Vec<Score> = by
        .into_values()
        .map(|mut rs| {
            rs.sort_by_key(|r| (r.started, r.ended));
            let last: Vec<&RunSummary> = rs[rs.len().saturating_sub(GRADE_RUNS)..].to_vec();
            let (mut got, mut total) = (0.0, 0.0);
            for (i, r) in last.iter().enumerate() {
                let w = (i + 1) as f64;
                got += w * worth(r);
                total += w;
            }
            let held = if total > 0.0 { got / total } else { 0.0 };
            let newest = last[last.len() - 1];
            Score {
                experiment_ref: newest.experiment_ref.clone(),
                title: newest.title.clone(),
                labels: newest.labels.clone(),
                grade: grade(held),
                held,
                trend: last.iter().map(|r| word(r)).collect(),
                last_run: newest.ended,
                freshness: freshness(now - newest.ended, half_life),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        a.grade
            .cmp(&b.grade)
            .then(b.freshness.cmp(&a.freshness))
            .then(a.title.cmp(&b.title))
    });
    out
}

/// One calendar month (UTC) of the programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Month {
    /// `2026-11`.
    pub month: String,
    /// Runs started that month.
    pub runs: usize,
    /// Distinct experiments run that month.
    pub experiments: usize,
    /// Runs that deviated.
    pub findings: usize,
}

/// One experiment in the programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStats {
    /// Its reference.
    pub experiment_ref: String,
    /// Its title (newest run's).
    pub title: String,
    /// Its runs.
    pub runs: usize,
    /// Its deviated runs.
    pub findings: usize,
    /// Each remediation, in seconds, oldest first.
    pub remediations_s: Vec<f64>,
    /// Since when a finding is open (no run held since), if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_since: Option<DateTime<Utc>>,
}

/// Time to remediation across the programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remediation {
    /// Findings fixed (a held run followed).
    pub fixed: usize,
    /// Findings still open.
    pub open: usize,
    /// Mean, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_s: Option<f64>,
    /// Median, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_s: Option<f64>,
    /// Longest, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_s: Option<f64>,
}

/// The programme metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Runs counted.
    pub runs: usize,
    /// Distinct experiments.
    pub experiments: usize,
    /// Deviated runs.
    pub findings: usize,
    /// Findings per experiment.
    pub findings_per_experiment: f64,
    /// Per month, oldest first.
    pub months: Vec<Month>,
    /// Time to remediation.
    pub remediation: Remediation,
    /// Per experiment, most findings first.
    pub per_experiment: Vec<ExperimentStats>,
}

/// The programme metrics of `runs` (any order).
pub fn stats(runs: &[RunSummary]) -> Stats {
    let mut months: BTreeMap<String, (usize, std::collections::BTreeSet<&str>, usize)> =
        BTreeMap::new();
    let mut by: BTreeMap<&str, Vec<&RunSummary>> = BTreeMap::new();
    for r in runs {
        let m = format!("{:04}-{:02}", r.started.year(), r.started.month());
        let e = months.entry(m).or_default();
        e.0 += 1;
        e.1.insert(&r.experiment_ref);
        e.2 += usize::from(r.deviated);
        by.entry(&r.experiment_ref).or_default().push(r);
    }
    let mut per_experiment = Vec::new();
    let mut all_fixes = Vec::new();
    let mut open = 0;
    for rs in by.values_mut() {
        rs.sort_by_key(|r| (r.started, r.ended));
        let mut first_deviated: Option<DateTime<Utc>> = None;
        let mut fixes = Vec::new();
        for r in rs.iter() {
            if r.deviated {
                first_deviated.get_or_insert(r.ended);
            } else if r.status == "completed" {
                if let Some(d) = first_deviated.take() {
                    fixes.push((r.ended - d).num_milliseconds().max(0) as f64 / 1000.0);
                }
            }
        }
        open += usize::from(first_deviated.is_some());
        all_fixes.extend(fixes.iter().copied());
        let newest = rs[rs.len() - 1];
        per_experiment.push(ExperimentStats {
            experiment_ref: newest.experiment_ref.clone(),
            title: newest.title.clone(),
            runs: rs.len(),
            findings: rs.iter().filter(|r| r.deviated).count(),
            remediations_s: fixes,
            open_since: first_deviated,
        });
    }
    per_experiment.sort_by(|a, b| b.findings.cmp(&a.findings).then(a.title.cmp(&b.title)));
    let findings = runs.iter().filter(|r| r.deviated).count();
    let experiments = by.len();
    all_fixes.sort_by(f64::total_cmp);
    let n = all_fixes.len();
    let remediation = Remediation {
        fixed: n,
        open,
        mean_s: (n > 0).then(|| all_fixes.iter().sum::<f64>() / n as f64),
        median_s: (n > 0).then(|| {
            if n % 2 == 1 {
                all_fixes[n / 2]
            } else {
                (all_fixes[n / 2 - 1] + all_fixes[n / 2]) / 2.0
            }
        }),
        max_s: all_fixes.last().copied(),
    };
    Stats {
        runs: runs.len(),
        experiments,
        findings,
        findings_per_experiment: if experiments == 0 {
            0.0
        } else {
            findings as f64 / experiments as f64
        },
        months: months
            .into_iter()
            .map(|(month, (runs, exps, findings))| Month {
                month,
                runs,
                experiments: exps.len(),
                findings,
            })
            .collect(),
        remediation,
        per_experiment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run(exp: &str, day: u32, status: &str, deviated: bool) -> RunSummary {
        let started = Utc.with_ymd_and_hms(2026, 11, day, 10, 0, 0).unwrap();
        RunSummary {
            run_id: format!("{exp}-{day}"),
            title: format!("title {exp}"),
            experiment_ref: exp.into(),
            tags: vec![],
            labels: Labels::new(),
            started,
            ended: started + chrono::Duration::minutes(5),
            status: status.into(),
            deviated,
            trace_id: None,
            journal: None,
            host: None,
            alerts: vec![],
            slo: vec![],
        }
    }

    #[test]
    fn grades_weigh_recent_runs_most() {
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
        // Ten runs: the first five deviated, the last five held.
        let improving: Vec<_> = (1..=10).map(|d| run("a", d, "completed", d <= 5)).collect();
        let s = &scores(&improving, now, HALF_LIFE)[0];
        // Weights 6..10 held: 40 / 55.
        assert!((s.held - 40.0 / 55.0).abs() < 1e-9, "{}", s.held);
        assert_eq!(s.grade, 'C');
        assert_eq!(s.trend.len(), 10);
        assert_eq!(s.trend[0], "deviated");
        let worsening: Vec<_> = (1..=10).map(|d| run("b", d, "completed", d > 5)).collect();
        assert_eq!(scores(&worsening, now, HALF_LIFE)[0].grade, 'D');
        // Only the last ten count.
        let mut long: Vec<_> = (1..=5).map(|d| run("c", d, "failed", false)).collect();
        long.extend((6..=15).map(|d| run("c", d, "completed", false)));
        let s = &scores(&long, now, HALF_LIFE)[0];
        assert_eq!((s.grade, s.trend.len()), ('A', 10));
        // An interrupted run counts half.
        let s = &scores(&[run("d", 1, "interrupted", false)], now, HALF_LIFE)[0];
        assert_eq!((s.held, s.grade), (0.5, 'C'));
    }

    #[test]
    fn freshness_halves_every_half_life() {
        let h = HALF_LIFE;
        assert_eq!(freshness(chrono::Duration::zero(), h), 100);
        assert_eq!(freshness(chrono::Duration::days(7), h), 50);
        assert_eq!(freshness(chrono::Duration::days(14), h), 25);
        assert_eq!(freshness(chrono::Duration::days(70), h), 0);
        assert_eq!(freshness(chrono::Duration::days(-1), h), 100);
    }

    #[test]
    fn stats_count_months_findings_and_remediations() {
        let mut runs = vec![
            run("a", 1, "completed", false),
            run("a", 2, "completed", true),  // finding, first of two
            run("a", 3, "failed", true),     // same finding still open
            run("a", 5, "completed", false), // fixed: day 2 end -> day 5 end = 3 days
            run("b", 4, "completed", true),  // open
        ];
        let mut dec = run("c", 1, "completed", false);
        dec.started = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        dec.ended = dec.started;
        runs.push(dec);
        let s = stats(&runs);
        assert_eq!((s.runs, s.experiments, s.findings), (6, 3, 3));
        assert!((s.findings_per_experiment - 1.0).abs() < 1e-9);
        assert_eq!(s.months.len(), 2);
        assert_eq!(
            (
                s.months[0].runs,
                s.months[0].experiments,
                s.months[0].findings
            ),
            (5, 2, 3)
        );
        assert_eq!(s.remediation.fixed, 1);
        assert_eq!(s.remediation.open, 1);
        assert_eq!(s.remediation.median_s, Some(3.0 * 86400.0));
        let b = s
            .per_experiment
            .iter()
            .find(|e| e.experiment_ref == "b")
            .unwrap();
        assert!(b.open_since.is_some());
        assert!(stats(&[]).months.is_empty());
    }
}
