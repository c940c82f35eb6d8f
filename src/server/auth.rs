//! Who may call: a bearer token per organisation (`faultline token create`), of which
//! the store keeps only the hash. No token or an unknown one is 401, another
//! organisation's token 403. The token itself is never logged, echoed in an error nor
//! kept in memory: only its hash is remembered (tokens are never revoked, so a hash
//! once known stays valid).

use super::ApiError;
use crate::store::{org_name, token_hash, Store};
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How requests are checked.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Nobody is checked (`--no-auth`, loopback only).
    Off,
    /// Bearer tokens, looked up in the store; known hashes remembered.
    Tokens(Arc<Mutex<HashMap<String, String>>>),
}

impl Auth {
    /// Tokens checked.
    pub fn tokens() -> Auth {
        Auth::Tokens(Arc::new(Mutex::new(HashMap::new())))
    }

    /// The organisation of the path (`{org}`), lower-cased, once the request may use
    /// it.
    pub async fn authorize(
        &self,
        store: &Store,
        headers: &HeaderMap,
        org: &str,
    ) -> Result<String, ApiError> {
        let Auth::Tokens(known) = self else {
            return checked_org(org);
        };
        let Some(token) = bearer(headers) else {
            return Err(no_token());
        };
        let org = checked_org(org)?;
        let owner = owner(known, store, token).await?;
        if owner != org {
            return Err(ApiError::Forbidden(format!(
                "the bearer token may not use organisation {org:?}"
            )));
        }
        Ok(org)
    }

    /// For the routes of no organisation (`/v1/kill`): any known token may call; its
    /// organisation (`None` when nobody is checked).
    pub async fn authenticate(
        &self,
        store: &Store,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ApiError> {
        let Auth::Tokens(known) = self else {
            return Ok(None);
        };
        let Some(token) = bearer(headers) else {
            return Err(no_token());
        };
        owner(known, store, token).await.map(Some)
    }
}

fn no_token() -> ApiError {
    ApiError::Unauthorized(
        "no bearer token: send 'Authorization: Bearer TOKEN' (make one with faultline token create --org NAME)"
            .into(),
    )
}

/// The organisation of a known token (401 for an unknown one).
async fn owner(
    known: &Mutex<HashMap<String, String>>,
    store: &Store,
    token: &str,
) -> Result<String, ApiError> {
    let hash = token_hash(token);
    let cached = known
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&hash)
        .cloned();
    if let Some(o) = cached {
        return Ok(o);
    }
    let Some(o) = store.token_org(token).await? else {
        return Err(ApiError::Unauthorized(
            "the bearer token is not known to this server".into(),
        ));
    };
    known
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(hash, o.clone());
    Ok(o)
}

fn checked_org(org: &str) -> Result<String, ApiError> {
    org_name(org).map_err(|e| ApiError::field("org", e.to_string()))
}

/// The token of `Authorization: Bearer TOKEN` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
