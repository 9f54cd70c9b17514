//! One client connection as the driver sees it: its socket, readiness, registered interest and
//! deadline, around the [`Client`] the application works with.
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;

use mio::Interest;
use mio::net::TcpStream;

use crate::app::Client;
use crate::outbuf::WriteReport;

/// Why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Read this many bytes (possibly 0 when not readable or the buffer is full).
    Read(usize),
    /// The peer shut its side (read returned 0).
    Eof,
}

/// A client's socket and what the driver knows of it: readiness, interest, deadline.
pub(crate) struct Connection {
    pub socket: TcpStream,
    /// mio reported readable and no `WouldBlock` has been seen since (edge-triggered readiness).
    pub readable: bool,
    /// mio reported writable and no `WouldBlock` has been seen since.
    pub writable: bool,
    /// The peer has shut its side of the connection.
    pub peer_closed: bool,
    /// The poller said the peer shut its side: reading goes on to the end of the stream (a
    /// short read is not taken to mean "nothing more", see `fill_input`).
    pub read_closed: bool,
    /// The interest currently registered with mio.
    pub registered: Interest,
    /// When a write last carried bytes, in µs of the loop's clock (wrapping): a message fanned
    /// out sooner than the coalescing window after it waits to share the next write.
    pub last_write_us: u32,
    /// Everything else: buffers, session, accounting.
    pub client: Client,
}

impl Connection {
    pub(crate) fn new(socket: TcpStream, client: Client) -> Connection {
        Connection {
            socket,
            readable: true,
            writable: true,
            peer_closed: false,
            read_closed: false,
            registered: Interest::READABLE,
            last_write_us: 0,
            client,
        }
    }

    /// Reads while the socket has data and the input buffer is under `cap`, and at most `cap`
    /// bytes per call (a closing connection drains without keeping its input, so its buffer never
    /// fills: a peer sending fast must not hold the loop). Reads land in the loop's one `scratch`
    /// buffer and only the bytes received are copied to the connection, so an idle connection
    /// holds no read buffer of its own.
    pub(crate) fn fill_input(&mut self, cap: usize, scratch: &mut [u8]) -> io::Result<ReadOutcome> {
        let mut total = 0;
        while self.readable && !self.peer_closed && self.client.input.len() < cap && total < cap {
            let room = (cap - self.client.input.len()).min(scratch.len());
            self.client.unattributed_reads += 1;
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
            let drained = n < room;
            let fresh = &scratch[..n];
            // Traced when a session consumes them (`Client::consume_input`), not as read.
            if !self.client.session.is_closing() {
                // A closing connection reads only to drain the peer.
                self.client.input.extend(fresh);
            }
            total += n;
            if drained && !self.read_closed {
                // A short read emptied the socket's buffer: asking again would only return
                // `WouldBlock` (one wasted call per request). The poller reports the next bytes
                // that arrive as a new edge; a FIN already reported (`read_closed`) would not be,
                // so then reading goes on to the end.
                self.readable = false;
                break;
            }
        }
        Ok(ReadOutcome::Read(total))
    }

    /// Gives back an input buffer that grew for a large request once it is empty again.
    pub(crate) fn trim_input(&mut self) {
        self.client.input.trim();
    }

    /// Writes queued output until the socket would block or the queue is empty, reporting what
    /// left in `report`.
    pub(crate) fn flush(&mut self, report: &mut WriteReport) -> io::Result<usize> {
        let mut total = 0;
        while self.writable && !self.client.output.is_empty() {
            match self
                .client
                .output
                .write_to(&mut SendSink(&self.socket), report)
            {
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
        let read = !self.peer_closed && self.client.input.len() < input_cap;
        match (read, !self.client.output.is_empty()) {
            (_, false) => Interest::READABLE,
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (false, true) => Interest::WRITABLE,
        }
    }
}

/// Writes to a socket with `send` and `sendmsg` instead of `write` and `writev`. A socket needs
/// none of what the file layer does on the way to it (`writev` goes through `vfs_writev`: the
/// file-position lock, permission and fsnotify hooks), and in a `perf` profile of 1 000
/// WebSocket subscribers that path cost 765 ns of kernel time per delivery where `send` costs
/// 164, about 8 % of the server's CPU (BENCHMARKS.md, "send, not writev"). Both calls pass
/// `MSG_NOSIGNAL`: a peer that has gone away is an `EPIPE` error for its connection, never a
/// signal for the process.
pub(super) struct SendSink<'a>(pub(super) &'a TcpStream);

impl Write for SendSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The standard library writes a socket with `send(…, MSG_NOSIGNAL)`.
        (&mut &*self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if let [one] = bufs {
            return self.write(one);
        }
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (its documented guarantee),
        // the slices outlive the call, and `sendmsg` only reads them; an all-zero `msghdr` is a
        // valid one with no address and no control data.
        let sent = unsafe {
            let mut message: libc::msghdr = std::mem::zeroed();
            message.msg_iov = bufs.as_ptr().cast_mut().cast::<libc::iovec>();
            message.msg_iovlen = bufs.len() as _;
            libc::sendmsg(self.0.as_raw_fd(), &message, libc::MSG_NOSIGNAL)
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
