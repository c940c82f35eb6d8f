//! Charts drawn server-side as inline SVG: no script, no external resource.

use super::escape_html;
use std::collections::BTreeMap;

use super::model::{Phase, Span};

/// The timeline: one row per activity, a bar from its start for its
/// duration on a shared time axis; failed bars are marked.
pub fn timeline(spans: &[Span]) -> String {
    const WIDTH: f64 = 900.0;
    const LABEL: f64 = 260.0;
    const ROW: f64 = 22.0;
    let total = spans
        .iter()
        .map(|s| s.offset + s.duration)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let scale = (WIDTH - LABEL - 10.0) / total;
    let height = ROW * spans.len() as f64 + 30.0;
    let mut out = format!(
        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"timeline\">"
    );
    for (i, s) in spans.iter().enumerate() {
        let y = ROW * i as f64 + 4.0;
        let x = LABEL + s.offset * scale;
        let w = (s.duration * scale).max(2.0);
        let class = match (s.failed, s.phase) {
            (true, _) => "bar failed",
            (false, Phase::Rollback) => "bar rollback",
            (false, Phase::Method) => "bar method",
            (false, _) => "bar hypothesis",
        };
        out.push_str(&format!(
            "<text x=\"4\" y=\"{ty}\">{name}</text><rect class=\"{class}\" x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\"><title>{name}: {d:.3} s</title></rect>",
            ty = y + 14.0,
            name = escape_html(&s.name),
            h = ROW - 6.0,
            d = s.duration,
        ));
    }
    out.push_str(&format!(
        "<text x=\"{LABEL}\" y=\"{ay}\">0 s</text><text x=\"{ex}\" y=\"{ay}\" text-anchor=\"end\">{total:.2} s</text></svg>",
        ay = height - 6.0,
        ex = WIDTH - 10.0,
    ));
    out
}

/// The contributions chart: one stacked bar per contribution, a segment per
/// level (`high`, `medium`, `low`, `none`), as many units as runs declared it.
pub fn contributions(agg: &BTreeMap<String, BTreeMap<String, usize>>) -> String {
    const LABEL: f64 = 200.0;
    const UNIT: f64 = 40.0;
    const ROW: f64 = 24.0;
    let widest = agg
        .values()
        .map(|l| l.values().sum::<usize>())
        .max()
        .unwrap_or(0) as f64;
    let width = LABEL + widest * UNIT + 20.0;
    let height = ROW * agg.len() as f64 + 10.0;
    let mut out = format!(
        "<svg id=\"contributions\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"contributions\">"
    );
    for (i, (name, levels)) in agg.iter().enumerate() {
        let y = ROW * i as f64 + 4.0;
        out.push_str(&format!(
            "<text x=\"4\" y=\"{ty}\">{n}</text>",
            ty = y + 15.0,
            n = escape_html(name)
        ));
        let mut x = LABEL;
        for level in ["high", "medium", "low", "none"] {
            let count = levels.get(level).copied().unwrap_or(0);
            if count == 0 {
                continue;
            }
            let w = count as f64 * UNIT;
            out.push_str(&format!(
                "<rect class=\"level {level}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\"><title>{n}: {level} × {count}</title></rect>",
                h = ROW - 6.0,
                n = escape_html(name),
            ));
            x += w;
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_and_names_escaped() {
        let spans = [
            Span {
                phase: Phase::Method,
                name: "<script>x</script>".into(),
                offset: 0.0,
                duration: 1.0,
                failed: false,
            },
            Span {
                phase: Phase::Rollback,
                name: "undo".into(),
                offset: 1.0,
                duration: 1.0,
                failed: true,
            },
        ];
        let svg = timeline(&spans);
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("class=\"bar failed\""));
        assert!(svg.contains("2.00 s"));
    }

    #[test]
    fn contributions_stack_by_level() {
        let mut agg = BTreeMap::new();
        agg.insert(
            "<b>".to_string(),
            BTreeMap::from([("high".to_string(), 2), ("low".to_string(), 1)]),
        );
        let svg = contributions(&agg);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        assert!(svg.contains("class=\"level high\" x=\"200\" y=\"4\" width=\"80\""));
        assert!(svg.contains("class=\"level low\" x=\"280\""));
    }
}
