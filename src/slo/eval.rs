//! An objective evaluated from event counts, pure: the SLI over a window, its verdict
//! (met, not met, or inconclusive with the reason, never a guessed "met"), the burn
//! rate, the error budget left, the share of the period's budget a run consumed
//! against a pre-run baseline, and the multi-window burn-rate gate
//! (`../shared/reference/slo.md`). The `slo` provider measures the numbers; this
//! decides what they mean.

use super::status::Verdict;
use serde::Serialize;
use std::time::Duration;

/// A window shorter than this many scrape intervals is too noisy to judge.
pub const MIN_SCRAPES: f64 = 4.0;

/// What was measured over one window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    /// Good events (`None` for an empty answer: no series at all).
    pub good: Option<f64>,
    /// Every event (`None` for an empty answer).
    pub total: Option<f64>,
    /// Counter resets seen in the window (`None`: not measurable, e.g. a rate query).
    pub resets: Option<f64>,
    /// Scrape coverage, 0 to 1 (`None`: not measurable).
    pub coverage: Option<f64>,
}

/// How strictly to judge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// The target ratio, 0 to 1 (`0.999`).
    pub target: f64,
    /// The fewest events worth judging (`None`: `1 / (1 - target)`, the count at which
    /// one bad event is allowed).
    pub min_events: Option<f64>,
    /// The window's length.
    pub window: Duration,
    /// The scrape interval.
    pub scrape_interval: Duration,
    /// The least scrape coverage accepted (0 to 1).
    pub min_coverage: f64,
}

/// The verdict over one window, with every number it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// good / total, when there were events.
    pub sli: Option<f64>,
    /// The target ratio.
    pub target: f64,
    /// Met, and only when the verdict is `met`.
    pub met: bool,
    /// met | not_met | inconclusive.
    pub verdict: Verdict,
    /// Why it is inconclusive or not met.
    pub reason: Option<String>,
    /// Every event counted.
    pub events: f64,
    /// Bad events (total - good).
    pub bad_events: f64,
    /// error ratio / (1 - target).
    pub burn_rate: Option<f64>,
    /// 1 - error ratio / (1 - target), as if this window were the period.
    pub error_budget_remaining: Option<f64>,
}

/// The fewest events worth judging at `target` by default: `1 / (1 - target)`.
pub fn default_min_events(target: f64) -> f64 {
    let allowed = 1.0 - target;
    if allowed > 0.0 {
        (1.0 / allowed).ceil()
    } else {
        f64::INFINITY
    }
}

fn inconclusive(target: f64, reason: String) -> Evaluation {
    Evaluation {
        sli: None,
        target,
        met: false,
        verdict: Verdict::Inconclusive,
        reason: Some(reason),
        events: 0.0,
        bad_events: 0.0,
        burn_rate: None,
        error_budget_remaining: None,
    }
}

/// Judge an objective over one window. Inconclusive (in this order): an unmeasurable
/// number (NaN, infinite, negative), a window shorter than [`MIN_SCRAPES`] scrape
/// intervals, counter resets, scrape coverage below `min_coverage`, no series or no
/// events, fewer events than the minimum.
pub fn evaluate(c: &Counts, r: &Rules) -> Evaluation {
    let t = r.target;
    let bad_number = |v: Option<f64>| v.is_some_and(|v| !v.is_finite() || v < -1e-9);
    if bad_number(c.good) || bad_number(c.total) {
        return inconclusive(
            t,
            format!(
                "the counts are not measurable (good {:?}, total {:?})",
                c.good, c.total
            ),
        );
    }
    let si = r.scrape_interval.as_secs_f64();
    if si > 0.0 && r.window.as_secs_f64() < MIN_SCRAPES * si {
        return inconclusive(
            t,
            format!(
                "the window ({:.3}s) is shorter than {MIN_SCRAPES} scrape intervals ({si}s each)",
                r.window.as_secs_f64()
            ),
        );
    }
    if let Some(n) = c.resets.filter(|n| n.is_nan() || *n > 0.0) {
        return inconclusive(
            t,
            format!("{n} counter reset(s) in the window: the counts cannot be trusted"),
        );
    }
    if let Some(cov) = c.coverage {
        if cov.is_nan() || cov < r.min_coverage {
            return inconclusive(
                t,
                format!(
                    "scrape gaps: coverage {cov:.3} is below {} (missed or failed scrapes)",
                    r.min_coverage
                ),
            );
        }
    }
    let (Some(good), Some(total)) = (c.good, c.total) else {
        return inconclusive(t, "no data: the queries returned no series".into());
    };
    if total <= 0.0 {
        return inconclusive(t, "no traffic: no events in the window (0/0)".into());
    }
    if good > total * (1.0 + 1e-9) {
        return inconclusive(
            t,
            format!("good events ({good}) exceed the total ({total}): the queries disagree"),
        );
    }
    let min = r.min_events.unwrap_or_else(|| default_min_events(t));
    let bad = (total - good).max(0.0);
    let sli = good / total;
    let error_ratio = bad / total;
    let (burn_rate, remaining) = burn(error_ratio, t);
    if total < min {
        return Evaluation {
            sli: Some(sli),
            met: false,
            verdict: Verdict::Inconclusive,
            reason: Some(format!(
                "too few events: {total} < {min} (at target {t} fewer events cannot show a single allowed error)"
            )),
            events: total,
            bad_events: bad,
            burn_rate,
            error_budget_remaining: remaining,
            target: t,
        };
    }
    let met = sli >= t;
    Evaluation {
        sli: Some(sli),
        target: t,
        met,
        verdict: if met { Verdict::Met } else { Verdict::NotMet },
        reason: (!met).then(|| format!("the SLI {sli} is below the target {t}")),
        events: total,
        bad_events: bad,
        burn_rate,
        error_budget_remaining: remaining,
    }
}

/// Burn rate (`error ratio / (1 - target)`) and the budget left
/// (`1 - error ratio / (1 - target)`); none for a target of 1 (no budget).
pub fn burn(error_ratio: f64, target: f64) -> (Option<f64>, Option<f64>) {
    let allowed = 1.0 - target;
    if allowed <= 0.0 || !error_ratio.is_finite() {
        return (None, None);
    }
    let rate = error_ratio / allowed;
    (Some(rate), Some(1.0 - rate))
}

/// One multi-window burn-rate rule: alert when the error ratio over BOTH windows is
/// above `factor × (1 - target)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateResult {
    /// The long window's error ratio.
    pub long_error_ratio: Option<f64>,
    /// The short window's error ratio.
    pub short_error_ratio: Option<f64>,
    /// The threshold: `factor × (1 - target)`.
    pub threshold: f64,
    /// Whether it fires (both windows above the threshold).
    pub tripped: bool,
    /// met (not tripped) | not_met (tripped) | inconclusive (a window without events).
    pub verdict: Verdict,
    /// Why.
    pub reason: String,
}

/// Judge a multi-window burn-rate rule from the error ratios of both windows (`None`
/// when a window had no events or no data).
pub fn gate(long: Option<f64>, short: Option<f64>, factor: f64, target: f64) -> GateResult {
    let threshold = factor * (1.0 - target);
    let (verdict, tripped, reason) = match (
        long.filter(|v| v.is_finite()),
        short.filter(|v| v.is_finite()),
    ) {
        (Some(l), Some(s)) => {
            let tripped = l > threshold && s > threshold;
            (
                if tripped { Verdict::NotMet } else { Verdict::Met },
                tripped,
                format!(
                    "error ratios {l} (long) and {s} (short) against {threshold} ({factor} × (1 - {target})): {}",
                    if tripped { "both above, the gate trips" } else { "not both above" }
                ),
            )
        }
        _ => (
            Verdict::Inconclusive,
            false,
            "a window has no events or no data: the burn rate is unknown".into(),
        ),
    };
    GateResult {
        long_error_ratio: long,
        short_error_ratio: short,
        threshold,
        tripped,
        verdict,
        reason,
    }
}

/// The share of the period's error budget a run consumed, against a baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunBudget {
    /// The baseline error ratio (before the run).
    pub baseline_error_ratio: f64,
    /// Bad events during the run beyond the baseline: `bad_run - baseline × total_run`
    /// (at least 0).
    pub excess_bad_events: f64,
    /// The period's budget in events: `(1 - target) × expected events in the period`.
    pub period_budget_events: f64,
    /// `excess / period budget`, 0 to 1 (or more).
    pub consumed: f64,
}

/// Excess bad events of a run over its baseline, as a share of the period's budget:
/// `(bad_run - baseline_ratio × total_run) / ((1 - target) × period_events)`. `Err`
/// with the reason when it cannot be known (no baseline traffic, no budget).
pub fn run_budget(
    bad_run: f64,
    total_run: f64,
    baseline_error_ratio: Option<f64>,
    period_events: f64,
    target: f64,
) -> Result<RunBudget, String> {
    let Some(base) = baseline_error_ratio.filter(|v| v.is_finite()) else {
        return Err("no baseline: no events in the baseline window".into());
    };
    if !(bad_run.is_finite() && total_run.is_finite()) || total_run <= 0.0 {
        return Err("no traffic during the run".into());
    }
    let budget = (1.0 - target) * period_events;
    if !budget.is_finite() || budget <= 0.0 {
        return Err(format!(
            "the period's error budget is {budget} events (target {target}, {period_events} events expected)"
        ));
    }
    let excess = (bad_run - base * total_run).max(0.0);
    Ok(RunBudget {
        baseline_error_ratio: base,
        excess_bad_events: excess,
        period_budget_events: budget,
        consumed: excess / budget,
    })
}

/// The events expected over the objective's period from the run's event rate:
/// `total_run / run_seconds × period_seconds`.
pub fn period_events(total_run: f64, run: Duration, period: Duration) -> f64 {
    let secs = run.as_secs_f64();
    if secs <= 0.0 {
        return f64::NAN;
    }
    total_run / secs * period.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(target: f64) -> Rules {
        Rules {
            target,
            min_events: None,
            window: Duration::from_secs(60),
            scrape_interval: Duration::from_secs(1),
            min_coverage: 0.9,
        }
    }

    fn counts(good: f64, total: f64) -> Counts {
        Counts {
            good: Some(good),
            total: Some(total),
            resets: Some(0.0),
            coverage: Some(1.0),
        }
    }

    #[test]
    fn met_and_not_met() {
        let e = evaluate(&counts(999.0, 1000.0), &rules(0.99));
        assert_eq!(e.verdict, Verdict::Met);
        assert!(e.met);
        assert!((e.burn_rate.unwrap() - 0.1).abs() < 1e-9);
        assert!((e.error_budget_remaining.unwrap() - 0.9).abs() < 1e-9);
        let e = evaluate(&counts(900.0, 1000.0), &rules(0.99));
        assert_eq!(e.verdict, Verdict::NotMet);
        assert!(!e.met);
        assert_eq!(e.bad_events, 100.0);
        assert!((e.burn_rate.unwrap() - 10.0).abs() < 1e-9);
        assert!(e.error_budget_remaining.unwrap() < 0.0);
    }

    #[test]
    fn no_traffic_is_inconclusive_never_met() {
        let e = evaluate(&counts(0.0, 0.0), &rules(0.99));
        assert_eq!(e.verdict, Verdict::Inconclusive);
        assert!(!e.met);
        assert!(e.reason.unwrap().contains("no traffic"));
        let e = evaluate(&Counts::default(), &rules(0.99));
        assert_eq!(e.verdict, Verdict::Inconclusive);
        assert!(e.reason.unwrap().contains("no series"));
        let e = evaluate(&counts(f64::NAN, f64::NAN), &rules(0.99));
        assert_eq!(e.verdict, Verdict::Inconclusive);
        let e = evaluate(&counts(1.0, f64::INFINITY), &rules(0.99));
        assert_eq!(e.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn too_few_events_are_inconclusive() {
        assert_eq!(default_min_events(0.99), 100.0);
        assert_eq!(default_min_events(0.999), 1000.0);
        assert_eq!(default_min_events(1.0), f64::INFINITY);
        let e = evaluate(&counts(50.0, 50.0), &rules(0.99));
        assert_eq!(e.verdict, Verdict::Inconclusive);
        assert!(e.reason.unwrap().contains("too few events"));
        let mut r = rules(0.99);
        r.min_events = Some(10.0);
        assert_eq!(evaluate(&counts(50.0, 50.0), &r).verdict, Verdict::Met);
    }

    #[test]
    fn resets_gaps_and_short_windows_are_inconclusive() {
        let mut c = counts(999.0, 1000.0);
        c.resets = Some(1.0);
        let e = evaluate(&c, &rules(0.99));
        assert_eq!(e.verdict, Verdict::Inconclusive);
        assert!(e.reason.unwrap().contains("reset"));
        let mut c = counts(999.0, 1000.0);
        c.coverage = Some(0.5);
        let e = evaluate(&c, &rules(0.99));
        assert!(e.reason.unwrap().contains("scrape gaps"));
        let mut r = rules(0.99);
        r.window = Duration::from_secs(3);
        let e = evaluate(&counts(999.0, 1000.0), &r);
        assert!(e.reason.unwrap().contains("shorter than"));
        // Unmeasurable data-quality numbers are accepted as unknown.
        let c = Counts {
            resets: None,
            coverage: None,
            ..counts(999.0, 1000.0)
        };
        assert_eq!(evaluate(&c, &rules(0.99)).verdict, Verdict::Met);
        // Good above total: the queries disagree.
        let e = evaluate(
            &counts(11.0, 10.0),
            &Rules {
                min_events: Some(1.0),
                ..rules(0.5)
            },
        );
        assert_eq!(e.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn the_multi_window_gate_needs_both_windows() {
        // 14.4 × 0.001 = 0.0144
        let g = gate(Some(0.02), Some(0.03), 14.4, 0.999);
        assert!(g.tripped);
        assert_eq!(g.verdict, Verdict::NotMet);
        let g = gate(Some(0.02), Some(0.001), 14.4, 0.999);
        assert!(!g.tripped);
        assert_eq!(g.verdict, Verdict::Met);
        let g = gate(Some(0.001), Some(0.5), 14.4, 0.999);
        assert!(!g.tripped);
        let g = gate(None, Some(0.5), 14.4, 0.999);
        assert_eq!(g.verdict, Verdict::Inconclusive);
        let g = gate(Some(f64::NAN), Some(0.5), 14.4, 0.999);
        assert_eq!(g.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn run_budget_subtracts_the_baseline() {
        // 1000 events in the run, 30 bad; baseline 1 %: 10 expected, 20 excess.
        // Period: 100,000 events at 99 %: a budget of 1,000 events; 2 % consumed.
        let b = run_budget(30.0, 1000.0, Some(0.01), 100_000.0, 0.99).unwrap();
        assert!((b.excess_bad_events - 20.0).abs() < 1e-9);
        assert!((b.period_budget_events - 1000.0).abs() < 1e-6);
        assert!((b.consumed - 0.02).abs() < 1e-9);
        // Better than the baseline: nothing consumed.
        let b = run_budget(0.0, 1000.0, Some(0.01), 100_000.0, 0.99).unwrap();
        assert_eq!(b.consumed, 0.0);
        assert!(run_budget(1.0, 10.0, None, 1e5, 0.99).is_err());
        assert!(run_budget(1.0, 0.0, Some(0.0), 1e5, 0.99).is_err());
        assert!(run_budget(1.0, 10.0, Some(0.0), 1e5, 1.0).is_err());
        assert!(run_budget(1.0, 10.0, Some(0.0), f64::NAN, 0.99).is_err());
    }

    #[test]
    fn period_events_scale_the_run_rate() {
        let n = period_events(600.0, Duration::from_secs(60), Duration::from_secs(3600));
        assert!((n - 36_000.0).abs() < 1e-6);
        assert!(period_events(1.0, Duration::ZERO, Duration::from_secs(1)).is_nan());
    }

    #[test]
    fn burn_without_budget_is_unknown() {
        assert_eq!(burn(0.1, 1.0), (None, None));
        assert_eq!(burn(f64::NAN, 0.9), (None, None));
    }
}
