use super::*;

/// Encodes into a buffer pre-filled with 0xa5 so a stray write before the end would show.
fn encode(id: Option<u64>, event: Option<&str>, data: &str) -> Vec<u8> {
    let mut out = vec![0xa5; 4];
    encode_event(id, event, data, &mut out);
    assert_eq!(out.get(..4), Some(&[0xa5u8; 4][..]), "wrote before the end");
    assert_eq!(out.len() - 4, encoded_len(id, event, data));
    out.split_off(4)
}

#[test]
fn lines_are_never_empty_and_retry_takes_digits_only() {
    let view = EventView::new(b"retry: 3000\nretry: 30x\nretry:\ndata: a\n\n");
    let lines: Vec<Line> = view.lines().collect();
    assert!(lines.iter().all(|l| !l.is_empty()));
    let checks: Vec<_> = lines.iter().map(Line::check).collect();
    assert_eq!(
        checks,
        [
            Ok(()),
            Err(Error::RetryNotDigits),
            Err(Error::RetryNotDigits),
            Ok(()),
            Ok(())
        ]
    );
    let nothing = Line {
        offset: 0,
        content: b"",
        terminator: b"",
    };
    assert!(nothing.is_empty());
}

#[test]
fn a_view_counts_data_lines_comments_and_blocks() {
    let one = EventView::new(b"id: 1\ndata: a\n\n").to_string();
    assert!(
        one.starts_with("SSE id=\"1\" data=1 line, 15 bytes"),
        "{one}"
    );
    let many = EventView::new(b": c\ndata: a\ndata: b\n\n: d\n\n").to_string();
    assert!(
        many.starts_with("SSE data=2 lines comments=2 blocks=2, "),
        "{many}"
    );
    let comment = EventView::new(b": hb\n").to_string();
    assert!(comment.starts_with("SSE comments=1, 5 bytes"), "{comment}");
}

#[test]
fn encodes_event_with_type_id_and_data() {
    assert_eq!(
        encode(Some(12), Some("tick"), "hello"),
        b"event: tick\nid: 12\ndata: hello\n\n"
    );
}

#[test]
fn encodes_data_only() {
    assert_eq!(encode(None, None, "x"), b"data: x\n\n");
}

#[test]
fn encodes_empty_data_as_one_data_line() {
    assert_eq!(encode(None, None, ""), b"data: \n\n");
}

#[test]
fn encodes_each_line_end_kind_as_a_data_line() {
    assert_eq!(encode(None, None, "a\nb"), b"data: a\ndata: b\n\n");
    assert_eq!(encode(None, None, "a\rb"), b"data: a\ndata: b\n\n");
    assert_eq!(encode(None, None, "a\r\nb"), b"data: a\ndata: b\n\n");
    assert_eq!(
        encode(None, None, "a\n\r\r\nb"),
        b"data: a\ndata: \ndata: \ndata: b\n\n"
    );
}

#[test]
fn encodes_trailing_and_leading_line_ends_as_empty_data_lines() {
    assert_eq!(encode(None, None, "a\n"), b"data: a\ndata: \n\n");
    assert_eq!(encode(None, None, "\r\n"), b"data: \ndata: \n\n");
    assert_eq!(encode(None, None, "\ra"), b"data: \ndata: a\n\n");
}

#[test]
fn encodes_leading_space_of_data_after_the_separator_space() {
    assert_eq!(encode(None, None, " x\n  y"), b"data:  x\ndata:   y\n\n");
}

#[test]
fn encodes_id_extremes() {
    assert_eq!(encode(Some(0), None, "x"), b"id: 0\ndata: x\n\n");
    assert_eq!(
        encode(Some(u64::MAX), None, "x"),
        b"id: 18446744073709551615\ndata: x\n\n"
    );
    for n in [1, 9, 10, 99, 100, 999_999, 1_000_000, u64::MAX / 10] {
        let mut out = Vec::new();
        push_decimal(n, &mut out);
        assert_eq!(out, n.to_string().as_bytes());
        assert_eq!(decimal_len(n), out.len());
    }
}

#[test]
fn encodes_event_type_with_line_ends_replaced_by_spaces() {
    assert_eq!(
        encode(None, Some("a\r\nb\nc"), "x"),
        b"event: a  b c\ndata: x\n\n"
    );
    assert_eq!(
        check_single_line("a\nb"),
        Err(Error::LineEndInValue { offset: 1 })
    );
    assert_eq!(check_single_line("a b"), Ok(()));
}

#[test]
fn encodes_retry_as_a_block_of_its_own() {
    let mut out = vec![0xa5];
    encode_retry(3000, &mut out);
    assert_eq!(out, b"\xa5retry: 3000\n\n");
    assert_eq!(out.len() - 1, encoded_retry_len(3000));
}

#[test]
fn encodes_comment() {
    let mut out = Vec::new();
    encode_comment("hb", &mut out);
    encode_comment("", &mut out);
    encode_comment("a\nb", &mut out);
    assert_eq!(out, b": hb\n: \n: a b\n");
    assert_eq!(
        out.len(),
        encoded_comment_len("hb") + encoded_comment_len("") + encoded_comment_len("a\nb")
    );
}

#[test]
fn encodes_shared_bytes_identical_to_encode_event() {
    let shared = encode_shared(Some(7), Some("t"), "a\nb");
    assert_eq!(&shared[..], &encode(Some(7), Some("t"), "a\nb")[..]);
}

#[test]
fn encodes_exact_lengths_for_many_inputs() {
    let datas = [
        "",
        "a",
        "\n",
        "\r",
        "\r\n",
        "\n\r",
        "é\r\n€",
        " x",
        ":",
        "a\r\r\nb\n",
        "\u{FEFF}",
    ];
    for data in datas {
        for event in [None, Some(""), Some("tick"), Some("a\rb")] {
            for id in [None, Some(0), Some(42), Some(u64::MAX)] {
                encode(id, event, data);
            }
        }
    }
}

#[test]
fn encodes_normalized_line_ends_like_a_client() {
    assert_eq!(normalize_line_ends("a\r\nb\rc\nd"), "a\nb\nc\nd");
    assert_eq!(normalize_line_ends("\r\n\r"), "\n\n");
    assert_eq!(normalize_line_ends(""), "");
}

#[test]
fn decodes_view_of_an_encoded_event() {
    let bytes = encode(Some(12), Some("tick"), "hi");
    let mut out = String::new();
    dissect(&bytes, &mut out);
    assert_eq!(
        out,
        "Server-Sent Events (29 bytes)\n\
         \x20   Field: event = \"tick\" (12 bytes)\n\
         \x20   Field: id = \"12\" (7 bytes)\n\
         \x20   Field: data = \"hi\" (9 bytes)\n\
         \x20   Blank line: dispatch (1 byte)\n\
         \x20   Payload: 2 bytes, overhead: 27 bytes\n"
    );
    assert_eq!(
        EventView::new(&bytes).to_string(),
        "SSE event=\"tick\" id=\"12\" data=1 line, 29 bytes (payload 2, overhead 27)"
    );
}

#[test]
fn decodes_view_payload_and_overhead() {
    let bytes = encode(None, None, "ab\ncd\r\n");
    let view = EventView::new(&bytes);
    assert_eq!(view.payload_len(), 4);
    assert_eq!(view.overhead_len(), bytes.len() - 4);
    let kinds: Vec<_> = view.lines().map(|l| l.kind()).collect();
    assert_eq!(
        kinds,
        [
            LineKind::Field {
                name: b"data",
                value: b"ab"
            },
            LineKind::Field {
                name: b"data",
                value: b"cd"
            },
            LineKind::Field {
                name: b"data",
                value: b""
            },
            LineKind::Blank,
        ]
    );
}

#[test]
fn decodes_view_with_rule_breaks_inline() {
    let bytes = b"\xEF\xBB\xBF: hb\r\nretry: 1x\rid: a\0b\r\nfoo:bar\nx\xFFy\n\ndata: tail";
    let mut out = String::new();
    dissect(bytes, &mut out);
    assert_eq!(
        out,
        "Server-Sent Events (51 bytes)\n\
         \x20   Byte order mark (3 bytes)\n\
         \x20   Comment: \" hb\" (6 bytes)\n\
         \x20   Field: retry = \"1x\" (10 bytes) (error: retry is not all ascii digits, field ignored)\n\
         \x20   Field: id = \"a\\0b\" (9 bytes) (error: id contains NUL, field ignored)\n\
         \x20   Field: \"foo\" = \"bar\" (unknown field, ignored) (8 bytes)\n\
         \x20   Field: \"x\u{FFFD}y\" = \"\" (unknown field, ignored) (4 bytes) (error: invalid utf-8 at byte 37, decoded as U+FFFD)\n\
         \x20   Blank line: dispatch (1 byte)\n\
         \x20   Field: data = \"tail\" (10 bytes) (error: line has no line end)\n\
         \x20   (error: no blank line at end, event not dispatched)\n\
         \x20   Payload: 4 bytes, overhead: 47 bytes\n"
    );
    let line = EventView::new(bytes).to_string();
    assert!(line.starts_with("SSE bom retry=\"1x\" id=\"a\\0b\" foo=\"bar\""));
    assert!(line.ends_with("(error: retry is not all ascii digits, field ignored)"));
}

#[test]
fn decodes_view_of_long_values_elided() {
    let data = "x".repeat(100);
    let mut out = String::new();
    dissect(&encode(None, None, &data), &mut out);
    assert!(out.contains(&format!("\"{}\"... (107 bytes)", "x".repeat(64))));
}

#[test]
fn decodes_view_of_any_bytes_without_panicking() {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let alphabet = b"\r\n: \0\xEF\xBB\xBF\xFF\xC3\xA9adiretyv";
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 24) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| {
                let pick = (state >> (i % 60)) as usize % alphabet.len();
                alphabet.get(pick).copied().unwrap_or(b'a')
            })
            .collect();
        let mut out = String::new();
        dissect(&bytes, &mut out);
        let view = EventView::new(&bytes);
        let _ = view.to_string();
        assert!(view.payload_len() <= bytes.len());
        let total: usize = view.lines().map(|l| l.len()).sum();
        assert_eq!(total + view.bom_len(), bytes.len());
    }
}
