//! Cutting one direction of a connection's byte stream into wire units, as Wireshark does: HTTP
//! heads and the bodies they announce, chunks, SSE events, WebSocket frames.
//!
//! Whatever the peer sends, a dissector's memory and time are bounded by the server's own limits:
//! it keeps a unit's framing whole (an HTTP head up to [`MAX_HEAD`], a chunk-size line up to
//! [`MAX_SIZE_LINE`], a trailer section, a frame header) and at most `keep` bytes of its payload,
//! counting the rest; every delimiter is searched once, from where the last search stopped. The
//! driver feeds the received side only with what a session consumed as wire units, never with
//! input a session throws away (an event stream ignores what its client sends).
use super::{Direction, UnitKind};
use crate::http1::{BodyFraming, HeadReader, Limits};
use crate::websocket::deflate::Inflater;
use crate::websocket::{FrameHead, Opcode, apply_mask};

/// Inflated bytes kept per compressed frame for the trace's preview.
const INFLATED_PREVIEW: usize = 1024;

/// What one piece of a compressed frame may inflate to before the dissector gives up on
/// inflating the message (a decompression bomb costs it no more than this, transiently).
const MAX_INFLATE_STEP: usize = 1024 * 1024;

/// An HTTP head still without its blank line past this size is no head the server accepts (its
/// own limit is 16 KiB by default); the dissector stops looking and shows the bytes as unframed.
const MAX_HEAD: usize = 64 * 1024;

/// The longest chunk-size line (extensions included) framed, as the chunked decoder's limit.
const MAX_SIZE_LINE: usize = 1024;

/// The longest trailer section framed after the last chunk, as the chunked decoder's limit.
const MAX_TRAILER: usize = 8 * 1024;

/// Sent units are kept whole (their payload counts come from their bytes); one still incomplete
/// past this size is given up on (shown as unframed).
const MAX_SENT_UNIT: usize = 32 * 1024 * 1024;

/// Payload bytes a received unit keeps by default (the trace preview's default).
const DEFAULT_KEEP: usize = 64;

/// One wire unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// What the unit is.
    pub kind: UnitKind,
    /// Its bytes: all of them, or (received payload past the preview) its framing and the first
    /// bytes of its payload.
    pub bytes: Vec<u8>,
    /// Its length on the wire.
    pub len: usize,
    /// For a frame of a compressed WebSocket message, the start of what it inflates to.
    pub inflated: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// An HTTP head comes next.
    Head,
    /// A Content-Length body with this many bytes still to come.
    Body { remaining: u64 },
    /// A chunk-size line of a chunked body; `sse` when it is an event stream.
    ChunkLine { sse: bool },
    /// Chunk data and its closing CRLF, this many bytes still to come.
    ChunkData { sse: bool, remaining: u64 },
    /// The trailer section after the last chunk, up to its empty line.
    Trailer,
    /// An event stream delimited by the end of the connection (HTTP/1.0).
    UntilClose,
    /// A WebSocket frame header, after an upgrade.
    FrameHead,
    /// A WebSocket frame's payload, this many bytes still to come.
    FramePayload { remaining: u64 },
    /// The stream can no longer be framed.
    Lost,
}

/// The dissector of one direction of one connection.
#[derive(Debug)]
pub struct Dissector {
    direction: Direction,
    state: State,
    /// The current unit's bytes as kept: its framing, then up to `keep` bytes of payload.
    kept: Vec<u8>,
    /// Bytes of the current unit seen so far, kept or not.
    len: usize,
    /// Where the payload starts in `kept` (payload bytes kept = `kept.len() - payload_at`).
    payload_at: usize,
    /// How far the search for the current unit's delimiter got in `kept`.
    scanned: usize,
    /// Leading empty lines of a head (they belong to it).
    lead: usize,
    /// Payload bytes a unit keeps (`None`: all, for sent units).
    keep: Option<usize>,
    /// permessage-deflate, followed as Wireshark does: one inflater per direction, kept across
    /// messages (its 32 KiB window decodes a peer that keeps its context and one that does not).
    /// Made at the first frame with RSV1; every compressed payload byte passes through it once.
    inflater: Option<Box<Inflater>>,
    /// A compressed message is in progress (its later frames carry no RSV1).
    in_compressed: bool,
    /// A preview's worth of the compressed message in progress was inflated: the rest of it is
    /// not (a trace costs that much inflation per message, whatever the message inflates to).
    inflated_enough: bool,
    /// The current frame's inflation: its masking key and offset, whether it ends its message,
    /// and the preview so far.
    inflating: Option<Inflating>,
}

/// The inflation of the frame being cut.
#[derive(Debug)]
struct Inflating {
    mask: Option<[u8; 4]>,
    offset: usize,
    fin: bool,
    preview: Vec<u8>,
}

/// How a search for a delimiter went.
enum Scan {
    /// Not found yet; all the input offered was taken.
    More,
    /// Found: the unit ends at this offset of `kept`.
    End(usize),
    /// Not found within the unit's limit.
    TooLong,
}

impl Dissector {
    /// A dissector for a connection at the start of an HTTP message.
    pub fn new(direction: Direction) -> Dissector {
        Dissector::in_state(direction, State::Head)
    }

    /// A dissector joining a stream already in progress at a unit boundary: an SSE body (chunked or
    /// not) or WebSocket frames.
    pub fn joining(direction: Direction, sse_chunked: Option<bool>, websocket: bool) -> Dissector {
        let state = match (sse_chunked, websocket) {
            (_, true) => State::FrameHead,
            (Some(true), _) if direction == Direction::Sent => State::ChunkLine { sse: true },
            (Some(false), _) if direction == Direction::Sent => State::UntilClose,
            (Some(_), _) => State::Lost,
            (None, false) => State::Head,
        };
        Dissector::in_state(direction, state)
    }

    fn in_state(direction: Direction, state: State) -> Dissector {
        Dissector {
            direction,
            state,
            kept: Vec::new(),
            len: 0,
            payload_at: 0,
            scanned: 0,
            lead: 0,
            keep: (direction == Direction::Received).then_some(DEFAULT_KEEP),
            inflater: None,
            in_compressed: false,
            inflated_enough: false,
            inflating: None,
        }
    }

    /// Received units keep at most `preview` bytes of payload (the trace preview): what the peer
    /// sends is never held beyond what a record shows.
    pub fn keeping(mut self, preview: usize) -> Dissector {
        if self.direction == Direction::Received {
            self.keep = Some(preview);
        }
        self
    }

    /// Bytes held for the unit in progress (for tests and the bound above).
    pub fn held(&self) -> usize {
        self.kept.len()
    }

    /// Bytes of the unit in progress seen so far, held or only counted.
    pub fn in_progress(&self) -> usize {
        self.len
    }

    /// Takes bytes that crossed the socket and appends every unit they complete to `units`.
    pub fn feed(&mut self, mut input: &[u8], units: &mut Vec<Unit>) {
        while !input.is_empty() {
            let used = match self.state {
                State::Lost => {
                    self.payload(input);
                    self.emit(UnitKind::Unframed, units);
                    input.len()
                }
                State::Head => self.head(input, units),
                State::Body { remaining } => {
                    let (n, done) = self.payload_of(input, remaining);
                    self.state = match done {
                        true => {
                            self.emit(UnitKind::Body, units);
                            State::Head
                        }
                        false => State::Body {
                            remaining: remaining - n as u64,
                        },
                    };
                    n
                }
                State::ChunkLine { sse } => self.chunk_line(input, sse, units),
                State::ChunkData { sse, remaining } => {
                    let (n, done) = self.payload_of(input, remaining);
                    self.state = match done {
                        true => {
                            self.emit(UnitKind::Chunk { sse }, units);
                            State::ChunkLine { sse }
                        }
                        false => State::ChunkData {
                            sse,
                            remaining: remaining - n as u64,
                        },
                    };
                    n
                }
                State::Trailer => {
                    let max = MAX_SIZE_LINE + 2 + MAX_TRAILER + 2;
                    let (n, scan) = self.scan(input, b"\r\n\r\n", max);
                    match scan {
                        Scan::More => {}
                        Scan::End(_) => {
                            self.emit(UnitKind::LastChunk, units);
                            self.state = State::Head;
                        }
                        Scan::TooLong => self.lose(units),
                    }
                    n
                }
                State::UntilClose => {
                    let (n, scan) = self.scan(input, b"\n\n", MAX_SENT_UNIT);
                    match scan {
                        Scan::More => {}
                        Scan::End(_) => self.emit(UnitKind::SseEvents, units),
                        Scan::TooLong => self.lose(units),
                    }
                    n
                }
                State::FrameHead => self.frame_head(input, units),
                State::FramePayload { remaining } => {
                    let (n, done) = self.payload_of(input, remaining);
                    self.inflate_piece(&input[..n]);
                    if done {
                        self.end_inflation();
                    }
                    self.state = match done {
                        true => {
                            self.emit(UnitKind::WsFrame, units);
                            State::FrameHead
                        }
                        false => State::FramePayload {
                            remaining: remaining - n as u64,
                        },
                    };
                    n
                }
            };
            input = &input[used..];
            if self.keep.is_none() && self.kept.len() > MAX_SENT_UNIT {
                self.lose(units);
            }
        }
    }

    /// Takes up to `remaining` payload bytes of `input`; returns how many, and whether that was
    /// all of them.
    fn payload_of(&mut self, input: &[u8], remaining: u64) -> (usize, bool) {
        let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
        self.payload(&input[..n]);
        (n, n as u64 == remaining)
    }

    /// Counts payload bytes, keeping those within the limit.
    fn payload(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        let room = match self.keep {
            Some(keep) => keep.saturating_sub(self.kept.len() - self.payload_at),
            None => bytes.len(),
        };
        self.kept.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }

    /// Appends `input` to a unit that is all framing and looks for `delim` from where the last
    /// look stopped, within `max` bytes of unit. Returns the input bytes used.
    fn scan(&mut self, input: &[u8], delim: &[u8], max: usize) -> (usize, Scan) {
        let before = self.kept.len();
        let take = input.len().min((max + 1).saturating_sub(before));
        self.kept.extend_from_slice(&input[..take]);
        let from = self.scanned;
        if let Some(i) = find(&self.kept[from..], delim) {
            let end = from + i + delim.len();
            self.kept.truncate(end);
            self.len = end;
            return (end - before, Scan::End(end));
        }
        self.len = self.kept.len();
        self.scanned = self.kept.len().saturating_sub(delim.len() - 1).max(from);
        let scan = match self.kept.len() > max {
            true => Scan::TooLong,
            false => Scan::More,
        };
        (take, scan)
    }

    /// The current unit can not be framed: it is shown as it is, and so is the rest.
    fn lose(&mut self, units: &mut Vec<Unit>) {
        self.emit(UnitKind::Unframed, units);
        self.state = State::Lost;
    }

    fn emit(&mut self, kind: UnitKind, units: &mut Vec<Unit>) {
        units.push(Unit {
            kind,
            bytes: std::mem::take(&mut self.kept),
            len: self.len,
            inflated: self.inflating.take().map(|i| i.preview),
        });
        self.len = 0;
        self.payload_at = 0;
        self.scanned = 0;
        self.lead = 0;
    }

    /// An HTTP head: up to its blank line (CRLF CRLF, or bare LFs as RFC 9112 §2.2 allows).
    fn head(&mut self, input: &[u8], units: &mut Vec<Unit>) -> usize {
        let before = self.kept.len();
        let take = input.len().min((MAX_HEAD + 1).saturating_sub(before));
        self.kept.extend_from_slice(&input[..take]);
        let k = &self.kept;
        let mut end = None;
        let mut j = self.scanned;
        while j < k.len() {
            let b = k[j];
            if j == self.lead && (b == b'\r' || b == b'\n') {
                // Empty lines before a request line belong to it.
                self.lead += 1;
            } else if b == b'\n'
                && j > self.lead
                && (k[j - 1] == b'\n'
                    || (k[j - 1] == b'\r' && j >= self.lead + 2 && k[j - 2] == b'\n'))
            {
                end = Some(j + 1);
                break;
            }
            j += 1;
        }
        self.scanned = j;
        let Some(end) = end else {
            self.len = self.kept.len();
            if self.kept.len() > MAX_HEAD {
                self.lose(units);
            }
            return take;
        };
        self.kept.truncate(end);
        self.len = end;
        let head = &self.kept[self.lead..end];
        let kind = match self.direction {
            Direction::Received => {
                self.state = match HeadReader::new().decode(head, &Limits::default()) {
                    Ok(Some(req)) if req.has_token("upgrade", "websocket") => State::FrameHead,
                    Ok(Some(req)) => match BodyFraming::decide(&req) {
                        Ok(BodyFraming::Length(0)) | Ok(BodyFraming::None) => State::Head,
                        Ok(BodyFraming::Length(n)) => State::Body { remaining: n },
                        Ok(BodyFraming::Chunked) => State::ChunkLine { sse: false },
                        Err(_) => State::Lost,
                    },
                    _ => State::Lost,
                };
                UnitKind::RequestHead
            }
            Direction::Sent => {
                self.state = response_body_state(head);
                UnitKind::ResponseHead
            }
        };
        self.emit(kind, units);
        end - before
    }

    /// A chunk-size line: a chunk's data follows, or the last chunk's trailer section.
    fn chunk_line(&mut self, input: &[u8], sse: bool, units: &mut Vec<Unit>) -> usize {
        let (n, scan) = self.scan(input, b"\r\n", MAX_SIZE_LINE + 2);
        let end = match scan {
            Scan::More => return n,
            Scan::TooLong => {
                self.lose(units);
                return n;
            }
            Scan::End(end) => end,
        };
        let size = std::str::from_utf8(&self.kept[..end - 2])
            .ok()
            .and_then(|line| line.split(';').next())
            .and_then(|size| u64::from_str_radix(size.trim(), 16).ok());
        match size {
            None => self.lose(units),
            Some(0) => {
                // The last chunk: trailer lines up to an empty one, the size line's CRLF included.
                self.scanned = end - 2;
                self.state = State::Trailer;
            }
            Some(size) => {
                self.payload_at = end;
                self.state = State::ChunkData {
                    sse,
                    remaining: size.saturating_add(2),
                };
            }
        }
        n
    }

    /// Follows compressed messages (RSV1 on their first frame, RFC 7692 §6): a data frame of one
    /// has its payload inflated as it passes.
    fn begin_inflation(&mut self, head: &FrameHead) {
        if head.opcode.is_control() {
            return;
        }
        if head.opcode != Opcode::Continuation {
            self.in_compressed = head.rsv & 0b100 != 0;
            self.inflated_enough = false;
        }
        if self.in_compressed {
            self.inflating = Some(Inflating {
                mask: head.mask,
                offset: 0,
                fin: head.fin,
                preview: Vec::new(),
            });
        }
    }

    /// Inflates a piece of the current frame's payload, keeping the preview's worth.
    fn inflate_piece(&mut self, piece: &[u8]) {
        let Some(frame) = &mut self.inflating else {
            return;
        };
        if self.inflated_enough {
            return;
        }
        let mut payload = piece.to_vec();
        if let Some(key) = frame.mask {
            apply_mask(&mut payload, key, frame.offset);
        }
        frame.offset += piece.len();
        let inflater = self.inflater.get_or_insert_with(Default::default);
        let mut out = Vec::new();
        if inflater
            .inflate(&payload, &mut out, MAX_INFLATE_STEP)
            .is_err()
        {
            // Invalid or a bomb: the window is no longer known, later messages start afresh.
            inflater.reset();
            self.in_compressed = false;
        }
        let room = INFLATED_PREVIEW.saturating_sub(frame.preview.len());
        frame.preview.extend_from_slice(&out[..room.min(out.len())]);
    }

    /// The current frame is complete: a message's last frame inflates the trailer its sender
    /// removed (RFC 7692 §7.2.2).
    fn end_inflation(&mut self) {
        let (Some(frame), Some(inflater)) = (&mut self.inflating, &mut self.inflater) else {
            return;
        };
        if !frame.fin {
            return;
        }
        self.in_compressed = false;
        if self.inflated_enough {
            // Inflation stopped mid-message: the window is not known, the next message starts
            // afresh (a peer that keeps its context shows no preview for it).
            inflater.reset();
            return;
        }
        let mut out = Vec::new();
        if inflater.finish(&mut out, MAX_INFLATE_STEP).is_err() {
            inflater.reset();
        }
        let room = INFLATED_PREVIEW.saturating_sub(frame.preview.len());
        frame.preview.extend_from_slice(&out[..room.min(out.len())]);
    }

    /// A WebSocket frame header (at most 14 bytes), then its payload.
    fn frame_head(&mut self, input: &[u8], units: &mut Vec<Unit>) -> usize {
        const MAX_FRAME_HEAD: usize = 14;
        let before = self.kept.len();
        let take = input.len().min(MAX_FRAME_HEAD - before);
        self.kept.extend_from_slice(&input[..take]);
        self.len = self.kept.len();
        match FrameHead::decode(&self.kept) {
            Err(_) => {
                self.lose(units);
                take
            }
            Ok(None) => take,
            Ok(Some((head, head_len))) => {
                self.kept.truncate(head_len);
                self.len = head_len;
                self.payload_at = head_len;
                self.begin_inflation(&head);
                if head.payload_len == 0 {
                    self.end_inflation();
                    self.emit(UnitKind::WsFrame, units);
                } else {
                    self.state = State::FramePayload {
                        remaining: head.payload_len,
                    };
                }
                head_len - before
            }
        }
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
        101 => State::FrameHead,
        100..=199 | 204 | 304 => State::Head,
        _ if header("transfer-encoding").is_some() => State::ChunkLine { sse: event_stream },
        _ => match header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            Some(0) => State::Head,
            Some(n) => State::Body {
                remaining: n as u64,
            },
            None if event_stream => State::UntilClose,
            None => State::Lost,
        },
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests;
