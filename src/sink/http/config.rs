//! The `type: http` settings: URL, headers, body format, labels and tuning.
//! Validation is pure.

use crate::sink::options::{check_tuning, tuned, Headers};
use crate::sink::pipeline::Policy;
use crate::sink::transport::{check_headers, check_url};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The body shape of an [`HttpConfig`] sink.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HttpFormat {
    /// A JSON array of records (optionally wrapped in an object).
    #[default]
    Array,
    /// Loki's push API JSON body.
    Loki,
    /// Splunk HEC: newline-separated event objects.
    SplunkHec,
}

/// Batched POST of JSON to any URL.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to POST.
    pub url: String,
    /// Extra request headers (`Authorization`...).
    #[serde(default)]
    pub headers: Headers,
    /// Body shape.
    #[serde(default)]
    pub format: HttpFormat,
    /// `array` only: send `{"<wrap>": [...]}` instead of `[...]`.
    #[serde(default)]
    pub wrap: Option<String>,
    /// `loki`: static stream labels; `splunk-hec`: indexed `fields`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Records per request at most (500).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Records waiting at most (10,000).
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// Seconds per request at most (2).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Retries after the first attempt (3).
    #[serde(default)]
    pub retries: Option<u32>,
}

impl HttpConfig {
    /// Every problem in these settings, without touching the network.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_tuning(&self.batch_size, &self.queue_size, &self.timeout, &mut p);
        check_url(&self.url, &mut p);
        check_headers(&self.headers, &mut p);
        if self.wrap.is_some() && self.format != HttpFormat::Array {
            p.push("wrap only applies to format: array".into());
        }
        if self.wrap.as_deref() == Some("") {
            p.push("wrap is empty".into());
        }
        if !self.labels.is_empty() && self.format == HttpFormat::Array {
            p.push("labels only apply to format: loki or splunk-hec".into());
        }
        p
    }

    /// The shared policy with this sink's tuning.
    pub(crate) fn policy(&self) -> Policy {
        tuned(
            &self.batch_size,
            &self.queue_size,
            &self.timeout,
            &self.retries,
        )
    }
}
