//! The server side of one event stream, sans-IO: the response head, the opening events, the
//! messages, the heartbeat schedule and the end. HTTP/1.1 streams put every event in a chunk of
//! its own; an HTTP/1.0 client, which knows no chunking, gets the events bare on a stream that
//! the close delimits.
//!
//! ```text
//!  open: head, retry (and gap / reset) ──► deliver ... heartbeat ... deliver ──► finish (last chunk)
//!                                           every `heartbeat` since the stream opened, messages or not
//! ```
//! The stream never reads: what the client sends is consumed and counted as
//! [`Category::Other`].
use std::time::{Duration, Instant};

use super::event::{encode_comment, encode_retry};
use crate::http1::chunked::{LAST_CHUNK, encode_chunk, queue_chunk};
use crate::http1::{Exchange, ResponseBody, ResponseHead, Status};
use crate::ledger::{ByCategory, Category};
use crate::outbuf::{OutQueue, SharedUnit};

/// The heartbeat comment: tells clients and proxies the stream is alive.
const HEARTBEAT: &str = "heartbeat";

/// What a stream says when it opens.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    /// The `Date` value of the head.
    pub date: &'a str,
    /// Extra header fields of the head.
    pub extra: &'a [(&'a str, &'a str)],
    /// What the head's bytes are for the ledger.
    pub head_category: Category,
    /// The reconnection delay the client is told (`retry:`).
    pub retry: Duration,
    /// Events to send before any message (a `gap` or `reset` notice), already encoded.
    pub notices: &'a [u8],
    /// What the `retry` and notice bytes are for the ledger.
    pub notices_category: Category,
    /// Interval between heartbeat comments.
    pub heartbeat: Duration,
}

/// One event stream.
#[derive(Debug)]
pub struct Stream {
    chunked: bool,
    heartbeat: Duration,
    next_heartbeat: Instant,
}

impl Stream {
    /// Queues the stream's head and opening events for a request of `exchange`.
    pub fn open(exchange: Exchange, opening: &Opening, now: Instant, out: &mut OutQueue) -> Stream {
        let chunked = exchange.minor_version >= 1;
        let mut extra = vec![("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")];
        extra.extend_from_slice(opening.extra);
        let mut head = Vec::with_capacity(256);
        ResponseHead {
            status: Status::OK,
            minor_version: exchange.minor_version,
            date: opening.date,
            body: if chunked {
                ResponseBody::Chunked
            } else {
                ResponseBody::UntilClose
            },
            keep_alive: if chunked { None } else { Some(false) },
            content_type: Some("text/event-stream"),
            extra: &extra,
        }
        .encode(&mut head);
        out.push_bytes(&head, opening.head_category);
        let mut syntax = Vec::with_capacity(16 + opening.notices.len());
        encode_retry(opening.retry.as_millis() as u64, &mut syntax);
        syntax.extend_from_slice(opening.notices);
        queue_chunk(out, &syntax, opening.notices_category, chunked);
        Stream {
            chunked,
            heartbeat: opening.heartbeat,
            next_heartbeat: now + opening.heartbeat,
        }
    }

    /// True for an HTTP/1.1 stream (events in chunks), false when the close delimits it.
    pub fn is_chunked(&self) -> bool {
        self.chunked
    }

    /// Queues a message's shared event (encoded for this stream's framing) published at
    /// `published_at`.
    pub fn deliver(&self, unit: &SharedUnit, published_at: Instant, out: &mut OutQueue) {
        // The heartbeat keeps its own schedule: moving it on every message would re-sort every
        // subscriber's timer on every publish, for a comment of a dozen bytes every 15 s.
        out.push_delivery(unit, published_at);
    }

    /// Consumes what the client sends: an event stream is one-way, so all of it is ignored.
    pub fn receive(&self, input: &[u8]) -> (usize, ByCategory) {
        let mut tally = ByCategory::default();
        tally[Category::Other.index()] += input.len() as u64;
        (input.len(), tally)
    }

    /// When the next heartbeat is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_heartbeat
    }

    /// Sends the heartbeat comment when it is due, and schedules the next one.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut OutQueue) {
        if now < self.next_heartbeat {
            return;
        }
        let mut comment = Vec::with_capacity(16);
        encode_comment(HEARTBEAT, &mut comment);
        // A heartbeat is counted whole, chunk framing included: it is all keep-alive cost.
        if self.chunked {
            let mut framed = Vec::with_capacity(comment.len() + 8);
            encode_chunk(&comment, &mut framed);
            comment = framed;
        }
        out.push_bytes(&comment, Category::Heartbeats);
        self.next_heartbeat = now + self.heartbeat;
    }

    /// Ends the stream cleanly (the last chunk); the connection then closes.
    pub fn finish(&self, out: &mut OutQueue) {
        if self.chunked {
            out.push_bytes(LAST_CHUNK, Category::ChunkFraming);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn drain(out: &mut OutQueue) -> (String, ByCategory) {
        let mut sink = Vec::new();
        let mut report = crate::outbuf::WriteReport::default();
        while !out.is_empty() {
            out.write_to(&mut sink, &mut report).unwrap();
        }
        (String::from_utf8(sink).unwrap(), report.by_category)
    }

    fn opening() -> Opening<'static> {
        Opening {
            date: "D",
            extra: &[],
            head_category: Category::ResponseHead,
            retry: Duration::from_millis(3000),
            notices: b"",
            notices_category: Category::SseFields,
            heartbeat: 15 * SECOND,
        }
    }

    const HTTP_1_1: Exchange = Exchange {
        minor_version: 1,
        keep_alive: true,
    };

    #[test]
    fn opens_with_a_chunked_head_and_retry() {
        let mut out = OutQueue::new();
        let s = Stream::open(HTTP_1_1, &opening(), Instant::now(), &mut out);
        assert!(s.is_chunked());
        let (text, by) = drain(&mut out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Transfer-Encoding: chunked\r\n"));
        assert!(
            text.ends_with("\r\n\r\nd\r\nretry: 3000\n\n\r\n"),
            "{text:?}"
        );
        assert_eq!(by[Category::SseFields.index()], 13);
        assert_eq!(by[Category::ChunkFraming.index()], 5);
    }

    #[test]
    fn http_1_0_streams_are_bare_and_end_with_the_close() {
        let mut out = OutQueue::new();
        let exchange = Exchange {
            minor_version: 0,
            keep_alive: false,
        };
        let s = Stream::open(exchange, &opening(), Instant::now(), &mut out);
        let (text, _) = drain(&mut out);
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nretry: 3000\n\n"));
        s.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn heartbeats_keep_a_fixed_schedule_messages_or_not() {
        let t0 = Instant::now();
        let mut out = OutQueue::new();
        let mut s = Stream::open(HTTP_1_1, &opening(), t0, &mut out);
        drain(&mut out);
        assert_eq!(s.poll_timeout(), t0 + 15 * SECOND);
        let unit = SharedUnit::new(
            b"x".to_vec(),
            crate::ledger::Layout::uniform(Category::Payload, 1),
        );
        s.deliver(&unit, t0, &mut out);
        assert_eq!(
            s.poll_timeout(),
            t0 + 15 * SECOND,
            "a message moves nothing"
        );
        drain(&mut out);
        s.handle_timeout(t0 + 14 * SECOND, &mut out);
        assert!(out.is_empty(), "not due yet");
        s.handle_timeout(t0 + 15 * SECOND, &mut out);
        let (text, by) = drain(&mut out);
        assert_eq!(text, "c\r\n: heartbeat\n\r\n");
        assert_eq!(by[Category::Heartbeats.index()], 17);
        assert_eq!(s.poll_timeout(), t0 + 30 * SECOND);
        // A late wake-up does not send a burst of heartbeats.
        s.handle_timeout(t0 + 100 * SECOND, &mut out);
        assert_eq!(drain(&mut out).0.matches("heartbeat").count(), 1);
        assert!(s.poll_timeout() > t0 + 100 * SECOND);
    }

    #[test]
    fn ends_with_the_last_chunk() {
        let mut out = OutQueue::new();
        let s = Stream::open(HTTP_1_1, &opening(), Instant::now(), &mut out);
        drain(&mut out);
        s.finish(&mut out);
        assert_eq!(drain(&mut out).0, "0\r\n\r\n");
    }
}
