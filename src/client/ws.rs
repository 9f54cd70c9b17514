//! The client side of WebSocket (RFC 6455): the opening handshake (a random key, the
//! `Sec-WebSocket-Accept` check) and reading the server's frames, on the crate's frame codec.
//! Client frames are written with [`crate::websocket::encode_masked_frame`].
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::http::Head;
use crate::websocket::deflate::Inflater;
use crate::websocket::{FrameHead, Opcode, accept_key, apply_mask, encode_masked_frame};

/// What a compressing client offers: permessage-deflate as browsers send it (RFC 7692 §7.1).
pub const DEFLATE_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The largest message the client inflates (a server's message past it is an error).
const MAX_INFLATED: usize = 64 << 20;

/// Masking keys and handshake nonces. RFC 6455 §10.3 asks browsers for unpredictable masks so a
/// script cannot choose the bytes on the wire; a measuring tool only needs them to vary.
#[derive(Debug, Clone)]
pub struct Nonces(u64);

impl Nonces {
    /// A generator seeded with `seed`; the same seed gives the same keys and masks (xorshift64*).
    pub fn new(seed: u64) -> Nonces {
        Nonces(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A masking key for one client frame (RFC 6455 §5.3).
    pub fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// A `Sec-WebSocket-Key`: 16 random bytes in base64.
    pub fn key(&mut self) -> String {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&self.next_u64().to_ne_bytes());
        raw[8..].copy_from_slice(&self.next_u64().to_ne_bytes());
        STANDARD.encode(raw)
    }
}

/// The upgrade request (RFC 6455 §4.1).
pub fn upgrade_request(authority: &str, target: &str, key: &str, out: &mut Vec<u8>) {
    upgrade_request_with(authority, target, key, None, out);
}

/// The upgrade request offering `extensions` (`Sec-WebSocket-Extensions`), if any.
pub fn upgrade_request_with(
    authority: &str,
    target: &str,
    key: &str,
    extensions: Option<&str>,
    out: &mut Vec<u8>,
) {
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ];
    if let Some(e) = extensions {
        headers.push(("Sec-WebSocket-Extensions", e));
    }
    super::http::get_request(authority, target, &headers, out);
}

/// Whether the server's 101 accepted permessage-deflate.
pub fn accepted_deflate(head: &Head) -> bool {
    head.ws_extensions
        .as_deref()
        .is_some_and(|e| e.trim_start().starts_with("permessage-deflate"))
}

/// Checks the server's answer to the upgrade: `101` with the accept value our key calls for.
pub fn check_handshake(head: &Head, key: &str) -> Result<(), String> {
    if head.status != 101 {
        return Err(format!("upgrade answered {}", head.status));
    }
    let expected = accept_key(key.as_bytes());
    match head.ws_accept.as_deref() {
        Some(got) if got == expected => Ok(()),
        Some(got) => Err(format!(
            "Sec-WebSocket-Accept {got:?}, expected {expected:?}"
        )),
        None => Err("no Sec-WebSocket-Accept".to_string()),
    }
}

/// One thing the server sent: a whole message, or a control frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A whole text message, fragments joined; not checked for UTF-8.
    Text(&'a [u8]),
    /// A whole binary message, fragments joined.
    Binary(&'a [u8]),
    /// A ping's application data; a client answers it with a pong carrying the same bytes.
    Ping(&'a [u8]),
    /// A pong's application data.
    Pong(&'a [u8]),
    /// A close frame's body: a 2-byte status code then a UTF-8 reason, or empty.
    Close(&'a [u8]),
}

/// Byte counts of what [`FrameReader::read`] consumed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameBytes {
    /// Bytes of data frame heads (every byte of a message frame but its payload).
    pub heads: usize,
    /// Bytes of data frame payloads: the messages' own bytes.
    pub data: usize,
    /// Bytes of control frames (ping, pong, close), head and body together.
    pub control: usize,
}

/// Reads the server's frames; fragmented messages are joined, compressed ones inflated.
#[derive(Debug, Default)]
pub struct FrameReader {
    fragments: Vec<u8>,
    fragmented: Option<Opcode>,
    scratch: Vec<u8>,
    /// permessage-deflate was negotiated: messages with RSV1 are inflated (the server keeps no
    /// context, but a kept inflater decodes that too).
    inflater: Option<Inflater>,
    /// The message being joined is compressed.
    compressed: bool,
    inflated: Vec<u8>,
}

impl FrameReader {
    /// A reader expecting a frame head, with no message under way.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// A reader for a connection that negotiated permessage-deflate.
    pub fn with_deflate() -> FrameReader {
        FrameReader {
            inflater: Some(Inflater::new()),
            ..FrameReader::default()
        }
    }

    /// Inflates a whole compressed message's payload into `self.inflated`.
    fn inflate(&mut self, payload: &[u8]) -> Result<(), String> {
        let inflater = self
            .inflater
            .as_mut()
            .ok_or("a compressed frame, and permessage-deflate was not negotiated")?;
        self.inflated.clear();
        inflater
            .inflate(payload, &mut self.inflated, MAX_INFLATED)
            .and_then(|()| inflater.finish(&mut self.inflated, MAX_INFLATED))
            .map_err(|e| format!("cannot inflate a message: {e:?}"))
    }

    /// Consumes every complete frame at the start of `input`, calling `f` for each message and
    /// control frame. Returns the bytes consumed and what they were.
    pub fn read(
        &mut self,
        input: &[u8],
        mut f: impl FnMut(Incoming<'_>),
    ) -> Result<(usize, FrameBytes), String> {
        let mut pos = 0;
        let mut tally = FrameBytes::default();
        loop {
            let rest = &input[pos..];
            let Some((head, head_len)) = FrameHead::decode(rest).map_err(|e| e.to_string())? else {
                break;
            };
            let len = usize::try_from(head.payload_len).map_err(|_| "frame too large")?;
            let Some(raw) = rest.get(head_len..head_len + len) else {
                break;
            };
            let payload: &[u8] = match head.mask {
                Some(key) => {
                    // A server must not mask (RFC 6455 §5.1); read it anyway.
                    self.scratch.clear();
                    self.scratch.extend_from_slice(raw);
                    apply_mask(&mut self.scratch, key, 0);
                    &self.scratch
                }
                None => raw,
            };
            pos += head_len + len;
            if head.opcode.is_control() {
                tally.control += head_len + len;
            } else {
                tally.heads += head_len;
                tally.data += len;
            }
            let rsv1 = head.rsv & 0b100 != 0;
            match head.opcode {
                Opcode::Ping => f(Incoming::Ping(payload)),
                Opcode::Pong => f(Incoming::Pong(payload)),
                Opcode::Close => f(Incoming::Close(payload)),
                Opcode::Text | Opcode::Binary if head.fin && self.fragmented.is_none() => {
                    let payload = if rsv1 {
                        let payload = payload.to_vec();
                        self.inflate(&payload)?;
                        &self.inflated[..]
                    } else {
                        payload
                    };
                    f(if head.opcode == Opcode::Text {
                        Incoming::Text(payload)
                    } else {
                        Incoming::Binary(payload)
                    })
                }
                Opcode::Text | Opcode::Binary if self.fragmented.is_none() => {
                    self.fragmented = Some(head.opcode);
                    self.compressed = rsv1;
                    self.fragments.clear();
                    self.fragments.extend_from_slice(payload);
                }
                Opcode::Continuation if self.fragmented.is_some() => {
                    self.fragments.extend_from_slice(payload);
                    if head.fin {
                        let mut whole = std::mem::take(&mut self.fragments);
                        if std::mem::take(&mut self.compressed) {
                            self.inflate(&whole)?;
                            whole.clear();
                            whole.extend_from_slice(&self.inflated);
                        }
                        f(match self.fragmented.take() {
                            Some(Opcode::Binary) => Incoming::Binary(&whole),
                            _ => Incoming::Text(&whole),
                        });
                        self.fragments = whole;
                    }
                }
                other => return Err(format!("unexpected {other:?} frame")),
            }
        }
        Ok((pos, tally))
    }
}

/// A masked client frame.
pub fn client_frame(opcode: Opcode, payload: &[u8], nonces: &mut Nonces, out: &mut Vec<u8>) {
    encode_masked_frame(true, opcode, payload, nonces.mask(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::websocket::encode_frame;

    #[test]
    fn accept_check_uses_the_rfc_example() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut head = Head {
            status: 101,
            ws_accept: Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()),
            ..Head::default()
        };
        assert_eq!(check_handshake(&head, key), Ok(()));
        head.ws_accept = Some("x".into());
        assert!(check_handshake(&head, key).is_err());
        head.status = 200;
        assert!(check_handshake(&head, key).is_err());
    }

    #[test]
    fn frames_split_anywhere_give_the_same_messages() {
        let mut wire = Vec::new();
        encode_frame(Opcode::Text, b"hello", &mut wire);
        encode_frame(Opcode::Ping, b"p", &mut wire);
        wire.extend_from_slice(&[0x01, 0x02, b'a', b'b', 0x80, 0x01, b'c']);
        encode_frame(Opcode::Binary, &[0u8; 300], &mut wire);
        for split in 0..wire.len() {
            let mut reader = FrameReader::new();
            let mut got = Vec::new();
            let mut pending = wire[..split].to_vec();
            let mut rest = &wire[split..];
            loop {
                let (n, _) = reader
                    .read(&pending, |m| got.push(format!("{m:?}").len()))
                    .unwrap();
                pending.drain(..n);
                if rest.is_empty() {
                    break;
                }
                pending.extend_from_slice(rest);
                rest = &[];
            }
            assert!(pending.is_empty());
            assert_eq!(got.len(), 4, "split at {split}");
        }
    }

    #[test]
    fn keys_are_16_bytes_and_vary() {
        let mut n = Nonces::new(1);
        let (a, b) = (n.key(), n.key());
        assert_eq!(STANDARD.decode(&a).unwrap().len(), 16);
        assert_ne!(a, b);
    }
}
