//! The chunked transfer coding: decoding a 64 KiB body sent in 1 KiB and 16 B chunks, and
//! encoding it back.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pushwire::http1::chunked::{ChunkedDecoder, LAST_CHUNK, encode_chunk};

const BODY_LEN: usize = 64 * 1024;

fn body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect()
}

fn encode(body: &[u8], chunk: usize, out: &mut Vec<u8>) {
    for piece in body.chunks(chunk) {
        encode_chunk(piece, out);
    }
    out.extend_from_slice(LAST_CHUNK);
}

fn bench(c: &mut Criterion) {
    let body = body();
    let mut group = c.benchmark_group("chunked");
    for chunk in [1024, 16] {
        let mut encoded = Vec::new();
        encode(&body, chunk, &mut encoded);
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_function(format!("decode_64KiB_in_{chunk}B_chunks"), |b| {
            let mut out = Vec::with_capacity(BODY_LEN);
            b.iter(|| {
                out.clear();
                let mut decoder = ChunkedDecoder::new();
                let n = decoder.decode(black_box(&encoded), &mut out).unwrap();
                assert!(decoder.is_done() && n == encoded.len());
            })
        });
        group.bench_function(format!("encode_64KiB_in_{chunk}B_chunks"), |b| {
            let mut out = Vec::with_capacity(encoded.len());
            b.iter(|| {
                out.clear();
                encode(black_box(&body), chunk, &mut out);
            })
        });
    }
    group.finish();
}

criterion_group!(name = benches; config = common::config(); targets = bench);
criterion_main!(benches);
