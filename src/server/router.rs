//! Which endpoint a request is for, or why it is refused.
use crate::http1::RequestHead;
use crate::hub;
use crate::ledger::Transport;
use crate::polling::{self, PollQuery};

/// An endpoint with its parsed parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// `POST /pub/{channel}`
    Publish { channel: Box<str> },
    /// `GET /poll/{channel}?since=N`
    Poll { channel: Box<str>, query: PollQuery },
    /// `GET /longpoll/{channel}?since=N&timeout=S`
    LongPoll { channel: Box<str>, query: PollQuery },
    /// `GET /sse/{channel}` with `Last-Event-ID: N` or `?last_event_id=N`
    Sse {
        channel: Box<str>,
        resume_after: Option<u64>,
    },
    /// `GET /`: the demo page.
    Index,
    /// `GET /stats[?channel=c]`: the wire ledger as JSON.
    Stats { channel: Option<Box<str>> },
    /// `POST /drop/{transport}`: close every connection of a transport (demo and tests).
    Drop { transport: Transport },
    /// `GET /trace`: the wire trace as an event stream.
    Trace,
    /// `GET /ws/{channel}?since=N` (a channel) or `GET /echo` (`channel: None`), upgrading.
    WebSocket {
        channel: Option<Box<str>>,
        since: Option<u64>,
    },
}

impl Route {
    /// The channel the request serves, if any.
    pub(crate) fn channel(&self) -> Option<&str> {
        match self {
            Route::Publish { channel }
            | Route::Poll { channel, .. }
            | Route::LongPoll { channel, .. }
            | Route::Sse { channel, .. } => Some(channel),
            Route::WebSocket { channel, .. } => channel.as_deref(),
            Route::Index | Route::Stats { .. } | Route::Drop { .. } | Route::Trace => None,
        }
    }

    /// The transport whose ledger the request's bytes go to.
    pub(crate) fn transport(&self) -> Transport {
        match self {
            Route::Publish { .. } => Transport::Publish,
            Route::Poll { .. } => Transport::Poll,
            Route::LongPoll { .. } => Transport::LongPoll,
            Route::Sse { .. } => Transport::Sse,
            Route::WebSocket {
                channel: Some(_), ..
            } => Transport::Ws,
            // The echo endpoint is a conformance target, not a channel transport.
            Route::WebSocket { channel: None, .. } => Transport::Other,
            // The observers do not observe themselves.
            Route::Index | Route::Stats { .. } | Route::Drop { .. } | Route::Trace => {
                Transport::Untracked
            }
        }
    }
}

/// A request no endpoint takes: the status to answer, why, and any header the status calls for
/// (`Allow` on 405, `Upgrade` on 426…).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub reason: String,
    pub headers: &'static [(&'static str, &'static str)],
}

impl Refusal {
    pub(crate) fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            headers: &[],
        }
    }
}

pub(crate) fn route(head: &RequestHead) -> Result<Route, Refusal> {
    let path = head.path();
    match path {
        "/" => {
            require_method(head, "GET", &[("Allow", "GET")])?;
            return Ok(Route::Index);
        }
        "/stats" => {
            require_method(head, "GET", &[("Allow", "GET")])?;
            let channel = match head.query_param("channel") {
                Some(c) if hub::is_valid_channel_name(c) => Some(c.into()),
                Some(_) => return Err(Refusal::new(400, "invalid channel name")),
                None => None,
            };
            return Ok(Route::Stats { channel });
        }
        "/trace" => {
            require_method(head, "GET", &[("Allow", "GET")])?;
            return Ok(Route::Trace);
        }
        _ => {}
    }
    if let Some(name) = path.strip_prefix("/drop/") {
        require_method(head, "POST", &[("Allow", "POST")])?;
        return match Transport::from_name(name) {
            Some(
                transport
                @ (Transport::Poll | Transport::LongPoll | Transport::Sse | Transport::Ws),
            ) => Ok(Route::Drop { transport }),
            _ => Err(Refusal::new(
                404,
                "transports are poll, longpoll, sse and ws",
            )),
        };
    }
    // Upgrade endpoints leave the method to the handshake check (RFC 6455 §4.2.1: non-GET → 400).
    if path == "/echo" {
        return Ok(Route::WebSocket {
            channel: None,
            since: None,
        });
    }
    let (endpoint, channel) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((e @ ("pub" | "poll" | "longpoll" | "sse" | "ws"), channel)) => (e, channel),
        _ => return Err(Refusal::new(404, format!("no endpoint at {path}"))),
    };
    match endpoint {
        "pub" => require_method(head, "POST", &[("Allow", "POST")])?,
        "ws" => {}
        _ => require_method(head, "GET", &[("Allow", "GET")])?,
    }
    if !hub::is_valid_channel_name(channel) {
        return Err(Refusal::new(
            400,
            "channel names are 1-64 characters of [A-Za-z0-9_.-]",
        ));
    }
    let channel: Box<str> = channel.into();
    let query = || PollQuery::parse(head.query()).map_err(|e| Refusal::new(400, e.to_string()));
    Ok(match endpoint {
        "pub" => Route::Publish { channel },
        "poll" => Route::Poll {
            channel,
            query: query()?,
        },
        "longpoll" => Route::LongPoll {
            channel,
            query: query()?,
        },
        "sse" => Route::Sse {
            channel,
            resume_after: sse_resume_point(head)?,
        },
        _ => Route::WebSocket {
            channel: Some(channel),
            since: query()?.since,
        },
    })
}

fn require_method(
    head: &RequestHead,
    method: &str,
    allow: &'static [(&'static str, &'static str)],
) -> Result<(), Refusal> {
    if head.method == method {
        return Ok(());
    }
    Err(Refusal {
        status: 405,
        reason: format!("{} takes {method}", head.path()),
        headers: allow,
    })
}

/// Where an SSE client resumes: the `Last-Event-ID` header a reconnecting EventSource sends, else
/// the `last_event_id` query parameter a fresh EventSource can carry.
fn sse_resume_point(head: &RequestHead) -> Result<Option<u64>, Refusal> {
    let bad = || Refusal::new(400, "last event id must be a non-negative integer");
    if let Some(value) = head.header("last-event-id") {
        let text = std::str::from_utf8(value).map_err(|_| bad())?.trim();
        // An empty Last-Event-ID is what a client sends before it has seen any id.
        if !text.is_empty() {
            return polling::parse_id(text).map(Some).ok_or_else(bad);
        }
    }
    match head.query_param("last_event_id") {
        Some(v) => polling::parse_id(v).map(Some).ok_or_else(bad),
        None => Ok(None),
    }
}
