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
mod tests {
    use super::super::tests::decode_all_ways;
    use super::*;

    #[test]
    fn buffered_len_counts_the_partial_line_data_and_type() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"data: abc\n").is_empty());
        let data = parser.buffered_len();
        assert!(data >= 3, "{data}");
        assert!(parser.feed(b"event: xy\n").is_empty());
        assert_eq!(parser.buffered_len(), data + 2);
        assert!(parser.feed(b"da").is_empty());
        assert_eq!(parser.buffered_len(), data + 4);
        assert_eq!(parser.feed(b"ta: d\n\n").len(), 1);
        assert_eq!(parser.buffered_len(), 0);
    }

    fn event(event_type: &str, data: &str, last_event_id: &str) -> Event {
        Event {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: last_event_id.into(),
        }
    }

    fn msg(data: &str) -> Event {
        event("message", data, "")
    }

    #[test]
    fn decodes_simple_message_with_default_type() {
        assert_eq!(decode_all_ways(b"data: hello\n\n").0, [msg("hello")]);
    }

    #[test]
    fn decodes_event_type_and_resets_it_after_dispatch() {
        let (events, _) = decode_all_ways(b"event: tick\ndata: 1\n\ndata: 2\n\n");
        assert_eq!(events, [event("tick", "1", ""), msg("2")]);
    }

    #[test]
    fn decodes_empty_event_type_as_message() {
        assert_eq!(decode_all_ways(b"event:\ndata: x\n\n").0, [msg("x")]);
    }

    #[test]
    fn decodes_blank_line_without_data_as_no_event_but_resets_type() {
        let (events, _) = decode_all_ways(b"event: lost\n\n\n\ndata: x\n\n");
        assert_eq!(events, [msg("x")]);
    }

    #[test]
    fn decodes_comments_as_nothing() {
        let (events, _) = decode_all_ways(b": hello\n:\ndata: a\n: between\ndata: b\n\n:x\n\n");
        assert_eq!(events, [msg("a\nb")]);
    }

    #[test]
    fn decodes_multiple_data_lines_joined_with_lf() {
        let (events, _) = decode_all_ways(b"data: a\ndata:\ndata: c\ndata\n\n");
        assert_eq!(events, [msg("a\n\nc\n")]);
    }

    #[test]
    fn decodes_field_without_colon_as_empty_value() {
        // `data` alone appends "" + LF, so the buffer is not empty and an event with "" is dispatched.
        assert_eq!(decode_all_ways(b"data\n\n").0, [msg("")]);
        assert_eq!(decode_all_ways(b"data:\n\n").0, [msg("")]);
    }

    #[test]
    fn decodes_only_one_leading_space_stripped() {
        let (events, _) = decode_all_ways(b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\n");
        assert_eq!(events, [msg("x"), msg("x"), msg(" x"), msg("\tx")]);
    }

    #[test]
    fn decodes_value_after_the_first_colon_only() {
        let (events, _) = decode_all_ways(b"data: a: b:c\n\ndata::\n\n");
        assert_eq!(events, [msg("a: b:c"), msg(":")]);
    }

    #[test]
    fn decodes_field_names_case_sensitively_and_ignores_unknown_fields() {
        let (events, parser) = decode_all_ways(
            b"Data: x\nDATA: y\nfoo: bar\n data: z\nretry : 5\nid : 9\ndata: ok\n\n",
        );
        assert_eq!(events, [msg("ok")]);
        assert_eq!(parser.retry(), None);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn decodes_last_event_id_that_persists_across_events() {
        let (events, parser) = decode_all_ways(b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n");
        assert_eq!(
            events,
            [
                event("message", "a", "1"),
                event("message", "b", "1"),
                event("message", "c", "2")
            ]
        );
        assert_eq!(parser.last_event_id(), "2");
    }

    #[test]
    fn decodes_empty_id_as_a_reset() {
        let (events, parser) = decode_all_ways(b"id: 1\ndata: a\n\nid\ndata: b\n\n");
        assert_eq!(events, [event("message", "a", "1"), msg("b")]);
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn decodes_id_with_nul_as_ignored() {
        let (events, parser) = decode_all_ways(b"id: 1\n\nid: 2\0x\ndata: a\n\n");
        assert_eq!(events, [event("message", "a", "1")]);
        assert_eq!(parser.last_event_id(), "1");
    }

    #[test]
    fn decodes_id_without_data_into_last_event_id_at_the_blank_line() {
        let mut parser = Parser::new();
        assert!(parser.feed(b"id: 7\n").is_empty());
        assert_eq!(parser.last_event_id(), "");
        assert!(parser.feed(b"\n").is_empty());
        assert_eq!(parser.last_event_id(), "7");
    }

    #[test]
    fn decodes_id_with_spaces_and_unicode() {
        let (events, _) = decode_all_ways("id:  a é\ndata: x\n\n".as_bytes());
        assert_eq!(events, [event("message", "x", " a é")]);
    }

    #[test]
    fn decodes_retry_only_when_all_ascii_digits() {
        let cases: [(&[u8], Option<u64>); 9] = [
            (b"retry: 3000\n", Some(3000)),
            (b"retry:0\n", Some(0)),
            (b"retry: 007\n", Some(7)),
            (b"retry: 30s\n", None),
            (b"retry: -1\n", None),
            (b"retry: 1.5\n", None),
            (b"retry:\n", None),
            (b"retry:  5\n", None),
            (b"retry: 99999999999999999999999\n", Some(u64::MAX)),
        ];
        for (input, expected) in cases {
            assert_eq!(decode_all_ways(input).1.retry(), expected, "{input:?}");
        }
        let (_, parser) = decode_all_ways(b"retry: 10\nretry: x\n");
        assert_eq!(parser.retry(), Some(10));
    }

    #[test]
    fn decodes_each_line_end_kind() {
        for input in [
            &b"data: a\ndata: b\n\n"[..],
            b"data: a\rdata: b\r\r",
            b"data: a\r\ndata: b\r\n\r\n",
            b"data: a\rdata: b\r\n\n",
            b"data: a\ndata: b\r\r\n",
        ] {
            assert_eq!(decode_all_ways(input).0, [msg("a\nb")], "{input:?}");
        }
    }

    #[test]
    fn decodes_lf_cr_as_two_line_ends() {
        assert_eq!(decode_all_ways(b"data: a\n\r").0, [msg("a")]);
        assert_eq!(
            decode_all_ways(b"data: a\n\rdata: b\n\n").0,
            [msg("a"), msg("b")]
        );
    }

    #[test]
    fn decodes_cr_at_end_of_feed_and_lf_at_start_of_next_as_one_line_end() {
        let mut parser = Parser::new();
        let mut events = parser.feed(b"data: a\r");
        events.extend(parser.feed(b"\ndata: b\r"));
        events.extend(parser.feed(b""));
        events.extend(parser.feed(b"\n"));
        assert!(
            events.is_empty(),
            "CRLF split across feeds was taken as two line ends"
        );
        events.extend(parser.feed(b"\r"));
        assert_eq!(events, [msg("a\nb")]);
    }

    #[test]
    fn decodes_bom_at_stream_start_only() {
        let (events, _) = decode_all_ways(b"\xEF\xBB\xBFdata: a\n\n");
        assert_eq!(events, [msg("a")]);
        // A second BOM is text: it makes the field name "\u{FEFF}data", an unknown field.
        let (events, _) = decode_all_ways(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n");
        assert_eq!(events, [msg("b")]);
        let (events, _) = decode_all_ways(b"data: \xEF\xBB\xBFa\n\n");
        assert_eq!(events, [msg("\u{FEFF}a")]);
    }

    #[test]
    fn decodes_bom_split_across_feeds() {
        let mut parser = Parser::new();
        let mut events = parser.feed(b"\xEF");
        events.extend(parser.feed(b""));
        events.extend(parser.feed(b"\xBB"));
        events.extend(parser.feed(b"\xBFdata: a\n\n"));
        assert_eq!(events, [msg("a")]);
    }

    #[test]
    fn decodes_bom_again_after_finish() {
        let mut parser = Parser::new();
        let mut events = parser.feed(b"\xEF\xBB\xBFdata: a\n\n");
        parser.finish();
        events.extend(parser.feed(b"\xEF\xBB\xBFdata: b\n\n"));
        assert_eq!(events, [msg("a"), msg("b")]);
    }

    #[test]
    fn decodes_invalid_utf8_as_replacement_characters() {
        let (events, _) = decode_all_ways(b"data: a\xFFb\xC3(\xE2\x82\n\n");
        assert_eq!(events, [msg("a\u{FFFD}b\u{FFFD}(\u{FFFD}")]);
        let (events, _) = decode_all_ways(b"data: \xF0\x9F\x98\n\n");
        assert_eq!(events, [msg("\u{FFFD}")]);
        // Overlong and surrogate encodings: one U+FFFD per maximal subpart.
        let (events, _) = decode_all_ways(b"data: \xE0\x80\xED\xA0\x80\xC0\xAF\n\n");
        assert_eq!(events, [msg(&"\u{FFFD}".repeat(7))]);
    }

    #[test]
    fn decodes_code_points_split_across_feeds() {
        let text = "data: é€😀\n\n".as_bytes();
        for cut in 0..=text.len() {
            let (head, tail) = text.split_at(cut);
            let mut parser = Parser::new();
            let mut events = parser.feed(head);
            events.extend(parser.feed(tail));
            assert_eq!(events, [msg("é€😀")], "cut at {cut}");
        }
    }

    #[test]
    fn decodes_truncated_code_point_before_line_end_as_replacement() {
        let mut parser = Parser::new();
        let mut events = parser.feed(b"data: \xF0\x9F");
        events.extend(parser.feed(b"\x98"));
        events.extend(parser.feed(b"\n\n"));
        assert_eq!(events, [msg("\u{FFFD}")]);
    }

    #[test]
    fn decodes_nothing_for_an_event_cut_by_end_of_stream() {
        let mut parser = Parser::new();
        let mut events =
            parser.feed(b"id: 1\ndata: a\n\nid: 2\ndata: lost\nevent: x\ndata: \xE2\x82");
        parser.finish();
        assert_eq!(parser.buffered_len(), 0);
        events.extend(parser.feed(b"data: b\n\n"));
        assert_eq!(
            events,
            [event("message", "a", "1"), event("message", "b", "1")]
        );
        assert_eq!(parser.last_event_id(), "1");
    }

    #[test]
    fn decodes_partial_line_at_end_of_stream_as_nothing() {
        let mut parser = Parser::new();
        let events = parser.feed(b"retry: 5\nid: 3\n\nretry: 9");
        parser.finish();
        assert!(events.is_empty());
        assert_eq!(parser.retry(), Some(5));
        assert_eq!(parser.last_event_id(), "3");
    }

    #[test]
    fn decodes_resumed_stream_with_previous_last_event_id() {
        let mut parser = Parser::with_last_event_id("41");
        let events = parser.feed(b"data: a\n\nid: 42\ndata: b\n\n");
        assert_eq!(
            events,
            [event("message", "a", "41"), event("message", "b", "42")]
        );
    }

    #[test]
    fn decodes_into_an_existing_vec() {
        let mut parser = Parser::new();
        let mut events = vec![msg("before")];
        parser.feed_into(b"data: a\n\ndata: b\n\n", &mut events);
        assert_eq!(events, [msg("before"), msg("a"), msg("b")]);
    }

    #[test]
    fn decodes_event_display() {
        assert_eq!(
            event("tick", "a\nb", "7").to_string(),
            "tick id=\"7\" data=\"a\\nb\""
        );
    }
}
