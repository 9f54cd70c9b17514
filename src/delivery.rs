//! How a published message is put on the wire by each transport, encoded once per message and
//! shared by every subscriber: the JSON object (polls, and inside WebSocket frames), the SSE event
//! in its HTTP chunk (or bare, for HTTP/1.0 streams), the WebSocket text frame. Each encoding
//! carries its [`Layout`] so the ledger can tell payload from overhead.
//!
//! This is where the protocol modules meet: [`crate::sse`] writes the event, [`crate::http1`] the
//! chunk around it, [`crate::websocket`] the frame head; none of them knows the others.
use std::sync::Arc;

use crate::http1::chunked::encode_chunk;
use crate::hub::{Encoding, Message};
use crate::ledger::{Category, Layout};
use crate::outbuf::SharedUnit;
use crate::sse;
use crate::websocket::{self, Opcode};

pub use crate::polling::message_json;

/// The event a message becomes on an SSE stream: chunk-framed for HTTP/1.1, bare for HTTP/1.0.
pub fn sse_event(message: &Message, chunked: bool) -> Arc<SharedUnit> {
    let which = if chunked {
        Encoding::SseChunk
    } else {
        Encoding::SseEvent
    };
    message.encoded(which, |m| encode_sse_event(m, chunked))
}

/// `id:` and `data:` lines and the blank line, and for HTTP/1.1 the chunk around them; the data
/// lines' text is payload, the rest SSE or chunk syntax.
fn encode_sse_event(message: &Message, chunked: bool) -> SharedUnit {
    let mut event = Vec::with_capacity(sse::encoded_len(Some(message.id), None, &message.data));
    sse::encode_event(Some(message.id), None, &message.data, &mut event);
    let payload = sse::EventView::new(&event).payload_len();
    let fields = event.len() - payload;
    if !chunked {
        let layout =
            Layout::from_runs(&[(Category::SseFields, fields), (Category::Payload, payload)]);
        return SharedUnit::new(event, layout);
    }
    let mut out = Vec::with_capacity(event.len() + 12);
    encode_chunk(&event, &mut out);
    let size_line = out.len() - event.len() - 2;
    let layout = Layout::from_runs(&[
        (Category::ChunkFraming, size_line),
        (Category::SseFields, fields),
        (Category::Payload, payload),
        (Category::ChunkFraming, 2),
    ]);
    SharedUnit::new(out, layout)
}

/// The text frame carrying a message's JSON object: the frame head, then the object with its
/// own layout.
pub fn ws_frame(message: &Message) -> Arc<SharedUnit> {
    message.encoded(Encoding::WsFrame, |m| {
        let json = message_json(m);
        let mut out = Vec::with_capacity(websocket::frame_len(json.bytes.len()));
        websocket::encode_frame(Opcode::Text, &json.bytes, &mut out);
        let mut layout = Layout::uniform(Category::WsFrameHeader, out.len() - json.bytes.len());
        if !layout.try_extend(&json.layout) {
            layout = Layout::from_runs(&[
                (Category::WsFrameHeader, out.len() - json.bytes.len()),
                (Category::JsonEnvelope, json.bytes.len() - m.data.len()),
                (Category::Payload, m.data.len()),
            ]);
        }
        SharedUnit::new(out, layout)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn encodes_sse_event_in_a_chunk_once() {
        let m = Message::new(12, "a\nb".into(), Instant::now());
        let chunked = sse_event(&m, true);
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
        assert!(Arc::ptr_eq(&chunked, &sse_event(&m, true)));
        assert_eq!(
            &*sse_event(&m, false).bytes,
            b"id: 12\ndata: a\ndata: b\n\n"
        );
    }

    #[test]
    fn encodes_ws_frame_with_json_layout() {
        let m = Message::new(1, "hello".into(), Instant::now());
        let frame = ws_frame(&m);
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
    }
}
