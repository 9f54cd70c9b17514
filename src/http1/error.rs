//! Why a request was refused, and what the server answers.
use std::fmt;

use super::chunked::ChunkedError;

/// A request the server cannot serve. Each variant names the rule it enforces; [`RequestError::status`]
/// is the one place that maps a rule to the status code the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The head is not valid RFC 9112 syntax (bad request line, whitespace before a colon, obs-fold,
    /// bare CR, NUL, invalid token…) → 400.
    MalformedHead(httparse::Error),
    /// The request line is longer than the configured limit → 414.
    RequestLineTooLong,
    /// The head (request line and headers) is larger than the configured limit → 431.
    HeadTooLarge,
    /// More header fields than the parser holds → 431.
    TooManyHeaders,
    /// A version other than HTTP/1.0 and HTTP/1.1 (RFC 9112 §2.3) → 505.
    UnsupportedVersion,
    /// HTTP/1.1 without a Host field (RFC 9112 §3.2) → 400.
    MissingHost,
    /// More than one Host field (RFC 9112 §3.2) → 400.
    DuplicateHost,
    /// Both Content-Length and Transfer-Encoding: a request smuggling vector (RFC 9112 §6.1) → 400.
    ContentLengthWithTransferEncoding,
    /// Content-Length that is not a decimal number, overflows, or disagrees with another
    /// Content-Length (RFC 9112 §6.3 rule 5) → 400.
    BadContentLength,
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: the framing is faulty) → 400.
    TransferEncodingInHttp10,
    /// A transfer coding other than `chunked` (RFC 9112 §6.1) → 501.
    UnsupportedTransferCoding,
    /// The body is larger than the maximum message size → 413. `announced` is the
    /// Content-Length, when the head said it; a chunked body is refused when it passes `max`.
    BodyTooLarge {
        /// The Content-Length the head announced, in bytes; `None` for a chunked body, refused
        /// as it grew.
        announced: Option<u64>,
        /// The largest body accepted, in bytes (`--max-message-size`).
        max: usize,
    },
    /// The chunked body is not valid (RFC 9112 §7.1) → 400.
    BadChunkedBody(ChunkedError),
    /// An `Expect` value other than `100-continue` (RFC 9110 §10.1.1) → 417.
    UnsupportedExpectation,
}

impl RequestError {
    /// The status code this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::MalformedHead(_)
            | RequestError::MissingHost
            | RequestError::DuplicateHost
            | RequestError::ContentLengthWithTransferEncoding
            | RequestError::BadContentLength
            | RequestError::TransferEncodingInHttp10
            | RequestError::BadChunkedBody(_) => 400,
            RequestError::RequestLineTooLong => 414,
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => 431,
            RequestError::UnsupportedVersion => 505,
            RequestError::UnsupportedTransferCoding => 501,
            RequestError::BodyTooLarge { .. } => 413,
            RequestError::UnsupportedExpectation => 417,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::MalformedHead(e) => write!(f, "malformed request head: {e}"),
            RequestError::RequestLineTooLong => f.write_str("request line too long"),
            RequestError::HeadTooLarge => f.write_str("request head too large"),
            RequestError::TooManyHeaders => f.write_str("too many header fields"),
            RequestError::UnsupportedVersion => f.write_str("unsupported http version"),
            RequestError::MissingHost => f.write_str("missing host header"),
            RequestError::DuplicateHost => f.write_str("more than one host header"),
            RequestError::ContentLengthWithTransferEncoding => {
                f.write_str("both content-length and transfer-encoding")
            }
            RequestError::BadContentLength => f.write_str("invalid content-length"),
            RequestError::TransferEncodingInHttp10 => {
                f.write_str("transfer-encoding in an http/1.0 request")
            }
            RequestError::UnsupportedTransferCoding => f.write_str("unsupported transfer coding"),
            RequestError::BodyTooLarge {
                announced: Some(n),
                max,
            } => write!(
                f,
                "body of {n} bytes exceeds the maximum message size of {max} bytes (--max-message-size)"
            ),
            RequestError::BodyTooLarge {
                announced: None,
                max,
            } => write!(
                f,
                "body passed the maximum message size of {max} bytes (--max-message-size)"
            ),
            RequestError::BadChunkedBody(e) => write!(f, "invalid chunked body: {e}"),
            RequestError::UnsupportedExpectation => f.write_str("unsupported expectation"),
        }
    }
}

impl std::error::Error for RequestError {}
