//! The server side of one WebSocket connection after the handshake: bytes from the client in,
//! [`Event`]s and owed control frames out. No socket, no clock; see the module doc for the
//! lifecycle.

use std::collections::VecDeque;

use super::close::{CloseCode, encode_close_payload, is_valid_received_code, parse_close_payload};
use super::deflate::{InflateError, Inflater};
use super::error::ProtocolError;
use super::extension::Agreement;
use super::frame::{FrameHead, MAX_CONTROL_PAYLOAD, Opcode, encode_frame};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Connection state, in RFC 6455 §7 words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We queued a Close (server shutdown, policy, or a protocol error) and wait for the peer's.
    /// Data that still arrives is read and dropped; nothing more is sent.
    ClosingByUs,
    /// The peer sent Close and we have not answered yet. [`Session`] never reports it: a peer's
    /// Close is answered inside the same [`Session::receive`] call, so the state goes straight
    /// from `Open` to `Closed`. It is kept so a driver's `match` names all four RFC states.
    ClosingByPeer,
    /// Both Close frames are queued or seen: flush the output, then close TCP (the server closes
    /// first, RFC 6455 §7.1.1).
    Closed,
}

/// What the peer did, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete, UTF-8 validated text message.
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A ping; the pong is already queued.
    Ping(Vec<u8>),
    /// A pong (solicited or not).
    Pong(Vec<u8>),
    /// The peer's Close frame. `code` is `None` when its payload was empty.
    Close {
        /// Status code, if any.
        code: Option<u16>,
        /// Reason, empty if none.
        reason: String,
    },
}

/// What the bytes consumed by [`Session::receive`] were, for the wire ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputTally {
    /// Heads of data frames, masking key excluded.
    pub frame_header: u64,
    /// Masking keys of data frames.
    pub mask_key: u64,
    /// Payload of uncompressed data frames.
    pub payload: u64,
    /// Payload of compressed data frames (permessage-deflate), as it crossed the wire.
    pub compressed: u64,
    /// Compressed messages completed.
    pub compressed_messages: u64,
    /// What those messages inflated to.
    pub inflated: u64,
    /// Ping, pong and close frames, whole.
    pub control: u64,
    /// Bytes read and dropped after the stream failed or closed.
    pub dropped: u64,
}

/// Kind of the data message being assembled from fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// No message in progress: the next data frame must be Text or Binary.
    Idle,
    Text,
    Binary,
}

/// Where the reader is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Waiting for (the rest of) a frame head.
    Head,
    /// Inside the payload of a validated frame.
    Payload(Payload),
    /// A protocol error was raised: the stream is no longer framed; everything is dropped.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Payload {
    opcode: Opcode,
    fin: bool,
    key: [u8; 4],
    /// Payload bytes of this frame already read (the masking offset).
    done: u64,
    /// Payload bytes of this frame still to read.
    remaining: u64,
}

/// Server-side RFC 6455 protocol state machine for one connection.
#[derive(Debug)]
pub struct Session {
    state: State,
    read: Read,
    message: Message,
    /// Largest data message accepted, in bytes, summed over fragments.
    max_message_size: usize,
    /// Payload of the data message in progress (unmasked).
    message_buf: Vec<u8>,
    /// Bytes announced so far by the heads of the message in progress.
    message_len: u64,
    utf8: Utf8Validator,
    /// Payload of the control frame in progress (at most 125 bytes).
    control_buf: Vec<u8>,
    events: VecDeque<Event>,
    /// Wire bytes owed to the peer, drained by [`Session::poll_transmit`].
    transmit: Vec<u8>,
    /// What consumed input was, drained by [`Session::take_input_tally`].
    tally: InputTally,
    /// permessage-deflate, when negotiated.
    deflate: Option<Receiving>,
    /// The message in progress has RSV1 set: its payload is inflated as it arrives.
    compressed: bool,
}

/// The receiving half of permessage-deflate on one connection.
#[derive(Debug)]
struct Receiving {
    agreement: Agreement,
    /// Made at the first compressed message; freed after each one when the client keeps no
    /// context (`client_no_context_takeover`), kept (with the client's window) otherwise.
    inflater: Option<Inflater>,
}

impl Session {
    /// A session in the `Open` state that accepts data messages up to `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Session {
        Session {
            state: State::Open,
            read: Read::Head,
            message: Message::Idle,
            max_message_size,
            message_buf: Vec::new(),
            message_len: 0,
            utf8: Utf8Validator::new(),
            control_buf: Vec::new(),
            events: VecDeque::new(),
            transmit: Vec::new(),
            tally: InputTally::default(),
            deflate: None,
            compressed: false,
        }
    }

    /// A session that also accepts compressed messages (RSV1) as `agreement` says.
    pub fn with_deflate(max_message_size: usize, agreement: Option<Agreement>) -> Session {
        let mut session = Session::new(max_message_size);
        session.deflate = agreement.map(|agreement| Receiving {
            agreement,
            inflater: None,
        });
        session
    }

    /// Whether the session holds an inflater now (its window and tables, about 43 KiB).
    pub fn holds_inflater(&self) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.inflater.is_some())
    }

    /// What the input consumed since the last call was made of.
    pub fn take_input_tally(&mut self) -> InputTally {
        std::mem::take(&mut self.tally)
    }

    /// Feeds bytes from the peer and returns how many were consumed.
    ///
    /// Complete frames and partial payloads are consumed (payloads are buffered and validated as
    /// they come, so invalid UTF-8 fails before its frame ends); an incomplete frame head is left
    /// unconsumed for the next call. Events are queued for [`Session::poll_event`]. Once the
    /// session is `Closed` or has failed, every byte is consumed and dropped.
    ///
    /// On a protocol error a Close frame with the matching code is queued (unless ours was
    /// already queued), the state becomes `ClosingByUs` and the error is returned: the caller
    /// flushes [`Session::poll_transmit`] and closes the connection.
    pub fn receive(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        self.receive_until(input, false)
    }

    /// Like [`Session::receive`], but stops right after the first frame that produced an event or
    /// owes the peer a control frame. A driver that sends things of its own in answer to events
    /// (an echo, a published message) calls this in a loop, draining events and
    /// [`Session::poll_transmit`] after each call, so the wire keeps the order in which things
    /// happened: the pong for a ping before the echo of a message that completed after it, the
    /// echo of a message before the Close caused by a later broken frame.
    pub fn receive_next(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        self.receive_until(input, true)
    }

    fn receive_until(
        &mut self,
        input: &[u8],
        stop_on_output: bool,
    ) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        while pos < input.len() || self.read_owes_empty_payload() {
            if stop_on_output
                && self.read == Read::Head
                && (!self.events.is_empty() || !self.transmit.is_empty())
            {
                break;
            }
            if self.state == State::Closed || self.read == Read::Failed {
                self.tally.dropped += (input.len() - pos) as u64;
                return Ok(input.len());
            }
            let rest = input.get(pos..).unwrap_or_default();
            match self.read {
                Read::Failed => return Ok(input.len()),
                Read::Head => match FrameHead::decode(rest) {
                    Ok(None) => break,
                    Ok(Some((head, head_len))) => {
                        pos += head_len;
                        let head_len = head_len as u64;
                        if head.opcode.is_control() {
                            self.tally.control += head_len;
                        } else {
                            let key = if head.mask.is_some() { 4 } else { 0 };
                            self.tally.frame_header += head_len - key;
                            self.tally.mask_key += key;
                        }
                        self.start_frame(head).map_err(|e| self.fail(e))?;
                    }
                    Err(e) => return Err(self.fail(e)),
                },
                Read::Payload(payload) => {
                    let take = usize::try_from(payload.remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    let chunk = rest.get(..take).unwrap_or_default();
                    pos += take;
                    if payload.opcode.is_control() {
                        self.tally.control += take as u64;
                    } else if self.compressed {
                        self.tally.compressed += take as u64;
                    } else {
                        self.tally.payload += take as u64;
                    }
                    self.read_payload(payload, chunk)
                        .map_err(|e| self.fail(e))?;
                }
            }
        }
        Ok(pos)
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Appends the control frames the session owes the peer (pongs, close replies, close on
    /// error, [`Session::close`], [`Session::ping`]) to `out` as wire bytes.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.transmit);
    }

    /// True while [`Session::poll_transmit`] has bytes to hand out.
    pub fn wants_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// Starts a server-initiated close (e.g. 1001 on shutdown, 1003 for binary on a text
    /// channel). No-op unless `Open`. A `code` that may not appear on the wire (see
    /// [`is_valid_received_code`]) sends a Close with no payload instead; the reason is cut to
    /// 123 bytes.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.state != State::Open {
            return;
        }
        let mut payload = Vec::new();
        if is_valid_received_code(code.as_u16()) {
            encode_close_payload(code.as_u16(), reason, &mut payload);
        }
        encode_frame(Opcode::Close, &payload, &mut self.transmit);
        self.state = State::ClosingByUs;
        // Data of a message in progress will be dropped; keep only its kind for framing rules.
        self.message_buf = Vec::new();
    }

    /// Queues a ping (payload cut to 125 bytes). No-op unless `Open`.
    pub fn ping(&mut self, payload: &[u8]) {
        if self.state == State::Open {
            let payload = payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload);
            encode_frame(Opcode::Ping, payload, &mut self.transmit);
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the driver may still send data frames: false once our Close is queued
    /// (RFC 6455 §5.5.1: no data after Close).
    pub fn can_send_data(&self) -> bool {
        self.state == State::Open
    }

    /// A frame with an empty payload was started: it must complete even with no input left.
    fn read_owes_empty_payload(&self) -> bool {
        matches!(self.read, Read::Payload(Payload { remaining: 0, .. }))
    }

    /// Validates a head (RFC 6455 §5.1-§5.5) and starts reading its payload.
    fn start_frame(&mut self, head: FrameHead) -> Result<(), ProtocolError> {
        // RFC 7692 §6: RSV1 marks the first frame of a compressed message; on a control frame or
        // a continuation it is an error, as are RSV2 and RSV3.
        let rsv1 = head.rsv & 0b100 != 0;
        let rsv1_allowed =
            self.deflate.is_some() && matches!(head.opcode, Opcode::Text | Opcode::Binary);
        if head.rsv & 0b011 != 0 || (rsv1 && !rsv1_allowed) {
            return Err(ProtocolError::ReservedBitsSet { rsv: head.rsv });
        }
        if let Opcode::Reserved(opcode) = head.opcode {
            return Err(ProtocolError::ReservedOpcode { opcode });
        }
        let Some(key) = head.mask else {
            return Err(ProtocolError::UnmaskedFrame);
        };
        if head.opcode.is_control() {
            if !head.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if head.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong {
                    len: head.payload_len,
                });
            }
            self.control_buf.clear();
        } else {
            self.message = match (self.message, head.opcode) {
                (Message::Idle, Opcode::Continuation) => {
                    return Err(ProtocolError::UnexpectedContinuation);
                }
                (Message::Idle, Opcode::Text) => {
                    self.utf8.reset();
                    self.compressed = rsv1;
                    Message::Text
                }
                (Message::Idle, _) => {
                    self.compressed = rsv1;
                    Message::Binary
                }
                (_, Opcode::Continuation) => self.message,
                (_, _) => return Err(ProtocolError::ExpectedContinuation),
            };
            let size = self.message_len.saturating_add(head.payload_len);
            // Data is only kept while Open; afterwards it is dropped, so no limit applies.
            let max = u64::try_from(self.max_message_size).unwrap_or(u64::MAX);
            if self.state == State::Open && size > max {
                return Err(ProtocolError::MessageTooBig {
                    size,
                    max: self.max_message_size,
                });
            }
            self.message_len = size;
        }
        self.read = Read::Payload(Payload {
            opcode: head.opcode,
            fin: head.fin,
            key,
            done: 0,
            remaining: head.payload_len,
        });
        Ok(())
    }

    /// Takes `chunk` (at most the rest of the current payload) and completes the frame when its
    /// payload is all in.
    fn read_payload(&mut self, mut payload: Payload, chunk: &[u8]) -> Result<(), ProtocolError> {
        let offset = usize::try_from(payload.done % 4).unwrap_or(0);
        let keep_data = self.state == State::Open;
        if payload.opcode.is_control() {
            let start = self.control_buf.len();
            self.control_buf.extend_from_slice(chunk);
            apply_mask(
                self.control_buf.get_mut(start..).unwrap_or_default(),
                payload.key,
                offset,
            );
        } else if keep_data {
            let start = self.message_buf.len();
            if self.compressed {
                let max = self.max_message_size;
                // Unmasked piece by piece on the stack: no buffer for compressed bytes is kept.
                let mut piece = [0u8; 4096];
                let mut inflated = Ok(());
                for (i, wire) in chunk.chunks(piece.len()).enumerate() {
                    let unmasked = &mut piece[..wire.len()];
                    unmasked.copy_from_slice(wire);
                    apply_mask(unmasked, payload.key, (offset + i * 4096) % 4);
                    inflated =
                        inflater(&mut self.deflate).inflate(unmasked, &mut self.message_buf, max);
                    if inflated.is_err() {
                        break;
                    }
                }
                if let Err(e) = inflated {
                    // Text inflated before the bad data fails first if it is not UTF-8.
                    if self.message == Message::Text {
                        let fresh = self.message_buf.get(start..).unwrap_or_default();
                        self.utf8
                            .feed(fresh)
                            .map_err(|_| ProtocolError::InvalidUtf8)?;
                    }
                    return Err(inflate_error(e, max));
                }
            } else {
                self.message_buf.extend_from_slice(chunk);
                let fresh = self.message_buf.get_mut(start..).unwrap_or_default();
                apply_mask(fresh, payload.key, offset);
            }
            let fresh = self.message_buf.get_mut(start..).unwrap_or_default();
            if self.message == Message::Text {
                self.utf8
                    .feed(fresh)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        payload.done = payload.done.saturating_add(len);
        payload.remaining = payload.remaining.saturating_sub(len);
        if payload.remaining > 0 {
            self.read = Read::Payload(payload);
            return Ok(());
        }
        self.read = Read::Head;
        match payload.opcode {
            Opcode::Ping | Opcode::Pong | Opcode::Close => self.end_control(payload.opcode),
            _ if payload.fin => self.end_message(),
            _ => Ok(()),
        }
    }

    /// Ends a compressed message: inflates the trailer the sender removed (RFC 7692 §7.2.2) and
    /// lets the inflater go when the client keeps no context.
    fn end_compressed(&mut self) -> Result<(), ProtocolError> {
        let start = self.message_buf.len();
        // An empty compressed payload is an empty message; the inflater is not involved.
        let finished = if self.message_len > 0 {
            inflater(&mut self.deflate).finish(&mut self.message_buf, self.max_message_size)
        } else {
            Ok(())
        };
        if let Some(d) = &mut self.deflate
            && d.agreement.client_no_context_takeover
        {
            d.inflater = None;
        }
        if self.message == Message::Text {
            let fresh = self.message_buf.get(start..).unwrap_or_default();
            self.utf8
                .feed(fresh)
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        finished.map_err(|e| inflate_error(e, self.max_message_size))?;
        self.tally.compressed_messages += 1;
        self.tally.inflated += self.message_buf.len() as u64;
        Ok(())
    }

    /// A data message is complete.
    fn end_message(&mut self) -> Result<(), ProtocolError> {
        if std::mem::take(&mut self.compressed) && self.state == State::Open {
            self.end_compressed()?;
        }
        let kind = std::mem::replace(&mut self.message, Message::Idle);
        self.message_len = 0;
        let data = std::mem::take(&mut self.message_buf);
        if self.state != State::Open {
            return Ok(());
        }
        let event = match kind {
            Message::Text => {
                self.utf8.finish().map_err(|_| ProtocolError::InvalidUtf8)?;
                Event::Text(String::from_utf8(data).map_err(|_| ProtocolError::InvalidUtf8)?)
            }
            Message::Binary | Message::Idle => Event::Binary(data),
        };
        self.events.push_back(event);
        Ok(())
    }

    /// A control frame is complete; all state transitions caused by the peer happen here.
    fn end_control(&mut self, opcode: Opcode) -> Result<(), ProtocolError> {
        let payload = std::mem::take(&mut self.control_buf);
        match (opcode, self.state) {
            (Opcode::Ping, State::Open) => {
                encode_frame(Opcode::Pong, &payload, &mut self.transmit);
                self.events.push_back(Event::Ping(payload));
            }
            (Opcode::Pong, State::Open) => self.events.push_back(Event::Pong(payload)),
            (Opcode::Close, State::Open | State::ClosingByUs | State::ClosingByPeer) => {
                let parsed = parse_close_payload(&payload)?;
                if self.state == State::Open {
                    // RFC 6455 §5.5.1: echo the status code received.
                    let mut reply = Vec::new();
                    if let Some((code, _)) = parsed {
                        encode_close_payload(code, "", &mut reply);
                    }
                    encode_frame(Opcode::Close, &reply, &mut self.transmit);
                }
                self.events.push_back(Event::Close {
                    code: parsed.map(|(code, _)| code),
                    reason: parsed.map(|(_, r)| r.to_owned()).unwrap_or_default(),
                });
                self.state = State::Closed;
                self.message_buf = Vec::new();
            }
            // Pings and pongs after our Close are dropped: nothing more is sent.
            _ => {}
        }
        Ok(())
    }

    /// Fails the connection (RFC 6455 §7.1.7): queue our Close unless already sent, stop reading.
    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        if self.state == State::Open {
            let mut payload = Vec::new();
            encode_close_payload(
                error.close_code().as_u16(),
                &error.to_string(),
                &mut payload,
            );
            encode_frame(Opcode::Close, &payload, &mut self.transmit);
            self.state = State::ClosingByUs;
        }
        self.read = Read::Failed;
        self.message_buf = Vec::new();
        self.control_buf = Vec::new();
        if let Some(d) = &mut self.deflate {
            d.inflater = None;
        }
        error
    }
}

/// The connection's inflater, made when first needed (a compressed message only starts when
/// permessage-deflate was negotiated, so `deflate` is set).
fn inflater(deflate: &mut Option<Receiving>) -> &mut Inflater {
    let receiving = deflate.get_or_insert_with(|| Receiving {
        agreement: Agreement {
            client_no_context_takeover: false,
            server_max_window_bits: Agreement::MAX_WINDOW_BITS,
        },
        inflater: None,
    });
    receiving.inflater.get_or_insert_with(Inflater::new)
}

/// How an inflater's refusal fails the connection.
fn inflate_error(e: InflateError, max: usize) -> ProtocolError {
    match e {
        InflateError::TooBig => ProtocolError::InflatedTooBig { max },
        InflateError::Invalid => ProtocolError::InvalidCompressedData,
    }
}

#[cfg(test)]
mod tests;
