//! `GET /stats`: the ledger as JSON.
use serde_json::{Map, Value, json};

use super::App;
use crate::ledger::Transport;

impl App {
    /// The ledger of every transport, with the hub's view of `channel` when one is named.
    pub(super) fn stats_json(&self, channel: Option<&str>) -> String {
        let transports: Map<String, Value> = Transport::REPORTED
            .iter()
            .filter_map(|&t| Some((t.name().to_string(), self.ledger.get(t)?.to_json())))
            .collect();
        let mut stats = json!({
            "uptime_s": (self.now - self.started).as_secs_f64(),
            "connections_open": self.connections_open,
            "transports": transports,
        });
        if let Some(name) = channel {
            stats["channel"] = json!({
                "name": name,
                "last_id": self.hub.last_id(name),
                "subscribers": self.hub.subscriber_count(name),
            });
        }
        stats.to_string()
    }
}
