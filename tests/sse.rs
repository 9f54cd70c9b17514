//! Server-Sent Events over real sockets: the stream head, live delivery, multi-line payloads,
//! resume by Last-Event-ID and by query while publishing goes on, gap and reset events, heartbeats,
//! slow subscribers, HTTP/1.0, and curl as an independent client.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pushwire::http1::chunked::ChunkedDecoder;
use pushwire::sse::{Event, Parser};
use support::{Client, TestServer, unique_channel};

/// An SSE client over a raw socket: reads the head by hand, undoes chunking, parses events.
struct SseClient {
    client: Client,
    head: String,
    chunks: Option<ChunkedDecoder>,
    parser: Parser,
    events: VecDeque<Event>,
    /// Every byte of the body after de-chunking (for checks on comments).
    body: Vec<u8>,
}

impl SseClient {
    fn open(server: &TestServer, target: &str, extra: &str, version: &str) -> SseClient {
        let mut client = server.connect();
        client.send(format!("GET {target} {version}\r\nHost: t\r\n{extra}\r\n").as_bytes());
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.extend(client.read_exact_bytes(1));
        }
        let head = String::from_utf8(head).unwrap();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        SseClient {
            client,
            head,
            chunks: chunked.then(ChunkedDecoder::new),
            parser: Parser::new(),
            events: VecDeque::new(),
            body: Vec::new(),
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn read_more(&mut self) {
        let bytes = self.client.read_exact_bytes(1);
        let data = match &mut self.chunks {
            Some(decoder) => {
                let mut out = Vec::new();
                decoder
                    .decode(&bytes, &mut out)
                    .expect("valid chunked coding");
                out
            }
            None => bytes,
        };
        self.body.extend_from_slice(&data);
        self.events.extend(self.parser.feed(&data));
    }

    fn next_event(&mut self) -> Event {
        loop {
            if let Some(e) = self.events.pop_front() {
                return e;
            }
            self.read_more();
        }
    }

    fn next_message(&mut self) -> (u64, String) {
        let e = self.next_event();
        assert_eq!(e.event_type, "message", "{e:?}");
        (e.last_event_id.parse().unwrap(), e.data)
    }
}

#[test]
fn stream_has_the_event_stream_head_and_tells_retry_first() {
    let server = TestServer::start(&["--sse-retry", "2.5"]);
    let mut sse = SseClient::open(
        &server,
        &format!("/sse/{}", unique_channel("h")),
        "",
        "HTTP/1.1",
    );
    assert!(sse.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", sse.head);
    assert_eq!(
        sse.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    assert_eq!(sse.header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(sse.header("x-accel-buffering").as_deref(), Some("no"));
    assert_eq!(sse.header("transfer-encoding").as_deref(), Some("chunked"));
    assert_eq!(
        sse.client.read_exact_bytes(18),
        b"d\r\nretry: 2500\n\n\r\n"[..].to_vec()
    );
}

#[test]
fn live_messages_arrive_as_events_with_ids() {
    let server = TestServer::start(&[]);
    let channel = unique_channel("live");
    server.publish(&channel, "before: not sent without an id");
    let mut sse = SseClient::open(&server, &format!("/sse/{channel}"), "", "HTTP/1.1");
    server.publish(&channel, "first");
    server.publish(&channel, "second");
    assert_eq!(sse.next_message(), (2, "first".into()));
    assert_eq!(sse.next_message(), (3, "second".into()));
    assert_eq!(sse.parser.retry(), Some(3000));
}

#[test]
fn multi_line_payloads_come_back_with_every_kind_of_line_end() {
    let server = TestServer::start(&[]);
    let channel = unique_channel("lines");
    let mut sse = SseClient::open(&server, &format!("/sse/{channel}"), "", "HTTP/1.1");
    let cases = [
        ("a\nb", "a\nb"),
        ("a\r\nb", "a\nb"),
        ("a\rb", "a\nb"),
        ("end with newline\n", "end with newline\n"),
        ("\n\n", "\n\n"),
        (" leading space: kept", " leading space: kept"),
    ];
    for (published, _) in cases {
        server.publish(&channel, published);
    }
    for (published, seen) in cases {
        assert_eq!(sse.next_message().1, seen, "published {published:?}");
    }
}

/// Opens a stream resuming after `resume_after` while another thread keeps publishing, and checks
/// every id after it arrives exactly once, in order.
fn resume_while_publishing(by_header: bool) {
    let server = TestServer::start(&["--history-messages", "1000"]);
    let channel = unique_channel("resume");
    for i in 1..=50 {
        server.publish(&channel, &format!("m{i}"));
    }
    let publisher = {
        let addr = server.addr;
        let channel = channel.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            for i in 51..=300 {
                c.send(&support::publish_request(&channel, &format!("m{i}")));
                assert_eq!(c.read_response().status, 200);
            }
        })
    };
    let mut sse = if by_header {
        SseClient::open(
            &server,
            &format!("/sse/{channel}"),
            "Last-Event-ID: 20\r\n",
            "HTTP/1.1",
        )
    } else {
        SseClient::open(
            &server,
            &format!("/sse/{channel}?last_event_id=20"),
            "",
            "HTTP/1.1",
        )
    };
    let ids: Vec<u64> = (21..=300).map(|_| sse.next_message().0).collect();
    assert_eq!(ids, (21..=300).collect::<Vec<_>>());
    publisher.join().unwrap();
}

#[test]
fn resumes_from_last_event_id_header_while_publishing_continues() {
    resume_while_publishing(true);
}

#[test]
fn resumes_from_last_event_id_query_while_publishing_continues() {
    resume_while_publishing(false);
}

#[test]
fn a_resume_point_no_longer_held_gets_a_gap_event() {
    let server = TestServer::start(&["--history-messages", "3"]);
    let channel = unique_channel("gap");
    for i in 1..=5 {
        server.publish(&channel, &format!("m{i}"));
    }
    let mut sse = SseClient::open(
        &server,
        &format!("/sse/{channel}"),
        "Last-Event-ID: 1\r\n",
        "HTTP/1.1",
    );
    let gap = sse.next_event();
    assert_eq!(gap.event_type, "gap");
    assert_eq!(gap.data, r#"{"from":2,"to":2}"#);
    assert_eq!(gap.last_event_id, "", "a gap event carries no id");
    assert_eq!(sse.next_message(), (3, "m3".into()));
    assert_eq!(sse.next_message(), (4, "m4".into()));
    assert_eq!(sse.next_message(), (5, "m5".into()));
}

#[test]
fn a_resume_point_from_the_future_gets_a_reset_event() {
    let server = TestServer::start(&[]);
    let channel = unique_channel("reset");
    server.publish(&channel, "only");
    let mut sse = SseClient::open(
        &server,
        &format!("/sse/{channel}?last_event_id=500"),
        "",
        "HTTP/1.1",
    );
    let reset = sse.next_event();
    assert_eq!(
        (reset.event_type.as_str(), reset.data.as_str()),
        ("reset", r#"{"last_id":1}"#)
    );
    assert_eq!(sse.next_message(), (1, "only".into()));
}

#[test]
fn bad_last_event_id_is_refused_with_400() {
    let server = TestServer::start(&[]);
    let r = server.request(b"GET /sse/c?last_event_id=x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 400);
}

#[test]
fn idle_stream_gets_heartbeats() {
    let server = TestServer::start(&["--sse-heartbeat", "0.1"]);
    let mut sse = SseClient::open(
        &server,
        &format!("/sse/{}", unique_channel("hb")),
        "",
        "HTTP/1.1",
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let heartbeats = |body: &[u8]| {
        String::from_utf8_lossy(body)
            .matches(": heartbeat\n")
            .count()
    };
    while heartbeats(&sse.body) < 3 {
        assert!(
            Instant::now() < deadline,
            "no heartbeats: {:?}",
            String::from_utf8_lossy(&sse.body)
        );
        sse.read_more();
    }
    assert!(sse.events.is_empty(), "heartbeats are comments, not events");
}

#[test]
fn http10_client_gets_a_close_delimited_stream() {
    let server = TestServer::start(&[]);
    let channel = unique_channel("h10");
    let mut sse = SseClient::open(&server, &format!("/sse/{channel}"), "", "HTTP/1.0");
    assert!(sse.head.starts_with("HTTP/1.0 200 OK\r\n"));
    assert_eq!(sse.header("transfer-encoding"), None);
    assert_eq!(sse.header("connection").as_deref(), Some("close"));
    server.publish(&channel, "plain");
    assert_eq!(sse.next_message(), (1, "plain".into()));
}

#[test]
fn slow_subscriber_is_cut_off_while_a_normal_one_keeps_receiving() {
    let server = TestServer::start(&["--max-pending-output", "200000"]);
    let channel = unique_channel("slow");
    let mut slow = SseClient::open(&server, &format!("/sse/{channel}"), "", "HTTP/1.1");
    let mut normal = SseClient::open(&server, &format!("/sse/{channel}"), "", "HTTP/1.1");
    let payload = "y".repeat(60_000);
    for i in 1..=300u64 {
        server.publish(&channel, &payload);
        assert_eq!(normal.next_message().0, i);
    }
    // The slow one was ended: reading it runs into the end of the connection before id 300.
    let mut last = 0;
    let mut bytes = Vec::new();
    let end = std::io::Read::read_to_end(&mut slow.client.stream, &mut bytes);
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the slow stream was not ended: {end:?}"
    );
    for line in String::from_utf8_lossy(&bytes).lines() {
        if let Some(id) = line.strip_prefix("id: ") {
            last = id.parse().unwrap();
        }
    }
    assert!(
        last < 300,
        "slow subscriber got everything ({last}): it was not cut off"
    );
    server.publish(&channel, "after");
    assert_eq!(normal.next_message(), (301, "after".into()));
}

#[test]
fn curl_receives_the_stream() {
    let server = TestServer::start(&[]);
    let channel = unique_channel("curl");
    server.publish(&channel, "one");
    server.publish(&channel, "two\nlines");
    let mut curl = Command::new("curl")
        .args(["-sN", "--max-time", "10"])
        .arg(format!(
            "http://{}/sse/{channel}?last_event_id=0",
            server.addr
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl is installed");
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 6 {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("retry") || line.is_empty() => {}
            Some(Ok(line)) => seen.push(line),
            other => panic!("curl stream ended early: {other:?} after {seen:?}"),
        }
        if seen.len() == 5 {
            server.publish(&channel, "three");
        }
    }
    let _ = curl.kill();
    let _ = curl.wait();
    assert_eq!(
        seen,
        [
            "id: 1",
            "data: one",
            "id: 2",
            "data: two",
            "data: lines",
            "id: 3"
        ]
    );
}
