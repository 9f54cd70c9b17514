//! The floor for `benches/peers/nchan.sh`: a minimal single-threaded push server that does the
//! least user-space work that still serves `pushwire load` correctly, so its CPU per delivery is
//! close to what the kernel charges for the same writes to the same sockets.
//!
//! ```text
//! cargo bench --bench floor --no-run          # builds it (nchan.sh finds it by --message-format=json)
//! floor --serve 127.0.0.1:0                   # prints "floor listening on http://ADDR"
//! ```
//!
//! One `mio` loop, `httparse` for request heads, and the bytes pushwire puts on the wire, byte for
//! byte (its own encoders: `{"id":N,"data":"…"}` in one WebSocket text frame, the SSE event in one
//! HTTP chunk, the long-poll body): each publish is encoded once per transport, then written with
//! one `write` per subscriber socket straight from the publish handler, no queue, no timer, no
//! accounting. A write that would block keeps its unsent rest in that socket's buffer, written
//! on writability, and is counted: the summary printed on SIGTERM says whether that ever happened.
//!
//! Endpoints: `POST /pub/{channel}` (answers `{"channel":…,"id":N}`), `GET /ws/{channel}?since=N`,
//! `GET /sse/{channel}?last_event_id=N` (or `Last-Event-ID`), `GET /longpoll/{channel}?since=N`.
//! A channel keeps its last 1024 messages for resumes and long polls. Not done: heartbeats,
//! pings, idle timeouts, long-poll timeouts, close handshakes, permessage-deflate, limits.
//!
//! Run with no arguments (as `cargo bench` does) it prints its usage and exits.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use pushwire::http1::chunked::encode_chunk;
use pushwire::sse;
use pushwire::websocket::{self, Opcode};

const LISTENER: Token = Token(usize::MAX);
/// Messages a channel keeps for resumes and long polls.
const HISTORY: usize = 1024;
/// Largest request head (and publish body) read.
const MAX_REQUEST: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;
/// pushwire's `retry:` field, sent at the start of every SSE stream.
const SSE_RETRY_MS: u64 = 3000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(addr) = args
        .iter()
        .position(|a| a == "--serve")
        .and_then(|i| args.get(i + 1))
    else {
        println!(
            "floor: the raw-write floor of benches/peers/nchan.sh.\n\
             usage: floor --serve ADDR   (e.g. 127.0.0.1:0; prints \"floor listening on http://ADDR\")"
        );
        return;
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("floor: {addr}: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = serve(addr) {
        eprintln!("floor: {e}");
        std::process::exit(1);
    }
}

/// What a connection is, after its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading requests (publishes, long polls between answers).
    Http,
    /// A WebSocket subscriber; what it sends is read and dropped.
    Ws,
    /// An SSE subscriber; what it sends is read and dropped.
    Sse,
    /// A long poll waiting for a message after `since`.
    Parked(u64),
}

struct Conn {
    sock: TcpStream,
    state: State,
    channel: usize,
    inbuf: Vec<u8>,
    /// Bytes a write left unsent, written on writability.
    pending: Vec<u8>,
}

#[derive(Default)]
struct Channel {
    last_id: u64,
    ws: Vec<usize>,
    sse: Vec<usize>,
    parked: Vec<usize>,
    /// `(id, JSON object)` of the last [`HISTORY`] messages.
    history: VecDeque<(u64, Box<[u8]>)>,
}

#[derive(Default)]
struct Stats {
    publishes: u64,
    deliveries: u64,
    /// Writes that could not take everything (the rest was kept for writability).
    blocked: u64,
    max_pending: usize,
    /// Bytes still unsent when their connection closed.
    dropped_bytes: u64,
}

/// The connections and what writing to them needs, apart from the channels so a channel's
/// subscriber list can be walked while its sockets are written.
struct Sockets {
    conns: Slab<Conn>,
    registry: Registry,
    stats: Stats,
    dead: Vec<usize>,
}

impl Sockets {
    /// One `write` of `bytes` to the connection, or onto its unsent rest when it has one.
    fn send(&mut self, key: usize, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !c.pending.is_empty() {
            c.pending.extend_from_slice(bytes);
            self.stats.max_pending = self.stats.max_pending.max(c.pending.len());
            return;
        }
        loop {
            match (&c.sock).write(bytes) {
                Ok(n) if n == bytes.len() => return,
                Ok(n) => {
                    c.pending.extend_from_slice(&bytes[n..]);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    c.pending.extend_from_slice(bytes);
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead.push(key);
                    return;
                }
            }
        }
        self.stats.blocked += 1;
        self.stats.max_pending = self.stats.max_pending.max(c.pending.len());
        let _ = self.registry.reregister(
            &mut c.sock,
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
    }

    /// Writability: writes the unsent rest, and stops asking once it is gone.
    fn flush(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut done = 0;
        while done < c.pending.len() {
            match (&c.sock).write(&c.pending[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead.push(key);
                    return;
                }
            }
        }
        c.pending.drain(..done);
        if c.pending.is_empty() {
            c.pending = Vec::new();
            let _ = self
                .registry
                .reregister(&mut c.sock, Token(key), Interest::READABLE);
        }
    }
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    sockets: Sockets,
    channels: Vec<Channel>,
    by_name: HashMap<String, usize>,
    date: (u64, String),
    scratch: Vec<u8>,
    out: Vec<u8>,
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let listener = bind_listener(addr)?;
    let poll = Poll::new()?;
    let registry = poll.registry().try_clone()?;
    let mut server = Server {
        poll,
        listener,
        sockets: Sockets {
            conns: Slab::new(),
            registry,
            stats: Stats::default(),
            dead: Vec::new(),
        },
        channels: Vec::new(),
        by_name: HashMap::new(),
        date: (0, String::new()),
        scratch: vec![0; READ_CHUNK],
        out: Vec::new(),
    };
    server
        .poll
        .registry()
        .register(&mut server.listener, LISTENER, Interest::READABLE)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    println!(
        "floor listening on http://{}",
        server.listener.local_addr()?
    );
    io::stdout().flush()?;
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        match server
            .poll
            .poll(&mut events, Some(Duration::from_millis(200)))
        {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => server.accept(),
                Token(key) => {
                    if event.is_writable() {
                        server.sockets.flush(key);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        server.read(key, event.is_read_closed() || event.is_error());
                    }
                }
            }
        }
        server.reap();
    }
    let s = &server.sockets.stats;
    eprintln!(
        "floor: {} publishes, {} deliveries; writes that would block: {} (largest unsent rest {} B, {} B dropped with closed connections){}",
        s.publishes,
        s.deliveries,
        s.blocked,
        s.max_pending,
        s.dropped_bytes,
        if s.blocked == 0 {
            ""
        } else {
            " — some deliveries waited for writability"
        }
    );
    Ok(())
}

/// pushwire's listener: backlog 4096 (mio's `bind` fixes 128).
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// The target's path and its query parameter `name`, parsed as a number.
fn query_u64(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// What a complete request asks for.
enum Request {
    Publish {
        channel: String,
        body: (usize, usize),
    },
    Ws {
        channel: String,
        since: Option<u64>,
        key: String,
    },
    Sse {
        channel: String,
        since: Option<u64>,
    },
    LongPoll {
        channel: String,
        since: u64,
    },
    NotFound,
}

/// Parses one request at the start of `buf`: `Ok(None)` until it is complete (head and body),
/// else the request and its length.
fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_REQUEST => return Err(()),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let length: usize = match header("content-length") {
        Some(v) => v.parse().map_err(|_| ())?,
        None => 0,
    };
    if length > MAX_REQUEST {
        return Err(());
    }
    if buf.len() < head + length {
        return Ok(None);
    }
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let route = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|c| !c.is_empty() && !c.contains('/'))
            .map(str::to_string)
    };
    let request = match req.method.unwrap_or("") {
        "POST" => match route("/pub/") {
            Some(channel) => Request::Publish {
                channel,
                body: (head, head + length),
            },
            None => Request::NotFound,
        },
        "GET" => {
            if let (Some(channel), Some(key)) = (route("/ws/"), header("sec-websocket-key")) {
                Request::Ws {
                    channel,
                    since: query_u64(query, "since"),
                    key: key.to_string(),
                }
            } else if let Some(channel) = route("/sse/") {
                let since = header("last-event-id")
                    .and_then(|v| v.parse().ok())
                    .or_else(|| query_u64(query, "last_event_id"));
                Request::Sse { channel, since }
            } else if let Some(channel) = route("/longpoll/") {
                Request::LongPoll {
                    channel,
                    since: query_u64(query, "since").unwrap_or(0),
                }
            } else {
                Request::NotFound
            }
        }
        _ => Request::NotFound,
    };
    Ok(Some((request, head + length)))
}

/// pushwire's JSON object of a message, `{"id":N,"data":"…"}` (as `polling::encode_message_json`).
fn message_json(id: u64, data: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b",\"data\":");
    let _ = serde_json::to_writer(&mut *out, data);
    out.push(b'}');
}

/// pushwire's long-poll answer carrying `messages`, head and body.
fn poll_answer<'a>(
    date: &str,
    last_id: u64,
    messages: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) {
    let mut body = format!("{{\"last_id\":{last_id},\"messages\":[").into_bytes();
    for (i, m) in messages.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(m);
    }
    body.extend_from_slice(b"]}");
    let _ = write!(
        out,
        "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(&body);
}

/// The SSE event of a message in its HTTP chunk.
fn sse_chunk(id: u64, data: &str, out: &mut Vec<u8>) {
    let mut event = Vec::with_capacity(sse::encoded_len(Some(id), None, data));
    sse::encode_event(Some(id), None, data, &mut event);
    encode_chunk(&event, out);
}

impl Server {
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    let entry = self.sockets.conns.vacant_entry();
                    let key = entry.key();
                    if self
                        .sockets
                        .registry
                        .register(&mut sock, Token(key), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    entry.insert(Conn {
                        sock,
                        state: State::Http,
                        channel: usize::MAX,
                        inbuf: Vec::new(),
                        pending: Vec::new(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of descriptors and the like: try again at the next readiness.
                Err(_) => return,
            }
        }
    }

    /// The `Date` value, formatted once a second.
    fn date(&mut self) -> &str {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if secs != self.date.0 {
            self.date = (secs, httpdate::fmt_http_date(now));
        }
        &self.date.1
    }

    fn channel(&mut self, name: String) -> usize {
        let next = self.channels.len();
        let i = *self.by_name.entry(name).or_insert(next);
        if i == next {
            self.channels.push(Channel::default());
        }
        i
    }

    /// Reads until the socket would block or a read comes back short (pushwire's rule: the short
    /// read emptied the socket, and the next bytes are a new edge, so asking again would only cost a
    /// `WouldBlock`); when the poller reported the peer's FIN (`to_end`), until the end of the
    /// stream. Subscribers' input is dropped, requests are served.
    fn read(&mut self, key: usize, to_end: bool) {
        let mut eof = false;
        loop {
            let Some(c) = self.sockets.conns.get_mut(key) else {
                return;
            };
            match (&c.sock).read(&mut self.scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    if matches!(c.state, State::Http | State::Parked(_)) {
                        c.inbuf.extend_from_slice(&self.scratch[..n]);
                    }
                    if n < self.scratch.len() && !to_end {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        self.serve_requests(key);
        if eof {
            self.sockets.dead.push(key);
        }
    }

    /// Serves every complete request in the connection's input.
    fn serve_requests(&mut self, key: usize) {
        loop {
            let Some(c) = self.sockets.conns.get_mut(key) else {
                return;
            };
            if c.state != State::Http || c.inbuf.is_empty() {
                return;
            }
            let inbuf = std::mem::take(&mut c.inbuf);
            let (request, used) = match parse(&inbuf) {
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.sockets.conns[key].inbuf = inbuf;
                    return;
                }
                Err(()) => {
                    self.sockets.dead.push(key);
                    return;
                }
            };
            match request {
                Request::Publish { channel, body } => {
                    let answer = match std::str::from_utf8(&inbuf[body.0..body.1]) {
                        Ok(data) => {
                            let ci = self.channel(channel.clone());
                            let id = self.publish(ci, data);
                            let json = format!(
                                "{{\"channel\":{},\"id\":{id}}}",
                                serde_json::Value::from(channel)
                            );
                            format!(
                                "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
                                self.date(),
                                json.len()
                            )
                        }
                        Err(_) => "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".into(),
                    };
                    self.sockets.send(key, answer.as_bytes());
                }
                Request::Ws {
                    channel,
                    since,
                    key: ws_key,
                } => {
                    let ci = self.channel(channel);
                    self.out.clear();
                    websocket::encode_switching_protocols(
                        &websocket::accept_key(ws_key.as_bytes()),
                        &mut self.out,
                    );
                    let ch = &self.channels[ci];
                    for (id, json) in &ch.history {
                        if since.is_some_and(|s| *id > s) {
                            websocket::encode_frame(Opcode::Text, json, &mut self.out);
                        }
                    }
                    self.sockets.send(key, &self.out);
                    self.subscribe(key, ci, State::Ws);
                    // What follows is the client's frames: dropped.
                    return;
                }
                Request::Sse { channel, since } => {
                    let ci = self.channel(channel);
                    let mut out = std::mem::take(&mut self.out);
                    out.clear();
                    let _ = write!(
                        out,
                        "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n",
                        self.date()
                    );
                    let mut retry = Vec::new();
                    sse::encode_retry(SSE_RETRY_MS, &mut retry);
                    encode_chunk(&retry, &mut out);
                    for (id, json) in &self.channels[ci].history {
                        if since.is_some_and(|s| *id > s) {
                            let data = json_data(json);
                            sse_chunk(*id, &data, &mut out);
                        }
                    }
                    self.sockets.send(key, &out);
                    self.out = out;
                    self.subscribe(key, ci, State::Sse);
                    return;
                }
                Request::LongPoll { channel, since } => {
                    let ci = self.channel(channel);
                    if self.channels[ci].last_id > since {
                        let mut out = std::mem::take(&mut self.out);
                        out.clear();
                        let date = self.date().to_string();
                        let ch = &self.channels[ci];
                        poll_answer(
                            &date,
                            ch.last_id,
                            ch.history
                                .iter()
                                .filter(|(id, _)| *id > since)
                                .map(|(_, j)| &j[..]),
                            &mut out,
                        );
                        self.sockets.send(key, &out);
                        self.out = out;
                    } else {
                        self.subscribe(key, ci, State::Parked(since));
                    }
                }
                Request::NotFound => {
                    self.sockets
                        .send(key, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
            let c = &mut self.sockets.conns[key];
            c.inbuf = inbuf;
            c.inbuf.drain(..used);
        }
    }

    fn subscribe(&mut self, key: usize, ci: usize, state: State) {
        let c = &mut self.sockets.conns[key];
        c.state = state;
        c.channel = ci;
        if state != State::Http {
            c.inbuf = Vec::new();
        }
        let ch = &mut self.channels[ci];
        match state {
            State::Ws => ch.ws.push(key),
            State::Sse => ch.sse.push(key),
            State::Parked(_) => ch.parked.push(key),
            State::Http => {}
        }
    }

    /// Assigns the next id, encodes the message once per transport its subscribers use, and
    /// writes it to each of them.
    fn publish(&mut self, ci: usize, data: &str) -> u64 {
        let date = if self.channels[ci].parked.is_empty() {
            String::new()
        } else {
            self.date().to_string()
        };
        let ch = &mut self.channels[ci];
        ch.last_id += 1;
        let id = ch.last_id;
        let mut json = Vec::with_capacity(data.len() + 24);
        message_json(id, data, &mut json);
        let s = &mut self.sockets;
        s.stats.publishes += 1;
        if !ch.ws.is_empty() {
            self.out.clear();
            websocket::encode_frame(Opcode::Text, &json, &mut self.out);
            for &k in &ch.ws {
                s.send(k, &self.out);
            }
            s.stats.deliveries += ch.ws.len() as u64;
        }
        if !ch.sse.is_empty() {
            self.out.clear();
            sse_chunk(id, data, &mut self.out);
            for &k in &ch.sse {
                s.send(k, &self.out);
            }
            s.stats.deliveries += ch.sse.len() as u64;
        }
        if !ch.parked.is_empty() {
            // Every parked poll waited after the previous id (a later one would have been
            // answered at once): one answer for them all.
            self.out.clear();
            poll_answer(&date, id, std::iter::once(&json[..]), &mut self.out);
            let mut still = Vec::new();
            for k in ch.parked.drain(..) {
                match s.conns.get_mut(k).map(|c| c.state) {
                    Some(State::Parked(since)) if since < id => {
                        s.conns[k].state = State::Http;
                        s.send(k, &self.out);
                        s.stats.deliveries += 1;
                    }
                    Some(State::Parked(_)) => still.push(k),
                    _ => {}
                }
            }
            ch.parked = still;
        }
        if ch.history.len() == HISTORY {
            ch.history.pop_front();
        }
        ch.history.push_back((id, json.into_boxed_slice()));
        id
    }

    /// Closes the connections found dead, off their channels' lists.
    fn reap(&mut self) {
        while let Some(key) = self.sockets.dead.pop() {
            let Some(mut c) = self.sockets.conns.try_remove(key) else {
                continue;
            };
            let _ = self.sockets.registry.deregister(&mut c.sock);
            self.sockets.stats.dropped_bytes += c.pending.len() as u64;
            if let Some(ch) = self.channels.get_mut(c.channel) {
                let list = match c.state {
                    State::Ws => &mut ch.ws,
                    State::Sse => &mut ch.sse,
                    State::Parked(_) => &mut ch.parked,
                    State::Http => continue,
                };
                if let Some(i) = list.iter().position(|&k| k == key) {
                    list.swap_remove(i);
                }
            }
        }
    }
}

/// The data of a stored JSON object (for an SSE replay).
fn json_data(json: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Msg {
        data: String,
    }
    serde_json::from_slice::<Msg>(json)
        .map(|m| m.data)
        .unwrap_or_default()
}
