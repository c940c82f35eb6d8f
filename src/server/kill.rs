//! `/v1/kill`: the server's kill switch. `POST` engages it (body `{reason, by}`, both
//! optional), `DELETE` releases it, `GET` says `{engaged, reason, at, by, pid, org}`.
//! Every run attached to this server (its SLO store is this server's URL) polls `GET`
//! and stops when it is engaged; new ones refuse to start.
//!
//! Any known token may call all three (`--no-auth`: anyone): stopping chaos is
//! everyone's right, and a token is already needed to run attached to the server.
//!
//! The state is kept in the process and persisted in a switch file
//! ([`crate::killswitch::Location`], by default the machine's own, so a restart keeps
//! the switch on and `faultline kill` on the server's machine is the same switch).
//! The file is the truth when it can be used: it is read at every `GET`, so engaging
//! or releasing it locally shows here. An engagement whose file could not be written
//! is kept in memory (and said so in the answer): engaging never fails for want of a
//! disk. A file that cannot even be checked reads as engaged: the switch fails
//! closed.

use super::{input, ApiError, ServerState};
use crate::killswitch::{self, Engaged, Engagement, Location};
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};
use std::sync::Mutex;

/// The route.
pub const ROUTE: &str = "/v1/kill";

/// Who engaged it, when a client does not say.
const UNKNOWN_CLIENT: &str = "a client of faultline serve";

/// Add the route.
pub fn routes(r: Router<ServerState>) -> Router<ServerState> {
    r.route(ROUTE, get(status).post(engage).delete(release))
}

/// The server's switch.
#[derive(Debug, Default)]
pub struct KillState {
    /// Where it is persisted (`None`: in memory only, as tests build a server).
    location: Option<Location>,
    memory: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    engagement: Option<Engagement>,
    /// Whether the engagement is in the file (else only here).
    persisted: bool,
}

/// What engaging did, and whether it was persisted.
#[derive(Debug)]
pub struct EngageOutcome {
    /// Engaged now, or already.
    pub engaged: Engaged,
    /// Why the file does not hold it (it is held in memory), if it does not.
    pub warning: Option<String>,
}

impl KillState {
    /// A switch persisted at `location`.
    pub fn persisted(location: Location) -> KillState {
        KillState {
            location: Some(location),
            memory: Mutex::default(),
        }
    }

    /// Where it is persisted, as a person reads it.
    pub fn describe(&self) -> String {
        match &self.location {
            Some(l) => l.describe(),
            None => "memory only".into(),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engagement in force (`None`: off).
    pub fn current(&self) -> Option<Engagement> {
        self.current_in(&mut self.memory())
    }

    fn current_in(&self, m: &mut Memory) -> Option<Engagement> {
        let Some(location) = &self.location else {
            return m.engagement.clone();
        };
        match location.read() {
            Ok(Some((_, e))) => {
                m.engagement = Some(e.clone());
                m.persisted = true;
                Some(e)
            }
            // Released through the file (`faultline kill --release` on this machine),
            // unless the file never held it.
            Ok(None) if m.persisted || m.engagement.is_none() => {
                m.engagement = None;
                m.persisted = false;
                None
            }
            Ok(None) => m.engagement.clone(),
            Err(err) => m.engagement.clone().or_else(|| {
                Some(Engagement {
                    reason: format!(
                        "{} (its file cannot be checked: {err})",
                        killswitch::DEFAULT_REASON
                    ),
                    ..Engagement::parse(b"")
                })
            }),
        }
    }

    /// Engage it with `e`, unless it is on (then the engagement in force stays).
    pub fn engage(&self, e: Engagement) -> EngageOutcome {
        let mut m = self.memory();
        if let Some(there) = self.current_in(&mut m) {
            return EngageOutcome {
                engaged: Engaged::Already(there),
                warning: None,
            };
        }
        let Some(location) = &self.location else {
            m.engagement = Some(e.clone());
            return EngageOutcome {
                engaged: Engaged::Now(e),
                warning: None,
            };
        };
        match location.engage(&e) {
            Ok((engaged, errors)) => {
                m.engagement = Some(engaged.engagement().clone());
                m.persisted = true;
                let warning = (!errors.is_empty()).then(|| {
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                });
                EngageOutcome { engaged, warning }
            }
            Err(err) => {
                m.engagement = Some(e.clone());
                m.persisted = false;
                EngageOutcome {
                    engaged: Engaged::Now(e),
                    warning: Some(format!(
                        "engaged in this server's memory only (a restart releases it): {err}"
                    )),
                }
            }
        }
    }

    /// Release it: the engagement that was in force, if any. A file that cannot be
    /// removed keeps it on (503).
    pub fn release(&self) -> Result<Option<Engagement>, ApiError> {
        let mut m = self.memory();
        let before = self.current_in(&mut m);
        if let Some(location) = &self.location {
            location.release().map_err(|e| {
                ApiError::Unavailable(format!("the kill switch stays engaged: {e}"))
            })?;
        }
        m.engagement = None;
        m.persisted = false;
        Ok(before)
    }
}

/// `{"engaged": true, "reason": …, "at": …, "by": …, "pid": …, "org": …}` or
/// `{"engaged": false}`.
fn answer(e: Option<&Engagement>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("engaged".into(), Value::Bool(e.is_some()));
    if let Some(Value::Object(fields)) = e.map(|e| serde_json::json!(e)) {
        m.extend(fields);
    }
    m
}

async fn status(
    State(st): State<ServerState>,
    headers: HeaderMap,
) -> Result<Json<Map<String, Value>>, ApiError> {
    st.auth.authenticate(&st.store, &headers).await?;
    Ok(Json(answer(st.kill.current().as_ref())))
}

/// The optional `reason` and `by` of a POST body (none, JSON or YAML).
fn request(bytes: &axum::body::Bytes) -> Result<(Option<String>, Option<String>), ApiError> {
    let blank = std::str::from_utf8(bytes).is_ok_and(|t| t.trim().is_empty());
    if blank {
        return Ok((None, None));
    }
    let doc = input::document(input::text(bytes)?)?;
    let obj = match &doc {
        Value::Object(o) => o,
        Value::Null => return Ok((None, None)),
        other => {
            return Err(ApiError::field(
                "$",
                format!("expected an object {{\"reason\": \"...\"}}, found {other}"),
            ))
        }
    };
    let text = |key: &str| match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::field(
            key,
            format!("must be a string, found {other}"),
        )),
    };
    Ok((text("reason")?, text("by")?))
}

async fn engage(
    State(st): State<ServerState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let org = st.auth.authenticate(&st.store, &headers).await?;
    let bytes = input::body(body).await?;
    let (reason, by) = request(&bytes)?;
    let by = by
        .map(|b| killswitch::one_line(&b, 200))
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| UNKNOWN_CLIENT.into());
    let e = Engagement {
        by: Some(by),
        org,
        ..Engagement::now(reason.as_deref())
    };
    let done = st.kill.engage(e);
    let mut m = answer(Some(done.engaged.engagement()));
    m.insert(
        "changed".into(),
        Value::Bool(matches!(done.engaged, Engaged::Now(_))),
    );
    if let Some(w) = done.warning {
        m.insert("persisted".into(), Value::Bool(false));
        m.insert("warning".into(), Value::String(w));
    }
    Ok(Json(m))
}

async fn release(
    State(st): State<ServerState>,
    headers: HeaderMap,
) -> Result<Json<Map<String, Value>>, ApiError> {
    st.auth.authenticate(&st.store, &headers).await?;
    let before = st.kill.release()?;
    let mut m = answer(None);
    m.insert("released".into(), Value::Bool(before.is_some()));
    if let Some(b) = before {
        m.insert("previous".into(), Value::Object(answer(Some(&b))));
    }
    Ok(Json(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fl-srv-kill-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_file_is_the_truth_and_memory_the_fallback() {
        let dir = temp("truth");
        let file = dir.join("kill-switch");
        let k = KillState::persisted(Location::file(&file));
        assert_eq!(k.current(), None);
        let done = k.engage(Engagement::now(Some("incident 42")));
        assert!(matches!(done.engaged, Engaged::Now(_)), "{done:?}");
        assert!(done.warning.is_none());
        assert!(file.exists());
        // A second engagement keeps the first reason.
        let again = k.engage(Engagement::now(Some("other")));
        assert!(matches!(&again.engaged, Engaged::Already(e) if e.reason == "incident 42"));
        // Released through the file (faultline kill --release on this machine).
        std::fs::remove_file(&file).unwrap();
        assert_eq!(k.current(), None);
        // Engaged through the file (faultline kill, touch).
        std::fs::write(&file, "").unwrap();
        assert_eq!(k.current().unwrap().reason, killswitch::DEFAULT_REASON);
        assert!(k.release().unwrap().is_some());
        assert!(!file.exists());
        assert_eq!(k.release().unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_engagement_that_cannot_be_written_is_held_in_memory() {
        // Nothing, not even root, can make a directory in /proc/self.
        let k = KillState::persisted(Location::file("/proc/self/fl-kill/kill-switch"));
        assert_eq!(k.current(), None);
        let done = k.engage(Engagement::now(Some("no disk")));
        assert!(matches!(done.engaged, Engaged::Now(_)));
        assert!(done.warning.unwrap().contains("memory only"));
        assert_eq!(k.current().unwrap().reason, "no disk");
        assert!(k.release().unwrap().is_some());
        assert_eq!(k.current(), None);
    }

    #[test]
    fn a_file_that_cannot_be_checked_reads_as_engaged() {
        let dir = temp("unchecked");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("blocker"), "").unwrap();
        let k = KillState::persisted(Location::file(dir.join("blocker").join("kill-switch")));
        let e = k.current().unwrap();
        assert!(e.reason.contains("cannot be checked"), "{e:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bodies_are_optional_and_checked() {
        let b = |s: &str| axum::body::Bytes::from(s.to_string());
        assert_eq!(request(&b("")).unwrap(), (None, None));
        assert_eq!(request(&b("null")).unwrap(), (None, None));
        assert_eq!(
            request(&b(r#"{"reason": "stop", "by": "al@h"}"#)).unwrap(),
            (Some("stop".into()), Some("al@h".into()))
        );
        assert_eq!(
            request(&b("reason: from yaml")).unwrap(),
            (Some("from yaml".into()), None)
        );
        assert!(request(&b(r#"{"reason": 3}"#)).is_err());
        assert!(request(&b("[1]")).is_err());
    }
}
