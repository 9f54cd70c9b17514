//! Frame heads (RFC 6455 §5.2): a permissive view that decodes anything well-framed, encodes with
//! the minimal length form, and prints itself (one line, or field by field with Wireshark names).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```
//!
//! Validation (RSV bits, reserved opcodes, control-frame rules, masking) belongs to the session:
//! a trace can still print a head the protocol then rejects.

use std::fmt::{self, Write as _};

use super::error::ProtocolError;

/// Longest possible head: 2 + 8 (64-bit length) + 4 (masking key).
pub const MAX_HEAD_LEN: usize = 14;

/// Largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcode (RFC 6455 §5.2, §11.8). Unknown values stay printable as `Reserved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a UTF-8 text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: connection close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
    /// 0x3-0x7 (data) and 0xB-0xF (control), reserved for future use.
    Reserved(u8),
}

impl Opcode {
    /// The opcode for the low four bits of `value` (higher bits are ignored).
    pub fn from_u8(value: u8) -> Opcode {
        match value & 0x0f {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xa => Opcode::Pong,
            other => Opcode::Reserved(other),
        }
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
            Opcode::Reserved(value) => value & 0x0f,
        }
    }

    /// Control frames have the high opcode bit set (RFC 6455 §5.5), reserved ones included.
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x08 != 0
    }

    /// The name Wireshark shows for this opcode.
    pub fn wireshark_name(self) -> &'static str {
        match self {
            Opcode::Continuation => "Continuation",
            Opcode::Text => "Text",
            Opcode::Binary => "Binary",
            Opcode::Close => "Connection Close",
            Opcode::Ping => "Ping",
            Opcode::Pong => "Pong",
            Opcode::Reserved(_) => "Unknown",
        }
    }
}

/// Short uppercase name, as in a tcpdump-style line: `TEXT`, `CONT`, `RSV3`.
impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opcode::Continuation => f.write_str("CONT"),
            Opcode::Text => f.write_str("TEXT"),
            Opcode::Binary => f.write_str("BINARY"),
            Opcode::Close => f.write_str("CLOSE"),
            Opcode::Ping => f.write_str("PING"),
            Opcode::Pong => f.write_str("PONG"),
            Opcode::Reserved(value) => write!(f, "RSV{:X}", value & 0x0f),
        }
    }
}

/// A decoded frame head: everything before the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Final fragment of a message.
    pub fin: bool,
    /// The three RSV bits, RSV1 = `0b100`.
    pub rsv: u8,
    /// Frame opcode.
    pub opcode: Opcode,
    /// Masking key, present on every client frame (RFC 6455 §5.3).
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHead {
    /// Decodes a head from the start of `buf`.
    ///
    /// `Ok(None)`: `buf` holds only part of a head (nothing is consumed). `Ok(Some((head, n)))`:
    /// the head took the first `n` bytes; bytes after it are left alone. The only error is a
    /// 64-bit length with its top bit set, which cannot be framed at all.
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHead, usize)>, ProtocolError> {
        let [b0, b1, rest @ ..] = buf else {
            return Ok(None);
        };
        let (payload_len, ext_len) = match b1 & 0x7f {
            126 => match rest.first_chunk::<2>() {
                Some(ext) => (u64::from(u16::from_be_bytes(*ext)), 2),
                None => return Ok(None),
            },
            127 => match rest.first_chunk::<8>() {
                Some(ext) => (u64::from_be_bytes(*ext), 8),
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if payload_len >> 63 != 0 {
            return Err(ProtocolError::LengthOverflow);
        }
        let mut head_len = 2 + ext_len;
        let mask = if b1 & 0x80 != 0 {
            head_len += 4;
            let after_len = rest.get(ext_len..).unwrap_or_default();
            match after_len.first_chunk::<4>() {
                Some(key) => Some(*key),
                None => return Ok(None),
            }
        } else {
            None
        };
        let head = FrameHead {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x07,
            opcode: Opcode::from_u8(b0 & 0x0f),
            mask,
            payload_len,
        };
        Ok(Some((head, head_len)))
    }

    /// Exact number of bytes [`FrameHead::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        2 + extended_len_size(self.payload_len) + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Appends the head to `out`, with the minimal length encoding (RFC 6455 §5.2).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let b0 = u8::from(self.fin) << 7 | (self.rsv & 0x07) << 4 | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match extended_len_size(self.payload_len) {
            0 => out.extend_from_slice(&[b0, mask_bit | self.payload_len as u8]),
            2 => {
                out.extend_from_slice(&[b0, mask_bit | 126]);
                out.extend_from_slice(&(self.payload_len as u16).to_be_bytes());
            }
            _ => {
                out.extend_from_slice(&[b0, mask_bit | 127]);
                out.extend_from_slice(&self.payload_len.to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
    }

    /// Writes the head field by field, one per line, with the field names Wireshark uses.
    /// The 7-bit length field is shown as the minimal encoding of `payload_len` would carry it.
    pub fn dissect(&self, out: &mut String) {
        let _ = self.write_dissection(out);
    }

    fn write_dissection(&self, out: &mut String) -> fmt::Result {
        let title = |b: bool| if b { "True" } else { "False" };
        writeln!(out, "Fin: {}", title(self.fin))?;
        writeln!(out, "Reserved: {:#x}", self.rsv & 0x07)?;
        let op = self.opcode;
        writeln!(out, "Opcode: {} ({})", op.wireshark_name(), op.as_u8())?;
        writeln!(out, "Mask: {}", title(self.mask.is_some()))?;
        match extended_len_size(self.payload_len) {
            0 => writeln!(out, "Payload length: {}", self.payload_len)?,
            2 => {
                writeln!(out, "Payload length: 126")?;
                writeln!(
                    out,
                    "Extended payload length (16 bits): {}",
                    self.payload_len
                )?;
            }
            _ => {
                writeln!(out, "Payload length: 127")?;
                writeln!(
                    out,
                    "Extended payload length (64 bits): {}",
                    self.payload_len
                )?;
            }
        }
        if let Some(key) = self.mask {
            writeln!(out, "Masking-Key: {}", Hex(&key))?;
        }
        Ok(())
    }
}

/// One tcpdump-style line: `TEXT fin len=5`, `CONT len=3 mask=37fa213d`, `PING fin rsv=0x4 len=0`.
impl fmt::Display for FrameHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.opcode)?;
        if self.fin {
            f.write_str(" fin")?;
        }
        if self.rsv != 0 {
            write!(f, " rsv={:#x}", self.rsv)?;
        }
        write!(f, " len={}", self.payload_len)?;
        if let Some(key) = self.mask {
            write!(f, " mask={}", Hex(&key))?;
        }
        Ok(())
    }
}

/// Dissects a whole frame from raw bytes: the head fields, then the payload size. Never panics:
/// a head that cannot be decoded is printed as `(error: …)` or `(incomplete head: N octets)`, a
/// payload cut short as `(truncated: N of M octets)`.
pub fn dissect_frame(buf: &[u8], out: &mut String) {
    let _ = match FrameHead::decode(buf) {
        Err(e) => writeln!(out, "(error: {e})"),
        Ok(None) => writeln!(out, "(incomplete head: {} octets)", buf.len()),
        Ok(Some((head, head_len))) => {
            head.dissect(out);
            let available = buf.len().saturating_sub(head_len);
            let label = if head.mask.is_some() {
                "Masked payload"
            } else {
                "Payload"
            };
            match usize::try_from(head.payload_len) {
                Ok(len) if len <= available => {
                    writeln!(out, "{label}: Data chunk ({len} octets)")
                }
                _ => writeln!(
                    out,
                    "{label}: (truncated: {available} of {} octets)",
                    head.payload_len
                ),
            }
        }
    };
}

/// Appends one unmasked, final server frame (head and payload) to `out`.
pub fn encode_frame(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    encode_server_frame(0, opcode, payload, out);
}

/// Appends one unmasked, final server frame with RSV1 set (RFC 7692 §6: the first frame of a
/// compressed message) carrying an already compressed payload.
pub fn encode_compressed_frame(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    encode_server_frame(0b100, opcode, payload, out);
}

/// One unmasked, final frame with the given reserved bits.
fn encode_server_frame(rsv: u8, opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    let head = FrameHead {
        fin: true,
        rsv,
        opcode,
        mask: None,
        payload_len: u64::try_from(payload.len()).unwrap_or(u64::MAX),
    };
    out.reserve(head.encoded_len().saturating_add(payload.len()));
    head.encode(out);
    out.extend_from_slice(payload);
}

/// Appends one masked client frame (head, masking key, masked payload) to `out`: what a client
/// sends (RFC 6455 §5.3). The server never sends one; tests, benches, fuzzing and client tools do.
pub fn encode_masked_frame(
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    key: [u8; 4],
    out: &mut Vec<u8>,
) {
    let head = FrameHead {
        fin,
        rsv: 0,
        opcode,
        mask: Some(key),
        payload_len: u64::try_from(payload.len()).unwrap_or(u64::MAX),
    };
    head.encode(out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(fresh) = out.get_mut(start..) {
        super::mask::apply_mask(fresh, key, 0);
    }
}

/// Exact size of the unmasked frame [`encode_frame`] writes for a payload of `payload_len` bytes.
pub fn frame_len(payload_len: usize) -> usize {
    let ext = extended_len_size(u64::try_from(payload_len).unwrap_or(u64::MAX));
    payload_len.saturating_add(2 + ext)
}

/// Bytes of extended length after the 7-bit field, minimal form (RFC 6455 §5.2).
fn extended_len_size(payload_len: u64) -> usize {
    match payload_len {
        0..=125 => 0,
        126..=0xffff => 2,
        _ => 8,
    }
}

/// Lowercase hex without separators, as Wireshark prints the masking key.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests;
