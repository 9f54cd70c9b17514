//! Writes are coalesced under load: when messages arrive faster than a loop turn, each subscriber
//! gets all that is pending for it in one vectored write, not a write per message. Measured with
//! the ledger's own write-syscall counter over real sockets. A long-poll answered less than the
//! window ago holds its next answer until the window ends, so it carries every message meanwhile.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::Duration;

use support::{TestServer, longpoll_request, publish_request, unique_channel, wait_until};

const SUBSCRIBERS: usize = 20;
const MESSAGES: usize = 100;

#[test]
fn a_burst_of_publishes_reaches_each_subscriber_in_few_writes() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("burst");
    let mut streams: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut c = server.connect();
            c.send(format!("GET /sse/{channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            assert_eq!(c.read_response_head().status, 200);
            c
        })
        .collect();
    let stats = |server: &TestServer| {
        server
            .request(format!("GET /stats?channel={channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .json()
    };
    assert!(wait_until(Duration::from_secs(5), || {
        stats(&server)["channel"]["subscribers"].as_u64() == Some(SUBSCRIBERS as u64)
    }));
    let before = stats(&server)["transports"]["sse"]["write_syscalls"]
        .as_u64()
        .unwrap();
    // One write of 100 pipelined publishes: they are all handled in one turn of the loop.
    let mut publisher = server.connect();
    let burst: Vec<u8> = (0..MESSAGES)
        .flat_map(|i| publish_request(&channel, &format!("m{i}")))
        .collect();
    publisher.send(&burst);
    for _ in 0..MESSAGES {
        assert_eq!(publisher.read_response().status, 200);
    }
    // Every subscriber gets all of them, in order.
    let last = format!("id: {MESSAGES}\n");
    for s in &mut streams {
        let mut seen = String::new();
        while !seen.contains(&last) {
            seen.push_str(&String::from_utf8_lossy(&s.read_exact_bytes(1)));
        }
        assert_eq!(seen.matches("id: ").count(), MESSAGES);
    }
    let writes = stats(&server)["transports"]["sse"]["write_syscalls"]
        .as_u64()
        .unwrap()
        - before;
    let deliveries = (SUBSCRIBERS * MESSAGES) as u64;
    eprintln!("{writes} SSE writes for {deliveries} deliveries");
    assert!(
        writes * 4 <= deliveries,
        "{writes} writes for {deliveries} deliveries: not coalesced"
    );
}

/// Publishes `n` messages one request at a time (each answered before the next is sent), and
/// returns the SSE write calls one subscriber's stream took to carry them, after checking it got
/// every message in order.
fn sse_writes_for_sequential_publishes(flags: &[&str], n: usize) -> u64 {
    let server = TestServer::start(flags);
    let channel = unique_channel("paced");
    let mut stream = server.connect();
    stream.send(format!("GET /sse/{channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(stream.read_response_head().status, 200);
    let writes = |server: &TestServer| {
        let r = server.request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
        r.json()["transports"]["sse"]["write_syscalls"]
            .as_u64()
            .unwrap()
    };
    let mut publisher = server.connect();
    assert!(wait_until(Duration::from_secs(5), || {
        // The stream is subscribed once a publish reaches it.
        publisher.send(&publish_request(&channel, "warm-up"));
        assert_eq!(publisher.read_response().status, 200);
        stream.receives_within(Duration::from_millis(50))
    }));
    let mut seen = String::new();
    let warmed = {
        // Everything of the warm-up, then the count starts.
        while stream.receives_within(Duration::from_millis(100)) {
            seen.push_str(&String::from_utf8_lossy(&stream.read_exact_bytes(1)));
        }
        seen.matches("id: ").count()
    };
    let before = writes(&server);
    for i in 0..n {
        publisher.send(&publish_request(&channel, &format!("m{i}")));
        assert_eq!(publisher.read_response().status, 200);
    }
    let last = format!("id: {}\n", warmed + n);
    while !seen.contains(&last) {
        seen.push_str(&String::from_utf8_lossy(&stream.read_exact_bytes(1)));
    }
    let ids: Vec<u64> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=(warmed + n) as u64).collect::<Vec<_>>());
    writes(&server) - before
}

#[test]
fn messages_published_within_the_coalescing_window_share_a_write() {
    const N: usize = 50;
    // One loop, so each publish is fanned out in the turn that reads it.
    let at_once = sse_writes_for_sequential_publishes(
        &["--no-demo", "--threads", "1", "--write-coalesce", "0"],
        N,
    );
    let windowed = sse_writes_for_sequential_publishes(
        &["--no-demo", "--threads", "1", "--write-coalesce", "0.2"],
        N,
    );
    eprintln!(
        "{N} sequential publishes: {at_once} writes at once, {windowed} with a 200 ms window"
    );
    assert!(at_once >= N as u64, "one write per message: {at_once}");
    assert!(windowed * 5 <= N as u64, "coalesced: {windowed} writes");
}

/// A long-poller is answered one message, polls again at once, and two messages are published
/// while that poll is parked: returns the ids its second answer carries.
fn second_longpoll_answer_after_two_quick_publishes(flags: &[&str]) -> Vec<u64> {
    let server = TestServer::start(flags);
    let channel = unique_channel("held");
    let subscribers = |server: &TestServer| {
        server
            .request(format!("GET /stats?channel={channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .json()["channel"]["subscribers"]
            .as_u64()
    };
    let mut poller = server.connect();
    poller.send(&longpoll_request(&channel, Some(0), Some(30.0)));
    assert!(wait_until(Duration::from_secs(5), || subscribers(&server) == Some(1)));
    server.publish(&channel, "one");
    assert_eq!(poller.read_response().message_ids(), [1]);
    poller.send(&longpoll_request(&channel, Some(1), Some(30.0)));
    assert!(wait_until(Duration::from_secs(5), || subscribers(&server) == Some(1)));
    server.publish(&channel, "two");
    server.publish(&channel, "three");
    let answer = poller.read_response();
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.message_ids()
}

#[test]
fn a_long_poll_answered_within_the_window_carries_every_message_published_meanwhile() {
    // One loop: a publish reaches the parked poll before the publisher hears back. (With two,
    // the poll's loop may deliver "two" after "three" is published, and rightly answer both.)
    let flags = |window| ["--no-demo", "--threads", "1", "--write-coalesce", window];
    let at_once = second_longpoll_answer_after_two_quick_publishes(&flags("0"));
    assert_eq!(at_once, [2], "no window: answered with the first message");
    let windowed = second_longpoll_answer_after_two_quick_publishes(&flags("0.5"));
    assert_eq!(windowed, [2, 3], "held until the window ended");
}
