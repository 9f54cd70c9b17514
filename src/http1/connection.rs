//! The server side of one HTTP/1.1 connection, sans-IO: request heads and bodies in, events out,
//! responses in, bytes (with their ledger layout) out, `now` passed in and the next deadline
//! handed back. It owns the connection's lifecycle — pipelining, `100-continue`, keep-alive, the
//! head, body and idle timeouts, and the lingering close — and nothing about what a request means:
//! the application routes each [`Event::Head`] and answers with [`Connection::respond`], or hands
//! the connection to another core ([`Connection::upgrade`]: SSE, WebSocket).
//!
//! ```text
//!            ┌───────────────── response queued, keep-alive ─────────────────┐
//!            ▼                                                               │
//!  open ─► Idle ── head ──► Responding ── read_body ──► ReadingBody ── body ─┤
//!            │                  │  ▲                                         │
//!            │                  │  └─────────────────────────────────────────┘
//!            │                  ├── upgrade ──► Upgraded (an SSE or WebSocket core takes over)
//!            │                  └── response queued, not keep-alive ──┐
//!            └── idle timeout, peer EOF, bad input, 408 ──────────────┴─► Closing
//!                  Closing: flush, shut our side, drain the peer until EOF or the grace ends
//! ```
//! One request at a time: while the application owes a response (a parked long-poll, say) the
//! bytes of pipelined requests stay in the caller's buffer, unconsumed.
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::body::{BodyDecoder, BodyFraming};
use super::error::RequestError;
use super::request::{HeadReader, Limits, RequestHead, leading_empty_lines};
use super::response::{CONTINUE_100, ResponseBody, ResponseHead, Status};
use crate::ledger::{ByCategory, Category, Layout};
use crate::outbuf::{OutQueue, Part, Segment, SharedUnit};

/// The limits and timeouts of every connection.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Request line and head size limits (414, 431).
    pub limits: Limits,
    /// Time a request head has, from its first byte (or the connection's opening), → 408.
    pub head_timeout: Duration,
    /// An idle keep-alive connection is closed after this long; a body must arrive within it.
    pub idle_timeout: Duration,
    /// How long a closing connection drains the peer after its last byte was sent.
    pub closing_grace: Duration,
    /// Largest request body, in bytes (413).
    pub max_body: usize,
    /// Pipelined requests wait while unread earlier answers hold this much memory
    /// ([`crate::outbuf::OutQueue::memory`]).
    pub max_pending_output: usize,
}

/// What the response to a request must respect: the client's version and whether the
/// connection stays open after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// The request's HTTP minor version (0 or 1); the response is sent in the same version.
    pub minor_version: u8,
    /// Whether the connection stays open after the response: the client allows it (RFC 9112 §9.3)
    /// and the server is not shutting down.
    pub keep_alive: bool,
}

impl Exchange {
    /// The exchange of an answer given before the request could be read (its version may be
    /// unknown): HTTP/1.1, then close.
    pub const CLOSING: Exchange = Exchange {
        minor_version: 1,
        keep_alive: false,
    };
}

#[derive(Debug)]
enum State {
    /// Waiting for a request head; `begun` is when its first byte arrived (or the connection
    /// opened). Empty lines before it do not restart that clock.
    Idle { begun: Option<Instant> },
    /// The application owes the response to the current request.
    Responding { exchange: Exchange },
    /// Reading the body of the current request.
    ReadingBody {
        exchange: Exchange,
        decoder: BodyDecoder,
        body: Vec<u8>,
        /// What the body's data bytes are for the ledger (a publish's are payload).
        data: Category,
        started: Instant,
    },
    /// Another core speaks on this connection now.
    Upgraded,
    /// No more requests: flush, shut our side, drain the peer until its EOF (a lingering close,
    /// RFC 9112 §9.6, so unread input does not reset the response away). `since` is when the
    /// state began, then when our side was shut.
    Closing { since: Instant, write_shut: bool },
}

/// What the bytes given to [`Connection::receive`] produced.
#[derive(Debug)]
pub enum Event {
    /// A request head: route it, then [`Connection::read_body`] or answer it.
    Head(RequestHead),
    /// The complete body of the current request.
    Body(Vec<u8>),
    /// The input broke a rule of HTTP/1.1: answer with [`Connection::refuse`] and close.
    Error(RequestError),
}

/// The outcome of one [`Connection::receive`] call.
#[derive(Debug, Default)]
pub struct Received {
    /// Bytes of the input consumed.
    pub consumed: usize,
    /// What the consumed bytes were, by ledger category (a head's bytes are left to the
    /// application, which knows whether it was an upgrade).
    pub tally: ByCategory,
    /// The event the consumed bytes completed, if any; `None` when more input is needed.
    pub event: Option<Event>,
}

/// A deadline of the connection passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Close the connection now, without a word (idle keep-alive, closing grace over).
    Close,
    /// A request did not arrive in time: answer 408 and close.
    RequestTimeout,
}

/// How a request's body is to be read, decided from its head.
#[derive(Debug)]
pub struct BodyPlan {
    decoder: Option<BodyDecoder>,
    expects_continue: bool,
}

impl BodyPlan {
    /// The framing, the expectation and the announced size of a request's body (RFC 9112 §6.3,
    /// RFC 9110 §10.1.1), or the rule the head broke.
    pub fn decide(head: &RequestHead, max_body: usize) -> Result<BodyPlan, RequestError> {
        let framing = BodyFraming::decide(head)?;
        let expects_continue = match head.header("expect") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case(b"100-continue") => true,
            Some(_) => return Err(RequestError::UnsupportedExpectation),
        };
        if let BodyFraming::Length(n) = framing
            && n > max_body as u64
        {
            return Err(RequestError::BodyTooLarge {
                announced: Some(n),
                max: max_body,
            });
        }
        Ok(BodyPlan {
            decoder: BodyDecoder::new(framing),
            expects_continue,
        })
    }

    /// Whether body bytes follow the head.
    pub fn has_body(&self) -> bool {
        self.decoder.is_some()
    }
}

/// A response body and what its bytes are for.
#[derive(Debug)]
pub enum Content {
    /// No body (204, or a 200 with nothing to say).
    Empty,
    /// Bytes made for this answer, all of one category.
    Owned(Vec<u8>, Category),
    /// A page built into the binary.
    Static(&'static [u8]),
    /// Pieces shared among answers that carry the same messages (a poll answer).
    Parts(Arc<[Part]>),
}

impl Content {
    fn len(&self) -> usize {
        match self {
            Content::Empty => 0,
            Content::Owned(bytes, _) => bytes.len(),
            Content::Static(bytes) => bytes.len(),
            Content::Parts(parts) => parts.iter().map(Part::len).sum(),
        }
    }
}

/// Whether an encoded response head says `Content-Length: {length}` (a check on heads encoded
/// apart from the content they go with). The field is written into a stack buffer, not a
/// `String`, so debug builds count the same allocations as release builds
/// (`tests/allocations.rs`).
fn declares_length(head: &[u8], length: usize) -> bool {
    use std::io::Write as _;
    let mut field = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut field[..]);
    if write!(cursor, "\r\nContent-Length: {length}\r\n").is_err() {
        return false;
    }
    let written = cursor.position() as usize;
    head.windows(written).any(|w| w == &field[..written])
}

/// A response to queue.
#[derive(Debug)]
pub struct Response<'a> {
    /// The status line's code and reason.
    pub status: Status,
    /// The `Content-Type` value; `None` sends no such header.
    pub content_type: Option<&'a str>,
    /// Further `(name, value)` header fields, written as given and in order.
    pub extra: &'a [(&'a str, &'a str)],
    /// The body, always sent with a `Content-Length`.
    pub content: Content,
}

/// Appends the head of `response` in `exchange` to `out`: the bytes [`Connection::respond`]
/// writes, for a caller that shares one head among connections ([`Connection::respond_shared`]).
pub fn encode_head(exchange: Exchange, response: &Response, date: &str, out: &mut Vec<u8>) {
    ResponseHead {
        status: response.status,
        minor_version: exchange.minor_version,
        date,
        body: ResponseBody::Length(response.content.len()),
        // HTTP/1.1 keeps alive unless told; HTTP/1.0 is told both ways.
        keep_alive: if exchange.keep_alive && exchange.minor_version == 1 {
            None
        } else {
            Some(exchange.keep_alive)
        },
        content_type: response.content_type,
        extra: response.extra,
    }
    .encode(out);
}

/// A request the server will not serve: the status, why (the plain-text body), and any header
/// the status calls for (`Allow` on 405, `Retry-After` on 503…).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The status line's code and reason.
    pub status: Status,
    /// Why, in a few words; the plain-text body is `<status>: <reason>`.
    pub reason: String,
    /// Header fields the status calls for (`Allow`, `Retry-After`), written as given.
    pub headers: &'static [(&'static str, &'static str)],
}

impl From<RequestError> for Refusal {
    fn from(error: RequestError) -> Refusal {
        Refusal {
            status: Status(error.status()),
            reason: error.to_string(),
            headers: &[],
        }
    }
}

impl Refusal {
    /// The body of the answer: `404 Not Found: no endpoint at /x`.
    pub fn body(&self) -> String {
        format!("{}: {}\n", self.status, self.reason)
    }
}

/// One HTTP/1.1 connection's protocol state.
#[derive(Debug)]
pub struct Connection {
    settings: Settings,
    state: State,
    head_reader: HeadReader,
    /// When a response was last queued, body bytes last arrived or output last left.
    last_activity: Instant,
    /// No new request may keep the connection open (the server is shutting down).
    shutting_down: bool,
    /// Requests answered (or upgraded) so far.
    requests: u64,
}

impl Connection {
    /// A connection just accepted: the head timeout runs from now.
    pub fn new(settings: Settings, now: Instant) -> Connection {
        Connection {
            settings,
            state: State::Idle { begun: Some(now) },
            head_reader: HeadReader::new(),
            last_activity: now,
            shutting_down: false,
            requests: 0,
        }
    }

    /// A connection that only finishes sending what is queued (a refusal, the end of a stream),
    /// then closes.
    pub fn closing(settings: Settings, now: Instant) -> Connection {
        Connection {
            state: State::Closing {
                since: now,
                write_shut: false,
            },
            ..Connection::new(settings, now)
        }
    }

    /// Requests answered or upgraded on this connection.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// True once no further request will be read (closing, or handed to another core).
    pub fn is_closing(&self) -> bool {
        matches!(self.state, State::Closing { .. })
    }

    /// Consumes what it can of `input` and says what happened: at most one event per call, so
    /// the application answers each request before the next one is read. `out` is the
    /// connection's output, looked at for pipelining backpressure.
    pub fn receive(&mut self, input: &[u8], now: Instant, out: &OutQueue) -> Received {
        match &mut self.state {
            // A closing connection reads only to drain the peer.
            State::Closing { .. } => Received {
                consumed: input.len(),
                ..Received::default()
            },
            State::Responding { .. } | State::Upgraded => Received::default(),
            State::Idle { begun } => {
                if input.is_empty() {
                    return Received::default();
                }
                // The clock of a request starts at its first byte, pipelined or not.
                begun.get_or_insert(now);
                // Pipelined requests wait while a slow reader has not taken earlier answers.
                if out.memory() >= self.settings.max_pending_output {
                    return Received::default();
                }
                let skip = leading_empty_lines(input);
                if skip > 0 {
                    let mut tally = ByCategory::default();
                    tally[Category::RequestHead.index()] += skip as u64;
                    return Received {
                        consumed: skip,
                        tally,
                        event: None,
                    };
                }
                match self.head_reader.decode(input, &self.settings.limits) {
                    Ok(None) => Received::default(),
                    Err(e) => Received {
                        event: Some(Event::Error(e)),
                        ..Received::default()
                    },
                    Ok(Some(head)) => {
                        self.state = State::Responding {
                            exchange: Exchange {
                                minor_version: head.minor_version,
                                keep_alive: head.keep_alive() && !self.shutting_down,
                            },
                        };
                        Received {
                            consumed: head.len,
                            tally: ByCategory::default(),
                            event: Some(Event::Head(head)),
                        }
                    }
                }
            }
            State::ReadingBody {
                exchange,
                decoder,
                body,
                data,
                ..
            } => {
                if input.is_empty() {
                    return Received::default();
                }
                let before = body.len();
                let n = match decoder.decode(input, body, self.settings.max_body) {
                    Ok(n) => n,
                    Err(e) => {
                        return Received {
                            event: Some(Event::Error(e)),
                            ..Received::default()
                        };
                    }
                };
                let mut tally = ByCategory::default();
                let data_len = body.len() - before;
                tally[data.index()] += data_len as u64;
                tally[Category::ChunkFraming.index()] += (n - data_len) as u64;
                self.last_activity = now;
                let event = if decoder.is_done() {
                    let body = std::mem::take(body);
                    self.state = State::Responding {
                        exchange: *exchange,
                    };
                    Some(Event::Body(body))
                } else {
                    None
                };
                Received {
                    consumed: n,
                    tally,
                    event,
                }
            }
        }
    }

    /// The current request has a body (see [`BodyPlan::decide`]): read it, telling the client to
    /// go ahead when it asked (`100-continue`; an HTTP/1.0 client cannot have meant it).
    pub fn read_body(&mut self, plan: BodyPlan, data: Category, now: Instant, out: &mut OutQueue) {
        let (State::Responding { exchange }, Some(decoder)) = (&self.state, plan.decoder) else {
            return;
        };
        let exchange = *exchange;
        if plan.expects_continue && exchange.minor_version == 1 {
            out.push_bytes(CONTINUE_100, Category::ResponseHead);
        }
        self.last_activity = now;
        self.state = State::ReadingBody {
            exchange,
            decoder,
            body: Vec::new(),
            data,
            started: now,
        };
    }

    /// The exchange of the request being answered (`CLOSING` when no request was read).
    pub fn exchange(&self) -> Exchange {
        match &self.state {
            State::Responding { exchange } | State::ReadingBody { exchange, .. } => *exchange,
            _ => Exchange::CLOSING,
        }
    }

    /// The exchange the response to the current request will have: the request's version, and
    /// whether the connection stays open after it (the client allows it, and the server is
    /// neither shutting down nor closing the connection). Responses with the same exchange,
    /// status, header fields, body length and `Date` have the same head, byte for byte.
    pub fn response_exchange(&self) -> Exchange {
        let exchange = self.exchange();
        Exchange {
            keep_alive: exchange.keep_alive && !self.shutting_down && !self.is_closing(),
            ..exchange
        }
    }

    /// Queues the response to the current request, then waits for the next request or closes.
    pub fn respond(&mut self, response: Response, date: &str, now: Instant, out: &mut OutQueue) {
        let exchange = self.response_exchange();
        let mut head = Vec::with_capacity(256);
        encode_head(exchange, &response, date, &mut head);
        let layout = Layout::uniform(Category::ResponseHead, head.len());
        out.push(Segment::Owned(head), layout);
        self.finish_response(exchange, response.content, now, out);
    }

    /// Queues the response to the current request with a head encoded once and shared: `head`
    /// returns the head of this response for the exchange it is given (see [`encode_head`]), from
    /// a cache kept by whoever answers many connections alike (a fan-out waking long polls).
    /// That head must declare the content's length in `Content-Length` (checked in debug builds).
    pub fn respond_shared(
        &mut self,
        content: Content,
        head: impl FnOnce(Exchange) -> Arc<SharedUnit>,
        now: Instant,
        out: &mut OutQueue,
    ) {
        let exchange = self.response_exchange();
        let head = head(exchange);
        debug_assert!(
            declares_length(&head.bytes, content.len()),
            "a shared head declares the length of the content it is sent with"
        );
        out.push_shared(&head);
        self.finish_response(exchange, content, now, out);
    }

    /// Queues the body after its head, then waits for the next request or closes.
    fn finish_response(
        &mut self,
        exchange: Exchange,
        content: Content,
        now: Instant,
        out: &mut OutQueue,
    ) {
        match content {
            Content::Empty => {}
            Content::Owned(bytes, category) => {
                let layout = Layout::uniform(category, bytes.len());
                out.push(Segment::Owned(bytes), layout);
            }
            Content::Static(bytes) => {
                out.push(
                    Segment::Static(bytes),
                    Layout::uniform(Category::Other, bytes.len()),
                );
            }
            Content::Parts(parts) => parts.iter().for_each(|p| out.push_part(p)),
        }
        let keep_alive = exchange.keep_alive;
        self.requests += 1;
        self.last_activity = now;
        self.head_reader = HeadReader::new();
        self.state = if keep_alive {
            State::Idle { begun: None }
        } else {
            State::Closing {
                since: now,
                write_shut: false,
            }
        };
    }

    /// Answers the current request with `refusal` in plain text; with `close`, nothing after it
    /// is read (its body, or what follows broken framing, could not be told from a request).
    pub fn refuse(
        &mut self,
        refusal: &Refusal,
        close: bool,
        date: &str,
        now: Instant,
        out: &mut OutQueue,
    ) {
        if close {
            if let State::Responding { exchange } | State::ReadingBody { exchange, .. } =
                &mut self.state
            {
                exchange.keep_alive = false;
            } else {
                // No readable request: answer in HTTP/1.1 (its version may be unknown).
                self.state = State::Responding {
                    exchange: Exchange::CLOSING,
                };
            }
        }
        let response = Response {
            status: refusal.status,
            content_type: Some("text/plain; charset=utf-8"),
            extra: refusal.headers,
            content: Content::Owned(refusal.body().into_bytes(), Category::Other),
        };
        self.respond(response, date, now, out);
    }

    /// The current request cannot be read to its end (broken framing, too slow): its answer is
    /// given in HTTP/1.1, as its version may be unknown, and closes the connection.
    pub fn forget_request(&mut self) {
        if !self.is_closing() {
            self.state = State::Responding {
                exchange: Exchange::CLOSING,
            };
        }
    }

    /// Another core takes the connection over after the answer queued by the caller (an event
    /// stream's head, a 101).
    pub fn upgrade(&mut self) -> Exchange {
        let exchange = self.exchange();
        self.requests += 1;
        self.state = State::Upgraded;
        exchange
    }

    /// The server is shutting down: an idle connection with no input closes now; a request under
    /// way is finished and its answer says `Connection: close`.
    pub fn begin_shutdown(&mut self, input_empty: bool, now: Instant) {
        self.shutting_down = true;
        if matches!(self.state, State::Idle { .. }) && input_empty {
            self.state = State::Closing {
                since: now,
                write_shut: false,
            };
        }
    }

    /// The peer shut its side. Returns true when the connection can be dropped at once (a request
    /// it will never read the answer to); otherwise what is queued is still sent.
    pub fn on_peer_closed(&mut self, now: Instant) -> bool {
        match self.state {
            State::Idle { .. } => {
                self.state = State::Closing {
                    since: now,
                    write_shut: false,
                };
                false
            }
            State::Responding { .. } | State::ReadingBody { .. } => true,
            State::Upgraded | State::Closing { .. } => false,
        }
    }

    /// Output left the connection: a reader taking its answer is active.
    pub fn on_output_progress(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// True once when the caller should shut the write side: closing, and all output sent.
    pub fn poll_write_shutdown(&mut self, output_empty: bool, now: Instant) -> bool {
        match &mut self.state {
            State::Closing { since, write_shut } if output_empty && !*write_shut => {
                *write_shut = true;
                *since = now;
                true
            }
            _ => false,
        }
    }

    /// True when the lingering close is over: our side is shut and the peer's too.
    pub fn is_done(&self, peer_closed: bool) -> bool {
        matches!(
            self.state,
            State::Closing {
                write_shut: true,
                ..
            }
        ) && peer_closed
    }

    /// The next moment [`Connection::handle_timeout`] has something to do.
    pub fn poll_timeout(&self, output_empty: bool) -> Option<Instant> {
        let s = &self.settings;
        match &self.state {
            State::Idle { begun: None } => Some(self.last_activity + s.idle_timeout),
            State::Idle { begun: Some(at) } => Some(*at + s.head_timeout),
            // A body has the idle timeout in all, not per read: dripping never extends it.
            State::ReadingBody { started, .. } => Some(*started + s.idle_timeout),
            State::Responding { .. } | State::Upgraded => None,
            // Output a reader is still taking gets the idle timeout since its last progress.
            State::Closing { .. } if !output_empty => Some(self.last_activity + s.idle_timeout),
            State::Closing { since, .. } => Some(*since + s.closing_grace),
        }
    }

    /// What a passed deadline means; `None` when none has passed.
    pub fn handle_timeout(&mut self, now: Instant, output_empty: bool) -> Option<Expiry> {
        if self.poll_timeout(output_empty).is_none_or(|at| now < at) {
            return None;
        }
        Some(match self.state {
            State::Idle { begun: None } | State::Closing { .. } => Expiry::Close,
            _ => Expiry::RequestTimeout,
        })
    }
}

#[cfg(test)]
mod tests;
