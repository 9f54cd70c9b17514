//! The driver side of Server-Sent Events: starting a stream, delivering messages, heartbeats.
//! The bytes themselves come from [`crate::sse`] (events) and [`crate::http1`] (head, chunks).
use std::sync::Arc;

use super::Server;
use super::connection::{Exchange, Phase};
use crate::http1::chunked::{LAST_CHUNK, encode_chunk};
use crate::http1::{ResponseBody, ResponseHead, Status};
use crate::hub::{Backlog, Encoding, Message, Subscription};
use crate::outbuf::Segment;
use crate::sse;

/// The heartbeat comment: tells clients and proxies the stream is alive.
const HEARTBEAT: &str = "heartbeat";

/// An event for a held message, ready for the wire: chunk-framed for HTTP/1.1, raw for 1.0.
fn message_event(message: &Message, chunked: bool) -> Arc<[u8]> {
    if chunked {
        message.encoded(Encoding::SseChunk, |m| {
            let mut event = Vec::with_capacity(sse::encoded_len(Some(m.id), None, &m.data));
            sse::encode_event(Some(m.id), None, &m.data, &mut event);
            let mut out = Vec::with_capacity(event.len() + 12);
            encode_chunk(&event, &mut out);
            out
        })
    } else {
        message.encoded(Encoding::SseEvent, |m| {
            let mut out = Vec::with_capacity(sse::encoded_len(Some(m.id), None, &m.data));
            sse::encode_event(Some(m.id), None, &m.data, &mut out);
            out
        })
    }
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
        ResponseHead {
            status: Status::OK,
            minor_version: exchange.minor_version,
            date: self.date.value(),
            body: if chunked {
                ResponseBody::Chunked
            } else {
                ResponseBody::UntilClose
            },
            keep_alive: if chunked { None } else { Some(false) },
            content_type: Some("text/event-stream"),
            extra: &[("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")],
        }
        .encode(&mut head);
        let opening = opening_events(self.config.sse_retry.as_millis() as u64, backlog.as_ref());
        if chunked {
            encode_chunk(&opening, &mut head);
        } else {
            head.extend_from_slice(&opening);
        }
        conn.output.push_bytes(&head);
        for message in backlog.iter().flat_map(|b| &b.messages) {
            conn.output
                .push(Segment::Shared(message_event(message, chunked)));
        }
        conn.requests += 1;
        self.hub.subscribe(&channel, key, Subscription::Stream);
        conn.phase = Phase::Sse {
            channel,
            chunked,
            next_heartbeat: self.now + self.config.sse_heartbeat,
        };
    }

    /// Queues a published message on an SSE stream; false when the connection is not one.
    pub(super) fn sse_deliver(&mut self, key: usize, message: &Message) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let Phase::Sse {
            chunked,
            next_heartbeat,
            ..
        } = &mut conn.phase
        else {
            return false;
        };
        conn.output
            .push(Segment::Shared(message_event(message, *chunked)));
        // Data is as good a sign of life as a heartbeat.
        *next_heartbeat = self.now + self.config.sse_heartbeat;
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
        if *chunked {
            let mut framed = Vec::new();
            encode_chunk(&comment, &mut framed);
            comment = framed;
        }
        conn.output.push_bytes(&comment);
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
        self.hub.unsubscribe(channel, key);
        if *chunked {
            conn.output.push_bytes(LAST_CHUNK);
        }
        conn.phase = Phase::Closing {
            since: self.now,
            write_shut: false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_message_event_in_a_chunk() {
        let m = Message::new(12, "a\nb".into());
        assert_eq!(
            &*message_event(&m, true),
            b"18\r\nid: 12\ndata: a\ndata: b\n\n\r\n"
        );
        assert_eq!(&*message_event(&m, false), b"id: 12\ndata: a\ndata: b\n\n");
    }

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
