//! The report as Markdown (GitHub-flavoured tables), for a pull request, an issue or
//! a wiki page. The same sections as the HTML; the timeline is a table.

use std::fmt::Write as _;

use serde_json::Value;

use super::model::{self, Phase, Verdict};
use super::{seconds_text, time_text, Input, Report};

/// Text for a table cell: pipes escaped, lines joined, Markdown's active characters
/// neutralised so a title cannot become a link or an image.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '[' | ']' | '*' | '_' | '`' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text inside a code span: backticks cannot close it early.
fn code(text: &str) -> String {
    if text.is_empty() || text == "–" {
        return "–".into();
    }
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect::<String>()
        .replace('|', "\\|");
    if flat.contains('`') {
        format!("`` {flat} ``")
    } else {
        format!("`{flat}`")
    }
}

fn verdict_text(v: Verdict) -> String {
    let mark = match v {
        Verdict::Held => "✅",
        Verdict::Deviated | Verdict::Failed => "❌",
        Verdict::Aborted | Verdict::Interrupted => "⚠️",
    };
    format!("{mark} {}", v.as_str())
}

fn met_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "✅ met",
        Some(false) => "❌ not met",
        None => "–",
    }
}

fn checked(met: Option<bool>) -> &'static str {
    match met {
        None => "not checked",
        m => met_text(m),
    }
}

fn trace(report: &Report, input: &Input) -> String {
    match (report.trace_link(&input.record), input.record.trace_id()) {
        (Some(link), Some(id)) => format!("[`{id}`](<{}>)", link.replace('>', "%3E")),
        (None, Some(id)) => code(id),
        _ => "–".into(),
    }
}

/// The report, as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let _ = writeln!(out, "# {}\n", cell(&report.heading()));
    let _ = writeln!(
        out,
        "{} run(s) · generated {} by faultline {}\n",
        report.runs.len(),
        time_text(Some(report.generated)),
        env!("CARGO_PKG_VERSION")
    );
    if report.runs.len() > 1 {
        overview(&mut out, report);
    }
    let many = report.runs.len() > 1;
    for (i, input) in report.runs.iter().enumerate() {
        run_section(&mut out, report, input, many.then_some(i + 1));
    }
    if !report.skipped.is_empty() {
        out.push_str("## Not shown\n\n");
        for s in &report.skipped {
            let _ = writeln!(out, "- {}", cell(s));
        }
        out.push('\n');
    }
    out
}

fn overview(out: &mut String, report: &Report) {
    out.push_str("## Overview\n\n");
    let counts: Vec<String> = report
        .verdict_counts()
        .into_iter()
        .map(|(v, n)| format!("{}: {n}", verdict_text(v)))
        .collect();
    let _ = writeln!(out, "{}\n", counts.join(" · "));
    out.push_str("### Verdicts\n\n| # | Experiment | Started | Duration | Verdict | Before | After | SLOs | Alerts | Trace |\n|---|---|---|---:|---|---|---|---|---:|---|\n");
    for (i, input) in report.runs.iter().enumerate() {
        let s = model::summary(&input.record);
        let slo = model::slo_verdicts(&input.record);
        let met = slo.iter().filter(|v| v["verdict"] == "met").count();
        let _ = writeln!(
            out,
            "| {n} | {title} | {start} | {dur} | {verdict} | {before} | {after} | {slo} | {alerts} | {trace} |",
            n = i + 1,
            title = cell(&s.title),
            start = time_text(s.started),
            dur = seconds_text(s.duration),
            verdict = verdict_text(s.verdict),
            before = met_text(s.before),
            after = met_text(s.after),
            slo = if slo.is_empty() {
                "–".to_string()
            } else {
                format!("{met}/{} met", slo.len())
            },
            alerts = model::alerts(&input.record).len(),
            trace = trace(report, input),
        );
    }
    out.push('\n');
    let agg = model::contributions(report.runs.iter().map(|r| &r.record));
    out.push_str("### Contributions\n\n");
    if agg.is_empty() {
        out.push_str("No experiment declared its contributions.\n\n");
        return;
    }
    out.push_str("| Contribution | high | medium | low | none |\n|---|---:|---:|---:|---:|\n");
    for (name, levels) in &agg {
        let n = |l: &str| levels.get(l).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(name),
            n("high"),
            n("medium"),
            n("low"),
            n("none")
        );
    }
    out.push('\n');
}

fn phase_text(p: Phase) -> &'static str {
    match p {
        Phase::Before => "hypothesis before",
        Phase::Method => "method",
        Phase::During => "during",
        Phase::After => "hypothesis after",
        Phase::Rollback => "rollback",
    }
}

fn run_section(out: &mut String, report: &Report, input: &Input, n: Option<usize>) {
    let r = &input.record;
    let s = model::summary(r);
    let _ = writeln!(
        out,
        "## {}{} — {}\n",
        n.map(|n| format!("{n}. ")).unwrap_or_default(),
        cell(if s.title.is_empty() {
            "(untitled)"
        } else {
            &s.title
        }),
        verdict_text(s.verdict)
    );
    out.push_str("| | |\n|---|---|\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "| {k} | {v} |");
    };
    row(
        "Status",
        format!(
            "{}{}",
            cell(&s.status),
            if r.deviated { ", deviated" } else { "" }
        ),
    );
    if let Some(id) = &s.run_id {
        row("Run", code(id));
    }
    row("Started", time_text(s.started));
    row("Ended", time_text(s.ended));
    row("Duration", seconds_text(s.duration));
    row("Trace", trace(report, input));
    let during = if s.during.0 > 0 {
        format!(" · during: {} check(s), {} not met", s.during.0, s.during.1)
    } else {
        String::new()
    };
    row(
        "Steady state",
        format!(
            "before {} · after {}{during}",
            checked(s.before),
            checked(s.after)
        ),
    );
    let (before_journal, after_journal) = input.facts(&s);
    for (k, v) in before_journal {
        row(k, cell(&v));
    }
    row("Journal", code(&input.source));
    for (k, v) in after_journal {
        row(k, cell(&v));
    }
    out.push('\n');
    if !s.failures.is_empty() {
        out.push_str("### Failures\n\n");
        for (name, why) in &s.failures {
            let _ = writeln!(out, "- **{}**: {}", cell(name), cell(why));
        }
        out.push('\n');
    }

    out.push_str("### Timeline\n\n");
    let spans = model::timeline(r);
    if spans.is_empty() {
        out.push_str("No activity ran.\n\n");
    } else {
        out.push_str("| At | Activity | Where | Took | Result |\n|---:|---|---|---:|---|\n");
        for sp in &spans {
            let _ = writeln!(
                out,
                "| +{:.3} s | {} | {} | {} | {} |",
                sp.offset,
                cell(&sp.name),
                phase_text(sp.phase),
                seconds_text(sp.duration),
                if sp.failed { "❌" } else { "✅" }
            );
        }
        out.push('\n');
    }

    out.push_str("### Evidence\n\n");
    let ev = model::evidence(r);
    if ev.is_empty() {
        out.push_str("No probe judged a tolerance.\n\n");
    } else {
        out.push_str("| Probe | Where | Verdict | Expected | Actual | Query | Time |\n|---|---|---|---|---|---|---|\n");
        for e in &ev {
            let f = |k: &str| {
                e.fields
                    .iter()
                    .find(|(x, _)| x == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| "–".into())
            };
            let mut verdict = match e.fields.iter().find(|(k, _)| k == "verdict") {
                Some((_, v)) => cell(&v.replace('_', " ")),
                None => met_text(e.met).to_string(),
            };
            if let Some((_, reason)) = e.fields.iter().find(|(k, _)| k == "reason") {
                let _ = write!(verdict, " ({})", cell(reason));
            }
            let _ = writeln!(
                out,
                "| {} | {} | {verdict} | {} | {} | {} | {} |",
                cell(&e.name),
                phase_text(e.phase),
                code(&f("expected")),
                code(&f("actual")),
                code(&f("query")),
                cell(&f("time")),
            );
        }
        out.push('\n');
    }

    out.push_str("### Rollbacks\n\n");
    if r.rollbacks.is_empty() {
        out.push_str("No rollback ran.\n\n");
    } else {
        out.push_str("| Rollback | Status | Took | Error |\n|---|---|---:|---|\n");
        for e in &r.rollbacks {
            let status = match e.status.as_str() {
                "" => "unfinished",
                s => s,
            };
            let _ = writeln!(
                out,
                "| {} | {status} | {} | {} |",
                cell(e.name()),
                seconds_text(e.duration),
                cell(&model::failure_line(e))
            );
        }
        out.push('\n');
    }

    out.push_str("### SLOs\n\n");
    let slo = model::slo_verdicts(r);
    if slo.is_empty() {
        out.push_str("No SLO was judged in this run.\n\n");
    } else {
        out.push_str("| Objective | Probe | Verdict | SLI | Target | Burn rate | Budget left | Budget used by the run |\n|---|---|---|---:|---:|---:|---:|---:|\n");
        let pct = |v: &Value| {
            v.as_f64()
                .map_or("–".into(), |x| format!("{:.3} %", x * 100.0))
        };
        for v in &slo {
            let verdict = v["verdict"].as_str().unwrap_or("");
            let reason = v["reason"]
                .as_str()
                .map(|r| format!(" ({})", cell(r)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {}{reason} | {} | {} | {} | {} | {} |",
                cell(&model::objective_text(&v["objective"])),
                cell(v["activity"].as_str().unwrap_or("")),
                cell(v["phase"].as_str().unwrap_or("")),
                cell(&verdict.replace('_', " ")),
                pct(&v["sli"]),
                pct(&v["target"]),
                v["burn_rate"]
                    .as_f64()
                    .map_or("–".into(), |b| format!("{b:.3}")),
                pct(&v["error_budget_remaining"]),
                pct(&v["budget_consumed_by_run"]),
            );
        }
        out.push('\n');
    }

    out.push_str("### Alerts\n\n");
    let list = model::alerts(r);
    let watched = r
        .faultline()
        .is_some_and(|f| f.contributed.contains_key("alerts"));
    if list.is_empty() {
        out.push_str(if watched {
            "No alert fired during the run.\n\n"
        } else {
            "Alerts were not watched (the faultline.alerts control was not on).\n\n"
        });
    } else {
        out.push_str(
            "| Alert | State | Started | Ended | Labels | Source |\n|---|---|---|---|---|---|\n",
        );
        for a in &list {
            let labels: Vec<String> = a
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&a.name),
                cell(&a.state),
                time_text(a.starts_at),
                time_text(a.ends_at),
                code(&labels.join(", ")),
                a.source.as_str()
            );
        }
        out.push('\n');
    }
}
