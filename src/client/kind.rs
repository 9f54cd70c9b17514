//! The four transports (and WebSocket with compression) as the measuring clients name them.
use serde::Serialize;

/// The transport a subscriber reads a channel with; serialized in lowercase in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Interval polling: `GET` every `poll_interval`.
    Poll,
    /// Long polling: a new `GET` as soon as the last one is answered.
    LongPoll,
    /// Server-Sent Events: one streaming `GET`.
    Sse,
    /// WebSocket: one upgraded connection.
    Ws,
    /// A WebSocket that offers permessage-deflate (RFC 7692) and inflates what it receives.
    #[serde(rename = "ws_deflate")]
    WsDeflate,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [Kind::Poll, Kind::LongPoll, Kind::Sse, Kind::Ws];
    /// The columns of `pushwire compare`: the four transports and WebSocket with compression.
    pub const COMPARED: [Kind; 5] = [
        Kind::Poll,
        Kind::LongPoll,
        Kind::Sse,
        Kind::Ws,
        Kind::WsDeflate,
    ];

    /// Either WebSocket kind.
    pub fn is_ws(self) -> bool {
        matches!(self, Kind::Ws | Kind::WsDeflate)
    }

    /// The server's ledger transport this kind is counted under.
    pub fn ledger_name(self) -> &'static str {
        match self {
            Kind::WsDeflate => "ws",
            other => other.name(),
        }
    }

    /// The lowercase name used on the command line and in reports (`longpoll`, `ws`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Poll => "poll",
            Kind::LongPoll => "longpoll",
            Kind::Sse => "sse",
            Kind::Ws => "ws",
            Kind::WsDeflate => "ws_deflate",
        }
    }

    /// The kind called `name` (as [`Kind::name`] spells it), if any.
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// How a subscriber of this kind resumes after its connection is lost.
    pub fn resume_rule(self) -> &'static str {
        match self {
            Kind::Poll => "next poll carries since= cursor",
            Kind::LongPoll => "re-arms at once with since= cursor",
            Kind::Sse => "reconnects after retry: with Last-Event-ID",
            Kind::Ws | Kind::WsDeflate => "application reconnects with ?since=",
        }
    }
}
