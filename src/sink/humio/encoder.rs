//! The structured ingest body: one element per event name in a batch, with
//! chaoshumio's tags, each record's fields flattened into `attributes`. Pure.

use crate::sink::record::Batch;
use crate::sink::transport::HttpEncoder;
use serde_json::{json, Map, Value};

/// The Humio body, with the fixed tags of the sink.
pub(crate) struct HumioEncoder {
    /// Tags every element carries (host, provider, the configured tags...).
    pub tags: Map<String, Value>,
}

impl HttpEncoder for HumioEncoder {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&body(batch, &self.tags)).map_err(|e| e.to_string())
    }
}

/// `[{"tags": {...}, "events": [{"timestamp", "attributes"}]}]`, one element per
/// event name, in order of first appearance.
pub(crate) fn body(batch: &Batch, tags: &Map<String, Value>) -> Value {
    let mut groups: Vec<(&str, Vec<Value>)> = Vec::new();
    for r in batch {
        let mut attributes = Map::new();
        attributes.insert("event".into(), json!(r.event));
        attributes.insert("level".into(), json!(r.level));
        attributes.insert("message".into(), json!(r.message));
        attributes.insert("run_id".into(), json!(r.run_id));
        if let Some(t) = &r.trace_id {
            attributes.insert("trace_id".into(), json!(t));
        }
        if let Some(s) = &r.span_id {
            attributes.insert("span_id".into(), json!(s));
        }
        attributes.insert("experiment".into(), json!(r.experiment));
        if let Value::Object(fields) = &r.fields {
            for (k, v) in fields {
                attributes.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let event = json!({"timestamp": r.time, "attributes": attributes});
        match groups.iter_mut().find(|(name, _)| *name == r.event) {
            Some((_, events)) => events.push(event),
            None => groups.push((r.event, vec![event])),
        }
    }
    Value::Array(
        groups
            .into_iter()
            .map(|(name, events)| {
                let mut t = tags.clone();
                t.insert("level".into(), json!(name));
                t.insert("type".into(), json!(name.split('.').next().unwrap_or(name)));
                json!({"tags": t, "events": events})
            })
            .collect(),
    )
}
