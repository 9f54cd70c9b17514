//! The driver side of WebSocket: the upgrade, feeding the session, publishing what clients send,
//! delivering channel messages, pings and the closing handshake. The protocol itself lives in
//! [`crate::websocket`].
use std::time::Instant;

use super::Server;
use super::connection::{Exchange, Phase};
use super::router::Refusal;
use crate::delivery;
use crate::http1::RequestHead;
use crate::hub::{Message, Subscription};
use crate::ledger::{Category, Counter, Layout};
use crate::outbuf::Segment;
use crate::websocket::{self, Event, Opcode, Session, State};

/// Close codes the server chooses (RFC 6455 §7.4.1); protocol violations use the session's.
const GOING_AWAY: u16 = 1001;
const UNSUPPORTED_DATA: u16 = 1003;
const POLICY_VIOLATION: u16 = 1008;
const INTERNAL_ERROR: u16 = 1011;

/// Payload of the server's pings.
const PING_PAYLOAD: &[u8] = b"pushwire";

/// A WebSocket connection's driver state beside its sans-IO session.
#[derive(Debug)]
pub(crate) struct WsConn {
    pub session: Session,
    /// The channel the socket belongs to; `None` on `/echo`.
    pub channel: Option<Box<str>>,
    pub next_ping: Instant,
    /// Set while a ping waits for its pong.
    pub pong_due: Option<Instant>,
    /// Set once our Close is queued: TCP is closed at this moment if the peer has not answered.
    pub close_due: Option<Instant>,
    /// Close TCP as soon as the output is flushed (protocol error, slow consumer, dead peer).
    pub close_after_flush: bool,
}

impl WsConn {
    /// The earliest moment something must happen on this connection.
    pub(crate) fn deadline(&self) -> Instant {
        [Some(self.next_ping), self.pong_due, self.close_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_ping)
    }

    /// True once nothing more will be read or written and TCP can be closed.
    pub(crate) fn finished(&self, output_empty: bool) -> bool {
        output_empty && (self.session.state() == State::Closed || self.close_after_flush)
    }

    fn start_closing(
        &mut self,
        code: u16,
        reason: &str,
        now: Instant,
        timeout: std::time::Duration,
    ) {
        self.session.close(code, reason);
        self.close_due.get_or_insert(now + timeout);
    }
}

/// A frame made for one connection: its head, then `body` of `category`.
fn push_frame(
    output: &mut crate::outbuf::OutQueue,
    opcode: Opcode,
    body: &[u8],
    category: Category,
) {
    let mut frame = Vec::with_capacity(websocket::frame_len(body.len()));
    websocket::encode_frame(opcode, body, &mut frame);
    let layout = Layout::from_runs(&[
        (Category::WsFrameHeader, frame.len() - body.len()),
        (category, body.len()),
    ]);
    output.push(Segment::Owned(frame), layout);
}

impl Server {
    /// Answers an upgrade request on `/ws/{channel}` or `/echo`.
    pub(super) fn start_websocket(
        &mut self,
        key: usize,
        exchange: Exchange,
        head: &RequestHead,
        channel: Option<Box<str>>,
        since: Option<u64>,
    ) {
        if !self.config.allowed_origins.is_empty() {
            let allowed = head.header("origin").is_some_and(|origin| {
                self.config
                    .allowed_origins
                    .iter()
                    .any(|a| a.as_bytes() == origin)
            });
            if !allowed {
                let refusal = Refusal::new(403, "origin not allowed");
                return self.respond_refusal(key, exchange, refusal);
            }
        }
        let headers: Vec<(&str, &[u8])> = head
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice()))
            .collect();
        let accept = match websocket::validate_upgrade(&head.method, head.minor_version, &headers) {
            Ok(accept) => accept,
            Err(e) => {
                let refusal = Refusal {
                    status: e.status(),
                    reason: e.to_string(),
                    headers: e.extra_headers(),
                };
                return self.respond_refusal(key, exchange, refusal);
            }
        };
        let backlog = match (&channel, since) {
            (Some(c), Some(after)) => Some(self.hub.since(c, after)),
            _ => None,
        };
        if let Some(c) = &channel {
            self.hub.subscribe(c, key, Subscription::Stream);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut out = Vec::with_capacity(160);
        websocket::encode_switching_protocols(&accept, &mut out);
        conn.output.push_bytes(&out, Category::WsHandshake);
        if let Some(b) = &backlog {
            if let Some(gap) = b.gap {
                let text = format!("{{\"gap\":{{\"from\":{},\"to\":{}}}}}", gap.from, gap.to);
                push_frame(
                    &mut conn.output,
                    Opcode::Text,
                    text.as_bytes(),
                    Category::JsonEnvelope,
                );
            }
            if b.reset {
                let text = format!("{{\"reset\":true,\"last_id\":{}}}", b.last_id);
                push_frame(
                    &mut conn.output,
                    Opcode::Text,
                    text.as_bytes(),
                    Category::JsonEnvelope,
                );
            }
        }
        let mut delivered = 0;
        for message in backlog.iter().flat_map(|b| &b.messages) {
            conn.output
                .push_delivery(&delivery::ws_frame(message), message.published_at);
            delivered += 1;
        }
        conn.requests += 1;
        let transport = conn.transport;
        self.ledger.count(transport, Counter::Responses, 1);
        self.ledger.count(transport, Counter::Messages, delivered);
        if since.is_some() {
            self.ledger.count(transport, Counter::Resumes, 1);
        }
        conn.phase = Phase::WebSocket(Box::new(WsConn {
            session: Session::new(self.config.max_message_size),
            channel,
            next_ping: self.now + self.config.ws_ping_interval,
            pong_due: None,
            close_due: None,
            close_after_flush: false,
        }));
    }

    /// Feeds input to the session frame by frame and acts on each frame's events, so what the
    /// server sends keeps the order of what the peer sent. Returns whether anything happened.
    pub(super) fn ws_process(&mut self, key: usize) -> bool {
        let mut progressed = false;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return progressed;
            };
            let Phase::WebSocket(ws) = &mut conn.phase else {
                return progressed;
            };
            let input = &conn.input[..];
            if input.is_empty() && !ws.session.wants_transmit() {
                return progressed;
            }
            // A peer that does not read what it causes (echoes, pongs) is not read either: its
            // input waits, its socket buffer fills, and TCP pushes back on it.
            if conn.output.len() >= self.config.max_pending_output {
                return progressed;
            }
            let mut unframed = 0;
            let consumed = match ws.session.receive_next(input) {
                Ok(n) => n,
                Err(e) => {
                    log::debug!("c{key}: websocket protocol error: {e}");
                    unframed = input.len();
                    ws.close_after_flush = true;
                    // A peer that does not read our Close is not waited for long.
                    ws.close_due
                        .get_or_insert(self.now + self.config.ws_close_timeout);
                    unframed
                }
            };
            conn.input.consume(consumed);
            let tally = ws.session.take_input_tally();
            let mut events = Vec::new();
            while let Some(event) = ws.session.poll_event() {
                events.push(event);
            }
            let channel = ws.channel.clone();
            let transport = conn.transport;
            for (category, n) in [
                (Category::WsFrameHeader, tally.frame_header),
                (Category::WsMaskKey, tally.mask_key),
                (Category::Payload, tally.payload),
                (Category::ControlFrames, tally.control),
                (Category::Other, tally.dropped),
            ] {
                self.ledger.inbound(transport, category, n as usize);
            }
            // Bytes after a frame that broke the rules, never parsed.
            self.ledger.inbound(transport, Category::Other, unframed);
            // What the session owes (a pong, a close reply) goes before the answers to this
            // frame's events, which the peer sent after it.
            let transmitted = self.ws_transmit(key);
            let had_events = !events.is_empty();
            for event in events {
                self.ws_event(key, channel.as_deref(), event);
            }
            // An incomplete frame head waits for more input: that is no progress.
            if consumed == 0 && !had_events && !transmitted {
                return progressed;
            }
            progressed = true;
        }
    }

    fn ws_event(&mut self, key: usize, channel: Option<&str>, event: Event) {
        match (event, channel) {
            (Event::Text(text), Some(channel)) => {
                let published = self.hub.publish(channel, text.into_boxed_str(), self.now);
                self.fan_out(channel, published);
            }
            (Event::Binary(_), Some(_)) => {
                self.ws_close(key, UNSUPPORTED_DATA, "channels carry text")
            }
            (Event::Text(text), None) => self.ws_send(key, Opcode::Text, text.as_bytes()),
            (Event::Binary(data), None) => self.ws_send(key, Opcode::Binary, &data),
            (Event::Pong(_), _) => {
                if let Some(Phase::WebSocket(ws)) = self.conns.get_mut(key).map(|c| &mut c.phase) {
                    ws.pong_due = None;
                }
            }
            // The session answers pings and close frames itself.
            (Event::Ping(_) | Event::Close { .. }, _) => {}
        }
    }

    /// Sends one unshared data message (the echo endpoint).
    fn ws_send(&mut self, key: usize, opcode: Opcode, payload: &[u8]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::WebSocket(ws) = &conn.phase else {
            return;
        };
        if ws.session.can_send_data() {
            push_frame(&mut conn.output, opcode, payload, Category::Payload);
        }
    }

    /// Moves the control frames the session owes the peer into the output queue; true when
    /// there were any.
    fn ws_transmit(&mut self, key: usize) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return false;
        };
        if !ws.session.wants_transmit() {
            return false;
        }
        let mut bytes = Vec::new();
        ws.session.poll_transmit(&mut bytes);
        conn.output.push_bytes(&bytes, Category::ControlFrames);
        true
    }

    /// Starts a server-initiated close handshake.
    pub(super) fn ws_close(&mut self, key: usize, code: u16, reason: &str) {
        let (now, timeout) = (self.now, self.config.ws_close_timeout);
        if let Some(Phase::WebSocket(ws)) = self.conns.get_mut(key).map(|c| &mut c.phase) {
            ws.start_closing(code, reason, now, timeout);
        }
        self.ws_transmit(key);
    }

    /// Queues a channel message on a WebSocket; false when the connection is not one.
    pub(super) fn ws_deliver(&mut self, key: usize, message: &Message) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return false;
        };
        if ws.session.can_send_data() {
            conn.output
                .push_delivery(&delivery::ws_frame(message), message.published_at);
            self.ledger.count(conn.transport, Counter::Messages, 1);
        }
        true
    }

    /// A slow WebSocket consumer: drop what it has not started to receive and tell it why.
    pub(super) fn ws_cut_slow_consumer(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.output.drop_unstarted();
            if let Phase::WebSocket(ws) = &mut conn.phase {
                ws.close_after_flush = true;
            }
        }
        self.ws_close(
            key,
            POLICY_VIOLATION,
            "slow consumer: reconnect with ?since=",
        );
    }

    /// One of the WebSocket's deadlines passed: close timeout, pong timeout or ping time.
    pub(super) fn ws_deadline(&mut self, key: usize) {
        let (now, c) = (self.now, &self.config);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::WebSocket(ws) = &mut conn.phase else {
            return;
        };
        if ws.close_due.is_some_and(|t| t <= now) {
            log::debug!("c{key}: websocket close handshake timed out");
            return self.close(key);
        }
        if ws.pong_due.is_some_and(|t| t <= now) {
            log::debug!("c{key}: websocket peer did not answer a ping");
            ws.pong_due = None;
            ws.close_after_flush = true;
            ws.start_closing(INTERNAL_ERROR, "no pong", now, c.ws_close_timeout);
        } else if ws.next_ping <= now {
            ws.session.ping(PING_PAYLOAD);
            ws.pong_due.get_or_insert(now + c.ws_pong_timeout);
            ws.next_ping = now + c.ws_ping_interval;
        }
        self.ws_transmit(key);
    }

    /// Shutdown: every WebSocket gets close 1001.
    pub(super) fn ws_shutdown(&mut self, key: usize) {
        self.ws_close(key, GOING_AWAY, "server shutting down");
    }
}
