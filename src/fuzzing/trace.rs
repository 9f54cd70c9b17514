//! Fuzz entry points: the trace dissector and permessage-deflate (both read network input).

use super::{Bytes, Rng};
use crate::trace::{Direction, Dissector, Unit, UnitKind};
use crate::websocket::deflate::{Compressor, Inflater};
use crate::websocket::extension::negotiate;

/// The most a received-side dissector may hold between calls: an unfinished HTTP head at its
/// limit (64 KiB) and one byte, far above a frame header or chunk-size line.
const MAX_HELD: usize = 64 * 1024 + 1;

/// A dissector in the mode the first byte picks, fed `wire` in `pieces`.
/// Returns the units and the bytes of the unit still in progress.
fn dissect(mode: u8, pieces: &[&[u8]]) -> (Vec<Unit>, usize) {
    let direction = match mode & 1 {
        0 => Direction::Received,
        _ => Direction::Sent,
    };
    let mut d = match mode >> 1 & 3 {
        0 => Dissector::new(direction),
        1 => Dissector::joining(direction, Some(true), false),
        2 => Dissector::joining(direction, Some(false), false),
        _ => Dissector::joining(direction, None, true),
    };
    if mode & 0x10 != 0 {
        d = d.keeping(usize::from(mode >> 5));
    }
    let mut units = Vec::new();
    for piece in pieces {
        d.feed(piece, &mut units);
        if direction == Direction::Received {
            assert!(d.held() <= MAX_HELD, "{} bytes held", d.held());
        }
    }
    (units, d.in_progress())
}

/// The dissector over arbitrary bytes in every mode: every byte is counted once (in a unit's
/// length or still held), a received side holds no more than its framing limits, and the units
/// do not depend on how the bytes were cut (whole, byte by byte, random pieces), but for a lost
/// stream, shown as it arrives (consecutive unframed units are joined and compared by length). Inflated
/// previews are left out of that comparison: a piece may trip the per-piece inflation bound
/// where smaller pieces do not.
pub fn dissector(data: &[u8]) {
    let mut choices = Bytes(data);
    let mode = choices.byte();
    let wire = choices.take(data.len());
    let strip = |units: Vec<Unit>| -> Vec<(UnitKind, Vec<u8>, usize)> {
        let mut out: Vec<(UnitKind, Vec<u8>, usize)> = Vec::new();
        for u in units {
            match out.last_mut() {
                Some(last) if last.0 == UnitKind::Unframed && u.kind == UnitKind::Unframed => {
                    last.2 += u.len;
                }
                // What a lost stream keeps depends on the pieces (each keeps its preview).
                _ if u.kind == UnitKind::Unframed => out.push((u.kind, Vec::new(), u.len)),
                _ => out.push((u.kind, u.bytes, u.len)),
            }
        }
        out
    };
    let (whole, held) = dissect(mode, &[wire]);
    let counted: usize = whole.iter().map(|u| u.len).sum::<usize>() + held;
    assert_eq!(counted, wire.len(), "every byte counted once");
    for u in &whole {
        assert!(u.bytes.len() <= u.len, "a unit keeps no more than it spans");
    }
    let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
    let (by_byte, held_b) = dissect(mode, &bytewise);
    let whole = strip(whole);
    assert_eq!(strip(by_byte), whole, "whole = byte by byte");
    assert_eq!(held_b, held);
    let mut rng = Rng::from_data(data);
    let pieces = rng.split(wire, 64);
    let (split, held_s) = dissect(mode, &pieces);
    assert_eq!(strip(split), whole, "whole = random pieces");
    assert_eq!(held_s, held);
}

/// permessage-deflate: arbitrary `Sec-WebSocket-Extensions` values negotiate without panicking
/// and an agreement's response line names permessage-deflate; arbitrary bytes inflate within
/// their limit, whole or in pieces; and compressing then inflating gives the message back.
pub fn ws_deflate(data: &[u8]) {
    let mut choices = Bytes(data);
    let selector = choices.byte();
    let rest = choices.take(data.len());
    if let Some(agreement) = negotiate(rest.split(|&b| b == b'\n')) {
        assert!(agreement.to_string().starts_with("permessage-deflate"));
    }
    // Arbitrary compressed input: bounded output, the same whole or in pieces.
    let limit = usize::from(selector) * 64 + 1;
    let mut whole = Vec::new();
    let whole_result = Inflater::new().inflate(rest, &mut whole, limit);
    assert!(whole.len() <= limit && whole.capacity() <= limit.max(whole.len()));
    if whole_result.is_ok() {
        let mut inflater = Inflater::new();
        let mut pieces = Vec::new();
        let mut rng = Rng::from_data(data);
        let mut result = Ok(());
        for piece in rng.split(rest, 16) {
            result = inflater.inflate(piece, &mut pieces, limit);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            assert_eq!(pieces, whole, "inflating in pieces = whole");
        }
    }
    // Round trip at the window the selector picks (8 to 15 bits).
    let window_bits = 8 + (selector & 7);
    let mut compressed = Vec::new();
    if Compressor::new().compress(rest, window_bits, &mut compressed) {
        assert!(
            compressed.len() < rest.len(),
            "compressed only when smaller"
        );
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        inflater
            .inflate(&compressed, &mut out, rest.len())
            .expect("our own output inflates");
        inflater
            .finish(&mut out, rest.len())
            .expect("our own output ends cleanly");
        assert_eq!(out, rest, "compress then inflate is the identity");
    }
}
