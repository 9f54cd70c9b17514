use super::*;

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

type Got = Vec<(Option<u64>, String)>;

fn feed_all(sub: &mut Subscriber, wire: &[u8], step: usize) -> (Got, Vec<u8>, Next) {
    let now = Instant::now();
    let (mut got, mut out, mut pending, mut next) =
        (Vec::new(), Vec::new(), Vec::new(), Next::Read);
    for piece in wire.chunks(step) {
        pending.extend_from_slice(piece);
        // Like the driver: call again while the call used some of the input.
        loop {
            let (n, nx) = sub
                .on_input(&pending, now, &mut out, &mut |_, d| {
                    got.push((d.id, String::from_utf8_lossy(d.data).into_owned()))
                })
                .unwrap();
            pending.drain(..n);
            next = nx;
            if n == 0 || pending.is_empty() {
                break;
            }
        }
    }
    (got, out, next)
}

#[test]
fn sse_stream_in_any_pieces() {
    let wire =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
        d\r\nretry: 3000\n\n\r\n11\r\nid: 1\ndata: abc\n\n\r\n";
    for step in [1, 7, wire.len()] {
        let mut sub = Subscriber::new(
            Kind::Sse,
            url("http://127.0.0.1:1/sse/c"),
            0,
            Options::default(),
            1,
        );
        let mut out = Vec::new();
        sub.connected(&mut out);
        assert!(out.starts_with(b"GET /sse/c HTTP/1.1\r\n"));
        let (got, _, next) = feed_all(&mut sub, wire, step);
        assert_eq!(got, vec![(Some(1), "abc".to_string())], "step {step}");
        assert_eq!(next, Next::Read);
        assert!(sub.is_ready());
        // A drop: the reconnect carries Last-Event-ID after the server's retry delay.
        let now = Instant::now();
        assert_eq!(
            sub.close_soon(now, true),
            Some(Next::Close(Some(now + Duration::from_secs(3))))
        );
        let mut again = Vec::new();
        sub.connected(&mut again);
        assert!(String::from_utf8_lossy(&again).contains("Last-Event-ID: 1\r\n"));
        assert_eq!(sub.counters.resumes, 1);
    }
}

#[test]
fn poll_answers_move_the_cursor() {
    let body = br#"{"last_id":3,"messages":[{"id":2,"data":"a"},{"id":3,"data":"b\"c"}]}"#;
    let mut wire =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    wire.extend_from_slice(body);
    let mut sub = Subscriber::new(
        Kind::Poll,
        url("http://127.0.0.1:1/poll/c?since=0"),
        0,
        Options::default(),
        1,
    );
    let mut out = Vec::new();
    sub.connected(&mut out);
    assert!(out.starts_with(b"GET /poll/c?since=0 HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
    let (got, _, next) = feed_all(&mut sub, &wire, 5);
    assert_eq!(got, vec![(Some(2), "a".into()), (Some(3), "b\"c".into())]);
    assert!(matches!(next, Next::Sleep(_)));
    let mut again = Vec::new();
    assert_eq!(sub.on_timer(Instant::now(), &mut again), Next::Read);
    assert!(again.starts_with(b"GET /poll/c?since=3 HTTP/1.1\r\n"));
}

#[test]
fn longpoll_re_arms_at_once() {
    let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"7\"\r\n\r\nhello";
    let mut sub = Subscriber::new(
        Kind::LongPoll,
        url("http://127.0.0.1:1/sub/c"),
        0,
        Options::default(),
        1,
    );
    let mut out = Vec::new();
    sub.connected(&mut out);
    let (got, out, next) = feed_all(&mut sub, wire, 3);
    assert_eq!(got, vec![(None, "hello".into())]);
    assert_eq!(next, Next::Read);
    assert!(String::from_utf8_lossy(&out).contains("If-None-Match: \"7\"\r\n"));
}

#[test]
fn websocket_handshake_frames_and_ping() {
    let mut sub = Subscriber::new(
        Kind::Ws,
        url("ws://127.0.0.1:1/ws/c"),
        0,
        Options::default(),
        9,
    );
    let mut out = Vec::new();
    sub.connected(&mut out);
    let req = String::from_utf8(out).unwrap();
    let key = req
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap()
        .to_string();
    let mut wire = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        crate::websocket::accept_key(key.as_bytes())
    )
    .into_bytes();
    crate::websocket::encode_frame(Opcode::Text, br#"{"id":4,"data":"xy"}"#, &mut wire);
    crate::websocket::encode_frame(Opcode::Ping, b"p", &mut wire);
    crate::websocket::encode_frame(Opcode::Text, b"raw", &mut wire);
    let (got, out, _) = feed_all(&mut sub, &wire, wire.len());
    assert_eq!(got, vec![(Some(4), "xy".into()), (None, "raw".into())]);
    // The pong is masked: 2 head + 4 key + 1.
    assert_eq!(out.len(), 7);
    assert_eq!(out[0], 0x8a);
    assert_eq!(sub.cursor, Some(4));
}

#[test]
fn websocket_with_a_wrong_accept_fails() {
    let mut sub = Subscriber::new(
        Kind::Ws,
        url("ws://127.0.0.1:1/ws/c"),
        0,
        Options::default(),
        9,
    );
    sub.connected(&mut Vec::new());
    let wire = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n";
    let r = sub.on_input(wire, Instant::now(), &mut Vec::new(), &mut |_, _| {});
    assert!(r.is_err());
}
