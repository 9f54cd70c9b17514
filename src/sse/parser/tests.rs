use super::super::tests::decode_all_ways;
use super::*;

#[test]
fn buffered_len_counts_the_partial_line_data_and_type() {
    let mut parser = Parser::new();
    assert!(parser.feed(b"data: abc\n").is_empty());
    let data = parser.buffered_len();
    assert!(data >= 3, "{data}");
    assert!(parser.feed(b"event: xy\n").is_empty());
    assert_eq!(parser.buffered_len(), data + 2);
    assert!(parser.feed(b"da").is_empty());
    assert_eq!(parser.buffered_len(), data + 4);
    assert_eq!(parser.feed(b"ta: d\n\n").len(), 1);
    assert_eq!(parser.buffered_len(), 0);
}

fn event(event_type: &str, data: &str, last_event_id: &str) -> Event {
    Event {
        event_type: event_type.into(),
        data: data.into(),
        last_event_id: last_event_id.into(),
    }
}

fn msg(data: &str) -> Event {
    event("message", data, "")
}

#[test]
fn decodes_simple_message_with_default_type() {
    assert_eq!(decode_all_ways(b"data: hello\n\n").0, [msg("hello")]);
}

#[test]
fn decodes_event_type_and_resets_it_after_dispatch() {
    let (events, _) = decode_all_ways(b"event: tick\ndata: 1\n\ndata: 2\n\n");
    assert_eq!(events, [event("tick", "1", ""), msg("2")]);
}

#[test]
fn decodes_empty_event_type_as_message() {
    assert_eq!(decode_all_ways(b"event:\ndata: x\n\n").0, [msg("x")]);
}

#[test]
fn decodes_blank_line_without_data_as_no_event_but_resets_type() {
    let (events, _) = decode_all_ways(b"event: lost\n\n\n\ndata: x\n\n");
    assert_eq!(events, [msg("x")]);
}

#[test]
fn decodes_comments_as_nothing() {
    let (events, _) = decode_all_ways(b": hello\n:\ndata: a\n: between\ndata: b\n\n:x\n\n");
    assert_eq!(events, [msg("a\nb")]);
}

#[test]
fn decodes_multiple_data_lines_joined_with_lf() {
    let (events, _) = decode_all_ways(b"data: a\ndata:\ndata: c\ndata\n\n");
    assert_eq!(events, [msg("a\n\nc\n")]);
}

#[test]
fn decodes_field_without_colon_as_empty_value() {
    // `data` alone appends "" + LF, so the buffer is not empty and an event with "" is dispatched.
    assert_eq!(decode_all_ways(b"data\n\n").0, [msg("")]);
    assert_eq!(decode_all_ways(b"data:\n\n").0, [msg("")]);
}

#[test]
fn decodes_only_one_leading_space_stripped() {
    let (events, _) = decode_all_ways(b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\n");
    assert_eq!(events, [msg("x"), msg("x"), msg(" x"), msg("\tx")]);
}

#[test]
fn decodes_value_after_the_first_colon_only() {
    let (events, _) = decode_all_ways(b"data: a: b:c\n\ndata::\n\n");
    assert_eq!(events, [msg("a: b:c"), msg(":")]);
}

#[test]
fn decodes_field_names_case_sensitively_and_ignores_unknown_fields() {
    let (events, parser) =
        decode_all_ways(b"Data: x\nDATA: y\nfoo: bar\n data: z\nretry : 5\nid : 9\ndata: ok\n\n");
    assert_eq!(events, [msg("ok")]);
    assert_eq!(parser.retry(), None);
    assert_eq!(parser.last_event_id(), "");
}

#[test]
fn decodes_last_event_id_that_persists_across_events() {
    let (events, parser) = decode_all_ways(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n");
    assert_eq!(
        events,
        [
            event("message", "a", "1"),
            event("message", "b", "1"),
            event("message", "c", "2")
        ]
    );
    assert_eq!(parser.last_event_id(), "2");
}

#[test]
fn decodes_empty_id_as_a_reset() {
    let (events, parser) = decode_all_ways(b"id: 1\ndata: a\n\nid\ndata: b\n\n");
    assert_eq!(events, [event("message", "a", "1"), msg("b")]);
    assert_eq!(parser.last_event_id(), "");
}

#[test]
fn decodes_id_with_nul_as_ignored() {
    let (events, parser) = decode_all_ways(b"id: 1\n\nid: 2\0x\ndata: a\n\n");
    assert_eq!(events, [event("message", "a", "1")]);
    assert_eq!(parser.last_event_id(), "1");
}

#[test]
fn decodes_id_without_data_into_last_event_id_at_the_blank_line() {
    let mut parser = Parser::new();
    assert!(parser.feed(b"id: 7\n").is_empty());
    assert_eq!(parser.last_event_id(), "");
    assert!(parser.feed(b"\n").is_empty());
    assert_eq!(parser.last_event_id(), "7");
}

#[test]
fn decodes_id_with_spaces_and_unicode() {
    let (events, _) = decode_all_ways("id:  a é\ndata: x\n\n".as_bytes());
    assert_eq!(events, [event("message", "x", " a é")]);
}

#[test]
fn decodes_retry_only_when_all_ascii_digits() {
    let cases: [(&[u8], Option<u64>); 9] = [
        (b"retry: 3000\n", Some(3000)),
        (b"retry:0\n", Some(0)),
        (b"retry: 007\n", Some(7)),
        (b"retry: 30s\n", None),
        (b"retry: -1\n", None),
        (b"retry: 1.5\n", None),
        (b"retry:\n", None),
        (b"retry:  5\n", None),
        (b"retry: 99999999999999999999999\n", Some(u64::MAX)),
    ];
    for (input, expected) in cases {
        assert_eq!(decode_all_ways(input).1.retry(), expected, "{input:?}");
    }
    let (_, parser) = decode_all_ways(b"retry: 10\nretry: x\n");
    assert_eq!(parser.retry(), Some(10));
}

#[test]
fn decodes_each_line_end_kind() {
    for input in [
        &b"data: a\ndata: b\n\n"[..],
        b"data: a\rdata: b\r\r",
        b"data: a\r\ndata: b\r\n\r\n",
        b"data: a\rdata: b\r\n\n",
        b"data: a\ndata: b\r\r\n",
    ] {
        assert_eq!(decode_all_ways(input).0, [msg("a\nb")], "{input:?}");
    }
}

#[test]
fn decodes_lf_cr_as_two_line_ends() {
    assert_eq!(decode_all_ways(b"data: a\n\r").0, [msg("a")]);
    assert_eq!(
        decode_all_ways(b"data: a\n\rdata: b\n\n").0,
        [msg("a"), msg("b")]
    );
}

#[test]
fn decodes_cr_at_end_of_feed_and_lf_at_start_of_next_as_one_line_end() {
    let mut parser = Parser::new();
    let mut events = parser.feed(b"data: a\r");
    events.extend(parser.feed(b"\ndata: b\r"));
    events.extend(parser.feed(b""));
    events.extend(parser.feed(b"\n"));
    assert!(
        events.is_empty(),
        "CRLF split across feeds was taken as two line ends"
    );
    events.extend(parser.feed(b"\r"));
    assert_eq!(events, [msg("a\nb")]);
}

#[test]
fn decodes_bom_at_stream_start_only() {
    let (events, _) = decode_all_ways(b"\xEF\xBB\xBFdata: a\n\n");
    assert_eq!(events, [msg("a")]);
    // A second BOM is text: it makes the field name "\u{FEFF}data", an unknown field.
    let (events, _) = decode_all_ways(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n");
    assert_eq!(events, [msg("b")]);
    let (events, _) = decode_all_ways(b"data: \xEF\xBB\xBFa\n\n");
    assert_eq!(events, [msg("\u{FEFF}a")]);
}

#[test]
fn decodes_bom_split_across_feeds() {
    let mut parser = Parser::new();
    let mut events = parser.feed(b"\xEF");
    events.extend(parser.feed(b""));
    events.extend(parser.feed(b"\xBB"));
    events.extend(parser.feed(b"\xBFdata: a\n\n"));
    assert_eq!(events, [msg("a")]);
}

#[test]
fn decodes_bom_again_after_finish() {
    let mut parser = Parser::new();
    let mut events = parser.feed(b"\xEF\xBB\xBFdata: a\n\n");
    parser.finish();
    events.extend(parser.feed(b"\xEF\xBB\xBFdata: b\n\n"));
    assert_eq!(events, [msg("a"), msg("b")]);
}

#[test]
fn decodes_invalid_utf8_as_replacement_characters() {
    let (events, _) = decode_all_ways(b"data: a\xFFb\xC3(\xE2\x82\n\n");
    assert_eq!(events, [msg("a\u{FFFD}b\u{FFFD}(\u{FFFD}")]);
    let (events, _) = decode_all_ways(b"data: \xF0\x9F\x98\n\n");
    assert_eq!(events, [msg("\u{FFFD}")]);
    // Overlong and surrogate encodings: one U+FFFD per maximal subpart.
    let (events, _) = decode_all_ways(b"data: \xE0\x80\xED\xA0\x80\xC0\xAF\n\n");
    assert_eq!(events, [msg(&"\u{FFFD}".repeat(7))]);
}

#[test]
fn decodes_code_points_split_across_feeds() {
    let text = "data: é€😀\n\n".as_bytes();
    for cut in 0..=text.len() {
        let (head, tail) = text.split_at(cut);
        let mut parser = Parser::new();
        let mut events = parser.feed(head);
        events.extend(parser.feed(tail));
        assert_eq!(events, [msg("é€😀")], "cut at {cut}");
    }
}

#[test]
fn decodes_truncated_code_point_before_line_end_as_replacement() {
    let mut parser = Parser::new();
    let mut events = parser.feed(b"data: \xF0\x9F");
    events.extend(parser.feed(b"\x98"));
    events.extend(parser.feed(b"\n\n"));
    assert_eq!(events, [msg("\u{FFFD}")]);
}

#[test]
fn decodes_nothing_for_an_event_cut_by_end_of_stream() {
    let mut parser = Parser::new();
    let mut events = parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: lost\nevent: x\ndata: \xE2\x82");
    parser.finish();
    assert_eq!(parser.buffered_len(), 0);
    events.extend(parser.feed(b"data: b\n\n"));
    assert_eq!(
        events,
        [event("message", "a", "1"), event("message", "b", "1")]
    );
    assert_eq!(parser.last_event_id(), "1");
}

#[test]
fn decodes_partial_line_at_end_of_stream_as_nothing() {
    let mut parser = Parser::new();
    let events = parser.feed(b"retry: 5\nid: 3\n\nretry: 9");
    parser.finish();
    assert!(events.is_empty());
    assert_eq!(parser.retry(), Some(5));
    assert_eq!(parser.last_event_id(), "3");
}

#[test]
fn decodes_resumed_stream_with_previous_last_event_id() {
    let mut parser = Parser::with_last_event_id("41");
    let events = parser.feed(b"data: a\n\nid: 42\ndata: b\n\n");
    assert_eq!(
        events,
        [event("message", "a", "41"), event("message", "b", "42")]
    );
}

#[test]
fn decodes_into_an_existing_vec() {
    let mut parser = Parser::new();
    let mut events = vec![msg("before")];
    parser.feed_into(b"data: a\n\ndata: b\n\n", &mut events);
    assert_eq!(events, [msg("before"), msg("a"), msg("b")]);
}

#[test]
fn decodes_event_display() {
    assert_eq!(
        event("tick", "a\nb", "7").to_string(),
        "tick id=\"7\" data=\"a\\nb\""
    );
}
