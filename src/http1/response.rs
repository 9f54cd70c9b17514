//! Response heads (RFC 9112 §4) and the status codes pushwire uses.
use std::fmt;

/// A status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// 100 Continue: the interim answer to `Expect: 100-continue` (RFC 9110 §15.2.1); sent as
    /// [`CONTINUE_100`].
    pub const CONTINUE: Status = Status(100);
    /// 101 Switching Protocols: the accepted WebSocket upgrade (RFC 9110 §15.2.2).
    pub const SWITCHING_PROTOCOLS: Status = Status(101);
    /// 200 OK: a publish answer, messages for a poll or long-poll, stats, or an SSE stream head.
    pub const OK: Status = Status(200);
    /// 204 No Content: a poll with nothing new, or a long-poll that timed out; never has a body.
    pub const NO_CONTENT: Status = Status(204);
    /// 400 Bad Request: malformed syntax or framing (RFC 9110 §15.5.1).
    pub const BAD_REQUEST: Status = Status(400);
    /// 403 Forbidden: a WebSocket upgrade from an origin not in `--allowed-origin`.
    pub const FORBIDDEN: Status = Status(403);
    /// 404 Not Found: no endpoint at the path.
    pub const NOT_FOUND: Status = Status(404);
    /// 405 Method Not Allowed: the endpoint exists but takes another method; sent with `Allow`.
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 408 Request Timeout: the request head did not arrive within `--head-timeout`.
    pub const REQUEST_TIMEOUT: Status = Status(408);
    /// 503 Service Unavailable: a connection over `--max-connections`, sent with `Retry-After`.
    pub const SERVICE_UNAVAILABLE: Status = Status(503);

    /// The RFC 9110 reason phrase for the code; `Unknown` for a code pushwire never sends.
    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            101 => "Switching Protocols",
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            413 => "Content Too Large",
            414 => "URI Too Long",
            417 => "Expectation Failed",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Unknown",
        }
    }

    /// RFC 9110 §6.4.1: 1xx, 204 and 304 responses never carry content, and §8.6 forbids a
    /// Content-Length on 1xx and 204.
    pub fn allows_content(self) -> bool {
        !(self.0 < 200 || self.0 == 204 || self.0 == 304)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// `Content-Length: n` (omitted where the status forbids content).
    Length(usize),
    /// `Transfer-Encoding: chunked`: a stream (SSE) to an HTTP/1.1 client.
    Chunked,
    /// Until the connection closes: a stream to an HTTP/1.0 client, which knows no chunking.
    UntilClose,
}

/// A response head to encode. Header values are trusted (they come from the server, never from a
/// client), so no validation happens here.
#[derive(Debug, Clone)]
pub struct ResponseHead<'a> {
    /// The status line's code and reason.
    pub status: Status,
    /// Answer in the client's version: an HTTP/1.0 client gets `HTTP/1.0` (RFC 9110 §2.5 allows
    /// either; 1.0 is what such a client is sure to parse).
    pub minor_version: u8,
    /// The `Date` value (IMF-fixdate), supplied by the caller: this module has no clock.
    pub date: &'a str,
    /// How the body is delimited: the framing header written, if any.
    pub body: ResponseBody,
    /// `Some(false)` sends `Connection: close`; `Some(true)` sends `Connection: keep-alive` to an
    /// HTTP/1.0 client (1.1 keeps alive by default); `None` sends nothing.
    pub keep_alive: Option<bool>,
    /// The `Content-Type` value; `None` sends no such header.
    pub content_type: Option<&'a str>,
    /// Further `(name, value)` header fields, written as given and in order (e.g. `Cache-Control`).
    pub extra: &'a [(&'a str, &'a str)],
}

impl ResponseHead<'_> {
    /// Appends the head, blank line included, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        // Piece by piece rather than with `write!`: heads are written once per long-poll answer,
        // and the formatting machinery cost more than the rest of the head in a profile.
        out.extend_from_slice(b"HTTP/1.");
        push_decimal(u64::from(self.minor_version), out);
        out.push(b' ');
        push_decimal(u64::from(self.status.0), out);
        out.push(b' ');
        out.extend_from_slice(self.status.reason().as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(self.date.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(ct) = self.content_type {
            header(out, "Content-Type", ct);
        }
        match self.body {
            ResponseBody::Length(n) if self.status.allows_content() => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(n as u64, out);
                out.extend_from_slice(b"\r\n");
            }
            ResponseBody::Length(_) | ResponseBody::UntilClose => {}
            ResponseBody::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        }
        for (name, value) in self.extra {
            header(out, name, value);
        }
        match self.keep_alive {
            Some(false) => out.extend_from_slice(b"Connection: close\r\n"),
            Some(true) if self.minor_version == 0 => {
                out.extend_from_slice(b"Connection: keep-alive\r\n")
            }
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `name: value` and the line end.
fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// How many digits `n` has in decimal.
pub(crate) fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Appends `n` in decimal ASCII (what `write!` does, without the formatting machinery: a
/// response head and an SSE `id:` line are written once per delivery).
pub(crate) fn push_decimal(mut n: u64, out: &mut Vec<u8>) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        start -= 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// The interim response that tells a client sending `Expect: 100-continue` to go on.
pub const CONTINUE_100: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Wed, 25 Nov 2026 04:00:00 GMT";

    #[test]
    fn encodes_json_response() {
        let mut out = vec![0xa5; 0];
        ResponseHead {
            status: Status::OK,
            minor_version: 1,
            date: DATE,
            body: ResponseBody::Length(17),
            keep_alive: None,
            content_type: Some("application/json"),
            extra: &[],
        }
        .encode(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 04:00:00 GMT\r\n\
             Content-Type: application/json\r\nContent-Length: 17\r\n\r\n"
        );
    }

    #[test]
    fn encodes_204_without_content_length() {
        let mut out = vec![];
        ResponseHead {
            status: Status::NO_CONTENT,
            minor_version: 0,
            date: DATE,
            body: ResponseBody::Length(0),
            keep_alive: Some(true),
            content_type: None,
            extra: &[("Cache-Control", "no-store")],
        }
        .encode(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.0 204 No Content\r\nDate: Wed, 25 Nov 2026 04:00:00 GMT\r\n\
             Cache-Control: no-store\r\nConnection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn encodes_chunked_stream_with_close() {
        let mut out = vec![];
        ResponseHead {
            status: Status::OK,
            minor_version: 1,
            date: DATE,
            body: ResponseBody::Chunked,
            keep_alive: Some(false),
            content_type: Some("text/event-stream"),
            extra: &[],
        }
        .encode(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("Transfer-Encoding: chunked\r\n"));
        assert!(s.ends_with("Connection: close\r\n\r\n"));
        assert!(!s.contains("Content-Length"));
    }
}
