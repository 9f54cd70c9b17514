//! A stream delivery allocates nothing per subscriber: the message is encoded once per fan-out and
//! every subscriber's queue takes a reference to the same bytes. Counted with a global allocator
//! that counts, on the cores the server uses (no socket: the queues are written to a sink).
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pushwire::delivery::Encodings;
use pushwire::hub::{HistoryLimits, Hub};
use pushwire::ledger::Category;
use pushwire::outbuf::{OutQueue, WriteReport};
use pushwire::websocket::{Endpoint, WsSettings};
use pushwire::{http1, sse};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SUBSCRIBERS: usize = 1000;

enum Sub {
    Sse(sse::Stream, OutQueue),
    Ws(Box<Endpoint>, OutQueue),
}

/// Writes the queue out with the driver's one reused report (its lists keep their room).
fn drain(q: &mut OutQueue, report: &mut WriteReport) {
    while !q.is_empty() {
        report.clear();
        q.write_to(&mut std::io::sink().by_ref(), report).unwrap();
    }
}

fn subscribers(now: Instant) -> Vec<Sub> {
    (0..SUBSCRIBERS)
        .map(|i| {
            let mut q = OutQueue::new();
            if i % 2 == 0 {
                let opening = sse::Opening {
                    date: "Fri, 27 Nov 2026 17:46:11 GMT",
                    extra: &[],
                    head_category: Category::ResponseHead,
                    retry: Duration::from_secs(3),
                    notices: b"",
                    notices_category: Category::SseFields,
                    heartbeat: Duration::from_secs(15),
                };
                let exchange = http1::Exchange {
                    minor_version: 1,
                    keep_alive: true,
                };
                Sub::Sse(sse::Stream::open(exchange, &opening, now, &mut q), q)
            } else {
                let settings = WsSettings {
                    max_message_size: 65536,
                    ping_interval: Duration::from_secs(30),
                    pong_timeout: Duration::from_secs(30),
                    close_timeout: Duration::from_secs(5),
                    max_pending_output: 1 << 20,
                };
                Sub::Ws(Box::new(Endpoint::new(settings, now)), q)
            }
        })
        .collect()
}

/// Publishes one message and delivers it to every subscriber, each queue then written out.
/// Returns the allocations the delivery itself made (publishing excluded).
fn one_fan_out(hub: &mut Hub, subs: &mut [Sub], report: &mut WriteReport, now: Instant) -> usize {
    let published = hub.publish(
        "c",
        "a 64-byte payload, the size the comparison uses..".into(),
        now,
    );
    let message = published.expect("room").message;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let encodings = Encodings::default();
    for sub in subs.iter_mut() {
        match sub {
            Sub::Sse(stream, q) => {
                stream.deliver(
                    &encodings.sse_event(&message, true),
                    message.published_at,
                    q,
                );
                drain(q, report);
            }
            Sub::Ws(ws, q) => {
                ws.deliver(&encodings.ws_frame(&message), message.published_at, q);
                drain(q, report);
            }
        }
    }
    drop(encodings);
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn a_fan_out_allocates_per_message_not_per_subscriber() {
    let now = Instant::now();
    let mut hub = Hub::new(HistoryLimits::default());
    let mut subs = subscribers(now);
    let mut report = WriteReport::default();
    // Warm: every queue and the report have grown once.
    for _ in 0..3 {
        one_fan_out(&mut hub, &mut subs, &mut report, now);
    }
    let counts: Vec<usize> = (0..5)
        .map(|_| one_fan_out(&mut hub, &mut subs, &mut report, now))
        .collect();
    // The SSE event in its chunk, the JSON object and the WebSocket frame, each an Arc'd unit
    // with its bytes and layout: a handful, whatever the number of subscribers.
    assert!(
        counts.iter().all(|&n| n <= 16),
        "allocations per fan-out to {SUBSCRIBERS} subscribers: {counts:?}"
    );
}
