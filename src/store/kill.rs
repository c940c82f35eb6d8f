//! The server's kill switch as the store keeps it: one row of `kill_switch`
//! (migration 3), so every `faultline serve` over the same store (replicas over one
//! PostgreSQL, or a restart over the same SQLite file) sees the same switch.
//!
//! Engaging and releasing are each one atomic statement on that row, run by the
//! store's writer (committed before they are answered):
//! - engage is an upsert that changes the row only while it is released
//!   (`ON CONFLICT … DO UPDATE … WHERE NOT engaged`), so of two replicas engaging at
//!   once one wins and the other reads the winner's engagement (the first reason
//!   stays, as with the file);
//! - release reads the row (PostgreSQL: `FOR UPDATE`) and clears it in the same
//!   transaction, so only one of two releases reports the previous engagement.
//!
//! The SQL is written once with `?N` placeholders (PostgreSQL's backend rewrites them
//! to `$N`).

use crate::killswitch::Engagement;

/// Engage unless engaged: 1 row changed when it did, 0 when it was already on.
/// Parameters: reason, by, org, pid, at, since (µs).
pub(super) const ENGAGE_SQL: &str = "INSERT INTO kill_switch
        (id, engaged, reason, engaged_by, org, pid, engaged_at, since_us)
    VALUES (1, TRUE, ?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (id) DO UPDATE SET
        engaged = TRUE, reason = excluded.reason, engaged_by = excluded.engaged_by,
        org = excluded.org, pid = excluded.pid, engaged_at = excluded.engaged_at,
        since_us = excluded.since_us, released_us = NULL
    WHERE NOT kill_switch.engaged";

/// The engagement in force, if any: reason, by, org, pid, at.
pub(super) const SELECT_SQL: &str =
    "SELECT reason, engaged_by, org, pid, engaged_at FROM kill_switch WHERE id = 1 AND engaged";

/// Release it. Parameter: when (µs).
pub(super) const RELEASE_SQL: &str =
    "UPDATE kill_switch SET engaged = FALSE, released_us = ?1 WHERE id = 1 AND engaged";

/// An engagement's columns as the statements bind them.
pub(super) struct Row {
    pub reason: String,
    pub by: Option<String>,
    pub org: Option<String>,
    pub pid: Option<i64>,
    pub at: Option<String>,
}

impl Row {
    pub fn of(e: &Engagement) -> Row {
        Row {
            reason: crate::killswitch::clean_reason(&e.reason),
            by: e.by.clone(),
            org: e.org.clone(),
            pid: e.pid.map(i64::from),
            at: e.at.clone(),
        }
    }

    pub fn engagement(self) -> Engagement {
        Engagement {
            reason: crate::killswitch::clean_reason(&self.reason),
            at: self.at,
            by: self.by,
            pid: self.pid.and_then(|p| u32::try_from(p).ok()),
            org: self.org,
        }
    }
}
