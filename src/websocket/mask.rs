//! Payload masking (RFC 6455 §5.3): `transformed[i] = original[i] XOR key[i mod 4]`.
//!
//! [`apply_mask`] is the fast path (eight bytes per step); [`apply_mask_reference`] is the plain
//! byte loop it is tested against.

/// XORs `buf` in place with `key`. `offset` is the position of `buf[0]` within the frame payload,
/// so a payload that arrives in several pieces can be unmasked piece by piece.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let rotated = rotate_key(key, offset);
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, hence of 4, so the rotated key lines up with index 0.
    for (byte, k) in chunks
        .into_remainder()
        .iter_mut()
        .zip(rotated.iter().cycle())
    {
        *byte ^= k;
    }
}

/// Byte-by-byte masking, the reference [`apply_mask`] must agree with (fuzz targets and benches).
#[doc(hidden)]
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset % 4 + i % 4) % 4];
    }
}

/// The key as seen from payload position `offset`.
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset % 4);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic pseudo-random numbers for tests, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn encodes_rfc_example_hello() {
        // RFC 6455 §5.7: masked "Hello" with key 37 fa 21 3d.
        let mut buf = *b"Hello";
        apply_mask(&mut buf, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(buf, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn decodes_in_pieces_with_offsets() {
        let key = [1, 2, 3, 4];
        let original: Vec<u8> = (0..=200u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..original.len() {
            let mut pieces = whole.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, original, "split at {split}");
        }
    }

    #[test]
    fn fast_path_agrees_with_reference_on_random_inputs() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let backing: Vec<u8> = (0..300).map(|_| rng.next() as u8).collect();
        for _ in 0..2000 {
            let start = rng.below(16); // varies the alignment of buf[0]
            let len = rng.below(backing.len() - start);
            let offset = rng.below(1 << 20);
            let key = (rng.next() as u32).to_ne_bytes();
            // Mask in place inside a larger buffer so buf[0] is not always word-aligned.
            let mut fast = backing.clone();
            let mut slow = backing.clone();
            apply_mask(&mut fast[start..start + len], key, offset);
            apply_mask_reference(&mut slow[start..start + len], key, offset);
            assert_eq!(fast, slow, "len {len} offset {offset} start {start}");
        }
        // Offsets near usize::MAX must not overflow.
        let mut a = [0u8; 9];
        let mut b = [0u8; 9];
        apply_mask(&mut a, [1, 2, 3, 4], usize::MAX);
        apply_mask_reference(&mut b, [1, 2, 3, 4], usize::MAX);
        assert_eq!(a, b);
    }
}
