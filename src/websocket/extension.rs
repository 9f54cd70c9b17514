//! `Sec-WebSocket-Extensions` negotiation for permessage-deflate (RFC 7692 §5, §7.1), server
//! side: parse the client's offers, accept the first one the server can meet, and write the
//! response parameters. Pure: header values in, an [`Agreement`] (or nothing) out.
//!
//! What the server answers, and why:
//!
//! - always `server_no_context_takeover` (RFC 7692 §7.1.1.1 lets a server add it unasked): every
//!   message the server sends is compressed on its own, so one channel message compresses to the
//!   same bytes for every subscriber and is compressed once and shared (see `crate::delivery`);
//!   it also means no connection keeps a compressor (one per server is reset for each message);
//! - always `client_no_context_takeover` too (§7.1.1.2 lets a server add it unasked): the client
//!   compresses each message on its own, so a connection holds an inflater (about 43 KiB: the
//!   32 KiB window and the decoding tables) only while a compressed message is arriving, instead
//!   of for its whole life. Measured: 45 kB per `/echo` connection that sent one compressed
//!   message with context takeover, 1.8 kB without (1.6 kB with no compression at all). Clients
//!   lose the cross-message context on what they send; pushwire's traffic is mostly the other
//!   way;
//! - `server_max_window_bits=N` when the client asked for a window below 32 KiB: the compressor
//!   (miniz_oxide through `flate2`, which has a fixed 32 KiB window) is reset every 2^N input
//!   bytes, so no back-reference reaches further than the client's window
//!   ([`super::deflate::Compressor`]);
//! - never `client_max_window_bits`: the inflater always has a 32 KiB window, enough for any
//!   window the client uses.
//!
//! An offer is declined (the next one is tried; with none left the connection goes on without
//! compression, which RFC 7692 §5 allows) when it has an unknown parameter, a parameter twice,
//! a value that is not allowed (window bits outside 8–15 or with leading zeros, a value on a
//! flag, `server_max_window_bits` without a value) or a malformed element. The server never
//! fails the handshake over an extension: declining is always possible.
use std::fmt;

use super::handshake::trim_ows;

/// The registered extension name (RFC 7692 §5).
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// The permessage-deflate parameters the server accepted for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The client resets its compressor after each message: the server frees its inflater then.
    /// The server always asks for it; `false` keeps the inflater (and the client's window) for
    /// the connection's life.
    pub client_no_context_takeover: bool,
    /// The largest LZ77 window (log2) the server's messages may need: 15 unless the client asked
    /// for less with `server_max_window_bits`.
    pub server_max_window_bits: u8,
}

impl Agreement {
    /// The largest window, the default when the client does not limit it (RFC 7692 §7.1.2.1).
    pub const MAX_WINDOW_BITS: u8 = 15;

    /// Appends the `Sec-WebSocket-Extensions` value answering the accepted offer.
    pub fn encode_response(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_string().as_bytes());
    }
}

/// The response value: `permessage-deflate; server_no_context_takeover[; …]`.
impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PERMESSAGE_DEFLATE}; server_no_context_takeover")?;
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if self.server_max_window_bits < Agreement::MAX_WINDOW_BITS {
            write!(
                f,
                "; server_max_window_bits={}",
                self.server_max_window_bits
            )?;
        }
        Ok(())
    }
}

/// Why one offer is declined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decline {
    /// A parameter RFC 7692 §7.1 does not define.
    UnknownParameter(String),
    /// The same parameter twice in one offer (RFC 7692 §7 "multiple parameters with the same
    /// name").
    DuplicateParameter(String),
    /// A value the parameter does not allow (RFC 7692 §7.1.1, §7.1.2).
    InvalidValue(String),
    /// An element that is not `token *( ";" param )` (RFC 6455 §9.1).
    Malformed,
}

impl fmt::Display for Decline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decline::UnknownParameter(p) => write!(f, "unknown parameter {p}"),
            Decline::DuplicateParameter(p) => write!(f, "parameter {p} given twice"),
            Decline::InvalidValue(p) => write!(f, "invalid value for {p}"),
            Decline::Malformed => f.write_str("malformed extension offer"),
        }
    }
}

/// Picks the first permessage-deflate offer the server can meet from every
/// `Sec-WebSocket-Extensions` value of the request (in order), or `None`: no offer, or every
/// offer declined. Other extensions are ignored (refused by omission, RFC 6455 §9.1).
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Agreement> {
    values
        .into_iter()
        .flat_map(|v| split_outside_quotes(v, b','))
        .filter_map(|element| {
            let mut parts = split_outside_quotes(element, b';');
            let name = trim_ows(parts.next().unwrap_or_default());
            name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE.as_bytes())
                .then(|| accept_offer(parts))
        })
        .find_map(|verdict| match verdict {
            Ok(agreement) => Some(agreement),
            Err(decline) => {
                log::debug!("permessage-deflate offer declined: {decline}");
                None
            }
        })
}

/// Checks one offer's parameters (RFC 7692 §7.1) and says what the server answers.
fn accept_offer<'a>(params: impl Iterator<Item = &'a [u8]>) -> Result<Agreement, Decline> {
    let mut seen: [bool; 4] = [false; 4];
    let mut agreement = Agreement {
        client_no_context_takeover: true,
        server_max_window_bits: Agreement::MAX_WINDOW_BITS,
    };
    for param in params {
        let (name, value) = match param.iter().position(|&b| b == b'=') {
            Some(i) => (
                trim_ows(&param[..i]),
                Some(unquote(trim_ows(&param[i + 1..]))?),
            ),
            None => (trim_ows(param), None),
        };
        let name = std::str::from_utf8(name).map_err(|_| Decline::Malformed)?;
        if name.is_empty() {
            return Err(Decline::Malformed);
        }
        const NAMES: [&str; 4] = [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
        ];
        let Some(index) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) else {
            return Err(Decline::UnknownParameter(name.to_string()));
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(Decline::DuplicateParameter(name.to_string()));
        }
        let invalid = || Decline::InvalidValue(name.to_string());
        match (index, value) {
            // The server never keeps context: asked for or not, it answers
            // server_no_context_takeover.
            (0, None) => {}
            // Asked for or not, the server answers client_no_context_takeover.
            (1, None) => {}
            (2, Some(v)) => {
                agreement.server_max_window_bits = window_bits(&v).ok_or_else(invalid)?
            }
            // A hint that the client can limit its window; the server lets it use 32 KiB.
            (3, None) => {}
            (3, Some(v)) => {
                window_bits(&v).ok_or_else(invalid)?;
            }
            _ => return Err(invalid()),
        }
    }
    Ok(agreement)
}

/// `8` to `15`, decimal, no leading zeros (RFC 7692 §7.1.2.1).
fn window_bits(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// A parameter value: a token, or a quoted-string whose content must be a token (RFC 6455 §9.1);
/// quoted-pairs are unescaped.
fn unquote(v: &[u8]) -> Result<Vec<u8>, Decline> {
    let value = match v {
        [b'"', inner @ .., b'"'] => {
            let mut out = Vec::with_capacity(inner.len());
            let mut bytes = inner.iter();
            while let Some(&b) = bytes.next() {
                match b {
                    b'\\' => out.push(*bytes.next().ok_or(Decline::Malformed)?),
                    b'"' => return Err(Decline::Malformed),
                    _ => out.push(b),
                }
            }
            out
        }
        _ => v.to_vec(),
    };
    if value.is_empty() || !value.iter().all(|&b| is_tchar(b)) {
        return Err(Decline::Malformed);
    }
    Ok(value)
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits on `sep` outside double quotes (a quoted value may hold `,` or `;`).
fn split_outside_quotes(v: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(v);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, &b) in s.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                _ if b == sep && !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(values: &[&str]) -> Option<String> {
        negotiate(values.iter().map(|v| v.as_bytes())).map(|a| a.to_string())
    }

    #[test]
    fn accepts_browser_offers_with_server_no_context_takeover() {
        // Chrome and Firefox send this.
        assert_eq!(
            agree(&["permessage-deflate; client_max_window_bits"]).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            agree(&["permessage-deflate"]).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(agree(&[]), None);
        assert_eq!(agree(&["x-webkit-deflate-frame"]), None);
    }

    #[test]
    fn answers_each_parameter() {
        assert_eq!(
            agree(&["permessage-deflate; server_no_context_takeover; client_no_context_takeover"])
                .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            agree(&["permessage-deflate; server_max_window_bits=9; client_max_window_bits=10"])
                .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9"
            )
        );
        assert_eq!(
            agree(&["permessage-deflate; server_max_window_bits=15"]).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            agree(&["PerMessage-Deflate ;\tServer_Max_Window_Bits=\"8\" "]).as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"
            )
        );
    }

    #[test]
    fn takes_the_first_acceptable_of_several_offers() {
        // RFC 7692 §5.1's example: the first offer is declined, the second accepted.
        let header = "permessage-deflate; server_max_window_bits=7, \
                      permessage-deflate; client_no_context_takeover, permessage-deflate";
        assert_eq!(
            agree(&[header]).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        // Offers spread over two header lines, another extension first.
        assert_eq!(
            agree(&[
                "foo; bar=\"a,b\"",
                "permessage-deflate; server_max_window_bits=10"
            ])
            .as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
            )
        );
    }

    #[test]
    fn declines_offers_it_can_not_meet() {
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=\"\"",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; unknown",
            "permessage-deflate; =3",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate; server_max_window_bits=\"10",
        ] {
            assert_eq!(agree(&[offer]), None, "{offer}");
        }
        let decline = accept_offer([&b"x=1"[..]].into_iter()).unwrap_err();
        assert_eq!(decline.to_string(), "unknown parameter x");
    }

    #[test]
    fn splits_outside_quotes_only() {
        let parts: Vec<&[u8]> = split_outside_quotes(b"a, b=\"x,\\\"y\", c", b',').collect();
        assert_eq!(parts, [&b"a"[..], b" b=\"x,\\\"y\"", b" c"]);
        assert_eq!(unquote(b"\"1\\0\"").unwrap(), b"10");
    }
}
