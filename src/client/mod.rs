//! The other side of the wire: clients for the four transports, a `mio` driver for thousands of
//! them, and the two tools built on it — `pushwire compare` (the comparison table, measured) and
//! `pushwire load` (a load generator that drives any push server through URL templates).
//!
//! ```text
//!   compare / load ── controller (publish schedule, drops, deadlines)
//!         │
//!         ▼
//!   driver (the only mio code here) ── socket bytes ──► Subscriber / Publisher (sans-IO)
//!                                                         │ response heads: httparse
//!                                                         │ chunked bodies: http1::chunked
//!                                                         │ event streams:  sse::Parser
//!                                                         │ frames:         websocket::FrameHead
//!                                                         ▼
//!                                         deliveries (server id, payload) ─► payload::decode
//! ```
//! The server does not depend on this module; this module uses the protocol cores the server uses.
// The measuring clients are an I/O driver of their own (sockets and the clock), like src/server/.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
pub mod compare;
pub mod driver;
pub mod http;
pub mod kind;
pub mod load;
pub mod payload;
pub mod procstat;
pub mod publisher;
pub mod report;
pub mod subscriber;
pub mod svg;
pub mod url;
pub mod ws;

pub use subscriber::{Kind, Subscriber};
pub use url::Url;
