//! What each transport costs per delivered message, measured by the ledger: one subscriber per
//! transport on one channel, 100 messages of 32 bytes published one after the other, each received
//! by all four before the next. Run with `cargo test --test overhead -- --nocapture` to see the
//! table the README quotes. It asserts that every transport delivered every message with exactly
//! 32 payload bytes, that each category of overhead is what the formats make it (so many bytes of
//! head, framing and envelope, plus the digits of the ids), and that the README's table says what
//! was measured: its byte and request rows exactly, its syscall rows within 0.05.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;
use support::{Client, TestServer};

const PAYLOAD: &str = "0123456789abcdef0123456789abcdef";
const MESSAGES: u64 = 100;

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(server: &TestServer, request: &[u8]) -> Raw {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(request).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads until `needle` appears, then forgets everything up to it.
    fn read_past(&mut self, needle: &[u8]) {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(i) = self.buf.windows(needle.len()).position(|w| w == needle) {
                self.buf.drain(..i + needle.len());
                return;
            }
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "EOF waiting for {:?}",
                String::from_utf8_lossy(needle)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn stats(server: &TestServer) -> Value {
    server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json()
}

#[test]
fn per_message_cost_of_each_transport() {
    let server = TestServer::start(&[
        "--no-demo",
        "--sse-heartbeat",
        "600",
        "--ws-ping-interval",
        "600",
    ]);
    let ch = "overhead";
    let mut sse = Raw::connect(
        &server,
        format!("GET /sse/{ch} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    );
    sse.read_past(b"retry: 3000\n\n\r\n");
    let mut ws = Raw::connect(
        &server,
        format!(
            "GET /ws/{ch} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    ws.read_past(b"\r\n\r\n");
    let mut poll = server.connect();
    let mut longpoll = server.connect();
    let mut publisher = server.connect();
    let publish = |publisher: &mut Client| {
        publisher.send(&support::publish_request(ch, PAYLOAD));
        assert_eq!(publisher.read_response().status, 200);
    };
    let longpoll_request = |since: u64| {
        format!("GET /longpoll/{ch}?since={since} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes()
    };
    // Warm-up: message 1 opens every path, so what follows is the steady state.
    longpoll.send(&longpoll_request(0));
    publish(&mut publisher);
    assert_eq!(longpoll.read_response().message_ids(), [1]);
    poll.send(&support::poll_request(ch, Some(0)));
    assert_eq!(poll.read_response().message_ids(), [1]);
    sse.read_past(b"id: 1\n");
    ws.read_past(b"\"id\":1,");
    let before = stats(&server);
    for id in 2..=MESSAGES + 1 {
        longpoll.send(&longpoll_request(id - 1));
        // The long-poll is parked before the publish (else it would be answered, not woken).
        support::wait_until(Duration::from_secs(5), || {
            stats(&server)["transports"]["longpoll"]["requests"] == id
        });
        publish(&mut publisher);
        assert_eq!(longpoll.read_response().message_ids(), [id]);
        poll.send(&support::poll_request(ch, Some(id - 1)));
        assert_eq!(poll.read_response().message_ids(), [id]);
        sse.read_past(format!("id: {id}\n").as_bytes());
        ws.read_past(format!("\"id\":{id},").as_bytes());
    }
    let after = stats(&server);
    let delta = |t: &str, path: &[&str]| -> f64 {
        let get = |v: &Value| {
            path.iter()
                .fold(&v["transports"][t], |v, k| &v[*k])
                .as_u64()
                .unwrap()
        };
        (get(&after) - get(&before)) as f64 / MESSAGES as f64
    };
    println!("\n| per message, 32-byte payload | poll | longpoll | sse | ws |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let transports = ["poll", "longpoll", "sse", "ws"];
    let rows: [(&str, &[&str]); 6] = [
        ("bytes server → client", &["total_out"]),
        ("  of which payload", &["bytes_out", "payload"]),
        ("bytes client → server", &["total_in"]),
        ("requests", &["requests"]),
        ("write syscalls", &["write_syscalls"]),
        ("read syscalls", &["read_syscalls"]),
    ];
    let readme = readme_table();
    for (label, path) in rows {
        let cells: Vec<String> = transports
            .iter()
            .map(|t| format!("{:.2}", delta(t, path)))
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
        let quoted = readme
            .iter()
            .find(|(l, _)| l == label.trim())
            .unwrap_or_else(|| panic!("README's table has no row {label:?}"));
        if label.contains("syscalls") {
            // Syscalls depend on how reads and writes meet the event loop: close, not exact.
            for ((t, cell), quoted) in transports.iter().zip(&cells).zip(&quoted.1) {
                let (got, said): (f64, f64) = (cell.parse().unwrap(), quoted.parse().unwrap());
                assert!(
                    (got - said).abs() <= 0.05,
                    "{t} {label}: measured {got}, the README says {said}"
                );
            }
        } else {
            assert_eq!(
                cells, quoted.1,
                "README row {label:?} (right) against the measurement (left)"
            );
        }
    }
    // The ids published run from 2 to 101 and each poll asks since the one before: their digits
    // are the only part of the overhead that varies.
    let ids = 2..=MESSAGES + 1;
    let digits = |n: u64| n.to_string().len() as f64;
    let id_digits = ids.clone().map(digits).sum::<f64>() / MESSAGES as f64;
    let since_digits = ids.map(|id| digits(id - 1)).sum::<f64>() / MESSAGES as f64;
    // Per message, by category: "HTTP/1.1 200 OK" with Date, Content-Type, Content-Length (two
    // digits) and Cache-Control is 133 bytes; the poll body `{"last_id":N,"messages":[{"id":N,
    // "data":"…"}]}` is 43 bytes of envelope and two ids; an SSE event is a chunk (2 hex digits,
    // CRLF, CRLF: 6) around `id: N\n`, `data: …\n` and the blank line (13 + digits); a WebSocket
    // message is a 2-byte frame head around `{"id":N,"data":"…"}` (17 + digits).
    let http_out = [
        ("response_head", 133.0),
        ("json_envelope", 43.0 + 2.0 * id_digits),
    ];
    let expected = [
        ("poll", "bytes_out", http_out.to_vec()),
        ("longpoll", "bytes_out", http_out.to_vec()),
        (
            "sse",
            "bytes_out",
            vec![("chunk_framing", 6.0), ("sse_fields", 13.0 + id_digits)],
        ),
        (
            "ws",
            "bytes_out",
            vec![
                ("ws_frame_header", 2.0),
                ("json_envelope", 17.0 + id_digits),
            ],
        ),
        // "GET /poll/overhead?since=N HTTP/1.1\r\nHost: t\r\n\r\n", and /longpoll/: 4 more.
        (
            "poll",
            "bytes_in",
            vec![("request_head", 47.0 + since_digits)],
        ),
        (
            "longpoll",
            "bytes_in",
            vec![("request_head", 51.0 + since_digits)],
        ),
    ];
    for (t, direction, categories) in expected {
        let mut total = if direction == "bytes_out" { 32.0 } else { 0.0 };
        for (category, per_message) in categories {
            let got = delta(t, &[direction, category]);
            assert!(
                (got - per_message).abs() < 1e-9,
                "{t} {direction} {category}: {got} per message, the format makes it {per_message}"
            );
            total += per_message;
        }
        let measured = delta(
            t,
            &[if direction == "bytes_out" {
                "total_out"
            } else {
                "total_in"
            }],
        );
        assert!(
            (measured - total).abs() < 1e-9,
            "{t} {direction}: {measured} per message, the categories above add up to {total}"
        );
    }
    for t in transports {
        assert_eq!(
            delta(t, &["messages"]),
            1.0,
            "{t} delivered every message once"
        );
        assert_eq!(
            delta(t, &["bytes_out", "payload"]),
            32.0,
            "{t} payload per message"
        );
        let overhead = delta(t, &["total_out"]) - 32.0;
        println!("{t}: {overhead:.2} bytes of overhead per 32-byte message out");
    }
}

/// The rows of the README's "What a 32-byte message costs" table: label and the four cells.
fn readme_table() -> Vec<(String, Vec<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let start = readme
        .find("| per message, 32-byte payload |")
        .expect("the README quotes the table");
    readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect();
            (cells[0].clone(), cells[1..].to_vec())
        })
        .collect()
}
