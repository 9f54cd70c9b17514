//! Reading HTTP/1.1 responses, sans-IO: the head with `httparse`, the body by `Content-Length`,
//! by the crate's own chunked decoder, or until the connection closes.
use crate::http1::chunked::{ChunkedDecoder, ChunkedError};

/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// The fields of a response head the clients act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// The status code (0 if the parser gave none).
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// The `Content-Length` value, when present and a valid number.
    pub content_length: Option<u64>,
    /// Whether `Transfer-Encoding` ends in `chunked`: the body is chunked.
    pub chunked: bool,
    /// `Connection: close`, or HTTP/1.0 without keep-alive.
    pub close: bool,
    /// The `ETag`, sent back as `If-None-Match` by pollers of servers that use it.
    pub etag: Option<String>,
    /// The `Last-Modified` value, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
    /// `Sec-WebSocket-Accept`, checked against the key sent in the upgrade.
    pub ws_accept: Option<String>,
    /// `Sec-WebSocket-Extensions` of a 101.
    pub ws_extensions: Option<String>,
}

impl Head {
    /// Whether a body follows (RFC 9112 §6.3: none for 1xx, 204, 304).
    pub fn has_body(&self) -> bool {
        !(self.status < 200 || self.status == 204 || self.status == 304)
    }
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The head is not valid HTTP/1.1 (httparse's reason).
    Head(String),
    /// No blank line within [`MAX_HEAD`] bytes.
    HeadTooLarge,
    /// The chunked body is not valid (RFC 9112 §7.1).
    Chunked(ChunkedError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Head(e) => write!(f, "bad response head: {e}"),
            Error::HeadTooLarge => f.write_str("response head too large"),
            Error::Chunked(e) => write!(f, "bad chunked body: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Parses a response head from the start of `buf`: `Ok(None)` until the blank line has arrived.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::Head(e.to_string())),
    };
    let mut head = Head {
        status: response.code.unwrap_or(0),
        len,
        close: response.version == Some(0),
        ..Head::default()
    };
    let text = |v: &[u8]| String::from_utf8_lossy(v).trim().to_string();
    for h in response.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = text(h.value).parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = text(h.value).to_ascii_lowercase().ends_with("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = text(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                head.close = true;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                head.close = false;
            }
        } else if name.eq_ignore_ascii_case("etag") {
            head.etag = Some(text(h.value));
        } else if name.eq_ignore_ascii_case("last-modified") {
            head.last_modified = Some(text(h.value));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            head.ws_accept = Some(text(h.value));
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            head.ws_extensions = Some(text(h.value));
        }
    }
    Ok(Some(head))
}

#[derive(Debug)]
enum State {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// One response at a time: feed it bytes, get the head, body bytes as they come, and the end.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
}

/// What one [`ResponseReader::advance`] call did.
#[derive(Debug, Default)]
pub struct Advance {
    /// Input bytes used; the rest belongs to what follows (a pipelined response, frames after 101).
    pub consumed: usize,
    /// The head, when this call completed it.
    pub head: Option<Head>,
    /// The response is complete.
    pub done: bool,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader { state: State::Head }
    }
}

impl ResponseReader {
    /// A reader waiting for a response head.
    pub fn new() -> ResponseReader {
        ResponseReader::default()
    }

    /// Ready for the next response on the connection.
    pub fn reset(&mut self) {
        self.state = State::Head;
    }

    /// Whether the head has been read and the body is still coming.
    pub fn in_body(&self) -> bool {
        !matches!(self.state, State::Head | State::Done)
    }

    /// Reads from `input`, appending body bytes (decoded) to `body`. Call again with the rest of
    /// the input after a completed head or response.
    pub fn advance(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<Advance, Error> {
        let mut adv = Advance::default();
        match &mut self.state {
            State::Head => {
                let Some(head) = parse_head(input)? else {
                    return Ok(adv);
                };
                adv.consumed = head.len;
                self.state = if !head.has_body() || head.status == 101 {
                    adv.done = true;
                    State::Done
                } else if head.chunked {
                    State::Chunked(ChunkedDecoder::new())
                } else if let Some(n) = head.content_length {
                    if n == 0 {
                        adv.done = true;
                        State::Done
                    } else {
                        State::Length(n)
                    }
                } else {
                    State::UntilClose
                };
                adv.head = Some(head);
            }
            State::Length(remaining) => {
                let n = (*remaining).min(input.len() as u64) as usize;
                body.extend_from_slice(&input[..n]);
                *remaining -= n as u64;
                adv.consumed = n;
                if *remaining == 0 {
                    adv.done = true;
                    self.state = State::Done;
                }
            }
            State::Chunked(decoder) => {
                adv.consumed = decoder.decode(input, body).map_err(Error::Chunked)?;
                if decoder.is_done() {
                    adv.done = true;
                    self.state = State::Done;
                }
            }
            State::UntilClose => {
                body.extend_from_slice(input);
                adv.consumed = input.len();
            }
            State::Done => {}
        }
        Ok(adv)
    }

    /// The connection closed: a body read until close is complete now.
    pub fn eof(&mut self) -> bool {
        let complete = matches!(self.state, State::UntilClose);
        if complete {
            self.state = State::Done;
        }
        complete
    }
}

/// A GET request head.
pub fn get_request(authority: &str, target: &str, extra: &[(&str, &str)], out: &mut Vec<u8>) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in extra {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// One blocking `GET` on a fresh connection, answered as JSON: how the tools read `/stats` and
/// ask for `/drop` (with `post`).
pub fn fetch_json(
    addr: std::net::SocketAddr,
    authority: &str,
    method: &str,
    path: &str,
) -> Result<serde_json::Value, String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .map_err(|e| format!("{addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut reader = ResponseReader::new();
    let mut body = Vec::new();
    let mut input = &response[..];
    let mut status = 0;
    loop {
        let adv = reader
            .advance(input, &mut body)
            .map_err(|e| e.to_string())?;
        if let Some(h) = &adv.head {
            status = h.status;
        }
        input = &input[adv.consumed..];
        if adv.done || adv.consumed == 0 {
            break;
        }
    }
    reader.eof();
    if status != 200 {
        return Err(format!("{method} {path}: answered {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("{path}: not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_chunked_and_empty_bodies_back_to_back() {
        let wire: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nETag: \"e1\"\r\n\r\nabc\
            HTTP/1.1 204 No Content\r\n\r\n\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nde\r\n0\r\n\r\n";
        // Whole, and one byte at a time (the caller keeps what was not consumed).
        for step in [wire.len(), 1] {
            let mut r = ResponseReader::new();
            let (mut pending, mut heads, mut body, mut done) =
                (Vec::new(), Vec::new(), Vec::new(), 0);
            for piece in wire.chunks(step) {
                pending.extend_from_slice(piece);
                loop {
                    let adv = r.advance(&pending, &mut body).unwrap();
                    heads.extend(adv.head);
                    pending.drain(..adv.consumed);
                    if adv.done {
                        done += 1;
                        r.reset();
                    } else if adv.consumed == 0 {
                        break;
                    }
                }
            }
            assert_eq!(done, 3);
            assert_eq!(body, b"abcde");
            assert_eq!(heads[0].etag.as_deref(), Some("\"e1\""));
            assert_eq!(heads[1].status, 204);
            assert!(heads[2].chunked && heads[2].close);
        }
    }

    #[test]
    fn bad_heads_are_errors() {
        let mut r = ResponseReader::new();
        assert!(
            r.advance(b"HTTP/1.1 2x0 OK\r\n\r\n", &mut Vec::new())
                .is_err()
        );
        let mut r = ResponseReader::new();
        assert!(
            r.advance(b"HTTP/1.1 200 OK\r\n", &mut Vec::new())
                .unwrap()
                .head
                .is_none()
        );
    }
}
