//! Entry points shared by cargo-fuzz targets and the corpus replay test.
//!
//! Each `pub fn` takes arbitrary bytes and panics (through `assert!`) when an invariant of a
//! codec breaks: nothing consumed past the input, the same result whole / one byte at a time / at
//! random splits, encode-then-decode is the identity, renderers never panic. The fuzz targets in
//! `fuzz/fuzz_targets/` are one call each; `tests/fuzz_corpus.rs` replays the checked-in corpus
//! through the same functions on the stable toolchain.
//!
//! Operation sequences and split points are read from the input bytes themselves (no `arbitrary`
//! dependency): a target that needs choices takes them from a [`Bytes`] reader, and random splits
//! come from a xorshift generator seeded with a hash of the input, so a corpus file always replays
//! the same way.
//!
//! | entry point          | what it feeds                        | what it asserts                          |
//! |----------------------|--------------------------------------|------------------------------------------|
//! | [`http_request`]     | raw bytes → `HeadReader`, framing    | whole = prefixes = splits; body decoders |
//! | [`chunked_body`]     | raw bytes → `ChunkedDecoder`         | whole = bytewise = splits; consumed ≤ len|
//! | [`ws_handshake`]     | header lines → `validate_upgrade`    | accept key; order and case independence  |
//! | [`ws_frame`]         | raw bytes → `FrameHead`, `Session`   | prefixes need more; re-encode; splits    |
//! | [`ws_session`]       | op sequence → masked frames → session| whole = bytewise = splits; sane transmit |
//! | [`ws_utf8`]          | raw bytes → `Utf8Validator`          | agrees with `std::str::from_utf8`        |
//! | [`sse_parser`]       | raw bytes → `sse::Parser`            | whole = bytewise = splits                |
//! | [`roundtrip_ws`]     | opcode, keys, payload                | encode → decode / session = identity     |
//! | [`roundtrip_chunked`]| payload and chunk sizes              | encode → decode = identity               |
//! | [`roundtrip_sse`]    | id, event type, data                 | encode → parse = normalized input        |
//! | [`render`]           | raw bytes → every trace renderer     | never panics, ends lines                 |
use std::fmt::Write as _;

use crate::http1::chunked::{
    ChunkedDecoder, ChunkedError, LAST_CHUNK, chunk_overhead, encode_chunk,
};
use crate::http1::request::leading_empty_lines;
use crate::http1::{BodyDecoder, BodyFraming, HeadReader, Limits, RequestError, RequestHead};
use crate::sse;
use crate::websocket::mask::apply_mask_reference;
use crate::websocket::{
    self, Event, FrameHead, Opcode, ProtocolError, Session, State, Utf8Validator, accept_key,
    apply_mask, encode_frame, frame_len, validate_upgrade,
};

/// xorshift64 seeded from the input: deterministic split points with no dependency.
struct Rng(u64);

impl Rng {
    /// Seeds from an FNV-1a hash of `data`.
    fn from_data(data: &[u8]) -> Rng {
        let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(hash | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A piece size in `1..=max`.
    fn piece(&mut self, max: usize) -> usize {
        (self.next() % max.max(1) as u64) as usize + 1
    }

    /// `data` cut into pieces of 1 to `max` bytes.
    fn split<'a>(&mut self, data: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(self.piece(max).min(rest.len()));
            pieces.push(a);
            rest = b;
        }
        pieces
    }
}

/// Reads choices off the front of the input; runs dry as zeros.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn key(&mut self) -> [u8; 4] {
        [self.byte(), self.byte(), self.byte(), self.byte()]
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| n << 8 | u64::from(self.byte()))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1

/// Tight limits so the fuzzer reaches the 414 and 431 paths with short inputs.
const TIGHT: Limits = Limits {
    max_request_line: 64,
    max_head: 256,
};

/// Request head decoding and the body framing decision.
///
/// With default and tight limits: decoding the input whole, every growing prefix with one reader
/// (as a connection does), and random growing prefixes agree, on the same error when there is
/// one; "need more" happens only for prefixes of a head and never consumes; the head consumed is
/// at most the input; a complete head re-decodes identically from exactly its own bytes. Then the
/// body after it is decoded with the framing decided, whole and one byte at a time, with the same
/// outcome.
pub fn http_request(data: &[u8]) {
    let skip = leading_empty_lines(data);
    assert!(skip <= data.len());
    for limits in [Limits::default(), TIGHT] {
        let input = &data[skip..];
        let whole = HeadReader::new().decode(input, &limits);
        match &whole {
            Ok(Some(head)) => {
                assert!(head.len <= input.len() && head.len <= limits.max_head);
                let exact = HeadReader::new().decode(&input[..head.len], &limits);
                assert_eq!(exact.as_ref(), Ok(&Some(head.clone())));
                let _ = head.to_string();
                let _ = head.keep_alive();
                let _ = (head.path(), head.query(), head.query_param("since"));
                framing_and_body(head, &input[head.len..]);
            }
            Ok(None) => assert!(input.len() <= limits.max_head),
            Err(e) => assert!((400..=505).contains(&e.status())),
        }
        // Bytewise is quadratic (each call rechecks the request line); keep it to small inputs.
        if input.len() <= 1024 {
            assert_head_prefixes(input, &limits, &whole, (1..=input.len()).collect());
        }
        let mut rng = Rng::from_data(input);
        let mut ends = Vec::new();
        let mut end = 0;
        while end < input.len() {
            end = (end + rng.piece(64)).min(input.len());
            ends.push(end);
        }
        assert_head_prefixes(input, &limits, &whole, ends);
    }
}

/// Feeds growing prefixes `input[..end]` to one reader, like a connection whose buffer grows.
fn assert_head_prefixes(
    input: &[u8],
    limits: &Limits,
    whole: &Result<Option<RequestHead>, RequestError>,
    ends: Vec<usize>,
) {
    let mut reader = HeadReader::new();
    for end in ends {
        let got = reader.decode(&input[..end], limits);
        match (&got, whole) {
            (Ok(None), _) => {}
            (Ok(Some(head)), Ok(Some(expected))) => {
                assert_eq!(head, expected, "head from a prefix of {end} bytes");
                return;
            }
            // The same error, not merely an error: a connection reports what the whole input
            // would have.
            (Err(e), Err(expected)) => {
                assert_eq!(e, expected, "error from a prefix of {end} bytes");
                return;
            }
            _ => panic!("prefix of {end} bytes gave {got:?}, whole input {whole:?}"),
        }
    }
    // Ran out of input without a verdict: the whole input must say "need more" too.
    if !input.is_empty() {
        assert_eq!(whole, &Ok(None), "whole input decided, prefixes did not");
    }
}

fn framing_and_body(head: &RequestHead, rest: &[u8]) {
    let Ok(framing) = BodyFraming::decide(head) else {
        return;
    };
    match framing {
        BodyFraming::Chunked => assert_eq!(head.minor_version, 1),
        BodyFraming::Length(_) => assert!(head.header("content-length").is_some()),
        BodyFraming::None => assert!(head.header("content-length").is_none()),
    }
    let Some(decoder) = BodyDecoder::new(framing) else {
        return;
    };
    let max_len = 1 << 16;
    let mut whole = decoder.clone();
    let mut whole_body = Vec::new();
    let whole_result = whole.decode(rest, &mut whole_body, max_len);
    if let Ok(n) = whole_result {
        assert!(n <= rest.len());
    }
    let mut bytewise = decoder;
    let mut body = Vec::new();
    let mut result = Ok(0);
    for piece in rest.chunks(1) {
        match bytewise.decode(piece, &mut body, max_len) {
            Ok(0) => break,
            Ok(n) => result = result.map(|total| total + n),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    assert_eq!(result, whole_result);
    if result.is_ok() {
        assert_eq!(body, whole_body);
        assert_eq!(bytewise.is_done(), whole.is_done());
    }
}

/// Everything a chunked decode of `pieces` produced: consumed count or error, data, done.
type ChunkedOutcome = (Result<usize, ChunkedError>, Vec<u8>, bool);

fn decode_chunked_pieces(pieces: &[&[u8]]) -> ChunkedOutcome {
    let mut decoder = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut total = 0;
    for piece in pieces {
        match decoder.decode(piece, &mut out) {
            Ok(n) => {
                assert!(n <= piece.len());
                total += n;
                if n < piece.len() {
                    // The decoder stops early only at the end of the body.
                    assert!(decoder.is_done());
                    break;
                }
            }
            Err(e) => return (Err(e), out, decoder.is_done()),
        }
    }
    (Ok(total), out, decoder.is_done())
}

/// The chunked body decoder over arbitrary bytes: whole, one byte at a time and at random splits
/// give the same consumed count (or error), the same data and the same end state; data never
/// exceeds the input.
pub fn chunked_body(data: &[u8]) {
    let whole = decode_chunked_pieces(&[data]);
    if let Ok(n) = whole.0 {
        assert!(n <= data.len());
        assert!(whole.1.len() <= n);
        if n < data.len() {
            assert!(whole.2, "stopped before the end of input without finishing");
        }
    }
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(
        decode_chunked_pieces(&bytewise),
        whole,
        "one byte at a time"
    );
    let mut rng = Rng::from_data(data);
    for _ in 0..4 {
        let pieces = rng.split(data, 16);
        assert_eq!(decode_chunked_pieces(&pieces), whole, "random splits");
    }
}

/// Chunked coding round trip: the input cut into chunks (sizes from the input), encoded, then
/// decoded whole, one byte at a time and followed by a pipelined request gives the input back,
/// consumes exactly the encoding and ends done. The encoded size is what `chunk_overhead` says.
pub fn roundtrip_chunked(data: &[u8]) {
    let mut rng = Rng::from_data(data);
    let chunks = rng.split(data, 300);
    let mut encoded = Vec::new();
    let mut expected_len = LAST_CHUNK.len();
    for chunk in &chunks {
        encode_chunk(chunk, &mut encoded);
        expected_len += chunk.len() + chunk_overhead(chunk.len());
    }
    encoded.extend_from_slice(LAST_CHUNK);
    assert_eq!(encoded.len(), expected_len);
    let expected: ChunkedOutcome = (Ok(encoded.len()), data.to_vec(), true);
    assert_eq!(decode_chunked_pieces(&[&encoded]), expected);
    let bytewise: Vec<&[u8]> = encoded.chunks(1).collect();
    assert_eq!(decode_chunked_pieces(&bytewise), expected);
    let mut pipelined = encoded.clone();
    pipelined.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(decode_chunked_pieces(&[&pipelined]), expected);
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/// Upgrade validation over a header list built from the bytes: the first byte picks the method
/// and HTTP version, the rest is `name: value` lines split on LF.
///
/// An accepted upgrade is a GET on HTTP/1.1+ with exactly one `Sec-WebSocket-Key`, and its accept
/// value is `accept_key` of that key (28 base64 characters). The verdict does not depend on the
/// case of header names nor on their order.
pub fn ws_handshake(data: &[u8]) {
    let mut bytes = Bytes(data);
    let choice = bytes.byte();
    let method = ["GET", "POST", "get", "HEAD"][usize::from(choice & 3)];
    let minor = (choice >> 2) & 3;
    let lines: Vec<(String, &[u8])> = bytes
        .0
        .split(|&b| b == b'\n')
        .map(|line| {
            let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            let value = line.get(colon + 1..).unwrap_or_default();
            (String::from_utf8_lossy(&line[..colon]).into_owned(), value)
        })
        .collect();
    let headers: Vec<(&str, &[u8])> = lines.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let verdict = validate_upgrade(method, minor, &headers);
    if let Ok(accept) = &verdict {
        assert_eq!(method, "GET");
        assert!(minor >= 1);
        assert_eq!(accept.len(), 28);
        let keys: Vec<&[u8]> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-key"))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(keys.len(), 1);
        assert_eq!(accept, &accept_key(trim_ows(keys[0])));
        let mut response = Vec::new();
        websocket::encode_switching_protocols(accept, &mut response);
        assert!(response.ends_with(b"\r\n\r\n"));
    } else if let Err(e) = &verdict {
        let _ = (e.status(), e.extra_headers(), e.to_string());
    }
    let upper: Vec<String> = lines.iter().map(|(n, _)| n.to_ascii_uppercase()).collect();
    let upper: Vec<(&str, &[u8])> = upper
        .iter()
        .zip(&lines)
        .map(|(n, (_, v))| (n.as_str(), *v))
        .collect();
    assert_eq!(
        validate_upgrade(method, minor, &upper),
        verdict,
        "name case"
    );
    let reversed: Vec<(&str, &[u8])> = headers.iter().rev().copied().collect();
    assert_eq!(validate_upgrade(method, minor, &reversed), verdict, "order");
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t');
    let end = v.iter().rposition(|&b| b != b' ' && b != b'\t');
    match (start, end) {
        (Some(s), Some(e)) => &v[s..=e],
        _ => &[],
    }
}

/// What a session made of a byte stream, for comparing ways of feeding it.
#[derive(Debug, PartialEq)]
struct SessionOutcome {
    events: Vec<Event>,
    transmit: Vec<u8>,
    result: Result<(), ProtocolError>,
    leftover: Vec<u8>,
    state: State,
}

/// Feeds `pieces` as a connection would: append each read to a buffer, drop what was consumed.
fn drive_session(max_message_size: usize, pieces: &[&[u8]]) -> SessionOutcome {
    let mut session = Session::new(max_message_size);
    let mut buffer = Vec::new();
    let mut result = Ok(());
    for piece in pieces {
        buffer.extend_from_slice(piece);
        match session.receive(&buffer) {
            Ok(n) => {
                assert!(n <= buffer.len(), "consumed {n} of {}", buffer.len());
                buffer.drain(..n);
            }
            Err(e) => {
                assert_ne!(session.state(), State::Open, "error left the session open");
                result = Err(e);
                buffer.clear();
                break;
            }
        }
    }
    let mut transmit = Vec::new();
    session.poll_transmit(&mut transmit);
    assert!(!session.wants_transmit());
    assert_server_frames(&transmit);
    SessionOutcome {
        events: std::iter::from_fn(|| session.poll_event()).collect(),
        transmit,
        result,
        leftover: buffer,
        state: session.state(),
    }
}

/// What a session sends on its own is a run of complete, unmasked, final control frames, with at
/// most one Close, last.
fn assert_server_frames(mut wire: &[u8]) {
    while !wire.is_empty() {
        let (head, n) = FrameHead::decode(wire)
            .expect("server frame head")
            .expect("complete server frame head");
        assert!(head.fin && head.rsv == 0 && head.mask.is_none(), "{head}");
        assert!(matches!(
            head.opcode,
            Opcode::Ping | Opcode::Pong | Opcode::Close
        ));
        assert!(head.payload_len <= 125);
        let end = n + head.payload_len as usize;
        assert!(end <= wire.len(), "truncated server frame");
        wire = &wire[end..];
        if head.opcode == Opcode::Close {
            assert!(wire.is_empty(), "bytes after our Close");
        }
    }
}

/// Whole, one byte at a time and at random splits: the session must see the same thing.
fn session_three_ways(max_message_size: usize, wire: &[u8]) -> SessionOutcome {
    let whole = drive_session(max_message_size, &[wire]);
    let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(
        drive_session(max_message_size, &bytewise),
        whole,
        "one byte at a time"
    );
    let mut rng = Rng::from_data(wire);
    for _ in 0..3 {
        let pieces = rng.split(wire, 24);
        assert_eq!(
            drive_session(max_message_size, &pieces),
            whole,
            "random splits"
        );
    }
    whole
}

/// Frame head decoding and masking over arbitrary bytes, then the bytes as a client stream.
///
/// A decoded head took at least its minimal encoding and at most the input; every shorter prefix
/// says "need more"; re-encoding and decoding gives the head back. Unmasking the payload with the
/// fast path, the reference, and piece by piece with offsets agree. A session fed the bytes whole,
/// bytewise and at random splits produces the same events, output and state.
pub fn ws_frame(data: &[u8]) {
    match FrameHead::decode(data) {
        Ok(Some((head, n))) => {
            assert!(n <= data.len() && n >= head.encoded_len());
            assert!(n <= websocket::frame::MAX_HEAD_LEN);
            for cut in 0..n {
                assert_eq!(FrameHead::decode(&data[..cut]), Ok(None), "prefix {cut}");
            }
            let mut encoded = Vec::new();
            head.encode(&mut encoded);
            assert_eq!(encoded.len(), head.encoded_len());
            assert_eq!(FrameHead::decode(&encoded), Ok(Some((head, encoded.len()))));
            let _ = head.to_string();
            let payload = &data[n..];
            let payload = &payload[..payload.len().min(head.payload_len as usize)];
            let key = head.mask.unwrap_or([0x5a, 0xa5, 0x0f, 0xf0]);
            assert_masks_agree(payload, key, &mut Rng::from_data(data));
        }
        Ok(None) => assert!(data.len() < websocket::frame::MAX_HEAD_LEN),
        Err(e) => assert_eq!(e, ProtocolError::LengthOverflow),
    }
    session_three_ways(1 << 12, data);
}

fn assert_masks_agree(payload: &[u8], key: [u8; 4], rng: &mut Rng) {
    let mut reference = payload.to_vec();
    apply_mask_reference(&mut reference, key, 0);
    let mut fast = payload.to_vec();
    apply_mask(&mut fast, key, 0);
    assert_eq!(fast, reference);
    let mut pieces = payload.to_vec();
    let mut offset = 0;
    let mut rest = pieces.as_mut_slice();
    while !rest.is_empty() {
        let n = rng.piece(13).min(rest.len());
        let (piece, tail) = rest.split_at_mut(n);
        apply_mask(piece, key, offset);
        offset += n;
        rest = tail;
    }
    assert_eq!(pieces, reference, "masked piece by piece");
    apply_mask(&mut fast, key, 0);
    assert_eq!(fast, payload, "masking twice is the identity");
}

/// An operation sequence of client frames fed to a [`Session`].
///
/// The first byte picks the maximum message size; then each operation reads a flags byte (FIN,
/// opcode, rarely RSV or no mask), a length byte, a masking key and that many payload bytes, and
/// appends the masked frame; flags `0xff` appends raw bytes instead. The stream is fed whole, one
/// byte at a time and at random splits, and must give the same outcome; every text message is
/// valid UTF-8, every data message fits the maximum, a clean end leaves no unread complete frame.
pub fn ws_session(data: &[u8]) {
    let mut bytes = Bytes(data);
    let max = [0usize, 1, 125, 126, 1024, 1 << 16][usize::from(bytes.byte() % 6)];
    let mut wire = Vec::new();
    while !bytes.is_empty() {
        let flags = bytes.byte();
        if flags == 0xff {
            let n = usize::from(bytes.byte() % 16);
            wire.extend_from_slice(bytes.take(n));
            continue;
        }
        let len = usize::from(bytes.byte());
        let key = bytes.key();
        let payload = bytes.take(len);
        let head = FrameHead {
            fin: flags & 0x80 != 0,
            rsv: if flags & 0x70 == 0x70 { 0b100 } else { 0 },
            opcode: Opcode::from_u8(flags),
            mask: (flags & 0x70 != 0x60).then_some(key),
            payload_len: payload.len() as u64,
        };
        head.encode(&mut wire);
        let start = wire.len();
        wire.extend_from_slice(payload);
        apply_mask(&mut wire[start..], key, 0);
    }
    let outcome = session_three_ways(max, &wire);
    for event in &outcome.events {
        match event {
            Event::Binary(b) => assert!(b.len() <= max),
            Event::Text(t) => assert!(t.len() <= max),
            Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
            Event::Close { .. } => {}
        }
    }
    if outcome.result.is_ok() && outcome.state == State::Open {
        assert!(outcome.leftover.len() < websocket::frame::MAX_HEAD_LEN);
    }
}

/// Incremental UTF-8 validation against `std::str::from_utf8`: the verdict over the whole input
/// matches, split pieces give the same verdict, and fed one byte at a time the validator fails
/// fast, at the byte where the input stops being a prefix of valid UTF-8.
pub fn ws_utf8(data: &[u8]) {
    let std_verdict = std::str::from_utf8(data);
    let mut whole = Utf8Validator::new();
    let verdict = whole.feed(data).and_then(|()| whole.finish());
    assert_eq!(verdict.is_ok(), std_verdict.is_ok());
    let mut rng = Rng::from_data(data);
    let mut split = Utf8Validator::new();
    let split_verdict = rng
        .split(data, 7)
        .into_iter()
        .try_for_each(|piece| split.feed(piece))
        .and_then(|()| split.finish());
    assert_eq!(split_verdict, verdict);
    let mut bytewise = Utf8Validator::new();
    let failed_at = data.iter().position(|&b| bytewise.feed(&[b]).is_err());
    match std_verdict {
        Ok(_) => assert_eq!(failed_at, None),
        Err(e) => match e.error_len() {
            // An invalid sequence: detected at its last byte or at the byte that breaks it.
            Some(len) => {
                let at = failed_at.expect("invalid input accepted bytewise");
                let last = e.valid_up_to() + len - 1;
                assert!(
                    at == last || at == last + 1,
                    "failed at {at}, sequence ends at {last}"
                );
            }
            // Cut short inside a code point: only `finish` can tell.
            None => {
                assert_eq!(failed_at, None);
                assert!(!bytewise.is_boundary());
            }
        },
    }
}

/// WebSocket round trips: a frame head built from the bytes encodes and decodes to itself; a
/// server frame's payload comes back byte for byte; a client message fragmented at random
/// (different key per fragment, an optional ping in between) is reassembled by the session as the
/// original payload, or refused as invalid UTF-8 exactly when `std` refuses it.
pub fn roundtrip_ws(data: &[u8]) {
    let mut bytes = Bytes(data);
    let flags = bytes.byte();
    let len_bytes = bytes.take(8);
    let mut len = [0u8; 8];
    len[..len_bytes.len()].copy_from_slice(len_bytes);
    let head = FrameHead {
        fin: flags & 0x80 != 0,
        rsv: (flags >> 4) & 0x07,
        opcode: Opcode::from_u8(flags),
        mask: (flags & 0x40 != 0).then(|| bytes.key()),
        payload_len: u64::from_be_bytes(len) >> (u32::from(flags & 0x03) * 20 + 1),
    };
    let mut encoded = vec![0xa5];
    head.encode(&mut encoded);
    assert_eq!(
        FrameHead::decode(&encoded[1..]),
        Ok(Some((head, head.encoded_len())))
    );

    let text = flags & 0x08 != 0;
    let opcode = if text { Opcode::Text } else { Opcode::Binary };
    let key = bytes.key();
    let payload = bytes.0;
    let mut server = Vec::new();
    encode_frame(opcode, payload, &mut server);
    assert_eq!(server.len(), frame_len(payload.len()));
    let (h, n) = FrameHead::decode(&server).unwrap().unwrap();
    assert_eq!((h.fin, h.opcode, h.mask), (true, opcode, None));
    assert_eq!(&server[n..], payload);

    let mut rng = Rng::from_data(data);
    let fragments = if payload.is_empty() {
        vec![payload]
    } else {
        rng.split(payload, 64)
    };
    let mut wire = Vec::new();
    for (i, fragment) in fragments.iter().enumerate() {
        let fragment_key = key.map(|k| k ^ i as u8);
        client_frame(
            i + 1 == fragments.len(),
            if i == 0 { opcode } else { Opcode::Continuation },
            fragment,
            fragment_key,
            &mut wire,
        );
        if i == 0 && flags & 0x04 != 0 {
            client_frame(true, Opcode::Ping, b"mid", key, &mut wire);
        }
    }
    let outcome = session_three_ways(payload.len(), &wire);
    let message = match std::str::from_utf8(payload) {
        _ if !text => Event::Binary(payload.to_vec()),
        Ok(s) => Event::Text(s.to_owned()),
        Err(_) => {
            assert_eq!(outcome.result, Err(ProtocolError::InvalidUtf8));
            return;
        }
    };
    assert_eq!(outcome.result, Ok(()));
    // The ping may come before or after the message (after it when there is one fragment).
    let data: Vec<&Event> = outcome
        .events
        .iter()
        .filter(|e| matches!(e, Event::Text(_) | Event::Binary(_)))
        .collect();
    assert_eq!(data, [&message]);
    assert_eq!(outcome.events.len(), 1 + usize::from(flags & 0x04 != 0));
    assert!(outcome.leftover.is_empty());
}

fn client_frame(fin: bool, opcode: Opcode, payload: &[u8], key: [u8; 4], out: &mut Vec<u8>) {
    crate::websocket::encode_masked_frame(fin, opcode, payload, key, out);
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

/// Everything a parser holds after a stream: events, last event ID, retry, buffered bytes.
type SseOutcome = (Vec<sse::Event>, String, Option<u64>, usize);

fn parse_sse_pieces(pieces: &[&[u8]]) -> SseOutcome {
    let mut parser = sse::Parser::new();
    let mut events = Vec::new();
    for piece in pieces {
        parser.feed_into(piece, &mut events);
    }
    let outcome = (
        events,
        parser.last_event_id().to_owned(),
        parser.retry(),
        parser.buffered_len(),
    );
    parser.finish();
    assert_eq!(parser.buffered_len(), 0);
    outcome
}

/// The event-stream parser over arbitrary bytes: whole, one byte at a time and at random splits
/// give the same events, last event ID, retry and buffered length; every event has data.
pub fn sse_parser(data: &[u8]) {
    let whole = parse_sse_pieces(&[data]);
    for event in &whole.0 {
        assert!(!event.event_type.is_empty());
        let _ = event.to_string();
    }
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(parse_sse_pieces(&bytewise), whole, "one byte at a time");
    let mut rng = Rng::from_data(data);
    for _ in 0..4 {
        assert_eq!(
            parse_sse_pieces(&rng.split(data, 16)),
            whole,
            "random splits"
        );
    }
}

/// SSE round trip: a retry block, a comment and an event built from the bytes (optional id,
/// optional event type before the first NUL, data after it), encoded with exactly the announced
/// lengths, parse back (whole and one byte at a time) to one event with the data up to line-end
/// normalization, the event type with CR/LF as spaces, the id, and the retry time.
pub fn roundtrip_sse(data: &[u8]) {
    let mut bytes = Bytes(data);
    let flags = bytes.byte();
    let id = (flags & 1 != 0).then(|| bytes.u64());
    let retry = u64::from(u16::from_le_bytes([bytes.byte(), bytes.byte()]));
    let text = String::from_utf8_lossy(bytes.0);
    let (event_type, payload) = match text.split_once('\0') {
        Some((event_type, payload)) if flags & 2 != 0 => (Some(event_type), payload),
        _ => (None, &*text),
    };
    let comment = event_type.unwrap_or("heartbeat");
    let mut encoded = Vec::new();
    sse::encode_retry(retry, &mut encoded);
    assert_eq!(encoded.len(), sse::encoded_retry_len(retry));
    sse::encode_comment(comment, &mut encoded);
    assert_eq!(
        encoded.len(),
        sse::encoded_retry_len(retry) + sse::encoded_comment_len(comment)
    );
    let start = encoded.len();
    sse::encode_event(id, event_type, payload, &mut encoded);
    assert_eq!(
        encoded.len() - start,
        sse::encoded_len(id, event_type, payload)
    );
    let shared = sse::encode_shared(id, event_type, payload);
    assert_eq!(&*shared, &encoded[start..]);

    let expected = sse::Event {
        event_type: match event_type.map(|t| t.replace(['\r', '\n'], " ")) {
            Some(t) if !t.is_empty() => t,
            _ => sse::DEFAULT_EVENT_TYPE.to_owned(),
        },
        data: sse::normalize_line_ends(payload),
        last_event_id: id.map(|id| id.to_string()).unwrap_or_default(),
    };
    let expected: SseOutcome = (
        vec![expected.clone()],
        expected.last_event_id,
        Some(retry),
        0,
    );
    assert_eq!(parse_sse_pieces(&[&encoded]), expected);
    let bytewise: Vec<&[u8]> = encoded.chunks(1).collect();
    assert_eq!(parse_sse_pieces(&bytewise), expected);
    let view = sse::EventView::new(&shared);
    assert_eq!(view.check_complete(), Ok(()));
    // The data values are the lines of the text, without the line ends joining them.
    let normalized = sse::normalize_line_ends(payload);
    assert_eq!(
        view.payload_len(),
        normalized.len() - normalized.matches('\n').count()
    );
}

// ---------------------------------------------------------------------------------------------
// Trace renderers

/// Every renderer over arbitrary bytes: the frame dissector, the SSE dissector and views, the
/// one-line `Display` of a decoded request head and frame head, and the error strings. None may
/// panic; dissections end their last line.
pub fn render(data: &[u8]) {
    let mut out = String::new();
    websocket::dissect_frame(data, &mut out);
    assert!(out.ends_with('\n'));
    out.clear();
    sse::dissect(data, &mut out);
    assert!(out.ends_with('\n'));
    let view = sse::EventView::new(data);
    let _ = write!(out, "{view}");
    for line in view.lines() {
        let _ = write!(out, "{line}");
        let _ = line.check().map_err(|e| e.to_string());
    }
    match FrameHead::decode(data) {
        Ok(Some((head, _))) => {
            let line = head.to_string();
            assert!(!line.is_empty() && !line.contains('\n'));
            head.dissect(&mut out);
        }
        Ok(None) => {}
        Err(e) => {
            let _ = (e.to_string(), e.close_code());
        }
    }
    match HeadReader::new().decode(data, &Limits::default()) {
        Ok(Some(head)) => {
            let line = head.to_string();
            assert!(line.starts_with(&head.method));
        }
        Ok(None) => {}
        Err(e) => {
            let _ = (e.to_string(), e.status());
        }
    }
    if let Err(e) = ChunkedDecoder::new().decode(data, &mut Vec::new()) {
        let _ = e.to_string();
    }
}
