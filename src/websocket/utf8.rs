//! Incremental UTF-8 validation for Text messages that arrive in pieces (fragments, partial reads).
//!
//! RFC 6455 §8.1: an endpoint that receives invalid UTF-8 in a text message "MUST _Fail the
//! WebSocket Connection_". [`Utf8Validator`] fails *fast*: as soon as the bytes seen so far cannot
//! be the prefix of any valid UTF-8 string, even when a code point is split across calls.
//! The bulk of each piece goes through `std::str::from_utf8` (fast on ASCII); only the few bytes of
//! a split code point go through the byte-wise state machine below (Unicode Table 3-7).

use std::fmt;

/// The bytes seen so far are not (a prefix of) valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid utf-8")
    }
}

impl std::error::Error for InvalidUtf8 {}

/// Validates a UTF-8 byte stream fed in arbitrary pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utf8Validator {
    state: Step,
}

/// Where the validator is inside a code point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Between code points.
    Boundary,
    /// Inside a code point: `needed` continuation bytes remain; the next one must be in `lo..=hi`
    /// (narrower than 0x80..=0xBF right after E0, ED, F0 and F4).
    Inside { needed: u8, lo: u8, hi: u8 },
    /// Invalid bytes were seen; stays failed until [`Utf8Validator::reset`].
    Failed,
}

impl Default for Utf8Validator {
    fn default() -> Self {
        Self::new()
    }
}

impl Utf8Validator {
    /// A validator at the start of a string.
    pub fn new() -> Self {
        Utf8Validator {
            state: Step::Boundary,
        }
    }

    /// Back to the start of a string.
    pub fn reset(&mut self) {
        self.state = Step::Boundary;
    }

    /// Validates the next piece. Fails as soon as the stream can no longer be valid UTF-8.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut rest = bytes;
        // Finish a code point split by the previous piece, byte by byte.
        while let Step::Inside { .. } = self.state {
            let Some((&b, tail)) = rest.split_first() else {
                return Ok(());
            };
            self.step(b)?;
            rest = tail;
        }
        if self.state == Step::Failed {
            return Err(InvalidUtf8);
        }
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => {
                self.state = Step::Failed;
                Err(InvalidUtf8)
            }
            // The piece ends inside a code point: run the tail through the state machine so the
            // next piece resumes from it.
            Err(e) => {
                let tail = rest.get(e.valid_up_to()..).unwrap_or_default();
                tail.iter().try_for_each(|&b| self.step(b))
            }
        }
    }

    /// Ends the string: fails if it stops inside a code point. Leaves the validator reset for the
    /// next string either way.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let state = self.state;
        self.reset();
        match state {
            Step::Boundary => Ok(()),
            Step::Inside { .. } | Step::Failed => Err(InvalidUtf8),
        }
    }

    /// True between code points (nothing pending, nothing failed).
    pub fn is_boundary(&self) -> bool {
        self.state == Step::Boundary
    }

    fn step(&mut self, b: u8) -> Result<(), InvalidUtf8> {
        self.state = match self.state {
            Step::Boundary => match b {
                0x00..=0x7f => Step::Boundary,
                0xc2..=0xdf => inside(1, 0x80, 0xbf),
                0xe0 => inside(2, 0xa0, 0xbf), // no overlong 3-byte forms
                0xe1..=0xec | 0xee..=0xef => inside(2, 0x80, 0xbf),
                0xed => inside(2, 0x80, 0x9f), // no UTF-16 surrogates
                0xf0 => inside(3, 0x90, 0xbf), // no overlong 4-byte forms
                0xf1..=0xf3 => inside(3, 0x80, 0xbf),
                0xf4 => inside(3, 0x80, 0x8f), // nothing above U+10FFFF
                // 0x80..=0xc1 (stray continuation, overlong lead) and 0xf5..=0xff
                _ => Step::Failed,
            },
            Step::Inside { needed, lo, hi } if (lo..=hi).contains(&b) => match needed {
                1 => Step::Boundary,
                n => inside(n - 1, 0x80, 0xbf),
            },
            Step::Inside { .. } | Step::Failed => Step::Failed,
        };
        if self.state == Step::Failed {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

fn inside(needed: u8, lo: u8, hi: u8) -> Step {
    Step::Inside { needed, lo, hi }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(bytes)?;
        v.finish()
    }

    fn byte_at_a_time(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        for b in bytes {
            v.feed(std::slice::from_ref(b))?;
        }
        v.finish()
    }

    fn every_split(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        let mut result = Ok(());
        for split in 0..=bytes.len() {
            let mut v = Utf8Validator::new();
            let (a, b) = bytes.split_at(split);
            let r = v.feed(a).and_then(|()| v.feed(b)).and_then(|()| v.finish());
            if split == 0 {
                result = r;
            } else {
                assert_eq!(r, result, "split at {split} of {bytes:02x?}");
            }
        }
        result
    }

    /// Checks the three ways agree with each other and with std.
    fn check(bytes: &[u8]) -> bool {
        let expected = std::str::from_utf8(bytes).is_ok();
        let w = whole(bytes).is_ok();
        assert_eq!(w, expected, "whole {bytes:02x?}");
        assert_eq!(
            byte_at_a_time(bytes).is_ok(),
            expected,
            "bytewise {bytes:02x?}"
        );
        assert_eq!(every_split(bytes).is_ok(), expected, "split {bytes:02x?}");
        w
    }

    /// Index of the first byte after which `feed` fails, fed one byte at a time.
    fn fails_at(bytes: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        bytes
            .iter()
            .position(|b| v.feed(std::slice::from_ref(b)).is_err())
    }

    #[test]
    fn decodes_autobahn_case_6_valid_vectors() {
        let valid: &[&[u8]] = &[
            b"",
            b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
            "κόσμε".as_bytes(),
            b"\x00",
            b"\xc2\x80",
            b"\xe0\xa0\x80",
            b"\xf0\x90\x80\x80",
            b"\x7f",
            b"\xdf\xbf",
            b"\xef\xbf\xbf",
            b"\xf4\x8f\xbf\xbf",
            b"\xed\x9f\xbf",
            b"\xee\x80\x80",
            b"\xef\xbf\xbd",
            b"\xef\xbf\xbe", // U+FFFE is a noncharacter but valid UTF-8
        ];
        for v in valid {
            assert!(check(v), "{v:02x?}");
        }
    }

    #[test]
    fn decodes_autobahn_case_6_invalid_vectors() {
        let invalid: &[&[u8]] = &[
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\x80",
            b"\xbf",
            b"\x80\xbf\x80",
            b"\xc0 ",
            b"\xf8\x88\x80\x80\x80",
            b"\xfc\x84\x80\x80\x80\x80",
            b"\xc0\xaf",
            b"\xe0\x80\xaf",
            b"\xf0\x80\x80\xaf",
            b"\xc1\xbf",
            b"\xe0\x9f\xbf",
            b"\xf0\x8f\xbf\xbf",
            b"\xed\xa0\x80",
            b"\xed\xbf\xbf",
            b"\xed\xa0\x80\xed\xb0\x80",
            b"\xf4\x90\x80\x80",
            b"\xfe",
            b"\xff",
            b"\xc2",
            b"\xe0\xa0",
            b"\xf0\x90\x80",
            b"Hello\xf4",
        ];
        for v in invalid {
            assert!(!check(v), "{v:02x?}");
        }
    }

    #[test]
    fn fails_fast_on_impossible_prefixes() {
        assert_eq!(fails_at(b"\xf4\x90"), Some(1));
        assert_eq!(fails_at(b"\xed\xa0"), Some(1));
        assert_eq!(fails_at(b"\xe0\x80"), Some(1));
        assert_eq!(fails_at(b"\xf0\x8f"), Some(1));
        assert_eq!(fails_at(b"ab\xc0"), Some(2));
        assert_eq!(fails_at(b"\xc1"), Some(0));
        assert_eq!(fails_at(b"\xf5"), Some(0));
        assert_eq!(
            fails_at(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"),
            Some(12)
        );
        // Whole pieces fail immediately too, including a bad prefix left at the end of a piece.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"valid text \xf4\x90"), Err(InvalidUtf8));
        assert_eq!(v.feed(b"a"), Err(InvalidUtf8), "stays failed");
        v.reset();
        assert_eq!(v.feed(b"a"), Ok(()));
        // A valid prefix split across pieces is held, not rejected.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(b"x\xf0\x9f"), Ok(()));
        assert!(!v.is_boundary());
        assert_eq!(v.feed(b"\x98"), Ok(()));
        assert_eq!(v.feed(b"\x80y"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }

    /// std reports `error_len() == None` exactly when the input is a valid prefix cut short.
    fn std_says_possible_prefix(bytes: &[u8]) -> bool {
        match std::str::from_utf8(bytes) {
            Ok(_) => true,
            Err(e) => e.error_len().is_none(),
        }
    }

    #[test]
    fn decodes_every_short_prefix_like_std() {
        // Exhaustive over two-byte inputs and over three-byte inputs with a multi-byte lead,
        // fed one byte at a time: rejected exactly when std sees an impossible prefix.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let mut v = Utf8Validator::new();
                let ok = v.feed(&[a]).and_then(|()| v.feed(&[b])).is_ok();
                assert_eq!(ok, std_says_possible_prefix(&[a, b]), "{a:02x} {b:02x}");
            }
        }
        for a in 0xe0..=0xf4u8 {
            for b in 0x80..=0xbfu8 {
                for c in 0..=255u8 {
                    let mut v = Utf8Validator::new();
                    let ok = [a, b, c]
                        .iter()
                        .all(|x| v.feed(std::slice::from_ref(x)).is_ok());
                    assert_eq!(
                        ok,
                        std_says_possible_prefix(&[a, b, c]),
                        "{a:02x} {b:02x} {c:02x}"
                    );
                }
            }
        }
    }

    #[test]
    fn finish_resets_for_the_next_string() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
        assert_eq!(v.feed(b"ok"), Ok(()));
        assert_eq!(v.finish(), Ok(()));
    }
}
