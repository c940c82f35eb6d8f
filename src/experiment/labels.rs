//! What a run targets and which experiment it is: the target labels (`service`, …)
//! that run history, correlation, the run metrics and the annotations carry, and a
//! stable reference to the experiment (a hash of its canonical form).
//!
//! Pure: the caller gives the experiment as loaded, its resolved configuration and the
//! labels given on the command line.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Labels: key → value, sorted.
pub type TargetLabels = BTreeMap<String, String>;

/// Configuration keys that name the service under test, read as the `service` label
/// (the first one set wins), as experiments written for OpenTelemetry and Kubernetes
/// drivers often carry them.
const SERVICE_KEYS: [&str; 3] = ["service", "service_name", "target_service"];

pub use crate::slo::model::valid_label_key as valid_key;

pub use crate::slo::model::parse_label;

/// The run's target labels, lowest precedence first:
/// 1. the experiment's tags written `key:value` or `key=value` (other tags stay tags);
/// 2. the configuration's `service` (or `service_name`, `target_service`) as `service`;
/// 3. the configuration's `target_labels`: an object of strings, or `"k=v,k=v"`;
/// 4. the labels given (`--label k=v`).
///
/// Entries that are not labels (a bad key, a non-string value) are skipped here: the
/// run never fails for a label; `faultline validate` names them (see [`problems`]).
pub fn target_labels(
    experiment: &Value,
    configuration: &Map<String, Value>,
    given: &TargetLabels,
) -> TargetLabels {
    let mut out = TargetLabels::new();
    for tag in tags(experiment) {
        if let Some((k, v)) = tag.split_once([':', '=']) {
            let (k, v) = (k.trim(), v.trim());
            if valid_key(k) && !v.is_empty() {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
    if let Some(s) = SERVICE_KEYS
        .iter()
        .find_map(|k| configuration.get(*k).and_then(scalar))
    {
        out.insert("service".into(), s);
    }
    if let Some(t) = configuration.get("target_labels") {
        out.extend(labels_value(t).into_iter().flatten());
    }
    out.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// What is wrong with the configuration's `target_labels`, if anything.
pub fn problems(configuration: &Map<String, Value>) -> Vec<String> {
    configuration
        .get("target_labels")
        .map(|t| match labels_value(t) {
            Ok(_) => Vec::new(),
            Err(e) => vec![e],
        })
        .unwrap_or_default()
}

fn labels_value(t: &Value) -> Result<Vec<(String, String)>, String> {
    match t {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match scalar(v) {
                Some(v) if valid_key(k) => Ok((k.clone(), v)),
                _ => Err(format!(
                    "target_labels.{k}: a label needs a valid key and a string or number value"
                )),
            })
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| parse_label(p).map_err(|e| format!("target_labels: {e}")))
            .collect(),
        _ => Err("target_labels: give an object of strings or \"k=v,k=v\"".into()),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The experiment's tags (strings only).
pub fn tags(experiment: &Value) -> Vec<String> {
    experiment
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A stable reference to an experiment: SHA-256 (hex, first 16 bytes) of its
/// canonical form (object keys sorted at every depth, no insignificant white space),
/// so the same experiment written as JSON or YAML, or with its keys reordered, has the
/// same reference, and any change to what it does gives another.
pub fn experiment_ref(experiment: &Value) -> String {
    let mut text = String::new();
    canonical(experiment, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn labels_come_from_tags_configuration_and_flags_in_that_order() {
        let exp = json!({"tags": ["kubernetes", "service:cart", "team=sre", "9bad:x"]});
        let conf = map(
            json!({"service_name": "checkout", "target_labels": {"env": "prod", "team": "payments"}}),
        );
        let given: TargetLabels = [("env".to_string(), "staging".to_string())].into();
        let l = target_labels(&exp, &conf, &given);
        assert_eq!(l["service"], "checkout", "configuration over tags");
        assert_eq!(l["team"], "payments", "target_labels over tags");
        assert_eq!(l["env"], "staging", "--label over all");
        assert!(!l.contains_key("9bad"), "{l:?}");
        assert!(!l.contains_key("kubernetes"));
        let l = target_labels(
            &exp,
            &map(json!({"target_labels": "zone=a, tier=1"})),
            &TargetLabels::new(),
        );
        assert_eq!(l["zone"], "a");
        assert_eq!(l["tier"], "1");
        assert_eq!(l["service"], "cart");
    }

    #[test]
    fn bad_target_labels_are_named() {
        assert!(problems(&map(json!({"target_labels": [1]})))[0].contains("target_labels"));
        assert!(problems(&map(json!({"target_labels": "x"})))[0].contains("key=value"));
        assert!(
            problems(&map(json!({"target_labels": {"a-b": "x"}})))[0].contains("target_labels.a-b")
        );
        assert!(problems(&map(json!({"target_labels": {"a": "x"}}))).is_empty());
        assert!(parse_label("service=").unwrap_err().contains("empty"));
        assert!(parse_label("1x=a").unwrap_err().contains("key"));
        assert_eq!(
            parse_label(" service = api ").unwrap(),
            ("service".into(), "api".into())
        );
    }

    #[test]
    fn the_reference_ignores_key_order_but_not_content() {
        let a = json!({"title": "t", "method": [{"name": "a", "type": "action"}]});
        let b = json!({"method": [{"type": "action", "name": "a"}], "title": "t"});
        let c = json!({"title": "t", "method": [{"name": "b", "type": "action"}]});
        assert_eq!(experiment_ref(&a), experiment_ref(&b));
        assert_ne!(experiment_ref(&a), experiment_ref(&c));
        assert_eq!(experiment_ref(&a).len(), 32);
    }
}
