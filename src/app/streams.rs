//! The requests that turn a connection into a stream: an event stream of a channel or of the
//! trace feed, a WebSocket on a channel or on `/echo`; and what a WebSocket client sends.
use super::ClientRef;
use super::{App, Client, Effect, Feed, Session};
use crate::delivery;
use crate::http1::{Refusal, RequestHead, Status};
use crate::hub::Subscription;
use crate::ledger::{Category, Counter, Transport};
use crate::outbuf::SharedUnit;
use crate::sse;
use crate::websocket::deflate::Compressor;
use crate::websocket::{self, CloseCode, Endpoint, Opcode, WsMessage};

/// The close code for "the server cannot take this now" (IANA WebSocket Close Code Number
/// Registry: 1013 Try Again Later).
const TRY_AGAIN_LATER: u16 = 1013;

impl App {
    /// Answers `GET /sse/{channel}`: the stream head, the opening events, any backlog after the
    /// resume point, then live messages.
    pub(super) fn start_sse(
        &mut self,
        who: ClientRef,
        conn: &mut Client,
        channel: Box<str>,
        resume_after: Option<u64>,
    ) {
        let Session::Http(h) = &mut conn.session else {
            return;
        };
        let exchange = h.core.upgrade();
        let opening = sse::Opening {
            date: self.date.value(),
            extra: &[],
            head_category: Category::ResponseHead,
            retry: self.config.sse_retry,
            notices: b"",
            notices_category: Category::SseFields,
            heartbeat: self.config.sse_heartbeat,
        };
        let stream = sse::Stream::open(exchange, &opening, self.now, &mut conn.output);
        let subscriber = who.subscriber(Transport::Sse);
        self.hub()
            .subscribe(&channel, subscriber, Subscription::Stream);
        conn.session = Session::Sse(stream, Feed::Channel(channel));
        // The replay, its notices first, a window at a time (see `replay`).
        let delivered = resume_after.map_or(0, |after| self.queue_replay(conn, after));
        self.count_stream_start(conn, delivered, resume_after.is_some());
    }

    /// `GET /trace`: an event stream of trace records (JSON), every connection but the observers.
    pub(super) fn start_trace_feed(&mut self, who: ClientRef, conn: &mut Client) -> Option<Effect> {
        let Session::Http(h) = &mut conn.session else {
            return None;
        };
        let was_active = self.tracer.active();
        let exchange = h.core.upgrade();
        let opening = sse::Opening {
            date: self.date.value(),
            // No CORS header: records carry every channel's payload preview.
            extra: &[],
            head_category: Category::Other,
            retry: self.config.sse_retry,
            notices: b"",
            notices_category: Category::Other,
            heartbeat: self.config.sse_heartbeat,
        };
        let stream = sse::Stream::open(exchange, &opening, self.now, &mut conn.output);
        // The feed is an observer: it is never traced itself.
        conn.dissectors = None;
        self.tracer.subscribe(who.key, stream.is_chunked());
        conn.session = Session::Sse(stream, Feed::Trace);
        (!was_active).then_some(Effect::TracingStarted)
    }

    /// Answers an upgrade request on `/ws/{channel}` or `/echo`.
    pub(super) fn start_websocket(
        &mut self,
        who: ClientRef,
        conn: &mut Client,
        head: &RequestHead,
        channel: Option<Box<str>>,
        since: Option<u64>,
    ) {
        // The Origin was checked with the route (`router::check_access`): same origin, listed in
        // `--allowed-origin`, or absent (browsers always send one, RFC 6455 §4.1: a request
        // without is no page of another site).
        let headers: Vec<(&str, &[u8])> = head.headers().collect();
        let accept = match websocket::validate_upgrade(head.method(), head.minor_version, &headers)
        {
            Ok(accept) => accept,
            Err(e) => {
                let refusal = Refusal {
                    status: Status(e.status()),
                    reason: e.to_string(),
                    headers: e.extra_headers(),
                };
                return self.refuse(conn, refusal, false);
            }
        };
        let Session::Http(h) = &mut conn.session else {
            return;
        };
        h.core.upgrade();
        if let Some(c) = &channel {
            let subscriber = who.subscriber(Transport::Ws);
            self.hub().subscribe(c, subscriber, Subscription::Stream);
        }
        let deflate = if self.config.ws_deflate {
            websocket::extension::negotiate(
                headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions"))
                    .map(|(_, v)| *v),
            )
        } else {
            None
        };
        let mut handshake = Vec::with_capacity(224);
        websocket::encode_switching_protocols_with(&accept, deflate.as_ref(), &mut handshake);
        conn.output.push_bytes(&handshake, Category::WsHandshake);
        let ws = Endpoint::with_deflate(self.ws, deflate, self.now);
        let resume = since.filter(|_| channel.is_some());
        conn.session = Session::WebSocket(ws, channel);
        // The replay, its notices first, a window at a time (see `replay`).
        let delivered = resume.map_or(0, |after| self.queue_replay(conn, after));
        self.count_stream_start(conn, delivered, since.is_some());
    }

    /// A data message from a WebSocket client: published on its channel, echoed on `/echo`.
    pub(super) fn on_ws_message(
        &mut self,
        conn: &mut Client,
        channel: Option<&str>,
        message: WsMessage,
    ) -> Option<Effect> {
        let Session::WebSocket(ws, _) = &mut conn.session else {
            return None;
        };
        match (message, channel) {
            (WsMessage::Text(text), Some(channel)) => {
                match self.publish(channel, text.into_boxed_str()) {
                    Ok(_) => return Some(Effect::Published),
                    // A WebSocket cannot be answered 503: 1013 Try Again Later (IANA registry
                    // of close codes), and the client reconnects with ?since=.
                    Err(refused) => {
                        log::info!("c{}: publish to {channel} refused: {refused}", conn.id);
                        ws.close(
                            CloseCode::Other(TRY_AGAIN_LATER),
                            "try again later",
                            self.now,
                            &mut conn.output,
                        );
                    }
                }
            }
            (WsMessage::Binary(_), Some(_)) => ws.close(
                CloseCode::Unsupported,
                "channels carry text",
                self.now,
                &mut conn.output,
            ),
            (WsMessage::Text(text), None) => {
                let compressor = self.compressor.get_or_insert_with(Compressor::new);
                let sizes = ws.send_compressing(
                    Opcode::Text,
                    text.as_bytes(),
                    compressor,
                    &mut conn.output,
                );
                self.count_echo(conn.transport, sizes);
            }
            (WsMessage::Binary(data), None) => {
                let compressor = self.compressor.get_or_insert_with(Compressor::new);
                let sizes =
                    ws.send_compressing(Opcode::Binary, &data, compressor, &mut conn.output);
                self.count_echo(conn.transport, sizes);
            }
        }
        None
    }

    /// A channel message queued on a WebSocket: counted in the ledger as compressed when it went
    /// out compressed, with the size of its uncompressed JSON object.
    ///
    /// `json_len` gives the uncompressed JSON object's size, asked only for a compressed frame (a
    /// fan-out takes it from its shared encoding, never encoding once per subscriber).
    pub(super) fn count_deflated(
        &mut self,
        transport: Transport,
        unit: &SharedUnit,
        json_len: impl FnOnce() -> usize,
    ) {
        if let Some(compressed) = delivery::ws_compressed_len(unit) {
            let json = json_len();
            self.ledger
                .deflated_out(transport, compressed as u64, json as u64);
        }
    }

    /// An echo that went out compressed.
    fn count_echo(&mut self, transport: Transport, sizes: Option<(usize, usize)>) {
        if let Some((compressed, uncompressed)) = sizes {
            self.ledger
                .deflated_out(transport, compressed as u64, uncompressed as u64);
        }
    }

    /// A stream answered its request: one response, the backlog it replayed, and whether the
    /// client resumed from an id.
    fn count_stream_start(&mut self, conn: &Client, delivered: u64, resumed: bool) {
        let transport = conn.transport;
        self.ledger.count(transport, Counter::Responses, 1);
        self.ledger.count(transport, Counter::Messages, delivered);
        if resumed {
            self.ledger.count(transport, Counter::Resumes, 1);
        }
    }
}
