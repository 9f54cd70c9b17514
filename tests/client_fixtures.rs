//! The client's SSE path (response head, body until close, `sse::Parser`) on a stream Nchan sent,
//! captured with curl (see tests/fixtures/README.md), split at every byte.
// Tests, benches and the binary drive real sockets and clocks (clippy.toml fences the library).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]
use std::time::Instant;

use pushwire::client::subscriber::Options;
use pushwire::client::{Kind, Subscriber, Url};

const NCHAN_SSE: &[u8] = include_bytes!("fixtures/nchan_sse.http");

#[test]
fn nchan_event_stream_in_every_split() {
    let expected: Vec<(Option<u64>, String)> = vec![
        (None, "hello".into()),
        (None, "two\nlines".into()),
        (None, "{\"json\":\"ünïcode\"}".into()),
    ];
    for split in 0..NCHAN_SSE.len() {
        let url = Url::parse("http://127.0.0.1:1/sub/fix").unwrap();
        let mut sub = Subscriber::new(Kind::Sse, url, 0, Options::default(), 1);
        sub.connected(&mut Vec::new());
        let mut got = Vec::new();
        let mut pending = Vec::new();
        for piece in [&NCHAN_SSE[..split], &NCHAN_SSE[split..]] {
            pending.extend_from_slice(piece);
            loop {
                let (n, _) = sub
                    .on_input(&pending, Instant::now(), &mut Vec::new(), &mut |_, d| {
                        got.push((d.id, String::from_utf8(d.data.to_vec()).unwrap()))
                    })
                    .unwrap();
                pending.drain(..n);
                if n == 0 || pending.is_empty() {
                    break;
                }
            }
        }
        assert_eq!(got, expected, "split at {split}");
        assert!(sub.is_ready());
        // Nchan's ids are not integers: no since= cursor, but the reconnect carries Last-Event-ID.
        assert_eq!(sub.cursor, None);
        let mut again = Vec::new();
        sub.close_soon(Instant::now(), true);
        sub.connected(&mut again);
        let text = String::from_utf8(again).unwrap();
        assert!(text.contains("Last-Event-ID: 1795803231:2\r\n"), "{text}");
    }
}
