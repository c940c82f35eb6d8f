//! The Reliably-compatible entity API (`../shared/reference/slo.md`,
//! `/work/notes/reliably-wire.md`), under `/api/entities/{org}/reliably.com/v1/` and
//! the guide's older form without `/api`: the guide's `requests.put` and
//! `chaostoolkit-reliably`'s `slo_is_met` work against it unchanged.
//!
//! What those clients need, and this keeps: reads answer exactly 200 with a JSON
//! array; every ObjectiveResult has a string `id` and string-only `metadata.labels`
//! (with `createdAt`, `from` and `to`); objectives carry `window` as a string; results
//! come newest first, `limit` honoured up to [`super::input::MAX_LIMIT`].

use super::input::{self, param};
use super::{ApiError, ServerState};
use crate::slo::model::API_VERSION;
use crate::slo::Labels;
use crate::store::{IndicatorRecord, ObjectiveRecord, Origin, ResultRecord};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// The route prefixes: Reliably's, and the guide's older one.
pub const PREFIXES: [&str; 2] = ["/api/entities", "/entities"];

/// Add the Reliably routes under both prefixes.
pub fn routes(mut r: Router<ServerState>) -> Router<ServerState> {
    for p in PREFIXES {
        let base = format!("{p}/{{org}}/reliably.com/v1");
        r = r
            .route(&format!("{base}/indicator"), put(put_indicator))
            .route(
                &format!("{base}/objective"),
                put(put_objective).get(get_objectives),
            )
            .route(
                &format!("{base}/objectiveresult"),
                get(get_objective_results),
            )
            .route(&format!("{base}/objective_result"), get(get_results))
            .route(&format!("{base}/query"), post(query));
    }
    r
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An objective as a Reliably entity.
pub fn objective_entity(o: &ObjectiveRecord) -> Value {
    json!({
        "apiVersion": API_VERSION, "kind": "Objective", "id": o.id,
        "metadata": {"labels": o.labels,
                     "annotations": {"createdAt": time(o.created_at), "updatedAt": time(o.updated_at)}},
        "spec": {"indicatorSelector": o.indicator_selector,
                 "objectivePercent": o.objective_percent, "window": o.window},
    })
}

/// A result as a Reliably `ObjectiveResult`: labels are the indicator selector plus
/// `from`, `to` and `createdAt`, every one a string.
pub fn result_entity(r: &ResultRecord) -> Value {
    let mut labels: Labels = r.result.indicator_selector.clone();
    labels.insert("from".into(), time(r.from));
    labels.insert("to".into(), time(r.to));
    labels.insert("createdAt".into(), time(r.created_at));
    json!({
        "apiVersion": API_VERSION, "kind": "ObjectiveResult", "id": r.id,
        "metadata": {"labels": labels,
                     "annotations": {"objectiveId": r.objective_id, "indicatorId": r.indicator_id}},
        "spec": r.result,
    })
}

/// An indicator as a Reliably entity.
pub fn indicator_entity(i: &IndicatorRecord) -> Value {
    let mut spec = json!({"from": time(i.from), "to": time(i.to), "percent": i.percent});
    if let (Some(g), Some(t)) = (i.good, i.total) {
        spec["good"] = json!(g);
        spec["total"] = json!(t);
    }
    json!({"apiVersion": API_VERSION, "kind": "Indicator", "id": i.id,
           "metadata": {"labels": i.labels}, "spec": spec})
}

async fn put_indicator(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let bytes = input::body(body).await?;
    let doc = input::document(input::text(&bytes)?)?;
    let indicator =
        crate::slo::parse_indicator(&doc).map_err(|ps| ApiError::problems("the indicator", ps))?;
    let rec = st
        .store
        .put_indicator(&org, &indicator, &Origin::default())
        .await?;
    Ok(Json(indicator_entity(&rec)))
}

async fn put_objective(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let bytes = input::body(body).await?;
    let objectives = input::objectives(input::text(&bytes)?)?;
    let mut stored = Vec::new();
    for o in &objectives {
        let (rec, _) = st.store.put_objective(&org, o).await?;
        stored.push(objective_entity(&rec));
    }
    // One document in, one entity out (what Reliably answered); several, a list.
    Ok(Json(if stored.len() == 1 {
        stored.remove(0)
    } else {
        Value::Array(stored)
    }))
}

async fn get_objectives(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = match param(&pairs, "selector") {
        Some(s) => input::base64_selector("selector", s)?,
        None => Labels::new(),
    };
    let found = st.store.objectives(&org, &selector).await?;
    Ok(Json(found.iter().map(objective_entity).collect()))
}

async fn get_results(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = match param(&pairs, "selector") {
        Some(s) => input::base64_selector("selector", s)?,
        None => {
            return Err(ApiError::field(
                "selector",
                "is missing: base64 of a JSON object of labels",
            ))
        }
    };
    let limit = input::limit(&pairs, 1)?;
    let found = st
        .store
        .results_by_indicator_selector(&org, &selector, limit)
        .await?;
    Ok(Json(found.iter().map(result_entity).collect()))
}

async fn get_objective_results(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let pairs = input::query(q.as_deref());
    let selector = input::selector("objective-match", param(&pairs, "objective-match"))?;
    let limit = input::limit(&pairs, 50)?;
    let mut all: Vec<ResultRecord> = st
        .store
        .report(&org, &selector, limit)
        .await?
        .into_iter()
        .flat_map(|l| l.results)
        .collect();
    all.sort_by(|a, b| b.to.cmp(&a.to).then(b.created_at.cmp(&a.created_at)));
    all.truncate(limit);
    Ok(Json(all.iter().map(result_entity).collect()))
}

async fn query(
    State(st): State<ServerState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let org = st.auth.authorize(&st.store, &headers, &org).await?;
    let bytes = input::body(body).await?;
    let doc = input::document(input::text(&bytes)?)?;
    let q = Query::parse(&doc)?;
    let lines = st
        .store
        .report(&org, &q.labels, q.results.unwrap_or(1))
        .await?;
    let out: Vec<Value> = lines
        .iter()
        .take(q.limit)
        .map(|l| {
            let mut e = objective_entity(&l.objective);
            if q.results.is_some() {
                e["objectiveResults"] = l.results.iter().map(result_entity).collect();
            }
            e
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// `{"kind":"objective","labels":{...},"limit":50,"forEach":{"objectiveResult":{"include":true,"limit":5}}}`.
struct Query {
    labels: Labels,
    limit: usize,
    /// Results per objective, when included.
    results: Option<usize>,
}

impl Query {
    fn parse(v: &Value) -> Result<Query, ApiError> {
        if !v.is_object() {
            return Err(ApiError::field("$", "the query must be a JSON object"));
        }
        let mut problems = Vec::new();
        let mut bad = |path: &str, m: String| {
            problems.push(crate::slo::SloProblem {
                path: path.into(),
                message: m,
            })
        };
        match v.get("kind") {
            Some(Value::String(k)) if k.eq_ignore_ascii_case("objective") => {}
            Some(other) => bad("kind", format!("must be \"objective\", got {other}")),
            None => bad("kind", "is missing (\"objective\")".into()),
        }
        let labels = match v.get("labels") {
            None | Some(Value::Null) => Labels::new(),
            Some(l) => match input::labels_of("labels", l) {
                Ok(l) => l,
                Err(ApiError::BadRequest {
                    problems: ps,
                    error,
                }) => {
                    if ps.is_empty() {
                        bad("labels", error);
                    }
                    for p in ps {
                        bad(&p.path, p.message);
                    }
                    Labels::new()
                }
                Err(e) => return Err(e),
            },
        };
        let mut number = |path: &str, v: Option<&Value>, default: usize| match v {
            None => default,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if (1..=input::MAX_LIMIT as u64).contains(&n) => n as usize,
                _ => {
                    bad(
                        path,
                        format!(
                            "must be a whole number from 1 to {}, got {n}",
                            input::MAX_LIMIT
                        ),
                    );
                    default
                }
            },
            Some(other) => {
                bad(path, format!("must be a number, got {other}"));
                default
            }
        };
        let limit = number("limit", v.get("limit"), 50);
        let each = v.pointer("/forEach/objectiveResult");
        let per = number(
            "forEach.objectiveResult.limit",
            each.and_then(|e| e.get("limit")),
            5,
        );
        let include = match each.and_then(|e| e.get("include")) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                bad(
                    "forEach.objectiveResult.include",
                    format!("must be true or false, got {other}"),
                );
                false
            }
        };
        if !problems.is_empty() {
            return Err(ApiError::problems("the query", problems));
        }
        Ok(Query {
            labels,
            limit,
            results: include.then_some(per),
        })
    }
}
