//! A stream delivery allocates nothing per subscriber: the message is encoded once per fan-out and
//! every subscriber's queue takes a reference to the same bytes. A long-poll round (request in,
//! answer out) allocates a fixed few times per poller, whatever the answer carries. Counted with a
//! global allocator that counts each thread's allocations, on the cores the server uses (no
//! socket: the queues are written to a sink).
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushwire::delivery::{self, Encodings};
use pushwire::hub::{HistoryLimits, Hub};
use pushwire::ledger::{Category, Layout};
use pushwire::outbuf::{OutQueue, SharedUnit, WriteReport};
use pushwire::websocket::{Endpoint, WsSettings};
use pushwire::{http1, sse};

struct Counting;

thread_local! {
    /// This thread's allocations: tests run side by side and each counts only its own.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn count_one() {
    // `try_with`: a thread being torn down may still free and allocate.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        count_one();
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new_size: usize) -> *mut u8 {
        count_one();
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
    let before = allocations();
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
    allocations() - before
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

const POLLERS: usize = 200;

fn http_settings() -> http1::Settings {
    http1::Settings {
        limits: http1::Limits::default(),
        head_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        closing_grace: Duration::from_secs(2),
        max_body: 65536,
        max_pending_output: 1 << 20,
    }
}

/// One long-poll round on the server's path for every poller: its request head read, then, after
/// a publish, the answer encoded once for all of them (the body, and the head for each exchange
/// met, as `app::SharedAnswer` does) and each poller answered with references to it, the queue
/// written out. Returns the allocations the round made, publish excluded. `SharedAnswer` is
/// crate-private, so this round rebuilds its steps from the public cores (`http1::encode_head`,
/// `Connection::respond_shared`, `delivery::poll_body`). The app's own sharing is checked for
/// correct answers over sockets in `tests/polling.rs`; its allocations are not counted here.
fn one_long_poll_round(
    hub: &mut Hub,
    pollers: &mut [(http1::Connection, OutQueue)],
    report: &mut WriteReport,
    now: Instant,
) -> usize {
    let since = hub.last_id("c");
    let request = format!(
        "GET /longpoll/c?since={since} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: pushwire-load\r\nAccept: application/json\r\n\r\n"
    );
    let since_text = since.to_string();
    let before = allocations();
    for (core, q) in pollers.iter_mut() {
        let r = core.receive(request.as_bytes(), now, q);
        assert_eq!(r.consumed, request.len());
        let Some(http1::Event::Head(head)) = r.event else {
            panic!("no head: {:?}", r.event);
        };
        assert_eq!(head.query_param("since"), Some(&*since_text));
    }
    let reading = allocations() - before;
    hub.publish(
        "c",
        "a 64-byte payload, the size the comparison uses..".into(),
        now,
    )
    .expect("room");
    let before = allocations();
    let body = delivery::poll_body(&hub.since("c", since));
    assert_eq!(body.messages, 1);
    let response = || http1::Response {
        status: http1::Status::OK,
        content_type: Some("application/json"),
        extra: &[("Cache-Control", "no-store")],
        content: http1::Content::Parts(body.parts.clone()),
    };
    let mut heads: Vec<(http1::Exchange, Arc<SharedUnit>)> = Vec::new();
    for (core, q) in pollers.iter_mut() {
        let head = |exchange| {
            if let Some((_, head)) = heads.iter().find(|(e, _)| *e == exchange) {
                return head.clone();
            }
            let mut bytes = Vec::new();
            http1::encode_head(
                exchange,
                &response(),
                "Sat, 28 Nov 2026 13:36:16 GMT",
                &mut bytes,
            );
            let layout = Layout::uniform(Category::ResponseHead, bytes.len());
            heads.push((exchange, Arc::new(SharedUnit::new(bytes, layout))));
            heads[heads.len() - 1].1.clone()
        };
        core.respond_shared(response().content, head, now, q);
        drain(q, report);
    }
    assert_eq!(
        heads.len(),
        1,
        "every poller asked in HTTP/1.1 and stays open"
    );
    drop((heads, body));
    reading + allocations() - before
}

#[test]
fn a_long_poll_round_allocates_a_few_times_per_poller() {
    let now = Instant::now();
    let mut hub = Hub::new(HistoryLimits::default());
    let mut pollers: Vec<_> = (0..POLLERS)
        .map(|_| {
            (
                http1::Connection::new(http_settings(), now),
                OutQueue::new(),
            )
        })
        .collect();
    let mut report = WriteReport::default();
    for _ in 0..3 {
        one_long_poll_round(&mut hub, &mut pollers, &mut report, now);
    }
    let counts: Vec<usize> = (0..5)
        .map(|_| one_long_poll_round(&mut hub, &mut pollers, &mut report, now))
        .collect();
    // Per poller: the request head's bytes and its list of fields. The answer (head, envelope,
    // the message's JSON) is made once for all of them and referenced; `]}` is static.
    // Making it takes about 20, however many pollers share it.
    assert!(
        counts.iter().all(|&n| n <= 2 * POLLERS + 32),
        "allocations per long-poll round of {POLLERS} pollers: {counts:?}"
    );
}
