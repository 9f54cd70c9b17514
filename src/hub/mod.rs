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
//! Subscribers are identified by an opaque [`SubscriberId`] (the driver uses its connection-table
//! key). Each message carries a cache of type `C` that the hub stores but never reads: the server
//! puts each transport's encoding there (`delivery::Encodings`), so the hub knows no transport.
//! A *stream* subscriber (SSE, WebSocket) gets every message until it unsubscribes; a *once*
//! subscriber (a parked long-poll) is removed by the first publish that wakes it. A publish returns
//! each subscriber with its [`Subscription`] kind, so fan-out needs no guessing.
//!
//! The hub is one plain struct behind `&mut self`, so a future one-loop-per-core server can put it
//! behind a lock or a message queue without changing its interface.
mod channel;
mod message;

pub use channel::{Backlog, Gap};
pub use message::Message;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use channel::Channel;

/// Channel names are 1 to 64 characters of `[A-Za-z0-9_.-]`: safe in a URL path, a log line and a
/// file name without escaping.
pub fn is_valid_channel_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

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

/// History limits of every channel.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Most messages kept per channel.
    pub max_messages: usize,
    /// Most payload bytes kept per channel (the newest message is always kept).
    pub max_bytes: usize,
    /// Most payload bytes kept by all channels together: past it the oldest messages of the whole
    /// hub go first (each channel still keeps its newest). What bounds the history's memory when
    /// clients publish to many channels.
    pub max_total_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_messages: 1024,
            max_bytes: 8 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
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

/// Every channel of the server, their histories within [`HistoryLimits`], and their subscribers.
/// `C` is the per-message slot the transports fill (see [`Message`]).
#[derive(Debug)]
pub struct Hub<C = ()> {
    channels: HashMap<Arc<str>, Channel<C>>,
    limits: HistoryLimits,
    /// Payload bytes held by every channel's history.
    total_bytes: usize,
    /// Every message published, oldest first, by channel and id: the hub-wide eviction order.
    /// Entries of messages a channel already dropped on its own are skipped when reached, and
    /// swept out when they outnumber the held ones.
    publish_order: VecDeque<(Arc<str>, u64)>,
    /// Messages held by every channel's history.
    held_messages: usize,
}

impl<C: Default> Hub<C> {
    /// An empty hub; channels appear on their first publish or subscription.
    pub fn new(limits: HistoryLimits) -> Hub<C> {
        Hub {
            channels: HashMap::new(),
            limits,
            total_bytes: 0,
            publish_order: VecDeque::new(),
            held_messages: 0,
        }
    }

    fn channel_mut(&mut self, name: &str) -> &mut Channel<C> {
        if !self.channels.contains_key(name) {
            self.channels.insert(name.into(), Channel::default());
        }
        // Just inserted when absent.
        self.channels.get_mut(name).expect("channel exists")
    }

    /// Appends a message to `channel` and returns it with the subscribers to deliver it to. `now`
    /// is stamped on the message (the hub reads no clock).
    pub fn publish(&mut self, channel: &str, data: Box<str>, now: Instant) -> Published<C> {
        let limits = self.limits;
        let c = self.channel_mut(channel);
        let (bytes_before, held_before) = (c.history_bytes(), c.held());
        let published = c.publish(data, now, &limits);
        let (bytes_after, held_after) = (c.history_bytes(), c.held());
        self.total_bytes = self.total_bytes + bytes_after - bytes_before;
        self.held_messages = self.held_messages + held_after - held_before;
        let (name, _) = self
            .channels
            .get_key_value(channel)
            .expect("the channel just published to exists");
        self.publish_order
            .push_back((name.clone(), published.message.id));
        self.enforce_total_budget();
        published
    }

    /// Drops the hub's oldest messages until the total fits, never the newest message of a
    /// channel (so every channel can still tell its last id and resume from it).
    fn enforce_total_budget(&mut self) {
        let mut newest_kept = Vec::new();
        while self.total_bytes > self.limits.max_total_bytes {
            let Some((name, id)) = self.publish_order.pop_front() else {
                break;
            };
            let Some(c) = self.channels.get_mut(&*name) else {
                continue;
            };
            if c.oldest_held() != Some(id) {
                // Already dropped by the channel's own limits.
                continue;
            }
            if id == c.last_id() {
                newest_kept.push((name, id));
                continue;
            }
            self.total_bytes -= c.evict_oldest();
            self.held_messages -= 1;
        }
        // The newest messages passed over keep their place at the head of the line.
        for entry in newest_kept.into_iter().rev() {
            self.publish_order.push_front(entry);
        }
        // Entries of messages the channels dropped on their own are swept out once they
        // outnumber the held ones, so the line stays proportional to what is held.
        if self.publish_order.len() > 2 * self.held_messages + 1024 {
            let channels = &self.channels;
            self.publish_order.retain(|(name, id)| {
                channels
                    .get(&**name)
                    .and_then(Channel::oldest_held)
                    .is_some_and(|oldest| *id >= oldest)
            });
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
            None => Channel::<C>::default().since(after),
        }
    }

    /// Adds `who` to `channel` (creating the channel), for every message until unsubscribed or for
    /// the next one only, as `how` says.
    pub fn subscribe(&mut self, channel: &str, who: SubscriberId, how: Subscription) {
        self.channel_mut(channel).subscribe(who, how);
    }

    /// Removes `who` from `channel`; a no-op when it was not subscribed. A channel left with no
    /// subscriber and nothing ever published is forgotten, so subscribing to made-up names
    /// leaves nothing behind.
    pub fn unsubscribe(&mut self, channel: &str, who: SubscriberId) {
        if let Some(c) = self.channels.get_mut(channel) {
            c.unsubscribe(who);
            if c.subscriber_count() == 0 && c.last_id() == 0 {
                self.channels.remove(channel);
            }
        }
    }

    /// Channels the hub holds.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
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
        assert_eq!(h.publish("a", "x".into(), Instant::now()).message.id, 1);
        assert_eq!(h.publish("a", "y".into(), Instant::now()).message.id, 2);
        assert_eq!(h.publish("b", "z".into(), Instant::now()).message.id, 1);
        assert_eq!(h.last_id("a"), 2);
        assert_eq!(h.last_id("none"), 0);
    }

    #[test]
    fn since_returns_newer_messages_oldest_first() {
        let mut h = hub(10, 1000);
        for i in 0..5 {
            h.publish("a", format!("m{i}").into(), Instant::now());
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
            h.publish("a", "x".into(), Instant::now());
        }
        let b = h.since("a", 0);
        assert_eq!(ids(&b), [3, 4, 5]);
        assert_eq!(b.gap, Some(Gap { from: 1, to: 2 }));

        let mut h = hub(100, 10);
        for _ in 0..5 {
            h.publish("a", "abcd".into(), Instant::now());
        }
        assert_eq!(ids(&h.since("a", 0)), [4, 5]);
        // A message larger than the byte budget is still kept, alone.
        h.publish("a", "0123456789abcdef".into(), Instant::now());
        assert_eq!(ids(&h.since("a", 0)), [6]);
    }

    #[test]
    fn gap_only_when_something_was_missed() {
        let mut h = hub(3, 1000);
        for _ in 0..5 {
            h.publish("a", "x".into(), Instant::now());
        }
        assert_eq!(h.since("a", 2).gap, None);
        assert_eq!(h.since("a", 1).gap, Some(Gap { from: 2, to: 2 }));
    }

    #[test]
    fn since_in_the_future_is_a_reset() {
        let mut h = hub(10, 1000);
        h.publish("a", "x".into(), Instant::now());
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
        let mut first = h.publish("a", "x".into(), Instant::now()).subscribers;
        first.sort_by_key(|s| s.0);
        assert_eq!(first, [(1, Subscription::Once), (2, Subscription::Stream)]);
        assert_eq!(
            h.publish("a", "y".into(), Instant::now()).subscribers,
            [(2, Subscription::Stream)]
        );
        h.unsubscribe("a", 2);
        assert!(
            h.publish("a", "z".into(), Instant::now())
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
            h.publish("a", data.into(), Instant::now());
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
        h.publish("kept", "x".into(), Instant::now());
        h.unsubscribe("ghost", 1);
        h.unsubscribe("kept", 2);
        assert_eq!(h.channel_count(), 1);
        assert_eq!(h.last_id("kept"), 1);
    }

    #[test]
    fn the_total_budget_drops_the_oldest_messages_of_the_whole_hub() {
        let mut h: Hub = Hub::new(HistoryLimits {
            max_messages: 100,
            max_bytes: 1000,
            max_total_bytes: 10,
        });
        h.publish("a", "aaaa".into(), Instant::now()); // a1
        h.publish("b", "bbbb".into(), Instant::now()); // b1
        h.publish("a", "aaaa".into(), Instant::now()); // a2: 12 bytes held, a1 goes
        assert_eq!(ids(&h.since("a", 0)), [2]);
        assert_eq!(h.since("a", 0).gap, Some(Gap { from: 1, to: 1 }));
        assert_eq!(ids(&h.since("b", 0)), [1]);
        // Every channel keeps its newest message, even past the budget.
        h.publish("c", "cccccccccc".into(), Instant::now());
        assert_eq!(ids(&h.since("a", 0)), [2]);
        assert_eq!(ids(&h.since("b", 0)), [1]);
        assert_eq!(ids(&h.since("c", 0)), [1]);
        // A newer message lets the older one of its channel go.
        h.publish("b", "bb".into(), Instant::now());
        assert_eq!(ids(&h.since("b", 0)), [2]);
        assert_eq!(h.total_bytes, 4 + 10 + 2);
    }

    #[test]
    fn the_eviction_line_stays_proportional_to_what_is_held() {
        let mut h = hub(2, 1000);
        for _ in 0..10_000 {
            h.publish("a", "x".into(), Instant::now());
        }
        assert!(
            h.publish_order.len() <= 2 * 2 + 1024 + 1,
            "{}",
            h.publish_order.len()
        );
        assert_eq!((h.held_messages, h.total_bytes), (2, 2));
    }

    #[test]
    fn budgets_are_inclusive_and_evictions_are_counted() {
        // Exactly at the hub-wide budget nothing goes.
        let mut h = Hub::new(HistoryLimits {
            max_messages: 100,
            max_bytes: 1000,
            max_total_bytes: 8,
        });
        h.publish("a", "aaaa".into(), Instant::now());
        h.publish("a", "aaaa".into(), Instant::now());
        assert_eq!(ids(&h.since("a", 0)), [1, 2]);
        // One byte over: the oldest goes, and the hub's counts follow.
        h.publish("b", "b".into(), Instant::now());
        assert_eq!(ids(&h.since("a", 0)), [2]);
        assert_eq!((h.held_messages, h.total_bytes), (2, 5));
        // Exactly at a channel's byte budget nothing goes either.
        let mut h = hub(100, 6);
        h.publish("c", "abc".into(), Instant::now());
        h.publish("c", "def".into(), Instant::now());
        assert_eq!(h.held("c"), (2, 6));
    }

    #[test]
    fn the_eviction_line_is_swept_exactly_past_its_bound() {
        // Ten held messages: the line may hold 2 × 10 + 1024 entries, stale ones included, and is
        // swept back to the live ones on the first publish past that.
        let mut h = hub(10, 1000);
        let mut longest = 0;
        for i in 0..3000 {
            h.publish("a", "x".into(), Instant::now());
            longest = longest.max(h.publish_order.len());
            if i == 19 {
                assert_eq!(h.publish_order.len(), 20, "no sweep below the bound");
            }
        }
        assert_eq!(longest, 2 * 10 + 1024);
        h.publish_order.clear();
        for _ in 0..(2 * 10 + 1024 + 1) {
            h.publish("a", "x".into(), Instant::now());
        }
        assert_eq!(h.publish_order.len(), 10, "swept to the held messages");
    }

    #[test]
    fn counts_channels_and_subscribers() {
        let mut h = hub(10, 1000);
        h.publish("a", "x".into(), Instant::now());
        h.publish("b", "x".into(), Instant::now());
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
