//! Cutting one direction of a connection's byte stream into wire units, as Wireshark does: HTTP
//! heads and the bodies they announce, chunks, SSE events, WebSocket frames.
use super::{Direction, UnitKind};
use crate::http1::{BodyFraming, HeadReader, Limits};
use crate::websocket::deflate::Inflater;
use crate::websocket::{FrameHead, Opcode, apply_mask};

/// Inflated bytes kept per compressed frame for the trace's preview.
const INFLATED_PREVIEW: usize = 1024;

/// A unit bigger than this that is still incomplete is given up on (shown as unframed), so a
/// trace never holds more than this per direction.
const MAX_PENDING: usize = 32 * 1024 * 1024;

/// An HTTP head still without its blank line past this size is no head the server accepts; the
/// dissector stops looking (and rescanning) and shows the bytes as unframed.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// An HTTP head comes next.
    Head,
    /// A Content-Length body of this many bytes.
    Body(usize),
    /// A chunked body; `sse` when it is an event stream.
    Chunked { sse: bool },
    /// An event stream delimited by the end of the connection (HTTP/1.0).
    UntilClose,
    /// WebSocket frames, after an upgrade.
    WebSocket,
    /// The stream can no longer be framed.
    Lost,
}

/// One wire unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// What the unit is.
    pub kind: UnitKind,
    /// The unit's bytes exactly as they crossed the socket.
    pub bytes: Vec<u8>,
    /// For a frame of a compressed WebSocket message (permessage-deflate), the start of what its
    /// payload inflates to.
    pub inflated: Option<Vec<u8>>,
}

/// The dissector of one direction of one connection.
#[derive(Debug)]
pub struct Dissector {
    direction: Direction,
    state: State,
    pending: Vec<u8>,
    /// permessage-deflate as Wireshark follows it: one inflater per direction, kept across
    /// messages (a 32 KiB window decodes a peer that keeps its context, and one that does not).
    /// Made at the first frame with RSV1.
    inflater: Option<Box<Inflater>>,
    /// A compressed message is in progress (its later frames carry no RSV1).
    in_compressed: bool,
}

impl Dissector {
    /// A dissector for a connection at the start of an HTTP message.
    pub fn new(direction: Direction) -> Dissector {
        Dissector {
            direction,
            state: State::Head,
            pending: Vec::new(),
            inflater: None,
            in_compressed: false,
        }
    }

    /// A dissector joining a stream already in progress at a unit boundary: an SSE body (chunked or
    /// not) or WebSocket frames.
    pub fn joining(direction: Direction, sse_chunked: Option<bool>, websocket: bool) -> Dissector {
        let state = match (sse_chunked, websocket) {
            (_, true) => State::WebSocket,
            (Some(true), _) if direction == Direction::Sent => State::Chunked { sse: true },
            (Some(false), _) if direction == Direction::Sent => State::UntilClose,
            (Some(_), _) => State::Lost,
            (None, false) => State::Head,
        };
        Dissector {
            direction,
            state,
            pending: Vec::new(),
            inflater: None,
            in_compressed: false,
        }
    }

    /// Takes bytes that crossed the socket and appends every unit they complete to `units`.
    pub fn feed(&mut self, bytes: &[u8], units: &mut Vec<Unit>) {
        self.pending.extend_from_slice(bytes);
        while let Some((kind, len)) = self.next_unit() {
            let rest = self.pending.split_off(len);
            let bytes = std::mem::replace(&mut self.pending, rest);
            let inflated = match kind {
                UnitKind::WsFrame => self.inflate(&bytes),
                _ => None,
            };
            units.push(Unit {
                kind,
                bytes,
                inflated,
            });
        }
        if self.pending.len() > MAX_PENDING {
            self.state = State::Lost;
            units.push(Unit {
                kind: UnitKind::Unframed,
                bytes: std::mem::take(&mut self.pending),
                inflated: None,
            });
        }
    }

    /// Follows compressed messages (RSV1 on their first frame, RFC 7692 §6) and inflates each of
    /// their frames' payload, ending a message with the removed trailer (§7.2.2).
    fn inflate(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let (head, head_len) = FrameHead::decode(frame).ok()??;
        if head.opcode.is_control() {
            return None;
        }
        if head.opcode != Opcode::Continuation {
            self.in_compressed = head.rsv & 0b100 != 0;
        }
        if !self.in_compressed {
            return None;
        }
        let mut payload = frame.get(head_len..)?.to_vec();
        if let Some(key) = head.mask {
            apply_mask(&mut payload, key, 0);
        }
        let inflater = self.inflater.get_or_insert_with(Default::default);
        let mut out = Vec::new();
        let mut result = inflater.inflate(&payload, &mut out, MAX_PENDING);
        if head.fin {
            self.in_compressed = false;
            if result.is_ok() && !payload.is_empty() {
                result = inflater.finish(&mut out, MAX_PENDING);
            }
        }
        if result.is_err() {
            // The window is no longer known: later messages start afresh.
            inflater.reset();
        }
        out.truncate(INFLATED_PREVIEW);
        Some(out)
    }

    /// The kind and length of the unit at the start of `pending`, moving to the state after it.
    fn next_unit(&mut self) -> Option<(UnitKind, usize)> {
        let buf = &self.pending;
        if buf.is_empty() {
            return None;
        }
        match self.state {
            State::Lost => Some((UnitKind::Unframed, buf.len())),
            State::Head => self.head(),
            State::Body(n) => (buf.len() >= n).then(|| {
                self.state = State::Head;
                (UnitKind::Body, n)
            }),
            State::Chunked { sse } => self.chunk(sse),
            State::UntilClose => {
                let end = find(buf, b"\n\n")? + 2;
                Some((UnitKind::SseEvents, end))
            }
            State::WebSocket => match FrameHead::decode(buf) {
                Err(_) => {
                    self.state = State::Lost;
                    Some((UnitKind::Unframed, buf.len()))
                }
                Ok(None) => None,
                Ok(Some((head, head_len))) => {
                    let total = usize::try_from(head.payload_len)
                        .ok()
                        .and_then(|p| p.checked_add(head_len))?;
                    (buf.len() >= total).then_some((UnitKind::WsFrame, total))
                }
            },
        }
    }

    fn head(&mut self) -> Option<(UnitKind, usize)> {
        let buf = &self.pending;
        // Empty lines before a request line belong to it.
        let lead = buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let end = find(&buf[lead..], b"\r\n\r\n")
            .map(|i| lead + i + 4)
            .or_else(|| find(&buf[lead..], b"\n\n").map(|i| lead + i + 2));
        let Some(end) = end else {
            if buf.len() > MAX_HEAD {
                self.state = State::Lost;
                return Some((UnitKind::Unframed, buf.len()));
            }
            return None;
        };
        let head = &buf[lead..end];
        match self.direction {
            Direction::Received => {
                self.state = match HeadReader::new().decode(head, &Limits::default()) {
                    Ok(Some(req)) if req.has_token("upgrade", "websocket") => State::WebSocket,
                    Ok(Some(req)) => match BodyFraming::decide(&req) {
                        Ok(BodyFraming::Length(n)) => State::Body(n as usize),
                        Ok(BodyFraming::Chunked) => State::Chunked { sse: false },
                        Ok(BodyFraming::None) => State::Head,
                        Err(_) => State::Lost,
                    },
                    _ => State::Lost,
                };
                Some((UnitKind::RequestHead, end))
            }
            Direction::Sent => {
                self.state = response_body_state(head);
                Some((UnitKind::ResponseHead, end))
            }
        }
    }

    fn chunk(&mut self, sse: bool) -> Option<(UnitKind, usize)> {
        let buf = &self.pending;
        let line_end = find(buf, b"\r\n")?;
        let size_text = std::str::from_utf8(&buf[..line_end]).ok()?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            self.state = State::Lost;
            return Some((UnitKind::Unframed, buf.len()));
        };
        if size == 0 {
            // The last chunk, then trailer lines up to an empty one.
            let end = find(&buf[line_end..], b"\r\n\r\n")? + line_end + 4;
            self.state = State::Head;
            return Some((UnitKind::LastChunk, end));
        }
        let total = line_end.checked_add(2)?.checked_add(size)?.checked_add(2)?;
        (buf.len() >= total).then_some((UnitKind::Chunk { sse }, total))
    }
}

/// What follows a response head: nothing, a body of known length, chunks, an event stream until
/// close, or WebSocket frames.
fn response_body_state(head: &[u8]) -> State {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = response.parse(head) else {
        return State::Lost;
    };
    let status = response.code.unwrap_or(0);
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let event_stream = header("content-type").is_some_and(|v| v.starts_with(b"text/event-stream"));
    match status {
        101 => State::WebSocket,
        100..=199 | 204 | 304 => State::Head,
        _ if header("transfer-encoding").is_some() => State::Chunked { sse: event_stream },
        _ => match header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            Some(0) => State::Head,
            Some(n) => State::Body(n),
            None if event_stream => State::UntilClose,
            None => State::Lost,
        },
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(direction: Direction, input: &[u8]) -> Vec<(UnitKind, String)> {
        let mut whole = Vec::new();
        Dissector::new(direction).feed(input, &mut whole);
        let mut bytewise = Vec::new();
        let mut d = Dissector::new(direction);
        for b in input {
            d.feed(std::slice::from_ref(b), &mut bytewise);
        }
        assert_eq!(whole, bytewise, "whole and one byte at a time differ");
        whole
            .into_iter()
            .map(|u| (u.kind, String::from_utf8_lossy(&u.bytes).into_owned()))
            .collect()
    }

    #[test]
    fn cuts_requests_and_bodies() {
        let got = units(
            Direction::Received,
            b"POST /pub/a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi\
              POST /pub/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
              GET /poll/a HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        let kinds: Vec<UnitKind> = got.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                UnitKind::RequestHead,
                UnitKind::Body,
                UnitKind::RequestHead,
                UnitKind::Chunk { sse: false },
                UnitKind::LastChunk,
                UnitKind::RequestHead
            ]
        );
        assert_eq!(got[1].1, "hi");
    }

    #[test]
    fn cuts_an_event_stream_into_chunks() {
        let got = units(
            Direction::Sent,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
              d\r\nretry: 3000\n\n\r\n11\r\nid: 1\ndata: one\n\n\r\n0\r\n\r\n",
        );
        assert_eq!(
            got[1],
            (
                UnitKind::Chunk { sse: true },
                "d\r\nretry: 3000\n\n\r\n".into()
            )
        );
        assert_eq!(got[2].0, UnitKind::Chunk { sse: true });
        assert_eq!(got[3].0, UnitKind::LastChunk);
    }

    #[test]
    fn follows_an_upgrade_into_frames() {
        let mut input = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        input.extend_from_slice(b"\x81\x05hello\x89\x00");
        let got = units(Direction::Sent, &input);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, UnitKind::WsFrame);
        assert!(got[1].1.ends_with("hello"));
        assert_eq!(got[2].0, UnitKind::WsFrame);
    }

    /// A frame with any head: the payload masked when the head says so.
    fn frame_bytes(head: FrameHead, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        head.encode(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = head.mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }

    #[test]
    fn inflates_compressed_messages_across_fragments_and_context() {
        let mut d = Dissector::joining(Direction::Received, None, true);
        // RFC 7692 §7.2.3: "Hello" compressed, cut in two fragments (RSV1 on the first only),
        // a ping between, then "Hello" again relying on the first message's window.
        let mut wire = frame_bytes(
            FrameHead {
                fin: false,
                rsv: 0b100,
                opcode: Opcode::Text,
                mask: Some([1, 2, 3, 4]),
                payload_len: 3,
            },
            &[0xf2, 0x48, 0xcd],
        );
        let mut ping = Vec::new();
        crate::websocket::encode_masked_frame(true, Opcode::Ping, b"", [9; 4], &mut ping);
        wire.extend(ping);
        let mut tail = Vec::new();
        crate::websocket::encode_masked_frame(
            true,
            Opcode::Continuation,
            &[0xc9, 0xc9, 0x07, 0x00],
            [5; 4],
            &mut tail,
        );
        wire.extend(tail);
        let mut again = frame_bytes(
            FrameHead {
                fin: true,
                rsv: 0b100,
                opcode: Opcode::Text,
                mask: None,
                payload_len: 5,
            },
            &[0xf2, 0x00, 0x11, 0x00, 0x00],
        );
        wire.append(&mut again);
        let mut units = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b), &mut units);
        }
        let inflated: Vec<Option<&[u8]>> = units.iter().map(|u| u.inflated.as_deref()).collect();
        assert_eq!(
            inflated,
            [
                Some(&b"He"[..]),
                None,
                Some(&b"llo"[..]),
                Some(&b"Hello"[..])
            ]
        );
    }
}
