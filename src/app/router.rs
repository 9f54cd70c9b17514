//! Which endpoint a request is for, or why it is refused.
use std::fmt;

use super::PublishRefused;
use crate::http1::{Refusal, RequestHead, Status};
use crate::hub;
use crate::ledger::Transport;
use crate::polling::{self, PollQuery, QueryError};

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

/// Why a request is not served, beyond the rules of HTTP itself (those are
/// [`crate::http1::RequestError`]). [`RouteError::status`] is the one place that maps each to the
/// status the client gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RouteError {
    /// No endpoint at this path → 404.
    NotFound { path: String },
    /// The endpoint takes another method → 405 with `Allow`.
    MethodNotAllowed { path: String, allow: &'static str },
    /// `/drop/{x}` for something that is not a transport → 404.
    UnknownTransport,
    /// A channel name outside `[A-Za-z0-9_.-]{1,64}` → 400.
    BadChannelName,
    /// A `since` or `timeout` parameter that is not what the API takes → 400.
    BadQuery(QueryError),
    /// A `Last-Event-ID` (or `last_event_id`) that is not a message id → 400.
    BadLastEventId,
    /// A published body that is not UTF-8 → 400.
    BodyNotUtf8,
    /// A published body that is empty: an EventSource would never dispatch it → 400.
    EmptyMessage,
    /// An upgrade request with a body → 400, then close.
    UpgradeWithBody,
    /// `/trace` or `/drop` from a peer that is not on loopback, without `--admin` → 403.
    AdminOnly,
    /// A state-changing request (`/pub`, `/drop`, a WebSocket upgrade) whose `Origin` is neither
    /// this server's own nor listed in `--allowed-origin`: a page on another site (CSRF) → 403.
    ForeignOrigin,
    /// The request did not arrive within its timeout → 408.
    RequestTimeout,
    /// The hub cannot take this publish now (its channel or memory limits), or the loop of
    /// some of the channel's subscribers is behind → 503 with `Retry-After`; nothing was
    /// published.
    PublishRefused(PublishRefused),
}

impl RouteError {
    /// The status this refusal is answered with.
    pub(crate) fn status(&self) -> Status {
        Status(match self {
            RouteError::NotFound { .. } | RouteError::UnknownTransport => 404,
            RouteError::MethodNotAllowed { .. } => 405,
            RouteError::BadChannelName
            | RouteError::BadQuery(_)
            | RouteError::BadLastEventId
            | RouteError::BodyNotUtf8
            | RouteError::EmptyMessage
            | RouteError::UpgradeWithBody => 400,
            RouteError::AdminOnly | RouteError::ForeignOrigin => 403,
            RouteError::RequestTimeout => 408,
            RouteError::PublishRefused(_) => 503,
        })
    }

    /// Header fields the status calls for.
    fn headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            RouteError::MethodNotAllowed { allow: "POST", .. } => &[("Allow", "POST")],
            RouteError::MethodNotAllowed { .. } => &[("Allow", "GET")],
            // Room comes back as channels publish again and held messages expire.
            RouteError::PublishRefused(_) => &[("Retry-After", "1")],
            _ => &[],
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NotFound { path } => write!(f, "no endpoint at {path}"),
            RouteError::MethodNotAllowed { path, allow } => write!(f, "{path} takes {allow}"),
            RouteError::UnknownTransport => {
                f.write_str("transports are poll, longpoll, sse and ws")
            }
            RouteError::BadChannelName => {
                f.write_str("invalid channel name: 1-64 characters of [A-Za-z0-9_.-]")
            }
            RouteError::BadQuery(e) => write!(f, "{e}"),
            RouteError::BadLastEventId => {
                f.write_str("last event id must be a non-negative integer")
            }
            RouteError::BodyNotUtf8 => f.write_str("message body is not UTF-8"),
            RouteError::EmptyMessage => f.write_str(
                "message body is empty (an EventSource never dispatches an empty message)",
            ),
            RouteError::UpgradeWithBody => f.write_str("an upgrade request has no body"),
            RouteError::AdminOnly => f.write_str(
                "this endpoint answers loopback clients only (start the server with --admin to open it)",
            ),
            RouteError::ForeignOrigin => f.write_str(
                "cross-origin request refused: the Origin is neither this server nor an --allowed-origin",
            ),
            RouteError::RequestTimeout => f.write_str("request not received in time"),
            RouteError::PublishRefused(refused) => write!(f, "{refused}"),
        }
    }
}

impl From<RouteError> for Refusal {
    fn from(error: RouteError) -> Refusal {
        Refusal {
            status: error.status(),
            reason: error.to_string(),
            headers: error.headers(),
        }
    }
}

/// Who may use the endpoints that reach beyond one client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'a> {
    /// `--admin`: `/trace` and `/drop` answer every peer, not only loopback ones.
    pub admin: bool,
    /// `--allowed-origin`: origins other than the server's own that may change state.
    pub allowed_origins: &'a [String],
    /// The client connected from a loopback address.
    pub loopback_peer: bool,
}

/// Refuses what this client may not ask: the admin endpoints from afar (their records carry
/// every channel's payload, `/drop` closes everyone's streams), and a state change a page of
/// another site asked for, a WebSocket upgrade included. A cross-origin `POST` with
/// `Content-Type: text/plain` is a CORS
/// "simple request": the browser sends it without a preflight, so the server must look at
/// `Origin` itself (RFC 6454 §7.3; the Fetch standard's CORS-safelisted requests).
pub(crate) fn check_access(
    route: &Route,
    head: &RequestHead,
    access: Access<'_>,
) -> Result<(), RouteError> {
    let admin_endpoint = matches!(route, Route::Trace | Route::Drop { .. });
    if admin_endpoint && !access.admin && !access.loopback_peer {
        return Err(RouteError::AdminOnly);
    }
    // A WebSocket is not subject to CORS: any page may open one, so its Origin is the only
    // defence (RFC 6455 §10.2), and a WebSocket on a channel publishes what it sends.
    let changes_state = matches!(
        route,
        Route::Publish { .. } | Route::Drop { .. } | Route::WebSocket { .. }
    );
    if changes_state
        && let Some(origin) = head.header("origin")
        && !is_same_origin(origin, head.header("host"))
        && !access
            .allowed_origins
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(origin))
    {
        return Err(RouteError::ForeignOrigin);
    }
    Ok(())
}

/// Whether `Origin` (`scheme://host[:port]`) names the authority the request was sent to (its
/// `Host`), default ports filled in. The server speaks plain HTTP, so only an `http` origin can be
/// its own (behind a TLS proxy, list the public origin with `--allowed-origin`); `null` and
/// anything unreadable are foreign.
fn is_same_origin(origin: &[u8], host: Option<&[u8]>) -> bool {
    let (Ok(origin), Some(Ok(host))) = (std::str::from_utf8(origin), host.map(std::str::from_utf8))
    else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    scheme.eq_ignore_ascii_case("http")
        && authority_with_port(authority, "80")
            .eq_ignore_ascii_case(&authority_with_port(host.trim(), "80"))
}

/// `host:port`, with `default` when the authority names no port (`[v6]` literals kept whole).
fn authority_with_port(authority: &str, default: &str) -> String {
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(host, _)| !host.starts_with('[') || host.ends_with(']'));
    if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default}")
    }
}

pub(crate) fn route(head: &RequestHead) -> Result<Route, RouteError> {
    let path = head.path();
    match path {
        "/" => {
            require_method(head, "GET")?;
            return Ok(Route::Index);
        }
        "/stats" => {
            require_method(head, "GET")?;
            let channel = match head.query_param("channel") {
                Some(c) if hub::is_valid_channel_name(c) => Some(c.into()),
                Some(_) => return Err(RouteError::BadChannelName),
                None => None,
            };
            return Ok(Route::Stats { channel });
        }
        "/trace" => {
            require_method(head, "GET")?;
            return Ok(Route::Trace);
        }
        _ => {}
    }
    if let Some(name) = path.strip_prefix("/drop/") {
        require_method(head, "POST")?;
        return match Transport::from_name(name) {
            Some(
                transport
                @ (Transport::Poll | Transport::LongPoll | Transport::Sse | Transport::Ws),
            ) => Ok(Route::Drop { transport }),
            _ => Err(RouteError::UnknownTransport),
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
        _ => {
            return Err(RouteError::NotFound {
                path: path.to_string(),
            });
        }
    };
    match endpoint {
        "pub" => require_method(head, "POST")?,
        "ws" => {}
        _ => require_method(head, "GET")?,
    }
    if !hub::is_valid_channel_name(channel) {
        return Err(RouteError::BadChannelName);
    }
    let channel: Box<str> = channel.into();
    let query = || PollQuery::parse(head.query()).map_err(RouteError::BadQuery);
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

fn require_method(head: &RequestHead, method: &'static str) -> Result<(), RouteError> {
    if head.method() == method {
        return Ok(());
    }
    Err(RouteError::MethodNotAllowed {
        path: head.path().to_string(),
        allow: method,
    })
}

/// Where an SSE client resumes: the `Last-Event-ID` header a reconnecting EventSource sends, else
/// the `last_event_id` query parameter a fresh EventSource can carry.
fn sse_resume_point(head: &RequestHead) -> Result<Option<u64>, RouteError> {
    let bad = || RouteError::BadLastEventId;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::{HeadReader, Limits};

    fn head(raw: &str) -> RequestHead {
        HeadReader::new()
            .decode(raw.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
    }

    fn access(admin: bool, loopback_peer: bool, allowed: &[String]) -> Access<'_> {
        Access {
            admin,
            allowed_origins: allowed,
            loopback_peer,
        }
    }

    fn check(raw: &str, a: Access<'_>) -> Result<(), RouteError> {
        let h = head(raw);
        check_access(&route(&h).unwrap(), &h, a)
    }

    #[test]
    fn admin_endpoints_answer_loopback_peers_unless_admin() {
        let none: [String; 0] = [];
        let trace = "GET /trace HTTP/1.1\r\nHost: a:1\r\n\r\n";
        let drop = "POST /drop/sse HTTP/1.1\r\nHost: a:1\r\n\r\n";
        for raw in [trace, drop] {
            assert_eq!(check(raw, access(false, true, &none)), Ok(()));
            assert_eq!(
                check(raw, access(false, false, &none)),
                Err(RouteError::AdminOnly)
            );
            assert_eq!(check(raw, access(true, false, &none)), Ok(()));
        }
        let poll = "GET /poll/a HTTP/1.1\r\nHost: a:1\r\n\r\n";
        assert_eq!(check(poll, access(false, false, &none)), Ok(()));
        assert_eq!(RouteError::AdminOnly.status(), Status(403));
    }

    #[test]
    fn state_changes_from_a_foreign_origin_are_refused() {
        let allowed = ["https://app.example".to_string()];
        let a = access(false, true, &allowed);
        let publish = |origin: &str, host: &str| {
            check(
                &format!("POST /pub/c HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\n\r\n"),
                a,
            )
        };
        assert_eq!(publish("http://127.0.0.1:8080", "127.0.0.1:8080"), Ok(()));
        assert_eq!(publish("HTTP://Example.com", "example.com:80"), Ok(()));
        assert_eq!(publish("http://example.com:80", "example.com"), Ok(()));
        assert_eq!(publish("https://app.example", "127.0.0.1:8080"), Ok(()));
        assert_eq!(publish("http://[::1]:8080", "[::1]:8080"), Ok(()));
        for foreign in [
            "https://evil.example",
            "http://127.0.0.1:8081",
            "https://127.0.0.1:8080",
            "null",
            "ws://127.0.0.1:8080",
        ] {
            assert_eq!(
                publish(foreign, "127.0.0.1:8080"),
                Err(RouteError::ForeignOrigin),
                "{foreign}"
            );
        }
        let drop = "POST /drop/sse HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\n\r\n";
        assert_eq!(check(drop, a), Err(RouteError::ForeignOrigin));
        // No Origin: not a browser's cross-site request (curl, the tools, same-origin GETs).
        assert_eq!(check("POST /pub/c HTTP/1.1\r\nHost: h\r\n\r\n", a), Ok(()));
        // Reading is not a state change.
        let poll = "GET /poll/c HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\n\r\n";
        assert_eq!(check(poll, a), Ok(()));
    }
}
