//! Channels, message ids, bounded history and subscribers. Pure: no I/O, no clock, and nothing else
//! of the crate.
//!
//! A channel is created by its first publish or subscription. Each published message gets the next
//! id of its channel (1, 2, 3…, never from the clock) and goes into the channel's history, which
//! keeps the newest messages up to a count and a byte budget. Any transport resumes by asking for
//! what came after an id ([`Hub::since`]); when that is no longer held, or lies in the future (the
//! server restarted), the answer says so ([`Backlog::gap`], [`Backlog::reset`]) instead of silently
//! skipping.
//!
//! The hub's memory is bounded by its own limits ([`HistoryLimits`]): every channel and held
//! message is charged what it really takes (`budget`), the hub's oldest messages go first once
//! the total passes the budget (each channel's newest stays), and a publish that cannot fit beside
//! what stays, or that would create a channel too many, is refused ([`Refused`]) with nothing
//! changed. Held messages expire after a time to live, driven by the `now` the caller passes
//! ([`Hub::expire`], [`Hub::next_expiry`]); a channel with nothing held and no subscriber is then
//! forgotten, and a client that asks with an old id gets a reset.
//!
//! ```text
//! publish ──► line: a1 b1 a2 c1 … (oldest first) ──► evict from the front while over budget
//!               │ a channel's newest reached ─► passed over (kept), out of line
//!               └ its channel publishes again ─► released: goes before the whole line
//! ```
//!
//! Subscribers are identified by an opaque [`SubscriberId`] (the driver uses its connection-table
//! key). The hub knows no transport: each transport's encoding of a message is made per fan-out
//! (`delivery::Encodings`), never kept beside the history.
//! A *stream* subscriber (SSE, WebSocket) gets every message until it unsubscribes; a *once*
//! subscriber (a parked long-poll) is removed by the first publish that wakes it. A publish returns
//! each subscriber with its [`Subscription`] kind, so fan-out needs no guessing.
//!
//! The hub is one plain struct behind `&mut self`, so a future one-loop-per-core server can put it
//! behind a lock or a message queue without changing its interface.
mod budget;
mod channel;
mod message;

pub use channel::{Backlog, Gap};
pub use message::Message;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use budget::{LineEntry, channel_cost, message_cost};
use channel::{Channel, unknown_since};

/// Channel names are 1 to 64 characters of `[A-Za-z0-9_.-]`: safe in a URL path, a log line and a
/// file name without escaping.
pub fn is_valid_channel_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Channels [`Hub::expire`] looks at per call: a wave of 100 000 expiring channels is spread over
/// the loop's turns (each a few milliseconds) instead of holding one turn for all.
pub const EXPIRY_BATCH: usize = 4096;

/// Who a subscription belongs to: the server's connection token.
pub type SubscriberId = usize;

/// How long a subscription lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// Every message until unsubscribed (SSE, WebSocket).
    Stream,
    /// The next message only (a parked long-poll).
    Once,
}

/// History limits of every channel, and of the hub as a whole.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Most messages kept per channel.
    pub max_messages: usize,
    /// Most payload bytes kept per channel (the newest message is always kept).
    pub max_bytes: usize,
    /// Most bytes of memory the hub holds: every channel and every held message is charged what
    /// it really takes (see `budget`), payload and bookkeeping. Past it the oldest messages of the
    /// whole hub go first; each channel keeps its newest, and a publish that would need more than
    /// what can go is refused ([`Refused::HistoryFull`]).
    pub max_total_bytes: usize,
    /// Most channels: a publish that would create one more is refused
    /// ([`Refused::TooManyChannels`]). Subscribing is not refused (each subscriber is a
    /// connection, bounded on its own), but counts.
    pub max_channels: usize,
    /// How long a message is held: past it, it leaves the history, the newest too, and a channel
    /// with nothing held and no subscriber is forgotten (ids begin again at 1: a client that
    /// asks with an old id gets a reset).
    pub message_ttl: Duration,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_messages: 1024,
            max_bytes: 8 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
            max_channels: 100_000,
            // Nchan's default message timeout.
            message_ttl: Duration::from_secs(3600),
        }
    }
}

/// Why the hub refused a publish. Nothing changed; the publisher may retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The publish would create a channel past `max_channels`.
    TooManyChannels {
        /// The limit (`--max-channels`).
        max: usize,
    },
    /// Every byte of `max_total_bytes` is taken by what the hub never evicts (its channels and
    /// each channel's newest message), and this message needs `need` bytes more.
    HistoryFull {
        /// Bytes the message would be charged.
        need: usize,
        /// The budget (`--history-total-bytes`).
        max: usize,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::TooManyChannels { max } => write!(
                f,
                "too many channels: the hub holds its maximum of {max} (--max-channels); \
                 publishing to an existing channel works, a new one may once others expire"
            ),
            Refused::HistoryFull { need, max } => write!(
                f,
                "history full: the newest message of every channel already takes the hub's \
                 {max} bytes (--history-total-bytes) and this one needs {need}; retry later"
            ),
        }
    }
}

/// What a publish produced: the message, and who must be told.
#[derive(Debug)]
pub struct Published<C = ()> {
    /// The message as stored in the channel's history, shared with every delivery.
    pub message: Arc<Message<C>>,
    /// Subscribers to deliver to, streams and woken long-polls alike. Once-subscribers in this list
    /// have already been removed from the channel.
    pub subscribers: Vec<(SubscriberId, Subscription)>,
}

/// The hub's own figures: what it holds and what it charged for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Channels held.
    pub channels: usize,
    /// Messages held by every channel's history.
    pub messages: usize,
    /// Bytes charged to the budget (channels and messages, payload and bookkeeping).
    pub charged_bytes: usize,
    /// Payload bytes of the held messages.
    pub payload_bytes: usize,
}

/// Every channel of the server, their histories within [`HistoryLimits`], and their subscribers.
/// `C` is the per-message slot the transports fill (see [`Message`]).
#[derive(Debug)]
pub struct Hub<C = ()> {
    channels: HashMap<Arc<str>, Channel<C>>,
    limits: HistoryLimits,
    /// Bytes charged for everything held (see `budget`).
    total_bytes: usize,
    /// Of `total_bytes`, what the budget may evict: every held message but its channel's newest.
    evictable_bytes: usize,
    /// Payload bytes held by every channel's history.
    payload_bytes: usize,
    /// Every message published, oldest first, by channel and id: the hub-wide eviction order.
    /// A channel's newest message is taken out of line when the line reaches it (it is kept);
    /// entries of messages a channel already dropped on its own are skipped when reached, and
    /// swept out when they outnumber the held ones.
    publish_order: VecDeque<LineEntry>,
    /// Messages the line passed over as their channel's newest and that a newer one has since
    /// released: older than anything still in line, so they go first.
    released: VecDeque<LineEntry>,
    /// Messages held by every channel's history.
    held_messages: usize,
    /// When each channel's oldest held message was published (at most one entry per channel
    /// holding messages, by name; an entry may be early when that message already went, and is
    /// then moved to the channel's current oldest).
    expiry: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
}

impl<C: Default> Hub<C> {
    /// An empty hub; channels appear on their first publish or subscription.
    pub fn new(limits: HistoryLimits) -> Hub<C> {
        Hub {
            channels: HashMap::new(),
            limits,
            total_bytes: 0,
            evictable_bytes: 0,
            payload_bytes: 0,
            publish_order: VecDeque::new(),
            released: VecDeque::new(),
            held_messages: 0,
            expiry: BinaryHeap::new(),
        }
    }

    /// Adds the channel `name`, which the hub does not hold, and charges for it. Callers look the
    /// name up first (`get_mut`) and come here only when it is missing: one hash of the name for
    /// a channel that exists, which is every subscription but the first.
    fn add_channel(&mut self, name: &str) -> &mut Channel<C> {
        let name: Arc<str> = name.into();
        self.total_bytes += channel_cost::<C>(name.len());
        self.channels
            .entry(name.clone())
            .or_insert_with(|| Channel::new(name))
    }

    /// Appends a message to `channel` and returns it with the subscribers to deliver it to. `now`
    /// is stamped on the message (the hub reads no clock). Refused, with nothing changed, when
    /// the budget cannot hold it.
    pub fn publish(
        &mut self,
        channel: &str,
        data: Box<str>,
        now: Instant,
    ) -> Result<Published<C>, Refused> {
        self.expire(now);
        let cost = message_cost::<C>(data.len());
        let (new_channel, released) = match self.channels.get(channel) {
            None if self.channels.len() >= self.limits.max_channels => {
                return Err(Refused::TooManyChannels {
                    max: self.limits.max_channels,
                });
            }
            None => (channel_cost::<C>(channel.len()), 0),
            // The channel's newest stops being its newest: it can go once this one is in.
            Some(c) => (0, c.newest().map_or(0, |m| message_cost::<C>(m.data.len()))),
        };
        // What can never go: every channel and every channel's newest message.
        let kept = self.total_bytes - self.evictable_bytes - released + new_channel + cost;
        if kept > self.limits.max_total_bytes {
            return Err(Refused::HistoryFull {
                need: cost + new_channel,
                max: self.limits.max_total_bytes,
            });
        }
        let limits = self.limits;
        let c = match self.channels.get_mut(channel) {
            Some(c) => c,
            None => self.add_channel(channel),
        };
        let previous = c.newest().map(|m| m.id);
        let was_empty = previous.is_none();
        let payload_before = c.history_bytes();
        let (published, dropped) = c.publish(data, now, &limits);
        let payload_after = c.history_bytes();
        let name = c.name.clone();
        let passed_over = std::mem::take(&mut c.passed_over);
        if was_empty {
            // Its first message since it was empty: it joins the expiry queue.
            self.expiry.push(Reverse((now, name.clone())));
        }
        if let Some(id) = previous.filter(|_| passed_over) {
            self.released.push_back((name.clone(), id));
        }
        self.payload_bytes = self.payload_bytes + payload_after - payload_before;
        self.evictable_bytes = self.evictable_bytes + released - dropped.cost;
        self.total_bytes = self.total_bytes + cost - dropped.cost;
        self.held_messages = self.held_messages + 1 - dropped.messages;
        self.publish_order.push_back((name, published.message.id));
        self.enforce_total_budget();
        Ok(published)
    }

    /// Drops the hub's oldest evictable messages until the total fits. Each line entry is taken
    /// once (and a passed-over newest once more, when released), so this is amortised O(1) per
    /// publish; `publish` refused what could not fit, so it always ends within the budget.
    fn enforce_total_budget(&mut self) {
        while self.total_bytes > self.limits.max_total_bytes {
            if !self.evict_next() {
                break;
            }
        }
        self.sweep_line();
    }

    /// Entries of messages the channels dropped on their own (or that expired) are swept out
    /// once they outnumber the held ones, so the line stays proportional to what is held.
    fn sweep_line(&mut self) {
        if self.publish_order.len() + self.released.len() > 2 * self.held_messages + 1024 {
            let channels = &self.channels;
            let live = |(name, id): &LineEntry| {
                channels
                    .get(&**name)
                    .filter(|c| Arc::ptr_eq(&c.name, name))
                    .and_then(Channel::oldest_held)
                    .is_some_and(|oldest| *id >= oldest)
            };
            self.publish_order.retain(live);
            self.released.retain(live);
        }
    }

    /// Evicts the oldest message the budget may take; false when there is none.
    fn evict_next(&mut self) -> bool {
        loop {
            let Some((name, id)) = self
                .released
                .pop_front()
                .or_else(|| self.publish_order.pop_front())
            else {
                return false;
            };
            let Some(c) = same_channel(&mut self.channels, &name) else {
                continue;
            };
            if c.oldest_held().is_none_or(|oldest| id < oldest) {
                // Already dropped by the channel's own limits.
                continue;
            }
            if id == c.last_id() {
                // The newest is kept; it goes back in line when a newer one arrives.
                c.passed_over = true;
                continue;
            }
            let mut evicted = false;
            while c.held() > 1 && c.oldest_held().is_some_and(|oldest| oldest <= id) {
                let (payload, cost) = (c.oldest().map_or(0, |m| m.data.len()), c.evict_oldest());
                self.payload_bytes -= payload;
                self.total_bytes -= cost;
                self.evictable_bytes -= cost;
                self.held_messages -= 1;
                evicted = true;
            }
            if evicted {
                return true;
            }
        }
    }

    /// When the oldest held message expires (`message_ttl` after it was published), if anything
    /// is held: the time to call [`Hub::expire`].
    pub fn next_expiry(&self) -> Option<Instant> {
        let Reverse((published, _)) = self.expiry.peek()?;
        published.checked_add(self.limits.message_ttl)
    }

    /// Drops every message held for `message_ttl` or longer at `now`, each channel's newest
    /// too, and forgets the channels left with nothing held and no subscriber. Amortised O(log
    /// channels) per message: each queue entry either expires messages or moves to a later one.
    /// At most [`EXPIRY_BATCH`] channels per call, so a wave of expiries does not stall the
    /// caller: [`Hub::next_expiry`] stays due until the rest is done.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.limits.message_ttl;
        let mut budget = EXPIRY_BATCH;
        while let Some(Reverse((published, _))) = self.expiry.peek() {
            if budget == 0 || published.checked_add(ttl).is_none_or(|due| due > now) {
                break;
            }
            budget -= 1;
            let Some(Reverse((_, name))) = self.expiry.pop() else {
                break;
            };
            let Some(c) = same_channel(&mut self.channels, &name) else {
                continue;
            };
            while let Some(oldest) = c.oldest() {
                if oldest
                    .published_at
                    .checked_add(ttl)
                    .is_some_and(|due| due > now)
                {
                    break;
                }
                let payload = oldest.data.len();
                let newest = c.held() == 1;
                let cost = c.evict_oldest();
                self.payload_bytes -= payload;
                self.total_bytes -= cost;
                if !newest {
                    self.evictable_bytes -= cost;
                }
                self.held_messages -= 1;
            }
            match c.oldest() {
                Some(oldest) => self.expiry.push(Reverse((oldest.published_at, name))),
                None if c.subscriber_count() == 0 => self.forget(&name),
                None => {}
            }
        }
        self.sweep_line();
        self.shrink();
    }

    /// Gives back the tables' spare room once they are mostly empty (after a wave of channels
    /// expired), so the memory returns instead of waiting for a wave as large. Amortised O(1):
    /// a table shrinks to twice what it holds only after losing three quarters of it.
    fn shrink(&mut self) {
        fn sparse(len: usize, capacity: usize) -> bool {
            capacity > 1024 && len < capacity / 4
        }
        if sparse(self.channels.len(), self.channels.capacity()) {
            self.channels.shrink_to(2 * self.channels.len());
        }
        if sparse(self.expiry.len(), self.expiry.capacity()) {
            self.expiry.shrink_to(2 * self.expiry.len());
        }
        for line in [&mut self.publish_order, &mut self.released] {
            if sparse(line.len(), line.capacity()) {
                line.shrink_to(2 * line.len());
            }
        }
    }

    /// The id of the newest message of `channel` (0 when nothing was ever published).
    pub fn last_id(&self, channel: &str) -> u64 {
        self.channels.get(channel).map_or(0, |c| c.last_id())
    }

    /// Every held message of `channel` with an id greater than `after`, with any gap or reset.
    pub fn since(&self, channel: &str, after: u64) -> Backlog<C> {
        match self.channels.get(channel) {
            Some(c) => c.since(after),
            None => unknown_since(after),
        }
    }

    /// Adds `who` to `channel` (creating the channel), for every message until unsubscribed or for
    /// the next one only, as `how` says.
    pub fn subscribe(&mut self, channel: &str, who: SubscriberId, how: Subscription) {
        match self.channels.get_mut(channel) {
            Some(c) => c.subscribe(who, how),
            None => self.add_channel(channel).subscribe(who, how),
        }
    }

    /// Removes `who` from `channel`; a no-op when it was not subscribed. A channel left with no
    /// subscriber and no held message (nothing published, or all of it expired) is forgotten, so
    /// subscribing to made-up names leaves nothing behind.
    pub fn unsubscribe(&mut self, channel: &str, who: SubscriberId) {
        if let Some(c) = self.channels.get_mut(channel) {
            c.unsubscribe(who);
            if c.subscriber_count() == 0 && c.held() == 0 {
                self.forget(channel);
            }
        }
    }

    /// Removes an empty channel and what it was charged.
    fn forget(&mut self, channel: &str) {
        if let Some((name, _)) = self.channels.remove_entry(channel) {
            self.total_bytes -= channel_cost::<C>(name.len());
        }
    }

    /// Channels the hub holds.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// What the hub holds and what it charged for it.
    pub fn usage(&self) -> Usage {
        Usage {
            channels: self.channels.len(),
            messages: self.held_messages,
            charged_bytes: self.total_bytes,
            payload_bytes: self.payload_bytes,
        }
    }

    /// Number of subscribers of `channel`.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.channels
            .get(channel)
            .map_or(0, |c| c.subscriber_count())
    }

    /// Messages and payload bytes `channel`'s history holds (zeros for an unknown channel).
    pub fn held(&self, channel: &str) -> (usize, usize) {
        self.channels
            .get(channel)
            .map_or((0, 0), |c| (c.held(), c.history_bytes()))
    }

    /// Every subscriber of `channel`, in no particular order.
    pub fn subscribers(
        &self,
        channel: &str,
    ) -> impl Iterator<Item = (SubscriberId, Subscription)> + '_ {
        self.channels
            .get(channel)
            .into_iter()
            .flat_map(|c| c.subscribers())
    }
}

/// The channel a queue entry was made for, if it is still there: a channel forgotten and made
/// again has a new name allocation, so entries of the old one do not apply to it.
fn same_channel<'a, C>(
    channels: &'a mut HashMap<Arc<str>, Channel<C>>,
    name: &Arc<str>,
) -> Option<&'a mut Channel<C>> {
    channels
        .get_mut(&**name)
        .filter(|c| Arc::ptr_eq(&c.name, name))
}

#[cfg(test)]
mod tests;
