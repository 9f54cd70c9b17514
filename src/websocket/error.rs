//! Protocol errors: one variant per RFC 6455 rule a peer can break, each mapped to the close code
//! the server answers with ([`ProtocolError::close_code`] is the only place that mapping lives).

use std::fmt;

use super::close::CloseCode;

/// A rule of RFC 6455 broken by the peer. The session answers with a Close frame carrying
/// [`ProtocolError::close_code`] and then stops reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// The 64-bit extended payload length has its most significant bit set
    /// (RFC 6455 §5.2 "the most significant bit MUST be 0") → 1002.
    LengthOverflow,
    /// A client frame without a masking key (RFC 6455 §5.1 "a server MUST close the connection
    /// upon receiving a frame that is not masked") → 1002.
    UnmaskedFrame,
    /// An RSV bit set that no negotiated extension defines (RFC 6455 §5.2), or RSV1 on a control
    /// frame or a continuation frame with permessage-deflate (RFC 7692 §6.1) → 1002.
    ReservedBitsSet {
        /// The three RSV bits, RSV1 = `0b100`.
        rsv: u8,
    },
    /// Opcodes 0x3-0x7 and 0xB-0xF are reserved (RFC 6455 §5.2) → 1002.
    ReservedOpcode {
        /// The 4-bit opcode received.
        opcode: u8,
    },
    /// Control frames carry at most 125 payload bytes (RFC 6455 §5.5) → 1002.
    ControlFrameTooLong {
        /// The announced payload length.
        len: u64,
    },
    /// Control frames MUST NOT be fragmented (RFC 6455 §5.5) → 1002.
    FragmentedControlFrame,
    /// A continuation frame arrived while no fragmented message was in progress
    /// (RFC 6455 §5.4) → 1002.
    UnexpectedContinuation,
    /// A new Text or Binary frame arrived before the fragmented message in progress was
    /// finished (RFC 6455 §5.4: fragments of one message are not interleaved) → 1002.
    ExpectedContinuation,
    /// The message (summed over its fragments) would exceed the configured maximum
    /// (RFC 6455 §7.4.1 code 1009 "message that is too big for it to process") → 1009.
    MessageTooBig {
        /// The size the message would reach, as announced by the frame heads so far.
        size: u64,
        /// The configured maximum message size in bytes.
        max: usize,
    },
    /// A Text message is not valid UTF-8 (RFC 6455 §8.1 "_Fail the WebSocket Connection_")
    /// → 1007.
    InvalidUtf8,
    /// A Close payload of exactly one byte: a status code is two bytes (RFC 6455 §5.5.1) → 1002.
    CloseFrameTooShort,
    /// A Close frame carries a status code that must not be sent on the wire
    /// (RFC 6455 §7.4.1, §7.4.2) → 1002.
    InvalidCloseCode {
        /// The status code received.
        code: u16,
    },
    /// A Close reason that is not valid UTF-8 (RFC 6455 §5.5.1) → 1007.
    InvalidCloseReason,
    /// A compressed message inflates past the configured maximum (RFC 7692 §8: a decompression
    /// bomb is stopped while inflating) → 1009.
    InflatedTooBig {
        /// The configured maximum message size in bytes.
        max: usize,
    },
    /// The payload of a compressed message is not valid DEFLATE data (RFC 7692 §7.2.2) → 1007.
    InvalidCompressedData,
}

impl ProtocolError {
    /// Whether the frame that broke the rule was the peer's Close: the last frame it sends
    /// (RFC 6455 §5.5.1), so there is nothing left to read before closing TCP.
    pub fn is_in_peers_close(&self) -> bool {
        matches!(
            self,
            ProtocolError::CloseFrameTooShort
                | ProtocolError::InvalidCloseCode { .. }
                | ProtocolError::InvalidCloseReason
        )
    }

    /// The close status code the server sends when failing the connection for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::MessageTooBig { .. } | ProtocolError::InflatedTooBig { .. } => {
                CloseCode::TooBig
            }
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::InvalidCompressedData => CloseCode::Invalid,
            ProtocolError::LengthOverflow
            | ProtocolError::UnmaskedFrame
            | ProtocolError::ReservedBitsSet { .. }
            | ProtocolError::ReservedOpcode { .. }
            | ProtocolError::ControlFrameTooLong { .. }
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::CloseFrameTooShort
            | ProtocolError::InvalidCloseCode { .. } => CloseCode::Protocol,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::LengthOverflow => f.write_str("payload length has its top bit set"),
            ProtocolError::UnmaskedFrame => f.write_str("client frame not masked"),
            ProtocolError::ReservedBitsSet { rsv } => write!(f, "reserved bits set ({rsv:#x})"),
            ProtocolError::ReservedOpcode { opcode } => write!(f, "reserved opcode {opcode:#x}"),
            ProtocolError::ControlFrameTooLong { len } => {
                write!(f, "control frame too long ({len} > 125)")
            }
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => f.write_str("continuation without a message"),
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message inside a fragmented one")
            }
            ProtocolError::MessageTooBig { size, max } => {
                write!(f, "message too big ({size} > {max})")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid utf-8 in text message"),
            ProtocolError::CloseFrameTooShort => f.write_str("close payload of one byte"),
            ProtocolError::InvalidCloseCode { code } => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidCloseReason => f.write_str("invalid utf-8 in close reason"),
            ProtocolError::InflatedTooBig { max } => {
                write!(f, "message inflates past {max} bytes")
            }
            ProtocolError::InvalidCompressedData => f.write_str("invalid compressed data"),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_each_rule_to_its_close_code() {
        assert_eq!(ProtocolError::UnmaskedFrame.close_code().as_u16(), 1002);
        assert_eq!(ProtocolError::InvalidUtf8.close_code().as_u16(), 1007);
        assert_eq!(
            ProtocolError::InvalidCloseReason.close_code().as_u16(),
            1007
        );
        let big = ProtocolError::MessageTooBig { size: 10, max: 5 };
        assert_eq!(big.close_code().as_u16(), 1009);
        assert_eq!(big.to_string(), "message too big (10 > 5)");
    }

    #[test]
    fn displays_short_lowercase_reasons_that_fit_a_close_frame() {
        let all = [
            ProtocolError::LengthOverflow,
            ProtocolError::UnmaskedFrame,
            ProtocolError::ReservedBitsSet { rsv: 7 },
            ProtocolError::ReservedOpcode { opcode: 0xf },
            ProtocolError::ControlFrameTooLong { len: u64::MAX },
            ProtocolError::FragmentedControlFrame,
            ProtocolError::UnexpectedContinuation,
            ProtocolError::ExpectedContinuation,
            ProtocolError::MessageTooBig {
                size: u64::MAX,
                max: usize::MAX,
            },
            ProtocolError::InvalidUtf8,
            ProtocolError::CloseFrameTooShort,
            ProtocolError::InvalidCloseCode { code: 1005 },
            ProtocolError::InvalidCloseReason,
            ProtocolError::InflatedTooBig { max: usize::MAX },
            ProtocolError::InvalidCompressedData,
        ];
        for e in all {
            let s = e.to_string();
            assert!(s.len() <= 123, "{s}");
            assert_eq!(s, s.to_lowercase());
        }
    }
}
