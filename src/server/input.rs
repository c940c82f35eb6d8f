//! Reading what a request carries, checked before anything reaches the store: the
//! body (at most 1 MiB, JSON or YAML, whatever the `Content-Type`: the guide's PUT
//! sends none), query strings (form-decoded, so `+` is a space, as Reliably clients
//! encode it), selectors (base64 JSON as Reliably sends them, a JSON object or
//! `k=v,k=v` as the native API takes them) and limits. Every refusal names its field.

use super::{ApiError, BODY_LIMIT};
use crate::slo::{Labels, SloProblem};
use axum::body::{Body, Bytes};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::Value;

/// The largest `limit` honoured (Reliably clients ask for up to 1,000).
pub const MAX_LIMIT: usize = 10_000;

/// The whole body, or 413 past [`BODY_LIMIT`].
pub async fn body(body: Body) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, BODY_LIMIT)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge),
        Err(e) => Err(ApiError::field(
            "$",
            format!("the body could not be read: {e}"),
        )),
    }
}

/// The body as text (UTF-8), not empty.
pub fn text(bytes: &Bytes) -> Result<&str, ApiError> {
    let t = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::field("$", format!("the body is not UTF-8 text: {e}")))?;
    if t.trim().is_empty() {
        return Err(ApiError::field(
            "$",
            "the body is empty: send a JSON document",
        ));
    }
    Ok(t)
}

/// One document: JSON, else YAML.
pub fn document(text: &str) -> Result<Value, ApiError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Ok(v),
        Err(json) => {
            let looks_json = matches!(text.trim_start().chars().next(), Some('{' | '['));
            if looks_json {
                return Err(ApiError::field(
                    "$",
                    format!(
                        "malformed JSON at line {}, column {}: {json}",
                        json.line(),
                        json.column()
                    ),
                ));
            }
            serde_saphyr::from_str::<Value>(text)
                .map_err(|e| ApiError::field("$", format!("malformed JSON or YAML: {e}")))
        }
    }
}

/// The pairs of a query string, form-decoded (`+` is a space, `%xx` decoded).
pub fn query(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of `name` in the pairs (the last one wins).
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `limit`: a whole number from 1 to [`MAX_LIMIT`], `default` when absent.
pub fn limit(pairs: &[(String, String)], default: usize) -> Result<usize, ApiError> {
    match param(pairs, "limit").map(str::trim) {
        None | Some("") => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                "limit",
                format!("{t:?} is not a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// A Reliably selector: base64 (URL-safe or standard, padded or not) of a JSON object
/// of labels, as `chaostoolkit-reliably` encodes it (newlines and all).
pub fn base64_selector(field: &str, text: &str) -> Result<Labels, ApiError> {
    // Form decoding made a standard-alphabet `+` a space; URL-safe has neither.
    let normal: String = text
        .trim()
        .chars()
        .filter(|c| *c != '=' && *c != '\n' && *c != '\r')
        .map(|c| match c {
            ' ' => '+',
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(normal.as_bytes())
        .map_err(|e| ApiError::field(field, format!("is not base64: {e}")))?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::field(
            field,
            format!("does not decode to a JSON object of labels: {e}"),
        )
    })?;
    labels_of(field, &json)
}

/// A native selector: a JSON object, or `k=v,k=v`; nothing is everything.
pub fn selector(field: &str, text: Option<&str>) -> Result<Labels, ApiError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Labels::new());
    };
    if t.starts_with('{') {
        let v: Value = serde_json::from_str(t)
            .map_err(|e| ApiError::field(field, format!("is not a JSON object: {e}")))?;
        return labels_of(field, &v);
    }
    crate::store::parse_selector([t]).map_err(|e| ApiError::field(field, e.to_string()))
}

/// Labels from a JSON object: strings, or numbers and booleans as their text (an
/// experiment's `labels` are never checked by the Reliably client).
pub fn labels_of(field: &str, v: &Value) -> Result<Labels, ApiError> {
    let Value::Object(o) = v else {
        return Err(ApiError::field(field, "must be a JSON object of labels"));
    };
    let mut out = Labels::new();
    let mut problems = Vec::new();
    for (k, val) in o {
        let text = match val {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                problems.push(SloProblem {
                    path: format!("{field}.{k}"),
                    message: format!("must be a string, got {other}"),
                });
                continue;
            }
        };
        if k.trim().is_empty() {
            problems.push(SloProblem {
                path: field.to_string(),
                message: "a label has an empty name".into(),
            });
            continue;
        }
        out.insert(k.clone(), text);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::problems(field, problems))
    }
}

/// Every objective in a body: one document, a JSON list, or YAML documents separated
/// by `---`; Reliably `Objective` and OpenSLO v1 `SLO` ([`crate::slo::parse_objectives`]).
pub fn objectives(text: &str) -> Result<Vec<crate::slo::Objective>, ApiError> {
    crate::slo::parse_objectives(text).map_err(|ps| ApiError::problems("the objectives", ps))
}
