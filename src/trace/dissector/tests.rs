use super::*;

fn feed_whole(direction: Direction, input: &[u8]) -> Vec<Unit> {
    let mut units = Vec::new();
    Dissector::new(direction).feed(input, &mut units);
    units
}

/// Whole, one byte at a time, and in two halves: the same units.
fn units(direction: Direction, input: &[u8]) -> Vec<(UnitKind, String)> {
    let whole = feed_whole(direction, input);
    let mut bytewise = Vec::new();
    let mut d = Dissector::new(direction);
    for b in input {
        d.feed(std::slice::from_ref(b), &mut bytewise);
    }
    assert_eq!(whole, bytewise, "whole and one byte at a time differ");
    let mut halves = Vec::new();
    let mut d = Dissector::new(direction);
    let (a, b) = input.split_at(input.len() / 2);
    d.feed(a, &mut halves);
    d.feed(b, &mut halves);
    assert_eq!(whole, halves, "whole and two halves differ");
    whole
        .into_iter()
        .map(|u| (u.kind, String::from_utf8_lossy(&u.bytes).into_owned()))
        .collect()
}

#[test]
fn cuts_requests_and_bodies() {
    let got = units(
        Direction::Received,
        b"POST /pub/a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi\
          POST /pub/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
          GET /poll/a HTTP/1.1\nHost: t\n\n",
    );
    let kinds: Vec<UnitKind> = got.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        [
            UnitKind::RequestHead,
            UnitKind::Body,
            UnitKind::RequestHead,
            UnitKind::Chunk { sse: false },
            UnitKind::LastChunk,
            UnitKind::RequestHead
        ]
    );
    assert_eq!(got[1].1, "hi");
    assert_eq!(got[3].1, "2\r\nhi\r\n");
    assert_eq!(got[4].1, "0\r\n\r\n");
}

#[test]
fn cuts_an_event_stream_into_chunks() {
    let got = units(
        Direction::Sent,
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
          d\r\nretry: 3000\n\n\r\n11\r\nid: 1\ndata: one\n\n\r\n0\r\n\r\n",
    );
    assert_eq!(
        got[1],
        (
            UnitKind::Chunk { sse: true },
            "d\r\nretry: 3000\n\n\r\n".into()
        )
    );
    assert_eq!(got[2].0, UnitKind::Chunk { sse: true });
    assert_eq!(got[3].0, UnitKind::LastChunk);
}

#[test]
fn follows_an_upgrade_into_frames() {
    let mut input = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
    input.extend_from_slice(b"\x81\x05hello\x89\x00");
    let got = units(Direction::Sent, &input);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].0, UnitKind::WsFrame);
    assert!(got[1].1.ends_with("hello"));
    assert_eq!(got[2].0, UnitKind::WsFrame);
}

#[test]
fn a_received_payload_is_kept_only_up_to_the_preview() {
    let mut d = Dissector::new(Direction::Received).keeping(8);
    let mut units = Vec::new();
    d.feed(
        b"POST /pub/a HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n",
        &mut units,
    );
    for _ in 0..64 {
        d.feed(&[b'x'; 16 * 1024], &mut units);
        assert!(d.held() <= 8, "{} bytes held", d.held());
    }
    assert_eq!(units.len(), 2);
    assert_eq!((units[1].kind, units[1].len), (UnitKind::Body, 1 << 20));
    assert_eq!(units[1].bytes, b"xxxxxxxx");
    // A masked frame: its 6 header bytes and the preview.
    let mut frames = Dissector::joining(Direction::Received, None, true).keeping(4);
    let mut units = Vec::new();
    let mut frame = vec![0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4];
    frame.extend_from_slice(&[7; 256]);
    frames.feed(&frame, &mut units);
    assert_eq!(units[0].len, frame.len());
    assert_eq!(units[0].bytes, frame[..12]);
}

#[test]
fn framing_that_never_ends_is_given_up_at_its_limit() {
    let cases: [(&[u8], usize); 2] = [
        (
            b"POST /pub/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1",
            MAX_SIZE_LINE + 3,
        ),
        (b"GET /", MAX_HEAD + 1),
    ];
    for (start, bound) in cases {
        let mut d = Dissector::new(Direction::Received);
        let mut units = Vec::new();
        d.feed(start, &mut units);
        for _ in 0..16 {
            d.feed(&[b'a'; 16 * 1024], &mut units);
            assert!(d.held() <= bound, "{} bytes held", d.held());
        }
        assert!(units.iter().any(|u| u.kind == UnitKind::Unframed));
        assert!(units.iter().all(|u| u.bytes.len() <= bound));
        let seen: usize = units.iter().map(|u| u.len).sum::<usize>() + d.held();
        assert_eq!(
            seen,
            start.len() + 16 * 16 * 1024,
            "every byte counted once"
        );
    }
}

/// A frame with any head: the payload masked when the head says so.
fn frame_bytes(head: FrameHead, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    head.encode(&mut out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = head.mask {
        apply_mask(&mut out[start..], key, 0);
    }
    out
}

#[test]
fn inflates_compressed_messages_across_fragments_and_context() {
    let mut d = Dissector::joining(Direction::Received, None, true);
    // RFC 7692 §7.2.3: "Hello" compressed, cut in two fragments (RSV1 on the first only),
    // a ping between, then "Hello" again relying on the first message's window.
    let mut wire = frame_bytes(
        FrameHead {
            fin: false,
            rsv: 0b100,
            opcode: Opcode::Text,
            mask: Some([1, 2, 3, 4]),
            payload_len: 3,
        },
        &[0xf2, 0x48, 0xcd],
    );
    let mut ping = Vec::new();
    crate::websocket::encode_masked_frame(true, Opcode::Ping, b"", [9; 4], &mut ping);
    wire.extend(ping);
    let mut tail = Vec::new();
    crate::websocket::encode_masked_frame(
        true,
        Opcode::Continuation,
        &[0xc9, 0xc9, 0x07, 0x00],
        [5; 4],
        &mut tail,
    );
    wire.extend(tail);
    let mut again = frame_bytes(
        FrameHead {
            fin: true,
            rsv: 0b100,
            opcode: Opcode::Text,
            mask: None,
            payload_len: 5,
        },
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
    );
    wire.append(&mut again);
    let mut units = Vec::new();
    for b in &wire {
        d.feed(std::slice::from_ref(b), &mut units);
    }
    let inflated: Vec<Option<&[u8]>> = units.iter().map(|u| u.inflated.as_deref()).collect();
    assert_eq!(
        inflated,
        [
            Some(&b"He"[..]),
            None,
            Some(&b"llo"[..]),
            Some(&b"Hello"[..])
        ]
    );
}

#[test]
fn a_message_is_inflated_only_up_to_its_preview() {
    use crate::websocket::deflate::Compressor;
    let mut c = Compressor::new();
    let frame_of = |c: &mut Compressor, text: &[u8]| {
        let mut payload = Vec::new();
        assert!(c.compress(text, 15, &mut payload));
        frame_bytes(
            FrameHead {
                fin: true,
                rsv: 0b100,
                opcode: Opcode::Text,
                mask: Some([1, 2, 3, 4]),
                payload_len: payload.len() as u64,
            },
            &payload,
        )
    };
    // 4 MiB that compress to a few KiB: the preview is 1 KiB and inflation stops there.
    let bomb = frame_of(&mut c, &vec![b'a'; 4 << 20]);
    let after = frame_of(&mut c, b"hello hello hello hello");
    let mut d = Dissector::joining(Direction::Received, None, true);
    let mut units = Vec::new();
    for piece in bomb.chunks(512).chain(after.chunks(7)) {
        d.feed(piece, &mut units);
    }
    let previews: Vec<usize> = units
        .iter()
        .map(|u| u.inflated.as_ref().map_or(0, Vec::len))
        .collect();
    assert_eq!(previews, [INFLATED_PREVIEW, 23]);
    assert_eq!(
        units[1].inflated.as_deref(),
        Some(&b"hello hello hello hello"[..])
    );
}
