//! The `/stats` JSON as a text table, one column per transport: what `pushwire stats` prints.
use std::fmt::Write;

use serde_json::Value;

use super::Transport;

/// Renders the transports of a `/stats` document as a table of per-message costs.
pub fn render_table(stats: &Value) -> String {
    let columns: Vec<(&str, &Value)> = Transport::REPORTED
        .iter()
        .filter_map(|t| Some((t.name(), stats["transports"].get(t.name())?)))
        .collect();
    let number = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::Number(n) => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    };
    /// A row: its label, and how to compute a transport's cell.
    type Row<'a> = (&'a str, &'a dyn Fn(&Value) -> String);
    let rows: [Row; 14] = [
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
        ("latency p50/p99 µs", &|t| {
            format!(
                "{}/{}",
                number(&t["latency_us"]["p50"]),
                number(&t["latency_us"]["p99"])
            )
        }),
        ("slow disconnects", &|t| number(&t["slow_disconnects"])),
    ];
    let mut out = String::new();
    let _ = write!(out, "{:<20}", "");
    for (name, _) in &columns {
        let _ = write!(out, "{name:>12}");
    }
    out.push('\n');
    for (label, cell) in rows {
        let _ = write!(out, "{label:<20}");
        for (_, t) in &columns {
            let _ = write!(out, "{:>12}", cell(t));
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
    }
}
