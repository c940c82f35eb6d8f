//! A store behind `faultline serve`, reached over its native JSON API
//! (`/api/v1/orgs/{org}/…`, documented in `docs/store.md`), so every command and
//! provider works the same on a shared store as on the embedded one.

use super::runs::{Overlap, RunFilter, RunSummary};
use super::{IndicatorRecord, ObjectiveRecord, Origin, ReportLine, ResultRecord, StoreError};
use crate::slo::{Indicator, Labels, Objective};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The client of a remote store.
#[derive(Clone)]
pub struct RemoteStore {
    base: url::Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl RemoteStore {
    /// A client of the server at `base`.
    pub fn new(base: url::Url, token: Option<String>) -> Result<RemoteStore, StoreError> {
        crate::tls::init();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(RemoteStore {
            base,
            token: token.filter(|t| !t.trim().is_empty()),
            client,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    fn url(&self, org: &str, rest: &str) -> Result<url::Url, StoreError> {
        let mut u = self.base.clone();
        {
            let mut segs = u.path_segments_mut().map_err(|_| {
                StoreError::Invalid(format!("{} cannot be a store's base URL", self.base))
            })?;
            segs.pop_if_empty().extend(["api", "v1", "orgs", org]);
            for s in rest.split('/').filter(|s| !s.is_empty()) {
                segs.push(s);
            }
        }
        Ok(u)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, StoreError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "the store at {} cannot be reached: {}",
                self.base,
                without_url(&e)
            ))
        })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            StoreError::Unavailable(format!(
                "the store at {} stopped answering: {}",
                self.base,
                without_url(&e)
            ))
        })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                StoreError::Unavailable(format!(
                    "the store at {} answered something unexpected: {e}",
                    self.base
                ))
            });
        }
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| error_text(&v))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        let message = format!("the store at {} answered {status}: {message}", self.base);
        Err(match status.as_u16() {
            401 => StoreError::Unauthorized(message),
            403 => StoreError::Forbidden(message),
            404 => StoreError::NotFound(message),
            400..=499 => StoreError::Invalid(message),
            _ => StoreError::Unavailable(message),
        })
    }

    pub(super) async fn put_objective(
        &self,
        org: &str,
        o: &Objective,
    ) -> Result<(ObjectiveRecord, bool), StoreError> {
        let doc = json!({
            "apiVersion": crate::slo::model::API_VERSION, "kind": "Objective",
            "metadata": {"labels": o.labels},
            "spec": {"indicatorSelector": o.indicator_selector,
                     "objectivePercent": o.objective_percent, "window": o.window}});
        let v: Value = self
            .send(self.client.put(self.url(org, "objectives")?).json(&doc))
            .await?;
        let first = v
            .get("objectives")
            .and_then(|a| a.get(0))
            .cloned()
            .ok_or_else(|| StoreError::Unavailable("the store stored no objective".into()))?;
        let created = first
            .get("created")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let record = serde_json::from_value(first.get("objective").cloned().unwrap_or_default())
            .map_err(|e| StoreError::Unavailable(format!("unexpected answer: {e}")))?;
        Ok((record, created))
    }

    pub(super) async fn objectives(
        &self,
        org: &str,
        selector: &Labels,
    ) -> Result<Vec<ObjectiveRecord>, StoreError> {
        let req = self
            .client
            .get(self.url(org, "objectives")?)
            .query(&[("selector", selector_json(selector))]);
        self.send(req).await
    }

    pub(super) async fn delete_objectives(
        &self,
        org: &str,
        selector: &Labels,
    ) -> Result<usize, StoreError> {
        let req = self
            .client
            .delete(self.url(org, "objectives")?)
            .query(&[("selector", selector_json(selector))]);
        let v: Value = self.send(req).await?;
        Ok(v.get("deleted").and_then(Value::as_u64).unwrap_or(0) as usize)
    }

    pub(super) async fn put_indicator(
        &self,
        org: &str,
        i: &Indicator,
        origin: &Origin,
    ) -> Result<IndicatorRecord, StoreError> {
        let mut spec = json!({"from": iso(i.from), "to": iso(i.to), "percent": i.percent});
        if let Some((g, t)) = i.counts {
            spec["good"] = json!(g);
            spec["total"] = json!(t);
        }
        if let Some(r) = &origin.run_id {
            spec["runId"] = json!(r);
        }
        if let Some(t) = &origin.trace_id {
            spec["traceId"] = json!(t);
        }
        let doc = json!({"apiVersion": crate::slo::model::API_VERSION, "kind": "Indicator",
            "metadata": {"labels": i.labels}, "spec": spec});
        self.send(self.client.post(self.url(org, "indicators")?).json(&doc))
            .await
    }

    pub(super) async fn results_by_indicator_selector(
        &self,
        org: &str,
        selector: &Labels,
        limit: usize,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let req = self.client.get(self.url(org, "results")?).query(&[
            ("indicatorSelector", selector_json(selector)),
            ("limit", limit.to_string()),
        ]);
        self.send(req).await
    }

    pub(super) async fn report(
        &self,
        org: &str,
        selector: &Labels,
        limit: usize,
    ) -> Result<Vec<ReportLine>, StoreError> {
        let req = self.client.get(self.url(org, "report")?).query(&[
            ("selector", selector_json(selector)),
            ("limit", limit.to_string()),
        ]);
        self.send(req).await
    }

    pub(super) async fn window_results(
        &self,
        org: &str,
        objective_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let req = self
            .client
            .get(self.url(org, &format!("objectives/{objective_id}/results"))?)
            .query(&[("from", iso(from)), ("to", iso(to))]);
        self.send(req).await
    }
}

impl RemoteStore {
    pub(super) async fn put_run(&self, org: &str, run: &RunSummary) -> Result<bool, StoreError> {
        let v: Value = self
            .send(self.client.post(self.url(org, "runs")?).json(run))
            .await?;
        Ok(v.get("created").and_then(Value::as_bool).unwrap_or(false))
    }

    pub(super) async fn runs(
        &self,
        org: &str,
        f: &RunFilter,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let mut q: Vec<(&str, String)> = vec![("limit", f.limit.to_string())];
        if let Some(t) = f.since {
            q.push(("since", iso(t)));
        }
        if let Some(t) = f.until {
            q.push(("until", iso(t)));
        }
        if let Some(s) = &f.status {
            q.push(("status", s.clone()));
        }
        if let Some(e) = &f.experiment_ref {
            q.push(("experiment", e.clone()));
        }
        q.extend(f.labels.iter().map(|(k, v)| ("label", format!("{k}={v}"))));
        self.send(self.client.get(self.url(org, "runs")?).query(&q))
            .await
    }

    pub(super) async fn run(&self, org: &str, id: &str) -> Result<Option<RunSummary>, StoreError> {
        let mut u = self.url(org, "runs")?;
        u.path_segments_mut()
            .map_err(|_| StoreError::Invalid("bad base URL".into()))?
            .push(id);
        match self.send(self.client.get(u)).await {
            Ok(r) => Ok(Some(r)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn overlapping(
        &self,
        org: &str,
        o: &Overlap,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let mut q: Vec<(&str, String)> = vec![
            ("from", iso(o.from)),
            ("to", iso(o.to)),
            ("limit", o.limit.to_string()),
        ];
        q.extend(o.labels.iter().map(|(k, v)| ("label", format!("{k}={v}"))));
        self.send(self.client.get(self.url(org, "correlate")?).query(&q))
            .await
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A selector as the native API takes it: a JSON object.
pub fn selector_json(l: &Labels) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "{}".into())
}

/// The server's error text: `error`, with each problem.
fn error_text(v: &Value) -> Option<String> {
    let mut s = v.get("error")?.as_str()?.to_string();
    if let Some(ps) = v.get("problems").and_then(Value::as_array) {
        for p in ps {
            if let (Some(path), Some(m)) = (
                p.get("path").and_then(Value::as_str),
                p.get("message").and_then(Value::as_str),
            ) {
                s.push_str(&format!("\n  - {path}: {m}"));
            }
        }
    }
    Some(s)
}

/// A reqwest error without its URL (which the caller already names).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "").replace(u.as_str(), "");
    }
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(&format!(": {cause}"));
        src = cause.source();
    }
    s
}
