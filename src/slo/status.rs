//! An objective's status over a window, from the indicators judged against it: the
//! actual percent, met or not, and the error budget left. Pure: the store hands in the
//! samples, this decides; no sample is "inconclusive", never "met".

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One indicator's contribution to a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Its percent of good events.
    pub percent: f64,
    /// Its good and total counts, when it had them.
    pub counts: Option<(u64, u64)>,
}

/// The verdict over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The actual percent is at or above the target.
    Met,
    /// It is below.
    NotMet,
    /// Nothing to judge on (no indicator in the window).
    Inconclusive,
}

/// An objective's status over `[from, to]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloStatus {
    /// The verdict.
    pub verdict: Verdict,
    /// `verdict == Met`: `false` when inconclusive too (never guess "met").
    pub met: bool,
    /// Good events over all events, when every indicator had counts; otherwise the
    /// mean of the indicators' percents. `None` with no indicator.
    pub actual_percent: Option<f64>,
    /// The objective's target.
    pub target_percent: f64,
    /// The share of the window's error budget still unspent, in percent (negative
    /// when overspent): `100 × (1 − (100 − actual) / (100 − target))`.
    pub error_budget_remaining_percent: Option<f64>,
    /// How many indicators the window holds.
    pub indicators: usize,
    /// Good and total events, when every indicator had counts.
    pub good: Option<u64>,
    /// See `good`.
    pub total: Option<u64>,
    /// The window's start.
    pub from: DateTime<Utc>,
    /// The window's end.
    pub to: DateTime<Utc>,
    /// Why the verdict is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The status of an objective with `target` percent over `[from, to]`, given the
/// samples of the indicators in it.
pub fn status(
    target: f64,
    samples: &[Sample],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> SloStatus {
    let mut out = SloStatus {
        verdict: Verdict::Inconclusive,
        met: false,
        actual_percent: None,
        target_percent: target,
        error_budget_remaining_percent: None,
        indicators: samples.len(),
        good: None,
        total: None,
        from,
        to,
        reason: None,
    };
    if samples.is_empty() {
        out.reason = Some("no indicator in the window".into());
        return out;
    }
    let counted: Option<(u64, u64)> = samples.iter().try_fold((0u64, 0u64), |(g, t), s| {
        s.counts
            .map(|(sg, st)| (g.saturating_add(sg), t.saturating_add(st)))
    });
    let actual = match counted {
        Some((g, t)) if t > 0 => {
            out.good = Some(g);
            out.total = Some(t);
            g as f64 * 100.0 / t as f64
        }
        _ => samples.iter().map(|s| s.percent).sum::<f64>() / samples.len() as f64,
    };
    out.actual_percent = Some(actual);
    out.error_budget_remaining_percent = Some(budget_remaining(target, actual));
    out.met = actual >= target;
    out.verdict = if out.met {
        Verdict::Met
    } else {
        Verdict::NotMet
    };
    out
}

/// The error budget left, in percent of the budget: a 99.9 % target with 99.95 %
/// actual has 50 % left; a 100 % target has a budget of nothing, so it is all left
/// when met and all spent (-100 %) otherwise.
pub fn budget_remaining(target: f64, actual: f64) -> f64 {
    let budget = 100.0 - target;
    if budget <= 0.0 {
        return if actual >= target { 100.0 } else { -100.0 };
    }
    100.0 * (1.0 - (100.0 - actual) / budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn no_indicator_is_inconclusive_never_met() {
        let s = status(
            99.9,
            &[],
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T01:00:00Z"),
        );
        assert_eq!(s.verdict, Verdict::Inconclusive);
        assert!(!s.met);
        assert_eq!(s.actual_percent, None);
        assert_eq!(s.reason.as_deref(), Some("no indicator in the window"));
    }

    #[test]
    fn counts_are_summed_not_averaged() {
        // 99 of 100, then 0 of 1: by events 99/101, not (99 + 0) / 2.
        let samples = [
            Sample {
                percent: 99.0,
                counts: Some((99, 100)),
            },
            Sample {
                percent: 0.0,
                counts: Some((0, 1)),
            },
        ];
        let s = status(
            90.0,
            &samples,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T01:00:00Z"),
        );
        let actual = s.actual_percent.unwrap();
        assert!((actual - 9900.0 / 101.0).abs() < 1e-9, "{actual}");
        assert_eq!((s.good, s.total), (Some(99), Some(101)));
        assert!(s.met);
    }

    #[test]
    fn without_counts_the_percents_are_averaged() {
        let samples = [
            Sample {
                percent: 100.0,
                counts: None,
            },
            Sample {
                percent: 90.0,
                counts: Some((9, 10)),
            },
        ];
        let s = status(
            99.9,
            &samples,
            t("2026-01-01T00:00:00Z"),
            t("2026-01-01T01:00:00Z"),
        );
        assert_eq!(s.actual_percent, Some(95.0));
        assert_eq!(s.verdict, Verdict::NotMet);
        assert_eq!(s.good, None);
    }

    #[test]
    fn budget_is_a_share_of_what_the_target_allows() {
        assert!((budget_remaining(99.9, 99.95) - 50.0).abs() < 1e-6);
        assert!((budget_remaining(99.0, 98.0) + 100.0).abs() < 1e-6);
        assert_eq!(budget_remaining(100.0, 100.0), 100.0);
        assert_eq!(budget_remaining(100.0, 99.0), -100.0);
        assert!((budget_remaining(90.0, 100.0) - 100.0).abs() < 1e-9);
    }
}
