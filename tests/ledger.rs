//! The wire ledger against the bytes a client really sent and received: for each transport, what
//! `/stats` says crossed its sockets must equal, to the byte, what the client counted — in total
//! and category by category. The client sorts its own bytes into the ledger's categories by
//! parsing them itself (response heads, JSON bodies, chunks, SSE fields, WebSocket frames), so a
//! category the server stops counting, or counts under another name, fails here.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use support::{TestServer, unique_channel, wait_until};

/// Bytes per ledger category, one direction, as the client counted them.
type Tally = BTreeMap<&'static str, u64>;

fn add(tally: &mut Tally, category: &'static str, n: usize) {
    if n > 0 {
        *tally.entry(category).or_default() += n as u64;
    }
}

/// A client socket that keeps every byte both ways: what it sent, sorted into categories as it
/// built it, and everything received, sorted afterwards by a parser of the transport's format.
struct Counted {
    stream: TcpStream,
    sent: Tally,
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
            sent: Tally::new(),
            buf: Vec::new(),
        }
    }

    /// Sends pieces of known categories in one write.
    fn send(&mut self, pieces: &[(&'static str, &[u8])]) {
        let mut bytes = Vec::new();
        for &(category, piece) in pieces {
            add(&mut self.sent, category, piece.len());
            bytes.extend_from_slice(piece);
        }
        self.stream.write_all(&bytes).unwrap();
    }

    /// Sends a request without a body: all of it is request head.
    fn send_frame(&mut self, frame: Vec<(&'static str, Vec<u8>)>) {
        let pieces: Vec<(&'static str, &[u8])> = frame.iter().map(|(c, b)| (*c, &b[..])).collect();
        self.send(&pieces);
    }

    fn send_head(&mut self, head: &str) {
        self.send(&[("request_head", head.as_bytes())]);
    }

    fn sent_total(&self) -> u64 {
        self.sent.values().sum()
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
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads until the server closes the connection.
    fn read_to_eof(&mut self) {
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "read error before EOF ({e}); got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Reads `count` complete Content-Length or 204 responses.
    fn read_responses(&mut self, count: usize) {
        self.read_until(|b| complete_responses(b) >= count);
    }
}

/// The head of the response at the start of `bytes` and its Content-Length (0 when absent).
fn response_at(bytes: &[u8]) -> Option<(usize, usize)> {
    let end = find(bytes, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    Some((end, len))
}

/// How many complete responses `bytes` holds (Content-Length bodies, or none on 204).
fn complete_responses(mut bytes: &[u8]) -> usize {
    let mut n = 0;
    while let Some((head, len)) = response_at(bytes) {
        if bytes.len() < head + len {
            break;
        }
        bytes = &bytes[head + len..];
        n += 1;
    }
    n
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A JSON body that carries published messages (`{"id":N,"data":"…"}`, alone or in a poll
/// answer's `messages`): the payload is the messages' text itself; quotes, names, ids and escapes
/// are envelope.
fn classify_json_body(body: &[u8], tally: &mut Tally) {
    let json: Value = serde_json::from_slice(body).expect("JSON body");
    let messages = match json.get("messages") {
        Some(list) => list.as_array().unwrap().clone(),
        None => vec![json],
    };
    let payload: usize = messages
        .iter()
        .map(|m| m["data"].as_str().expect("data").len())
        .sum();
    add(tally, "payload", payload);
    add(tally, "json_envelope", body.len() - payload);
}

/// Complete Content-Length responses, heads as `response_head`, each body sorted by `body`.
fn classify_responses(mut bytes: &[u8], mut body: impl FnMut(&[u8], &mut Tally)) -> Tally {
    let mut tally = Tally::new();
    while !bytes.is_empty() {
        let (head, len) = response_at(bytes).expect("a complete response head");
        add(&mut tally, "response_head", head);
        body(&bytes[head..head + len], &mut tally);
        bytes = &bytes[head + len..];
    }
    tally
}

/// An event stream: the response head, then one chunk per event or heartbeat comment. A comment
/// chunk is `heartbeats` whole (framing included); an event's chunk framing is `chunk_framing`,
/// its `data:` values `payload`, and every other byte of the event `sse_fields`.
fn classify_event_stream(bytes: &[u8]) -> Tally {
    let mut tally = Tally::new();
    let head = find(bytes, b"\r\n\r\n").expect("event-stream head") + 4;
    add(&mut tally, "response_head", head);
    let mut rest = &bytes[head..];
    while !rest.is_empty() {
        let line_end = find(rest, b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16)
            .expect("hex chunk size");
        let framing = line_end + 2 + if size > 0 { 2 } else { 0 };
        let data = &rest[line_end + 2..line_end + 2 + size];
        if data.starts_with(b":") {
            add(&mut tally, "heartbeats", framing + size);
        } else {
            add(&mut tally, "chunk_framing", framing);
            let payload: usize = data
                .split(|&b| b == b'\n')
                .filter_map(|line| line.strip_prefix(b"data: "))
                .map(<[u8]>::len)
                .sum();
            add(&mut tally, "payload", payload);
            add(&mut tally, "sse_fields", size - payload);
        }
        if size > 0 {
            assert_eq!(&rest[line_end + 2 + size..framing + size], b"\r\n");
        }
        rest = &rest[framing + size..];
    }
    tally
}

/// A WebSocket server stream: the 101 answer, then unmasked frames. Control frames are
/// `control_frames` whole; a data frame's head is `ws_frame_header` and its JSON body is split
/// into payload and envelope.
fn classify_ws_stream(bytes: &[u8]) -> Tally {
    let mut tally = Tally::new();
    let head = find(bytes, b"\r\n\r\n").expect("101 head") + 4;
    add(&mut tally, "ws_handshake", head);
    let mut rest = &bytes[head..];
    while !rest.is_empty() {
        assert_eq!(rest[1] & 0x80, 0, "server frames are not masked");
        let (head_len, len) = match rest[1] & 0x7f {
            126 => (4, u16::from_be_bytes([rest[2], rest[3]]) as usize),
            127 => (
                10,
                u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize,
            ),
            n => (2, n as usize),
        };
        if rest[0] & 0x08 != 0 {
            add(&mut tally, "control_frames", head_len + len);
        } else {
            add(&mut tally, "ws_frame_header", head_len);
            classify_json_body(&rest[head_len..head_len + len], &mut tally);
        }
        rest = &rest[head_len + len..];
    }
    tally
}

fn stats(server: &TestServer) -> Value {
    server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json()
}

/// The ledger's categories of one direction, without the zeros.
fn ledger_tally(t: &Value, direction: &str) -> BTreeMap<String, u64> {
    t[direction]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|&(_, v)| v > 0)
        .collect()
}

fn owned(tally: &Tally) -> BTreeMap<String, u64> {
    tally.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Waits until the ledger of `transport` shows the client's totals, then checks every category
/// both ways against the client's counts; returns that transport's figures.
fn assert_ledger_matches(server: &TestServer, transport: &str, sent: &Tally, got: &Tally) -> Value {
    let (sent_total, got_total): (u64, u64) = (sent.values().sum(), got.values().sum());
    let matches = || {
        let t = &stats(server)["transports"][transport];
        t["total_in"] == sent_total && t["total_out"] == got_total
    };
    wait_until(Duration::from_secs(5), matches);
    let t = stats(server)["transports"][transport].clone();
    assert_eq!(t["total_in"], sent_total, "{transport} bytes in: {t}");
    assert_eq!(t["total_out"], got_total, "{transport} bytes out: {t}");
    assert_eq!(
        ledger_tally(&t, "bytes_in"),
        owned(sent),
        "{transport}: ledger categories in (left) against the client's count (right)"
    );
    assert_eq!(
        ledger_tally(&t, "bytes_out"),
        owned(got),
        "{transport}: ledger categories out (left) against the client's count (right)"
    );
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
    client.send_head(&format!(
        "GET /poll/{channel}?since=0 HTTP/1.1\r\nHost: t\r\n\r\n"
    ));
    client.send_head(&format!(
        "GET /poll/{channel}?since=3 HTTP/1.1\r\nHost: t\r\n\r\n"
    ));
    client.read_responses(2);
    let got = classify_responses(&client.buf, classify_json_body_if_any);
    let t = assert_ledger_matches(&server, "poll", &client.sent, &got);
    assert_eq!(t["messages"], 3);
    assert_eq!(t["empty"], 1);
    assert_eq!(t["bytes_out"]["payload"], 3 + 12 + 12);
}

fn classify_json_body_if_any(body: &[u8], tally: &mut Tally) {
    if !body.is_empty() {
        classify_json_body(body, tally);
    }
}

#[test]
fn longpoll_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("lp");
    let mut client = Counted::connect(&server);
    client.send_head(&format!(
        "GET /longpoll/{channel}?since=0 HTTP/1.1\r\nHost: t\r\n\r\n"
    ));
    wait_until(Duration::from_secs(5), || {
        stats(&server)["transports"]["longpoll"]["requests"] == 1
    });
    publish(&server, &channel, "woken");
    client.read_responses(1);
    client.send_head(&format!(
        "GET /longpoll/{channel}?since=1&timeout=0.1 HTTP/1.1\r\nHost: t\r\n\r\n"
    ));
    client.read_responses(2);
    let got = classify_responses(&client.buf, classify_json_body_if_any);
    let t = assert_ledger_matches(&server, "longpoll", &client.sent, &got);
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
    client.send(&[
        (
            "request_head",
            b"POST /pub/a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n",
        ),
        ("payload", b"hello"),
    ]);
    client.send(&[
        (
            "request_head",
            b"POST /pub/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        ("chunk_framing", b"3\r\n"),
        ("payload", b"abc"),
        ("chunk_framing", b"\r\n2\r\n"),
        ("payload", b"de"),
        ("chunk_framing", b"\r\n0\r\n\r\n"),
    ]);
    client.read_responses(2);
    // The answers ({"channel":"a","id":N}) carry no message: all envelope.
    let got = classify_responses(&client.buf, |body, tally| {
        add(tally, "json_envelope", body.len())
    });
    let t = assert_ledger_matches(&server, "publish", &client.sent, &got);
    assert_eq!(t["bytes_in"]["payload"], 10);
    assert_eq!(t["bytes_in"]["chunk_framing"], 15);
}

#[test]
fn sse_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("sse");
    publish(&server, &channel, "held");
    let mut client = Counted::connect(&server);
    client.send_head(&format!(
        "GET /sse/{channel}?last_event_id=0 HTTP/1.1\r\nHost: t\r\n\r\n"
    ));
    client.read_until(|b| find(b, b"data: held\n\n\r\n").is_some());
    publish(&server, &channel, "two\r\nlines");
    client.read_until(|b| find(b, b"data: lines\n\n\r\n").is_some());
    let got = classify_event_stream(&client.buf);
    let t = assert_ledger_matches(&server, "sse", &client.sent, &got);
    assert_eq!(t["messages"], 2);
    assert_eq!(t["bytes_out"]["payload"], 4 + 8);
    assert_eq!(t["resumes"], 1);
}

/// Heartbeats on a fixed short schedule, events between them, bytes the client sends on the
/// one-way stream (read and counted as `other`), and the end of the stream from the server's side
/// (`/drop`): every category of the stream, heartbeats included, equals the client's count.
#[test]
fn sse_heartbeats_and_ignored_input_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo", "--sse-heartbeat", "0.05"]);
    let channel = unique_channel("beat");
    let mut client = Counted::connect(&server);
    client.send_head(&format!("GET /sse/{channel} HTTP/1.1\r\nHost: t\r\n\r\n"));
    let heartbeat = b"c\r\n: heartbeat\n\r\n";
    let beats = |b: &[u8]| {
        b.windows(heartbeat.len())
            .filter(|w| w == heartbeat)
            .count()
    };
    client.read_until(|b| beats(b) >= 2);
    publish(&server, &channel, "between beats");
    client.read_until(|b| find(b, b"data: between beats\n\n\r\n").is_some());
    client.read_until(|b| beats(b) >= 4);
    // An event stream is one-way: what the client sends is read, dropped and counted as other.
    client.send(&[("other", b"ignored by the server\n")]);
    let sent_total = client.sent_total();
    assert!(wait_until(
        Duration::from_secs(5),
        || stats(&server)["transports"]["sse"]["total_in"] == sent_total
    ));
    let r = server.request(b"POST /drop/sse HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.json()["dropped"], 1, "{r:?}");
    client.read_to_eof();
    let got = classify_event_stream(&client.buf);
    assert!(got["heartbeats"] >= 4 * 17, "{got:?}");
    let t = assert_ledger_matches(&server, "sse", &client.sent, &got);
    assert_eq!(t["messages"], 1);
}

/// Refused requests that keep the connection: unknown paths, and a bad channel name on a
/// transport's route. Refused before a route was known, they belong to `other`; the refusal's head
/// is `response_head` and its explanatory text `other`.
#[test]
fn refusals_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let mut client = Counted::connect(&server);
    client.send_head("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    client.read_responses(1);
    client.send_head("GET /nowhere/else?x=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    client.send_head("GET /poll/bad!name HTTP/1.1\r\nHost: t\r\n\r\n");
    client.read_responses(3);
    assert!(find(&client.buf, b"HTTP/1.1 400 ").is_some());
    let got = classify_responses(&client.buf, refusal_body);
    assert!(got["other"] > 0, "{got:?}");
    let t = assert_ledger_matches(&server, "other", &client.sent, &got);
    assert_eq!(t["responses"], 3);
}

fn refusal_body(body: &[u8], tally: &mut Tally) {
    add(tally, "other", body.len());
}

/// A head that does not parse is answered 400 and the connection closes; its bytes crossed the
/// socket like any others and belong in the ledger (`other` transport, as the request head).
#[test]
fn a_head_that_does_not_parse_is_counted() {
    let server = TestServer::start(&["--no-demo"]);
    let mut client = Counted::connect(&server);
    client.send_head("GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n");
    client.read_responses(1);
    // Whitespace before the colon: 400, and the connection closes.
    client.send_head("GET /poll/c HTTP/1.1\r\nHost : t\r\n\r\n");
    client.read_to_eof();
    assert_eq!(complete_responses(&client.buf), 2);
    let got = classify_responses(&client.buf, refusal_body);
    assert_ledger_matches(&server, "other", &client.sent, &got);
}

#[test]
fn websocket_bytes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("ws");
    let mut client = Counted::connect(&server);
    open_ws(&mut client, &channel);
    client.send_frame(masked_frame(0x1, b"from the socket"));
    client.read_until(|b| find(b, b"from the socket\"}").is_some());
    client.send_frame(masked_frame(0x9, b"ping!"));
    client.read_until(|b| find(b, b"\x8a\x05ping!").is_some());
    let got = classify_ws_stream(&client.buf);
    let t = assert_ledger_matches(&server, "ws", &client.sent, &got);
    assert_eq!(t["bytes_in"]["payload"], 15);
    assert_eq!(t["bytes_in"]["ws_mask_key"], 4);
    assert_eq!(t["bytes_in"]["control_frames"], 2 + 4 + 5);
    assert_eq!(t["bytes_out"]["control_frames"], 2 + 5);
    assert_eq!(t["bytes_out"]["payload"], 15);
}

/// Both close handshakes: the client closes one socket (the server echoes its code), the server
/// closes another (1003: binary on a channel) and the client answers. Close frames both ways are
/// `control_frames`, to the byte, and the client reads to the end of TCP.
#[test]
fn websocket_closes_match_the_ledger_exactly() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("close");

    let mut client = Counted::connect(&server);
    open_ws(&mut client, &channel);
    client.send_frame(masked_frame(0x1, b"before the close"));
    client.read_until(|b| find(b, b"before the close\"}").is_some());
    client.send_frame(masked_frame(0x8, &[0x03, 0xe8, b'b', b'y', b'e']));
    client.read_to_eof();
    assert!(client.buf.ends_with(b"\x88\x02\x03\xe8"), "close echoed");

    let mut refused = Counted::connect(&server);
    open_ws(&mut refused, &channel);
    refused.send_frame(masked_frame(0x2, b"binary"));
    refused.read_until(|b| find(b, b"\x88").is_some_and(|i| b.len() >= i + 2 + b[i + 1] as usize));
    let close = &refused.buf[find(&refused.buf, b"\x88").unwrap()..];
    assert_eq!(&close[2..4], &1003u16.to_be_bytes());
    refused.send_frame(masked_frame(0x8, &1003u16.to_be_bytes()));
    refused.read_to_eof();

    let mut sent = client.sent.clone();
    let mut got = classify_ws_stream(&client.buf);
    for (k, v) in &refused.sent {
        *sent.entry(k).or_default() += v;
    }
    for (k, v) in classify_ws_stream(&refused.buf) {
        *got.entry(k).or_default() += v;
    }
    let t = assert_ledger_matches(&server, "ws", &sent, &got);
    // Ours: 2 + 4 + 5 and 2 + 4 + 2; the server's: 2 + 2 and 2 + 2 + its reason.
    assert_eq!(t["bytes_in"]["control_frames"], 11 + 8);
    assert!(got["control_frames"] > 4 + 4, "{got:?}");
}

fn open_ws(client: &mut Counted, channel: &str) {
    let head = format!(
        "GET /ws/{channel} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    client.send(&[("ws_handshake", head.as_bytes())]);
    client.read_until(|b| find(b, b"\r\n\r\n").is_some());
}

/// A masked client frame (payload under 126 bytes), as pieces with their categories.
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let key = [1u8, 2, 3, 4];
    let head = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    let masked = payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    let categories = if opcode & 0x08 != 0 {
        ["control_frames"; 3]
    } else {
        ["ws_frame_header", "ws_mask_key", "payload"]
    };
    categories
        .into_iter()
        .zip([head, key.to_vec(), masked])
        .collect()
}
