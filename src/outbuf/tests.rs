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
fn small_pieces_go_out_in_one_plain_write_and_large_ones_vectored() {
    /// Counts plain and vectored calls; takes everything.
    #[derive(Default)]
    struct Calls {
        out: Vec<u8>,
        plain: usize,
        vectored: usize,
    }
    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.plain += 1;
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.vectored += 1;
            bufs.iter().for_each(|b| self.out.extend_from_slice(b));
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let t = Instant::now();
    let mut small = filled_queue(t);
    let mut sink = Calls::default();
    small
        .write_to(&mut sink, &mut WriteReport::default())
        .unwrap();
    assert_eq!((sink.plain, sink.vectored), (1, 0));
    assert_eq!(sink.out, b"head;SHARED-PAYLOAD;SHARED-PAYLOAD;tail");
    assert!(small.is_empty());

    let piece = unit(&[7u8; GATHER_LIMIT / 2]);
    let mut large = OutQueue::new();
    for _ in 0..3 {
        large.push_delivery(&piece, t);
    }
    let mut sink = Calls::default();
    large
        .write_to(&mut sink, &mut WriteReport::default())
        .unwrap();
    assert_eq!((sink.plain, sink.vectored), (0, 1));
    assert_eq!(sink.out.len(), 3 * (GATHER_LIMIT / 2));
}

#[test]
fn a_queue_past_the_gather_limit_goes_out_whole_and_in_order_piece_by_piece() {
    let pieces: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'a' + i; 300]).collect();
    let expected: Vec<u8> = pieces.concat();
    let t = Instant::now();
    for limit in [1, 7, 299, 301, 1000] {
        let mut q = OutQueue::new();
        for piece in &pieces {
            q.push_delivery(&unit(piece), t);
        }
        let mut sink = Trickle { out: vec![], limit };
        let mut report = WriteReport::default();
        while !q.is_empty() {
            q.write_to(&mut sink, &mut report).unwrap();
        }
        assert_eq!(sink.out, expected, "limit {limit}");
        assert_eq!(report.delivered.len(), pieces.len(), "limit {limit}");
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
    // One entry: what reaches the sink is one slice however the queue chooses to write.
    assert_eq!(q.entries.len(), 1);
    let (out, slices, report) = write_once(q);
    assert_eq!((out.as_slice(), slices), (&b"abcdef"[..], 1));
    assert_eq!(report.syscalls, 1);
    assert_eq!(report.by_category[Category::JsonEnvelope.index()], 2);
    assert_eq!(report.by_category[Category::Other.index()], 2);
}

#[test]
fn an_owned_segment_moves_in_unless_it_can_be_appended() {
    // Into an empty queue (or behind shared bytes) the buffer itself becomes the entry: its
    // capacity is what the queue holds, where a copy would hold only its length.
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
    let at = head.as_ptr();
    let mut q = OutQueue::new();
    q.push(
        Segment::Owned(head),
        Layout::uniform(Category::ResponseHead, 19),
    );
    assert!(matches!(&q.entries[0].segment, Segment::Owned(v) if v.as_ptr() == at));
    assert_eq!(q.heap, 256);
    // Behind an owned segment it is appended; body parts are referenced, never copied.
    q.push(
        Segment::Owned(b"{".to_vec()),
        Layout::uniform(Category::JsonEnvelope, 1),
    );
    let shared: Arc<[u8]> = Arc::from(&b"\"a\""[..]);
    q.push_part(&Part::Shared(shared.clone(), Category::JsonEnvelope));
    q.push_part(&Part::Static(b"}", Category::JsonEnvelope));
    assert_eq!(q.entries.len(), 3);
    assert!(matches!(&q.entries[1].segment, Segment::Shared(s) if Arc::ptr_eq(s, &shared)));
    let (out, _, report) = write_once(q);
    assert_eq!(out, b"HTTP/1.1 200 OK\r\n\r\n{\"a\"}");
    assert_eq!(report.by_category[Category::JsonEnvelope.index()], 5);
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

/// A queue past the gather limit (so written vectored), with owned and shared pieces, and the
/// bytes it holds.
fn large_queue(published: Instant) -> (OutQueue, Vec<u8>) {
    let payload = [b'x'; 700];
    let mut q = OutQueue::new();
    q.push_bytes(b"head;", Category::ResponseHead);
    q.push_delivery(&unit(&payload), published);
    q.push_bytes(b";", Category::JsonEnvelope);
    q.push_delivery(&unit(&payload), published);
    q.push_bytes(b";tail", Category::JsonEnvelope);
    let expected = [&b"head;"[..], &payload, b";", &payload, b";tail"].concat();
    assert!(expected.len() > GATHER_LIMIT);
    (q, expected)
}

#[test]
fn the_tap_copies_exactly_what_was_written() {
    let t = Instant::now();
    let small = b"head;SHARED-PAYLOAD;SHARED-PAYLOAD;tail".to_vec();
    let (_, large) = large_queue(t);
    let cases = (1..=small.len())
        .map(|limit| (false, limit))
        .chain([1, 5, 6, 700, 705, 706, 1500, 4000].map(|limit| (true, limit)));
    for (is_large, limit) in cases {
        let (mut q, expected) = if is_large {
            large_queue(t)
        } else {
            (filled_queue(t), small.clone())
        };
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
        assert_eq!(sink.out, expected, "limit {limit}");
        assert_eq!(report.syscalls, calls);
        let by = report.by_category;
        assert_eq!(by[Category::ResponseHead.index()], 5, "limit {limit}");
        assert_eq!(by[Category::JsonEnvelope.index()], 6, "limit {limit}");
        assert_eq!(by[Category::WsFrameHeader.index()], 4, "limit {limit}");
        assert_eq!(
            by.iter().sum::<u64>(),
            expected.len() as u64,
            "limit {limit}"
        );
        assert_eq!(report.delivered, [t, t], "limit {limit}");
    }
    assert!(large.len() > GATHER_LIMIT);
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
    let mut q = OutQueue::new();
    let unit = SharedUnit::new(b"x".to_vec(), Layout::uniform(Category::Payload, 1));
    let now = Instant::now();
    for _ in 0..1000 {
        q.push_delivery(&unit, now);
        q.push_bytes(b",", Category::JsonEnvelope);
    }
    assert_eq!(q.len(), 2000);
    let per_entry = std::mem::size_of::<Entry>();
    assert!(
        q.memory() >= 2000 * per_entry + 1000 * (1 + ARC_HEADER),
        "{}",
        q.memory()
    );
    let mut sink = Trickle {
        out: Vec::new(),
        limit: 1000,
    };
    let mut report = WriteReport::default();
    while !q.is_empty() {
        q.write_to(&mut sink, &mut report).unwrap();
    }
    assert_eq!(q.memory(), 0);
    assert!(q.entries.capacity() <= IDLE_ENTRY_CAPACITY);
    // Coalesced owned bytes are charged their buffer's capacity, once.
    q.push_bytes(b"abc", Category::Other);
    q.push_bytes(b"def", Category::Other);
    assert_eq!(q.entries.len(), 1);
    assert_eq!(
        q.memory(),
        q.entries.capacity() * per_entry + q.entries[0].segment_capacity()
    );
    q.push_delivery(&unit, now);
    q.drop_unstarted();
    assert_eq!(q.memory(), 0);
}

impl Entry {
    fn segment_capacity(&self) -> usize {
        heap_cost(&self.segment)
    }
}
