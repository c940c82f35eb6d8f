//! Seconds written by users, turned into a [`Duration`] in one checked place.
//!
//! `Duration::from_secs_f64` panics on a value it cannot hold (about 1.8e19 s and up),
//! and a deadline far in the future overflows `Instant` arithmetic. Every timeout,
//! pause, frequency and limit a user writes (experiment, settings, flags, `${}`
//! substitution) goes through [`seconds`] instead, so a huge value is an error naming
//! what is wrong, never a panic. `clippy.toml` forbids the panicking conversions.

use std::time::Duration;

/// The longest duration faultline honours: 100 years of 365 days. Anything longer is
/// certainly a mistake (or meant "forever", which a timeout cannot promise), and
/// waiting that long is still far from overflowing a deadline.
pub const MAX_SECONDS: f64 = 100.0 * 365.0 * 86_400.0;

/// What to write instead of a duration out of range.
pub const HINT: &str = "give a number of seconds from 0 to 3153600000 (100 years)";

/// A non-negative, finite number of seconds no longer than [`MAX_SECONDS`].
pub fn seconds(f: f64) -> Result<Duration, String> {
    if f.is_nan() {
        return Err("NaN is not a number of seconds".into());
    }
    if f < 0.0 {
        return Err(format!(
            "expected a non-negative number of seconds, got {f}"
        ));
    }
    if f > MAX_SECONDS {
        return Err(format!(
            "{f} seconds is longer than faultline can wait (at most {MAX_SECONDS} s, 100 years)"
        ));
    }
    // In range, so this cannot fail; the fallback keeps it panic-free regardless.
    Duration::try_from_secs_f64(f).map_err(|e| format!("{f} seconds: {e}"))
}

/// [`seconds`], and more than zero.
pub fn positive_seconds(f: f64) -> Result<Duration, String> {
    if f <= 0.0 {
        return Err(format!("expected a positive number of seconds, got {f}"));
    }
    seconds(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_out_of_range_are_errors_not_panics() {
        assert_eq!(seconds(1.5), Ok(Duration::from_millis(1500)));
        assert_eq!(seconds(0.0), Ok(Duration::ZERO));
        assert_eq!(seconds(MAX_SECONDS), Ok(Duration::from_secs(3_153_600_000)));
        for bad in [
            1.8e19,
            1e300,
            f64::INFINITY,
            f64::NAN,
            -1.0,
            f64::NEG_INFINITY,
        ] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert!(seconds(MAX_SECONDS * 1.000_001)
            .unwrap_err()
            .contains("100 years"));
        assert!(positive_seconds(0.0).is_err());
        assert!(positive_seconds(1e-3).is_ok());
        // The largest accepted deadline still fits an Instant.
        assert!(std::time::Instant::now()
            .checked_add(seconds(MAX_SECONDS).unwrap())
            .is_some());
    }
}
