//! What a load or compare message carries so that loss, duplicates, order and latency are measured
//! without trusting the server's ids: `{seq:x}.{sent_us:x}.` in hex, padded with `x` to the asked
//! size. `sent_us` counts microseconds from a process-wide epoch, so every thread of the client
//! reads the same clock.
use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The process-wide epoch: the first call fixes it.
pub fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since [`epoch`] at `at`.
pub fn micros_at(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_micros() as u64
}

/// Microseconds since [`epoch`], now.
pub fn now_micros() -> u64 {
    micros_at(Instant::now())
}

/// The shortest payload that carries `seq` sent at `sent_us`.
pub fn min_len(seq: u64, sent_us: u64) -> usize {
    hex_len(seq) + hex_len(sent_us) + 2
}

fn hex_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(4).max(1)
}

/// Writes the payload of message `seq`, `size` bytes long (longer if `size` is below
/// [`min_len`]).
pub fn encode(seq: u64, sent_us: u64, size: usize, out: &mut Vec<u8>) {
    let start = out.len();
    push_hex(seq, out);
    out.push(b'.');
    push_hex(sent_us, out);
    out.push(b'.');
    let written = out.len() - start;
    out.resize(start + size.max(written), b'x');
}

fn push_hex(v: u64, out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = hex_len(v);
    for i in (0..n).rev() {
        out.push(DIGITS[((v >> (i * 4)) & 0xf) as usize]);
    }
}

/// Reads `(seq, sent_us)` from the start of a received payload.
pub fn decode(data: &[u8]) -> Option<(u64, u64)> {
    let mut fields = data.splitn(3, |&b| b == b'.');
    let seq = parse_hex(fields.next()?)?;
    let sent = parse_hex(fields.next()?)?;
    fields.next()?;
    Some((seq, sent))
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc << 4 | u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_at_every_size() {
        for size in [0, 5, 16, 64, 4096] {
            let mut out = Vec::new();
            encode(0x1234, 987_654_321, size, &mut out);
            assert_eq!(out.len(), size.max(min_len(0x1234, 987_654_321)));
            assert_eq!(decode(&out), Some((0x1234, 987_654_321)));
        }
        let mut out = Vec::new();
        encode(0, 0, 4, &mut out);
        assert_eq!(out, b"0.0.");
        assert_eq!(decode(&out), Some((0, 0)));
    }

    #[test]
    fn foreign_payloads_are_not_read_as_ours() {
        for junk in [&b""[..], b"hello", b"1.2", b"zz.1.", b"1.zz."] {
            assert_eq!(decode(junk), None, "{junk:?}");
        }
    }
}
