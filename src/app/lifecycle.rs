//! What happens to a client between its requests: a published message reaches it, one of its
//! session's deadlines passes, the server shuts down.
use super::{App, Client, Delivery, Feed, RouteError, Session};
use crate::delivery::{self, Message};
use crate::http1::{self, Expiry};
use crate::hub::SubscriberId;
use crate::ledger::Counter;
use crate::polling;
use crate::websocket::CloseCode;

impl App {
    /// Delivers a published message to one subscriber: queued on a stream, or answering a
    /// parked long-poll (whose body is shared by every poll parked after the same id).
    pub(crate) fn deliver(
        &mut self,
        conn: &mut Client,
        message: &Message,
        bodies: &mut Vec<(u64, polling::Body)>,
    ) -> Delivery {
        let max_pending = self.config.max_pending_output;
        match &mut conn.session {
            Session::Sse(stream, Feed::Channel(_)) => {
                let unit = delivery::sse_event(message, stream.is_chunked());
                stream.deliver(&unit, message.published_at, &mut conn.output);
                self.ledger.count(conn.transport, Counter::Messages, 1);
                let pending = conn.output.len();
                if pending > max_pending {
                    self.slow_consumer(conn, pending);
                    return Delivery::Close;
                }
            }
            Session::WebSocket(ws, Some(_)) => {
                let unit = delivery::ws_frame_for(message, ws.deflate(), self.compressor());
                if ws.deliver(&unit, message.published_at, &mut conn.output) {
                    self.ledger.count(conn.transport, Counter::Messages, 1);
                    self.count_deflated(conn.transport, message, &unit);
                }
                let pending = conn.output.len();
                if pending > max_pending {
                    ws.cut_slow_consumer(self.now, &mut conn.output);
                    self.slow_consumer(conn, pending);
                }
            }
            Session::Http(h) => {
                let Some(poll) = h.parked.take() else {
                    return Delivery::Skipped;
                };
                let since = poll.since();
                let body = match bodies.iter().find(|(id, _)| *id == since) {
                    Some((_, body)) => body.clone(),
                    None => {
                        let body = delivery::poll_body(&self.hub.since(poll.channel(), since));
                        bodies.push((since, body.clone()));
                        body
                    }
                };
                self.respond_poll(conn, body);
            }
            _ => return Delivery::Skipped,
        }
        Delivery::Queued
    }

    /// Counts a subscriber cut off with `pending` bytes it had not read.
    pub(super) fn slow_consumer(&mut self, conn: &Client, pending: usize) {
        log::info!(
            "c{}: slow consumer cut off ({pending} bytes pending)",
            conn.id
        );
        self.ledger
            .count(conn.transport, Counter::SlowDisconnects, 1);
    }

    /// A deadline of the connection's session passed. Returns true when the connection is to be
    /// closed now.
    pub(crate) fn on_timeout(&mut self, key: SubscriberId, conn: &mut Client) -> bool {
        let now = self.now;
        match &mut conn.session {
            Session::Http(h) => {
                if let Some(poll) = &h.parked {
                    if poll.is_expired(now) {
                        self.hub.unsubscribe(poll.channel(), key);
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

    /// Shutdown began: end what can be ended now; the rest drains within the grace period.
    pub(crate) fn on_shutdown(&mut self, key: SubscriberId, conn: &mut Client) {
        let now = self.now;
        match &mut conn.session {
            Session::Http(h) => {
                h.core.begin_shutdown(conn.input.is_empty(), now);
                if let Some(poll) = h.parked.take() {
                    self.hub.unsubscribe(poll.channel(), key);
                    self.respond_empty_poll(conn);
                }
            }
            Session::Sse(stream, feed) => {
                stream.finish(&mut conn.output);
                match feed {
                    Feed::Channel(channel) => self.hub.unsubscribe(channel, key),
                    Feed::Trace => self.tracer.unsubscribe(key),
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
