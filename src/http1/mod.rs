//! HTTP/1.1 message syntax (RFC 9112), sans-IO.
//!
//! This module owns everything pushwire says and hears in HTTP/1.x: the request head (parsed by
//! `httparse` over the connection's read buffer), the decision how a request body is framed
//! (RFC 9112 §6.3), the chunked transfer coding in both directions, and response heads.
//!
//! It never touches a socket or the clock: callers hand it byte slices (and the `Date` value to
//! stamp), and it hands back parsed values, consumed byte counts and encoded bytes.
//!
//! ```text
//!   bytes ──► HeadReader::decode ──► RequestHead ──► framing::decide ──► BodyFraming
//!                                                                          │
//!               body bytes ──► BodyDecoder::decode (length / chunked) ◄────┘
//!
//!   Status + headers ──► ResponseHead::encode ──► bytes
//!   payload ──► chunked::encode_chunk ──► bytes
//! ```
pub mod body;
pub mod chunked;
pub mod connection;
pub mod date;
pub mod error;
pub mod request;
pub mod response;

pub use body::{BodyDecoder, BodyFraming};
pub use connection::{
    BodyPlan, Connection, Content, Event, Exchange, Expiry, Received, Refusal, Response, Settings,
    encode_head,
};
pub use date::DateCache;
pub use error::RequestError;
pub use request::{HeadReader, Limits, RequestHead};
pub use response::{ResponseBody, ResponseHead, Status};
