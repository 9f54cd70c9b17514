//! The only code that knows `mio`: the listener, the connection table, readiness, timers and
//! shutdown. It moves bytes between sockets and the sans-IO cores and nothing else; what the bytes
//! mean is decided in `http` (this module's request handling) and the protocol modules.
//!
//! One event-loop thread serves every connection. Readiness is edge-triggered, so each connection
//! remembers whether it is still readable / writable and is driven until `WouldBlock`; its mio
//! interest is derived from its state after every step (write interest only while output waits).
mod connection;
mod date;
mod http;
mod router;
mod sse;
mod stats;
mod timers;
mod trace;
mod websocket;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::config::Config;
use crate::hub::Hub;
use crate::ledger::{Category, Counter, Ledger, Transport};
use crate::outbuf::WriteReport;
use connection::{Connection, Phase, ReadOutcome};
use date::DateCache;
use timers::Timers;

/// The listening socket's token.
const LISTENER: Token = Token(usize::MAX - 1);
/// The token of the waker that asks the loop to shut down.
const WAKER: Token = Token(usize::MAX - 2);

/// Connections past `max_connections` that are still tracked while they get their 503 and a
/// lingering close; past this many more, the 503 is written and the socket dropped at once.
const REFUSAL_ALLOWANCE: usize = 64;

/// Bytes asked of the socket per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// Read/process/write rounds one connection gets per loop iteration before the others' turn.
const DRIVE_BUDGET: u32 = 32;

/// How long to wait before accepting again after running out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections the kernel may queue before the loop accepts them. mio and std listen with 128; a
/// burst of clients larger than that (thousands of long-polls reconnecting at once) would see SYNs
/// dropped and retried a second later. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Binds a non-blocking listener with [`LISTEN_BACKLOG`] (socket2 exposes the backlog that mio's
/// `bind` fixes).
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Asks a running server to shut down gracefully, from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    requested: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // If the wake fails the loop is already gone.
        let _ = self.waker.wake();
    }
}

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Connection>,
    hub: Hub,
    timers: Timers,
    config: Config,
    date: DateCache,
    /// The time of the current loop iteration: cores get time from here, never from the clock.
    now: Instant,
    /// Connections to drive before the loop sleeps again (woken by a publish, a timer…).
    dirty: Vec<usize>,
    /// Connections that used their budget and continue in the next loop iteration.
    deferred: Vec<usize>,
    /// The one buffer every `read` lands in before its bytes go to their connection.
    scratch: Box<[u8]>,
    shutdown: ShutdownHandle,
    /// Set once shutdown began: the moment every connection is closed regardless.
    shutdown_deadline: Option<Instant>,
    /// Accepting paused (out of file descriptors) until this moment.
    accept_paused_until: Option<Instant>,
    /// When the demo ticker publishes next, and how many ticks it has sent.
    next_tick: Option<Instant>,
    ticks: u64,
    /// Every byte, count and latency, per transport.
    ledger: Ledger,
    /// When the server started (for `uptime_s` and trace times).
    started: Instant,
    /// Trace sinks.
    tracer: trace::Tracer,
}

impl Server {
    /// Binds the listener; the server runs when [`Server::run`] is called.
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = bind_listener(config.addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let local_addr = listener.local_addr()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut date = DateCache::default();
        date.refresh();
        let tracer = trace::Tracer::new(&config.trace)?;
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            hub: Hub::new(config.history),
            timers: Timers::default(),
            config,
            date,
            now: Instant::now(),
            dirty: Vec::new(),
            deferred: Vec::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            shutdown: ShutdownHandle {
                requested: Arc::new(AtomicBool::new(false)),
                waker,
            },
            shutdown_deadline: None,
            accept_paused_until: None,
            ledger: Ledger::new(),
            started: Instant::now(),
            tracer,
            next_tick: None,
            ticks: 0,
        })
    }

    /// The address actually bound (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shutdown is requested and every connection has finished (or the grace period
    /// has passed).
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        if self.config.demo_channel.is_some() {
            self.next_tick = Some(Instant::now() + self.config.demo_interval);
        }
        loop {
            let wake_at = [
                self.timers.next_deadline(),
                self.accept_paused_until,
                self.shutdown_deadline,
                self.next_tick,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = if self.deferred.is_empty() {
                wake_at.map(|at| at.saturating_duration_since(Instant::now()))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = Instant::now();
            self.date.refresh();
            self.dirty.append(&mut self.deferred);
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    WAKER => {
                        if self.shutdown.requested.load(Ordering::SeqCst) {
                            self.begin_shutdown();
                        }
                    }
                    Token(key) => {
                        if let Some(conn) = self.conns.get_mut(key) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                conn.readable = true;
                            }
                            if event.is_writable() || event.is_write_closed() || event.is_error() {
                                conn.writable = true;
                            }
                            self.dirty.push(key);
                        }
                    }
                }
            }
            if self.accept_paused_until.is_some_and(|t| t <= self.now) {
                self.accept_paused_until = None;
                self.accept_all();
            }
            self.drive_dirty();
            for key in self.timers.expired(self.now) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.deadline = None;
                    self.on_deadline(key);
                    self.dirty.push(key);
                }
            }
            if self.next_tick.is_some_and(|t| t <= self.now) {
                self.tick();
            }
            self.drive_dirty();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() {
                    return Ok(());
                }
                if self.now >= deadline {
                    log::info!(
                        "shutdown grace over; closing {} connections",
                        self.conns.len()
                    );
                    return Ok(());
                }
            }
        }
    }

    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            let (mut socket, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the pending connections stay queued; try again shortly.
                    log::warn!("accept failed: {e}; pausing accepts");
                    self.accept_paused_until = Some(self.now + ACCEPT_BACKOFF);
                    return;
                }
            };
            let over_limit = self.conns.len() >= self.config.max_connections;
            if over_limit && self.conns.len() >= self.config.max_connections + REFUSAL_ALLOWANCE {
                // Even the refusals are too many: answer and drop without tracking.
                let mut head = Vec::new();
                http::encode_refusal_503(self.date.value(), &mut head);
                // Best effort on a fresh socket: the response fits in its send buffer.
                let _ = socket.write(&head);
                continue;
            }
            // Small writes (one message) must leave at once: latency is what is measured.
            let _ = socket.set_nodelay(true);
            let dissectors = self.new_dissectors();
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut socket, Token(key), Interest::READABLE)
            {
                log::warn!("{peer}: register failed: {e}");
                continue;
            }
            let conn = entry.insert(Connection::new(socket, self.now));
            conn.dissectors = dissectors;
            if over_limit {
                // Tracked like any closing connection, so the 503 is not lost to a reset.
                log::debug!("{peer}: refused, over the connection limit");
                let mut head = Vec::new();
                http::encode_refusal_503(self.date.value(), &mut head);
                conn.output.push_bytes(&head, Category::Other);
                conn.phase = Phase::Closing {
                    since: self.now,
                    write_shut: false,
                };
            }
            self.dirty.push(key);
        }
    }

    fn drive_dirty(&mut self) {
        while let Some(key) = self.dirty.pop() {
            self.drive(key);
        }
    }

    /// The input buffer's high-water mark: reading pauses above it until the core consumes.
    fn input_cap(&self) -> usize {
        self.config.http.max_head + 16 * 1024
    }

    /// Reads, lets the cores consume, writes, until nothing moves; then re-derives interest and
    /// deadline.
    fn drive(&mut self, key: usize) {
        let cap = self.input_cap();
        let mut budget = DRIVE_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let read = match conn.fill_input(cap, self.now, &mut self.scratch) {
                Ok(ReadOutcome::Read(n)) => n,
                Ok(ReadOutcome::Eof) => 0,
                Err(e) => {
                    log::debug!("c{key}: read error: {e}");
                    self.close(key);
                    return;
                }
            };
            let progressed = self.process(key);
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let reads = std::mem::take(&mut conn.unattributed_reads);
            self.ledger
                .count(conn.transport, Counter::ReadSyscalls, reads);
            let mut report = WriteReport {
                tap: conn.dissectors.is_some().then(Vec::new),
                ..WriteReport::default()
            };
            let flushed = conn.flush(&mut report);
            let wrote = matches!(flushed, Ok(n) if n > 0);
            if wrote {
                // A reader taking its output is active, whatever the phase.
                conn.last_activity = self.now;
            }
            if let Some(written) = report.tap.take() {
                conn.dissect(crate::trace::Direction::Sent, &written);
            }
            let transport = conn.transport;
            self.record_writes(transport, report);
            self.emit_traces(key);
            if let Err(e) = flushed {
                log::debug!("c{key}: write error: {e}");
                self.close(key);
                return;
            }
            if let Some(conn) = self.conns.get_mut(key) {
                conn.trim_input();
            }
            if self.close_if_done(key) {
                return;
            }
            // Output drained by this pass may let pipelined requests waiting on it go ahead.
            if read == 0 && !progressed && !wrote {
                break;
            }
            budget -= 1;
            if budget == 0 {
                // Others get their turn; this connection continues next iteration.
                self.deferred.push(key);
                break;
            }
        }
        self.update_registration(key);
        self.update_deadline(key);
    }

    /// Adds what a flush wrote to the ledger: bytes by category, write calls, and the latency of
    /// every delivery whose first byte left.
    fn record_writes(&mut self, transport: Transport, report: WriteReport) {
        for category in Category::ALL {
            let n = report.by_category[category.index()];
            if n > 0 {
                self.ledger.outbound(transport, category, n as usize);
            }
        }
        self.ledger
            .count(transport, Counter::WriteSyscalls, report.syscalls);
        if !report.delivered.is_empty() {
            let now = Instant::now();
            for published in report.delivered {
                let micros = now.saturating_duration_since(published).as_micros();
                self.ledger
                    .latency(transport, u64::try_from(micros).unwrap_or(u64::MAX));
            }
        }
    }

    /// Routes a connection's accounting to `transport` from now on, counting it as a connection of
    /// that transport the first time.
    fn set_transport(&mut self, key: usize, transport: Transport) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.transport = transport;
        let bit = 1u8 << (transport as u8);
        if conn.counted_transports & bit == 0 {
            conn.counted_transports |= bit;
            self.ledger.count(transport, Counter::Connections, 1);
        }
    }

    /// Counts bytes a core consumed from the connection's input.
    fn account_in(&mut self, key: usize, category: Category, n: usize) {
        if let Some(conn) = self.conns.get(key) {
            self.ledger.inbound(conn.transport, category, n);
        }
    }

    /// Closes the connection when its work is over; true when it was closed.
    fn close_if_done(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return true;
        };
        let done = match &mut conn.phase {
            Phase::Closing { write_shut, since } => {
                if conn.output.is_empty() && !*write_shut {
                    *write_shut = true;
                    *since = self.now;
                    // Half-close: the peer sees the end of our answer, and we read until its EOF.
                    let _ = conn.socket.shutdown(std::net::Shutdown::Write);
                }
                *write_shut && conn.peer_closed
            }
            // A parked client or a stream subscriber that goes away is forgotten at once.
            Phase::Parked { .. } | Phase::ReadingBody { .. } | Phase::Sse { .. } => {
                conn.peer_closed
            }
            Phase::WebSocket(ws) => conn.peer_closed || ws.finished(conn.output.is_empty()),
            Phase::AwaitingHead => {
                if conn.peer_closed {
                    // Requests already complete were handled by `process`; finish their output.
                    conn.phase = Phase::Closing {
                        since: self.now,
                        write_shut: false,
                    };
                    return self.close_if_done(key);
                }
                false
            }
        };
        if done {
            self.close(key);
        }
        done
    }

    fn update_registration(&mut self, key: usize) {
        let cap = self.input_cap();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let wanted = conn.wanted_interest(cap);
        if wanted != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.socket, Token(key), wanted)
            {
                Ok(()) => conn.registered = wanted,
                Err(e) => {
                    log::debug!("c{key}: reregister failed: {e}");
                    self.close(key);
                }
            }
        }
    }

    fn update_deadline(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let c = &self.config;
        let new = match &conn.phase {
            Phase::AwaitingHead if !conn.request_begun => conn.last_activity + c.idle_timeout,
            Phase::AwaitingHead => conn.head_started + c.head_timeout,
            // A body has the idle timeout in all, not per read: dripping never extends it.
            Phase::ReadingBody { .. } => conn.head_started + c.idle_timeout,
            // Output a reader is still taking gets the idle timeout since its last progress.
            Phase::Closing { .. } if !conn.output.is_empty() => conn.last_activity + c.idle_timeout,
            Phase::Parked { deadline, .. } => *deadline,
            Phase::Sse { next_heartbeat, .. } => *next_heartbeat,
            Phase::WebSocket(ws) => ws.deadline(),
            Phase::Closing { since, .. } => *since + c.shutdown_grace,
        };
        let old = conn.deadline.replace(new);
        self.timers.reschedule(key, old, Some(new));
    }

    /// Removes a connection: its timer, its subscriptions, its socket.
    fn close(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        self.emit_traces(key);
        let mut conn = self.conns.remove(key);
        self.timers.reschedule(key, conn.deadline, None);
        self.trace_forget(key);
        match &conn.phase {
            Phase::Parked { channel, .. }
            | Phase::Sse {
                channel: Some(channel),
                ..
            } => {
                self.hub.unsubscribe(channel, key);
            }
            Phase::WebSocket(ws) => {
                if let Some(channel) = &ws.channel {
                    self.hub.unsubscribe(channel, key);
                }
            }
            _ => {}
        }
        // Deregistering before the socket drops keeps mio's bookkeeping exact.
        let _ = self.poll.registry().deregister(&mut conn.socket);
        log::trace!("c{key}: closed after {} requests", conn.requests);
    }

    fn begin_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() {
            return;
        }
        log::info!("shutting down: {} connections open", self.conns.len());
        self.shutdown_deadline = Some(self.now + self.config.shutdown_grace);
        self.next_tick = None;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.on_shutdown(key);
            self.dirty.push(key);
        }
    }

    /// The demo ticker: one message a second on the demo channel, carrying its send time so every
    /// transport's page panel can show publish-to-receive latency.
    fn tick(&mut self) {
        let Some(channel) = self.config.demo_channel.clone() else {
            return;
        };
        self.ticks += 1;
        self.next_tick = if self.is_shutting_down() {
            None
        } else {
            Some(self.now + self.config.demo_interval)
        };
        let sent_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let text = format!("{{\"text\":\"tick {}\",\"sent\":{sent_ms}}}", self.ticks);
        let published = self.hub.publish(&channel, text.into_boxed_str(), self.now);
        self.fan_out(&channel, published);
    }

    fn is_shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }
}
