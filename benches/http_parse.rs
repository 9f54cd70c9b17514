//! Request head parsing: a small poll request and a large browser-like head, whole and arriving
//! in 64-byte reads (the reader resumes its search; nothing is rescanned).
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod common;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pushwire::http1::{HeadReader, Limits};

/// The seed the fuzzer starts from, reused as the small fixture.
const SMALL: &[u8] = include_bytes!("../fuzz/corpus/http_request/get_simple.txt");

/// A WebSocket upgrade as a browser sends it, with cookies: about 1 KiB.
fn large_head() -> Vec<u8> {
    let mut head = b"GET /ws/news?since=1234 HTTP/1.1\r\nHost: pushwire.example:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
Sec-WebSocket-Version: 13\r\nOrigin: http://pushwire.example:8080\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Connection: keep-alive, Upgrade\r\nPragma: no-cache\r\nCache-Control: no-cache\r\nUpgrade: websocket\r\n"
        .to_vec();
    for i in 0..6 {
        head.extend_from_slice(
            format!("Cookie: session{i}=0123456789abcdef0123456789abcdef0123456789abcdef; theme=dark\r\n")
                .as_bytes(),
        );
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn bench(c: &mut Criterion) {
    let large = large_head();
    let limits = Limits::default();
    let mut group = c.benchmark_group("http_parse");
    for (name, head) in [("small", SMALL), ("large", &large[..])] {
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_function(format!("{name}_{}B/whole", head.len()), |b| {
            b.iter(|| {
                HeadReader::new()
                    .decode(black_box(head), &limits)
                    .unwrap()
                    .unwrap()
            })
        });
        group.bench_function(format!("{name}_{}B/64B_reads", head.len()), |b| {
            b.iter(|| {
                let mut reader = HeadReader::new();
                let mut end = 0;
                loop {
                    end = (end + 64).min(head.len());
                    if let Some(h) = reader.decode(black_box(&head[..end]), &limits).unwrap() {
                        break h;
                    }
                }
            })
        });
    }
    group.finish();
}

criterion_group!(name = benches; config = common::config(); targets = bench);
criterion_main!(benches);
