//! What happens to a client between its requests: a published message reaches it, one of its
//! session's deadlines passes, the server shuts down.
use std::time::Instant;

use super::{App, Client, ClientRef, Delivery, Feed, RouteError, Session, SharedAnswer};
use crate::delivery::{self, Encodings, Message};
use crate::http1::{self, Expiry};
use crate::ledger::{Counter, Transport};
use crate::polling::{self, longpoll};
use crate::websocket::CloseCode;

impl App {
    /// Delivers a published message to one subscriber: queued on a stream, or answering a
    /// parked long-poll (whose body is shared by every poll parked after the same id). The
    /// streams share the fan-out's `encodings`.
    pub(crate) fn deliver(
        &mut self,
        conn: &mut Client,
        channel: &str,
        message: &Message,
        encodings: &Encodings,
        answers: &mut Vec<SharedAnswer>,
    ) -> Delivery {
        let max_pending = self.config.max_pending_output;
        if conn.replaying {
            // The replay still under way reaches this message in the history, in order.
            return Delivery::Skipped;
        }
        if message.id <= conn.last_id {
            // A replay already sent it: the fan-out waited in the inbox while the replay read
            // the history (another loop published it).
            return Delivery::Skipped;
        }
        match &mut conn.session {
            Session::Sse(stream, Feed::Channel(_)) => {
                let unit = encodings.sse_event(message, stream.is_chunked());
                stream.deliver(&unit, message.published_at, &mut conn.output);
                conn.last_id = message.id;
                self.ledger.count(conn.transport, Counter::Messages, 1);
                // Memory, not wire bytes: each queued unit costs its entry too.
                let pending = conn.output.memory();
                if pending > max_pending {
                    self.slow_consumer(conn, pending);
                    return Delivery::Close;
                }
            }
            Session::WebSocket(ws, Some(_)) => {
                let unit = encodings.ws_frame_for(message, ws.deflate(), &mut self.compressor);
                if ws.deliver(&unit, message.published_at, &mut conn.output) {
                    conn.last_id = message.id;
                    self.ledger.count(conn.transport, Counter::Messages, 1);
                    self.count_deflated(conn.transport, &unit, || {
                        encodings.json(message).bytes.len()
                    });
                }
                let pending = conn.output.memory();
                if pending > max_pending {
                    ws.cut_slow_consumer(self.now, &mut conn.output);
                    self.slow_consumer(conn, pending);
                }
            }
            Session::Http(h) => {
                // Not parked, or parked on another channel or after this message (a fan-out from
                // an earlier wait on the same connection that arrived late): the poll waits on.
                // Held already: the answer will read this message from the history.
                let stale = |poll: &polling::LongPoll| {
                    poll.channel() != channel || message.id <= poll.since() || poll.is_held()
                };
                if h.parked.as_ref().is_none_or(stale) {
                    return Delivery::Skipped;
                }
                let window = self.config.write_coalesce;
                if let Some(end) = longpoll::window_end(h.answered_at, window, self.now) {
                    if let Some(poll) = &mut h.parked {
                        poll.hold_until(end);
                    }
                    return Delivery::Held;
                }
                let Some(poll) = h.parked.take() else {
                    return Delivery::Skipped;
                };
                let since = poll.since();
                let i = match answers.iter().position(|a| a.since == since) {
                    Some(i) => i,
                    None => {
                        let backlog = self.hub().since(poll.channel(), since);
                        answers.push(SharedAnswer::new(since, delivery::poll_body(&backlog)));
                        answers.len() - 1
                    }
                };
                self.answer_long_poll_shared(conn, &mut answers[i]);
            }
            _ => return Delivery::Skipped,
        }
        Delivery::Queued
    }

    /// Answers a held long-poll (not subscribed: see [`longpoll`]) with every message after its
    /// position, those published while it was held included.
    fn answer_held(&mut self, conn: &mut Client, poll: &polling::LongPoll) {
        let backlog = self.hub().since(poll.channel(), poll.since());
        if polling::has_news(&backlog) {
            self.answer_long_poll(conn, delivery::poll_body(&backlog));
        } else {
            // Cannot happen while the history keeps a gap or a reset to report; answered as a
            // timeout would be, the client simply asks again.
            self.respond_empty_poll(conn);
        }
    }

    /// When the hub's oldest held message expires (`--message-ttl`): the driver wakes then.
    pub(crate) fn history_deadline(&self) -> Option<Instant> {
        self.hub().next_expiry()
    }

    /// Drops the held messages whose time is up at `now`, and the channels left empty.
    pub(crate) fn expire_history(&mut self) {
        let now = self.now;
        self.hub().expire(now);
    }

    /// Counts a subscriber cut off with `pending` bytes it had not read.
    pub(super) fn slow_consumer(&mut self, conn: &Client, pending: usize) {
        log::info!(
            "c{}: slow consumer cut off ({pending} bytes of output queued)",
            conn.id
        );
        self.ledger
            .count(conn.transport, Counter::SlowDisconnects, 1);
    }

    /// A deadline of the connection's session passed. Returns true when the connection is to be
    /// closed now.
    pub(crate) fn on_timeout(&mut self, who: ClientRef, conn: &mut Client) -> bool {
        let now = self.now;
        match &mut conn.session {
            Session::Http(h) => {
                if let Some(poll) = &h.parked {
                    if poll.is_due(now) {
                        if let Some(poll) = h.parked.take() {
                            self.answer_held(conn, &poll);
                        }
                    } else if poll.is_expired(now) {
                        let subscriber = who.subscriber(Transport::LongPoll);
                        self.hub().unsubscribe(poll.channel(), subscriber);
                        h.parked = None;
                        self.respond_empty_poll(conn);
                    }
                    return false;
                }
                match h.core.handle_timeout(now, conn.output.is_empty()) {
                    None => false,
                    Some(Expiry::Close) => {
                        log::debug!("c{}: idle timeout", conn.id);
                        true
                    }
                    Some(Expiry::RequestTimeout) => {
                        self.refuse_unreadable(conn, RouteError::RequestTimeout.into());
                        false
                    }
                }
            }
            Session::Sse(stream, _) => {
                stream.handle_timeout(now, &mut conn.output);
                false
            }
            Session::WebSocket(ws, _) => ws.handle_timeout(now, &mut conn.output),
        }
    }

    /// The connection is gone: its subscription, if any, ends with it.
    pub(crate) fn on_closed(&mut self, who: ClientRef, conn: &Client) {
        if let Some((channel, transport)) = conn.session.subscription() {
            self.hub().unsubscribe(channel, who.subscriber(transport));
        }
    }

    /// Starts the shutdown clock at `now`: work under way has `--shutdown-grace` to finish. Returns
    /// false when shutdown had already begun (a second Ctrl-C changes nothing).
    pub(crate) fn begin_shutdown(&mut self) -> bool {
        if self.shutdown_deadline.is_some() {
            return false;
        }
        self.shutdown_deadline = Some(self.now + self.config.shutdown_grace);
        true
    }

    /// When the grace period ends, once shutdown has begun: the driver must wake then.
    pub(crate) fn shutdown_deadline(&self) -> Option<Instant> {
        self.shutdown_deadline
    }

    /// Whether the server may stop now: shutdown has begun, and either no connection is left
    /// (`open` is the driver's count) or the grace period is over.
    pub(crate) fn shutdown_finished(&self, open: usize) -> bool {
        self.shutdown_deadline
            .is_some_and(|deadline| open == 0 || self.now >= deadline)
    }

    /// Shutdown began: end what can be ended now; the rest drains within the grace period.
    pub(crate) fn on_shutdown(&mut self, who: ClientRef, conn: &mut Client) {
        let now = self.now;
        match &mut conn.session {
            Session::Http(h) => {
                h.core.begin_shutdown(conn.input.is_empty(), now);
                if let Some(poll) = h.parked.take() {
                    if poll.is_held() {
                        // Its news is there: no reason to make the client ask again for it.
                        self.answer_held(conn, &poll);
                    } else {
                        let subscriber = who.subscriber(Transport::LongPoll);
                        self.hub().unsubscribe(poll.channel(), subscriber);
                        self.respond_empty_poll(conn);
                    }
                }
            }
            Session::Sse(stream, feed) => {
                stream.finish(&mut conn.output);
                match feed {
                    Feed::Channel(channel) => {
                        let subscriber = who.subscriber(Transport::Sse);
                        self.hub().unsubscribe(channel, subscriber);
                    }
                    Feed::Trace => self.tracer.unsubscribe(who.key),
                }
                conn.session = Session::http(http1::Connection::closing(self.http, now));
            }
            Session::WebSocket(ws, _) => ws.close(
                CloseCode::GoingAway,
                "server shutting down",
                now,
                &mut conn.output,
            ),
        }
    }
}
