//! The wire ledger against the bytes a client really sent and received: for each transport, what
//! `/stats` says crossed its sockets must equal, to the byte, what the client counted.
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use support::{TestServer, unique_channel, wait_until};

/// A client socket that counts every byte both ways.
struct Counted {
    stream: TcpStream,
    sent: u64,
    received: u64,
    buf: Vec<u8>,
}

impl Counted {
    fn connect(server: &TestServer) -> Counted {
        let stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Counted {
            stream,
            sent: 0,
            received: 0,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.sent += bytes.len() as u64;
    }

    /// Reads until `done` holds for everything received so far.
    fn read_until(&mut self, done: impl Fn(&[u8]) -> bool) {
        let mut chunk = [0u8; 8192];
        while !done(&self.buf) {
            let n = self
                .stream
                .read(&mut chunk)
                .expect("read before the timeout");
            assert!(n > 0, "EOF; got {:?}", String::from_utf8_lossy(&self.buf));
            self.received += n as u64;
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads `count` complete Content-Length or 204 responses.
    fn read_responses(&mut self, count: usize) {
        self.read_until(|b| complete_responses(b) >= count);
    }
}

/// How many complete responses `bytes` holds (Content-Length bodies, or none on 204).
fn complete_responses(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while let Some(end) = find(bytes, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        if bytes.len() < end + 4 + len {
            break;
        }
        bytes = &bytes[end + 4 + len..];
        n += 1;
    }
    n
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn stats(server: &TestServer) -> Value {
    server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json()
}

/// Waits until the ledger of `transport` shows the client's counts, then checks them and returns
/// that transport's figures.
fn assert_ledger_matches(server: &TestServer, transport: &str, sent: u64, received: u64) -> Value {
    let matches = || {
        let t = &stats(server)["transports"][transport];
        t["total_in"] == sent && t["total_out"] == received
    };
    wait_until(Duration::from_secs(5), matches);
    let t = stats(server)["transports"][transport].clone();
    assert_eq!(t["total_in"], sent, "{transport} bytes in: {t}");
    assert_eq!(t["total_out"], received, "{transport} bytes out: {t}");
    let sum = |dir: &str| -> u64 {
        t[dir]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("bytes_in"), sent, "categories add up in: {t}");
    assert_eq!(sum("bytes_out"), received, "categories add up out: {t}");
    t
}

fn publish(server: &TestServer, channel: &str, data: &str) {
    server.publish(channel, data);
}

#[test]
fn poll_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("lp");
    let mut client = Counted::connect(&server);
    for data in ["one", "two \"quoted\"", "three\nlines\n"] {
        publish(&server, &channel, data);
    }
    client.send(format!("GET /poll/{channel}?since=0 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    client.send(format!("GET /poll/{channel}?since=3 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    client.read_responses(2);
    let t = assert_ledger_matches(&server, "poll", client.sent, client.received);
    assert_eq!(t["messages"], 3);
    assert_eq!(t["empty"], 1);
    assert_eq!(t["bytes_out"]["payload"], 3 + 12 + 12);
}

#[test]
fn longpoll_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("lp");
    let mut client = Counted::connect(&server);
    client.send(format!("GET /longpoll/{channel}?since=0 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    wait_until(Duration::from_secs(5), || {
        stats(&server)["transports"]["longpoll"]["requests"] == 1
    });
    publish(&server, &channel, "woken");
    client.read_responses(1);
    client.send(
        format!("GET /longpoll/{channel}?since=1&timeout=0.1 HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    );
    client.read_responses(2);
    let t = assert_ledger_matches(&server, "longpoll", client.sent, client.received);
    assert_eq!(
        (t["messages"].as_u64(), t["empty"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(t["latency_us"]["count"], 1);
}

#[test]
fn publish_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let mut client = Counted::connect(&server);
    client.send(b"POST /pub/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    client.send(b"POST /pub/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    client.read_responses(2);
    let t = assert_ledger_matches(&server, "publish", client.sent, client.received);
    assert_eq!(t["bytes_in"]["payload"], 10);
    assert_eq!(t["bytes_in"]["chunk_framing"], 15);
}

#[test]
fn sse_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("sse");
    publish(&server, &channel, "held");
    let mut client = Counted::connect(&server);
    client
        .send(format!("GET /sse/{channel}?last_event_id=0 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    client.read_until(|b| find(b, b"data: held\n\n\r\n").is_some());
    publish(&server, &channel, "two\r\nlines");
    client.read_until(|b| find(b, b"data: lines\n\n\r\n").is_some());
    let t = assert_ledger_matches(&server, "sse", client.sent, client.received);
    assert_eq!(t["messages"], 2);
    assert_eq!(t["bytes_out"]["payload"], 4 + 8);
    assert_eq!(t["resumes"], 1);
}

#[test]
fn websocket_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("ws");
    let mut client = Counted::connect(&server);
    client.send(
        format!(
            "GET /ws/{channel} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    client.read_until(|b| find(b, b"\r\n\r\n").is_some());
    let key = [1u8, 2, 3, 4];
    let masked = |opcode: u8, payload: &[u8]| -> Vec<u8> {
        let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    };
    client.send(&masked(0x1, b"from the socket"));
    client.read_until(|b| find(b, b"from the socket\"}").is_some());
    client.send(&masked(0x9, b"ping!"));
    client.read_until(|b| find(b, b"\x8a\x05ping!").is_some());
    let t = assert_ledger_matches(&server, "ws", client.sent, client.received);
    assert_eq!(t["bytes_in"]["payload"], 15);
    assert_eq!(t["bytes_in"]["ws_mask_key"], 4);
    assert_eq!(t["bytes_in"]["control_frames"], 2 + 4 + 5);
    assert_eq!(t["bytes_out"]["control_frames"], 2 + 5);
    assert_eq!(t["bytes_out"]["payload"], 15);
}
