//! The HTTP transport every POSTing sink shares (generic JSON, Loki, Splunk HEC,
//! Humio, OTLP/HTTP): one attempt per `send`, the body made by the sink's
//! [`HttpEncoder`].
//!
//! The transport classifies failures for the shared retry machinery (connection
//! errors, timeouts, 408, 429 and 5xx are retryable) and masks every header value
//! (tokens, passwords) in the error text it reports. Shared code: it imports no sink
//! folder; the folders give it their encoders.

use super::options::Headers;
use super::pipeline::{SendError, Sink};
use super::record::Batch;
use crate::redact::Redactor;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use std::collections::BTreeMap;

/// A body shape for [`HttpSink`]: each sink folder has its own (`encoder.rs`).
pub(crate) trait HttpEncoder: Send + Sync + 'static {
    /// The `Content-Type` of the bodies.
    fn content_type(&self) -> &'static str;

    /// A batch as one request body (pure).
    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String>;
}

/// Pure checks for a URL in the settings.
pub(crate) fn check_url(url: &str, problems: &mut Vec<String>) {
    match Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
        _ => problems.push(format!("url '{}' is not an http(s) URL", display_url(url))),
    }
}

/// Pure checks for headers in the settings (values never quoted: credentials).
pub(crate) fn check_headers(h: &Headers, problems: &mut Vec<String>) {
    for (k, v) in &h.0 {
        if HeaderName::from_bytes(k.as_bytes()).is_err() {
            problems.push(format!("header name '{k}' is not valid"));
        } else if HeaderValue::from_str(v).is_err() {
            problems.push(format!("the value of header '{k}' is not valid"));
        }
    }
}

/// A URL as reports show it: no user, password, query or fragment.
pub(crate) fn display_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u)
            if u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            url.to_string()
        }
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// The HTTP client every HTTP sink of a run shares (one connection pool, one TLS
/// setup: building a client costs milliseconds). `tls: false` when no destination is
/// `https://`.
pub(crate) fn client(tls: bool) -> Result<reqwest::Client, String> {
    crate::tls::init();
    let mut b =
        reqwest::Client::builder().user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")));
    if !tls {
        // Only plain http:// destinations: skip loading the system certificate store.
        b = b.tls_certs_only(Vec::<reqwest::Certificate>::new());
    }
    b.build().map_err(|e| {
        format!(
            "cannot build an HTTP client: {}",
            crate::provider::http::describe_error(&e)
        )
    })
}

/// A batched JSON/protobuf POST sink.
pub(crate) struct HttpSink<E> {
    name: String,
    client: reqwest::Client,
    url: Url,
    headers: HeaderMap,
    encoder: E,
    redactor: Redactor,
}

impl<E: HttpEncoder> HttpSink<E> {
    /// `kind` names the sink in reports; `bearer` adds `Authorization: Bearer ...`.
    pub(crate) fn new(
        client: &reqwest::Client,
        kind: &str,
        url: &str,
        headers: &BTreeMap<String, String>,
        bearer: Option<&str>,
        encoder: E,
    ) -> Result<HttpSink<E>, String> {
        let parsed = Url::parse(url)
            .map_err(|_| format!("url '{}' is not an http(s) URL", display_url(url)))?;
        let mut map = HeaderMap::new();
        let mut secrets: Vec<String> = Vec::new();
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("header name '{k}' is not valid"))?;
            let mut value = HeaderValue::from_str(v)
                .map_err(|_| format!("the value of header '{k}' is not valid"))?;
            value.set_sensitive(true);
            map.insert(name, value);
            secrets.push(v.clone());
            // "Bearer xyz" / "Splunk xyz": the credential alone may be echoed back.
            if let Some((_, cred)) = v.split_once(' ') {
                secrets.push(cred.trim().to_string());
            }
        }
        if let Some(token) = bearer {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "token contains characters not allowed in a header".to_string())?;
            value.set_sensitive(true);
            map.insert(AUTHORIZATION, value);
            secrets.push(token.to_string());
        }
        map.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(encoder.content_type()),
        );
        for s in [
            parsed.password().map(str::to_string),
            Some(parsed.username().to_string()),
        ]
        .into_iter()
        .flatten()
        {
            secrets.push(s);
        }
        Ok(HttpSink {
            name: format!("{kind} {}", display_url(url)),
            client: client.clone(),
            url: parsed,
            headers: map,
            encoder,
            redactor: Redactor::new(secrets),
        })
    }

    fn clean(&self, s: &str) -> String {
        self.redactor.text(s).into_owned()
    }
}

/// At most this much of an error response's body goes into the report.
const BODY_EXCERPT: usize = 200;

impl<E: HttpEncoder> Sink for HttpSink<E> {
    type Payload = Vec<u8>;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn encode(&self, batch: &Batch) -> Result<Vec<u8>, String> {
        self.encoder.encode(batch)
    }

    async fn send(&mut self, body: &Vec<u8>) -> Result<(), SendError> {
        let res = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body.clone())
            .send()
            .await;
        let resp = match res {
            Ok(r) => r,
            Err(e) => {
                let fatal = e.is_builder();
                let text = self.clean(&crate::provider::http::describe_error(&e.without_url()));
                return Err(if fatal {
                    SendError::Fatal(text)
                } else {
                    SendError::Retryable(text)
                });
            }
        };
        let status = resp.status();
        if status.is_success() {
            // Read the (small) answer so the connection goes back to the pool.
            let _ = resp.bytes().await;
            return Ok(());
        }
        let body = resp.text().await.unwrap_or_default();
        let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
        let text = self.clean(&if excerpt.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {excerpt}")
        });
        let code = status.as_u16();
        Err(if status.is_server_error() || code == 429 || code == 408 {
            SendError::Retryable(text)
        } else {
            SendError::Fatal(text)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::display_url;

    #[test]
    fn display_url_hides_credentials() {
        assert_eq!(
            display_url("https://u:p4ss@logs.example.com/x?token=abc#f"),
            "https://logs.example.com/x"
        );
    }
}
