//! The native `prometheus` provider: PromQL probes, instant or over a range, with every
//! series kept as evidence; and `chaosprometheus.probes.query` / `query_interval` run
//! natively with the Chaos Toolkit's arguments and output.
//!
//! Where a query goes is resolved once, here, for every PromQL user (this provider,
//! the chaosprometheus probes, SLO checks): [`endpoint`].

pub mod client;

use super::{field, seconds, Ctx};
use client::{Auth, Endpoint};
use serde_json::{Map, Value};
use std::time::Duration;

/// The settings file's `prometheus:` section, as plain values: the run-wide defaults
/// of every PromQL query (carried to providers in [`super::RunFacts`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Defaults {
    /// The base URL when neither the provider nor the configuration gives one.
    pub base_url: Option<String>,
    /// The deadline of one query when the provider sets none.
    pub timeout: Option<Duration>,
    /// Verify TLS certificates when the provider does not say.
    pub verify_tls: Option<bool>,
}

/// The configuration key naming the Prometheus base URL (the Chaos Toolkit's).
pub const CONFIG_BASE_URL: &str = "prometheus_base_url";
/// The Chaos Toolkit's default base URL (chaosprometheus functions only).
pub const CHAOSTOOLKIT_DEFAULT_URL: &str = "http://localhost:9090";
/// Secret keys read from the provider's `secrets` scopes.
pub const SECRET_TOKEN: &str = "prometheus_token";
/// Basic auth user (with [`SECRET_PASSWORD`]).
pub const SECRET_USERNAME: &str = "prometheus_username";
/// Basic auth password.
pub const SECRET_PASSWORD: &str = "prometheus_password";
/// Extra headers: an object (or its JSON text) of header names to values.
pub const SECRET_HEADERS: &str = "prometheus_headers";

/// Where a PromQL query of this provider definition goes, and with which credentials.
///
/// The base URL is the provider's `base_url`, else the configuration's
/// `prometheus_base_url`, else the settings' `prometheus.base_url`; none is an error.
/// Credentials come from the secrets of the scopes the provider lists:
/// `prometheus_token` (bearer), `prometheus_username` + `prometheus_password`
/// (basic), `prometheus_headers` (extra headers). `timeout` (seconds) and
/// `verify_tls` come from the provider, else the settings; 30 s and `true` by default.
pub fn endpoint(m: &Map<String, Value>, ctx: &Ctx<'_>) -> Result<Endpoint, String> {
    endpoint_with(m, ctx, None)
}

/// [`endpoint`], with a last-resort base URL (the chaosprometheus functions' default).
pub fn endpoint_with(
    m: &Map<String, Value>,
    ctx: &Ctx<'_>,
    fallback: Option<&str>,
) -> Result<Endpoint, String> {
    let defaults = &ctx.run.prometheus;
    let text = |v: &Value, what: &str| match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        v => Err(format!("{what} must be a non-empty string, got {v}")),
    };
    let base_url = match (field(m, "base_url"), field(ctx.configuration, CONFIG_BASE_URL)) {
        (Some(v), _) => text(v, "base_url")?,
        (None, Some(v)) => text(v, &format!("the configuration's {CONFIG_BASE_URL}"))?,
        (None, None) => match (&defaults.base_url, fallback) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => f.to_string(),
            (None, None) => {
                return Err(format!(
                    "no Prometheus URL: set the provider's base_url, the configuration key {CONFIG_BASE_URL}, or base_url in the settings' prometheus section"
                ))
            }
        },
    };
    let base_url = base_url.trim_end_matches('/').to_string();
    let timeout = match field(m, "timeout") {
        Some(v) => positive(v, "timeout")?,
        None => defaults.timeout.unwrap_or(client::DEFAULT_TIMEOUT),
    };
    let verify_tls = match field(m, "verify_tls") {
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(format!("verify_tls must be true or false, got {v}")),
        None => defaults.verify_tls.unwrap_or(true),
    };
    let mut headers = match field(m, "headers") {
        Some(v) => header_list(v, "headers")?,
        None => Vec::new(),
    };
    let (mut token, mut user, mut password) = (None, None, None);
    // Secret values are never quoted in these errors: only the key is named.
    let secret_text = |v: &Value, key: &str| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(format!("the secret {key} must be text")),
    };
    for scope in ctx.secrets.values().filter_map(Value::as_object) {
        if let Some(v) = field(scope, SECRET_TOKEN) {
            token = Some(secret_text(v, SECRET_TOKEN)?);
        }
        if let Some(v) = field(scope, SECRET_USERNAME) {
            user = Some(secret_text(v, SECRET_USERNAME)?);
        }
        if let Some(v) = field(scope, SECRET_PASSWORD) {
            password = Some(secret_text(v, SECRET_PASSWORD)?);
        }
        if let Some(v) = field(scope, SECRET_HEADERS) {
            let parsed;
            let v = match v {
                Value::String(s) => {
                    parsed = serde_json::from_str::<Value>(s).map_err(|_| {
                        format!("the secret {SECRET_HEADERS} must be an object (or its JSON text) of header names to values")
                    })?;
                    &parsed
                }
                v => v,
            };
            headers.extend(header_list(v, &format!("the secret {SECRET_HEADERS}")).map_err(
                |_| format!("the secret {SECRET_HEADERS} must be an object of header names to text values"),
            )?);
        }
    }
    let auth = match (token, user, password) {
        (Some(_), Some(_), _) => {
            return Err(format!(
                "both {SECRET_TOKEN} and {SECRET_USERNAME} are set: give a bearer token or basic credentials, not both"
            ))
        }
        (Some(t), None, _) => Auth::Bearer(t),
        (None, Some(user), password) => Auth::Basic {
            user,
            password: password.unwrap_or_default(),
        },
        (None, None, Some(_)) => {
            return Err(format!(
                "{SECRET_PASSWORD} is set without {SECRET_USERNAME}"
            ))
        }
        (None, None, None) => Auth::None,
    };
    Ok(Endpoint {
        base_url,
        auth,
        headers,
        timeout,
        verify_tls,
    })
}

fn positive(v: &Value, what: &str) -> Result<Duration, String> {
    let d = seconds(v, what)?;
    if d.is_zero() {
        return Err(format!("{what} must be more than 0 seconds"));
    }
    Ok(d)
}

fn header_list(v: &Value, what: &str) -> Result<Vec<(String, String)>, String> {
    let Value::Object(h) = v else {
        return Err(format!(
            "{what} must be an object of header names to values, got {v}"
        ));
    };
    h.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Number(n) => Ok((k.clone(), n.to_string())),
            Value::Bool(b) => Ok((k.clone(), b.to_string())),
            v => Err(format!("{what}.{k} must be text, got {v}")),
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::provider::{http::Clients, process::Processes, RunFacts};
    use serde_json::json;

    /// A run's facts for provider tests: started now, these PromQL defaults.
    pub(crate) fn facts(prometheus: Defaults) -> RunFacts {
        RunFacts {
            run_id: "r".into(),
            trace_id: None,
            started: chrono::Utc::now(),
            slo: Default::default(),
            method: Default::default(),
            prometheus,
        }
    }

    pub(crate) fn with_ctx<T>(
        configuration: Value,
        secrets: Value,
        facts: &RunFacts,
        f: impl FnOnce(&Ctx<'_>) -> T,
    ) -> T {
        let configuration = configuration.as_object().cloned().unwrap_or_default();
        let http = Clients::default();
        let processes = Processes::default();
        let redactor = crate::redact::Redactor::new(Vec::<String>::new());
        let ctx = Ctx {
            configuration: &configuration,
            secrets: secrets.as_object().cloned().unwrap_or_default(),
            http: &http,
            headers: Vec::new(),
            env: Vec::new(),
            logs: Default::default(),
            trace: None,
            redactor: &redactor,
            output_limit: 1 << 20,
            warnings: Default::default(),
            processes: &processes,
            run: facts,
        };
        f(&ctx)
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn the_base_url_comes_from_the_provider_then_the_configuration_then_the_settings() {
        let settings = facts(Defaults {
            base_url: Some("http://settings:9090".into()),
            timeout: Some(Duration::from_secs(7)),
            verify_tls: Some(false),
        });
        let conf = json!({"prometheus_base_url": "http://conf:9090/"});
        with_ctx(conf.clone(), json!({}), &settings, |ctx| {
            let ep = endpoint(&map(json!({"base_url": "http://own:1"})), ctx).unwrap();
            assert_eq!(ep.base_url, "http://own:1");
            let ep = endpoint(&map(json!({})), ctx).unwrap();
            assert_eq!(ep.base_url, "http://conf:9090");
            assert_eq!(ep.timeout, Duration::from_secs(7));
            assert!(!ep.verify_tls);
        });
        with_ctx(json!({}), json!({}), &settings, |ctx| {
            let ep = endpoint(&map(json!({"timeout": 2, "verify_tls": true})), ctx).unwrap();
            assert_eq!(ep.base_url, "http://settings:9090");
            assert_eq!(ep.timeout, Duration::from_secs(2));
            assert!(ep.verify_tls);
        });
        let bare = facts(Defaults::default());
        with_ctx(json!({}), json!({}), &bare, |ctx| {
            let e = endpoint(&map(json!({})), ctx).unwrap_err();
            for place in ["base_url", "prometheus_base_url", "settings"] {
                assert!(e.contains(place), "{e}");
            }
            let ep = endpoint_with(&map(json!({})), ctx, Some(CHAOSTOOLKIT_DEFAULT_URL)).unwrap();
            assert_eq!(ep.base_url, "http://localhost:9090");
            assert_eq!(ep.timeout, client::DEFAULT_TIMEOUT);
            assert!(ep.verify_tls);
        });
    }

    #[test]
    fn credentials_come_from_secrets_and_are_never_quoted() {
        let f = facts(Defaults::default());
        let m = map(json!({"base_url": "http://p:9090", "headers": {"x-a": "1"}}));
        let secrets = json!({"prom": {"prometheus_token": "s3cr3t",
            "prometheus_headers": "{\"X-Scope-OrgID\": \"tenant-1\"}"}});
        with_ctx(json!({}), secrets, &f, |ctx| {
            let ep = endpoint(&m, ctx).unwrap();
            assert_eq!(ep.auth, Auth::Bearer("s3cr3t".into()));
            assert_eq!(
                ep.headers,
                [
                    ("x-a".into(), "1".into()),
                    ("X-Scope-OrgID".into(), "tenant-1".into())
                ]
            );
            assert!(!format!("{ep:?}").contains("s3cr3t"));
        });
        let secrets =
            json!({"a": {"prometheus_username": "u"}, "b": {"prometheus_password": "pw"}});
        with_ctx(json!({}), secrets, &f, |ctx| {
            let ep = endpoint(&m, ctx).unwrap();
            assert_eq!(
                ep.auth,
                Auth::Basic {
                    user: "u".into(),
                    password: "pw".into()
                }
            );
        });
        let secrets = json!({"a": {"prometheus_token": "tok", "prometheus_username": "u",
            "prometheus_headers": "not json"}});
        with_ctx(json!({}), secrets, &f, |ctx| {
            let e = endpoint(&m, ctx).unwrap_err();
            assert!(!e.contains("tok") && !e.contains("not json"), "{e}");
        });
    }
}
