//! Where trace records go: stderr (`--trace`), a JSON Lines file (`--trace-file`), and the
//! `GET /trace` event stream, whose readers the driver feeds.
use std::fs::File;
use std::io::{BufWriter, Write};

use crate::http1::chunked::encode_chunk;
use crate::ledger::{Category, Layout};
use crate::outbuf::SharedUnit;
use crate::sse;
use crate::trace::{Detail, Direction, Dissector, Filter, Record, TraceOptions};

/// The trace sinks of a running server.
#[derive(Default)]
pub(crate) struct Tracer {
    print: Option<Detail>,
    file: Option<BufWriter<File>>,
    filter: Filter,
    preview: usize,
    /// Connections streaming `GET /trace`, and whether their stream is chunked (HTTP/1.1).
    feed: Vec<(usize, bool)>,
}

impl Tracer {
    pub(crate) fn new(options: &TraceOptions) -> std::io::Result<Tracer> {
        let file = match &options.file {
            Some(path) => Some(BufWriter::new(
                File::options().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        Ok(Tracer {
            print: options.print,
            file,
            filter: options.filter.clone(),
            preview: options.preview,
            feed: Vec::new(),
        })
    }

    /// Whether any sink listens: connections get dissectors only then.
    pub(crate) fn active(&self) -> bool {
        self.print.is_some() || self.file.is_some() || !self.feed.is_empty()
    }

    /// Payload bytes a record shows (and a received unit keeps).
    pub(crate) fn preview(&self) -> usize {
        self.preview
    }

    /// A connection streams the feed from now on.
    pub(crate) fn subscribe(&mut self, key: usize, chunked: bool) {
        self.feed.push((key, chunked));
    }

    /// The feed's readers, and whether each stream is chunked.
    pub(crate) fn feed(&self) -> &[(usize, bool)] {
        &self.feed
    }

    /// A connection no longer streams the feed.
    pub(crate) fn unsubscribe(&mut self, key: usize) {
        self.feed.retain(|&(k, _)| k != key);
    }

    /// Dissectors for a new connection when tracing.
    pub(crate) fn new_dissectors(&self) -> Option<Box<(Dissector, Dissector)>> {
        self.active().then(|| {
            Box::new((
                Dissector::new(Direction::Received).keeping(self.preview),
                Dissector::new(Direction::Sent),
            ))
        })
    }

    /// Writes a record to stderr and the file, and encodes it for the feed: one encoding per
    /// framing, shared by every feed reader.
    pub(crate) fn sink(&mut self, record: &Record) -> Option<(SharedUnit, SharedUnit)> {
        if self.filter.accepts(record) {
            if let Some(detail) = self.print {
                let mut text = String::new();
                record.render(detail, self.preview, &mut text);
                // A closed stderr (`pushwire --trace 2>&1 | head`) ends this sink, not the server.
                if let Err(e) = std::io::stderr().lock().write_all(text.as_bytes()) {
                    log::warn!("trace on stderr: {e}; no longer printing it");
                    self.print = None;
                }
            }
            if let Some(file) = &mut self.file {
                let line = record.to_json(self.preview).to_string();
                if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
                    log::warn!("trace file: {e}; no longer writing it");
                    self.file = None;
                }
            }
        }
        if self.feed.is_empty() {
            return None;
        }
        let json = record.to_json(self.preview).to_string();
        let mut event = Vec::with_capacity(json.len() + 16);
        sse::encode_event(None, None, &json, &mut event);
        let mut chunk = Vec::with_capacity(event.len() + 12);
        encode_chunk(&event, &mut chunk);
        let uniform = |bytes: Vec<u8>| {
            let len = bytes.len();
            SharedUnit::new(bytes, Layout::uniform(Category::Other, len))
        };
        Some((uniform(chunk), uniform(event)))
    }
}
