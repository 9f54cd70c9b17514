//! The `/stats` JSON as a text table, one column per transport: what `pushwire stats` prints.
use std::fmt::Write;

use serde_json::Value;

use super::Transport;

/// Renders a `/stats` document: the channel's figures when it names one (`?channel=c`), then the
/// transports as a table of per-message costs.
pub fn render_table(stats: &Value) -> String {
    let mut out = String::new();
    if stats["channel"].is_object() {
        out.push_str(&render_channel(&stats["channel"]));
        out.push_str("\nall channels, per transport:\n");
    }
    let columns: Vec<(&str, &Value)> = Transport::REPORTED
        .iter()
        .filter_map(|t| Some((t.name(), stats["transports"].get(t.name())?)))
        .collect();
    /// A row: its label, and how to compute a transport's cell.
    type Row<'a> = (&'a str, &'a dyn Fn(&Value) -> String);
    let rows: [Row; 17] = [
        ("connections", &|t| number(&t["connections"])),
        ("requests", &|t| number(&t["requests"])),
        ("messages delivered", &|t| number(&t["messages"])),
        ("empty answers", &|t| number(&t["empty"])),
        ("bytes out", &|t| number(&t["total_out"])),
        ("bytes in", &|t| number(&t["total_in"])),
        ("out bytes / message", &|t| {
            number(&t["derived"]["bytes_per_message_out"])
        }),
        ("  of which overhead", &|t| {
            number(&t["derived"]["overhead_per_message_out"])
        }),
        ("in bytes / message", &|t| {
            number(&t["derived"]["bytes_per_message_in"])
        }),
        ("requests / message", &|t| {
            number(&t["derived"]["requests_per_message"])
        }),
        ("payload efficiency", &|t| {
            number(&t["derived"]["payload_efficiency"])
        }),
        ("syscalls / message", &|t| {
            number(&t["derived"]["syscalls_per_message"])
        }),
        ("latency p50", &|t| latency(&t["latency_us"], "p50")),
        ("latency p99", &|t| latency(&t["latency_us"], "p99")),
        ("latency max", &|t| latency(&t["latency_us"], "max")),
        ("slow disconnects", &|t| number(&t["slow_disconnects"])),
        ("deflate ratio out", &|t| {
            number(&t["deflate"]["out"]["ratio"])
        }),
    ];
    let _ = write!(out, "{:<LABEL$}", "");
    for (name, _) in &columns {
        let _ = write!(out, " {name:>CELL$}");
    }
    out.push('\n');
    for (label, cell) in rows {
        let _ = write!(out, "{label:<LABEL$}");
        for (_, t) in &columns {
            let _ = write!(out, " {:>CELL$}", cell(t));
        }
        out.push('\n');
    }
    if let Some(uptime) = stats["uptime_s"].as_f64() {
        let _ = writeln!(
            out,
            "uptime {uptime:.1} s, {} connections open",
            number(&stats["connections_open"])
        );
    }
    out
}

/// Width of the row labels and of each transport's cell (cells are separated by a space more).
const LABEL: usize = 20;
const CELL: usize = 11;

/// The hub's figures for one channel (`"channel"` of `/stats?channel=c`).
fn render_channel(c: &Value) -> String {
    let mut out = String::new();
    let name = c["name"].as_str().unwrap_or("?");
    let _ = writeln!(out, "channel {name}:");
    let _ = writeln!(out, "{:<LABEL$}{}", "  last id", number(&c["last_id"]));
    let _ = writeln!(
        out,
        "{:<LABEL$}{} for resuming, {} bytes of payload",
        "  held",
        count(&c["held_messages"], "message"),
        number(&c["held_bytes"])
    );
    let by_transport = c["subscribers_by_transport"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(t, n)| format!("{t} {}", number(n)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{:<LABEL$}{} ({by_transport})",
        "  subscribers",
        number(&c["subscribers"])
    );
    out
}

/// `1 message`, `3 messages`.
fn count(v: &Value, noun: &str) -> String {
    match v.as_u64() {
        Some(1) => format!("1 {noun}"),
        _ => format!("{} {noun}s", number(v)),
    }
}

fn number(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::Number(n) => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

/// One latency figure of a `latency_us` object, with the unit that suits it: `-` when nothing was
/// delivered.
fn latency(lat: &Value, which: &str) -> String {
    if lat["count"].as_u64() == Some(0) {
        return "-".to_string();
    }
    match lat[which].as_u64() {
        Some(us) => duration_us(us),
        None => "-".to_string(),
    }
}

/// Microseconds in µs below a millisecond, in ms below a second, in s above: three significant
/// figures at most, so a cell stays narrow whatever the magnitude.
pub fn duration_us(us: u64) -> String {
    let three_figures = |v: f64, unit: &str| {
        if v < 10.0 {
            format!("{v:.2} {unit}")
        } else if v < 100.0 {
            format!("{v:.1} {unit}")
        } else {
            format!("{v:.0} {unit}")
        }
    };
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => three_figures(us as f64 / 1e3, "ms"),
        _ => three_figures(us as f64 / 1e6, "s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Category, Counter, Ledger};

    #[test]
    fn renders_one_column_per_transport() {
        let mut ledger = Ledger::new();
        ledger.outbound(Transport::Sse, Category::Payload, 64);
        ledger.outbound(Transport::Sse, Category::SseFields, 36);
        ledger.count(Transport::Sse, Counter::Messages, 2);
        let stats = serde_json::json!({
            "uptime_s": 1.5,
            "connections_open": 1,
            "transports": {"sse": ledger.get(Transport::Sse).unwrap().to_json()},
        });
        let table = render_table(&stats);
        assert!(table.lines().next().unwrap().ends_with("sse"), "{table}");
        let row = |label: &str| {
            table
                .lines()
                .find(|l| l.starts_with(label))
                .unwrap()
                .to_string()
        };
        assert!(row("out bytes / message").ends_with(" 50.00"), "{table}");
        assert!(row("  of which overhead").ends_with(" 18.00"), "{table}");
        // Nothing delivered with a latency yet: no figure, not a zero.
        assert!(row("latency p50").ends_with(" -"), "{table}");
    }

    #[test]
    fn latency_cells_carry_their_unit_and_stay_apart() {
        // The figures that ran together as `290047/9103355447/…` in one cell.
        let stats = serde_json::json!({
            "transports": {
                "poll": {"latency_us": {"count": 9, "p50": 290_047, "p99": 9_103_355_447u64, "max": 56_565_751_854u64}},
                "sse": {"latency_us": {"count": 9, "p50": 85, "p99": 2_308_095, "max": 999}},
            },
        });
        let table = render_table(&stats);
        let cells = |label: &str| -> Vec<String> {
            let line = table.lines().find(|l| l.starts_with(label)).unwrap();
            line[LABEL..]
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        };
        assert_eq!(cells("latency p50"), ["290 ms", "85 µs"], "{table}");
        assert_eq!(cells("latency p99"), ["9103 s", "2.31 s"], "{table}");
        assert_eq!(cells("latency max"), ["56566 s", "999 µs"], "{table}");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration_us(0), "0 µs");
        assert_eq!(duration_us(999), "999 µs");
        assert_eq!(duration_us(1_000), "1.00 ms");
        assert_eq!(duration_us(12_345), "12.3 ms");
        assert_eq!(duration_us(999_499), "999 ms");
        assert_eq!(duration_us(1_500_000), "1.50 s");
        assert_eq!(duration_us(290_047_000), "290 s");
    }

    #[test]
    fn a_named_channel_comes_first_with_its_own_figures() {
        let stats = serde_json::json!({
            "transports": {},
            "channel": {
                "name": "news", "last_id": 7, "held_messages": 3, "held_bytes": 15, "subscribers": 3,
                "subscribers_by_transport": {"longpoll": 1, "sse": 2, "ws": 0},
            },
        });
        let table = render_table(&stats);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "channel news:", "{table}");
        assert!(
            lines[1].starts_with("  last id") && lines[1].ends_with(" 7"),
            "{table}"
        );
        assert!(
            lines[2].ends_with(" 3 messages for resuming, 15 bytes of payload"),
            "{table}"
        );
        assert!(
            lines[3].ends_with(" 3 (longpoll 1, sse 2, ws 0)"),
            "{table}"
        );
        assert_eq!(lines[5], "all channels, per transport:", "{table}");
    }
}
