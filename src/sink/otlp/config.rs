//! The `type: otlp` settings, their pure validation, and their merge with the
//! `OTEL_*` environment (through the one resolver, `telemetry::otel_env`) into the
//! target a sink is built for.

use crate::sink::options::{check_tuning, tuned, Headers};
use crate::sink::pipeline::Policy;
use crate::sink::transport::{check_headers, check_url};
use crate::telemetry::otel_env::{self, Overrides, Signal};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The OTLP transport, as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it: the one protocol
/// type of [`crate::telemetry::otel_env`], named as the sink settings name it.
pub use crate::telemetry::otel_env::Protocol as OtlpProtocol;

/// OpenTelemetry logs over OTLP; every key optional (`OTEL_EXPORTER_OTLP_*` fill in).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base endpoint (`http://host:4318`; gRPC: `http://host:4317`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `grpc`, `http/protobuf` or `http/json`.
    #[serde(default)]
    pub protocol: Option<OtlpProtocol>,
    /// Extra headers (HTTP only).
    #[serde(default)]
    pub headers: Headers,
    /// Records per request at most (500).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Records waiting at most (10,000).
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// Seconds per request at most (2, or `OTEL_EXPORTER_OTLP_*TIMEOUT`).
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Retries after the first attempt (3).
    #[serde(default)]
    pub retries: Option<u32>,
}

impl OtlpConfig {
    /// Every problem in these settings, without touching the environment.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_tuning(&self.batch_size, &self.queue_size, &self.timeout, &mut p);
        if let Some(e) = &self.endpoint {
            check_url(e, &mut p);
        }
        check_headers(&self.headers, &mut p);
        if self.protocol == Some(OtlpProtocol::Grpc) {
            for k in self.headers.0.keys() {
                let key = k.to_ascii_lowercase();
                if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                    key.as_bytes(),
                )
                .is_err()
                {
                    p.push(format!("header '{k}' cannot be sent as gRPC metadata"));
                }
            }
        }
        p
    }

    /// [`OtlpConfig::validate`], and what building the sink would find wrong in the
    /// environment (endpoint, protocol and headers from `OTEL_*`).
    pub fn check_with_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        let mut p = self.validate();
        if let Err(e) = self.resolve(env) {
            p.push(e);
        }
        p
    }

    /// Where and how to send: these settings over the environment.
    pub(crate) fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, String> {
        resolve(
            self.endpoint.as_deref(),
            self.protocol,
            &self.headers.0,
            env,
        )
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

/// Where and how to send, once settings and environment are merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub protocol: OtlpProtocol,
    /// The full URL: `.../v1/logs` over HTTP, the server address over gRPC.
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// From `OTEL_EXPORTER_OTLP_(LOGS_)TIMEOUT`.
    pub timeout: Option<Duration>,
    pub warnings: Vec<String>,
}

/// Merge the sink's settings with the `OTEL_*` environment, as
/// [`otel_env::signal`] does for every signal (the sink's keys win), then check what
/// this sink can send: an `http(s)` URL, valid header names and values, and over gRPC
/// plaintext and metadata-safe names.
pub(crate) fn resolve(
    endpoint: Option<&str>,
    protocol: Option<OtlpProtocol>,
    headers: &BTreeMap<String, String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, String> {
    let own: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let logs = otel_env::signal(
        Signal::Logs,
        env,
        &Overrides {
            endpoint: endpoint.map(|e| ("endpoint", e)),
            protocol,
            headers: &own,
            ..Overrides::default()
        },
    );
    let target = logs.endpoint_or_default();
    target.check()?;
    let http = logs.protocol.is_http();
    if !http && target.url.starts_with("https://") {
        return Err(format!(
            "{}: grpc over TLS (https) is not available; hint: use protocol: http/protobuf",
            target.source
        ));
    }
    let merged: BTreeMap<String, String> = logs.headers.into_iter().collect();
    let mut problems = Vec::new();
    check_headers(&Headers(merged.clone()), &mut problems);
    if !http {
        for k in merged.keys() {
            if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                k.to_ascii_lowercase().as_bytes(),
            )
            .is_err()
            {
                problems.push(format!("header '{k}' cannot be sent as gRPC metadata"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(Target {
        protocol: logs.protocol,
        url: target.url,
        headers: merged,
        timeout: logs.timeout,
        warnings: logs.warnings,
    })
}
