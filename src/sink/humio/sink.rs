//! A `type: humio` sink: the shared HTTP transport, posting to the structured
//! ingest path with `Authorization: Bearer <token>`.

use super::config::HumioConfig;
use super::encoder::HumioEncoder;
use crate::sink::transport::HttpSink;
use serde_json::{json, Map};
use std::collections::BTreeMap;

/// The ingest path under the Humio base URL.
const INGEST_PATH: &str = "/api/v1/ingest/humio-structured";

/// The sink for a Humio base URL (or the full ingest URL) and ingest token.
pub(crate) fn build(
    client: &reqwest::Client,
    cfg: &HumioConfig,
) -> Result<HttpSink<HumioEncoder>, String> {
    let (url, token, tags) = (&cfg.url, &cfg.token.0, &cfg.tags);
    let url = ingest_url(url);
    let mut fixed = Map::new();
    fixed.insert("host".into(), json!(crate::run::journal::node()));
    fixed.insert("chaosengineering".into(), json!("true"));
    fixed.insert("provider".into(), json!("faultline"));
    fixed.insert("system".into(), json!(std::env::consts::OS));
    fixed.insert("machine".into(), json!(std::env::consts::ARCH));
    for (k, v) in tags {
        fixed.insert(k.clone(), json!(v));
    }
    HttpSink::new(
        client,
        "humio",
        &url,
        &BTreeMap::new(),
        Some(token.trim()),
        HumioEncoder { tags: fixed },
    )
}

/// The ingest URL for a base URL (kept as is when it already is the ingest URL): the
/// path extended, a query kept after it. A URL that does not parse is passed on for
/// the sink to refuse with its usual message.
pub(crate) fn ingest_url(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return url.to_string();
    };
    let path = u.path().trim_end_matches('/').to_string();
    if path.ends_with(INGEST_PATH) {
        u.set_path(&path);
    } else if let Ok(mut segments) = u.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(INGEST_PATH.split('/').filter(|s| !s.is_empty()));
    }
    u.to_string()
}
