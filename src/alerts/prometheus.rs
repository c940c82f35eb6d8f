//! The alerts Prometheus fired in a window: its `ALERTS{alertstate="firing"}` series
//! through a range query over the window at a small step, so an alert that fired and
//! resolved inside the window is found (Prometheus marks a resolved alert's series
//! stale: an instant query at the end would not see it). The request is built by
//! `prometheus-http-query` over our reqwest client; the answer is read by the PromQL
//! client's own parser (`crate::provider::prometheus::client::parse`).

use super::{all_match, Alert, AlertsError, Endpoint, Labels, Matcher, Source, RESOLVED};
use crate::provider::prometheus::client::{parse, Answer, PromError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// The most evaluation steps a range query asks for (Prometheus refuses more than
/// 11,000 points per series).
const MAX_STEPS: f64 = 10_000.0;

/// `ALERTS{alertstate="firing",<matchers>}` (a matcher on `alertstate` is left out:
/// only firing alerts are asked for).
pub fn selector(matchers: &[Matcher]) -> String {
    let mut parts = vec!["alertstate=\"firing\"".to_string()];
    parts.extend(
        matchers
            .iter()
            .filter(|m| m.name != "alertstate")
            .map(ToString::to_string),
    );
    format!("ALERTS{{{}}}", parts.join(","))
}

/// The step for a window: 1 s, or longer for windows of more than 10,000 s.
pub fn step(start: DateTime<Utc>, end: DateTime<Utc>) -> Duration {
    let seconds = (end - start).num_seconds().max(0) as f64;
    Duration::from_secs(((seconds / MAX_STEPS).ceil() as u64).max(1))
}

/// The alerts firing at some point in `[start, end]` that match every matcher.
pub async fn fired(
    client: &reqwest::Client,
    ep: &Endpoint,
    matchers: &[Matcher],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Alert>, AlertsError> {
    super::check_url(&ep.url).map_err(AlertsError::Invalid)?;
    let prom = prometheus_http_query::Client::from(client.clone(), &ep.url)
        .map_err(|e| AlertsError::Invalid(format!("'{}': {e}", ep.shown())))?;
    // Whole seconds, the window widened so nothing of it is lost.
    let (s, e) = (
        start.timestamp(),
        end.timestamp() + i64::from(end.timestamp_subsec_nanos() > 0),
    );
    let step = step(start, end);
    let mut b = prom
        .query_range(selector(matchers), s, e, step.as_secs_f64())
        .timeout(i64::try_from(ep.timeout.as_millis()).unwrap_or(i64::MAX));
    if let Some(t) = &ep.token {
        let mut v =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                AlertsError::Invalid("the bearer token holds characters a header cannot".into())
            })?;
        v.set_sensitive(true);
        b = b.header(reqwest::header::AUTHORIZATION, v);
    }
    let shown = ep.shown();
    let timeout = || AlertsError::Timeout {
        url: shown.clone(),
        seconds: ep.timeout.as_secs_f64(),
    };
    let exchange = async {
        let resp = b.get_raw().await.map_err(|e| {
            use std::error::Error as _;
            match e.source().and_then(|s| s.downcast_ref::<reqwest::Error>()) {
                Some(r) if r.is_timeout() => timeout(),
                Some(r) => AlertsError::Unreachable {
                    url: shown.clone(),
                    reason: crate::provider::http::describe_error(r),
                },
                None => AlertsError::Unreachable {
                    url: shown.clone(),
                    reason: e.to_string(),
                },
            }
        })?;
        let code = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| AlertsError::Unreachable {
            url: shown.clone(),
            reason: format!("the answer could not be read: {e}"),
        })?;
        Ok((code, body))
    };
    let (code, body) = match tokio::time::timeout(ep.timeout, exchange).await {
        Err(_) => return Err(timeout()),
        Ok(r) => r?,
    };
    let answer = parse(code, &body).map_err(|e| match e {
        PromError::Refused { kind, message } => AlertsError::Refused {
            url: shown.clone(),
            status: kind,
            message,
        },
        e => AlertsError::Malformed {
            url: shown.clone(),
            reason: e.to_string(),
        },
    })?;
    let last_eval = s as f64 + ((e - s) as f64 / step.as_secs_f64()).floor() * step.as_secs_f64();
    Ok(from_answer(&answer, s as f64, last_eval, step)
        .into_iter()
        .filter(|a| all_match(matchers, &a.labels))
        .map(|mut a| {
            // The window was widened to whole seconds: an end is never after it.
            a.ends_at = a.ends_at.map(|t| t.min(end));
            a
        })
        .collect())
}

fn time(t: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((t * 1000.0).round() as i64).unwrap_or_default()
}

/// The alerts of a range answer over `ALERTS`, evaluated from `first_eval` to
/// `last_eval` every `step` (Unix seconds). Each series is one alert: first and last
/// seen at its first and last sample; started at its first sample unless it was
/// firing from the window's first evaluation (then it started before: unknown);
/// resolved one step after its last sample when that is before the last evaluation.
pub fn from_answer(answer: &Answer, first_eval: f64, last_eval: f64, step: Duration) -> Vec<Alert> {
    let half = step.as_secs_f64() / 2.0;
    answer
        .series
        .iter()
        .filter_map(|s| {
            let first = s.samples.iter().map(|x| x.t).reduce(f64::min)?;
            let last = s.samples.iter().map(|x| x.t).reduce(f64::max)?;
            let labels: Labels = s
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__" && k.as_str() != "alertstate")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let resolved = last + half < last_eval;
            Some(Alert {
                name: labels.get("alertname").cloned().unwrap_or_default(),
                source: Source::Prometheus,
                state: if resolved { RESOLVED } else { "firing" }.to_string(),
                starts_at: (first > first_eval + half).then(|| time(first)),
                ends_at: resolved.then(|| time(last + step.as_secs_f64())),
                fingerprint: None,
                first_seen: time(first),
                last_seen: time(last),
                annotations: BTreeMap::new(),
                labels,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_asks_for_firing_alerts_matching_every_matcher() {
        let ms = super::super::parse_matchers(
            r#"service="checkout",severity=~"critical|page",alertstate="pending""#,
        )
        .unwrap();
        assert_eq!(
            selector(&ms),
            r#"ALERTS{alertstate="firing",service="checkout",severity=~"critical|page"}"#
        );
        assert_eq!(selector(&[]), r#"ALERTS{alertstate="firing"}"#);
    }

    #[test]
    fn the_step_is_small_and_bounded() {
        let t = Utc::now();
        assert_eq!(step(t, t), Duration::from_secs(1));
        assert_eq!(
            step(t, t + chrono::Duration::seconds(60)),
            Duration::from_secs(1)
        );
        assert_eq!(
            step(t, t + chrono::Duration::hours(24)),
            Duration::from_secs(9)
        );
    }

    #[test]
    fn series_become_alerts_with_their_window() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"ALERTS","alertname":"Early","alertstate":"firing","service":"a"},
             "values":[[100,"1"],[101,"1"],[102,"1"],[103,"1"],[104,"1"]]},
            {"metric":{"__name__":"ALERTS","alertname":"Blip","alertstate":"firing","service":"a"},
             "values":[[101,"1"],[102,"1"]]}]}}"#;
        let answer = parse(200, body).unwrap();
        let a = from_answer(&answer, 100.0, 104.0, Duration::from_secs(1));
        assert_eq!(a.len(), 2);
        let early = &a[0];
        assert_eq!(early.name, "Early");
        assert_eq!(
            early.labels,
            Labels::from([
                ("alertname".into(), "Early".into()),
                ("service".into(), "a".into())
            ])
        );
        assert_eq!(early.state, "firing");
        assert_eq!(early.starts_at, None, "firing from the window's start");
        assert_eq!(early.ends_at, None, "still firing at the end");
        let blip = &a[1];
        assert_eq!(blip.state, RESOLVED);
        assert_eq!(blip.starts_at, Some(time(101.0)));
        assert_eq!(blip.ends_at, Some(time(103.0)));
        assert_eq!(
            (blip.first_seen, blip.last_seen),
            (time(101.0), time(102.0))
        );
        assert_eq!(blip.source, Source::Prometheus);
    }
}
