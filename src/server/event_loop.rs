//! One event loop: its listener, its connections, readiness, timers and shutdown, on one thread.
//! What reaches other loops (fan-outs, `/stats`, `/drop`, traces) goes through the hub's inboxes
//! and the loops' command queues (see the module above).
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::accept::Throttle;
use super::connection::{Connection, ReadOutcome};
use super::peers::{Command, Peers};
use super::timers::Timers;
use super::{ACCEPT_BACKOFF, LISTENER, REFUSAL_ALLOWANCE, SIGNALS, WAKER, is_loopback_peer};
use crate::app::{App, Client, ClientRef, Effect, FanOut, Session};
use crate::http1::{Refusal, Status};
use crate::ledger::{Category, Counter, Ledger, Transport};
use crate::outbuf::WriteReport;

/// Bytes asked of the socket per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// Read/process/write rounds one connection gets per loop iteration before the others' turn.
const DRIVE_BUDGET: u32 = 32;

/// While a loop waits for other loops' answers (`/stats`, `/drop`), how often it serves the
/// questions they ask it meanwhile (so two loops asking each other never wait forever).
const ANSWER_POLL: Duration = Duration::from_millis(1);

/// One event loop: a listener, the connections it accepted, and the application that serves them.
pub(super) struct EventLoop {
    /// This loop's index among the server's loops.
    pub(super) index: usize,
    pub(super) poll: Poll,
    pub(super) listener: Option<TcpListener>,
    pub(super) conns: Slab<Connection>,
    /// The hub (shared), this loop's ledger, the settings and the routes.
    pub(super) app: App,
    /// The other loops' command queues and wakers.
    pub(super) peers: Arc<Peers>,
    /// Fan-outs of publishes to this loop's subscribers, in publish order.
    pub(super) inbox: Receiver<FanOut>,
    /// What other loops ask of this one.
    pub(super) commands: Receiver<Command>,
    /// Commands that arrived while this loop was waiting for answers itself, served next turn.
    pub(super) held_commands: Vec<Command>,
    /// The connection whose request this loop is answering while it waits for other loops.
    pub(super) busy: Option<usize>,
    /// Set by the [`super::ShutdownHandle`].
    pub(super) shutdown_requested: Arc<AtomicBool>,
    pub(super) timers: Timers,
    /// Connections to drive before the loop sleeps again (woken by a publish, a timer…).
    pub(super) dirty: Vec<usize>,
    /// One write report reused by every write, so a delivery allocates nothing of its own.
    pub(super) write_report: WriteReport,
    /// Counts fan-outs, so each starts at a different subscriber (see `fanout`).
    pub(super) fanout_turn: usize,
    /// Connections that used their budget and continue in the next loop iteration.
    pub(super) deferred: Vec<usize>,
    /// Subscribers whose fanned-out messages wait for the coalescing window, and when the first
    /// window ends.
    pub(super) coalescing: Vec<usize>,
    pub(super) coalesce_at: Option<Instant>,
    /// `app.now` in µs since the server started, wrapping: what `last_write_us` is compared to.
    pub(super) clock_us: u32,
    /// `--write-coalesce` in µs.
    pub(super) coalesce_us: u32,
    /// The one buffer every `read` lands in before its bytes go to their connection.
    pub(super) scratch: Box<[u8]>,
    /// Accepting paused (out of file descriptors) until this moment.
    pub(super) accept_paused_until: Option<Instant>,
    /// Accept errors are logged at most once a second (see `accept.rs`).
    pub(super) accept_error_log: Throttle,
    /// A descriptor held in reserve (`/dev/null`): out of descriptors, it is let go to accept one
    /// client and tell it `503` instead of leaving it in the backlog unanswered.
    pub(super) spare_fd: Option<std::fs::File>,
    /// When the demo ticker publishes next (first loop only), and how many ticks it has sent.
    pub(super) next_tick: Option<Instant>,
    pub(super) ticks: u64,
    /// The read end of the socket pair that signal handlers write to (`Server::stop_on_signals`;
    /// first loop only), and what a signal asks for.
    pub(super) signals: Option<(mio::net::UnixStream, super::ShutdownHandle)>,
    /// Fan-outs taken from the inbox while checking it before `poll` (see `run`).
    pub(super) early_fan_outs: std::collections::VecDeque<FanOut>,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        index: usize,
        poll: Poll,
        listener: TcpListener,
        app: App,
        peers: Arc<Peers>,
        inbox: Receiver<FanOut>,
        commands: Receiver<Command>,
        shutdown_requested: Arc<AtomicBool>,
    ) -> EventLoop {
        let coalesce = app.config.write_coalesce.as_micros();
        let coalesce_us = u32::try_from(coalesce).unwrap_or(u32::MAX);
        EventLoop {
            index,
            poll,
            listener: Some(listener),
            conns: Slab::new(),
            app,
            peers,
            inbox,
            commands,
            held_commands: Vec::new(),
            busy: None,
            shutdown_requested,
            timers: Timers::default(),
            dirty: Vec::new(),
            write_report: WriteReport::default(),
            fanout_turn: 0,
            deferred: Vec::new(),
            coalescing: Vec::new(),
            coalesce_at: None,
            clock_us: 0,
            coalesce_us,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            accept_paused_until: None,
            accept_error_log: Throttle::default(),
            spare_fd: std::fs::File::open("/dev/null").ok(),
            next_tick: None,
            ticks: 0,
            signals: None,
            early_fan_outs: std::collections::VecDeque::new(),
        }
    }

    /// Starts a graceful shutdown when a byte arrives on `stream` (a signal handler writes one).
    pub(super) fn watch_signals(
        &mut self,
        mut stream: mio::net::UnixStream,
        shutdown: super::ShutdownHandle,
    ) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut stream, SIGNALS, mio::Interest::READABLE)?;
        self.signals = Some((stream, shutdown));
        Ok(())
    }

    /// A signal arrived: the bytes are drained (several signals are one shutdown) and every
    /// loop is told, this one included.
    fn on_signal(&mut self) {
        let Some((stream, shutdown)) = &mut self.signals else {
            return;
        };
        let mut bytes = [0u8; 64];
        while matches!(stream.read(&mut bytes), Ok(n) if n > 0) {}
        shutdown.shutdown();
    }

    /// The loop's time in µs since the server started, wrapping (see `write_soon`).
    fn micros(&self) -> u32 {
        // Truncation is the wrap (every 71 minutes): a connection idle since exactly a multiple of
        // that may wait one window it need not; nothing else depends on the absolute value.
        self.app
            .now
            .saturating_duration_since(self.app.started)
            .as_micros() as u32
    }

    /// Whether a message just queued for connection `key` leaves now (marked dirty) or shares
    /// the write at the end of its coalescing window (`--write-coalesce`). A subscriber written
    /// less than the window ago does not get a write per message: what is fanned out to it
    /// meanwhile leaves in one write call when the window ends. At 2 000 messages a second and the
    /// default 2 ms that is four messages per write; at 100 a second (one every 10 ms) every
    /// message leaves at once, so latency pays only where write calls are saved.
    pub(super) fn write_soon(&mut self, key: usize) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let window = self.coalesce_us;
        let since = self.clock_us.wrapping_sub(conn.last_write_us);
        // A long-poll's answer is one write whenever it leaves: waiting here would only delay
        // it. Its session held it for the window already (`polling::longpoll`), where waiting
        // lets the answer carry more messages.
        let answer = matches!(conn.client.session, Session::Http(_));
        if since >= window || answer {
            self.dirty.push(key);
            return;
        }
        let at = self.app.now + Duration::from_micros(u64::from(window - since));
        self.coalesce_at = Some(self.coalesce_at.map_or(at, |t| t.min(at)));
        self.coalescing.push(key);
    }

    /// The name other loops and the hub know connection `key` of this loop by.
    pub(super) fn client_ref(&self, key: usize) -> Option<ClientRef> {
        let conn = self.conns.get(key)?;
        Some(ClientRef {
            loop_index: self.index,
            key,
            serial: conn.client.id,
        })
    }

    /// Serves until shutdown is requested and every connection has finished (or the grace period
    /// has passed).
    pub(super) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        self.app.now = Instant::now();
        // The first loop runs the demo ticker and the history's expiry, for the whole server.
        let first = self.index == 0;
        if first && self.app.config.demo_channel.is_some() {
            self.next_tick = Some(Instant::now() + self.app.config.demo_interval);
        }
        loop {
            // Publishers wake this loop only while it is marked asleep. Marked before it looks
            // at its inbox (and reads the history's next expiry), a fan-out that arrives from
            // here on is either seen now or wakes the poll.
            self.peers.going_to_sleep(self.index);
            if let Ok(fan_out) = self.inbox.try_recv() {
                self.early_fan_outs.push_back(fan_out);
            }
            let wake_at = [
                self.timers.next_deadline(),
                self.accept_paused_until,
                self.app.shutdown_deadline(),
                self.next_tick,
                self.coalesce_at,
                first.then(|| self.app.history_deadline()).flatten(),
            ]
            .into_iter()
            .flatten()
            .min();
            let busy = !(self.deferred.is_empty()
                && self.held_commands.is_empty()
                && self.early_fan_outs.is_empty());
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                wake_at.map(|at| at.saturating_duration_since(Instant::now()))
            };
            let polled = self.poll.poll(&mut events, timeout);
            self.peers.awake(self.index);
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.app.now = Instant::now();
            self.clock_us = self.micros();
            self.app.date.refresh(std::time::SystemTime::now());
            if first {
                self.app.expire_history();
            }
            self.dirty.append(&mut self.deferred);
            if self.coalesce_at.is_some_and(|t| t <= self.app.now) {
                self.coalesce_at = None;
                self.dirty.append(&mut self.coalescing);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => self.on_signal(),
                    WAKER => {
                        if self.shutdown_requested.load(Ordering::SeqCst) {
                            self.begin_shutdown();
                        }
                    }
                    Token(key) => {
                        if let Some(conn) = self.conns.get_mut(key) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                conn.readable = true;
                            }
                            if event.is_read_closed() || event.is_error() {
                                conn.read_closed = true;
                            }
                            if event.is_writable() || event.is_write_closed() || event.is_error() {
                                conn.writable = true;
                            }
                            self.dirty.push(key);
                        }
                    }
                }
            }
            // Whatever woke the loop, other loops' work for it comes first: fan-outs were
            // published before anything this turn reads.
            self.serve_commands();
            self.deliver_inbox();
            if self.accept_paused_until.is_some_and(|t| t <= self.app.now) {
                self.accept_paused_until = None;
                self.accept_all();
            }
            self.drive_dirty();
            for key in self.timers.expired(self.app.now) {
                let Some(who) = self.client_ref(key) else {
                    continue;
                };
                if let Some(conn) = self.conns.get_mut(key) {
                    if self.app.on_timeout(who, &mut conn.client) {
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
            let open = self.app.shared.connections_open();
            let over_limit = open >= max;
            if over_limit && open >= max + REFUSAL_ALLOWANCE {
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
            let mut client = Client::new(self.app.shared.next_client_id(), self.app.new_session());
            client.dissectors = self.app.tracer.new_dissectors();
            client.loopback_peer = is_loopback_peer(peer.ip());
            if over_limit {
                // Tracked like any closing connection, so the 503 is not lost to a reset.
                log::debug!("{peer}: refused, over the connection limit");
                self.app.refuse(&mut client, Self::refusal_503(), true);
            }
            entry.insert(Connection::new(socket, client));
            self.app.shared.opened(self.index);
            self.dirty.push(key);
        }
    }

    /// The answer past `--max-connections`.
    pub(super) fn refusal_503() -> Refusal {
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
                conn.last_write_us = self.clock_us;
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
            // Output drained by this pass may let pipelined requests waiting on it go ahead, so
            // another pass follows any progress; unless nothing could move in it: no input left
            // to consume, none to read, and no output that could be written.
            let settled = self.conns.get(key).is_none_or(|c| {
                c.client.input.is_empty()
                    && !c.readable
                    && (c.client.output.is_empty() || !c.writable)
            });
            if settled || (read == 0 && !progressed && !wrote) {
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
            let Some(who) = self.client_ref(key) else {
                return progressed;
            };
            let Some(conn) = self.conns.get_mut(key) else {
                return progressed;
            };
            let (moved, effect) = self.app.process(who, &mut conn.client);
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
            Effect::Published => self.after_publish(),
            Effect::Drop(transport) => {
                let mut dropped = self.drop_transport(transport, key);
                let ask = |reply| Command::Drop(transport, reply);
                self.ask_every_loop(key, ask, |n| dropped += n);
                if let Some(conn) = self.conns.get_mut(key) {
                    let answer = format!("{{\"dropped\":{dropped}}}");
                    self.app
                        .respond_json(&mut conn.client, answer, Category::Other, &[]);
                }
            }
            Effect::TracingStarted => self.tracing_changed(),
            Effect::Stats(channel) => {
                // Every loop's ledger, summed: each loop counts its own connections.
                let mut ledger = self.app.ledger.clone();
                self.ask_every_loop(key, Command::Ledger, |theirs: Ledger| ledger.merge(&theirs));
                let json = self.app.stats_json(&ledger, channel.as_deref());
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

    pub(super) fn update_deadline(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let new = conn
            .client
            .session
            .poll_timeout(conn.client.output.is_empty());
        self.timers.set(key, new);
    }

    /// Removes a connection: its timer, its subscriptions, its socket.
    pub(super) fn close(&mut self, key: usize) {
        let Some(who) = self.client_ref(key) else {
            return;
        };
        self.emit_traces(key);
        let mut conn = self.conns.remove(key);
        self.app.shared.closed(self.index);
        self.timers.remove(key);
        self.trace_forget(key);
        self.app.on_closed(who, &conn.client);
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
            let Some(who) = self.client_ref(key) else {
                continue;
            };
            if let Some(conn) = self.conns.get_mut(key) {
                self.app.on_shutdown(who, &mut conn.client);
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
        if self.app.tick(self.ticks, sent_ms) {
            self.after_publish();
        }
    }

    /// A publish of this loop handed its fan-out to the loops with subscribers: wake the
    /// others, and deliver this loop's share (behind any earlier publish in its inbox).
    fn after_publish(&mut self) {
        let wakes = self.app.take_wakes();
        if wakes != 0 {
            self.peers.wake_sleepers_in(wakes);
        }
        self.deliver_inbox();
    }

    /// Delivers every fan-out waiting in this loop's inbox, in publish order.
    fn deliver_inbox(&mut self) {
        // Taken from the inbox before the loop last slept: they come first.
        while let Some(fan_out) = self.early_fan_outs.pop_front() {
            self.fan_out(fan_out);
        }
        while let Ok(fan_out) = self.inbox.try_recv() {
            self.fan_out(fan_out);
        }
    }

    /// Serves what other loops asked of this one.
    fn serve_commands(&mut self) {
        let held = std::mem::take(&mut self.held_commands);
        for command in held {
            self.serve(command);
        }
        while let Ok(command) = self.commands.try_recv() {
            self.serve(command);
        }
    }

    fn serve(&mut self, command: Command) {
        match command {
            Command::Ledger(reply) => {
                let _ = reply.send(self.app.ledger.clone());
            }
            Command::Drop(transport, reply) => {
                let asker = self.busy.unwrap_or(usize::MAX);
                let _ = reply.send(self.drop_transport(transport, asker));
            }
            Command::Trace(record) => self.feed_record(&record),
            Command::TracingChanged => self.on_tracing_changed(),
        }
    }

    /// Asks every other loop for something on behalf of connection `asker` (`ask` builds the
    /// command around the reply's sender) and hands each answer to `answer`. While waiting it
    /// answers the other loops' questions for their ledger or a drop (never dropping `asker`), so
    /// loops asking each other at once both go on; anything else they send waits for the next
    /// turn (this loop is in the middle of a request).
    fn ask_every_loop<T>(
        &mut self,
        asker: usize,
        ask: impl Fn(Sender<T>) -> Command,
        mut answer: impl FnMut(T),
    ) {
        self.busy = Some(asker);
        let (reply, answers) = std::sync::mpsc::channel();
        let mut waiting = 0;
        for other in 0..self.peers.len() {
            if other != self.index && self.peers.send(other, ask(reply.clone())) {
                waiting += 1;
            }
        }
        drop(reply);
        while waiting > 0 {
            match answers.recv_timeout(ANSWER_POLL) {
                Ok(value) => {
                    answer(value);
                    waiting -= 1;
                }
                Err(RecvTimeoutError::Timeout) => {
                    while let Ok(command) = self.commands.try_recv() {
                        match command {
                            Command::Ledger(_) | Command::Drop(..) => self.serve(command),
                            other => self.held_commands.push(other),
                        }
                    }
                }
                // Every loop still asked has stopped (shutdown): no answer will come.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.busy = None;
    }
}
