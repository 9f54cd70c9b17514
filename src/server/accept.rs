//! What accepting does when it cannot serve: the `503` written on a socket that is not kept, and
//! the accept errors (`EMFILE`…) logged at most once a second.
use std::io;
use std::time::{Duration, Instant};

use super::connection::SendSink;
use super::event_loop::EventLoop;
use crate::outbuf::{OutQueue, WriteReport};

/// Accept errors (EMFILE…) are logged at most once per this interval.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Lets a repeated log line through at most once per interval, counting what it held back.
#[derive(Debug, Default)]
pub(super) struct Throttle {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    /// Whether to log now; if so, how many occurrences were held back since the last line.
    pub(super) fn allow(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        if self.last.is_some_and(|t| now < t + interval) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

impl EventLoop {
    /// Answers `503` on a fresh socket that is then dropped, untracked. What the client already
    /// sent is read first (a socket closed with unread input sends a reset, which can destroy
    /// the answer in flight), and the write side is shut after the answer.
    pub(super) fn refuse_untracked(&self, socket: &mut mio::net::TcpStream) {
        use std::io::Read;
        let mut scratch = [0u8; 4096];
        for _ in 0..4 {
            match socket.read(&mut scratch) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let mut out = OutQueue::new();
        let mut core = crate::http1::Connection::new(self.app.http, self.app.now);
        let date = self.app.date.value();
        core.refuse(&Self::refusal_503(), true, date, self.app.now, &mut out);
        // Best effort on a fresh socket: the response fits in its send buffer.
        let _ = out.write_to(&mut SendSink(socket), &mut WriteReport::default());
        let _ = socket.shutdown(std::net::Shutdown::Write);
    }

    /// Logs an accept error at most once a second, with how many went unlogged before it.
    pub(super) fn log_accept_error(&mut self, e: &io::Error) {
        if let Some(unlogged) = self
            .accept_error_log
            .allow(self.app.now, ACCEPT_ERROR_LOG_INTERVAL)
        {
            log::warn!(
                "accept failed: {e} ({unlogged} more since the last warning); answering 503"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ACCEPT_BACKOFF;

    #[test]
    fn a_throttled_log_speaks_once_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut log = Throttle::default();
        assert_eq!(log.allow(t0, second), Some(0));
        for i in 1..10 {
            assert_eq!(log.allow(t0 + i * ACCEPT_BACKOFF, second), None);
        }
        assert_eq!(log.allow(t0 + second, second), Some(9));
        assert_eq!(log.allow(t0 + second, second), None);
    }
}
