//! One client as the application sees it: the bytes it sent and not yet consumed, the bytes
//! waiting for it, the session that speaks with it, and what its bytes count as. No socket: the
//! driver moves bytes between the socket and these buffers.
use super::session::Session;
use crate::ledger::Transport;
use crate::outbuf::OutQueue;
use crate::trace::{Direction, Dissector, Unit};

/// Input capacity an idle connection may keep; a larger buffer is freed once empty.
const IDLE_INPUT_CAPACITY: usize = 4 * 1024;

/// Bytes read and not yet consumed. Consuming moves a start offset instead of the bytes, so a read
/// holding many pipelined requests or small frames is not shifted once per unit; the bytes move
/// only when new input arrives behind a consumed half.
#[derive(Debug, Default)]
pub(crate) struct InBuf {
    bytes: Vec<u8>,
    start: usize,
}

impl InBuf {
    /// Drops the first `n` unconsumed bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.bytes.len());
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    /// [`InBuf::consume`], handing the bytes to the received-side dissector first, when tracing
    /// (see [`Client::consume_input`]; this form leaves the session free to borrow).
    pub(crate) fn consume_traced(
        &mut self,
        n: usize,
        dissectors: &mut Option<Box<(Dissector, Dissector)>>,
        traced: &mut Vec<(Direction, Unit)>,
    ) {
        if let Some(pair) = dissectors {
            let mut units = Vec::new();
            pair.0.feed(&self[..n.min(self.len())], &mut units);
            traced.extend(units.into_iter().map(|unit| (Direction::Received, unit)));
        }
        self.consume(n);
    }

    /// Appends bytes read from the socket.
    pub(crate) fn extend(&mut self, fresh: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(fresh);
    }

    /// Gives back a buffer that grew for a large request once it is empty again.
    pub(crate) fn trim(&mut self) {
        if self.is_empty() && self.bytes.capacity() > IDLE_INPUT_CAPACITY {
            self.bytes = Vec::new();
        }
    }
}

impl std::ops::Deref for InBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

pub(crate) struct Client {
    /// Unique for the life of the process (the driver's table reuses its keys): what traces and
    /// logs call it.
    pub id: u64,
    pub input: InBuf,
    pub output: OutQueue,
    /// The protocol core that speaks with the client now.
    pub session: Session,
    /// The transport the client's current request belongs to (for the ledger).
    pub transport: Transport,
    /// Transports already counted as a connection of theirs (bit per transport).
    pub counted_transports: u8,
    /// `read` calls made and not yet attributed to a transport.
    pub unattributed_reads: u64,
    /// The channel the current request serves (for trace filters).
    pub channel: Option<Box<str>>,
    /// Received and sent stream dissectors, while tracing is on.
    pub dissectors: Option<Box<(Dissector, Dissector)>>,
    /// Units the dissectors completed, waiting to become trace records.
    pub traced: Vec<(Direction, Unit)>,
    /// The client connected from a loopback address (the admin endpoints answer it).
    pub loopback_peer: bool,
    /// The id of the last channel message queued on this client's stream, by its replay or
    /// live: a fan-out that reaches it later (it waited in the loop's inbox) is not sent again.
    pub last_id: u64,
    /// A stream's replay is still under way, after `last_id` (see `replay`).
    pub replaying: bool,
}

impl Client {
    pub(crate) fn new(id: u64, session: Session) -> Client {
        Client {
            id,
            input: InBuf::default(),
            output: OutQueue::new(),
            session,
            transport: Transport::Other,
            counted_transports: 0,
            unattributed_reads: 0,
            channel: None,
            dissectors: None,
            traced: Vec::new(),
            loopback_peer: false,
            last_id: 0,
            replaying: false,
        }
    }

    /// Hands bytes that crossed the socket to the dissector of their direction, if tracing.
    pub(crate) fn dissect(&mut self, direction: Direction, bytes: &[u8]) {
        let Some(pair) = &mut self.dissectors else {
            return;
        };
        let mut units = Vec::new();
        match direction {
            Direction::Received => pair.0.feed(bytes, &mut units),
            Direction::Sent => pair.1.feed(bytes, &mut units),
        }
        self.traced
            .extend(units.into_iter().map(|unit| (direction, unit)));
    }

    /// A session consumed `n` bytes of input: they leave the buffer, and the received-side
    /// dissector (when tracing) sees them as the wire units they were. Input a session ignores
    /// is consumed with [`InBuf::consume`] and never traced.
    pub(crate) fn consume_input(&mut self, n: usize) {
        self.input
            .consume_traced(n, &mut self.dissectors, &mut self.traced);
    }
}
