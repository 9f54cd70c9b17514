//! Fuzz entry points: HTTP/1.1 request heads, bodies and chunked coding.

use crate::http1::chunked::{
    ChunkedDecoder, ChunkedError, LAST_CHUNK, chunk_overhead, encode_chunk,
};
use crate::http1::request::{MAX_HEADERS, leading_empty_lines};
use crate::http1::{BodyDecoder, BodyFraming, HeadReader, Limits, RequestError, RequestHead};

use super::Rng;

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
/// at most the input; a complete head re-decodes identically from exactly its own bytes and gives
/// back every piece httparse reads in them. Then the body after it is decoded with the framing
/// decided, whole and one byte at a time, with the same outcome.
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
                assert_same_as_httparse(head, &input[..head.len]);
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

/// The owned head (one copy and spans) gives back what httparse reads in the same bytes: method,
/// target, and every field's name and value in order.
fn assert_same_as_httparse(head: &RequestHead, bytes: &[u8]) {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    assert!(matches!(
        req.parse(bytes),
        Ok(httparse::Status::Complete(_))
    ));
    assert_eq!(Some(head.method()), req.method);
    assert_eq!(Some(head.target()), req.path);
    let theirs: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(head.headers().collect::<Vec<_>>(), theirs);
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
