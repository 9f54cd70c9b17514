//! Issue 11, items 2–5: what one client without credentials can make the hub hold. Each test runs
//! the attack at a reduced, bounded size over real sockets and reads the server's own memory
//! (`VmRSS` and `VmHWM` of the process the harness started) or the hub's accounting (`/stats`),
//! at two sizes where the slope is what matters.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::time::{Duration, Instant};

use support::ws::RawWs;
use support::{Client, TestServer, publish_request, wait_until};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A line of `/proc/PID/status` in bytes (`VmRSS`, `VmHWM`).
fn proc_status(server: &TestServer, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("read /proc/PID/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
    let kb: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number of kB");
    kb * 1024
}

fn rss(server: &TestServer) -> usize {
    proc_status(server, "VmRSS:")
}

/// The hub's own figures from `/stats`.
fn hub(server: &TestServer) -> serde_json::Value {
    let r = server.request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["hub"].clone()
}

fn hub_figure(server: &TestServer, name: &str) -> usize {
    hub(server)[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no hub.{name} in /stats")) as usize
}

/// Publishes every `(channel, body)` on one connection, pipelined in batches; returns the
/// statuses in order (each 503 is checked for its `Retry-After` and its reason).
fn publish_all(
    server: &TestServer,
    messages: impl IntoIterator<Item = (String, String)>,
) -> Vec<u16> {
    let mut c = server.connect();
    let mut statuses = Vec::new();
    let mut batch = Vec::new();
    let mut pending = 0;
    let mut flush = |c: &mut Client, batch: &mut Vec<u8>, pending: &mut usize| {
        c.send(batch);
        batch.clear();
        for _ in 0..*pending {
            let r = c.read_response();
            if r.status == 503 {
                assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
                assert!(!r.body.is_empty(), "a 503 says why");
            }
            statuses.push(r.status);
        }
        *pending = 0;
    };
    for (channel, body) in messages {
        batch.extend(publish_request(&channel, &body));
        pending += 1;
        if pending == 200 {
            flush(&mut c, &mut batch, &mut pending);
        }
    }
    flush(&mut c, &mut batch, &mut pending);
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|&&s| s == status).count()
}

/// Item 2: a publish that would create one channel past `--max-channels` is refused with a
/// clear 503, and publishing to the channels that exist goes on.
#[test]
fn a_publish_past_max_channels_gets_503_while_existing_channels_go_on() {
    let server = TestServer::start(&["--no-demo", "--max-channels", "50"]);
    let statuses = publish_all(&server, (0..60).map(|i| (format!("c{i}"), "x".to_string())));
    assert_eq!(count(&statuses, 200), 50);
    assert_eq!(&statuses[50..], [503; 10]);
    let r = server.request(&publish_request("c55", "x"));
    assert_eq!(r.status, 503);
    assert!(r.body_str().contains("too many channels"), "{r:?}");
    assert!(r.body_str().contains("--max-channels"), "{r:?}");
    assert_eq!(server.publish("c7", "again"), 2);
    assert_eq!(hub_figure(&server, "channels"), 50);
}

/// Item 2: held messages expire after `--message-ttl`, a channel with nothing held and nobody
/// listening is forgotten (a later client that asks with an old id is told of a reset), and the
/// memory comes back: rounds of fresh channels do not add up.
#[test]
fn expired_channels_are_forgotten_and_their_memory_comes_back() {
    let server = TestServer::start(&["--no-demo", "--message-ttl", "0.3"]);
    let body = "m".repeat(KIB);
    let mut after_round = Vec::new();
    for round in 0..4 {
        let channels = (0..3000).map(|i| (format!("r{round}-{i}"), body.clone()));
        let statuses = publish_all(&server, channels);
        assert_eq!(count(&statuses, 200), 3000);
        after_round.push(rss(&server));
        assert!(
            wait_until(Duration::from_secs(5), || hub_figure(&server, "channels")
                == 0),
            "channels still held: {}",
            hub(&server)
        );
        assert_eq!(hub_figure(&server, "charged_bytes"), 0);
        assert_eq!(hub_figure(&server, "held_messages"), 0);
    }
    let r = server.poll("r0-1", Some(1));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["reset"], true, "{r:?}");
    assert_eq!(r.json()["last_id"], 0);
    // 3 000 channels of 1 KiB take about 5 MiB; three more rounds add well under one round.
    let growth = after_round[3].saturating_sub(after_round[0]);
    eprintln!("RSS after each round: {after_round:?}, growth over three rounds {growth}");
    assert!(
        growth < 2 * MIB,
        "RSS grew {growth} bytes over three rounds"
    );
}

/// Publishes `per_channel` one-byte messages to each of `channels` channels under a budget;
/// returns the server's RSS growth and what the hub charged.
fn hold_small_messages(budget: usize, channels: usize, per_channel: usize) -> (usize, usize) {
    let server = TestServer::start(&["--no-demo", "--history-total-bytes", &budget.to_string()]);
    let before = rss(&server);
    let messages =
        (0..per_channel).flat_map(|_| (0..channels).map(|c| (format!("s{c}"), "x".to_string())));
    let statuses = publish_all(&server, messages);
    assert_eq!(
        count(&statuses, 200),
        channels * per_channel,
        "channels fit"
    );
    let charged = hub_figure(&server, "charged_bytes");
    assert!(charged <= budget, "charged {charged} of {budget}");
    (rss(&server) - before, charged)
}

/// Item 3: `--history-total-bytes` bounds what the hub really holds. Today's main charged
/// payload only: 1 000 channels × 1 024 empty messages held 235 MiB under a 1 KiB budget. Here
/// 40 000 one-byte messages (about 9 MiB of real memory, unbounded) go to budgets of 2 and 4 MiB:
/// the server grows by what the budget says, within a quarter.
#[test]
fn the_history_budget_bounds_real_memory_within_a_quarter() {
    let (small, charged_small) = hold_small_messages(2 * MIB, 400, 100);
    let (large, charged_large) = hold_small_messages(4 * MIB, 400, 100);
    let slope = (large as f64 - small as f64) / (charged_large as f64 - charged_small as f64);
    eprintln!(
        "RSS growth {small} at 2 MiB ({charged_small} charged), {large} at 4 MiB \
         ({charged_large} charged): {slope:.3} bytes of RSS per byte charged"
    );
    assert!(
        large <= 4 * MIB * 5 / 4 + MIB,
        "{large} bytes under a 4 MiB budget"
    );
    // Charging more than is held only wastes budget; charging less would break the bound, so
    // the upper side is the contract's quarter and the lower one leaves room for malloc's noise.
    assert!((0.6..=1.25).contains(&slope), "slope {slope:.3}");
}

/// Item 4: with the budget full of every channel's newest message, publishing stayed O(channels)
/// (3 186/s at 5 000 channels, 209/s at 40 000). Now a channel that does not fit is refused at
/// once, and publishing to the channels held costs the same at 8× the channels.
#[test]
fn publishing_costs_the_same_when_the_budget_is_full_of_newest_messages() {
    let mut cpu_per_publish = Vec::new();
    for channels in [2_500, 20_000] {
        // Less than the payload alone: the newest messages would pass the budget.
        let budget = channels * KIB * 4 / 5;
        let server =
            TestServer::start(&["--no-demo", "--history-total-bytes", &budget.to_string()]);
        let body = "b".repeat(KIB);
        let fill = publish_all(
            &server,
            (0..channels).map(|i| (format!("f{i}"), body.clone())),
        );
        let (held, refused) = (count(&fill, 200), count(&fill, 503));
        assert_eq!(held + refused, channels);
        assert!(
            refused > 0 && held > channels / 4,
            "{held} held, {refused} refused"
        );
        assert!(hub_figure(&server, "charged_bytes") <= budget);
        let started = server.cpu_time();
        let again = publish_all(
            &server,
            (0..5_000).map(|i| (format!("f{}", i % 100), body.clone())),
        );
        assert_eq!(count(&again, 200), 5_000, "held channels take publishes");
        let spent = server.cpu_time() - started;
        assert!(hub_figure(&server, "charged_bytes") <= budget);
        eprintln!("{channels} channels: {held} held, {refused} refused; 5 000 publishes {spent:?}");
        cpu_per_publish.push(spent);
    }
    assert!(
        cpu_per_publish[1] <= cpu_per_publish[0] * 3 + Duration::from_millis(100),
        "{cpu_per_publish:?}"
    );
}

/// Item 4 on a WebSocket, which cannot be answered 503: a message the hub cannot take closes the
/// socket with 1013 (Try Again Later), and nothing is published.
#[test]
fn a_websocket_message_the_full_hub_cannot_take_is_closed_with_1013() {
    let server = TestServer::start(&["--no-demo", "--history-total-bytes", "65536"]);
    let body = "f".repeat(KIB);
    let fill = publish_all(&server, (0..100).map(|i| (format!("f{i}"), body.clone())));
    assert!(count(&fill, 503) > 0, "the budget is full: {fill:?}");
    // Subscribing is not refused; publishing beside the full budget is.
    let mut ws = RawWs::open(&server, "/ws/w");
    ws.send(&support::ws::masked(true, 0x1, body.as_bytes()));
    assert_eq!(ws.read_close_code(), Some(1013));
    assert_eq!(server.poll("w", None).json()["last_id"], 0);
}

/// Reads one channel from `since=0` the four ways of issue 11's reproduction: a poll, a
/// WebSocket, an SSE stream over HTTP/1.1 and one over HTTP/1.0. Each must see the message.
fn read_four_ways(server: &TestServer, channel: &str, len: usize) {
    let r = server.poll(channel, Some(0));
    assert_eq!(r.status, 200);
    assert_eq!(r.message_ids(), [1]);
    let mut ws = RawWs::open(server, &format!("/ws/{channel}?since=0"));
    let frame = ws.read_frame();
    assert!(
        frame.payload.len() > 2 * len,
        "{} bytes",
        frame.payload.len()
    );
    drop(ws);
    for version in ["1.1", "1.0"] {
        let mut c = server.connect();
        c.send(
            format!("GET /sse/{channel}?last_event_id=0 HTTP/{version}\r\nHost: t\r\n\r\n")
                .as_bytes(),
        );
        // The head, `retry:`, then one `data:` line per line of the payload.
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 64 * 1024];
        while seen < 7 * len && Instant::now() < deadline {
            use std::io::Read;
            match c.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen += n,
                Err(e) => panic!("sse {version}: {e}"),
            }
        }
        assert!(seen >= 7 * len, "sse {version}: {seen} bytes");
    }
}

/// Peak RSS growth of the item 5 run at `channels` × 64 KiB of newlines under `budget`.
fn encodings_run(budget: usize, channels: usize) -> (usize, usize) {
    let server = TestServer::start(&["--no-demo", "--history-total-bytes", &budget.to_string()]);
    let before = rss(&server);
    let body = "\n".repeat(64 * KIB);
    let statuses = publish_all(
        &server,
        (0..channels).map(|i| (format!("n{i}"), body.clone())),
    );
    let held: Vec<usize> = (0..channels).filter(|&i| statuses[i] == 200).collect();
    assert!(held.len() > channels / 2, "{} held", held.len());
    for &i in &held {
        read_four_ways(&server, &format!("n{i}"), 64 * KIB);
    }
    let peak = proc_status(&server, "VmHWM:");
    (peak - before, rss(&server) - before)
}

/// Item 5: every transport's encoding of a replayed message was kept beside it, outside the
/// budget: 512 × 64 KiB of newlines under a 32 MiB budget, read four ways, grew RSS by 610 MiB
/// (19 × the budget; the contract: under 2 × the budget + 32 MiB, 3 × at that size). Here at 2
/// and 4 MiB the peak stays under 3 × the budget and follows it.
#[test]
fn replayed_encodings_stay_within_the_history_budget() {
    let (peak_small, after_small) = encodings_run(2 * MIB, 32);
    let (peak_large, after_large) = encodings_run(4 * MIB, 64);
    eprintln!(
        "peak RSS growth {peak_small} at 2 MiB ({after_small} after), {peak_large} at 4 MiB \
         ({after_large} after)"
    );
    assert!(peak_small < 3 * 2 * MIB, "{peak_small}");
    assert!(peak_large < 3 * 4 * MIB, "{peak_large}");
    let slope = (peak_large as f64 - peak_small as f64) / (2 * MIB) as f64;
    assert!(
        slope < 1.5,
        "peak grows {slope:.2} bytes per byte of budget"
    );
}
