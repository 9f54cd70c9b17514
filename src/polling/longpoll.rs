//! A parked long-poll, sans-IO: the channel and position it waits on and its deadline. The
//! HTTP/1.1 connection it belongs to owes the answer; the application gives it when a publish
//! wakes the poll (200 with every message after the position) or when the deadline passes (204).
//!
//! ```text
//!  GET /longpoll/c?since=N, nothing after N ─► parked ─┬─ publish on c ─► 200 {messages after N}
//!                                                      ├─ deadline ────► 204
//!                                                      └─ shutdown ────► 204, Connection: close
//! ```
use std::time::{Duration, Instant};

/// One parked long-poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongPoll {
    channel: Box<str>,
    since: u64,
    deadline: Instant,
}

impl LongPoll {
    /// Parks a poll of `channel` for messages after `since`, for `wait` from `now`.
    pub fn park(channel: Box<str>, since: u64, wait: Duration, now: Instant) -> LongPoll {
        LongPoll {
            channel,
            since,
            deadline: now + wait,
        }
    }

    /// The channel the poll waits on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The client's position: the answer carries every message after it.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// When the poll is answered empty.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }

    /// True once the deadline has passed: answer 204.
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}

/// The wait a long-poll gets: what it asked for (or the default), never more than the maximum.
pub fn clamp_wait(asked: Option<Duration>, default: Duration, max: Duration) -> Duration {
    asked.unwrap_or(default).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_its_deadline_and_not_before() {
        let t0 = Instant::now();
        let wait = Duration::from_millis(500);
        let poll = LongPoll::park("c".into(), 7, wait, t0);
        assert_eq!((poll.channel(), poll.since()), ("c", 7));
        assert_eq!(poll.poll_timeout(), t0 + wait);
        assert!(!poll.is_expired(t0 + Duration::from_millis(499)));
        assert!(poll.is_expired(t0 + wait));
    }

    #[test]
    fn the_wait_is_clamped_to_the_maximum() {
        let s = Duration::from_secs;
        assert_eq!(clamp_wait(None, s(30), s(120)), s(30));
        assert_eq!(clamp_wait(Some(s(200)), s(30), s(120)), s(120));
        assert_eq!(clamp_wait(Some(s(1)), s(30), s(120)), s(1));
    }
}
