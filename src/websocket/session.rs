//! The server side of one WebSocket connection after the handshake: bytes from the client in,
//! [`Event`]s and owed control frames out. No socket, no clock; see the module doc for the
//! lifecycle.

use std::collections::VecDeque;

use super::close::{CloseCode, encode_close_payload, is_valid_received_code, parse_close_payload};
use super::error::ProtocolError;
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
    /// Payload of data frames.
    pub payload: u64,
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
        }
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
        if head.rsv != 0 {
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
                    Message::Text
                }
                (Message::Idle, _) => Message::Binary,
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
            self.message_buf.extend_from_slice(chunk);
            let fresh = self.message_buf.get_mut(start..).unwrap_or_default();
            apply_mask(fresh, payload.key, offset);
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

    /// A data message is complete.
    fn end_message(&mut self) -> Result<(), ProtocolError> {
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
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const MAX: usize = 1 << 16;

    /// A masked client frame.
    fn client(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::frame::encode_masked_frame(fin, opcode, payload, KEY, &mut out);
        out
    }

    /// An unmasked server frame, as the session should send it.
    fn server(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(opcode, payload, &mut out);
        out
    }

    fn close_payload(code: u16, reason: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_close_payload(code, reason, &mut out);
        out
    }

    #[derive(Debug, PartialEq)]
    struct Outcome {
        events: Vec<Event>,
        transmit: Vec<u8>,
        result: Result<(), ProtocolError>,
        /// Bytes the session left unconsumed at the end.
        leftover: Vec<u8>,
        state: State,
    }

    /// Drives a session like a real connection would: append each read to a buffer, feed the
    /// buffer, drop what was consumed.
    fn drive<'a>(reads: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut session = Session::new(MAX);
        let mut buffer = Vec::new();
        let mut result = Ok(());
        for read in reads {
            buffer.extend_from_slice(read);
            match session.receive(&buffer) {
                Ok(n) => {
                    assert!(n <= buffer.len());
                    buffer.drain(..n);
                }
                Err(e) => {
                    // The driver flushes and closes: unread input no longer matters.
                    result = Err(e);
                    buffer.clear();
                    break;
                }
            }
        }
        let mut transmit = Vec::new();
        session.poll_transmit(&mut transmit);
        Outcome {
            events: std::iter::from_fn(|| session.poll_event()).collect(),
            transmit,
            result,
            leftover: buffer,
            state: session.state(),
        }
    }

    fn whole(input: &[u8]) -> Outcome {
        drive([input])
    }

    fn bytewise(input: &[u8]) -> Outcome {
        drive(input.chunks(1))
    }

    /// Deterministic pseudo-random splits (xorshift), `seed` varies them.
    fn random_splits(input: &[u8], seed: u64) -> Outcome {
        let mut state = seed | 1;
        let mut pieces = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % 9) as usize + 1;
            let (a, b) = rest.split_at(n.min(rest.len()));
            pieces.push(a);
            rest = b;
        }
        drive(pieces)
    }

    /// Runs `input` whole, one byte at a time and with random splits; all must agree.
    fn three_ways(input: &[u8]) -> Outcome {
        let expected = whole(input);
        assert_eq!(bytewise(input), expected, "one byte at a time");
        for seed in 1..50 {
            assert_eq!(
                random_splits(input, seed),
                expected,
                "random splits, seed {seed}"
            );
        }
        expected
    }

    /// Fragmented text (with "é" and "😀" split across fragments) with a ping in the middle,
    /// a binary message, a pong, then Close 1000.
    fn conversation() -> Vec<u8> {
        let text = "héllo 😀 wörld";
        let bytes = text.as_bytes();
        let mut input = Vec::new();
        input.extend(client(false, Opcode::Text, &bytes[..2])); // splits "é"
        input.extend(client(true, Opcode::Ping, b"are you there")); // interleaved control
        input.extend(client(false, Opcode::Continuation, &bytes[2..9])); // splits "😀"
        input.extend(client(false, Opcode::Continuation, b""));
        input.extend(client(true, Opcode::Continuation, &bytes[9..]));
        input.extend(client(true, Opcode::Binary, &[0, 1, 2, 255]));
        input.extend(client(true, Opcode::Text, b""));
        input.extend(client(true, Opcode::Pong, b"unsolicited"));
        input.extend(client(true, Opcode::Binary, &vec![7u8; 300]));
        input.extend(client(true, Opcode::Close, &close_payload(1000, "bye")));
        input
    }

    #[test]
    fn decodes_a_conversation_split_every_way() {
        let out = three_ways(&conversation());
        assert_eq!(
            out.events,
            vec![
                Event::Ping(b"are you there".to_vec()),
                Event::Text("héllo 😀 wörld".to_owned()),
                Event::Binary(vec![0, 1, 2, 255]),
                Event::Text(String::new()),
                Event::Pong(b"unsolicited".to_vec()),
                Event::Binary(vec![7u8; 300]),
                Event::Close {
                    code: Some(1000),
                    reason: "bye".to_owned()
                },
            ]
        );
        let mut expected = server(Opcode::Pong, b"are you there");
        expected.extend(server(Opcode::Close, &close_payload(1000, "")));
        assert_eq!(out.transmit, expected);
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.state, State::Closed);
        assert!(out.leftover.is_empty());
    }

    #[test]
    fn decodes_with_trailing_bytes_left_alone() {
        // An incomplete head at the end stays in the caller's buffer...
        let mut input = client(true, Opcode::Text, b"hi");
        let next = client(true, Opcode::Binary, &[0u8; 200]);
        input.extend_from_slice(&next[..3]);
        let mut session = Session::new(MAX);
        assert_eq!(session.receive(&input), Ok(input.len() - 3));
        assert_eq!(session.poll_event(), Some(Event::Text("hi".into())));
        // ...while a partial payload is consumed and buffered inside.
        let mut session = Session::new(MAX);
        assert_eq!(session.receive(&next[..10]), Ok(10));
        assert_eq!(session.poll_event(), None);
        assert_eq!(session.receive(&next[10..]), Ok(next.len() - 10));
        assert_eq!(session.poll_event(), Some(Event::Binary(vec![0; 200])));
        // Bytes after the peer's Close are consumed and ignored.
        let mut input = conversation();
        input.extend(client(true, Opcode::Text, b"late"));
        input.extend_from_slice(&[0xff; 5]);
        let out = three_ways(&input);
        assert_eq!(out.events.len(), 7);
        assert_eq!(out.state, State::Closed);
        assert!(out.leftover.is_empty());
    }

    #[test]
    fn decodes_close_without_payload_and_replies_empty() {
        let out = three_ways(&client(true, Opcode::Close, b""));
        assert_eq!(
            out.events,
            vec![Event::Close {
                code: None,
                reason: String::new()
            }]
        );
        assert_eq!(out.transmit, [0x88, 0x00]);
        assert_eq!(out.state, State::Closed);
    }

    /// Feeds `input` three ways and checks the error, the close code sent and the state.
    fn rejects(input: &[u8], error: ProtocolError) {
        let out = three_ways(input);
        assert_eq!(out.result, Err(error));
        let code = error.close_code().as_u16();
        let expected = server(Opcode::Close, &close_payload(code, &error.to_string()));
        assert_eq!(out.transmit, expected, "{error}");
        assert_eq!(out.state, State::ClosingByUs);
    }

    #[test]
    fn rejects_unmasked_frames() {
        rejects(&server(Opcode::Text, b"hi"), ProtocolError::UnmaskedFrame);
    }

    #[test]
    fn rejects_reserved_bits_and_opcodes() {
        let mut frame = client(true, Opcode::Text, b"hi");
        frame[0] |= 0x40;
        rejects(&frame, ProtocolError::ReservedBitsSet { rsv: 0b100 });
        for opcode in [3, 7, 11, 15] {
            let frame = client(true, Opcode::Reserved(opcode), b"");
            rejects(&frame, ProtocolError::ReservedOpcode { opcode });
        }
    }

    #[test]
    fn rejects_bad_control_frames() {
        rejects(
            &client(true, Opcode::Ping, &[0; 126]),
            ProtocolError::ControlFrameTooLong { len: 126 },
        );
        rejects(
            &client(false, Opcode::Ping, b""),
            ProtocolError::FragmentedControlFrame,
        );
        rejects(
            &client(true, Opcode::Close, b"\x03"),
            ProtocolError::CloseFrameTooShort,
        );
        rejects(
            &client(true, Opcode::Close, &close_payload(1005, "")),
            ProtocolError::InvalidCloseCode { code: 1005 },
        );
        rejects(
            &client(true, Opcode::Close, b"\x03\xe8\xed\xa0\x80"),
            ProtocolError::InvalidCloseReason,
        );
        // 125 bytes is still fine.
        let out = three_ways(&client(true, Opcode::Ping, &[1; 125]));
        assert_eq!(out.transmit, server(Opcode::Pong, &[1; 125]));
    }

    #[test]
    fn rejects_broken_fragmentation() {
        rejects(
            &client(true, Opcode::Continuation, b"x"),
            ProtocolError::UnexpectedContinuation,
        );
        let mut input = client(false, Opcode::Text, b"a");
        input.extend(client(true, Opcode::Binary, b"b"));
        rejects(&input, ProtocolError::ExpectedContinuation);
        // The first message is complete, so a second continuation has nothing to continue.
        let mut input = client(false, Opcode::Binary, b"a");
        input.extend(client(true, Opcode::Continuation, b"b"));
        input.extend(client(true, Opcode::Continuation, b"c"));
        let out = three_ways(&input);
        assert_eq!(out.result, Err(ProtocolError::UnexpectedContinuation));
        assert_eq!(out.events, vec![Event::Binary(b"ab".to_vec())]);
    }

    #[test]
    fn rejects_oversized_messages_from_the_head() {
        let mut head = Vec::new();
        FrameHead {
            fin: true,
            rsv: 0,
            opcode: Opcode::Binary,
            mask: Some(KEY),
            payload_len: MAX as u64 + 1,
        }
        .encode(&mut head);
        let size = MAX as u64 + 1;
        rejects(&head, ProtocolError::MessageTooBig { size, max: MAX });
        // Summed over fragments: the second head already pushes it over.
        let mut input = client(false, Opcode::Binary, &vec![0; MAX - 10]);
        input.extend(client(true, Opcode::Continuation, &[0; 11]));
        rejects(&input, ProtocolError::MessageTooBig { size, max: MAX });
        // Exactly the limit is accepted.
        let out = three_ways(&client(true, Opcode::Binary, &vec![0; MAX]));
        assert_eq!(out.events, vec![Event::Binary(vec![0; MAX])]);
    }

    #[test]
    fn rejects_invalid_utf8_as_soon_as_it_arrives() {
        // Autobahn 6.4.1-style: the frame is far from complete, the error comes at 0xF4 0x90.
        let mut bytes = "κόσμε".as_bytes().to_vec();
        bytes.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
        bytes.extend_from_slice(b"edited");
        let frame = client(true, Opcode::Text, &bytes);
        let head_len = 6;
        let bad_end = head_len + "κόσμε".len() + 2;
        let mut session = Session::new(MAX);
        assert_eq!(session.receive(&frame[..bad_end - 1]), Ok(bad_end - 1));
        assert_eq!(
            session.receive(&frame[bad_end - 1..bad_end]),
            Err(ProtocolError::InvalidUtf8)
        );
        rejects(&frame, ProtocolError::InvalidUtf8);
        // A code point split across fragments is checked across them.
        let mut input = client(false, Opcode::Text, b"ok \xed");
        input.extend(client(true, Opcode::Continuation, b"\xa0\x80"));
        rejects(&input, ProtocolError::InvalidUtf8);
        // A message ending inside a code point.
        rejects(
            &client(true, Opcode::Text, b"ok \xe2\x82"),
            ProtocolError::InvalidUtf8,
        );
        // Binary messages are not checked.
        let out = three_ways(&client(true, Opcode::Binary, b"\xff"));
        assert_eq!(out.events, vec![Event::Binary(vec![0xff])]);
    }

    #[test]
    fn rejects_length_with_top_bit_set() {
        let input = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        rejects(&input, ProtocolError::LengthOverflow);
    }

    #[test]
    fn drops_input_after_a_protocol_error() {
        let mut session = Session::new(MAX);
        let bad = server(Opcode::Text, b"hi");
        assert_eq!(session.receive(&bad), Err(ProtocolError::UnmaskedFrame));
        let good = client(true, Opcode::Text, b"hi");
        assert_eq!(session.receive(&good), Ok(good.len()));
        assert_eq!(session.poll_event(), None);
        assert!(!session.can_send_data());
    }

    #[test]
    fn encodes_server_close_then_waits_for_the_peer() {
        let mut session = Session::new(MAX);
        assert!(session.can_send_data());
        session.close(CloseCode::GoingAway, "shutdown");
        assert_eq!(session.state(), State::ClosingByUs);
        assert!(!session.can_send_data());
        session.close(CloseCode::Normal, "again"); // no-op
        session.ping(b"no"); // no-op
        let mut out = Vec::new();
        session.poll_transmit(&mut out);
        assert_eq!(out, server(Opcode::Close, &close_payload(1001, "shutdown")));
        // Data, pings and a fragmented message still arriving are read and dropped.
        let mut input = client(false, Opcode::Text, b"dropped");
        input.extend(client(true, Opcode::Ping, b"p"));
        input.extend(client(true, Opcode::Continuation, b" too"));
        input.extend(client(true, Opcode::Binary, &vec![0; MAX + 1]));
        input.extend(client(true, Opcode::Close, &close_payload(1001, "")));
        assert_eq!(session.receive(&input), Ok(input.len()));
        assert_eq!(
            session.poll_event(),
            Some(Event::Close {
                code: Some(1001),
                reason: String::new()
            })
        );
        assert_eq!(session.poll_event(), None);
        assert_eq!(session.state(), State::Closed);
        let mut out = Vec::new();
        session.poll_transmit(&mut out);
        assert!(out.is_empty(), "no reply to a close reply");
    }

    #[test]
    fn encodes_pings_and_close_codes_that_may_not_be_sent() {
        let mut session = Session::new(MAX);
        session.ping(&[9; 200]);
        assert!(session.wants_transmit());
        session.close(CloseCode::Other(1005), "reserved");
        let mut out = Vec::new();
        session.poll_transmit(&mut out);
        let mut expected = server(Opcode::Ping, &[9; 125]);
        expected.extend(server(Opcode::Close, b""));
        assert_eq!(out, expected);
        assert!(!session.wants_transmit());
    }

    #[test]
    fn decodes_random_garbage_without_panicking() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut input = Vec::new();
            for _ in 0..40 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                input.push(state as u8);
            }
            let mut session = Session::new(64);
            let consumed = session.receive(&input).unwrap_or(input.len());
            assert!(consumed <= input.len());
        }
    }
}
