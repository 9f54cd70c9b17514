//! Fan-out: one published message delivered to 1, 1 000 and 10 000 subscribers' output queues,
//! per transport, along the server's own paths (`fan_out` in `src/server/http.rs`, rebuilt here
//! from public pieces):
//!
//! - SSE and WebSocket: the message is encoded once (`delivery::sse_event`, `delivery::ws_frame`
//!   cache it on the message) and each subscriber's queue gets a `Segment::Shared` pointing at the
//!   same bytes: a lookup, a reference count increment and a queue push per subscriber.
//! - Long polling: the woken pollers that waited after the same id share one body built from the
//!   hub (`Hub::since`, `polling::encode_body`), but each answer is its own response: per poller
//!   the body's pieces are cloned, a response head is encoded (`ResponseHead`, with Date,
//!   Content-Type, Content-Length and Cache-Control, as `respond` does), head and envelope are
//!   copied into the queue and the message's shared JSON is referenced.
//!
//! Queues are warm (drained once, capacity kept), as in a steady state; Throughput is per
//! subscriber.
mod common;

use std::hint::black_box;
use std::io::Write;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Instant;

use pushwire::delivery;
use pushwire::http1::{ResponseBody, ResponseHead, Status};
use pushwire::hub::{Hub, Message};
use pushwire::ledger::{Category, Layout};
use pushwire::outbuf::{OutQueue, SharedUnit, WriteReport};
use pushwire::polling::{self, Piece};
use pushwire::trace::{Direction, Dissector};

const DATA: &str = r#"{"symbol":"ACME","price":123.45,"volume":1200,"at":"2026-05-16T12:00:00Z"}"#;

/// A stream subscriber's delivery, as `sse_deliver` and `ws_deliver` make it.
fn deliver_stream(queue: &mut OutQueue, message: &Message, transport: &str) {
    let unit = match transport {
        "sse" => delivery::sse_event(message, true),
        _ => delivery::ws_frame(message),
    };
    queue.push_delivery(&unit, message.published_at);
}

/// The `Date` value a response carries (the server caches it per second).
const DATE: &str = "Fri, 27 Nov 2026 17:46:11 GMT";

/// One parked long-poll answered, as `fan_out` and `respond` do it: the shared body's pieces
/// cloned, a head encoded for this poller, head and envelope copied, the message referenced.
fn wake_longpoll(queue: &mut OutQueue, shared_body: &polling::Body) {
    let body = shared_body.clone();
    let mut head = Vec::with_capacity(160);
    ResponseHead {
        status: Status::OK,
        minor_version: 1,
        date: DATE,
        body: ResponseBody::Length(body.len),
        keep_alive: None,
        content_type: Some("application/json"),
        extra: &[("Cache-Control", "no-store")],
    }
    .encode(&mut head);
    queue.push_bytes(&head, Category::ResponseHead);
    for piece in body.pieces {
        match piece {
            Piece::Envelope(bytes) => queue.push_bytes(&bytes, Category::JsonEnvelope),
            Piece::Message(unit, published_at) => queue.push_delivery(&unit, published_at),
        }
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
    for transport in ["long_poll_wake", "sse", "websocket"] {
        for n in [1usize, 1_000, 10_000] {
            group.throughput(Throughput::Elements(n as u64));
            let batch = if n > 100 {
                BatchSize::PerIteration
            } else {
                BatchSize::SmallInput
            };
            group.bench_function(BenchmarkId::new(transport, n), |b| {
                let mut hub = Hub::default();
                b.iter_batched_ref(
                    || warm_queues(n),
                    |queues| {
                        let published = hub.publish("c", DATA.into(), Instant::now());
                        let message = &published.message;
                        if transport == "long_poll_wake" {
                            // Every poller waited after the previous id: one body for all.
                            let body = polling::encode_body(&hub.since("c", message.id - 1));
                            for q in queues.iter_mut() {
                                wake_longpoll(q, &body);
                            }
                        } else {
                            for q in queues.iter_mut() {
                                deliver_stream(q, message, transport);
                            }
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
