//! `slo report`'s table, as the Reliably guide prints it: objectives grouped by their
//! `service` label, with the columns Current, Objective / Time Window, Type and Trend,
//! ✅/❌ per objective and ✓/✕ per recent result, oldest to newest. Pure: it takes a
//! view of what the store holds ([`ReportEntry`]) and returns text, so the exact lines
//! are tested here and the store stays out of `slo`.

use super::model::{Labels, ObjectiveResult};
use std::time::Duration;

/// What `slo report -w` prints above each frame (the guide's words).
pub const WATCH_BANNER: &str = "Refreshing SLO report every 3 seconds.";
/// The rest of the banner's line.
pub const WATCH_HINT: &str = "Press CTRL+C to quit.";

/// One objective as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportEntry {
    /// Its labels (`name`, `service`...).
    pub labels: Labels,
    /// Which indicators it judges (`category` is the Type column).
    pub indicator_selector: Labels,
    /// Its target, 0 to 100.
    pub objective_percent: f64,
    /// Its window's length.
    pub window: Duration,
    /// Its newest results, newest first (as the store returns them).
    pub results: Vec<ObjectiveResult>,
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const HEADER: &str = "\x1b[1;35m";
const PURPLE: &str = "\x1b[35m";
const RESET: &str = "\x1b[0m";

/// The banner line of a `-w` frame.
pub fn watch_banner(color: bool) -> String {
    if color {
        format!("{PURPLE}{WATCH_BANNER}{RESET} {WATCH_HINT}")
    } else {
        format!("{WATCH_BANNER} {WATCH_HINT}")
    }
}

/// A cell: its text and, on a terminal, its colour.
struct Cell {
    text: String,
    color: Option<&'static str>,
}

/// One objective's line, before padding.
struct Line {
    icon: &'static str,
    name: String,
    current: Option<Cell>,
    objective: String,
    window: String,
    kind: String,
    trend: Vec<Cell>,
}

enum Row {
    Service(String),
    Objective(Line),
}

/// The table (every line ends with a newline; no trailing spaces). Coloured with ANSI
/// codes when `color` is set (the caller decides: a terminal, no `NO_COLOR`).
pub fn table(entries: &[ReportEntry], color: bool) -> String {
    let rows = rows(entries);
    // The guide's spacing: the name column ends 5 columns after the longest service
    // line and 9 after the longest objective line; Current and Objective are
    // right-aligned under their headers; Time Window and Type are left-aligned, 5
    // columns wider than their longest cell.
    let mut name_w = 0;
    let (mut cur_w, mut obj_w, mut win_w, mut kind_w) = (7, 9, 11, 4);
    for r in &rows {
        match r {
            Row::Service(s) => name_w = name_w.max(width(s) + 5),
            Row::Objective(l) => {
                name_w = name_w.max(2 + width(l.icon) + 1 + width(&l.name) + 9);
                cur_w = cur_w.max(l.current.as_ref().map_or(0, |c| width(&c.text)));
                obj_w = obj_w.max(width(&l.objective));
                win_w = win_w.max(width(&l.window));
                kind_w = kind_w.max(width(&l.kind));
            }
        }
    }
    let (win_w, kind_w) = (win_w + 5, kind_w + 5);
    let mut out = String::new();
    let header = format!(
        "{}{:>cur_w$}  {:>obj_w$}  / {:<win_w$}{:<kind_w$}Trend",
        " ".repeat(name_w),
        "Current",
        "Objective",
        "Time Window",
        "Type"
    );
    let (head, rest) = header.split_at(name_w);
    out.push_str(head);
    out.push_str(&paint(rest, color.then_some(HEADER)));
    out.push('\n');
    for r in &rows {
        let line = match r {
            Row::Service(s) => s.clone(),
            Row::Objective(l) => {
                let label = format!("  {} {}", l.icon, l.name);
                let mut s = label.clone();
                s.push_str(&" ".repeat(name_w.saturating_sub(width(&label))));
                let current = l.current.as_ref();
                let cur_text = current.map_or("", |c| c.text.as_str());
                s.push_str(&" ".repeat(cur_w.saturating_sub(width(cur_text))));
                s.push_str(&paint(
                    cur_text,
                    current.and_then(|c| c.color).filter(|_| color),
                ));
                s.push_str(&format!(
                    "  {:>obj_w$}  / {}{}{}{}",
                    l.objective,
                    l.window,
                    " ".repeat(win_w.saturating_sub(width(&l.window))),
                    l.kind,
                    " ".repeat(kind_w.saturating_sub(width(&l.kind))),
                ));
                let marks: Vec<String> = l
                    .trend
                    .iter()
                    .map(|c| paint(&c.text, c.color.filter(|_| color)))
                    .collect();
                s.push_str(&marks.join(" "));
                s
            }
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn paint(text: &str, color: Option<&str>) -> String {
    match color {
        Some(c) if !text.is_empty() => format!("{c}{text}{RESET}"),
        _ => text.to_string(),
    }
}

/// Columns a text takes on a terminal: the status icons are two wide.
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| if matches!(c, '✅' | '❌') { 2 } else { 1 })
        .sum()
}

/// The rows: services in name order (objectives without one last), objectives by
/// name within each.
fn rows(entries: &[ReportEntry]) -> Vec<Row> {
    let mut sorted: Vec<&ReportEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| {
        let key = |e: &ReportEntry| {
            (
                !e.labels.contains_key("service"),
                e.labels.get("service").cloned(),
                name(e),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut rows = Vec::new();
    let mut current: Option<Option<&String>> = None;
    let mut n = 0;
    for e in sorted {
        let service = e.labels.get("service");
        if current != Some(service) {
            n += 1;
            rows.push(Row::Service(format!(
                "  Service #{n}: {}",
                service.map_or("(no service label)", String::as_str)
            )));
            current = Some(service);
        }
        rows.push(Row::Objective(line(e)));
    }
    rows
}

/// An objective's name: its `name` label, else all its labels.
fn name(e: &ReportEntry) -> String {
    match e.labels.get("name") {
        Some(n) => n.clone(),
        None => e
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn line(e: &ReportEntry) -> Line {
    let latest = e.results.first();
    let mark = |met: bool| if met { GREEN } else { RED };
    Line {
        // No result yet: neither met nor missed.
        icon: match latest {
            Some(r) if r.met() => "✅",
            Some(_) => "❌",
            None => "  ",
        },
        name: name(e),
        current: latest.map(|r| Cell {
            text: format!("{:.2}%", r.actual_percent),
            color: Some(mark(r.met())),
        }),
        objective: format!("{}%", e.objective_percent),
        window: go_duration(e.window),
        kind: e
            .indicator_selector
            .get("category")
            .cloned()
            .unwrap_or_default(),
        trend: e
            .results
            .iter()
            .rev()
            .map(|r| Cell {
                text: if r.met() { "✓" } else { "✕" }.to_string(),
                color: Some(mark(r.met())),
            })
            .collect(),
    }
}

/// A duration as Go prints one (`1h0m0s`, `30m0s`, `1m30s`, `1.5s`, `250ms`), which is
/// how Reliably shows windows.
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, per) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, per));
    }
    let secs = d.as_secs();
    let (h, m) = (secs / 3600, secs / 60 % 60);
    let s = fraction(
        u128::from(secs % 60) * 1_000_000_000 + u128::from(d.subsec_nanos()),
        1_000_000_000,
    );
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `value / per` with the decimals it needs (none when whole).
fn fraction(value: u128, per: u128) -> String {
    let whole = value / per;
    let rest = value % per;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = per.to_string().len() - 1;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "99.9% of our requests are in the 2xx class";
    const SERVICE: &str = "exploring-reliability-guide-service";

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn guide(actuals_newest_first: &[f64]) -> ReportEntry {
        let selector = labels(&[
            ("category", "Availability"),
            (
                "indicator_name",
                "exploring-reliability-guide-service-availability-indicator",
            ),
        ]);
        ReportEntry {
            labels: labels(&[("name", NAME), ("service", SERVICE)]),
            indicator_selector: selector.clone(),
            objective_percent: 99.9,
            window: Duration::from_secs(3600),
            results: actuals_newest_first
                .iter()
                .map(|a| ObjectiveResult {
                    indicator_selector: selector.clone(),
                    objective_percent: 99.9,
                    actual_percent: *a,
                    remaining_percent: a - 99.9,
                })
                .collect(),
        }
    }

    const HEADER_LINE: &str = "                                                        Current  Objective  / Time Window     Type             Trend";

    /// The guide's table after the healthy run, line for line.
    #[test]
    fn the_guides_table_after_a_good_indicator() {
        let t = table(&[guide(&[100.0])], false);
        let want = format!(
            "{HEADER_LINE}\n  Service #1: {SERVICE}\n  ✅ {NAME}         100.00%      99.9%  / 1h0m0s          Availability     ✓\n"
        );
        assert_eq!(t, want);
    }

    /// And after the unhealthy run: 90.00%, the trend oldest to newest.
    #[test]
    fn the_guides_table_after_a_bad_indicator() {
        let t = table(&[guide(&[90.0, 100.0])], false);
        let want = format!(
            "{HEADER_LINE}\n  Service #1: {SERVICE}\n  ❌ {NAME}          90.00%      99.9%  / 1h0m0s          Availability     ✓ ✕\n"
        );
        assert_eq!(t, want);
    }

    /// The guide's empty report (no objective yet): the header and nothing else.
    #[test]
    fn an_empty_report_is_its_header() {
        let t = table(&[], false);
        assert_eq!(t, "Current  Objective  / Time Window     Type     Trend\n");
    }

    #[test]
    fn an_objective_without_results_shows_no_current_value_nor_icon() {
        let t = table(&[guide(&[])], false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], HEADER_LINE);
        assert_eq!(
            lines[2],
            format!(
                "     {NAME}{}99.9%  / 1h0m0s          Availability",
                " ".repeat(22)
            )
        );
    }

    #[test]
    fn colour_only_when_asked_and_the_columns_stay_put() {
        let plain = table(&[guide(&[90.0, 100.0])], false);
        assert!(!plain.contains('\x1b'));
        let coloured = table(&[guide(&[90.0, 100.0])], true);
        assert!(
            coloured.contains(&format!("{RED}90.00%{RESET}")),
            "{coloured}"
        );
        assert!(coloured.contains(&format!("{GREEN}✓{RESET} {RED}✕{RESET}")));
        assert!(coloured.contains(&format!("{HEADER}Current")));
        // Without the colour codes, the same text.
        let stripped = coloured
            .replace(GREEN, "")
            .replace(RED, "")
            .replace(HEADER, "")
            .replace(RESET, "");
        assert_eq!(stripped, plain);
        assert_eq!(
            watch_banner(false),
            "Refreshing SLO report every 3 seconds. Press CTRL+C to quit."
        );
    }

    #[test]
    fn services_are_grouped_and_numbered_and_columns_widen() {
        let mut a = guide(&[99.95]);
        a.labels = labels(&[("name", "latency"), ("service", "b-svc")]);
        a.indicator_selector = labels(&[("category", "Latency-Long-Category")]);
        a.objective_percent = 99.95;
        a.window = Duration::from_secs(30 * 86_400);
        let mut b = guide(&[100.0]);
        b.labels = labels(&[("name", "avail"), ("service", "a-svc")]);
        let mut c = guide(&[50.0]);
        c.labels = labels(&[("team", "sre")]);
        let t = table(&[a, b, c], false);
        let pad = " ".repeat(37);
        let want = [
            format!("{pad}Current  Objective  / Time Window     Type                      Trend"),
            "  Service #1: a-svc".to_string(),
            format!(
                "  ✅ avail{}100.00%      99.9%  / 1h0m0s          Availability              ✓",
                " ".repeat(27)
            ),
            "  Service #2: b-svc".to_string(),
            format!(
                "  ✅ latency{} 99.95%     99.95%  / 720h0m0s        Latency-Long-Category     ✓",
                " ".repeat(25)
            ),
            "  Service #3: (no service label)".to_string(),
            format!(
                "  ❌ team=sre{} 50.00%      99.9%  / 1h0m0s          Availability              ✕",
                " ".repeat(24)
            ),
        ]
        .map(|l| l + "\n")
        .concat();
        assert_eq!(t, want);
    }

    #[test]
    fn windows_print_as_go_durations() {
        let cases = [
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(1800), "30m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(3), "3µs"),
            (Duration::from_secs(86_400), "24h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::ZERO, "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }
}
