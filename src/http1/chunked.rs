//! The chunked transfer coding (RFC 9112 §7.1), both directions.
//!
//! ```text
//!   chunk      = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//!   last-chunk = 1*("0") [ chunk-ext ] CRLF
//!   trailer    = *( field-line CRLF ) CRLF
//! ```
//! The decoder is strict about line ends (CRLF only): a lenient chunk parser is how request
//! smuggling happens when a proxy in front reads the same bytes differently.
use crate::ledger::{Category, Layout};
use crate::outbuf::OutQueue;
use std::fmt;

/// Why a chunked body is invalid. Every variant is answered with 400 and the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line that does not start with a hex digit.
    MissingSize,
    /// A chunk size that does not fit in 64 bits.
    SizeOverflow,
    /// A byte that cannot appear in a chunk-size line or extension.
    InvalidSizeLine,
    /// A line that does not end with CRLF (bare CR or bare LF).
    BadLineEnd,
    /// Chunk data not followed by CRLF.
    MissingDataCrlf,
    /// A trailer section larger than the decoder accepts.
    TrailerTooLarge,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::MissingSize => "missing chunk size",
            ChunkedError::SizeOverflow => "chunk size overflows",
            ChunkedError::InvalidSizeLine => "invalid chunk size line",
            ChunkedError::BadLineEnd => "line not ended by crlf",
            ChunkedError::MissingDataCrlf => "chunk data not followed by crlf",
            ChunkedError::TrailerTooLarge => "trailer section too large",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// Largest trailer section accepted (the trailers themselves are read and dropped).
const MAX_TRAILER: usize = 8 * 1024;

/// Longest chunk-size line accepted, extensions and leading zeros included: a body that sends
/// nothing but an endless size line is refused rather than read forever.
const MAX_SIZE_LINE: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` counts them (0 means none yet).
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size, whitespace seen: more whitespace, `;` (an extension) or CR must follow
    /// (`chunk-ext = *( BWS ";" BWS chunk-ext-name … )`, RFC 9112 §7.1.1).
    SizeBws {
        size: u64,
    },
    /// Inside `;ext[=value]`, up to CR.
    Extension {
        size: u64,
    },
    /// Saw CR after the size line; LF must follow.
    SizeLf {
        size: u64,
    },
    /// Reading chunk data.
    Data {
        remaining: u64,
    },
    /// Chunk data done; CR must follow.
    DataCr,
    /// CR after data seen; LF must follow.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerLineStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// Saw CR of a trailer line; `empty` when the line was the final empty one.
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Incremental chunked-body decoder: feed it any split of the body, it appends the data to `out`.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    trailer_len: usize,
    /// Bytes of the chunk-size line read so far.
    size_line_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            trailer_len: 0,
            size_line_len: 0,
        }
    }
}

impl ChunkedDecoder {
    /// A decoder waiting for the first chunk-size line.
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// Data bytes the chunk being read still announces (0 outside chunk data), so a caller can
    /// refuse an oversized chunk as soon as its size line arrives.
    pub fn announced_remaining(&self) -> u64 {
        match self.state {
            State::Data { remaining } => remaining,
            _ => 0,
        }
    }

    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending chunk data to `out`. Returns how many bytes
    /// were consumed; stops right after the body ends, leaving what follows (a pipelined request).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if matches!(
                self.state,
                State::Size { .. } | State::SizeBws { .. } | State::Extension { .. }
            ) {
                self.size_line_len += 1;
                if self.size_line_len > MAX_SIZE_LINE {
                    return Err(ChunkedError::InvalidSizeLine);
                }
            } else {
                self.size_line_len = 0;
            }
            self.state = match self.state {
                State::Size { size, digits } => match hex_value(b) {
                    Some(v) => {
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(v)))
                            .ok_or(ChunkedError::SizeOverflow)?;
                        State::Size {
                            size,
                            digits: digits.saturating_add(1),
                        }
                    }
                    None if digits == 0 => return Err(ChunkedError::MissingSize),
                    None => match b {
                        b'\r' => State::SizeLf { size },
                        b';' => State::Extension { size },
                        b' ' | b'\t' => State::SizeBws { size },
                        b'\n' => return Err(ChunkedError::BadLineEnd),
                        _ => return Err(ChunkedError::InvalidSizeLine),
                    },
                },
                State::SizeBws { size } => match b {
                    b'\r' => State::SizeLf { size },
                    b';' => State::Extension { size },
                    b' ' | b'\t' => State::SizeBws { size },
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    // `1 x`: an extension must start with `;`.
                    _ => return Err(ChunkedError::InvalidSizeLine),
                },
                State::Extension { size } => match b {
                    b'\r' => State::SizeLf { size },
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    b'\t' | b' '..=b'~' | 0x80..=0xff => State::Extension { size },
                    _ => return Err(ChunkedError::InvalidSizeLine),
                },
                State::SizeLf { size } => match b {
                    b'\n' if size == 0 => State::TrailerLineStart,
                    b'\n' => State::Data { remaining: size },
                    _ => return Err(ChunkedError::BadLineEnd),
                },
                State::Data { remaining } => {
                    let available = input.len() - i;
                    let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                    continue;
                }
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(ChunkedError::MissingDataCrlf),
                },
                State::DataLf => match b {
                    b'\n' => State::Size { size: 0, digits: 0 },
                    _ => return Err(ChunkedError::MissingDataCrlf),
                },
                State::TrailerLineStart => match b {
                    b'\r' => State::TrailerLf { empty: true },
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    _ => self.trailer_byte()?,
                },
                State::TrailerLine => match b {
                    b'\r' => State::TrailerLf { empty: false },
                    b'\n' => return Err(ChunkedError::BadLineEnd),
                    _ => self.trailer_byte()?,
                },
                State::TrailerLf { empty } => match b {
                    b'\n' if empty => {
                        self.state = State::Done;
                        return Ok(i + 1);
                    }
                    b'\n' => State::TrailerLineStart,
                    _ => return Err(ChunkedError::BadLineEnd),
                },
                State::Done => return Ok(i),
            };
            i += 1;
        }
        Ok(i)
    }

    fn trailer_byte(&mut self) -> Result<State, ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER {
            return Err(ChunkedError::TrailerTooLarge);
        }
        Ok(State::TrailerLine)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes of framing [`encode_chunk`] puts around `data_len` bytes of data: the hex size line and
/// the two CRLFs.
pub fn chunk_overhead(data_len: usize) -> usize {
    hex_digits(data_len) + 4
}

fn hex_digits(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        (usize::BITS - n.leading_zeros()).div_ceil(4) as usize
    }
}

/// Appends one chunk carrying `data` (which must not be empty: a zero-size chunk ends the body).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    debug_assert!(!data.is_empty(), "an empty chunk would end the body");
    out.reserve(data.len() + chunk_overhead(data.len()));
    // The size in hex, most significant digit first, without an allocation.
    let digits = hex_digits(data.len());
    for shift in (0..digits).rev() {
        out.push(b"0123456789abcdef"[(data.len() >> (shift * 4)) & 0xf]);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Queues a copy of `bytes` framed as one HTTP chunk (`size CRLF bytes CRLF`) when `chunked`,
/// the framing counted as [`Category::ChunkFraming`] and the bytes as `category`; bare otherwise
/// (an HTTP/1.0 stream delimited by close). Nothing is queued for no bytes (an empty chunk would
/// end the body).
pub fn queue_chunk(out: &mut OutQueue, bytes: &[u8], category: Category, chunked: bool) {
    if bytes.is_empty() {
        return;
    }
    if !chunked {
        out.push_bytes(bytes, category);
        return;
    }
    let (framed, layout) = encode_chunk_with_layout(bytes, Layout::uniform(category, bytes.len()));
    out.push_bytes_with(&framed, layout);
}

/// One chunk carrying `data`, with the layout of the whole chunk for the wire ledger: the size
/// line and the closing CRLF as [`Category::ChunkFraming`] around `inner`, the layout of `data`.
/// Every chunk the server sends (events, heartbeats, trace records) is framed here.
pub fn encode_chunk_with_layout(data: &[u8], inner: Layout) -> (Vec<u8>, Layout) {
    let mut out = Vec::with_capacity(data.len() + chunk_overhead(data.len()));
    encode_chunk(data, &mut out);
    let size_line = out.len() - data.len() - 2;
    let mut layout = Layout::uniform(Category::ChunkFraming, size_line);
    let fits = layout.try_extend(&inner) && layout.try_push(Category::ChunkFraming, 2);
    if !fits {
        // More runs than a layout holds: count the data as its first category.
        let first = inner.runs().first().map_or(Category::Other, |r| r.0);
        layout = Layout::from_runs(&[
            (Category::ChunkFraming, size_line),
            (first, data.len()),
            (Category::ChunkFraming, 2),
        ]);
    }
    (out, layout)
}

/// The last chunk with an empty trailer section: the end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_whole(input: &[u8]) -> Result<(usize, Vec<u8>, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out)?;
        Ok((n, out, d.is_done()))
    }

    fn decode_bytewise(input: &[u8]) -> Result<(usize, Vec<u8>, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut consumed = 0;
        for b in input {
            if d.is_done() {
                break;
            }
            consumed += d.decode(std::slice::from_ref(b), &mut out)?;
        }
        Ok((consumed, out, d.is_done()))
    }

    #[test]
    fn decodes_chunks_three_ways() {
        let body = b"5\r\nhello\r\n7;name=val\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";
        let expected = (body.len(), b"hello, world".to_vec(), true);
        assert_eq!(decode_whole(body).unwrap(), expected);
        assert_eq!(decode_bytewise(body).unwrap(), expected);
        let mut trailing = body.to_vec();
        trailing.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(decode_whole(&trailing).unwrap(), expected);
    }

    #[test]
    fn whitespace_may_precede_an_extension_or_the_line_end() {
        let body = b"2 ;a=b\r\nhi\r\n1\t \r\n!\r\n0 ; last\r\n\r\n";
        let expected = (body.len(), b"hi!".to_vec(), true);
        assert_eq!(decode_whole(body).unwrap(), expected);
        assert_eq!(decode_bytewise(body).unwrap(), expected);
    }

    #[test]
    fn a_long_size_line_is_refused_at_the_limit() {
        let mut line = b"1".to_vec();
        line.extend(std::iter::repeat_n(b' ', 4 * MAX_SIZE_LINE));
        let mut d = ChunkedDecoder::new();
        assert_eq!(
            d.decode(&line, &mut Vec::new()),
            Err(ChunkedError::InvalidSizeLine)
        );
    }

    #[test]
    fn decodes_uppercase_hex_and_leading_zeros() {
        let (_, out, done) = decode_whole(b"0000A\r\n0123456789\r\n00\r\n\r\n").unwrap();
        assert_eq!(out, b"0123456789");
        assert!(done);
    }

    #[test]
    fn rejects_invalid_chunks() {
        let cases: [(&[u8], ChunkedError); 10] = [
            (b"1 x\r\n", ChunkedError::InvalidSizeLine),
            (b"1 \t x=y\r\n", ChunkedError::InvalidSizeLine),
            (b"1 \n", ChunkedError::BadLineEnd),
            (b"x\r\n", ChunkedError::MissingSize),
            (b"\r\n", ChunkedError::MissingSize),
            (b"fffffffffffffffff\r\n", ChunkedError::SizeOverflow),
            (b"5\nhello\r\n", ChunkedError::BadLineEnd),
            (b"5\r\nhelloXX", ChunkedError::MissingDataCrlf),
            (b"5x\r\n", ChunkedError::InvalidSizeLine),
            (b"0\r\n\n", ChunkedError::BadLineEnd),
        ];
        let mut endless = b"1;".to_vec();
        endless.extend_from_slice(&[b'a'; MAX_SIZE_LINE]);
        assert_eq!(decode_whole(&endless), Err(ChunkedError::InvalidSizeLine));
        for (input, err) in cases {
            assert_eq!(
                decode_whole(input),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(decode_bytewise(input), Err(err));
        }
    }

    #[test]
    fn incomplete_body_is_not_done() {
        let (n, out, done) = decode_whole(b"5\r\nhel").unwrap();
        assert_eq!((n, out.as_slice(), done), (6, &b"hel"[..], false));
    }

    #[test]
    fn encodes_chunk() {
        let mut out = vec![];
        encode_chunk(b"hello world, this is 26 b.", &mut out);
        assert_eq!(out, b"1a\r\nhello world, this is 26 b.\r\n");
        assert_eq!(chunk_overhead(26), 6);
        assert_eq!(chunk_overhead(1), 5);
        assert_eq!(chunk_overhead(4096), 8);
        for len in [1usize, 9, 15, 16, 255, 256, 4095, 65_536, 1 << 20] {
            let mut out = vec![];
            encode_chunk(&vec![b'x'; len], &mut out);
            assert!(out.starts_with(format!("{len:x}\r\n").as_bytes()), "{len}");
            assert_eq!(out.len(), len + chunk_overhead(len));
        }
    }

    #[test]
    fn roundtrips_chunks() {
        let mut wire = vec![];
        let pieces: [&[u8]; 3] = [b"a", &[7u8; 300], b"\r\n0\r\n"];
        for p in pieces {
            encode_chunk(p, &mut wire);
        }
        wire.extend_from_slice(LAST_CHUNK);
        let (n, out, done) = decode_bytewise(&wire).unwrap();
        assert_eq!(n, wire.len());
        assert_eq!(out, pieces.concat());
        assert!(done);
    }
}
