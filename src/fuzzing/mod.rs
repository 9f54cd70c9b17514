//! Entry points shared by cargo-fuzz targets and the corpus replay test.
//!
//! Each `pub fn` takes arbitrary bytes and panics (through `assert!`) when an invariant of a
//! codec breaks: nothing consumed past the input, the same result whole / one byte at a time / at
//! random splits, encode-then-decode is the identity, renderers never panic. The fuzz targets in
//! `fuzz/fuzz_targets/` are one call each; `tests/fuzz_corpus.rs` replays the checked-in corpus
//! through the same functions on the stable toolchain.
//!
//! Operation sequences and split points are read from the input bytes themselves (no `arbitrary`
//! dependency): a target that needs choices takes them from a [`Bytes`] reader, and random splits
//! come from a xorshift generator seeded with a hash of the input, so a corpus file always replays
//! the same way.
//!
//! | entry point          | what it feeds                        | what it asserts                          |
//! |----------------------|--------------------------------------|------------------------------------------|
//! | [`http_request`]     | raw bytes → `HeadReader`, framing    | whole = prefixes = splits; body decoders |
//! | [`chunked_body`]     | raw bytes → `ChunkedDecoder`         | whole = bytewise = splits; consumed ≤ len|
//! | [`ws_handshake`]     | header lines → `validate_upgrade`    | accept key; order and case independence  |
//! | [`ws_frame`]         | raw bytes → `FrameHead`, `Session`   | prefixes need more; re-encode; splits    |
//! | [`ws_session`]       | op sequence → masked frames → session| whole = bytewise = splits; sane transmit |
//! | [`ws_utf8`]          | raw bytes → `Utf8Validator`          | agrees with `std::str::from_utf8`        |
//! | [`sse_parser`]       | raw bytes → `sse::Parser`            | whole = bytewise = splits                |
//! | [`roundtrip_ws`]     | opcode, keys, payload                | encode → decode / session = identity     |
//! | [`roundtrip_chunked`]| payload and chunk sizes              | encode → decode = identity               |
//! | [`roundtrip_sse`]    | id, event type, data                 | encode → parse = normalized input        |
//! | [`render`]           | raw bytes → every trace renderer     | never panics, ends lines                 |
//! | [`dissector`]        | raw bytes → `trace::Dissector`       | bytes counted once; bounded; splits      |
//! | [`ws_deflate`]       | offers, DEFLATE data, messages       | bounded inflate; pieces; round trip      |

mod http1;
mod render;
mod sse;
mod trace;
mod websocket;

pub use http1::{chunked_body, http_request, roundtrip_chunked};
pub use render::render;
pub use sse::{roundtrip_sse, sse_parser};
pub use trace::{dissector, ws_deflate};
pub use websocket::{roundtrip_ws, ws_frame, ws_handshake, ws_session, ws_utf8};

/// xorshift64 seeded from the input: deterministic split points with no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeds from an FNV-1a hash of `data`.
    pub(crate) fn from_data(data: &[u8]) -> Rng {
        let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(hash | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A piece size in `1..=max`.
    pub(crate) fn piece(&mut self, max: usize) -> usize {
        (self.next() % max.max(1) as u64) as usize + 1
    }

    /// `data` cut into pieces of 1 to `max` bytes.
    pub(crate) fn split<'a>(&mut self, data: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (a, b) = rest.split_at(self.piece(max).min(rest.len()));
            pieces.push(a);
            rest = b;
        }
        pieces
    }
}

/// Reads choices off the front of the input; runs dry as zeros.
pub(crate) struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub(crate) fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    pub(crate) fn key(&mut self) -> [u8; 4] {
        [self.byte(), self.byte(), self.byte(), self.byte()]
    }

    pub(crate) fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| n << 8 | u64::from(self.byte()))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
