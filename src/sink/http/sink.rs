//! A `type: http` sink: the shared HTTP transport with this sink's body shape.

use super::config::{HttpConfig, HttpFormat};
use super::encoder::HttpBody;
use crate::sink::transport::HttpSink;

/// The sink for these settings, on the run's shared HTTP client.
pub(crate) fn build(
    client: &reqwest::Client,
    cfg: &HttpConfig,
) -> Result<HttpSink<HttpBody>, String> {
    let encoder = match cfg.format {
        HttpFormat::Array => HttpBody::Array {
            wrap: cfg.wrap.clone(),
        },
        HttpFormat::Loki => HttpBody::Loki {
            labels: cfg.labels.clone(),
        },
        HttpFormat::SplunkHec => HttpBody::SplunkHec {
            labels: cfg.labels.clone(),
            host: crate::run::journal::node(),
        },
    };
    HttpSink::new(client, "http", &cfg.url, &cfg.headers.0, None, encoder)
}
