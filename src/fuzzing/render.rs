//! Fuzz entry points: Trace renderers.

use std::fmt::Write as _;

use crate::http1::chunked::ChunkedDecoder;
use crate::http1::{HeadReader, Limits};
use crate::sse;
use crate::websocket::{self, FrameHead};

/// Every renderer over arbitrary bytes: the frame dissector, the SSE dissector and views, the
/// one-line `Display` of a decoded request head and frame head, and the error strings. None may
/// panic; dissections end their last line.
pub fn render(data: &[u8]) {
    let mut out = String::new();
    websocket::dissect_frame(data, &mut out);
    assert!(out.ends_with('\n'));
    out.clear();
    sse::dissect(data, &mut out);
    assert!(out.ends_with('\n'));
    let view = sse::EventView::new(data);
    let _ = write!(out, "{view}");
    for line in view.lines() {
        let _ = write!(out, "{line}");
        let _ = line.check().map_err(|e| e.to_string());
    }
    match FrameHead::decode(data) {
        Ok(Some((head, _))) => {
            let line = head.to_string();
            assert!(!line.is_empty() && !line.contains('\n'));
            head.dissect(&mut out);
        }
        Ok(None) => {}
        Err(e) => {
            let _ = (e.to_string(), e.close_code());
        }
    }
    match HeadReader::new().decode(data, &Limits::default()) {
        Ok(Some(head)) => {
            let line = head.to_string();
            assert!(line.starts_with(head.method()));
        }
        Ok(None) => {}
        Err(e) => {
            let _ = (e.to_string(), e.status());
        }
    }
    if let Err(e) = ChunkedDecoder::new().decode(data, &mut Vec::new()) {
        let _ = e.to_string();
    }
}
