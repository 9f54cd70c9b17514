//! The request head: finding its end without rescanning, enforcing size limits, and parsing it with
//! `httparse` into an owned [`RequestHead`].
use std::fmt;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::error::RequestError;

/// The most header fields one request may carry.
pub(crate) const MAX_HEADERS: usize = 64;

/// Size limits for a request head, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest request line (method, target and version, without CRLF) → 414 past it.
    pub max_request_line: usize,
    /// The largest head, request line and header fields included → 431 past it.
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 * 1024,
            max_head: 16 * 1024,
        }
    }
}

/// A parsed, owned request head: one copy of its bytes and where each part lies in them. A
/// request costs two allocations (the bytes and the list of fields) whatever it carries, where
/// an owned string per method, target, name and value cost a long-poll seven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The head as received, up to the end of its last field (of the request line when it has
    /// none).
    bytes: Box<[u8]>,
    /// The method as sent, in `bytes`.
    method: Range<u32>,
    /// The request target as sent, in `bytes`.
    target: Range<u32>,
    /// The target's path, in `bytes` (see [`RequestHead::path`]); found once, when the head is
    /// parsed, since routing asks for it several times. `None`: an absolute-form target naming no
    /// path, whose path is `/`.
    path: Option<Range<u32>>,
    /// The target's query without its `?`, in `bytes`, when it has one.
    query: Option<Range<u32>>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Each field's name and value, in `bytes`, in the order received.
    fields: Vec<(Range<u32>, Range<u32>)>,
    /// Bytes the head took on the wire, blank line included.
    pub len: usize,
}

impl RequestHead {
    /// The text at `range`: httparse handed out method, target and names as `str`, so the check
    /// cannot fail (an empty string if it ever did).
    fn text(&self, range: &Range<u32>) -> &str {
        std::str::from_utf8(self.raw(range)).unwrap_or_default()
    }

    fn raw(&self, range: &Range<u32>) -> &[u8] {
        &self.bytes[range.start as usize..range.end as usize]
    }

    /// The method as sent; methods are case-sensitive (`GET`, `POST`, …).
    pub fn method(&self) -> &str {
        self.text(&self.method)
    }

    /// The request target as sent (origin form: path and optional query).
    pub fn target(&self) -> &str {
        self.text(&self.target)
    }

    /// Every header field, in the order received: the name as sent (compare it
    /// case-insensitively) and the raw value (bytes, not necessarily UTF-8).
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|(name, value)| (self.text(name), self.raw(value)))
    }

    /// The value of the first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers_named(name).next()
    }

    /// Every value of the header fields called `name` (case-insensitive), in order.
    pub fn headers_named<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        self.fields
            .iter()
            .filter(move |(n, _)| self.raw(n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| self.raw(value))
    }

    /// True when a comma-separated header (`Connection`, `Upgrade`, …) lists `token`
    /// (case-insensitive), in any of its fields.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    }

    /// The path part of the target. The absolute form (`http://host/path`, RFC 9112 §3.2.2, which
    /// a server MUST accept) is reduced to its path.
    pub fn path(&self) -> &str {
        self.path.as_ref().map_or("/", |p| self.text(p))
    }

    /// The query part of the target, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_ref().map(|q| self.text(q))
    }

    /// The value of query parameter `key` (first occurrence); no percent-decoding, since every
    /// parameter pushwire reads is a number.
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }

    /// Whether the connection may carry another request after this one (RFC 9112 §9.3): HTTP/1.1
    /// unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.has_token("connection", "keep-alive")
    }
}

impl fmt::Display for RequestHead {
    /// One line: `GET /poll/news?since=3 HTTP/1.1 (4 headers, 112 bytes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} HTTP/1.{} ({} headers, {} bytes)",
            self.method(),
            self.target(),
            self.minor_version,
            self.fields.len(),
            self.len
        )
    }
}

/// Incremental request-head decoder. It remembers how far the search for the blank line got, so a
/// head arriving one byte at a time is scanned once, not once per byte.
#[derive(Debug, Default)]
pub struct HeadReader {
    scanned: usize,
}

impl HeadReader {
    /// A reader that has scanned nothing yet.
    pub fn new() -> HeadReader {
        HeadReader::default()
    }

    /// Decodes the head at the start of `buf`. `Ok(None)` means the head is incomplete (nothing is
    /// consumed); `Ok(Some(head))` consumed `head.len` bytes; an error means the input is invalid.
    /// Empty lines before the request line must be skipped by the caller (RFC 9112 §2.2); see
    /// [`leading_empty_lines`].
    pub fn decode(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<RequestHead>, RequestError> {
        check_request_line(buf, limits)?;
        let Some(end) = self.find_end(buf) else {
            if buf.len() > limits.max_head {
                return Err(RequestError::HeadTooLarge);
            }
            return Ok(None);
        };
        self.scanned = 0;
        // The spans of an owned head are u32: no configured limit lets a larger one through.
        if end > limits.max_head || u32::try_from(end).is_err() {
            return Err(RequestError::HeadTooLarge);
        }
        parse(&buf[..end]).map(Some)
    }

    /// Finds the end of the head (just past the blank line), accepting CRLF or bare LF line ends.
    fn find_end(&mut self, buf: &[u8]) -> Option<usize> {
        // Resume a little before where the last search stopped: a terminator may straddle it.
        let start = self.scanned.saturating_sub(3);
        // Line by line (`memchr` jumps to each line end instead of testing every byte).
        for lf in memchr::memchr_iter(b'\n', buf.get(start..)?).map(|off| start + off) {
            match buf.get(lf + 1) {
                Some(b'\n') => return Some(lf + 2),
                Some(b'\r') if buf.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
                Some(b'\r') if lf + 2 >= buf.len() => {
                    self.scanned = lf;
                    return None;
                }
                None => {
                    self.scanned = lf;
                    return None;
                }
                _ => {}
            }
        }
        self.scanned = buf.len();
        None
    }
}

/// How many bytes of CRLF / LF precede the request line (RFC 9112 §2.2 says a server SHOULD
/// ignore at least one).
pub fn leading_empty_lines(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

fn check_request_line(buf: &[u8], limits: &Limits) -> Result<(), RequestError> {
    let window = &buf[..buf.len().min(limits.max_request_line + 2)];
    match memchr::memchr(b'\n', window) {
        Some(lf) => {
            let line_len = if lf > 0 && buf[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            if line_len > limits.max_request_line {
                return Err(RequestError::RequestLineTooLong);
            }
        }
        None if buf.len() > limits.max_request_line + 1 => {
            return Err(RequestError::RequestLineTooLong);
        }
        None => {}
    }
    Ok(())
}

fn parse(head: &[u8]) -> Result<RequestHead, RequestError> {
    // Left uninitialised: httparse writes each slot it hands back, and filling 64 empty ones
    // first was a quarter of a long-poll request's parsing.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut slots) {
        Ok(httparse::Status::Complete(_)) => {}
        // The blank line was found, so a partial parse means the head itself is cut short.
        Ok(httparse::Status::Partial) => {
            return Err(RequestError::MalformedHead(httparse::Error::Token));
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(httparse::Error::Version) if names_other_http_version(head) => {
            return Err(RequestError::UnsupportedVersion);
        }
        Err(e) => return Err(RequestError::MalformedHead(e)),
    }
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(RequestError::MalformedHead(httparse::Error::Token));
    };
    let hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    match (minor_version, hosts) {
        (_, n) if n > 1 => return Err(RequestError::DuplicateHost),
        (1, 0) => return Err(RequestError::MissingHost),
        _ => {}
    }
    // Every non-empty piece httparse returns is a slice of `head`; its place there is its span
    // (an empty one may point anywhere, and has nothing to find). The copy keeps the head up to
    // the end of its last piece (not the blank line).
    let span = |piece: &[u8]| {
        let start = (piece.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
        match start.checked_add(piece.len()) {
            Some(end) if !piece.is_empty() && end <= head.len() => start as u32..end as u32,
            _ => 0..0,
        }
    };
    let (path, query) = target_parts(target);
    let (path, query) = (
        path.map(|p| span(p.as_bytes())),
        query.map(|q| span(q.as_bytes())),
    );
    let method = span(method.as_bytes());
    let target = span(target.as_bytes());
    let fields: Vec<_> = req
        .headers
        .iter()
        .map(|h| (span(h.name.as_bytes()), span(h.value)))
        .collect();
    let end = fields
        .iter()
        .map(|(name, value)| name.end.max(value.end))
        .chain([target.end])
        .max()
        .unwrap_or(target.end);
    Ok(RequestHead {
        bytes: head[..end as usize].into(),
        method,
        target,
        path,
        query,
        minor_version,
        fields,
        len: head.len(),
    })
}

/// A request target's path and query (without its `?`). The absolute form (`http://host/path`)
/// is reduced to its path; `None` when it names none (its path is `/`, which is not in the
/// target).
fn target_parts(target: &str) -> (Option<&str>, Option<&str>) {
    let (without_query, query) = match memchr::memchr(b'?', target.as_bytes()) {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    let t = without_query.as_bytes();
    let absolute = t.len() > 4 && t[..4].eq_ignore_ascii_case(b"http");
    let scheme_end = without_query
        .get(..8)
        .filter(|_| absolute)
        .and_then(|p| p.find("://"));
    let path = match scheme_end {
        Some(i) => {
            let after_authority = &without_query[i + 3..];
            memchr::memchr(b'/', after_authority.as_bytes()).map(|slash| &after_authority[slash..])
        }
        None => Some(without_query),
    };
    (path, query)
}

/// True when the request line ends in a well-formed `HTTP/x.y` other than 1.0/1.1: that is an
/// unsupported version (505), not a syntax error (400).
fn names_other_http_version(head: &[u8]) -> bool {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = head[..line_end].trim_ascii_end();
    let Some(space) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    match &line[space + 1..] {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] => {
            major.is_ascii_digit()
                && minor.is_ascii_digit()
                && !(*major == b'1' && (*minor == b'0' || *minor == b'1'))
        }
        [b'H', b'T', b'T', b'P', b'/', major] => major.is_ascii_digit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<Option<RequestHead>, RequestError> {
        HeadReader::new().decode(input, &Limits::default())
    }

    /// Whole input, one byte at a time, and with trailing bytes: the same head each way.
    fn decode_three_ways(input: &[u8]) -> RequestHead {
        let whole = decode_all(input).unwrap().unwrap();
        let mut reader = HeadReader::new();
        let mut bytewise = None;
        for n in 1..=input.len() {
            if let Some(h) = reader.decode(&input[..n], &Limits::default()).unwrap() {
                assert_eq!(n, input.len(), "head completed early");
                bytewise = Some(h);
            }
        }
        assert_eq!(bytewise.as_ref(), Some(&whole));
        let mut trailing = input.to_vec();
        trailing.extend_from_slice(b"POST /next HTTP/1.1\r\n");
        let with_trailing = decode_all(&trailing).unwrap().unwrap();
        assert_eq!(with_trailing, whole);
        whole
    }

    #[test]
    fn decodes_simple_get() {
        let h =
            decode_three_ways(b"GET /poll/a?since=3 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
        assert_eq!(h.method(), "GET");
        assert_eq!(h.path(), "/poll/a");
        assert_eq!(h.query_param("since"), Some("3"));
        assert_eq!(h.minor_version, 1);
        assert_eq!(h.header("ACCEPT"), Some(&b"*/*"[..]));
        assert_eq!(h.len, 54);
        assert!(h.keep_alive());
    }

    #[test]
    fn every_field_is_kept_in_order_with_its_raw_value() {
        let h = decode_three_ways(
            b"POST /pub/a HTTP/1.1\r\nHost: x\r\nX-Odd: caf\xe9 \r\nhost-ish: y\r\n\r\n",
        );
        assert_eq!(h.method(), "POST");
        assert_eq!(h.target(), "/pub/a");
        let fields: Vec<(&str, &[u8])> = h.headers().collect();
        assert_eq!(
            fields,
            [
                ("Host", &b"x"[..]),
                ("X-Odd", &b"caf\xe9"[..]),
                ("host-ish", &b"y"[..])
            ]
        );
        assert_eq!(h.header("x-odd"), Some(&b"caf\xe9"[..]));
        assert_eq!(h.header("host"), Some(&b"x"[..]));
        assert_eq!(h.to_string(), "POST /pub/a HTTP/1.1 (3 headers, 60 bytes)");
    }

    #[test]
    fn empty_values_keep_their_place() {
        for input in [
            &b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Blank:   \r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nX-Empty:\r\nHost: x\r\n\r\n",
            b"GET / HTTP/1.0\r\nX-Empty:\r\n\r\n",
        ] {
            let h = decode_three_ways(input);
            assert_eq!(h.header("x-empty"), Some(&b""[..]));
            assert!(h.headers().all(|(name, _)| name.starts_with(['H', 'X'])));
        }
    }

    #[test]
    fn absolute_form_reduces_to_the_path() {
        let h = decode_three_ways(
            b"GET http://example.com:80/poll/a?since=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(h.path(), "/poll/a");
        assert_eq!(h.query_param("since"), Some("1"));
        let h = decode_three_ways(b"GET HTTPS://example.com HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/", None));
        let h = decode_three_ways(b"GET http://example.com?a=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/", Some("a=1")));
    }

    #[test]
    fn path_and_query_split_at_the_first_question_mark() {
        for (target, path, query) in [
            ("/a", "/a", None),
            ("/a?", "/a", Some("")),
            ("/a?b=1?c", "/a", Some("b=1?c")),
            ("/httpx://y/z", "/httpx://y/z", None),
        ] {
            let wire = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            let h = decode_three_ways(wire.as_bytes());
            assert_eq!((h.path(), h.query()), (path, query), "{target}");
        }
    }

    #[test]
    fn decodes_bare_lf_head() {
        let h = decode_three_ways(b"GET / HTTP/1.0\n\n");
        assert_eq!(h.minor_version, 0);
        assert!(!h.keep_alive());
    }

    #[test]
    fn connection_is_a_token_list() {
        let h = decode_three_ways(b"GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n");
        assert!(h.keep_alive());
        let h = decode_three_ways(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n");
        assert!(!h.keep_alive());
    }

    #[test]
    fn rejects_bad_syntax_with_400() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n",
            b"GET/ HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET / HTTX/1.1\r\nHost: x\r\n\r\n",
        ] {
            let e = decode_all(bad).unwrap_err();
            assert_eq!(
                e.status(),
                400,
                "{:?} gave {e:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rejects_other_versions_with_505() {
        for v in ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3"] {
            let req = format!("GET / {v}\r\nHost: x\r\n\r\n");
            assert_eq!(
                decode_all(req.as_bytes()),
                Err(RequestError::UnsupportedVersion),
                "{v}"
            );
        }
    }

    #[test]
    fn host_rules() {
        assert_eq!(
            decode_all(b"GET / HTTP/1.1\r\n\r\n"),
            Err(RequestError::MissingHost)
        );
        assert_eq!(
            decode_all(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Err(RequestError::DuplicateHost)
        );
        assert!(decode_all(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn limits_request_line_and_head() {
        let limits = Limits::default();
        let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(limits.max_request_line));
        assert_eq!(
            decode_all(long_line.as_bytes()),
            Err(RequestError::RequestLineTooLong)
        );
        // Without any line end yet, the line is already too long.
        let partial = "G".repeat(limits.max_request_line + 2);
        assert_eq!(
            decode_all(partial.as_bytes()),
            Err(RequestError::RequestLineTooLong)
        );
        let mut big = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        while big.len() <= limits.max_head {
            big.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        assert_eq!(decode_all(&big), Err(RequestError::HeadTooLarge));
        big.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&big), Err(RequestError::HeadTooLarge));
    }

    #[test]
    fn too_many_headers_is_431() {
        let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert_eq!(decode_all(&req).unwrap_err().status(), 431);
    }

    #[test]
    fn incomplete_head_consumes_nothing() {
        assert_eq!(decode_all(b"GET / HTTP/1.1\r\nHost: a\r\n"), Ok(None));
        assert_eq!(decode_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r"), Ok(None));
    }

    #[test]
    fn skips_leading_empty_lines() {
        assert_eq!(leading_empty_lines(b"\r\n\r\nGET"), 4);
        assert_eq!(leading_empty_lines(b"GET"), 0);
    }
}
