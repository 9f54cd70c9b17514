//! A publisher, sans-IO: `POST` requests on one keep-alive connection, pipelined, and the answers
//! counted.
use std::time::Instant;

use super::http::ResponseReader;
use super::subscriber::{Counters, Next};
use super::url::Url;

/// One publishing connection: pipelined `POST`s to one channel's URL, answers counted; no clock
/// of its own (`now` is passed in).
pub struct Publisher {
    /// Where to publish: the channel's `POST` URL.
    pub url: Url,
    /// The caller's label for this publisher (`load` uses the channel's index); not sent.
    pub tag: usize,
    /// Requests, messages, payload and error counts, like a subscriber's.
    pub counters: Counters,
    /// Requests sent and not yet answered.
    pub outstanding: u64,
    /// Answers that were not 2xx.
    pub refused: u64,
    reader: ResponseReader,
    body: Vec<u8>,
    status: u16,
}

impl Publisher {
    /// A publisher to `url`, not yet connected.
    pub fn new(url: Url, tag: usize) -> Publisher {
        Publisher {
            url,
            tag,
            counters: Counters::default(),
            outstanding: 0,
            refused: 0,
            reader: ResponseReader::new(),
            body: Vec::new(),
            status: 0,
        }
    }

    /// The connection is (re)opened: requests pending on the old one count as lost.
    pub fn connected(&mut self) {
        self.counters.connections += 1;
        self.reader.reset();
        // Requests written before a reconnect were lost with the connection.
        self.outstanding = 0;
    }

    /// Appends one `POST` carrying `payload`.
    pub fn publish(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(
            out,
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.url.target,
            self.url.authority,
            payload.len()
        );
        out.extend_from_slice(payload);
        self.counters.requests += 1;
        self.counters.messages += 1;
        self.counters.payload_out += payload.len() as u64;
        self.outstanding += 1;
    }

    /// Reads answers from `input`, counting non-2xx ones as refused; returns the bytes consumed.
    pub fn on_input(&mut self, input: &[u8], now: Instant) -> Result<(usize, Next), String> {
        let mut pos = 0;
        loop {
            let adv = self
                .reader
                .advance(&input[pos..], &mut self.body)
                .map_err(|e| e.to_string())?;
            pos += adv.consumed;
            if let Some(head) = &adv.head {
                self.status = head.status;
                if head.close {
                    self.counters.errors += 1;
                }
            }
            if adv.done {
                self.counters.responses += 1;
                if !(200..300).contains(&self.status) {
                    self.refused += 1;
                }
                self.outstanding = self.outstanding.saturating_sub(1);
                self.body.clear();
                self.reader.reset();
            }
            if adv.consumed == 0 || pos == input.len() {
                let _ = now;
                return Ok((pos, Next::Read));
            }
        }
    }

    /// The server closed the connection: reconnect at once.
    pub fn on_eof(&mut self, now: Instant) -> Next {
        Next::Close(Some(now))
    }
}
