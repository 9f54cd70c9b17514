//! WebSocket hot paths, side by side with tungstenite on the same bytes:
//!
//! - `encode`: one unmasked server frame (what every published message costs once).
//! - `decode_unmask`: one masked client frame of 16 B … 1 MiB. `codec` is `FrameHead::decode`,
//!   a payload copy and `apply_mask`; `session` is `Session::receive` (validation, unmasking,
//!   message assembly, events); `tungstenite` is `WebSocket::read` in the server role over an
//!   in-memory stream (the same work: parse, unmask, assemble, one `Message`), with its read
//!   buffer sized for the frames (4 KiB to 128 KiB) instead of always its default 128 KiB, which
//!   it zero-fills on every read.
//! - `small_frames`: 1 000 masked 16-byte messages in one buffer, binary and text.
//! - `mask`: `apply_mask` against `apply_mask_reference`.
//! - `utf8`: incremental validation in 1 KiB pieces against `std::str::from_utf8` in one go.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod common;

use std::hint::black_box;
use std::io::{self, Read, Write};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pushwire::websocket::mask::apply_mask_reference;
use pushwire::websocket::{
    Event, FrameHead, Opcode, Session, Utf8Validator, apply_mask, encode_frame,
};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (125, "125B"),
    (1024, "1KiB"),
    (64 * 1024, "64KiB"),
    (1024 * 1024, "1MiB"),
];

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| b' ' + (i % 90) as u8).collect()
}

/// A masked client frame carrying `payload`.
fn client_frame(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    pushwire::websocket::encode_masked_frame(true, opcode, payload, KEY, out);
}

/// Our frame codec alone: decode each head, copy the payload out and unmask it.
fn codec_decode(mut wire: &[u8]) -> usize {
    let mut frames = 0;
    while let Some((head, n)) = FrameHead::decode(wire).unwrap() {
        let end = n + head.payload_len as usize;
        let mut data = wire[n..end].to_vec();
        apply_mask(&mut data, head.mask.unwrap(), 0);
        black_box(data);
        wire = &wire[end..];
        frames += 1;
    }
    frames
}

fn session_decode(session: &mut Session, wire: &[u8]) -> usize {
    assert_eq!(session.receive(wire).unwrap(), wire.len());
    let mut messages = 0;
    while let Some(event) = session.poll_event() {
        assert!(matches!(event, Event::Binary(_) | Event::Text(_)));
        black_box(event);
        messages += 1;
    }
    messages
}

/// The in-memory stream tungstenite needs: replays the same bytes, swallows writes.
struct Replay {
    wire: Vec<u8>,
    pos: usize,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (&self.wire[self.pos..]).read(buf)?;
        self.pos += n;
        Ok(n)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite as a careful user configures it: a read buffer sized for the traffic, between
/// 4 KiB and its default 128 KiB (the frame's size, for one frame per read). It zero-fills the
/// whole buffer on every read, so left at 128 KiB for small frames that zeroing is most of what
/// would be measured (682 ns instead of 111 ns for a 16-byte frame when this was checked).
fn tungstenite_socket(wire: Vec<u8>, read_buffer: usize) -> WebSocket<Replay> {
    let config = WebSocketConfig::default().read_buffer_size(read_buffer.clamp(4 << 10, 128 << 10));
    WebSocket::from_raw_socket(Replay { wire, pos: 0 }, Role::Server, Some(config))
}

fn tungstenite_decode(ws: &mut WebSocket<Replay>, messages: usize) -> usize {
    ws.get_mut().pos = 0;
    for _ in 0..messages {
        black_box(ws.read().unwrap());
    }
    assert_eq!(ws.get_ref().pos, ws.get_ref().wire.len());
    messages
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_encode");
    for (len, name) in &SIZES[..4] {
        let data = payload(*len);
        let shared = tungstenite::Bytes::from(data.clone());
        group.throughput(Throughput::Bytes(*len as u64));
        group.bench_function(BenchmarkId::new("pushwire", name), |b| {
            let mut out = Vec::with_capacity(len + 14);
            b.iter(|| {
                out.clear();
                encode_frame(Opcode::Text, black_box(&data), &mut out);
            })
        });
        group.bench_function(BenchmarkId::new("tungstenite", name), |b| {
            let mut out = Vec::with_capacity(len + 14);
            b.iter(|| {
                out.clear();
                let frame = Frame::message(shared.clone(), OpCode::Data(Data::Text), true);
                frame.format(&mut out).unwrap();
            })
        });
    }
    group.finish();
}

fn decode_unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_decode_unmask");
    for (len, name) in SIZES {
        let mut wire = Vec::new();
        client_frame(Opcode::Binary, &payload(len), &mut wire);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::new("codec", name), |b| {
            b.iter(|| codec_decode(black_box(&wire)))
        });
        group.bench_function(BenchmarkId::new("session", name), |b| {
            let mut session = Session::new(2 << 20);
            b.iter(|| session_decode(&mut session, black_box(&wire)))
        });
        group.bench_function(BenchmarkId::new("tungstenite", name), |b| {
            let mut ws = tungstenite_socket(wire.clone(), wire.len());
            b.iter(|| tungstenite_decode(&mut ws, 1))
        });
    }
    group.finish();
}

fn small_frames(c: &mut Criterion) {
    const FRAMES: usize = 1000;
    let mut group = c.benchmark_group("ws_small_frames");
    for (opcode, name) in [(Opcode::Binary, "binary"), (Opcode::Text, "text")] {
        let mut wire = Vec::new();
        for i in 0..FRAMES {
            let mut data = payload(16);
            data[0] = b'a' + (i % 26) as u8;
            client_frame(opcode, &data, &mut wire);
        }
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(BenchmarkId::new("codec", format!("1000x16B_{name}")), |b| {
            b.iter(|| assert_eq!(codec_decode(black_box(&wire)), FRAMES))
        });
        group.bench_function(
            BenchmarkId::new("session", format!("1000x16B_{name}")),
            |b| {
                let mut session = Session::new(1 << 20);
                b.iter(|| assert_eq!(session_decode(&mut session, black_box(&wire)), FRAMES))
            },
        );
        group.bench_function(
            BenchmarkId::new("tungstenite", format!("1000x16B_{name}")),
            |b| {
                // Small messages: the smallest buffer (4 KiB), a few reads for the 22 KB.
                let mut ws = tungstenite_socket(wire.clone(), 0);
                b.iter(|| tungstenite_decode(&mut ws, FRAMES))
            },
        );
    }
    group.finish();
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_mask");
    for (len, name) in [(125, "125B"), (64 * 1024, "64KiB")] {
        let mut buf = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(BenchmarkId::new("apply_mask", name), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, 1))
        });
        group.bench_function(BenchmarkId::new("apply_mask_reference", name), |b| {
            b.iter(|| apply_mask_reference(black_box(&mut buf), KEY, 1))
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_utf8");
    let ascii = payload(64 * 1024);
    let mixed: Vec<u8> = "héllo wörld, ünïcödé 😀 текст 文字 "
        .repeat(1500)
        .into_bytes()[..]
        .to_vec();
    let mixed = &mixed
        [..std::str::from_utf8(&mixed[..64 * 1024]).map_or_else(|e| e.valid_up_to(), |s| s.len())];
    for (name, text) in [("ascii_64KiB", &ascii[..]), ("mixed_64KiB", mixed)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(BenchmarkId::new("validator_1KiB_pieces", name), |b| {
            let mut v = Utf8Validator::new();
            b.iter(|| {
                for piece in black_box(text).chunks(1024) {
                    v.feed(piece).unwrap();
                }
                v.finish().unwrap();
            })
        });
        group.bench_function(BenchmarkId::new("std_from_utf8_whole", name), |b| {
            b.iter(|| std::str::from_utf8(black_box(text)).unwrap().len())
        });
    }
    group.finish();
}

criterion_group!(name = benches; config = common::config(); targets = encode, decode_unmask, small_frames, mask, utf8);
criterion_main!(benches);
