//! A small SVG line-chart renderer: panels stacked one above the other, sharing one x axis,
//! each with its own y axis and several named series.
//!
//! `tune` plots throughput, latency and memory against the worker count, `metrics` memory
//! against time. [`render`] is a pure function from data to SVG text (SVG 1.1, no script, no
//! external font or stylesheet), so browsers, image viewers and `rsvg-convert` show it as it
//! is, and tests read it as XML. No PNG: that would need an image encoder dependency.

use std::fmt::Write as _;

/// A chart: a title, the x axis label, and the panels, top to bottom.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    /// Drawn above the first panel.
    pub title: String,
    /// Drawn under the last panel; every panel shares the x range.
    pub x_label: String,
    /// The panels, top to bottom.
    pub panels: Vec<Panel>,
}

/// One panel: a y axis of its own and the series drawn against it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Panel {
    /// The y axis label, with its unit (`req/s`, `ms`, `MB`).
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stroke {
    /// A solid line with a dot at each point.
    #[default]
    Solid,
    /// A dashed line without dots, for limits such as a memory quota.
    Dashed,
}

/// One line: a name for the legend and its points.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// `(x, y)` pairs, drawn in the order given; points that are not finite are skipped.
    pub points: Vec<(f64, f64)>,
    /// Solid or dashed.
    pub stroke: Stroke,
}

impl Series {
    /// A solid series.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            stroke: Stroke::Solid,
        }
    }

    /// A dashed series.
    pub fn dashed(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            stroke: Stroke::Dashed,
        }
    }
}

/// Colours of the series, in order (Okabe and Ito's palette, readable by colour-blind eyes).
const COLOURS: [&str; 8] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442",
];

const WIDTH: f64 = 820.0;
const PANEL_HEIGHT: f64 = 200.0;
const PANEL_GAP: f64 = 50.0;
const TOP: f64 = 44.0;
const LEFT: f64 = 74.0;
const RIGHT: f64 = 190.0;
const BOTTOM: f64 = 56.0;
/// At most this many points get a dot; more would hide the line.
const MAX_DOTS: usize = 40;

/// A "nice" step (1, 2 or 5 times a power of ten) that cuts `span` into about `ticks` parts.
pub fn nice_step(span: f64, ticks: usize) -> f64 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / ticks.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// The axis range `[lo, hi]` holding every value, widened to whole steps, and its step.
/// `from_zero` starts it at 0 when every value is positive.
fn axis(values: impl Iterator<Item = f64>, from_zero: bool, ticks: usize) -> (f64, f64, f64) {
    let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0, 0.5);
    }
    if from_zero && lo > 0.0 {
        lo = 0.0;
    }
    if hi - lo < f64::EPSILON * hi.abs().max(1.0) {
        // One value: a range around it.
        let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.5 };
        hi += pad;
        if !(from_zero && lo == 0.0) {
            lo -= pad;
        }
    }
    let step = nice_step(hi - lo, ticks);
    ((lo / step).floor() * step, (hi / step).ceil() * step, step)
}

/// A tick value with as many decimals as the step needs (`0.25` for a step of 0.05).
fn tick_label(value: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
    let s = format!("{value:.decimals$}");
    // "-0" reads oddly.
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

/// Escapes text for an SVG text node or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters.
            c if c.is_control() && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn finite_points(s: &Series) -> impl Iterator<Item = (f64, f64)> + '_ {
    s.points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// Renders `chart` as a standalone SVG document.
pub fn render(chart: &Chart) -> String {
    let panels = chart.panels.len().max(1);
    let height = TOP + panels as f64 * PANEL_HEIGHT + (panels - 1) as f64 * PANEL_GAP + BOTTOM;
    let plot_w = WIDTH - LEFT - RIGHT;
    let mut svg = String::with_capacity(8192);
    let _ = writeln!(
        svg,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>
<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"##,
        LEFT + plot_w / 2.0,
        escape(&chart.title)
    );

    let all_x = chart
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| finite_points(s).map(|(x, _)| x));
    let integral = chart
        .panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(finite_points)
        .all(|(x, _)| x.fract() == 0.0);
    let (x_lo, x_hi, mut x_step) = axis(all_x, false, 8);
    if integral {
        // Worker counts: no tick at 2.5 workers.
        x_step = x_step.max(1.0);
    }
    let sx = |x: f64| LEFT + (x - x_lo) / (x_hi - x_lo) * plot_w;

    for (i, panel) in chart.panels.iter().enumerate() {
        let top = TOP + i as f64 * (PANEL_HEIGHT + PANEL_GAP);
        let bottom = top + PANEL_HEIGHT;
        let ys = panel
            .series
            .iter()
            .flat_map(|s| finite_points(s).map(|(_, y)| y));
        let (y_lo, y_hi, y_step) = axis(ys, true, 5);
        let sy = |y: f64| bottom - (y - y_lo) / (y_hi - y_lo) * PANEL_HEIGHT;
        let _ = writeln!(svg, r#"<g class="panel">"#);

        // Grid and y ticks.
        let mut y = y_lo;
        while y <= y_hi + y_step * 1e-6 {
            let py = sy(y);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                py + 4.0,
                tick_label(y, y_step)
            );
            y += y_step;
        }
        // x ticks.
        let mut x = x_lo;
        while x <= x_hi + x_step * 1e-6 {
            let px = sx(x);
            let _ = writeln!(
                svg,
                r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{bottom}" stroke="#f0f0f0"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                bottom + 16.0,
                tick_label(x, x_step)
            );
            x += x_step;
        }
        // Frame and y label.
        let _ = writeln!(
            svg,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="none" stroke="#808080"/>
<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"##,
            top + PANEL_HEIGHT / 2.0,
            top + PANEL_HEIGHT / 2.0,
            escape(&panel.y_label)
        );

        let mut drawn = 0;
        for (k, series) in panel.series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let points: Vec<(f64, f64)> = finite_points(series).collect();
            let dash = match series.stroke {
                Stroke::Solid => "",
                Stroke::Dashed => r#" stroke-dasharray="6 4""#,
            };
            if points.len() >= 2 {
                let coords: Vec<String> = points
                    .iter()
                    .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                    .collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
                    coords.join(" "),
                    escape(&series.name)
                );
            }
            if series.stroke == Stroke::Solid && points.len() <= MAX_DOTS || points.len() == 1 {
                for &(x, y) in &points {
                    let _ = writeln!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{}: {} at {}</title></circle>"#,
                        sx(x),
                        sy(y),
                        escape(&series.name),
                        tick_label(y, y_step / 100.0),
                        tick_label(x, x_step / 10.0)
                    );
                }
            }
            if !points.is_empty() {
                drawn += 1;
            }
            // Legend entry.
            let ly = top + 14.0 + k as f64 * 18.0;
            let lx = LEFT + plot_w + 14.0;
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{ly:.1}">{}</text>"#,
                ly - 4.0,
                lx + 22.0,
                ly - 4.0,
                lx + 28.0,
                escape(&series.name)
            );
        }
        if drawn == 0 {
            let _ = writeln!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#808080">no data</text>"##,
                LEFT + plot_w / 2.0,
                top + PANEL_HEIGHT / 2.0
            );
        }
        let _ = writeln!(svg, "</g>");
    }
    let last_bottom = TOP + panels as f64 * PANEL_HEIGHT + (panels - 1) as f64 * PANEL_GAP;
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>
</svg>"#,
        LEFT + plot_w / 2.0,
        last_bottom + 40.0,
        escape(&chart.x_label)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal well-formedness check: every tag closes in order, attributes are quoted,
    /// and no bare '&' or '<' is left in text.
    fn well_formed(svg: &str) -> Result<Vec<String>, String> {
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            if let Some(amp) = text.find('&') {
                let entity = &text[amp..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e))
                {
                    return Err(format!("bare & in {text:?}"));
                }
            }
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            rest = &rest[close + 1..];
            if tag.starts_with('?') {
                continue;
            }
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("odd quotes in <{tag}>"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                match stack.pop() {
                    Some(open) if open == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                let name = tag
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                seen.push(name.clone());
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
        }
        if stack.is_empty() {
            Ok(seen)
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    fn sample() -> Chart {
        Chart {
            title: "demo <app> & co".into(),
            x_label: "workers".into(),
            panels: vec![
                Panel {
                    y_label: "req/s".into(),
                    series: vec![Series::new(
                        "throughput",
                        vec![(1.0, 190.0), (2.0, 380.0), (3.0, 385.0), (4.0, 379.0)],
                    )],
                },
                Panel {
                    y_label: "ms".into(),
                    series: vec![
                        Series::new("p50", vec![(1.0, 5.2), (2.0, 5.3), (3.0, 7.0), (4.0, 10.1)]),
                        Series::new(
                            "p99",
                            vec![(1.0, 9.0), (2.0, 11.0), (3.0, 20.0), (4.0, 31.0)],
                        ),
                    ],
                },
                Panel {
                    y_label: "MB".into(),
                    series: vec![
                        Series::new("total PSS", vec![(1.0, 1.1), (2.0, 1.3), (4.0, 1.7)]),
                        Series::dashed("quota", vec![(1.0, 512.0), (4.0, 512.0)]),
                    ],
                },
            ],
        }
    }

    #[test]
    fn renders_well_formed_svg_with_every_series() {
        let svg = render(&sample());
        let tags = well_formed(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(svg.starts_with("<?xml"));
        assert!(svg.trim_end().ends_with("</svg>"));
        let count = |t: &str| tags.iter().filter(|n| *n == t).count();
        assert_eq!(count("svg"), 1);
        assert_eq!(count("g"), 3, "one group per panel");
        assert_eq!(count("polyline"), 5, "one line per series");
        // Dots on solid series only: 4 + 4 + 4 + 3.
        assert_eq!(count("circle"), 15);
        for label in [
            "throughput",
            "p50",
            "p99",
            "total PSS",
            "quota",
            "req/s",
            "workers",
        ] {
            assert!(svg.contains(&format!(">{label}<")), "{label} missing");
        }
        assert!(svg.contains("demo &lt;app&gt; &amp; co"));
        assert!(svg.contains(r#"stroke-dasharray="6 4""#));
    }

    #[test]
    fn each_panel_has_its_own_y_axis() {
        let svg = render(&sample());
        // Throughput up to 400, latency up to 35 (step 5 or 10), memory up to 600.
        assert!(svg.contains(">400<"), "{svg}");
        assert!(svg.contains(">600<"));
        assert!(svg.contains(">35<") || svg.contains(">40<"));
        // Whole x values get whole ticks.
        assert!(!svg.contains(">1.5<") && !svg.contains(">2.0<"));
        assert!(svg.contains(">3<"));
    }

    #[test]
    fn empty_and_degenerate_data() {
        let empty = Chart {
            title: "nothing".into(),
            x_label: "t".into(),
            panels: vec![Panel {
                y_label: "MB".into(),
                series: vec![Series::new(
                    "a",
                    vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)],
                )],
            }],
        };
        let svg = render(&empty);
        well_formed(&svg).unwrap();
        assert!(svg.contains("no data"));
        // No panel at all.
        well_formed(&render(&Chart::default())).unwrap();
        // One point: a dot, no line, a range around it.
        let one = Chart {
            panels: vec![Panel {
                y_label: "MB".into(),
                series: vec![Series::new("a", vec![(3.0, 7.0)])],
            }],
            ..Chart::default()
        };
        let svg = render(&one);
        let tags = well_formed(&svg).unwrap();
        assert_eq!(tags.iter().filter(|t| *t == "circle").count(), 1);
        assert!(!tags.iter().any(|t| t == "polyline"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn many_points_get_no_dots() {
        let points = (0..500).map(|i| (f64::from(i), f64::from(i % 7))).collect();
        let chart = Chart {
            panels: vec![Panel {
                y_label: "MB".into(),
                series: vec![Series::new("web.1", points)],
            }],
            ..Chart::default()
        };
        let tags = well_formed(&render(&chart)).unwrap();
        assert!(!tags.iter().any(|t| t == "circle"));
        assert_eq!(tags.iter().filter(|t| *t == "polyline").count(), 1);
    }

    #[test]
    fn nice_steps_and_labels() {
        let cases = [
            (10.0, 5, 2.0),
            (100.0, 5, 20.0),
            (7.0, 5, 2.0),
            (1.0, 4, 0.5),
            (0.3, 5, 0.1),
            (512.0, 5, 200.0),
            (3600.0, 8, 500.0),
        ];
        for (span, ticks, want) in cases {
            let got = nice_step(span, ticks);
            assert!((got - want).abs() < 1e-9, "{span}/{ticks}: {got}");
        }
        assert_eq!(nice_step(0.0, 5), 1.0);
        assert_eq!(nice_step(f64::NAN, 5), 1.0);
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(-0.0, 1.0), "0");
        assert_eq!(tick_label(400.0, 100.0), "400");
        assert_eq!(tick_label(2.5, 0.5), "2.5");
        assert_eq!(axis([1.0, 6.0].into_iter(), false, 5), (1.0, 6.0, 1.0));
        assert_eq!(axis([3.0, 7.0].into_iter(), true, 5), (0.0, 8.0, 2.0));
        assert_eq!(axis(std::iter::empty(), true, 5), (0.0, 1.0, 0.5));
    }

    #[test]
    fn control_characters_are_not_written() {
        assert_eq!(escape("a\u{1b}b\u{0}c"), "a b c");
        assert_eq!(escape("\"'"), "&quot;&apos;");
    }
}
