//! A published message and the per-transport encodings the transports cache on it.
use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

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
pub struct Message {
    pub id: u64,
    /// The published text, unchanged.
    pub data: Box<str>,
    /// When it was published (the publisher's loop time): deliveries measure latency from here.
    pub published_at: Instant,
    encoded: [OnceLock<Arc<dyn Any + Send + Sync>>; ENCODINGS],
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl Message {
    pub fn new(id: u64, data: Box<str>, published_at: Instant) -> Message {
        Message {
            id,
            data,
            published_at,
            encoded: Default::default(),
        }
    }

    /// The message in encoding `which`, made by `encode` the first time it is asked for. The hub
    /// does not know what an encoding is (bytes, bytes with their layout…): each slot holds the
    /// one type its transport puts there.
    pub fn encoded<T: Any + Send + Sync>(
        &self,
        which: Encoding,
        encode: impl Fn(&Message) -> T,
    ) -> Arc<T> {
        let slot = self.encoded[which as usize].get_or_init(|| Arc::new(encode(self)));
        match slot.clone().downcast::<T>() {
            Ok(value) => value,
            // Two types for one slot is a bug in this crate, never an effect of input; answer
            // correctly (encode again) rather than fail.
            Err(_) => Arc::new(encode(self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_once_and_shares() {
        let m = Message::new(1, "hi".into(), Instant::now());
        let calls = std::cell::Cell::new(0);
        let a = m.encoded(Encoding::Json, |_| {
            calls.set(calls.get() + 1);
            b"one".to_vec()
        });
        let b = m.encoded(Encoding::Json, |_| {
            calls.set(calls.get() + 1);
            b"two".to_vec()
        });
        assert_eq!(calls.get(), 1);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*m.encoded(Encoding::WsFrame, |_| b"ws".to_vec()), b"ws");
    }
}
