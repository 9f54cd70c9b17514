//! Every knob and limit of the server, with its unit and default, in one place.
use std::net::SocketAddr;
use std::time::Duration;

use crate::http1;
use crate::hub::HistoryLimits;

#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Most open client connections; the excess is answered 503 and closed.
    pub max_connections: usize,
    /// Largest message, in bytes: a publish body past it is answered 413.
    pub max_message_size: usize,
    /// How many messages, and how many payload bytes, each channel keeps for resuming.
    pub history: HistoryLimits,
    /// Request line and head size limits (414, 431).
    pub http: http1::Limits,
    /// Time a client has to send a complete request head once the connection is open or the head
    /// has begun (slowloris defence) → 408.
    pub head_timeout: Duration,
    /// An idle keep-alive connection (no request under way) is closed after this long; it is also
    /// how long a request body may stall between reads.
    pub idle_timeout: Duration,
    /// How long a long-poll stays parked when it does not say `timeout=`.
    pub longpoll_timeout: Duration,
    /// The longest `timeout=` a long-poll may ask for (larger values are clamped).
    pub longpoll_max_timeout: Duration,
    /// Most bytes queued for one connection before the server stops reading its pipelined requests
    /// (HTTP) or, for a stream, treats it as a slow consumer.
    pub max_pending_output: usize,
    /// On shutdown, how long in-flight responses get to drain before every socket is closed.
    pub shutdown_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 10_000,
            max_message_size: 64 * 1024,
            history: HistoryLimits::default(),
            http: http1::Limits::default(),
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            longpoll_timeout: Duration::from_secs(30),
            longpoll_max_timeout: Duration::from_secs(120),
            max_pending_output: 1024 * 1024,
            shutdown_grace: Duration::from_secs(2),
        }
    }
}
