//! Every knob and limit of the server, with its unit and default, in one place.
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::http1;
use crate::hub::HistoryLimits;
use crate::trace::TraceOptions;

/// The server's settings: every limit and timeout, built from the command line by `main` and
/// checked with [`Config::validate`] before the server starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Event loops, each on its own thread; 0 means one per core.
    pub threads: usize,
    /// Most open client connections; the excess is answered 503 and closed. Lowered at start to
    /// what the open-file limit can hold.
    pub max_connections: usize,
    /// Largest message, in bytes: a publish body past it is answered 413.
    pub max_message_size: usize,
    /// How many messages, and how many payload bytes, each channel keeps for resuming; the
    /// memory all channels may take together, how many there may be and how long a message is
    /// held.
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
    /// Most memory queued for one connection, in bytes (each unit's bytes and its entry), before
    /// the server stops reading its pipelined requests (HTTP) or, for a stream, treats it as a
    /// slow consumer.
    pub max_pending_output: usize,
    /// Memory of fan-outs queued for one event loop (subscriber lists and payloads) past which
    /// it is behind, and publishes that would reach its subscribers are refused with 503.
    pub max_fanout_backlog: usize,
    /// The reconnection delay an SSE stream tells its client (`retry:`).
    pub sse_retry: Duration,
    /// Interval between SSE heartbeat comments; they keep a fixed schedule, messages or not.
    pub sse_heartbeat: Duration,
    /// Interval between server pings on a WebSocket.
    pub ws_ping_interval: Duration,
    /// How long a WebSocket peer has to answer a ping with a pong before it is closed.
    pub ws_pong_timeout: Duration,
    /// How long to wait for the peer's Close after sending ours before closing TCP.
    pub ws_close_timeout: Duration,
    /// Accept permessage-deflate (RFC 7692) when a WebSocket client offers it.
    pub ws_deflate: bool,
    /// When not empty, WebSocket upgrades whose `Origin` is not listed are refused with 403
    /// (cross-site WebSocket hijacking).
    pub allowed_origins: Vec<String>,
    /// `--admin`: `/trace` and `/drop` answer every peer; without it only loopback peers.
    pub admin: bool,
    /// The channel the built-in ticker publishes to once per `demo_interval` (None: no ticker).
    pub demo_channel: Option<String>,
    /// Interval between ticker messages.
    pub demo_interval: Duration,
    /// Frame tracing: stderr, JSON Lines file, filter, preview size.
    pub trace: TraceOptions,
    /// On shutdown, how long in-flight responses get to drain before every socket is closed.
    pub shutdown_grace: Duration,
    /// How long after a write a subscriber's next fanned-out messages wait to share one write,
    /// and after a long-poll answer the connection's next answer waits to carry more messages
    /// (zero: each leaves at once).
    pub write_coalesce: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            threads: 0,
            max_connections: 10_000,
            max_message_size: 64 * 1024,
            history: HistoryLimits::default(),
            http: http1::Limits::default(),
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            longpoll_timeout: Duration::from_secs(30),
            longpoll_max_timeout: Duration::from_secs(120),
            max_pending_output: 1024 * 1024,
            max_fanout_backlog: 64 * 1024 * 1024,
            sse_retry: Duration::from_secs(3),
            sse_heartbeat: Duration::from_secs(15),
            ws_ping_interval: Duration::from_secs(30),
            ws_pong_timeout: Duration::from_secs(30),
            ws_close_timeout: Duration::from_secs(5),
            ws_deflate: true,
            allowed_origins: Vec::new(),
            admin: false,
            demo_channel: Some("demo".to_string()),
            demo_interval: Duration::from_secs(1),
            trace: TraceOptions::default(),
            shutdown_grace: Duration::from_secs(2),
            write_coalesce: Duration::from_millis(2),
        }
    }
}

/// File descriptors the server keeps for itself besides its connections: stdio, the listener,
/// the poller and its waker, a trace file, the spare descriptor it holds to refuse clients past the
/// limit, and slack.
pub const RESERVED_FDS: usize = 16;

/// The most connections `nofile` open files can hold when `refusing` more are tracked while they
/// get their `503` (at least 1).
pub fn max_connections_within(nofile: u64, refusing: usize) -> usize {
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    nofile.saturating_sub(RESERVED_FDS + refusing).max(1)
}

/// A configuration that can not serve as asked: refused at start rather than discovered later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The default long-poll wait is longer than the longest a long-poll may ask for.
    LongpollTimeoutAboveMax {
        /// `--longpoll-timeout`: the wait a long-poll gets when it names none.
        timeout: Duration,
        /// `--longpoll-max-timeout`: the longest wait a long-poll may ask for.
        max: Duration,
    },
    /// A largest message of 0 bytes: every publish would be refused.
    ZeroMaxMessageSize,
    /// At most 0 connections: every client would be refused.
    ZeroMaxConnections,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::LongpollTimeoutAboveMax { timeout, max } => write!(
                f,
                "--longpoll-timeout {} s is above --longpoll-max-timeout {} s: lower the one or \
                 raise the other",
                timeout.as_secs_f64(),
                max.as_secs_f64()
            ),
            ConfigError::ZeroMaxMessageSize => write!(
                f,
                "--max-message-size 0 would refuse every publish: give at least 1 (bytes)"
            ),
            ConfigError::ZeroMaxConnections => write!(
                f,
                "--max-connections 0 would refuse every client: give at least 1"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Refuses settings that contradict each other or leave nothing to serve.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.longpoll_timeout > self.longpoll_max_timeout {
            return Err(ConfigError::LongpollTimeoutAboveMax {
                timeout: self.longpoll_timeout,
                max: self.longpoll_max_timeout,
            });
        }
        if self.max_message_size == 0 {
            return Err(ConfigError::ZeroMaxMessageSize);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroMaxConnections);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_fit_in_the_open_file_limit() {
        assert_eq!(max_connections_within(1024, 64), 1024 - 16 - 64);
        assert_eq!(max_connections_within(20_000, 64), 20_000 - 80);
        assert_eq!(max_connections_within(50, 64), 1);
        assert_eq!(max_connections_within(u64::MAX, 64), usize::MAX - 80);
    }

    #[test]
    fn the_default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn contradictions_and_zero_limits_are_refused() {
        let c = Config {
            longpoll_timeout: Duration::from_secs(200),
            ..Config::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "--longpoll-timeout 200 s is above --longpoll-max-timeout 120 s: lower the one or \
             raise the other"
        );
        let c = Config {
            max_message_size: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::ZeroMaxMessageSize));
        let c = Config {
            max_connections: 0,
            ..Config::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::ZeroMaxConnections));
    }
}
