//! One transport's figures and what can be derived from them.
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{ByCategory, Category, Counter};

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// Compressed WebSocket messages (permessage-deflate) in one direction: how many, their payload
/// bytes on the wire and what those inflate to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deflated {
    /// Compressed messages.
    pub messages: u64,
    /// Payload bytes as sent (category `ws_compressed`).
    pub compressed: u64,
    /// The same messages uncompressed (JSON envelope included for channel messages).
    pub uncompressed: u64,
}

impl Deflated {
    fn to_json(self) -> Value {
        json!({
            "messages": self.messages,
            "compressed_bytes": self.compressed,
            "uncompressed_bytes": self.uncompressed,
            "compressed_per_message": per(self.compressed, self.messages),
            "uncompressed_per_message": per(self.uncompressed, self.messages),
            "ratio": if self.uncompressed == 0 { Value::Null } else {
                json!((self.compressed as f64 / self.uncompressed as f64 * 10_000.0).round() / 10_000.0)
            },
        })
    }
}

#[derive(Debug)]
pub struct TransportStats {
    pub bytes_in: ByCategory,
    pub bytes_out: ByCategory,
    pub connections: u64,
    pub requests: u64,
    pub responses: u64,
    pub messages: u64,
    pub empty: u64,
    pub resumes: u64,
    pub slow_disconnects: u64,
    pub read_syscalls: u64,
    pub write_syscalls: u64,
    /// Compressed messages sent.
    pub deflate_out: Deflated,
    /// Compressed messages received.
    pub deflate_in: Deflated,
    latency: Histogram<u64>,
}

impl Default for TransportStats {
    fn default() -> Self {
        TransportStats {
            bytes_in: [0; Category::COUNT],
            bytes_out: [0; Category::COUNT],
            connections: 0,
            requests: 0,
            responses: 0,
            messages: 0,
            empty: 0,
            resumes: 0,
            slow_disconnects: 0,
            read_syscalls: 0,
            write_syscalls: 0,
            deflate_out: Deflated::default(),
            deflate_in: Deflated::default(),
            // 1 µs to 1 hour at 3 significant digits; the bounds are valid constants.
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
        }
    }
}

fn total(bytes: &ByCategory) -> u64 {
    bytes.iter().sum()
}

/// `num / den`, or null when nothing was delivered.
fn per(num: u64, den: u64) -> Value {
    if den == 0 {
        Value::Null
    } else {
        json!((num as f64 / den as f64 * 100.0).round() / 100.0)
    }
}

impl TransportStats {
    pub(super) fn add(&mut self, counter: Counter, n: u64) {
        let field = match counter {
            Counter::Connections => &mut self.connections,
            Counter::Requests => &mut self.requests,
            Counter::Responses => &mut self.responses,
            Counter::Messages => &mut self.messages,
            Counter::Empty => &mut self.empty,
            Counter::Resumes => &mut self.resumes,
            Counter::SlowDisconnects => &mut self.slow_disconnects,
            Counter::ReadSyscalls => &mut self.read_syscalls,
            Counter::WriteSyscalls => &mut self.write_syscalls,
        };
        *field += n;
    }

    pub(super) fn record_latency(&mut self, micros: u64) {
        self.latency.saturating_record(micros.max(1));
    }

    pub fn latency(&self) -> LatencySummary {
        let h = &self.latency;
        LatencySummary {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }

    pub fn total_in(&self) -> u64 {
        total(&self.bytes_in)
    }

    pub fn total_out(&self) -> u64 {
        total(&self.bytes_out)
    }

    /// The figures as JSON, with the derived per-message costs.
    pub fn to_json(&self) -> Value {
        let by_category = |bytes: &ByCategory| -> Value {
            Category::ALL
                .iter()
                .map(|c| (c.name().to_string(), json!(bytes[c.index()])))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let payload_out = self.bytes_out[Category::Payload.index()];
        let payload_in = self.bytes_in[Category::Payload.index()];
        let (out, inb) = (self.total_out(), self.total_in());
        let all = out + inb;
        let lat = self.latency();
        let m = self.messages;
        json!({
            "bytes_in": by_category(&self.bytes_in),
            "bytes_out": by_category(&self.bytes_out),
            "total_in": inb,
            "total_out": out,
            "connections": self.connections,
            "requests": self.requests,
            "responses": self.responses,
            "messages": m,
            "empty": self.empty,
            "resumes": self.resumes,
            "slow_disconnects": self.slow_disconnects,
            "read_syscalls": self.read_syscalls,
            "write_syscalls": self.write_syscalls,
            "deflate": { "out": self.deflate_out.to_json(), "in": self.deflate_in.to_json() },
            "latency_us": {
                "count": lat.count, "p50": lat.p50, "p90": lat.p90, "p99": lat.p99, "max": lat.max,
            },
            "derived": {
                "bytes_per_message_out": per(out, m),
                "overhead_per_message_out": per(out - payload_out, m),
                "payload_per_message_out": per(payload_out, m),
                "bytes_per_message_in": per(inb, m),
                "overhead_per_message_in": per(inb - payload_in, m),
                "requests_per_message": per(self.requests, m),
                "payload_efficiency": if all == 0 { Value::Null } else {
                    json!(((payload_out + payload_in) as f64 / all as f64 * 10_000.0).round() / 10_000.0)
                },
                "syscalls_per_message": per(self.read_syscalls + self.write_syscalls, m),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_derives_costs_per_message_from_both_directions() {
        let mut s = TransportStats::default();
        s.bytes_out[Category::Payload.index()] = 30;
        s.bytes_out[Category::JsonEnvelope.index()] = 10;
        s.bytes_in[Category::RequestHead.index()] = 50;
        s.bytes_in[Category::Payload.index()] = 10;
        s.add(Counter::Messages, 2);
        s.add(Counter::Requests, 2);
        let j = s.to_json();
        assert_eq!(j["total_out"], 40);
        assert_eq!(j["total_in"], 60);
        let d = &j["derived"];
        // (30 + 10) payload bytes of 100 that crossed the socket.
        assert_eq!(d["payload_efficiency"], 0.4);
        assert_eq!(d["bytes_per_message_out"], 20.0);
        assert_eq!(d["overhead_per_message_out"], 5.0);
        assert_eq!(d["overhead_per_message_in"], 25.0);
        assert_eq!(d["requests_per_message"], 1.0);
        assert_eq!(
            TransportStats::default().to_json()["derived"]["payload_efficiency"],
            Value::Null
        );
    }
}
