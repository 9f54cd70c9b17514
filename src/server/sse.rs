//! The driver side of Server-Sent Events: starting a stream, delivering messages, heartbeats.
//! The bytes themselves come from [`crate::sse`] (events) and [`crate::http1`] (head, chunks).

use super::Server;
use super::connection::{Exchange, Phase};
use crate::delivery;
use crate::http1::chunked::{LAST_CHUNK, encode_chunk};
use crate::http1::{ResponseBody, ResponseHead, Status};
use crate::hub::{Backlog, Message, Subscription};
use crate::ledger::{Category, Counter, Layout};
use crate::sse;

/// The heartbeat comment: tells clients and proxies the stream is alive.
const HEARTBEAT: &str = "heartbeat";

/// The head of an event stream: chunked for HTTP/1.1, delimited by close for HTTP/1.0 (which
/// knows no chunking), never cached or buffered by a proxy.
pub(super) fn encode_stream_head(
    exchange: Exchange,
    date: &str,
    more: &[(&str, &str)],
    out: &mut Vec<u8>,
) {
    let chunked = exchange.minor_version >= 1;
    let mut extra = vec![("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")];
    extra.extend_from_slice(more);
    ResponseHead {
        status: Status::OK,
        minor_version: exchange.minor_version,
        date,
        body: if chunked {
            ResponseBody::Chunked
        } else {
            ResponseBody::UntilClose
        },
        keep_alive: if chunked { None } else { Some(false) },
        content_type: Some("text/event-stream"),
        extra: &extra,
    }
    .encode(out);
}

/// Queues SSE syntax bytes (`retry`, comments, gap events) in a chunk of their own when chunked.
pub(super) fn push_syntax(
    output: &mut crate::outbuf::OutQueue,
    bytes: &[u8],
    category: Category,
    chunked: bool,
) {
    if !chunked {
        output.push_bytes(bytes, category);
        return;
    }
    let mut framed = Vec::with_capacity(bytes.len() + 12);
    encode_chunk(bytes, &mut framed);
    let size_line = framed.len() - bytes.len() - 2;
    let layout = Layout::from_runs(&[
        (Category::ChunkFraming, size_line),
        (category, bytes.len()),
        (Category::ChunkFraming, 2),
    ]);
    output.push_bytes_with(&framed, layout);
}

/// The events that open a stream: the reconnection delay, then a `gap` or `reset` event when the
/// resume point is no longer (or not yet) held. They carry no id, so a client's Last-Event-ID only
/// ever names a real message.
fn opening_events(retry_ms: u64, backlog: Option<&Backlog>) -> Vec<u8> {
    let mut out = Vec::new();
    sse::encode_retry(retry_ms, &mut out);
    if let Some(b) = backlog {
        if let Some(gap) = b.gap {
            let data = format!("{{\"from\":{},\"to\":{}}}", gap.from, gap.to);
            sse::encode_event(None, Some("gap"), &data, &mut out);
        }
        if b.reset {
            let data = format!("{{\"last_id\":{}}}", b.last_id);
            sse::encode_event(None, Some("reset"), &data, &mut out);
        }
    }
    out
}

impl Server {
    /// Answers `GET /sse/{channel}`: the stream head, the opening events, any backlog after the
    /// resume point, then live messages.
    pub(super) fn start_sse(
        &mut self,
        key: usize,
        exchange: Exchange,
        channel: Box<str>,
        resume_after: Option<u64>,
    ) {
        let chunked = exchange.minor_version >= 1;
        let backlog = resume_after.map(|after| self.hub.since(&channel, after));
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut head = Vec::with_capacity(256);
        encode_stream_head(exchange, self.date.value(), &[], &mut head);
        conn.output.push_bytes(&head, Category::ResponseHead);
        let opening = opening_events(self.config.sse_retry.as_millis() as u64, backlog.as_ref());
        push_syntax(&mut conn.output, &opening, Category::SseFields, chunked);
        let mut delivered = 0;
        for message in backlog.iter().flat_map(|b| &b.messages) {
            conn.output
                .push_delivery(&delivery::sse_event(message, chunked), message.published_at);
            delivered += 1;
        }
        conn.requests += 1;
        let transport = conn.transport;
        self.ledger.count(transport, Counter::Responses, 1);
        self.ledger.count(transport, Counter::Messages, delivered);
        if resume_after.is_some() {
            self.ledger.count(transport, Counter::Resumes, 1);
        }
        self.hub.subscribe(&channel, key, Subscription::Stream);
        conn.phase = Phase::Sse {
            channel: Some(channel),
            chunked,
            next_heartbeat: self.now + self.config.sse_heartbeat,
        };
    }

    /// Queues a published message on an SSE stream; false when the connection is not one.
    pub(super) fn sse_deliver(&mut self, key: usize, message: &Message) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let Phase::Sse { chunked, .. } = &conn.phase else {
            return false;
        };
        conn.output.push_delivery(
            &delivery::sse_event(message, *chunked),
            message.published_at,
        );
        // The heartbeat keeps its own schedule: moving it on every message would re-sort every
        // subscriber's timer on every publish, for a comment of a dozen bytes every 15 s.
        self.ledger.count(conn.transport, Counter::Messages, 1);
        true
    }

    /// The heartbeat deadline of an SSE stream passed.
    pub(super) fn sse_heartbeat(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Sse {
            chunked,
            next_heartbeat,
            ..
        } = &mut conn.phase
        else {
            return;
        };
        let mut comment = Vec::new();
        sse::encode_comment(HEARTBEAT, &mut comment);
        let framed = if *chunked {
            let mut framed = Vec::new();
            encode_chunk(&comment, &mut framed);
            framed
        } else {
            comment
        };
        conn.output.push_bytes(&framed, Category::Heartbeats);
        *next_heartbeat = self.now + self.config.sse_heartbeat;
    }

    /// Ends an SSE stream cleanly (shutdown): the last chunk, then close.
    pub(super) fn sse_end(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Sse {
            channel, chunked, ..
        } = &conn.phase
        else {
            return;
        };
        let (channel, chunked) = (channel.clone(), *chunked);
        if chunked {
            conn.output.push_bytes(LAST_CHUNK, Category::ChunkFraming);
        }
        conn.phase = Phase::Closing {
            since: self.now,
            write_shut: false,
        };
        match channel {
            Some(channel) => self.hub.unsubscribe(&channel, key),
            // The trace feed: no more records after its last chunk.
            None => self.trace_forget(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_events_tell_retry_gap_and_reset() {
        assert_eq!(opening_events(3000, None), b"retry: 3000\n\n");
        let backlog = Backlog {
            last_id: 9,
            messages: vec![],
            gap: Some(crate::hub::Gap { from: 2, to: 4 }),
            reset: false,
        };
        assert_eq!(
            String::from_utf8(opening_events(100, Some(&backlog))).unwrap(),
            "retry: 100\n\nevent: gap\ndata: {\"from\":2,\"to\":4}\n\n"
        );
    }
}
