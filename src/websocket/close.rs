//! Close frame payloads (RFC 6455 §5.5.1) and status codes (§7.4).
//!
//! A payload is empty, or a 2-byte big-endian status code followed by a UTF-8 reason.

use std::fmt;

use super::error::ProtocolError;
use super::frame::MAX_CONTROL_PAYLOAD;

/// Status codes the server uses (RFC 6455 §7.4.1); any other value stays printable as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    Normal,
    /// 1001: the server is going down.
    GoingAway,
    /// 1002: protocol error.
    Protocol,
    /// 1003: a type of data the endpoint cannot accept (e.g. binary on a text channel).
    Unsupported,
    /// 1007: data inconsistent with the message type (invalid UTF-8 in text).
    Invalid,
    /// 1008: message violates policy.
    Policy,
    /// 1009: message too big to process.
    TooBig,
    /// 1011: unexpected condition on the server.
    Internal,
    /// Any other code.
    Other(u16),
}

impl CloseCode {
    /// The code for a wire value.
    pub fn from_u16(code: u16) -> CloseCode {
        match code {
            1000 => CloseCode::Normal,
            1001 => CloseCode::GoingAway,
            1002 => CloseCode::Protocol,
            1003 => CloseCode::Unsupported,
            1007 => CloseCode::Invalid,
            1008 => CloseCode::Policy,
            1009 => CloseCode::TooBig,
            1011 => CloseCode::Internal,
            other => CloseCode::Other(other),
        }
    }

    /// The wire value.
    pub fn as_u16(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::Protocol => 1002,
            CloseCode::Unsupported => 1003,
            CloseCode::Invalid => 1007,
            CloseCode::Policy => 1008,
            CloseCode::TooBig => 1009,
            CloseCode::Internal => 1011,
            CloseCode::Other(code) => code,
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.as_u16()
    }
}

/// `1000 normal`, `1009 too big`, `4000`.
impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            CloseCode::Normal => "normal",
            CloseCode::GoingAway => "going away",
            CloseCode::Protocol => "protocol error",
            CloseCode::Unsupported => "unsupported data",
            CloseCode::Invalid => "invalid payload",
            CloseCode::Policy => "policy violation",
            CloseCode::TooBig => "too big",
            CloseCode::Internal => "internal error",
            CloseCode::Other(code) => return write!(f, "{code}"),
        };
        write!(f, "{} {name}", self.as_u16())
    }
}

/// Whether a status code may appear in a Close frame on the wire (RFC 6455 §7.4.1-§7.4.2, IANA
/// registry): 1000-1003 and 1007-1014 are defined; 3000-4999 belong to libraries and
/// applications. Below 1000, 1004 (reserved), 1005/1006/1015 (never on the wire), and 1016-2999
/// (reserved for future RFCs) and 5000 and up are invalid.
pub fn is_valid_received_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses a received Close payload: `None` when it is empty, else the status code and reason.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() {
            Ok(None)
        } else {
            Err(ProtocolError::CloseFrameTooShort)
        };
    };
    let code = u16::from_be_bytes(*code);
    if !is_valid_received_code(code) {
        return Err(ProtocolError::InvalidCloseCode { code });
    }
    let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
    Ok(Some((code, reason)))
}

/// Longest reason that fits a control frame after the 2-byte code.
pub const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Appends a Close payload to `out`. A reason longer than [`MAX_CLOSE_REASON`] bytes is cut at
/// the last character boundary that fits, so the frame stays a valid control frame.
pub fn encode_close_payload(code: u16, reason: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(truncate_to_boundary(reason, MAX_CLOSE_REASON).as_bytes());
}

fn truncate_to_boundary(s: &str, max: usize) -> &str {
    let end = (0..=max.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_valid_and_invalid_codes() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ] {
            assert!(is_valid_received_code(code), "{code}");
        }
        for code in [3000, 3999, 4000, 4999] {
            assert!(is_valid_received_code(code), "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_received_code(code), "{code}");
        }
    }

    #[test]
    fn decodes_close_payloads() {
        assert_eq!(parse_close_payload(b""), Ok(None));
        assert_eq!(parse_close_payload(&[0x03, 0xe8]), Ok(Some((1000, ""))));
        assert_eq!(parse_close_payload(b"\x03\xe9bye"), Ok(Some((1001, "bye"))));
        assert_eq!(
            parse_close_payload(b"\x03"),
            Err(ProtocolError::CloseFrameTooShort)
        );
        let e = parse_close_payload(&[0x03, 0xed]).unwrap_err();
        assert_eq!(e, ProtocolError::InvalidCloseCode { code: 1005 });
        assert_eq!(e.close_code().as_u16(), 1002);
        let e = parse_close_payload(
            b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
        )
        .unwrap_err();
        assert_eq!(e, ProtocolError::InvalidCloseReason);
        assert_eq!(e.close_code().as_u16(), 1007);
    }

    #[test]
    fn encodes_close_payloads() {
        let mut out = vec![0xa5];
        encode_close_payload(1001, "shutdown", &mut out);
        assert_eq!(out, b"\xa5\x03\xe9shutdown");
        // A long multi-byte reason is cut on a character boundary within 123 bytes.
        let reason = "é".repeat(100);
        let mut out = Vec::new();
        encode_close_payload(1000, &reason, &mut out);
        assert_eq!(out.len(), 2 + 122);
        assert_eq!(parse_close_payload(&out), Ok(Some((1000, &reason[..122]))));
    }

    #[test]
    fn roundtrips_codes_and_payloads() {
        for code in 0..=u16::MAX {
            assert_eq!(CloseCode::from_u16(code).as_u16(), code);
        }
        assert_eq!(CloseCode::TooBig.to_string(), "1009 too big");
        assert_eq!(CloseCode::Other(4000).to_string(), "4000");
        let mut out = Vec::new();
        encode_close_payload(CloseCode::Policy.into(), "no", &mut out);
        assert_eq!(parse_close_payload(&out), Ok(Some((1008, "no"))));
    }
}
