//! How a [`Record`] prints: one summary line, a field-by-field tree, an annotated hex dump, or a
//! JSON object. Renderers never panic: what cannot be read is printed as `(error: …)`.
use std::fmt::Write;

use serde_json::{Value, json};

use super::{Direction, Record, UnitKind};
use crate::http1::{HeadReader, Limits};
use crate::ledger::Transport;
use crate::sse::EventView;
use crate::websocket::{FrameHead, Opcode, apply_mask};

/// How much of each record to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// One line per unit.
    Line,
    /// The line, then the field-by-field dissection.
    Tree,
    /// The tree, then an annotated hex dump.
    Hex,
}

/// A WebSocket frame split into its head and its unmasked payload.
fn ws_parts(bytes: &[u8]) -> Option<(FrameHead, Vec<u8>)> {
    let (head, head_len) = FrameHead::decode(bytes).ok()??;
    let mut payload = bytes.get(head_len..)?.to_vec();
    if let Some(key) = head.mask {
        apply_mask(&mut payload, key, 0);
    }
    Some((head, payload))
}

/// A chunk of `len` bytes on the wire split into its size line, the data kept in `bytes` (all of
/// it, or a received chunk's preview) and the data's length.
fn chunk_parts(bytes: &[u8], len: usize) -> Option<(&[u8], &[u8], usize)> {
    let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
    let data_len = len.checked_sub(line_end + 4)?;
    let kept_end = bytes.len().min(line_end + 2 + data_len);
    let data = bytes.get(line_end + 2..kept_end)?;
    Some((&bytes[..line_end + 2], data, data_len))
}

/// Payload bytes in a JSON body or object: the `data` strings of `messages`, or of the object.
fn json_payload(bytes: &[u8]) -> usize {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return 0;
    };
    let data_len = |m: &Value| m.get("data").and_then(Value::as_str).map_or(0, str::len);
    match value.get("messages").and_then(Value::as_array) {
        Some(messages) => messages.iter().map(data_len).sum(),
        None => data_len(&value),
    }
}

/// Up to `limit` of the `kept` bytes of a run `len` bytes long, with `…` when cut.
fn preview_of(kept: &[u8], len: usize, limit: usize) -> String {
    let mut text = preview(kept, limit);
    if len > kept.len() && kept.len() <= limit {
        text.push('…');
    }
    text
}

/// Up to `limit` bytes as an escaped, quoted string, with `…` when cut.
fn preview(bytes: &[u8], limit: usize) -> String {
    let shown = &bytes[..bytes.len().min(limit)];
    let mut text = String::from_utf8_lossy(shown).escape_debug().to_string();
    if bytes.len() > limit {
        text.push('…');
    }
    format!("\"{text}\"")
}

impl Record {
    /// Payload bytes in this unit (the published messages' own bytes); the rest is overhead.
    pub fn payload_len(&self) -> usize {
        match self.kind {
            UnitKind::Body
                if self.direction == Direction::Received
                    && self.transport == Transport::Publish =>
            {
                self.len
            }
            UnitKind::Body if self.direction == Direction::Received => 0,
            UnitKind::Body => json_payload(&self.bytes),
            UnitKind::Chunk { sse: true } => chunk_parts(&self.bytes, self.len)
                .map_or(0, |(_, data, _)| EventView::new(data).payload_len()),
            UnitKind::Chunk { sse: false } if self.transport == Transport::Publish => {
                chunk_parts(&self.bytes, self.len).map_or(0, |(_, _, len)| len)
            }
            UnitKind::SseEvents => EventView::new(&self.bytes).payload_len(),
            // Compressed frames carry no payload byte as such: the ledger counts them apart.
            UnitKind::WsFrame if self.inflated.is_some() => 0,
            UnitKind::WsFrame => match ws_parts(&self.bytes) {
                Some((head, payload)) if !head.opcode.is_control() => match self.direction {
                    // A received frame keeps only a preview of its payload: its head says all.
                    Direction::Received => usize::try_from(head.payload_len).unwrap_or(usize::MAX),
                    Direction::Sent if self.transport == Transport::Ws => json_payload(&payload),
                    Direction::Sent => payload.len(),
                },
                _ => 0,
            },
            _ => 0,
        }
    }

    /// The one-line summary, without time and connection.
    pub fn summary(&self, limit: usize) -> String {
        let b = &self.bytes;
        match self.kind {
            UnitKind::RequestHead => {
                match HeadReader::new().decode(b.trim_ascii_start(), &Limits::default()) {
                    Ok(Some(head)) => head.to_string(),
                    Ok(None) => format!("{} (incomplete head)", preview(b, limit)),
                    Err(e) => format!("{} (error: {e})", preview(first_line(b), limit)),
                }
            }
            UnitKind::ResponseHead => {
                let lines = b
                    .split(|&c| c == b'\n')
                    .filter(|l| !l.trim_ascii().is_empty());
                format!(
                    "{} ({} headers, {} bytes)",
                    String::from_utf8_lossy(first_line(b).trim_ascii()),
                    lines.count().saturating_sub(1),
                    b.len()
                )
            }
            UnitKind::Body => format!("BODY {} bytes {}", self.len, preview_of(b, self.len, limit)),
            UnitKind::Chunk { sse } => match chunk_parts(b, self.len) {
                Some((_, data, len)) if sse => {
                    format!("CHUNK {len} octets {}", EventView::new(data))
                }
                Some((_, data, len)) => {
                    format!("CHUNK {len} octets {}", preview_of(data, len, limit))
                }
                None => format!("CHUNK (error: malformed) {}", preview(b, limit)),
            },
            UnitKind::LastChunk => format!("LAST CHUNK ({} bytes)", b.len()),
            UnitKind::SseEvents => format!("SSE {}", EventView::new(b)),
            UnitKind::WsFrame => match ws_parts(b) {
                Some((head, payload)) => match head.opcode {
                    Opcode::Close if payload.len() >= 2 => format!(
                        "{head} code={} {}",
                        u16::from_be_bytes([payload[0], payload[1]]),
                        preview(&payload[2..], limit)
                    ),
                    _ => match &self.inflated {
                        Some(inflated) => {
                            format!("{head} inflated {}", preview(inflated, limit))
                        }
                        None => format!("{head} {}", preview(&payload, limit)),
                    },
                },
                None => format!("FRAME (error: malformed) {}", preview(b, limit)),
            },
            UnitKind::Unframed => format!(
                "UNFRAMED {} bytes {}",
                self.len,
                preview_of(b, self.len, limit)
            ),
        }
    }

    /// The record as text at `detail`, ending with a newline.
    pub fn render(&self, detail: Detail, limit: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "{:.3} c{} {} {} {}",
            self.time.as_secs_f64(),
            self.conn,
            self.transport,
            self.direction.arrow(),
            self.summary(limit)
        );
        if detail == Detail::Line {
            return;
        }
        let mut tree = String::new();
        self.dissect(limit, &mut tree);
        let payload = self.payload_len();
        match (
            &self.inflated,
            FrameHead::decode(&self.bytes).ok().flatten(),
        ) {
            (Some(_), Some((head, _))) => {
                let _ = writeln!(
                    tree,
                    "Overhead: {} bytes, compressed payload: {} bytes",
                    self.len.saturating_sub(head.payload_len as usize),
                    head.payload_len
                );
            }
            _ => {
                let _ = writeln!(
                    tree,
                    "Overhead: {} bytes, payload: {payload} bytes",
                    self.len.saturating_sub(payload)
                );
            }
        }
        for line in tree.lines() {
            let _ = writeln!(out, "      {line}");
        }
        if detail == Detail::Hex {
            hex_dump(&self.bytes, out);
        }
    }

    /// The field-by-field dissection, one field per line.
    fn dissect(&self, limit: usize, out: &mut String) {
        let b = &self.bytes;
        match self.kind {
            UnitKind::RequestHead | UnitKind::ResponseHead => dissect_head(b, self.kind, out),
            UnitKind::Body => {
                let shown = preview_of(b, self.len, limit);
                let _ = writeln!(out, "Body ({} octets): {shown}", self.len);
            }
            UnitKind::Chunk { sse } => match chunk_parts(b, self.len) {
                Some((size_line, data, len)) => {
                    let _ = writeln!(
                        out,
                        "Chunk size: {len} octets ({} bytes: {})",
                        size_line.len(),
                        preview(size_line, limit)
                    );
                    let _ = writeln!(out, "Data chunk ({len} octets)");
                    if sse {
                        let mut events = String::new();
                        crate::sse::dissect(data, &mut events);
                        for line in events.lines() {
                            let _ = writeln!(out, "    {line}");
                        }
                    } else {
                        let _ = writeln!(out, "    {}", preview_of(data, len, limit));
                    }
                    let _ = writeln!(out, "Chunk boundary (2 bytes: \"\\r\\n\")");
                }
                None => {
                    let _ = writeln!(out, "(error: malformed chunk)");
                }
            },
            UnitKind::LastChunk => {
                let _ = writeln!(out, "Last chunk: 0 octets, end of body ({} bytes)", b.len());
            }
            UnitKind::SseEvents => crate::sse::dissect(b, out),
            UnitKind::WsFrame => {
                let _ = writeln!(out, "WebSocket ({} bytes)", self.len);
                let mut head_text = String::new();
                crate::websocket::dissect_frame(b, &mut head_text);
                for line in head_text.lines() {
                    let _ = writeln!(out, "    {line}");
                }
                if let Some((head, payload)) = ws_parts(b)
                    && head.mask.is_some()
                {
                    let _ = writeln!(out, "    Unmasked payload: {}", preview(&payload, limit));
                } else if let Some((_, payload)) = ws_parts(b) {
                    let _ = writeln!(out, "    Payload: {}", preview(&payload, limit));
                }
                if let Some(inflated) = &self.inflated {
                    let _ = writeln!(
                        out,
                        "    Per-message compressed (RSV1): inflated payload {}",
                        preview(inflated, limit)
                    );
                }
            }
            UnitKind::Unframed => {
                let shown = preview_of(b, self.len, limit);
                let _ = writeln!(out, "Unframed bytes ({}): {shown}", self.len);
            }
        }
    }

    /// The record as a JSON object (for `--trace-file` and the `/trace` feed).
    pub fn to_json(&self, limit: usize) -> Value {
        let payload = self.payload_len();
        json!({
            "t": (self.time.as_secs_f64() * 1e6).round() / 1e6,
            "conn": self.conn,
            "transport": self.transport.name(),
            "channel": self.channel.as_deref(),
            "dir": self.direction.arrow(),
            "kind": self.kind.name(),
            "len": self.len,
            "overhead": self.len.saturating_sub(payload),
            "payload": payload,
            "summary": self.summary(limit),
        })
    }
}

fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// Each line of an HTTP head with its byte count, named as Wireshark names them.
fn dissect_head(bytes: &[u8], kind: UnitKind, out: &mut String) {
    let _ = writeln!(out, "Hypertext Transfer Protocol ({} bytes)", bytes.len());
    let mut first = true;
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        let text = String::from_utf8_lossy(line.trim_ascii_end());
        let label = if text.is_empty() {
            "Blank line"
        } else if first {
            first = false;
            if kind == UnitKind::RequestHead {
                "Request line"
            } else {
                "Status line"
            }
        } else {
            "Header"
        };
        let _ = if text.is_empty() {
            writeln!(out, "    {label} ({} bytes)", line.len())
        } else {
            writeln!(out, "    {label}: {text} ({} bytes)", line.len())
        };
    }
}

/// 16 bytes a row: offset, hex, printable ASCII.
fn hex_dump(bytes: &[u8], out: &mut String) {
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "      {:04x}  ", row * 16);
        for i in 0..16 {
            let _ = match chunk.get(i) {
                Some(b) => write!(out, "{b:02x} "),
                None => write!(out, "   "),
            };
            if i == 7 {
                out.push(' ');
            }
        }
        out.push(' ');
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(direction: Direction, transport: Transport, kind: UnitKind, bytes: &[u8]) -> Record {
        Record {
            time: Duration::from_millis(412),
            conn: 7,
            transport,
            channel: None,
            direction,
            kind,
            bytes: bytes.to_vec(),
            len: bytes.len(),
            inflated: None,
        }
    }

    #[test]
    fn renders_a_ws_frame_line_tree_and_hex() {
        let r = record(
            Direction::Received,
            Transport::Ws,
            UnitKind::WsFrame,
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
        );
        let mut line = String::new();
        r.render(Detail::Line, 64, &mut line);
        assert_eq!(
            line,
            "0.412 c7 ws < TEXT fin len=5 mask=37fa213d \"Hello\"\n"
        );
        let mut tree = String::new();
        r.render(Detail::Hex, 64, &mut tree);
        for expected in [
            "Opcode: Text (1)",
            "Masking-Key: 37fa213d",
            "Unmasked payload: \"Hello\"",
            "Overhead: 6 bytes, payload: 5 bytes",
            "0000  81 85 37 fa",
        ] {
            assert!(tree.contains(expected), "{expected:?} missing in\n{tree}");
        }
    }

    #[test]
    fn renders_a_compressed_frame_with_rsv1_and_its_inflated_preview() {
        let mut r = record(
            Direction::Sent,
            Transport::Ws,
            UnitKind::WsFrame,
            &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        );
        r.inflated = Some(b"Hello".to_vec());
        assert_eq!(r.summary(64), "TEXT fin rsv=0x4 len=7 inflated \"Hello\"");
        assert_eq!(r.payload_len(), 0);
        let mut tree = String::new();
        r.render(Detail::Tree, 64, &mut tree);
        for expected in [
            "Reserved: 0x4",
            "Per-message compressed (RSV1): inflated payload \"Hello\"",
            "Overhead: 2 bytes, compressed payload: 7 bytes",
        ] {
            assert!(tree.contains(expected), "{expected:?} missing in\n{tree}");
        }
    }

    #[test]
    fn renders_an_sse_chunk() {
        let r = record(
            Direction::Sent,
            Transport::Sse,
            UnitKind::Chunk { sse: true },
            b"11\r\nid: 1\ndata: one\n\n\r\n",
        );
        assert_eq!(r.payload_len(), 3);
        let mut tree = String::new();
        r.render(Detail::Tree, 64, &mut tree);
        assert!(tree.contains("Chunk size: 17 octets (4 bytes"), "{tree}");
        assert!(tree.contains("Data chunk (17 octets)"), "{tree}");
        assert!(
            tree.contains("Overhead: 20 bytes, payload: 3 bytes"),
            "{tree}"
        );
    }

    #[test]
    fn renders_heads_and_never_panics_on_garbage() {
        let r = record(
            Direction::Received,
            Transport::Poll,
            UnitKind::RequestHead,
            b"GET /poll/a?since=1 HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!(
            r.summary(64),
            "GET /poll/a?since=1 HTTP/1.1 (1 headers, 41 bytes)"
        );
        let mut out = String::new();
        r.render(Detail::Tree, 64, &mut out);
        assert!(
            out.contains("Request line: GET /poll/a?since=1 HTTP/1.1 (30 bytes)"),
            "{out}"
        );
        for kind in [
            UnitKind::RequestHead,
            UnitKind::ResponseHead,
            UnitKind::Body,
            UnitKind::Chunk { sse: true },
            UnitKind::LastChunk,
            UnitKind::SseEvents,
            UnitKind::WsFrame,
            UnitKind::Unframed,
        ] {
            for garbage in [
                &b""[..],
                b"\x81",
                b"\xff\xfe\r\n\r\n",
                b"\x81\x7f\xff\xff\xff\xff\xff\xff\xff\xff",
            ] {
                let mut out = String::new();
                record(Direction::Sent, Transport::Ws, kind, garbage).render(
                    Detail::Hex,
                    8,
                    &mut out,
                );
                let _ = record(Direction::Sent, Transport::Ws, kind, garbage).to_json(8);
            }
        }
    }
}
