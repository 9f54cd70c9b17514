//! Which endpoint a request is for, or why it is refused.
use crate::http1::RequestHead;
use crate::hub;
use crate::polling::PollQuery;

/// An endpoint with its parsed parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// `POST /pub/{channel}`
    Publish { channel: Box<str> },
    /// `GET /poll/{channel}?since=N`
    Poll { channel: Box<str>, query: PollQuery },
    /// `GET /longpoll/{channel}?since=N&timeout=S`
    LongPoll { channel: Box<str>, query: PollQuery },
}

/// A request no endpoint takes: the status to answer and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub reason: String,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            allow: None,
        }
    }
}

pub(crate) fn route(head: &RequestHead) -> Result<Route, Refusal> {
    let path = head.path();
    let (endpoint, channel) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((e @ ("pub" | "poll" | "longpoll"), channel)) => (e, channel),
        _ => return Err(Refusal::new(404, format!("no endpoint at {path}"))),
    };
    let allowed = if endpoint == "pub" { "POST" } else { "GET" };
    if head.method != allowed {
        return Err(Refusal {
            status: 405,
            reason: format!("{path} takes {allowed}"),
            allow: Some(allowed),
        });
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
        _ => Route::LongPoll {
            channel,
            query: query()?,
        },
    })
}
