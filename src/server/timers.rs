//! Connection deadlines, so the loop can sleep until the earliest one.
//!
//! A deadline moves at nearly every request and answer: a long poll parks until its timeout,
//! its answer leaves, the next request parks again. So the queue is lazy. A deadline that moves
//! later leaves its earlier entry queued; when that entry comes due, the real deadline is
//! looked up and queued again. Only a deadline earlier than the one queued costs an insert.
//! (Removing and inserting on every move cost about 0.3 µs per long-poll delivery in a `perf`
//! profile, 2 % of the server's CPU: BENCHMARKS.md.) The price is an occasional early wake-up,
//! and entries left behind by a connection that closed stay queued (skipped) until their time:
//! the queue is bounded by the connections seen within the longest timeout, not those open.
use std::collections::BTreeSet;
use std::time::Instant;

/// A token's deadline and the earliest entry the queue holds for it.
#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    deadline: Option<Instant>,
    /// Never later than `deadline` when that is set: the entry that will look at it again.
    queued: Option<Instant>,
}

/// One deadline per connection token at most; setting a new one replaces the old.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    /// Entries, some of them left behind by deadlines that moved later.
    queue: BTreeSet<(Instant, usize)>,
    /// By token (connection keys are dense, so a vector).
    slots: Vec<Slot>,
}

impl Timers {
    /// Sets `token`'s deadline (`None`: no deadline).
    pub(crate) fn set(&mut self, token: usize, deadline: Option<Instant>) {
        if token >= self.slots.len() {
            self.slots.resize(token + 1, Slot::default());
        }
        let slot = &mut self.slots[token];
        slot.deadline = deadline;
        if let Some(at) = deadline
            && slot.queued.is_none_or(|queued| at < queued)
        {
            self.queue.insert((at, token));
            slot.queued = Some(at);
        }
    }

    /// Forgets `token` (its connection closed; the token may be reused).
    pub(crate) fn remove(&mut self, token: usize) {
        if let Some(slot) = self.slots.get_mut(token) {
            if let Some(queued) = slot.queued.take() {
                self.queue.remove(&(queued, token));
            }
            slot.deadline = None;
        }
    }

    /// When the loop must next look at the timers: the earliest entry, which may come before
    /// any real deadline (one that moved later since), never after.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Every token whose deadline is at or before `now`, each once; their deadlines are cleared.
    /// Entries for deadlines that moved later are queued again at the real deadline.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(&(at, token)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            let Some(slot) = self.slots.get_mut(token) else {
                continue;
            };
            if slot.queued != Some(at) {
                // Left behind by an earlier deadline set later; the live entry is elsewhere.
                continue;
            }
            slot.queued = None;
            match slot.deadline {
                Some(deadline) if deadline <= now => {
                    slot.deadline = None;
                    due.push(token);
                }
                Some(deadline) => {
                    self.queue.insert((deadline, token));
                    slot.queued = Some(deadline);
                }
                None => {}
            }
        }
        due
    }

    /// Entries queued, live or left behind (for tests).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn clock() -> impl Fn(u64) -> Instant {
        let t0 = Instant::now();
        move |ms| t0 + Duration::from_millis(ms)
    }

    #[test]
    fn fires_in_order_and_replaces() {
        let at = clock();
        let mut timers = Timers::default();
        timers.set(1, Some(at(30)));
        timers.set(2, Some(at(10)));
        timers.set(1, Some(at(5)));
        assert_eq!(timers.next_deadline(), Some(at(5)));
        assert_eq!(timers.expired(at(10)), [1, 2]);
        // Token 1's entry at 30 was left behind: it wakes the loop and fires nothing.
        assert_eq!(timers.next_deadline(), Some(at(30)));
        assert!(timers.expired(at(40)).is_empty());
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn a_deadline_moved_later_fires_at_the_new_time_only() {
        let at = clock();
        let mut timers = Timers::default();
        timers.set(3, Some(at(10)));
        timers.set(3, Some(at(50)));
        // Moving later inserts nothing: the entry at 10 stays and comes due early.
        assert_eq!(timers.entries(), 1);
        assert_eq!(timers.next_deadline(), Some(at(10)));
        assert!(timers.expired(at(10)).is_empty());
        assert_eq!(timers.next_deadline(), Some(at(50)));
        assert!(timers.expired(at(49)).is_empty());
        assert_eq!(timers.expired(at(50)), [3]);
        assert!(timers.expired(at(500)).is_empty());
    }

    #[test]
    fn a_cleared_or_removed_deadline_never_fires() {
        let at = clock();
        let mut timers = Timers::default();
        timers.set(1, Some(at(10)));
        timers.set(1, None);
        timers.set(2, Some(at(10)));
        timers.remove(2);
        assert!(timers.expired(at(100)).is_empty());
        assert_eq!(timers.entries(), 0);
    }

    #[test]
    fn a_reused_token_is_not_fired_by_its_predecessors_entries() {
        let at = clock();
        let mut timers = Timers::default();
        // The first connection on token 4 left an entry behind (its deadline moved earlier).
        timers.set(4, Some(at(30)));
        timers.set(4, Some(at(10)));
        timers.remove(4);
        // The next connection on token 4 has its deadline at 60.
        timers.set(4, Some(at(60)));
        assert!(timers.expired(at(30)).is_empty());
        assert_eq!(timers.expired(at(60)), [4]);
    }

    #[test]
    fn a_parking_long_poll_costs_no_insert_per_request() {
        // Park until now + 30 s, answer (head timeout: now + 10 s), park again, …: after the
        // first answer every deadline is later than the one queued.
        let at = clock();
        let mut timers = Timers::default();
        for request in 0..100 {
            let now = request * 5;
            timers.set(7, Some(at(now + 30_000)));
            timers.set(7, Some(at(now + 1 + 10_000)));
        }
        assert_eq!(timers.entries(), 2);
        // Still the real deadline: the last one set (head timeout after the 100th answer).
        assert!(timers.expired(at(495 + 1 + 10_000 - 1)).is_empty());
        assert_eq!(timers.expired(at(495 + 1 + 10_000)), [7]);
    }
}
