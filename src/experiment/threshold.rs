//! The `threshold` tolerance: compare numbers, with explicit multi-series and no-data
//! semantics, and keep the evidence.
//!
//! ```yaml
//! tolerance: {type: threshold, op: "<", value: 0.05, reduce: max, on_no_data: fail}
//! ```
//! `op` is `<`, `<=`, `>`, `>=`, `==`, `!=` or `between` (`value: [low, high]`,
//! inclusive). The numbers come from the output: a PromQL answer (the native
//! `prometheus` provider's `series`, or Prometheus' own JSON as `chaosprometheus`
//! returns it), a list of numbers, a number, or numeric text; `target` picks a key
//! first. `reduce` says how several samples decide: `all` (the default: every sample
//! must pass), `any`, or `min`, `max`, `avg`, `sum` (one number, then compared).
//! NaN samples (Prometheus' 0/0: no traffic) carry no information and are set aside;
//! no sample at all is decided by `on_no_data`: `fail` (default), `pass` or
//! `inconclusive`. A value that is not a number is an error, never 0.

use super::tolerance::{brief, Verdict};
use serde_json::{json, Map, Value};

/// The comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Between,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<" | "lt" => Op::Lt,
            "<=" | "le" => Op::Le,
            ">" | "gt" => Op::Gt,
            ">=" | "ge" => Op::Ge,
            "==" | "=" | "eq" => Op::Eq,
            "!=" | "ne" => Op::Ne,
            "between" => Op::Between,
            _ => return None,
        })
    }

    fn text(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Between => "between",
        }
    }
}

/// How several samples decide.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reduce {
    All,
    Any,
    Min,
    Max,
    Avg,
    Sum,
}

impl Reduce {
    fn parse(s: &str) -> Option<Reduce> {
        Some(match s {
            "all" => Reduce::All,
            "any" => Reduce::Any,
            "min" => Reduce::Min,
            "max" => Reduce::Max,
            "avg" | "mean" => Reduce::Avg,
            "sum" => Reduce::Sum,
            _ => return None,
        })
    }

    fn text(self) -> &'static str {
        match self {
            Reduce::All => "all",
            Reduce::Any => "any",
            Reduce::Min => "min",
            Reduce::Max => "max",
            Reduce::Avg => "avg",
            Reduce::Sum => "sum",
        }
    }
}

/// What no data means.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NoData {
    Fail,
    Pass,
    Inconclusive,
}

/// A checked threshold definition.
struct Threshold {
    op: Op,
    low: f64,
    high: f64,
    reduce: Reduce,
    no_data: NoData,
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// Decimal text, or Prometheus' `NaN`, `+Inf`, `-Inf`.
fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    crate::provider::prometheus::client::parse_value(s).or_else(|| s.parse::<f64>().ok())
}

/// The definition's problems, as (key, message), for `validate` and for the run (a
/// template may have produced them).
pub fn problems(tol: &Map<String, Value>) -> Vec<(&'static str, String)> {
    match parse(tol) {
        Ok(_) => Vec::new(),
        Err(p) => vec![p],
    }
}

fn parse(tol: &Map<String, Value>) -> Result<Threshold, (&'static str, String)> {
    let op = match tol.get("op") {
        None => {
            return Err((
                "op",
                "missing required key 'op' (<, <=, >, >=, ==, != or between)".into(),
            ))
        }
        Some(Value::String(s)) => Op::parse(s.trim()).ok_or_else(|| {
            (
                "op",
                format!("unknown comparator {s:?}: use <, <=, >, >=, ==, != or between"),
            )
        })?,
        Some(v) => {
            return Err((
                "op",
                format!("the comparator must be text, got {}", brief(v)),
            ))
        }
    };
    let (low, high) = match (op, tol.get("value")) {
        (_, None) => return Err(("value", "missing required key 'value'".into())),
        (Op::Between, Some(Value::Array(r))) if r.len() == 2 => {
            match (number(&r[0]), number(&r[1])) {
                (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
                (Some(lo), Some(hi)) => {
                    return Err((
                        "value",
                        format!("the low bound {lo} is above the high bound {hi}"),
                    ))
                }
                _ => {
                    return Err((
                        "value",
                        format!(
                            "the bounds {} are not numbers",
                            brief(&Value::Array(r.clone()))
                        ),
                    ))
                }
            }
        }
        (Op::Between, Some(v)) => {
            return Err((
                "value",
                format!("between needs \"value\": [low, high], got {}", brief(v)),
            ))
        }
        (_, Some(v)) => match number(v) {
            Some(x) if !x.is_nan() => (x, x),
            _ => {
                return Err((
                    "value",
                    format!("the threshold {} is not a number", brief(v)),
                ))
            }
        },
    };
    let reduce = match tol.get("reduce") {
        None | Some(Value::Null) => Reduce::All,
        Some(Value::String(s)) => Reduce::parse(s.trim()).ok_or_else(|| {
            (
                "reduce",
                format!("unknown reduce {s:?}: use all, any, min, max, avg or sum"),
            )
        })?,
        Some(v) => return Err(("reduce", format!("reduce must be text, got {}", brief(v)))),
    };
    let no_data = match tol.get("on_no_data") {
        None | Some(Value::Null) => NoData::Fail,
        Some(Value::String(s)) => match s.trim() {
            "fail" => NoData::Fail,
            "pass" => NoData::Pass,
            "inconclusive" => NoData::Inconclusive,
            _ => {
                return Err((
                    "on_no_data",
                    format!("unknown on_no_data {s:?}: use fail, pass or inconclusive"),
                ))
            }
        },
        Some(v) => {
            return Err((
                "on_no_data",
                format!("on_no_data must be text, got {}", brief(v)),
            ))
        }
    };
    Ok(Threshold {
        op,
        low,
        high,
        reduce,
        no_data,
    })
}

impl Threshold {
    fn passes(&self, x: f64) -> bool {
        match self.op {
            Op::Lt => x < self.low,
            Op::Le => x <= self.low,
            Op::Gt => x > self.low,
            Op::Ge => x >= self.low,
            Op::Eq => x == self.low,
            Op::Ne => x != self.low,
            Op::Between => self.low <= x && x <= self.high,
        }
    }

    fn expected(&self) -> String {
        match self.op {
            Op::Between => format!("between {} and {}", self.low, self.high),
            op => format!("{} {}", op.text(), self.low),
        }
    }
}

/// One sample with where it came from (a series' labels), for the evidence.
struct Found {
    value: f64,
    labels: Option<Value>,
}

/// Every number of an output, or why the output holds something that is not one.
fn samples(output: &Value) -> Result<Vec<Found>, String> {
    let mut out = Vec::new();
    // The native provider's answer: {series: [{labels, value} | {labels, values: [[t, v]]}]}.
    if let Some(series) = output.get("series").and_then(Value::as_array) {
        for (i, s) in series.iter().enumerate() {
            let labels = s.get("labels").cloned();
            if let Some(v) = s.get("value") {
                out.push(Found {
                    value: number(v)
                        .ok_or_else(|| format!("series[{i}].value {} is not a number", brief(v)))?,
                    labels: labels.clone(),
                });
            }
            for (j, p) in s
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let v = p.as_array().and_then(|a| a.get(1)).unwrap_or(p);
                out.push(Found {
                    value: number(v).ok_or_else(|| {
                        format!("series[{i}].values[{j}] {} is not a number", brief(v))
                    })?,
                    labels: labels.clone(),
                });
            }
        }
        return Ok(out);
    }
    // Prometheus' own document, as chaosprometheus returns it.
    if let Some(data) = output.get("data").filter(|d| d.get("resultType").is_some()) {
        let answer = crate::provider::prometheus::client::parse(
            200,
            &json!({"status": "success", "data": data}).to_string(),
        )
        .map_err(|e| e.to_string())?;
        for s in answer.series {
            let labels = Value::Object(
                s.labels
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            );
            for p in s.samples {
                out.push(Found {
                    value: p.v,
                    labels: Some(labels.clone()),
                });
            }
        }
        return Ok(out);
    }
    match output {
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                out.push(Found {
                    value: number(v)
                        .ok_or_else(|| format!("item {i} {} is not a number", brief(v)))?,
                    labels: None,
                });
            }
            Ok(out)
        }
        Value::Null => Ok(out),
        v => Ok(vec![Found {
            value: number(v).ok_or_else(|| format!("{} is not a number", brief(v)))?,
            labels: None,
        }]),
    }
}

/// Check `output` (already narrowed by `target`) against a threshold tolerance.
pub fn check(tol: &Map<String, Value>, output: &Value) -> Verdict {
    let mut evidence = Map::new();
    // The query and its time travel with the verdict when the output says them.
    for key in ["query", "time", "start", "end", "step"] {
        if let Some(v) = output.get(key).filter(|v| !v.is_null()) {
            evidence.insert(key.into(), v.clone());
        }
    }
    let t = match parse(tol) {
        Ok(t) => t,
        Err((key, message)) => {
            return Verdict {
                met: false,
                inconclusive: false,
                reason: format!("invalid threshold tolerance: {key}: {message}"),
                evidence,
            }
        }
    };
    evidence.insert("expected".into(), Value::String(t.expected()));
    evidence.insert("reduce".into(), Value::String(t.reduce.text().into()));
    let found = match samples(output) {
        Ok(f) => f,
        Err(e) => {
            return Verdict {
                met: false,
                inconclusive: false,
                reason: format!("the output is not a number: {e}"),
                evidence,
            }
        }
    };
    let total = found.len();
    let usable: Vec<&Found> = found.iter().filter(|f| !f.value.is_nan()).collect();
    let nan = total - usable.len();
    evidence.insert("samples".into(), json!(total));
    if nan > 0 {
        evidence.insert("nan_samples".into(), json!(nan));
    }
    let aside = if nan > 0 {
        format!(" ({nan} NaN sample(s) set aside: no traffic?)")
    } else {
        String::new()
    };
    if usable.is_empty() {
        evidence.insert("actual".into(), Value::Null);
        let what = if total == 0 {
            "no data".to_string()
        } else {
            format!("no usable data{aside}")
        };
        let (met, inconclusive, verdict) = match t.no_data {
            NoData::Fail => (false, false, "not met (on_no_data: fail)"),
            NoData::Pass => (true, false, "met (on_no_data: pass)"),
            NoData::Inconclusive => (false, true, "inconclusive (on_no_data: inconclusive)"),
        };
        return Verdict {
            met,
            inconclusive,
            reason: format!("{what}, expected {}: {verdict}", t.expected()),
            evidence,
        };
    }
    let values: Vec<f64> = usable.iter().map(|f| f.value).collect();
    let (met, actual, reason) = match t.reduce {
        Reduce::All | Reduce::Any => {
            let failing: Vec<&&Found> = usable.iter().filter(|f| !t.passes(f.value)).collect();
            let passing = usable.len() - failing.len();
            let met = if t.reduce == Reduce::All {
                failing.is_empty()
            } else {
                passing > 0
            };
            let mut worst = Map::new();
            if let Some(f) = failing.first() {
                worst.insert("value".into(), json!(f.value));
                if let Some(l) = &f.labels {
                    worst.insert("labels".into(), l.clone());
                }
                evidence.insert("first_failing".into(), Value::Object(worst));
            }
            let shown: Vec<Value> = values.iter().take(20).map(|v| json!(v)).collect();
            let reason = format!(
                "{passing} of {} sample(s) {} (reduce {}){}{aside}",
                usable.len(),
                t.expected(),
                t.reduce.text(),
                failing
                    .first()
                    .map(|f| format!(
                        ", e.g. {}{}",
                        f.value,
                        f.labels
                            .as_ref()
                            .map(|l| format!(" {}", brief(l)))
                            .unwrap_or_default()
                    ))
                    .unwrap_or_default()
            );
            (met, Value::Array(shown), reason)
        }
        r => {
            let x = match r {
                Reduce::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                Reduce::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Reduce::Sum => values.iter().sum(),
                _ => values.iter().sum::<f64>() / values.len() as f64,
            };
            let reason = format!(
                "{} over {} sample(s) = {x}, expected {}{aside}",
                r.text(),
                values.len(),
                t.expected()
            );
            (t.passes(x), json!(x), reason)
        }
    };
    evidence.insert("actual".into(), actual);
    Verdict {
        met,
        inconclusive: false,
        reason,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(tol: Value, output: Value) -> Verdict {
        check(tol.as_object().unwrap(), &output)
    }

    fn series(values: &[(&str, &str)]) -> Value {
        json!({"query": "q", "time": "2026-12-05T00:00:00Z", "series": values.iter().map(|(job, v)| json!({"labels": {"job": job}, "value": v})).collect::<Vec<_>>()})
    }

    #[test]
    fn comparators() {
        for (op, value, x, met) in [
            ("<", json!(1), json!(0.5), true),
            ("<", json!(1), json!(1), false),
            ("<=", json!(1), json!(1), true),
            (">", json!(1), json!(2), true),
            (">=", json!(1), json!(0.9), false),
            ("==", json!(3), json!("3"), true),
            ("!=", json!(3), json!(3), false),
            ("between", json!([1, 2]), json!(2), true),
            ("between", json!([1, 2]), json!(2.1), false),
        ] {
            let v = verdict(
                json!({"type": "threshold", "op": op, "value": value}),
                x.clone(),
            );
            assert_eq!(v.met, met, "{op} {value} on {x}: {}", v.reason);
        }
    }

    #[test]
    fn reduce_over_several_series() {
        let out = series(&[("a", "0.01"), ("b", "0.2"), ("c", "0.03")]);
        let t = |r: &str| json!({"type": "threshold", "op": "<", "value": 0.1, "reduce": r});
        assert!(!verdict(t("all"), out.clone()).met);
        assert!(verdict(t("any"), out.clone()).met);
        assert!(verdict(t("min"), out.clone()).met);
        assert!(!verdict(t("max"), out.clone()).met);
        assert!(!verdict(t("sum"), out.clone()).met, "0.24");
        assert!(verdict(t("avg"), out.clone()).met, "0.08");
        let v = verdict(t("all"), out);
        assert_eq!(v.evidence["first_failing"]["labels"]["job"], "b");
        assert_eq!(v.evidence["query"], "q");
        assert!(v.reason.contains("2 of 3"), "{}", v.reason);
    }

    #[test]
    fn no_data_is_decided_by_on_no_data() {
        let empty = json!({"series": []});
        let t = |n: Option<&str>| {
            let mut t = json!({"type": "threshold", "op": "<", "value": 1});
            if let Some(n) = n {
                t["on_no_data"] = json!(n);
            }
            t
        };
        let v = verdict(t(None), empty.clone());
        assert!(!v.met && !v.inconclusive && v.reason.contains("no data"));
        assert!(verdict(t(Some("pass")), empty.clone()).met);
        let v = verdict(t(Some("inconclusive")), empty);
        assert!(!v.met && v.inconclusive);
        assert_eq!(v.label(), "inconclusive");
        // NaN (0/0, no traffic) is no data too, never a pass of "!= 0".
        let v = verdict(t(Some("inconclusive")), series(&[("a", "NaN")]));
        assert!(v.inconclusive, "{}", v.reason);
    }

    #[test]
    fn prometheus_documents_and_errors() {
        let doc = json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job": "x"}, "value": [1.0, "7"]}]}});
        assert!(verdict(json!({"type": "threshold", "op": ">", "value": 5}), doc).met);
        let v = verdict(
            json!({"type": "threshold", "op": ">", "value": 5}),
            series(&[("a", "seven")]),
        );
        assert!(!v.met && v.reason.contains("not a number"), "{}", v.reason);
        let v = verdict(
            json!({"type": "threshold", "op": "~", "value": 5}),
            json!(1),
        );
        assert!(
            !v.met && v.reason.contains("unknown comparator"),
            "{}",
            v.reason
        );
        assert_eq!(
            problems(
                json!({"op": "between", "value": [3, 1]})
                    .as_object()
                    .unwrap()
            )[0]
            .0,
            "value"
        );
        assert!(problems(
            json!({"op": "<", "value": 1, "reduce": "median"})
                .as_object()
                .unwrap()
        )[0]
        .1
        .contains("median"));
    }
}
