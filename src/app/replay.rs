//! Replays paced by the reader. A stream that resumes from an id (`Last-Event-ID`, `?since=`) is
//! sent what it missed a window at a time: as much as fits in half of `--max-pending-output`
//! (at least one message), then more each time the client has taken most of it. So a client
//! that asks for a long history and never reads holds one window, not the history encoded once
//! more; and one that reads gets all of it, in order. Live messages published meanwhile are not
//! queued ahead of the replay: they are in the history, and the replay reaches them (a message
//! evicted before it does is reported as a gap, as on any resume).
use super::{App, Client, Feed, Session};
use crate::delivery::{self, Encodings};
use crate::http1::chunked::queue_chunk;
use crate::ledger::{Category, Counter};

impl App {
    /// Output memory a replay fills before it waits for the client to read.
    pub(super) fn replay_window(&self) -> usize {
        (self.config.max_pending_output / 2).max(1)
    }

    /// Queues the next window of the replay of `conn`'s stream after id `after`: gap or reset
    /// notices, then messages until the window is full. Leaves `conn.last_id` at the last id
    /// queued, and `conn.replaying` set while more remain. Returns the messages queued.
    pub(super) fn queue_replay(&mut self, conn: &mut Client, after: u64) -> u64 {
        let window = self.replay_window();
        let channel = match &conn.session {
            Session::Sse(_, Feed::Channel(c)) | Session::WebSocket(_, Some(c)) => c.clone(),
            _ => {
                conn.replaying = false;
                return 0;
            }
        };
        let backlog = self.hub().since(&channel, after);
        let mut queued = 0;
        let mut last = None;
        match &mut conn.session {
            Session::Sse(stream, _) => {
                let notices = delivery::sse_notices(Some(&backlog));
                queue_chunk(
                    &mut conn.output,
                    &notices,
                    Category::SseFields,
                    stream.is_chunked(),
                );
                for message in &backlog.messages {
                    if queued > 0 && conn.output.memory() >= window {
                        break;
                    }
                    let unit = delivery::sse_event(message, stream.is_chunked());
                    stream.deliver(&unit, message.published_at, &mut conn.output);
                    queued += 1;
                    last = Some(message.id);
                }
            }
            Session::WebSocket(ws, _) => {
                for notice in delivery::ws_notices(&backlog) {
                    ws.send_notice(&notice, &mut conn.output);
                }
                let deflate = ws.deflate();
                for message in &backlog.messages {
                    if queued > 0 && conn.output.memory() >= window {
                        break;
                    }
                    // This client's own encodings: the JSON object made once, for the frame and
                    // for the ledger's uncompressed size.
                    let encodings = Encodings::default();
                    let unit = encodings.ws_frame_for(message, deflate, &mut self.compressor);
                    ws.deliver(&unit, message.published_at, &mut conn.output);
                    self.count_deflated(conn.transport, &unit, || {
                        encodings.json(message).bytes.len()
                    });
                    queued += 1;
                    last = Some(message.id);
                }
            }
            Session::Http(_) => {}
        }
        let done = last.is_none_or(|id| id >= backlog.last_id);
        if let Some(id) = last {
            conn.last_id = conn.last_id.max(id);
        }
        conn.replaying = !done;
        queued as u64
    }

    /// The client took some of its output: a replay in progress queues its next window once less
    /// than half a window is left. Returns whether anything was queued.
    pub(crate) fn on_output_taken(&mut self, conn: &mut Client) -> bool {
        if !conn.replaying {
            return false;
        }
        let after = conn.last_id;
        if conn.output.memory() >= self.replay_window() / 2 {
            return false;
        }
        let queued = self.queue_replay(conn, after);
        self.ledger.count(conn.transport, Counter::Messages, queued);
        queued > 0
    }
}
