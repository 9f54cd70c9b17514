//! Trace records from every connection to the sinks (see `app::trace`), and the `GET /trace`
//! readers' queues. Records are cut from each connection's bytes by its dissectors (see
//! [`crate::trace`]); a connection has dissectors only while some sink is listening, so with
//! tracing off the hot path pays one branch.
use std::sync::Arc;

use super::event_loop::EventLoop;
use super::peers::Command;
use crate::ledger::Transport;
use crate::outbuf::{Segment, SharedUnit};
use crate::trace::{Direction, Dissector, Record};

impl EventLoop {
    /// Turns the units a connection's dissectors completed into records and hands them to every
    /// sink. The observers (`/stats`, `/trace`, the page) are never traced.
    pub(super) fn emit_traces(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.client.traced.is_empty() {
            return;
        }
        let units = std::mem::take(&mut conn.client.traced);
        if conn.client.transport == Transport::Untracked {
            // The dissectors stay: the next request on this connection may be traced.
            return;
        }
        let (transport, channel, id) = (
            conn.client.transport,
            conn.client.channel.clone(),
            conn.client.id,
        );
        let time = self.app.now.saturating_duration_since(self.app.started);
        for (direction, unit) in units {
            let record = Record {
                time,
                conn: id as usize,
                transport,
                channel: channel.clone(),
                direction,
                kind: unit.kind,
                bytes: unit.bytes,
                len: unit.len,
                inflated: unit.inflated,
            };
            self.emit(&record);
        }
    }

    /// A record cut on this loop: to the sinks, this loop's feed readers and the other loops'.
    fn emit(&mut self, record: &Record) {
        let elsewhere: Vec<usize> = self.app.tracer.loops_with_readers().collect();
        for other in elsewhere {
            self.peers.send(other, Command::Trace(record.clone()));
        }
        if let Some(units) = self.app.tracer.sink(record) {
            self.feed(units);
        }
    }

    /// A record another loop cut, for this loop's feed readers.
    pub(super) fn feed_record(&mut self, record: &Record) {
        if let Some(units) = self.app.tracer.feed_units(record) {
            self.feed(units);
        }
    }

    /// Queues a record's encodings (chunked, bare) on every feed reader of this loop.
    fn feed(&mut self, (chunked_unit, bare_unit): (SharedUnit, SharedUnit)) {
        let feed = self.app.tracer.feed().to_vec();
        for (key, chunked) in feed {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let unit = if chunked { &chunked_unit } else { &bare_unit };
            conn.client
                .output
                .push(Segment::Shared(Arc::clone(&unit.bytes)), unit.layout);
            if conn.client.output.memory() > self.app.config.max_pending_output {
                log::info!(
                    "c{}: trace feed reader too slow; closing it",
                    conn.client.id
                );
                self.close(key);
            } else {
                self.dirty.push(key);
            }
        }
    }

    /// The first trace reader appeared on this loop: every loop's connections get dissectors.
    pub(super) fn tracing_changed(&mut self) {
        for other in 0..self.peers.len() {
            if other != self.index {
                self.peers.send(other, Command::TracingChanged);
            }
        }
        self.on_tracing_changed();
    }

    /// Tracing began or ended somewhere: dissectors come or go with it.
    pub(super) fn on_tracing_changed(&mut self) {
        if self.app.tracer.active() {
            self.attach_dissectors();
        } else {
            self.detach_dissectors();
        }
    }

    /// Tracing just began: connections at a unit boundary get dissectors (a connection in the
    /// middle of a unit would be misread, so it is traced from its next connection on).
    fn attach_dissectors(&mut self) {
        let preview = self.app.tracer.preview();
        for (_, conn) in self.conns.iter_mut() {
            if conn.client.dissectors.is_some()
                || !conn.client.output.is_empty()
                || !conn.client.input.is_empty()
            {
                continue;
            }
            let Some((sse, ws)) = conn.client.session.dissector_join() else {
                continue;
            };
            conn.client.dissectors = Some(Box::new((
                Dissector::joining(Direction::Received, sse, ws).keeping(preview),
                Dissector::joining(Direction::Sent, sse, ws),
            )));
        }
    }

    /// A connection closed: it no longer reads the feed; tracing may end.
    pub(super) fn trace_forget(&mut self, key: usize) {
        if self.app.tracer.feed().is_empty() {
            return;
        }
        self.app.tracer.unsubscribe(key);
        if !self.app.tracer.active() {
            self.tracing_changed();
        }
    }

    fn detach_dissectors(&mut self) {
        for (_, conn) in self.conns.iter_mut() {
            conn.client.dissectors = None;
            conn.client.traced.clear();
        }
    }
}
