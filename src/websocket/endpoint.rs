//! The server side of one WebSocket connection with its clocks, sans-IO: the protocol
//! [`Session`] plus the ping interval, the pong timeout and the close timeout, and the queueing of
//! what the session owes the peer with its ledger layout.
//!
//! ```text
//!  Open ── ping every `ping_interval` ──► pong due ── pong ──► Open
//!    │                                       └─ no pong in `pong_timeout` ─► close 1011, then drop
//!    ├── close(code) / slow consumer ─► our Close sent ─► peer's Close or `close_timeout`
//!    │                                                    ─► finished
//!    ├── protocol error ─► our Close sent ─► input read and dropped (Linger) until the peer's
//!    │                                       Close, its FIN, [`LINGER_QUIET`] without input or
//!    │                                       `close_timeout` ─► finished (at once when the
//!    │                                       offending frame was the peer's Close)
//!    └── peer's Close ─► answered ─► finished once flushed
//! ```
//! Input is taken frame by frame ([`Endpoint::receive`] returns after each frame that produced
//! something), so what the server sends keeps the order of what the peer sent.
use std::time::{Duration, Instant};

use super::close::CloseCode;
use super::deflate::Compressor;
use super::extension::Agreement;
use super::frame::{FrameHead, Opcode, encode_compressed_frame, encode_frame, frame_len};
use super::session::{Event, Session, State};
use crate::ledger::{ByCategory, Category, Deflated, Layout};
use crate::outbuf::{OutQueue, Segment, SharedUnit};

/// After a protocol error, the connection ends once the peer has sent nothing for this long
/// (and our Close has left): a peer still sending is read, so closing does not answer it with a
/// reset, and a quiet one is not kept waiting for a Close it may never send (Autobahn's client
/// drops the connection after 1 s). Apache's lingering close works the same way.
pub const LINGER_QUIET: Duration = Duration::from_millis(500);

/// Payload of the server's pings.
const PING_PAYLOAD: &[u8] = b"pushwire";

/// The clocks and limits of every WebSocket connection.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Largest data message accepted (1009 past it).
    pub max_message_size: usize,
    /// Interval between server pings.
    pub ping_interval: Duration,
    /// How long the peer has to answer a ping.
    pub pong_timeout: Duration,
    /// How long to wait for the peer's Close after ours.
    pub close_timeout: Duration,
    /// A peer that does not read what it causes (echoes, pongs) is not read either while its
    /// queued output holds this much memory ([`OutQueue::memory`]).
    pub max_pending_output: usize,
}

/// What the peer sent that the application acts on; pings, pongs and closes are handled here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A complete text message, fragments joined and UTF-8 validated (RFC 6455 §5.6).
    Text(String),
    /// A complete binary message, fragments joined.
    Binary(Vec<u8>),
}

/// The outcome of one [`Endpoint::receive`] call.
#[derive(Debug, Default)]
pub struct Received {
    /// Bytes of the input consumed.
    pub consumed: usize,
    /// What they were, by ledger category.
    pub tally: ByCategory,
    /// The data messages completed, in order.
    pub messages: Vec<Message>,
    /// The compressed ones among them: payload on the wire and inflated.
    pub inflated: Deflated,
    /// Whether anything happened (a frame completed, a control frame was queued): the caller
    /// calls again while this is true.
    pub progressed: bool,
}

/// After a protocol error and our Close: what the peer still sends is read and dropped, so that
/// closing TCP with unread input does not answer it with a reset that can destroy our Close in
/// flight (RFC 6455 §7.1.1: the closing handshake, then TCP). Frames are followed while they can
/// be; the end is the peer's Close, its FIN, or the close timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linger {
    /// At what should be a frame head (a masked client frame).
    Head,
    /// Skipping the payload of a frame; `close` when it is the peer's Close.
    Payload { remaining: u64, close: bool },
    /// The framing can not be followed: everything is dropped until FIN or the timeout.
    Unframed,
    /// The peer's Close arrived: nothing more to wait for.
    PeerClosed,
}

/// One WebSocket connection after the 101.
#[derive(Debug)]
pub struct Endpoint {
    settings: Settings,
    session: Session,
    /// permessage-deflate, when negotiated.
    deflate: Option<Agreement>,
    next_ping: Instant,
    /// Set while a ping waits for its pong.
    pong_due: Option<Instant>,
    /// Set once our Close is queued: the connection ends at this moment if the peer has not
    /// answered.
    close_due: Option<Instant>,
    /// End the connection as soon as the output is flushed (slow consumer, dead peer): the peer
    /// is not waited for.
    close_after_flush: bool,
    /// Set after a protocol error: input is drained until the peer's Close (see [`Linger`]).
    linger: Option<Linger>,
    /// While lingering: the moment the connection ends if the peer stays quiet.
    quiet_due: Option<Instant>,
}

/// Queues a frame made for this connection only: its head, then `body` of `category`.
fn push_frame(out: &mut OutQueue, opcode: Opcode, body: &[u8], category: Category) {
    let mut frame = Vec::with_capacity(frame_len(body.len()));
    encode_frame(opcode, body, &mut frame);
    let layout = Layout::from_runs(&[
        (Category::WsFrameHeader, frame.len() - body.len()),
        (category, body.len()),
    ]);
    out.push(Segment::Owned(frame), layout);
}

impl Endpoint {
    /// An open endpoint whose first ping is due one `ping_interval` after `now`.
    pub fn new(settings: Settings, now: Instant) -> Endpoint {
        Endpoint::with_deflate(settings, None, now)
    }

    /// An endpoint that negotiated permessage-deflate as `agreement` says (`None`: it did not).
    pub fn with_deflate(
        settings: Settings,
        agreement: Option<Agreement>,
        now: Instant,
    ) -> Endpoint {
        Endpoint {
            session: Session::with_deflate(settings.max_message_size, agreement),
            deflate: agreement,
            settings,
            next_ping: now + settings.ping_interval,
            pong_due: None,
            close_due: None,
            close_after_flush: false,
            linger: None,
            quiet_due: None,
        }
    }

    /// Whether [`Endpoint::receive`] given no input would do anything: only a session with
    /// frames of its own to send (a pong, a close) has work then. A driver that has no input for
    /// the endpoint may skip the call when this is false (a fan-out's write, once per delivery).
    pub fn acts_without_input(&self) -> bool {
        self.linger.is_none() && self.session.wants_transmit()
    }

    /// Consumes input up to the end of the next frame that produced something, queues what the
    /// session owes the peer (a pong, a close reply) and returns the data messages completed.
    pub fn receive(&mut self, input: &[u8], now: Instant, out: &mut OutQueue) -> Received {
        let mut received = Received::default();
        if input.is_empty() && !self.acts_without_input() {
            return received;
        }
        if let Some(linger) = self.linger {
            let consumed = self.drain(linger, input);
            if consumed > 0 {
                self.quiet_due = Some(now + LINGER_QUIET.min(self.settings.close_timeout));
            }
            received.consumed = consumed;
            received.tally[Category::Other.index()] += consumed as u64;
            received.progressed = consumed > 0;
            return received;
        }
        if out.memory() >= self.settings.max_pending_output {
            // Backpressure: the input waits, the socket buffer fills, TCP pushes back.
            return received;
        }
        let mut unframed = 0;
        received.consumed = match self.session.receive_next(input) {
            Ok(n) => n,
            Err(e) => {
                log::debug!("websocket protocol error: {e}");
                unframed = input.len();
                if e.is_in_peers_close() {
                    // The peer has said its last: nothing to wait for.
                    self.close_after_flush = true;
                } else {
                    // What the peer sends next starts, most likely, at a frame of its own.
                    self.linger = Some(Linger::Head);
                    self.quiet_due = Some(now + LINGER_QUIET.min(self.settings.close_timeout));
                }
                // A peer that does not read our Close is not waited for long.
                self.close_due
                    .get_or_insert(now + self.settings.close_timeout);
                unframed
            }
        };
        let tally = self.session.take_input_tally();
        for (category, n) in [
            (Category::WsFrameHeader, tally.frame_header),
            (Category::WsMaskKey, tally.mask_key),
            (Category::Payload, tally.payload),
            (Category::WsCompressed, tally.compressed),
            (Category::ControlFrames, tally.control),
            (Category::Other, tally.dropped),
        ] {
            received.tally[category.index()] += n;
        }
        received.inflated = Deflated {
            messages: tally.compressed_messages,
            compressed: tally.compressed,
            uncompressed: tally.inflated,
        };
        // Bytes after a frame that broke the rules, never parsed.
        received.tally[Category::Other.index()] += unframed as u64;
        // What the session owes goes out before the answers to this frame's events, which the
        // peer sent after it.
        let transmitted = self.transmit(out);
        let mut events = 0;
        while let Some(event) = self.session.poll_event() {
            events += 1;
            match event {
                Event::Text(text) => received.messages.push(Message::Text(text)),
                Event::Binary(data) => received.messages.push(Message::Binary(data)),
                Event::Pong(_) => self.pong_due = None,
                // The session answers pings and close frames itself.
                Event::Ping(_) | Event::Close { .. } => {}
            }
        }
        // An incomplete frame head waits for more input: that is no progress.
        received.progressed = received.consumed > 0 || events > 0 || transmitted;
        received
    }

    /// Reads and drops input after a protocol error, following frames while they look like a
    /// client's; returns the bytes consumed (all but an incomplete frame head).
    fn drain(&mut self, mut linger: Linger, input: &[u8]) -> usize {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            linger = match linger {
                Linger::Unframed | Linger::PeerClosed => {
                    pos = input.len();
                    linger
                }
                Linger::Payload { remaining, close } => {
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    pos += take;
                    match (remaining - take as u64, close) {
                        (0, true) => Linger::PeerClosed,
                        (0, false) => Linger::Head,
                        (remaining, close) => Linger::Payload { remaining, close },
                    }
                }
                Linger::Head => match FrameHead::decode(rest) {
                    Ok(None) => break,
                    // A client's frames are masked (RFC 6455 §5.3): anything else is no frame.
                    Ok(Some((head, _))) if head.mask.is_none() => Linger::Unframed,
                    Err(_) => Linger::Unframed,
                    Ok(Some((head, head_len))) => {
                        pos += head_len;
                        let close = head.opcode == Opcode::Close;
                        match (head.payload_len, close) {
                            (0, true) => Linger::PeerClosed,
                            (0, false) => Linger::Head,
                            (remaining, close) => Linger::Payload { remaining, close },
                        }
                    }
                },
            };
        }
        self.linger = Some(linger);
        pos
    }

    /// Moves the control frames the session owes into `out`; true when there were any.
    fn transmit(&mut self, out: &mut OutQueue) -> bool {
        if !self.session.wants_transmit() {
            return false;
        }
        let mut bytes = Vec::new();
        self.session.poll_transmit(&mut bytes);
        out.push_bytes(&bytes, Category::ControlFrames);
        true
    }

    /// Sends one data message made for this connection (an echo). Nothing after our Close.
    pub fn send(&mut self, opcode: Opcode, payload: &[u8], out: &mut OutQueue) {
        if self.session.can_send_data() {
            push_frame(out, opcode, payload, Category::Payload);
        }
    }

    /// The permessage-deflate parameters negotiated, if any: which shared frame a channel message
    /// takes (see `crate::delivery::Encodings::ws_frame_for`).
    pub fn deflate(&self) -> Option<Agreement> {
        self.deflate
    }

    /// Sends one data message made for this connection (an echo), compressed with `compressor`
    /// when permessage-deflate was negotiated and compression makes it smaller. Returns the
    /// compressed and uncompressed payload sizes when it went compressed.
    pub fn send_compressing(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
        compressor: &mut Compressor,
        out: &mut OutQueue,
    ) -> Option<(usize, usize)> {
        if !self.session.can_send_data() {
            return None;
        }
        let mut deflated = Vec::new();
        match self.deflate {
            Some(agreement)
                if compressor.compress(
                    payload,
                    agreement.server_max_window_bits,
                    &mut deflated,
                ) =>
            {
                let mut frame = Vec::with_capacity(frame_len(deflated.len()));
                encode_compressed_frame(opcode, &deflated, &mut frame);
                let layout = Layout::from_runs(&[
                    (Category::WsFrameHeader, frame.len() - deflated.len()),
                    (Category::WsCompressed, deflated.len()),
                ]);
                out.push(Segment::Owned(frame), layout);
                Some((deflated.len(), payload.len()))
            }
            _ => {
                push_frame(out, opcode, payload, Category::Payload);
                None
            }
        }
    }

    /// Whether the session holds an inflater now (see [`Session::holds_inflater`]).
    pub fn holds_inflater(&self) -> bool {
        self.session.holds_inflater()
    }

    /// Sends a text frame of JSON the server writes (a gap or reset notice).
    pub fn send_notice(&mut self, json: &str, out: &mut OutQueue) {
        if self.session.can_send_data() {
            push_frame(out, Opcode::Text, json.as_bytes(), Category::JsonEnvelope);
        }
    }

    /// Queues a channel message's shared frame; false (nothing queued) once closing.
    pub fn deliver(
        &mut self,
        unit: &SharedUnit,
        published_at: Instant,
        out: &mut OutQueue,
    ) -> bool {
        if !self.session.can_send_data() {
            return false;
        }
        out.push_delivery(unit, published_at);
        true
    }

    /// Starts a server-initiated close handshake (1001 on shutdown, 1003 for binary on a text
    /// channel…).
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant, out: &mut OutQueue) {
        self.session.close(code, reason);
        self.close_due
            .get_or_insert(now + self.settings.close_timeout);
        self.transmit(out);
    }

    /// A slow consumer: what it has not started to receive is dropped, it is told why (1008), and
    /// the connection ends once that is flushed.
    pub fn cut_slow_consumer(&mut self, now: Instant, out: &mut OutQueue) {
        out.drop_unstarted();
        self.close_after_flush = true;
        self.close(
            CloseCode::Policy,
            "slow consumer: reconnect with ?since=",
            now,
            out,
        );
    }

    /// The earliest moment [`Endpoint::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Instant {
        [
            Some(self.next_ping),
            self.pong_due,
            self.close_due,
            self.quiet_due,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_ping)
    }

    /// Acts on passed deadlines: a ping when one is due, 1011 when a pong is overdue. Returns
    /// true when the close timeout passed: the connection ends now.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut OutQueue) -> bool {
        if self.close_due.is_some_and(|t| t <= now) {
            log::debug!("websocket close handshake timed out");
            return true;
        }
        if self.quiet_due.is_some_and(|t| t <= now) {
            if out.is_empty() {
                return true;
            }
            // Our Close has not left yet: the quiet time counts from when it has.
            self.quiet_due = Some(now + LINGER_QUIET.min(self.settings.close_timeout));
        }
        if self.pong_due.is_some_and(|t| t <= now) {
            log::debug!("websocket peer did not answer a ping");
            self.pong_due = None;
            self.close_after_flush = true;
            self.close(CloseCode::Internal, "no pong", now, out);
        } else if self.next_ping <= now {
            self.session.ping(PING_PAYLOAD);
            self.pong_due
                .get_or_insert(now + self.settings.pong_timeout);
            self.next_ping = now + self.settings.ping_interval;
            self.transmit(out);
        }
        false
    }

    /// True once nothing more will be read or written and the connection can end.
    pub fn is_finished(&self, output_empty: bool) -> bool {
        output_empty
            && (self.session.state() == State::Closed
                || self.close_after_flush
                || self.linger == Some(Linger::PeerClosed))
    }
}

#[cfg(test)]
mod tests;
