//! permessage-deflate (RFC 7692) over real sockets: the offer and the answer, compressed echoes
//! and channel messages, fragmentation with control frames between, context takeover, the limits
//! (a decompression bomb is 1009, bad data 1007), RSV1 where it is not allowed, `--ws-deflate
//! off`, and the ledger's counts. The client side is written here with `flate2` directly
//! (tungstenite has no permessage-deflate), never with pushwire's codec.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
mod support;

use support::ws::opcode::{BINARY, CLOSE, CONT, PING, PONG, TEXT};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use support::ws::{ServerFrame, frame};
use support::{Client, TestServer, unique_channel};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const RSV1: u8 = 0x40;

fn upgrade(path: &str, extensions: Option<&str>) -> Vec<u8> {
    let ext = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\n{}{ext}\r\n",
        support::ws::UPGRADE_HEADERS
    )
    .into_bytes()
}

/// A WebSocket that read its 101; frames are read by hand, RSV bits included.
struct Ws {
    client: Client,
    /// The server's `Sec-WebSocket-Extensions`, if any.
    extensions: Option<String>,
}

#[derive(Debug)]
struct Frame {
    rsv1: bool,
    frame: ServerFrame,
}

impl Ws {
    fn open(server: &TestServer, path: &str, offer: Option<&str>) -> Ws {
        let mut client = server.connect();
        client.send(&upgrade(path, offer));
        let response = client.read_response();
        assert_eq!(response.status, 101, "{response:?}");
        assert!(response.header_count("sec-websocket-extensions") <= 1);
        Ws {
            extensions: response
                .header("sec-websocket-extensions")
                .map(str::to_owned),
            client,
        }
    }

    fn read(&mut self) -> Frame {
        let head = self.client.read_exact_bytes(2);
        assert_eq!(head[1] & 0x80, 0, "server frames are never masked");
        assert_eq!(head[0] & 0x30, 0, "RSV2 and RSV3 stay clear");
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.client.read_exact_bytes(2).try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.client.read_exact_bytes(8).try_into().unwrap()) as usize,
            n => n as usize,
        };
        Frame {
            rsv1: head[0] & RSV1 != 0,
            frame: ServerFrame {
                fin: head[0] & 0x80 != 0,
                opcode: head[0] & 0x0f,
                payload: self.client.read_exact_bytes(len),
            },
        }
    }

    fn close_code(&mut self) -> u16 {
        loop {
            let f = self.read();
            if f.frame.opcode == CLOSE {
                let p = &f.frame.payload;
                return u16::from_be_bytes([p[0], p[1]]);
            }
        }
    }
}

/// The client's compressor: keeps its context unless told otherwise, as a browser does.
struct Deflater(Compress);

impl Deflater {
    fn new() -> Deflater {
        Deflater(Compress::new(Compression::default(), false))
    }

    /// A message's compressed payload: sync flush, trailer removed (RFC 7692 §7.2.1).
    fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 64);
        let mut pos = 0;
        loop {
            out.reserve(data.len() / 2 + 64);
            let before = self.0.total_in();
            self.0
                .compress_vec(&data[pos..], &mut out, FlushCompress::Sync)
                .unwrap();
            pos += (self.0.total_in() - before) as usize;
            if pos == data.len() && out.len() < out.capacity() {
                break;
            }
        }
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }
}

/// Inflates one server message on its own: the server keeps no context between messages.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::new();
    loop {
        out.reserve(64 * 1024);
        let pos = d.total_in() as usize;
        d.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            .unwrap();
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// A client frame with RSV1 set (the first frame of a compressed message).
fn compressed(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame(fin, opcode, payload, Some(KEY));
    f[0] |= RSV1;
    f
}

fn long_text(n: usize) -> String {
    "the quick brown fox jumps over the lazy dog; "
        .chars()
        .cycle()
        .take(n)
        .collect()
}

#[test]
fn browser_offer_is_answered_with_server_no_context_takeover() {
    let server = TestServer::start(&["--no-demo"]);
    let ws = Ws::open(
        &server,
        "/echo",
        Some("permessage-deflate; client_max_window_bits"),
    );
    assert_eq!(
        ws.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    let ws = Ws::open(
        &server,
        "/echo",
        Some(
            "permessage-deflate; server_max_window_bits=7, x-unknown, \
             permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
        ),
    );
    assert_eq!(
        ws.extensions.as_deref(),
        Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        )
    );
}

#[test]
fn declined_offer_goes_on_without_compression_and_rsv1_is_then_an_error() {
    let server = TestServer::start(&["--no-demo"]);
    let mut ws = Ws::open(
        &server,
        "/echo",
        Some("permessage-deflate; server_max_window_bits"),
    );
    assert_eq!(ws.extensions, None);
    ws.client.send(&frame(true, TEXT, b"plain", Some(KEY)));
    let echo = ws.read();
    assert!(!echo.rsv1);
    assert_eq!(echo.frame.payload, b"plain");
    let mut d = Deflater::new();
    ws.client.send(&compressed(true, TEXT, &d.compress(b"x")));
    assert_eq!(ws.close_code(), 1002);
}

#[test]
fn ws_deflate_off_never_negotiates() {
    let server = TestServer::start(&["--no-demo", "--ws-deflate", "off"]);
    let ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    assert_eq!(ws.extensions, None);
}

#[test]
fn echo_inflates_fragments_with_a_ping_between() {
    let server = TestServer::start(&["--no-demo"]);
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    let text = long_text(3000);
    for round in 0..3 {
        // The server answered client_no_context_takeover: every message on its own.
        let mut d = Deflater::new();
        let payload = d.compress(format!("{round}{text}").as_bytes());
        let third = payload.len() / 3;
        let mut wire = compressed(false, TEXT, &payload[..third]);
        wire.extend(frame(false, CONT, &payload[third..2 * third], Some(KEY)));
        wire.extend(frame(true, PING, b"mid", Some(KEY)));
        wire.extend(frame(true, CONT, &payload[2 * third..], Some(KEY)));
        // One byte per write, as Autobahn's chopped cases do.
        for b in wire {
            ws.client.send(&[b]);
        }
        let pong = ws.read();
        assert_eq!((pong.frame.opcode, pong.rsv1), (PONG, false));
        assert_eq!(pong.frame.payload, b"mid");
        let echo = ws.read();
        assert!(echo.rsv1 && echo.frame.fin, "{echo:?}");
        assert_eq!(echo.frame.opcode, TEXT);
        assert!(echo.frame.payload.len() < text.len() / 10);
        assert_eq!(
            inflate(&echo.frame.payload),
            format!("{round}{text}").as_bytes()
        );
    }
    let mut d = Deflater::new();
    // Binary, an empty compressed message, and a message too short to shrink (sent plain).
    let payload = d.compress(&[7u8; 5000]);
    ws.client.send(&compressed(true, BINARY, &payload));
    let echo = ws.read();
    assert_eq!((echo.frame.opcode, echo.rsv1), (BINARY, true));
    assert_eq!(inflate(&echo.frame.payload), [7u8; 5000]);
    ws.client.send(&compressed(true, TEXT, &[]));
    let echo = ws.read();
    assert_eq!((echo.rsv1, echo.frame.payload.len()), (false, 0));
    ws.client
        .send(&compressed(true, TEXT, &Deflater::new().compress(b"hi")));
    let echo = ws.read();
    assert_eq!((echo.rsv1, &echo.frame.payload[..]), (false, &b"hi"[..]));
}

#[test]
fn channel_message_is_compressed_once_and_the_same_frame_goes_to_each_subscriber() {
    let server = TestServer::start(&["--no-demo"]);
    let channel = unique_channel("deflate");
    let path = format!("/ws/{channel}");
    let mut a = Ws::open(&server, &path, Some("permessage-deflate"));
    let mut b = Ws::open(
        &server,
        &path,
        Some("permessage-deflate; client_max_window_bits; client_no_context_takeover"),
    );
    let mut narrow = Ws::open(
        &server,
        &path,
        Some("permessage-deflate; server_max_window_bits=9"),
    );
    let mut plain = Ws::open(&server, &path, None);
    let text = long_text(4000);
    server.publish(&channel, &text);
    let fa = a.read();
    let fb = b.read();
    assert!(fa.rsv1);
    assert_eq!(fa.frame.payload, fb.frame.payload, "one compressed frame");
    let json: serde_json::Value = serde_json::from_slice(&inflate(&fa.frame.payload)).unwrap();
    assert_eq!(json["data"], text.as_str());
    let fn_ = narrow.read();
    assert!(fn_.rsv1);
    assert_ne!(fn_.frame.payload, fa.frame.payload, "a 512-byte window");
    assert_eq!(inflate(&fn_.frame.payload), inflate(&fa.frame.payload));
    let fp = plain.read();
    assert!(!fp.rsv1);
    assert_eq!(fp.frame.payload, inflate(&fa.frame.payload));

    // A resuming subscriber gets the backlog compressed too.
    let mut late = Ws::open(
        &server,
        &format!("{path}?since=0"),
        Some("permessage-deflate"),
    );
    assert_eq!(late.read().frame.payload, fa.frame.payload);

    // A compressed publish from a subscriber goes to everyone.
    let mut d = Deflater::new();
    a.client
        .send(&compressed(true, TEXT, &d.compress(text.as_bytes())));
    let again = b.read();
    let json: serde_json::Value = serde_json::from_slice(&inflate(&again.frame.payload)).unwrap();
    assert_eq!(
        (json["id"].as_u64(), json["data"].as_str()),
        (Some(2), Some(&text[..]))
    );

    // The ledger: compressed and uncompressed payload bytes per message, both ways.
    let stats = server
        .request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n")
        .json();
    let ws = &stats["transports"]["ws"];
    let out = &ws["deflate"]["out"];
    // a, b, narrow and late for message 1; a, b, narrow and late for message 2.
    assert_eq!(out["messages"], 8, "{ws}");
    assert!(out["ratio"].as_f64().unwrap() < 0.1, "{out}");
    let inn = &ws["deflate"]["in"];
    assert_eq!(inn["messages"], 1, "{ws}");
    assert_eq!(inn["uncompressed_bytes"], text.len());
    assert!(ws["bytes_in"]["ws_compressed"].as_u64().unwrap() > 0);
    assert!(ws["bytes_out"]["ws_compressed"].as_u64().unwrap() > 0);
}

#[test]
fn traces_show_rsv1_and_the_inflated_preview() {
    let dir = std::env::temp_dir().join(format!("pushwire-deflate-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("trace.jsonl");
    let _ = std::fs::remove_file(&file);
    let server = TestServer::start(&["--no-demo", "--trace-file", file.to_str().unwrap()]);
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    let text = long_text(500);
    ws.client.send(&compressed(
        true,
        TEXT,
        &Deflater::new().compress(text.as_bytes()),
    ));
    assert!(ws.read().rsv1);
    let summaries = || -> Vec<(String, String)> {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == "ws_frame")
            .map(|r| {
                (
                    r["dir"].as_str().unwrap().to_owned(),
                    r["summary"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert!(support::wait_until(
        std::time::Duration::from_secs(5),
        || summaries().len() >= 2
    ));
    let expected = format!("inflated \"{}…\"", &text[..64]);
    for (dir, summary) in summaries() {
        assert!(
            summary.starts_with("TEXT fin rsv=0x4 len="),
            "{dir} {summary}"
        );
        assert!(summary.ends_with(&expected), "{dir} {summary}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decompression_bomb_is_closed_1009_while_inflating() {
    let server = TestServer::start(&["--no-demo", "--max-message-size", "65536"]);
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    let mut d = Deflater::new();
    let bomb = d.compress(&vec![b'a'; 50 << 20]);
    // Under the limit on the wire, so only inflation can find it too big.
    assert!(bomb.len() < 65_536, "{}", bomb.len());
    ws.client.send(&compressed(true, TEXT, &bomb));
    assert_eq!(ws.close_code(), 1009);
    // Just within the limit is fine.
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    let mut d = Deflater::new();
    ws.client
        .send(&compressed(true, BINARY, &d.compress(&[b'a'; 65536])));
    assert_eq!(inflate(&ws.read().frame.payload).len(), 65536);
}

#[test]
fn invalid_compressed_data_is_1007_and_misplaced_rsv1_is_1002() {
    let server = TestServer::start(&["--no-demo"]);
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    // BTYPE 11 is reserved.
    ws.client
        .send(&compressed(true, BINARY, &[0xff, 0xff, 0xff]));
    assert_eq!(ws.close_code(), 1007);
    // Inflated bytes that are not UTF-8 in a text message.
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    let mut d = Deflater::new();
    ws.client
        .send(&compressed(true, TEXT, &d.compress(&[0xc3, 0x28, 0x41])));
    assert_eq!(ws.close_code(), 1007);
    // RSV1 on a continuation frame and on a control frame.
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    let payload = d.compress(b"abc");
    ws.client.send(&compressed(false, TEXT, &payload[..1]));
    ws.client.send(&compressed(true, CONT, &payload[1..]));
    assert_eq!(ws.close_code(), 1002);
    let mut ws = Ws::open(&server, "/echo", Some("permessage-deflate"));
    ws.client.send(&compressed(true, PING, b""));
    assert_eq!(ws.close_code(), 1002);
}
