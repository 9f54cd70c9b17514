//! `GET /stats`: the ledger as JSON.
use serde_json::{Map, Value, json};

use super::{App, ClientRef};
use crate::ledger::{Ledger, Transport};

impl App {
    /// `ledger` (every loop's, summed) by transport, with the hub's view of `channel` when one
    /// is named.
    pub(crate) fn stats_json(&self, ledger: &Ledger, channel: Option<&str>) -> String {
        let transports: Map<String, Value> = Transport::REPORTED
            .iter()
            .filter_map(|&t| Some((t.name().to_string(), ledger.get(t)?.to_json())))
            .collect();
        let hub = self.hub();
        let usage = hub.usage();
        let mut stats = json!({
            "uptime_s": (self.now - self.started).as_secs_f64(),
            "connections_open": self.shared.connections_open(),
            "threads": self.shared.loops(),
            "connections_by_thread": self.shared.open_by_loop(),
            "fanout_backlog_bytes_by_thread": self.shared.backlog_by_loop(),
            "transports": transports,
            "hub": {
                "channels": usage.channels,
                "held_messages": usage.messages,
                "held_payload_bytes": usage.payload_bytes,
                "charged_bytes": usage.charged_bytes,
                "budget_bytes": self.config.history.max_total_bytes,
            },
        });
        if let Some(name) = channel {
            let (held_messages, held_bytes) = hub.held(name);
            // Subscribers by the transport they subscribed by (a parked long-poll, an SSE
            // stream, a WebSocket), which their subscriber id carries.
            let mut by_transport = Map::new();
            for t in [Transport::LongPoll, Transport::Sse, Transport::Ws] {
                by_transport.insert(t.name().to_string(), json!(0));
            }
            for (who, _) in hub.subscribers(name) {
                if let Some(transport) = ClientRef::transport(who) {
                    let n = by_transport.entry(transport.name()).or_insert(json!(0));
                    *n = json!(n.as_u64().unwrap_or(0) + 1);
                }
            }
            stats["channel"] = json!({
                "name": name,
                "last_id": hub.last_id(name),
                "held_messages": held_messages,
                "held_bytes": held_bytes,
                "subscribers": hub.subscriber_count(name),
                "subscribers_by_transport": by_transport,
            });
        }
        stats.to_string()
    }
}
