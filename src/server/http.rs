//! Request handling: turning parsed requests into responses and phase changes. Every transition of
//! [`Phase`] outside connection setup and teardown happens in this file.
use std::time::Duration;

use super::Server;
use super::connection::{Exchange, Phase};
use super::router::{self, Refusal, Route};
use crate::http1::request::leading_empty_lines;
use crate::http1::response::CONTINUE_100;
use crate::http1::{
    BodyDecoder, BodyFraming, RequestError, RequestHead, ResponseBody, ResponseHead, Status,
};
use crate::hub::{Published, Subscription};
use crate::ledger::{Category, Counter, Layout, Transport};
use crate::outbuf::Segment;
use crate::polling::{self, Piece};

/// Extra header fields of every poll answer: a poll result must never come from a cache.
const NO_STORE: (&str, &str) = ("Cache-Control", "no-store");

/// The demo page, embedded in the binary.
const INDEX_HTML: &[u8] = include_bytes!("../../web/index.html");

/// A 503 for a connection over the limit.
pub(super) fn encode_refusal_503(date: &str, out: &mut Vec<u8>) {
    let body = b"503 Service Unavailable: too many connections\n";
    ResponseHead {
        status: Status::SERVICE_UNAVAILABLE,
        minor_version: 1,
        date,
        body: ResponseBody::Length(body.len()),
        keep_alive: Some(false),
        content_type: Some("text/plain; charset=utf-8"),
        extra: &[("Retry-After", "1")],
    }
    .encode(out);
    out.extend_from_slice(body);
}

/// A response body and what its bytes are for.
pub(super) enum Reply {
    /// No body (204, or a 200 with nothing to say).
    Empty,
    /// Bytes made for this answer, all of one category (error texts are `Other`, the publish
    /// acknowledgement is `JsonEnvelope`).
    Bytes(Vec<u8>, Category),
    /// A poll or long-poll body: envelope pieces and shared message objects.
    Poll(polling::Body),
    /// A page built into the binary.
    Static(&'static [u8]),
}

impl Reply {
    fn len(&self) -> usize {
        match self {
            Reply::Empty => 0,
            Reply::Bytes(b, _) => b.len(),
            Reply::Poll(body) => body.len,
            Reply::Static(b) => b.len(),
        }
    }
}

impl Server {
    /// Lets the connection's current phase consume its input. Returns whether anything happened.
    pub(super) fn process(&mut self, key: usize) -> bool {
        let mut progressed = false;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return progressed;
            };
            match &mut conn.phase {
                Phase::Closing { .. } | Phase::Parked { .. } => return progressed,
                // An event stream is one-way: whatever the client sends now is ignored.
                Phase::Sse { .. } => {
                    let n = conn.input.len();
                    conn.input.clear();
                    self.account_in(key, Category::Other, n);
                    return progressed;
                }
                Phase::WebSocket(_) => return self.ws_process(key) || progressed,
                Phase::ReadingBody {
                    decoder,
                    body,
                    route,
                    ..
                } => {
                    if conn.input.is_empty() {
                        return progressed;
                    }
                    let before = body.len();
                    let data_category = match route {
                        Route::Publish { .. } => Category::Payload,
                        _ => Category::Other,
                    };
                    match decoder.decode(&conn.input, body, self.config.max_message_size) {
                        Err(e) => {
                            self.refuse(key, e);
                            return true;
                        }
                        Ok(n) => {
                            let data = body.len() - before;
                            conn.input.consume(n);
                            conn.last_activity = self.now;
                            progressed |= n > 0;
                            let done = decoder.is_done();
                            self.account_in(key, data_category, data);
                            self.account_in(key, Category::ChunkFraming, n - data);
                            if !done {
                                return progressed;
                            }
                            let Some(conn) = self.conns.get_mut(key) else {
                                return progressed;
                            };
                            let Phase::ReadingBody {
                                exchange,
                                route,
                                body,
                                ..
                            } = std::mem::replace(&mut conn.phase, Phase::AwaitingHead)
                            else {
                                unreachable!("matched ReadingBody above");
                            };
                            self.handle(key, exchange, route, body);
                        }
                    }
                }
                Phase::AwaitingHead => {
                    // Pipelined requests wait while a slow reader has not taken earlier answers.
                    if conn.output.len() >= self.config.max_pending_output {
                        return progressed;
                    }
                    let skip = leading_empty_lines(&conn.input);
                    if skip > 0 {
                        conn.input.consume(skip);
                        self.account_in(key, Category::RequestHead, skip);
                        progressed = true;
                        continue;
                    }
                    match conn.head_reader.decode(&conn.input, &self.config.http) {
                        Ok(None) => return progressed,
                        Err(e) => {
                            self.set_transport(key, Transport::Other);
                            self.refuse(key, e);
                            return true;
                        }
                        Ok(Some(head)) => {
                            conn.input.consume(head.len);
                            // The body's clock starts now.
                            conn.head_started = self.now;
                            progressed = true;
                            self.begin_request(key, head);
                        }
                    }
                }
            }
        }
    }

    /// A head has arrived: decide its framing and route, then read its body or handle it.
    fn begin_request(&mut self, key: usize, head: RequestHead) {
        log::debug!("c{key}: {head}");
        let route = router::route(&head);
        let transport = route.as_ref().map_or(Transport::Other, Route::transport);
        self.set_transport(key, transport);
        if let Some(conn) = self.conns.get_mut(key) {
            conn.channel = route.as_ref().ok().and_then(Route::channel).map(Box::from);
        }
        let head_category = match route {
            Ok(Route::WebSocket { .. }) => Category::WsHandshake,
            _ => Category::RequestHead,
        };
        self.account_in(key, head_category, head.len);
        self.ledger.count(transport, Counter::Requests, 1);
        let framing = match BodyFraming::decide(&head) {
            Ok(f) => f,
            Err(e) => return self.refuse(key, e),
        };
        let expects_continue = match head.header("expect") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case(b"100-continue") => true,
            Some(_) => return self.refuse(key, RequestError::UnsupportedExpectation),
        };
        if matches!(framing, BodyFraming::Length(n) if n > self.config.max_message_size as u64) {
            return self.refuse(key, RequestError::BodyTooLarge);
        }
        let exchange = Exchange {
            minor_version: head.minor_version,
            keep_alive: head.keep_alive() && !self.is_shutting_down(),
        };
        let decoder = BodyDecoder::new(framing);
        let route = match route {
            Ok(route) => route,
            Err(refusal) => {
                // The body is not read, so nothing after it can be framed: close.
                let exchange = Exchange {
                    keep_alive: exchange.keep_alive && decoder.is_none(),
                    ..exchange
                };
                return self.respond_refusal(key, exchange, refusal);
            }
        };
        if let Route::WebSocket { channel, since } = route {
            if decoder.is_some() {
                let refusal = Refusal::new(400, "an upgrade request has no body");
                let exchange = Exchange {
                    keep_alive: false,
                    ..exchange
                };
                return self.respond_refusal(key, exchange, refusal);
            }
            return self.start_websocket(key, exchange, &head, channel, since);
        }
        match decoder {
            None => self.handle(key, exchange, route, Vec::new()),
            Some(decoder) => {
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                // RFC 9110 §10.1.1: an HTTP/1.0 client cannot have meant 100-continue.
                if expects_continue && exchange.minor_version == 1 {
                    conn.output.push_bytes(CONTINUE_100, Category::ResponseHead);
                }
                conn.last_activity = self.now;
                conn.phase = Phase::ReadingBody {
                    exchange,
                    route,
                    decoder,
                    body: Vec::new(),
                };
            }
        }
    }

    /// A complete request: answer it, park it, or start a stream.
    fn handle(&mut self, key: usize, exchange: Exchange, route: Route, body: Vec<u8>) {
        match route {
            Route::Publish { channel } => {
                let Ok(text) = String::from_utf8(body) else {
                    return self.respond_refusal(
                        key,
                        exchange,
                        Refusal::new(400, "message body is not UTF-8"),
                    );
                };
                let published = self.hub.publish(&channel, text.into_boxed_str(), self.now);
                let answer = format!(
                    "{{\"channel\":{},\"id\":{}}}",
                    serde_json::Value::from(&*channel),
                    published.message.id
                );
                self.respond_json(key, exchange, answer, Category::JsonEnvelope, &[]);
                self.fan_out(&channel, published);
            }
            Route::Poll { channel, query } => {
                let since = query.since.unwrap_or_else(|| self.hub.last_id(&channel));
                let backlog = self.hub.since(&channel, since);
                if query.since.is_some() && !polling::has_news(&backlog) {
                    self.respond_empty_poll(key, exchange);
                } else {
                    let reply = Reply::Poll(polling::encode_body(&backlog));
                    self.respond_poll(key, exchange, reply);
                }
            }
            Route::LongPoll { channel, query } => {
                let since = query.since.unwrap_or_else(|| self.hub.last_id(&channel));
                let backlog = self.hub.since(&channel, since);
                if polling::has_news(&backlog) {
                    let reply = Reply::Poll(polling::encode_body(&backlog));
                    return self.respond_poll(key, exchange, reply);
                }
                let wait = query
                    .timeout
                    .unwrap_or(self.config.longpoll_timeout)
                    .min(self.config.longpoll_max_timeout);
                self.park(key, exchange, channel, since, wait);
            }
            Route::Sse {
                channel,
                resume_after,
            } => self.start_sse(key, exchange, channel, resume_after),
            Route::Index => self.respond(
                key,
                exchange,
                Status::OK,
                Some("text/html; charset=utf-8"),
                &[("Cache-Control", "no-cache")],
                Reply::Static(INDEX_HTML),
            ),
            Route::Stats { channel } => {
                let json = self.stats_json(channel.as_deref());
                let extra = [NO_STORE, ("Access-Control-Allow-Origin", "*")];
                self.respond_json(key, exchange, json, Category::Other, &extra);
            }
            Route::Drop { transport } => {
                let dropped = self.drop_transport(transport, key);
                let answer = format!("{{\"dropped\":{dropped}}}");
                self.respond_json(key, exchange, answer, Category::Other, &[]);
            }
            Route::Trace => self.start_trace_feed(key, exchange),
            // Upgrades are answered as soon as their head is read (`begin_request`).
            Route::WebSocket { .. } => {}
        }
    }

    /// A 200 with a small JSON document made for this answer, all of `category`.
    fn respond_json(
        &mut self,
        key: usize,
        exchange: Exchange,
        json: String,
        category: Category,
        extra: &[(&str, &str)],
    ) {
        let reply = Reply::Bytes(json.into_bytes(), category);
        self.respond(
            key,
            exchange,
            Status::OK,
            Some("application/json"),
            extra,
            reply,
        );
    }

    fn respond_poll(&mut self, key: usize, exchange: Exchange, reply: Reply) {
        let extra = [NO_STORE];
        self.respond(
            key,
            exchange,
            Status::OK,
            Some("application/json"),
            &extra,
            reply,
        );
    }

    /// Nothing new for a poll, or a long-poll that timed out.
    fn respond_empty_poll(&mut self, key: usize, exchange: Exchange) {
        if let Some(conn) = self.conns.get(key) {
            self.ledger.count(conn.transport, Counter::Empty, 1);
        }
        self.respond(
            key,
            exchange,
            Status::NO_CONTENT,
            None,
            &[NO_STORE],
            Reply::Empty,
        );
    }

    fn park(
        &mut self,
        key: usize,
        exchange: Exchange,
        channel: Box<str>,
        since: u64,
        wait: Duration,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        self.hub.subscribe(&channel, key, Subscription::Once);
        conn.phase = Phase::Parked {
            exchange,
            channel,
            since,
            deadline: self.now + wait,
        };
    }

    /// Delivers a published message to the channel's subscribers: the message is encoded once per
    /// transport and every stream subscriber's queue shares those bytes.
    pub(super) fn fan_out(&mut self, channel: &str, published: Published) {
        let message = &published.message;
        // Parked long-polls waiting after the same id get the same body: built once per id.
        let mut bodies: Vec<(u64, polling::Body)> = Vec::new();
        for (key, _how) in published.subscribers {
            if self.sse_deliver(key, message) || self.ws_deliver(key, message) {
                self.dirty.push(key);
                let Some(conn) = self.conns.get(key) else {
                    continue;
                };
                if conn.output.len() > self.config.max_pending_output {
                    log::info!(
                        "c{key}: slow consumer cut off ({} bytes pending)",
                        conn.output.len()
                    );
                    self.ledger
                        .count(conn.transport, Counter::SlowDisconnects, 1);
                    if matches!(conn.phase, Phase::Sse { .. }) {
                        self.close(key);
                    } else {
                        self.ws_cut_slow_consumer(key);
                    }
                }
                continue;
            }
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if let Phase::Parked {
                exchange, since, ..
            } = &conn.phase
            {
                let (exchange, since) = (*exchange, *since);
                conn.phase = Phase::AwaitingHead;
                let body = match bodies.iter().find(|(id, _)| *id == since) {
                    Some((_, body)) => body.clone(),
                    None => {
                        let body = polling::encode_body(&self.hub.since(channel, since));
                        bodies.push((since, body.clone()));
                        body
                    }
                };
                self.respond_poll(key, exchange, Reply::Poll(body));
                self.dirty.push(key);
            }
        }
    }

    /// Closes every connection currently serving `transport` (except `asker`): what the demo's
    /// "drop connection" buttons and the resume tests use.
    fn drop_transport(&mut self, transport: Transport, asker: usize) -> usize {
        let victims: Vec<usize> = self
            .conns
            .iter()
            .filter(|(k, c)| {
                *k != asker && c.transport == transport && !matches!(c.phase, Phase::Closing { .. })
            })
            .map(|(k, _)| k)
            .collect();
        for &key in &victims {
            self.close(key);
        }
        log::info!("dropped {} {transport} connections", victims.len());
        victims.len()
    }

    /// A connection's deadline passed.
    pub(super) fn on_deadline(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match &conn.phase {
            Phase::AwaitingHead if !conn.request_begun => {
                log::debug!("c{key}: idle timeout");
                self.close(key);
            }
            Phase::AwaitingHead | Phase::ReadingBody { .. } => {
                self.refuse_and_close(key, Refusal::new(408, "request not received in time"));
            }
            Phase::Parked {
                exchange, channel, ..
            } => {
                let exchange = *exchange;
                self.hub.unsubscribe(channel, key);
                conn.phase = Phase::AwaitingHead;
                self.respond_empty_poll(key, exchange);
            }
            Phase::Closing { .. } => self.close(key),
            Phase::Sse { .. } => self.sse_heartbeat(key),
            Phase::WebSocket(_) => self.ws_deadline(key),
        }
    }

    /// Shutdown began: end what can be ended now; the rest drains within the grace period.
    pub(super) fn on_shutdown(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match &conn.phase {
            Phase::AwaitingHead if conn.input.is_empty() => {
                conn.phase = Phase::Closing {
                    since: self.now,
                    write_shut: false,
                };
            }
            Phase::Parked {
                exchange, channel, ..
            } => {
                let exchange = Exchange {
                    keep_alive: false,
                    ..*exchange
                };
                self.hub.unsubscribe(channel, key);
                conn.phase = Phase::AwaitingHead;
                self.respond_empty_poll(key, exchange);
            }
            Phase::Sse { .. } => self.sse_end(key),
            Phase::WebSocket(_) => self.ws_shutdown(key),
            // A request under way is finished (its answer says Connection: close).
            Phase::AwaitingHead | Phase::ReadingBody { .. } | Phase::Closing { .. } => {}
        }
    }

    /// Answers a request that broke a protocol rule, and closes.
    fn refuse(&mut self, key: usize, error: RequestError) {
        self.refuse_and_close(key, Refusal::new(error.status(), error.to_string()));
    }

    /// Answers a request that cannot be read to its end (broken framing, too slow), and closes:
    /// nothing after it could be framed. Answered in HTTP/1.1, as the version may be unknown.
    fn refuse_and_close(&mut self, key: usize, refusal: Refusal) {
        let exchange = Exchange {
            minor_version: 1,
            keep_alive: false,
        };
        self.respond_refusal(key, exchange, refusal);
    }

    pub(super) fn respond_refusal(&mut self, key: usize, exchange: Exchange, refusal: Refusal) {
        log::debug!("c{key}: {} {}", refusal.status, refusal.reason);
        let status = Status(refusal.status);
        let body = format!("{status}: {}\n", refusal.reason);
        self.respond(
            key,
            exchange,
            status,
            Some("text/plain; charset=utf-8"),
            refusal.headers,
            Reply::Bytes(body.into_bytes(), Category::Other),
        );
    }

    /// Queues a complete response and moves the connection to its next phase.
    fn respond(
        &mut self,
        key: usize,
        exchange: Exchange,
        status: Status,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
        reply: Reply,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let keep_alive = exchange.keep_alive && self.shutdown_deadline.is_none();
        let mut head = Vec::with_capacity(160);
        ResponseHead {
            status,
            minor_version: exchange.minor_version,
            date: self.date.value(),
            body: ResponseBody::Length(reply.len()),
            // HTTP/1.1 keeps alive unless told; HTTP/1.0 is told both ways.
            keep_alive: if keep_alive && exchange.minor_version == 1 {
                None
            } else {
                Some(keep_alive)
            },
            content_type,
            extra,
        }
        .encode(&mut head);
        conn.output.push_bytes(&head, Category::ResponseHead);
        match reply {
            Reply::Empty => {}
            Reply::Bytes(bytes, category) => {
                let layout = Layout::uniform(category, bytes.len());
                conn.output.push(Segment::Owned(bytes), layout);
            }
            Reply::Static(bytes) => {
                let layout = Layout::uniform(Category::Other, bytes.len());
                conn.output.push(Segment::Static(bytes), layout);
            }
            Reply::Poll(body) => {
                self.ledger
                    .count(conn.transport, Counter::Messages, body.messages as u64);
                for piece in body.pieces {
                    match piece {
                        Piece::Envelope(bytes) => {
                            conn.output.push_bytes(&bytes, Category::JsonEnvelope)
                        }
                        Piece::Message(unit, published_at) => {
                            conn.output.push_delivery(&unit, published_at)
                        }
                    }
                }
            }
        }
        self.ledger.count(conn.transport, Counter::Responses, 1);
        conn.requests += 1;
        conn.last_activity = self.now;
        conn.request_begun = false;
        conn.head_reader = Default::default();
        conn.phase = if keep_alive {
            Phase::AwaitingHead
        } else {
            Phase::Closing {
                since: self.now,
                write_shut: false,
            }
        };
    }
}
