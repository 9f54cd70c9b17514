//! How a request body is framed (RFC 9112 §6.3) and the decoder that reads it.
use super::chunked::ChunkedDecoder;
use super::error::RequestError;
use super::request::RequestHead;

/// The message body framing a request announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no Content-Length, no Transfer-Encoding: RFC 9112 §6.3 rule 7).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

impl BodyFraming {
    /// Decides the framing of a request, refusing every ambiguity that could let two parsers read
    /// different requests out of the same bytes (request smuggling).
    pub fn decide(head: &RequestHead) -> Result<BodyFraming, RequestError> {
        let has_te = head.header("transfer-encoding").is_some();
        let has_cl = head.header("content-length").is_some();
        if has_te && has_cl {
            return Err(RequestError::ContentLengthWithTransferEncoding);
        }
        if has_te {
            if head.minor_version == 0 {
                return Err(RequestError::TransferEncodingInHttp10);
            }
            let codings: Vec<&[u8]> = head
                .headers_named("transfer-encoding")
                .flat_map(|v| v.split(|&b| b == b','))
                .map(|c| c.trim_ascii())
                .collect();
            return match codings.as_slice() {
                [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(BodyFraming::Chunked),
                _ => Err(RequestError::UnsupportedTransferCoding),
            };
        }
        if has_cl {
            // Several fields, or a list, are accepted only when every value is the same number.
            let mut length = None;
            for value in head
                .headers_named("content-length")
                .flat_map(|v| v.split(|&b| b == b','))
            {
                let n = parse_decimal(value.trim_ascii()).ok_or(RequestError::BadContentLength)?;
                if length.is_some_and(|l| l != n) {
                    return Err(RequestError::BadContentLength);
                }
                length = Some(n);
            }
            return length
                .map(BodyFraming::Length)
                .ok_or(RequestError::BadContentLength);
        }
        Ok(BodyFraming::None)
    }
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?
    })
}

/// Reads a body of a known framing out of successive input slices, enforcing a size limit.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    /// A `Content-Length` body (RFC 9112 §6.3).
    Length {
        /// Body bytes still to read, in bytes.
        remaining: u64,
    },
    /// A `Transfer-Encoding: chunked` body (RFC 9112 §7.1).
    Chunked(ChunkedDecoder),
}

impl BodyDecoder {
    /// A decoder for `framing`; `None` when the request has no body.
    pub fn new(framing: BodyFraming) -> Option<BodyDecoder> {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => None,
            BodyFraming::Length(n) => Some(BodyDecoder::Length { remaining: n }),
            BodyFraming::Chunked => Some(BodyDecoder::Chunked(ChunkedDecoder::new())),
        }
    }

    /// Appends body bytes from `input` to `body`; returns the bytes consumed. A body growing past
    /// `max_len` is an error as soon as it happens, not after it has all been buffered.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<usize, RequestError> {
        let consumed = match self {
            BodyDecoder::Length { remaining } => {
                let take = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                body.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                take
            }
            BodyDecoder::Chunked(d) => {
                let n = d
                    .decode(input, body)
                    .map_err(RequestError::BadChunkedBody)?;
                // A chunk announcing more than the limit allows is refused before its data comes.
                if (body.len() as u64).saturating_add(d.announced_remaining()) > max_len as u64 {
                    return Err(RequestError::BodyTooLarge {
                        announced: None,
                        max: max_len,
                    });
                }
                n
            }
        };
        if body.len() > max_len {
            return Err(RequestError::BodyTooLarge {
                announced: None,
                max: max_len,
            });
        }
        Ok(consumed)
    }

    /// Whether the whole body has been read: the length reached, or the last chunk and trailers
    /// seen.
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Length { remaining } => *remaining == 0,
            BodyDecoder::Chunked(d) => d.is_done(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::request::{HeadReader, Limits};

    fn framing(head: &str) -> Result<BodyFraming, RequestError> {
        let head = HeadReader::new()
            .decode(head.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap();
        BodyFraming::decide(&head)
    }

    #[test]
    fn decides_framing() {
        let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(framing(get), Ok(BodyFraming::None));
        let cl = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(framing(cl), Ok(BodyFraming::Length(12)));
        let same =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(framing(same), Ok(BodyFraming::Length(3)));
        let te = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(framing(te), Ok(BodyFraming::Chunked));
    }

    #[test]
    fn refuses_ambiguous_framing() {
        let cases = [
            ("Content-Length: 3\r\nTransfer-Encoding: chunked", 400),
            ("Content-Length: 3\r\nContent-Length: 4", 400),
            ("Content-Length: 3, 4", 400),
            ("Content-Length: -1", 400),
            ("Content-Length: +3", 400),
            ("Content-Length: 0x10", 400),
            ("Content-Length: 99999999999999999999", 400),
            ("Content-Length: ", 400),
            ("Transfer-Encoding: gzip", 501),
            ("Transfer-Encoding: gzip, chunked", 501),
            ("Transfer-Encoding: chunked, chunked", 501),
        ];
        for (fields, status) in cases {
            let head = format!("POST / HTTP/1.1\r\nHost: a\r\n{fields}\r\n\r\n");
            assert_eq!(framing(&head).unwrap_err().status(), status, "{fields}");
        }
        let http10 = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(framing(http10), Err(RequestError::TransferEncodingInHttp10));
    }

    #[test]
    fn body_limit_applies_while_reading() {
        let mut d = BodyDecoder::new(BodyFraming::Length(100)).unwrap();
        let mut body = vec![];
        assert_eq!(d.decode(&[1; 10], &mut body, 16), Ok(10));
        assert_eq!(
            d.decode(&[1; 10], &mut body, 16),
            Err(RequestError::BodyTooLarge {
                announced: None,
                max: 16
            })
        );
    }

    #[test]
    fn oversized_chunk_is_refused_when_announced() {
        let mut d = BodyDecoder::new(BodyFraming::Chunked).unwrap();
        let mut body = vec![];
        assert_eq!(
            d.decode(b"100000\r\nabc", &mut body, 1000),
            Err(RequestError::BodyTooLarge {
                announced: None,
                max: 1000
            })
        );
    }

    #[test]
    fn length_body_stops_at_its_end() {
        let mut d = BodyDecoder::new(BodyFraming::Length(3)).unwrap();
        let mut body = vec![];
        assert_eq!(d.decode(b"abcGET", &mut body, 16), Ok(3));
        assert!(d.is_done());
        assert_eq!(body, b"abc");
    }
}
