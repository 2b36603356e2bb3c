//! Small inline SVG charts for the HTML report, drawn here so the report needs no script and no
//! file beside it. Every bar is a link to the list of ids it counts, and carries a `<title>`
//! (a tooltip, and what a screen reader says). All text goes through maud, so it is escaped.

use maud::{Markup, html};

/// Width of every chart, in SVG units (the chart scales to the page).
const WIDTH: f64 = 720.0;

/// One bar of a column chart.
pub struct Column {
    /// Under the bar.
    pub label: String,
    /// Its height.
    pub value: f64,
    /// Where it links to (`#anchor`).
    pub href: String,
    /// Its tooltip.
    pub title: String,
}

/// A column chart: one bar per item, left to right, labelled below.
pub fn columns(caption: &str, unit: &str, bars: &[Column]) -> Markup {
    let height = 220.0;
    let (left, bottom, top) = (48.0, 40.0, 16.0);
    let plot_h = height - bottom - top;
    let max = nice_max(bars.iter().map(|b| b.value).fold(0.0, f64::max));
    let n = bars.len().max(1) as f64;
    let slot = (WIDTH - left - 8.0) / n;
    let bar_w = (slot * 0.7).max(1.0);
    let label_every = (bars.len() / 12).max(1);
    html! {
        svg class="chart" viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(caption) {
            title { (caption) }
            (axis(left, top, plot_h, max, unit))
            @for (i, bar) in bars.iter().enumerate() {
                @let h = if max > 0.0 { bar.value / max * plot_h } else { 0.0 };
                @let x = left + i as f64 * slot + (slot - bar_w) / 2.0;
                a href=(bar.href) {
                    rect class="bar" x=(fmt(x)) y=(fmt(top + plot_h - h)) width=(fmt(bar_w)) height=(fmt(h)) {
                        title { (bar.title) }
                    }
                }
                @if i % label_every == 0 {
                    text class="tick" x=(fmt(x + bar_w / 2.0)) y=(fmt(height - bottom + 14.0)) text-anchor="middle" {
                        (bar.label)
                    }
                }
            }
        }
    }
}

/// One row of a grouped bar chart.
pub struct Row {
    /// Left of the bars.
    pub label: String,
    /// One value per series.
    pub values: Vec<f64>,
    /// Where the row links to.
    pub href: String,
}

/// A horizontal grouped bar chart: one group of bars per row, one bar per series.
pub fn rows(caption: &str, unit: &str, series: &[&str], data: &[Row]) -> Markup {
    let left = 150.0;
    let bar_h = 10.0;
    let group_h = bar_h * series.len() as f64 + 10.0;
    let top = 28.0;
    let height = top + group_h * data.len().max(1) as f64 + 24.0;
    let plot_w = WIDTH - left - 70.0;
    let max = nice_max(
        data.iter()
            .flat_map(|r| r.values.iter().copied())
            .fold(0.0, f64::max),
    );
    html! {
        svg class="chart" viewBox=(format!("0 0 {WIDTH} {}", fmt(height))) role="img" aria-label=(caption) {
            title { (caption) }
            @for (s, name) in series.iter().enumerate() {
                rect class=(format!("s{s}")) x=(fmt(left + s as f64 * 120.0)) y="6" width="10" height="10" {}
                text class="tick" x=(fmt(left + s as f64 * 120.0 + 14.0)) y="15" { (name) }
            }
            @for (i, row) in data.iter().enumerate() {
                @let y0 = top + i as f64 * group_h;
                a href=(row.href) {
                    text class="tick" x=(fmt(left - 6.0)) y=(fmt(y0 + group_h / 2.0)) text-anchor="end" { (row.label) }
                    @for (s, value) in row.values.iter().enumerate() {
                        @let w = if max > 0.0 { value / max * plot_w } else { 0.0 };
                        @let name = series.get(s).copied().unwrap_or("");
                        rect class=(format!("s{s}")) x=(fmt(left)) y=(fmt(y0 + s as f64 * bar_h)) width=(fmt(w)) height=(fmt(bar_h - 1.0)) {
                            title { (row.label) ", " (name) ": " (short(*value)) " " (unit) }
                        }
                        text class="value" x=(fmt(left + w + 4.0)) y=(fmt(y0 + s as f64 * bar_h + bar_h - 2.0)) { (short(*value)) }
                    }
                }
            }
            text class="tick" x=(fmt(WIDTH - 4.0)) y=(fmt(height - 6.0)) text-anchor="end" { (unit) }
        }
    }
}

/// The value axis of a column chart: a base line, a top line and their labels.
fn axis(left: f64, top: f64, plot_h: f64, max: f64, unit: &str) -> Markup {
    html! {
        line class="axis" x1=(fmt(left)) y1=(fmt(top + plot_h)) x2=(fmt(WIDTH - 4.0)) y2=(fmt(top + plot_h)) {}
        line class="grid" x1=(fmt(left)) y1=(fmt(top)) x2=(fmt(WIDTH - 4.0)) y2=(fmt(top)) {}
        text class="tick" x=(fmt(left - 4.0)) y=(fmt(top + 4.0)) text-anchor="end" { (short(max)) }
        text class="tick" x=(fmt(left - 4.0)) y=(fmt(top + plot_h)) text-anchor="end" { "0" }
        text class="tick" x="2" y=(fmt(top - 4.0)) { (unit) }
    }
}

/// A round number at or above `max`, for the top of an axis (1, 2 or 5 times a power of ten).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 0.0;
    }
    let power = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * power)
}

/// A coordinate with at most one decimal.
fn fmt(v: f64) -> String {
    format!("{:.1}", v)
}

/// A value for a label, to one decimal: whole numbers without one, and a small value that
/// would round to nothing as `<0.1`, so it is not mistaken for none.
fn short(v: f64) -> String {
    let rounded = (v * 10.0).round() / 10.0;
    if v > 0.0 && rounded == 0.0 {
        "<0.1".to_owned()
    } else if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(0.0), 0.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(10.0), 10.0);
        assert_eq!(nice_max(11.0), 20.0);
        assert_eq!(nice_max(0.3), 0.5);
        assert_eq!(short(2.0003), "2");
        assert_eq!(short(0.01), "<0.1");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(1.25), "1.3");
    }

    #[test]
    fn bars_link_to_their_ids_and_escape_their_labels() {
        let chart = columns(
            "grants <per day>",
            "grants",
            &[Column {
                label: "<b>".into(),
                value: 3.0,
                href: "#bucket-0".into(),
                title: "3 grants".into(),
            }],
        )
        .into_string();
        assert!(chart.contains("href=\"#bucket-0\""), "{chart}");
        assert!(chart.contains("&lt;b&gt;"), "{chart}");
        assert!(!chart.contains("<b>"), "{chart}");
        let chart = rows(
            "per role",
            "hours",
            &["asked", "given"],
            &[Row {
                label: "web".into(),
                values: vec![2.0, 1.5],
                href: "#time-web".into(),
            }],
        )
        .into_string();
        assert!(chart.contains("href=\"#time-web\""), "{chart}");
        assert!(chart.contains(">1.5<"), "{chart}");
    }
}
