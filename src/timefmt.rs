//! Timestamps in the shapes the Chaos Toolkit writes.

use chrono::{DateTime, Local, SecondsFormat, Utc};

/// ISO 8601 UTC with microseconds and an explicit offset, as chaoslib's
/// `datetime.now(timezone.utc).isoformat()`: `2026-11-21T19:05:17.811526+00:00`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// The current time as [`iso`].
pub fn now_iso() -> String {
    iso(Utc::now())
}

/// Local wall-clock time for console lines: `2026-11-21 10:00:00`.
pub fn console_now() -> String {
    Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn iso_has_microseconds_and_offset() {
        let t = Utc.with_ymd_and_hms(2026, 11, 21, 19, 5, 17).unwrap();
        assert_eq!(iso(t), "2026-11-21T19:05:17.000000+00:00");
    }
}
