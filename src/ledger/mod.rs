//! The wire ledger: every byte that crosses a socket, attributed to a transport and to what the
//! byte is for, with the counts and latencies that turn bytes into cost per delivered message.
//!
//! Pure bookkeeping: no I/O and no clock. The driver tells it what it read and wrote (the cores
//! say what each byte was: [`Layout`] for output units, tallies for input), and the ledger adds up.
//!
//! ```text
//!   socket write ── OutQueue ─(Layout runs)─► Ledger::out(transport, category, n)
//!   socket read  ── cores consume ──────────► Ledger::inbound(transport, category, n)
//!   first byte of a delivery written ───────► Ledger::latency(transport, µs)
//! ```
//! Within one unit the categories are laid out in a canonical order (framing, syntax, payload,
//! trailer), so a unit cut by a partial write is attributed approximately until the rest is written;
//! once a unit is out, its total per category is exact.
pub mod report;
mod stats;

pub use stats::{Deflated, LatencySummary, TransportStats};

use std::fmt;

/// Which transport a byte belongs to. `Untracked` bytes (the `/stats` and `/trace` endpoints
/// themselves, the demo page) are not counted anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Interval polling: `GET /poll/{channel}`.
    Poll,
    /// Long polling: `GET /longpoll/{channel}`.
    LongPoll,
    /// Server-Sent Events: `GET /sse/{channel}`.
    Sse,
    /// WebSocket on a channel: `GET /ws/{channel}`, upgraded (`/echo` counts as `Other`).
    Ws,
    /// Publishing over HTTP: `POST /pub/{channel}`.
    Publish,
    /// Requests refused before a route was known, the `/echo` endpoint, anything else.
    Other,
    /// Not counted: the `/stats`, `/trace` and `/drop` endpoints and the demo page.
    Untracked,
}

impl Transport {
    /// The transports reported, in report order.
    pub const REPORTED: [Transport; 6] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Sse,
        Transport::Ws,
        Transport::Publish,
        Transport::Other,
    ];

    /// The lowercase name used in `/stats` JSON, trace filters and reports (`longpoll`, `ws`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "longpoll",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::Publish => "publish",
            Transport::Other => "other",
            Transport::Untracked => "untracked",
        }
    }

    /// The reported transport called `name` (as [`Transport::name`] spells it); `None` for
    /// anything else, `untracked` included.
    pub fn from_name(name: &str) -> Option<Transport> {
        Transport::REPORTED.into_iter().find(|t| t.name() == name)
    }

    fn index(self) -> Option<usize> {
        Transport::REPORTED.iter().position(|&t| t == self)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a byte on the wire is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Request line, header fields and the blank line (and empty lines before a request).
    RequestHead,
    /// Status line, header fields and the blank line.
    ResponseHead,
    /// Chunked coding: size lines, the CRLF after each chunk, the last chunk.
    ChunkFraming,
    /// SSE syntax: `id: `, `data: `, `retry: `, line ends, the blank line that dispatches.
    SseFields,
    /// JSON around the payload in poll, long-poll and WebSocket bodies (including escapes).
    JsonEnvelope,
    /// WebSocket frame head without the masking key.
    WsFrameHeader,
    /// The 4-byte masking key of client frames.
    WsMaskKey,
    /// The upgrade request and the 101 answer.
    WsHandshake,
    /// WebSocket ping, pong and close frames, whole.
    ControlFrames,
    /// SSE heartbeat comments (with their chunk framing).
    Heartbeats,
    /// The published message's own bytes.
    Payload,
    /// Payload of compressed WebSocket frames (permessage-deflate): message and JSON envelope
    /// deflated together, so neither can be told apart on the wire.
    WsCompressed,
    /// Bodies of refused requests, error texts, bytes of a broken stream.
    Other,
}

impl Category {
    /// Every category, in the order of [`Category::index`] and of reports.
    pub const ALL: [Category; 13] = [
        Category::RequestHead,
        Category::ResponseHead,
        Category::ChunkFraming,
        Category::SseFields,
        Category::JsonEnvelope,
        Category::WsFrameHeader,
        Category::WsMaskKey,
        Category::WsHandshake,
        Category::ControlFrames,
        Category::Heartbeats,
        Category::Payload,
        Category::WsCompressed,
        Category::Other,
    ];
    /// Number of categories: the length of a [`ByCategory`] array.
    pub const COUNT: usize = Category::ALL.len();

    /// The snake_case name used as the key in `/stats` JSON and reports (`sse_fields`).
    pub fn name(self) -> &'static str {
        match self {
            Category::RequestHead => "request_head",
            Category::ResponseHead => "response_head",
            Category::ChunkFraming => "chunk_framing",
            Category::SseFields => "sse_fields",
            Category::JsonEnvelope => "json_envelope",
            Category::WsFrameHeader => "ws_frame_header",
            Category::WsMaskKey => "ws_mask_key",
            Category::WsHandshake => "ws_handshake",
            Category::ControlFrames => "control_frames",
            Category::Heartbeats => "heartbeats",
            Category::Payload => "payload",
            Category::WsCompressed => "ws_compressed",
            Category::Other => "other",
        }
    }

    /// Position in [`Category::ALL`]: the slot of this category in a [`ByCategory`] array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How the bytes of one output unit divide into categories, in order: up to four runs, kept
/// inline so a layout costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    runs: [(Category, u32); Layout::MAX_RUNS],
    len: u8,
}

impl Layout {
    /// Most runs a layout holds inline; longer layouts fold the excess into the last run.
    pub const MAX_RUNS: usize = 4;

    /// Every byte of the unit is of one category.
    pub fn uniform(category: Category, n: usize) -> Layout {
        Layout::from_runs(&[(category, n)])
    }

    /// Runs in wire order; empty runs are skipped, and runs past [`Layout::MAX_RUNS`] are folded
    /// into the last one (callers keep to four).
    pub fn from_runs(runs: &[(Category, usize)]) -> Layout {
        let mut layout = Layout {
            runs: [(Category::Other, 0); Layout::MAX_RUNS],
            len: 0,
        };
        for &(category, n) in runs {
            layout.push(category, n);
        }
        layout
    }

    /// Appends a run, merging with the last one when the category is the same. Returns false
    /// (and changes nothing) when the layout is full.
    pub fn try_push(&mut self, category: Category, n: usize) -> bool {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if n == 0 {
            return true;
        }
        let len = usize::from(self.len);
        if len > 0 && self.runs[len - 1].0 == category {
            self.runs[len - 1].1 = self.runs[len - 1].1.saturating_add(n);
            return true;
        }
        if len == Layout::MAX_RUNS {
            return false;
        }
        self.runs[len] = (category, n);
        self.len += 1;
        true
    }

    fn push(&mut self, category: Category, n: usize) {
        if !self.try_push(category, n) {
            let last = Layout::MAX_RUNS - 1;
            self.runs[last].1 = self.runs[last].1.saturating_add(n as u32);
        }
    }

    /// Appends another layout's runs; false (nothing changed) when they do not fit.
    pub fn try_extend(&mut self, other: &Layout) -> bool {
        let saved = *self;
        for &(category, n) in other.runs() {
            if !self.try_push(category, n as usize) {
                *self = saved;
                return false;
            }
        }
        true
    }

    /// The runs in wire order: each a category and its byte count; never empty runs.
    pub fn runs(&self) -> &[(Category, u32)] {
        &self.runs[..usize::from(self.len)]
    }

    /// Total bytes described.
    pub fn len(&self) -> usize {
        self.runs().iter().map(|&(_, n)| n as usize).sum()
    }

    /// Whether the layout describes no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` for each category share of the byte range `start..start + n` of the unit.
    pub fn attribute(&self, start: usize, n: usize, mut f: impl FnMut(Category, usize)) {
        let end = start + n;
        let mut pos = 0;
        for &(category, run) in self.runs() {
            let run_end = pos + run as usize;
            let from = start.max(pos);
            let to = end.min(run_end);
            if from < to {
                f(category, to - from);
            }
            pos = run_end;
            if pos >= end {
                break;
            }
        }
    }
}

/// Bytes counted by category, one direction.
pub type ByCategory = [u64; Category::COUNT];

/// The ledger of one event loop (or, merged, of the server): per transport bytes, counts and
/// latency.
#[derive(Debug, Clone)]
pub struct Ledger {
    transports: Vec<TransportStats>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            transports: Transport::REPORTED
                .iter()
                .map(|_| TransportStats::default())
                .collect(),
        }
    }
}

/// A counter kept per transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Connections that carried this transport (counted when first routed to it).
    Connections,
    /// Request heads read, whatever their answer.
    Requests,
    /// Responses queued; a stream's response head counts once, however long it lasts.
    Responses,
    /// Messages delivered to a subscriber (a poll answer with three messages counts three).
    Messages,
    /// Answers with no message: 204 polls, timed-out long-polls.
    Empty,
    /// Requests and streams that resumed from an id (since=, Last-Event-ID).
    Resumes,
    /// Stream subscribers cut off for falling behind.
    SlowDisconnects,
    /// `read` calls made on the transport's sockets.
    ReadSyscalls,
    /// `write` calls made on the transport's sockets, successful or not.
    WriteSyscalls,
}

impl Ledger {
    /// An empty ledger: every reported transport at zero.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    fn stats_mut(&mut self, transport: Transport) -> Option<&mut TransportStats> {
        transport.index().map(|i| &mut self.transports[i])
    }

    /// Bytes received, of `category`.
    pub fn inbound(&mut self, transport: Transport, category: Category, n: usize) {
        if let Some(s) = self.stats_mut(transport) {
            s.bytes_in[category.index()] += n as u64;
        }
    }

    /// Bytes sent, of `category`.
    pub fn outbound(&mut self, transport: Transport, category: Category, n: usize) {
        if let Some(s) = self.stats_mut(transport) {
            s.bytes_out[category.index()] += n as u64;
        }
    }

    /// Adds `n` to `counter` of `transport`; an unreported transport is ignored.
    pub fn count(&mut self, transport: Transport, counter: Counter, n: u64) {
        if let Some(s) = self.stats_mut(transport) {
            s.add(counter, n);
        }
    }

    /// One compressed WebSocket message sent: its payload on the wire and uncompressed.
    pub fn deflated_out(&mut self, transport: Transport, compressed: u64, uncompressed: u64) {
        if let Some(s) = self.stats_mut(transport) {
            s.deflate_out.messages += 1;
            s.deflate_out.compressed += compressed;
            s.deflate_out.uncompressed += uncompressed;
        }
    }

    /// Compressed WebSocket messages received: their payload on the wire and inflated.
    pub fn inflated_in(&mut self, transport: Transport, tally: Deflated) {
        if let Some(s) = self.stats_mut(transport) {
            s.deflate_in.messages += tally.messages;
            s.deflate_in.compressed += tally.compressed;
            s.deflate_in.uncompressed += tally.uncompressed;
        }
    }

    /// Publish-to-first-byte latency of one delivery, in microseconds.
    pub fn latency(&mut self, transport: Transport, micros: u64) {
        if let Some(s) = self.stats_mut(transport) {
            s.record_latency(micros);
        }
    }

    /// Adds another ledger's counts to this one: each event loop keeps its own ledger (no lock
    /// on the delivery path), and `/stats` sums them.
    pub fn merge(&mut self, other: &Ledger) {
        for (mine, theirs) in self.transports.iter_mut().zip(&other.transports) {
            mine.merge(theirs);
        }
    }

    /// The totals of `transport`; `None` for `Untracked`, which is not counted.
    pub fn get(&self, transport: Transport) -> Option<&TransportStats> {
        transport.index().map(|i| &self.transports[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_two_loops_ledgers_sums_every_figure() {
        let mut a = Ledger::new();
        a.outbound(Transport::Sse, Category::Payload, 10);
        a.inbound(Transport::Sse, Category::RequestHead, 7);
        a.count(Transport::Sse, Counter::Messages, 2);
        a.latency(Transport::Sse, 100);
        a.deflated_out(Transport::Ws, 5, 9);
        let mut b = Ledger::new();
        b.outbound(Transport::Sse, Category::Payload, 32);
        b.count(Transport::Sse, Counter::Messages, 3);
        b.count(Transport::Ws, Counter::WriteSyscalls, 4);
        b.latency(Transport::Sse, 300);
        b.deflated_out(Transport::Ws, 1, 2);
        a.merge(&b);
        let sse = a.get(Transport::Sse).unwrap();
        assert_eq!(sse.bytes_out[Category::Payload.index()], 42);
        assert_eq!(sse.bytes_in[Category::RequestHead.index()], 7);
        assert_eq!(sse.messages, 5);
        assert_eq!(sse.latency().count, 2);
        let ws = a.get(Transport::Ws).unwrap();
        assert_eq!(ws.write_syscalls, 4);
        assert_eq!((ws.deflate_out.messages, ws.deflate_out.compressed), (2, 6));
        assert_eq!(ws.deflate_out.uncompressed, 11);
    }

    #[test]
    fn layout_attributes_ranges_across_runs() {
        let l = Layout::from_runs(&[
            (Category::ChunkFraming, 3),
            (Category::SseFields, 10),
            (Category::Payload, 5),
            (Category::ChunkFraming, 2),
        ]);
        assert_eq!(l.len(), 20);
        let mut got = vec![];
        l.attribute(2, 13, |c, n| got.push((c, n)));
        assert_eq!(
            got,
            [
                (Category::ChunkFraming, 1),
                (Category::SseFields, 10),
                (Category::Payload, 2)
            ]
        );
        let mut total = 0;
        for start in 0..20 {
            l.attribute(start, 1, |_, n| total += n);
        }
        assert_eq!(total, 20);
    }

    #[test]
    fn layout_merges_and_refuses_overflow() {
        let mut l = Layout::uniform(Category::ResponseHead, 10);
        assert!(l.try_push(Category::ResponseHead, 5));
        assert_eq!(l.runs(), [(Category::ResponseHead, 15)]);
        let four = Layout::from_runs(&[
            (Category::JsonEnvelope, 1),
            (Category::Payload, 1),
            (Category::JsonEnvelope, 1),
            (Category::Payload, 1),
        ]);
        let mut full = four;
        assert!(!full.try_extend(&Layout::uniform(Category::Other, 1)));
        assert_eq!(full, four);
    }

    #[test]
    fn categories_have_their_report_names() {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "request_head",
                "response_head",
                "chunk_framing",
                "sse_fields",
                "json_envelope",
                "ws_frame_header",
                "ws_mask_key",
                "ws_handshake",
                "control_frames",
                "heartbeats",
                "payload",
                "ws_compressed",
                "other"
            ]
        );
        for (i, c) in Category::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }

    #[test]
    fn layout_is_empty_only_without_bytes() {
        assert!(Layout::from_runs(&[]).is_empty());
        assert!(Layout::uniform(Category::Payload, 0).is_empty());
        assert!(!Layout::uniform(Category::Payload, 3).is_empty());
    }

    #[test]
    fn layout_attribution_skips_runs_outside_the_range() {
        let l = Layout::from_runs(&[(Category::ChunkFraming, 3), (Category::Payload, 3)]);
        let mut got = vec![];
        l.attribute(3, 3, |c, n| got.push((c, n)));
        assert_eq!(got, [(Category::Payload, 3)]);
        got.clear();
        l.attribute(0, 3, |c, n| got.push((c, n)));
        assert_eq!(got, [(Category::ChunkFraming, 3)]);
    }

    #[test]
    fn ledger_adds_inbound_bytes_and_latencies() {
        let mut ledger = Ledger::new();
        ledger.inbound(Transport::Ws, Category::Payload, 5);
        ledger.inbound(Transport::Ws, Category::Payload, 7);
        ledger.inbound(Transport::Untracked, Category::Payload, 100);
        ledger.latency(Transport::Ws, 120);
        ledger.latency(Transport::Untracked, 5);
        let ws = ledger.get(Transport::Ws).unwrap();
        assert_eq!(ws.bytes_in[Category::Payload.index()], 12);
        assert_eq!(ws.total_in(), 12);
        assert_eq!(ws.total_out(), 0);
        assert_eq!(ws.latency().count, 1);
        assert_eq!(ws.latency().max, 120);
    }

    #[test]
    fn ledger_adds_per_transport() {
        let mut ledger = Ledger::new();
        ledger.outbound(Transport::Sse, Category::Payload, 5);
        ledger.outbound(Transport::Sse, Category::Payload, 7);
        ledger.outbound(Transport::Untracked, Category::Payload, 100);
        ledger.count(Transport::Sse, Counter::Messages, 2);
        let sse = ledger.get(Transport::Sse).unwrap();
        assert_eq!(sse.bytes_out[Category::Payload.index()], 12);
        assert_eq!(sse.messages, 2);
        assert!(ledger.get(Transport::Untracked).is_none());
    }
}
