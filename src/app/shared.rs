//! What the event loops of one server share (`--threads N`): the hub, behind one lock taken per
//! publish, subscription or history read and never per stream delivery (a woken long-poll reads
//! the history once per fan-out and cursor); each loop's inbox of fan-outs;
//! and a few counters. Everything else (connections, sessions, the ledger, the tracer's readers)
//! belongs to one loop.
//!
//! A publish is made and handed out under the hub's lock: the message gets its id, and each loop
//! with subscribers of the channel gets `(message, its subscribers)` in its inbox, before any
//! other publish can. So every inbox holds a channel's messages in id order, and each subscriber,
//! served by exactly one loop, sees its channel in order. The publishing loop's own subscribers go
//! through its own inbox too, behind what other loops published earlier. The message's encodings
//! travel with it ([`Encodings`] is shared), so each transport's bytes are made once whichever
//! loop needs them first.
//!
//! An inbox is bounded by memory, not by count (`--max-fanout-backlog`): a loop whose queued
//! fan-outs (their subscriber lists and payloads) take more than that is behind, and a publish
//! that would reach its subscribers is refused (503, `Retry-After`) until it catches up. With one
//! loop a publish is fanned out before the publisher's next request is read, which paces it; with
//! several, a publisher on one loop could otherwise outrun the loop of a large channel's
//! subscribers and grow its inbox without end. Nothing is lost: a refused publish was not made.
//!
//! A subscriber is named by its [`ClientRef`]: the loop, the loop's table key and the client's
//! serial, so a fan-out that arrives after its subscriber closed (and the key was reused) finds a
//! different serial and is dropped; and the transport, so `/stats` can count a channel's
//! subscribers by transport without asking the loops.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::delivery::{Encodings, Message};
use crate::hub::{HistoryLimits, Hub, Published, Refused, SubscriberId, Subscription};
use crate::ledger::Transport;

/// Bits of a [`SubscriberId`]: the loop's table key, the loop, the transport, the serial.
const KEY_BITS: u32 = 32;
const LOOP_BITS: u32 = 8;
const TRANSPORT_BITS: u32 = 4;
const SERIAL_BITS: u32 = 64 - KEY_BITS - LOOP_BITS - TRANSPORT_BITS;

/// The most event loops a server runs: a loop's index fits its bits of a [`SubscriberId`], and
/// a bit of the `u64` masks of loops to wake.
pub(crate) const MAX_LOOPS: usize = 64;

/// A message handed to one loop: its subscribers there, and the encodings every loop shares.
pub(crate) struct FanOut {
    /// The channel it was published on (a fan-out that arrives late must not answer a poll
    /// parked since on another channel).
    pub channel: Arc<str>,
    /// The message, shared with the hub's history.
    pub message: Arc<Message>,
    /// Each transport's bytes, made by the first loop that needs them.
    pub encodings: Arc<Encodings>,
    /// The loop's subscribers of the channel when the message was published.
    pub subscribers: Vec<(SubscriberId, Subscription)>,
}

impl FanOut {
    /// The memory this fan-out keeps alive while it waits in an inbox, as `--max-fanout-backlog`
    /// counts it: itself, its subscriber list and the payload (shared with the history, but
    /// kept by the fan-out when the history lets it go).
    pub(crate) fn memory(&self) -> usize {
        std::mem::size_of::<FanOut>()
            + self.subscribers.len() * std::mem::size_of::<(SubscriberId, Subscription)>()
            + self.message.data.len()
    }
}

/// Why a publish was refused; either way nothing was published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublishRefused {
    /// The hub's limits (`--max-channels`, `--history-total-bytes`).
    Hub(Refused),
    /// A loop with subscribers of the channel is behind: its queued fan-outs take `queued`
    /// bytes, over `max` (`--max-fanout-backlog`).
    LoopBehind {
        /// The loop's index.
        index: usize,
        queued: usize,
        max: usize,
    },
}

impl std::fmt::Display for PublishRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishRefused::Hub(refused) => write!(f, "{refused}"),
            PublishRefused::LoopBehind { index, queued, max } => write!(
                f,
                "subscribers of this channel are behind: event loop {index} has {queued} bytes \
                 of messages waiting to be fanned out (--max-fanout-backlog {max}); nothing was \
                 published, try again"
            ),
        }
    }
}

impl From<Refused> for PublishRefused {
    fn from(refused: Refused) -> PublishRefused {
        PublishRefused::Hub(refused)
    }
}

/// One client of one loop, as other loops and the hub name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientRef {
    /// The event loop that serves the client.
    pub loop_index: usize,
    /// The client's key in that loop's connection table.
    pub key: usize,
    /// The client's id (unique in the process; a subscriber id keeps its low 20 bits): tells a
    /// reused key from the client it had.
    pub serial: u64,
}

impl ClientRef {
    /// This client's name in the hub as a subscriber by `transport`.
    pub(crate) fn subscriber(self, transport: Transport) -> SubscriberId {
        let tag = match transport {
            Transport::LongPoll => 1,
            Transport::Sse => 2,
            Transport::Ws => 3,
            _ => 0,
        };
        let serial = self.serial & ((1 << SERIAL_BITS) - 1);
        let packed = (self.key as u64 & ((1 << KEY_BITS) - 1))
            | ((self.loop_index as u64) << KEY_BITS)
            | (tag << (KEY_BITS + LOOP_BITS))
            | (serial << (KEY_BITS + LOOP_BITS + TRANSPORT_BITS));
        packed as SubscriberId
    }

    /// The loop and key a subscriber lives at.
    pub(crate) fn loop_and_key(id: SubscriberId) -> (usize, usize) {
        let id = id as u64;
        (
            ((id >> KEY_BITS) & ((1 << LOOP_BITS) - 1)) as usize,
            (id & ((1 << KEY_BITS) - 1)) as usize,
        )
    }

    /// Whether `id` names the client `serial` (and not an earlier holder of its key).
    pub(crate) fn is_serial(id: SubscriberId, serial: u64) -> bool {
        let shift = KEY_BITS + LOOP_BITS + TRANSPORT_BITS;
        (id as u64) >> shift == serial & ((1 << SERIAL_BITS) - 1)
    }

    /// The transport a subscriber subscribed by.
    pub(crate) fn transport(id: SubscriberId) -> Option<Transport> {
        match ((id as u64) >> (KEY_BITS + LOOP_BITS)) & ((1 << TRANSPORT_BITS) - 1) {
            1 => Some(Transport::LongPoll),
            2 => Some(Transport::Sse),
            3 => Some(Transport::Ws),
            _ => None,
        }
    }
}

/// The state every loop of a server shares.
pub(crate) struct Shared {
    hub: Mutex<Hub>,
    /// Each loop's inbox of fan-outs, by loop index.
    inboxes: Vec<Sender<FanOut>>,
    /// Memory of the fan-outs queued for each loop and not yet delivered ([`FanOut::memory`]).
    backlog_by_loop: Vec<AtomicUsize>,
    /// Over this, a loop is behind (`--max-fanout-backlog`).
    max_backlog: usize,
    /// Connections open on each loop: summed for `--max-connections` and `/stats`, and shown
    /// by loop (how the kernel spread them).
    open_by_loop: Vec<AtomicUsize>,
    /// The last client id handed out.
    client_ids: AtomicU64,
    /// `GET /trace` readers by loop: while there are any, every loop traces, and records cut on
    /// one loop go to the loops that have readers.
    pub trace_readers_by_loop: Vec<AtomicUsize>,
}

impl Shared {
    /// The shared state of `loops` event loops whose inboxes may each hold `max_backlog` bytes
    /// of fan-outs, and each loop's end of its inbox.
    pub(crate) fn new(
        loops: usize,
        limits: HistoryLimits,
        max_backlog: usize,
    ) -> (Arc<Shared>, Vec<Receiver<FanOut>>) {
        let loops = loops.clamp(1, MAX_LOOPS);
        let (inboxes, receivers) = (0..loops).map(|_| mpsc::channel()).unzip();
        let shared = Shared {
            hub: Mutex::new(Hub::new(limits)),
            inboxes,
            backlog_by_loop: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
            max_backlog,
            open_by_loop: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
            client_ids: AtomicU64::new(0),
            trace_readers_by_loop: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
        };
        (Arc::new(shared), receivers)
    }

    /// How many event loops share this state.
    pub(crate) fn loops(&self) -> usize {
        self.inboxes.len()
    }

    /// The hub, locked. A loop that panicked while holding it left it consistent enough to go
    /// on: every hub operation completes its own bookkeeping before it can panic (it does not).
    pub(crate) fn hub(&self) -> MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loop `index` accepted a connection.
    pub(crate) fn opened(&self, index: usize) {
        self.open_by_loop[index].fetch_add(1, Ordering::SeqCst);
    }

    /// A connection of loop `index` closed.
    pub(crate) fn closed(&self, index: usize) {
        self.open_by_loop[index].fetch_sub(1, Ordering::SeqCst);
    }

    /// Connections open on every loop.
    pub(crate) fn connections_open(&self) -> usize {
        let open = self.open_by_loop.iter();
        open.map(|n| n.load(Ordering::SeqCst)).sum()
    }

    /// `GET /trace` readers on every loop.
    pub(crate) fn trace_readers(&self) -> usize {
        let readers = self.trace_readers_by_loop.iter();
        readers.map(|n| n.load(Ordering::SeqCst)).sum()
    }

    /// Connections open on each loop.
    pub(crate) fn open_by_loop(&self) -> Vec<usize> {
        let open = self.open_by_loop.iter();
        open.map(|n| n.load(Ordering::SeqCst)).collect()
    }

    /// The next client id (1, 2, 3… across every loop).
    pub(crate) fn next_client_id(&self) -> u64 {
        self.client_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Publishes `data` on `channel` and hands the message to the inbox of every loop with
    /// subscribers of it, under the hub's lock (see the module's comment). Returns the id, and in
    /// `wake` the bit of every loop other than `own` that now has work.
    pub(crate) fn publish(
        &self,
        channel: &str,
        data: Box<str>,
        now: Instant,
        own: usize,
        wake: &mut u64,
    ) -> Result<u64, PublishRefused> {
        let mut hub = self.hub();
        if let Some(refused) = self.loop_behind(&hub, channel) {
            return Err(refused);
        }
        let expiry_before = hub.next_expiry();
        let published = hub.publish(channel, data, now)?;
        let id = published.message.id;
        // The first loop expires the history for every loop: it must wake when a publish
        // elsewhere gives the hub an earlier expiry than the one it sleeps until.
        let expiry = hub.next_expiry();
        if own != 0 && expiry.is_some() && (expiry_before.is_none() || expiry < expiry_before) {
            *wake |= 1;
        }
        self.hand_out(channel, published, own, wake);
        drop(hub);
        Ok(id)
    }

    /// A loop over its backlog with subscribers of `channel`, if there is one. Looking at the
    /// channel's subscribers costs a pass over them, so it is done only when some loop is over.
    fn loop_behind(&self, hub: &Hub, channel: &str) -> Option<PublishRefused> {
        let queued = |index: usize| self.backlog_by_loop[index].load(Ordering::Acquire);
        let over = |index: usize| queued(index) > self.max_backlog;
        if !(0..self.loops()).any(over) {
            return None;
        }
        hub.subscribers(channel)
            .map(|(who, _)| ClientRef::loop_and_key(who).0)
            .find(|&index| index < self.loops() && over(index))
            .map(|index| PublishRefused::LoopBehind {
                index,
                queued: queued(index),
                max: self.max_backlog,
            })
    }

    /// Loop `index` delivered `fan_out` (or dropped it): its memory leaves the loop's backlog.
    pub(crate) fn fanned_out(&self, index: usize, fan_out: &FanOut) {
        self.backlog_by_loop[index].fetch_sub(fan_out.memory(), Ordering::AcqRel);
    }

    /// Memory of the fan-outs waiting for each loop.
    pub(crate) fn backlog_by_loop(&self) -> Vec<usize> {
        let backlog = self.backlog_by_loop.iter();
        backlog.map(|n| n.load(Ordering::Acquire)).collect()
    }

    /// Splits a publish's subscribers by loop and queues each loop's share.
    fn hand_out(&self, channel: &str, published: Published, own: usize, wake: &mut u64) {
        let Published {
            message,
            subscribers,
        } = published;
        if subscribers.is_empty() {
            return;
        }
        let channel: Arc<str> = Arc::from(channel);
        let encodings = Arc::new(Encodings::default());
        let loops = self.inboxes.len();
        let by_loop = if loops == 1 {
            // Everyone is on the one loop: no split, the list goes as it is.
            vec![subscribers]
        } else {
            let mut by_loop: Vec<Vec<(SubscriberId, Subscription)>> = vec![Vec::new(); loops];
            for (who, how) in subscribers {
                let (index, _) = ClientRef::loop_and_key(who);
                if let Some(share) = by_loop.get_mut(index) {
                    share.push((who, how));
                }
            }
            by_loop
        };
        for (index, subscribers) in by_loop.into_iter().enumerate() {
            if subscribers.is_empty() {
                continue;
            }
            let fan_out = FanOut {
                channel: Arc::clone(&channel),
                message: Arc::clone(&message),
                encodings: Arc::clone(&encodings),
                subscribers,
            };
            // Counted before it is visible, so the loop never subtracts what was not added.
            let memory = fan_out.memory();
            self.backlog_by_loop[index].fetch_add(memory, Ordering::AcqRel);
            // A closed inbox is a loop that has stopped: nobody there to deliver to.
            if self.inboxes[index].send(fan_out).is_ok() {
                if index != own {
                    *wake |= 1 << index;
                }
            } else {
                self.backlog_by_loop[index].fetch_sub(memory, Ordering::AcqRel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_id_carries_loop_key_transport_and_serial() {
        let who = ClientRef {
            loop_index: 3,
            key: 77_000,
            serial: 123_456_789,
        };
        let id = who.subscriber(Transport::Sse);
        assert_eq!(ClientRef::loop_and_key(id), (3, 77_000));
        assert_eq!(ClientRef::transport(id), Some(Transport::Sse));
        assert!(ClientRef::is_serial(id, 123_456_789));
        assert!(!ClientRef::is_serial(id, 123_456_790));
        assert_eq!(
            ClientRef::transport(who.subscriber(Transport::LongPoll)),
            Some(Transport::LongPoll)
        );
        assert_eq!(
            ClientRef::transport(who.subscriber(Transport::Ws)),
            Some(Transport::Ws)
        );
        assert_ne!(
            who.subscriber(Transport::Ws),
            who.subscriber(Transport::Sse)
        );
    }

    #[test]
    fn a_publish_on_another_loop_wakes_the_first_when_the_history_expires_sooner() {
        let limits = HistoryLimits {
            message_ttl: std::time::Duration::from_secs(5),
            ..HistoryLimits::default()
        };
        let (shared, _inboxes) = Shared::new(2, limits, usize::MAX);
        let t = Instant::now();
        let mut wake = 0;
        shared.publish("c", "one".into(), t, 1, &mut wake).unwrap();
        assert_eq!(
            wake, 0b1,
            "loop 0 runs the expiry and must learn of the first deadline"
        );
        wake = 0;
        shared.publish("c", "two".into(), t, 1, &mut wake).unwrap();
        assert_eq!(wake, 0, "the earliest expiry did not move");
        shared.publish("d", "x".into(), t, 0, &mut wake).unwrap();
        assert_eq!(wake, 0, "loop 0 published itself");
    }

    #[test]
    fn a_publish_reaches_each_loop_with_its_own_subscribers_in_id_order() {
        let (shared, inboxes) = Shared::new(2, HistoryLimits::default(), usize::MAX);
        let on = |loop_index, key| ClientRef {
            loop_index,
            key,
            serial: key as u64,
        };
        {
            let mut hub = shared.hub();
            hub.subscribe(
                "c",
                on(0, 1).subscriber(Transport::Sse),
                Subscription::Stream,
            );
            hub.subscribe(
                "c",
                on(1, 2).subscriber(Transport::Ws),
                Subscription::Stream,
            );
            hub.subscribe(
                "c",
                on(1, 3).subscriber(Transport::Sse),
                Subscription::Stream,
            );
        }
        let mut wake = 0;
        let t = Instant::now();
        assert_eq!(shared.publish("c", "one".into(), t, 0, &mut wake), Ok(1));
        assert_eq!(shared.publish("c", "two".into(), t, 1, &mut wake), Ok(2));
        // Loop 0 published the first and has work for loop 1; loop 1 the second, for loop 0.
        assert_eq!(wake, 0b11);
        let got: Vec<_> = inboxes[1].try_iter().collect();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].message.id, got[1].message.id), (1, 2));
        assert_eq!(got[0].subscribers.len(), 2);
        let got: Vec<_> = inboxes[0].try_iter().collect();
        assert_eq!(got.iter().map(|f| f.message.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(got[0].subscribers.len(), 1);
        // Both loops' share of one message carry the same encodings.
        let again: Vec<_> = {
            let mut wake = 0;
            shared
                .publish("c", "three".into(), t, 0, &mut wake)
                .unwrap();
            inboxes.iter().map(|r| r.try_recv().unwrap()).collect()
        };
        assert!(Arc::ptr_eq(&again[0].encodings, &again[1].encodings));
        assert!(Arc::ptr_eq(&again[0].message, &again[1].message));
    }

    #[test]
    fn a_loop_behind_refuses_publishes_that_would_reach_it_until_it_catches_up() {
        let (shared, inboxes) = Shared::new(2, HistoryLimits::default(), 1000);
        let on = |loop_index, key| {
            ClientRef {
                loop_index,
                key,
                serial: key as u64,
            }
            .subscriber(Transport::Sse)
        };
        shared
            .hub()
            .subscribe("far", on(1, 1), Subscription::Stream);
        shared
            .hub()
            .subscribe("near", on(0, 2), Subscription::Stream);
        let t = Instant::now();
        let mut wake = 0;
        let payload = "x".repeat(300);
        let mut published = 0;
        let refused = loop {
            match shared.publish("far", payload.clone().into(), t, 0, &mut wake) {
                Ok(id) => published = id,
                Err(refused) => break refused,
            }
            assert!(published < 10, "never refused");
        };
        let backlog = shared.backlog_by_loop()[1];
        assert_eq!(
            refused,
            PublishRefused::LoopBehind {
                index: 1,
                queued: backlog,
                max: 1000
            }
        );
        assert!(backlog > 1000 && backlog < 1000 + 400, "{backlog}");
        assert_eq!(shared.hub().last_id("far"), published, "nothing published");
        assert!(refused.to_string().contains("event loop 1"), "{refused}");
        // Loop 0's own channel is not held up by loop 1.
        assert_eq!(shared.publish("near", "y".into(), t, 0, &mut wake), Ok(1));
        assert_eq!(
            shared.backlog_by_loop()[0],
            inboxes[0].try_recv().unwrap().memory()
        );

        // Loop 1 delivers what waited: its backlog is gone and publishing goes on.
        for fan_out in inboxes[1].try_iter() {
            shared.fanned_out(1, &fan_out);
        }
        assert_eq!(shared.backlog_by_loop()[1], 0);
        assert_eq!(
            shared.publish("far", "z".into(), t, 0, &mut wake),
            Ok(published + 1)
        );
    }
}
