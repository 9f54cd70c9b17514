//! A published message and the per-transport encodings the transports cache on it.
use std::sync::{Arc, OnceLock};

/// The wire encodings a message is turned into. Each is computed at most once per message, by the
/// first subscriber that needs it, and shared by all the others: fan-out to N subscribers is one
/// encode and N reference-count increments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The JSON object `{"id":N,"data":"…"}` (poll and long-poll bodies, WebSocket payloads).
    Json,
    /// An SSE event inside one HTTP chunk (HTTP/1.1 streams).
    SseChunk,
    /// An SSE event without chunk framing (HTTP/1.0 streams, delimited by close).
    SseEvent,
    /// A complete WebSocket text frame carrying the JSON object.
    WsFrame,
}

const ENCODINGS: usize = 4;

/// One message of a channel.
#[derive(Debug)]
pub struct Message {
    pub id: u64,
    /// The published text, unchanged.
    pub data: Box<str>,
    encoded: [OnceLock<Arc<[u8]>>; ENCODINGS],
}

impl Message {
    pub fn new(id: u64, data: Box<str>) -> Message {
        Message {
            id,
            data,
            encoded: Default::default(),
        }
    }

    /// The message in encoding `which`, made by `encode` the first time it is asked for.
    pub fn encoded(&self, which: Encoding, encode: impl FnOnce(&Message) -> Vec<u8>) -> Arc<[u8]> {
        self.encoded[which as usize]
            .get_or_init(|| encode(self).into())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_once_and_shares() {
        let m = Message::new(1, "hi".into());
        let mut calls = 0;
        let a = m.encoded(Encoding::Json, |_| {
            calls += 1;
            b"one".to_vec()
        });
        let b = m.encoded(Encoding::Json, |_| {
            calls += 1;
            b"two".to_vec()
        });
        assert_eq!(calls, 1);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*m.encoded(Encoding::WsFrame, |_| b"ws".to_vec()), b"ws");
    }
}
