//! What the hub charges to `--history-total-bytes`: the memory a channel and a held message
//! really take, not only the payload.
//!
//! ```text
//! a channel   its map entry (name pointer + Channel, with the hash table's spare buckets),
//!             its name (an Arc<str> allocation), its history buffer's first allocation and
//!             its expiry-queue entry
//! a message   its Arc<Message> allocation, its payload allocation, its slot in the channel's
//!             history (VecDeque: up to twice the slots in use) and its entry in the hub's
//!             eviction line (up to twice the entries held, for the same reason)
//! ```
//! Allocation sizes follow glibc's malloc: a request of `n` bytes takes `n + 8` rounded up to 16,
//! at least 32, and from 128 KiB on it is mapped by pages. The figures were checked against the
//! resident memory of a server holding 40 000 and 80 000 messages (`tests/hostile_memory.rs`);
//! subscribers are not charged (each is a connection, bounded by `--max-connections`).
use std::mem::size_of;
use std::sync::Arc;
use std::time::Instant;

use super::Message;
use super::channel::Channel;

/// glibc's chunk for a request of `n` bytes: header and alignment, or whole pages once malloc
/// maps the block (from `M_MMAP_THRESHOLD`, 128 KiB by default).
pub(crate) const fn allocation(n: usize) -> usize {
    if n == 0 {
        0
    } else if n >= 128 * 1024 {
        (n + 16).div_ceil(4096) * 4096
    } else {
        let chunk = (n + 8).div_ceil(16) * 16;
        if chunk < 32 { 32 } else { chunk }
    }
}

/// An `Arc`'s allocation holds two counters before the value.
const ARC_HEADER: usize = 2 * size_of::<usize>();

/// One entry of the hub's eviction line or expiry queue: the channel's name and an id.
pub(crate) type LineEntry = (Arc<str>, u64);

/// Bytes charged for one held message of `len` payload bytes.
pub(crate) fn message_cost<C>(len: usize) -> usize {
    allocation(ARC_HEADER + size_of::<Message<C>>())
        + allocation(len)
        // The history's slot and the line's entry, each in a buffer up to twice as long as what
        // it holds (doubling growth; the line also keeps stale entries up to that bound).
        + 2 * size_of::<Arc<Message<C>>>()
        + 2 * size_of::<LineEntry>()
}

/// Bytes charged for one channel named with `name_len` bytes, whatever it holds.
pub(crate) fn channel_cost<C>(name_len: usize) -> usize {
    // A hash table entry and its control byte, with room for the table's spare buckets (at most
    // 7/8 full, growing by doubling: between 1.14 and 2.3 buckets per entry; charged 1.75).
    let bucket = size_of::<(Arc<str>, Channel<C>)>() + 1;
    bucket * 7 / 4
        + allocation(ARC_HEADER + name_len)
        // The history's first allocation (4 slots) and the expiry queue's entry.
        + allocation(4 * size_of::<Arc<Message<C>>>())
        + size_of::<(Instant, Arc<str>)>() * 3 / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_follow_glibc_chunks() {
        assert_eq!(allocation(0), 0);
        assert_eq!(allocation(1), 32);
        assert_eq!(allocation(24), 32);
        assert_eq!(allocation(25), 48);
        assert_eq!(allocation(64 * 1024), 64 * 1024 + 16);
        assert_eq!(allocation(128 * 1024), 128 * 1024 + 4096);
    }

    #[test]
    fn an_empty_message_costs_its_bookkeeping_and_a_large_one_its_payload() {
        let empty = message_cost::<()>(0);
        assert!((100..=200).contains(&empty), "{empty}");
        let big = message_cost::<()>(64 * 1024);
        assert!(big - 64 * 1024 < 200, "{big}");
        assert!(channel_cost::<()>(8) > size_of::<Channel<()>>());
    }
}
