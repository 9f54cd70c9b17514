//! Which protocol core speaks on a connection, and the questions the driver asks every core the
//! same way: when its next deadline is, whether it drains input, whether it is over. The cores
//! themselves live in their protocol modules ([`http1::Connection`], [`sse::Stream`],
//! [`websocket::Endpoint`], [`LongPoll`]); none of them knows a socket.
use std::time::Instant;

use super::router::Route;
use crate::http1;
use crate::ledger::Transport;
use crate::polling::LongPoll;
use crate::sse;
use crate::websocket;

/// What an event stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Feed {
    /// The messages of a channel.
    Channel(Box<str>),
    /// The server's trace records (`GET /trace`).
    Trace,
}

/// An HTTP/1.1 connection between requests or answering one.
#[derive(Debug)]
pub(crate) struct Http {
    pub core: http1::Connection,
    /// The route of a request whose body is being read.
    pub route: Option<Route>,
    /// A long-poll waiting for a message; the core owes its answer.
    pub parked: Option<LongPoll>,
    /// When this connection last answered a long-poll with messages: the next answer waits for
    /// the end of the window that starts here (see [`crate::polling::longpoll`]).
    pub answered_at: Option<Instant>,
}

/// The protocol core of one connection.
#[derive(Debug)]
pub(crate) enum Session {
    Http(Http),
    Sse(sse::Stream, Feed),
    /// A WebSocket on a channel, or on `/echo` (`None`).
    WebSocket(websocket::Endpoint, Option<Box<str>>),
}

/// What the driver does with a connection after asking its session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct End {
    /// Shut the write side now (the lingering close begins).
    pub shut_write: bool,
    /// Close the connection.
    pub close: bool,
}

impl Session {
    pub(crate) fn http(core: http1::Connection) -> Session {
        Session::Http(Http {
            core,
            route: None,
            parked: None,
            answered_at: None,
        })
    }

    /// True while the connection only drains what the peer sends (a lingering close).
    pub(crate) fn is_closing(&self) -> bool {
        matches!(self, Session::Http(h) if h.core.is_closing())
    }

    /// The client took some of its output: a reader that keeps up is active, whatever it is
    /// waiting for (the HTTP/1.1 core restarts its idle clock).
    pub(crate) fn on_output_progress(&mut self, now: Instant) {
        if let Session::Http(h) = self {
            h.core.on_output_progress(now);
        }
    }

    /// How a trace dissector joining this connection now must read it: `Some((sse, ws))` with
    /// `sse` set on an event stream (`Some(chunked)`) and `ws` on a WebSocket; `None` when the
    /// connection is in the middle of a unit (a body, a closing) or is itself the trace feed.
    pub(crate) fn dissector_join(&self) -> Option<(Option<bool>, bool)> {
        match self {
            Session::Http(h) if h.route.is_some() || h.core.is_closing() => None,
            Session::Http(_) => Some((None, false)),
            Session::Sse(_, Feed::Trace) => None,
            Session::Sse(stream, _) => Some((Some(stream.is_chunked()), false)),
            Session::WebSocket(..) => Some((None, true)),
        }
    }

    /// The hub channel this session is subscribed to, if any.
    pub(crate) fn subscription(&self) -> Option<(&str, Transport)> {
        match self {
            Session::Http(Http {
                parked: Some(poll), ..
            }) => Some((poll.channel(), Transport::LongPoll)),
            Session::Sse(_, Feed::Channel(channel)) => Some((channel, Transport::Sse)),
            Session::WebSocket(_, channel) => channel.as_deref().map(|c| (c, Transport::Ws)),
            _ => None,
        }
    }

    /// The next moment the session has something to do on its own.
    pub(crate) fn poll_timeout(&self, output_empty: bool) -> Option<Instant> {
        match self {
            Session::Http(Http {
                parked: Some(poll), ..
            }) => Some(poll.poll_timeout()),
            Session::Http(h) => h.core.poll_timeout(output_empty),
            Session::Sse(stream, _) => Some(stream.poll_timeout()),
            Session::WebSocket(ws, _) => Some(ws.poll_timeout()),
        }
    }

    /// Whether the connection is over, or its write side should be shut now.
    pub(crate) fn poll_end(&mut self, peer_closed: bool, output_empty: bool, now: Instant) -> End {
        match self {
            Session::Http(h) => {
                if peer_closed && h.core.on_peer_closed(now) {
                    // A parked client or an abandoned body: nobody will read the answer.
                    return End {
                        shut_write: false,
                        close: true,
                    };
                }
                let shut_write = h.core.poll_write_shutdown(output_empty, now);
                End {
                    shut_write,
                    close: h.core.is_done(peer_closed),
                }
            }
            // A stream subscriber that goes away is forgotten at once.
            Session::Sse(..) => End {
                shut_write: false,
                close: peer_closed,
            },
            Session::WebSocket(ws, _) => End {
                shut_write: false,
                close: peer_closed || ws.is_finished(output_empty),
            },
        }
    }
}
