//! Output bytes waiting for a socket: owned or shared segments, written with one vectored write.
//!
//! A published message is encoded once per transport into an `Arc<[u8]>`; every subscriber's queue
//! holds a [`Segment::Shared`] pointing at those same bytes, so fan-out costs a reference-count
//! increment per subscriber, never a copy.
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Most slices handed to one `write_vectored` call (Linux accepts 1024; past a few dozen the gain
/// is nil).
const MAX_IOVECS: usize = 64;

/// Owned segments smaller than this are appended to rather than queued separately, so small
/// framing pieces (a comma, a CRLF) do not each cost an iovec.
const COALESCE_LIMIT: usize = 4096;

/// A run of bytes to send.
#[derive(Debug, Clone)]
pub enum Segment {
    /// Bytes made for this connection only (a response head, a JSON envelope).
    Owned(Vec<u8>),
    /// Bytes shared by every subscriber (an encoded message).
    Shared(Arc<[u8]>),
    /// Bytes built into the binary (the demo page).
    Static(&'static [u8]),
}

impl Segment {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Segment::Owned(v) => v,
            Segment::Shared(s) => s,
            Segment::Static(s) => s,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

/// A FIFO of segments with a read position in the first one.
#[derive(Debug, Default)]
pub struct OutQueue {
    segments: VecDeque<Segment>,
    /// Bytes of the front segment already written.
    front_offset: usize,
    /// Bytes queued and not yet written.
    pending: usize,
}

impl OutQueue {
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.pending
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Queues a copy of `bytes`, appending to the last owned segment when it is small.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.pending += bytes.len();
        if let Some(Segment::Owned(last)) = self.segments.back_mut()
            && last.len() < COALESCE_LIMIT
        {
            last.extend_from_slice(bytes);
            return;
        }
        self.segments.push_back(Segment::Owned(bytes.to_vec()));
    }

    /// Queues `segment` as it is (no copy for shared bytes).
    pub fn push(&mut self, segment: Segment) {
        match segment {
            Segment::Owned(v) if v.len() < COALESCE_LIMIT => self.push_bytes(&v),
            s if s.is_empty() => {}
            s => {
                self.pending += s.len();
                self.segments.push_back(s);
            }
        }
    }

    /// Writes as much as `sink` takes in one vectored write. Returns the bytes written (0 when the
    /// queue is empty); errors, `WouldBlock` included, are the sink's.
    pub fn write_to(&mut self, sink: &mut impl Write) -> io::Result<usize> {
        if self.pending == 0 {
            return Ok(0);
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (i, seg) in self.segments.iter().take(MAX_IOVECS).enumerate() {
            let bytes = seg.as_slice();
            slices[i] = IoSlice::new(if i == 0 {
                &bytes[self.front_offset..]
            } else {
                bytes
            });
            count = i + 1;
        }
        let written = sink.write_vectored(&slices[..count])?;
        self.consume(written);
        Ok(written)
    }

    fn consume(&mut self, mut n: usize) {
        self.pending -= n;
        while n > 0 {
            let Some(front) = self.segments.front() else {
                break;
            };
            let left = front.len() - self.front_offset;
            if n < left {
                self.front_offset += n;
                return;
            }
            n -= left;
            self.front_offset = 0;
            self.segments.pop_front();
        }
    }

    /// Drops every segment not yet begun, keeping a partly written front segment whole so the
    /// peer never sees half a unit (a frame, a chunk). Used to cut a slow consumer's backlog.
    pub fn drop_unstarted(&mut self) {
        let keep = usize::from(self.front_offset > 0);
        self.segments.truncate(keep);
        self.pending = self
            .segments
            .front()
            .map_or(0, |s| s.len() - self.front_offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `limit` bytes per call.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut total = 0;
            for b in bufs {
                let n = b.len().min(self.limit - total);
                self.out.extend_from_slice(&b[..n]);
                total += n;
                if total == self.limit {
                    break;
                }
            }
            Ok(total)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_everything_in_order_through_partial_writes() {
        let shared: Arc<[u8]> = Arc::from(&b"SHARED-PAYLOAD"[..]);
        let mut q = OutQueue::new();
        q.push_bytes(b"head;");
        q.push(Segment::Shared(shared.clone()));
        q.push_bytes(b";");
        q.push(Segment::Shared(shared));
        q.push_bytes(b";tail");
        let expected = b"head;SHARED-PAYLOAD;SHARED-PAYLOAD;tail";
        assert_eq!(q.len(), expected.len());
        for limit in 1..8 {
            let mut q2 = OutQueue::new();
            q2.push_bytes(b"head;");
            q2.push(Segment::Shared(Arc::from(&b"SHARED-PAYLOAD"[..])));
            q2.push_bytes(b";");
            q2.push(Segment::Shared(Arc::from(&b"SHARED-PAYLOAD"[..])));
            q2.push_bytes(b";tail");
            let mut sink = Trickle { out: vec![], limit };
            while !q2.is_empty() {
                q2.write_to(&mut sink).unwrap();
            }
            assert_eq!(sink.out, expected, "limit {limit}");
        }
        let mut sink = Trickle {
            out: vec![],
            limit: 1 << 20,
        };
        q.write_to(&mut sink).unwrap();
        assert_eq!(sink.out, expected);
        assert!(q.is_empty());
    }

    #[test]
    fn drops_only_unstarted_segments() {
        let mut q = OutQueue::new();
        q.push(Segment::Shared(Arc::from(vec![1u8; 5000])));
        q.push(Segment::Shared(Arc::from(vec![2u8; 5000])));
        let mut sink = Trickle {
            out: vec![],
            limit: 100,
        };
        q.write_to(&mut sink).unwrap();
        q.drop_unstarted();
        assert_eq!(q.len(), 4900);
        let mut q = OutQueue::new();
        q.push_bytes(b"abc");
        q.drop_unstarted();
        assert!(q.is_empty());
    }

    #[test]
    fn shared_segments_are_not_copied() {
        let shared: Arc<[u8]> = Arc::from(vec![1u8; 10_000]);
        let mut q = OutQueue::new();
        q.push(Segment::Shared(shared.clone()));
        assert_eq!(Arc::strong_count(&shared), 2);
    }
}
