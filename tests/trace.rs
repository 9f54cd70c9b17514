//! Frame traces over real sockets: one short exchange per transport is traced to a JSON Lines file;
//! the records must match the golden traces (times and ports normalized) and add up, per
//! transport, to exactly what the ledger counted. `PUSHWIRE_BLESS=1 cargo test --test trace`
//! rewrites the golden files after a deliberate change.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::{TestServer, wait_until};

fn trace_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "pushwire-trace-{name}-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn records(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every trace line is JSON"))
        .collect()
}

/// A server tracing to `path`, on one loop: records of successive connections land in the file in
/// the order they happened (with several loops, each appends what it cuts as it cuts it, and two
/// loops can cross by microseconds).
fn traced_server(path: &std::path::Path) -> TestServer {
    TestServer::start(&[
        "--no-demo",
        "--threads",
        "1",
        "--trace-file",
        path.to_str().unwrap(),
    ])
}

/// `transport dir kind summary`, one per record: stable across runs.
fn golden_lines(records: &[Value]) -> String {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}\n",
                r["transport"].as_str().unwrap(),
                r["dir"].as_str().unwrap(),
                r["kind"].as_str().unwrap(),
                r["summary"].as_str().unwrap()
            )
        })
        .collect()
}

fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.trace"));
    if std::env::var_os("PUSHWIRE_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("missing {path:?}; bless it"));
    assert_eq!(actual, expected, "trace differs from {path:?}");
}

/// Sends `request` bytes and reads until `done` holds; the exchange's own connection.
fn exchange(server: &TestServer, parts: &[&[u8]], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for part in parts {
        s.write_all(part).unwrap();
        // Each part is answered before the next goes, so the trace order is fixed.
        let before = got.len();
        while got.len() == before || !done(&got) && parts.last() == Some(part) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "EOF");
            got.extend_from_slice(&buf[..n]);
            if done(&got) {
                break;
            }
        }
    }
    got
}

fn ends_with(needle: &'static [u8]) -> impl Fn(&[u8]) -> bool {
    move |b: &[u8]| b.ends_with(needle)
}

/// Waits until the trace file has `n` records.
fn wait_for_records(path: &PathBuf, n: usize) -> Vec<Value> {
    wait_until(Duration::from_secs(5), || records(path).len() >= n);
    records(path)
}

/// Per transport, the trace's bytes (overhead + payload) equal the ledger's totals.
fn assert_trace_sums_to_ledger(server: &TestServer, records: &[Value]) {
    let mut sums: HashMap<(String, String), u64> = HashMap::new();
    for r in records {
        assert_eq!(
            r["overhead"].as_u64().unwrap() + r["payload"].as_u64().unwrap(),
            r["len"].as_u64().unwrap()
        );
        *sums
            .entry((
                r["transport"].as_str().unwrap().into(),
                r["dir"].as_str().unwrap().into(),
            ))
            .or_default() += r["len"].as_u64().unwrap();
    }
    let stats = server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json();
    for ((transport, dir), bytes) in sums {
        let key = if dir == "<" { "total_in" } else { "total_out" };
        assert_eq!(
            stats["transports"][&transport][key], bytes,
            "{transport} {dir}"
        );
    }
}

#[test]
fn polling_exchange_matches_its_golden_trace_and_the_ledger() {
    let path = trace_file("poll");
    let server = traced_server(&path);
    exchange(
        &server,
        &[b"POST /pub/news HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"],
        ends_with(b"}"),
    );
    exchange(
        &server,
        &[
            b"GET /poll/news?since=0 HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /poll/news?since=1 HTTP/1.1\r\nHost: t\r\n\r\n",
        ],
        ends_with(b"no-store\r\n\r\n"),
    );
    let records = wait_for_records(&path, 8);
    check_golden("poll", &golden_lines(&records));
    assert_trace_sums_to_ledger(&server, &records);
}

#[test]
fn sse_exchange_matches_its_golden_trace_and_the_ledger() {
    let path = trace_file("sse");
    let server = traced_server(&path);
    server.publish("news", "one");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /sse/news HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 0\r\n\r\n")
        .unwrap();
    wait_until(Duration::from_secs(5), || {
        records(&path)
            .iter()
            .any(|r| r["summary"].as_str().unwrap().contains("data=1"))
    });
    server.publish("news", "two\nlines");
    let records = wait_for_records(&path, 12);
    let sse: Vec<Value> = records
        .into_iter()
        .filter(|r| r["transport"] == "sse")
        .collect();
    check_golden("sse", &golden_lines(&sse));
    assert_trace_sums_to_ledger(&server, &sse);
}

#[test]
fn websocket_exchange_matches_its_golden_trace_and_the_ledger() {
    let path = trace_file("ws");
    let server = traced_server(&path);
    let key = [0x37u8, 0xfa, 0x21, 0x3d];
    let masked: Vec<u8> = [0x81, 0x85]
        .into_iter()
        .chain(key)
        .chain(b"Hello".iter().enumerate().map(|(i, b)| b ^ key[i % 4]))
        .collect();
    let ping: Vec<u8> = [0x89, 0x80].into_iter().chain(key).collect();
    let close: Vec<u8> = [0x88, 0x82]
        .into_iter()
        .chain(key)
        .chain([0x03 ^ key[0], 0xe8 ^ key[1]])
        .collect();
    exchange(
        &server,
        &[
            b"GET /ws/news HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            &masked,
            &ping,
            &close,
        ],
        |b| b.ends_with(&[0x88, 0x02, 0x03, 0xe8]),
    );
    let records = wait_for_records(&path, 8);
    check_golden("ws", &golden_lines(&records));
    assert_trace_sums_to_ledger(&server, &records);
}

/// A keep-alive connection whose first request is an observer (`/stats`, never traced) is traced
/// from its next request on: the page's fetch and EventSource reuse such connections. Each TCP
/// connection keeps one id for its life, and ids are never reused by a later connection.
#[test]
fn requests_after_an_observer_on_the_same_connection_are_traced_and_ids_are_unique() {
    let path = trace_file("observer");
    let server = traced_server(&path);
    exchange(
        &server,
        &[b"POST /pub/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"],
        ends_with(b"}"),
    );
    let answers = exchange(
        &server,
        &[
            b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /poll/x?since=0 HTTP/1.1\r\nHost: t\r\n\r\n",
        ],
        ends_with(b"]}"),
    );
    assert_eq!(
        String::from_utf8_lossy(&answers)
            .matches("HTTP/1.1 200")
            .count(),
        2,
        "both requests answered on the one connection"
    );
    exchange(
        &server,
        &[b"POST /pub/x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nho"],
        ends_with(b"}"),
    );
    // Two publishes of 4 records each, and the poll's 3.
    let records = wait_for_records(&path, 11);
    let of = |transport: &str| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| r["transport"] == transport)
            .collect()
    };
    let polls = of("poll");
    let kinds: Vec<(&str, &str)> = polls
        .iter()
        .map(|r| (r["dir"].as_str().unwrap(), r["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("<", "request_head"), (">", "response_head"), (">", "body")],
        "the poll after /stats is traced, request and response: {records:?}"
    );
    assert!(
        records.iter().all(|r| r["transport"] != "untracked"),
        "observers are never traced: {records:?}"
    );
    let conn = |r: &Value| r["conn"].as_u64().unwrap();
    let publishes = of("publish");
    let mut ids: Vec<u64> = vec![
        conn(publishes[0]),
        conn(polls[0]),
        conn(publishes[publishes.len() - 1]),
    ];
    assert_eq!(conn(polls[0]), conn(polls[1]), "one connection, one id");
    ids.dedup();
    assert_eq!(
        ids.len(),
        3,
        "three TCP connections, three ids (slab slots are reused, ids are not): {records:?}"
    );
}

#[test]
fn loops_tracing_to_one_file_at_once_never_cut_into_each_others_lines() {
    const SUBSCRIBERS: usize = 20;
    const MESSAGES: usize = 20;
    let path = trace_file("loops");
    let server = TestServer::start(&[
        "--no-demo",
        "--threads",
        "2",
        "--trace-file",
        path.to_str().unwrap(),
    ]);
    // Subscribers on both loops: each loop appends a record per event it sends, at the same
    // moments as the other.
    let mut streams: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut c = server.connect();
            c.send(b"GET /sse/both HTTP/1.1\r\nHost: t\r\n\r\n");
            assert_eq!(c.read_response_head().status, 200);
            c
        })
        .collect();
    assert!(wait_until(Duration::from_secs(5), || {
        server
            .request(b"GET /stats?channel=both HTTP/1.1\r\nHost: t\r\n\r\n")
            .json()["channel"]["subscribers"]
            == SUBSCRIBERS as u64
    }));
    for i in 0..MESSAGES {
        server.publish("both", &format!("message {i}"));
    }
    let last = format!("id: {MESSAGES}\n");
    for s in &mut streams {
        let mut seen = String::new();
        while !seen.contains(&last) {
            seen.push_str(&String::from_utf8_lossy(&s.read_exact_bytes(1)));
        }
    }
    // A message's chunk is a sent record with payload; the file is read once every line of them
    // is complete, and every line must parse.
    let sent_events = |text: &str| {
        text.lines()
            .filter(|l| l.contains("\"kind\":\"sse_chunk\"") && !l.contains("\"payload\":0,"))
            .count()
    };
    assert!(wait_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.ends_with('\n') && sent_events(&text) >= SUBSCRIBERS * MESSAGES
    }));
    drop(server);
    let events = records(&path)
        .iter()
        .filter(|r| r["kind"] == "sse_chunk" && r["payload"].as_u64() > Some(0))
        .count();
    assert_eq!(events, SUBSCRIBERS * MESSAGES);
}
