//! Encoding events for the wire, and a permissive view over encoded bytes for traces.
//!
//! The server encodes each published message once ([`encode_shared`] or [`encode_event`]) and shares the
//! bytes among all subscribers; [`encoded_len`] is exact, so buffers are sized before encoding.
//!
//! Every encoder writes `name: value` with exactly one space after the colon. A client strips exactly one
//! leading space from a value, so the space it strips is always the one written here and a value that
//! itself starts with spaces keeps them (`data:  x` carries `" x"`).
//!
//! Single-line values (the event type, comment text) cannot carry a line end: a CR or LF there would end
//! the line and make the rest a field of its own. Encoders replace each CR and LF with a space (same byte
//! length, so the lengths stay exact); use [`check_single_line`] to reject such values earlier instead.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use super::error::Error;
use crate::http1::response::{decimal_len, push_decimal};

/// The type a client gives an event that had no `event` field ("Interpreting an event stream").
pub const DEFAULT_EVENT_TYPE: &str = "message";

const EVENT_PREFIX: &[u8] = b"event: ";
const ID_PREFIX: &[u8] = b"id: ";
const DATA_PREFIX: &[u8] = b"data: ";
const RETRY_PREFIX: &[u8] = b"retry: ";
const COMMENT_PREFIX: &[u8] = b": ";

/// Longest value (in characters) that traces print before eliding the rest.
const TRACE_VALUE_CHARS: usize = 64;

/// Exact number of bytes [`encode_event`] writes for these arguments.
pub fn encoded_len(id: Option<u64>, event: Option<&str>, data: &str) -> usize {
    let event_len = event.map_or(0, |name| EVENT_PREFIX.len() + name.len() + 1);
    let id_len = id.map_or(0, |id| ID_PREFIX.len() + decimal_len(id) + 1);
    let data_len: usize = DataLines::new(data)
        .map(|line| DATA_PREFIX.len() + line.len() + 1)
        .sum();
    event_len + id_len + data_len + 1
}

/// Appends one event to `out`: `event: X\n` (if any), `id: N\n` (if any), one `data: ` line per line of
/// `data`, then the blank line that makes a client dispatch it.
///
/// `data` is split on CRLF, lone CR and lone LF; a client joins the lines with LF, so it sees exactly
/// `data` up to line-end normalization (see [`normalize_line_ends`]). Empty `data` still writes one
/// `data: \n` line, because a client does not dispatch an event whose data buffer is empty; a trailing
/// line end writes a trailing empty `data: \n` line, which is how the client gets it back.
///
/// CR and LF in `event` are replaced by spaces (see the module doc). Writes exactly
/// [`encoded_len`]`(id, event, data)` bytes.
pub fn encode_event(id: Option<u64>, event: Option<&str>, data: &str, out: &mut Vec<u8>) {
    out.reserve(encoded_len(id, event, data));
    if let Some(name) = event {
        out.extend_from_slice(EVENT_PREFIX);
        push_single_line(name, out);
        out.push(b'\n');
    }
    if let Some(id) = id {
        out.extend_from_slice(ID_PREFIX);
        push_decimal(id, out);
        out.push(b'\n');
    }
    for line in DataLines::new(data) {
        out.extend_from_slice(DATA_PREFIX);
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Encodes one event into an exactly sized shared buffer, for the subscribers' output queues.
pub fn encode_shared(id: Option<u64>, event: Option<&str>, data: &str) -> Arc<[u8]> {
    let mut out = Vec::with_capacity(encoded_len(id, event, data));
    encode_event(id, event, data, &mut out);
    out.into()
}

/// Exact number of bytes [`encode_retry`] writes.
pub fn encoded_retry_len(millis: u64) -> usize {
    RETRY_PREFIX.len() + decimal_len(millis) + 2
}

/// Appends `retry: N\n\n`: the client's reconnection time in milliseconds, as a block of its own.
///
/// The trailing blank line finds an empty data buffer, so a client dispatches nothing; the block can
/// therefore go before the first event or between any two events without touching them.
pub fn encode_retry(millis: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(RETRY_PREFIX);
    push_decimal(millis, out);
    out.extend_from_slice(b"\n\n");
}

/// Exact number of bytes [`encode_comment`] writes.
pub fn encoded_comment_len(text: &str) -> usize {
    COMMENT_PREFIX.len() + text.len() + 1
}

/// Appends `: text\n`, a comment line clients ignore (heartbeats). CR and LF in `text` become spaces.
///
/// A comment changes no client state, so it may be written anywhere, even between the lines of an event;
/// the server writes it between events.
pub fn encode_comment(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(COMMENT_PREFIX);
    push_single_line(text, out);
    out.push(b'\n');
}

/// Checks that `value` fits on one line (an event type, comment text) without being altered.
pub fn check_single_line(value: &str) -> Result<(), Error> {
    match value.find(['\r', '\n']) {
        Some(offset) => Err(Error::LineEndInValue { offset }),
        None => Ok(()),
    }
}

/// What a client reconstructs from `data` after [`encode_event`]: CRLF and lone CR become LF.
pub fn normalize_line_ends(data: &str) -> String {
    let mut out = String::with_capacity(data.len());
    for (i, line) in DataLines::new(data).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// The lines of a data value, split on CRLF, lone CR and lone LF. A trailing line end yields a final
/// empty line and the empty string yields one empty line, so joining with LF gives the text back.
struct DataLines<'a> {
    rest: Option<&'a str>,
}

impl<'a> DataLines<'a> {
    fn new(data: &'a str) -> Self {
        DataLines { rest: Some(data) }
    }
}

impl<'a> Iterator for DataLines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let Some((line, tail)) = rest
            .find(['\r', '\n'])
            .and_then(|i| rest.split_at_checked(i))
        else {
            self.rest = None;
            return Some(rest);
        };
        let after = tail
            .strip_prefix("\r\n")
            .or_else(|| tail.get(1..))
            .unwrap_or("");
        self.rest = Some(after);
        Some(line)
    }
}

fn push_single_line(value: &str, out: &mut Vec<u8>) {
    if check_single_line(value).is_ok() {
        out.extend_from_slice(value.as_bytes());
    } else {
        out.extend(value.bytes().map(|b| match b {
            b'\r' | b'\n' => b' ',
            other => other,
        }));
    }
}

/// Writes `text` quoted and escaped, lossily decoded, elided after [`TRACE_VALUE_CHARS`] characters.
pub(super) fn write_quoted(f: &mut dyn fmt::Write, text: &[u8]) -> fmt::Result {
    let text = String::from_utf8_lossy(text);
    match text.char_indices().nth(TRACE_VALUE_CHARS) {
        Some((cut, _)) => write!(f, "{:?}...", text.get(..cut).unwrap_or_default()),
        None => write!(f, "{text:?}"),
    }
}

/// A permissive view over encoded event-stream bytes, for traces.
///
/// It describes anything split into lines, including bytes a client would ignore or never dispatch;
/// [`Line::check`] says what a client would make of each line. `Display` is one line; [`dissect`] prints
/// a field-by-field tree.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    bytes: &'a [u8],
}

/// One line of an [`EventView`]: content and the line end that closed it (empty if none yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// Offset of the line in the viewed bytes.
    pub offset: usize,
    /// The line without its line end.
    pub content: &'a [u8],
    /// `\n`, `\r`, `\r\n`, or empty when the bytes ended first.
    pub terminator: &'a [u8],
}

/// What a line is, by the rules of "Interpreting an event stream".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind<'a> {
    /// Empty line: dispatch the event.
    Blank,
    /// Starts with `:`; ignored by clients. The text after the colon, unstripped.
    Comment(&'a [u8]),
    /// `name:value` with one leading space stripped from the value, or a bare `name` with empty value.
    Field {
        /// The field name, before the first `:` (`data`, `event`, `id`, `retry`, or any other).
        name: &'a [u8],
        /// The value after the colon, one leading space stripped; empty for a bare name.
        value: &'a [u8],
    },
}

impl<'a> EventView<'a> {
    /// Views `bytes`; never fails, whatever they hold.
    pub fn new(bytes: &'a [u8]) -> Self {
        EventView { bytes }
    }

    /// The viewed bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Length of a leading UTF-8 byte order mark (0 or 3), which a client strips at stream start.
    pub fn bom_len(&self) -> usize {
        if self.bytes.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        }
    }

    /// The lines after any BOM.
    pub fn lines(&self) -> Lines<'a> {
        let start = self.bom_len();
        Lines {
            rest: self.bytes.get(start..).unwrap_or_default(),
            offset: start,
        }
    }

    /// Bytes of `data` values: what the subscriber asked for.
    pub fn payload_len(&self) -> usize {
        self.lines()
            .filter_map(|line| match line.kind() {
                LineKind::Field {
                    name: b"data",
                    value,
                } => Some(value.len()),
                _ => None,
            })
            .sum()
    }

    /// Every byte that is not a `data` value: field names, separators, other fields, line ends, BOM.
    pub fn overhead_len(&self) -> usize {
        self.bytes.len() - self.payload_len()
    }

    /// [`Error::MissingBlankLine`] when fields follow the last blank line.
    pub fn check_complete(&self) -> Result<(), Error> {
        let mut pending_fields = false;
        for line in self.lines() {
            match line.kind() {
                LineKind::Blank => pending_fields = false,
                LineKind::Field { .. } => pending_fields = true,
                LineKind::Comment(_) => {}
            }
        }
        if pending_fields {
            Err(Error::MissingBlankLine)
        } else {
            Ok(())
        }
    }
}

/// Iterator over the [`Line`]s of an [`EventView`].
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self
            .rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(self.rest.len());
        let (content, tail) = self.rest.split_at(end);
        let terminator_len = if tail.starts_with(b"\r\n") {
            2
        } else {
            tail.len().min(1)
        };
        let (terminator, rest) = tail.split_at(terminator_len);
        let line = Line {
            offset: self.offset,
            content,
            terminator,
        };
        self.offset += content.len() + terminator.len();
        self.rest = rest;
        Some(line)
    }
}

impl<'a> Line<'a> {
    /// Length including the line end.
    pub fn len(&self) -> usize {
        self.content.len() + self.terminator.len()
    }

    /// Whether the line has neither content nor line end (never produced by [`Lines`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Classifies the line the way a client does.
    pub fn kind(&self) -> LineKind<'a> {
        if self.content.is_empty() {
            return LineKind::Blank;
        }
        if let Some(text) = self.content.strip_prefix(b":") {
            return LineKind::Comment(text);
        }
        match self.content.iter().position(|&b| b == b':') {
            Some(colon) => {
                let (name, rest) = self.content.split_at(colon);
                let value = rest.get(1..).unwrap_or_default();
                let value = value.strip_prefix(b" ").unwrap_or(value);
                LineKind::Field { name, value }
            }
            None => LineKind::Field {
                name: self.content,
                value: b"",
            },
        }
    }

    /// The first rule this line breaks, if any.
    pub fn check(&self) -> Result<(), Error> {
        if let Err(e) = std::str::from_utf8(self.content) {
            return Err(Error::InvalidUtf8 {
                offset: self.offset + e.valid_up_to(),
            });
        }
        if self.terminator.is_empty() {
            return Err(Error::UnterminatedLine);
        }
        match self.kind() {
            LineKind::Field { name: b"id", value } if value.contains(&0) => {
                Err(Error::IdContainsNul)
            }
            LineKind::Field {
                name: b"retry",
                value,
            } if value.is_empty() || !value.iter().all(u8::is_ascii_digit) => {
                Err(Error::RetryNotDigits)
            }
            _ => Ok(()),
        }
    }
}

/// `Field: id = "12" (7 bytes)`, `Comment: "hb" (5 bytes)`, `Blank line: dispatch (1 byte)`, with
/// `(error: ...)` appended when the line breaks a rule.
impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            LineKind::Blank => f.write_str("Blank line: dispatch")?,
            LineKind::Comment(text) => {
                f.write_str("Comment: ")?;
                write_quoted(f, text)?;
            }
            LineKind::Field { name, value } => {
                f.write_str("Field: ")?;
                let known = matches!(name, b"event" | b"data" | b"id" | b"retry");
                if known {
                    f.write_str(&String::from_utf8_lossy(name))?;
                } else {
                    write_quoted(f, name)?;
                }
                f.write_str(" = ")?;
                write_quoted(f, value)?;
                if !known {
                    f.write_str(" (unknown field, ignored)")?;
                }
            }
        }
        let len = self.len();
        write!(f, " ({len} byte{})", if len == 1 { "" } else { "s" })?;
        if let Err(e) = self.check() {
            write!(f, " (error: {e})")?;
        }
        Ok(())
    }
}

/// One line, tcpdump style:
/// `SSE event="tick" id="12" data=1 line, 29 bytes (payload 2, overhead 27)`.
impl fmt::Display for EventView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SSE")?;
        if self.bom_len() > 0 {
            f.write_str(" bom")?;
        }
        let (mut data_lines, mut comments, mut blanks) = (0usize, 0usize, 0usize);
        let mut first_error = None;
        for line in self.lines() {
            if first_error.is_none() {
                first_error = line.check().err();
            }
            match line.kind() {
                LineKind::Blank => blanks += 1,
                LineKind::Comment(_) => comments += 1,
                LineKind::Field { name: b"data", .. } => data_lines += 1,
                LineKind::Field { name, value } => {
                    f.write_char(' ')?;
                    f.write_str(&String::from_utf8_lossy(name))?;
                    f.write_char('=')?;
                    write_quoted(f, value)?;
                }
            }
        }
        if data_lines > 0 {
            let plural = if data_lines == 1 { "" } else { "s" };
            write!(f, " data={data_lines} line{plural}")?;
        }
        if comments > 0 {
            write!(f, " comments={comments}")?;
        }
        if blanks > 1 {
            write!(f, " blocks={blanks}")?;
        }
        write!(
            f,
            ", {} bytes (payload {}, overhead {})",
            self.bytes.len(),
            self.payload_len(),
            self.overhead_len()
        )?;
        if let Some(e) = first_error.or_else(|| self.check_complete().err()) {
            write!(f, " (error: {e})")?;
        }
        Ok(())
    }
}

/// Appends a field-by-field dissection of event-stream bytes to `out`, one line per wire line:
///
/// ```text
/// Server-Sent Events (29 bytes)
///     Field: event = "tick" (12 bytes)
///     Field: id = "12" (7 bytes)
///     Field: data = "hi" (9 bytes)
///     Blank line: dispatch (1 byte)
///     Payload: 2 bytes, overhead: 27 bytes
/// ```
///
/// Never panics; whatever breaks a rule is printed inline as `(error: ...)`.
pub fn dissect(event_bytes: &[u8], out: &mut String) {
    // Writing into a String cannot fail.
    let _ = write_dissection(&EventView::new(event_bytes), out);
}

fn write_dissection(view: &EventView<'_>, out: &mut String) -> fmt::Result {
    writeln!(out, "Server-Sent Events ({} bytes)", view.bytes().len())?;
    if view.bom_len() > 0 {
        writeln!(out, "    Byte order mark (3 bytes)")?;
    }
    for line in view.lines() {
        writeln!(out, "    {line}")?;
    }
    if let Err(e) = view.check_complete() {
        writeln!(out, "    (error: {e})")?;
    }
    writeln!(
        out,
        "    Payload: {} bytes, overhead: {} bytes",
        view.payload_len(),
        view.overhead_len()
    )
}

#[cfg(test)]
mod tests;
