//! The only code that knows `mio`, sockets and the clock: the listener, the connection table,
//! readiness, timers and shutdown (the driver, this file), and the application (`crate::app`) that the
//! driver hands each connection to. The driver moves bytes and time between sockets and the
//! sans-IO cores and nothing else; what the bytes mean is decided by the cores and the routes.
//!
//! One event-loop thread serves every connection. Readiness is edge-triggered, so each connection
//! remembers whether it is still readable / writable and is driven until `WouldBlock`; its mio
//! interest is derived after every step from what its session wants (write interest only while
//! output waits), as in rustls's `tlsserver-mio` example.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod accept;
mod connection;
mod fanout;
mod fdlimit;
mod timers;
mod trace;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::app::{App, Client, Effect};
use crate::config::Config;
use crate::http1::{Refusal, Status};
use crate::ledger::{Category, Counter, Transport};
use crate::outbuf::WriteReport;
use accept::Throttle;
use connection::{Connection, ReadOutcome};
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
    /// Stops accepting, gives in-flight responses up to `shutdown_grace` to drain, then closes
    /// every connection and makes [`Server::run`] return.
    pub fn shutdown(&self) {
        self.requested.store(true, Ordering::SeqCst);
        // If the wake fails the loop is already gone.
        let _ = self.waker.wake();
    }
}

/// The server: the listener, every connection and the application, driven by one `mio` loop on
/// the thread that calls [`Server::run`].
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    conns: Slab<Connection>,
    /// The hub, the ledger, the settings and the routes.
    app: App,
    timers: Timers,
    /// Connections to drive before the loop sleeps again (woken by a publish, a timer…).
    dirty: Vec<usize>,
    /// One write report reused by every write, so a delivery allocates nothing of its own.
    write_report: WriteReport,
    /// Counts publishes, so each fan-out starts at a different subscriber (see `fanout`).
    fanout_turn: usize,
    /// Connections that used their budget and continue in the next loop iteration.
    deferred: Vec<usize>,
    /// The one buffer every `read` lands in before its bytes go to their connection.
    scratch: Box<[u8]>,
    shutdown: ShutdownHandle,
    /// Set once shutdown began: the moment every connection is closed regardless.
    /// Accepting paused (out of file descriptors) until this moment.
    accept_paused_until: Option<Instant>,
    /// Accept errors are logged at most once a second (see `accept.rs`).
    accept_error_log: Throttle,
    /// A descriptor held in reserve (`/dev/null`): out of descriptors, it is let go to accept one
    /// client and tell it `503` instead of leaving it in the backlog unanswered.
    spare_fd: Option<std::fs::File>,
    /// When the demo ticker publishes next, and how many ticks it has sent.
    next_tick: Option<Instant>,
    ticks: u64,
    /// Connections accepted so far: the next one's id.
    accepted: u64,
}

impl Server {
    /// Binds the listener; the server runs when [`Server::run`] is called.
    pub fn bind(mut config: Config) -> io::Result<Server> {
        if let Some(nofile) = fdlimit::raise_nofile() {
            let most = crate::config::max_connections_within(nofile, REFUSAL_ALLOWANCE);
            if config.max_connections > most {
                log::warn!(
                    "--max-connections {} is more than the open-file limit ({nofile}, the hard \
                     RLIMIT_NOFILE) can hold; serving at most {most} connections",
                    config.max_connections
                );
                config.max_connections = most;
            }
        }
        let poll = Poll::new()?;
        let mut listener = bind_listener(config.addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let local_addr = listener.local_addr()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let tracer = crate::app::Tracer::new(&config.trace)?;
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            conns: Slab::new(),
            app: {
                let mut app = App::new(config, tracer, Instant::now());
                app.date.refresh(std::time::SystemTime::now());
                app
            },
            timers: Timers::default(),
            dirty: Vec::new(),
            write_report: WriteReport::default(),
            fanout_turn: 0,
            deferred: Vec::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            shutdown: ShutdownHandle {
                requested: Arc::new(AtomicBool::new(false)),
                waker,
            },
            accept_paused_until: None,
            accept_error_log: Throttle::default(),
            spare_fd: std::fs::File::open("/dev/null").ok(),
            next_tick: None,
            ticks: 0,
            accepted: 0,
        })
    }

    /// The address actually bound (the real port when the configured one was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that can stop this server from another thread (a signal handler, a test).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serves until shutdown is requested and every connection has finished (or the grace period
    /// has passed).
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        if self.app.config.demo_channel.is_some() {
            self.next_tick = Some(Instant::now() + self.app.config.demo_interval);
        }
        loop {
            let wake_at = [
                self.timers.next_deadline(),
                self.accept_paused_until,
                self.app.shutdown_deadline(),
                self.next_tick,
                self.app.history_deadline(),
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
            self.app.now = Instant::now();
            self.app.date.refresh(std::time::SystemTime::now());
            self.app.expire_history();
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
            if self.accept_paused_until.is_some_and(|t| t <= self.app.now) {
                self.accept_paused_until = None;
                self.accept_all();
            }
            self.drive_dirty();
            for key in self.timers.expired(self.app.now) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.deadline = None;
                    if self.app.on_timeout(key, &mut conn.client) {
                        self.close(key);
                    } else {
                        self.dirty.push(key);
                    }
                }
            }
            if self.next_tick.is_some_and(|t| t <= self.app.now) {
                self.tick();
            }
            self.drive_dirty();
            if self.app.shutdown_finished(self.conns.len()) {
                if !self.conns.is_empty() {
                    log::info!(
                        "shutdown grace over; closing {} connections",
                        self.conns.len()
                    );
                }
                return Ok(());
            }
        }
    }

    fn accept_all(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut socket, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends. With the spare descriptor let go, one waiting client
                    // is told 503 rather than left unanswered in the backlog.
                    if self.spare_fd.take().is_some() {
                        let refused = listener.accept();
                        if let Ok((mut socket, _)) = refused {
                            self.refuse_untracked(&mut socket);
                        }
                        self.spare_fd = std::fs::File::open("/dev/null").ok();
                        if self.spare_fd.is_some() {
                            self.log_accept_error(&e);
                            continue;
                        }
                    }
                    // The pending connections stay queued; try again shortly.
                    self.log_accept_error(&e);
                    self.accept_paused_until = Some(self.app.now + ACCEPT_BACKOFF);
                    return;
                }
            };
            let max = self.app.config.max_connections;
            let over_limit = self.conns.len() >= max;
            if over_limit && self.conns.len() >= max + REFUSAL_ALLOWANCE {
                // Even the refusals are too many: answer and drop without tracking.
                self.refuse_untracked(&mut socket);
                continue;
            }
            // Small writes (one message) must leave at once: latency is what is measured.
            let _ = socket.set_nodelay(true);
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
            self.accepted += 1;
            let mut client = Client::new(self.accepted, self.app.new_session());
            client.dissectors = self.app.tracer.new_dissectors();
            client.loopback_peer = is_loopback_peer(peer.ip());
            if over_limit {
                // Tracked like any closing connection, so the 503 is not lost to a reset.
                log::debug!("{peer}: refused, over the connection limit");
                self.app.refuse(&mut client, Self::refusal_503(), true);
            }
            entry.insert(Connection::new(socket, client));
            self.app.connections_open = self.conns.len();
            self.dirty.push(key);
        }
    }

    /// The answer past `--max-connections`.
    fn refusal_503() -> Refusal {
        Refusal {
            status: Status::SERVICE_UNAVAILABLE,
            reason: "too many connections".into(),
            headers: &[("Retry-After", "1")],
        }
    }

    fn drive_dirty(&mut self) {
        while let Some(key) = self.dirty.pop() {
            self.drive(key);
        }
    }

    /// The input buffer's high-water mark: reading pauses above it until the core consumes.
    fn input_cap(&self) -> usize {
        self.app.config.http.max_head + 16 * 1024
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
            let read = match conn.fill_input(cap, &mut self.scratch) {
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
            let reads = std::mem::take(&mut conn.client.unattributed_reads);
            self.app
                .ledger
                .count(conn.client.transport, Counter::ReadSyscalls, reads);
            let mut report = std::mem::take(&mut self.write_report);
            report.clear();
            report.tap = conn.client.dissectors.is_some().then(Vec::new);
            let flushed = conn.flush(&mut report);
            let wrote = matches!(flushed, Ok(n) if n > 0);
            if wrote {
                // A reader taking its output is active, whatever the session.
                conn.client.session.on_output_progress(self.app.now);
                self.app.on_output_taken(&mut conn.client);
            }
            if let Some(written) = report.tap.take() {
                conn.client.dissect(crate::trace::Direction::Sent, &written);
            }
            let transport = conn.client.transport;
            self.record_writes(transport, &mut report);
            self.write_report = report;
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
    fn record_writes(&mut self, transport: Transport, report: &mut WriteReport) {
        for category in Category::ALL {
            let n = report.by_category[category.index()];
            if n > 0 {
                self.app.ledger.outbound(transport, category, n as usize);
            }
        }
        self.app
            .ledger
            .count(transport, Counter::WriteSyscalls, report.syscalls);
        if !report.delivered.is_empty() {
            let now = Instant::now();
            for published in report.delivered.drain(..) {
                let micros = now.saturating_duration_since(published).as_micros();
                self.app
                    .ledger
                    .latency(transport, u64::try_from(micros).unwrap_or(u64::MAX));
            }
        }
    }

    /// Lets the application process the connection's input, carrying out what reaches beyond
    /// the connection. Returns whether anything happened.
    fn process(&mut self, key: usize) -> bool {
        let mut progressed = false;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return progressed;
            };
            let (moved, effect) = self.app.process(key, &mut conn.client);
            progressed |= moved;
            match effect {
                None => return progressed,
                Some(effect) => self.apply(key, effect),
            }
        }
    }

    /// Carries out an effect of connection `key`'s request.
    fn apply(&mut self, key: usize, effect: Effect) {
        match effect {
            Effect::FanOut(published) => self.fan_out(published),
            Effect::Drop(transport) => {
                let dropped = self.drop_transport(transport, key);
                if let Some(conn) = self.conns.get_mut(key) {
                    let answer = format!("{{\"dropped\":{dropped}}}");
                    self.app
                        .respond_json(&mut conn.client, answer, Category::Other, &[]);
                }
            }
            Effect::TracingStarted => self.attach_dissectors(),
            Effect::Stats(channel) => {
                let conns = &self.conns;
                let transport_of = |k: usize| conns.get(k).map(|c| c.client.transport);
                let json = self.app.stats_json(channel.as_deref(), &transport_of);
                if let Some(conn) = self.conns.get_mut(key) {
                    self.app.respond_stats(&mut conn.client, json);
                }
            }
        }
    }

    /// Closes the connection when its work is over; true when it was closed.
    fn close_if_done(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return true;
        };
        let output_empty = conn.client.output.is_empty();
        // One answer covers both: a session that asks for the write side to be shut now already
        // counts it as shut when it says whether the connection is over.
        let end = conn
            .client
            .session
            .poll_end(conn.peer_closed, output_empty, self.app.now);
        if end.shut_write {
            // Half-close: the peer sees the end of our answer, and we read until its EOF.
            let _ = conn.socket.shutdown(std::net::Shutdown::Write);
        }
        if end.close {
            self.close(key);
        }
        end.close
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
        let new = conn
            .client
            .session
            .poll_timeout(conn.client.output.is_empty());
        let old = std::mem::replace(&mut conn.deadline, new);
        self.timers.reschedule(key, old, new);
    }

    /// Removes a connection: its timer, its subscriptions, its socket.
    fn close(&mut self, key: usize) {
        if !self.conns.contains(key) {
            return;
        }
        self.emit_traces(key);
        let mut conn = self.conns.remove(key);
        self.app.connections_open = self.conns.len();
        self.timers.reschedule(key, conn.deadline, None);
        self.trace_forget(key);
        self.app.on_closed(key, &conn.client);
        // Deregistering before the socket drops keeps mio's bookkeeping exact.
        let _ = self.poll.registry().deregister(&mut conn.socket);
        log::trace!("c{}: closed", conn.client.id);
    }

    fn begin_shutdown(&mut self) {
        if !self.app.begin_shutdown() {
            return;
        }
        log::info!("shutting down: {} connections open", self.conns.len());
        self.next_tick = None;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(conn) = self.conns.get_mut(key) {
                self.app.on_shutdown(key, &mut conn.client);
                self.dirty.push(key);
            }
        }
    }

    /// The demo ticker: one message a second on the demo channel, carrying its send time.
    fn tick(&mut self) {
        self.ticks += 1;
        self.next_tick = if self.app.shutdown_deadline().is_some() {
            None
        } else {
            Some(self.app.now + self.app.config.demo_interval)
        };
        let sent_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if let Some(published) = self.app.tick(self.ticks, sent_ms) {
            self.fan_out(published);
        }
    }
}

/// Whether a peer connected from this machine: 127.0.0.0/8, `::1`, or either as an IPv4-mapped
/// IPv6 address (a dual-stack listener sees `::ffff:127.0.0.1`).
fn is_loopback_peer(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => ip
            .to_ipv4_mapped()
            .map_or(ip.is_loopback(), |v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_peer;

    #[test]
    fn loopback_peers_are_127_8_and_1_in_either_family() {
        for (addr, loopback) in [
            ("127.0.0.1", true),
            ("127.0.0.9", true),
            ("::1", true),
            ("::ffff:127.0.0.2", true),
            ("192.168.1.7", false),
            ("10.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("2001:db8::1", false),
            ("0.0.0.0", false),
        ] {
            assert_eq!(is_loopback_peer(addr.parse().unwrap()), loopback, "{addr}");
        }
    }
}
