//! The native JSON API (`/api/v1/orgs/{org}/…`, `docs/store.md`): what
//! [`crate::store::remote`] speaks, so `--store http://…` behaves as the embedded
//! store does. Answers are the serde forms of the store's records.

use super::input::{self, param};
use super::{ApiError, ServerState};
use crate::slo::{Sample, SloStatus};
use crate::store::{ObjectiveRecord, Origin};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// Add the native routes.
pub fn routes(r: Router<ServerState>) -> Router<ServerState> {
    r.route(
        "/api/v1/orgs/{org}/objectives",
        get(list_objectives)
            .put(put_objectives)
            .delete(delete_objectives),
    )
    .route("/api/v1/orgs/{org}/indicators", post(post_indicator))
    .route("/api/v1/orgs/{org}/results", get(results))
    .route("/api/v1/orgs/{org}/report", get(report))
    .route(
        "/api/v1/orgs/{org}/objectives/{id}/results",
        get(window_results),
    )
    .route("/api/v1/orgs/{org}/status", get(status))
}

async fn put_objectives(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let bytes = input::body(body).await?;
    let objectives = input::objectives(input::text(&bytes)?)?;
    let mut out = Vec::new();
    for o in &objectives {
        let (rec, created) = st.store.put_objective(&org, o).await?;
        out.push(json!({"objective": rec, "created": created}));
    }
    Ok(Json(json!({ "objectives": out })))
}

async fn list_objectives(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<ObjectiveRecord>>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = input::selector("selector", param(&pairs, "selector"))?;
    Ok(Json(st.store.objectives(&org, &selector).await?))
}

async fn delete_objectives(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = input::selector("selector", param(&pairs, "selector"))?;
    if selector.is_empty() {
        return Err(ApiError::field(
            "selector",
            "is required: deleting every objective is refused",
        ));
    }
    let n = st.store.delete_objectives(&org, &selector).await?;
    Ok(Json(json!({ "deleted": n })))
}

async fn post_indicator(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let bytes = input::body(body).await?;
    let doc = input::document(input::text(&bytes)?)?;
    let indicator =
        crate::slo::parse_indicator(&doc).map_err(|ps| ApiError::problems("the indicator", ps))?;
    let origin = origin(&doc)?;
    let rec = st.store.put_indicator(&org, &indicator, &origin).await?;
    Ok((StatusCode::CREATED, Json(json!(rec))))
}

/// `spec.runId` and `spec.traceId`, when given: strings, the trace id 32 hex digits.
fn origin(doc: &Value) -> Result<Origin, ApiError> {
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match doc.pointer(&format!("/spec/{key}")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => {
                Ok(Some(s.trim().to_string()))
            }
            Some(other) => Err(ApiError::field(
                &format!("spec.{key}"),
                format!("must be a non-empty string of at most 256 bytes, got {other}"),
            )),
        }
    };
    let run_id = text("runId")?;
    let trace_id = text("traceId")?;
    if let Some(t) = &trace_id {
        if t.len() != 32 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::field(
                "spec.traceId",
                format!("{t:?} is not a trace id (32 hex digits)"),
            ));
        }
    }
    Ok(Origin { run_id, trace_id })
}

async fn results(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = input::selector("indicatorSelector", param(&pairs, "indicatorSelector"))?;
    let limit = input::limit(&pairs, 50)?;
    let found = st
        .store
        .results_by_indicator_selector(&org, &selector, limit)
        .await?;
    Ok(Json(json!(found)))
}

async fn report(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = input::selector("selector", param(&pairs, "selector"))?;
    let limit = input::limit(&pairs, 5)?;
    Ok(Json(json!(st.store.report(&org, &selector, limit).await?)))
}

fn rfc3339(field: &str, text: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    let t = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::field(field, "is missing (an RFC 3339 time)"))?;
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::field(field, format!("{t:?} is not an RFC 3339 time: {e}")))
}

async fn window_results(
    State(st): State<ServerState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let from = rfc3339("from", param(&pairs, "from"));
    let to = rfc3339("to", param(&pairs, "to"));
    let (from, to) = match (from, to) {
        (Ok(f), Ok(t)) if f <= t => (f, t),
        (Ok(f), Ok(t)) => {
            return Err(ApiError::field("from", format!("{f} is after to ({t})")));
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok(Json(json!(
        st.store.window_results(&org, &id, from, to).await?
    )))
}

/// The status of one objective over `[now - window, now]`.
pub async fn objective_status(
    st: &ServerState,
    org: &str,
    o: &ObjectiveRecord,
    window: Option<std::time::Duration>,
    now: DateTime<Utc>,
) -> Result<SloStatus, ApiError> {
    let length = window.unwrap_or_else(|| o.objective().window_length);
    let length =
        chrono::Duration::from_std(length).map_err(|_| ApiError::field("window", "is too long"))?;
    let from = now
        .checked_sub_signed(length)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let results = st.store.window_results(org, &o.id, from, now).await?;
    let samples: Vec<Sample> = results
        .iter()
        .map(|r| Sample {
            percent: r.result.actual_percent,
            counts: r.good.zip(r.total),
        })
        .collect();
    Ok(crate::slo::status(o.objective_percent, &samples, from, now))
}

async fn status(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = input::selector("selector", param(&pairs, "selector"))?;
    let window = match param(&pairs, "window")
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        None => None,
        Some(w) => Some(crate::slo::parse_window(w).map_err(|e| ApiError::field("window", e))?),
    };
    let now = Utc::now();
    let mut out = Vec::new();
    for o in st.store.objectives(&org, &selector).await? {
        let s = objective_status(&st, &org, &o, window, now).await?;
        out.push(json!({"objective": o, "status": s}));
    }
    Ok(Json(Value::Array(out)))
}
