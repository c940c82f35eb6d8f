//! The SLO store: objectives, indicators, the objective results computed as indicators
//! arrive, API tokens, and (next issues) run records. One [`Store`] handle, whatever
//! holds the data:
//! - an embedded SQLite file, the zero-set-up default ([`sqlite`]);
//! - a remote `faultline serve`, over its native HTTP API ([`remote`]).
//!
//! Every method is async and the handle is cheap to clone, so the CLI, the providers
//! of a run and the server share one shape. Input arrives already checked by
//! [`crate::slo`]: nothing here parses documents, so nothing malformed reaches a table.

pub(crate) mod kill;
pub mod postgres;
pub mod remote;
pub mod remote_write;
pub mod runs;
pub mod scores;
pub mod sqlite;

use crate::slo::{Indicator, Labels, Objective, ObjectiveResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The organisation of a store opened without one (the embedded store's only one).
pub const DEFAULT_ORG: &str = "default";

/// Where the store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://user:password@host:port/db`).
    Postgres(String),
    /// A `faultline serve` at this base URL, with a bearer token.
    Remote {
        /// `http(s)://host:port`.
        base: url::Url,
        /// The bearer token (`FAULTLINE_TOKEN`).
        token: Option<String>,
    },
}

impl StoreSpec {
    /// `--store` as typed: an `http(s)://` URL is a remote store, anything else a
    /// file path; nothing typed is the default file.
    pub fn parse(
        typed: Option<&str>,
        token: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<StoreSpec, StoreError> {
        let Some(typed) = typed.map(str::trim).filter(|s| !s.is_empty()) else {
            return default_path(env).map(StoreSpec::Sqlite);
        };
        let lower = typed.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            let base = url::Url::parse(typed).map_err(|e| {
                StoreError::Invalid(format!("--store {typed:?} is not a valid URL: {e}"))
            })?;
            return Ok(StoreSpec::Remote { base, token });
        }
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(StoreSpec::Postgres(typed.to_string()));
        }
        if let Some((scheme, _)) = typed.split_once("://") {
            return Err(StoreError::Invalid(format!(
                "--store: unknown scheme {scheme:?}; give a file path or an http(s):// URL"
            )));
        }
        Ok(StoreSpec::Sqlite(PathBuf::from(typed)))
    }

    /// What to show of it: the path, or the URL (never a token).
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Sqlite(p) => p.display().to_string(),
            StoreSpec::Postgres(url) => postgres::shown(url),
            StoreSpec::Remote { base, .. } => base.to_string(),
        }
    }
}

/// `$XDG_DATA_HOME/faultline/store.db`, else `~/.local/share/faultline/store.db`.
pub fn default_path(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf, StoreError> {
    if let Some(d) = env("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("faultline").join("store.db"));
    }
    match env("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h)
            .join(".local")
            .join("share")
            .join("faultline")
            .join("store.db")),
        None => Err(StoreError::Invalid(
            "neither XDG_DATA_HOME nor HOME is set: give --store PATH (or FAULTLINE_STORE)".into(),
        )),
    }
}

/// What went wrong with the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The request is wrong (bad org, bad selector, bad flag): the caller's fault.
    #[error("{0}")]
    Invalid(String),
    /// The token is missing or unknown.
    #[error("{0}")]
    Unauthorized(String),
    /// The token belongs to another organisation.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing matched.
    #[error("{0}")]
    NotFound(String),
    /// The store could not do it (disk, database, network): not the caller's fault.
    #[error("{0}")]
    Unavailable(String),
}

/// Who pushed an indicator, when a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Origin {
    /// The run's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The run's trace id (32 hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// A stored objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectiveRecord {
    /// Its entity id ([`entity_id`]).
    pub id: String,
    /// Its labels: its identity.
    pub labels: Labels,
    /// Which indicators it judges.
    pub indicator_selector: Labels,
    /// Its target, 0 to 100.
    pub objective_percent: f64,
    /// Its window as written (`1h`).
    pub window: String,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last stored.
    pub updated_at: DateTime<Utc>,
}

impl ObjectiveRecord {
    /// The objective, checked again (a stored one always passes).
    pub fn objective(&self) -> Objective {
        Objective {
            labels: self.labels.clone(),
            indicator_selector: self.indicator_selector.clone(),
            objective_percent: self.objective_percent,
            window: self.window.clone(),
            window_length: crate::slo::parse_window(&self.window).unwrap_or_default(),
            sli: None,
        }
    }
}

/// A stored indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndicatorRecord {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: Labels,
    /// What it measures: from.
    pub from: DateTime<Utc>,
    /// What it measures: to.
    pub to: DateTime<Utc>,
    /// Its percent of good events.
    pub percent: f64,
    /// Good events, when counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good: Option<u64>,
    /// All events, when counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The run that pushed it.
    #[serde(flatten)]
    pub origin: Origin,
    /// When the store received it.
    pub created_at: DateTime<Utc>,
    /// How many objectives judged it (one result each).
    pub results: usize,
}

/// One indicator judged against one objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultRecord {
    /// Its id.
    pub id: String,
    /// The objective's id.
    pub objective_id: String,
    /// The objective's labels.
    pub objective_labels: Labels,
    /// The indicator's id.
    pub indicator_id: String,
    /// The result proper (selector, objective, actual, remaining).
    #[serde(flatten)]
    pub result: ObjectiveResult,
    /// The indicator's window: from.
    pub from: DateTime<Utc>,
    /// The indicator's window: to.
    pub to: DateTime<Utc>,
    /// When the result was made (the indicator arrived).
    pub created_at: DateTime<Utc>,
    /// The indicator's counts, when it had them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good: Option<u64>,
    /// See `good`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// An objective with its newest results (newest first): a line of `slo report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportLine {
    /// The objective.
    pub objective: ObjectiveRecord,
    /// Its newest results, newest first.
    pub results: Vec<ResultRecord>,
}

/// The handle on a store. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    /// An embedded SQLite file.
    Sqlite(sqlite::SqliteStore),
    /// A PostgreSQL database shared by several servers.
    Postgres(postgres::PgStore),
    /// A remote `faultline serve`.
    Remote(remote::RemoteStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Sqlite(s) => write!(f, "Store::Sqlite({})", s.path().display()),
            Store::Postgres(s) => write!(f, "Store::Postgres({})", s.shown()),
            Store::Remote(r) => write!(f, "Store::Remote({})", r.base()),
        }
    }
}

impl Store {
    /// Open (and for a file, create and migrate) the store.
    pub async fn open(spec: &StoreSpec) -> Result<Store, StoreError> {
        Store::open_with(spec, None).await
    }

    /// [`Store::open`], forwarding every indicator it commits to Prometheus remote
    /// write at `remote_write` (an embedded store only: a server forwards its own).
    pub async fn open_with(
        spec: &StoreSpec,
        remote_write: Option<&str>,
    ) -> Result<Store, StoreError> {
        match spec {
            StoreSpec::Sqlite(path) => {
                let path = path.clone();
                let forwarder = remote_write
                    .map(remote_write::Forwarder::start)
                    .transpose()?;
                tokio::task::spawn_blocking(move || {
                    sqlite::SqliteStore::open_with(&path, forwarder)
                })
                .await
                .map_err(|e| StoreError::Unavailable(format!("opening the store: {e}")))?
                .map(Store::Sqlite)
            }
            StoreSpec::Postgres(url) => {
                let forwarder = remote_write
                    .map(remote_write::Forwarder::start)
                    .transpose()?;
                postgres::PgStore::open(url, forwarder)
                    .await
                    .map(Store::Postgres)
            }
            StoreSpec::Remote { .. } if remote_write.is_some() => Err(StoreError::Invalid(
                "remote write is done where the store is: give --remote-write to faultline serve"
                    .into(),
            )),
            StoreSpec::Remote { base, token } => {
                remote::RemoteStore::new(base.clone(), token.clone()).map(Store::Remote)
            }
        }
    }

    /// Store an objective, replacing the one with the same labels. Returns it and
    /// whether it is new.
    pub async fn put_objective(
        &self,
        org: &str,
        objective: &Objective,
    ) -> Result<(ObjectiveRecord, bool), StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => s.put_objective(org, objective.clone()).await,
            Store::Postgres(s) => s.put_objective(org, objective.clone()).await,
            Store::Remote(r) => r.put_objective(&org, objective).await,
        }
    }

    /// The objectives whose labels include every label of `selector`.
    pub async fn objectives(
        &self,
        org: &str,
        selector: &Labels,
    ) -> Result<Vec<ObjectiveRecord>, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => s.objectives(org, selector.clone()).await,
            Store::Postgres(s) => s.objectives(org, selector.clone()).await,
            Store::Remote(r) => r.objectives(&org, selector).await,
        }
    }

    /// Delete the objectives `selector` selects, with their results; how many.
    pub async fn delete_objectives(
        &self,
        org: &str,
        selector: &Labels,
    ) -> Result<usize, StoreError> {
        let org = org_name(org)?;
        if selector.is_empty() {
            return Err(StoreError::Invalid(
                "deleting needs a selector (k=v): refusing to delete every objective".into(),
            ));
        }
        match self {
            Store::Sqlite(s) => s.delete_objectives(org, selector.clone()).await,
            Store::Postgres(s) => s.delete_objectives(org, selector.clone()).await,
            Store::Remote(r) => r.delete_objectives(&org, selector).await,
        }
    }

    /// Store an indicator and judge it against every objective that selects it.
    pub async fn put_indicator(
        &self,
        org: &str,
        indicator: &Indicator,
        origin: &Origin,
    ) -> Result<IndicatorRecord, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => {
                s.put_indicator(org, indicator.clone(), origin.clone())
                    .await
            }
            Store::Postgres(s) => {
                s.put_indicator(org, indicator.clone(), origin.clone())
                    .await
            }
            Store::Remote(r) => r.put_indicator(&org, indicator, origin).await,
        }
    }

    /// The newest `limit` results of the objectives whose indicator selector includes
    /// every label of `selector`, newest first (the Reliably `objective_result` read).
    pub async fn results_by_indicator_selector(
        &self,
        org: &str,
        selector: &Labels,
        limit: usize,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => {
                s.results_by_indicator_selector(org, selector.clone(), limit)
                    .await
            }
            Store::Postgres(s) => {
                s.results_by_indicator_selector(org, selector.clone(), limit)
                    .await
            }
            Store::Remote(r) => r.results_by_indicator_selector(&org, selector, limit).await,
        }
    }

    /// The objectives `selector` selects, each with its newest `limit` results.
    pub async fn report(
        &self,
        org: &str,
        selector: &Labels,
        limit: usize,
    ) -> Result<Vec<ReportLine>, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => s.report(org, selector.clone(), limit).await,
            Store::Postgres(s) => s.report(org, selector.clone(), limit).await,
            Store::Remote(r) => r.report(&org, selector, limit).await,
        }
    }

    /// The results of one objective whose indicator ends within `[from, to]`.
    pub async fn window_results(
        &self,
        org: &str,
        objective_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<ResultRecord>, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => {
                s.window_results(org, objective_id.to_string(), from, to)
                    .await
            }
            Store::Postgres(s) => {
                s.window_results(org, objective_id.to_string(), from, to)
                    .await
            }
            Store::Remote(r) => r.window_results(&org, objective_id, from, to).await,
        }
    }

    /// Every organisation that has an objective, sorted (what `faultline serve`'s
    /// `/metrics` walks).
    pub async fn organisations(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.organisations().await,
            Store::Postgres(s) => s.organisations().await,
            Store::Remote(_) => Err(StoreError::Invalid(
                "a remote store lists its organisations itself".into(),
            )),
        }
    }

    /// Make an API token for `org`: returned once, only its hash is kept.
    pub async fn create_token(&self, org: &str) -> Result<String, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => s.create_token(org).await,
            Store::Postgres(s) => s.create_token(org).await,
            Store::Remote(_) => Err(StoreError::Invalid(
                "tokens are made on the store's own machine: faultline token create --store PATH"
                    .into(),
            )),
        }
    }

    /// The organisation a token belongs to, if it is known.
    pub async fn token_org(&self, token: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.token_org(token_hash(token)).await,
            Store::Postgres(s) => s.token_org(token_hash(token)).await,
            Store::Remote(_) => Err(StoreError::Invalid(
                "a remote store checks its own tokens".into(),
            )),
        }
    }

    /// Record a run in the history (replacing one with the same id: delivering a
    /// spooled record twice is harmless). Whether it is new.
    pub async fn put_run(&self, org: &str, run: &runs::RunSummary) -> Result<bool, StoreError> {
        let org = org_name(org)?;
        run.check()?;
        match self {
            Store::Sqlite(s) => s.put_run(org, run.clone()).await,
            Store::Postgres(s) => s.put_run(org, run.clone()).await,
            Store::Remote(r) => r.put_run(&org, run).await,
        }
    }

    /// The runs `filter` selects, newest first.
    pub async fn runs(
        &self,
        org: &str,
        filter: &runs::RunFilter,
    ) -> Result<Vec<runs::RunSummary>, StoreError> {
        let org = org_name(org)?;
        filter.check()?;
        match self {
            Store::Sqlite(s) => s.runs(org, filter.clone()).await,
            Store::Postgres(s) => s.runs(org, filter.clone()).await,
            Store::Remote(r) => r.runs(&org, filter).await,
        }
    }

    /// One run by its id.
    pub async fn run(&self, org: &str, run_id: &str) -> Result<runs::RunSummary, StoreError> {
        let org = org_name(org)?;
        let found = match self {
            Store::Sqlite(s) => s.run(org.clone(), run_id.to_string()).await?,
            Store::Postgres(s) => s.run(org.clone(), run_id.to_string()).await?,
            Store::Remote(r) => r.run(&org, run_id).await?,
        };
        found.ok_or_else(|| {
            StoreError::NotFound(format!("no run {run_id:?} in organisation {org:?}"))
        })
    }

    /// The runs that overlapped a window, newest first.
    pub async fn overlapping(
        &self,
        org: &str,
        overlap: &runs::Overlap,
    ) -> Result<Vec<runs::RunSummary>, StoreError> {
        let org = org_name(org)?;
        if overlap.to < overlap.from {
            return Err(StoreError::Invalid(format!(
                "the window ends ({}) before it starts ({})",
                overlap.to.to_rfc3339(),
                overlap.from.to_rfc3339()
            )));
        }
        match self {
            Store::Sqlite(s) => s.overlapping(org, overlap.clone()).await,
            Store::Postgres(s) => s.overlapping(org, overlap.clone()).await,
            Store::Remote(r) => r.overlapping(&org, overlap).await,
        }
    }

    /// Every organisation with a recorded run, sorted (what `/metrics` walks).
    pub async fn run_organisations(&self) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.run_organisations().await,
            Store::Postgres(s) => s.run_organisations().await,
            Store::Remote(_) => Err(StoreError::Invalid(
                "a remote store lists its organisations itself".into(),
            )),
        }
    }

    /// The newest `n` runs of each experiment (any order): what scores need.
    pub async fn latest_runs(
        &self,
        org: &str,
        n: usize,
    ) -> Result<Vec<runs::RunSummary>, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => s.latest_runs(org, n).await,
            Store::Postgres(s) => s.latest_runs(org, n).await,
            Store::Remote(_) => Err(StoreError::Invalid(
                "a remote store computes its own scores: GET /api/v1/orgs/{org}/scores".into(),
            )),
        }
    }

    /// How many runs are recorded, by status and deviation.
    pub async fn run_counts(&self, org: &str) -> Result<Vec<runs::RunCount>, StoreError> {
        let org = org_name(org)?;
        match self {
            Store::Sqlite(s) => s.run_counts(org).await,
            Store::Postgres(s) => s.run_counts(org).await,
            Store::Remote(_) => Err(StoreError::Invalid(
                "a remote store counts its own runs".into(),
            )),
        }
    }

    /// Whether the store answers now: a trivial read (`faultline serve`'s
    /// `/readyz`). A PostgreSQL store whose connection was lost connects again
    /// first (within its backoff).
    pub async fn ready(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.kill_switch().await.map(|_| ()),
            Store::Postgres(s) => s.ping().await,
            Store::Remote(_) => Ok(()),
        }
    }

    /// The server's kill switch: the engagement in force, if any (`faultline serve`
    /// reads it; every replica over the same store sees the same row).
    pub async fn kill_switch(&self) -> Result<Option<crate::killswitch::Engagement>, StoreError> {
        match self {
            Store::Sqlite(s) => s.kill_switch().await,
            Store::Postgres(s) => s.kill_switch().await,
            Store::Remote(_) => Err(remote_switch()),
        }
    }

    /// Engage the server's kill switch with `e`, unless it is on (then the engagement
    /// in force stays): one atomic statement, committed before it answers.
    pub async fn engage_kill_switch(
        &self,
        e: &crate::killswitch::Engagement,
    ) -> Result<crate::killswitch::Engaged, StoreError> {
        match self {
            Store::Sqlite(s) => s.engage_kill_switch(e.clone()).await,
            Store::Postgres(s) => s.engage_kill_switch(e.clone()).await,
            Store::Remote(_) => Err(remote_switch()),
        }
    }

    /// Release the server's kill switch: the engagement that was in force, if any.
    pub async fn release_kill_switch(
        &self,
    ) -> Result<Option<crate::killswitch::Engagement>, StoreError> {
        match self {
            Store::Sqlite(s) => s.release_kill_switch().await,
            Store::Postgres(s) => s.release_kill_switch().await,
            Store::Remote(_) => Err(remote_switch()),
        }
    }

    /// Write everything acknowledged and close: later calls fail.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
            Store::Remote(_) => {}
        }
    }
}

fn remote_switch() -> StoreError {
    StoreError::Invalid(
        "a remote store's kill switch is its server's: faultline kill --server URL".into(),
    )
}

/// An organisation name, checked and lower-cased (Reliably lower-cases them).
pub fn org_name(org: &str) -> Result<String, StoreError> {
    let o = org.trim().to_ascii_lowercase();
    let ok = !o.is_empty()
        && o.len() <= 64
        && o.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(o)
    } else {
        Err(StoreError::Invalid(format!(
            "organisation {org:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// The Reliably entity id: SHA-256 over org, kind, apiVersion and the sorted labels,
/// so storing the same labels again replaces the entity.
pub fn entity_id(org: &str, kind: &str, api_version: &str, labels: &Labels) -> String {
    let mut h = Sha256::new();
    for part in [org, kind, api_version] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    // BTreeMap: already sorted by key.
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0u8]);
        h.update(v.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize())
}

/// The stored form of a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.trim().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `k=v,k=v` (or several `k=v` arguments) as labels; every problem named.
pub fn parse_selector<'a>(parts: impl IntoIterator<Item = &'a str>) -> Result<Labels, StoreError> {
    let mut out = Labels::new();
    for part in parts {
        for kv in part.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(StoreError::Invalid(format!(
                    "selector {kv:?}: expected key=value"
                )));
            };
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "selector {kv:?}: the key is empty"
                )));
            }
            out.insert(k.to_string(), v.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ids_depend_on_the_labels_not_their_order() {
        let a: Labels = [("a", "1"), ("b", "2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let id = entity_id("org", "objective", "reliably.com/v1", &a);
        assert_eq!(id.len(), 64);
        assert_eq!(
            id,
            entity_id("org", "objective", "reliably.com/v1", &a.clone())
        );
        let mut b = a.clone();
        b.insert("b".into(), "3".into());
        assert_ne!(id, entity_id("org", "objective", "reliably.com/v1", &b));
        assert_ne!(id, entity_id("other", "objective", "reliably.com/v1", &a));
    }

    #[test]
    fn orgs_are_lower_cased_and_checked() {
        assert_eq!(org_name(" MyOrg ").unwrap(), "myorg");
        assert!(org_name("").is_err());
        assert!(org_name("a/b").is_err());
    }

    #[test]
    fn selectors_name_what_is_wrong() {
        let s = parse_selector(["service=api,name=x", "team=sre"]).unwrap();
        assert_eq!(s.len(), 3);
        assert!(parse_selector(["service"])
            .unwrap_err()
            .to_string()
            .contains("key=value"));
        assert!(parse_selector(["=x"])
            .unwrap_err()
            .to_string()
            .contains("empty"));
    }

    #[test]
    fn the_store_spec_tells_files_from_servers() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(
            StoreSpec::parse(None, None, &env).unwrap(),
            StoreSpec::Sqlite("/home/u/.local/share/faultline/store.db".into())
        );
        let xdg = |k: &str| match k {
            "XDG_DATA_HOME" => Some("/data".to_string()),
            _ => None,
        };
        assert_eq!(
            StoreSpec::parse(None, None, &xdg).unwrap(),
            StoreSpec::Sqlite("/data/faultline/store.db".into())
        );
        assert!(matches!(
            StoreSpec::parse(Some("http://127.0.0.1:8089"), None, &env).unwrap(),
            StoreSpec::Remote { .. }
        ));
        let e = StoreSpec::parse(Some("ftp://x"), None, &env).unwrap_err();
        assert!(e.to_string().contains("unknown scheme"), "{e}");
    }
}
