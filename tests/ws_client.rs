//! The client's WebSocket pieces (handshake, masked frames, frame reader) against pushwire's
//! `/echo` and against another implementation: tungstenite's server.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use pushwire::client::http::ResponseReader;
use pushwire::client::ws::{
    FrameReader, Incoming, Nonces, check_handshake, client_frame, upgrade_request,
};
use pushwire::websocket::Opcode;
use support::TestServer;

/// Opens a WebSocket with the client's handshake, sends `messages` as masked text frames and a
/// ping, and returns what came back.
fn echo_round_trip(addr: SocketAddr, path: &str, messages: &[&str]) -> Vec<String> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut nonces = Nonces::new(42);
    let key = nonces.key();
    let mut out = Vec::new();
    upgrade_request(&addr.to_string(), path, &key, &mut out);
    stream.write_all(&out).unwrap();
    // Frames only after the 101 (RFC 6455 §4.1: the client waits for the server's handshake).
    out.clear();
    for m in messages {
        client_frame(Opcode::Text, m.as_bytes(), &mut nonces, &mut out);
    }
    client_frame(Opcode::Ping, b"hi", &mut nonces, &mut out);
    let mut input = Vec::new();
    let mut reader = ResponseReader::new();
    let mut frames = FrameReader::new();
    let mut upgraded = false;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.len() < messages.len() + 1 {
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "EOF after {got:?}");
        input.extend_from_slice(&chunk[..n]);
        if !upgraded {
            let adv = reader.advance(&input, &mut Vec::new()).unwrap();
            let Some(head) = adv.head else { continue };
            check_handshake(&head, &key).expect("accept matches the key");
            input.drain(..adv.consumed);
            upgraded = true;
            stream.write_all(&out).unwrap();
        }
        let (used, _) = frames
            .read(&input, |m| match m {
                Incoming::Text(t) => got.push(String::from_utf8(t.to_vec()).unwrap()),
                Incoming::Pong(p) => got.push(format!("pong {}", String::from_utf8_lossy(p))),
                other => panic!("unexpected {other:?}"),
            })
            .unwrap();
        input.drain(..used);
    }
    let mut close = Vec::new();
    client_frame(
        Opcode::Close,
        &1000u16.to_be_bytes(),
        &mut nonces,
        &mut close,
    );
    stream.write_all(&close).unwrap();
    got
}

#[test]
fn client_against_pushwire_echo() {
    let server = TestServer::start(&["--no-demo"]);
    let big = "x".repeat(70_000 / 2);
    let got = echo_round_trip(server.addr, "/echo", &["hello", "", &big]);
    assert_eq!(
        got,
        vec!["hello".to_string(), String::new(), big, "pong hi".into()]
    );
}

#[test]
fn client_against_tungstenite_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(stream).expect("tungstenite accepts our handshake");
        loop {
            match ws.read() {
                Ok(m) if m.is_text() => ws.send(m).unwrap(),
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let big = "y".repeat(300);
    let got = echo_round_trip(addr, "/", &["one", &big]);
    assert_eq!(got, vec!["one".to_string(), big, "pong hi".into()]);
}
