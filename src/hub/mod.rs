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
//! Subscribers are identified by an opaque [`SubscriberId`] (the server uses its connection token).
//! A *stream* subscriber (SSE, WebSocket) gets every message until it unsubscribes; a *once*
//! subscriber (a parked long-poll) is removed by the first publish that wakes it.
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
    TooManyChannels { max: usize },
    /// Every byte of `max_total_bytes` is taken by what the hub never evicts (its channels and
    /// each channel's newest message), and this message needs `need` bytes more.
    HistoryFull { need: usize, max: usize },
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

    fn channel_mut(&mut self, name: &str) -> &mut Channel<C> {
        if !self.channels.contains_key(name) {
            let name: Arc<str> = name.into();
            self.total_bytes += channel_cost::<C>(name.len());
            self.channels.insert(name.clone(), Channel::new(name));
        }
        // Just inserted when absent.
        self.channels.get_mut(name).expect("channel exists")
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
        let c = self.channel_mut(channel);
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
            let Some(c) = self
                .channels
                .get_mut(&*name)
                .filter(|c| Arc::ptr_eq(&c.name, &name))
            else {
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
            let Some(c) = self
                .channels
                .get_mut(&*name)
                .filter(|c| Arc::ptr_eq(&c.name, &name))
            else {
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

    pub fn subscribe(&mut self, channel: &str, who: SubscriberId, how: Subscription) {
        self.channel_mut(channel).subscribe(who, how);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(max_messages: usize, max_bytes: usize) -> Hub {
        Hub::new(HistoryLimits {
            max_messages,
            max_bytes,
            max_total_bytes: usize::MAX,
            ..HistoryLimits::default()
        })
    }

    fn ids(b: &Backlog) -> Vec<u64> {
        b.messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn channel_names() {
        assert!(is_valid_channel_name("news.eu-1_x"));
        assert!(is_valid_channel_name(&"a".repeat(64)));
        assert!(!is_valid_channel_name(&"a".repeat(65)));
        for bad in ["", "a b", "a/b", "é", "a%20"] {
            assert!(!is_valid_channel_name(bad), "{bad}");
        }
    }

    #[test]
    fn ids_start_at_one_and_increase_per_channel() {
        let mut h = hub(10, 1000);
        assert_eq!(
            h.publish("a", "x".into(), Instant::now())
                .unwrap()
                .message
                .id,
            1
        );
        assert_eq!(
            h.publish("a", "y".into(), Instant::now())
                .unwrap()
                .message
                .id,
            2
        );
        assert_eq!(
            h.publish("b", "z".into(), Instant::now())
                .unwrap()
                .message
                .id,
            1
        );
        assert_eq!(h.last_id("a"), 2);
        assert_eq!(h.last_id("none"), 0);
    }

    #[test]
    fn since_returns_newer_messages_oldest_first() {
        let mut h = hub(10, 1000);
        for i in 0..5 {
            h.publish("a", format!("m{i}").into(), Instant::now())
                .unwrap();
        }
        let b = h.since("a", 2);
        assert_eq!(ids(&b), [3, 4, 5]);
        assert_eq!(&*b.messages[0].data, "m2");
        assert_eq!((b.last_id, b.gap, b.reset), (5, None, false));
        assert!(h.since("a", 5).messages.is_empty());
    }

    #[test]
    fn history_is_bounded_by_count_and_bytes() {
        let mut h = hub(3, 1000);
        for _ in 0..5 {
            h.publish("a", "x".into(), Instant::now()).unwrap();
        }
        let b = h.since("a", 0);
        assert_eq!(ids(&b), [3, 4, 5]);
        assert_eq!(b.gap, Some(Gap { from: 1, to: 2 }));

        let mut h = hub(100, 10);
        for _ in 0..5 {
            h.publish("a", "abcd".into(), Instant::now()).unwrap();
        }
        assert_eq!(ids(&h.since("a", 0)), [4, 5]);
        // A message larger than the byte budget is still kept, alone.
        h.publish("a", "0123456789abcdef".into(), Instant::now())
            .unwrap();
        assert_eq!(ids(&h.since("a", 0)), [6]);
    }

    #[test]
    fn gap_only_when_something_was_missed() {
        let mut h = hub(3, 1000);
        for _ in 0..5 {
            h.publish("a", "x".into(), Instant::now()).unwrap();
        }
        assert_eq!(h.since("a", 2).gap, None);
        assert_eq!(h.since("a", 1).gap, Some(Gap { from: 2, to: 2 }));
    }

    #[test]
    fn since_in_the_future_is_a_reset() {
        let mut h = hub(10, 1000);
        h.publish("a", "x".into(), Instant::now()).unwrap();
        let b = h.since("a", 7);
        assert!(b.reset);
        assert_eq!(ids(&b), [1]);
        let b = h.since("unknown", 3);
        assert!(b.reset);
        assert_eq!(b.last_id, 0);
    }

    #[test]
    fn once_subscribers_are_woken_once() {
        let mut h = hub(10, 1000);
        h.subscribe("a", 1, Subscription::Once);
        h.subscribe("a", 2, Subscription::Stream);
        let mut first = h
            .publish("a", "x".into(), Instant::now())
            .unwrap()
            .subscribers;
        first.sort_by_key(|s| s.0);
        assert_eq!(first, [(1, Subscription::Once), (2, Subscription::Stream)]);
        assert_eq!(
            h.publish("a", "y".into(), Instant::now())
                .unwrap()
                .subscribers,
            [(2, Subscription::Stream)]
        );
        h.unsubscribe("a", 2);
        assert!(
            h.publish("a", "z".into(), Instant::now())
                .unwrap()
                .subscribers
                .is_empty()
        );
        assert_eq!(h.subscriber_count("a"), 0);
    }

    #[test]
    fn reports_what_a_channel_holds_and_who_listens() {
        let mut h = hub(2, 1000);
        assert_eq!(h.held("a"), (0, 0));
        assert_eq!(h.subscribers("a").count(), 0);
        for data in ["abc", "de", "f"] {
            h.publish("a", data.into(), Instant::now()).unwrap();
        }
        assert_eq!(h.held("a"), (2, 3));
        h.subscribe("a", 7, Subscription::Stream);
        h.subscribe("a", 8, Subscription::Once);
        let mut subs: Vec<_> = h.subscribers("a").collect();
        subs.sort_by_key(|s| s.0);
        assert_eq!(subs, [(7, Subscription::Stream), (8, Subscription::Once)]);
    }

    #[test]
    fn channels_nobody_published_to_are_forgotten() {
        let mut h = hub(10, 1000);
        h.subscribe("ghost", 1, Subscription::Stream);
        h.subscribe("kept", 2, Subscription::Stream);
        h.publish("kept", "x".into(), Instant::now()).unwrap();
        h.unsubscribe("ghost", 1);
        h.unsubscribe("kept", 2);
        assert_eq!(h.channel_count(), 1);
        assert_eq!(h.last_id("kept"), 1);
    }

    /// What one message of `len` payload bytes and a channel named with one byte are charged.
    fn m(len: usize) -> usize {
        message_cost::<()>(len)
    }
    fn ch() -> usize {
        channel_cost::<()>(1)
    }

    #[test]
    fn the_total_budget_drops_the_oldest_messages_of_the_whole_hub() {
        let mut h: Hub = Hub::new(HistoryLimits {
            max_messages: 100,
            max_bytes: 1000,
            max_total_bytes: 2 * ch() + 3 * m(4) - 1,
            ..HistoryLimits::default()
        });
        h.publish("a", "aaaa".into(), Instant::now()).unwrap(); // a1
        h.publish("b", "bbbb".into(), Instant::now()).unwrap(); // b1
        h.publish("a", "aaaa".into(), Instant::now()).unwrap(); // a2: one byte over, a1 goes
        assert_eq!(ids(&h.since("a", 0)), [2]);
        assert_eq!(h.since("a", 0).gap, Some(Gap { from: 1, to: 1 }));
        assert_eq!(ids(&h.since("b", 0)), [1]);
        // Every channel keeps its newest message: a new channel that does not fit beside them
        // is refused, and nothing changes.
        let refused = h.publish("c", "cccccccccc".into(), Instant::now());
        assert_eq!(
            refused.unwrap_err(),
            Refused::HistoryFull {
                need: ch() + m(10),
                max: 2 * ch() + 3 * m(4) - 1
            }
        );
        assert_eq!(h.channel_count(), 2);
        assert_eq!(ids(&h.since("a", 0)), [2]);
        assert_eq!(ids(&h.since("b", 0)), [1]);
        // A newer message lets the older one of its channel go.
        h.publish("b", "bb".into(), Instant::now()).unwrap();
        assert_eq!(ids(&h.since("b", 0)), [2]);
        assert_eq!(h.total_bytes, 2 * ch() + m(4) + m(2));
        assert_eq!(h.usage().payload_bytes, 6);
    }

    #[test]
    fn the_eviction_line_stays_proportional_to_what_is_held() {
        let mut h = hub(2, 1000);
        for _ in 0..10_000 {
            h.publish("a", "x".into(), Instant::now()).unwrap();
        }
        assert!(
            h.publish_order.len() <= 2 * 2 + 1024 + 1,
            "{}",
            h.publish_order.len()
        );
        assert_eq!((h.held_messages, h.total_bytes), (2, ch() + 2 * m(1)));
    }

    #[test]
    fn budgets_are_inclusive_and_evictions_are_counted() {
        let mut h = Hub::new(HistoryLimits {
            max_messages: 100,
            max_bytes: 1000,
            max_total_bytes: 2 * ch() + 2 * m(4),
            ..HistoryLimits::default()
        });
        h.publish("a", "aaaa".into(), Instant::now()).unwrap();
        h.publish("a", "aaaa".into(), Instant::now()).unwrap();
        assert_eq!(ids(&h.since("a", 0)), [1, 2]);
        // One channel more: the oldest goes, and exactly at the budget nothing else does.
        h.publish("b", "b".into(), Instant::now()).unwrap();
        assert_eq!(ids(&h.since("a", 0)), [2]);
        assert_eq!((h.held_messages, h.total_bytes), (2, 2 * ch() + 2 * m(4)));
        assert_eq!(h.total_bytes, h.limits.max_total_bytes);
        // Exactly at a channel's byte budget nothing goes either.
        let mut h = hub(100, 6);
        h.publish("c", "abc".into(), Instant::now()).unwrap();
        h.publish("c", "def".into(), Instant::now()).unwrap();
        assert_eq!(h.held("c"), (2, 6));
    }

    #[test]
    fn every_message_is_charged_its_memory_not_only_its_payload() {
        // Issue 11, item 3: 1 000 channels of empty messages held 235 MiB under a budget of
        // 1 KiB. Now the budget counts each message's bookkeeping: it holds what it says.
        let budget = 64 * 1024;
        let mut h: Hub = Hub::new(HistoryLimits {
            max_total_bytes: budget,
            ..HistoryLimits::default()
        });
        let mut refused = 0;
        for i in 0..1000 {
            for _ in 0..100 {
                match h.publish(&format!("c{i}"), "".into(), Instant::now()) {
                    Ok(_) => {}
                    Err(Refused::HistoryFull { .. }) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
                assert!(h.total_bytes <= budget);
            }
        }
        let usage = h.usage();
        assert!(usage.messages < budget / m(0), "{usage:?}");
        assert!(usage.charged_bytes > budget - ch() - m(0), "{usage:?}");
        assert!(refused > 0, "channels past the budget are refused");
        assert_eq!(
            usage.charged_bytes,
            usage.channels * ch_cost_of(&h) + usage.messages * m(0)
        );
    }

    /// The average charge of a channel of `h` (all test names here are as long).
    fn ch_cost_of(h: &Hub) -> usize {
        let lens: usize = h.channels.keys().map(|k| channel_cost::<()>(k.len())).sum();
        lens / h.channels.len()
    }

    #[test]
    fn a_full_budget_of_newest_messages_is_passed_over_once_not_on_every_publish() {
        // Issue 11, item 4: with the budget full of channels' newest messages, every publish
        // walked all of them. Now the line passes each over once; later publishes do not see it.
        let budget = 3000 * (channel_cost::<()>(5) + m(1));
        let mut h: Hub = Hub::new(HistoryLimits {
            max_total_bytes: budget,
            ..HistoryLimits::default()
        });
        for i in 0..3000 {
            h.publish(&format!("p{i:04}"), "x".into(), Instant::now())
                .unwrap();
        }
        // A new channel needs more than what can go: refused at once.
        assert!(h.publish("other", "x".into(), Instant::now()).is_err());
        // The first publish that needs room walks the line once, passing over every newest.
        h.publish("p2999", "y".into(), Instant::now()).unwrap();
        assert_eq!(h.held("p2999"), (1, 1));
        assert_eq!(h.publish_order.len() + h.released.len(), 1);
        // From then on a publish to a full channel lets its previous newest go, and only that,
        // without looking at the other channels again.
        for round in 0..100 {
            let name = format!("p{:04}", round * 7);
            h.publish(&name, "y".into(), Instant::now()).unwrap();
            assert_eq!(h.held(&name), (1, 1), "{name}");
            assert_eq!(h.released.len(), 0);
            assert_eq!(
                h.publish_order.len(),
                round + 2,
                "only the new newest entries"
            );
            assert!(h.total_bytes <= budget);
        }
        assert_eq!(h.channel_count(), 3000);
    }

    #[test]
    fn the_eviction_line_is_swept_exactly_past_its_bound() {
        // Ten held messages: the line may hold 2 × 10 + 1024 entries, stale ones included, and is
        // swept back to the live ones on the first publish past that.
        let mut h = hub(10, 1000);
        let mut longest = 0;
        for i in 0..3000 {
            h.publish("a", "x".into(), Instant::now()).unwrap();
            longest = longest.max(h.publish_order.len());
            if i == 19 {
                assert_eq!(h.publish_order.len(), 20, "no sweep below the bound");
            }
        }
        assert_eq!(longest, 2 * 10 + 1024);
        h.publish_order.clear();
        for _ in 0..(2 * 10 + 1024 + 1) {
            h.publish("a", "x".into(), Instant::now()).unwrap();
        }
        assert_eq!(h.publish_order.len(), 10, "swept to the held messages");
    }

    fn limits(max_channels: usize, ttl_secs: u64) -> HistoryLimits {
        HistoryLimits {
            max_channels,
            message_ttl: Duration::from_secs(ttl_secs),
            ..HistoryLimits::default()
        }
    }

    #[test]
    fn a_publish_that_would_create_one_channel_too_many_is_refused() {
        // Issue 11, item 2: channels were unbounded. Now the one past the maximum is refused and
        // publishing to the others goes on.
        let now = Instant::now();
        let mut h: Hub = Hub::new(limits(3, 3600));
        for name in ["a", "b", "c"] {
            h.publish(name, "x".into(), now).unwrap();
        }
        let before = h.usage();
        assert_eq!(
            h.publish("d", "x".into(), now).unwrap_err(),
            Refused::TooManyChannels { max: 3 }
        );
        assert_eq!(h.usage(), before, "a refusal changes nothing");
        assert_eq!(h.publish("a", "y".into(), now).unwrap().message.id, 2);
        // Subscribing is bounded by connections, not refused: the channel exists while watched.
        h.subscribe("e", 1, Subscription::Stream);
        assert_eq!(h.channel_count(), 4);
        h.unsubscribe("e", 1);
        assert_eq!(h.channel_count(), 3);
    }

    #[test]
    fn held_messages_expire_after_the_ttl_and_empty_channels_are_forgotten() {
        let t0 = Instant::now();
        let at = |secs: f64| t0 + Duration::from_secs_f64(secs);
        let mut h: Hub = Hub::new(limits(100, 10));
        assert_eq!(h.next_expiry(), None);
        h.publish("a", "one".into(), at(0.0)).unwrap();
        h.publish("a", "two".into(), at(5.0)).unwrap();
        h.publish("b", "x".into(), at(7.0)).unwrap();
        assert_eq!(h.next_expiry(), Some(at(10.0)));
        h.expire(at(9.9));
        assert_eq!(ids(&h.since("a", 0)), [1, 2]);
        h.expire(at(10.0));
        assert_eq!(ids(&h.since("a", 0)), [2]);
        assert_eq!(h.since("a", 0).gap, Some(Gap { from: 1, to: 1 }));
        assert_eq!(h.next_expiry(), Some(at(15.0)));
        // The newest expires too; nobody listens to `a`, so it is forgotten: a client that asks
        // with an id it had is told of a reset.
        h.expire(at(16.0));
        assert_eq!(h.channel_count(), 1);
        assert_eq!(h.last_id("a"), 0);
        let b = h.since("a", 2);
        assert!(b.reset && b.messages.is_empty());
        assert_eq!(h.usage().charged_bytes, ch() + m(1));
        assert_eq!(h.next_expiry(), Some(at(17.0)));
        // A watched channel keeps its last id when everything it held expired, and is forgotten
        // when its last subscriber leaves.
        h.subscribe("b", 9, Subscription::Stream);
        h.expire(at(17.0));
        assert_eq!(
            (h.channel_count(), h.last_id("b"), h.held("b")),
            (1, 1, (0, 0))
        );
        assert_eq!(h.since("b", 0).gap, Some(Gap { from: 1, to: 1 }));
        assert_eq!(h.publish("b", "y".into(), at(18.0)).unwrap().message.id, 2);
        h.expire(at(28.0));
        h.unsubscribe("b", 9);
        assert_eq!(h.channel_count(), 0);
        assert_eq!(
            h.usage(),
            Usage::default(),
            "every byte charged is given back"
        );
        assert_eq!(h.next_expiry(), None);
    }

    #[test]
    fn publishing_expires_what_is_due_and_frees_room_for_channels() {
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut h: Hub = Hub::new(limits(1000, 60));
        for i in 0..1000 {
            h.publish(&format!("c{i}"), "x".into(), at(i / 100))
                .unwrap();
        }
        assert!(h.publish("late", "x".into(), at(59)).is_err());
        // At 60 s the first hundred channels expire, on the publish itself.
        h.publish("late", "x".into(), at(60)).unwrap();
        assert_eq!(h.channel_count(), 901);
        h.expire(at(70));
        assert_eq!(h.channel_count(), 1);
        assert_eq!(h.usage().charged_bytes, channel_cost::<()>(4) + m(1));
        assert!(
            h.publish_order.len() <= 1024 + 2,
            "stale entries are swept: {}",
            h.publish_order.len()
        );
    }

    #[test]
    fn a_wave_of_expiries_is_spread_over_calls() {
        let t0 = Instant::now();
        let mut h: Hub = Hub::new(limits(100_000, 1));
        for i in 0..(EXPIRY_BATCH + 10) {
            h.publish(&format!("w{i}"), "x".into(), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(2);
        h.expire(later);
        assert_eq!(h.channel_count(), 10);
        assert!(h.next_expiry().is_some_and(|due| due <= later), "still due");
        h.expire(later);
        assert_eq!(h.channel_count(), 0);
        assert_eq!(h.usage(), Usage::default());
    }

    #[test]
    fn an_expiry_entry_moves_to_the_channel_s_current_oldest() {
        // Messages that left by the channel's own limits do not keep their expiry entry: it is
        // moved on, and the channel's later messages expire on time.
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let mut h: Hub = Hub::new(HistoryLimits {
            max_messages: 1,
            ..limits(10, 10)
        });
        for s in 0..10 {
            h.publish("a", "x".into(), at(s)).unwrap();
        }
        assert_eq!(h.expiry.len(), 1);
        assert_eq!(h.next_expiry(), Some(at(10)), "an early entry");
        h.expire(at(10));
        assert_eq!(ids(&h.since("a", 0)), [10]);
        assert_eq!(h.next_expiry(), Some(at(19)));
        h.expire(at(19));
        assert_eq!(h.channel_count(), 0);
    }

    #[test]
    fn counts_channels_and_subscribers() {
        let mut h = hub(10, 1000);
        h.publish("a", "x".into(), Instant::now()).unwrap();
        h.publish("b", "x".into(), Instant::now()).unwrap();
        h.subscribe("a", 1, Subscription::Stream);
        h.subscribe("a", 2, Subscription::Once);
        assert_eq!(h.channel_count(), 2);
        assert_eq!(h.subscriber_count("a"), 2);
        assert_eq!(h.subscriber_count("b"), 0);
    }

    #[test]
    fn messages_debug_as_id_and_data() {
        let m: Message = Message::new(7, "hello".into(), Instant::now());
        let shown = format!("{m:?}");
        assert!(
            shown.starts_with("Message { id: 7, data: \"hello\""),
            "{shown}"
        );
    }
}
