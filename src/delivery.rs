//! How a published message is put on the wire by each transport, encoded once per message and
//! shared by every subscriber: the JSON object (polls, and inside WebSocket frames), the SSE event
//! in its HTTP chunk (or bare, for HTTP/1.0 streams), the WebSocket text frame, plain or
//! compressed (permessage-deflate: one slot per window the server compresses with; the server
//! keeps no context, so the compressed bytes are the same for every subscriber). Each encoding
//! carries its [`Layout`](crate::ledger::Layout) so the ledger can tell payload from overhead.
//!
//! A live message is encoded once per transport for its fan-out
//! ([`Encodings`](crate::delivery::Encodings), made by the first subscriber that needs each),
//! and every subscriber's queue shares those bytes. Nothing
//! is kept beside the history: a replay (a poll, a resume from an id) encodes what it sends, and
//! its bytes live in that client's output queue until written. Kept encodings would be memory
//! outside the hub's budget, and not a little of it: a payload of newlines is 2× as JSON and 7×
//! as SSE `data:` lines, so the four transports' encodings of one message can be 19× its payload.
//!
//! This is also where the gap and reset notices are written for every transport, each in one
//! place. The protocol modules meet here: [`crate::sse`] writes the event, [`crate::http1`] the
//! chunk around it, [`crate::websocket`] the frame head; none of them knows the others.
use std::sync::{Arc, OnceLock};

use crate::http1::chunked::encode_chunk_with_layout;
use crate::hub::{self, Backlog};
use crate::ledger::{Category, Layout};
use crate::outbuf::SharedUnit;
use crate::polling::{self, encode_message_json, gap_json};
use crate::sse;
use crate::websocket::deflate::Compressor;
use crate::websocket::{self, DeflateAgreement, Opcode};

/// Each transport's encoding of one message, made at most once per fan-out and shared by every
/// subscriber the fan-out reaches; dropped with it (never kept beside the history).
#[derive(Debug, Default)]
pub struct Encodings {
    /// The JSON object `{"id":N,"data":"…"}` (poll and long-poll bodies, WebSocket payloads).
    json: OnceLock<Arc<SharedUnit>>,
    /// An SSE event inside one HTTP chunk (HTTP/1.1 streams).
    sse_chunk: OnceLock<Arc<SharedUnit>>,
    /// An SSE event without chunk framing (HTTP/1.0 streams, delimited by close).
    sse_event: OnceLock<Arc<SharedUnit>>,
    /// A complete WebSocket text frame carrying the JSON object.
    ws_frame: OnceLock<Arc<SharedUnit>>,
    /// The same frame compressed (permessage-deflate, RSV1) with a 32 KiB window: for every
    /// subscriber that did not limit `server_max_window_bits`. The server keeps no context
    /// (`server_no_context_takeover`), so the bytes do not depend on the subscriber.
    ws_deflate: OnceLock<Arc<SharedUnit>>,
    /// The same frame compressed with the dictionary reset every 256 bytes, which meets any
    /// `server_max_window_bits` from 8 to 14: for subscribers that asked for a smaller window.
    ws_deflate_small_window: OnceLock<Arc<SharedUnit>>,
}

/// A message as the server's hub holds it.
pub type Message = hub::Message;

impl Encodings {
    /// The message's JSON object, made once for this fan-out.
    pub fn json(&self, message: &Message) -> Arc<SharedUnit> {
        self.json.get_or_init(|| message_json(message)).clone()
    }

    /// The message's SSE event (chunk-framed for HTTP/1.1, bare for HTTP/1.0), made once for
    /// this fan-out.
    pub fn sse_event(&self, message: &Message, chunked: bool) -> Arc<SharedUnit> {
        let slot = if chunked {
            &self.sse_chunk
        } else {
            &self.sse_event
        };
        slot.get_or_init(|| sse_event(message, chunked)).clone()
    }

    /// The message's WebSocket text frame, made once for this fan-out (with its JSON object).
    pub fn ws_frame(&self, message: &Message) -> Arc<SharedUnit> {
        self.ws_frame
            .get_or_init(|| Arc::new(encode_ws_frame(message, &self.json(message))))
            .clone()
    }

    /// The frame a channel message takes on a WebSocket that negotiated `deflate` (or not): the
    /// plain text frame, or the compressed one shared by every subscriber with the same window,
    /// each made once for this fan-out. A message that does not shrink when compressed shares
    /// the plain frame (RSV1 is per message). The server's one `compressor` is made at the first
    /// message that needs it.
    pub fn ws_frame_for(
        &self,
        message: &Message,
        deflate: Option<DeflateAgreement>,
        compressor: &mut Option<Compressor>,
    ) -> Arc<SharedUnit> {
        let Some(agreement) = deflate else {
            return self.ws_frame(message);
        };
        let (slot, window_bits) = if agreement.server_max_window_bits >= 15 {
            (&self.ws_deflate, 15)
        } else {
            (&self.ws_deflate_small_window, 8)
        };
        slot.get_or_init(|| {
            let json = self.json(message);
            let mut deflated = Vec::new();
            let compressor = compressor.get_or_insert_with(Compressor::new);
            if !compressor.compress(&json.bytes, window_bits, &mut deflated) {
                return self.ws_frame(message);
            }
            let mut out = Vec::with_capacity(websocket::frame_len(deflated.len()));
            websocket::frame::encode_compressed_frame(Opcode::Text, &deflated, &mut out);
            let layout = Layout::from_runs(&[
                (Category::WsFrameHeader, out.len() - deflated.len()),
                (Category::WsCompressed, deflated.len()),
            ]);
            Arc::new(SharedUnit::new(out, layout))
        })
        .clone()
    }
}

/// The message's JSON object, encoded for one answer.
pub fn message_json(message: &Message) -> Arc<SharedUnit> {
    Arc::new(encode_message_json(message))
}

/// The body answering a poll or a woken long-poll (shared by every long-poll parked after the
/// same id), each message's JSON object encoded for it.
pub fn poll_body(backlog: &Backlog) -> polling::Body {
    polling::encode_body(backlog, message_json)
}

/// The event a message becomes on an SSE stream (chunk-framed for HTTP/1.1, bare for HTTP/1.0),
/// encoded for one stream's replay.
pub fn sse_event(message: &Message, chunked: bool) -> Arc<SharedUnit> {
    Arc::new(encode_sse_event(message, chunked))
}

/// `id:` and `data:` lines and the blank line, and for HTTP/1.1 the chunk around them; the data
/// lines' text is payload, the rest SSE or chunk syntax.
fn encode_sse_event(message: &Message, chunked: bool) -> SharedUnit {
    let mut event = Vec::with_capacity(sse::encoded_len(Some(message.id), None, &message.data));
    sse::encode_event(Some(message.id), None, &message.data, &mut event);
    let payload = sse::EventView::new(&event).payload_len();
    let layout = Layout::from_runs(&[
        (Category::SseFields, event.len() - payload),
        (Category::Payload, payload),
    ]);
    if !chunked {
        return SharedUnit::new(event, layout);
    }
    let (framed, layout) = encode_chunk_with_layout(&event, layout);
    SharedUnit::new(framed, layout)
}

/// The text frame carrying a message's JSON object, encoded for one WebSocket's replay.
pub fn ws_frame(message: &Message) -> Arc<SharedUnit> {
    Arc::new(encode_ws_frame(message, &message_json(message)))
}

/// The frame head, then the JSON object with its own layout.
fn encode_ws_frame(message: &Message, json: &SharedUnit) -> SharedUnit {
    let mut out = Vec::with_capacity(websocket::frame_len(json.bytes.len()));
    websocket::encode_frame(Opcode::Text, &json.bytes, &mut out);
    let head = out.len() - json.bytes.len();
    let mut layout = Layout::uniform(Category::WsFrameHeader, head);
    if !layout.try_extend(&json.layout) {
        layout = Layout::from_runs(&[
            (Category::WsFrameHeader, head),
            (
                Category::JsonEnvelope,
                json.bytes.len() - message.data.len(),
            ),
            (Category::Payload, message.data.len()),
        ]);
    }
    SharedUnit::new(out, layout)
}

/// The compressed payload size of a WebSocket frame [`Encodings::ws_frame_for`] made, `None` when the frame
/// is not compressed.
pub fn ws_compressed_len(unit: &SharedUnit) -> Option<usize> {
    unit.layout
        .runs()
        .iter()
        .find(|(c, _)| *c == Category::WsCompressed)
        .map(|&(_, n)| n as usize)
}

/// The SSE events that tell a resuming client its position could not be served as asked: a
/// `gap` event naming the ids no longer held, a `reset` event when the position lies in the
/// future. They carry no id, so a client's Last-Event-ID only ever names a real message.
pub fn sse_notices<C>(backlog: Option<&Backlog<C>>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(b) = backlog {
        if let Some(gap) = b.gap {
            sse::encode_event(None, Some("gap"), &gap_json(gap), &mut out);
        }
        if b.reset {
            let data = format!("{{\"last_id\":{}}}", b.last_id);
            sse::encode_event(None, Some("reset"), &data, &mut out);
        }
    }
    out
}

/// The same notices for a WebSocket: text frames of JSON before the messages.
pub fn ws_notices<C>(backlog: &Backlog<C>) -> Vec<String> {
    let mut notices = Vec::new();
    if let Some(gap) = backlog.gap {
        notices.push(format!("{{\"gap\":{}}}", gap_json(gap)));
    }
    if backlog.reset {
        notices.push(format!(
            "{{\"reset\":true,\"last_id\":{}}}",
            backlog.last_id
        ));
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn encodes_sse_event_in_a_chunk_once() {
        let m = Message::new(12, "a\nb".into(), Instant::now());
        let encodings = Encodings::default();
        let chunked = encodings.sse_event(&m, true);
        assert_eq!(&*chunked.bytes, b"18\r\nid: 12\ndata: a\ndata: b\n\n\r\n");
        assert_eq!(
            chunked.layout.runs(),
            [
                (Category::ChunkFraming, 4),
                (Category::SseFields, 22),
                (Category::Payload, 2),
                (Category::ChunkFraming, 2)
            ]
        );
        assert!(Arc::ptr_eq(&chunked, &encodings.sse_event(&m, true)));
        assert_eq!(sse_event(&m, true).bytes, chunked.bytes);
        assert_eq!(
            &*sse_event(&m, false).bytes,
            b"id: 12\ndata: a\ndata: b\n\n"
        );
    }

    #[test]
    fn encodes_ws_frame_with_json_layout() {
        let m = Message::new(1, "hello".into(), Instant::now());
        let encodings = Encodings::default();
        let frame = encodings.ws_frame(&m);
        assert_eq!(&frame.bytes[..2], &[0x81, 23]);
        assert_eq!(
            frame.layout.runs(),
            [
                (Category::WsFrameHeader, 2),
                (Category::JsonEnvelope, 16),
                (Category::Payload, 5),
                (Category::JsonEnvelope, 2)
            ]
        );
        assert!(Arc::ptr_eq(&frame, &encodings.ws_frame(&m)));
        assert!(Arc::ptr_eq(&encodings.json(&m), &encodings.json(&m)));
        assert_eq!(ws_frame(&m).bytes, frame.bytes);
        assert_eq!(ws_frame(&m).layout.runs(), frame.layout.runs());
    }

    #[test]
    fn replays_encode_for_themselves_and_nothing_stays_beside_the_message() {
        // Issue 11, item 5: encodings kept on the message were outside the history budget.
        let m = Message::new(3, "\n".repeat(1000).into(), Instant::now());
        let (a, b) = (sse_event(&m, true), sse_event(&m, true));
        assert!(!Arc::ptr_eq(&a, &b), "each replay has its own bytes");
        assert!(a.bytes.len() > 7 * 1000, "SSE spends a data: line per line");
        let fan_out = Encodings::default();
        let shared = fan_out.sse_event(&m, true);
        drop(fan_out);
        assert_eq!(
            Arc::strong_count(&shared),
            1,
            "the fan-out's encodings go with it"
        );
        // The message is its id, payload and time: no slot for encodings.
        assert!(std::mem::size_of::<Message>() <= 48);
    }

    #[test]
    fn compresses_a_ws_frame_once_per_window_and_shares_it() {
        let text = "the quick brown fox jumps over the lazy dog ".repeat(20);
        let m = Message::new(3, text.clone().into(), Instant::now());
        let mut c = Some(Compressor::new());
        let wide = DeflateAgreement {
            client_no_context_takeover: false,
            server_max_window_bits: 15,
        };
        let narrow = DeflateAgreement {
            server_max_window_bits: 9,
            ..wide
        };
        // One fan-out's encodings: each window's frame compressed once and shared.
        let e = Encodings::default();
        let a = e.ws_frame_for(&m, Some(wide), &mut c);
        assert!(Arc::ptr_eq(&a, &e.ws_frame_for(&m, Some(wide), &mut c)));
        assert_eq!(a.bytes[0], 0xc1, "FIN, RSV1, text");
        let n = ws_compressed_len(&a).unwrap();
        assert!(n < 100, "{n}");
        assert_eq!(a.layout.len(), a.bytes.len());
        let b = e.ws_frame_for(&m, Some(narrow), &mut c);
        assert!(!Arc::ptr_eq(&a, &b));
        assert!(Arc::ptr_eq(&b, &e.ws_frame_for(&m, Some(narrow), &mut c)));
        // A replay compresses the same bytes for itself.
        let replay = Encodings::default().ws_frame_for(&m, Some(wide), &mut c);
        assert!(!Arc::ptr_eq(&a, &replay));
        assert_eq!(a.bytes, replay.bytes);
        // The payload inflates to the JSON object.
        let mut inflater = websocket::deflate::Inflater::new();
        let mut out = Vec::new();
        inflater
            .inflate(&a.bytes[a.bytes.len() - n..], &mut out, 1 << 20)
            .unwrap();
        inflater.finish(&mut out, 1 << 20).unwrap();
        assert_eq!(out, &*message_json(&m).bytes);
        // Without deflate, and for a message too short to shrink: the plain frame.
        assert!(Arc::ptr_eq(
            &e.ws_frame_for(&m, None, &mut c),
            &e.ws_frame(&m)
        ));
        let short = Message::new(4, "hi".into(), Instant::now());
        let e = Encodings::default();
        let plain = e.ws_frame_for(&short, Some(wide), &mut c);
        assert!(Arc::ptr_eq(&plain, &e.ws_frame(&short)));
        assert_eq!(ws_compressed_len(&plain), None);
    }

    #[test]
    fn notices_tell_gap_and_reset_in_each_transport_s_words() {
        let backlog: Backlog = Backlog {
            last_id: 9,
            messages: vec![],
            gap: Some(crate::hub::Gap { from: 2, to: 4 }),
            reset: false,
        };
        assert_eq!(
            String::from_utf8(sse_notices(Some(&backlog))).unwrap(),
            "event: gap\ndata: {\"from\":2,\"to\":4}\n\n"
        );
        assert_eq!(ws_notices(&backlog), ["{\"gap\":{\"from\":2,\"to\":4}}"]);
        let reset: Backlog = Backlog {
            last_id: 3,
            messages: vec![],
            gap: None,
            reset: true,
        };
        assert_eq!(ws_notices(&reset), ["{\"reset\":true,\"last_id\":3}"]);
        assert!(sse_notices::<()>(None).is_empty());
    }
}
