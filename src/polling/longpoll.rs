//! A parked long-poll, sans-IO: the channel and position it waits on and its deadline. The
//! HTTP/1.1 connection it belongs to owes the answer; the application gives it when a publish
//! wakes the poll (200 with every message after the position) or when the deadline passes (204).
//!
//! An answer carries every message after the position, so a poller costs a request and an answer
//! per *batch*, not per message. Batches only form when messages come faster than the poll's
//! round trip, and a fast server answers before the next one is published: one message per
//! answer, a read and a write per message. So a connection answered less than the answer window
//! ago (`--write-coalesce`, as for streams) is *held* until the window ends, and what is published
//! meanwhile goes in the same answer. At 2 000 messages a second and 2 ms that is about four
//! messages per answer; at 10 a second the next message comes long after the window, and every
//! answer leaves at once.
//!
//! ```text
//!  GET /longpoll/c?since=N ─┬─ news ────────────────────► 200 {messages after N}
//!                           ├─ news, within the window ──► held
//!                           └─ nothing after N ─► parked ─┬─ publish on c ─► 200, or held within the window
//!                                                         ├─ deadline ────► 204
//!                                                         └─ shutdown ────► 204, Connection: close
//!  held ─┬─ window ends ─► 200 {messages after N}
//!        └─ shutdown ────► 200 {messages after N}, Connection: close
//! ```
use std::time::{Duration, Instant};

/// One parked long-poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongPoll {
    channel: Box<str>,
    since: u64,
    deadline: Instant,
    /// Set when news is waiting but the answer waits for the end of the window.
    answer_at: Option<Instant>,
}

impl LongPoll {
    /// Parks a poll of `channel` for messages after `since`, for `wait` from `now`.
    pub fn park(channel: Box<str>, since: u64, wait: Duration, now: Instant) -> LongPoll {
        LongPoll {
            channel,
            since,
            deadline: now + wait,
            answer_at: None,
        }
    }

    /// Holds the answer until `at`: there is news, but the connection was answered less than the
    /// window ago (see [`window_end`]). Messages published until then go in the same answer.
    pub fn hold_until(&mut self, at: Instant) {
        self.answer_at = Some(self.answer_at.map_or(at, |t| t.min(at)));
    }

    /// True while an answer is owed and only waits for the window: later publishes need not
    /// wake it (they will be in the answer).
    pub fn is_held(&self) -> bool {
        self.answer_at.is_some()
    }

    /// True once a held answer is due: answer 200 with every message after the position. That
    /// is at the window's end, or at the poll's deadline if it comes first (a short
    /// `timeout=`): news is never answered with 204.
    pub fn is_due(&self, now: Instant) -> bool {
        self.answer_at
            .is_some_and(|at| now >= at.min(self.deadline))
    }

    /// The channel the poll waits on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The client's position: the answer carries every message after it.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// When the poll next has something to do: its held answer is due, or it is answered empty.
    pub fn poll_timeout(&self) -> Instant {
        self.answer_at
            .map_or(self.deadline, |at| at.min(self.deadline))
    }

    /// True once the deadline has passed: answer 204.
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }
}

/// When the answer window of a connection last answered at `answered` ends, if `now` is still
/// inside it: an answer due now waits until then. `None` (answer now) when it never answered,
/// when the window is over, or when the window is zero.
pub fn window_end(answered: Option<Instant>, window: Duration, now: Instant) -> Option<Instant> {
    let end = answered?.checked_add(window)?;
    (now < end).then_some(end)
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
    fn a_held_answer_is_due_at_the_window_end_and_not_before() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut poll = LongPoll::park("c".into(), 7, ms(500), t0);
        assert!(!poll.is_held());
        assert!(!poll.is_due(t0 + ms(499)), "not held: never due");
        poll.hold_until(t0 + ms(2));
        assert!(poll.is_held());
        assert_eq!(poll.poll_timeout(), t0 + ms(2));
        assert!(!poll.is_due(t0 + ms(1)));
        assert!(poll.is_due(t0 + ms(2)));
        // A later hold does not push the answer back; an earlier one brings it forward.
        poll.hold_until(t0 + ms(3));
        assert_eq!(poll.poll_timeout(), t0 + ms(2));
        poll.hold_until(t0 + ms(1));
        assert_eq!(poll.poll_timeout(), t0 + ms(1));
        // The deadline still bounds it.
        let mut short = LongPoll::park("c".into(), 7, ms(1), t0);
        short.hold_until(t0 + ms(2));
        assert_eq!(short.poll_timeout(), t0 + ms(1));
        assert!(
            short.is_due(t0 + ms(1)),
            "due with its news, not expired empty"
        );
    }

    #[test]
    fn the_window_holds_only_answers_due_inside_it() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(window_end(None, ms(2), t0), None, "never answered");
        assert_eq!(window_end(Some(t0), ms(2), t0 + ms(1)), Some(t0 + ms(2)));
        assert_eq!(window_end(Some(t0), ms(2), t0 + ms(2)), None, "window over");
        assert_eq!(window_end(Some(t0), Duration::ZERO, t0), None, "no window");
    }

    #[test]
    fn the_wait_is_clamped_to_the_maximum() {
        let s = Duration::from_secs;
        assert_eq!(clamp_wait(None, s(30), s(120)), s(30));
        assert_eq!(clamp_wait(Some(s(200)), s(30), s(120)), s(120));
        assert_eq!(clamp_wait(Some(s(1)), s(30), s(120)), s(1));
    }
}
