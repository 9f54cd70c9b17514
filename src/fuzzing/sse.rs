//! Fuzz entry points: Server-Sent Events parser and encoder.

use crate::sse;

use super::{Bytes, Rng};

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
