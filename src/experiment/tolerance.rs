//! Tolerances: does a probe's output match what the hypothesis expects?
//!
//! Exactly the Chaos Toolkit's semantics (see `../shared/reference/chaostoolkit.md`),
//! except that where it crashes (an object output with no `target`, a regex over a
//! non-string) faultline answers "not met" with the reason. Every verdict carries a
//! human reason with expected vs actual, for the console and the journal.

use serde_json::{Map, Value};
use std::cmp::Ordering;

/// The outcome of checking one tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the output is within tolerance.
    pub met: bool,
    /// Neither met nor missed: the evidence cannot tell (no data, by the tolerance's
    /// `on_no_data: inconclusive`). Never true when `met` is.
    pub inconclusive: bool,
    /// Why, in words: expected vs actual.
    pub reason: String,
    /// What the verdict rests on, for the journal and the span: `expected`, `actual`,
    /// and for PromQL outputs the `query` and its evaluation `time` (or window).
    pub evidence: Map<String, Value>,
}

impl Verdict {
    /// `met`, `not_met` or `inconclusive`.
    pub fn label(&self) -> &'static str {
        if self.met {
            "met"
        } else if self.inconclusive {
            "inconclusive"
        } else {
            "not_met"
        }
    }

    /// The evidence with the verdict and the reason in it, as the journal keeps it.
    pub fn record(&self) -> Value {
        let mut m = Map::new();
        m.insert("verdict".into(), Value::String(self.label().into()));
        for (k, v) in &self.evidence {
            m.insert(k.clone(), v.clone());
        }
        m.insert("reason".into(), Value::String(self.reason.clone()));
        Value::Object(m)
    }
}

/// What the runner must do with a tolerance.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The verdict is known.
    Done(Verdict),
    /// Run this probe with `arguments.value` set to the output; truthy means met.
    Probe {
        /// The probe's name.
        name: String,
        /// Its provider, with `arguments.value` already set.
        provider: Value,
    },
}

fn met(reason: String) -> Check {
    Check::Done(Verdict {
        met: true,
        inconclusive: false,
        reason,
        evidence: Map::new(),
    })
}

fn not_met(reason: String) -> Check {
    Check::Done(Verdict {
        met: false,
        inconclusive: false,
        reason,
        evidence: Map::new(),
    })
}

/// A short rendering of a value for messages.
pub fn brief(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Python's `==` across JSON values (1 == 1.0).
fn py_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64() == y.as_f64() && (x.is_f64() || y.is_f64() || x == y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| py_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Python's ordering for the values a range can compare (numbers, or strings).
fn py_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Number(_)) => py_cmp(&Value::from(u8::from(*x)), b),
        (Value::Number(_), Value::Bool(y)) => py_cmp(a, &Value::from(u8::from(*y))),
        _ => None,
    }
}

/// `value.get(target, value)`, the Chaos Toolkit's way to pick the checked part.
fn targeted<'a>(tol: &serde_json::Map<String, Value>, output: &'a Value) -> &'a Value {
    match (tol.get("target").and_then(Value::as_str), output) {
        (Some(t), Value::Object(m)) => m.get(t).unwrap_or(output),
        _ => output,
    }
}

/// Compile a JSONPath expression (RFC 9535).
pub fn compile_jsonpath(path: &str) -> Result<serde_json_path::JsonPath, String> {
    serde_json_path::JsonPath::parse(path).map_err(|e| e.to_string())
}

fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
}

/// Check `output` against an (already substituted) tolerance.
pub fn check(tolerance: &Value, output: &Value) -> Check {
    match tolerance {
        Value::Bool(_) | Value::String(_) => {
            if py_eq(output, tolerance) {
                met(format!("output equals {}", brief(tolerance)))
            } else {
                not_met(format!(
                    "expected {}, got {}",
                    brief(tolerance),
                    brief(output)
                ))
            }
        }
        Value::Number(_) => {
            if let Some(status) = output.as_object().and_then(|m| m.get("status")) {
                if py_eq(status, tolerance) {
                    met(format!("status is {}", brief(tolerance)))
                } else {
                    not_met(format!(
                        "expected status {}, got {}",
                        brief(tolerance),
                        brief(status)
                    ))
                }
            } else if py_eq(output, tolerance) {
                met(format!("output equals {}", brief(tolerance)))
            } else {
                not_met(format!(
                    "expected {}, got {}",
                    brief(tolerance),
                    brief(output)
                ))
            }
        }
        Value::Array(items) => {
            if let Some(status) = output.as_object().and_then(|m| m.get("status")) {
                if items.iter().any(|i| py_eq(i, status)) {
                    met(format!(
                        "status {} is in {}",
                        brief(status),
                        brief(tolerance)
                    ))
                } else {
                    not_met(format!(
                        "expected status in {}, got {}",
                        brief(tolerance),
                        brief(status)
                    ))
                }
            } else if items.len() == 2 {
                let (lo, hi) = (&items[0], &items[1]);
                match (py_cmp(lo, output), py_cmp(output, hi)) {
                    (Some(a), Some(b)) if a != Ordering::Greater && b != Ordering::Greater => met(
                        format!("{} is within [{}, {}]", brief(output), brief(lo), brief(hi)),
                    ),
                    (Some(_), Some(_)) => not_met(format!(
                        "expected a value within [{}, {}], got {}",
                        brief(lo),
                        brief(hi),
                        brief(output)
                    )),
                    _ => not_met(format!(
                        "cannot compare {} with the range [{}, {}]",
                        brief(output),
                        brief(lo),
                        brief(hi)
                    )),
                }
            } else if items.iter().any(|i| py_eq(i, output)) {
                met(format!("{} is in {}", brief(output), brief(tolerance)))
            } else {
                not_met(format!(
                    "expected one of {}, got {}",
                    brief(tolerance),
                    brief(output)
                ))
            }
        }
        Value::Object(tol) => object_check(tol, output),
        Value::Null => not_met("a null tolerance can never be met".into()),
    }
}

fn object_check(tol: &serde_json::Map<String, Value>, output: &Value) -> Check {
    let ty = tol.get("type").and_then(Value::as_str).unwrap_or_default();
    match ty {
        "probe" => {
            let mut provider = tol.get("provider").cloned().unwrap_or(Value::Null);
            if let Some(p) = provider.as_object_mut() {
                let args = p
                    .entry("arguments")
                    .or_insert_with(|| Value::Object(Default::default()));
                if !args.is_object() {
                    *args = Value::Object(Default::default());
                }
                args.as_object_mut()
                    .expect("made an object above")
                    .insert("value".into(), output.clone());
            }
            Check::Probe {
                name: tol
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("tolerance")
                    .to_string(),
                provider,
            }
        }
        "range" => {
            let value = targeted(tol, output);
            let Some(range) = tol
                .get("range")
                .and_then(Value::as_array)
                .filter(|r| r.len() == 2)
            else {
                return not_met("the range tolerance needs \"range\": [low, high]".into());
            };
            if value.is_object() {
                return not_met(format!(
                    "the output is an object ({}): set \"target\" to the key holding the number",
                    brief(value)
                ));
            }
            let (Some(lo), Some(hi)) = (to_number(&range[0]), to_number(&range[1])) else {
                return not_met(format!(
                    "the range bounds {} are not numbers",
                    brief(&Value::Array(range.clone()))
                ));
            };
            match to_number(value) {
                Some(x) if lo <= x && x <= hi => met(format!("{x} is within [{lo}, {hi}]")),
                Some(x) => not_met(format!("expected a value within [{lo}, {hi}], got {x}")),
                None => not_met(format!(
                    "the range tolerance expects a number, got {}",
                    brief(value)
                )),
            }
        }
        "regex" => {
            let value = targeted(tol, output);
            let pattern = tol
                .get("pattern")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let re = match super::pyregex::compile(pattern) {
                Ok(r) => r,
                Err(e) => return not_met(format!("invalid regular expression {pattern:?}: {e}")),
            };
            match value {
                Value::String(s) => match super::pyregex::search(&re, s) {
                    Ok(true) => met(format!("{pattern:?} matches")),
                    Ok(false) => not_met(format!("expected a match for {pattern:?} in {}", brief(value))),
                    Err(e) => not_met(format!("the regular expression {pattern:?} could not be evaluated: {e}")),
                },
                Value::Object(_) => not_met(format!(
                    "the output is an object ({}): set \"target\" to the key holding the text (stdout, body...)",
                    brief(value)
                )),
                other => not_met(format!("the regex tolerance expects text, got {}", brief(other))),
            }
        }
        "jsonpath" => {
            let value = targeted(tol, output);
            let parsed;
            let value = match value {
                Value::String(s) => match serde_json::from_str::<Value>(s) {
                    Ok(v) => {
                        parsed = v;
                        &parsed
                    }
                    Err(_) => value,
                },
                v => v,
            };
            let path = tol.get("path").and_then(Value::as_str).unwrap_or_default();
            let jp = match compile_jsonpath(path) {
                Ok(p) => p,
                Err(e) => return not_met(format!("invalid JSONPath {path:?}: {e}")),
            };
            let values: Vec<Value> = jp.query(value).all().into_iter().cloned().collect();
            let found = Value::Array(values.clone());
            let mut result = !values.is_empty();
            let mut reason = if result {
                format!("{path} found {}", brief(&found))
            } else {
                format!("{path} found nothing in {}", brief(value))
            };
            if let Some(count) = tol.get("count").and_then(Value::as_u64) {
                result = values.len() as u64 == count;
                reason = format!("{path} found {} match(es), expected {count}", values.len());
            }
            if let Some(expect) = tol.get("expect") {
                let expected = match expect {
                    Value::Array(_) => expect.clone(),
                    other => Value::Array(vec![other.clone()]),
                };
                result = py_eq(&found, &expected);
                reason = format!(
                    "{path} found {}, expected {}",
                    brief(&found),
                    brief(&expected)
                );
            }
            Check::Done(Verdict {
                met: result,
                inconclusive: false,
                reason,
                evidence: Map::new(),
            })
        }
        "threshold" => Check::Done(super::threshold::check(tol, targeted(tol, output))),
        "slo" => Check::Done(slo_verdict(output)),
        other => not_met(format!("unknown tolerance type '{other}'")),
    }
}

/// The `slo` tolerance: the verdict the `slo` provider reached (`met`, `not_met`,
/// `inconclusive`), with its numbers as evidence; an output without one is not met.
fn slo_verdict(output: &Value) -> Verdict {
    let verdict = output.get("verdict").and_then(Value::as_str).unwrap_or("");
    let mut evidence = Map::new();
    for k in [
        "sli",
        "target",
        "events",
        "burn_rate",
        "error_budget_remaining",
        "budget_consumed_by_run",
        "window",
        "queries",
        "gates",
    ] {
        if let Some(v) = output.get(k).filter(|v| !v.is_null()) {
            evidence.insert(k.into(), v.clone());
        }
    }
    let why = output.get("reason").and_then(Value::as_str).unwrap_or("");
    let (met, inconclusive, reason) = match verdict {
        "met" => (true, false, "the objective is met".to_string()),
        "inconclusive" => (false, true, format!("inconclusive: {why}")),
        "not_met" => (false, false, format!("not met: {why}")),
        _ => (
            false,
            false,
            format!("the output has no SLO verdict: {}", brief(output)),
        ),
    };
    Verdict {
        met,
        inconclusive,
        reason,
        evidence,
    }
}

/// Python truthiness of a probe's result, for probe tolerances.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn is_met(t: Value, o: Value) -> bool {
        match check(&t, &o) {
            Check::Done(v) => v.met,
            Check::Probe { .. } => panic!("probe"),
        }
    }

    #[test]
    fn slo_tolerances_read_the_verdict() {
        let v = |o: Value| match check(&json!({"type": "slo"}), &o) {
            Check::Done(v) => v,
            Check::Probe { .. } => panic!("probe"),
        };
        assert!(v(json!({"verdict": "met", "sli": 1.0})).met);
        let i = v(json!({"verdict": "inconclusive", "reason": "no traffic"}));
        assert!(!i.met && i.inconclusive && i.reason.contains("no traffic"));
        assert_eq!(i.label(), "inconclusive");
        let n = v(json!({"verdict": "not_met", "sli": 0.5, "target": 0.9}));
        assert_eq!(n.label(), "not_met");
        assert_eq!(n.evidence["sli"], json!(0.5));
        assert_eq!(v(json!(true)).label(), "not_met");
    }

    #[test]
    fn scalars() {
        assert!(is_met(json!(true), json!(true)));
        assert!(!is_met(json!(true), json!(false)));
        assert!(is_met(json!("ok"), json!("ok")));
        assert!(!is_met(json!("ok"), json!("ko")));
        assert!(is_met(json!(0), json!({"status": 0, "stdout": ""})));
        assert!(!is_met(json!(0), json!({"status": 1})));
        assert!(is_met(json!(5), json!(5.0)));
        assert!(is_met(json!(200), json!({"status": 200, "body": "x"})));
    }

    #[test]
    fn lists_are_membership_or_ranges() {
        assert!(is_met(json!([200, 503]), json!({"status": 503})));
        assert!(!is_met(json!([200, 503]), json!({"status": 500})));
        assert!(is_met(json!([1, 10]), json!(5)));
        assert!(!is_met(json!([1, 10]), json!(11)));
        assert!(is_met(json!([1, 2, 3]), json!(3)));
        assert!(!is_met(json!([1, 2, 3]), json!(4)));
        assert!(!is_met(json!([1, 10]), json!({"x": 1})));
    }

    #[test]
    fn range_regex_jsonpath() {
        assert!(is_met(json!({"type": "range", "range": [1, 3]}), json!(2)));
        assert!(is_met(
            json!({"type": "range", "range": [1, 3], "target": "n"}),
            json!({"n": "2.5"})
        ));
        assert!(!is_met(json!({"type": "range", "range": [1, 3]}), json!(4)));
        assert!(is_met(
            json!({"type": "regex", "pattern": "^he", "target": "stdout"}),
            json!({"stdout": "hello"})
        ));
        assert!(!is_met(
            json!({"type": "regex", "pattern": "^x", "target": "stdout"}),
            json!({"stdout": "hello"})
        ));
        let body = json!({"body": {"items": [{"s": "up"}, {"s": "up"}]}});
        assert!(is_met(
            json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body"}),
            body.clone()
        ));
        assert!(is_met(
            json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body", "count": 2}),
            body.clone()
        ));
        assert!(!is_met(
            json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body", "count": 3}),
            body.clone()
        ));
        assert!(is_met(
            json!({"type": "jsonpath", "path": "$.items[*].s", "target": "body", "expect": ["up", "up"]}),
            body.clone()
        ));
        assert!(!is_met(
            json!({"type": "jsonpath", "path": "$.items[0].s", "target": "body", "expect": "down"}),
            body
        ));
        assert!(is_met(
            json!({"type": "jsonpath", "path": "$.a"}),
            json!("{\"a\": 1}")
        ));
    }

    #[test]
    fn where_the_chaos_toolkit_crashes_faultline_explains() {
        let Check::Done(v) = check(
            &json!({"type": "range", "range": [0, 1]}),
            &json!({"status": 0}),
        ) else {
            panic!()
        };
        assert!(!v.met);
        assert!(v.reason.contains("set \"target\""), "{}", v.reason);
        let Check::Done(v) = check(
            &json!({"type": "regex", "pattern": "x"}),
            &json!({"stdout": "x"}),
        ) else {
            panic!()
        };
        assert!(!v.met && v.reason.contains("target"));
    }

    #[test]
    fn probe_tolerance_gets_the_output_as_value() {
        let c = check(
            &json!({"type": "probe", "name": "p", "provider": {"type": "python", "module": "m", "func": "f"}}),
            &json!(3),
        );
        let Check::Probe { provider, .. } = c else {
            panic!()
        };
        assert_eq!(provider["arguments"]["value"], json!(3));
    }
}
