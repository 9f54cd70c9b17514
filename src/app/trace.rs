//! Where trace records go: stderr (`--trace`), a JSON Lines file (`--trace-file`), and the
//! `GET /trace` event stream, whose readers the driver feeds.
use std::fs::File;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::http1::chunked::encode_chunk;
use crate::ledger::{Category, Layout};
use crate::outbuf::SharedUnit;
use crate::sse;
use crate::trace::{Detail, Direction, Dissector, Filter, Record, TraceOptions};

use super::Shared;

/// The trace sinks of a running server.
#[derive(Default)]
pub(crate) struct Tracer {
    print: Option<Detail>,
    /// Opened by each loop for appending: a record goes out as one `write` of its whole line,
    /// which the kernel appends in one piece, so loops writing at once never cut into each
    /// other's lines.
    file: Option<File>,
    filter: Filter,
    preview: usize,
    /// Connections of this loop streaming `GET /trace`, and whether their stream is chunked
    /// (HTTP/1.1).
    feed: Vec<(usize, bool)>,
    /// The loops' shared state, where every loop's feed readers are counted, and this loop's
    /// index: a record cut on any loop reaches every reader.
    loops: Option<(Arc<Shared>, usize)>,
}

impl Tracer {
    pub(crate) fn new(options: &TraceOptions) -> std::io::Result<Tracer> {
        let file = match &options.file {
            Some(path) => Some(File::options().create(true).append(true).open(path)?),
            None => None,
        };
        Ok(Tracer {
            print: options.print,
            file,
            filter: options.filter.clone(),
            preview: options.preview,
            feed: Vec::new(),
            loops: None,
        })
    }

    /// Counts this loop's feed readers, as loop `index`, where every loop of the server sees them.
    pub(crate) fn join(&mut self, shared: Arc<Shared>, index: usize) {
        self.loops = Some((shared, index));
    }

    /// Whether any sink listens, on this loop or another: connections get dissectors only then.
    pub(crate) fn active(&self) -> bool {
        self.print.is_some()
            || self.file.is_some()
            || !self.feed.is_empty()
            || self
                .loops
                .as_ref()
                .is_some_and(|(shared, _)| shared.trace_readers() > 0)
    }

    /// The other loops with feed readers, which the records this loop cuts must reach.
    pub(crate) fn loops_with_readers(&self) -> impl Iterator<Item = usize> + '_ {
        self.loops.iter().flat_map(|(shared, own)| {
            let own = *own;
            shared
                .trace_readers_by_loop
                .iter()
                .enumerate()
                .filter(move |&(i, n)| i != own && n.load(Ordering::SeqCst) > 0)
                .map(|(i, _)| i)
        })
    }

    /// Counts a reader of this loop that joined (or left) where every loop sees it.
    fn count_reader(&self, joined: bool) {
        if let Some((shared, index)) = &self.loops {
            let readers = &shared.trace_readers_by_loop[*index];
            if joined {
                readers.fetch_add(1, Ordering::SeqCst);
            } else {
                readers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Payload bytes a record shows (and a received unit keeps).
    pub(crate) fn preview(&self) -> usize {
        self.preview
    }

    /// A connection streams the feed from now on.
    pub(crate) fn subscribe(&mut self, key: usize, chunked: bool) {
        self.feed.push((key, chunked));
        self.count_reader(true);
    }

    /// The feed's readers, and whether each stream is chunked.
    pub(crate) fn feed(&self) -> &[(usize, bool)] {
        &self.feed
    }

    /// A connection no longer streams the feed.
    pub(crate) fn unsubscribe(&mut self, key: usize) {
        let before = self.feed.len();
        self.feed.retain(|&(k, _)| k != key);
        if self.feed.len() < before {
            self.count_reader(false);
        }
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

    /// Writes a record cut on this loop to stderr and the file, and encodes it for this loop's
    /// feed readers (see [`Tracer::feed_units`]).
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
                let mut line = record.to_json(self.preview).to_string();
                line.push('\n');
                if let Err(e) = file.write_all(line.as_bytes()) {
                    log::warn!("trace file: {e}; no longer writing it");
                    self.file = None;
                }
            }
        }
        self.feed_units(record)
    }

    /// A record as this loop's feed readers get it, when it has any: one encoding per framing
    /// (chunked, bare), shared by every reader.
    pub(crate) fn feed_units(&self, record: &Record) -> Option<(SharedUnit, SharedUnit)> {
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
