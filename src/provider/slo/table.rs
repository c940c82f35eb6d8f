//! The table `slo_is_met` prints when objective results were not OK, in the seed
//! guide's look: `tabulate`'s GitHub format (strings left-aligned, numbers right-aligned
//! on their decimal point, every column at least its header plus two wide), times as Go
//! prints them and the selector as a Python dict. Pure, so its exact text is tested.

use crate::slo::Labels;
use chrono::{DateTime, Utc};

/// One failing result, newest first as the store returned it.
#[derive(Debug, Clone)]
pub struct Row {
    /// The indicator's window: from.
    pub from: DateTime<Utc>,
    /// The indicator's window: to.
    pub to: DateTime<Utc>,
    /// The objective's target.
    pub objective_percent: f64,
    /// The indicator's percent.
    pub actual_percent: f64,
    /// `actual - objective`.
    pub remaining_percent: f64,
    /// The objective's indicator selector.
    pub indicator_selector: Labels,
}

const HEADERS: [&str; 6] = [
    "From",
    "To",
    "Objective %",
    "Actual %",
    "Remaining %",
    "Indicator Selector",
];

/// The whole warning: the guide's two lines, then the table, continuation lines
/// indented by four spaces as the guide's logger does.
pub fn not_ok_message(rows: &[Row]) -> String {
    let mut out = String::from(
        "The following Objective Results were not OK:\n\n    Objective Results are sorted by latest at the top:",
    );
    for line in render(rows).lines() {
        out.push_str("\n    ");
        out.push_str(line);
    }
    out
}

/// The table alone, one line per row after the header and its rule.
pub fn render(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                go_time(r.from),
                go_time(r.to),
                py_float(r.objective_percent),
                py_float(r.actual_percent),
                py_float(r.remaining_percent),
                py_dict(&r.indicator_selector),
            ]
        })
        .collect();
    let numeric = [false, false, true, true, true, false];
    // Numbers line up on their decimal point: each is padded on the right to the
    // column's most digits after the point (none for a whole number).
    let mut columns: Vec<Vec<String>> = (0..6)
        .map(|c| cells.iter().map(|row| row[c].clone()).collect())
        .collect();
    for (c, col) in columns.iter_mut().enumerate() {
        if !numeric[c] {
            continue;
        }
        let most = col.iter().map(|s| after_point(s)).max().unwrap_or(-1);
        for s in col.iter_mut() {
            let pad = (most - after_point(s)).max(0) as usize;
            s.push_str(&" ".repeat(pad));
        }
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            columns[c]
                .iter()
                .map(|s| s.chars().count())
                .chain([HEADERS[c].chars().count() + 2])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let pad = |s: &str, w: usize, right: bool| {
        let fill = " ".repeat(w.saturating_sub(s.chars().count()));
        if right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let line = |parts: Vec<String>| format!("| {} |", parts.join(" | "));
    let mut out = vec![line(
        (0..6)
            .map(|c| pad(HEADERS[c], widths[c], numeric[c]))
            .collect(),
    )];
    out.push(format!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    ));
    out.extend((0..rows.len()).map(|r| {
        line(
            (0..6)
                .map(|c| pad(&columns[c][r], widths[c], numeric[c]))
                .collect(),
        )
    }));
    out.join("\n")
}

/// Digits after the decimal point, -1 for a whole number (`tabulate`'s rule).
fn after_point(s: &str) -> i64 {
    let s = s.trim_end();
    match s.rfind('.') {
        Some(i) => (s.len() - i - 1) as i64,
        None => -1,
    }
}

/// A time as Go's `time.Time.String()` writes it (the guide's server was in Go):
/// `2021-07-27 15:35:40.268235 +0000 UTC`, fractional seconds without trailing zeros.
pub fn go_time(t: DateTime<Utc>) -> String {
    let nanos = t.timestamp_subsec_nanos();
    let frac = if nanos == 0 {
        String::new()
    } else {
        format!(".{nanos:09}").trim_end_matches('0').to_string()
    };
    format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
}

/// A float as Python's `format(x, "g")` writes it (`tabulate`'s default): six
/// significant digits, no trailing zeros, exponent form only when very small or large.
pub fn py_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if x == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to six significant digits.
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    trim(&format!("{x:.decimals$}"))
}

/// Labels as Python prints a dict of strings: `{'category': 'Availability'}`.
pub fn py_dict(labels: &Labels) -> String {
    let items: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}: {}", py_str(k), py_str(v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A string as Python's `repr`: single quotes, unless it holds one and no double.
fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guide_selector() -> Labels {
        [
            ("category", "Availability"),
            (
                "indicator_name",
                "exploring-reliability-guide-service-availability-indicator",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_guides_table_exactly() {
        let t = at("2021-07-27T15:35:40.268235Z");
        let rows = [Row {
            from: t,
            to: t,
            objective_percent: 99.9,
            actual_percent: 90.0,
            remaining_percent: 90.0 - 99.9,
            indicator_selector: guide_selector(),
        }];
        // Copied from the seed guide's output (its logger's indentation included).
        let expected = "The following Objective Results were not OK:

    Objective Results are sorted by latest at the top:
    | From                                 | To                                   |   Objective % |   Actual % |   Remaining % | Indicator Selector                                                                                           |
    |--------------------------------------|--------------------------------------|---------------|------------|---------------|--------------------------------------------------------------------------------------------------------------|
    | 2021-07-27 15:35:40.268235 +0000 UTC | 2021-07-27 15:35:40.268235 +0000 UTC |          99.9 |         90 |          -9.9 | {'category': 'Availability', 'indicator_name': 'exploring-reliability-guide-service-availability-indicator'} |";
        assert_eq!(not_ok_message(&rows), expected);
    }

    #[test]
    fn numbers_line_up_on_their_decimal_point() {
        // As tabulate lays out the wire notes' two-row example.
        let t = at("2021-06-01T10:00:00Z");
        let row = |actual: f64, objective: f64| Row {
            from: t,
            to: t,
            objective_percent: objective,
            actual_percent: actual,
            remaining_percent: actual - objective,
            indicator_selector: Labels::new(),
        };
        let table = render(&[row(96.0, 99.5), row(99.25, 99.5)]);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[2].contains("|          99.5 |      96    |         -3.5  |"),
            "{table}"
        );
        assert!(
            lines[3].contains("|          99.5 |      99.25 |         -0.25 |"),
            "{table}"
        );
        assert!(
            lines[2].starts_with("| 2021-06-01 10:00:00 +0000 UTC "),
            "{table}"
        );
    }

    #[test]
    fn floats_and_strings_print_as_python_does() {
        assert_eq!(py_float(99.9), "99.9");
        assert_eq!(py_float(90.0), "90");
        assert_eq!(py_float(90.0 - 99.9), "-9.9");
        assert_eq!(py_float(100.0 / 3.0), "33.3333");
        assert_eq!(py_float(0.00001), "1e-05");
        assert_eq!(py_float(0.0), "0");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(
            go_time(at("2021-07-27T15:35:40Z")),
            "2021-07-27 15:35:40 +0000 UTC"
        );
    }
}
