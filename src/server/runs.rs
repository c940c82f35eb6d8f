//! The run history over HTTP (`docs/runs.md`): what `store::remote` speaks (record,
//! list, one run, correlate) and what dashboards read: Grafana annotations (the JSON
//! API and Infinity datasources), scores and programme stats.
//!
//! Times in queries take every form `faultline correlate` takes (RFC 3339, Unix
//! seconds or milliseconds as Grafana's `${__from}`/`${__to}` give them, `now`, a
//! duration ago); `limit=0` means every match.

use super::input::{self, param};
use super::{ApiError, ServerState};
use crate::slo::Labels;
use crate::store::runs::{parse_duration, parse_time, Overlap, RunFilter, RunSummary};
use crate::store::scores;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// The most runs one answer holds when `limit=0` asks for all.
pub const MAX_RUNS: usize = 1_000_000;

/// Add the run history's routes.
pub fn routes(r: Router<ServerState>) -> Router<ServerState> {
    r.route("/api/v1/orgs/{org}/runs", get(list).post(record))
        .route("/api/v1/orgs/{org}/runs/{id}", get(one))
        .route("/api/v1/orgs/{org}/correlate", get(correlate))
        .route("/api/v1/orgs/{org}/annotations", get(annotations))
        .route("/api/v1/orgs/{org}/scores", get(scores_route))
        .route("/api/v1/orgs/{org}/stats", get(stats_route))
}

type Pairs = Vec<(String, String)>;

fn time(pairs: &Pairs, name: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    param(pairs, name)
        .filter(|t| !t.trim().is_empty())
        .map(|t| parse_time(t, now).map_err(|e| ApiError::field(name, e)))
        .transpose()
}

/// Every `label=k=v` (repeatable, or comma-separated).
fn labels(pairs: &Pairs) -> Result<Labels, ApiError> {
    let mut out = Labels::new();
    for (k, v) in pairs.iter().filter(|(k, _)| k == "label") {
        for kv in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (lk, lv) = crate::slo::model::parse_label(kv).map_err(|e| ApiError::field(k, e))?;
            out.insert(lk, lv);
        }
    }
    Ok(out)
}

/// `limit`: 0 (all, up to [`MAX_RUNS`]) to [`MAX_RUNS`].
fn limit(pairs: &Pairs, default: usize) -> Result<usize, ApiError> {
    match param(pairs, "limit").map(str::trim) {
        None | Some("") => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(0) => Ok(MAX_RUNS),
            Ok(n) if n <= MAX_RUNS => Ok(n),
            _ => Err(ApiError::field(
                "limit",
                format!("{t:?} is not a whole number from 0 (all) to {MAX_RUNS}"),
            )),
        },
    }
}

async fn record(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let bytes = input::body(body).await?;
    let run: RunSummary = serde_json::from_str(input::text(&bytes)?)
        .map_err(|e| ApiError::field("$", format!("not a run record: {e}")))?;
    let created = st.store.put_run(&org, &run).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(json!({"runId": run.run_id, "created": created}))))
}

fn filter(pairs: &Pairs, now: DateTime<Utc>) -> Result<RunFilter, ApiError> {
    let f = RunFilter {
        since: time(pairs, "since", now)?,
        until: time(pairs, "until", now)?,
        status: param(pairs, "status")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        labels: labels(pairs)?,
        experiment_ref: param(pairs, "experiment")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        limit: limit(pairs, 50)?,
    };
    f.check()
        .map_err(|e| ApiError::field("status", e.to_string()))?;
    Ok(f)
}

async fn list(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let f = filter(&pairs, Utc::now())?;
    Ok(Json(st.store.runs(&org, &f).await?))
}

async fn one(
    State(st): State<ServerState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<RunSummary>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    Ok(Json(st.store.run(&org, &id).await?))
}

/// The window of a correlation or of annotations: `from`/`to`, or `at` and `window`.
fn window(pairs: &Pairs, now: DateTime<Utc>) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = time(pairs, "to", now)?
        .or(time(pairs, "at", now)?)
        .unwrap_or(now);
    let from = match time(pairs, "from", now)? {
        Some(f) => f,
        None => {
            let w = param(pairs, "window").unwrap_or(crate::store::runs::DEFAULT_WINDOW);
            let w = parse_duration("window", w).map_err(|e| ApiError::field("window", e))?;
            to.checked_sub_signed(w)
                .ok_or_else(|| ApiError::field("window", "reaches before the start of time"))?
        }
    };
    if from > to {
        return Err(ApiError::field(
            "from",
            format!("{} is after to ({})", from.to_rfc3339(), to.to_rfc3339()),
        ));
    }
    Ok((from, to))
}

/// The overlap a correlation or an annotation query asks for.
fn overlap(pairs: &Pairs, default_limit: usize) -> Result<Overlap, ApiError> {
    let (from, to) = window(pairs, Utc::now())?;
    Ok(Overlap {
        from,
        to,
        labels: labels(pairs)?,
        limit: limit(pairs, default_limit)?,
    })
}

async fn correlate(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<RunSummary>>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let o = overlap(&pairs, 50)?;
    Ok(Json(st.store.overlapping(&org, &o).await?))
}

/// One run as a Grafana region annotation.
pub fn annotation(r: &RunSummary) -> Value {
    let mut tags = vec![
        "faultline".to_string(),
        format!("status:{}", r.status),
        format!("run:{}", r.run_id),
    ];
    if r.deviated {
        tags.push("deviated".into());
    }
    tags.extend(r.labels.iter().map(|(k, v)| format!("{k}:{v}")));
    let mut text = format!(
        "{}: {}{}, run {}",
        r.title,
        r.status,
        if r.deviated { " (deviated)" } else { "" },
        r.run_id
    );
    if let Some(t) = &r.trace_id {
        text.push_str(&format!(", trace {t}"));
    }
    json!({
        "time": r.started.timestamp_millis(),
        "timeEnd": r.ended.timestamp_millis(),
        "isRegion": true,
        "title": r.title,
        "text": text,
        "tags": tags,
        "runId": r.run_id,
        "traceId": r.trace_id,
        "status": r.status,
        "deviated": r.deviated,
        "experimentRef": r.experiment_ref,
        "labels": r.labels,
    })
}

async fn annotations(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<Value>>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let o = overlap(&pairs, 1000)?;
    let runs = st.store.overlapping(&org, &o).await?;
    Ok(Json(runs.iter().map(annotation).collect()))
}

fn programme_filter(pairs: &Pairs) -> Result<RunFilter, ApiError> {
    Ok(RunFilter {
        since: time(pairs, "since", Utc::now())?,
        labels: labels(pairs)?,
        ..RunFilter::default()
    })
}

async fn scores_route(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<scores::Score>>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let half_life = match param(&pairs, "halfLife").filter(|s| !s.is_empty()) {
        Some(h) => crate::slo::parse_window(h).map_err(|e| ApiError::field("halfLife", e))?,
        None => scores::HALF_LIFE,
    };
    let runs = st.store.runs(&org, &programme_filter(&pairs)?).await?;
    Ok(Json(scores::scores(&runs, Utc::now(), half_life)))
}

async fn stats_route(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<scores::Stats>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let runs = st.store.runs(&org, &programme_filter(&pairs)?).await?;
    Ok(Json(scores::stats(&runs)))
}
