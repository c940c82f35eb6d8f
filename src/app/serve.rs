//! `faultline serve` and `faultline token create`, assembled: flags and environment
//! into a store, an optional local kill switch file and a listener, with the refusals
//! that protect a shared store (no auth only on loopback, no serving a remote store,
//! TLS needs both files, a kill switch file that can be checked) decided here, before
//! anything listens. The server's kill switch itself lives in the store
//! ([`crate::server::kill`]).

use crate::server::{self, Listen, ServerState};
use crate::store::{Store, StoreSpec};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8089";

/// What `faultline serve` was asked.
#[derive(Debug, Clone, Default)]
pub struct ServeRequest {
    /// `--listen` (default [`DEFAULT_LISTEN`]).
    pub listen: Option<String>,
    /// `--store` / `FAULTLINE_STORE`.
    pub store: Option<String>,
    /// `--no-auth`: nobody is checked (loopback only).
    pub no_auth: bool,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--remote-write`: forward every committed indicator to this Prometheus
    /// remote-write URL.
    pub remote_write: Option<String>,
    /// `--kill-switch` / `FAULTLINE_KILL_SWITCH`: a local switch file that engages
    /// this server too while it exists (none by default: the store holds the switch).
    pub kill_switch: Option<PathBuf>,
}

/// Why `serve` or `token create` did not do it.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A flag is wrong (exit code 3).
    #[error("{0}")]
    Invalid(String),
    /// The store or the socket failed (exit code 2).
    #[error("{0}")]
    Failed(String),
}

impl ServeError {
    /// The exit code of this refusal.
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        match self {
            ServeError::Invalid(_) => crate::exit::ExitCode::InvalidInput,
            ServeError::Failed(_) => crate::exit::ExitCode::Failed,
        }
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// The store `--store` names, SQLite or PostgreSQL; a remote one is refused (`what`
/// says for what).
fn local_store(typed: Option<&str>, what: &str) -> Result<StoreSpec, ServeError> {
    match StoreSpec::parse(typed, None, &env) {
        Ok(StoreSpec::Remote { base, .. }) => Err(ServeError::Invalid(format!(
            "{what} needs a local store file or a postgres:// database, not the server {base}: give --store PATH"
        ))),
        Ok(spec) => Ok(spec),
        Err(e) => Err(ServeError::Invalid(e.to_string())),
    }
}

/// The checked plan of a serve request.
#[derive(Debug, Clone)]
pub struct ServePlan {
    /// Where to listen, and TLS.
    pub listen: Listen,
    /// The store: an SQLite file or a PostgreSQL database.
    pub store: StoreSpec,
    /// Tokens checked.
    pub auth: bool,
    /// The local switch file that engages this server too, if one was given.
    pub kill_switch: Option<crate::killswitch::Location>,
}

/// Check a request: every refusal before anything is opened.
pub fn plan(req: &ServeRequest) -> Result<ServePlan, ServeError> {
    let typed = req.listen.as_deref().unwrap_or(DEFAULT_LISTEN).trim();
    let addr: SocketAddr = typed.parse().map_err(|_| {
        ServeError::Invalid(format!(
            "--listen {typed:?}: expected IP:PORT, e.g. 127.0.0.1:8089 or [::1]:8089"
        ))
    })?;
    if req.no_auth && !addr.ip().is_loopback() {
        return Err(ServeError::Invalid(format!(
            "--no-auth is refused on {addr}: without auth, listen on a loopback address (127.0.0.1 or [::1]); otherwise use tokens (faultline token create --org NAME)"
        )));
    }
    let tls = match (&req.tls_cert, &req.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(ServeError::Invalid(
                "--tls-cert needs --tls-key (the certificate's private key, PEM)".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(ServeError::Invalid(
                "--tls-key needs --tls-cert (the certificate chain, PEM)".into(),
            ))
        }
    };
    let store = local_store(req.store.as_deref(), "faultline serve")?;
    // The flag already holds FAULTLINE_KILL_SWITCH (the CLI reads it); the settings
    // file is the runs', not the server's. No default file: the machine's default
    // switch is the runs' on this machine, and the store is the server's.
    let kill_switch = match super::kill::location(req.kill_switch.as_deref(), None, &|k| {
        (k != "FAULTLINE_KILL_SWITCH").then(|| env(k)).flatten()
    }) {
        (location, true) => Some(location),
        (_, false) => None,
    };
    Ok(ServePlan {
        listen: Listen { addr, tls },
        store,
        auth: !req.no_auth,
        kill_switch,
    })
}

/// Serve until `shutdown` completes (the CLI: SIGTERM or SIGINT), then finish the
/// requests in flight and close the store. `on_ready` gets the bound address, the
/// store (as shown: a path, or a database URL without its password) and where the
/// kill switch is kept once listening.
pub async fn serve(
    req: &ServeRequest,
    on_ready: impl FnOnce(SocketAddr, &str, &str),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let plan = plan(req)?;
    // A switch file that cannot be checked would read as engaged at every request:
    // refused now, with its reason, rather than stopping every attached run later.
    if let Some(Err(e)) = plan.kill_switch.as_ref().map(|l| l.is_engaged()) {
        return Err(ServeError::Failed(format!(
            "{e}: give --kill-switch PATH (FAULTLINE_KILL_SWITCH) a file this server can check, or leave it out (the store holds the switch)"
        )));
    }
    let store = Store::open_with(&plan.store, req.remote_write.as_deref())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Invalid(m) => ServeError::Invalid(m),
            other => ServeError::Failed(other.to_string()),
        })?;
    let mut state = ServerState::new(store.clone(), plan.auth);
    if let Some(file) = &plan.kill_switch {
        state = state.with_kill_switch_file(file.clone());
    }
    let shown = plan.store.describe();
    let switch = state.kill.describe();
    let served = server::serve(
        state,
        plan.listen,
        |a| on_ready(a, &shown, &switch),
        shutdown,
    )
    .await;
    // `server::serve` closes the store on its way out; a failure before it listened
    // leaves it open, so close here too (closing twice is harmless).
    store.close().await;
    served.map_err(|e| match e {
        server::ServeError::Tls(m) => ServeError::Invalid(m),
        other => ServeError::Failed(other.to_string()),
    })
}

/// `faultline token create --org NAME`: a new token for `org`, to show once.
pub async fn create_token(org: &str, store: Option<&str>) -> Result<String, ServeError> {
    let spec = local_store(store, "faultline token create")?;
    let store = Store::open(&spec)
        .await
        .map_err(|e| ServeError::Failed(e.to_string()))?;
    let made = store.create_token(org).await;
    store.close().await;
    made.map_err(|e| match e {
        crate::store::StoreError::Invalid(m) => ServeError::Invalid(format!("--org: {m}")),
        other => ServeError::Failed(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(listen: &str, no_auth: bool) -> ServeRequest {
        ServeRequest {
            listen: Some(listen.into()),
            store: Some("/tmp/x.db".into()),
            no_auth,
            ..Default::default()
        }
    }

    #[test]
    fn no_auth_is_refused_off_loopback() {
        assert!(plan(&req("127.0.0.1:0", true)).is_ok());
        assert!(plan(&req("[::1]:0", true)).is_ok());
        let e = plan(&req("0.0.0.0:8089", true)).unwrap_err();
        assert!(e.to_string().contains("--no-auth is refused"), "{e}");
        assert!(matches!(e, ServeError::Invalid(_)));
        assert!(plan(&req("0.0.0.0:8089", false)).unwrap().auth);
        let mut r = req("127.0.0.1:0", false);
        r.kill_switch = Some("/srv/kill".into());
        assert_eq!(
            plan(&r).unwrap().kill_switch,
            Some(crate::killswitch::Location::file("/srv/kill"))
        );
    }

    #[test]
    fn bad_flags_are_named() {
        let e = plan(&req("localhost", false)).unwrap_err();
        assert!(e.to_string().contains("--listen"), "{e}");
        let mut r = req("127.0.0.1:0", false);
        r.tls_cert = Some("c.pem".into());
        assert!(plan(&r).unwrap_err().to_string().contains("--tls-key"));
        let mut r = req("127.0.0.1:0", false);
        r.store = Some("http://127.0.0.1:1".into());
        let e = plan(&r).unwrap_err();
        assert!(e.to_string().contains("local store file"), "{e}");
        let mut r = req("127.0.0.1:0", false);
        r.store = Some("postgres://u@127.0.0.1:5432/db".into());
        assert!(matches!(plan(&r).unwrap().store, StoreSpec::Postgres(_)));
    }
}
