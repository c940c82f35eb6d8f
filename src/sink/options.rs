//! Pieces of sink settings every kind shares: secret strings and headers that never
//! show in `Debug`, and the batching/retry tuning keys (`batch_size`, `queue_size`,
//! `timeout`, `retries`) with their pure validation and the [`Policy`] they make.

use super::pipeline::Policy;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A secret string: deserialises from a plain string, never shows in `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Request headers: `Debug` shows the names only (values are often credentials).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Headers(pub BTreeMap<String, String>);

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "***")))
            .finish()
    }
}

/// The tuning keys' problems (pure).
pub(crate) fn check_tuning(
    batch: &Option<usize>,
    queue: &Option<usize>,
    timeout: &Option<f64>,
    p: &mut Vec<String>,
) {
    if *batch == Some(0) {
        p.push("batch_size must be at least 1".to_string());
    }
    if *queue == Some(0) {
        p.push("queue_size must be at least 1".to_string());
    }
    if let Some(Err(e)) = timeout.map(crate::duration::positive_seconds) {
        p.push(format!("timeout: {e} ({})", crate::duration::HINT));
    }
}

/// The policy of a network sink: the defaults, with the tuning keys set.
pub(crate) fn tuned(
    batch: &Option<usize>,
    queue: &Option<usize>,
    timeout: &Option<f64>,
    retries: &Option<u32>,
) -> Policy {
    let base = Policy::default();
    Policy {
        batch_size: batch.unwrap_or(base.batch_size),
        queue_size: queue.unwrap_or(base.queue_size),
        timeout: timeout
            .and_then(|t| crate::duration::positive_seconds(t).ok())
            .unwrap_or(base.timeout),
        retries: retries.unwrap_or(base.retries),
        ..base
    }
}
