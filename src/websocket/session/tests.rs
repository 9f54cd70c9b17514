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

mod deflate {
    use super::*;
    use crate::websocket::deflate::Compressor;

    const NO_CONTEXT: Agreement = Agreement {
        client_no_context_takeover: true,
        server_max_window_bits: 15,
    };
    /// RFC 7692 §7.2.3.1/.2: "Hello" compressed, then again with the first message's context.
    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    const HELLO_AGAIN: [u8; 5] = [0xf2, 0x00, 0x11, 0x00, 0x00];

    /// A masked client frame with RSV1 set.
    fn compressed(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = client(fin, opcode, payload);
        out[0] |= 0x40;
        out
    }

    /// Feeds `wire` whole, one byte at a time, and with trailing bytes, to a session with
    /// `agreement`, and checks all three agree; returns the events and the error, if any.
    fn run(
        agreement: Agreement,
        max: usize,
        wire: &[u8],
    ) -> (Vec<Event>, Result<(), ProtocolError>) {
        let go = |pieces: Vec<&[u8]>| {
            let mut s = Session::with_deflate(max, Some(agreement));
            let mut buf = Vec::new();
            let mut result = Ok(());
            for p in pieces {
                buf.extend_from_slice(p);
                match s.receive(&buf) {
                    Ok(n) => {
                        buf.drain(..n);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            (
                std::iter::from_fn(|| s.poll_event()).collect::<Vec<_>>(),
                result,
            )
        };
        let whole = go(vec![wire]);
        assert_eq!(whole, go(wire.chunks(1).collect()), "bytewise");
        whole
    }

    #[test]
    fn decodes_a_compressed_message_in_fragments_with_a_ping_between() {
        let mut wire = compressed(false, Opcode::Text, &HELLO[..2]);
        wire.extend(client(true, Opcode::Ping, b"p"));
        wire.extend(client(false, Opcode::Continuation, &HELLO[2..5]));
        wire.extend(client(true, Opcode::Continuation, &HELLO[5..]));
        let (events, result) = run(NO_CONTEXT, MAX, &wire);
        assert_eq!(result, Ok(()));
        assert_eq!(
            events,
            [Event::Ping(b"p".to_vec()), Event::Text("Hello".into())]
        );
    }

    #[test]
    fn keeps_the_client_context_only_when_agreed() {
        let mut wire = compressed(true, Opcode::Text, &HELLO);
        wire.extend(compressed(true, Opcode::Text, &HELLO_AGAIN));
        let takeover = Agreement {
            client_no_context_takeover: false,
            ..NO_CONTEXT
        };
        let (events, result) = run(takeover, MAX, &wire);
        assert_eq!(result, Ok(()));
        assert_eq!(
            events,
            [Event::Text("Hello".into()), Event::Text("Hello".into())]
        );
        let mut s = Session::with_deflate(MAX, Some(takeover));
        s.receive(&wire).unwrap();
        assert!(s.holds_inflater(), "the client's window is kept");
        // Without context takeover, the inflater goes after each message; a second message that
        // refers to the first one's window does not get "Hello" back (miniz_oxide reads an
        // empty window as zeros rather than failing).
        let mut s = Session::with_deflate(MAX, Some(NO_CONTEXT));
        let first = compressed(true, Opcode::Text, &HELLO);
        assert_eq!(s.receive(&first), Ok(first.len()));
        assert!(!s.holds_inflater());
        let (events, _) = run(NO_CONTEXT, MAX, &wire);
        assert_eq!(events.first(), Some(&Event::Text("Hello".into())));
        assert_ne!(events.get(1), Some(&Event::Text("Hello".into())));
    }

    #[test]
    fn encodes_what_it_decodes_and_rejects_what_the_rules_forbid() {
        let text = "pushwire ".repeat(500);
        let mut payload = Vec::new();
        assert!(Compressor::new().compress(text.as_bytes(), 15, &mut payload));
        let (events, result) = run(NO_CONTEXT, MAX, &compressed(true, Opcode::Text, &payload));
        assert_eq!((events, result), (vec![Event::Text(text.clone())], Ok(())));
        // Past the limit while inflating: 1009, though the compressed frame is small.
        let (events, result) = run(NO_CONTEXT, 1000, &compressed(true, Opcode::Text, &payload));
        assert!(events.is_empty());
        assert_eq!(result, Err(ProtocolError::InflatedTooBig { max: 1000 }));
        assert_eq!(result.unwrap_err().close_code().as_u16(), 1009);
        // Not DEFLATE: 1007. Not UTF-8 once inflated: 1007.
        let (_, result) = run(NO_CONTEXT, MAX, &compressed(true, Opcode::Binary, &[0xff]));
        assert_eq!(result, Err(ProtocolError::InvalidCompressedData));
        let mut bad = Vec::new();
        Compressor::new().compress(&[0xc3, 0x28].repeat(100), 15, &mut bad);
        let (_, result) = run(NO_CONTEXT, MAX, &compressed(true, Opcode::Text, &bad));
        assert_eq!(result, Err(ProtocolError::InvalidUtf8));
        // RSV1 on a continuation or a control frame: 1002; without the extension, on anything.
        let mut wire = compressed(false, Opcode::Text, &HELLO[..2]);
        wire.extend(compressed(true, Opcode::Continuation, &HELLO[2..]));
        let (_, result) = run(NO_CONTEXT, MAX, &wire);
        assert_eq!(result, Err(ProtocolError::ReservedBitsSet { rsv: 0b100 }));
        let (_, result) = run(NO_CONTEXT, MAX, &compressed(true, Opcode::Ping, b""));
        assert_eq!(result, Err(ProtocolError::ReservedBitsSet { rsv: 0b100 }));
        let outcome = drive([&compressed(true, Opcode::Text, &HELLO)[..]]);
        assert_eq!(
            outcome.result,
            Err(ProtocolError::ReservedBitsSet { rsv: 0b100 })
        );
    }

    #[test]
    fn tallies_compressed_and_inflated_bytes() {
        let wire = compressed(true, Opcode::Text, &HELLO);
        let mut s = Session::with_deflate(MAX, Some(NO_CONTEXT));
        s.receive(&wire).unwrap();
        let tally = s.take_input_tally();
        assert_eq!(
            (
                tally.compressed,
                tally.compressed_messages,
                tally.inflated,
                tally.payload
            ),
            (7, 1, 5, 0)
        );
        // An empty compressed message is an empty message.
        let (events, _) = run(NO_CONTEXT, MAX, &compressed(true, Opcode::Text, &[]));
        assert_eq!(events, [Event::Text(String::new())]);
    }
}
