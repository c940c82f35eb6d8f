//! `/v1/kill`: the server's kill switch. `POST` engages it (body `{reason, by}`, both
//! optional), `DELETE` releases it, `GET` says `{engaged, reason, at, by, pid, org}`.
//! Every run attached to this server (its SLO store is this server's URL) polls `GET`
//! and stops when it is engaged; new ones refuse to start.
//!
//! Any known token may call all three (`--no-auth`: anyone): stopping chaos is
//! everyone's right, and a token is already needed to run attached to the server.
//!
//! The store is the truth: the switch is one row of the store (`store::kill`), so
//! every `faultline serve` over the same store (replicas over one PostgreSQL, or a
//! restart over the same SQLite file) sees the same switch. Engaging and releasing are
//! atomic statements committed before the answer; an engagement the store cannot take
//! is a 503, never a success (the switch then still reads as engaged here, see below).
//!
//! Reads are cached for [`CACHE_TTL`]: every attached run polls `GET` twice a second,
//! and many runs on many replicas must not each cost a query. So a change made
//! through another replica shows here at most [`CACHE_TTL`] after it was committed
//! (plus the read's own time); one made through this replica shows at once. The
//! cache is shared by every request of this process, and a read that fails is cached
//! too (a dead database is not asked twice per [`CACHE_TTL`]).
//!
//! Fail-safe: a store that cannot be read (or not within [`READ_LIMIT`]) reads as
//! engaged, and the answer's reason says why.
//!
//! `--kill-switch PATH` (`FAULTLINE_KILL_SWITCH`) adds a local switch file to this
//! replica: while it exists, this server reads as engaged (`faultline kill
//! --kill-switch PATH` or `touch` on the server's machine), a file that cannot be
//! checked too; `DELETE` removes it with the store's switch. Engaging never writes it:
//! an engagement through the API is the store's, for every replica.

use super::{input, ApiError, ServerState};
use crate::killswitch::{self, Engaged, Engagement, Location};
use crate::store::Store;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// The route.
pub const ROUTE: &str = "/v1/kill";

/// How long a read of the store's switch is reused: the most a change made through
/// another replica takes to show here.
pub const CACHE_TTL: Duration = Duration::from_millis(250);

/// The longest a read of the store's switch may take before it counts as failed
/// (the switch then reads as engaged): below the 2 s limit of the runs' polls.
pub const READ_LIMIT: Duration = Duration::from_millis(1500);

/// Who engaged it, when a client does not say.
const UNKNOWN_CLIENT: &str = "a client of faultline serve";

/// Add the route.
pub fn routes(r: Router<ServerState>) -> Router<ServerState> {
    r.route(ROUTE, get(status).post(engage).delete(release))
}

/// What a read of the store said: the engagement in force, or why it could not tell.
type Read = Result<Option<Engagement>, String>;

/// A read of the store, and when it was made.
#[derive(Debug, Clone)]
struct Cached {
    at: Instant,
    read: Read,
}

impl Cached {
    /// Still usable at `now`.
    fn fresh(&self, now: Instant, ttl: Duration) -> bool {
        now.saturating_duration_since(self.at) < ttl
    }
}

/// The server's switch: the store's row, read through a short cache, and an optional
/// local file.
pub struct KillState {
    store: Store,
    /// The local switch file (`--kill-switch`), if any.
    file: Option<Location>,
    ttl: Duration,
    /// A tokio mutex: concurrent `GET`s wait for one read instead of each making one.
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl std::fmt::Debug for KillState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillState")
            .field("file", &self.file)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What engaging did.
#[derive(Debug)]
pub struct EngageOutcome {
    /// Engaged now, or already.
    pub engaged: Engaged,
}

/// The engagement in force, given what the store and the local file say: any of
/// them engaged is engaged (the store's first), and either that cannot be checked
/// reads as engaged, saying why (the switch fails closed).
pub fn verdict(
    store: &Read,
    file: Option<Result<Option<Engagement>, String>>,
) -> Option<Engagement> {
    let unknown = |what: &str, err: &str| Engagement {
        reason: format!(
            "{} ({what} cannot be checked: {err})",
            killswitch::DEFAULT_REASON
        ),
        ..Engagement::parse(b"")
    };
    match store {
        Ok(Some(e)) => return Some(e.clone()),
        Err(err) => return Some(unknown("the store's switch", err)),
        Ok(None) => {}
    }
    match file {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(e))) => Some(e),
        Some(Err(err)) => Some(unknown("its file", &err)),
    }
}

impl KillState {
    /// The switch kept in `store`, with a local switch `file` if any.
    pub fn new(store: Store, file: Option<Location>) -> KillState {
        KillState::with_ttl(store, file, CACHE_TTL)
    }

    /// [`KillState::new`] with another cache lifetime (tests).
    pub fn with_ttl(store: Store, file: Option<Location>, ttl: Duration) -> KillState {
        KillState {
            store,
            file,
            ttl,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Where it is kept, as a person reads it.
    pub fn describe(&self) -> String {
        match &self.file {
            Some(l) => format!("the store, and the file {}", l.describe()),
            None => "the store".into(),
        }
    }

    /// The store's switch, from the cache while it is fresh.
    async fn stored(&self) -> Read {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref().filter(|c| c.fresh(Instant::now(), self.ttl)) {
            return c.read.clone();
        }
        let read = match tokio::time::timeout(READ_LIMIT, self.store.kill_switch()).await {
            Ok(Ok(e)) => Ok(e),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "the store did not answer within {} ms",
                READ_LIMIT.as_millis()
            )),
        };
        // Stamped after the read: a slow read is not stale on arrival.
        *cache = Some(Cached {
            at: Instant::now(),
            read: read.clone(),
        });
        read
    }

    /// What this replica now knows the store holds (after its own write).
    async fn remember(&self, e: Option<Engagement>) {
        *self.cache.lock().await = Some(Cached {
            at: Instant::now(),
            read: Ok(e),
        });
    }

    /// Forget the cached read (the next one asks the store).
    async fn forget(&self) {
        *self.cache.lock().await = None;
    }

    fn local(&self) -> Option<Result<Option<Engagement>, String>> {
        let file = self.file.as_ref()?;
        Some(
            file.read()
                .map(|found| found.map(|(_, e)| e))
                .map_err(|e| e.to_string()),
        )
    }

    /// The engagement in force (`None`: off).
    pub async fn current(&self) -> Option<Engagement> {
        let stored = self.stored().await;
        verdict(&stored, self.local())
    }

    /// Engage it with `e`, unless it is on (then the engagement in force stays). A
    /// store that cannot take it is a 503.
    pub async fn engage(&self, e: Engagement) -> Result<EngageOutcome, ApiError> {
        match self.store.engage_kill_switch(&e).await {
            Ok(engaged) => {
                self.remember(Some(engaged.engagement().clone())).await;
                Ok(EngageOutcome { engaged })
            }
            Err(err) => {
                self.forget().await;
                Err(ApiError::Unavailable(format!(
                    "the kill switch could not be engaged in the store: {err} (while the store cannot be read, this server's switch reads as engaged)"
                )))
            }
        }
    }

    /// Release it (the store's and the local file): the engagement that was in
    /// force, if any. A store or a file that cannot be written keeps it on (503).
    pub async fn release(&self) -> Result<Option<Engagement>, ApiError> {
        let stored = match self.store.release_kill_switch().await {
            Ok(before) => {
                self.remember(None).await;
                before
            }
            Err(err) => {
                self.forget().await;
                return Err(ApiError::Unavailable(format!(
                    "the kill switch stays engaged: the store could not release it: {err}"
                )));
            }
        };
        let local = match &self.file {
            Some(file) => file.release().map_err(|e| {
                ApiError::Unavailable(format!("the kill switch stays engaged: {e}"))
            })?,
            None => None,
        };
        Ok(stored.or(local))
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
    Ok(Json(answer(st.kill.current().await.as_ref())))
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
    let done = st.kill.engage(e).await?;
    let mut m = answer(Some(done.engaged.engagement()));
    m.insert(
        "changed".into(),
        Value::Bool(matches!(done.engaged, Engaged::Now(_))),
    );
    Ok(Json(m))
}

async fn release(
    State(st): State<ServerState>,
    headers: HeaderMap,
) -> Result<Json<Map<String, Value>>, ApiError> {
    st.auth.authenticate(&st.store, &headers).await?;
    let before = st.kill.release().await?;
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

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn sqlite(dir: &std::path::Path) -> Store {
        Store::Sqlite(crate::store::sqlite::SqliteStore::open(&dir.join("s.db")).unwrap())
    }

    #[test]
    fn any_switch_engaged_is_engaged_and_one_that_cannot_be_checked_too() {
        let e = |r: &str| Engagement::now(Some(r));
        assert_eq!(verdict(&Ok(None), None), None);
        assert_eq!(verdict(&Ok(None), Some(Ok(None))), None);
        assert_eq!(verdict(&Ok(Some(e("db"))), None).unwrap().reason, "db");
        // The store's engagement first, then the file's.
        let both = verdict(&Ok(Some(e("db"))), Some(Ok(Some(e("file")))));
        assert_eq!(both.unwrap().reason, "db");
        let file = verdict(&Ok(None), Some(Ok(Some(e("file")))));
        assert_eq!(file.unwrap().reason, "file");
        // Fail closed, saying why.
        let down = verdict(&Err("connection refused".into()), Some(Ok(None))).unwrap();
        assert!(
            down.reason.starts_with(killswitch::DEFAULT_REASON)
                && down.reason.contains("the store's switch cannot be checked")
                && down.reason.contains("connection refused"),
            "{down:?}"
        );
        let bad = verdict(&Ok(None), Some(Err("permission denied".into()))).unwrap();
        assert!(bad.reason.contains("its file cannot be checked"), "{bad:?}");
    }

    #[test]
    fn a_read_is_reused_only_while_fresh() {
        let t0 = Instant::now();
        let c = Cached {
            at: t0,
            read: Ok(None),
        };
        let ttl = Duration::from_millis(250);
        assert!(c.fresh(t0, ttl));
        assert!(c.fresh(t0 + Duration::from_millis(249), ttl));
        assert!(!c.fresh(t0 + ttl, ttl));
        assert!(!c.fresh(t0, Duration::ZERO));
    }

    #[test]
    fn the_store_is_the_truth_shared_by_every_server_over_it() {
        let dir = temp("shared");
        rt().block_on(async {
            let store = sqlite(&dir);
            // Two servers over one store: `a` never caches, `b` for an hour.
            let a = KillState::with_ttl(store.clone(), None, Duration::ZERO);
            let b = KillState::with_ttl(store.clone(), None, Duration::from_secs(3600));
            assert_eq!(b.current().await, None);
            let done = a
                .engage(Engagement::now(Some("incident 42")))
                .await
                .unwrap();
            assert!(matches!(done.engaged, Engaged::Now(_)), "{done:?}");
            // `b` answers from its cache until it expires: the staleness bound.
            assert_eq!(b.current().await, None);
            let b = KillState::with_ttl(store.clone(), None, Duration::ZERO);
            assert_eq!(b.current().await.unwrap().reason, "incident 42");
            // A second engagement, through the other server, keeps the first reason.
            let again = b.engage(Engagement::now(Some("other"))).await.unwrap();
            assert!(
                matches!(&again.engaged, Engaged::Already(e) if e.reason == "incident 42"),
                "{again:?}"
            );
            // Released through `b`: `a` sees it; a second release finds nothing.
            assert_eq!(b.release().await.unwrap().unwrap().reason, "incident 42");
            assert_eq!(a.current().await, None);
            assert_eq!(a.release().await.unwrap(), None);
            // A server's own writes show at once, whatever its cache.
            let c = KillState::with_ttl(store.clone(), None, Duration::from_secs(3600));
            assert_eq!(c.current().await, None);
            c.engage(Engagement::now(Some("mine"))).await.unwrap();
            assert_eq!(c.current().await.unwrap().reason, "mine");
            store.close().await;
            // A restart keeps it: a new handle on the same file.
            let store = sqlite(&dir);
            let d = KillState::new(store.clone(), None);
            assert_eq!(d.current().await.unwrap().reason, "mine");
            d.release().await.unwrap();
            store.close().await;
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_local_file_engages_this_server_and_release_removes_it() {
        let dir = temp("file");
        let file = dir.join("kill-switch");
        rt().block_on(async {
            let store = sqlite(&dir);
            let k = KillState::with_ttl(store.clone(), Some(Location::file(&file)), Duration::ZERO);
            assert_eq!(k.current().await, None);
            // Engaged through the file (faultline kill --kill-switch, touch).
            std::fs::write(&file, "").unwrap();
            assert_eq!(
                k.current().await.unwrap().reason,
                killswitch::DEFAULT_REASON
            );
            // Another server over the store does not see this replica's file.
            let other = KillState::with_ttl(store.clone(), None, Duration::ZERO);
            assert_eq!(other.current().await, None);
            // POST engages the store, never the file.
            let done = k.engage(Engagement::now(Some("api"))).await.unwrap();
            assert!(matches!(done.engaged, Engaged::Now(_)));
            assert_eq!(other.current().await.unwrap().reason, "api");
            // DELETE releases both.
            assert_eq!(k.release().await.unwrap().unwrap().reason, "api");
            assert!(!file.exists());
            assert_eq!(k.current().await, None);
            // The file alone, released: its engagement is the previous one.
            std::fs::write(&file, "").unwrap();
            assert!(k.release().await.unwrap().is_some());
            assert!(!file.exists());
            store.close().await;
        });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_store_that_cannot_be_used_reads_as_engaged_and_refuses_to_engage() {
        rt().block_on(async {
            // A remote store has no kill switch of its own: every call fails.
            let store = crate::store::Store::open(&crate::store::StoreSpec::Remote {
                base: "http://127.0.0.1:1".parse().unwrap(),
                token: None,
            })
            .await
            .unwrap();
            let k = KillState::new(store, None);
            let e = k.current().await.unwrap();
            assert!(e.reason.contains("cannot be checked"), "{e:?}");
            let err = k.engage(Engagement::now(None)).await.unwrap_err();
            assert!(matches!(err, ApiError::Unavailable(_)), "{err:?}");
            assert!(k.release().await.is_err());
            // Still engaged (the failure is cached too, and read again after it).
            assert!(k.current().await.is_some());
        });
    }

    #[test]
    fn a_file_that_cannot_be_checked_reads_as_engaged() {
        let dir = temp("unchecked");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("blocker"), "").unwrap();
        rt().block_on(async {
            let store = sqlite(&dir);
            let k = KillState::new(
                store.clone(),
                Some(Location::file(dir.join("blocker").join("kill-switch"))),
            );
            let e = k.current().await.unwrap();
            assert!(e.reason.contains("cannot be checked"), "{e:?}");
            store.close().await;
        });
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
