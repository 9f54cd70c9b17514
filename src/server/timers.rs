//! Connection deadlines, kept sorted so the loop can sleep until the earliest one.
use std::collections::BTreeSet;
use std::time::Instant;

/// One deadline per connection token at most; setting a new one replaces the old.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queue: BTreeSet<(Instant, usize)>,
}

impl Timers {
    /// Moves `token`'s deadline from `old` to `new` (either may be `None`).
    pub(crate) fn reschedule(&mut self, token: usize, old: Option<Instant>, new: Option<Instant>) {
        if old == new {
            return;
        }
        if let Some(at) = old {
            self.queue.remove(&(at, token));
        }
        if let Some(at) = new {
            self.queue.insert((at, token));
        }
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Removes and returns every token whose deadline is at or before `now`.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<usize> {
        let mut due = Vec::new();
        while let Some(&(at, token)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            due.push(token);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_order_and_replaces() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut timers = Timers::default();
        timers.reschedule(1, None, Some(at(30)));
        timers.reschedule(2, None, Some(at(10)));
        timers.reschedule(1, Some(at(30)), Some(at(5)));
        assert_eq!(timers.next_deadline(), Some(at(5)));
        assert_eq!(timers.expired(at(10)), [1, 2]);
        assert_eq!(timers.next_deadline(), None);
    }
}
