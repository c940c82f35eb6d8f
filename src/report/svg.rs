//! Charts drawn server-side as inline SVG: no script, no external resource.

use super::escape_html;
use std::collections::BTreeMap;

use super::model::{Phase, Span};

/// The timeline: one row per activity, a bar from its start for its
/// duration on a shared time axis; failed bars are marked.
pub fn timeline(spans: &[Span], id: &str) -> String {
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
        "<svg id=\"{id}\" class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"timeline\">"
    );
    // Ticks: about five, at a round step, each with a faint guide line.
    let step = nice_step(total / 5.0);
    let mut t = 0.0;
    while t <= total + step * 1e-9 {
        let x = LABEL + t * scale;
        out.push_str(&format!(
            "<line class=\"tick\" x1=\"{x:.1}\" y1=\"0\" x2=\"{x:.1}\" y2=\"{gy}\" stroke=\"#d5dae0\" stroke-width=\"1\"/><text x=\"{x:.1}\" y=\"{ay}\" text-anchor=\"middle\">{label}</text>",
            gy = height - 20.0,
            ay = height - 6.0,
            label = tick_label(t, step),
        ));
        t += step;
    }
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
            "<text x=\"4\" y=\"{ty}\">{short}</text><rect class=\"{class}\" x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{h}\"><title>{name}: {d:.3} s</title></rect>",
            ty = y + 14.0,
            short = escape_html(&super::model::clip(&s.name, 36)),
            name = escape_html(&s.name),
            h = ROW - 6.0,
            d = s.duration,
        ));
    }
    out.push_str("</svg>");
    out
}

/// A round step (1, 2 or 5 times a power of ten) near `raw` seconds.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-3);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let n = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * p
}

/// A tick's label, with as many decimals as the step needs.
fn tick_label(t: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{t:.decimals$} s")
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
        let svg = timeline(&spans, "t");
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("class=\"bar failed\""));
        assert!(svg.contains(">2.0 s<"), "{svg}");
        assert!(svg.contains(">0.0 s<"));
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
