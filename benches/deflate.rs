//! permessage-deflate costs:
//!
//! - `compress`: one message compressed as the server does it (`deflate::Compressor`, reset per
//!   message, level 6, trailer removed) at 64 B, 1 KiB and 64 KiB of JSON-like text.
//! - `inflate`: the same messages taken back by the receiving path: `Session::receive` of one
//!   masked compressed frame (unmask, inflate with the size limit, UTF-8 check, the event), and
//!   the bare `deflate::Inflater` for comparison.
//! - `fanout_deflate`: one published message to 1 000 WebSocket subscribers, without deflate
//!   (the plain shared frame) and with it (compressed once, the compressed frame shared): the
//!   difference is one compression per message, not one per subscriber.
//!
//! Throughput is bytes of uncompressed message (compress, inflate) or subscribers (fan-out).
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pushwire::delivery::Encodings;
use pushwire::hub::{HistoryLimits, Hub};
use pushwire::ledger::{Category, Layout};
use pushwire::outbuf::{OutQueue, SharedUnit, WriteReport};
use pushwire::websocket::deflate::{Compressor, Inflater};
use pushwire::websocket::{
    DeflateAgreement, Endpoint, FrameHead, Opcode, Session, WsSettings, apply_mask,
};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SIZES: [(usize, &str); 3] = [(64, "64B"), (1024, "1KiB"), (64 * 1024, "64KiB")];
/// What the server negotiates: neither side keeps context, so the receiving session makes an
/// inflater per compressed message (included in `inflate/session`).
const AGREEMENT: DeflateAgreement = DeflateAgreement {
    client_no_context_takeover: true,
    server_max_window_bits: 15,
};

/// JSON-like text of `len` bytes: the kind of message a channel carries.
fn message(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 100);
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(
            format!(
                r#"{{"symbol":"ACME{}","price":{}.{:02},"volume":{},"at":"2026-05-16T12:00:{:02}Z"}},"#,
                i % 7,
                100 + i % 50,
                i % 100,
                1000 + i * 37 % 900,
                i % 60
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// Raw DEFLATE with the trailer removed, as a client sends it (even when it does not shrink).
fn compressed(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() * 2 + 64);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .unwrap();
    assert_eq!(c.total_in() as usize, data.len());
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

fn bench_compress(c: &mut Criterion) {
    let mut group = c.benchmark_group("compress");
    let mut compressor = Compressor::new();
    for (len, name) in SIZES {
        let data = message(len);
        group.throughput(Throughput::Bytes(len as u64));
        let mut out = Vec::with_capacity(len + 64);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(compressor.compress(black_box(&data), 15, &mut out));
            })
        });
        out.clear();
        let sent = if compressor.compress(&data, 15, &mut out) {
            "sent compressed"
        } else {
            "sent uncompressed"
        };
        println!(
            "compress/{name}: {len} -> {} bytes ({:.1} %), {sent}",
            compressed(&data).len(),
            compressed(&data).len() as f64 * 100.0 / len as f64
        );
    }
    group.finish();
}

fn bench_inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("inflate");
    for (len, name) in SIZES {
        let data = message(len);
        let payload = compressed(&data);
        group.throughput(Throughput::Bytes(len as u64));
        let mut wire = Vec::new();
        FrameHead {
            fin: true,
            rsv: 0b100,
            opcode: Opcode::Text,
            mask: Some(KEY),
            payload_len: payload.len() as u64,
        }
        .encode(&mut wire);
        let start = wire.len();
        wire.extend_from_slice(&payload);
        apply_mask(&mut wire[start..], KEY, 0);
        group.bench_function(BenchmarkId::new("session", name), |b| {
            let mut session = Session::with_deflate(1 << 20, Some(AGREEMENT));
            b.iter(|| {
                assert_eq!(session.receive(black_box(&wire)).unwrap(), wire.len());
                black_box(session.poll_event().unwrap());
            })
        });
        group.bench_function(BenchmarkId::new("inflater", name), |b| {
            let mut inflater = Inflater::new();
            let mut out = Vec::with_capacity(len);
            b.iter(|| {
                out.clear();
                inflater
                    .inflate(black_box(&payload), &mut out, 1 << 20)
                    .unwrap();
                inflater.finish(&mut out, 1 << 20).unwrap();
                assert_eq!(out.len(), len);
            })
        });
    }
    group.finish();
}

/// `n` WebSocket subscribers, with or without deflate, their queues warm.
fn subscribers(n: usize, deflate: bool) -> Vec<(Endpoint, OutQueue)> {
    let now = Instant::now();
    let settings = WsSettings {
        max_message_size: 65536,
        ping_interval: Duration::from_secs(30),
        pong_timeout: Duration::from_secs(30),
        close_timeout: Duration::from_secs(5),
        max_pending_output: 1 << 20,
    };
    let warm = SharedUnit::new(vec![0u8; 4096], Layout::uniform(Category::Other, 4096));
    (0..n)
        .map(|_| {
            let mut q = OutQueue::new();
            q.push_delivery(&warm, now);
            while !q.is_empty() {
                q.write_to(&mut std::io::sink(), &mut WriteReport::default())
                    .unwrap();
            }
            let agreement = deflate.then_some(AGREEMENT);
            (Endpoint::with_deflate(settings, agreement, now), q)
        })
        .collect()
}

fn bench_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_deflate");
    let n = 1_000;
    group.throughput(Throughput::Elements(n as u64));
    for (len, name) in [(64usize, "64B"), (1024, "1KiB")] {
        let data = String::from_utf8(message(len)).unwrap();
        for deflate in [false, true] {
            let id = format!("{}/{name}", if deflate { "deflate" } else { "plain" });
            group.bench_function(BenchmarkId::new(id, n), |b| {
                let mut hub: Hub = Hub::new(HistoryLimits::default());
                let mut compressor = Some(Compressor::new());
                b.iter_batched_ref(
                    || subscribers(n, deflate),
                    |subs| {
                        let now = Instant::now();
                        let published = hub.publish("c", data.as_str().into(), now).expect("room");
                        let message = &published.message;
                        // One fan-out: each encoding made once, shared by every subscriber.
                        let encodings = Encodings::default();
                        for (ws, q) in subs.iter_mut() {
                            let unit =
                                encodings.ws_frame_for(message, ws.deflate(), &mut compressor);
                            ws.deliver(&unit, message.published_at, q);
                        }
                        black_box(&subs);
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(name = benches; config = common::config(); targets = bench_compress, bench_inflate, bench_fanout);
criterion_main!(benches);
