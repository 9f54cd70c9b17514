//! Server-Sent Events: the `text/event-stream` format, in both directions.
//!
//! This module owns the bytes of an event stream and nothing else:
//!
//! - [`event`] encodes what the server sends: events ([`encode_event`], with the exact length known up
//!   front through [`encoded_len`]), heartbeat comments ([`encode_comment`]) and the reconnection time
//!   ([`encode_retry`]); and it dissects encoded bytes for traces ([`EventView`], [`dissect`]).
//! - [`parser`] is the WHATWG HTML "Server-sent events" event-stream interpretation (UTF-8 decoding, BOM,
//!   CR / LF / CRLF line ends, fields, dispatch), incremental, for tests, fuzzing and client tools.
//! - [`error`] names every rule the bytes can break and what a client does about it.
//! - [`stream`] is the server side of one stream, sans-IO: the head, the opening events, the
//!   messages, the heartbeat schedule (from the `now` it is given) and the end, with the HTTP/1.1
//!   head and chunk framing that `http1` writes.
//!
//! It never touches a socket and never reads the clock.
//!
//! # The wire format
//!
//! ```text
//! event: tick\n          optional; sets the event type (a client defaults to "message")
//! id: 42\n               optional; the client sends it back as Last-Event-ID when it reconnects
//! data: first line\n     one `data` line per line of the published text
//! data: second line\n
//! \n                     blank line: dispatch, data = "first line\nsecond line"
//! : heartbeat\n          comment; ignored by clients, keeps proxies from timing out
//! retry: 3000\n          reconnection time in milliseconds
//! \n
//! ```
//!
//! # Round trip
//!
//! `Parser` reconstructs exactly the text given to `encode_event`, *up to line-end normalization*: the
//! format has no way to carry a CR, so every CRLF and lone CR in the published text reaches a client as a
//! single LF ([`normalize_line_ends`] computes what a client will see).
//!
//! ```text
//!  publish ──► encode_event ──► Arc<[u8]> ──► every subscriber ──► (http1 chunking) ──► client
//!                                   │                                                    │
//!                               dissect (trace)                              Parser::feed ──► Event
//! ```

pub mod error;
pub mod event;
pub mod parser;
pub mod stream;

#[cfg(test)]
mod tests;

pub use error::Error as SseError;
pub use event::{
    DEFAULT_EVENT_TYPE, EventView, Line, LineKind, Lines, check_single_line, dissect,
    encode_comment, encode_event, encode_retry, encode_shared, encoded_comment_len, encoded_len,
    encoded_retry_len, normalize_line_ends,
};
pub use parser::{Event, Parser};
pub use stream::{Opening, Stream};
