//! The generic HTTP sink's body shapes: a JSON array of records (optionally wrapped
//! in an object), Loki's push API JSON, and Splunk HEC's newline-separated events.
//! Pure.

use crate::sink::record::{unix_nanos, Batch, Record};
use crate::sink::transport::HttpEncoder;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The body shapes of `type: http`.
pub(crate) enum HttpBody {
    /// `[record, ...]` or `{"<wrap>": [record, ...]}`.
    Array { wrap: Option<String> },
    /// Loki push API.
    Loki { labels: BTreeMap<String, String> },
    /// Splunk HEC event batches.
    SplunkHec {
        labels: BTreeMap<String, String>,
        host: String,
    },
}

impl HttpEncoder for HttpBody {
    fn content_type(&self) -> &'static str {
        "application/json"
    }

    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String> {
        let json = |v: &Value| serde_json::to_vec(v).map_err(|e| e.to_string());
        match self {
            HttpBody::Array { wrap } => {
                let records: Vec<&Record> = batch.iter().map(|r| &**r).collect();
                let records = serde_json::to_value(records).map_err(|e| e.to_string())?;
                match wrap {
                    Some(key) => json(&json!({ key.as_str(): records })),
                    None => json(&records),
                }
            }
            HttpBody::Loki { labels } => json(&loki(batch, labels)?),
            HttpBody::SplunkHec { labels, host } => splunk_hec(batch, labels, host),
        }
    }
}

/// Loki: one stream per level, values `["<unix ns>", "<record JSON>"]`, in order.
fn loki(batch: &Batch, labels: &BTreeMap<String, String>) -> Result<Value, String> {
    let mut streams: Vec<(&str, Vec<Value>)> = Vec::new();
    for r in batch {
        let line = serde_json::to_string(&**r).map_err(|e| e.to_string())?;
        let entry = json!([unix_nanos(r).to_string(), line]);
        match streams.iter_mut().find(|(l, _)| *l == r.level) {
            Some((_, values)) => values.push(entry),
            None => streams.push((r.level, vec![entry])),
        }
    }
    let streams: Vec<Value> = streams
        .into_iter()
        .map(|(level, values)| {
            let mut stream = Map::new();
            stream.insert("service_name".into(), json!("faultline"));
            stream.insert("level".into(), json!(level.to_ascii_lowercase()));
            for (k, v) in labels {
                stream.insert(k.clone(), json!(v));
            }
            json!({"stream": stream, "values": values})
        })
        .collect();
    Ok(json!({ "streams": streams }))
}

/// Splunk HEC: newline-separated event objects.
fn splunk_hec(
    batch: &Batch,
    labels: &BTreeMap<String, String>,
    host: &str,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(batch.len() * 400);
    for r in batch {
        let micros = (unix_nanos(r) / 1_000) as f64;
        let mut ev = json!({
            "time": micros / 1e6,
            "host": host,
            "source": "faultline",
            "sourcetype": "_json",
            "event": &**r,
        });
        if !labels.is_empty() {
            ev["fields"] = json!(labels);
        }
        serde_json::to_writer(&mut out, &ev).map_err(|e| e.to_string())?;
        out.push(b'\n');
    }
    Ok(out)
}
