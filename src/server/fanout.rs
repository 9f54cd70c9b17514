//! One delivery path: a published message goes to each subscriber's session through one dispatch
//! ([`App::deliver`](crate::app::App)), which says what became of it; and the demo's drop buttons.
use super::event_loop::EventLoop;
use crate::app::{ClientRef, Delivery, FanOut};
use crate::ledger::Transport;

impl EventLoop {
    /// Delivers a published message to this loop's subscribers of its channel: the message is
    /// encoded once per transport (for every loop: the encodings travel with it) and every
    /// subscriber's queue shares those bytes.
    pub(super) fn fan_out(&mut self, fan_out: FanOut) {
        self.app.shared.fanned_out(self.index, &fan_out);
        let FanOut {
            channel,
            message,
            encodings,
            subscribers,
        } = fan_out;
        // Parked long-polls waiting after the same id get the same answer: built once per id.
        let mut answers = Vec::new();
        self.fanout_turn = self.fanout_turn.wrapping_add(1);
        for &(who, _kind) in rotated(&subscribers, self.fanout_turn) {
            let (_, key) = ClientRef::loop_and_key(who);
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if !ClientRef::is_serial(who, conn.client.id) {
                // The subscriber closed while the fan-out waited; its key serves someone else.
                continue;
            }
            match self.app.deliver(
                &mut conn.client,
                &channel,
                &message,
                &encodings,
                &mut answers,
            ) {
                Delivery::Queued => self.write_soon(key),
                Delivery::Held => self.update_deadline(key),
                Delivery::Close => self.close(key),
                Delivery::Skipped => {}
            }
        }
    }

    /// Closes every connection of this loop currently serving `transport` (except `asker`): what
    /// the demo's "drop connection" buttons and the resume tests use.
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

/// `items` from position `turn % len` round to the one before it. Sockets are written in
/// fan-out order, so a fixed order would leave the same subscribers last on every publish and
/// give them the whole tail latency; starting one further each time spreads it.
fn rotated<T>(items: &[T], turn: usize) -> impl Iterator<Item = &T> {
    let start = if items.is_empty() {
        0
    } else {
        turn % items.len()
    };
    items[start..].iter().chain(&items[..start])
}

#[cfg(test)]
mod tests {
    use super::rotated;

    #[test]
    fn each_turn_starts_one_further_and_visits_everyone_once() {
        let items = [10, 11, 12];
        let order = |turn| rotated(&items, turn).copied().collect::<Vec<_>>();
        assert_eq!(order(0), [10, 11, 12]);
        assert_eq!(order(1), [11, 12, 10]);
        assert_eq!(order(2), [12, 10, 11]);
        assert_eq!(order(3), [10, 11, 12]);
        assert_eq!(rotated::<u8>(&[], 5).count(), 0);
    }
}
