//! WebSocket over real sockets: the handshake, an independent client (tungstenite) on /echo and on
//! channels, and literal frames for every protocol rule, each checked by the close code it earns.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::ws::{RawWs, UPGRADE_HEADERS, frame, masked, upgrade_request};
use support::{TestServer, assert_still_serving, unique_channel};
use tungstenite::Message;

fn tungstenite_client(
    server: &TestServer,
    path: &str,
) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>> {
    let (ws, response) =
        tungstenite::connect(format!("ws://{}{path}", server.addr)).expect("connect");
    assert_eq!(response.status(), 101);
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws
}

#[test]
fn handshake_answers_the_rfc_example_key() {
    let server = TestServer::start(&[]);
    let response = server.request(&upgrade_request("/echo"));
    assert_eq!(response.status, 101);
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(
        response.header("upgrade").map(str::to_lowercase),
        Some("websocket".into())
    );
}

#[test]
fn handshake_accepts_firefox_connection_token_list_and_any_case() {
    let server = TestServer::start(&[]);
    let request = "GET /echo HTTP/1.1\r\nHost: t\r\nupgrade: WebSocket\r\n\
        connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        sec-websocket-version: 13\r\n\r\n";
    assert_eq!(server.request(request.as_bytes()).status, 101);
}

#[test]
fn handshake_errors_get_the_status_the_rfc_asks_for() {
    let server = TestServer::start(&[]);
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let up = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    /// A request, the status it gets, and a header that status must carry.
    type Case = (String, u16, Option<(&'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            format!("GET /echo HTTP/1.1\r\nHost: t\r\n{up}{key}Sec-WebSocket-Version: 8\r\n\r\n"),
            426,
            Some(("sec-websocket-version", "13")),
        ),
        (
            format!("GET /echo HTTP/1.1\r\nHost: t\r\n{up}Sec-WebSocket-Version: 13\r\n\r\n"),
            400,
            None,
        ),
        (
            format!(
                "GET /echo HTTP/1.1\r\nHost: t\r\n{up}Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ),
            400,
            None,
        ),
        (
            format!("POST /ws/c HTTP/1.1\r\nHost: t\r\n{up}{key}Sec-WebSocket-Version: 13\r\n\r\n"),
            400,
            None,
        ),
        (
            format!("GET /echo HTTP/1.0\r\n{up}{key}Sec-WebSocket-Version: 13\r\n\r\n"),
            400,
            None,
        ),
        (
            "GET /ws/c HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            426,
            Some(("upgrade", "websocket")),
        ),
    ];
    for (request, status, header) in cases {
        let response = server.request(request.as_bytes());
        assert_eq!(response.status, status, "{request:?}");
        if let Some((name, value)) = header {
            assert_eq!(response.header(name), Some(value), "{request:?}");
        }
    }
    assert_still_serving(&server);
}

#[test]
fn origin_allow_list_refuses_other_origins_with_403() {
    let server = TestServer::start(&["--allowed-origin", "http://good.example"]);
    let with_origin = |origin: &str| {
        format!("GET /echo HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n{UPGRADE_HEADERS}\r\n")
    };
    assert_eq!(
        server
            .request(with_origin("http://evil.example").as_bytes())
            .status,
        403
    );
    // No Origin at all: no browser (they always send one), so no cross-site page; accepted.
    assert_eq!(server.request(&upgrade_request("/echo")).status, 101);
    assert_eq!(
        server
            .request(with_origin("http://good.example").as_bytes())
            .status,
        101
    );
}

#[test]
fn echo_interoperates_with_tungstenite_at_every_length_encoding() {
    let server = TestServer::start(&["--max-message-size", "2000000"]);
    let mut ws = tungstenite_client(&server, "/echo");
    for len in [0usize, 1, 125, 126, 65_535, 65_536, 1 << 20] {
        let text: String = (0..len)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        ws.send(Message::text(text.clone())).unwrap();
        assert_eq!(
            ws.read().unwrap(),
            Message::text(text),
            "text of {len} bytes"
        );
        let binary: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        ws.send(Message::binary(binary.clone())).unwrap();
        assert_eq!(
            ws.read().unwrap(),
            Message::binary(binary),
            "binary of {len} bytes"
        );
    }
    ws.close(None).unwrap();
}

#[test]
fn echo_reassembles_fragments_with_a_ping_in_between() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::open(&server, "/echo");
    let mut bytes = masked(false, 0x1, "héllo ".as_bytes());
    bytes.extend(masked(true, 0x9, b"mid"));
    bytes.extend(masked(false, 0x0, &[0xf0, 0x9f]));
    bytes.extend(masked(true, 0x0, &[0x98, 0x80]));
    // One byte at a time, as a slow network would deliver it.
    for b in &bytes {
        ws.send(std::slice::from_ref(b));
    }
    let pong = ws.read_frame();
    assert_eq!((pong.opcode, pong.payload.as_slice()), (0xA, &b"mid"[..]));
    assert_eq!(ws.text(), "héllo 😀");
}

#[test]
fn protocol_violations_are_closed_with_the_right_code() {
    let server = TestServer::start(&["--max-message-size", "1000"]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("unmasked frame", frame(true, 0x1, b"hi", None), 1002),
        ("reserved opcode", masked(true, 0x3, b""), 1002),
        ("rsv bit", vec![0xC1, 0x80, 1, 2, 3, 4], 1002),
        ("long ping", masked(true, 0x9, &[0; 126]), 1002),
        ("fragmented ping", masked(false, 0x9, b""), 1002),
        ("continuation without start", masked(true, 0x0, b"x"), 1002),
        (
            "text inside fragmented text",
            [masked(false, 0x1, b"a"), masked(true, 0x1, b"b")].concat(),
            1002,
        ),
        (
            "invalid utf-8",
            masked(
                true,
                0x1,
                &[
                    0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
                ],
            ),
            1007,
        ),
        ("too big", masked(true, 0x2, &[0; 1001]), 1009),
        ("close with one byte", masked(true, 0x8, &[3]), 1002),
        (
            "close with code 1005",
            masked(true, 0x8, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "close with bad utf-8 reason",
            masked(true, 0x8, &[0x03, 0xe8, 0xff]),
            1007,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut ws = RawWs::open(&server, "/echo");
        ws.send(&bytes);
        assert_eq!(ws.read_close_code(), Some(code), "{what}");
        ws.answer_close();
        ws.client.assert_closed();
    }
    assert_still_serving(&server);
}

#[test]
fn invalid_utf8_fails_fast_before_the_frame_ends() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::open(&server, "/echo");
    // The head announces 20 bytes; only the first 4, already invalid, are sent.
    let full = masked(
        true,
        0x1,
        &[
            b'a', 0xf4, 0x90, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    ws.send(&full[..2 + 4 + 4]);
    assert_eq!(ws.read_close_code(), Some(1007));
}

#[test]
fn client_close_is_echoed_and_tcp_closed() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::open(&server, "/echo");
    ws.send(&masked(true, 0x8, &[0x03, 0xe8, b'b', b'y', b'e']));
    let reply = ws.read_frame();
    assert_eq!(
        (reply.opcode, &reply.payload[..2]),
        (0x8, &[0x03, 0xe8][..])
    );
    ws.client.assert_closed();
}

#[test]
fn channel_socket_receives_backlog_then_live_messages_from_every_publisher() {
    let server = TestServer::start(&[]);
    let channel = unique_channel("ws");
    server.publish(&channel, "before");
    let mut ws = RawWs::open(&server, &format!("/ws/{channel}?since=0"));
    assert_eq!(ws.text(), r#"{"id":1,"data":"before"}"#);
    server.publish(&channel, "over http");
    assert_eq!(ws.text(), r#"{"id":2,"data":"over http"}"#);
    // What a socket sends is published to the channel, and comes back to it too.
    ws.send(&masked(true, 0x1, b"from the socket"));
    assert_eq!(ws.text(), r#"{"id":3,"data":"from the socket"}"#);
    assert_eq!(
        server.poll(&channel, Some(2)).message_data(),
        ["from the socket"]
    );
}

#[test]
fn channel_socket_tells_a_gap_and_a_reset() {
    let server = TestServer::start(&["--history-messages", "2"]);
    let channel = unique_channel("wsgap");
    for m in ["a", "b", "c", "d"] {
        server.publish(&channel, m);
    }
    let mut ws = RawWs::open(&server, &format!("/ws/{channel}?since=1"));
    assert_eq!(ws.text(), r#"{"gap":{"from":2,"to":2}}"#);
    assert_eq!(ws.text(), r#"{"id":3,"data":"c"}"#);
    assert_eq!(ws.text(), r#"{"id":4,"data":"d"}"#);
    let mut ws = RawWs::open(&server, &format!("/ws/{channel}?since=99"));
    assert_eq!(ws.text(), r#"{"reset":true,"last_id":4}"#);
    assert_eq!(ws.text(), r#"{"id":3,"data":"c"}"#);
}

#[test]
fn binary_on_a_channel_is_refused_with_1003() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::open(&server, &format!("/ws/{}", unique_channel("bin")));
    ws.send(&masked(true, 0x2, b"\x00\x01"));
    assert_eq!(ws.read_close_code(), Some(1003));
}

#[test]
fn server_pings_and_closes_a_peer_that_never_pongs() {
    let server = TestServer::start(&["--ws-ping-interval", "0.2", "--ws-pong-timeout", "0.3"]);
    let mut ws = RawWs::open(&server, "/echo");
    let ping = ws.read_frame();
    assert_eq!(ping.opcode, 0x9);
    // No pong: the server gives up and closes.
    assert_eq!(ws.read_close_code(), Some(1011));
    ws.client.assert_closed();
}

#[test]
fn a_peer_that_pongs_stays_open() {
    let server = TestServer::start(&["--ws-ping-interval", "0.1", "--ws-pong-timeout", "0.3"]);
    let mut ws = RawWs::open(&server, "/echo");
    for _ in 0..5 {
        let ping = ws.read_frame();
        assert_eq!(ping.opcode, 0x9);
        ws.send(&masked(true, 0xA, &ping.payload));
    }
    ws.send(&masked(true, 0x1, b"still here"));
    loop {
        let f = ws.read_frame();
        if f.opcode == 0x9 {
            ws.send(&masked(true, 0xA, &f.payload));
            continue;
        }
        assert_eq!((f.opcode, f.payload.as_slice()), (0x1, &b"still here"[..]));
        break;
    }
}

#[test]
fn slow_consumer_is_closed_with_1008_while_others_keep_receiving() {
    // A long close timeout: the slow socket is read only after all the publishing.
    let server = TestServer::start(&["--max-pending-output", "200000", "--ws-close-timeout", "60"]);
    let channel = unique_channel("slow");
    let path = format!("/ws/{channel}");
    let mut slow = RawWs::open(&server, &path);
    let mut fast = tungstenite_client(&server, &path);
    let payload = "x".repeat(60_000);
    let mut published = 0;
    let started = Instant::now();
    // Publish until the slow socket's kernel buffers and our 200 kB allowance are full.
    while published < 400 && started.elapsed() < Duration::from_secs(20) {
        server.publish(&channel, &payload);
        published += 1;
        let got = fast.read().unwrap();
        assert!(
            got.to_text()
                .unwrap()
                .contains(&format!("\"id\":{published},"))
        );
    }
    assert_eq!(slow.read_close_code(), Some(1008));
    let mut rest = Vec::new();
    let _ = slow.client.stream.read_to_end(&mut rest);
    server.publish(&channel, "after");
    assert!(fast.read().unwrap().to_text().unwrap().contains("after"));
}

#[test]
fn shutdown_sends_close_1001() {
    let mut server = TestServer::start(&[]);
    let mut ws = RawWs::open(&server, "/echo");
    server.signal("INT");
    assert_eq!(ws.read_close_code(), Some(1001));
    ws.send(&masked(true, 0x8, &1001u16.to_be_bytes()));
    let status = server
        .wait_for_exit(Duration::from_secs(10))
        .expect("server exits");
    assert!(status.success());
}

#[test]
fn a_frame_head_cut_short_does_not_stall_the_server() {
    let server = TestServer::start(&[]);
    let mut ws = RawWs::open(&server, "/echo");
    // One byte of a head: the server must wait for the rest without spinning.
    ws.send(&[0x81]);
    assert_still_serving(&server);
    // Waiting for the rest costs no CPU: over a second, a few milliseconds at most (a server
    // that retried the partial head in a loop would burn most of a core).
    let before = server.cpu_time();
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = server.cpu_time() - before;
    assert!(
        used <= Duration::from_millis(100),
        "the server used {used:?} of CPU in {:?} while waiting",
        window.elapsed()
    );
    assert_still_serving(&server);
    ws.send(&masked(true, 0x1, b"rest")[1..]);
    assert_eq!(ws.text(), "rest");
}
