//! Output bytes waiting for a socket: owned or shared segments, each with the [`Layout`] that says
//! what its bytes are for, written with one write call per flush (plain for one segment or a
//! small copy of several, vectored for more).
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

/// Queued output up to this size goes out in one plain write of a copy rather than a vectored
/// write of the pieces.
const GATHER_LIMIT: usize = 1024;

/// A run of bytes to send.
#[derive(Debug, Clone)]
pub enum Segment {
    /// Bytes made for this connection only (a response head, a refusal, a control frame).
    Owned(Vec<u8>),
    /// Bytes shared among connections (an encoded message, a long-poll answer's envelope or head).
    Shared(Arc<[u8]>),
    /// Bytes built into the binary (the demo page).
    Static(&'static [u8]),
}

impl Segment {
    /// The segment's bytes, whichever owner holds them.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Segment::Owned(v) => v,
            Segment::Shared(s) => s,
            Segment::Static(s) => s,
        }
    }

    /// Bytes in the segment, counted from its start (not from a queue's write position).
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether the segment holds no bytes; empty segments are never queued.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

/// An encoded unit shared by every subscriber: its bytes and what they are.
#[derive(Debug, Clone)]
pub struct SharedUnit {
    /// The encoding, one allocation shared by every queue that holds it.
    pub bytes: Arc<[u8]>,
    /// What each byte of `bytes` is for; it covers `bytes` exactly.
    pub layout: Layout,
}

impl SharedUnit {
    /// Freezes `bytes` for sharing; `layout` must cover them exactly (checked in debug builds).
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
    /// Bytes made once and shared by the answers one fan-out gives to the polls waiting after
    /// the same id, all of one category (`{"last_id":…`).
    Shared(Arc<[u8]>, Category),
    /// Fixed syntax built into the binary, all of one category (a comma, `]}`): no allocation.
    Static(&'static [u8], Category),
    /// A message's shared encoding and when the message was published (for latency).
    Delivery(Arc<SharedUnit>, Instant),
}

impl Part {
    /// Bytes the part adds to the body: its share of the `Content-Length`.
    pub fn len(&self) -> usize {
        match self {
            Part::Shared(bytes, _) => bytes.len(),
            Part::Static(bytes, _) => bytes.len(),
            Part::Delivery(unit, _) => unit.bytes.len(),
        }
    }

    /// Whether the part adds no bytes to the body.
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

impl WriteReport {
    /// Empties the report for the next write, keeping the room its lists have grown.
    pub fn clear(&mut self) {
        self.by_category = ByCategory::default();
        self.delivered.clear();
        self.syscalls = 0;
        self.tap = None;
    }
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

/// The heap bytes one segment holds: an owned buffer's capacity; a shared unit's bytes and
/// counts, charged in full to every queue that holds it (a slow reader may be the last to hold a
/// message the hub has let go); nothing for bytes built into the binary.
fn heap_cost(segment: &Segment) -> usize {
    match segment {
        Segment::Owned(v) => v.capacity(),
        Segment::Shared(s) => s.len() + ARC_HEADER,
        Segment::Static(_) => 0,
    }
}

impl OutQueue {
    /// An empty queue.
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Bytes waiting to be written.
    pub fn len(&self) -> usize {
        self.pending
    }

    /// The memory this queue holds: its entries' bookkeeping and the bytes behind them. This,
    /// not [`OutQueue::len`], is what `--max-pending-output` bounds: a reader that takes nothing
    /// of a stream of 1-byte messages queues few wire bytes but an entry per message. A queue in
    /// use is charged its entry array's capacity, which is what it holds (up to twice the
    /// entries); an empty one nothing (its few idle slots are part of every connection).
    pub fn memory(&self) -> usize {
        let slots = if self.entries.is_empty() {
            0
        } else {
            self.entries.capacity()
        };
        slots * std::mem::size_of::<Entry>() + self.heap
    }

    /// Whether every queued byte has been written: nothing is left for the socket.
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

    /// Queues `segment` as it is (no copy for shared or static bytes). Owned bytes under
    /// `COALESCE_LIMIT` are appended to the owned segment at the back when that one is also under
    /// the limit and its layout has room for theirs; otherwise they are moved in as a new entry,
    /// so a response head built in its own buffer becomes the entry without a copy.
    pub fn push(&mut self, segment: Segment, layout: Layout) {
        match segment {
            Segment::Owned(v) if v.len() < COALESCE_LIMIT && self.extends_back(&layout) => {
                self.push_bytes_with(&v, layout)
            }
            s => self.push_entry(s, layout, None),
        }
    }

    /// Whether bytes laid out as `layout` would be appended to the owned segment at the back.
    fn extends_back(&self, layout: &Layout) -> bool {
        matches!(
            self.entries.back(),
            Some(Entry { segment: Segment::Owned(last), layout: last_layout, .. })
                if last.len() < COALESCE_LIMIT && { *last_layout }.try_extend(layout)
        )
    }

    /// Queues a shared unit that carries no message (a response head shared by many answers).
    pub fn push_shared(&mut self, unit: &SharedUnit) {
        self.push_entry(Segment::Shared(unit.bytes.clone()), unit.layout, None);
    }

    /// Queues a shared unit that delivers a message published at `published_at`.
    pub fn push_delivery(&mut self, unit: &SharedUnit, published_at: Instant) {
        self.push_entry(
            Segment::Shared(unit.bytes.clone()),
            unit.layout,
            Some(published_at),
        );
    }

    /// Queues a body part as it is: a reference to shared bytes, or static ones.
    pub fn push_part(&mut self, part: &Part) {
        match part {
            Part::Shared(bytes, category) => {
                let layout = Layout::uniform(*category, bytes.len());
                self.push_entry(Segment::Shared(bytes.clone()), layout, None);
            }
            Part::Static(bytes, category) => {
                let layout = Layout::uniform(*category, bytes.len());
                self.push(Segment::Static(bytes), layout);
            }
            Part::Delivery(unit, published_at) => self.push_delivery(unit, *published_at),
        }
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

    /// Writes as much as `sink` takes in one write call, adding what left to `report`. Returns
    /// the bytes written (0 when the queue is empty); errors, `WouldBlock` included, are the
    /// sink's.
    pub fn write_to(
        &mut self,
        sink: &mut impl Write,
        report: &mut WriteReport,
    ) -> io::Result<usize> {
        if self.pending == 0 {
            return Ok(0);
        }
        let written = if self.entries.len() == 1
            && let Some(only) = self.entries.front()
        {
            // The common case of one message per write: a plain write.
            write_once(&only.segment.as_slice()[self.front_offset..], sink, report)?
        } else if self.pending <= GATHER_LIMIT {
            // A few small pieces (a response head and its shared body, a handful of messages):
            // copied into one buffer and written with one plain write, which costs the kernel
            // less than a vectored one (`sendmsg` copies and checks an iovec array first).
            let mut gathered = [0u8; GATHER_LIMIT];
            let mut len = 0;
            for (i, entry) in self.entries.iter().enumerate() {
                let skip = if i == 0 { self.front_offset } else { 0 };
                let bytes = &entry.segment.as_slice()[skip..];
                gathered[len..len + bytes.len()].copy_from_slice(bytes);
                len += bytes.len();
            }
            write_once(&gathered[..len], sink, report)?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, entry) in self.entries.iter().take(MAX_IOVECS).enumerate() {
                let skip = if i == 0 { self.front_offset } else { 0 };
                slices[i] = IoSlice::new(&entry.segment.as_slice()[skip..]);
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
            written
        };
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

/// One plain write of `bytes`, counted and tapped in `report`.
fn write_once(bytes: &[u8], sink: &mut impl Write, report: &mut WriteReport) -> io::Result<usize> {
    report.syscalls += 1;
    let written = sink.write(bytes)?;
    if let Some(tap) = &mut report.tap {
        tap.extend_from_slice(&bytes[..written]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
