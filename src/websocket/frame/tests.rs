use super::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// RFC 6455 §5.7 examples.
const UNMASKED_HELLO: &[u8] = &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
const MASKED_HELLO: &[u8] = &[
    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
];

fn head(opcode: Opcode, fin: bool, mask: Option<[u8; 4]>, payload_len: u64) -> FrameHead {
    FrameHead {
        fin,
        rsv: 0,
        opcode,
        mask,
        payload_len,
    }
}

/// Decodes `bytes` whole, one byte at a time (every proper prefix must be `Ok(None)`), and
/// with trailing bytes (which must be left alone).
fn decode_three_ways(bytes: &[u8]) -> (FrameHead, usize) {
    let (h, n) = FrameHead::decode(bytes).unwrap().unwrap();
    for cut in 0..n {
        assert_eq!(FrameHead::decode(&bytes[..cut]), Ok(None), "prefix {cut}");
    }
    let mut trailing = bytes.to_vec();
    trailing.extend_from_slice(&[0xa5; 20]);
    assert_eq!(FrameHead::decode(&trailing), Ok(Some((h, n))));
    (h, n)
}

#[test]
fn decodes_rfc_single_frame_examples() {
    let (h, n) = decode_three_ways(UNMASKED_HELLO);
    assert_eq!((h, n), (head(Opcode::Text, true, None, 5), 2));
    let (h, n) = decode_three_ways(MASKED_HELLO);
    assert_eq!((h, n), (head(Opcode::Text, true, Some(KEY), 5), 6));
    // Fragmented unmasked "Hel" + "lo".
    let (h, _) = decode_three_ways(&[0x01, 0x03, 0x48, 0x65, 0x6c]);
    assert_eq!(h, head(Opcode::Text, false, None, 3));
    let (h, _) = decode_three_ways(&[0x80, 0x02, 0x6c, 0x6f]);
    assert_eq!(h, head(Opcode::Continuation, true, None, 2));
}

#[test]
fn decodes_extended_lengths() {
    // RFC 6455 §5.7: 256 bytes binary in a single unmasked frame; 64 KiB likewise.
    let (h, n) = decode_three_ways(&[0x82, 0x7e, 0x01, 0x00]);
    assert_eq!((h, n), (head(Opcode::Binary, true, None, 256), 4));
    let bytes = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
    let (h, n) = decode_three_ways(&bytes);
    assert_eq!((h, n), (head(Opcode::Binary, true, None, 65536), 10));
    let bytes = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
    let (h, n) = decode_three_ways(&bytes);
    assert_eq!(
        (h, n),
        (head(Opcode::Binary, true, Some([1, 2, 3, 4]), 65536), 14)
    );
}

#[test]
fn decodes_reserved_bits_and_opcodes_permissively() {
    let (h, _) = decode_three_ways(&[0x73, 0x00]);
    assert_eq!(h.rsv, 0b111);
    assert_eq!(h.opcode, Opcode::Reserved(3));
    assert!(!h.fin);
    assert_eq!(h.to_string(), "RSV3 rsv=0x7 len=0");
    // Non-minimal length encodings are accepted by the view.
    let (h, n) = decode_three_ways(&[0x89, 0x7e, 0x00, 0x05]);
    assert_eq!((h.payload_len, n), (5, 4));
}

#[test]
fn decodes_64_bit_length_with_top_bit_as_error() {
    let bytes = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        FrameHead::decode(&bytes),
        Err(ProtocolError::LengthOverflow)
    );
    assert_eq!(FrameHead::decode(&bytes[..9]), Ok(None));
}

#[test]
fn encodes_minimal_lengths() {
    for (len, expected_head_len) in [
        (0u64, 2),
        (125, 2),
        (126, 4),
        (0xffff, 4),
        (0x1_0000, 10),
        (u64::MAX >> 1, 10),
    ] {
        for mask in [None, Some(KEY)] {
            let h = head(Opcode::Binary, true, mask, len);
            let mut out = vec![0xa5; 3];
            h.encode(&mut out);
            let extra = if mask.is_some() { 4 } else { 0 };
            assert_eq!(out.len(), 3 + expected_head_len + extra);
            assert_eq!(h.encoded_len(), expected_head_len + extra);
            assert_eq!(&out[..3], &[0xa5; 3], "prefix untouched");
            assert_eq!(FrameHead::decode(&out[3..]), Ok(Some((h, h.encoded_len()))));
        }
    }
}

#[test]
fn encodes_rfc_unmasked_hello() {
    let mut out = Vec::new();
    encode_frame(Opcode::Text, b"Hello", &mut out);
    assert_eq!(out, UNMASKED_HELLO);
    assert_eq!(frame_len(5), out.len());
    let mut out = Vec::new();
    encode_frame(Opcode::Ping, b"Hello", &mut out);
    assert_eq!(out, [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(frame_len(256), 260);
    assert_eq!(frame_len(65536), 65546);
    assert_eq!(frame_len(usize::MAX), usize::MAX);
}

#[test]
fn roundtrips_every_header_byte_pattern() {
    for b0 in 0..=255u8 {
        for len7 in [0u8, 1, 125] {
            for masked in [false, true] {
                let mut bytes = vec![b0, len7 | if masked { 0x80 } else { 0 }];
                if masked {
                    bytes.extend_from_slice(&KEY);
                }
                let (h, n) = decode_three_ways(&bytes);
                assert_eq!(n, bytes.len());
                let mut out = Vec::new();
                h.encode(&mut out);
                assert_eq!(out, bytes);
            }
        }
    }
}

#[test]
fn displays_one_line_per_head() {
    assert_eq!(
        head(Opcode::Text, true, None, 5).to_string(),
        "TEXT fin len=5"
    );
    assert_eq!(
        head(Opcode::Continuation, false, Some(KEY), 3).to_string(),
        "CONT len=3 mask=37fa213d"
    );
    assert_eq!(
        head(Opcode::Close, true, None, 2).to_string(),
        "CLOSE fin len=2"
    );
    assert_eq!(Opcode::Reserved(0xb).to_string(), "RSVB");
}

#[test]
fn dissects_with_wireshark_field_names() {
    let mut out = String::new();
    head(Opcode::Text, true, Some(KEY), 300).dissect(&mut out);
    assert_eq!(
        out,
        "Fin: True\nReserved: 0x0\nOpcode: Text (1)\nMask: True\nPayload length: 126\n\
         Extended payload length (16 bits): 300\nMasking-Key: 37fa213d\n"
    );
    let mut out = String::new();
    head(Opcode::Reserved(0xf), false, None, 1 << 40).dissect(&mut out);
    assert!(out.contains("Opcode: Unknown (15)\n"), "{out}");
    assert!(out.contains("Extended payload length (64 bits): 1099511627776\n"));
}

#[test]
fn dissects_raw_frames_without_panicking() {
    let mut out = String::new();
    dissect_frame(MASKED_HELLO, &mut out);
    assert!(out.ends_with("Masking-Key: 37fa213d\nMasked payload: Data chunk (5 octets)\n"));
    let mut out = String::new();
    dissect_frame(&MASKED_HELLO[..8], &mut out);
    assert!(
        out.ends_with("Masked payload: (truncated: 2 of 5 octets)\n"),
        "{out}"
    );
    let mut out = String::new();
    dissect_frame(&[0x81], &mut out);
    assert_eq!(out, "(incomplete head: 1 octets)\n");
    let mut out = String::new();
    dissect_frame(&[0x82, 0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0], &mut out);
    assert_eq!(out, "(error: payload length has its top bit set)\n");
    // Every short input: never panics.
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let mut out = String::new();
            dissect_frame(&[a, b, 0xff, 0xff], &mut out);
            assert!(!out.is_empty());
        }
    }
}

#[test]
fn opcodes_roundtrip_and_classify() {
    for v in 0..16u8 {
        let op = Opcode::from_u8(v);
        assert_eq!(op.as_u8(), v);
        assert_eq!(op.is_control(), v >= 8);
        assert_eq!(
            matches!(op, Opcode::Reserved(_)),
            matches!(v, 3..=7 | 11..=15)
        );
    }
}

/// Interop: frames written by tungstenite decode with ours, and ours parse with tungstenite.
#[test]
fn roundtrips_with_tungstenite_frame_codec() {
    use std::io::Cursor;
    use tungstenite::protocol::frame::{Frame, FrameHeader, coding::OpCode};

    for len in [0usize, 1, 125, 126, 300, 65535, 65536, 70000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        // tungstenite client frame → ours.
        let mut frame = Frame::message(
            payload.clone(),
            OpCode::Data(tungstenite::protocol::frame::coding::Data::Binary),
            true,
        );
        frame.header_mut().mask = Some(KEY);
        let mut wire = Vec::new();
        frame.format(&mut wire).unwrap();
        let (h, n) = FrameHead::decode(&wire).unwrap().unwrap();
        assert_eq!(h, head(Opcode::Binary, true, Some(KEY), len as u64));
        let mut body = wire[n..].to_vec();
        crate::websocket::mask::apply_mask(&mut body, KEY, 0);
        assert_eq!(body, payload);

        // Our server frame → tungstenite.
        let mut ours = Vec::new();
        encode_frame(Opcode::Text, &payload, &mut ours);
        let mut cursor = Cursor::new(&ours);
        let (th, tlen) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert_eq!(tlen, len as u64);
        assert!(th.is_final && th.mask.is_none());
        assert_eq!(
            th.opcode,
            OpCode::Data(tungstenite::protocol::frame::coding::Data::Text)
        );
        assert_eq!(cursor.position() as usize + len, ours.len());
    }
}
