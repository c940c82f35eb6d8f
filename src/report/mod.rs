//! Reports on runs (issue 15): a pure module, given [`RunRecord`]s, that
//! renders what a reader needs, as one self-contained HTML file or as Markdown.
//! No I/O here: `app::report` reads the journals and the store.

pub mod html;
pub mod markdown;
pub mod model;
pub mod svg;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::run::record::RunRecord;

/// One run to report on.
#[derive(Debug, Clone)]
pub struct Input {
    /// Where its journal was read (a path, or `<stdin>`).
    pub source: String,
    /// The journal.
    pub record: RunRecord,
    /// Its target labels, when the run history gave them.
    pub labels: BTreeMap<String, String>,
    /// What the reader should know of how the journal was read.
    pub notes: Vec<String>,
}

/// Facts of a summary, as (name, text).
pub type Facts = Vec<(&'static str, String)>;

impl Input {
    /// The summary's plain facts, as (name, text), before the journal's path and after
    /// it: what interrupted the run, host, tags, target labels; then the notes.
    pub fn facts(&self, s: &model::Summary) -> (Facts, Facts) {
        let mut before = Vec::new();
        if let Some(by) = &s.interrupted_by {
            let latency = s
                .abort_latency_ms
                .map(|ms| format!(" (rollbacks began {ms:.0} ms after)"))
                .unwrap_or_default();
            before.push(("Interrupted by", format!("{by}{latency}")));
        }
        if !s.node.is_empty() {
            before.push(("Host", s.node.clone()));
        }
        if !s.tags.is_empty() {
            before.push(("Tags", s.tags.join(", ")));
        }
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            before.push(("Target", labels.join(", ")));
        }
        let after = self.notes.iter().map(|n| ("Note", n.clone())).collect();
        (before, after)
    }
}

/// What a report is made of.
#[derive(Debug, Clone)]
pub struct Report {
    /// The runs, in the order shown (oldest first).
    pub runs: Vec<Input>,
    /// The trace link template (`{trace_id}`, `{run_id}`).
    pub trace_url: Option<String>,
    /// When the report was made.
    pub generated: DateTime<Utc>,
    /// Runs that could not be shown, each with why (a journal gone, unreadable).
    pub skipped: Vec<String>,
}

impl Report {
    /// The report's heading: the run's title for one run, else how many runs.
    pub fn heading(&self) -> String {
        match self.runs.as_slice() {
            [one] => format!("Chaos report: {}", one.record.title()),
            runs => format!("Chaos report: {} runs", runs.len()),
        }
    }

    /// The trace link of a run, if the template and the trace id are known.
    pub fn trace_link(&self, record: &RunRecord) -> Option<String> {
        model::trace_link(
            self.trace_url.as_deref(),
            record.trace_id(),
            record.run_id(),
        )
    }

    /// How many runs had each verdict, in the verdicts' order.
    pub fn verdict_counts(&self) -> Vec<(model::Verdict, usize)> {
        let mut counts: BTreeMap<model::Verdict, usize> = BTreeMap::new();
        for r in &self.runs {
            *counts.entry(model::Verdict::of(&r.record)).or_default() += 1;
        }
        counts.into_iter().collect()
    }
}

/// A report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One self-contained HTML file: inline CSS and SVG, no script, no request.
    Html,
    /// Markdown (GitHub-flavoured tables), for a pull request or a wiki.
    Markdown,
}

/// The report, rendered.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Html => html::render(report),
        Format::Markdown => markdown::render(report),
    }
}

/// A duration in seconds as a person reads it (`850 ms`, `12.4 s`, `3 min 5 s`).
pub fn seconds_text(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "–".into();
    }
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {} s", (s / 60.0).floor(), (s % 60.0).floor())
    } else {
        format!(
            "{} h {} min",
            (s / 3600.0).floor(),
            ((s % 3600.0) / 60.0).floor()
        )
    }
}

/// A time as the report prints it (UTC, to the second).
pub fn time_text(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "–".into(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Escapes text for HTML element content and attribute values (titles and
/// outputs are user data).
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_html;

    #[test]
    fn hostile_titles_are_escaped() {
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}

#[cfg(test)]
mod render_tests {
    use super::*;

    /// A Chaos Toolkit journal (no faultline extension: no run id, no trace) with a
    /// hostile title and outputs.
    fn ctk_journal() -> RunRecord {
        RunRecord::from_json(
            r#"{"chaoslib-version":"1.42.0","platform":"Linux","node":"box",
            "experiment":{"title":"<script>alert(1)</script> | [x](http://evil) `t`",
                "contributions":{"availability":"high"}},
            "start":"2026-01-01T00:00:00.000000","status":"completed","deviated":true,
            "steady_states":{"before":{"steady_state_met":true,"probes":[]},
              "after":{"steady_state_met":false,"probes":[{"activity":{"type":"probe",
                "name":"p|<b>","tolerance":200,"provider":{"type":"http","url":"http://x"}},
                "output":{"status":500,"body":"<img src=x onerror=alert(1)>"},
                "start":"2026-01-01T00:00:01.000000","status":"succeeded",
                "end":"2026-01-01T00:00:01.500000","duration":0.5,"tolerance_met":false}]},
              "during":[]},
            "run":[],"rollbacks":[],"end":"2026-01-01T00:00:02.000000","duration":2.0}"#,
        )
        .expect("a Chaos Toolkit journal")
    }

    fn report(runs: usize) -> Report {
        Report {
            runs: (0..runs)
                .map(|i| Input {
                    source: format!("j{i}.json"),
                    record: ctk_journal(),
                    labels: BTreeMap::new(),
                    notes: vec!["a note".into()],
                })
                .collect(),
            trace_url: Some("http://jaeger/trace/{trace_id}".into()),
            generated: chrono::Utc::now(),
            skipped: vec!["run r-9 (x): journal gone.json: cannot read it".into()],
        }
    }

    #[test]
    fn a_chaos_toolkit_journal_renders_escaped_in_html() {
        let html = html::render(&report(1));
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // No trace id: no link, whatever the template.
        assert!(!html.contains("href=\"http://jaeger"));
        // The evidence falls back to the tolerance against the output.
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains(">200<"), "the declared tolerance: {html}");
        assert!(html.contains("badge deviated"));
        assert!(html.contains("id=\"skipped\""));
        assert!(html.contains("<dt>Note</dt><dd>a note</dd>"), "{html}");
    }

    #[test]
    fn markdown_cells_cannot_break_the_table_or_link() {
        let md = markdown::render(&report(2));
        assert!(md.contains("# Chaos report: 2 runs"));
        assert!(!md.contains("[x](http://evil)"), "{md}");
        assert!(md.contains("\\[x\\](http://evil)"), "{md}");
        assert!(md.contains("&lt;script&gt;"));
        assert!(md.contains("p\\|&lt;b&gt;"), "{md}");
        // Every table row of the verdicts has the header's ten cells.
        let rows: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("| # |"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(rows.len(), 4, "{md}");
        for r in rows {
            assert_eq!(r.replace("\\|", "").matches('|').count(), 11, "{r}");
        }
        assert!(md.contains("## Not shown"));
    }

    #[test]
    fn durations_read_as_a_person_reads_them() {
        assert_eq!(seconds_text(0.0234), "23 ms");
        assert_eq!(seconds_text(7.06), "7.1 s");
        assert_eq!(seconds_text(185.0), "3 min 5 s");
        assert_eq!(seconds_text(7260.0), "2 h 1 min");
        assert_eq!(seconds_text(f64::NAN), "–");
    }
}

#[cfg(test)]
mod ctk_journals {
    use super::*;

    /// Journals the real Chaos Toolkit wrote (tests/compat/journals): every one
    /// renders, with the verdict its status gives.
    #[test]
    fn journals_written_by_the_chaos_toolkit_render() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/journals");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("the compat journals") {
            let path = entry.expect("an entry").path();
            let text = std::fs::read_to_string(&path).expect("readable");
            let record =
                RunRecord::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let verdict = model::Verdict::of(&record);
            let report = Report {
                runs: vec![Input {
                    source: path.display().to_string(),
                    record,
                    labels: BTreeMap::new(),
                    notes: Vec::new(),
                }],
                trace_url: None,
                generated: chrono::Utc::now(),
                skipped: Vec::new(),
            };
            let html = render(&report, Format::Html);
            assert!(
                html.contains(&format!("class=\"badge {}\"", verdict.as_str())),
                "{}",
                path.display()
            );
            assert!(render(&report, Format::Markdown).contains(verdict.as_str()));
            seen += 1;
        }
        assert!(seen >= 3, "only {seen} journals");
    }
}
