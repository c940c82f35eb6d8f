//! The Pushgateway client both metrics controls share (`chaosprometheus.metrics` and
//! `faultline.metrics`): the group's URL built as path segments, a `PUT` of an
//! exposition and a `DELETE` of the group, each within [`LIMIT`], and the failures as
//! sentences for the end-of-run warnings (never a URL's password).

use base64::Engine as _;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use url::Url;

/// How long one request may take, from resolving the host to the answer's status.
pub const LIMIT: Duration = Duration::from_secs(1);

/// A Pushgateway and the job its groups are under.
pub struct Gateway {
    url: String,
    job: String,
    client: std::sync::OnceLock<reqwest::Client>,
}

/// One name/value pair of a Pushgateway path: the value as is, or, when a path
/// segment cannot carry it (a `/`, or empty), base64url under `name@base64`, as the
/// Pushgateway documents. Other characters are percent-encoded by [`Url`].
fn path_pair(name: &str, value: &str) -> [String; 2] {
    if value.is_empty() {
        [format!("{name}@base64"), "=".to_string()]
    } else if value.contains('/') {
        [
            format!("{name}@base64"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value),
        ]
    } else {
        [name.to_string(), value.to_string()]
    }
}

/// `{base}/metrics/job/{job}/{k}/{v}...`, each name and value its own path segment.
pub fn push_url(base: &str, job: &str, grouping: &BTreeMap<String, String>) -> Result<Url, String> {
    let mut url = Url::parse(base)
        .map_err(|e| format!("pushgateway_url '{}' is not a valid URL: {e}", shown(base)))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "pushgateway_url must be an http(s) URL, got {}",
            shown(base)
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| format!("pushgateway_url {} cannot have a path", shown(base)))?;
        path.pop_if_empty().push("metrics");
        path.extend(path_pair("job", job));
        for (k, v) in grouping {
            path.extend(path_pair(k, v));
        }
    }
    Ok(url)
}

/// A URL as messages show it: without a user or password (and, when it does not
/// parse but may hold one, not at all).
pub fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) if url.contains('@') => "(not shown: it may hold a password)".to_string(),
        _ => url.to_string(),
    }
}

/// A reqwest error as a sentence naming `shown`, the destination (the error's own URL,
/// which may carry a password, left out).
pub fn describe(shown: &str, e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        format!("no answer from {shown} within {LIMIT:?}")
    } else if e.is_connect() {
        format!(
            "cannot reach {shown}: {}",
            crate::provider::http::describe_error(&e)
        )
    } else {
        format!(
            "request to {shown} failed: {}",
            crate::provider::http::describe_error(&e)
        )
    }
}

impl Gateway {
    /// The gateway at `url` (a base: `/metrics/job/...` is appended), under `job`.
    pub fn new(url: impl Into<String>, job: impl Into<String>) -> Gateway {
        Gateway {
            url: url.into(),
            job: job.into(),
            client: std::sync::OnceLock::new(),
        }
    }

    /// The URL as messages show it.
    pub fn shown(&self) -> String {
        shown(&self.url)
    }

    /// The group's URL (checked: a typo is known before the run starts).
    pub fn group_url(&self, grouping: &BTreeMap<String, String>) -> Result<Url, String> {
        push_url(&self.url, &self.job, grouping)
    }

    /// `PUT` the exposition `body` as the group (replacing it), within [`LIMIT`].
    pub async fn put(
        &self,
        grouping: &BTreeMap<String, String>,
        body: String,
    ) -> Result<(), String> {
        let url = self.group_url(grouping)?;
        let req = self
            .client()?
            .put(url)
            .header("content-type", "text/plain; version=0.0.4")
            .body(body);
        self.send(req).await
    }

    /// `DELETE` the group, within [`LIMIT`].
    pub async fn delete(&self, grouping: &BTreeMap<String, String>) -> Result<(), String> {
        let url = self.group_url(grouping)?;
        let req = self.client()?.delete(url);
        self.send(req).await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(), String> {
        send(req, &self.shown()).await
    }

    /// The client every request shares (building one is not free: sharing it took a
    /// run with a refused gateway from about 0.16 s to 0.06 s in a debug build).
    /// It keeps no idle connection: the next request may run on another runtime.
    fn client(&self) -> Result<reqwest::Client, String> {
        if let Some(c) = self.client.get() {
            return Ok(c.clone());
        }
        let c = client()?;
        Ok(self.client.get_or_init(|| c).clone())
    }
}

/// Sends `req` within [`LIMIT`] (resolving the host included); a refusal says the
/// status and the first line of the receiver's body (a Pushgateway or a remote-write
/// receiver says there why it refused: an invalid label name, an out-of-order
/// sample). `shown` names the receiver without credentials.
pub async fn send(req: reqwest::RequestBuilder, shown: &str) -> Result<(), String> {
    // reqwest's timeout covers the request; this one also covers resolving the host,
    // which runs on a thread of its own.
    let resp = match tokio::time::timeout(LIMIT, req.send()).await {
        Err(_) => return Err(format!("no answer from {shown} within {LIMIT:?}")),
        Ok(Err(e)) => return Err(describe(shown, e)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let why = tokio::time::timeout(LIMIT, resp.text())
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.chars().take(200).collect::<String>())
        })
        .filter(|l| !l.trim().is_empty());
    Err(match why {
        Some(why) => format!("{shown} answered {}: {why}", status.as_u16()),
        None => format!("{shown} answered {}", status.as_u16()),
    })
}

/// An HTTP client for one request at a time, limited to [`LIMIT`], keeping no idle
/// connection.
pub fn client() -> Result<reqwest::Client, String> {
    crate::tls::init();
    reqwest::Client::builder()
        .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
        .timeout(LIMIT)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| {
            format!(
                "cannot build an HTTP client: {}",
                crate::provider::http::describe_error(&e)
            )
        })
}

/// Run `f`'s future from synchronous code (inside a runtime or not): on a thread of
/// its own with a runtime of its own, shut down without waiting for a host lookup
/// that outlives the limit. On a multi-threaded runtime, this worker's other tasks
/// (another run in the same process) move elsewhere while it waits.
pub fn blocking<T, F, Fut>(f: F) -> Result<T, String>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<T, String>>,
{
    let run = || {
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the request: {e}"))?;
                let out = rt.block_on(f());
                rt.shutdown_background();
                out
            })
            .join()
            .unwrap_or_else(|_| Err("the request panicked".to_string()))
        })
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_values_a_path_segment_cannot_carry_are_base64() {
        let grouping = BTreeMap::from([
            ("empty".to_string(), String::new()),
            ("path".to_string(), "/var/tmp".to_string()),
            ("plain".to_string(), "a b?c".to_string()),
        ]);
        let url = push_url("http://127.0.0.1:9091/base/", "j/x", &grouping).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9091/base/metrics/job@base64/ai94/empty@base64/=\
             /path@base64/L3Zhci90bXA/plain/a%20b%3Fc"
        );
        let e = push_url("ftp://h", "j", &grouping).unwrap_err();
        assert!(e.contains("pushgateway_url must be an http(s) URL"), "{e}");
        let e = push_url("http://u:s3cret@:9091", "j", &grouping).unwrap_err();
        assert!(
            e.contains("pushgateway_url") && !e.contains("s3cret"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_dead_gateway_is_an_error_not_a_hang() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let g = Gateway::new(format!("http://127.0.0.1:{port}"), "j");
        let e = g.put(&BTreeMap::new(), "x 1\n".into()).await.unwrap_err();
        assert!(e.contains("cannot reach"), "{e}");
        let e = g.delete(&BTreeMap::new()).await.unwrap_err();
        assert!(e.contains("cannot reach"), "{e}");
    }
}
