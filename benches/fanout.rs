//! Fan-out: one published message delivered to 1, 1 000 and 10 000 subscribers' output queues,
//! per transport, along the server's own paths (`App::deliver`, through the same session cores):
//!
//! - SSE and WebSocket: the message is encoded once (`delivery::Encodings`, one per fan-out as
//!   in the server's `fan_out`) and each subscriber's queue gets a `Segment::Shared` pointing at
//!   the same bytes: a lookup, a reference count increment and a queue push per subscriber.
//! - Long polling: the woken pollers that waited after the same id share one answer (as the
//!   server's `app::SharedAnswer`): its body built once from the hub (`Hub::since`,
//!   `delivery::poll_body`) and its response head encoded once per exchange met. Each poller's
//!   own `http1::Connection::respond_shared` queues references to head, envelope and the
//!   message's JSON, and moves the connection on to its next request.
//!
//! Queues are warm (drained once, capacity kept), as in a steady state; Throughput is per
//! subscriber.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod common;

use std::hint::black_box;
use std::io::Write;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Instant;

use pushwire::delivery;
use pushwire::delivery::{Encodings, Message};
use pushwire::http1::{self, Content, Response, Status};
use pushwire::hub::{HistoryLimits, Hub};
use pushwire::ledger::{Category, Layout};
use pushwire::outbuf::{OutQueue, SharedUnit, WriteReport};
use pushwire::polling;
use pushwire::sse;
use pushwire::trace::{Direction, Dissector};
use pushwire::websocket::{Endpoint, WsSettings};

const DATA: &str = r#"{"symbol":"ACME","price":123.45,"volume":1200,"at":"2026-05-16T12:00:00Z"}"#;

/// The `Date` value a response carries (the server caches it per second).
const DATE: &str = "Fri, 27 Nov 2026 17:46:11 GMT";

/// One subscriber as the server holds it: its session core and its warm output queue (unboxed,
/// as in the server's session table).
#[allow(clippy::large_enum_variant)]
enum Subscriber {
    Sse(sse::Stream, OutQueue),
    Ws(Endpoint, OutQueue),
    /// A long-poll parked on its HTTP/1.1 connection, which owes the answer.
    LongPoll(http1::Connection, OutQueue),
}

fn http_settings() -> http1::Settings {
    http1::Settings {
        limits: http1::Limits::default(),
        head_timeout: std::time::Duration::from_secs(10),
        idle_timeout: std::time::Duration::from_secs(60),
        closing_grace: std::time::Duration::from_secs(2),
        max_body: 65536,
        max_pending_output: 1 << 20,
    }
}

/// `n` subscribers of `transport`, opened as the server opens them, their queues drained once so
/// pushing does not allocate.
fn subscribers(n: usize, transport: &str) -> Vec<Subscriber> {
    let now = Instant::now();
    let warm = SharedUnit::new(vec![0u8; 4096], Layout::uniform(Category::Other, 4096));
    (0..n)
        .map(|_| {
            let mut q = OutQueue::new();
            q.push_delivery(&warm, now);
            match transport {
                "sse" => {
                    let exchange = http1::Exchange {
                        minor_version: 1,
                        keep_alive: true,
                    };
                    let opening = sse::Opening {
                        date: DATE,
                        extra: &[],
                        head_category: Category::ResponseHead,
                        retry: std::time::Duration::from_secs(3),
                        notices: b"",
                        notices_category: Category::SseFields,
                        heartbeat: std::time::Duration::from_secs(15),
                    };
                    Subscriber::Sse(sse::Stream::open(exchange, &opening, now, &mut q), q)
                }
                "websocket" => {
                    let settings = WsSettings {
                        max_message_size: 65536,
                        ping_interval: std::time::Duration::from_secs(30),
                        pong_timeout: std::time::Duration::from_secs(30),
                        close_timeout: std::time::Duration::from_secs(5),
                        max_pending_output: 1 << 20,
                    };
                    Subscriber::Ws(Endpoint::new(settings, now), q)
                }
                _ => {
                    let mut core = http1::Connection::new(http_settings(), now);
                    let head = b"GET /longpoll/c?since=0 HTTP/1.1\r\nHost: x\r\n\r\n";
                    let r = core.receive(head, now, &q);
                    assert!(matches!(r.event, Some(http1::Event::Head(_))));
                    Subscriber::LongPoll(core, q)
                }
            }
        })
        .map(|mut sub| {
            let q = match &mut sub {
                Subscriber::Sse(_, q) | Subscriber::Ws(_, q) | Subscriber::LongPoll(_, q) => q,
            };
            while !q.is_empty() {
                q.write_to(&mut std::io::sink().by_ref(), &mut WriteReport::default())
                    .unwrap();
            }
            sub
        })
        .collect()
}

/// A long-poll answer shared by a fan-out, as the server's `app::SharedAnswer`: the body, and
/// its head for each exchange met.
struct Answer {
    body: polling::Body,
    heads: Vec<(http1::Exchange, Arc<SharedUnit>)>,
}

impl Answer {
    fn response(&self) -> Response<'static> {
        Response {
            status: Status::OK,
            content_type: Some("application/json"),
            extra: &[("Cache-Control", "no-store")],
            content: Content::Parts(self.body.parts.clone()),
        }
    }

    fn head(&mut self, exchange: http1::Exchange) -> Arc<SharedUnit> {
        if let Some((_, head)) = self.heads.iter().find(|(e, _)| *e == exchange) {
            return head.clone();
        }
        let mut bytes = Vec::with_capacity(160);
        http1::encode_head(exchange, &self.response(), DATE, &mut bytes);
        let layout = Layout::uniform(Category::ResponseHead, bytes.len());
        let head = Arc::new(SharedUnit::new(bytes, layout));
        self.heads.push((exchange, head.clone()));
        head
    }
}

/// Delivers `message` to one subscriber along the server's path: the shared encoding queued on a
/// stream, or the woken long-poll answered with references to the fan-out's shared answer (its
/// head for this poll's exchange, the envelope, the message's JSON).
fn deliver(
    sub: &mut Subscriber,
    message: &Message,
    encodings: &Encodings,
    answer: Option<&mut Answer>,
    now: Instant,
) {
    match sub {
        Subscriber::Sse(stream, q) => {
            stream.deliver(&encodings.sse_event(message, true), message.published_at, q)
        }
        Subscriber::Ws(ws, q) => {
            ws.deliver(&encodings.ws_frame(message), message.published_at, q);
        }
        Subscriber::LongPoll(core, q) => {
            let Some(answer) = answer else { return };
            let content = answer.response().content;
            core.respond_shared(content, |exchange| answer.head(exchange), now, q);
        }
    }
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
                let mut hub: Hub = Hub::new(HistoryLimits::default());
                b.iter_batched_ref(
                    || subscribers(n, transport),
                    |subs| {
                        let now = Instant::now();
                        let published = hub.publish("c", DATA.into(), now).expect("room");
                        let message = &published.message;
                        let encodings = Encodings::default();
                        // Every poller waited after the previous id: one answer for all.
                        let mut answer = (transport == "long_poll_wake").then(|| Answer {
                            body: delivery::poll_body(&hub.since("c", message.id - 1)),
                            heads: Vec::new(),
                        });
                        for sub in subs.iter_mut() {
                            deliver(sub, message, &encodings, answer.as_mut(), now);
                        }
                        black_box(&subs);
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
