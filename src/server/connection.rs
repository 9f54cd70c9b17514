//! One client connection as the driver sees it: its socket, buffers, readiness and the session
//! (the protocol core) that speaks on it.
use std::io::{self, Read};
use std::time::Instant;

use mio::Interest;
use mio::net::TcpStream;

use super::session::Session;
use crate::ledger::Transport;
use crate::outbuf::{OutQueue, WriteReport};
use crate::trace::{Direction, Dissector, UnitKind};

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

    /// Appends bytes read from the socket.
    pub(crate) fn extend(&mut self, fresh: &[u8]) {
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(fresh);
    }

    /// Gives back a buffer that grew for a large request once it is empty again.
    fn trim(&mut self) {
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

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Read this many bytes (possibly 0 when not readable or the buffer is full).
    Read(usize),
    /// The peer shut its side (read returned 0).
    Eof,
}

pub(crate) struct Connection {
    pub socket: TcpStream,
    /// Unique for the life of the process (slab keys are reused): what traces call it.
    pub id: u64,
    pub input: InBuf,
    pub output: OutQueue,
    /// The protocol core that speaks on this connection now.
    pub session: Session,
    /// mio reported readable and no `WouldBlock` has been seen since (edge-triggered readiness).
    pub readable: bool,
    /// mio reported writable and no `WouldBlock` has been seen since.
    pub writable: bool,
    /// The peer has shut its side of the connection.
    pub peer_closed: bool,
    /// The interest currently registered with mio.
    pub registered: Interest,
    /// The deadline currently in the timer queue.
    pub deadline: Option<Instant>,
    /// The transport the connection's current request belongs to (for the ledger).
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
    pub traced: Vec<(Direction, UnitKind, Vec<u8>)>,
}

impl Connection {
    pub(crate) fn new(socket: TcpStream, id: u64, session: Session) -> Connection {
        Connection {
            socket,
            id,
            input: InBuf::default(),
            output: OutQueue::new(),
            session,
            readable: true,
            writable: true,
            peer_closed: false,
            registered: Interest::READABLE,
            deadline: None,
            transport: Transport::Other,
            counted_transports: 0,
            unattributed_reads: 0,
            channel: None,
            dissectors: None,
            traced: Vec::new(),
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
            .extend(units.into_iter().map(|(kind, b)| (direction, kind, b)));
    }

    /// Reads while the socket has data and the input buffer is under `cap`. Reads land in the
    /// loop's one `scratch` buffer and only the bytes received are copied to the connection, so an
    /// idle connection holds no read buffer of its own.
    pub(crate) fn fill_input(&mut self, cap: usize, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        let mut total = 0;
        while self.readable && !self.peer_closed && self.input.len() < cap {
            let room = (cap - self.input.len()).min(scratch.len());
            self.unattributed_reads += 1;
            let n = match self.socket.read(&mut scratch[..room]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.peer_closed = true;
                self.readable = false;
                return Ok(ReadOutcome::Eof);
            }
            let fresh = &scratch[..n];
            if self.dissectors.is_some() {
                self.dissect(Direction::Received, fresh);
            }
            if !self.session.is_closing() {
                // A closing connection reads only to drain the peer.
                self.input.extend(fresh);
            }
            total += n;
        }
        Ok(ReadOutcome::Read(total))
    }

    /// Gives back an input buffer that grew for a large request once it is empty again.
    pub(crate) fn trim_input(&mut self) {
        self.input.trim();
    }

    /// Writes queued output until the socket would block or the queue is empty, reporting what
    /// left in `report`.
    pub(crate) fn flush(&mut self, report: &mut WriteReport) -> io::Result<usize> {
        let mut total = 0;
        while self.writable && !self.output.is_empty() {
            match self.output.write_to(&mut self.socket, report) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// The interest the connection needs now, derived from its state (never set piecemeal).
    pub(crate) fn wanted_interest(&self, input_cap: usize) -> Interest {
        let read = !self.peer_closed && self.input.len() < input_cap;
        match (read, !self.output.is_empty()) {
            (_, false) => Interest::READABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
        }
    }
}
