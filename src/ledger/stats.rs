//! One transport's figures and what can be derived from them.
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{ByCategory, Category, Counter};

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// Deliveries measured; every percentile is 0 when it is 0.
    pub count: u64,
    /// Median publish-to-first-byte latency, µs (3 significant digits).
    pub p50: u64,
    /// 90th percentile latency, µs.
    pub p90: u64,
    /// 99th percentile latency, µs.
    pub p99: u64,
    /// Largest latency recorded, µs (to the histogram's 3 significant digits).
    pub max: u64,
}

/// Compressed WebSocket messages (permessage-deflate) in one direction: how many, their payload
/// bytes on the wire and what those inflate to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deflated {
    /// Compressed messages counted.
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

/// The largest latency the ledger tells apart: an hour, in µs (longer is counted as an hour).
const MAX_LATENCY_MICROS: u64 = 3_600_000_000;

/// Everything the ledger knows about one transport: bytes each way by category, the
/// [`Counter`]s, and a latency histogram (1 µs to 1 h, 3 significant digits, growing to the largest value).
#[derive(Debug, Clone)]
pub struct TransportStats {
    /// Bytes read from clients, indexed by [`Category::index`].
    pub bytes_in: ByCategory,
    /// Bytes written to clients, indexed by [`Category::index`].
    pub bytes_out: ByCategory,
    /// [`Counter::Connections`]: connections routed to this transport.
    pub connections: u64,
    /// [`Counter::Requests`]: request heads read.
    pub requests: u64,
    /// [`Counter::Responses`]: responses queued, a stream's counted once.
    pub responses: u64,
    /// [`Counter::Messages`]: messages delivered to subscribers.
    /// Compressed messages counted.
    pub messages: u64,
    /// [`Counter::Empty`]: answers that carried no message.
    pub empty: u64,
    /// [`Counter::Resumes`]: requests and streams that resumed from an id.
    pub resumes: u64,
    /// [`Counter::SlowDisconnects`]: stream subscribers cut off for falling behind.
    pub slow_disconnects: u64,
    /// [`Counter::ReadSyscalls`]: `read` calls.
    pub read_syscalls: u64,
    /// [`Counter::WriteSyscalls`]: `write` calls, successful or not.
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
            // 3 significant digits, growing to the largest value recorded (at most an hour, see
            // `record_latency`): a fixed hour-wide histogram is 188 KB per transport, copied each
            // time `/stats` sums the loops' ledgers; one that grows to 100 ms is a third of that.
            latency: Histogram::new(3).expect("valid precision"),
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

    /// Adds everything `other` counted (another event loop's share) to these totals.
    pub(super) fn merge(&mut self, other: &TransportStats) {
        for (mine, theirs) in self.bytes_in.iter_mut().zip(other.bytes_in) {
            *mine += theirs;
        }
        for (mine, theirs) in self.bytes_out.iter_mut().zip(other.bytes_out) {
            *mine += theirs;
        }
        self.connections += other.connections;
        self.requests += other.requests;
        self.responses += other.responses;
        self.messages += other.messages;
        self.empty += other.empty;
        self.resumes += other.resumes;
        self.slow_disconnects += other.slow_disconnects;
        self.read_syscalls += other.read_syscalls;
        self.write_syscalls += other.write_syscalls;
        for (mine, theirs) in [
            (&mut self.deflate_out, other.deflate_out),
            (&mut self.deflate_in, other.deflate_in),
        ] {
            mine.messages += theirs.messages;
            mine.compressed += theirs.compressed;
            mine.uncompressed += theirs.uncompressed;
        }
        // Same bounds on both sides, so adding cannot fail; a failure would only lose latency
        // samples of a report, never a count.
        let _ = self.latency.add(&other.latency);
    }

    pub(super) fn record_latency(&mut self, micros: u64) {
        self.latency
            .saturating_record(micros.clamp(1, MAX_LATENCY_MICROS));
    }

    /// Percentiles of publish-to-first-byte latency over every delivery so far.
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

    /// Bytes read, every category together.
    pub fn total_in(&self) -> u64 {
        total(&self.bytes_in)
    }

    /// Bytes written, every category together.
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
