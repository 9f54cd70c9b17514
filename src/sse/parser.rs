//! The WHATWG event-stream processing model ("Parsing an event stream" and "Interpreting an event
//! stream" in the HTML standard), incremental: bytes in, dispatched [`Event`]s out.
//!
//! ```text
//! feed(bytes) ─► UTF-8 decode ─► strip one BOM ─► split lines ─► blank?  ──► dispatch ─► Event
//!                (U+FFFD, code    (stream start    (CRLF, LF,    comment? ──► ignore
//!                 points split     only)            lone CR)     field?   ──► event / data / id / retry
//!                 across feeds)
//! finish() ─► the partial line and undispatched event are discarded; ready for the next stream
//! ```
//!
//! The parser never fails: every anomaly has the outcome the standard gives it (see
//! [`super::error::Error`]). Input is not limited in size; a client facing an untrusted server should
//! cap [`Parser::buffered_len`].

use std::mem;

use super::event::{DEFAULT_EVENT_TYPE, write_quoted};

/// One dispatched event, as a browser's `MessageEvent` would carry it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event` field, or `"message"` when none was sent.
    pub event_type: String,
    /// The `data` lines joined with LF.
    pub data: String,
    /// The last event ID string at dispatch: the latest `id` in this stream, or the one before.
    pub last_event_id: String,
}

/// `message id="12" data="hello"`
impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} id=", self.event_type)?;
        write_quoted(f, self.last_event_id.as_bytes())?;
        f.write_str(" data=")?;
        write_quoted(f, self.data.as_bytes())
    }
}

/// Where the line splitter stands between two feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// No character decoded yet in this stream: a U+FEFF here is the BOM and is dropped.
    StreamStart,
    /// Inside or between lines.
    Text,
    /// The last character was a CR that ended a line; an LF next belongs to it (CRLF).
    AfterCr,
}

/// The buffers of "Interpreting an event stream" and the event source state that outlives a stream.
#[derive(Debug, Clone, Default)]
struct Interpreter {
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    /// The event source's last event ID string, sent as `Last-Event-ID` on reconnect.
    last_event_id: String,
    retry: Option<u64>,
}

/// Incremental event-stream parser. Feed it bytes as they arrive, in pieces of any size.
#[derive(Debug, Clone)]
pub struct Parser {
    scan: Scan,
    /// A code point split across feeds: a valid prefix of a UTF-8 sequence, at most 3 bytes.
    utf8_pending: Vec<u8>,
    /// Scratch for the decoded text of one feed, kept to reuse its allocation.
    decoded: String,
    /// The current line, before its line end has arrived.
    line: String,
    interp: Interpreter,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser at the start of a stream, with an empty last event ID.
    pub fn new() -> Parser {
        Parser {
            scan: Scan::StreamStart,
            utf8_pending: Vec::with_capacity(4),
            decoded: String::new(),
            line: String::new(),
            interp: Interpreter::default(),
        }
    }

    /// A parser for a resumed stream: events carry `last_event_id` until the server sends an `id`.
    pub fn with_last_event_id(last_event_id: &str) -> Parser {
        let mut parser = Parser::new();
        parser.interp.last_event_id = last_event_id.to_owned();
        parser.interp.last_event_id_buffer = last_event_id.to_owned();
        parser
    }

    /// Parses `bytes` and returns the events they complete. See [`Parser::feed_into`].
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        self.feed_into(bytes, &mut events);
        events
    }

    /// Parses `bytes` and appends the events they complete to `out`, in stream order.
    ///
    /// Every byte is consumed: a partial line or code point is kept for the next feed, so any split of a
    /// stream gives the same events as feeding it whole.
    pub fn feed_into(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        let mut decoded = mem::take(&mut self.decoded);
        decoded.clear();
        self.decode_utf8(bytes, &mut decoded);
        self.split_lines(&decoded, out);
        self.decoded = decoded;
    }

    /// End of stream. "If the file ends in the middle of an event, before the final empty line, the
    /// incomplete event is not dispatched": the partial line, a partial code point and the data and
    /// event type buffers are discarded.
    ///
    /// The last event ID and reconnection time belong to the event source and survive; like browsers,
    /// the next stream (a reconnect) starts from the last dispatched ID, and may begin with a BOM again.
    pub fn finish(&mut self) {
        self.scan = Scan::StreamStart;
        self.utf8_pending.clear();
        self.line.clear();
        let interp = &mut self.interp;
        interp.data.clear();
        interp.event_type.clear();
        interp
            .last_event_id_buffer
            .clone_from(&interp.last_event_id);
    }

    /// The event source's last event ID string: what a client sends as `Last-Event-ID` on reconnect.
    ///
    /// Per the standard it is updated at each blank line (even one that dispatches nothing because no
    /// data came), not at the `id` line itself.
    pub fn last_event_id(&self) -> &str {
        &self.interp.last_event_id
    }

    /// The reconnection time in milliseconds from the latest valid `retry` field, if any.
    pub fn retry(&self) -> Option<u64> {
        self.interp.retry
    }

    /// Bytes held for an event not yet dispatched (partial line plus data buffer), for callers that cap
    /// memory against a hostile server.
    pub fn buffered_len(&self) -> usize {
        self.line.len() + self.interp.data.len() + self.interp.event_type.len()
    }

    /// UTF-8 decode with replacement ("maximal subpart" rule, as the Encoding standard), carrying an
    /// incomplete trailing sequence over to the next feed.
    fn decode_utf8(&mut self, mut bytes: &[u8], out: &mut String) {
        // Complete a code point split by the previous feed, one byte at a time.
        while !self.utf8_pending.is_empty() {
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            let mut candidate = [0u8; 4];
            let len = self.utf8_pending.len() + 1;
            for (slot, b) in candidate
                .iter_mut()
                .zip(self.utf8_pending.iter().copied().chain([byte]))
            {
                *slot = b;
            }
            match std::str::from_utf8(candidate.get(..len).unwrap_or_default()) {
                Ok(text) => {
                    out.push_str(text);
                    self.utf8_pending.clear();
                    bytes = rest;
                }
                Err(e) if e.error_len().is_none() => {
                    self.utf8_pending.push(byte);
                    bytes = rest;
                }
                Err(_) => {
                    // The pending bytes are a maximal subpart; `byte` starts afresh.
                    out.push(char::REPLACEMENT_CHARACTER);
                    self.utf8_pending.clear();
                }
            }
        }
        let mut chunks = bytes.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            out.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let incomplete = chunks.peek().is_none()
                && matches!(std::str::from_utf8(invalid), Err(e) if e.error_len().is_none());
            if incomplete {
                self.utf8_pending.extend_from_slice(invalid);
            } else {
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
    }

    /// Splits decoded text on CRLF, lone LF and lone CR, interpreting each complete line.
    fn split_lines(&mut self, mut text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        match self.scan {
            // HTML: "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM), if any."
            Scan::StreamStart => text = text.strip_prefix('\u{FEFF}').unwrap_or(text),
            Scan::AfterCr => text = text.strip_prefix('\n').unwrap_or(text),
            Scan::Text => {}
        }
        self.scan = Scan::Text;
        while let Some((head, tail)) = text
            .find(['\r', '\n'])
            .and_then(|i| text.split_at_checked(i))
        {
            if self.line.is_empty() {
                self.interp.process_line(head, out);
            } else {
                self.line.push_str(head);
                self.interp.process_line(&self.line, out);
                self.line.clear();
            }
            text = match tail.strip_prefix('\r') {
                Some("") => {
                    self.scan = Scan::AfterCr;
                    ""
                }
                Some(after_cr) => after_cr.strip_prefix('\n').unwrap_or(after_cr),
                None => tail.get(1..).unwrap_or_default(),
            };
        }
        self.line.push_str(text);
    }
}

impl Interpreter {
    /// One complete line, without its line end ("Interpreting an event stream").
    fn process_line(&mut self, line: &str, out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the last event ID buffer to
            // the field value. Otherwise, ignore the field."
            "id" if !value.contains('\0') => {
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer.push_str(value);
            }
            // Only ASCII digits; the empty value is not a number and is ignored too. A value beyond
            // u64 saturates rather than wrapping to a short delay.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                let millis = value.bytes().fold(0u64, |acc, digit| {
                    acc.saturating_mul(10)
                        .saturating_add(u64::from(digit - b'0'))
                });
                self.retry = Some(millis);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        // Step 1 comes before the empty-data check: an `id` with no data still moves the last event ID.
        self.last_event_id.clone_from(&self.last_event_id_buffer);
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event_type = if self.event_type.is_empty() {
            DEFAULT_EVENT_TYPE.to_owned()
        } else {
            mem::take(&mut self.event_type)
        };
        out.push(Event {
            event_type,
            data: mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        });
    }
}

#[cfg(test)]
mod tests;
