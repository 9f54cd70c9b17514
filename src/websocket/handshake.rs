//! The opening handshake, server side (RFC 6455 §4.2): checks an already-parsed HTTP request head
//! and computes `Sec-WebSocket-Accept`. Parsing HTTP and writing error responses belong to the
//! HTTP layer; this file only says which status and extra headers a rejection needs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use super::extension::Agreement;

/// Appended to the client's key before hashing (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this server speaks (RFC 6455 §4.1).
pub const VERSION: &str = "13";

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`: base64(SHA-1(key ++ GUID)) (RFC 6455 §4.2.2).
pub fn accept_key(client_key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key);
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Why an upgrade request is refused. [`HandshakeError::status`] and
/// [`HandshakeError::extra_headers`] say how to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The method must be GET (RFC 6455 §4.1) → 400.
    MethodNotGet,
    /// The request must be HTTP/1.1 or later (RFC 6455 §4.1) → 400.
    HttpVersionTooOld,
    /// No `Upgrade` header with the `websocket` token (RFC 6455 §4.2.1 item 3): not a WebSocket
    /// request at all → 426 with `Upgrade: websocket` (RFC 9110 §15.5.22).
    MissingUpgradeWebsocket,
    /// No `Connection` header with the `upgrade` token (RFC 6455 §4.2.1 item 4) → 426 with
    /// `Upgrade: websocket`.
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Version` header (RFC 6455 §4.2.1 item 6) → 426 with
    /// `Sec-WebSocket-Version: 13` (§4.4).
    MissingVersion,
    /// `Sec-WebSocket-Version` other than 13 (RFC 6455 §4.4) → 426 with
    /// `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key` header (RFC 6455 §4.2.1 item 5) → 400.
    MissingKey,
    /// More than one `Sec-WebSocket-Key` header (RFC 6455 §11.3.1: it MUST NOT appear more than
    /// once) → 400.
    DuplicateKey,
    /// A key that is not the base64 encoding of exactly 16 bytes (RFC 6455 §4.2.1 item 5) → 400.
    InvalidKey,
}

impl HandshakeError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::MissingUpgradeWebsocket
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::MissingVersion
            | HandshakeError::UnsupportedVersion => 426,
            HandshakeError::MethodNotGet
            | HandshakeError::HttpVersionTooOld
            | HandshakeError::MissingKey
            | HandshakeError::DuplicateKey
            | HandshakeError::InvalidKey => 400,
        }
    }

    /// Headers the rejection must carry. Every 426 names the protocol to upgrade to
    /// (RFC 9110 §15.5.22); a version problem also lists the versions we speak (RFC 6455 §4.4).
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            HandshakeError::MissingUpgradeWebsocket | HandshakeError::MissingConnectionUpgrade => {
                &[("Upgrade", "websocket")]
            }
            HandshakeError::MissingVersion | HandshakeError::UnsupportedVersion => {
                &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", VERSION)]
            }
            HandshakeError::MethodNotGet
            | HandshakeError::HttpVersionTooOld
            | HandshakeError::MissingKey
            | HandshakeError::DuplicateKey
            | HandshakeError::InvalidKey => &[],
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::MethodNotGet => "websocket upgrade method is not get",
            HandshakeError::HttpVersionTooOld => "websocket upgrade needs http/1.1",
            HandshakeError::MissingUpgradeWebsocket => "missing upgrade: websocket",
            HandshakeError::MissingConnectionUpgrade => "missing connection: upgrade",
            HandshakeError::MissingVersion => "missing sec-websocket-version",
            HandshakeError::UnsupportedVersion => "unsupported sec-websocket-version",
            HandshakeError::MissingKey => "missing sec-websocket-key",
            HandshakeError::DuplicateKey => "duplicate sec-websocket-key",
            HandshakeError::InvalidKey => "invalid sec-websocket-key",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Checks an upgrade request and returns the `Sec-WebSocket-Accept` value to answer with.
///
/// `headers` are (name, value) pairs as parsed; names compare case-insensitively and a header may
/// repeat (its lists are then merged). Checks run in this order: method, HTTP version, `Upgrade`,
/// `Connection`, `Sec-WebSocket-Version`, `Sec-WebSocket-Key`. `Host`, `Origin`, subprotocols and
/// extensions are left to the caller (see [`super::extension::negotiate`] for permessage-deflate;
/// any other extension is refused by omission, RFC 6455 §9).
pub fn validate_upgrade(
    method: &str,
    http_minor_version: u8,
    headers: &[(&str, &[u8])],
) -> Result<String, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    if http_minor_version < 1 {
        return Err(HandshakeError::HttpVersionTooOld);
    }
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let has_token = |name: &'static str, token: &str| {
        values(name).any(|v| {
            v.split(|&b| b == b',')
                .any(|t| trim_ows(t).eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    if !has_token("Upgrade", "websocket") {
        return Err(HandshakeError::MissingUpgradeWebsocket);
    }
    if !has_token("Connection", "upgrade") {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    let mut versions = values("Sec-WebSocket-Version").peekable();
    if versions.peek().is_none() {
        return Err(HandshakeError::MissingVersion);
    }
    if !versions.all(|v| trim_ows(v) == VERSION.as_bytes()) {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let mut keys = values("Sec-WebSocket-Key");
    let key = match (keys.next(), keys.next()) {
        (None, _) => return Err(HandshakeError::MissingKey),
        (Some(_), Some(_)) => return Err(HandshakeError::DuplicateKey),
        (Some(key), None) => trim_ows(key),
    };
    // 16 bytes encode to exactly 24 characters; checking that first bounds the decode work.
    let mut nonce = [0u8; 18]; // room for what 24 characters can decode to
    match (key.len(), STANDARD.decode_slice(key, &mut nonce)) {
        (24, Ok(16)) => Ok(accept_key(key)),
        _ => Err(HandshakeError::InvalidKey),
    }
}

/// Appends the exact `101 Switching Protocols` response head for an accepted upgrade.
pub fn encode_switching_protocols(accept: &str, out: &mut Vec<u8>) {
    encode_switching_protocols_with(accept, None, out);
}

/// The same head, with `Sec-WebSocket-Extensions` answering the permessage-deflate offer the
/// server accepted (RFC 7692 §5), if any.
pub fn encode_switching_protocols_with(
    accept: &str,
    deflate: Option<&Agreement>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    if let Some(agreement) = deflate {
        out.extend_from_slice(b"\r\nSec-WebSocket-Extensions: ");
        agreement.encode_response(out);
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Strips optional whitespace (spaces and tabs, RFC 9110 §5.6.3) around a header value or token.
pub(super) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    type Headers = Vec<(&'static str, &'static [u8])>;

    fn chrome() -> Headers {
        vec![
            ("Host", b"localhost:8080"),
            ("Connection", b"Upgrade"),
            ("Upgrade", b"websocket"),
            ("Sec-WebSocket-Version", b"13"),
            ("Sec-WebSocket-Key", KEY),
        ]
    }

    fn with(mut headers: Headers, name: &str, value: Option<&'static [u8]>) -> Headers {
        let pos = headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name));
        match (pos, value) {
            (Some(i), Some(v)) => headers[i].1 = v,
            (Some(i), None) => {
                headers.remove(i);
            }
            (None, _) => panic!("no header {name}"),
        }
        headers
    }

    #[test]
    fn encodes_rfc_accept_key() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(KEY), ACCEPT);
    }

    #[test]
    fn decodes_chrome_and_firefox_upgrades() {
        assert_eq!(validate_upgrade("GET", 1, &chrome()).as_deref(), Ok(ACCEPT));
        let firefox = vec![
            ("host", &b"localhost"[..]),
            ("connection", b"keep-alive, Upgrade"),
            ("upgrade", b"WebSocket"),
            ("sec-websocket-version", b" 13 "),
            ("sec-websocket-key", b" dGhlIHNhbXBsZSBub25jZQ==\t"),
            ("sec-websocket-extensions", b"permessage-deflate"),
        ];
        assert_eq!(validate_upgrade("GET", 1, &firefox).as_deref(), Ok(ACCEPT));
        // Tokens may be spread over repeated headers.
        let mut split = chrome();
        split.push(("Connection", b"keep-alive"));
        split.swap(1, 5);
        assert_eq!(validate_upgrade("GET", 1, &split).as_deref(), Ok(ACCEPT));
    }

    #[test]
    fn decodes_rejections_with_status_and_headers() {
        let cases: Vec<(&str, u8, Headers, HandshakeError)> = vec![
            ("POST", 1, chrome(), HandshakeError::MethodNotGet),
            ("get", 1, chrome(), HandshakeError::MethodNotGet),
            ("GET", 0, chrome(), HandshakeError::HttpVersionTooOld),
            (
                "GET",
                1,
                with(chrome(), "Upgrade", None),
                HandshakeError::MissingUpgradeWebsocket,
            ),
            (
                "GET",
                1,
                with(chrome(), "Upgrade", Some(b"h2c")),
                HandshakeError::MissingUpgradeWebsocket,
            ),
            (
                "GET",
                1,
                with(chrome(), "Connection", None),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                "GET",
                1,
                with(chrome(), "Connection", Some(b"keep-alive, upgraded")),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                "GET",
                1,
                with(chrome(), "Sec-WebSocket-Version", None),
                HandshakeError::MissingVersion,
            ),
            (
                "GET",
                1,
                with(chrome(), "Sec-WebSocket-Version", Some(b"8")),
                HandshakeError::UnsupportedVersion,
            ),
            (
                "GET",
                1,
                with(chrome(), "Sec-WebSocket-Version", Some(b"13, 8")),
                HandshakeError::UnsupportedVersion,
            ),
            (
                "GET",
                1,
                with(chrome(), "Sec-WebSocket-Key", None),
                HandshakeError::MissingKey,
            ),
            (
                "GET",
                1,
                with(chrome(), "Sec-WebSocket-Key", Some(b"")),
                HandshakeError::InvalidKey,
            ),
            (
                "GET",
                1,
                with(
                    chrome(),
                    "Sec-WebSocket-Key",
                    Some(b"dGhlIHNhbXBsZSBub25jZQ"),
                ),
                HandshakeError::InvalidKey,
            ),
            (
                "GET",
                1,
                with(
                    chrome(),
                    "Sec-WebSocket-Key",
                    Some(b"dGhlIHNhbXBsZSBub25jZQ=!"),
                ),
                HandshakeError::InvalidKey,
            ),
            // 17 bytes and 15 bytes of nonce.
            (
                "GET",
                1,
                with(
                    chrome(),
                    "Sec-WebSocket-Key",
                    Some(b"dGhlIHNhbXBsZSBub25jZXg="),
                ),
                HandshakeError::InvalidKey,
            ),
            (
                "GET",
                1,
                with(chrome(), "Sec-WebSocket-Key", Some(b"dGhlIHNhbXBsZSBub25j")),
                HandshakeError::InvalidKey,
            ),
        ];
        for (method, minor, headers, expected) in cases {
            assert_eq!(
                validate_upgrade(method, minor, &headers),
                Err(expected),
                "{expected:?}"
            );
        }
        let mut dup = chrome();
        dup.push(("sec-websocket-key", KEY));
        assert_eq!(
            validate_upgrade("GET", 1, &dup),
            Err(HandshakeError::DuplicateKey)
        );

        assert_eq!(HandshakeError::MissingUpgradeWebsocket.status(), 426);
        assert_eq!(
            HandshakeError::MissingUpgradeWebsocket.extra_headers(),
            &[("Upgrade", "websocket")]
        );
        assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
        assert!(
            HandshakeError::MissingVersion
                .extra_headers()
                .contains(&("Sec-WebSocket-Version", "13"))
        );
        assert_eq!(HandshakeError::InvalidKey.status(), 400);
        assert!(HandshakeError::MethodNotGet.extra_headers().is_empty());
        assert_eq!(
            HandshakeError::DuplicateKey.to_string(),
            "duplicate sec-websocket-key"
        );
    }

    #[test]
    fn encodes_switching_protocols() {
        let mut out = b"\xa5".to_vec();
        encode_switching_protocols(ACCEPT, &mut out);
        assert_eq!(
            out,
            b"\xa5HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }
}
