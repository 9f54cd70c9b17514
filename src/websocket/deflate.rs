//! The permessage-deflate codec (RFC 7692 §7.2): DEFLATE itself comes from `flate2` (its
//! miniz_oxide backend); what is ours is the message framing around it. No socket, no clock.
//!
//! - Sending: a message is compressed on its own (the server always keeps no context,
//!   `server_no_context_takeover`), flushed with a sync flush, and the flush's trailing
//!   `00 00 ff ff` is removed (§7.2.1). A window smaller than 32 KiB is met by resetting the
//!   compressor's dictionary (a full flush) every 2^N input bytes. A message that would not
//!   shrink is sent uncompressed (RSV1 clear), which the extension allows message by message.
//! - Receiving: the payload of a message with RSV1 is inflated fragment by fragment as it
//!   arrives, then `00 00 ff ff` is fed at the end of the message (§7.2.2). The output never
//!   grows past the message size limit: inflation stops and reports [`InflateError::TooBig`]
//!   before allocating more, so a decompression bomb costs at most the limit.
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// What a sync flush ends with, and what the receiver appends before inflating (RFC 7692 §7.2.1).
pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The compression level: zlib's default (6). Compression happens once per channel message for
/// every subscriber (the frame is shared), so the better ratio is worth its time.
pub const LEVEL: u32 = 6;

/// Output is produced in steps of this many bytes (a stack buffer), so the message buffer grows
/// by at most this much past what has been checked against the limit.
const STEP: usize = 8 * 1024;

/// A DEFLATE compressor for whole messages, reset before each: one can serve every connection
/// (the server keeps no context between messages).
pub struct Compressor {
    inner: Compress,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compressor")
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor::new()
    }
}

impl Compressor {
    /// A raw-DEFLATE compressor (no zlib header) at [`LEVEL`].
    pub fn new() -> Compressor {
        Compressor {
            inner: Compress::new(Compression::new(LEVEL), false),
        }
    }

    /// Appends the compressed payload of `message` (trailer removed) to `out` and returns true,
    /// or returns false and leaves `out` as it was when compressing would not make it smaller
    /// (send it uncompressed then). Back-references reach at most 2^`window_bits` bytes back.
    pub fn compress(&mut self, message: &[u8], window_bits: u8, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        if message.is_empty() || self.deflate(message, window_bits, out).is_none() {
            out.truncate(start);
            return false;
        }
        if !out.ends_with(&TRAILER) || out.len() - start - TRAILER.len() >= message.len() {
            out.truncate(start);
            return false;
        }
        out.truncate(out.len() - TRAILER.len());
        true
    }

    fn deflate(&mut self, message: &[u8], window_bits: u8, out: &mut Vec<u8>) -> Option<()> {
        self.inner.reset();
        // miniz_oxide's window is 32 KiB: a smaller one is met by a full flush, which also
        // empties the dictionary, every 2^window_bits bytes of input.
        let piece = if window_bits >= 15 {
            message.len()
        } else {
            1usize << window_bits.max(8)
        };
        let mut pieces = message.chunks(piece).peekable();
        while let Some(input) = pieces.next() {
            let flush = if pieces.peek().is_some() {
                FlushCompress::Full
            } else {
                FlushCompress::Sync
            };
            let mut consumed = 0;
            loop {
                out.reserve((input.len() - consumed) / 2 + 64);
                let before = self.inner.total_in();
                self.inner
                    .compress_vec(input.get(consumed..)?, out, flush)
                    .ok()?;
                consumed += usize::try_from(self.inner.total_in() - before).ok()?;
                if consumed == input.len() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        Some(())
    }
}

/// Why inflating a message stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// The message inflates past the limit (RFC 7692 §8: take care against decompression bombs)
    /// → 1009.
    TooBig,
    /// Not valid DEFLATE data → 1007 (RFC 6455 §7.4.1: data not consistent with the type).
    Invalid,
}

/// The receiving side of one connection: a raw-DEFLATE inflater with a 32 KiB window, which
/// decodes what a client sends with any window size.
pub struct Inflater {
    inner: Decompress,
    /// The stream ended with a final block (BFINAL): the rest of this message is ignored and the
    /// inflater starts afresh with the next one.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("ended", &self.ended)
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// A fresh inflater (about 43 KiB on the heap: the window and the decoding tables).
    pub fn new() -> Inflater {
        Inflater {
            inner: Decompress::new(false),
            ended: false,
        }
    }

    /// Inflates a piece of a compressed message, appending to `out`; `out` never holds more than
    /// `limit` bytes nor is allocated beyond that. On an error, `out` still holds what was
    /// inflated before it (up to the limit).
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        if self.ended {
            return Ok(());
        }
        let mut step = [0u8; STEP];
        let mut pos = 0;
        loop {
            let (before_in, before_out) = (self.inner.total_in(), self.inner.total_out());
            let status = self
                .inner
                .decompress(&input[pos..], &mut step, FlushDecompress::Sync);
            let read = (self.inner.total_in() - before_in) as usize;
            let produced = (self.inner.total_out() - before_out) as usize;
            pos += read;
            // Kept up to the limit even when the data then turns out bad or too big, so the
            // caller checks the same bytes (UTF-8) first however the input was split.
            let room = limit.saturating_sub(out.len());
            let keep = produced.min(room);
            if out.capacity() - out.len() < keep {
                // Grow geometrically, but never past the limit.
                let want = (out.capacity() * 2).max(out.len() + keep).min(limit);
                out.reserve_exact(want - out.len());
            }
            out.extend_from_slice(&step[..keep]);
            // In stream order: output past the limit came before any bad data after it.
            if produced > room {
                return Err(InflateError::TooBig);
            }
            let Ok(status) = status else {
                return Err(InflateError::Invalid);
            };
            if status == Status::StreamEnd {
                self.ended = true;
                return Ok(());
            }
            if (pos == input.len() && produced < STEP) || (read == 0 && produced == 0) {
                return Ok(());
            }
        }
    }

    /// Ends a message: inflates the trailer the sender removed (RFC 7692 §7.2.2).
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        let result = self.inflate(&TRAILER, out, limit);
        if self.ended {
            self.reset();
        }
        result
    }

    /// Forgets the window: the next message starts a new stream.
    pub fn reset(&mut self) {
        self.inner.reset(false);
        self.ended = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7692 §7.2.3.1: "Hello" compressed, as the RFC shows it.
    const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

    fn inflate_all(pieces: &[&[u8]], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        for p in pieces {
            inflater.inflate(p, &mut out, limit)?;
        }
        inflater.finish(&mut out, limit)?;
        Ok(out)
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| b"the quick brown fox jumps over the lazy dog "[i % 44])
            .collect()
    }

    #[test]
    fn decodes_rfc_hello_whole_and_bytewise() {
        assert_eq!(inflate_all(&[&HELLO], 100).unwrap(), b"Hello");
        let bytes: Vec<&[u8]> = HELLO.chunks(1).collect();
        assert_eq!(inflate_all(&bytes, 100).unwrap(), b"Hello");
        // §7.2.3.2: the same message twice with context takeover: the second is 5 bytes.
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        inflater.inflate(&HELLO, &mut out, 100).unwrap();
        inflater.finish(&mut out, 100).unwrap();
        inflater
            .inflate(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100)
            .unwrap();
        inflater.finish(&mut out, 100).unwrap();
        assert_eq!(out, b"HelloHello");
    }

    #[test]
    fn decodes_a_final_block_and_starts_afresh() {
        // §7.2.3.4 / .5: BFINAL set ("Hello" in a final fixed block), then the next message.
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        inflater
            .inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
            .unwrap();
        inflater.finish(&mut out, 100).unwrap();
        inflater.inflate(&HELLO, &mut out, 100).unwrap();
        inflater.finish(&mut out, 100).unwrap();
        assert_eq!(out, b"HelloHello");
    }

    #[test]
    fn encodes_rfc_hello() {
        let mut c = Compressor::new();
        let mut out = vec![0xa5];
        // Too short to shrink: left to the caller to send uncompressed.
        assert!(!c.compress(b"Hello", 15, &mut out));
        assert_eq!(out, [0xa5]);
        let message = text(1000);
        assert!(c.compress(&message, 15, &mut out));
        assert_eq!(out[0], 0xa5);
        assert!(out.len() < 100, "{}", out.len());
        assert_eq!(inflate_all(&[&out[1..]], 1000).unwrap(), message);
    }

    #[test]
    fn roundtrips_every_window_and_size() {
        let mut c = Compressor::new();
        for n in [1, 64, 255, 256, 257, 1024, 65536, 100_000] {
            for bits in 8..=15 {
                let message = text(n);
                let mut out = Vec::new();
                if c.compress(&message, bits, &mut out) {
                    assert_eq!(inflate_all(&[&out], n).unwrap(), message, "{n} {bits}");
                    // Back-references stay inside the window: zlib-style decoders with a small
                    // window would fail otherwise; checked through a decoder that keeps only
                    // 2^bits of history per piece.
                    if bits < 15 {
                        assert_distances_within(&out, 1 << bits);
                    }
                }
            }
        }
    }

    /// Each full flush resets the dictionary, so pieces inflate independently of each other.
    fn assert_distances_within(compressed: &[u8], piece: usize) {
        let mut stream = compressed.to_vec();
        stream.extend_from_slice(&TRAILER);
        // Cut at every sync marker: each piece must inflate alone to at most `piece` bytes.
        let mut start = 0;
        while let Some(i) = stream[start..].windows(4).position(|w| w == TRAILER) {
            let end = start + i + 4;
            let mut inflater = Inflater::new();
            let mut out = Vec::new();
            inflater
                .inflate(&stream[start..end], &mut out, piece)
                .unwrap();
            start = end;
        }
    }

    #[test]
    fn stops_a_bomb_at_the_limit_without_allocating_past_it() {
        let mut c = Compressor::new();
        let zeros = vec![0u8; 10 << 20];
        let mut bomb = Vec::new();
        assert!(c.compress(&zeros, 15, &mut bomb));
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        let limit = 100_000;
        assert_eq!(
            inflater.inflate(&bomb, &mut out, limit),
            Err(InflateError::TooBig)
        );
        assert!(out.capacity() <= limit, "{}", out.capacity());
        // Exactly at the limit is fine.
        assert_eq!(
            inflate_all(&[&bomb], zeros.len()).unwrap().len(),
            zeros.len()
        );
    }

    #[test]
    fn refuses_invalid_data() {
        // BTYPE 11 is reserved.
        assert_eq!(inflate_all(&[&[0xff]], 100), Err(InflateError::Invalid));
        // A stored block whose NLEN is not LEN's complement.
        assert_eq!(
            inflate_all(&[&[0x00, 0x05, 0x00, 0x00, 0x00]], 100),
            Err(InflateError::Invalid)
        );
    }
}
