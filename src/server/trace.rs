//! Where trace records go: stderr (`--trace`), a JSON Lines file (`--trace-file`), and the
//! `GET /trace` event stream. Records are cut from each connection's bytes by its dissectors
//! (see [`crate::trace`]); a connection has dissectors only while some sink is listening, so with
//! tracing off the hot path pays one branch.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use super::Server;
use crate::http1::chunked::encode_chunk;
use crate::ledger::{Category, Layout, Transport};
use crate::outbuf::{Segment, SharedUnit};
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

    /// A connection streams the feed from now on.
    pub(crate) fn subscribe(&mut self, key: usize, chunked: bool) {
        self.feed.push((key, chunked));
    }

    /// A connection no longer streams the feed.
    pub(crate) fn unsubscribe(&mut self, key: usize) {
        self.feed.retain(|&(k, _)| k != key);
    }

    /// Dissectors for a new connection when tracing.
    pub(crate) fn new_dissectors(&self) -> Option<Box<(Dissector, Dissector)>> {
        self.active().then(|| {
            Box::new((
                Dissector::new(Direction::Received),
                Dissector::new(Direction::Sent),
            ))
        })
    }

    /// Writes a record to stderr and the file, and encodes it for the feed: one encoding per
    /// framing, shared by every feed reader.
    fn sink(&mut self, record: &Record) -> Option<(SharedUnit, SharedUnit)> {
        if self.filter.accepts(record) {
            if let Some(detail) = self.print {
                let mut text = String::new();
                record.render(detail, self.preview, &mut text);
                eprint!("{text}");
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

impl Server {
    /// Turns the units a connection's dissectors completed into records and hands them to every
    /// sink. The observers (`/stats`, `/trace`, the page) are never traced.
    pub(super) fn emit_traces(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.traced.is_empty() {
            return;
        }
        let units = std::mem::take(&mut conn.traced);
        if conn.transport == Transport::Untracked {
            // The dissectors stay: the next request on this connection may be traced.
            return;
        }
        let (transport, channel, id) = (conn.transport, conn.channel.clone(), conn.id);
        let time = self.app.now.saturating_duration_since(self.app.started);
        for (direction, kind, bytes) in units {
            let record = Record {
                time,
                conn: id as usize,
                transport,
                channel: channel.clone(),
                direction,
                kind,
                bytes,
            };
            self.emit(&record);
        }
    }

    fn emit(&mut self, record: &Record) {
        let Some((chunked_unit, bare_unit)) = self.app.tracer.sink(record) else {
            return;
        };
        let feed = self.app.tracer.feed.clone();
        for (key, chunked) in feed {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let unit = if chunked { &chunked_unit } else { &bare_unit };
            conn.output
                .push(Segment::Shared(Arc::clone(&unit.bytes)), unit.layout);
            if conn.output.len() > self.app.config.max_pending_output {
                log::info!("c{}: trace feed reader too slow; closing it", conn.id);
                self.close(key);
            } else {
                self.dirty.push(key);
            }
        }
    }

    /// Tracing just began: connections at a unit boundary get dissectors (a connection in the
    /// middle of a unit would be misread, so it is traced from its next connection on).
    pub(super) fn attach_dissectors(&mut self) {
        use super::session::Session;
        for (_, conn) in self.conns.iter_mut() {
            if conn.dissectors.is_some() || !conn.output.is_empty() || !conn.input.is_empty() {
                continue;
            }
            let (sse, ws) = match &conn.session {
                Session::Http(h) if h.route.is_some() || h.core.is_closing() => continue,
                Session::Http(_) => (None, false),
                Session::Sse(_, super::session::Feed::Trace) => continue,
                Session::Sse(stream, _) => (Some(stream.is_chunked()), false),
                Session::WebSocket(..) => (None, true),
            };
            conn.dissectors = Some(Box::new((
                Dissector::joining(Direction::Received, sse, ws),
                Dissector::joining(Direction::Sent, sse, ws),
            )));
        }
    }

    /// A connection closed: it no longer reads the feed; tracing may end.
    pub(super) fn trace_forget(&mut self, key: usize) {
        if self.app.tracer.feed.is_empty() {
            return;
        }
        self.app.tracer.unsubscribe(key);
        if !self.app.tracer.active() {
            for (_, conn) in self.conns.iter_mut() {
                conn.dissectors = None;
                conn.traced.clear();
            }
        }
    }
}
