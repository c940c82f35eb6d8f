//! The report as one self-contained HTML file: inline CSS and SVG, no script, and a
//! Content-Security-Policy that forbids the browser any request (`default-src
//! 'none'`), so it reads the same offline, in a mail attachment or a CI artefact.
//! Every text from a journal is escaped.

use std::fmt::Write as _;

use serde_json::Value;

use super::model::{self, Evidence, Phase, Summary, Verdict};
use super::{escape_html as esc, seconds_text, svg, time_text, Input, Report};

/// The style sheet: readable on screen and on paper, no web font.
const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d232b; margin: 0; background: #f5f6f8; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
header h1 { font-size: 24px; margin: 0 0 4px; }
.meta { color: #5a6472; margin: 0 0 16px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 16px 20px; margin: 0 0 20px; }
h2 { font-size: 19px; margin: 0 0 12px; }
details > summary { cursor: pointer; list-style-position: outside; margin-left: 18px; }
details > summary h2 { display: inline-block; margin: 0; }
details[open] > summary { margin-bottom: 12px; }
h3 { font-size: 15px; margin: 18px 0 8px; color: #33404f; }
table { border-collapse: collapse; width: 100%; margin: 4px 0; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e7eaee; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
table.evidence tbody tr:first-child td { border-bottom: none; }
table.evidence tr.query td { padding-top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; overflow-wrap: anywhere; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.summary dt { color: #5a6472; }
dl.summary dd { margin: 0; }
.badge { white-space: nowrap; display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 12.5px; font-weight: 600; color: #fff; vertical-align: middle; }
.badge.held, .badge.met { background: #2e7d4f; }
.badge.deviated, .badge.not_met, .badge.failed { background: #c0392b; }
.badge.aborted, .badge.interrupted { background: #b9770e; }
.badge.inconclusive, .badge.none { background: #7b8794; }
.counts .badge { margin-right: 6px; }
.failures { color: #a93226; }
.empty { color: #5a6472; font-style: italic; }
svg text { font: 12px system-ui, "DejaVu Sans", sans-serif; fill: #1d232b; }
rect.bar.method { fill: #3d6fb6; }
rect.bar.hypothesis { fill: #2e7d4f; }
rect.bar.rollback { fill: #b9770e; }
rect.bar.failed { fill: #c0392b; }
rect.level.high { fill: #1f4e8c; }
rect.level.medium { fill: #4f86c6; }
rect.level.low { fill: #9cc0e8; }
rect.level.none { fill: #c9ced6; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12.5px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border-radius: 2px; }
.scroll { overflow-x: auto; }
footer { color: #5a6472; font-size: 12.5px; text-align: center; padding: 8px 0 24px; }
@media print { body { background: #fff; } section { break-inside: avoid; border-color: #bbb; } }
"#;

/// The report, as one HTML document.
pub fn render(report: &Report) -> String {
    let heading = report.heading();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"generator\" content=\"faultline {version}\">\
         <title>{title}</title><style>{STYLE}</style></head>\n<body><main>\n\
         <header><h1 id=\"report-title\">{title}</h1><p class=\"meta\">{runs} run(s) · generated {generated} by faultline {version}</p></header>\n",
        version = env!("CARGO_PKG_VERSION"),
        title = esc(&heading),
        runs = report.runs.len(),
        generated = esc(&time_text(Some(report.generated))),
    );
    if report.runs.len() > 1 {
        overview(&mut out, report);
    }
    let many = report.runs.len() > 1;
    for (i, input) in report.runs.iter().enumerate() {
        let prefix = if many {
            format!("run-{}-", i + 1)
        } else {
            String::new()
        };
        run_section(&mut out, report, input, &prefix, many.then_some(i + 1));
    }
    if !report.skipped.is_empty() {
        out.push_str("<section id=\"skipped\"><h2>Not shown</h2><ul>");
        for s in &report.skipped {
            let _ = write!(out, "<li>{}</li>", esc(s));
        }
        out.push_str("</ul></section>\n");
    }
    out.push_str("<footer>Made by faultline from the runs' journals. This file makes no request and runs no script.</footer>\n</main></body></html>\n");
    out
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", esc(class), esc(text))
}

fn verdict_badge(v: Verdict) -> String {
    badge(v.as_str(), v.as_str())
}

fn met_text(met: Option<bool>) -> String {
    match met {
        Some(true) => badge("met", "met"),
        Some(false) => badge("not_met", "not met"),
        None => "–".into(),
    }
}

fn trace_cell(report: &Report, input: &Input) -> String {
    match (report.trace_link(&input.record), input.record.trace_id()) {
        (Some(link), Some(id)) => format!(
            "<a class=\"trace mono\" href=\"{}\">{}</a>",
            esc(&link),
            esc(id)
        ),
        (None, Some(id)) => format!("<span class=\"mono\">{}</span>", esc(id)),
        _ => "–".into(),
    }
}

/// Several runs: counts, the table of verdicts, the contributions chart.
fn overview(out: &mut String, report: &Report) {
    out.push_str("<section id=\"overview\"><h2>Overview</h2><p class=\"counts\">");
    for (v, n) in report.verdict_counts() {
        let _ = write!(out, "{} {n} &nbsp;", verdict_badge(v));
    }
    let first = report
        .runs
        .iter()
        .filter_map(|r| r.record.started_at())
        .min();
    let last = report.runs.iter().filter_map(|r| r.record.ended_at()).max();
    let _ = write!(
        out,
        "</p><p class=\"meta\">From {} to {}</p>",
        esc(&time_text(first)),
        esc(&time_text(last))
    );
    out.push_str(
        "<h3>Verdicts</h3><div class=\"scroll\"><table id=\"verdicts\"><thead><tr><th>#</th><th>Experiment</th><th>Started</th><th>Duration</th><th>Verdict</th><th>Before</th><th>After</th><th>SLOs</th><th>Alerts</th><th>Trace</th></tr></thead><tbody>",
    );
    for (i, input) in report.runs.iter().enumerate() {
        let s = model::summary(&input.record);
        let slo = model::slo_verdicts(&input.record);
        let slo_met = slo.iter().filter(|v| v["verdict"] == "met").count();
        let slo_text = if slo.is_empty() {
            "–".to_string()
        } else {
            format!("{slo_met}/{} met", slo.len())
        };
        let _ = write!(
            out,
            "<tr><td><a href=\"#run-{n}\">{n}</a></td><td>{title}</td><td>{start}</td><td class=\"num\">{dur}</td><td>{verdict}</td><td>{before}</td><td>{after}</td><td>{slo}</td><td class=\"num\">{alerts}</td><td>{trace}</td></tr>",
            n = i + 1,
            title = esc(&s.title),
            start = esc(&time_text(s.started)),
            dur = esc(&seconds_text(s.duration)),
            verdict = verdict_badge(s.verdict),
            before = met_text(s.before),
            after = met_text(s.after),
            slo = esc(&slo_text),
            alerts = model::alerts(&input.record).len(),
            trace = trace_cell(report, input),
        );
    }
    out.push_str("</tbody></table></div>");
    let agg = model::contributions(report.runs.iter().map(|r| &r.record));
    out.push_str("<h3>Contributions</h3>");
    if agg.is_empty() {
        out.push_str(
            "<p class=\"empty\" id=\"contributions\">No experiment declared its contributions.</p>",
        );
    } else {
        out.push_str("<p class=\"legend\"><span><i style=\"background:#1f4e8c\"></i>high</span><span><i style=\"background:#4f86c6\"></i>medium</span><span><i style=\"background:#9cc0e8\"></i>low</span><span><i style=\"background:#c9ced6\"></i>none</span> one unit per run</p><div class=\"scroll\">");
        out.push_str(&svg::contributions(&agg));
        out.push_str("</div>");
    }
    out.push_str("</section>\n");
}

fn run_section(out: &mut String, report: &Report, input: &Input, prefix: &str, n: Option<usize>) {
    let r = &input.record;
    let s = model::summary(r);
    let id = match n {
        Some(n) => format!("run-{n}"),
        None => "run".into(),
    };
    let heading = format!(
        "<h2>{num}{title} {verdict}</h2>",
        num = n.map(|n| format!("{n}. ")).unwrap_or_default(),
        title = esc(if s.title.is_empty() {
            "(untitled)"
        } else {
            &s.title
        }),
        verdict = verdict_badge(s.verdict),
    );
    // Among many runs, one that held without a failure is folded (a click shows
    // it, no script needed); what went wrong is open.
    let folded = n.is_some() && s.verdict == Verdict::Held && s.failures.is_empty();
    match n {
        Some(_) => {
            let _ = write!(
                out,
                "<section class=\"run\" id=\"{id}\"><details{open}><summary>{heading}</summary>",
                open = if folded { "" } else { " open" }
            );
        }
        None => {
            let _ = write!(out, "<section class=\"run\" id=\"{id}\">{heading}");
        }
    }
    summary(out, report, input, &s, prefix);
    let spans = model::timeline(r);
    let _ = write!(out, "<h3>Timeline</h3>");
    if spans.is_empty() {
        out.push_str("<p class=\"empty\">No activity ran.</p>");
    } else {
        out.push_str("<p class=\"legend\"><span><i style=\"background:#2e7d4f\"></i>hypothesis</span><span><i style=\"background:#3d6fb6\"></i>method</span><span><i style=\"background:#b9770e\"></i>rollback</span><span><i style=\"background:#c0392b\"></i>failed or not met</span></p><div class=\"scroll\">");
        out.push_str(&svg::timeline(&spans, &format!("{prefix}timeline")));
        out.push_str("</div>");
    }
    evidence(out, &model::evidence(r), prefix);
    rollbacks(out, r, prefix);
    slos(out, &model::slo_verdicts(r), prefix);
    alerts(out, r, prefix);
    if n.is_some() {
        out.push_str("</details>");
    }
    out.push_str("</section>\n");
}

fn summary(out: &mut String, report: &Report, input: &Input, s: &Summary, prefix: &str) {
    let _ = write!(out, "<dl class=\"summary\" id=\"{prefix}summary\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(out, "<dt>{}</dt><dd>{v}</dd>", esc(k));
    };
    row(
        "Verdict",
        format!(
            "{} <span class=\"meta\">status {}{}</span>",
            verdict_badge(s.verdict),
            esc(&s.status),
            if input.record.deviated {
                ", deviated"
            } else {
                ""
            }
        ),
    );
    if let Some(id) = &s.run_id {
        row("Run", format!("<span class=\"mono\">{}</span>", esc(id)));
    }
    row("Started", esc(&time_text(s.started)));
    row("Ended", esc(&time_text(s.ended)));
    row("Duration", esc(&seconds_text(s.duration)));
    row("Trace", trace_cell(report, input));
    let checked = |m: Option<bool>| match m {
        None => "not checked".to_string(),
        m => met_text(m),
    };
    let hypothesis = format!(
        "before {} · after {}{}",
        checked(s.before),
        checked(s.after),
        if s.during.0 > 0 {
            format!(" · during: {} check(s), {} not met", s.during.0, s.during.1)
        } else {
            String::new()
        }
    );
    row("Steady state", hypothesis);
    let (before_journal, after_journal) = input.facts(s);
    for (k, v) in before_journal {
        row(k, esc(&v));
    }
    row(
        "Journal",
        format!("<span class=\"mono\">{}</span>", esc(&input.source)),
    );
    for (k, v) in after_journal {
        row(k, esc(&v));
    }
    out.push_str("</dl>");
    if !s.failures.is_empty() {
        let _ = write!(
            out,
            "<h3>Failures</h3><ul class=\"failures\" id=\"{prefix}failures\">"
        );
        for (name, why) in &s.failures {
            let _ = write!(out, "<li><b>{}</b>: {}</li>", esc(name), esc(why));
        }
        out.push_str("</ul>");
    }
}

fn phase_text(p: Phase) -> &'static str {
    match p {
        Phase::Before => "hypothesis before",
        Phase::Method => "method",
        Phase::During => "during the method",
        Phase::After => "hypothesis after",
        Phase::Rollback => "rollback",
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn field<'a>(e: &'a Evidence, key: &str) -> Option<&'a str> {
    e.fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn evidence(out: &mut String, items: &[Evidence], prefix: &str) {
    out.push_str("<h3>Evidence</h3>");
    if items.is_empty() {
        out.push_str("<p class=\"empty\">No probe judged a tolerance.</p>");
        return;
    }
    // Actual and time only when some probe has them (a process probe's evidence
    // is its expectation and a reason); the query on a line of its own.
    let has = |k: &str| items.iter().any(|e| field(e, k).is_some());
    let cols: Vec<&str> = ["actual", "time"].into_iter().filter(|k| has(k)).collect();
    let width = 4 + cols.len();
    let _ = write!(
        out,
        "<div class=\"scroll\"><table class=\"evidence\" id=\"{prefix}evidence\"><thead><tr><th>Probe</th><th>Where</th><th>Verdict</th><th>Expected</th>"
    );
    for c in &cols {
        let _ = write!(out, "<th>{}</th>", capitalised(c));
    }
    out.push_str("</tr></thead>");
    for e in items {
        // Short scalar details only (the SLO table has the rest).
        let other: Vec<String> = e
            .fields
            .iter()
            .filter(|(k, v)| {
                !["query", "time", "actual", "expected", "verdict", "reason"].contains(&k.as_str())
                    && v.len() <= 60
                    && !v.starts_with(['{', '['])
            })
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let mut verdict = match field(e, "verdict") {
            Some(v) => badge(v, &v.replace('_', " ")),
            None => met_text(e.met),
        };
        if let Some(reason) = field(e, "reason") {
            let _ = write!(verdict, "<br><span class=\"meta\">{}</span>", esc(reason));
        }
        let _ = write!(
            out,
            "<tbody><tr><td><b>{name}</b>{other}</td><td>{phase}</td><td>{verdict}</td><td><code>{exp}</code></td>",
            name = esc(&e.name),
            other = if other.is_empty() {
                String::new()
            } else {
                format!("<br><span class=\"meta\">{}</span>", esc(&other.join("; ")))
            },
            phase = phase_text(e.phase),
            exp = esc(&model::clip(field(e, "expected").unwrap_or("–"), 300)),
        );
        for c in &cols {
            let v = esc(&model::clip(field(e, c).unwrap_or("–"), 300));
            if *c == "time" {
                let _ = write!(out, "<td>{v}</td>");
            } else {
                let _ = write!(out, "<td><code>{v}</code></td>");
            }
        }
        out.push_str("</tr>");
        if let Some(q) = field(e, "query") {
            let _ = write!(
                out,
                "<tr class=\"query\"><td colspan=\"{width}\"><span class=\"meta\">query</span> <code>{}</code></td></tr>",
                esc(q)
            );
        }
        out.push_str("</tbody>");
    }
    out.push_str("</table></div>");
}

fn rollbacks(out: &mut String, r: &crate::run::record::RunRecord, prefix: &str) {
    out.push_str("<h3>Rollbacks</h3>");
    if r.rollbacks.is_empty() {
        out.push_str("<p class=\"empty\">No rollback ran.</p>");
        return;
    }
    let _ = write!(
        out,
        "<table id=\"{prefix}rollbacks\"><thead><tr><th>Rollback</th><th>Status</th><th>Duration</th><th>Error</th></tr></thead><tbody>"
    );
    for e in &r.rollbacks {
        let status = match e.status.as_str() {
            "" => "unfinished",
            s => s,
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(e.name()),
            badge(
                match e.status.as_str() {
                    "succeeded" => "held",
                    "failed" => "failed",
                    _ => "none",
                },
                status
            ),
            esc(&seconds_text(e.duration)),
            esc(&model::failure_line(e)),
        );
    }
    out.push_str("</tbody></table>");
}

fn number(v: &Value, percent: bool) -> String {
    match v.as_f64() {
        Some(x) if percent => format!("{:.3} %", x * 100.0),
        Some(x) => format!("{x:.3}"),
        None => "–".into(),
    }
}

fn slos(out: &mut String, verdicts: &[Value], prefix: &str) {
    out.push_str("<h3>SLOs</h3>");
    if verdicts.is_empty() {
        out.push_str("<p class=\"empty\">No SLO was judged in this run.</p>");
        return;
    }
    let _ = write!(
        out,
        "<div class=\"scroll\"><table id=\"{prefix}slo\"><thead><tr><th>Objective</th><th>Probe</th><th>Verdict</th><th>SLI</th><th>Target</th><th>Burn rate</th><th>Budget left</th><th>Budget used by the run</th></tr></thead><tbody>"
    );
    for v in verdicts {
        let verdict = v["verdict"].as_str().unwrap_or("");
        let reason = v["reason"]
            .as_str()
            .map(|r| format!("<br><span class=\"meta\">{}</span>", esc(r)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{obj}</td><td>{act} <span class=\"meta\">({phase})</span></td><td>{badge}{reason}</td><td class=\"num\">{sli}</td><td class=\"num\">{target}</td><td class=\"num\">{burn}</td><td class=\"num\">{left}</td><td class=\"num\">{used}</td></tr>",
            obj = esc(&model::objective_text(&v["objective"])),
            act = esc(v["activity"].as_str().unwrap_or("")),
            phase = esc(v["phase"].as_str().unwrap_or("")),
            badge = badge(verdict, &verdict.replace('_', " ")),
            sli = number(&v["sli"], true),
            target = number(&v["target"], true),
            burn = number(&v["burn_rate"], false),
            left = number(&v["error_budget_remaining"], true),
            used = number(&v["budget_consumed_by_run"], true),
        );
    }
    out.push_str("</tbody></table></div>");
}

fn alerts(out: &mut String, r: &crate::run::record::RunRecord, prefix: &str) {
    out.push_str("<h3>Alerts</h3>");
    let watched = r
        .faultline()
        .is_some_and(|f| f.contributed.contains_key("alerts"));
    let list = model::alerts(r);
    if list.is_empty() {
        out.push_str(if watched {
            "<p class=\"empty\">No alert fired during the run.</p>"
        } else {
            "<p class=\"empty\">Alerts were not watched (the faultline.alerts control was not on).</p>"
        });
        return;
    }
    let _ = write!(
        out,
        "<div class=\"scroll\"><table id=\"{prefix}alerts\"><thead><tr><th>Alert</th><th>State</th><th>Started</th><th>Ended</th><th>Labels</th><th>Source</th></tr></thead><tbody>"
    );
    for a in &list {
        let labels: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let summary = a
            .annotations
            .get("summary")
            .map(|s| format!("<br><span class=\"meta\">{}</span>", esc(s)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{name}{summary}</td><td>{state}</td><td>{start}</td><td>{end}</td><td><code>{labels}</code></td><td>{source}</td></tr>",
            name = esc(&a.name),
            state = esc(&a.state),
            start = esc(&time_text(a.starts_at)),
            end = esc(&time_text(a.ends_at)),
            labels = esc(&labels.join(", ")),
            source = a.source.as_str(),
        );
    }
    out.push_str("</tbody></table></div>");
}
