//! Hand-written SVG charts for `compare --svg`: bars of bytes per message (payload and overhead)
//! and latency per transport, or, for a sweep, overhead per message against the swept value.
use std::fmt::Write;

use super::compare::Report;

const COLORS: [&str; 4] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];

fn header(w: u32, h: u32, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        w / 2,
        escape(title)
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One run: bytes down per message (payload + overhead stacked) and latency p50/p99.
pub fn single(r: &Report) -> String {
    let (w, h) = (760u32, 360u32);
    let mut s = header(
        w,
        h,
        &format!("pushwire compare: {} B payload at {}/s", r.payload, r.rate),
    );
    let panel = |s: &mut String,
                 x0: f64,
                 title: &str,
                 values: Vec<(String, f64, f64)>,
                 unit: &str| {
        let (pw, ph, top) = (330.0, 250.0, 60.0);
        let max = values.iter().map(|v| v.1 + v.2).fold(1.0, f64::max);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"45\" text-anchor=\"middle\">{}</text>",
            x0 + pw / 2.0,
            escape(title)
        );
        let bw = pw / values.len() as f64 * 0.6;
        for (i, (label, a, b)) in values.iter().enumerate() {
            let x = x0 + (i as f64 + 0.2) * pw / values.len() as f64;
            let ha = a / max * ph;
            let hb = b / max * ph;
            let base = top + ph;
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{ha:.1}\" fill=\"{}\"/>",
                base - ha,
                COLORS[0]
            );
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{hb:.1}\" fill=\"{}\"/>",
                base - ha - hb,
                COLORS[1]
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0}{unit}</text>",
                x + bw / 2.0,
                base - ha - hb - 4.0,
                a + b
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                base + 16.0,
                escape(label)
            );
        }
    };
    let bytes = r
        .columns
        .iter()
        .map(|c| {
            (
                c.transport.name().to_string(),
                c.down_payload_per_message,
                c.down_overhead_per_message,
            )
        })
        .collect();
    panel(
        &mut s,
        20.0,
        "bytes down per message: payload (blue), overhead (orange)",
        bytes,
        "",
    );
    let lat = r
        .columns
        .iter()
        .map(|c| {
            let p50 = c.latency_us.p50 as f64 / 1000.0;
            let p99 = c.latency_us.p99 as f64 / 1000.0;
            (c.transport.name().to_string(), p50, (p99 - p50).max(0.0))
        })
        .collect();
    panel(
        &mut s,
        400.0,
        "latency ms: p50 (blue), to p99 (orange)",
        lat,
        "",
    );
    s.push_str("</svg>\n");
    s
}

/// A sweep: overhead bytes per message (left) and latency p50 (right) against the swept value, one
/// line per transport.
pub fn sweep(axis: &str, reports: &[(f64, Report)]) -> String {
    let (w, h) = (760u32, 380u32);
    let mut s = header(w, h, &format!("pushwire compare: sweep over {axis}"));
    let names: Vec<&str> = reports
        .first()
        .map(|(_, r)| r.columns.iter().map(|c| c.transport.name()).collect())
        .unwrap_or_default();
    let plot = |s: &mut String, x0: f64, title: &str, get: &dyn Fn(&Report, usize) -> f64| {
        let (pw, ph, top) = (300.0, 240.0, 60.0);
        let max = reports
            .iter()
            .flat_map(|(_, r)| (0..r.columns.len()).map(move |i| get(r, i)))
            .fold(1.0, f64::max);
        let n = reports.len().max(2) as f64 - 1.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"45\" text-anchor=\"middle\">{}</text>",
            x0 + pw / 2.0,
            escape(title)
        );
        let _ = writeln!(
            s,
            "<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>",
            top + ph,
            x0 + pw,
            top + ph
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\">{max:.0}</text>",
            x0 - 18.0,
            top + 4.0
        );
        for (i, (v, _)) in reports.iter().enumerate() {
            let x = x0 + i as f64 / n * pw;
            let _ = writeln!(
                s,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v}</text>",
                top + ph + 16.0
            );
        }
        for (t, name) in names.iter().enumerate() {
            let points: Vec<String> = reports
                .iter()
                .enumerate()
                .map(|(i, (_, r))| {
                    format!(
                        "{:.1},{:.1}",
                        x0 + i as f64 / n * pw,
                        top + ph - get(r, t) / max * ph
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                COLORS[t % 4],
                points.join(" ")
            );
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"{}\">{name}</text>",
                x0 + pw + 4.0,
                top + 14.0 * t as f64 + 10.0,
                COLORS[t % 4]
            );
        }
    };
    plot(
        &mut s,
        40.0,
        "overhead bytes per message (down + up)",
        &|r, i| r.columns[i].down_overhead_per_message + r.columns[i].up_per_message,
    );
    plot(&mut s, 420.0, "latency p50, ms", &|r, i| {
        r.columns[i].latency_us.p50 as f64 / 1000.0
    });
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        w / 2,
        h - 12,
        escape(axis)
    );
    s.push_str("</svg>\n");
    s
}
