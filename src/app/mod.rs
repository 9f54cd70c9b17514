//! The application: the hub, the ledger, the settings, the routes, and what each endpoint does
//! with a request. It drives one [`Client`]'s session at a time through its core and tells the
//! driver, as an [`Effect`], what reaches beyond that client (a fan-out, a drop). No socket, no
//! mio and no clock here: the driver hands in the client, its bytes and the loop's time, so the
//! same application can run on any loop, thread or (later) HTTP/2 stream.
use std::sync::Arc;
use std::time::Instant;

mod client;
mod lifecycle;
mod replay;
mod router;
mod session;
mod shared;
mod stats;
mod streams;
mod trace;

#[cfg(test)]
mod tests;

pub(crate) use client::Client;
pub(crate) use router::{Route, RouteError};
pub(crate) use session::{Feed, Http, Session};
pub(crate) use shared::{ClientRef, FanOut, MAX_LOOPS, PublishRefused, Shared};
pub(crate) use trace::Tracer;

use crate::config::Config;
use crate::delivery;
use crate::http1::{
    self, BodyPlan, Content, DateCache, Event, Refusal, RequestHead, Response, Status,
};
use crate::hub::{Hub, Subscription};
use crate::ledger::{ByCategory, Category, Counter, Layout, Ledger, Transport};
use crate::outbuf::SharedUnit;
use crate::polling::{self, LongPoll, longpoll};
use crate::websocket;

/// Extra header fields of every poll answer: a poll result must never come from a cache.
const NO_STORE: (&str, &str) = ("Cache-Control", "no-store");

/// The response answering a poll with `body`: JSON, not to be stored by caches.
fn poll_response(body: &polling::Body) -> Response<'static> {
    Response {
        status: Status::OK,
        content_type: Some("application/json"),
        extra: &[NO_STORE],
        content: Content::Parts(body.parts.clone()),
    }
}

/// A long-poll answer that one fan-out shares among every poll it wakes after the same id: the
/// body, made once, and its response head, made once for each exchange met (HTTP/1.0 or 1.1,
/// kept alive or not, the only ways two of these heads differ: a fan-out runs within one loop
/// turn, so they carry the same `Date`).
pub(crate) struct SharedAnswer {
    /// The id the polls waited after.
    pub since: u64,
    body: polling::Body,
    heads: Vec<(http1::Exchange, Arc<SharedUnit>)>,
}

impl SharedAnswer {
    pub(crate) fn new(since: u64, body: polling::Body) -> SharedAnswer {
        SharedAnswer {
            since,
            body,
            heads: Vec::new(),
        }
    }

    /// The head for `exchange`, encoded the first time it is asked for.
    fn head(&mut self, exchange: http1::Exchange, date: &str) -> Arc<SharedUnit> {
        if let Some((_, head)) = self.heads.iter().find(|(e, _)| *e == exchange) {
            return head.clone();
        }
        let mut bytes = Vec::with_capacity(160);
        http1::encode_head(exchange, &poll_response(&self.body), date, &mut bytes);
        let layout = Layout::uniform(Category::ResponseHead, bytes.len());
        let head = Arc::new(SharedUnit::new(bytes, layout));
        self.heads.push((exchange, head.clone()));
        head
    }
}

/// The demo page, embedded in the binary.
const INDEX_HTML: &[u8] = include_bytes!("../../web/index.html");

/// What a request or a message causes beyond its own connection, for the driver to carry out.
#[derive(Debug)]
pub(crate) enum Effect {
    /// A message was published: the loop's inbox holds its share of the fan-out (see
    /// `shared`), and other loops may have theirs to be woken for ([`App::take_wakes`]).
    Published,
    /// `POST /drop/{transport}`: close that transport's connections, then answer the count.
    Drop(Transport),
    /// The first trace sink appeared: connections get dissectors.
    TracingStarted,
    /// `GET /stats`: the ledger, and the named channel's subscribers by transport, which only
    /// the driver's connection table knows.
    Stats(Option<Box<str>>),
}

/// What delivering a message to one subscriber came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Queued (or, for a parked long-poll, answered): the connection has output to write.
    Queued,
    /// A parked long-poll answered less than the window ago: its answer waits until the window
    /// ends (its session's next deadline moved).
    Held,
    /// Not a subscriber of this kind (any more).
    Skipped,
    /// A slow SSE consumer: close the connection.
    Close,
}

pub(crate) struct App {
    /// What every event loop shares: the hub, the loops' inboxes, counters.
    pub shared: Arc<Shared>,
    /// This loop's index among the server's loops.
    pub loop_index: usize,
    /// Loops (by bit) that a publish of this loop gave work and that are not woken yet.
    wake: u64,
    pub ledger: Ledger,
    pub config: Config,
    pub tracer: Tracer,
    pub date: DateCache,
    /// The time of the current loop iteration: cores get time from here, never from the clock.
    pub now: Instant,
    /// When the server started (for `uptime_s` and trace times).
    pub started: Instant,
    pub http: http1::Settings,
    ws: websocket::WsSettings,
    /// Set when shutdown begins: the end of the grace period in which work under way may finish.
    shutdown_deadline: Option<Instant>,
    /// The one DEFLATE compressor of the server, reset for each message (the server keeps no
    /// context between messages): channel frames compressed once, echoes. Made at the first
    /// message to compress.
    compressor: Option<websocket::deflate::Compressor>,
}

impl App {
    /// The application of loop `loop_index` of the loops that share `shared`.
    pub(crate) fn new(
        config: Config,
        tracer: Tracer,
        now: Instant,
        shared: Arc<Shared>,
        loop_index: usize,
    ) -> App {
        let mut tracer = tracer;
        tracer.join(Arc::clone(&shared), loop_index);
        let http = http1::Settings {
            limits: config.http,
            head_timeout: config.head_timeout,
            idle_timeout: config.idle_timeout,
            closing_grace: config.shutdown_grace,
            max_body: config.max_message_size,
            max_pending_output: config.max_pending_output,
        };
        let ws = websocket::WsSettings {
            max_message_size: config.max_message_size,
            ping_interval: config.ws_ping_interval,
            pong_timeout: config.ws_pong_timeout,
            close_timeout: config.ws_close_timeout,
            max_pending_output: config.max_pending_output,
        };
        let date = DateCache::default();
        App {
            shared,
            loop_index,
            wake: 0,
            ledger: Ledger::new(),
            config,
            tracer,
            date,
            now,
            started: now,
            http,
            ws,
            shutdown_deadline: None,
            compressor: None,
        }
    }

    /// The hub, locked: hold the guard for one operation (or a few that must see the same
    /// state), never across a delivery.
    pub(crate) fn hub(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.shared.hub()
    }

    /// Publishes on `channel`: the id, with the fan-out queued in each loop's inbox.
    pub(crate) fn publish(&mut self, channel: &str, data: Box<str>) -> Result<u64, PublishRefused> {
        self.shared
            .publish(channel, data, self.now, self.loop_index, &mut self.wake)
    }

    /// The other loops (by bit) that publishes of this loop gave work since the last call.
    pub(crate) fn take_wakes(&mut self) -> u64 {
        std::mem::take(&mut self.wake)
    }

    /// A new connection's session.
    pub(crate) fn new_session(&self) -> Session {
        Session::http(http1::Connection::new(self.http, self.now))
    }

    /// Routes a connection's accounting to `transport` from now on, counting it as a connection
    /// of that transport the first time.
    pub(crate) fn set_transport(&mut self, conn: &mut Client, transport: Transport) {
        conn.transport = transport;
        let bit = 1u8 << (transport as u8);
        if conn.counted_transports & bit == 0 {
            conn.counted_transports |= bit;
            self.ledger.count(transport, Counter::Connections, 1);
        }
    }

    pub(crate) fn account_in(&mut self, transport: Transport, tally: &ByCategory) {
        for category in Category::ALL {
            let n = tally[category.index()];
            if n > 0 {
                self.ledger.inbound(transport, category, n as usize);
            }
        }
    }

    /// Lets the connection's session consume its input, answering what it can. Returns whether
    /// anything happened, and stops at the first effect the driver must carry out.
    pub(crate) fn process(&mut self, who: ClientRef, conn: &mut Client) -> (bool, Option<Effect>) {
        let mut progressed = false;
        loop {
            let event = match &mut conn.session {
                Session::Http(h) => {
                    if h.parked.is_some() {
                        return (progressed, None);
                    }
                    let r = h.core.receive(&conn.input, self.now, &conn.output);
                    let (dissectors, traced) = (&mut conn.dissectors, &mut conn.traced);
                    conn.input.consume_traced(r.consumed, dissectors, traced);
                    let reading_body = h.route.is_some();
                    self.account_in(conn.transport, &r.tally);
                    match r.event {
                        None if r.consumed == 0 => return (progressed, None),
                        None => {
                            progressed = true;
                            continue;
                        }
                        Some(Event::Error(e)) => {
                            if !reading_body {
                                // The head that broke a rule crossed the socket like any other:
                                // counted as a request head of no transport, then dropped.
                                self.set_transport(conn, Transport::Other);
                                let n = conn.input.len();
                                conn.consume_input(n);
                                self.ledger
                                    .inbound(Transport::Other, Category::RequestHead, n);
                            }
                            self.refuse_unreadable(conn, e.into());
                            return (true, None);
                        }
                        Some(event) => event,
                    }
                }
                Session::Sse(stream, _) => {
                    if conn.input.is_empty() {
                        // Nothing to ignore: the pass a fan-out's write makes, once per delivery.
                        return (progressed, None);
                    }
                    // An event stream is one-way: whatever the client sends now is ignored (and
                    // not traced: it is no wire unit of any protocol spoken here).
                    let (n, tally) = stream.receive(&conn.input);
                    conn.input.consume(n);
                    self.account_in(conn.transport, &tally);
                    return (progressed, None);
                }
                Session::WebSocket(ws, channel) => {
                    if conn.input.is_empty() && !ws.acts_without_input() {
                        // Nothing to read and nothing of its own to send: the pass a fan-out's
                        // write makes, once per delivery, has nothing to do here.
                        return (progressed, None);
                    }
                    let r = ws.receive(&conn.input, self.now, &mut conn.output);
                    let (dissectors, traced) = (&mut conn.dissectors, &mut conn.traced);
                    conn.input.consume_traced(r.consumed, dissectors, traced);
                    self.account_in(conn.transport, &r.tally);
                    if r.inflated.messages > 0 {
                        self.ledger.inflated_in(conn.transport, r.inflated);
                    }
                    if !r.progressed {
                        return (progressed, None);
                    }
                    progressed = true;
                    if r.messages.is_empty() {
                        // Control frames and partial payloads: no channel name to copy.
                        continue;
                    }
                    let channel = channel.clone();
                    // Frame by frame: at most one data message per call.
                    for message in r.messages {
                        if let Some(effect) = self.on_ws_message(conn, channel.as_deref(), message)
                        {
                            return (true, Some(effect));
                        }
                    }
                    continue;
                }
            };
            progressed = true;
            let effect = match event {
                Event::Head(head) => self.on_head(who, conn, head),
                Event::Body(body) => {
                    let Session::Http(Http { route, .. }) = &mut conn.session else {
                        return (true, None);
                    };
                    match route.take() {
                        Some(route) => self.handle(who, conn, route, body),
                        None => None,
                    }
                }
                Event::Error(_) => None,
            };
            if effect.is_some() {
                return (true, effect);
            }
        }
    }

    /// A head has arrived: decide its route and framing, then read its body or handle it.
    fn on_head(&mut self, who: ClientRef, conn: &mut Client, head: RequestHead) -> Option<Effect> {
        log::debug!("c{}: {head}", conn.id);
        let route = router::route(&head);
        let transport = route.as_ref().map_or(Transport::Other, Route::transport);
        self.set_transport(conn, transport);
        // A keep-alive client asks for the same channel again and again: keep its name.
        let channel = route.as_ref().ok().and_then(Route::channel);
        if conn.channel.as_deref() != channel {
            conn.channel = channel.map(Box::from);
        }
        let head_category = match route {
            Ok(Route::WebSocket { .. }) => Category::WsHandshake,
            _ => Category::RequestHead,
        };
        self.ledger.inbound(transport, head_category, head.len);
        self.ledger.count(transport, Counter::Requests, 1);
        let plan = match BodyPlan::decide(&head, self.config.max_message_size) {
            Ok(plan) => plan,
            Err(e) => {
                self.refuse_unreadable(conn, e.into());
                return None;
            }
        };
        let access = router::Access {
            admin: self.config.admin,
            allowed_origins: &self.config.allowed_origins,
            loopback_peer: conn.loopback_peer,
        };
        let route = route.and_then(|r| router::check_access(&r, &head, access).map(|()| r));
        let route = match route {
            Ok(route) => route,
            Err(e) => {
                // The body is not read, so nothing after it can be framed: close.
                self.refuse(conn, e.into(), plan.has_body());
                return None;
            }
        };
        if let Route::WebSocket { channel, since } = route {
            if plan.has_body() {
                self.refuse(conn, RouteError::UpgradeWithBody.into(), true);
            } else {
                self.start_websocket(who, conn, &head, channel, since);
            }
            return None;
        }
        if plan.has_body() {
            let data = match route {
                Route::Publish { .. } => Category::Payload,
                _ => Category::Other,
            };
            if let Session::Http(h) = &mut conn.session {
                h.core.read_body(plan, data, self.now, &mut conn.output);
                h.route = Some(route);
            }
            return None;
        }
        self.handle(who, conn, route, Vec::new())
    }

    /// A complete request: answer it, park it, or start a stream.
    fn handle(
        &mut self,
        who: ClientRef,
        conn: &mut Client,
        route: Route,
        body: Vec<u8>,
    ) -> Option<Effect> {
        match route {
            Route::Publish { channel } => {
                if body.is_empty() {
                    self.refuse(conn, RouteError::EmptyMessage.into(), false);
                    return None;
                }
                let Ok(text) = String::from_utf8(body) else {
                    self.refuse(conn, RouteError::BodyNotUtf8.into(), false);
                    return None;
                };
                let id = match self.publish(&channel, text.into_boxed_str()) {
                    Ok(id) => id,
                    Err(refused) => {
                        log::info!("c{}: publish to {channel} refused: {refused}", conn.id);
                        self.refuse(conn, RouteError::PublishRefused(refused).into(), false);
                        return None;
                    }
                };
                let answer = format!(
                    "{{\"channel\":{},\"id\":{}}}",
                    serde_json::Value::from(&*channel),
                    id
                );
                self.respond_json(conn, answer, Category::JsonEnvelope, &[]);
                return Some(Effect::Published);
            }
            Route::Poll { channel, query } => {
                let backlog = {
                    let hub = self.hub();
                    hub.since(
                        &channel,
                        query.since.unwrap_or_else(|| hub.last_id(&channel)),
                    )
                };
                if query.since.is_some() && !polling::has_news(&backlog) {
                    self.respond_empty_poll(conn);
                } else {
                    self.respond_poll(conn, delivery::poll_body(&backlog));
                }
            }
            Route::LongPoll { channel, query } => {
                // One look at the hub: a publish from another loop between reading the history
                // and subscribing would otherwise reach neither.
                let Session::Http(h) = &mut conn.session else {
                    return None;
                };
                let c = &self.config;
                let wait =
                    longpoll::clamp_wait(query.timeout, c.longpoll_timeout, c.longpoll_max_timeout);
                let window_end = longpoll::window_end(h.answered_at, c.write_coalesce, self.now);
                let mut hub = self.shared.hub();
                let since = query.since.unwrap_or_else(|| hub.last_id(&channel));
                let backlog = hub.since(&channel, since);
                let news = polling::has_news(&backlog);
                if !news {
                    hub.subscribe(
                        &channel,
                        who.subscriber(Transport::LongPoll),
                        Subscription::Once,
                    );
                }
                drop(hub);
                match (news, window_end) {
                    // Held, not subscribed: the answer reads the history when the window ends.
                    (true, Some(end)) => {
                        let mut poll = LongPoll::park(channel, since, wait, self.now);
                        poll.hold_until(end);
                        h.parked = Some(poll);
                    }
                    (true, None) => self.answer_long_poll(conn, delivery::poll_body(&backlog)),
                    (false, _) => h.parked = Some(LongPoll::park(channel, since, wait, self.now)),
                }
            }
            Route::Sse {
                channel,
                resume_after,
            } => self.start_sse(who, conn, channel, resume_after),
            Route::Index => self.respond(
                conn,
                Status::OK,
                Some("text/html; charset=utf-8"),
                &[("Cache-Control", "no-cache")],
                Content::Static(INDEX_HTML),
            ),
            Route::Stats { channel } => return Some(Effect::Stats(channel)),
            Route::Drop { transport } => return Some(Effect::Drop(transport)),
            Route::Trace => return self.start_trace_feed(who, conn),
            // Upgrades are answered as soon as their head is read (`on_head`).
            Route::WebSocket { .. } => {}
        }
        None
    }

    /// Queues a complete response on an HTTP connection.
    pub(crate) fn respond(
        &mut self,
        conn: &mut Client,
        status: Status,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
        content: Content,
    ) {
        let Session::Http(h) = &mut conn.session else {
            return;
        };
        let response = Response {
            status,
            content_type,
            extra,
            content,
        };
        h.core
            .respond(response, self.date.value(), self.now, &mut conn.output);
        self.ledger.count(conn.transport, Counter::Responses, 1);
    }

    /// Answers `GET /stats` with the document the driver had [`App::stats_json`] write.
    pub(crate) fn respond_stats(&mut self, conn: &mut Client, json: String) {
        // No CORS header: the demo page is same-origin, and no other site needs the ledger.
        self.respond_json(conn, json, Category::Other, &[NO_STORE]);
    }

    /// A 200 with a small JSON document made for this answer, all of `category`.
    pub(crate) fn respond_json(
        &mut self,
        conn: &mut Client,
        json: String,
        category: Category,
        extra: &[(&str, &str)],
    ) {
        let content = Content::Owned(json.into_bytes(), category);
        self.respond(conn, Status::OK, Some("application/json"), extra, content);
    }

    pub(crate) fn respond_poll(&mut self, conn: &mut Client, body: polling::Body) {
        self.ledger
            .count(conn.transport, Counter::Messages, body.messages as u64);
        let Response {
            status,
            content_type,
            extra,
            content,
        } = poll_response(&body);
        self.respond(conn, status, content_type, extra, content);
    }

    /// Answers a long-poll a fan-out woke with the answer it shares among every poll parked
    /// after the same id: body and head are referenced, not encoded again.
    pub(crate) fn answer_long_poll_shared(&mut self, conn: &mut Client, answer: &mut SharedAnswer) {
        let Session::Http(h) = &mut conn.session else {
            return;
        };
        h.answered_at = Some(self.now);
        let date = self.date.value();
        h.core.respond_shared(
            Content::Parts(answer.body.parts.clone()),
            |exchange| answer.head(exchange, date),
            self.now,
            &mut conn.output,
        );
        let count = answer.body.messages as u64;
        self.ledger.count(conn.transport, Counter::Messages, count);
        self.ledger.count(conn.transport, Counter::Responses, 1);
    }

    /// Answers a long-poll with `body`; the connection's next answer waits for the window that
    /// starts now (see [`longpoll`]).
    fn answer_long_poll(&mut self, conn: &mut Client, body: polling::Body) {
        if let Session::Http(h) = &mut conn.session {
            h.answered_at = Some(self.now);
        }
        self.respond_poll(conn, body);
    }

    /// Nothing new for a poll, or a long-poll that timed out.
    pub(crate) fn respond_empty_poll(&mut self, conn: &mut Client) {
        self.ledger.count(conn.transport, Counter::Empty, 1);
        self.respond(conn, Status::NO_CONTENT, None, &[NO_STORE], Content::Empty);
    }

    /// Answers a request the server will not serve; with `close`, nothing after it is read.
    pub(crate) fn refuse(&mut self, conn: &mut Client, refusal: Refusal, close: bool) {
        log::debug!("c{}: {} {}", conn.id, refusal.status, refusal.reason);
        let Session::Http(h) = &mut conn.session else {
            return;
        };
        h.core.refuse(
            &refusal,
            close,
            self.date.value(),
            self.now,
            &mut conn.output,
        );
        self.ledger.count(conn.transport, Counter::Responses, 1);
    }

    /// Answers a request that cannot be read to its end (broken framing, too slow), in HTTP/1.1
    /// as its version may be unknown, and closes: nothing after it could be framed.
    pub(crate) fn refuse_unreadable(&mut self, conn: &mut Client, refusal: Refusal) {
        if let Session::Http(h) = &mut conn.session {
            h.core.forget_request();
        }
        self.refuse(conn, refusal, true);
    }

    /// The demo ticker: one message on the demo channel, carrying its send time so every
    /// transport's page panel can show publish-to-receive latency.
    pub(crate) fn tick(&mut self, tick: u64, sent_ms: u128) -> bool {
        let Some(channel) = self.config.demo_channel.clone() else {
            return false;
        };
        let text = format!("{{\"text\":\"tick {tick}\",\"sent\":{sent_ms}}}");
        match self.publish(&channel, text.into_boxed_str()) {
            Ok(_) => true,
            Err(refused) => {
                log::warn!("demo tick refused: {refused}");
                false
            }
        }
    }
}
