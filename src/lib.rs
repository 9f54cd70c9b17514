//! pushwire: one server, four real-time web transports — interval polling, long polling,
//! Server-Sent Events and WebSocket — over one pub/sub hub.
//!
//! ```text
//!            ┌──────────────────────── server (the only mio code) ───────────────────────┐
//!  socket ◄──┤ Connection: input buf ─► http1 core ─► router ─► polling / sse / websocket │
//!            │             output queue ◄──────────── encoded bytes (shared Arc<[u8]>)     │
//!            └────────────────────────────────┬──────────────────────────────────────────┘
//!                                             │ publish / since / subscribe
//!                                             ▼
//!                                    hub (channels, ids, history; no I/O)
//! ```
//! Reading order: [`hub`] (what a message and a channel are), [`http1`] (the HTTP/1.1 core),
//! [`polling`] (the poll and long-poll bodies), [`outbuf`] (how bytes are queued and shared),
//! then [`server`], which drives them all from one `mio` event loop.
//!
//! Dependencies point downward: protocol modules use `std`, `httparse` and the hub's message type;
//! the hub uses nothing else in the crate; no protocol module depends on `server`, and the server
//! does not use [`client`] (the measuring tools: clients for the four transports, `compare` and
//! `load`; `compare` may start a [`server::Server`] in-process).
#![warn(missing_docs, unreachable_pub)]
// Unit tests start their virtual clocks at a real instant (clippy.toml fences the library itself).
#![cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
pub(crate) mod app;
pub mod client;
pub mod config;
/// Public only so the fan-out bench can encode as the server does; not part of the API.
#[doc(hidden)]
pub mod delivery;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http1;
pub mod hub;
pub mod ledger;
pub mod outbuf;
pub mod polling;
pub mod server;
pub mod sse;
pub mod trace;
pub mod websocket;

pub use config::Config;
