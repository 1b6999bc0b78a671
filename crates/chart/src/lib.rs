//! Charts of simulated and actual replicas as SVG: the replica lines of one or more
//! simulations over the same history ([`promhpa_hpa::simulate`]), a strip saying why the
//! first run's line moved or stayed, and one panel per metric with its target.

use std::fmt::Write as _;

use promhpa_core::time::format_rfc3339;
use promhpa_hpa::simulate::{is_per_pod, is_utilization, MetricPoint, Tick};
use promhpa_hpa::spec::MetricSpec;

/// A chart line: legend name, colour, points, drawn as steps.
type ChartLine<'a> = (String, &'a str, Vec<(i64, f64)>, bool);

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG chart: actual vs simulated replicas (top), metric vs target (bottom).
pub fn to_svg(ticks: &[Tick], title: &str) -> String {
    to_svg_runs(&[("simulated", ticks)], title)
}

const PALETTE: [(&str, &str); 4] = [
    ("#d62728", "#1f77b4"),
    ("#9467bd", "#17becf"),
    ("#ff7f0e", "#8c564b"),
    ("#e377c2", "#bcbd22"),
];

/// An SVG chart of several simulations over the same history (for example two `behavior`
/// settings): actual and each run's replicas (top), recorded metric, each run's metric and
/// the target (bottom). The first run gives the actual replicas, metric and target.
pub fn to_svg_runs(runs: &[(&str, &[Tick])], title: &str) -> String {
    to_svg_named(runs, title, &[])
}

/// [`to_svg_runs`] with one metric panel per metric of the spec, each labelled with its
/// name from `metric_names` (in spec order; "metric N" where none is given).
pub fn to_svg_named(runs: &[(&str, &[Tick])], title: &str, metric_names: &[String]) -> String {
    let metrics: Vec<ChartMetric> = metric_names
        .iter()
        .map(|n| ChartMetric {
            name: n.clone(),
            unit: String::new(),
        })
        .collect();
    to_svg_chart(runs, title, &metrics)
}

/// A metric panel's title and the unit of its values (its y axis).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartMetric {
    pub name: String,
    pub unit: String,
}

impl ChartMetric {
    /// The panel of one `spec.metrics` entry: its controller name, and its unit from the
    /// target type (percent of request for utilization, per pod for averages).
    pub fn of(m: &MetricSpec) -> ChartMetric {
        let unit = if is_utilization(m) {
            "% of request"
        } else if is_per_pod(m) {
            "per pod"
        } else {
            match m.external.as_ref().map(|e| e.target.kind.as_str()) {
                Some("AverageValue") => "total over all pods' share",
                _ => "value",
            }
        };
        ChartMetric {
            name: promhpa_hpa::calc::metric_name(m),
            unit: unit.to_string(),
        }
    }
}

/// What a reason code of a tick means on the chart, and its colour.
fn reason_label(reason: &str) -> Option<(&'static str, &'static str)> {
    Some(match reason {
        "ScaleDownStabilized" => ("stabilization window holds a scale-down", "#f2c14e"),
        "ScaleUpStabilized" => ("stabilization window holds a scale-up", "#f7dc9c"),
        "ScaleUpLimit" | "ScaleDownLimit" => ("rate limit (scaling policies)", "#e07a5f"),
        "TooManyReplicas" => ("clamped at maxReplicas", "#b5179e"),
        "TooFewReplicas" => ("clamped at minReplicas", "#7b9acc"),
        "ScalingDisabled" => ("target at zero, HPA disabled", "#555555"),
        "" => return None,
        _ => ("metrics could not be computed", "#999999"),
    })
}

/// A chart of several simulations over the same history: actual and each run's replicas
/// (top) above a strip saying why the first run's replica line moved or stayed (the
/// metric that drove each step, stabilization holding a scale-down, a rate limit, the
/// min/max clamp), then one panel per metric with its unit.
pub fn to_svg_chart(runs: &[(&str, &[Tick])], title: &str, metric_info: &[ChartMetric]) -> String {
    let ticks: &[Tick] = runs.first().map(|r| r.1).unwrap_or(&[]);
    let n_metrics = 1 + ticks.first().map_or(0, |t| t.more_metrics.len());
    const W: f64 = 1000.0;
    const PANEL_H: f64 = 220.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 20.0;
    const TOP: f64 = 40.0;
    const GAP: f64 = 50.0;
    const STRIP_GAP: f64 = 70.0;
    let h = TOP + (PANEL_H + GAP) * (1 + n_metrics) as f64 + STRIP_GAP + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#,
        esc(title)
    );
    if ticks.is_empty() {
        s.push_str("</svg>\n");
        return s;
    }
    let t0 = ticks[0].timestamp_ms as f64;
    let t1 = (ticks[ticks.len() - 1].timestamp_ms as f64).max(t0 + 1.0);
    let x = |t: i64| LEFT + (t as f64 - t0) / (t1 - t0) * (W - LEFT - RIGHT);
    let panel = |s: &mut String,
                 top: f64,
                 label: &str,
                 unit: &str,
                 lines: &[ChartLine],
                 whole: bool| {
        let maxv = lines
            .iter()
            .flat_map(|l| l.2.iter().map(|p| p.1))
            .fold(0.0f64, f64::max);
        let maxv = if maxv <= 0.0 {
            if whole {
                4.0
            } else {
                1.0
            }
        } else if whole {
            // Whole numbers (replica counts) on every grid line.
            (maxv * 1.1 / 4.0).ceil().max(1.0) * 4.0
        } else {
            nice_ceil(maxv * 1.1)
        };
        let y = |v: f64| top + PANEL_H - v / maxv * PANEL_H;
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{}" height="{PANEL_H}" fill="none" stroke="#999"/>"##,
            W - LEFT - RIGHT
        );
        for k in 0..=4 {
            let v = maxv * f64::from(k) / 4.0;
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                W - RIGHT,
                LEFT - 5.0,
                yy + 4.0,
                fmt_num(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" >{}</text>"#,
            top - 6.0,
            esc(label)
        );
        if !unit.is_empty() {
            let (ux, uy) = (14.0, top + PANEL_H / 2.0);
            let _ = writeln!(
                s,
                r##"<text x="{ux}" y="{uy:.1}" transform="rotate(-90 {ux} {uy:.1})" text-anchor="middle" fill="#444">{}</text>"##,
                esc(unit)
            );
        }
        let mut lx = W - RIGHT - 10.0;
        for (name, color, pts, step) in lines.iter().rev() {
            if pts.is_empty() {
                continue;
            }
            let mut d = String::new();
            let mut prev: Option<f64> = None;
            for (t, v) in pts {
                let (xx, yy) = (x(*t), y(*v));
                match prev {
                    None => {
                        let _ = write!(d, "M{xx:.1},{yy:.1}");
                    }
                    Some(py) if *step => {
                        let _ = write!(d, " L{xx:.1},{py:.1} L{xx:.1},{yy:.1}");
                    }
                    Some(_) => {
                        let _ = write!(d, " L{xx:.1},{yy:.1}");
                    }
                }
                prev = Some(yy);
            }
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.8"/>"#
            );
            lx -= 8.0 * name.len() as f64 + 24.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx:.0}" x2="{:.0}" y1="{:.0}" y2="{:.0}" stroke="{color}" stroke-width="3"/><text x="{:.0}" y="{:.0}">{}</text>"#,
                lx + 14.0,
                top - 10.0,
                top - 10.0,
                lx + 18.0,
                top - 6.0,
                esc(name)
            );
        }
    };
    let series = |f: &dyn Fn(&Tick) -> Option<f64>, ticks: &[Tick]| -> Vec<(i64, f64)> {
        ticks
            .iter()
            .filter_map(|t| f(t).map(|v| (t.timestamp_ms, v)))
            .collect()
    };
    let mut replica_lines: Vec<ChartLine> = vec![(
        "actual".into(),
        "#888888",
        series(&|t| t.actual_replicas, ticks),
        true,
    )];
    for (i, (label, run)) in runs.iter().enumerate() {
        let (c1, _) = PALETTE[i % PALETTE.len()];
        replica_lines.push((
            (*label).to_string(),
            c1,
            series(&|t| Some(f64::from(t.simulated_replicas)), run),
            true,
        ));
    }
    panel(
        &mut s,
        TOP + 10.0,
        "replicas",
        "replicas (pods)",
        &replica_lines,
        true,
    );
    let strip_top = TOP + 10.0 + PANEL_H + 24.0;
    why_strip(&mut s, ticks, metric_info, &x, (TOP + 10.0, strip_top), W);
    let mut top2 = TOP + 10.0 + STRIP_GAP;
    for k in 0..n_metrics {
        // The k-th metric's recorded, simulated and target figures of a tick.
        let point = move |t: &Tick| -> MetricPoint {
            if k == 0 {
                MetricPoint {
                    recorded: t.metric,
                    simulated: t.simulated_metric,
                    target: t.target,
                }
            } else {
                t.more_metrics.get(k - 1).copied().unwrap_or_default()
            }
        };
        let mut lines: Vec<ChartLine> = vec![(
            "recorded".into(),
            "#888888",
            series(&|t| point(t).recorded, ticks),
            false,
        )];
        for (i, (label, run)) in runs.iter().enumerate() {
            let (_, c2) = PALETTE[i % PALETTE.len()];
            lines.push((
                (*label).to_string(),
                c2,
                series(&|t| point(t).simulated, run),
                false,
            ));
        }
        lines.push((
            "target".into(),
            "#2ca02c",
            series(&|t| point(t).target, ticks),
            false,
        ));
        let name = metric_info
            .get(k)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| {
                if n_metrics == 1 {
                    "metric".to_string()
                } else {
                    format!("metric {}", k + 1)
                }
            });
        let unit = metric_info.get(k).map_or("", |m| m.unit.as_str());
        top2 += PANEL_H + GAP;
        panel(&mut s, top2, &name, unit, &lines, false);
    }
    let (t0_ms, t1_ms) = (t0 as i64, t1 as i64);
    let every = time_tick_ms(t1_ms - t0_ms);
    let mut t = t0_ms.div_euclid(every) * every;
    if t < t0_ms {
        t += every;
    }
    while t <= t1_ms {
        let xx = x(t);
        let label = format_rfc3339(t);
        let short = if t1_ms - t0_ms > 86_400_000 {
            format!(
                "{} {}",
                label.get(5..10).unwrap_or(""),
                label.get(11..16).unwrap_or("")
            )
        } else if every < 60_000 {
            label.get(11..19).unwrap_or(&label).to_string()
        } else {
            label.get(11..16).unwrap_or(&label).to_string()
        };
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{short}</text>"##,
            top2 + PANEL_H,
            top2 + PANEL_H + 4.0,
            top2 + PANEL_H + 16.0
        );
        t += every;
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#666">time (UTC), {} .. {}</text>"##,
        top2 + PANEL_H + 34.0,
        format_rfc3339(t0 as i64),
        format_rfc3339(t1 as i64)
    );
    s.push_str("</svg>\n");
    s
}

/// The strip under the replicas panel: one coloured cell per tick whose outcome was held or
/// limited, a legend of the reasons present, and at each step of the replica line a label
/// with the new count and the metric that asked for it.
fn why_strip(
    s: &mut String,
    ticks: &[Tick],
    metric_info: &[ChartMetric],
    x: &dyn Fn(i64) -> f64,
    (panel_top, top): (f64, f64),
    width: f64,
) {
    const STRIP_H: f64 = 14.0;
    const PANEL_H: f64 = 220.0;
    let _ = writeln!(
        s,
        r##"<text x="14" y="{:.1}" fill="#444">why</text>"##,
        top + STRIP_H - 3.0
    );
    let mut present: Vec<(&str, &str)> = Vec::new();
    for (i, t) in ticks.iter().enumerate() {
        let Some((label, color)) = reason_label(&t.reason) else {
            continue;
        };
        let x0 = x(t.timestamp_ms);
        let x1 = ticks.get(i + 1).map_or(x0 + 2.0, |n| x(n.timestamp_ms));
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{top:.1}" width="{:.1}" height="{STRIP_H}" fill="{color}"><title>{}</title></rect>"#,
            (x1 - x0).max(1.0),
            esc(&t.reason)
        );
        if !present.iter().any(|(l, _)| *l == label) {
            present.push((label, color));
        }
    }
    let mut lx = 70.0;
    let ly = top + STRIP_H + 16.0;
    for (label, color) in &present {
        let _ = writeln!(
            s,
            r#"<rect x="{lx:.0}" y="{:.0}" width="12" height="10" fill="{color}"/><text x="{:.0}" y="{ly:.0}">{}</text>"#,
            ly - 9.0,
            lx + 16.0,
            esc(label)
        );
        lx += 7.0 * label.len() as f64 + 34.0;
        if lx > width - 150.0 {
            break;
        }
    }
    // Step labels on the replicas panel, skipped where they would overlap the previous.
    let max_replicas = ticks
        .iter()
        .map(|t| t.simulated_replicas)
        .chain(
            ticks
                .iter()
                .filter_map(|t| t.actual_replicas.map(|a| a.ceil() as i32)),
        )
        .max()
        .unwrap_or(0);
    let scale = if max_replicas <= 0 {
        4.0
    } else {
        (f64::from(max_replicas) * 1.1 / 4.0).ceil().max(1.0) * 4.0
    };
    let mut last_x = f64::MIN;
    for w in ticks.windows(2) {
        let (prev, t) = (&w[0], &w[1]);
        if t.simulated_replicas == prev.simulated_replicas {
            continue;
        }
        let xx = x(t.timestamp_ms);
        if xx - last_x < 90.0 {
            continue;
        }
        last_x = xx;
        let by = match t.driver {
            Some(i) => short_metric(metric_info, i),
            None => String::new(),
        };
        let why = match (t.reason.as_str(), by.is_empty()) {
            ("", true) => String::new(),
            ("", false) => format!(" by {by}"),
            (r, true) => format!(" ({r})"),
            (r, false) => format!(" by {by} ({r})"),
        };
        let arrow = if t.simulated_replicas > prev.simulated_replicas {
            "▲"
        } else {
            "▼"
        };
        let yy = panel_top + PANEL_H - f64::from(t.simulated_replicas) / scale * PANEL_H;
        let yy = (yy - 6.0).max(panel_top + 12.0);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{yy:.1}" font-size="10" fill="#333">{arrow}{}{}</text>"##,
            xx + 3.0,
            t.simulated_replicas,
            esc(&why)
        );
    }
}

/// A metric's name short enough for a label on the chart.
fn short_metric(metric_info: &[ChartMetric], i: usize) -> String {
    let name = metric_info
        .get(i)
        .map(|m| m.name.as_str())
        .unwrap_or_default();
    let name = name.split('(').next().unwrap_or(name).trim();
    // `cpu resource utilization`, `memory resource`: the resource; `pods metric x`: x.
    let name = if name.contains(" resource") {
        name.split(' ').next().unwrap_or(name)
    } else {
        name.rsplit(' ').next().unwrap_or(name)
    };
    if name.is_empty() {
        format!("metric {}", i + 1)
    } else {
        name.to_string()
    }
}

/// The spacing of time-axis labels: a round interval giving at most eight labels.
fn time_tick_ms(span_ms: i64) -> i64 {
    const STEPS_S: [i64; 19] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
        86_400, 604_800,
    ];
    STEPS_S
        .iter()
        .map(|s| s * 1000)
        .find(|every| span_ms / every <= 8)
        .unwrap_or_else(|| (span_ms / 8).max(1))
}

fn nice_ceil(v: f64) -> f64 {
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_resource_or_the_metric() {
        let info = [
            ChartMetric {
                name: "cpu resource utilization (percentage of request)".into(),
                unit: String::new(),
            },
            ChartMetric {
                name: "pods metric queue_depth".into(),
                unit: String::new(),
            },
            ChartMetric::default(),
        ];
        assert_eq!(short_metric(&info, 0), "cpu");
        assert_eq!(short_metric(&info, 1), "queue_depth");
        assert_eq!(short_metric(&info, 2), "metric 3");
        assert_eq!(short_metric(&info, 7), "metric 8");
    }

    #[test]
    fn axes_use_round_steps() {
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(12.0), 20.0);
        assert_eq!(nice_ceil(230.0), 250.0);
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(2.5), "2.50");
        assert_eq!(time_tick_ms(240_000), 30_000);
        assert_eq!(time_tick_ms(86_400_000), 10_800_000);
        assert_eq!(esc("a<b & c>"), "a&lt;b &amp; c&gt;");
    }
}
