//! One subscriber of one transport, sans-IO: it writes requests into an output buffer, reads the
//! server's bytes, hands every delivered message to a sink and says what the connection does next.
//! The driver owns the socket, the clock and the timers.
//!
//! | kind | request | resumes by |
//! |---|---|---|
//! | poll | `GET …?since=N` every interval | the `since=` cursor (`last_id`), else `ETag`/`Last-Modified` |
//! | longpoll | `GET …?since=N`, again as soon as answered | the same |
//! | sse | one `GET`, `Accept: text/event-stream` | `Last-Event-ID`, after the `retry:` delay |
//! | ws | one upgrade `GET` | `?since=N` on a new connection (the application's job) |
use std::time::{Duration, Instant};

use serde::Serialize;

use super::http::{Head, ResponseReader, get_request};
pub use super::kind::Kind;
use super::url::Url;
use super::ws::{
    DEFLATE_OFFER, FrameReader, Incoming, Nonces, accepted_deflate, check_handshake, client_frame,
    upgrade_request_with,
};
use crate::sse;
use crate::websocket::Opcode;

/// Everything a subscriber counted. Bytes are added by the driver as they cross the socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// TCP connections opened (the first and every reconnection).
    pub connections: u64,
    /// Requests written: polls, stream openings, publishes.
    pub requests: u64,
    /// Complete responses read (an SSE stream counts once, when it ends).
    pub responses: u64,
    /// Answers that carried no message (204, 304, an empty list).
    pub empty: u64,
    /// Messages delivered (subscribers) or published (publishers).
    pub messages: u64,
    /// Every byte written to the socket.
    pub bytes_out: u64,
    /// Every byte read from the socket.
    pub bytes_in: u64,
    /// Message data bytes received (what the publisher sent).
    pub payload_in: u64,
    /// Message data bytes sent (publishers).
    pub payload_out: u64,
    /// Opening request and answer head of a stream (SSE, WebSocket).
    pub handshake_out: u64,
    /// Response head bytes of a stream's opening (the 200 or 101).
    pub handshake_in: u64,
    /// Ping, pong and close frames.
    pub control_in: u64,
    /// Pong and close frame bytes written, masked.
    pub control_out: u64,
    /// Reconnections that carried a resume point.
    pub resumes: u64,
    /// Failed connects, read errors, refused answers and unreadable input.
    pub errors: u64,
}

impl Counters {
    /// Adds every count of `o` to this one (totals per kind or per run).
    pub fn add(&mut self, o: &Counters) {
        self.connections += o.connections;
        self.requests += o.requests;
        self.responses += o.responses;
        self.empty += o.empty;
        self.messages += o.messages;
        self.bytes_out += o.bytes_out;
        self.bytes_in += o.bytes_in;
        self.payload_in += o.payload_in;
        self.payload_out += o.payload_out;
        self.handshake_out += o.handshake_out;
        self.handshake_in += o.handshake_in;
        self.control_in += o.control_in;
        self.control_out += o.control_out;
        self.resumes += o.resumes;
        self.errors += o.errors;
    }
}

/// One delivered message: the server's id when it gave one, and the message data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The server's message id, when the transport carries one (poll JSON, SSE `id:`, WebSocket
    /// envelope).
    pub id: Option<u64>,
    /// The message's data, as the publisher sent it.
    pub data: &'a [u8],
}

/// What the connection does after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Stay open and wait for input (after writing what was queued).
    Read,
    /// Stay open, idle, until the instant; then [`Subscriber::on_timer`].
    Sleep(Instant),
    /// Close; reconnect at the instant, or never.
    Close(Option<Instant>),
}

/// Settings shared by the subscribers of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Time between one poll's answer and the next request.
    pub poll_interval: Duration,
    /// `timeout=` sent with long-polls (seconds), if any.
    pub longpoll_timeout: Option<f64>,
    /// SSE reconnection delay before the server sent `retry:` (the standard leaves it to the UA).
    pub sse_default_retry: Duration,
    /// Delay before a WebSocket application reconnects.
    pub ws_reconnect: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            poll_interval: Duration::from_millis(500),
            longpoll_timeout: None,
            sse_default_retry: Duration::from_secs(3),
            ws_reconnect: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Disconnected,
    /// A poll or long-poll request (or a stream's opening request) is out.
    Awaiting,
    /// A poller between requests.
    Idle,
    /// An SSE body, or WebSocket frames.
    Streaming,
}

/// One subscriber connection of one [`Kind`], sans-IO: it writes requests into the driver's
/// output buffer, reads the server's bytes, and keeps a resume point across reconnections.
pub struct Subscriber {
    /// The transport it subscribes with.
    pub kind: Kind,
    /// The channel's URL for that transport (`http://` or `ws://`).
    pub url: Url,
    /// Which channel of the run (for the tools' bookkeeping).
    pub tag: usize,
    /// The newest server id seen: `since=` for pollers and WebSocket.
    pub cursor: Option<u64>,
    /// What it counted; the driver adds the socket bytes.
    pub counters: Counters,
    opts: Options,
    state: State,
    /// Close at the next idle point instead of continuing; reconnect after or not.
    closing: Option<bool>,
    reader: ResponseReader,
    head: Option<Head>,
    body: Vec<u8>,
    sse: sse::Parser,
    events: Vec<sse::Event>,
    frames: FrameReader,
    nonces: Nonces,
    key: String,
    etag: Option<String>,
    last_modified: Option<String>,
    scratch: Vec<u8>,
    bounds: Vec<(usize, usize)>,
}

impl Subscriber {
    /// A disconnected subscriber; `seed` makes its WebSocket keys and masks reproducible.
    pub fn new(kind: Kind, url: Url, tag: usize, opts: Options, seed: u64) -> Subscriber {
        Subscriber {
            kind,
            url,
            tag,
            cursor: None,
            counters: Counters::default(),
            opts,
            state: State::Disconnected,
            closing: None,
            reader: ResponseReader::new(),
            head: None,
            body: Vec::new(),
            sse: sse::Parser::new(),
            events: Vec::new(),
            frames: FrameReader::new(),
            nonces: Nonces::new(seed),
            key: String::new(),
            etag: None,
            last_modified: None,
            scratch: Vec::new(),
            bounds: Vec::new(),
        }
    }

    /// True while a stream is open or a poller is between answers: the state the tools wait for
    /// before they publish.
    pub fn is_ready(&self) -> bool {
        match self.kind {
            Kind::Poll => self.counters.responses > 0,
            Kind::LongPoll => self.state == State::Awaiting,
            Kind::Sse | Kind::Ws | Kind::WsDeflate => self.state == State::Streaming,
        }
    }

    /// Whether a connection is open (connecting, waiting or streaming).
    pub fn is_connected(&self) -> bool {
        self.state != State::Disconnected
    }

    /// The TCP connection is up: write the opening request.
    pub fn connected(&mut self, out: &mut Vec<u8>) {
        self.counters.connections += 1;
        self.reader.reset();
        self.head = None;
        self.body.clear();
        if self.counters.connections > 1 && self.has_resume_point() {
            self.counters.resumes += 1;
        }
        self.request(out);
    }

    fn has_resume_point(&self) -> bool {
        match self.kind {
            Kind::Sse => !self.sse.last_event_id().is_empty(),
            _ => self.cursor.is_some() || self.etag.is_some() || self.last_modified.is_some(),
        }
    }

    fn request(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        self.counters.requests += 1;
        self.state = State::Awaiting;
        let since = self.cursor.map(|c| ("since", c.to_string()));
        match self.kind {
            Kind::Poll | Kind::LongPoll => {
                let mut params: Vec<(&str, String)> = since.into_iter().collect();
                if let (Kind::LongPoll, Some(t)) = (self.kind, self.opts.longpoll_timeout) {
                    params.push(("timeout", t.to_string()));
                }
                let target = self.url.target_with(&params);
                let mut extra = Vec::new();
                if let Some(e) = &self.etag {
                    extra.push(("If-None-Match", e.as_str()));
                }
                if let Some(m) = &self.last_modified {
                    extra.push(("If-Modified-Since", m.as_str()));
                }
                get_request(&self.url.authority, &target, &extra, out);
            }
            Kind::Sse => {
                let id = self.sse.last_event_id().to_string();
                let mut extra = vec![("Accept", "text/event-stream")];
                if !id.is_empty() {
                    extra.push(("Last-Event-ID", id.as_str()));
                }
                get_request(&self.url.authority, &self.url.target, &extra, out);
                self.counters.handshake_out += (out.len() - start) as u64;
            }
            Kind::Ws | Kind::WsDeflate => {
                self.key = self.nonces.key();
                let target = self.url.target_with(&since.into_iter().collect::<Vec<_>>());
                let offer = (self.kind == Kind::WsDeflate).then_some(DEFLATE_OFFER);
                upgrade_request_with(&self.url.authority, &target, &self.key, offer, out);
                self.counters.handshake_out += (out.len() - start) as u64;
            }
        }
    }

    /// The idle timer fired: a poller sends its next request.
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<u8>) -> Next {
        if self.state != State::Idle {
            return Next::Read;
        }
        if let Some(reconnect) = self.closing.take() {
            return self.close_now(now, reconnect);
        }
        self.request(out);
        Next::Read
    }

    /// Asks the subscriber to close at its next idle point (now, for a stream or a parked or idle
    /// poller), and to reconnect afterwards by its own rules or not at all.
    pub fn close_soon(&mut self, now: Instant, reconnect: bool) -> Option<Next> {
        let idle = match self.state {
            State::Disconnected => return None,
            State::Idle | State::Streaming => true,
            State::Awaiting => self.kind == Kind::LongPoll && !self.reader.in_body(),
        };
        if idle {
            Some(self.close_now(now, reconnect))
        } else {
            self.closing = Some(reconnect);
            None
        }
    }

    fn close_now(&mut self, now: Instant, reconnect: bool) -> Next {
        self.state = State::Disconnected;
        self.closing = None;
        self.sse.finish();
        Next::Close(reconnect.then(|| now + self.reconnect_delay()))
    }

    fn reconnect_delay(&self) -> Duration {
        match self.kind {
            Kind::Poll => self.opts.poll_interval,
            Kind::LongPoll => Duration::ZERO,
            Kind::Sse => self
                .sse
                .retry()
                .map_or(self.opts.sse_default_retry, Duration::from_millis),
            Kind::Ws | Kind::WsDeflate => self.opts.ws_reconnect,
        }
    }

    /// The server closed the connection (or it failed): reconnect by the transport's rules.
    pub fn on_eof(
        &mut self,
        now: Instant,
        sink: &mut dyn FnMut(&Subscriber, Delivery<'_>),
    ) -> Next {
        if self.reader.eof() {
            // A body read until close: deliver it.
            let _ = self.finish_response(now, sink);
        }
        let reconnect = self.closing.unwrap_or(true);
        self.close_now(now, reconnect)
    }

    /// Reads what the server sent. Returns the bytes consumed (the driver keeps the rest for the
    /// next call) and what to do next.
    pub fn on_input(
        &mut self,
        input: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
        sink: &mut dyn FnMut(&Subscriber, Delivery<'_>),
    ) -> Result<(usize, Next), String> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            if self.state == State::Streaming && self.kind.is_ws() {
                let (n, next) = self.read_frames(rest, now, out, sink)?;
                return Ok((pos + n, next));
            }
            if self.state != State::Awaiting && self.state != State::Streaming {
                // Bytes while idle: a stray answer; keep them for later.
                return Ok((pos, Next::Read));
            }
            let adv = self
                .reader
                .advance(rest, &mut self.body)
                .map_err(|e| e.to_string())?;
            pos += adv.consumed;
            if let Some(head) = adv.head {
                if let Some(next) = self.on_head(&head, now)? {
                    return Ok((pos, next));
                }
                self.head = Some(head);
            }
            if self.state == State::Streaming && self.kind == Kind::Sse && !self.body.is_empty() {
                self.read_events(sink);
            }
            if adv.done {
                let next = self.finish_response(now, sink);
                if let Next::Read = next {
                    if self.kind == Kind::LongPoll {
                        self.request(out);
                    }
                    continue;
                }
                return Ok((pos, next));
            }
            if adv.consumed == 0 || pos == input.len() {
                return Ok((pos, Next::Read));
            }
        }
    }

    /// A response head: streams start here. `Some(next)` ends the call.
    fn on_head(&mut self, head: &Head, now: Instant) -> Result<Option<Next>, String> {
        match self.kind {
            Kind::Ws | Kind::WsDeflate => {
                check_handshake(head, &self.key)?;
                self.counters.handshake_in += head.len as u64;
                self.state = State::Streaming;
                self.frames = match self.kind {
                    Kind::WsDeflate if accepted_deflate(head) => FrameReader::with_deflate(),
                    Kind::WsDeflate => return Err("the server declined permessage-deflate".into()),
                    _ => FrameReader::new(),
                };
                Ok(Some(Next::Read))
            }
            Kind::Sse => {
                if head.status != 200 {
                    // EventSource fails the connection on a non-200 answer and does not retry.
                    self.counters.errors += 1;
                    self.state = State::Disconnected;
                    return Ok(Some(Next::Close(None)));
                }
                self.counters.handshake_in += head.len as u64;
                self.state = State::Streaming;
                Ok(None)
            }
            Kind::Poll | Kind::LongPoll => {
                if head.status >= 400 {
                    self.counters.errors += 1;
                    self.state = State::Disconnected;
                    return Ok(Some(Next::Close(Some(now + Duration::from_secs(1)))));
                }
                Ok(None)
            }
        }
    }

    fn read_events(&mut self, sink: &mut dyn FnMut(&Subscriber, Delivery<'_>)) {
        let mut events = std::mem::take(&mut self.events);
        self.sse.feed_into(&self.body, &mut events);
        self.body.clear();
        for e in events.drain(..) {
            let id = e.last_event_id.parse().ok();
            if id.is_some() {
                self.cursor = id;
            }
            self.deliver(id, e.data.as_bytes(), sink);
        }
        self.events = events;
    }

    fn deliver(
        &mut self,
        id: Option<u64>,
        data: &[u8],
        sink: &mut dyn FnMut(&Subscriber, Delivery<'_>),
    ) {
        self.counters.messages += 1;
        self.counters.payload_in += data.len() as u64;
        sink(self, Delivery { id, data });
    }

    /// A whole response is in: deliver what it carries and decide what follows.
    fn finish_response(
        &mut self,
        now: Instant,
        sink: &mut dyn FnMut(&Subscriber, Delivery<'_>),
    ) -> Next {
        self.counters.responses += 1;
        let head = self.head.take().unwrap_or_default();
        let body = std::mem::take(&mut self.body);
        if self.kind == Kind::Sse {
            // The stream ended: reconnect after the retry delay.
            self.reader.reset();
            let reconnect = self.closing.unwrap_or(true);
            return self.close_now(now, reconnect);
        }
        let before = self.counters.messages;
        if head.status == 200 {
            self.read_poll_body(&body, sink);
            if head.etag.is_some() {
                self.etag = head.etag.clone();
            }
            if head.last_modified.is_some() {
                self.last_modified = head.last_modified.clone();
            }
        }
        if self.counters.messages == before {
            self.counters.empty += 1;
        }
        self.body = body;
        self.body.clear();
        self.reader.reset();
        if let Some(reconnect) = self.closing.take() {
            return self.close_now(now, reconnect);
        }
        if head.close {
            return self.close_now(now, true);
        }
        match self.kind {
            Kind::Poll => {
                self.state = State::Idle;
                Next::Sleep(now + self.opts.poll_interval)
            }
            _ => Next::Read,
        }
    }

    /// A poll answer: pushwire's `{"last_id":N,"messages":[…]}`, else the body is one message.
    fn read_poll_body(&mut self, body: &[u8], sink: &mut dyn FnMut(&Subscriber, Delivery<'_>)) {
        #[derive(serde::Deserialize)]
        struct Msg {
            id: u64,
            data: String,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            last_id: u64,
            messages: Vec<Msg>,
        }
        if body.starts_with(b"{\"last_id\"")
            && let Ok(answer) = serde_json::from_slice::<Answer>(body)
        {
            for m in &answer.messages {
                self.deliver(Some(m.id), m.data.as_bytes(), sink);
            }
            self.cursor = Some(answer.last_id.max(self.cursor.unwrap_or(0)));
            return;
        }
        if !body.is_empty() {
            self.deliver(None, body, sink);
        }
    }

    fn read_frames(
        &mut self,
        input: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
        sink: &mut dyn FnMut(&Subscriber, Delivery<'_>),
    ) -> Result<(usize, Next), String> {
        let mut frames = std::mem::take(&mut self.frames);
        let mut replies: Vec<(Opcode, Vec<u8>)> = Vec::new();
        let mut texts = std::mem::take(&mut self.scratch);
        texts.clear();
        let mut bounds = std::mem::take(&mut self.bounds);
        bounds.clear();
        let result = frames.read(input, |m| match m {
            Incoming::Text(t) | Incoming::Binary(t) => {
                bounds.push((texts.len(), t.len()));
                texts.extend_from_slice(t);
            }
            Incoming::Ping(p) => replies.push((Opcode::Pong, p.to_vec())),
            Incoming::Pong(_) => {}
            Incoming::Close(p) => replies.push((Opcode::Close, p.get(..2).unwrap_or(&[]).to_vec())),
        });
        self.frames = frames;
        let (n, tally) = result?;
        self.counters.control_in += tally.control as u64;
        for &(start, len) in &bounds {
            let text = &texts[start..start + len];
            match parse_ws_envelope(text) {
                Some((id, data)) => {
                    self.cursor = Some(id);
                    self.deliver(Some(id), data, sink);
                }
                None => match serde_json::from_slice::<WsMessage>(text) {
                    Ok(m) => {
                        self.cursor = Some(m.id);
                        self.deliver(Some(m.id), m.data.as_bytes(), sink);
                    }
                    Err(_) => self.deliver(None, text, sink),
                },
            }
        }
        self.scratch = texts;
        self.bounds = bounds;
        let mut next = Next::Read;
        for (op, payload) in replies {
            let before = out.len();
            client_frame(op, &payload, &mut self.nonces, out);
            self.counters.control_out += (out.len() - before) as u64;
            if op == Opcode::Close {
                // The server closes TCP after the exchange; reconnect then.
                next = Next::Read;
            }
        }
        let _ = now;
        Ok((n, next))
    }
}

#[derive(serde::Deserialize)]
struct WsMessage {
    id: u64,
    data: String,
}

/// pushwire's WebSocket message, `{"id":N,"data":"…"}`, read without allocating when the data
/// needs no unescaping.
pub fn parse_ws_envelope(text: &[u8]) -> Option<(u64, &[u8])> {
    let rest = text.strip_prefix(b"{\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let id = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let data = rest[digits..]
        .strip_prefix(b",\"data\":\"")?
        .strip_suffix(b"\"}")?;
    if data.contains(&b'\\') {
        return None;
    }
    Some((id, data))
}

#[cfg(test)]
mod tests;
