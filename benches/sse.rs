//! Server-Sent Events: encoding a single-line and a multi-line event (what every published
//! message costs once per transport), and parsing an encoded stream back.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pushwire::sse;

fn bench(c: &mut Criterion) {
    let single = r#"{"symbol":"ACME","price":123.45,"volume":1200,"at":"2026-05-16T12:00:00Z"}"#;
    let multi = (0..16)
        .map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog"))
        .collect::<Vec<_>>()
        .join("\r\n");
    let mut group = c.benchmark_group("sse");
    for (name, data) in [("single_line", single), ("multi_line_16", &multi[..])] {
        let len = sse::encoded_len(Some(1234), None, data);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("encode_{name}_{len}B"), |b| {
            let mut out = Vec::with_capacity(len);
            b.iter(|| {
                out.clear();
                sse::encode_event(Some(1234), None, black_box(data), &mut out);
            })
        });
        group.bench_function(format!("encode_shared_{name}_{len}B"), |b| {
            b.iter(|| sse::encode_shared(Some(1234), None, black_box(data)))
        });
    }
    let mut stream = Vec::new();
    for id in 0..100 {
        sse::encode_event(Some(id), Some("tick"), &multi, &mut stream);
    }
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function(format!("parse_100_events_{}B", stream.len()), |b| {
        b.iter(|| {
            let events = sse::Parser::new().feed(black_box(&stream));
            assert_eq!(events.len(), 100);
        })
    });
    group.finish();
}

criterion_group!(name = benches; config = common::config(); targets = bench);
criterion_main!(benches);
