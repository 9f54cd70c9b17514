//! One channel: its id counter, history and subscribers.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;

use super::budget::message_cost;
use super::{HistoryLimits, Message, Published, SubscriberId, Subscription};

/// Messages that were published but are no longer held: ids `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// First id no longer held (inclusive).
    pub from: u64,
    /// Last id no longer held (inclusive).
    pub to: u64,
}

/// The answer to "what came after id N?".
#[derive(Debug)]
pub struct Backlog<C = ()> {
    /// The channel's newest id (0 when nothing was published yet).
    pub last_id: u64,
    /// Held messages after N, oldest first (on a reset: every held message).
    pub messages: Vec<Arc<Message<C>>>,
    /// Messages after N that were published but have left the history.
    pub gap: Option<Gap>,
    /// N is newer than anything this channel ever published (the server restarted and ids began
    /// again): the client's position is meaningless and `messages` holds everything held.
    pub reset: bool,
}

impl<C> Clone for Backlog<C> {
    fn clone(&self) -> Self {
        Backlog {
            last_id: self.last_id,
            messages: self.messages.clone(),
            gap: self.gap,
            reset: self.reset,
        }
    }
}

#[derive(Debug)]
pub(super) struct Channel<C> {
    /// The name, as the hub's map holds it: entries of the hub's queues name a channel by this
    /// pointer, so an entry left by a forgotten channel never matches a new one of the same name.
    pub(super) name: Arc<str>,
    last_id: u64,
    history: VecDeque<Arc<Message<C>>>,
    history_bytes: usize,
    /// Keyed by the server's own connection tokens, never by anything a client chose, so a fast
    /// hash that is not keyed (Fx) is safe here: SipHash's flood resistance would only cost (it
    /// was about 200 instructions of every long-poll request).
    subscribers: FxHashMap<SubscriberId, Subscription>,
    /// The hub's eviction line reached this channel's newest message and passed over it (the
    /// newest is kept): once a newer one arrives, it goes back in line.
    pub(super) passed_over: bool,
}

/// Messages a channel's own limits dropped: how many, and what they were charged.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dropped {
    pub(super) messages: usize,
    pub(super) cost: usize,
}

impl<C: Default> Channel<C> {
    pub(super) fn new(name: Arc<str>) -> Channel<C> {
        Channel {
            name,
            last_id: 0,
            history: VecDeque::new(),
            history_bytes: 0,
            subscribers: FxHashMap::default(),
            passed_over: false,
        }
    }

    pub(super) fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Appends a message, then drops the oldest while the channel's own limits are passed (the
    /// newest always stays).
    pub(super) fn publish(
        &mut self,
        data: Box<str>,
        now: Instant,
        limits: &HistoryLimits,
    ) -> (Published<C>, Dropped) {
        self.last_id += 1;
        let message = Arc::new(Message::new(self.last_id, data, now));
        self.history_bytes += message.data.len();
        self.history.push_back(message.clone());
        let mut dropped = Dropped::default();
        while self.history.len() > 1
            && (self.history.len() > limits.max_messages || self.history_bytes > limits.max_bytes)
        {
            dropped.messages += 1;
            dropped.cost += self.evict_oldest();
        }
        let subscribers: Vec<_> = self.subscribers.iter().map(|(&k, &v)| (k, v)).collect();
        self.subscribers
            .retain(|_, how| *how == Subscription::Stream);
        (
            Published {
                message,
                subscribers,
            },
            dropped,
        )
    }

    /// Messages the history holds.
    pub(super) fn held(&self) -> usize {
        self.history.len()
    }

    /// Payload bytes the history holds.
    pub(super) fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    /// The id of the oldest held message.
    pub(super) fn oldest_held(&self) -> Option<u64> {
        self.history.front().map(|m| m.id)
    }

    /// The oldest held message.
    pub(super) fn oldest(&self) -> Option<&Message<C>> {
        self.history.front().map(|m| &**m)
    }

    /// The newest held message.
    pub(super) fn newest(&self) -> Option<&Message<C>> {
        self.history.back().map(|m| &**m)
    }

    /// Drops the oldest held message; returns what it was charged to the hub.
    pub(super) fn evict_oldest(&mut self) -> usize {
        let Some(old) = self.history.pop_front() else {
            return 0;
        };
        self.history_bytes -= old.data.len();
        if self.history.is_empty() {
            // The newest went (its time was up): nothing of this channel is in line any more.
            self.passed_over = false;
        }
        message_cost::<C>(old.data.len())
    }

    pub(super) fn since(&self, after: u64) -> Backlog<C> {
        if after > self.last_id {
            return Backlog {
                last_id: self.last_id,
                messages: self.history.iter().cloned().collect(),
                gap: None,
                reset: true,
            };
        }
        // Ids in the history are consecutive and end at last_id.
        let first_held = self.last_id + 1 - self.history.len() as u64;
        let gap = (after + 1 < first_held).then(|| Gap {
            from: after + 1,
            to: first_held - 1,
        });
        let skip = after.saturating_sub(first_held - 1) as usize;
        Backlog {
            last_id: self.last_id,
            messages: self.history.iter().skip(skip).cloned().collect(),
            gap,
            reset: false,
        }
    }

    pub(super) fn subscribe(&mut self, who: SubscriberId, how: Subscription) {
        self.subscribers.insert(who, how);
    }

    pub(super) fn unsubscribe(&mut self, who: SubscriberId) {
        self.subscribers.remove(&who);
    }

    pub(super) fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    pub(super) fn subscribers(&self) -> impl Iterator<Item = (SubscriberId, Subscription)> + '_ {
        self.subscribers.iter().map(|(&who, &how)| (who, how))
    }
}

/// The answer for a channel the hub does not hold: nothing was ever published (or everything it
/// held expired and it was forgotten), so any position after 0 is a reset.
pub(super) fn unknown_since<C>(after: u64) -> Backlog<C> {
    Backlog {
        last_id: 0,
        messages: Vec::new(),
        gap: None,
        reset: after > 0,
    }
}
