//! Fan-out: one published message queued to 1, 1 000 and 10 000 subscribers' output queues, per
//! transport. The message is encoded once (`Message::encoded`) and every queue gets a
//! `Segment::Shared` pointing at the same bytes, so the cost per extra subscriber is a reference
//! count increment and a queue push. Queues are warm (drained once, capacity kept), as in a
//! steady state; Throughput is per subscriber.
mod common;

use std::hint::black_box;
use std::io::Write;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Instant;

use pushwire::delivery;
use pushwire::delivery::Message;
use pushwire::ledger::{Category, Layout};
use pushwire::outbuf::{OutQueue, SharedUnit, WriteReport};
use pushwire::trace::{Direction, Dissector};

const DATA: &str = r#"{"symbol":"ACME","price":123.45,"volume":1200,"at":"2026-05-16T12:00:00Z"}"#;

/// The shared unit each transport queues, built by the server's own encoders.
fn encode_for(message: &Message, transport: &str) -> Arc<SharedUnit> {
    match transport {
        "long_poll" => delivery::message_json(message),
        "sse" => delivery::sse_event(message, true),
        _ => delivery::ws_frame(message),
    }
}

/// Queues that have held and written a segment once, so pushing does not allocate.
fn warm_queues(n: usize) -> Vec<OutQueue> {
    let warm = SharedUnit::new(vec![0u8; 4096], Layout::uniform(Category::Other, 4096));
    (0..n)
        .map(|_| {
            let mut q = OutQueue::new();
            q.push_delivery(&warm, Instant::now());
            q.write_to(&mut std::io::sink().by_ref(), &mut WriteReport::default())
                .unwrap();
            q
        })
        .collect()
}

/// One write of a queue of `deliveries` message units, as the driver does it: with the ledger's
/// attribution only (tracing off), or also copying the written bytes for a dissector and cutting
/// them into units (tracing on).
fn bench_write_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("write_path");
    let message = Message::new(7, DATA.into(), Instant::now());
    let unit = delivery::sse_event(&message, true);
    let deliveries = 64;
    group.throughput(Throughput::Bytes((unit.bytes.len() * deliveries) as u64));
    // The floor: the same bytes handed to one vectored write, with no queue and no ledger.
    group.bench_function("sse_plain_writev", |b| {
        b.iter(|| {
            let segments: Vec<Arc<[u8]>> = (0..deliveries).map(|_| unit.bytes.clone()).collect();
            let slices: Vec<std::io::IoSlice> =
                segments.iter().map(|s| std::io::IoSlice::new(s)).collect();
            black_box(std::io::sink().write_vectored(&slices).unwrap());
        })
    });
    for tracing in [false, true] {
        let name = if tracing {
            "sse_traced"
        } else {
            "sse_ledger_only"
        };
        group.bench_function(name, |b| {
            let mut q = OutQueue::new();
            let mut dissector = Dissector::joining(Direction::Sent, Some(true), false);
            let mut units = Vec::new();
            b.iter(|| {
                for _ in 0..deliveries {
                    q.push_delivery(&unit, message.published_at);
                }
                let mut report = WriteReport {
                    tap: tracing.then(Vec::new),
                    ..WriteReport::default()
                };
                while !q.is_empty() {
                    q.write_to(&mut std::io::sink(), &mut report).unwrap();
                }
                if let Some(tap) = report.tap.take() {
                    dissector.feed(&tap, &mut units);
                    units.clear();
                }
                black_box(&report.by_category);
            })
        });
    }
    group.finish();
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
                        let message = Message::new(id, DATA.into(), Instant::now());
                        let unit = encode_for(&message, transport);
                        for q in queues.iter_mut() {
                            q.push_delivery(&unit, message.published_at);
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

criterion_group!(name = benches; config = common::config(); targets = bench, bench_write_path);
criterion_main!(benches);
