//! Output bytes waiting for a socket: owned or shared segments, each with the [`Layout`] that says
//! what its bytes are for, written with one vectored write.
//!
//! A published message is encoded once per transport into a [`SharedUnit`]; every subscriber's
//! queue holds a [`Segment::Shared`] pointing at those same bytes, so fan-out costs a
//! reference-count increment per subscriber, never a copy. When a write takes bytes out of the
//! queue, their categories (and the publish time of any delivery whose first byte just left) are
//! reported in a [`WriteReport`] for the ledger.
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::time::Instant;

use crate::ledger::{ByCategory, Category, Layout};

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

/// An encoded unit shared by every subscriber: its bytes and what they are.
#[derive(Debug, Clone)]
pub struct SharedUnit {
    pub bytes: Arc<[u8]>,
    pub layout: Layout,
}

impl SharedUnit {
    pub fn new(bytes: Vec<u8>, layout: Layout) -> SharedUnit {
        debug_assert_eq!(
            layout.len(),
            bytes.len(),
            "a layout covers its unit exactly"
        );
        SharedUnit {
            bytes: bytes.into(),
            layout,
        }
    }
}

/// A piece of a response body: bytes made for this answer, or a shared message unit.
#[derive(Debug, Clone)]
pub enum Part {
    /// Bytes made for this answer, all of one category (`{"last_id":…`, commas).
    Owned(Vec<u8>, Category),
    /// A message's shared encoding and when the message was published (for latency).
    Delivery(Arc<SharedUnit>, Instant),
}

impl Part {
    pub fn len(&self) -> usize {
        match self {
            Part::Owned(bytes, _) => bytes.len(),
            Part::Delivery(unit, _) => unit.bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one or more writes took out of a queue.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Bytes written, by category.
    pub by_category: ByCategory,
    /// Publish times of the deliveries whose first byte was written.
    pub delivered: Vec<Instant>,
    /// `write` calls made (successful or not).
    pub syscalls: u64,
    /// When set, a copy of every byte written (for traces).
    pub tap: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Entry {
    segment: Segment,
    layout: Layout,
    /// Publish time of the message this entry delivers, reported when its first byte is written.
    stamp: Option<Instant>,
}

/// A FIFO of segments with a read position in the first one.
#[derive(Debug, Default)]
pub struct OutQueue {
    entries: VecDeque<Entry>,
    /// Bytes of the front entry already written.
    front_offset: usize,
    /// Bytes queued and not yet written.
    pending: usize,
    /// Heap bytes the entries hold (see [`OutQueue::memory`]).
    heap: usize,
}

/// Bytes an [`Arc`] allocation holds besides its data (the two reference counts).
const ARC_HEADER: usize = 2 * std::mem::size_of::<usize>();

/// Queues emptied with more room than this many entries give it back.
const IDLE_ENTRY_CAPACITY: usize = 64;

/// The heap bytes one segment holds: an owned buffer's capacity; a shared unit's bytes and counts,
/// in full in every queue (a slow reader may hold the last reference); nothing for static bytes.
fn heap_cost(segment: &Segment) -> usize {
    match segment {
        Segment::Owned(v) => v.capacity(),
        Segment::Shared(s) => s.len() + ARC_HEADER,
        Segment::Static(_) => 0,
    }
}

impl OutQueue {
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.pending
    }

    /// The memory this queue holds, entries and bytes: what `--max-pending-output` bounds (a
    /// stream of 1-byte messages queues few wire bytes but an entry per message).
    pub fn memory(&self) -> usize {
        self.entries.len() * std::mem::size_of::<Entry>() + self.heap
    }

    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Queues a copy of `bytes`, all of `category`, appending to the last owned segment when it is
    /// small.
    pub fn push_bytes(&mut self, bytes: &[u8], category: Category) {
        self.push_bytes_with(bytes, Layout::uniform(category, bytes.len()));
    }

    /// Queues a copy of `bytes` laid out as `layout`.
    pub fn push_bytes_with(&mut self, bytes: &[u8], layout: Layout) {
        if bytes.is_empty() {
            return;
        }
        debug_assert_eq!(
            layout.len(),
            bytes.len(),
            "a layout covers its bytes exactly"
        );
        if let Some(Entry {
            segment: Segment::Owned(last),
            layout: last_layout,
            ..
        }) = self.entries.back_mut()
            && last.len() < COALESCE_LIMIT
            && last_layout.try_extend(&layout)
        {
            self.heap -= last.capacity();
            last.extend_from_slice(bytes);
            self.heap += last.capacity();
            self.pending += bytes.len();
            return;
        }
        self.push_entry(Segment::Owned(bytes.to_vec()), layout, None);
    }

    /// Queues `segment` as it is (no copy for shared or static bytes).
    pub fn push(&mut self, segment: Segment, layout: Layout) {
        match segment {
            Segment::Owned(v) if v.len() < COALESCE_LIMIT => self.push_bytes_with(&v, layout),
            s => self.push_entry(s, layout, None),
        }
    }

    /// Queues a shared unit that delivers a message published at `published_at`.
    pub fn push_delivery(&mut self, unit: &SharedUnit, published_at: Instant) {
        self.push_entry(
            Segment::Shared(unit.bytes.clone()),
            unit.layout,
            Some(published_at),
        );
    }

    /// Queues a body part: a copy of owned bytes, or the shared unit itself.
    pub fn push_part(&mut self, part: Part) {
        match part {
            Part::Owned(bytes, category) => {
                let layout = Layout::uniform(category, bytes.len());
                self.push(Segment::Owned(bytes), layout);
            }
            Part::Delivery(unit, published_at) => self.push_delivery(&unit, published_at),
        }
    }

    /// Queues a copy of `bytes` framed as one HTTP chunk (`size CRLF bytes CRLF`) when `chunked`,
    /// the framing counted as [`Category::ChunkFraming`] and the bytes as `category`; bare
    /// otherwise (an HTTP/1.0 stream delimited by close).
    pub fn push_framed(&mut self, bytes: &[u8], category: Category, chunked: bool) {
        if !chunked {
            self.push_bytes(bytes, category);
            return;
        }
        let (framed, layout) = crate::http1::chunked::encode_chunk_with_layout(
            bytes,
            Layout::uniform(category, bytes.len()),
        );
        self.push_bytes_with(&framed, layout);
    }

    fn push_entry(&mut self, segment: Segment, layout: Layout, stamp: Option<Instant>) {
        if segment.is_empty() {
            return;
        }
        debug_assert_eq!(
            layout.len(),
            segment.len(),
            "a layout covers its segment exactly"
        );
        self.pending += segment.len();
        self.heap += heap_cost(&segment);
        self.entries.push_back(Entry {
            segment,
            layout,
            stamp,
        });
    }

    /// Writes as much as `sink` takes in one vectored write, adding what left to `report`.
    /// Returns the bytes written (0 when the queue is empty); errors, `WouldBlock` included, are
    /// the sink's.
    pub fn write_to(
        &mut self,
        sink: &mut impl Write,
        report: &mut WriteReport,
    ) -> io::Result<usize> {
        if self.pending == 0 {
            return Ok(0);
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (i, entry) in self.entries.iter().take(MAX_IOVECS).enumerate() {
            let bytes = entry.segment.as_slice();
            slices[i] = IoSlice::new(if i == 0 {
                &bytes[self.front_offset..]
            } else {
                bytes
            });
            count = i + 1;
        }
        report.syscalls += 1;
        let written = sink.write_vectored(&slices[..count])?;
        if let Some(tap) = &mut report.tap {
            let mut left = written;
            for slice in &slices[..count] {
                let take = left.min(slice.len());
                tap.extend_from_slice(&slice[..take]);
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        self.consume(written, report);
        Ok(written)
    }

    fn consume(&mut self, mut n: usize, report: &mut WriteReport) {
        self.pending -= n;
        while n > 0 {
            let Some(front) = self.entries.front() else {
                break;
            };
            if self.front_offset == 0
                && let Some(stamp) = front.stamp
            {
                report.delivered.push(stamp);
            }
            let left = front.segment.len() - self.front_offset;
            let take = n.min(left);
            front
                .layout
                .attribute(self.front_offset, take, |category, k| {
                    report.by_category[category.index()] += k as u64;
                });
            n -= take;
            if take < left {
                self.front_offset += take;
                return;
            }
            self.front_offset = 0;
            if let Some(done) = self.entries.pop_front() {
                self.heap -= heap_cost(&done.segment);
            }
        }
        self.trim();
    }

    /// Gives back the room of a queue that grew for a backlog, once it is empty.
    fn trim(&mut self) {
        if self.entries.is_empty() && self.entries.capacity() > IDLE_ENTRY_CAPACITY {
            self.entries = VecDeque::new();
        }
    }

    /// Drops every entry not yet begun, keeping a partly written front entry whole so the peer
    /// never sees half a unit (a frame, a chunk). Used to cut a slow consumer's backlog.
    pub fn drop_unstarted(&mut self) {
        let keep = usize::from(self.front_offset > 0);
        self.entries.truncate(keep);
        self.pending = self
            .entries
            .front()
            .map_or(0, |e| e.segment.len() - self.front_offset);
        self.heap = self.entries.iter().map(|e| heap_cost(&e.segment)).sum();
        self.entries.shrink_to(IDLE_ENTRY_CAPACITY);
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

    fn unit(bytes: &[u8]) -> SharedUnit {
        SharedUnit::new(
            bytes.to_vec(),
            Layout::from_runs(&[
                (Category::WsFrameHeader, 2),
                (Category::Payload, bytes.len() - 2),
            ]),
        )
    }

    fn filled_queue(published: Instant) -> OutQueue {
        let mut q = OutQueue::new();
        q.push_bytes(b"head;", Category::ResponseHead);
        q.push_delivery(&unit(b"SHARED-PAYLOAD"), published);
        q.push_bytes(b";", Category::JsonEnvelope);
        q.push_delivery(&unit(b"SHARED-PAYLOAD"), published);
        q.push_bytes(b";tail", Category::JsonEnvelope);
        q
    }

    #[test]
    fn writes_everything_in_order_and_attributes_every_byte() {
        let expected = b"head;SHARED-PAYLOAD;SHARED-PAYLOAD;tail";
        let t = Instant::now();
        for limit in 1..8 {
            let mut q = filled_queue(t);
            assert_eq!(q.len(), expected.len());
            let mut sink = Trickle { out: vec![], limit };
            let mut report = WriteReport::default();
            while !q.is_empty() {
                q.write_to(&mut sink, &mut report).unwrap();
            }
            assert_eq!(sink.out, expected, "limit {limit}");
            let by = report.by_category;
            assert_eq!(by[Category::ResponseHead.index()], 5);
            assert_eq!(by[Category::JsonEnvelope.index()], 6);
            assert_eq!(by[Category::WsFrameHeader.index()], 4);
            assert_eq!(by[Category::Payload.index()], 24);
            assert_eq!(by.iter().sum::<u64>(), expected.len() as u64);
            assert_eq!(report.delivered, [t, t], "limit {limit}");
        }
    }

    #[test]
    fn drops_only_unstarted_segments() {
        let mut q = OutQueue::new();
        let big = SharedUnit::new(vec![1u8; 5000], Layout::uniform(Category::Payload, 5000));
        q.push_delivery(&big, Instant::now());
        q.push_delivery(&big, Instant::now());
        let mut sink = Trickle {
            out: vec![],
            limit: 100,
        };
        q.write_to(&mut sink, &mut WriteReport::default()).unwrap();
        q.drop_unstarted();
        assert_eq!(q.len(), 4900);
        let mut q = OutQueue::new();
        q.push_bytes(b"abc", Category::Other);
        q.drop_unstarted();
        assert!(q.is_empty());
    }

    /// A sink that takes everything and remembers how many non-empty slices each call had.
    #[derive(Default)]
    struct Counting {
        out: Vec<u8>,
        slices: Vec<usize>,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.slices
                .push(bufs.iter().filter(|b| !b.is_empty()).count());
            let before = self.out.len();
            for b in bufs {
                self.out.extend_from_slice(b);
            }
            Ok(self.out.len() - before)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Writes the whole queue in one call; returns the bytes and the slices used.
    fn write_once(mut q: OutQueue) -> (Vec<u8>, usize, WriteReport) {
        let mut sink = Counting::default();
        let mut report = WriteReport::default();
        let len = q.len();
        assert_eq!(q.write_to(&mut sink, &mut report).unwrap(), len);
        assert!(q.is_empty());
        (sink.out, sink.slices[0], report)
    }

    #[test]
    fn small_owned_pieces_share_one_slice() {
        let mut q = OutQueue::new();
        q.push_bytes(b"ab", Category::ResponseHead);
        q.push_bytes(b"cd", Category::JsonEnvelope);
        q.push(
            Segment::Owned(b"ef".to_vec()),
            Layout::uniform(Category::Other, 2),
        );
        assert_eq!(q.len(), 6);
        let (out, slices, report) = write_once(q);
        assert_eq!((out.as_slice(), slices), (&b"abcdef"[..], 1));
        assert_eq!(report.syscalls, 1);
        assert_eq!(report.by_category[Category::JsonEnvelope.index()], 2);
        assert_eq!(report.by_category[Category::Other.index()], 2);
    }

    #[test]
    fn pieces_of_the_coalescing_limit_get_their_own_slice() {
        // Appending stops once the last piece has reached the limit.
        let mut q = OutQueue::new();
        q.push_bytes(&[b'a'; COALESCE_LIMIT], Category::Other);
        q.push_bytes(b"b", Category::Other);
        assert_eq!(q.len(), COALESCE_LIMIT + 1);
        assert_eq!(write_once(q).1, 2);
        // A large owned segment is queued as it is, not appended to a small one.
        let mut q = OutQueue::new();
        q.push_bytes(b"ab", Category::ResponseHead);
        q.push(
            Segment::Owned(vec![b'c'; COALESCE_LIMIT]),
            Layout::uniform(Category::Other, COALESCE_LIMIT),
        );
        assert_eq!(write_once(q).1, 2);
    }

    #[test]
    fn static_segments_are_queued() {
        let mut q = OutQueue::new();
        q.push(
            Segment::Static(b"static"),
            Layout::uniform(Category::Other, 6),
        );
        assert_eq!(q.len(), 6);
        assert_eq!(write_once(q).0, b"static");
    }

    #[test]
    fn empty_segments_and_deliveries_are_not_queued() {
        assert!(Segment::Owned(Vec::new()).is_empty());
        assert!(!Segment::Static(b"x").is_empty());
        let mut q = OutQueue::new();
        let empty = SharedUnit::new(Vec::new(), Layout::from_runs(&[]));
        q.push_delivery(&empty, Instant::now());
        assert!(q.is_empty());
        q.push_bytes(b"x", Category::Other);
        let (_, _, report) = write_once(q);
        assert!(
            report.delivered.is_empty(),
            "an empty unit delivers nothing"
        );
    }

    #[test]
    fn the_tap_copies_exactly_what_was_written() {
        let expected = b"head;SHARED-PAYLOAD;SHARED-PAYLOAD;tail";
        for limit in 1..=expected.len() {
            let mut q = filled_queue(Instant::now());
            let mut sink = Trickle { out: vec![], limit };
            let mut report = WriteReport {
                tap: Some(Vec::new()),
                ..WriteReport::default()
            };
            let mut calls = 0;
            while !q.is_empty() {
                q.write_to(&mut sink, &mut report).unwrap();
                calls += 1;
                assert_eq!(report.tap.as_deref(), Some(&sink.out[..]), "limit {limit}");
            }
            assert_eq!(report.syscalls, calls);
        }
    }

    #[test]
    fn shared_segments_are_not_copied() {
        let shared = SharedUnit::new(
            vec![1u8; 10_000],
            Layout::uniform(Category::Payload, 10_000),
        );
        let mut q = OutQueue::new();
        q.push_delivery(&shared, Instant::now());
        assert_eq!(Arc::strong_count(&shared.bytes), 2);
    }

    #[test]
    fn memory_charges_every_entry_and_comes_back_when_written() {
        let (mut q, now) = (OutQueue::new(), Instant::now());
        let unit = SharedUnit::new(b"x".to_vec(), Layout::uniform(Category::Payload, 1));
        for _ in 0..1000 {
            q.push_delivery(&unit, now);
            q.push_bytes(b",", Category::JsonEnvelope);
        }
        let per_entry = std::mem::size_of::<Entry>();
        assert!(q.memory() >= 2000 * per_entry + 1000 * (1 + ARC_HEADER));
        let mut sink = Trickle {
            out: Vec::new(),
            limit: 1000,
        };
        while !q.is_empty() {
            q.write_to(&mut sink, &mut WriteReport::default()).unwrap();
        }
        assert_eq!(q.memory(), 0);
        assert!(q.entries.capacity() <= IDLE_ENTRY_CAPACITY);
        // Coalesced owned bytes are charged their buffer's capacity, once.
        q.push_bytes(b"abc", Category::Other);
        q.push_bytes(b"def", Category::Other);
        assert_eq!(q.memory(), per_entry + heap_cost(&q.entries[0].segment));
        q.push_delivery(&unit, now);
        q.drop_unstarted();
        assert_eq!(q.memory(), 0);
    }
}
