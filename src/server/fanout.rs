//! One delivery path: a published message goes to each subscriber's session through one dispatch
//! ([`App::deliver`]), which says what became of it; and the demo's drop buttons.
use super::Server;
use crate::app::Delivery;
use crate::delivery::Encodings;
use crate::hub::Published;
use crate::ledger::Transport;

impl Server {
    /// Delivers a published message to the channel's subscribers: the message is encoded once per
    /// transport and every subscriber's queue shares those bytes.
    pub(super) fn fan_out(&mut self, published: Published) {
        let message = &published.message;
        // Each transport's encoding, made once for this fan-out and dropped after it.
        let encodings = Encodings::default();
        // Parked long-polls waiting after the same id get the same body: built once per id.
        let mut bodies = Vec::new();
        for &(key, _kind) in &published.subscribers {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match self
                .app
                .deliver(&mut conn.client, message, &encodings, &mut bodies)
            {
                Delivery::Queued => self.dirty.push(key),
                Delivery::Close => self.close(key),
                Delivery::Skipped => {}
            }
        }
    }

    /// Closes every connection currently serving `transport` (except `asker`): what the demo's
    /// "drop connection" buttons and the resume tests use.
    pub(super) fn drop_transport(&mut self, transport: Transport, asker: usize) -> usize {
        let victims: Vec<usize> = self
            .conns
            .iter()
            .filter(|(k, c)| {
                *k != asker && c.client.transport == transport && !c.client.session.is_closing()
            })
            .map(|(k, _)| k)
            .collect();
        for &key in &victims {
            self.close(key);
        }
        log::info!("dropped {} {transport} connections", victims.len());
        victims.len()
    }
}
