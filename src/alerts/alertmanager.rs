//! The Alertmanager v2 API's `GET /api/v2/alerts`: the alerts an Alertmanager holds
//! now (resolved ones are not listed), filtered by label matchers (`filter=`, one
//! per matcher), silenced and inhibited ones included or not.

use super::{all_match, get, Alert, AlertsError, Endpoint, Labels, Matcher, Source};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// What to ask for.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Label matchers, all of which an alert matches.
    pub matchers: Vec<Matcher>,
    /// Include silenced alerts (state `suppressed`).
    pub silenced: bool,
    /// Include inhibited alerts (state `suppressed`).
    pub inhibited: bool,
}

/// The default limit of [`firing`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The alerts firing now at the Alertmanager at `alertmanager_url` that match every
/// matcher, silenced and inhibited ones included (their `state` says so). For
/// commands such as `faultline correlate --alertmanager URL`; runs use
/// [`alerts`] with their own client, token and limit.
pub async fn firing(
    alertmanager_url: &str,
    matchers: &[Matcher],
) -> Result<Vec<Alert>, AlertsError> {
    let client = super::client(DEFAULT_TIMEOUT)?;
    let ep = Endpoint::new(alertmanager_url, DEFAULT_TIMEOUT);
    let q = Query {
        matchers: matchers.to_vec(),
        silenced: true,
        inhibited: true,
    };
    alerts(&client, &ep, &q).await
}

/// `{base}/api/v2/alerts?active=true&silenced=…&inhibited=…&unprocessed=true&filter=…`.
pub fn url(base: &str, q: &Query) -> Result<url::Url, String> {
    let mut u = super::check_url(base)?;
    u.set_query(None);
    u.set_fragment(None);
    u.path_segments_mut()
        .map_err(|()| format!("'{}' cannot have a path", super::shown(base)))?
        .pop_if_empty()
        .extend(["api", "v2", "alerts"]);
    {
        let mut p = u.query_pairs_mut();
        p.append_pair("active", "true")
            .append_pair("silenced", if q.silenced { "true" } else { "false" })
            .append_pair("inhibited", if q.inhibited { "true" } else { "false" })
            .append_pair("unprocessed", "true");
        for m in &q.matchers {
            p.append_pair("filter", &m.to_string());
        }
    }
    Ok(u)
}

/// The alerts the Alertmanager at `ep` holds now that match `q`, seen now.
pub async fn alerts(
    client: &reqwest::Client,
    ep: &Endpoint,
    q: &Query,
) -> Result<Vec<Alert>, AlertsError> {
    let u = url(&ep.url, q).map_err(AlertsError::Invalid)?;
    let (code, body) = get(client, ep, u).await?;
    if !(200..300).contains(&code) {
        // Alertmanager says why in a JSON string ("bad matcher format: …").
        let message = serde_json::from_str::<String>(&body)
            .unwrap_or(body)
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        return Err(AlertsError::Refused {
            url: ep.shown(),
            status: format!("HTTP {code}"),
            message,
        });
    }
    let all = parse(&body, Utc::now()).map_err(|reason| AlertsError::Malformed {
        url: ep.shown(),
        reason,
    })?;
    Ok(all
        .into_iter()
        .filter(|a| all_match(&q.matchers, &a.labels))
        .collect())
}

/// A time of the API (`2026-12-05T23:40:29.141Z`); Go's zero time is no time.
fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(v?.as_str()?).ok()?;
    (t.timestamp() > 0).then(|| t.with_timezone(&Utc))
}

/// The API's answer (`gettableAlerts`) as alerts seen at `seen`.
pub fn parse(body: &str, seen: DateTime<Utc>) -> Result<Vec<Alert>, String> {
    let doc: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let list = doc.as_array().ok_or("not a list of alerts")?;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let labels: Labels = a
                .get("labels")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("alert {i} has no labels"))?
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), v)
                })
                .collect();
            let text = |p: &str| a.pointer(p).and_then(Value::as_str).map(str::to_string);
            let annotations: BTreeMap<String, String> = text("/annotations/summary")
                .map(|s| BTreeMap::from([("summary".to_string(), s)]))
                .unwrap_or_default();
            Ok(Alert {
                name: labels.get("alertname").cloned().unwrap_or_default(),
                source: Source::Alertmanager,
                state: text("/status/state").unwrap_or_else(|| "active".into()),
                starts_at: time(a.get("startsAt")),
                ends_at: time(a.get("endsAt")),
                fingerprint: text("/fingerprint"),
                first_seen: seen,
                last_seen: seen,
                annotations,
                labels,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"[{"annotations":{"summary":"p99 high","description":"long"},
        "endsAt":"2026-12-05T23:45:29.141Z","fingerprint":"75072a3d82457715",
        "receivers":[{"name":"null"}],"startsAt":"2026-12-05T23:40:29.141Z",
        "status":{"inhibitedBy":[],"silencedBy":["s1"],"state":"suppressed"},
        "updatedAt":"2026-12-05T23:40:29.141Z",
        "labels":{"alertname":"HighLatency","service":"checkout","severity":"page"}},
        {"labels":{"alertname":"Other"},"startsAt":"0001-01-01T00:00:00Z","status":{"state":"active"}}]"#;

    #[test]
    fn the_api_answer_becomes_alerts() {
        let seen = Utc::now();
        let a = parse(ANSWER, seen).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "HighLatency");
        assert_eq!(a[0].source, Source::Alertmanager);
        assert_eq!(a[0].state, "suppressed");
        assert_eq!(a[0].fingerprint.as_deref(), Some("75072a3d82457715"));
        assert_eq!(a[0].labels["service"], "checkout");
        assert_eq!(
            a[0].starts_at.unwrap().to_rfc3339(),
            "2026-12-05T23:40:29.141+00:00"
        );
        assert!(a[0].ends_at.is_some());
        // Only the summary is kept.
        assert_eq!(
            a[0].annotations,
            BTreeMap::from([("summary".to_string(), "p99 high".to_string())])
        );
        assert_eq!((a[0].first_seen, a[0].last_seen), (seen, seen));
        assert_eq!(a[1].starts_at, None, "Go's zero time is no time");
        assert!(a[1].fingerprint.is_none() && a[1].annotations.is_empty());
        let json = serde_json::to_value(&a[1]).unwrap();
        assert!(json.get("fingerprint").is_none() && json["ends_at"].is_null());
    }

    #[test]
    fn answers_that_are_not_the_apis_are_errors() {
        assert!(parse("{}", Utc::now()).unwrap_err().contains("not a list"));
        assert!(parse("<html>", Utc::now())
            .unwrap_err()
            .contains("not JSON"));
        assert!(parse("[{}]", Utc::now()).unwrap_err().contains("no labels"));
    }

    #[test]
    fn the_url_carries_one_filter_per_matcher() {
        let q = Query {
            matchers: super::super::parse_matchers(r#"service="checkout",severity=~"a|b""#)
                .unwrap(),
            silenced: false,
            inhibited: true,
        };
        let u = url("http://127.0.0.1:9093/am/", &q).unwrap();
        assert_eq!(u.path(), "/am/api/v2/alerts");
        let pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        let get = |k: &str| -> Vec<&str> {
            pairs
                .iter()
                .filter(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("active"), ["true"]);
        assert_eq!(get("silenced"), ["false"]);
        assert_eq!(get("inhibited"), ["true"]);
        assert_eq!(
            get("filter"),
            [r#"service="checkout""#, r#"severity=~"a|b""#]
        );
        assert!(url("ftp://h", &q).is_err());
    }

    #[tokio::test]
    async fn the_token_is_sent_and_never_in_an_error() {
        let srv = crate::test_http::Server::start(|_| {
            crate::test_http::Response::text(400, "\"bad matcher format: x\"")
        });
        let client = super::super::client(Duration::from_secs(2)).unwrap();
        let ep = Endpoint {
            url: srv.url(""),
            token: Some("s3cr3t-t0k3n".into()),
            timeout: Duration::from_secs(2),
        };
        let q = Query {
            matchers: vec![],
            silenced: true,
            inhibited: true,
        };
        let e = alerts(&client, &ep, &q).await.unwrap_err();
        assert!(e.to_string().contains("bad matcher format: x"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let reqs = srv.requests();
        assert_eq!(reqs[0].header("authorization"), Some("Bearer s3cr3t-t0k3n"));
    }

    #[tokio::test]
    async fn a_dead_alertmanager_is_an_error_not_a_hang() {
        let port = crate::test_http::refused_addr().port();
        let started = std::time::Instant::now();
        let e = firing(&format!("http://127.0.0.1:{port}"), &[])
            .await
            .unwrap_err();
        assert!(matches!(e, AlertsError::Unreachable { .. }), "{e}");
        assert!(started.elapsed() < DEFAULT_TIMEOUT);
    }
}
