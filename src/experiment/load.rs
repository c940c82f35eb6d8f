//! Reading an experiment (or a var file) from a file or an http(s) URL, as JSON or YAML.
//!
//! A URL is fetched under one time limit (`--fetch-timeout`, `fetch_timeout`) and one
//! size limit (`fetch_limit`): a server that accepts the connection and never answers,
//! or answers without end, must not hold a run (or a scheduler's slot) for long, nor
//! fill memory. Its errors say which step was waited for: connecting or the answer.

use super::Problem;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long fetching an experiment URL may take, by default (seconds).
pub const DEFAULT_FETCH_TIMEOUT: f64 = 30.0;

/// The largest experiment accepted from a URL, by default: 4 MiB (a large experiment
/// is tens of KiB; parsing costs several times the text).
pub const DEFAULT_FETCH_LIMIT: u64 = 4 * 1024 * 1024;

/// The limits on fetching an experiment from a URL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FetchOptions {
    /// The whole fetch: connecting, the answer, its body.
    pub timeout: Duration,
    /// The most bytes accepted.
    pub limit: u64,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            timeout: Duration::from_secs(DEFAULT_FETCH_TIMEOUT as u64),
            limit: DEFAULT_FETCH_LIMIT,
        }
    }
}

/// Seconds as a fetch timeout: positive and within [`crate::duration::MAX_SECONDS`].
pub fn fetch_timeout(secs: f64) -> Result<Duration, String> {
    crate::duration::positive_seconds(secs).map_err(|e| format!("the fetch timeout: {e}"))
}

/// The syntax a document was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A loaded document: its text and its value.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from, for messages.
    pub source: String,
    /// The text as read.
    pub text: String,
    /// Its syntax.
    pub format: Format,
    /// The parsed value.
    pub value: Value,
    /// Keys written twice (the last value is kept, as the Chaos Toolkit does): warnings
    /// naming both places.
    pub warnings: Vec<Problem>,
}

/// Why a document could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The URL could not be fetched.
    #[error("cannot fetch {url}: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("cannot fetch {url}: {waiting} took longer than the fetch timeout of {seconds} s; raise it with --fetch-timeout SECONDS or fetch_timeout in the settings file")]
    FetchTimeout {
        /// The URL.
        url: String,
        /// What was being waited for ("connecting to the server", ...).
        waiting: &'static str,
        /// The limit, in seconds.
        seconds: f64,
    },
    /// The document is larger than the fetch limit.
    #[error("cannot fetch {url}: the experiment is larger than the fetch limit of {limit} bytes ({received} bytes); raise fetch_limit in the settings file if it really is that large")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit, in bytes.
        limit: u64,
        /// What the server announced or sent before faultline stopped reading.
        received: String,
    },
    /// The text is not valid JSON/YAML.
    #[error("{source_name}: {problem}")]
    Syntax {
        /// Where the text came from.
        source_name: String,
        /// What and where.
        problem: Box<Problem>,
    },
}

impl LoadError {
    /// The problem this error amounts to, for `validate`'s report.
    pub fn to_problem(&self) -> Problem {
        match self {
            LoadError::Syntax { problem, .. } => (**problem).clone(),
            other => Problem::new("$", other.to_string()),
        }
    }
}

/// True for `http://` and `https://` locations.
pub fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

/// The format a file name (or a URL's path) says, else its content type.
fn format_for(name: &str, content_type: Option<&str>) -> Option<Format> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") {
        return Some(Format::Yaml);
    }
    if lower.ends_with(".json") {
        return Some(Format::Json);
    }
    match content_type {
        Some(ct) if ct.contains("json") => Some(Format::Json),
        Some(ct) if ct.contains("yaml") => Some(Format::Yaml),
        _ => None,
    }
}

/// Load an experiment from a path or an http(s) URL (with the default fetch limits).
pub async fn load(location: &str) -> Result<Document, LoadError> {
    load_with(location, &FetchOptions::default()).await
}

/// Load an experiment from a path or an http(s) URL, fetching under `fetch`'s limits.
pub async fn load_with(location: &str, fetch: &FetchOptions) -> Result<Document, LoadError> {
    if is_url(location) {
        let url = url::Url::parse(location).map_err(|e| LoadError::Fetch {
            url: location.to_string(),
            reason: format!("it is not a valid URL: {e}"),
        })?;
        let (text, ct) = fetch_url(location, url.clone(), fetch).await?;
        // The name is the URL's path: not its query or fragment, nor its host.
        let format = format_for(url.path(), ct.as_deref());
        from_text(location, text, format)
    } else {
        let text = read_text(Path::new(location), location)?;
        let format = format_for(location, None);
        from_text(location, text, format)
    }
}

/// Marks, in a shared flag, that the connector delivered a connection: when the time
/// runs out, this tells "connecting" from "waiting for the answer" (reqwest's own
/// timeouts cannot: they start together and report the same error).
#[derive(Clone)]
struct MarkConnected<S> {
    inner: S,
    connected: Arc<AtomicBool>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, R> tower::Service<R> for MarkConnected<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let connecting = self.inner.call(req);
        let connected = self.connected.clone();
        Box::pin(async move {
            let conn = connecting.await;
            if conn.is_ok() {
                connected.store(true, Ordering::SeqCst);
            }
            conn
        })
    }
}

/// GET the URL: its text and content type, within `fetch`'s time and size.
async fn fetch_url(
    url: &str,
    parsed: url::Url,
    fetch: &FetchOptions,
) -> Result<(String, Option<String>), LoadError> {
    let fetch_err = |reason: String| LoadError::Fetch {
        url: url.to_string(),
        reason,
    };
    let timed_out = |waiting: &'static str| LoadError::FetchTimeout {
        url: url.to_string(),
        waiting,
        seconds: fetch.timeout.as_secs_f64(),
    };
    crate::tls::init();
    let connected = Arc::new(AtomicBool::new(false));
    let flag = connected.clone();
    let client = reqwest::Client::builder()
        .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
        .connector_layer(tower::layer::layer_fn(move |inner| MarkConnected {
            inner,
            connected: flag.clone(),
        }))
        .build()
        .map_err(|e| fetch_err(crate::provider::http::describe_error(&e)))?;
    // One deadline for the whole fetch, whatever step it is in.
    let deadline = tokio::time::Instant::now() + fetch.timeout;
    let request = client
        .get(parsed)
        .header(
            "accept",
            "application/json, application/yaml;q=0.9, */*;q=0.1",
        )
        .send();
    let mut resp = match tokio::time::timeout_at(deadline, request).await {
        Ok(r) => r.map_err(|e| fetch_err(crate::provider::http::describe_error(&e)))?,
        Err(_) if connected.load(Ordering::SeqCst) => {
            return Err(timed_out(
                "waiting for the server's answer (it accepted the connection)",
            ))
        }
        Err(_) => return Err(timed_out("connecting to the server")),
    };
    let status = resp.status();
    if !status.is_success() {
        return Err(fetch_err(format!("the server answered {status}")));
    }
    let too_large = |received: String| LoadError::TooLarge {
        url: url.to_string(),
        limit: fetch.limit,
        received,
    };
    if let Some(n) = resp.content_length().filter(|n| *n > fetch.limit) {
        return Err(too_large(format!("the server announced {n}")));
    }
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body: Vec<u8> = Vec::new();
    loop {
        let chunk = match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(c) => c.map_err(|e| fetch_err(crate::provider::http::describe_error(&e)))?,
            Err(_) => return Err(timed_out("reading the server's answer")),
        };
        let Some(chunk) = chunk else { break };
        if body.len() as u64 + chunk.len() as u64 > fetch.limit {
            // Stop here: the rest is never read (dropping the response closes it).
            return Err(too_large(format!(
                "more than {} received",
                body.len() + chunk.len()
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((String::from_utf8_lossy(&body).into_owned(), ct))
}

/// Load a local file (var files, settings) synchronously.
pub fn load_file(path: &Path) -> Result<Document, LoadError> {
    let name = path.display().to_string();
    let text = read_text(path, &name)?;
    let format = format_for(&name, None);
    from_text(&name, text, format)
}

/// A file's text; bytes that are not UTF-8 are a syntax problem at their line and
/// column, not an unlocated read error.
fn read_text(path: &Path, name: &str) -> Result<String, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: name.to_string(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // Valid up to here, so this never fails; the fallback keeps it panic-free.
        let before = std::str::from_utf8(valid).unwrap_or_default();
        let mut p = Problem::new("$", "the file is not UTF-8 text")
            .hint("save the file as UTF-8 (JSON and YAML are UTF-8)");
        p.line = Some(before.matches('\n').count() + 1);
        p.column = Some(before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1);
        LoadError::Syntax {
            source_name: name.to_string(),
            problem: Box::new(p),
        }
    })
}

/// Parse text whose format may be unknown (then JSON is tried first, then YAML).
pub fn from_text(
    source: &str,
    text: String,
    format: Option<Format>,
) -> Result<Document, LoadError> {
    // A UTF-8 byte order mark is invisible in editors; accept it rather than fail.
    let text = match text.strip_prefix('\u{feff}') {
        Some(t) => t.to_string(),
        None => text,
    };
    let format = format.unwrap_or_else(|| {
        if text.trim_start().starts_with(['{', '[']) {
            Format::Json
        } else {
            Format::Yaml
        }
    });
    let value = match format {
        Format::Json => serde_json::from_str::<Value>(&text).map_err(|e| {
            // The position is reported in `line`/`column` (in characters, from 1).
            let msg = e.to_string();
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            let mut p = Problem::new("$", format!("invalid JSON: {msg}"))
                .hint("check for a missing comma, quote or bracket just before this point");
            if e.line() > 0 {
                p.line = Some(e.line());
                p.column = Some(char_column(&text, e.line(), e.column()));
            }
            p
        }),
        Format::Yaml => serde_saphyr::from_str_with_options::<Value>(
            &text,
            serde_saphyr::options! {
                duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
            },
        )
        .map_err(|e| {
            let msg = e.to_string();
            let mut p = Problem::new("$", format!("invalid YAML: {msg}"))
                .hint("check the indentation and quoting around this point");
            if let Some((l, c)) = yaml_location(&msg) {
                p.line = Some(l);
                p.column = Some(c);
            }
            p
        }),
    }
    .map_err(|problem| LoadError::Syntax {
        source_name: source.to_string(),
        problem: Box::new(problem),
    })?;
    let warnings = super::duplicates::find(&text, format)
        .iter()
        .map(super::duplicates::Duplicate::to_problem)
        .collect();
    Ok(Document {
        source: source.to_string(),
        text,
        format,
        value,
        warnings,
    })
}

/// serde_json counts columns in bytes (0 at the very end); people count characters
/// from 1.
fn char_column(text: &str, line: usize, byte_col: usize) -> usize {
    let l = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
    let mut end = byte_col.saturating_sub(1).min(l.len());
    while !l.is_char_boundary(end) {
        end -= 1;
    }
    l[..end].chars().count() + 1
}

/// serde-saphyr prints locations as "line L column C"; pick them up when present.
fn yaml_location(msg: &str) -> Option<(usize, usize)> {
    let re = regex::Regex::new(r"line (\d+),? col(?:umn)? (\d+)").ok()?;
    let c = re.captures(msg)?;
    Some((c[1].parse().ok()?, c[2].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_syntax_errors_carry_line_and_column() {
        let e = from_text(
            "x.json",
            "{\n \"title\": \"t\",\n \"method\": [}\n".into(),
            Some(Format::Json),
        )
        .unwrap_err();
        let p = e.to_problem();
        assert_eq!(p.line, Some(3));
        assert!(p.message.contains("invalid JSON"));
    }

    #[test]
    fn yaml_is_detected_and_parsed() {
        let d = from_text("x", "title: t\nmethod: []\n".into(), None).unwrap();
        assert_eq!(d.format, Format::Yaml);
        assert_eq!(d.value["title"], "t");
    }

    #[test]
    fn a_url_names_its_format_by_its_path_alone() {
        let by_url = |u: &str| format_for(url::Url::parse(u).unwrap().path(), None);
        assert_eq!(by_url("http://h/e.YAML?token=x#top"), Some(Format::Yaml));
        assert_eq!(by_url("https://h/e.json?v=a.yaml"), Some(Format::Json));
        assert_eq!(by_url("http://h/e?v=a.yaml"), None);
        assert_eq!(by_url("http://h.json/e"), None);
        let ct = |u: &str, ct| format_for(url::Url::parse(u).unwrap().path(), Some(ct));
        assert_eq!(ct("http://h/e", "application/json"), Some(Format::Json));
    }

    #[tokio::test]
    async fn an_experiment_url_that_does_not_parse_says_so_naming_it() {
        let e = load("http://[::1/e.json").await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("cannot fetch http://[::1/e.json: it is not a valid URL: "),
            "{text}"
        );
    }

    #[test]
    fn malformed_yaml_is_an_error_not_a_panic() {
        let e = from_text("x.yaml", "title: [unclosed\n  - a: b\n".into(), None).unwrap_err();
        assert!(e.to_string().contains("invalid YAML"), "{e}");
    }
}
