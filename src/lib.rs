//! pushwire: one server, four real-time web transports — interval polling, long polling,
//! Server-Sent Events and WebSocket — over one pub/sub hub.
//!
//! ```text
//!   ┌─ server (the driver: the only mio, socket and clock code), one event loop per core ──────┐
//!   │ listener, connection table, readiness, timer queue, read buffer; writes each OutQueue     │
//!   └──────────┬─────────────────────────────── bytes in, now ──────────────────▲──────────────┘
//!              ▼                                                                 │ bytes out
//!   ┌─ app (no I/O, no clock) ─────────────────────────────────────────────────────────────────┐
//!   │ router → Session: http1::Connection │ sse::Stream │ polling::LongPoll │ websocket::Endpoint│
//!   │ hub (shared, one lock per publish) · delivery (one encoding per transport, shared)        │
//!   │ · ledger (one per loop, summed for /stats)                                                │
//!   └──────────────────────────────────────────────────────────────────────────────────────────┘
//! ```
//! Every session core takes input bytes and `now`, returns what happened, queues its output into
//! an [`outbuf::OutQueue`] with its [`ledger`] layout, and answers `poll_timeout()` /
//! `handle_timeout(now)`; the driver derives mio interest from what the session wants. So a
//! session does not care which connection, thread or node it runs on.
//!
//! Reading order: [`hub`] (what a message and a channel are), [`http1`] (the HTTP/1.1 codec and
//! connection core), [`polling`], [`sse`], [`websocket`] (one module per transport, each with
//! its codec and its session core), [`outbuf`] (how bytes are queued and shared), then
//! [`server`], which drives them all from `mio` event loops (one per core, `--threads`).
//!
//! Dependencies point downward and have no cycle: [`ledger`] and [`hub`] use nothing else in the
//! crate; [`outbuf`] uses only the ledger; the protocol modules use the ledger, `outbuf`, and
//! (`sse`) the HTTP/1.1 response and chunk codecs, (`polling`) the hub; [`trace`] reads the
//! protocol codecs; `delivery` and the application sit above them all; only [`server`] knows
//! `mio`, sockets and the clock (enforced by `clippy.toml`), and it does not use [`client`]
//! (the measuring tools: clients for the four transports, `compare` and `load`, with their own
//! mio driver; `compare` may start a [`server::Server`] in-process). The fuzz entry points
//! (`fuzzing`) exist only with the `fuzzing` feature, which `fuzz/` and the tests turn on.
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
