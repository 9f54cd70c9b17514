//! The only `mio` code of the clients: sockets, readiness, timers. Each connection carries a
//! sans-IO role (a [`Subscriber`] or a [`Publisher`]); the driver moves bytes between them and
//! the sockets, counts every byte, and does what the role says next.
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::publisher::Publisher;
use super::subscriber::{Counters, Delivery, Next, Subscriber};

/// Where delivered messages go.
pub trait Sink {
    /// Called for each message a subscriber receives: `key` is its connection's key in the driver,
    /// `now` the moment of the read that completed the message (latency is measured from it).
    fn deliver(&mut self, key: usize, sub: &Subscriber, delivery: Delivery<'_>, now: Instant);
}

/// A sink that keeps nothing.
pub struct Discard;

impl Sink for Discard {
    fn deliver(&mut self, _: usize, _: &Subscriber, _: Delivery<'_>, _: Instant) {}
}

/// What a driver connection is for: reading a channel as one transport, or publishing to it.
pub enum Role {
    /// A subscriber of one transport, measuring what it receives.
    Sub(Box<Subscriber>),
    /// A publisher sending messages over HTTP when the controller says.
    Pub(Box<Publisher>),
}

impl Role {
    /// The connection's byte, message and error counters, whichever role it plays.
    pub fn counters(&self) -> &Counters {
        match self {
            Role::Sub(s) => &s.counters,
            Role::Pub(p) => &p.counters,
        }
    }

    fn counters_mut(&mut self) -> &mut Counters {
        match self {
            Role::Sub(s) => &mut s.counters,
            Role::Pub(p) => &mut p.counters,
        }
    }
}

struct Conn {
    role: Role,
    addr: SocketAddr,
    sock: Option<TcpStream>,
    connecting: bool,
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    wake: Option<Instant>,
}

/// Delay before retrying a connection that failed to open.
const RETRY_CONNECT: Duration = Duration::from_millis(250);
const READ_CHUNK: usize = 64 * 1024;
/// `EINPROGRESS`: a non-blocking connect under way.
const EINPROGRESS: i32 = 115;

/// Many client connections on one `mio` poll: opens (and re-opens) them, moves their bytes, runs
/// their timers and hands every delivery to a [`Sink`].
pub struct Driver {
    poll: Poll,
    events: Events,
    ready: Vec<(usize, bool, bool)>,
    conns: Slab<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    readbuf: Box<[u8]>,
    sources: Vec<IpAddr>,
    next_source: usize,
    /// Connections that failed to open, and the latest reason.
    pub connect_errors: u64,
    /// The latest failure of any connection (connect, read, or a response its role refused).
    pub last_error: Option<String>,
}

impl Driver {
    /// A driver; connections bind to `sources` in turn (none: the kernel picks).
    pub fn new(sources: Vec<IpAddr>) -> io::Result<Driver> {
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            conns: Slab::new(),
            timers: BinaryHeap::new(),
            readbuf: vec![0; READ_CHUNK].into_boxed_slice(),
            sources,
            next_source: 0,
            connect_errors: 0,
            last_error: None,
        })
    }

    /// Adds a connection, not yet opened: [`Driver::schedule`] or [`Driver::connect`] opens it.
    pub fn add(&mut self, role: Role, addr: SocketAddr) -> usize {
        self.conns.insert(Conn {
            role,
            addr,
            sock: None,
            connecting: false,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            wake: None,
        })
    }

    /// Connections added, open or not; none is ever removed.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection was added.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Every connection's key and role, in key order.
    pub fn roles(&self) -> impl Iterator<Item = (usize, &Role)> {
        self.conns.iter().map(|(k, c)| (k, &c.role))
    }

    /// The role of connection `key`; `None` for a key that was never added.
    pub fn role(&self, key: usize) -> Option<&Role> {
        self.conns.get(key).map(|c| &c.role)
    }

    /// Open connections (connected or connecting).
    pub fn open_count(&self) -> usize {
        self.conns.iter().filter(|(_, c)| c.sock.is_some()).count()
    }

    /// Opens (or re-opens) the connection at `at`.
    pub fn schedule(&mut self, key: usize, at: Instant) {
        if let Some(c) = self.conns.get_mut(key) {
            c.wake = Some(at);
            self.timers.push(Reverse((at, key)));
        }
    }

    /// Starts a non-blocking connect.
    pub fn connect(&mut self, key: usize) {
        let source = (!self.sources.is_empty()).then(|| {
            self.next_source = (self.next_source + 1) % self.sources.len();
            self.sources[self.next_source]
        });
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match open(conn.addr, source) {
            Ok(mut sock) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = self
                    .poll
                    .registry()
                    .register(&mut sock, Token(key), interest)
                {
                    self.last_error = Some(e.to_string());
                    return;
                }
                conn.sock = Some(sock);
                conn.connecting = true;
            }
            Err(e) => {
                self.connect_errors += 1;
                self.last_error = Some(format!("connect {}: {e}", conn.addr));
                conn.role.counters_mut().errors += 1;
                let at = Instant::now() + RETRY_CONNECT;
                conn.wake = Some(at);
                self.timers.push(Reverse((at, key)));
            }
        }
    }

    /// Queues a publish on a publisher connection.
    pub fn publish(&mut self, key: usize, payload: &[u8]) {
        if let Some(conn) = self.conns.get_mut(key) {
            if let Role::Pub(p) = &mut conn.role {
                p.publish(payload, &mut conn.out);
            }
            if conn.sock.is_some() && !conn.connecting {
                // A broken connection shows on its next read.
                let _ = flush(conn);
            }
        }
    }

    /// Asks a subscriber to close at its next idle point, reconnecting by its rules or not.
    pub fn close_soon(&mut self, key: usize, reconnect: bool) {
        let now = Instant::now();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let next = match &mut conn.role {
            Role::Sub(s) => s.close_soon(now, reconnect),
            Role::Pub(_) => Some(Next::Close(None)),
        };
        if let Some(next) = next {
            self.apply(key, next);
        } else if !reconnect {
            conn.wake = None;
        }
    }

    /// Closes every connection now, without reconnecting.
    pub fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.apply(key, Next::Close(None));
        }
    }

    /// One round: waits for readiness or the next timer (at most `timeout`), then serves it.
    pub fn turn(&mut self, timeout: Duration, sink: &mut impl Sink) -> io::Result<()> {
        let now = Instant::now();
        let wait = match self.timers.peek() {
            Some(Reverse((at, _))) => timeout.min(at.saturating_duration_since(now)),
            None => timeout,
        };
        match self.poll.poll(&mut self.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.ready.clear();
        self.ready.extend(self.events.iter().map(|e| {
            let broken = e.is_error() || e.is_read_closed();
            (
                e.token().0,
                e.is_readable() || broken,
                e.is_writable() || broken,
            )
        }));
        let now = Instant::now();
        let mut ready = std::mem::take(&mut self.ready);
        for &(key, readable, writable) in &ready {
            self.serve(key, readable, writable, now, sink);
        }
        ready.clear();
        self.ready = ready;
        while let Some(&Reverse((at, key))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.fire(key, at, now);
        }
        Ok(())
    }

    fn fire(&mut self, key: usize, at: Instant, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.wake != Some(at) {
            return;
        }
        conn.wake = None;
        if conn.sock.is_none() {
            self.connect(key);
            return;
        }
        let mut next = match &mut conn.role {
            Role::Sub(s) => s.on_timer(now, &mut conn.out),
            Role::Pub(_) => Next::Read,
        };
        if let Err(nx) = flush(conn) {
            next = nx;
        }
        self.apply(key, next);
    }

    fn serve(
        &mut self,
        key: usize,
        readable: bool,
        writable: bool,
        now: Instant,
        sink: &mut impl Sink,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(sock) = &conn.sock else {
            return;
        };
        if conn.connecting {
            if !(writable || readable) {
                return;
            }
            let failed = match sock.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => match sock.peer_addr() {
                    Ok(_) => None,
                    Err(e) if e.kind() == ErrorKind::NotConnected => return,
                    Err(e) => Some(e),
                },
            };
            if let Some(e) = failed {
                self.connect_errors += 1;
                self.last_error = Some(format!("connect {}: {e}", conn.addr));
                conn.role.counters_mut().errors += 1;
                self.apply(key, Next::Close(Some(now + RETRY_CONNECT)));
                return;
            }
            conn.connecting = false;
            match &mut conn.role {
                Role::Sub(s) => s.connected(&mut conn.out),
                Role::Pub(p) => p.connected(),
            }
        }
        if (writable || !conn.out.is_empty())
            && let Err(next) = flush(conn)
        {
            self.apply(key, next);
            return;
        }
        if readable {
            self.read(key, now, sink);
        }
    }

    fn read(&mut self, key: usize, now: Instant, sink: &mut impl Sink) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Some(sock) = &mut conn.sock else {
                return;
            };
            let n = match sock.read(&mut self.readbuf) {
                Ok(0) => {
                    let next = match &mut conn.role {
                        Role::Sub(s) => s.on_eof(now, &mut |sub, d| sink.deliver(key, sub, d, now)),
                        Role::Pub(p) => p.on_eof(now),
                    };
                    self.apply(key, next);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.last_error = Some(e.to_string());
                    conn.role.counters_mut().errors += 1;
                    let next = match &mut conn.role {
                        Role::Sub(s) => s.on_eof(now, &mut |sub, d| sink.deliver(key, sub, d, now)),
                        Role::Pub(p) => p.on_eof(now),
                    };
                    self.apply(key, next);
                    return;
                }
            };
            conn.role.counters_mut().bytes_in += n as u64;
            // Latency is measured against this read, not against the start of the turn.
            let now = Instant::now();
            let data = &self.readbuf[..n];
            let input: &[u8] = if conn.inbuf.is_empty() {
                data
            } else {
                conn.inbuf.extend_from_slice(data);
                &conn.inbuf
            };
            let mut pos = 0;
            let mut next = Next::Read;
            let mut failed = None;
            while pos < input.len() {
                let result = match &mut conn.role {
                    Role::Sub(s) => s.on_input(&input[pos..], now, &mut conn.out, &mut |sub, d| {
                        sink.deliver(key, sub, d, now)
                    }),
                    Role::Pub(p) => p.on_input(&input[pos..], now),
                };
                match result {
                    Ok((used, nx)) => {
                        pos += used;
                        next = nx;
                        if used == 0 || nx != Next::Read {
                            break;
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let leftover = input.len() - pos;
            if conn.inbuf.is_empty() {
                conn.inbuf.extend_from_slice(&data[pos..]);
            } else {
                conn.inbuf.drain(..conn.inbuf.len() - leftover);
            }
            if let Some(e) = failed {
                self.last_error = Some(e);
                conn.role.counters_mut().errors += 1;
                self.apply(key, Next::Close(Some(now + RETRY_CONNECT)));
                return;
            }
            if let Err(nx) = flush(conn) {
                next = nx;
            }
            if next != Next::Read {
                self.apply(key, next);
                if !matches!(next, Next::Sleep(_)) {
                    return;
                }
            }
            // A short read drained the socket: data or a FIN arriving later raises a new edge, so
            // the read that would only say WouldBlock is skipped (one syscall per delivery).
            if n < self.readbuf.len() {
                return;
            }
        }
    }

    fn apply(&mut self, key: usize, next: Next) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match next {
            Next::Read => {}
            Next::Sleep(at) => {
                conn.wake = Some(at);
                self.timers.push(Reverse((at, key)));
            }
            Next::Close(reconnect) => {
                if let Some(mut sock) = conn.sock.take() {
                    let _ = self.poll.registry().deregister(&mut sock);
                }
                conn.connecting = false;
                conn.out.clear();
                conn.out_pos = 0;
                conn.inbuf.clear();
                conn.wake = reconnect;
                if let Some(at) = reconnect {
                    self.timers.push(Reverse((at, key)));
                }
            }
        }
    }
}

/// Writes what is queued. `Err(next)` when the connection broke.
fn flush(conn: &mut Conn) -> Result<(), Next> {
    let Some(sock) = &mut conn.sock else {
        return Ok(());
    };
    if conn.connecting {
        return Ok(());
    }
    while conn.out_pos < conn.out.len() {
        match sock.write(&conn.out[conn.out_pos..]) {
            Ok(n) => {
                conn.out_pos += n;
                conn.role.counters_mut().bytes_out += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                conn.role.counters_mut().errors += 1;
                return Err(Next::Close(Some(Instant::now() + RETRY_CONNECT)));
            }
        }
    }
    conn.out.clear();
    conn.out_pos = 0;
    Ok(())
}

/// A non-blocking TCP connect from `source`, if given.
fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    if let Some(ip) = source {
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) || e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}
