//! Delivering a control's notices over HTTP, shared by the controls that tell other
//! systems about a run (`faultline.grafana`, `faultline.webhook`): a bounded retry
//! policy, one send with it, a background delivery the end of the run can wait for
//! with a bound, and the masking every body and message goes through.
//!
//! A notice never changes the run: a delivery tries at most [`Retry::DEFAULT`]'s
//! attempts within its budget, and what failed is kept for a warning at the end
//! ([`DELIVERY_FAILED`]). Each delivery runs on a thread of its own with a runtime of
//! its own, so neither a current-thread runtime (the CLI's) nor a blocking hook
//! (`after_experiment`) can starve or deadlock it.

use crate::redact::Redactor;
use serde_json::Value;
use std::future::Future;
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};
use url::Url;

/// The event name of a notice that could not be delivered (a warning at the end of
/// the run).
pub const DELIVERY_FAILED: &str = "notify.failed";

/// How hard one delivery tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The pause after the first failed attempt; it doubles after each.
    pub first_backoff: Duration,
    /// The most one attempt may take, from resolving the host to the answer.
    pub attempt_limit: Duration,
    /// The most the whole delivery may take, pauses included.
    pub budget: Duration,
}

impl Retry {
    /// 3 attempts, 200 ms then 400 ms apart, 1 s each, 3 s in all.
    pub const DEFAULT: Retry = Retry {
        attempts: 3,
        first_backoff: Duration::from_millis(200),
        attempt_limit: Duration::from_secs(1),
        budget: Duration::from_secs(3),
    };

    /// After attempt `n` (1-based) failed with `failure`, `elapsed` after the first
    /// began: the pause before trying again, or `None` to give up (not worth
    /// retrying, no attempt left, or no time left for the pause and an attempt).
    pub fn next(&self, n: u32, failure: &Failure, elapsed: Duration) -> Option<Duration> {
        if !failure.retryable() || n >= self.attempts {
            return None;
        }
        let pause = self
            .first_backoff
            .saturating_mul(1u32 << n.saturating_sub(1).min(16));
        // An attempt squeezed into less than a tenth of its limit would only time out.
        let needed = elapsed + pause + self.attempt_limit / 10;
        (needed < self.budget).then_some(pause)
    }

    /// The limit of an attempt beginning `elapsed` after the first: its own limit,
    /// cut to what is left of the budget.
    pub fn limit_at(&self, elapsed: Duration) -> Duration {
        self.attempt_limit.min(self.budget.saturating_sub(elapsed))
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection (refused, unresolvable host, TLS).
    Unreachable(String),
    /// No answer within the attempt's limit.
    Timeout(Duration),
    /// The connection broke mid-request.
    Broken(String),
    /// The server answered with an error status, and maybe why.
    Status(u16, Option<String>),
    /// The request could not be made (a bad header value).
    Request(String),
}

impl Failure {
    /// Network errors, 408, 429 and 5xx are worth another attempt; other answers
    /// would be the same the next time.
    pub fn retryable(&self) -> bool {
        match self {
            Failure::Unreachable(_) | Failure::Timeout(_) | Failure::Broken(_) => true,
            Failure::Status(s, _) => retryable_status(*s),
            Failure::Request(_) => false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(e) => write!(f, "cannot reach it: {e}"),
            Failure::Timeout(d) => write!(f, "no answer within {d:?}"),
            Failure::Broken(e) => write!(f, "the request failed: {e}"),
            Failure::Status(s, Some(why)) => write!(f, "it answered {s}: {why}"),
            Failure::Status(s, None) => write!(f, "it answered {s}"),
            Failure::Request(e) => write!(f, "the request cannot be made: {e}"),
        }
    }
}

/// Statuses worth another attempt: 408, 429 and 5xx.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// One notice: where, how, what.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `POST`, `PATCH`, ...
    pub method: reqwest::Method,
    /// Where it goes.
    pub url: Url,
    /// The JSON body (already masked).
    pub body: Value,
}

/// Where notices go and with what credentials: a client, its headers and retry
/// policy.
#[derive(Clone)]
pub struct Endpoint {
    /// Headers sent with every notice (`Authorization` among them).
    pub headers: Vec<(String, String)>,
    /// How hard each delivery tries.
    pub retry: Retry,
    /// The URL as messages show it (no credentials, no secret path).
    pub shown: String,
    client: reqwest::Client,
}

/// What a delivered notice got back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The (successful) status.
    pub status: u16,
    /// The body as text (at most 64 KiB kept).
    pub body: String,
}

/// The most of an answer's body kept (Grafana answers a few bytes).
const ANSWER_LIMIT: usize = 64 * 1024;

impl Endpoint {
    /// An endpoint with its own client. The client keeps no idle connection: the
    /// deliveries of one run use runtimes of their own.
    pub fn new(
        headers: Vec<(String, String)>,
        retry: Retry,
        shown: String,
    ) -> Result<Endpoint, String> {
        crate::tls::init();
        let client = reqwest::Client::builder()
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
            .timeout(retry.attempt_limit)
            .pool_max_idle_per_host(0)
            .build()
            .map_err(|e| {
                format!(
                    "cannot build an HTTP client: {}",
                    crate::provider::http::describe_error(&e)
                )
            })?;
        Ok(Endpoint {
            headers,
            retry,
            shown,
            client,
        })
    }

    /// One attempt, within `limit`.
    async fn attempt(&self, notice: &Notice, limit: Duration) -> Result<Answer, Failure> {
        let mut req = self
            .client
            .request(notice.method.clone(), notice.url.clone())
            .timeout(limit)
            .json(&notice.body);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        // reqwest's timeout covers the request; this one also covers resolving the
        // host, which runs on a thread of its own.
        let resp = match tokio::time::timeout(limit, req.send()).await {
            Err(_) => return Err(Failure::Timeout(limit)),
            Ok(Err(e)) => return Err(classify(e, limit)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(limit, resp.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|b| String::from_utf8_lossy(&b[..b.len().min(ANSWER_LIMIT)]).into_owned())
            .unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(Answer { status, body });
        }
        // The server's reason, when it gives one, in its first line.
        let why = body
            .lines()
            .next()
            .map(|l| l.chars().take(200).collect::<String>())
            .filter(|l| !l.trim().is_empty());
        Err(Failure::Status(status, why))
    }

    /// Deliver `notice` under the retry policy. The error names what was sent, where
    /// (as shown), how many attempts were made and the last failure.
    pub async fn deliver(&self, what: &str, notice: &Notice) -> Result<Answer, String> {
        let first = Instant::now();
        let mut n = 0;
        loop {
            n += 1;
            let limit = self.retry.limit_at(first.elapsed());
            let failure = match self.attempt(notice, limit).await {
                Ok(a) => return Ok(a),
                Err(f) => f,
            };
            match self.retry.next(n, &failure, first.elapsed()) {
                Some(pause) => tokio::time::sleep(pause).await,
                None => {
                    return Err(format!(
                        "{what} ({} {}) not delivered after {n} attempt(s): {failure}",
                        notice.method, self.shown
                    ))
                }
            }
        }
    }
}

/// A reqwest error as a [`Failure`], without its URL (it may hold credentials).
fn classify(e: reqwest::Error, limit: Duration) -> Failure {
    let (timeout, connect, builder) = (e.is_timeout(), e.is_connect(), e.is_builder());
    let text = crate::provider::http::describe_error(&e.without_url());
    if timeout {
        Failure::Timeout(limit)
    } else if connect {
        Failure::Unreachable(text)
    } else if builder {
        Failure::Request(text)
    } else {
        Failure::Broken(text)
    }
}

/// A delivery running in the background, on a thread and runtime of its own.
pub struct Pending<T>(mpsc::Receiver<T>);

impl<T: Send + 'static> Pending<T> {
    /// Start `work` now; [`Pending::wait`] gets its result.
    pub fn spawn<F>(work: F) -> Pending<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let started = std::thread::Builder::new()
            .name("faultline-notify".into())
            .spawn(move || {
                if let Some(out) = on_own_runtime(work) {
                    let _ = tx.send(out);
                }
            });
        // Without a thread the result never comes: `wait` says so at once.
        drop(started);
        Pending(rx)
    }

    /// Its result, waiting at most `limit`; `None` if it did not finish in time.
    pub fn wait(self, limit: Duration) -> Option<T> {
        self.0.recv_timeout(limit).ok()
    }
}

/// Run `work` to its end on a current-thread runtime of its own, then drop the
/// runtime without waiting for a host lookup that outlived the work's limits.
fn on_own_runtime<T>(work: impl Future<Output = T>) -> Option<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let out = rt.block_on(work);
    rt.shutdown_background();
    Some(out)
}

/// What every body and message of a control goes through: the run's redactor (its
/// secrets, learnt once they are resolved) and the control's own credentials.
#[derive(Default)]
pub struct Mask {
    run: OnceLock<Redactor>,
    own: OnceLock<Redactor>,
}

impl Mask {
    /// Mask the control's own credentials (a token, a secret URL) from now on.
    pub fn own(&self, values: Vec<String>) {
        let _ = self.own.set(Redactor::new(values));
    }

    /// Mask the run's secrets from now on.
    pub fn learn(&self, run: &Redactor) {
        let _ = self.run.set(run.clone());
    }

    /// `s`, masked.
    pub fn text(&self, s: &str) -> String {
        let s = match self.own.get() {
            Some(r) => r.text(s).into_owned(),
            None => s.to_string(),
        };
        match self.run.get() {
            Some(r) => r.text(&s).into_owned(),
            None => s,
        }
    }

    /// `v`, every string in it masked.
    pub fn value(&self, v: Value) -> Value {
        let v = match self.own.get() {
            Some(r) => r.into_value(v),
            None => v,
        };
        match self.run.get() {
            Some(r) => r.into_value(v),
            None => v,
        }
    }
}

/// A URL as messages show it: without a user or password (and, when it does not
/// parse but may hold one, not at all). With `origin_only`, only the scheme, host and
/// port: a webhook's path is often its secret (Slack's are).
pub fn shown(url: &str, origin_only: bool) -> String {
    match Url::parse(url) {
        Ok(u) if origin_only => u.origin().ascii_serialization(),
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(a URL that does not parse)".to_string(),
    }
}

/// An http(s) URL argument, checked.
pub fn http_url(arg: &str, value: &str) -> Result<Url, String> {
    let u = Url::parse(value)
        .map_err(|e| format!("'{arg}' is not a valid URL ({}): {e}", shown(value, true)))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(format!(
            "'{arg}' must be an http(s) URL, got a {} URL",
            u.scheme()
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{arg}' has no host"));
    }
    Ok(u)
}

/// A credential argument: given as is (`name`), or the name of an environment
/// variable holding it (`name_env`). Which the declaration used is kept until the
/// run's environment and secrets are known ([`Credential::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Not given as an argument: the secrets may hold it.
    Unset,
    /// Written in the declaration.
    Given(String),
    /// In this environment variable.
    Env(String),
}

impl Credential {
    /// From the arguments `name` and `name_env` (a string each).
    pub fn from_arguments(args: &Value, name: &str) -> Result<Credential, String> {
        let env_key = format!("{name}_env");
        match (args.get(name), args.get(&env_key)) {
            (Some(_), Some(_)) => Err(format!("give '{name}' or '{env_key}', not both")),
            (Some(Value::String(s)), None) => Ok(Credential::Given(s.clone())),
            (None, Some(Value::String(s))) if !s.is_empty() => Ok(Credential::Env(s.clone())),
            (Some(_), None) => Err(format!("'{name}' must be a string")),
            (None, Some(_)) => Err(format!("'{env_key}' must name an environment variable")),
            (None, None) => Ok(Credential::Unset),
        }
    }

    /// The value: as given, from the environment, else `key` in the first of
    /// `scopes` of the run's secrets that has it. `Ok(None)` when nothing gives one
    /// and none was asked for; an error when the variable named is not set, or when
    /// `required_scopes` (declared by the control) lack it.
    pub fn resolve(
        &self,
        arg: &str,
        key: &str,
        scopes: &[String],
        required: bool,
        secrets: &serde_json::Map<String, Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, String> {
        match self {
            Credential::Given(s) => Ok(Some(s.clone())),
            Credential::Env(var) => match env(var) {
                Some(v) if !v.is_empty() => Ok(Some(v)),
                _ => Err(format!("'{arg}_env' names {var}, which is not set")),
            },
            Credential::Unset => {
                let found = scopes.iter().find_map(|s| {
                    secrets
                        .get(s)
                        .and_then(|scope| scope.get(key))
                        .and_then(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Null => None,
                            other => Some(other.to_string()),
                        })
                });
                match found {
                    Some(v) => Ok(Some(v)),
                    None if required => Err(format!(
                        "no '{arg}' argument, and none of the secret scopes it declares ({}) has '{key}'",
                        scopes.join(", ")
                    )),
                    None => Ok(None),
                }
            }
        }
    }
}

/// A built-in control that delivers notices: the app resolves its credentials once
/// the run's secrets are known, hands it the run's redactor, and reports what it
/// could not deliver at the end.
pub trait Notifier: Send + Sync {
    /// How messages name it: `control 'name' (module)`.
    fn describe(&self) -> String;
    /// Resolve credentials from the run's secrets and environment. Returns the
    /// values to mask as secrets (a token from the environment); an error when a
    /// credential asked for is missing (the run is refused).
    fn prepare(
        &self,
        secrets: &serde_json::Map<String, Value>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, String>;
    /// The run's redactor: every body and message is masked with it.
    fn learn(&self, redactor: &Redactor);
    /// Wait for deliveries still under way, until `deadline` at most, then every
    /// delivery that failed, masked, for warnings at the end.
    fn finish(&self, deadline: Instant) -> Vec<String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const R: Retry = Retry::DEFAULT;

    /// `work` on a runtime of its own, as the controls' deliveries run.
    fn block_on<T>(work: impl Future<Output = T>) -> Option<T> {
        on_own_runtime(work)
    }
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn network_errors_429_and_5xx_are_retried_with_doubling_pauses() {
        let net = Failure::Unreachable("refused".into());
        assert_eq!(R.next(1, &net, MS(5)), Some(MS(200)));
        assert_eq!(R.next(2, &net, MS(300)), Some(MS(400)));
        assert_eq!(R.next(3, &net, MS(900)), None, "3 attempts at most");
        for s in [408, 429, 500, 502, 503, 599] {
            assert!(R.next(1, &Failure::Status(s, None), MS(0)).is_some(), "{s}");
        }
        assert!(R.next(1, &Failure::Timeout(MS(1000)), MS(1000)).is_some());
        assert!(R.next(1, &Failure::Broken("reset".into()), MS(0)).is_some());
    }

    #[test]
    fn other_answers_are_not_retried() {
        for s in [400, 401, 403, 404, 422] {
            assert_eq!(R.next(1, &Failure::Status(s, None), MS(0)), None, "{s}");
        }
        assert_eq!(
            R.next(1, &Failure::Request("bad header".into()), MS(0)),
            None
        );
    }

    #[test]
    fn the_budget_bounds_the_whole_delivery() {
        let t = Failure::Timeout(MS(1000));
        // Two attempts of a second and a pause: no time left for a third worth it.
        assert_eq!(R.next(2, &t, MS(2_850)), None);
        assert_eq!(R.limit_at(MS(0)), MS(1000));
        assert_eq!(R.limit_at(MS(2_500)), MS(500));
        assert_eq!(R.limit_at(MS(4_000)), MS(0));
        // The worst case: every attempt uses its limit, the pauses in between.
        let (mut elapsed, mut n) = (MS(0), 1);
        loop {
            elapsed += R.limit_at(elapsed);
            match R.next(n, &t, elapsed) {
                Some(p) => elapsed += p,
                None => break,
            }
            n += 1;
        }
        assert!(elapsed <= R.budget, "{elapsed:?}");
    }

    #[test]
    fn urls_are_shown_without_credentials_or_secret_paths() {
        assert_eq!(
            shown("https://u:pw@grafana.example:3000/g/?auth=pw", false),
            "https://grafana.example:3000/g/"
        );
        assert_eq!(
            shown("https://hooks.slack.com/services/T0/B0/XXXX", true),
            "https://hooks.slack.com"
        );
        assert!(!shown("http://u:pw@", false).contains("pw"));
        assert!(http_url("url", "ftp://x").unwrap_err().contains("http(s)"));
        let e = http_url("url", "not a url with a s3cret").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn credentials_come_from_the_argument_the_environment_or_the_secrets() {
        let secrets = json!({"grafana": {"token": "from-secrets"}});
        let secrets = secrets.as_object().unwrap();
        let env = |k: &str| (k == "TOKEN").then(|| "from-env".to_string());
        let scopes = ["grafana".to_string()];
        let resolve = |args: Value, required| {
            Credential::from_arguments(&args, "token")?
                .resolve("token", "token", &scopes, required, secrets, &env)
        };
        assert_eq!(resolve(json!({"token": "t"}), false), Ok(Some("t".into())));
        assert_eq!(
            resolve(json!({"token_env": "TOKEN"}), false),
            Ok(Some("from-env".into()))
        );
        assert_eq!(resolve(json!({}), false), Ok(Some("from-secrets".into())));
        let e = resolve(json!({"token_env": "NOPE"}), false).unwrap_err();
        assert!(e.contains("NOPE, which is not set"), "{e}");
        assert!(resolve(json!({"token": "a", "token_env": "B"}), false).is_err());
        let none = serde_json::Map::new();
        let c = Credential::Unset;
        assert_eq!(
            c.resolve("token", "token", &scopes, false, &none, &env),
            Ok(None)
        );
        assert!(c
            .resolve("token", "token", &scopes, true, &none, &env)
            .unwrap_err()
            .contains("grafana"));
    }

    #[test]
    fn the_mask_covers_the_run_secrets_and_the_control_own() {
        let m = Mask::default();
        m.own(vec!["tok-123".into()]);
        m.learn(&Redactor::new(["s3cret".to_string()]));
        assert_eq!(m.text("a tok-123 and s3cret"), "a *** and ***");
        assert_eq!(
            m.value(json!({"t": ["x s3cret", "Bearer tok-123"]})),
            json!({"t": ["x ***", "Bearer ***"]})
        );
    }

    #[test]
    fn a_delivery_is_retried_then_succeeds() {
        let srv = crate::test_http::Server::scripted(
            vec![
                crate::test_http::Response::status(503),
                crate::test_http::Response::status(429),
            ],
            crate::test_http::Response::text(200, "{\"id\": 7}"),
        );
        let ep = Endpoint::new(
            vec![("authorization".into(), "Bearer t".into())],
            Retry::DEFAULT,
            srv.url(""),
        )
        .unwrap();
        let notice = Notice {
            method: reqwest::Method::POST,
            url: Url::parse(&srv.url("/x")).unwrap(),
            body: json!({"a": 1}),
        };
        let a = block_on(ep.deliver("n", &notice)).unwrap().unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "{\"id\": 7}"));
        let reqs = srv.requests();
        assert_eq!(reqs.len(), 3);
        assert_eq!(reqs[2].header("authorization"), Some("Bearer t"));
        assert_eq!(reqs[2].text(), "{\"a\":1}");
    }

    #[test]
    fn a_refused_answer_is_not_retried_and_says_why() {
        let srv = crate::test_http::Server::start(|_| {
            crate::test_http::Response::text(401, "invalid API key\nmore")
        });
        let ep = Endpoint::new(Vec::new(), Retry::DEFAULT, "shown".into()).unwrap();
        let notice = Notice {
            method: reqwest::Method::PATCH,
            url: Url::parse(&srv.url("/x")).unwrap(),
            body: json!({}),
        };
        let e = block_on(ep.deliver("end", &notice)).unwrap().unwrap_err();
        assert_eq!(
            e,
            "end (PATCH shown) not delivered after 1 attempt(s): it answered 401: invalid API key"
        );
        assert_eq!(srv.requests().len(), 1);
    }

    #[test]
    fn a_background_delivery_is_waited_for_with_a_bound() {
        let p = Pending::spawn(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            1
        });
        let t = Instant::now();
        assert_eq!(p.wait(MS(50)), None);
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(
            Pending::spawn(async { 2 }).wait(Duration::from_secs(5)),
            Some(2)
        );
    }
}
