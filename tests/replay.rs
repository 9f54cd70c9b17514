//! Replays paced by the reader, over real sockets: a stream that resumes from id 0 on a channel
//! whose history is many times `--max-pending-output` gets all of it, in order and once each, as
//! it reads (SSE and WebSocket); a subscriber that never reads does not make the server hold the
//! history encoded once more.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::Duration;

use support::ws::{RawWs, upgrade_request};
use support::{TestServer, unique_channel};

const MESSAGES: u64 = 400;

/// A server whose pending-output limit is 16 KiB, and a channel holding 400 messages of 1 KiB
/// (25 times that limit).
fn server_with_history() -> (TestServer, String) {
    let server = TestServer::start(&["--no-demo", "--max-pending-output", "16384"]);
    let channel = unique_channel("replay");
    let payload = "r".repeat(1024);
    for _ in 0..MESSAGES {
        server.publish(&channel, &payload);
    }
    (server, channel)
}

#[test]
fn an_sse_resume_past_the_output_limit_gets_everything_in_order() {
    let (server, channel) = server_with_history();
    let mut client = server.connect();
    client.set_read_timeout(Duration::from_secs(10));
    client
        .send(format!("GET /sse/{channel}?last_event_id=0 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let head = client.read_response_head();
    assert_eq!(head.status, 200);
    // A live message published while the replay is under way comes after it.
    server.publish(&channel, "live");
    let mut ids = Vec::new();
    let mut text = String::new();
    while ids.last() != Some(&(MESSAGES + 1)) {
        text.push_str(&String::from_utf8_lossy(&client.read_exact_bytes(1)));
        if text.ends_with("\n\n") {
            ids.extend(
                text.lines()
                    .filter_map(|l| l.strip_prefix("id: "))
                    .map(|id| id.parse::<u64>().unwrap()),
            );
            text.clear();
        }
    }
    assert_eq!(ids, (1..=MESSAGES + 1).collect::<Vec<_>>());
}

#[test]
fn a_websocket_resume_past_the_output_limit_gets_everything_in_order() {
    let (server, channel) = server_with_history();
    let mut ws = RawWs::open(&server, &format!("/ws/{channel}?since=0"));
    server.publish(&channel, "live");
    let ids: Vec<u64> = (0..=MESSAGES)
        .map(|_| {
            let text = ws.text();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ids, (1..=MESSAGES + 1).collect::<Vec<_>>());
}

#[test]
fn subscribers_that_never_read_a_long_replay_hold_a_window_each() {
    let server = TestServer::start(&["--no-demo", "--max-pending-output", "16384"]);
    let channel = unique_channel("idle");
    let payload = "i".repeat(8 * 1024);
    for _ in 0..1024 {
        server.publish(&channel, &payload);
    }
    let before = server.rss();
    // 40 resumes from 0 that never read: 8 MiB of history each, 320 MiB if each were queued.
    let mut idle = Vec::new();
    for i in 0..40 {
        let mut c = server.connect();
        if i % 2 == 0 {
            c.send(
                format!("GET /sse/{channel}?last_event_id=0 HTTP/1.1\r\nHost: t\r\n\r\n")
                    .as_bytes(),
            );
        } else {
            c.send(&upgrade_request(&format!("/ws/{channel}?since=0")));
        }
        idle.push(c);
    }
    // Every one is served: the channel counts 40 subscribers.
    assert!(support::wait_until(Duration::from_secs(10), || {
        let stats = server
            .request(format!("GET /stats?channel={channel} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .json();
        stats["channel"]["subscribers"].as_u64() == Some(40)
    }));
    let grown = server.rss().saturating_sub(before);
    // Kernel socket buffers are not in RSS: what the server holds is about a window (8 KiB)
    // each, not the 8 MiB replay.
    assert!(
        grown < 32 * 1024 * 1024,
        "RSS grew by {grown} bytes for 40 idle replays of 8 MiB"
    );
}
