//! Objective windows as Reliably manifests write them: Go durations (`1h`, `1h0m0s`,
//! `30m`, `1.5h`, `90s`; days and weeks as OpenSLO writes them, `28d`, `1w`) and, in older manifests, ISO-8601 durations (`PT1H`, `P1D`,
//! `P1DT12H`). Months and years are refused: their length is not fixed.

use std::time::Duration;

/// The window's length, or why it is not one.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty (write a duration such as 1h, 30m or PT1H)".into());
    }
    let secs = if t.starts_with(['P', 'p']) {
        iso8601(&t[1..])
    } else {
        go(t)
    }
    .ok_or_else(|| {
        format!("{text:?} is not a duration (write a Go duration such as 1h, 1h30m, 30m, or ISO-8601 such as PT1H)")
    })?;
    if secs <= 0.0 {
        return Err(format!("{text:?} is not a positive duration"));
    }
    crate::duration::positive_seconds(secs).map_err(|e| format!("{text:?}: {e}"))
}

/// `1h30m`, `1.5h`, `90s`, `250ms`: Go's `time.ParseDuration`, without a sign.
fn go(t: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            // Not Go's, but OpenSLO's (`28d`, `1w`) and people's.
            "d" => 86400.0,
            "w" => 604800.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += value * unit;
    }
    Some(total)
}

/// The part after `P`: `[nW][nD][T[nH][nM][nS]]`.
fn iso8601(t: &str) -> Option<f64> {
    let (date, time) = match t.split_once(['T', 't']) {
        Some((d, tm)) => (d, Some(tm)),
        None => (t, None),
    };
    let mut total = 0.0;
    let mut any = false;
    for (part, units) in [
        (date, &[('W', 604_800.0), ('D', 86_400.0)][..]),
        (
            time.unwrap_or(""),
            &[('H', 3600.0), ('M', 60.0), ('S', 1.0)][..],
        ),
    ] {
        let mut rest = part;
        while !rest.is_empty() {
            let n = rest.find(|c: char| c.is_ascii_alphabetic())?;
            let value: f64 = rest[..n].parse().ok()?;
            let unit = rest[n..].chars().next()?.to_ascii_uppercase();
            let (_, mult) = units.iter().find(|(u, _)| *u == unit)?;
            total += value * mult;
            any = true;
            rest = &rest[n + 1..];
        }
    }
    (any && time.is_none_or(|tm| !tm.is_empty())).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_and_iso_durations_as_reliably_manifests_write_them() {
        let h = Duration::from_secs(3600);
        for t in ["1h", "1h0m0s", "60m", "3600s", "PT1H", "pt60m", " 1h "] {
            assert_eq!(parse_window(t), Ok(h), "{t}");
        }
        assert_eq!(parse_window("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_window("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_window("P1D"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_window("P1DT12H"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_window("P1W"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_window("28d"), Ok(Duration::from_secs(28 * 86_400)));
        assert_eq!(parse_window("1w"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn what_is_not_a_window_is_refused_with_the_text() {
        for t in [
            "", "1", "1y", "h", "P", "PT", "P1M", "P1Y", "-1h", "0s", "PT0S", "1hh", "1e400h",
        ] {
            let e = parse_window(t).unwrap_err();
            assert!(!e.is_empty(), "{t}");
        }
        assert!(parse_window("1y").unwrap_err().contains("\"1y\""));
    }
}
