//! Writes are coalesced under load: when messages arrive faster than a loop turn, each subscriber
//! gets all that is pending for it in one vectored write, not a write per message. Measured with
//! the ledger's own write-syscall counter over real sockets.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::Duration;

use support::{TestServer, publish_request, unique_channel, wait_until};

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
