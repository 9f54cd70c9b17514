//! The WebSocket clocks on a virtual clock: no socket, no sleep.
use std::time::{Duration, Instant};

use super::*;
use crate::websocket::frame::encode_masked_frame;

const SECOND: Duration = Duration::from_secs(1);
const KEY: [u8; 4] = [1, 2, 3, 4];

fn settings() -> Settings {
    Settings {
        max_message_size: 1024,
        ping_interval: 30 * SECOND,
        pong_timeout: 10 * SECOND,
        close_timeout: 5 * SECOND,
        max_pending_output: 4096,
    }
}

fn frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_masked_frame(true, opcode, payload, KEY, &mut out);
    out
}

fn drain(out: &mut OutQueue) -> Vec<u8> {
    let mut sink = Vec::new();
    let mut report = crate::outbuf::WriteReport::default();
    while !out.is_empty() {
        out.write_to(&mut sink, &mut report).unwrap();
    }
    sink
}

#[test]
fn pings_every_interval_and_a_pong_clears_the_wait() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    assert_eq!(ws.poll_timeout(), t0 + 30 * SECOND);
    assert!(!ws.handle_timeout(t0 + 29 * SECOND, &mut out));
    assert!(out.is_empty(), "no ping before its time");
    assert!(!ws.handle_timeout(t0 + 30 * SECOND, &mut out));
    assert_eq!(drain(&mut out), b"\x89\x08pushwire");
    // The pong timeout comes before the next ping.
    assert_eq!(ws.poll_timeout(), t0 + 40 * SECOND);
    let pong = frame(Opcode::Pong, b"pushwire");
    let r = ws.receive(&pong, t0 + 31 * SECOND, &mut out);
    assert_eq!(r.consumed, pong.len());
    assert_eq!(ws.poll_timeout(), t0 + 60 * SECOND);
    assert!(!ws.handle_timeout(t0 + 40 * SECOND, &mut out));
    assert!(out.is_empty(), "answered in time: nothing happens");
}

#[test]
fn no_pong_in_time_closes_with_1011_and_ends_once_flushed() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    ws.handle_timeout(t0 + 30 * SECOND, &mut out);
    drain(&mut out);
    assert!(!ws.handle_timeout(t0 + 39 * SECOND, &mut out));
    assert!(out.is_empty());
    assert!(!ws.handle_timeout(t0 + 40 * SECOND, &mut out));
    assert_eq!(drain(&mut out), b"\x88\x09\x03\xf3no pong");
    assert!(ws.is_finished(true), "a dead peer is not waited for");
}

#[test]
fn our_close_waits_for_the_peer_until_the_close_timeout() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    ws.close(CloseCode::GoingAway, "bye", t0, &mut out);
    assert_eq!(drain(&mut out), b"\x88\x05\x03\xe9bye");
    assert!(!ws.is_finished(true));
    assert_eq!(ws.poll_timeout(), t0 + 5 * SECOND);
    assert!(!ws.handle_timeout(t0 + 4 * SECOND, &mut out));
    assert!(ws.handle_timeout(t0 + 5 * SECOND, &mut out));
    // The peer's Close ends it at once.
    let mut ws = Endpoint::new(settings(), t0);
    ws.close(CloseCode::GoingAway, "bye", t0, &mut out);
    drain(&mut out);
    ws.receive(&frame(Opcode::Close, b"\x03\xe9"), t0, &mut out);
    assert!(out.is_empty(), "no second Close");
    assert!(ws.is_finished(true));
}

#[test]
fn a_protocol_error_closes_then_drains_input_until_the_peers_close() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    // An unmasked frame from a client (RFC 6455 §5.1).
    let r = ws.receive(b"\x81\x02hi", t0, &mut out);
    assert_eq!(r.consumed, 4);
    assert_eq!(&drain(&mut out)[..4], b"\x88\x19\x03\xea");
    assert!(
        !ws.is_finished(true),
        "the peer may still be sending: it is read"
    );
    assert_eq!(ws.poll_timeout(), t0 + LINGER_QUIET);
    // What it sends meanwhile is read and dropped, answered by nothing.
    let mut input = frame(Opcode::Text, &[b'x'; 300]);
    input.extend(frame(Opcode::Ping, b"p"));
    let close = frame(Opcode::Close, &1000u16.to_be_bytes());
    input.extend(&close[..3]);
    let r = ws.receive(&input, t0, &mut out);
    assert_eq!(r.consumed, input.len() - 3, "an incomplete head waits");
    assert!(r.messages.is_empty() && out.is_empty());
    assert_eq!(r.tally[Category::Other.index()], r.consumed as u64);
    assert!(!ws.is_finished(true));
    let r = ws.receive(&close, t0, &mut out);
    assert_eq!(r.consumed, close.len());
    assert!(ws.is_finished(true), "the peer's Close ends it");
}

#[test]
fn after_a_protocol_error_unframed_input_is_dropped_until_the_close_timeout() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    ws.receive(b"\xc1\x80\x01\x02\x03\x04", t0, &mut out);
    drain(&mut out);
    // Unmasked: no client frame, the framing is lost.
    let r = ws.receive(b"\x88\x00garbage", t0, &mut out);
    assert_eq!(r.consumed, 9);
    let r = ws.receive(&frame(Opcode::Close, b""), t0, &mut out);
    assert_eq!(r.consumed, 6);
    assert!(!ws.is_finished(true), "no Close can be told apart any more");
    // Input keeps it open; quiet for LINGER_QUIET, it ends.
    let t1 = t0 + LINGER_QUIET / 2;
    ws.receive(b"more", t1, &mut out);
    assert!(!ws.handle_timeout(t0 + LINGER_QUIET, &mut out));
    assert_eq!(ws.poll_timeout(), t1 + LINGER_QUIET);
    assert!(ws.handle_timeout(t1 + LINGER_QUIET, &mut out));
}

#[test]
fn a_broken_close_from_the_peer_ends_after_the_flush() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    ws.receive(&frame(Opcode::Close, &1005u16.to_be_bytes()), t0, &mut out);
    assert_eq!(&drain(&mut out)[..4], b"\x88\x19\x03\xea");
    assert!(
        ws.is_finished(true),
        "a peer's Close is its last frame: nothing to read"
    );
}

#[test]
fn text_is_a_message_and_pings_are_answered_in_wire_order() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    let mut input = frame(Opcode::Ping, b"p");
    input.extend(frame(Opcode::Text, b"hello"));
    let r = ws.receive(&input, t0, &mut out);
    assert!(r.progressed && r.messages.is_empty());
    assert_eq!(drain(&mut out), b"\x8a\x01p");
    let r = ws.receive(&input[r.consumed..], t0, &mut out);
    assert_eq!(r.messages, [Message::Text("hello".into())]);
    assert_eq!(r.tally[Category::Payload.index()], 5);
    assert_eq!(r.tally[Category::WsMaskKey.index()], 4);
}

#[test]
fn a_peer_that_does_not_read_is_not_read() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    out.push_bytes(&[0; 4096], Category::Other);
    let r = ws.receive(&frame(Opcode::Text, b"x"), t0, &mut out);
    assert_eq!((r.consumed, r.progressed), (0, false));
}

#[test]
fn a_slow_consumer_is_cut_with_1008_after_what_it_started() {
    let t0 = Instant::now();
    let mut ws = Endpoint::new(settings(), t0);
    let mut out = OutQueue::new();
    let unit = SharedUnit::new(vec![7; 100], Layout::uniform(Category::Payload, 100));
    assert!(ws.deliver(&unit, t0, &mut out));
    ws.cut_slow_consumer(t0, &mut out);
    let sent = drain(&mut out);
    assert_eq!(&sent[..4], b"\x88\x27\x03\xf0");
    assert!(!ws.deliver(&unit, t0, &mut out), "nothing after our Close");
    assert!(ws.is_finished(true));
}
