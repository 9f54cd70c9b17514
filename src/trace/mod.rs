//! Frame traces: every wire unit that crosses a socket — an HTTP head, a body, a chunk, an SSE
//! event, a WebSocket frame — as a [`Record`] that prints itself like `curl -v` (`>` sent, `<`
//! received), as a field-by-field tree with Wireshark's names, as an annotated hex dump, or as a
//! JSON object.
//!
//! Records come from [`Dissector`]s, which read a connection's byte stream the way Wireshark does:
//! the driver hands them the bytes it read and wrote, they cut the stream into units and describe
//! each with the protocol modules' own wire types (`RequestHead`, `FrameHead`, `sse::EventView`…).
//! No I/O and no clock: the driver supplies the time and decides where records go. The received
//! side sees only what a session consumed as wire units, and keeps of a payload no more than the
//! preview, so a trace costs a few KiB per connection whatever the peer sends.
//!
//! ```text
//!   socket read ──► Dissector(Received) ──┐
//!                                         ├──► Record ──► line / tree / hex / JSON
//!   socket write ─► Dissector(Sent) ──────┘
//! ```
mod dissector;
mod render;

pub use dissector::{Dissector, Unit};
pub use render::Detail;

use std::time::Duration;

use crate::ledger::Transport;

/// Which way a unit crossed the socket, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Written by the server (`>`).
    Sent,
    /// Read by the server (`<`).
    Received,
}

impl Direction {
    /// The curl-style marker printed before the unit: `>` sent, `<` received.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::Sent => ">",
            Direction::Received => "<",
        }
    }
}

/// What kind of wire unit a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitKind {
    /// A request line with its header fields.
    RequestHead,
    /// A status line with its header fields (101 included).
    ResponseHead,
    /// A whole Content-Length body (JSON, text, a page, a publish body).
    Body,
    /// One chunk of a chunked body; `sse` when the body is an event stream.
    Chunk {
        /// The chunk's data is `text/event-stream`, dissected as SSE events.
        sse: bool,
    },
    /// The zero-size chunk (and empty trailer) that ends a chunked body.
    LastChunk,
    /// SSE events of a stream delimited by close (HTTP/1.0).
    SseEvents,
    /// One WebSocket frame, head and payload.
    WsFrame,
    /// Bytes the dissector could not frame (after a protocol error).
    Unframed,
}

impl UnitKind {
    /// The snake_case name used in trace lines and the JSON `kind` field (`ws_frame`, `sse_chunk`).
    pub fn name(self) -> &'static str {
        match self {
            UnitKind::RequestHead => "request_head",
            UnitKind::ResponseHead => "response_head",
            UnitKind::Body => "body",
            UnitKind::Chunk { sse: true } => "sse_chunk",
            UnitKind::Chunk { sse: false } => "chunk",
            UnitKind::LastChunk => "last_chunk",
            UnitKind::SseEvents => "sse_events",
            UnitKind::WsFrame => "ws_frame",
            UnitKind::Unframed => "unframed",
        }
    }
}

/// One wire unit, with where and when it crossed.
#[derive(Debug, Clone)]
pub struct Record {
    /// Time since the server started.
    pub time: Duration,
    /// The connection's number, counted from 1 in accept order (stable for the connection's life).
    pub conn: usize,
    /// What the connection is used for, by the request that chose it (poll, SSE, WebSocket…).
    pub transport: Transport,
    /// The channel the connection serves, when it serves one.
    pub channel: Option<Box<str>>,
    /// Which way the unit crossed, seen from the server.
    pub direction: Direction,
    /// What wire unit `bytes` holds: decides how it is dissected.
    pub kind: UnitKind,
    /// The unit's bytes as they crossed the socket: all of them, or for a received unit with
    /// a long payload, its framing and the payload's first bytes (the preview).
    pub bytes: Vec<u8>,
    /// The unit's length on the wire.
    pub len: usize,
    /// For a frame of a compressed WebSocket message, the start of what it inflates to.
    pub inflated: Option<Vec<u8>>,
}

/// Which records a sink wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these transports (all when empty).
    pub transports: Vec<Transport>,
    /// Only connections of this channel.
    pub channel: Option<String>,
}

impl Filter {
    /// Parses `transport=sse,ws` and `channel=c`, separated by spaces or semicolons; a bare word
    /// is a transport.
    pub fn parse(spec: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for part in spec.split([' ', ';']).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or(("transport", part));
            match key {
                "transport" | "transports" => {
                    for name in value.split(',').filter(|n| !n.is_empty()) {
                        let t = Transport::from_name(name)
                            .ok_or_else(|| format!("unknown transport {name:?}"))?;
                        filter.transports.push(t);
                    }
                }
                "channel" => filter.channel = Some(value.to_string()),
                _ => return Err(format!("unknown filter {key:?} (transport=…, channel=…)")),
            }
        }
        Ok(filter)
    }

    /// Whether `record` passes both the transport list and the channel.
    pub fn accepts(&self, record: &Record) -> bool {
        (self.transports.is_empty() || self.transports.contains(&record.transport))
            && self
                .channel
                .as_deref()
                .is_none_or(|c| record.channel.as_deref() == Some(c))
    }
}

/// What the operator asked to trace, from the command line.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// Print records on stderr at this detail.
    pub print: Option<Detail>,
    /// Append records as JSON Lines to this file.
    pub file: Option<std::path::PathBuf>,
    /// Which records the printer and the file get.
    pub filter: Filter,
    /// Payload bytes shown per record.
    pub preview: usize,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            print: None,
            file: None,
            filter: Filter::default(),
            preview: 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters() {
        let f = Filter::parse("transport=sse,ws channel=news").unwrap();
        assert_eq!(f.transports, [Transport::Sse, Transport::Ws]);
        assert_eq!(f.channel.as_deref(), Some("news"));
        assert_eq!(Filter::parse("poll").unwrap().transports, [Transport::Poll]);
        assert!(Filter::parse("transport=carrier-pigeon").is_err());
    }
}
