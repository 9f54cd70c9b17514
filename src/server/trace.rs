//! Where trace records go: stderr (`--trace`), a JSON Lines file (`--trace-file`), and the
//! `GET /trace` event stream. Records are cut from each connection's bytes by its dissectors
//! (see [`crate::trace`]); a connection has dissectors only while some sink is listening, so with
//! tracing off the hot path pays one branch.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;

use super::Server;
use super::connection::{Exchange, Phase};
use super::sse::{encode_stream_head, push_syntax};
use crate::http1::chunked::encode_chunk;
use crate::ledger::{Category, Layout, Transport};
use crate::outbuf::SharedUnit;
use crate::sse;
use crate::trace::{Detail, Direction, Dissector, Filter, Record, TraceOptions};

/// The trace sinks of a running server.
#[derive(Default)]
pub(super) struct Tracer {
    print: Option<Detail>,
    file: Option<BufWriter<File>>,
    filter: Filter,
    preview: usize,
    /// Connections streaming `GET /trace`, and whether their stream is chunked (HTTP/1.1).
    feed: Vec<(usize, bool)>,
}

impl Tracer {
    pub(super) fn new(options: &TraceOptions) -> std::io::Result<Tracer> {
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
    pub(super) fn active(&self) -> bool {
        self.print.is_some() || self.file.is_some() || !self.feed.is_empty()
    }
}

impl Server {
    /// Dissectors for a new connection when tracing.
    pub(super) fn new_dissectors(&self) -> Option<Box<(Dissector, Dissector)>> {
        self.tracer.active().then(|| {
            Box::new((
                Dissector::new(Direction::Received),
                Dissector::new(Direction::Sent),
            ))
        })
    }

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
            conn.dissectors = None;
            return;
        }
        let (transport, channel) = (conn.transport, conn.channel.clone());
        let time = self.now.saturating_duration_since(self.started);
        for (direction, kind, bytes) in units {
            let record = Record {
                time,
                conn: key,
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
        let t = &mut self.tracer;
        if t.filter.accepts(record) {
            if let Some(detail) = t.print {
                let mut text = String::new();
                record.render(detail, t.preview, &mut text);
                eprint!("{text}");
            }
            if let Some(file) = &mut t.file {
                let line = record.to_json(t.preview).to_string();
                if let Err(e) = writeln!(file, "{line}").and_then(|_| file.flush()) {
                    log::warn!("trace file: {e}; no longer writing it");
                    t.file = None;
                }
            }
        }
        if t.feed.is_empty() {
            return;
        }
        // One encoding of the event per framing, shared by every feed subscriber.
        let json = record.to_json(t.preview).to_string();
        let mut event = Vec::with_capacity(json.len() + 16);
        sse::encode_event(None, None, &json, &mut event);
        let mut chunk = Vec::with_capacity(event.len() + 12);
        encode_chunk(&event, &mut chunk);
        let shared = |bytes: Vec<u8>| {
            let len = bytes.len();
            SharedUnit::new(bytes, Layout::uniform(Category::Other, len))
        };
        let (chunked_unit, bare_unit) = (shared(chunk), shared(event));
        let feed = t.feed.clone();
        for (key, chunked) in feed {
            if let Some(conn) = self.conns.get_mut(key) {
                let unit = if chunked { &chunked_unit } else { &bare_unit };
                conn.output.push(
                    crate::outbuf::Segment::Shared(Arc::clone(&unit.bytes)),
                    unit.layout,
                );
                if conn.output.len() > self.config.max_pending_output {
                    log::info!("c{key}: trace feed reader too slow; closing it");
                    self.close(key);
                } else {
                    self.dirty.push(key);
                }
            }
        }
    }

    /// `GET /trace`: an event stream of trace records (JSON), every connection but the observers.
    pub(super) fn start_trace_feed(&mut self, key: usize, exchange: Exchange) {
        let was_active = self.tracer.active();
        let chunked = exchange.minor_version >= 1;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut head = Vec::new();
        encode_stream_head(
            exchange,
            self.date.value(),
            &[("Access-Control-Allow-Origin", "*")],
            &mut head,
        );
        conn.output.push_bytes(&head, Category::Other);
        let mut retry = Vec::new();
        sse::encode_retry(self.config.sse_retry.as_millis() as u64, &mut retry);
        push_syntax(&mut conn.output, &retry, Category::Other, chunked);
        conn.requests += 1;
        conn.dissectors = None;
        conn.phase = Phase::Sse {
            channel: None,
            chunked,
            next_heartbeat: self.now + self.config.sse_heartbeat,
        };
        self.tracer.feed.push((key, chunked));
        if !was_active {
            self.attach_dissectors();
        }
    }

    /// Tracing just began: connections at a unit boundary get dissectors (a connection in the
    /// middle of a unit would be misread, so it is traced from its next connection on).
    fn attach_dissectors(&mut self) {
        for (_, conn) in self.conns.iter_mut() {
            if conn.transport == Transport::Untracked
                || !conn.output.is_empty()
                || !conn.input.is_empty()
            {
                continue;
            }
            let (sse, ws) = match &conn.phase {
                Phase::AwaitingHead | Phase::Parked { .. } => (None, false),
                Phase::Sse { chunked, .. } => (Some(*chunked), false),
                Phase::WebSocket(_) => (None, true),
                Phase::ReadingBody { .. } | Phase::Closing { .. } => continue,
            };
            conn.dissectors = Some(Box::new((
                Dissector::joining(Direction::Received, sse, ws),
                Dissector::joining(Direction::Sent, sse, ws),
            )));
        }
    }

    /// A connection closed: it no longer reads the feed; tracing may end.
    pub(super) fn trace_forget(&mut self, key: usize) {
        if self.tracer.feed.is_empty() {
            return;
        }
        self.tracer.feed.retain(|&(k, _)| k != key);
        if !self.tracer.active() {
            for (_, conn) in self.conns.iter_mut() {
                conn.dissectors = None;
                conn.traced.clear();
            }
        }
    }
}
