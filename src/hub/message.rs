//! A published message, with a slot for what the transports derive from it.
use std::time::Instant;

/// One message of a channel. `C` is what the transports keep beside it (the server keeps each
/// transport's encoding there, made once and shared: see `delivery`); the hub never looks inside.
pub struct Message<C = ()> {
    /// Position in its channel: 1, 2, 3… in publish order; a resume asks for what came after an id.
    pub id: u64,
    /// The published text, unchanged.
    pub data: Box<str>,
    /// When it was published (the publisher's loop time): deliveries measure latency from here.
    pub published_at: Instant,
    /// The transports' slot, empty (`C::default()`) when the message is published.
    pub cache: C,
}

impl<C> std::fmt::Debug for Message<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl<C: Default> Message<C> {
    /// A message with an empty transport slot; `published_at` is the caller's loop time.
    pub fn new(id: u64, data: Box<str>, published_at: Instant) -> Message<C> {
        Message {
            id,
            data,
            published_at,
            cache: C::default(),
        }
    }
}
