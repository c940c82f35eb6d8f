//! The `slo` probe over Prometheus: the PromQL built from an OpenSLO SLI (event
//! counts over the window, counter resets, scrape coverage), the wait of two scrape
//! intervals after the window ends, burn-rate gates and the run's share of the error
//! budget against a pre-run baseline. The numbers are judged by [`crate::slo::eval`];
//! this file only measures them (see `docs/slo.md`).

use super::super::prometheus::client::{self, Endpoint};
use super::super::{ActivityError, Ctx};
use crate::slo::eval::{self, Counts, Rules};
use crate::slo::{Sli, Verdict};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A multi-window burn-rate rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// The long window.
    pub long: Duration,
    /// The short window.
    pub short: Duration,
    /// The burn-rate factor (14.4 for 2 % of a 30-day budget in 1 h).
    pub factor: f64,
}

/// The run's budget check: a baseline window before the evaluated window, an optional
/// PromQL for the period's events, and an optional ceiling.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSpec {
    /// How long before the window's start the baseline is measured.
    pub baseline: Duration,
    /// A query whose value is the number of events expected over the objective's period
    /// (else: the run's event rate × the period).
    pub period_events: Option<String>,
    /// The most of the period's budget the run may consume, in percent.
    pub max_percent: Option<f64>,
}

/// How the counts of one SLI query are read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    /// A bare counter selector: `increase(<q>[D])`, `resets(<q>[D])`.
    Selector,
    /// A counter-valued expression: over a subquery.
    CounterExpr,
    /// A per-second rate: integrated over a subquery.
    Rate,
}

fn form(query: &str, counter: bool) -> Form {
    let q = query.trim();
    let is_rate = q.contains("rate(");
    if !counter || is_rate {
        Form::Rate
    } else if is_selector(q) {
        Form::Selector
    } else {
        Form::CounterExpr
    }
}

/// A metric name with optional label matchers and nothing else.
pub fn is_selector(q: &str) -> bool {
    let q = q.trim();
    let name_end = q
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(q.len());
    let (name, rest) = q.split_at(name_end);
    let name_ok = !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit());
    let rest = rest.trim();
    let rest_ok = rest.is_empty()
        || (rest.starts_with('{') && rest.ends_with('}') && rest.matches('{').count() == 1);
    (name_ok || (name.is_empty() && rest.starts_with('{'))) && rest_ok
}

/// A duration as PromQL writes it, to the millisecond.
pub fn promql_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// The events a query counts over `d`, as PromQL.
fn count_query(q: &str, f: Form, d: Duration, step: Duration) -> String {
    let (d, s) = (promql_duration(d), promql_duration(step));
    match f {
        Form::Selector => format!("sum(increase({q}[{d}]))"),
        Form::CounterExpr => format!("sum(increase(({q})[{d}:{s}]))"),
        Form::Rate => format!(
            "sum(sum_over_time(({q})[{d}:{s}])) * {}",
            step.as_secs_f64()
        ),
    }
}

/// The PromQL of one window: good (or bad) and total counts, resets, coverage.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Queries {
    /// Good events (absent when the SLI gives bad ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub good: Option<String>,
    /// Bad events (absent when the SLI gives good ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad: Option<String>,
    /// Every event.
    pub total: String,
    /// Counter resets (bare counter selectors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resets: Option<String>,
    /// Scrape coverage: samples of the total counter over those expected, or `up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<String>,
}

/// Build the queries of `sli` over a window of length `d`; `up` is a selector of the
/// `up` series of the SLI's targets, when given.
pub fn queries(
    sli: &Sli,
    d: Duration,
    step: Duration,
    up: Option<&str>,
) -> Result<Queries, String> {
    let Sli::Ratio {
        counter,
        good,
        bad,
        total,
    } = sli
    else {
        return Err(
            "the objective's SLI is a thresholdMetric: the slo provider evaluates ratioMetric SLIs only"
                .into(),
        );
    };
    let tf = form(total, *counter);
    let numerator = |q: &str| {
        format!(
            "({}) or vector(0)",
            count_query(q, form(q, *counter), d, step)
        )
    };
    let dd = promql_duration(d);
    let resets = (tf == Form::Selector).then(|| format!("sum(resets({total}[{dd}]))"));
    let coverage = match up {
        Some(sel) => Some(format!("min(avg_over_time({sel}[{dd}]))")),
        // Per target (job, instance), its best-covered series: a failed scrape misses
        // every series of its target, while a series born in the window (the first
        // error) is no gap; then the worst target.
        None => (tf == Form::Selector)
            .then(|| format!("min(max by (job, instance) (count_over_time({total}[{dd}])))")),
    };
    Ok(Queries {
        good: good.as_deref().map(numerator),
        bad: if good.is_some() {
            None
        } else {
            bad.as_deref().map(numerator)
        },
        total: count_query(total, tf, d, step),
        resets,
        coverage,
    })
}

async fn value(
    ctx: &Ctx<'_>,
    ep: &Endpoint,
    q: &str,
    at: DateTime<Utc>,
) -> Result<Option<f64>, ActivityError> {
    let a = client::instant(ctx, ep, q, Some(at))
        .await
        .map_err(|e| ActivityError::new(format!("{e} (query: {q})")))?;
    a.single()
        .map_err(|e| ActivityError::new(format!("{e} (query: {q})")))
}

/// Good and total counts over a window ending at `at` (`None`s for empty answers).
async fn good_total(
    ctx: &Ctx<'_>,
    ep: &Endpoint,
    q: &Queries,
    at: DateTime<Utc>,
) -> Result<(Option<f64>, Option<f64>), ActivityError> {
    let total = value(ctx, ep, &q.total, at).await?;
    let good = match (&q.good, &q.bad) {
        (Some(g), _) => value(ctx, ep, g, at).await?,
        (None, Some(b)) => {
            let bad = value(ctx, ep, b, at).await?;
            bad.zip(total).map(|(b, t)| t - b)
        }
        (None, None) => None,
    };
    Ok((good, total))
}

/// The error ratio over `d` ending at `at`; `None` without events.
async fn error_ratio(
    ctx: &Ctx<'_>,
    ep: &Endpoint,
    sli: &Sli,
    d: Duration,
    step: Duration,
    at: DateTime<Utc>,
) -> Result<(Option<f64>, Queries), ActivityError> {
    let q = queries(sli, d, step, None).map_err(ActivityError::new)?;
    let (good, total) = good_total(ctx, ep, &q, at).await?;
    let ratio = match (good, total) {
        (Some(g), Some(t)) if t > 0.0 && g.is_finite() && t.is_finite() => {
            Some(((t - g) / t).max(0.0))
        }
        _ => None,
    };
    Ok((ratio, q))
}

/// Everything the Prometheus evaluation needs.
pub struct Plan<'a> {
    /// The SLI.
    pub sli: &'a Sli,
    /// The target ratio.
    pub target: f64,
    /// The objective's period (its window), for the budget.
    pub period: Duration,
    /// The evaluated window.
    pub from: DateTime<Utc>,
    /// Its end.
    pub to: DateTime<Utc>,
    /// The scrape interval.
    pub scrape_interval: Duration,
    /// The fewest events worth judging.
    pub min_events: Option<f64>,
    /// The least scrape coverage.
    pub min_coverage: f64,
    /// An `up` selector for the coverage.
    pub up: Option<&'a str>,
    /// Burn-rate gates.
    pub gates: &'a [Gate],
    /// The run's budget check.
    pub budget: Option<&'a BudgetSpec>,
}

/// Evaluate, after waiting until two scrape intervals past the window's end (the
/// wait ends when the future is dropped).
pub async fn evaluate(
    ctx: &Ctx<'_>,
    ep: &Endpoint,
    p: &Plan<'_>,
) -> Result<Map<String, Value>, ActivityError> {
    let settle = p.to + chrono::Duration::from_std(p.scrape_interval * 2).unwrap_or_default();
    if let Ok(wait) = (settle - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let d = (p.to - p.from).to_std().unwrap_or_default();
    let step = p.scrape_interval;
    let q = queries(p.sli, d, step, p.up).map_err(ActivityError::new)?;
    let (good, total) = good_total(ctx, ep, &q, p.to).await?;
    let resets = match &q.resets {
        Some(r) => Some(value(ctx, ep, r, p.to).await?.unwrap_or(0.0)),
        None => None,
    };
    let coverage = match &q.coverage {
        Some(c) => {
            let v = value(ctx, ep, c, p.to).await?;
            Some(match (p.up, v) {
                (Some(_), v) => v.unwrap_or(0.0),
                // Samples seen over those expected, with one of slack for alignment.
                (None, Some(n)) => {
                    let expected = d.as_secs_f64() / step.as_secs_f64().max(1e-3);
                    ((n + 1.0) / expected).min(1.0)
                }
                (None, None) => 0.0,
            })
        }
        None => None,
    };
    let counts = Counts {
        good,
        total,
        resets,
        coverage,
    };
    let rules = Rules {
        target: p.target,
        min_events: p.min_events,
        window: d,
        scrape_interval: step,
        min_coverage: p.min_coverage,
    };
    let e = eval::evaluate(&counts, &rules);
    let mut verdict = e.verdict;
    let mut reason = e.reason.clone();
    let mut out = Map::new();
    // Burn-rate gates: windows ending where the evaluated window ends.
    let mut gates = Vec::new();
    for g in p.gates {
        let (long, lq) = error_ratio(ctx, ep, p.sli, g.long, step, p.to).await?;
        let (short, sq) = error_ratio(ctx, ep, p.sli, g.short, step, p.to).await?;
        let r = eval::gate(long, short, g.factor, p.target);
        if r.tripped {
            verdict = Verdict::NotMet;
            reason = Some(format!(
                "burn-rate gate {}/{} at {}×: {}",
                promql_duration(g.long),
                promql_duration(g.short),
                g.factor,
                r.reason
            ));
        } else if r.verdict == Verdict::Inconclusive && verdict == Verdict::Met {
            verdict = Verdict::Inconclusive;
            reason = Some(format!("burn-rate gate: {}", r.reason));
        }
        let mut gv = serde_json::to_value(&r).unwrap_or(Value::Null);
        if let Some(m) = gv.as_object_mut() {
            m.insert("long".into(), json!(g.long.as_secs_f64()));
            m.insert("short".into(), json!(g.short.as_secs_f64()));
            m.insert("factor".into(), json!(g.factor));
            m.insert("queries".into(), json!({"long": lq, "short": sq}));
        }
        gates.push(gv);
    }
    // The run's share of the period's budget, against the baseline before it.
    let mut consumed = Value::Null;
    if let Some(b) = p.budget {
        let (base, bq) = error_ratio(ctx, ep, p.sli, b.baseline, step, p.from).await?;
        let period_events = match &b.period_events {
            Some(q) => value(ctx, ep, q, p.to).await?.unwrap_or(f64::NAN),
            None => eval::period_events(total.unwrap_or(0.0), d, p.period),
        };
        // From the counts themselves: an inconclusive evaluation carries no bad count.
        let bad_run = match (good, total) {
            (Some(g), Some(t)) => (t - g).max(0.0),
            _ => f64::NAN,
        };
        let r = eval::run_budget(bad_run, total.unwrap_or(0.0), base, period_events, p.target);
        let mut bv = json!({"baseline": b.baseline.as_secs_f64(), "baseline_queries": bq,
            "period_seconds": p.period.as_secs_f64(), "period_events": eval_number(period_events),
            "max_percent": b.max_percent});
        match r {
            Ok(r) => {
                consumed = json!(r.consumed);
                if let (Some(m), Value::Object(rm)) = (
                    bv.as_object_mut(),
                    serde_json::to_value(&r).unwrap_or(Value::Null),
                ) {
                    m.extend(rm);
                }
                if let Some(max) = b.max_percent {
                    if r.consumed * 100.0 > max && verdict != Verdict::Inconclusive {
                        verdict = Verdict::NotMet;
                        reason = Some(format!(
                            "the run consumed {:.4}% of the period's error budget, more than {max}%",
                            r.consumed * 100.0
                        ));
                    }
                }
            }
            Err(why) => {
                bv["reason"] = json!(why);
                if b.max_percent.is_some() && verdict == Verdict::Met {
                    verdict = Verdict::Inconclusive;
                    reason = Some(format!("the run's budget is unknown: {why}"));
                }
            }
        }
        out.insert("budget".into(), bv);
    }
    out.insert("sli".into(), json!(e.sli.map(eval_number)));
    out.insert("target".into(), json!(p.target));
    out.insert("met".into(), json!(verdict == Verdict::Met));
    out.insert(
        "verdict".into(),
        serde_json::to_value(verdict).unwrap_or(Value::Null),
    );
    out.insert("reason".into(), json!(reason));
    out.insert("events".into(), json!(eval_number(e.events)));
    out.insert("bad_events".into(), json!(eval_number(e.bad_events)));
    out.insert("burn_rate".into(), json!(e.burn_rate.map(eval_number)));
    out.insert(
        "error_budget_remaining".into(),
        json!(e.error_budget_remaining.map(eval_number)),
    );
    out.insert("budget_consumed_by_run".into(), consumed);
    out.insert(
        "data_quality".into(),
        json!({"resets": resets, "coverage": coverage, "good": good, "total": total,
               "min_events": p.min_events.unwrap_or_else(|| eval::default_min_events(p.target)),
               "min_coverage": p.min_coverage}),
    );
    out.insert(
        "queries".into(),
        serde_json::to_value(&q).unwrap_or(Value::Null),
    );
    out.insert(
        "window".into(),
        json!({"from": crate::timefmt::iso(p.from), "to": crate::timefmt::iso(p.to),
               "seconds": d.as_secs_f64(), "evaluated_at": crate::timefmt::iso(p.to),
               "scrape_interval": step.as_secs_f64()}),
    );
    if !gates.is_empty() {
        out.insert("gates".into(), Value::Array(gates));
    }
    Ok(out)
}

/// A number for JSON: infinities and NaN as null (JSON has none).
fn eval_number(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_told_from_expressions() {
        assert!(is_selector("http_requests_total"));
        assert!(is_selector(
            "http_requests_total{code!~\"5..\", test=\"x\"}"
        ));
        assert!(is_selector("{__name__=\"x\"}"));
        assert!(!is_selector("sum(http_requests_total)"));
        assert!(!is_selector("rate(x[1m])"));
        assert!(!is_selector("a + b"));
    }

    #[test]
    fn the_promql_follows_the_sli() {
        let sli = Sli::Ratio {
            counter: true,
            good: Some("http_requests_total{code!~\"5..\"}".into()),
            bad: None,
            total: "http_requests_total".into(),
        };
        let q = queries(&sli, Duration::from_secs(60), Duration::from_secs(15), None).unwrap();
        assert_eq!(q.total, "sum(increase(http_requests_total[60000ms]))");
        assert_eq!(
            q.good.as_deref(),
            Some("(sum(increase(http_requests_total{code!~\"5..\"}[60000ms]))) or vector(0)")
        );
        assert_eq!(
            q.resets.as_deref(),
            Some("sum(resets(http_requests_total[60000ms]))")
        );
        assert_eq!(
            q.coverage.as_deref(),
            Some("min(max by (job, instance) (count_over_time(http_requests_total[60000ms])))")
        );
        let rate = Sli::Ratio {
            counter: true,
            good: None,
            bad: Some("sum(rate(e[1m]))".into()),
            total: "sum(rate(t[1m]))".into(),
        };
        let q = queries(
            &rate,
            Duration::from_secs(60),
            Duration::from_secs(15),
            Some("up{job=\"a\"}"),
        )
        .unwrap();
        assert_eq!(
            q.total,
            "sum(sum_over_time((sum(rate(t[1m])))[60000ms:15000ms])) * 15"
        );
        assert!(q.good.is_none() && q.bad.is_some() && q.resets.is_none());
        assert_eq!(
            q.coverage.as_deref(),
            Some("min(avg_over_time(up{job=\"a\"}[60000ms]))")
        );
        let expr = Sli::Ratio {
            counter: true,
            good: Some("sum(g)".into()),
            bad: None,
            total: "sum(t)".into(),
        };
        let q = queries(
            &expr,
            Duration::from_secs(60),
            Duration::from_secs(15),
            None,
        )
        .unwrap();
        assert_eq!(q.total, "sum(increase((sum(t))[60000ms:15000ms]))");
        assert!(queries(
            &Sli::Threshold { query: "x".into() },
            Duration::from_secs(1),
            Duration::from_secs(1),
            None
        )
        .is_err());
    }
}
