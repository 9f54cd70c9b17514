//! Hostile input over real sockets (issue 11): what one anonymous client can make the server
//! hold, spend or expose. Sizes are bounded; where a slope matters, two sizes are compared (RSS
//! from `/proc/PID/status`, or time).
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::{Duration, Instant};

use support::ws::{UPGRADE_HEADERS, upgrade_request};
use support::{TestServer, assert_still_serving, publish_request, unique_channel, wait_until};

// ── 10. Exposure ────────────────────────────────────────────────────────────────────────────

/// This machine's address on its default route, when it has one that is not loopback. Found by
/// `connect` on a UDP socket, which sends nothing.
#[test]
fn no_endpoint_answers_with_wildcard_cors() {
    let server = TestServer::start(&["--no-demo"]);
    let stats =
        server.request(b"GET /stats HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n\r\n");
    assert_eq!(stats.status, 200);
    assert_eq!(
        stats.header("access-control-allow-origin"),
        None,
        "{stats:?}"
    );
    let mut trace = server.connect();
    trace.send(b"GET /trace HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n\r\n");
    let head = trace.read_response_head();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("access-control-allow-origin"), None, "{head:?}");
}

#[test]
fn a_cross_site_simple_request_can_neither_drop_nor_publish() {
    let server = TestServer::start(&["--no-demo", "--allowed-origin", "https://app.example"]);
    let channel = unique_channel("csrf");
    let mut sse = server.connect();
    sse.send(format!("GET /sse/{channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    assert_eq!(sse.read_response_head().status, 200);
    let evil = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nOrigin: https://evil.example\r\n\
             Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
            server.addr
        )
    };
    let r = server.request(evil("/drop/sse").as_bytes());
    assert_eq!(r.status, 403, "{r:?}");
    let r = server.request(evil(&format!("/pub/{channel}")).as_bytes());
    assert_eq!(r.status, 403, "{r:?}");
    // The stream is still open and nothing was published: the next id is 1.
    assert_eq!(server.publish(&channel, "real"), 1);
    let same_origin = format!(
        "POST /pub/{channel} HTTP/1.1\r\nHost: {0}\r\nOrigin: http://{0}\r\nContent-Length: 2\r\n\r\nok",
        server.addr
    );
    assert_eq!(server.request(same_origin.as_bytes()).status, 200);
    let listed = format!(
        "POST /pub/{channel} HTTP/1.1\r\nHost: {}\r\nOrigin: https://app.example\r\nContent-Length: 2\r\n\r\nok",
        server.addr
    );
    assert_eq!(server.request(listed.as_bytes()).status, 200);
    assert!(
        sse.receives_within(Duration::from_secs(5)),
        "the SSE stream was dropped"
    );
}

/// Loopback peers (any of 127.0.0.0/8) keep the admin endpoints; a peer from elsewhere is refused
/// unless `--admin` (the refusal itself is tested in `app::router` and the peer classification in
/// `server`: tests stay on loopback).
#[test]
fn admin_endpoints_answer_loopback_peers() {
    let server = TestServer::start(&["--no-demo"]);
    let mut from_127_0_0_2 = {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(
                &"127.0.0.2:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .expect("bind 127.0.0.2");
        socket.connect(&server.addr.into()).expect("connect");
        support::Client::from_stream(socket.into())
    };
    from_127_0_0_2.send(b"POST /drop/sse HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(from_127_0_0_2.read_response_head().status, 200);
    let mut trace = server.connect();
    trace.send(b"GET /trace HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(trace.read_response_head().status, 200);
}

#[test]
fn a_websocket_upgrade_without_origin_is_accepted_under_an_allow_list() {
    let server = TestServer::start(&["--no-demo", "--allowed-origin", "https://app.example"]);
    assert_eq!(server.request(&upgrade_request("/echo")).status, 101);
    let foreign = format!(
        "GET /echo HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n{UPGRADE_HEADERS}\r\n"
    );
    assert_eq!(server.request(foreign.as_bytes()).status, 403);
    assert_still_serving(&server);
}

// ── 9. A closed stderr or stdout ────────────────────────────────────────────────────────────

#[test]
fn tracing_to_a_closed_stderr_does_not_end_the_server() {
    let mut server = TestServer::start_with_closed_stderr(&["--no-demo", "--trace=tree"]);
    for _ in 0..3 {
        assert_still_serving(&server);
    }
    assert!(
        server.is_running(),
        "the server died writing a trace to a closed stderr"
    );
}

#[test]
fn stats_into_a_closed_pipe_exits_quietly() {
    use std::process::{Command, Stdio};
    let server = TestServer::start(&["--no-demo"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushwire"))
        .args([
            "stats",
            "--json",
            "--url",
            &format!("http://{}", server.addr),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pushwire stats");
    // `| head -c 0`: the reader is gone before the first byte.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait for pushwire stats");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "status {:?}, stderr {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "stderr: {stderr}");
}

// ── 11. Strictness ──────────────────────────────────────────────────────────────────────────

#[test]
fn a_chunk_extension_without_semicolon_is_refused_with_400() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("ext");
    let mut c = server.connect();
    c.send(
        format!(
            "POST /pub/{channel} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             1 x\r\na\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.read_response();
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.closes());
    // With `;` it is an extension, read and dropped.
    let r = server.request(
        format!(
            "POST /pub/{channel} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             1 ;x\r\na\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["id"], 1);
}

#[test]
fn bare_lf_line_ends_in_a_request_head_are_accepted() {
    // RFC 9112 §2.2: a recipient MAY recognize a single LF as a line terminator.
    let server = TestServer::start(&["--no-demo"]);
    let r = server.request(b"GET /poll/lf HTTP/1.1\nHost: t\n\n");
    assert_eq!(r.status, 200, "{r:?}");
}

// ── 1. Traces hold only what a session consumed, and scan it once ──────────────────────────

/// `total_in` of a transport in `/stats`.
fn total_in(server: &TestServer, transport: &str) -> u64 {
    let stats = server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json();
    stats["transports"][transport]["total_in"]
        .as_u64()
        .expect("total_in")
}

/// A `GET /trace` reader, its head read (the records it is sent are left unread).
fn open_trace_reader(server: &TestServer) -> support::Client {
    let mut trace = server.connect();
    trace.send(b"GET /trace HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(trace.read_response_head().status, 200);
    trace
}

#[test]
fn input_an_event_stream_ignores_is_not_held_for_a_trace_reader() {
    const CONNS: usize = 16;
    const JUNK: usize = 4 << 20;
    let server = TestServer::start(&["--no-demo"]);
    let _trace = open_trace_reader(&server);
    let before = server.rss();
    let mut streams = Vec::new();
    let junk = vec![b'a'; 64 * 1024];
    for _ in 0..CONNS {
        let mut c = server.connect();
        // What follows the stream's request looks like the head of a 32 MiB body.
        c.send(
            b"GET /sse/junk HTTP/1.1\r\nHost: t\r\n\r\n\
              POST /pub/x HTTP/1.1\r\nHost: t\r\nContent-Length: 33554432\r\n\r\n",
        );
        for _ in 0..JUNK / junk.len() {
            c.send(&junk);
        }
        streams.push(c);
    }
    let all = (CONNS * JUNK) as u64;
    assert!(
        wait_until(Duration::from_secs(30), || total_in(&server, "sse") >= all),
        "the server did not read the streams' input"
    );
    let grown = server.rss().saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "{CONNS} × {} MiB of ignored input grew RSS by {} MiB",
        JUNK >> 20,
        grown >> 20
    );
}

#[test]
fn an_endless_chunk_size_line_is_refused_in_linear_time_while_traced() {
    let server = TestServer::start(&["--no-demo"]);
    let _trace = open_trace_reader(&server);
    let mut cost = Vec::new();
    for size in [1usize << 20, 4 << 20] {
        let cpu = server.cpu_time();
        let mut c = server.connect();
        c.send(b"POST /pub/c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1");
        let line = vec![b'a'; 64 * 1024];
        // A server that rescans would take minutes: the sending stops after 10 s.
        let give_up = Instant::now() + Duration::from_secs(10);
        for _ in 0..size / line.len() {
            if Instant::now() > give_up || c.try_send(&line).is_err() {
                break;
            }
        }
        c.shutdown_write();
        let r = c.read_response();
        assert_eq!(r.status, 400, "{r:?}");
        let _ = c.read_to_eof();
        cost.push(server.cpu_time() - cpu);
    }
    // Four times the input: at most about four times the work (not sixteen), with slack for
    // the clock's 10 ms ticks.
    assert!(
        cost[1] <= cost[0] * 8 + Duration::from_millis(200),
        "1 MiB took {:?} of server CPU, 4 MiB {:?}",
        cost[0],
        cost[1]
    );
}

// ── 6. --max-pending-output bounds memory ───────────────────────────────────────────────────

/// `counter` of a transport in `/stats`.
fn counter(server: &TestServer, transport: &str, counter: &str) -> u64 {
    let stats = server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json();
    stats["transports"][transport][counter]
        .as_u64()
        .expect("a counter")
}

/// Publishes `n` one-byte messages to `channel` on one pipelined connection.
fn publish_many(server: &TestServer, channel: &str, n: usize) {
    let mut c = server.connect();
    let one = publish_request(channel, "x");
    for batch in 0..n.div_ceil(256) {
        let count = 256.min(n - batch * 256);
        c.send(&one.repeat(count));
        for _ in 0..count {
            assert_eq!(c.read_response().status, 200);
        }
    }
}

const LIMIT: u64 = 1 << 20;

#[test]
fn a_websocket_that_never_reads_one_byte_messages_is_cut_near_the_limit() {
    let server = TestServer::start(&["--no-demo", "--max-pending-output", &LIMIT.to_string()]);
    let channel = unique_channel("slow");
    let mut ws = support::ws::RawWs::open(&server, &format!("/ws/{channel}"));
    // `/stats` sums every loop's ledger into copies: its own memory, made once before measuring.
    counter(&server, "ws", "slow_disconnects");
    let before = server.rss();
    let mut published = 0;
    while counter(&server, "ws", "slow_disconnects") == 0 {
        publish_many(&server, &channel, 2048);
        published += 2048;
        assert!(published < 400_000, "never cut");
    }
    let grown = server.rss().saturating_sub(before);
    eprintln!(
        "cut after {published} messages; RSS grew by {} KiB",
        grown >> 10
    );
    assert!(
        grown < LIMIT * 3 / 2 + (512 << 10),
        "cut after {published} messages; RSS grew by {} KiB",
        grown >> 10
    );
    // It was told why: 1008 after whatever it had not read.
    ws.client.set_read_timeout(Duration::from_secs(10));
    assert_eq!(ws.read_close_code(), Some(1008));
}

#[test]
fn pipelined_polls_that_are_never_read_pause_near_the_limit() {
    let server = TestServer::start(&["--no-demo", "--max-pending-output", &LIMIT.to_string()]);
    let channel = unique_channel("pipe");
    publish_many(&server, &channel, 1024);
    // `/stats` sums every loop's ledger into copies: its own memory, made once before measuring.
    counter(&server, "poll", "responses");
    let before = server.rss();
    let mut c = server.connect();
    let poll = support::poll_request(&channel, Some(0));
    c.send(&poll.repeat(200));
    // Wait until the server stops answering (its output is full), then a little more.
    let mut last = 0;
    let mut stable_since = Instant::now();
    assert!(wait_until(Duration::from_secs(20), || {
        let now = counter(&server, "poll", "responses");
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
        stable_since.elapsed() > Duration::from_millis(500)
    }));
    let grown = server.rss().saturating_sub(before);
    eprintln!("{last} answers queued; RSS grew by {} KiB", grown >> 10);
    assert!(
        last < 200,
        "every poll was answered into a reader that never reads"
    );
    assert!(
        grown < LIMIT * 3 / 2 + (512 << 10),
        "{last} answers queued; RSS grew by {} KiB",
        grown >> 10
    );
    // A fresh client is served at once.
    let t = Instant::now();
    assert_still_serving(&server);
    assert!(t.elapsed() < Duration::from_secs(1));
}

// ── 7. File descriptors ─────────────────────────────────────────────────────────────────────

/// Opens `n` event streams; returns each one's status, and the connections.
fn open_streams(server: &TestServer, n: usize) -> (Vec<support::Response>, Vec<support::Client>) {
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut c = server.connect();
        c.send(b"GET /sse/fd HTTP/1.1\r\nHost: t\r\n\r\n");
        conns.push(c);
    }
    let heads = conns.iter_mut().map(|c| c.read_response_head()).collect();
    (heads, conns)
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let server = TestServer::start_with_ulimit("-Sn 64", &["--no-demo"]);
    let (heads, _conns) = open_streams(&server, 100);
    assert!(heads.iter().all(|h| h.status == 200), "{:?}", heads.last());
    assert_still_serving(&server);
}

#[test]
fn past_the_open_file_limit_a_client_gets_503_with_retry_after() {
    let server = TestServer::start_with_ulimit("-n 128", &["--no-demo"]);
    let (heads, _conns) = open_streams(&server, 130);
    let served = heads.iter().filter(|h| h.status == 200).count();
    assert!((1..130).contains(&served), "{served} streams served");
    for h in heads.iter().filter(|h| h.status != 200) {
        assert_eq!(h.status, 503, "{h:?}");
        assert_eq!(h.header("retry-after"), Some("1"), "{h:?}");
    }
    let t = Instant::now();
    let r = server.poll("fd", None);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// A WebSocket is not subject to CORS, so a page of any site may open one: without an allow list
/// the server still refuses a foreign `Origin` (a WebSocket on a channel publishes), and accepts
/// its own origin and none at all.
#[test]
fn a_websocket_from_a_foreign_page_is_refused_and_the_own_page_accepted() {
    let server = TestServer::start(&["--no-demo"]);
    let port = server.addr.port();
    let upgrade = |origin: &str| {
        format!(
            "GET /ws/news HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\n{UPGRADE_HEADERS}\r\n"
        )
    };
    assert_eq!(
        server
            .request(upgrade("https://evil.example").as_bytes())
            .status,
        403
    );
    assert_eq!(
        server
            .request(upgrade(&format!("http://127.0.0.1:{port}")).as_bytes())
            .status,
        101
    );
    assert_eq!(server.request(&upgrade_request("/ws/news")).status, 101);
    assert_still_serving(&server);
}

// ── 8. Every head, pipelined or not, has the head deadline ─────────────────────────────────

#[test]
fn a_pipelined_head_sent_a_byte_at_a_time_gets_408_at_the_head_deadline() {
    let server = TestServer::start(&["--no-demo", "--head-timeout", "1", "--idle-timeout", "20"]);
    let mut c = server.connect();
    let start = Instant::now();
    c.send(b"GET /poll/a HTTP/1.1\r\nHost: t\r\n\r\nGET /poll/a HTTP/1.1\r\nX");
    assert_eq!(c.read_response().status, 200);
    // One more byte every 200 ms: the head is never complete, the connection never idle.
    let answered = std::thread::scope(|s| {
        let mut writer = c.stream.try_clone().unwrap();
        s.spawn(move || {
            use std::io::Write;
            for _ in 0..25 {
                if writer.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        c.set_read_timeout(Duration::from_secs(8));
        let answered = c.read_response();
        (answered, start.elapsed())
    });
    let (answered, took) = answered;
    assert_eq!(answered.status, 408, "{answered:?}");
    assert!(
        took < Duration::from_secs(3),
        "408 after {took:?} with --head-timeout 1"
    );
}

// ── 12. After a protocol error, the closing handshake ───────────────────────────────────────

#[test]
fn after_a_protocol_error_a_client_still_sending_gets_the_close_intact() {
    use support::ws::{RawWs, frame, masked};
    let server = TestServer::start(&["--no-demo"]);
    let mut ws = RawWs::open(&server, "/echo");
    // An unmasked client frame (RFC 6455 §5.1) → 1002; the client does not read yet and goes
    // on sending, as a client that has not seen the Close does.
    ws.send(&frame(true, 0x1, b"hi", None));
    let until = Instant::now() + Duration::from_millis(300);
    let mut sent = 0;
    while Instant::now() < until {
        if ws
            .client
            .try_send(&masked(true, 0x1, b"still talking"))
            .is_err()
        {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(sent > 10, "the server stopped reading after {sent} frames");
    assert_eq!(ws.read_close_code(), Some(1002));
    // The peer's Close ends it at once, well before --ws-close-timeout (5 s).
    let t = Instant::now();
    ws.send(&masked(true, 0x8, &1000u16.to_be_bytes()));
    ws.client.assert_closed();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}
