//! `GET /stats`: the ledger as JSON.
use serde_json::{Map, Value, json};

use super::App;
use crate::ledger::Transport;

impl App {
    /// The ledger of every transport, with the hub's view of `channel` when one is named;
    /// `transport_of` tells the transport of a subscriber (the driver knows its connections).
    pub(crate) fn stats_json(
        &self,
        channel: Option<&str>,
        transport_of: &dyn Fn(usize) -> Option<Transport>,
    ) -> String {
        let transports: Map<String, Value> = Transport::REPORTED
            .iter()
            .filter_map(|&t| Some((t.name().to_string(), self.ledger.get(t)?.to_json())))
            .collect();
        let usage = self.hub.usage();
        let mut stats = json!({
            "uptime_s": (self.now - self.started).as_secs_f64(),
            "connections_open": self.connections_open,
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
            let (held_messages, held_bytes) = self.hub.held(name);
            // Subscribers by the transport of their connection (a parked long-poll, an SSE
            // stream, a WebSocket).
            let mut by_transport = Map::new();
            for t in [Transport::LongPoll, Transport::Sse, Transport::Ws] {
                by_transport.insert(t.name().to_string(), json!(0));
            }
            for (who, _) in self.hub.subscribers(name) {
                if let Some(transport) = transport_of(who) {
                    let n = by_transport.entry(transport.name()).or_insert(json!(0));
                    *n = json!(n.as_u64().unwrap_or(0) + 1);
                }
            }
            stats["channel"] = json!({
                "name": name,
                "last_id": self.hub.last_id(name),
                "held_messages": held_messages,
                "held_bytes": held_bytes,
                "subscribers": self.hub.subscriber_count(name),
                "subscribers_by_transport": by_transport,
            });
        }
        stats.to_string()
    }
}
