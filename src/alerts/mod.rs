//! Alerts: which alerts fire, read from an Alertmanager (its v2 API) or from
//! Prometheus' `ALERTS` series, as one model. Runs use it through the
//! `faultline.alerts` control (`control/alerts.rs`: the alerts that fired during
//! the run); commands that list the alerts firing now (`faultline correlate
//! --alertmanager URL`) call [`firing`].
//!
//! A client and a model, nothing more: it knows neither runs, nor the journal, nor
//! spans (the layering rule in `docs/architecture.md`). Label matchers are parsed once
//! ([`Matcher`], Alertmanager's `filter` syntax, also valid PromQL) and applied to both
//! sources, on the server (`filter=`, the PromQL selector) and again here, so what a
//! source does not filter is filtered anyway. The same labels are the same alert
//! ([`Ledger`]): seen several times, by several polls or by both sources, it is one
//! entry with its first and last sighting.

pub mod alertmanager;
pub mod prometheus;

pub use alertmanager::firing;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// An alert's labels, sorted.
pub type Labels = BTreeMap<String, String>;

/// Where an alert was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An Alertmanager's `GET /api/v2/alerts`.
    Alertmanager,
    /// Prometheus' `ALERTS{alertstate="firing"}` series.
    Prometheus,
}

impl Source {
    /// `alertmanager` or `prometheus`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::Prometheus => "prometheus",
        }
    }
}

/// One alert, as the journal records it (`extensions[0].alerts[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Its `alertname` label.
    pub name: String,
    /// Where it was seen (Alertmanager when both saw it).
    pub source: Source,
    /// Every label (Prometheus' `__name__` and `alertstate` left out).
    pub labels: Labels,
    /// Its state when last seen: Alertmanager's `active`, `suppressed` or
    /// `unprocessed`, Prometheus' `firing`; `resolved` when it was gone by the end.
    pub state: String,
    /// When it started firing, when known (`null`: before the window, or unknown).
    pub starts_at: Option<DateTime<Utc>>,
    /// When it stopped firing, when known (`null`: still firing at the end).
    pub ends_at: Option<DateTime<Utc>>,
    /// Alertmanager's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The first time it was seen firing.
    pub first_seen: DateTime<Utc>,
    /// The last time it was seen firing.
    pub last_seen: DateTime<Utc>,
    /// Its `summary` annotation, when it has one (Alertmanager).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The state of an alert no longer firing at the end of the window.
pub const RESOLVED: &str = "resolved";

/// Why alerts could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertsError {
    /// The request cannot be made as given (a bad URL, a bad token).
    #[error("{0}")]
    Invalid(String),
    /// Nothing answered.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL, without credentials.
        url: String,
        /// What the connection said.
        reason: String,
    },
    /// No answer in time.
    #[error("{url} did not answer within {seconds}s")]
    Timeout {
        /// The URL, without credentials.
        url: String,
        /// The limit.
        seconds: f64,
    },
    /// The server refused the request.
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// The URL, without credentials.
        url: String,
        /// The HTTP status (or Prometheus' error type).
        status: String,
        /// Its reason, cut short.
        message: String,
    },
    /// The answer is not what the API sends.
    #[error("unexpected answer from {url}: {reason}")]
    Malformed {
        /// The URL, without credentials.
        url: String,
        /// What was wrong.
        reason: String,
    },
}

/// How to reach an Alertmanager or a Prometheus.
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    /// The base URL (a path prefix is kept).
    pub url: String,
    /// A bearer token (from secrets).
    pub token: Option<String>,
    /// The most one request may take, connecting included.
    pub timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    // Never the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &shown(&self.url))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint without a token.
    pub fn new(url: &str, timeout: Duration) -> Endpoint {
        Endpoint {
            url: url.trim_end_matches('/').to_string(),
            token: None,
            timeout,
        }
    }

    /// The URL as messages show it.
    pub fn shown(&self) -> String {
        shown(&self.url)
    }
}

/// A URL as messages show it: without a user or password (and, when it does not
/// parse but may hold one, not at all).
pub fn shown(url: &str) -> String {
    // `user:password@host` without a scheme parses as the scheme `user`.
    if url.contains('@') && !url.contains("://") {
        return "(URL not shown: it may hold a password)".to_string();
    }
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// `url` checked: it parses and is http(s).
pub fn check_url(url: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(url).map_err(|e| format!("'{}' is not a URL: {e}", shown(url)))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("'{}' must be an http(s) URL", shown(url)));
    }
    Ok(u)
}

/// An HTTP client for these requests (no connection kept between polls seconds
/// apart: a client may outlive the runtime of its first request).
pub fn client(timeout: Duration) -> Result<reqwest::Client, AlertsError> {
    crate::tls::init();
    reqwest::Client::builder()
        .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| {
            AlertsError::Invalid(format!(
                "cannot build an HTTP client: {}",
                crate::provider::http::describe_error(&e)
            ))
        })
}

/// `GET url` with the endpoint's token, within its timeout: the status and body.
async fn get(
    client: &reqwest::Client,
    ep: &Endpoint,
    url: url::Url,
) -> Result<(u16, String), AlertsError> {
    let shown = ep.shown();
    let mut req = client.get(url);
    if let Some(t) = &ep.token {
        let mut v =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                AlertsError::Invalid("the bearer token holds characters a header cannot".into())
            })?;
        v.set_sensitive(true);
        req = req.header(reqwest::header::AUTHORIZATION, v);
    }
    let timeout = || AlertsError::Timeout {
        url: shown.clone(),
        seconds: ep.timeout.as_secs_f64(),
    };
    let exchange = async {
        let resp = req.send().await?;
        let code = resp.status().as_u16();
        let body = resp.text().await?;
        Ok::<_, reqwest::Error>((code, body))
    };
    // reqwest's timeout covers the request; this one also covers resolving the host.
    match tokio::time::timeout(ep.timeout, exchange).await {
        Err(_) => Err(timeout()),
        Ok(Err(e)) if e.is_timeout() => Err(timeout()),
        Ok(Err(e)) => Err(AlertsError::Unreachable {
            url: shown.clone(),
            reason: crate::provider::http::describe_error(&e.without_url()),
        }),
        Ok(Ok(r)) => Ok(r),
    }
}

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored, as Prometheus and Alertmanager anchor it)
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One label matcher: `service="checkout"`, `severity=~"critical|page"`.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label.
    pub name: String,
    /// How it compares.
    pub op: MatchOp,
    /// The value (a regular expression for `=~` and `!~`).
    pub value: String,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Matcher) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}

/// A label name as Prometheus takes it: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn valid_label_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

impl Matcher {
    /// A matcher, its name and regular expression checked.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        if !valid_label_name(name) {
            return Err(format!(
                "'{name}' is not a label name (letters, digits and '_', not starting with a digit)"
            ));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    format!(
                        "{name}{}\"{value}\": not a regular expression: {e}",
                        op.as_str()
                    )
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// `name="value"`.
    pub fn equal(name: &str, value: &str) -> Result<Matcher, String> {
        Matcher::new(name, MatchOp::Equal, value)
    }

    /// One matcher as written (`service="checkout"`, `env!=dev`).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let ms = parse_matchers(text)?;
        match <[Matcher; 1]>::try_from(ms) {
            Ok([m]) => Ok(m),
            Err(ms) => Err(format!(
                "{text:?}: one matcher expected, found {}",
                ms.len()
            )),
        }
    }

    /// Whether `labels` match (a missing label is the empty value, as in PromQL).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(r)) => r.is_match(v),
            (MatchOp::NotRegex, Some(r)) => !r.is_match(v),
            (_, None) => false,
        }
    }
}

impl std::fmt::Display for Matcher {
    /// `name<op>"value"`, the value quoted and escaped: Alertmanager's `filter` and
    /// PromQL both read it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// Whether every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Matchers as written: `service="checkout", severity=~"critical|page"`, optionally
/// in braces; values quoted (with `\"`, `\\`, `\n` escapes) or bare up to the next
/// comma. Every problem is an error naming what was expected.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let chars: Vec<char> = text.trim().chars().collect();
    let mut i = 0;
    let braced = chars.first() == Some(&'{');
    let end = if braced {
        if chars.last() != Some(&'}') {
            return Err(format!(
                "{text:?}: an opening '{{' without its closing '}}'"
            ));
        }
        i = 1;
        chars.len() - 1
    } else {
        chars.len()
    };
    let skip_ws = |i: &mut usize| {
        while *i < end && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let mut out = Vec::new();
    loop {
        skip_ws(&mut i);
        if i >= end {
            break;
        }
        let start = i;
        while i < end && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        if name.is_empty() {
            return Err(format!(
                "{text:?}: a label name was expected at character {}",
                start + 1
            ));
        }
        skip_ws(&mut i);
        let two: String = chars[i..end.min(i + 2)].iter().collect();
        let op = match two.as_str() {
            "=~" => MatchOp::Regex,
            "!=" => MatchOp::NotEqual,
            "!~" => MatchOp::NotRegex,
            t if t.starts_with('=') => MatchOp::Equal,
            _ => {
                return Err(format!(
                    "{text:?}: after '{name}', one of =, !=, =~, !~ was expected"
                ))
            }
        };
        i += op.as_str().len();
        skip_ws(&mut i);
        let value = if chars.get(i) == Some(&'"') && i < end {
            i += 1;
            let mut v = String::new();
            loop {
                match chars.get(i) {
                    Some('"') if i < end => {
                        i += 1;
                        break;
                    }
                    Some('\\') if i + 1 < end => {
                        v.push(match chars[i + 1] {
                            'n' => '\n',
                            't' => '\t',
                            c => c,
                        });
                        i += 2;
                    }
                    Some(c) if i < end => {
                        v.push(*c);
                        i += 1;
                    }
                    _ => {
                        return Err(format!(
                            "{text:?}: the value of '{name}' is not closed by '\"'"
                        ))
                    }
                }
            }
            v
        } else {
            let start = i;
            while i < end && chars[i] != ',' {
                i += 1;
            }
            chars[start..i]
                .iter()
                .collect::<String>()
                .trim()
                .to_string()
        };
        out.push(Matcher::new(&name, op, &value).map_err(|e| format!("{text:?}: {e}"))?);
        skip_ws(&mut i);
        match chars.get(i) {
            _ if i >= end => break,
            Some(',') => i += 1,
            Some(c) => {
                return Err(format!(
                    "{text:?}: ',' expected after the matcher on '{name}', found '{c}'"
                ))
            }
            None => break,
        }
    }
    Ok(out)
}

/// Alerts, deduplicated: the same labels are the same alert, whichever poll or
/// source saw it.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    alerts: BTreeMap<Labels, Alert>,
}

impl Ledger {
    /// Add one sighting. An alert already known keeps its earliest `first_seen` and
    /// `starts_at` and takes the latest `last_seen` with the state and end seen then;
    /// Alertmanager's view (fingerprint, annotations, source) wins over Prometheus'.
    pub fn record(&mut self, a: Alert) {
        let Some(known) = self.alerts.get_mut(&a.labels) else {
            self.alerts.insert(a.labels.clone(), a);
            return;
        };
        if a.last_seen >= known.last_seen {
            known.last_seen = a.last_seen;
            known.state = a.state.clone();
            known.ends_at = a.ends_at;
        }
        if a.first_seen < known.first_seen {
            known.first_seen = a.first_seen;
        }
        known.starts_at = match (known.starts_at, a.starts_at) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        if a.source == Source::Alertmanager {
            known.source = Source::Alertmanager;
        }
        if known.fingerprint.is_none() {
            known.fingerprint = a.fingerprint;
        }
        if known.annotations.is_empty() {
            known.annotations = a.annotations;
        }
    }

    /// Alerts `source` saw before but not in its last complete answer (`present`):
    /// resolved since.
    pub fn resolve_absent(&mut self, source: Source, present: &[Labels]) {
        for (labels, a) in &mut self.alerts {
            if a.source == source && !present.contains(labels) {
                a.state = RESOLVED.to_string();
            }
        }
    }

    /// Every alert, ends after `end` (an Alertmanager's resolve-timeout estimate for
    /// an alert still firing) forgotten: first seen first.
    pub fn alerts(&self, end: DateTime<Utc>) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .alerts
            .values()
            .cloned()
            .map(|mut a| {
                if a.ends_at.is_some_and(|e| e > end) {
                    a.ends_at = None;
                }
                a
            })
            .collect();
        out.sort_by(|a, b| {
            (a.first_seen, &a.name, &a.labels).cmp(&(b.first_seen, &b.name, &b.labels))
        });
        out
    }

    /// How many alerts.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// No alert.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matchers_parse_in_every_form() {
        let ms = parse_matchers(
            r#"{service="checkout", severity=~"critical|page",env!=dev , x!~"a\"b"}"#,
        )
        .unwrap();
        let shown: Vec<String> = ms.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"service="checkout""#,
                r#"severity=~"critical|page""#,
                r#"env!="dev""#,
                r#"x!~"a\"b""#
            ]
        );
        assert_eq!(ms[3].value, "a\"b");
        assert_eq!(Matcher::parse("a = \"x,y\"").unwrap().value, "x,y");
        assert!(parse_matchers("").unwrap().is_empty());
        assert!(parse_matchers("{}").unwrap().is_empty());
        // What is written back parses to the same matcher.
        for m in &ms {
            assert_eq!(&Matcher::parse(&m.to_string()).unwrap(), m);
        }
    }

    #[test]
    fn bad_matchers_are_errors_naming_the_problem() {
        for (text, says) in [
            ("service", "one of =, !=, =~, !~"),
            ("=x", "a label name was expected"),
            ("1a=\"x\"", "not a label name"),
            ("a=\"x", "not closed"),
            ("a=~\"(\"", "not a regular expression"),
            ("{a=\"x\"", "without its closing"),
            ("a=\"x\" b=\"y\"", "',' expected"),
        ] {
            let e = parse_matchers(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(Matcher::parse("a=\"1\",b=\"2\"")
            .unwrap_err()
            .contains("one matcher expected"));
    }

    #[test]
    fn matchers_match_as_prometheus_does() {
        let l = labels(&[("service", "checkout"), ("severity", "page")]);
        let m = |t: &str| Matcher::parse(t).unwrap().matches(&l);
        assert!(m(r#"service="checkout""#));
        assert!(!m(r#"service="check""#));
        assert!(m(r#"severity=~"critical|page""#));
        // Anchored: a part is not a match.
        assert!(!m(r#"severity=~"pag""#));
        assert!(m(r#"severity!~"crit.*""#));
        assert!(m(r#"env!="prod""#));
        // A missing label is the empty value.
        assert!(m(r#"env="""#));
        assert!(m(r#"env=~"|dev""#));
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn alert(source: Source, l: &Labels, seen: i64, state: &str) -> Alert {
        Alert {
            name: l.get("alertname").cloned().unwrap_or_default(),
            source,
            labels: l.clone(),
            state: state.into(),
            starts_at: Some(at(seen - 10)),
            ends_at: None,
            fingerprint: (source == Source::Alertmanager).then(|| "f1".to_string()),
            first_seen: at(seen),
            last_seen: at(seen),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn the_same_labels_are_one_alert_with_its_first_and_last_sighting() {
        let a = labels(&[("alertname", "A"), ("service", "checkout")]);
        let b = labels(&[("alertname", "A"), ("service", "cart")]);
        let mut l = Ledger::default();
        l.record(alert(Source::Prometheus, &a, 5, "firing"));
        l.record(alert(Source::Alertmanager, &a, 2, "active"));
        l.record(alert(Source::Alertmanager, &a, 9, "suppressed"));
        l.record(alert(Source::Alertmanager, &b, 7, "active"));
        assert_eq!(l.len(), 2);
        let all = l.alerts(at(100));
        let first = &all[0];
        assert_eq!(first.labels, a);
        assert_eq!((first.first_seen, first.last_seen), (at(2), at(9)));
        assert_eq!(first.starts_at, Some(at(-8)));
        assert_eq!(first.state, "suppressed");
        assert_eq!(first.source, Source::Alertmanager);
        assert_eq!(first.fingerprint.as_deref(), Some("f1"));
        assert_eq!(all[1].labels, b);
        l.resolve_absent(Source::Alertmanager, std::slice::from_ref(&a));
        let all = l.alerts(at(100));
        assert_eq!(all[0].state, "suppressed");
        assert_eq!(all[1].state, RESOLVED);
    }

    #[test]
    fn an_end_after_the_window_is_an_estimate_not_an_end() {
        let a = labels(&[("alertname", "A")]);
        let mut l = Ledger::default();
        let mut x = alert(Source::Alertmanager, &a, 1, "active");
        x.ends_at = Some(at(300));
        l.record(x);
        assert_eq!(l.alerts(at(100))[0].ends_at, None);
        assert_eq!(l.alerts(at(400))[0].ends_at, Some(at(300)));
    }

    #[test]
    fn urls_lose_their_credentials_in_messages() {
        assert_eq!(shown("http://u:pw@h:9093/x"), "http://h:9093/x");
        assert!(!shown("u:pw@h").contains("pw"));
        let e = check_url("ftp://h").unwrap_err();
        assert!(e.contains("http(s)"), "{e}");
        let ep = Endpoint {
            url: "http://h".into(),
            token: Some("t0k3n".into()),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{ep:?}").contains("t0k3n"));
    }
}
