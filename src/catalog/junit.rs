//! The JUnit XML report of a catalog: one `<testsuite>`, one `<testcase>` per
//! experiment. Deviated or failed: `<failure>` with the evidence of the probes whose
//! tolerance was not met; aborted, interrupted or refused: `<error>`; not run because
//! the catalog stopped: `<skipped>`. `<system-out>` says the run id, the trace id and
//! the journal.

use crate::run::record::{HypothesisState, RunRecord};
use std::fmt::Write as _;

/// How one experiment of the catalog ended, for the report.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Completed, the steady state held.
    Passed,
    /// Deviated, or failed: the message and the evidence.
    Failure { message: String, text: String },
    /// Aborted, interrupted, refused (invalid input, kill switch).
    Error { message: String, text: String },
    /// Not run: the catalog stopped before it.
    Skipped { message: String },
}

/// One `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// The experiment's title (its path when it has none).
    pub name: String,
    /// The experiment's path or URL.
    pub classname: String,
    /// Seconds.
    pub time: f64,
    pub verdict: Verdict,
    /// The run id, the trace id, the journal.
    pub system_out: String,
}

/// `s` made safe for XML text and attribute values: the five special characters
/// escaped, characters XML 1.0 cannot hold (controls other than tab, newline and
/// carriage return; U+FFFE, U+FFFF) replaced by U+FFFD; carriage returns and tabs in
/// attributes kept as character references so they survive normalisation.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => {
                let _ = write!(out, "&#{};", c as u32);
            }
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Text content: as [`escape`], but newlines and tabs as they are (readable).
fn text(s: &str) -> String {
    escape(s).replace("&#10;", "\n").replace("&#9;", "\t")
}

/// The report of a catalog named `suite`, `timestamp` its start (RFC 3339, no zone
/// suffix per the Ant schema: `2026-12-06T01:02:03`).
pub fn render(suite: &str, timestamp: &str, hostname: &str, cases: &[Case]) -> String {
    let count = |f: fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count();
    let failures = count(|v| matches!(v, Verdict::Failure { .. }));
    let errors = count(|v| matches!(v, Verdict::Error { .. }));
    let skipped = count(|v| matches!(v, Verdict::Skipped { .. }));
    let time: f64 = cases.iter().map(|c| c.time).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time:.3}\" timestamp=\"{}\" hostname=\"{}\">",
        escape(suite),
        cases.len(),
        escape(timestamp),
        escape(hostname),
    );
    x.push_str("  <properties/>\n");
    for c in cases {
        let _ = writeln!(
            x,
            "  <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
            escape(&c.name),
            escape(&c.classname),
            c.time.max(0.0)
        );
        match &c.verdict {
            Verdict::Passed => {}
            Verdict::Failure { message, text: t } => {
                let _ = writeln!(
                    x,
                    "    <failure message=\"{}\" type=\"deviated\">{}</failure>",
                    escape(message),
                    text(t)
                );
            }
            Verdict::Error { message, text: t } => {
                let _ = writeln!(
                    x,
                    "    <error message=\"{}\" type=\"error\">{}</error>",
                    escape(message),
                    text(t)
                );
            }
            Verdict::Skipped { message } => {
                let _ = writeln!(x, "    <skipped message=\"{}\"/>", escape(message));
            }
        }
        let _ = writeln!(x, "    <system-out>{}</system-out>", text(&c.system_out));
        x.push_str("  </testcase>\n");
    }
    x.push_str("  <system-out/>\n  <system-err/>\n</testsuite>\n");
    x
}

/// The evidence of a deviation: every probe of the record's hypothesis checks whose
/// tolerance was not met, with its output (or its evidence) and its error.
pub fn deviation_evidence(record: &RunRecord) -> String {
    let mut out = String::new();
    let mut phase = |name: &str, h: &HypothesisState| {
        for p in &h.probes {
            if p.tolerance_met != Some(false) {
                continue;
            }
            let probe = serde_json::to_value(p).unwrap_or_default();
            let activity = probe
                .pointer("/activity/name")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            let tolerance = probe
                .pointer("/activity/tolerance")
                .map(|v| v.to_string())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{name}: probe {activity:?}: tolerance not met ({tolerance})"
            );
            if let Some(e) = &p.evidence {
                let _ = writeln!(out, "  evidence: {e}");
            }
            if let Some(o) = probe.get("output").filter(|o| !o.is_null()) {
                let _ = writeln!(out, "  output: {o}");
            }
            if let Some(e) = probe.get("exception").filter(|e| !e.is_null()) {
                let _ = writeln!(out, "  error: {e}");
            }
        }
    };
    if let Some(h) = &record.steady_states.before {
        phase("before the method", h);
    }
    for h in &record.steady_states.during {
        phase("during the method", h);
    }
    if let Some(h) = &record.steady_states.after {
        phase("after the method", h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_quotes_and_forbidden_characters() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\u{1}y\u{FFFF}"), "x\u{FFFD}y\u{FFFD}");
        assert_eq!(escape("l1\nl2\tx\r"), "l1&#10;l2&#9;x&#13;");
        assert_eq!(text("l1\nl2 <"), "l1\nl2 &lt;");
        assert_eq!(escape("]]> é"), "]]&gt; é");
    }

    #[test]
    fn render_counts_and_nests() {
        let case = |name: &str, verdict| Case {
            name: name.into(),
            classname: "x.json".into(),
            time: 1.5,
            verdict,
            system_out: "run id: r".into(),
        };
        let xml = render(
            "catalog",
            "2026-12-06T01:02:03",
            "h",
            &[
                case("ok", Verdict::Passed),
                case(
                    "dev <1>",
                    Verdict::Failure {
                        message: "deviated".into(),
                        text: "probe \"p\": 5 & more".into(),
                    },
                ),
                case(
                    "gone",
                    Verdict::Skipped {
                        message: "stopped".into(),
                    },
                ),
            ],
        );
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"4.500\""),
            "{xml}"
        );
        assert!(xml.contains("<testcase name=\"dev &lt;1&gt;\""), "{xml}");
        assert!(
            xml.contains(">probe &quot;p&quot;: 5 &amp; more</failure>"),
            "{xml}"
        );
        assert!(xml.contains("<skipped message=\"stopped\"/>"), "{xml}");
    }
}
