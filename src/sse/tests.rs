//! Encoder and parser together: round trips, and the three-way decoding harness the parser tests use.

use super::event::{
    EventView, encode_comment, encode_event, encode_retry, encoded_len, normalize_line_ends,
};
use super::parser::{Event, Parser};

/// xorshift64*: deterministic randomness without dependencies.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn parse_in_pieces(bytes: &[u8], cuts: impl IntoIterator<Item = usize>) -> (Vec<Event>, Parser) {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    let mut rest = bytes;
    for cut in cuts {
        let (piece, tail) = rest.split_at(cut.min(rest.len()));
        parser.feed_into(piece, &mut events);
        rest = tail;
    }
    parser.feed_into(rest, &mut events);
    (events, parser)
}

fn assert_same(
    way: &str,
    (events, parser): &(Vec<Event>, Parser),
    (expected, reference): &(Vec<Event>, Parser),
) {
    assert_eq!(events, expected, "{way}");
    assert_eq!(parser.last_event_id(), reference.last_event_id(), "{way}");
    assert_eq!(parser.retry(), reference.retry(), "{way}");
    assert_eq!(parser.buffered_len(), reference.buffered_len(), "{way}");
}

/// Parses `bytes` whole, one byte at a time, split once at every offset, and with random splits
/// (including empty feeds); asserts all agree and returns the whole-input result.
pub(super) fn decode_all_ways(bytes: &[u8]) -> (Vec<Event>, Parser) {
    let whole = parse_in_pieces(bytes, []);
    assert_same(
        "one byte at a time",
        &parse_in_pieces(bytes, std::iter::repeat_n(1, bytes.len())),
        &whole,
    );
    for cut in 0..=bytes.len() {
        assert_same(
            &format!("split at {cut}"),
            &parse_in_pieces(bytes, [cut]),
            &whole,
        );
    }
    for seed in 0..16 {
        let mut rng = Rng::new(seed);
        let cuts: Vec<usize> = (0..bytes.len()).map(|_| rng.below(8)).collect();
        assert_same(
            &format!("random splits {cuts:?}"),
            &parse_in_pieces(bytes, cuts.iter().copied()),
            &whole,
        );
    }
    whole
}

fn encode(id: Option<u64>, event: Option<&str>, data: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode_event(id, event, data, &mut out);
    out
}

/// Encodes one event, parses it every way, and checks the client sees `data` with normalized line ends.
fn roundtrip(id: Option<u64>, event: Option<&str>, data: &str) -> Event {
    let (events, parser) = decode_all_ways(&encode(id, event, data));
    assert_eq!(events.len(), 1, "{data:?}");
    let got = events.into_iter().next().unwrap_or_default();
    assert_eq!(got.data, normalize_line_ends(data));
    assert_eq!(got.event_type, event.unwrap_or("message"));
    let id = id.map(|id| id.to_string()).unwrap_or_default();
    assert_eq!(got.last_event_id, id);
    assert_eq!(parser.last_event_id(), id);
    got
}

#[test]
fn roundtrips_ids() {
    for id in [0, 1, 42, 1_000_000, u64::MAX] {
        roundtrip(Some(id), None, "x");
    }
}

#[test]
fn roundtrips_multiline_data_with_each_line_end_kind() {
    assert_eq!(roundtrip(None, None, "a\nb\nc").data, "a\nb\nc");
    assert_eq!(roundtrip(None, None, "a\r\nb\r\nc").data, "a\nb\nc");
    assert_eq!(roundtrip(None, None, "a\rb\rc").data, "a\nb\nc");
    assert_eq!(roundtrip(None, None, "a\r\n\rb\n\r\nc").data, "a\n\nb\n\nc");
    assert_eq!(roundtrip(None, None, "\na\n").data, "\na\n");
    assert_eq!(roundtrip(None, None, "\r\n\r\n").data, "\n\n");
}

#[test]
fn roundtrips_empty_data() {
    assert_eq!(roundtrip(Some(3), Some("e"), "").data, "");
    assert_eq!(roundtrip(None, None, "").data, "");
}

#[test]
fn roundtrips_unicode() {
    roundtrip(Some(9), Some("événement"), "héllo\n€ 😀\r\n日本語");
    // A U+FEFF inside data is content, not a BOM.
    assert_eq!(roundtrip(None, None, "\u{FEFF}x").data, "\u{FEFF}x");
}

#[test]
fn roundtrips_data_with_colons_and_leading_spaces() {
    // The encoder writes `data: ` + line, so the one space a client strips is the encoder's own.
    assert_eq!(encode(None, None, " x"), b"data:  x\n\n");
    assert_eq!(roundtrip(None, None, " x").data, " x");
    assert_eq!(
        roundtrip(None, None, "  two\n\tthree").data,
        "  two\n\tthree"
    );
    assert_eq!(roundtrip(None, None, ":").data, ":");
    assert_eq!(
        roundtrip(None, None, ": not a comment\nk: v").data,
        ": not a comment\nk: v"
    );
    assert_eq!(
        roundtrip(None, None, "data: nested\nid: 5").data,
        "data: nested\nid: 5"
    );
}

#[test]
fn roundtrips_event_types() {
    roundtrip(None, Some("tick"), "x");
    roundtrip(None, Some(" spaced: name"), "x");
    roundtrip(None, Some("message"), "x");
}

#[test]
fn roundtrips_event_type_with_line_ends_as_spaces() {
    let (events, _) = decode_all_ways(&encode(None, Some("a\nid: 666"), "x"));
    assert_eq!(
        events.first().map(|e| e.event_type.as_str()),
        Some("a id: 666")
    );
    assert_eq!(events.first().map(|e| e.last_event_id.as_str()), Some(""));
}

#[test]
fn roundtrips_a_stream_with_heartbeats_and_retry() {
    let mut stream = Vec::new();
    encode_retry(2500, &mut stream);
    encode_event(Some(1), Some("a"), "one", &mut stream);
    encode_comment("heartbeat", &mut stream);
    encode_comment("event: evil\r\ndata: injected", &mut stream);
    encode_event(None, None, "two\r\nlines", &mut stream);
    encode_retry(100, &mut stream);
    encode_event(Some(2), None, "", &mut stream);
    let (events, parser) = decode_all_ways(&stream);
    let expected = [
        ("a", "one", "1"),
        ("message", "two\nlines", "1"),
        ("message", "", "2"),
    ];
    let expected: Vec<Event> = expected
        .iter()
        .map(|&(event_type, data, id)| Event {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: id.into(),
        })
        .collect();
    assert_eq!(events, expected);
    assert_eq!(parser.retry(), Some(100));
}

#[test]
fn roundtrips_random_messages_through_random_splits() {
    const ALPHABET: &[&str] = &[
        "a", "z", " ", ":", "\r", "\n", "\r\n", "é", "😀", "\u{FEFF}", "\0",
    ];
    let mut rng = Rng::new(7);
    for _ in 0..200 {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        let mut last_id = String::new();
        for _ in 0..rng.below(4) + 1 {
            let data: String = (0..rng.below(12))
                .filter_map(|_| ALPHABET.get(rng.below(ALPHABET.len())).copied())
                .collect();
            let id = (rng.below(2) == 0).then(|| rng.next());
            let event = ["tick", "é t"].get(rng.below(3)).copied();
            let before = stream.len();
            encode_event(id, event, &data, &mut stream);
            assert_eq!(stream.len() - before, encoded_len(id, event, &data));
            if let Some(id) = id {
                last_id = id.to_string();
            }
            expected.push(Event {
                event_type: event.unwrap_or("message").into(),
                data: normalize_line_ends(&data),
                last_event_id: last_id.clone(),
            });
            let view = EventView::new(stream.get(before..).unwrap_or_default());
            assert_eq!(view.payload_len(), data.replace(['\r', '\n'], "").len());
            assert_eq!(view.check_complete(), Ok(()));
            if rng.below(3) == 0 {
                encode_comment("hb", &mut stream);
            }
        }
        let cuts: Vec<usize> = (0..stream.len()).map(|_| rng.below(6)).collect();
        let (events, parser) = parse_in_pieces(&stream, cuts);
        assert_eq!(events, expected);
        assert_eq!(parser.last_event_id(), last_id);
        assert_eq!(parser.buffered_len(), 0);
    }
}

#[test]
fn decodes_random_bytes_identically_however_split() {
    const PIECES: &[&[u8]] = &[
        b"data",
        b"id",
        b"event",
        b"retry",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"x",
        b"1",
        b"\0",
        b"\xEF\xBB\xBF",
        b"\xE2\x82",
        b"\xAC",
        b"\xFF",
        b"\xF0\x9F",
        b"\x98\x80",
    ];
    let mut rng = Rng::new(99);
    for _ in 0..300 {
        let bytes: Vec<u8> = (0..rng.below(24))
            .filter_map(|_| PIECES.get(rng.below(PIECES.len())).copied())
            .flatten()
            .copied()
            .collect();
        let (events, _) = decode_all_ways(&bytes);
        for event in &events {
            assert!(!event.event_type.is_empty());
        }
    }
}
