//! The `type: humio` settings (also made from a `chaoshumio.control` declaration):
//! base URL, ingest token, tags and tuning. Validation is pure.

use crate::sink::options::{check_tuning, tuned, Secret};
use crate::sink::pipeline::Policy;
use crate::sink::transport::check_url;
use serde::Deserialize;
use std::collections::BTreeMap;

fn default_humio_url() -> String {
    "https://cloud.humio.com".into()
}

/// Humio / LogScale structured ingest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HumioConfig {
    /// The Humio base URL.
    #[serde(default = "default_humio_url")]
    pub url: String,
    /// The ingest token (resolved from secrets by the caller).
    pub token: Secret,
    /// Extra tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
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

impl HumioConfig {
    /// Every problem in these settings, without touching the network.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_tuning(&self.batch_size, &self.queue_size, &self.timeout, &mut p);
        check_url(&self.url, &mut p);
        if self.token.0.trim().is_empty() {
            p.push("token is empty (the Humio ingest token, from secrets)".into());
        } else if reqwest::header::HeaderValue::from_str(self.token.0.trim()).is_err() {
            p.push("token contains characters not allowed in a header".into());
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
