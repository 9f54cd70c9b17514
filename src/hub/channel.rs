//! One channel: its id counter, history and subscribers.
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

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
    last_id: u64,
    history: VecDeque<Arc<Message<C>>>,
    history_bytes: usize,
    subscribers: HashMap<SubscriberId, Subscription>,
}

impl<C> Default for Channel<C> {
    fn default() -> Self {
        Channel {
            last_id: 0,
            history: VecDeque::new(),
            history_bytes: 0,
            subscribers: HashMap::new(),
        }
    }
}

impl<C: Default> Channel<C> {
    pub(super) fn last_id(&self) -> u64 {
        self.last_id
    }

    pub(super) fn publish(
        &mut self,
        data: Box<str>,
        now: Instant,
        limits: &HistoryLimits,
    ) -> Published<C> {
        self.last_id += 1;
        let message = Arc::new(Message::new(self.last_id, data, now));
        self.history_bytes += message.data.len();
        self.history.push_back(message.clone());
        while self.history.len() > 1
            && (self.history.len() > limits.max_messages || self.history_bytes > limits.max_bytes)
        {
            self.evict_oldest();
        }
        let subscribers: Vec<_> = self.subscribers.iter().map(|(&k, &v)| (k, v)).collect();
        self.subscribers
            .retain(|_, how| *how == Subscription::Stream);
        Published {
            message,
            subscribers,
        }
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

    /// Drops the oldest held message; returns its payload size.
    pub(super) fn evict_oldest(&mut self) -> usize {
        let len = self.history.pop_front().map_or(0, |old| old.data.len());
        self.history_bytes -= len;
        len
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
