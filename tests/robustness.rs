//! Clients that try to hold the server's resources, and clients the server must not stall.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::{Duration, Instant};

use support::{TestServer, assert_still_serving, poll_request, publish_request, unique_channel};

#[test]
fn dripping_empty_lines_does_not_extend_the_head_timeout() {
    let server = TestServer::start(&["--head-timeout", "0.3"]);
    let mut client = server.connect();
    let started = Instant::now();
    // Empty lines before a request line are allowed, but they are not a request: the clock runs.
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(3) {
        if client.try_send(b"\r\n").is_err() {
            break;
        }
        if client.receives_within(Duration::from_millis(50)) {
            answered = Some(client.read_response());
            break;
        }
    }
    let r = answered.expect("the server answered the drip");
    assert_eq!(r.status, 408);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_still_serving(&server);
}

#[test]
fn dripping_a_body_does_not_extend_its_deadline() {
    let server = TestServer::start(&["--idle-timeout", "0.4"]);
    let mut client = server.connect();
    client.send(b"POST /pub/drip HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
    let started = Instant::now();
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(3) {
        if client.try_send(b"x").is_err() {
            break;
        }
        if client.receives_within(Duration::from_millis(50)) {
            answered = Some(client.read_response());
            break;
        }
    }
    assert_eq!(answered.expect("answered").status, 408);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn pipelined_requests_behind_a_large_answer_are_answered_promptly() {
    // Every answer is larger than the pending-output allowance, so each one waits for the
    // previous to drain: the server must come back to the queued requests by itself.
    let server = TestServer::start(&["--max-pending-output", "1000", "--head-timeout", "5"]);
    let channel = unique_channel("big");
    for _ in 0..4 {
        server.publish(&channel, &"z".repeat(900));
    }
    let mut client = server.connect();
    let started = Instant::now();
    let mut pipeline = Vec::new();
    for _ in 0..3 {
        pipeline.extend(poll_request(&channel, Some(0)));
    }
    pipeline.extend(publish_request(&channel, "last"));
    client.send(&pipeline);
    for _ in 0..3 {
        let r = client.read_response();
        assert_eq!((r.status, r.message_ids()), (200, vec![1, 2, 3, 4]));
    }
    assert_eq!(client.read_response().status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn an_echo_peer_that_never_reads_is_not_read_either() {
    let server = TestServer::start(&["--max-pending-output", "65536"]);
    let mut ws = support::ws::RawWs::open(&server, "/echo");
    ws.client.stream.set_nonblocking(true).unwrap();
    // Write echo requests until TCP pushes back: the server stopped reading once our unread echoes
    // passed its allowance, so our writes must block long before 64 MiB, and stay blocked.
    let frame = support::ws::masked(true, 0x2, &[7u8; 16 * 1024]);
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut blocked_since: Option<Instant> = None;
    let mut pushed_back = false;
    while sent < 64 << 20 && Instant::now() < deadline {
        // Frames stay whole across partial writes: continue where the last write stopped.
        let offset = sent % frame.len();
        match std::io::Write::write(&mut ws.client.stream, &frame[offset..]) {
            Ok(n) => {
                sent += n;
                blocked_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    pushed_back = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    // Only a stop by push-back counts: running out of time, or reaching the 64 MiB cap of the
    // loop, proves nothing.
    assert!(
        pushed_back,
        "writes never stayed blocked for 500 ms: the server kept reading ({sent} bytes sent)"
    );
    assert_still_serving(&server);
}
