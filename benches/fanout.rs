//! Fan-out: one published message queued to 1, 1 000 and 10 000 subscribers' output queues, per
//! transport. The message is encoded once (`Message::encoded`) and every queue gets a
//! `Segment::Shared` pointing at the same bytes, so the cost per extra subscriber is a reference
//! count increment and a queue push. Queues are warm (drained once, capacity kept), as in a
//! steady state; Throughput is per subscriber.
use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pushwire::http1::chunked::encode_chunk;
use pushwire::hub::{Encoding, Message};
use pushwire::outbuf::{OutQueue, Segment};
use pushwire::polling::encode_message_json;
use pushwire::sse;
use pushwire::websocket::{Opcode, encode_frame, frame_len};

const DATA: &str = r#"{"symbol":"ACME","price":123.45,"volume":1200,"at":"2026-05-16T12:00:00Z"}"#;

/// The shared bytes each transport queues, built as the server builds them.
fn encode_for(message: &Message, transport: &str) -> std::sync::Arc<[u8]> {
    match transport {
        "long_poll" => message.encoded(Encoding::Json, encode_message_json),
        "sse" => message.encoded(Encoding::SseChunk, |m| {
            let mut event = Vec::with_capacity(sse::encoded_len(Some(m.id), None, &m.data));
            sse::encode_event(Some(m.id), None, &m.data, &mut event);
            let mut out = Vec::with_capacity(event.len() + 12);
            encode_chunk(&event, &mut out);
            out
        }),
        _ => {
            let json = message.encoded(Encoding::Json, encode_message_json);
            message.encoded(Encoding::WsFrame, |_| {
                let mut out = Vec::with_capacity(frame_len(json.len()));
                encode_frame(Opcode::Text, &json, &mut out);
                out
            })
        }
    }
}

/// Queues that have held and written a segment once, so pushing does not allocate.
fn warm_queues(n: usize) -> Vec<OutQueue> {
    let warm: std::sync::Arc<[u8]> = vec![0u8; 4096].into();
    (0..n)
        .map(|_| {
            let mut q = OutQueue::new();
            q.push(Segment::Shared(warm.clone()));
            q.write_to(&mut std::io::sink().by_ref()).unwrap();
            q
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for transport in ["long_poll", "sse", "websocket"] {
        for n in [1usize, 1_000, 10_000] {
            group.throughput(Throughput::Elements(n as u64));
            let batch = if n > 100 {
                BatchSize::PerIteration
            } else {
                BatchSize::SmallInput
            };
            group.bench_function(BenchmarkId::new(transport, n), |b| {
                let mut id = 0;
                b.iter_batched_ref(
                    || warm_queues(n),
                    |queues| {
                        id += 1;
                        let message = Message::new(id, DATA.into());
                        let bytes = encode_for(&message, transport);
                        for q in queues.iter_mut() {
                            q.push(Segment::Shared(bytes.clone()));
                        }
                        black_box(&queues);
                    },
                    batch,
                )
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group!(name = benches; config = config(); targets = bench);
criterion_main!(benches);
