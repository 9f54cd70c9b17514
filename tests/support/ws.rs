//! A raw WebSocket client for black-box tests: client frames built by hand, server frames read by
//! hand (never by pushwire's own codec).
use super::{Client, TestServer};

/// Frame opcodes (RFC 6455 §5.2), as the tests write them into literal frames.
pub mod opcode {
    pub const CONT: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

pub const UPGRADE_HEADERS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

pub fn upgrade_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n{UPGRADE_HEADERS}\r\n").into_bytes()
}

/// A client frame, masked as RFC 6455 §5.3 requires (unless `mask` is None).
pub fn frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

pub fn masked(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(fin, opcode, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A raw WebSocket client: the server's frames are read by hand, not by our codec.
pub struct RawWs {
    pub client: Client,
}

#[derive(Debug, PartialEq)]
pub struct ServerFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawWs {
    pub fn open(server: &TestServer, path: &str) -> RawWs {
        let mut client = server.connect();
        client.send(&upgrade_request(path));
        let response = client.read_response();
        assert_eq!(response.status, 101, "{}", response.body_str());
        RawWs { client }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.client.send(bytes);
    }

    pub fn read_frame(&mut self) -> ServerFrame {
        let head = self.client.read_exact_bytes(2);
        assert_eq!(head[1] & 0x80, 0, "server frames are never masked");
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.client.read_exact_bytes(2).try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.client.read_exact_bytes(8).try_into().unwrap()) as usize,
            n => n as usize,
        };
        ServerFrame {
            fin: head[0] & 0x80 != 0,
            opcode: head[0] & 0x0f,
            payload: self.client.read_exact_bytes(len),
        }
    }

    /// Reads frames until a Close and returns its code; data frames before it are skipped.
    pub fn read_close_code(&mut self) -> Option<u16> {
        loop {
            let f = self.read_frame();
            if f.opcode == 0x8 {
                return (f.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]));
            }
        }
    }

    /// Answers the server's Close as a client should (RFC 6455 §5.5.1) and ends its side: after a
    /// protocol error the server reads until the peer's Close or FIN before closing TCP. The
    /// server may have closed already; a failed write is not an error here.
    pub fn answer_close(&mut self) {
        let _ = self.client.try_send(&masked(true, 0x8, b""));
        self.client.shutdown_write();
    }

    pub fn text(&mut self) -> String {
        let f = self.read_frame();
        assert_eq!(
            (f.fin, f.opcode),
            (true, 0x1),
            "expected one text frame: {f:?}"
        );
        String::from_utf8(f.payload).unwrap()
    }
}
