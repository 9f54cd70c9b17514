//! The rules event-stream bytes can break, and what a client does about each.
//!
//! The WHATWG processing model never rejects a stream: every anomaly has a defined outcome (a field is
//! ignored, a sequence becomes U+FFFD, an event is not dispatched). These variants name that outcome so
//! traces can show it inline, and so encoders can refuse input that would change meaning on the wire.

use std::fmt;

/// One broken rule of the `text/event-stream` format (WHATWG HTML, "Server-sent events").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The stream is UTF-8 ("Parsing an event stream"); an invalid sequence decodes to U+FFFD.
    InvalidUtf8 {
        /// Offset of the first invalid byte in the bytes looked at.
        offset: usize,
    },
    /// A line has no CR or LF yet: a parser waits for more; at end of stream the line is discarded.
    UnterminatedLine,
    /// An `id` value containing U+0000 NULL is ignored ("Interpreting an event stream").
    IdContainsNul,
    /// A `retry` value that is not only ASCII digits (or is empty) is ignored.
    RetryNotDigits,
    /// Fields after the last blank line: the event is not dispatched until a blank line arrives, and is
    /// discarded if the stream ends first.
    MissingBlankLine,
    /// A CR or LF inside a single-line value (event type, comment) would end the line early and turn
    /// the rest into a field of its own; encoders replace it with a space.
    LineEndInValue {
        /// Byte offset of the CR or LF in the value.
        offset: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUtf8 { offset } => {
                write!(f, "invalid utf-8 at byte {offset}, decoded as U+FFFD")
            }
            Error::UnterminatedLine => f.write_str("line has no line end"),
            Error::IdContainsNul => f.write_str("id contains NUL, field ignored"),
            Error::RetryNotDigits => f.write_str("retry is not all ascii digits, field ignored"),
            Error::MissingBlankLine => f.write_str("no blank line at end, event not dispatched"),
            Error::LineEndInValue { offset } => {
                write!(f, "line end in single-line value at byte {offset}")
            }
        }
    }
}

impl std::error::Error for Error {}
