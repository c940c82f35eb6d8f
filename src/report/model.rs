//! What a report shows, extracted from run records.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::run::record::RunRecord;

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
