//! WebSocket (RFC 6455), server side, sans-IO.
//!
//! This module owns the WebSocket protocol: checking the upgrade request and computing
//! `Sec-WebSocket-Accept` ([`handshake`]), framing ([`frame`], [`mask`]), message assembly with
//! incremental UTF-8 validation ([`utf8`]), the closing handshake ([`close`]) and the per-connection
//! state machine ([`session`]) that turns client bytes into [`Event`]s and owed control frames.
//!
//! It never touches a socket or the clock: [`Endpoint`] wraps the [`Session`] with the
//! connection's clocks (ping interval, pong timeout, close timeout) from the `now` it is given,
//! and queues what the peer is owed with its ledger layout; the driver only moves bytes and time.
//! HTTP parsing and error responses belong to the HTTP layer. One extension is negotiated,
//! permessage-deflate (RFC 7692): [`extension`] reads the offers and writes the answer,
//! [`deflate`] compresses and inflates messages, the session handles RSV1 and inflates as frames
//! arrive; no subprotocol is negotiated.
//!
//! # Session lifecycle
//!
//! ```text
//!                  Session::new
//!                       |
//!                       v
//!   +--------------- Open ----------------+
//!   |                                     |
//!   | close(code) / protocol error        | peer Close received
//!   | (our Close queued)                  | (reply echoing its code queued
//!   v                                     |  in the same receive call)
//! ClosingByUs                             |
//!   |  data read and dropped,             |
//!   |  nothing more sent                  |
//!   | peer Close received                 |
//!   v                                     v
//! Closed  <-------------------------------+
//!     driver flushes poll_transmit, then closes TCP
//! ```
//!
//! `ClosingByPeer` exists in [`State`] for completeness but is never entered: a peer's Close is
//! answered at once. After a protocol error the session stays in `ClosingByUs` and drops all
//! further input; the driver closes after flushing without waiting for the peer.

pub mod close;
pub mod deflate;
pub mod endpoint;
pub mod error;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod session;
pub mod utf8;

pub use close::{CloseCode, encode_close_payload, is_valid_received_code, parse_close_payload};
pub use endpoint::{Endpoint, Message as WsMessage, Settings as WsSettings};
pub use error::ProtocolError;
pub use extension::Agreement as DeflateAgreement;
pub use frame::{
    FrameHead, Opcode, dissect_frame, encode_compressed_frame, encode_frame, encode_masked_frame,
    frame_len,
};
pub use handshake::{
    GUID, HandshakeError, accept_key, encode_switching_protocols, encode_switching_protocols_with,
    validate_upgrade,
};
pub use mask::apply_mask;
pub use session::{Event, InputTally, Session, State};
pub use utf8::{InvalidUtf8, Utf8Validator};
